#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Bad input: malformed packets, protocol violations, oversized packets,
//! silent sockets, and subscribers that never read. In every case the broker
//! closes the offender (MQTT 5.0: DISCONNECT with the right reason first),
//! stays up and goes on serving the others, with bounded memory.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqtt_broker_core::Config;
use mqtt_codec::{
    ConnAck, Decoder, Encoder, Packet, ProtocolVersion, PubAck, PubComp, PubRec, PubRel, Publish,
    QoS, ReasonCode, SubAck, Subscribe, SubscriptionOptions,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

mod common;
use common::{Client as Raw, TIMEOUT, V3_1_1, V5, connect_packet, pid, s as utf8, start};

// ----- helpers (the raw client is tests/common's) -------------------------------------------

fn config() -> Config {
    let mut c = Config::default();
    c.listeners = vec!["127.0.0.1:0".parse().unwrap()];
    c.sys_interval = Duration::ZERO;
    c.connect_timeout = Duration::from_secs(3);
    c
}

fn encode(version: ProtocolVersion, p: impl Into<Packet>) -> BytesMut {
    let mut out = BytesMut::new();
    Encoder::new(version).encode(&p.into(), &mut out).unwrap();
    out
}

/// The broker still serves new clients: a fresh subscriber gets a message
/// from a fresh publisher, in both versions.
async fn still_serves(addr: SocketAddr) {
    for (version, qos) in [(V5, QoS::AtLeastOnce), (V3_1_1, QoS::ExactlyOnce)] {
        let mut sub = Raw::connect(addr, version, "alive-sub", true).await;
        sub.subscribe("alive/t", qos).await;
        let mut publ = Raw::connect(addr, version, "alive-pub", true).await;
        let mut p = Publish::new(
            mqtt_codec::PublishTopic::try_from("alive/t").unwrap(),
            Bytes::from_static(b"still here"),
        );
        p.qos = QoS::AtLeastOnce;
        p.packet_id = Some(pid(7));
        publ.send(p).await;
        match publ.recv().await {
            Packet::PubAck(a) => assert_eq!(a.packet_id, pid(7)),
            other => panic!("expected PUBACK, got {other:?}"),
        }
        match sub.recv().await {
            Packet::Publish(p) => {
                assert_eq!(p.topic.as_str(), "alive/t");
                assert_eq!(&p.payload[..], b"still here");
                assert_eq!(p.qos, QoS::AtLeastOnce);
            }
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }
}

// ----- malformed packets --------------------------------------------------------------------------

/// Malformed packets after a successful CONNECT, as raw bytes.
fn malformed() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        // Remaining Length in five bytes [MQTT-1.5.5-1]: at most four.
        (
            "remaining length of five bytes",
            vec![0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
        ),
        // Remaining Length not in its minimal form (0 written in two bytes).
        ("non-minimal remaining length", vec![0xC0, 0x80, 0x00]),
        // PUBREL with header flags 0000 instead of 0010 [MQTT-2.1.3-1].
        ("PUBREL reserved flags", vec![0x60, 0x02, 0x00, 0x01]),
        // SUBSCRIBE with header flags 0000.
        (
            "SUBSCRIBE reserved flags",
            vec![0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00],
        ),
        // PINGREQ with a flag bit set.
        ("PINGREQ reserved flags", vec![0xC1, 0x00]),
        // PUBLISH whose topic is not UTF-8 (0xC3 0x28) [MQTT-1.5.3-1].
        (
            "invalid UTF-8 topic",
            vec![0x30, 0x05, 0x00, 0x02, 0xC3, 0x28, b'x'],
        ),
        // PUBLISH whose topic holds U+0000 [MQTT-1.5.3-2].
        (
            "U+0000 in topic",
            vec![0x30, 0x05, 0x00, 0x02, b'a', 0x00, b'x'],
        ),
        // PUBLISH with both QoS bits set [MQTT-3.3.1-4].
        (
            "QoS 3",
            vec![0x36, 0x07, 0x00, 0x01, b't', 0x00, 0x01, b'x', b'y'],
        ),
        // Packet type 0 is reserved.
        ("reserved packet type 0", vec![0x00, 0x00]),
        // A packet whose Remaining Length runs past its content: SUBSCRIBE
        // whose filter length says 9 bytes but 1 follows.
        (
            "length past the end",
            vec![0x82, 0x06, 0x00, 0x01, 0x00, 0x09, b'a', 0x00],
        ),
    ]
}

/// The v5 form of some of them needs a properties length: insert it.
fn v5_form(bytes: &[u8], what: &str) -> Vec<u8> {
    match what {
        // PUBLISH QoS 0: topic, then properties length, then payload.
        "invalid UTF-8 topic" | "U+0000 in topic" => {
            vec![0x30, 0x06, 0x00, 0x02, bytes[4], bytes[5], 0x00, b'x']
        }
        _ => bytes.to_vec(),
    }
}

async fn malformed_after_connect(version: ProtocolVersion) {
    let (broker, addr) = start(config()).await;
    for (what, bytes) in malformed() {
        let bytes = if version.is_v5() {
            v5_form(&bytes, what)
        } else {
            bytes
        };
        let mut c = Raw::connect(addr, version, "bad", true).await;
        c.send_bytes(&bytes).await;
        // [MQTT-4.13.1-1] / MQTT 5.0 4.13: malformed -> DISCONNECT 0x81 (v5),
        // then close.
        let got = c.expect_closed_within(TIMEOUT).await;
        if version.is_v5() {
            match got.as_slice() {
                [Packet::Disconnect(d)] => {
                    assert_eq!(d.reason, ReasonCode::MalformedPacket, "{what}: {d:?}");
                }
                other => panic!("{what}: expected DISCONNECT 0x81, got {other:?}"),
            }
        } else {
            assert!(got.is_empty(), "{what}: expected a bare close, got {got:?}");
        }
    }
    // Every offender is gone.
    assert_eq!(broker.stats().clients_connected, 0);
    still_serves(addr).await;
}

#[tokio::test]
async fn malformed_packets_v5() {
    malformed_after_connect(V5).await;
}

#[tokio::test]
async fn malformed_packets_v311() {
    malformed_after_connect(V3_1_1).await;
}

/// A v5 client sending garbage after CONNECT: DISCONNECT 0x81 for what
/// cannot be parsed, 0x82 for well-formed packets that break the protocol.
#[tokio::test]
async fn v5_garbage_after_connect() {
    let (_broker, addr) = start(config()).await;
    // Random bytes that start like a PUBLISH with an invalid QoS.
    let mut c = Raw::connect(addr, V5, "garbage", true).await;
    c.send_bytes(&[0x3E, 0x0A, 0xDE, 0xAD, 0xBE, 0xEF, 0, 1, 2, 3, 4, 5])
        .await;
    c.expect_disconnect(ReasonCode::MalformedPacket).await;

    // A second CONNECT [MQTT-3.1.0-2].
    let mut c = Raw::connect(addr, V5, "second", true).await;
    c.send(connect_packet(V5, "second", true)).await;
    c.expect_disconnect(ReasonCode::ProtocolError).await;

    // A CONNACK sent to the server.
    let mut c = Raw::connect(addr, V5, "connack", true).await;
    c.send(ConnAck::new(ReasonCode::Success)).await;
    c.expect_disconnect(ReasonCode::ProtocolError).await;

    // A SUBACK sent to the server.
    let mut c = Raw::connect(addr, V5, "suback", true).await;
    c.send(SubAck::new(pid(1), vec![ReasonCode::Success])).await;
    c.expect_disconnect(ReasonCode::ProtocolError).await;

    // A PUBLISH QoS 1 with packet id 0 (raw: not encodable).
    let mut c = Raw::connect(addr, V5, "pid0", true).await;
    c.send_bytes(&[0x32, 0x06, 0x00, 0x01, b't', 0x00, 0x00, 0x00])
        .await;
    c.expect_disconnect(ReasonCode::MalformedPacket).await;

    // A wildcard in a PUBLISH topic [MQTT-3.3.2-2]: 0x90 Topic Name invalid
    // (raw: the encoder refuses it).
    let mut c = Raw::connect(addr, V5, "wildcard", true).await;
    c.send_bytes(&[0x30, 0x07, 0x00, 0x03, b'a', b'/', b'+', 0x00, b'x'])
        .await;
    c.expect_disconnect(ReasonCode::TopicNameInvalid).await;

    // A Topic Alias above the Topic Alias Maximum the broker announced (64
    // by default) [MQTT-3.3.2-9]: 0x94 Topic Alias invalid.
    let mut c = Raw::connect(addr, V5, "alias", true).await;
    let mut p = Publish::new(
        mqtt_codec::PublishTopic::try_from("a/b").unwrap(),
        Bytes::from_static(b"x"),
    );
    p.properties.to_mut().topic_alias = NonZeroU16::new(65);
    c.send(p).await;
    c.expect_disconnect(ReasonCode::TopicAliasInvalid).await;

    // An empty topic with an alias that was never set: protocol error.
    let mut c = Raw::connect(addr, V5, "alias-unknown", true).await;
    let mut p = Publish::new(mqtt_codec::PublishTopic::empty(), Bytes::from_static(b"x"));
    p.properties.to_mut().topic_alias = NonZeroU16::new(3);
    c.send(p).await;
    c.expect_disconnect(ReasonCode::ProtocolError).await;

    still_serves(addr).await;
}

/// More unacknowledged QoS 2 PUBLISH packets than the Receive Maximum the
/// broker announced [MQTT-3.3.4-9]: DISCONNECT 0x93.
#[tokio::test]
async fn receive_maximum_exceeded() {
    let mut cfg = config();
    cfg.receive_maximum = NonZeroU16::new(4).unwrap();
    let (_broker, addr) = start(cfg).await;
    let mut c = Raw::tcp(addr, V5).await;
    c.send(connect_packet(V5, "flooding", true)).await;
    match c.recv().await {
        Packet::ConnAck(a) => {
            assert_eq!(a.reason, ReasonCode::Success);
            assert_eq!(a.properties.receive_maximum, NonZeroU16::new(4));
        }
        other => panic!("{other:?}"),
    }
    for i in 1..=5 {
        let mut p = Publish::new(
            mqtt_codec::PublishTopic::try_from("rm/t").unwrap(),
            Bytes::from_static(b"x"),
        );
        p.qos = QoS::ExactlyOnce;
        p.packet_id = Some(pid(i));
        c.send(p).await;
    }
    let got = c.expect_closed_within(TIMEOUT).await;
    let recs = got
        .iter()
        .filter(|p| matches!(p, Packet::PubRec(_)))
        .count();
    assert_eq!(recs, 4, "{got:?}");
    match got.last() {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, ReasonCode::ReceiveMaximumExceeded),
        other => panic!("expected DISCONNECT 0x93 last, got {other:?} in {got:?}"),
    }
    still_serves(addr).await;
}

