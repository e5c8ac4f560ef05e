//! Property tests over random schedules: a client and a server publishing
//! to each other while the transport is cut at arbitrary points, time
//! passes, and the client reconnects resuming its session.
//!
//! Every QoS 1 message is delivered at least once, every QoS 2 message
//! exactly once, QoS 0 at most once, first deliveries keep publication
//! order, and no packet identifier is ever used by two messages at once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test code

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use common::Pair;
use mqtt_codec::{Packet, ProtocolVersion, QoS, Utf8Bytes};
use mqtt_session::{ClientConfig, Event, Message, ServerConfig};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    ClientPublish(QoS),
    ServerPublish(QoS),
    ToServer(usize),
    ToClient(usize),
    Advance(u64),
    Cut,
    Reconnect,
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => qos().prop_map(Op::ClientPublish),
        4 => qos().prop_map(Op::ServerPublish),
        4 => (1usize..6).prop_map(Op::ToServer),
        4 => (1usize..6).prop_map(Op::ToClient),
        1 => (0u64..200_000).prop_map(Op::Advance),
        1 => Just(Op::Cut),
        2 => Just(Op::Reconnect),
    ]
}

fn message(seq: u32, qos: QoS) -> Message {
    Message::new(
        "seq".parse().unwrap(),
        Bytes::from(seq.to_be_bytes().to_vec()),
        qos,
        false,
    )
}

fn seq_of(m: &Message) -> u32 {
    u32::from_be_bytes(m.payload[..4].try_into().unwrap())
}

/// Checks the delivery guarantees for one direction.
fn check(published: &[(u32, QoS)], delivered: &[u32], who: &str) {
    let mut count: HashMap<u32, usize> = HashMap::new();
    for s in delivered {
        *count.entry(*s).or_default() += 1;
    }
    for &(seq, qos) in published {
        let n = count.get(&seq).copied().unwrap_or(0);
        match qos {
            QoS::AtMostOnce => assert!(n <= 1, "{who}: QoS 0 #{seq} delivered {n} times"),
            QoS::AtLeastOnce => assert!(n >= 1, "{who}: QoS 1 #{seq} lost"),
            QoS::ExactlyOnce => assert_eq!(n, 1, "{who}: QoS 2 #{seq} delivered {n} times"),
        }
    }
    // First deliveries keep publication order (MQTT 5.0 section 4.6).
    let mut seen = std::collections::HashSet::new();
    let firsts: Vec<u32> = delivered
        .iter()
        .copied()
        .filter(|s| seen.insert(*s))
        .collect();
    assert!(
        firsts.windows(2).all(|w| w[0] < w[1]),
        "{who}: out of order: {firsts:?}"
    );
}

/// No packet identifier carries two different messages at once, per
/// direction: a PUBLISH may reuse an identifier only after its flow ended.
fn check_packet_ids(wire: &[(bool, Packet)]) {
    // Replay both directions in order; acks flow the other way.
    let mut in_use: [HashMap<u16, u32>; 2] = [HashMap::new(), HashMap::new()];
    for (to_server, p) in wire {
        let sender = usize::from(*to_server); // 1: client sends, 0: server sends
        let acker = 1 - sender;
        match p {
            Packet::Publish(p) => {
                if let Some(pid) = p.packet_id {
                    let seq = u32::from_be_bytes(p.payload[..4].try_into().unwrap());
                    if let Some(prev) = in_use[sender].insert(pid.get(), seq) {
                        assert_eq!(
                            prev, seq,
                            "packet id {pid} reused for #{seq} while #{prev} in flight"
                        );
                    }
                }
            }
            Packet::PubAck(a) => {
                in_use[acker].remove(&a.packet_id.get());
            }
            Packet::PubComp(c) => {
                in_use[acker].remove(&c.packet_id.get());
            }
            Packet::PubRec(r) if r.reason.is_error() => {
                in_use[acker].remove(&r.packet_id.get());
            }
            _ => {}
        }
    }
}

fn run(version: ProtocolVersion, ops: Vec<Op>) {
    let mut cc = ClientConfig::new(version, Utf8Bytes::from_static("prop"));
    cc.clean_start = false;
    cc.session_expiry_interval = u32::MAX;
    cc.inflight_window = std::num::NonZeroU16::new(3).unwrap();
    cc.receive_maximum = std::num::NonZeroU16::new(4).unwrap();
    let mut sc = ServerConfig::default();
    sc.receive_maximum = std::num::NonZeroU16::new(3).unwrap();
    sc.max_inflight = std::num::NonZeroU16::new(2).unwrap();
    let mut pair = Pair::new(cc, sc);
    pair.establish();

    let mut seq = 0u32;
    let mut from_client = Vec::new();
    let mut from_server = Vec::new();
    for op in ops {
        match op {
            Op::ClientPublish(q) => {
                seq += 1;
                if pair.client.publish(pair.now, message(seq, q)).is_ok() {
                    from_client.push((seq, q));
                }
            }
            Op::ServerPublish(q) => {
                seq += 1;
                let target = if pair.server.is_connected() {
                    Some(&mut pair.server)
                } else {
                    pair.offline.as_mut()
                };
                if let Some(s) = target {
                    if s.publish(pair.now, message(seq, q)).is_ok() {
                        from_server.push((seq, q));
                    }
                }
            }
            Op::ToServer(n) => {
                pair.deliver_to_server(n);
            }
            Op::ToClient(n) => {
                pair.deliver_to_client(n);
            }
            Op::Advance(ms) => pair.advance(Duration::from_millis(ms)),
            Op::Cut => {
                if pair.link_up {
                    pair.cut();
                }
            }
            Op::Reconnect => {
                if !pair.link_up {
                    pair.connect();
                }
            }
        }
        pair.pump_events();
    }
    // Heal: reconnect and let everything complete.
    for _ in 0..3 {
        if !pair.link_up {
            pair.connect();
        }
        pair.drive();
    }
    assert!(pair.client.is_connected());
    assert_eq!(
        pair.client.state().inflight_len() + pair.client.state().queued_len(),
        0,
        "client left work"
    );
    assert_eq!(
        pair.server.state().inflight_len() + pair.server.state().queued_len(),
        0,
        "server left work"
    );

    let at_server: Vec<u32> = pair.server_events(|e| match e {
        Event::Message { message, .. } => Some(seq_of(message)),
        _ => None,
    });
    let at_client: Vec<u32> = pair.client_events(|e| match e {
        Event::Message { message, .. } => Some(seq_of(message)),
        _ => None,
    });
    check(&from_client, &at_server, "client to server");
    check(&from_server, &at_client, "server to client");
    check_packet_ids(&pair.wire);

    // Every message handed to a sender was reported delivered or dropped once.
    let mut done: Vec<u64> = pair.client_events(|e| match e {
        Event::Delivered { id, .. } | Event::Dropped { id, .. } => Some(id.get()),
        _ => None,
    });
    done.sort_unstable();
    let total = done.len();
    done.dedup();
    assert_eq!(done.len(), total, "a message completed twice");
    assert_eq!(
        total,
        from_client.len(),
        "client messages not all completed"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn v5_delivery_guarantees_hold_under_cuts_and_reconnects(ops in proptest::collection::vec(op(), 1..80)) {
        run(ProtocolVersion::V5, ops);
    }

    #[test]
    fn v311_delivery_guarantees_hold_under_cuts_and_reconnects(ops in proptest::collection::vec(op(), 1..80)) {
        run(ProtocolVersion::V3_1_1, ops);
    }
}
