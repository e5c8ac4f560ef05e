//! The session's timers: a fixed table of deadlines.

use std::time::{Duration, Instant};

/// A deadline the session keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Server: CONNECT must arrive by then. Client: CONNACK must.
    Connect = 0,
    /// Client: send PINGREQ. Server: the client has been silent for 1.5 x
    /// keep-alive.
    KeepAlive = 1,
    /// Client: PINGRESP must arrive by then.
    PingResp = 2,
    /// Server: publish the will (connection lost, Will Delay Interval over).
    WillDelay = 3,
    /// Server: the session expires (client disconnected).
    SessionExpiry = 4,
    /// Client: nothing received for Keep Alive: send PINGREQ, also while
    /// sending (a client that only publishes QoS 0 would otherwise never
    /// learn that the server is gone).
    Silence = 5,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Timers([Option<Instant>; 6]);

impl Timers {
    pub(crate) fn set(&mut self, t: Timer, at: Instant) {
        if let Some(slot) = self.0.get_mut(t as usize) {
            *slot = Some(at);
        }
    }

    /// Sets `t` to fire `after` from `now`. A deadline past what an
    /// [`Instant`] can hold is no deadline at all: a configured
    /// `Duration::MAX` (a natural "never") must not overflow and panic.
    pub(crate) fn set_after(&mut self, t: Timer, now: Instant, after: Duration) {
        match now.checked_add(after) {
            Some(at) => self.set(t, at),
            None => self.stop(t),
        }
    }

    pub(crate) fn stop(&mut self, t: Timer) {
        if let Some(slot) = self.0.get_mut(t as usize) {
            *slot = None;
        }
    }

    pub(crate) fn get(&self, t: Timer) -> Option<Instant> {
        self.0.get(t as usize).copied().flatten()
    }

    /// Whether `t` is set and due at `now`.
    pub(crate) fn is_due(&self, t: Timer, now: Instant) -> bool {
        self.get(t).is_some_and(|at| at <= now)
    }

    pub(crate) fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }
}
