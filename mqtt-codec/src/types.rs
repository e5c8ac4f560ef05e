//! Small value types shared by every packet.

use std::fmt;
use std::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;

use crate::error::DecodeError;

/// The MQTT protocol level carried in CONNECT.
///
/// Decoding and encoding take the version as a parameter: the packet model is
/// the same for all three (MQTT 5.0 is the superset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ProtocolVersion {
    /// MQTT 3.1, protocol name `MQIsdp`, level 3.
    V3_1 = 3,
    /// MQTT 3.1.1, protocol name `MQTT`, level 4.
    V3_1_1 = 4,
    /// MQTT 5.0, protocol name `MQTT`, level 5.
    V5 = 5,
}

impl ProtocolVersion {
    /// Whether this version has properties, reason codes and AUTH (MQTT 5.0).
    #[inline]
    pub fn is_v5(self) -> bool {
        self == Self::V5
    }

    /// The protocol name written in CONNECT for this level.
    pub fn protocol_name(self) -> &'static str {
        match self {
            Self::V3_1 => "MQIsdp",
            Self::V3_1_1 | Self::V5 => "MQTT",
        }
    }
}

impl TryFrom<u8> for ProtocolVersion {
    type Error = DecodeError;
    fn try_from(level: u8) -> Result<Self, DecodeError> {
        match level {
            3 => Ok(Self::V3_1),
            4 => Ok(Self::V3_1_1),
            5 => Ok(Self::V5),
            other => Err(DecodeError::UnsupportedProtocolVersion(other)),
        }
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V3_1 => "3.1",
            Self::V3_1_1 => "3.1.1",
            Self::V5 => "5.0",
        })
    }
}

/// Quality of service of a PUBLISH or subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u8)]
pub enum QoS {
    /// At most once delivery (QoS 0).
    #[default]
    AtMostOnce = 0,
    /// At least once delivery (QoS 1).
    AtLeastOnce = 1,
    /// Exactly once delivery (QoS 2).
    ExactlyOnce = 2,
}

impl TryFrom<u8> for QoS {
    type Error = DecodeError;
    fn try_from(v: u8) -> Result<Self, DecodeError> {
        match v {
            0 => Ok(Self::AtMostOnce),
            1 => Ok(Self::AtLeastOnce),
            2 => Ok(Self::ExactlyOnce),
            other => Err(DecodeError::InvalidQos(other)),
        }
    }
}

/// A non-zero packet identifier.
///
/// "Each time a Client sends a new SUBSCRIBE, UNSUBSCRIBE, or PUBLISH (where
/// QoS > 0) MQTT Control Packet it MUST assign it a non-zero Packet
/// Identifier" \[MQTT-2.2.1-3\]: zero is not representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PacketId(NonZeroU16);

impl PacketId {
    /// The packet identifier `1`.
    pub const MIN: Self = Self(NonZeroU16::MIN);
    /// The packet identifier `65535`.
    pub const MAX: Self = Self(NonZeroU16::MAX);

    /// A packet identifier, or `None` for zero.
    #[inline]
    pub const fn new(id: u16) -> Option<Self> {
        match NonZeroU16::new(id) {
            Some(n) => Some(Self(n)),
            None => None,
        }
    }

    /// The identifier as a number (never zero).
    #[inline]
    pub const fn get(self) -> u16 {
        self.0.get()
    }
}

impl From<NonZeroU16> for PacketId {
    fn from(n: NonZeroU16) -> Self {
        Self(n)
    }
}

impl fmt::Display for PacketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A Subscription Identifier: a Variable Byte Integer from 1 to 268,435,455.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriptionId(NonZeroU32);

impl SubscriptionId {
    /// The largest subscription identifier, 268,435,455.
    pub const MAX: u32 = crate::primitives::VARINT_MAX;

    /// A subscription identifier, or `None` for 0 or a value over [`Self::MAX`].
    pub const fn new(id: u32) -> Option<Self> {
        if id > Self::MAX {
            return None;
        }
        match NonZeroU32::new(id) {
            Some(n) => Some(Self(n)),
            None => None,
        }
    }

    /// The identifier as a number.
    #[inline]
    pub const fn get(self) -> u32 {
        self.0.get()
    }
}

