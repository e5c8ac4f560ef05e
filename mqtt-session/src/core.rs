//! The machinery both sides share once connected: sending and receiving
//! PUBLISH with QoS 0, 1 and 2, topic aliases, the transmit and event
//! queues, and timers.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::num::NonZeroU32;
use std::time::Instant;

use mqtt_codec::{
    Auth, Disconnect, Packet, PacketId, Props, ProtocolVersion, PubAck, PubComp, PubRec, PubRel,
    Publish, PublishTopic, QoS, ReasonCode, SubAck, UnsubAck,
};
use mqtt_topic::TopicName;

use crate::error::{ProtocolError, UsageError};
use crate::event::Event;
use crate::message::{DropReason, Message, MessageId, SharedOrigin};
use crate::outgoing::{Acked, Next, QueuePolicy, Queued, Window, remaining_expiry};
use crate::state::SessionState;
use crate::timer::Timers;

/// What was negotiated for the current connection.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub(crate) version: ProtocolVersion,
    /// How many QoS 1/2 messages we may have in flight to the peer.
    pub(crate) send_window: Window,
    pub(crate) peer_max_packet: Option<NonZeroU32>,
    pub(crate) peer_alias_max: u16,
    pub(crate) our_alias_max: u16,
    pub(crate) our_receive_max: usize,
    pub(crate) use_outbound_aliases: bool,
    /// The peer's Maximum QoS and Retain Available (CONNACK, client side).
    pub(crate) peer_max_qos: QoS,
    pub(crate) peer_retain_available: bool,
    /// Topic aliases, allocated when the first one is used: most
    /// connections never use one, and a session stays small.
    pub(crate) aliases: Option<Box<Aliases>>,
}

/// Received QoS 1/2 messages whose PUBACK or PUBREC is not sent yet (manual
/// acknowledgement): the application has not acknowledged them, or has
/// but an earlier one is still waiting (see [`Core::ack`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Acks {
    pub(crate) pending: BTreeMap<PacketId, QoS>,
    /// The identifiers of `pending` in the order their PUBLISH arrived.
    pub(crate) order: VecDeque<PacketId>,
    /// Those of `pending` the application acknowledged.
    pub(crate) acked: BTreeSet<PacketId>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Aliases {
    pub(crate) inbound: HashMap<u16, TopicName>,
    pub(crate) outbound: HashMap<TopicName, u16>,
}

impl Link {
    pub(crate) fn new(version: ProtocolVersion) -> Self {
        Self {
            version,
            send_window: Window::flat(usize::from(u16::MAX)),
            peer_max_packet: None,
            peer_alias_max: 0,
            our_alias_max: 0,
            our_receive_max: usize::from(u16::MAX),
            use_outbound_aliases: false,
            peer_max_qos: QoS::ExactlyOnce,
            peer_retain_available: true,
            aliases: None,
        }
    }
}

/// Limits on what a session keeps for sending.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueLimits {
    pub(crate) max_queued: usize,
    pub(crate) policy: QueuePolicy,
}

#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) state: SessionState,
    pub(crate) link: Option<Link>,
    pub(crate) transmit: VecDeque<Packet>,
    pub(crate) events: VecDeque<Event>,
    pub(crate) timers: Timers,
    pub(crate) limits: QueueLimits,
    pub(crate) manual_ack: bool,
    /// Manual acknowledgement: what the application holds (boxed, and
    /// only while it holds anything: a server's session never does).
    pub(crate) acks: Option<Box<Acks>>,
    /// Packet identifiers held by SUBSCRIBE and UNSUBSCRIBE in flight.
    pub(crate) reserved_pids: BTreeSet<PacketId>,
    /// Client: send PINGREQ after this much silence.
    pub(crate) ping_interval: Option<std::time::Duration>,
    /// Report [`Event::Delivered`] (a broker that routes without tracking
    /// each delivery turns it off).
    pub(crate) report_delivered: bool,
}

