//! The client side of an MQTT session.

use std::collections::BTreeMap;
use std::num::{NonZeroU16, NonZeroU32};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_codec::{
    Auth, ConnAck, Connect, ConnectProperties, DecodeError, Disconnect, Packet, PacketId,
    PacketType, ProtocolVersion, QoS, ReasonCode, RetainHandling, SubAck, Subscribe,
    SubscribeFilter, SubscriptionId, SubscriptionOptions, UnsubAck, Unsubscribe, Utf8Bytes, Will,
};
use mqtt_topic::TopicFilter;

use crate::core::{Core, Link, QueueLimits};
use crate::error::{ProtocolError, UsageError};
use crate::event::{CloseReason, Event};
use crate::message::{DropReason, Message, MessageId};
use crate::outgoing::QueuePolicy;
use crate::state::Subscription;
use crate::timer::Timer;

/// Configuration of a [`ClientSession`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Protocol version. Default: 5.0.
    pub protocol: ProtocolVersion,
    /// Client identifier; empty asks the server to assign one (5.0, or 3.1.1
    /// with a clean session). Default: empty.
    pub client_id: Utf8Bytes,
    /// Clean Start (5.0) / Clean Session (3.1.1). Default: true.
    pub clean_start: bool,
    /// Keep Alive in seconds; 0 disables it. Default: 60.
    pub keep_alive: u16,
    /// How long to wait for PINGRESP before declaring the connection dead.
    /// A time past what an [`Instant`] holds (`Duration::MAX`) is no
    /// deadline. Default: 10 s.
    pub ping_timeout: Duration,
    /// How long to wait for CONNACK. A time past what an [`Instant`] holds
    /// (`Duration::MAX`) is no deadline. Default: 30 s.
    pub connect_timeout: Duration,
    /// Session Expiry Interval (5.0) in seconds. Default: 0.
    pub session_expiry_interval: u32,
    /// Receive Maximum announced to the server. Default: 65,535.
    pub receive_maximum: NonZeroU16,
    /// Maximum Packet Size announced to the server (`None`: the protocol's
    /// limit). Default: `None`.
    pub max_packet_size: Option<NonZeroU32>,
    /// Topic Alias Maximum announced to the server. Default: 16.
    pub topic_alias_maximum: u16,
    /// Whether to use topic aliases for PUBLISH when the server allows.
    /// Default: true.
    pub use_topic_aliases: bool,
    /// QoS 1/2 messages in flight when the server announces no Receive
    /// Maximum (always, in 3.1.1). Default: 100.
    pub inflight_window: NonZeroU16,
    /// Messages queued behind the inflight window or while disconnected.
    /// Default: 10,000.
    pub max_queued: usize,
    /// What a full queue does. Default: [`QueuePolicy::DropNew`].
    pub queue_policy: QueuePolicy,
    /// Deliver QoS 1/2 messages with an `ack` identifier and acknowledge
    /// them only when [`ClientSession::ack`] is called. Default: false.
    pub manual_ack: bool,
    /// The will message. Default: none.
    pub will: Option<Will>,
    /// User name. Default: none.
    pub username: Option<Utf8Bytes>,
    /// Password. Default: none.
    pub password: Option<Bytes>,
    /// Further CONNECT properties (user properties, authentication method
    /// and data, request flags). The fields the other options set are
    /// overwritten. Default: empty.
    pub connect_properties: ConnectProperties,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            protocol: ProtocolVersion::V5,
            client_id: Utf8Bytes::new(),
            clean_start: true,
            keep_alive: 60,
            ping_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(30),
            session_expiry_interval: 0,
            receive_maximum: NonZeroU16::MAX,
            max_packet_size: None,
            topic_alias_maximum: 16,
            use_topic_aliases: true,
            inflight_window: NonZeroU16::new(100).unwrap_or(NonZeroU16::MIN),
            max_queued: 10_000,
            queue_policy: QueuePolicy::DropNew,
            manual_ack: false,
            will: None,
            username: None,
            password: None,
            connect_properties: ConnectProperties::default(),
        }
    }
}

