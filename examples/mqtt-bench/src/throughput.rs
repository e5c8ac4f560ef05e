//! Throughput scenarios (fan-in, fan-out, pairwise): a set of publishers,
//! each on its own topic, and a set of subscribers, each expecting the
//! messages of some publishers. One tokio task per connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use mqtt_codec::{Publish, PublishTopic, QoS};
use tokio::sync::{mpsc, watch};
use tokio::time::timeout_at;

use crate::conn::{Conn, ConnOpts, WRITE_BATCH};
use crate::proto::{PacketIds, Receiver, RecvCounts, SenderEvent, encode_stamped, sender_handle};
use crate::report::Report;

/// One publisher: `count` messages on `topic`, identified as `id`.
#[derive(Debug, Clone)]
pub(crate) struct PubSpec {
    pub(crate) id: u32,
    pub(crate) topic: String,
    pub(crate) count: u32,
}

/// One subscriber on `filter`, expecting the messages of the publishers
/// `from` (publisher id, count).
#[derive(Debug, Clone)]
pub(crate) struct SubSpec {
    pub(crate) filter: String,
    pub(crate) from: Vec<(u32, u32)>,
}

/// A throughput scenario.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) scenario: &'static str,
    pub(crate) qos: QoS,
    pub(crate) payload: usize,
    pub(crate) inflight: u16,
    pub(crate) idle_timeout: Duration,
    /// Each subscriber consumes at most this many messages per second (a
    /// slow consumer, to see what a broker does with a backlog).
    pub(crate) sub_rate: Option<f64>,
    pub(crate) pubs: Vec<PubSpec>,
    pub(crate) subs: Vec<SubSpec>,
}

#[derive(Debug, Default)]
struct PubStats {
    sent: AtomicU64,
    acked: AtomicU64,
}

#[derive(Debug)]
struct SubResult {
    counts: RecvCounts,
    last_delivery: Option<Instant>,
    timed_out: bool,
    error: Option<String>,
}

