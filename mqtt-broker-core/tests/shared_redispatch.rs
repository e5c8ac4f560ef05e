#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Shared subscriptions whose member's session ends (MQTT 5.0 section
//! 4.8.2), over loopback with raw packets, at 5.0 and 3.1.1 (the broker
//! takes `$share` filters from 3.1.1 clients too):
//!
//! - while the member's session lives (its connection broke, the session
//!   persists), the messages it was sent wait for it and are re-sent when
//!   it returns [MQTT-4.8.2-5]; nobody else gets them;
//! - once its session ends (Session Expiry Interval 0 / clean session, the
//!   interval passing, Clean Start taking it over), each QoS 1/2 message it
//!   held through the shared subscription and had not acknowledged (QoS 2:
//!   not PUBREC'd), queued ones included, goes to another member of the same
//!   group, with that member's subscription (granted QoS, Subscription
//!   Identifier);
//! - a message the member refused (PUBACK or PUBREC 0x80 or above) goes to
//!   nobody else [MQTT-4.8.2-6];
//! - without another member, it is dropped and counted; messages of
//!   non-shared subscriptions are not affected.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use mqtt_codec::{
    Packet, ProtocolVersion, PubAck, PubRec, Publish, QoS, ReasonCode, SubscriptionOptions,
};

/// Publishes `payloads` to `topic` at `qos`, each flow completed.
async fn publish_all(publisher: &mut Client, topic: &str, payloads: &[&str], qos: QoS) {
    for p in payloads {
        publisher.publish(topic, p, qos, false).await;
    }
}

/// Subscribes `c` to `filter` at `qos`, with Subscription Identifier `id`
/// at 5.0 (3.1.1 has none).
async fn subscribe(c: &mut Client, filter: &str, qos: QoS, id: u32) {
    let id = c.version.is_v5().then_some(id);
    let ack = c
        .subscribe_opts(filter, SubscriptionOptions::new(qos), id)
        .await;
    assert_eq!(ack.reasons, vec![granted(qos)], "SUBACK for {filter}");
}

fn sub_ids(p: &Publish) -> Vec<u32> {
    p.properties
        .subscription_identifiers
        .iter()
        .map(|i| i.get())
        .collect()
}

/// Connects `id` with a session that outlives its connection: 3.1.1 clean
/// session 0; 5.0 Clean Start `clean`, Session Expiry Interval `expiry`.
async fn connect_persistent(
    addr: SocketAddr,
    version: ProtocolVersion,
    id: &str,
    clean: bool,
    expiry: u32,
) -> (Client, bool) {
    let mut c = connect_packet(version, id, clean && version.is_v5());
    if version.is_v5() {
        c.properties.session_expiry_interval = Some(expiry);
    }
    let (client, ack) = Client::connect_with(addr, c).await;
    (client, ack.session_present)
}

/// The member's session ends (Session Expiry Interval 0 / clean session)
/// holding QoS 1 copies it has not acknowledged: one sent, two queued
/// behind an inflight window of 1. The other member gets each once, in
/// order, at the QoS it was published with and its own granted QoS (2),
/// with its own Subscription Identifier. The copies of the ending member's
/// non-shared subscription are dropped (counted), not handed on.
async fn redispatched_when_the_session_ends(version: ProtocolVersion) {
    let mut cfg = config();
    cfg.max_inflight = nz16(1);
    let (broker, addr) = start(cfg).await;
    let mut a = Client::connect(addr, version, "rd-a", true).await;
    subscribe(&mut a, "$share/g/rd/t", QoS::AtLeastOnce, 1).await;
    subscribe(&mut a, "rd/#", QoS::AtLeastOnce, 3).await;
    let mut publisher = Client::connect(addr, version, "rd-pub", true).await;
    publish_all(&mut publisher, "rd/t", &["0", "1", "2"], QoS::ExactlyOnce).await;

    // a is the only member: it gets the first copy and never acknowledges.
    let first = a.expect_publish().await;
    assert_eq!(first.qos, QoS::AtLeastOnce);
    let mut b = Client::connect(addr, version, "rd-b", true).await;
    subscribe(&mut b, "$share/g/rd/t", QoS::ExactlyOnce, 2).await;
    b.expect_nothing().await;

    a.disconnect().await;
    for expected in ["0", "1", "2"] {
        let p = b.recv_publish().await;
        assert_eq!(text(&p), expected);
        assert_eq!(&*p.topic, "rd/t");
        assert_eq!(p.qos, QoS::ExactlyOnce, "b's granted QoS");
        assert!(!p.dup, "a first delivery to b");
        if version.is_v5() {
            assert_eq!(sub_ids(&p), [2], "b's Subscription Identifier");
        }
    }
    b.expect_nothing().await;
    // The three copies of a's own subscription `rd/#`.
    wait_until("the non-shared copies to be counted", || {
        broker.stats().publish_dropped == 3
    })
    .await;
    assert_eq!(broker.stats().publish_dropped, 3);
}

