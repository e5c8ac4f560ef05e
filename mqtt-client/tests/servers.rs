#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Integration tests against two servers, each started by the test on a
//! free loopback port: the Mosquitto broker (Debian's `/usr/sbin/mosquitto`)
//! and the workspace's own `mqtt-broker-core`, in-process.
//!
//! Each scenario is an `async fn(Kind)`; [`per_server!`] makes one test per
//! scenario and server, `mosquitto::<scenario>` and `broker::<scenario>`.
//! Where the two brokers legitimately differ, the scenario says what each
//! one does. A few tests need only our broker, and a few a scripted server
//! (over TCP, or over an in-memory pipe for a server that stops reading).

mod common;

use std::io;
use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Mutex;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{Kind, Proxy, Server};
use mqtt_client::transport::{BoxFuture, Connector};
use mqtt_client::{
    Client, ClientError, ClientOptions, Event, Message, ProtocolVersion, QoS, ReasonCode,
    ReconnectOptions, Subscription, SubscriptionOptions, UserProperty, Utf8Bytes, Will,
};
use mqtt_codec::{
    ConnAck, Decoder, Encoder, Packet, Publish, PublishTopic, SubAck, Subscribe, UnsubAck,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V3_1,
    ProtocolVersion::V3_1_1,
    ProtocolVersion::V5,
];

fn options(broker: &Server, v: ProtocolVersion, id: &str) -> ClientOptions {
    let mut o = ClientOptions::from_url(&broker.url()).unwrap();
    o.protocol(v).client_id(id);
    o
}

async fn next(sub: &mut Subscription) -> mqtt_client::Received {
    timeout(Duration::from_secs(5), sub.recv())
        .await
        .expect("a message in time")
        .expect("stream open")
}

/// The payloads `sub` receives until it is silent for 200 ms.
async fn drain(sub: &mut Subscription) -> Vec<String> {
    let mut got = Vec::new();
    while let Ok(Some(m)) = timeout(Duration::from_millis(200), sub.recv()).await {
        got.push(String::from_utf8(m.payload().to_vec()).unwrap());
    }
    got
}

async fn nothing(sub: &mut Subscription) {
    if let Ok(Some(m)) = timeout(Duration::from_millis(200), sub.recv()).await {
        panic!("unexpected message {m:?}");
    }
}

async fn qos_0_1_2_publish_and_subscribe(kind: Kind) {
    let broker = Server::start(kind).await;
    for v in VERSIONS {
        let sub = Client::connect(options(&broker, v, &format!("sub-{v}")))
            .await
            .unwrap();
        let publ = Client::connect(options(&broker, v, &format!("pub-{v}")))
            .await
            .unwrap();
        let mut s = sub
            .subscribe("q/#", SubscriptionOptions::new(QoS::ExactlyOnce))
            .await
            .unwrap();
        assert_eq!(s.reasons(), [ReasonCode::GrantedQoS2]);
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let topic = format!("q/{}", qos as u8);
            let reason = publ
                .publish(topic.as_str(), format!("hello {qos:?}"), qos, false)
                .await
                .unwrap();
            assert_eq!(reason, ReasonCode::Success, "{v} {qos:?}");
            let m = next(&mut s).await;
            assert_eq!(m.topic().as_str(), topic);
            assert_eq!(m.payload(), &Bytes::from(format!("hello {qos:?}")));
            assert_eq!(m.qos(), qos);
            assert!(!m.retain());
        }
        nothing(&mut s).await;
        publ.disconnect().await.unwrap();
        sub.disconnect().await.unwrap();
        assert!(matches!(
            publ.publish("q/x", "late", QoS::AtMostOnce, false).await,
            Err(ClientError::Closed)
        ));
    }
}

async fn many_concurrent_publishes_complete_in_order(kind: Kind) {
    let broker = Server::start(kind).await;
    let mut o = options(&broker, ProtocolVersion::V3_1_1, "many");
    o.inflight(NonZeroU16::new(10).unwrap()).max_pending(50);
    let client = Client::connect(o).await.unwrap();
    let mut s = client
        .subscribe("m", SubscriptionOptions::new(QoS::AtLeastOnce))
        .await
        .unwrap();
    let mut deliveries = Vec::new();
    for i in 0..500u32 {
        let qos = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce][i as usize % 3];
        let m = Message::new("m".parse().unwrap(), i.to_string(), qos, false);
        deliveries.push(client.enqueue(m).await.unwrap());
    }
    for d in deliveries {
        assert_eq!(d.await.unwrap(), ReasonCode::Success);
    }
    // Order holds per QoS level [MQTT-4.6.0-6] (not across levels:
    // Mosquitto forwards a QoS 2 message on PUBREL).
    let mut got: [Vec<u32>; 3] = Default::default();
    for _ in 0..500u32 {
        let m = next(&mut s).await;
        let i: u32 = std::str::from_utf8(m.payload()).unwrap().parse().unwrap();
        got[i as usize % 3].push(i);
    }
    for (k, v) in got.iter().enumerate() {
        let want: Vec<u32> = (0..500).filter(|i| *i as usize % 3 == k).collect();
        assert_eq!(v, &want, "QoS {k} in order");
    }
}

async fn retained_messages(kind: Kind) {
    let broker = Server::start(kind).await;
    for v in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let c = Client::connect(options(&broker, v, "ret")).await.unwrap();
        c.publish("r/a", "kept", QoS::AtLeastOnce, true)
            .await
            .unwrap();
        let mut s = c
            .subscribe("r/#", SubscriptionOptions::new(QoS::AtLeastOnce))
            .await
            .unwrap();
        let m = next(&mut s).await;
        assert_eq!((m.payload().as_ref(), m.retain()), (&b"kept"[..], true));
        // A live message is not flagged retained.
        c.publish("r/a", "live", QoS::AtLeastOnce, true)
            .await
            .unwrap();
        let m = next(&mut s).await;
        assert_eq!((m.payload().as_ref(), m.retain()), (&b"live"[..], false));
        // An empty retained message clears it.
        c.publish("r/a", "", QoS::AtLeastOnce, true).await.unwrap();
        let _ = next(&mut s).await;
        c.unsubscribe("r/#").await.unwrap();
        assert!(
            timeout(Duration::from_secs(5), s.recv())
                .await
                .unwrap()
                .is_none()
        );
        let mut s = c
            .subscribe("r/#", SubscriptionOptions::new(QoS::AtLeastOnce))
            .await
            .unwrap();
        nothing(&mut s).await;
        c.disconnect().await.unwrap();
    }
}

