#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Embedding: a broker started inside a test's runtime, in-process publish
//! and subscribe, graceful shutdown, the authentication and authorization
//! hooks, the memory store across two brokers, `$SYS` topics and the
//! statistics.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use mqtt_broker_core::{
    Authenticator, Authorizer, Broker, BrokerBuilder, ClientInfo, Config, ConnectInfo, MemoryStore,
    Message, Store,
};
use mqtt_codec::{Connect, Packet, ProtocolVersion, Publish, QoS, ReasonCode, UserProperty};
use mqtt_topic::{TopicFilter, TopicName};
use tokio::io::AsyncReadExt;

mod common;
use common::{Client as Raw, TIMEOUT, V3_1_1, V5, connect_packet, s as utf8, wait_until};

// ----- helpers (the raw client is tests/common's) -------------------------------------------

fn topic(s: &str) -> TopicName {
    s.parse().unwrap()
}

fn filter(s: &str) -> TopicFilter {
    s.parse().unwrap()
}

fn config() -> Config {
    let mut c = Config::default();
    c.listeners = vec!["127.0.0.1:0".parse().unwrap()];
    c.sys_interval = Duration::ZERO;
    c
}

async fn start(builder: BrokerBuilder) -> (Broker, SocketAddr) {
    let broker = builder.start().await.unwrap();
    let addr = broker.local_addrs()[0];
    (broker, addr)
}

fn publish(t: &str, payload: &'static str, qos: QoS, retain: bool) -> Publish {
    let mut p = Publish::new(
        mqtt_codec::PublishTopic::try_from(t).unwrap(),
        Bytes::from_static(payload.as_bytes()),
    );
    p.qos = qos;
    p.retain = retain;
    p
}

async fn local_recv(sub: &mut mqtt_broker_core::LocalSubscription) -> Message {
    tokio::time::timeout(TIMEOUT, sub.recv())
        .await
        .expect("no message for the local subscriber")
        .expect("broker gone")
}

// ----- in-process publish and subscribe -----------------------------------------------------------

/// `broker.publish` reaches TCP subscribers of both versions with the QoS
/// they asked for.
#[tokio::test]
async fn local_publish_reaches_tcp_clients() {
    let (broker, addr) = start(Broker::builder().config(config())).await;
    let mut v5 = Raw::connect(addr, V5, "lp-v5", true).await;
    assert_eq!(
        v5.subscribe_many(&[("emb/#", QoS::AtLeastOnce)])
            .await
            .reasons,
        [ReasonCode::GrantedQoS1]
    );
    let mut v3 = Raw::connect(addr, V3_1_1, "lp-v3", true).await;
    assert_eq!(
        v3.subscribe_many(&[("emb/+", QoS::AtMostOnce)])
            .await
            .reasons,
        [ReasonCode::Success]
    );

    broker.publish(topic("emb/a"), "from inside", QoS::AtLeastOnce, false);
    for c in [&mut v5, &mut v3] {
        let p = c.recv_publish().await;
        assert_eq!(p.topic.as_str(), "emb/a");
        assert_eq!(&p.payload[..], b"from inside");
        assert!(!p.retain);
        let want = if c.version == V5 {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        };
        assert_eq!(p.qos, want);
    }

    // With MQTT 5.0 properties.
    let mut m = Message::new(topic("emb/props"), "p", QoS::AtMostOnce, false);
    m.properties.to_mut().user_properties = vec![UserProperty::new(utf8("k"), utf8("v"))].into();
    m.properties.to_mut().content_type = Some(utf8("text/plain"));
    m.properties.to_mut().response_topic = Some(utf8("emb/reply"));
    m.properties.to_mut().correlation_data = Some(Bytes::from_static(b"\x00\x01"));
    broker.publish_message(m);
    let p = v5.recv_publish().await;
    assert_eq!(p.topic.as_str(), "emb/props");
    assert_eq!(
        p.properties.user_properties,
        [UserProperty::new(utf8("k"), utf8("v"))]
    );
    assert_eq!(p.properties.content_type, Some(utf8("text/plain")));
    assert_eq!(p.properties.response_topic, Some(utf8("emb/reply")));
    assert_eq!(
        p.properties.correlation_data.as_deref(),
        Some(&b"\x00\x01"[..])
    );
    let p = v3.recv_publish().await;
    assert_eq!(p.topic.as_str(), "emb/props");
    v5.expect_nothing().await;
    v3.expect_nothing().await;
}

