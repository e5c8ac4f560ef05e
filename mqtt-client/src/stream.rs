//! What the client hands to the application: received messages, the
//! streams of a subscription, and events.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use mqtt_codec::{PacketId, PublishProperties, QoS, ReasonCode};
use mqtt_session::Message;
use mqtt_topic::{TopicFilter, TopicName};
use tokio::sync::mpsc;

use crate::error::{ClientError, ConnectionError};

/// A message received from the server.
///
/// With [manual acknowledgement](crate::ClientOptions::manual_ack), a QoS 1
/// or 2 message is acknowledged to the server (PUBACK, or PUBREC) when
/// [`ack`](Self::ack) is called or the `Received` is dropped, whichever
/// comes first; when overlapping subscriptions delivered copies to several
/// streams, when the last copy is done.
#[derive(Clone)]
pub struct Received {
    message: Message,
    ack: Option<Arc<AckToken>>,
}

impl fmt::Debug for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Received")
            .field("topic", &self.message.topic)
            .field("qos", &self.message.qos)
            .field("retain", &self.message.retain)
            .field("payload_len", &self.message.payload.len())
            .field("awaits_ack", &self.ack.is_some())
            .finish()
    }
}

impl Received {
    pub(crate) fn new(message: Message, ack: Option<Arc<AckToken>>) -> Self {
        Self { message, ack }
    }

    /// The topic name.
    pub fn topic(&self) -> &TopicName {
        &self.message.topic
    }

    /// The payload.
    pub fn payload(&self) -> &Bytes {
        &self.message.payload
    }

    /// The QoS it was delivered with.
    pub fn qos(&self) -> QoS {
        self.message.qos
    }

    /// The RETAIN flag: set for a retained message sent on subscription
    /// (and for forwarded ones with Retain As Published).
    pub fn retain(&self) -> bool {
        self.message.retain
    }

    /// MQTT 5.0 properties (user properties, content type, response topic,
    /// correlation data, message expiry, subscription identifiers...).
    pub fn properties(&self) -> &PublishProperties {
        &self.message.properties
    }

    /// The whole message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// Takes the message out; a pending acknowledgement is released (sent
    /// once every copy is released).
    pub fn into_message(self) -> Message {
        self.message
    }

    /// Whether this message awaits the application's acknowledgement.
    pub fn awaits_ack(&self) -> bool {
        self.ack.is_some()
    }

    /// Acknowledges the message now (manual acknowledgement; a no-op
    /// otherwise). The PUBACK or PUBREC goes out once every copy delivered
    /// to overlapping subscriptions is acknowledged or dropped.
    pub fn ack(&mut self) {
        self.ack = None;
    }
}

/// Sends the acknowledgement of a received message when the last copy is
/// done with it.
pub(crate) struct AckToken {
    pub(crate) ack: Ack,
    pub(crate) tx: mpsc::UnboundedSender<Ack>,
}

/// An acknowledgement for the connection task: the packet identifier, and
/// which delivery it was (an identifier is used again once acknowledged,
/// and on a new connection), so that a late one does not acknowledge a
/// later message with the same identifier.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ack {
    pub(crate) packet_id: PacketId,
    /// QoS 2: the session it came in (its PUBREC is owed across
    /// connections); QoS 1: the connection (the server sends the message
    /// again on the next one, as a new delivery).
    pub(crate) epoch: u64,
    pub(crate) qos2: bool,
}

impl Drop for AckToken {
    fn drop(&mut self) {
        // The driver is gone when this fails: nothing left to acknowledge.
        let _ = self.tx.send(self.ack);
    }
}

/// The messages of a subscription, from
/// [`Client::subscribe`](crate::Client::subscribe): a [`Stream`] of
/// [`Received`], also readable with [`recv`](Self::recv).
///
/// It ends when its filters are unsubscribed (those the server's UNSUBACK
/// did not refuse), when the client could subscribe to none of them again
/// after the server lost the session (see [`error`](Self::error)), or when
/// the client shuts down.
/// Dropping it stops local delivery (the server subscription stays until
/// [`Client::unsubscribe`](crate::Client::unsubscribe)); the buffer between
/// the connection and the stream is unbounded, so read it (with manual
/// acknowledgement the server's inflight window bounds it for QoS 1/2).
pub struct Subscription {
    rx: mpsc::UnboundedReceiver<Received>,
    filters: Vec<TopicFilter>,
    reasons: Vec<ReasonCode>,
    lost: Lost,
}

/// Why the client lost a filter of a subscription stream: set by the
/// connection task (before it ends the stream), read by the
/// [`Subscription`].
pub(crate) type Lost = Arc<OnceLock<ClientError>>;

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("filters", &self.filters)
            .field("reasons", &self.reasons)
            .field("error", &self.lost.get())
            .finish_non_exhaustive()
    }
}

impl Subscription {
    pub(crate) fn new(
        rx: mpsc::UnboundedReceiver<Received>,
        filters: Vec<TopicFilter>,
        reasons: Vec<ReasonCode>,
        lost: Lost,
    ) -> Self {
        Self {
            rx,
            filters,
            reasons,
            lost,
        }
    }

