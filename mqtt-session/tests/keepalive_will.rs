//! Keep-alive (client PINGREQ, server timeout), connect timeout, the will
//! message and session expiry, on simulated time: hours of protocol time
//! run in milliseconds.
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

use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::Pair;
use mqtt_codec::{
    ConnAck, Connect, Disconnect, Encoder, Packet, ProtocolVersion, QoS, ReasonCode, Utf8Bytes,
    Will,
};
use mqtt_session::{
    ClientConfig, ClientSession, CloseReason, DropReason, Event, Message, ProtocolError,
    ServerConfig, ServerSession, UsageError,
};

const BOTH: [ProtocolVersion; 2] = [ProtocolVersion::V3_1_1, ProtocolVersion::V5];

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn client_cfg(v: ProtocolVersion) -> ClientConfig {
    ClientConfig::new(v, Utf8Bytes::from_static("client-1"))
}

fn pings(pair: &Pair) -> usize {
    pair.wire
        .iter()
        .filter(|(to_server, p)| *to_server && *p == Packet::PingReq)
        .count()
}

fn count(events: &[Event], f: impl Fn(&Event) -> bool) -> usize {
    events.iter().filter(|e| f(e)).count()
}

fn wills(events: &[Event]) -> Vec<Message> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Will(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn expired(events: &[Event]) -> usize {
    count(events, |e| *e == Event::SessionExpired)
}

/// A server session driven by hand, with simulated time. Every packet it
/// transmits must be encodable at the connection's version.
struct Srv {
    now: Instant,
    s: ServerSession,
    sent: Vec<Packet>,
    events: Vec<Event>,
}

impl Srv {
    fn new(cfg: ServerConfig) -> Self {
        let now = Instant::now();
        Self {
            now,
            s: ServerSession::new(cfg, now),
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    /// A session that received `connect` and accepted it with a new session.
    fn accepted(cfg: ServerConfig, connect: Connect) -> Self {
        let mut srv = Self::new(cfg);
        srv.feed(connect);
        assert!(
            matches!(srv.events.last(), Some(Event::Connect(_))),
            "{:?}",
            srv.events
        );
        srv.s.accept(srv.now, mqtt_session::Accept::new()).unwrap();
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
            let mut buf = BytesMut::new();
            Encoder::new(self.s.version())
                .encode(&p, &mut buf)
                .unwrap_or_else(|e| panic!("{p:?}: {e}"));
            self.sent.push(p);
        }
        while let Some(e) = self.s.poll_event() {
            self.events.push(e);
        }
    }

    /// Lets time pass, firing the session's timers at their deadlines.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        for _ in 0..1000 {
            match self.s.poll_timeout() {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.s.handle_timeout(self.now);
                    self.drain();
                }
                _ => break,
            }
        }
        self.now = end;
    }

    fn lose_connection(&mut self) {
        self.s.connection_lost(self.now);
        self.drain();
    }
}

/// A CONNECT with a will (QoS 1, retained, a content type), `keep_alive`,
/// and a session that lasts `expiry` seconds (5.0) or, in 3.1.1, is clean
/// when `expiry` is 0 and persistent otherwise.
fn connect(v: ProtocolVersion, keep_alive: u16, expiry: u32, will_delay: Option<u32>) -> Connect {
    let mut c = Connect::new(v, Utf8Bytes::from_static("client-1"));
    c.keep_alive = keep_alive;
    if v.is_v5() {
        c.properties.session_expiry_interval = (expiry > 0).then_some(expiry);
    } else {
        c.clean_start = expiry == 0;
    }
    let mut w = Will::new(
        mqtt_codec::TopicName::from_static("status/client-1").unwrap(),
        "offline",
    );
    w.qos = QoS::AtLeastOnce;
    w.retain = true;
    if v.is_v5() {
        w.properties.will_delay_interval = will_delay;
        w.properties.content_type = Some(Utf8Bytes::from_static("text/plain"));
    }
    c.will = Some(w);
    c
}

fn expected_will(v: ProtocolVersion) -> Message {
    let mut m = Message::new(
        "status/client-1".parse().unwrap(),
        "offline",
        QoS::AtLeastOnce,
        true,
    );
    if v.is_v5() {
        m.properties.to_mut().content_type = Some(Utf8Bytes::from_static("text/plain"));
    }
    m
}

