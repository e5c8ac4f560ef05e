#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Interoperability: byte streams captured from real clients (mosquitto 2.0.11
//! and paho-mqtt 2.2.0, see `tests/fixtures/README.md`) decode to the packets
//! those clients meant, and re-encode to the same bytes.
//!
//! Each fixture is everything one client sent on one connection, CONNECT to
//! DISCONNECT. It is decoded by a server-side [`Decoder::new`], which learns
//! the protocol version from the CONNECT.

use bytes::{Bytes, BytesMut};
use mqtt_codec::{
    Connect, Decoder, Disconnect, Encoder, Packet, PacketId, PayloadFormat, ProtocolVersion,
    PubRel, Publish, QoS, ReasonCode, RetainHandling, Subscribe, SubscribeFilter, SubscriptionId,
    SubscriptionOptions, Unsubscribe, UserProperty, Utf8Bytes, Will,
};
use mqtt_codec::{PublishTopic, TopicName};

/// One decoded capture: the version learnt from CONNECT, and each packet
/// with the exact bytes it was decoded from.
struct Capture {
    version: ProtocolVersion,
    packets: Vec<(Packet, Vec<u8>)>,
}

impl Capture {
    fn packets(&self) -> Vec<Packet> {
        self.packets.iter().map(|(p, _)| p.clone()).collect()
    }
}

fn decode(wire: &[u8]) -> Capture {
    let mut dec = Decoder::new();
    let mut buf = BytesMut::from(wire);
    let mut packets = Vec::new();
    loop {
        let before = buf.len();
        match dec.decode(&mut buf).unwrap() {
            Some(p) => {
                let start = wire.len() - before;
                packets.push((p, wire[start..wire.len() - buf.len()].to_vec()));
            }
            None => break,
        }
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());

    // The same stream fed one byte at a time gives the same packets.
    let mut dec2 = Decoder::new();
    let mut buf2 = BytesMut::new();
    let mut one_by_one = Vec::new();
    for &b in wire {
        buf2.extend_from_slice(&[b]);
        if let Some(p) = dec2.decode(&mut buf2).unwrap() {
            one_by_one.push(p);
        }
    }
    assert_eq!(
        one_by_one,
        packets.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>()
    );

    Capture {
        version: dec.version().expect("a CONNECT sets the version"),
        packets,
    }
}

/// Re-encodes every packet. Those at `reordered` were written by the peer
/// with their properties in an order other than ours (the specification
/// lets properties come in any order), so for them only the size and
/// `decode(encode(p)) == p` are checked; all others must come back
/// byte for byte.
fn assert_reencodes(c: &Capture, reordered: &[usize]) {
    let enc = Encoder::new(c.version);
    for (i, (p, raw)) in c.packets.iter().enumerate() {
        let mut out = BytesMut::new();
        let n = enc.encode(p, &mut out).unwrap();
        assert_eq!(n, raw.len(), "size of packet {i} ({:?})", p.packet_type());
        if reordered.contains(&i) {
            let mut dec = Decoder::with_version(c.version);
            assert_eq!(
                dec.decode(&mut out).unwrap().as_ref(),
                Some(p),
                "round trip of packet {i}"
            );
        } else {
            assert_eq!(
                &out[..],
                &raw[..],
                "bytes of packet {i} ({:?})",
                p.packet_type()
            );
        }
    }
}

fn s(v: &'static str) -> Utf8Bytes {
    Utf8Bytes::from_static(v)
}

