//! Hand-written invalid vectors: every `DecodeError` variant, with the MQTT
//! 5.0 reason code it maps to, and every `EncodeError` the encoder gives
//! instead of writing a packet that breaks the specification.
//!
//! Conformance statements are cited as `[MQTT-x.y.z-n]`; "3.1.1" or "5.0"
//! says which document the id is from when they differ.

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
use common::{PINGREQ, decode_framed, pid, s, user};
use mqtt_codec::{
    Auth, ConnAck, Connect, DecodeError, Decoder, Disconnect, EncodeError, Encoder, Packet,
    PacketType, ProtocolVersion, PubAck, PubRel, Publish, QoS, ReasonCode, SubAck, Subscribe,
    SubscriptionOptions, Unsubscribe, Utf8Bytes,
};
use mqtt_codec::{PublishTopic, TopicError, TopicName};

const V3: Option<ProtocolVersion> = Some(ProtocolVersion::V3_1);
const V4: Option<ProtocolVersion> = Some(ProtocolVersion::V3_1_1);
const V5: Option<ProtocolVersion> = Some(ProtocolVersion::V5);
/// A server's decoder before CONNECT: the version is not known yet.
const UNKNOWN: Option<ProtocolVersion> = None;

const MALFORMED: ReasonCode = ReasonCode::MalformedPacket;
const PROTOCOL_ERROR: ReasonCode = ReasonCode::ProtocolError;

/// Decodes `bytes` followed by a PINGREQ and checks the exact error, its
/// reason code, and that the error is sticky: the next call, with the
/// PINGREQ still there, gives it again.
#[track_caller]
fn assert_decode_err(
    version: Option<ProtocolVersion>,
    bytes: &[u8],
    expected: DecodeError,
    reason: ReasonCode,
) {
    let mut dec = match version {
        Some(v) => Decoder::with_version(v),
        None => Decoder::new(),
    };
    let mut buf = BytesMut::from(bytes);
    buf.extend_from_slice(PINGREQ);
    assert_eq!(dec.decode(&mut buf), Err(expected), "vector {bytes:02X?}");
    assert_eq!(
        expected.reason_code(),
        reason,
        "reason code of {expected:?}"
    );
    assert_eq!(dec.decode(&mut buf), Err(expected), "errors are sticky");
}

// ---- Fixed header --------------------------------------------------------------

#[test]
fn remaining_length_with_a_fifth_byte_is_malformed() {
    #[rustfmt::skip]
    let vector: &[u8] = &[
        0x30,                         // PUBLISH, QoS 0
        0xFF, 0xFF, 0xFF, 0xFF, 0x7F, // remaining length: five bytes, at most four allowed
    ];
    assert_decode_err(V4, vector, DecodeError::MalformedRemainingLength, MALFORMED);
    assert_decode_err(V5, vector, DecodeError::MalformedRemainingLength, MALFORMED);

    // The error comes as soon as the fourth byte still has its continuation bit.
    let mut dec = Decoder::with_version(ProtocolVersion::V5);
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF][..]);
    assert_eq!(dec.decode(&mut buf), Ok(None));
    buf.extend_from_slice(&[0xFF]);
    assert_eq!(
        dec.decode(&mut buf),
        Err(DecodeError::MalformedRemainingLength)
    );
}

#[test]
fn largest_remaining_length_is_accepted_and_waits_for_the_body() {
    // 0xFF 0xFF 0xFF 0x7F is 268,435,455, the largest Remaining Length.
    let mut dec = Decoder::with_version(ProtocolVersion::V5);
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F, 0x00, 0x01][..]);
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert_eq!(buf.len(), 7, "nothing is consumed");
}

#[test]
fn variable_byte_integers_must_be_minimal() {
    // [MQTT-1.5.5-1] the encoded value MUST use the minimum number of bytes.
    #[rustfmt::skip]
    let remaining_length: &[u8] = &[
        0xC0,       // PINGREQ
        0x80, 0x00, // remaining length 0 in two bytes
    ];
    assert_decode_err(
        V4,
        remaining_length,
        DecodeError::NonMinimalVarInt,
        MALFORMED,
    );
    assert_decode_err(
        UNKNOWN,
        &[0x10, 0x80, 0x00],
        DecodeError::NonMinimalVarInt,
        MALFORMED,
    );

    #[rustfmt::skip]
    let property_length: &[u8] = &[
        0x40, 0x05, // PUBACK; remaining length 5
        0x00, 0x01, // packet id 1
        0x00,       // reason code success
        0x80, 0x00, // property length 0 in two bytes
    ];
    assert_decode_err(
        V5,
        property_length,
        DecodeError::NonMinimalVarInt,
        MALFORMED,
    );

    #[rustfmt::skip]
    let subscription_identifier: &[u8] = &[
        0x82, 0x0A,       // SUBSCRIBE; remaining length 10
        0x00, 0x01,       // packet id 1
        0x03,             // property length 3
        0x0B, 0x81, 0x00, //   subscription identifier 1 in two bytes
        0x00, 0x01, b'a', // topic filter "a"
        0x00,             //   options: QoS 0
    ];
    assert_decode_err(
        V5,
        subscription_identifier,
        DecodeError::NonMinimalVarInt,
        MALFORMED,
    );

    #[rustfmt::skip]
    let property_identifier: &[u8] = &[
        0x30, 0x09,                   // PUBLISH, QoS 0; remaining length 9
        0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
        0x03,                         // property length 3
        0x81, 0x00, 0x01,             //   identifier 0x01 in two bytes, value 1
    ];
    assert_decode_err(
        V5,
        property_identifier,
        DecodeError::NonMinimalVarInt,
        MALFORMED,
    );
}

#[test]
fn packet_too_large_for_the_configured_maximum() {
    let mut dec = Decoder::with_version(ProtocolVersion::V3_1_1);
    dec.set_max_packet_size(NonZeroU32::new(16).unwrap());
    // PUBLISH; remaining length 17: 19 bytes with the header, body not sent yet.
    let mut buf = BytesMut::from(&[0x30, 0x11][..]);
    let err = DecodeError::PacketTooLarge { size: 19, max: 16 };
    assert_eq!(dec.decode(&mut buf), Err(err));
    assert_eq!(err.reason_code(), ReasonCode::PacketTooLarge);
    buf.extend_from_slice(&[0u8; 17]);
    assert_eq!(dec.decode(&mut buf), Err(err), "errors are sticky");
}

#[test]
fn packet_type_0_is_reserved_and_15_is_auth_only_in_5_0() {
    let reserved: &[u8] = &[0x00, 0x00]; // type 0 (reserved); remaining length 0
    assert_decode_err(V4, reserved, DecodeError::InvalidPacketType(0), MALFORMED);
    assert_decode_err(V5, reserved, DecodeError::InvalidPacketType(0), MALFORMED);
    assert_decode_err(
        UNKNOWN,
        reserved,
        DecodeError::InvalidPacketType(0),
        MALFORMED,
    );

    let auth: &[u8] = &[0xF0, 0x00]; // AUTH; remaining length 0
    assert_decode_err(V4, auth, DecodeError::InvalidPacketType(15), MALFORMED);
    assert_decode_err(V3, auth, DecodeError::InvalidPacketType(15), MALFORMED);
}

#[test]
fn reserved_header_flags_must_have_their_listed_value() {
    // 3.1.1 [MQTT-2.2.2-1] [MQTT-2.2.2-2], 5.0 [MQTT-2.1.3-1].
    let flags = |packet, flags| DecodeError::InvalidHeaderFlags { packet, flags };
    #[rustfmt::skip]
    let pubrel: &[u8] = &[
        0x60, 0x02, // PUBREL with flags 0b0000, must be 0b0010 [MQTT-3.6.1-1]
        0x00, 0x01, // packet id 1
    ];
    assert_decode_err(V4, pubrel, flags(PacketType::PubRel, 0), MALFORMED);
    #[rustfmt::skip]
    let subscribe: &[u8] = &[
        0x80, 0x06,       // SUBSCRIBE with flags 0b0000, must be 0b0010 [MQTT-3.8.1-1]
        0x00, 0x01,       // packet id 1
        0x00, 0x01, b'a', // topic filter "a"
        0x00,             //   QoS 0
    ];
    assert_decode_err(V4, subscribe, flags(PacketType::Subscribe, 0), MALFORMED);
    #[rustfmt::skip]
    let unsubscribe: &[u8] = &[
        0xA8, 0x05,       // UNSUBSCRIBE with flags 0b1000, must be 0b0010 [MQTT-3.10.1-1]
        0x00, 0x01,       // packet id 1
        0x00, 0x01, b'a', // topic filter "a"
    ];
    assert_decode_err(
        V4,
        unsubscribe,
        flags(PacketType::Unsubscribe, 8),
        MALFORMED,
    );
    let pingreq: &[u8] = &[0xC1, 0x00]; // PINGREQ with flags 0b0001
    assert_decode_err(V4, pingreq, flags(PacketType::PingReq, 1), MALFORMED);
    let disconnect: &[u8] = &[0xE2, 0x00]; // DISCONNECT with flags 0b0010 [MQTT-3.14.1-1]
    assert_decode_err(V5, disconnect, flags(PacketType::Disconnect, 2), MALFORMED);
    let auth: &[u8] = &[0xF1, 0x00]; // AUTH with flags 0b0001 [MQTT-3.15.1-1]
    assert_decode_err(V5, auth, flags(PacketType::Auth, 1), MALFORMED);
    let connect: &[u8] = &[0x12, 0x00]; // CONNECT with flags 0b0010
    assert_decode_err(UNKNOWN, connect, flags(PacketType::Connect, 2), MALFORMED);
}