impl Core {
    pub(crate) fn new(limits: QueueLimits, manual_ack: bool) -> Self {
        Self {
            state: SessionState::default(),
            link: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            timers: Timers::default(),
            limits,
            manual_ack,
            acks: None,
            reserved_pids: BTreeSet::new(),
            ping_interval: None,
            report_delivered: true,
        }
    }

    fn delivered(&mut self, id: MessageId, reason: ReasonCode) {
        if self.report_delivered {
            self.events.push_back(Event::Delivered { id, reason });
        }
    }

    pub(crate) fn version(&self) -> Option<ProtocolVersion> {
        self.link.as_ref().map(|l| l.version)
    }

    /// Queues `p` for the peer, without the Reason String and User
    /// Properties it cannot take (see [`fit_to_peer`]).
    pub(crate) fn send(&mut self, now: Instant, p: impl Into<Packet>) {
        let mut p = p.into();
        if let Some(link) = &self.link {
            if let Some(max) = link.peer_max_packet {
                fit_to_peer(&mut p, link.version, max);
            }
        }
        self.transmit.push_back(p);
        if let Some(interval) = self.ping_interval {
            self.timers
                .set_after(crate::timer::Timer::KeepAlive, now, interval);
        }
    }

    /// Allocates a packet identifier for SUBSCRIBE or UNSUBSCRIBE.
    pub(crate) fn reserve_pid(&mut self) -> Result<PacketId, UsageError> {
        let reserved = &self.reserved_pids;
        let pid = self
            .state
            .outgoing
            .allocate_pid(|p| reserved.contains(&p))
            .ok_or(UsageError::PacketIdsExhausted)?;
        self.reserved_pids.insert(pid);
        Ok(pid)
    }

    /// Hands a message to the sending side: queued, then sent as the window
    /// allows. With [`QueuePolicy::DropNew`] a full queue refuses it.
    /// `share`: the shared subscription it came through (server side), kept
    /// with it.
    pub(crate) fn submit(
        &mut self,
        now: Instant,
        message: Message,
        share: Option<Box<SharedOrigin>>,
    ) -> Result<MessageId, UsageError> {
        let id = self.state.outgoing.new_id();
        let mut q = Queued {
            id,
            message,
            since: now,
            share,
        };
        // Fast path: nothing queued and room in the window: straight to the
        // wire, without a trip through the queue.
        if let Some(window) = self.link.as_ref().map(|l| l.send_window) {
            let reserved = &self.reserved_pids;
            match self
                .state
                .outgoing
                .admit(now, q, window, |p| reserved.contains(&p))
            {
                Ok(next) => {
                    self.dispatch_next(now, next);
                    return Ok(id);
                }
                Err(back) => q = back,
            }
        }
        // A full queue first loses its expired messages [MQTT-3.3.2-5]: they
        // must not cost a deliverable message its place (DropNew) or push
        // out a live one (DropOldest). Only a full queue is looked at.
        if self.state.outgoing.queue_len() >= self.limits.max_queued {
            for expired in self.state.outgoing.drop_expired(now) {
                self.events.push_back(Event::Dropped {
                    id: expired.id,
                    reason: DropReason::Expired,
                });
            }
        }
        match self
            .state
            .outgoing
            .enqueue(q, self.limits.max_queued, self.limits.policy)
        {
            Some(dropped) if dropped.id == id => return Err(UsageError::QueueFull),
            Some(dropped) => {
                self.events.push_back(Event::Dropped {
                    id: dropped.id,
                    reason: DropReason::QueueFull,
                });
            }
            None => {}
        }
        self.flush(now);
        Ok(id)
    }

    /// Moves queued messages to the wire while the connection and the
    /// inflight window allow.
    pub(crate) fn flush(&mut self, now: Instant) {
        let Some(window) = self.link.as_ref().map(|l| l.send_window) else {
            return;
        };
        loop {
            let reserved = &self.reserved_pids;
            let Some(next) = self
                .state
                .outgoing
                .next(now, window, |p| reserved.contains(&p))
            else {
                return;
            };
            self.dispatch_next(now, next);
        }
    }

