//! The connection task: drives a [`ClientSession`] over a transport.
//!
//! One task owns the session, the transport, the routing table and every
//! pending request, so nothing is shared but the command channel. Its loop
//! is quinn's `drive_timer` shape, written as one poll function:
//!
//! ```text
//!   commands (batch) ─▶ session.publish / subscribe ─┐
//!   transport bytes  ─▶ Decoder ─▶ handle_packet    ─┼─▶ poll_transmit ─▶ Encoder ─▶ write buffer ─▶ transport
//!   timer            ─▶ handle_timeout              ─┘   poll_event    ─▶ complete futures, route messages
//! ```
//!
//! Every command waiting in the channel is applied before anything is
//! written, so packets go out in batches: one write for many PUBLISHes.

use std::collections::{HashMap, VecDeque};
use std::future::{Future, poll_fn};
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use mqtt_codec::{
    Decoder, EncodeError, Encoder, Packet, PacketId, QoS, ReasonCode, SubscriptionId,
    SubscriptionOptions,
};
use mqtt_session::{
    ClientConfig, ClientSession, CloseReason, DropReason, Event as SessionEvent, MessageId,
    ProtocolError,
};
use mqtt_topic::TopicFilter;
use tokio::io::AsyncWrite;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Sleep;

use crate::client::{Command, Done, Shared, SubscribeOp, UnsubscribeOp};
use crate::error::{ClientError, ConnectionError};
use crate::options::ClientOptions;
use crate::router::{RouteId, Router};
use crate::stream::{Ack, AckToken, Event, Listener, Received};
use crate::transport::{DynConnector, Transport};

/// Commands taken off the channel at once.
const COMMAND_BATCH: usize = 1024;
/// Rounds of the poll loop before yielding to the runtime.
const MAX_ROUNDS: usize = 32;
/// Read buffer growth step.
const READ_CHUNK: usize = 64 * 1024;
/// Longest time a connection the session closed is kept without a byte
/// written, for what is still to be written (a DISCONNECT, messages before
/// it). The ping timeout is the time this client gives a silent server;
/// this bounds it so that `disconnect` returns in bounded time even with
/// `ping_timeout(Duration::MAX)`.
const MAX_CLOSE_GRACE: Duration = Duration::from_secs(30);
/// Write buffer size over which the connection is not read: a server that
/// sends packets the client must answer (PUBREL, QoS 1/2 PUBLISH) but
/// does not read the answers would otherwise fill the client's memory.
/// What the application publishes is bounded by `max_pending`; this is a
/// backstop for the answers.
const WRITE_HIGH: usize = 16 << 20;

/// Hashes a `MessageId` (already unique) as itself.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        // Spread sequential ids over the table's buckets.
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IdMap<V> = HashMap<MessageId, V, BuildHasherDefault<IdHasher>>;

#[derive(Debug)]
struct PendingPublish {
    done: Done<ReasonCode>,
    qos: QoS,
}

type Filters = Vec<(TopicFilter, SubscriptionOptions)>;

/// A SUBSCRIBE or UNSUBSCRIBE to send when connected.
#[derive(Debug)]
enum Op {
    Sub(SubscribeOp, RouteId, Option<SubscriptionId>),
    /// Subscribing again after the server lost the session.
    Resub(
        Vec<(TopicFilter, SubscriptionOptions)>,
        Option<SubscriptionId>,
    ),
    Unsub(UnsubscribeOp),
}

/// Per-connection I/O state.
struct Conn {
    io: Box<dyn Transport>,
    rbuf: BytesMut,
    wbuf: BytesMut,
    decoder: Decoder,
    encoder: Encoder,
    sleep: Pin<Box<Sleep>>,
    deadline: Option<Instant>,
    needs_flush: bool,
    /// Why the connection ended, once it has.
    end: Option<ConnectionError>,
    /// Once the session closed the connection with bytes still to write:
    /// when to give up on them (see [`MAX_CLOSE_GRACE`]).
    linger: Option<Pin<Box<Sleep>>>,
    /// While bytes wait that the transport takes none of: when to presume
    /// the server dead (the ping timeout, at most [`MAX_CLOSE_GRACE`]).
    /// Keep Alive cannot tell: every packet queued counts as sent.
    stall: Option<Pin<Box<Sleep>>>,
}

