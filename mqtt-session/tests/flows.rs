//! Protocol flows between a `ClientSession` and a `ServerSession`: CONNECT and
//! CONNACK negotiation, the QoS 1 and QoS 2 exchanges, session resumption,
//! packet identifiers, flow control, manual acknowledgement, topic aliases,
//! Maximum Packet Size and message expiry, for MQTT 3.1.1 and 5.0.
//!
//! Conformance statement ids are those of MQTT 5.0 unless marked "3.1.1".

// Test helpers outside `#[test]` functions may panic on purpose.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::HashSet;
use std::num::{NonZeroU16, NonZeroU32};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Pair;
use mqtt_codec::{
    ConnAck, Connect, Packet, PacketId, ProtocolVersion, PubAck, PubComp, PubRec, PubRel, Publish,
    QoS, ReasonCode, SubscriptionOptions, UserProperty, Utf8Bytes, Will,
};
use mqtt_session::{
    Accept, ClientConfig, ClientSession, CloseReason, DropReason, Event, Message, MessageId,
    QueuePolicy, ServerConfig, ServerSession, UsageError,
};
use mqtt_topic::{TopicFilter, TopicName};

const BOTH: [ProtocolVersion; 2] = [ProtocolVersion::V3_1_1, ProtocolVersion::V5];

fn client_cfg(v: ProtocolVersion) -> ClientConfig {
    ClientConfig::new(v, Utf8Bytes::from_static("client-1"))
}

/// A client whose session outlives the connection (Clean Start 0, and a
/// Session Expiry Interval in 5.0).
fn persistent_cfg(v: ProtocolVersion) -> ClientConfig {
    let mut c = client_cfg(v);
    c.clean_start = false;
    c.session_expiry_interval = 3600;
    c
}

fn msg(topic: &'static str, payload: &'static str, qos: QoS) -> Message {
    Message::new(TopicName::from_static(topic).unwrap(), payload, qos, false)
}

fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

/// The PUBLISH packets that crossed the wire in one direction.
fn wire_publishes(pair: &Pair, to_server: bool) -> Vec<Publish> {
    pair.wire
        .iter()
        .filter(|(dir, _)| *dir == to_server)
        .filter_map(|(_, p)| match p {
            Packet::Publish(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

/// The packets that crossed the wire in one direction, from index `from`.
fn wire_from(pair: &Pair, from: usize, to_server: bool) -> Vec<Packet> {
    pair.wire[from..]
        .iter()
        .filter(|(dir, _)| *dir == to_server)
        .map(|(_, p)| p.clone())
        .collect()
}

fn messages(events: &[Event]) -> Vec<Message> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

fn payloads(events: &[Event]) -> Vec<Bytes> {
    messages(events).into_iter().map(|m| m.payload).collect()
}

fn delivered(events: &[Event]) -> Vec<(MessageId, ReasonCode)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Delivered { id, reason } => Some((*id, *reason)),
            _ => None,
        })
        .collect()
}

fn dropped(events: &[Event]) -> Vec<(MessageId, DropReason)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Dropped { id, reason } => Some((*id, *reason)),
            _ => None,
        })
        .collect()
}

fn connack(pair: &Pair) -> ConnAck {
    pair.client_events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::Connected { connack, .. } => Some((**connack).clone()),
            _ => None,
        })
        .expect("Connected event")
}

/// A client session driven by hand: CONNECT sent, CONNACK received.
fn hand_client(cfg: ClientConfig, ack: ConnAck) -> (ClientSession, Instant) {
    let now = Instant::now();
    let mut c = ClientSession::new(cfg);
    c.connect(now).unwrap();
    assert!(matches!(c.poll_transmit(), Some(Packet::Connect(_))));
    c.handle_packet(now, ack.into());
    while c.poll_event().is_some() {}
    assert!(c.is_connected());
    (c, now)
}

fn transmitted(c: &mut ClientSession) -> Vec<Packet> {
    std::iter::from_fn(|| c.poll_transmit()).collect()
}

fn client_events(c: &mut ClientSession) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

// ---------------------------------------------------------------------------
// CONNECT / CONNACK
// ---------------------------------------------------------------------------

/// The client's CONNECT carries its configuration: Clean Start, Keep Alive,
/// credentials, will and (5.0) the properties Session Expiry Interval,
/// Receive Maximum, Maximum Packet Size, Topic Alias Maximum and the user's
/// extra properties (MQTT 5.0 section 3.1.2).
#[test]
fn v5_connect_carries_the_configured_fields_and_properties() {
    let mut c = client_cfg(ProtocolVersion::V5);
    c.clean_start = false;
    c.keep_alive = 33;
    c.session_expiry_interval = 120;
    c.receive_maximum = NonZeroU16::new(10).unwrap();
    c.max_packet_size = NonZeroU32::new(4096);
    c.topic_alias_maximum = 5;
    c.username = Some(Utf8Bytes::from_static("user"));
    c.password = Some(Bytes::from_static(b"secret"));
    let mut will = Will::new(
        mqtt_codec::TopicName::from_static("status/client-1").unwrap(),
        "gone",
    );
    will.qos = QoS::AtLeastOnce;
    will.properties.will_delay_interval = Some(3);
    c.will = Some(will.clone());
    c.connect_properties.user_properties = vec![UserProperty::new(
        Utf8Bytes::from_static("k"),
        Utf8Bytes::from_static("v"),
    )]
    .into();
    c.connect_properties.request_problem_information = Some(false);
    let mut pair = Pair::new(c, ServerConfig::default());
    pair.establish();

    let Some((true, Packet::Connect(connect))) = pair.wire.first() else {
        panic!("first packet is not CONNECT: {:?}", pair.wire.first());
    };
    assert_eq!(connect.protocol, ProtocolVersion::V5);
    assert_eq!(connect.client_id.as_str(), "client-1");
    assert!(!connect.clean_start);
    assert_eq!(connect.keep_alive, 33);
    assert_eq!(connect.username.as_deref(), Some("user"));
    assert_eq!(connect.password.as_deref(), Some(&b"secret"[..]));
    assert_eq!(connect.will.as_ref(), Some(&will));
    let p = &connect.properties;
    assert_eq!(p.session_expiry_interval, Some(120));
    assert_eq!(p.receive_maximum, NonZeroU16::new(10));
    assert_eq!(p.maximum_packet_size, NonZeroU32::new(4096));
    assert_eq!(p.topic_alias_maximum, Some(5));
    assert_eq!(p.request_problem_information, Some(false));
    assert_eq!(p.user_properties.len(), 1);
    // The server saw the same CONNECT.
    assert!(
        pair.server_events
            .iter()
            .any(|e| matches!(e, Event::Connect(c) if **c == **connect))
    );
}

/// A 3.1.1 CONNECT has no properties (it would not encode otherwise) and the
/// CONNACK no capabilities; the client is connected.
#[test]
fn v311_connect_and_connack_have_no_properties() {
    let mut c = client_cfg(ProtocolVersion::V3_1_1);
    c.session_expiry_interval = 99;
    c.receive_maximum = NonZeroU16::new(3).unwrap();
    let mut s = ServerConfig::default();
    s.receive_maximum = NonZeroU16::new(2).unwrap();
    s.maximum_qos = QoS::AtLeastOnce;
    let mut pair = Pair::new(c, s);
    pair.establish();
    let Some((true, Packet::Connect(connect))) = pair.wire.first() else {
        panic!()
    };
    assert_eq!(connect.protocol, ProtocolVersion::V3_1_1);
    assert!(connect.properties.is_empty());
    let ack = connack(&pair);
    assert!(ack.properties.is_empty());
    assert_eq!(ack.reason, ReasonCode::Success);
}

/// The CONNACK announces the server's capabilities from its configuration
/// (MQTT 5.0 section 3.2.2.3) and the client identifier the broker assigned
/// through `Accept` ([MQTT-3.2.2-16]).
#[test]
fn v5_connack_carries_server_capabilities_and_assigned_client_id() {
    let mut c = client_cfg(ProtocolVersion::V5);
    c.client_id = Utf8Bytes::new();
    let mut s = ServerConfig::default();
    s.receive_maximum = NonZeroU16::new(2).unwrap();
    s.max_packet_size = NonZeroU32::new(1000);
    s.topic_alias_maximum = 7;
    s.maximum_qos = QoS::AtLeastOnce;
    s.retain_available = false;
    s.server_keep_alive = Some(20);
    s.wildcard_subscription_available = false;
    s.subscription_identifiers_available = false;
    s.shared_subscription_available = false;
    let mut pair = Pair::new(c, s);
    pair.auto_broker = false;
    pair.connect();
    pair.deliver_to_server(1);
    assert!(matches!(pair.server_events.last(), Some(Event::Connect(c)) if c.client_id.is_empty()));
    let mut accept = Accept::new();
    accept.assigned_client_identifier = Some(Utf8Bytes::from_static("assigned-7"));
    pair.server.accept(pair.now, accept).unwrap();
    pair.drive();
    assert!(pair.client.is_connected());

    let ack = connack(&pair);
    assert!(!ack.session_present);
    let p = &ack.properties;
    assert_eq!(p.receive_maximum, NonZeroU16::new(2));
    assert_eq!(p.maximum_packet_size, NonZeroU32::new(1000));
    assert_eq!(p.topic_alias_maximum, Some(7));
    assert_eq!(p.maximum_qos, Some(QoS::AtLeastOnce), "[MQTT-3.2.2-9]");
    assert_eq!(p.retain_available, Some(false));
    assert_eq!(p.server_keep_alive, Some(20));
    assert_eq!(p.wildcard_subscription_available, Some(false));
    assert_eq!(p.subscription_identifiers_available, Some(false));
    assert_eq!(p.shared_subscription_available, Some(false));
    assert_eq!(p.assigned_client_identifier.as_deref(), Some("assigned-7"));
    // Defaults are not announced: absent means "the maximum".
    let mut pair = Pair::new(client_cfg(ProtocolVersion::V5), ServerConfig::default());
    pair.establish();
    let p = connack(&pair).properties;
    assert_eq!(
        (p.maximum_qos, p.retain_available, p.server_keep_alive),
        (None, None, None)
    );
}