#[test]
fn every_wrong_flag_nibble_of_every_packet_type_but_publish_is_refused() {
    for nibble in (1u8..=15).filter(|&n| n != 3) {
        let ty = PacketType::from_nibble(nibble).unwrap();
        let required = if matches!(
            ty,
            PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe
        ) {
            0b0010
        } else {
            0b0000
        };
        for f in (0u8..16).filter(|&f| f != required) {
            let mut dec = Decoder::with_version(ProtocolVersion::V5);
            let mut buf = BytesMut::from(&[(nibble << 4) | f, 0x00][..]);
            assert_eq!(
                dec.decode(&mut buf),
                Err(DecodeError::InvalidHeaderFlags {
                    packet: ty,
                    flags: f
                }),
                "{ty} with flags {f:#06b}"
            );
        }
    }
}

// ---- QoS, DUP and packet identifiers -------------------------------------------

#[test]
fn qos_3_is_invalid_everywhere() {
    #[rustfmt::skip]
    let publish: &[u8] = &[
        0x36, 0x07,                   // PUBLISH with both QoS bits set [MQTT-3.3.1-4]
        0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
        0x00, 0x01,                   // packet id 1
    ];
    assert_decode_err(V4, publish, DecodeError::InvalidQos(3), MALFORMED);
    assert_decode_err(V5, publish, DecodeError::InvalidQos(3), MALFORMED);

    #[rustfmt::skip]
    let will_qos: &[u8] = &[
        0x10, 0x11,                         // CONNECT; remaining length 17
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
        0x04,                               // protocol level 4
        0x1E,                               // flags: will QoS 3, will, clean session [MQTT-3.1.2-14]
        0x00, 0x00,                         // keep alive 0
        0x00, 0x00,                         // client identifier ""
        0x00, 0x01, b't',                   // will topic "t"
        0x00, 0x00,                         // will message ""
    ];
    assert_decode_err(UNKNOWN, will_qos, DecodeError::InvalidQos(3), MALFORMED);

    #[rustfmt::skip]
    let subscribe: &[u8] = &[
        0x82, 0x06,       // SUBSCRIBE; remaining length 6
        0x00, 0x01,       // packet id 1
        0x00, 0x01, b'a', // topic filter "a"
        0x03,             //   requested QoS 3 [MQTT-3-8.3-4] (3.1.1)
    ];
    assert_decode_err(V4, subscribe, DecodeError::InvalidQos(3), MALFORMED);
}

#[test]
fn dup_on_qos0_publish_is_refused() {
    #[rustfmt::skip]
    let vector: &[u8] = &[
        0x38, 0x05,                   // PUBLISH, DUP 1, QoS 0 [MQTT-3.3.1-2]
        0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
    ];
    assert_decode_err(V4, vector, DecodeError::DupOnQos0, MALFORMED);
}

#[test]
fn packet_identifier_0_is_refused() {
    // 3.1.1 [MQTT-2.3.1-1], 5.0 [MQTT-2.2.1-3]: non-zero packet identifiers.
    #[rustfmt::skip]
    let puback: &[u8] = &[
        0x40, 0x02, // PUBACK; remaining length 2
        0x00, 0x00, // packet id 0
    ];
    assert_decode_err(V4, puback, DecodeError::ZeroPacketId, MALFORMED);
    assert_decode_err(V5, puback, DecodeError::ZeroPacketId, MALFORMED);
    #[rustfmt::skip]
    let subscribe: &[u8] = &[
        0x82, 0x06,       // SUBSCRIBE; remaining length 6
        0x00, 0x00,       // packet id 0
        0x00, 0x01, b'a', // topic filter "a"
        0x00,             //   QoS 0
    ];
    assert_decode_err(V4, subscribe, DecodeError::ZeroPacketId, MALFORMED);
    #[rustfmt::skip]
    let publish: &[u8] = &[
        0x32, 0x07,                   // PUBLISH, QoS 1; remaining length 7
        0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
        0x00, 0x00,                   // packet id 0
    ];
    assert_decode_err(V4, publish, DecodeError::ZeroPacketId, MALFORMED);
    #[rustfmt::skip]
    let unsubscribe: &[u8] = &[
        0xA2, 0x06,       // UNSUBSCRIBE; remaining length 6
        0x00, 0x00,       // packet id 0
        0x00,             // property length 0
        0x00, 0x01, b'a', // topic filter "a"
    ];
    assert_decode_err(V5, unsubscribe, DecodeError::ZeroPacketId, MALFORMED);
    let pubrel: &[u8] = &[0x62, 0x02, 0x00, 0x00]; // PUBREL, packet id 0
    assert_decode_err(V5, pubrel, DecodeError::ZeroPacketId, MALFORMED);
    let suback: &[u8] = &[0x90, 0x03, 0x00, 0x00, 0x00]; // SUBACK, packet id 0, QoS 0
    assert_decode_err(V4, suback, DecodeError::ZeroPacketId, MALFORMED);
}

// ---- Lengths inside the frame ----------------------------------------------------

#[test]
fn a_field_running_past_the_end_of_the_frame_is_unexpected_end() {
    #[rustfmt::skip]
    let truncated_string: &[u8] = &[
        0x30, 0x04,       // PUBLISH, QoS 0; remaining length 4
        0x00, 0x05,       // topic length 5 ...
        b'a', b'b',       // ... but only 2 bytes left in the frame
    ];
    assert_decode_err(V4, truncated_string, DecodeError::UnexpectedEnd, MALFORMED);

    #[rustfmt::skip]
    let short_packet_id: &[u8] = &[
        0x40, 0x01, // PUBACK; remaining length 1
        0x00,       // half a packet id
    ];
    assert_decode_err(V4, short_packet_id, DecodeError::UnexpectedEnd, MALFORMED);

    #[rustfmt::skip]
    let missing_user_name: &[u8] = &[
        0x10, 0x0C,                         // CONNECT; remaining length 12
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
        0x04,                               // protocol level 4
        0x82,                               // flags: user name, clean session
        0x00, 0x00,                         // keep alive 0
        0x00, 0x00,                         // client identifier ""
                                            // user name missing [MQTT-3.1.2-19]
    ];
    assert_decode_err(
        UNKNOWN,
        missing_user_name,
        DecodeError::UnexpectedEnd,
        MALFORMED,
    );

    #[rustfmt::skip]
    let property_length_past_frame: &[u8] = &[
        0x40, 0x04, // PUBACK; remaining length 4
        0x00, 0x01, // packet id 1
        0x80,       // reason code 0x80
        0x05,       // property length 5, but the frame has ended
    ];
    assert_decode_err(
        V5,
        property_length_past_frame,
        DecodeError::UnexpectedEnd,
        MALFORMED,
    );
}

#[test]
fn a_property_value_must_end_within_the_property_length() {
    #[rustfmt::skip]
    let vector: &[u8] = &[
        0x30, 0x0B,                   // PUBLISH, QoS 0; remaining length 11
        0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
        0x02,                         // property length 2 ...
        0x02, 0x00,                   //   message expiry interval: needs 4 bytes, has 1
        0x00, 0x00, 0x1E,             // payload (not part of the property)
    ];
    assert_decode_err(V5, vector, DecodeError::UnexpectedEnd, MALFORMED);
}

#[test]
fn bytes_after_the_last_field_are_trailing_bytes() {
    let pingreq: &[u8] = &[0xC0, 0x01, 0x00]; // PINGREQ with a one-byte body
    assert_decode_err(V4, pingreq, DecodeError::TrailingBytes(1), MALFORMED);
    assert_decode_err(V5, pingreq, DecodeError::TrailingBytes(1), MALFORMED);
    #[rustfmt::skip]
    let puback: &[u8] = &[
        0x40, 0x03, // PUBACK; remaining length 3: 3.1.1 has no reason code
        0x00, 0x01, // packet id 1
        0x00,       // extra byte
    ];
    assert_decode_err(V4, puback, DecodeError::TrailingBytes(1), MALFORMED);
    let disconnect: &[u8] = &[0xE0, 0x01, 0x00]; // 3.1.1 DISCONNECT with a body
    assert_decode_err(V4, disconnect, DecodeError::TrailingBytes(1), MALFORMED);
    let unsuback: &[u8] = &[0xB0, 0x03, 0x00, 0x01, 0x00]; // 3.1.1 UNSUBACK with a code
    assert_decode_err(V4, unsuback, DecodeError::TrailingBytes(1), MALFORMED);
    let connack: &[u8] = &[0x20, 0x03, 0x00, 0x00, 0x00]; // 5.0-shaped CONNACK at 3.1.1
    assert_decode_err(V4, connack, DecodeError::TrailingBytes(1), MALFORMED);
    #[rustfmt::skip]
    let connect: &[u8] = &[
        0x10, 0x0F,                         // CONNECT; remaining length 15
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
        0x05,                               // protocol version 5
        0x02,                               // flags: clean start
        0x00, 0x00,                         // keep alive 0
        0x00,                               // property length 0
        0x00, 0x00,                         // client identifier ""
        0xAB, 0xCD,                         // two bytes no flag accounts for
    ];
    assert_decode_err(UNKNOWN, connect, DecodeError::TrailingBytes(2), MALFORMED);
}

// ---- CONNECT ---------------------------------------------------------------------

/// A CONNECT whose payload is only the empty client identifier, with
/// `name`, `level` and `flags` as given (and a property length 0 at level 5).
fn connect(name: &[u8], level: u8, flags: u8) -> Vec<u8> {
    let mut v = vec![0x10, 0x00]; // CONNECT; remaining length patched below
    v.extend_from_slice(&[0x00, u8::try_from(name.len()).unwrap()]); // protocol name length
    v.extend_from_slice(name); // protocol name
    v.push(level); // protocol level
    v.push(flags); // connect flags
    v.extend_from_slice(&[0x00, 0x00]); // keep alive 0
    if level == 5 {
        v.push(0x00); // property length 0
    }
    v.extend_from_slice(&[0x00, 0x00]); // client identifier ""
    v[1] = u8::try_from(v.len() - 2).unwrap();
    v
}

