#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Queue backpressure: a publisher faster than a moving subscriber waits
//! once that subscriber's queue (behind its inflight window) is long,
//! instead of filling it; clients that publish to each other never hold
//! each other up.

use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use mqtt_broker_core::Broker;
use mqtt_codec::{Decoder, Encoder, Packet, PacketId, PubAck, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;

mod common;
use common::{Client, V3_1_1, config, publish_packet, start};

/// The broker's threshold (`QUEUE_PRESSURE`), its input batch and the
/// inflight window below: how far the broker may acknowledge a publisher
/// ahead of what its subscriber received.
const QUEUE: usize = 512;
const BATCH: usize = 512;
const INFLIGHT: u16 = 10;

/// A broker with an inflight window of [`INFLIGHT`] and room to queue.
async fn start_small_window() -> (Broker, SocketAddr) {
    let mut cfg = config();
    cfg.max_inflight = NonZeroU16::new(INFLIGHT).unwrap();
    cfg.max_queued_messages = 100_000;
    start(cfg).await
}

/// `n` QoS 1 PUBLISH packets to `topic`, encoded back to back.
fn burst(topic: &str, n: usize) -> BytesMut {
    let enc = Encoder::new(V3_1_1);
    let mut out = BytesMut::new();
    for i in 0..n {
        let mut p = publish_packet(topic, &i.to_string(), QoS::AtLeastOnce, false);
        p.packet_id = PacketId::new(u16::try_from(i % 60_000 + 1).unwrap());
        enc.encode(&p.into(), &mut out).unwrap();
    }
    out
}

/// Reads `rd` until `acks` PUBACKs and `publishes` PUBLISH packets (each
/// acknowledged through `ack_to`) have arrived, counting the PUBACKs in
/// `acked` as they come.
async fn read_until(
    mut rd: OwnedReadHalf,
    mut buf: BytesMut,
    acked: Arc<AtomicUsize>,
    acks: usize,
    publishes: usize,
    ack_to: tokio::sync::mpsc::UnboundedSender<PacketId>,
) {
    let mut dec = Decoder::with_version(V3_1_1);
    let mut received = 0;
    while acked.load(Ordering::SeqCst) < acks || received < publishes {
        while let Some(p) = dec.decode(&mut buf).unwrap() {
            match p {
                Packet::PubAck(_) => {
                    acked.fetch_add(1, Ordering::SeqCst);
                }
                Packet::Publish(p) => {
                    received += 1;
                    ack_to.send(p.packet_id.unwrap()).unwrap();
                }
                other => panic!("{other:?}"),
            }
        }
        if acked.load(Ordering::SeqCst) >= acks && received >= publishes {
            break;
        }
        assert!(rd.read_buf(&mut buf).await.unwrap() > 0, "closed");
    }
}

/// A publisher bursts 4,000 QoS 1 messages at a subscriber that acknowledges
/// them one by one, with pauses: the broker acknowledges the publisher at
/// the subscriber's pace (at most its window, queue threshold and one input
/// batch ahead), and every message arrives.
#[tokio::test]
async fn a_fast_publisher_waits_for_a_moving_subscribers_queue() {
    const N: usize = 4_000;
    let (_broker, addr) = start_small_window().await;
    let mut sub = Client::connect(addr, V3_1_1, "qp-sub", true).await;
    sub.subscribe("qp/t", QoS::AtLeastOnce).await;
    let publisher = Client::connect(addr, V3_1_1, "qp-pub", true).await;
    let (stream, buf) = publisher.into_parts();
    let (rd, mut wr) = stream.into_split();
    let acked = Arc::new(AtomicUsize::new(0));
    let (no_acks, _) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(read_until(rd, buf, acked.clone(), N, 0, no_acks));
    let bytes = burst("qp/t", N);
    let writer = tokio::spawn(async move {
        wr.write_all(&bytes).await.unwrap();
        wr
    });

    let mut ahead_max = 0;
    for got in 1..=N {
        let p = sub.recv_publish().await;
        assert_eq!(p.payload, (got - 1).to_string().as_bytes());
        // Slower than the publisher, yet moving.
        if got % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        ahead_max = ahead_max.max(acked.load(Ordering::SeqCst).saturating_sub(got));
    }
    assert!(
        ahead_max <= usize::from(INFLIGHT) + QUEUE + BATCH,
        "the publisher was acknowledged {ahead_max} messages ahead of its subscriber"
    );
    tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("every PUBLISH acknowledged")
        .unwrap();
    drop(writer.await.unwrap());
    sub.expect_nothing().await;
}

/// Two clients subscribed to each other's topic burst 3,000 QoS 1 messages
/// each at the other and acknowledge what they receive: both queues grow
/// while each is also a publisher, and both finish (everything arrives and
/// is acknowledged). A liveness check: a publisher with a backlog of its own
/// is never held, so two such clients cannot hold each other up until one
/// counts as stalled.
#[tokio::test]
async fn clients_publishing_to_each_other_both_finish() {
    const N: usize = 3_000;
    let (_broker, addr) = start_small_window().await;
    let mut tasks = Vec::new();
    let mut clients = Vec::new();
    for (id, filter) in [("qp-a", "qp/b"), ("qp-b", "qp/a")] {
        let mut c = Client::connect(addr, V3_1_1, id, true).await;
        c.subscribe(filter, QoS::AtLeastOnce).await;
        clients.push(c);
    }
    for (c, topic) in clients.into_iter().zip(["qp/a", "qp/b"]) {
        let (stream, buf) = c.into_parts();
        let (rd, mut wr) = stream.into_split();
        let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel::<PacketId>();
        let acked = Arc::new(AtomicUsize::new(0));
        let reader = tokio::spawn(read_until(rd, buf, acked, N, N, ack_tx));
        let bytes = burst(topic, N);
        // One writer per client: its burst, then the PUBACKs of what it
        // receives, as they come.
        let writer = tokio::spawn(async move {
            let enc = Encoder::new(V3_1_1);
            wr.write_all(&bytes).await.unwrap();
            let mut sent = 0;
            while sent < N {
                let first = ack_rx.recv().await.unwrap();
                let mut out = BytesMut::new();
                enc.encode(&PubAck::new(first).into(), &mut out).unwrap();
                sent += 1;
                while let Ok(id) = ack_rx.try_recv() {
                    enc.encode(&PubAck::new(id).into(), &mut out).unwrap();
                    sent += 1;
                }
                wr.write_all(&out).await.unwrap();
            }
            wr
        });
        tasks.push((reader, writer));
    }
    for (reader, writer) in tasks {
        tokio::time::timeout(Duration::from_secs(20), async {
            reader.await.unwrap();
            drop(writer.await.unwrap());
        })
        .await
        .expect("both clients received and were acknowledged everything");
    }
}

/// A QoS 1 subscriber that reads everything and pings every 50 ms, but
/// acknowledges nothing: its queue does not move, so after a second
/// (`ACK_STALLED`) it holds its publisher back no more, whose 600
/// messages are then all acknowledged. Meanwhile the publisher, not read,
/// is not closed by Keep Alive (2 s here) although its PINGREQs wait
/// unread, and it is answered every PINGREQ it sent once it is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_acknowledges_holds_its_publisher_a_second_at_most() {
    const N: usize = 600;
    let (_broker, addr) = start_small_window().await;
    let mut sub = Client::connect(addr, V3_1_1, "qp-silent", true).await;
    sub.subscribe("qp/s", QoS::AtLeastOnce).await;
    let (mut rd, mut wr) = sub.into_stream().into_split();
    let silent = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            if wr.write_all(&[0xC0, 0x00]).await.is_err() {
                return;
            }
            let until = tokio::time::Instant::now() + Duration::from_millis(50);
            while let Ok(r) = tokio::time::timeout_at(until, rd.read(&mut buf)).await {
                if r.map_or(true, |n| n == 0) {
                    return;
                }
            }
        }
    });
    let mut connect = common::connect_packet(V3_1_1, "qp-held", true);
    connect.keep_alive = 2;
    let (mut publisher, _) = Client::connect_with(addr, connect).await;
    publisher.send_bytes(&burst("qp/s", N)).await;
    let start = std::time::Instant::now();
    let (mut acks, mut pings, mut answers) = (0, 0, 0);
    while start.elapsed() < Duration::from_secs(4) {
        publisher.send_bytes(&[0xC0, 0x00]).await;
        pings += 1;
        let until = std::time::Instant::now() + Duration::from_millis(500);
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            match publisher.recv_timeout(left).await {
                Ok(Some(Packet::PubAck(_))) => acks += 1,
                Ok(Some(Packet::PingResp)) => answers += 1,
                Ok(Some(other)) => panic!("{other:?}"),
                Ok(None) => panic!("closed after {:?}", start.elapsed()),
                Err(()) => break,
            }
        }
    }
    silent.abort();
    assert_eq!(acks, N, "PUBACKs to the held publisher");
    assert_eq!(answers, pings, "PINGRESPs to the held publisher");
}
