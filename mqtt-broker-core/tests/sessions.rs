#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Sessions through the broker over loopback, with raw packets: clean and
//! persistent sessions, session expiry, takeover, last will (with Will Delay
//! Interval), keep-alive, client identifiers.

mod common;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::*;
use mqtt_codec::{
    Connect, Disconnect, Encoder, Packet, PayloadFormat, ProtocolVersion, PubComp, PubRec, QoS,
    ReasonCode, UserProperty, Will,
};

// ----- persistent and clean sessions ----------------------------------------------------------

/// Connects `id` as a persistent session: 3.1.1 clean session 0, 5.0 clean
/// start `clean` with Session Expiry Interval 60 s.
async fn connect_persistent(
    addr: std::net::SocketAddr,
    version: ProtocolVersion,
    id: &str,
    clean: bool,
) -> (Client, bool) {
    let mut c = connect_packet(version, id, clean && version.is_v5());
    if version.is_v5() {
        c.properties.session_expiry_interval = Some(60);
    }
    let (client, ack) = Client::connect_with(addr, c).await;
    (client, ack.session_present)
}

/// Subscriptions and QoS 1/2 messages are kept while a persistent client is
/// away and delivered when it returns (session present = 1); QoS 0 messages
/// are not kept [MQTT-3.1.2-4, -5; 4.4].
async fn persistent_session(version: ProtocolVersion) {
    let (broker, addr) = start_default().await;
    let (mut sub, present) = connect_persistent(addr, version, "ps-sub", true).await;
    assert!(!present);
    sub.subscribe("ps/#", QoS::ExactlyOnce).await;
    sub.subscribe("ps1/#", QoS::AtLeastOnce).await;
    sub.disconnect().await;
    wait_until("the subscriber to be offline", || {
        broker.stats().clients_disconnected == 1
    })
    .await;

    let mut publisher = Client::connect(addr, version, "ps-pub", true).await;
    publisher
        .publish("ps/0", "q0", QoS::AtMostOnce, false)
        .await;
    publisher
        .publish("ps/1", "q1", QoS::AtLeastOnce, false)
        .await;
    publisher
        .publish("ps/2", "q2", QoS::ExactlyOnce, false)
        .await;
    publisher
        .publish("ps1/2", "q2->1", QoS::ExactlyOnce, false)
        .await;

    let (mut sub, present) = connect_persistent(addr, version, "ps-sub", false).await;
    assert!(present, "session present");
    let mut got = Vec::new();
    for _ in 0..3 {
        let p = sub.recv_publish().await;
        assert!(!p.dup, "first transmission of a queued message: {p:?}");
        got.push((p.topic.to_string(), text(&p).to_owned(), p.qos));
    }
    assert_eq!(
        got,
        [
            ("ps/1".to_owned(), "q1".to_owned(), QoS::AtLeastOnce),
            ("ps/2".to_owned(), "q2".to_owned(), QoS::ExactlyOnce),
            ("ps1/2".to_owned(), "q2->1".to_owned(), QoS::AtLeastOnce),
        ]
    );
    sub.expect_nothing().await;

    // The subscriptions are still there.
    publisher
        .publish("ps/live", "x", QoS::AtMostOnce, false)
        .await;
    let p = sub.recv_publish().await;
    assert_eq!((&*p.topic, p.qos), ("ps/live", QoS::AtMostOnce));
    sub.expect_nothing().await;
}

#[tokio::test]
async fn persistent_session_v311() {
    persistent_session(V3_1_1).await;
}

#[tokio::test]
async fn persistent_session_v5() {
    persistent_session(V5).await;
}

/// An abnormal close keeps a persistent session just as DISCONNECT does.
#[tokio::test]
async fn persistent_session_after_abnormal_close() {
    for version in [V3_1_1, V5] {
        let (broker, addr) = start_default().await;
        let (mut sub, _) = connect_persistent(addr, version, "pa-sub", true).await;
        sub.subscribe("pa/#", QoS::AtLeastOnce).await;
        sub.drop_connection();
        wait_until("the subscriber to be offline", || {
            broker.stats().clients_disconnected == 1
        })
        .await;
        let mut publisher = Client::connect(addr, version, "pa-pub", true).await;
        publisher
            .publish("pa/1", "kept", QoS::AtLeastOnce, false)
            .await;
        let (mut sub, present) = connect_persistent(addr, version, "pa-sub", false).await;
        assert!(present);
        assert_eq!(text(&sub.recv_publish().await), "kept");
    }
}