#[test]
fn connect_protocol_name_must_match_the_level() {
    // [MQTT-3.1.2-1]: "MQTT" for 3.1.1 and 5.0, "MQIsdp" for 3.1.
    let wrong = DecodeError::InvalidProtocolName;
    let reason = ReasonCode::UnsupportedProtocolVersion;
    #[rustfmt::skip]
    let lowercase: &[u8] = &[
        0x10, 0x0C,                         // CONNECT; remaining length 12
        0x00, 0x04, b'M', b'Q', b'T', b't', // protocol name "MQTt"
        0x04,                               // protocol level 4
        0x02,                               // flags: clean session
        0x00, 0x00,                         // keep alive 0
        0x00, 0x00,                         // client identifier ""
    ];
    assert_decode_err(UNKNOWN, lowercase, wrong, reason);
    assert_decode_err(UNKNOWN, &connect(b"MQIsdp", 4, 0x02), wrong, reason);
    assert_decode_err(UNKNOWN, &connect(b"MQTT", 3, 0x02), wrong, reason);
    assert_decode_err(UNKNOWN, &connect(b"MQIsdp", 5, 0x02), wrong, reason);
    // A wrong name is reported before a wrong level.
    assert_decode_err(UNKNOWN, &connect(b"HTTP", 9, 0x02), wrong, reason);
}

#[test]
fn connect_protocol_level_6_is_unsupported() {
    // [MQTT-3.1.2-2] answered with 0x84 unsupported protocol version.
    #[rustfmt::skip]
    let vector: &[u8] = &[
        0x10, 0x0D,                         // CONNECT; remaining length 13
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
        0x06,                               // protocol level 6
        0x02,                               // flags: clean start
        0x00, 0x00,                         // keep alive 0
        0x00,                               // (a 5.0-like property length)
        0x00, 0x00,                         // client identifier ""
    ];
    let err = DecodeError::UnsupportedProtocolVersion(6);
    assert_decode_err(UNKNOWN, vector, err, ReasonCode::UnsupportedProtocolVersion);
    assert_decode_err(V5, vector, err, ReasonCode::UnsupportedProtocolVersion);
}

#[test]
fn connect_flags_must_be_consistent() {
    let invalid = |flags| DecodeError::InvalidConnectFlags(flags);
    // [MQTT-3.1.2-3] the reserved bit 0 must be 0.
    assert_decode_err(
        UNKNOWN,
        &connect(b"MQTT", 4, 0x03),
        invalid(0x03),
        MALFORMED,
    );
    assert_decode_err(
        UNKNOWN,
        &connect(b"MQTT", 5, 0x03),
        invalid(0x03),
        MALFORMED,
    );
    // [MQTT-3.1.2-11] [MQTT-3.1.2-13] will QoS 1 without the will flag.
    assert_decode_err(
        UNKNOWN,
        &connect(b"MQTT", 4, 0x0A),
        invalid(0x0A),
        MALFORMED,
    );
    assert_decode_err(
        UNKNOWN,
        &connect(b"MQTT", 5, 0x12),
        invalid(0x12),
        MALFORMED,
    );
    // [MQTT-3.1.2-11] [MQTT-3.1.2-15] will retain without the will flag.
    assert_decode_err(
        UNKNOWN,
        &connect(b"MQTT", 4, 0x22),
        invalid(0x22),
        MALFORMED,
    );
    assert_decode_err(
        UNKNOWN,
        &connect(b"MQTT", 5, 0x22),
        invalid(0x22),
        MALFORMED,
    );
}

#[test]
fn password_without_user_name_is_refused_before_5_0_only() {
    #[rustfmt::skip]
    let v311: &[u8] = &[
        0x10, 0x10,                         // CONNECT; remaining length 16
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
        0x04,                               // protocol level 4
        0x42,                               // flags: password, clean session; no user name
        0x00, 0x00,                         // keep alive 0
        0x00, 0x00,                         // client identifier ""
        0x00, 0x02, b'p', b'w',             // password "pw"
    ];
    // 3.1.1 [MQTT-3.1.2-22]: if the User Name Flag is 0, the Password Flag MUST be 0.
    let err = DecodeError::InvalidConnectFlags(0x42);
    assert_decode_err(UNKNOWN, v311, err, MALFORMED);
    let mut v31 = connect(b"MQIsdp", 3, 0x42);
    v31.extend_from_slice(&[0x00, 0x02, b'p', b'w']); // password "pw"
    v31[1] += 4;
    assert_decode_err(UNKNOWN, &v31, err, MALFORMED);

    // 5.0 allows it (section 3.1.2.9).
    let mut v5 = connect(b"MQTT", 5, 0x42);
    v5.extend_from_slice(&[0x00, 0x02, b'p', b'w']); // password "pw"
    v5[1] += 4;
    let Packet::Connect(c) = decode_framed(ProtocolVersion::V5, &v5) else {
        panic!()
    };
    assert_eq!(
        (c.username, c.password),
        (None, Some(Bytes::from_static(b"pw")))
    );
}

// ---- CONNACK ---------------------------------------------------------------------

#[test]
fn connack_flags_reserved_bits_and_session_present_with_error() {
    let invalid = |flags| DecodeError::InvalidConnAckFlags(flags);
    #[rustfmt::skip]
    let reserved: &[u8] = &[
        0x20, 0x02, // CONNACK; remaining length 2
        0x02,       // acknowledge flags: reserved bit 1 set (bits 7-1 MUST be 0)
        0x00,       // accepted
    ];
    assert_decode_err(V4, reserved, invalid(0x02), MALFORMED);
    #[rustfmt::skip]
    let session_with_error: &[u8] = &[
        0x20, 0x02, // CONNACK; remaining length 2
        0x01,       // session present ...
        0x05,       // ... with return code 5 [MQTT-3.2.2-4] (3.1.1)
    ];
    assert_decode_err(V4, session_with_error, invalid(0x01), MALFORMED);
    #[rustfmt::skip]
    let reserved_v5: &[u8] = &[
        0x20, 0x03, // CONNACK; remaining length 3
        0x80,       // reserved bit 7 set [MQTT-3.2.2-1] (5.0)
        0x00,       // success
        0x00,       // property length 0
    ];
    assert_decode_err(V5, reserved_v5, invalid(0x80), MALFORMED);
    #[rustfmt::skip]
    let session_with_error_v5: &[u8] = &[
        0x20, 0x03, // CONNACK; remaining length 3
        0x01,       // session present ...
        0x87,       // ... with 0x87 not authorized [MQTT-3.2.2-6] (5.0)
        0x00,       // property length 0
    ];
    assert_decode_err(V5, session_with_error_v5, invalid(0x01), MALFORMED);
}

// ---- Strings and topics ------------------------------------------------------------

#[test]
fn ill_formed_utf8_is_refused() {
    // 3.1.1 [MQTT-1.5.3-1], 5.0 [MQTT-1.5.4-1].
    #[rustfmt::skip]
    let bad_continuation: &[u8] = &[
        0x30, 0x04,       // PUBLISH, QoS 0; remaining length 4
        0x00, 0x02,       // topic length 2
        0xC3, 0x28,       // 0xC3 needs a continuation byte; 0x28 is not one
    ];
    assert_decode_err(V4, bad_continuation, DecodeError::InvalidUtf8, MALFORMED);
    #[rustfmt::skip]
    let surrogate: &[u8] = &[
        0x30, 0x06,       // PUBLISH, QoS 0; remaining length 6
        0x00, 0x03,       // topic length 3
        0xED, 0xA0, 0x80, // U+D800, a surrogate: MUST NOT be encoded
        0x00,             // property length 0
    ];
    assert_decode_err(V5, surrogate, DecodeError::InvalidUtf8, MALFORMED);
    #[rustfmt::skip]
    let overlong_nul: &[u8] = &[
        0x10, 0x0E,                         // CONNECT; remaining length 14
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
        0x04,                               // protocol level 4
        0x02,                               // flags: clean session
        0x00, 0x00,                         // keep alive 0
        0x00, 0x02, 0xC0, 0x80,             // client identifier: overlong encoding of U+0000
    ];
    assert_decode_err(UNKNOWN, overlong_nul, DecodeError::InvalidUtf8, MALFORMED);
    #[rustfmt::skip]
    let user_property: &[u8] = &[
        0x40, 0x0D,                   // PUBACK; remaining length 13
        0x00, 0x01,                   // packet id 1
        0x00,                         // success
        0x08,                         // property length 8
        0x26, 0x00, 0x01, b'k',       //   user property name "k"
        0x00, 0x02, 0xE2, 0x82,       //   value: a cut-off three-byte sequence
    ];
    assert_decode_err(V5, user_property, DecodeError::InvalidUtf8, MALFORMED);
}

#[test]
fn null_character_is_refused_in_strings() {
    // 3.1.1 [MQTT-1.5.3-2], 5.0 [MQTT-1.5.4-2] and [MQTT-4.7.3-2].
    #[rustfmt::skip]
    let topic: &[u8] = &[
        0x30, 0x05,             // PUBLISH, QoS 0; remaining length 5
        0x00, 0x03, b'a', 0x00, b'b', // topic "a\0b"
    ];
    assert_decode_err(V4, topic, DecodeError::NullCharacter, MALFORMED);
    #[rustfmt::skip]
    let user_name: &[u8] = &[
        0x10, 0x0F,                         // CONNECT; remaining length 15
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
        0x04,                               // protocol level 4
        0x82,                               // flags: user name, clean session
        0x00, 0x00,                         // keep alive 0
        0x00, 0x00,                         // client identifier ""
        0x00, 0x01, 0x00,                   // user name "\0"
    ];
    assert_decode_err(UNKNOWN, user_name, DecodeError::NullCharacter, MALFORMED);
}

