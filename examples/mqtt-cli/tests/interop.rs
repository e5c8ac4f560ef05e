//! Interoperability through Mosquitto: `mqtt-sub` receives what
//! `mosquitto_pub` sends, and `mosquitto_sub` receives what `mqtt-pub` sends,
//! at MQTT 3.1.1 and 5.0. Also the tools' exit codes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "../../../mqtt-client/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::Mosquitto;

const MQTT_PUB: &str = env!("CARGO_BIN_EXE_mqtt-pub");
const MQTT_SUB: &str = env!("CARGO_BIN_EXE_mqtt-sub");
const MOSQUITTO_PUB: &str = "/usr/bin/mosquitto_pub";
const MOSQUITTO_SUB: &str = "/usr/bin/mosquitto_sub";
/// mosquitto_sub buffers its piped output: `stdbuf -oL` (coreutils) makes
/// it line buffered, so that its SUBACK debug line is seen in time.
const STDBUF: &str = "/usr/bin/stdbuf";

/// A running subscriber whose output is read line by line.
struct Sub {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

fn lines(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Sub {
    fn spawn(program: &str, args: &[&str]) -> Self {
        let mut child = Command::new(program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} runs: {e}"));
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits for a line containing `needle` on `which` output.
    fn wait_for(rx: &mpsc::Receiver<String>, needle: &str) {
        loop {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(l) if l.contains(needle) => return,
                Ok(_) => {}
                Err(e) => panic!("no line with {needle:?}: {e}"),
            }
        }
    }

    fn next_line(&self) -> String {
        self.stdout
            .recv_timeout(Duration::from_secs(10))
            .expect("a line from the subscriber")
    }

    fn finish(mut self) -> i32 {
        for _ in 0..500 {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("subscriber did not exit");
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(program: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(data) = stdin {
        input.write_all(data).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn mqtt_sub_receives_what_mosquitto_pub_sends() {
    let broker = Mosquitto::start();
    let port = broker.port.to_string();
    for v in ["311", "5"] {
        let sub = Sub::spawn(
            MQTT_SUB,
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-V",
                v,
                "-t",
                "i/#",
                "-q",
                "2",
                "-v",
                "-C",
                "4",
                "-d",
            ],
        );
        Sub::wait_for(&sub.stderr, "SubAck");
        for (qos, msg) in [("0", "zero"), ("1", "one"), ("2", "two")] {
            run(
                MOSQUITTO_PUB,
                &[
                    "-p",
                    &port,
                    "-V",
                    &format!("mqttv{v}"),
                    "-t",
                    &format!("i/{qos}"),
                    "-m",
                    msg,
                    "-q",
                    qos,
                ],
                None,
            );
            assert_eq!(sub.next_line(), format!("i/{qos} {msg}"));
        }
        run(
            MOSQUITTO_PUB,
            &["-p", &port, "-t", "i/l", "-l", "-q", "1"],
            Some(b"line\n"),
        );
        assert_eq!(sub.next_line(), "i/l line");
        assert_eq!(sub.finish(), 0, "-C 4 exits 0 after four messages");
    }
}

#[test]
fn mosquitto_sub_receives_what_mqtt_pub_sends() {
    let broker = Mosquitto::start();
    let port = broker.port.to_string();
    for v in ["311", "5"] {
        let sub = Sub::spawn(
            STDBUF,
            &[
                "-oL",
                MOSQUITTO_SUB,
                "-p",
                &port,
                "-V",
                &format!("mqttv{v}"),
                "-t",
                "j/#",
                "-q",
                "2",
                "-F",
                "%t %p",
                "-C",
                "6",
                "-d",
            ],
        );
        Sub::wait_for(&sub.stdout, "SUBACK");
        for qos in ["0", "1", "2"] {
            run(
                MQTT_PUB,
                &[
                    "-p",
                    &port,
                    "-V",
                    v,
                    "-t",
                    &format!("j/{qos}"),
                    "-m",
                    &format!("q{qos}"),
                    "-q",
                    qos,
                ],
                None,
            );
            Sub::wait_for(&sub.stdout, &format!("j/{qos} q{qos}"));
        }
        // A file, stdin lines, and an empty message.
        let file = std::env::temp_dir().join(format!("mqtt-pub-test-{}-{v}", std::process::id()));
        std::fs::write(&file, b"from a file").unwrap();
        run(
            MQTT_PUB,
            &[
                "-p",
                &port,
                "-V",
                v,
                "-t",
                "j/f",
                "-f",
                file.to_str().unwrap(),
                "-q",
                "1",
            ],
            None,
        );
        let _ = std::fs::remove_file(&file);
        Sub::wait_for(&sub.stdout, "j/f from a file");
        run(
            MQTT_PUB,
            &["-p", &port, "-V", v, "-t", "j/l", "-l", "-q", "2"],
            Some(b"first\nsecond\n"),
        );
        Sub::wait_for(&sub.stdout, "j/l first");
        Sub::wait_for(&sub.stdout, "j/l second");
        assert_eq!(sub.finish(), 0);
    }

    // MQTT 5.0 properties given with -D reach mosquitto_sub.
    let sub = Sub::spawn(
        STDBUF,
        &[
            "-oL",
            MOSQUITTO_SUB,
            "-p",
            &port,
            "-V",
            "mqttv5",
            "-t",
            "p",
            "-F",
            "%t %p props=%P",
            "-C",
            "1",
            "-d",
        ],
    );
    Sub::wait_for(&sub.stdout, "SUBACK");
    run(
        MQTT_PUB,
        &[
            "-p",
            &port,
            "-V",
            "5",
            "-t",
            "p",
            "-m",
            "with props",
            "-q",
            "1",
            "-D",
            "publish",
            "user-property",
            "color",
            "blue",
            "-D",
            "publish",
            "message-expiry-interval",
            "60",
        ],
        None,
    );
    Sub::wait_for(&sub.stdout, "p with props props=color:blue");
    assert_eq!(sub.finish(), 0);
}

#[test]
fn mqtt_pub_retained_reaches_mqtt_sub_and_w_times_out() {
    let broker = Mosquitto::start();
    let port = broker.port.to_string();
    run(
        MQTT_PUB,
        &["-p", &port, "-t", "r", "-m", "kept", "-r", "-q", "1"],
        None,
    );
    let out = run(MQTT_SUB, &["-p", &port, "-t", "r", "-C", "1", "-v"], None);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "r kept\n");
    // -R skips the retained message: nothing else arrives before -W.
    let sub = Command::new(MQTT_SUB)
        .args(["-p", &port, "-t", "r", "-R", "-W", "1", "--quiet"])
        .output()
        .unwrap();
    assert_eq!(sub.status.code(), Some(27), "-W timeout exits 27");
    assert!(sub.stdout.is_empty());
    // -n publishes an empty message; -N prints no end of line.
    let sub = Sub::spawn(MQTT_SUB, &["-p", &port, "-t", "e", "-C", "1", "-v", "-d"]);
    Sub::wait_for(&sub.stderr, "SubAck");
    run(MQTT_PUB, &["-p", &port, "-t", "e", "-n"], None);
    assert_eq!(sub.next_line(), "e ");
    assert_eq!(sub.finish(), 0);
}

#[test]
fn failures_exit_non_zero_with_a_message() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = Command::new(MQTT_PUB)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "x",
            "-m",
            "y",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect"), "{err}");

    let out = Command::new(MQTT_PUB)
        .args(["-t", "a/#", "-m", "y"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid topic"));

    let out = Command::new(MQTT_PUB)
        .args(["-t", "a", "-m", "y", "-D", "publish", "content-type", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MQTT 5.0"));

    let out = Command::new(MQTT_SUB).args(["-p", "1"]).output().unwrap();
    assert_ne!(out.status.code(), Some(0), "-t is required");

    let out = Command::new(MQTT_SUB).args(["--help"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("-h, --host"));
}