    fn dispatch_next(&mut self, now: Instant, next: Next) {
        match next {
            Next::Expired(q) => {
                self.events.push_back(Event::Dropped {
                    id: q.id,
                    reason: DropReason::Expired,
                });
            }
            Next::Send(q) => {
                let r = self.prepare_publish(now, None, &q.message, q.since, false);
                self.finish_publish(now, None, q.id, r);
            }
            Next::Inflight(pid) => self.send_inflight(now, pid, false),
            Next::Resend(pid) => self.send_inflight(now, pid, true),
        }
    }

    /// Sends (again, with `dup`) the PUBLISH of the flow that uses `pid`.
    fn send_inflight(&mut self, now: Instant, pid: PacketId, dup: bool) {
        let Some(f) = self.state.outgoing.inflight(pid) else {
            return;
        };
        let id = f.id;
        // The message stays in the inflight table: built from a reference
        // (`self.link` and `self.state` are distinct fields).
        let Some(link) = self.link.as_mut() else {
            return;
        };
        let r = build_checked(link, Some(pid), &f.message, f.since, now, dup);
        self.finish_publish(now, Some(pid), id, Some(r));
    }

    /// Builds the PUBLISH for `message`, or says why it cannot be sent.
    fn prepare_publish(
        &mut self,
        now: Instant,
        pid: Option<PacketId>,
        message: &Message,
        since: Instant,
        dup: bool,
    ) -> Option<Result<Publish, DropReason>> {
        let link = self.link.as_mut()?;
        Some(build_checked(link, pid, message, since, now, dup))
    }

    /// Sends a built PUBLISH, or reports the message dropped (and frees its
    /// packet identifier).
    fn finish_publish(
        &mut self,
        now: Instant,
        pid: Option<PacketId>,
        id: MessageId,
        r: Option<Result<Publish, DropReason>>,
    ) {
        match r {
            None => {}
            Some(Ok(p)) => {
                self.send(now, p);
                if pid.is_none() {
                    self.delivered(id, ReasonCode::Success);
                }
            }
            Some(Err(reason)) => {
                if let Some(pid) = pid {
                    self.state.outgoing.forget(pid);
                }
                self.events.push_back(Event::Dropped { id, reason });
            }
        }
    }

    /// Re-sends, in their original order, the PUBLISH (with DUP) and PUBREL
    /// packets of a resumed session \[MQTT-4.4.0-1\], then the queue.
    ///
    /// The PUBLISH packets count against the window of the new connection,
    /// whose Receive Maximum may be smaller than the old one's
    /// \[MQTT-3.3.4-9\] (\[MQTT-3.3.4-7\] on the client side): those that do
    /// not fit go out, still in order, as acknowledgements free the window
    /// ([`flush`](Self::flush)). A PUBREL is not a PUBLISH and always goes.
    pub(crate) fn resume(&mut self, now: Instant) {
        let Some(window) = self.link.as_ref().map(|l| l.send_window) else {
            return;
        };
        for (pid, stage) in self.state.outgoing.resume() {
            match stage {
                crate::outgoing::Stage::Published => {
                    // The oldest PUBLISH not re-sent yet: this one, unless
                    // the window is full.
                    if let Some(pid) = self.state.outgoing.resend_next(window) {
                        self.send_inflight(now, pid, true);
                    }
                }
                crate::outgoing::Stage::Released => self.send(now, PubRel::new(pid)),
            }
        }
        self.flush(now);
    }