#[test]
fn wildcards_are_refused_in_topic_names() {
    // [MQTT-3.3.2-2]; reported with 0x90 topic name invalid.
    #[rustfmt::skip]
    let plus: &[u8] = &[
        0x30, 0x05,                   // PUBLISH, QoS 0; remaining length 5
        0x00, 0x03, b'a', b'/', b'+', // topic "a/+"
    ];
    assert_decode_err(
        V4,
        plus,
        DecodeError::WildcardInTopicName,
        ReasonCode::TopicNameInvalid,
    );
    #[rustfmt::skip]
    let hash: &[u8] = &[
        0x30, 0x06,                   // PUBLISH, QoS 0; remaining length 6
        0x00, 0x03, b'a', b'/', b'#', // topic "a/#"
        0x00,                         // property length 0
    ];
    assert_decode_err(
        V5,
        hash,
        DecodeError::WildcardInTopicName,
        ReasonCode::TopicNameInvalid,
    );
}

#[test]
fn empty_topic_name_needs_a_topic_alias() {
    // [MQTT-4.7.3-1] topic names are at least one character; 5.0 lets a
    // Topic Alias stand for an empty one.
    #[rustfmt::skip]
    let v311: &[u8] = &[
        0x30, 0x02, // PUBLISH, QoS 0; remaining length 2
        0x00, 0x00, // topic ""
    ];
    assert_decode_err(V4, v311, DecodeError::EmptyTopicName, PROTOCOL_ERROR);
    #[rustfmt::skip]
    let v5_no_alias: &[u8] = &[
        0x30, 0x08,                   // PUBLISH, QoS 0; remaining length 8
        0x00, 0x00,                   // topic ""
        0x05,                         // property length 5
        0x02, 0x00, 0x00, 0x00, 0x0A, //   message expiry interval 10, but no topic alias
    ];
    assert_decode_err(V5, v5_no_alias, DecodeError::EmptyTopicName, PROTOCOL_ERROR);
}

// ---- SUBSCRIBE and UNSUBSCRIBE -------------------------------------------------------

#[test]
fn subscribe_and_unsubscribe_need_a_topic_filter() {
    let sub = DecodeError::NoTopicFilters(PacketType::Subscribe);
    let unsub = DecodeError::NoTopicFilters(PacketType::Unsubscribe);
    // A protocol violation at 3.1.1 [MQTT-3.8.3-3], a Protocol Error at 5.0
    // [MQTT-3.8.3-2].
    assert_decode_err(V4, &[0x82, 0x02, 0x00, 0x01], sub, PROTOCOL_ERROR); // packet id 1, nothing else
    assert_decode_err(V5, &[0x82, 0x03, 0x00, 0x01, 0x00], sub, PROTOCOL_ERROR); // + property length 0
    // [MQTT-3.10.3-2].
    assert_decode_err(V4, &[0xA2, 0x02, 0x00, 0x01], unsub, PROTOCOL_ERROR);
    assert_decode_err(V5, &[0xA2, 0x03, 0x00, 0x01, 0x00], unsub, PROTOCOL_ERROR);
}

#[test]
fn subscription_options_reserved_bits_qos_3_and_retain_handling_3() {
    #[rustfmt::skip]
    let v5 = |options: u8| -> Vec<u8> {
        vec![
            0x82, 0x07,       // SUBSCRIBE; remaining length 7
            0x00, 0x01,       // packet id 1
            0x00,             // property length 0
            0x00, 0x01, b'a', // topic filter "a"
            options,          //   subscription options
        ]
    };
    let invalid = |b| DecodeError::InvalidSubscriptionOptions(b);
    // [MQTT-3.8.3-5] (5.0) bits 7 and 6 are reserved.
    assert_decode_err(V5, &v5(0x40), invalid(0x40), MALFORMED);
    assert_decode_err(V5, &v5(0x81), invalid(0x81), MALFORMED);
    // Retain Handling 3 and Maximum QoS 3 are Protocol Errors (section
    // 3.8.3.1), not malformed.
    let value = |b| DecodeError::InvalidSubscriptionValue(b);
    assert_decode_err(V5, &v5(0x30), value(0x30), PROTOCOL_ERROR);
    assert_decode_err(V5, &v5(0x03), value(0x03), PROTOCOL_ERROR);
    assert_decode_err(V5, &v5(0x1B), value(0x1B), PROTOCOL_ERROR);
    // [MQTT-3-8.3-4] (3.1.1) bits 7-2 are reserved: no local does not exist.
    #[rustfmt::skip]
    let v311: &[u8] = &[
        0x82, 0x06,       // SUBSCRIBE; remaining length 6
        0x00, 0x01,       // packet id 1
        0x00, 0x01, b'a', // topic filter "a"
        0x04,             //   bit 2 set
    ];
    assert_decode_err(V4, v311, invalid(0x04), MALFORMED);
    // A QoS of 3 is malformed at 3.1.1 [MQTT-3-8.3-4].
    let mut qos3 = v311.to_vec();
    if let Some(last) = qos3.last_mut() {
        *last = 0x03;
    }
    assert_decode_err(V4, &qos3, DecodeError::InvalidQos(3), MALFORMED);
}

// ---- Reason codes ---------------------------------------------------------------------

#[test]
fn reason_codes_must_be_allowed_in_their_packet() {
    let invalid = |packet, code| DecodeError::InvalidReasonCode { packet, code };
    // [MQTT-3.4.2-1] 0x04 is a DISCONNECT code, not a PUBACK one.
    let puback: &[u8] = &[0x40, 0x03, 0x00, 0x01, 0x04]; // PUBACK, id 1, reason 0x04
    assert_decode_err(V5, puback, invalid(PacketType::PubAck, 0x04), MALFORMED);
    // [MQTT-3.6.2-1] PUBREL has only 0x00 and 0x92.
    let pubrel: &[u8] = &[0x62, 0x03, 0x00, 0x01, 0x10]; // PUBREL, id 1, reason 0x10
    assert_decode_err(V5, pubrel, invalid(PacketType::PubRel, 0x10), MALFORMED);
    // [MQTT-3.9.3-2] SUBACK: 0x03 is no reason code at all.
    #[rustfmt::skip]
    let suback_v5: &[u8] = &[
        0x90, 0x04, // SUBACK; remaining length 4
        0x00, 0x01, // packet id 1
        0x00,       // property length 0
        0x03,       // 0x03: not a code
    ];
    assert_decode_err(V5, suback_v5, invalid(PacketType::SubAck, 0x03), MALFORMED);
    // 3.1.1 [MQTT-3.9.3-2]: only 0x00, 0x01, 0x02 and 0x80.
    let suback_v4: &[u8] = &[0x90, 0x03, 0x00, 0x01, 0x03]; // SUBACK, id 1, 0x03
    assert_decode_err(V4, suback_v4, invalid(PacketType::SubAck, 0x03), MALFORMED);
    let suback_v4_5_0_code: &[u8] = &[0x90, 0x03, 0x00, 0x01, 0x87]; // SUBACK, id 1, 0x87
    assert_decode_err(
        V4,
        suback_v4_5_0_code,
        invalid(PacketType::SubAck, 0x87),
        MALFORMED,
    );
    // 3.1.1 CONNACK return codes stop at 5.
    let connack_v4: &[u8] = &[0x20, 0x02, 0x00, 0x06]; // CONNACK, return code 6
    assert_decode_err(
        V4,
        connack_v4,
        invalid(PacketType::ConnAck, 0x06),
        MALFORMED,
    );
    // [MQTT-3.2.2-8] 5.0 CONNACK: 0x04 is not a connect reason code.
    let connack_v5: &[u8] = &[0x20, 0x03, 0x00, 0x04, 0x00];
    assert_decode_err(
        V5,
        connack_v5,
        invalid(PacketType::ConnAck, 0x04),
        MALFORMED,
    );
    // [MQTT-3.11.3-2] UNSUBACK.
    let unsuback: &[u8] = &[0xB0, 0x04, 0x00, 0x01, 0x00, 0x10]; // id 1, no props, 0x10
    assert_decode_err(V5, unsuback, invalid(PacketType::UnsubAck, 0x10), MALFORMED);
    // [MQTT-3.14.2-1] DISCONNECT: 0x01 granted QoS 1 is a SUBACK code.
    let disconnect: &[u8] = &[0xE0, 0x01, 0x01];
    assert_decode_err(
        V5,
        disconnect,
        invalid(PacketType::Disconnect, 0x01),
        MALFORMED,
    );
    // [MQTT-3.15.2-1] AUTH: only 0x00, 0x18 and 0x19.
    let auth: &[u8] = &[0xF0, 0x01, 0x80];
    assert_decode_err(V5, auth, invalid(PacketType::Auth, 0x80), MALFORMED);
}

// ---- Properties ---------------------------------------------------------------------

#[test]
fn unknown_property_identifiers_are_malformed() {
    #[rustfmt::skip]
    let id_5: &[u8] = &[
        0x30, 0x08,                   // PUBLISH, QoS 0; remaining length 8
        0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
        0x02,                         // property length 2
        0x05, 0x00,                   //   identifier 0x05: not defined by 5.0
    ];
    assert_decode_err(V5, id_5, DecodeError::UnknownProperty(0x05), MALFORMED);
    #[rustfmt::skip]
    let id_256: &[u8] = &[
        0x30, 0x09,                   // PUBLISH, QoS 0; remaining length 9
        0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
        0x03,                         // property length 3
        0x80, 0x02, 0x00,             //   identifier 256 (a two-byte Variable Byte Integer)
    ];
    assert_decode_err(V5, id_256, DecodeError::UnknownProperty(256), MALFORMED);
}

