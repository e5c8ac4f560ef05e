//! The sending side of QoS 1 and 2 (MQTT 5.0 section 4.3, 4.4): packet
//! identifiers, the inflight window and the bounded queue behind it.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU64;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mqtt_codec::{PacketId, QoS, ReasonCode};

use crate::message::{Message, MessageId, SharedOrigin};

/// What to do when a message arrives and the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum QueuePolicy {
    /// Refuse the new message (the default): what was queued first is
    /// delivered first, and the sender of the new one is told.
    #[default]
    DropNew,
    /// Drop the oldest queued message to make room: the newest data wins.
    DropOldest,
}

/// A message waiting for room in the inflight window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Queued {
    pub(crate) id: MessageId,
    pub(crate) message: Message,
    pub(crate) since: Instant,
    /// The shared subscription it came through (server side, QoS 1/2).
    /// Boxed: a pointer's room, `None` and never looked at for the messages
    /// of every other subscription.
    pub(crate) share: Option<Box<SharedOrigin>>,
}

/// Where a QoS 1/2 message is in its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// PUBLISH sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Published,
    /// PUBREL sent; waiting for PUBCOMP.
    Released,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inflight {
    pub(crate) id: MessageId,
    pub(crate) message: Message,
    /// When the message was handed over: its expiry counts from here.
    pub(crate) since: Instant,
    pub(crate) stage: Stage,
    /// See [`Queued::share`].
    pub(crate) share: Option<Box<SharedOrigin>>,
}

/// A message still in the session when it ends (see
/// [`Outgoing::drain_entries`]).
#[derive(Debug)]
pub(crate) struct Left {
    pub(crate) id: MessageId,
    pub(crate) message: Message,
    pub(crate) since: Instant,
    pub(crate) share: Option<Box<SharedOrigin>>,
    /// The peer has it: a QoS 2 flow past PUBREC, waiting for PUBCOMP.
    pub(crate) received: bool,
}

impl Inflight {
    /// `q`, its PUBLISH sent.
    fn published(q: Queued) -> Self {
        Self {
            id: q.id,
            message: q.message,
            since: q.since,
            stage: Stage::Published,
            share: q.share,
        }
    }
}

/// The outcome of an acknowledgement.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Acked {
    /// The flow is complete; the packet identifier is free again.
    Done(MessageId, ReasonCode),
    /// PUBREC accepted: send PUBREL.
    Release,
    /// No message in a matching stage uses this identifier.
    Unknown,
}

/// How many QoS 1/2 flows may be open towards the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// Flows whose PUBLISH is not acknowledged yet (no PUBACK or PUBREC).
    pub(crate) unacked: usize,
    /// All open flows, those waiting for PUBCOMP included (what MQTT 5.0's
    /// Receive Maximum counts).
    pub(crate) total: usize,
}

impl Window {
    /// One limit for both.
    pub(crate) fn flat(n: usize) -> Self {
        Self {
            unacked: n,
            total: n,
        }
    }
}

/// What leaves the queue next.
pub(crate) enum Next {
    /// Send this QoS 0 message.
    Send(Queued),
    /// Send the message that now occupies this packet identifier in the
    /// inflight table (QoS 1/2; moved there, not copied).
    Inflight(PacketId),
    /// Send again, with DUP, the PUBLISH of a resumed flow that did not fit
    /// in the window when the session was resumed.
    Resend(PacketId),
    /// It expired while queued.
    Expired(Queued),
}

/// Messages this side sends: the inflight table (indexed by packet
/// identifier) and the FIFO queue behind it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Outgoing {
    last_pid: u16,
    /// How many of `inflight` are at [`Stage::Released`] (at most 65,535:
    /// one per packet identifier). A `u32` next to `last_pid`, so that
    /// [`expiry_floor`](Self::expiry_floor) costs the session no size.
    released: u32,
    next_id: u64,
    inflight: HashMap<PacketId, Inflight, PidHash>,
    /// Flows of a resumed session (at [`Stage::Published`]) whose PUBLISH
    /// is not re-sent on this connection yet, oldest first: the peer's
    /// Receive Maximum was smaller than the inflight table
    /// \[MQTT-3.3.4-9\]. They go out, before anything queued, as
    /// acknowledgements free the window. Cleared with the connection
    /// ([`connection_ended`](Self::connection_ended)). Boxed, and only
    /// while not empty: it is rare, and a session stays small.
    // The box is what keeps it small (8 bytes instead of a `VecDeque`'s 32).
    #[allow(clippy::box_collection)]
    unsent: Option<Box<VecDeque<PacketId>>>,
    queue: VecDeque<Queued>,
    /// No message in `queue` expires before this; `None` when none of them
    /// has a Message Expiry Interval. A lower bound, not the exact earliest
    /// deadline: messages leave the queue without updating it (so that
    /// taking from the queue costs nothing more), and
    /// [`drop_expired`](Self::drop_expired) makes it exact again when it
    /// has to look. It lets a full queue be checked for expired messages
    /// only when one may have expired, not on every message that finds the
    /// queue full. In nanoseconds from [`epoch`] (see [`floor_of`]): eight
    /// bytes where an `Instant` takes sixteen, and every session has one.
    expiry_floor: Option<NonZeroU64>,
}

