//! What `mqtt-pub` and `mqtt-sub` share: the connection flags of
//! `mosquitto_pub` / `mosquitto_sub`, MQTT 5.0 properties given with `-D`,
//! and debug output.

use std::num::{NonZeroU16, NonZeroU32};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use clap::Args;
use mqtt_client::{
    ClientOptions, ConnectProperties, Event, EventStream, PayloadFormat, ProtocolVersion,
    PublishProperties, QoS, ReconnectOptions, UserProperty, Utf8Bytes, Will, WillProperties,
};

/// Connection flags common to both tools.
#[derive(Debug, Args)]
pub struct ConnArgs {
    /// MQTT host to connect to.
    #[arg(short = 'h', long = "host", default_value = "localhost")]
    pub host: String,
    /// Network port to connect to.
    #[arg(short = 'p', long = "port", default_value_t = 1883)]
    pub port: u16,
    /// Host, port (and user, password) as a URL: `mqtt://[user[:password]@]host[:port][/topic]`.
    #[arg(short = 'L', long = "url")]
    pub url: Option<String>,
    /// Client identifier. Defaults to the program name and its process id.
    #[arg(short = 'i', long = "id")]
    pub id: Option<String>,
    /// Keep alive in seconds (0 disables it).
    #[arg(short = 'k', long = "keepalive", default_value_t = 60)]
    pub keepalive: u16,
    /// User name.
    #[arg(short = 'u', long = "username")]
    pub username: Option<String>,
    /// Password.
    #[arg(short = 'P', long = "pw")]
    pub password: Option<String>,
    /// Protocol version: 31 (mqttv31), 311 (mqttv311) or 5 (mqttv5).
    #[arg(short = 'V', long = "protocol-version", default_value = "311", value_parser = parse_version)]
    pub version: ProtocolVersion,
    /// Disable clean session / clean start: a persistent session.
    #[arg(short = 'c', long = "disable-clean-session")]
    pub persistent: bool,
    /// Session expiry interval in seconds (MQTT 5.0); -1 never expires.
    /// Default: never with -c, else 0.
    #[arg(
        short = 'x',
        long = "session-expiry-interval",
        allow_negative_numbers = true
    )]
    pub session_expiry: Option<i64>,
    /// Topic of the will message.
    #[arg(long = "will-topic")]
    pub will_topic: Option<String>,
    /// Payload of the will message (empty if not given).
    #[arg(long = "will-payload", requires = "will_topic")]
    pub will_payload: Option<String>,
    /// QoS of the will message.
    #[arg(long = "will-qos", default_value = "0", value_parser = parse_qos, requires = "will_topic")]
    pub will_qos: QoS,
    /// Make the will message retained.
    #[arg(long = "will-retain", requires = "will_topic")]
    pub will_retain: bool,
    /// MQTT 5.0 property: -D COMMAND IDENTIFIER VALUE (user-property takes
    /// a name and a value). Commands: connect, publish, will.
    #[arg(
        short = 'D',
        long = "property",
        num_args = 3..=4,
        value_names = ["COMMAND", "IDENTIFIER", "VALUE"],
        action = clap::ArgAction::Append,
        allow_hyphen_values = true
    )]
    pub properties: Vec<String>,
    /// The `-D` values grouped by occurrence (see [`parse_args`]).
    #[arg(skip)]
    pub property_groups: Vec<Vec<String>>,
    /// Print debug messages (events) to stderr.
    #[arg(short = 'd', long = "debug")]
    pub debug: bool,
    /// Do not print error messages.
    #[arg(long = "quiet")]
    pub quiet: bool,
    /// Print help.
    #[arg(long = "help", action = clap::ArgAction::Help)]
    pub help: Option<bool>,
}

/// Runs a tool's `main` future on a current-thread runtime: its exit code,
/// or the error printed the way `conn` prints errors and exit code 1.
pub fn run_main(
    conn: &ConnArgs,
    main: impl std::future::Future<Output = anyhow::Result<std::process::ExitCode>>,
) -> std::process::ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(main) {
        Ok(code) => code,
        Err(e) => {
            conn.error(&e);
            std::process::ExitCode::FAILURE
        }
    }
}

/// Parses the command line into `T`, grouping the values of each `-D`
/// (which the derive API flattens); exits with clap's message on errors.
pub fn parse_args<T: clap::Parser>(conn: impl FnOnce(&mut T) -> &mut ConnArgs) -> T {
    let matches = T::command().get_matches();
    let mut cli = T::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    conn(&mut cli).property_groups = matches
        .get_occurrences::<String>("properties")
        .map(|occ| occ.map(|o| o.cloned().collect()).collect())
        .unwrap_or_default();
    cli
}

/// Parses `-V`.
///
/// # Errors
///
/// An unknown version.
pub fn parse_version(s: &str) -> Result<ProtocolVersion, String> {
    match s {
        "31" | "mqttv31" | "3.1" => Ok(ProtocolVersion::V3_1),
        "311" | "mqttv311" | "3.1.1" => Ok(ProtocolVersion::V3_1_1),
        "5" | "mqttv5" | "5.0" => Ok(ProtocolVersion::V5),
        other => Err(format!(
            "unknown protocol version {other:?}: use 31, 311 or 5"
        )),
    }
}

