//! The broker's shared state: sessions, connections, subscriptions and
//! retained messages, under one lock.
//!
//! Connection tasks decode, take the lock for a whole batch of packets, feed
//! them to their [`ServerSession`], route what comes out into the sessions of
//! the subscribers, encode what those sessions transmit into each
//! connection's output buffer and wake its task. No task ever awaits while
//! it holds the lock; the async hooks run between two acquisitions
//! ([`Pending`]).
//!
//! Write-through: when a connection's input produces bytes for a subscriber
//! whose task is idle (waiting for output, holding none), the bytes are lent
//! to the publishing task ([`Lent`]), which writes them to the subscriber's
//! socket right after it releases the lock and gives back what the socket
//! did not take. The subscriber's task is not woken, which saves a task
//! switch per delivery (and on a multi-threaded runtime, often a thread
//! wake-up): the delivery goes out as soon as the publisher's batch is
//! routed. While bytes are lent, the owner takes no output, so the socket
//! sees them in order.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use mqtt_codec::{
    DecodeError, Encoder, Packet, ProtocolVersion, PublishProperties, QoS, ReasonCode,
    RetainHandling, SubscriptionId, SubscriptionOptions, UserProperty, Utf8Bytes,
};
use mqtt_session::{
    Accept, CloseReason, Event, Message, ServerConfig, ServerSession, SessionState, SharedOrigin,
    SubscribeRequest,
};
use mqtt_topic::{RetainedIndex, SubscriptionTree, TopicFilter, TopicName};
use slab::Slab;
use std::task::Waker;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::config::Config;
use crate::hooks::{ClientInfo, ConnectInfo};
use crate::stats::{Counters, Stats};
use crate::store::StoreOp;

/// Who holds a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SubKey {
    /// A client session: index into the session slab, and the slot's
    /// generation (a reused index never receives a former owner's messages).
    Session(usize, u64),
    /// An in-process subscriber (index into the local slab).
    Local(usize),
}

/// What a subscription asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SubValue {
    options: SubscriptionOptions,
    id: Option<SubscriptionId>,
}

/// Why a message goes to a subscription (see [`State::deliver`]).
#[derive(Debug, Clone)]
enum Delivery {
    /// It was published and matches.
    Live,
    /// It is retained, and sent because of a SUBSCRIBE (RETAIN stays set).
    Retained,
    /// It was published and matches this shared subscription, or a member
    /// of it whose session ended did not have it (see [`State::redispatch`]):
    /// the subscriber's session keeps the filter with it.
    Shared(TopicFilter),
}

/// The subscription tree, with a count of shared subscriptions so that a
/// broker without any skips their walk.
#[derive(Debug, Default)]
struct Subscriptions {
    tree: SubscriptionTree<SubKey, SubValue>,
    shared: usize,
}

impl Subscriptions {
    fn insert(&mut self, f: &TopicFilter, k: SubKey, v: SubValue) -> Option<SubValue> {
        let old = self.tree.insert(f, k, v);
        if old.is_none() && f.is_shared() {
            self.shared += 1;
        }
        old
    }

    fn remove(&mut self, f: &TopicFilter, k: &SubKey) -> Option<SubValue> {
        let old = self.tree.remove(f, k);
        if old.is_some() && f.is_shared() {
            self.shared = self.shared.saturating_sub(1);
        }
        old
    }

    fn for_each_match(&self, name: &TopicName, f: impl FnMut(&SubKey, &SubValue)) {
        self.tree.for_each_match(name, f);
    }

    /// Each shared subscription matching `name`, with its members.
    fn for_each_shared_match(
        &self,
        name: &TopicName,
        f: impl FnMut(&TopicFilter, &[(SubKey, SubValue)]),
    ) {
        if self.shared > 0 {
            self.tree.for_each_shared_group(name, f);
        }
    }

    /// The members of the shared subscription `filter`.
    fn shared_members(&self, filter: &TopicFilter) -> &[(SubKey, SubValue)] {
        self.tree.shared_members(filter)
    }

    fn len(&self) -> usize {
        self.tree.len()
    }
}

#[derive(Debug)]
struct Retained {
    /// The message, with the Message Expiry Interval it was published with.
    message: Message,
    /// When its Message Expiry Interval passes (`None`: it does not
    /// expire); also a key of [`State::retained_expiry`].
    deadline: Option<Instant>,
}

impl Retained {
    /// A retained message whose Message Expiry Interval (if any) counts from
    /// `since`.
    fn new(message: Message, since: Instant) -> Self {
        let deadline = message
            .properties
            .message_expiry_interval
            .and_then(|secs| since.checked_add(Duration::from_secs(u64::from(secs))));
        Self { message, deadline }
    }
}

#[derive(Debug)]
struct SessionSlot {
    /// Unique to this slot's occupant (see [`SubKey::Session`]).
    generation: u64,
    /// An async hook runs for one of its events: the events behind it wait
    /// (in order), and the session is not removed meanwhile.
    hook: bool,
    /// Boxed: the slab grows by doubling, and a session is large.
    session: Box<ServerSession>,
    client_id: Option<Arc<str>>,
    username: Option<Box<str>>,
    conn: Option<usize>,
    deadline: Option<Instant>,
    counted: bool,
    touched: bool,
    /// Its queue made publishers wait (see [`QUEUE_PRESSURE`]).
    pressured: bool,
    /// When (see [`State::ms`]) its client last acknowledged a message
    /// (PUBACK, PUBREC, PUBCOMP), or its queue last began to fill: a queue
    /// that has not moved for [`ACK_STALLED`] holds nobody back, whatever
    /// else its client reads.
    acked_ms: u32,
}

/// A connection not read for its own backlog, as its task said (see
/// [`State::output_moved`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Paused {
    /// It is read.
    No,
    /// Not read, and its output did not move since Keep Alive was last
    /// deferred for it.
    Still,
    /// Not read, and its output moved since.
    Moved,
}

#[derive(Debug)]
struct ConnSlot {
    session: Option<usize>,
    out: BytesMut,
    encoder: Encoder,
    /// The connection task, while it waits for output (see
    /// [`State::poll_output`]).
    waker: Option<Waker>,
    closing: bool,
    /// When its task last took bytes to write: a connection whose buffer is
    /// full but moving is slow (its publishers wait), one that has not moved
    /// for [`STALLED`] is stalled (QoS 0 to it is dropped).
    progress: Instant,
    /// The socket, for write-through (`None` for a transport that is not
    /// a TCP stream).
    stream: Option<Arc<TcpStream>>,
    /// Bytes of this connection are lent to another task (see [`Lent`]):
    /// its own task takes no output until they are given back.
    lent: bool,
    /// Its task, to end it if a shutdown's grace period is over before it
    /// ended (see [`State::take_tasks`]).
    task: Option<AbortHandle>,
    /// Its task does not read it while subscribers it published to are
    /// congested (see [`State::still_congested`]): Keep Alive waits.
    held_back: bool,
    /// Whether its task does not read it for its own backlog (see
    /// [`State::output_moved`]).
    paused: Paused,
    /// Which close this is (see [`State::closing`]): a slot freed and
    /// taken again is not the one a stale entry there names.
    close_seq: u32,
}

/// Bytes lent to a publishing task for write-through (see the module
/// documentation), to be given back with [`State::give_back`].
#[derive(Debug)]
pub(crate) struct Lent {
    conn: usize,
    pub(crate) stream: Arc<TcpStream>,
    /// What is left to write.
    pub(crate) bytes: Bytes,
}

/// The most connections one input lends bytes of: beyond that their own
/// tasks write (in parallel on a multi-threaded runtime), so that one
/// publisher with many subscribers does not do all the writing.
const LEND_MAX: usize = 4;

impl ConnSlot {
    /// Wakes the connection's task if it waits; whether it did.
    fn wake(&mut self) -> bool {
        match self.waker.take() {
            Some(w) => {
                w.wake();
                true
            }
            None => false,
        }
    }
}

/// See [`ConnSlot::progress`].
const STALLED: Duration = Duration::from_millis(200);

/// How long a connection the broker closes (taken over, a protocol error,
/// Keep Alive, a refused CONNECT) may take to write what it holds, its
/// final packet last, before its task is ended with it unwritten: its
/// client may not read at all, and its task, writing, keeps its socket,
/// its buffer and a place among `max_connections` until then.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);

/// How long Keep Alive waits, at a time, for a connected client that the
/// broker does not read for its backlog (see [`State::output_moved`]).
const KEEP_ALIVE_DEFERRED: Duration = Duration::from_secs(30);

/// The most bytes a retained message's PUBLISH adds to what it counts for
/// (see [`retained_size`]): fixed header, topic length, packet identifier,
/// property length.
const RETAINED_HEAD: usize = 16;

/// A queue over [`QUEUE_PRESSURE`] whose client acknowledged nothing for
/// this long (though it may read, and ping) holds its publishers back no
/// more: it fills up to `max_queued_messages` and the queue policy
/// applies, as for a stalled connection.
const ACK_STALLED: u32 = 1000;

/// Messages queued for a moving subscriber (behind its inflight window)
/// beyond which the publishers that route to it wait; they go on once it
/// is down to half. A publisher faster than its subscribers then runs at
/// their pace instead of filling their queues: the queues stay small and
/// in cache instead of growing by megabytes per subscriber. A stalled
/// subscriber holds nobody (its queue fills up to `max_queued_messages`),
/// nor is a publisher held that has a backlog of its own.
const QUEUE_PRESSURE: usize = 512;

/// Work that needs an async hook, to run without the lock.
#[derive(Debug)]
pub(crate) enum Pending {
    Connect(ConnectInfo),
    Subscribe(ClientInfo, SubscribeRequest),
    Publish(ClientInfo, Message),
}

/// What a connection task takes from the state for its socket.
#[derive(Debug, Default)]
pub(crate) struct Output {
    pub(crate) bytes: Option<Bytes>,
    pub(crate) closing: bool,
    /// The buffer was over `max_pending_bytes`: publishers may be waiting.
    pub(crate) relieved: bool,
}

/// Packets a client sent behind its CONNECT, read while the CONNECT awaits
/// the decision (its authenticator runs, or it waits to be decided) and
/// beyond what its session buffers meanwhile
/// ([`ServerSession::takes_packets`]): clients may send packets right after
/// CONNECT (MQTT 5.0 and 3.1.1 section 3.1.4), and they are served once the
/// CONNECT is accepted. At most one input batch: the connection's task does
/// not read while the decision is pending.
#[derive(Debug)]
struct Held {
    packets: Vec<Packet>,
    /// A decode error after them.
    error: Option<DecodeError>,
}

