//! Hand-written MQTT 5.0 (protocol level 5) vectors.
//!
//! Every byte below is written from the OASIS MQTT 5.0 specification,
//! chapters 2 and 3, never produced by the encoder. Each valid vector is
//! decoded with a PINGREQ after it, fed one byte at a time, and the expected
//! packet is encoded back to the vector (the canonical form: properties in
//! the encoder's order, reason code and property length omitted when
//! allowed).

// Helpers outside `#[test]` functions are test code too (clippy.toml only
// exempts the test functions themselves).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::num::{NonZeroU16, NonZeroU32};

use bytes::{Bytes, BytesMut};
use common::{assert_vector, decode_framed, encode, pid, s, sub_id, user};
use mqtt_codec::{
    Auth, ConnAck, Connect, DecodeError, Decoder, Disconnect, Encoder, Packet, PayloadFormat,
    ProtocolVersion, PubAck, PubComp, PubRec, PubRel, Publish, QoS, ReasonCode, RetainHandling,
    SubAck, Subscribe, SubscribeFilter, SubscriptionOptions, UnsubAck, Unsubscribe, Will,
};
use mqtt_codec::{PublishTopic, TopicName};

const V5: ProtocolVersion = ProtocolVersion::V5;

fn nz16(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).unwrap()
}

