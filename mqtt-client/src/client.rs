//! The client handle.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use mqtt_codec::{
    MAX_PACKET_SIZE, PacketId, ProtocolVersion, Publish, QoS, ReasonCode, SubscriptionOptions,
};
use mqtt_session::Message;
use mqtt_topic::{TopicFilter, TopicName};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::driver::Driver;
use crate::error::{ClientError, ConnectionError};
use crate::options::ClientOptions;
use crate::stream::{EventStream, Listener, Lost, Received, Subscription};

/// What the handles share with the connection task.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Room in the outgoing queue: one permit per message accepted and not
    /// yet completed.
    pub(crate) permits: Semaphore,
    pub(crate) connected: AtomicBool,
}

pub(crate) type Done<T> = oneshot::Sender<Result<T, ClientError>>;

/// A request from a handle to the connection task.
#[derive(Debug)]
pub(crate) enum Command {
    Publish {
        message: Message,
        done: Done<ReasonCode>,
    },
    Subscribe(SubscribeOp),
    Unsubscribe(UnsubscribeOp),
    Listen(Listener),
    Disconnect(oneshot::Sender<()>),
}

#[derive(Debug)]
pub(crate) struct SubscribeOp {
    pub(crate) filters: Vec<(TopicFilter, SubscriptionOptions)>,
    pub(crate) tx: mpsc::UnboundedSender<Received>,
    pub(crate) lost: Lost,
    pub(crate) done: Done<Vec<ReasonCode>>,
}

#[derive(Debug)]
pub(crate) struct UnsubscribeOp {
    pub(crate) filters: Vec<TopicFilter>,
    pub(crate) done: Done<Vec<ReasonCode>>,
}

struct Handle {
    tx: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    protocol: ProtocolVersion,
    max_outgoing: Option<u32>,
    event_capacity: usize,
}

/// An MQTT client: a cheap, cloneable, `Send + Sync` handle to a connection
/// driven by a task the client spawned.
///
/// Progress never depends on the application polling anything: the task
/// reads, writes, keeps the connection alive, acknowledges and reconnects
/// on its own. Every clone talks to the same connection; the task ends
/// (with a DISCONNECT) when [`disconnect`](Self::disconnect) is called or
/// the last handle is dropped.
///
/// ```no_run
/// use mqtt_client::{Client, ClientOptions, QoS, SubscriptionOptions};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::connect(ClientOptions::from_url("mqtt://127.0.0.1:1883")?).await?;
///
/// let mut sub = client
///     .subscribe("sensors/+/temp", SubscriptionOptions::new(QoS::AtLeastOnce))
///     .await?;
/// // Resolves on PUBACK, with its reason code.
/// client.publish("sensors/1/temp", "21.5", QoS::AtLeastOnce, false).await?;
///
/// while let Some(msg) = sub.recv().await {
///     println!("{}: {:?}", msg.topic(), msg.payload());
/// #   break;
/// }
/// client.disconnect().await?;
/// # Ok(())
/// # }
/// # let _ = run;
/// ```
///
/// # Cancel safety
///
/// Every `async` method may be dropped at any `.await` without corrupting
/// the session: the connection task owns all protocol state, and a handle
/// only hands it requests. What a dropped future leaves behind is
/// documented per method; in short, a request is either not made at all
/// (dropped while waiting for room in the queue) or carried out in full
/// with only its result discarded.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Handle>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("protocol", &self.inner.protocol)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

/// Sets up a [`Client`] before it connects: take an event stream or the
/// stream of unrouted messages first, so that nothing the server sends
/// right after CONNACK is missed (a resumed session delivers its queued
/// messages at once).
///
/// ```no_run
/// use mqtt_client::{Client, ClientOptions};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let mut options = ClientOptions::new("127.0.0.1", 1883);
/// options.client_id("worker-1").clean_start(false).session_expiry_interval(3600);
/// let mut builder = Client::builder(options);
/// let events = builder.events();
/// let queued = builder.unrouted();
/// let client = builder.connect().await?;
/// // Messages the server kept for this session arrive on `queued`.
/// # drop((client, events, queued));
/// # Ok(())
/// # }
/// # let _ = run;
/// ```
#[derive(Debug)]
pub struct ClientBuilder {
    options: ClientOptions,
    listeners: Vec<Listener>,
    unrouted: Option<mpsc::UnboundedSender<Received>>,
}