/// A QoS 1 message sent but not acknowledged is sent again with DUP=1 and
/// the same packet identifier when the session resumes; a QoS 2 message
/// whose PUBREC was sent gets its PUBREL again [MQTT-4.4.0-1].
async fn resend_on_resume(version: ProtocolVersion) {
    let (_broker, addr) = start_default().await;
    let (mut sub, _) = connect_persistent(addr, version, "rs-sub", true).await;
    sub.subscribe("rs/1", QoS::AtLeastOnce).await;
    sub.subscribe("rs/2", QoS::ExactlyOnce).await;
    let mut publisher = Client::connect(addr, version, "rs-pub", true).await;
    publisher
        .publish("rs/1", "one", QoS::AtLeastOnce, false)
        .await;
    publisher
        .publish("rs/2", "two", QoS::ExactlyOnce, false)
        .await;
    let p1 = sub.expect_publish().await;
    let p2 = sub.expect_publish().await;
    assert_eq!((text(&p1), text(&p2)), ("one", "two"));
    assert!(!p1.dup && !p2.dup);
    // PUBREC for the QoS 2 one, nothing for the QoS 1 one.
    sub.send(PubRec::new(p2.packet_id.unwrap())).await;
    match sub.recv().await {
        Packet::PubRel(r) => assert_eq!(r.packet_id, p2.packet_id.unwrap()),
        other => panic!("expected PUBREL, got {other:?}"),
    }
    sub.drop_connection();

    let (mut sub, present) = connect_persistent(addr, version, "rs-sub", false).await;
    assert!(present);
    let again = sub.expect_publish().await;
    assert_eq!(text(&again), "one");
    assert!(again.dup, "DUP must be set on a re-sent PUBLISH");
    assert_eq!(again.packet_id, p1.packet_id);
    sub.ack(&again).await;
    match sub.recv().await {
        Packet::PubRel(r) => assert_eq!(r.packet_id, p2.packet_id.unwrap()),
        other => panic!("expected PUBREL, got {other:?}"),
    }
    sub.send(PubComp::new(p2.packet_id.unwrap())).await;
    sub.expect_nothing().await;
    // Nothing more on a further resumption.
    sub.disconnect().await;
    let (mut sub, present) = connect_persistent(addr, version, "rs-sub", false).await;
    assert!(present);
    sub.expect_nothing().await;
}

#[tokio::test]
async fn resend_unacknowledged_on_resume_v311() {
    resend_on_resume(V3_1_1).await;
}

#[tokio::test]
async fn resend_unacknowledged_on_resume_v5() {
    resend_on_resume(V5).await;
}

