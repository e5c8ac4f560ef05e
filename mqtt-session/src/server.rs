//! The server side of an MQTT session.

use std::collections::VecDeque;
use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mqtt_codec::{
    Auth, ConnAck, ConnAckProperties, Connect, DecodeError, Disconnect, Packet, PacketId,
    PacketType, ProtocolVersion, QoS, ReasonCode, SubAck, Subscribe, UnsubAck, Unsubscribe,
    Utf8Bytes,
};
use mqtt_topic::TopicFilter;

use crate::core::{Core, Link, QueueLimits};
use crate::error::{ProtocolError, UsageError};
use crate::event::{CloseReason, Event, SubscribeEntry, SubscribeRequest};
use crate::message::{DropReason, Message, MessageId, SharedOrigin};
use crate::outgoing::{QueuePolicy, Window, remaining_expiry};
use crate::state::{SessionState, Subscription};
use crate::timer::Timer;

/// Packets a client may send after CONNECT before the broker accepts it;
/// more is refused (bounded memory), unless the broker holds them back
/// (see [`ServerSession::takes_packets`]).
const MAX_EARLY_PACKETS: usize = 64;

/// Configuration of a [`ServerSession`]: the server's capabilities and
/// limits, announced in CONNACK (MQTT 5.0) and enforced.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Time a connection has to send CONNECT. Default: 10 s.
    pub connect_timeout: Duration,
    /// Receive Maximum: QoS 1/2 messages the client may have in flight to
    /// us. Default: 1,024.
    pub receive_maximum: NonZeroU16,
    /// Cap on QoS 1/2 PUBLISH in flight to the client awaiting PUBACK or
    /// PUBREC, whatever its Receive Maximum (and the window for 3.1.1
    /// clients); as many QoS 2 flows again may wait for PUBCOMP, so that a
    /// flow past PUBREC does not hold the next message for another round
    /// trip. A 5.0 client's Receive Maximum caps both together, as the
    /// specification counts a flow until PUBCOMP. Default: 1,024.
    pub max_inflight: NonZeroU16,
    /// Messages queued per session behind the inflight window or while the
    /// client is away. Default: 10,000.
    pub max_queued: usize,
    /// What a full queue does with QoS 1/2 (QoS 0 is always dropped).
    /// Default: [`QueuePolicy::DropNew`].
    pub queue_policy: QueuePolicy,
    /// Maximum Packet Size the server accepts (announced). Default: none.
    pub max_packet_size: Option<NonZeroU32>,
    /// Topic Alias Maximum (client to server), and the most topics the
    /// server aliases towards a client (each kept for the connection's
    /// life), whatever larger maximum the client announces. Default: 64.
    pub topic_alias_maximum: u16,
    /// Use topic aliases towards clients that allow them. Default: true.
    pub use_topic_aliases: bool,
    /// Maximum QoS. Default: 2.
    pub maximum_qos: QoS,
    /// Retain Available. Default: true.
    pub retain_available: bool,
    /// Wildcard Subscription Available. Default: true.
    pub wildcard_subscription_available: bool,
    /// Subscription Identifiers Available. Default: true.
    pub subscription_identifiers_available: bool,
    /// Shared Subscription Available. Default: true.
    pub shared_subscription_available: bool,
    /// Keep-alive imposed on clients (Server Keep Alive). Default: none.
    pub server_keep_alive: Option<u16>,
    /// Cap on the Session Expiry Interval. Default: `u32::MAX` (none).
    pub max_session_expiry_interval: u32,
    /// Deliver QoS 1/2 messages from clients with an `ack` identifier and
    /// acknowledge them on [`ServerSession::ack`]. Default: false.
    pub manual_ack: bool,
    /// Report [`Event::Delivered`] for each message delivered to the client.
    /// A broker that does not track deliveries turns it off and saves an
    /// event per message. Default: true.
    pub report_deliveries: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let k = NonZeroU16::new(1024).unwrap_or(NonZeroU16::MAX);
        Self {
            connect_timeout: Duration::from_secs(10),
            receive_maximum: k,
            max_inflight: k,
            max_queued: 10_000,
            queue_policy: QueuePolicy::DropNew,
            max_packet_size: None,
            topic_alias_maximum: 64,
            use_topic_aliases: true,
            maximum_qos: QoS::ExactlyOnce,
            retain_available: true,
            wildcard_subscription_available: true,
            subscription_identifiers_available: true,
            shared_subscription_available: true,
            server_keep_alive: None,
            max_session_expiry_interval: u32::MAX,
            manual_ack: false,
            report_deliveries: true,
        }
    }
}

