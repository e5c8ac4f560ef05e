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

/// A UTF-8 Encoded String of the MQTT wire format, kept as a [`Bytes`].
///
/// The content is valid UTF-8 without U+0000 \[MQTT-1.5.4-1\] \[MQTT-1.5.4-2\],
/// checked once when the value is made. Decoded strings share the memory of
/// the received frame; cloning only bumps a reference count.
///
/// ```
/// use mqtt_codec::Utf8Bytes;
///
/// let s = Utf8Bytes::try_from("sensors/temp")?;
/// assert_eq!(&*s, "sensors/temp");
/// assert!(Utf8Bytes::try_from("a\0b").is_err());
/// # Ok::<(), mqtt_codec::DecodeError>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// An empty string.
    pub const fn new() -> Self {
        Self(Bytes::new())
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
        Self(Bytes::from_static(b))
    }

    /// The string.
    #[inline]
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor of `Utf8Bytes` checks that the bytes are
        // UTF-8 (`str::from_utf8` or a `&str`/`String` source), and the inner
        // `Bytes` is never handed out mutably.
        #[allow(unsafe_code)]
        unsafe {
            std::str::from_utf8_unchecked(&self.0)
        }
    }

    /// The underlying bytes (shared with the frame it was decoded from).
    #[inline]
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// The underlying bytes.
    #[inline]
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the string is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Wraps bytes already checked with [`check_utf8`].
    #[inline]
    pub(crate) fn from_checked(bytes: Bytes) -> Self {
        Self(bytes)
    }

    /// Checks UTF-8 and U+0000 on `bytes` and wraps it without copying.
    ///
    /// # Errors
    ///
    /// [`DecodeError::InvalidUtf8`] or [`DecodeError::NullCharacter`].
    pub fn from_utf8(bytes: Bytes) -> Result<Self, DecodeError> {
        check_utf8(&bytes)?;
        Ok(Self(bytes))
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
        Self::try_from(s.to_owned())
    }
}

impl TryFrom<String> for Utf8Bytes {
    type Error = DecodeError;
    fn try_from(s: String) -> Result<Self, DecodeError> {
        if s.as_bytes().contains(&0) {
            return Err(DecodeError::NullCharacter);
        }
        Ok(Self(Bytes::from(s)))
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
        s.0
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
