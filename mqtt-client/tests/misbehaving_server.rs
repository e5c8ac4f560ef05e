#![allow(
    unsafe_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation
)]
//! A misbehaving or malicious broker (a fake one, scripted here over TCP
//! on 127.0.0.1 with `mqtt-codec`) against the client: what it holds stays
//! bounded, no call hangs, and what it sends stays within the protocol.
//! Each test of a fixed fault says in its documentation what the client
//! did before (found by a review) and asserts what it does now.
//!
//! Memory is measured with a counting global allocator (live heap bytes
//! of this test binary). Every test takes one global lock, so that no two
//! run at once and the counts are those of one test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::num::{NonZeroU16, NonZeroU32};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use mqtt_client::{
    Client, ClientOptions, Event, ProtocolVersion, QoS, ReconnectOptions, SubscriptionOptions,
};
use mqtt_codec::{
    ConnAck, Decoder, Encoder, Packet, PacketId, Publish, PublishTopic, ReasonCode, SubAck,
    Subscribe, Utf8Bytes,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

// ----- counting allocator ---------------------------------------------------

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn mib(n: isize) -> f64 {
    n as f64 / (1024.0 * 1024.0)
}

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One test at a time (memory counts are process-wide).
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

// ----- fake broker ----------------------------------------------------------

fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

async fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// A listener whose accepted sockets have a small receive buffer (what a
/// broker that does not read leaves the client's writes: blocked early).
fn small_rcvbuf_listener() -> (TcpListener, u16) {
    let s = TcpSocket::new_v4().unwrap();
    s.set_recv_buffer_size(16 * 1024).unwrap();
    s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let l = s.listen(16).unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

struct Peer {
    client_id: String,
    s: TcpStream,
    d: Decoder,
    buf: BytesMut,
    e: Encoder,
}

impl Peer {
    /// Accepts a connection, reads CONNECT and answers `connack`.
    async fn accept(l: &TcpListener, v: ProtocolVersion, connack: ConnAck) -> Self {
        let (s, _) = timeout(Duration::from_secs(5), l.accept())
            .await
            .expect("the client connects in time")
            .unwrap();
        let mut me = Self {
            client_id: String::new(),
            s,
            d: Decoder::new(),
            buf: BytesMut::new(),
            e: Encoder::new(v),
        };
        let Some(Packet::Connect(c)) = me.recv().await else {
            panic!("CONNECT expected");
        };
        assert_eq!(c.protocol, v);
        me.client_id = c.client_id.to_string();
        me.send(connack).await;
        me
    }

    /// The next packet, `None` when the client closed the connection.
    async fn recv(&mut self) -> Option<Packet> {
        self.recv_within(Duration::from_secs(5))
            .await
            .expect("a packet in time")
    }

    /// The next packet within `t` (`Err` on timeout).
    async fn recv_within(&mut self, t: Duration) -> Result<Option<Packet>, ()> {
        let deadline = tokio::time::Instant::now() + t;
        loop {
            if let Some(p) = self.d.decode(&mut self.buf).unwrap() {
                return Ok(Some(p));
            }
            match tokio::time::timeout_at(deadline, self.s.read_buf(&mut self.buf)).await {
                Err(_) => return Err(()),
                Ok(Ok(0)) | Ok(Err(_)) => return Ok(None),
                Ok(Ok(_)) => {}
            }
        }
    }

    fn encode(&mut self, p: impl Into<Packet>) -> BytesMut {
        let mut b = BytesMut::new();
        self.e.encode(&p.into(), &mut b).unwrap();
        b
    }

    async fn send(&mut self, p: impl Into<Packet>) {
        let b = self.encode(p);
        self.s.write_all(&b).await.unwrap();
    }

    /// Reads a SUBSCRIBE and grants each filter the QoS it asked.
    async fn grant(&mut self) -> Subscribe {
        let Some(Packet::Subscribe(s)) = self.recv().await else {
            panic!("SUBSCRIBE expected");
        };
        let reasons = s
            .filters
            .iter()
            .map(|f| match f.options.qos {
                QoS::AtMostOnce => ReasonCode::Success,
                QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
                QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
            })
            .collect();
        self.send(SubAck::new(s.packet_id, reasons)).await;
        s
    }
}

fn publish(topic: &str, payload: impl Into<bytes::Bytes>, qos: QoS, id: Option<u16>) -> Publish {
    let mut p = Publish::new(PublishTopic::try_from(topic).unwrap(), payload);
    p.qos = qos;
    p.packet_id = id.map(pid);
    p
}

fn options(port: u16, v: ProtocolVersion, id: &str) -> ClientOptions {
    let mut o = ClientOptions::new("127.0.0.1", port);
    o.protocol(v)
        .client_id(id)
        .reconnect(ReconnectOptions::disabled());
    o
}

fn no_reconnect_events(e: &Event) -> Option<String> {
    match e {
        Event::Disconnected { error, .. } => Some(error.to_string()),
        Event::Protocol(mqtt_session::Event::Closed(r)) => Some(format!("{r:?}")),
        _ => None,
    }
}

// ----- (a) memory -----------------------------------------------------------

/// A broker that does not read, and sends PUBREL for packet identifiers
/// the client does not know (4 bytes each). The client answers each with a
/// PUBCOMP (0x92 at 5.0: 5 bytes) into its write buffer. Before, nothing
/// bounded that buffer (33-65 MiB in 3 s) and keep-alive never fired
/// (every PUBCOMP queued counted as sent); now the connection ends once
/// nothing could be written for the ping timeout, and the client stops
/// reading while 16 MiB wait to be written.
#[tokio::test]
async fn a_broker_that_does_not_read_is_presumed_dead_and_its_answers_stay_bounded() {
    let _g = serial().await;
    let (l, port) = small_rcvbuf_listener();
    let mut o = options(port, ProtocolVersion::V5, "no-reader");
    o.keep_alive(1).ping_timeout(Duration::from_secs(1));
    let mut b = Client::builder(o);
    let mut events = b.events();
    // 256 KiB of PUBREL packets, identifiers 1..=65535 over and over.
    let mut flood = BytesMut::with_capacity(256 * 1024);
    let mut n: u16 = 0;
    while flood.len() + 4 <= 256 * 1024 {
        n = n.checked_add(1).unwrap_or(1);
        flood.put_slice(&[0x62, 0x02]);
        flood.put_u16(n);
    }
    let flood = flood.freeze();
    let written = Arc::new(AtomicUsize::new(0));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<()>();
    let (go_tx, mut go_rx) = mpsc::unbounded_channel::<()>();
    let w = Arc::clone(&written);
    let server = tokio::spawn(async move {
        let mut peer = Peer::accept(&l, ProtocolVersion::V5, ConnAck::default()).await;
        ready_tx.send(()).unwrap();
        go_rx.recv().await;
        // Never read again; write PUBRELs for 3 s.
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            match timeout(Duration::from_millis(200), peer.s.write_all(&flood)).await {
                Ok(Ok(())) => {
                    w.fetch_add(flood.len(), Ordering::Relaxed);
                }
                Ok(Err(_)) => break,
                Err(_) => {}
            }
        }
        peer
    });
    let client = b.connect().await.unwrap();
    ready_rx.recv().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = live();
    go_tx.send(()).unwrap();
    let mut samples = Vec::new();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(950)).await;
        samples.push(format!("{:.1}", mib(live() - before)));
    }
    let peer = server.await.unwrap();
    // Let the client finish what is in its socket buffer.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown = live() - before;
    let mut ended = None;
    while let Ok(Some(e)) = timeout(Duration::from_millis(10), events.recv()).await {
        if let Some(s) = no_reconnect_events(&e) {
            ended.get_or_insert(s);
        }
    }
    let sent = written.load(Ordering::Relaxed);
    println!(
        "write-buffer probe: broker sent {:.1} MiB of PUBREL ({} packets) without reading; \
         client heap grew by {:.1} MiB (MiB at ~1 s, 2 s, 3 s: {samples:?}); connection ended: {ended:?}",
        mib(sent as isize),
        sent / 4,
        mib(grown)
    );
    // `disconnect` with that buffer unwritable: bounded by the close grace
    // (ping_timeout, at most 30 s).
    let t0 = Instant::now();
    let d = timeout(Duration::from_secs(4), client.disconnect()).await;
    println!(
        "write-buffer probe: disconnect() -> {d:?} after {:?}",
        t0.elapsed()
    );
    drop(peer);
    drop(client);
    assert!(
        grown < 8 * 1024 * 1024,
        "client heap grew by {:.1} MiB (PUBCOMPs queued for a broker that reads nothing; \
         {:.1} MiB of PUBREL received in 3 s; keep_alive 1 s + ping_timeout 1 s did not end it: {ended:?})",
        mib(grown),
        mib(sent as isize)
    );
}