/// A local (in-process) subscriber.
#[derive(Debug)]
struct Local {
    tx: mpsc::Sender<Message>,
    filter: TopicFilter,
}

#[derive(Debug)]
pub(crate) struct State {
    /// Shared by every session.
    session_config: Arc<ServerConfig>,
    max_pending: usize,
    /// `Config::max_subscriptions_per_client` (see
    /// [`apply_subscribe`](Self::apply_subscribe)).
    max_subscriptions: usize,
    /// `Config::max_retained_messages` (see [`retain`](Self::retain)).
    max_retained: usize,
    /// `Config::max_retained_bytes`, and the bytes the retained messages
    /// take now (see [`retained_size`]).
    max_retained_bytes: usize,
    retained_bytes: usize,
    /// `Config::max_sessions` (see [`connect_decided`](Self::connect_decided)).
    max_sessions: usize,
    authorize: bool,
    counters: Arc<Counters>,
    store: Option<mpsc::UnboundedSender<StoreOp>>,
    sessions: Slab<SessionSlot>,
    conns: Slab<ConnSlot>,
    /// Connections closing, by the end of their [`CLOSE_FLUSH`] (in order,
    /// since it is the same for all), with the `close_seq` of each.
    closing: VecDeque<(Instant, usize, u32)>,
    /// The last `close_seq` given.
    close_seq: u32,
    /// The origin of [`ms`](Self::ms).
    epoch: Instant,
    by_id: HashMap<Arc<str>, usize>,
    subs: Subscriptions,
    retained: RetainedIndex<Retained>,
    /// The retained messages that expire, by deadline: the timer removes
    /// them once expired ([`purge_retained`](Self::purge_retained)), from
    /// the count and from the store, instead of leaving them until a
    /// SUBSCRIBE happens to match them [MQTT-3.3.2-5]. Retained messages
    /// without an expiry are not in it, and cost the timer nothing.
    retained_expiry: BTreeSet<(Instant, TopicName)>,
    deadlines: BTreeSet<(Instant, usize)>,
    locals: Slab<Local>,
    touched: Vec<usize>,
    /// Routing gave bytes to another connection's waiting task since
    /// [`take_woken`](Self::take_woken).
    woken: bool,
    /// The connection whose input is being handled, which may take other
    /// connections' bytes for write-through.
    lender: Option<usize>,
    /// Bytes lent since [`take_lent`](Self::take_lent).
    lent: Vec<Lent>,
    /// Congested subscriber sessions that the routing of the current input
    /// met (backpressure: its connection stops reading until they drain).
    pressure: Vec<usize>,
    /// A subscriber whose queue held publishers back is down to half of
    /// [`QUEUE_PRESSURE`] (see [`State::take_relief`]).
    relief: bool,
    scratch: Vec<(SubKey, SubValue)>,
    /// The members that shared subscriptions picked for the message being
    /// routed, with the subscription.
    shared_scratch: Vec<(SubKey, SubValue, TopicFilter)>,
    /// Input of connections whose CONNECT awaits the decision, beyond what
    /// their session buffers (see [`Held`]).
    held: HashMap<usize, Held>,
    /// State of the generator that picks shared-subscription members.
    rng: u64,
    /// Secret random keys of the assigned client identifiers (see
    /// [`State::assign_client_id`]).
    id_keys: RandomState,
    /// Client identifiers assigned so far.
    next_auto_id: u64,
    generations: u64,
}

impl State {
    pub(crate) fn new(
        config: &Config,
        authorize: bool,
        counters: Arc<Counters>,
        store: Option<mpsc::UnboundedSender<StoreOp>>,
    ) -> Self {
        Self {
            session_config: Arc::new(config.session_config()),
            max_pending: config.max_pending_bytes,
            max_subscriptions: config.max_subscriptions_per_client,
            max_retained: config.max_retained_messages,
            max_retained_bytes: config.max_retained_bytes,
            retained_bytes: 0,
            max_sessions: config.max_sessions,
            authorize,
            counters,
            store,
            sessions: Slab::new(),
            conns: Slab::new(),
            closing: VecDeque::new(),
            close_seq: 0,
            epoch: Instant::now(),
            by_id: HashMap::new(),
            subs: Subscriptions::default(),
            retained: RetainedIndex::new(),
            retained_expiry: BTreeSet::new(),
            deadlines: BTreeSet::new(),
            locals: Slab::new(),
            touched: Vec::new(),
            woken: false,
            lender: None,
            lent: Vec::new(),
            pressure: Vec::new(),
            relief: false,
            scratch: Vec::new(),
            shared_scratch: Vec::new(),
            held: HashMap::new(),
            rng: 0x9E37_79B9_7F4A_7C15,
            id_keys: RandomState::new(),
            next_auto_id: 0,
            generations: 0,
        }
    }

    /// The `n`th candidate for an assigned client identifier:
    /// `auto-` and 64 bits of SipHash of `n` under [`id_keys`](Self::id_keys),
    /// random per broker, so that a client cannot guess the identifier the
    /// broker will give another and take it first.
    fn assigned_id(&self, n: u64) -> String {
        let mut h = self.id_keys.build_hasher();
        h.write_u64(n);
        format!("auto-{:016x}", h.finish())
    }

    /// A client identifier for a client that sent an empty one: unique
    /// [MQTT-3.1.3-6] (3.1.1 and 5.0), never that of a session the broker
    /// holds (connected, or kept for an absent client).
    fn assign_client_id(&mut self) -> Arc<str> {
        loop {
            self.next_auto_id += 1;
            let id = self.assigned_id(self.next_auto_id);
            if !self.by_id.contains_key(id.as_str()) {
                return Arc::from(id);
            }
        }
    }

    fn next_generation(&mut self) -> u64 {
        self.generations += 1;
        self.generations
    }

    // ----- restoring from a store -------------------------------------------------------------

    pub(crate) fn restore(&mut self, now: Instant, sessions: Vec<(String, SessionState)>) {
        for (client_id, state) in sessions {
            let session = Box::new(ServerSession::restore(
                self.session_config.clone(),
                state,
                now,
            ));
            let cid: Arc<str> = Arc::from(client_id);
            let generation = self.next_generation();
            let s = self.sessions.insert(SessionSlot {
                session,
                client_id: Some(cid.clone()),
                username: None,
                conn: None,
                deadline: None,
                counted: false,
                touched: false,
                pressured: false,
                generation,
                hook: false,
                acked_ms: 0,
            });
            self.by_id.insert(cid, s);
            self.insert_subscriptions(s);
            self.update_deadline(s);
        }
    }

    /// Restores retained messages from the store at `now` (`wall`, on the
    /// wall clock), each stored at the wall-clock time beside it: what is
    /// left of its Message Expiry Interval counts from `now`, and one whose
    /// interval has passed is dropped (and cleared from the store)
    /// [MQTT-3.3.2-5]. A time after `wall` (the clock was set back) counts
    /// as stored just now.
    pub(crate) fn restore_retained(
        &mut self,
        now: Instant,
        wall: SystemTime,
        messages: Vec<(Message, SystemTime)>,
    ) {
        for (message, stored_at) in messages {
            let age = wall.duration_since(stored_at).unwrap_or(Duration::ZERO);
            let r = match message.properties.message_expiry_interval {
                None => Retained {
                    message,
                    deadline: None,
                },
                Some(secs) => {
                    let left = Duration::from_secs(u64::from(secs)).saturating_sub(age);
                    if left.is_zero() {
                        if let Some(store) = &self.store {
                            let _ = store.send(StoreOp::ClearRetained(message.topic));
                        }
                        continue;
                    }
                    Retained {
                        deadline: now.checked_add(left),
                        message,
                    }
                }
            };
            self.set_retained(r);
        }
    }

    /// Keeps `r` as the retained message of its topic, in place of any
    /// other, and indexes its deadline.
    fn set_retained(&mut self, r: Retained) {
        let topic = r.message.topic.clone();
        if let Some(d) = r.deadline {
            self.retained_expiry.insert((d, topic.clone()));
        }
        self.retained_bytes = self
            .retained_bytes
            .saturating_add(retained_size(&r.message));
        if let Some(old) = self.retained.insert(topic, r) {
            self.unindex_retained(&old);
        }
    }

    /// Removes the retained message of `topic`; whether there was one.
    fn remove_retained(&mut self, topic: &TopicName) -> bool {
        match self.retained.remove(topic) {
            Some(old) => {
                self.unindex_retained(&old);
                true
            }
            None => false,
        }
    }

    fn unindex_retained(&mut self, old: &Retained) {
        self.retained_bytes = self
            .retained_bytes
            .saturating_sub(retained_size(&old.message));
        if let Some(d) = old.deadline {
            self.retained_expiry.remove(&(d, old.message.topic.clone()));
        }
    }

    /// Removes the retained messages whose Message Expiry Interval has
    /// passed at `now` [MQTT-3.3.2-5], and tells the store. Runs with the
    /// session timers: it costs a look at the first deadline when nothing
    /// expires.
    fn purge_retained(&mut self, now: Instant) {
        while let Some((at, _)) = self.retained_expiry.first() {
            if *at > now {
                break;
            }
            let Some((_, topic)) = self.retained_expiry.pop_first() else {
                break;
            };
            if let Some(old) = self.retained.remove(&topic) {
                self.retained_bytes = self
                    .retained_bytes
                    .saturating_sub(retained_size(&old.message));
            }
            if let Some(store) = &self.store {
                let _ = store.send(StoreOp::ClearRetained(topic));
            }
        }
    }

    // ----- connections ------------------------------------------------------------------------

    /// A new transport: a session awaiting CONNECT, and the connection's
    /// slot. `stream` enables write-through to it.
    pub(crate) fn open(&mut self, now: Instant, stream: Option<Arc<TcpStream>>) -> usize {
        let session = Box::new(ServerSession::new(self.session_config.clone(), now));
        let generation = self.next_generation();
        let s = self.sessions.insert(SessionSlot {
            session,
            client_id: None,
            username: None,
            conn: None,
            deadline: None,
            counted: false,
            touched: false,
            pressured: false,
            generation,
            hook: false,
            acked_ms: 0,
        });

        let c = self.conns.insert(ConnSlot {
            session: Some(s),
            out: BytesMut::new(),
            encoder: Encoder::new(ProtocolVersion::V5),
            waker: None,
            closing: false,
            progress: now,
            stream,
            lent: false,
            task: None,
            paused: Paused::No,
            close_seq: 0,
            held_back: false,
        });
        if let Some(slot) = self.sessions.get_mut(s) {
            slot.conn = Some(c);
        }
        self.update_deadline(s);
        c
    }