impl ClientBuilder {
    /// A stream of every [`Event`](crate::Event) from the start.
    pub fn events(&mut self) -> EventStream {
        let (l, s) = Listener::new(self.options.event_capacity);
        self.listeners.push(l);
        s
    }

    /// A stream of the received messages that match no subscription
    /// stream: those of a session the server resumed, of subscriptions
    /// whose stream was dropped... Without it they are dropped (and, with
    /// manual acknowledgement, acknowledged).
    pub fn unrouted(&mut self) -> Subscription {
        let (tx, rx) = mpsc::unbounded_channel();
        self.unrouted = Some(tx);
        Subscription::new(rx, Vec::new(), Vec::new(), Lost::default())
    }

    /// Connects, and returns the client once the server accepted the
    /// connection (CONNACK). Later connection losses are handled by the
    /// client (see [`ReconnectOptions`](crate::ReconnectOptions)).
    ///
    /// Cancel safety: dropping the future abandons the attempt and stops
    /// the connection task.
    ///
    /// # Errors
    ///
    /// The first attempt's failure: invalid options, transport error,
    /// timeout, refusal (CONNACK reason code), protocol error.
    pub async fn connect(self) -> Result<Client, ConnectionError> {
        let (first_tx, first_rx) = oneshot::channel();
        let client = self.spawn(Some(first_tx))?;
        match first_rx.await {
            Ok(Ok(())) => Ok(client),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ConnectionError::ClosedLocally),
        }
    }

    /// Starts the client without waiting for a connection: it connects in
    /// the background, and retries as its reconnection policy says.
    /// Messages published meanwhile wait in the outgoing queue.
    ///
    /// # Errors
    ///
    /// [`ConnectionError::InvalidOptions`].
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn start(self) -> Result<Client, ConnectionError> {
        self.spawn(None)
    }

    fn spawn(
        self,
        first: Option<oneshot::Sender<Result<(), ConnectionError>>>,
    ) -> Result<Client, ConnectionError> {
        let config = self.options.session_config()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            permits: Semaphore::new(self.options.max_pending.min(Semaphore::MAX_PERMITS)),
            connected: AtomicBool::new(false),
        });
        let handle = Handle {
            tx,
            shared: Arc::clone(&shared),
            protocol: self.options.protocol,
            max_outgoing: self.options.max_outgoing_packet_size.map(|n| n.get()),
            event_capacity: self.options.event_capacity,
        };
        let driver = Driver::new(
            self.options,
            config,
            shared,
            rx,
            self.listeners,
            self.unrouted,
            first,
        );
        tokio::spawn(driver.run());
        Ok(Client {
            inner: Arc::new(handle),
        })
    }
}

impl Client {
    /// Connects with `options`; see [`ClientBuilder::connect`].
    ///
    /// Cancel safety: dropping the future abandons the attempt.
    ///
    /// # Errors
    ///
    /// As [`ClientBuilder::connect`].
    pub async fn connect(options: ClientOptions) -> Result<Self, ConnectionError> {
        Self::builder(options).connect().await
    }

    /// A builder, to take streams before connecting.
    pub fn builder(options: ClientOptions) -> ClientBuilder {
        ClientBuilder {
            options,
            listeners: Vec::new(),
            unrouted: None,
        }
    }

    /// Whether a connection is up (CONNACK received and not lost since).
    pub fn is_connected(&self) -> bool {
        self.inner.shared.connected.load(Ordering::Relaxed)
    }

    /// The protocol version of the connection.
    pub fn protocol(&self) -> ProtocolVersion {
        self.inner.protocol
    }

