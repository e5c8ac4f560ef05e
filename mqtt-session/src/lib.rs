//! Sans-IO MQTT session state machines: the protocol logic of a client and
//! of a server, with no sockets and no clock.
//!
//! [`ClientSession`] and [`ServerSession`] own everything MQTT 3.1, 3.1.1 and
//! 5.0 decide above the packet codec: CONNECT/CONNACK negotiation, packet
//! identifiers (never reused in flight), the QoS 1 and QoS 2 flows in both
//! directions, the inflight window (Receive Maximum) and a bounded queue
//! behind it, keep-alive, the will (with its delay), topic aliases, maximum
//! packet sizes, message and session expiry, and session resumption.
//!
//! What it does not do: no I/O, no encoding (packets in and out are
//! [`mqtt_codec::Packet`]s), no routing between clients (a broker's job:
//! events tell it what to route), and it never reads the clock: every input
//! takes `now`, and [`poll_timeout`](ClientSession::poll_timeout) says when
//! to call back. Tests therefore run hours of protocol time in
//! milliseconds.
//!
//! ```text
//!   transport ──decode──▶ handle_packet(now, p) ─┐
//!   timer fires ────────▶ handle_timeout(now)   ─┤      ┌─▶ poll_transmit() ──encode──▶ transport
//!   application ────────▶ publish / subscribe / ─┼─ session ─▶ poll_event()   ──▶ application / broker
//!                         accept / ack          ─┘      └─▶ poll_timeout()  ──▶ arm a timer
//! ```
//!
//! # Example: a client and a server session talking in memory
//!
//! ```
//! use std::time::Instant;
//! use mqtt_codec::{ProtocolVersion, QoS, Utf8Bytes};
//! use mqtt_session::{Accept, ClientConfig, ClientSession, Event, Message, ServerConfig, ServerSession};
//!
//! let now = Instant::now();
//! let mut client = ClientSession::new(ClientConfig::new(ProtocolVersion::V5, Utf8Bytes::from_static("c")));
//! let mut server = ServerSession::new(ServerConfig::default(), now);
//! client.connect(now)?;
//! client.publish(now, Message::new("greetings".parse()?, "hello", QoS::ExactlyOnce, false))?;
//!
//! // Shuttle packets until both sides are quiet.
//! let mut delivered = Vec::new();
//! loop {
//!     let mut moved = false;
//!     while let Some(p) = client.poll_transmit() { server.handle_packet(now, p); moved = true; }
//!     while let Some(p) = server.poll_transmit() { client.handle_packet(now, p); moved = true; }
//!     while let Some(e) = server.poll_event() {
//!         match e {
//!             Event::Connect(_) => server.accept(now, Accept::new())?,
//!             Event::Message { message, .. } => delivered.push(message.payload),
//!             _ => {}
//!         }
//!         moved = true;
//!     }
//!     while client.poll_event().is_some() { moved = true; }
//!     if !moved { break; }
//! }
//! assert_eq!(delivered, ["hello"]);
//! assert_eq!(client.state().inflight_len(), 0); // PUBREC, PUBREL, PUBCOMP done
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod client;
mod core;
mod error;
mod event;
mod message;
mod outgoing;
mod server;
mod state;
mod timer;

pub use client::{ClientConfig, ClientSession};
pub use error::{ProtocolError, UsageError};
pub use event::{CloseReason, Event, SubscribeEntry, SubscribeRequest, granted};
pub use message::{DropReason, Message, MessageId, SharedOrigin};
pub use outgoing::QueuePolicy;
pub use server::{Accept, ServerConfig, ServerSession};
pub use state::{SessionState, Subscription};