async fn will_is_published_when_the_connection_breaks_not_on_disconnect(kind: Kind) {
    let broker = Server::start(kind).await;
    for v in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let watcher = Client::connect(options(&broker, v, "watcher"))
            .await
            .unwrap();
        let mut s = watcher
            .subscribe("wills/#", SubscriptionOptions::new(QoS::AtLeastOnce))
            .await
            .unwrap();

        // A normal DISCONNECT discards the will.
        let mut o = options(&broker, v, "polite");
        o.will(Will::new(
            mqtt_codec::TopicName::from_static("wills/polite").unwrap(),
            "gone",
        ));
        Client::connect(o)
            .await
            .unwrap()
            .disconnect()
            .await
            .unwrap();
        nothing(&mut s).await;

        // A broken connection publishes it.
        let proxy = Proxy::start(broker.port()).await;
        let mut o = ClientOptions::from_url(&proxy.url()).unwrap();
        let mut will = Will::new(
            mqtt_codec::TopicName::from_static("wills/rude").unwrap(),
            "vanished",
        );
        will.qos = QoS::AtLeastOnce;
        if v.is_v5() {
            will.properties.content_type = Some(Utf8Bytes::from_static("text/plain"));
        }
        o.protocol(v)
            .client_id("rude")
            .will(will)
            .reconnect(ReconnectOptions::disabled());
        let rude = Client::connect(o).await.unwrap();
        proxy.cut();
        let m = next(&mut s).await;
        assert_eq!(m.topic().as_str(), "wills/rude");
        assert_eq!(m.payload().as_ref(), b"vanished");
        if v.is_v5() {
            assert_eq!(
                m.properties().content_type.as_deref(),
                Some("text/plain"),
                "will properties reach the subscriber"
            );
        }
        drop(rude);
        watcher.disconnect().await.unwrap();
    }
}

async fn persistent_session_survives_a_client_restart(kind: Kind) {
    let broker = Server::start(kind).await;
    for v in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let id = format!("persist-{v}");
        let persistent = |broker: &Server| {
            let mut o = options(broker, v, &id);
            o.clean_start(false).session_expiry_interval(300);
            o
        };
        // First run: clean up any old session, then subscribe and leave.
        let mut o = options(&broker, v, &id);
        o.clean_start(true);
        Client::connect(o)
            .await
            .unwrap()
            .disconnect()
            .await
            .unwrap();
        let c = Client::connect(persistent(&broker)).await.unwrap();
        c.subscribe("p/t", SubscriptionOptions::new(QoS::ExactlyOnce))
            .await
            .unwrap();
        c.disconnect().await.unwrap();
        drop(c);

        // Meanwhile, messages for it.
        let p = Client::connect(options(&broker, v, "feeder"))
            .await
            .unwrap();
        for i in 0..5 {
            let qos = if i % 2 == 0 {
                QoS::AtLeastOnce
            } else {
                QoS::ExactlyOnce
            };
            p.publish("p/t", format!("m{i}"), qos, false).await.unwrap();
        }
        p.disconnect().await.unwrap();

        // Second run: the session and its queued messages are back.
        let mut b = Client::builder(persistent(&broker));
        let mut events = b.events();
        let mut queued = b.unrouted();
        let c = b.connect().await.unwrap();
        loop {
            match timeout(Duration::from_secs(5), events.recv())
                .await
                .unwrap()
                .unwrap()
            {
                Event::Connected { session_present } => {
                    assert!(session_present, "{v}");
                    break;
                }
                _ => continue,
            }
        }
        for i in 0..5 {
            let m = next(&mut queued).await;
            assert_eq!(m.payload(), &Bytes::from(format!("m{i}")));
        }
        // Subscribing again routes the next ones to a stream.
        let mut s = c
            .subscribe("p/t", SubscriptionOptions::new(QoS::ExactlyOnce))
            .await
            .unwrap();
        c.publish("p/t", "after", QoS::AtLeastOnce, false)
            .await
            .unwrap();
        assert_eq!(next(&mut s).await.payload().as_ref(), b"after");
        c.disconnect().await.unwrap();
    }
}

async fn v5_properties_round_trip(kind: Kind) {
    let broker = Server::start(kind).await;
    let v = ProtocolVersion::V5;
    let mut o = options(&broker, v, "props-sub");
    let mut cp = mqtt_client::ConnectProperties::default();
    cp.user_properties.push(UserProperty::new(
        Utf8Bytes::from_static("client"),
        Utf8Bytes::from_static("test"),
    ));
    o.connect_properties(cp);
    let sub = Client::connect(o).await.unwrap();
    let mut s = sub
        .subscribe("v5/#", SubscriptionOptions::new(QoS::ExactlyOnce))
        .await
        .unwrap();
    let publ = Client::connect(options(&broker, v, "props-pub"))
        .await
        .unwrap();
    let mut m = Message::new("v5/x".parse().unwrap(), "{}", QoS::ExactlyOnce, false);
    m.properties.to_mut().user_properties = vec![
        UserProperty::new(Utf8Bytes::from_static("k"), Utf8Bytes::from_static("v1")),
        UserProperty::new(Utf8Bytes::from_static("k"), Utf8Bytes::from_static("v2")),
    ]
    .into();
    m.properties.to_mut().content_type = Some(Utf8Bytes::from_static("application/json"));
    m.properties.to_mut().response_topic = Some(Utf8Bytes::from_static("v5/reply"));
    m.properties.to_mut().correlation_data = Some(Bytes::from_static(b"\x00\x01corr"));
    m.properties.to_mut().message_expiry_interval = Some(120);
    m.properties.to_mut().payload_format_indicator = Some(mqtt_client::PayloadFormat::Utf8);
    assert_eq!(
        publ.publish_message(m.clone()).await.unwrap(),
        ReasonCode::Success
    );
    let got = next(&mut s).await;
    let p = got.properties();
    assert_eq!(p.user_properties, m.properties.user_properties);
    assert_eq!(p.content_type, m.properties.content_type);
    assert_eq!(p.response_topic, m.properties.response_topic);
    assert_eq!(p.correlation_data, m.properties.correlation_data);
    assert_eq!(
        p.payload_format_indicator,
        m.properties.payload_format_indicator
    );
    assert!(matches!(p.message_expiry_interval, Some(118..=120)));
    assert_eq!(
        p.subscription_identifiers.len(),
        1,
        "the client tags subscriptions"
    );

    // A QoS 1 publish with no subscriber: Mosquitto answers PUBACK 0x10
    // (No matching subscribers), a success; ours answers 0x00, as it may
    // (0x10 is a MAY of the spec).
    let r = publ
        .publish("nobody/here", "x", QoS::AtLeastOnce, false)
        .await
        .unwrap();
    let want = match kind {
        Kind::Mosquitto => ReasonCode::NoMatchingSubscribers,
        Kind::Ours => ReasonCode::Success,
    };
    assert_eq!(r, want);
    publ.disconnect().await.unwrap();
    sub.disconnect().await.unwrap();
}