    /// The filters, in the order they were given.
    pub fn filters(&self) -> &[TopicFilter] {
        &self.filters
    }

    /// The SUBACK reason code of each filter: the granted QoS
    /// (`Success`/`GrantedQoS1`/`GrantedQoS2`) or an error.
    pub fn reasons(&self) -> &[ReasonCode] {
        &self.reasons
    }

    /// Why the client lost one of the filters, if it did: the server lost
    /// the session and subscribing to the filter again failed, with
    /// [`ClientError::Refused`] (the SUBACK reason code) or
    /// [`ClientError::Usage`] (it could not be sent: larger on its own
    /// than the server's Maximum Packet Size, or a shared or wildcard
    /// subscription the server no longer supports). The stream ends once
    /// it has no filter left; [`Event::SessionLost`] lists the filters
    /// that could not be sent. The first such error is kept; `None` if
    /// there was none.
    pub fn error(&self) -> Option<&ClientError> {
        self.lost.get()
    }

    /// The next message, or `None` once the subscription has ended.
    ///
    /// Cancel safe: no message is lost when the future is dropped.
    pub async fn recv(&mut self) -> Option<Received> {
        self.rx.recv().await
    }

    /// The next message if one is buffered.
    pub fn try_recv(&mut self) -> Option<Received> {
        self.rx.try_recv().ok()
    }
}

impl Stream for Subscription {
    type Item = Received;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Received>> {
        self.rx.poll_recv(cx)
    }
}

/// What happens to a client: connection changes and every protocol event.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// Every event of the underlying sans-IO session, as it happens: each
    /// message received, each delivery completed, SUBACK, AUTH, close...
    Protocol(mqtt_session::Event),
    /// The first connection is up (CONNACK received).
    Connected {
        /// Whether the server resumed an existing session.
        session_present: bool,
    },
    /// A later connection is up again after the previous one was lost.
    Reconnected {
        /// Whether the server resumed the session; if not, a
        /// [`SessionLost`](Self::SessionLost) event precedes this one.
        session_present: bool,
        /// Attempts it took.
        attempts: u32,
    },
    /// The server did not have the session the client had: the client
    /// subscribed again to its filters (those this connection's CONNACK
    /// allows) and published again the messages that were in flight (see
    /// [`ClientOptions::republish_on_session_lost`](crate::ClientOptions::republish_on_session_lost)).
    SessionLost {
        /// Filters subscribed again (a SUBSCRIBE was sent; a SUBACK may
        /// still refuse them, see [`Subscription::error`]), split over
        /// SUBSCRIBEs small enough for the server's Maximum Packet Size.
        resubscribed: Vec<TopicFilter>,
        /// Filters that could not be sent again, and why (a
        /// [`ClientError::Usage`]: larger on its own than the server's
        /// Maximum Packet Size, or a shared or wildcard subscription the
        /// server's CONNACK says it does not support). They are lost: their
        /// streams are told ([`Subscription::error`]), and end if they have
        /// no other filter.
        not_resubscribed: Vec<(TopicFilter, ClientError)>,
        /// Messages published again.
        republished: usize,
    },
    /// The connection was lost or could not be made.
    Disconnected {
        /// Why.
        error: ConnectionError,
        /// When the next attempt is, or `None` if the client gives up.
        retry_in: Option<Duration>,
    },
    /// The client shut down: nothing more will happen.
    Stopped,
    /// This stream fell behind and missed that many events.
    Lagged {
        /// Events missed.
        missed: u64,
    },
}

/// A stream of [`Event`]s, from [`Client::events`](crate::Client::events)
/// or [`ClientBuilder::events`](crate::ClientBuilder::events).
///
/// It buffers up to [`ClientOptions::event_capacity`](crate::ClientOptions::event_capacity)
/// events; a stream that falls further behind misses events and is told so
/// by [`Event::Lagged`]. It ends when the client stops.
pub struct EventStream {
    rx: mpsc::Receiver<Event>,
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl EventStream {
    pub(crate) fn new(rx: mpsc::Receiver<Event>) -> Self {
        Self { rx }
    }

    /// The next event, or `None` once the client has stopped.
    ///
    /// Cancel safe: no event is lost when the future is dropped.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}

impl Stream for EventStream {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}

/// The driver's end of an event stream.
#[derive(Debug)]
pub(crate) struct Listener {
    tx: mpsc::Sender<Event>,
    missed: u64,
}

impl Listener {
    pub(crate) fn new(capacity: usize) -> (Self, EventStream) {
        let (tx, rx) = mpsc::channel(capacity);
        (Self { tx, missed: 0 }, EventStream::new(rx))
    }

    /// Delivers `e`; false when the stream is gone.
    pub(crate) fn send(&mut self, e: &Event) -> bool {
        if self.missed > 0 {
            match self.tx.try_send(Event::Lagged {
                missed: self.missed,
            }) {
                Ok(()) => self.missed = 0,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.missed += 1;
                    return true;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
            }
        }
        match self.tx.try_send(e.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.missed += 1;
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}