    /// Connection `conn`'s task.
    pub(crate) fn set_task(&mut self, conn: usize, task: AbortHandle) {
        if let Some(c) = self.conns.get_mut(conn) {
            c.task = Some(task);
        }
    }

    /// The tasks of the connections still open, to abort: at the end of a
    /// shutdown's grace period, what is left are connections whose client
    /// does not read, which would otherwise wait to write forever.
    pub(crate) fn take_tasks(&mut self) -> Vec<AbortHandle> {
        self.conns
            .iter_mut()
            .filter_map(|(_, c)| c.task.take())
            .collect()
    }

    /// Bytes encoded for `conn` that its task has not taken.
    pub(crate) fn queued(&self, conn: usize) -> usize {
        self.conns.get(conn).map_or(0, |c| c.out.len())
    }

    /// The task of `conn` stopped reading it because its own output is
    /// over `max_pending_bytes` (its client reads slower than it is
    /// answered or sent to), or wrote some of that output since (`true`);
    /// or it reads it again (`false`).
    ///
    /// Keep Alive is about the client, not the broker: [MQTT-3.1.2-24]
    /// closes a connection from which nothing was received for 1.5 times
    /// the Keep Alive, and what this client sent may wait unread in the
    /// socket. So meanwhile its Keep Alive is deferred, by
    /// [`KEEP_ALIVE_DEFERRED`] at a time (see [`State::timeouts`]), as long
    /// as its output moved in that time: a client that neither reads nor
    /// sends (hung) is still closed. The task sees its output move only
    /// when the kernel's send buffer has room again: a client reading so
    /// slowly that this takes longer can still be closed by Keep Alive.
    pub(crate) fn output_moved(&mut self, conn: usize, paused: bool) {
        if let Some(c) = self.conns.get_mut(conn) {
            c.paused = if paused { Paused::Moved } else { Paused::No };
        }
    }

    fn session_of(&self, conn: usize) -> Option<usize> {
        self.conns.get(conn).and_then(|c| c.session)
    }

    /// `now` in milliseconds since the state began, modulo 2^32 (compared
    /// by wrapping differences: 49 days around).
    fn ms(epoch: Instant, now: Instant) -> u32 {
        // In 32-bit arithmetic throughout (no 128-bit `as_millis`): asked
        // on deliveries to a long queue.
        let d = now.saturating_duration_since(epoch);
        let secs = u32::try_from(d.as_secs() & u64::from(u32::MAX)).unwrap_or_default();
        secs.wrapping_mul(1000).wrapping_add(d.subsec_millis())
    }

    /// Whether session `slot`'s client acknowledged (or its queue began)
    /// within [`ACK_STALLED`] of `now`.
    fn acks_move(epoch: Instant, slot: &SessionSlot, now: Instant) -> bool {
        Self::ms(epoch, now).wrapping_sub(slot.acked_ms) < ACK_STALLED
    }

    /// Packets (and possibly a decode error after them) from connection `conn`.
    pub(crate) fn input(
        &mut self,
        now: Instant,
        conn: usize,
        packets: &mut Vec<Packet>,
        error: Option<DecodeError>,
    ) -> Option<Pending> {
        let Some(s) = self.session_of(conn) else {
            packets.clear();
            return None;
        };
        let n = packets.len() as u64;
        Counters::add(&self.counters.messages_received, n);
        self.lender = Some(conn);
        self.feed(now, conn, s, packets, error);
        packets.clear();
        let pending = self.proceed(now, conn);
        self.lender = None;
        if n <= 2 {
            // A quiet connection: let its session give back the queue
            // memory a burst left behind.
            if let Some(slot) = self.sessions.get_mut(s) {
                slot.session.shrink_to_fit();
            }
        }
        pending
    }

    /// Feeds `packets` (emptied), then `error`, to session `s` of connection
    /// `conn`, behind what was held of its earlier input. What the session
    /// does not take yet is held for after the decision on its CONNECT
    /// (see [`Held`]).
    fn feed(
        &mut self,
        now: Instant,
        conn: usize,
        s: usize,
        packets: &mut Vec<Packet>,
        error: Option<DecodeError>,
    ) {
        let Some(slot) = self.sessions.get_mut(s) else {
            packets.clear();
            return;
        };
        // Nothing is read while input is held: no error can follow one.
        // (Almost always nothing is held: no lookup then.)
        let held = if self.held.is_empty() {
            None
        } else {
            self.held.remove(&conn)
        };
        let (earlier, error) = match held {
            Some(h) => (h.packets, h.error.or(error)),
            None => (Vec::new(), error),
        };
        let mut input = earlier.into_iter().chain(packets.drain(..));
        let mut acked = false;
        while let Some(p) = input.next() {
            if !slot.session.takes_packets() {
                let mut rest = vec![p];
                rest.extend(input);
                self.held.insert(
                    conn,
                    Held {
                        packets: rest,
                        error,
                    },
                );
                return;
            }
            acked |= matches!(
                p,
                Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubComp(_)
            );
            slot.session.handle_packet(now, p);
        }
        if acked {
            slot.acked_ms = Self::ms(self.epoch, now);
        }
        if let Some(e) = error {
            tracing::debug!(client = ?slot.client_id, error = %e, "malformed packet");
            slot.session.handle_decode_error(now, e);
        }
    }

    /// Feeds what was held of the input of `conn` while its CONNECT awaited
    /// the decision (see [`Held`]); dropped if the session is gone or ended.
    fn release_held(&mut self, now: Instant, conn: usize) {
        let Some(mut held) = self.held.remove(&conn) else {
            return;
        };
        match self.session_of(conn) {
            Some(s)
                if self
                    .sessions
                    .get(s)
                    .is_some_and(|slot| !slot.session.is_ended()) =>
            {
                let error = held.error.take();
                self.feed(now, conn, s, &mut held.packets, error);
            }
            _ => {}
        }
    }

    /// Goes on with the events of the session of `conn` (after a [`Pending`]
    /// was resolved).
    pub(crate) fn proceed(&mut self, now: Instant, conn: usize) -> Option<Pending> {
        let pending = match self.session_of(conn) {
            Some(s) => self.drive(now, s, true),
            None => None,
        };
        self.flush_touched(now);
        pending
    }

    /// Whether routing woke another connection's task since the last call.
    pub(crate) fn take_woken(&mut self) -> bool {
        std::mem::take(&mut self.woken)
    }

    /// Whether a subscriber's queue drained enough since the last call for
    /// the publishers it held back to go on.
    pub(crate) fn take_relief(&mut self) -> bool {
        std::mem::take(&mut self.relief)
    }

    /// The bytes lent since the last call.
    pub(crate) fn take_lent(&mut self) -> Vec<Lent> {
        std::mem::take(&mut self.lent)
    }

    /// Takes back what lent bytes their borrower could not write: they go
    /// before anything queued since, and the owner's task is woken if it
    /// has anything to write.
    pub(crate) fn give_back(&mut self, now: Instant, mut lent: Vec<Lent>) {
        for Lent {
            conn,
            stream,
            bytes,
        } in lent.drain(..)
        {
            // The slot may hold another connection by now.
            let Some(c) = self
                .conns
                .get_mut(conn)
                .filter(|c| c.stream.as_ref().is_some_and(|s| Arc::ptr_eq(s, &stream)))
            else {
                continue;
            };
            c.lent = false;
            c.progress = now;
            if !bytes.is_empty() {
                let mut out = BytesMut::with_capacity(bytes.len() + c.out.len());
                out.extend_from_slice(&bytes);
                out.extend_from_slice(&c.out);
                c.out = out;
            }
            if !c.out.is_empty() || c.closing {
                c.wake();
            }
        }
        // Its allocation serves the next lending.
        if self.lent.is_empty() {
            self.lent = lent;
        }
    }

    /// The encoded bytes waiting for `conn`'s socket.
    pub(crate) fn output(&mut self, now: Instant, conn: usize) -> Output {
        match self.conns.get_mut(conn) {
            Some(c) if c.lent => Output::default(),
            Some(c) => {
                // The task holds bytes from here on: nothing may be lent
                // (see `flush_session`) until it waits again.
                c.waker = None;
                let relieved = c.out.len() >= self.max_pending;
                // Taken whole, so that the slot keeps no allocation behind.
                let bytes = (!c.out.is_empty()).then(|| std::mem::take(&mut c.out).freeze());
                if bytes.is_some() {
                    c.progress = now;
                }
                Output {
                    bytes,
                    closing: c.closing,
                    relieved,
                }
            }
            None => Output {
                bytes: None,
                closing: true,
                relieved: false,
            },
        }
    }

