//! Decode and encode errors.

use crate::reason::ReasonCode;
use crate::types::{PacketType, ProtocolVersion};

/// Why bytes from the peer are not a valid MQTT packet.
///
/// After a `DecodeError` the stream is corrupt and the connection should be
/// closed; [`reason_code`](Self::reason_code) gives the MQTT 5.0 reason to
/// send in DISCONNECT (or CONNACK, for a bad CONNECT) first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The Remaining Length has a fifth byte or exceeds 268,435,455.
    #[error("malformed remaining length")]
    MalformedRemainingLength,
    /// A Variable Byte Integer is not encoded in the fewest bytes
    /// \[MQTT-1.5.5-1\].
    #[error("variable byte integer not minimally encoded")]
    NonMinimalVarInt,
    /// The whole packet exceeds the configured Maximum Packet Size.
    #[error("packet of {size} bytes exceeds maximum {max}")]
    PacketTooLarge {
        /// Total size of the packet, fixed header included.
        size: u64,
        /// The configured maximum.
        max: u32,
    },
    /// The packet type nibble is reserved (0), or AUTH (15) below MQTT 5.0.
    #[error("invalid packet type {0}")]
    InvalidPacketType(u8),
    /// Reserved fixed-header flag bits have the wrong value \[MQTT-2.1.3-1\].
    #[error("invalid fixed header flags {flags:#06b} for {packet}")]
    InvalidHeaderFlags {
        /// The packet type.
        packet: PacketType,
        /// The low nibble of the first byte.
        flags: u8,
    },
    /// A QoS of 3 \[MQTT-3.3.1-4\].
    #[error("invalid QoS {0}")]
    InvalidQos(u8),
    /// DUP is set on a QoS 0 PUBLISH \[MQTT-3.3.1-2\].
    #[error("DUP flag set on a QoS 0 PUBLISH")]
    DupOnQos0,
    /// A Packet Identifier of 0 where one is required \[MQTT-2.2.1-3\].
    #[error("packet identifier 0")]
    ZeroPacketId,
    /// The packet ended before a field was complete.
    #[error("unexpected end of packet")]
    UnexpectedEnd,
    /// Bytes remain after the last field of the packet.
    #[error("{0} trailing bytes after the packet")]
    TrailingBytes(usize),
    /// The CONNECT protocol name is not `MQTT` (or `MQIsdp` for level 3).
    #[error("invalid protocol name")]
    InvalidProtocolName,
    /// The CONNECT protocol level is not 3, 4 or 5.
    #[error("unsupported protocol level {0}")]
    UnsupportedProtocolVersion(u8),
    /// The CONNECT flags break a rule (reserved bit set \[MQTT-3.1.2-3\],
    /// will QoS/retain without a will \[MQTT-3.1.2-11\]\[MQTT-3.1.2-13\], a
    /// 3.1.1 password without a user name \[MQTT-3.1.2-22\]).
    #[error("invalid CONNECT flags {0:#010b}")]
    InvalidConnectFlags(u8),
    /// CONNACK acknowledge flags have reserved bits set \[MQTT-3.2.2-1\], or a
    /// session present flag with a non-zero return code \[MQTT-3.2.2-4\].
    #[error("invalid CONNACK flags {0:#010b}")]
    InvalidConnAckFlags(u8),
    /// A string is not well-formed UTF-8 \[MQTT-1.5.4-1\].
    #[error("invalid UTF-8 string")]
    InvalidUtf8,
    /// A string contains U+0000 \[MQTT-1.5.4-2\].
    #[error("string contains U+0000")]
    NullCharacter,
    /// A PUBLISH Topic Name contains a wildcard \[MQTT-3.3.2-2\].
    #[error("topic name contains a wildcard")]
    WildcardInTopicName,
    /// A PUBLISH Topic Name is empty (allowed only with a Topic Alias in 5.0).
    #[error("empty topic name")]
    EmptyTopicName,
    /// SUBSCRIBE or UNSUBSCRIBE without any topic filter \[MQTT-3.8.3-2\]
    /// \[MQTT-3.10.3-2\].
    #[error("no topic filter in {0}")]
    NoTopicFilters(PacketType),
    /// Reserved bits of the subscription options are set \[MQTT-3.8.3-5\]
    /// (at 3.1.1 \[MQTT-3.8.3-4\], every bit above the QoS).
    #[error("invalid subscription options {0:#010b}")]
    InvalidSubscriptionOptions(u8),
    /// A 5.0 subscription's Maximum QoS or Retain Handling is 3, which MQTT
    /// 5.0 section 3.8.3.1 makes a Protocol Error (at 3.1.1, a QoS of 3 is
    /// [`InvalidQos`](Self::InvalidQos)).
    #[error("maximum QoS or retain handling of 3 in subscription options {0:#010b}")]
    InvalidSubscriptionValue(u8),
    /// A byte that is not a reason code, or one not allowed in this packet.
    #[error("invalid reason code {code:#04x} in {packet}")]
    InvalidReasonCode {
        /// The packet type.
        packet: PacketType,
        /// The byte read.
        code: u8,
    },
    /// A property identifier that MQTT 5.0 does not define.
    #[error("unknown property identifier {0:#04x}")]
    UnknownProperty(u32),
    /// A property that is not allowed in this packet (or will).
    #[error("property {property:#04x} not allowed in {packet}")]
    PropertyNotAllowed {
        /// The packet type (CONNECT for will properties).
        packet: PacketType,
        /// The property identifier.
        property: u8,
    },
    /// A property that may appear once appears twice.
    #[error("duplicate property {0:#04x}")]
    DuplicateProperty(u8),
    /// A property value outside its allowed range (for example Receive
    /// Maximum 0, Topic Alias 0, Maximum QoS 2, a boolean byte over 1).
    #[error("invalid value for property {0:#04x}")]
    InvalidPropertyValue(u8),
    /// Authentication Data without an Authentication Method.
    #[error("authentication data without authentication method")]
    AuthDataWithoutMethod,
    /// An AUTH without an Authentication Method (MQTT 5.0 section
    /// 3.15.2.2.2): only the short AUTH of Success without properties may
    /// leave it out.
    #[error("AUTH without authentication method")]
    AuthWithoutMethod,
    /// A packet other than CONNECT arrived before the protocol version was
    /// known (the first packet must be CONNECT \[MQTT-3.1.0-1\]).
    #[error("expected CONNECT, got {0}")]
    ExpectedConnect(PacketType),
}