#[tokio::test]
async fn redispatched_when_the_session_ends_v5() {
    redispatched_when_the_session_ends(V5).await;
}

#[tokio::test]
async fn redispatched_when_the_session_ends_v311() {
    redispatched_when_the_session_ends(V3_1_1).await;
}

/// [MQTT-4.8.2-6]: a message the member refused with PUBACK or PUBREC 0x80
/// or above is discarded, not sent to another member; the one it did not
/// answer is.
#[tokio::test]
async fn refused_messages_are_not_redispatched_v5() {
    let (broker, addr) = start_default().await;
    let mut a = Client::connect(addr, V5, "rf-a", true).await;
    subscribe(&mut a, "$share/g/rf/t", QoS::ExactlyOnce, 1).await;
    let mut publisher = Client::connect(addr, V5, "rf-pub", true).await;
    publisher
        .publish("rf/t", "refused-1", QoS::AtLeastOnce, false)
        .await;
    publisher
        .publish("rf/t", "refused-2", QoS::ExactlyOnce, false)
        .await;
    publisher
        .publish("rf/t", "unanswered", QoS::AtLeastOnce, false)
        .await;
    let p1 = a.expect_publish().await;
    let p2 = a.expect_publish().await;
    let p3 = a.expect_publish().await;
    assert_eq!(
        [text(&p1), text(&p2), text(&p3)],
        ["refused-1", "refused-2", "unanswered"]
    );
    let mut puback = PubAck::new(p1.packet_id.unwrap());
    puback.reason = ReasonCode::UnspecifiedError;
    a.send(puback).await;
    let mut pubrec = PubRec::new(p2.packet_id.unwrap());
    pubrec.reason = ReasonCode::NotAuthorized;
    a.send(pubrec).await;
    a.expect_nothing().await;

    let mut b = Client::connect(addr, V5, "rf-b", true).await;
    subscribe(&mut b, "$share/g/rf/t", QoS::ExactlyOnce, 2).await;
    a.disconnect().await;
    let p = b.recv_publish().await;
    assert_eq!(text(&p), "unanswered");
    assert_eq!(p.qos, QoS::AtLeastOnce);
    b.expect_nothing().await;
    assert_eq!(broker.stats().publish_dropped, 0);
}

/// A member whose connection breaks while its session persists keeps its
/// messages: the other member does not get them, and they are re-sent
/// (DUP) when the member returns [MQTT-4.8.2-5]. Meanwhile new messages go
/// to the connected member.
async fn persistent_member_keeps_its_messages(version: ProtocolVersion) {
    let (broker, addr) = start_default().await;
    let (mut a, _) = connect_persistent(addr, version, "pk-a", true, 60).await;
    subscribe(&mut a, "$share/g/pk/t", QoS::AtLeastOnce, 1).await;
    let mut publisher = Client::connect(addr, version, "pk-pub", true).await;
    publisher
        .publish("pk/t", "held", QoS::AtLeastOnce, false)
        .await;
    assert_eq!(text(&a.expect_publish().await), "held");
    let mut b = Client::connect(addr, version, "pk-b", true).await;
    subscribe(&mut b, "$share/g/pk/t", QoS::AtLeastOnce, 2).await;

    a.drop_connection();
    wait_until("a to be offline", || {
        broker.stats().clients_disconnected == 1
    })
    .await;
    b.expect_nothing().await;
    publisher
        .publish("pk/t", "new", QoS::AtLeastOnce, false)
        .await;
    assert_eq!(text(&b.recv_publish().await), "new");

    let (mut a, present) = connect_persistent(addr, version, "pk-a", false, 60).await;
    assert!(present);
    let p = a.recv_publish().await;
    assert_eq!(text(&p), "held");
    assert!(p.dup, "re-sent");
    a.expect_nothing().await;
    b.expect_nothing().await;
    assert_eq!(broker.stats().publish_dropped, 0);
}

