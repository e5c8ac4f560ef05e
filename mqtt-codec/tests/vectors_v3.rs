//! Hand-written MQTT 3.1.1 (protocol level 4) and MQTT 3.1 (level 3) vectors.
//!
//! Every byte below is written from the specification (OASIS MQTT 3.1.1,
//! chapter 3, and IBM MQTT V3.1 for `MQIsdp`), never produced by the
//! encoder. Each valid vector is decoded with a PINGREQ after it, fed one
//! byte at a time, and the expected packet is encoded back to the vector.

// Helpers outside `#[test]` functions are test code too (clippy.toml only
// exempts the test functions themselves).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use bytes::{Bytes, BytesMut};
use common::{assert_vector, decode_framed, encode, pid, s};
use mqtt_codec::{
    ConnAck, Connect, Decoder, Encoder, Packet, ProtocolVersion, PubAck, PubComp, PubRec, PubRel,
    Publish, QoS, ReasonCode, SubAck, Subscribe, SubscribeFilter, SubscriptionOptions, UnsubAck,
    Unsubscribe, Will,
};
use mqtt_codec::{PublishTopic, TopicName};

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;
const V3: ProtocolVersion = ProtocolVersion::V3_1;

// ---- CONNECT (3.1.1 section 3.1) -------------------------------------------

#[rustfmt::skip]
const CONNECT_FULL: &[u8] = &[
    0x10, 0x1F,                         // CONNECT; remaining length 31
    0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
    0x04,                               // protocol level 4 (3.1.1)
    0xEE,                               // flags: user name, password, will retain,
                                        //   will QoS 1, will, clean session; bit 0 reserved
    0x00, 0x3C,                         // keep alive 60 s
    0x00, 0x02, b'c', b'1',             // client identifier "c1"
    0x00, 0x03, b'w', b'/', b't',       // will topic "w/t"
    0x00, 0x03, b'b', b'y', b'e',       // will message "bye"
    0x00, 0x01, b'u',                   // user name "u"
    0x00, 0x02, 0x01, 0x02,             // password: binary 01 02
];

#[test]
fn connect_with_will_username_and_password() {
    let packet = decode_framed(V4, CONNECT_FULL);
    let Packet::Connect(c) = &packet else {
        panic!("not a CONNECT: {packet:?}")
    };
    assert_eq!(c.protocol, V4);
    assert!(c.clean_start);
    assert_eq!(c.keep_alive, 60);
    assert_eq!(c.client_id, "c1");
    let will = c.will.as_ref().expect("will flag is set");
    assert_eq!(will.topic, "w/t");
    assert_eq!(&will.payload[..], b"bye");
    assert_eq!(will.qos, QoS::AtLeastOnce);
    assert!(will.retain);
    assert!(will.properties.is_empty());
    assert_eq!(c.username.as_deref(), Some("u"));
    assert_eq!(c.password.as_deref(), Some(&[0x01, 0x02][..]));
    assert!(c.properties.is_empty());

    let mut will = Will::new(TopicName::from_static("w/t").unwrap(), &b"bye"[..]);
    will.qos = QoS::AtLeastOnce;
    will.retain = true;
    let mut expected = Connect::new(V4, s("c1"));
    expected.will = Some(will);
    expected.username = Some(s("u"));
    expected.password = Some(Bytes::from_static(&[0x01, 0x02]));
    assert_vector(V4, CONNECT_FULL, &expected.into());
}

#[rustfmt::skip]
const CONNECT_MINIMAL: &[u8] = &[
    0x10, 0x0C,                         // CONNECT; remaining length 12
    0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
    0x04,                               // protocol level 4
    0x02,                               // flags: clean session only
    0x00, 0x00,                         // keep alive 0: disabled
    0x00, 0x00,                         // client identifier "" (zero length)
];

#[test]
fn connect_minimal_with_empty_client_id() {
    let mut expected = Connect::new(V4, s(""));
    expected.keep_alive = 0;
    assert_vector(V4, CONNECT_MINIMAL, &expected.into());
}