fn id(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

fn user(k: &'static str, v: &'static str) -> UserProperty {
    UserProperty::new(s(k), s(v))
}

fn publish(
    topic: &'static str,
    payload: &'static [u8],
    qos: QoS,
    packet_id: u16,
    retain: bool,
) -> Publish {
    let mut p = Publish::new(
        PublishTopic::try_from(topic).unwrap(),
        Bytes::from_static(payload),
    );
    p.qos = qos;
    p.packet_id = PacketId::new(packet_id);
    p.retain = retain;
    p
}

fn filter(f: &'static str, options: SubscriptionOptions) -> SubscribeFilter {
    SubscribeFilter {
        filter: s(f),
        options,
    }
}

/// `mosquitto_pub` CONNECT with will and credentials, as sent at 3.1, 3.1.1
/// and (with `props`) 5.0.
fn mosquitto_pub_connect(v: ProtocolVersion) -> Connect {
    let mut c = Connect::new(v, s("fixture-client"));
    c.keep_alive = 60;
    c.clean_start = true;
    let mut will = Will::new(TopicName::from_static("w/t").unwrap(), &b"bye"[..]);
    will.qos = QoS::AtLeastOnce;
    if v.is_v5() {
        c.properties.session_expiry_interval = Some(60);
        c.properties.receive_maximum = std::num::NonZeroU16::new(20);
        will.properties.content_type = Some(s("text"));
    }
    c.will = Some(will);
    c.username = Some(s("user"));
    c.password = Some(Bytes::from_static(b"pass"));
    c
}

#[test]
fn mosquitto_pub_v5() {
    let c = decode(include_bytes!("fixtures/mosquitto_pub_v5.bin"));
    assert_eq!(c.version, ProtocolVersion::V5);
    let mut p = publish("a/b", b"hello", QoS::AtLeastOnce, 1, true);
    p.properties.to_mut().user_properties = vec![user("k", "v")].into();
    p.properties.to_mut().message_expiry_interval = Some(30);
    assert_eq!(
        c.packets(),
        [
            mosquitto_pub_connect(ProtocolVersion::V5).into(),
            p.into(),
            Disconnect::new(ReasonCode::Success).into(),
        ]
    );
    // mosquitto writes the PUBLISH properties in command-line order (user
    // property, then message expiry); we write message expiry first.
    assert_reencodes(&c, &[1]);
}

#[test]
fn mosquitto_pub_v311() {
    let c = decode(include_bytes!("fixtures/mosquitto_pub_v311.bin"));
    assert_eq!(c.version, ProtocolVersion::V3_1_1);
    assert_eq!(
        c.packets(),
        [
            mosquitto_pub_connect(ProtocolVersion::V3_1_1).into(),
            publish("a/b", b"hello", QoS::AtLeastOnce, 1, true).into(),
            Disconnect::default().into(),
        ]
    );
    assert_reencodes(&c, &[]);
}

#[test]
fn mosquitto_pub_v31() {
    let c = decode(include_bytes!("fixtures/mosquitto_pub_v31.bin"));
    // Protocol name "MQIsdp", level 3.
    assert_eq!(c.version, ProtocolVersion::V3_1);
    assert_eq!(&c.packets[0].1[4..10], b"MQIsdp");
    assert_eq!(
        c.packets(),
        [
            mosquitto_pub_connect(ProtocolVersion::V3_1).into(),
            publish("a/b", b"hello", QoS::AtLeastOnce, 1, true).into(),
            Disconnect::default().into(),
        ]
    );
    assert_reencodes(&c, &[]);
}

#[test]
fn mosquitto_pub_qos2_v5() {
    let c = decode(include_bytes!("fixtures/mosquitto_pub_qos2_v5.bin"));
    assert_eq!(c.version, ProtocolVersion::V5);
    let mut connect = Connect::new(ProtocolVersion::V5, s("fixture-qos2"));
    connect.properties.receive_maximum = std::num::NonZeroU16::new(20);
    let mut p = publish("q2/topic", b"exactly once", QoS::ExactlyOnce, 1, false);
    p.properties.to_mut().content_type = Some(s("text/plain"));
    p.properties.to_mut().payload_format_indicator = Some(PayloadFormat::Utf8);
    p.properties.to_mut().correlation_data = Some(Bytes::from_static(b"abc"));
    p.properties.to_mut().response_topic = Some(s("reply/here"));
    assert_eq!(
        c.packets(),
        [
            connect.into(),
            p.into(),
            PubRel::new(id(1)).into(),
            Disconnect::new(ReasonCode::Success).into(),
        ]
    );
    // Properties in command-line order: content type (0x03) first.
    assert_reencodes(&c, &[1]);
}

#[test]
fn mosquitto_pub_qos2_v311() {
    let c = decode(include_bytes!("fixtures/mosquitto_pub_qos2_v311.bin"));
    assert_eq!(c.version, ProtocolVersion::V3_1_1);
    assert_eq!(
        c.packets(),
        [
            Connect::new(ProtocolVersion::V3_1_1, s("fixture-qos2")).into(),
            publish("q2/topic", b"exactly once", QoS::ExactlyOnce, 1, false).into(),
            PubRel::new(id(1)).into(),
            Disconnect::default().into(),
        ]
    );
    assert_reencodes(&c, &[]);
}

#[test]
fn mosquitto_sub_v5() {
    let c = decode(include_bytes!("fixtures/mosquitto_sub_v5.bin"));
    assert_eq!(c.version, ProtocolVersion::V5);
    let mut connect = Connect::new(ProtocolVersion::V5, s("fixture-sub"));
    connect.keep_alive = 30;
    connect.properties.session_expiry_interval = Some(300);
    // mosquitto_sub -C 1 announces a Receive Maximum of 1.
    connect.properties.receive_maximum = std::num::NonZeroU16::new(1);
    let mut sub = Subscribe::new(id(1), s("x/+"), SubscriptionOptions::new(QoS::AtLeastOnce));
    sub.filters
        .push(filter("y/#", SubscriptionOptions::new(QoS::AtLeastOnce)));
    sub.properties.to_mut().subscription_identifier = SubscriptionId::new(7);
    sub.properties.to_mut().user_properties = vec![user("sk", "sv")].into();
    let mut unsub = Unsubscribe::new(id(2), vec![s("old/+")]);
    unsub.properties.to_mut().user_properties = vec![user("uk", "uv")].into();
    assert_eq!(
        c.packets(),
        [
            connect.into(),
            sub.into(),
            unsub.into(),
            Disconnect::new(ReasonCode::Success).into()
        ]
    );
    assert_reencodes(&c, &[]);
}

#[test]
fn mosquitto_sub_v311() {
    let c = decode(include_bytes!("fixtures/mosquitto_sub_v311.bin"));
    assert_eq!(c.version, ProtocolVersion::V3_1_1);
    // `-c`: Clean Session 0.
    let mut connect = Connect::new(ProtocolVersion::V3_1_1, s("fixture-sub"));
    connect.keep_alive = 30;
    connect.clean_start = false;
    let mut sub = Subscribe::new(id(1), s("x/+"), SubscriptionOptions::new(QoS::ExactlyOnce));
    sub.filters
        .push(filter("y/#", SubscriptionOptions::new(QoS::ExactlyOnce)));
    assert_eq!(
        c.packets(),
        [
            connect.into(),
            sub.into(),
            Unsubscribe::new(id(2), vec![s("old/+")]).into(),
            Disconnect::default().into(),
        ]
    );
    assert_reencodes(&c, &[]);
}

#[test]
fn paho_v5() {
    let c = decode(include_bytes!("fixtures/paho_v5.bin"));
    assert_eq!(c.version, ProtocolVersion::V5);

    let mut connect = Connect::new(ProtocolVersion::V5, s("paho-fixture"));
    connect.keep_alive = 45;
    connect.properties.session_expiry_interval = Some(120);
    connect.properties.receive_maximum = std::num::NonZeroU16::new(20);
    connect.properties.topic_alias_maximum = Some(5);
    connect.properties.user_properties = vec![user("app", "fixture")].into();
    let mut will = Will::new(TopicName::from_static("paho/status").unwrap(), &b"gone"[..]);
    will.qos = QoS::ExactlyOnce;
    will.properties.will_delay_interval = Some(10);
    will.properties.payload_format_indicator = Some(PayloadFormat::Utf8);
    connect.will = Some(will);

    let with_props = |mut p: Publish| {
        let props = p.properties.to_mut();
        props.payload_format_indicator = Some(PayloadFormat::Utf8);
        props.message_expiry_interval = Some(300);
        props.content_type = Some(s("application/json"));
        props.response_topic = Some(s("paho/reply"));
        props.correlation_data = Some(Bytes::from_static(b"\x01\x02\x03"));
        props.user_properties = vec![user("k1", "v1"), user("k2", "v2")].into();
        p
    };
    let pub1 = with_props(publish(
        "paho/data",
        br#"{"t":21.5}"#,
        QoS::AtLeastOnce,
        1,
        false,
    ));
    let pub2 = with_props(publish(
        "paho/data2",
        b"exactly-once",
        QoS::ExactlyOnce,
        2,
        true,
    ));

    let mut sub = Subscribe::new(
        id(3),
        s("paho/+/in"),
        SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: RetainHandling::SendIfNew,
        },
    );
    sub.filters.push(filter(
        "paho/all/#",
        SubscriptionOptions {
            retain_handling: RetainHandling::DoNotSend,
            ..SubscriptionOptions::new(QoS::ExactlyOnce)
        },
    ));
    sub.properties.to_mut().subscription_identifier = SubscriptionId::new(42);

    assert_eq!(
        c.packets(),
        [
            connect.into(),
            pub1.into(),
            pub2.into(),
            PubRel::new(id(2)).into(),
            sub.into(),
            Unsubscribe::new(id(4), vec![s("paho/all/#")]).into(),
            Disconnect::new(ReasonCode::Success).into(),
        ]
    );
    // paho writes properties in identifier order: the will's payload format
    // (0x01) before its delay (0x18), and each PUBLISH's content type (0x03)
    // before its response topic (0x08) and correlation data (0x09).
    assert_reencodes(&c, &[0, 1, 2]);
}