// ---------------------------------------------------------------------------
// Client keep-alive
// ---------------------------------------------------------------------------

/// "In the absence of sending any other MQTT Control Packets, the Client
/// MUST send a PINGREQ packet" within Keep Alive [MQTT-3.1.2-20] (3.1.1
/// [MQTT-3.1.2-23]): not before the Keep Alive of silence, at it.
#[test]
fn client_sends_pingreq_after_keep_alive_of_silence_not_before() {
    for v in BOTH {
        let mut c = client_cfg(v);
        c.keep_alive = 10;
        let mut pair = Pair::new(c, ServerConfig::default());
        pair.establish();
        pair.advance(ms(9_999));
        assert_eq!(pings(&pair), 0, "{v}: no PINGREQ before 10 s");
        pair.advance(ms(1));
        assert_eq!(pings(&pair), 1, "{v}: PINGREQ at 10 s");
        let last: Vec<&Packet> = pair.wire.iter().rev().take(2).map(|(_, p)| p).collect();
        assert_eq!(
            last,
            [&Packet::PingResp, &Packet::PingReq],
            "{v}: answered with PINGRESP"
        );
        assert!(pair.client.is_connected());
    }
}

/// The Keep Alive counts from the last packet the client sent: a QoS 1
/// PUBLISH at 5 s (answered at once: the server is not silent either)
/// moves the next PINGREQ to 15 s.
#[test]
fn any_packet_sent_restarts_the_client_keep_alive() {
    let mut c = client_cfg(ProtocolVersion::V5);
    c.keep_alive = 10;
    let mut pair = Pair::new(c, ServerConfig::default());
    pair.establish();
    pair.advance(secs(5));
    pair.client
        .publish(
            pair.now,
            Message::new("t".parse().unwrap(), "x", QoS::AtLeastOnce, false),
        )
        .unwrap();
    pair.drive();
    pair.advance(ms(9_999));
    assert_eq!(pings(&pair), 0);
    pair.advance(ms(1));
    assert_eq!(pings(&pair), 1);
}

/// A client that only sends (QoS 0, which nothing answers) still sends
/// PINGREQ once the server has been silent for Keep Alive: at 10 s here,
/// though it published at 5 s; so a server that reads but never answers
/// is found dead by the PINGRESP timeout, as for an idle client.
#[test]
fn a_silent_server_is_pinged_though_the_client_sends() {
    let mut c = client_cfg(ProtocolVersion::V5);
    c.keep_alive = 10;
    let mut pair = Pair::new(c, ServerConfig::default());
    pair.establish();
    pair.advance(secs(5));
    pair.client
        .publish(
            pair.now,
            Message::new("t".parse().unwrap(), "x", QoS::AtMostOnce, false),
        )
        .unwrap();
    pair.drive();
    pair.advance(ms(4_999));
    assert_eq!(pings(&pair), 0);
    pair.advance(ms(1));
    assert_eq!(pings(&pair), 1);
    // Answered: the next one 10 s later, as before.
    pair.advance(ms(9_999));
    assert_eq!(pings(&pair), 1);
    pair.advance(ms(1));
    assert_eq!(pings(&pair), 2);
}

/// PINGRESPs that arrive in time keep the connection up: an hour of
/// silence at Keep Alive 10 s is 360 PINGREQ/PINGRESP exchanges.
#[test]
fn pingresp_in_time_keeps_the_connection() {
    for v in BOTH {
        let mut c = client_cfg(v);
        c.keep_alive = 10;
        let mut pair = Pair::new(c, ServerConfig::default());
        pair.establish();
        pair.advance(secs(3600));
        assert_eq!(pings(&pair), 360, "{v}");
        assert_eq!(
            pair.wire
                .iter()
                .filter(|(_, p)| *p == Packet::PingResp)
                .count(),
            360
        );
        assert!(pair.client.is_connected() && pair.server.is_connected());
        assert_eq!(
            count(&pair.client_events, |e| matches!(e, Event::Closed(_))),
            0
        );
        assert_eq!(
            count(&pair.server_events, |e| matches!(e, Event::Closed(_))),
            0
        );
    }
}

