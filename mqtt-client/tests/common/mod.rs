//! Test fixtures: the servers the tests run against (a Mosquitto broker
//! started on a free loopback port, or the workspace's own
//! `mqtt-broker-core` started in-process), and a TCP proxy that can cut
//! every connection through it.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mqtt_broker_core::{Broker, Config};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// A Mosquitto broker listening on 127.0.0.1 only, killed on drop.
pub struct Mosquitto {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Mosquitto {
    pub fn start() -> Self {
        Self::with_config("")
    }

    /// Starts Mosquitto with `extra` lines of configuration.
    pub fn with_config(extra: &str) -> Self {
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let dir = std::env::temp_dir().join(format!(
                "mqtt-client-test-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let conf = dir.join("mosquitto.conf");
            std::fs::write(
                &conf,
                format!(
                    "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n{extra}\n"
                ),
            )
            .expect("config");
            let log = std::fs::File::create(dir.join("mosquitto.log")).expect("log");
            let mut child = Command::new(MOSQUITTO)
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("mosquitto runs");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                // Listening, and listening itself: the port chosen may have
                // been taken meanwhile by another test's listener, which
                // would accept the connection while Mosquitto exits with
                // "Address already in use". It logs "running" once bound.
                let running = std::fs::read_to_string(dir.join("mosquitto.log"))
                    .is_ok_and(|l| l.contains(" running"));
                if running && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Self { child, port, dir };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(dir.join("mosquitto.log")).unwrap_or_default();
            let _ = std::fs::remove_dir_all(&dir);
        }
        panic!("mosquitto did not start: {last_log}");
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Which server a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Debian's `/usr/sbin/mosquitto`, a child process.
    Mosquitto,
    /// `mqtt-broker-core`, in the test's own runtime.
    Ours,
}

/// A running server of either [`Kind`], listening on a free 127.0.0.1 port
/// and stopped on drop.
pub enum Server {
    Mosquitto(Mosquitto),
    Ours { broker: Broker, port: u16 },
}

impl Server {
    /// A server with its default settings (for ours: no `$SYS` topics).
    pub async fn start(kind: Kind) -> Self {
        Self::with_config(kind, "", |_| {}).await
    }

    /// A server with `mosquitto` lines of Mosquitto configuration or, for
    /// ours, the changes `ours` makes to [`Config`]: the same settings
    /// spelled for each broker.
    pub async fn with_config(kind: Kind, mosquitto: &str, ours: impl FnOnce(&mut Config)) -> Self {
        match kind {
            Kind::Mosquitto => Self::Mosquitto(Mosquitto::with_config(mosquitto)),
            Kind::Ours => {
                let mut config = Config::default();
                config.listeners = vec!["127.0.0.1:0".parse().expect("address")];
                config.sys_interval = Duration::ZERO;
                ours(&mut config);
                let broker = Broker::builder()
                    .config(config)
                    .start()
                    .await
                    .expect("the broker starts");
                let port = broker.local_addrs().first().expect("a listener").port();
                Self::Ours { broker, port }
            }
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Self::Mosquitto(_) => Kind::Mosquitto,
            Self::Ours { .. } => Kind::Ours,
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            Self::Mosquitto(m) => m.port,
            Self::Ours { port, .. } => *port,
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port())
    }

    /// Stops the server: ours sends its DISCONNECTs and waits for the
    /// connections to close; Mosquitto is killed.
    pub async fn shutdown(self) {
        match self {
            Self::Mosquitto(m) => drop(m),
            Self::Ours { broker, .. } => broker.shutdown().await,
        }
    }
}

/// A TCP proxy on 127.0.0.1 to an upstream port; `cut` drops every
/// connection through it at once (both sides see the connection close, and
/// whatever was in transit is lost).
pub struct Proxy {
    pub port: u16,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
    pub accepted: Arc<AtomicUsize>,
}

impl Proxy {
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (c2, a2) = (Arc::clone(&conns), Arc::clone(&accepted));
        let accept = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                a2.fetch_add(1, Ordering::Relaxed);
                let task = tokio::spawn(async move {
                    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let _ = down.set_nodelay(true);
                    let _ = up.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                });
                let mut list = c2.lock().unwrap();
                list.retain(|h| !h.is_finished());
                list.push(task.abort_handle());
            }
        })
        .abort_handle();
        Self {
            port,
            conns,
            accept,
            accepted,
        }
    }

    /// Drops every open connection.
    pub fn cut(&self) {
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
