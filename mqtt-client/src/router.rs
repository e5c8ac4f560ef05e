//! Local routing of received messages to subscription streams.
//!
//! Each `subscribe` call makes a route (one stream) for its filters. A
//! message goes to every route with a matching filter, once per route, so
//! overlapping subscriptions made by separate calls each get their copy.
//!
//! In MQTT 5.0 each SUBSCRIBE carries a Subscription Identifier and the
//! server tags every message with the identifiers of the subscriptions it
//! matched: the message then goes exactly to the routes of those
//! subscriptions. Without identifiers (3.1.1, or a server without them),
//! routing matches the topic against the filters; a server that sends one
//! copy per matching subscription (allowed by 3.1.1) then makes each copy
//! reach every matching stream.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use mqtt_codec::{SubscriptionId, SubscriptionOptions};
use mqtt_session::Message;
use mqtt_topic::{SubscriptionTree, TopicFilter};
use tokio::sync::mpsc;

use crate::error::ClientError;
use crate::stream::{AckToken, Lost, Received};

pub(crate) type RouteId = u64;

#[derive(Debug)]
struct Route {
    tx: mpsc::UnboundedSender<Received>,
    lost: Lost,
    filters: Vec<TopicFilter>,
}

#[derive(Debug)]
struct FilterState {
    /// The Subscription Identifier the server's subscription carries.
    sub_id: Option<SubscriptionId>,
    routes: Vec<RouteId>,
}

