//! Counters, published under `$SYS/broker/` with Mosquitto's names.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// Live counters of a broker.
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) started: Instant,
    pub(crate) connections: AtomicU64,
    pub(crate) clients_connected: AtomicU64,
    pub(crate) clients_maximum: AtomicU64,
    pub(crate) messages_received: AtomicU64,
    pub(crate) messages_sent: AtomicU64,
    pub(crate) publish_received: AtomicU64,
    pub(crate) publish_sent: AtomicU64,
    pub(crate) publish_dropped: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    pub(crate) subscriptions_refused: AtomicU64,
    pub(crate) retained_refused: AtomicU64,
    pub(crate) sessions_refused: AtomicU64,
}

impl Counters {
    pub(crate) fn new() -> Self {
        Self {
            started: Instant::now(),
            connections: AtomicU64::new(0),
            clients_connected: AtomicU64::new(0),
            clients_maximum: AtomicU64::new(0),
            messages_received: AtomicU64::new(0),
            messages_sent: AtomicU64::new(0),
            publish_received: AtomicU64::new(0),
            publish_sent: AtomicU64::new(0),
            publish_dropped: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            subscriptions_refused: AtomicU64::new(0),
            retained_refused: AtomicU64::new(0),
            sessions_refused: AtomicU64::new(0),
        }
    }

    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }

    pub(crate) fn client_connected(&self) {
        let n = self.clients_connected.fetch_add(1, Relaxed) + 1;
        self.clients_maximum.fetch_max(n, Relaxed);
    }

    pub(crate) fn client_disconnected(&self) {
        self.clients_connected.fetch_sub(1, Relaxed);
    }
}

/// A snapshot of a broker's statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Seconds since the broker started.
    pub uptime_secs: u64,
    /// Open network connections (before and after CONNECT).
    pub connections: u64,
    /// Clients connected (CONNACK sent, not yet gone).
    pub clients_connected: u64,
    /// Sessions kept for clients that are not connected.
    pub clients_disconnected: u64,
    /// Most clients connected at once.
    pub clients_maximum: u64,
    /// Sessions, connected or not.
    pub clients_total: u64,
    /// MQTT packets received from clients.
    pub messages_received: u64,
    /// MQTT packets sent.
    pub messages_sent: u64,
    /// PUBLISH packets received from clients, as Mosquitto counts
    /// `$SYS/broker/publish/messages/received`: a subset of
    /// [`messages_received`](Self::messages_received). Messages that no
    /// client sent over the network are not counted: wills (their CONNECT
    /// was counted), the broker's own `$SYS` messages, and in-process
    /// [`Broker::publish`](crate::Broker::publish) (none of them is a
    /// packet, nor adds to [`bytes_received`](Self::bytes_received)).
    pub publish_received: u64,
    /// PUBLISH packets sent.
    pub publish_sent: u64,
    /// Messages dropped: QoS 0 to a subscriber too slow to read, full
    /// queues, expired, refused by the authorizer.
    pub publish_dropped: u64,
    /// Bytes received from clients.
    pub bytes_received: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Connections closed at once because `max_connections` was reached.
    pub connections_refused: u64,
    /// SUBSCRIBE filters refused (SUBACK 0x97 Quota exceeded) because
    /// their client held `max_subscriptions_per_client`.
    pub subscriptions_refused: u64,
    /// Retained messages not kept (but delivered) because
    /// `max_retained_messages` topics had one or they would have taken the
    /// retained messages beyond `max_retained_bytes`.
    pub retained_refused: u64,
    /// CONNECTs refused (CONNACK 0x97 Quota exceeded) because they would
    /// have created a session beyond `max_sessions`.
    pub sessions_refused: u64,
    /// Retained messages.
    pub retained: u64,
    /// Subscriptions.
    pub subscriptions: u64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            uptime_secs: self.started.elapsed().as_secs(),
            connections: self.connections.load(Relaxed),
            clients_connected: self.clients_connected.load(Relaxed),
            clients_maximum: self.clients_maximum.load(Relaxed),
            messages_received: self.messages_received.load(Relaxed),
            messages_sent: self.messages_sent.load(Relaxed),
            publish_received: self.publish_received.load(Relaxed),
            publish_sent: self.publish_sent.load(Relaxed),
            publish_dropped: self.publish_dropped.load(Relaxed),
            bytes_received: self.bytes_received.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            connections_refused: self.connections_refused.load(Relaxed),
            subscriptions_refused: self.subscriptions_refused.load(Relaxed),
            retained_refused: self.retained_refused.load(Relaxed),
            sessions_refused: self.sessions_refused.load(Relaxed),
            ..Stats::default()
        }
    }
}

impl Stats {
    /// The `$SYS` topics and values published for these statistics, with
    /// Mosquitto's names where it has one (the refusals of the limits,
    /// `$SYS/broker/{connections,sessions,subscriptions}/refused` and
    /// `$SYS/broker/retained messages/refused`, are ours).
    pub fn sys_topics(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "$SYS/broker/version",
                format!("mqtt-broker-core {}", env!("CARGO_PKG_VERSION")),
            ),
            (
                "$SYS/broker/uptime",
                format!("{} seconds", self.uptime_secs),
            ),
            (
                "$SYS/broker/clients/connected",
                self.clients_connected.to_string(),
            ),
            (
                "$SYS/broker/clients/active",
                self.clients_connected.to_string(),
            ),
            (
                "$SYS/broker/clients/disconnected",
                self.clients_disconnected.to_string(),
            ),
            (
                "$SYS/broker/clients/inactive",
                self.clients_disconnected.to_string(),
            ),
            (
                "$SYS/broker/clients/maximum",
                self.clients_maximum.to_string(),
            ),
            ("$SYS/broker/clients/total", self.clients_total.to_string()),
            (
                "$SYS/broker/messages/received",
                self.messages_received.to_string(),
            ),
            ("$SYS/broker/messages/sent", self.messages_sent.to_string()),
            (
                "$SYS/broker/publish/messages/received",
                self.publish_received.to_string(),
            ),
            (
                "$SYS/broker/publish/messages/sent",
                self.publish_sent.to_string(),
            ),
            (
                "$SYS/broker/publish/messages/dropped",
                self.publish_dropped.to_string(),
            ),
            (
                "$SYS/broker/bytes/received",
                self.bytes_received.to_string(),
            ),
            ("$SYS/broker/bytes/sent", self.bytes_sent.to_string()),
            (
                "$SYS/broker/retained messages/count",
                self.retained.to_string(),
            ),
            (
                "$SYS/broker/subscriptions/count",
                self.subscriptions.to_string(),
            ),
            // The limits' refusals: Mosquitto has no names for these.
            (
                "$SYS/broker/connections/refused",
                self.connections_refused.to_string(),
            ),
            (
                "$SYS/broker/sessions/refused",
                self.sessions_refused.to_string(),
            ),
            (
                "$SYS/broker/subscriptions/refused",
                self.subscriptions_refused.to_string(),
            ),
            (
                "$SYS/broker/retained messages/refused",
                self.retained_refused.to_string(),
            ),
        ]
    }
}