/// A QoS 2 PUBLISH received (PUBREC sent) before the publisher's connection
/// dropped is not delivered again when the publisher re-sends it on its
/// resumed session; PUBREL then completes it [MQTT-4.3.3], [MQTT-4.4.0-1].
async fn qos2_inbound_across_reconnect(version: ProtocolVersion) {
    let (_broker, addr) = start_default().await;
    let mut sub = Client::connect(addr, version, "q2r-sub", true).await;
    sub.subscribe("q2r/t", QoS::ExactlyOnce).await;
    let (mut publisher, _) = connect_persistent(addr, version, "q2r-pub", true).await;
    let mut p = publish_packet("q2r/t", "once", QoS::ExactlyOnce, false);
    p.packet_id = Some(pid(9));
    publisher.send(p.clone()).await;
    assert!(matches!(publisher.recv().await, Packet::PubRec(r) if r.packet_id == pid(9)));
    publisher.drop_connection();
    assert_eq!(text(&sub.recv_publish().await), "once");

    let (mut publisher, present) = connect_persistent(addr, version, "q2r-pub", false).await;
    assert!(present);
    p.dup = true;
    publisher.send(p).await;
    assert!(matches!(publisher.recv().await, Packet::PubRec(r) if r.packet_id == pid(9)));
    publisher.send(mqtt_codec::PubRel::new(pid(9))).await;
    match publisher.recv().await {
        Packet::PubComp(c) => {
            assert_eq!((c.packet_id, c.reason), (pid(9), ReasonCode::Success));
        }
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
    sub.expect_nothing().await;
}

#[tokio::test]
async fn qos2_inbound_exactly_once_across_reconnect_v311() {
    qos2_inbound_across_reconnect(V3_1_1).await;
}

#[tokio::test]
async fn qos2_inbound_exactly_once_across_reconnect_v5() {
    qos2_inbound_across_reconnect(V5).await;
}

/// Clean session / clean start 1 discards the stored session: session
/// present = 0, no subscriptions, no queued messages.
async fn clean_discards(version: ProtocolVersion) {
    let (broker, addr) = start_default().await;
    let (mut sub, _) = connect_persistent(addr, version, "cd-sub", true).await;
    sub.subscribe("cd/#", QoS::AtLeastOnce).await;
    sub.disconnect().await;
    let mut publisher = Client::connect(addr, version, "cd-pub", true).await;
    publisher
        .publish("cd/1", "queued", QoS::AtLeastOnce, false)
        .await;

    let (mut sub, ack) = Client::connect_with(addr, connect_packet(version, "cd-sub", true)).await;
    assert!(!ack.session_present);
    sub.expect_nothing().await;
    publisher
        .publish("cd/2", "live", QoS::AtLeastOnce, false)
        .await;
    sub.expect_nothing().await;
    // A clean session is not kept after it ends.
    sub.disconnect().await;
    wait_until("the clean session to be gone", || {
        broker.stats().clients_total == 1
    })
    .await;
    let (_sub, present) = connect_persistent(addr, version, "cd-sub", false).await;
    assert!(!present);
}

#[tokio::test]
async fn clean_session_discards_state_v311() {
    clean_discards(V3_1_1).await;
}

#[tokio::test]
async fn clean_start_discards_state_v5() {
    clean_discards(V5).await;
}

/// MQTT 5.0 clean start 0 without a Session Expiry Interval: the session
/// ends with the connection.
#[tokio::test]
async fn v5_clean_start_0_without_expiry_is_not_kept() {
    let (_broker, addr) = start_default().await;
    let (mut sub, ack) = Client::connect_with(addr, connect_packet(V5, "ne-sub", false)).await;
    assert!(!ack.session_present);
    sub.subscribe("ne/#", QoS::AtLeastOnce).await;
    sub.disconnect().await;
    let mut publisher = Client::connect(addr, V5, "ne-pub", true).await;
    publisher
        .publish("ne/1", "lost", QoS::AtLeastOnce, false)
        .await;
    let (mut sub, ack) = Client::connect_with(addr, connect_packet(V5, "ne-sub", false)).await;
    assert!(!ack.session_present);
    sub.expect_nothing().await;
}

// ----- session expiry -------------------------------------------------------------------------

/// MQTT 5.0 Session Expiry Interval: the session lives on for that long
/// after the connection, then it is gone (session present = 0).
#[tokio::test]
async fn session_expiry_v5() {
    let (broker, addr) = start_default().await;
    let (mut sub, _) = Client::connect_v5_persistent(addr, "se-sub", true, 1).await;
    sub.subscribe("se/#", QoS::AtLeastOnce).await;
    sub.disconnect().await;
    // Still there just after.
    let (sub, ack) = Client::connect_v5_persistent(addr, "se-sub", false, 1).await;
    assert!(ack.session_present);
    sub.disconnect().await;
    let gone_from = Instant::now();
    let mut publisher = Client::connect(addr, V5, "se-pub", true).await;
    publisher
        .publish("se/1", "queued", QoS::AtLeastOnce, false)
        .await;
    wait_until("the session to expire", || {
        broker.stats().clients_total == 1
    })
    .await;
    let waited = gone_from.elapsed();
    assert!(
        waited >= Duration::from_millis(800),
        "expired after {waited:?}"
    );
    let (mut sub, ack) = Client::connect_v5_persistent(addr, "se-sub", false, 1).await;
    assert!(!ack.session_present);
    sub.expect_nothing().await;
    publisher
        .publish("se/2", "x", QoS::AtLeastOnce, false)
        .await;
    sub.expect_nothing().await;
}

/// The Session Expiry Interval given in DISCONNECT replaces the one of
/// CONNECT [MQTT-3.14.2-2]: 0 ends the session now.
#[tokio::test]
async fn session_expiry_set_by_disconnect_v5() {
    let (_broker, addr) = start_default().await;
    let (mut sub, _) = Client::connect_v5_persistent(addr, "sd-sub", true, 3600).await;
    sub.subscribe("sd/#", QoS::AtLeastOnce).await;
    let mut d = Disconnect::new(ReasonCode::Success);
    d.properties.to_mut().session_expiry_interval = Some(0);
    sub.disconnect_with(d).await;
    let (_sub, ack) = Client::connect_v5_persistent(addr, "sd-sub", false, 3600).await;
    assert!(!ack.session_present);
}

/// A shorter Session Expiry Interval in DISCONNECT applies from then on.
#[tokio::test]
async fn session_expiry_shortened_by_disconnect_v5() {
    let (broker, addr) = start_default().await;
    let (mut sub, _) = Client::connect_v5_persistent(addr, "ss-sub", true, 3600).await;
    sub.subscribe("ss/#", QoS::AtLeastOnce).await;
    let mut d = Disconnect::new(ReasonCode::Success);
    d.properties.to_mut().session_expiry_interval = Some(1);
    sub.disconnect_with(d).await;
    let since = Instant::now();
    assert_eq!(broker.stats().clients_total, 1);
    wait_until("the session to expire", || {
        broker.stats().clients_total == 0
    })
    .await;
    assert!(since.elapsed() >= Duration::from_millis(800));
    let (_sub, ack) = Client::connect_v5_persistent(addr, "ss-sub", false, 3600).await;
    assert!(!ack.session_present);
}

/// A session with expiry 0 cannot be given one by DISCONNECT: protocol
/// error [MQTT-3.14.2-2].
#[tokio::test]
async fn disconnect_cannot_set_expiry_when_connect_had_none_v5() {
    let (_broker, addr) = start_default().await;
    let mut c = Client::connect(addr, V5, "sx-sub", true).await;
    let mut d = Disconnect::new(ReasonCode::Success);
    d.properties.to_mut().session_expiry_interval = Some(60);
    c.send(d).await;
    c.expect_disconnect(ReasonCode::ProtocolError).await;
}

// ----- takeover -------------------------------------------------------------------------------

/// A second connection with the same client id takes the session over: the
/// old one is closed (5.0: DISCONNECT 0x8E first) [MQTT-3.1.4-3].
async fn takeover(version: ProtocolVersion) {
    let (broker, addr) = start_default().await;
    let (mut old, _) = connect_persistent(addr, version, "tk", true).await;
    old.subscribe("tk/#", QoS::AtLeastOnce).await;
    let (mut new, present) = connect_persistent(addr, version, "tk", false).await;
    assert!(present, "the session is taken over with its state");
    old.expect_disconnect(ReasonCode::SessionTakenOver).await;
    // The new connection works and has the subscription.
    let mut publisher = Client::connect(addr, version, "tk-pub", true).await;
    publisher
        .publish("tk/1", "x", QoS::AtLeastOnce, false)
        .await;
    assert_eq!(text(&new.recv_publish().await), "x");
    new.expect_nothing().await;
    assert_eq!(broker.stats().clients_connected, 2);

    // Taking over with a clean session: the old state is gone.
    let (mut newer, ack) = Client::connect_with(addr, connect_packet(version, "tk", true)).await;
    assert!(!ack.session_present);
    new.expect_disconnect(ReasonCode::SessionTakenOver).await;
    publisher
        .publish("tk/2", "y", QoS::AtLeastOnce, false)
        .await;
    newer.expect_nothing().await;
}

#[tokio::test]
async fn session_takeover_v311() {
    takeover(V3_1_1).await;
}

#[tokio::test]
async fn session_takeover_v5() {
    takeover(V5).await;
}

/// A v5 client taken over by a 3.1.1 client with the same id (and back).
#[tokio::test]
async fn session_takeover_across_versions() {
    let (_broker, addr) = start_default().await;
    let mut a = Client::connect(addr, V5, "tkx", true).await;
    let mut b = Client::connect(addr, V3_1_1, "tkx", true).await;
    a.expect_disconnect(ReasonCode::SessionTakenOver).await;
    let _c = Client::connect(addr, V5, "tkx", true).await;
    b.expect_disconnect(ReasonCode::SessionTakenOver).await;
}

/// A CONNECT that the broker ends up refusing (here: a malformed packet in
/// the same read, answered with CONNACK 0x81 in 5.0 / a close in 3.1.1)
/// must not take over the client's existing session: the connection never
/// became the session's ([MQTT-3.1.4-3] takes over only for a connection
/// the server accepts), and the session must be kept for its whole
/// lifetime [MQTT-4.1.0-1]: its subscriptions and the QoS 1 message queued
/// for it are still there when the real client comes back.
async fn refused_connect_keeps_the_stored_session(version: ProtocolVersion) {
    let (_broker, addr) = start_default().await;
    let persistent = |clean: bool| {
        let mut c = connect_packet(version, "victim", clean && version.is_v5());
        if version.is_v5() {
            c.properties.session_expiry_interval = Some(600);
        }
        c
    };
    let (mut victim, _) = Client::connect_with(addr, persistent(true)).await;
    victim.subscribe("v/#", QoS::AtLeastOnce).await;
    victim.disconnect().await;
    let mut publisher = Client::connect(addr, version, "pub", true).await;
    publisher
        .publish("v/1", "kept", QoS::AtLeastOnce, false)
        .await;

    // A refused connection under the same client identifier.
    let mut bytes = BytesMut::new();
    Encoder::new(version)
        .encode(&persistent(false).into(), &mut bytes)
        .unwrap();
    bytes.extend_from_slice(&[0x36, 0x04, 0x00, 0x01, b't', b'x']);
    let mut bad = Client::tcp(addr, version).await;
    bad.send_bytes(&bytes).await;
    let got = bad.expect_closed_within(Duration::from_secs(3)).await;
    assert!(
        got.iter()
            .all(|p| !matches!(p, Packet::ConnAck(a) if a.reason == ReasonCode::Success)),
        "{got:?}"
    );

    // The real client comes back: its session is still there.
    let (mut victim, ack) = Client::connect_with(addr, persistent(false)).await;
    assert!(
        ack.session_present,
        "session destroyed by a refused CONNECT"
    );
    assert_eq!(text(&victim.recv_publish().await), "kept");
}

#[tokio::test]
async fn refused_connect_keeps_the_stored_session_v311() {
    refused_connect_keeps_the_stored_session(V3_1_1).await;
}

#[tokio::test]
async fn refused_connect_keeps_the_stored_session_v5() {
    refused_connect_keeps_the_stored_session(V5).await;
}

// ----- last will ------------------------------------------------------------------------------

fn with_will(version: ProtocolVersion, id: &str, topic: &str, payload: &str, qos: QoS) -> Connect {
    let mut c = connect_packet(version, id, true);
    let mut w = Will::new(
        mqtt_codec::TopicName::try_from(topic).unwrap(),
        Bytes::copy_from_slice(payload.as_bytes()),
    );
    w.qos = qos;
    c.will = Some(w);
    c
}

async fn will_watcher(addr: std::net::SocketAddr, id: &str) -> Client {
    let mut w = Client::connect(addr, V5, id, true).await;
    w.subscribe("will/#", QoS::ExactlyOnce).await;
    w
}

/// The will is published when the connection closes without DISCONNECT
/// [MQTT-3.1.2-8].
async fn will_on_abnormal_close(version: ProtocolVersion) {
    let (_broker, addr) = start_default().await;
    let mut watcher = will_watcher(addr, "wa-watch").await;
    let (c, _) = Client::connect_with(
        addr,
        with_will(version, "wa", "will/wa", "gone", QoS::AtLeastOnce),
    )
    .await;
    watcher.expect_nothing().await;
    c.drop_connection();
    let p = watcher.recv_publish().await;
    assert_eq!(
        (&*p.topic, text(&p), p.qos, p.retain),
        ("will/wa", "gone", QoS::AtLeastOnce, false)
    );
    watcher.expect_nothing().await;
}

#[tokio::test]
async fn will_on_abnormal_close_v311() {
    will_on_abnormal_close(V3_1_1).await;
}

#[tokio::test]
async fn will_on_abnormal_close_v5() {
    will_on_abnormal_close(V5).await;
}

/// No will after a normal DISCONNECT [MQTT-3.1.2-10].
async fn no_will_on_disconnect(version: ProtocolVersion) {
    let (_broker, addr) = start_default().await;
    let mut watcher = will_watcher(addr, "wn-watch").await;
    let (c, _) = Client::connect_with(
        addr,
        with_will(version, "wn", "will/wn", "gone", QoS::AtLeastOnce),
    )
    .await;
    // Returns once the broker closed the connection, i.e. after it handled
    // the DISCONNECT (and would have routed the will).
    c.disconnect().await;
    watcher.expect_nothing().await;
}

#[tokio::test]
async fn no_will_on_normal_disconnect_v311() {
    no_will_on_disconnect(V3_1_1).await;
}

#[tokio::test]
async fn no_will_on_normal_disconnect_v5() {
    no_will_on_disconnect(V5).await;
}

/// MQTT 5.0 DISCONNECT 0x04 (Disconnect with Will Message) publishes it.
#[tokio::test]
async fn will_on_disconnect_with_will_message_v5() {
    let (_broker, addr) = start_default().await;
    let mut watcher = will_watcher(addr, "w4-watch").await;
    let (c, _) =
        Client::connect_with(addr, with_will(V5, "w4", "will/w4", "bye", QoS::AtMostOnce)).await;
    c.disconnect_with(Disconnect::new(ReasonCode::DisconnectWithWillMessage))
        .await;
    let p = watcher.recv_publish().await;
    assert_eq!((&*p.topic, text(&p)), ("will/w4", "bye"));
}

/// A retained will is kept as the retained message of its topic; the will
/// properties become the message's properties.
#[tokio::test]
async fn will_retained_and_properties_v5() {
    let (_broker, addr) = start_default().await;
    let mut c = with_will(V5, "wr", "will/wr", "{\"gone\":1}", QoS::ExactlyOnce);
    let w = c.will.as_mut().unwrap();
    w.retain = true;
    w.properties.content_type = Some(s("application/json"));
    w.properties.payload_format_indicator = Some(PayloadFormat::Utf8);
    w.properties.response_topic = Some(s("will/ask"));
    w.properties.correlation_data = Some(Bytes::from_static(b"cd"));
    w.properties.user_properties = vec![UserProperty::new(s("k"), s("v"))].into();
    let (client, _) = Client::connect_with(addr, c).await;
    client.drop_connection();
    let mut late = Client::connect(addr, V5, "wr-late", true).await;
    // The will may not have been routed yet: retry the subscription until
    // the retained will is there.
    let p = loop {
        late.subscribe("will/wr", QoS::ExactlyOnce).await;
        let got = late.ping().await;
        if let Some(Packet::Publish(p)) = got.into_iter().next() {
            late.ack(&p).await;
            break p;
        }
        late.unsubscribe("will/wr").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        (text(&p), p.retain, p.qos),
        ("{\"gone\":1}", true, QoS::ExactlyOnce)
    );
    assert_eq!(p.properties.content_type, Some(s("application/json")));
    assert_eq!(
        p.properties.payload_format_indicator,
        Some(PayloadFormat::Utf8)
    );
    assert_eq!(p.properties.response_topic, Some(s("will/ask")));
    assert_eq!(
        p.properties.correlation_data,
        Some(Bytes::from_static(b"cd"))
    );
    assert_eq!(
        p.properties.user_properties,
        vec![UserProperty::new(s("k"), s("v"))]
    );
}

fn delayed_will(id: &str, delay: u32, expiry: u32) -> Connect {
    let mut c = with_will(V5, id, &format!("will/{id}"), "late", QoS::AtLeastOnce);
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(expiry);
    c.will.as_mut().unwrap().properties.will_delay_interval = Some(delay);
    c
}

/// Will Delay Interval: the will is published that long after the
/// connection is lost [MQTT-3.1.3-9].
#[tokio::test]
async fn will_delay_v5() {
    let (_broker, addr) = start_default().await;
    let mut watcher = will_watcher(addr, "wd-watch").await;
    let (c, _) = Client::connect_with(addr, delayed_will("wd", 1, 60)).await;
    c.drop_connection();
    let lost = Instant::now();
    let p = watcher.recv_publish().await;
    let after = lost.elapsed();
    assert_eq!((&*p.topic, text(&p)), ("will/wd", "late"));
    assert!(after >= Duration::from_millis(900), "will after {after:?}");
    assert!(after < Duration::from_millis(2500), "will after {after:?}");
}

/// A client that reconnects (clean start 0) within the Will Delay Interval
/// cancels its will, whether its old connection was already lost or is
/// taken over [MQTT-3.1.3-9].
#[tokio::test]
async fn will_delay_cancelled_by_reconnect_v5() {
    let (_broker, addr) = start_default().await;
    let mut watcher = will_watcher(addr, "wc-watch").await;
    // Lost, then back.
    let (c, _) = Client::connect_with(addr, delayed_will("wc", 1, 60)).await;
    c.drop_connection();
    let (back, ack) = Client::connect_v5_persistent(addr, "wc", false, 60).await;
    assert!(ack.session_present);
    // Taken over while connected.
    let (mut old, _) = Client::connect_with(addr, delayed_will("wx", 1, 60)).await;
    let (_new, ack) = Client::connect_v5_persistent(addr, "wx", false, 60).await;
    assert!(ack.session_present);
    old.expect_disconnect(ReasonCode::SessionTakenOver).await;
    // Past the delay: still nothing.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    watcher.expect_nothing().await;
    // The new connection has no will: a normal DISCONNECT, nothing.
    back.disconnect().await;
    watcher.expect_nothing().await;
}

/// The will is published when the session ends, if that comes before the
/// Will Delay Interval [MQTT-3.1.2-8].
#[tokio::test]
async fn will_published_at_session_end_before_delay_v5() {
    let (_broker, addr) = start_default().await;
    let mut watcher = will_watcher(addr, "we-watch").await;
    let (c, _) = Client::connect_with(addr, delayed_will("we", 30, 1)).await;
    c.drop_connection();
    let lost = Instant::now();
    let p = watcher.recv_publish().await;
    let after = lost.elapsed();
    assert_eq!(&*p.topic, "will/we");
    assert!(after >= Duration::from_millis(900), "will after {after:?}");
    assert!(after < Duration::from_millis(2500), "will after {after:?}");
}

/// A session taken over while its will has no delay: the will is published
/// (the old connection closed without DISCONNECT) [MQTT-3.1.4-3].
#[tokio::test]
async fn will_on_takeover_v5() {
    let (_broker, addr) = start_default().await;
    let mut watcher = will_watcher(addr, "wt-watch").await;
    let (mut old, _) = Client::connect_with(
        addr,
        with_will(V5, "wt", "will/wt", "taken", QoS::AtLeastOnce),
    )
    .await;
    let _new = Client::connect(addr, V5, "wt", true).await;
    old.expect_disconnect(ReasonCode::SessionTakenOver).await;
    let p = watcher.recv_publish().await;
    assert_eq!((&*p.topic, text(&p)), ("will/wt", "taken"));
}

/// A connection closed by the broker for a protocol error (here a malformed
/// packet: QoS 3) publishes the will [MQTT-3.1.2-8]; 5.0 gets DISCONNECT
/// 0x81 first.
#[tokio::test]
async fn will_on_protocol_error() {
    for version in [V3_1_1, V5] {
        let (_broker, addr) = start_default().await;
        let mut watcher = will_watcher(addr, "wp-watch").await;
        let (mut c, _) = Client::connect_with(
            addr,
            with_will(version, "wp", "will/wp", "bad", QoS::AtMostOnce),
        )
        .await;
        // PUBLISH with both QoS bits set, topic "a", no payload.
        c.send_bytes(b"\x36\x05\x00\x01a\x00\x01").await;
        c.expect_disconnect(ReasonCode::MalformedPacket).await;
        let p = watcher.recv_publish().await;
        assert_eq!((&*p.topic, text(&p)), ("will/wp", "bad"));
    }
}

/// A takeover with clean start 0 resends what the old connection left
/// unacknowledged, with DUP.
#[tokio::test]
async fn takeover_resends_inflight() {
    for version in [V3_1_1, V5] {
        let (_broker, addr) = start_default().await;
        let (mut old, _) = connect_persistent(addr, version, "ti", true).await;
        old.subscribe("ti/#", QoS::AtLeastOnce).await;
        let mut publisher = Client::connect(addr, version, "ti-pub", true).await;
        publisher
            .publish("ti/1", "unacked", QoS::AtLeastOnce, false)
            .await;
        let first = old.expect_publish().await;
        let (mut new, present) = connect_persistent(addr, version, "ti", false).await;
        assert!(present);
        old.expect_disconnect(ReasonCode::SessionTakenOver).await;
        let again = new.expect_publish().await;
        assert_eq!(text(&again), "unacked");
        assert!(again.dup);
        assert_eq!(again.packet_id, first.packet_id);
        new.ack(&again).await;
        new.expect_nothing().await;
    }
}

/// A will whose topic has a wildcard cannot ever be published: the CONNECT
/// is refused (5.0: CONNACK 0x90 Topic Name invalid, or 0x81/0x82; 3.1.1:
/// closed or refused), rather than accepted with a will silently dropped
/// [MQTT-3.3.2-2], [MQTT-3.1.2-8].
#[tokio::test]
async fn will_topic_with_wildcard_refused() {
    for version in [V3_1_1, V5] {
        let (_broker, addr) = start_default().await;
        let mut watcher = will_watcher(addr, "ww-watch").await;
        watcher.subscribe("#", QoS::AtLeastOnce).await;
        // The encoder refuses such a will topic: encode "will/x" and patch it.
        let c = with_will(version, "ww", "will/x", "never", QoS::AtLeastOnce);
        let mut bytes = bytes::BytesMut::new();
        mqtt_codec::Encoder::new(version)
            .encode(&c.into(), &mut bytes)
            .unwrap();
        let at = bytes.windows(6).position(|w| w == b"will/x").unwrap();
        bytes[at + 5] = b'+';
        let mut client = Client::tcp(addr, version).await;
        client.send_bytes(&bytes).await;
        let got = client
            .expect_closed_within(Duration::from_millis(500))
            .await;
        match got.as_slice() {
            [] => {}
            [Packet::ConnAck(a)] => assert!(a.reason.is_error(), "{a:?}"),
            other => panic!("{version}: expected a refusal, got {other:?}"),
        }
        watcher.expect_nothing().await;
    }
}

// ----- keep-alive -----------------------------------------------------------------------------

/// A client silent for 1.5 x Keep Alive is disconnected (5.0: DISCONNECT
/// 0x8D) and its will is published [MQTT-3.1.2-24]; meanwhile a client
/// that sends PINGREQ within its keep-alive stays connected.
async fn keep_alive_timeout(version: ProtocolVersion) {
    let (_broker, addr) = start_default().await;
    let mut watcher = will_watcher(addr, "ka-watch").await;
    let mut c = with_will(version, "ka", "will/ka", "silent", QoS::AtMostOnce);
    c.keep_alive = 1;
    let (mut silent, _) = Client::connect_with(addr, c).await;
    let mut c = connect_packet(version, "ka-pinger", true);
    c.keep_alive = 1;
    let (mut pinger, _) = Client::connect_with(addr, c).await;
    let since = Instant::now();
    let pings = async {
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(400)).await;
            pinger.expect_nothing().await;
        }
    };
    let closed = async {
        silent.expect_disconnect(ReasonCode::KeepAliveTimeout).await;
        since.elapsed()
    };
    let ((), after) = tokio::join!(pings, closed);
    assert!(
        after >= Duration::from_millis(1400),
        "closed after {after:?}"
    );
    assert!(
        after < Duration::from_millis(3000),
        "closed after {after:?}"
    );
    let p = watcher.recv_publish().await;
    assert_eq!((&*p.topic, text(&p)), ("will/ka", "silent"));
    watcher.expect_nothing().await;
}