/// README: "use manual acknowledgement to let the server's inflight window
/// (our Receive Maximum) bound QoS 1/2 buffering". A broker that sends the
/// same QoS 1 packet identifier again and again (not acknowledged yet, so
/// each is a duplicate the spec forbids outside reconnection,
/// [MQTT-4.4.0-1]) had every copy delivered (10,000, 10.8 MiB, past a
/// Receive Maximum of 1); a copy of a message the application holds is
/// not delivered again now.
#[tokio::test]
async fn duplicate_qos1_ids_do_not_bypass_the_receive_maximum() {
    let _g = serial().await;
    let (l, port) = listener().await;
    let mut o = options(port, ProtocolVersion::V5, "dup-qos1");
    o.manual_ack(true)
        .receive_maximum(NonZeroU16::new(1).unwrap())
        .max_incoming_packet_size(NonZeroU32::new(2048).unwrap());
    const COPIES: usize = 10_000;
    let server = tokio::spawn(async move {
        let mut peer = Peer::accept(&l, ProtocolVersion::V5, ConnAck::default()).await;
        peer.grant().await; // "t", QoS 1
        peer.grant().await; // "end", QoS 0
        let mut all = BytesMut::new();
        for _ in 0..COPIES {
            let mut p = publish("t", vec![b'x'; 1000], QoS::AtLeastOnce, Some(1));
            p.dup = true;
            all.extend_from_slice(&peer.encode(p));
        }
        all.extend_from_slice(&peer.encode(publish("end", "", QoS::AtMostOnce, None)));
        peer.s.write_all(&all).await.unwrap();
        // Keep the connection open until the client goes.
        let _ = peer.recv_within(Duration::from_secs(10)).await;
    });
    let client = Client::connect(o).await.unwrap();
    let mut sub = client
        .subscribe("t", SubscriptionOptions::new(QoS::AtLeastOnce))
        .await
        .unwrap();
    let mut end = client
        .subscribe("end", SubscriptionOptions::new(QoS::AtMostOnce))
        .await
        .unwrap();
    let before = live();
    timeout(Duration::from_secs(5), end.recv())
        .await
        .expect("the marker in time")
        .unwrap();
    let held = live() - before;
    let mut buffered = 0;
    while sub.try_recv().is_some() {
        buffered += 1;
    }
    println!(
        "duplicate QoS 1 probe: Receive Maximum 1, max packet 2 KiB; {buffered} messages buffered \
         in the subscription stream ({:.1} MiB), connected: {}",
        mib(held),
        client.is_connected()
    );
    server.abort();
    assert!(
        buffered <= 1,
        "{buffered} unacknowledged QoS 1 messages ({:.1} MiB) buffered with manual_ack and Receive Maximum 1",
        mib(held)
    );
}

