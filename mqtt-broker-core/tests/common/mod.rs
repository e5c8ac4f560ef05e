//! Helpers for the broker's integration tests: a broker on an ephemeral
//! loopback port and a raw MQTT client that encodes and decodes every packet
//! itself with `mqtt_codec`, so that nothing is hidden by a client library.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqtt_broker_core::{Broker, Config};
use mqtt_codec::{
    ConnAck, Connect, Decoder, Disconnect, Encoder, Packet, PacketId, ProtocolVersion, PubAck,
    PubComp, PubRec, PubRel, Publish, QoS, ReasonCode, SubAck, Subscribe, SubscribeFilter,
    SubscriptionId, SubscriptionOptions, UnsubAck, Unsubscribe, Utf8Bytes,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) use mqtt_codec::ProtocolVersion::{V3_1_1, V5};

/// How long a packet that must come may take.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);

/// A UTF-8 string for a packet field.
pub(crate) fn s(v: &str) -> Utf8Bytes {
    Utf8Bytes::try_from(v).unwrap()
}

pub(crate) fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

pub(crate) fn sub_id(n: u32) -> SubscriptionId {
    SubscriptionId::new(n).unwrap()
}

pub(crate) fn nz16(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).unwrap()
}

/// A test configuration: an ephemeral loopback port, no `$SYS` publications
/// (they would interleave with the packets a test expects), short timeouts.
pub(crate) fn config() -> Config {
    let mut c = Config::default();
    c.listeners = vec!["127.0.0.1:0".parse().unwrap()];
    c.sys_interval = Duration::ZERO;
    c.connect_timeout = Duration::from_secs(2);
    c
}

/// Starts a broker with `cfg`; returns it and its address.
pub(crate) async fn start(cfg: Config) -> (Broker, SocketAddr) {
    let broker = Broker::builder().config(cfg).start().await.unwrap();
    let addr = broker.local_addrs()[0];
    (broker, addr)
}

/// Starts a broker with [`config`].
pub(crate) async fn start_default() -> (Broker, SocketAddr) {
    start(config()).await
}

/// Polls `cond` every 10 ms until it holds (for state that no packet
/// exchange reveals, like the broker's counters); panics after [`TIMEOUT`].
pub(crate) async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A CONNECT with the given version, client id and clean start / clean
/// session flag; keep-alive 0 (no keep-alive) unless changed.
pub(crate) fn connect_packet(version: ProtocolVersion, client_id: &str, clean: bool) -> Connect {
    let mut c = Connect::new(version, s(client_id));
    c.clean_start = clean;
    c.keep_alive = 0;
    c
}

/// A PUBLISH; QoS 1/2 need a packet id set by the caller (or use
/// [`Client::publish`]).
pub(crate) fn publish_packet(topic: &str, payload: &str, qos: QoS, retain: bool) -> Publish {
    let mut p = Publish::new(
        mqtt_codec::PublishTopic::try_from(topic).unwrap(),
        Bytes::copy_from_slice(payload.as_bytes()),
    );
    p.qos = qos;
    p.retain = retain;
    p
}

/// A raw MQTT client over a TCP stream.
#[derive(Debug)]
pub(crate) struct Client {
    stream: TcpStream,
    encoder: Encoder,
    decoder: Decoder,
    buf: BytesMut,
    /// Packets received while waiting for another one, returned first by
    /// [`recv`](Self::recv).
    backlog: VecDeque<Packet>,
    next_pid: u16,
    pub(crate) version: ProtocolVersion,
    closed: bool,
}