pub(crate) struct Driver {
    options: ClientOptions,
    connector: Arc<dyn DynConnector>,
    session: ClientSession,
    shared: Arc<Shared>,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    cmd_open: bool,
    batch: Vec<Command>,
    ack_tx: mpsc::UnboundedSender<Ack>,
    ack_rx: mpsc::UnboundedReceiver<Ack>,
    ack_batch: Vec<Ack>,
    /// Connections and sessions begun (see [`Ack::epoch`]).
    conn_epoch: u64,
    session_epoch: u64,
    pending: IdMap<PendingPublish>,
    /// Completions stashed between `Dropped(SessionLost)` and `SessionLost`.
    lost: IdMap<PendingPublish>,
    /// QoS 0 messages encoded, completed once written this far.
    written_waiters: VecDeque<(u64, MessageId)>,
    /// The QoS 0 PUBLISH packets taken from the session and not yet
    /// matched with their `Delivered` event, in order: where the packet
    /// ends in the written stream, or why it was not encoded.
    ///
    /// The session reports a QoS 0 message `Delivered` as it queues its
    /// PUBLISH, one event per packet and in the same order, but the driver
    /// may see the event before the packet is encoded, or never encode it
    /// (the connection ended first, or the encoder refused it). Pairing
    /// the two in order resolves `publish` once its bytes are written, and
    /// otherwise with an error, never against bytes written earlier.
    q0_sent: VecDeque<Result<u64, ClientError>>,
    /// QoS 0 messages reported `Delivered` whose PUBLISH the driver has not
    /// taken from the session yet (see `q0_sent`).
    q0_delivered: VecDeque<MessageId>,
    encoded_total: u64,
    written_total: u64,
    subs_inflight: HashMap<PacketId, Op>,
    waiting: VecDeque<Op>,
    router: Router,
    listeners: Vec<Listener>,
    first: Option<oneshot::Sender<Result<(), ConnectionError>>>,
    ever_connected: bool,
    attempts: u32,
    /// The server supports Subscription Identifiers (5.0, CONNACK).
    sub_ids: bool,
    /// What the server's CONNACK found it no longer had (the session's
    /// `SessionLost`): subscriptions and messages in flight. Taken on the
    /// `Connected` event the session emits right after, once `sub_ids` is
    /// this connection's.
    lost_session: Option<(Filters, Vec<(MessageId, mqtt_session::Message)>)>,
    /// The session closed the connection, with this reason.
    closing: Option<CloseReason>,
    /// Stop after this connection (disconnect called, handles gone).
    stop: bool,
    disconnect_waiters: Vec<oneshot::Sender<()>>,
    /// Permits to return to the outgoing queue.
    released: usize,
}

impl Driver {
    pub(crate) fn new(
        options: ClientOptions,
        config: ClientConfig,
        shared: Arc<Shared>,
        cmd_rx: mpsc::UnboundedReceiver<Command>,
        listeners: Vec<Listener>,
        unrouted: Option<mpsc::UnboundedSender<Received>>,
        first: Option<oneshot::Sender<Result<(), ConnectionError>>>,
    ) -> Self {
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        let mut router = Router::default();
        router.set_unrouted(unrouted);
        Self {
            connector: options.connector(),
            sub_ids: options.protocol.is_v5(),
            lost_session: None,
            options,
            session: ClientSession::new(config),
            shared,
            cmd_rx,
            cmd_open: true,
            batch: Vec::with_capacity(COMMAND_BATCH),
            ack_tx,
            ack_rx,
            ack_batch: Vec::new(),
            conn_epoch: 0,
            session_epoch: 0,
            pending: IdMap::default(),
            lost: IdMap::default(),
            written_waiters: VecDeque::new(),
            q0_sent: VecDeque::new(),
            q0_delivered: VecDeque::new(),
            encoded_total: 0,
            written_total: 0,
            subs_inflight: HashMap::new(),
            waiting: VecDeque::new(),
            router,
            listeners,
            first,
            ever_connected: false,
            attempts: 0,
            closing: None,
            stop: false,
            disconnect_waiters: Vec::new(),
            released: 0,
        }
    }

    /// Connects, runs connections and reconnects until told to stop.
    pub(crate) async fn run(mut self) {
        loop {
            let connector = Arc::clone(&self.connector);
            let timeout = self.options.connect_timeout;
            let open = async move {
                match tokio::time::timeout(timeout, connector.connect_dyn()).await {
                    Ok(Ok(io)) => Ok(io),
                    Ok(Err(e)) => Err(ConnectionError::from(e)),
                    Err(_) => Err(ConnectionError::Timeout),
                }
            };
            let error = match self.offline(open).await {
                None => break,
                Some(Ok(io)) => self.run_connection(io).await,
                Some(Err(e)) => e,
            };
            self.connection_ended();
            if self.stop {
                break;
            }
            if let Some(first) = self.first.take() {
                let _ = first.send(Err(error));
                break;
            }
            let r = self.options.reconnect;
            let give_up = !r.enabled || r.max_attempts.is_some_and(|m| self.attempts >= m);
            if give_up {
                tracing::debug!("connection lost ({error}); not reconnecting");
                self.emit(Event::Disconnected {
                    error,
                    retry_in: None,
                });
                break;
            }
            let delay = r.delay(self.attempts);
            self.attempts += 1;
            tracing::debug!("connection lost ({error}); retrying in {delay:?}");
            self.emit(Event::Disconnected {
                error,
                retry_in: Some(delay),
            });
            if self.offline(tokio::time::sleep(delay)).await.is_none() {
                break;
            }
        }
        self.shutdown();
    }