/// What the broker decided about a CONNECT it accepts.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Accept {
    /// The stored session to resume, if the client asked for it (clean
    /// start 0) and the broker had one.
    pub session: Option<SessionState>,
    /// Client identifier assigned by the broker (for an empty one).
    pub assigned_client_identifier: Option<Utf8Bytes>,
    /// Further CONNACK properties (user properties, response information,
    /// authentication); the capability fields are filled from the
    /// [`ServerConfig`].
    pub properties: ConnAckProperties,
}

impl Accept {
    /// Accept with a new session.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accept, resuming `session`.
    pub fn resume(session: SessionState) -> Self {
        Self {
            session: Some(session),
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for CONNECT.
    AwaitConnect,
    /// CONNECT received; waiting for the broker's accept or reject.
    AwaitAccept,
    /// CONNACK sent.
    Connected,
    /// The connection is gone; the session may live on (timers: will delay,
    /// session expiry).
    Offline,
    /// The session is over.
    Ended,
}

#[derive(Debug, Clone)]
struct PendingWill {
    message: Message,
    delay: Duration,
}

/// The server side of an MQTT session, without I/O.
///
/// A broker makes one per accepted transport with [`new`](Self::new) and
/// drives it like the client (`handle_*` in, `poll_*` out; see
/// [`ClientSession`](crate::ClientSession)). The lifecycle:
///
/// 1. CONNECT arrives: [`Event::Connect`]. The broker authenticates and looks
///    up the client's stored session, then calls [`accept`](Self::accept)
///    (CONNACK, resumption, re-sending) or [`reject`](Self::reject).
/// 2. Connected: [`Event::Message`] for each PUBLISH to route (QoS 2 once),
///    [`Event::Subscribe`] to authorize and answer with
///    [`suback`](Self::suback), [`Event::Unsubscribed`]; the broker delivers
///    with [`publish`](Self::publish).
/// 3. The connection ends ([`Event::Closed`]). Without a normal DISCONNECT
///    the will is scheduled ([`Event::Will`] after the Will Delay Interval).
///    The session stays (messages published to it are queued) until
///    [`Event::SessionExpired`], or until the client's next connection takes
///    it with [`take_state`](Self::take_state) (which cancels a pending will).
/// 4. A session that ends ([`Event::SessionExpired`], [`end`](Self::end))
///    reports each message its client does not have: [`Event::Redispatch`]
///    for those the broker delivered with
///    [`publish_shared`](Self::publish_shared), to hand to another member
///    of their shared subscription, [`Event::Dropped`] for the others.
#[derive(Debug)]
pub struct ServerSession {
    core: Core,
    /// Shared between the sessions of a broker (see [`new`](Self::new)).
    config: Arc<ServerConfig>,
    phase: Phase,
    /// The CONNECT, until the broker accepts or rejects it.
    connect: Option<Box<Connect>>,
    /// Session Expiry Interval of the CONNECT (0 if absent).
    connect_expiry: u32,
    early: VecDeque<Packet>,
    will: Option<Box<PendingWill>>,
    keep_alive: u16,
    version: ProtocolVersion,
}

impl ServerSession {
    /// A session for a new transport, which must send CONNECT within the
    /// connect timeout.
    ///
    /// `config` is a [`ServerConfig`], or an `Arc` of one that a broker
    /// shares between all its sessions (a session is then smaller).
    pub fn new(config: impl Into<Arc<ServerConfig>>, now: Instant) -> Self {
        let config = config.into();
        let limits = QueueLimits {
            max_queued: config.max_queued,
            policy: config.queue_policy,
        };
        let mut core = Core::new(limits, config.manual_ack);
        core.report_delivered = config.report_deliveries;
        // A `connect_timeout` of `Duration::MAX` is no deadline, not an
        // overflow.
        core.timers
            .set_after(Timer::Connect, now, config.connect_timeout);
        Self {
            core,
            config,
            phase: Phase::AwaitConnect,
            connect: None,
            connect_expiry: 0,
            early: VecDeque::new(),
            will: None,
            keep_alive: 0,
            version: ProtocolVersion::V5,
        }
    }

    /// A session restored from a store (for example after a broker restart):
    /// offline, its client not connected, its Session Expiry Interval
    /// counting from `now`. Messages published to it are queued (QoS 1/2)
    /// until its client connects and the broker hands the state over with
    /// [`take_state`](Self::take_state).
    pub fn restore(
        config: impl Into<Arc<ServerConfig>>,
        state: SessionState,
        now: Instant,
    ) -> Self {
        let mut s = Self::new(config, now);
        s.core.timers = Default::default();
        s.core.state = state;
        s.phase = Phase::Offline;
        match s.core.state.expiry_interval {
            u32::MAX => {}
            secs => s.core.timers.set(
                Timer::SessionExpiry,
                now + Duration::from_secs(u64::from(secs)),
            ),
        }
        s
    }

    /// The CONNECT awaiting [`accept`](Self::accept) or
    /// [`reject`](Self::reject) (`None` before and after: the session does
    /// not keep it once decided, to stay small).
    ///
    /// `None` as well once the connection ended while its CONNECT awaited
    /// the decision (a protocol error in the packets that followed it, the
    /// transport lost): [`accept`](Self::accept) would fail, and a broker
    /// must not take over the client's existing session for it
    /// \[MQTT-3.1.4-3\].
    pub fn connect_packet(&self) -> Option<&Connect> {
        self.connect.as_deref()
    }

    /// The protocol version of the connection (5.0 until CONNECT).
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// Whether CONNACK accepted the connection and it is still up.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// Whether [`handle_packet`](Self::handle_packet) takes a packet now.
    ///
    /// False only while the CONNECT awaits [`accept`](Self::accept) or
    /// [`reject`](Self::reject) and the packets the client sent behind it
    /// fill the session's buffer (64): one more would be refused as a flood.
    /// Clients may send packets right after CONNECT without waiting for
    /// CONNACK (MQTT 5.0 and 3.1.1 section 3.1.4), so a broker that reads
    /// more of them holds them (within its own bounds) and gives them once
    /// it decided.
    pub fn takes_packets(&self) -> bool {
        self.phase != Phase::AwaitAccept || self.early.len() < MAX_EARLY_PACKETS
    }

    /// Whether the session is over for good.
    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// The session state.
    pub fn state(&self) -> &SessionState {
        &self.core.state
    }

    /// A packet from the client.
    pub fn handle_packet(&mut self, now: Instant, packet: Packet) {
        let r = match self.phase {
            Phase::AwaitConnect => self.handle_connect(now, packet),
            Phase::AwaitAccept => {
                if matches!(packet, Packet::Connect(_)) {
                    Err(ProtocolError::SecondConnect)
                } else if self.early.len() >= MAX_EARLY_PACKETS {
                    Err(ProtocolError::ReceiveMaximumExceeded)
                } else {
                    self.early.push_back(packet);
                    Ok(())
                }
            }
            Phase::Connected => {
                self.touch(now);
                self.dispatch(now, packet)
            }
            Phase::Offline | Phase::Ended => Ok(()),
        };
        if let Err(e) = r {
            self.protocol_error(now, e);
        }
    }

    /// Bytes from the client could not be decoded.
    pub fn handle_decode_error(&mut self, now: Instant, error: DecodeError) {
        if let (Phase::AwaitConnect, DecodeError::UnsupportedProtocolVersion(_)) =
            (self.phase, error)
        {
            // [MQTT-3.1.2-2]: answer CONNACK 0x01 (3.1.1 form, which a client
            // of any level can read) and close.
            self.version = ProtocolVersion::V3_1_1;
            self.reject(now, ReasonCode::UnsupportedProtocolVersion);
            return;
        }
        self.protocol_error(now, ProtocolError::Malformed(error));
    }

    fn handle_connect(&mut self, now: Instant, packet: Packet) -> Result<(), ProtocolError> {
        let Packet::Connect(connect) = packet else {
            // [MQTT-3.1.0-1]: close without CONNACK.
            return Err(ProtocolError::FirstPacketNotConnect(packet.packet_type()));
        };
        self.core.timers.stop(Timer::Connect);
        self.version = connect.protocol;
        self.phase = Phase::AwaitAccept;
        self.connect_expiry = connect.properties.session_expiry_interval.unwrap_or(0);
        self.connect = Some(connect.clone());
        // [MQTT-3.1.3-8]: a 3.1.1 client with an empty identifier must ask
        // for a clean session.
        if !connect.protocol.is_v5() && connect.client_id.is_empty() && !connect.clean_start {
            self.reject(now, ReasonCode::ClientIdentifierNotValid);
            return Ok(());
        }
        // [MQTT-3.2.2-12], [MQTT-3.2.2-13]: a will the server cannot honour.
        if let Some(w) = connect.will.as_ref().filter(|_| connect.protocol.is_v5()) {
            if w.qos > self.config.maximum_qos {
                self.reject(now, ReasonCode::QoSNotSupported);
                return Ok(());
            }
            if w.retain && !self.config.retain_available {
                self.reject(now, ReasonCode::RetainNotSupported);
                return Ok(());
            }
        }
        self.core.events.push_back(Event::Connect(connect));
        Ok(())
    }

    /// Accepts the connection: sends CONNACK, installs (or starts) the
    /// session, re-sends what it had unacknowledged and processes packets
    /// the client sent meanwhile.
    ///
    /// # Errors
    ///
    /// [`UsageError::InvalidState`] unless [`Event::Connect`] is pending.
    pub fn accept(&mut self, now: Instant, accept: Accept) -> Result<(), UsageError> {
        if self.phase != Phase::AwaitAccept {
            return Err(UsageError::InvalidState("no CONNECT awaiting accept"));
        }
        let Some(connect) = self.connect.take() else {
            return Err(UsageError::InvalidState("no CONNECT awaiting accept"));
        };
        let c = &self.config;
        let v = connect.protocol;
        let cp = &connect.properties;

        let session_present = accept.session.is_some() && !connect.clean_start;
        self.core.state = if connect.clean_start {
            SessionState::default()
        } else {
            accept.session.unwrap_or_default()
        };
        let requested_expiry = if v.is_v5() {
            cp.session_expiry_interval.unwrap_or(0)
        } else if connect.clean_start {
            0
        } else {
            u32::MAX
        };
        self.core.state.expiry_interval = requested_expiry.min(c.max_session_expiry_interval);

        let mut link = Link::new(v);
        // `max_inflight` PUBLISH awaiting PUBACK or PUBREC, and as many
        // again awaiting PUBCOMP: a QoS 2 flow that is past PUBREC does not
        // hold up the next message for another round trip. A 5.0 client's
        // Receive Maximum counts both [MQTT-4.9.0-2].
        let receive_max = usize::from(cp.receive_maximum.unwrap_or(NonZeroU16::MAX).get());
        let ours = usize::from(c.max_inflight.get());
        link.send_window = Window {
            unacked: ours.min(receive_max),
            total: ours.saturating_mul(2).min(receive_max),
        };
        link.peer_max_packet = cp.maximum_packet_size;
        // Each alias keeps its topic for the connection's life: no more
        // than the client may use towards us, so that a client announcing
        // 65,535 cannot make us keep that many topics (up to 64 KiB each).
        link.peer_alias_max = cp
            .topic_alias_maximum
            .unwrap_or(0)
            .min(c.topic_alias_maximum);
        link.our_alias_max = if v.is_v5() { c.topic_alias_maximum } else { 0 };
        link.our_receive_max = if v.is_v5() {
            usize::from(c.receive_maximum.get())
        } else {
            usize::from(u16::MAX)
        };
        link.use_outbound_aliases = c.use_topic_aliases;

        let mut connack = ConnAck {
            session_present,
            reason: ReasonCode::Success,
            properties: accept.properties,
        };
        if v.is_v5() {
            let p = &mut connack.properties;
            p.receive_maximum = (c.receive_maximum != NonZeroU16::MAX).then_some(c.receive_maximum);
            p.maximum_packet_size = c.max_packet_size;
            p.topic_alias_maximum = (c.topic_alias_maximum > 0).then_some(c.topic_alias_maximum);
            p.maximum_qos = (c.maximum_qos < QoS::ExactlyOnce).then_some(c.maximum_qos);
            p.retain_available = (!c.retain_available).then_some(false);
            p.wildcard_subscription_available =
                (!c.wildcard_subscription_available).then_some(false);
            p.subscription_identifiers_available =
                (!c.subscription_identifiers_available).then_some(false);
            p.shared_subscription_available = (!c.shared_subscription_available).then_some(false);
            p.server_keep_alive = c.server_keep_alive;
            if self.core.state.expiry_interval != requested_expiry {
                p.session_expiry_interval = Some(self.core.state.expiry_interval);
            }
            if let Some(id) = accept.assigned_client_identifier {
                p.assigned_client_identifier = Some(id);
            }
        } else {
            connack.properties = ConnAckProperties::default();
        }
        // 3.1.1 cannot tell the client of a Server Keep Alive: its own applies.
        self.keep_alive = if v.is_v5() {
            c.server_keep_alive.unwrap_or(connect.keep_alive)
        } else {
            connect.keep_alive
        };
        self.will = connect.will.as_ref().map(|w| {
            let mut properties = mqtt_codec::PublishProperties::default();
            properties.payload_format_indicator = w.properties.payload_format_indicator;
            properties.message_expiry_interval = w.properties.message_expiry_interval;
            properties.content_type = w.properties.content_type.clone();
            properties.response_topic = w.properties.response_topic.clone();
            properties.correlation_data = w.properties.correlation_data.clone();
            properties.user_properties = w.properties.user_properties.clone();
            let message = Message {
                topic: w.topic.clone(),
                payload: w.payload.clone(),
                qos: w.qos,
                retain: w.retain,
                properties: properties.into(),
            };
            let delay =
                Duration::from_secs(u64::from(w.properties.will_delay_interval.unwrap_or(0)));
            Box::new(PendingWill { message, delay })
        });
        self.core.link = Some(link);
        self.core.send(now, connack);
        self.phase = Phase::Connected;
        self.touch(now);
        self.core.resume(now);
        while let Some(p) = self.early.pop_front() {
            if self.phase != Phase::Connected {
                break;
            }
            if let Err(e) = self.dispatch(now, p) {
                self.protocol_error(now, e);
            }
        }
        Ok(())
    }

    /// Refuses the connection with `reason` in CONNACK (a 3.1.1 client gets
    /// the nearest return code).
    pub fn reject(&mut self, now: Instant, reason: ReasonCode) {
        if !matches!(self.phase, Phase::AwaitConnect | Phase::AwaitAccept) {
            return;
        }
        self.connect = None;
        let code = if self.version.is_v5() {
            if reason.is_allowed_in(PacketType::ConnAck) && reason.is_error() {
                reason
            } else {
                ReasonCode::UnspecifiedError
            }
        } else {
            v3_connack_reason(reason)
        };
        self.core.send(now, ConnAck::new(code));
        self.end_connection(now, CloseReason::Rejected(code), false);
        self.phase = Phase::Ended;
    }

    /// Delivers a message to the client: sent as the inflight window allows,
    /// queued meanwhile and while the client is away (QoS 1/2).
    ///
    /// # Errors
    ///
    /// [`UsageError::NotConnected`] for a QoS 0 message while the client is
    /// away (it is not queued), [`UsageError::Closed`] when the session
    /// ended, [`UsageError::QueueFull`].
    pub fn publish(&mut self, now: Instant, message: Message) -> Result<MessageId, UsageError> {
        self.submit(now, message, None)
    }

    /// Delivers a message that the broker routed to this client through a
    /// shared subscription, as [`publish`](Self::publish) does, and keeps
    /// `origin` with it while the client does not have it.
    ///
    /// If the session ends first (it expires, or it is discarded), the
    /// message is handed back in [`Event::Redispatch`] for another member
    /// of the group, unless the client refused it (MQTT 5.0 section 4.8.2).
    /// A QoS 0 message is never handed back: `origin` is not kept for it.
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish).
    pub fn publish_shared(
        &mut self,
        now: Instant,
        message: Message,
        origin: SharedOrigin,
    ) -> Result<MessageId, UsageError> {
        let share = (message.qos != QoS::AtMostOnce).then(|| Box::new(origin));
        self.submit(now, message, share)
    }

    fn submit(
        &mut self,
        now: Instant,
        message: Message,
        share: Option<Box<SharedOrigin>>,
    ) -> Result<MessageId, UsageError> {
        match self.phase {
            Phase::Connected => {}
            Phase::Offline | Phase::AwaitAccept if message.qos != QoS::AtMostOnce => {}
            Phase::Ended => return Err(UsageError::Closed),
            _ => return Err(UsageError::NotConnected),
        }
        self.core.submit(now, message, share)
    }

    /// Answers a [`SubscribeRequest`] with one reason code per filter
    /// (granted QoS or an error) and records the granted subscriptions.
    ///
    /// Returns each granted subscription and whether it replaced an existing
    /// one (for Retain Handling 1).
    ///
    /// # Errors
    ///
    /// [`UsageError::InvalidState`] if the codes do not match the request.
    pub fn suback(
        &mut self,
        now: Instant,
        request: &SubscribeRequest,
        reasons: Vec<ReasonCode>,
    ) -> Result<Vec<(TopicFilter, Subscription, bool)>, UsageError> {
        if reasons.len() != request.entries.len() {
            return Err(UsageError::InvalidState("one reason code per filter"));
        }
        let mut granted = Vec::new();
        for (entry, reason) in request.entries.iter().zip(&reasons) {
            if let (Ok(filter), false) = (&entry.filter, reason.is_error()) {
                // Kept in a buffer of its own: as decoded, it would keep
                // the whole read buffer of its SUBSCRIBE alive.
                let filter =
                    &TopicFilter::try_from(filter.as_str()).unwrap_or_else(|_| filter.clone());
                let mut options = entry.options;
                options.qos = QoS::try_from(reason.as_u8())
                    .unwrap_or(options.qos)
                    .min(options.qos);
                let sub = Subscription {
                    options,
                    id: request.subscription_id,
                };
                let existed = self
                    .core
                    .state
                    .subscriptions
                    .insert(filter.clone(), sub.clone())
                    .is_some();
                granted.push((filter.clone(), sub, existed));
            }
        }
        if self.phase == Phase::Connected {
            self.core.send(now, SubAck::new(request.packet_id, reasons));
        }
        Ok(granted)
    }

    /// Acknowledges a message delivered with an `ack` identifier.
    ///
    /// # Errors
    ///
    /// [`UsageError::NotAwaitingAck`].
    pub fn ack(&mut self, now: Instant, packet_id: PacketId) -> Result<(), UsageError> {
        self.core.ack(now, packet_id)
    }

    /// Sends an AUTH packet (MQTT 5.0 extended authentication).
    pub fn auth(&mut self, now: Instant, auth: Auth) {
        if self.version.is_v5() && matches!(self.phase, Phase::Connected | Phase::AwaitAccept) {
            self.core.send(now, auth);
        }
    }

    /// Closes the connection from the server side with `reason` (MQTT 5.0
    /// DISCONNECT; 3.1.1 just closes): for example
    /// [`ReasonCode::SessionTakenOver`] or
    /// [`ReasonCode::ServerShuttingDown`]. The will is scheduled as for a
    /// lost connection.
    pub fn disconnect(&mut self, now: Instant, reason: ReasonCode) {
        if self.phase != Phase::Connected {
            if matches!(self.phase, Phase::AwaitConnect | Phase::AwaitAccept) {
                self.reject(now, reason);
            }
            return;
        }
        if self.version.is_v5() {
            self.core.send(now, Disconnect::new(reason));
        }
        self.end_connection(now, CloseReason::Local(reason), true);
    }

    /// The transport closed or failed.
    pub fn connection_lost(&mut self, now: Instant) {
        match self.phase {
            Phase::Connected => self.end_connection(now, CloseReason::ConnectionLost, true),
            Phase::AwaitConnect | Phase::AwaitAccept => {
                self.end_connection(now, CloseReason::ConnectionLost, false);
                self.phase = Phase::Ended;
            }
            Phase::Offline | Phase::Ended => {}
        }
    }

    /// Takes the session state for the client's new connection: a pending
    /// will is cancelled, timers stop, and this session ends.
    ///
    /// If this session's connection is still up (a takeover), call
    /// [`disconnect`](Self::disconnect) with [`ReasonCode::SessionTakenOver`]
    /// first so that its will is handled as the spec says; if not, the
    /// connection is ended here the same way (DISCONNECT 0x8E in 5.0 and
    /// [`Event::Closed`]) but its will is dropped with the taken state.
    pub fn take_state(&mut self) -> SessionState {
        if self.phase == Phase::Connected {
            if self.version.is_v5() {
                self.core
                    .transmit
                    .push_back(Disconnect::new(ReasonCode::SessionTakenOver).into());
            }
            self.core.events.push_back(Event::Closed(CloseReason::Local(
                ReasonCode::SessionTakenOver,
            )));
        }
        self.will = None;
        self.phase = Phase::Ended;
        self.core.end_link();
        self.core.timers = Default::default();
        std::mem::take(&mut self.core.state)
    }

    /// Ends the session (for example when the client reconnects with clean
    /// start): a pending will is published now.
    pub fn end(&mut self, now: Instant) {
        if self.phase == Phase::Connected {
            self.end_connection(now, CloseReason::Local(ReasonCode::SessionTakenOver), true);
        }
        if let Some(w) = self.will.take() {
            self.core.events.push_back(Event::Will(w.message));
        }
        self.finish(now);
    }

    fn dispatch(&mut self, now: Instant, packet: Packet) -> Result<(), ProtocolError> {
        match packet {
            Packet::Publish(p) => {
                if p.qos > self.config.maximum_qos {
                    return Err(ProtocolError::QoSNotSupported);
                }
                if p.retain && !self.config.retain_available {
                    return Err(ProtocolError::RetainNotSupported);
                }
                if !p.properties.subscription_identifiers.is_empty() {
                    return Err(ProtocolError::SubscriptionIdFromClient);
                }
                self.core.handle_publish(now, p)?;
            }
            Packet::PubAck(p) => self.core.handle_puback(now, p),
            Packet::PubRec(p) => self.core.handle_pubrec(now, p),
            Packet::PubRel(p) => self.core.handle_pubrel(now, p),
            Packet::PubComp(p) => self.core.handle_pubcomp(now, p),
            Packet::Subscribe(s) => self.handle_subscribe(s)?,
            Packet::Unsubscribe(u) => self.handle_unsubscribe(now, u),
            Packet::PingReq => self.core.send(now, Packet::PingResp),
            Packet::Disconnect(d) => self.handle_disconnect(now, d)?,
            Packet::Auth(a) => self.core.events.push_back(Event::Auth(a)),
            Packet::Connect(_) => return Err(ProtocolError::SecondConnect),
            other => return Err(ProtocolError::UnexpectedPacket(other.packet_type())),
        }
        Ok(())
    }

    fn handle_subscribe(&mut self, mut s: Subscribe) -> Result<(), ProtocolError> {
        // [MQTT-3.8.3-4]: No Local on a shared subscription is a protocol
        // error (the whole SUBSCRIBE, not one filter).
        if s.filters
            .iter()
            .any(|f| f.options.no_local && f.filter.as_str().starts_with("$share/"))
        {
            return Err(ProtocolError::NoLocalOnSharedSubscription);
        }
        let c = &self.config;
        let entries = s
            .filters
            .into_iter()
            .map(|f| {
                let mut options = f.options;
                options.qos = options.qos.min(c.maximum_qos);
                let filter = match TopicFilter::try_from(f.filter.into_bytes()) {
                    Err(_) => Err(ReasonCode::TopicFilterInvalid),
                    Ok(t) if t.is_shared() && !c.shared_subscription_available => {
                        Err(ReasonCode::SharedSubscriptionsNotSupported)
                    }
                    Ok(t) if t.is_wildcard() && !c.wildcard_subscription_available => {
                        Err(ReasonCode::WildcardSubscriptionsNotSupported)
                    }
                    Ok(_)
                        if s.properties.subscription_identifier.is_some()
                            && !c.subscription_identifiers_available =>
                    {
                        Err(ReasonCode::SubscriptionIdentifiersNotSupported)
                    }
                    Ok(t) => Ok(t),
                };
                SubscribeEntry { filter, options }
            })
            .collect();
        self.core
            .events
            .push_back(Event::Subscribe(SubscribeRequest {
                packet_id: s.packet_id,
                entries,
                subscription_id: s.properties.subscription_identifier,
                user_properties: s
                    .properties
                    .get_mut()
                    .map(|p| std::mem::take(&mut p.user_properties))
                    .unwrap_or_default(),
            }));
        Ok(())
    }

    fn handle_unsubscribe(&mut self, now: Instant, u: Unsubscribe) {
        let mut reasons = Vec::with_capacity(u.filters.len());
        let mut removed = Vec::new();
        for f in u.filters {
            match TopicFilter::try_from(f.into_bytes()) {
                Ok(t) => {
                    if self.core.state.subscriptions.remove(&t).is_some() {
                        reasons.push(ReasonCode::Success);
                        removed.push(t);
                    } else {
                        reasons.push(ReasonCode::NoSubscriptionExisted);
                    }
                }
                Err(_) => reasons.push(ReasonCode::TopicFilterInvalid),
            }
        }
        if !self.version.is_v5() {
            reasons.clear();
        }
        self.core.send(now, UnsubAck::new(u.packet_id, reasons));
        if !removed.is_empty() {
            self.core.events.push_back(Event::Unsubscribed(removed));
        }
    }

    fn handle_disconnect(&mut self, now: Instant, d: Disconnect) -> Result<(), ProtocolError> {
        if let Some(sei) = d.properties.session_expiry_interval {
            // [MQTT-3.14.2-2]: no expiry set at CONNECT cannot be set now.
            if self.connect_expiry == 0 && sei != 0 {
                return Err(ProtocolError::UnexpectedPacket(PacketType::Disconnect));
            }
            self.core.state.expiry_interval = sei.min(self.config.max_session_expiry_interval);
        }
        // [MQTT-3.1.2-10]: a normal DISCONNECT discards the will; 0x04 asks
        // for it to be published.
        let keep_will = d.reason == ReasonCode::DisconnectWithWillMessage;
        self.end_connection(now, CloseReason::ClientDisconnected(d.reason), keep_will);
        Ok(())
    }

    /// Timers due at `now`: connect timeout, keep-alive, will delay, session
    /// expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = |t| self.core.timers.is_due(t, now);
        if due(Timer::Connect) {
            self.core.timers.stop(Timer::Connect);
            self.end_connection(
                now,
                CloseReason::ProtocolError(ProtocolError::ConnectTimeout),
                false,
            );
            self.phase = Phase::Ended;
            return;
        }
        if due(Timer::KeepAlive) {
            // [MQTT-3.1.2-24]: nothing received for 1.5 x Keep Alive.
            self.protocol_error(now, ProtocolError::KeepAliveTimeout);
        }
        if self.core.timers.is_due(Timer::WillDelay, now) {
            self.core.timers.stop(Timer::WillDelay);
            if let Some(w) = self.will.take() {
                self.core.events.push_back(Event::Will(w.message));
            }
        }
        if self.core.timers.is_due(Timer::SessionExpiry, now) {
            self.expire(now);
        }
    }

