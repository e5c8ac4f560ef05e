//! Errors of the client: connecting, and the operations on a connected client.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;

use mqtt_codec::{EncodeError, ReasonCode};
use mqtt_session::{CloseReason, DropReason, ProtocolError, UsageError};
use mqtt_topic::TopicError;

/// Why a connection could not be made or was lost.
///
/// Cheap to clone (the I/O error is shared), so that events can carry it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The options are not usable (for instance a client identifier with
    /// U+0000, or a URL that is not `mqtt://host[:port]`).
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// The transport failed: connect, read or write.
    #[error("transport error: {0}")]
    Io(Arc<io::Error>),
    /// The transport did not connect, or CONNACK did not arrive, in time.
    #[error("connect timed out")]
    Timeout,
    /// The server refused the connection in CONNACK.
    #[error("connection refused: {} (0x{:02x})", .0.description(), .0.as_u8())]
    Refused(ReasonCode),
    /// The server sent DISCONNECT (MQTT 5.0) with this reason.
    #[error("disconnected by the server: {} (0x{:02x})", .0.description(), .0.as_u8())]
    ServerDisconnected(ReasonCode),
    /// The server broke the protocol (or sent bytes that do not decode).
    #[error("protocol error: {0}")]
    Protocol(ProtocolError),
    /// The server closed the connection.
    #[error("connection closed by the server")]
    Closed,
    /// The client closed the connection (a call to `disconnect`, or every
    /// handle dropped).
    #[error("connection closed by the client")]
    ClosedLocally,
    /// A packet the session produced could not be encoded (the session
    /// checks what it sends, so this is a bug): the connection is closed
    /// rather than left waiting for the answer to a packet never sent.
    #[error("cannot encode a packet: {0}")]
    Encode(EncodeError),
}

impl From<io::Error> for ConnectionError {
    fn from(e: io::Error) -> Self {
        Self::Io(Arc::new(e))
    }
}

impl From<CloseReason> for ConnectionError {
    fn from(r: CloseReason) -> Self {
        match r {
            CloseReason::ServerDisconnected(code) => Self::ServerDisconnected(code),
            CloseReason::Rejected(code) => Self::Refused(code),
            CloseReason::ProtocolError(ProtocolError::ConnectTimeout) => Self::Timeout,
            CloseReason::ProtocolError(e) => Self::Protocol(e),
            CloseReason::ConnectionLost => Self::Closed,
            CloseReason::ClientDisconnected(_) | CloseReason::Local(_) => Self::ClosedLocally,
            _ => Self::Closed,
        }
    }
}

/// What went wrong with an operation of a [`Client`](crate::Client):
/// publish, subscribe, unsubscribe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The client is shut down (disconnected, reconnection disabled or
    /// failed for good, or every handle dropped): nothing more is sent.
    #[error("client closed")]
    Closed,
    /// A topic name or filter is not valid.
    #[error("invalid topic: {0}")]
    InvalidTopic(#[from] TopicError),
    /// The message cannot be encoded at the connection's protocol version
    /// (for instance a property that does not exist there).
    #[error("cannot encode: {0}")]
    Encode(#[from] EncodeError),
    /// The PUBLISH would exceed the client's own maximum packet size
    /// ([`ClientOptions::max_outgoing_packet_size`](crate::ClientOptions::max_outgoing_packet_size)),
    /// or without one the protocol's 256 MiB; it is refused before it is
    /// queued. (A PUBLISH over the Maximum Packet Size the server announced
    /// is known only on the connection: it completes with
    /// [`Dropped`](Self::Dropped)`(`[`DropReason::TooLarge`]`)`, as MQTT
    /// 5.0 has it discarded "as if it had completed sending" \[MQTT-3.1.2-25\];
    /// a SUBSCRIBE or UNSUBSCRIBE over it fails with
    /// [`Usage`](Self::Usage)`(UsageError::PacketTooLarge)`.)
    #[error("packet of {size} bytes exceeds the maximum of {max}")]
    PacketTooLarge {
        /// Size of the packet.
        size: usize,
        /// The limit.
        max: u32,
    },
    /// The bounded outgoing queue is full (only from the `try_` methods).
    #[error("outgoing queue full")]
    QueueFull,
    /// The server refused the operation with this reason code (PUBACK,
    /// PUBREC, SUBACK or UNSUBACK with a code of 0x80 or above).
    #[error("refused by the server: {} (0x{:02x})", .0.description(), .0.as_u8())]
    Refused(ReasonCode),
    /// The message was not delivered (expired in the queue, too large for
    /// the server, QoS or retain not supported by the server...).
    #[error("message dropped: {0:?}")]
    Dropped(DropReason),
    /// A QoS 0 message had been encoded but the connection broke before it
    /// was written: it is lost (at most once).
    #[error("connection lost before the message was written")]
    ConnectionLost,
    /// The session refused the call.
    #[error("{0}")]
    Usage(#[from] UsageError),
}

impl From<Infallible> for ClientError {
    fn from(e: Infallible) -> Self {
        match e {}
    }
}
