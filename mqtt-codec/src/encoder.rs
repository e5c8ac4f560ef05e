//! Encoding packets into buffers.

use std::mem::MaybeUninit;
use std::num::NonZeroU32;

use bytes::{BufMut, BytesMut};

use crate::error::EncodeError;
use crate::packet::{Packet, Publish};
use crate::reason::ReasonCode;
use crate::types::{PacketType, ProtocolVersion};

/// Encodes packets for a connection of a given version.
///
/// The exact size is computed first, checked against the peer's Maximum
/// Packet Size, and the buffer grows once. Nothing is written when the
/// packet cannot be encoded.
///
/// ```
/// use bytes::BytesMut;
/// use mqtt_codec::{Encoder, ProtocolVersion, Publish, PublishTopic};
///
/// let enc = Encoder::new(ProtocolVersion::V3_1_1);
/// let mut buf = BytesMut::new();
/// let p = Publish::new(PublishTopic::from_static("a/b"), &b"hi"[..]);
/// assert_eq!(enc.encode(&p.into(), &mut buf)?, 9);
/// assert_eq!(&buf[..], b"\x30\x07\x00\x03a/bhi");
/// # Ok::<(), mqtt_codec::EncodeError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Encoder {
    version: ProtocolVersion,
    max_packet_size: Option<NonZeroU32>,
}

impl Encoder {
    /// An encoder for `version` with no packet size limit but the protocol's.
    pub fn new(version: ProtocolVersion) -> Self {
        Self {
            version,
            max_packet_size: None,
        }
    }

    /// The version packets are written at (CONNECT carries its own).
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// Sets the version packets are written at.
    pub fn set_version(&mut self, version: ProtocolVersion) -> &mut Self {
        self.version = version;
        self
    }

    /// Sets the peer's Maximum Packet Size (`None`: no limit but the
    /// protocol's). Default: `None`.
    pub fn set_max_packet_size(&mut self, max: Option<NonZeroU32>) -> &mut Self {
        self.max_packet_size = max;
        self
    }

    /// The peer's Maximum Packet Size, if any.
    pub fn max_packet_size(&self) -> Option<NonZeroU32> {
        self.max_packet_size
    }

    /// Checks `packet` and returns `(remaining length, total size)`.
    fn measure(&self, packet: &Packet) -> Result<(usize, usize), EncodeError> {
        let remaining = packet.remaining_len(self.version)?;
        Ok((remaining, self.total_len(remaining)?))
    }

    /// Total size of a packet with `remaining` bytes after the fixed header,
    /// checked against the protocol's and the peer's limits.
    fn total_len(&self, remaining: usize) -> Result<usize, EncodeError> {
        let total = crate::packet::total_len(remaining)?;
        match self.max_packet_size {
            Some(max) if total > max.get() as usize => Err(EncodeError::PacketTooLarge {
                size: total,
                max: max.get(),
            }),
            _ => Ok(total),
        }
    }

    /// Appends `packet` to `dst`, reserving its exact size once.
    ///
    /// Returns the number of bytes written.
    ///
    /// # Errors
    ///
    /// An [`EncodeError`] if the packet breaks the specification at this
    /// version or exceeds the peer's maximum; `dst` is then unchanged.
    #[inline]
    pub fn encode(&self, packet: &Packet, dst: &mut BytesMut) -> Result<usize, EncodeError> {
        if let Packet::Publish(p) = packet {
            // The hot path: no dispatch, and no error built when there is
            // none (see `put_publish`).
            return self.put_publish(p, false, dst);
        }
        self.encode_other(packet, dst)
    }

    /// [`encode`](Self::encode) for every packet but PUBLISH, out of line so
    /// that the PUBLISH path is small enough to inline into the caller.
    #[inline(never)]
    fn encode_other(&self, packet: &Packet, dst: &mut BytesMut) -> Result<usize, EncodeError> {
        if let Some(head) = self.plain_ack(packet) {
            // PUBACK, PUBREC, PUBREL, PUBCOMP for success without
            // properties: one packet of each QoS 1/2 flow, four fixed bytes.
            dst.put_slice(&head);
            return Ok(head.len());
        }
        let (remaining, total) = self.measure(packet)?;
        // Written through a slice of the exact size: the small writes (one
        // per field) inline to stores, where `BytesMut`'s each check for
        // room and call out to copy two bytes. Zeroing first costs less.
        // (Writing into the spare capacity, as for a PUBLISH with
        // properties, measured the same here, so this stays safe code.)
        let start = dst.len();
        dst.resize(start + total, 0);
        let mut w: &mut [u8] = dst.get_mut(start..).unwrap_or_default();
        packet.put(self.version, remaining, &mut w);
        debug_assert!(w.is_empty(), "encoded size differs from the measured one");
        Ok(total)
    }