async fn overlapping_subscriptions(kind: Kind) {
    let broker = Server::start(kind).await;
    for v in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let mut b = Client::builder(options(&broker, v, "overlap"));
        let mut events = b.events();
        let c = b.connect().await.unwrap();
        let mut all = c
            .subscribe("o/#", SubscriptionOptions::new(QoS::AtLeastOnce))
            .await
            .unwrap();
        let mut one = c
            .subscribe("o/+", SubscriptionOptions::new(QoS::AtLeastOnce))
            .await
            .unwrap();
        c.publish("o/a", "1", QoS::AtLeastOnce, false)
            .await
            .unwrap();
        c.publish("o/a/b", "2", QoS::AtLeastOnce, false)
            .await
            .unwrap();
        let all_got = drain(&mut all).await;
        let one_got = drain(&mut one).await;

        // What came on the wire: (payload, subscription identifiers) per
        // PUBLISH.
        let mut wire = Vec::new();
        while let Ok(Some(e)) = timeout(Duration::from_millis(50), events.recv()).await {
            if let Event::Protocol(mqtt_session::Event::Message { message, .. }) = e {
                wire.push((
                    String::from_utf8(message.payload.to_vec()).unwrap(),
                    message.properties.subscription_identifiers.len(),
                ));
            }
        }
        wire.sort();
        let ids = usize::from(v.is_v5());
        let copies = |n: usize| -> Vec<(String, usize)> {
            let mut w = vec![("1".to_owned(), ids); n];
            w.push(("2".to_owned(), ids));
            w
        };
        // o/a matches both subscriptions. The server must send it at least
        // once, at the maximum QoS of the two, and may send one copy per
        // matching subscription (3.1.1 [MQTT-3.3.5-1], 5.0 [MQTT-3.3.4-2]);
        // at 5.0 a single copy carries both Subscription Identifiers
        // [MQTT-3.3.4-4], and each of several copies the one of its own
        // subscription [MQTT-3.3.4-5].
        let want = match (kind, v.is_v5()) {
            // Mosquitto 2.0 sends one copy at 3.1.1...
            (Kind::Mosquitto, false) => copies(1),
            // ...and one per subscription at 5.0; ours one per subscription
            // at every version.
            (Kind::Mosquitto, true) | (Kind::Ours, _) => copies(2),
        };
        assert_eq!(wire, want, "{kind:?} {v}: PUBLISH packets received");
        // The client's streams: at 5.0 Subscription Identifiers make routing
        // exact. Without them each copy reaches every stream whose filter
        // matches, so a server that sends two copies makes each stream get
        // two (a documented limit).
        let ones = if v.is_v5() { 1 } else { want.len() - 1 };
        let mut want_all = vec!["1"; ones];
        want_all.push("2");
        assert_eq!(all_got, want_all, "{kind:?} {v}: o/# stream");
        assert_eq!(one_got, vec!["1"; ones], "{kind:?} {v}: o/+ stream");
        c.disconnect().await.unwrap();
    }
}

async fn bounded_queue_while_disconnected_then_delivered(kind: Kind) {
    let broker = Server::start(kind).await;
    let proxy = Proxy::start(broker.port()).await;
    let mut o = ClientOptions::from_url(&proxy.url()).unwrap();
    o.protocol(ProtocolVersion::V5)
        .client_id("queue")
        .clean_start(false)
        .session_expiry_interval(60)
        .max_pending(3)
        .reconnect(
            ReconnectOptions::default()
                .delays(Duration::from_millis(300), Duration::from_millis(300)),
        );
    let mut b = Client::builder(o);
    let mut events = b.events();
    let c = b.connect().await.unwrap();
    let watcher = Client::connect(options(&broker, ProtocolVersion::V5, "qwatch"))
        .await
        .unwrap();
    let mut s = watcher
        .subscribe("queue", SubscriptionOptions::new(QoS::AtLeastOnce))
        .await
        .unwrap();
    proxy.cut();
    // Wait until the client knows.
    loop {
        let e = timeout(Duration::from_secs(5), events.recv())
            .await
            .unwrap()
            .unwrap();
        if matches!(e, Event::Disconnected { .. }) {
            break;
        }
    }
    assert!(!c.is_connected());
    let msg = |i: u8| Message::new("queue".parse().unwrap(), vec![i], QoS::AtLeastOnce, false);
    let d: Vec<_> = (0..3).map(|i| c.try_publish(msg(i)).unwrap()).collect();
    assert_eq!(c.try_publish(msg(9)).unwrap_err(), ClientError::QueueFull);
    for d in d {
        assert_eq!(
            timeout(Duration::from_secs(5), d).await.unwrap().unwrap(),
            ReasonCode::Success
        );
    }
    for i in 0..3u8 {
        assert_eq!(next(&mut s).await.payload().as_ref(), &[i]);
    }
    loop {
        let e = timeout(Duration::from_secs(5), events.recv())
            .await
            .unwrap()
            .unwrap();
        if let Event::Reconnected {
            session_present, ..
        } = e
        {
            assert!(session_present);
            break;
        }
    }
    c.disconnect().await.unwrap();
}

async fn lost_session_is_resubscribed_and_reported(kind: Kind) {
    let broker = Server::start(kind).await;
    for v in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let proxy = Proxy::start(broker.port()).await;
        let mut o = ClientOptions::from_url(&proxy.url()).unwrap();
        // Clean start: every reconnection finds no session.
        o.protocol(v).client_id("forgetful").reconnect(
            ReconnectOptions::default().delays(Duration::from_millis(10), Duration::from_secs(1)),
        );
        let mut b = Client::builder(o);
        let mut events = b.events();
        let c = b.connect().await.unwrap();
        let mut s = c
            .subscribe("lost/+", SubscriptionOptions::new(QoS::AtLeastOnce))
            .await
            .unwrap();
        proxy.cut();
        let mut saw_lost = false;
        loop {
            match timeout(Duration::from_secs(5), events.recv())
                .await
                .unwrap()
                .unwrap()
            {
                Event::SessionLost { resubscribed, .. } => {
                    assert_eq!(resubscribed.len(), 1);
                    saw_lost = true;
                }
                Event::Reconnected {
                    session_present, ..
                } => {
                    assert!(!session_present);
                    break;
                }
                _ => {}
            }
        }
        assert!(saw_lost);
        // The SUBACK of the new subscription precedes our PUBLISH on the
        // wire, so the message is routed.
        let other = Client::connect(options(&broker, v, "other")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        other
            .publish("lost/x", "again", QoS::AtLeastOnce, false)
            .await
            .unwrap();
        assert_eq!(next(&mut s).await.payload().as_ref(), b"again");
        other.disconnect().await.unwrap();
        c.disconnect().await.unwrap();
    }
}