/// "If a Client does not receive a PINGRESP packet within a reasonable
/// amount of time after it has sent a PINGREQ, it SHOULD close the Network
/// Connection" (MQTT 5.0 section 3.1.2.10): after `ping_timeout` the client
/// closes with a keep-alive timeout.
#[test]
fn no_pingresp_within_ping_timeout_closes_the_client() {
    for v in BOTH {
        let mut c = client_cfg(v);
        c.keep_alive = 10;
        c.ping_timeout = secs(5);
        let t0 = Instant::now();
        let mut client = ClientSession::new(c);
        client.connect(t0).unwrap();
        assert!(matches!(client.poll_transmit(), Some(Packet::Connect(_))));
        client.handle_packet(t0, ConnAck::default().into());
        while client.poll_event().is_some() {}
        assert_eq!(client.poll_timeout(), Some(t0 + secs(10)));
        client.handle_timeout(t0 + secs(10));
        assert_eq!(client.poll_transmit(), Some(Packet::PingReq));
        // No PINGRESP comes.
        client.handle_timeout(t0 + ms(14_999));
        assert_eq!(
            client.poll_event(),
            None,
            "{v}: not before the ping timeout"
        );
        assert!(client.is_connected());
        assert_eq!(client.poll_timeout(), Some(t0 + secs(15)));
        client.handle_timeout(t0 + secs(15));
        assert_eq!(
            client.poll_event(),
            Some(Event::Closed(CloseReason::ProtocolError(
                ProtocolError::KeepAliveTimeout
            )))
        );
        assert!(!client.is_connected());
        assert_eq!(client.poll_timeout(), None);
    }
}

/// "A Keep Alive value of 0 has the effect of turning off the Keep Alive
/// mechanism" (MQTT 5.0 section 3.1.2.10): ten hours of silence, no PINGREQ
/// and no timeout on either side.
#[test]
fn keep_alive_zero_disables_pings() {
    for v in BOTH {
        let mut c = client_cfg(v);
        c.keep_alive = 0;
        let mut pair = Pair::new(c, ServerConfig::default());
        pair.establish();
        assert_eq!(pair.client.poll_timeout(), None);
        assert_eq!(pair.server.poll_timeout(), None);
        pair.advance(secs(10 * 3600));
        assert_eq!(pings(&pair), 0, "{v}");
        assert!(pair.client.is_connected() && pair.server.is_connected());
    }
}

// ---------------------------------------------------------------------------
// Server keep-alive and connect timeout
// ---------------------------------------------------------------------------

/// "If the Keep Alive value is non-zero and the Server does not receive an
/// MQTT Control Packet from the Client within one and a half times the Keep
/// Alive time period, it MUST disconnect the Network Connection to the
/// Client as if the network had failed" [MQTT-3.1.2-22] (3.1.1
/// [MQTT-3.1.2-24]); in 5.0 with DISCONNECT 0x8D Keep Alive timeout, in
/// 3.1.1 with no packet.
#[test]
fn server_closes_a_connection_silent_for_one_and_a_half_keep_alive() {
    for v in BOTH {
        let mut srv = Srv::accepted(ServerConfig::default(), connect(v, 10, 0, None));
        srv.advance(secs(14));
        assert!(srv.s.is_connected(), "{v}: open at 1.4 x keep-alive");
        assert!(srv.sent.is_empty());
        srv.advance(ms(999));
        assert!(srv.s.is_connected(), "{v}: open at 14.999 s");
        srv.advance(ms(1));
        assert!(!srv.s.is_connected(), "{v}: closed at 1.5 x keep-alive");
        let expected = if v.is_v5() {
            vec![Packet::Disconnect(Disconnect::new(
                ReasonCode::KeepAliveTimeout,
            ))]
        } else {
            vec![]
        };
        assert_eq!(reason_only(&srv.sent), expected, "{v}");
        assert!(
            srv.events
                .contains(&Event::Closed(CloseReason::ProtocolError(
                    ProtocolError::KeepAliveTimeout
                )))
        );
    }
}

/// Every packet received restarts the 1.5 x Keep Alive period.
#[test]
fn server_keep_alive_restarts_on_each_packet() {
    let mut srv = Srv::accepted(
        ServerConfig::default(),
        connect(ProtocolVersion::V5, 10, 0, None),
    );
    for _ in 0..10 {
        srv.advance(secs(14));
        srv.feed(Packet::PingReq);
        assert_eq!(srv.sent.pop(), Some(Packet::PingResp));
    }
    assert!(srv.s.is_connected());
    srv.advance(ms(14_999));
    assert!(srv.s.is_connected());
    srv.advance(ms(1));
    assert!(!srv.s.is_connected());
}

