//! mqtt-bench: an MQTT load generator built directly on `mqtt-codec` and
//! tokio TCP (no client library in the way).
//!
//! Scenarios: fan-in (N publishers -> 1 wildcard subscriber), fan-out
//! (1 publisher -> N subscribers), pairwise (N publisher/subscriber pairs),
//! latency (fixed rate, p50 / p99) and idle (N connections, connects/s and the
//! broker's memory per connection). Every payload carries its publisher id and
//! sequence number, so subscribers count lost and duplicated messages.
//!
//! ```text
//! mqtt-bench -p 1883 fan-in -n 8 -c 50000 -q 1
//! mqtt-bench fan-out -n 16 -c 100000
//! mqtt-bench pairwise -n 16 -c 50000 -q 1
//! mqtt-bench latency -r 5000 -d 10 -q 1
//! mqtt-bench idle -n 5000 --broker-pid 1234 --json
//! ```

mod conn;
mod idle;
mod latency;
mod proto;
mod report;
mod throughput;

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{ArgAction, Parser, Subcommand};
use mqtt_codec::{ProtocolVersion, QoS};

use crate::conn::ConnOpts;
use crate::report::Report;
use crate::throughput::{Plan, PubSpec, SubSpec};

#[derive(Debug, Parser)]
#[command(
    name = "mqtt-bench",
    about = "MQTT load generator: fan-in, fan-out, pairwise, latency and idle connections; \
             counts lost and duplicated messages",
    disable_help_flag = true,
    disable_version_flag = true
)]
struct Cli {
    /// Broker host.
    #[arg(short = 'h', long, default_value = "127.0.0.1", global = true)]
    host: String,
    /// Broker port.
    #[arg(short = 'p', long, default_value_t = 1883, global = true)]
    port: u16,
    /// MQTT version: 311 (3.1.1), 31 (3.1) or 5.
    #[arg(short = 'V', long = "protocol-version", default_value = "311", value_parser = parse_version, global = true)]
    version: ProtocolVersion,
    /// QoS of publications and subscriptions (0, 1 or 2).
    #[arg(short = 'q', long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2), global = true)]
    qos: u8,
    /// Payload size in bytes (at least 16: publisher id, sequence, timestamp).
    #[arg(short = 's', long = "size", default_value_t = 64, global = true)]
    size: usize,
    /// QoS 1/2 messages a publisher keeps in flight.
    #[arg(long, default_value_t = 100, global = true)]
    inflight: u16,
    /// End the run after this many seconds without progress.
    #[arg(long, default_value_t = 5.0, global = true)]
    idle_timeout: f64,
    /// Throughput modes: each subscriber reads at most this many messages
    /// per second (a slow consumer: shows what the broker drops or queues).
    #[arg(long, global = true)]
    sub_rate: Option<f64>,
    /// Keep-alive sent in CONNECT, in seconds.
    #[arg(long, default_value_t = 300, global = true)]
    keep_alive: u16,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2, global = true)]
    threads: usize,
    /// Topic prefix.
    #[arg(long, default_value = "bench", global = true)]
    topic_prefix: String,
    /// A label copied into the JSON line (e.g. the broker's name).
    #[arg(long, global = true)]
    label: Option<String>,
    /// Print one JSON line on stdout (the summary goes to stderr).
    #[arg(long, global = true)]
    json: bool,
    /// Print help.
    #[arg(long, action = ArgAction::Help, global = true)]
    help: Option<bool>,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// N publishers, each on its own topic, -> 1 subscriber on a wildcard.
    FanIn {
        /// Publishers.
        #[arg(short = 'n', long, default_value_t = 8)]
        publishers: u32,
        /// Messages per publisher.
        #[arg(short = 'c', long, default_value_t = 50_000)]
        count: u32,
    },
    /// 1 publisher -> N subscribers of its topic.
    FanOut {
        /// Subscribers.
        #[arg(short = 'n', long, default_value_t = 16)]
        subscribers: u32,
        /// Messages published.
        #[arg(short = 'c', long, default_value_t = 100_000)]
        count: u32,
    },
    /// N pairs: publisher i -> subscriber i on topic i.
    Pairwise {
        /// Pairs.
        #[arg(short = 'n', long, default_value_t = 16)]
        pairs: u32,
        /// Messages per publisher.
        #[arg(short = 'c', long, default_value_t = 50_000)]
        count: u32,
    },
    /// 1 publisher at a fixed rate -> 1 subscriber; latency percentiles.
    Latency {
        /// Messages per second.
        #[arg(short = 'r', long, default_value_t = 5_000)]
        rate: u32,
        /// Measured seconds (after the warm-up).
        #[arg(short = 'd', long, default_value_t = 10.0)]
        duration: f64,
        /// Seconds of warm-up, sent but not measured.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
    },
    /// Open N idle connections; connects/s and broker memory per connection.
    Idle {
        /// Connections.
        #[arg(short = 'n', long, default_value_t = 5_000)]
        connections: usize,
        /// Connection attempts in progress at once.
        #[arg(long, default_value_t = 100)]
        concurrency: usize,
        /// Seconds to hold the connections open before measuring memory.
        #[arg(long, default_value_t = 2.0)]
        hold: f64,
        /// The broker's pid, to read its VmRSS from /proc/PID/status.
        #[arg(long)]
        broker_pid: Option<u32>,
    },
}

