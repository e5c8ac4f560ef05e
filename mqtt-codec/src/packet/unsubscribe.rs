//! UNSUBSCRIBE and UNSUBACK (MQTT 5.0 sections 3.10 and 3.11).

use bytes::{BufMut, Bytes};

use mqtt_topic::TopicFilter;

use crate::error::{DecodeError, EncodeError};
use crate::packet::ack::reason_code;
use crate::primitives::{PResult, fail, field_len, list_len, packet_id, string};
use crate::properties::{AckProperties, Props, UnsubscribeProperties};
use crate::reason::ReasonCode;
use crate::types::{PacketId, PacketType, ProtocolVersion, Utf8Bytes};

/// UNSUBSCRIBE: one or more topic filters to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet Identifier.
    pub packet_id: PacketId,
    /// The filters, at least one.
    pub filters: Vec<Utf8Bytes>,
    /// Properties (MQTT 5.0), out of line (see [`Props`]).
    pub properties: Props<UnsubscribeProperties>,
}

impl Unsubscribe {
    /// An UNSUBSCRIBE of `filters`, without properties.
    pub fn new(packet_id: PacketId, filters: Vec<Utf8Bytes>) -> Self {
        Self {
            packet_id,
            filters,
            properties: Props::none(),
        }
    }

    pub(crate) fn parse<'a>(frame: &Bytes, v: ProtocolVersion, i: &'a [u8]) -> PResult<'a, Self> {
        let (i, packet_id) = packet_id(i)?;
        let (mut i, properties) = if v.is_v5() {
            Props::parse(frame, PacketType::Unsubscribe, i)?
        } else {
            (i, Props::none())
        };
        let mut filters = Vec::new();
        while !i.is_empty() {
            let (j, filter) = string(frame, i)?;
            filters.push(filter);
            i = j;
        }
        if filters.is_empty() {
            return fail(DecodeError::NoTopicFilters(PacketType::Unsubscribe));
        }
        Ok((
            i,
            Self {
                packet_id,
                filters,
                properties,
            },
        ))
    }

    pub(crate) fn encoded_len(&self, v: ProtocolVersion) -> Result<usize, EncodeError> {
        if self.filters.is_empty() {
            return Err(EncodeError::NoTopicFilters);
        }
        let mut n = 2;
        if v.is_v5() {
            n += self.properties.encoded_len()?;
        } else if !self.properties.is_empty() {
            return Err(EncodeError::NotInVersion {
                field: "properties",
                version: v,
            });
        }
        // The whole size first: the loop below then cannot overflow.
        list_len(n, self.filters.iter().map(Utf8Bytes::len), 0)?;
        for f in &self.filters {
            n += field_len(f.len())?;
            TopicFilter::check(f.as_str()).map_err(EncodeError::InvalidTopicFilter)?;
        }
        Ok(n)
    }

    pub(crate) fn put<B: BufMut>(&self, v: ProtocolVersion, buf: &mut B) {
        buf.put_u16(self.packet_id.get());
        if v.is_v5() {
            self.properties.put(buf);
        }
        for f in &self.filters {
            f.put_field(buf);
        }
    }
}

/// UNSUBACK: acknowledges an UNSUBSCRIBE.
///
/// MQTT 5.0 carries one reason code per filter; a 3.1.1 UNSUBACK carries
/// none (it always means "unsubscribed"), so it decodes with empty `reasons`
/// and encodes only success-like codes, which it drops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// Packet Identifier of the UNSUBSCRIBE.
    pub packet_id: PacketId,
    /// One code per filter (MQTT 5.0).
    pub reasons: Vec<ReasonCode>,
    /// Properties (MQTT 5.0).
    pub properties: Props<AckProperties>,
}

impl UnsubAck {
    /// An UNSUBACK with `reasons` and no properties.
    pub fn new(packet_id: PacketId, reasons: Vec<ReasonCode>) -> Self {
        Self {
            packet_id,
            reasons,
            properties: Props::none(),
        }
    }

    pub(crate) fn parse<'a>(frame: &Bytes, v: ProtocolVersion, i: &'a [u8]) -> PResult<'a, Self> {
        let (mut i, packet_id) = packet_id(i)?;
        let mut reasons = Vec::new();
        let mut properties = Props::none();
        if v.is_v5() {
            (i, properties) = Props::parse(frame, PacketType::UnsubAck, i)?;
            reasons.reserve(i.len());
            while !i.is_empty() {
                let (j, r) = reason_code(PacketType::UnsubAck, i)?;
                reasons.push(r);
                i = j;
            }
        }
        Ok((
            i,
            Self {
                packet_id,
                reasons,
                properties,
            },
        ))
    }

    pub(crate) fn encoded_len(&self, v: ProtocolVersion) -> Result<usize, EncodeError> {
        for &r in &self.reasons {
            if !r.is_expressible(PacketType::UnsubAck, v) {
                return Err(if v.is_v5() {
                    EncodeError::InvalidReasonCode {
                        packet: PacketType::UnsubAck,
                        code: r.as_u8(),
                    }
                } else {
                    EncodeError::NotInVersion {
                        field: "reason code",
                        version: v,
                    }
                });
            }
        }
        if v.is_v5() {
            Ok(2 + self.properties.encoded_len()? + self.reasons.len())
        } else if self.properties.is_empty() {
            Ok(2)
        } else {
            Err(EncodeError::NotInVersion {
                field: "properties",
                version: v,
            })
        }
    }

    pub(crate) fn put<B: BufMut>(&self, v: ProtocolVersion, buf: &mut B) {
        buf.put_u16(self.packet_id.get());
        if v.is_v5() {
            self.properties.put(buf);
            for &r in &self.reasons {
                buf.put_u8(r.as_u8());
            }
        }
    }
}