    /// A PUBLISH from the peer (MQTT 5.0 section 4.3 and 4.4, receiver side).
    pub(crate) fn handle_publish(&mut self, now: Instant, p: Publish) -> Result<(), ProtocolError> {
        let Some(link) = self.link.as_mut() else {
            return Err(ProtocolError::UnexpectedPacket(
                mqtt_codec::PacketType::Publish,
            ));
        };
        let topic = resolve_topic(link, &p)?;
        let mut properties = p.properties;
        if properties.topic_alias.is_some() {
            properties.to_mut().topic_alias = None;
            properties.compact();
        }
        let message = Message {
            topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            properties,
        };
        let receive_max = link.our_receive_max;
        match (p.qos, p.packet_id) {
            (QoS::AtMostOnce, _) | (_, None) => {
                self.events.push_back(Event::Message { message, ack: None });
            }
            (QoS::AtLeastOnce, Some(pid)) => {
                if self.ack_pending(pid) {
                    // The same identifier again while the application
                    // holds the message: a copy the sender may not send on
                    // this connection [MQTT-4.4.0-1]; not delivered again
                    // (the application's acknowledgement answers both), so
                    // that it cannot bypass the Receive Maximum.
                    return Ok(());
                }
                self.check_receive_max(receive_max)?;
                if self.manual_ack {
                    self.hold_ack(pid, QoS::AtLeastOnce);
                    self.events.push_back(Event::Message {
                        message,
                        ack: Some(pid),
                    });
                } else {
                    self.events.push_back(Event::Message { message, ack: None });
                    self.send(now, PubAck::new(pid));
                }
            }
            (QoS::ExactlyOnce, Some(pid)) => {
                if self.state.incoming_qos2.contains(&pid) {
                    // A re-sent PUBLISH: acknowledged, not delivered again.
                    if !self.ack_pending(pid) {
                        self.send(now, PubRec::new(pid));
                    }
                    return Ok(());
                }
                self.check_receive_max(receive_max)?;
                self.state.incoming_qos2.insert(pid);
                if self.manual_ack {
                    self.hold_ack(pid, QoS::ExactlyOnce);
                    self.events.push_back(Event::Message {
                        message,
                        ack: Some(pid),
                    });
                } else {
                    self.events.push_back(Event::Message { message, ack: None });
                    self.send(now, PubRec::new(pid));
                }
            }
        }
        Ok(())
    }

    /// "The Client MUST NOT send more than Receive Maximum QoS 1 and QoS 2
    /// PUBLISH packets for which it has not received PUBACK, PUBCOMP, or
    /// PUBREC with a Reason Code of 128 or greater" \[MQTT-3.3.4-7\].
    fn check_receive_max(&self, receive_max: usize) -> Result<(), ProtocolError> {
        let qos1_pending = self.acks.as_ref().map_or(0, |a| {
            a.pending
                .values()
                .filter(|q| **q == QoS::AtLeastOnce)
                .count()
        });
        if qos1_pending + self.state.incoming_qos2.len() >= receive_max {
            return Err(ProtocolError::ReceiveMaximumExceeded);
        }
        Ok(())
    }

    /// The application acknowledges a message delivered with `ack`. Its
    /// PUBACK or PUBREC goes out once those of every message that arrived
    /// before it have: "in the order in which the corresponding PUBLISH
    /// packets were received" \[MQTT-4.6.0-2\], \[MQTT-4.6.0-3\].
    pub(crate) fn ack(&mut self, now: Instant, pid: PacketId) -> Result<(), UsageError> {
        let given = self
            .acks
            .as_mut()
            .is_some_and(|a| a.pending.contains_key(&pid) && a.acked.insert(pid));
        if !given {
            return Err(UsageError::NotAwaitingAck(pid.get()));
        }
        if self.link.is_some() {
            self.release_acks(now);
        }
        Ok(())
    }

    /// Whether the application holds the message with `pid`.
    fn ack_pending(&self, pid: PacketId) -> bool {
        self.acks
            .as_ref()
            .is_some_and(|a| a.pending.contains_key(&pid))
    }

    /// The application gets the message with `pid` to acknowledge.
    fn hold_ack(&mut self, pid: PacketId, qos: QoS) {
        let a = self.acks.get_or_insert_default();
        a.pending.insert(pid, qos);
        a.order.push_back(pid);
    }