fn nz32(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

// ---- CONNECT (5.0 section 3.1) ---------------------------------------------

#[rustfmt::skip]
const CONNECT_FULL: &[u8] = &[
    0x10, 0x81, 0x01,                   // CONNECT; remaining length 129 (0x01 + 1 * 128)
    0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
    0x05,                               // protocol version 5
    0xF6,                               // flags: user name, password, will retain,
                                        //   will QoS 2, will, clean start; bit 0 reserved
    0x00, 0x1E,                         // keep alive 30 s
    0x30,                               // property length 48
    0x11, 0x00, 0x00, 0x0E, 0x10,       //   session expiry interval 3600
    0x21, 0x00, 0x14,                   //   receive maximum 20
    0x27, 0x00, 0x00, 0x10, 0x00,       //   maximum packet size 4096
    0x22, 0x00, 0x0A,                   //   topic alias maximum 10
    0x19, 0x01,                         //   request response information 1
    0x17, 0x00,                         //   request problem information 0
    0x15, 0x00, 0x05, b'S', b'C', b'R', b'A', b'M', // authentication method "SCRAM"
    0x16, 0x00, 0x03, 0x01, 0x02, 0x03, //   authentication data 01 02 03
    0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property k = v
    0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'w', // user property k = w (same name again)
    0x00, 0x03, b'c', b'i', b'd',       // client identifier "cid"
    0x2B,                               // will property length 43
    0x18, 0x00, 0x00, 0x00, 0x05,       //   will delay interval 5
    0x01, 0x01,                         //   payload format indicator 1 (UTF-8)
    0x02, 0x00, 0x00, 0x00, 0x3C,       //   message expiry interval 60
    0x03, 0x00, 0x0A, b't', b'e', b'x', b't', b'/', b'p', b'l', b'a', b'i', b'n', // content type "text/plain"
    0x08, 0x00, 0x03, b'r', b'/', b't', //   response topic "r/t"
    0x09, 0x00, 0x02, 0xCA, 0xFE,       //   correlation data CA FE
    0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'b', // user property a = b
    0x00, 0x03, b'w', b'/', b't',       // will topic "w/t"
    0x00, 0x04, b'g', b'o', b'n', b'e', // will payload "gone"
    0x00, 0x04, b'u', b's', b'e', b'r', // user name "user"
    0x00, 0x02, b'p', b'w',             // password "pw"
];

fn connect_full() -> Connect {
    let mut will = Will::new(TopicName::from_static("w/t").unwrap(), &b"gone"[..]);
    will.qos = QoS::ExactlyOnce;
    will.retain = true;
    will.properties.will_delay_interval = Some(5);
    will.properties.payload_format_indicator = Some(PayloadFormat::Utf8);
    will.properties.message_expiry_interval = Some(60);
    will.properties.content_type = Some(s("text/plain"));
    will.properties.response_topic = Some(s("r/t"));
    will.properties.correlation_data = Some(Bytes::from_static(&[0xCA, 0xFE]));
    will.properties.user_properties = vec![user("a", "b")].into();

    let mut c = Connect::new(V5, s("cid"));
    c.keep_alive = 30;
    c.will = Some(will);
    c.username = Some(s("user"));
    c.password = Some(Bytes::from_static(b"pw"));
    let p = &mut c.properties;
    p.session_expiry_interval = Some(3600);
    p.receive_maximum = Some(nz16(20));
    p.maximum_packet_size = Some(nz32(4096));
    p.topic_alias_maximum = Some(10);
    p.request_response_information = Some(true);
    p.request_problem_information = Some(false);
    p.authentication_method = Some(s("SCRAM"));
    p.authentication_data = Some(Bytes::from_static(&[1, 2, 3]));
    p.user_properties = vec![user("k", "v"), user("k", "w")].into();
    c
}

#[test]
fn connect_with_will_credentials_and_every_property() {
    let packet = decode_framed(V5, CONNECT_FULL);
    let Packet::Connect(c) = &packet else {
        panic!("not a CONNECT: {packet:?}")
    };
    assert_eq!(c.protocol, V5);
    assert!(c.clean_start);
    assert_eq!(c.keep_alive, 30);
    assert_eq!(c.client_id, "cid");
    assert_eq!(c.properties.session_expiry_interval, Some(3600));
    assert_eq!(c.properties.receive_maximum, Some(nz16(20)));
    assert_eq!(c.properties.maximum_packet_size, Some(nz32(4096)));
    assert_eq!(c.properties.topic_alias_maximum, Some(10));
    assert_eq!(c.properties.request_response_information, Some(true));
    assert_eq!(c.properties.request_problem_information, Some(false));
    assert_eq!(c.properties.authentication_method.as_deref(), Some("SCRAM"));
    assert_eq!(
        c.properties.authentication_data.as_deref(),
        Some(&[1, 2, 3][..])
    );
    // User properties keep their order, and a name may repeat.
    assert_eq!(
        c.properties.user_properties,
        vec![user("k", "v"), user("k", "w")]
    );
    let will = c.will.as_ref().expect("will flag is set");
    assert_eq!(will.qos, QoS::ExactlyOnce);
    assert!(will.retain);
    assert_eq!(will.topic, "w/t");
    assert_eq!(&will.payload[..], b"gone");
    assert_eq!(will.properties.will_delay_interval, Some(5));
    assert_eq!(
        will.properties.payload_format_indicator,
        Some(PayloadFormat::Utf8)
    );
    assert_eq!(will.properties.message_expiry_interval, Some(60));
    assert_eq!(will.properties.content_type.as_deref(), Some("text/plain"));
    assert_eq!(will.properties.response_topic.as_deref(), Some("r/t"));
    assert_eq!(
        will.properties.correlation_data.as_deref(),
        Some(&[0xCA, 0xFE][..])
    );
    assert_eq!(will.properties.user_properties, vec![user("a", "b")]);
    assert_eq!(c.username.as_deref(), Some("user"));
    assert_eq!(c.password.as_deref(), Some(&b"pw"[..]));

    assert_vector(V5, CONNECT_FULL, &connect_full().into());
}

#[rustfmt::skip]
const CONNECT_MINIMAL: &[u8] = &[
    0x10, 0x0D,                         // CONNECT; remaining length 13
    0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
    0x05,                               // protocol version 5
    0x02,                               // flags: clean start
    0x00, 0x00,                         // keep alive 0
    0x00,                               // property length 0 [MQTT-2.2.2-1]
    0x00, 0x00,                         // client identifier ""
];

#[test]
fn connect_minimal() {
    let mut expected = Connect::new(V5, s(""));
    expected.keep_alive = 0;
    assert_vector(V5, CONNECT_MINIMAL, &expected.into());
}

#[rustfmt::skip]
const CONNECT_PASSWORD_ONLY: &[u8] = &[
    0x10, 0x11,                         // CONNECT; remaining length 17
    0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
    0x05,                               // protocol version 5
    0x42,                               // flags: password, clean start; no user name
    0x00, 0x00,                         // keep alive 0
    0x00,                               // property length 0
    0x00, 0x00,                         // client identifier ""
    0x00, 0x02, b'p', b'w',             // password "pw"
];

#[test]
fn connect_with_password_and_no_user_name_is_valid_in_5_0() {
    // 5.0 dropped 3.1.1's [MQTT-3.1.2-22]: a password may come without a
    // user name (section 3.1.2.9).
    let mut expected = Connect::new(V5, s(""));
    expected.keep_alive = 0;
    expected.password = Some(Bytes::from_static(b"pw"));
    assert_vector(V5, CONNECT_PASSWORD_ONLY, &expected.into());
}

// ---- CONNACK (5.0 section 3.2) ---------------------------------------------

#[rustfmt::skip]
const CONNACK_SESSION_PRESENT: &[u8] = &[
    0x20, 0x03, // CONNACK; remaining length 3
    0x01,       // acknowledge flags: session present
    0x00,       // reason code 0x00 success
    0x00,       // property length 0
];

#[test]
fn connack_session_present() {
    let expected = ConnAck {
        session_present: true,
        ..ConnAck::default()
    };
    assert_vector(V5, CONNACK_SESSION_PRESENT, &expected.into());
}

#[rustfmt::skip]
const CONNACK_FULL: &[u8] = &[
    0x20, 0x4F,                         // CONNACK; remaining length 79
    0x00,                               // no session present
    0x00,                               // reason code 0x00 success
    0x4C,                               // property length 76
    0x11, 0x00, 0x00, 0x00, 0x78,       //   session expiry interval 120
    0x21, 0x00, 0x0A,                   //   receive maximum 10
    0x24, 0x01,                         //   maximum QoS 1
    0x25, 0x00,                         //   retain available 0
    0x27, 0x00, 0x01, 0x00, 0x00,       //   maximum packet size 65536
    0x12, 0x00, 0x06, b'a', b'u', b't', b'o', b'-', b'1', // assigned client identifier "auto-1"
    0x22, 0x00, 0x05,                   //   topic alias maximum 5
    0x1F, 0x00, 0x02, b'o', b'k',       //   reason string "ok"
    0x28, 0x00,                         //   wildcard subscription available 0
    0x29, 0x01,                         //   subscription identifiers available 1
    0x2A, 0x00,                         //   shared subscription available 0
    0x13, 0x00, 0x3C,                   //   server keep alive 60
    0x1A, 0x00, 0x04, b'r', b'e', b's', b'p', // response information "resp"
    0x1C, 0x00, 0x04, b's', b'r', b'v', b'2', // server reference "srv2"
    0x15, 0x00, 0x05, b'S', b'C', b'R', b'A', b'M', // authentication method "SCRAM"
    0x16, 0x00, 0x01, 0x09,             //   authentication data 09
    0x26, 0x00, 0x01, b'x', 0x00, 0x01, b'y', // user property x = y
];

#[test]
fn connack_with_every_property() {
    let mut expected = ConnAck::new(ReasonCode::Success);
    let p = &mut expected.properties;
    p.session_expiry_interval = Some(120);
    p.receive_maximum = Some(nz16(10));
    p.maximum_qos = Some(QoS::AtLeastOnce);
    p.retain_available = Some(false);
    p.maximum_packet_size = Some(nz32(65536));
    p.assigned_client_identifier = Some(s("auto-1"));
    p.topic_alias_maximum = Some(5);
    p.reason_string = Some(s("ok"));
    p.wildcard_subscription_available = Some(false);
    p.subscription_identifiers_available = Some(true);
    p.shared_subscription_available = Some(false);
    p.server_keep_alive = Some(60);
    p.response_information = Some(s("resp"));
    p.server_reference = Some(s("srv2"));
    p.authentication_method = Some(s("SCRAM"));
    p.authentication_data = Some(Bytes::from_static(&[0x09]));
    p.user_properties = vec![user("x", "y")].into();
    assert_vector(V5, CONNACK_FULL, &expected.into());
}

#[rustfmt::skip]
const CONNACK_USE_ANOTHER_SERVER: &[u8] = &[
    0x20, 0x08,                   // CONNACK; remaining length 8
    0x00,                         // no session present [MQTT-3.2.2-6]
    0x9C,                         // reason code 0x9C use another server
    0x05,                         // property length 5
    0x1C, 0x00, 0x02, b's', b'2', //   server reference "s2"
];

#[rustfmt::skip]
const CONNACK_NOT_AUTHORIZED: &[u8] = &[
    0x20, 0x03, // CONNACK; remaining length 3
    0x00,       // no session present
    0x87,       // reason code 0x87 not authorized
    0x00,       // property length 0
];

#[test]
fn connack_refusals() {
    let mut expected = ConnAck::new(ReasonCode::UseAnotherServer);
    expected.properties.server_reference = Some(s("s2"));
    assert_vector(V5, CONNACK_USE_ANOTHER_SERVER, &expected.into());
    assert_vector(
        V5,
        CONNACK_NOT_AUTHORIZED,
        &ConnAck::new(ReasonCode::NotAuthorized).into(),
    );
}

// ---- PUBLISH (5.0 section 3.3) ---------------------------------------------

#[rustfmt::skip]
const PUBLISH_QOS0: &[u8] = &[
    0x30, 0x08,                   // PUBLISH, QoS 0; remaining length 8
    0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
    0x00,                         // property length 0
    b'h', b'i',                   // payload "hi"
];

#[rustfmt::skip]
const PUBLISH_QOS1: &[u8] = &[
    0x32, 0x0B,                   // PUBLISH, QoS 1; remaining length 11
    0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
    0x00, 0x0A,                   // packet id 10
    0x00,                         // property length 0
    b'h', b'i', b'!',             // payload "hi!"
];

#[rustfmt::skip]
const PUBLISH_QOS2_DUP_RETAIN: &[u8] = &[
    0x3D, 0x0A,                   // PUBLISH: DUP, QoS 2, RETAIN; remaining length 10
    0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
    0x00, 0x02,                   // packet id 2
    0x00,                         // property length 0
    0xAB, 0xCD,                   // payload AB CD
];

#[test]
fn publish_at_each_qos() {
    assert_vector(
        V5,
        PUBLISH_QOS0,
        &Publish::new(PublishTopic::from_static("a/b"), &b"hi"[..]).into(),
    );

    let mut qos1 = Publish::new(PublishTopic::from_static("a/b"), &b"hi!"[..]);
    qos1.qos = QoS::AtLeastOnce;
    qos1.packet_id = Some(pid(10));
    assert_vector(V5, PUBLISH_QOS1, &qos1.into());

    let mut qos2 = Publish::new(PublishTopic::from_static("a/b"), &[0xAB, 0xCD][..]);
    qos2.dup = true;
    qos2.qos = QoS::ExactlyOnce;
    qos2.retain = true;
    qos2.packet_id = Some(pid(2));
    assert_vector(V5, PUBLISH_QOS2_DUP_RETAIN, &qos2.into());
}

#[rustfmt::skip]
const PUBLISH_SET_ALIAS: &[u8] = &[
    0x30, 0x0A,                   // PUBLISH, QoS 0; remaining length 10
    0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
    0x03,                         // property length 3
    0x23, 0x00, 0x07,             //   topic alias 7
    b'x',                         // payload "x"
];

#[rustfmt::skip]
const PUBLISH_USE_ALIAS: &[u8] = &[
    0x30, 0x07,                   // PUBLISH, QoS 0; remaining length 7
    0x00, 0x00,                   // topic "": the topic alias stands for it
    0x03,                         // property length 3
    0x23, 0x00, 0x07,             //   topic alias 7
    b'x',                         // payload "x"
];

#[test]
fn publish_with_topic_alias_and_empty_topic() {
    let mut set = Publish::new(PublishTopic::from_static("a/b"), &b"x"[..]);
    set.properties.to_mut().topic_alias = Some(nz16(7));
    assert_vector(V5, PUBLISH_SET_ALIAS, &set.into());

    let mut used = Publish::new(PublishTopic::from_static(""), &b"x"[..]);
    used.properties.to_mut().topic_alias = Some(nz16(7));
    assert_vector(V5, PUBLISH_USE_ALIAS, &used.into());
}

#[rustfmt::skip]
const PUBLISH_PROPERTIES: &[u8] = &[
    0x32, 0x43,                   // PUBLISH, QoS 1; remaining length 67
    0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
    0x00, 0x01,                   // packet id 1
    0x39,                         // property length 57
    0x01, 0x01,                   //   payload format indicator 1 (UTF-8)
    0x02, 0x00, 0x00, 0x00, 0x1E, //   message expiry interval 30
    0x08, 0x00, 0x04, b'r', b'e', b'/', b'1', // response topic "re/1"
    0x09, 0x00, 0x02, 0x01, 0x02, //   correlation data 01 02
    0x03, 0x00, 0x04, b'j', b's', b'o', b'n', // content type "json"
    0x26, 0x00, 0x01, b'z', 0x00, 0x01, b'1', // user property z = 1
    0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'2', // user property a = 2
    0x26, 0x00, 0x01, b'z', 0x00, 0x01, b'3', // user property z = 3
    0x0B, 0x01,                   //   subscription identifier 1
    0x0B, 0x80, 0x01,             //   subscription identifier 128 (two bytes)
    0x0B, 0xFF, 0xFF, 0xFF, 0x7F, //   subscription identifier 268,435,455 (the maximum)
    b'{', b'}',                   // payload "{}"
];

fn publish_properties() -> Publish {
    let mut p = Publish::new(PublishTopic::from_static("a/b"), &b"{}"[..]);
    p.qos = QoS::AtLeastOnce;
    p.packet_id = Some(pid(1));
    let props = p.properties.to_mut();
    props.payload_format_indicator = Some(PayloadFormat::Utf8);
    props.message_expiry_interval = Some(30);
    props.response_topic = Some(s("re/1"));
    props.correlation_data = Some(Bytes::from_static(&[1, 2]));
    props.content_type = Some(s("json"));
    props.user_properties = vec![user("z", "1"), user("a", "2"), user("z", "3")].into();
    props.subscription_identifiers = vec![sub_id(1), sub_id(128), sub_id(268_435_455)].into();
    p
}

#[test]
fn publish_with_every_property() {
    let packet = decode_framed(V5, PUBLISH_PROPERTIES);
    let Packet::Publish(p) = &packet else {
        panic!("not a PUBLISH: {packet:?}")
    };
    assert_eq!(
        p.properties.payload_format_indicator,
        Some(PayloadFormat::Utf8)
    );
    assert_eq!(p.properties.message_expiry_interval, Some(30));
    assert_eq!(p.properties.topic_alias, None);
    assert_eq!(p.properties.response_topic.as_deref(), Some("re/1"));
    assert_eq!(p.properties.correlation_data.as_deref(), Some(&[1, 2][..]));
    assert_eq!(p.properties.content_type.as_deref(), Some("json"));
    // [MQTT-3.3.2-18] the order of user properties is kept.
    assert_eq!(
        p.properties.user_properties,
        vec![user("z", "1"), user("a", "2"), user("z", "3")]
    );
    let ids: Vec<u32> = p
        .properties
        .subscription_identifiers
        .iter()
        .map(|i| i.get())
        .collect();
    assert_eq!(ids, [1, 128, 268_435_455]);
    assert_eq!(&p.payload[..], b"{}");

    assert_vector(V5, PUBLISH_PROPERTIES, &publish_properties().into());
}

#[rustfmt::skip]
const PUBLISH_PROPERTIES_SHUFFLED: &[u8] = &[
    0x32, 0x43,                   // PUBLISH, QoS 1; remaining length 67
    0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
    0x00, 0x01,                   // packet id 1
    0x39,                         // property length 57, same properties in another order:
    0x0B, 0x80, 0x01,             //   subscription identifier 128, before 1 this time
    0x26, 0x00, 0x01, b'z', 0x00, 0x01, b'1', // user property z = 1
    0x03, 0x00, 0x04, b'j', b's', b'o', b'n', // content type "json"
    0x0B, 0x01,                   //   subscription identifier 1
    0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'2', // user property a = 2
    0x09, 0x00, 0x02, 0x01, 0x02, //   correlation data 01 02
    0x0B, 0xFF, 0xFF, 0xFF, 0x7F, //   subscription identifier 268,435,455
    0x08, 0x00, 0x04, b'r', b'e', b'/', b'1', // response topic "re/1"
    0x26, 0x00, 0x01, b'z', 0x00, 0x01, b'3', // user property z = 3
    0x02, 0x00, 0x00, 0x00, 0x1E, //   message expiry interval 30
    0x01, 0x01,                   //   payload format indicator 1
    b'{', b'}',                   // payload "{}"
];

#[test]
fn publish_properties_in_any_order_keep_the_order_of_each_repeated_kind() {
    // Properties may come in any order; each repeated kind keeps its own.
    let mut expected = publish_properties();
    expected.properties.to_mut().subscription_identifiers =
        vec![sub_id(128), sub_id(1), sub_id(268_435_455)].into();
    assert_eq!(
        decode_framed(V5, PUBLISH_PROPERTIES_SHUFFLED),
        expected.into()
    );
}

#[test]
fn publish_head_plus_payload_equals_encode() {
    let p = publish_properties();
    let mut head = BytesMut::new();
    let total = Encoder::new(V5).encode_publish_head(&p, &mut head).unwrap();
    assert_eq!(total, PUBLISH_PROPERTIES.len());
    assert_eq!(head.len() + p.payload.len(), total);
    head.extend_from_slice(&p.payload);
    assert_eq!(&head[..], PUBLISH_PROPERTIES);
    assert_eq!(head, encode(V5, &p.into()));
}

// ---- PUBACK, PUBREC, PUBREL, PUBCOMP (5.0 sections 3.4 to 3.7) -----------------

#[rustfmt::skip]
const PUBACK_SHORT: &[u8] = &[
    0x40, 0x02, // PUBACK; remaining length 2: reason 0x00 and no properties implied
    0x00, 0x01, // packet id 1
];

#[rustfmt::skip]
const PUBACK_REASON: &[u8] = &[
    0x40, 0x03, // PUBACK; remaining length 3: no property length
    0x00, 0x01, // packet id 1
    0x10,       // reason code 0x10 no matching subscribers
];

#[rustfmt::skip]
const PUBACK_FULL: &[u8] = &[
    0x40, 0x12,                         // PUBACK; remaining length 18
    0x00, 0x01,                         // packet id 1
    0x97,                               // reason code 0x97 quota exceeded
    0x0E,                               // property length 14
    0x1F, 0x00, 0x04, b'f', b'u', b'l', b'l', // reason string "full"
    0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property k = v
];

#[test]
fn puback_short_forms_and_full_form() {
    assert_vector(V5, PUBACK_SHORT, &PubAck::new(pid(1)).into());

    let reason = PubAck {
        reason: ReasonCode::NoMatchingSubscribers,
        ..PubAck::new(pid(1))
    };
    assert_vector(V5, PUBACK_REASON, &reason.into());

    let mut full = PubAck {
        reason: ReasonCode::QuotaExceeded,
        ..PubAck::new(pid(1))
    };
    full.properties.to_mut().reason_string = Some(s("full"));
    full.properties.to_mut().user_properties = vec![user("k", "v")].into();
    assert_vector(V5, PUBACK_FULL, &full.into());
}

#[test]
fn puback_longer_forms_of_success_are_accepted_and_encoded_short() {
    #[rustfmt::skip]
    let explicit_success: &[u8] = &[
        0x40, 0x03, // PUBACK; remaining length 3
        0x00, 0x01, // packet id 1
        0x00,       // reason code 0x00, which could have been omitted
    ];
    #[rustfmt::skip]
    let empty_properties: &[u8] = &[
        0x40, 0x04, // PUBACK; remaining length 4
        0x00, 0x01, // packet id 1
        0x00,       // reason code 0x00
        0x00,       // property length 0
    ];
    for vector in [explicit_success, empty_properties] {
        let packet = decode_framed(V5, vector);
        assert_eq!(packet, PubAck::new(pid(1)).into());
        assert_eq!(&encode(V5, &packet)[..], PUBACK_SHORT);
    }
}

#[rustfmt::skip]
const PUBREC_SHORT: &[u8] = &[
    0x50, 0x02, // PUBREC; remaining length 2
    0x00, 0x02, // packet id 2
];

#[rustfmt::skip]
const PUBREC_REASON: &[u8] = &[
    0x50, 0x03, // PUBREC; remaining length 3
    0x00, 0x02, // packet id 2
    0x10,       // reason code 0x10 no matching subscribers
];

#[rustfmt::skip]
const PUBREC_FULL: &[u8] = &[
    0x50, 0x0B,                         // PUBREC; remaining length 11
    0x00, 0x02,                         // packet id 2
    0x80,                               // reason code 0x80 unspecified error
    0x07,                               // property length 7
    0x1F, 0x00, 0x04, b'o', b'o', b'p', b's', // reason string "oops"
];

#[test]
fn pubrec_short_forms_and_full_form() {
    assert_vector(V5, PUBREC_SHORT, &PubRec::new(pid(2)).into());
    let reason = PubRec {
        reason: ReasonCode::NoMatchingSubscribers,
        ..PubRec::new(pid(2))
    };
    assert_vector(V5, PUBREC_REASON, &reason.into());
    let mut full = PubRec {
        reason: ReasonCode::UnspecifiedError,
        ..PubRec::new(pid(2))
    };
    full.properties.to_mut().reason_string = Some(s("oops"));
    assert_vector(V5, PUBREC_FULL, &full.into());
}

#[rustfmt::skip]
const PUBREL_SHORT: &[u8] = &[
    0x62, 0x02, // PUBREL, flags 0b0010 [MQTT-3.6.1-1]; remaining length 2
    0x00, 0x02, // packet id 2
];

#[rustfmt::skip]
const PUBREL_REASON: &[u8] = &[
    0x62, 0x03, // PUBREL; remaining length 3
    0x00, 0x02, // packet id 2
    0x92,       // reason code 0x92 packet identifier not found
];

#[rustfmt::skip]
const PUBREL_FULL: &[u8] = &[
    0x62, 0x0B,                         // PUBREL; remaining length 11
    0x00, 0x02,                         // packet id 2
    0x92,                               // reason code 0x92 packet identifier not found
    0x07,                               // property length 7
    0x1F, 0x00, 0x04, b'l', b'o', b's', b't', // reason string "lost"
];

#[test]
fn pubrel_short_forms_and_full_form() {
    assert_vector(V5, PUBREL_SHORT, &PubRel::new(pid(2)).into());
    let reason = PubRel {
        reason: ReasonCode::PacketIdentifierNotFound,
        ..PubRel::new(pid(2))
    };
    assert_vector(V5, PUBREL_REASON, &reason.into());
    let mut full = PubRel {
        reason: ReasonCode::PacketIdentifierNotFound,
        ..PubRel::new(pid(2))
    };
    full.properties.to_mut().reason_string = Some(s("lost"));
    assert_vector(V5, PUBREL_FULL, &full.into());
}

#[rustfmt::skip]
const PUBCOMP_SHORT: &[u8] = &[
    0x70, 0x02, // PUBCOMP; remaining length 2
    0x00, 0x02, // packet id 2
];

#[rustfmt::skip]
const PUBCOMP_REASON: &[u8] = &[
    0x70, 0x03, // PUBCOMP; remaining length 3
    0x00, 0x02, // packet id 2
    0x92,       // reason code 0x92 packet identifier not found
];

#[rustfmt::skip]
const PUBCOMP_SUCCESS_WITH_PROPERTIES: &[u8] = &[
    0x70, 0x0A,                   // PUBCOMP; remaining length 10
    0x00, 0x02,                   // packet id 2
    0x00,                         // reason code 0x00: must be written before properties
    0x06,                         // property length 6
    0x1F, 0x00, 0x03, b'y', b'e', b's', // reason string "yes"
];

#[test]
fn pubcomp_short_forms_and_success_with_properties() {
    assert_vector(V5, PUBCOMP_SHORT, &PubComp::new(pid(2)).into());
    let reason = PubComp {
        reason: ReasonCode::PacketIdentifierNotFound,
        ..PubComp::new(pid(2))
    };
    assert_vector(V5, PUBCOMP_REASON, &reason.into());
    let mut full = PubComp::new(pid(2));
    full.properties.to_mut().reason_string = Some(s("yes"));
    assert_vector(V5, PUBCOMP_SUCCESS_WITH_PROPERTIES, &full.into());
}

// ---- SUBSCRIBE and SUBACK (5.0 sections 3.8 and 3.9) ---------------------------

#[rustfmt::skip]
const SUBSCRIBE: &[u8] = &[
    0x82, 0x22,                   // SUBSCRIBE, flags 0b0010 [MQTT-3.8.1-1]; remaining length 34
    0x00, 0x0A,                   // packet id 10
    0x09,                         // property length 9
    0x0B, 0x05,                   //   subscription identifier 5
    0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property k = v
    0x00, 0x03, b'a', b'/', b'b', // topic filter "a/b"
    0x00,                         //   options: QoS 0
    0x00, 0x03, b'c', b'/', b'+', // topic filter "c/+"
    0x05,                         //   options: QoS 1, no local (bit 2)
    0x00, 0x03, b'd', b'/', b'#', // topic filter "d/#"
    0x1A,                         //   options: QoS 2, retain as published (bit 3),
                                  //   retain handling 1 (bits 5-4 = 01)
    0x00, 0x01, b'e',             // topic filter "e"
    0x20,                         //   options: QoS 0, retain handling 2 (bits 5-4 = 10)
];

#[test]
fn subscribe_with_every_option() {
    let packet = decode_framed(V5, SUBSCRIBE);
    let Packet::Subscribe(sub) = &packet else {
        panic!("not a SUBSCRIBE: {packet:?}")
    };
    assert_eq!(sub.packet_id, pid(10));
    assert_eq!(sub.properties.subscription_identifier, Some(sub_id(5)));
    let opts: Vec<_> = sub
        .filters
        .iter()
        .map(|f| (&*f.filter, f.options))
        .collect();
    let o = |qos, no_local, retain_as_published, retain_handling| SubscriptionOptions {
        qos,
        no_local,
        retain_as_published,
        retain_handling,
    };
    let expected_opts = [
        (
            "a/b",
            o(
                QoS::AtMostOnce,
                false,
                false,
                RetainHandling::SendOnSubscribe,
            ),
        ),
        (
            "c/+",
            o(
                QoS::AtLeastOnce,
                true,
                false,
                RetainHandling::SendOnSubscribe,
            ),
        ),
        (
            "d/#",
            o(QoS::ExactlyOnce, false, true, RetainHandling::SendIfNew),
        ),
        (
            "e",
            o(QoS::AtMostOnce, false, false, RetainHandling::DoNotSend),
        ),
    ];
    assert_eq!(opts, expected_opts);

    let mut expected = Subscribe::new(pid(10), s("a/b"), expected_opts[0].1);
    for (filter, options) in &expected_opts[1..] {
        expected.filters.push(SubscribeFilter {
            filter: s(filter),
            options: *options,
        });
    }
    expected.properties.to_mut().subscription_identifier = Some(sub_id(5));
    expected.properties.to_mut().user_properties = vec![user("k", "v")].into();
    assert_vector(V5, SUBSCRIBE, &expected.into());
}

#[rustfmt::skip]
const SUBACK_WITH_REASON_STRING: &[u8] = &[
    0x90, 0x0E,                   // SUBACK; remaining length 14
    0x00, 0x0A,                   // packet id 10
    0x05,                         // property length 5
    0x1F, 0x00, 0x02, b'o', b'k', //   reason string "ok"
    0x00,                         // granted QoS 0
    0x01,                         // granted QoS 1
    0x02,                         // granted QoS 2
    0x87,                         // not authorized
    0x8F,                         // topic filter invalid
    0xA2,                         // wildcard subscriptions not supported
];

#[rustfmt::skip]
const SUBACK_FAILURES: &[u8] = &[
    0x90, 0x09, // SUBACK; remaining length 9
    0x00, 0x0B, // packet id 11
    0x00,       // property length 0
    0x80,       // unspecified error
    0x83,       // implementation specific error
    0x91,       // packet identifier in use
    0x97,       // quota exceeded
    0x9E,       // shared subscriptions not supported
    0xA1,       // subscription identifiers not supported
];

#[test]
fn suback_with_every_kind_of_reason_code() {
    let mut expected = SubAck::new(
        pid(10),
        vec![
            ReasonCode::GRANTED_QOS_0,
            ReasonCode::GrantedQoS1,
            ReasonCode::GrantedQoS2,
            ReasonCode::NotAuthorized,
            ReasonCode::TopicFilterInvalid,
            ReasonCode::WildcardSubscriptionsNotSupported,
        ],
    );
    expected.properties.to_mut().reason_string = Some(s("ok"));
    assert_vector(V5, SUBACK_WITH_REASON_STRING, &expected.into());

    let failures = SubAck::new(
        pid(11),
        vec![
            ReasonCode::UnspecifiedError,
            ReasonCode::ImplementationSpecificError,
            ReasonCode::PacketIdentifierInUse,
            ReasonCode::QuotaExceeded,
            ReasonCode::SharedSubscriptionsNotSupported,
            ReasonCode::SubscriptionIdentifiersNotSupported,
        ],
    );
    assert_vector(V5, SUBACK_FAILURES, &failures.into());
}

// ---- UNSUBSCRIBE and UNSUBACK (5.0 sections 3.10 and 3.11) ---------------------

#[rustfmt::skip]
const UNSUBSCRIBE: &[u8] = &[
    0xA2, 0x14,                   // UNSUBSCRIBE, flags 0b0010 [MQTT-3.10.1-1]; remaining length 20
    0x00, 0x0B,                   // packet id 11
    0x07,                         // property length 7
    0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property k = v
    0x00, 0x03, b'a', b'/', b'b', // topic filter "a/b"
    0x00, 0x03, b'c', b'/', b'+', // topic filter "c/+"
];

#[test]
fn unsubscribe_with_user_property() {
    let mut expected = Unsubscribe::new(pid(11), vec![s("a/b"), s("c/+")]);
    expected.properties.to_mut().user_properties = vec![user("k", "v")].into();
    assert_vector(V5, UNSUBSCRIBE, &expected.into());
}

#[rustfmt::skip]
const UNSUBACK: &[u8] = &[
    0xB0, 0x06, // UNSUBACK; remaining length 6
    0x00, 0x0B, // packet id 11
    0x00,       // property length 0
    0x00,       // success
    0x11,       // no subscription existed
    0x87,       // not authorized
];

#[rustfmt::skip]
const UNSUBACK_WITH_REASON_STRING: &[u8] = &[
    0xB0, 0x0B,                   // UNSUBACK; remaining length 11
    0x00, 0x0C,                   // packet id 12
    0x05,                         // property length 5
    0x1F, 0x00, 0x02, b'n', b'o', //   reason string "no"
    0x80,                         // unspecified error
    0x8F,                         // topic filter invalid
    0x91,                         // packet identifier in use
];

#[test]
fn unsuback_with_reason_codes() {
    let expected = UnsubAck::new(
        pid(11),
        vec![
            ReasonCode::Success,
            ReasonCode::NoSubscriptionExisted,
            ReasonCode::NotAuthorized,
        ],
    );
    assert_vector(V5, UNSUBACK, &expected.into());

    let mut with_string = UnsubAck::new(
        pid(12),
        vec![
            ReasonCode::UnspecifiedError,
            ReasonCode::TopicFilterInvalid,
            ReasonCode::PacketIdentifierInUse,
        ],
    );
    with_string.properties.to_mut().reason_string = Some(s("no"));
    assert_vector(V5, UNSUBACK_WITH_REASON_STRING, &with_string.into());
}

// ---- PINGREQ, PINGRESP (5.0 sections 3.12 and 3.13) ----------------------------

#[test]
fn pingreq_and_pingresp() {
    #[rustfmt::skip]
    let pingreq: &[u8] = &[0xC0, 0x00]; // PINGREQ; remaining length 0
    #[rustfmt::skip]
    let pingresp: &[u8] = &[0xD0, 0x00]; // PINGRESP; remaining length 0
    assert_vector(V5, pingreq, &Packet::PingReq);
    assert_vector(V5, pingresp, &Packet::PingResp);
}

// ---- DISCONNECT (5.0 section 3.14) -------------------------------------------

#[rustfmt::skip]
const DISCONNECT_SHORT: &[u8] = &[
    0xE0, 0x00, // DISCONNECT; remaining length 0: normal disconnection
];

#[rustfmt::skip]
const DISCONNECT_WITH_WILL: &[u8] = &[
    0xE0, 0x01, // DISCONNECT; remaining length 1: no property length
    0x04,       // reason code 0x04 disconnect with will message
];

#[rustfmt::skip]
const DISCONNECT_FULL: &[u8] = &[
    0xE0, 0x21,                         // DISCONNECT; remaining length 33
    0x9C,                               // reason code 0x9C use another server
    0x1F,                               // property length 31
    0x11, 0x00, 0x00, 0x01, 0x2C,       //   session expiry interval 300
    0x1F, 0x00, 0x03, b'b', b'y', b'e', //   reason string "bye"
    0x1C, 0x00, 0x0A, b'o', b't', b'h', b'e', b'r', b':', b'1', b'8', b'8', b'3', // server reference "other:1883"
    0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property k = v
];

#[test]
fn disconnect_short_reason_only_and_full() {
    assert_vector(
        V5,
        DISCONNECT_SHORT,
        &Disconnect::new(ReasonCode::NORMAL_DISCONNECTION).into(),
    );
    assert_vector(
        V5,
        DISCONNECT_WITH_WILL,
        &Disconnect::new(ReasonCode::DisconnectWithWillMessage).into(),
    );
    let mut full = Disconnect::new(ReasonCode::UseAnotherServer);
    full.properties.to_mut().session_expiry_interval = Some(300);
    full.properties.to_mut().reason_string = Some(s("bye"));
    full.properties.to_mut().server_reference = Some(s("other:1883"));
    full.properties.to_mut().user_properties = vec![user("k", "v")].into();
    assert_vector(V5, DISCONNECT_FULL, &full.into());
}

#[test]
fn disconnect_with_reason_and_empty_property_length_is_accepted() {
    #[rustfmt::skip]
    let vector: &[u8] = &[
        0xE0, 0x02, // DISCONNECT; remaining length 2
        0x8B,       // reason code 0x8B server shutting down
        0x00,       // property length 0 (could have been omitted)
    ];
    let packet = decode_framed(V5, vector);
    assert_eq!(
        packet,
        Disconnect::new(ReasonCode::ServerShuttingDown).into()
    );
    assert_eq!(&encode(V5, &packet)[..], &[0xE0, 0x01, 0x8B]);
}

// ---- AUTH (5.0 section 3.15) -------------------------------------------------

#[rustfmt::skip]
const AUTH_SHORT: &[u8] = &[
    0xF0, 0x00, // AUTH; remaining length 0: reason 0x00 success
];

#[rustfmt::skip]
const AUTH_CONTINUE: &[u8] = &[
    0xF0, 0x18,                         // AUTH; remaining length 24
    0x18,                               // reason code 0x18 continue authentication
    0x16,                               // property length 22
    0x15, 0x00, 0x05, b'S', b'C', b'R', b'A', b'M', // authentication method "SCRAM"
    0x16, 0x00, 0x04, 0xDE, 0xAD, 0xBE, 0xEF, // authentication data
    0x1F, 0x00, 0x04, b'n', b'e', b'x', b't', // reason string "next"
];

#[rustfmt::skip]
const AUTH_REAUTHENTICATE: &[u8] = &[
    0xF0, 0x0A,                         // AUTH; remaining length 10
    0x19,                               // reason code 0x19 re-authenticate
    0x08,                               // property length 8
    0x15, 0x00, 0x05, b'S', b'C', b'R', b'A', b'M', // authentication method "SCRAM"
];

#[test]
fn auth_short_and_with_method_and_data() {
    assert_vector(V5, AUTH_SHORT, &Auth::new(ReasonCode::Success).into());

    let mut cont = Auth::new(ReasonCode::ContinueAuthentication);
    cont.properties.to_mut().authentication_method = Some(s("SCRAM"));
    cont.properties.to_mut().authentication_data =
        Some(Bytes::from_static(&[0xDE, 0xAD, 0xBE, 0xEF]));
    cont.properties.to_mut().reason_string = Some(s("next"));
    assert_vector(V5, AUTH_CONTINUE, &cont.into());

    let mut re = Auth::new(ReasonCode::ReAuthenticate);
    re.properties.to_mut().authentication_method = Some(s("SCRAM"));
    assert_vector(V5, AUTH_REAUTHENTICATE, &re.into());
}

// ---- Streaming behaviour of the Decoder ---------------------------------------

#[test]
fn packet_too_large_is_refused_from_the_fixed_header_alone() {
    let mut dec = Decoder::with_version(V5);
    dec.set_max_packet_size(nz32(64));
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0x30]); // PUBLISH, QoS 0 ...
    assert_eq!(dec.decode(&mut buf), Ok(None));
    buf.extend_from_slice(&[0x80]); // ... remaining length continues ...
    assert_eq!(dec.decode(&mut buf), Ok(None));
    buf.extend_from_slice(&[0x01]); // ... remaining length 128: 131 bytes in all
    assert_eq!(
        dec.decode(&mut buf),
        Err(DecodeError::PacketTooLarge { size: 131, max: 64 })
    );

    // Two bytes are enough when the remaining length fits in one.
    let mut dec = Decoder::with_version(V5);
    dec.set_max_packet_size(nz32(64));
    let mut buf = BytesMut::from(&[0x30, 0x7F][..]); // PUBLISH; remaining length 127
    let err = dec.decode(&mut buf).unwrap_err();
    assert_eq!(err, DecodeError::PacketTooLarge { size: 129, max: 64 });
    assert_eq!(err.reason_code(), ReasonCode::PacketTooLarge);
}

