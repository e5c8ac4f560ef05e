//! The broker: builder, listeners, background tasks, in-process clients.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use mqtt_codec::{QoS, SubscriptionOptions};
use mqtt_session::Message;
use mqtt_topic::{TopicFilter, TopicName};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::hooks::{AllowAll, Authenticator, Authorizer};
use crate::state::State;
use crate::stats::{Counters, Stats};
use crate::store::{self, Store};

/// Granularity of the session timers (connect timeout, keep-alive, will
/// delay, session expiry).
const TICK: Duration = Duration::from_millis(100);

/// How long [`Broker::shutdown`] lets the connections flush what they have.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub(crate) struct Shared {
    state: Mutex<State>,
    pub(crate) config: Config,
    pub(crate) counters: Arc<Counters>,
    pub(crate) authenticator: Arc<dyn Authenticator>,
    pub(crate) authorizer: Option<Arc<dyn Authorizer>>,
    /// No hook to run at CONNECT (the default authenticator, no
    /// authorizer): connections are accepted without leaving the lock.
    pub(crate) open_door: bool,
    /// Woken when a congested connection's buffer is taken for writing.
    pub(crate) drained: tokio::sync::Notify,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .finish()
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock; if one ever did, the state
        // is still consistent enough to serve the other clients.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Builds a [`Broker`].
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use mqtt_broker_core::{Broker, Config};
///
/// let mut config = Config::default();
/// config.listeners = vec!["127.0.0.1:1883".parse().unwrap()];
/// let broker = Broker::builder().config(config).start().await?;
/// println!("listening on {:?}", broker.local_addrs());
/// broker.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct BrokerBuilder {
    config: Config,
    authenticator: Arc<dyn Authenticator>,
    custom_authenticator: bool,
    authorizer: Option<Arc<dyn Authorizer>>,
    store: Option<Arc<dyn Store>>,
}

impl std::fmt::Debug for BrokerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerBuilder")
            .field("config", &self.config)
            .field("authorizer", &self.authorizer.is_some())
            .field("store", &self.store.is_some())
            .finish()
    }
}

impl BrokerBuilder {
    /// The configuration (default: [`Config::default`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The authentication hook (default: [`AllowAll`]).
    pub fn authenticator(mut self, a: impl Authenticator) -> Self {
        self.authenticator = Arc::new(a);
        self.custom_authenticator = true;
        self
    }

    /// The authorization hook (default: none, everything allowed without a
    /// call).
    pub fn authorizer(mut self, a: impl Authorizer) -> Self {
        self.authorizer = Some(Arc::new(a));
        self
    }

