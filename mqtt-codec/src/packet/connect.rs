//! CONNECT (MQTT 5.0 section 3.1, 3.1.1 section 3.1).

use bytes::{BufMut, Bytes};

use crate::error::{DecodeError, EncodeError};
use mqtt_topic::TopicName;

use crate::primitives::{
    PResult, binary, check_response_topic, fail, field_len, put_field, raw_binary, string,
    topic_name, u8, u16,
};
use crate::properties::{ConnectProperties, WillProperties, check_auth};
use crate::types::{PacketType, ProtocolVersion, QoS, Utf8Bytes};

/// CONNECT: the first packet a client sends.
///
/// The protocol version is part of the packet: CONNECT can be decoded before
/// the version of the connection is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// Protocol level (3, 4 or 5).
    pub protocol: ProtocolVersion,
    /// Clean Session (3.1.1) or Clean Start (5.0).
    pub clean_start: bool,
    /// Keep Alive in seconds; 0 disables it.
    pub keep_alive: u16,
    /// Client Identifier (may be empty).
    pub client_id: Utf8Bytes,
    /// The will message, if any.
    pub will: Option<Will>,
    /// User Name.
    pub username: Option<Utf8Bytes>,
    /// Password (binary data).
    pub password: Option<Bytes>,
    /// CONNECT properties (MQTT 5.0).
    pub properties: ConnectProperties,
}

/// The Will Message of a CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// Will Topic, validated when it was made.
    pub topic: TopicName,
    /// Will Payload.
    pub payload: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will Retain.
    pub retain: bool,
    /// Will properties (MQTT 5.0).
    pub properties: WillProperties,
}

impl Will {
    /// A QoS 0, non-retained will with no properties.
    pub fn new(topic: TopicName, payload: impl Into<Bytes>) -> Self {
        Self {
            topic,
            payload: payload.into(),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: WillProperties::default(),
        }
    }
}

impl Connect {
    /// A CONNECT with clean start, keep-alive 60 s, no will, no credentials
    /// and no properties.
    pub fn new(protocol: ProtocolVersion, client_id: Utf8Bytes) -> Self {
        Self {
            protocol,
            clean_start: true,
            keep_alive: 60,
            client_id,
            will: None,
            username: None,
            password: None,
            properties: ConnectProperties::default(),
        }
    }