    /// Publishes a message and waits until its delivery completes: once
    /// written for QoS 0, on PUBACK for QoS 1, on PUBCOMP for QoS 2.
    /// Returns the server's reason code (always `Success` before MQTT 5.0;
    /// `NoMatchingSubscribers` is a success too).
    ///
    /// Waits first for room in the bounded outgoing queue. While the client
    /// is disconnected the message waits in the queue and is sent after
    /// reconnection; a QoS 1/2 message whose delivery a connection loss
    /// interrupted is sent again (with DUP) on the resumed session.
    ///
    /// Cancel safety: dropped while waiting for room, nothing is published.
    /// Dropped after that, the message is still delivered (the request was
    /// handed to the connection task); only the result is lost. Use
    /// [`enqueue`](Self::enqueue) to separate the two steps.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidTopic`], [`ClientError::PacketTooLarge`],
    /// [`ClientError::Refused`] (PUBACK/PUBREC reason code 0x80 or above),
    /// [`ClientError::Dropped`], [`ClientError::ConnectionLost`] (QoS 0, not
    /// written), [`ClientError::Closed`].
    pub async fn publish<T>(
        &self,
        topic: T,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
    ) -> Result<ReasonCode, ClientError>
    where
        T: TryInto<TopicName>,
        ClientError: From<T::Error>,
    {
        let message = Message::new(topic.try_into()?, payload, qos, retain);
        self.enqueue(message).await?.await
    }