    /// The four bytes of an acknowledgement in the QoS 1/2 flows with
    /// success and no properties (no reason code is written then, at any
    /// version), unless the peer's maximum packet size is below four.
    #[inline]
    fn plain_ack(&self, packet: &Packet) -> Option<[u8; 4]> {
        let (ty, id, reason, props) = match packet {
            Packet::PubAck(p) => (PacketType::PubAck, p.packet_id, p.reason, &p.properties),
            Packet::PubRec(p) => (PacketType::PubRec, p.packet_id, p.reason, &p.properties),
            Packet::PubRel(p) => (PacketType::PubRel, p.packet_id, p.reason, &p.properties),
            Packet::PubComp(p) => (PacketType::PubComp, p.packet_id, p.reason, &p.properties),
            _ => return None,
        };
        let fits = self.max_packet_size.is_none_or(|m| m.get() >= 4);
        if reason != ReasonCode::Success || !props.is_empty() || !fits {
            return None;
        }
        let [hi, lo] = id.get().to_be_bytes();
        Some([((ty as u8) << 4) | ty.required_flags(), 2, hi, lo])
    }

    /// Writes `packet` into any [`BufMut`] that has room for it; nothing of
    /// `dst` past the packet's bytes changes (a `&mut [u8]` keeps its tail).
    ///
    /// # Errors
    ///
    /// As [`encode`](Self::encode), and [`EncodeError::BufferTooSmall`].
    pub fn encode_to<B: BufMut>(&self, packet: &Packet, dst: &mut B) -> Result<usize, EncodeError> {
        let (remaining, total) = self.measure(packet)?;
        if dst.remaining_mut() < total {
            return Err(EncodeError::BufferTooSmall {
                needed: total,
                available: dst.remaining_mut(),
            });
        }
        // The writers store some fields as fixed-width words, which the next
        // field overwrites; the limit keeps those stores inside the packet,
        // so that no byte of `dst` past it changes.
        packet.put(self.version, remaining, &mut dst.limit(total));
        Ok(total)
    }

    /// Appends everything of a PUBLISH but its payload to `dst`, for
    /// vectored writes: send `dst` then `publish.payload`, and a payload
    /// fanned out to many subscribers is never copied.
    ///
    /// Returns the size of the whole packet (head and payload).
    ///
    /// # Errors
    ///
    /// As [`encode`](Self::encode).
    pub fn encode_publish_head(
        &self,
        publish: &Publish,
        dst: &mut BytesMut,
    ) -> Result<usize, EncodeError> {
        self.put_publish(publish, true, dst)
    }

    /// Checks `p` and appends it, or all of it but its payload if
    /// `head_only`. Returns the size of the whole packet.
    ///
    /// A PUBLISH without properties is measured by a check that returns
    /// only whether it is valid, in registers, and written by
    /// [`Publish::put_plain`]; the full measure, which builds the precise
    /// error, runs for the others.
    #[inline(always)]
    fn put_publish(
        &self,
        p: &Publish,
        head_only: bool,
        dst: &mut BytesMut,
    ) -> Result<usize, EncodeError> {
        if let Some(remaining) = p.plain_len(self.version) {
            let total = self.total_len(remaining)?;
            p.put_plain(self.version, remaining, head_only, dst);
            return Ok(total);
        }
        self.put_publish_with_props(p, head_only, dst)
    }

    /// [`put_publish`](Self::put_publish) for a PUBLISH with a property
    /// block (or an invalid one), out of line: the path above inlines into
    /// the caller. At 5.0 a valid one is measured in one pass and written
    /// by [`Publish::put_with_props`]; the rest go the full way.
    #[inline(never)]
    fn put_publish_with_props(
        &self,
        p: &Publish,
        head_only: bool,
        dst: &mut BytesMut,
    ) -> Result<usize, EncodeError> {
        if self.version.is_v5() {
            if let Some((remaining, props_len)) = p.props_len() {
                let total = self.total_len(remaining)?;
                // SAFETY: the measure of `p` just taken.
                #[allow(unsafe_code)]
                unsafe {
                    p.put_with_props(remaining, props_len, head_only, dst);
                }
                return Ok(total);
            }
        }
        self.put_publish_in_full(p, head_only, dst)
    }

    /// The general writer of a PUBLISH: measured with the precise error,
    /// written through `BufMut`.
    #[inline(never)]
    fn put_publish_in_full(
        &self,
        p: &Publish,
        head_only: bool,
        dst: &mut BytesMut,
    ) -> Result<usize, EncodeError> {
        let remaining = p.encoded_len(self.version)?;
        let total = self.total_len(remaining)?;
        let payload: &[u8] = if head_only { &[] } else { &p.payload };
        let n = total - p.payload.len() + payload.len();
        put_in_spare(dst, n, |w| {
            p.put_head_with_header(self.version, remaining, w);
            w.put_slice(payload);
        });
        Ok(total)
    }
}