    pub(crate) fn parse<'a>(frame: &Bytes, i: &'a [u8]) -> PResult<'a, Self> {
        let (i, name) = raw_binary(i)?;
        let (i, level) = u8(i)?;
        let protocol = match ProtocolVersion::try_from(level) {
            Ok(v) => v,
            // A wrong name is reported before a wrong level.
            Err(e) if name == b"MQTT" || name == b"MQIsdp" => return fail(e),
            Err(_) => return fail(DecodeError::InvalidProtocolName),
        };
        if name != protocol.protocol_name().as_bytes() {
            return fail(DecodeError::InvalidProtocolName);
        }
        let (i, flags) = u8(i)?;
        let clean_start = flags & 0x02 != 0;
        let will_flag = flags & 0x04 != 0;
        let will_qos = (flags >> 3) & 0x03;
        let will_retain = flags & 0x20 != 0;
        let password_flag = flags & 0x40 != 0;
        let username_flag = flags & 0x80 != 0;
        // [MQTT-3.1.2-3] reserved bit; [MQTT-3.1.2-11], [MQTT-3.1.2-13] will
        // QoS and retain without a will; [MQTT-3.1.2-22] password without
        // user name (3.1.1 only: 5.0 allows it).
        if flags & 0x01 != 0
            || (!will_flag && (will_qos != 0 || will_retain))
            || (!protocol.is_v5() && password_flag && !username_flag)
        {
            return fail(DecodeError::InvalidConnectFlags(flags));
        }
        let will_qos = match QoS::try_from(will_qos) {
            Ok(q) => q,
            Err(e) => return fail(e),
        };
        let (i, keep_alive) = u16(i)?;
        let (i, properties) = if protocol.is_v5() {
            let (i, p) = ConnectProperties::parse(frame, PacketType::Connect, i)?;
            if let Err(e) = check_auth(&p.authentication_method, &p.authentication_data) {
                return fail(e);
            }
            (i, p)
        } else {
            (i, ConnectProperties::default())
        };
        let (mut i, client_id) = string(frame, i)?;
        let will = if will_flag {
            let (j, properties) = if protocol.is_v5() {
                WillProperties::parse(frame, PacketType::Connect, i)?
            } else {
                (i, WillProperties::default())
            };
            // The will topic is a topic name [MQTT-3.1.3-11], so not empty.
            let (j, topic) = topic_name(frame, j)?;
            let Some(topic) = topic.into_name() else {
                return fail(DecodeError::EmptyTopicName);
            };
            if let Err(e) = check_response_topic(properties.response_topic.as_ref()) {
                return fail(e);
            }
            let (j, payload) = binary(frame, j)?;
            i = j;
            Some(Will {
                topic,
                payload,
                qos: will_qos,
                retain: will_retain,
                properties,
            })
        } else {
            None
        };
        let username = if username_flag {
            let (j, u) = string(frame, i)?;
            i = j;
            Some(u)
        } else {
            None
        };
        let password = if password_flag {
            let (j, p) = binary(frame, i)?;
            i = j;
            Some(p)
        } else {
            None
        };
        Ok((
            i,
            Self {
                protocol,
                clean_start,
                keep_alive,
                client_id,
                will,
                username,
                password,
                properties,
            },
        ))
    }

    /// Checks what the target version can carry (a CONNECT is always
    /// encoded at its own `protocol`).
    fn check_version(&self, v: ProtocolVersion) -> Result<(), EncodeError> {
        if let Some(w) = &self.will {
            if check_response_topic(w.properties.response_topic.as_ref()).is_err() {
                return Err(EncodeError::InvalidTopicName);
            }
        }
        if !v.is_v5() {
            if !self.properties.is_empty()
                || self.will.as_ref().is_some_and(|w| !w.properties.is_empty())
            {
                return Err(EncodeError::NotInVersion {
                    field: "properties",
                    version: v,
                });
            }
            if self.password.is_some() && self.username.is_none() {
                return Err(EncodeError::PasswordWithoutUsername);
            }
            // A zero-byte ClientId needs Clean Session at 3.1.1
            // [MQTT-3.1.3-7]; 3.1 has none (1 to 23 characters).
            let empty_ok = v == ProtocolVersion::V3_1_1 && self.clean_start;
            if self.client_id.is_empty() && !empty_ok {
                return Err(EncodeError::EmptyClientId);
            }
        } else if self.properties.authentication_data.is_some()
            && self.properties.authentication_method.is_none()
        {
            return Err(EncodeError::AuthDataWithoutMethod);
        }
        Ok(())
    }

    pub(crate) fn encoded_len(&self, v: ProtocolVersion) -> Result<usize, EncodeError> {
        self.check_version(v)?;
        let mut n = field_len(v.protocol_name().len())? + 1 + 1 + 2;
        if v.is_v5() {
            n += self.properties.encoded_len()?;
        }
        n += field_len(self.client_id.len())?;
        if let Some(w) = &self.will {
            if v.is_v5() {
                n += w.properties.encoded_len()?;
            }
            n += field_len(w.topic.len())? + field_len(w.payload.len())?;
        }
        if let Some(u) = &self.username {
            n += field_len(u.len())?;
        }
        if let Some(p) = &self.password {
            n += field_len(p.len())?;
        }
        Ok(n)
    }

    pub(crate) fn put<B: BufMut>(&self, v: ProtocolVersion, buf: &mut B) {
        put_field(buf, v.protocol_name().as_bytes());
        buf.put_u8(v as u8);
        let mut flags = 0u8;
        if self.clean_start {
            flags |= 0x02;
        }
        if let Some(w) = &self.will {
            flags |= 0x04 | ((w.qos as u8) << 3);
            if w.retain {
                flags |= 0x20;
            }
        }
        if self.password.is_some() {
            flags |= 0x40;
        }
        if self.username.is_some() {
            flags |= 0x80;
        }
        buf.put_u8(flags);
        buf.put_u16(self.keep_alive);
        if v.is_v5() {
            self.properties.put(buf);
        }
        self.client_id.put_field(buf);
        if let Some(w) = &self.will {
            if v.is_v5() {
                w.properties.put(buf);
            }
            put_field(buf, w.topic.as_bytes());
            put_field(buf, &w.payload);
        }
        if let Some(u) = &self.username {
            u.put_field(buf);
        }
        if let Some(p) = &self.password {
            put_field(buf, p);
        }
    }
}