    fn touch(&mut self, now: Instant) {
        if self.keep_alive > 0 {
            let grace = Duration::from_millis(u64::from(self.keep_alive) * 1500);
            self.core.timers.set(Timer::KeepAlive, now + grace);
        }
    }

    fn protocol_error(&mut self, now: Instant, e: ProtocolError) {
        match self.phase {
            Phase::Connected => {
                if self.version.is_v5() {
                    self.core.send(now, crate::error::disconnect_for(&e));
                }
                self.end_connection(now, CloseReason::ProtocolError(e), true);
            }
            Phase::AwaitAccept if self.version.is_v5() => {
                let code = e.reason_code();
                let code = if code.is_allowed_in(PacketType::ConnAck) {
                    code
                } else {
                    ReasonCode::ProtocolError
                };
                self.core.send(now, ConnAck::new(code));
                self.end_connection(now, CloseReason::ProtocolError(e), false);
                self.phase = Phase::Ended;
            }
            Phase::AwaitConnect | Phase::AwaitAccept => {
                self.end_connection(now, CloseReason::ProtocolError(e), false);
                self.phase = Phase::Ended;
            }
            Phase::Offline | Phase::Ended => {}
        }
    }

    /// The connection is over; the session lives on as its expiry says.
    ///
    /// A CONNECT still awaiting [`accept`](Self::accept) goes with it: a
    /// connection that ended (refused, protocol error, lost) is never
    /// accepted, and [`connect_packet`](Self::connect_packet) returning
    /// `None` tells the broker so before it takes over the client's stored
    /// session for it.
    fn end_connection(&mut self, now: Instant, reason: CloseReason, publish_will: bool) {
        let was_connected = self.phase == Phase::Connected;
        self.connect = None;
        self.core.end_link();
        self.early.clear();
        for t in [Timer::Connect, Timer::KeepAlive] {
            self.core.timers.stop(t);
        }
        self.core.events.push_back(Event::Closed(reason));
        if !was_connected {
            return;
        }
        self.phase = Phase::Offline;
        // QoS 0 messages are not kept for an absent client.
        for q in self.core.state.outgoing.drop_queued_qos0() {
            self.core.events.push_back(Event::Dropped {
                id: q.id,
                reason: DropReason::Offline,
            });
        }
        if !publish_will {
            self.will = None;
        }
        let expiry = self.core.state.expiry_interval;
        if let Some(w) = &self.will {
            // The will waits for its delay, unless the session ends first.
            let delay = w.delay.min(Duration::from_secs(u64::from(expiry)));
            if delay.is_zero() {
                if let Some(w) = self.will.take() {
                    self.core.events.push_back(Event::Will(w.message));
                }
            } else {
                self.core.timers.set(Timer::WillDelay, now + delay);
            }
        }
        match expiry {
            0 => self.expire(now),
            u32::MAX => {}
            secs => self.core.timers.set(
                Timer::SessionExpiry,
                now + Duration::from_secs(u64::from(secs)),
            ),
        }
    }

