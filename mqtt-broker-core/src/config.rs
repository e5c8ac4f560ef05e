//! Broker configuration: listeners and limits, with documented defaults.

use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU32};
use std::time::Duration;

use mqtt_codec::QoS;
use mqtt_session::{QueuePolicy, ServerConfig};

/// Broker configuration.
///
/// Every limit has a default that suits a small server; each is enforced and
/// tested. Build one with [`Config::default`] and change the fields you need.
///
/// ```
/// use mqtt_broker_core::Config;
///
/// let mut config = Config::default();
/// config.max_connections = 10_000;
/// config.max_queued_messages = 1_000;
/// assert_eq!(config.listeners, vec!["127.0.0.1:1883".parse().unwrap()]);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// TCP addresses to listen on. Default: `127.0.0.1:1883`.
    pub listeners: Vec<SocketAddr>,
    /// Open connections allowed at once; a connection beyond it is closed
    /// as soon as it is accepted. Default: 100,000.
    pub max_connections: usize,
    /// Largest packet accepted from clients, in bytes (announced as Maximum
    /// Packet Size to MQTT 5.0 clients); a larger one closes the connection
    /// (MQTT 5.0: DISCONNECT 0x95) before its body is read. Default: 1 MiB.
    pub max_packet_size: NonZeroU32,
    /// QoS 1/2 messages in flight to one client awaiting PUBACK or PUBREC;
    /// as many QoS 2 flows again may wait for PUBCOMP. A 5.0 client's
    /// Receive Maximum caps both together. Default: 1,024.
    pub max_inflight: NonZeroU16,
    /// QoS 1/2 messages the broker accepts in flight from one client
    /// (Receive Maximum announced to MQTT 5.0 clients). Default: 1,024.
    pub receive_maximum: NonZeroU16,
    /// Messages queued per client behind the inflight window or while a
    /// persistent client is away. Beyond it QoS 1/2 messages follow
    /// [`queue_policy`](Self::queue_policy). Default: 10,000.
    ///
    /// A connected client that is acknowledging does not get there from
    /// one fast publisher: beyond 512 queued messages its publishers wait
    /// (are not read) until it is down to 256. A stalled client (nothing
    /// taken for 200 ms) holds nobody and its queue fills up to this.
    pub max_queued_messages: usize,
    /// What a full queue does with a new QoS 1/2 message. Default:
    /// [`QueuePolicy::DropNew`] (the new message is dropped and counted).
    pub queue_policy: QueuePolicy,
    /// Bytes encoded for one connection and not yet written to its socket
    /// beyond which QoS 0 messages to it are dropped and counted: a
    /// subscriber that does not read never makes memory grow without bound.
    /// Default: 1 MiB.
    ///
    /// Nor does a client that sends without reading: the answers to what it
    /// sends (PINGRESP, PUBACK, SUBACK, its own messages) cannot be dropped,
    /// so while its output is over this limit it is not read (it waits in
    /// its socket) until the output drains below. Keep Alive waits
    /// meanwhile as long as the output moves.
    pub max_pending_bytes: usize,
    /// Time a new connection has to send CONNECT. Default: 10 s.
    pub connect_timeout: Duration,
    /// Topic Alias Maximum announced to MQTT 5.0 clients, and the most
    /// topics the broker aliases towards each (each kept for the
    /// connection's life), whatever larger maximum a client announces.
    /// Default: 64.
    pub max_topic_aliases: u16,
    /// Use topic aliases towards MQTT 5.0 clients that accept them.
    /// Default: true.
    pub outbound_topic_aliases: bool,
    /// Maximum QoS granted. Default: 2.
    pub maximum_qos: QoS,
    /// Retained messages supported. Default: true.
    pub retain_available: bool,
    /// Cap on the Session Expiry Interval, in seconds. Default: none
    /// (`u32::MAX`).
    pub max_session_expiry_interval: u32,
    /// Subscriptions one client's session may hold. A SUBSCRIBE filter that
    /// would add one beyond it is refused in its SUBACK with 0x97 Quota
    /// exceeded (MQTT 5.0; 3.1.1: 0x80 Failure), the filters before it
    /// being granted; a filter the session is already subscribed to
    /// replaces that subscription [MQTT-3.8.4-3] and is always granted.
    /// Without it one client could grow the subscription tree, and its
    /// session, without bound. `usize::MAX`: no limit. Default: 1,000
    /// (wildcards make more rarely needed).
    pub max_subscriptions_per_client: usize,
    /// Topics with a retained message. A retained PUBLISH to a topic that
    /// has none while this many have one is not retained, and counted in
    /// [`Stats::retained_refused`](crate::Stats::retained_refused); it is
    /// still delivered to the subscribers and acknowledged as usual (an
    /// error code in PUBACK / PUBREC would tell the publisher it was not
    /// accepted, when it was). Replacing or clearing (empty payload) a
    /// retained message always works. Without it clients publishing to ever
    /// new topics would grow the retained set without bound. Retained
    /// messages restored from a [`Store`](crate::Store) are all kept, and
    /// count. `usize::MAX`: no limit. Default: 1,000,000 (ten per connection at the default
    /// `max_connections`, a few hundred MB of small messages).
    pub max_retained_messages: usize,
    /// Bytes of retained messages kept, counting each one's topic and
    /// payload. A retained PUBLISH that would take the total beyond it is
    /// delivered and acknowledged as usual but not retained, and counted
    /// in [`Stats::retained_refused`](crate::Stats::retained_refused); if it
    /// was to replace the topic's retained message, that one is removed
    /// too (a subscriber would otherwise get a value the publisher has
    /// replaced). Clearing always works. With `max_retained_messages` it
    /// bounds the memory of the retained set, which publishers of large
    /// messages could otherwise fill up to `max_retained_messages` times
    /// `max_packet_size`. Retained messages restored from a
    /// [`Store`](crate::Store) are all kept, and count. `usize::MAX`: no
    /// limit. Default: 256 MiB.
    pub max_retained_bytes: usize,
    /// Sessions held at once, connected or kept for an absent client. A
    /// CONNECT that would create a new one beyond it is refused with
    /// CONNACK 0x97 Quota exceeded (MQTT 5.0; 3.1.1: 0x03 Server
    /// unavailable) and counted in
    /// [`Stats::sessions_refused`](crate::Stats::sessions_refused);
    /// resuming or taking over the session of a client identifier the
    /// broker holds always works. Without it clients connecting with ever
    /// new identifiers and a long Session Expiry Interval (3.1.1: Clean
    /// Session 0) would leave sessions behind without bound. Sessions
    /// restored from a [`Store`](crate::Store) are all kept, and count.
    /// `usize::MAX`: no limit. Default: 200,000 (every connection the
    /// default `max_connections` allows, and as many sessions of absent
    /// clients).
    pub max_sessions: usize,
    /// Interval at which `$SYS/broker/...` statistics are published; zero
    /// disables them. Default: 10 s.
    pub sys_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        let k = NonZeroU16::new(1024).unwrap_or(NonZeroU16::MAX);
        Self {
            listeners: vec![SocketAddr::from(([127, 0, 0, 1], 1883))],
            max_connections: 100_000,
            max_packet_size: NonZeroU32::new(1 << 20).unwrap_or(NonZeroU32::MAX),
            max_inflight: k,
            receive_maximum: k,
            max_queued_messages: 10_000,
            queue_policy: QueuePolicy::DropNew,
            max_pending_bytes: 1 << 20,
            connect_timeout: Duration::from_secs(10),
            max_topic_aliases: 64,
            outbound_topic_aliases: true,
            maximum_qos: QoS::ExactlyOnce,
            retain_available: true,
            max_session_expiry_interval: u32::MAX,
            max_subscriptions_per_client: 1_000,
            max_retained_messages: 1_000_000,
            max_retained_bytes: 256 << 20,
            max_sessions: 200_000,
            sys_interval: Duration::from_secs(10),
        }
    }
}

