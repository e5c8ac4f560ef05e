//! A Tokio MQTT 3.1 / 3.1.1 / 5.0 client: a thin shell around the sans-IO
//! client session of [`mqtt_session`].
//!
//! - [`Client`] is a cheap, cloneable, `Send + Sync` handle. The connection
//!   is driven by a task the client spawns: nothing has to be polled for
//!   publishes, acknowledgements, keep-alive or reconnection to happen.
//!   [`Client::events`] gives every protocol event to those who want them.
//! - [`Client::publish`] resolves when the delivery is complete for its
//!   QoS: written (QoS 0), PUBACK (QoS 1), PUBCOMP (QoS 2), with the
//!   server's reason code. The outgoing queue is bounded:
//!   [`Client::publish`] waits for room, [`Client::try_publish`] never
//!   waits.
//! - [`Client::subscribe`] returns the SUBACK result and a
//!   [`Subscription`] stream of the matching messages, routed locally;
//!   overlapping subscriptions each get their copy.
//! - Reconnection with exponential backoff and jitter
//!   ([`ReconnectOptions`]): the session is resumed and unacknowledged
//!   messages are sent again; when the server lost the session, the client
//!   subscribes again, publishes again what was in flight, and says so
//!   ([`Event::SessionLost`], [`Event::Reconnected`]).
//! - Transports behind a trait ([`transport::Connector`]): TCP built in,
//!   TLS or WebSocket addable without touching the client.
//!
//! What it does not do: it holds no protocol logic of its own (packet
//! identifiers, QoS flows, keep-alive, topic aliases, resumption are
//! [`mqtt_session::ClientSession`]'s) and no persistence: a session
//! survives reconnections, not a restart of the process (the server keeps
//! it for a client that reconnects with the same id and `clean_start(false)`).
//!
//! ```text
//!   Client (clones) ──commands──▶ connection task ──▶ ClientSession (sans-IO)
//!        ▲   ▲                         │   ▲            │ poll_transmit
//!        │   └── Delivery / SUBACK ────┤   │ decode     ▼ encode, batched
//!        │                             │   └──────── transport (TCP, ...)
//!   Subscription streams ◀── routing ──┘
//! ```
//!
//! # Example
//!
//! ```no_run
//! use mqtt_client::{Client, ClientOptions, QoS, SubscriptionOptions};
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let mut options = ClientOptions::from_url("mqtt://127.0.0.1:1883")?;
//!     options.client_id("example").keep_alive(30);
//!     let client = Client::connect(options).await?;
//!
//!     let mut temps = client
//!         .subscribe("sensors/+/temp", SubscriptionOptions::new(QoS::ExactlyOnce))
//!         .await?;
//!     let reason = client.publish("sensors/1/temp", "21.5", QoS::ExactlyOnce, false).await?;
//!     println!("delivered: {reason:?}");
//!
//!     if let Some(m) = temps.recv().await {
//!         println!("{} = {}", m.topic(), String::from_utf8_lossy(m.payload()));
//!     }
//!     client.disconnect().await?;
//!     Ok(())
//! }
//! ```
//!
//! # Cancel safety
//!
//! The connection task owns all protocol state; handles only send it
//! requests. Dropping any future of this crate therefore never corrupts the
//! session: a request is either not made (dropped while waiting for room in
//! the queue) or carried out in full with its result discarded. Each method
//! says which.
#![doc(test(attr(deny(warnings))))]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod client;
mod driver;
mod error;
mod options;
mod router;
mod stream;
pub mod transport;

pub use client::{Client, ClientBuilder, Delivery};
pub use error::{ClientError, ConnectionError};
pub use options::{
    ClientOptions, DEFAULT_MAX_INCOMING_PACKET_SIZE, DEFAULT_MAX_PENDING, DEFAULT_PORT,
    ReconnectOptions,
};
pub use stream::{Event, EventStream, Received, Subscription};

pub use mqtt_codec::{
    ConnectProperties, PayloadFormat, PropertyList, ProtocolVersion, PublishProperties, QoS,
    ReasonCode, RetainHandling, SubscriptionOptions, UserProperty, Utf8Bytes, Will, WillProperties,
};
pub use mqtt_session::{CloseReason, DropReason, Message, MessageId};
pub use mqtt_topic::{TopicError, TopicFilter, TopicName};

/// The README's examples, compiled (and run, unless `no_run`) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