// ----- (b) hangs / liveness -------------------------------------------------

/// A "black hole" broker (say a proxy in front of a dead broker): it reads
/// everything and never answers. With keep_alive 1 s and ping_timeout 1 s,
/// an idle client declares it dead after about 2 s; a client that kept
/// publishing at QoS 0 never did (every PUBLISH re-armed the keep-alive
/// timer, so no PINGREQ was sent). Now a server silent for Keep Alive is
/// pinged whatever the client sends.
#[tokio::test]
async fn qos0_traffic_does_not_hide_a_dead_broker_from_keep_alive() {
    let _g = serial().await;
    let (l, port) = listener().await;
    let pingreqs: Arc<Mutex<Vec<(String, usize)>>> = Arc::default();
    let p2 = Arc::clone(&pingreqs);
    let server = tokio::spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let mut peer = Peer::accept(&l, ProtocolVersion::V5, ConnAck::default()).await;
            let p = Arc::clone(&p2);
            let slot = {
                let mut v = p.lock().unwrap();
                v.push((peer.client_id.clone(), 0));
                v.len() - 1
            };
            tasks.push(tokio::spawn(async move {
                // Read and discard; never answer.
                while let Ok(Some(pk)) = peer.recv_within(Duration::from_secs(30)).await {
                    if matches!(pk, Packet::PingReq) {
                        p.lock().unwrap()[slot].1 += 1;
                    }
                }
            }));
        }
        tasks
    });
    let mk = |id: &str| {
        let mut o = options(port, ProtocolVersion::V5, id);
        o.keep_alive(1).ping_timeout(Duration::from_secs(1));
        let mut b = Client::builder(o);
        let ev = b.events();
        (b, ev)
    };
    let (b_idle, ev_idle) = mk("idle");
    let idle = b_idle.connect().await.unwrap();
    let (b_busy, ev_busy) = mk("busy");
    let busy = b_busy.connect().await.unwrap();
    let t0 = Instant::now();
    let watch = |mut ev: mqtt_client::EventStream| async move {
        while let Some(e) = ev.recv().await {
            if let Event::Disconnected { error, .. } = e {
                return Some((t0.elapsed(), error.to_string()));
            }
        }
        None
    };
    let idle_end = tokio::spawn(watch(ev_idle));
    let busy_end = tokio::spawn(watch(ev_busy));
    let mut ok = 0;
    let mut failed = 0;
    while t0.elapsed() < Duration::from_millis(3500) {
        match timeout(
            Duration::from_secs(1),
            busy.publish("t", "x", QoS::AtMostOnce, false),
        )
        .await
        {
            Ok(Ok(_)) => ok += 1,
            _ => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let idle_r = timeout(Duration::from_millis(10), idle_end).await;
    let busy_r = timeout(Duration::from_millis(10), busy_end).await;
    let idle_r = idle_r.ok().and_then(|r| r.ok()).flatten();
    let busy_r = busy_r.ok().and_then(|r| r.ok()).flatten();
    println!(
        "black-hole probe: idle client ended: {idle_r:?}; publishing client ended: {busy_r:?} \
         ({ok} QoS 0 publishes Ok, {failed} failed); PINGREQs seen by the broker: {:?}",
        pingreqs.lock().unwrap()
    );
    for t in server.await.unwrap() {
        t.abort();
    }
    drop((idle, busy));
    assert!(
        idle_r.is_some(),
        "control: the idle client should detect the dead broker"
    );
    assert!(
        busy_r.is_some(),
        "a client publishing QoS 0 to a broker that never answers was not disconnected in 3.5 s \
         (keep_alive 1 s, ping_timeout 1 s): {ok} publishes reported written, no PINGREQ sent"
    );
}

// ----- (d) what the client sends --------------------------------------------

/// [MQTT-4.6.0-2]: "Implementations MUST send PUBACK packets in the order
/// in which the corresponding PUBLISH packets were received (QoS 1
/// messages)." With manual acknowledgement the PUBACKs went out in the
/// order the application acknowledged; now each waits for the earlier ones.
#[tokio::test]
async fn manual_acks_go_out_in_arrival_order() {
    let _g = serial().await;
    let (l, port) = listener().await;
    let mut o = options(port, ProtocolVersion::V3_1_1, "ack-order");
    o.manual_ack(true);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server = tokio::spawn(async move {
        let mut peer = Peer::accept(&l, ProtocolVersion::V3_1_1, ConnAck::default()).await;
        peer.grant().await;
        peer.send(publish("t", "1", QoS::AtLeastOnce, Some(1)))
            .await;
        peer.send(publish("t", "2", QoS::AtLeastOnce, Some(2)))
            .await;
        for _ in 0..2 {
            match peer.recv().await {
                Some(Packet::PubAck(a)) => tx.send(a.packet_id.get()).unwrap(),
                other => panic!("PUBACK expected, got {other:?}"),
            }
        }
        let _ = peer.recv_within(Duration::from_secs(10)).await;
    });
    let client = Client::connect(o).await.unwrap();
    let mut sub = client
        .subscribe("t", SubscriptionOptions::new(QoS::AtLeastOnce))
        .await
        .unwrap();
    let mut first = timeout(Duration::from_secs(5), sub.recv())
        .await
        .unwrap()
        .unwrap();
    let mut second = timeout(Duration::from_secs(5), sub.recv())
        .await
        .unwrap()
        .unwrap();
    second.ack();
    tokio::time::sleep(Duration::from_millis(100)).await;
    first.ack();
    let a = timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let b = timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    println!("ack order probe: PUBLISH 1, 2 received; PUBACKs sent for {a}, {b}");
    server.abort();
    assert_eq!(
        [a, b],
        [1, 2],
        "PUBACKs not in the order of the PUBLISH packets [MQTT-4.6.0-2]"
    );
}

/// With manual acknowledgement, the token of a message received on an
/// earlier connection was not tied to that connection: after a
/// reconnection on which the server (having no session) reused packet
/// identifier 1 for a new message B, dropping the old message A sent
/// PUBACK 1, which acknowledged B before the application was done with it
/// (at-least-once broken). Tokens now carry their connection (QoS 1) or
/// session (QoS 2).
#[tokio::test]
async fn a_stale_manual_ack_does_not_acknowledge_a_new_message() {
    let _g = serial().await;
    let (l, port) = listener().await;
    let mut o = options(port, ProtocolVersion::V5, "stale-ack");
    o.manual_ack(true).reconnect(
        ReconnectOptions::default().delays(Duration::from_millis(10), Duration::from_millis(10)),
    );
    let (tx, mut rx) = mpsc::unbounded_channel::<Option<u16>>();
    let (go_tx, mut go_rx) = mpsc::unbounded_channel::<()>();
    let server = tokio::spawn(async move {
        // Connection 1: message A with packet id 1, then the connection breaks.
        let mut peer = Peer::accept(&l, ProtocolVersion::V5, ConnAck::default()).await;
        peer.grant().await;
        peer.send(publish("t", "A", QoS::AtLeastOnce, Some(1)))
            .await;
        go_rx.recv().await;
        drop(peer);
        // Connection 2: no session; the client subscribes again; message B
        // with packet id 1 (free on this connection).
        let mut peer = Peer::accept(&l, ProtocolVersion::V5, ConnAck::default()).await;
        peer.grant().await;
        peer.send(publish("t", "B", QoS::AtLeastOnce, Some(1)))
            .await;
        loop {
            match peer.recv_within(Duration::from_secs(3)).await {
                Ok(Some(Packet::PubAck(a))) => tx.send(Some(a.packet_id.get())).unwrap(),
                Ok(Some(_)) => continue,
                _ => {
                    let _ = tx.send(None);
                    break;
                }
            }
        }
    });
    let client = Client::connect(o).await.unwrap();
    let mut sub = client
        .subscribe("t", SubscriptionOptions::new(QoS::AtLeastOnce))
        .await
        .unwrap();
    let a = timeout(Duration::from_secs(5), sub.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&a.payload()[..], b"A");
    go_tx.send(()).unwrap();
    let b = timeout(Duration::from_secs(5), sub.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&b.payload()[..], b"B");
    // The application is done with A (only).
    drop(a);
    let got = timeout(Duration::from_millis(1000), rx.recv()).await;
    let acked = matches!(got, Ok(Some(Some(1))));
    println!(
        "stale ack probe: after dropping A (old connection), the server got {got:?} \
         while B still awaits the application's ack: {}",
        b.awaits_ack()
    );
    assert!(b.awaits_ack());
    drop(b);
    server.abort();
    assert!(
        !acked,
        "dropping a message of the previous connection sent PUBACK 1, acknowledging message B \
         the application has not acknowledged"
    );
}

/// `receive_maximum` is documented as "announced to the server (MQTT 5.0)".
/// At 3.1.1 it is not announced (there is no such property), yet the
/// session enforced it: a compliant 3.1.1 broker sending a third QoS 1
/// message to a manual-ack client with `receive_maximum(2)` was
/// disconnected as a protocol violator. Not enforced below 5.0 now.
#[tokio::test]
async fn v311_does_not_enforce_an_unannounced_receive_maximum() {
    let _g = serial().await;
    let (l, port) = listener().await;
    let mut o = options(port, ProtocolVersion::V3_1_1, "v311-recvmax");
    o.manual_ack(true)
        .receive_maximum(NonZeroU16::new(2).unwrap());
    let mut b = Client::builder(o);
    let mut events = b.events();
    let server = tokio::spawn(async move {
        let mut peer = Peer::accept(&l, ProtocolVersion::V3_1_1, ConnAck::default()).await;
        peer.grant().await;
        for i in 1..=3 {
            peer.send(publish("t", "m", QoS::AtLeastOnce, Some(i)))
                .await;
        }
        // Whether the client closes the connection.
        loop {
            match peer.recv_within(Duration::from_secs(2)).await {
                Ok(Some(_)) => {}
                Ok(None) => return true,
                Err(()) => return false,
            }
        }
    });
    let client = b.connect().await.unwrap();
    let mut sub = client
        .subscribe("t", SubscriptionOptions::new(QoS::AtLeastOnce))
        .await
        .unwrap();
    let mut held = Vec::new();
    while let Ok(Some(m)) = timeout(Duration::from_millis(500), sub.recv()).await {
        held.push(m);
    }
    let closed = server.await.unwrap();
    let mut why = None;
    while let Ok(Some(e)) = timeout(Duration::from_millis(10), events.recv()).await {
        if let Some(s) = no_reconnect_events(&e) {
            why.get_or_insert(s);
        }
    }
    println!(
        "3.1.1 receive maximum probe: {} of 3 messages delivered; client closed the connection: \
         {closed} ({why:?})",
        held.len()
    );
    drop(held);
    assert!(
        !closed,
        "a 3.1.1 broker was disconnected for exceeding a Receive Maximum it was never told: {why:?}"
    );
}

// ----- correctly bounded paths ----------------------------------------------

/// A broker that accepts TCP and never sends CONNACK: `connect` fails after
/// `connect_timeout`.
#[tokio::test]
async fn bounded_connect_without_connack_times_out() {
    let _g = serial().await;
    let (l, port) = listener().await;
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = Vec::new();
        // Trickle nothing; read the CONNECT and keep the socket.
        let _ = timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    });
    let mut o = options(port, ProtocolVersion::V5, "no-connack");
    o.connect_timeout(Duration::from_secs(1));
    let t0 = Instant::now();
    let r = timeout(Duration::from_secs(4), Client::connect(o)).await;
    server.abort();
    let r = r.expect("connect returns");
    assert!(r.is_err(), "{r:?}");
    assert!(
        t0.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t0.elapsed()
    );
}