    /// The output of `conn` if there is any (or it is closing); otherwise
    /// remembers `waker` to wake its task when there is. Checking and
    /// registering under the one lock loses no wake-up.
    pub(crate) fn poll_output(
        &mut self,
        now: Instant,
        conn: usize,
        waker: &Waker,
    ) -> Option<Output> {
        match self.conns.get_mut(conn) {
            Some(c) if (c.out.is_empty() && !c.closing) || c.lent => {
                if !c.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    c.waker = Some(waker.clone());
                }
                None
            }
            _ => Some(self.output(now, conn)),
        }
    }

    /// Moves the congested subscribers the last input of `conn` met into
    /// `held`.
    pub(crate) fn take_pressure(&mut self, conn: usize, held: &mut Vec<usize>) {
        for s in self.pressure.drain(..) {
            if !held.contains(&s) {
                held.push(s);
            }
        }
        if !held.is_empty() {
            self.set_held_back(conn, true);
        }
    }

    /// Whether any subscriber in `held` (which connection `conn` published
    /// to) is still congested and moving; forgets those that are not.
    pub(crate) fn still_congested(
        &mut self,
        now: Instant,
        conn: usize,
        held: &mut Vec<usize>,
    ) -> bool {
        // Queues hold back only a publisher without a backlog (see
        // `deliver`).
        let by_queue = !self.session_of(conn).is_some_and(|s| self.backlogged(s));
        let (sessions, conns, max, epoch) =
            (&self.sessions, &self.conns, self.max_pending, self.epoch);
        held.retain(|&s| {
            let Some(slot) = sessions.get(s) else {
                return false;
            };
            let queue_full = || {
                by_queue
                    && slot.session.state().queued_len() >= QUEUE_PRESSURE / 2
                    && Self::acks_move(epoch, slot, now)
            };
            slot.conn.and_then(|c| conns.get(c)).is_some_and(|c| {
                !c.closing
                    && (c.out.len() >= max || queue_full())
                    && now.saturating_duration_since(c.progress) < STALLED
            })
        });
        self.set_held_back(conn, !held.is_empty());
        !held.is_empty()
    }

    /// Connection `conn` is not read while publishers it sent to are
    /// congested (or is read again): its Keep Alive waits meanwhile (see
    /// [`timeouts`](Self::timeouts)), since what it sent, PINGREQ among
    /// it, waits unread.
    fn set_held_back(&mut self, conn: usize, held_back: bool) {
        if let Some(c) = self.conns.get_mut(conn) {
            c.held_back = held_back;
        }
    }

    /// Whether session `s` has messages queued for its client beyond half
    /// of [`QUEUE_PRESSURE`].
    fn backlogged(&self, s: usize) -> bool {
        self.sessions
            .get(s)
            .is_some_and(|x| x.session.state().queued_len() >= QUEUE_PRESSURE / 2)
    }

    /// The transport of `conn` is gone.
    pub(crate) fn close(&mut self, now: Instant, conn: usize) {
        self.held.remove(&conn);
        if let Some(s) = self.session_of(conn) {
            if let Some(slot) = self.sessions.get_mut(s) {
                slot.session.connection_lost(now);
            }
            self.drive(now, s, false);
            self.flush_touched(now);
            // Its will and the messages its ended session handed on hold
            // nobody back: no task of an input is waiting to take this.
            self.pressure.clear();
        }
        if self.conns.contains(conn) {
            let c = self.conns.remove(conn);
            if let Some(s) = c.session {
                if let Some(slot) = self.sessions.get_mut(s) {
                    if slot.conn == Some(conn) {
                        slot.conn = None;
                    }
                }
            }
        }
    }

    // ----- async hooks resolved ---------------------------------------------------------------

    pub(crate) fn connect_decided(
        &mut self,
        now: Instant,
        conn: usize,
        decision: Result<(), ReasonCode>,
    ) -> Option<Pending> {
        let s = self.session_of(conn)?;
        if let Err(code) = decision {
            if let Some(slot) = self.sessions.get_mut(s) {
                slot.session.reject(now, code);
            }
            self.held.remove(&conn);
            return self.proceed(now, conn);
        }
        // A connection that ended while its CONNECT waited for the decision
        // (a protocol error in the packets behind it, refused on shutdown,
        // lost) keeps no CONNECT: it is never accepted, and must not touch
        // the client's existing session, which a takeover would end for
        // nothing [MQTT-3.1.4-3], [MQTT-4.1.0-1].
        let connect = self
            .sessions
            .get(s)
            .and_then(|slot| slot.session.connect_packet())
            .map(|c| {
                (
                    c.client_id.as_str().to_owned(),
                    c.clean_start,
                    c.protocol.is_v5(),
                    c.username.as_ref().map(|u| Box::from(u.as_str())),
                )
            });
        let Some((client_id, clean_start, v5, username)) = connect else {
            // Its events (CONNACK, Closed) go on, and the slot goes.
            self.held.remove(&conn);
            return self.proceed(now, conn);
        };
        let mut accept = Accept::new();
        let cid: Arc<str> = if client_id.is_empty() {
            let id = self.assign_client_id();
            if v5 {
                accept.assigned_client_identifier = Utf8Bytes::try_from(&*id).ok();
            }
            id
        } else {
            Arc::from(client_id)
        };

        // `max_sessions`: a CONNECT that would add a session while the
        // broker holds that many is refused with 0x97 Quota exceeded (3.1.1:
        // 0x03 Server unavailable, see `ServerSession::reject`), whatever
        // its Clean Start and Session Expiry Interval (a session held only
        // while connected counts while it is). A client identifier the
        // broker holds always gets its session (resumed, or replaced on
        // Clean Start): that adds none.
        if !self.by_id.contains_key(&cid) && self.by_id.len() >= self.max_sessions {
            Counters::add(&self.counters.sessions_refused, 1);
            tracing::warn!(client = %cid, "max_sessions reached: CONNECT refused");
            if let Some(slot) = self.sessions.get_mut(s) {
                slot.session.reject(now, ReasonCode::QuotaExceeded);
            }
            self.held.remove(&conn);
            return self.proceed(now, conn);
        }

        // An existing session of the same client: take it over.
        if let Some(&old) = self.by_id.get(&cid) {
            if let Some(slot) = self.sessions.get_mut(old) {
                if slot.session.is_connected() {
                    slot.session.disconnect(now, ReasonCode::SessionTakenOver);
                }
            }
            self.drive(now, old, false);
            if self.by_id.get(&cid) == Some(&old) {
                if clean_start {
                    if let Some(slot) = self.sessions.get_mut(old) {
                        slot.session.end(now);
                    }
                    self.drive(now, old, false);
                    if self.sessions.contains(old) {
                        self.remove_session(old, false);
                    }
                } else {
                    self.remove_subscriptions(old);
                    if let Some(slot) = self.sessions.get_mut(old) {
                        accept.session = Some(slot.session.take_state());
                    }
                    // The session lives on in the new slot: removing the old
                    // one must not make the store forget it.
                    self.by_id.remove(&cid);
                    self.drive(now, old, false);
                    if self.sessions.contains(old) {
                        self.remove_session(old, false);
                    }
                }
            }
        }

        let slot = self.sessions.get_mut(s)?;
        if let Err(e) = slot.session.accept(now, accept) {
            tracing::warn!(error = %e, "accept failed");
            self.held.remove(&conn);
            return self.proceed(now, conn);
        }
        slot.client_id = Some(cid.clone());
        slot.username = username;
        slot.counted = true;
        self.counters.client_connected();
        if let Some(old) = self.by_id.insert(cid, s) {
            debug_assert!(old == s || !self.sessions.contains(old));
        }
        self.insert_subscriptions(s);
        // The packets the client sent behind the ones the session buffered.
        self.release_held(now, conn);
        let pending = self.proceed(now, conn);
        if let Some(slot) = self.sessions.get_mut(s) {
            slot.session.shrink_to_fit();
        }
        pending
    }

    pub(crate) fn subscribe_decided(
        &mut self,
        now: Instant,
        conn: usize,
        request: &SubscribeRequest,
        reasons: Vec<ReasonCode>,
    ) -> Option<Pending> {
        if let Some(s) = self.session_of(conn) {
            self.apply_subscribe(now, s, request, reasons);
        }
        self.proceed(now, conn)
    }

    pub(crate) fn publish_decided(
        &mut self,
        now: Instant,
        conn: usize,
        message: Message,
        allowed: bool,
    ) -> Option<Pending> {
        // Routed even if the session went away meanwhile (taken over, shut
        // down): the client was told it was received.
        if allowed {
            let from = self.session_of(conn);
            self.route(now, from, message);
        } else {
            Counters::add(&self.counters.publish_dropped, 1);
        }
        self.proceed(now, conn)
    }

    // ----- the event loop of one session --------------------------------------------------------

    /// Handles the events of session `s`. Stops at the first one that needs
    /// an async hook when `hooks` is set.
    fn drive(&mut self, now: Instant, s: usize, hooks: bool) -> Option<Pending> {
        let mut pending = None;
        if hooks {
            if let Some(slot) = self.sessions.get_mut(s) {
                slot.hook = false;
            }
        }
        loop {
            let slot = self.sessions.get_mut(s)?;
            if slot.hook {
                // The events behind the one an async hook is deciding wait
                // for its answer, in order; what is to transmit goes out.
                break;
            }
            let Some(event) = slot.session.poll_event() else {
                break;
            };
            match event {
                Event::Connect(c) if c.properties.authentication_method.is_some() => {
                    // Extended authentication (AUTH) is not supported.
                    slot.session
                        .reject(now, ReasonCode::BadAuthenticationMethod);
                }
                Event::Connect(c) => {
                    let info = ConnectInfo {
                        // Filled in by the connection's task.
                        peer: None,
                        client_id: c.client_id.as_str().to_owned(),
                        username: c.username.as_ref().map(|u| u.as_str().to_owned()),
                        password: c.password.clone(),
                        protocol: c.protocol,
                        will_topic: c.will.as_ref().map(|w| w.topic.clone()),
                    };
                    if hooks {
                        pending = Some(Pending::Connect(info));
                        slot.hook = true;
                        break;
                    }
                    slot.session.reject(now, ReasonCode::ServerUnavailable);
                }
                Event::Message { message, .. } => {
                    // A PUBLISH packet from the client (see
                    // `Stats::publish_received`).
                    Counters::add(&self.counters.publish_received, 1);
                    if self.authorize && hooks {
                        pending = Some(Pending::Publish(client_info(slot), message));
                        slot.hook = true;
                        break;
                    }
                    self.route(now, Some(s), message);
                }
                Event::Subscribe(request) => {
                    if self.authorize && hooks {
                        pending = Some(Pending::Subscribe(client_info(slot), request));
                        slot.hook = true;
                        break;
                    }
                    let reasons = request.grant_all();
                    self.apply_subscribe(now, s, &request, reasons);
                }
                Event::Unsubscribed(filters) => {
                    let key = SubKey::Session(s, slot.generation);
                    for f in filters {
                        self.subs.remove(&f, &key);
                    }
                }
                Event::Will(message) => {
                    // Not counted as a PUBLISH received: it came in the
                    // CONNECT, counted then as the packet it was.
                    self.route(now, None, message);
                }
                Event::Dropped { .. } => Counters::add(&self.counters.publish_dropped, 1),
                Event::Redispatch {
                    message, filter, ..
                } => self.redispatch(now, s, &filter, &message),
                Event::Closed(reason) => self.closed(now, s, &reason),
                Event::Auth(_) => {
                    // Extended authentication is not supported: CONNECT with an
                    // Authentication Method was refused (0x8C), so AUTH here is
                    // a protocol error.
                    slot.session.disconnect(now, ReasonCode::ProtocolError);
                }
                _ => {}
            }
        }
        self.flush_session(s);
        if let Some(slot) = self.sessions.get_mut(s) {
            if slot.pressured && slot.session.state().queued_len() < QUEUE_PRESSURE / 2 {
                slot.pressured = false;
                self.relief = true;
            }
        }
        match self.sessions.get(s) {
            Some(slot) if slot.session.is_ended() && !slot.hook => self.remove_session(s, true),
            Some(_) => self.update_deadline(s),
            None => {}
        }
        pending
    }

    fn closed(&mut self, now: Instant, s: usize, reason: &CloseReason) {
        // The packets that end the connection (DISCONNECT, CONNACK) go out
        // before it is detached.
        self.flush_session(s);
        let Some(slot) = self.sessions.get_mut(s) else {
            return;
        };
        match reason {
            CloseReason::ClientDisconnected(_) | CloseReason::ConnectionLost => {
                tracing::debug!(client = ?slot.client_id, ?reason, "closed");
            }
            _ => tracing::info!(client = ?slot.client_id, ?reason, "closed"),
        }
        if slot.counted {
            slot.counted = false;
            self.counters.client_disconnected();
        }
        let conn = slot.conn.take();
        if !slot.session.is_ended() {
            if let (Some(store), Some(cid)) = (&self.store, &slot.client_id) {
                let _ = store.send(StoreOp::SaveSession(
                    cid.to_string(),
                    Box::new(slot.session.state().clone()),
                ));
            }
        }
        if let Some(c) = conn {
            self.close_conn(now, c);
        }
    }

    fn remove_session(&mut self, s: usize, forget: bool) {
        self.remove_subscriptions(s);
        if !self.sessions.contains(s) {
            return;
        }
        let slot = self.sessions.remove(s);
        if let Some(cid) = &slot.client_id {
            if self.by_id.get(cid) == Some(&s) {
                self.by_id.remove(cid);
                if forget {
                    if let Some(store) = &self.store {
                        let _ = store.send(StoreOp::RemoveSession(cid.to_string()));
                    }
                }
            }
        }
        if let Some(d) = slot.deadline {
            self.deadlines.remove(&(d, s));
        }
        if slot.counted {
            self.counters.client_disconnected();
        }
        if let Some(c) = slot.conn {
            self.close_conn(Instant::now(), c);
        }
    }

    /// Connection `c` writes what it holds and closes, within
    /// [`CLOSE_FLUSH`] (see [`timeouts`](Self::timeouts)).
    fn close_conn(&mut self, now: Instant, c: usize) {
        if let Some(conn) = self.conns.get_mut(c) {
            conn.session = None;
            if !conn.closing {
                conn.closing = true;
                self.close_seq = self.close_seq.wrapping_add(1);
                conn.close_seq = self.close_seq;
                self.closing
                    .push_back((now + CLOSE_FLUSH, c, self.close_seq));
            }
            conn.wake();
        }
    }

    fn remove_subscriptions(&mut self, s: usize) {
        let Some(slot) = self.sessions.get(s) else {
            return;
        };
        let key = SubKey::Session(s, slot.generation);
        for (f, _) in slot.session.state().subscriptions() {
            self.subs.remove(f, &key);
        }
    }

    fn insert_subscriptions(&mut self, s: usize) {
        let Some(slot) = self.sessions.get(s) else {
            return;
        };
        for (f, sub) in slot.session.state().subscriptions() {
            let v = SubValue {
                options: sub.options,
                id: sub.id,
            };
            self.subs.insert(f, SubKey::Session(s, slot.generation), v);
        }
    }

    fn update_deadline(&mut self, s: usize) {
        let Some(slot) = self.sessions.get_mut(s) else {
            return;
        };
        let next = slot.session.poll_timeout();
        if next != slot.deadline {
            if let Some(d) = slot.deadline {
                self.deadlines.remove(&(d, s));
            }
            if let Some(d) = next {
                self.deadlines.insert((d, s));
            }
            slot.deadline = next;
        }
    }

    /// Encodes what session `s` has to transmit into its connection's buffer.
    fn flush_session(&mut self, s: usize) {
        let Some(slot) = self.sessions.get_mut(s) else {
            return;
        };
        slot.touched = false;
        let Some(conn) = slot.conn.and_then(|c| self.conns.get_mut(c)) else {
            while slot.session.poll_transmit().is_some() {}
            return;
        };
        let was_empty = conn.out.is_empty();
        let version = slot.session.version();
        if conn.encoder.version() != version {
            conn.encoder.set_version(version);
        }
        let (mut packets, mut publishes) = (0, 0);
        while let Some(p) = slot.session.poll_transmit() {
            packets += 1;
            if matches!(p, Packet::Publish(_)) {
                publishes += 1;
            }
            if let Err(e) = conn.encoder.encode(&p, &mut conn.out) {
                tracing::warn!(error = %e, packet = ?p.packet_type(), "cannot encode");
            }
        }
        if packets > 0 {
            Counters::add(&self.counters.messages_sent, packets);
            Counters::add(&self.counters.publish_sent, publishes);
        }
        if !was_empty || conn.out.is_empty() {
            return;
        }
        let Some(c) = slot.conn else {
            return;
        };
        // A waker means the task waits for output holding none (`output`
        // clears it when it hands bytes over).
        let lend = self.lender.is_some_and(|l| l != c)
            && self.lent.len() < LEND_MAX
            && conn.waker.is_some()
            && !conn.lent
            && !conn.closing
            && conn.out.len() < self.max_pending;
        match &conn.stream {
            Some(stream) if lend => {
                conn.lent = true;
                self.lent.push(Lent {
                    conn: c,
                    stream: stream.clone(),
                    bytes: std::mem::take(&mut conn.out).freeze(),
                });
            }
            _ => {
                if conn.wake() {
                    self.woken = true;
                }
            }
        }
    }

    fn flush_touched(&mut self, now: Instant) {
        while let Some(s) = self.touched.pop() {
            self.drive(now, s, false);
        }
    }

    // ----- routing ----------------------------------------------------------------------------

    /// Routes an application message from session `from` (if any) to every
    /// matching subscription, and keeps it if it is retained.
    pub(crate) fn route(&mut self, now: Instant, from: Option<usize>, message: Message) {
        if message.retain {
            self.retain(now, &message);
        }
        let mut targets = std::mem::take(&mut self.scratch);
        targets.clear();
        self.subs
            .for_each_match(&message.topic, |k, v| targets.push((*k, *v)));
        let mut shared = std::mem::take(&mut self.shared_scratch);
        shared.clear();
        let (sessions, rng) = (&self.sessions, &mut self.rng);
        self.subs
            .for_each_shared_match(&message.topic, |filter, members| {
                // One member per group [MQTT-4.8.2-4].
                if let Some((k, v)) = pick_member(rng, sessions, members, None) {
                    shared.push((k, v, filter.clone()));
                }
            });
        for (k, v) in targets.drain(..) {
            self.deliver(now, k, v, from, &message, Delivery::Live);
        }
        for (k, v, filter) in shared.drain(..) {
            self.deliver(now, k, v, from, &message, Delivery::Shared(filter));
        }
        self.scratch = targets;
        self.shared_scratch = shared;
    }

    /// Session `s` ended without its client having `message`, which it held
    /// through the shared subscription `filter` (and the client did not
    /// refuse, which discards it [MQTT-4.8.2-6]): MQTT 5.0 section 4.8.2
    /// recommends sending it to another client subscribed to the same
    /// shared subscription. It goes to another member of the group, picked
    /// as [`route`](Self::route) picks (a connected one preferred), with
    /// that member's subscription options; without one it is dropped and
    /// counted. `message` is as it was published.
    fn redispatch(&mut self, now: Instant, s: usize, filter: &TopicFilter, message: &Message) {
        let members = self.subs.shared_members(filter);
        match pick_member(&mut self.rng, &self.sessions, members, Some(s)) {
            Some((k, v)) => {
                tracing::debug!(%filter, topic = %message.topic, "handed to another member");
                self.deliver(now, k, v, None, message, Delivery::Shared(filter.clone()));
            }
            None => {
                tracing::debug!(%filter, topic = %message.topic, "no other member: dropped");
                Counters::add(&self.counters.publish_dropped, 1);
            }
        }
    }

    fn retain(&mut self, now: Instant, message: &Message) {
        if message.payload.is_empty() {
            if self.remove_retained(&message.topic) {
                if let Some(store) = &self.store {
                    let _ = store.send(StoreOp::ClearRetained(message.topic.clone()));
                }
            }
            return;
        }
        // `max_retained_messages`: a new topic is not kept while that many
        // have a retained message; the message is still routed (and was
        // acknowledged as accepted). Replacing one adds none.
        if self.retained.len() >= self.max_retained && self.retained.get(&message.topic).is_none() {
            Counters::add(&self.counters.retained_refused, 1);
            tracing::debug!(topic = %message.topic, "max_retained_messages reached: not retained");
            return;
        }
        // `max_retained_bytes`: what the message replaces is given back
        // first. Beyond, it is not kept, and neither is the message it was
        // to replace, which is no longer the topic's latest.
        let replaced = self
            .retained
            .get(&message.topic)
            .map_or(0, |r| retained_size(&r.message));
        let total = self
            .retained_bytes
            .saturating_sub(replaced)
            .saturating_add(retained_size(message));
        if total > self.max_retained_bytes {
            Counters::add(&self.counters.retained_refused, 1);
            tracing::debug!(topic = %message.topic, "max_retained_bytes reached: not retained");
            if replaced > 0 && self.remove_retained(&message.topic) {
                if let Some(store) = &self.store {
                    let _ = store.send(StoreOp::ClearRetained(message.topic.clone()));
                }
            }
            return;
        }
        // Its own copy: kept as it was received, it would keep the whole
        // read buffer of its PUBLISH alive (up to 64 KiB for a message of a
        // few bytes), for as long as it is retained.
        let mut kept = message.detached();
        if !kept.properties.subscription_identifiers.is_empty()
            || kept.properties.topic_alias.is_some()
        {
            let p = kept.properties.to_mut();
            p.subscription_identifiers.clear();
            p.topic_alias = None;
            kept.properties.compact();
        }
        if let Some(store) = &self.store {
            // Its expiry counts from here across restarts (see `Store`).
            let _ = store.send(StoreOp::SetRetained(
                Box::new(kept.clone()),
                SystemTime::now(),
            ));
        }
        self.set_retained(Retained::new(kept, now));
    }

    /// Delivers `message` to one subscription, `via` says why.
    fn deliver(
        &mut self,
        now: Instant,
        key: SubKey,
        sub: SubValue,
        from: Option<usize>,
        message: &Message,
        via: Delivery,
    ) {
        let qos = message.qos.min(sub.options.qos);
        let retained = matches!(via, Delivery::Retained);
        match key {
            SubKey::Session(s, generation) => {
                // [MQTT-3.8.3-3]: No Local.
                if sub.options.no_local && from == Some(s) {
                    return;
                }
                // The copies delivered in this lock wait in the session
                // until it is flushed (at the end of the batch): counted
                // at about this message's size, they may take the
                // connection's output to its limit, and then they are
                // encoded now, so that the check below meets the output
                // as it is (a client with many overlapping subscriptions
                // would otherwise get a copy for each, whatever its limit).
                let owed = self.sessions.get(s).and_then(|slot| {
                    let waiting = slot.session.transmit_len();
                    let out = slot
                        .conn
                        .and_then(|c| self.conns.get(c))
                        .map_or(0, |x| x.out.len());
                    let each = message.topic.len() + message.payload.len() + 8;
                    let over = waiting.saturating_mul(each).saturating_add(out) >= self.max_pending;
                    (waiting > 0 && over).then_some(slot.touched)
                });
                if let Some(touched) = owed {
                    self.flush_session(s);
                    // Still listed in `touched` (for its events): not
                    // listed again by the delivery below.
                    if let Some(slot) = self.sessions.get_mut(s) {
                        slot.touched = touched;
                    }
                }
                let Some(slot) = self
                    .sessions
                    .get_mut(s)
                    .filter(|slot| slot.generation == generation)
                else {
                    return;
                };
                let conn = slot.conn.and_then(|c| self.conns.get(c));
                // Asked only where it matters: a clock difference on every
                // delivery showed in profiles.
                let moving = || {
                    conn.is_some_and(|x| {
                        !x.closing && now.saturating_duration_since(x.progress) < STALLED
                    })
                };
                if let Some(x) = conn {
                    if x.out.len() >= self.max_pending {
                        // Backpressure: the publisher waits while this
                        // subscriber's buffer drains, unless it is stalled
                        // (or four times over), when QoS 0 is dropped.
                        // Retained messages sent on SUBSCRIBE have no
                        // publisher to hold: a moving subscriber may take
                        // one copy of the whole retained set beyond that
                        // (each is encoded at once, see `send_retained`);
                        // more (many filters of one SUBSCRIBE matching it
                        // again and again) is dropped.
                        let over = if retained {
                            self.max_pending
                                .saturating_mul(4)
                                .saturating_add(self.retained_bytes)
                                .saturating_add(RETAINED_HEAD.saturating_mul(self.retained.len()))
                        } else {
                            self.max_pending.saturating_mul(4)
                        };
                        if moving() && x.out.len() < over {
                            // Never on itself: its own task must go on
                            // writing what it reads (it stops reading by
                            // itself while its output is over the limit,
                            // see `conn::run`).
                            if from != Some(s) && !self.pressure.contains(&s) {
                                self.pressure.push(s);
                            }
                        } else if qos == QoS::AtMostOnce {
                            Counters::add(&self.counters.publish_dropped, 1);
                            return;
                        }
                    }
                }
                if qos == QoS::AtMostOnce && conn.is_none_or(|x| x.closing) {
                    // QoS 0 is for connected clients.
                    Counters::add(&self.counters.publish_dropped, 1);
                    return;
                }
                let mut m = message.clone();
                m.qos = qos;
                m.retain = retained || (sub.options.retain_as_published && message.retain);
                // The properties stay shared with every other copy unless
                // this subscription's identifier must go in them.
                if sub.id.is_some() || !m.properties.subscription_identifiers.is_empty() {
                    let p = m.properties.to_mut();
                    p.subscription_identifiers.clear();
                    p.subscription_identifiers.extend(sub.id);
                    m.properties.compact();
                }
                let published = match via {
                    // Kept with the message: if this session ends before
                    // its client has it, it goes to another member.
                    Delivery::Shared(filter) if qos != QoS::AtMostOnce => {
                        let origin = SharedOrigin::new(filter, message);
                        slot.session.publish_shared(now, m, origin)
                    }
                    _ => slot.session.publish(now, m),
                };
                if published.is_err() {
                    Counters::add(&self.counters.publish_dropped, 1);
                }
                let queued = slot.session.state().queued_len();
                if queued == 1 {
                    // A queue begins: its acknowledgements are timed from
                    // here.
                    slot.acked_ms = Self::ms(self.epoch, now);
                }
                let queue_full = from != Some(s)
                    && queued >= QUEUE_PRESSURE
                    && moving()
                    && Self::acks_move(self.epoch, slot, now);
                if !slot.touched {
                    slot.touched = true;
                    self.touched.push(s);
                }
                // A publisher with a backlog of its own is never held: it
                // must go on reading the acknowledgements that drain it
                // (two clients publishing to each other would otherwise
                // hold each other until one counts as stalled).
                if queue_full && !from.is_some_and(|f| self.backlogged(f)) {
                    if let Some(slot) = self.sessions.get_mut(s) {
                        slot.pressured = true;
                    }
                    if !self.pressure.contains(&s) {
                        self.pressure.push(s);
                    }
                }
            }
            SubKey::Local(l) => {
                let Some(local) = self.locals.get(l) else {
                    return;
                };
                let mut m = message.clone();
                m.qos = qos;
                m.retain = retained || (sub.options.retain_as_published && message.retain);
                if local.tx.try_send(m).is_err() {
                    Counters::add(&self.counters.publish_dropped, 1);
                }
            }
        }
    }

    fn apply_subscribe(
        &mut self,
        now: Instant,
        s: usize,
        request: &SubscribeRequest,
        reasons: Vec<ReasonCode>,
    ) {
        let Some(slot) = self.sessions.get_mut(s) else {
            return;
        };
        let key = SubKey::Session(s, slot.generation);
        let reasons = within_subscription_quota(
            self.max_subscriptions,
            &self.counters,
            slot.session.state(),
            request,
            reasons,
        );
        let granted = match slot.session.suback(now, request, reasons) {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(error = %e, "suback");
                return;
            }
        };
        for (filter, sub, existed) in granted {
            let v = SubValue {
                options: sub.options,
                id: sub.id,
            };
            self.subs.insert(&filter, key, v);
            // Retained messages are not sent for shared subscriptions
            // (MQTT 5.0 section 4.8.2); Retain Handling says when they are
            // [MQTT-3.3.1-9], [MQTT-3.3.1-10], [MQTT-3.3.1-11].
            let send = !filter.is_shared()
                && match sub.options.retain_handling {
                    RetainHandling::SendOnSubscribe => true,
                    RetainHandling::SendIfNew => !existed,
                    _ => false,
                };
            if send {
                self.send_retained(now, key, v, &filter);
            }
        }
    }

    fn send_retained(&mut self, now: Instant, key: SubKey, v: SubValue, filter: &TopicFilter) {
        let mut found = Vec::new();
        let mut expired = Vec::new();
        self.retained.for_each_match(filter, |name, r| {
            let mut m = r.message.clone();
            if let Some(deadline) = r.deadline {
                // Between two timer ticks an expired message may still be
                // here: it is not sent.
                let left = deadline.saturating_duration_since(now);
                if left.is_zero() {
                    expired.push(name.clone());
                    return;
                }
                // The interval decremented by the time it waited
                // [MQTT-3.3.2-6], rounded up: it has not expired.
                let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
                m.properties.to_mut().message_expiry_interval =
                    Some(u32::try_from(secs).unwrap_or(u32::MAX));
            }
            found.push(m);
        });
        for name in expired {
            self.remove_retained(&name);
            if let Some(store) = &self.store {
                let _ = store.send(StoreOp::ClearRetained(name));
            }
        }
        for m in found {
            self.deliver(now, key, v, None, &m, Delivery::Retained);
            // Encoded at once (behind the SUBACK), so that the next one
            // meets the connection's output as it is: many filters of one
            // SUBSCRIBE matching a large retained set would otherwise all
            // be sent within one lock, whatever `max_pending_bytes` says.
            if let SubKey::Session(s, _) = key {
                self.flush_session(s);
            }
        }
    }

    // ----- timers -----------------------------------------------------------------------------

    /// Runs the session timers due at `now`, and removes the retained
    /// messages that expired.
    pub(crate) fn timeouts(&mut self, now: Instant) -> Vec<AbortHandle> {
        while let Some(&(at, s)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(slot) = self.sessions.get_mut(s) else {
                continue;
            };
            slot.deadline = None;
            // A connected session's only timer is Keep Alive: deferred
            // while its connection is not read for its backlog and its
            // output moves (see `output_moved`). What the client sent is
            // read once the output drains, and restarts it.
            let deferred = slot.session.is_connected()
                && slot
                    .conn
                    .and_then(|c| self.conns.get_mut(c))
                    .is_some_and(|c| {
                        let moved = c.paused == Paused::Moved;
                        if moved {
                            c.paused = Paused::Still;
                        }
                        c.held_back || moved
                    });
            if deferred {
                let later = now + KEEP_ALIVE_DEFERRED;
                slot.deadline = Some(later);
                self.deadlines.insert((later, s));
                continue;
            }
            slot.session.handle_timeout(now);
            self.drive(now, s, false);
        }
        self.purge_retained(now);
        self.flush_touched(now);
        // Wills are not held back.
        self.pressure.clear();
        // Closing connections that did not flush in time: their tasks are
        // ended (by the caller, out of the lock), which closes them here.
        let mut ended = Vec::new();
        while let Some(&(by, c, seq)) = self.closing.front() {
            if by > now {
                break;
            }
            self.closing.pop_front();
            // The slot may have closed, and been taken by another since.
            if let Some(conn) = self
                .conns
                .get_mut(c)
                .filter(|x| x.closing && x.close_seq == seq)
            {
                if let Some(task) = conn.task.take() {
                    ended.push(task);
                }
            }
        }
        ended
    }

    // ----- in-process clients -----------------------------------------------------------------

    /// Routes a message published inside the process: by the embedding
    /// application ([`Broker::publish`](crate::Broker::publish)) or by the
    /// broker itself (`$SYS`). Not counted as a PUBLISH received, which
    /// counts packets from clients only (see `Stats::publish_received`).
    pub(crate) fn local_publish(&mut self, now: Instant, message: Message) {
        self.route(now, None, message);
        self.flush_touched(now);
        // In-process publishers are not held back.
        self.pressure.clear();
    }

    pub(crate) fn local_subscribe(
        &mut self,
        now: Instant,
        filter: TopicFilter,
        options: SubscriptionOptions,
        tx: mpsc::Sender<Message>,
    ) -> usize {
        let l = self.locals.insert(Local {
            tx,
            filter: filter.clone(),
        });
        let v = SubValue { options, id: None };
        self.subs.insert(&filter, SubKey::Local(l), v);
        if !filter.is_shared() && options.retain_handling != RetainHandling::DoNotSend {
            self.send_retained(now, SubKey::Local(l), v, &filter);
        }
        l
    }

    pub(crate) fn local_unsubscribe(&mut self, l: usize) {
        if self.locals.contains(l) {
            let local = self.locals.remove(l);
            self.subs.remove(&local.filter, &SubKey::Local(l));
        }
    }

    // ----- shutdown and statistics --------------------------------------------------------------

    /// Closes every connection with DISCONNECT 0x8B (Server shutting down)
    /// and saves the persistent sessions.
    pub(crate) fn shutdown(&mut self, now: Instant) {
        let live: Vec<usize> = self.sessions.iter().map(|(s, _)| s).collect();
        for &s in &live {
            if let Some(slot) = self.sessions.get_mut(s) {
                if slot.session.is_connected() {
                    slot.session.disconnect(now, ReasonCode::ServerShuttingDown);
                } else if slot.conn.is_some() {
                    slot.session.connection_lost(now);
                }
            }
            self.drive(now, s, false);
        }
        self.flush_touched(now);
        self.pressure.clear();
        // Saved once every session is done: what the sessions that ended
        // handed on to other members of their shared subscriptions (see
        // `redispatch`) is saved with those.
        for s in live {
            if let (Some(store), Some(slot)) = (&self.store, self.sessions.get(s)) {
                if let Some(cid) = &slot.client_id {
                    let _ = store.send(StoreOp::SaveSession(
                        cid.to_string(),
                        Box::new(slot.session.state().clone()),
                    ));
                }
            }
        }
        self.close_connections();
    }

    /// Every connection flushes what it has and closes.
    pub(crate) fn close_connections(&mut self) {
        for (_, c) in self.conns.iter_mut() {
            c.closing = true;
            c.wake();
        }
    }

    /// Ends the in-process subscriptions: their queues close, and
    /// [`LocalSubscription::recv`](crate::LocalSubscription::recv) returns
    /// `None` once they are read.
    pub(crate) fn close_locals(&mut self) {
        let locals = std::mem::take(&mut self.locals);
        for (l, local) in &locals {
            self.subs.remove(&local.filter, &SubKey::Local(l));
        }
    }

    /// Drops the store channel: the writer ends once it has applied every
    /// change sent so far.
    pub(crate) fn close_store(&mut self) {
        self.store = None;
    }

    pub(crate) fn stats(&self) -> Stats {
        let mut st = self.counters.snapshot();
        st.clients_total = self.by_id.len() as u64;
        st.clients_disconnected = self
            .by_id
            .values()
            .filter(|&&s| self.sessions.get(s).is_some_and(|x| x.conn.is_none()))
            .count() as u64;
        st.retained = self.retained.len() as u64;
        st.subscriptions = self.subs.len() as u64;
        st
    }
}

