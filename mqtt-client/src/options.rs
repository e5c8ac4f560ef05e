//! Connection options.

use std::fmt;
use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mqtt_codec::{ConnectProperties, ProtocolVersion, Utf8Bytes, Will};
use mqtt_session::{ClientConfig, QueuePolicy};

use crate::error::ConnectionError;
use crate::transport::{Connector, DynConnector, TcpConnector};

/// The default port of MQTT over TCP.
pub const DEFAULT_PORT: u16 = 1883;

/// Default largest packet accepted from the server: 1 MiB.
///
/// Announced to the server in CONNECT (MQTT 5.0), which then does not send
/// larger messages; enforced by the decoder for every version (a 3.1.1
/// server that sends a larger packet has the connection closed).
pub const DEFAULT_MAX_INCOMING_PACKET_SIZE: u32 = 1024 * 1024;

/// Default bound of the outgoing queue: 10,000 messages queued or in flight.
pub const DEFAULT_MAX_PENDING: usize = 10_000;

/// Automatic reconnection: exponential backoff with jitter.
///
/// After a connection is lost (or an attempt fails), the client waits
/// `delay = min(max_delay, initial_delay * multiplier ^ attempt)`, reduced
/// by a random part of up to `jitter * delay`, then tries again. The attempt
/// counter restarts after a successful CONNACK.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ReconnectOptions {
    /// Whether to reconnect at all. Default: true.
    pub enabled: bool,
    /// Delay before the first retry. Default: 100 ms.
    pub initial_delay: Duration,
    /// Upper bound of the delay. Default: 30 s.
    pub max_delay: Duration,
    /// Growth factor per failed attempt. Default: 2.0.
    pub multiplier: f64,
    /// Fraction of the delay that is random, from 0 (none) to 1 ("full
    /// jitter"). Default: 0.5.
    pub jitter: f64,
    /// Attempts in a row after which the client gives up (`None`: never).
    /// Default: `None`.
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.5,
            max_attempts: None,
        }
    }
}

impl ReconnectOptions {
    /// No reconnection: a lost connection shuts the client down.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// These options with other delay bounds.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mqtt_client::ReconnectOptions;
    ///
    /// let r = ReconnectOptions::default().delays(Duration::from_millis(10), Duration::from_secs(5));
    /// assert!(r.delay(100) <= Duration::from_secs(5));
    /// ```
    #[must_use]
    pub fn delays(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_delay = initial;
        self.max_delay = max.max(initial);
        self
    }

    /// The delay before attempt number `attempt` (0 for the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .multiplier
            .max(1.0)
            .powi(i32::try_from(attempt.min(64)).unwrap_or(64));
        let base = self.initial_delay.as_secs_f64() * exp;
        let base = base.min(self.max_delay.as_secs_f64()).max(0.0);
        let jitter = self.jitter.clamp(0.0, 1.0) * base * fastrand::f64();
        Duration::try_from_secs_f64(base - jitter).unwrap_or(self.max_delay)
    }
}

/// Everything [`Client::connect`](crate::Client::connect) needs: where to
/// connect, how to identify, what to announce, and how the client behaves.
///
/// Setters take `&mut self` and return `&mut Self` for chaining; each
/// documents its default.
///
/// ```
/// use mqtt_client::{ClientOptions, ProtocolVersion};
///
/// let mut options = ClientOptions::from_url("mqtt://127.0.0.1:1883")?;
/// options
///     .client_id("sensor-17")
///     .protocol(ProtocolVersion::V5)
///     .clean_start(false)
///     .session_expiry_interval(3600)
///     .keep_alive(30)
///     .credentials("user", "secret");
/// # Ok::<(), mqtt_client::ConnectionError>(())
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) client_id: String,
    pub(crate) protocol: ProtocolVersion,
    pub(crate) clean_start: bool,
    pub(crate) session_expiry_interval: u32,
    pub(crate) keep_alive: u16,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Bytes>,
    pub(crate) will: Option<Will>,
    pub(crate) receive_maximum: NonZeroU16,
    pub(crate) inflight: NonZeroU16,
    pub(crate) max_incoming_packet_size: NonZeroU32,
    pub(crate) max_outgoing_packet_size: Option<NonZeroU32>,
    pub(crate) connect_properties: ConnectProperties,
    pub(crate) topic_alias_maximum: u16,
    pub(crate) max_pending: usize,
    pub(crate) manual_ack: bool,
    pub(crate) connect_timeout: Duration,
    pub(crate) ping_timeout: Duration,
    pub(crate) reconnect: ReconnectOptions,
    pub(crate) republish_on_session_lost: bool,
    pub(crate) event_capacity: usize,
    pub(crate) tcp_nodelay: bool,
    pub(crate) connector: Option<Arc<dyn DynConnector>>,
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field("protocol", &self.protocol)
            .field("clean_start", &self.clean_start)
            .field("session_expiry_interval", &self.session_expiry_interval)
            .field("keep_alive", &self.keep_alive)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("will", &self.will)
            .field("receive_maximum", &self.receive_maximum)
            .field("inflight", &self.inflight)
            .field("max_incoming_packet_size", &self.max_incoming_packet_size)
            .field("max_outgoing_packet_size", &self.max_outgoing_packet_size)
            .field("max_pending", &self.max_pending)
            .field("manual_ack", &self.manual_ack)
            .field("reconnect", &self.reconnect)
            .field("custom_transport", &self.connector.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self::new("localhost", DEFAULT_PORT)
    }
}