/// TCP publishes reach `broker.subscribe`, with QoS min(published, asked)
/// and the properties; wildcards and overlapping local subscriptions work.
#[tokio::test]
async fn tcp_publish_reaches_local_subscriber() {
    let (broker, addr) = start(Broker::builder().config(config())).await;
    let mut all = broker.subscribe(filter("tcp/#"), QoS::ExactlyOnce);
    let mut one = broker.subscribe(filter("tcp/+/x"), QoS::AtMostOnce);
    let mut c = Raw::connect(addr, V5, "tp", true).await;
    let mut p = publish("tcp/a/x", "hello", QoS::AtLeastOnce, false);
    p.properties.to_mut().user_properties =
        vec![UserProperty::new(utf8("from"), utf8("tcp"))].into();
    assert_eq!(c.publish_acked(p).await, ReasonCode::Success);
    let m = local_recv(&mut all).await;
    assert_eq!(m.topic.as_str(), "tcp/a/x");
    assert_eq!(&m.payload[..], b"hello");
    assert_eq!(m.qos, QoS::AtLeastOnce);
    assert_eq!(
        m.properties.user_properties,
        [UserProperty::new(utf8("from"), utf8("tcp"))]
    );
    let m = local_recv(&mut one).await;
    assert_eq!(m.qos, QoS::AtMostOnce);
    assert_eq!(&m.payload[..], b"hello");

    // A 3.1.1 publisher, and a topic only one filter matches.
    let mut c3 = Raw::connect(addr, V3_1_1, "tp3", true).await;
    c3.publish_acked(publish("tcp/b", "from 3.1.1", QoS::AtMostOnce, false))
        .await;
    let m = local_recv(&mut all).await;
    assert_eq!(m.topic.as_str(), "tcp/b");
    assert_eq!(m.qos, QoS::AtMostOnce);
    assert!(one.try_recv().is_none());

    // Dropping a local subscription unsubscribes it.
    let subs = broker.stats().subscriptions;
    drop(one);
    assert_eq!(broker.stats().subscriptions, subs - 1);
    c.publish_acked(publish("tcp/c/x", "again", QoS::AtMostOnce, false))
        .await;
    let m = local_recv(&mut all).await;
    assert_eq!(&m.payload[..], b"again");
}

/// Retained messages published over TCP are delivered to a later local
/// subscriber (RETAIN set), and local retained ones to a later TCP one;
/// an empty retained payload clears.
#[tokio::test]
async fn retained_and_local_subscribers() {
    let (broker, addr) = start(Broker::builder().config(config())).await;
    let mut c = Raw::connect(addr, V5, "rt", true).await;
    c.publish_acked(publish("ret/a", "kept", QoS::AtLeastOnce, true))
        .await;
    c.publish_acked(publish("ret/b", "kept too", QoS::AtMostOnce, true))
        .await;
    broker.publish(topic("ret/local"), "local kept", QoS::AtLeastOnce, true);
    assert_eq!(broker.stats().retained, 3);

    let mut sub = broker.subscribe(filter("ret/+"), QoS::AtLeastOnce);
    let mut got = HashMap::new();
    for _ in 0..3 {
        let m = local_recv(&mut sub).await;
        assert!(m.retain, "{m:?}");
        got.insert(m.topic.as_str().to_owned(), (m.payload.clone(), m.qos));
    }
    assert_eq!(
        got["ret/a"],
        (Bytes::from_static(b"kept"), QoS::AtLeastOnce)
    );
    assert_eq!(
        got["ret/b"],
        (Bytes::from_static(b"kept too"), QoS::AtMostOnce)
    );
    assert_eq!(
        got["ret/local"],
        (Bytes::from_static(b"local kept"), QoS::AtLeastOnce)
    );
    assert!(sub.try_recv().is_none());

    // A live message to a local subscriber has RETAIN clear (no Retain As
    // Published).
    c.publish_acked(publish("ret/a", "new", QoS::AtLeastOnce, true))
        .await;
    let m = local_recv(&mut sub).await;
    assert_eq!(&m.payload[..], b"new");
    assert!(!m.retain);

    // A TCP subscriber gets the local retained message.
    let mut t = Raw::connect(addr, V3_1_1, "rt-sub", true).await;
    t.subscribe_many(&[("ret/local", QoS::AtLeastOnce)]).await;
    let p = t.recv_publish().await;
    assert_eq!(&p.payload[..], b"local kept");
    assert!(p.retain);

    // Cleared by an empty retained message.
    c.publish_acked(publish("ret/a", "", QoS::AtMostOnce, true))
        .await;
    assert_eq!(broker.stats().retained, 2);
    let _ = local_recv(&mut sub).await; // the empty message itself
    let mut again = broker.subscribe(filter("ret/a"), QoS::AtLeastOnce);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(again.try_recv().is_none());
}

// ----- graceful shutdown --------------------------------------------------------------------------

/// `shutdown` sends DISCONNECT 0x8B (Server shutting down) to MQTT 5.0
/// clients and closes 3.1.1 ones, then the port is closed.
#[tokio::test]
async fn graceful_shutdown() {
    let (broker, addr) = start(Broker::builder().config(config())).await;
    let mut v5 = Raw::connect(addr, V5, "sd-v5", true).await;
    let mut v3 = Raw::connect(addr, V3_1_1, "sd-v3", true).await;
    let mut sub = broker.subscribe(filter("#"), QoS::AtMostOnce);
    // A socket that has not sent CONNECT yet.
    let mut fresh = Raw::tcp(addr, V5).await;
    v5.expect_nothing().await;
    v3.expect_nothing().await;
    let started = Instant::now();
    broker.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(3));
    match v5.expect_closed().await.as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason, ReasonCode::ServerShuttingDown),
        other => panic!("expected DISCONNECT 0x8B, got {other:?}"),
    }
    let got = v3.expect_closed().await;
    assert!(got.is_empty(), "{got:?}");
    let got = fresh.expect_closed().await;
    assert!(got.is_empty(), "{got:?}");
    // The local subscription ends.
    assert!(
        tokio::time::timeout(TIMEOUT, sub.recv())
            .await
            .unwrap()
            .is_none()
    );
    // Nobody listens any more.
    let refused = match tokio::net::TcpStream::connect(addr).await {
        Err(_) => true,
        Ok(mut s) => {
            let mut b = [0u8; 1];
            matches!(
                tokio::time::timeout(TIMEOUT, s.read(&mut b)).await,
                Ok(Ok(0) | Err(_))
            )
        }
    };
    assert!(refused, "the listener is still open");
}