/// The bytes a retained message counts for against
/// `Config::max_retained_bytes`: its topic, its payload and its properties
/// as they are kept (each user property is a structure of its own, so
/// 100,000 empty ones, 500 KB on the wire, take 6.4 MB).
fn retained_size(m: &Message) -> usize {
    let props = m.properties.get().map_or(0, |p| {
        let strings = [p.response_topic.as_ref(), p.content_type.as_ref()]
            .into_iter()
            .flatten()
            .map(Utf8Bytes::len)
            .sum::<usize>();
        let users = p.user_properties.iter().fold(0usize, |n, u| {
            n.saturating_add(size_of::<UserProperty>() + u.name.len() + u.value.len())
        });
        (size_of::<PublishProperties>() + strings)
            .saturating_add(p.correlation_data.as_ref().map_or(0, Bytes::len))
            .saturating_add(users)
    });
    m.topic
        .len()
        .saturating_add(m.payload.len())
        .saturating_add(props)
}

/// The member of a shared subscription's group that a message goes to
/// [MQTT-4.8.2-4]: a connected one picked at random (uniform over
/// messages, whatever else the other groups receive), else any; never a
/// member held by session `skip` (one that ended, see
/// [`State::redispatch`]). `None` when no member is left.
fn pick_member(
    rng: &mut u64,
    sessions: &Slab<SessionSlot>,
    members: &[(SubKey, SubValue)],
    skip: Option<usize>,
) -> Option<(SubKey, SubValue)> {
    let n = members.len();
    // xorshift64
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    let start = usize::try_from(*rng % n.max(1) as u64).unwrap_or(0);
    let mut other = None;
    for (k, v) in (0..n).filter_map(|i| members.get((start + i) % n)) {
        let connected = match k {
            SubKey::Session(s, _) if Some(*s) == skip => continue,
            SubKey::Session(s, g) => sessions
                .get(*s)
                .is_some_and(|x| x.generation == *g && x.conn.is_some()),
            SubKey::Local(_) => true,
        };
        if connected {
            return Some((*k, *v));
        }
        other.get_or_insert((*k, *v));
    }
    other
}