async fn manual_ack_holds_the_servers_window(kind: Kind) {
    let broker = Server::start(kind).await;
    let v = ProtocolVersion::V5;
    let mut o = options(&broker, v, "manual");
    o.manual_ack(true)
        .receive_maximum(NonZeroU16::new(2).unwrap());
    let c = Client::connect(o).await.unwrap();
    let mut s = c
        .subscribe("ack", SubscriptionOptions::new(QoS::AtLeastOnce))
        .await
        .unwrap();
    let p = Client::connect(options(&broker, v, "acker")).await.unwrap();
    let publish = |i: u8| {
        let p = p.clone();
        async move {
            p.publish("ack", vec![i], QoS::AtLeastOnce, false)
                .await
                .unwrap();
        }
    };
    for i in 0..3u8 {
        publish(i).await;
    }
    let mut a = next(&mut s).await;
    let b = next(&mut s).await;
    assert!(a.awaits_ack() && b.awaits_ack());
    // Window of 2 full: nothing more until an acknowledgement.
    nothing(&mut s).await;
    a.ack();
    let third = next(&mut s).await;
    assert_eq!(third.payload().as_ref(), &[2]);
    // Full again (b and the third). The fourth message is published only now:
    // Mosquitto 2.0.11, given one PUBACK while two messages are queued,
    // sends both and exceeds our Receive Maximum.
    publish(3).await;
    nothing(&mut s).await;
    drop(b); // dropping acknowledges too
    assert_eq!(next(&mut s).await.payload().as_ref(), &[3]);
    drop(third);
    c.disconnect().await.unwrap();
    p.disconnect().await.unwrap();
}

async fn connection_errors_are_reported(kind: Kind) {
    // Nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let o = ClientOptions::new("127.0.0.1", port);
    let e = Client::connect(o).await.unwrap_err();
    assert!(matches!(e, mqtt_client::ConnectionError::Io(_)), "{e}");

    // The client refuses an empty client id without a clean session at
    // 3.1.1, before it connects.
    let broker = Server::start(kind).await;
    let mut o = options(&broker, ProtocolVersion::V3_1_1, "");
    o.clean_start(false);
    let e = Client::connect(o).await.unwrap_err();
    assert!(
        matches!(e, mqtt_client::ConnectionError::InvalidOptions(_)),
        "{e}"
    );

    // Too large for our own limit.
    let mut o = options(&broker, ProtocolVersion::V5, "big");
    o.max_outgoing_packet_size(NonZeroU32::new(100));
    let c = Client::connect(o).await.unwrap();
    let e = c
        .publish("big", vec![0u8; 200], QoS::AtMostOnce, false)
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::PacketTooLarge { .. }), "{e}");
}

/// Our broker answers a PUBREL for a packet id it has already released
/// with PUBCOMP 0x92 (Packet Identifier not found), which MQTT 5.0 says "is
/// not an error during recovery" (3.7.2.1): it happens when the PUBCOMP was
/// lost with the connection and the client sends PUBREL again on
/// resumption. The message was accepted at PUBREC, so `publish` succeeds.
/// A scripted server makes it happen every time.
#[tokio::test]
async fn pubcomp_packet_id_not_found_on_resumption_is_success() {
    use tokio::net::TcpListener;

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        // First connection: PUBLISH, PUBREC, PUBREL, then the connection
        // breaks before the PUBCOMP.
        let (mut s, _) = listener.accept().await.unwrap();
        let (mut d, mut buf) = (Decoder::new(), BytesMut::new());
        assert!(matches!(
            read_packet(&mut s, &mut d, &mut buf).await,
            Packet::Connect(_)
        ));
        s.write_all(&[0x20, 3, 0, 0, 0]).await.unwrap();
        let Packet::Publish(p) = read_packet(&mut s, &mut d, &mut buf).await else {
            panic!("PUBLISH expected");
        };
        let [hi, lo] = p.packet_id.unwrap().get().to_be_bytes();
        s.write_all(&[0x50, 2, hi, lo]).await.unwrap();
        assert!(matches!(
            read_packet(&mut s, &mut d, &mut buf).await,
            Packet::PubRel(_)
        ));
        drop(s);
        // Second connection: the session is present, the client sends
        // PUBREL again, and the server no longer knows the packet id.
        let (mut s, _) = listener.accept().await.unwrap();
        let (mut d, mut buf) = (Decoder::new(), BytesMut::new());
        assert!(matches!(
            read_packet(&mut s, &mut d, &mut buf).await,
            Packet::Connect(_)
        ));
        s.write_all(&[0x20, 3, 1, 0, 0]).await.unwrap();
        assert!(matches!(
            read_packet(&mut s, &mut d, &mut buf).await,
            Packet::PubRel(_)
        ));
        s.write_all(&[0x70, 4, hi, lo, 0x92, 0]).await.unwrap();
        // Keep the connection until the client leaves.
        let _ = s.read_buf(&mut buf).await;
    });
    let mut o = ClientOptions::new("127.0.0.1", port);
    o.protocol(ProtocolVersion::V5)
        .client_id("resume")
        .clean_start(false)
        .session_expiry_interval(60)
        .reconnect(
            ReconnectOptions::default()
                .delays(Duration::from_millis(10), Duration::from_millis(10)),
        );
    let c = Client::connect(o).await.unwrap();
    let r = timeout(
        Duration::from_secs(5),
        c.publish("t", "x", QoS::ExactlyOnce, false),
    )
    .await
    .unwrap();
    assert_eq!(r, Ok(ReasonCode::Success));
    c.disconnect().await.unwrap();
    server.await.unwrap();
}

/// MQTT 3.1.1 has no No Local option. `subscribe` used to accept it: the
/// session handed the driver a SUBSCRIBE, the encoder refused it
/// (NotInVersion), the driver logged "cannot encode" and dropped the
/// packet: SUBACK never came and `subscribe` never resolved. The session
/// now refuses it with `UsageError::RequiresV5`.
#[tokio::test]
async fn v311_subscribe_with_v5_only_option_must_not_hang() {
    let broker = Server::start(Kind::Ours).await;
    let mut o = ClientOptions::from_url(&broker.url()).unwrap();
    o.protocol(ProtocolVersion::V3_1_1)
        .client_id("v311-no-local");
    let c = Client::connect(o).await.unwrap();
    let mut opts = SubscriptionOptions::new(QoS::AtLeastOnce);
    opts.no_local = true;
    let r = timeout(Duration::from_secs(3), c.subscribe("a/b", opts)).await;
    let r = r.expect("subscribe with No Local on MQTT 3.1.1 hangs forever (expected an error)");
    assert!(
        matches!(
            r,
            Err(ClientError::Usage(mqtt_session::UsageError::RequiresV5(_)))
        ),
        "{r:?}"
    );
}

