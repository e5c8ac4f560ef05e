//! CONNACK (MQTT 5.0 section 3.2, 3.1.1 section 3.2).

use bytes::{BufMut, Bytes};

use crate::error::{DecodeError, EncodeError};
use crate::primitives::{PResult, fail, u8};
use crate::properties::{ConnAckProperties, check_auth};
use crate::reason::ReasonCode;
use crate::types::{PacketType, ProtocolVersion};

/// CONNACK: the server's answer to CONNECT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAck {
    /// Session Present.
    pub session_present: bool,
    /// Connect Reason Code (a 3.1.1 return code is mapped, see [`ReasonCode`]).
    pub reason: ReasonCode,
    /// CONNACK properties (MQTT 5.0).
    pub properties: ConnAckProperties,
}

impl ConnAck {
    /// A CONNACK with `reason`, no session present and no properties.
    pub fn new(reason: ReasonCode) -> Self {
        Self {
            session_present: false,
            reason,
            properties: ConnAckProperties::default(),
        }
    }

    pub(crate) fn parse<'a>(frame: &Bytes, v: ProtocolVersion, i: &'a [u8]) -> PResult<'a, Self> {
        let (i, flags) = u8(i)?;
        let (i, code) = u8(i)?;
        let reason = if v.is_v5() {
            ReasonCode::try_from(code)
                .ok()
                .filter(|r| r.is_allowed_in(PacketType::ConnAck))
        } else {
            ReasonCode::from_v3_connack(code)
        };
        let Some(reason) = reason else {
            return fail(DecodeError::InvalidReasonCode {
                packet: PacketType::ConnAck,
                code,
            });
        };
        // [MQTT-3.2.2-1] reserved bits; [MQTT-3.2.2-4] no session with an error.
        if flags & 0xFE != 0 || (flags != 0 && code != 0) {
            return fail(DecodeError::InvalidConnAckFlags(flags));
        }
        let (i, properties) = if v.is_v5() {
            let (i, p) = ConnAckProperties::parse(frame, PacketType::ConnAck, i)?;
            if let Err(e) = check_auth(&p.authentication_method, &p.authentication_data) {
                return fail(e);
            }
            (i, p)
        } else {
            (i, ConnAckProperties::default())
        };
        Ok((
            i,
            Self {
                session_present: flags == 1,
                reason,
                properties,
            },
        ))
    }

    fn code(&self, v: ProtocolVersion) -> Result<u8, EncodeError> {
        let invalid = EncodeError::InvalidReasonCode {
            packet: PacketType::ConnAck,
            code: self.reason.as_u8(),
        };
        if v.is_v5() {
            if self.reason.is_allowed_in(PacketType::ConnAck) {
                Ok(self.reason.as_u8())
            } else {
                Err(invalid)
            }
        } else {
            self.reason
                .to_v3_connack()
                .ok_or(EncodeError::NotInVersion {
                    field: "CONNACK reason code",
                    version: v,
                })
        }
    }

    pub(crate) fn encoded_len(&self, v: ProtocolVersion) -> Result<usize, EncodeError> {
        self.code(v)?;
        if v.is_v5() {
            if self.properties.authentication_data.is_some()
                && self.properties.authentication_method.is_none()
            {
                return Err(EncodeError::AuthDataWithoutMethod);
            }
            Ok(2 + self.properties.encoded_len()?)
        } else if !self.properties.is_empty() {
            Err(EncodeError::NotInVersion {
                field: "properties",
                version: v,
            })
        } else {
            Ok(2)
        }
    }

    pub(crate) fn put<B: BufMut>(&self, v: ProtocolVersion, buf: &mut B) {
        // [MQTT-3.2.2-4]/[MQTT-3.2.2-6]: session present is 0 with an error.
        buf.put_u8(u8::from(self.session_present && !self.reason.is_error()));
        buf.put_u8(self.code(v).unwrap_or_default());
        if v.is_v5() {
            self.properties.put(buf);
        }
    }
}