#[tokio::test]
async fn keep_alive_timeout_v311() {
    keep_alive_timeout(V3_1_1).await;
}

#[tokio::test]
async fn keep_alive_timeout_v5() {
    keep_alive_timeout(V5).await;
}

// ----- client identifiers ---------------------------------------------------------------------

/// MQTT 5.0: an empty client id gets an Assigned Client Identifier, unique,
/// usable to resume the session [MQTT-3.1.3-7], [MQTT-3.2.2-16].
#[tokio::test]
async fn server_assigned_client_identifier_v5() {
    let (_broker, addr) = start_default().await;
    let mut c = connect_packet(V5, "", true);
    c.properties.session_expiry_interval = Some(60);
    let (mut a, ack_a) = Client::connect_with(addr, c.clone()).await;
    let (_b, ack_b) = Client::connect_with(addr, c).await;
    let id_a = ack_a.properties.assigned_client_identifier.unwrap();
    let id_b = ack_b.properties.assigned_client_identifier.unwrap();
    assert!(!id_a.is_empty());
    assert_ne!(id_a, id_b);
    a.subscribe("sa/#", QoS::AtLeastOnce).await;
    a.disconnect().await;
    let (_a, ack) = Client::connect_v5_persistent(addr, &id_a, false, 60).await;
    assert!(ack.session_present);
    // A client that gives its id gets none assigned.
    let (_c, ack) = Client::connect_v5_persistent(addr, "named", true, 0).await;
    assert_eq!(ack.properties.assigned_client_identifier, None);
}