#[rustfmt::skip]
const CONNECT_V31: &[u8] = &[
    0x10, 0x17,                         // CONNECT; remaining length 23
    0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', // protocol name "MQIsdp" (MQTT 3.1)
    0x03,                               // protocol level 3
    0xC0,                               // flags: user name, password; clean session 0
    0x00, 0x0A,                         // keep alive 10 s
    0x00, 0x03, b'a', b'b', b'c',       // client identifier "abc"
    0x00, 0x01, b'u',                   // user name "u"
    0x00, 0x01, b'p',                   // password "p"
];

#[test]
fn connect_at_level_3_uses_mqisdp() {
    let mut expected = Connect::new(V3, s("abc"));
    expected.clean_start = false;
    expected.keep_alive = 10;
    expected.username = Some(s("u"));
    expected.password = Some(Bytes::from_static(b"p"));
    assert_vector(V3, CONNECT_V31, &expected.into());
}

#[test]
fn connect_carries_its_own_level_whatever_the_encoder_version() {
    // A CONNECT is written at its own protocol level, so a 3.1 CONNECT
    // encoded by a 3.1.1 encoder is still `MQIsdp`, level 3.
    let mut c = Connect::new(V3, s("abc"));
    c.clean_start = false;
    c.keep_alive = 10;
    c.username = Some(s("u"));
    c.password = Some(Bytes::from_static(b"p"));
    assert_eq!(&encode(V4, &c.into())[..], CONNECT_V31);
}

#[test]
fn unknown_version_decoder_learns_3_1_and_3_1_1_from_connect() {
    for (vector, version) in [(CONNECT_V31, V3), (CONNECT_FULL, V4), (CONNECT_MINIMAL, V4)] {
        let mut dec = Decoder::new();
        assert_eq!(dec.version(), None);
        let mut buf = BytesMut::from(vector);
        // After CONNECT the decoder is at 3.1/3.1.1, where a PUBACK is exactly
        // two bytes: a v3 decoder must frame it so.
        buf.extend_from_slice(&[0x40, 0x02, 0x00, 0x07]);
        let Some(Packet::Connect(c)) = dec.decode(&mut buf).unwrap() else {
            panic!()
        };
        assert_eq!(c.protocol, version);
        assert_eq!(dec.version(), Some(version));
        assert_eq!(dec.decode(&mut buf), Ok(Some(PubAck::new(pid(7)).into())));
        assert!(buf.is_empty());
    }
}

// ---- CONNACK (3.1.1 section 3.2) -------------------------------------------

#[rustfmt::skip]
const CONNACK_SESSION_PRESENT: &[u8] = &[
    0x20, 0x02, // CONNACK; remaining length 2
    0x01,       // acknowledge flags: session present
    0x00,       // return code 0: connection accepted
];

#[test]
fn connack_session_present() {
    let expected = ConnAck {
        session_present: true,
        ..ConnAck::new(ReasonCode::Success)
    };
    assert_vector(V4, CONNACK_SESSION_PRESENT, &expected.into());
}

#[test]
fn connack_return_codes_1_to_5_map_to_reason_codes() {
    // 3.1.1 table 3.1: 1 unacceptable protocol version, 2 identifier rejected,
    // 3 server unavailable, 4 bad user name or password, 5 not authorized.
    let table = [
        (0x01, ReasonCode::UnsupportedProtocolVersion),
        (0x02, ReasonCode::ClientIdentifierNotValid),
        (0x03, ReasonCode::ServerUnavailable),
        (0x04, ReasonCode::BadUserNameOrPassword),
        (0x05, ReasonCode::NotAuthorized),
    ];
    for (code, reason) in table {
        #[rustfmt::skip]
        let vector = [
            0x20, 0x02, // CONNACK; remaining length 2
            0x00,       // no session present [MQTT-3.2.2-4]
            code,       // return code
        ];
        assert_vector(V4, &vector, &ConnAck::new(reason).into());
        assert_vector(V3, &vector, &ConnAck::new(reason).into());
    }
}

#[rustfmt::skip]
const CONNACK_V31: &[u8] = &[
    0x20, 0x02, // CONNACK; remaining length 2
    0x00,       // MQTT 3.1: reserved byte, not used
    0x00,       // return code 0: connection accepted
];

