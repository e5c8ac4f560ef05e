#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Interoperability: the `mqtt-broker` program with Debian's
//! `mosquitto_pub` / `mosquitto_sub` (2.0, `-V 311` and `-V 5`) and a
//! paho-mqtt 2.x script (`tests/paho_client.py`), and its configuration
//! file handling.
//!
//! Needs `mosquitto-clients` (apt) and `paho-mqtt` (pip) installed.

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BROKER: &str = env!("CARGO_BIN_EXE_mqtt-broker");
const TIMEOUT: Duration = Duration::from_secs(10);
/// How `mosquitto_sub` prints each message in these tests.
const FORMAT: &str = "MSG %t q=%q r=%r %p";

// ----- child processes ----------------------------------------------------------------------------

/// A child process, killed (and reaped) when dropped.
struct Guard {
    child: Child,
}

impl Guard {
    fn spawn(mut cmd: Command, what: &str) -> Self {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        Self { child }
    }

    /// Waits up to `timeout` for the process to exit.
    fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL, as if the machine had vanished.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The broker program on a free port, with `args` added.
struct BrokerProc {
    guard: Guard,
    port: u16,
    log: PathBuf,
}

impl BrokerProc {
    /// Starts the broker on a free port with `$SYS` off and `args` added.
    fn start(args: &[&str]) -> Self {
        let port = free_port();
        let mut all = vec![
            "-p".to_owned(),
            port.to_string(),
            "--sys-interval".to_owned(),
            "0".to_owned(),
        ];
        all.extend(args.iter().map(|s| (*s).to_owned()));
        Self::start_on(port, &all)
    }

    /// Starts the broker with exactly `args`, which make it listen on
    /// 127.0.0.1:`port`.
    fn start_on(port: u16, args: &[String]) -> Self {
        let log = std::env::temp_dir().join(format!(
            "mqtt-broker-interop-{}-{port}.log",
            std::process::id()
        ));
        let mut cmd = Command::new(BROKER);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut guard = Guard::spawn(cmd, "mqtt-broker");
        let deadline = Instant::now() + TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = guard.child.try_wait().unwrap() {
                panic!(
                    "mqtt-broker {args:?} exited ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "mqtt-broker did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { guard, port, log }
    }
}

impl Drop for BrokerProc {
    fn drop(&mut self) {
        // Still running: it did not crash during the test.
        let alive = matches!(self.guard.child.try_wait(), Ok(None));
        self.guard.kill();
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let _ = std::fs::remove_file(&self.log);
        if !alive && !std::thread::panicking() {
            panic!("mqtt-broker died during the test: {log}");
        }
    }
}

/// Runs `mosquitto_pub` to completion and asserts it succeeded.
fn mosquitto_pub(port: u16, args: &[&str]) {
    let port = port.to_string();
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(["-h", "127.0.0.1", "-p", &port])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut g = Guard::spawn(cmd, "mosquitto_pub");
    let status = g
        .wait(TIMEOUT)
        .unwrap_or_else(|| panic!("mosquitto_pub {args:?} hangs"));
    let mut err = String::new();
    if let Some(e) = g.child.stderr.as_mut() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "mosquitto_pub {args:?}: {status} {err}");
}

/// A running `mosquitto_sub`, its output read line by line.
struct Sub {
    guard: Guard,
    lines: mpsc::Receiver<String>,
    /// Every line read so far (for error messages).
    seen: Vec<String>,
}

impl Sub {
    /// Starts `mosquitto_sub` with `args` (debug output on, messages as
    /// [`FORMAT`] unless `args` gives `-F`) and waits for its SUBACK.
    fn start(port: u16, args: &[&str]) -> Self {
        let mut s = Self::spawn(port, args);
        s.wait_line(|l| l.starts_with("Subscribed (mid"));
        s
    }