/// [MQTT-3.1.3-6] (3.1.1 and 5.0): a Server that allows a zero-length
/// ClientID "MUST ... assign a unique ClientID to that Client". The
/// identifiers assigned to many anonymous clients are distinct and none
/// takes another client over; nor can a client predict them (one that
/// could would connect under the identifier first and be taken over, or
/// take over the client it is given to): two brokers in the same process
/// assign different ones. That an identifier in use is skipped is checked
/// in the broker's unit tests (`assigned_client_identifier_skips_...`).
#[tokio::test]
async fn assigned_client_identifiers_are_unique_and_unpredictable() {
    let (_broker, addr) = start_default().await;
    let mut named = Client::connect(addr, V5, "named", true).await;
    let mut ids = std::collections::HashSet::new();
    let mut clients = Vec::new();
    for version in [V5, V3_1_1].into_iter().cycle().take(40) {
        let (c, ack) = Client::connect_with(addr, connect_packet(version, "", true)).await;
        if version.is_v5() {
            let id = ack.properties.assigned_client_identifier.unwrap();
            assert!(ids.insert(id.as_str().to_owned()), "{id:?} assigned twice");
        }
        clients.push(c);
    }
    assert_eq!(ids.len(), 20);
    named.expect_nothing().await;
    for c in &mut clients {
        c.expect_nothing().await;
    }

    let (_other, other_addr) = start_default().await;
    let (_c, ack) = Client::connect_with(other_addr, connect_packet(V5, "", true)).await;
    let id = ack.properties.assigned_client_identifier.unwrap();
    assert!(
        !ids.contains(id.as_str()),
        "{id:?} assigned by both brokers"
    );
}