#[derive(Default)]
pub(crate) struct Router {
    routes: HashMap<RouteId, Route>,
    filters: BTreeMap<TopicFilter, FilterState>,
    tree: SubscriptionTree<TopicFilter, ()>,
    by_id: HashMap<SubscriptionId, Vec<TopicFilter>>,
    unrouted: Option<mpsc::UnboundedSender<Received>>,
    next_route: RouteId,
    next_sub_id: u32,
    targets: Vec<RouteId>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("routes", &self.routes.len())
            .field("filters", &self.filters.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The largest Subscription Identifier (a Variable Byte Integer).
const MAX_SUB_ID: u32 = 268_435_455;

impl Router {
    pub(crate) fn set_unrouted(&mut self, tx: Option<mpsc::UnboundedSender<Received>>) {
        self.unrouted = tx;
    }

    /// A fresh Subscription Identifier.
    pub(crate) fn next_sub_id(&mut self) -> Option<SubscriptionId> {
        self.next_sub_id = if self.next_sub_id >= MAX_SUB_ID {
            1
        } else {
            self.next_sub_id + 1
        };
        SubscriptionId::new(self.next_sub_id)
    }

    /// Registers a route for `filters` (before SUBSCRIBE is sent: a server
    /// may send matching messages before its SUBACK).
    pub(crate) fn add(
        &mut self,
        filters: &[(TopicFilter, SubscriptionOptions)],
        sub_id: Option<SubscriptionId>,
        tx: mpsc::UnboundedSender<Received>,
        lost: Lost,
    ) -> RouteId {
        self.next_route += 1;
        let route = self.next_route;
        let mut list = Vec::with_capacity(filters.len());
        for (f, _) in filters {
            if list.contains(f) {
                continue;
            }
            list.push(f.clone());
            let state = self.filters.entry(f.clone()).or_insert_with(|| {
                self.tree.insert(f, f.clone(), ());
                FilterState {
                    sub_id: None,
                    routes: Vec::new(),
                }
            });
            state.routes.push(route);
            Self::set_id(&mut self.by_id, f, state, sub_id);
        }
        self.routes.insert(
            route,
            Route {
                tx,
                lost,
                filters: list,
            },
        );
        route
    }

    fn set_id(
        by_id: &mut HashMap<SubscriptionId, Vec<TopicFilter>>,
        f: &TopicFilter,
        state: &mut FilterState,
        sub_id: Option<SubscriptionId>,
    ) {
        if let Some(old) = state.sub_id.take() {
            if let Some(v) = by_id.get_mut(&old) {
                v.retain(|x| x != f);
                if v.is_empty() {
                    by_id.remove(&old);
                }
            }
        }
        state.sub_id = sub_id;
        if let Some(id) = sub_id {
            by_id.entry(id).or_default().push(f.clone());
        }
    }

    /// Records that `filter` was subscribed again with `sub_id` (after the
    /// server lost the session).
    pub(crate) fn resubscribed(&mut self, filter: &TopicFilter, sub_id: Option<SubscriptionId>) {
        if let Some(state) = self.filters.get_mut(filter) {
            Self::set_id(&mut self.by_id, filter, state, sub_id);
        }
    }

    /// The Subscription Identifier of `filter`'s server subscription.
    pub(crate) fn sub_id(&self, filter: &TopicFilter) -> Option<SubscriptionId> {
        self.filters.get(filter).and_then(|s| s.sub_id)
    }

    /// The server refused `filter` for `route`: that route does not get its
    /// messages.
    pub(crate) fn refused(&mut self, route: RouteId, filter: &TopicFilter) {
        if let Some(r) = self.routes.get_mut(&route) {
            r.filters.retain(|f| f != filter);
        }
        let empty = match self.filters.get_mut(filter) {
            Some(s) => {
                s.routes.retain(|r| *r != route);
                s.routes.is_empty()
            }
            None => false,
        };
        if empty {
            self.remove_filter(filter);
        }
    }

    /// Removes a route (its stream was dropped, or its subscription failed).
    pub(crate) fn remove_route(&mut self, route: RouteId) {
        let Some(r) = self.routes.remove(&route) else {
            return;
        };
        for f in &r.filters {
            if let Some(s) = self.filters.get_mut(f) {
                s.routes.retain(|x| *x != route);
            }
        }
    }

    /// Removes `filter` (unsubscribed): routes left with no filter end.
    pub(crate) fn remove_filter(&mut self, filter: &TopicFilter) {
        let Some(mut state) = self.filters.remove(filter) else {
            return;
        };
        self.tree.remove(filter, filter);
        Self::set_id(&mut self.by_id, filter, &mut state, None);
        for route in state.routes {
            let empty = match self.routes.get_mut(&route) {
                Some(r) => {
                    r.filters.retain(|f| f != filter);
                    r.filters.is_empty()
                }
                None => false,
            };
            if empty {
                self.routes.remove(&route);
            }
        }
    }

    /// The server lost `filter` with the session, and subscribing to it
    /// again failed: its routes learn why, and those left with no filter
    /// end.
    pub(crate) fn lose_filter(&mut self, filter: &TopicFilter, error: &ClientError) {
        if let Some(state) = self.filters.get(filter) {
            for route in &state.routes {
                if let Some(r) = self.routes.get(route) {
                    // The first error is kept.
                    let _ = r.lost.set(error.clone());
                }
            }
        }
        self.remove_filter(filter);
    }

    /// Ends every stream (the client stops).
    pub(crate) fn close_all(&mut self) {
        self.routes.clear();
        self.unrouted = None;
    }

    /// Delivers a received message to the routes it belongs to, or to the
    /// unrouted stream.
    pub(crate) fn dispatch(&mut self, message: Message, ack: Option<Arc<AckToken>>) {
        let mut targets = std::mem::take(&mut self.targets);
        targets.clear();
        for id in &message.properties.subscription_identifiers {
            if let Some(filters) = self.by_id.get(id) {
                for f in filters {
                    if let Some(s) = self.filters.get(f) {
                        targets.extend_from_slice(&s.routes);
                    }
                }
            }
        }
        if targets.is_empty() {
            let filters = &self.filters;
            let mut add = |f: &TopicFilter| {
                if let Some(s) = filters.get(f) {
                    targets.extend_from_slice(&s.routes);
                }
            };
            self.tree
                .for_each_match(message.topic.as_bytes(), |f, ()| add(f));
            self.tree
                .for_each_shared_match(message.topic.as_bytes(), |_, members| {
                    for (f, ()) in members {
                        add(f);
                    }
                });
        }
        if targets.len() > 1 {
            targets.sort_unstable();
            targets.dedup();
        }
        let mut delivered = false;
        let mut message = Some(message);
        let last = targets.len().saturating_sub(1);
        for (i, route) in targets.iter().enumerate() {
            let m = if i == last {
                message.take()
            } else {
                message.clone()
            };
            let Some(m) = m else { break };
            let sent = match self.routes.get(route) {
                Some(r) => r.tx.send(Received::new(m, ack.clone())),
                None => Err(mpsc::error::SendError(Received::new(m, None))),
            };
            match sent {
                Ok(()) => delivered = true,
                Err(mpsc::error::SendError(back)) => {
                    if i == last {
                        message = Some(back.into_message());
                    }
                    self.remove_route(*route);
                }
            }
        }
        if !delivered {
            match (&self.unrouted, message) {
                (Some(tx), Some(m)) => {
                    if tx.send(Received::new(m, ack)).is_err() {
                        self.unrouted = None;
                    }
                }
                _ => tracing::debug!("message matches no subscription stream: dropped"),
            }
        }
        self.targets = targets;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use mqtt_codec::QoS;

    fn msg(topic: &str, ids: &[u32]) -> Message {
        let mut m = Message::new(topic.parse().unwrap(), "x", QoS::AtMostOnce, false);
        m.properties.to_mut().subscription_identifiers = ids
            .iter()
            .map(|i| SubscriptionId::new(*i).unwrap())
            .collect();
        m
    }

    fn opts(f: &str) -> (TopicFilter, SubscriptionOptions) {
        (
            f.parse().unwrap(),
            SubscriptionOptions::new(QoS::AtLeastOnce),
        )
    }

    #[test]
    fn overlapping_routes_each_get_one_copy() {
        let mut r = Router::default();
        let (t1, mut r1) = mpsc::unbounded_channel();
        let (t2, mut r2) = mpsc::unbounded_channel();
        let (tu, mut ru) = mpsc::unbounded_channel();
        r.set_unrouted(Some(tu));
        r.add(&[opts("a/#"), opts("a/+")], None, t1, Lost::default());
        r.add(&[opts("a/b")], None, t2, Lost::default());
        r.dispatch(msg("a/b", &[]), None);
        assert!(r1.try_recv().is_ok());
        assert!(r1.try_recv().is_err(), "one copy per stream");
        assert!(r2.try_recv().is_ok());
        r.dispatch(msg("a/c", &[]), None);
        assert!(r1.try_recv().is_ok());
        assert!(r2.try_recv().is_err());
        r.dispatch(msg("z", &[]), None);
        assert!(ru.try_recv().is_ok());
    }

    #[test]
    fn subscription_ids_route_exactly() {
        let mut r = Router::default();
        let (t1, mut r1) = mpsc::unbounded_channel();
        let (t2, mut r2) = mpsc::unbounded_channel();
        let id1 = r.next_sub_id();
        r.add(&[opts("a/#")], id1, t1, Lost::default());
        let id2 = r.next_sub_id();
        r.add(&[opts("a/+")], id2, t2, Lost::default());
        // The copy for subscription 2 only.
        r.dispatch(msg("a/b", &[2]), None);
        assert!(r1.try_recv().is_err());
        assert!(r2.try_recv().is_ok());
        // Same filter subscribed twice: the server keeps the last id, both
        // streams get the message.
        let (t3, mut r3) = mpsc::unbounded_channel();
        let id3 = r.next_sub_id();
        r.add(&[opts("a/#")], id3, t3, Lost::default());
        r.dispatch(msg("a/x/y", &[3]), None);
        assert!(r1.try_recv().is_ok());
        assert!(r3.try_recv().is_ok());
    }

    #[test]
    fn unsubscribe_and_dropped_streams_end_routes() {
        let mut r = Router::default();
        let (t1, mut r1) = mpsc::unbounded_channel();
        let (t2, r2) = mpsc::unbounded_channel();
        r.add(&[opts("a")], None, t1, Lost::default());
        r.add(&[opts("b")], None, t2, Lost::default());
        drop(r2);
        r.dispatch(msg("b", &[]), None);
        assert!(r.routes.len() == 1);
        r.remove_filter(&"a".parse().unwrap());
        assert!(matches!(
            r1.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
    }
}
