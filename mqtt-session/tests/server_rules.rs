//! What a `ServerSession` enforces on its client: the CONNECT rules, the
//! capabilities it announced (Maximum QoS, Retain Available, Receive
//! Maximum, ...), SUBSCRIBE and UNSUBSCRIBE validation, sticky protocol
//! errors and bounded memory before the broker accepts.
//!
//! Conformance statement ids are those of MQTT 5.0 unless marked "3.1.1".

// Test helpers outside `#[test]` functions may panic on purpose.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::num::NonZeroU16;
use std::time::Instant;

use bytes::BytesMut;
use mqtt_codec::{
    Connect, Disconnect, Encoder, Packet, PacketId, PacketType, ProtocolVersion, PubComp, PubRec,
    PubRel, Publish, QoS, ReasonCode, SubAck, Subscribe, SubscribeFilter, SubscriptionId,
    SubscriptionOptions, Unsubscribe, Utf8Bytes,
};
use mqtt_session::{
    Accept, CloseReason, Event, ProtocolError, ServerConfig, ServerSession, SubscribeRequest,
    Subscription, UsageError,
};
use mqtt_topic::TopicFilter;

const BOTH: [ProtocolVersion; 2] = [ProtocolVersion::V3_1_1, ProtocolVersion::V5];

fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

fn encode(v: ProtocolVersion, p: &Packet) -> Vec<u8> {
    let mut buf = BytesMut::new();
    Encoder::new(v)
        .encode(p, &mut buf)
        .unwrap_or_else(|e| panic!("{p:?} does not encode at {v}: {e}"));
    buf.to_vec()
}

/// A server session driven by hand. Every packet it transmits must be
/// encodable at the connection's version (unless `check_encoding` is off).
struct Srv {
    now: Instant,
    s: ServerSession,
    sent: Vec<Packet>,
    events: Vec<Event>,
    check_encoding: bool,
}

impl Srv {
    fn new(cfg: ServerConfig) -> Self {
        let now = Instant::now();
        Self {
            now,
            s: ServerSession::new(cfg, now),
            sent: Vec::new(),
            events: Vec::new(),
            check_encoding: true,
        }
    }

    /// A session that received a CONNECT at `v` and accepted it.
    fn accepted(cfg: ServerConfig, v: ProtocolVersion) -> Self {
        let mut srv = Self::new(cfg);
        srv.feed(Connect::new(v, Utf8Bytes::from_static("c1")));
        assert!(
            matches!(srv.events.last(), Some(Event::Connect(_))),
            "{:?}",
            srv.events
        );
        srv.s.accept(srv.now, Accept::new()).unwrap();
        srv.drain();
        assert!(
            matches!(srv.sent.last(), Some(Packet::ConnAck(a)) if a.reason == ReasonCode::Success)
        );
        srv.sent.clear();
        srv.events.clear();
        srv
    }

    fn feed(&mut self, p: impl Into<Packet>) {
        self.s.handle_packet(self.now, p.into());
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(p) = self.s.poll_transmit() {
            if self.check_encoding {
                encode(self.s.version(), &p);
            }
            self.sent.push(p);
        }
        while let Some(e) = self.s.poll_event() {
            self.events.push(e);
        }
    }

    fn take_sent(&mut self) -> Vec<Packet> {
        std::mem::take(&mut self.sent)
    }