    /// Sends the acknowledgements the application gave, in arrival order,
    /// up to the first it has not given.
    pub(crate) fn release_acks(&mut self, now: Instant) {
        let Some(a) = self.acks.as_mut() else {
            return;
        };
        let mut out = Vec::new();
        while let Some(&pid) = a.order.front() {
            if !a.acked.remove(&pid) {
                break;
            }
            a.order.pop_front();
            if let Some(qos) = a.pending.remove(&pid) {
                out.push((pid, qos));
            }
        }
        if a.pending.is_empty() {
            self.acks = None;
        }
        for (pid, qos) in out {
            match qos {
                QoS::ExactlyOnce => self.send(now, PubRec::new(pid)),
                _ => self.send(now, PubAck::new(pid)),
            }
        }
    }

    /// Forgets the message with `pid` the application holds.
    fn retain_acks_except(&mut self, pid: PacketId) {
        if let Some(a) = self.acks.as_mut() {
            a.pending.remove(&pid);
        }
        self.retain_acks(|_| true);
    }

    /// Keeps of what the application holds only what `keep` accepts.
    pub(crate) fn retain_acks(&mut self, keep: impl Fn(QoS) -> bool) {
        let Some(a) = self.acks.as_mut() else {
            return;
        };
        a.pending.retain(|_, q| keep(*q));
        let pending = &a.pending;
        a.order.retain(|p| pending.contains_key(p));
        a.acked.retain(|p| pending.contains_key(p));
        if a.pending.is_empty() {
            self.acks = None;
        }
    }

    pub(crate) fn handle_puback(&mut self, now: Instant, p: PubAck) {
        if let Acked::Done(id, reason) = self.state.outgoing.puback(p.packet_id, p.reason) {
            self.delivered(id, reason);
            self.flush(now);
        }
    }

    pub(crate) fn handle_pubrec(&mut self, now: Instant, p: PubRec) {
        match self.state.outgoing.pubrec(p.packet_id, p.reason) {
            Acked::Release => {
                self.send(now, PubRel::new(p.packet_id));
                // The flow may have left the part of the window that holds
                // up the next message.
                self.flush(now);
            }
            Acked::Done(id, reason) => {
                self.delivered(id, reason);
                self.flush(now);
            }
            Acked::Unknown => {
                if self.version().is_some_and(ProtocolVersion::is_v5) {
                    let mut rel = PubRel::new(p.packet_id);
                    rel.reason = ReasonCode::PacketIdentifierNotFound;
                    self.send(now, rel);
                }
            }
        }
    }

    pub(crate) fn handle_pubrel(&mut self, now: Instant, p: PubRel) {
        let mut comp = PubComp::new(p.packet_id);
        if !self.state.incoming_qos2.remove(&p.packet_id)
            && self.version().is_some_and(ProtocolVersion::is_v5)
        {
            comp.reason = ReasonCode::PacketIdentifierNotFound;
        }
        if self.ack_pending(p.packet_id) {
            let pid = p.packet_id;
            self.retain_acks_except(pid);
        }
        self.send(now, comp);
    }

    pub(crate) fn handle_pubcomp(&mut self, now: Instant, p: PubComp) {
        if let Acked::Done(id, reason) = self.state.outgoing.pubcomp(p.packet_id, p.reason) {
            self.delivered(id, reason);
            self.flush(now);
        }
    }

    /// The connection is over: per-connection state goes, the session stays.
    pub(crate) fn end_link(&mut self) {
        self.link = None;
        self.state.outgoing.connection_ended();
        // QoS 1 messages awaiting the application's ack will be re-sent by the
        // peer on the next connection; QoS 2 ones are kept in incoming_qos2.
        self.retain_acks(|q| q == QoS::ExactlyOnce);
        self.reserved_pids.clear();
    }
}