/// Appends `n` bytes to `dst`, written by `put` into its spare capacity:
/// the many small writes of a packet's fields each inline to a store into
/// a `&mut [MaybeUninit<u8>]`, where `BytesMut`'s would each check for room
/// and move the length (and a zero-filled slice would cost a `memset`).
#[inline(always)]
fn put_in_spare(dst: &mut BytesMut, n: usize, put: impl FnOnce(&mut &mut [MaybeUninit<u8>])) {
    dst.reserve(n);
    let start = dst.len();
    // `reserve` made room for all `n`; the length set below is the region's
    // own, so nothing rests on that.
    let region = dst.spare_capacity_mut().get_mut(..n).unwrap_or_default();
    let len = region.len();
    let mut w = &mut *region;
    put(&mut w);
    debug_assert!(w.is_empty(), "encoded size differs from the measured one");
    // Never taken when the measure is right; if it were not, no
    // uninitialized byte is exposed.
    for b in w.iter_mut() {
        b.write(0);
    }
    // SAFETY: the `len` bytes of spare capacity after `start` are all
    // written: by `put` (a `&mut [MaybeUninit<u8>]` writer advances only
    // over what it wrote) and by the zeroing of whatever it left.
    #[allow(unsafe_code)]
    unsafe {
        dst.set_len(start + len);
    }
}

impl Packet {
    /// Appends the packet, encoded at `version`, to `dst` (no size limit but
    /// the protocol's). Returns the number of bytes written.
    ///
    /// # Errors
    ///
    /// As [`Encoder::encode`].
    pub fn encode(
        &self,
        version: ProtocolVersion,
        dst: &mut BytesMut,
    ) -> Result<usize, EncodeError> {
        Encoder::new(version).encode(self, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        AckProperties, PacketId, PubAck, PubComp, PubRec, PubRel, UserProperty, Utf8Bytes,
    };

    fn acks() -> Vec<Packet> {
        let props = AckProperties {
            reason_string: Some(Utf8Bytes::from_static("why")),
            ..AckProperties::default()
        };
        let mut user = AckProperties::default();
        user.user_properties.push(UserProperty::new(
            Utf8Bytes::from_static("k"),
            Utf8Bytes::from_static("v"),
        ));
        let mut all = Vec::new();
        for id in [1, 0x1234, u16::MAX] {
            let id = PacketId::new(id).unwrap();
            for (reason, properties) in [
                (ReasonCode::Success, AckProperties::default()),
                (ReasonCode::Success, props.clone()),
                (ReasonCode::Success, user.clone()),
                (ReasonCode::NoMatchingSubscribers, AckProperties::default()),
                (
                    ReasonCode::PacketIdentifierNotFound,
                    AckProperties::default(),
                ),
                (ReasonCode::UnspecifiedError, props.clone()),
            ] {
                macro_rules! ack {
                    ($t:ident) => {
                        Packet::from($t {
                            packet_id: id,
                            reason,
                            properties: properties.clone().into(),
                        })
                    };
                }
                all.extend([ack!(PubAck), ack!(PubRec), ack!(PubRel), ack!(PubComp)]);
            }
        }
        all
    }

    /// The four-byte acknowledgement path writes what the general writer
    /// writes, and fails where it fails (inexpressible reason codes, too
    /// small a peer maximum), at every version.
    #[test]
    fn plain_acks_are_written_as_by_the_general_writer() {
        let mut fast = 0;
        for v in [
            ProtocolVersion::V3_1,
            ProtocolVersion::V3_1_1,
            ProtocolVersion::V5,
        ] {
            for max in [None, Some(3), Some(4), Some(5)] {
                let mut enc = Encoder::new(v);
                enc.set_max_packet_size(max.and_then(NonZeroU32::new));
                for p in acks() {
                    fast += usize::from(enc.plain_ack(&p).is_some());
                    let mut ours = BytesMut::from(&b"before"[..]);
                    let r = enc.encode(&p, &mut ours);
                    let mut general = BytesMut::from(&b"before"[..]);
                    let expected = enc.encode_to(&p, &mut general);
                    assert_eq!(r, expected, "{p:?} at {v:?}, max {max:?}");
                    assert_eq!(ours, general, "{p:?} at {v:?}, max {max:?}");
                }
            }
        }
        // Success without properties: 3 ids x 4 types x 3 versions x 3
        // maxima that allow four bytes.
        assert_eq!(fast, 3 * 4 * 3 * 3);
    }
}