impl ClientConfig {
    /// A configuration with the defaults, for `protocol` and `client_id`.
    pub fn new(protocol: ProtocolVersion, client_id: Utf8Bytes) -> Self {
        Self {
            protocol,
            client_id,
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No connection.
    Idle,
    /// CONNECT sent, waiting for CONNACK.
    Connecting,
    /// CONNACK received.
    Connected,
}

#[derive(Debug)]
enum Control {
    Subscribe(
        Vec<(TopicFilter, SubscriptionOptions)>,
        Option<SubscriptionId>,
    ),
    Unsubscribe(Vec<TopicFilter>),
}

/// The client side of an MQTT session, without I/O.
///
/// Input goes in through `handle_*` and the application methods
/// ([`publish`](Self::publish), [`subscribe`](Self::subscribe), ...); output
/// comes out through the `poll_*` methods. After every input, drain
/// [`poll_transmit`](Self::poll_transmit) (encode and write each packet),
/// then [`poll_event`](Self::poll_event), and arm a timer for
/// [`poll_timeout`](Self::poll_timeout); when it fires call
/// [`handle_timeout`](Self::handle_timeout). `now` must never decrease.
///
/// The session outlives connections: after
/// [`connection_lost`](Self::connection_lost), call [`connect`](Self::connect)
/// on a new transport and unacknowledged messages are re-sent.
///
/// ```
/// use std::time::Instant;
/// use mqtt_codec::{Packet, ConnAck, ProtocolVersion, QoS, Utf8Bytes};
/// use mqtt_session::{ClientConfig, ClientSession, Event, Message};
///
/// let now = Instant::now();
/// let mut client = ClientSession::new(ClientConfig::new(ProtocolVersion::V5, Utf8Bytes::from_static("c1")));
/// client.connect(now)?;
/// assert!(matches!(client.poll_transmit(), Some(Packet::Connect(_))));
/// client.handle_packet(now, ConnAck::default().into());
/// assert!(matches!(client.poll_event(), Some(Event::Connected { session_present: false, .. })));
///
/// let id = client.publish(now, Message::new("a/b".parse()?, "hi", QoS::AtLeastOnce, false))?;
/// let Some(Packet::Publish(p)) = client.poll_transmit() else { panic!() };
/// client.handle_packet(now, mqtt_codec::PubAck::new(p.packet_id.unwrap()).into());
/// assert_eq!(client.poll_event(), Some(Event::Delivered { id, reason: mqtt_codec::ReasonCode::Success }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ClientSession {
    core: Core,
    config: ClientConfig,
    phase: Phase,
    control: BTreeMap<PacketId, Control>,
    /// Keep-alive in force (the server may override ours).
    keep_alive: u16,
    maximum_qos: QoS,
    retain_available: bool,
    /// CONNACK capabilities: wildcard, subscription identifier and shared
    /// subscriptions available.
    wildcards: bool,
    subscription_ids: bool,
    shared: bool,
    closed: bool,
}

impl ClientSession {
    /// A session with no connection yet.
    pub fn new(config: ClientConfig) -> Self {
        let limits = QueueLimits {
            max_queued: config.max_queued,
            policy: config.queue_policy,
        };
        let mut core = Core::new(limits, config.manual_ack);
        core.state.expiry_interval = config.session_expiry_interval;
        Self {
            core,
            keep_alive: config.keep_alive,
            config,
            phase: Phase::Idle,
            control: BTreeMap::new(),
            maximum_qos: QoS::ExactlyOnce,
            retain_available: true,
            wildcards: true,
            subscription_ids: true,
            shared: true,
            closed: false,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Whether CONNACK accepted the current connection.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// The session state (subscriptions, messages in flight and queued).
    pub fn state(&self) -> &crate::SessionState {
        &self.core.state
    }

    /// Starts a connection on a new transport: queues CONNECT.
    ///
    /// # Errors
    ///
    /// [`UsageError::InvalidState`] if a connection is already up.
    pub fn connect(&mut self, now: Instant) -> Result<(), UsageError> {
        if self.phase != Phase::Idle {
            return Err(UsageError::InvalidState("already connected"));
        }
        self.closed = false;
        let c = &self.config;
        let mut connect = Connect::new(c.protocol, c.client_id.clone());
        connect.clean_start = c.clean_start;
        connect.keep_alive = c.keep_alive;
        connect.will = c.will.clone();
        connect.username = c.username.clone();
        connect.password = c.password.clone();
        if c.protocol.is_v5() {
            let mut p = c.connect_properties.clone();
            p.session_expiry_interval =
                (c.session_expiry_interval > 0).then_some(c.session_expiry_interval);
            p.receive_maximum = (c.receive_maximum != NonZeroU16::MAX).then_some(c.receive_maximum);
            p.maximum_packet_size = c.max_packet_size;
            p.topic_alias_maximum = (c.topic_alias_maximum > 0).then_some(c.topic_alias_maximum);
            connect.properties = p;
        }
        self.core.transmit.clear();
        self.core.send(now, connect);
        self.core
            .timers
            .set_after(Timer::Connect, now, c.connect_timeout);
        self.phase = Phase::Connecting;
        Ok(())
    }

    /// Hands a message to the session. It is sent now if the connection
    /// and the inflight window allow, else queued (also while
    /// disconnected). Completion is reported by [`Event::Delivered`] (or
    /// [`Event::Dropped`]) with the returned id.
    ///
    /// # Errors
    ///
    /// [`UsageError::QueueFull`], or the server's Maximum QoS / Retain
    /// Available forbid the message.
    pub fn publish(&mut self, now: Instant, message: Message) -> Result<MessageId, UsageError> {
        if message.qos > self.maximum_qos {
            return Err(UsageError::QoSNotSupported);
        }
        if message.retain && !self.retain_available {
            return Err(UsageError::RetainNotSupported);
        }
        self.core.submit(now, message, None)
    }

    /// Sends SUBSCRIBE; the answer is [`Event::SubAck`] with the returned
    /// packet identifier.
    ///
    /// # Errors
    ///
    /// [`UsageError::NotConnected`], [`UsageError::NoTopicFilters`],
    /// [`UsageError::RequiresV5`] (an MQTT 5.0 option or a Subscription
    /// Identifier at 3.1 or 3.1.1), [`UsageError::NotSupported`] (what the
    /// server's CONNACK ruled out),
    /// [`UsageError::NoLocalOnSharedSubscription`],
    /// [`UsageError::PacketTooLarge`] (over the server's Maximum Packet
    /// Size) or [`UsageError::PacketIdsExhausted`].
    pub fn subscribe(
        &mut self,
        now: Instant,
        filters: Vec<(TopicFilter, SubscriptionOptions)>,
        subscription_id: Option<SubscriptionId>,
    ) -> Result<PacketId, UsageError> {
        if self.phase != Phase::Connected {
            return Err(UsageError::NotConnected);
        }
        if filters.is_empty() {
            return Err(UsageError::NoTopicFilters);
        }
        if !self.config.protocol.is_v5() {
            // Refused here rather than handed to the encoder, which cannot
            // express them at 3.1/3.1.1 (the SUBSCRIBE would never be sent,
            // so never answered).
            if subscription_id.is_some() {
                return Err(UsageError::RequiresV5("a Subscription Identifier"));
            }
            for (_, o) in &filters {
                if o.no_local {
                    return Err(UsageError::RequiresV5("No Local"));
                }
                if o.retain_as_published {
                    return Err(UsageError::RequiresV5("Retain As Published"));
                }
                if o.retain_handling != RetainHandling::SendOnSubscribe {
                    return Err(UsageError::RequiresV5("a Retain Handling other than 0"));
                }
            }
        }
        // Honour the server's CONNACK capabilities instead of sending what
        // it announced it would refuse.
        if !self.wildcards && filters.iter().any(|(f, _)| f.is_wildcard()) {
            return Err(UsageError::NotSupported("wildcard subscriptions"));
        }
        if !self.shared && filters.iter().any(|(f, _)| f.is_shared()) {
            return Err(UsageError::NotSupported("shared subscriptions"));
        }
        if filters.iter().any(|(f, o)| f.is_shared() && o.no_local) {
            return Err(UsageError::NoLocalOnSharedSubscription);
        }
        if !self.subscription_ids && subscription_id.is_some() {
            return Err(UsageError::NotSupported("subscription identifiers"));
        }
        // The identifier is set once reserved: its value does not change
        // the size checked first.
        let mut sub = Subscribe {
            packet_id: PacketId::MIN,
            filters: filters
                .iter()
                .map(|(f, options)| SubscribeFilter {
                    filter: to_utf8(f.clone().into_bytes()),
                    options: *options,
                })
                .collect(),
            properties: Default::default(),
        };
        if subscription_id.is_some() {
            sub.properties.to_mut().subscription_identifier = subscription_id;
        }
        let mut packet = Packet::Subscribe(sub);
        self.check_size(&packet)?;
        let pid = self.core.reserve_pid()?;
        if let Packet::Subscribe(sub) = &mut packet {
            sub.packet_id = pid;
        }
        self.core.send(now, packet);
        self.control
            .insert(pid, Control::Subscribe(filters, subscription_id));
        Ok(pid)
    }

    /// Sends UNSUBSCRIBE; the answer is [`Event::UnsubAck`]. A filter whose
    /// reason code there is 0x80 or above (MQTT 5.0) stays subscribed: the
    /// server kept it, and the session keeps it in its
    /// [`state`](Self::state).
    ///
    /// # Errors
    ///
    /// [`UsageError::NotConnected`], [`UsageError::NoTopicFilters`],
    /// [`UsageError::PacketTooLarge`] or [`UsageError::PacketIdsExhausted`].
    pub fn unsubscribe(
        &mut self,
        now: Instant,
        filters: Vec<TopicFilter>,
    ) -> Result<PacketId, UsageError> {
        if self.phase != Phase::Connected {
            return Err(UsageError::NotConnected);
        }
        if filters.is_empty() {
            return Err(UsageError::NoTopicFilters);
        }
        let list = filters
            .iter()
            .map(|f| to_utf8(f.clone().into_bytes()))
            .collect();
        // As in `subscribe`: the identifier is set once the size is known
        // to fit.
        let mut packet = Packet::Unsubscribe(Unsubscribe::new(PacketId::MIN, list));
        self.check_size(&packet)?;
        let pid = self.core.reserve_pid()?;
        if let Packet::Unsubscribe(u) = &mut packet {
            u.packet_id = pid;
        }
        self.core.send(now, packet);
        self.control.insert(pid, Control::Unsubscribe(filters));
        Ok(pid)
    }

    /// Refuses a SUBSCRIBE or UNSUBSCRIBE larger than the server's Maximum
    /// Packet Size: "The Client MUST NOT send packets exceeding Maximum
    /// Packet Size to the Server" \[MQTT-3.2.2-15\]. A PUBLISH is checked
    /// when it is built, and dropped as if sent (\[MQTT-3.1.2-25\]); a
    /// SUBSCRIBE or UNSUBSCRIBE is refused to the caller instead, since
    /// sent it would only make the server close the connection (0x95
    /// Packet too large), and the client send it again after every
    /// reconnection.
    fn check_size(&self, packet: &Packet) -> Result<(), UsageError> {
        let Some(max) = self.core.link.as_ref().and_then(|l| l.peer_max_packet) else {
            return Ok(());
        };
        match packet.encoded_len(self.config.protocol) {
            Ok(size) if size > max.get() as usize => Err(UsageError::PacketTooLarge {
                size,
                max: max.get(),
            }),
            // An encoding error is left to the encoder, which reports it.
            _ => Ok(()),
        }
    }

    /// Acknowledges a message delivered with an `ack` identifier (manual
    /// acknowledgement).
    ///
    /// # Errors
    ///
    /// [`UsageError::NotAwaitingAck`].
    pub fn ack(&mut self, now: Instant, packet_id: PacketId) -> Result<(), UsageError> {
        self.core.ack(now, packet_id)
    }

    /// Sends an AUTH packet (MQTT 5.0 extended authentication), during the
    /// CONNECT exchange or to re-authenticate.
    ///
    /// # Errors
    ///
    /// [`UsageError::NotConnected`] without a connection, or below 5.0.
    pub fn auth(&mut self, now: Instant, auth: Auth) -> Result<(), UsageError> {
        if self.phase == Phase::Idle || !self.config.protocol.is_v5() {
            return Err(UsageError::NotConnected);
        }
        self.core.send(now, auth);
        Ok(())
    }

    /// Sends DISCONNECT with `reason` and ends the connection. The session
    /// state stays for the next [`connect`](Self::connect).
    pub fn disconnect(&mut self, now: Instant, reason: ReasonCode) {
        if self.phase == Phase::Idle {
            return;
        }
        let mut d = Disconnect::new(reason);
        if !self.core.version().unwrap_or(self.config.protocol).is_v5() {
            d = Disconnect::default();
        }
        self.core.send(now, d);
        self.close(CloseReason::Local(reason));
    }

    /// The transport closed or failed.
    pub fn connection_lost(&mut self, _now: Instant) {
        if self.phase != Phase::Idle {
            self.close(CloseReason::ConnectionLost);
        }
    }

    /// Bytes from the transport could not be decoded: the connection ends
    /// with the matching reason code.
    pub fn handle_decode_error(&mut self, now: Instant, error: DecodeError) {
        self.protocol_error(now, ProtocolError::Malformed(error));
    }

    /// A packet from the server.
    pub fn handle_packet(&mut self, now: Instant, packet: Packet) {
        if self.phase == Phase::Idle {
            return;
        }
        if let Some(interval) = self.core.ping_interval {
            self.core.timers.set_after(Timer::Silence, now, interval);
        }
        if let Err(e) = self.dispatch(now, packet) {
            self.protocol_error(now, e);
        }
    }

    fn dispatch(&mut self, now: Instant, packet: Packet) -> Result<(), ProtocolError> {
        if self.phase == Phase::Connecting {
            return match packet {
                Packet::ConnAck(c) => self.handle_connack(now, *c),
                Packet::Auth(a) => {
                    self.core.events.push_back(Event::Auth(a));
                    Ok(())
                }
                other => Err(ProtocolError::UnexpectedPacket(other.packet_type())),
            };
        }
        match packet {
            Packet::Publish(p) => self.core.handle_publish(now, p)?,
            Packet::PubAck(p) => self.core.handle_puback(now, p),
            Packet::PubRec(p) => self.core.handle_pubrec(now, p),
            Packet::PubRel(p) => self.core.handle_pubrel(now, p),
            Packet::PubComp(p) => self.core.handle_pubcomp(now, p),
            Packet::SubAck(p) => self.handle_suback(p)?,
            Packet::UnsubAck(p) => self.handle_unsuback(p)?,
            Packet::PingResp => self.core.timers.stop(Timer::PingResp),
            Packet::Disconnect(d) => self.close(CloseReason::ServerDisconnected(d.reason)),
            Packet::Auth(a) => self.core.events.push_back(Event::Auth(a)),
            other => return Err(ProtocolError::UnexpectedPacket(other.packet_type())),
        }
        Ok(())
    }

    fn handle_connack(&mut self, now: Instant, connack: ConnAck) -> Result<(), ProtocolError> {
        self.core.timers.stop(Timer::Connect);
        if connack.reason.is_error() {
            self.close(CloseReason::Rejected(connack.reason));
            return Ok(());
        }
        let c = &self.config;
        let p = &connack.properties;
        let mut link = Link::new(c.protocol);
        // The server's Receive Maximum caps our own window; it does not
        // replace it.
        let window = p
            .receive_maximum
            .map_or(c.inflight_window, |r| r.min(c.inflight_window));
        link.send_window = crate::outgoing::Window::flat(usize::from(window.get()));
        link.peer_max_packet = p.maximum_packet_size;
        link.peer_alias_max = p.topic_alias_maximum.unwrap_or(0);
        link.our_alias_max = if c.protocol.is_v5() {
            c.topic_alias_maximum
        } else {
            0
        };
        // Announced at 5.0 only: at 3.1.1 the server cannot know it, and
        // only packet identifiers bound what it sends.
        link.our_receive_max = if c.protocol.is_v5() {
            usize::from(c.receive_maximum.get())
        } else {
            usize::from(u16::MAX)
        };
        link.use_outbound_aliases = c.use_topic_aliases;
        link.peer_max_qos = p.maximum_qos.unwrap_or(QoS::ExactlyOnce);
        link.peer_retain_available = p.retain_available.unwrap_or(true);
        self.maximum_qos = p.maximum_qos.unwrap_or(QoS::ExactlyOnce);
        self.retain_available = p.retain_available.unwrap_or(true);
        self.wildcards = p.wildcard_subscription_available.unwrap_or(true);
        self.subscription_ids = p.subscription_identifiers_available.unwrap_or(true);
        self.shared = p.shared_subscription_available.unwrap_or(true);
        self.keep_alive = p.server_keep_alive.unwrap_or(c.keep_alive);
        if let Some(sei) = p.session_expiry_interval {
            self.core.state.expiry_interval = sei;
        }

        if !connack.session_present {
            // Nothing held for the application is sent again: its
            // acknowledgements are void.
            self.core.acks = None;
        }
        let had_session = !self.core.state.subscriptions.is_empty()
            || self.core.state.inflight_len() > 0
            || !self.core.state.incoming_qos2.is_empty();
        if !connack.session_present && had_session {
            // [MQTT-3.2.2-5]/[MQTT-4.1.0-1]: the server has no session; ours
            // is discarded, and what it held is handed back.
            let state = &mut self.core.state;
            let subscriptions = std::mem::take(&mut state.subscriptions)
                .into_iter()
                .map(|(f, s)| (f, s.options))
                .collect();
            let unacknowledged = state.outgoing.drain_inflight();
            state.incoming_qos2.clear();
            for (id, _) in &unacknowledged {
                self.core.events.push_back(Event::Dropped {
                    id: *id,
                    reason: DropReason::SessionLost,
                });
            }
            self.core.events.push_back(Event::SessionLost {
                subscriptions,
                unacknowledged,
            });
        }
        self.core.link = Some(link);
        self.phase = Phase::Connected;
        self.core.events.push_back(Event::Connected {
            session_present: connack.session_present,
            connack: Box::new(connack),
        });
        self.core.ping_interval =
            (self.keep_alive > 0).then(|| Duration::from_secs(u64::from(self.keep_alive)));
        match self.core.ping_interval {
            Some(interval) => {
                self.core.timers.set_after(Timer::KeepAlive, now, interval);
                self.core.timers.set_after(Timer::Silence, now, interval);
            }
            None => {
                self.core.timers.stop(Timer::KeepAlive);
                self.core.timers.stop(Timer::Silence);
            }
        }
        self.core.resume(now);
        // Acknowledgements the application gave while disconnected (QoS 2,
        // whose PUBREC the session keeps owing).
        self.core.release_acks(now);
        Ok(())
    }

    fn handle_suback(&mut self, p: SubAck) -> Result<(), ProtocolError> {
        let Some(Control::Subscribe(filters, id)) = self.control.remove(&p.packet_id) else {
            return Err(ProtocolError::UnknownPacketId(
                p.packet_id.get(),
                PacketType::SubAck,
            ));
        };
        self.core.reserved_pids.remove(&p.packet_id);
        if p.reasons.len() != filters.len() {
            return Err(ProtocolError::ReasonCountMismatch(PacketType::SubAck));
        }
        for ((filter, mut options), reason) in filters.into_iter().zip(&p.reasons) {
            if !reason.is_error() {
                options.qos = QoS::try_from(reason.as_u8()).unwrap_or(options.qos);
                self.core
                    .state
                    .subscriptions
                    .insert(filter, Subscription { options, id });
            }
        }
        self.core.events.push_back(Event::SubAck {
            packet_id: p.packet_id,
            reasons: p.reasons,
        });
        Ok(())
    }

    fn handle_unsuback(&mut self, p: UnsubAck) -> Result<(), ProtocolError> {
        let Some(Control::Unsubscribe(filters)) = self.control.remove(&p.packet_id) else {
            return Err(ProtocolError::UnknownPacketId(
                p.packet_id.get(),
                PacketType::UnsubAck,
            ));
        };
        self.core.reserved_pids.remove(&p.packet_id);
        if self.core.version().is_some_and(ProtocolVersion::is_v5)
            && p.reasons.len() != filters.len()
        {
            return Err(ProtocolError::ReasonCountMismatch(PacketType::UnsubAck));
        }
        // Each reason code is the result for its filter (MQTT 5.0 3.11.3):
        // one of 0x80 or above leaves that subscription in place (0x11 No
        // subscription existed is a success). 3.1.1 has no reasons: every
        // filter is unsubscribed.
        for (i, f) in filters.iter().enumerate() {
            if !p.reasons.get(i).is_some_and(|r| r.is_error()) {
                self.core.state.subscriptions.remove(f);
            }
        }
        self.core.events.push_back(Event::UnsubAck {
            packet_id: p.packet_id,
            reasons: p.reasons,
        });
        Ok(())
    }

    /// Timers due at `now`: PINGREQ, PINGRESP and CONNACK deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.core.timers.is_due(Timer::Connect, now)
            || self.core.timers.is_due(Timer::PingResp, now)
        {
            let e = if self.core.timers.is_due(Timer::Connect, now) {
                ProtocolError::ConnectTimeout
            } else {
                ProtocolError::KeepAliveTimeout
            };
            self.close(CloseReason::ProtocolError(e));
            return;
        }
        // [MQTT-3.1.2-20]: silent for Keep Alive, so send PINGREQ (which
        // re-arms the keep-alive timer, as every packet sent does). Also
        // when the server was silent that long, though this client sent:
        // PINGRESP, or its absence, tells whether the server is there.
        let silent = self.core.timers.is_due(Timer::Silence, now);
        if silent {
            match self.core.ping_interval {
                Some(interval) => self.core.timers.set_after(Timer::Silence, now, interval),
                None => self.core.timers.stop(Timer::Silence),
            }
        }
        if (silent || self.core.timers.is_due(Timer::KeepAlive, now))
            && self.phase == Phase::Connected
        {
            self.core.send(now, Packet::PingReq);
            if self.core.timers.get(Timer::PingResp).is_none() {
                self.core
                    .timers
                    .set_after(Timer::PingResp, now, self.config.ping_timeout);
            }
        }
    }

    fn protocol_error(&mut self, now: Instant, e: ProtocolError) {
        if self.phase == Phase::Idle {
            return;
        }
        if self.core.version().is_some_and(ProtocolVersion::is_v5) {
            self.core.send(now, crate::error::disconnect_for(&e));
        }
        self.close(CloseReason::ProtocolError(e));
    }

    fn close(&mut self, reason: CloseReason) {
        self.phase = Phase::Idle;
        self.core.end_link();
        self.core.ping_interval = None;
        for t in [
            Timer::Connect,
            Timer::KeepAlive,
            Timer::PingResp,
            Timer::Silence,
        ] {
            self.core.timers.stop(t);
        }
        self.control.clear();
        if !self.closed {
            self.closed = true;
            self.core.events.push_back(Event::Closed(reason));
        }
    }

    /// The next packet to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Packet> {
        self.core.transmit.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.core.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.timers.next()
    }
}

fn to_utf8(b: Bytes) -> Utf8Bytes {
    // A TopicFilter is valid UTF-8 without U+0000.
    Utf8Bytes::try_from(b).unwrap_or_default()
}