/// MQTT 3.1.1: an empty client id is accepted with clean session 1, refused
/// with CONNACK 0x02 (identifier rejected) with clean session 0
/// [MQTT-3.1.3-7, -8].
#[tokio::test]
async fn empty_client_id_v311() {
    let (_broker, addr) = start_default().await;
    let (mut ok, ack) = Client::connect_with(addr, connect_packet(V3_1_1, "", true)).await;
    assert!(!ack.session_present);
    ok.subscribe("e/#", QoS::AtLeastOnce).await;
    let (_ok2, _) = Client::connect_with(addr, connect_packet(V3_1_1, "", true)).await;
    // Two anonymous clients do not take each other over.
    ok.expect_nothing().await;

    // Empty and without Clean Session [MQTT-3.1.3-7]: our encoder refuses
    // to write it, so by hand.
    let mut refused = Client::tcp(addr, V3_1_1).await;
    #[rustfmt::skip]
    refused.send_bytes(&[
        0x10, 0x0C,                         // CONNECT; remaining length 12
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name
        0x04, 0x00, 0x00, 0x3C,             // 3.1.1, no flags, keep alive 60
        0x00, 0x00,                         // client identifier ""
    ])
    .await;
    let Packet::ConnAck(ack) = refused.recv().await else {
        panic!("expected CONNACK");
    };
    assert_eq!(ack.reason, ReasonCode::ClientIdentifierNotValid);
    assert!(!ack.session_present);
    assert!(refused.expect_closed().await.is_empty());
}