/// Payload Format Indicator of a PUBLISH or will message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum PayloadFormat {
    /// 0: unspecified bytes.
    #[default]
    Unspecified = 0,
    /// 1: UTF-8 encoded character data.
    Utf8 = 1,
}

/// Retain Handling subscription option (MQTT 5.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum RetainHandling {
    /// 0: send retained messages at the time of the subscribe.
    #[default]
    SendOnSubscribe = 0,
    /// 1: send retained messages only if the subscription did not exist.
    SendIfNew = 1,
    /// 2: do not send retained messages.
    DoNotSend = 2,
}

/// A UTF-8 Encoded String of the MQTT wire format.
///
/// The content is valid UTF-8 without U+0000 \[MQTT-1.5.4-1\] \[MQTT-1.5.4-2\],
/// checked once when the value is made.
///
/// A long string is a [`Bytes`]: decoded ones share the memory of the
/// received frame and cloning bumps a reference count. A string of at most
/// [`Utf8Bytes::INLINE_CAPACITY`] bytes made from a `&str` or a `String`, and
/// a short 5.0 property string the decoder reads (a content type, a user
/// property), is kept inline instead, as `ntex-bytes` and `smol_str` do:
/// copying a few bytes costs less than the atomic increment and decrement of
/// a shared count, and it needs no allocation. The value is the size of a
/// `Bytes` either way.
///
/// ```
/// use mqtt_codec::Utf8Bytes;
///
/// let s = Utf8Bytes::try_from("sensors/temp")?;
/// assert_eq!(&*s, "sensors/temp");
/// assert!(Utf8Bytes::try_from("a\0b").is_err());
/// # Ok::<(), mqtt_codec::DecodeError>(())
/// ```
#[derive(Clone)]
pub struct Utf8Bytes(Repr);

#[derive(Clone)]
enum Repr {
    Shared(Bytes),
    /// Three words stored little-endian: bytes 0..23 in memory hold the
    /// string (zero after its end) and byte 23 its length, at most
    /// `INLINE_CAPACITY`. Words rather than bytes so that the value is built
    /// in registers and moved whole (see [`Utf8Bytes::inline`]).
    Inline([u64; 3]),
}

impl Utf8Bytes {
    /// The longest string kept inline rather than in a [`Bytes`].
    pub const INLINE_CAPACITY: usize = 23;

    /// An empty string.
    pub const fn new() -> Self {
        Self(Repr::Inline([0; 3]))
    }

