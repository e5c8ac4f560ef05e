//! `mqtt-sub`: subscribe and print messages, with the flags of
//! `mosquitto_sub`.
//!
//! ```text
//! mqtt-sub -h localhost -t 'sensors/#' -v
//! mqtt-sub -t jobs -q 2 -C 10 -W 30 -V 5
//! ```
//!
//! Exits 0 after `-C` messages or on Ctrl-C, 27 when `-W` seconds passed,
//! 1 with a message on stderr on errors.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use clap::Parser;
use mqtt_cli::{ConnArgs, parse_qos, print_events};
use mqtt_client::{Client, QoS, Received, SubscriptionOptions, TopicFilter};

/// Exit code of `-W` running out, as mosquitto_sub.
const TIMEOUT_EXIT: u8 = 27;

/// Subscribe to MQTT topics and print the messages (flags as mosquitto_sub).
#[derive(Debug, Parser)]
#[command(name = "mqtt-sub", disable_help_flag = true)]
struct Cli {
    #[command(flatten)]
    conn: ConnArgs,
    /// Topic filter to subscribe to; may be repeated.
    #[arg(short = 't', long = "topic", required = true)]
    topics: Vec<String>,
    /// Topic filter whose messages are not printed; may be repeated.
    #[arg(short = 'T', long = "filter-out")]
    filter_out: Vec<String>,
    /// Quality of service of the subscriptions: 0, 1 or 2.
    #[arg(short = 'q', long = "qos", default_value = "0", value_parser = parse_qos)]
    qos: QoS,
    /// Print the topic before each payload.
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    /// Do not add an end of line after each payload.
    #[arg(short = 'N')]
    no_eol: bool,
    /// Do not print retained (stale) messages.
    #[arg(short = 'R')]
    no_retained: bool,
    /// Exit after this many messages.
    #[arg(short = 'C', long = "count")]
    count: Option<u64>,
    /// Exit after this many seconds (exit code 27).
    #[arg(short = 'W', long = "timeout")]
    timeout: Option<u64>,
    /// Exit once the subscriptions are acknowledged.
    #[arg(short = 'E')]
    exit_after_subscribe: bool,
}

fn main() -> ExitCode {
    let cli: Cli = mqtt_cli::parse_args(|c: &mut Cli| &mut c.conn);
    mqtt_cli::run_main(&cli.conn, run(&cli))
}

async fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let parse = |t: &String| {
        TopicFilter::try_from(t.as_str()).map_err(|e| anyhow!("invalid topic filter {t:?}: {e}"))
    };
    let filters = cli
        .topics
        .iter()
        .map(parse)
        .collect::<Result<Vec<_>, _>>()?;
    let filter_out = cli
        .filter_out
        .iter()
        .map(parse)
        .collect::<Result<Vec<_>, _>>()?;
    let (options, _) = cli.conn.options("mqtt-sub", &["connect", "will"])?;

    let deadline = cli
        .timeout
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut builder = Client::builder(options);
    if cli.conn.debug {
        print_events(builder.events(), "mqtt-sub".into());
    }
    // Messages of a resumed session arrive before SUBACK.
    let mut resumed = builder.unrouted();
    let client = builder.connect().await.context("cannot connect")?;
    let opts = SubscriptionOptions::new(cli.qos);
    let mut sub = client
        .subscribe_many(filters.iter().map(|f| (f.clone(), opts)).collect())
        .await
        .context("subscribe failed")?;
    for (f, r) in filters.iter().zip(sub.reasons()) {
        if r.is_error() {
            anyhow::bail!(
                "subscription to {f} refused: {} (0x{:02x})",
                r.description(),
                r.as_u8()
            );
        }
    }
    if cli.exit_after_subscribe {
        client.disconnect().await?;
        return Ok(ExitCode::SUCCESS);
    }

    let mut out = std::io::stdout().lock();
    let mut printed = 0u64;
    let sleep = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep);
    let code = loop {
        if cli.count.is_some_and(|c| printed >= c) {
            break ExitCode::SUCCESS;
        }
        let m: Received = tokio::select! {
            m = sub.recv() => match m {
                Some(m) => m,
                None => anyhow::bail!("connection lost"),
            },
            Some(m) = resumed.recv() => m,
            () = &mut sleep => {
                if !cli.conn.quiet {
                    eprintln!("Timed out");
                }
                break ExitCode::from(TIMEOUT_EXIT);
            }
            r = tokio::signal::ctrl_c() => {
                r.context("signal")?;
                break ExitCode::SUCCESS;
            }
        };
        if cli.no_retained && m.retain() {
            continue;
        }
        if filter_out.iter().any(|f| f.matches(m.topic())) {
            continue;
        }
        if cli.verbose {
            out.write_all(m.topic().as_bytes())?;
            out.write_all(b" ")?;
        }
        out.write_all(m.payload())?;
        if !cli.no_eol {
            out.write_all(b"\n")?;
        }
        out.flush()?;
        printed += 1;
    };
    drop(out);
    client.disconnect().await?;
    Ok(code)
}
