//! Arbitrary sequences of packets (each one valid on the wire) and timer
//! ticks into a server session and a client session: no panic, and nothing
//! grows past its configured bound.
#![no_main]

use std::num::{NonZeroU16, NonZeroU32};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use mqtt_codec::*;
use mqtt_session::{Accept, ClientConfig, ClientSession, Event, Message, ServerConfig, ServerSession};

#[derive(Arbitrary, Debug)]
enum Pkt {
    Connect { v5: bool, clean: bool, keep_alive: u8, will: bool, expiry: Option<u32>, receive_max: Option<u16>, alias_max: Option<u8> },
    ConnAck { session_present: bool, reason: u8, receive_max: Option<u16>, alias_max: Option<u8>, max_packet: Option<u16>, keep_alive: Option<u8> },
    Publish { qos: u8, dup: bool, retain: bool, topic: u8, pid: u16, alias: Option<u8>, empty_topic: bool, expiry: Option<u8> },
    PubAck(u16),
    PubRec(u16, bool),
    PubRel(u16),
    PubComp(u16),
    Subscribe(u16, u8, u8),
    SubAck(u16, u8),
    Unsubscribe(u16, u8),
    UnsubAck(u16, u8),
    PingReq,
    PingResp,
    Disconnect(u8, Option<u32>),
}

#[derive(Arbitrary, Debug)]
enum Op {
    ToServer(Pkt),
    ToClient(Pkt),
    Tick(u16),
    ClientPublish(u8, u8, bool),
    ServerPublish(u8, u8),
    ClientConnect,
    ClientSubscribe(u8),
    ConnectionLost,
    Takeover,
    Ack(u16),
}

const TOPICS: [&str; 4] = ["a", "a/b", "$SYS/x", "c/d/e"];
const FILTERS: [&str; 5] = ["a", "a/+", "#", "$share/g/a/#", "a/#/b"];