    /// Runs `fut` while serving commands (there is no connection). `None`
    /// when the client is told to stop meanwhile.
    async fn offline<F: Future>(&mut self, fut: F) -> Option<F::Output> {
        let mut fut = std::pin::pin!(fut);
        poll_fn(|cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(out));
            }
            let now = Instant::now();
            self.poll_inputs(cx, now);
            self.pump_events(now);
            self.release_permits();
            if self.stop {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await
    }

    /// Takes every waiting command and acknowledgement.
    fn poll_inputs(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let mut progress = false;
        while self.cmd_open {
            let mut batch = std::mem::take(&mut self.batch);
            match self.cmd_rx.poll_recv_many(cx, &mut batch, COMMAND_BATCH) {
                Poll::Ready(0) => {
                    // Every handle is gone.
                    self.cmd_open = false;
                    self.request_stop(now);
                }
                Poll::Ready(_) => {
                    for c in batch.drain(..) {
                        self.command(now, c);
                    }
                }
                Poll::Pending => {
                    self.batch = batch;
                    break;
                }
            }
            progress = true;
            self.batch = batch;
            if self.batch.capacity() > COMMAND_BATCH * 4 {
                self.batch.shrink_to(COMMAND_BATCH);
            }
        }
        let mut acks = std::mem::take(&mut self.ack_batch);
        while let Poll::Ready(n) = self.ack_rx.poll_recv_many(cx, &mut acks, COMMAND_BATCH) {
            if n == 0 {
                break;
            }
            for ack in acks.drain(..) {
                // A message of an earlier connection (QoS 1, which the
                // server sends again as a new delivery) or session: its
                // identifier may name another message now.
                let epoch = if ack.qos2 {
                    self.session_epoch
                } else {
                    self.conn_epoch
                };
                if ack.epoch == epoch {
                    let _ = self.session.ack(now, ack.packet_id);
                }
            }
            progress = true;
        }
        self.ack_batch = acks;
        progress
    }

    fn request_stop(&mut self, now: Instant) {
        self.stop = true;
        // Also before CONNACK: the attempt is abandoned.
        self.session
            .disconnect(now, ReasonCode::NORMAL_DISCONNECTION);
    }

    fn command(&mut self, now: Instant, c: Command) {
        match c {
            Command::Publish { message, done } => {
                let qos = message.qos;
                match self.session.publish(now, message) {
                    Ok(id) => {
                        self.pending.insert(id, PendingPublish { done, qos });
                    }
                    Err(e) => {
                        self.released += 1;
                        let _ = done.send(Err(ClientError::Usage(e)));
                    }
                }
            }
            Command::Subscribe(op) => {
                let id = if self.sub_ids {
                    self.router.next_sub_id()
                } else {
                    None
                };
                let route = self
                    .router
                    .add(&op.filters, id, op.tx.clone(), Arc::clone(&op.lost));
                self.send_op(now, Op::Sub(op, route, id));
            }
            Command::Unsubscribe(op) => self.send_op(now, Op::Unsub(op)),
            Command::Listen(l) => self.listeners.push(l),
            Command::Disconnect(done) => {
                self.disconnect_waiters.push(done);
                self.request_stop(now);
            }
        }
    }

    /// Sends a SUBSCRIBE/UNSUBSCRIBE now, or keeps it for the connection.
    fn send_op(&mut self, now: Instant, op: Op) {
        if !self.session.is_connected() {
            self.waiting.push_back(op);
            return;
        }
        match op {
            Op::Sub(op, route, mut id) => {
                // An identifier if this connection's CONNACK allows one,
                // whatever the one current at `subscribe` said.
                if self.sub_ids != id.is_some() {
                    id = if self.sub_ids {
                        self.router.next_sub_id()
                    } else {
                        None
                    };
                    for (f, _) in &op.filters {
                        self.router.resubscribed(f, id);
                    }
                }
                match self.session.subscribe(now, op.filters.clone(), id) {
                    Ok(pid) => {
                        self.subs_inflight.insert(pid, Op::Sub(op, route, id));
                    }
                    Err(e) => {
                        self.router.remove_route(route);
                        let _ = op.done.send(Err(ClientError::Usage(e)));
                    }
                }
            }
            Op::Resub(filters, id) => {
                // Lost filters are logged, and their streams told.
                let _ = self.resubscribe(now, filters, id);
            }
            Op::Unsub(op) => match self.session.unsubscribe(now, op.filters.clone()) {
                Ok(pid) => {
                    self.subs_inflight.insert(pid, Op::Unsub(op));
                }
                Err(e) => {
                    let _ = op.done.send(Err(ClientError::Usage(e)));
                }
            },
        }
    }