#[test]
fn connack_at_mqtt_3_1() {
    assert_vector(V3, CONNACK_V31, &ConnAck::new(ReasonCode::Success).into());
}

// ---- PUBLISH (3.1.1 section 3.3) -------------------------------------------

#[rustfmt::skip]
const PUBLISH_QOS0: &[u8] = &[
    0x30, 0x07,                   // PUBLISH, QoS 0, no DUP, no RETAIN; remaining length 7
    0x00, 0x03, b'a', b'/', b'b', // topic "a/b"; no packet id at QoS 0
    b'h', b'i',                   // payload "hi"
];

#[test]
fn publish_qos0() {
    let expected = Publish::new(PublishTopic::from_static("a/b"), &b"hi"[..]);
    assert_vector(V4, PUBLISH_QOS0, &expected.into());
}

#[rustfmt::skip]
const PUBLISH_QOS1: &[u8] = &[
    0x32, 0x0A,                   // PUBLISH, QoS 1; remaining length 10
    0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
    0x00, 0x0A,                   // packet id 10
    b'h', b'i', b'!',             // payload "hi!"
];

#[test]
fn publish_qos1() {
    let packet = decode_framed(V4, PUBLISH_QOS1);
    let Packet::Publish(p) = &packet else {
        panic!("not a PUBLISH: {packet:?}")
    };
    assert!(!p.dup);
    assert_eq!(p.qos, QoS::AtLeastOnce);
    assert!(!p.retain);
    assert_eq!(p.topic, "a/b");
    assert_eq!(p.packet_id, Some(pid(10)));
    assert_eq!(&p.payload[..], b"hi!");
    assert!(p.properties.is_empty());

    let mut expected = Publish::new(PublishTopic::from_static("a/b"), &b"hi!"[..]);
    expected.qos = QoS::AtLeastOnce;
    expected.packet_id = Some(pid(10));
    assert_vector(V4, PUBLISH_QOS1, &expected.into());
}

#[rustfmt::skip]
const PUBLISH_QOS2_DUP_RETAIN: &[u8] = &[
    0x3D, 0x0A,                   // PUBLISH: DUP 1, QoS 2, RETAIN 1; remaining length 10
    0x00, 0x04, b's', b'/', 0xC3, 0xA9, // topic "s/é" (U+00E9 is two UTF-8 bytes)
    0xFF, 0xFF,                   // packet id 65535
    0x00, 0xFF,                   // payload: two binary bytes
];

#[test]
fn publish_qos2_with_dup_and_retain() {
    let mut expected = Publish::new(PublishTopic::from_static("s/é"), &[0x00, 0xFF][..]);
    expected.dup = true;
    expected.qos = QoS::ExactlyOnce;
    expected.retain = true;
    expected.packet_id = Some(pid(65535));
    assert_vector(V4, PUBLISH_QOS2_DUP_RETAIN, &expected.into());
}

#[rustfmt::skip]
const PUBLISH_RETAIN_EMPTY: &[u8] = &[
    0x31, 0x05,                   // PUBLISH, QoS 0, RETAIN; remaining length 5
    0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
                                  // zero-length payload: clears the retained message
];

#[test]
fn publish_retained_with_empty_payload() {
    let mut expected = Publish::new(PublishTopic::from_static("a/b"), Bytes::new());
    expected.retain = true;
    assert_vector(V4, PUBLISH_RETAIN_EMPTY, &expected.into());
}

#[test]
fn publish_with_two_byte_remaining_length() {
    // Remaining length 205 = 0x4D + 1 * 128: Variable Byte Integer 0xCD 0x01.
    #[rustfmt::skip]
    let head: &[u8] = &[
        0x30, 0xCD, 0x01,             // PUBLISH, QoS 0; remaining length 205
        0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
    ];
    let mut vector = head.to_vec();
    vector.extend_from_slice(&[b'x'; 200]); // payload: 200 bytes
    let expected = Publish::new(PublishTopic::from_static("a/b"), vec![b'x'; 200]);
    assert_vector(V4, &vector, &expected.into());
}