impl Config {
    /// Checks the settings that have no sensible meaning (a limit of zero
    /// where one is needed, a timeout beyond a day).
    ///
    /// # Errors
    ///
    /// A message naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        const DAY: Duration = Duration::from_secs(24 * 3600);
        if self.listeners.is_empty() {
            return Err("no listener".into());
        }
        if self.max_connections == 0 {
            return Err("max_connections must be at least 1".into());
        }
        if self.max_subscriptions_per_client == 0 {
            return Err("max_subscriptions_per_client must be at least 1".into());
        }
        if self.max_retained_messages == 0 {
            return Err("max_retained_messages must be at least 1 (retain_available = false disables retained messages)".into());
        }
        if self.max_retained_bytes == 0 {
            return Err("max_retained_bytes must be at least 1 (retain_available = false disables retained messages)".into());
        }
        if self.max_sessions == 0 {
            return Err("max_sessions must be at least 1".into());
        }
        if self.connect_timeout.is_zero() || self.connect_timeout > DAY {
            return Err("connect_timeout must be between 1 ms and 1 day".into());
        }
        if self.max_pending_bytes < 1024 {
            return Err("max_pending_bytes must be at least 1024".into());
        }
        if self.sys_interval > DAY {
            return Err("sys_interval must be at most 1 day".into());
        }
        Ok(())
    }

    /// The session configuration these settings give.
    pub(crate) fn session_config(&self) -> ServerConfig {
        let mut c = ServerConfig::default();
        c.connect_timeout = self.connect_timeout;
        c.receive_maximum = self.receive_maximum;
        c.max_inflight = self.max_inflight;
        c.max_queued = self.max_queued_messages;
        c.queue_policy = self.queue_policy;
        c.max_packet_size = Some(self.max_packet_size);
        c.topic_alias_maximum = self.max_topic_aliases;
        c.use_topic_aliases = self.outbound_topic_aliases;
        c.maximum_qos = self.maximum_qos;
        c.retain_available = self.retain_available;
        c.max_session_expiry_interval = self.max_session_expiry_interval;
        // The broker counts what is dropped, not each delivery.
        c.report_deliveries = false;
        c
    }
}