    /// Subscribes again to `filters` (the server lost the session), with
    /// as many SUBSCRIBEs as the session accepts: a part it refuses (larger
    /// than the server's Maximum Packet Size, or holding a shared or
    /// wildcard filter the server does not support) is halved until each
    /// part is sent or is a single filter. A single filter refused is lost:
    /// logged, its streams told (see `Router::lose_filter`), and returned
    /// with why.
    fn resubscribe(
        &mut self,
        now: Instant,
        filters: Filters,
        id: Option<SubscriptionId>,
    ) -> Vec<(TopicFilter, ClientError)> {
        let id = if self.sub_ids { id } else { None };
        for (f, _) in &filters {
            self.router.resubscribed(f, id);
        }
        let mut lost = Vec::new();
        // Parts still to send, the next one last.
        let mut parts = vec![filters];
        while let Some(mut part) = parts.pop() {
            match self.session.subscribe(now, part.clone(), id) {
                Ok(pid) => {
                    self.subs_inflight.insert(pid, Op::Resub(part, id));
                }
                Err(_) if part.len() > 1 => {
                    let tail = part.split_off(part.len() / 2);
                    parts.push(tail);
                    parts.push(part);
                }
                Err(e) => {
                    let e = ClientError::Usage(e);
                    for (f, _) in part {
                        tracing::warn!("cannot subscribe again to {f}: {e}");
                        self.router.lose_filter(&f, &e);
                        lost.push((f, e.clone()));
                    }
                }
            }
        }
        lost
    }

    /// Runs one connection until it ends; returns why.
    async fn run_connection(&mut self, io: Box<dyn Transport>) -> ConnectionError {
        let now = Instant::now();
        self.closing = None;
        if let Err(e) = self.session.connect(now) {
            tracing::error!("session refused to connect: {e}");
            return ConnectionError::Closed;
        }
        let version = self.options.protocol;
        let mut decoder = Decoder::with_version(version);
        decoder.set_max_packet_size(self.options.max_incoming_packet_size);
        let mut conn = Conn {
            io,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::with_capacity(READ_CHUNK),
            decoder,
            encoder: Encoder::new(version),
            sleep: Box::pin(tokio::time::sleep(Duration::from_secs(3600))),
            deadline: None,
            needs_flush: false,
            end: None,
            linger: None,
            stall: None,
        };
        poll_fn(|cx| self.poll_connection(cx, &mut conn)).await
    }

    fn poll_connection(&mut self, cx: &mut Context<'_>, c: &mut Conn) -> Poll<ConnectionError> {
        for _ in 0..MAX_ROUNDS {
            let now = Instant::now();
            let mut progress = self.poll_inputs(cx, now);

            // Read and decode everything available.
            if c.end.is_none() && self.closing.is_none() && c.wbuf.len() < WRITE_HIGH {
                if c.rbuf.capacity() - c.rbuf.len() < READ_CHUNK / 4 {
                    c.rbuf.reserve(READ_CHUNK);
                }
                match tokio_util::io::poll_read_buf(Pin::new(&mut c.io), cx, &mut c.rbuf) {
                    Poll::Ready(Ok(0)) => {
                        c.end = Some(ConnectionError::Closed);
                        self.session.connection_lost(now);
                        progress = true;
                    }
                    Poll::Ready(Ok(_)) => {
                        progress = true;
                        loop {
                            match c.decoder.decode(&mut c.rbuf) {
                                Ok(Some(p)) => self.session.handle_packet(now, p),
                                Ok(None) => break,
                                Err(e) => {
                                    tracing::warn!("undecodable packet from the server: {e}");
                                    self.session.handle_decode_error(now, e);
                                    break;
                                }
                            }
                        }
                    }
                    Poll::Ready(Err(e)) => {
                        c.end = Some(e.into());
                        self.session.connection_lost(now);
                        progress = true;
                    }
                    Poll::Pending => {}
                }
            }

            // Timers.
            if c.deadline.is_some() && c.sleep.as_mut().poll(cx).is_ready() {
                c.deadline = None;
                self.session.handle_timeout(now);
                progress = true;
            }

            // Outputs: packets into the write buffer, events to the
            // application.
            if c.end.is_none() {
                self.pump(now, c);
            } else {
                self.pump_events(now);
            }
            self.release_permits();

            // Write.
            let mut wrote = false;
            while c.end.is_none() && !c.wbuf.is_empty() {
                match Pin::new(&mut c.io).poll_write(cx, &c.wbuf) {
                    Poll::Ready(Ok(0)) => {
                        c.end = Some(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
                    }
                    Poll::Ready(Ok(n)) => {
                        c.wbuf.advance(n);
                        self.written_total += n as u64;
                        c.needs_flush = true;
                        progress = true;
                        wrote = true;
                    }
                    Poll::Ready(Err(e)) => c.end = Some(e.into()),
                    Poll::Pending => break,
                }
            }
            if c.end.is_none() && c.wbuf.is_empty() && c.needs_flush {
                match Pin::new(&mut c.io).poll_flush(cx) {
                    Poll::Ready(Ok(())) => c.needs_flush = false,
                    Poll::Ready(Err(e)) => c.end = Some(e.into()),
                    Poll::Pending => {}
                }
            }
            self.complete_written();
            if wrote || c.wbuf.is_empty() {
                c.stall = None;
            } else if c.end.is_none() && self.closing.is_none() {
                let grace = self.options.ping_timeout.min(MAX_CLOSE_GRACE);
                let stall = c
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(grace)));
                if stall.as_mut().poll(cx).is_ready() {
                    tracing::warn!(
                        "{} bytes could not be written for {grace:?}: the server is presumed dead",
                        c.wbuf.len()
                    );
                    c.end = Some(
                        std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the server took no bytes for the ping timeout",
                        )
                        .into(),
                    );
                }
            }

