//! Transports: how bytes reach the server.
//!
//! The client's logic sees a transport as a byte stream
//! ([`AsyncRead`] + [`AsyncWrite`]) that a [`Connector`] opens, once per
//! connection attempt. Plain TCP is built in ([`TcpConnector`]); TLS or
//! WebSocket are a `Connector` that wraps the TCP stream, with no change to
//! the client.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A byte stream the client can run MQTT over.
pub trait Transport: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Transport for T {}

/// A boxed future, as [`Connector::connect`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Opens a new transport to the server, for the first connection and for
/// every reconnection.
///
/// ```
/// use std::io;
/// use mqtt_client::transport::{BoxFuture, Connector};
/// use tokio::net::TcpStream;
///
/// /// Connects through a local port forward (a TLS connector would wrap the
/// /// stream here).
/// struct Forwarded(u16);
///
/// impl Connector for Forwarded {
///     type Io = TcpStream;
///     fn connect(&self) -> BoxFuture<'_, io::Result<TcpStream>> {
///         Box::pin(TcpStream::connect(("127.0.0.1", self.0)))
///     }
/// }
///
/// let mut options = mqtt_client::ClientOptions::new("unused", 0);
/// options.transport(Forwarded(18830));
/// ```
pub trait Connector: Send + Sync + 'static {
    /// The stream it opens.
    type Io: Transport;

    /// Opens a stream. The client applies its connect timeout around it.
    fn connect(&self) -> BoxFuture<'_, io::Result<Self::Io>>;
}

/// A connector with its stream type erased.
pub(crate) trait DynConnector: Send + Sync + 'static {
    fn connect_dyn(&self) -> BoxFuture<'_, io::Result<Box<dyn Transport>>>;
}

impl<C: Connector> DynConnector for C {
    fn connect_dyn(&self) -> BoxFuture<'_, io::Result<Box<dyn Transport>>> {
        Box::pin(async move {
            let io = self.connect().await?;
            Ok(Box::new(io) as Box<dyn Transport>)
        })
    }
}

/// Plain TCP to `host:port`.
#[derive(Clone)]
pub struct TcpConnector {
    host: String,
    port: u16,
    nodelay: bool,
}

impl fmt::Debug for TcpConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TcpConnector({}:{})", self.host, self.port)
    }
}

impl TcpConnector {
    /// Connects to `host:port` (a name is resolved at each attempt) with
    /// TCP_NODELAY.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            nodelay: true,
        }
    }

    /// Sets TCP_NODELAY. Default: true.
    pub fn nodelay(mut self, on: bool) -> Self {
        self.nodelay = on;
        self
    }
}

impl Connector for TcpConnector {
    type Io = TcpStream;

    fn connect(&self) -> BoxFuture<'_, io::Result<TcpStream>> {
        Box::pin(async move {
            let s = TcpStream::connect((self.host.as_str(), self.port)).await?;
            s.set_nodelay(self.nodelay)?;
            Ok(s)
        })
    }
}