    fn closed(&self) -> Vec<CloseReason> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Closed(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    fn subscribe_request(&self) -> SubscribeRequest {
        self.events
            .iter()
            .rev()
            .find_map(|e| match e {
                Event::Subscribe(r) => Some(r.clone()),
                _ => None,
            })
            .expect("a Subscribe event")
    }
}

fn publish(qos: QoS, id: u16) -> Publish {
    let mut p = Publish::new(mqtt_codec::PublishTopic::from_static("t"), "x");
    p.qos = qos;
    p.packet_id = PacketId::new(id);
    p
}

/// The server closed the connection for `error`: in 5.0 with DISCONNECT
/// and its reason code, in 3.1.1 with no packet [MQTT-4.13.1-1].
fn assert_closed_for(srv: &Srv, v: ProtocolVersion, error: ProtocolError, code: ReasonCode) {
    assert_eq!(error.reason_code(), code);
    let expected = if v.is_v5() {
        vec![Packet::Disconnect(Disconnect::new(code))]
    } else {
        vec![]
    };
    assert_eq!(reason_only(&srv.sent), expected, "{v}");
    assert_eq!(srv.closed(), [CloseReason::ProtocolError(error)], "{v}");
    assert!(!srv.s.is_connected());
}

// ---------------------------------------------------------------------------
// CONNECT
// ---------------------------------------------------------------------------

/// "After a Network Connection is established by a Client to a Server, the
/// first packet sent from the Client to the Server MUST be a CONNECT packet"
/// [MQTT-3.1.0-1]: the server closes the connection, sends no CONNACK, and
/// ignores what follows.
/// A connect timeout of `Duration::MAX` means no deadline; adding it to
/// the clock must not overflow.
#[test]
fn unbounded_connect_timeout_sets_no_deadline() {
    let mut cfg = ServerConfig::default();
    cfg.connect_timeout = std::time::Duration::MAX;
    let srv = Srv::new(cfg);
    assert_eq!(srv.s.poll_timeout(), None);
    let srv = Srv::new(ServerConfig::default());
    assert!(srv.s.poll_timeout().is_some());
}

#[test]
fn first_packet_not_connect_closes_without_connack() {
    for first in [
        Packet::PingReq,
        publish(QoS::AtLeastOnce, 1).into(),
        Packet::Disconnect(Disconnect::default()),
    ] {
        let kind = first.packet_type();
        let mut srv = Srv::new(ServerConfig::default());
        srv.feed(first);
        assert!(srv.sent.is_empty(), "{kind:?}: no CONNACK");
        assert_eq!(
            srv.events,
            [Event::Closed(CloseReason::ProtocolError(
                ProtocolError::FirstPacketNotConnect(kind)
            ))]
        );
        assert!(srv.s.is_ended());
        srv.feed(Connect::new(
            ProtocolVersion::V5,
            Utf8Bytes::from_static("c1"),
        ));
        assert!(
            srv.sent.is_empty() && srv.events.len() == 1,
            "{kind:?}: input after the error is ignored"
        );
    }
}

/// "The Server MUST process a second CONNECT packet sent from a Client as a
/// Protocol Error and close the Network Connection" [MQTT-3.1.0-2]: 5.0
/// sends DISCONNECT 0x82 first.
#[test]
fn second_connect_is_a_protocol_error() {
    for v in BOTH {
        let mut srv = Srv::accepted(ServerConfig::default(), v);
        srv.feed(Connect::new(v, Utf8Bytes::from_static("c1")));
        assert_closed_for(
            &srv,
            v,
            ProtocolError::SecondConnect,
            ReasonCode::ProtocolError,
        );
    }
    // Before the broker accepted the first: refused with a CONNACK (5.0).
    let mut srv = Srv::new(ServerConfig::default());
    srv.feed(Connect::new(
        ProtocolVersion::V5,
        Utf8Bytes::from_static("c1"),
    ));
    srv.feed(Connect::new(
        ProtocolVersion::V5,
        Utf8Bytes::from_static("c1"),
    ));
    assert!(
        matches!(&srv.sent[..], [Packet::ConnAck(a)] if a.reason == ReasonCode::ProtocolError),
        "{:?}",
        srv.sent
    );
    assert!(srv.s.is_ended());
    assert_eq!(
        srv.s.accept(srv.now, Accept::new()),
        Err(UsageError::InvalidState("no CONNECT awaiting accept"))
    );
}

/// 3.1.1: "If the Client supplies a zero-byte ClientId with CleanSession set
/// to 0, the Server MUST respond to the CONNECT Packet with a CONNACK return
/// code 0x02 (Identifier rejected) and then close the Network Connection"
/// [MQTT-3.1.3-8] (3.1.1). With Clean Session 1 the broker decides; in 5.0
/// the broker may assign an identifier.
#[test]
fn v311_empty_client_id_without_clean_session_is_rejected() {
    let mut srv = Srv::new(ServerConfig::default());
    let mut c = Connect::new(ProtocolVersion::V3_1_1, Utf8Bytes::new());
    c.clean_start = false;
    srv.feed(c);
    let [p @ Packet::ConnAck(a)] = &srv.sent[..] else {
        panic!("{:?}", srv.sent)
    };
    assert_eq!(a.reason, ReasonCode::ClientIdentifierNotValid);
    assert_eq!(
        encode(ProtocolVersion::V3_1_1, p),
        [0x20, 0x02, 0x00, 0x02],
        "return code 2"
    );
    assert_eq!(
        srv.events,
        [Event::Closed(CloseReason::Rejected(
            ReasonCode::ClientIdentifierNotValid
        ))]
    );
    assert!(srv.s.is_ended());

    for (v, clean) in [
        (ProtocolVersion::V3_1_1, true),
        (ProtocolVersion::V5, false),
    ] {
        let mut srv = Srv::new(ServerConfig::default());
        let mut c = Connect::new(v, Utf8Bytes::new());
        c.clean_start = clean;
        srv.feed(c);
        assert!(srv.sent.is_empty(), "{v}");
        assert!(matches!(&srv.events[..], [Event::Connect(_)]), "{v}");
    }
}

/// `reject` sends CONNACK with the reason and closes (MQTT 5.0 section
/// 3.2.2.2, [MQTT-3.2.2-7]: "If a Server sends a CONNACK packet containing a
/// Reason code of 128 or greater it MUST then close the Network
/// Connection"); a 3.1.1 client gets the nearest return code (3.1.1 section
/// 3.2.2.3), a reason CONNACK cannot carry becomes 0x80.
#[test]
fn reject_sends_connack_with_the_reason() {
    let cases = [
        (
            ProtocolVersion::V5,
            ReasonCode::NotAuthorized,
            vec![0x20, 0x03, 0x00, 0x87, 0x00],
        ),
        (
            ProtocolVersion::V5,
            ReasonCode::BadUserNameOrPassword,
            vec![0x20, 0x03, 0x00, 0x86, 0x00],
        ),
        (
            ProtocolVersion::V5,
            ReasonCode::SessionTakenOver,
            vec![0x20, 0x03, 0x00, 0x80, 0x00],
        ),
        (
            ProtocolVersion::V5,
            ReasonCode::Success,
            vec![0x20, 0x03, 0x00, 0x80, 0x00],
        ),
        (
            ProtocolVersion::V3_1_1,
            ReasonCode::UnsupportedProtocolVersion,
            vec![0x20, 0x02, 0x00, 0x01],
        ),
        (
            ProtocolVersion::V3_1_1,
            ReasonCode::ServerUnavailable,
            vec![0x20, 0x02, 0x00, 0x03],
        ),
        (
            ProtocolVersion::V3_1_1,
            ReasonCode::BadUserNameOrPassword,
            vec![0x20, 0x02, 0x00, 0x04],
        ),
        (
            ProtocolVersion::V3_1_1,
            ReasonCode::NotAuthorized,
            vec![0x20, 0x02, 0x00, 0x05],
        ),
        (
            ProtocolVersion::V3_1_1,
            ReasonCode::Banned,
            vec![0x20, 0x02, 0x00, 0x05],
        ),
        (
            ProtocolVersion::V3_1_1,
            ReasonCode::ServerBusy,
            vec![0x20, 0x02, 0x00, 0x03],
        ),
    ];
    for (v, reason, bytes) in cases {
        let mut srv = Srv::new(ServerConfig::default());
        srv.feed(Connect::new(v, Utf8Bytes::from_static("c1")));
        srv.s.reject(srv.now, reason);
        srv.drain();
        let [p @ Packet::ConnAck(a)] = &srv.sent[..] else {
            panic!("{v} {reason:?}: {:?}", srv.sent)
        };
        assert_eq!(encode(v, p), bytes, "{v} {reason:?}");
        assert!(!a.session_present);
        assert_eq!(srv.closed(), [CloseReason::Rejected(a.reason)]);
        assert!(srv.s.is_ended());
        assert!(
            srv.s.accept(srv.now, Accept::new()).is_err(),
            "rejected is final"
        );
    }
}

/// Packets a client sends after CONNECT, before the broker accepts, are
/// processed after the CONNACK, in order.
#[test]
fn packets_before_accept_are_processed_after_connack() {
    let mut srv = Srv::new(ServerConfig::default());
    srv.feed(Connect::new(
        ProtocolVersion::V5,
        Utf8Bytes::from_static("c1"),
    ));
    srv.feed(publish(QoS::AtLeastOnce, 1));
    srv.feed(Subscribe::new(
        pid(2),
        Utf8Bytes::from_static("a"),
        SubscriptionOptions::new(QoS::AtLeastOnce),
    ));
    assert!(srv.sent.is_empty());
    assert_eq!(srv.events.len(), 1);
    srv.s.accept(srv.now, Accept::new()).unwrap();
    assert!(srv.s.takes_packets());
    srv.drain();
    assert!(
        matches!(&srv.sent[..], [Packet::ConnAck(_), Packet::PubAck(a)] if a.packet_id == pid(1)),
        "{:?}",
        srv.sent
    );
    assert!(
        matches!(&srv.events[..], [Event::Connect(_), Event::Message { .. }, Event::Subscribe(r)] if r.packet_id == pid(2))
    );
}

/// A client that floods packets after CONNECT, before the broker accepts,
/// is cut off after 64 (bounded memory, DESIGN.md "never unbounded memory"),
/// unless the broker holds them back while `takes_packets` is false.
#[test]
fn flood_before_accept_closes_the_connection() {
    for v in BOTH {
        let mut srv = Srv::new(ServerConfig::default());
        srv.feed(Connect::new(v, Utf8Bytes::from_static("c1")));
        for i in 1..=64 {
            assert!(srv.s.takes_packets(), "{v}: packet {i}");
            srv.feed(publish(QoS::AtLeastOnce, i));
        }
        assert!(srv.closed().is_empty(), "{v}: 64 early packets are kept");
        // A broker holds the rest until it decides (section 3.1.4 lets
        // clients send packets right after CONNECT); one more is refused.
        assert!(!srv.s.takes_packets(), "{v}");
        assert!(srv.sent.is_empty());
        srv.feed(publish(QoS::AtLeastOnce, 65));
        assert!(
            matches!(&srv.closed()[..], [CloseReason::ProtocolError(_)]),
            "{v}: {:?}",
            srv.events
        );
        assert!(srv.s.is_ended());
        assert!(
            srv.sent
                .iter()
                .all(|p| matches!(p, Packet::ConnAck(a) if a.reason.is_error())),
            "{v}: {:?}",
            srv.sent
        );
        if !v.is_v5() {
            assert!(srv.sent.is_empty(), "3.1.1: just closed");
        }
        assert!(srv.s.accept(srv.now, Accept::new()).is_err());
        srv.feed(Packet::PingReq);
        assert_eq!(
            srv.events
                .iter()
                .filter(|e| matches!(e, Event::Message { .. }))
                .count(),
            0
        );
    }
}

// ---------------------------------------------------------------------------
// PUBLISH against the announced capabilities
// ---------------------------------------------------------------------------

/// "It is a Protocol Error if the Server receives a PUBLISH packet with a
/// QoS greater than the Maximum QoS it specified. In this case use
/// DISCONNECT with Reason Code 0x9B (QoS not supported)" (MQTT 5.0 section
/// 3.2.2.3.4; the client's side is [MQTT-3.2.2-11]). 3.1.1 just closes.
#[test]
fn publish_above_maximum_qos_is_disconnected_with_0x9b() {
    for v in BOTH {
        for (max, qos) in [
            (QoS::AtLeastOnce, QoS::ExactlyOnce),
            (QoS::AtMostOnce, QoS::AtLeastOnce),
        ] {
            let mut cfg = ServerConfig::default();
            cfg.maximum_qos = max;
            let mut srv = Srv::accepted(cfg, v);
            srv.feed(publish(max, 1));
            assert!(srv.s.is_connected(), "{v}: the maximum itself is fine");
            srv.take_sent();
            srv.feed(publish(qos, 2));
            assert_closed_for(
                &srv,
                v,
                ProtocolError::QoSNotSupported,
                ReasonCode::QoSNotSupported,
            );
            assert_eq!(
                srv.events
                    .iter()
                    .filter(|e| matches!(e, Event::Message { .. }))
                    .count(),
                1
            );
        }
    }
}

/// "If the Server receives a PUBLISH packet with the RETAIN flag set to 1,
/// and it does not support retained messages, it uses DISCONNECT with
/// Reason Code 0x9A (Retain not supported)" (MQTT 5.0 section 3.2.2.3.5).
#[test]
fn retained_publish_when_retain_unavailable_is_disconnected_with_0x9a() {
    for v in BOTH {
        let mut cfg = ServerConfig::default();
        cfg.retain_available = false;
        let mut srv = Srv::accepted(cfg, v);
        let mut p = publish(QoS::AtMostOnce, 0);
        p.retain = true;
        srv.feed(p);
        assert_closed_for(
            &srv,
            v,
            ProtocolError::RetainNotSupported,
            ReasonCode::RetainNotSupported,
        );
        assert!(
            !srv.events
                .iter()
                .any(|e| matches!(e, Event::Message { .. }))
        );
    }
}

/// "A PUBLISH packet sent from a Client to a Server MUST NOT contain a
/// Subscription Identifier" [MQTT-3.3.4-6]: Protocol Error, 0x82.
#[test]
fn v5_publish_with_subscription_identifier_from_client_is_a_protocol_error() {
    let mut srv = Srv::accepted(ServerConfig::default(), ProtocolVersion::V5);
    let mut p = publish(QoS::AtMostOnce, 0);
    p.properties.to_mut().subscription_identifiers = vec![SubscriptionId::new(7).unwrap()].into();
    srv.feed(p);
    assert_closed_for(
        &srv,
        ProtocolVersion::V5,
        ProtocolError::SubscriptionIdFromClient,
        ReasonCode::ProtocolError,
    );
}

/// "The Client MUST NOT send more than Receive Maximum QoS 1 and QoS 2
/// PUBLISH packets for which it has not received PUBACK, PUBCOMP, or PUBREC
/// with a Reason Code of 128 or greater" [MQTT-3.3.4-7]; a server receiving
/// more uses DISCONNECT 0x93 (MQTT 5.0 section 3.2.2.3.3). A QoS 2 message
/// counts until its PUBREL.
#[test]
fn v5_receive_maximum_exceeded_is_disconnected_with_0x93() {
    let mut cfg = ServerConfig::default();
    cfg.receive_maximum = NonZeroU16::new(2).unwrap();
    let mut srv = Srv::accepted(cfg.clone(), ProtocolVersion::V5);
    srv.feed(publish(QoS::ExactlyOnce, 1));
    srv.feed(publish(QoS::ExactlyOnce, 2));
    assert!(srv.s.is_connected());
    assert_eq!(srv.take_sent().len(), 2, "two PUBRECs");
    srv.feed(publish(QoS::ExactlyOnce, 3));
    assert_closed_for(
        &srv,
        ProtocolVersion::V5,
        ProtocolError::ReceiveMaximumExceeded,
        ReasonCode::ReceiveMaximumExceeded,
    );
    assert_eq!(
        srv.events
            .iter()
            .filter(|e| matches!(e, Event::Message { .. }))
            .count(),
        2
    );

    // A PUBREL completes one flow and frees its slot.
    let mut srv = Srv::accepted(cfg, ProtocolVersion::V5);
    srv.feed(publish(QoS::ExactlyOnce, 1));
    srv.feed(publish(QoS::ExactlyOnce, 2));
    srv.feed(PubRel::new(pid(1)));
    srv.feed(publish(QoS::ExactlyOnce, 3));
    assert!(srv.s.is_connected(), "{:?}", srv.events);
    assert_eq!(
        srv.events
            .iter()
            .filter(|e| matches!(e, Event::Message { .. }))
            .count(),
        3
    );
}

/// The packets of `sent` as (kind, packet id) pairs, for comparing flows.
fn flow(sent: &[Packet]) -> Vec<(&'static str, u16)> {
    sent.iter()
        .map(|p| match p {
            Packet::Publish(p) => ("PUBLISH", p.packet_id.map_or(0, PacketId::get)),
            Packet::PubRel(r) => ("PUBREL", r.packet_id.get()),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

/// Hands `n` QoS 2 messages to the session for its client.
fn publish_qos2(srv: &mut Srv, n: usize) {
    for i in 0..n {
        let m = mqtt_session::Message::new(
            mqtt_topic::TopicName::try_from("t").unwrap(),
            vec![u8::try_from(i).unwrap()],
            QoS::ExactlyOnce,
            false,
        );
        srv.s.publish(srv.now, m).unwrap();
    }
    srv.drain();
}

#[test]
fn v311_outgoing_qos2_flow_frees_its_window_slot_at_pubrec() {
    let mut cfg = ServerConfig::default();
    cfg.max_inflight = NonZeroU16::new(2).unwrap();
    let mut srv = Srv::accepted(cfg, ProtocolVersion::V3_1_1);
    publish_qos2(&mut srv, 6);
    assert_eq!(flow(&srv.take_sent()), [("PUBLISH", 1), ("PUBLISH", 2)]);
    // Past PUBREC a flow no longer holds up the next message...
    srv.feed(PubRec::new(pid(1)));
    assert_eq!(flow(&srv.take_sent()), [("PUBREL", 1), ("PUBLISH", 3)]);
    srv.feed(PubRec::new(pid(2)));
    assert_eq!(flow(&srv.take_sent()), [("PUBREL", 2), ("PUBLISH", 4)]);
    // ...but at most `max_inflight` more may wait for PUBCOMP.
    srv.feed(PubRec::new(pid(3)));
    assert_eq!(flow(&srv.take_sent()), [("PUBREL", 3)]);
    srv.feed(PubComp::new(pid(1)));
    assert_eq!(flow(&srv.take_sent()), [("PUBLISH", 5)]);
    assert_eq!(srv.s.state().inflight_len(), 4);
}

#[test]
fn v5_receive_maximum_counts_outgoing_qos2_flows_until_pubcomp() {
    let mut cfg = ServerConfig::default();
    cfg.max_inflight = NonZeroU16::new(2).unwrap();
    let mut srv = Srv::new(cfg);
    let mut connect = Connect::new(ProtocolVersion::V5, Utf8Bytes::from_static("c1"));
    connect.properties.receive_maximum = NonZeroU16::new(2);
    srv.feed(connect);
    srv.s.accept(srv.now, Accept::new()).unwrap();
    srv.drain();
    srv.take_sent();
    publish_qos2(&mut srv, 4);
    assert_eq!(flow(&srv.take_sent()), [("PUBLISH", 1), ("PUBLISH", 2)]);
    // [MQTT-4.9.0-2]: the send quota comes back with PUBCOMP, not PUBREC.
    srv.feed(PubRec::new(pid(1)));
    assert_eq!(flow(&srv.take_sent()), [("PUBREL", 1)]);
    srv.feed(PubComp::new(pid(1)));
    assert_eq!(flow(&srv.take_sent()), [("PUBLISH", 3)]);
}

// ---------------------------------------------------------------------------
// SUBSCRIBE and UNSUBSCRIBE
// ---------------------------------------------------------------------------

fn filter(f: &'static str, qos: QoS) -> SubscribeFilter {
    SubscribeFilter {
        filter: Utf8Bytes::from_static(f),
        options: SubscriptionOptions::new(qos),
    }
}

/// Each filter of a SUBSCRIBE is checked before the broker sees it: an
/// invalid filter gets 0x8F (MQTT 5.0 sections 4.7.1 and 3.9.3), a shared
/// subscription when unavailable 0x9E, a wildcard when unavailable 0xA2, a
/// Subscription Identifier when unavailable 0xA1 (section 3.9.3), and the
/// QoS is capped at the server's Maximum QoS (section 3.9.3: the server may
/// grant a lower QoS).
#[test]
fn v5_subscribe_filters_are_validated_against_capabilities() {
    let mut cfg = ServerConfig::default();
    cfg.shared_subscription_available = false;
    cfg.wildcard_subscription_available = false;
    cfg.maximum_qos = QoS::AtLeastOnce;
    let mut srv = Srv::accepted(cfg, ProtocolVersion::V5);
    let sub = Subscribe {
        packet_id: pid(9),
        filters: vec![
            filter("a/#/b", QoS::AtMostOnce),
            filter("$share/g/x", QoS::AtMostOnce),
            filter("a/+", QoS::AtMostOnce),
            filter("a/#", QoS::AtMostOnce),
            filter("ok", QoS::ExactlyOnce),
        ],
        properties: Default::default(),
    };
    srv.feed(sub);
    assert!(srv.sent.is_empty(), "SUBACK waits for the broker");
    let req = srv.subscribe_request();
    assert_eq!(req.packet_id, pid(9));
    let filters: Vec<Result<String, ReasonCode>> = req
        .entries
        .iter()
        .map(|e| e.filter.clone().map(|f| f.as_str().to_owned()))
        .collect();
    assert_eq!(
        filters,
        [
            Err(ReasonCode::TopicFilterInvalid),
            Err(ReasonCode::SharedSubscriptionsNotSupported),
            Err(ReasonCode::WildcardSubscriptionsNotSupported),
            Err(ReasonCode::WildcardSubscriptionsNotSupported),
            Ok("ok".to_owned()),
        ]
    );
    assert_eq!(
        req.entries[4].options.qos,
        QoS::AtLeastOnce,
        "capped at Maximum QoS"
    );
    assert_eq!(
        req.grant_all(),
        [
            ReasonCode::TopicFilterInvalid,
            ReasonCode::SharedSubscriptionsNotSupported,
            ReasonCode::WildcardSubscriptionsNotSupported,
            ReasonCode::WildcardSubscriptionsNotSupported,
            ReasonCode::GrantedQoS1,
        ]
    );

    let mut cfg = ServerConfig::default();
    cfg.subscription_identifiers_available = false;
    let mut srv = Srv::accepted(cfg, ProtocolVersion::V5);
    let mut sub = Subscribe::new(
        pid(3),
        Utf8Bytes::from_static("x"),
        SubscriptionOptions::new(QoS::AtMostOnce),
    );
    sub.properties.to_mut().subscription_identifier = SubscriptionId::new(5);
    srv.feed(sub);
    assert_eq!(
        srv.subscribe_request().entries[0].filter,
        Err(ReasonCode::SubscriptionIdentifiersNotSupported)
    );
}

/// `suback` sends SUBACK with one code per filter [MQTT-3.8.4-6] in order
/// [MQTT-3.9.3-1], records the granted subscriptions, and says whether each
/// replaced an existing one ("If a Server receives a SUBSCRIBE packet
/// containing a Topic Filter that is identical to a Non-shared Subscription's
/// Topic Filter for the current Session, then it MUST replace that existing
/// Subscription" [MQTT-3.8.4-3]). 3.1.1 writes every failure as 0x80.
#[test]
fn suback_records_granted_subscriptions_and_reports_replacements() {
    for v in BOTH {
        let mut srv = Srv::accepted(ServerConfig::default(), v);
        let sub = Subscribe {
            packet_id: pid(1),
            filters: vec![
                filter("a/+", QoS::AtLeastOnce),
                filter("a/#/b", QoS::AtMostOnce),
                filter("b", QoS::ExactlyOnce),
            ],
            properties: Default::default(),
        };
        srv.feed(sub);
        let req = srv.subscribe_request();
        // The broker grants "a/+" at QoS 0 only, "b" in full.
        let reasons = vec![
            ReasonCode::Success,
            ReasonCode::TopicFilterInvalid,
            ReasonCode::GrantedQoS2,
        ];
        let granted = srv.s.suback(srv.now, &req, reasons.clone()).unwrap();
        srv.drain();
        let a: TopicFilter = "a/+".parse().unwrap();
        let b: TopicFilter = "b".parse().unwrap();
        let sub_of = |qos| Subscription {
            options: SubscriptionOptions::new(qos),
            id: None,
        };
        assert_eq!(
            granted,
            [
                (a.clone(), sub_of(QoS::AtMostOnce), false),
                (b.clone(), sub_of(QoS::ExactlyOnce), false)
            ]
        );
        let [p @ Packet::SubAck(ack)] = &srv.sent[..] else {
            panic!("{v}: {:?}", srv.sent)
        };
        assert_eq!(*ack, SubAck::new(pid(1), reasons));
        let bytes = encode(v, p);
        let payload = if v.is_v5() {
            [0x00, 0x8F, 0x02]
        } else {
            [0x00, 0x80, 0x02]
        };
        assert_eq!(bytes[bytes.len() - 3..], payload, "{v}");
        let state: Vec<(TopicFilter, QoS)> = srv
            .s
            .state()
            .subscriptions()
            .map(|(f, s)| (f.clone(), s.options.qos))
            .collect();
        assert_eq!(state, [(a.clone(), QoS::AtMostOnce), (b, QoS::ExactlyOnce)]);

        // The same filter again replaces it.
        srv.take_sent();
        srv.feed(Subscribe::new(
            pid(2),
            Utf8Bytes::from_static("a/+"),
            SubscriptionOptions::new(QoS::AtLeastOnce),
        ));
        let req = srv.subscribe_request();
        let granted = srv.s.suback(srv.now, &req, req.grant_all()).unwrap();
        assert_eq!(
            granted,
            [(a.clone(), sub_of(QoS::AtLeastOnce), true)],
            "{v}"
        );
        assert_eq!(srv.s.state().subscriptions().count(), 2);
        // A code list of the wrong length is the caller's mistake.
        assert!(matches!(
            srv.s.suback(srv.now, &req, vec![]),
            Err(UsageError::InvalidState(_))
        ));
    }
}

/// UNSUBSCRIBE is answered with UNSUBACK at once [MQTT-3.10.4-4]: in 5.0 one
/// code per filter, Success or 0x11 No subscription existed
/// [MQTT-3.11.3-1]; in 3.1.1 with no payload. The broker learns of the
/// removed subscriptions through Event::Unsubscribed.
#[test]
fn unsubscribe_answers_per_filter_and_reports_removed_subscriptions() {
    for v in BOTH {
        let mut srv = Srv::accepted(ServerConfig::default(), v);
        srv.feed(Subscribe::new(
            pid(1),
            Utf8Bytes::from_static("a/b"),
            SubscriptionOptions::new(QoS::AtMostOnce),
        ));
        let req = srv.subscribe_request();
        srv.s.suback(srv.now, &req, req.grant_all()).unwrap();
        srv.drain();
        srv.take_sent();
        srv.events.clear();

        srv.feed(Unsubscribe::new(
            pid(2),
            vec![Utf8Bytes::from_static("a/b"), Utf8Bytes::from_static("x/y")],
        ));
        let [p @ Packet::UnsubAck(ack)] = &srv.sent[..] else {
            panic!("{v}: {:?}", srv.sent)
        };
        assert_eq!(ack.packet_id, pid(2));
        if v.is_v5() {
            assert_eq!(
                ack.reasons,
                [ReasonCode::Success, ReasonCode::NoSubscriptionExisted]
            );
        } else {
            assert!(ack.reasons.is_empty());
            assert_eq!(
                encode(v, p),
                [0xB0, 0x02, 0x00, 0x02],
                "3.1.1 UNSUBACK has no payload"
            );
        }
        assert_eq!(
            srv.events,
            [Event::Unsubscribed(vec!["a/b".parse().unwrap()])],
            "{v}"
        );
        assert_eq!(srv.s.state().subscriptions().count(), 0);

        // Nothing removed: UNSUBACK, no event.
        srv.take_sent();
        srv.events.clear();
        srv.feed(Unsubscribe::new(
            pid(3),
            vec![Utf8Bytes::from_static("a/b")],
        ));
        assert!(matches!(&srv.sent[..], [Packet::UnsubAck(_)]));
        assert!(srv.events.is_empty());
    }
}

// ---------------------------------------------------------------------------
// Sticky errors
// ---------------------------------------------------------------------------

/// After a protocol error the connection is over: later input produces no
/// packet and no event (STYLE.md section 3, "errors are sticky"; MQTT 5.0
/// section 4.13: the connection is closed).
#[test]
fn protocol_errors_are_sticky() {
    for v in BOTH {
        let mut cfg = ServerConfig::default();
        cfg.maximum_qos = QoS::AtMostOnce;
        let mut srv = Srv::accepted(cfg, v);
        srv.feed(publish(QoS::AtLeastOnce, 1));
        assert_eq!(srv.closed().len(), 1);
        let (sent, events) = (srv.sent.len(), srv.events.len());
        srv.feed(publish(QoS::AtMostOnce, 0));
        srv.feed(publish(QoS::ExactlyOnce, 2));
        srv.feed(Packet::PingReq);
        srv.feed(Subscribe::new(
            pid(3),
            Utf8Bytes::from_static("a"),
            SubscriptionOptions::default(),
        ));
        srv.feed(Unsubscribe::new(pid(4), vec![Utf8Bytes::from_static("a")]));
        srv.feed(PubRel::new(pid(5)));
        srv.feed(Connect::new(v, Utf8Bytes::from_static("c1")));
        srv.feed(Disconnect::default());
        srv.s
            .handle_decode_error(srv.now, mqtt_codec::DecodeError::InvalidQos(3));
        srv.drain();
        assert_eq!(
            srv.sent.len(),
            sent,
            "{v}: nothing transmitted after the error: {:?}",
            srv.sent
        );
        assert_eq!(
            srv.events.len(),
            events,
            "{v}: no event after the error: {:?}",
            srv.events
        );
        assert!(!srv.s.is_connected());
        assert_eq!(
            srv.s.accept(srv.now, Accept::new()),
            Err(UsageError::InvalidState("no CONNECT awaiting accept"))
        );
    }
}

/// The client side is sticky too: after it closed on a protocol error, packets
/// from the server are ignored.
#[test]
fn client_protocol_errors_are_sticky() {
    use mqtt_session::{ClientConfig, ClientSession};
    let now = Instant::now();
    let mut c = ClientSession::new(ClientConfig::new(
        ProtocolVersion::V5,
        Utf8Bytes::from_static("c1"),
    ));
    c.connect(now).unwrap();
    let _ = c.poll_transmit();
    c.handle_packet(now, mqtt_codec::ConnAck::default().into());
    while c.poll_event().is_some() {}
    // A SUBSCRIBE is never sent to a client.
    c.handle_packet(
        now,
        Subscribe::new(
            pid(1),
            Utf8Bytes::from_static("a"),
            SubscriptionOptions::default(),
        )
        .into(),
    );
    assert_eq!(
        reason_only(&c.poll_transmit().into_iter().collect::<Vec<_>>()),
        [Packet::Disconnect(Disconnect::new(
            ReasonCode::ProtocolError
        ))]
    );
    assert_eq!(
        c.poll_event(),
        Some(Event::Closed(CloseReason::ProtocolError(
            ProtocolError::UnexpectedPacket(PacketType::Subscribe)
        )))
    );
    c.handle_packet(now, publish(QoS::AtLeastOnce, 2).into());
    c.handle_packet(now, Packet::PingResp);
    c.handle_packet(now, PubRel::new(pid(3)).into());
    assert_eq!(c.poll_transmit(), None);
    assert_eq!(c.poll_event(), None);
}

/// A connection that ends while its CONNECT awaits the broker's decision
/// (a protocol error in the packets behind it, a malformed packet, the
/// transport lost) gives the CONNECT up: `connect_packet` is `None` and
/// `accept` fails, so a broker does not take over the client's existing
/// session for a connection it will never accept [MQTT-3.1.4-3].
#[test]
fn a_connection_that_ends_before_accept_gives_its_connect_up() {
    type End = fn(&mut Srv);
    let ends: [(&str, End); 3] = [
        ("second CONNECT", |srv| {
            srv.feed(Connect::new(
                ProtocolVersion::V5,
                Utf8Bytes::from_static("c1"),
            ))
        }),
        ("malformed packet", |srv| {
            srv.s
                .handle_decode_error(srv.now, mqtt_codec::DecodeError::InvalidPacketType(0));
            srv.drain();
        }),
        ("connection lost", |srv| {
            srv.s.connection_lost(srv.now);
            srv.drain();
        }),
    ];
    for v in BOTH {
        for (what, end) in ends {
            let mut srv = Srv::new(ServerConfig::default());
            srv.feed(Connect::new(v, Utf8Bytes::from_static("c1")));
            assert!(srv.s.connect_packet().is_some());
            end(&mut srv);
            assert!(srv.s.is_ended(), "{v}, {what}");
            assert!(srv.s.connect_packet().is_none(), "{v}, {what}");
            assert!(srv.s.accept(srv.now, Accept::new()).is_err(), "{v}, {what}");
            assert!(
                srv.sent
                    .iter()
                    .all(|p| matches!(p, Packet::ConnAck(a) if a.reason.is_error())),
                "{v}, {what}: {:?}",
                srv.sent
            );
        }
    }
}

/// The refusal of a flood before accept is a CONNACK that encodes: 0x93 is no
/// CONNACK reason code (MQTT 5.0 section 3.2.2.2).
#[test]
fn v5_flood_before_accept_sends_a_valid_connack() {
    let mut srv = Srv::new(ServerConfig::default());
    srv.feed(Connect::new(
        ProtocolVersion::V5,
        Utf8Bytes::from_static("c1"),
    ));
    for i in 1..=65 {
        srv.feed(publish(QoS::AtLeastOnce, i)); // Srv::drain panics on an unencodable packet
    }
    assert!(srv.s.is_ended());
}

/// [MQTT-3.2.2-12], [MQTT-3.2.2-13]: a will the server cannot honour is
/// refused in CONNACK.
#[test]
fn v5_will_beyond_capabilities_is_rejected() {
    for (qos, retain, code) in [
        (QoS::ExactlyOnce, false, ReasonCode::QoSNotSupported),
        (QoS::AtMostOnce, true, ReasonCode::RetainNotSupported),
    ] {
        let mut cfg = ServerConfig::default();
        cfg.maximum_qos = QoS::AtLeastOnce;
        cfg.retain_available = false;
        let mut srv = Srv::new(cfg);
        let mut c = Connect::new(ProtocolVersion::V5, Utf8Bytes::from_static("c1"));
        let mut w = mqtt_codec::Will::new(mqtt_codec::TopicName::from_static("w").unwrap(), "x");
        w.qos = qos;
        w.retain = retain;
        c.will = Some(w);
        srv.feed(c);
        assert!(!srv.events.iter().any(|e| matches!(e, Event::Connect(_))));
        assert!(
            matches!(&srv.sent[..], [Packet::ConnAck(a)] if a.reason == code),
            "{:?}",
            srv.sent
        );
        assert!(srv.s.is_ended());
    }
}

/// [MQTT-3.1.2-2]: an unsupported protocol level gets CONNACK 0x01 (the
/// 3.1.1 form) and the connection closes.
#[test]
fn unsupported_protocol_level_gets_connack_1() {
    let mut srv = Srv::new(ServerConfig::default());
    srv.s.handle_decode_error(
        srv.now,
        mqtt_codec::DecodeError::UnsupportedProtocolVersion(6),
    );
    srv.drain();
    assert_eq!(srv.sent.len(), 1);
    assert_eq!(
        encode(ProtocolVersion::V3_1_1, &srv.sent[0]),
        [0x20, 0x02, 0x00, 0x01]
    );
    assert!(srv.s.is_ended());
}

/// The packets with any DISCONNECT Reason String removed (its text is for
/// people; the tests check the reason code).
fn reason_only(packets: &[Packet]) -> Vec<Packet> {
    packets
        .iter()
        .cloned()
        .map(|p| match p {
            Packet::Disconnect(mut d) => {
                d.properties.to_mut().reason_string = None;
                Packet::Disconnect(d)
            }
            p => p,
        })
        .collect()
}

/// Taking the state of a session whose connection is still up (a takeover)
/// ends that connection: DISCONNECT 0x8E in 5.0 and `Event::Closed`, so its
/// driver closes the socket.
#[test]
fn take_state_of_a_connected_session_closes_its_connection() {
    for v in BOTH {
        let mut srv = Srv::new(ServerConfig::default());
        srv.feed(Connect::new(v, Utf8Bytes::from_static("c1")));
        srv.s.accept(srv.now, mqtt_session::Accept::new()).unwrap();
        srv.drain();
        srv.sent.clear();
        srv.events.clear();
        let _state = srv.s.take_state();
        srv.drain();
        assert!(srv.s.is_ended());
        assert!(
            srv.events.iter().any(|e| matches!(
                e,
                Event::Closed(CloseReason::Local(ReasonCode::SessionTakenOver))
            )),
            "{v}: {:?}",
            srv.events
        );
        let expected = if v.is_v5() {
            vec![Packet::Disconnect(mqtt_codec::Disconnect::new(
                ReasonCode::SessionTakenOver,
            ))]
        } else {
            vec![]
        };
        assert_eq!(srv.sent, expected, "{v}");
    }
}

// ---------------------------------------------------------------------------
// Shared subscriptions: what a session that ends hands back (MQTT 5.0
// section 4.8.2)
// ---------------------------------------------------------------------------

/// A message to `t` as a publisher sent it.
fn published(payload: &'static str, qos: QoS, retain: bool) -> mqtt_session::Message {
    mqtt_session::Message::new(
        mqtt_topic::TopicName::try_from("t").unwrap(),
        payload,
        qos,
        retain,
    )
}

/// Hands `m` to the session at `qos` (its subscription's), through the
/// shared subscription `$share/g/t` when `shared`.
fn deliver(srv: &mut Srv, m: &mqtt_session::Message, qos: QoS, shared: bool) {
    let mut copy = m.clone();
    copy.qos = qos;
    copy.retain = false;
    if shared {
        let filter = TopicFilter::try_from("$share/g/t").unwrap();
        let origin = mqtt_session::SharedOrigin::new(filter, m);
        srv.s.publish_shared(srv.now, copy, origin).unwrap();
    } else {
        srv.s.publish(srv.now, copy).unwrap();
    }
    srv.drain();
}

/// What the session reported of its messages when it ended: handed back
/// (payload, QoS, RETAIN, filter) or dropped (payload, reason).
type Handed = Vec<(String, QoS, bool, String)>;
type DroppedIds = Vec<(u64, mqtt_session::DropReason)>;

fn ended(srv: &Srv) -> (Handed, DroppedIds) {
    let mut handed = Vec::new();
    let mut dropped = Vec::new();
    for e in &srv.events {
        match e {
            Event::Redispatch {
                message, filter, ..
            } => handed.push((
                String::from_utf8(message.payload.to_vec()).unwrap(),
                message.qos,
                message.retain,
                filter.as_str().to_owned(),
            )),
            Event::Dropped { id, reason } => dropped.push((id.get(), *reason)),
            _ => {}
        }
    }
    (handed, dropped)
}

/// A session that ends (a normal DISCONNECT with Session Expiry Interval
/// 0 / clean session) hands back each QoS 1/2 message of a shared
/// subscription its client does not have, in order, as published: the
/// one sent and not acknowledged, the one queued behind the window. The
/// QoS 2 message past PUBREC is the client's, and the message of a
/// non-shared subscription is dropped as before, and so is a QoS 0 one.
#[test]
fn an_ending_session_hands_back_what_its_client_lacks_of_shared_subscriptions() {
    use mqtt_session::DropReason::{Offline, SessionEnded};
    for v in BOTH {
        let mut cfg = ServerConfig::default();
        cfg.max_inflight = NonZeroU16::new(1).unwrap();
        let mut srv = Srv::accepted(cfg, v);
        let pubrecd = published("pubrec'd", QoS::ExactlyOnce, false);
        deliver(&mut srv, &pubrecd, QoS::ExactlyOnce, true);
        srv.feed(PubRec::new(pid(1)));
        let unacked = published("unacked", QoS::ExactlyOnce, true);
        deliver(&mut srv, &unacked, QoS::AtLeastOnce, true);
        let queued = published("queued", QoS::AtLeastOnce, false);
        deliver(&mut srv, &queued, QoS::AtLeastOnce, true);
        let plain = published("plain", QoS::AtLeastOnce, false);
        deliver(&mut srv, &plain, QoS::AtLeastOnce, false);
        let qos0 = published("qos0", QoS::AtLeastOnce, false);
        deliver(&mut srv, &qos0, QoS::AtMostOnce, true);
        assert_eq!(
            flow(&srv.take_sent()),
            [("PUBLISH", 1), ("PUBREL", 1), ("PUBLISH", 2)],
            "{v}"
        );
        assert_eq!(srv.s.state().queued_len(), 3, "{v}");
        srv.events.clear();
        srv.feed(Disconnect::new(ReasonCode::Success));
        assert!(srv.s.is_ended(), "{v}");
        let (handed, dropped) = ended(&srv);
        let f = "$share/g/t".to_owned();
        assert_eq!(
            handed,
            [
                ("unacked".to_owned(), QoS::ExactlyOnce, true, f.clone()),
                ("queued".to_owned(), QoS::AtLeastOnce, false, f),
            ],
            "{v}"
        );
        // QoS 0 is not kept for an absent client; then the session ends.
        assert_eq!(
            dropped,
            [(5, Offline), (1, SessionEnded), (4, SessionEnded)],
            "{v}"
        );
    }
}

/// [MQTT-4.8.2-6]: a message the client refused with PUBACK or PUBREC 0x80
/// or above is gone from the session: it is never handed back.
#[test]
fn v5_refused_shared_messages_are_not_handed_back() {
    let mut srv = Srv::accepted(ServerConfig::default(), ProtocolVersion::V5);
    deliver(
        &mut srv,
        &published("refused-1", QoS::AtLeastOnce, false),
        QoS::AtLeastOnce,
        true,
    );
    deliver(
        &mut srv,
        &published("refused-2", QoS::ExactlyOnce, false),
        QoS::ExactlyOnce,
        true,
    );
    deliver(
        &mut srv,
        &published("unanswered", QoS::AtLeastOnce, false),
        QoS::AtLeastOnce,
        true,
    );
    let mut puback = mqtt_codec::PubAck::new(pid(1));
    puback.reason = ReasonCode::UnspecifiedError;
    srv.feed(puback);
    let mut pubrec = PubRec::new(pid(2));
    pubrec.reason = ReasonCode::QuotaExceeded;
    srv.feed(pubrec);
    srv.events.clear();
    srv.s.end(srv.now);
    srv.drain();
    let (handed, dropped) = ended(&srv);
    assert_eq!(
        handed,
        [(
            "unanswered".to_owned(),
            QoS::AtLeastOnce,
            false,
            "$share/g/t".to_owned()
        )]
    );
    assert!(dropped.is_empty(), "{dropped:?}");
}

/// A message handed back has its Message Expiry Interval counted down by
/// the time it waited [MQTT-3.3.2-6]; one that expired meanwhile is
/// dropped instead. The origin travels with the session state: a session
/// resumed on a new connection hands back what the old one held.
#[test]
fn handed_back_messages_expire_and_survive_resumption() {
    let mut srv = Srv::accepted(ServerConfig::default(), ProtocolVersion::V5);
    let mut long = published("long", QoS::AtLeastOnce, false);
    long.properties.to_mut().message_expiry_interval = Some(10);
    let mut short = published("short", QoS::AtLeastOnce, false);
    short.properties.to_mut().message_expiry_interval = Some(2);
    deliver(&mut srv, &long, QoS::AtLeastOnce, true);
    deliver(&mut srv, &short, QoS::AtLeastOnce, true);
    let state = srv.s.take_state();

    let mut next = Srv::new(ServerConfig::default());
    next.now = srv.now;
    let mut connect = Connect::new(ProtocolVersion::V5, Utf8Bytes::from_static("c1"));
    connect.clean_start = false;
    next.feed(connect);
    next.s.accept(next.now, Accept::resume(state)).unwrap();
    next.drain();
    next.events.clear();
    next.now += std::time::Duration::from_millis(3500);
    next.s.end(next.now);
    next.drain();
    let expiry: Vec<_> = next
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Redispatch { message, .. } => Some((
                message.payload.clone(),
                message.properties.message_expiry_interval,
            )),
            _ => None,
        })
        .collect();
    assert_eq!(expiry, [(bytes::Bytes::from_static(b"long"), Some(7))]);
    let (_, dropped) = ended(&next);
    assert_eq!(dropped, [(2, mqtt_session::DropReason::Expired)]);
}
