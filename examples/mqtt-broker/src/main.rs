//! `mqtt-broker`: an MQTT 3.1 / 3.1.1 / 5.0 broker.
//!
//! ```text
//! mqtt-broker                       # 127.0.0.1:1883, in memory
//! mqtt-broker -p 1884 -v            # another port, debug logs
//! mqtt-broker -c broker.toml        # listeners, limits and the rest from a file
//! ```
//!
//! Flags given on the command line override the file.

use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU16, NonZeroU32};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use mqtt_broker_core::{Broker, Config, QueuePolicy};
use serde::Deserialize;

/// An MQTT 3.1 / 3.1.1 / 5.0 broker (in memory).
#[derive(Debug, Parser)]
#[command(name = "mqtt-broker", version)]
struct Args {
    /// Port to listen on (on the --bind address). Default: 1883.
    #[arg(short = 'p', long)]
    port: Option<u16>,
    /// Address to listen on. Default: 127.0.0.1.
    #[arg(long)]
    bind: Option<IpAddr>,
    /// TOML configuration file (see examples/mqtt-broker/broker.toml).
    #[arg(short = 'c', long)]
    config: Option<PathBuf>,
    /// Open connections allowed at once.
    #[arg(long)]
    max_connections: Option<usize>,
    /// Largest packet accepted, in bytes.
    #[arg(long)]
    max_packet_size: Option<u32>,
    /// QoS 1/2 messages in flight to each client.
    #[arg(long)]
    max_inflight: Option<u16>,
    /// Messages queued per client (behind the inflight window or offline).
    #[arg(long)]
    max_queued: Option<usize>,
    /// Sessions held at once, connected or not (beyond: CONNACK 0x97).
    #[arg(long)]
    max_sessions: Option<usize>,
    /// Subscriptions per client (beyond: SUBACK 0x97).
    #[arg(long)]
    max_subscriptions_per_client: Option<usize>,
    /// Topics with a retained message (beyond: new ones are not retained).
    #[arg(long)]
    max_retained_messages: Option<usize>,
    /// Bytes of retained messages (topics and payloads; beyond: not retained).
    #[arg(long)]
    max_retained_bytes: Option<usize>,
    /// Seconds a connection has to send CONNECT.
    #[arg(long)]
    connect_timeout: Option<u64>,
    /// Seconds between $SYS updates (0 disables them).
    #[arg(long)]
    sys_interval: Option<u64>,
    /// Worker threads (default: one per CPU but one, at least one; 1 runs
    /// everything on the main thread, like Mosquitto).
    #[arg(long)]
    threads: Option<usize>,
    /// Linux scheduling policy of the broker's threads: `batch` (the
    /// default: a wake-up does not preempt the program that caused it) or
    /// `normal`.
    #[arg(long, value_enum)]
    scheduling: Option<Scheduling>,
    /// Debug logging (same as --log-level debug).
    #[arg(short = 'v', long)]
    verbose: bool,
    /// Log filter: error, warn, info, debug, trace or off, or tracing
    /// directives such as `info,mqtt_broker_core=debug`.
    #[arg(long)]
    log_level: Option<String>,
}