    /// Starts `mosquitto_sub` without waiting for anything.
    fn spawn(port: u16, args: &[&str]) -> Self {
        let port = port.to_string();
        // Line-buffered: its debug lines (the SUBACK) must come out at once.
        let mut cmd = Command::new("stdbuf");
        cmd.args(["-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", &port, "-d"]);
        if !args.contains(&"-F") {
            cmd.args(["-F", FORMAT]);
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut guard = Guard::spawn(cmd, "mosquitto_sub");
        let stdout = guard.child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            guard,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines until one satisfies `pick`.
    fn wait_line(&mut self, pick: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if pick(&l) {
                        return l;
                    }
                }
                Err(e) => panic!("mosquitto_sub: {e}; output so far: {:#?}", self.seen),
            }
        }
    }

    /// The next `n` messages (lines starting with `MSG `).
    fn messages(&mut self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| self.wait_line(|l| l.starts_with("MSG ")))
            .collect()
    }

    /// Waits for the process to exit by itself (`-C`, `-E`, `-W`); returns
    /// its status and the messages it printed that were not read yet.
    fn finish(mut self) -> (ExitStatus, Vec<String>) {
        let status = self
            .guard
            .wait(TIMEOUT)
            .unwrap_or_else(|| panic!("mosquitto_sub did not exit: {:#?}", self.seen));
        let rest = self
            .lines
            .recv_timeout(Duration::from_secs(1))
            .into_iter()
            .chain(self.lines.try_iter())
            .filter(|l| l.starts_with("MSG "))
            .collect();
        (status, rest)
    }
}

fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

// ----- mosquitto_pub / mosquitto_sub --------------------------------------------------------------

/// Every QoS from each protocol version to each, and the QoS downgrade.
#[test]
fn mosquitto_qos_levels() {
    let b = BrokerProc::start(&[]);
    for pv in ["311", "5"] {
        for sv in ["311", "5"] {
            let base = format!("interop/qos/{pv}-{sv}");
            let filter = format!("{base}/#");
            let mut sub = Sub::start(b.port, &["-V", sv, "-q", "2", "-t", &filter, "-C", "3"]);
            for q in ["0", "1", "2"] {
                mosquitto_pub(
                    b.port,
                    &[
                        "-V",
                        pv,
                        "-q",
                        q,
                        "-t",
                        &format!("{base}/{q}"),
                        "-m",
                        &format!("qos {q} from {pv}"),
                    ],
                );
            }
            let got = sub.messages(3);
            assert_eq!(
                got,
                [
                    format!("MSG {base}/0 q=0 r=0 qos 0 from {pv}"),
                    format!("MSG {base}/1 q=1 r=0 qos 1 from {pv}"),
                    format!("MSG {base}/2 q=2 r=0 qos 2 from {pv}"),
                ]
            );
            let (status, rest) = sub.finish();
            assert!(status.success(), "{status}");
            assert!(rest.is_empty(), "{rest:?}");
        }
    }
    // Delivered at the granted QoS.
    for v in ["311", "5"] {
        let mut sub = Sub::start(
            b.port,
            &["-V", v, "-q", "1", "-t", "interop/down", "-C", "1"],
        );
        mosquitto_pub(
            b.port,
            &["-V", v, "-q", "2", "-t", "interop/down", "-m", "at 2"],
        );
        assert_eq!(sub.messages(1), ["MSG interop/down q=1 r=0 at 2"]);
        assert!(sub.finish().0.success());
    }
}

