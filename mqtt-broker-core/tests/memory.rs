#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    unsafe_code
)]
//! Memory that a client's packets make the broker keep, measured on the
//! heap of this process: what is kept for long (retained messages,
//! subscriptions, topic aliases) is copied out of the read buffer its
//! packet came in, and counted against its limit with its properties.
//! The tests run one at a time, each measuring the heap around its own
//! traffic.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::Duration;

use bytes::BytesMut;
use common::*;
use mqtt_broker_core::Stats;
use mqtt_codec::{Encoder, Packet, ProtocolVersion, QoS, UserProperty};
use tokio::sync::Mutex;

// ----- helpers ----------------------------------------------------------------------------------

/// Live heap bytes of this process (every allocation through the global
/// allocator, counted).
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: forwards to `System`, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            LIVE.fetch_add(l.size() as isize, Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            LIVE.fetch_add(l.size() as isize, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size() as isize, Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            LIVE.fetch_add(new as isize - l.size() as isize, Relaxed);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Relaxed)
}

/// One test at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// `packet` encoded behind a QoS 0 PUBLISH of `junk` to "junk" (which
/// nobody subscribes to), to be sent in one write: the broker reads both
/// into one buffer, of which `packet`'s fields are slices once decoded.
fn behind_junk(version: ProtocolVersion, junk: &str, packet: impl Into<Packet>) -> BytesMut {
    let enc = Encoder::new(version);
    let mut out = BytesMut::new();
    let first = publish_packet("junk", junk, QoS::AtMostOnce, false);
    enc.encode(&first.into(), &mut out).unwrap();
    enc.encode(&packet.into(), &mut out).unwrap();
    out
}

fn show(what: &str, st: &Stats) {
    println!(
        "{what}: received {} B, sent {} B, packets sent {}, PUBLISH sent {}, dropped {}, \
         connections {}, clients connected {}, retained {}",
        st.bytes_received,
        st.bytes_sent,
        st.messages_sent,
        st.publish_sent,
        st.publish_dropped,
        st.connections,
        st.clients_connected,
        st.retained
    );
}

// ----- retained messages ----------------------------------------------------------------------

/// `max_retained_bytes` counts a retained message's properties: 32
/// retained messages of 128 KiB of User Properties each are refused with
/// the limit at 4 KiB (before, each counted its topic and 1-byte payload).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_properties_count_against_max_retained_bytes() {
    let _g = SERIAL.lock().await;
    let mut cfg = config();
    cfg.max_retained_bytes = 4096;
    let (broker, addr) = start(cfg).await;
    let mut publisher = Client::connect(addr, V5, "rp-pub", true).await;
    let value = "v".repeat(32 << 10);
    for i in 0..32 {
        let mut p = publish_packet(&format!("rp/{i:02}"), "x", QoS::AtMostOnce, true);
        p.properties.to_mut().user_properties = (0..4)
            .map(|k| UserProperty::new(s(&format!("k{k}")), s(&value)))
            .collect::<Vec<_>>()
            .into();
        publisher.publish_packet(p).await;
    }
    publisher.expect_nothing().await;
    let st = broker.stats();
    show("retained with properties", &st);
    let mut sub = Client::connect(addr, V5, "rp-sub", true).await;
    sub.subscribe("rp/#", QoS::AtMostOnce).await;
    let mut kept = 0usize;
    for p in sub.ping().await {
        if let Packet::Publish(p) = p {
            kept += p.payload.len()
                + p.topic.len()
                + p.properties
                    .user_properties
                    .iter()
                    .map(|u| u.name.len() + u.value.len())
                    .sum::<usize>();
        }
    }
    println!(
        "retained: {} messages, refused {}, {kept} B of them delivered back \
         (max_retained_bytes 4096)",
        st.retained, st.retained_refused
    );
    assert!(
        kept <= 4096,
        "the broker kept {kept} B of retained messages ({} of them), \
         max_retained_bytes = 4096",
        st.retained
    );
}