/// A server Receive Maximum larger than the client's own inflight window
/// does not widen it: the window is the smaller of the two.
#[test]
fn v5_client_window_is_the_smaller_of_its_own_and_the_servers() {
    let mut s = ServerConfig::default();
    s.receive_maximum = NonZeroU16::new(50).unwrap();
    let mut c = client_cfg(ProtocolVersion::V5);
    c.inflight_window = NonZeroU16::new(2).unwrap();
    let mut pair = Pair::new(c, s);
    pair.establish();
    for p in ["1", "2", "3"] {
        pair.client
            .publish(pair.now, msg("t", p, QoS::AtLeastOnce))
            .unwrap();
    }
    assert_eq!(pair.client.state().inflight_len(), 2);
    assert_eq!(pair.client.state().queued_len(), 1);
}

/// "The Client MUST NOT send more than Receive Maximum QoS 1 and QoS 2
/// PUBLISH packets for which it has not received PUBACK, PUBCOMP, or PUBREC
/// with a Reason Code of 128 or greater from the Server" [MQTT-3.3.4-7]: with
/// a server Receive Maximum of 2 the third QoS 1 message waits for a PUBACK.
#[test]
fn v5_client_honours_server_receive_maximum() {
    let mut s = ServerConfig::default();
    s.receive_maximum = NonZeroU16::new(2).unwrap();
    let mut pair = Pair::new(client_cfg(ProtocolVersion::V5), s);
    pair.establish();
    let start = pair.wire.len();
    for p in ["1", "2", "3"] {
        pair.client
            .publish(pair.now, msg("t", p, QoS::AtLeastOnce))
            .unwrap();
    }
    assert_eq!(pair.client.state().inflight_len(), 2);
    assert_eq!(pair.client.state().queued_len(), 1);
    // Both PUBLISH reach the server, which acknowledges them; no third yet.
    assert_eq!(pair.deliver_to_server(usize::MAX), 2);
    assert_eq!(wire_publishes(&pair, true).len(), 2);
    // One PUBACK frees one slot: the third goes.
    assert_eq!(pair.deliver_to_client(1), 1);
    assert_eq!(pair.client.state().inflight_len(), 2);
    assert_eq!(pair.client.state().queued_len(), 0);
    pair.drive();
    let order: Vec<String> = pair.wire[start..]
        .iter()
        .map(|(to_server, p)| match p {
            Packet::Publish(p) => format!("PUBLISH {}", String::from_utf8_lossy(&p.payload)),
            Packet::PubAck(a) => format!(
                "{}PUBACK {}",
                if *to_server { ">" } else { "<" },
                a.packet_id
            ),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        order,
        [
            "PUBLISH 1",
            "PUBLISH 2",
            "<PUBACK 1",
            "PUBLISH 3",
            "<PUBACK 2",
            "<PUBACK 3"
        ]
    );
    assert_eq!(payloads(&pair.server_events), ["1", "2", "3"]);
    assert_eq!(delivered(&pair.client_events).len(), 3);
}

/// "A Client receiving Retain Available set to 0 from the Server MUST NOT
/// send a PUBLISH packet with the RETAIN flag set to 1" [MQTT-3.2.2-14], and
/// not a QoS above the server's Maximum QoS [MQTT-3.2.2-11]: `publish`
/// refuses such messages and sends nothing.
#[test]
fn v5_client_refuses_qos_and_retain_the_server_does_not_support() {
    let mut s = ServerConfig::default();
    s.maximum_qos = QoS::AtLeastOnce;
    s.retain_available = false;
    let mut pair = Pair::new(client_cfg(ProtocolVersion::V5), s);
    pair.establish();
    let start = pair.wire.len();
    assert_eq!(
        pair.client
            .publish(pair.now, msg("t", "q2", QoS::ExactlyOnce)),
        Err(UsageError::QoSNotSupported)
    );
    let mut retained = msg("t", "r", QoS::AtMostOnce);
    retained.retain = true;
    assert_eq!(
        pair.client.publish(pair.now, retained),
        Err(UsageError::RetainNotSupported)
    );
    assert_eq!(
        pair.client.state().queued_len() + pair.client.state().inflight_len(),
        0
    );
    pair.drive();
    assert_eq!(pair.wire.len(), start, "nothing sent");
    // Within the capabilities, messages go.
    pair.client
        .publish(pair.now, msg("t", "q1", QoS::AtLeastOnce))
        .unwrap();
    pair.drive();
    assert_eq!(payloads(&pair.server_events), ["q1"]);
    assert!(pair.client.is_connected());
}

/// "If the Server sends a Server Keep Alive on the CONNACK packet, the
/// Client MUST use this value instead of the Keep Alive value the Client sent
/// on CONNECT" [MQTT-3.2.2-21].
#[test]
fn v5_server_keep_alive_overrides_the_clients() {
    let mut c = client_cfg(ProtocolVersion::V5);
    c.keep_alive = 60;
    let mut s = ServerConfig::default();
    s.server_keep_alive = Some(5);
    let mut pair = Pair::new(c, s);
    pair.establish();
    let pings = |pair: &Pair| {
        pair.wire
            .iter()
            .filter(|(_, p)| *p == Packet::PingReq)
            .count()
    };
    pair.advance(Duration::from_millis(4_999));
    assert_eq!(pings(&pair), 0);
    pair.advance(Duration::from_millis(1));
    assert_eq!(
        pings(&pair),
        1,
        "PINGREQ after the server's 5 s, not the client's 60 s"
    );
    pair.advance(Duration::from_secs(60));
    assert_eq!(pings(&pair), 13);
    assert!(
        pair.client.is_connected(),
        "the server (5 s x 1.5) never timed the client out"
    );
}

// ---------------------------------------------------------------------------
// QoS 1 and QoS 2
// ---------------------------------------------------------------------------

/// QoS 1 in both directions (MQTT 5.0 section 4.3.2): PUBLISH with a packet
/// identifier [MQTT-4.3.2-1], PUBACK with the same identifier
/// [MQTT-4.3.2-4], the message delivered once and the sender told.
#[test]
fn qos1_both_directions() {
    for v in BOTH {
        let mut pair = Pair::new(client_cfg(v), ServerConfig::default());
        pair.establish();
        let start = pair.wire.len();
        let id = pair
            .client
            .publish(pair.now, msg("up", "u", QoS::AtLeastOnce))
            .unwrap();
        pair.drive();
        let to_server = wire_from(&pair, start, true);
        let [Packet::Publish(p)] = &to_server[..] else {
            panic!("{v}: {to_server:?}")
        };
        assert_eq!((p.qos, p.dup), (QoS::AtLeastOnce, false));
        let pid = p.packet_id.expect("QoS 1 has a packet identifier");
        assert_eq!(
            wire_from(&pair, start, false),
            [Packet::PubAck(PubAck::new(pid))]
        );
        assert_eq!(payloads(&pair.server_events), ["u"]);
        assert_eq!(delivered(&pair.client_events), [(id, ReasonCode::Success)]);

        let start = pair.wire.len();
        let id = pair
            .server
            .publish(pair.now, msg("down", "d", QoS::AtLeastOnce))
            .unwrap();
        pair.drive();
        let to_client = wire_from(&pair, start, false);
        let [Packet::Publish(p)] = &to_client[..] else {
            panic!("{v}: {to_client:?}")
        };
        assert_eq!(p.qos, QoS::AtLeastOnce);
        assert_eq!(
            wire_from(&pair, start, true),
            [Packet::PubAck(PubAck::new(p.packet_id.unwrap()))]
        );
        assert_eq!(payloads(&pair.client_events), ["d"]);
        assert_eq!(delivered(&pair.server_events), [(id, ReasonCode::Success)]);
        assert_eq!(
            pair.client.state().inflight_len() + pair.server.state().inflight_len(),
            0
        );
    }
}

/// QoS 2 in both directions with the full PUBLISH, PUBREC, PUBREL, PUBCOMP
/// exchange on one packet identifier (MQTT 5.0 section 4.3.3,
/// [MQTT-4.3.3-4], [MQTT-4.3.3-8], [MQTT-4.3.3-11]); the receiver holds the
/// identifier until PUBREL.
#[test]
fn qos2_both_directions_full_exchange() {
    for v in BOTH {
        let mut pair = Pair::new(client_cfg(v), ServerConfig::default());
        pair.establish();

        // Client to server, step by step.
        let start = pair.wire.len();
        let id = pair
            .client
            .publish(pair.now, msg("up", "u", QoS::ExactlyOnce))
            .unwrap();
        pair.deliver_to_server(1);
        let [Packet::Publish(p)] = &wire_from(&pair, start, true)[..] else {
            panic!()
        };
        let pid = p.packet_id.unwrap();
        assert_eq!(
            payloads(&pair.server_events),
            ["u"],
            "{v}: delivered on PUBLISH"
        );
        assert_eq!(
            pair.server.state().incoming_qos2().collect::<Vec<_>>(),
            [pid],
            "held until PUBREL"
        );
        pair.deliver_to_client(1); // PUBREC
        assert!(
            delivered(&pair.client_events).is_empty(),
            "not complete before PUBCOMP"
        );
        pair.deliver_to_server(1); // PUBREL
        assert_eq!(pair.server.state().incoming_qos2().count(), 0);
        pair.deliver_to_client(1); // PUBCOMP
        let flow: Vec<Packet> = pair.wire[start..]
            .iter()
            .map(|(_, p)| p.clone())
            .skip(1)
            .collect();
        assert_eq!(
            flow,
            [
                Packet::PubRec(PubRec::new(pid)),
                Packet::PubRel(PubRel::new(pid)),
                Packet::PubComp(PubComp::new(pid))
            ]
        );
        assert_eq!(delivered(&pair.client_events), [(id, ReasonCode::Success)]);
        assert_eq!(pair.client.state().inflight_len(), 0);

        // Server to client.
        let start = pair.wire.len();
        let id = pair
            .server
            .publish(pair.now, msg("down", "d", QoS::ExactlyOnce))
            .unwrap();
        pair.drive();
        let kinds: Vec<(bool, &str)> = pair.wire[start..]
            .iter()
            .map(|(dir, p)| {
                let k = match p {
                    Packet::Publish(_) => "PUBLISH",
                    Packet::PubRec(_) => "PUBREC",
                    Packet::PubRel(_) => "PUBREL",
                    Packet::PubComp(_) => "PUBCOMP",
                    _ => "other",
                };
                (*dir, k)
            })
            .collect();
        assert_eq!(
            kinds,
            [
                (false, "PUBLISH"),
                (true, "PUBREC"),
                (false, "PUBREL"),
                (true, "PUBCOMP")
            ]
        );
        assert_eq!(payloads(&pair.client_events), ["d"]);
        assert_eq!(delivered(&pair.server_events), [(id, ReasonCode::Success)]);
        assert_eq!(pair.client.state().incoming_qos2().count(), 0);
    }
}

/// "Until it has received the corresponding PUBREL packet, the receiver
/// MUST acknowledge any subsequent PUBLISH packet with the same Packet
/// Identifier by sending a PUBREC. It MUST NOT cause duplicate messages to
/// be delivered to any onward recipients in this case" [MQTT-4.3.3-10].
#[test]
fn qos2_duplicate_publish_before_pubrel_is_acknowledged_not_delivered_again() {
    for v in BOTH {
        let mut pair = Pair::new(client_cfg(v), ServerConfig::default());
        pair.establish();
        pair.client
            .publish(pair.now, msg("t", "once", QoS::ExactlyOnce))
            .unwrap();
        pair.deliver_to_server(1);
        let first = wire_publishes(&pair, true).pop().unwrap();
        let pid = first.packet_id.unwrap();
        // The same PUBLISH again, with DUP, before the PUBREL.
        let mut dup = first.clone();
        dup.dup = true;
        pair.to_server.push_front(Packet::Publish(dup));
        pair.deliver_to_server(1);
        pair.drive();
        let pubrecs = pair
            .wire
            .iter()
            .filter(|(d, p)| !*d && *p == Packet::PubRec(PubRec::new(pid)))
            .count();
        assert_eq!(pubrecs, 2, "{v}: each PUBLISH is acknowledged with PUBREC");
        assert_eq!(
            payloads(&pair.server_events),
            ["once"],
            "{v}: delivered once"
        );
        // After PUBCOMP the identifier is free: the same id is a new message
        // [MQTT-4.3.3-12].
        assert_eq!(pair.server.state().incoming_qos2().count(), 0);
        let mut again = first;
        again.payload = Bytes::from_static(b"new");
        pair.to_server.push_back(Packet::Publish(again));
        pair.drive();
        assert_eq!(payloads(&pair.server_events), ["once", "new"]);
    }
}

/// A PUBREL for an identifier the receiver does not hold is answered with
/// PUBCOMP 0x92 (Packet Identifier not found) in 5.0 (MQTT 5.0 section
/// 3.7.2.1), and a plain PUBCOMP in 3.1.1 ([MQTT-4.3.3-11], 3.1.1
/// [MQTT-4.3.3-2]). Both sides stay connected.
#[test]
fn pubrel_for_unknown_id_gets_pubcomp() {
    for v in BOTH {
        let expected = if v.is_v5() {
            ReasonCode::PacketIdentifierNotFound
        } else {
            ReasonCode::Success
        };
        let mut pair = Pair::new(client_cfg(v), ServerConfig::default());
        pair.establish();
        pair.to_server.push_back(PubRel::new(pid(77)).into());
        pair.to_client.push_back(PubRel::new(pid(78)).into());
        pair.drive();
        let comps: Vec<(bool, u16, ReasonCode)> = pair
            .wire
            .iter()
            .filter_map(|(d, p)| match p {
                Packet::PubComp(c) => Some((*d, c.packet_id.get(), c.reason)),
                _ => None,
            })
            .collect();
        assert_eq!(comps, [(false, 77, expected), (true, 78, expected)], "{v}");
        assert!(pair.client.is_connected() && pair.server.is_connected());
        assert!(
            messages(&pair.server_events).is_empty() && messages(&pair.client_events).is_empty()
        );
    }
}

/// A PUBREC with a Reason Code of 0x80 or above ends the QoS 2 flow: no
/// PUBREL, the message is reported with that reason, and it is never
/// re-sent ([MQTT-4.3.3-4], [MQTT-4.4.0-2]). Likewise a PUBACK error for QoS 1.
#[test]
fn v5_pubrec_or_puback_with_error_reason_completes_the_flow() {
    let (mut c, now) = hand_client(client_cfg(ProtocolVersion::V5), ConnAck::default());
    let id = c.publish(now, msg("t", "x", QoS::ExactlyOnce)).unwrap();
    let [Packet::Publish(p)] = &transmitted(&mut c)[..] else {
        panic!()
    };
    let mut rec = PubRec::new(p.packet_id.unwrap());
    rec.reason = ReasonCode::QuotaExceeded;
    c.handle_packet(now, rec.into());
    assert_eq!(transmitted(&mut c), [], "no PUBREL after an error PUBREC");
    assert_eq!(
        client_events(&mut c),
        [Event::Delivered {
            id,
            reason: ReasonCode::QuotaExceeded
        }]
    );
    assert_eq!(c.state().inflight_len(), 0);

    let id = c.publish(now, msg("t", "y", QoS::AtLeastOnce)).unwrap();
    let [Packet::Publish(p)] = &transmitted(&mut c)[..] else {
        panic!()
    };
    let mut ack = PubAck::new(p.packet_id.unwrap());
    ack.reason = ReasonCode::NotAuthorized;
    c.handle_packet(now, ack.into());
    assert_eq!(
        client_events(&mut c),
        [Event::Delivered {
            id,
            reason: ReasonCode::NotAuthorized
        }]
    );
    assert_eq!(c.state().inflight_len(), 0);
    assert!(c.is_connected());
}

/// A duplicate PUBREC (the receiver re-sent it) makes the sender send PUBREL
/// again; one PUBCOMP completes the flow once and a second is ignored
/// (MQTT 5.0 section 4.3.3).
#[test]
fn duplicate_pubrec_resends_pubrel() {
    for v in BOTH {
        let (mut c, now) = hand_client(client_cfg(v), ConnAck::default());
        let id = c.publish(now, msg("t", "x", QoS::ExactlyOnce)).unwrap();
        let [Packet::Publish(p)] = &transmitted(&mut c)[..] else {
            panic!()
        };
        let pid = p.packet_id.unwrap();
        c.handle_packet(now, PubRec::new(pid).into());
        c.handle_packet(now, PubRec::new(pid).into());
        assert_eq!(
            transmitted(&mut c),
            [
                Packet::PubRel(PubRel::new(pid)),
                Packet::PubRel(PubRel::new(pid))
            ]
        );
        assert_eq!(client_events(&mut c), []);
        c.handle_packet(now, PubComp::new(pid).into());
        c.handle_packet(now, PubComp::new(pid).into());
        assert_eq!(
            client_events(&mut c),
            [Event::Delivered {
                id,
                reason: ReasonCode::Success
            }],
            "{v}"
        );
        assert_eq!(transmitted(&mut c), []);
        assert!(c.is_connected());
    }
}

// ---------------------------------------------------------------------------
// Session resumption
// ---------------------------------------------------------------------------

/// "When a Client reconnects with Clean Start set to 0 and a session is
/// present, both the Client and Server MUST resend any unacknowledged PUBLISH
/// packets (where QoS > 0) and PUBREL packets using their original Packet
/// Identifiers" [MQTT-4.4.0-1], PUBLISH with DUP set [MQTT-3.3.1-1], in the
/// order they were first sent [MQTT-4.6.0-1]. Client side.
#[test]
fn client_resends_unacknowledged_publish_and_pubrel_on_resumption() {
    for v in BOTH {
        let mut pair = Pair::new(persistent_cfg(v), ServerConfig::default());
        pair.establish();
        pair.client
            .publish(pair.now, msg("t", "a", QoS::ExactlyOnce))
            .unwrap();
        pair.client
            .publish(pair.now, msg("t", "b", QoS::AtLeastOnce))
            .unwrap();
        pair.client
            .publish(pair.now, msg("t", "c", QoS::ExactlyOnce))
            .unwrap();
        pair.deliver_to_server(1); // a; the server answers PUBREC
        pair.deliver_to_client(1); // PUBREC a; the client answers PUBREL
        let pid_a = wire_publishes(&pair, true)[0].packet_id.unwrap();
        // b and c were written but are lost with the transport, as is PUBREL a.
        let lost: Vec<Packet> = pair.to_server.iter().cloned().collect();
        let [Packet::Publish(b0), Packet::Publish(c0), Packet::PubRel(_)] = &lost[..] else {
            panic!("{v}: {lost:?}")
        };
        let (pid_b, pid_c) = (b0.packet_id.unwrap(), c0.packet_id.unwrap());
        pair.cut();
        assert_eq!(pair.client.state().inflight_len(), 3);

        let reconnect = pair.wire.len();
        pair.establish();
        assert!(matches!(
            pair.client_events
                .iter()
                .rev()
                .find(|e| matches!(e, Event::Connected { .. })),
            Some(Event::Connected {
                session_present: true,
                ..
            })
        ));
        let resent: Vec<Packet> = wire_from(&pair, reconnect, true)
            .into_iter()
            .skip(1)
            .take(3)
            .collect();
        let [Packet::PubRel(rel), Packet::Publish(b), Packet::Publish(c)] = &resent[..] else {
            panic!("{v}: {resent:?}")
        };
        assert_eq!(rel.packet_id, pid_a);
        assert_eq!(
            (b.payload.as_ref(), b.dup, b.qos),
            (&b"b"[..], true, QoS::AtLeastOnce)
        );
        assert_eq!(
            (c.payload.as_ref(), c.dup, c.qos),
            (&b"c"[..], true, QoS::ExactlyOnce)
        );
        assert_eq!(
            (b.packet_id, c.packet_id),
            (Some(pid_b), Some(pid_c)),
            "original identifiers"
        );
        assert_eq!(
            payloads(&pair.server_events),
            ["a", "b", "c"],
            "{v}: each delivered once"
        );
        assert_eq!(delivered(&pair.client_events).len(), 3);
        assert_eq!(pair.client.state().inflight_len(), 0);
    }
}

/// Server side of [MQTT-4.4.0-1]: unacknowledged PUBLISH (DUP) and PUBREL
/// re-sent in order; messages published to the offline session are queued
/// (QoS 1 and 2) and sent after them, while QoS 0 to an offline session is
/// refused (MQTT 5.0 section 4.1: QoS 0 messages are optional session state,
/// here not kept).
#[test]
fn server_resends_unacknowledged_and_queued_messages_on_resumption() {
    for v in BOTH {
        let mut pair = Pair::new(persistent_cfg(v), ServerConfig::default());
        pair.establish();
        pair.server
            .publish(pair.now, msg("t", "a", QoS::ExactlyOnce))
            .unwrap();
        pair.server
            .publish(pair.now, msg("t", "b", QoS::AtLeastOnce))
            .unwrap();
        pair.server
            .publish(pair.now, msg("t", "c", QoS::ExactlyOnce))
            .unwrap();
        pair.deliver_to_client(1); // a; PUBREC back
        pair.deliver_to_server(1); // PUBREC a; PUBREL a queued, then lost
        let pid_a = wire_publishes(&pair, false)[0].packet_id.unwrap();
        pair.cut();
        assert!(!pair.server.is_connected());

        // The client is away.
        pair.server
            .publish(pair.now, msg("t", "d", QoS::AtLeastOnce))
            .unwrap();
        pair.server
            .publish(pair.now, msg("t", "e", QoS::ExactlyOnce))
            .unwrap();
        assert_eq!(
            pair.server
                .publish(pair.now, msg("t", "zero", QoS::AtMostOnce)),
            Err(UsageError::NotConnected)
        );

        let reconnect = pair.wire.len();
        pair.establish();
        let to_client = wire_from(&pair, reconnect, false);
        assert!(
            matches!(&to_client[0], Packet::ConnAck(a) if a.session_present),
            "{v}"
        );
        let summary: Vec<(String, bool)> = to_client[1..]
            .iter()
            .take(5)
            .filter_map(|p| match p {
                Packet::PubRel(r) => Some((format!("PUBREL {}", r.packet_id), false)),
                Packet::Publish(p) => {
                    Some((String::from_utf8_lossy(&p.payload).into_owned(), p.dup))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            summary,
            [
                (format!("PUBREL {pid_a}"), false),
                ("b".to_owned(), true),
                ("c".to_owned(), true),
                ("d".to_owned(), false),
                ("e".to_owned(), false),
            ],
            "{v}"
        );
        assert_eq!(payloads(&pair.client_events), ["a", "b", "c", "d", "e"]);
        assert_eq!(delivered(&pair.server_events).len(), 5);
        assert_eq!(
            pair.server.state().inflight_len() + pair.server.state().queued_len(),
            0
        );
    }
}

/// [MQTT-3.3.4-9]: "The Server MUST NOT send more than Receive Maximum QoS 1
/// and QoS 2 PUBLISH packets for which it has not received PUBACK, PUBCOMP,
/// or PUBREC with a Reason Code of 128 or greater from the Client." The
/// Receive Maximum is the one of the *current* connection: a client that
/// resumes its session with a smaller Receive Maximum than before is sent
/// the unacknowledged PUBLISH packets as its acknowledgements free the
/// window, still in their original order with DUP [MQTT-4.4.0-1],
/// [MQTT-4.6.0-1], and the messages queued meanwhile after them. A QoS 2
/// flow past PUBREC counts until PUBCOMP, and its PUBREL is re-sent at
/// once.
#[test]
fn server_resumption_respects_the_new_receive_maximum() {
    let now = Instant::now();
    let connect = |clean: bool, receive_maximum: Option<NonZeroU16>| {
        let mut c = Connect::new(ProtocolVersion::V5, Utf8Bytes::from_static("c1"));
        c.clean_start = clean;
        c.properties.session_expiry_interval = Some(3600);
        c.properties.receive_maximum = receive_maximum;
        c
    };
    let accepted = |c: Connect, accept: Accept| {
        let mut s = ServerSession::new(ServerConfig::default(), now);
        s.handle_packet(now, c.into());
        assert!(matches!(s.poll_event(), Some(Event::Connect(_))));
        s.accept(now, accept).unwrap();
        s
    };
    let sent = |s: &mut ServerSession| std::iter::from_fn(|| s.poll_transmit()).collect::<Vec<_>>();

    // First connection, default Receive Maximum: "q2" (QoS 2) and m1..m9
    // (QoS 1) are sent; only q2 gets its PUBREC.
    let mut first = accepted(connect(true, None), Accept::new());
    first
        .publish(now, msg("t", "q2", QoS::ExactlyOnce))
        .unwrap();
    let names: Vec<&'static str> = vec!["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9"];
    for m in &names {
        first.publish(now, msg("t", m, QoS::AtLeastOnce)).unwrap();
    }
    let out = sent(&mut first);
    assert_eq!(
        out.iter()
            .filter(|p| matches!(p, Packet::Publish(_)))
            .count(),
        10
    );
    let Some(Packet::Publish(q2)) = out.get(1) else {
        panic!("{out:?}")
    };
    let q2 = q2.packet_id.unwrap();
    first.handle_packet(now, PubRec::new(q2).into());
    first.connection_lost(now);
    let mut state = first.take_state();
    assert_eq!(state.inflight_len(), 10);
    // Queued while the client is away.
    let mut away = ServerSession::restore(ServerConfig::default(), state, now);
    away.publish(now, msg("t", "later", QoS::AtLeastOnce))
        .unwrap();
    state = away.take_state();

    // The client comes back with Receive Maximum 2.
    let mut second = accepted(connect(false, NonZeroU16::new(2)), Accept::resume(state));
    // Flows open towards the client: PUBLISH unacknowledged, or PUBREL
    // awaiting PUBCOMP.
    let mut open: Vec<Packet> = Vec::new();
    let mut order = Vec::new();
    for round in 0..20 {
        for p in sent(&mut second) {
            match &p {
                Packet::Publish(x) => {
                    let name = String::from_utf8_lossy(&x.payload).into_owned();
                    order.push((name, x.dup));
                    open.push(p);
                }
                Packet::PubRel(r) => {
                    assert_eq!((round, r.packet_id), (0, q2), "PUBREL once, at once");
                    open.push(p);
                }
                Packet::ConnAck(a) => assert!(a.session_present),
                other => panic!("{other:?}"),
            }
            assert!(
                open.len() <= 2,
                "round {round}: {} flows open: {open:?}",
                open.len()
            );
        }
        // The client completes the oldest open flow.
        if open.is_empty() {
            break;
        }
        let ack: Packet = match open.remove(0) {
            Packet::Publish(x) => PubAck::new(x.packet_id.unwrap()).into(),
            Packet::PubRel(r) => PubComp::new(r.packet_id).into(),
            other => panic!("{other:?}"),
        };
        second.handle_packet(now, ack);
    }
    let expected: Vec<(String, bool)> = names
        .iter()
        .map(|m| ((*m).to_owned(), true))
        .chain([("later".to_owned(), false)])
        .collect();
    assert_eq!(order, expected);
    assert_eq!(
        second.state().inflight_len() + second.state().queued_len(),
        0
    );
}

/// "If the Client does have Session State and receives Session Present set
/// to 0 it MUST discard its Session State" [MQTT-3.2.2-5]: the client reports
/// the lost subscriptions and in-flight messages (Event::SessionLost) and
/// each message as Dropped { SessionLost }.
#[test]
fn client_reports_session_lost_when_the_server_does_not_resume() {
    for v in BOTH {
        let mut pair = Pair::new(persistent_cfg(v), ServerConfig::default());
        pair.establish();
        let filter: TopicFilter = "a/+".parse().unwrap();
        pair.client
            .subscribe(
                pair.now,
                vec![(filter.clone(), SubscriptionOptions::new(QoS::AtLeastOnce))],
                None,
            )
            .unwrap();
        pair.drive();
        assert_eq!(pair.client.state().subscriptions().count(), 1);
        let m1 = msg("t", "one", QoS::AtLeastOnce);
        let m2 = msg("t", "two", QoS::ExactlyOnce);
        let id1 = pair.client.publish(pair.now, m1.clone()).unwrap();
        let id2 = pair.client.publish(pair.now, m2.clone()).unwrap();
        pair.cut();

        pair.auto_broker = false;
        pair.connect();
        pair.deliver_to_server(1);
        assert!(matches!(pair.server_events.last(), Some(Event::Connect(c)) if !c.clean_start));
        pair.server.accept(pair.now, Accept::new()).unwrap(); // no session kept
        pair.drive();
        assert!(pair.client.is_connected());
        let lost: Vec<&Event> = pair
            .client_events
            .iter()
            .filter(|e| matches!(e, Event::SessionLost { .. }))
            .collect();
        let expected = Event::SessionLost {
            subscriptions: vec![(filter, SubscriptionOptions::new(QoS::AtLeastOnce))],
            unacknowledged: vec![(id1, m1), (id2, m2)],
        };
        assert_eq!(lost, [&expected], "{v}");
        assert_eq!(
            dropped(&pair.client_events),
            [
                (id1, DropReason::SessionLost),
                (id2, DropReason::SessionLost)
            ]
        );
        assert_eq!(pair.client.state().subscriptions().count(), 0);
        assert_eq!(pair.client.state().inflight_len(), 0);
        // Nothing is re-sent on the new connection.
        assert!(messages(&pair.server_events).is_empty());
    }
}

// ---------------------------------------------------------------------------
// Packet identifiers, SUBACK and UNSUBACK
// ---------------------------------------------------------------------------

/// "Each time a Client sends a new SUBSCRIBE, UNSUBSCRIBE, or PUBLISH (where
/// QoS > 0) MQTT Control Packet it MUST assign it a non-zero Packet
/// Identifier that is currently unused" [MQTT-2.2.1-3]: identifiers held by
/// a pending SUBSCRIBE and UNSUBSCRIBE are skipped by PUBLISH, also when the
/// allocator wraps around 65,535, and the other way round.
#[test]
fn subscribe_and_unsubscribe_ids_never_collide_with_publish_ids() {
    let (mut c, now) = hand_client(client_cfg(ProtocolVersion::V5), ConnAck::default());
    // Publish ids in flight, then SUBSCRIBE / UNSUBSCRIBE take others.
    let mut in_flight = HashSet::new();
    for _ in 0..3 {
        c.publish(now, msg("t", "x", QoS::AtLeastOnce)).unwrap();
    }
    for p in transmitted(&mut c) {
        let Packet::Publish(p) = p else { panic!() };
        in_flight.insert(p.packet_id.unwrap());
    }
    let sub = c
        .subscribe(
            now,
            vec![(
                "s".parse().unwrap(),
                SubscriptionOptions::new(QoS::AtMostOnce),
            )],
            None,
        )
        .unwrap();
    let unsub = c.unsubscribe(now, vec!["u".parse().unwrap()]).unwrap();
    assert!(!in_flight.contains(&sub) && !in_flight.contains(&unsub) && sub != unsub);
    let out = transmitted(&mut c);
    assert!(
        matches!(&out[..], [Packet::Subscribe(s), Packet::Unsubscribe(u)] if s.packet_id == sub && u.packet_id == unsub)
    );
    for p in in_flight {
        c.handle_packet(now, PubAck::new(p).into());
    }
    // 70,000 QoS 1 messages, each acknowledged at once: the allocator wraps
    // and never hands out the two reserved identifiers.
    let mut used = HashSet::new();
    for _ in 0..70_000 {
        c.publish(now, msg("t", "x", QoS::AtLeastOnce)).unwrap();
        let Some(Packet::Publish(p)) = c.poll_transmit() else {
            panic!()
        };
        let p = p.packet_id.unwrap();
        assert!(
            p != sub && p != unsub,
            "packet id {p} is held by SUBSCRIBE/UNSUBSCRIBE"
        );
        used.insert(p);
        c.handle_packet(now, PubAck::new(p).into());
        while c.poll_event().is_some() {}
    }
    assert_eq!(used.len(), 65_533, "every other identifier was used");
    assert!(c.is_connected());
}

/// SUBACK and UNSUBACK reach the client as events with their codes; the
/// client keeps the granted subscriptions (MQTT 5.0 sections 3.9, 3.11; a
/// 3.1.1 UNSUBACK has no payload).
#[test]
fn suback_and_unsuback_reach_the_client_and_it_tracks_subscriptions() {
    for v in BOTH {
        let mut s = ServerConfig::default();
        s.maximum_qos = QoS::AtLeastOnce;
        let mut pair = Pair::new(client_cfg(v), s);
        pair.establish();
        let a: TopicFilter = "a/+".parse().unwrap();
        let b: TopicFilter = "b/#".parse().unwrap();
        let sub = pair
            .client
            .subscribe(
                pair.now,
                vec![
                    (a.clone(), SubscriptionOptions::new(QoS::AtMostOnce)),
                    (b.clone(), SubscriptionOptions::new(QoS::ExactlyOnce)),
                ],
                None,
            )
            .unwrap();
        pair.drive();
        let subacks = pair.client_events(|e| match e {
            Event::SubAck { packet_id, reasons } => Some((*packet_id, reasons.clone())),
            _ => None,
        });
        // QoS 2 is granted as QoS 1, the server's maximum.
        assert_eq!(
            subacks,
            [(sub, vec![ReasonCode::Success, ReasonCode::GrantedQoS1])],
            "{v}"
        );
        let subs: Vec<(TopicFilter, QoS)> = pair
            .client
            .state()
            .subscriptions()
            .map(|(f, s)| (f.clone(), s.options.qos))
            .collect();
        assert_eq!(
            subs,
            [(a.clone(), QoS::AtMostOnce), (b.clone(), QoS::AtLeastOnce)]
        );

        let unsub = pair.client.unsubscribe(pair.now, vec![a.clone()]).unwrap();
        assert_ne!(unsub, sub);
        pair.drive();
        let unsubacks = pair.client_events(|e| match e {
            Event::UnsubAck { packet_id, reasons } => Some((*packet_id, reasons.clone())),
            _ => None,
        });
        let reasons = if v.is_v5() {
            vec![ReasonCode::Success]
        } else {
            vec![]
        };
        assert_eq!(unsubacks, [(unsub, reasons)], "{v}");
        let subs: Vec<TopicFilter> = pair
            .client
            .state()
            .subscriptions()
            .map(|(f, _)| f.clone())
            .collect();
        assert_eq!(subs, [b]);
        assert!(pair.server_events.contains(&Event::Unsubscribed(vec![a])));
        // Not connected: refused.
        pair.cut();
        assert_eq!(
            pair.client.subscribe(
                pair.now,
                vec![("x".parse().unwrap(), SubscriptionOptions::default())],
                None
            ),
            Err(UsageError::NotConnected)
        );
    }
}

// ---------------------------------------------------------------------------
// Flow control: the bounded queue
// ---------------------------------------------------------------------------

/// With QueuePolicy::DropNew a full queue refuses the new message; what was
/// queued is delivered in order once connected.
#[test]
fn queue_limit_drop_new_refuses_the_new_message() {
    let mut c = client_cfg(ProtocolVersion::V5);
    c.max_queued = 2;
    let mut pair = Pair::new(c, ServerConfig::default());
    pair.client
        .publish(pair.now, msg("t", "1", QoS::AtLeastOnce))
        .unwrap();
    pair.client
        .publish(pair.now, msg("t", "2", QoS::AtLeastOnce))
        .unwrap();
    assert_eq!(
        pair.client
            .publish(pair.now, msg("t", "3", QoS::AtLeastOnce)),
        Err(UsageError::QueueFull)
    );
    assert_eq!(pair.client.state().queued_len(), 2);
    pair.establish();
    assert_eq!(payloads(&pair.server_events), ["1", "2"]);
    assert!(dropped(&pair.client_events).is_empty());
}

/// With QueuePolicy::DropOldest the oldest queued message makes room and is
/// reported Dropped { QueueFull }.
#[test]
fn queue_limit_drop_oldest_drops_the_oldest() {
    let mut c = client_cfg(ProtocolVersion::V5);
    c.max_queued = 2;
    c.queue_policy = QueuePolicy::DropOldest;
    let mut pair = Pair::new(c, ServerConfig::default());
    let id1 = pair
        .client
        .publish(pair.now, msg("t", "1", QoS::AtLeastOnce))
        .unwrap();
    pair.client
        .publish(pair.now, msg("t", "2", QoS::AtLeastOnce))
        .unwrap();
    pair.client
        .publish(pair.now, msg("t", "3", QoS::ExactlyOnce))
        .unwrap();
    assert_eq!(pair.client.state().queued_len(), 2);
    assert_eq!(
        pair.client.poll_event(),
        Some(Event::Dropped {
            id: id1,
            reason: DropReason::QueueFull
        })
    );
    pair.establish();
    assert_eq!(payloads(&pair.server_events), ["2", "3"]);
}

// ---------------------------------------------------------------------------
// Manual acknowledgement
// ---------------------------------------------------------------------------

/// With manual_ack, a QoS 1 message carries `ack: Some(pid)` and the PUBACK
/// goes only when the application calls `ack`, exactly once.
#[test]
fn manual_ack_qos1_sends_puback_only_on_ack() {
    for v in BOTH {
        let mut c = client_cfg(v);
        c.manual_ack = true;
        let mut pair = Pair::new(c, ServerConfig::default());
        pair.establish();
        let start = pair.wire.len();
        let id = pair
            .server
            .publish(pair.now, msg("t", "m", QoS::AtLeastOnce))
            .unwrap();
        pair.drive();
        let acks = pair.client_events(|e| match e {
            Event::Message { ack, .. } => Some(*ack),
            _ => None,
        });
        let [Some(pid)] = acks[..] else {
            panic!("{v}: {acks:?}")
        };
        assert_eq!(wire_from(&pair, start, true), [], "no PUBACK before ack");
        pair.advance(Duration::from_secs(1));
        assert!(delivered(&pair.server_events).is_empty());

        pair.client.ack(pair.now, pid).unwrap();
        pair.drive();
        let pubacks = wire_from(&pair, start, true)
            .into_iter()
            .filter(|p| matches!(p, Packet::PubAck(_)))
            .count();
        assert_eq!(pubacks, 1);
        assert_eq!(delivered(&pair.server_events), [(id, ReasonCode::Success)]);
        assert_eq!(
            pair.client.ack(pair.now, pid),
            Err(UsageError::NotAwaitingAck(pid.get()))
        );
        assert_eq!(
            pair.client.ack(pair.now, PacketId::new(999).unwrap()),
            Err(UsageError::NotAwaitingAck(999))
        );
        pair.drive();
        let pubacks = wire_from(&pair, start, true)
            .into_iter()
            .filter(|p| matches!(p, Packet::PubAck(_)))
            .count();
        assert_eq!(pubacks, 1, "exactly one PUBACK");
        // QoS 0 has nothing to acknowledge.
        pair.server
            .publish(pair.now, msg("t", "zero", QoS::AtMostOnce))
            .unwrap();
        pair.drive();
        assert!(matches!(
            pair.client_events.last(),
            Some(Event::Message { ack: None, .. })
        ));
    }
}

/// With manual_ack, a QoS 2 message's PUBREC waits for `ack`; then the
/// exchange completes.
#[test]
fn manual_ack_qos2_sends_pubrec_only_on_ack() {
    for v in BOTH {
        let mut c = client_cfg(v);
        c.manual_ack = true;
        let mut pair = Pair::new(c, ServerConfig::default());
        pair.establish();
        let start = pair.wire.len();
        let id = pair
            .server
            .publish(pair.now, msg("t", "m", QoS::ExactlyOnce))
            .unwrap();
        pair.drive();
        let acks = pair.client_events(|e| match e {
            Event::Message { ack, .. } => Some(*ack),
            _ => None,
        });
        let [Some(pid)] = acks[..] else {
            panic!("{v}: {acks:?}")
        };
        assert_eq!(wire_from(&pair, start, true), [], "no PUBREC before ack");
        pair.client.ack(pair.now, pid).unwrap();
        pair.drive();
        assert_eq!(
            wire_from(&pair, start, true),
            [
                Packet::PubRec(PubRec::new(pid)),
                Packet::PubComp(PubComp::new(pid))
            ]
        );
        assert_eq!(delivered(&pair.server_events), [(id, ReasonCode::Success)]);
        assert_eq!(
            pair.client.ack(pair.now, pid),
            Err(UsageError::NotAwaitingAck(pid.get()))
        );
        assert_eq!(payloads(&pair.client_events), ["m"]);
    }
}

// ---------------------------------------------------------------------------
// Topic aliases (5.0)
// ---------------------------------------------------------------------------

/// Client to server: with a server Topic Alias Maximum above 0, the first
/// PUBLISH to a topic sets an alias and the next ones send an empty topic
/// with the alias (MQTT 5.0 section 3.3.2.3.4, [MQTT-3.3.2-9]); the server
/// delivers the full topic.
#[test]
fn v5_topic_alias_client_to_server() {
    let mut pair = Pair::new(client_cfg(ProtocolVersion::V5), ServerConfig::default());
    pair.establish();
    for p in ["1", "2", "3"] {
        pair.client
            .publish(pair.now, msg("sensors/temp", p, QoS::AtLeastOnce))
            .unwrap();
    }
    pair.client
        .publish(pair.now, msg("sensors/hum", "4", QoS::AtMostOnce))
        .unwrap();
    pair.drive();
    let wire: Vec<(String, Option<u16>)> = wire_publishes(&pair, true)
        .iter()
        .map(|p| {
            (
                p.topic.as_str().to_owned(),
                p.properties.topic_alias.map(|a| a.get()),
            )
        })
        .collect();
    assert_eq!(
        wire,
        [
            ("sensors/temp".to_owned(), Some(1)),
            (String::new(), Some(1)),
            (String::new(), Some(1)),
            ("sensors/hum".to_owned(), Some(2)),
        ]
    );
    let got: Vec<(String, Option<NonZeroU16>)> = messages(&pair.server_events)
        .iter()
        .map(|m| (m.topic.as_str().to_owned(), m.properties.topic_alias))
        .collect();
    assert_eq!(
        got,
        [
            ("sensors/temp".to_owned(), None),
            ("sensors/temp".to_owned(), None),
            ("sensors/temp".to_owned(), None),
            ("sensors/hum".to_owned(), None),
        ]
    );
}

/// With a server Topic Alias Maximum of 0 the client sends no alias
/// [MQTT-3.3.2-9]; aliases are per connection: after a reconnect the topic
/// is sent in full again [MQTT-3.3.2-7].
#[test]
fn v5_no_topic_alias_when_server_allows_none_and_none_across_connections() {
    let mut s = ServerConfig::default();
    s.topic_alias_maximum = 0;
    let mut pair = Pair::new(client_cfg(ProtocolVersion::V5), s);
    pair.establish();
    for _ in 0..2 {
        pair.client
            .publish(pair.now, msg("t/x", "p", QoS::AtMostOnce))
            .unwrap();
    }
    pair.drive();
    assert!(
        wire_publishes(&pair, true)
            .iter()
            .all(|p| p.topic.as_str() == "t/x" && p.properties.topic_alias.is_none())
    );

    let mut pair = Pair::new(persistent_cfg(ProtocolVersion::V5), ServerConfig::default());
    pair.establish();
    pair.client
        .publish(pair.now, msg("t/x", "1", QoS::AtMostOnce))
        .unwrap();
    pair.drive();
    pair.cut();
    pair.establish();
    pair.client
        .publish(pair.now, msg("t/x", "2", QoS::AtMostOnce))
        .unwrap();
    pair.drive();
    let topics: Vec<String> = wire_publishes(&pair, true)
        .iter()
        .map(|p| p.topic.as_str().to_owned())
        .collect();
    assert_eq!(topics, ["t/x", "t/x"]);
    assert_eq!(payloads(&pair.server_events), ["1", "2"]);
}

/// Server to client: the client's Topic Alias Maximum governs
/// [MQTT-3.3.2-11]; the client delivers the full topic.
#[test]
fn v5_topic_alias_server_to_client() {
    let mut c = client_cfg(ProtocolVersion::V5);
    c.topic_alias_maximum = 1;
    let mut pair = Pair::new(c, ServerConfig::default());
    pair.establish();
    for (t, p) in [("a/1", "1"), ("a/1", "2"), ("a/2", "3"), ("a/2", "4")] {
        pair.server
            .publish(pair.now, msg(t, p, QoS::AtLeastOnce))
            .unwrap();
    }
    pair.drive();
    let wire: Vec<(String, Option<u16>)> = wire_publishes(&pair, false)
        .iter()
        .map(|p| {
            (
                p.topic.as_str().to_owned(),
                p.properties.topic_alias.map(|a| a.get()),
            )
        })
        .collect();
    // Only one alias allowed: the second topic is always sent in full.
    assert_eq!(
        wire,
        [
            ("a/1".to_owned(), Some(1)),
            (String::new(), Some(1)),
            ("a/2".to_owned(), None),
            ("a/2".to_owned(), None),
        ]
    );
    let topics: Vec<String> = messages(&pair.client_events)
        .iter()
        .map(|m| m.topic.as_str().to_owned())
        .collect();
    assert_eq!(topics, ["a/1", "a/1", "a/2", "a/2"]);
}

fn aliased(alias: u16, topic: &'static str) -> Publish {
    let mut p = Publish::new(mqtt_codec::PublishTopic::from_static(topic), "x");
    p.properties.to_mut().topic_alias = NonZeroU16::new(alias);
    p
}

/// A PUBLISH with an empty topic and an alias the receiver never saw is a
/// Protocol Error (MQTT 5.0 section 3.3.2.3.4: DISCONNECT 0x82), and an alias
/// above the receiver's Topic Alias Maximum is 0x94 Topic Alias invalid
/// ([MQTT-3.3.2-10], [MQTT-3.3.2-12]). Server as receiver.
#[test]
fn v5_server_disconnects_on_unknown_or_out_of_range_topic_alias() {
    for (p, code) in [
        (aliased(3, ""), ReasonCode::ProtocolError),
        (aliased(65, "t"), ReasonCode::TopicAliasInvalid),
    ] {
        let mut pair = Pair::new(client_cfg(ProtocolVersion::V5), ServerConfig::default()); // max 64
        pair.establish();
        pair.server.handle_packet(pair.now, p.into());
        let out: Vec<Packet> = std::iter::from_fn(|| pair.server.poll_transmit()).collect();
        assert_disconnect(&out, code);
        pair.pump_events();
        let closed = pair.server_events(|e| match e {
            Event::Closed(r) => Some(r.clone()),
            _ => None,
        });
        assert!(
            matches!(&closed[..], [CloseReason::ProtocolError(e)] if e.reason_code() == code),
            "{closed:?}"
        );
        assert!(!pair.server.is_connected());
        assert!(messages(&pair.server_events).is_empty());
    }
}

/// The same rules with the client as receiver (its Topic Alias Maximum is
/// 16 by default).
#[test]
fn v5_client_disconnects_on_unknown_or_out_of_range_topic_alias() {
    for (p, code) in [
        (aliased(2, ""), ReasonCode::ProtocolError),
        (aliased(17, "t"), ReasonCode::TopicAliasInvalid),
    ] {
        let (mut c, now) = hand_client(client_cfg(ProtocolVersion::V5), ConnAck::default());
        // A known alias works.
        c.handle_packet(now, aliased(1, "known").into());
        c.handle_packet(now, aliased(1, "").into());
        let topics: Vec<String> = messages(&client_events(&mut c))
            .iter()
            .map(|m| m.topic.as_str().to_owned())
            .collect();
        assert_eq!(topics, ["known", "known"]);
        c.handle_packet(now, p.into());
        assert_disconnect(&transmitted(&mut c), code);
        let ev = client_events(&mut c);
        assert!(
            matches!(&ev[..], [Event::Closed(CloseReason::ProtocolError(e))] if e.reason_code() == code),
            "{ev:?}"
        );
        assert!(!c.is_connected());
    }
}

// ---------------------------------------------------------------------------
// Maximum Packet Size
// ---------------------------------------------------------------------------

/// "The Server MUST NOT send packets exceeding Maximum Packet Size to the
/// Client" [MQTT-3.1.2-24]; "Where a Packet is too large to send, the Server
/// MUST discard it without sending it and then behave as if it had completed
/// sending that Application Message" [MQTT-3.1.2-25]. A later small message
/// still goes.
#[test]
fn v5_message_over_client_maximum_packet_size_is_dropped() {
    let mut c = client_cfg(ProtocolVersion::V5);
    c.max_packet_size = NonZeroU32::new(64);
    let mut pair = Pair::new(c, ServerConfig::default());
    pair.establish();
    let big = Message::new(
        "t".parse().unwrap(),
        vec![0u8; 200],
        QoS::AtLeastOnce,
        false,
    );
    let id = pair.server.publish(pair.now, big).unwrap();
    pair.drive();
    assert_eq!(dropped(&pair.server_events), [(id, DropReason::TooLarge)]);
    assert!(wire_publishes(&pair, false).is_empty());
    assert_eq!(pair.server.state().inflight_len(), 0);
    let small = pair
        .server
        .publish(pair.now, msg("t", "small", QoS::AtLeastOnce))
        .unwrap();
    pair.drive();
    assert_eq!(payloads(&pair.client_events), ["small"]);
    assert_eq!(
        delivered(&pair.server_events),
        [(small, ReasonCode::Success)]
    );
}

/// A 5.0 server session that accepted a client announcing Maximum Packet
/// Size `max`, with `accept`; its CONNACK.
fn accepted_with_maximum_packet_size(max: u32, accept: Accept) -> (ServerSession, ConnAck) {
    let now = Instant::now();
    let mut c = Connect::new(ProtocolVersion::V5, Utf8Bytes::from_static("c1"));
    c.properties.maximum_packet_size = NonZeroU32::new(max);
    let mut s = ServerSession::new(ServerConfig::default(), now);
    s.handle_packet(now, c.into());
    assert!(matches!(s.poll_event(), Some(Event::Connect(_))));
    s.accept(now, accept).unwrap();
    let Some(Packet::ConnAck(ack)) = s.poll_transmit() else {
        panic!("no CONNACK")
    };
    while s.poll_event().is_some() {}
    (s, *ack)
}

/// [MQTT-3.14.2-3]: "The sender MUST NOT send this property [Reason String]
/// if it would increase the size of the DISCONNECT packet beyond the Maximum
/// Packet Size specified by the receiver"; more generally [MQTT-3.1.2-24]
/// the Server MUST NOT send packets exceeding the client's Maximum Packet
/// Size. The DISCONNECT for a protocol error keeps its reason code and
/// drops the Reason String that explains it.
#[test]
fn v5_disconnect_for_a_protocol_error_respects_the_client_maximum_packet_size() {
    let now = Instant::now();
    for (max, reason_string) in [(16, false), (1024, true)] {
        let (mut s, _) = accepted_with_maximum_packet_size(max, Accept::new());
        // A protocol error: PUBLISH with QoS 1 and a Subscription Identifier.
        let mut p = Publish::new(mqtt_codec::PublishTopic::from_static("t"), "x");
        p.qos = QoS::AtLeastOnce;
        p.packet_id = PacketId::new(1);
        p.properties
            .to_mut()
            .subscription_identifiers
            .push(mqtt_codec::SubscriptionId::new(1).unwrap());
        s.handle_packet(now, p.into());
        let sent: Vec<Packet> = std::iter::from_fn(|| s.poll_transmit()).collect();
        let [Packet::Disconnect(d)] = &sent[..] else {
            panic!("{sent:?}")
        };
        assert_eq!(d.reason, ReasonCode::ProtocolError);
        let len = Packet::Disconnect(d.clone())
            .encoded_len(ProtocolVersion::V5)
            .unwrap();
        assert!(
            len <= max as usize,
            "DISCONNECT of {len} bytes sent to a client with Maximum Packet Size {max}: {d:?}"
        );
        assert_eq!(d.properties.reason_string.is_some(), reason_string, "{d:?}");
    }
}

/// [MQTT-3.2.2-19], [MQTT-3.2.2-20]: the Server MUST NOT send the Reason
/// String, nor User Properties, if they would increase the size of the
/// CONNACK beyond the Maximum Packet Size the client specified; the rest of
/// CONNACK (the Assigned Client Identifier, the capabilities) stays.
#[test]
fn v5_connack_respects_the_client_maximum_packet_size() {
    let accept = || {
        let mut a = Accept::new();
        a.assigned_client_identifier = Some(Utf8Bytes::from_static("id"));
        a.properties.reason_string = Some(Utf8Bytes::from_static("welcome, and a long text"));
        a.properties.user_properties.push(UserProperty::new(
            Utf8Bytes::from_static("k"),
            Utf8Bytes::from_static("a value"),
        ));
        a
    };
    let len = |a: &ConnAck| {
        Packet::ConnAck(Box::new(a.clone()))
            .encoded_len(ProtocolVersion::V5)
            .unwrap()
    };
    let (_, full) = accepted_with_maximum_packet_size(1024, accept());
    assert!(full.properties.reason_string.is_some());
    assert_eq!(full.properties.user_properties.len(), 1);
    // Room for the user property, not for the Reason String as well.
    let without_reason = len(&full) - 2 - "welcome, and a long text".len();
    let (_, ack) =
        accepted_with_maximum_packet_size(u32::try_from(without_reason).unwrap(), accept());
    assert_eq!(ack.properties.reason_string, None);
    assert_eq!(ack.properties.user_properties.len(), 1);
    // Room for neither.
    let (_, ack) = accepted_with_maximum_packet_size(16, accept());
    assert!(len(&ack) <= 16, "{ack:?}");
    assert_eq!(ack.reason, ReasonCode::Success);
    assert_eq!(ack.properties.reason_string, None);
    assert!(ack.properties.user_properties.is_empty());
    assert_eq!(
        ack.properties
            .assigned_client_identifier
            .as_ref()
            .map(Utf8Bytes::as_str),
        Some("id")
    );
}

/// "The Client MUST NOT send packets exceeding Maximum Packet Size to the
/// Server" [MQTT-3.2.2-15]: the client drops the message the same way.
#[test]
fn v5_message_over_server_maximum_packet_size_is_dropped() {
    let mut s = ServerConfig::default();
    s.max_packet_size = NonZeroU32::new(64);
    let mut pair = Pair::new(client_cfg(ProtocolVersion::V5), s);
    pair.establish();
    let big = Message::new(
        "t".parse().unwrap(),
        vec![0u8; 200],
        QoS::ExactlyOnce,
        false,
    );
    let id = pair.client.publish(pair.now, big).unwrap();
    let small = pair
        .client
        .publish(pair.now, msg("t", "small", QoS::AtMostOnce))
        .unwrap();
    pair.drive();
    assert_eq!(dropped(&pair.client_events), [(id, DropReason::TooLarge)]);
    assert_eq!(
        delivered(&pair.client_events),
        [(small, ReasonCode::Success)]
    );
    assert_eq!(payloads(&pair.server_events), ["small"]);
    assert_eq!(pair.client.state().inflight_len(), 0);
}

// ---------------------------------------------------------------------------
// Message expiry
// ---------------------------------------------------------------------------

fn expiring(secs: u32) -> Message {
    let mut m = msg("t", "exp", QoS::AtLeastOnce);
    m.properties.to_mut().message_expiry_interval = Some(secs);
    m
}

/// A message queued while disconnected whose Message Expiry Interval passes
/// before the reconnection is not sent, and is reported Expired (MQTT 5.0
/// section 3.3.2.3.3).
#[test]
fn v5_message_queued_while_disconnected_expires() {
    let mut pair = Pair::new(persistent_cfg(ProtocolVersion::V5), ServerConfig::default());
    pair.establish();
    pair.cut();
    let id = pair.client.publish(pair.now, expiring(10)).unwrap();
    pair.advance(Duration::from_secs(20));
    pair.establish();
    assert_eq!(dropped(&pair.client_events), [(id, DropReason::Expired)]);
    assert!(wire_publishes(&pair, true).is_empty());
    assert!(messages(&pair.server_events).is_empty());
}

/// A queued message sent before it expires carries the remaining interval:
/// "set to the received value minus the time that the Application Message
/// has been waiting" [MQTT-3.3.2-6]; 10 s queued for 3 s leaves 7. The same
/// holds on the server side for a message queued for an offline client.
#[test]
fn v5_message_queued_while_disconnected_is_sent_with_the_remaining_interval() {
    let mut pair = Pair::new(persistent_cfg(ProtocolVersion::V5), ServerConfig::default());
    pair.establish();
    pair.cut();
    pair.client.publish(pair.now, expiring(10)).unwrap();
    pair.server.publish(pair.now, expiring(30)).unwrap();
    pair.advance(Duration::from_secs(3));
    pair.establish();
    let up = wire_publishes(&pair, true);
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].properties.message_expiry_interval, Some(7));
    assert_eq!(
        messages(&pair.server_events)[0]
            .properties
            .message_expiry_interval,
        Some(7)
    );
    let down = wire_publishes(&pair, false);
    assert_eq!(down.len(), 1);
    assert_eq!(down[0].properties.message_expiry_interval, Some(27));
    assert!(dropped(&pair.client_events).is_empty());
}

/// [MQTT-3.2.2-11]: a QoS 2 message queued before CONNACK is not sent above
/// the server's Maximum QoS; it is reported dropped.
#[test]
fn v5_queued_qos2_is_not_sent_above_server_maximum_qos() {
    let mut s = ServerConfig::default();
    s.maximum_qos = QoS::AtLeastOnce;
    let mut pair = Pair::new(client_cfg(ProtocolVersion::V5), s);
    let id = pair
        .client
        .publish(pair.now, msg("t", "early", QoS::ExactlyOnce))
        .unwrap();
    pair.connect();
    pair.drive();
    let sent = wire_publishes(&pair, true);
    assert!(
        sent.iter().all(|p| p.qos <= QoS::AtLeastOnce),
        "sent above Maximum QoS: {sent:?}"
    );
    assert!(pair.client.is_connected(), "{:?}", pair.client_events);
    assert!(pair.client_events.contains(&Event::Dropped {
        id,
        reason: mqtt_session::DropReason::NotSupported
    }));
}

/// [MQTT-3.3.2-6]: a message re-sent on resumption carries the expiry
/// interval minus the time it has waited.
#[test]
fn v5_resent_message_carries_the_remaining_expiry() {
    let mut pair = Pair::new(persistent_cfg(ProtocolVersion::V5), ServerConfig::default());
    pair.establish();
    pair.server.publish(pair.now, expiring(10)).unwrap();
    pair.cut();
    pair.advance(Duration::from_secs(4));
    pair.establish();
    let down = wire_publishes(&pair, false);
    assert_eq!(down.len(), 1);
    assert!(down[0].dup);
    assert_eq!(down[0].properties.message_expiry_interval, Some(6));
}

/// "It is a Protocol Error if the Topic Name is zero length and there is no
/// Topic Alias" (MQTT 5.0 section 3.3.2.1).
#[test]
fn v5_empty_topic_without_alias_is_a_protocol_error() {
    let mut pair = Pair::new(client_cfg(ProtocolVersion::V5), ServerConfig::default());
    pair.establish();
    pair.server.handle_packet(
        pair.now,
        Publish::new(mqtt_codec::PublishTopic::empty(), "x").into(),
    );
    let out: Vec<Packet> = std::iter::from_fn(|| pair.server.poll_transmit()).collect();
    assert_disconnect(&out, ReasonCode::ProtocolError);
}

/// Exactly one DISCONNECT with `code`, saying what went wrong in its Reason
/// String.
fn assert_disconnect(out: &[Packet], code: ReasonCode) {
    match out {
        [Packet::Disconnect(d)] => {
            assert_eq!(d.reason, code);
            assert!(
                d.properties
                    .reason_string
                    .as_ref()
                    .is_some_and(|s| !s.is_empty()),
                "{d:?}"
            );
        }
        other => panic!("expected one DISCONNECT {code:?}, got {other:?}"),
    }
}

/// The client honours the CONNACK's Wildcard Subscription Available,
/// Subscription Identifiers Available and Shared Subscription Available
/// instead of sending what the server would refuse.
#[test]
fn v5_client_honours_subscription_capabilities() {
    let mut s = ServerConfig::default();
    s.wildcard_subscription_available = false;
    s.subscription_identifiers_available = false;
    s.shared_subscription_available = false;
    let mut pair = Pair::new(client_cfg(ProtocolVersion::V5), s);
    pair.establish();
    let opts = mqtt_codec::SubscriptionOptions::default();
    let f = |s: &str| mqtt_topic::TopicFilter::try_from(s).unwrap();
    let now = pair.now;
    assert_eq!(
        pair.client.subscribe(now, vec![(f("a/+"), opts)], None),
        Err(mqtt_session::UsageError::NotSupported(
            "wildcard subscriptions"
        ))
    );
    assert_eq!(
        pair.client
            .subscribe(now, vec![(f("$share/g/a"), opts)], None),
        Err(mqtt_session::UsageError::NotSupported(
            "shared subscriptions"
        ))
    );
    assert_eq!(
        pair.client.subscribe(
            now,
            vec![(f("a"), opts)],
            mqtt_codec::SubscriptionId::new(3)
        ),
        Err(mqtt_session::UsageError::NotSupported(
            "subscription identifiers"
        ))
    );
    assert!(
        pair.client
            .subscribe(now, vec![(f("a"), opts)], None)
            .is_ok()
    );
}

/// The client refuses No Local on a shared subscription, a Protocol Error
/// \[MQTT-3.8.3-4\] that the codec would not encode, rather than wait for a
/// SUBACK that never comes.
#[test]
fn v5_client_refuses_no_local_on_a_shared_subscription() {
    let mut pair = Pair::new(client_cfg(ProtocolVersion::V5), ServerConfig::default());
    pair.establish();
    let no_local = mqtt_codec::SubscriptionOptions {
        no_local: true,
        ..Default::default()
    };
    let f = |s: &str| mqtt_topic::TopicFilter::try_from(s).unwrap();
    let now = pair.now;
    assert_eq!(
        pair.client.subscribe(
            now,
            vec![(f("a"), no_local), (f("$share/g/a"), no_local)],
            None
        ),
        Err(mqtt_session::UsageError::NoLocalOnSharedSubscription)
    );
    assert!(pair.client.poll_transmit().is_none(), "nothing sent");
    assert!(
        pair.client
            .subscribe(now, vec![(f("a"), no_local)], None)
            .is_ok()
    );
}

/// A client can send AUTH (5.0) and receives the server's as events.
#[test]
fn v5_auth_passes_both_ways() {
    let mut pair = Pair::new(client_cfg(ProtocolVersion::V5), ServerConfig::default());
    pair.establish();
    let mut auth = mqtt_codec::Auth::new(ReasonCode::ReAuthenticate);
    auth.properties.to_mut().authentication_method = Some(Utf8Bytes::from_static("SCRAM-SHA-1"));
    pair.client.auth(pair.now, auth.clone()).unwrap();
    pair.drive();
    assert!(pair.server_events.contains(&Event::Auth(auth.clone())));
    let mut reply = mqtt_codec::Auth::new(ReasonCode::Success);
    reply.properties.to_mut().authentication_method = auth.properties.authentication_method.clone();
    pair.server.auth(pair.now, reply.clone());
    pair.drive();
    assert!(pair.client_events.contains(&Event::Auth(reply)));
}
