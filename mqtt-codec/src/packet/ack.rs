//! PUBACK, PUBREC, PUBREL and PUBCOMP (MQTT 5.0 sections 3.4 to 3.7).
//!
//! The four share one layout: a packet identifier, then in MQTT 5.0 an
//! optional reason code and optional properties.

use bytes::{BufMut, Bytes};

use crate::error::{DecodeError, EncodeError};
use crate::primitives::{PResult, fail, packet_id, u8};
use crate::properties::{AckProperties, Props};
use crate::reason::ReasonCode;
use crate::types::{PacketId, PacketType, ProtocolVersion};

/// Parses the part after the packet identifier of an MQTT 5.0 ack-like
/// packet: "The Reason Code and Property Length can be omitted if the Reason
/// Code is 0x00 (Success) and there are no Properties".
pub(crate) fn parse_reason_and_props<'a>(
    frame: &Bytes,
    packet: PacketType,
    i: &'a [u8],
) -> PResult<'a, (ReasonCode, Props<AckProperties>)> {
    if i.is_empty() {
        return Ok((i, (ReasonCode::Success, Props::none())));
    }
    let (i, reason) = reason_code(packet, i)?;
    if i.is_empty() {
        return Ok((i, (reason, Props::none())));
    }
    let (i, props) = Props::parse(frame, packet, i)?;
    Ok((i, (reason, props)))
}

/// A reason code byte that must be allowed in `packet`.
pub(crate) fn reason_code(packet: PacketType, i: &[u8]) -> PResult<'_, ReasonCode> {
    let (i, code) = u8(i)?;
    match ReasonCode::try_from(code) {
        Ok(r) if r.is_allowed_in(packet) => Ok((i, r)),
        _ => fail(DecodeError::InvalidReasonCode { packet, code }),
    }
}

/// Size of an optional reason code and properties, in the shortest form.
pub(crate) fn reason_and_props_len(
    packet: PacketType,
    v: ProtocolVersion,
    reason: ReasonCode,
    props: &Props<AckProperties>,
) -> Result<usize, EncodeError> {
    if !reason.is_expressible(packet, v) {
        return Err(if v.is_v5() {
            EncodeError::InvalidReasonCode {
                packet,
                code: reason.as_u8(),
            }
        } else {
            EncodeError::NotInVersion {
                field: "reason code",
                version: v,
            }
        });
    }
    if !v.is_v5() {
        if !props.is_empty() {
            return Err(EncodeError::NotInVersion {
                field: "properties",
                version: v,
            });
        }
        return Ok(0);
    }
    Ok(match (reason, props.is_empty()) {
        (ReasonCode::Success, true) => 0,
        (_, true) => 1,
        (_, false) => 1 + props.encoded_len()?,
    })
}

/// Writes what [`reason_and_props_len`] sized.
pub(crate) fn put_reason_and_props<B: BufMut>(
    v: ProtocolVersion,
    reason: ReasonCode,
    props: &Props<AckProperties>,
    buf: &mut B,
) {
    if !v.is_v5() || (reason == ReasonCode::Success && props.is_empty()) {
        return;
    }
    buf.put_u8(reason.as_u8());
    if !props.is_empty() {
        props.put(buf);
    }
}

macro_rules! pub_response {
    ($(#[$doc:meta])* $name:ident, $ty:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            /// Packet Identifier of the PUBLISH (or PUBREL) answered.
            pub packet_id: PacketId,
            /// Reason code (MQTT 5.0; always success in 3.1.1).
            pub reason: ReasonCode,
            /// Properties (MQTT 5.0), out of line (see [`Props`]).
            pub properties: Props<AckProperties>,
        }

        impl $name {
            /// A successful response for `packet_id`, without properties.
            pub fn new(packet_id: PacketId) -> Self {
                Self::without_properties(packet_id, ReasonCode::Success)
            }

            pub(crate) fn without_properties(packet_id: PacketId, reason: ReasonCode) -> Self {
                Self { packet_id, reason, properties: Props::none() }
            }

            pub(crate) fn parse<'a>(
                frame: &Bytes,
                v: ProtocolVersion,
                i: &'a [u8],
            ) -> PResult<'a, Self> {
                let (i, packet_id) = packet_id(i)?;
                let (i, (reason, properties)) = if v.is_v5() {
                    parse_reason_and_props(frame, $ty, i)?
                } else {
                    (i, (ReasonCode::Success, Props::none()))
                };
                Ok((i, Self { packet_id, reason, properties }))
            }

            pub(crate) fn encoded_len(&self, v: ProtocolVersion) -> Result<usize, EncodeError> {
                Ok(2 + reason_and_props_len($ty, v, self.reason, &self.properties)?)
            }

            pub(crate) fn put<B: BufMut>(&self, v: ProtocolVersion, buf: &mut B) {
                buf.put_u16(self.packet_id.get());
                put_reason_and_props(v, self.reason, &self.properties, buf);
            }
        }
    };
}

pub_response!(
    /// PUBACK: acknowledges a QoS 1 PUBLISH.
    PubAck,
    PacketType::PubAck
);
pub_response!(
    /// PUBREC: first acknowledgement of a QoS 2 PUBLISH.
    PubRec,
    PacketType::PubRec
);
pub_response!(
    /// PUBREL: answers PUBREC in the QoS 2 flow.
    PubRel,
    PacketType::PubRel
);
pub_response!(
    /// PUBCOMP: completes the QoS 2 flow.
    PubComp,
    PacketType::PubComp
);