/// A broker with an in-process subscription, and a client that subscribed
/// to what the broker then publishes (more than its socket buffers take)
/// and never reads again.
async fn stuck_subscriber() -> (Broker, mqtt_broker_core::LocalSubscription, Raw) {
    let (broker, addr) = start(Broker::builder().config(config())).await;
    let local = broker.subscribe(filter("nothing/#"), QoS::AtMostOnce);
    let mut sub = Raw::tcp_small_buffer(addr, V3_1_1).await;
    sub.send(connect_packet(V3_1_1, "stuck", true)).await;
    // Reads CONNACK and SUBACK, then never reads again.
    assert!(matches!(sub.recv().await, Packet::ConnAck(_)));
    sub.subscribe("big/#", QoS::AtMostOnce).await;
    let payload = vec![b'x'; 64 * 1024];
    for _ in 0..200 {
        broker.publish(topic("big/t"), payload.clone(), QoS::AtMostOnce, false);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    (broker, local, sub)
}

/// Graceful shutdown must end every connection and in-process subscriber
/// and not leave work behind. A client that does not read keeps its
/// connection task (and the socket, and the whole broker state) alive
/// forever: after `shutdown` returns, the in-process subscription is still
/// open.
#[tokio::test]
async fn shutdown_leaves_a_non_reading_client_and_local_subscribers_alive() {
    let (broker, mut local, mut sub) = stuck_subscriber().await;
    let started = Instant::now();
    broker.shutdown().await;
    eprintln!("shutdown took {:?}", started.elapsed());
    let ended = tokio::time::timeout(Duration::from_secs(3), local.recv()).await;
    assert!(
        matches!(ended, Ok(None)),
        "the in-process subscription is still open after shutdown: {ended:?}"
    );
    // Its socket is closed too (after what the kernel had taken).
    sub.expect_closed().await;
}

/// Dropping the broker without [`Broker::shutdown`] must not leave work
/// behind either: a client that does not read is cut off after the
/// shutdown grace period (5 s), rather than keeping its task, its socket
/// and the broker's state alive for good. The in-process subscription
/// ends when the state is gone, which shows it.
#[tokio::test]
async fn dropping_the_broker_ends_a_non_reading_client_and_local_subscribers() {
    let (broker, mut local, mut sub) = stuck_subscriber().await;
    let started = Instant::now();
    drop(broker);
    // Not read meanwhile: reading would let the connection flush and end.
    let ended = tokio::time::timeout(Duration::from_secs(8), local.recv()).await;
    eprintln!("state gone {:?} after the drop", started.elapsed());
    assert!(
        matches!(ended, Ok(None)),
        "the broker's state is still alive 8 s after the drop: {ended:?}"
    );
    sub.expect_closed().await;
}

// ----- authentication -----------------------------------------------------------------------------

/// One user with one password.
struct Password {
    calls: Arc<AtomicUsize>,
}

#[async_trait]
impl Authenticator for Password {
    async fn authenticate(&self, c: &ConnectInfo) -> Result<(), ReasonCode> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        // An async hook may take its time.
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(c.peer.is_some());
        match (c.username.as_deref(), c.password.as_deref()) {
            (Some("admin"), Some(b"secret")) => Ok(()),
            (Some("banned"), _) => Err(ReasonCode::NotAuthorized),
            _ => Err(ReasonCode::BadUserNameOrPassword),
        }
    }
}

fn with_credentials(
    version: ProtocolVersion,
    id: &str,
    user: Option<&str>,
    pass: Option<&'static [u8]>,
) -> Connect {
    let mut c = connect_packet(version, id, true);
    c.username = user.map(utf8);
    c.password = pass.map(Bytes::from_static);
    c
}

/// Packets sent right after CONNECT (MQTT 5.0 and 3.1.1 section 3.1.4)
/// wait for the authenticator, however many: served in order once it
/// accepts, dropped when it refuses.
#[tokio::test]
async fn pipelined_packets_wait_for_the_authenticator() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (_broker, addr) = start(Broker::builder().config(config()).authenticator(Password {
        calls: calls.clone(),
    }))
    .await;
    for version in [V5, V3_1_1] {
        for (pass, ok) in [(&b"secret"[..], true), (&b"wrong"[..], false)] {
            let mut bytes = bytes::BytesMut::new();
            let enc = mqtt_codec::Encoder::new(version);
            let connect = with_credentials(version, "pings", Some("admin"), Some(pass));
            enc.encode(&connect.into(), &mut bytes).unwrap();
            // Over several reads and input batches.
            for _ in 0..1000 {
                enc.encode(&Packet::PingReq, &mut bytes).unwrap();
            }
            let mut c = Raw::tcp(addr, version).await;
            c.send_bytes(&bytes).await;
            if !ok {
                let got = c.expect_closed().await;
                assert!(
                    matches!(&got[..], [Packet::ConnAck(a)] if a.reason.is_error()),
                    "{version}: {got:?}"
                );
                continue;
            }
            match c.recv().await {
                Packet::ConnAck(a) => assert_eq!(a.reason, ReasonCode::Success, "{a:?}"),
                other => panic!("{version}: expected CONNACK, got {other:?}"),
            }
            for i in 0..1000 {
                match c.recv_timeout(TIMEOUT).await {
                    Ok(Some(Packet::PingResp)) => {}
                    other => panic!("{version}: PINGRESP {i}: got {other:?}"),
                }
            }
            c.expect_nothing().await;
        }
    }
    assert_eq!(calls.load(Ordering::Relaxed), 4);
}