/// `reasons` with each filter that would add a subscription beyond `max`
/// (`max_subscriptions_per_client`) to the session `state` refused with
/// 0x97 Quota exceeded (a 3.1.1 SUBACK writes it 0x80 Failure), in order:
/// the filters before it are granted. A filter the session is subscribed to
/// (or that an earlier filter of the same SUBSCRIBE adds) replaces that
/// subscription [MQTT-3.8.4-3] and adds none: it is granted at the limit.
/// Filters already refused (invalid, or by the authorizer) count for
/// nothing. Runs on SUBSCRIBE only (routing never looks at it), in
/// O(n log n) for n filters: a SUBSCRIBE may carry many.
fn within_subscription_quota(
    max: usize,
    counters: &Counters,
    state: &SessionState,
    request: &SubscribeRequest,
    mut reasons: Vec<ReasonCode>,
) -> Vec<ReasonCode> {
    let mut count = state.subscription_count();
    let mut added: BTreeSet<&TopicFilter> = BTreeSet::new();
    for (entry, reason) in request.entries.iter().zip(reasons.iter_mut()) {
        let Ok(filter) = &entry.filter else {
            continue;
        };
        if reason.is_error() || state.is_subscribed(filter) || added.contains(filter) {
            continue;
        }
        if count >= max {
            *reason = ReasonCode::QuotaExceeded;
            Counters::add(&counters.subscriptions_refused, 1);
            tracing::debug!(%filter, "max_subscriptions_per_client reached: filter refused");
            continue;
        }
        count += 1;
        added.insert(filter);
    }
    reasons
}