/// A retained message is kept in buffers of its own: 64 retained messages
/// of 5 bytes, each PUBLISH read with 60 KiB of a message before it in the
/// same read, take kilobytes, not the read buffers they came in (before:
/// 4.1-4.4 MB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_retained_messages_keep_little_memory() {
    let _g = SERIAL.lock().await;
    let mut cfg = config();
    cfg.max_retained_bytes = 4096;
    let (broker, addr) = start(cfg).await;
    let mut publisher = Client::connect(addr, V3_1_1, "pin-pub", true).await;
    let junk = "j".repeat(60 << 10);
    // Warm up (buffers, tables), then measure.
    publisher
        .publish("junk", &junk, QoS::AtMostOnce, false)
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let base = live();
    let n = 64;
    for i in 0..n {
        let p = publish_packet(&format!("p/{i:02}"), "x", QoS::AtMostOnce, true);
        publisher.send_bytes(&behind_junk(V3_1_1, &junk, p)).await;
        publisher.expect_nothing().await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let held = live() - base;
    let st = broker.stats();
    // Clearing them gives the memory back.
    for i in 0..n {
        publisher
            .publish(&format!("p/{i:02}"), "", QoS::AtMostOnce, true)
            .await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after_clear = live() - base;
    println!(
        "{} retained messages of 5 B counted (max_retained_bytes 4096): heap +{held} B; \
         after clearing them: +{after_clear} B",
        st.retained
    );
    assert_eq!(st.retained, n);
    assert!(
        held < 256 << 10,
        "{n} retained messages of 5 B each held {held} B of heap, \
         max_retained_bytes = 4096"
    );
}

/// A User Property is 5 bytes on the wire when empty but a 64-byte
/// structure once decoded: retained messages of 100,000 empty ones (500 KB
/// packets, within `max_packet_size`) are counted as kept, and refused
/// with the limit at 4 KiB (before: 36 MB of heap).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_empty_user_properties_count() {
    let _g = SERIAL.lock().await;
    let mut cfg = config();
    cfg.max_retained_bytes = 4096;
    let (broker, addr) = start(cfg).await;
    let mut publisher = Client::connect(addr, V5, "rep-pub", true).await;
    publisher.expect_nothing().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let base = live();
    let props: Vec<UserProperty> = (0..100_000)
        .map(|_| UserProperty::new(s(""), s("")))
        .collect();
    for i in 0..4 {
        let mut p = publish_packet(&format!("re/{i:02}"), "x", QoS::AtMostOnce, true);
        p.properties.to_mut().user_properties = props.clone().into();
        publisher.publish_packet(p).await;
        publisher.expect_nothing().await;
    }
    drop(props);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let held = live() - base;
    let st = broker.stats();
    println!(
        "{} retained messages of 100,000 empty User Properties (2 MB on the wire), \
         refused {}: heap +{held} B (max_retained_bytes 4096; a decoded UserProperty \
         is {} B)",
        st.retained,
        st.retained_refused,
        std::mem::size_of::<UserProperty>()
    );
    assert!(held < 256 << 10, "held {held} B of heap");
}

// ----- subscriptions and topic aliases ----------------------------------------------------------

