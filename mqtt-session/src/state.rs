//! The part of a session that outlives a connection.

use std::collections::{BTreeMap, BTreeSet};

use mqtt_codec::{PacketId, SubscriptionId, SubscriptionOptions};
use mqtt_topic::TopicFilter;

use crate::message::{Message, MessageId};
use crate::outgoing::Outgoing;

/// A subscription as a session keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Subscription options, with the QoS granted.
    pub options: SubscriptionOptions,
    /// Subscription Identifier (MQTT 5.0).
    pub id: Option<SubscriptionId>,
}

/// Session state: what MQTT requires to survive the network connection
/// (MQTT 5.0 section 4.1), as a plain value.
///
/// A broker takes it from a session whose client went away
/// ([`ServerSession::take_state`](crate::ServerSession::take_state)), stores
/// it, and hands it to the session of the client's next connection
/// ([`ServerSession::accept`](crate::ServerSession::accept)), which re-sends
/// what was unacknowledged, in order, with DUP set. It holds:
///
/// - the subscriptions with their options (server side; the client keeps
///   the ones it made, to subscribe again if the server lost them);
/// - QoS 1 and 2 messages sent but not completely acknowledged, and the
///   PUBRELs sent but not completed;
/// - QoS 2 packet identifiers received and not yet released by PUBREL;
/// - messages queued behind the inflight window, with the time they were
///   queued (their Message Expiry Interval counts down);
/// - for each of those messages that came through a shared subscription,
///   that subscription ([`SharedOrigin`](crate::SharedOrigin)): should the
///   session end before its client has the message, it goes to another
///   member;
/// - the Session Expiry Interval.
///
/// Deadlines are [`std::time::Instant`]s: a store that outlives the process
/// must re-base them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionState {
    pub(crate) subscriptions: BTreeMap<TopicFilter, Subscription>,
    pub(crate) outgoing: Outgoing,
    pub(crate) incoming_qos2: BTreeSet<PacketId>,
    pub(crate) expiry_interval: u32,
}

impl SessionState {
    /// The subscriptions, by filter.
    pub fn subscriptions(&self) -> impl Iterator<Item = (&TopicFilter, &Subscription)> {
        self.subscriptions.iter()
    }

    /// Number of subscriptions (for a broker's per-client limit).
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }

    /// Whether there is a subscription to exactly `filter` (one that a
    /// SUBSCRIBE with the same filter would replace [MQTT-3.8.4-3]).
    pub fn is_subscribed(&self, filter: &TopicFilter) -> bool {
        self.subscriptions.contains_key(filter)
    }

    /// Number of QoS 1/2 messages sent and not completely acknowledged.
    pub fn inflight_len(&self) -> usize {
        self.outgoing.inflight_len()
    }

    /// Number of messages queued behind the inflight window.
    pub fn queued_len(&self) -> usize {
        self.outgoing.queue_len()
    }

    /// QoS 2 packet identifiers received and awaiting PUBREL.
    pub fn incoming_qos2(&self) -> impl Iterator<Item = PacketId> + '_ {
        self.incoming_qos2.iter().copied()
    }

    /// Session Expiry Interval in seconds (`u32::MAX`: never expires).
    pub fn expiry_interval(&self) -> u32 {
        self.expiry_interval
    }

    /// Every message not yet completely delivered, oldest first: the
    /// inflight ones, then the queued ones. Empties the state of them.
    pub fn take_messages(&mut self) -> Vec<(MessageId, Message)> {
        self.outgoing.drain()
    }
}
