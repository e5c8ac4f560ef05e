#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Each limit of `Config`, with a small value, over loopback with raw
//! packets.

mod common;

use std::num::{NonZeroU16, NonZeroU32};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use mqtt_broker_core::{AllowAll, Broker, QueuePolicy};
use mqtt_codec::{
    Packet, ProtocolVersion, PubAck, PubRel, Publish, QoS, ReasonCode, SubscriptionOptions, Will,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ----- max_connections ------------------------------------------------------------------------

/// Beyond `max_connections` a new connection is closed at once; once one
/// closes there is room again.
#[tokio::test]
async fn max_connections() {
    let mut cfg = config();
    cfg.max_connections = 2;
    let (broker, addr) = start(cfg).await;
    let a = Client::connect(addr, V5, "mc-a", true).await;
    let mut b = Client::connect(addr, V3_1_1, "mc-b", true).await;
    let mut extra = Client::tcp(addr, V5).await;
    extra.send(connect_packet(V5, "mc-c", true)).await;
    assert!(
        extra.expect_closed().await.is_empty(),
        "no CONNACK for a refused connection"
    );
    assert_eq!(broker.stats().connections_refused, 1);
    // The others are unaffected.
    b.expect_nothing().await;
    a.disconnect().await;
    wait_until("the closed connection to be counted", || {
        broker.stats().connections == 1
    })
    .await;
    let mut c = Client::connect(addr, V5, "mc-c", true).await;
    c.expect_nothing().await;
    assert_eq!(broker.stats().connections_refused, 1);
}

// ----- max_packet_size ------------------------------------------------------------------------

/// A PUBLISH whose whole packet is exactly `size` bytes at `version`.
fn publish_of_size(topic: &str, size: usize, version: ProtocolVersion) -> Publish {
    let mut p = publish_packet(topic, "", QoS::AtMostOnce, false);
    let mut n = size - p.packet_len(version).unwrap();
    loop {
        p.payload = Bytes::from(vec![b'x'; n]);
        let len = p.packet_len(version).unwrap();
        if len == size {
            return p;
        }
        n -= len - size;
    }
}

/// A packet over `max_packet_size` closes the connection (5.0: DISCONNECT
/// 0x95 first); one of exactly the maximum is accepted. 5.0 clients are
/// told the maximum in CONNACK.
async fn max_packet_size(version: ProtocolVersion) {
    let mut cfg = config();
    cfg.max_packet_size = NonZeroU32::new(256).unwrap();
    let (_broker, addr) = start(cfg).await;
    let mut sub = Client::connect(addr, V5, "mp-sub", true).await;
    sub.subscribe("mp/#", QoS::AtMostOnce).await;
    let (mut c, ack) = Client::connect_with(addr, connect_packet(version, "mp", true)).await;
    if version.is_v5() {
        assert_eq!(ack.properties.maximum_packet_size, NonZeroU32::new(256));
    }
    c.publish_packet(publish_of_size("mp/ok", 256, version))
        .await;
    c.expect_nothing().await;
    let p = sub.recv_publish().await;
    assert_eq!(&*p.topic, "mp/ok");
    c.send(publish_of_size("mp/big", 257, version)).await;
    c.expect_disconnect(ReasonCode::PacketTooLarge).await;
    sub.expect_nothing().await;
}

#[tokio::test]
async fn max_packet_size_v311() {
    max_packet_size(V3_1_1).await;
}

#[tokio::test]
async fn max_packet_size_v5() {
    max_packet_size(V5).await;
}

/// A large oversized packet (its body still arriving) is refused from its
/// fixed header, and the broker serves others meanwhile.
#[tokio::test]
async fn max_packet_size_huge_packet() {
    let mut cfg = config();
    cfg.max_packet_size = NonZeroU32::new(1024).unwrap();
    let (_broker, addr) = start(cfg).await;
    let mut c = Client::connect(addr, V5, "mh", true).await;
    // Only the fixed header and the start of a 100 MB PUBLISH.
    c.send_bytes(b"\x30\x80\xc2\xd7\x2f\x00\x01a").await;
    c.expect_disconnect(ReasonCode::PacketTooLarge).await;
    let mut other = Client::connect(addr, V5, "mh-other", true).await;
    other.expect_nothing().await;
}

/// The broker does not send a client a packet above the Maximum Packet Size
/// the client announced [MQTT-3.1.2-24]: that message is skipped for it.
#[tokio::test]
async fn client_maximum_packet_size_respected_v5() {
    let (_broker, addr) = start_default().await;
    let mut c = connect_packet(V5, "cm-sub", true);
    c.properties.maximum_packet_size = NonZeroU32::new(100);
    let (mut sub, _) = Client::connect_with(addr, c).await;
    sub.subscribe("cm/#", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(addr, V5, "cm-pub", true).await;
    publisher
        .publish_packet(publish_of_size("cm/big", 200, V5))
        .await;
    publisher
        .publish("cm/small", "s", QoS::AtLeastOnce, false)
        .await;
    let p = sub.recv_publish().await;
    assert_eq!(&*p.topic, "cm/small");
    sub.expect_nothing().await;
}

// ----- max_inflight ---------------------------------------------------------------------------

/// No more than `max_inflight` unacknowledged QoS 1 PUBLISH towards a client
/// that does not ack; the rest follow, in order, as it acks.
async fn max_inflight(version: ProtocolVersion) {
    let mut cfg = config();
    cfg.max_inflight = NonZeroU16::new(2).unwrap();
    let (_broker, addr) = start(cfg).await;
    let mut sub = Client::connect(addr, version, "mi-sub", true).await;
    sub.subscribe("mi/#", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(addr, version, "mi-pub", true).await;
    for i in 0..6 {
        publisher
            .publish("mi/t", &i.to_string(), QoS::AtLeastOnce, false)
            .await;
    }
    let first = sub.ping().await;
    assert_eq!(first.len(), 2, "{first:?}");
    let mut seen = Vec::new();
    let mut unacked: Vec<Publish> = first
        .into_iter()
        .map(|p| match p {
            Packet::Publish(p) => p,
            other => panic!("{other:?}"),
        })
        .collect();
    while !unacked.is_empty() {
        let p = unacked.remove(0);
        seen.push(text(&p).to_owned());
        sub.send(PubAck::new(p.packet_id.unwrap())).await;
        for q in sub.ping().await {
            let Packet::Publish(q) = q else {
                panic!("{q:?}")
            };
            unacked.push(q);
        }
        assert!(unacked.len() <= 2, "{unacked:?}");
    }
    assert_eq!(seen, ["0", "1", "2", "3", "4", "5"]);
}

#[tokio::test]
async fn max_inflight_v311() {
    max_inflight(V3_1_1).await;
}

#[tokio::test]
async fn max_inflight_v5() {
    max_inflight(V5).await;
}

/// A 5.0 client's Receive Maximum below `max_inflight` is the window
/// [MQTT-3.3.4-9]; QoS 2 messages count until PUBCOMP.
#[tokio::test]
async fn client_receive_maximum_caps_inflight_v5() {
    let mut cfg = config();
    cfg.max_inflight = NonZeroU16::new(4).unwrap();
    let (_broker, addr) = start(cfg).await;
    let mut c = connect_packet(V5, "rm-sub", true);
    c.properties.receive_maximum = NonZeroU16::new(1);
    let (mut sub, _) = Client::connect_with(addr, c).await;
    sub.subscribe("rm/#", QoS::ExactlyOnce).await;
    let mut publisher = Client::connect(addr, V5, "rm-pub", true).await;
    for i in 0..3 {
        publisher
            .publish("rm/t", &i.to_string(), QoS::ExactlyOnce, false)
            .await;
    }
    for i in 0..3 {
        let got = sub.ping().await;
        assert_eq!(got.len(), 1, "{got:?}");
        let Packet::Publish(p) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(text(p), i.to_string());
        let id = p.packet_id.unwrap();
        sub.send(mqtt_codec::PubRec::new(id)).await;
        // After PUBREC, the message still counts: nothing new yet.
        let got = sub.ping().await;
        assert!(
            matches!(got.as_slice(), [Packet::PubRel(r)] if r.packet_id == id),
            "{got:?}"
        );
        sub.send(mqtt_codec::PubComp::new(id)).await;
    }
    sub.expect_nothing().await;
}

/// With the whole packet identifier space in flight to a subscriber that
/// does not acknowledge QoS 2, no identifier is reused while in flight, the
/// rest wait in the queue, and once the flows complete every message has
/// arrived exactly once.
#[tokio::test]
async fn packet_ids_never_reused_while_in_flight() {
    use bytes::BytesMut;
    use mqtt_codec::{Encoder, PubComp, PubRec};
    const N: usize = 66_000;
    let mut cfg = config();
    cfg.max_inflight = NonZeroU16::MAX;
    cfg.max_queued_messages = N;
    let (broker, addr) = start(cfg).await;
    let mut sub = Client::connect(addr, V3_1_1, "pid-sub", true).await;
    sub.subscribe("pid/t", QoS::ExactlyOnce).await;
    for i in 0..N {
        broker.publish(
            "pid/t".parse().unwrap(),
            i.to_string(),
            QoS::ExactlyOnce,
            false,
        );
    }
    let mut seen = vec![false; N];
    let mut ids = std::collections::HashSet::new();
    let mut round = 0;
    while seen.iter().any(|s| !s) {
        round += 1;
        assert!(round < 5, "messages missing");
        let got = sub.ping().await;
        let mut batch = Vec::new();
        for p in got {
            let Packet::Publish(p) = p else {
                panic!("{p:?}")
            };
            assert!(!p.dup);
            let i: usize = text(&p).parse().unwrap();
            assert!(!seen[i], "message {i} twice");
            seen[i] = true;
            let id = p.packet_id.unwrap();
            assert!(ids.insert(id), "packet id {id} reused while in flight");
            batch.push(id);
        }
        assert!(batch.len() <= 65_535);
        // Complete the flows: PUBREC all, read the PUBRELs, PUBCOMP all.
        let enc = Encoder::new(V3_1_1);
        let mut out = BytesMut::new();
        for id in &batch {
            enc.encode(&PubRec::new(*id).into(), &mut out).unwrap();
        }
        sub.send_bytes(&out).await;
        let rels = sub.ping().await;
        let mut out = BytesMut::new();
        let mut more = Vec::new();
        for p in rels {
            match p {
                Packet::PubRel(r) => {
                    assert!(ids.remove(&r.packet_id));
                    enc.encode(&PubComp::new(r.packet_id).into(), &mut out)
                        .unwrap();
                }
                Packet::Publish(p) => more.push(p),
                other => panic!("{other:?}"),
            }
        }
        assert!(
            more.is_empty(),
            "new PUBLISH before any PUBCOMP: {}",
            more.len()
        );
        assert!(ids.is_empty());
        sub.send_bytes(&out).await;
    }
    sub.expect_nothing().await;
}

// ----- max_queued_messages --------------------------------------------------------------------

/// A subscriber that does not ack: 1 message in flight, `max_queued`
/// queued, the rest dropped per the policy and counted.
async fn max_queued(policy: QueuePolicy, want: &[&str]) {
    let mut cfg = config();
    cfg.max_inflight = NonZeroU16::new(1).unwrap();
    cfg.max_queued_messages = 3;
    cfg.queue_policy = policy;
    let (broker, addr) = start(cfg).await;
    let mut sub = Client::connect(addr, V3_1_1, "mq-sub", true).await;
    sub.subscribe("mq/#", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(addr, V3_1_1, "mq-pub", true).await;
    let dropped_before = broker.stats().publish_dropped;
    for i in 0..10 {
        publisher
            .publish("mq/t", &i.to_string(), QoS::AtLeastOnce, false)
            .await;
    }
    assert_eq!(broker.stats().publish_dropped - dropped_before, 6);
    let mut seen = Vec::new();
    loop {
        let got = sub.ping().await;
        if got.is_empty() {
            break;
        }
        assert_eq!(got.len(), 1, "{got:?}");
        let Packet::Publish(p) = &got[0] else {
            panic!("{got:?}")
        };
        seen.push(text(p).to_owned());
        sub.send(PubAck::new(p.packet_id.unwrap())).await;
    }
    assert_eq!(seen, want);
    assert_eq!(broker.stats().publish_dropped - dropped_before, 6);
}

#[tokio::test]
async fn max_queued_messages_drop_new() {
    max_queued(QueuePolicy::DropNew, &["0", "1", "2", "3"]).await;
}

#[tokio::test]
async fn max_queued_messages_drop_oldest() {
    max_queued(QueuePolicy::DropOldest, &["0", "7", "8", "9"]).await;
}

/// The queue of an absent persistent client is bounded the same way.
#[tokio::test]
async fn max_queued_messages_offline() {
    let mut cfg = config();
    cfg.max_queued_messages = 3;
    let (broker, addr) = start(cfg).await;
    let mut sub = Client::connect(addr, V3_1_1, "mo-sub", false).await;
    sub.subscribe("mo/#", QoS::ExactlyOnce).await;
    sub.disconnect().await;
    let mut publisher = Client::connect(addr, V3_1_1, "mo-pub", true).await;
    for i in 0..8 {
        publisher
            .publish("mo/t", &i.to_string(), QoS::ExactlyOnce, false)
            .await;
    }
    assert_eq!(broker.stats().publish_dropped, 5);
    // QoS 0 is not kept for an absent client: dropped and counted.
    publisher
        .publish("mo/t", "q0", QoS::AtMostOnce, false)
        .await;
    assert_eq!(broker.stats().publish_dropped, 6);
    let mut sub = Client::connect(addr, V3_1_1, "mo-sub", false).await;
    for i in 0..3 {
        assert_eq!(text(&sub.recv_publish().await), i.to_string());
    }
    sub.expect_nothing().await;
}

/// QoS 0 to a subscriber that does not read: beyond `max_pending_bytes`
/// messages are dropped and counted, memory stays bounded, the connection
/// stays usable and what arrives is in order.
#[tokio::test]
async fn max_pending_bytes_qos0_slow_reader() {
    let mut cfg = config();
    cfg.max_pending_bytes = 64 * 1024;
    let (broker, addr) = start(cfg).await;
    // A small receive buffer so that the kernel does not absorb it all.
    let (mut sub, _) = Client::tcp_small_buffer(addr, V5)
        .await
        .handshake(connect_packet(V5, "pb-sub", true))
        .await;
    sub.subscribe("pb/#", QoS::AtMostOnce).await;
    let mut publisher = Client::connect(addr, V5, "pb-pub", true).await;
    // Publish in batches until the kernel buffers are full and the broker
    // starts dropping (at most 64 MiB).
    let payload = "x".repeat(16 * 1024);
    let mut sent = 0;
    while broker.stats().publish_dropped == 0 {
        assert!(sent < 4096, "nothing dropped after {sent} messages");
        for _ in 0..64 {
            let mut p = publish_packet("pb/t", &payload, QoS::AtMostOnce, false);
            p.properties.to_mut().user_properties =
                vec![mqtt_codec::UserProperty::new(s("i"), s(&sent.to_string()))].into();
            publisher.send(p).await;
            sent += 1;
        }
        // Once PINGRESP is back, the broker has routed the batch.
        publisher.expect_nothing().await;
    }
    let dropped = broker.stats().publish_dropped;
    // Now read everything.
    let mut got = Vec::new();
    for p in sub.ping().await {
        let Packet::Publish(p) = p else {
            panic!("{p:?}")
        };
        got.push(
            p.properties.user_properties[0]
                .value
                .parse::<usize>()
                .unwrap(),
        );
    }
    assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order");
    assert_eq!(got.len() as u64 + dropped, sent as u64);
    sub.expect_nothing().await;
}

/// Memory per client is documented as bounded ("by the session's inflight
/// window and queue, and by `max_pending_bytes` for QoS 0"). A client that
/// sends packets that need an answer (PINGREQ here; PUBLISH QoS 1 or
/// SUBSCRIBE do the same) and never reads used to make the broker buffer
/// every answer; now it is not read while its answers are over the limit.
#[tokio::test]
async fn answers_to_a_client_that_never_reads_grow_without_bound() {
    let mut cfg = config();
    cfg.max_pending_bytes = 1024;
    let (broker, addr) = start(cfg).await;
    let c = Client::tcp_small_buffer(addr, V3_1_1).await;
    let (c, _) = c.handshake(connect_packet(V3_1_1, "pinger", true)).await;
    let mut stream = c.into_stream();
    const TOTAL: usize = 24 << 20;
    let chunk: Vec<u8> = [0xC0u8, 0x00].repeat(32 * 1024);
    // Written until the broker stops reading (a chunk that does not go out
    // for 2 s: the kernel buffers are full) or all of it is written. Kernel
    // buffers absorb part of it, so the write alone proves nothing; what
    // the broker read minus what it wrote is what it holds.
    let mut sent = 0;
    while sent < TOTAL {
        match tokio::time::timeout(Duration::from_secs(2), stream.write_all(&chunk)).await {
            Ok(r) => r.unwrap(),
            Err(_) => break,
        }
        sent += chunk.len();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let st = broker.stats();
    let held = st.bytes_received.saturating_sub(st.bytes_sent);
    assert!(
        held < 1 << 20,
        "the broker holds {held} bytes of PINGRESP for one client \
         (received {}, sent {}), max_pending_bytes = 1024",
        st.bytes_received,
        st.bytes_sent
    );
    drop(stream);
}

/// The same client, reading in bursts while it writes without pause: each
/// time its answers drain, the broker's socket is full, and every read
/// comes back whole (64 KiB, 32,768 PINGREQ, a whole number of the
/// connection's input batches). What the broker holds stays near the
/// limit plus one read, however long this goes on: the answers to one read
/// are taken before the next read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_to_a_client_that_reads_in_bursts_stay_bounded() {
    let mut cfg = config();
    cfg.max_pending_bytes = 1024;
    let (broker, addr) = start(cfg).await;
    let c = Client::tcp_small_buffer(addr, V3_1_1).await;
    let (c, _) = c.handshake(connect_packet(V3_1_1, "bursts", true)).await;
    let (mut rd, mut wr) = c.into_stream().into_split();
    let writer = tokio::spawn(async move {
        let chunk: Vec<u8> = [0xC0u8, 0x00].repeat(32 * 1024);
        // Ends when the reader below is done and closes the connection.
        while wr.write_all(&chunk).await.is_ok() {}
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut worst = (0, 0, 0);
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        // A pause long enough for the broker's socket to fill up ...
        tokio::time::sleep(Duration::from_millis(150)).await;
        let st = broker.stats();
        let held = st.bytes_received.saturating_sub(st.bytes_sent);
        if held > worst.0 {
            worst = (held, st.bytes_received, st.bytes_sent);
        }
        // ... then a burst of reading.
        let burst = Instant::now() + Duration::from_millis(30);
        while Instant::now() < burst {
            match tokio::time::timeout(Duration::from_millis(30), rd.read(&mut buf)).await {
                Ok(r) => assert!(r.unwrap() > 0, "closed"),
                Err(_) => break,
            }
        }
    }
    let (held, received, sent) = worst;
    assert!(
        held < 512 << 10,
        "the broker held {held} bytes of PINGRESP for one client \
         (received {received}, sent {sent}), max_pending_bytes = 1024"
    );
    drop(rd);
    writer.abort();
}

/// The same bound when an authorizer is asked about every PUBLISH: a
/// 3.1.1 client writes QoS 1 PUBLISH without pause and never reads. Each
/// answer is a 4-byte PUBACK, so the broker holds 4 x `messages_sent` -
/// `bytes_sent`. (The input step that asks a hook takes no output; the
/// answers must still be taken before the next read.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_stay_bounded_when_an_authorizer_is_asked() {
    let mut cfg = config();
    cfg.max_pending_bytes = 1024;
    let broker = Broker::builder()
        .config(cfg)
        .authorizer(AllowAll)
        .start()
        .await
        .unwrap();
    let addr = broker.local_addrs()[0];
    let c = Client::tcp_small_buffer(addr, V3_1_1).await;
    let (c, _) = c.handshake(connect_packet(V3_1_1, "asked", true)).await;
    let (rd, mut wr) = c.into_stream().into_split();
    let writer = tokio::spawn(async move {
        // PUBLISH QoS 1, topic "t", packet identifier 1: 7 bytes.
        let chunk: Vec<u8> = [0x32u8, 5, 0, 1, b't', 0, 1].repeat(9362);
        while wr.write_all(&chunk).await.is_ok() {}
    });
    let mut worst = (0, 0, 0);
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let st = broker.stats();
        let held = (4 * st.messages_sent).saturating_sub(st.bytes_sent);
        if held > worst.0 {
            worst = (held, st.messages_sent, st.bytes_sent);
        }
    }
    let (held, answers, sent) = worst;
    assert!(
        held < 512 << 10,
        "the broker held {held} bytes of PUBACK for one client \
         ({answers} answers, {sent} bytes sent), max_pending_bytes = 1024"
    );
    drop(rd);
    writer.abort();
}

/// A connection the broker closes while its client does not read (here:
/// taken over by the same client identifier, with megabytes of QoS 0
/// waiting for it) ends within a few seconds rather than waiting to write
/// for ever: it would keep its socket, its buffer and a place among
/// `max_connections`, one more for each takeover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_closed_while_their_client_does_not_read_end() {
    let (broker, addr) = start(config()).await;
    let payload = Bytes::from(vec![b'z'; 64 << 10]);
    let mut stale = Vec::new();
    for _ in 0..3 {
        let (mut c, _) = Client::tcp_small_buffer(addr, V3_1_1)
            .await
            .handshake(connect_packet(V3_1_1, "unread", true))
            .await;
        c.subscribe("zz", QoS::AtMostOnce).await;
        // 8 MiB, more than the kernel's buffers take.
        for _ in 0..128 {
            broker.publish(
                "zz".parse().unwrap(),
                payload.clone(),
                QoS::AtMostOnce,
                false,
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        stale.push(c);
    }
    let mut last = Client::connect(addr, V3_1_1, "unread", true).await;
    assert_eq!(broker.stats().clients_connected, 1);
    wait_until("the connections taken over to end", || {
        broker.stats().connections == 1
    })
    .await;
    last.expect_nothing().await;
    drop(stale);
}

/// Retained messages sent on SUBSCRIBE are encoded one by one against
/// `max_pending_bytes`: a client that reads gets the whole retained set
/// (256 KiB here, four times the limit), but one SUBSCRIBE naming the
/// same filter 256 times, from a client that does not read, makes the
/// broker hold about one copy of the set beyond four times the limit, not
/// 256 copies (14 MB before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_sent_on_subscribe_are_bounded_by_max_pending_bytes() {
    let mut cfg = config();
    cfg.max_pending_bytes = 64 << 10;
    let (broker, addr) = start(cfg).await;
    let mut publisher = Client::connect(addr, V3_1_1, "ret-pub", true).await;
    let payload = "r".repeat(4096);
    for i in 0..64 {
        publisher
            .publish(&format!("r/{i:02}"), &payload, QoS::AtMostOnce, true)
            .await;
    }
    publisher.expect_nothing().await;
    let mut reader = Client::connect(addr, V3_1_1, "ret-reader", true).await;
    reader.subscribe("r/#", QoS::AtMostOnce).await;
    let mut topics = Vec::new();
    for _ in 0..64 {
        let p = reader.expect_publish().await;
        assert_eq!(p.payload.len(), 4096);
        topics.push(p.topic.as_str().to_owned());
    }
    reader.expect_nothing().await;
    topics.sort();
    let all: Vec<String> = (0..64).map(|i| format!("r/{i:02}")).collect();
    assert_eq!(topics, all);
    assert_eq!(broker.stats().publish_dropped, 0);

    let mut c = Client::tcp_small_buffer(addr, V3_1_1).await;
    c.send(connect_packet(V3_1_1, "ret-many", true)).await;
    let before = broker.stats();
    c.send_raw_subscribe(&[("r/#", 0u8); 256]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let st = broker.stats();
    let packet = publish_packet("r/00", &payload, QoS::AtMostOnce, true)
        .packet_len(V3_1_1)
        .unwrap() as u64;
    let encoded = (st.publish_sent - before.publish_sent) * packet;
    let held = encoded.saturating_sub(st.bytes_sent - before.bytes_sent);
    // Four times the limit, the set once more, and the message that
    // crossed the line.
    let bound = 4 * (64 << 10) + 65 * packet;
    assert!(
        encoded <= bound && held <= bound,
        "one SUBSCRIBE made the broker encode {encoded} B and hold {held} B \
         (bound {bound} B)"
    );
    assert!(st.publish_dropped - before.publish_dropped >= 256 * 64 - bound / packet);
}

/// One PUBLISH to a subscriber with 256 overlapping subscriptions is a
/// copy for each, all made within one lock: they count against
/// `max_pending_bytes` as they are made (the session's waiting output is
/// encoded once it would reach the limit), so a subscriber that does not
/// read gets about four times the limit per PUBLISH (16 copies of 16 KiB
/// with a 64 KiB limit), the rest dropped. Before, the check looked at the
/// output as it was before the lock, and 512 copies (8.4 MB) were made of
/// the first two PUBLISH.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_for_overlapping_subscriptions_count_against_max_pending_bytes() {
    let mut cfg = config();
    cfg.max_pending_bytes = 64 << 10;
    let (broker, addr) = start(cfg).await;
    let (mut sub, _) = Client::tcp_small_buffer(addr, V3_1_1)
        .await
        .handshake(connect_packet(V3_1_1, "overlap-sub", true))
        .await;
    // Every filter of 8 levels named `a`, `b`, ... or `+`: 256 filters, all
    // matching "a/b/c/d/e/f/g/h".
    let filters: Vec<String> = (0..256u32)
        .map(|mask| {
            (0..8u8)
                .map(|l| {
                    if mask & (1 << l) != 0 {
                        "+".to_owned()
                    } else {
                        char::from(b'a' + l).to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect();
    let list: Vec<(&str, QoS)> = filters
        .iter()
        .map(|f| (f.as_str(), QoS::AtMostOnce))
        .collect();
    assert_eq!(sub.subscribe_many(&list).await.reasons.len(), 256);
    let mut publisher = Client::connect(addr, V3_1_1, "overlap-pub", true).await;
    let before = broker.stats();
    let payload = "p".repeat(16 << 10);
    for _ in 0..4 {
        publisher
            .publish("a/b/c/d/e/f/g/h", &payload, QoS::AtMostOnce, false)
            .await;
    }
    publisher.expect_nothing().await;
    let st = broker.stats();
    let copies = st.publish_sent - before.publish_sent;
    assert!(
        (4..=4 * 20).contains(&copies),
        "{copies} copies of 16 KiB made for a subscriber that does not read \
         (max_pending_bytes = 64 KiB)"
    );
    assert_eq!(
        copies + st.publish_dropped - before.publish_dropped,
        4 * 256
    );
}

/// A client that sends faster than it reads is not read while its answers
/// are over `max_pending_bytes`, and not closed by Keep Alive meanwhile
/// while it reads, however slowly (what it sent waits unread in the
/// socket, [MQTT-3.1.2-24] is not about that): every PINGREQ is answered
/// once it reads faster.
#[tokio::test]
async fn a_slow_reader_that_is_not_read_keeps_its_keep_alive() {
    let mut cfg = config();
    cfg.max_pending_bytes = 1024;
    let (_broker, addr) = start(cfg).await;
    let c = Client::tcp_small_buffer(addr, V3_1_1).await;
    let mut connect = connect_packet(V3_1_1, "slow", true);
    // 1.5 s without a packet read closes it.
    connect.keep_alive = 1;
    let (c, _) = c.handshake(connect).await;
    let (mut rd, mut wr) = c.into_stream().into_split();
    const PINGS: usize = 2 << 20;
    let writer = tokio::spawn(async move {
        let chunk: Vec<u8> = [0xC0u8, 0x00].repeat(32 * 1024);
        for _ in 0..PINGS / (32 * 1024) {
            wr.write_all(&chunk).await.unwrap();
        }
        wr
    });
    // 10 KB/s for 4 s: the broker's output stays over the limit for
    // longer than 1.5 s at a time.
    let mut got = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let slow_until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < slow_until {
        let n = rd.read(&mut buf[..1024]).await.unwrap();
        assert!(n > 0, "closed while reading slowly, after {got} bytes");
        got += n;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while got < 2 * PINGS {
        let n = tokio::time::timeout(TIMEOUT, rd.read(&mut buf))
            .await
            .expect("answers stopped")
            .unwrap();
        assert!(n > 0, "closed after {got} bytes");
        got += n;
    }
    assert_eq!(got, 2 * PINGS);
    assert!(buf[..2].eq(&[0xD0, 0x00]));
    let _wr = writer.await.unwrap();
}

// ----- connect_timeout ------------------------------------------------------------------------

/// A socket that never sends CONNECT (or only part of it) is closed after
/// `connect_timeout`.
#[tokio::test]
async fn connect_timeout() {
    let mut cfg = config();
    cfg.connect_timeout = Duration::from_millis(300);
    let (broker, addr) = start(cfg).await;
    let since = Instant::now();
    let mut silent = Client::tcp(addr, V5).await;
    let mut partial = Client::tcp(addr, V3_1_1).await;
    partial.send_bytes(b"\x10\x0c\x00\x04MQ").await;
    assert!(silent.expect_closed().await.is_empty());
    assert!(partial.expect_closed().await.is_empty());
    let after = since.elapsed();
    assert!(
        after >= Duration::from_millis(250),
        "closed after {after:?}"
    );
    assert!(
        after < Duration::from_millis(1500),
        "closed after {after:?}"
    );
    // A client that connects in time is not affected.
    let mut ok = Client::connect(addr, V5, "ct-ok", true).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    ok.expect_nothing().await;
    wait_until("the closed connections to be counted", || {
        broker.stats().connections == 1
    })
    .await;
}

// ----- max_topic_aliases ----------------------------------------------------------------------

/// A Topic Alias above `max_topic_aliases` is DISCONNECT 0x94
/// [MQTT-3.3.2-9].
#[tokio::test]
async fn max_topic_aliases() {
    let mut cfg = config();
    cfg.max_topic_aliases = 2;
    let (_broker, addr) = start(cfg).await;
    let (mut c, ack) = Client::connect_with(addr, connect_packet(V5, "mt", true)).await;
    assert_eq!(ack.properties.topic_alias_maximum, Some(2));
    let mut p = publish_packet("mt/a", "1", QoS::AtLeastOnce, false);
    p.properties.to_mut().topic_alias = Some(nz16(2));
    c.publish_packet(p).await;
    let mut p = publish_packet("mt/b", "2", QoS::AtLeastOnce, false);
    p.properties.to_mut().topic_alias = Some(nz16(3));
    p.packet_id = Some(pid(100));
    c.send(p).await;
    c.expect_disconnect(ReasonCode::TopicAliasInvalid).await;
}

/// With `max_topic_aliases = 0` none is announced and any alias is refused.
#[tokio::test]
async fn max_topic_aliases_zero() {
    let mut cfg = config();
    cfg.max_topic_aliases = 0;
    let (_broker, addr) = start(cfg).await;
    let (mut c, ack) = Client::connect_with(addr, connect_packet(V5, "mt0", true)).await;
    assert_eq!(ack.properties.topic_alias_maximum, None);
    let mut p = publish_packet("mt/a", "1", QoS::AtMostOnce, false);
    p.properties.to_mut().topic_alias = Some(nz16(1));
    c.send(p).await;
    c.expect_disconnect(ReasonCode::TopicAliasInvalid).await;
}

/// `outbound_topic_aliases = false`: no aliases towards clients, even those
/// that accept them.
#[tokio::test]
async fn outbound_topic_aliases_disabled() {
    let mut cfg = config();
    cfg.outbound_topic_aliases = false;
    let (_broker, addr) = start(cfg).await;
    let mut c = connect_packet(V5, "oa-sub", true);
    c.properties.topic_alias_maximum = Some(10);
    let (mut sub, _) = Client::connect_with(addr, c).await;
    sub.subscribe("oa/#", QoS::AtMostOnce).await;
    let mut publisher = Client::connect(addr, V5, "oa-pub", true).await;
    for _ in 0..3 {
        publisher.publish("oa/t", "x", QoS::AtMostOnce, false).await;
        let p = sub.recv_publish().await;
        assert_eq!((&*p.topic, p.properties.topic_alias), ("oa/t", None));
    }
}

// ----- receive_maximum ------------------------------------------------------------------------

/// A client with more unacknowledged QoS 2 PUBLISH than the broker's
/// Receive Maximum gets DISCONNECT 0x93 [MQTT-3.3.4-8].
#[tokio::test]
async fn receive_maximum_exceeded() {
    let mut cfg = config();
    cfg.receive_maximum = NonZeroU16::new(2).unwrap();
    let (_broker, addr) = start(cfg).await;
    let (mut c, ack) = Client::connect_with(addr, connect_packet(V5, "rx", true)).await;
    assert_eq!(ack.properties.receive_maximum, NonZeroU16::new(2));
    // Within the limit when each flow completes.
    for _ in 0..4 {
        c.publish("rx/t", "ok", QoS::ExactlyOnce, false).await;
    }
    for i in 1..=2 {
        let mut p = publish_packet("rx/t", "open", QoS::ExactlyOnce, false);
        p.packet_id = Some(pid(100 + i));
        c.send(p).await;
        assert!(matches!(c.recv().await, Packet::PubRec(r) if r.packet_id == pid(100 + i)));
    }
    // Releasing one makes room for one.
    c.send(PubRel::new(pid(101))).await;
    assert!(matches!(c.recv().await, Packet::PubComp(_)));
    let mut p = publish_packet("rx/t", "open", QoS::ExactlyOnce, false);
    p.packet_id = Some(pid(103));
    c.send(p.clone()).await;
    assert!(matches!(c.recv().await, Packet::PubRec(_)));
    p.packet_id = Some(pid(104));
    c.send(p).await;
    c.expect_disconnect(ReasonCode::ReceiveMaximumExceeded)
        .await;
}

// ----- other announced limits -----------------------------------------------------------------

/// `max_session_expiry_interval` caps the client's request and is announced.
#[tokio::test]
async fn max_session_expiry_interval() {
    let mut cfg = config();
    cfg.max_session_expiry_interval = 10;
    let (_broker, addr) = start(cfg).await;
    let (_c, ack) = Client::connect_v5_persistent(addr, "mx", true, 3600).await;
    assert_eq!(ack.properties.session_expiry_interval, Some(10));
    let (_c, ack) = Client::connect_v5_persistent(addr, "my", true, 5).await;
    assert_eq!(ack.properties.session_expiry_interval, None);
}

/// `maximum_qos = 1`: announced, subscriptions granted at most QoS 1, a QoS 2
/// PUBLISH is DISCONNECT 0x9B and a QoS 2 will is refused (CONNACK 0x9B).
#[tokio::test]
async fn maximum_qos() {
    let mut cfg = config();
    cfg.maximum_qos = QoS::AtLeastOnce;
    let (_broker, addr) = start(cfg).await;
    let (mut c, ack) = Client::connect_with(addr, connect_packet(V5, "mq2", true)).await;
    assert_eq!(ack.properties.maximum_qos, Some(QoS::AtLeastOnce));
    let ack = c
        .subscribe_opts("mq2/#", SubscriptionOptions::new(QoS::ExactlyOnce), None)
        .await;
    assert_eq!(ack.reasons, vec![ReasonCode::GrantedQoS1]);
    let mut p = publish_packet("mq2/t", "x", QoS::ExactlyOnce, false);
    p.packet_id = Some(pid(1));
    c.send(p).await;
    c.expect_disconnect(ReasonCode::QoSNotSupported).await;

    let mut w = connect_packet(V5, "mq2-will", true);
    let mut will = Will::new(mqtt_codec::TopicName::try_from("w").unwrap(), "x");
    will.qos = QoS::ExactlyOnce;
    w.will = Some(will);
    let (mut refused, ack) = Client::connect_raw(addr, w).await;
    assert_eq!(ack.reason, ReasonCode::QoSNotSupported);
    refused.expect_closed().await;
}

/// `retain_available = false`: announced, a retained PUBLISH is DISCONNECT
/// 0x9A.
#[tokio::test]
async fn retain_not_available() {
    let mut cfg = config();
    cfg.retain_available = false;
    let (_broker, addr) = start(cfg).await;
    let (mut c, ack) = Client::connect_with(addr, connect_packet(V5, "ra", true)).await;
    assert_eq!(ack.properties.retain_available, Some(false));
    c.publish("ra/t", "plain", QoS::AtMostOnce, false).await;
    c.send(publish_packet("ra/t", "kept", QoS::AtMostOnce, true))
        .await;
    c.expect_disconnect(ReasonCode::RetainNotSupported).await;
}

// ----- max_subscriptions_per_client -----------------------------------------------------------

/// A filter that would add a subscription beyond
/// `max_subscriptions_per_client` is refused in SUBACK (5.0: 0x97 Quota
/// exceeded; 3.1.1: 0x80), the others of the SUBSCRIBE granted; the same
/// filter again (in the same SUBSCRIBE or a later one) replaces its
/// subscription and is granted at the limit; UNSUBSCRIBE makes room. The
/// limit is per client: another subscribes as much.
async fn max_subscriptions_per_client(version: ProtocolVersion) {
    let mut cfg = config();
    cfg.max_subscriptions_per_client = 2;
    let (broker, addr) = start(cfg).await;
    let refused = if version.is_v5() {
        ReasonCode::QuotaExceeded
    } else {
        ReasonCode::UnspecifiedError
    };
    let mut c = Client::connect(addr, version, "ms", true).await;
    let ack = c
        .subscribe_many(&[
            ("ms/a", QoS::AtLeastOnce),
            ("ms/b", QoS::AtLeastOnce),
            ("ms/c", QoS::AtLeastOnce),
            ("ms/a", QoS::AtMostOnce),
        ])
        .await;
    assert_eq!(
        ack.reasons,
        [
            ReasonCode::GrantedQoS1,
            ReasonCode::GrantedQoS1,
            refused,
            ReasonCode::Success
        ]
    );
    if !version.is_v5() {
        assert_eq!(refused.as_u8(), 0x80);
    }
    // At the limit: replacing is granted, a new filter is not.
    c.subscribe("ms/b", QoS::ExactlyOnce).await;
    let ack = c
        .subscribe_opts("ms/d", SubscriptionOptions::new(QoS::AtMostOnce), None)
        .await;
    assert_eq!(ack.reasons, [refused]);
    assert_eq!(broker.stats().subscriptions_refused, 2);
    assert_eq!(broker.stats().subscriptions, 2);

    // A refused filter receives nothing; the granted ones do.
    let mut publisher = Client::connect(addr, V5, "ms-pub", true).await;
    publisher
        .publish("ms/c", "no", QoS::AtMostOnce, false)
        .await;
    publisher
        .publish("ms/d", "no", QoS::AtMostOnce, false)
        .await;
    publisher
        .publish("ms/a", "yes", QoS::AtMostOnce, false)
        .await;
    let p = c.recv_publish().await;
    assert_eq!((&*p.topic, text(&p)), ("ms/a", "yes"));
    c.expect_nothing().await;

    // Another client is not limited by this one.
    let mut other = Client::connect(addr, version, "ms-other", true).await;
    other.subscribe("ms/c", QoS::AtMostOnce).await;
    other.subscribe("ms/d", QoS::AtMostOnce).await;

    // UNSUBSCRIBE makes room.
    c.unsubscribe("ms/b").await;
    c.subscribe("ms/d", QoS::AtMostOnce).await;
    publisher
        .publish("ms/d", "now", QoS::AtMostOnce, false)
        .await;
    let p = c.recv_publish().await;
    assert_eq!((&*p.topic, text(&p)), ("ms/d", "now"));
    assert_eq!(broker.stats().subscriptions_refused, 2);
}

#[tokio::test]
async fn max_subscriptions_per_client_v311() {
    max_subscriptions_per_client(V3_1_1).await;
}

#[tokio::test]
async fn max_subscriptions_per_client_v5() {
    max_subscriptions_per_client(V5).await;
}

/// A resumed session's subscriptions count against the limit: it is not
/// escaped by reconnecting.
#[tokio::test]
async fn max_subscriptions_per_client_counts_resumed_subscriptions() {
    let mut cfg = config();
    cfg.max_subscriptions_per_client = 1;
    let (_broker, addr) = start(cfg).await;
    let mut c = Client::connect(addr, V3_1_1, "msr", false).await;
    c.subscribe("msr/a", QoS::AtLeastOnce).await;
    c.disconnect().await;
    let mut c = Client::connect(addr, V3_1_1, "msr", false).await;
    let ack = c
        .subscribe_opts("msr/b", SubscriptionOptions::new(QoS::AtLeastOnce), None)
        .await;
    assert_eq!(ack.reasons, [ReasonCode::UnspecifiedError]);
    c.subscribe("msr/a", QoS::AtMostOnce).await;
}

// ----- max_retained_messages ------------------------------------------------------------------

/// A retained PUBLISH to a new topic while `max_retained_messages` topics
/// have one is delivered and acknowledged as usual, but not retained (and
/// counted); replacing and clearing retained messages always works, and
/// clearing one makes room.
#[tokio::test]
async fn max_retained_messages() {
    let mut cfg = config();
    cfg.max_retained_messages = 2;
    let (broker, addr) = start(cfg).await;
    let mut live = Client::connect(addr, V5, "mr-live", true).await;
    live.subscribe("mr/#", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(addr, V5, "mr-pub", true).await;
    for t in ["mr/a", "mr/b", "mr/c"] {
        let reason = publisher
            .publish_acked(publish_packet(t, "1", QoS::AtLeastOnce, true))
            .await;
        assert_eq!(reason, ReasonCode::Success, "{t}");
        let p = live.recv_publish().await;
        assert_eq!((&*p.topic, text(&p)), (t, "1"));
    }
    assert_eq!(broker.stats().retained, 2);
    assert_eq!(broker.stats().retained_refused, 1);

    // At the limit: replacing and clearing work.
    publisher.publish("mr/a", "2", QoS::ExactlyOnce, true).await;
    publisher.publish("mr/b", "", QoS::AtMostOnce, true).await;
    assert_eq!(broker.stats().retained, 1);
    // Room again for a new topic.
    publisher.publish("mr/c", "2", QoS::AtLeastOnce, true).await;
    assert_eq!(broker.stats().retained, 2);
    assert_eq!(broker.stats().retained_refused, 1);

    let mut late = Client::connect(addr, V3_1_1, "mr-late", true).await;
    late.subscribe("mr/#", QoS::AtMostOnce).await;
    let mut got = [late.recv_publish().await, late.recv_publish().await]
        .iter()
        .map(|p| (p.topic.to_string(), text(p).to_owned(), p.retain))
        .collect::<Vec<_>>();
    got.sort();
    assert_eq!(
        got,
        [
            ("mr/a".to_owned(), "2".to_owned(), true),
            ("mr/c".to_owned(), "2".to_owned(), true)
        ]
    );
    late.expect_nothing().await;
}

// ----- max_retained_bytes ---------------------------------------------------------------------

/// Retained messages are also bounded by their bytes (topic and payload):
/// one that would take the total beyond `max_retained_bytes` is delivered
/// and acknowledged, not retained (and counted); replacing one by a larger
/// one beyond the limit leaves the topic without a retained message rather
/// than with the stale one; clearing makes room.
#[tokio::test]
async fn max_retained_bytes() {
    let mut cfg = config();
    // Two messages of 4 + 40 bytes fit, three do not.
    cfg.max_retained_bytes = 100;
    let (broker, addr) = start(cfg).await;
    let mut live = Client::connect(addr, V5, "mrb-live", true).await;
    live.subscribe("mrb/#", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(addr, V5, "mrb-pub", true).await;
    let forty = "x".repeat(40);
    for t in ["mrb/a", "mrb/b", "mrb/c"] {
        let reason = publisher
            .publish_acked(publish_packet(t, &forty, QoS::AtLeastOnce, true))
            .await;
        assert_eq!(reason, ReasonCode::Success, "{t}");
        let p = live.recv_publish().await;
        assert_eq!((&*p.topic, text(&p)), (t, forty.as_str()));
    }
    assert_eq!(broker.stats().retained, 2);
    assert_eq!(broker.stats().retained_refused, 1);

    // Replacing by a smaller one works, by one beyond the limit clears.
    publisher
        .publish("mrb/a", "small", QoS::ExactlyOnce, true)
        .await;
    assert_eq!(broker.stats().retained, 2);
    publisher
        .publish("mrb/b", &"y".repeat(95), QoS::ExactlyOnce, true)
        .await;
    assert_eq!(broker.stats().retained, 1);
    assert_eq!(broker.stats().retained_refused, 2);
    // Room again.
    publisher
        .publish("mrb/c", &forty, QoS::ExactlyOnce, true)
        .await;
    assert_eq!(broker.stats().retained, 2);

    let mut late = Client::connect(addr, V3_1_1, "mrb-late", true).await;
    late.subscribe("mrb/#", QoS::AtMostOnce).await;
    let mut got = [late.recv_publish().await, late.recv_publish().await]
        .iter()
        .map(|p| (p.topic.to_string(), text(p).to_owned()))
        .collect::<Vec<_>>();
    got.sort();
    assert_eq!(
        got,
        [
            ("mrb/a".to_owned(), "small".to_owned()),
            ("mrb/c".to_owned(), forty.clone())
        ]
    );
    late.expect_nothing().await;
}

// ----- max_sessions ---------------------------------------------------------------------------

/// A CONNECT that would create a session beyond `max_sessions` (sessions of
/// connected clients and of absent ones) is refused (5.0: CONNACK 0x97
/// Quota exceeded; 3.1.1: 0x03 Server unavailable); resuming an absent
/// client's session and taking over a connected one work at the limit, and
/// once a session ends there is room again.
async fn max_sessions(version: ProtocolVersion) {
    let mut cfg = config();
    cfg.max_sessions = 2;
    let (broker, addr) = start(cfg).await;
    let persistent = |id: &str| {
        let mut c = connect_packet(version, id, false);
        if version.is_v5() {
            c.properties.session_expiry_interval = Some(3600);
        }
        c
    };
    let (absent, _) = Client::connect_with(addr, persistent("mss-absent")).await;
    absent.disconnect().await;
    let (mut connected, _) =
        Client::connect_with(addr, connect_packet(version, "mss-on", true)).await;
    wait_until("two sessions", || broker.stats().clients_total == 2).await;

    let (mut refused, ack) = Client::connect_raw(addr, persistent("mss-new")).await;
    let want = if version.is_v5() {
        ReasonCode::QuotaExceeded
    } else {
        // The 3.1.1 return code 0x03, as decoded.
        ReasonCode::ServerUnavailable
    };
    assert_eq!(ack.reason, want);
    assert!(!ack.session_present);
    refused.expect_closed().await;
    // Neither a clean one.
    let (_, ack) = Client::connect_raw(addr, connect_packet(version, "mss-clean", true)).await;
    assert_eq!(ack.reason, want);
    assert_eq!(broker.stats().sessions_refused, 2);
    connected.expect_nothing().await;

    // Resuming and taking over add no session.
    let (mut resumed, ack) = Client::connect_with(addr, persistent("mss-absent")).await;
    assert!(ack.session_present);
    resumed.expect_nothing().await;
    let (taker, _) = Client::connect_with(addr, connect_packet(version, "mss-on", true)).await;
    connected.expect_closed().await;
    assert_eq!(broker.stats().clients_total, 2);
    assert_eq!(broker.stats().sessions_refused, 2);

    // A clean session ends with its connection: room again.
    taker.disconnect().await;
    wait_until("the session to end", || broker.stats().clients_total == 1).await;
    let (mut new, _) = Client::connect_with(addr, persistent("mss-new")).await;
    new.subscribe("mss/t", QoS::AtMostOnce).await;
}

#[tokio::test]
async fn max_sessions_v311() {
    max_sessions(V3_1_1).await;
}

#[tokio::test]
async fn max_sessions_v5() {
    max_sessions(V5).await;
}

/// The limits refuse nonsense (zero) and default to finite values.
#[test]
fn memory_limits_validated() {
    let c = mqtt_broker_core::Config::default();
    assert_eq!(c.max_subscriptions_per_client, 1_000);
    assert_eq!(c.max_retained_messages, 1_000_000);
    assert_eq!(c.max_retained_bytes, 256 << 20);
    assert_eq!(c.max_sessions, 200_000);
    assert!(c.validate().is_ok());
    for (name, set) in [
        (
            "max_subscriptions_per_client",
            (|c: &mut mqtt_broker_core::Config| c.max_subscriptions_per_client = 0)
                as fn(&mut mqtt_broker_core::Config),
        ),
        ("max_retained_messages", |c| c.max_retained_messages = 0),
        ("max_retained_bytes", |c| c.max_retained_bytes = 0),
        ("max_sessions", |c| c.max_sessions = 0),
    ] {
        let mut c = config();
        set(&mut c);
        let err = c.validate().unwrap_err();
        assert!(err.contains(name), "{err}");
    }
}