#[test]
fn publish_head_plus_payload_is_the_vector() {
    let mut p = Publish::new(PublishTopic::from_static("a/b"), &b"hi!"[..]);
    p.qos = QoS::AtLeastOnce;
    p.packet_id = Some(pid(10));
    let mut head = BytesMut::new();
    let total = Encoder::new(V4).encode_publish_head(&p, &mut head).unwrap();
    assert_eq!(total, PUBLISH_QOS1.len());
    assert_eq!(&head[..], &PUBLISH_QOS1[..PUBLISH_QOS1.len() - 3]);
    head.extend_from_slice(&p.payload);
    assert_eq!(&head[..], PUBLISH_QOS1);
}

// ---- PUBACK, PUBREC, PUBREL, PUBCOMP (3.1.1 sections 3.4 to 3.7) ---------------

#[rustfmt::skip]
const PUBACK: &[u8] = &[
    0x40, 0x02, // PUBACK; remaining length 2
    0x00, 0x0A, // packet id 10
];

#[rustfmt::skip]
const PUBREC: &[u8] = &[
    0x50, 0x02, // PUBREC; remaining length 2
    0x01, 0x02, // packet id 258
];

#[rustfmt::skip]
const PUBREL: &[u8] = &[
    0x62, 0x02, // PUBREL, reserved flags 0b0010 [MQTT-3.6.1-1]; remaining length 2
    0x01, 0x02, // packet id 258
];

#[rustfmt::skip]
const PUBCOMP: &[u8] = &[
    0x70, 0x02, // PUBCOMP; remaining length 2
    0x01, 0x02, // packet id 258
];

#[test]
fn puback_pubrec_pubrel_pubcomp() {
    assert_vector(V4, PUBACK, &PubAck::new(pid(10)).into());
    assert_vector(V4, PUBREC, &PubRec::new(pid(258)).into());
    assert_vector(V4, PUBREL, &PubRel::new(pid(258)).into());
    assert_vector(V4, PUBCOMP, &PubComp::new(pid(258)).into());
}

// ---- SUBSCRIBE and SUBACK (3.1.1 sections 3.8 and 3.9) -----------------------

#[rustfmt::skip]
const SUBSCRIBE: &[u8] = &[
    0x82, 0x12,                   // SUBSCRIBE, reserved flags 0b0010 [MQTT-3.8.1-1]; remaining length 18
    0x12, 0x34,                   // packet id 0x1234
    0x00, 0x03, b'a', b'/', b'+', // topic filter "a/+"
    0x00,                         //   requested QoS 0
    0x00, 0x03, b'b', b'/', b'#', // topic filter "b/#"
    0x01,                         //   requested QoS 1
    0x00, 0x01, b'c',             // topic filter "c"
    0x02,                         //   requested QoS 2
];

#[test]
fn subscribe_with_three_filters() {
    let filter = |f: &'static str, qos| SubscribeFilter {
        filter: s(f),
        options: SubscriptionOptions::new(qos),
    };
    let mut expected = Subscribe::new(
        pid(0x1234),
        s("a/+"),
        SubscriptionOptions::new(QoS::AtMostOnce),
    );
    expected.filters.push(filter("b/#", QoS::AtLeastOnce));
    expected.filters.push(filter("c", QoS::ExactlyOnce));
    assert_vector(V4, SUBSCRIBE, &expected.into());
}

#[rustfmt::skip]
const SUBACK: &[u8] = &[
    0x90, 0x06, // SUBACK; remaining length 6
    0x12, 0x34, // packet id 0x1234
    0x00,       // success, maximum QoS 0
    0x01,       // success, maximum QoS 1
    0x02,       // success, maximum QoS 2
    0x80,       // failure
];

#[test]
fn suback_with_granted_qos_and_failure() {
    let expected = SubAck::new(
        pid(0x1234),
        vec![
            ReasonCode::GRANTED_QOS_0,
            ReasonCode::GrantedQoS1,
            ReasonCode::GrantedQoS2,
            ReasonCode::UnspecifiedError,
        ],
    );
    assert_vector(V4, SUBACK, &expected.into());
}

