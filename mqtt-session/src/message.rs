//! Application messages and the tokens that follow them.

use std::fmt;

use bytes::Bytes;
use mqtt_codec::{Props, PublishProperties, QoS, UserProperty, Utf8Bytes};
use mqtt_topic::{TopicFilter, TopicName};

/// An application message: what a PUBLISH carries, with its topic resolved
/// (no topic alias) and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic name.
    pub topic: TopicName,
    /// Payload.
    pub payload: Bytes,
    /// QoS the message is sent with.
    pub qos: QoS,
    /// RETAIN flag.
    pub retain: bool,
    /// MQTT 5.0 properties, out of line and shared between copies (see
    /// [`Props`]). `topic_alias` is managed by the session and ignored here;
    /// `message_expiry_interval` is counted down while the message waits in
    /// a queue.
    pub properties: Props<PublishProperties>,
}

impl Message {
    /// A message without properties.
    pub fn new(topic: TopicName, payload: impl Into<Bytes>, qos: QoS, retain: bool) -> Self {
        Self {
            topic,
            payload: payload.into(),
            qos,
            retain,
            properties: Props::none(),
        }
    }

    /// A copy that shares no buffer with `self`: its topic, payload and
    /// property strings in allocations of their own.
    ///
    /// A decoded message is slices of the buffer its packet was read into,
    /// and keeps all of that buffer alive, however small the message: keep
    /// this copy instead where a message is kept for long (a retained
    /// message, say), so that memory follows the message's size.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use mqtt_codec::QoS;
    /// use mqtt_session::Message;
    /// use mqtt_topic::TopicName;
    ///
    /// let read = Bytes::from_static(b"a/b:hello and more bytes of the read buffer");
    /// let topic = TopicName::try_from(read.slice(0..3))?;
    /// let m = Message::new(topic, read.slice(4..9), QoS::AtMostOnce, true);
    /// let kept = m.detached();
    /// assert_eq!(kept, m);
    /// assert_ne!(kept.payload.as_ptr(), m.payload.as_ptr());
    /// # Ok::<(), mqtt_topic::TopicError>(())
    /// ```
    #[must_use]
    pub fn detached(&self) -> Self {
        let string = |s: &Utf8Bytes| Utf8Bytes::try_from(s.as_str()).unwrap_or_else(|_| s.clone());
        let mut properties = self.properties.clone();
        if let Some(p) = properties.get_mut() {
            for s in [&mut p.response_topic, &mut p.content_type]
                .into_iter()
                .flatten()
            {
                *s = string(s);
            }
            if let Some(d) = &mut p.correlation_data {
                *d = Bytes::copy_from_slice(d);
            }
            for u in p.user_properties.iter_mut() {
                *u = UserProperty::new(string(&u.name), string(&u.value));
            }
        }
        Self {
            topic: TopicName::try_from(self.topic.as_str()).unwrap_or_else(|_| self.topic.clone()),
            payload: Bytes::copy_from_slice(&self.payload),
            qos: self.qos,
            retain: self.retain,
            properties,
        }
    }
}

/// How a message reached a server session through a shared subscription
/// (MQTT 5.0 section 4.8.2): the broker passes it to
/// [`ServerSession::publish_shared`](crate::ServerSession::publish_shared),
/// and the session keeps it with the message until its client has it.
///
/// A session that ends before then (it expires, or it is discarded) hands
/// the message back in [`Event::Redispatch`](crate::Event::Redispatch), as
/// it was published, so that the broker can give it to another member of
/// the same shared subscription with that member's options. It is part of
/// the [`SessionState`](crate::SessionState): it survives a takeover and a
/// store, and names the group by its filter, not by anything that lives
/// only in one broker process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedOrigin {
    filter: TopicFilter,
    qos: QoS,
    retain: bool,
}

impl SharedOrigin {
    /// `published`, the message as its publisher sent it (before this
    /// member's subscription capped its QoS and applied Retain As
    /// Published), was routed to this member through the shared
    /// subscription `filter` (`$share/{ShareName}/{filter}`).
    pub fn new(filter: TopicFilter, published: &Message) -> Self {
        Self {
            filter,
            qos: published.qos,
            retain: published.retain,
        }
    }

    /// The shared subscription, `$share/{ShareName}/{filter}`.
    pub fn filter(&self) -> &TopicFilter {
        &self.filter
    }

    /// `message` (this member's copy) as it was published, its QoS and
    /// RETAIN flag as the publisher sent them and without this member's
    /// Subscription Identifiers; and the shared subscription.
    pub(crate) fn restore(self, mut message: Message) -> (Message, TopicFilter) {
        message.qos = self.qos;
        message.retain = self.retain;
        if !message.properties.subscription_identifiers.is_empty() {
            message.properties.to_mut().subscription_identifiers.clear();
            message.properties.compact();
        }
        (message, self.filter)
    }
}

/// Identifies a message handed to a session for sending, in the events that
/// report what became of it.
///
/// Tokens increase in the order messages are handed over and are never
/// reused by a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub(crate) u64);

impl MessageId {
    /// The token as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Why a message handed to a session was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// The bounded queue was full (see [`QueuePolicy`](crate::QueuePolicy)).
    QueueFull,
    /// Its Message Expiry Interval passed while it was queued.
    Expired,
    /// Encoded, it exceeds the peer's Maximum Packet Size
    /// \[MQTT-3.1.2-24\]; it is discarded as if it had been sent.
    TooLarge,
    /// Its QoS or RETAIN flag exceeds what the server announced in CONNACK
    /// (Maximum QoS, Retain Available); it was queued before the CONNACK.
    NotSupported,
    /// A QoS 0 message for a session whose client is not connected.
    Offline,
    /// The server did not keep the session: the message's delivery state is
    /// gone (see `SessionLost` events).
    SessionLost,
    /// The session ended (closed without resumption, or expired).
    SessionEnded,
}