/// Parses a QoS flag.
///
/// # Errors
///
/// Anything but 0, 1 or 2.
pub fn parse_qos(s: &str) -> Result<QoS, String> {
    match s {
        "0" => Ok(QoS::AtMostOnce),
        "1" => Ok(QoS::AtLeastOnce),
        "2" => Ok(QoS::ExactlyOnce),
        other => Err(format!("invalid QoS {other:?}: use 0, 1 or 2")),
    }
}

/// MQTT 5.0 properties from `-D`, by packet.
#[derive(Debug, Default)]
pub struct Properties {
    /// CONNECT properties.
    pub connect: ConnectProperties,
    /// PUBLISH properties.
    pub publish: PublishProperties,
    /// Will properties.
    pub will: WillProperties,
}

fn utf8(s: &str) -> anyhow::Result<Utf8Bytes> {
    Utf8Bytes::try_from(s).map_err(|e| anyhow!("invalid string {s:?}: {e}"))
}

fn number<T: std::str::FromStr>(id: &str, v: &str) -> anyhow::Result<T> {
    v.parse()
        .map_err(|_| anyhow!("invalid value {v:?} for property {id}"))
}

/// Parses the `-D` occurrences; `commands` are the ones the tool accepts.
///
/// # Errors
///
/// An unknown command or identifier, a bad value, or properties below MQTT
/// 5.0.
pub fn parse_properties(
    list: &[Vec<String>],
    version: ProtocolVersion,
    commands: &[&str],
) -> anyhow::Result<Properties> {
    let mut p = Properties::default();
    if list.is_empty() {
        return Ok(p);
    }
    if !version.is_v5() {
        bail!("-D properties need MQTT 5.0 (-V 5)");
    }
    for occ in list {
        let [cmd, id, rest @ ..] = occ.as_slice() else {
            bail!("-D needs COMMAND IDENTIFIER VALUE");
        };
        if !commands.contains(&cmd.as_str()) {
            bail!(
                "-D: unsupported command {cmd:?} (this tool accepts {})",
                commands.join(", ")
            );
        }
        let (value, value2) = match rest {
            [v] => (v.as_str(), None),
            [v, w] => (v.as_str(), Some(w.as_str())),
            _ => bail!("-D {cmd} {id}: missing value"),
        };
        if value2.is_some() && id != "user-property" {
            bail!("-D {cmd} {id} takes one value");
        }
        let user = || -> anyhow::Result<UserProperty> {
            let v2 = value2.ok_or_else(|| anyhow!("-D {cmd} user-property needs NAME VALUE"))?;
            Ok(UserProperty::new(utf8(value)?, utf8(v2)?))
        };
        let format = || -> anyhow::Result<PayloadFormat> {
            match value {
                "0" => Ok(PayloadFormat::Unspecified),
                "1" => Ok(PayloadFormat::Utf8),
                _ => bail!("payload-format-indicator is 0 or 1"),
            }
        };
        match (cmd.as_str(), id.as_str()) {
            ("connect", "session-expiry-interval") => {
                p.connect.session_expiry_interval = Some(number(id, value)?);
            }
            ("connect", "receive-maximum") => {
                p.connect.receive_maximum = Some(number::<NonZeroU16>(id, value)?);
            }
            ("connect", "maximum-packet-size") => {
                p.connect.maximum_packet_size = Some(number::<NonZeroU32>(id, value)?);
            }
            ("connect", "topic-alias-maximum") => {
                p.connect.topic_alias_maximum = Some(number(id, value)?);
            }
            ("connect", "request-response-information") => {
                p.connect.request_response_information = Some(number::<u8>(id, value)? != 0);
            }
            ("connect", "request-problem-information") => {
                p.connect.request_problem_information = Some(number::<u8>(id, value)? != 0);
            }
            ("connect", "authentication-method") => {
                p.connect.authentication_method = Some(utf8(value)?);
            }
            ("connect", "authentication-data") => {
                p.connect.authentication_data = Some(Bytes::from(value.as_bytes().to_vec()));
            }
            ("connect", "user-property") => p.connect.user_properties.push(user()?),
            ("publish", "payload-format-indicator") => {
                p.publish.payload_format_indicator = Some(format()?);
            }
            ("publish", "message-expiry-interval") => {
                p.publish.message_expiry_interval = Some(number(id, value)?);
            }
            ("publish", "content-type") => p.publish.content_type = Some(utf8(value)?),
            ("publish", "response-topic") => p.publish.response_topic = Some(utf8(value)?),
            ("publish", "correlation-data") => {
                p.publish.correlation_data = Some(Bytes::from(value.as_bytes().to_vec()));
            }
            ("publish", "user-property") => p.publish.user_properties.push(user()?),
            ("will", "will-delay-interval") => {
                p.will.will_delay_interval = Some(number(id, value)?);
            }
            ("will", "payload-format-indicator") => {
                p.will.payload_format_indicator = Some(format()?);
            }
            ("will", "message-expiry-interval") => {
                p.will.message_expiry_interval = Some(number(id, value)?);
            }
            ("will", "content-type") => p.will.content_type = Some(utf8(value)?),
            ("will", "response-topic") => p.will.response_topic = Some(utf8(value)?),
            ("will", "correlation-data") => {
                p.will.correlation_data = Some(Bytes::from(value.as_bytes().to_vec()));
            }
            ("will", "user-property") => p.will.user_properties.push(user()?),
            _ => bail!("-D: unknown property {id:?} for {cmd}"),
        }
    }
    Ok(p)
}

