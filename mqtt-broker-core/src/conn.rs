//! One task per connection: socket reads and writes, decoding, and the
//! async hooks. Everything else happens in [`State`](crate::state::State).

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use mqtt_codec::{DecodeError, Decoder, Packet, ReasonCode};
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::broker::Shared;
use crate::state::{Lent, Output, Pending};
use crate::stats::Counters;

/// Bytes reserved for a read, at least and at most. The size adapts: it
/// doubles when a read fills the buffer and halves when reads are small, so
/// that a client sending a packet now and then pins small buffers (decoded
/// packets are slices of the read buffer, and CONNECT stays with the session)
/// while a busy publisher reads in large batches. An idle connection holds no
/// read buffer at all: it waits for readiness first and drops the buffer once
/// it is drained.
const READ_MIN: usize = 256;
const READ_MAX: usize = 64 * 1024;

/// How often a publisher held back by a congested subscriber looks again
/// (it is also woken when a congested buffer is taken for writing).
const PRESSURE_POLL: std::time::Duration = std::time::Duration::from_millis(5);

/// Packets fed to the state per lock acquisition, at most.
const BATCH: usize = 512;

/// A connection not read for its own backlog (see `run`) tells the state
/// so, and then that its output still moves at most this often: Keep
/// Alive waits meanwhile (see `State::output_moved`).
const MOVED_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

enum Ready {
    Write(io::Result<()>),
    Read(io::Result<()>),
    Output(Output),
    Relief,
}