/// Hashing for packet identifiers: they are small distinct integers chosen
/// by this side, so a multiplication spreads them well enough, and SipHash's
/// protection against chosen keys buys nothing (the peer does not choose
/// them). It is on the path of every acknowledgement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PidHash;

impl std::hash::BuildHasher for PidHash {
    type Hasher = PidHasher;
    fn build_hasher(&self) -> PidHasher {
        PidHasher(0)
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PidHasher(u64);

impl std::hash::Hasher for PidHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u16(&mut self, n: u16) {
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The origin of [`Outgoing::expiry_floor`]: a fixed point of the process
/// (the first time it is asked for).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// `t` as [`Outgoing::expiry_floor`] keeps it: nanoseconds from [`epoch`],
/// rounded down, and at least 1 (what is before the epoch is at it). The
/// order of instants is kept (`a <= b` gives `floor_of(a) <= floor_of(b)`),
/// which is all a lower bound needs.
fn floor_of(t: Instant) -> NonZeroU64 {
    let nanos = u64::try_from(t.saturating_duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX);
    NonZeroU64::new(nanos).unwrap_or(NonZeroU64::MIN)
}

/// When `m`, handed over at `since`, expires; `None` if it never does (no
/// Message Expiry Interval, or a deadline past what `Instant` holds).
fn deadline(m: &Message, since: Instant) -> Option<Instant> {
    let interval = m.properties.message_expiry_interval?;
    since.checked_add(Duration::from_secs(u64::from(interval)))
}

/// How long until `m` expires, if it has an expiry, counted from `since`.
/// `Some(0)` means expired.
pub(crate) fn remaining_expiry(m: &Message, since: Instant, now: Instant) -> Option<u32> {
    let interval = m.properties.message_expiry_interval?;
    let elapsed = now.saturating_duration_since(since);
    let left = Duration::from_secs(u64::from(interval)).saturating_sub(elapsed);
    // Round up: a message with 0.4 s left has not expired.
    Some(u32::try_from(left.as_secs() + u64::from(left.subsec_nanos() > 0)).unwrap_or(u32::MAX))
}

impl Outgoing {
    /// A fresh token.
    pub(crate) fn new_id(&mut self) -> MessageId {
        self.next_id += 1;
        MessageId(self.next_id)
    }

    pub(crate) fn inflight_len(&self) -> usize {
        self.inflight.len()
    }

    pub(crate) fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// Whether one more flow fits in `window`: flows whose PUBLISH is yet
    /// to be re-sent ([`unsent`](Self::unsent)) are not on the wire and do
    /// not count.
    fn has_room(&self, window: Window) -> bool {
        let unsent = self.unsent.as_ref().map_or(0, |u| u.len());
        let sent = self.inflight.len().saturating_sub(unsent);
        let unacked = sent.saturating_sub(self.released as usize);
        unacked < window.unacked && sent < window.total
    }

    /// A flow that is acknowledged (or forgotten) before its PUBLISH was
    /// re-sent leaves [`unsent`](Self::unsent).
    fn sent_or_done(&mut self, pid: PacketId) {
        if let Some(unsent) = self.unsent.as_mut() {
            unsent.retain(|&p| p != pid);
            if unsent.is_empty() {
                self.unsent = None;
            }
        }
    }

    /// Appends `q` to the queue, keeping [`expiry_floor`](Self::expiry_floor)
    /// a lower bound of the queued messages' deadlines.
    fn push_back(&mut self, q: Queued) {
        if let Some(d) = deadline(&q.message, q.since) {
            let d = floor_of(d);
            self.expiry_floor = Some(self.expiry_floor.map_or(d, |f| f.min(d)));
        }
        self.queue.push_back(q);
    }

    /// Queues `message`; returns the message that had to be dropped, if any
    /// (the new one, or with [`QueuePolicy::DropOldest`] the oldest).
    ///
    /// The caller drops the expired messages first
    /// ([`drop_expired`](Self::drop_expired)) when the queue is full: they
    /// must not take the room of a message that can still be delivered.
    pub(crate) fn enqueue(
        &mut self,
        q: Queued,
        limit: usize,
        policy: QueuePolicy,
    ) -> Option<Queued> {
        if self.queue.len() < limit {
            self.push_back(q);
            return None;
        }
        match (policy, self.queue.pop_front()) {
            (QueuePolicy::DropOldest, Some(oldest)) => {
                self.push_back(q);
                Some(oldest)
            }
            (_, oldest) => {
                if let Some(o) = oldest {
                    self.queue.push_front(o);
                }
                Some(q)
            }
        }
    }

    /// Takes the queued messages whose Message Expiry Interval has passed at
    /// `now`, wherever they are in the queue, oldest first: the Server
    /// "MUST delete" them \[MQTT-3.3.2-5\]. [`next`](Self::next) drops an
    /// expired message when it reaches the front; this is for a queue that
    /// is full, whose expired messages (of a client that is away, or behind
    /// a full inflight window) would otherwise keep out messages that can
    /// still be delivered.
    ///
    /// Looks at the queue only if a message in it may have expired (see
    /// [`expiry_floor`](Self::expiry_floor)), and then finds the next
    /// deadline exactly: a full queue of messages that do not expire costs
    /// nothing here.
    pub(crate) fn drop_expired(&mut self, now: Instant) -> Vec<Queued> {
        // A deadline at or before `now` has a floor at or below `now`'s.
        if self.expiry_floor.is_none_or(|f| floor_of(now) < f) {
            return Vec::new();
        }
        let mut floor: Option<NonZeroU64> = None;
        let mut expired = Vec::new();
        let mut keep = VecDeque::with_capacity(self.queue.len());
        for q in self.queue.drain(..) {
            match deadline(&q.message, q.since) {
                Some(d) if d <= now => expired.push(q),
                Some(d) => {
                    let d = floor_of(d);
                    floor = Some(floor.map_or(d, |f| f.min(d)));
                    keep.push_back(q);
                }
                None => keep.push_back(q),
            }
        }
        self.queue = keep;
        self.expiry_floor = floor;
        expired
    }

    /// A packet identifier not in use here nor by `busy` (the caller's other
    /// packets), or `None` when all 65,535 are taken. Never reuses an
    /// identifier in flight.
    pub(crate) fn allocate_pid(&mut self, busy: impl Fn(PacketId) -> bool) -> Option<PacketId> {
        for _ in 0..u16::MAX {
            self.last_pid = self.last_pid.checked_add(1).unwrap_or(1);
            let pid = PacketId::new(self.last_pid)?;
            if !self.inflight.contains_key(&pid) && !busy(pid) {
                return Some(pid);
            }
        }
        None
    }

    /// Takes `q` without queueing it when nothing is queued and it can be
    /// sent now (what [`next`](Self::next) would do right after queueing
    /// it); otherwise gives it back.
    // The message goes back by value on the slow path: boxing it would cost
    // an allocation per message on the fast one.
    #[allow(clippy::result_large_err)]
    pub(crate) fn admit(
        &mut self,
        now: Instant,
        q: Queued,
        window: Window,
        busy: impl Fn(PacketId) -> bool,
    ) -> Result<Next, Queued> {
        if !self.queue.is_empty()
            || self.unsent.is_some()
            || remaining_expiry(&q.message, q.since, now) == Some(0)
        {
            return Err(q);
        }
        if q.message.qos == QoS::AtMostOnce {
            return Ok(Next::Send(q));
        }
        if !self.has_room(window) {
            return Err(q);
        }
        let Some(pid) = self.allocate_pid(busy) else {
            return Err(q);
        };
        self.inflight.insert(pid, Inflight::published(q));
        Ok(Next::Inflight(pid))
    }

    /// Takes the next message off the queue if it can be sent now: QoS 0
    /// always, QoS 1/2 while `window` has room. The PUBLISH of resumed flows
    /// still to re-send go first, in their order \[MQTT-4.6.0-1\], as the
    /// window allows; the queue waits behind them.
    pub(crate) fn next(
        &mut self,
        now: Instant,
        window: Window,
        busy: impl Fn(PacketId) -> bool,
    ) -> Option<Next> {
        if self.unsent.is_some() {
            return self.resend_next(window).map(Next::Resend);
        }
        let front = self.queue.front()?;
        if remaining_expiry(&front.message, front.since, now) == Some(0) {
            return self.queue.pop_front().map(Next::Expired);
        }
        if front.message.qos == QoS::AtMostOnce {
            return self.queue.pop_front().map(Next::Send);
        }
        if !self.has_room(window) {
            return None;
        }
        let pid = self.allocate_pid(busy)?;
        let q = self.queue.pop_front()?;
        self.inflight.insert(pid, Inflight::published(q));
        Some(Next::Inflight(pid))
    }

    /// The flow that uses `pid`.
    pub(crate) fn inflight(&self, pid: PacketId) -> Option<&Inflight> {
        self.inflight.get(&pid)
    }

    /// PUBACK for `pid`.
    pub(crate) fn puback(&mut self, pid: PacketId, reason: ReasonCode) -> Acked {
        // One lookup on the path of every QoS 1 delivery.
        match self.inflight.entry(pid) {
            Entry::Occupied(f) if f.get().message.qos == QoS::AtLeastOnce => {
                let id = f.remove().id;
                self.sent_or_done(pid);
                Acked::Done(id, reason)
            }
            _ => Acked::Unknown,
        }
    }

    /// PUBREC for `pid`: an error code ends the flow \[MQTT-4.3.3-?\], a
    /// success moves it to PUBREL (again, for a duplicate PUBREC).
    pub(crate) fn pubrec(&mut self, pid: PacketId, reason: ReasonCode) -> Acked {
        match self.inflight.get_mut(&pid) {
            Some(f) if f.message.qos == QoS::ExactlyOnce => {
                if reason.is_error() && f.stage == Stage::Published {
                    let id = f.id;
                    self.inflight.remove(&pid);
                    self.sent_or_done(pid);
                    Acked::Done(id, reason)
                } else {
                    if f.stage == Stage::Published {
                        f.stage = Stage::Released;
                        self.released += 1;
                        self.sent_or_done(pid);
                    }
                    Acked::Release
                }
            }
            _ => Acked::Unknown,
        }
    }

    /// PUBCOMP for `pid`.
    pub(crate) fn pubcomp(&mut self, pid: PacketId, reason: ReasonCode) -> Acked {
        match self.inflight.entry(pid) {
            Entry::Occupied(f) if f.get().stage == Stage::Released => {
                self.released = self.released.saturating_sub(1);
                Acked::Done(f.remove().id, reason)
            }
            _ => Acked::Unknown,
        }
    }

    /// Forgets the flow of `pid` (a message that could not be sent).
    pub(crate) fn forget(&mut self, pid: PacketId) {
        if let Some(f) = self.inflight.remove(&pid) {
            if f.stage == Stage::Released {
                self.released = self.released.saturating_sub(1);
            }
            self.sent_or_done(pid);
        }
    }

    /// The flows to resume on a new connection, in the order they were first
    /// sent \[MQTT-4.6.0-1\]: PUBLISH (to send again with DUP) or PUBREL.
    ///
    /// Every PUBLISH is marked as not re-sent yet: the caller takes them
    /// with [`resend_next`](Self::resend_next) as the new connection's
    /// window allows \[MQTT-3.3.4-9\], and leaves the rest for
    /// [`next`](Self::next).
    pub(crate) fn resume(&mut self) -> Vec<(PacketId, Stage)> {
        let mut v: Vec<_> = self
            .inflight
            .iter()
            .map(|(&pid, f)| (f.id, pid, f.stage))
            .collect();
        v.sort_by_key(|&(id, _, _)| id);
        let unsent: VecDeque<PacketId> = v
            .iter()
            .filter(|&&(_, _, stage)| stage == Stage::Published)
            .map(|&(_, pid, _)| pid)
            .collect();
        self.unsent = (!unsent.is_empty()).then(|| Box::new(unsent));
        v.into_iter().map(|(_, pid, stage)| (pid, stage)).collect()
    }

    /// The oldest flow whose PUBLISH is yet to be re-sent, if `window` has
    /// room for it (it then counts as sent).
    pub(crate) fn resend_next(&mut self, window: Window) -> Option<PacketId> {
        if !self.has_room(window) {
            return None;
        }
        let unsent = self.unsent.as_mut()?;
        let pid = unsent.pop_front();
        if unsent.is_empty() {
            self.unsent = None;
        }
        pid
    }

    /// The connection is over: every flow is re-sent on the next one.
    pub(crate) fn connection_ended(&mut self) {
        self.unsent = None;
    }

    /// Empties the inflight table and the queue, oldest first.
    pub(crate) fn drain(&mut self) -> Vec<(MessageId, Message)> {
        self.drain_entries()
            .into_iter()
            .map(|e| (e.id, e.message))
            .collect()
    }

    /// Empties the inflight table and the queue, oldest first, with what a
    /// session that ends needs to know of each message.
    pub(crate) fn drain_entries(&mut self) -> Vec<Left> {
        self.released = 0;
        self.unsent = None;
        self.expiry_floor = None;
        let mut v: Vec<Left> = self
            .inflight
            .drain()
            .map(|(_, f)| Left {
                id: f.id,
                message: f.message,
                since: f.since,
                share: f.share,
                received: f.stage == Stage::Released,
            })
            .collect();
        v.sort_by_key(|e| e.id);
        v.extend(self.queue.drain(..).map(|q| Left {
            id: q.id,
            message: q.message,
            since: q.since,
            share: q.share,
            received: false,
        }));
        v
    }

    /// Empties the inflight table, oldest first; the queue stays.
    pub(crate) fn drain_inflight(&mut self) -> Vec<(MessageId, Message)> {
        self.released = 0;
        self.unsent = None;
        let mut v: Vec<_> = self
            .inflight
            .drain()
            .map(|(_, f)| (f.id, f.message))
            .collect();
        v.sort_by_key(|(id, _)| *id);
        v
    }

    /// Drops queued QoS 0 messages (they are not kept for a disconnected
    /// client), returning them.
    pub(crate) fn drop_queued_qos0(&mut self) -> Vec<Queued> {
        let (qos0, keep): (Vec<_>, Vec<_>) = self
            .queue
            .drain(..)
            .partition(|q| q.message.qos == QoS::AtMostOnce);
        self.queue = keep.into();
        qos0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqtt_topic::TopicName;

    fn msg(qos: QoS) -> Message {
        Message::new(TopicName::try_from("t").unwrap(), "x", qos, false)
    }

    fn queued(o: &mut Outgoing, qos: QoS, now: Instant) -> Queued {
        Queued {
            id: o.new_id(),
            message: msg(qos),
            since: now,
            share: None,
        }
    }

    /// Every QoS 1/2 message moves through these: the shared subscription
    /// a message came through ([`Queued::share`]) costs them one pointer,
    /// `None` for every other message.
    #[test]
    fn entries_stay_small() {
        assert!(size_of::<Queued>() <= 112, "{}", size_of::<Queued>());
        assert!(size_of::<Inflight>() <= 120, "{}", size_of::<Inflight>());
        assert_eq!(size_of::<Option<Box<SharedOrigin>>>(), 8);
    }

    #[test]
    fn packet_ids_are_never_reused_while_in_flight_and_exhaust_cleanly() {
        let now = Instant::now();
        let mut o = Outgoing::default();
        for _ in 0..u16::MAX {
            let q = queued(&mut o, QoS::AtLeastOnce, now);
            assert_eq!(o.enqueue(q, usize::MAX, QueuePolicy::DropNew), None);
        }
        let mut seen = std::collections::HashSet::new();
        while let Some(Next::Inflight(pid)) = o.next(now, Window::flat(usize::MAX), |_| false) {
            assert!(seen.insert(pid), "{pid} reused");
        }
        assert_eq!(seen.len(), 65_535);
        // One more cannot get an identifier: it stays queued.
        let q = queued(&mut o, QoS::AtLeastOnce, now);
        o.enqueue(q, usize::MAX, QueuePolicy::DropNew);
        assert!(o.next(now, Window::flat(usize::MAX), |_| false).is_none());
        assert_eq!(o.queue_len(), 1);
        // Freeing one identifier lets it through, with that identifier.
        let pid = PacketId::new(77).unwrap();
        assert!(matches!(
            o.puback(pid, ReasonCode::Success),
            Acked::Done(..)
        ));
        assert!(
            matches!(o.next(now, Window::flat(usize::MAX), |_| false), Some(Next::Inflight(p)) if p == pid)
        );
    }

    #[test]
    fn window_limits_inflight_and_queue_policy_applies() {
        let now = Instant::now();
        let mut o = Outgoing::default();
        for _ in 0..3 {
            let q = queued(&mut o, QoS::ExactlyOnce, now);
            assert_eq!(o.enqueue(q, 3, QueuePolicy::DropNew), None);
        }
        let q = queued(&mut o, QoS::ExactlyOnce, now);
        assert_eq!(
            o.enqueue(q, 3, QueuePolicy::DropNew).map(|q| q.id.0),
            Some(4)
        );
        let q = queued(&mut o, QoS::ExactlyOnce, now);
        assert_eq!(
            o.enqueue(q, 3, QueuePolicy::DropOldest).map(|q| q.id.0),
            Some(1)
        );
        assert!(
            matches!(o.next(now, Window::flat(1), |_| false), Some(Next::Inflight(p)) if o.inflight(p).unwrap().id.0 == 2)
        );
        assert!(
            o.next(now, Window::flat(1), |_| false).is_none(),
            "window of 1 is full"
        );
    }

    /// [MQTT-3.3.2-5]: expired messages anywhere in a full queue go before
    /// the queue policy applies, and a queue whose messages do not expire is
    /// not searched.
    #[test]
    fn a_full_queue_drops_its_expired_messages_first() {
        let now = Instant::now();
        let mut o = Outgoing::default();
        let mut ids = Vec::new();
        for expiry in [None, Some(1), Some(100), Some(1)] {
            let mut q = queued(&mut o, QoS::AtLeastOnce, now);
            q.message.properties.to_mut().message_expiry_interval = expiry;
            ids.push(q.id.0);
            assert_eq!(o.enqueue(q, 4, QueuePolicy::DropNew), None);
        }
        assert!(o.drop_expired(now).is_empty(), "nothing expired yet");
        let later = now + Duration::from_millis(1500);
        let expired: Vec<u64> = o.drop_expired(later).iter().map(|q| q.id.0).collect();
        assert_eq!(expired, [ids[1], ids[3]]);
        assert_eq!(o.queue_len(), 2);
        assert_eq!(
            o.expiry_floor,
            Some(floor_of(now + Duration::from_secs(100)))
        );
        assert!(o.drop_expired(later).is_empty());
        // Without expiry, no floor: nothing to look at.
        let mut o = Outgoing::default();
        let q = queued(&mut o, QoS::AtLeastOnce, now);
        o.enqueue(q, 1, QueuePolicy::DropNew);
        assert_eq!(o.expiry_floor, None);
    }

    #[test]
    fn qos2_flow_and_expiry() {
        let now = Instant::now();
        let mut o = Outgoing::default();
        let mut q = queued(&mut o, QoS::ExactlyOnce, now);
        q.message.properties.to_mut().message_expiry_interval = Some(10);
        o.enqueue(q, 10, QueuePolicy::DropNew);
        let mut q = queued(&mut o, QoS::ExactlyOnce, now);
        q.message.properties.to_mut().message_expiry_interval = Some(1);
        o.enqueue(q, 10, QueuePolicy::DropNew);
        let later = now + Duration::from_millis(1500);
        let Some(Next::Inflight(pid)) = o.next(later, Window::flat(10), |_| false) else {
            panic!()
        };
        let f = o.inflight(pid).unwrap();
        assert_eq!(remaining_expiry(&f.message, f.since, later), Some(9));
        assert!(
            matches!(o.next(later, Window::flat(10), |_| false), Some(Next::Expired(q)) if q.id.0 == 2)
        );
        assert_eq!(
            o.pubcomp(pid, ReasonCode::Success),
            Acked::Unknown,
            "PUBCOMP before PUBREC"
        );
        assert_eq!(o.pubrec(pid, ReasonCode::Success), Acked::Release);
        assert_eq!(
            o.pubrec(pid, ReasonCode::Success),
            Acked::Release,
            "duplicate PUBREC"
        );
        assert_eq!(
            o.puback(pid, ReasonCode::Success),
            Acked::Unknown,
            "PUBACK for QoS 2"
        );
        assert_eq!(
            o.pubcomp(pid, ReasonCode::Success),
            Acked::Done(MessageId(1), ReasonCode::Success)
        );
        assert_eq!(o.inflight_len(), 0);
    }
}