#[tokio::test]
async fn authentication_hook() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (broker, addr) = start(Broker::builder().config(config()).authenticator(Password {
        calls: calls.clone(),
    }))
    .await;

    // Accepted.
    for version in [V5, V3_1_1] {
        let (mut c, ack) = Raw::connect_raw(
            addr,
            with_credentials(version, "ok", Some("admin"), Some(b"secret")),
        )
        .await;
        assert_eq!(ack.reason, ReasonCode::Success);
        c.expect_nothing().await;
    }

    // MQTT 5.0: CONNACK 0x86 (Bad User Name or Password) then close.
    for (user, pass) in [
        (Some("admin"), Some(&b"wrong"[..])),
        (Some("admin"), None),
        (None, None),
    ] {
        let (mut c, ack) = Raw::connect_raw(addr, with_credentials(V5, "bad", user, pass)).await;
        assert_eq!(ack.reason, ReasonCode::BadUserNameOrPassword);
        assert!(!ack.session_present);
        assert!(c.expect_closed().await.is_empty());
    }
    let (mut c, ack) =
        Raw::connect_raw(addr, with_credentials(V5, "bad", Some("banned"), None)).await;
    assert_eq!(ack.reason, ReasonCode::NotAuthorized);
    assert!(c.expect_closed().await.is_empty());

    // MQTT 3.1.1: return code 0x04, on the wire: 20 02 00 04.
    let mut c = Raw::tcp(addr, V3_1_1).await;
    c.send(with_credentials(
        V3_1_1,
        "bad3",
        Some("admin"),
        Some(b"wrong"),
    ))
    .await;
    let mut wire = Vec::new();
    wire.extend(c.read_to_end().await);
    assert_eq!(wire, [0x20, 0x02, 0x00, 0x04]);
    // 0x05 (not authorized) for the 0x87 refusal.
    let mut c = Raw::tcp(addr, V3_1_1).await;
    c.send(with_credentials(V3_1_1, "bad3", Some("banned"), None))
        .await;
    let mut wire = Vec::new();
    wire.extend(c.read_to_end().await);
    assert_eq!(wire, [0x20, 0x02, 0x00, 0x05]);

    assert_eq!(calls.load(Ordering::Relaxed), 8);
    wait_until("refused clients to be gone", || {
        broker.stats().clients_connected == 0
    })
    .await;
    let stats = broker.stats();
    assert_eq!(stats.clients_maximum, 1, "{stats:?}");
}

// ----- authorization ------------------------------------------------------------------------------

/// Nobody subscribes under `secret/`; only `admin` publishes under
/// `forbidden/`.
struct Rules;

#[async_trait]
impl Authorizer for Rules {
    async fn authorize_publish(&self, client: &ClientInfo, topic: &TopicName) -> bool {
        !topic.as_str().starts_with("forbidden/") || client.username.as_deref() == Some("admin")
    }
    async fn authorize_subscribe(&self, client: &ClientInfo, filter: &TopicFilter) -> bool {
        assert!(!client.client_id.is_empty());
        !filter.as_str().starts_with("secret/")
    }
}