#[tokio::test]
async fn persistent_member_keeps_its_messages_v5() {
    persistent_member_keeps_its_messages(V5).await;
}

#[tokio::test]
async fn persistent_member_keeps_its_messages_v311() {
    persistent_member_keeps_its_messages(V3_1_1).await;
}

/// A QoS 2 message the member PUBREC'd is the member's: its session ending
/// before PUBCOMP does not hand it to another member. The one it had not
/// PUBREC'd is handed on.
async fn pubrec_makes_a_qos2_message_the_members(version: ProtocolVersion) {
    let (broker, addr) = start_default().await;
    let mut a = Client::connect(addr, version, "q2-a", true).await;
    subscribe(&mut a, "$share/g/q2/t", QoS::ExactlyOnce, 1).await;
    let mut publisher = Client::connect(addr, version, "q2-pub", true).await;
    publish_all(
        &mut publisher,
        "q2/t",
        &["received", "not-received"],
        QoS::ExactlyOnce,
    )
    .await;
    let p1 = a.expect_publish().await;
    let p2 = a.expect_publish().await;
    assert_eq!([text(&p1), text(&p2)], ["received", "not-received"]);
    let id = p1.packet_id.unwrap();
    a.send(PubRec::new(id)).await;
    a.recv_until(|p| match p {
        Packet::PubRel(r) if r.packet_id == id => Some(()),
        _ => None,
    })
    .await;

    let mut b = Client::connect(addr, version, "q2-b", true).await;
    subscribe(&mut b, "$share/g/q2/t", QoS::ExactlyOnce, 2).await;
    a.disconnect().await;
    let p = b.recv_publish().await;
    assert_eq!(text(&p), "not-received");
    assert_eq!(p.qos, QoS::ExactlyOnce);
    b.expect_nothing().await;
    // Its flow was not complete: counted as dropped with the session.
    wait_until("the PUBREC'd message to be counted", || {
        broker.stats().publish_dropped == 1
    })
    .await;
}

#[tokio::test]
async fn pubrec_makes_a_qos2_message_the_members_v5() {
    pubrec_makes_a_qos2_message_the_members(V5).await;
}

#[tokio::test]
async fn pubrec_makes_a_qos2_message_the_members_v311() {
    pubrec_makes_a_qos2_message_the_members(V3_1_1).await;
}

/// Without another member of the group, the messages are dropped and
/// counted. Another group with the same filter, and a subscription with the
/// same ShareName to another filter, are other shared subscriptions: they
/// get nothing more.
async fn dropped_without_another_member(version: ProtocolVersion) {
    let (broker, addr) = start_default().await;
    let mut a = Client::connect(addr, version, "nm-a", true).await;
    subscribe(&mut a, "$share/g/nm/t", QoS::AtLeastOnce, 1).await;
    let mut other_group = Client::connect(addr, version, "nm-h", true).await;
    subscribe(&mut other_group, "$share/h/nm/t", QoS::AtLeastOnce, 2).await;
    let mut other_filter = Client::connect(addr, version, "nm-f", true).await;
    subscribe(&mut other_filter, "$share/g/nm/+", QoS::AtLeastOnce, 3).await;
    let mut publisher = Client::connect(addr, version, "nm-pub", true).await;
    publish_all(&mut publisher, "nm/t", &["0", "1"], QoS::AtLeastOnce).await;
    for c in [&mut other_group, &mut other_filter] {
        assert_eq!(text(&c.recv_publish().await), "0");
        assert_eq!(text(&c.recv_publish().await), "1");
    }
    a.expect_publish().await;
    a.expect_publish().await;

    a.disconnect().await;
    wait_until("both messages to be counted", || {
        broker.stats().publish_dropped == 2
    })
    .await;
    other_group.expect_nothing().await;
    other_filter.expect_nothing().await;
    assert_eq!(broker.stats().publish_dropped, 2);
}

