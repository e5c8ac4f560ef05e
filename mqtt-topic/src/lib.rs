//! MQTT topic names and filters, spec-exact matching, and the two indexes a broker routes
//! with.
//!
//! Every PUBLISH a broker routes asks one question: which subscriptions match this topic
//! name? This crate answers it, for MQTT 3.1, 3.1.1 and 5.0:
//!
//! - [`TopicName`] and [`TopicFilter`]: validated on construction (from `&str`, `String`, or a
//!   UTF-8 [`bytes::Bytes`] without copying), cheap to clone, with a [`TopicError`] naming the
//!   broken rule. A filter may be a shared subscription, `$share/{ShareName}/{filter}`.
//! - [`matches()`]: the matching rule of section 4.7 (`+`, `#`, empty levels, `$` names).
//! - [`SubscriptionTree`]: subscriptions keyed by filter; a lookup visits every matching
//!   subscription in time that grows with the name's depth, not with the number of
//!   subscriptions, and without allocating. Shared subscriptions are grouped.
//! - [`RetainedIndex`]: values keyed by topic name; a lookup visits every name a filter
//!   matches without scanning the others.
//!
//! ```text
//!  PUBLISH "sport/tennis/player1"            SUBSCRIBE "sport/+/player1"
//!             |                                        |
//!     TopicName::try_from(bytes)              TopicFilter::try_from(bytes)
//!             |                                        |      \
//!  SubscriptionTree::for_each_match        tree.insert(..)   RetainedIndex::for_each_match
//!             |                                                      |
//!  (client, options) of each match                  retained messages to send back
//! ```
//!
//! What it does not do: no I/O, no clock, no threads, no locking (wrap the structures in
//! whatever lock your broker uses), no packet encoding (see `mqtt-codec`), and no delivery
//! policy: it reports matching subscriptions and shared groups, and the broker chooses how to
//! merge overlapping subscriptions and which group member receives a message. Its one
//! `unsafe` block reads validated UTF-8 back without checking it again; it
//! builds for `wasm32-unknown-unknown`.
//!
//! # Example
//!
//! ```
//! use mqtt_topic::{matches, RetainedIndex, SubscriptionTree, TopicFilter, TopicName};
//!
//! // Validation.
//! let filter = TopicFilter::try_from("sport/tennis/+")?;
//! let name = TopicName::try_from("sport/tennis/player1")?;
//! assert!(filter.matches(&name));
//! assert!(matches("sport/#", "sport"));
//! assert!(TopicFilter::try_from("sport/tennis#").is_err());
//!
//! // Routing a PUBLISH.
//! let mut subs = SubscriptionTree::new();
//! subs.insert(&filter, "client-a", 1u8);
//! subs.insert(&TopicFilter::try_from("#")?, "client-b", 0u8);
//! let mut to = Vec::new();
//! subs.for_each_match(&name, |client, qos| to.push((*client, *qos)));
//! to.sort();
//! assert_eq!(to, [("client-a", 1), ("client-b", 0)]);
//!
//! // Retained messages for a new subscription.
//! let mut retained = RetainedIndex::new();
//! retained.insert(name.clone(), "6-4 6-3");
//! let mut sent = Vec::new();
//! retained.for_each_match(&filter, |n, msg| sent.push((n.clone(), *msg)));
//! assert_eq!(sent, [(name, "6-4 6-3")]);
//! # Ok::<(), mqtt_topic::TopicError>(())
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod children;
mod error;
mod retained;
mod stack;
mod topic;
mod tree;

pub use error::TopicError;
pub use retained::RetainedIndex;
pub use topic::{MAX_TOPIC_LEN, SHARE_PREFIX, TopicFilter, TopicName, matches};
pub use tree::SubscriptionTree;

/// The README's examples, compiled (and run, unless `no_run`) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