/// A subscription's filter is kept in a buffer of its own: 100
/// subscriptions, each SUBSCRIBE read with 60 KiB of a PUBLISH before it,
/// take kilobytes (before: 6.4 MB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_subscriptions_keep_little_memory() {
    let _g = SERIAL.lock().await;
    let (_broker, addr) = start(config()).await;
    let mut c = Client::connect(addr, V3_1_1, "pin-sub", true).await;
    let junk = "j".repeat(60 << 10);
    c.publish("junk", &junk, QoS::AtMostOnce, false).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let base = live();
    let n = 100u16;
    for i in 0..n {
        let sub = mqtt_codec::Subscribe::new(
            pid(i + 1),
            s(&format!("f/{i:02}")),
            mqtt_codec::SubscriptionOptions::new(QoS::AtMostOnce),
        );
        c.send_bytes(&behind_junk(V3_1_1, &junk, sub)).await;
        let want = pid(i + 1);
        c.recv_until(|p| match p {
            Packet::SubAck(a) if a.packet_id == want => Some(()),
            _ => None,
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let held = live() - base;
    // Control: the same subscriptions without the 60 KiB before them.
    let mut control = Client::connect(addr, V3_1_1, "pin-sub-control", true).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let base = live();
    for i in 0..n {
        control
            .subscribe(&format!("f/{i:02}"), QoS::AtMostOnce)
            .await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let control_held = live() - base;
    println!(
        "{n} subscriptions to 4-byte filters: heap +{held} B \
         (the same subscriptions sent alone: +{control_held} B)"
    );
    assert!(held < 256 << 10, "{n} subscriptions hold {held} B of heap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_unsubscribe_churn_gives_memory_back() {
    let _g = SERIAL.lock().await;
    let (broker, addr) = start(config()).await;
    let mut c = Client::connect(addr, V5, "churn", true).await;
    c.subscribe("warm/up/x", QoS::AtLeastOnce).await;
    c.unsubscribe("warm/up/x").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let base = live();
    for i in 0..2000 {
        let f = format!("churn/{i}/deep/{i}/+/#");
        c.subscribe(&f, QoS::AtLeastOnce).await;
        c.unsubscribe(&f).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let held = live() - base;
    println!(
        "2000 SUBSCRIBE/UNSUBSCRIBE: heap {held:+} B, subscriptions {}",
        broker.stats().subscriptions
    );
    assert!(held < 256 << 10, "held {held} B");
}

/// Towards a 5.0 client that announces Topic Alias Maximum 65,535, the
/// broker aliases no more topics than its own `max_topic_aliases` (each is
/// kept for the connection's life): 64 here, the rest go with their topic
/// in full; an aliased topic is sent by its alias alone the next time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_topic_aliases_are_capped_by_max_topic_aliases() {
    let _g = SERIAL.lock().await;
    let (_broker, addr) = start(config()).await;
    let mut connect = connect_packet(V5, "alias-sub", true);
    connect.properties.topic_alias_maximum = Some(u16::MAX);
    let (mut sub, _) = Client::connect_with(addr, connect).await;
    sub.subscribe("#", QoS::AtMostOnce).await;
    let mut publisher = Client::connect(addr, V3_1_1, "alias-pub", true).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let base = live();
    let long = "t".repeat(32 << 10);
    for i in 0..100u16 {
        let topic = format!("{long}/{i}");
        publisher.publish(&topic, "x", QoS::AtMostOnce, false).await;
        let p = sub.expect_publish().await;
        assert_eq!(p.topic.as_str(), topic);
        let alias = p.properties.topic_alias.map(|a| a.get());
        assert_eq!(alias, (i < 64).then_some(i + 1), "topic {i}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let held = live() - base;
    println!("100 topics of 32 KiB, 64 aliased: heap +{held} B");
    // 64 topics of 32 KiB kept, and no read buffer.
    assert!(held < 3 << 20, "held {held} B of heap");
    publisher
        .publish(&format!("{long}/0"), "again", QoS::AtMostOnce, false)
        .await;
    let p = sub.expect_publish().await;
    assert!(p.topic.is_empty(), "the alias alone");
    assert_eq!(p.properties.topic_alias.map(|a| a.get()), Some(1));
    publisher
        .publish(&format!("{long}/99"), "again", QoS::AtMostOnce, false)
        .await;
    let p = sub.expect_publish().await;
    assert_eq!(p.topic.as_str(), format!("{long}/99"));
    assert!(p.properties.topic_alias.is_none());
}

/// A topic a 5.0 client gives an alias to is kept in a buffer of its
/// own: 64 aliases, each set by a PUBLISH read with 60 KiB of a message
/// before it, take kilobytes, not the read buffers (before: 64 of them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_topic_aliases_keep_little_memory() {
    let _g = SERIAL.lock().await;
    let (_broker, addr) = start(config()).await;
    let mut sub = Client::connect(addr, V5, "alias-in-sub", true).await;
    sub.subscribe("a/#", QoS::AtMostOnce).await;
    let mut publisher = Client::connect(addr, V5, "alias-in-pub", true).await;
    let junk = "j".repeat(60 << 10);
    publisher
        .publish("junk", &junk, QoS::AtMostOnce, false)
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let base = live();
    for i in 1..=64u16 {
        let mut p = publish_packet(&format!("a/{i:02}"), "x", QoS::AtMostOnce, false);
        p.properties.to_mut().topic_alias = std::num::NonZeroU16::new(i);
        publisher.send_bytes(&behind_junk(V5, &junk, p)).await;
        assert_eq!(
            sub.expect_publish().await.topic.as_str(),
            format!("a/{i:02}")
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let held = live() - base;
    println!("64 inbound aliases: heap +{held} B");
    assert!(held < 256 << 10, "held {held} B of heap");
    // The aliases work: the topic by its alias alone.
    let mut p = publish_packet("", "y", QoS::AtMostOnce, false);
    p.topic = mqtt_codec::PublishTopic::empty();
    p.properties.to_mut().topic_alias = std::num::NonZeroU16::new(7);
    publisher.publish_packet(p).await;
    assert_eq!(sub.expect_publish().await.topic.as_str(), "a/07");
}