    /// A string from a static `str`, without copying.
    ///
    /// # Panics
    ///
    /// If `s` contains U+0000 (a programming error: the value is a constant).
    #[allow(clippy::panic, clippy::indexing_slicing)] // `i < b.len()`; a constant's precondition
    pub const fn from_static(s: &'static str) -> Self {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == 0 {
                panic!("MQTT strings must not contain U+0000");
            }
            i += 1;
        }
        Self(Repr::Shared(Bytes::from_static(b)))
    }

    /// The string.
    #[inline]
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor of `Utf8Bytes` checks that the bytes are
        // UTF-8 (`str::from_utf8` or a `&str`/`String` source), and neither
        // the `Bytes` nor the inline buffer is ever handed out mutably.
        #[allow(unsafe_code)]
        unsafe {
            std::str::from_utf8_unchecked(self.as_bytes())
        }
    }

    /// The string's bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        // Pointer and length are selected, then one slice is made, so that
        // callers (every encode of the string) see no second code path.
        let (ptr, len) = match &self.0 {
            Repr::Shared(b) => (b.as_ptr(), b.len()),
            Repr::Inline(words) => (Self::word_bytes(words).as_ptr(), Self::inline_len(words)),
        };
        // SAFETY: either the `Bytes`' own pointer and length, or the first
        // `len <= INLINE_CAPACITY < 24` of the 24 bytes of the inline words,
        // borrowed for `self`'s life.
        #[allow(unsafe_code)]
        unsafe {
            std::slice::from_raw_parts(ptr, len)
        }
    }

    /// The string as a [`Bytes`]: the shared one without copying, or a copy
    /// of an inline string.
    pub fn into_bytes(self) -> Bytes {
        match self.0 {
            Repr::Shared(b) => b,
            Repr::Inline { .. } => Bytes::copy_from_slice(self.as_bytes()),
        }
    }

    /// Whether the string shares a [`Bytes`] (a received frame or a long
    /// source) rather than being kept inline.
    pub fn is_shared(&self) -> bool {
        matches!(self.0, Repr::Shared(_))
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Shared(b) => b.len(),
            Repr::Inline(words) => Self::inline_len(words),
        }
    }

    /// Whether the string is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wraps bytes already checked with [`check_utf8`].
    #[inline]
    pub(crate) fn from_checked(bytes: Bytes) -> Self {
        Self(Repr::Shared(bytes))
    }

    /// Copies checked bytes inline if they fit, else slices them from
    /// `frame` (which `b` must lie in).
    #[inline(always)]
    pub(crate) fn from_checked_short(frame: &Bytes, b: &[u8]) -> Self {
        Self::inline(b).unwrap_or_else(|| Self(Repr::Shared(frame.slice_ref(b))))
    }

    /// The memory of the inline words, as bytes.
    #[inline(always)]
    fn word_bytes(words: &[u64; 3]) -> &[u8; 24] {
        // SAFETY: `[u64; 3]` is 24 initialised bytes without padding, any
        // byte is a valid `u8`, and `u8` needs no alignment.
        #[allow(unsafe_code)]
        unsafe {
            &*words.as_ptr().cast::<[u8; 24]>()
        }
    }

    /// The length of an inline string, kept in its last byte.
    #[inline(always)]
    fn inline_len(words: &[u64; 3]) -> usize {
        let [.., last] = *words;
        let len = (u64::from_le(last) >> 56) as usize;
        debug_assert!(len <= Self::INLINE_CAPACITY);
        len
    }

    /// Writes the string as an MQTT field (two-byte length, then the bytes)
    /// into `buf`; the length must fit in two bytes (checked when the
    /// packet was measured).
    ///
    /// An inline string, when `buf` has room for all its words, is written
    /// as one fixed 24-byte copy of which only its length is kept: a
    /// variable-length copy calls `memmove`, which costs more than the
    /// whole rest of the field.
    #[inline]
    pub(crate) fn put_field<B: bytes::BufMut>(&self, buf: &mut B) {
        buf.put_u16(u16::try_from(self.len()).unwrap_or(u16::MAX));
        if let Repr::Inline(words) = &self.0 {
            let chunk = buf.chunk_mut();
            if chunk.len() >= 24 {
                let len = Self::inline_len(words);
                chunk[..24].copy_from_slice(Self::word_bytes(words));
                // SAFETY: the first 24 >= `len` bytes of the chunk were just
                // written.
                #[allow(unsafe_code)]
                unsafe {
                    buf.advance_mut(len);
                }
                return;
            }
        }
        buf.put_slice(self.as_bytes());
    }

    /// Writes the string as an MQTT field at `at`, as
    /// [`put_field`](Self::put_field) does, and returns the pointer just
    /// past it. An inline string is stored as its whole 24 bytes, of which
    /// the bytes past its length are left for the next field to overwrite.
    ///
    /// # Safety
    ///
    /// `at` is valid for writes of `2 + self.len() + RAW_SLACK` bytes and
    /// does not overlap `self`'s bytes; the length fits in two bytes.
    #[inline(always)]
    #[allow(unsafe_code)]
    pub(crate) unsafe fn write_field_raw(&self, at: *mut u8) -> *mut u8 {
        let len = self.len();
        debug_assert!(len <= usize::from(u16::MAX));
        let prefix = u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes();
        // SAFETY: the caller's contract covers the two length bytes, then
        // either 24 bytes (an inline string: `len + RAW_SLACK >= 24`) or
        // the `len` bytes of the shared string, which lives apart from the
        // destination.
        unsafe {
            at.cast::<[u8; 2]>().write_unaligned(prefix);
            let at = at.add(2);
            match &self.0 {
                Repr::Inline(words) => at
                    .cast::<[u8; 24]>()
                    .write_unaligned(*Self::word_bytes(words)),
                Repr::Shared(b) => std::ptr::copy_nonoverlapping(b.as_ptr(), at, len),
            }
            at.add(len)
        }
    }

    /// `b` kept inline, if it fits (the caller has checked its content).
    ///
    /// The words are assembled from at most three overlapping loads chosen
    /// by the length, shifted into place, and the value is stored whole. A
    /// byte buffer filled by `copy_from_slice` would call `memmove` and then
    /// be read back with wider loads than it was written with, which stalls
    /// store forwarding: `perf` put half of the decode of a short property
    /// there.
    #[inline(always)]
    fn inline(b: &[u8]) -> Option<Self> {
        // The little-endian word at `b[at..at + 8]`; every call is in bounds.
        let word = |at: usize| {
            b.get(at..at + 8)
                .and_then(|w| w.try_into().ok())
                .map_or(0, u64::from_le_bytes)
        };
        let half = |at: usize| {
            b.get(at..at + 4)
                .and_then(|w| w.try_into().ok())
                .map_or(0, |w| u64::from(u32::from_le_bytes(w)))
        };
        let n = b.len();
        // A shift by 64 (a word wholly before the part wanted) leaves 0.
        let shr = |w: u64, bytes: usize| {
            u32::try_from(8 * bytes).map_or(0, |s| w.checked_shr(s).unwrap_or(0))
        };
        let (w0, w1, w2) = match n {
            0..4 => {
                let w = b
                    .iter()
                    .enumerate()
                    .fold(0, |w, (i, &c)| w | u64::from(c) << (8 * i));
                (w, 0, 0)
            }
            4..8 => (half(0) | half(n - 4) << (8 * (n - 4)), 0, 0),
            8..16 => (word(0), shr(word(n - 8), 16 - n), 0),
            16..=Self::INLINE_CAPACITY => (word(0), word(8), shr(word(n - 8), 24 - n)),
            _ => return None,
        };
        Some(Self(Repr::Inline([
            w0.to_le(),
            w1.to_le(),
            (w2 | (n as u64) << 56).to_le(),
        ])))
    }

    /// Checks UTF-8 and U+0000 on `bytes` and wraps it without copying.
    ///
    /// # Errors
    ///
    /// [`DecodeError::InvalidUtf8`] or [`DecodeError::NullCharacter`].
    pub fn from_utf8(bytes: Bytes) -> Result<Self, DecodeError> {
        check_utf8(&bytes)?;
        Ok(Self(Repr::Shared(bytes)))
    }
}