/// Drops the Reason String, then the User Properties, of a packet that
/// would otherwise exceed the peer's Maximum Packet Size: the sender "MUST
/// NOT send this property if it would increase the size of the packet
/// beyond the Maximum Packet Size specified by the receiver" (CONNACK
/// \[MQTT-3.2.2-19\], \[MQTT-3.2.2-20\]; PUBACK \[MQTT-3.4.2-2\],
/// \[MQTT-3.4.2-3\]; PUBREC \[MQTT-3.5.2-2\], \[MQTT-3.5.2-3\]; PUBREL
/// \[MQTT-3.6.2-2\], \[MQTT-3.6.2-3\]; PUBCOMP \[MQTT-3.7.2-2\],
/// \[MQTT-3.7.2-3\]; SUBACK \[MQTT-3.9.2-1\], \[MQTT-3.9.2-2\]; UNSUBACK
/// \[MQTT-3.11.2-1\], \[MQTT-3.11.2-2\]; DISCONNECT \[MQTT-3.14.2-3\],
/// \[MQTT-3.14.2-4\]; AUTH \[MQTT-3.15.2-2\], \[MQTT-3.15.2-3\]), and no
/// packet may exceed it (\[MQTT-3.1.2-24\] server side, \[MQTT-3.2.2-15\]
/// client side). PUBLISH is checked when it is built (see [`build_publish`]).
fn fit_to_peer(p: &mut Packet, v: ProtocolVersion, max: NonZeroU32) {
    let droppable = match &*p {
        Packet::ConnAck(c) => {
            c.properties.reason_string.is_some() || !c.properties.user_properties.is_empty()
        }
        Packet::PubAck(PubAck { properties, .. })
        | Packet::PubRec(PubRec { properties, .. })
        | Packet::PubRel(PubRel { properties, .. })
        | Packet::PubComp(PubComp { properties, .. })
        | Packet::SubAck(SubAck { properties, .. })
        | Packet::UnsubAck(UnsubAck { properties, .. }) => {
            properties.reason_string.is_some() || !properties.user_properties.is_empty()
        }
        Packet::Disconnect(d) => {
            d.properties.reason_string.is_some() || !d.properties.user_properties.is_empty()
        }
        Packet::Auth(a) => {
            a.properties.reason_string.is_some() || !a.properties.user_properties.is_empty()
        }
        _ => false,
    };
    let too_large = |p: &Packet| p.encoded_len(v).is_ok_and(|n| n > max.get() as usize);
    if !droppable || !too_large(p) {
        return;
    }
    for user_properties_too in [false, true] {
        macro_rules! drop_optional {
            ($properties:expr) => {{
                if let Some(x) = $properties.get_mut() {
                    x.reason_string = None;
                    if user_properties_too {
                        x.user_properties.clear();
                    }
                }
                $properties.compact();
            }};
        }
        match p {
            Packet::ConnAck(c) => {
                c.properties.reason_string = None;
                if user_properties_too {
                    c.properties.user_properties.clear();
                }
            }
            Packet::PubAck(PubAck { properties, .. })
            | Packet::PubRec(PubRec { properties, .. })
            | Packet::PubRel(PubRel { properties, .. })
            | Packet::PubComp(PubComp { properties, .. })
            | Packet::SubAck(SubAck { properties, .. })
            | Packet::UnsubAck(UnsubAck { properties, .. }) => drop_optional!(properties),
            Packet::Disconnect(Disconnect { properties, .. }) => drop_optional!(properties),
            Packet::Auth(Auth { properties, .. }) => drop_optional!(properties),
            _ => return,
        }
        if !too_large(p) {
            return;
        }
    }
}

