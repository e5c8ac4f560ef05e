//! A minimal MQTT connection over tokio TCP: batched reads into one large
//! `BytesMut`, decoding with `mqtt_codec::Decoder`, many packets encoded into
//! one write buffer before each write. Also a blocking twin over std TCP for
//! the latency mode, where a thread per role gives the most faithful timing.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::BytesMut;
use mqtt_codec::{
    Connect, Decoder, Encoder, Packet, PacketId, ProtocolVersion, QoS, ReasonCode, Subscribe,
    SubscriptionOptions, Utf8Bytes,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Read buffer size: one read can take many packets.
pub(crate) const READ_BUF: usize = 256 * 1024;
/// A batch of encoded packets is written once it reaches this size.
pub(crate) const WRITE_BATCH: usize = 64 * 1024;

/// Connection parameters shared by every client of a run.
#[derive(Debug, Clone)]
pub(crate) struct ConnOpts {
    pub(crate) addr: SocketAddr,
    pub(crate) version: ProtocolVersion,
    pub(crate) keep_alive: u16,
}

fn connect_packet(opts: &ConnOpts, client_id: &str) -> Result<Packet> {
    let id = Utf8Bytes::try_from(client_id.to_owned()).context("client id")?;
    let mut c = Connect::new(opts.version, id);
    c.keep_alive = opts.keep_alive;
    Ok(c.into())
}

/// Checks a CONNACK; returns the broker's Receive Maximum (65,535 if none).
fn check_connack(p: Packet) -> Result<u16> {
    match p {
        Packet::ConnAck(a) if a.reason == ReasonCode::Success => Ok(a
            .properties
            .receive_maximum
            .map_or(u16::MAX, std::num::NonZeroU16::get)),
        Packet::ConnAck(a) => bail!("connection refused: {:?}", a.reason),
        other => bail!("expected CONNACK, got {:?}", other.packet_type()),
    }
}

fn subscribe_packet(filter: &str, qos: QoS) -> Result<Packet> {
    let f = Utf8Bytes::try_from(filter.to_owned()).context("topic filter")?;
    let id = PacketId::new(1).context("packet id")?;
    Ok(Subscribe::new(id, f, SubscriptionOptions::new(qos)).into())
}

fn check_suback(p: Option<Packet>, qos: QoS) -> Result<Option<QoS>> {
    match p {
        Some(Packet::SubAck(a)) => {
            let granted = match a.reasons.first() {
                Some(ReasonCode::Success) => QoS::AtMostOnce,
                Some(ReasonCode::GrantedQoS1) => QoS::AtLeastOnce,
                Some(ReasonCode::GrantedQoS2) => QoS::ExactlyOnce,
                other => bail!("subscription refused: {other:?}"),
            };
            if granted < qos {
                eprintln!(
                    "warning: asked QoS {}, granted QoS {}",
                    qos as u8, granted as u8
                );
            }
            Ok(Some(granted))
        }
        // Messages cannot arrive before SUBACK on a fresh clean session, but
        // tolerate anything else (e.g. PINGRESP).
        Some(_) => Ok(None),
        None => Ok(None),
    }
}

/// An async MQTT connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    pub(crate) rbuf: BytesMut,
    pub(crate) wbuf: BytesMut,
    pub(crate) dec: Decoder,
    pub(crate) enc: Encoder,
    /// The broker's Receive Maximum (v5), 65,535 otherwise.
    pub(crate) receive_max: u16,
}

impl Conn {
    /// Connects, sends CONNECT and waits for a successful CONNACK.
    pub(crate) async fn connect(opts: &ConnOpts, client_id: &str) -> Result<Self> {
        let stream = TcpStream::connect(opts.addr)
            .await
            .with_context(|| format!("connect to {}", opts.addr))?;
        stream.set_nodelay(true)?;
        Self::handshake(stream, opts, client_id, READ_BUF).await
    }

    /// CONNECT / CONNACK on an open socket, with a read buffer of `rcap`.
    pub(crate) async fn handshake(
        stream: TcpStream,
        opts: &ConnOpts,
        client_id: &str,
        rcap: usize,
    ) -> Result<Self> {
        let enc = Encoder::new(opts.version);
        let mut c = Self {
            stream,
            rbuf: BytesMut::with_capacity(rcap),
            wbuf: BytesMut::with_capacity(rcap.min(WRITE_BATCH)),
            dec: Decoder::with_version(opts.version),
            enc,
            receive_max: u16::MAX,
        };
        c.enc
            .encode(&connect_packet(opts, client_id)?, &mut c.wbuf)?;
        c.flush().await?;
        let p = c.next_packet().await?;
        c.receive_max = check_connack(p)?;
        Ok(c)
    }