#[tokio::test]
async fn authorization_hook() {
    let (broker, addr) = start(Broker::builder().config(config()).authorizer(Rules)).await;

    // Refused filters: SUBACK 0x87 (v5) / 0x80 (3.1.1); the others granted.
    let mut v5 = Raw::connect(addr, V5, "az-v5", true).await;
    let reasons = v5
        .subscribe_many(&[("secret/#", QoS::AtLeastOnce), ("open/#", QoS::AtLeastOnce)])
        .await
        .reasons;
    assert_eq!(
        reasons,
        [ReasonCode::NotAuthorized, ReasonCode::GrantedQoS1]
    );
    let mut v3 = Raw::connect(addr, V3_1_1, "az-v3", true).await;
    let reasons = v3
        .subscribe_many(&[("open/#", QoS::AtMostOnce), ("secret/x", QoS::AtMostOnce)])
        .await
        .reasons;
    assert_eq!(reasons, [ReasonCode::Success, ReasonCode::UnspecifiedError]);
    assert_eq!(reasons[1].as_u8(), 0x80);
    // '#' is allowed: it sees whatever is routed.
    let mut all = Raw::connect(addr, V5, "az-all", true).await;
    all.subscribe_many(&[("#", QoS::AtMostOnce)]).await;

    // Nothing reaches the refused subscription.
    let mut p = Raw::connect(addr, V5, "az-pub", true).await;
    p.publish_acked(publish("secret/x", "s", QoS::AtLeastOnce, false))
        .await;
    let got = all.recv_publish().await;
    assert_eq!(got.topic.as_str(), "secret/x");
    v5.expect_nothing().await;
    v3.expect_nothing().await;

    // A refused publish is acknowledged but not routed (nor retained).
    let dropped = broker.stats().publish_dropped;
    let ack = p
        .publish_acked(publish("forbidden/a", "no", QoS::AtLeastOnce, true))
        .await;
    assert!(
        matches!(ack, ReasonCode::Success | ReasonCode::NotAuthorized),
        "{ack:?}"
    );
    p.publish_acked(publish("forbidden/b", "no", QoS::AtMostOnce, false))
        .await;
    p.publish_acked(publish("open/ok", "yes", QoS::AtLeastOnce, false))
        .await;
    // The allowed one comes, and nothing before it.
    let got = all.recv_publish().await;
    assert_eq!(got.topic.as_str(), "open/ok");
    assert_eq!(v5.recv_publish().await.topic.as_str(), "open/ok");
    assert_eq!(v3.recv_publish().await.topic.as_str(), "open/ok");
    assert_eq!(broker.stats().publish_dropped, dropped + 2);
    assert_eq!(broker.stats().retained, 0);

    // An admin may publish there.
    let (mut admin, ack) = Raw::connect_raw(addr, {
        let mut c = connect_packet(V5, "az-admin", true);
        c.username = Some(utf8("admin"));
        c
    })
    .await;
    assert_eq!(ack.reason, ReasonCode::Success);
    admin
        .publish_acked(publish("forbidden/a", "admin", QoS::AtLeastOnce, false))
        .await;
    let got = all.recv_publish().await;
    assert_eq!(got.topic.as_str(), "forbidden/a");
    assert_eq!(&got.payload[..], b"admin");
}

// ----- storage ------------------------------------------------------------------------------------

/// A persistent session and a retained message survive a restart through
/// the same `MemoryStore`: the session is present, the messages queued
/// while the client was away are delivered, the retained one too.
#[tokio::test]
async fn memory_store_restores_sessions_and_retained() {
    let store = Arc::new(MemoryStore::new());
    let (broker, addr) = start(Broker::builder().config(config()).store(store.clone())).await;

    // A persistent v5 session and a persistent 3.1.1 one, subscribed, gone.
    let mut c = connect_packet(V5, "keep-v5", true);
    c.properties.session_expiry_interval = Some(3600);
    let (mut p5, _) = Raw::connect_raw(addr, c).await;
    p5.subscribe_many(&[("st/#", QoS::AtLeastOnce)]).await;
    drop(p5);
    let (mut p3, ack) = Raw::connect_raw(addr, connect_packet(V3_1_1, "keep-v3", false)).await;
    assert_eq!(ack.reason, ReasonCode::Success);
    p3.subscribe_many(&[("st/q", QoS::AtLeastOnce)]).await;
    drop(p3);
    wait_until("both to be offline", || {
        broker.stats().clients_disconnected == 2
    })
    .await;

    // Published while they are away: a retained message and a QoS 1 one.
    let mut publ = Raw::connect(addr, V5, "st-pub", true).await;
    publ.publish_acked(publish("st/r", "retained", QoS::AtLeastOnce, true))
        .await;
    publ.publish_acked(publish("st/q", "queued", QoS::AtLeastOnce, false))
        .await;
    // QoS 0 is not kept for absent clients.
    publ.publish_acked(publish("st/q", "qos0", QoS::AtMostOnce, false))
        .await;
    broker.shutdown().await;
    assert_eq!(store.session_count(), 2);
    assert_eq!(store.retained_count(), 1);

    // A new broker (another port) with the same store.
    let (broker, addr) = start(Broker::builder().config(config()).store(store.clone())).await;
    let stats = broker.stats();
    assert_eq!(stats.retained, 1, "{stats:?}");
    assert_eq!(stats.clients_total, 2, "{stats:?}");
    assert_eq!(stats.clients_disconnected, 2, "{stats:?}");

    let mut c = connect_packet(V5, "keep-v5", false);
    c.properties.session_expiry_interval = Some(3600);
    let (mut p5, ack) = Raw::connect_raw(addr, c).await;
    assert_eq!(ack.reason, ReasonCode::Success);
    assert!(ack.session_present, "the session was not restored");
    let mut got = Vec::new();
    for _ in 0..2 {
        let p = p5.recv_publish().await;
        assert_eq!(p.qos, QoS::AtLeastOnce);
        got.push((p.topic.as_str().to_owned(), p.payload.clone()));
    }
    assert_eq!(
        got,
        [
            ("st/r".to_owned(), Bytes::from_static(b"retained")),
            ("st/q".to_owned(), Bytes::from_static(b"queued")),
        ]
    );
    p5.expect_nothing().await;

    let (mut p3, ack) = Raw::connect_raw(addr, connect_packet(V3_1_1, "keep-v3", false)).await;
    assert!(ack.session_present, "the 3.1.1 session was not restored");
    let p = p3.recv_publish().await;
    assert_eq!((p.topic.as_str(), &p.payload[..]), ("st/q", &b"queued"[..]));
    p3.expect_nothing().await;

    // The subscriptions came back too.
    broker.publish(topic("st/q"), "live", QoS::AtLeastOnce, false);
    assert_eq!(&p5.recv_publish().await.payload[..], b"live");
    assert_eq!(&p3.recv_publish().await.payload[..], b"live");

    // The retained message, for a new subscriber and a local one.
    let mut n = Raw::connect(addr, V3_1_1, "st-new", true).await;
    n.subscribe_many(&[("st/+", QoS::AtLeastOnce)]).await;
    let p = n.recv_publish().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..]),
        ("st/r", &b"retained"[..])
    );
    assert!(p.retain);
    let mut local = broker.subscribe(filter("st/r"), QoS::AtMostOnce);
    let m = local_recv(&mut local).await;
    assert_eq!(&m.payload[..], b"retained");

    // A clean start forgets the stored session.
    drop(p3);
    wait_until("keep-v3 to be saved", || {
        broker.stats().clients_disconnected == 1
    })
    .await;
    assert!(stored_ids(&store).await.contains(&"keep-v3".to_owned()));
    let (c, ack) = Raw::connect_raw(addr, connect_packet(V3_1_1, "keep-v3", true)).await;
    assert!(!ack.session_present);
    drop(c);
    let deadline = Instant::now() + TIMEOUT;
    while stored_ids(&store).await.contains(&"keep-v3".to_owned()) {
        assert!(Instant::now() < deadline, "keep-v3 still stored");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // keep-v5 and st-new.
    wait_until("keep-v3 to be gone", || broker.stats().clients_total == 2).await;
}