            if let Some(e) = c.end.take() {
                if self.closing.is_none() {
                    self.session.connection_lost(now);
                    self.pump_events(now);
                }
                return Poll::Ready(e);
            }
            if let Some(reason) = &self.closing {
                if c.wbuf.is_empty() && !c.needs_flush {
                    let _ = Pin::new(&mut c.io).poll_shutdown(cx);
                    return Poll::Ready(reason.clone().into());
                }
                if presumed_dead(reason) {
                    // No PINGRESP (or CONNACK) in time: the server is
                    // presumed dead (MQTT 5.0 3.1.2.10: the client "SHOULD
                    // close the Network Connection"), and what is still to
                    // be written would never be read: the transport goes
                    // now, whether or not its writes are blocked.
                    return Poll::Ready(reason.clone().into());
                }
                // Bytes still to write (a DISCONNECT, messages before it) get
                // their time, but not forever: a server that stopped reading
                // would block the end of the connection, its reconnection
                // and `disconnect`. The grace restarts whenever bytes go
                // out, so a slow link still delivers all of it.
                let grace = self.options.ping_timeout.min(MAX_CLOSE_GRACE);
                match &mut c.linger {
                    None => c.linger = Some(Box::pin(tokio::time::sleep(grace))),
                    Some(s) if wrote => s.as_mut().reset(tokio::time::Instant::now() + grace),
                    Some(_) => {}
                }
                if c.linger
                    .as_mut()
                    .is_some_and(|s| s.as_mut().poll(cx).is_ready())
                {
                    tracing::debug!(
                        "{} bytes still unwritten {grace:?} after the connection closed: dropped",
                        c.wbuf.len()
                    );
                    return Poll::Ready(reason.clone().into());
                }
            }