impl Client {
    /// A TCP connection to `addr` that has not sent anything yet.
    pub(crate) async fn tcp(addr: SocketAddr, version: ProtocolVersion) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        Self::from_stream(stream, version)
    }

    /// A TCP connection to `addr` with a 4 KiB receive buffer, so that the
    /// kernel absorbs little of what the broker sends a client that does
    /// not read.
    pub(crate) async fn tcp_small_buffer(addr: SocketAddr, version: ProtocolVersion) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        Self::from_stream(socket.connect(addr).await.unwrap(), version)
    }

    /// A client on an already connected stream.
    pub(crate) fn from_stream(stream: TcpStream, version: ProtocolVersion) -> Self {
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            encoder: Encoder::new(version),
            decoder: Decoder::with_version(version),
            buf: BytesMut::new(),
            backlog: VecDeque::new(),
            next_pid: 0,
            version,
            closed: false,
        }
    }

    /// Sends `connect` and returns the client with the CONNACK, whatever its
    /// reason code.
    pub(crate) async fn connect_raw(addr: SocketAddr, connect: Connect) -> (Self, ConnAck) {
        let c = Self::tcp(addr, connect.protocol).await;
        c.handshake(connect).await
    }

    /// Sends `connect` on this connection and waits for CONNACK.
    pub(crate) async fn handshake(mut self, connect: Connect) -> (Self, ConnAck) {
        self.send(connect).await;
        match self.recv().await {
            Packet::ConnAck(ack) => (self, *ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Connects with `connect` and asserts success.
    pub(crate) async fn connect_with(addr: SocketAddr, connect: Connect) -> (Self, ConnAck) {
        let (c, ack) = Self::connect_raw(addr, connect).await;
        assert_eq!(ack.reason, ReasonCode::Success, "CONNACK {ack:?}");
        (c, ack)
    }

    /// Connects with the given version, client id and clean flag (no
    /// keep-alive, no properties) and asserts success.
    pub(crate) async fn connect(
        addr: SocketAddr,
        version: ProtocolVersion,
        client_id: &str,
        clean: bool,
    ) -> Self {
        Self::connect_with(addr, connect_packet(version, client_id, clean))
            .await
            .0
    }

    /// A v5 client with clean start 0 and the given Session Expiry Interval;
    /// returns the CONNACK too.
    pub(crate) async fn connect_v5_persistent(
        addr: SocketAddr,
        client_id: &str,
        clean: bool,
        expiry: u32,
    ) -> (Self, ConnAck) {
        let mut c = connect_packet(V5, client_id, clean);
        c.properties.session_expiry_interval = Some(expiry);
        Self::connect_with(addr, c).await
    }

    /// Encodes and writes `packet`.
    pub(crate) async fn send(&mut self, packet: impl Into<Packet>) {
        let packet = packet.into();
        let mut out = BytesMut::new();
        self.encoder.encode(&packet, &mut out).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    /// Writes a SUBSCRIBE of `filters` (filter, options byte) by hand,
    /// without the encoder's checks: for what a client must not send
    /// (invalid filters, No Local on a shared subscription). Returns its
    /// packet identifier.
    pub(crate) async fn send_raw_subscribe(&mut self, filters: &[(&str, u8)]) -> PacketId {
        let id = self.next_pid();
        let mut body = id.get().to_be_bytes().to_vec();
        if self.encoder.version().is_v5() {
            body.push(0); // no properties
        }
        for (f, options) in filters {
            let len = u16::try_from(f.len()).unwrap();
            body.extend_from_slice(&len.to_be_bytes());
            body.extend_from_slice(f.as_bytes());
            body.push(*options);
        }
        let mut frame = vec![0x82];
        let mut n = body.len();
        loop {
            let byte = u8::try_from(n % 128).unwrap();
            n /= 128;
            frame.push(if n > 0 { byte | 0x80 } else { byte });
            if n == 0 {
                break;
            }
        }
        frame.extend_from_slice(&body);
        self.send_bytes(&frame).await;
        id
    }

    /// Writes raw bytes. The broker may already have closed the connection
    /// (malformed input): a failed write is not an error here, what the
    /// broker sent before closing is what a test checks.
    pub(crate) async fn send_bytes(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// The socket, for a test that reads and writes it itself; nothing may
    /// be left unread in the client.
    pub(crate) fn into_stream(self) -> TcpStream {
        let (stream, buf) = self.into_parts();
        assert!(buf.is_empty(), "{} bytes unread", buf.len());
        stream
    }

    /// The socket and the bytes read from it but not decoded yet; no decoded
    /// packet may be left unread.
    pub(crate) fn into_parts(self) -> (TcpStream, BytesMut) {
        assert!(
            self.backlog.is_empty(),
            "unread packets: {:?}",
            self.backlog
        );
        (self.stream, self.buf)
    }

    /// The next packet, or `None` when the connection is closed.
    async fn read_packet(&mut self) -> Option<Packet> {
        if let Some(p) = self.backlog.pop_front() {
            return Some(p);
        }
        loop {
            if let Some(p) = self.decoder.decode(&mut self.buf).unwrap() {
                return Some(p);
            }
            if self.closed {
                return None;
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) => self.closed = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => self.closed = true,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// The next packet within `timeout`: `Ok(None)` when the connection
    /// closed, `Err(())` on timeout.
    pub(crate) async fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Packet>, ()> {
        tokio::time::timeout(timeout, self.read_packet())
            .await
            .map_err(|_| ())
    }

    /// The next packet; panics if none comes within [`TIMEOUT`] or the
    /// connection closes.
    pub(crate) async fn recv(&mut self) -> Packet {
        match self.recv_timeout(TIMEOUT).await {
            Ok(Some(p)) => p,
            Ok(None) => panic!("connection closed while a packet was expected"),
            Err(()) => panic!("no packet within {TIMEOUT:?}"),
        }
    }

    /// Receives until `pick` returns `Some`, keeping the other packets for
    /// later [`recv`](Self::recv) calls.
    pub(crate) async fn recv_until<T>(&mut self, mut pick: impl FnMut(&Packet) -> Option<T>) -> T {
        let mut skipped = Vec::new();
        // Look at the backlog first.
        while let Some(p) = self.backlog.pop_front() {
            if let Some(t) = pick(&p) {
                skipped.extend(self.backlog.drain(..));
                self.backlog = skipped.into();
                return t;
            }
            skipped.push(p);
        }
        let result = loop {
            let p = match self.recv_timeout(TIMEOUT).await {
                Ok(Some(p)) => p,
                Ok(None) => panic!("connection closed; skipped {skipped:?}"),
                Err(()) => panic!("expected packet did not come; skipped {skipped:?}"),
            };
            if let Some(t) = pick(&p) {
                break t;
            }
            skipped.push(p);
        };
        self.backlog = skipped.into();
        result
    }

    /// The next packet, which must be a PUBLISH.
    pub(crate) async fn expect_publish(&mut self) -> Publish {
        match self.recv().await {
            Packet::Publish(p) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// Acknowledges a received PUBLISH as its QoS requires (QoS 2: PUBREC,
    /// waits for PUBREL, PUBCOMP).
    pub(crate) async fn ack(&mut self, p: &Publish) {
        match p.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.send(PubAck::new(p.packet_id.unwrap())).await,
            QoS::ExactlyOnce => {
                let id = p.packet_id.unwrap();
                self.send(PubRec::new(id)).await;
                let rel = self
                    .recv_until(|q| match q {
                        Packet::PubRel(r) if r.packet_id == id => Some(r.clone()),
                        _ => None,
                    })
                    .await;
                assert_eq!(rel.reason, ReasonCode::Success);
                self.send(PubComp::new(id)).await;
            }
        }
    }

    /// The next packet, which must be a PUBLISH, acknowledged.
    pub(crate) async fn recv_publish(&mut self) -> Publish {
        let p = self.expect_publish().await;
        self.ack(&p).await;
        p
    }

    /// Sends PINGREQ and waits for PINGRESP; returns the packets received
    /// before it. Since the broker answers in order, everything it sent
    /// because of our earlier packets is in there.
    pub(crate) async fn ping(&mut self) -> Vec<Packet> {
        self.send(Packet::PingReq).await;
        let mut before: Vec<Packet> = self.backlog.drain(..).collect();
        loop {
            match self.recv_timeout(TIMEOUT).await {
                Ok(Some(Packet::PingResp)) => return before,
                Ok(Some(p)) => before.push(p),
                Ok(None) => panic!("closed while waiting for PINGRESP; got {before:?}"),
                Err(()) => panic!("no PINGRESP; got {before:?}"),
            }
        }
    }

    /// Asserts that nothing arrived (checked with a PINGREQ round trip).
    pub(crate) async fn expect_nothing(&mut self) {
        let got = self.ping().await;
        assert!(got.is_empty(), "expected nothing, got {got:?}");
    }

    /// Waits (up to `timeout`) for the connection to close; returns the
    /// packets received before the close.
    pub(crate) async fn expect_closed_within(&mut self, timeout: Duration) -> Vec<Packet> {
        let mut before: Vec<Packet> = self.backlog.drain(..).collect();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_timeout(left).await {
                Ok(Some(p)) => before.push(p),
                Ok(None) => return before,
                Err(()) => panic!("connection not closed within {timeout:?}; got {before:?}"),
            }
        }
    }

    /// Waits for the connection to close; returns the packets received
    /// before.
    pub(crate) async fn expect_closed(&mut self) -> Vec<Packet> {
        self.expect_closed_within(TIMEOUT).await
    }

    /// Waits for the connection to close and asserts it was (v5) preceded by
    /// DISCONNECT with `reason`, or (3.1.1) by nothing.
    pub(crate) async fn expect_disconnect(&mut self, reason: ReasonCode) {
        let got = self.expect_closed().await;
        if self.version.is_v5() {
            match got.as_slice() {
                [Packet::Disconnect(d)] => assert_eq!(d.reason, reason, "{d:?}"),
                other => panic!("expected DISCONNECT {reason:?} then close, got {other:?}"),
            }
        } else {
            assert!(got.is_empty(), "expected a bare close, got {got:?}");
        }
    }

    /// A fresh packet identifier.
    pub(crate) fn next_pid(&mut self) -> PacketId {
        self.next_pid = self.next_pid.checked_add(1).unwrap_or(1);
        pid(self.next_pid)
    }

    /// Sends SUBSCRIBE for one filter with `options` and an optional
    /// subscription identifier; returns the SUBACK.
    pub(crate) async fn subscribe_opts(
        &mut self,
        filter: &str,
        options: SubscriptionOptions,
        id: Option<u32>,
    ) -> SubAck {
        let mut sub = Subscribe::new(self.next_pid(), s(filter), options);
        sub.properties.to_mut().subscription_identifier = id.map(sub_id);
        self.subscribe_packet(sub).await
    }

    /// Sends a SUBSCRIBE; returns the SUBACK (packets arriving meanwhile are
    /// kept).
    pub(crate) async fn subscribe_packet(&mut self, sub: Subscribe) -> SubAck {
        let id = sub.packet_id;
        self.send(sub).await;
        self.recv_until(|p| match p {
            Packet::SubAck(a) if a.packet_id == id => Some(a.clone()),
            _ => None,
        })
        .await
    }

    /// Subscribes to `filter` with maximum QoS `qos` and asserts it was
    /// granted.
    pub(crate) async fn subscribe(&mut self, filter: &str, qos: QoS) {
        let ack = self
            .subscribe_opts(filter, SubscriptionOptions::new(qos), None)
            .await;
        assert_eq!(ack.reasons, vec![granted(qos)], "SUBACK for {filter}");
    }

    /// Subscribes to several filters in one SUBSCRIBE.
    pub(crate) async fn subscribe_many(&mut self, filters: &[(&str, QoS)]) -> SubAck {
        let mut sub = Subscribe::new(
            self.next_pid(),
            s(filters[0].0),
            SubscriptionOptions::new(filters[0].1),
        );
        for (f, q) in &filters[1..] {
            sub.filters.push(SubscribeFilter {
                filter: s(f),
                options: SubscriptionOptions::new(*q),
            });
        }
        self.subscribe_packet(sub).await
    }

    /// Unsubscribes from `filter`; returns the UNSUBACK.
    pub(crate) async fn unsubscribe(&mut self, filter: &str) -> UnsubAck {
        let id = self.next_pid();
        self.send(Unsubscribe::new(id, vec![s(filter)])).await;
        self.recv_until(|p| match p {
            Packet::UnsubAck(a) if a.packet_id == id => Some(a.clone()),
            _ => None,
        })
        .await
    }

    /// Publishes `p` (a packet id is assigned for QoS 1/2) and completes its
    /// flow: waits for PUBACK, or PUBREC, sends PUBREL, waits for PUBCOMP.
    /// Once this returns the broker has routed the message. Other packets
    /// received meanwhile are kept.
    pub(crate) async fn publish_packet(&mut self, mut p: Publish) {
        match p.qos {
            QoS::AtMostOnce => {
                self.send(p).await;
                return;
            }
            QoS::AtLeastOnce => {
                let reason = self.publish_acked(p).await;
                assert!(!reason.is_error(), "PUBACK {reason:?}");
                return;
            }
            QoS::ExactlyOnce => {}
        }
        let id = self.next_pid();
        p.packet_id = Some(id);
        self.send(p).await;
        let rec = self
            .recv_until(|q| match q {
                Packet::PubRec(a) if a.packet_id == id => Some(a.clone()),
                _ => None,
            })
            .await;
        assert!(!rec.reason.is_error(), "{rec:?}");
        self.send(PubRel::new(id)).await;
        let comp = self
            .recv_until(|q| match q {
                Packet::PubComp(a) if a.packet_id == id => Some(a.clone()),
                _ => None,
            })
            .await;
        assert_eq!(comp.reason, ReasonCode::Success);
    }

    /// Publishes `p` at QoS 0 or 1 and returns the PUBACK's reason (Success
    /// for QoS 0, after a PINGREQ round trip): for tests of refusals, which
    /// [`publish_packet`](Self::publish_packet) would reject.
    pub(crate) async fn publish_acked(&mut self, mut p: Publish) -> ReasonCode {
        if p.qos == QoS::AtMostOnce {
            self.send(p).await;
            let got = self.ping().await;
            self.backlog.extend(got);
            return ReasonCode::Success;
        }
        assert_eq!(p.qos, QoS::AtLeastOnce, "QoS 0 or 1 only");
        let id = self.next_pid();
        p.packet_id = Some(id);
        self.send(p).await;
        self.recv_until(|q| match q {
            Packet::PubAck(a) if a.packet_id == id => Some(a.reason),
            _ => None,
        })
        .await
    }

    /// Every byte the broker sends until it closes the connection (within
    /// [`TIMEOUT`]), undecoded.
    pub(crate) async fn read_to_end(&mut self) -> Vec<u8> {
        let mut wire = self.buf.split().to_vec();
        tokio::time::timeout(TIMEOUT, self.stream.read_to_end(&mut wire))
            .await
            .expect("closed in time")
            .expect("read");
        wire
    }

    /// Publishes and completes the flow; for QoS 0 also waits for a PINGRESP
    /// so that the broker has routed the message when this returns.
    pub(crate) async fn publish(&mut self, topic: &str, payload: &str, qos: QoS, retain: bool) {
        self.publish_packet(publish_packet(topic, payload, qos, retain))
            .await;
        if qos == QoS::AtMostOnce {
            let got = self.ping().await;
            // Keep what came meanwhile (the client may be subscribed).
            self.backlog.extend(got);
        }
    }

    /// Sends a normal DISCONNECT and waits for the broker to close.
    pub(crate) async fn disconnect(mut self) {
        self.send(Disconnect::new(ReasonCode::Success)).await;
        let got = self.expect_closed().await;
        assert!(
            got.iter().all(|p| !matches!(p, Packet::Disconnect(_))),
            "unexpected {got:?}"
        );
    }

    /// Sends DISCONNECT with `reason` and waits for the broker to close.
    pub(crate) async fn disconnect_with(mut self, d: Disconnect) {
        self.send(d).await;
        self.expect_closed().await;
    }

    /// Closes the socket without DISCONNECT (an abnormal close).
    pub(crate) fn drop_connection(self) {
        drop(self);
    }
}

/// The SUBACK reason code granting `qos`.
pub(crate) fn granted(qos: QoS) -> ReasonCode {
    match qos {
        QoS::AtMostOnce => ReasonCode::Success,
        QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
        QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
    }
}

/// The payload of a PUBLISH as a string.
pub(crate) fn text(p: &Publish) -> &str {
    std::str::from_utf8(&p.payload).unwrap()
}