/// A packet header announcing 200 MB: refused from its fixed header, with
/// nothing buffered (the decoder checks the length before reading the
/// body), and the connection ends.
#[tokio::test]
async fn bounded_huge_packet_header_is_refused_without_buffering() {
    let _g = serial().await;
    let (l, port) = listener().await;
    let mut b = Client::builder(options(port, ProtocolVersion::V3_1_1, "huge"));
    let mut events = b.events();
    let server = tokio::spawn(async move {
        let mut peer = Peer::accept(&l, ProtocolVersion::V3_1_1, ConnAck::default()).await;
        // PUBLISH QoS 0, Remaining Length 200,000,000, then 256 KiB of body.
        let mut h = vec![0x30];
        let mut n: u32 = 200_000_000;
        loop {
            let mut byte = (n % 128) as u8;
            n /= 128;
            if n > 0 {
                byte |= 0x80;
            }
            h.push(byte);
            if n == 0 {
                break;
            }
        }
        let _ = peer.s.write_all(&h).await;
        let _ = peer.s.write_all(&[0u8; 256 * 1024]).await;
        peer.recv_within(Duration::from_secs(3)).await
    });
    let before = live();
    let client = b.connect().await.unwrap();
    let why = timeout(Duration::from_secs(3), async {
        loop {
            if let Some(Event::Disconnected { error, .. }) = events.recv().await {
                return error.to_string();
            }
        }
    })
    .await
    .expect("the connection ends");
    let grown = live() - before;
    let _ = server.await;
    println!(
        "huge header probe: ended with {why:?}, heap +{:.2} MiB",
        mib(grown)
    );
    drop(client);
    assert!(grown < 2 * 1024 * 1024, "{grown}");
}