            // Timer for the session's next deadline.
            let next = self.session.poll_timeout();
            if next != c.deadline {
                if let Some(t) = next {
                    c.sleep.as_mut().reset(t.into());
                    progress = true;
                }
                c.deadline = next;
            }
            if !progress {
                return Poll::Pending;
            }
        }
        // Let other tasks run; come back at once.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Encodes every packet the session has to send, and handles its
    /// events, until both are drained.
    fn pump(&mut self, now: Instant, c: &mut Conn) {
        loop {
            while c.end.is_none() {
                let Some(p) = self.session.poll_transmit() else {
                    break;
                };
                let q0 = matches!(&p, Packet::Publish(p) if p.qos == QoS::AtMostOnce);
                match c.encoder.encode(&p, &mut c.wbuf) {
                    Ok(n) => {
                        self.encoded_total += n as u64;
                        if q0 {
                            self.q0_sent.push_back(Ok(self.encoded_total));
                        }
                    }
                    Err(e) => {
                        tracing::error!("cannot encode {}: {e}", p.packet_type());
                        self.not_encoded(p, e, c);
                    }
                }
            }
            self.match_q0();
            if !self.pump_events(now) {
                return;
            }
        }
    }

    /// The encoder refused a packet the session produced (which the
    /// session's own checks should prevent): whoever waits for its answer
    /// gets the error instead of waiting forever.
    ///
    /// A SUBSCRIBE or UNSUBSCRIBE fails its request (and is not sent again
    /// after a reconnection; its packet identifier is freed with the
    /// connection), a QoS 0 PUBLISH its `publish`. Any other packet (a
    /// QoS 1/2 PUBLISH, an acknowledgement, CONNECT...) belongs to a flow
    /// the session would wait on in vain: the connection ends with
    /// [`ConnectionError::Encode`].
    fn not_encoded(&mut self, p: Packet, e: EncodeError, c: &mut Conn) {
        match p {
            Packet::Publish(p) if p.qos == QoS::AtMostOnce => {
                self.q0_sent.push_back(Err(ClientError::Encode(e)));
            }
            Packet::Subscribe(s) => match self.subs_inflight.remove(&s.packet_id) {
                Some(Op::Sub(op, route, _)) => {
                    self.router.remove_route(route);
                    let _ = op.done.send(Err(ClientError::Encode(e)));
                }
                Some(Op::Resub(filters, _)) => {
                    let e = ClientError::Encode(e);
                    for (f, _) in &filters {
                        tracing::warn!("cannot subscribe again to {f}: {e}");
                        self.router.lose_filter(f, &e);
                    }
                }
                Some(op) => {
                    self.subs_inflight.insert(s.packet_id, op);
                }
                None => {}
            },
            Packet::Unsubscribe(u) => match self.subs_inflight.remove(&u.packet_id) {
                Some(Op::Unsub(op)) => {
                    let _ = op.done.send(Err(ClientError::Encode(e)));
                }
                Some(op) => {
                    self.subs_inflight.insert(u.packet_id, op);
                }
                None => {}
            },
            _ => c.end = Some(ConnectionError::Encode(e)),
        }
    }

    /// Pairs QoS 0 PUBLISH packets with their `Delivered` events (see
    /// `q0_sent`): an encoded one completes once written, the others fail.
    fn match_q0(&mut self) {
        while !self.q0_sent.is_empty() && !self.q0_delivered.is_empty() {
            let (Some(sent), Some(id)) = (self.q0_sent.pop_front(), self.q0_delivered.pop_front())
            else {
                break;
            };
            match sent {
                Ok(at) => self.written_waiters.push_back((at, id)),
                Err(e) => self.finish(id, Err(e)),
            }
        }
    }

    /// Handles the session's events; true if there were any.
    fn pump_events(&mut self, now: Instant) -> bool {
        let mut any = false;
        while let Some(e) = self.session.poll_event() {
            any = true;
            self.on_event(now, e);
        }
        any
    }

    fn emit(&mut self, e: Event) {
        if !self.listeners.is_empty() {
            self.listeners.retain_mut(|l| l.send(&e));
        }
    }

    fn on_event(&mut self, now: Instant, e: SessionEvent) {
        if !self.listeners.is_empty() {
            self.emit(Event::Protocol(e.clone()));
        }
        match e {
            SessionEvent::Delivered { id, reason } => {
                if let Some(p) = self.pending.get(&id) {
                    if p.qos == QoS::AtMostOnce {
                        // Written, or not, with its PUBLISH (see `q0_sent`).
                        self.q0_delivered.push_back(id);
                        self.match_q0();
                        return;
                    }
                }
                let r = match reason {
                    // Only a PUBCOMP carries 0x92 (the codec rejects it in
                    // PUBACK and PUBREC): the server no longer knew the
                    // packet id of our PUBREL, because it had completed the
                    // flow and its PUBCOMP was lost with the connection
                    // before we sent PUBREL again. The message was accepted
                    // at PUBREC; "this is not an error during recovery"
                    // (MQTT 5.0, 3.7.2.1).
                    ReasonCode::PacketIdentifierNotFound => Ok(ReasonCode::Success),
                    r if r.is_error() => Err(ClientError::Refused(r)),
                    r => Ok(r),
                };
                self.finish(id, r);
            }
            SessionEvent::Message { message, ack } => {
                let qos2 = message.qos == QoS::ExactlyOnce;
                let token = ack.map(|packet_id| {
                    Arc::new(AckToken {
                        ack: Ack {
                            packet_id,
                            epoch: if qos2 {
                                self.session_epoch
                            } else {
                                self.conn_epoch
                            },
                            qos2,
                        },
                        tx: self.ack_tx.clone(),
                    })
                });
                self.router.dispatch(message, token);
            }
            SessionEvent::Dropped { id, reason } => {
                if reason == DropReason::SessionLost {
                    if let Some(p) = self.pending.remove(&id) {
                        self.lost.insert(id, p);
                    }
                } else {
                    self.finish(id, Err(ClientError::Dropped(reason)));
                }
            }
            SessionEvent::Connected {
                session_present,
                connack,
            } => {
                self.conn_epoch += 1;
                if !session_present {
                    self.session_epoch += 1;
                }
                self.shared.connected.store(true, Ordering::Relaxed);
                self.sub_ids = self.options.protocol.is_v5()
                    && connack
                        .properties
                        .subscription_identifiers_available
                        .unwrap_or(true);
                if let Some((subscriptions, unacknowledged)) = self.lost_session.take() {
                    self.session_lost(now, subscriptions, unacknowledged);
                }
                let attempts = std::mem::take(&mut self.attempts);
                if let Some(first) = self.first.take() {
                    let _ = first.send(Ok(()));
                }
                if self.ever_connected {
                    self.emit(Event::Reconnected {
                        session_present,
                        attempts,
                    });
                } else {
                    self.ever_connected = true;
                    self.emit(Event::Connected { session_present });
                }
                let waiting = std::mem::take(&mut self.waiting);
                for op in waiting {
                    self.send_op(now, op);
                }
            }
            // Handled with the `Connected` that follows: the capabilities
            // of the previous server must not decide how to subscribe again.
            SessionEvent::SessionLost {
                subscriptions,
                unacknowledged,
            } => self.lost_session = Some((subscriptions, unacknowledged)),
            SessionEvent::SubAck { packet_id, reasons } => {
                match self.subs_inflight.remove(&packet_id) {
                    Some(Op::Sub(op, route, _)) => {
                        for ((f, _), r) in op.filters.iter().zip(&reasons) {
                            if r.is_error() {
                                self.router.refused(route, f);
                            }
                        }
                        let _ = op.done.send(Ok(reasons));
                    }
                    Some(Op::Resub(filters, _)) => {
                        for ((f, _), r) in filters.iter().zip(&reasons) {
                            if r.is_error() {
                                tracing::warn!("subscribing again to {f} refused: {r:?}");
                                self.router.lose_filter(f, &ClientError::Refused(*r));
                            }
                        }
                    }
                    Some(op) => {
                        self.subs_inflight.insert(packet_id, op);
                    }
                    None => {}
                }
            }
            SessionEvent::UnsubAck { packet_id, reasons } => {
                if let Some(Op::Unsub(op)) = self.subs_inflight.remove(&packet_id) {
                    // 3.1.1 has no reasons: every filter is unsubscribed.
                    let reasons = if reasons.is_empty() {
                        vec![ReasonCode::Success; op.filters.len()]
                    } else {
                        reasons
                    };
                    // At 5.0 (one reason per filter, which the session
                    // checked), 0x80 or above means the server kept that
                    // subscription: its messages keep coming, and keep
                    // their streams. 0x11 No subscription existed is a
                    // success.
                    for (f, r) in op.filters.iter().zip(&reasons) {
                        if !r.is_error() {
                            self.router.remove_filter(f);
                        }
                    }
                    let _ = op.done.send(Ok(reasons));
                }
            }
            SessionEvent::Closed(reason) => {
                self.shared.connected.store(false, Ordering::Relaxed);
                self.closing = Some(reason);
            }
            _ => {}
        }
    }

    /// The server had no session: subscribe again, publish again.
    fn session_lost(
        &mut self,
        now: Instant,
        subscriptions: Vec<(TopicFilter, SubscriptionOptions)>,
        unacknowledged: Vec<(MessageId, mqtt_session::Message)>,
    ) {
        // One SUBSCRIBE per Subscription Identifier, so that routing by
        // identifier keeps working (split if too large).
        let mut groups: Vec<(Option<SubscriptionId>, Filters)> = Vec::new();
        let mut resubscribed: Vec<TopicFilter> =
            subscriptions.iter().map(|(f, _)| f.clone()).collect();
        let mut not_resubscribed = Vec::new();
        for (f, o) in subscriptions {
            let id = self.router.sub_id(&f);
            match groups.iter_mut().find(|(i, _)| *i == id) {
                Some((_, v)) => v.push((f, o)),
                None => groups.push((id, vec![(f, o)])),
            }
        }
        for (id, filters) in groups {
            if self.session.is_connected() {
                not_resubscribed.extend(self.resubscribe(now, filters, id));
            } else {
                // Closed since its CONNACK: for the next connection.
                self.waiting.push_back(Op::Resub(filters, id));
            }
        }
        resubscribed.retain(|f| !not_resubscribed.iter().any(|(l, _)| l == f));
        let mut republished = 0;
        for (old, message) in unacknowledged {
            let Some(p) = self.lost.remove(&old) else {
                continue;
            };
            if !self.options.republish_on_session_lost {
                self.released += 1;
                let _ = p
                    .done
                    .send(Err(ClientError::Dropped(DropReason::SessionLost)));
                continue;
            }
            match self.session.publish(now, message) {
                Ok(id) => {
                    republished += 1;
                    self.pending.insert(id, p);
                }
                Err(e) => {
                    self.released += 1;
                    let _ = p.done.send(Err(ClientError::Usage(e)));
                }
            }
        }
        for (_, p) in self.lost.drain() {
            self.released += 1;
            let _ = p
                .done
                .send(Err(ClientError::Dropped(DropReason::SessionLost)));
        }
        self.emit(Event::SessionLost {
            resubscribed,
            not_resubscribed,
            republished,
        });
    }

    fn finish(&mut self, id: MessageId, r: Result<ReasonCode, ClientError>) {
        if let Some(p) = self.pending.remove(&id) {
            self.released += 1;
            let _ = p.done.send(r);
        }
    }

    /// Completes the QoS 0 messages written so far.
    fn complete_written(&mut self) {
        while let Some(&(at, id)) = self.written_waiters.front() {
            if at > self.written_total {
                break;
            }
            self.written_waiters.pop_front();
            self.finish(id, Ok(ReasonCode::Success));
        }
        self.release_permits();
    }

    fn release_permits(&mut self) {
        if self.released > 0 {
            self.shared.permits.add_permits(self.released);
            self.released = 0;
        }
    }

    /// The connection is over: what belonged to it is failed or kept for
    /// the next one.
    fn connection_ended(&mut self) {
        self.shared.connected.store(false, Ordering::Relaxed);
        let now = Instant::now();
        self.session.connection_lost(now);
        while let Some(p) = self.session.poll_transmit() {
            if matches!(&p, Packet::Publish(p) if p.qos == QoS::AtMostOnce) {
                self.q0_sent.push_back(Err(ClientError::ConnectionLost));
            }
        }
        self.pump_events(now);
        self.match_q0();
        // Unpaired (which the session's one event per packet rules out):
        // not written either.
        self.q0_sent.clear();
        while let Some(id) = self.q0_delivered.pop_front() {
            self.finish(id, Err(ClientError::ConnectionLost));
        }
        // QoS 0 messages encoded but not written are lost.
        while let Some((_, id)) = self.written_waiters.pop_front() {
            self.finish(id, Err(ClientError::ConnectionLost));
        }
        self.written_total = self.encoded_total;
        // SUBSCRIBE / UNSUBSCRIBE without an answer are sent again.
        let mut inflight: Vec<_> = self.subs_inflight.drain().collect();
        inflight.sort_by_key(|(pid, _)| *pid);
        for (_, op) in inflight.into_iter().rev() {
            self.waiting.push_front(op);
        }
        self.release_permits();
    }

    /// The client stops: every request still open fails.
    fn shutdown(&mut self) {
        self.shared.connected.store(false, Ordering::Relaxed);
        self.shared.permits.close();
        self.cmd_rx.close();
        while let Ok(c) = self.cmd_rx.try_recv() {
            match c {
                Command::Publish { done, .. } => {
                    let _ = done.send(Err(ClientError::Closed));
                }
                Command::Subscribe(op) => {
                    let _ = op.done.send(Err(ClientError::Closed));
                }
                Command::Unsubscribe(op) => {
                    let _ = op.done.send(Err(ClientError::Closed));
                }
                Command::Listen(_) => {}
                Command::Disconnect(done) => {
                    let _ = done.send(());
                }
            }
        }
        for (_, p) in self.pending.drain().chain(self.lost.drain()) {
            let _ = p.done.send(Err(ClientError::Closed));
        }
        let ops = self
            .waiting
            .drain(..)
            .chain(self.subs_inflight.drain().map(|(_, op)| op));
        for op in ops {
            match op {
                Op::Sub(op, ..) => {
                    let _ = op.done.send(Err(ClientError::Closed));
                }
                Op::Unsub(op) => {
                    let _ = op.done.send(Err(ClientError::Closed));
                }
                Op::Resub(..) => {}
            }
        }
        self.router.close_all();
        if let Some(first) = self.first.take() {
            let _ = first.send(Err(ConnectionError::ClosedLocally));
        }
        self.emit(Event::Stopped);
        self.listeners.clear();
        for d in self.disconnect_waiters.drain(..) {
            let _ = d.send(());
        }
    }
}

/// Whether the session closed the connection because the server stopped
/// answering (no PINGRESP, no CONNACK in time): nothing more is written.
fn presumed_dead(reason: &CloseReason) -> bool {
    matches!(
        reason,
        CloseReason::ProtocolError(ProtocolError::KeepAliveTimeout | ProtocolError::ConnectTimeout)
    )
}