/// A connection that never sends CONNECT is closed after
/// `ServerConfig::connect_timeout` (a server limit, DESIGN.md "connect
/// timeout"), with no packet sent (no CONNACK before CONNECT), and the
/// session ends.
#[test]
fn server_closes_a_connection_that_never_sends_connect() {
    let mut cfg = ServerConfig::default();
    cfg.connect_timeout = secs(5);
    let mut srv = Srv::new(cfg);
    assert_eq!(srv.s.poll_timeout(), Some(srv.now + secs(5)));
    srv.advance(ms(4_999));
    assert!(srv.events.is_empty());
    assert!(!srv.s.is_ended());
    srv.advance(ms(1));
    assert_eq!(
        srv.events,
        [Event::Closed(CloseReason::ProtocolError(
            ProtocolError::ConnectTimeout
        ))]
    );
    assert!(srv.sent.is_empty());
    assert!(srv.s.is_ended());
    assert_eq!(srv.s.poll_timeout(), None);
    // A CONNECT after the timeout is ignored.
    srv.feed(connect(ProtocolVersion::V5, 10, 0, None));
    assert_eq!(srv.events.len(), 1);
    assert!(srv.sent.is_empty());
}

// ---------------------------------------------------------------------------
// The will
// ---------------------------------------------------------------------------

/// The will is published when the network connection closes without a
/// normal DISCONNECT [MQTT-3.1.2-8]: here an I/O error or a client closing
/// the connection (3.1.1 section 3.1.2.5).
#[test]
fn will_on_connection_loss() {
    for v in BOTH {
        let mut srv = Srv::accepted(ServerConfig::default(), connect(v, 60, 0, None));
        srv.lose_connection();
        assert_eq!(wills(&srv.events), [expected_will(v)], "{v}");
        assert!(
            srv.events
                .contains(&Event::Closed(CloseReason::ConnectionLost))
        );
    }
}

/// The will is published on a keep-alive timeout (3.1.1 section 3.1.2.5:
/// "The Client fails to communicate within the Keep Alive time").
#[test]
fn will_on_keep_alive_timeout() {
    for v in BOTH {
        let mut srv = Srv::accepted(ServerConfig::default(), connect(v, 10, 0, None));
        srv.advance(ms(14_999));
        assert!(wills(&srv.events).is_empty());
        srv.advance(ms(1));
        assert_eq!(wills(&srv.events), [expected_will(v)], "{v}");
    }
}

/// The will is published when the server closes the connection because of
/// a protocol error (3.1.1 section 3.1.2.5), here a second CONNECT
/// [MQTT-3.1.0-2].
#[test]
fn will_on_protocol_error() {
    for v in BOTH {
        let mut srv = Srv::accepted(ServerConfig::default(), connect(v, 60, 0, None));
        srv.feed(connect(v, 60, 0, None));
        assert!(matches!(
            srv.events.first(),
            Some(Event::Closed(CloseReason::ProtocolError(
                ProtocolError::SecondConnect
            )))
        ));
        assert_eq!(wills(&srv.events), [expected_will(v)], "{v}");
    }
}

/// A server-initiated disconnect (Session taken over, 0x8E) publishes the
/// will (MQTT 5.0 section 3.1.2.5: the server closes the connection
/// without a DISCONNECT from the client); 5.0 sends DISCONNECT 0x8E first.
#[test]
fn will_on_server_initiated_disconnect() {
    for v in BOTH {
        let mut srv = Srv::accepted(ServerConfig::default(), connect(v, 60, 0, None));
        srv.s.disconnect(srv.now, ReasonCode::SessionTakenOver);
        srv.drain();
        let expected = if v.is_v5() {
            vec![Packet::Disconnect(Disconnect::new(
                ReasonCode::SessionTakenOver,
            ))]
        } else {
            vec![]
        };
        assert_eq!(srv.sent, expected, "{v}");
        assert!(srv.events.contains(&Event::Closed(CloseReason::Local(
            ReasonCode::SessionTakenOver
        ))));
        assert_eq!(wills(&srv.events), [expected_will(v)], "{v}");
    }
}