/// QoS 2 PUBLISH with distinct identifiers and never a PUBREL: the client
/// keeps one identifier per flow, up to its Receive Maximum, then closes
/// the connection (0x93); a re-sent QoS 2 PUBLISH (same identifier) is not
/// delivered twice.
#[tokio::test]
async fn bounded_qos2_without_pubrel_stops_at_receive_maximum() {
    let _g = serial().await;
    let (l, port) = listener().await;
    let mut o = options(port, ProtocolVersion::V5, "qos2-flood");
    o.receive_maximum(NonZeroU16::new(10).unwrap());
    let mut b = Client::builder(o);
    let mut events = b.events();
    let server = tokio::spawn(async move {
        let mut peer = Peer::accept(&l, ProtocolVersion::V5, ConnAck::default()).await;
        peer.grant().await;
        // Ten flows, each PUBLISH sent twice, then an eleventh flow.
        for i in 1..=10 {
            for _ in 0..2 {
                peer.send(publish("t", "m", QoS::ExactlyOnce, Some(i)))
                    .await;
            }
        }
        peer.send(publish("t", "m", QoS::ExactlyOnce, Some(11)))
            .await;
        let mut disconnect = None;
        while let Ok(Some(p)) = peer.recv_within(Duration::from_secs(2)).await {
            if let Packet::Disconnect(d) = p {
                disconnect = Some(d.reason);
            }
        }
        disconnect
    });
    let client = b.connect().await.unwrap();
    let mut sub = client
        .subscribe("t", SubscriptionOptions::new(QoS::ExactlyOnce))
        .await
        .unwrap();
    let reason = server.await.unwrap();
    let mut n = 0;
    while sub.try_recv().is_some() {
        n += 1;
    }
    while let Ok(Some(_)) = timeout(Duration::from_millis(10), events.recv()).await {}
    println!("QoS 2 flood probe: {n} delivered, DISCONNECT {reason:?}");
    drop(client);
    assert_eq!(n, 10);
    assert_eq!(reason, Some(ReasonCode::ReceiveMaximumExceeded));
}

