//! Storage of sessions and retained messages.

use std::collections::HashMap;
use std::io;
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;
use mqtt_session::{Message, SessionState};
use mqtt_topic::TopicName;

/// What a [`Store`] hands back when the broker starts.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Stored {
    /// Persistent sessions by client identifier.
    pub sessions: Vec<(String, SessionState)>,
    /// Retained messages (RETAIN set), each with the wall-clock time it was
    /// stored ([`Store::set_retained`]): a Message Expiry Interval counts
    /// from it, so that the broker sends what is left of it after a restart
    /// and drops a message whose interval passed meanwhile \[MQTT-3.3.2-5\].
    pub retained: Vec<(Message, SystemTime)>,
}

/// Where sessions and retained messages are kept across broker restarts.
///
/// The broker works from memory and tells the store every change that must
/// survive a restart, in order, from a task of its own (a slow store delays
/// nothing but itself):
///
/// - a retained message set or cleared;
/// - the state of a persistent session when its client disconnects (its
///   subscriptions, unacknowledged and queued messages, QoS 2 identifiers
///   awaiting PUBREL, expiry), and of every live persistent session at
///   graceful shutdown;
/// - a session removed (clean start, expiry).
///
/// Messages queued for an offline client between two snapshots reach the
/// store with the next snapshot; a store that must survive a crash without
/// losing them needs the broker to report each one, which it does not do
/// yet.
///
/// Time: a retained message comes with the wall-clock time it was stored,
/// which the store keeps and hands back ([`Stored::retained`]); its
/// Message Expiry Interval counts from it across restarts. A
/// [`SessionState`] holds [`std::time::Instant`]s (when each queued or
/// inflight message was handed over, from which its Message Expiry
/// Interval counts): they mean something only in the process that made
/// them. A store in the process, like [`MemoryStore`], hands them back
/// unchanged, and they stay right across a broker built again. A
/// `SessionState` cannot be taken apart and rebuilt outside this crate
/// family yet, so a store that outlives the process cannot keep sessions;
/// when it can, it will have to re-base those instants. A restored
/// session's Session Expiry Interval counts from the restart
/// ([`ServerSession::restore`](mqtt_session::ServerSession::restore)).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Everything stored, read once when the broker starts.
    async fn load(&self) -> io::Result<Stored>;
    /// Saves the state of the persistent session of `client_id`.
    async fn save_session(&self, client_id: &str, state: &SessionState) -> io::Result<()>;
    /// Forgets the session of `client_id`.
    async fn remove_session(&self, client_id: &str) -> io::Result<()>;
    /// Sets the retained message of `message.topic`, stored at `stored_at`
    /// (wall-clock): keep both, and hand them back in [`Stored::retained`].
    /// The message's Message Expiry Interval is the one it was published
    /// with, counting from `stored_at`.
    async fn set_retained(&self, message: &Message, stored_at: SystemTime) -> io::Result<()>;
    /// Clears the retained message of `topic`.
    async fn clear_retained(&self, topic: &TopicName) -> io::Result<()>;
}

/// A [`Store`] in memory: it keeps what the broker tells it for as long as
/// the value lives, so a broker built again with the same store (in the
/// same process) finds its sessions and retained messages.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<String, SessionState>,
    retained: HashMap<TopicName, (Message, SystemTime)>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }

    /// Number of sessions stored.
    pub fn session_count(&self) -> usize {
        self.with(|i| i.sessions.len())
    }

    /// Number of retained messages stored.
    pub fn retained_count(&self) -> usize {
        self.with(|i| i.retained.len())
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn load(&self) -> io::Result<Stored> {
        Ok(self.with(|i| Stored {
            sessions: i
                .sessions
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            retained: i.retained.values().cloned().collect(),
        }))
    }

    async fn save_session(&self, client_id: &str, state: &SessionState) -> io::Result<()> {
        self.with(|i| i.sessions.insert(client_id.to_owned(), state.clone()));
        Ok(())
    }

    async fn remove_session(&self, client_id: &str) -> io::Result<()> {
        self.with(|i| i.sessions.remove(client_id));
        Ok(())
    }

    async fn set_retained(&self, message: &Message, stored_at: SystemTime) -> io::Result<()> {
        self.with(|i| {
            i.retained
                .insert(message.topic.clone(), (message.clone(), stored_at))
        });
        Ok(())
    }

    async fn clear_retained(&self, topic: &TopicName) -> io::Result<()> {
        self.with(|i| i.retained.remove(topic));
        Ok(())
    }
}

/// A change for the store, in the order the broker made it.
#[derive(Debug)]
pub(crate) enum StoreOp {
    SaveSession(String, Box<SessionState>),
    RemoveSession(String),
    SetRetained(Box<Message>, SystemTime),
    ClearRetained(TopicName),
}

/// Applies changes to `store` in order until the broker goes away.
pub(crate) async fn writer(
    store: std::sync::Arc<dyn Store>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<StoreOp>,
) {
    while let Some(op) = rx.recv().await {
        let r = match &op {
            StoreOp::SaveSession(id, state) => store.save_session(id, state).await,
            StoreOp::RemoveSession(id) => store.remove_session(id).await,
            StoreOp::SetRetained(m, at) => store.set_retained(m, *at).await,
            StoreOp::ClearRetained(t) => store.clear_retained(t).await,
        };
        if let Err(e) = r {
            tracing::error!(error = %e, ?op, "store");
        }
    }
}