/// Resolves the topic of a received PUBLISH, applying its Topic Alias.
fn resolve_topic(link: &mut Link, p: &Publish) -> Result<TopicName, ProtocolError> {
    // The codec checked the rules of a name; only emptiness is left.
    let Some(alias) = p.properties.topic_alias else {
        // "It is a Protocol Error if the Topic Name is zero length and
        // there is no Topic Alias."
        return p.topic.name().cloned().ok_or(ProtocolError::Malformed(
            mqtt_codec::DecodeError::EmptyTopicName,
        ));
    };
    let a = alias.get();
    // [MQTT-3.3.2-9]/[MQTT-3.3.2-10]: 0 is excluded by the codec; over the
    // maximum we announced is an error.
    if a > link.our_alias_max {
        return Err(ProtocolError::TopicAliasInvalid(a));
    }
    let Some(topic) = p.topic.name().cloned() else {
        return link
            .aliases
            .as_ref()
            .and_then(|x| x.inbound.get(&a))
            .cloned()
            .ok_or(ProtocolError::TopicAliasUnknown(a));
    };
    // Kept in a buffer of its own: as decoded, it would keep the whole
    // read buffer of its PUBLISH alive for as long as the alias lasts.
    let kept = TopicName::try_from(topic.as_str()).unwrap_or_else(|_| topic.clone());
    link.aliases.get_or_insert_default().inbound.insert(a, kept);
    Ok(topic)
}

/// The PUBLISH that carries `m` on this connection, or `None` if it exceeds
/// the peer's Maximum Packet Size.
/// [`build_publish`] after the checks that may drop the message instead.
fn build_checked(
    link: &mut Link,
    pid: Option<PacketId>,
    m: &Message,
    since: Instant,
    now: Instant,
    dup: bool,
) -> Result<Publish, DropReason> {
    // [MQTT-3.2.2-11], [MQTT-3.2.2-14]: a message queued before CONNACK may
    // exceed what the server turned out to support.
    if m.qos > link.peer_max_qos || (m.retain && !link.peer_retain_available) {
        return Err(DropReason::NotSupported);
    }
    let expiry = remaining_expiry(m, since, now);
    // [MQTT-3.1.2-25]: too large: discard it and behave as if it was sent.
    build_publish(link, pid, m, expiry, dup).ok_or(DropReason::TooLarge)
}

fn build_publish(
    link: &mut Link,
    pid: Option<PacketId>,
    m: &Message,
    expiry: Option<u32>,
    dup: bool,
) -> Option<Publish> {
    let v5 = link.version.is_v5();
    // Shared with the message: written to (and then copied) only when this
    // delivery differs.
    let mut properties = if v5 {
        m.properties.clone()
    } else {
        Props::none()
    };
    if properties.topic_alias.is_some() {
        properties.to_mut().topic_alias = None;
    }
    if v5 && expiry.is_some() && properties.message_expiry_interval != expiry {
        properties.to_mut().message_expiry_interval = expiry;
    }
    let mut topic = PublishTopic::from(m.topic.clone());
    let mut new_alias = false;
    if v5 && link.use_outbound_aliases && link.peer_alias_max > 0 {
        let aliases = link.aliases.get_or_insert_default();
        if let Some(&a) = aliases.outbound.get(&m.topic) {
            properties.to_mut().topic_alias = std::num::NonZeroU16::new(a);
            topic = PublishTopic::empty();
        } else if let Ok(n) = u16::try_from(aliases.outbound.len() + 1) {
            if n <= link.peer_alias_max {
                // Its own copy, as for inbound aliases.
                let kept =
                    TopicName::try_from(m.topic.as_str()).unwrap_or_else(|_| m.topic.clone());
                aliases.outbound.insert(kept, n);
                properties.to_mut().topic_alias = std::num::NonZeroU16::new(n);
                new_alias = true;
            }
        }
    }
    let p = Publish {
        dup,
        qos: m.qos,
        retain: m.retain,
        topic,
        packet_id: pid,
        properties,
        payload: m.payload.clone(),
    };
    if let Some(max) = link.peer_max_packet {
        let fits = p
            .packet_len(link.version)
            .is_ok_and(|n| n <= max.get() as usize);
        if !fits {
            if let (true, Some(aliases)) = (new_alias, link.aliases.as_mut()) {
                aliases.outbound.remove(&m.topic);
            }
            return None;
        }
    }
    Some(p)
}