/// The first packet must be CONNECT [MQTT-3.1.0-1]; a second CONNECT is a
/// protocol error [MQTT-3.1.0-2].
#[tokio::test]
async fn connect_must_come_first_and_once() {
    let (_broker, addr) = start_default().await;
    let mut c = Client::tcp(addr, V5).await;
    c.send(Packet::PingReq).await;
    assert!(c.expect_closed().await.is_empty());
    for version in [V3_1_1, V5] {
        let mut c = Client::connect(addr, version, "twice", true).await;
        c.send(connect_packet(version, "twice", true)).await;
        c.expect_disconnect(ReasonCode::ProtocolError).await;
    }
}

/// MQTT 5.0 / 3.1.1 section 3.1.4: "Clients are allowed to send further
/// Control Packets immediately after sending a CONNECT packet; Clients need
/// not wait for a CONNACK packet to arrive from the Server." CONNECT followed
/// by 100 PINGREQ (2 bytes each: all of it fits in the broker's first
/// 256-byte read, more than the 64 packets a session buffers before it is
/// accepted) is served, not refused.
async fn pipelined_pings_after_connect(version: ProtocolVersion) {
    let (_broker, addr) = start_default().await;
    let mut bytes = BytesMut::new();
    let enc = Encoder::new(version);
    enc.encode(&connect_packet(version, "pinger", true).into(), &mut bytes)
        .unwrap();
    for _ in 0..100 {
        enc.encode(&Packet::PingReq, &mut bytes).unwrap();
    }
    assert!(bytes.len() <= 256);
    let mut c = Client::tcp(addr, version).await;
    c.send_bytes(&bytes).await;
    match c.recv().await {
        Packet::ConnAck(a) => assert_eq!(a.reason, ReasonCode::Success, "{a:?}"),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    for i in 0..100 {
        match c.recv_timeout(TIMEOUT).await {
            Ok(Some(Packet::PingResp)) => {}
            other => panic!("PINGRESP {i}: got {other:?}"),
        }
    }
    c.expect_nothing().await;
}

#[tokio::test]
async fn pipelined_pings_after_connect_v311() {
    pipelined_pings_after_connect(V3_1_1).await;
}

#[tokio::test]
async fn pipelined_pings_after_connect_v5() {
    pipelined_pings_after_connect(V5).await;
}

/// A CONNECT with an unknown protocol level gets CONNACK 0x01 (unacceptable
/// protocol version) and the connection is closed [MQTT-3.1.2-2].
#[tokio::test]
async fn unsupported_protocol_level() {
    let (_broker, addr) = start_default().await;
    let mut c = Client::tcp(addr, V3_1_1).await;
    c.send_bytes(b"\x10\x0d\x00\x04MQTT\x06\x02\x00\x3c\x00\x01a")
        .await;
    let got = c.expect_closed().await;
    match got.as_slice() {
        [Packet::ConnAck(a)] => assert_eq!(a.reason, ReasonCode::UnsupportedProtocolVersion),
        other => panic!("expected CONNACK 0x01, got {other:?}"),
    }
}

/// Graceful shutdown: 5.0 clients get DISCONNECT 0x8B, 3.1.1 clients are
/// closed, and the listener stops accepting.
#[tokio::test]
async fn shutdown_disconnects_clients() {
    let (broker, addr) = start_default().await;
    let mut a = Client::connect(addr, V5, "sd-a", true).await;
    let mut b = Client::connect(addr, V3_1_1, "sd-b", true).await;
    broker.shutdown().await;
    a.expect_disconnect(ReasonCode::ServerShuttingDown).await;
    b.expect_disconnect(ReasonCode::ServerShuttingDown).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
