//! DISCONNECT (MQTT 5.0 section 3.14) and AUTH (section 3.15).

use bytes::{BufMut, Bytes};

use crate::error::EncodeError;
use crate::packet::ack::reason_code;
use crate::primitives::PResult;
use crate::properties::{AuthProperties, DisconnectProperties, Props};
use crate::reason::ReasonCode;
use crate::types::{PacketType, ProtocolVersion};

macro_rules! reason_packet {
    ($(#[$doc:meta])* $name:ident, $props:ty, $ty:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name {
            /// Reason code (0x00 when absent on the wire).
            pub reason: ReasonCode,
            /// Properties (MQTT 5.0).
            pub properties: Props<$props>,
        }

        impl $name {
            /// A packet with `reason` and no properties.
            pub fn new(reason: ReasonCode) -> Self {
                Self { reason, properties: Props::none() }
            }

            /// "If the Remaining Length is less than 1 the value of 0x00 is
            /// used"; "if the Remaining Length is less than 2, a value of 0
            /// is used" for the Property Length.
            pub(crate) fn parse<'a>(
                frame: &Bytes,
                v: ProtocolVersion,
                i: &'a [u8],
            ) -> PResult<'a, Self> {
                if !v.is_v5() || i.is_empty() {
                    return Ok((i, Self::default()));
                }
                let (i, reason) = reason_code($ty, i)?;
                if i.is_empty() {
                    return Ok((i, Self::new(reason)));
                }
                let (i, properties) = Props::<$props>::parse(frame, $ty, i)?;
                Ok((i, Self { reason, properties }))
            }

            pub(crate) fn encoded_len(&self, v: ProtocolVersion) -> Result<usize, EncodeError> {
                if !v.is_v5() {
                    if self.reason != ReasonCode::Success || !self.properties.is_empty() {
                        return Err(EncodeError::NotInVersion { field: "reason code or properties", version: v });
                    }
                    return Ok(0);
                }
                if !self.reason.is_allowed_in($ty) {
                    return Err(EncodeError::InvalidReasonCode { packet: $ty, code: self.reason.as_u8() });
                }
                Ok(match (self.reason, self.properties.is_empty()) {
                    (ReasonCode::Success, true) => 0,
                    (_, true) => 1,
                    (_, false) => 1 + self.properties.encoded_len()?,
                })
            }

            pub(crate) fn put<B: BufMut>(&self, v: ProtocolVersion, buf: &mut B) {
                if !v.is_v5() || (self.reason == ReasonCode::Success && self.properties.is_empty()) {
                    return;
                }
                buf.put_u8(self.reason.as_u8());
                if !self.properties.is_empty() {
                    self.properties.put(buf);
                }
            }
        }
    };
}

reason_packet!(
    /// DISCONNECT: the last packet of a connection, from either side.
    Disconnect,
    DisconnectProperties,
    PacketType::Disconnect
);
reason_packet!(
    /// AUTH: an extended authentication exchange step (MQTT 5.0 only).
    Auth,
    AuthProperties,
    PacketType::Auth
);

impl Auth {
    /// Whether the Authentication Method is there, or may be left out: "It
    /// is a Protocol Error to omit the Authentication Method" (MQTT 5.0
    /// section 3.15.2.2.2), except in the short AUTH of Success without
    /// properties, which the same section allows.
    pub(crate) fn method_present_or_optional(&self) -> bool {
        self.properties.authentication_method.is_some()
            || (self.reason == ReasonCode::Success && self.properties.is_empty())
    }
}
