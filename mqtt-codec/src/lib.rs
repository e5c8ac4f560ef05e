//! A sans-IO codec for every MQTT 3.1, 3.1.1 and 5.0 control packet.
//!
//! `mqtt-codec` turns bytes into [`Packet`]s and packets into bytes. It does
//! no I/O, reads no clock and holds no connection state beyond what framing
//! needs (the protocol version and the maximum packet size): the session
//! logic (QoS flows, keep-alive, topic aliases) lives in the crates above it.
//! It builds for `wasm32-unknown-unknown` and depends on `bytes`, `nom` and
//! `thiserror` only.
//!
//! ```text
//!   socket bytes ──▶ BytesMut ──▶ Decoder::decode ──▶ Packet ──▶ session
//!                   (caller)     Ok(None): need more   │
//!                                Err: close with       │ Bytes slices of the
//!                                reason_code()         ▼ frame: no copies
//!   socket bytes ◀── BytesMut ◀── Encoder::encode ◀── Packet ◀── session
//!                               exact size, one reserve, EncodeError
//!                               instead of a packet that breaks the spec
//! ```
//!
//! - **One model for all versions.** MQTT 5.0 is the superset; the version is
//!   a parameter of [`Decoder`] and [`Encoder`]. A 5.0-only field encoded at
//!   3.1.1 is an [`EncodeError`]; a 5.0 property received at 3.1.1 is a
//!   [`DecodeError`]. CONNECT is decoded before the version is known.
//! - **Streaming.** Partial input is `Ok(None)` and consumes nothing; a frame
//!   over the maximum packet size is refused from its fixed header.
//! - **Zero copy.** Payloads, topics, strings and binary properties are
//!   [`bytes::Bytes`] slices of the received frame; strings are checked
//!   UTF-8 once ([`Utf8Bytes`]). The exception is a 5.0 property string of
//!   at most 23 bytes, which is copied inline into its `Utf8Bytes`: cheaper
//!   than sharing it, and it allocates nothing.
//! - **Strict.** Reserved bits, non-minimal integers, QoS 3, packet id 0,
//!   duplicate or misplaced properties, invalid UTF-8, trailing bytes: each is
//!   a precise [`DecodeError`] with its MQTT 5.0 [`ReasonCode`]. No input
//!   panics (the crate is fuzzed).
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use mqtt_codec::{
//!     Decoder, Encoder, Packet, PacketId, ProtocolVersion, Publish, PublishTopic, QoS,
//! };
//!
//! // A client encodes a QoS 1 PUBLISH with a message expiry (MQTT 5.0)...
//! let mut publish = Publish::new(PublishTopic::from_static("sensors/1/temp"), &b"21.5"[..]);
//! publish.qos = QoS::AtLeastOnce;
//! publish.packet_id = PacketId::new(7);
//! publish.properties.to_mut().message_expiry_interval = Some(60);
//! let mut wire = BytesMut::new();
//! Encoder::new(ProtocolVersion::V5).encode(&publish.clone().into(), &mut wire)?;
//!
//! // ...and a server decodes it, whatever way the bytes arrive.
//! let mut dec = Decoder::with_version(ProtocolVersion::V5);
//! let mut inbox = BytesMut::new();
//! let mut got = None;
//! for chunk in wire.chunks(3) {
//!     inbox.extend_from_slice(chunk);
//!     if let Some(p) = dec.decode(&mut inbox)? {
//!         got = Some(p);
//!     }
//! }
//! assert_eq!(got, Some(Packet::Publish(publish)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod decoder;
mod encoder;
mod error;
pub mod list;
mod packet;
mod primitives;
pub mod properties;
mod reason;
mod topic;
mod types;

pub use decoder::{Decoder, MAX_PACKET_SIZE};
pub use encoder::Encoder;
pub use error::{DecodeError, EncodeError};
pub use list::PropertyList;
pub use mqtt_topic::{TopicError, TopicName};
pub use packet::{
    Auth, ConnAck, Connect, Disconnect, Packet, PubAck, PubComp, PubRec, PubRel, Publish, SubAck,
    Subscribe, SubscribeFilter, SubscriptionOptions, UnsubAck, Unsubscribe, Will,
};
pub use properties::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PropertySet, Props, PublishProperties, SubscribeProperties, UnsubscribeProperties,
    WillProperties,
};
pub use reason::ReasonCode;
pub use topic::PublishTopic;
pub use types::{
    PacketId, PacketType, PayloadFormat, ProtocolVersion, QoS, RetainHandling, SubscriptionId,
    UserProperty, Utf8Bytes,
};

/// The README's examples, compiled (and run, unless `no_run`) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