#[test]
fn properties_not_allowed_in_the_packet_are_malformed() {
    let not_allowed = |packet, property| DecodeError::PropertyNotAllowed { packet, property };
    #[rustfmt::skip]
    let topic_alias_in_connect: &[u8] = &[
        0x10, 0x10,                         // CONNECT; remaining length 16
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
        0x05,                               // protocol version 5
        0x02,                               // flags: clean start
        0x00, 0x00,                         // keep alive 0
        0x03,                               // property length 3
        0x23, 0x00, 0x01,                   //   topic alias 1: a PUBLISH property
        0x00, 0x00,                         // client identifier ""
    ];
    let err = not_allowed(PacketType::Connect, 0x23);
    assert_decode_err(UNKNOWN, topic_alias_in_connect, err, MALFORMED);
    #[rustfmt::skip]
    let topic_alias_in_will: &[u8] = &[
        0x10, 0x16,                         // CONNECT; remaining length 22
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
        0x05,                               // protocol version 5
        0x06,                               // flags: will, clean start
        0x00, 0x00,                         // keep alive 0
        0x00,                               // property length 0
        0x00, 0x00,                         // client identifier ""
        0x03,                               // will property length 3
        0x23, 0x00, 0x01,                   //   topic alias 1: not a will property
        0x00, 0x01, b't',                   // will topic "t"
        0x00, 0x00,                         // will payload ""
    ];
    assert_decode_err(UNKNOWN, topic_alias_in_will, err, MALFORMED);
    #[rustfmt::skip]
    let will_delay_in_publish: &[u8] = &[
        0x30, 0x0B,                   // PUBLISH, QoS 0; remaining length 11
        0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
        0x05,                         // property length 5
        0x18, 0x00, 0x00, 0x00, 0x01, //   will delay interval 1: a will property
    ];
    let err = not_allowed(PacketType::Publish, 0x18);
    assert_decode_err(V5, will_delay_in_publish, err, MALFORMED);
    #[rustfmt::skip]
    let session_expiry_in_puback: &[u8] = &[
        0x40, 0x09,                   // PUBACK; remaining length 9
        0x00, 0x01,                   // packet id 1
        0x00,                         // success
        0x05,                         // property length 5
        0x11, 0x00, 0x00, 0x00, 0x01, //   session expiry interval 1
    ];
    let err = not_allowed(PacketType::PubAck, 0x11);
    assert_decode_err(V5, session_expiry_in_puback, err, MALFORMED);
    #[rustfmt::skip]
    let subscription_id_in_unsubscribe: &[u8] = &[
        0xA2, 0x08,       // UNSUBSCRIBE; remaining length 8
        0x00, 0x01,       // packet id 1
        0x02,             // property length 2
        0x0B, 0x01,       //   subscription identifier 1
        0x00, 0x01, b'a', // topic filter "a"
    ];
    let err = not_allowed(PacketType::Unsubscribe, 0x0B);
    assert_decode_err(V5, subscription_id_in_unsubscribe, err, MALFORMED);
}

#[test]
fn properties_that_may_appear_once_cannot_repeat() {
    #[rustfmt::skip]
    let two_expiries: &[u8] = &[
        0x30, 0x10,                   // PUBLISH, QoS 0; remaining length 16
        0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
        0x0A,                         // property length 10
        0x02, 0x00, 0x00, 0x00, 0x01, //   message expiry interval 1
        0x02, 0x00, 0x00, 0x00, 0x02, //   message expiry interval 2
    ];
    assert_decode_err(
        V5,
        two_expiries,
        DecodeError::DuplicateProperty(0x02),
        PROTOCOL_ERROR,
    );
    #[rustfmt::skip]
    let two_reason_strings: &[u8] = &[
        0x40, 0x0C,             // PUBACK; remaining length 12
        0x00, 0x01,             // packet id 1
        0x80,                   // unspecified error
        0x08,                   // property length 8
        0x1F, 0x00, 0x01, b'a', //   reason string "a"
        0x1F, 0x00, 0x01, b'b', //   reason string "b"
    ];
    assert_decode_err(
        V5,
        two_reason_strings,
        DecodeError::DuplicateProperty(0x1F),
        PROTOCOL_ERROR,
    );
    #[rustfmt::skip]
    let two_subscription_ids: &[u8] = &[
        0x82, 0x0B,       // SUBSCRIBE; remaining length 11
        0x00, 0x01,       // packet id 1
        0x04,             // property length 4
        0x0B, 0x01,       //   subscription identifier 1
        0x0B, 0x02,       //   subscription identifier 2: only one allowed in SUBSCRIBE
        0x00, 0x01, b'a', // topic filter "a"
        0x00,             //   options: QoS 0
    ];
    assert_decode_err(
        V5,
        two_subscription_ids,
        DecodeError::DuplicateProperty(0x0B),
        PROTOCOL_ERROR,
    );
}

#[test]
fn property_values_out_of_range_are_protocol_errors() {
    let invalid = |id| DecodeError::InvalidPropertyValue(id);
    #[rustfmt::skip]
    let receive_maximum_0: &[u8] = &[
        0x10, 0x10,                         // CONNECT; remaining length 16
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
        0x05, 0x02, 0x00, 0x00,             // version 5, clean start, keep alive 0
        0x03,                               // property length 3
        0x21, 0x00, 0x00,                   //   receive maximum 0
        0x00, 0x00,                         // client identifier ""
    ];
    assert_decode_err(UNKNOWN, receive_maximum_0, invalid(0x21), PROTOCOL_ERROR);
    #[rustfmt::skip]
    let request_problem_information_2: &[u8] = &[
        0x10, 0x0F,                         // CONNECT; remaining length 15
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
        0x05, 0x02, 0x00, 0x00,             // version 5, clean start, keep alive 0
        0x02,                               // property length 2
        0x17, 0x02,                         //   request problem information 2 (0 or 1)
        0x00, 0x00,                         // client identifier ""
    ];
    assert_decode_err(
        UNKNOWN,
        request_problem_information_2,
        invalid(0x17),
        PROTOCOL_ERROR,
    );
    #[rustfmt::skip]
    let topic_alias_0: &[u8] = &[
        0x30, 0x09,                   // PUBLISH, QoS 0; remaining length 9
        0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
        0x03,                         // property length 3
        0x23, 0x00, 0x00,             //   topic alias 0 [MQTT-3.3.2-8]
    ];
    assert_decode_err(V5, topic_alias_0, invalid(0x23), PROTOCOL_ERROR);
    #[rustfmt::skip]
    let payload_format_2: &[u8] = &[
        0x30, 0x08,                   // PUBLISH, QoS 0; remaining length 8
        0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
        0x02,                         // property length 2
        0x01, 0x02,                   //   payload format indicator 2 (0 or 1)
    ];
    assert_decode_err(V5, payload_format_2, invalid(0x01), PROTOCOL_ERROR);
    #[rustfmt::skip]
    let maximum_qos_2: &[u8] = &[
        0x20, 0x05, // CONNACK; remaining length 5
        0x00, 0x00, // no session, success
        0x02,       // property length 2
        0x24, 0x02, //   maximum QoS 2: only 0 or 1 may be sent
    ];
    assert_decode_err(V5, maximum_qos_2, invalid(0x24), PROTOCOL_ERROR);
    #[rustfmt::skip]
    let maximum_packet_size_0: &[u8] = &[
        0x20, 0x08,                   // CONNACK; remaining length 8
        0x00, 0x00,                   // no session, success
        0x05,                         // property length 5
        0x27, 0x00, 0x00, 0x00, 0x00, //   maximum packet size 0
    ];
    assert_decode_err(V5, maximum_packet_size_0, invalid(0x27), PROTOCOL_ERROR);
    #[rustfmt::skip]
    let retain_available_2: &[u8] = &[
        0x20, 0x05, // CONNACK; remaining length 5
        0x00, 0x00, // no session, success
        0x02,       // property length 2
        0x25, 0x02, //   retain available 2 (0 or 1)
    ];
    assert_decode_err(V5, retain_available_2, invalid(0x25), PROTOCOL_ERROR);
    #[rustfmt::skip]
    let subscription_identifier_0: &[u8] = &[
        0x82, 0x09,       // SUBSCRIBE; remaining length 9
        0x00, 0x01,       // packet id 1
        0x02,             // property length 2
        0x0B, 0x00,       //   subscription identifier 0
        0x00, 0x01, b'a', // topic filter "a"
        0x00,             //   options: QoS 0
    ];
    assert_decode_err(V5, subscription_identifier_0, invalid(0x0B), PROTOCOL_ERROR);
}

