//! Errors: what the peer did wrong, and what the caller did wrong.

use mqtt_codec::{DecodeError, PacketType, ReasonCode};

/// The peer broke the protocol. The session is closed; the reason code is
/// sent in DISCONNECT (MQTT 5.0) or the connection is just closed (3.1.1).
///
/// Protocol errors are sticky: the session reports the first one and
/// ignores later input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The bytes could not be decoded.
    #[error("malformed packet: {0}")]
    Malformed(#[from] DecodeError),
    /// The first packet of a connection was not CONNECT \[MQTT-3.1.0-1\].
    #[error("first packet is {0}, not CONNECT")]
    FirstPacketNotConnect(PacketType),
    /// A second CONNECT on a connection \[MQTT-3.1.0-2\].
    #[error("second CONNECT")]
    SecondConnect,
    /// A packet this side never receives (a client's CONNACK to a server, a
    /// SUBSCRIBE to a client, a packet before CONNACK).
    #[error("unexpected {0}")]
    UnexpectedPacket(PacketType),
    /// More QoS 1 and 2 publications in flight than our Receive Maximum.
    #[error("receive maximum exceeded")]
    ReceiveMaximumExceeded,
    /// A Topic Alias of 0 or over our Topic Alias Maximum.
    #[error("topic alias {0} out of range")]
    TopicAliasInvalid(u16),
    /// A PUBLISH with an empty topic and a Topic Alias never set.
    #[error("unknown topic alias {0}")]
    TopicAliasUnknown(u16),
    /// A topic name that is not valid (for instance over 65,535 bytes).
    #[error("invalid topic name")]
    TopicNameInvalid,
    /// A PUBLISH with a QoS above the Maximum QoS we announced.
    #[error("QoS not supported")]
    QoSNotSupported,
    /// A retained PUBLISH when we announced Retain Available = 0.
    #[error("retain not supported")]
    RetainNotSupported,
    /// A PUBLISH from a client with a Subscription Identifier
    /// \[MQTT-3.3.4-6\].
    #[error("subscription identifier from a client")]
    SubscriptionIdFromClient,
    /// The peer announced a Receive Maximum of 0, a server keep-alive or a
    /// CONNACK that cannot be honoured.
    #[error("invalid CONNACK")]
    InvalidConnAck,
    /// An acknowledgement for a packet identifier not in use, where that is
    /// an error (SUBACK, UNSUBACK).
    #[error("unknown packet identifier {0} in {1}")]
    UnknownPacketId(u16, PacketType),
    /// SUBACK or UNSUBACK with a number of codes other than the number of
    /// filters.
    #[error("{0} has the wrong number of reason codes")]
    ReasonCountMismatch(PacketType),
    /// The peer sent nothing for 1.5 times the keep-alive (server side), or no
    /// PINGRESP came in time (client side).
    #[error("keep alive timeout")]
    KeepAliveTimeout,
    /// No CONNECT (server side) or CONNACK (client side) in time.
    #[error("connect timeout")]
    ConnectTimeout,
    /// A packet over our Maximum Packet Size.
    #[error("packet too large")]
    PacketTooLarge,
    /// No Local set on a shared subscription \[MQTT-3.8.3-4\].
    #[error("No Local on a shared subscription")]
    NoLocalOnSharedSubscription,
}

impl ProtocolError {
    /// The MQTT 5.0 reason code to report the error with.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Self::Malformed(e) => e.reason_code(),
            Self::ReceiveMaximumExceeded => ReasonCode::ReceiveMaximumExceeded,
            Self::TopicAliasInvalid(_) => ReasonCode::TopicAliasInvalid,
            Self::TopicNameInvalid => ReasonCode::TopicNameInvalid,
            Self::QoSNotSupported => ReasonCode::QoSNotSupported,
            Self::RetainNotSupported => ReasonCode::RetainNotSupported,
            Self::KeepAliveTimeout => ReasonCode::KeepAliveTimeout,
            Self::ConnectTimeout => ReasonCode::MaximumConnectTime,
            Self::PacketTooLarge => ReasonCode::PacketTooLarge,
            Self::FirstPacketNotConnect(_)
            | Self::SecondConnect
            | Self::UnexpectedPacket(_)
            | Self::TopicAliasUnknown(_)
            | Self::SubscriptionIdFromClient
            | Self::InvalidConnAck
            | Self::UnknownPacketId(..)
            | Self::ReasonCountMismatch(_)
            | Self::NoLocalOnSharedSubscription => ReasonCode::ProtocolError,
        }
    }
}

/// The caller asked for something the session cannot do now. Nothing was
/// changed; the session goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// The session is not connected (no CONNACK yet, or closed).
    #[error("not connected")]
    NotConnected,
    /// The session is closed for good.
    #[error("session closed")]
    Closed,
    /// All 65,535 packet identifiers are in use.
    #[error("packet identifiers exhausted")]
    PacketIdsExhausted,
    /// The bounded queue is full.
    #[error("queue full")]
    QueueFull,
    /// The peer does not support this QoS (CONNACK Maximum QoS).
    #[error("QoS not supported by the server")]
    QoSNotSupported,
    /// The peer does not support retained messages.
    #[error("retain not supported by the server")]
    RetainNotSupported,
    /// The server announced in CONNACK that it does not support this
    /// (wildcard subscriptions, subscription identifiers, shared
    /// subscriptions).
    #[error("{0} not supported by the server")]
    NotSupported(&'static str),
    /// SUBSCRIBE or UNSUBSCRIBE without a filter.
    #[error("no topic filter")]
    NoTopicFilters,
    /// No Local on a shared subscription \[MQTT-3.8.3-4\].
    #[error("no local on a shared subscription")]
    NoLocalOnSharedSubscription,
    /// What the call asks for exists only in MQTT 5.0 (No Local, Retain As
    /// Published, Retain Handling, Subscription Identifiers), and the
    /// session speaks 3.1 or 3.1.1.
    #[error("{0} needs MQTT 5.0")]
    RequiresV5(&'static str),
    /// Encoded, the packet would exceed the Maximum Packet Size the server
    /// announced in CONNACK, and "the Client MUST NOT send packets exceeding
    /// Maximum Packet Size to the Server" \[MQTT-3.2.2-15\]: it was not
    /// sent. (A PUBLISH is not refused but dropped, with
    /// [`DropReason::TooLarge`](crate::DropReason::TooLarge).)
    #[error("packet of {size} bytes exceeds the server's maximum packet size of {max}")]
    PacketTooLarge {
        /// Size of the packet, fixed header included.
        size: usize,
        /// The server's Maximum Packet Size.
        max: u32,
    },
    /// No packet with this identifier awaits a manual acknowledgement.
    #[error("no message awaits acknowledgement with packet identifier {0}")]
    NotAwaitingAck(u16),
    /// The call is not valid in the session's current state (e.g. accepting a
    /// connection twice).
    #[error("invalid in the current state: {0}")]
    InvalidState(&'static str),
}

/// The DISCONNECT that reports `e` to the peer: its reason code, and what
/// went wrong as the Reason String (which the session drops when the peer's
/// Maximum Packet Size cannot take it \[MQTT-3.14.2-3\]).
pub(crate) fn disconnect_for(e: &ProtocolError) -> mqtt_codec::Disconnect {
    let mut d = mqtt_codec::Disconnect::new(e.reason_code());
    d.properties.to_mut().reason_string = mqtt_codec::Utf8Bytes::try_from(e.to_string()).ok();
    d
}