/// [MQTT-3.2.2-15]: "The Client MUST NOT send packets exceeding Maximum
/// Packet Size to the Server". The session used to check PUBLISH only: a
/// SUBSCRIBE larger than the server's CONNACK Maximum Packet Size was sent,
/// the server closed the connection (0x95), the client reconnected and sent
/// it again, forever; `subscribe` never resolved. It is now refused with
/// `UsageError::PacketTooLarge`, and the connection stays up.
#[tokio::test]
async fn subscribe_larger_than_server_maximum_packet_size() {
    let broker = Server::with_config(Kind::Ours, "", |c| {
        c.max_packet_size = NonZeroU32::new(128).unwrap();
    })
    .await;
    let mut o = ClientOptions::from_url(&broker.url()).unwrap();
    o.protocol(ProtocolVersion::V5)
        .client_id("big-subscribe")
        .reconnect(
            ReconnectOptions::default()
                .delays(Duration::from_millis(10), Duration::from_millis(50)),
        );
    let mut b = Client::builder(o);
    let mut events = b.events();
    let c = b.connect().await.unwrap();
    let filter = format!("a/{}", "x".repeat(300));
    let r = timeout(
        Duration::from_secs(3),
        c.subscribe(filter.as_str(), SubscriptionOptions::new(QoS::AtMostOnce)),
    )
    .await;
    let mut disconnects = Vec::new();
    while let Ok(Some(e)) = timeout(Duration::from_millis(10), events.recv()).await {
        if let Event::Disconnected { error, .. } = e {
            disconnects.push(error.to_string());
        }
    }
    assert!(
        matches!(
            r,
            Ok(Err(ClientError::Usage(
                mqtt_session::UsageError::PacketTooLarge { max: 128, .. }
            )))
        ),
        "{r:?}"
    );
    assert!(
        r.is_ok() && disconnects.is_empty(),
        "an oversized SUBSCRIBE was sent: subscribe resolved: {}, {} disconnections, first: {:?}",
        r.is_ok(),
        disconnects.len(),
        disconnects.first()
    );
}

/// `connect_timeout(Duration::MAX)` (a natural "no timeout") used to panic
/// the connection task (`Instant + Duration` overflow in the session's
/// `connect`): `connect` failed with the misleading "connection closed by
/// the client". (`ping_timeout(Duration::MAX)` had the same overflow, on
/// the first PINGREQ.) A deadline past what `Instant` holds is now no
/// deadline.
#[tokio::test]
async fn huge_connect_timeout_does_not_kill_the_client() {
    let broker = Server::start(Kind::Ours).await;
    let mut o = ClientOptions::from_url(&broker.url()).unwrap();
    o.client_id("max-timeouts")
        .connect_timeout(Duration::MAX)
        .ping_timeout(Duration::MAX)
        .keep_alive(1);
    let r = timeout(Duration::from_secs(5), Client::connect(o))
        .await
        .expect("connect resolves");
    let c = r.unwrap_or_else(|e| panic!("connect with connect_timeout(Duration::MAX): {e}"));
    // A PINGREQ goes out after 1 s, arming the PINGRESP deadline.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.publish("t", "alive", QoS::AtLeastOnce, false)
        .await
        .unwrap();
    c.disconnect().await.unwrap();
}

// ----- scripted servers over an in-memory pipe ------------------------------

/// A connector over an in-memory pipe with a small buffer; the test plays
/// the server on the other end.
struct Pipe(Mutex<Option<mpsc::UnboundedSender<DuplexStream>>>);

impl Connector for Pipe {
    type Io = DuplexStream;
    fn connect(&self) -> BoxFuture<'_, io::Result<DuplexStream>> {
        let (client, server) = tokio::io::duplex(1024);
        if let Some(tx) = self.0.lock().unwrap().as_ref() {
            let _ = tx.send(server);
        }
        Box::pin(async move { Ok(client) })
    }
}

/// The scripted server's end of the next pipe, once it read the client's
/// CONNECT and answered a 5.0 CONNACK of success.
async fn accept_on_pipe(rx: &mut mpsc::UnboundedReceiver<DuplexStream>) -> DuplexStream {
    let mut s = rx.recv().await.unwrap();
    let (mut d, mut buf) = (Decoder::new(), BytesMut::new());
    assert!(matches!(
        read_packet(&mut s, &mut d, &mut buf).await,
        Packet::Connect(_)
    ));
    s.write_all(&[0x20, 3, 0, 0, 0]).await.unwrap();
    s
}

/// The next packet a scripted server reads from the client.
async fn read_packet<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    d: &mut Decoder,
    buf: &mut BytesMut,
) -> Packet {
    loop {
        if let Some(p) = d.decode(buf).unwrap() {
            return p;
        }
        let n = timeout(Duration::from_secs(5), s.read_buf(buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "the client closed the connection");
    }
}

/// A server that accepts the connection and then stops reading (hung
/// process, TCP receive window at zero): the client's writes block. Keep
/// Alive 1 s and a PINGRESP timeout of 1 s must declare the connection dead
/// within a few seconds (MQTT 5.0 3.1.2.10: "If a Client does not
/// receive a PINGRESP packet within a reasonable amount of time after it
/// has sent a PINGREQ, it SHOULD close the Network Connection"). The
/// session does time out, but the driver used to wait for the write buffer
/// to drain before ending a connection the session closed, so it waited
/// forever: no Disconnected event, no reconnection, and `disconnect()`
/// hung too. A keep-alive timeout now drops the transport at once.
#[tokio::test]
async fn ping_timeout_ends_a_connection_whose_writes_are_blocked() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut o = ClientOptions::new("unused", 0);
    o.protocol(ProtocolVersion::V5)
        .client_id("blocked-writes")
        .keep_alive(1)
        .ping_timeout(Duration::from_secs(1))
        .reconnect(ReconnectOptions::disabled())
        .transport(Pipe(Mutex::new(Some(tx))));
    let mut b = Client::builder(o);
    let mut events = b.events();
    let server = tokio::spawn(async move {
        let s = accept_on_pipe(&mut rx).await;
        // Never read again, never close.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(s);
    });
    let c = b.connect().await.unwrap();
    // More than the pipe holds: the write blocks.
    let d = c
        .enqueue(mqtt_client::Message::new(
            "big".parse().unwrap(),
            vec![0u8; 64 * 1024],
            QoS::AtMostOnce,
            false,
        ))
        .await
        .unwrap();
    let mut closed = None;
    let ended = timeout(Duration::from_secs(6), async {
        while let Some(e) = events.recv().await {
            if let Event::Protocol(mqtt_session::Event::Closed(r)) = &e {
                closed = Some(format!("{r:?}"));
            }
            if matches!(e, Event::Disconnected { .. } | Event::Stopped) {
                return;
            }
        }
    })
    .await;
    let disconnect = timeout(Duration::from_secs(2), c.disconnect()).await;
    server.abort();
    drop(d);
    assert!(
        ended.is_ok() && disconnect.is_ok(),
        "no PINGRESP for 5 s past the timeout: connection declared dead: {}, disconnect() returned: {}; session closed with {closed:?}",
        ended.is_ok(),
        disconnect.is_ok()
    );
}