/// A broker that reads everything and answers nothing (not even PINGRESP),
/// with reconnection disabled: a QoS 1 `publish` does not hang; the
/// keep-alive (the client goes idle once its PUBLISH is sent) ends the
/// connection and `publish` fails.
#[tokio::test]
async fn bounded_qos1_publish_to_a_silent_broker_fails_after_keep_alive() {
    let _g = serial().await;
    let (l, port) = listener().await;
    let server = tokio::spawn(async move {
        let mut peer = Peer::accept(&l, ProtocolVersion::V5, ConnAck::default()).await;
        while let Ok(Some(_)) = peer.recv_within(Duration::from_secs(10)).await {}
    });
    let mut o = options(port, ProtocolVersion::V5, "silent");
    o.keep_alive(1).ping_timeout(Duration::from_secs(1));
    let client = Client::connect(o).await.unwrap();
    let t0 = Instant::now();
    let r = timeout(
        Duration::from_secs(4),
        client.publish("t", "x", QoS::AtLeastOnce, false),
    )
    .await;
    println!(
        "silent broker probe: QoS 1 publish -> {r:?} after {:?}",
        t0.elapsed()
    );
    server.abort();
    assert!(matches!(r, Ok(Err(_))), "{r:?}");
}

// ----- (c) panics -----------------------------------------------------------

