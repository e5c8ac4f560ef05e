//! `mqtt-pub`: publish one message, a file, or stdin line by line, with the
//! flags of `mosquitto_pub`.
//!
//! ```text
//! mqtt-pub -h localhost -p 1883 -t sensors/1 -m 21.5 -q 1
//! mqtt-pub -t logs -l -q 2 < app.log
//! mqtt-pub -V 5 -t jobs -m '{}' -D publish user-property trace abc -D publish message-expiry-interval 60
//! ```
//!
//! Exits 0 once every message completed its delivery (PUBACK for QoS 1,
//! PUBCOMP for QoS 2), 1 with a message on stderr otherwise.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use bytes::Bytes;
use clap::{ArgGroup, Parser};
use mqtt_cli::{ConnArgs, parse_qos, print_events};
use mqtt_client::{Client, Delivery, Message, QoS, TopicName};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// Publish MQTT messages (flags as mosquitto_pub).
#[derive(Debug, Parser)]
#[command(
    name = "mqtt-pub",
    disable_help_flag = true,
    group(ArgGroup::new("source").required(true).args(["message", "file", "stdin_line", "stdin_file", "null_message"]))
)]
struct Cli {
    #[command(flatten)]
    conn: ConnArgs,
    /// Topic to publish to.
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// Message payload.
    #[arg(short = 'm', long = "message")]
    message: Option<String>,
    /// Send the contents of a file as the message.
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// Read stdin, sending a separate message for each line.
    #[arg(short = 'l', long = "stdin-line")]
    stdin_line: bool,
    /// Read stdin whole and send it as one message.
    #[arg(short = 's', long = "stdin-file")]
    stdin_file: bool,
    /// Send a zero-length message.
    #[arg(short = 'n', long = "null-message")]
    null_message: bool,
    /// Quality of service: 0, 1 or 2.
    #[arg(short = 'q', long = "qos", default_value = "0", value_parser = parse_qos)]
    qos: QoS,
    /// Retain the message.
    #[arg(short = 'r', long = "retain")]
    retain: bool,
    /// Publish the message this many times.
    #[arg(long = "repeat", default_value_t = 1)]
    repeat: u32,
    /// Seconds between repeats.
    #[arg(long = "repeat-delay", default_value = "0", value_parser = seconds)]
    repeat_delay: Duration,
}

/// Parses `--repeat-delay`: seconds, fractions allowed. What no `Duration`
/// holds (`inf`, `nan`, a negative number) is refused here rather than
/// panicking at the first repeat.
fn seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.trim().parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("not a usable number of seconds ({e})"))
}

fn main() -> ExitCode {
    let cli: Cli = mqtt_cli::parse_args(|c: &mut Cli| &mut c.conn);
    mqtt_cli::run_main(&cli.conn, async {
        run(&cli).await.map(|()| ExitCode::SUCCESS)
    })
}

async fn run(cli: &Cli) -> anyhow::Result<()> {
    let topic = TopicName::try_from(cli.topic.as_str())
        .map_err(|e| anyhow!("invalid topic {:?}: {e}", cli.topic))?;
    let (options, props) = cli
        .conn
        .options("mqtt-pub", &["connect", "publish", "will"])?;
    let message = |payload: Bytes| {
        let mut m = Message::new(topic.clone(), payload, cli.qos, cli.retain);
        m.properties = props.publish.clone().into();
        m
    };
    // Read the payload before connecting: a missing file is not a network
    // error.
    let payload = if let Some(m) = &cli.message {
        Some(Bytes::from(m.clone().into_bytes()))
    } else if let Some(f) = &cli.file {
        let data = tokio::fs::read(f)
            .await
            .with_context(|| format!("cannot read {}", f.display()))?;
        Some(Bytes::from(data))
    } else if cli.stdin_file {
        let mut data = Vec::new();
        tokio::io::stdin()
            .read_to_end(&mut data)
            .await
            .context("cannot read stdin")?;
        Some(Bytes::from(data))
    } else if cli.null_message {
        Some(Bytes::new())
    } else {
        None
    };

    let mut builder = Client::builder(options);
    if cli.conn.debug {
        print_events(builder.events(), "mqtt-pub".into());
    }
    let client = builder.connect().await.context("cannot connect")?;

    let mut pending: Vec<Delivery> = Vec::new();
    match payload {
        Some(payload) => {
            for i in 0..cli.repeat.max(1) {
                if i > 0 && !cli.repeat_delay.is_zero() {
                    tokio::time::sleep(cli.repeat_delay).await;
                }
                client
                    .publish_message(message(payload.clone()))
                    .await
                    .context("publish failed")?;
            }
        }
        None => {
            let mut lines = BufReader::new(tokio::io::stdin()).lines();
            while let Some(line) = lines.next_line().await.context("cannot read stdin")? {
                pending.push(
                    client
                        .enqueue(message(Bytes::from(line.into_bytes())))
                        .await?,
                );
            }
        }
    }
    for d in pending {
        d.await.context("publish failed")?;
    }
    client.disconnect().await?;
    Ok(())
}
