//! Authentication and authorization hooks.

use std::net::SocketAddr;

use async_trait::async_trait;
use bytes::Bytes;
use mqtt_codec::{ProtocolVersion, ReasonCode};
use mqtt_topic::{TopicFilter, TopicName};

/// What a client presented in CONNECT, for [`Authenticator::authenticate`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectInfo {
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// The client identifier (empty if the broker is to assign one).
    pub client_id: String,
    /// User Name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<Bytes>,
    /// Protocol version.
    pub protocol: ProtocolVersion,
    /// The topic of the will, if the client set one (the [`Authorizer`]
    /// is asked whether the client may publish there before the
    /// connection is accepted).
    pub will_topic: Option<TopicName>,
}

/// A connected client, for the [`Authorizer`] hooks.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientInfo {
    /// The client identifier (the assigned one if the broker assigned it).
    pub client_id: String,
    /// The User Name it authenticated with.
    pub username: Option<String>,
}

/// Decides whether a client may connect.
///
/// ```
/// use async_trait::async_trait;
/// use mqtt_broker_core::{Authenticator, ConnectInfo};
/// use mqtt_codec::ReasonCode;
///
/// /// One user, one password.
/// struct Single;
///
/// #[async_trait]
/// impl Authenticator for Single {
///     async fn authenticate(&self, c: &ConnectInfo) -> Result<(), ReasonCode> {
///         match (c.username.as_deref(), c.password.as_deref()) {
///             (Some("admin"), Some(b"secret")) => Ok(()),
///             _ => Err(ReasonCode::BadUserNameOrPassword),
///         }
///     }
/// }
/// ```
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// `Ok` accepts the connection; `Err(reason)` refuses it with that
    /// CONNACK reason code (the nearest 3.1.1 return code for older
    /// clients), for example [`ReasonCode::BadUserNameOrPassword`] or
    /// [`ReasonCode::NotAuthorized`].
    async fn authenticate(&self, connect: &ConnectInfo) -> Result<(), ReasonCode>;
}

/// Decides what a connected client may publish and subscribe to.
///
/// A refused PUBLISH is acknowledged as usual but not routed (it is
/// counted as dropped); a refused filter gets reason code 0x87 (Not
/// authorized) in SUBACK (0x80 for 3.1.1). The topic of a client's will is
/// checked with [`authorize_publish`](Self::authorize_publish) at CONNECT: a
/// refused one refuses the connection (0x87; 3.1.1 return code 5).
///
/// While a hook runs for one packet of a client, that client's later
/// packets wait, in order.
#[async_trait]
pub trait Authorizer: Send + Sync + 'static {
    /// Whether `client` may publish to `topic`.
    async fn authorize_publish(&self, client: &ClientInfo, topic: &TopicName) -> bool;
    /// Whether `client` may subscribe to `filter`.
    async fn authorize_subscribe(&self, client: &ClientInfo, filter: &TopicFilter) -> bool;
}

/// The default hooks: everyone may connect, publish and subscribe.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

#[async_trait]
impl Authenticator for AllowAll {
    async fn authenticate(&self, _: &ConnectInfo) -> Result<(), ReasonCode> {
        Ok(())
    }
}

#[async_trait]
impl Authorizer for AllowAll {
    async fn authorize_publish(&self, _: &ClientInfo, _: &TopicName) -> bool {
        true
    }
    async fn authorize_subscribe(&self, _: &ClientInfo, _: &TopicFilter) -> bool {
        true
    }
}
