//! PUBLISH (MQTT 5.0 section 3.3, 3.1.1 section 3.3).

use bytes::{Buf, BufMut, Bytes};

use crate::error::{DecodeError, EncodeError};
use crate::packet::Packet;
use crate::primitives::{
    check_response_topic, check_topic_name, field_len, packet_id, put_field, topic_name,
};
use crate::properties::{Props, PublishProperties};
use crate::types::{PacketId, PacketType, ProtocolVersion, QoS, Utf8Bytes};

/// PUBLISH: an application message.
///
/// `packet_id` is `Some` exactly when `qos` is 1 or 2 \[MQTT-2.2.1-2\]; the
/// encoder refuses a packet where they disagree.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Publish {
    /// DUP: this may be a re-delivery (QoS 1 and 2 only).
    pub dup: bool,
    /// QoS level.
    pub qos: QoS,
    /// RETAIN.
    pub retain: bool,
    /// Topic Name (empty only with a Topic Alias, MQTT 5.0).
    pub topic: Utf8Bytes,
    /// Packet Identifier (QoS 1 and 2).
    pub packet_id: Option<PacketId>,
    /// PUBLISH properties (MQTT 5.0), out of line (see [`Props`]).
    pub properties: Props<PublishProperties>,
    /// Application payload.
    pub payload: Bytes,
}

impl Publish {
    /// A QoS 0, non-retained PUBLISH without properties.
    pub fn new(topic: Utf8Bytes, payload: impl Into<Bytes>) -> Self {
        Self {
            topic,
            payload: payload.into(),
            ..Self::default()
        }
    }

    /// Size of the whole packet at version `v`, as
    /// [`Packet::encoded_len`](crate::Packet::encoded_len) without building a
    /// `Packet`.
    ///
    /// # Errors
    ///
    /// The [`EncodeError`] that encoding would return.
    pub fn packet_len(&self, v: ProtocolVersion) -> Result<usize, EncodeError> {
        crate::packet::total_len(self.encoded_len(v)?)
    }

    /// The low nibble of the fixed header.
    #[inline]
    pub(crate) fn flags(&self) -> u8 {
        (u8::from(self.dup) << 3) | ((self.qos as u8) << 1) | u8::from(self.retain)
    }

    /// Parses a whole PUBLISH frame; the payload is the rest of `frame`
    /// itself, so it costs no reference count of its own.
    ///
    /// It returns the decoder's result type, built in place: a `Packet` is a
    /// few hundred bytes, and every re-wrapping would copy it.
    #[inline]
    pub(crate) fn parse(
        frame: Bytes,
        header_len: usize,
        v: ProtocolVersion,
        flags: u8,
    ) -> Result<Option<Packet>, DecodeError> {
        let dup = flags & 0x08 != 0;
        let retain = flags & 0x01 != 0;
        let qos = QoS::try_from((flags >> 1) & 0x03)?;
        if dup && qos == QoS::AtMostOnce {
            return Err(DecodeError::DupOnQos0);
        }
        let body = frame.get(header_len..).unwrap_or_default();
        let (i, topic) = topic_name(&frame, body)?;
        let (i, packet_id) = if qos == QoS::AtMostOnce {
            (i, None)
        } else {
            let (i, id) = packet_id(i)?;
            (i, Some(id))
        };
        let (i, properties) = if v.is_v5() {
            Props::<PublishProperties>::parse(&frame, PacketType::Publish, i)?
        } else {
            (i, Props::none())
        };
        // [MQTT-4.7.3-1] a topic is at least one character, unless a 5.0
        // Topic Alias stands for it.
        if topic.is_empty() && properties.topic_alias.is_none() {
            return Err(DecodeError::EmptyTopicName);
        }
        check_response_topic(properties.response_topic.as_ref())?;
        let offset = frame.len().saturating_sub(i.len());
        let mut payload = frame;
        payload.advance(offset);
        Ok(Some(Packet::Publish(Self {
            dup,
            qos,
            retain,
            topic,
            packet_id,
            properties,
            payload,
        })))
    }

    pub(crate) fn encoded_len(&self, v: ProtocolVersion) -> Result<usize, EncodeError> {
        match (self.qos, self.packet_id) {
            (QoS::AtMostOnce, Some(_)) | (QoS::AtLeastOnce | QoS::ExactlyOnce, None) => {
                return Err(EncodeError::PacketIdMismatch);
            }
            _ => {}
        }
        if self.dup && self.qos == QoS::AtMostOnce {
            return Err(EncodeError::DupOnQos0);
        }
        if check_topic_name(self.topic.as_bytes(), self.properties.topic_alias.is_some()).is_err()
            || check_response_topic(self.properties.response_topic.as_ref()).is_err()
        {
            return Err(EncodeError::InvalidTopicName);
        }
        let mut n = field_len(self.topic.len())? + self.payload.len();
        if self.packet_id.is_some() {
            n += 2;
        }
        if v.is_v5() {
            n += self.properties.encoded_len()?;
        } else if !self.properties.is_empty() {
            return Err(EncodeError::NotInVersion {
                field: "properties",
                version: v,
            });
        }
        Ok(n)
    }

    /// Writes the whole packet: the fixed header and the topic's length go
    /// out in one write.
    #[inline]
    pub(crate) fn put_with_header<B: BufMut>(
        &self,
        v: ProtocolVersion,
        remaining: usize,
        buf: &mut B,
    ) {
        let mut head = [0u8; 7];
        let mut n = 0;
        let mut len = remaining;
        for slot in head.iter_mut().skip(1).take(4) {
            let byte = u8::try_from(len & 0x7F).unwrap_or_default();
            len >>= 7;
            n += 1;
            if len == 0 {
                *slot = byte;
                break;
            }
            *slot = byte | 0x80;
        }
        if let Some(first) = head.first_mut() {
            *first = 0x30 | self.flags();
        }
        let topic = self.topic.as_bytes();
        let [hi, lo] = u16::try_from(topic.len()).unwrap_or(u16::MAX).to_be_bytes();
        if let Some([a, b]) = head
            .get_mut(n + 1..n + 3)
            .and_then(|s| <&mut [u8; 2]>::try_from(s).ok())
        {
            *a = hi;
            *b = lo;
        }
        buf.put_slice(head.get(..n + 3).unwrap_or_default());
        buf.put_slice(topic);
        if let Some(id) = self.packet_id {
            buf.put_u16(id.get());
        }
        if v.is_v5() {
            self.properties.put(buf);
        }
        buf.put_slice(&self.payload);
    }

    /// Writes everything but the payload.
    #[inline]
    pub(crate) fn put_head<B: BufMut>(&self, v: ProtocolVersion, buf: &mut B) {
        put_field(buf, self.topic.as_bytes());
        if let Some(id) = self.packet_id {
            buf.put_u16(id.get());
        }
        if v.is_v5() {
            self.properties.put(buf);
        }
    }

    pub(crate) fn put<B: BufMut>(&self, v: ProtocolVersion, buf: &mut B) {
        self.put_head(v, buf);
        buf.put_slice(&self.payload);
    }
}
