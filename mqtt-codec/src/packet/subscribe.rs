//! SUBSCRIBE and SUBACK (MQTT 5.0 sections 3.8 and 3.9).

use bytes::{BufMut, Bytes};

use mqtt_topic::TopicFilter;

use crate::error::{DecodeError, EncodeError};
use crate::primitives::{PResult, fail, field_len, list_len, packet_id, string, u8};
use crate::properties::{AckProperties, Props, SubscribeProperties};
use crate::reason::ReasonCode;
use crate::types::{PacketId, PacketType, ProtocolVersion, QoS, RetainHandling, Utf8Bytes};

/// Subscription Options of one topic filter.
///
/// In 3.1.1 only `qos` exists; the other options must keep their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SubscriptionOptions {
    /// Maximum QoS.
    pub qos: QoS,
    /// No Local: do not send the client its own publications (5.0).
    pub no_local: bool,
    /// Retain As Published: keep the RETAIN flag when forwarding (5.0).
    pub retain_as_published: bool,
    /// Retain Handling (5.0).
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    /// Options with `qos` and every MQTT 5.0 option at its default.
    pub fn new(qos: QoS) -> Self {
        Self {
            qos,
            ..Self::default()
        }
    }

    fn from_byte(v: ProtocolVersion, b: u8) -> Result<Self, DecodeError> {
        let reserved = if v.is_v5() { 0xC0 } else { 0xFC };
        if b & reserved != 0 {
            return Err(DecodeError::InvalidSubscriptionOptions(b));
        }
        // A QoS of 3 is a Malformed Packet at 3.1.1 [MQTT-3.8.3-4]; at 5.0
        // it, and a Retain Handling of 3, are Protocol Errors (3.8.3.1).
        let qos = match QoS::try_from(b & 0x03) {
            Ok(q) => q,
            Err(_) if v.is_v5() => return Err(DecodeError::InvalidSubscriptionValue(b)),
            Err(e) => return Err(e),
        };
        let retain_handling = match (b >> 4) & 0x03 {
            0 => RetainHandling::SendOnSubscribe,
            1 => RetainHandling::SendIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return Err(DecodeError::InvalidSubscriptionValue(b)),
        };
        Ok(Self {
            qos,
            no_local: b & 0x04 != 0,
            retain_as_published: b & 0x08 != 0,
            retain_handling,
        })
    }

    fn to_byte(self, v: ProtocolVersion) -> Result<u8, EncodeError> {
        let v5 = (u8::from(self.no_local) << 2)
            | (u8::from(self.retain_as_published) << 3)
            | ((self.retain_handling as u8) << 4);
        if v5 != 0 && !v.is_v5() {
            return Err(EncodeError::NotInVersion {
                field: "subscription options",
                version: v,
            });
        }
        Ok(self.qos as u8 | v5)
    }
}

/// One topic filter of a SUBSCRIBE with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeFilter {
    /// Topic Filter, as received: the layer above validates it and answers
    /// an invalid one with a SUBACK failure. The encoder writes only valid
    /// ones ([`EncodeError::InvalidTopicFilter`]).
    pub filter: Utf8Bytes,
    /// Subscription Options.
    pub options: SubscriptionOptions,
}

/// SUBSCRIBE: one or more topic filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet Identifier.
    pub packet_id: PacketId,
    /// The filters, at least one.
    pub filters: Vec<SubscribeFilter>,
    /// SUBSCRIBE properties (MQTT 5.0), out of line (see [`Props`]).
    pub properties: Props<SubscribeProperties>,
}

impl Subscribe {
    /// A SUBSCRIBE to one filter.
    pub fn new(packet_id: PacketId, filter: Utf8Bytes, options: SubscriptionOptions) -> Self {
        Self {
            packet_id,
            filters: vec![SubscribeFilter { filter, options }],
            properties: Props::none(),
        }
    }

