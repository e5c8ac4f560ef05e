//! What a session tells its driver.

use mqtt_codec::{
    Auth, ConnAck, Connect, PacketId, PropertyList, ReasonCode, SubscriptionId,
    SubscriptionOptions, UserProperty,
};
use mqtt_topic::TopicFilter;

use crate::error::ProtocolError;
use crate::message::{DropReason, Message, MessageId};

/// An event from [`ClientSession::poll_event`](crate::ClientSession::poll_event)
/// or [`ServerSession::poll_event`](crate::ServerSession::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Server: a client sent CONNECT. Authenticate it, find its session, then
    /// call [`accept`](crate::ServerSession::accept) or
    /// [`reject`](crate::ServerSession::reject).
    Connect(Box<Connect>),
    /// Client: the server accepted the connection.
    Connected {
        /// Whether the server resumed an existing session.
        session_present: bool,
        /// The CONNACK, with the server's capabilities.
        connack: Box<ConnAck>,
    },
    /// Client: the server did not keep the session it had. Its
    /// subscriptions are gone and the messages that were in flight were
    /// dropped from the session (handed back here, oldest first, so that the
    /// application may publish them again).
    SessionLost {
        /// The subscriptions the client had made.
        subscriptions: Vec<(TopicFilter, SubscriptionOptions)>,
        /// Messages that were in flight, oldest first.
        unacknowledged: Vec<(MessageId, Message)>,
    },
    /// A message from the peer. QoS 2 messages are delivered exactly once.
    Message {
        /// The message, topic alias resolved.
        message: Message,
        /// With manual acknowledgement, the identifier to pass to `ack` (QoS 1
        /// and 2); `None` otherwise.
        ack: Option<PacketId>,
    },
    /// A message this side sent has completed its flow: written (QoS 0),
    /// PUBACK (QoS 1), PUBCOMP (QoS 2), or refused by an error reason code in
    /// PUBACK or PUBREC.
    Delivered {
        /// The message.
        id: MessageId,
        /// The peer's reason code (success for QoS 0).
        reason: ReasonCode,
    },
    /// A message handed to the session will not be delivered.
    Dropped {
        /// The message.
        id: MessageId,
        /// Why.
        reason: DropReason,
    },
    /// Server: the session ended while it held a message that the broker
    /// routed to it through the shared subscription `filter`
    /// ([`ServerSession::publish_shared`](crate::ServerSession::publish_shared))
    /// and that its client had neither received nor refused: queued, or
    /// sent without a PUBACK (QoS 1) or a PUBREC (QoS 2) in answer.
    ///
    /// MQTT 5.0 section 4.8.2 recommends that a message whose member's
    /// session ends before the member reconnects go to another client
    /// subscribed to the same shared subscription: route `message` to
    /// another member of `filter`'s group (with that member's granted QoS
    /// and options), or count it dropped if there is none. It is reported
    /// instead of [`Event::Dropped`], and only once the session has ended
    /// (expired, or discarded by a Clean Start): while it lives, its
    /// client gets the message when it reconnects \[MQTT-4.8.2-5\].
    ///
    /// `message` is as it was published (QoS and RETAIN as the publisher
    /// sent them, see [`SharedOrigin`](crate::SharedOrigin)), its Message
    /// Expiry Interval counted down by the time it waited here (a message
    /// that expired meanwhile is [`Event::Dropped`] instead). A message the
    /// client refused (PUBACK or PUBREC with a reason code of 0x80 or
    /// above) left the session then and is never handed back
    /// \[MQTT-4.8.2-6\]; a QoS 2 message the client PUBREC'd is the
    /// client's, and is reported [`Event::Dropped`] with the session.
    Redispatch {
        /// The message's token in this session.
        id: MessageId,
        /// The message, as published.
        message: Message,
        /// The shared subscription it came through,
        /// `$share/{ShareName}/{filter}`.
        filter: TopicFilter,
    },
    /// Server: a client asks to subscribe. Each filter was validated and
    /// checked against the server's capabilities; authorize the valid ones,
    /// then call [`suback`](crate::ServerSession::suback).
    Subscribe(SubscribeRequest),
    /// Server: subscriptions the client removed (UNSUBACK already sent).
    Unsubscribed(Vec<TopicFilter>),
    /// Client: the SUBACK for a SUBSCRIBE.
    SubAck {
        /// Identifier returned by `subscribe`.
        packet_id: PacketId,
        /// One code per filter: granted QoS or an error.
        reasons: Vec<ReasonCode>,
    },
    /// Client: the UNSUBACK for an UNSUBSCRIBE.
    UnsubAck {
        /// Identifier returned by `unsubscribe`.
        packet_id: PacketId,
        /// One code per filter (MQTT 5.0; empty in 3.1.1).
        reasons: Vec<ReasonCode>,
    },
    /// An AUTH packet (MQTT 5.0 extended authentication).
    Auth(Auth),
    /// Server: the client's will message is due: route it like a PUBLISH.
    Will(Message),
    /// Server: the session expired; discard it.
    SessionExpired,
    /// The connection is over: flush the packets still to transmit, then
    /// close the transport.
    Closed(CloseReason),
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client sent DISCONNECT with this reason (normal is 0x00).
    ClientDisconnected(ReasonCode),
    /// The server sent DISCONNECT with this reason (MQTT 5.0).
    ServerDisconnected(ReasonCode),
    /// This side closed with this reason (for example
    /// [`ReasonCode::SessionTakenOver`]).
    Local(ReasonCode),
    /// The server refused the connection in CONNACK.
    Rejected(ReasonCode),
    /// The peer broke the protocol.
    ProtocolError(ProtocolError),
    /// The transport was lost.
    ConnectionLost,
}

/// One filter of a SUBSCRIBE, as the session checked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeEntry {
    /// The filter, or the reason it cannot be granted (Topic Filter invalid,
    /// wildcard or shared subscriptions not supported).
    pub filter: Result<TopicFilter, ReasonCode>,
    /// Options, with the QoS capped at the server's Maximum QoS.
    pub options: SubscriptionOptions,
}

/// A SUBSCRIBE awaiting the broker's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeRequest {
    /// Packet Identifier to answer with [`suback`](crate::ServerSession::suback).
    pub packet_id: PacketId,
    /// The filters, in order.
    pub entries: Vec<SubscribeEntry>,
    /// Subscription Identifier (MQTT 5.0).
    pub subscription_id: Option<SubscriptionId>,
    /// User properties of the SUBSCRIBE.
    pub user_properties: PropertyList<UserProperty>,
}

impl SubscribeRequest {
    /// The reason codes that grant every valid filter its QoS, for a broker
    /// that authorizes everything.
    pub fn grant_all(&self) -> Vec<ReasonCode> {
        self.entries
            .iter()
            .map(|e| match &e.filter {
                Ok(_) => granted(e.options.qos),
                Err(r) => *r,
            })
            .collect()
    }
}

/// The SUBACK code that grants `qos`.
pub fn granted(qos: mqtt_codec::QoS) -> ReasonCode {
    match qos {
        mqtt_codec::QoS::AtMostOnce => ReasonCode::Success,
        mqtt_codec::QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
        mqtt_codec::QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
    }
}