#[test]
fn authentication_data_needs_an_authentication_method() {
    #[rustfmt::skip]
    let connect: &[u8] = &[
        0x10, 0x11,                         // CONNECT; remaining length 17
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
        0x05, 0x02, 0x00, 0x00,             // version 5, clean start, keep alive 0
        0x04,                               // property length 4
        0x16, 0x00, 0x01, 0xAA,             //   authentication data AA, no method
        0x00, 0x00,                         // client identifier ""
    ];
    assert_decode_err(
        UNKNOWN,
        connect,
        DecodeError::AuthDataWithoutMethod,
        PROTOCOL_ERROR,
    );
    #[rustfmt::skip]
    let connack: &[u8] = &[
        0x20, 0x07,             // CONNACK; remaining length 7
        0x00, 0x00,             // no session, success
        0x04,                   // property length 4
        0x16, 0x00, 0x01, 0xAA, //   authentication data AA, no method
    ];
    assert_decode_err(
        V5,
        connack,
        DecodeError::AuthDataWithoutMethod,
        PROTOCOL_ERROR,
    );
    #[rustfmt::skip]
    let auth: &[u8] = &[
        0xF0, 0x06,             // AUTH; remaining length 6
        0x18,                   // continue authentication
        0x04,                   // property length 4
        0x16, 0x00, 0x01, 0xAA, //   authentication data AA, no method
    ];
    assert_decode_err(V5, auth, DecodeError::AuthDataWithoutMethod, PROTOCOL_ERROR);
}

#[test]
fn auth_needs_an_authentication_method() {
    // 5.0 section 3.15.2.2.2: "It is a Protocol Error to omit the
    // Authentication Method".
    let no_method = DecodeError::AuthWithoutMethod;
    // Continue authentication, no properties at all.
    assert_decode_err(V5, &[0xF0, 0x01, 0x18], no_method, PROTOCOL_ERROR);
    // Re-authenticate with a property length of 0.
    assert_decode_err(V5, &[0xF0, 0x02, 0x19, 0x00], no_method, PROTOCOL_ERROR);
    #[rustfmt::skip]
    let success_with_reason: &[u8] = &[
        0xF0, 0x06,             // AUTH; remaining length 6
        0x00,                   // success
        0x04,                   // property length 4
        0x1F, 0x00, 0x01, b'x', //   reason string "x", no method
    ];
    assert_decode_err(V5, success_with_reason, no_method, PROTOCOL_ERROR);
    // The short forms of a Success AUTH carry no properties, so no method
    // (3.15.2.1: the reason code and property length may be left out).
    for short in [
        &[0xF0, 0x00][..],
        &[0xF0, 0x01, 0x00],
        &[0xF0, 0x02, 0x00, 0x00],
    ] {
        let mut dec = Decoder::with_version(ProtocolVersion::V5);
        let mut buf = BytesMut::from(short);
        assert_eq!(
            dec.decode(&mut buf),
            Ok(Some(Auth::new(ReasonCode::Success).into())),
            "{short:02X?}"
        );
    }
}

#[test]
fn first_packet_must_be_connect() {
    // [MQTT-3.1.0-1].
    #[rustfmt::skip]
    let publish: &[u8] = &[
        0x30, 0x05,                   // PUBLISH, QoS 0; remaining length 5
        0x00, 0x03, b'a', b'/', b'b', // topic "a/b"
    ];
    let err = DecodeError::ExpectedConnect(PacketType::Publish);
    assert_decode_err(UNKNOWN, publish, err, PROTOCOL_ERROR);
    let err = DecodeError::ExpectedConnect(PacketType::PingReq);
    assert_decode_err(UNKNOWN, &[0xC0, 0x00], err, PROTOCOL_ERROR);
    // Known as soon as the first byte is there.
    let mut dec = Decoder::new();
    let mut buf = BytesMut::from(&[0x82][..]);
    assert_eq!(
        dec.decode(&mut buf),
        Err(DecodeError::ExpectedConnect(PacketType::Subscribe))
    );
}

#[test]
fn errors_are_sticky_even_when_valid_bytes_follow() {
    let mut dec = Decoder::with_version(ProtocolVersion::V3_1_1);
    let mut buf = BytesMut::from(&[0xC1, 0x00][..]); // PINGREQ with flags 0b0001
    let err = DecodeError::InvalidHeaderFlags {
        packet: PacketType::PingReq,
        flags: 1,
    };
    assert_eq!(dec.decode(&mut buf), Err(err));
    let mut fresh = BytesMut::from(PINGREQ);
    assert_eq!(
        dec.decode(&mut fresh),
        Err(err),
        "a new buffer does not reset the error"
    );
    assert_eq!(dec.decode(&mut fresh), Err(err));
    assert_eq!(&fresh[..], PINGREQ, "nothing is consumed after an error");
}

// ---- EncodeError ---------------------------------------------------------------------

const E3: ProtocolVersion = ProtocolVersion::V3_1;
const E4: ProtocolVersion = ProtocolVersion::V3_1_1;
const E5: ProtocolVersion = ProtocolVersion::V5;

/// Encodes `packet` at `version` into a buffer that already holds bytes,
/// checks the exact error and that the buffer is unchanged.
#[track_caller]
fn assert_encode_err(version: ProtocolVersion, packet: impl Into<Packet>, expected: EncodeError) {
    assert_encode_err_with(Encoder::new(version), packet, expected);
}

#[track_caller]
fn assert_encode_err_with(enc: Encoder, packet: impl Into<Packet>, expected: EncodeError) {
    let packet = packet.into();
    let mut dst = BytesMut::from(&b"xyz"[..]);
    assert_eq!(enc.encode(&packet, &mut dst), Err(expected), "{packet:?}");
    assert_eq!(&dst[..], b"xyz", "a failed encode must not write anything");
    // `encoded_len` knows every rule but the peer's maximum.
    if !matches!(expected, EncodeError::PacketTooLarge { .. }) {
        assert_eq!(packet.encoded_len(enc.version()), Err(expected));
    }
}

#[test]
fn encode_field_too_long() {
    // [MQTT-4.7.3-3] a topic name encodes to at most 65,535 bytes: a
    // longer one cannot be made.
    assert_eq!(
        PublishTopic::try_from("a".repeat(65_536)),
        Err(TopicError::TooLong { len: 65_536 })
    );
    let longest = PublishTopic::try_from("a".repeat(65_535)).unwrap();
    let mut dst = BytesMut::new();
    assert_eq!(
        Encoder::new(E4).encode(&Publish::new(longest, Bytes::new()).into(), &mut dst),
        Ok(65_541)
    );
    // Same for client identifiers and property strings.
    let long = Utf8Bytes::try_from("c".repeat(70_000)).unwrap();
    assert_encode_err(
        E5,
        Connect::new(E5, long.clone()),
        EncodeError::FieldTooLong(70_000),
    );
    let mut p = PubAck::new(pid(1));
    p.properties.to_mut().reason_string = Some(long);
    assert_encode_err(E5, p, EncodeError::FieldTooLong(70_000));
}

#[test]
fn encode_remaining_length_over_268_435_455() {
    // The zeroed payload is allocated lazily: no page is touched, since the
    // size is refused before anything is written.
    let topic_and_len = 5; // "a/b" with its two-byte length, QoS 0
    let max_payload = 268_435_455 - topic_and_len;
    let fits = Publish::new(PublishTopic::from_static("a/b"), vec![0u8; max_payload]);
    assert_eq!(Packet::from(fits).encoded_len(E4), Ok(268_435_460));
    let over = Publish::new(PublishTopic::from_static("a/b"), vec![0u8; max_payload + 1]);
    assert_encode_err(E4, over, EncodeError::RemainingLengthTooLarge(268_435_456));
}

/// The same limit for a 5.0 PUBLISH with a property block (its own
/// writer), and for a property set that alone is over it.
#[test]
fn encode_remaining_length_over_268_435_455_with_properties() {
    // "a/b" with its length, the Property Length and a Message Expiry
    // Interval (5 bytes): 11 bytes before the payload.
    let max_payload = 268_435_455 - 11;
    let with_props = |len: usize| {
        let mut p = Publish::new(PublishTopic::from_static("a/b"), vec![0u8; len]);
        p.properties.to_mut().message_expiry_interval = Some(60);
        p
    };
    assert_eq!(
        Packet::from(with_props(max_payload)).encoded_len(E5),
        Ok(268_435_460)
    );
    assert_encode_err(
        E5,
        with_props(max_payload + 1),
        EncodeError::RemainingLengthTooLarge(268_435_456),
    );
    // 2,049 user properties sharing one 65,535-byte string: 268,572,675
    // bytes of properties, refused without copying any.
    let long = Utf8Bytes::from_utf8(Bytes::from(vec![b'u'; 65_535])).unwrap();
    let mut p = Publish::new(PublishTopic::from_static("a/b"), Bytes::new());
    for _ in 0..2_049 {
        p.properties
            .to_mut()
            .user_properties
            .push(mqtt_codec::UserProperty::new(long.clone(), long.clone()));
    }
    assert_encode_err(
        E5,
        p,
        EncodeError::RemainingLengthTooLarge(2_049 * (5 + 2 * 65_535)),
    );
}

/// The same limit for SUBSCRIBE and UNSUBSCRIBE: 4,096 filters sharing
/// one 65,535-byte string are refused from their lengths alone (no filter
/// is checked, nothing is copied), with the size the packet would have.
#[test]
fn encode_remaining_length_over_268_435_455_in_filter_lists() {
    let long = Utf8Bytes::from_utf8(Bytes::from(vec![b'f'; 65_535])).unwrap();
    let mut sub = Subscribe::new(pid(1), long.clone(), SubscriptionOptions::default());
    let first = sub.filters[0].clone();
    sub.filters.resize(4_096, first);
    let unsub = Unsubscribe::new(pid(1), vec![long; 4_096]);
    // Packet identifier, then each filter with its length (and options).
    assert_encode_err(
        E4,
        sub.clone(),
        EncodeError::RemainingLengthTooLarge(2 + 4_096 * 65_538),
    );
    // One more byte at 5.0: the empty property block.
    assert_encode_err(
        E5,
        sub.clone(),
        EncodeError::RemainingLengthTooLarge(3 + 4_096 * 65_538),
    );
    assert_encode_err(
        E4,
        unsub.clone(),
        EncodeError::RemainingLengthTooLarge(2 + 4_096 * 65_537),
    );
    // One filter fewer fits.
    sub.filters.truncate(4_095);
    assert_eq!(
        Packet::from(sub).encoded_len(E4),
        Ok(1 + 4 + 2 + 4_095 * 65_538)
    );
}

