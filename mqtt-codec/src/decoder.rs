//! Streaming decoder over a `BytesMut`.

use std::num::NonZeroU32;

use bytes::{Buf, BytesMut};

use crate::error::DecodeError;
use crate::packet::{Packet, Publish};
use crate::primitives::read_varint;
use crate::types::{PacketType, ProtocolVersion, QoS};

/// The largest packet MQTT can express: a 1-byte header, a 4-byte Remaining
/// Length and 268,435,455 bytes of body.
pub const MAX_PACKET_SIZE: u32 = 268_435_460;

/// However large a frame claims to be, the decoder reserves buffer space for
/// at most this much of it ahead of the bytes that actually arrive, so a peer
/// cannot make it allocate a whole Maximum Packet Size with five bytes.
const DEFAULT_MAX: NonZeroU32 = match NonZeroU32::new(MAX_PACKET_SIZE) {
    Some(n) => n,
    None => NonZeroU32::MAX,
};

const MAX_RESERVE_AHEAD: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
enum State {
    /// Waiting for a complete fixed header.
    Header,
    /// A valid fixed header was seen; waiting for `total` bytes.
    Body {
        ty: PacketType,
        flags: u8,
        header_len: usize,
        total: usize,
    },
}

/// A streaming MQTT decoder.
///
/// Feed it the bytes read from a connection in a [`BytesMut`]; each call to
/// [`decode`](Self::decode) takes at most one whole packet off the front.
///
/// - Partial input returns `Ok(None)` and consumes nothing, whatever the
///   chunking: byte by byte or all at once gives the same packets.
/// - A frame larger than the maximum packet size is rejected from its fixed
///   header, before its body is buffered.
/// - Payloads, topics and binary properties are slices of the received
///   frame: decoding copies nothing.
/// - Errors are sticky: after one, every call returns it again, since the
///   stream can no longer be framed.
///
/// A decoder made with [`new`](Self::new) does not know the protocol version
/// yet; it accepts only CONNECT and learns the version from it (the server
/// side). A client uses [`with_version`](Self::with_version).
///
/// ```
/// use bytes::BytesMut;
/// use mqtt_codec::{Decoder, Packet, ProtocolVersion};
///
/// let mut dec = Decoder::with_version(ProtocolVersion::V3_1_1);
/// // PUBLISH QoS 0, topic "a/b", payload "hi", then half of a PINGREQ.
/// let mut buf = BytesMut::from(&b"\x30\x07\x00\x03a/bhi\xC0"[..]);
/// let Some(Packet::Publish(p)) = dec.decode(&mut buf)? else { panic!() };
/// assert_eq!((&*p.topic, &p.payload[..]), ("a/b", &b"hi"[..]));
/// assert_eq!(dec.decode(&mut buf)?, None);
/// buf.extend_from_slice(b"\x00");
/// assert_eq!(dec.decode(&mut buf)?, Some(Packet::PingReq));
/// # Ok::<(), mqtt_codec::DecodeError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Decoder {
    version: Option<ProtocolVersion>,
    max_packet_size: NonZeroU32,
    state: State,
    error: Option<DecodeError>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder that expects CONNECT first and takes its version from it.
    /// The maximum packet size is [`MAX_PACKET_SIZE`].
    pub fn new() -> Self {
        Self {
            version: None,
            max_packet_size: DEFAULT_MAX,
            state: State::Header,
            error: None,
        }
    }

    /// A decoder for a connection of known version.
    pub fn with_version(version: ProtocolVersion) -> Self {
        let mut d = Self::new();
        d.version = Some(version);
        d
    }

    /// Sets the largest packet accepted, fixed header included (the Maximum
    /// Packet Size this side announced). Default: [`MAX_PACKET_SIZE`].
    pub fn set_max_packet_size(&mut self, max: NonZeroU32) -> &mut Self {
        self.max_packet_size = max;
        self
    }

    /// The largest packet accepted.
    pub fn max_packet_size(&self) -> NonZeroU32 {
        self.max_packet_size
    }

    /// Sets the protocol version of the connection.
    pub fn set_version(&mut self, version: ProtocolVersion) -> &mut Self {
        self.version = Some(version);
        self
    }

    /// The protocol version, once known.
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// Takes the next whole packet off the front of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` does not hold a whole packet yet, with
    /// nothing consumed and room reserved for more of it.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] when the bytes are not a valid packet; the
    /// connection should then be closed (see [`DecodeError::reason_code`]).
    #[inline]
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let r = self.decode_inner(buf);
        if let Err(e) = r {
            self.error = Some(e);
        }
        r
    }

    #[inline]
    fn decode_inner(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let (ty, flags, header_len, total) = match self.state {
            State::Body {
                ty,
                flags,
                header_len,
                total,
            } => (ty, flags, header_len, total),
            State::Header => match self.decode_header(buf)? {
                Some(h) => h,
                None => {
                    buf.reserve(5);
                    return Ok(None);
                }
            },
        };
        if buf.len() < total {
            self.state = State::Body {
                ty,
                flags,
                header_len,
                total,
            };
            buf.reserve((total - buf.len()).min(MAX_RESERVE_AHEAD));
            return Ok(None);
        }
        self.state = State::Header;
        let version = self.version.unwrap_or(ProtocolVersion::V5);
        if Packet::has_short_body(ty, total.saturating_sub(header_len)) {
            let r = match buf.get(header_len..total) {
                Some(body) => Packet::parse_short(body, ty, version),
                None => Err(DecodeError::UnexpectedEnd),
            };
            buf.advance(total);
            return r.map(Some);
        }
        let frame = buf.split_to(total).freeze();
        if ty == PacketType::Publish {
            return Publish::parse(frame, header_len, version, flags);
        }
        let packet = Packet::parse(frame, header_len, ty, version)?;
        if let (None, Packet::Connect(c)) = (self.version, &packet) {
            self.version = Some(c.protocol);
        }
        Ok(Some(packet))
    }

    /// Parses and checks a fixed header: `(type, flags, header length, total
    /// length)`, or `None` if it is not complete.
    fn decode_header(
        &self,
        buf: &[u8],
    ) -> Result<Option<(PacketType, u8, usize, usize)>, DecodeError> {
        let Some((&first, rest)) = buf.split_first() else {
            return Ok(None);
        };
        let nibble = first >> 4;
        let flags = first & 0x0F;
        let ty = PacketType::from_nibble(nibble).ok_or(DecodeError::InvalidPacketType(nibble))?;
        match self.version {
            None if ty != PacketType::Connect => return Err(DecodeError::ExpectedConnect(ty)),
            Some(v) if ty == PacketType::Auth && !v.is_v5() => {
                return Err(DecodeError::InvalidPacketType(nibble));
            }
            _ => {}
        }
        if ty == PacketType::Publish {
            QoS::try_from((flags >> 1) & 0x03)?;
        } else if flags != ty.required_flags() {
            return Err(DecodeError::InvalidHeaderFlags { packet: ty, flags });
        }
        let Some((len, n)) = read_varint(rest)? else {
            return Ok(None);
        };
        let header_len = 1 + n;
        let size = header_len as u64 + u64::from(len);
        if size > u64::from(self.max_packet_size.get()) {
            return Err(DecodeError::PacketTooLarge {
                size,
                max: self.max_packet_size.get(),
            });
        }
        Ok(Some((ty, flags, header_len, header_len + len as usize)))
    }
}