#[tokio::test]
async fn second_connect_v311_closes() {
    let (_broker, addr) = start(config()).await;
    let mut c = Raw::connect(addr, V3_1_1, "second", true).await;
    c.send(connect_packet(V3_1_1, "second", true)).await;
    c.expect_disconnect(ReasonCode::ProtocolError).await;
    still_serves(addr).await;
}

/// The first packet is not CONNECT [MQTT-3.1.0-1]: closed without CONNACK.
#[tokio::test]
async fn first_packet_not_connect() {
    let (broker, addr) = start(config()).await;
    let firsts: Vec<(&str, BytesMut)> = vec![
        ("PINGREQ", encode(V3_1_1, Packet::PingReq)),
        (
            "PUBLISH",
            encode(
                V3_1_1,
                Publish::new(
                    mqtt_codec::PublishTopic::try_from("a/b").unwrap(),
                    Bytes::from_static(b"x"),
                ),
            ),
        ),
        (
            "SUBSCRIBE",
            encode(
                V3_1_1,
                Subscribe::new(pid(1), utf8("#"), SubscriptionOptions::new(QoS::AtMostOnce)),
            ),
        ),
        ("garbage", BytesMut::from(&b"GET / HTTP/1.1\r\n\r\n"[..])),
        // A CONNECT with an unknown protocol name.
        (
            "bad protocol name",
            BytesMut::from(&[0x10, 0x0C, 0, 4, b'M', b'Q', b'X', b'X', 4, 2, 0, 0, 0, 0][..]),
        ),
    ];
    for (what, bytes) in firsts {
        for version in [V3_1_1, V5] {
            let mut c = Raw::tcp(addr, version).await;
            c.send_bytes(&bytes).await;
            let got = c.expect_closed_within(TIMEOUT).await;
            // At most a refusing CONNACK (MQTT 5.0: 0x84 for a bad
            // protocol name), never anything else.
            assert!(
                got.iter()
                    .all(|p| matches!(p, Packet::ConnAck(a) if a.reason.is_error())),
                "{what}: {got:?}"
            );
            if what != "bad protocol name" {
                assert!(got.is_empty(), "{what}: expected a bare close, got {got:?}");
            }
        }
    }
    // Every offender is gone.
    assert_eq!(broker.stats().clients_connected, 0);
    still_serves(addr).await;
}