#[test]
fn encode_packet_too_large_for_the_peer_maximum_with_properties() {
    // PUBLISH "a/b" "hi" at 5.0 with a Message Expiry Interval: 2 + 5
    // (topic) + 1 + 5 (property block) + 2 = 15 bytes.
    let mut p = Publish::new(PublishTopic::from_static("a/b"), &b"hi"[..]);
    p.properties.to_mut().message_expiry_interval = Some(60);
    let mut enc = Encoder::new(E5);
    enc.set_max_packet_size(NonZeroU32::new(14));
    assert_encode_err_with(
        enc,
        p.clone(),
        EncodeError::PacketTooLarge { size: 15, max: 14 },
    );
    let mut head = BytesMut::from(&b"xyz"[..]);
    assert_eq!(
        enc.encode_publish_head(&p, &mut head),
        Err(EncodeError::PacketTooLarge { size: 15, max: 14 })
    );
    assert_eq!(&head[..], b"xyz");
    enc.set_max_packet_size(NonZeroU32::new(15));
    let mut dst = BytesMut::new();
    assert_eq!(enc.encode(&p.into(), &mut dst), Ok(15));
}

#[test]
fn encode_packet_too_large_for_the_peer_maximum() {
    // PUBLISH "a/b" "hi" at 3.1.1 is 9 bytes.
    let p = Publish::new(PublishTopic::from_static("a/b"), &b"hi"[..]);
    let mut enc = Encoder::new(E4);
    enc.set_max_packet_size(NonZeroU32::new(8));
    assert_encode_err_with(
        enc,
        p.clone(),
        EncodeError::PacketTooLarge { size: 9, max: 8 },
    );
    let mut head = BytesMut::from(&b"xyz"[..]);
    assert_eq!(
        enc.encode_publish_head(&p, &mut head),
        Err(EncodeError::PacketTooLarge { size: 9, max: 8 })
    );
    assert_eq!(&head[..], b"xyz");
    enc.set_max_packet_size(NonZeroU32::new(9));
    let mut dst = BytesMut::new();
    assert_eq!(enc.encode(&p.into(), &mut dst), Ok(9));
}

#[test]
fn encode_5_0_only_fields_at_3_1_1() {
    let not_in = |field| EncodeError::NotInVersion { field, version: E4 };
    let mut p = Publish::new(PublishTopic::from_static("a/b"), Bytes::new());
    p.properties.to_mut().message_expiry_interval = Some(10);
    assert_encode_err(E4, p, not_in("properties"));
    let mut c = Connect::new(E4, s("c"));
    c.properties.session_expiry_interval = Some(10);
    assert_encode_err(E4, c, not_in("properties"));
    assert_encode_err(E4, Auth::new(ReasonCode::Success), not_in("AUTH"));
    let options = SubscriptionOptions {
        no_local: true,
        ..SubscriptionOptions::new(QoS::AtLeastOnce)
    };
    assert_encode_err(
        E4,
        Subscribe::new(pid(1), s("a"), options),
        not_in("subscription options"),
    );
    let options = SubscriptionOptions {
        retain_handling: mqtt_codec::RetainHandling::DoNotSend,
        ..SubscriptionOptions::default()
    };
    assert_encode_err(
        E4,
        Subscribe::new(pid(1), s("a"), options),
        not_in("subscription options"),
    );
    let puback = PubAck {
        reason: ReasonCode::NoMatchingSubscribers,
        ..PubAck::new(pid(1))
    };
    assert_encode_err(E4, puback, not_in("reason code"));
    let disconnect = Disconnect::new(ReasonCode::ServerShuttingDown);
    assert_encode_err(E4, disconnect, not_in("reason code or properties"));
    assert_encode_err(
        E4,
        ConnAck::new(ReasonCode::Banned),
        not_in("CONNACK reason code"),
    );
    // And at 3.1 too.
    let auth = EncodeError::NotInVersion {
        field: "AUTH",
        version: E3,
    };
    assert_encode_err(E3, Auth::new(ReasonCode::Success), auth);
}

#[test]
fn encode_packet_id_must_match_qos() {
    // [MQTT-2.2.1-2] no packet id at QoS 0; one at QoS 1 and 2.
    let mut qos0 = Publish::new(PublishTopic::from_static("a/b"), Bytes::new());
    qos0.packet_id = Some(pid(1));
    assert_encode_err(E5, qos0, EncodeError::PacketIdMismatch);
    let mut qos1 = Publish::new(PublishTopic::from_static("a/b"), Bytes::new());
    qos1.qos = QoS::AtLeastOnce;
    assert_encode_err(E4, qos1.clone(), EncodeError::PacketIdMismatch);
    qos1.qos = QoS::ExactlyOnce;
    assert_encode_err(E4, qos1, EncodeError::PacketIdMismatch);
}

#[test]
fn encode_dup_on_qos0() {
    let mut p = Publish::new(PublishTopic::from_static("a/b"), Bytes::new());
    p.dup = true;
    assert_encode_err(E4, p, EncodeError::DupOnQos0);
}

#[test]
fn encode_subscribe_and_unsubscribe_without_filters() {
    let mut sub = Subscribe::new(pid(1), s("a"), SubscriptionOptions::default());
    sub.filters.clear();
    assert_encode_err(E4, sub, EncodeError::NoTopicFilters);
    assert_encode_err(
        E5,
        Unsubscribe::new(pid(1), vec![]),
        EncodeError::NoTopicFilters,
    );
}

#[test]
fn encode_reason_code_not_allowed_in_the_packet() {
    let invalid = |packet, code| EncodeError::InvalidReasonCode { packet, code };
    let puback = PubAck {
        reason: ReasonCode::GrantedQoS1,
        ..PubAck::new(pid(1))
    };
    assert_encode_err(E5, puback, invalid(PacketType::PubAck, 0x01));
    let pubrel = PubRel {
        reason: ReasonCode::UnspecifiedError,
        ..PubRel::new(pid(1))
    };
    assert_encode_err(E5, pubrel, invalid(PacketType::PubRel, 0x80));
    let suback = SubAck::new(pid(1), vec![ReasonCode::NoMatchingSubscribers]);
    assert_encode_err(E5, suback.clone(), invalid(PacketType::SubAck, 0x10));
    assert_encode_err(E4, suback, invalid(PacketType::SubAck, 0x10));
    assert_encode_err(
        E5,
        ConnAck::new(ReasonCode::GrantedQoS1),
        invalid(PacketType::ConnAck, 0x01),
    );
    let disconnect = Disconnect::new(ReasonCode::ContinueAuthentication);
    assert_encode_err(E5, disconnect, invalid(PacketType::Disconnect, 0x18));
    assert_encode_err(
        E5,
        Auth::new(ReasonCode::UnspecifiedError),
        invalid(PacketType::Auth, 0x80),
    );
}

#[test]
fn encode_invalid_topic_names() {
    // [MQTT-4.7.0-1] no wildcards: such a topic cannot be made, so no
    // PUBLISH or will carries one.
    for topic in ["a/+", "a/#", "+", "#"] {
        assert_eq!(
            PublishTopic::try_from(topic),
            Err(TopicError::WildcardInName)
        );
        assert_eq!(TopicName::try_from(topic), Err(TopicError::WildcardInName));
    }
    // Empty, without a topic alias.
    let empty = Publish::new(PublishTopic::from_static(""), Bytes::new());
    assert_encode_err(E4, empty.clone(), EncodeError::InvalidTopicName);
    assert_encode_err(E5, empty.clone(), EncodeError::InvalidTopicName);
    // A topic alias does not make an empty topic valid at 3.1.1, where
    // properties do not exist.
    let mut aliased = empty;
    aliased.properties.to_mut().topic_alias = NonZeroU16::new(1);
    let not_in = EncodeError::NotInVersion {
        field: "properties",
        version: E4,
    };
    assert_encode_err(E4, aliased, not_in);
}

#[test]
fn encode_authentication_data_without_method() {
    let data = Some(Bytes::from_static(&[0xAA]));
    let mut c = Connect::new(E5, s("c"));
    c.properties.authentication_data = data.clone();
    assert_encode_err(E5, c, EncodeError::AuthDataWithoutMethod);
    let mut ack = ConnAck::new(ReasonCode::Success);
    ack.properties.authentication_data = data.clone();
    assert_encode_err(E5, ack, EncodeError::AuthDataWithoutMethod);
    let mut auth = Auth::new(ReasonCode::ContinueAuthentication);
    auth.properties.to_mut().authentication_data = data;
    assert_encode_err(E5, auth, EncodeError::AuthDataWithoutMethod);
}

#[test]
fn encode_auth_without_method() {
    for reason in [
        ReasonCode::ContinueAuthentication,
        ReasonCode::ReAuthenticate,
    ] {
        assert_encode_err(E5, Auth::new(reason), EncodeError::AuthWithoutMethod);
    }
    let mut reason_only = Auth::new(ReasonCode::Success);
    reason_only.properties.to_mut().reason_string = Some(s("x"));
    assert_encode_err(E5, reason_only, EncodeError::AuthWithoutMethod);
    // The short Success AUTH is two bytes.
    let mut dst = BytesMut::new();
    let auth = Auth::new(ReasonCode::Success).into();
    assert_eq!(Encoder::new(E5).encode(&auth, &mut dst), Ok(2));
    let mut with_method = Auth::new(ReasonCode::ContinueAuthentication);
    with_method.properties.to_mut().authentication_method = Some(s("SCRAM-SHA-1"));
    assert!(
        Encoder::new(E5)
            .encode(&with_method.into(), &mut dst)
            .is_ok()
    );
}

