#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Write-through: a publisher's task writes deliveries straight to the
//! sockets of idle subscribers, and gives back what a full socket did not
//! take. These tests fill the subscriber's socket (a small receive buffer,
//! and a subscriber that does not read for a while) so that lent bytes come
//! back, and check that every message still arrives once and in order
//! [MQTT-4.6.0-6].

use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::time::Duration;

use bytes::Bytes;
use mqtt_codec::{Packet, ProtocolVersion, Publish, QoS};

mod common;
use common::{Client, V3_1_1, V5, config, connect_packet, start};

const PAYLOAD: usize = 16 * 1024;

/// A payload of [`PAYLOAD`] bytes that starts with `seq`.
fn payload(seq: u32) -> Bytes {
    let mut p = vec![b'x'; PAYLOAD];
    p[..4].copy_from_slice(&seq.to_be_bytes());
    p.into()
}

fn seq(p: &Publish) -> u32 {
    u32::from_be_bytes(p.payload[..4].try_into().unwrap())
}

/// A subscriber to `wt/#` whose socket holds little: 4 KiB of receive
/// buffer, so that the broker's writes soon stop short.
async fn small_subscriber(addr: SocketAddr, version: ProtocolVersion, qos: QoS) -> Client {
    let (mut sub, ack) = Client::tcp_small_buffer(addr, version)
        .await
        .handshake(connect_packet(version, "wt-sub", true))
        .await;
    assert!(!ack.reason.is_error());
    sub.subscribe("wt/#", qos).await;
    sub
}

async fn in_order_through_a_full_socket(version: ProtocolVersion) {
    const N: u32 = 2_000;
    let mut cfg = config();
    // A window far larger than the socket buffers: the broker keeps writing.
    cfg.max_inflight = NonZeroU16::new(1_000).unwrap();
    cfg.receive_maximum = NonZeroU16::new(1_000).unwrap();
    let (_broker, addr) = start(cfg).await;
    let mut sub = small_subscriber(addr, version, QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(addr, version, "wt-pub", true).await;
    let publishing = tokio::spawn(async move {
        for i in 0..N {
            let mut p = Publish::new(
                mqtt_codec::PublishTopic::try_from("wt/a").unwrap(),
                payload(i),
            );
            p.qos = QoS::AtLeastOnce;
            publisher.publish_packet(p).await;
        }
        publisher
    });
    // Let the publisher fill the subscriber's socket, then read it all.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..N {
        let p = sub.recv_publish().await;
        assert_eq!(seq(&p), i, "message {i} out of order");
        assert!(!p.dup, "message {i} resent on a live connection");
        assert_eq!(p.payload.len(), PAYLOAD);
    }
    publishing.await.unwrap().disconnect().await;
    sub.expect_nothing().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_qos1_deliveries_stay_in_order_when_the_subscribers_socket_fills() {
    in_order_through_a_full_socket(V3_1_1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_qos1_deliveries_stay_in_order_when_the_subscribers_socket_fills() {
    in_order_through_a_full_socket(V5).await;
}

/// QoS 0 to a subscriber that stops reading may be dropped, but what
/// arrives arrives in order, whole, and once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_flood_to_a_full_socket_arrives_in_order_or_not_at_all() {
    const N: u32 = 3_000;
    let (_broker, addr) = start(config()).await;
    let mut sub = small_subscriber(addr, V3_1_1, QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(addr, V3_1_1, "wt-pub", true).await;
    let publishing = tokio::spawn(async move {
        for i in 0..N {
            publisher
                .send(Publish::new(
                    mqtt_codec::PublishTopic::try_from("wt/a").unwrap(),
                    payload(i),
                ))
                .await;
        }
        // The end, at QoS 1: queued, not dropped.
        let mut end = Publish::new(
            mqtt_codec::PublishTopic::try_from("wt/end").unwrap(),
            payload(N),
        );
        end.qos = QoS::AtLeastOnce;
        publisher.publish_packet(end).await;
        publisher
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut last = None;
    let mut received = 0;
    loop {
        let p = match sub.recv().await {
            Packet::Publish(p) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        };
        sub.ack(&p).await;
        let n = seq(&p);
        assert_eq!(p.payload.len(), PAYLOAD);
        assert!(last.is_none_or(|l| n > l), "{n} after {last:?}");
        last = Some(n);
        if &*p.topic == "wt/end" {
            break;
        }
        received += 1;
    }
    assert_eq!(last, Some(N));
    assert!(received > 0);
    publishing.await.unwrap().disconnect().await;
}