/// The configuration file. Every field is optional; unknown fields are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// Addresses to listen on, like "127.0.0.1:1883".
    listeners: Option<Vec<SocketAddr>>,
    log_level: Option<String>,
    sys_interval_secs: Option<u64>,
    scheduling: Option<Scheduling>,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    features: Features,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Limits {
    max_connections: Option<usize>,
    max_packet_size: Option<u32>,
    max_inflight: Option<u16>,
    receive_maximum: Option<u16>,
    max_queued_messages: Option<usize>,
    queue_policy: Option<Policy>,
    max_pending_bytes: Option<usize>,
    connect_timeout_secs: Option<u64>,
    max_topic_aliases: Option<u16>,
    max_session_expiry_secs: Option<u32>,
    max_subscriptions_per_client: Option<usize>,
    max_retained_messages: Option<usize>,
    max_retained_bytes: Option<usize>,
    max_sessions: Option<usize>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Policy {
    DropNew,
    DropOldest,
}

/// The scheduling policy of the broker's threads (see [`set_scheduling`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
enum Scheduling {
    /// `SCHED_BATCH`: scheduled as usual, but its wake-ups do not preempt
    /// the running task.
    #[default]
    Batch,
    /// `SCHED_OTHER`, the kernel's default.
    Normal,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Features {
    retain_available: Option<bool>,
    maximum_qos: Option<u8>,
    outbound_topic_aliases: Option<bool>,
}

fn nonzero16(name: &str, v: u16) -> anyhow::Result<NonZeroU16> {
    NonZeroU16::new(v).with_context(|| format!("{name} must be at least 1"))
}

/// What `main` needs from the command line and the file.
struct Settings {
    config: Config,
    log: String,
    scheduling: Scheduling,
}

fn build(args: &Args) -> anyhow::Result<Settings> {
    let file: File = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            toml::from_str(&text)
                .with_context(|| format!("invalid config file {}", path.display()))?
        }
        None => File::default(),
    };
    let mut c = Config::default();
    if let Some(l) = file.listeners {
        if l.is_empty() {
            bail!("`listeners` is empty: give at least one address");
        }
        c.listeners = l;
    }
    if args.port.is_some() || args.bind.is_some() {
        let first = c
            .listeners
            .first()
            .copied()
            .unwrap_or(([127, 0, 0, 1], 1883).into());
        let addr = SocketAddr::new(
            args.bind.unwrap_or(first.ip()),
            args.port.unwrap_or(first.port()),
        );
        c.listeners = vec![addr];
    }
    let l = &file.limits;
    if let Some(v) = args.max_connections.or(l.max_connections) {
        c.max_connections = v;
    }
    if let Some(v) = args.max_packet_size.or(l.max_packet_size) {
        c.max_packet_size = NonZeroU32::new(v).context("max_packet_size must be at least 1")?;
    }
    if let Some(v) = args.max_inflight.or(l.max_inflight) {
        c.max_inflight = nonzero16("max_inflight", v)?;
    }
    if let Some(v) = l.receive_maximum {
        c.receive_maximum = nonzero16("receive_maximum", v)?;
    }
    if let Some(v) = args.max_queued.or(l.max_queued_messages) {
        c.max_queued_messages = v;
    }
    if let Some(p) = l.queue_policy {
        c.queue_policy = match p {
            Policy::DropNew => QueuePolicy::DropNew,
            Policy::DropOldest => QueuePolicy::DropOldest,
        };
    }
    if let Some(v) = l.max_pending_bytes {
        c.max_pending_bytes = v;
    }
    if let Some(v) = args.connect_timeout.or(l.connect_timeout_secs) {
        if v == 0 {
            bail!("connect_timeout must be at least 1 second");
        }
        c.connect_timeout = Duration::from_secs(v);
    }
    if let Some(v) = l.max_topic_aliases {
        c.max_topic_aliases = v;
    }
    if let Some(v) = l.max_session_expiry_secs {
        c.max_session_expiry_interval = v;
    }
    if let Some(v) = args
        .max_subscriptions_per_client
        .or(l.max_subscriptions_per_client)
    {
        c.max_subscriptions_per_client = v;
    }
    if let Some(v) = args.max_retained_messages.or(l.max_retained_messages) {
        c.max_retained_messages = v;
    }
    if let Some(v) = args.max_retained_bytes.or(l.max_retained_bytes) {
        c.max_retained_bytes = v;
    }
    if let Some(v) = args.max_sessions.or(l.max_sessions) {
        c.max_sessions = v;
    }
    if let Some(v) = args.sys_interval.or(file.sys_interval_secs) {
        c.sys_interval = Duration::from_secs(v);
    }
    let f = &file.features;
    if let Some(v) = f.retain_available {
        c.retain_available = v;
    }
    if let Some(q) = f.maximum_qos {
        c.maximum_qos = mqtt_broker_core::QoS::try_from(q)
            .ok()
            .context("maximum_qos must be 0, 1 or 2")?;
    }
    if let Some(v) = f.outbound_topic_aliases {
        c.outbound_topic_aliases = v;
    }
    c.validate().map_err(anyhow::Error::msg)?;
    let log = if args.verbose {
        "debug".to_owned()
    } else {
        args.log_level
            .clone()
            .or(file.log_level)
            .unwrap_or_else(|| "info".to_owned())
    };
    let scheduling = args.scheduling.or(file.scheduling).unwrap_or_default();
    Ok(Settings {
        config: c,
        log,
        scheduling,
    })
}