// ----- oversized packets --------------------------------------------------------------------------

/// A packet over `max_packet_size` is refused from its fixed header: the
/// connection is closed (v5: DISCONNECT 0x95) although the body never came.
async fn oversized(version: ProtocolVersion) {
    let mut cfg = config();
    cfg.max_packet_size = NonZeroU32::new(1024).unwrap();
    let (broker, addr) = start(cfg).await;
    let mut c = Raw::connect(addr, version, "big", true).await;
    // PUBLISH of 1 MiB: only the fixed header and a few bytes are sent.
    c.send_bytes(&[0x30, 0x80, 0x80, 0x40, 0x00, 0x01, b't'])
        .await;
    c.expect_disconnect(ReasonCode::PacketTooLarge).await;

    // Exactly at the limit is fine; one byte over is not (sent whole).
    let mut sub = Raw::connect(addr, version, "big-sub", true).await;
    sub.subscribe("big/#", QoS::AtMostOnce).await;
    let mut c = Raw::connect(addr, version, "big2", true).await;
    let mut p = Publish::new(
        mqtt_codec::PublishTopic::try_from("big/a").unwrap(),
        Bytes::new(),
    );
    let empty = p.packet_len(version).unwrap();
    // The fixed header is 3 bytes for both sizes.
    p.payload = Bytes::from(vec![b'x'; 1024 - empty - 1]);
    assert_eq!(p.packet_len(version).unwrap(), 1024);
    c.send(p.clone()).await;
    match sub.recv().await {
        Packet::Publish(got) => assert_eq!(got.payload.len(), p.payload.len()),
        other => panic!("expected PUBLISH, got {other:?}"),
    }
    p.payload = Bytes::from(vec![b'x'; 1024 - empty]);
    c.send(p).await;
    c.expect_disconnect(ReasonCode::PacketTooLarge).await;

    // An oversized CONNECT.
    let mut c = Raw::tcp(addr, version).await;
    let mut connect = connect_packet(version, "huge-connect", true);
    connect.username = Some(utf8(&"u".repeat(2000)));
    c.send(connect).await;
    let got = c.expect_closed_within(TIMEOUT).await;
    assert!(
        got.iter().all(|p| match p {
            Packet::ConnAck(a) => a.reason.is_error(),
            _ => false,
        }),
        "{got:?}"
    );

    sub.ping().await;
    drop(sub);
    still_serves(addr).await;
    drop(broker);
}