/// "The Will Message MUST be removed from the stored Session State in the
/// Server once it has been published or the Server has received a
/// DISCONNECT packet with a Reason Code of 0x00 (Normal disconnection) from
/// the Client" [MQTT-3.1.2-10] (3.1.1 [MQTT-3.1.2-10]): not published, not
/// even when the session later expires.
#[test]
fn no_will_after_a_normal_disconnect() {
    for v in BOTH {
        let mut srv = Srv::accepted(ServerConfig::default(), connect(v, 60, 100, Some(10)));
        srv.feed(Disconnect::default());
        assert!(
            srv.events
                .contains(&Event::Closed(CloseReason::ClientDisconnected(
                    ReasonCode::Success
                )))
        );
        srv.advance(secs(24 * 3600));
        assert!(wills(&srv.events).is_empty(), "{v}: {:?}", srv.events);
        assert!(srv.sent.is_empty(), "no answer to DISCONNECT");
    }
}

/// "Disconnect with Will Message (0x04): the Client wishes to disconnect but
/// requires that the Server also publishes its Will Message" (MQTT 5.0
/// section 3.14.2.1).
#[test]
fn v5_will_after_disconnect_with_will_message() {
    let mut srv = Srv::accepted(
        ServerConfig::default(),
        connect(ProtocolVersion::V5, 60, 0, None),
    );
    srv.feed(Disconnect::new(ReasonCode::DisconnectWithWillMessage));
    assert!(
        srv.events
            .contains(&Event::Closed(CloseReason::ClientDisconnected(
                ReasonCode::DisconnectWithWillMessage
            )))
    );
    assert_eq!(wills(&srv.events), [expected_will(ProtocolVersion::V5)]);
}

/// "The Server delays publishing the Client's Will Message until the Will
/// Delay Interval has passed or the Session ends, whichever happens first"
/// (MQTT 5.0 section 3.1.3.2.2).
#[test]
fn v5_will_delay_interval_is_honoured() {
    let mut srv = Srv::accepted(
        ServerConfig::default(),
        connect(ProtocolVersion::V5, 60, 100, Some(30)),
    );
    srv.lose_connection();
    assert!(wills(&srv.events).is_empty(), "not at once");
    srv.advance(ms(29_999));
    assert!(wills(&srv.events).is_empty(), "not before the delay");
    srv.advance(ms(1));
    assert_eq!(wills(&srv.events), [expected_will(ProtocolVersion::V5)]);
    assert_eq!(expired(&srv.events), 0, "the session lives on");
    srv.advance(secs(70));
    assert_eq!(expired(&srv.events), 1);
    assert_eq!(wills(&srv.events).len(), 1, "published once");
}

/// "...unless ... a new Network Connection for the ClientID is opened before
/// the Will Delay Interval has elapsed" [MQTT-3.1.2-8]: the client
/// reconnects, resuming the session (take_state), and the will is never
/// published.
#[test]
fn v5_will_cancelled_when_the_client_reconnects_within_the_delay() {
    let mut c = client_cfg(ProtocolVersion::V5);
    c.clean_start = false;
    c.session_expiry_interval = 100;
    let mut will = Will::new(
        mqtt_codec::TopicName::from_static("status/client-1").unwrap(),
        "offline",
    );
    will.properties.will_delay_interval = Some(30);
    c.will = Some(will);
    let mut pair = Pair::new(c, ServerConfig::default());
    pair.establish();
    pair.cut();
    pair.advance(secs(10));
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
    pair.advance(secs(3600));
    assert!(
        wills(&pair.server_events).is_empty(),
        "{:?}",
        pair.server_events
    );
    assert_eq!(expired(&pair.server_events), 0);
}

/// The will is published when the session ends, if that comes before the
/// Will Delay Interval (MQTT 5.0 section 3.1.3.2.2): expiry 5 s, delay 30 s.
#[test]
fn v5_will_published_when_session_expires_before_the_delay() {
    let mut srv = Srv::accepted(
        ServerConfig::default(),
        connect(ProtocolVersion::V5, 60, 5, Some(30)),
    );
    srv.lose_connection();
    srv.advance(ms(4_999));
    assert!(wills(&srv.events).is_empty());
    assert_eq!(expired(&srv.events), 0);
    srv.advance(ms(1));
    assert_eq!(wills(&srv.events), [expected_will(ProtocolVersion::V5)]);
    assert_eq!(expired(&srv.events), 1);
    assert!(srv.s.is_ended());
}