fn qos(q: u8) -> QoS {
    match q % 3 {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn s(x: &'static str) -> Utf8Bytes {
    Utf8Bytes::from_static(x)
}

fn build(p: Pkt) -> Packet {
    match p {
        Pkt::Connect { v5, clean, keep_alive, will, expiry, receive_max, alias_max } => {
            let mut c = Connect::new(if v5 { ProtocolVersion::V5 } else { ProtocolVersion::V3_1_1 }, s("fuzz"));
            c.clean_start = clean;
            c.keep_alive = u16::from(keep_alive);
            if will {
                let mut w = Will::new(TopicName::from_static("will/t").unwrap(), Bytes::from_static(b"bye"));
                if v5 {
                    w.properties.will_delay_interval = Some(5);
                }
                c.will = Some(w);
            }
            if v5 {
                c.properties.session_expiry_interval = expiry;
                c.properties.receive_maximum = receive_max.and_then(NonZeroU16::new);
                c.properties.topic_alias_maximum = alias_max.map(u16::from);
            }
            c.into()
        }
        Pkt::ConnAck { session_present, reason, receive_max, alias_max, max_packet, keep_alive } => {
            let mut c = ConnAck::new(ReasonCode::try_from(reason).unwrap_or(ReasonCode::Success));
            c.session_present = session_present && !c.reason.is_error();
            c.properties.receive_maximum = receive_max.and_then(NonZeroU16::new);
            c.properties.topic_alias_maximum = alias_max.map(u16::from);
            c.properties.maximum_packet_size = max_packet.and_then(|m| NonZeroU32::new(u32::from(m)));
            c.properties.server_keep_alive = keep_alive.map(u16::from);
            c.into()
        }
        Pkt::Publish { qos: q, dup, retain, topic, pid, alias, empty_topic, expiry } => {
            let q = qos(q);
            let mut p = Publish::new(PublishTopic::from_static(TOPICS[usize::from(topic) % TOPICS.len()]), Bytes::from_static(b"payload"));
            p.qos = q;
            p.retain = retain;
            p.dup = dup && q != QoS::AtMostOnce;
            p.packet_id = if q == QoS::AtMostOnce { None } else { PacketId::new(pid.max(1)) };
            p.properties.to_mut().topic_alias = alias.and_then(|a| NonZeroU16::new(u16::from(a)));
            if empty_topic && p.properties.topic_alias.is_some() {
                p.topic = PublishTopic::empty();
            }
            p.properties.to_mut().message_expiry_interval = expiry.map(u32::from);
            p.into()
        }
        Pkt::PubAck(id) => PubAck::new(PacketId::new(id.max(1)).unwrap()).into(),
        Pkt::PubRec(id, err) => {
            let mut r = PubRec::new(PacketId::new(id.max(1)).unwrap());
            if err {
                r.reason = ReasonCode::QuotaExceeded;
            }
            r.into()
        }
        Pkt::PubRel(id) => PubRel::new(PacketId::new(id.max(1)).unwrap()).into(),
        Pkt::PubComp(id) => PubComp::new(PacketId::new(id.max(1)).unwrap()).into(),
        Pkt::Subscribe(id, f, q) => Subscribe::new(
            PacketId::new(id.max(1)).unwrap(),
            s(FILTERS[usize::from(f) % FILTERS.len()]),
            SubscriptionOptions::new(qos(q)),
        )
        .into(),
        Pkt::SubAck(id, n) => SubAck::new(PacketId::new(id.max(1)).unwrap(), vec![ReasonCode::GrantedQoS1; usize::from(n % 4)]).into(),
        Pkt::Unsubscribe(id, f) => Unsubscribe::new(PacketId::new(id.max(1)).unwrap(), vec![s(FILTERS[usize::from(f) % FILTERS.len()])]).into(),
        Pkt::UnsubAck(id, n) => UnsubAck::new(PacketId::new(id.max(1)).unwrap(), vec![ReasonCode::Success; usize::from(n % 4)]).into(),
        Pkt::PingReq => Packet::PingReq,
        Pkt::PingResp => Packet::PingResp,
        Pkt::Disconnect(r, sei) => {
            let mut d = Disconnect::new(ReasonCode::try_from(r).unwrap_or(ReasonCode::Success));
            d.properties.to_mut().session_expiry_interval = sei;
            d.into()
        }
    }
}

/// The packet as the peer's decoder would see it, if it is valid at `v`.
fn over_the_wire(p: &Packet, v: ProtocolVersion) -> Option<Packet> {
    let mut buf = BytesMut::new();
    Encoder::new(v).encode(p, &mut buf).ok()?;
    Decoder::with_version(v).decode(&mut buf).ok().flatten()
}

const MAX_QUEUED: usize = 16;

fn server_config() -> ServerConfig {
    let mut c = ServerConfig::default();
    c.max_queued = MAX_QUEUED;
    c.receive_maximum = NonZeroU16::new(4).unwrap();
    c.max_inflight = NonZeroU16::new(4).unwrap();
    c.topic_alias_maximum = 4;
    c
}

fuzz_target!(|ops: Vec<Op>| {
    let mut now = Instant::now();
    let mut server = ServerSession::new(server_config(), now);
    let mut cc = ClientConfig::new(ProtocolVersion::V5, s("fuzz"));
    cc.max_queued = MAX_QUEUED;
    cc.topic_alias_maximum = 4;
    cc.receive_maximum = NonZeroU16::new(4).unwrap();
    let mut client = ClientSession::new(cc);
    let mut seq = 0u32;
    for op in ops.into_iter().take(256) {
        match op {
            Op::ToServer(p) => {
                let v = server.version();
                if let Some(p) = over_the_wire(&build(p), v) {
                    server.handle_packet(now, p);
                }
            }
            Op::ToClient(p) => {
                if let Some(p) = over_the_wire(&build(p), ProtocolVersion::V5) {
                    client.handle_packet(now, p);
                }
            }
            Op::Tick(ms) => {
                now += Duration::from_millis(u64::from(ms) * 100);
                server.handle_timeout(now);
                client.handle_timeout(now);
            }
            Op::ClientPublish(q, t, retain) => {
                seq += 1;
                let topic = TOPICS[usize::from(t) % TOPICS.len()].parse().unwrap();
                let _ = client.publish(now, Message::new(topic, Bytes::from(seq.to_be_bytes().to_vec()), qos(q), retain));
            }
            Op::ServerPublish(q, t) => {
                let topic = TOPICS[usize::from(t) % TOPICS.len()].parse().unwrap();
                let _ = server.publish(now, Message::new(topic, Bytes::from_static(b"m"), qos(q), false));
            }
            Op::ClientConnect => {
                let _ = client.connect(now);
            }
            Op::ClientSubscribe(f) => {
                if let Ok(f) = FILTERS[usize::from(f) % FILTERS.len()].parse() {
                    let _ = client.subscribe(now, vec![(f, SubscriptionOptions::new(QoS::ExactlyOnce))], None);
                }
            }
            Op::ConnectionLost => {
                server.connection_lost(now);
                client.connection_lost(now);
            }
            Op::Takeover => server.disconnect(now, ReasonCode::SessionTakenOver),
            Op::Ack(id) => {
                if let Some(pid) = PacketId::new(id) {
                    let _ = server.ack(now, pid);
                    let _ = client.ack(now, pid);
                }
            }
        }
        // Drain outputs; answer what a broker answers.
        while let Some(e) = server.poll_event() {
            match e {
                Event::Connect(_) => {
                    let _ = server.accept(now, Accept::new());
                }
                Event::Subscribe(req) => {
                    let reasons = req.grant_all();
                    let _ = server.suback(now, &req, reasons);
                }
                _ => {}
            }
        }
        while client.poll_event().is_some() {}
        let mut sent = 0;
        while let Some(p) = server.poll_transmit() {
            // Whatever a session sends must be encodable.
            let mut buf = BytesMut::new();
            Encoder::new(server.version()).encode(&p, &mut buf).unwrap_or_else(|e| panic!("{p:?}: {e}"));
            sent += 1;
        }
        while let Some(p) = client.poll_transmit() {
            let mut buf = BytesMut::new();
            Encoder::new(ProtocolVersion::V5).encode(&p, &mut buf).unwrap_or_else(|e| panic!("{p:?}: {e}"));
            sent += 1;
        }
        assert!(sent < 10_000);
        // Receive Maximum bounds incoming QoS 2 state in 5.0; 3.1.1 has none,
        // so the packet identifier space (65,535) does.
        let server_bound = if server.version().is_v5() { 4 } else { usize::from(u16::MAX) };
        for (st, qos2_bound) in [(server.state(), server_bound), (client.state(), 4)] {
            assert!(st.queued_len() <= MAX_QUEUED, "queue over its bound");
            assert!(st.inflight_len() <= usize::from(u16::MAX));
            assert!(st.incoming_qos2().count() <= qos2_bound, "incoming QoS 2 over its bound");
        }
    }
});