fn client_info(slot: &SessionSlot) -> ClientInfo {
    ClientInfo {
        client_id: slot.client_id.as_deref().unwrap_or_default().to_owned(),
        username: slot.username.as_deref().map(str::to_owned),
    }
}

#[cfg(test)]
mod sizes {
    use std::mem::size_of;

    /// What every idle connection costs in the state (the README's idle
    /// figure is the sum of these, the task and tokio's registration), and
    /// what every delivery moves.
    #[test]
    fn per_connection_and_per_message_structures_stay_small() {
        assert!(
            size_of::<mqtt_session::ServerSession>() <= 496,
            "{}",
            size_of::<mqtt_session::ServerSession>()
        );
        assert!(size_of::<super::SessionSlot>() <= 88);
        // 8 bytes of it are the socket kept for write-through, 8 the
        // task's handle (a shutdown ends the tasks that did not end).
        assert!(
            size_of::<super::ConnSlot>() <= 112,
            "{}",
            size_of::<super::ConnSlot>()
        );
        assert!(size_of::<mqtt_session::Message>() <= 80);
        assert!(size_of::<mqtt_codec::Packet>() <= 88);
    }
}

#[cfg(test)]
mod retained_expiry {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;
    use std::time::{Duration, Instant, SystemTime};

    use mqtt_codec::QoS;
    use mqtt_session::Message;

    use super::State;
    use crate::config::Config;
    use crate::stats::Counters;

    fn retained(topic: &'static str, expiry: Option<u32>) -> Message {
        let mut m = Message::new(
            mqtt_topic::TopicName::from_static(topic).unwrap(),
            "x",
            QoS::AtLeastOnce,
            true,
        );
        m.properties.to_mut().message_expiry_interval = expiry;
        m
    }

    /// [MQTT-3.3.2-5]: restored retained messages keep what is left of
    /// their expiry, counted from when they were stored; one whose
    /// interval passed is dropped, one stored "in the future" (the clock
    /// was set back) counts as stored now; the timer removes them as they
    /// expire, and messages without expiry stay.
    #[test]
    fn restored_retained_messages_expire_from_when_they_were_stored() {
        let cfg = Config::default();
        let mut st = State::new(&cfg, false, Arc::new(Counters::new()), None);
        let (now, wall) = (Instant::now(), SystemTime::now());
        let ago = |secs| wall - Duration::from_secs(secs);
        st.restore_retained(
            now,
            wall,
            vec![
                (retained("gone", Some(10)), ago(10)),
                (retained("left-5", Some(10)), ago(5)),
                (retained("future", Some(10)), wall + Duration::from_secs(60)),
                (retained("forever", None), ago(1_000_000)),
            ],
        );
        assert_eq!(st.retained.len(), 3);
        assert!(st.retained.get("gone").is_none());
        st.timeouts(now + Duration::from_secs(5));
        assert!(st.retained.get("left-5").is_none());
        assert_eq!(st.retained.len(), 2);
        st.timeouts(now + Duration::from_secs(10));
        assert_eq!(st.retained.len(), 1);
        assert!(st.retained.get("forever").is_some());
        assert!(st.retained_expiry.is_empty());
    }
}

#[cfg(test)]
/// Tests on connections with real sockets: write-through and backpressure.
mod flow {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use tokio::net::{TcpListener, TcpStream};