/// `shutdown().await` returns once the store has everything: a broker
/// started right after on the same store finds the messages queued for an
/// offline session even when no connection was open at shutdown.
#[tokio::test]
async fn shutdown_flushes_the_store() {
    let store = Arc::new(MemoryStore::new());
    let (broker, addr) = start(Broker::builder().config(config()).store(store.clone())).await;
    let (mut c, _) = Raw::connect_raw(addr, connect_packet(V3_1_1, "flush", false)).await;
    c.subscribe_many(&[("f/#", QoS::AtLeastOnce)]).await;
    drop(c);
    wait_until("the client to be offline", || {
        broker.stats().clients_disconnected == 1
    })
    .await;
    // Queued for the offline session, and retained: only the shutdown
    // snapshot carries the queue to the store.
    broker.publish(topic("f/a"), "queued", QoS::AtLeastOnce, false);
    broker.publish(topic("f/r"), "retained", QoS::AtLeastOnce, true);
    broker.shutdown().await;

    let (_broker, addr) = start(Broker::builder().config(config()).store(store.clone())).await;
    let (mut c, ack) = Raw::connect_raw(addr, connect_packet(V3_1_1, "flush", false)).await;
    assert!(ack.session_present);
    let p = c.recv_publish().await;
    assert_eq!((p.topic.as_str(), &p.payload[..]), ("f/a", &b"queued"[..]));
    let p = c.recv_publish().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..]),
        ("f/r", &b"retained"[..])
    );
    c.expect_nothing().await;
}

/// A persistent session that is connected at shutdown is saved with its
/// unacknowledged QoS 1 message, which is sent again (DUP set) when the
/// client returns to the new broker [MQTT-4.4.0-1].
#[tokio::test]
async fn live_session_saved_at_shutdown() {
    let store = Arc::new(MemoryStore::new());
    let (broker, addr) = start(Broker::builder().config(config()).store(store.clone())).await;
    let mut c = connect_packet(V5, "live", true);
    c.properties.session_expiry_interval = Some(600);
    let (mut c, _) = Raw::connect_raw(addr, c).await;
    c.subscribe_many(&[("l/#", QoS::AtLeastOnce)]).await;
    broker.publish(topic("l/x"), "unacked", QoS::AtLeastOnce, false);
    // Received, never acknowledged.
    let first = match c.recv().await {
        Packet::Publish(p) => p,
        other => panic!("{other:?}"),
    };
    assert!(!first.dup);
    broker.shutdown().await;
    match c.expect_closed().await.as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason, ReasonCode::ServerShuttingDown),
        other => panic!("{other:?}"),
    }

    let (_broker, addr) = start(Broker::builder().config(config()).store(store.clone())).await;
    let mut c = connect_packet(V5, "live", false);
    c.properties.session_expiry_interval = Some(600);
    let (mut c, ack) = Raw::connect_raw(addr, c).await;
    assert!(ack.session_present);
    let p = c.recv_publish().await;
    assert_eq!((p.topic.as_str(), &p.payload[..]), ("l/x", &b"unacked"[..]));
    assert!(p.dup, "{p:?}");
    assert_eq!(p.packet_id, first.packet_id);
    c.expect_nothing().await;
}

/// [MQTT-3.3.2-5]: a retained message whose Message Expiry Interval has
/// passed is no longer delivered. Across a restart with a store the
/// broker used to restore retained messages with their expiry counted again
/// from the restart (`restore_retained` used `since: now`, and `Store` got
/// no time to re-base with), so an expired retained message came back to
/// life, with a fresh Message Expiry Interval.
#[tokio::test]
async fn retained_expiry_restarts_after_restore_from_store() {
    let store = Arc::new(MemoryStore::new());
    let broker = Broker::builder()
        .config(common::config())
        .store(store.clone())
        .start()
        .await
        .unwrap();
    let addr = broker.local_addrs()[0];
    let mut publisher = Raw::connect(addr, V5, "rr-pub", true).await;
    let mut p = common::publish_packet("rr/t", "old", QoS::AtLeastOnce, true);
    p.properties.to_mut().message_expiry_interval = Some(2);
    publisher.publish_packet(p).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    drop(publisher);
    broker.shutdown().await;

    let broker = Broker::builder()
        .config(common::config())
        .store(store.clone())
        .start()
        .await
        .unwrap();
    let addr = broker.local_addrs()[0];
    // 2.4 s after it was published with a 2 s expiry.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut sub = Raw::connect(addr, V5, "rr-sub", true).await;
    sub.subscribe("rr/#", QoS::AtLeastOnce).await;
    let got = sub.ping().await;
    assert!(
        got.is_empty(),
        "an expired retained message was delivered after a restart: {got:?}"
    );
    broker.shutdown().await;
}