#[test]
fn maximum_packet_size_counts_the_whole_packet() {
    // The maximum covers the fixed header too: PUBLISH_PROPERTIES is 69 bytes.
    assert_eq!(PUBLISH_PROPERTIES.len(), 69);
    let mut dec = Decoder::with_version(V5);
    dec.set_max_packet_size(nz32(69));
    let mut buf = BytesMut::from(PUBLISH_PROPERTIES);
    assert_eq!(dec.decode(&mut buf), Ok(Some(publish_properties().into())));

    let mut dec = Decoder::with_version(V5);
    dec.set_max_packet_size(nz32(68));
    let mut buf = BytesMut::from(PUBLISH_PROPERTIES);
    assert_eq!(
        dec.decode(&mut buf),
        Err(DecodeError::PacketTooLarge { size: 69, max: 68 })
    );
}

#[test]
fn unknown_version_decoder_learns_5_0_from_connect() {
    for vector in [CONNECT_FULL, CONNECT_MINIMAL, CONNECT_PASSWORD_ONLY] {
        let mut dec = Decoder::new();
        assert_eq!(dec.version(), None);
        let mut buf = BytesMut::from(vector);
        // Then a 5.0-only form: PUBACK with a reason code and no properties.
        buf.extend_from_slice(PUBACK_REASON);
        let Some(Packet::Connect(c)) = dec.decode(&mut buf).unwrap() else {
            panic!()
        };
        assert_eq!(c.protocol, V5);
        assert_eq!(dec.version(), Some(V5));
        let expected = PubAck {
            reason: ReasonCode::NoMatchingSubscribers,
            ..PubAck::new(pid(1))
        };
        assert_eq!(dec.decode(&mut buf), Ok(Some(expected.into())));
        assert!(buf.is_empty());
    }
}