#[tokio::test]
async fn dropped_without_another_member_v5() {
    dropped_without_another_member(V5).await;
}

#[tokio::test]
async fn dropped_without_another_member_v311() {
    dropped_without_another_member(V3_1_1).await;
}

/// A session that expires after its client left (Session Expiry Interval
/// 1 s) hands its messages on when it expires, not before; an offline
/// persistent member gets them when it returns.
#[tokio::test]
async fn redispatched_when_the_session_expires_v5() {
    let (broker, addr) = start_default().await;
    let (mut a, _) = connect_persistent(addr, V5, "ex-a", true, 1).await;
    subscribe(&mut a, "$share/g/ex/t", QoS::AtLeastOnce, 1).await;
    let mut publisher = Client::connect(addr, V5, "ex-pub", true).await;
    publisher
        .publish("ex/t", "m", QoS::AtLeastOnce, false)
        .await;
    assert_eq!(text(&a.expect_publish().await), "m");
    let (mut b, _) = connect_persistent(addr, V5, "ex-b", true, 60).await;
    subscribe(&mut b, "$share/g/ex/t", QoS::AtLeastOnce, 2).await;
    b.disconnect().await;
    a.disconnect().await;
    wait_until("both to be offline", || {
        broker.stats().clients_disconnected == 2
    })
    .await;
    // a's session expires in a second: b's then holds the message.
    wait_until("a's session to expire", || {
        broker.stats().clients_disconnected == 1
    })
    .await;
    let (mut b, present) = connect_persistent(addr, V5, "ex-b", false, 60).await;
    assert!(present);
    let p = b.recv_publish().await;
    assert_eq!(text(&p), "m");
    assert_eq!(sub_ids(&p), [2]);
    b.expect_nothing().await;
    assert_eq!(broker.stats().publish_dropped, 0);
}

/// A client that connects again with Clean Start discards its old session:
/// what that session held through the shared subscription goes to the
/// other member. At 3.1.1: clean session 0, then 1.
async fn redispatched_on_clean_start_takeover(version: ProtocolVersion) {
    let (broker, addr) = start_default().await;
    let (mut a, _) = connect_persistent(addr, version, "to-a", true, 60).await;
    subscribe(&mut a, "$share/g/to/t", QoS::AtLeastOnce, 1).await;
    let mut publisher = Client::connect(addr, version, "to-pub", true).await;
    publisher
        .publish("to/t", "m", QoS::AtLeastOnce, false)
        .await;
    assert_eq!(text(&a.expect_publish().await), "m");
    let mut b = Client::connect(addr, version, "to-b", true).await;
    subscribe(&mut b, "$share/g/to/t", QoS::AtLeastOnce, 2).await;

    let (mut a2, ack) = Client::connect_with(addr, connect_packet(version, "to-a", true)).await;
    assert!(!ack.session_present);
    a.expect_disconnect(ReasonCode::SessionTakenOver).await;
    assert_eq!(text(&b.recv_publish().await), "m");
    b.expect_nothing().await;
    a2.expect_nothing().await;
    assert_eq!(broker.stats().publish_dropped, 0);
}

#[tokio::test]
async fn redispatched_on_clean_start_takeover_v5() {
    redispatched_on_clean_start_takeover(V5).await;
}

#[tokio::test]
async fn redispatched_on_clean_start_takeover_v311() {
    redispatched_on_clean_start_takeover(V3_1_1).await;
}