/// `-r`: a retained message is delivered on subscription with RETAIN set,
/// live ones without it, and an empty retained message clears it.
#[test]
fn mosquitto_retained() {
    let b = BrokerProc::start(&[]);
    for v in ["311", "5"] {
        let t = format!("interop/retained/{v}");
        mosquitto_pub(b.port, &["-V", v, "-q", "1", "-r", "-t", &t, "-m", "kept"]);
        mosquitto_pub(
            b.port,
            &["-V", v, "-q", "0", "-r", "-t", &t, "-m", "kept 2"],
        );
        let mut sub = Sub::start(b.port, &["-V", v, "-q", "1", "-t", &t, "-C", "2"]);
        assert_eq!(sub.messages(1), [format!("MSG {t} q=0 r=1 kept 2")]);
        mosquitto_pub(b.port, &["-V", v, "-q", "1", "-r", "-t", &t, "-m", "live"]);
        assert_eq!(sub.messages(1), [format!("MSG {t} q=1 r=0 live")]);
        assert!(sub.finish().0.success());

        // The replacement is what a new subscriber gets.
        let mut sub = Sub::start(b.port, &["-V", v, "-q", "1", "-t", &t, "-C", "1"]);
        assert_eq!(sub.messages(1), [format!("MSG {t} q=1 r=1 live")]);
        assert!(sub.finish().0.success());

        // Cleared by an empty retained message (-n).
        mosquitto_pub(b.port, &["-V", v, "-r", "-t", &t, "-n"]);
        let sub = Sub::start(b.port, &["-V", v, "-t", &t, "--retained-only", "-W", "1"]);
        let (_, got) = sub.finish();
        assert!(got.is_empty(), "{got:?}");
    }
}

/// The retained message of the previous test, read in one go.
#[test]
fn mosquitto_retained_exact() {
    let b = BrokerProc::start(&[]);
    for v in ["311", "5"] {
        let t = format!("interop/retained-exact/{v}");
        mosquitto_pub(b.port, &["-V", v, "-q", "2", "-r", "-t", &t, "-m", "kept"]);
        let mut sub = Sub::start(b.port, &["-V", v, "-q", "2", "-t", &t, "-C", "1"]);
        assert_eq!(sub.messages(1), [format!("MSG {t} q=2 r=1 kept")]);
        assert!(sub.finish().0.success());
    }
}

/// `-c -i ID`: subscribe, go away, messages published at QoS 1 and 2 while
/// away are delivered on return, in order.
#[test]
fn mosquitto_persistent_session() {
    let b = BrokerProc::start(&[]);
    for v in ["311", "5"] {
        let id = format!("interop-persist-{v}");
        let t = format!("interop/persist/{v}");
        // Subscribe and exit once subscribed (-E).
        let sub = Sub::start(
            b.port,
            &["-V", v, "-c", "-i", &id, "-q", "2", "-t", &t, "-E"],
        );
        assert!(sub.finish().0.success());
        for (q, m) in [("1", "away 1"), ("1", "away 2"), ("2", "away 3")] {
            mosquitto_pub(b.port, &["-V", v, "-q", q, "-t", &t, "-m", m]);
        }
        let mut sub = Sub::spawn(
            b.port,
            &["-V", v, "-c", "-i", &id, "-q", "2", "-t", &t, "-C", "3"],
        );
        assert_eq!(
            sub.messages(3),
            [
                format!("MSG {t} q=1 r=0 away 1"),
                format!("MSG {t} q=1 r=0 away 2"),
                format!("MSG {t} q=2 r=0 away 3"),
            ]
        );
        assert!(sub.seen.iter().any(|l| l.contains("received CONNACK (0)")));
        assert!(sub.finish().0.success());
    }
}

/// `--max-queued N`: a persistent client that is away gets the first N
/// messages (the queue drops new ones when full) and nothing else.
#[test]
fn max_queued_flag() {
    let b = BrokerProc::start(&["--max-queued", "5", "--bind", "127.0.0.1"]);
    let t = "interop/queued";
    let sub = Sub::start(
        b.port,
        &["-V", "311", "-c", "-i", "queued", "-q", "1", "-t", t, "-E"],
    );
    assert!(sub.finish().0.success());
    for i in 1..=8 {
        mosquitto_pub(b.port, &["-q", "1", "-t", t, "-m", &format!("m{i}")]);
    }
    let mut sub = Sub::spawn(
        b.port,
        &[
            "-V", "311", "-c", "-i", "queued", "-q", "1", "-t", t, "-W", "2",
        ],
    );
    let got = sub.messages(5);
    assert_eq!(
        got,
        (1..=5)
            .map(|i| format!("MSG {t} q=1 r=0 m{i}"))
            .collect::<Vec<_>>()
    );
    let (_, rest) = sub.finish();
    assert!(rest.is_empty(), "{rest:?}");
}