#[test]
fn suback_writes_every_5_0_failure_as_0x80() {
    // 3.1.1 has a single failure code, 0x80 [MQTT-3.9.3-2].
    let reasons = vec![
        ReasonCode::GRANTED_QOS_0,
        ReasonCode::GrantedQoS1,
        ReasonCode::GrantedQoS2,
        ReasonCode::NotAuthorized,
    ];
    let packet = SubAck::new(pid(0x1234), reasons).into();
    assert_eq!(&encode(V4, &packet)[..], SUBACK);
}

// ---- UNSUBSCRIBE and UNSUBACK (3.1.1 sections 3.10 and 3.11) -----------------

#[rustfmt::skip]
const UNSUBSCRIBE: &[u8] = &[
    0xA2, 0x0C,                   // UNSUBSCRIBE, reserved flags 0b0010 [MQTT-3.10.1-1]; remaining length 12
    0x12, 0x35,                   // packet id 0x1235
    0x00, 0x03, b'a', b'/', b'+', // topic filter "a/+"
    0x00, 0x03, b'b', b'/', b'#', // topic filter "b/#"
];

#[test]
fn unsubscribe_with_two_filters() {
    let expected = Unsubscribe::new(pid(0x1235), vec![s("a/+"), s("b/#")]);
    assert_vector(V4, UNSUBSCRIBE, &expected.into());
}

#[rustfmt::skip]
const UNSUBACK: &[u8] = &[
    0xB0, 0x02, // UNSUBACK; remaining length 2
    0x12, 0x35, // packet id 0x1235; 3.1.1 has no payload
];

#[test]
fn unsuback_has_no_reason_codes() {
    assert_vector(V4, UNSUBACK, &UnsubAck::new(pid(0x1235), vec![]).into());
    // Success-like 5.0 codes cannot be carried and are dropped.
    let with_codes = UnsubAck::new(
        pid(0x1235),
        vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted],
    );
    assert_eq!(&encode(V4, &with_codes.into())[..], UNSUBACK);
}

// ---- PINGREQ, PINGRESP, DISCONNECT (3.1.1 sections 3.12 to 3.14) -------------

#[rustfmt::skip]
const PINGREQ: &[u8] = &[
    0xC0, 0x00, // PINGREQ; remaining length 0
];

#[rustfmt::skip]
const PINGRESP: &[u8] = &[
    0xD0, 0x00, // PINGRESP; remaining length 0
];

#[rustfmt::skip]
const DISCONNECT: &[u8] = &[
    0xE0, 0x00, // DISCONNECT; remaining length 0
];

#[test]
fn pingreq_pingresp_disconnect() {
    assert_vector(V4, PINGREQ, &Packet::PingReq);
    assert_vector(V4, PINGRESP, &Packet::PingResp);
    assert_vector(V4, DISCONNECT, &mqtt_codec::Disconnect::default().into());
    assert_vector(V3, DISCONNECT, &mqtt_codec::Disconnect::default().into());
}

// ---- Streams -----------------------------------------------------------------

#[test]
fn a_stream_of_every_vector_decodes_in_order_whatever_the_chunking() {
    let vectors: &[&[u8]] = &[
        CONNACK_SESSION_PRESENT,
        PUBLISH_QOS0,
        PUBLISH_QOS1,
        PUBLISH_QOS2_DUP_RETAIN,
        PUBLISH_RETAIN_EMPTY,
        PUBACK,
        PUBREC,
        PUBREL,
        PUBCOMP,
        SUBSCRIBE,
        SUBACK,
        UNSUBSCRIBE,
        UNSUBACK,
        PINGREQ,
        PINGRESP,
        DISCONNECT,
    ];
    let expected: Vec<Packet> = vectors.iter().map(|v| decode_framed(V4, v)).collect();
    let stream: Vec<u8> = vectors.concat();
    for chunk in [1, 2, 3, 5, 7, 64, stream.len()] {
        let mut dec = Decoder::with_version(V4);
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
