//! Helpers shared by the hand-written specification vectors.
//!
//! Every vector in `vectors_v3.rs`, `vectors_v5.rs` and `errors.rs` is
//! written out by hand from the MQTT 3.1.1 and 5.0 specifications; these
//! helpers only drive the public API over them.
#![allow(dead_code)] // each test crate uses a part of the helpers
#![allow(clippy::expect_used, clippy::panic)] // test helpers

use bytes::BytesMut;
use mqtt_codec::{
    DecodeError, Decoder, Encoder, Packet, PacketId, ProtocolVersion, SubscriptionId, UserProperty,
    Utf8Bytes,
};

/// A PINGREQ, appended after every valid vector to prove that framing stops
/// at the vector's last byte.
pub(crate) const PINGREQ: &[u8] = &[0xC0, 0x00];

/// A string from a literal.
pub(crate) fn s(v: &'static str) -> Utf8Bytes {
    Utf8Bytes::from_static(v)
}

/// A non-zero packet identifier.
pub(crate) fn pid(n: u16) -> PacketId {
    PacketId::new(n).expect("non-zero packet id")
}

/// A subscription identifier.
pub(crate) fn sub_id(n: u32) -> SubscriptionId {
    SubscriptionId::new(n).expect("valid subscription id")
}

/// A user property.
pub(crate) fn user(name: &'static str, value: &'static str) -> UserProperty {
    UserProperty::new(s(name), s(value))
}

/// Decodes `vector` followed by a PINGREQ with a decoder of known `version`:
/// the vector must come out as exactly one packet, leaving the PINGREQ, which
/// must decode too.
pub(crate) fn decode_framed(version: ProtocolVersion, vector: &[u8]) -> Packet {
    let mut dec = Decoder::with_version(version);
    let mut buf = BytesMut::from(vector);
    buf.extend_from_slice(PINGREQ);
    let packet = match dec.decode(&mut buf) {
        Ok(Some(p)) => p,
        other => panic!("vector {vector:02X?} did not decode: {other:?}"),
    };
    assert_eq!(
        &buf[..],
        PINGREQ,
        "framing did not stop at the end of the vector"
    );
    assert_eq!(dec.decode(&mut buf), Ok(Some(Packet::PingReq)));
    assert!(buf.is_empty());
    assert_eq!(dec.decode(&mut buf), Ok(None));
    packet
}

/// Encodes `packet` at `version` into a fresh buffer.
pub(crate) fn encode(version: ProtocolVersion, packet: &Packet) -> BytesMut {
    let mut buf = BytesMut::new();
    let n = Encoder::new(version)
        .encode(packet, &mut buf)
        .unwrap_or_else(|e| panic!("{packet:?} did not encode: {e}"));
    assert_eq!(n, buf.len(), "encode returned a wrong size");
    buf
}

/// Feeds `vector` one byte at a time: `Ok(None)` with nothing consumed until
/// the last byte, then exactly `expected`.
pub(crate) fn assert_byte_at_a_time(version: ProtocolVersion, vector: &[u8], expected: &Packet) {
    let mut dec = Decoder::with_version(version);
    let mut buf = BytesMut::new();
    for (n, &byte) in vector.iter().enumerate() {
        buf.extend_from_slice(&[byte]);
        let got = dec
            .decode(&mut buf)
            .unwrap_or_else(|e| panic!("byte {n}: {e}"));
        if n + 1 < vector.len() {
            assert_eq!(
                got,
                None,
                "a packet came out after {} of {} bytes",
                n + 1,
                vector.len()
            );
            assert_eq!(
                buf.len(),
                n + 1,
                "bytes were consumed before the packet was whole"
            );
        } else {
            assert_eq!(got.as_ref(), Some(expected));
            assert!(buf.is_empty(), "the whole frame must be consumed");
        }
    }
}

/// The full check of a valid, canonical vector: it decodes (framed) to
/// `expected`, byte by byte too, and `expected` encodes back to exactly the
/// vector.
pub(crate) fn assert_vector(version: ProtocolVersion, vector: &[u8], expected: &Packet) {
    assert_eq!(
        &decode_framed(version, vector),
        expected,
        "decoded packet differs"
    );
    assert_byte_at_a_time(version, vector, expected);
    assert_eq!(
        &encode(version, expected)[..],
        vector,
        "encoding is not the vector"
    );
    assert_eq!(expected.encoded_len(version), Ok(vector.len()));
}

/// Decodes `bytes` (with a PINGREQ after them) with a decoder of `version`
/// (`None`: version not known yet) and returns the error it must give.
pub(crate) fn decode_err(version: Option<ProtocolVersion>, bytes: &[u8]) -> DecodeError {
    let mut dec = match version {
        Some(v) => Decoder::with_version(v),
        None => Decoder::new(),
    };
    let mut buf = BytesMut::from(bytes);
    buf.extend_from_slice(PINGREQ);
    match dec.decode(&mut buf) {
        Err(e) => e,
        Ok(p) => panic!("{bytes:02X?} decoded as {p:?}, expected an error"),
    }
}