/// `publish` at QoS 0 "resolves ... once written", and
/// `ClientError::ConnectionLost` is documented for "a QoS 0 message [that]
/// had been encoded but the connection broke before it was written". When
/// the publish command and the end of the connection are seen in the same
/// round of the driver, the session reports the message Delivered, and the
/// driver (connection already ended) used to handle the event without
/// encoding the packet and complete it against bytes written earlier:
/// `Ok(Success)` for a message that never reached the transport. It now
/// fails with `ConnectionLost`.
#[tokio::test]
async fn qos0_publish_on_a_closed_connection_is_not_reported_written() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut o = ClientOptions::new("unused", 0);
    o.protocol(ProtocolVersion::V5)
        .client_id("qos0-closed")
        .reconnect(ReconnectOptions::disabled())
        .transport(Pipe(Mutex::new(Some(tx))));
    let (back_tx, back_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(async move {
        let s = accept_on_pipe(&mut rx).await;
        let _ = back_tx.send(s);
    });
    let c = Client::connect(o).await.unwrap();
    let s = back_rx.await.unwrap();
    server.await.unwrap();
    // The server goes away; before the driver notices, a QoS 0 publish.
    drop(s);
    let r = timeout(
        Duration::from_secs(5),
        c.publish("t", "never written", QoS::AtMostOnce, false),
    )
    .await
    .expect("resolves");
    assert_eq!(
        r,
        Err(ClientError::ConnectionLost),
        "a QoS 0 message that was never written"
    );
}

// ----- scripted servers over the pipe: subscriptions ------------------------

/// A scripted server's end of a pipe, reading and writing packets through
/// the codec.
struct Scripted {
    s: DuplexStream,
    d: Decoder,
    buf: BytesMut,
    e: Encoder,
}

impl Scripted {
    /// Takes the client's next pipe, reads its CONNECT (at `v`) and
    /// answers `connack`.
    async fn accept(
        rx: &mut mpsc::UnboundedReceiver<DuplexStream>,
        v: ProtocolVersion,
        connack: ConnAck,
    ) -> Self {
        let s = timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("the client connects in time")
            .unwrap();
        let mut me = Self {
            s,
            d: Decoder::new(),
            buf: BytesMut::new(),
            e: Encoder::new(v),
        };
        let Packet::Connect(c) = me.recv().await else {
            panic!("CONNECT expected");
        };
        assert_eq!(c.protocol, v);
        me.send(connack).await;
        me
    }

    async fn recv(&mut self) -> Packet {
        read_packet(&mut self.s, &mut self.d, &mut self.buf).await
    }

    async fn send(&mut self, p: impl Into<Packet>) {
        let mut b = BytesMut::new();
        self.e.encode(&p.into(), &mut b).unwrap();
        self.s.write_all(&b).await.unwrap();
    }

    /// Reads a SUBSCRIBE (of QoS 0 filters) and grants every filter.
    async fn grant(&mut self) -> Subscribe {
        let Packet::Subscribe(s) = self.recv().await else {
            panic!("SUBSCRIBE expected");
        };
        let reasons = vec![ReasonCode::Success; s.filters.len()];
        self.send(SubAck::new(s.packet_id, reasons)).await;
        s
    }

    /// Sends a QoS 0 PUBLISH to `topic`, tagged with the Subscription
    /// Identifier of `to` if it has one.
    async fn publish(&mut self, topic: &str, to: &Subscribe) {
        let mut p = Publish::new(PublishTopic::try_from(topic).unwrap(), topic.to_owned());
        if let Some(id) = to.properties.subscription_identifier {
            p.properties.to_mut().subscription_identifiers = [id].into_iter().collect();
        }
        self.send(p).await;
    }
}

/// A client over the pipe, reconnecting after 10 ms, with its event stream.
fn piped(
    v: ProtocolVersion,
    id: &str,
) -> (
    mqtt_client::ClientBuilder,
    mqtt_client::EventStream,
    mpsc::UnboundedReceiver<DuplexStream>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut o = ClientOptions::new("unused", 0);
    o.protocol(v)
        .client_id(id)
        .reconnect(
            ReconnectOptions::default()
                .delays(Duration::from_millis(10), Duration::from_millis(10)),
        )
        .transport(Pipe(Mutex::new(Some(tx))));
    let mut b = Client::builder(o);
    let events = b.events();
    (b, events, rx)
}

/// The next event matching `f`, skipping the others.
async fn wait_for<T>(
    events: &mut mqtt_client::EventStream,
    mut f: impl FnMut(Event) -> Option<T>,
) -> T {
    timeout(Duration::from_secs(5), async {
        loop {
            if let Some(t) = f(events.recv().await.expect("client running")) {
                return t;
            }
        }
    })
    .await
    .expect("the event in time")
}

/// The next [`Event::SessionLost`]: what was subscribed again, and what
/// could not be, with why.
async fn session_lost(
    events: &mut mqtt_client::EventStream,
) -> (
    Vec<mqtt_client::TopicFilter>,
    Vec<(mqtt_client::TopicFilter, ClientError)>,
) {
    wait_for(events, |e| match e {
        Event::SessionLost {
            resubscribed,
            not_resubscribed,
            ..
        } => Some((resubscribed, not_resubscribed)),
        _ => None,
    })
    .await
}

/// Whether `sub` ends (within a second) rather than staying open.
async fn ends(sub: &mut Subscription) -> bool {
    matches!(timeout(Duration::from_secs(1), sub.recv()).await, Ok(None))
}

fn q0() -> SubscriptionOptions {
    SubscriptionOptions::new(QoS::AtMostOnce)
}