#[tokio::test]
async fn oversized_packets_v5() {
    oversized(V5).await;
}

#[tokio::test]
async fn oversized_packets_v311() {
    oversized(V3_1_1).await;
}

// ----- silent sockets -----------------------------------------------------------------------------

/// A socket that never sends CONNECT is closed after `connect_timeout`,
/// with nothing sent to it; a half-sent CONNECT too.
#[tokio::test]
async fn silent_socket_closed_after_connect_timeout() {
    let mut cfg = config();
    cfg.connect_timeout = Duration::from_millis(500);
    let (broker, addr) = start(cfg).await;
    let started = Instant::now();
    let mut silent = Raw::tcp(addr, V3_1_1).await;
    let mut partial = Raw::tcp(addr, V5).await;
    let bytes = encode(V5, connect_packet(V5, "partial", true));
    partial.send_bytes(&bytes[..bytes.len() / 2]).await;
    // Meanwhile others are served.
    still_serves(addr).await;
    let got = silent.expect_closed_within(Duration::from_secs(3)).await;
    assert!(got.is_empty(), "{got:?}");
    let got = partial.expect_closed_within(Duration::from_secs(3)).await;
    assert!(got.is_empty(), "{got:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(450),
        "closed too early: {took:?}"
    );
    let deadline = Instant::now() + TIMEOUT;
    while broker.stats().connections != 0 {
        assert!(Instant::now() < deadline, "{:?}", broker.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    still_serves(addr).await;
}

// ----- subscribers that never read ----------------------------------------------------------------

/// The memory-heavy tests run one at a time, so that each one's RSS is its
/// own.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn vm_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS value");
    kib * 1024
}

/// Samples the process's RSS every 5 ms until dropped; keeps the maximum.
struct RssWatch {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssWatch {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicU64::new(vm_rss()));
        let thread = {
            let (stop, max) = (stop.clone(), max.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    max.fetch_max(vm_rss(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        Self {
            stop,
            max,
            thread: Some(thread),
        }
    }

    fn max(&self) -> u64 {
        self.max.fetch_max(vm_rss(), Ordering::Relaxed);
        self.max.load(Ordering::Relaxed)
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A subscriber that reads and acknowledges everything on its own task;
/// counts the messages whose topic starts with `count_prefix`, and reports
/// when a message on `marker` arrives.
fn reading_subscriber(
    read: OwnedReadHalf,
    mut write: OwnedWriteHalf,
    version: ProtocolVersion,
    marker: &'static str,
) -> (Arc<AtomicU64>, tokio::task::JoinHandle<u64>) {
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    let task = tokio::spawn(async move {
        let mut read = read;
        let mut decoder = Decoder::with_version(version);
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let enc = Encoder::new(version);
        loop {
            let mut out = BytesMut::new();
            while let Some(p) = decoder.decode(&mut buf).unwrap() {
                match p {
                    Packet::Publish(p) => {
                        if p.topic.as_str() == marker {
                            return c.load(Ordering::Relaxed);
                        }
                        c.fetch_add(1, Ordering::Relaxed);
                        match (p.qos, p.packet_id) {
                            (QoS::AtLeastOnce, Some(id)) => {
                                enc.encode(&PubAck::new(id).into(), &mut out).unwrap();
                            }
                            (QoS::ExactlyOnce, Some(id)) => {
                                enc.encode(&PubRec::new(id).into(), &mut out).unwrap();
                            }
                            _ => {}
                        }
                    }
                    Packet::PubRel(r) => {
                        enc.encode(&PubComp::new(r.packet_id).into(), &mut out)
                            .unwrap();
                    }
                    _ => {}
                }
            }
            if !out.is_empty() {
                write.write_all(&out).await.unwrap();
            }
            if read.read_buf(&mut buf).await.unwrap() == 0 {
                panic!("reading subscriber closed");
            }
        }
    });
    (count, task)
}

/// Publishes `n` messages of `size` bytes on `topic` at `qos` over one
/// connection, pipelined (at most `window` unacknowledged), completing the
/// QoS 1/2 flows; returns once every one is acknowledged (QoS 0: once a
/// PINGRESP came back after the last one).
async fn flood(
    addr: SocketAddr,
    version: ProtocolVersion,
    topic: &str,
    n: usize,
    size: usize,
    qos: QoS,
    window: usize,
) {
    let c = Raw::connect(addr, version, "flooder", true).await;
    let (mut read, mut write) = c.into_stream().into_split();
    let mut decoder = Decoder::with_version(version);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let enc = Encoder::new(version);
    let payload = Bytes::from(vec![b'p'; size]);
    let mut sent = 0usize;
    let mut done = 0usize;
    let mut next_id: u16 = 0;
    let mut out = BytesMut::with_capacity(window.max(64) * (size + 32));
    while done < n {
        // Fill the window.
        let room = if qos == QoS::AtMostOnce {
            256.min(n - sent)
        } else {
            (window - (sent - done)).min(n - sent)
        };
        for _ in 0..room {
            let mut p = Publish::new(
                mqtt_codec::PublishTopic::try_from(topic).unwrap(),
                payload.clone(),
            );
            p.qos = qos;
            if qos != QoS::AtMostOnce {
                next_id = next_id.checked_add(1).unwrap_or(1);
                p.packet_id = Some(pid(next_id));
            }
            enc.encode(&p.into(), &mut out).unwrap();
            sent += 1;
        }
        if qos == QoS::AtMostOnce && sent == n {
            enc.encode(&Packet::PingReq, &mut out).unwrap();
        }
        if !out.is_empty() {
            write.write_all(&out).await.unwrap();
            out.clear();
        }
        if qos == QoS::AtMostOnce {
            done = sent;
            if sent < n {
                continue;
            }
            // Wait for PINGRESP.
            loop {
                if let Some(p) = decoder.decode(&mut buf).unwrap() {
                    assert_eq!(p, Packet::PingResp);
                    return;
                }
                assert!(read.read_buf(&mut buf).await.unwrap() > 0, "closed");
            }
        }
        // Read acknowledgements until there is room again.
        let want = if sent == n { n } else { done + window / 2 };
        while done < want.min(sent) {
            let mut replies = BytesMut::new();
            while let Some(p) = decoder.decode(&mut buf).unwrap() {
                match p {
                    Packet::PubAck(a) => {
                        assert!(!a.reason.is_error(), "{a:?}");
                        done += 1;
                    }
                    Packet::PubRec(r) => {
                        assert!(!r.reason.is_error(), "{r:?}");
                        enc.encode(&PubRel::new(r.packet_id).into(), &mut replies)
                            .unwrap();
                    }
                    Packet::PubComp(_) => done += 1,
                    other => panic!("publisher got {other:?}"),
                }
            }
            if !replies.is_empty() {
                write.write_all(&replies).await.unwrap();
            }
            if done >= want.min(sent) {
                break;
            }
            assert!(read.read_buf(&mut buf).await.unwrap() > 0, "closed");
        }
    }
}

/// A subscriber that subscribes and then never reads while 100,000 messages
/// of 1 KiB (about 100 MiB) are published to its filter: the publisher is
/// never blocked for good, the broker's memory stays bounded, the messages
/// it cannot take are dropped and counted, and another subscriber still gets
/// its messages.
async fn stalled_subscriber(qos: QoS) {
    const N: usize = 100_000;
    const SIZE: usize = 1024;
    let _heavy = HEAVY.lock().await;
    let mut cfg = config();
    cfg.max_pending_bytes = 64 * 1024;
    cfg.max_queued_messages = 1_000;
    cfg.max_inflight = NonZeroU16::new(100).unwrap();
    let (broker, addr) = start(cfg).await;

    // The stalled subscriber: a raw socket with a small receive buffer, that
    // subscribes and never reads again.
    let mut stalled = Raw::tcp_small_buffer(addr, V5).await;
    stalled.send(connect_packet(V5, "stalled", true)).await;
    assert!(matches!(stalled.recv().await, Packet::ConnAck(_)));
    stalled.subscribe("flood/#", qos).await;

    // Another subscriber, reading, on the same filter and a marker topic.
    let mut other = Raw::connect(addr, V3_1_1, "reader", true).await;
    other.subscribe("flood/#", qos).await;
    other.subscribe("marker", QoS::AtMostOnce).await;
    let (read, write) = other.into_stream().into_split();
    let (count, reader) = reading_subscriber(read, write, V3_1_1, "marker");

    let watch = RssWatch::start();
    let before = vm_rss();
    let started = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(120),
        flood(addr, V3_1_1, "flood/data", N, SIZE, qos, 500),
    )
    .await
    .expect("the publisher was blocked");
    let took = started.elapsed();

    // The marker reaches the reading subscriber after the flood.
    let mut marker = Raw::connect(addr, V5, "marker-pub", true).await;
    let mut m = Publish::new(
        mqtt_codec::PublishTopic::try_from("marker").unwrap(),
        Bytes::from_static(b"end"),
    );
    m.qos = QoS::AtMostOnce;
    marker.send(m).await;
    marker.ping().await;
    let received = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the reading subscriber did not get the marker")
        .unwrap();
    let peak = watch.max();
    drop(watch);
    let stats = broker.stats();
    let growth = peak.saturating_sub(before);
    eprintln!(
        "{qos:?}: published {N} x {SIZE} B in {took:?}; RSS before {} MiB, peak growth {} MiB; \
         reader got {received}; stats {stats:?}",
        before >> 20,
        growth >> 20
    );
    assert!(
        growth < 64 << 20,
        "memory grew by {} MiB for {} MiB published",
        growth >> 20,
        (N * SIZE) >> 20
    );
    assert_eq!(count.load(Ordering::Relaxed), received);
    // The broker received every message, and has either sent or dropped
    // each copy (QoS 1: a bounded number may still sit in the stalled
    // subscriber's window and queue).
    assert!(stats.publish_received >= N as u64, "{stats:?}");
    let copies = 2 * N as u64 + 1; // two subscribers, and the marker
    let accounted = stats.publish_sent + stats.publish_dropped;
    if qos == QoS::AtMostOnce {
        assert_eq!(accounted, copies, "{stats:?}");
    } else {
        assert!(accounted <= copies, "{stats:?}");
        // At most 1,000 queued behind each subscriber's window.
        assert!(accounted + 2_000 >= copies, "{stats:?}");
    }
    // Most of the flood could not go to the stalled subscriber.
    assert!(stats.publish_dropped >= (N / 2) as u64, "{stats:?}");
    // The other subscriber still got messages, most of them.
    assert!(received >= (N / 2) as u64, "reader got only {received}");

    // The stalled subscriber is still connected; the broker serves others.
    still_serves(addr).await;
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_subscriber_qos0() {
    stalled_subscriber(QoS::AtMostOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_subscriber_qos1() {
    stalled_subscriber(QoS::AtLeastOnce).await;
}

/// More than 65,535 QoS 2 messages queued for one subscriber: packet
/// identifiers still in flight are never reused, and every message arrives
/// exactly once (Mosquitto 2.0.11 loses messages here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_more_than_65535_queued() {
    const N: usize = 70_000;
    let _heavy = HEAVY.lock().await;
    let mut cfg = config();
    cfg.max_queued_messages = 100_000;
    cfg.max_inflight = NonZeroU16::MAX;
    cfg.max_pending_bytes = 64 << 20;
    let (broker, addr) = start(cfg).await;

    let mut sub = Raw::connect(addr, V3_1_1, "q2-sub", true).await;
    sub.subscribe("q2/#", QoS::ExactlyOnce).await;

    // Publish everything first, while the subscriber does not read: all of
    // it is in flight or queued for it at once.
    let publisher = async {
        let c = Raw::connect(addr, V3_1_1, "q2-pub", true).await;
        let (mut read, mut write) = c.into_stream().into_split();
        let enc = Encoder::new(V3_1_1);
        let mut decoder = Decoder::with_version(V3_1_1);
        let mut buf = BytesMut::new();
        let mut next_id: u16 = 0;
        let (mut sent, mut done) = (0usize, 0usize);
        while done < N {
            let mut out = BytesMut::new();
            while sent < N && sent - done < 500 {
                let mut p = Publish::new(
                    mqtt_codec::PublishTopic::try_from("q2/t").unwrap(),
                    Bytes::from(format!("{sent}")),
                );
                p.qos = QoS::ExactlyOnce;
                next_id = next_id.checked_add(1).unwrap_or(1);
                p.packet_id = Some(pid(next_id));
                enc.encode(&p.into(), &mut out).unwrap();
                sent += 1;
            }
            while let Some(p) = decoder.decode(&mut buf).unwrap() {
                match p {
                    Packet::PubRec(r) => {
                        enc.encode(&PubRel::new(r.packet_id).into(), &mut out)
                            .unwrap();
                    }
                    Packet::PubComp(_) => done += 1,
                    other => panic!("publisher got {other:?}"),
                }
            }
            if !out.is_empty() {
                write.write_all(&out).await.unwrap();
            }
            if done < N && read.read_buf(&mut buf).await.unwrap() == 0 {
                panic!("publisher closed");
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), publisher)
        .await
        .expect("publisher timed out");
    assert_eq!(broker.stats().publish_received, N as u64);

    // Now read and complete every flow, checking that no id comes again
    // while it is in flight and that every message comes exactly once.
    let (stream, mut buf) = sub.into_parts();
    let (mut read, mut write) = stream.into_split();
    let enc = Encoder::new(V3_1_1);
    let mut decoder = Decoder::with_version(V3_1_1);
    let mut in_flight: HashMap<u16, usize> = HashMap::new();
    let mut seen: HashSet<usize> = HashSet::with_capacity(N);
    let mut completed = 0usize;
    let mut max_in_flight = 0usize;
    let receive = async {
        while completed < N {
            let mut out = BytesMut::new();
            while let Some(p) = decoder.decode(&mut buf).unwrap() {
                match p {
                    Packet::Publish(p) => {
                        assert_eq!(p.qos, QoS::ExactlyOnce);
                        assert!(!p.dup, "DUP without a reconnection: {p:?}");
                        let id = p.packet_id.unwrap().get();
                        let n: usize = std::str::from_utf8(&p.payload).unwrap().parse().unwrap();
                        if let Some(old) = in_flight.insert(id, n) {
                            panic!(
                                "packet id {id} reused for message {n} while message {old} is in flight"
                            );
                        }
                        max_in_flight = max_in_flight.max(in_flight.len());
                        assert!(seen.insert(n), "message {n} received twice");
                        enc.encode(&PubRec::new(pid(id)).into(), &mut out).unwrap();
                    }
                    Packet::PubRel(r) => {
                        let id = r.packet_id.get();
                        assert!(
                            in_flight.remove(&id).is_some(),
                            "PUBREL for unknown id {id}"
                        );
                        enc.encode(&PubComp::new(r.packet_id).into(), &mut out)
                            .unwrap();
                        completed += 1;
                    }
                    other => panic!("subscriber got {other:?}"),
                }
            }
            if !out.is_empty() {
                write.write_all(&out).await.unwrap();
            }
            if completed < N && read.read_buf(&mut buf).await.unwrap() == 0 {
                panic!("subscriber closed after {completed} completed");
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), receive)
        .await
        .unwrap_or_else(|_| panic!("subscriber timed out"));
    assert_eq!(seen.len(), N);
    assert!(in_flight.is_empty());
    eprintln!("most QoS 2 messages in flight at once: {max_in_flight}");
    assert!(
        max_in_flight > 60_000,
        "the test did not fill the id space: {max_in_flight}"
    );
    let stats = broker.stats();
    assert_eq!(stats.publish_dropped, 0, "{stats:?}");
    // Nothing more comes.
    let mut buf2 = BytesMut::new();
    let more = tokio::time::timeout(Duration::from_millis(300), read.read_buf(&mut buf2)).await;
    assert!(more.is_err(), "unexpected {more:?} after the end: {buf2:?}");
}