    use mqtt_codec::{
        Connect, Packet, PacketId, ProtocolVersion, Publish, QoS, Subscribe, SubscriptionOptions,
        Utf8Bytes,
    };

    use mqtt_codec::ReasonCode;

    use super::{ACK_STALLED, Lent, Pending, QUEUE_PRESSURE, STALLED, State};
    use crate::config::Config;
    use crate::stats::Counters;

    async fn socket() -> Arc<TcpStream> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (accepted, _client) = tokio::join!(listener.accept(), client);
        Arc::new(accepted.unwrap().0)
    }

    fn state() -> State {
        let cfg = Config {
            // Small, so that a few hundred messages queue behind it.
            max_inflight: std::num::NonZeroU16::new(10).unwrap(),
            ..Config::default()
        };
        State::new(&cfg, false, Arc::new(Counters::new()), None)
    }

    /// What the socket did not take goes back before what was queued for
    /// the connection while it was lent, and the owner takes nothing while
    /// its bytes are lent.
    #[tokio::test]
    async fn bytes_given_back_go_before_bytes_queued_meanwhile() {
        let (mut st, now, stream) = (state(), Instant::now(), socket().await);
        let c = st.open(now, Some(stream.clone()));
        let slot = st.conns.get_mut(c).unwrap();
        slot.lent = true;
        slot.out.extend_from_slice(b" and then this");
        assert!(st.output(now, c).bytes.is_none(), "taken while lent");
        let lent = vec![Lent {
            conn: c,
            stream,
            bytes: Bytes::from_static(b"the rest of this"),
        }];
        st.give_back(now, lent);
        let out = st.output(now, c).bytes.expect("output after give-back");
        assert_eq!(&out[..], b"the rest of this and then this");
    }

    /// A slot reused by another connection meanwhile does not receive the
    /// former one's bytes.
    #[tokio::test]
    async fn bytes_given_back_to_a_reused_slot_are_dropped() {
        let (mut st, now) = (state(), Instant::now());
        let (old, new) = (socket().await, socket().await);
        let c = st.open(now, Some(old.clone()));
        st.close(now, c);
        let reused = st.open(now, Some(new));
        assert_eq!(reused, c);
        let lent = vec![Lent {
            conn: c,
            stream: old,
            bytes: Bytes::from_static(b"not yours"),
        }];
        st.give_back(now, lent);
        assert!(st.output(now, c).bytes.is_none());
    }

    fn packet(p: impl Into<Packet>) -> Packet {
        p.into()
    }

    /// A connected client `id` on a fresh socket, subscribed to `filter`
    /// at QoS 1; its connection index.
    async fn client(st: &mut State, now: Instant, id: &'static str, filter: &'static str) -> usize {
        let c = st.open(now, Some(socket().await));
        let connect = Connect::new(ProtocolVersion::V3_1_1, Utf8Bytes::from_static(id));
        assert!(matches!(
            st.input(now, c, &mut vec![packet(connect)], None),
            Some(Pending::Connect(_))
        ));
        assert!(st.connect_decided(now, c, Ok(())).is_none());
        let sub = Subscribe::new(
            PacketId::new(1).unwrap(),
            Utf8Bytes::from_static(filter),
            SubscriptionOptions::new(QoS::AtLeastOnce),
        );
        assert!(st.input(now, c, &mut vec![packet(sub)], None).is_none());
        c
    }

    /// An assigned client identifier is never one that a session of the
    /// broker holds [MQTT-3.1.3-6]: a client that took the next candidate
    /// keeps its session, and the anonymous client gets another.
    #[tokio::test]
    async fn assigned_client_identifier_skips_identifiers_in_use() {
        let (mut st, now) = (state(), Instant::now());
        let next = st.assigned_id(st.next_auto_id + 1);
        let owner = st.open(now, Some(socket().await));
        let connect = Connect::new(
            ProtocolVersion::V5,
            Utf8Bytes::try_from(next.as_str()).unwrap(),
        );
        assert!(
            st.input(now, owner, &mut vec![packet(connect)], None)
                .is_some()
        );
        assert!(st.connect_decided(now, owner, Ok(())).is_none());

        let anon = st.open(now, Some(socket().await));
        let connect = Connect::new(ProtocolVersion::V5, Utf8Bytes::from_static(""));
        assert!(
            st.input(now, anon, &mut vec![packet(connect)], None)
                .is_some()
        );
        assert!(st.connect_decided(now, anon, Ok(())).is_none());
        let assigned = st
            .session_of(anon)
            .and_then(|s| st.sessions.get(s))
            .and_then(|slot| slot.client_id.clone())
            .unwrap();
        assert_ne!(&*assigned, next.as_str());
        assert!(assigned.starts_with("auto-"));
        assert_eq!(st.by_id.len(), 2);
        assert!(!st.conns.get(owner).unwrap().closing, "owner taken over");
        let sent = st.output(now, anon).bytes.unwrap();
        let mut buf = bytes::BytesMut::from(&sent[..]);
        let Ok(Some(Packet::ConnAck(ack))) =
            mqtt_codec::Decoder::with_version(ProtocolVersion::V5).decode(&mut buf)
        else {
            panic!("no CONNACK")
        };
        assert_eq!(
            ack.properties
                .assigned_client_identifier
                .as_ref()
                .map(Utf8Bytes::as_str),
            Some(&*assigned)
        );
    }

    /// A connection refused while its CONNECT hook ran (here: the broker
    /// shuts down during a slow authenticator) leaves nothing behind once
    /// the hook answers, whatever the answer: its session's events go on
    /// (CONNACK, Closed) and its slot goes. The slot used to stay, marked
    /// as waiting for a hook, for the life of the broker.
    #[tokio::test]
    async fn refused_while_its_connect_hook_runs_leaves_no_session() {
        for decision in [Ok(()), Err(ReasonCode::NotAuthorized)] {
            let (mut st, now) = (state(), Instant::now());
            let c = st.open(now, Some(socket().await));
            let connect = Connect::new(ProtocolVersion::V5, Utf8Bytes::from_static("slow"));
            assert!(matches!(
                st.input(now, c, &mut vec![packet(connect)], None),
                Some(Pending::Connect(_))
            ));
            // The hook runs; the broker shuts down meanwhile.
            st.shutdown(now);
            assert_eq!(st.sessions.len(), 1, "kept while the hook runs");
            assert!(st.connect_decided(now, c, decision).is_none());
            assert!(st.sessions.is_empty(), "{decision:?}: session slot left");
            assert!(st.by_id.is_empty());
            let out = st.output(now, c);
            assert!(out.closing, "{decision:?}");
            st.close(now, c);
            assert!(st.conns.is_empty() && st.sessions.is_empty());
        }
    }

    /// `n` QoS 1 messages from connection `c` to `topic`.
    fn publish(st: &mut State, now: Instant, c: usize, topic: &'static str, n: u16) {
        let mut packets: Vec<Packet> = (1..=n)
            .map(|i| {
                let mut p = Publish::new(mqtt_codec::PublishTopic::from_static(topic), "m");
                p.qos = QoS::AtLeastOnce;
                p.packet_id = PacketId::new(i);
                p.into()
            })
            .collect();
        assert!(st.input(now, c, &mut packets, None).is_none());
    }

    /// A publisher is held while a moving subscriber's queue is over
    /// `QUEUE_PRESSURE`, and let go once its own queue is long (it must
    /// read the acknowledgements that drain it): two clients publishing to
    /// each other never hold each other.
    #[tokio::test]
    async fn queue_pressure_holds_a_publisher_unless_it_has_a_backlog() {
        let (mut st, now) = (state(), Instant::now());
        let a = client(&mut st, now, "a", "to-a").await;
        let b = client(&mut st, now, "b", "to-b").await;
        let sb = st.session_of(b).unwrap();
        let n = u16::try_from(QUEUE_PRESSURE).unwrap() + 100;
        // Nobody acknowledges: the window fills, the rest is queued.
        publish(&mut st, now, a, "to-b", n);
        let mut held = Vec::new();
        st.take_pressure(a, &mut held);
        assert_eq!(held, [sb], "a waits for b's queue");
        assert!(st.still_congested(now, a, &mut held));
        // b publishes as much to a: a now has a backlog of its own, and b
        // is not held by it.
        publish(&mut st, now, b, "to-a", n);
        let mut held_b = Vec::new();
        st.take_pressure(b, &mut held_b);
        assert!(held_b.is_empty(), "b held by a, which waits for b");
        // a is let go at its next look.
        assert!(!st.still_congested(now, a, &mut held));
        assert!(held.is_empty());
    }

    /// A subscriber whose client reads (its output is taken) but
    /// acknowledges nothing holds its publisher for `ACK_STALLED` at most,
    /// and Keep Alive waits for a publisher while it is held.
    #[tokio::test]
    async fn a_queue_that_is_not_acknowledged_holds_for_ack_stalled() {
        let (mut st, now) = (state(), Instant::now());
        let a = client(&mut st, now, "a", "to-a").await;
        let b = client(&mut st, now, "b", "to-b").await;
        let n = u16::try_from(QUEUE_PRESSURE).unwrap() + 100;
        publish(&mut st, now, a, "to-b", n);
        let mut held = Vec::new();
        st.take_pressure(a, &mut held);
        assert!(!held.is_empty());
        assert!(st.conns.get(a).unwrap().held_back);
        let ms = |m: u32| now + Duration::from_millis(u64::from(m));
        let _ = st.output(ms(ACK_STALLED - 100), b);
        assert!(st.still_congested(ms(ACK_STALLED - 100), a, &mut held));
        let _ = st.output(ms(ACK_STALLED + 100), b);
        assert!(!st.still_congested(ms(ACK_STALLED + 100), a, &mut held));
        assert!(!st.conns.get(a).unwrap().held_back);
    }

    /// A stalled subscriber (nothing taken for `STALLED`) holds nobody.
    #[tokio::test]
    async fn a_stalled_subscriber_holds_nobody() {
        let (mut st, now) = (state(), Instant::now());
        let a = client(&mut st, now, "a", "to-a").await;
        let _b = client(&mut st, now, "b", "to-b").await;
        let later = now + STALLED;
        publish(
            &mut st,
            later,
            a,
            "to-b",
            u16::try_from(QUEUE_PRESSURE).unwrap() + 100,
        );
        let mut held = Vec::new();
        st.take_pressure(a, &mut held);
        assert!(held.is_empty());
    }
}
