//! PUBLISH (MQTT 5.0 section 3.3, 3.1.1 section 3.3).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::packet::Packet;
use crate::primitives::{
    RAW_SLACK, VARINT_MAX, check_response_topic, packet_id, put_field, topic_name, varint_len,
    varint_word,
};
use crate::properties::{Props, PublishProperties, id};
use crate::topic::PublishTopic;
use crate::types::{PacketId, PacketType, ProtocolVersion, QoS};

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
    /// Topic Name, validated when it was made (empty only with a Topic
    /// Alias, MQTT 5.0).
    pub topic: PublishTopic,
    /// Packet Identifier (QoS 1 and 2).
    pub packet_id: Option<PacketId>,
    /// PUBLISH properties (MQTT 5.0), out of line (see [`Props`]).
    pub properties: Props<PublishProperties>,
    /// Application payload.
    pub payload: Bytes,
}

impl Publish {
    /// A QoS 0, non-retained PUBLISH without properties.
    pub fn new(topic: impl Into<PublishTopic>, payload: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
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

    /// The size of the body (all after the fixed header) of a valid
    /// PUBLISH without a property block: the common case, in a small
    /// result. `None` sends the caller to [`encoded_len`](Self::encoded_len)
    /// for the precise error, or the size with properties.
    ///
    /// The topic's rules were checked when it was made: only its emptiness
    /// is left, which is valid only with a Topic Alias, a property.
    #[inline(always)]
    pub(crate) fn plain_len(&self, v: ProtocolVersion) -> Option<usize> {
        let id_ok = self.packet_id.is_some() == (self.qos != QoS::AtMostOnce);
        let dup_ok = !self.dup || self.packet_id.is_some();
        if !(id_ok && dup_ok) || self.properties.get().is_some() || self.topic.is_empty() {
            return None;
        }
        let id = if self.packet_id.is_some() { 2 } else { 0 };
        Some(2 + self.topic.len() + id + usize::from(v.is_v5()) + self.payload.len())
    }

    pub(crate) fn encoded_len(&self, v: ProtocolVersion) -> Result<usize, EncodeError> {
        // A packet id exactly when QoS > 0, and DUP only then.
        if self.packet_id.is_some() != (self.qos != QoS::AtMostOnce) {
            return Err(EncodeError::PacketIdMismatch);
        }
        if self.dup && self.packet_id.is_none() {
            return Err(EncodeError::DupOnQos0);
        }
        // A topic is at most 65,535 bytes: `PublishTopic` checks it.
        let mut n = 2 + self.topic.len() + self.payload.len();
        if self.packet_id.is_some() {
            n += 2;
        }
        let Some(props) = self.properties.get() else {
            if self.topic.is_empty() {
                return Err(EncodeError::InvalidTopicName);
            }
            return Ok(n + usize::from(v.is_v5()));
        };
        if (self.topic.is_empty() && props.topic_alias.is_none())
            || check_response_topic(props.response_topic.as_ref()).is_err()
        {
            return Err(EncodeError::InvalidTopicName);
        }
        if v.is_v5() {
            n += self.properties.encoded_len()?;
        } else if !props.is_empty() {
            return Err(EncodeError::NotInVersion {
                field: "properties",
                version: v,
            });
        }
        Ok(n)
    }

    /// The fixed header and the topic's length (at most 7 bytes) as the low
    /// bytes of a word, and their count: one store of eight bytes, where a
    /// write of their variable length is a call to copy them.
    #[inline(always)]
    fn head_word(&self, remaining: usize) -> (u64, usize) {
        let topic_len = u16::try_from(self.topic.len()).unwrap_or(u16::MAX);
        let first = u64::from(0x30 | self.flags());
        if let Ok(len) = u8::try_from(remaining) {
            if len < 0x80 {
                // One byte of Remaining Length: packets up to 129 bytes.
                let word = first | u64::from(len) << 8 | u64::from(topic_len.swap_bytes()) << 16;
                return (word, 4);
            }
        }
        // Built in a register: bytes stored one by one and read back as a
        // word would stall on the store buffer.
        let mut head = first;
        let mut shift = 8;
        let mut len = remaining;
        for _ in 0..4 {
            let byte = u64::try_from(len & 0x7F).unwrap_or_default();
            len >>= 7;
            if len == 0 {
                head |= byte << shift;
                shift += 8;
                break;
            }
            head |= (byte | 0x80) << shift;
            shift += 8;
        }
        head |= u64::from(topic_len.swap_bytes()) << shift;
        (head, shift / 8 + 2)
    }

    /// Appends a PUBLISH without properties whose body is `remaining`
    /// bytes (from [`plain_len`](Self::plain_len)), and its payload unless
    /// `head_only`.
    ///
    /// The common packet of every connection, so it is written without the
    /// `BufMut` calls, each of which checks for room and moves the length:
    /// one reservation, then two word stores (fixed header and topic
    /// length; packet identifier and, at 5.0, the empty property block) and
    /// two copies (topic, payload), then the length is set once. The stores
    /// write whole words past their fields, which the next field overwrites,
    /// so eight bytes of slack are reserved beyond the packet.
    #[inline(always)]
    pub(crate) fn put_plain(
        &self,
        v: ProtocolVersion,
        remaining: usize,
        head_only: bool,
        buf: &mut BytesMut,
    ) {
        debug_assert!(self.properties.get().is_none());
        let topic = self.topic.as_bytes();
        let payload: &[u8] = if head_only { &[] } else { &self.payload };
        let (head, head_len) = self.head_word(remaining);
        // Big-endian identifier then a zero property length, as bytes.
        let (tail, tail_len) = match self.packet_id {
            Some(id) => (u32::from(id.get().swap_bytes()), 2),
            None => (0, 0),
        };
        let tail_len = tail_len + usize::from(v.is_v5());
        let n = head_len + topic.len() + tail_len + payload.len();
        debug_assert_eq!(
            n - head_len + 2 + self.payload.len() - payload.len(),
            remaining
        );
        let start = buf.len();
        buf.reserve(n + 8);
        let at = buf.spare_capacity_mut().as_mut_ptr().cast::<u8>();
        // SAFETY: `reserve` left at least `n + 8` bytes of spare capacity
        // after `start`, and every write below ends within them: the head
        // word at 0..8, the topic at `head_len..head_len + topic.len()`,
        // the tail word at four bytes from there, the payload after the
        // tail (`head_len + topic.len() + tail_len + payload.len() == n`).
        // The spare capacity of a `BytesMut` is its own (no `Bytes` views
        // memory past a `BytesMut`'s length), so no copy from `self`'s
        // fields overlaps it. The first `n` bytes are then all written: the head
        // word's first `head_len`, the topic, the tail word's first
        // `tail_len`, the payload; so the new length exposes only
        // initialized bytes.
        #[allow(unsafe_code)]
        unsafe {
            at.cast::<[u8; 8]>().write_unaligned(head.to_le_bytes());
            let at = at.add(head_len);
            std::ptr::copy_nonoverlapping(topic.as_ptr(), at, topic.len());
            let at = at.add(topic.len());
            at.cast::<[u8; 4]>().write_unaligned(tail.to_le_bytes());
            let at = at.add(tail_len);
            std::ptr::copy_nonoverlapping(payload.as_ptr(), at, payload.len());
            buf.set_len(start + n);
        }
    }

    /// At 5.0, the size of the body of a valid PUBLISH that has a property
    /// block, and the size of its properties (without the Property
    /// Length). `None` sends the caller to [`encoded_len`](Self::encoded_len)
    /// for the precise error (or for a PUBLISH without a block).
    ///
    /// One pass, without a `Result` per field: the string lengths are
    /// or-ed together and checked against the two-byte limit once.
    #[inline(always)]
    pub(crate) fn props_len(&self) -> Option<(usize, usize)> {
        let props = self.properties.get()?;
        let id_ok = self.packet_id.is_some() == (self.qos != QoS::AtMostOnce);
        let dup_ok = !self.dup || self.packet_id.is_some();
        let topic_ok = !self.topic.is_empty() || props.topic_alias.is_some();
        if !(id_ok && dup_ok && topic_ok) {
            return None;
        }
        // Summed in 64 bits: on a 32-bit target, many properties sharing
        // long strings add up past `usize::MAX`.
        let mut n = 2 * u64::from(props.payload_format_indicator.is_some())
            + 5 * u64::from(props.message_expiry_interval.is_some())
            + 3 * u64::from(props.topic_alias.is_some());
        // The or of every string's length: over `u16::MAX` if any is.
        let mut wide = 0;
        if let Some(s) = &props.response_topic {
            n += 3 + s.len() as u64;
            wide |= s.len();
        }
        if let Some(s) = &props.content_type {
            n += 3 + s.len() as u64;
            wide |= s.len();
        }
        if let Some(d) = &props.correlation_data {
            n += 3 + d.len() as u64;
            wide |= d.len();
        }
        for u in props.user_properties.iter() {
            let (name, value) = (u.name.len(), u.value.len());
            n += 5 + name as u64 + value as u64;
            wide |= name | value;
        }
        for id in props.subscription_identifiers.iter() {
            n += 1 + varint_len(id.get() as usize) as u64;
        }
        if wide > usize::from(u16::MAX)
            || n > u64::from(VARINT_MAX)
            || check_response_topic(props.response_topic.as_ref()).is_err()
        {
            return None;
        }
        // At most `VARINT_MAX`, so the sum below fits even in 32 bits.
        let n = usize::try_from(n).ok()?;
        let id = if self.packet_id.is_some() { 2 } else { 0 };
        let body = 2 + self.topic.len() + id + varint_len(n) + n + self.payload.len();
        Some((body, n))
    }

    /// Appends a PUBLISH with a property block at 5.0, measured by
    /// [`props_len`](Self::props_len) (`remaining`, `props_len`), and its
    /// payload unless `head_only`.
    ///
    /// As [`put_plain`](Self::put_plain): one reservation, then stores
    /// through a pointer, then the length set once. Each fixed field (an
    /// identifier byte and its value) is one word store; a string is
    /// stored as its inline words or copied. A store may write up to
    /// [`RAW_SLACK`] bytes past its field, which the next field overwrites
    /// (or which stay in spare capacity after the last), so that many bytes
    /// are reserved beyond the packet.
    ///
    /// # Safety
    ///
    /// `(remaining, props_len)` is what [`props_len`](Self::props_len)
    /// returned for `self`: the stores follow the fields, and only that
    /// measure of the same fields bounds them within the reservation.
    #[inline(always)]
    #[allow(unsafe_code)]
    pub(crate) unsafe fn put_with_props(
        &self,
        remaining: usize,
        props_len: usize,
        head_only: bool,
        buf: &mut BytesMut,
    ) {
        let Some(props) = self.properties.get() else {
            debug_assert!(false, "measured without properties");
            return;
        };
        let topic = self.topic.as_bytes();
        let payload: &[u8] = if head_only { &[] } else { &self.payload };
        let (head, head_len) = self.head_word(remaining);
        // The packet identifier and the Property Length, as bytes.
        let (plen, plen_len) = varint_word(props_len);
        let (tail, tail_len) = match self.packet_id {
            Some(id) => (
                u64::from(id.get().swap_bytes()) | u64::from(plen) << 16,
                2 + plen_len,
            ),
            None => (u64::from(plen), plen_len),
        };
        let n = head_len + topic.len() + tail_len + props_len + payload.len();
        debug_assert_eq!(
            n - head_len + 2 + self.payload.len() - payload.len(),
            remaining
        );
        let start = buf.len();
        buf.reserve(n + RAW_SLACK);
        let base = buf.spare_capacity_mut().as_mut_ptr().cast::<u8>();
        // SAFETY: `reserve` left `n + RAW_SLACK` bytes of spare capacity
        // after `start`. The writes below follow `props_len` field by field
        // (the caller passes what it measured of these same fields, which
        // `&self` keeps from changing):
        // each starts where the last ended and writes its field's bytes
        // plus at most `RAW_SLACK` (a word of 8 for a field of 2 to 5
        // bytes, 24 for an inline string), so the position reaches `n`
        // exactly (the packet's size, checked in debug builds) and no
        // store ends past `n + RAW_SLACK`. The sources (the packet's
        // fields) do not overlap a `BytesMut`'s spare capacity. Every
        // byte of the first `n` is written by a field, so the new length
        // exposes only initialized bytes.
        #[allow(unsafe_code)]
        unsafe {
            let mut at = base;
            at.cast::<[u8; 8]>().write_unaligned(head.to_le_bytes());
            at = at.add(head_len);
            std::ptr::copy_nonoverlapping(topic.as_ptr(), at, topic.len());
            at = at.add(topic.len());
            at.cast::<[u8; 8]>().write_unaligned(tail.to_le_bytes());
            at = at.add(tail_len);
            if let Some(v) = props.payload_format_indicator {
                at.cast::<[u8; 2]>()
                    .write_unaligned([id::PAYLOAD_FORMAT_INDICATOR, v as u8]);
                at = at.add(2);
            }
            if let Some(v) = props.message_expiry_interval {
                let word = u64::from(id::MESSAGE_EXPIRY_INTERVAL) | u64::from(v.swap_bytes()) << 8;
                at.cast::<[u8; 8]>().write_unaligned(word.to_le_bytes());
                at = at.add(5);
            }
            if let Some(v) = props.topic_alias {
                let word = u32::from(id::TOPIC_ALIAS) | u32::from(v.get().swap_bytes()) << 8;
                at.cast::<[u8; 4]>().write_unaligned(word.to_le_bytes());
                at = at.add(3);
            }
            if let Some(s) = &props.response_topic {
                at.write(id::RESPONSE_TOPIC);
                at = s.write_field_raw(at.add(1));
            }
            if let Some(d) = &props.correlation_data {
                let len = u16::try_from(d.len()).unwrap_or(u16::MAX);
                at.cast::<[u8; 4]>().write_unaligned(
                    (u32::from(id::CORRELATION_DATA) | u32::from(len.swap_bytes()) << 8)
                        .to_le_bytes(),
                );
                at = at.add(3);
                std::ptr::copy_nonoverlapping(d.as_ptr(), at, d.len());
                at = at.add(d.len());
            }
            if let Some(s) = &props.content_type {
                at.write(id::CONTENT_TYPE);
                at = s.write_field_raw(at.add(1));
            }
            for u in props.user_properties.iter() {
                at.write(id::USER_PROPERTY);
                at = u.name.write_field_raw(at.add(1));
                at = u.value.write_field_raw(at);
            }
            for s in props.subscription_identifiers.iter() {
                let (v, len) = varint_word(s.get() as usize);
                let word = u64::from(id::SUBSCRIPTION_IDENTIFIER) | u64::from(v) << 8;
                at.cast::<[u8; 8]>().write_unaligned(word.to_le_bytes());
                at = at.add(1 + len);
            }
            std::ptr::copy_nonoverlapping(payload.as_ptr(), at, payload.len());
            at = at.add(payload.len());
            debug_assert_eq!(at.offset_from(base), n as isize);
            buf.set_len(start + n);
        }
    }

    /// Writes the fixed header and all but the payload of a PUBLISH with
    /// properties into `buf`, which has room for them.
    #[inline]
    pub(crate) fn put_head_with_header<B: BufMut>(
        &self,
        v: ProtocolVersion,
        remaining: usize,
        buf: &mut B,
    ) {
        let (head, head_len) = self.head_word(remaining);
        let word = head.to_le_bytes();
        let chunk = buf.chunk_mut();
        if chunk.len() >= word.len() {
            // One fixed store of the word, of which only `head_len` bytes
            // are kept (a copy of a variable length is a call).
            chunk[..word.len()].copy_from_slice(&word);
            // SAFETY: `head_len <= 8` bytes were just written.
            #[allow(unsafe_code)]
            unsafe {
                buf.advance_mut(head_len);
            }
        } else {
            buf.put_slice(word.get(..head_len).unwrap_or_default());
        }
        buf.put_slice(self.topic.as_bytes());
        if let Some(id) = self.packet_id {
            buf.put_u16(id.get());
        }
        if v.is_v5() {
            // `remaining` less the rest is the property block's size, so
            // it is not measured again.
            let rest = 2 + self.topic.len() + self.payload.len();
            let id_len = if self.packet_id.is_some() { 2 } else { 0 };
            self.properties
                .put_sized(remaining.saturating_sub(rest + id_len), buf);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::Encoder;
    use crate::{UserProperty, Utf8Bytes};

    /// Property sets that reach every field of the writers: inline and
    /// shared strings, lengths at and past the two-byte limit in each kind
    /// of string, repeated properties, Variable Byte Integers of each size,
    /// and an inline string as the last field (its 24-byte store reaches
    /// the end of the slack when the payload is empty: the buffers of the
    /// tests are allocated to exactly what the writer reserves, so Miri
    /// would see a store past it).
    fn property_sets() -> Vec<PublishProperties> {
        let inline = |v: &str| Utf8Bytes::try_from(v).unwrap();
        let shared = |n: usize| Utf8Bytes::try_from("s".repeat(n)).unwrap();
        let user = |k: Utf8Bytes, v: Utf8Bytes| UserProperty::new(k, v);
        let mut one = PublishProperties::default();
        one.user_properties.push(user(
            Utf8Bytes::from_static("k"),
            Utf8Bytes::from_static("v"),
        ));
        let mut all = PublishProperties {
            payload_format_indicator: Some(crate::PayloadFormat::Utf8),
            message_expiry_interval: Some(0x0102_0304),
            topic_alias: std::num::NonZeroU16::new(0x0506),
            response_topic: Some(shared(40)),
            correlation_data: Some(Bytes::from_static(b"\x00corr")),
            content_type: Some(shared(100)),
            ..PublishProperties::default()
        };
        all.user_properties.push(user(inline(""), shared(30)));
        all.user_properties.push(user(shared(70), inline("é")));
        for id in [1, 200, 20_000, crate::SubscriptionId::MAX] {
            all.subscription_identifiers
                .push(crate::SubscriptionId::new(id).unwrap());
        }
        let mut last_user_inline = PublishProperties {
            response_topic: Some(inline("reply/to")),
            content_type: Some(inline("text/plain")),
            ..PublishProperties::default()
        };
        last_user_inline
            .user_properties
            .push(user(shared(25), inline("")));
        let mut sets = vec![
            one,
            PublishProperties::default(),
            all,
            last_user_inline,
            PublishProperties {
                content_type: Some(inline("")),
                ..PublishProperties::default()
            },
            PublishProperties {
                response_topic: Some(inline("a/+")),
                ..PublishProperties::default()
            },
        ];
        // Fields at and past the two-byte limit: not under Miri (CI runs
        // these tests under it, for the `unsafe` writes), where building
        // and scanning them takes minutes; they reach no `unsafe` code but
        // the copy of the 65,535 bytes.
        if !cfg!(miri) {
            let too_long = shared(usize::from(u16::MAX) + 1);
            let mut long_user = PublishProperties::default();
            long_user
                .user_properties
                .push(user(inline("k"), too_long.clone()));
            sets.extend([
                PublishProperties {
                    content_type: Some(shared(usize::from(u16::MAX))),
                    ..PublishProperties::default()
                },
                PublishProperties {
                    correlation_data: Some(Bytes::from(vec![0; usize::from(u16::MAX) + 1])),
                    ..PublishProperties::default()
                },
                PublishProperties {
                    content_type: Some(too_long.clone()),
                    ..PublishProperties::default()
                },
                PublishProperties {
                    response_topic: Some(too_long),
                    ..PublishProperties::default()
                },
                long_user,
            ]);
        }
        sets
    }

    fn variants() -> Vec<Publish> {
        let topics = [
            "",
            "a",
            "a/b/c/d",
            "sensors/building-7/floor-3/room-12/temperature",
            "a/+/b",
            "sensors/building-7/floor-3/room-12/#",
            "#",
            "caf\u{e9}/\u{1F600}",
        ];
        let long_ok = "x".repeat(usize::from(u16::MAX));
        let too_long = "x".repeat(usize::from(u16::MAX) + 1);
        let mut out = Vec::new();
        // A topic breaking the rules of a name cannot be made at all.
        let mut topics: Vec<&str> = topics
            .iter()
            .copied()
            .chain([&*long_ok, &*too_long])
            .collect();
        // Miri (CI runs this test under it, for the `unsafe` writes) takes
        // minutes over tens of kilobytes: short topics and payloads there,
        // which still cover both Remaining Length paths.
        let mut lens = vec![0, 3, 120, 200, 16_380, 20_000];
        let sets = property_sets();
        if cfg!(miri) {
            topics.truncate(4);
            lens.truncate(4);
        }
        for topic in topics
            .into_iter()
            .filter_map(|t| PublishTopic::try_from(t).ok())
        {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                for id in [None, PacketId::new(7)] {
                    for dup in [false, true] {
                        for props in 0..=sets.len() {
                            for &len in &lens {
                                let mut p = Publish::new(topic.clone(), vec![b'p'; len]);
                                p.qos = qos;
                                p.packet_id = id;
                                p.dup = dup;
                                p.retain = len % 2 == 1;
                                if let Some(set) = sets.get(props) {
                                    // A block even when empty.
                                    *p.properties.to_mut() = set.clone();
                                    // An empty topic is valid with an alias.
                                    if len == 3 {
                                        p.properties.to_mut().topic_alias =
                                            std::num::NonZeroU16::new(1);
                                    }
                                }
                                out.push(p);
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// The quick measure of a PUBLISH without properties agrees with the
    /// full one whenever it answers, and answers for every valid one.
    #[test]
    fn plain_len_agrees_with_encoded_len() {
        for v in [
            ProtocolVersion::V3_1,
            ProtocolVersion::V3_1_1,
            ProtocolVersion::V5,
        ] {
            for p in variants() {
                let full = p.encoded_len(v);
                match p.plain_len(v) {
                    Some(n) => assert_eq!(full, Ok(n), "{p:?}"),
                    None => assert!(full.is_err() || p.properties.get().is_some(), "{p:?}"),
                }
            }
        }
    }

    /// So does the one-pass measure of a PUBLISH with a property block at
    /// 5.0: it answers exactly for the valid ones, with the property
    /// block's size.
    #[test]
    fn props_len_agrees_with_encoded_len() {
        let (mut fast, mut refused) = (0, 0);
        for p in variants() {
            let full = p.encoded_len(ProtocolVersion::V5);
            match p.props_len() {
                Some((n, props)) => {
                    fast += 1;
                    assert_eq!(full, Ok(n), "{p:?}");
                    let block = p.properties.encoded_len().unwrap();
                    assert_eq!(block, crate::primitives::varint_len(props) + props);
                }
                None => {
                    refused += 1;
                    assert!(full.is_err() || p.properties.get().is_none(), "{p:?}");
                }
            }
        }
        assert!(fast > 0 && refused > 0);
    }

    /// The hot path (`encode`, header built in a register) writes the same
    /// bytes as the generic writer (`encode_to`), across every length of
    /// the Remaining Length field, and the same errors.
    #[test]
    fn hot_path_writes_what_the_generic_writer_writes() {
        for v in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
            let enc = Encoder::new(v);
            for p in variants() {
                let packet = Packet::Publish(p);
                let mut fast = BytesMut::from(&b"prefix"[..]);
                let mut generic = BytesMut::from(&b"prefix"[..]);
                generic.reserve(70_000);
                let a = enc.encode(&packet, &mut fast);
                let b = enc.encode_to(&packet, &mut generic);
                assert_eq!(a, b, "{packet:?}");
                assert_eq!(fast, generic, "{packet:?}");
                if let (Packet::Publish(p), Ok(total)) = (&packet, a) {
                    let mut head = BytesMut::new();
                    assert_eq!(enc.encode_publish_head(p, &mut head), Ok(total));
                    assert_eq!(head.len() + p.payload.len(), total);
                    assert_eq!(head, fast.get(6..6 + head.len()).unwrap());
                }
            }
        }
    }
}