/// One connection per odd server behaviour, with reconnection: each ends
/// in a protocol error (or is ignored), none panics the connection task or
/// wedges it; the last connection still carries a QoS 1 publish. A panic
/// of the task would end the event stream without `Stopped`.
#[tokio::test]
async fn bounded_odd_server_packets_neither_panic_nor_wedge() {
    use mqtt_codec::{Auth, Disconnect, PubAck, PubComp, PubRec, SubscriptionId, UnsubAck};
    let _g = serial().await;
    let (l, port) = listener().await;
    let v = ProtocolVersion::V5;
    let server = tokio::spawn(async move {
        let mut log = Vec::new();
        for step in 0..8 {
            let mut connack = ConnAck::default();
            if step == 0 {
                connack.properties.server_keep_alive = Some(65535);
                connack.properties.receive_maximum = NonZeroU16::new(1);
                connack.properties.topic_alias_maximum = Some(65535);
            }
            let mut peer = Peer::accept(&l, v, connack).await;
            match step {
                // SUBACK for an identifier never used.
                0 => {
                    peer.send(SubAck::new(pid(77), vec![ReasonCode::Success]))
                        .await
                }
                // Topic Alias over the 16 announced.
                1 => {
                    let mut p = publish("t", "x", QoS::AtMostOnce, None);
                    p.properties.to_mut().topic_alias = NonZeroU16::new(17);
                    peer.send(p).await;
                }
                // Empty topic, alias never set.
                2 => {
                    let mut p = publish("t", "x", QoS::AtMostOnce, None);
                    p.topic = PublishTopic::empty();
                    p.properties.to_mut().topic_alias = NonZeroU16::new(1);
                    peer.send(p).await;
                }
                // Acks for nothing, then a second CONNACK.
                3 => {
                    peer.send(PubAck::new(pid(5))).await;
                    peer.send(PubComp::new(pid(6))).await;
                    peer.send(PubRec::new(pid(7))).await;
                    peer.send(ConnAck::default()).await;
                }
                // 10,000 Subscription Identifiers on a message, then a
                // DISCONNECT with a 60 KB reason string.
                4 => {
                    let mut p = publish("t", "x", QoS::AtMostOnce, None);
                    let ids = &mut p.properties.to_mut().subscription_identifiers;
                    for i in 0..10_000u32 {
                        ids.push(SubscriptionId::new(268_435_455 - (i % 3)).unwrap());
                    }
                    peer.send(p).await;
                    let mut d = Disconnect::new(ReasonCode::UnspecifiedError);
                    d.properties.to_mut().reason_string =
                        Some(Utf8Bytes::try_from("r".repeat(60_000).as_str()).unwrap());
                    peer.send(d).await;
                }
                // AUTH after CONNACK, then an UNSUBACK for nothing.
                5 => {
                    let mut a = Auth::new(ReasonCode::ContinueAuthentication);
                    a.properties.to_mut().authentication_method = Some(Utf8Bytes::from_static("m"));
                    peer.send(a).await;
                    peer.send(UnsubAck::new(pid(1), vec![ReasonCode::Success]))
                        .await;
                }
                // PUBREL for nothing, PUBLISH QoS 2 then its PUBREL twice.
                6 => {
                    peer.send(mqtt_codec::PubRel::new(pid(9))).await;
                    peer.send(publish("t", "q2", QoS::ExactlyOnce, Some(3)))
                        .await;
                    peer.send(mqtt_codec::PubRel::new(pid(3))).await;
                    peer.send(mqtt_codec::PubRel::new(pid(3))).await;
                    peer.send(ConnAck::default()).await;
                }
                // A normal connection: answer the publish.
                _ => loop {
                    match peer.recv().await {
                        Some(Packet::Publish(p)) => {
                            peer.send(PubAck::new(p.packet_id.unwrap())).await;
                        }
                        Some(Packet::Disconnect(_)) | None => break,
                        Some(_) => {}
                    }
                },
            }
            let mut got = Vec::new();
            while let Ok(Some(p)) = peer.recv_within(Duration::from_secs(2)).await {
                got.push(format!("{:?}", p.packet_type()));
            }
            log.push(format!("step {step}: client sent {got:?}"));
        }
        log
    });
    let mut o = options(port, v, "odd");
    o.reconnect(
        ReconnectOptions::default().delays(Duration::from_millis(10), Duration::from_millis(10)),
    );
    let mut b = Client::builder(o);
    let mut events = b.events();
    let client = b.connect().await.unwrap();
    let mut disconnects = Vec::new();
    let mut ended = false;
    let t = timeout(Duration::from_secs(4), async {
        while disconnects.len() < 7 {
            match events.recv().await {
                Some(Event::Disconnected { error, .. }) => disconnects.push(error.to_string()),
                Some(_) => {}
                None => {
                    ended = true;
                    return;
                }
            }
        }
    })
    .await;
    let r = timeout(
        Duration::from_secs(3),
        client.publish("t", "alive", QoS::AtLeastOnce, false),
    )
    .await;
    println!("odd packets probe: disconnections {disconnects:#?}; final publish {r:?}");
    client.disconnect().await.unwrap();
    let log = server.await.unwrap();
    println!("{log:#?}");
    assert!(!ended, "the connection task ended (panicked?)");
    assert!(t.is_ok(), "not every odd connection ended: {disconnects:?}");
    assert!(matches!(r, Ok(Ok(_))), "{r:?}");
}
