//! Latency at a fixed rate: one publisher paced by a thread with a
//! high-resolution sleep, one subscriber blocked in `read`, each on its own
//! OS thread, so that the measurement includes as little scheduling as
//! possible. The send time travels in the payload.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::{Bytes, BytesMut};
use mqtt_codec::{Encoder, Publish, PublishTopic, QoS};

use crate::conn::{BlockingConn, ConnOpts};
use crate::proto::{PacketIds, Receiver, SenderEvent, encode_stamped, sender_handle};
use crate::report::{Report, quantile};

/// The latency scenario.
#[derive(Debug, Clone)]
pub(crate) struct LatencyPlan {
    pub(crate) qos: QoS,
    pub(crate) payload: usize,
    pub(crate) inflight: u16,
    pub(crate) rate: u32,
    pub(crate) duration: Duration,
    pub(crate) warmup: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) topic: String,
}

fn ns_since(base: Instant) -> u64 {
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

struct Window {
    ids: PacketIds,
    acked: u64,
    closed: bool,
}

struct SubOut {
    recv: Receiver,
    last_delivery: Option<Instant>,
    timed_out: bool,
    error: Option<String>,
}

fn subscriber_loop(
    mut conn: BlockingConn,
    mut recv: Receiver,
    base: Instant,
    idle: Duration,
    started: &AtomicBool,
) -> SubOut {
    let mut out_last = None;
    let mut timed_out = false;
    let r = (|| -> Result<()> {
        conn.stream
            .set_read_timeout(Some(Duration::from_millis(100)))?;
        let mut last_progress = Instant::now();
        loop {
            let got = conn.read_more()?;
            let now_ns = ns_since(base);
            let now = Instant::now();
            if got {
                let before = recv.counts.unique;
                let mut any = false;
                while let Some(p) = conn.dec.decode(&mut conn.rbuf)? {
                    any |= recv.handle(&conn.enc, p, &mut conn.wbuf, now_ns)?;
                }
                conn.flush()?;
                if recv.counts.unique > before {
                    out_last = Some(now);
                }
                if any {
                    last_progress = now;
                }
                if recv.done() {
                    return Ok(());
                }
            }
            if !started.load(Ordering::Acquire) {
                last_progress = now;
            } else if now.duration_since(last_progress) >= idle {
                timed_out = true;
                return Ok(());
            }
        }
    })();
    SubOut {
        recv,
        last_delivery: out_last,
        timed_out,
        error: r.err().map(|e| format!("subscriber: {e:#}")),
    }
}

/// Reads acknowledgements for the publisher; answers PUBREC with PUBREL.
fn ack_loop(
    mut conn: BlockingConn,
    writer: &Mutex<std::net::TcpStream>,
    window: &(Mutex<Window>, Condvar),
    stop: &AtomicBool,
) -> Result<()> {
    conn.stream
        .set_read_timeout(Some(Duration::from_millis(50)))?;
    let enc = conn.enc;
    let mut out = BytesMut::new();
    let mut unexpected = 0u64;
    let r = (|| -> Result<()> {
        while !stop.load(Ordering::Acquire) {
            if !conn.read_more()? {
                continue;
            }
            let (lock, cv) = window;
            let mut w = lock.lock().map_err(|_| anyhow!("lock poisoned"))?;
            while let Some(p) = conn.dec.decode(&mut conn.rbuf)? {
                if sender_handle(&mut w.ids, &enc, p, &mut out, &mut unexpected)?
                    == SenderEvent::Completed
                {
                    w.acked += 1;
                }
            }
            drop(w);
            cv.notify_all();
            if !out.is_empty() {
                use std::io::Write;
                let mut s = writer.lock().map_err(|_| anyhow!("lock poisoned"))?;
                s.write_all(&out)?;
                out.clear();
            }
        }
        Ok(())
    })();
    let (lock, cv) = window;
    lock.lock().unwrap_or_else(PoisonError::into_inner).closed = true;
    cv.notify_all();
    r
}

/// Runs the latency scenario.
pub(crate) fn run(opts: &ConnOpts, plan: &LatencyPlan) -> Result<Report> {
    let base = Instant::now();
    let total_secs = plan.warmup.as_secs_f64() + plan.duration.as_secs_f64();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let count = (f64::from(plan.rate) * total_secs)
        .round()
        .min(f64::from(u32::MAX)) as u32;
    if count == 0 || plan.rate == 0 {
        bail!("rate x duration gives no messages");
    }
    let pid = std::process::id();
    let mut sub = BlockingConn::connect(opts, &format!("mqtt-bench-{pid}-latency-sub"))?;
    sub.subscribe(&plan.topic, plan.qos)?;
    let publ = BlockingConn::connect(opts, &format!("mqtt-bench-{pid}-latency-pub"))?;
    let window_size = usize::from(plan.inflight.min(publ.receive_max).max(1));

    // Messages sent after the warm-up are measured.
    let started = Arc::new(AtomicBool::new(false));
    let t_start = Instant::now();
    let warm_from_ns = ns_since(base) + u64::try_from(plan.warmup.as_nanos()).unwrap_or(0);
    let mut recv = Receiver::new(&[(0, count)]);
    recv.record_latency(warm_from_ns, usize::try_from(count).unwrap_or(0));
    let idle = plan.idle_timeout;
    let st = started.clone();
    let sub_thread = thread::Builder::new()
        .name("latency-sub".into())
        .spawn(move || subscriber_loop(sub, recv, base, idle, &st))?;

    let writer = Arc::new(Mutex::new(publ.stream.try_clone()?));
    let window = Arc::new((
        Mutex::new(Window {
            ids: PacketIds::new(),
            acked: 0,
            closed: false,
        }),
        Condvar::new(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let enc: Encoder = publ.enc;
    let ack_thread = if plan.qos == QoS::AtMostOnce {
        None
    } else {
        let (w, win, st) = (writer.clone(), window.clone(), stop.clone());
        Some(
            thread::Builder::new()
                .name("latency-acks".into())
                .spawn(move || ack_loop(publ, &w, &win, &st))?,
        )
    };

    let sent = AtomicU64::new(0);
    let interval = Duration::from_secs_f64(1.0 / f64::from(plan.rate));
    let mut errors = Vec::new();
    let pub_result = (|| -> Result<()> {
        use std::io::Write;
        let topic = PublishTopic::try_from(plan.topic.clone()).context("topic")?;
        let mut publish = Publish::new(topic, Bytes::from(vec![0x2Au8; plan.payload]));
        publish.qos = plan.qos;
        let mut buf = BytesMut::with_capacity(4096);
        started.store(true, Ordering::Release);
        let t0 = Instant::now();
        let mut next = t0;
        for seq in 0..count {
            let now = Instant::now();
            if next > now {
                thread::sleep(next - now);
            }
            next += interval;
            if plan.qos != QoS::AtMostOnce {
                let (lock, cv) = &*window;
                let mut w = lock.lock().map_err(|_| anyhow!("lock poisoned"))?;
                while w.ids.in_flight() >= window_size && !w.closed {
                    let (g, to) = cv
                        .wait_timeout(w, plan.idle_timeout)
                        .map_err(|_| anyhow!("lock poisoned"))?;
                    w = g;
                    if to.timed_out() {
                        bail!("no acknowledgement for {:?}", plan.idle_timeout);
                    }
                }
                if w.closed {
                    bail!("acknowledgement reader stopped");
                }
                publish.packet_id = Some(w.ids.alloc().ok_or_else(|| anyhow!("no packet id"))?);
            }
            encode_stamped(&enc, &publish, &mut buf, 0, seq, ns_since(base))?;
            let mut s = writer.lock().map_err(|_| anyhow!("lock poisoned"))?;
            s.write_all(&buf)?;
            drop(s);
            buf.clear();
            sent.store(u64::from(seq) + 1, Ordering::Relaxed);
        }
        Ok(())
    })();
    let send_secs = t_start.elapsed().as_secs_f64();
    if let Err(e) = pub_result {
        errors.push(format!("publisher: {e:#}"));
    }

    let sub_out = sub_thread
        .join()
        .map_err(|_| anyhow!("subscriber thread panicked"))?;
    stop.store(true, Ordering::Release);
    if let Some(h) = ack_thread {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(format!("acks: {e:#}")),
            Err(_) => errors.push("ack thread panicked".to_owned()),
        }
    }
    if let Some(e) = sub_out.error {
        errors.push(e);
    }

    let mut rep = Report {
        scenario: "latency",
        qos: Some(plan.qos as u8),
        payload: plan.payload,
        publishers: 1,
        subscribers: 1,
        ..Report::default()
    };
    rep.published = sent.load(Ordering::Relaxed);
    if plan.qos != QoS::AtMostOnce {
        let (lock, _) = &*window;
        rep.acked = Some(lock.lock().unwrap_or_else(PoisonError::into_inner).acked);
    }
    let c = &sub_out.recv.counts;
    rep.expected = c.expected;
    rep.delivered = c.unique;
    rep.lost = c.expected.saturating_sub(c.unique);
    rep.duplicated = c.duplicated;
    rep.unexpected = c.unexpected;
    rep.qos2_id_reuse = c.qos2_id_reuse;
    rep.qos2_retransmits = c.qos2_retransmits;
    rep.timed_out = sub_out.timed_out;
    rep.seconds = sub_out
        .last_delivery
        .map_or(0.0, |l| l.duration_since(t_start).as_secs_f64());
    #[allow(clippy::cast_precision_loss)]
    {
        if rep.seconds > 0.0 {
            rep.rate = Some(rep.delivered as f64 / rep.seconds);
        }
        if send_secs > 0.0 {
            rep.publish_rate = Some(rep.published as f64 / send_secs);
        }
    }
    let mut lat = sub_out.recv.latencies_us;
    lat.sort_unstable();
    let ms = |us: Option<u32>| us.map(|u| f64::from(u) / 1000.0);
    rep.p50_ms = ms(quantile(&lat, 0.50));
    rep.p99_ms = ms(quantile(&lat, 0.99));
    rep.max_ms = ms(lat.last().copied());
    rep.samples = Some(lat.len() as u64);
    rep.errors = errors;
    Ok(rep)
}