fn parse_version(s: &str) -> Result<ProtocolVersion, String> {
    match s {
        "311" | "3.1.1" | "4" | "mqttv311" => Ok(ProtocolVersion::V3_1_1),
        "5" | "5.0" | "mqttv5" => Ok(ProtocolVersion::V5),
        "31" | "3.1" | "3" | "mqttv31" => Ok(ProtocolVersion::V3_1),
        _ => Err(format!("unknown MQTT version {s:?} (311, 5 or 31)")),
    }
}

fn version_name(v: ProtocolVersion) -> &'static str {
    match v {
        ProtocolVersion::V3_1 => "3.1",
        ProtocolVersion::V3_1_1 => "3.1.1",
        ProtocolVersion::V5 => "5.0",
    }
}

fn secs(s: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(s).with_context(|| format!("bad {what}: {s}"))
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr> {
    (host, port)
        .to_socket_addrs()
        .with_context(|| format!("resolve {host}"))?
        .next()
        .with_context(|| format!("no address for {host}"))
}

fn throughput_plan(cli: &Cli, qos: QoS) -> Result<Option<Plan>> {
    let pre = &cli.topic_prefix;
    let (scenario, pubs, subs) = match cli.mode {
        Mode::FanIn { publishers, count } => {
            let pubs: Vec<PubSpec> = (0..publishers)
                .map(|i| PubSpec {
                    id: i,
                    topic: format!("{pre}/fanin/{i}"),
                    count,
                })
                .collect();
            let from = pubs.iter().map(|p| (p.id, p.count)).collect();
            let subs = vec![SubSpec {
                filter: format!("{pre}/fanin/#"),
                from,
            }];
            ("fan-in", pubs, subs)
        }
        Mode::FanOut { subscribers, count } => {
            let pubs = vec![PubSpec {
                id: 0,
                topic: format!("{pre}/fanout"),
                count,
            }];
            let subs = (0..subscribers)
                .map(|_| SubSpec {
                    filter: format!("{pre}/fanout"),
                    from: vec![(0, count)],
                })
                .collect();
            ("fan-out", pubs, subs)
        }
        Mode::Pairwise { pairs, count } => {
            let pubs: Vec<PubSpec> = (0..pairs)
                .map(|i| PubSpec {
                    id: i,
                    topic: format!("{pre}/pair/{i}"),
                    count,
                })
                .collect();
            let subs = pubs
                .iter()
                .map(|p| SubSpec {
                    filter: p.topic.clone(),
                    from: vec![(p.id, p.count)],
                })
                .collect();
            ("pairwise", pubs, subs)
        }
        Mode::Latency { .. } | Mode::Idle { .. } => return Ok(None),
    };
    Ok(Some(Plan {
        scenario,
        qos,
        payload: cli.size,
        inflight: cli.inflight,
        idle_timeout: secs(cli.idle_timeout, "--idle-timeout")?,
        sub_rate: match cli.sub_rate {
            Some(r) if !(r > 0.0 && r.is_finite()) => bail!("--sub-rate must be positive"),
            r => r,
        },
        pubs,
        subs,
    }))
}

fn run(cli: &Cli) -> Result<Report> {
    if cli.size < proto::HEADER_LEN {
        bail!("--size must be at least {} bytes", proto::HEADER_LEN);
    }
    let qos = QoS::try_from(cli.qos)?;
    let opts = ConnOpts {
        addr: resolve(&cli.host, cli.port)?,
        version: cli.version,
        keep_alive: cli.keep_alive,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()?;
    let mut rep = if let Some(plan) = throughput_plan(cli, qos)? {
        rt.block_on(throughput::run(opts, plan))?
    } else {
        match cli.mode {
            Mode::Latency {
                rate,
                duration,
                warmup,
            } => {
                drop(rt);
                let plan = latency::LatencyPlan {
                    qos,
                    payload: cli.size,
                    inflight: cli.inflight,
                    rate,
                    duration: secs(duration, "--duration")?,
                    warmup: secs(warmup, "--warmup")?,
                    idle_timeout: secs(cli.idle_timeout, "--idle-timeout")?,
                    topic: format!("{}/latency", cli.topic_prefix),
                };
                latency::run(&opts, &plan)?
            }
            Mode::Idle {
                connections,
                concurrency,
                hold,
                broker_pid,
            } => {
                let plan = idle::IdlePlan {
                    connections,
                    concurrency,
                    hold: secs(hold, "--hold")?,
                    broker_pid,
                };
                rt.block_on(idle::run(opts, plan))?
            }
            Mode::FanIn { .. } | Mode::FanOut { .. } | Mode::Pairwise { .. } => {
                bail!("unreachable mode")
            }
        }
    };
    rep.label.clone_from(&cli.label);
    rep.version = version_name(cli.version);
    Ok(rep)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(rep) => {
            if cli.json {
                eprint!("{}", rep.summary());
                println!("{}", rep.to_json());
            } else {
                print!("{}", rep.summary());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mqtt-bench: {e:#}");
            if cli.json {
                let rep = Report {
                    scenario: match cli.mode {
                        Mode::FanIn { .. } => "fan-in",
                        Mode::FanOut { .. } => "fan-out",
                        Mode::Pairwise { .. } => "pairwise",
                        Mode::Latency { .. } => "latency",
                        Mode::Idle { .. } => "idle",
                    },
                    label: cli.label.clone(),
                    version: version_name(cli.version),
                    qos: Some(cli.qos),
                    errors: vec![format!("{e:#}")],
                    ..Report::default()
                };
                println!("{}", rep.to_json());
            }
            ExitCode::FAILURE
        }
    }
}