    pub(crate) fn parse<'a>(frame: &Bytes, v: ProtocolVersion, i: &'a [u8]) -> PResult<'a, Self> {
        let (i, packet_id) = packet_id(i)?;
        let (mut i, properties) = if v.is_v5() {
            Props::parse(frame, PacketType::Subscribe, i)?
        } else {
            (i, Props::none())
        };
        let mut filters = Vec::new();
        while !i.is_empty() {
            let (j, filter) = string(frame, i)?;
            let (j, b) = u8(j)?;
            let options = match SubscriptionOptions::from_byte(v, b) {
                Ok(o) => o,
                Err(e) => return fail(e),
            };
            filters.push(SubscribeFilter { filter, options });
            i = j;
        }
        if filters.is_empty() {
            return fail(DecodeError::NoTopicFilters(PacketType::Subscribe));
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
        list_len(n, self.filters.iter().map(|f| f.filter.len()), 1)?;
        for f in &self.filters {
            f.options.to_byte(v)?;
            n += field_len(f.filter.len())? + 1;
            let shared = TopicFilter::check(f.filter.as_str())
                .map_err(EncodeError::InvalidTopicFilter)?
                .is_some();
            if shared && f.options.no_local {
                return Err(EncodeError::NoLocalOnSharedSubscription);
            }
        }
        Ok(n)
    }

    pub(crate) fn put<B: BufMut>(&self, v: ProtocolVersion, buf: &mut B) {
        buf.put_u16(self.packet_id.get());
        if v.is_v5() {
            self.properties.put(buf);
        }
        for f in &self.filters {
            f.filter.put_field(buf);
            buf.put_u8(f.options.to_byte(v).unwrap_or_default());
        }
    }
}

/// SUBACK: one reason code per filter of the SUBSCRIBE, in order.
///
/// In 3.1.1 the return codes are 0, 1, 2 (granted QoS) and 0x80 (failure);
/// every MQTT 5.0 failure code is written as 0x80 there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// Packet Identifier of the SUBSCRIBE.
    pub packet_id: PacketId,
    /// One code per filter.
    pub reasons: Vec<ReasonCode>,
    /// Properties (MQTT 5.0).
    pub properties: Props<AckProperties>,
}

impl SubAck {
    /// A SUBACK with `reasons` and no properties.
    pub fn new(packet_id: PacketId, reasons: Vec<ReasonCode>) -> Self {
        Self {
            packet_id,
            reasons,
            properties: Props::none(),
        }
    }

    pub(crate) fn parse<'a>(frame: &Bytes, v: ProtocolVersion, i: &'a [u8]) -> PResult<'a, Self> {
        let (i, packet_id) = packet_id(i)?;
        let (i, properties) = if v.is_v5() {
            Props::parse(frame, PacketType::SubAck, i)?
        } else {
            (i, Props::none())
        };
        let mut reasons = Vec::with_capacity(i.len());
        for &code in i {
            match ReasonCode::try_from(code) {
                Ok(r) if r.is_expressible(PacketType::SubAck, v) && (v.is_v5() || code <= 0x80) => {
                    reasons.push(r);
                }
                _ => {
                    return fail(DecodeError::InvalidReasonCode {
                        packet: PacketType::SubAck,
                        code,
                    });
                }
            }
        }
        Ok((
            &[],
            Self {
                packet_id,
                reasons,
                properties,
            },
        ))
    }

    pub(crate) fn encoded_len(&self, v: ProtocolVersion) -> Result<usize, EncodeError> {
        for &r in &self.reasons {
            if !r.is_allowed_in(PacketType::SubAck) {
                return Err(EncodeError::InvalidReasonCode {
                    packet: PacketType::SubAck,
                    code: r.as_u8(),
                });
            }
        }
        let props = if v.is_v5() {
            self.properties.encoded_len()?
        } else if self.properties.is_empty() {
            0
        } else {
            return Err(EncodeError::NotInVersion {
                field: "properties",
                version: v,
            });
        };
        Ok(2 + props + self.reasons.len())
    }

    pub(crate) fn put<B: BufMut>(&self, v: ProtocolVersion, buf: &mut B) {
        buf.put_u16(self.packet_id.get());
        if v.is_v5() {
            self.properties.put(buf);
        }
        for &r in &self.reasons {
            buf.put_u8(if v.is_v5() || !r.is_error() {
                r.as_u8()
            } else {
                0x80
            });
        }
    }
}
