//! An embeddable MQTT 3.1 / 3.1.1 / 5.0 broker on tokio.
//!
//! The protocol lives in the sans-IO crates: [`mqtt_codec`] frames packets,
//! [`mqtt_session`] runs each client's session (CONNECT, QoS 1/2 flows,
//! keep-alive, will, topic aliases, limits) and [`mqtt_topic`] matches
//! topics. This crate is the thin shell around them: TCP listeners, one task
//! per connection, routing through a subscription tree, retained messages,
//! shared subscriptions, session takeover and persistence, limits,
//! authentication and authorization hooks, `$SYS` statistics, and in-process
//! publish and subscribe.
//!
//! ```no_run
//! # #[tokio::main]
//! # async fn main() -> std::io::Result<()> {
//! use mqtt_broker_core::Broker;
//!
//! // 127.0.0.1:1883, in memory, everyone allowed.
//! let broker = Broker::builder().start().await?;
//! tokio::signal::ctrl_c().await?;
//! broker.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Design
//!
//! All broker state (sessions, connections, the subscription tree, retained
//! messages, timers) sits behind one mutex. A connection task reads what
//! the socket has, decodes it, and takes the lock once for the whole batch:
//! its session handles the packets, the messages that come out are routed
//! into the sessions of the subscribers, and what those sessions transmit
//! is encoded into each connection's output buffer before its task is
//! woken. Nothing awaits under the lock; the async hooks run between two
//! acquisitions. Memory per client is bounded by the session's inflight
//! window and queue, and by `max_pending_bytes` for QoS 0 and for the
//! answers to what the client sends (it is not read while its output is
//! over that).
#![warn(missing_docs)]

mod broker;
mod config;
mod conn;
mod hooks;
mod state;
mod stats;
mod store;

pub use broker::{Broker, BrokerBuilder, LocalSubscription};
pub use config::Config;
pub use hooks::{AllowAll, Authenticator, Authorizer, ClientInfo, ConnectInfo};
pub use mqtt_codec::QoS;
pub use mqtt_session::{Message, QueuePolicy};
pub use stats::Stats;
pub use store::{MemoryStore, Store, Stored};

/// The README's examples, compiled (and run, unless `no_run`) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