#[test]
fn encode_maximum_qos_2() {
    // 5.0 section 3.2.2.3.4: Maximum QoS is 0 or 1; a server that supports
    // QoS 2 leaves it out.
    let mut ack = ConnAck::new(ReasonCode::Success);
    ack.properties.maximum_qos = Some(QoS::ExactlyOnce);
    assert_encode_err(E5, ack.clone(), EncodeError::InvalidPropertyValue(0x24));
    ack.properties.maximum_qos = Some(QoS::AtLeastOnce);
    let mut dst = BytesMut::new();
    assert!(Encoder::new(E5).encode(&ack.into(), &mut dst).is_ok());
}

#[test]
fn encode_invalid_topic_filters() {
    let options = SubscriptionOptions::default;
    let bad = [
        ("sport/#/ranking", TopicError::MultiLevelNotLast),
        ("", TopicError::Empty),
        ("a+/b", TopicError::SingleLevelNotAlone),
        ("$share//a", TopicError::EmptyShareName),
        ("$share/g", TopicError::MissingSharedFilter),
    ];
    for (filter, e) in bad {
        for version in [E4, E5] {
            let sub = Subscribe::new(pid(1), s(filter), options());
            assert_encode_err(version, sub, EncodeError::InvalidTopicFilter(e));
            let unsub = Unsubscribe::new(pid(1), vec![s("ok"), s(filter)]);
            assert_encode_err(version, unsub, EncodeError::InvalidTopicFilter(e));
        }
    }
    // [MQTT-3.8.3-4] No Local on a shared subscription.
    let mut no_local = SubscriptionOptions::new(QoS::AtMostOnce);
    no_local.no_local = true;
    let shared = Subscribe::new(pid(1), s("$share/g/a"), no_local);
    assert_encode_err(E5, shared, EncodeError::NoLocalOnSharedSubscription);
    // Valid filters are written, shared ones and No Local alone too.
    let mut dst = BytesMut::new();
    for (filter, o) in [("$share/g/a/#", options()), ("a/+/#", no_local)] {
        let sub = Subscribe::new(pid(1), s(filter), o);
        assert!(
            Encoder::new(E5).encode(&sub.into(), &mut dst).is_ok(),
            "{filter}"
        );
    }
}

#[test]
fn encode_empty_client_id_before_5_0() {
    // 3.1.1 [MQTT-3.1.3-7]: a zero-byte ClientId needs Clean Session.
    let mut c = Connect::new(E4, s(""));
    c.clean_start = false;
    assert_encode_err(E4, c.clone(), EncodeError::EmptyClientId);
    c.clean_start = true;
    let mut dst = BytesMut::new();
    assert!(Encoder::new(E4).encode(&c.into(), &mut dst).is_ok());
    // 3.1 requires 1 to 23 characters.
    assert_encode_err(E3, Connect::new(E3, s("")), EncodeError::EmptyClientId);
}

#[test]
fn encode_password_without_user_name_before_5_0() {
    // 3.1.1 [MQTT-3.1.2-22].
    for version in [E3, E4] {
        let mut c = Connect::new(version, s("c"));
        c.password = Some(Bytes::from_static(b"pw"));
        assert_encode_err(version, c, EncodeError::PasswordWithoutUsername);
    }
    // 5.0 writes it.
    let mut c = Connect::new(E5, s(""));
    c.keep_alive = 0;
    c.password = Some(Bytes::from_static(b"pw"));
    let mut dst = BytesMut::new();
    assert_eq!(Encoder::new(E5).encode(&c.into(), &mut dst), Ok(19));
    assert_eq!(
        dst[9], 0x42,
        "flags: password and clean start, no user name"
    );
}

#[test]
fn encode_to_a_slice_too_small() {
    #[rustfmt::skip]
    const PUBACK: &[u8] = &[
        0x40, 0x02, // PUBACK; remaining length 2
        0x00, 0x07, // packet id 7
    ];
    let packet: Packet = PubAck::new(pid(7)).into();
    let enc = Encoder::new(E4);

    let mut small = [0xEEu8; 3];
    let mut dst: &mut [u8] = &mut small;
    assert_eq!(
        enc.encode_to(&packet, &mut dst),
        Err(EncodeError::BufferTooSmall {
            needed: 4,
            available: 3
        })
    );
    assert_eq!(small, [0xEE; 3], "nothing written");

    let mut exact = [0u8; 4];
    let mut dst: &mut [u8] = &mut exact;
    assert_eq!(enc.encode_to(&packet, &mut dst), Ok(4));
    assert_eq!(&exact[..], PUBACK);
}

/// The writers store some fields as whole words that the next field
/// overwrites (an inline string as 24 bytes, a PUBLISH head as 8): into a
/// slice with room to spare, none of that reaches past the packet.
#[test]
fn encode_to_a_slice_leaves_the_bytes_after_the_packet_alone() {
    let mut d = Disconnect::new(ReasonCode::ServerShuttingDown);
    d.properties.to_mut().reason_string = Some(s("bye"));
    let mut p = Publish::new(PublishTopic::from_static("a/b"), &b"x"[..]);
    p.properties.to_mut().content_type = Some(s("t"));
    for packet in [Packet::from(d), Packet::from(p)] {
        let mut out = [0xEEu8; 64];
        let mut dst: &mut [u8] = &mut out;
        let n = Encoder::new(E5).encode_to(&packet, &mut dst).unwrap();
        assert!(
            out[n..].iter().all(|&b| b == 0xEE),
            "{packet:?} is {n} bytes, but bytes after it changed: {:02X?}",
            &out[n..]
        );
    }
}

#[test]
fn encode_publish_head_then_payload_equals_encode() {
    let mut p = Publish::new(PublishTopic::from_static("t"), vec![7u8; 300]);
    p.qos = QoS::ExactlyOnce;
    p.packet_id = Some(pid(9));
    for version in [E4, E5] {
        if version == E5 {
            p.properties.to_mut().user_properties = vec![user("k", "v")].into();
        }
        let mut whole = BytesMut::new();
        let n = Encoder::new(version)
            .encode(&p.clone().into(), &mut whole)
            .unwrap();
        let mut head = BytesMut::new();
        let total = Encoder::new(version)
            .encode_publish_head(&p, &mut head)
            .unwrap();
        assert_eq!(total, n);
        assert_eq!(head.len(), n - 300);
        head.extend_from_slice(&p.payload);
        assert_eq!(head, whole);
    }
    // A head that cannot be encoded (an empty topic without an alias)
    // writes nothing.
    let mut bad = Publish::new(PublishTopic::empty(), &b"x"[..]);
    bad.retain = true;
    let mut head = BytesMut::from(&b"xyz"[..]);
    assert_eq!(
        Encoder::new(E4).encode_publish_head(&bad, &mut head),
        Err(EncodeError::InvalidTopicName)
    );
    assert_eq!(&head[..], b"xyz");
}

#[test]
fn will_topic_with_a_wildcard_is_refused() {
    // The will topic is a topic name: 3.1.1 [MQTT-4.7.1-1], 5.0 [MQTT-4.7.0-1].
    #[rustfmt::skip]
    let vector: &[u8] = &[
        0x10, 0x13,                         // CONNECT; remaining length 19
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
        0x04,                               // protocol level 4
        0x06,                               // flags: will, clean session
        0x00, 0x00,                         // keep alive 0
        0x00, 0x00,                         // client identifier ""
        0x00, 0x03, b'a', b'/', b'#',       // will topic "a/#"
        0x00, 0x00,                         // will message ""
    ];
    assert_decode_err(
        UNKNOWN,
        vector,
        DecodeError::WildcardInTopicName,
        ReasonCode::TopicNameInvalid,
    );
}

#[test]
fn empty_will_topic_is_refused() {
    // [MQTT-4.7.3-1]
    #[rustfmt::skip]
    let vector: &[u8] = &[
        0x10, 0x10,                         // CONNECT; remaining length 16
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
        0x04, 0x06, 0x00, 0x00,             // level 4; will, clean session; keep alive 0
        0x00, 0x00,                         // client identifier ""
        0x00, 0x00,                         // will topic ""
        0x00, 0x00,                         // will message ""
    ];
    assert_decode_err(UNKNOWN, vector, DecodeError::EmptyTopicName, PROTOCOL_ERROR);
}

#[test]
fn response_topic_with_a_wildcard_is_refused() {
    // [MQTT-3.3.2-14]
    #[rustfmt::skip]
    let vector: &[u8] = &[
        0x30, 0x0D,                         // PUBLISH QoS 0; remaining length 13
        0x00, 0x03, b'a', b'/', b'b',       // topic "a/b"
        0x07,                               // property length 7
        0x08, 0x00, 0x04, b'r', b'/', b'#', b'x', // response topic "r/#x"
    ];
    assert_decode_err(
        V5,
        vector,
        DecodeError::InvalidPropertyValue(0x08),
        PROTOCOL_ERROR,
    );
}

#[test]
fn encoder_refuses_a_will_whose_response_topic_has_a_wildcard() {
    // The will topic itself is a `TopicName`, which cannot hold one.
    assert_eq!(TopicName::try_from("a/+"), Err(TopicError::WildcardInName));
    let mut will = mqtt_codec::Will::new(TopicName::from_static("a/b").unwrap(), Bytes::new());
    will.properties.response_topic = Some(s("r/#"));
    let mut c = Connect::new(E5, s("c"));
    c.will = Some(will);
    assert_encode_err(E5, c, EncodeError::InvalidTopicName);
}