/// Serves connection `conn`, opened in the state for `stream` (which the
/// state shares for write-through, see `state::Lent`), until it closes or
/// its task is aborted (see [`Broker::shutdown`](crate::Broker::shutdown)).
pub(crate) async fn run(shared: Arc<Shared>, stream: Arc<TcpStream>, conn: usize) {
    let guard = Closer { shared, conn };
    let shared = &guard.shared;
    let mut decoder = Decoder::new();
    decoder.set_max_packet_size(shared.config.max_packet_size);
    let mut inbuf = BytesMut::new();
    let mut packets: Vec<Packet> = Vec::new();
    let mut out = Bytes::new();
    let mut closing = false;
    let mut reading = true;
    let mut chunk = READ_MIN;
    // Congested subscribers this connection's last input was routed to.
    let mut held: Vec<usize> = Vec::new();
    // Bytes of this connection's output the state held after its last
    // input (not taken because `out` was not written yet).
    let mut queued = 0usize;
    // While it is not read for its own backlog: when to tell the state
    // next that its output moves.
    let mut paused: Option<Instant> = None;

    loop {
        let mut process = false;
        // Readiness is polled directly (no stored futures): the task of an
        // idle connection is a few hundred bytes.
        // Backpressure: while subscribers this connection published to are
        // congested (and draining), it is not read; it still writes.
        let held_back = !held.is_empty();
        // Nor is it read while its own output is over `max_pending_bytes`:
        // the answers to what it sends (PINGRESP, PUBACK, SUBACK, its own
        // messages) cannot be dropped, so a client that sends without
        // reading would otherwise make them pile up without bound. It is
        // read again once what it holds drains below the limit. (With `out`
        // empty it is read: what the state holds is taken with the input,
        // at the cost of the answers to one more read.)
        let backlog =
            !out.is_empty() && out.len().saturating_add(queued) >= shared.config.max_pending_bytes;
        if backlog != paused.is_some() {
            // Rare: only a client that reads slower than it is answered or
            // sent to, beyond the limit, gets here.
            paused = backlog.then(|| Instant::now() + MOVED_EVERY);
            shared.lock().output_moved(conn, backlog);
        }
        let (write, read) = (
            !out.is_empty(),
            reading && !closing && !held_back && !backlog,
        );
        let ready = {
            let mut relief = held_back.then(|| {
                Box::pin(tokio::time::timeout(
                    PRESSURE_POLL,
                    shared.drained.notified(),
                ))
            });
            std::future::poll_fn(|cx| {
                if let Some(r) = relief.as_mut() {
                    if r.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Ready::Relief);
                    }
                }
                if write {
                    if let Poll::Ready(r) = stream.poll_write_ready(cx) {
                        return Poll::Ready(Ready::Write(r));
                    }
                }
                if read {
                    if let Poll::Ready(r) = stream.poll_read_ready(cx) {
                        return Poll::Ready(Ready::Read(r));
                    }
                }
                if !write {
                    // Nothing to write: take what routing encoded for this
                    // connection, or have it wake this task.
                    if let Some(o) = shared.lock().poll_output(Instant::now(), conn, cx.waker()) {
                        return Poll::Ready(Ready::Output(o));
                    }
                }
                Poll::Pending
            })
            .await
        };
        match ready {
            Ready::Write(r) => {
                if r.is_err() {
                    break;
                }
                match stream.try_write(&out) {
                    Ok(n) => {
                        Counters::add(&shared.counters.bytes_sent, n as u64);
                        if let Some(due) = &mut paused {
                            // Not read, but its client reads: Keep Alive
                            // waits (see `State::output_moved`).
                            let now = Instant::now();
                            if now >= *due {
                                *due = now + MOVED_EVERY;
                                shared.lock().output_moved(conn, true);
                            }
                        }
                        out.advance(n);
                        if out.is_empty() {
                            // Release the buffer now, not at the next write.
                            out = Bytes::new();
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => break,
                }
            }
            Ready::Read(r) => {
                if r.is_err() {
                    break;
                }
                inbuf.reserve(chunk);
                let room = inbuf.capacity() - inbuf.len();
                // A short read drained the socket: saying so from `try_io`
                // clears its readiness at once, which saves the read that
                // would only find it empty. The clearing is skipped if a
                // readiness event came in since the read began, so no data
                // is left unnoticed.
                let mut got = None;
                let r = stream.try_io(Interest::READABLE, || {
                    let n = stream.try_read_buf(&mut inbuf)?;
                    got = Some(n);
                    if n > 0 && n < room {
                        Err(io::ErrorKind::WouldBlock.into())
                    } else {
                        Ok(n)
                    }
                });
                match got.map_or(r, Ok) {
                    Ok(0) => break,
                    Ok(n) => {
                        if n == room {
                            chunk = (chunk * 2).min(READ_MAX);
                        } else if n < chunk / 4 {
                            chunk = (chunk / 2).max(READ_MIN);
                        }
                        Counters::add(&shared.counters.bytes_received, n as u64);
                        process = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        // A spurious wake-up must not leave an idle
                        // connection holding a read buffer.
                        if inbuf.is_empty() {
                            inbuf = BytesMut::new();
                        }
                    }
                    Err(_) => break,
                }
            }
            Ready::Output(o) => {
                // All of it taken.
                queued = 0;
                if !accept_output(shared, o, &mut out, &mut closing) {
                    break;
                }
            }
            Ready::Relief => {
                if !shared
                    .lock()
                    .still_congested(Instant::now(), conn, &mut held)
                {
                    // Decode what was left when reading stopped.
                    process = !inbuf.is_empty();
                }
            }
        }
        if process {
            let (mut ok, mut woke, mut hooked) = (true, false, false);
            // Not kept across the hook's await: the task stays smaller.
            let taken = loop {
                // Rare (CONNECT with an authenticator, or an authorizer):
                // boxed, and built in this block so that only the box
                // outlives it, keeping the task of an idle connection small.
                let hook = {
                    let step = input(
                        shared,
                        conn,
                        &mut decoder,
                        &mut inbuf,
                        &mut packets,
                        &mut held,
                        out.is_empty(),
                    );
                    ok &= step.ok;
                    woke |= step.woke;
                    if let Some(q) = step.queued {
                        queued = q;
                    }
                    let Some(mut p) = step.hook else {
                        break step.taken;
                    };
                    if let Pending::Connect(info) = &mut p {
                        // Asked here rather than kept: the task of an idle
                        // connection stays smaller.
                        info.peer = stream.peer_addr().ok();
                    }
                    Box::pin(resolve_all(shared, conn, p))
                };
                hook.await;
                hooked = true;
                shared.lock().take_pressure(conn, &mut held);
                if !ok || !held.is_empty() {
                    break None;
                }
            };
            // A step that asked a hook took no output, nor did the step
            // after it if it found no packet left: take it now, or the
            // answers to this input go uncounted while `out` is empty and
            // the connection is read again (see `backlog` above).
            let taken = match taken {
                None if hooked && out.is_empty() => {
                    let mut st = shared.lock();
                    let o = st.output(Instant::now(), conn);
                    queued = st.queued(conn);
                    Some(o)
                }
                t => t,
            };
            reading = ok;
            if inbuf.is_empty() {
                inbuf = BytesMut::new();
            }
            // Taken under the same lock as the input.
            if let Some(o) = taken {
                if !accept_output(shared, o, &mut out, &mut closing) {
                    break;
                }
            }
            if woke {
                // Subscribers this input reached write first: their tasks
                // run next on this thread, and a message is not held back
                // behind this connection's own acknowledgements.
                tokio::task::yield_now().await;
            }
        }
    }
    // `guard` closes the connection.
}