    /// A store for sessions and retained messages (default: none; the broker
    /// keeps them in its own memory for as long as it runs).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Binds the listeners, loads the store and starts serving, on the
    /// current tokio runtime.
    ///
    /// # Errors
    ///
    /// An invalid configuration ([`Config::validate`]), a listener that
    /// cannot be bound, or a store that cannot be read.
    pub async fn start(self) -> io::Result<Broker> {
        self.config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let counters = Arc::new(Counters::new());
        let (store_tx, store_task) = match &self.store {
            Some(store) => {
                let (tx, rx) = mpsc::unbounded_channel();
                (
                    Some(tx),
                    Some(tokio::spawn(store::writer(store.clone(), rx))),
                )
            }
            None => (None, None),
        };
        let mut state = State::new(
            &self.config,
            self.authorizer.is_some(),
            counters.clone(),
            store_tx,
        );
        if let Some(store) = &self.store {
            let stored = store.load().await?;
            let now = Instant::now();
            state.restore(now, stored.sessions);
            state.restore_retained(now, SystemTime::now(), stored.retained);
        }
        let mut listeners = Vec::new();
        for addr in &self.config.listeners {
            let l = TcpListener::bind(addr).await?;
            tracing::info!(addr = %l.local_addr()?, "listening");
            listeners.push(l);
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            config: self.config,
            counters,
            open_door: !self.custom_authenticator && self.authorizer.is_none(),
            authenticator: self.authenticator,
            authorizer: self.authorizer,
            drained: tokio::sync::Notify::new(),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut local_addrs = Vec::new();
        let mut tasks = Vec::new();
        for l in listeners {
            local_addrs.push(l.local_addr()?);
            tasks.push(tokio::spawn(accept_loop(
                shared.clone(),
                l,
                stop_rx.clone(),
            )));
        }
        tasks.push(tokio::spawn(timer_loop(Arc::downgrade(&shared))));
        if !shared.config.sys_interval.is_zero() {
            tasks.push(tokio::spawn(sys_loop(Arc::downgrade(&shared))));
        }
        Ok(Broker {
            shared,
            local_addrs,
            tasks,
            store_task,
            stop: stop_tx,
        })
    }
}

/// A running broker.
///
/// Dropping it stops the listeners and background tasks without the
/// graceful DISCONNECT (call [`shutdown`](Self::shutdown) for that): each
/// connection closes once it has written what it holds, and one whose
/// client does not read is cut off after 5 s (at once if the broker is
/// dropped outside the tokio runtime). The in-process subscriptions end
/// when the last connection is gone.
///
/// In-process clients publish with [`publish`](Self::publish) and receive
/// with [`subscribe`](Self::subscribe), without a socket:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use mqtt_broker_core::{Broker, Config};
/// use mqtt_codec::QoS;
///
/// let mut config = Config::default();
/// config.listeners = vec!["127.0.0.1:0".parse().unwrap()];
/// let broker = Broker::builder().config(config).start().await?;
/// let mut sub = broker.subscribe("sensors/+/temp".parse().unwrap(), QoS::AtLeastOnce);
/// broker.publish("sensors/kitchen/temp".parse().unwrap(), "21.5", QoS::AtLeastOnce, false);
/// let m = sub.recv().await.unwrap();
/// assert_eq!(m.payload, "21.5");
/// broker.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Broker {
    shared: Arc<Shared>,
    local_addrs: Vec<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
    store_task: Option<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl Broker {
    /// A builder with the default configuration and hooks.
    pub fn builder() -> BrokerBuilder {
        BrokerBuilder {
            config: Config::default(),
            authenticator: Arc::new(AllowAll),
            custom_authenticator: false,
            authorizer: None,
            store: None,
        }
    }

    /// The addresses the listeners are bound to (with the port the system
    /// chose for port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// Statistics now.
    pub fn stats(&self) -> Stats {
        self.shared.lock().stats()
    }

    /// Publishes a message from inside the process, as a client would.
    ///
    /// It is not a PUBLISH packet received: [`Stats::publish_received`]
    /// (`$SYS/broker/publish/messages/received`) counts only what clients
    /// send over the network.
    pub fn publish(&self, topic: TopicName, payload: impl Into<Bytes>, qos: QoS, retain: bool) {
        self.publish_message(Message::new(topic, payload, qos, retain));
    }

    /// Publishes a message with its MQTT 5.0 properties from inside the
    /// process.
    pub fn publish_message(&self, message: Message) {
        self.shared.lock().local_publish(Instant::now(), message);
    }

    /// Subscribes from inside the process, with a queue of 1,024 messages
    /// (see [`subscribe_with`](Self::subscribe_with)). Retained messages
    /// that match are delivered first.
    pub fn subscribe(&self, filter: TopicFilter, qos: QoS) -> LocalSubscription {
        let options = SubscriptionOptions {
            qos,
            ..SubscriptionOptions::default()
        };
        self.subscribe_with(filter, options, 1024)
    }

    /// Subscribes from inside the process with subscription options and a
    /// queue of `capacity` messages; messages that find the queue full are
    /// dropped and counted.
    pub fn subscribe_with(
        &self,
        filter: TopicFilter,
        options: SubscriptionOptions,
        capacity: usize,
    ) -> LocalSubscription {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let id = self
            .shared
            .lock()
            .local_subscribe(Instant::now(), filter, options, tx);
        LocalSubscription {
            rx,
            id,
            shared: Arc::downgrade(&self.shared),
        }
    }

    /// Stops accepting connections, closes every connection (MQTT 5.0
    /// clients get DISCONNECT 0x8B, Server shutting down), saves the
    /// persistent sessions to the store, waits up to 5 s for the
    /// connections to flush and up to 5 s for the store to be written.
    ///
    /// A connection still open after those 5 s (its client does not read
    /// what is left to write) is closed without the rest. When this
    /// returns, every in-process subscription has ended
    /// ([`LocalSubscription::recv`] returns `None`).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        self.shared.lock().shutdown(Instant::now());
        self.wait_for_connections(SHUTDOWN_GRACE).await;
        // A task whose client does not read would wait to write forever,
        // keeping its socket and, through its `Shared`, the whole state
        // (and the in-process subscriptions) alive. Each aborted task
        // closes its connection as it is dropped.
        let left = self.shared.lock().take_tasks();
        if !left.is_empty() {
            tracing::warn!(
                connections = left.len(),
                "closing connections that did not flush within the shutdown grace period"
            );
            for t in &left {
                t.abort();
            }
            self.wait_for_connections(Duration::from_secs(1)).await;
        }
        for t in &self.tasks {
            t.abort();
        }
        {
            let mut state = self.shared.lock();
            state.close_locals();
            state.close_store();
        }
        if let Some(task) = self.store_task.take() {
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                tracing::error!("the store did not finish writing within 5 s");
            }
        }
    }
}