#[test]
fn unknown_version_decoder_learns_the_version_byte_by_byte() {
    let mut dec = Decoder::new();
    let mut buf = BytesMut::new();
    for (n, &b) in CONNECT_FULL.iter().enumerate() {
        buf.extend_from_slice(&[b]);
        let got = dec.decode(&mut buf).unwrap();
        if n + 1 < CONNECT_FULL.len() {
            assert_eq!(got, None);
            assert_eq!(buf.len(), n + 1);
            assert_eq!(dec.version(), None);
        } else {
            assert_eq!(got, Some(connect_full().into()));
        }
    }
    assert_eq!(dec.version(), Some(V5));
}

#[test]
fn unknown_version_decoder_rejects_a_first_packet_other_than_connect() {
    // [MQTT-3.1.0-1] the first packet from the client MUST be CONNECT.
    for (vector, ty) in [
        (PUBLISH_QOS0, mqtt_codec::PacketType::Publish),
        (AUTH_SHORT, mqtt_codec::PacketType::Auth),
        (&[0xC0, 0x00][..], mqtt_codec::PacketType::PingReq),
    ] {
        let mut dec = Decoder::new();
        let mut buf = BytesMut::from(vector);
        let err = dec.decode(&mut buf).unwrap_err();
        assert_eq!(err, DecodeError::ExpectedConnect(ty));
        assert_eq!(err.reason_code(), ReasonCode::ProtocolError);
        assert_eq!(dec.version(), None);
    }
}