impl DecodeError {
    /// The MQTT 5.0 reason code that reports this error to the peer.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Self::PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            Self::UnsupportedProtocolVersion(_) | Self::InvalidProtocolName => {
                ReasonCode::UnsupportedProtocolVersion
            }
            Self::WildcardInTopicName => ReasonCode::TopicNameInvalid,
            Self::DuplicateProperty(_)
            | Self::InvalidPropertyValue(_)
            | Self::AuthDataWithoutMethod
            | Self::AuthWithoutMethod
            | Self::InvalidSubscriptionValue(_)
            | Self::NoTopicFilters(_)
            | Self::ExpectedConnect(_)
            | Self::EmptyTopicName => ReasonCode::ProtocolError,
            Self::MalformedRemainingLength
            | Self::NonMinimalVarInt
            | Self::InvalidPacketType(_)
            | Self::InvalidHeaderFlags { .. }
            | Self::InvalidQos(_)
            | Self::DupOnQos0
            | Self::ZeroPacketId
            | Self::UnexpectedEnd
            | Self::TrailingBytes(_)
            | Self::InvalidConnectFlags(_)
            | Self::InvalidConnAckFlags(_)
            | Self::InvalidUtf8
            | Self::NullCharacter
            | Self::InvalidSubscriptionOptions(_)
            | Self::InvalidReasonCode { .. }
            | Self::UnknownProperty(_)
            | Self::PropertyNotAllowed { .. } => ReasonCode::MalformedPacket,
        }
    }
}