/// A reconnection with Clean Start 1 ends the old session (MQTT 5.0
/// [MQTT-3.1.2-4]), which publishes its pending will at once (section
/// 3.1.3.2.2: "or the Session ends"): the broker calls `end` on it.
#[test]
fn v5_clean_start_reconnect_ends_the_old_session_and_publishes_the_will() {
    let mut c = client_cfg(ProtocolVersion::V5);
    c.clean_start = false;
    c.session_expiry_interval = 100;
    let mut will = Will::new(
        mqtt_codec::TopicName::from_static("status/client-1").unwrap(),
        "offline",
    );
    will.properties.will_delay_interval = Some(30);
    c.will = Some(will);
    let mut pair = Pair::new(c.clone(), ServerConfig::default());
    pair.establish();
    pair.cut();
    pair.advance(secs(1));
    assert!(wills(&pair.server_events).is_empty());
    c.clean_start = true;
    pair.client = ClientSession::new(c);
    pair.establish();
    assert_eq!(
        wills(&pair.server_events).len(),
        1,
        "{:?}",
        pair.server_events
    );
    assert!(matches!(
        pair.client_events.last(),
        Some(Event::Connected {
            session_present: false,
            ..
        })
    ));
    pair.advance(secs(3600));
    assert_eq!(wills(&pair.server_events).len(), 1, "published once");
}

// ---------------------------------------------------------------------------
// Session expiry
// ---------------------------------------------------------------------------

/// "If the Session Expiry Interval is absent the value 0 is used. If it is
/// set to 0, or is absent, the Session ends when the Network Connection is
/// closed" (MQTT 5.0 section 3.1.2.11.2). Messages for it are refused after.
#[test]
fn v5_session_expiry_zero_ends_the_session_at_disconnect() {
    let mut srv = Srv::accepted(
        ServerConfig::default(),
        connect(ProtocolVersion::V5, 60, 0, None),
    );
    srv.feed(Disconnect::default());
    assert_eq!(expired(&srv.events), 1);
    assert!(srv.s.is_ended());
    assert_eq!(
        srv.s.publish(
            srv.now,
            Message::new("t".parse().unwrap(), "x", QoS::AtLeastOnce, false)
        ),
        Err(UsageError::Closed)
    );
}

/// A Session Expiry Interval of 60 keeps the session for 60 s after the
/// connection closes [MQTT-3.1.2-23], not less; then it expires and what
/// was queued for it is dropped.
#[test]
fn v5_session_expires_after_the_interval_not_before() {
    let mut srv = Srv::accepted(
        ServerConfig::default(),
        connect(ProtocolVersion::V5, 60, 60, None),
    );
    srv.feed(Disconnect::default());
    let id = srv
        .s
        .publish(
            srv.now,
            Message::new("t".parse().unwrap(), "x", QoS::AtLeastOnce, false),
        )
        .unwrap();
    srv.advance(ms(59_999));
    assert_eq!(expired(&srv.events), 0);
    assert!(!srv.s.is_ended());
    srv.advance(ms(1));
    assert_eq!(expired(&srv.events), 1);
    assert!(srv.events.contains(&Event::Dropped {
        id,
        reason: DropReason::SessionEnded
    }));
    assert!(srv.s.is_ended());
}

/// The server may cap the Session Expiry Interval and says so in CONNACK
/// (MQTT 5.0 section 3.2.2.3.2).
#[test]
fn v5_session_expiry_capped_by_the_server() {
    let mut cfg = ServerConfig::default();
    cfg.max_session_expiry_interval = 50;
    let mut srv = Srv::new(cfg);
    srv.feed(connect(ProtocolVersion::V5, 60, 100, None));
    srv.s.accept(srv.now, mqtt_session::Accept::new()).unwrap();
    srv.drain();
    assert!(
        matches!(srv.sent.last(), Some(Packet::ConnAck(a)) if a.properties.session_expiry_interval == Some(50))
    );
    srv.lose_connection();
    srv.advance(ms(49_999));
    assert_eq!(expired(&srv.events), 0);
    srv.advance(ms(1));
    assert_eq!(expired(&srv.events), 1);
}