    fn expire(&mut self, now: Instant) {
        if let Some(w) = self.will.take() {
            self.core.events.push_back(Event::Will(w.message));
        }
        self.core.events.push_back(Event::SessionExpired);
        self.finish(now);
    }

    /// The session is over at `now`: the messages its client does not have
    /// that came through a shared subscription are handed back for another
    /// member ([`Event::Redispatch`], MQTT 5.0 section 4.8.2), the others
    /// are reported dropped.
    fn finish(&mut self, now: Instant) {
        for left in self.core.state.outgoing.drain_entries() {
            let event = match left.share {
                // A QoS 2 message past PUBREC is the client's.
                Some(origin) if !left.received => {
                    match remaining_expiry(&left.message, left.since, now) {
                        Some(0) => Event::Dropped {
                            id: left.id,
                            reason: DropReason::Expired,
                        },
                        remaining => {
                            let (mut message, filter) = origin.restore(left.message);
                            if remaining.is_some() {
                                // Counted down by the time it waited here
                                // [MQTT-3.3.2-6].
                                message.properties.to_mut().message_expiry_interval = remaining;
                            }
                            Event::Redispatch {
                                id: left.id,
                                message,
                                filter,
                            }
                        }
                    }
                }
                _ => Event::Dropped {
                    id: left.id,
                    reason: DropReason::SessionEnded,
                },
            };
            self.core.events.push_back(event);
        }
        self.core.timers = Default::default();
        self.phase = Phase::Ended;
    }

    /// Releases the memory the session's internal queues keep once they are
    /// drained (a broker calls it for quiet connections, so that thousands
    /// of idle clients cost little).
    pub fn shrink_to_fit(&mut self) {
        if self.core.transmit.is_empty() {
            self.core.transmit = VecDeque::new();
        }
        if self.core.events.is_empty() {
            self.core.events = VecDeque::new();
        }
        if self.early.is_empty() {
            self.early = VecDeque::new();
        }
    }

    /// The next packet to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Packet> {
        self.core.transmit.pop_front()
    }

    /// How many packets wait for [`poll_transmit`](Self::poll_transmit):
    /// a server that encodes them later can tell how much output it owes
    /// the connection meanwhile.
    #[must_use]
    pub fn transmit_len(&self) -> usize {
        self.core.transmit.len()
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

/// The 3.1.1 CONNACK return code nearest to `reason`.
fn v3_connack_reason(reason: ReasonCode) -> ReasonCode {
    if reason.to_v3_connack().is_some() && reason.is_error() {
        return reason;
    }
    match reason {
        ReasonCode::Banned | ReasonCode::BadAuthenticationMethod => ReasonCode::NotAuthorized,
        _ => ReasonCode::ServerUnavailable,
    }
}