    /// [`publish`](Self::publish) with a whole [`Message`], for MQTT 5.0
    /// properties (user properties, message expiry, content type, response
    /// topic, correlation data, payload format).
    ///
    /// ```no_run
    /// # async fn run(client: mqtt_client::Client) -> Result<(), mqtt_client::ClientError> {
    /// use mqtt_client::{Message, QoS, UserProperty, Utf8Bytes};
    ///
    /// let mut m = Message::new("jobs/42".parse()?, "payload", QoS::ExactlyOnce, false);
    /// let props = m.properties.to_mut();
    /// props.message_expiry_interval = Some(60);
    /// props.user_properties.push(UserProperty::new(
    ///     Utf8Bytes::from_static("trace"),
    ///     Utf8Bytes::from_static("abc"),
    /// ));
    /// client.publish_message(m).await?; // resolves on PUBCOMP
    /// # Ok(())
    /// # }
    /// # let _ = run;
    /// ```
    ///
    /// Cancel safety: as [`publish`](Self::publish).
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish).
    pub async fn publish_message(&self, message: Message) -> Result<ReasonCode, ClientError> {
        self.enqueue(message).await?.await
    }

    /// Hands a message to the connection once the outgoing queue has room,
    /// and returns a [`Delivery`] that resolves when its delivery completes
    /// (as [`publish`](Self::publish)). Awaiting many `Delivery`s at once
    /// keeps the inflight window full from a single task.
    ///
    /// Cancel safety: dropped while waiting for room, nothing is published;
    /// once it returned, the message is on its way whether or not the
    /// `Delivery` is awaited.
    ///
    /// # Errors
    ///
    /// [`ClientError::PacketTooLarge`], [`ClientError::Closed`].
    pub async fn enqueue(&self, message: Message) -> Result<Delivery, ClientError> {
        self.check(&message)?;
        let permit = self
            .inner
            .shared
            .permits
            .acquire()
            .await
            .map_err(|_| ClientError::Closed)?;
        permit.forget();
        self.submit(message)
    }

    /// Hands a message to the connection if the outgoing queue has room,
    /// without ever waiting. The returned [`Delivery`] resolves when its
    /// delivery completes.
    ///
    /// # Errors
    ///
    /// [`ClientError::QueueFull`], [`ClientError::PacketTooLarge`],
    /// [`ClientError::Closed`].
    pub fn try_publish(&self, message: Message) -> Result<Delivery, ClientError> {
        self.check(&message)?;
        let permit = self
            .inner
            .shared
            .permits
            .try_acquire()
            .map_err(|e| match e {
                tokio::sync::TryAcquireError::Closed => ClientError::Closed,
                tokio::sync::TryAcquireError::NoPermits => ClientError::QueueFull,
            })?;
        permit.forget();
        self.submit(message)
    }

    fn submit(&self, message: Message) -> Result<Delivery, ClientError> {
        let (done, rx) = oneshot::channel();
        if self
            .inner
            .tx
            .send(Command::Publish { message, done })
            .is_err()
        {
            return Err(ClientError::Closed);
        }
        Ok(Delivery { rx })
    }

    /// Checks what the connection task could not refuse later.
    ///
    /// Without a limit of our own, the protocol's applies: a larger
    /// PUBLISH cannot be encoded at all, and the encoder would refuse it on
    /// the connection instead (a QoS 1/2 one on every reconnection).
    fn check(&self, m: &Message) -> Result<(), ClientError> {
        let max = self.inner.max_outgoing.unwrap_or(MAX_PACKET_SIZE);
        // A cheap bound first: the header, topic, id and properties of a
        // PUBLISH without properties take fewer than 16 bytes + the topic.
        let rough = m.payload.len() + m.topic.as_bytes().len() + 16;
        if rough <= max as usize && m.properties.is_empty() {
            return Ok(());
        }
        let mut p = Publish::new(m.topic.clone(), m.payload.clone());
        p.qos = m.qos;
        p.retain = m.retain;
        p.packet_id = (m.qos != QoS::AtMostOnce).then_some(PacketId::MIN);
        if self.inner.protocol.is_v5() {
            p.properties = m.properties.clone();
        }
        let size = p.packet_len(self.inner.protocol)?;
        if size > max as usize {
            return Err(ClientError::PacketTooLarge { size, max });
        }
        Ok(())
    }

    /// Subscribes to `filter` and returns, once the server answered with
    /// SUBACK, the stream of the messages that match it.
    ///
    /// Subscribing while disconnected waits for the connection. The
    /// subscription is remembered: if the server loses the session, the
    /// client subscribes again after reconnecting (if that fails, the
    /// stream is told: see [`Subscription::error`]).
    ///
    /// Cancel safety: dropped before SUBACK, the SUBSCRIBE may still reach
    /// the server; its messages then match no stream (see
    /// [`ClientBuilder::unrouted`]) until a later `subscribe` or
    /// [`unsubscribe`](Self::unsubscribe).
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidTopic`], [`ClientError::Refused`] with the
    /// SUBACK reason code, [`ClientError::Usage`] (for instance wildcards
    /// that the server announced it does not support),
    /// [`ClientError::Closed`].
    pub async fn subscribe<F>(
        &self,
        filter: F,
        options: SubscriptionOptions,
    ) -> Result<Subscription, ClientError>
    where
        F: TryInto<TopicFilter>,
        ClientError: From<F::Error>,
    {
        let sub = self
            .subscribe_many(vec![(filter.try_into()?, options)])
            .await?;
        match sub.reasons().first() {
            Some(r) if r.is_error() => Err(ClientError::Refused(*r)),
            _ => Ok(sub),
        }
    }

    /// Subscribes to several filters with one SUBSCRIBE; one stream carries
    /// the messages of all of them (each message once). A filter the server
    /// refused is not an error here: see [`Subscription::reasons`].
    ///
    /// Cancel safety: as [`subscribe`](Self::subscribe).
    ///
    /// # Errors
    ///
    /// [`ClientError::Usage`], [`ClientError::Closed`].
    pub async fn subscribe_many(
        &self,
        filters: Vec<(TopicFilter, SubscriptionOptions)>,
    ) -> Result<Subscription, ClientError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (done, result) = oneshot::channel();
        let names = filters.iter().map(|(f, _)| f.clone()).collect();
        let lost = Lost::default();
        self.send(Command::Subscribe(SubscribeOp {
            filters,
            tx,
            lost: Arc::clone(&lost),
            done,
        }))?;
        let reasons = result.await.map_err(|_| ClientError::Closed)??;
        Ok(Subscription::new(rx, names, reasons, lost))
    }

    /// Unsubscribes from `filter`: the streams that carried only it end.
    /// Returns the UNSUBACK reason code (always `Success` before MQTT 5.0;
    /// `NoSubscriptionExisted` is a success too).
    ///
    /// A reason code of 0x80 or above (for instance `NotAuthorized`) means
    /// the server kept the subscription: this fails with
    /// [`ClientError::Refused`], the subscription stays (its streams keep
    /// getting its messages, and it is subscribed again if the server loses
    /// the session).
    ///
    /// Cancel safety: dropped before UNSUBACK, the UNSUBSCRIBE is still
    /// carried out.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidTopic`], [`ClientError::Refused`],
    /// [`ClientError::Closed`].
    pub async fn unsubscribe<F>(&self, filter: F) -> Result<ReasonCode, ClientError>
    where
        F: TryInto<TopicFilter>,
        ClientError: From<F::Error>,
    {
        let reasons = self.unsubscribe_many(vec![filter.try_into()?]).await?;
        match reasons.first() {
            Some(r) if r.is_error() => Err(ClientError::Refused(*r)),
            Some(r) => Ok(*r),
            None => Ok(ReasonCode::Success),
        }
    }

    /// Unsubscribes from several filters with one UNSUBSCRIBE; returns one
    /// reason code per filter (all `Success` before MQTT 5.0). A filter
    /// refused with a code of 0x80 or above is not an error here: it stays
    /// subscribed, as with [`unsubscribe`](Self::unsubscribe), and the
    /// others are unsubscribed.
    ///
    /// Cancel safety: as [`unsubscribe`](Self::unsubscribe).
    ///
    /// # Errors
    ///
    /// [`ClientError::Usage`], [`ClientError::Closed`].
    pub async fn unsubscribe_many(
        &self,
        filters: Vec<TopicFilter>,
    ) -> Result<Vec<ReasonCode>, ClientError> {
        let (done, result) = oneshot::channel();
        self.send(Command::Unsubscribe(UnsubscribeOp { filters, done }))?;
        result.await.map_err(|_| ClientError::Closed)?
    }

    /// A stream of the events from now on. See
    /// [`ClientBuilder::events`] to have them from the first connection.
    pub fn events(&self) -> EventStream {
        let (l, s) = Listener::new(self.inner.event_capacity);
        let _ = self.send(Command::Listen(l));
        s
    }

    /// Sends DISCONNECT (normal disconnection: the server discards the
    /// will), closes the connection and stops the client. Messages not yet
    /// completed fail with [`ClientError::Closed`]; await their
    /// [`Delivery`] first to be sure they arrived.
    ///
    /// Cancel safety: once called, the disconnection happens even if the
    /// future is dropped.
    ///
    /// # Errors
    ///
    /// [`ClientError::Closed`] if the client had already stopped.
    pub async fn disconnect(&self) -> Result<(), ClientError> {
        let (done, rx) = oneshot::channel();
        self.send(Command::Disconnect(done))?;
        rx.await.map_err(|_| ClientError::Closed)
    }

    fn send(&self, c: Command) -> Result<(), ClientError> {
        self.inner.tx.send(c).map_err(|_| ClientError::Closed)
    }
}

/// The completion of one published message, from
/// [`Client::enqueue`] or [`Client::try_publish`]: a future that resolves
/// when the delivery completes for the message's QoS, with the server's
/// reason code.
///
/// Dropping it does not cancel the delivery.
#[derive(Debug)]
#[must_use = "a Delivery does nothing unless awaited; dropping it does not cancel the message"]
pub struct Delivery {
    rx: oneshot::Receiver<Result<ReasonCode, ClientError>>,
}

impl Future for Delivery {
    type Output = Result<ReasonCode, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(ClientError::Closed)))
    }
}
