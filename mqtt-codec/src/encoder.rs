//! Encoding packets into buffers.

use std::num::NonZeroU32;

use bytes::{BufMut, BytesMut};

use crate::error::EncodeError;
use crate::packet::{Packet, Publish};
use crate::types::ProtocolVersion;

/// Encodes packets for a connection of a given version.
///
/// The exact size is computed first, checked against the peer's Maximum
/// Packet Size, and the buffer grows once. Nothing is written when the
/// packet cannot be encoded.
///
/// ```
/// use bytes::BytesMut;
/// use mqtt_codec::{Encoder, ProtocolVersion, Publish, Utf8Bytes};
///
/// let enc = Encoder::new(ProtocolVersion::V3_1_1);
/// let mut buf = BytesMut::new();
/// let p = Publish::new(Utf8Bytes::from_static("a/b"), &b"hi"[..]);
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
            let total = self.put_publish(p, p.payload.len(), dst)?;
            dst.put_slice(&p.payload);
            return Ok(total);
        }
        let (remaining, total) = self.measure(packet)?;
        // Written through a slice of the exact size: the small writes (one
        // per field) inline to stores, where `BytesMut`'s each check for
        // room and call out to copy two bytes. Zeroing first costs less.
        // (Not for PUBLISH above: a few large writes, where it does not.)
        let start = dst.len();
        dst.resize(start + total, 0);
        let mut w: &mut [u8] = dst.get_mut(start..).unwrap_or_default();
        packet.put(self.version, remaining, &mut w);
        debug_assert!(w.is_empty(), "encoded size differs from the measured one");
        Ok(total)
    }

    /// Writes `packet` into any [`BufMut`] that has room for it.
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
        packet.put(self.version, remaining, dst);
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
        self.put_publish(publish, 0, dst)
    }

    /// Checks `p`, reserves room for all of it but its payload and `extra`
    /// more bytes, and appends all of it but its payload. Returns the size
    /// of the whole packet.
    ///
    /// A PUBLISH without properties is measured by a check that returns
    /// only whether it is valid, in registers; the full measure, which
    /// builds the precise error, runs for the others.
    #[inline]
    fn put_publish(
        &self,
        p: &Publish,
        extra: usize,
        dst: &mut BytesMut,
    ) -> Result<usize, EncodeError> {
        let remaining = match p.plain_len(self.version) {
            Some(n) => n,
            None => p.encoded_len(self.version)?,
        };
        let total = self.total_len(remaining)?;
        dst.reserve(total - p.payload.len() + extra);
        p.put_head_with_header(self.version, remaining, dst);
        Ok(total)
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