impl Default for Utf8Bytes {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for Utf8Bytes {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Utf8Bytes {}

impl PartialOrd for Utf8Bytes {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Utf8Bytes {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl std::hash::Hash for Utf8Bytes {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // By content, so that the representation never shows.
        self.as_bytes().hash(state);
    }
}

/// Validates an MQTT UTF-8 Encoded String's content.
#[inline]
pub(crate) fn check_utf8(b: &[u8]) -> Result<(), DecodeError> {
    // Most strings are ASCII without U+0000, which one pass of eight bytes
    // at a time settles.
    if crate::primitives::is_plain_ascii(b) {
        return Ok(());
    }
    // A zero byte can only be U+0000 in UTF-8.
    if b.contains(&0) {
        return Err(DecodeError::NullCharacter);
    }
    std::str::from_utf8(b).map_err(|_| DecodeError::InvalidUtf8)?;
    Ok(())
}

/// The string-like traits of a type with `as_str` and `as_bytes`: `Deref`
/// to `str`, `AsRef`, `Debug` and `Display` as the string, and comparison
/// with `str`.
macro_rules! str_like {
    ($t:ty) => {
        impl std::ops::Deref for $t {
            type Target = str;
            #[inline]
            fn deref(&self) -> &str {
                self.as_str()
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl AsRef<[u8]> for $t {
            fn as_ref(&self) -> &[u8] {
                self.as_bytes()
            }
        }

        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(self.as_str(), f)
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}
pub(crate) use str_like;

str_like!(Utf8Bytes);

impl TryFrom<&str> for Utf8Bytes {
    type Error = DecodeError;
    fn try_from(s: &str) -> Result<Self, DecodeError> {
        if s.as_bytes().contains(&0) {
            return Err(DecodeError::NullCharacter);
        }
        Ok(Self::inline(s.as_bytes())
            .unwrap_or_else(|| Self(Repr::Shared(Bytes::copy_from_slice(s.as_bytes())))))
    }
}

impl TryFrom<String> for Utf8Bytes {
    type Error = DecodeError;
    fn try_from(s: String) -> Result<Self, DecodeError> {
        if s.as_bytes().contains(&0) {
            return Err(DecodeError::NullCharacter);
        }
        Ok(Self::inline(s.as_bytes()).unwrap_or_else(|| Self(Repr::Shared(Bytes::from(s)))))
    }
}

impl TryFrom<Bytes> for Utf8Bytes {
    type Error = DecodeError;
    fn try_from(b: Bytes) -> Result<Self, DecodeError> {
        Self::from_utf8(b)
    }
}

impl From<Utf8Bytes> for Bytes {
    fn from(s: Utf8Bytes) -> Bytes {
        s.into_bytes()
    }
}

/// A User Property: a name/value pair of UTF-8 strings (MQTT 5.0).
///
/// The same name may appear more than once; order is preserved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserProperty {
    /// Property name.
    pub name: Utf8Bytes,
    /// Property value.
    pub value: Utf8Bytes,
}

impl UserProperty {
    /// A user property from a name and a value.
    pub fn new(name: Utf8Bytes, value: Utf8Bytes) -> Self {
        Self { name, value }
    }
}

/// The 4-bit packet type of the fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    /// CONNECT (1).
    Connect = 1,
    /// CONNACK (2).
    ConnAck = 2,
    /// PUBLISH (3).
    Publish = 3,
    /// PUBACK (4).
    PubAck = 4,
    /// PUBREC (5).
    PubRec = 5,
    /// PUBREL (6).
    PubRel = 6,
    /// PUBCOMP (7).
    PubComp = 7,
    /// SUBSCRIBE (8).
    Subscribe = 8,
    /// SUBACK (9).
    SubAck = 9,
    /// UNSUBSCRIBE (10).
    Unsubscribe = 10,
    /// UNSUBACK (11).
    UnsubAck = 11,
    /// PINGREQ (12).
    PingReq = 12,
    /// PINGRESP (13).
    PingResp = 13,
    /// DISCONNECT (14).
    Disconnect = 14,
    /// AUTH (15, MQTT 5.0 only).
    Auth = 15,
}

impl PacketType {
    /// The packet type from the high nibble of the first header byte.
    pub fn from_nibble(n: u8) -> Option<Self> {
        Some(match n {
            1 => Self::Connect,
            2 => Self::ConnAck,
            3 => Self::Publish,
            4 => Self::PubAck,
            5 => Self::PubRec,
            6 => Self::PubRel,
            7 => Self::PubComp,
            8 => Self::Subscribe,
            9 => Self::SubAck,
            10 => Self::Unsubscribe,
            11 => Self::UnsubAck,
            12 => Self::PingReq,
            13 => Self::PingResp,
            14 => Self::Disconnect,
            15 => Self::Auth,
            _ => return None,
        })
    }

    /// The fixed-header flags every packet but PUBLISH must carry
    /// (0b0010 for PUBREL, SUBSCRIBE and UNSUBSCRIBE, else 0).
    pub(crate) fn required_flags(self) -> u8 {
        match self {
            Self::PubRel | Self::Subscribe | Self::Unsubscribe => 0b0010,
            _ => 0,
        }
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "CONNECT",
            Self::ConnAck => "CONNACK",
            Self::Publish => "PUBLISH",
            Self::PubAck => "PUBACK",
            Self::PubRec => "PUBREC",
            Self::PubRel => "PUBREL",
            Self::PubComp => "PUBCOMP",
            Self::Subscribe => "SUBSCRIBE",
            Self::SubAck => "SUBACK",
            Self::Unsubscribe => "UNSUBSCRIBE",
            Self::UnsubAck => "UNSUBACK",
            Self::PingReq => "PINGREQ",
            Self::PingResp => "PINGRESP",
            Self::Disconnect => "DISCONNECT",
            Self::Auth => "AUTH",
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use std::collections::hash_map::DefaultHasher;
    use std::hash::{Hash, Hasher};

    use super::*;

    fn hash(s: &Utf8Bytes) -> u64 {
        let mut h = DefaultHasher::new();
        s.hash(&mut h);
        h.finish()
    }

    #[test]
    fn short_strings_are_inline_and_long_ones_shared() {
        // Every length each way of filling the inline words handles, both
        // sides of the capacity, and well beyond it; ASCII and multi-byte.
        let lens = (0..=Utf8Bytes::INLINE_CAPACITY + 2).chain([300]);
        for (len, multi_byte) in lens.flat_map(|l| [(l, false), (l, true)]) {
            let text = if multi_byte {
                "é".repeat(len / 2) + &"x".repeat(len % 2)
            } else {
                (0..len)
                    .map(|i| char::from(b'a' + u8::try_from(i % 26).unwrap()))
                    .collect()
            };
            assert_eq!(text.len(), len);
            let inline = len <= Utf8Bytes::INLINE_CAPACITY;
            for s in [
                Utf8Bytes::try_from(text.as_str()).unwrap(),
                Utf8Bytes::try_from(text.clone()).unwrap(),
            ] {
                assert_eq!(s.is_shared(), !inline, "{len}");
                assert_eq!((s.as_str(), s.len()), (text.as_str(), len));
                assert_eq!(s.is_empty(), len == 0);
                assert_eq!(s.clone().into_bytes(), text.as_bytes());
                assert_eq!(Bytes::from(s.clone()), text.as_bytes());
                // Equality, order and hash see the content, never the
                // representation.
                let shared = Utf8Bytes::from_utf8(Bytes::from(text.clone())).unwrap();
                assert!(shared.is_shared());
                assert_eq!(s, shared);
                assert_eq!(s.cmp(&shared), std::cmp::Ordering::Equal);
                assert_eq!(hash(&s), hash(&shared));
            }
        }
        assert_eq!(Utf8Bytes::new(), Utf8Bytes::default());
        assert_eq!(Utf8Bytes::new(), Utf8Bytes::from_static(""));
        assert!(Utf8Bytes::try_from("a\0b").is_err());
        assert!(Utf8Bytes::try_from(String::from("\0")).is_err());
        let (a, long) = (
            Utf8Bytes::try_from("a"),
            Utf8Bytes::try_from("ab".repeat(20)),
        );
        assert!(a.unwrap() < long.unwrap());
    }

    /// Inline strings are written with one wide copy when the buffer has
    /// room past them, and byte-exact otherwise; both give the same field.
    #[test]
    fn put_field_writes_exactly_the_field() {
        use bytes::BufMut;
        for len in (0..=Utf8Bytes::INLINE_CAPACITY + 1).chain([300]) {
            let text: String = (0..len)
                .map(|i| char::from(b'a' + u8::try_from(i % 26).unwrap()))
                .collect();
            let mut want = vec![];
            want.put_u16(u16::try_from(len).unwrap());
            want.extend_from_slice(text.as_bytes());
            for s in [
                Utf8Bytes::try_from(text.as_str()).unwrap(),
                Utf8Bytes::from_utf8(Bytes::from(text.clone())).unwrap(),
            ] {
                // A slice of the exact size, and with room to spare: the
                // field is written and the slice advanced past it only.
                for spare in [0, 1, 24, 40] {
                    let mut out = vec![0xEE; 2 + len + spare];
                    let mut w: &mut [u8] = &mut out;
                    s.put_field(&mut w);
                    assert_eq!(w.len(), spare, "{len} {spare}");
                    assert_eq!(&out[..2 + len], want.as_slice(), "{len} {spare}");
                }
                let mut b = bytes::BytesMut::with_capacity(4);
                b.put_u8(9);
                s.put_field(&mut b);
                assert_eq!(&b[1..], want.as_slice(), "{len}");
            }
        }
    }

    #[test]
    fn from_checked_short_copies_only_what_fits() {
        let frame = Bytes::from(vec![b'a'; 64]);
        let short = Utf8Bytes::from_checked_short(&frame, &frame[..Utf8Bytes::INLINE_CAPACITY]);
        let long = Utf8Bytes::from_checked_short(&frame, &frame[..=Utf8Bytes::INLINE_CAPACITY]);
        assert!(!short.is_shared());
        assert!(long.is_shared());
        assert_eq!(long.as_bytes().as_ptr(), frame.as_ptr());
        assert_eq!(short.len() + 1, long.len());
    }
}