impl ConnArgs {
    /// Client options from the flags, and the `-D` properties for the
    /// other packets.
    ///
    /// # Errors
    ///
    /// Flags that do not make valid options.
    pub fn options(
        &self,
        program: &str,
        commands: &[&str],
    ) -> anyhow::Result<(ClientOptions, Properties)> {
        let mut o = match &self.url {
            Some(url) => ClientOptions::from_url(url).context("invalid -L URL")?,
            None => ClientOptions::new(self.host.clone(), self.port),
        };
        let props = parse_properties(&self.property_groups, self.version, commands)?;
        let id = match &self.id {
            Some(id) => id.clone(),
            None => format!("{program}-{}", std::process::id()),
        };
        o.client_id(id)
            .protocol(self.version)
            .keep_alive(self.keepalive)
            .clean_start(!self.persistent)
            // A command-line tool reports a failure instead of retrying.
            .reconnect(ReconnectOptions::disabled())
            .connect_timeout(Duration::from_secs(10));
        if let Some(u) = &self.username {
            match &self.password {
                Some(p) => o.credentials(u.clone(), p.clone().into_bytes()),
                None => o.username(u.clone()),
            };
        } else if self.password.is_some() {
            bail!("-P needs -u");
        }
        let expiry = match self.session_expiry {
            Some(-1) => Some(u32::MAX),
            Some(n) => Some(u32::try_from(n).context("invalid -x session expiry interval")?),
            None if self.persistent => Some(u32::MAX),
            None => None,
        };
        if let Some(e) = props.connect.session_expiry_interval.or(expiry) {
            if self.version.is_v5() {
                o.session_expiry_interval(e);
            }
        }
        if let Some(n) = props.connect.receive_maximum {
            o.receive_maximum(n);
        }
        if let Some(n) = props.connect.maximum_packet_size {
            o.max_incoming_packet_size(n);
        }
        if let Some(n) = props.connect.topic_alias_maximum {
            o.topic_alias_maximum(n);
        }
        o.connect_properties(props.connect.clone());
        if let Some(topic) = &self.will_topic {
            let name = mqtt_client::TopicName::try_from(topic.as_str())
                .map_err(|e| anyhow!("invalid will topic {topic:?}: {e}"))?;
            let payload = self.will_payload.clone().unwrap_or_default();
            let mut will = Will::new(name, payload.into_bytes());
            will.qos = self.will_qos;
            will.retain = self.will_retain;
            will.properties = props.will.clone();
            o.will(will);
        } else if !props.will.is_empty() {
            bail!("-D will ... needs --will-topic");
        }
        Ok((o, props))
    }

    /// Prints an error unless `--quiet`.
    pub fn error(&self, e: &anyhow::Error) {
        if !self.quiet {
            eprintln!("Error: {e:#}");
        }
    }
}

/// Prints every event to stderr (`-d`).
pub fn print_events(mut events: EventStream, id: String) {
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            match e {
                Event::Protocol(p) => eprintln!("Client {id} {p:?}"),
                other => eprintln!("Client {id} {other:?}"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn occ(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn properties_parse() {
        let p = parse_properties(
            &[
                occ(&["publish", "user-property", "k", "v"]),
                occ(&["publish", "message-expiry-interval", "30"]),
                occ(&["connect", "session-expiry-interval", "60"]),
                occ(&["will", "will-delay-interval", "5"]),
            ],
            ProtocolVersion::V5,
            &["connect", "publish", "will"],
        )
        .unwrap();
        assert_eq!(p.publish.user_properties.len(), 1);
        assert_eq!(p.publish.message_expiry_interval, Some(30));
        assert_eq!(p.connect.session_expiry_interval, Some(60));
        assert_eq!(p.will.will_delay_interval, Some(5));
        assert!(
            parse_properties(
                &[occ(&["publish", "content-type", "x"])],
                ProtocolVersion::V3_1_1,
                &["publish"]
            )
            .is_err()
        );
        assert!(
            parse_properties(
                &[occ(&["publish", "nonsense", "x"])],
                ProtocolVersion::V5,
                &["publish"]
            )
            .is_err()
        );
        assert!(
            parse_properties(
                &[occ(&["publish", "user-property", "k"])],
                ProtocolVersion::V5,
                &["publish"]
            )
            .is_err()
        );
    }
}