/// At 5.0, an UNSUBACK reason of 0x80 or above for a filter means the
/// server did *not* remove that subscription (MQTT 5.0 3.11.3): its
/// messages keep coming, so its stream must stay open and keep getting
/// them, and the session must keep it (to subscribe again if the server
/// later loses the session). 0x11 No subscription existed is a success:
/// the subscription is gone. The driver used to remove every filter of the
/// UNSUBSCRIBE from its routes whatever the reasons (and the session every
/// filter from its state): the refused filter's stream ended while its
/// messages still arrived, unrouted. `unsubscribe_many` returns the
/// reasons, `unsubscribe` fails with `Refused`. At 3.1.1 UNSUBACK has no
/// reasons: every filter is unsubscribed.
#[tokio::test]
async fn unsuback_error_reason_keeps_the_subscription() {
    for v in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let (b, mut events, mut rx) = piped(v, "unsub-refused");
        let (c, mut srv) = tokio::join!(
            b.connect(),
            Scripted::accept(&mut rx, v, ConnAck::default())
        );
        let c = c.unwrap();
        let (a, sub_a) = tokio::join!(c.subscribe("u/a", q0()), srv.grant());
        let (b, _) = tokio::join!(c.subscribe("u/b", q0()), srv.grant());
        let (d, _) = tokio::join!(c.subscribe("u/c", q0()), srv.grant());
        let (mut a, mut b, mut d) = (a.unwrap(), b.unwrap(), d.unwrap());

        let (r, ()) = tokio::join!(
            c.unsubscribe_many(vec![
                "u/a".parse().unwrap(),
                "u/b".parse().unwrap(),
                "u/c".parse().unwrap()
            ]),
            async {
                let Packet::Unsubscribe(u) = srv.recv().await else {
                    panic!("UNSUBSCRIBE expected");
                };
                let reasons = if v.is_v5() {
                    vec![
                        ReasonCode::NotAuthorized,
                        ReasonCode::Success,
                        ReasonCode::NoSubscriptionExisted,
                    ]
                } else {
                    Vec::new()
                };
                srv.send(UnsubAck::new(u.packet_id, reasons)).await;
            }
        );
        let want = if v.is_v5() {
            vec![
                ReasonCode::NotAuthorized,
                ReasonCode::Success,
                ReasonCode::NoSubscriptionExisted,
            ]
        } else {
            vec![ReasonCode::Success; 3]
        };
        assert_eq!(r.unwrap(), want, "{v}");
        assert!(ends(&mut b).await, "{v}: u/b unsubscribed, its stream ends");
        assert!(
            ends(&mut d).await,
            "{v}: u/c had no subscription, its stream ends"
        );
        if !v.is_v5() {
            assert!(ends(&mut a).await, "{v}: u/a unsubscribed, its stream ends");
            continue;
        }
        // The server kept u/a: its messages still reach the stream.
        srv.publish("u/a", &sub_a).await;
        let m = timeout(Duration::from_secs(1), a.recv()).await;
        assert!(
            matches!(&m, Ok(Some(m)) if m.topic().as_str() == "u/a"),
            "{v}: the server refused to unsubscribe u/a, its stream must stay open: {m:?}"
        );
        // `unsubscribe` of one filter fails with the reason, and keeps it.
        let (r, ()) = tokio::join!(c.unsubscribe("u/a"), async {
            let Packet::Unsubscribe(u) = srv.recv().await else {
                panic!("UNSUBSCRIBE expected");
            };
            srv.send(UnsubAck::new(
                u.packet_id,
                vec![ReasonCode::UnspecifiedError],
            ))
            .await;
        });
        assert_eq!(r, Err(ClientError::Refused(ReasonCode::UnspecifiedError)));
        srv.publish("u/a", &sub_a).await;
        assert!(matches!(
            timeout(Duration::from_secs(1), a.recv()).await,
            Ok(Some(_))
        ));
        // The server loses the session: the client subscribes again to u/a,
        // which it still has, and only to it.
        drop(srv);
        let mut srv = Scripted::accept(&mut rx, v, ConnAck::default()).await;
        let again = srv.grant().await;
        let filters: Vec<_> = again.filters.iter().map(|f| f.filter.as_str()).collect();
        assert_eq!(
            filters,
            ["u/a"],
            "{v}: subscribed again after the session was lost"
        );
        let resubscribed = wait_for(&mut events, |e| match e {
            Event::SessionLost { resubscribed, .. } => Some(resubscribed),
            _ => None,
        })
        .await;
        assert_eq!(
            resubscribed,
            ["u/a".parse::<mqtt_client::TopicFilter>().unwrap()]
        );
        srv.publish("u/a", &again).await;
        assert!(matches!(
            timeout(Duration::from_secs(1), a.recv()).await,
            Ok(Some(_))
        ));
        drop(c);
    }
}

/// When the server lost the session, the client subscribes again with one
/// SUBSCRIBE per Subscription Identifier. If the new server's CONNACK
/// Maximum Packet Size is smaller than such a SUBSCRIBE, the session
/// refuses it (`UsageError::PacketTooLarge`, [MQTT-3.2.2-15]) and the
/// driver used to only log it: none of the group's filters was subscribed
/// again, and their streams stayed open without ever getting a message.
/// The filters now go in as many SUBSCRIBEs as fit; a filter that cannot
/// fit on its own is reported in `Event::SessionLost` and its stream learns
/// why (`Subscription::error`), ending if it has no other filter.
#[tokio::test]
async fn lost_session_resubscribes_in_packets_the_server_accepts() {
    const MAX: u32 = 128;
    let v = ProtocolVersion::V5;
    let (b, mut events, mut rx) = piped(v, "resub-split");
    let (c, mut srv) = tokio::join!(
        b.connect(),
        Scripted::accept(&mut rx, v, ConnAck::default())
    );
    let c = c.unwrap();
    // One SUBSCRIBE of 12 filters (~340 bytes), one of a filter too large
    // for the new server on its own, one of both kinds.
    let many: Vec<String> = (0..12)
        .map(|i| format!("split/{i:02}/{}", "x".repeat(16)))
        .collect();
    let big = format!("big/{}", "y".repeat(200));
    let (s1, first) = tokio::join!(
        c.subscribe_many(many.iter().map(|f| (f.parse().unwrap(), q0())).collect()),
        srv.grant()
    );
    assert!(Packet::Subscribe(first).encoded_len(v).unwrap() > MAX as usize);
    let (s2, _) = tokio::join!(c.subscribe(big.as_str(), q0()), srv.grant());
    let big2 = format!("big2/{}", "z".repeat(200));
    let (s3, _) = tokio::join!(
        c.subscribe_many(vec![
            ("mix/a".parse().unwrap(), q0()),
            (big2.parse().unwrap(), q0())
        ]),
        srv.grant()
    );
    let (mut s1, mut s2, mut s3) = (s1.unwrap(), s2.unwrap(), s3.unwrap());

    drop(srv);
    let mut connack = ConnAck::default();
    connack.properties.maximum_packet_size = NonZeroU32::new(MAX);
    let mut srv = Scripted::accept(&mut rx, v, connack).await;
    let mut left: Vec<String> = many.clone();
    left.push("mix/a".to_owned());
    let mut sent = Vec::new();
    while !left.is_empty() {
        let s = timeout(Duration::from_secs(2), srv.grant())
            .await
            .unwrap_or_else(|_| panic!("not subscribed again: {left:?}"));
        let size = Packet::Subscribe(s.clone()).encoded_len(v).unwrap();
        assert!(
            size <= MAX as usize,
            "a SUBSCRIBE of {size} bytes, over {MAX}"
        );
        for f in &s.filters {
            let f = f.filter.as_str();
            assert!(f != big && f != big2, "a filter too large to send was sent");
            left.retain(|x| x != f);
        }
        sent.push(s);
    }
    // The SUBSCRIBE that carried `f`, for its Subscription Identifier.
    let carrying = |f: &str| {
        sent.iter()
            .find(|s| s.filters.iter().any(|x| x.filter.as_str() == f))
            .unwrap()
            .clone()
    };
    let (again, lost) = session_lost(&mut events).await;
    assert_eq!(again.len(), 13, "{again:?}");
    let too_large = |e: &ClientError| {
        matches!(
            e,
            ClientError::Usage(mqtt_session::UsageError::PacketTooLarge { max: MAX, .. })
        )
    };
    let lost_names: Vec<_> = lost.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(lost_names, [big.as_str(), big2.as_str()]);
    assert!(lost.iter().all(|(_, e)| too_large(e)), "{lost:?}");
    // The messages of the filters subscribed again reach their streams.
    srv.publish(&many[11], &carrying(&many[11])).await;
    assert!(matches!(
        timeout(Duration::from_secs(1), s1.recv()).await,
        Ok(Some(_))
    ));
    srv.publish("mix/a", &carrying("mix/a")).await;
    assert!(matches!(
        timeout(Duration::from_secs(1), s3.recv()).await,
        Ok(Some(_))
    ));
    // The stream of the filter that cannot be sent ends, and says why; the
    // one that kept a filter stays open, and says why it lost the other.
    assert!(
        ends(&mut s2).await,
        "the stream of a filter that cannot be subscribed again ends"
    );
    assert!(s2.error().is_some_and(too_large), "{:?}", s2.error());
    assert!(s3.error().is_some_and(too_large), "{:?}", s3.error());
    assert_eq!(s1.error(), None);
    drop(c);
}