#[test]
fn a_stream_of_every_vector_decodes_in_order_whatever_the_chunking() {
    let vectors: &[&[u8]] = &[
        CONNECT_FULL,
        CONNACK_FULL,
        PUBLISH_QOS0,
        PUBLISH_QOS1,
        PUBLISH_QOS2_DUP_RETAIN,
        PUBLISH_SET_ALIAS,
        PUBLISH_USE_ALIAS,
        PUBLISH_PROPERTIES,
        PUBACK_SHORT,
        PUBACK_REASON,
        PUBACK_FULL,
        PUBREL_FULL,
        SUBSCRIBE,
        SUBACK_WITH_REASON_STRING,
        UNSUBSCRIBE,
        UNSUBACK,
        DISCONNECT_FULL,
        AUTH_CONTINUE,
        AUTH_SHORT,
    ];
    let expected: Vec<Packet> = vectors.iter().map(|v| decode_framed(V5, v)).collect();
    let stream = vectors.concat();
    for chunk in [1, 2, 3, 4, 7, 13, 100, stream.len()] {
        let mut dec = Decoder::with_version(V5);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in stream.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(p) = dec.decode(&mut buf).unwrap() {
                got.push(p);
            }
        }
        assert!(buf.is_empty());
        assert_eq!(got, expected, "chunks of {chunk}");
    }
}