const fn nz16(n: u16) -> NonZeroU16 {
    match NonZeroU16::new(n) {
        Some(n) => n,
        None => NonZeroU16::MIN,
    }
}

const fn nz32(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(n) => n,
        None => NonZeroU32::MIN,
    }
}

impl ClientOptions {
    /// Options to connect to `host:port` over TCP, with the defaults.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            client_id: String::new(),
            protocol: ProtocolVersion::V5,
            clean_start: true,
            session_expiry_interval: 0,
            keep_alive: 60,
            username: None,
            password: None,
            will: None,
            receive_maximum: NonZeroU16::MAX,
            inflight: nz16(100),
            max_incoming_packet_size: nz32(DEFAULT_MAX_INCOMING_PACKET_SIZE),
            max_outgoing_packet_size: None,
            connect_properties: ConnectProperties::default(),
            topic_alias_maximum: 16,
            max_pending: DEFAULT_MAX_PENDING,
            manual_ack: false,
            connect_timeout: Duration::from_secs(30),
            ping_timeout: Duration::from_secs(10),
            reconnect: ReconnectOptions::default(),
            republish_on_session_lost: true,
            event_capacity: 1024,
            tcp_nodelay: true,
            connector: None,
        }
    }

    /// Options from a URL: `mqtt://host[:port]` or `tcp://host[:port]`
    /// (port 1883 when absent). A user name and password may precede the
    /// host: `mqtt://user:pass@host`.
    ///
    /// # Errors
    ///
    /// [`ConnectionError::InvalidOptions`] for another scheme or a bad port.
    pub fn from_url(url: &str) -> Result<Self, ConnectionError> {
        let bad = |why: &str| ConnectionError::InvalidOptions(format!("{why}: {url:?}"));
        let rest = url
            .strip_prefix("mqtt://")
            .or_else(|| url.strip_prefix("tcp://"))
            .ok_or_else(|| bad("expected mqtt://host[:port]"))?;
        let rest = rest.split('/').next().unwrap_or_default();
        let (creds, hostport) = match rest.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, rest),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, tail) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            let port = match tail.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad("invalid port"))?,
                None if tail.is_empty() => DEFAULT_PORT,
                None => return Err(bad("invalid host")),
            };
            (h, port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().map_err(|_| bad("invalid port"))?),
                None => (hostport, DEFAULT_PORT),
            }
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let mut o = Self::new(host, port);
        if let Some(c) = creds {
            match c.split_once(':') {
                Some((u, p)) => o.credentials(u, p.as_bytes().to_vec()),
                None => o.username(c),
            };
        }
        Ok(o)
    }

    /// The host to connect to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sets the host and port. Default: from the constructor.
    pub fn address(&mut self, host: impl Into<String>, port: u16) -> &mut Self {
        self.host = host.into();
        self.port = port;
        self
    }

    /// Sets the client identifier. Empty asks the server to assign one
    /// (MQTT 5.0, or 3.1.1 with a clean session). Default: empty.
    ///
    /// A server-assigned identifier is not reused when reconnecting: each
    /// connection then starts a new session on the server.
    pub fn client_id(&mut self, id: impl Into<String>) -> &mut Self {
        self.client_id = id.into();
        self
    }

    /// Sets the protocol version. Default: [`ProtocolVersion::V5`].
    pub fn protocol(&mut self, v: ProtocolVersion) -> &mut Self {
        self.protocol = v;
        self
    }

    /// Clean Start (5.0) / Clean Session (3.1.1): whether the server
    /// discards any session it keeps for this client identifier. Default:
    /// true. Reconnections use the same flag; the client re-subscribes when
    /// the server has no session.
    pub fn clean_start(&mut self, clean: bool) -> &mut Self {
        self.clean_start = clean;
        self
    }

    /// Session Expiry Interval in seconds (MQTT 5.0; `u32::MAX` never
    /// expires). A session that must survive a reconnection needs a
    /// non-zero value in 5.0. Default: 0.
    pub fn session_expiry_interval(&mut self, secs: u32) -> &mut Self {
        self.session_expiry_interval = secs;
        self
    }

    /// Keep Alive in seconds; 0 disables it. PINGREQ is sent when the
    /// client has sent nothing for that long, and also when the server has
    /// sent nothing (so a client that only publishes QoS 0 still finds a
    /// server that stopped answering). Default: 60.
    pub fn keep_alive(&mut self, secs: u16) -> &mut Self {
        self.keep_alive = secs;
        self
    }

    /// Sets a user name and password. Default: none.
    pub fn credentials(
        &mut self,
        username: impl Into<String>,
        password: impl Into<Bytes>,
    ) -> &mut Self {
        self.username = Some(username.into());
        self.password = Some(password.into());
        self
    }

    /// Sets a user name without a password. Default: none.
    pub fn username(&mut self, username: impl Into<String>) -> &mut Self {
        self.username = Some(username.into());
        self
    }

    /// Sets the will: the message the server publishes when the connection
    /// ends without a DISCONNECT. Its fields carry QoS, retain and the
    /// MQTT 5.0 will properties (delay, expiry, content type...). Default:
    /// none.
    ///
    /// ```
    /// use mqtt_client::{ClientOptions, QoS, TopicName, Will};
    ///
    /// let mut will = Will::new(TopicName::from_static("devices/17/status")?, "offline");
    /// will.qos = QoS::AtLeastOnce;
    /// will.retain = true;
    /// will.properties.will_delay_interval = Some(5);
    /// let mut options = ClientOptions::new("localhost", 1883);
    /// options.will(will);
    /// # Ok::<(), mqtt_client::TopicError>(())
    /// ```
    pub fn will(&mut self, will: Will) -> &mut Self {
        self.will = Some(will);
        self
    }

    /// Receive Maximum announced to the server (MQTT 5.0): how many QoS 1/2
    /// messages it may have in flight to this client. Default: 65,535.
    pub fn receive_maximum(&mut self, n: NonZeroU16) -> &mut Self {
        self.receive_maximum = n;
        self
    }

    /// Most QoS 1/2 messages this client keeps in flight: the window is
    /// this, or the server's Receive Maximum (MQTT 5.0 CONNACK) if that is
    /// smaller. Default: 100.
    pub fn inflight(&mut self, n: NonZeroU16) -> &mut Self {
        self.inflight = n;
        self
    }

    /// Largest packet accepted from the server, fixed header included.
    /// Default: [`DEFAULT_MAX_INCOMING_PACKET_SIZE`] (1 MiB).
    pub fn max_incoming_packet_size(&mut self, bytes: NonZeroU32) -> &mut Self {
        self.max_incoming_packet_size = bytes;
        self
    }

    /// Largest packet this client sends; a larger PUBLISH is refused by
    /// `publish` with [`ClientError::PacketTooLarge`](crate::ClientError).
    /// The server's own Maximum Packet Size (MQTT 5.0 CONNACK) applies as
    /// well, on the connection: a PUBLISH over it completes with
    /// [`ClientError::Dropped`](crate::ClientError)`(`[`DropReason::TooLarge`](crate::DropReason)`)`,
    /// a SUBSCRIBE or UNSUBSCRIBE fails with
    /// [`ClientError::Usage`](crate::ClientError)`(PacketTooLarge)`.
    /// Default: `None` (the protocol's 256 MiB, and the server's).
    pub fn max_outgoing_packet_size(&mut self, bytes: Option<NonZeroU32>) -> &mut Self {
        self.max_outgoing_packet_size = bytes;
        self
    }

    /// Topic Alias Maximum announced to the server (MQTT 5.0). Default: 16.
    pub fn topic_alias_maximum(&mut self, n: u16) -> &mut Self {
        self.topic_alias_maximum = n;
        self
    }

    /// Further MQTT 5.0 CONNECT properties: user properties,
    /// authentication method and data, request response/problem
    /// information. The properties the other setters manage (session
    /// expiry, receive maximum, maximum packet size, topic alias maximum)
    /// are overwritten by them. Default: none.
    pub fn connect_properties(&mut self, p: ConnectProperties) -> &mut Self {
        self.connect_properties = p;
        self
    }

    /// Bound of the outgoing queue: messages accepted but not yet
    /// completed (queued, or in flight awaiting PUBACK/PUBCOMP), also while
    /// disconnected. `publish` waits for room; `try_publish` fails with
    /// [`ClientError::QueueFull`](crate::ClientError). Default:
    /// [`DEFAULT_MAX_PENDING`] (10,000).
    pub fn max_pending(&mut self, n: usize) -> &mut Self {
        self.max_pending = n.max(1);
        self
    }

    /// Manual acknowledgement: received QoS 1/2 messages are acknowledged
    /// only when the application is done with them (see
    /// [`Received::ack`](crate::Received::ack)), so the server's inflight
    /// window (our Receive Maximum) bounds what is buffered. The PUBACK or
    /// PUBREC of a message goes out once those of every message that
    /// arrived before it have (the protocol's order, \[MQTT-4.6.0-2\]): one
    /// message held long holds up the acknowledgement of the later ones.
    /// A message's acknowledgement is void once the session it came in
    /// (QoS 2) or its connection (QoS 1, which the server sends again) is
    /// gone. Default: false (acknowledged on arrival).
    pub fn manual_ack(&mut self, manual: bool) -> &mut Self {
        self.manual_ack = manual;
        self
    }

    /// Time allowed for the transport to connect and for CONNACK to arrive.
    /// `Duration::MAX` (or any time past what an `Instant` holds) waits
    /// without limit. Default: 30 s.
    pub fn connect_timeout(&mut self, d: Duration) -> &mut Self {
        self.connect_timeout = d;
        self
    }

    /// Time allowed for PINGRESP before the connection is declared dead
    /// (`Duration::MAX`: without limit). Also how long, at most 30 s, the
    /// client waits while the server takes none of the bytes it has to
    /// write (then the server is presumed dead, and the connection ends),
    /// and a connection that is closing waits for its last bytes to be
    /// written. Default: 10 s.
    pub fn ping_timeout(&mut self, d: Duration) -> &mut Self {
        self.ping_timeout = d;
        self
    }

    /// Reconnection policy. Default: [`ReconnectOptions::default`].
    pub fn reconnect(&mut self, r: ReconnectOptions) -> &mut Self {
        self.reconnect = r;
        self
    }

    /// When the server lost the session, publish again the messages whose
    /// delivery was in progress (QoS 1 and 2). Their `publish` futures then
    /// complete with the new delivery. Exactly-once cannot be kept when the
    /// server forgot the session: a QoS 2 message may arrive twice. When
    /// false, those messages fail with
    /// [`DropReason::SessionLost`](crate::DropReason). Default: true.
    pub fn republish_on_session_lost(&mut self, on: bool) -> &mut Self {
        self.republish_on_session_lost = on;
        self
    }

    /// How many events an [`EventStream`](crate::EventStream) buffers
    /// before it misses some (reported as
    /// [`Event::Lagged`](crate::Event::Lagged)). Default: 1024.
    pub fn event_capacity(&mut self, n: usize) -> &mut Self {
        self.event_capacity = n.max(1);
        self
    }

    /// TCP_NODELAY on the default TCP transport. The client batches its
    /// writes itself. Default: true.
    pub fn tcp_nodelay(&mut self, on: bool) -> &mut Self {
        self.tcp_nodelay = on;
        self
    }

    /// Uses another transport (TLS, WebSocket, a test double) instead of
    /// TCP to `host:port`. Default: TCP.
    pub fn transport(&mut self, connector: impl Connector) -> &mut Self {
        self.connector = Some(Arc::new(connector));
        self
    }

    pub(crate) fn connector(&self) -> Arc<dyn DynConnector> {
        match &self.connector {
            Some(c) => Arc::clone(c),
            None => {
                Arc::new(TcpConnector::new(self.host.clone(), self.port).nodelay(self.tcp_nodelay))
            }
        }
    }

    /// The sans-IO session configuration these options make.
    pub(crate) fn session_config(&self) -> Result<ClientConfig, ConnectionError> {
        let utf8 = |what: &str, s: &str| {
            Utf8Bytes::try_from(s)
                .map_err(|e| ConnectionError::InvalidOptions(format!("{what}: {e}")))
        };
        let mut c = ClientConfig::new(self.protocol, utf8("client id", &self.client_id)?);
        c.clean_start = self.clean_start;
        c.keep_alive = self.keep_alive;
        c.ping_timeout = self.ping_timeout;
        c.connect_timeout = self.connect_timeout;
        c.session_expiry_interval = self.session_expiry_interval;
        c.receive_maximum = self.receive_maximum;
        c.max_packet_size = Some(self.max_incoming_packet_size);
        c.topic_alias_maximum = self.topic_alias_maximum;
        c.inflight_window = self.inflight;
        // The client bounds what it hands over (`max_pending`), so the
        // session's queue never refuses a message.
        c.max_queued = usize::MAX;
        c.queue_policy = QueuePolicy::DropNew;
        c.manual_ack = self.manual_ack;
        c.will = self.will.clone();
        c.username = match &self.username {
            Some(u) => Some(utf8("username", u)?),
            None => None,
        };
        c.password = self.password.clone();
        c.connect_properties = self.connect_properties.clone();
        if !self.protocol.is_v5() {
            if !self.connect_properties.is_empty() {
                return Err(ConnectionError::InvalidOptions(
                    "CONNECT properties need MQTT 5.0".into(),
                ));
            }
            if self.will.as_ref().is_some_and(|w| !w.properties.is_empty()) {
                return Err(ConnectionError::InvalidOptions(
                    "will properties need MQTT 5.0".into(),
                ));
            }
        }
        if self.client_id.is_empty() && !self.clean_start && !self.protocol.is_v5() {
            return Err(ConnectionError::InvalidOptions(
                "an empty client id needs a clean session in MQTT 3.1.1".into(),
            ));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls() {
        let o = ClientOptions::from_url("mqtt://example.com").unwrap();
        assert_eq!((o.host(), o.port()), ("example.com", 1883));
        let o = ClientOptions::from_url("tcp://u:p@127.0.0.1:1884/ignored").unwrap();
        assert_eq!((o.host(), o.port()), ("127.0.0.1", 1884));
        assert_eq!(o.username.as_deref(), Some("u"));
        let o = ClientOptions::from_url("mqtt://[::1]:99").unwrap();
        assert_eq!((o.host(), o.port()), ("::1", 99));
        assert!(ClientOptions::from_url("http://x").is_err());
        assert!(ClientOptions::from_url("mqtt://x:notaport").is_err());
        assert!(ClientOptions::from_url("mqtt://:1").is_err());
    }

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let r = ReconnectOptions {
            jitter: 0.0,
            ..ReconnectOptions::default()
        };
        assert_eq!(r.delay(0), Duration::from_millis(100));
        assert_eq!(r.delay(3), Duration::from_millis(800));
        assert_eq!(r.delay(40), Duration::from_secs(30));
        let r = ReconnectOptions::default();
        for _ in 0..100 {
            let d = r.delay(2);
            assert!(d >= Duration::from_millis(200) && d <= Duration::from_millis(400));
        }
    }

    #[test]
    fn invalid_options_are_reported() {
        let mut o = ClientOptions::default();
        o.client_id("a\0b");
        assert!(o.session_config().is_err());
        let mut o = ClientOptions::default();
        o.protocol(ProtocolVersion::V3_1_1).clean_start(false);
        assert!(o.session_config().is_err());
    }
}
