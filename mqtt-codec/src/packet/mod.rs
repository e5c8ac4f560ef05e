//! The packet model: one type for every version.

pub(crate) mod ack;
pub(crate) mod connack;
pub(crate) mod connect;
pub(crate) mod disconnect;
pub(crate) mod publish;
pub(crate) mod subscribe;
pub(crate) mod unsubscribe;

use bytes::{BufMut, Bytes};

use crate::error::{DecodeError, EncodeError};
use crate::primitives::{PResult, VARINT_MAX, fail, put_varint, varint_len};
use crate::properties::check_auth;
use crate::reason::ReasonCode;
use crate::types::{PacketId, PacketType, ProtocolVersion};

pub use ack::{PubAck, PubComp, PubRec, PubRel};
pub use connack::ConnAck;
pub use connect::{Connect, Will};
pub use disconnect::{Auth, Disconnect};
pub use publish::Publish;
pub use subscribe::{SubAck, Subscribe, SubscribeFilter, SubscriptionOptions};
pub use unsubscribe::{UnsubAck, Unsubscribe};

/// Size of a packet whose body is `remaining` bytes.
pub(crate) fn total_len(remaining: usize) -> Result<usize, EncodeError> {
    if remaining > VARINT_MAX as usize {
        return Err(EncodeError::RemainingLengthTooLarge(remaining));
    }
    Ok(1 + varint_len(remaining) + remaining)
}

/// An MQTT control packet of any version.
///
/// MQTT 5.0 is the superset: at 3.1 and 3.1.1 properties are empty and
/// reason codes are success (or the mapped 3.1.1 return codes), so one model
/// serves every version and a broker forwards a 3.1.1 PUBLISH to a 5.0
/// subscriber without conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// CONNECT.
    Connect(Box<Connect>),
    /// CONNACK.
    ConnAck(Box<ConnAck>),
    /// PUBLISH.
    Publish(Publish),
    /// PUBACK.
    PubAck(PubAck),
    /// PUBREC.
    PubRec(PubRec),
    /// PUBREL.
    PubRel(PubRel),
    /// PUBCOMP.
    PubComp(PubComp),
    /// SUBSCRIBE.
    Subscribe(Subscribe),
    /// SUBACK.
    SubAck(SubAck),
    /// UNSUBSCRIBE.
    Unsubscribe(Unsubscribe),
    /// UNSUBACK.
    UnsubAck(UnsubAck),
    /// PINGREQ.
    PingReq,
    /// PINGRESP.
    PingResp,
    /// DISCONNECT.
    Disconnect(Disconnect),
    /// AUTH (MQTT 5.0).
    Auth(Auth),
}

macro_rules! from_impls {
    ($($variant:ident($ty:ty) $(=> $wrap:path)?;)*) => {$(
        impl From<$ty> for Packet {
            fn from(p: $ty) -> Self {
                Packet::$variant($($wrap)?(p))
            }
        }
    )*};
}

from_impls! {
    Connect(Connect) => Box::new;
    ConnAck(ConnAck) => Box::new;
    Publish(Publish);
    PubAck(PubAck);
    PubRec(PubRec);
    PubRel(PubRel);
    PubComp(PubComp);
    Subscribe(Subscribe);
    SubAck(SubAck);
    Unsubscribe(Unsubscribe);
    UnsubAck(UnsubAck);
    Disconnect(Disconnect);
    Auth(Auth);
}

