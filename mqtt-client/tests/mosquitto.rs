//! Integration tests against the Mosquitto broker (Debian's
//! `/usr/sbin/mosquitto`), started by each test on a free loopback port.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::num::{NonZeroU16, NonZeroU32};
use std::time::Duration;

use bytes::Bytes;
use common::{Mosquitto, Proxy};
use mqtt_client::{
    Client, ClientError, ClientOptions, Event, Message, ProtocolVersion, QoS, ReasonCode,
    ReconnectOptions, Subscription, SubscriptionOptions, UserProperty, Utf8Bytes, Will,
};
use tokio::time::timeout;

const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V3_1,
    ProtocolVersion::V3_1_1,
    ProtocolVersion::V5,
];

fn options(broker: &Mosquitto, v: ProtocolVersion, id: &str) -> ClientOptions {
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

async fn nothing(sub: &mut Subscription) {
    if let Ok(Some(m)) = timeout(Duration::from_millis(200), sub.recv()).await {
        panic!("unexpected message {m:?}");
    }
}

#[tokio::test]
async fn qos_0_1_2_publish_and_subscribe() {
    let broker = Mosquitto::start();
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

#[tokio::test]
async fn many_concurrent_publishes_complete_in_order() {
    let broker = Mosquitto::start();
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
    // Mosquitto forwards a QoS 2 message on PUBREL, so order holds per QoS
    // level [MQTT-4.6.0-6].
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

#[tokio::test]
async fn retained_messages() {
    let broker = Mosquitto::start();
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

#[tokio::test]
async fn will_is_published_when_the_connection_breaks_not_on_disconnect() {
    let broker = Mosquitto::start();
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
        o.will(Will::new(Utf8Bytes::from_static("wills/polite"), "gone"));
        Client::connect(o)
            .await
            .unwrap()
            .disconnect()
            .await
            .unwrap();
        nothing(&mut s).await;

        // A broken connection publishes it.
        let proxy = Proxy::start(broker.port).await;
        let mut o = ClientOptions::from_url(&proxy.url()).unwrap();
        let mut will = Will::new(Utf8Bytes::from_static("wills/rude"), "vanished");
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

#[tokio::test]
async fn persistent_session_survives_a_client_restart() {
    let broker = Mosquitto::start();
    for v in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let id = format!("persist-{v}");
        let persistent = |broker: &Mosquitto| {
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

#[tokio::test]
async fn v5_properties_round_trip() {
    let broker = Mosquitto::start();
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
    m.properties.user_properties = vec![
        UserProperty::new(Utf8Bytes::from_static("k"), Utf8Bytes::from_static("v1")),
        UserProperty::new(Utf8Bytes::from_static("k"), Utf8Bytes::from_static("v2")),
    ];
    m.properties.content_type = Some(Utf8Bytes::from_static("application/json"));
    m.properties.response_topic = Some(Utf8Bytes::from_static("v5/reply"));
    m.properties.correlation_data = Some(Bytes::from_static(b"\x00\x01corr"));
    m.properties.message_expiry_interval = Some(120);
    m.properties.payload_format_indicator = Some(mqtt_client::PayloadFormat::Utf8);
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

    // A QoS 1 publish with no subscriber: PUBACK 0x10 is a success.
    let r = publ
        .publish("nobody/here", "x", QoS::AtLeastOnce, false)
        .await
        .unwrap();
    assert_eq!(r, ReasonCode::NoMatchingSubscribers);
    publ.disconnect().await.unwrap();
    sub.disconnect().await.unwrap();
}

#[tokio::test]
async fn overlapping_subscriptions_each_get_one_copy() {
    let broker = Mosquitto::start();
    for v in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let c = Client::connect(options(&broker, v, "overlap"))
            .await
            .unwrap();
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
        assert_eq!(next(&mut all).await.payload().as_ref(), b"1");
        assert_eq!(next(&mut one).await.payload().as_ref(), b"1");
        c.publish("o/a/b", "2", QoS::AtLeastOnce, false)
            .await
            .unwrap();
        assert_eq!(next(&mut all).await.payload().as_ref(), b"2");
        if v.is_v5() {
            // Subscription identifiers make routing exact.
            nothing(&mut all).await;
            nothing(&mut one).await;
        }
        c.disconnect().await.unwrap();
    }
}

#[tokio::test]
async fn bounded_queue_while_disconnected_then_delivered() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start(broker.port).await;
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

#[tokio::test]
async fn lost_session_is_resubscribed_and_reported() {
    let broker = Mosquitto::start();
    for v in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let proxy = Proxy::start(broker.port).await;
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

#[tokio::test]
async fn manual_ack_holds_the_servers_window() {
    let broker = Mosquitto::start();
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
    for i in 0..4u8 {
        p.publish("ack", vec![i], QoS::AtLeastOnce, false)
            .await
            .unwrap();
    }
    let mut a = next(&mut s).await;
    let b = next(&mut s).await;
    assert!(a.awaits_ack() && b.awaits_ack());
    // Window of 2 full: nothing more until an acknowledgement.
    nothing(&mut s).await;
    a.ack();
    assert_eq!(next(&mut s).await.payload().as_ref(), &[2]);
    drop(b); // dropping acknowledges too
    assert_eq!(next(&mut s).await.payload().as_ref(), &[3]);
    c.disconnect().await.unwrap();
    p.disconnect().await.unwrap();
}

#[tokio::test]
async fn connection_errors_are_reported() {
    // Nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let o = ClientOptions::new("127.0.0.1", port);
    let e = Client::connect(o).await.unwrap_err();
    assert!(matches!(e, mqtt_client::ConnectionError::Io(_)), "{e}");

    // Mosquitto refuses anonymous clients when told to.
    let broker = Mosquitto::with_config("");
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