/// The client identifiers of the sessions in `store`.
async fn stored_ids(store: &MemoryStore) -> Vec<String> {
    let mut ids: Vec<String> = Store::load(store)
        .await
        .unwrap()
        .sessions
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    ids.sort();
    ids
}

/// The store keeps a persistent session while its client is connected
/// again: were the broker to stop without a graceful shutdown (a crash,
/// with a durable store), the session would otherwise be lost, although
/// the `Store` documentation says sessions are removed only on clean start
/// and expiry.
#[tokio::test]
async fn store_keeps_resumed_session() {
    let store = Arc::new(MemoryStore::new());
    let (broker, addr) = start(Broker::builder().config(config()).store(store.clone())).await;
    let (mut c, _) = Raw::connect_raw(addr, connect_packet(V3_1_1, "resumed", false)).await;
    c.subscribe_many(&[("r/#", QoS::AtLeastOnce)]).await;
    drop(c);
    wait_until("the session to be saved", || store.session_count() == 1).await;
    let (mut c, ack) = Raw::connect_raw(addr, connect_packet(V3_1_1, "resumed", false)).await;
    assert!(ack.session_present);
    c.expect_nothing().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(stored_ids(&store).await, ["resumed"]);
    drop(broker);
}

// ----- $SYS ---------------------------------------------------------------------------------------

/// With a short `sys_interval`, `$SYS/broker/...` topics are published with
/// Mosquitto's names and sensible values; `#` does not match them.
#[tokio::test]
async fn sys_topics() {
    let mut cfg = config();
    cfg.sys_interval = Duration::from_millis(200);
    let (broker, addr) = start(Broker::builder().config(cfg)).await;
    let mut hash = Raw::connect(addr, V3_1_1, "sys-hash", true).await;
    hash.subscribe_many(&[("#", QoS::AtMostOnce)]).await;
    let mut c = Raw::connect(addr, V5, "sys", true).await;
    // Let a first publication happen: its values are retained.
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.subscribe_many(&[("$SYS/broker/#", QoS::AtMostOnce)])
        .await;
    // The retained values come first, at once.
    match c.recv().await {
        Packet::Publish(p) => assert!(p.retain, "{p:?}"),
        other => panic!("{other:?}"),
    }

    // New ones every 200 ms.
    let mut values: HashMap<String, String> = HashMap::new();
    let mut retained = 1;
    let deadline = Instant::now() + Duration::from_millis(700);
    while Instant::now() < deadline {
        let p = match c.recv_timeout(Duration::from_millis(100)).await {
            Ok(Some(Packet::Publish(p))) => p,
            Ok(other) => panic!("{other:?}"),
            Err(_) => continue,
        };
        assert!(p.topic.as_str().starts_with("$SYS/broker/"), "{p:?}");
        if p.retain {
            retained += 1;
        }
        values.insert(
            p.topic.as_str().to_owned(),
            String::from_utf8(p.payload.to_vec()).unwrap(),
        );
    }
    // Each topic once on subscribe (live publications have RETAIN clear).
    assert_eq!(retained, 21, "{values:?}");
    for t in [
        "$SYS/broker/version",
        "$SYS/broker/uptime",
        "$SYS/broker/clients/connected",
        "$SYS/broker/clients/total",
        "$SYS/broker/clients/maximum",
        "$SYS/broker/messages/received",
        "$SYS/broker/messages/sent",
        "$SYS/broker/publish/messages/received",
        "$SYS/broker/publish/messages/sent",
        "$SYS/broker/publish/messages/dropped",
        "$SYS/broker/bytes/received",
        "$SYS/broker/bytes/sent",
        "$SYS/broker/retained messages/count",
        "$SYS/broker/subscriptions/count",
    ] {
        assert!(values.contains_key(t), "{t} missing from {values:?}");
    }
    // The limits' refusals (names of ours: Mosquitto has none for them).
    for t in [
        "connections/refused",
        "sessions/refused",
        "subscriptions/refused",
        "retained messages/refused",
    ] {
        assert_eq!(
            values.get(&format!("$SYS/broker/{t}")).map(String::as_str),
            Some("0"),
            "{t} in {values:?}"
        );
    }
    assert!(
        values["$SYS/broker/version"].starts_with("mqtt-broker-core "),
        "{values:?}"
    );
    assert!(values["$SYS/broker/uptime"].ends_with(" seconds"));
    assert_eq!(values["$SYS/broker/clients/connected"], "2");
    assert_eq!(values["$SYS/broker/subscriptions/count"], "2");
    for t in [
        "messages/received",
        "messages/sent",
        "bytes/received",
        "bytes/sent",
    ] {
        let v: u64 = values[&format!("$SYS/broker/{t}")].parse().unwrap();
        assert!(v > 0, "{t} = {v}");
    }
    // [MQTT-4.7.2-1]: '#' does not match topics that start with '$'.
    hash.expect_nothing().await;
    drop(broker);
}