/// Why a packet cannot be encoded as asked.
///
/// An encoder never writes a packet that breaks the specification: it reports
/// the problem instead, before writing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A string or binary field is longer than 65,535 bytes.
    #[error("field of {0} bytes exceeds 65535")]
    FieldTooLong(usize),
    /// The packet's Remaining Length would exceed 268,435,455 bytes.
    #[error("remaining length {0} exceeds 268435455")]
    RemainingLengthTooLarge(usize),
    /// The packet exceeds the peer's Maximum Packet Size.
    #[error("packet of {size} bytes exceeds maximum {max}")]
    PacketTooLarge {
        /// Total size of the packet, fixed header included.
        size: usize,
        /// The maximum it must fit.
        max: u32,
    },
    /// A field or value exists only in MQTT 5.0 (properties, a reason code
    /// other than success, subscription options, AUTH).
    #[error("{field} cannot be encoded at MQTT {version}")]
    NotInVersion {
        /// What could not be expressed.
        field: &'static str,
        /// The target version.
        version: ProtocolVersion,
    },
    /// A QoS 1 or 2 PUBLISH without a packet identifier, or a QoS 0 PUBLISH
    /// with one \[MQTT-2.2.1-2\].
    #[error("packet identifier presence does not match QoS")]
    PacketIdMismatch,
    /// DUP set on a QoS 0 PUBLISH \[MQTT-3.3.1-2\].
    #[error("DUP flag set on a QoS 0 PUBLISH")]
    DupOnQos0,
    /// SUBSCRIBE or UNSUBSCRIBE without a topic filter.
    #[error("no topic filter")]
    NoTopicFilters,
    /// A SUBSCRIBE or UNSUBSCRIBE topic filter that breaks the rules of a
    /// filter (MQTT 5.0 section 4.7, and 4.8.2 for `$share/`).
    #[error("invalid topic filter: {0}")]
    InvalidTopicFilter(crate::TopicError),
    /// No Local on a shared subscription \[MQTT-3.8.3-4\].
    #[error("no local on a shared subscription")]
    NoLocalOnSharedSubscription,
    /// A property value its sender may not send (Maximum QoS other than 0
    /// or 1, MQTT 5.0 section 3.2.2.3.4).
    #[error("invalid value for property {0:#04x}")]
    InvalidPropertyValue(u8),
    /// A reason code not allowed in this packet.
    #[error("reason code {code:#04x} not allowed in {packet}")]
    InvalidReasonCode {
        /// The packet type.
        packet: PacketType,
        /// The code.
        code: u8,
    },
    /// A PUBLISH or will topic name (or Response Topic) with a wildcard, or
    /// empty without a Topic Alias.
    #[error("invalid topic name")]
    InvalidTopicName,
    /// Authentication Data without an Authentication Method.
    #[error("authentication data without authentication method")]
    AuthDataWithoutMethod,
    /// An AUTH without an Authentication Method (see
    /// [`DecodeError::AuthWithoutMethod`]).
    #[error("AUTH without authentication method")]
    AuthWithoutMethod,
    /// An empty client identifier at 3.1.1 without Clean Session
    /// \[MQTT-3.1.3-7\], or at 3.1 (which requires 1 to 23 characters).
    #[error("empty client identifier not allowed here")]
    EmptyClientId,
    /// A 3.1.1 password without a user name \[MQTT-3.1.2-22\].
    #[error("password without user name")]
    PasswordWithoutUsername,
    /// The buffer given to [`Encoder::encode_to`](crate::Encoder::encode_to)
    /// has less room than the packet needs.
    #[error("buffer has {available} bytes of room, packet needs {needed}")]
    BufferTooSmall {
        /// Bytes the packet needs.
        needed: usize,
        /// Bytes of room in the buffer.
        available: usize,
    },
}