/// Closes a connection in the state when its task ends, however it ends:
/// also when the task is aborted at an await (see
/// [`Broker::shutdown`](crate::Broker::shutdown)), so that the state keeps
/// no slot (nor socket) of a task that is gone.
struct Closer {
    shared: Arc<Shared>,
    conn: usize,
}

impl Drop for Closer {
    fn drop(&mut self) {
        self.shared.lock().close(Instant::now(), self.conn);
        self.shared
            .counters
            .connections
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Takes `o` as the bytes to write next; false when the connection is
/// closing and everything is written.
fn accept_output(shared: &Shared, o: Output, out: &mut Bytes, closing: &mut bool) -> bool {
    if o.relieved {
        shared.drained.notify_waiters();
    }
    *closing = o.closing;
    match o.bytes {
        Some(b) => {
            *out = b;
            true
        }
        None => !o.closing,
    }
}

/// What [`input`] did.
struct Step {
    /// False once the input is unusable (decode error).
    ok: bool,
    /// The connection's output, taken under the same lock.
    taken: Option<Output>,
    /// An async hook to run before the rest of the input.
    hook: Option<Pending>,
    /// Routing gave bytes to other connections' waiting tasks.
    woke: bool,
    /// Bytes of the connection's output left in the state (not taken),
    /// as of the last lock; `None` if the lock was not taken.
    queued: Option<usize>,
}

/// Decodes what `inbuf` holds and feeds it to the state, batch by batch,
/// until a batch meets congested subscribers (listed in `held`; the rest
/// stays in `inbuf`) or needs an async hook. When `take` is set, the
/// connection's output is taken under the same lock.
fn input(
    shared: &Shared,
    conn: usize,
    decoder: &mut Decoder,
    inbuf: &mut BytesMut,
    packets: &mut Vec<Packet>,
    held: &mut Vec<usize>,
    take: bool,
) -> Step {
    let mut woke = false;
    let mut queued = None;
    loop {
        let mut error: Option<DecodeError> = None;
        while packets.len() < BATCH {
            match decoder.decode(inbuf) {
                Ok(Some(p)) => packets.push(p),
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        if packets.is_empty() && error.is_none() {
            // The input ended with a full batch, whose lock left the output
            // in the state (more input was to come): take it now. Otherwise
            // `run`, finding `out` empty, reads again, and while every read
            // ends on a batch boundary (a full socket of small packets) the
            // answers pile up unseen by the `max_pending_bytes` check.
            let taken = (take && queued.is_some()).then(|| {
                let mut st = shared.lock();
                let o = st.output(Instant::now(), conn);
                queued = Some(st.queued(conn));
                o
            });
            return Step {
                ok: true,
                taken,
                hook: None,
                woke,
                queued,
            };
        }
        let batch = packets.len();
        let full = batch >= BATCH;
        let failed = error.is_some();
        let (hook, taken, lent) = {
            let mut st = shared.lock();
            let now = Instant::now();
            let mut pending = st.input(now, conn, packets, error);
            if shared.open_door && matches!(pending, Some(Pending::Connect(_))) {
                // No hook to ask: accept without leaving the lock.
                pending = st.connect_decided(now, conn, Ok(()));
            }
            st.take_pressure(conn, held);
            woke |= st.take_woken();
            let direct = pending.is_none();
            let taken =
                (direct && take && (!full || !held.is_empty())).then(|| st.output(now, conn));
            queued = Some(st.queued(conn));
            let lent = st.take_lent();
            if st.take_relief() {
                shared.drained.notify_waiters();
            }
            (pending, taken, lent)
        };
        if !lent.is_empty() {
            write_lent(shared, lent);
        }
        if hook.is_some() || failed || !held.is_empty() || !full {
            if batch < 8 {
                // A quiet connection gives the memory of a burst back.
                *packets = Vec::new();
            }
            return Step {
                ok: !failed,
                taken,
                hook,
                woke,
                queued,
            };
        }
    }
}

/// Writes bytes lent by idle subscribers' connections to their sockets
/// (write-through, see `state::Lent`), and gives back what did not fit.
fn write_lent(shared: &Shared, mut lent: Vec<Lent>) {
    for l in lent.iter_mut() {
        while !l.bytes.is_empty() {
            match l.stream.try_write(&l.bytes) {
                Ok(n) if n > 0 => {
                    Counters::add(&shared.counters.bytes_sent, n as u64);
                    l.bytes.advance(n);
                }
                // Full or failed: the connection's own task takes over (and
                // meets the error itself).
                Ok(_) | Err(_) => break,
            }
        }
    }
    shared.lock().give_back(Instant::now(), lent);
}

async fn resolve_all(shared: &Shared, conn: usize, first: Pending) {
    let mut pending = Some(first);
    while let Some(p) = pending {
        pending = resolve(shared, conn, p).await;
    }
}

/// Runs the async hook a [`Pending`] needs, then gives its answer back.
async fn resolve(shared: &Shared, conn: usize, pending: Pending) -> Option<Pending> {
    match pending {
        Pending::Connect(info) => {
            let mut decision = shared.authenticator.authenticate(&info).await;
            // The will is published on the client's behalf later: it must be
            // a topic the client may publish to.
            if let (Ok(()), Some(a), Some(topic)) =
                (decision, &shared.authorizer, info.will_topic.as_ref())
            {
                let client = crate::hooks::ClientInfo {
                    client_id: info.client_id.clone(),
                    username: info.username.clone(),
                };
                if !a.authorize_publish(&client, topic).await {
                    decision = Err(ReasonCode::NotAuthorized);
                }
            }
            shared
                .lock()
                .connect_decided(Instant::now(), conn, decision)
        }
        Pending::Subscribe(client, request) => {
            let mut reasons = request.grant_all();
            if let Some(a) = &shared.authorizer {
                for (entry, reason) in request.entries.iter().zip(reasons.iter_mut()) {
                    if let Ok(filter) = &entry.filter {
                        if !reason.is_error() && !a.authorize_subscribe(&client, filter).await {
                            *reason = ReasonCode::NotAuthorized;
                        }
                    }
                }
            }
            shared
                .lock()
                .subscribe_decided(Instant::now(), conn, &request, reasons)
        }
        Pending::Publish(client, message) => {
            let allowed = match &shared.authorizer {
                Some(a) => a.authorize_publish(&client, &message.topic).await,
                None => true,
            };
            shared
                .lock()
                .publish_decided(Instant::now(), conn, message, allowed)
        }
    }
}