impl Packet {
    /// The packet's type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Self::Connect(_) => PacketType::Connect,
            Self::ConnAck(_) => PacketType::ConnAck,
            Self::Publish(_) => PacketType::Publish,
            Self::PubAck(_) => PacketType::PubAck,
            Self::PubRec(_) => PacketType::PubRec,
            Self::PubRel(_) => PacketType::PubRel,
            Self::PubComp(_) => PacketType::PubComp,
            Self::Subscribe(_) => PacketType::Subscribe,
            Self::SubAck(_) => PacketType::SubAck,
            Self::Unsubscribe(_) => PacketType::Unsubscribe,
            Self::UnsubAck(_) => PacketType::UnsubAck,
            Self::PingReq => PacketType::PingReq,
            Self::PingResp => PacketType::PingResp,
            Self::Disconnect(_) => PacketType::Disconnect,
            Self::Auth(_) => PacketType::Auth,
        }
    }

    /// Parses one whole frame other than PUBLISH, whose fixed header is
    /// `header_len` bytes. Every `Bytes` field is a slice of `frame`.
    pub(crate) fn parse(
        frame: Bytes,
        header_len: usize,
        ty: PacketType,
        v: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let body = frame.get(header_len..).unwrap_or_default();
        Self::parse_whole(&frame, body, ty, v)
    }

    /// Parses `body`, which must be used up.
    #[inline]
    fn parse_whole(
        frame: &Bytes,
        body: &[u8],
        ty: PacketType,
        v: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let (rest, packet) = Self::parse_body(frame, body, ty, v)?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes(rest.len()));
        }
        Ok(packet)
    }

    /// Whether a body of `len` bytes is too short to hold a property: a
    /// packet identifier and a reason code at most (the acknowledgements of
    /// PUBLISH), a reason code at most (DISCONNECT), or PINGREQ and PINGRESP
    /// (which have none: any body is an error). Such a packet is parsed by [`parse_short`](Self::parse_short)
    /// straight from the read buffer: nothing of it is kept, so the buffer is
    /// not shared (no reference count to take and release).
    #[inline]
    pub(crate) fn has_short_body(ty: PacketType, len: usize) -> bool {
        match ty {
            // A property block would need a length byte after both.
            PacketType::PubAck | PacketType::PubRec | PacketType::PubRel | PacketType::PubComp => {
                len <= 3
            }
            PacketType::Disconnect => len <= 1,
            PacketType::PingReq | PacketType::PingResp => true,
            _ => false,
        }
    }

    /// Parses a packet for which [`has_short_body`](Self::has_short_body)
    /// holds, exactly as [`parse`](Self::parse) would.
    #[inline]
    pub(crate) fn parse_short(
        body: &[u8],
        ty: PacketType,
        v: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let ack = matches!(
            ty,
            PacketType::PubAck | PacketType::PubRec | PacketType::PubRel | PacketType::PubComp
        );
        if !ack {
            // Parsed as the general parser does. It reaches for the frame
            // only to slice properties out of it, and a body this short has
            // none: an empty frame does.
            return Self::parse_whole(&Bytes::new(), body, ty, v);
        }
        // The common shapes of an acknowledgement, built in place: an
        // identifier, and at 5.0 a reason code.
        let (id, code) = match *body {
            [hi, lo] => (u16::from_be_bytes([hi, lo]), None),
            [hi, lo, code] if v.is_v5() => (u16::from_be_bytes([hi, lo]), Some(code)),
            // The rest (errors) as the general parser says.
            _ => return Self::parse_whole(&Bytes::new(), body, ty, v),
        };
        let packet_id = PacketId::new(id).ok_or(DecodeError::ZeroPacketId)?;
        let reason = match code {
            None => ReasonCode::Success,
            Some(code) => match ReasonCode::try_from(code) {
                Ok(r) if r.is_allowed_in(ty) => r,
                _ => return Err(DecodeError::InvalidReasonCode { packet: ty, code }),
            },
        };
        Ok(match ty {
            PacketType::PubAck => Self::PubAck(PubAck::without_properties(packet_id, reason)),
            PacketType::PubRec => Self::PubRec(PubRec::without_properties(packet_id, reason)),
            PacketType::PubRel => Self::PubRel(PubRel::without_properties(packet_id, reason)),
            PacketType::PubComp => Self::PubComp(PubComp::without_properties(packet_id, reason)),
            _ => return Self::parse_whole(&Bytes::new(), body, ty, v),
        })
    }

    fn parse_body<'a>(
        frame: &Bytes,
        i: &'a [u8],
        ty: PacketType,
        v: ProtocolVersion,
    ) -> PResult<'a, Self> {
        Ok(match ty {
            PacketType::Connect => {
                let (i, c) = Connect::parse(frame, i)?;
                (i, Self::Connect(Box::new(c)))
            }
            PacketType::ConnAck => {
                let (i, c) = ConnAck::parse(frame, v, i)?;
                (i, Self::ConnAck(Box::new(c)))
            }
            // Parsed by `parse`, which gives it the frame to own.
            PacketType::Publish => return fail(DecodeError::InvalidPacketType(3)),
            PacketType::PubAck => {
                let (i, p) = PubAck::parse(frame, v, i)?;
                (i, Self::PubAck(p))
            }
            PacketType::PubRec => {
                let (i, p) = PubRec::parse(frame, v, i)?;
                (i, Self::PubRec(p))
            }
            PacketType::PubRel => {
                let (i, p) = PubRel::parse(frame, v, i)?;
                (i, Self::PubRel(p))
            }
            PacketType::PubComp => {
                let (i, p) = PubComp::parse(frame, v, i)?;
                (i, Self::PubComp(p))
            }
            PacketType::Subscribe => {
                let (i, p) = Subscribe::parse(frame, v, i)?;
                (i, Self::Subscribe(p))
            }
            PacketType::SubAck => {
                let (i, p) = SubAck::parse(frame, v, i)?;
                (i, Self::SubAck(p))
            }
            PacketType::Unsubscribe => {
                let (i, p) = Unsubscribe::parse(frame, v, i)?;
                (i, Self::Unsubscribe(p))
            }
            PacketType::UnsubAck => {
                let (i, p) = UnsubAck::parse(frame, v, i)?;
                (i, Self::UnsubAck(p))
            }
            PacketType::PingReq => (i, Self::PingReq),
            PacketType::PingResp => (i, Self::PingResp),
            PacketType::Disconnect => {
                let (i, p) = Disconnect::parse(frame, v, i)?;
                (i, Self::Disconnect(p))
            }
            PacketType::Auth => {
                let (i, p) = Auth::parse(frame, v, i)?;
                let props = &p.properties;
                if let Err(e) = check_auth(&props.authentication_method, &props.authentication_data)
                {
                    return fail(e);
                }
                if !p.method_present_or_optional() {
                    return fail(DecodeError::AuthWithoutMethod);
                }
                (i, Self::Auth(p))
            }
        })
    }

    /// The version a packet is written at: CONNECT always carries its own.
    fn target_version(&self, v: ProtocolVersion) -> ProtocolVersion {
        match self {
            Self::Connect(c) => c.protocol,
            _ => v,
        }
    }

    /// Remaining Length of the packet at version `v`, after checking that the
    /// packet can be encoded at all.
    pub(crate) fn remaining_len(&self, v: ProtocolVersion) -> Result<usize, EncodeError> {
        let v = self.target_version(v);
        let n = match self {
            Self::Connect(p) => p.encoded_len(v)?,
            Self::ConnAck(p) => p.encoded_len(v)?,
            Self::Publish(p) => p.encoded_len(v)?,
            Self::PubAck(p) => p.encoded_len(v)?,
            Self::PubRec(p) => p.encoded_len(v)?,
            Self::PubRel(p) => p.encoded_len(v)?,
            Self::PubComp(p) => p.encoded_len(v)?,
            Self::Subscribe(p) => p.encoded_len(v)?,
            Self::SubAck(p) => p.encoded_len(v)?,
            Self::Unsubscribe(p) => p.encoded_len(v)?,
            Self::UnsubAck(p) => p.encoded_len(v)?,
            Self::PingReq | Self::PingResp => 0,
            Self::Disconnect(p) => p.encoded_len(v)?,
            Self::Auth(p) => {
                if !v.is_v5() {
                    return Err(EncodeError::NotInVersion {
                        field: "AUTH",
                        version: v,
                    });
                }
                let props = &p.properties;
                if props.authentication_data.is_some() && props.authentication_method.is_none() {
                    return Err(EncodeError::AuthDataWithoutMethod);
                }
                let n = p.encoded_len(v)?;
                if !p.method_present_or_optional() {
                    return Err(EncodeError::AuthWithoutMethod);
                }
                n
            }
        };
        Ok(n)
    }

    /// Size of the whole packet (fixed header included) at version `v`.
    ///
    /// # Errors
    ///
    /// The [`EncodeError`] that encoding would return.
    pub fn encoded_len(&self, v: ProtocolVersion) -> Result<usize, EncodeError> {
        total_len(self.remaining_len(v)?)
    }

    /// First byte of the fixed header.
    fn first_byte(&self) -> u8 {
        let ty = self.packet_type();
        let flags = match self {
            Self::Publish(p) => p.flags(),
            _ => ty.required_flags(),
        };
        ((ty as u8) << 4) | flags
    }

    /// Writes the packet; `remaining` comes from [`Self::remaining_len`].
    pub(crate) fn put<B: BufMut>(&self, v: ProtocolVersion, remaining: usize, buf: &mut B) {
        let v = self.target_version(v);
        buf.put_u8(self.first_byte());
        put_varint(buf, remaining);
        match self {
            Self::Connect(p) => p.put(v, buf),
            Self::ConnAck(p) => p.put(v, buf),
            Self::Publish(p) => p.put(v, buf),
            Self::PubAck(p) => p.put(v, buf),
            Self::PubRec(p) => p.put(v, buf),
            Self::PubRel(p) => p.put(v, buf),
            Self::PubComp(p) => p.put(v, buf),
            Self::Subscribe(p) => p.put(v, buf),
            Self::SubAck(p) => p.put(v, buf),
            Self::Unsubscribe(p) => p.put(v, buf),
            Self::UnsubAck(p) => p.put(v, buf),
            Self::PingReq | Self::PingResp => {}
            Self::Disconnect(p) => p.put(v, buf),
            Self::Auth(p) => p.put(v, buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bodies of up to four bytes, each byte from a set that covers packet
    /// identifier 0, valid and invalid reason codes and property lengths;
    /// plus every value of the reason code byte after a valid identifier.
    fn bodies() -> Vec<Vec<u8>> {
        const BYTES: [u8; 8] = [0x00, 0x01, 0x02, 0x10, 0x80, 0x87, 0x92, 0xFF];
        let mut all: Vec<Vec<u8>> = vec![Vec::new()];
        let mut last: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..4 {
            last = last
                .iter()
                .flat_map(|b| {
                    BYTES.iter().map(move |&x| {
                        let mut b = b.clone();
                        b.push(x);
                        b
                    })
                })
                .collect();
            all.extend(last.iter().cloned());
        }
        all.extend((0..=255u8).map(|r| vec![0x12, 0x34, r]));
        all.extend((0..=255u8).map(|r| vec![r]));
        all
    }

    /// The short path (no frame) parses exactly what the path through the
    /// frame parses, errors included, for every packet type and version.
    #[test]
    fn short_bodies_parse_as_through_the_frame() {
        let versions = [
            ProtocolVersion::V3_1,
            ProtocolVersion::V3_1_1,
            ProtocolVersion::V5,
        ];
        let mut short = 0;
        for v in versions {
            for ty in (1..=15).filter_map(PacketType::from_nibble) {
                for body in bodies() {
                    if !Packet::has_short_body(ty, body.len()) {
                        continue;
                    }
                    let fast = Packet::parse_short(&body, ty, v);
                    short += 1;
                    let mut frame = vec![(ty as u8) << 4, u8::try_from(body.len()).unwrap()];
                    frame.extend_from_slice(&body);
                    let slow = Packet::parse(Bytes::from(frame), 2, ty, v);
                    assert_eq!(fast, slow, "{ty:?} at {v:?}, body {body:02x?}");
                }
            }
        }
        // Four acknowledgements, PINGREQ, PINGRESP and DISCONNECT took it.
        assert!(short > 3 * 4 * (1 + 8 + 64 + 512), "{short}");
    }

    #[test]
    fn only_bodies_without_room_for_properties_take_the_short_path() {
        assert!(Packet::has_short_body(PacketType::PubAck, 3));
        assert!(!Packet::has_short_body(PacketType::PubAck, 4));
        assert!(Packet::has_short_body(PacketType::Disconnect, 1));
        assert!(!Packet::has_short_body(PacketType::Disconnect, 2));
        assert!(Packet::has_short_body(PacketType::PingReq, 0));
        assert!(!Packet::has_short_body(PacketType::Auth, 1));
        assert!(!Packet::has_short_body(PacketType::Publish, 2));
        assert!(!Packet::has_short_body(PacketType::SubAck, 3));
    }
}