// ----- statistics ---------------------------------------------------------------------------------

#[tokio::test]
async fn stats_values() {
    let (broker, addr) = start(Broker::builder().config(config())).await;
    let s = broker.stats();
    assert_eq!(
        (
            s.connections,
            s.clients_connected,
            s.clients_total,
            s.messages_received,
            s.messages_sent,
            s.publish_received,
            s.publish_sent,
            s.publish_dropped,
            s.retained,
            s.subscriptions,
        ),
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        "{s:?}"
    );

    // A: CONNECT, SUBSCRIBE (QoS 1), and later a PUBACK.
    let mut a = Raw::connect(addr, V5, "st-a", true).await;
    a.subscribe_many(&[("s/#", QoS::AtLeastOnce)]).await;
    // B (persistent): CONNECT, PUBLISH QoS 1 retained.
    let (mut b, _) = Raw::connect_raw(addr, connect_packet(V3_1_1, "st-b", false)).await;
    b.publish_acked(publish("s/x", "12345", QoS::AtLeastOnce, true))
        .await;
    a.recv_publish().await; // sends PUBACK
    a.expect_nothing().await;
    // A local publish to nobody, and a local subscription.
    broker.publish(topic("nobody"), "x", QoS::AtMostOnce, false);
    let _local = broker.subscribe(filter("t/#"), QoS::AtMostOnce);

    let s = broker.stats();
    assert_eq!(s.connections, 2, "{s:?}");
    assert_eq!(s.clients_connected, 2, "{s:?}");
    assert_eq!(s.clients_maximum, 2, "{s:?}");
    assert_eq!(s.clients_total, 2, "{s:?}");
    assert_eq!(s.clients_disconnected, 0, "{s:?}");
    // In: CONNECT x2, SUBSCRIBE, PUBLISH, PUBACK, PINGREQ.
    assert_eq!(s.messages_received, 6, "{s:?}");
    // Out: CONNACK x2, SUBACK, PUBACK, PUBLISH, PINGRESP.
    assert_eq!(s.messages_sent, 6, "{s:?}");
    // B's PUBLISH; the local publish is no packet received.
    assert_eq!(s.publish_received, 1, "{s:?}");
    assert_eq!(s.publish_sent, 1, "{s:?}");
    assert_eq!(s.publish_dropped, 0, "{s:?}");
    assert_eq!(s.retained, 1, "{s:?}");
    assert_eq!(s.subscriptions, 2, "{s:?}");
    assert!(s.bytes_received > 0 && s.bytes_sent > 0, "{s:?}");

    // A persistent client that goes away stays counted as disconnected.
    drop(b);
    wait_until("B to be offline", || broker.stats().clients_connected == 1).await;
    let s = broker.stats();
    assert_eq!((s.clients_total, s.clients_disconnected), (2, 1), "{s:?}");
    assert_eq!(s.clients_maximum, 2);
    // A clean v5 client (expiry 0) is forgotten.
    drop(a);
    wait_until("A to be gone", || broker.stats().clients_connected == 0).await;
    let s = broker.stats();
    assert_eq!((s.clients_total, s.clients_disconnected), (1, 1), "{s:?}");
    assert_eq!(s.subscriptions, 1, "{s:?}");
}

/// The broker's own `$SYS` publications are counted as PUBLISH packets
/// received (`$SYS/broker/publish/messages/received`), 17 per interval,
/// with no client at all: the count even exceeds `messages/received`
/// ("MQTT packets received"), which should include every PUBLISH received.
#[tokio::test]
async fn sys_publications_counted_as_publish_received() {
    let mut cfg = config();
    cfg.sys_interval = Duration::from_millis(100);
    let (broker, _addr) = start(Broker::builder().config(cfg)).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    let st = broker.stats();
    assert!(
        st.publish_received <= st.messages_received,
        "publish_received {} > messages_received {} with no client connected",
        st.publish_received,
        st.messages_received
    );
}

/// Neither a will nor an in-process publish is a PUBLISH packet received:
/// `publish_received` counts only what clients send over the network.
#[tokio::test]
async fn wills_and_local_publishes_are_not_publish_packets_received() {
    let (broker, addr) = start(Broker::builder().config(config())).await;
    let mut local = broker.subscribe(filter("w/#"), QoS::AtMostOnce);
    let mut c = connect_packet(V5, "st-will", true);
    c.will = Some(mqtt_codec::Will::new(
        mqtt_codec::TopicName::try_from("w/gone").unwrap(),
        Bytes::from_static(b"will"),
    ));
    let (client, _) = Raw::connect_raw(addr, c).await;
    broker.publish(topic("w/local"), "x", QoS::AtMostOnce, false);
    assert_eq!(local_recv(&mut local).await.payload, "x");
    client.drop_connection();
    assert_eq!(local_recv(&mut local).await.payload, "will");
    let s = broker.stats();
    assert_eq!((s.messages_received, s.publish_received), (1, 0), "{s:?}");
}