/// The client may change the Session Expiry Interval in DISCONNECT (MQTT
/// 5.0 section 3.14.2.2.2): 60 then 0 ends the session at once; 60 then 120
/// keeps it 120 s.
#[test]
fn v5_disconnect_may_change_the_session_expiry() {
    let mut srv = Srv::accepted(
        ServerConfig::default(),
        connect(ProtocolVersion::V5, 60, 60, None),
    );
    let mut d = Disconnect::default();
    d.properties.to_mut().session_expiry_interval = Some(0);
    srv.feed(d);
    assert_eq!(expired(&srv.events), 1);

    let mut srv = Srv::accepted(
        ServerConfig::default(),
        connect(ProtocolVersion::V5, 60, 60, None),
    );
    let mut d = Disconnect::default();
    d.properties.to_mut().session_expiry_interval = Some(120);
    srv.feed(d);
    srv.advance(secs(60));
    assert_eq!(expired(&srv.events), 0, "not at the CONNECT's 60 s");
    srv.advance(ms(59_999));
    assert_eq!(expired(&srv.events), 0);
    srv.advance(ms(1));
    assert_eq!(expired(&srv.events), 1);
}

/// "If the Session Expiry Interval in the CONNECT packet was zero, then it
/// is a Protocol Error to set a non-zero Session Expiry Interval in the
/// DISCONNECT packet sent by the Client. If such a non-zero Session Expiry
/// Interval is received by the Server, it does not treat it as a valid
/// DISCONNECT packet. The Server uses DISCONNECT with Reason Code 0x82"
/// (MQTT 5.0 section 3.14.2.2.2). Not a valid DISCONNECT: the will goes.
#[test]
fn v5_session_expiry_zero_to_non_zero_at_disconnect_is_a_protocol_error() {
    let mut srv = Srv::accepted(
        ServerConfig::default(),
        connect(ProtocolVersion::V5, 60, 0, None),
    );
    let mut d = Disconnect::default();
    d.properties.to_mut().session_expiry_interval = Some(30);
    srv.feed(d);
    assert_eq!(
        reason_only(&srv.sent),
        [Packet::Disconnect(Disconnect::new(
            ReasonCode::ProtocolError
        ))]
    );
    assert!(
        matches!(srv.events.first(), Some(Event::Closed(CloseReason::ProtocolError(e))) if e.reason_code() == ReasonCode::ProtocolError)
    );
    assert_eq!(wills(&srv.events).len(), 1);
    assert_eq!(expired(&srv.events), 1, "the interval stays 0");
}

/// 3.1.1: with Clean Session 0 the session is kept after the connection
/// closes [MQTT-3.1.2-4] (3.1.1), with no expiry: still there after 30
/// days, and resumed.
#[test]
fn v311_persistent_session_never_expires() {
    let mut c = client_cfg(ProtocolVersion::V3_1_1);
    c.clean_start = false;
    let mut pair = Pair::new(c, ServerConfig::default());
    pair.establish();
    pair.cut();
    pair.server
        .publish(
            pair.now,
            Message::new("t".parse().unwrap(), "kept", QoS::AtLeastOnce, false),
        )
        .unwrap();
    assert_eq!(pair.server.poll_timeout(), None);
    pair.advance(secs(30 * 24 * 3600));
    assert_eq!(expired(&pair.server_events), 0);
    assert!(!pair.server.is_ended());
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
    assert!(
        pair.client_events
            .iter()
            .any(|e| matches!(e, Event::Message { message, .. } if message.payload == "kept"))
    );
}

/// 3.1.1: with Clean Session 1 the session ends with the connection
/// [MQTT-3.1.2-6] (3.1.1).
#[test]
fn v311_clean_session_ends_with_the_connection() {
    let mut srv = Srv::accepted(
        ServerConfig::default(),
        connect(ProtocolVersion::V3_1_1, 60, 0, None),
    );
    srv.lose_connection();
    assert_eq!(expired(&srv.events), 1);
    assert!(srv.s.is_ended());
}

/// [MQTT-3.1.2-24]: a 3.1.1 client cannot be told of a Server Keep Alive, so
/// its own keep-alive applies.
#[test]
fn v311_server_keep_alive_is_not_imposed_on_a_v311_client() {
    let mut c = client_cfg(ProtocolVersion::V3_1_1);
    c.keep_alive = 60;
    let mut s = ServerConfig::default();
    s.server_keep_alive = Some(5);
    let mut pair = Pair::new(c, s);
    pair.establish();
    pair.advance(secs(10));
    assert!(
        pair.server.is_connected(),
        "server closed a 3.1.1 client after {:?}",
        pair.server_events
    );
    assert_eq!(pings(&pair), 0, "the client keeps its own 60 s");
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
