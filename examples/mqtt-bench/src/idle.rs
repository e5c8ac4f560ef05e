//! Idle connections: open many (CONNECT + CONNACK each), measure the
//! connection rate, hold them open and read the broker's resident memory
//! before and after.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::conn::{Conn, ConnOpts};
use crate::report::Report;

/// The idle-connections scenario.
#[derive(Debug, Clone)]
pub(crate) struct IdlePlan {
    pub(crate) connections: usize,
    pub(crate) concurrency: usize,
    pub(crate) hold: Duration,
    pub(crate) broker_pid: Option<u32>,
}

/// VmRSS of a process in KiB, from `/proc/PID/status`.
pub(crate) fn read_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc/PID/status")
}

async fn open(opts: &ConnOpts, i: usize) -> Result<Conn> {
    let stream = TcpStream::connect(opts.addr)
        .await
        .with_context(|| format!("connect to {}", opts.addr))?;
    stream.set_nodelay(true)?;
    let id = format!("mqtt-bench-{}-idle-{i}", std::process::id());
    Conn::handshake(stream, opts, &id, 64).await
}

/// Runs the scenario.
pub(crate) async fn run(opts: ConnOpts, plan: IdlePlan) -> Result<Report> {
    let mut errors = Vec::new();
    let rss_before = match plan.broker_pid.map(read_rss_kib) {
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            errors.push(format!("{e:#}"));
            None
        }
        None => None,
    };
    let opts = std::sync::Arc::new(opts);
    let mut conns = Vec::with_capacity(plan.connections);
    let mut failures = 0u64;
    let mut first_error = None;
    let mut set = JoinSet::new();
    let t0 = Instant::now();
    let mut next = 0usize;
    loop {
        while next < plan.connections && set.len() < plan.concurrency.max(1) {
            let o = opts.clone();
            let i = next;
            set.spawn(async move { open(&o, i).await });
            next += 1;
        }
        match set.join_next().await {
            Some(Ok(Ok(c))) => conns.push(c),
            Some(Ok(Err(e))) => {
                failures += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
            Some(Err(e)) => {
                failures += 1;
                first_error.get_or_insert_with(|| format!("task: {e}"));
            }
            None => break,
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    if let Some(e) = first_error {
        errors.push(format!("{failures} connections failed, first: {e}"));
    }
    tokio::time::sleep(plan.hold).await;
    let rss_after = match plan.broker_pid.map(read_rss_kib) {
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            errors.push(format!("{e:#}"));
            None
        }
        None => None,
    };
    // Check the connections are still alive: a broker that dropped them
    // would have closed the sockets.
    let mut closed = 0u64;
    for c in &mut conns {
        let mut b = [0u8; 1];
        match c.stream.try_read(&mut b) {
            Ok(0) => closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            _ => closed += 1,
        }
    }
    if closed > 0 {
        errors.push(format!(
            "{closed} connections were closed by the broker while idle"
        ));
    }
    let n = conns.len() as u64;
    drop(conns);

    let mut rep = Report {
        scenario: "idle",
        connections: Some(n),
        connect_failures: Some(failures),
        seconds: secs,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        ..Report::default()
    };
    #[allow(clippy::cast_precision_loss)]
    {
        if secs > 0.0 {
            rep.connects_per_s = Some(n as f64 / secs);
        }
        if let (Some(b), Some(a)) = (rss_before, rss_after) {
            if n > 0 {
                rep.rss_kib_per_conn = Some((a as f64 - b as f64) / n as f64);
            }
        }
    }
    rep.errors = errors;
    Ok(rep)
}