/// `max_sessions` in the configuration file: with one session held (a
/// persistent client that went away), a new client is refused (CONNACK
/// 0x97 Quota exceeded: `mosquitto_pub` fails), and the absent client
/// resumes its session.
#[test]
fn max_sessions_config_key() {
    let dir = std::env::temp_dir().join(format!(
        "mqtt-broker-interop-sessions-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sessions.toml");
    std::fs::write(&path, "[limits]\nmax_sessions = 1\n").unwrap();
    let b = BrokerProc::start(&["-c", path.to_str().unwrap()]);
    let t = "interop/sessions";
    let kept = [
        "-V", "5", "-c", "-x", "3600", "-i", "kept", "-q", "1", "-t", t,
    ];
    let sub = Sub::start(b.port, &[&kept[..], &["-E"]].concat());
    assert!(sub.finish().0.success());

    let port = b.port.to_string();
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(["-h", "127.0.0.1", "-p", &port, "-V", "5", "-i", "new"])
        .args(["-q", "1", "-t", t, "-m", "refused"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut g = Guard::spawn(cmd, "mosquitto_pub");
    let status = g.wait(TIMEOUT).expect("mosquitto_pub hangs");
    assert!(!status.success(), "a session beyond max_sessions: {status}");

    // The held session is resumed at the limit.
    let sub = Sub::start(b.port, &[&kept[..], &["-E"]].concat());
    assert!(sub.finish().0.success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--will-*`: the will of a client that vanishes (SIGKILL) is published;
/// the will of a client that disconnects normally is not.
#[test]
fn mosquitto_will() {
    let b = BrokerProc::start(&[]);
    for v in ["311", "5"] {
        let t = format!("interop/will/{v}");
        let mut watcher = Sub::start(b.port, &["-V", v, "-q", "1", "-t", &t, "-C", "1"]);
        let will = |id: &str, payload: &str, extra: &[&str]| {
            let mut args = vec![
                "-V",
                v,
                "-i",
                id,
                "-t",
                "interop/will/none",
                "--will-topic",
                &t,
                "--will-payload",
                payload,
                "--will-qos",
                "1",
            ];
            args.extend_from_slice(extra);
            Sub::start(b.port, &args)
        };
        // A normal DISCONNECT (-E): no will.
        let polite = will(&format!("polite-{v}"), "polite left", &["-E"]);
        assert!(polite.finish().0.success());
        // Killed: the will is published.
        let mut killed = will(&format!("killed-{v}"), "killed", &[]);
        killed.guard.kill();
        assert_eq!(watcher.messages(1), [format!("MSG {t} q=1 r=0 killed")]);
        assert!(watcher.finish().0.success());
    }
}

/// MQTT 5.0 properties set by `mosquitto_pub -D publish ...` reach a
/// `mosquitto_sub -V 5` unchanged; a 3.1.1 subscriber gets the message.
#[test]
fn mosquitto_v5_properties() {
    let b = BrokerProc::start(&[]);
    let t = "interop/props";
    let mut v5 = Sub::start(
        b.port,
        &[
            "-V",
            "5",
            "-q",
            "2",
            "-t",
            t,
            "-C",
            "1",
            "-F",
            "MSG %t q=%q %p|%P|%C|%R|%D|%F|%E",
        ],
    );
    let mut v3 = Sub::start(b.port, &["-V", "311", "-q", "2", "-t", t, "-C", "1"]);
    mosquitto_pub(
        b.port,
        &[
            "-V",
            "5",
            "-q",
            "2",
            "-t",
            t,
            "-m",
            "with properties",
            "-D",
            "publish",
            "user-property",
            "key",
            "value",
            "-D",
            "publish",
            "user-property",
            "key",
            "second",
            "-D",
            "publish",
            "content-type",
            "text/plain",
            "-D",
            "publish",
            "response-topic",
            "interop/reply",
            "-D",
            "publish",
            "correlation-data",
            "corr-1",
            "-D",
            "publish",
            "payload-format-indicator",
            "1",
            "-D",
            "publish",
            "message-expiry-interval",
            "60",
        ],
    );
    let got = v5.messages(1).remove(0);
    let prefix = "MSG interop/props q=2 with properties|key:value key:second|text/plain|\
                  interop/reply|corr-1|1|";
    assert!(
        got == format!("{prefix}60") || got == format!("{prefix}59"),
        "{got}"
    );
    assert_eq!(
        v3.messages(1),
        ["MSG interop/props q=2 r=0 with properties"]
    );
    assert!(v5.finish().0.success());
    assert!(v3.finish().0.success());
}

// ----- paho-mqtt ----------------------------------------------------------------------------------

#[test]
fn paho_mqtt() {
    let b = BrokerProc::start(&[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/paho_client.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .arg(b.port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut g = Guard::spawn(cmd, "python3 paho_client.py");
    let mut out = String::new();
    let mut stdout = g.child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let status = g.wait(Duration::from_secs(60));
    if status.is_none() {
        g.kill();
    }
    let out = reader.join().unwrap();
    let mut err = String::new();
    if let Some(e) = g.child.stderr.as_mut() {
        let _ = e.read_to_string(&mut err);
    }
    let status = status.unwrap_or_else(|| panic!("paho script hangs: {out}{err}"));
    assert!(
        status.success(),
        "paho script failed ({status}):\n{out}\n{err}"
    );
    let mut expected = Vec::new();
    for p in ["v3.1.1", "v5"] {
        for s in ["v3.1.1", "v5"] {
            let name = format!("{p}->{s}");
            expected.push(format!("{name} suback [2]"));
            for q in 0..3 {
                expected.push(format!(
                    "{name} interop/paho/{name}/{q} 'qos {q} from {p}' qos={q} retain=0"
                ));
            }
        }
    }
    expected.extend(lines(&[
        "downgrade suback [1]",
        "downgrade interop/paho/down 'sent at 2' qos=1 retain=0",
    ]));
    for v in ["v3.1.1", "v5"] {
        let t = format!("interop/paho/retained/{v}");
        expected.push(format!("{v} retained {t} 'kept by {v}' qos=1 retain=1"));
        expected.push(format!("{v} live {t} 'replaced' qos=1 retain=0"));
        expected.push(format!("{v} clear {t} '' qos=0 retain=0"));
        expected.push(format!("{v} cleared"));
    }
    for q in 0..3 {
        expected.push(format!(
            "props qos={q} payload={{\"n\": {q}}} user=[('key', 'value'), ('key', 'second'), \
             ('other', 'x y')] response=interop/paho/reply correlation=b'\\x00\\x01corr' \
             content=application/json format=1 expiry_ok=True"
        ));
    }
    expected.push("props to v3.1.1 interop/paho/props 'to 3.1.1' qos=1 retain=0".to_owned());
    for i in 0..3 {
        expected.push(format!(
            "request/response interop/paho/reply/{i} 'answer to question {i}' \
             correlation=b'id-{i}'"
        ));
    }
    expected.extend(lines(&[
        "shared suback [1]",
        "shared suback [1]",
        "shared plain got 40 in order=True",
        "shared group got 40 unique=40 every member=True",
    ]));
    for v in ["v3.1.1", "v5"] {
        let t = format!("interop/paho/persist/{v}");
        expected.push(format!("{v} persistent session_present=True"));
        expected.push(format!("{v} persistent {t} 'while away 1' qos=1 retain=0"));
        expected.push(format!("{v} persistent {t} 'while away 2' qos=2 retain=0"));
    }
    expected.push("done".to_owned());
    let got: Vec<String> = out.lines().map(str::to_owned).collect();
    assert_eq!(got, expected, "stderr: {err}");
}

// ----- configuration ------------------------------------------------------------------------------

/// Runs the broker with `args`, expecting it to exit at once; returns its
/// status and stderr.
fn run_failing(args: &[&str]) -> (ExitStatus, String) {
    let mut cmd = Command::new(BROKER);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut g = Guard::spawn(cmd, "mqtt-broker");
    let status = g.wait(TIMEOUT);
    let mut err = String::new();
    if status.is_none() {
        g.kill();
    }
    if let Some(e) = g.child.stderr.as_mut() {
        let _ = e.read_to_string(&mut err);
    }
    let status = status.unwrap_or_else(|| panic!("mqtt-broker {args:?} did not exit: {err}"));
    (status, err)
}

/// A bad configuration file: the program exits non-zero with a message
/// that names the file and the problem.
#[test]
fn bad_config_files() {
    let dir = std::env::temp_dir().join(format!("mqtt-broker-interop-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port().to_string();
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "unknown-top.toml",
            "listners = [\"127.0.0.1:1883\"]\n",
            &["unknown field", "listners"],
        ),
        (
            "unknown-limit.toml",
            "[limits]\nmax_conections = 10\n",
            &["unknown field", "max_conections"],
        ),
        (
            "unknown-table.toml",
            "[limitz]\nmax_connections = 10\n",
            &["unknown field", "limitz"],
        ),
        (
            "bad-type.toml",
            "[limits]\nmax_connections = \"many\"\n",
            &["max_connections", "invalid type"],
        ),
        (
            "bad-range.toml",
            "[limits]\nmax_inflight = 70000\n",
            &["max_inflight"],
        ),
        (
            "zero-inflight.toml",
            "[limits]\nmax_inflight = 0\n",
            &["max_inflight must be at least 1"],
        ),
        (
            "bad-qos.toml",
            "[features]\nmaximum_qos = 3\n",
            &["maximum_qos must be 0, 1 or 2"],
        ),
        (
            "bad-policy.toml",
            "[limits]\nqueue_policy = \"drop-everything\"\n",
            &["queue_policy", "drop-everything"],
        ),
        (
            "bad-listener.toml",
            "listeners = [\"localhost\"]\n",
            &["listeners"],
        ),
        (
            "empty-listeners.toml",
            "listeners = []\n",
            &["listeners", "empty"],
        ),
        (
            "not-toml.toml",
            "this is not toml\n",
            &["invalid config file"],
        ),
        (
            "zero-sessions.toml",
            "[limits]\nmax_sessions = 0\n",
            &["max_sessions must be at least 1"],
        ),
        (
            "zero-retained.toml",
            "[limits]\nmax_retained_messages = 0\n",
            &["max_retained_messages must be at least 1"],
        ),
        (
            "zero-retained-bytes.toml",
            "[limits]\nmax_retained_bytes = 0\n",
            &["max_retained_bytes must be at least 1"],
        ),
        (
            "zero-timeout.toml",
            "[limits]\nconnect_timeout_secs = 0\n",
            &["connect_timeout must be at least 1"],
        ),
        (
            "bad-scheduling.toml",
            "scheduling = \"fifo\"\n",
            &["scheduling", "fifo"],
        ),
        ("bad-log.toml", "log_level = \"loud=[\"\n", &["log"]),
        (
            "bad-log-level.toml",
            "log_level = \"warning\"\n",
            &["log level", "\"warning\" is not a level"],
        ),
    ];
    for (name, text, wanted) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let (status, err) = run_failing(&["-c", path.to_str().unwrap(), "-p", &port]);
        assert!(!status.success(), "{name}: exited with {status}: {err}");
        assert_eq!(status.code(), Some(2), "{name}: {err}");
        assert!(err.starts_with("mqtt-broker: "), "{name}: {err}");
        for w in *wanted {
            assert!(err.contains(w), "{name}: {w:?} not in {err:?}");
        }
        // The parse errors name the file.
        if !name.starts_with("zero")
            && !name.starts_with("empty")
            && !name.starts_with("bad-qos")
            && !name.starts_with("bad-log")
        {
            assert!(
                err.contains(name),
                "{name}: the file is not named in {err:?}"
            );
        }
        // One line or a few, not a backtrace.
        assert!(err.lines().count() <= 12, "{name}: {err}");
    }
    // A file that does not exist.
    let missing = dir.join("missing.toml");
    let (status, err) = run_failing(&["-c", missing.to_str().unwrap()]);
    assert!(!status.success());
    assert!(err.contains("cannot read config file"), "{err}");
    assert!(err.contains("missing.toml"), "{err}");
    // A bad flag.
    let (status, err) = run_failing(&["--max-inflight", "0", "-p", &port]);
    assert!(!status.success());
    assert!(err.contains("max_inflight must be at least 1"), "{err}");
    let (status, err) = run_failing(&["--max-subscriptions-per-client", "0", "-p", &port]);
    assert!(!status.success());
    assert!(
        err.contains("max_subscriptions_per_client must be at least 1"),
        "{err}"
    );
    let (status, err) = run_failing(&["--scheduling", "fifo", "-p", &port]);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("fifo"), "{err}");
    let (status, _) = run_failing(&["--no-such-flag"]);
    assert!(!status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The scheduling policy of every thread of a running broker (field 41 of
/// `/proc/PID/task/TID/stat`: 0 `SCHED_OTHER`, 3 `SCHED_BATCH`).
#[cfg(target_os = "linux")]
fn thread_policies(pid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let stat = std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap();
        // The fields after the command name, which is in parentheses and
        // may hold spaces, start with field 3.
        let rest = &stat[stat.rfind(')').unwrap() + 1..];
        let policy = rest.split_whitespace().nth(41 - 3).unwrap();
        v.push(policy.parse().unwrap());
    }
    v
}

/// `SCHED_BATCH` by default, for every thread, at one thread or several;
/// `--scheduling normal` or `scheduling = "normal"` in the file keeps the
/// kernel's default policy, and the flag overrides the file.
#[cfg(target_os = "linux")]
#[test]
fn scheduling_policy() {
    let dir =
        std::env::temp_dir().join(format!("mqtt-broker-interop-sched-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let normal = dir.join("normal.toml");
    std::fs::write(&normal, "scheduling = \"normal\"\n").unwrap();
    let normal = normal.to_str().unwrap();
    for (args, want) in [
        (&[][..], 3),
        (&["--threads", "2"][..], 3),
        (&["--scheduling", "normal"][..], 0),
        (&["--scheduling", "batch", "--threads", "2"][..], 3),
        (&["-c", normal][..], 0),
        (&["-c", normal, "--scheduling", "batch"][..], 3),
    ] {
        let b = BrokerProc::start(args);
        let policies = thread_policies(b.guard.child.id());
        assert!(!policies.is_empty());
        assert!(
            policies.iter().all(|&p| p == want),
            "{args:?}: {policies:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--log-level warning` (or `log_level = "warning"` in the file; the
/// documented values are error, warn, info, debug, trace) is accepted
/// without a word: tracing-subscriber reads "warning" as a *target* named
/// `warning`, and everything else, warnings and errors included, is
/// silenced. A malformed directive (`loud=[`) is refused with exit code 2,
/// so a misspelt level should be too, or at least not hide warnings.
#[test]
fn misspelt_log_level_is_reported_not_silently_hiding_warnings() {
    let port = free_port();
    let log = std::env::temp_dir().join(format!("review-broker-{}.log", std::process::id()));
    let mut child = Command::new(BROKER)
        .args([
            "-p",
            &port.to_string(),
            "--sys-interval",
            "0",
            "--max-connections",
            "1",
            "--log-level",
            "warning",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut exited = None;
    let mut first = None;
    while Instant::now() < deadline {
        if let Some(s) = child.try_wait().unwrap() {
            exited = Some(s);
            break;
        }
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            first = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if first.is_some() {
        // Over --max-connections: the broker closes it and logs a warning.
        let mut second = TcpStream::connect(("127.0.0.1", port)).unwrap();
        second
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let _ = second.read(&mut [0u8; 16]);
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = child.kill();
    let _ = child.wait();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let rejected = exited.is_some_and(|s| s.code() == Some(2));
    assert!(
        rejected || stderr.contains("max_connections reached"),
        "--log-level warning accepted ({exited:?}) and the max_connections warning was not logged; stderr: {stderr:?}"
    );
}

/// The example configuration starts the broker (with `-p` overriding its
/// listener), and clients use it.
#[test]
fn example_config_starts() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("broker.toml");
    let port = free_port();
    let args: Vec<String> = vec![
        "-c".to_owned(),
        example.to_str().unwrap().to_owned(),
        "-p".to_owned(),
        port.to_string(),
    ];
    let b = BrokerProc::start_on(port, &args);
    let mut sub = Sub::start(
        b.port,
        &["-V", "5", "-q", "1", "-t", "interop/example", "-C", "1"],
    );
    mosquitto_pub(
        b.port,
        &["-q", "1", "-t", "interop/example", "-m", "configured"],
    );
    assert_eq!(sub.messages(1), ["MSG interop/example q=1 r=0 configured"]);
    assert!(sub.finish().0.success());
    // Its $SYS topics are on (sys_interval_secs = 10: the first comes at
    // once).
    let mut sys = Sub::start(
        b.port,
        &["-V", "311", "-t", "$SYS/broker/version", "-C", "1"],
    );
    let got = sys.messages(1).remove(0);
    assert!(
        got.starts_with("MSG $SYS/broker/version q=0 r=1 mqtt-broker-core "),
        "{got}"
    );
    assert!(sys.finish().0.success());
}

/// Session takeover: a second `mosquitto_sub -V 5` with the same client id
/// makes the broker disconnect the first with reason 0x8E (Session taken
/// over); the new one is served.
#[test]
fn mosquitto_session_takeover() {
    let b = BrokerProc::start(&[]);
    let mut first = Sub::start(
        b.port,
        &["-V", "5", "-i", "same-id", "-t", "interop/takeover"],
    );
    let mut second = Sub::start(
        b.port,
        &[
            "-V",
            "5",
            "-i",
            "same-id",
            "-t",
            "interop/takeover",
            "-C",
            "1",
        ],
    );
    first.wait_line(|l| l == "Received DISCONNECT (142)");
    assert!(
        first.guard.wait(TIMEOUT).is_some(),
        "the first one is still connected"
    );
    mosquitto_pub(b.port, &["-t", "interop/takeover", "-m", "to the second"]);
    assert_eq!(
        second.messages(1),
        ["MSG interop/takeover q=0 r=0 to the second"]
    );
    assert!(second.finish().0.success());
}

/// MQTT 5.0 Will Delay Interval (`-D will will-delay-interval`): the will
/// of a killed client comes after the delay, with its properties; a client
/// that comes back within the delay cancels it.
#[test]
fn mosquitto_will_delay() {
    let b = BrokerProc::start(&[]);
    let t = "interop/will-delay";
    let mut watcher = Sub::start(
        b.port,
        &[
            "-V",
            "5",
            "-q",
            "1",
            "-t",
            t,
            "-C",
            "1",
            "-F",
            "MSG %t q=%q %p|%P|%C",
        ],
    );
    // Clean start 0 (-c), so that coming back resumes the session.
    let will = |id: &str, payload: &str| {
        Sub::start(
            b.port,
            &[
                "-V",
                "5",
                "-i",
                id,
                "-c",
                "-x",
                "60",
                "-t",
                "interop/will/none",
                "--will-topic",
                t,
                "--will-payload",
                payload,
                "--will-qos",
                "1",
                "-D",
                "will",
                "will-delay-interval",
                "1",
                "-D",
                "will",
                "user-property",
                "why",
                "killed",
                "-D",
                "will",
                "content-type",
                "text/plain",
            ],
        )
    };
    // Back within the delay: no will.
    let mut back = will("delay-back", "came back");
    back.guard.kill();
    let again = will("delay-back", "came back");
    // Gone for good: the will, after the delay.
    let mut gone = will("delay-gone", "gone for good");
    let killed = Instant::now();
    gone.guard.kill();
    assert_eq!(
        watcher.messages(1),
        [format!("MSG {t} q=1 gone for good|why:killed|text/plain")]
    );
    let after = killed.elapsed();
    assert!(after >= Duration::from_millis(900), "will after {after:?}");
    assert!(after < Duration::from_secs(5), "will after {after:?}");
    assert!(watcher.finish().0.success());
    drop(again);
}