/// The filter for `--log-level` / `log_level`: a level, or tracing
/// directives.
///
/// A directive without `=` is a level or else a *target* (everything from
/// the module of that name, nothing from the others), so a misspelt level
/// such as `warning` would silence every log, errors included. A bare word
/// must therefore be a level; a target is written `target=level`.
fn log_filter(spec: &str) -> Result<tracing_subscriber::EnvFilter, String> {
    for directive in spec.split(',').map(str::trim) {
        let bare = !directive.is_empty() && !directive.contains(['=', '[', '{']);
        if bare
            && directive
                .parse::<tracing::level_filters::LevelFilter>()
                .is_err()
        {
            return Err(format!(
                "{directive:?} is not a level (error, warn, info, debug, trace, off); \
                 a target is written {directive}=<level>"
            ));
        }
    }
    tracing_subscriber::EnvFilter::try_new(spec).map_err(|e| e.to_string())
}

/// Runtime threads when `--threads` is not given: one per CPU but one, and
/// at least one (then the single-threaded runtime).
///
/// The broker's state is behind one lock, so more threads help only as far
/// as the socket calls run side by side, and each thread more costs lock
/// hand-offs, futex waits and the state's cache lines moving between cores.
/// The CPU left over serves the kernel's network processing and the
/// clients. On 2 CPUs with the load generator on the same machine, one
/// thread against two used 15-30% less broker CPU per message in the
/// QoS 1/2 scenarios of `scripts/compare-brokers` (fan-in, fan-out,
/// pairwise) for as much or more throughput, and about the same in the
/// QoS 0 ones, within the noise (the workspace README, "Broker figures").
/// Machines with more CPUs were not measured.
fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .max(1)
}

/// Sets the scheduling policy of the calling thread, which the runtime's
/// threads, started after it, inherit.
///
/// `batch` (`SCHED_BATCH`) keeps the broker's share of the CPU and its
/// priority; what it changes is that the broker, when a message wakes it,
/// does not preempt the program running on that CPU. That program is often
/// the client that sent the message, on the same machine. Not preempted,
/// it finishes its call and sleeps, and the broker runs next on that CPU,
/// where it also wakes the receiving client. Preempted, it stays runnable
/// there, so the kernel wakes the receiving client on another CPU, which
/// may be idle and halted. On the 2-CPU VM of the workspace README
/// (cpuidle `haltpoll` without polling), that wake-up put ours' QoS 0
/// latency at 1.12x Mosquitto's (p50); with `batch` it was 0.91x and 0.94x
/// in two full tables, and fan-in QoS 1/2 and pairwise ran 11-13% faster
/// for less broker CPU per message (alternating runs), the other scenarios
/// the same (the README's "Broker figures"). The cost: a broker that shares
/// busy CPUs with other programs may wait up to a scheduler slice
/// (milliseconds) before it runs, where `normal`, the kernel's default
/// policy, would preempt. Other systems than Linux keep their default.
fn set_scheduling(policy: Scheduling) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let policy = match policy {
            Scheduling::Batch => libc::SCHED_BATCH,
            Scheduling::Normal => libc::SCHED_OTHER,
        };
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid `sched_param` that outlives the call,
        // and pid 0 is the calling thread. Both policies take priority 0 and
        // need no privilege.
        #[allow(unsafe_code)]
        let r = unsafe { libc::sched_setscheduler(0, policy, &param) };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = policy;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let Settings {
        config,
        log,
        scheduling,
    } = match build(&args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("mqtt-broker: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let filter = match log_filter(&log) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("mqtt-broker: invalid log level {log:?}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let threads = match args.threads {
        Some(0) => {
            eprintln!("mqtt-broker: --threads must be at least 1");
            return std::process::ExitCode::from(2);
        }
        Some(n) => n,
        None => default_threads(),
    };
    if let Err(e) = set_scheduling(scheduling) {
        tracing::warn!(error = %e, policy = ?scheduling, "cannot set the scheduling policy");
    }
    let rt = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mqtt-broker: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mqtt-broker: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listeners = config.listeners.clone();
    let broker = Broker::builder()
        .config(config)
        .start()
        .await
        .with_context(|| format!("cannot listen on {listeners:?}"))?;
    tracing::info!(addrs = ?broker.local_addrs(), "mqtt-broker started");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    broker.shutdown().await;
    Ok(())
}