fn ns_since(base: Instant) -> u64 {
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn client_id(scenario: &str, role: &str, i: usize) -> String {
    format!("mqtt-bench-{}-{scenario}-{role}{i}", std::process::id())
}

/// Waits for the start signal; false if the coordinator gave up.
async fn wait_start(start: &mut watch::Receiver<bool>) -> bool {
    start.wait_for(|s| *s).await.is_ok()
}

async fn subscriber(
    opts: Arc<ConnOpts>,
    plan: Arc<Plan>,
    i: usize,
    ready: mpsc::Sender<Result<(), String>>,
    mut start: watch::Receiver<bool>,
) -> SubResult {
    let spec = plan.subs.get(i).cloned().unwrap_or(SubSpec {
        filter: String::new(),
        from: Vec::new(),
    });
    let mut res = SubResult {
        counts: Receiver::new(&spec.from).counts,
        last_delivery: None,
        timed_out: false,
        error: None,
    };
    let setup = async {
        let mut c = Conn::connect(&opts, &client_id(plan.scenario, "sub", i)).await?;
        c.subscribe(&spec.filter, plan.qos).await?;
        Ok::<_, anyhow::Error>(c)
    };
    let mut conn = match setup.await {
        Ok(c) => {
            let _ = ready.send(Ok(())).await;
            c
        }
        Err(e) => {
            let msg = format!("subscriber {i}: {e:#}");
            let _ = ready.send(Err(msg.clone())).await;
            res.error = Some(msg);
            return res;
        }
    };
    drop(ready);
    if !wait_start(&mut start).await {
        return res;
    }
    let mut recv = Receiver::new(&spec.from);
    let r = async {
        let mut last_progress = Instant::now();
        let sub_start = last_progress;
        loop {
            let before = recv.counts.unique;
            let mut any = false;
            while let Some(p) = conn.dec.decode(&mut conn.rbuf)? {
                any |= recv.handle(&conn.enc, p, &mut conn.wbuf, 0)?;
            }
            if any {
                let now = Instant::now();
                if recv.counts.unique > before {
                    res.last_delivery = Some(now);
                }
                last_progress = now;
            }
            conn.flush().await?;
            if recv.done() {
                return Ok(());
            }
            if let Some(rate) = plan.sub_rate {
                #[allow(clippy::cast_precision_loss)]
                let got = (recv.counts.unique + recv.counts.duplicated) as f64;
                let due = sub_start + Duration::from_secs_f64(got / rate);
                if due > Instant::now() {
                    tokio::time::sleep_until(due.into()).await;
                    last_progress = Instant::now();
                }
            }
            let deadline = tokio::time::Instant::from_std(last_progress + plan.idle_timeout);
            match timeout_at(deadline, conn.read_more()).await {
                Ok(r) => r?,
                Err(_) => {
                    res.timed_out = true;
                    return Ok(());
                }
            }
        }
    };
    let out: Result<()> = r.await;
    if let Err(e) = out {
        res.error = Some(format!("subscriber {i}: {e:#}"));
    }
    res.counts = recv.counts;
    if !res.timed_out && res.error.is_none() {
        conn.disconnect().await;
    }
    res
}

#[allow(clippy::too_many_arguments)]
async fn publisher(
    opts: Arc<ConnOpts>,
    plan: Arc<Plan>,
    i: usize,
    base: Instant,
    stats: Arc<PubStats>,
    ready: mpsc::Sender<Result<(), String>>,
    mut start: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) -> Option<String> {
    let spec = plan.pubs.get(i)?.clone();
    let mut conn = match Conn::connect(&opts, &client_id(plan.scenario, "pub", i)).await {
        Ok(c) => {
            let _ = ready.send(Ok(())).await;
            c
        }
        Err(e) => {
            let msg = format!("publisher {i}: {e:#}");
            let _ = ready.send(Err(msg.clone())).await;
            return Some(msg);
        }
    };
    drop(ready);
    if !wait_start(&mut start).await {
        return None;
    }
    let r = async {
        let topic = PublishTopic::try_from(spec.topic.clone()).context("topic")?;
        let mut publish = Publish::new(topic, Bytes::from(vec![0x2Au8; plan.payload]));
        publish.qos = plan.qos;
        let window = usize::from(plan.inflight.min(conn.receive_max).max(1));
        let mut ids = PacketIds::new();
        let mut seq = 0u32;
        let mut acked = 0u64;
        let mut unexpected = 0u64;
        let mut last_progress = Instant::now();
        let qos0 = plan.qos == QoS::AtMostOnce;
        loop {
            let now_ns = ns_since(base);
            while seq < spec.count && conn.wbuf.len() < WRITE_BATCH {
                if !qos0 {
                    if ids.in_flight() >= window {
                        break;
                    }
                    publish.packet_id = Some(ids.alloc().ok_or_else(|| anyhow!("no packet id"))?);
                }
                encode_stamped(&conn.enc, &publish, &mut conn.wbuf, spec.id, seq, now_ns)?;
                seq += 1;
            }
            stats.sent.store(u64::from(seq), Ordering::Relaxed);
            conn.flush().await?;
            if qos0 {
                if seq >= spec.count {
                    return Ok(());
                }
                continue;
            }
            if seq >= spec.count && ids.in_flight() == 0 {
                return Ok(());
            }
            if ids.in_flight() >= window || seq >= spec.count {
                let deadline = tokio::time::Instant::from_std(last_progress + plan.idle_timeout);
                match timeout_at(deadline, conn.read_more()).await {
                    Ok(r) => r?,
                    Err(_) => bail!(
                        "no acknowledgement for {:?} ({} in flight)",
                        plan.idle_timeout,
                        ids.in_flight()
                    ),
                }
            } else {
                // Window open: pick up whatever acks are there, don't wait.
                conn.rbuf.reserve(16 * 1024);
                match conn.stream.try_read_buf(&mut conn.rbuf) {
                    Ok(0) => bail!("connection closed by the broker"),
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let before = acked;
            while let Some(p) = conn.dec.decode(&mut conn.rbuf)? {
                let ev = sender_handle(&mut ids, &conn.enc, p, &mut conn.wbuf, &mut unexpected)?;
                if ev == SenderEvent::Completed {
                    acked += 1;
                }
            }
            if acked > before {
                last_progress = Instant::now();
                stats.acked.store(acked, Ordering::Relaxed);
            }
        }
    };
    let out: Result<()> = r.await;
    let err = out.err().map(|e| format!("publisher {i}: {e:#}"));
    if err.is_none() {
        // Stay connected until the subscribers are done.
        let _ = stop.wait_for(|s| *s).await;
        conn.disconnect().await;
    }
    err
}

/// Runs the plan and measures it.
pub(crate) async fn run(opts: ConnOpts, plan: Plan) -> Result<Report> {
    let opts = Arc::new(opts);
    let plan = Arc::new(plan);
    let base = Instant::now();
    let n = plan.pubs.len() + plan.subs.len();
    let (ready_tx, mut ready_rx) = mpsc::channel(n.max(1));
    let (start_tx, start_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);

    let mut subs = Vec::new();
    for i in 0..plan.subs.len() {
        subs.push(tokio::spawn(subscriber(
            opts.clone(),
            plan.clone(),
            i,
            ready_tx.clone(),
            start_rx.clone(),
        )));
    }
    let mut stats = Vec::new();
    let mut pubs = Vec::new();
    for i in 0..plan.pubs.len() {
        let s = Arc::new(PubStats::default());
        stats.push(s.clone());
        pubs.push(tokio::spawn(publisher(
            opts.clone(),
            plan.clone(),
            i,
            base,
            s,
            ready_tx.clone(),
            start_rx.clone(),
            stop_rx.clone(),
        )));
    }
    drop(ready_tx);

    let mut errors = Vec::new();
    let setup_deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for _ in 0..n {
        match timeout_at(setup_deadline, ready_rx.recv()).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(e))) => errors.push(e),
            Ok(None) => break,
            Err(_) => {
                errors.push("clients not connected within 60 s".to_owned());
                break;
            }
        }
    }
    if !errors.is_empty() {
        for h in &subs {
            h.abort();
        }
        for h in &pubs {
            h.abort();
        }
        bail!("setup failed: {}", errors.join("; "));
    }

    let t0 = Instant::now();
    let _ = start_tx.send(true);

    let mut results = Vec::new();
    for h in subs {
        match h.await {
            Ok(r) => results.push(r),
            Err(e) => errors.push(format!("subscriber task: {e}")),
        }
    }
    let _ = stop_tx.send(true);
    let grace = tokio::time::Instant::now() + Duration::from_secs(2);
    for h in pubs {
        let abort = h.abort_handle();
        match timeout_at(grace, h).await {
            Ok(Ok(Some(e))) => errors.push(e),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => errors.push(format!("publisher task: {e}")),
            Err(_) => abort.abort(),
        }
    }

    let mut rep = Report {
        scenario: plan.scenario,
        qos: Some(plan.qos as u8),
        payload: plan.payload,
        publishers: plan.pubs.len(),
        subscribers: plan.subs.len(),
        ..Report::default()
    };
    rep.published = stats.iter().map(|s| s.sent.load(Ordering::Relaxed)).sum();
    if plan.qos != QoS::AtMostOnce {
        rep.acked = Some(stats.iter().map(|s| s.acked.load(Ordering::Relaxed)).sum());
    }
    let mut last: Option<Instant> = None;
    for r in &results {
        rep.expected += r.counts.expected;
        rep.delivered += r.counts.unique;
        rep.duplicated += r.counts.duplicated;
        rep.unexpected += r.counts.unexpected;
        rep.qos2_id_reuse += r.counts.qos2_id_reuse;
        rep.qos2_retransmits += r.counts.qos2_retransmits;
        rep.timed_out |= r.timed_out;
        if let Some(e) = &r.error {
            errors.push(e.clone());
        }
        last = match (last, r.last_delivery) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    rep.lost = rep.expected.saturating_sub(rep.delivered);
    rep.seconds = last.map_or(0.0, |l| l.duration_since(t0).as_secs_f64());
    if rep.seconds > 0.0 {
        #[allow(clippy::cast_precision_loss)]
        let rate = rep.delivered as f64 / rep.seconds;
        rep.rate = Some(rate);
    }
    rep.errors = errors;
    Ok(rep)
}