/// The CONNACK capabilities (Shared Subscription Available, Subscription
/// Identifiers Available, Wildcard Subscription Available) hold for one
/// connection, and a CONNACK without the property means available. The
/// session resets them on every CONNACK; the driver read Subscription
/// Identifiers Available on the session's `Connected` event, which comes
/// after `SessionLost`: subscribing again after a lost session used the
/// previous server's answer, so to a server that dropped identifiers it
/// asked the session for SUBSCRIBEs with one, which the session refused
/// (`NotSupported`): nothing was subscribed again, only logged. And a
/// SUBSCRIBE queued while disconnected took its identifier (or none) from
/// the previous CONNACK too: sent without one to a server that supports
/// them again. Now: the filters the server still supports are subscribed
/// again without identifier; a shared or wildcard one it no longer
/// supports is lost, reported in `SessionLost` and to its stream; a
/// SUBSCRIBE queued while disconnected is checked against the new CONNACK
/// (refused, or sent without identifier); and a later CONNACK without the
/// properties makes all available again.
#[tokio::test]
async fn capabilities_are_those_of_the_current_connack() {
    let v = ProtocolVersion::V5;
    let (b, mut events, mut rx) = piped(v, "caps");
    let (c, mut srv) = tokio::join!(
        b.connect(),
        Scripted::accept(&mut rx, v, ConnAck::default())
    );
    let c = c.unwrap();
    let (s1, sub1) = tokio::join!(c.subscribe("$share/g/cap/a", q0()), srv.grant());
    assert!(sub1.properties.subscription_identifier.is_some());
    let (s2, _) = tokio::join!(c.subscribe("cap/b", q0()), srv.grant());
    let (s3, _) = tokio::join!(c.subscribe("cap/+/w", q0()), srv.grant());
    let (mut s1, mut s2, mut s3) = (s1.unwrap(), s2.unwrap(), s3.unwrap());

    // Disconnected: two SUBSCRIBEs wait for the next connection.
    drop(srv);
    wait_for(&mut events, |e| {
        matches!(e, Event::Disconnected { .. }).then_some(())
    })
    .await;
    let queued_shared = tokio::spawn({
        let c = c.clone();
        async move { c.subscribe("$share/g/cap/q", q0()).await }
    });
    let queued_plain = tokio::spawn({
        let c = c.clone();
        async move { c.subscribe("cap/q2", q0()).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;

    // A server without shared or wildcard subscriptions or identifiers,
    // and without the session.
    let mut connack = ConnAck::default();
    connack.properties.wildcard_subscription_available = Some(false);
    connack.properties.shared_subscription_available = Some(false);
    connack.properties.subscription_identifiers_available = Some(false);
    let mut srv = Scripted::accept(&mut rx, v, connack).await;
    let mut left = vec!["cap/b", "cap/q2"];
    let mut sent = Vec::new();
    while !left.is_empty() {
        let s = timeout(Duration::from_secs(2), srv.grant())
            .await
            .unwrap_or_else(|_| panic!("not subscribed: {left:?}"));
        assert_eq!(
            s.properties.subscription_identifier, None,
            "a Subscription Identifier to a server without them"
        );
        for f in &s.filters {
            let f = f.filter.as_str();
            assert!(
                !f.starts_with("$share/") && !f.contains('+'),
                "{f} sent to a server without shared or wildcard subscriptions"
            );
            left.retain(|x| *x != f);
        }
        sent.push(s);
    }
    let (again, lost) = session_lost(&mut events).await;
    let not_supported = |e: &ClientError| {
        matches!(
            e,
            ClientError::Usage(mqtt_session::UsageError::NotSupported(_))
        )
    };
    assert_eq!(
        again,
        ["cap/b".parse::<mqtt_client::TopicFilter>().unwrap()]
    );
    let mut lost_names: Vec<_> = lost.iter().map(|(f, _)| f.as_str()).collect();
    lost_names.sort_unstable();
    assert_eq!(lost_names, ["$share/g/cap/a", "cap/+/w"]);
    assert!(lost.iter().all(|(_, e)| not_supported(e)), "{lost:?}");
    for s in [&mut s1, &mut s3] {
        assert!(ends(s).await, "the stream of a lost subscription ends");
        assert!(s.error().is_some_and(not_supported), "{:?}", s.error());
    }
    let r = queued_shared.await.unwrap();
    assert!(
        matches!(&r, Err(e) if not_supported(e)),
        "queued shared subscription: {r:?}"
    );
    queued_plain.await.unwrap().unwrap();
    let carrying = sent
        .iter()
        .find(|s| s.filters.iter().any(|f| f.filter.as_str() == "cap/b"))
        .unwrap()
        .clone();
    srv.publish("cap/b", &carrying).await;
    assert!(matches!(
        timeout(Duration::from_secs(1), s2.recv()).await,
        Ok(Some(_))
    ));

    // A CONNACK without the properties: both available again. The next
    // packet is this SUBSCRIBE: nothing else was sent meanwhile.
    drop(srv);
    let connack = ConnAck {
        session_present: true,
        ..ConnAck::default()
    };
    let mut srv = Scripted::accept(&mut rx, v, connack).await;
    let (r, s) = tokio::join!(c.subscribe("$share/g/cap/z", q0()), srv.grant());
    r.unwrap();
    assert_eq!(s.filters.len(), 1);
    assert_eq!(s.filters[0].filter.as_str(), "$share/g/cap/z");
    assert!(s.properties.subscription_identifier.is_some());
    drop(c);
}

/// One `#[tokio::test]` per scenario and server: `mosquitto::<scenario>`
/// and `broker::<scenario>` (ours). Attributes written before a scenario's
/// name apply to its `broker::` case only (for example an ignore attribute
/// naming a broker bug).
macro_rules! per_server {
    ($($(#[$ours:meta])* $scenario:ident,)*) => {
        mod mosquitto {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(super::Kind::Mosquitto).await;
                }
            )*
        }
        mod broker {
            $(
                $(#[$ours])*
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(super::Kind::Ours).await;
                }
            )*
        }
    };
}

per_server! {
    qos_0_1_2_publish_and_subscribe,
    many_concurrent_publishes_complete_in_order,
    retained_messages,
    will_is_published_when_the_connection_breaks_not_on_disconnect,
    persistent_session_survives_a_client_restart,
    v5_properties_round_trip,
    overlapping_subscriptions,
    bounded_queue_while_disconnected_then_delivered,
    lost_session_is_resubscribed_and_reported,
    manual_ack_holds_the_servers_window,
    connection_errors_are_reported,
}