/// An in-process member of the group receives what an ending session held.
#[tokio::test]
async fn redispatched_to_an_in_process_member() {
    let (broker, addr) = start_default().await;
    let mut a = Client::connect(addr, V5, "ip-a", true).await;
    subscribe(&mut a, "$share/g/ip/t", QoS::AtLeastOnce, 1).await;
    let mut publisher = Client::connect(addr, V5, "ip-pub", true).await;
    publisher
        .publish("ip/t", "m", QoS::AtLeastOnce, false)
        .await;
    assert_eq!(text(&a.expect_publish().await), "m");
    let mut local = broker.subscribe("$share/g/ip/t".parse().unwrap(), QoS::AtLeastOnce);
    a.disconnect().await;
    let m = tokio::time::timeout(Duration::from_secs(5), local.recv())
        .await
        .expect("in time")
        .expect("a message");
    assert_eq!(&m.payload[..], b"m");
    assert_eq!(m.qos, QoS::AtLeastOnce);
    // As published: not with the Subscription Identifier of A's copy.
    assert!(
        m.properties.subscription_identifiers.is_empty(),
        "{:?}",
        m.properties
    );
    assert!(local.try_recv().is_none());
}

/// A graceful shutdown ends the sessions that do not outlive their
/// connection: what they held goes to a persistent member, and is saved
/// with that member's session, which gets it from the next broker on the
/// same store (the member's session is saved after the others ended).
#[tokio::test]
async fn redispatched_at_shutdown_and_saved_with_the_other_member_v5() {
    let store = std::sync::Arc::new(mqtt_broker_core::MemoryStore::new());
    let builder = || {
        mqtt_broker_core::Broker::builder()
            .config(config())
            .store(store.clone())
    };
    let broker = builder().start().await.unwrap();
    let addr = broker.local_addrs()[0];
    let (mut b, _) = connect_persistent(addr, V5, "sd-b", true, 3600).await;
    subscribe(&mut b, "$share/g/sd/t", QoS::AtLeastOnce, 2).await;
    b.disconnect().await;
    let mut a = Client::connect(addr, V5, "sd-a", true).await;
    subscribe(&mut a, "$share/g/sd/t", QoS::AtLeastOnce, 1).await;
    let mut publisher = Client::connect(addr, V5, "sd-pub", true).await;
    publisher
        .publish("sd/t", "m", QoS::AtLeastOnce, false)
        .await;
    assert_eq!(text(&a.expect_publish().await), "m");
    broker.shutdown().await;
    a.expect_disconnect(ReasonCode::ServerShuttingDown).await;

    let broker = builder().start().await.unwrap();
    let addr = broker.local_addrs()[0];
    let (mut b, present) = connect_persistent(addr, V5, "sd-b", false, 3600).await;
    assert!(present);
    let p = b.recv_publish().await;
    assert_eq!(text(&p), "m");
    assert_eq!(sub_ids(&p), [2]);
    b.expect_nothing().await;
}

/// The other member is picked as for a new message: a connected one before
/// one whose client is away.
#[tokio::test]
async fn redispatched_to_a_connected_member_first_v5() {
    let (broker, addr) = start_default().await;
    let (mut away, _) = connect_persistent(addr, V5, "cf-away", true, 3600).await;
    subscribe(&mut away, "$share/g/cf/t", QoS::AtLeastOnce, 2).await;
    away.disconnect().await;
    let mut a = Client::connect(addr, V5, "cf-a", true).await;
    subscribe(&mut a, "$share/g/cf/t", QoS::AtLeastOnce, 1).await;
    let mut publisher = Client::connect(addr, V5, "cf-pub", true).await;
    publish_all(
        &mut publisher,
        "cf/t",
        &["0", "1", "2", "3"],
        QoS::AtLeastOnce,
    )
    .await;
    for _ in 0..4 {
        a.expect_publish().await;
    }
    let mut connected = Client::connect(addr, V5, "cf-c", true).await;
    subscribe(&mut connected, "$share/g/cf/t", QoS::AtLeastOnce, 3).await;
    a.disconnect().await;
    for expected in ["0", "1", "2", "3"] {
        assert_eq!(text(&connected.recv_publish().await), expected);
    }
    connected.expect_nothing().await;
    let (mut away, present) = connect_persistent(addr, V5, "cf-away", false, 3600).await;
    assert!(present);
    away.expect_nothing().await;
    assert_eq!(broker.stats().publish_dropped, 0);
}