    /// Subscribes to `filter` at `qos` and waits for the SUBACK.
    pub(crate) async fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<QoS> {
        self.enc
            .encode(&subscribe_packet(filter, qos)?, &mut self.wbuf)?;
        self.flush().await?;
        loop {
            let p = self.next_packet().await?;
            if let Some(q) = check_suback(Some(p), qos)? {
                return Ok(q);
            }
        }
    }

    /// Writes out the write buffer.
    pub(crate) async fn flush(&mut self) -> Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Reads whatever is available (at least one byte) into the read buffer.
    pub(crate) async fn read_more(&mut self) -> Result<()> {
        if self.rbuf.capacity() - self.rbuf.len() < READ_BUF / 4 {
            self.rbuf.reserve(READ_BUF);
        }
        let n = self.stream.read_buf(&mut self.rbuf).await?;
        if n == 0 {
            bail!("connection closed by the broker");
        }
        Ok(())
    }

    /// The next packet, reading as needed.
    pub(crate) async fn next_packet(&mut self) -> Result<Packet> {
        loop {
            if let Some(p) = self.dec.decode(&mut self.rbuf)? {
                return Ok(p);
            }
            self.read_more().await?;
        }
    }

    /// Sends DISCONNECT (best effort).
    pub(crate) async fn disconnect(&mut self) {
        let d = mqtt_codec::Disconnect::new(ReasonCode::Success);
        if self.enc.encode(&d.into(), &mut self.wbuf).is_ok() {
            let _ = self.flush().await;
        }
        let _ = self.stream.shutdown().await;
    }
}

/// A blocking MQTT connection (latency mode).
#[derive(Debug)]
pub(crate) struct BlockingConn {
    pub(crate) stream: std::net::TcpStream,
    pub(crate) rbuf: BytesMut,
    pub(crate) wbuf: BytesMut,
    pub(crate) dec: Decoder,
    pub(crate) enc: Encoder,
    pub(crate) receive_max: u16,
    chunk: Vec<u8>,
}

impl BlockingConn {
    pub(crate) fn connect(opts: &ConnOpts, client_id: &str) -> Result<Self> {
        let stream = std::net::TcpStream::connect_timeout(&opts.addr, Duration::from_secs(10))
            .with_context(|| format!("connect to {}", opts.addr))?;
        stream.set_nodelay(true)?;
        let enc = Encoder::new(opts.version);
        let mut c = Self {
            stream,
            rbuf: BytesMut::with_capacity(READ_BUF),
            wbuf: BytesMut::with_capacity(WRITE_BATCH),
            dec: Decoder::with_version(opts.version),
            enc,
            receive_max: u16::MAX,
            chunk: vec![0; READ_BUF],
        };
        c.enc
            .encode(&connect_packet(opts, client_id)?, &mut c.wbuf)?;
        c.flush()?;
        let p = c.next_packet()?;
        c.receive_max = check_connack(p)?;
        Ok(c)
    }

    pub(crate) fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<QoS> {
        self.enc
            .encode(&subscribe_packet(filter, qos)?, &mut self.wbuf)?;
        self.flush()?;
        loop {
            let p = self.next_packet()?;
            if let Some(q) = check_suback(Some(p), qos)? {
                return Ok(q);
            }
        }
    }

    pub(crate) fn flush(&mut self) -> Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf)?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Blocks until some bytes arrive (or the read timeout set on the
    /// socket passes: `Ok(false)`).
    pub(crate) fn read_more(&mut self) -> Result<bool> {
        match self.stream.read(&mut self.chunk) {
            Ok(0) => bail!("connection closed by the broker"),
            Ok(n) => {
                self.rbuf
                    .extend_from_slice(self.chunk.get(..n).unwrap_or_default());
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(false)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) fn next_packet(&mut self) -> Result<Packet> {
        loop {
            if let Some(p) = self.dec.decode(&mut self.rbuf)? {
                return Ok(p);
            }
            self.read_more()?;
        }
    }
}