impl Broker {
    /// Waits until no connection is open, for `at_most`.
    async fn wait_for_connections(&self, at_most: Duration) {
        let deadline = Instant::now() + at_most;
        while self.shared.counters.connections.load(Relaxed) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
        // Without the timer task nothing would ever time these out: close
        // them. The store writer finishes what it was sent, on its own.
        self.shared.lock().close_connections();
        // As in `shutdown`, a connection whose client does not read would
        // wait to write forever, keeping its socket and the whole state
        // alive: what is still open after the grace period is aborted.
        let shared = Arc::downgrade(&self.shared);
        let reap = async move {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let left = shared.lock().take_tasks();
            for t in &left {
                t.abort();
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn(reap)),
            // Dropped outside the runtime: no grace can be waited for.
            Err(_) => {
                for t in &self.shared.lock().take_tasks() {
                    t.abort();
                }
            }
        }
    }
}

/// Messages for an in-process subscriber. Dropping it unsubscribes.
#[derive(Debug)]
pub struct LocalSubscription {
    rx: mpsc::Receiver<Message>,
    id: usize,
    shared: Weak<Shared>,
}

impl LocalSubscription {
    /// The next message; `None` once the broker is gone.
    ///
    /// Cancel safe: a message is never lost when the future is dropped.
    pub async fn recv(&mut self) -> Option<Message> {
        self.rx.recv().await
    }

    /// The next message if one is waiting.
    pub fn try_recv(&mut self) -> Option<Message> {
        self.rx.try_recv().ok()
    }
}

impl Drop for LocalSubscription {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.lock().local_unsubscribe(self.id);
        }
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                let open = shared.counters.connections.fetch_add(1, Relaxed);
                if open >= shared.config.max_connections as u64 {
                    shared.counters.connections.fetch_sub(1, Relaxed);
                    Counters::add(&shared.counters.connections_refused, 1);
                    tracing::warn!(%peer, "max_connections reached: connection closed");
                    drop(stream);
                    continue;
                }
                serve(&shared, stream);
            }
            Err(e) => {
                // Out of file descriptors, or similar: wait a little.
                tracing::warn!(error = %e, "accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Opens a connection in the state and spawns its task.
fn serve(shared: &Arc<Shared>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    // Shared with the state for write-through (see `state::Lent`).
    let stream = Arc::new(stream);
    let mut state = shared.lock();
    let conn = state.open(Instant::now(), Some(stream.clone()));
    // Spawned under the lock: the slot has its task's handle before the
    // task can end and free the slot.
    let task = tokio::spawn(crate::conn::run(shared.clone(), stream, conn));
    state.set_task(conn, task.abort_handle());
}

async fn timer_loop(shared: Weak<Shared>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let ended = shared.lock().timeouts(Instant::now());
        for task in ended {
            tracing::debug!("a closing connection did not flush in time: ended");
            task.abort();
        }
    }
}

async fn sys_loop(shared: Weak<Shared>) {
    let Some(every) = shared.upgrade().map(|s| s.config.sys_interval) else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let mut state = shared.lock();
        let stats = state.stats();
        let now = Instant::now();
        for (topic, value) in stats.sys_topics() {
            if let Ok(t) = TopicName::try_from(topic) {
                state.local_publish(now, Message::new(t, value, QoS::AtMostOnce, true));
            }
        }
    }
}
