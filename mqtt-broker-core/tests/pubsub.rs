#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Publish/subscribe through the broker over loopback, with raw packets:
//! QoS, overlapping subscriptions, wildcards, retained messages and their
//! options, No Local, shared subscriptions, subscription identifiers,
//! message expiry, topic aliases, properties, and mixing protocol versions.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use mqtt_codec::{
    Packet, PayloadFormat, Props, ProtocolVersion, PubRec, PubRel, Publish, PublishProperties, QoS,
    ReasonCode, RetainHandling, Subscribe, SubscribeFilter, SubscriptionOptions, UserProperty,
};

const QOS: [QoS; 3] = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];

fn opts(qos: QoS) -> SubscriptionOptions {
    SubscriptionOptions::new(qos)
}

// ----- QoS end to end -------------------------------------------------------------------------

/// Every (published QoS, granted QoS) pair: delivered QoS is the minimum,
/// each flow completes, and exactly one copy arrives.
async fn qos_matrix(version: ProtocolVersion) {
    let (_broker, addr) = start_default().await;
    let mut publisher = Client::connect(addr, version, "qm-pub", true).await;
    let mut subs = Vec::new();
    for (i, q) in QOS.iter().enumerate() {
        let mut c = Client::connect(addr, version, &format!("qm-sub{i}"), true).await;
        c.subscribe(&format!("qm/{i}"), *q).await;
        subs.push(c);
    }
    for (pi, pq) in QOS.iter().enumerate() {
        for (si, sq) in QOS.iter().enumerate() {
            let payload = format!("p{pi}-s{si}");
            publisher
                .publish(&format!("qm/{si}"), &payload, *pq, false)
                .await;
            let sub = &mut subs[si];
            let p = sub.recv_publish().await;
            assert_eq!(&*p.topic, format!("qm/{si}"));
            assert_eq!(text(&p), payload);
            assert_eq!(p.qos, (*pq).min(*sq), "published {pq:?}, granted {sq:?}");
            assert!(!p.retain);
            assert!(!p.dup);
            assert_eq!(p.packet_id.is_some(), p.qos != QoS::AtMostOnce);
            sub.expect_nothing().await;
        }
    }
    publisher.expect_nothing().await;
}

#[tokio::test]
async fn qos_end_to_end_v311() {
    qos_matrix(V3_1_1).await;
}

#[tokio::test]
async fn qos_end_to_end_v5() {
    qos_matrix(V5).await;
}

#[tokio::test]
async fn qos_end_to_end_mqtt_3_1() {
    let (_broker, addr) = start_default().await;
    let mut sub = Client::connect(addr, ProtocolVersion::V3_1, "mqisdp-sub", true).await;
    sub.subscribe("q31/#", QoS::ExactlyOnce).await;
    let mut publisher = Client::connect(addr, V5, "q31-pub", true).await;
    for q in QOS {
        publisher.publish("q31/x", "hello", q, false).await;
        let p = sub.recv_publish().await;
        assert_eq!(p.qos, q);
        assert_eq!(text(&p), "hello");
    }
    sub.expect_nothing().await;
}

/// A QoS 2 PUBLISH re-sent (DUP) before PUBREL is acknowledged again but
/// delivered once [MQTT-4.3.3]; after PUBCOMP the same packet id is a new
/// message.
#[tokio::test]
async fn qos2_exactly_once_with_resent_publish() {
    for version in [V3_1_1, V5] {
        let (_broker, addr) = start_default().await;
        let mut sub = Client::connect(addr, version, "eo-sub", true).await;
        sub.subscribe("eo/t", QoS::ExactlyOnce).await;
        let mut publisher = Client::connect(addr, version, "eo-pub", true).await;
        let mut p = publish_packet("eo/t", "once", QoS::ExactlyOnce, false);
        p.packet_id = Some(pid(7));
        publisher.send(p.clone()).await;
        assert!(matches!(publisher.recv().await, Packet::PubRec(r) if r.packet_id == pid(7)));
        p.dup = true;
        publisher.send(p.clone()).await;
        assert!(matches!(publisher.recv().await, Packet::PubRec(r) if r.packet_id == pid(7)));
        publisher.send(PubRel::new(pid(7))).await;
        assert!(matches!(publisher.recv().await, Packet::PubComp(r) if r.packet_id == pid(7)));
        let got = sub.recv_publish().await;
        assert_eq!(text(&got), "once");
        sub.expect_nothing().await;
        // The identifier is free again: a new message.
        p.dup = false;
        p.payload = Bytes::from_static(b"twice");
        publisher.send(p).await;
        assert!(matches!(publisher.recv().await, Packet::PubRec(_)));
        publisher.send(PubRel::new(pid(7))).await;
        assert!(matches!(publisher.recv().await, Packet::PubComp(_)));
        assert_eq!(text(&sub.recv_publish().await), "twice");
        sub.expect_nothing().await;
    }
}

/// The subscriber side of QoS 2: PUBLISH, PUBREC, PUBREL, PUBCOMP, with the
/// broker not re-sending anything once the flow is complete.
#[tokio::test]
async fn qos2_outbound_flow() {
    let (_broker, addr) = start_default().await;
    let mut sub = Client::connect(addr, V5, "q2o-sub", true).await;
    sub.subscribe("q2o", QoS::ExactlyOnce).await;
    let mut publisher = Client::connect(addr, V5, "q2o-pub", true).await;
    publisher.publish("q2o", "x", QoS::ExactlyOnce, false).await;
    let p = sub.expect_publish().await;
    let id = p.packet_id.unwrap();
    sub.send(PubRec::new(id)).await;
    match sub.recv().await {
        Packet::PubRel(r) => {
            assert_eq!(r.packet_id, id);
            assert_eq!(r.reason, ReasonCode::Success);
        }
        other => panic!("expected PUBREL, got {other:?}"),
    }
    sub.send(mqtt_codec::PubComp::new(id)).await;
    sub.expect_nothing().await;
}

// ----- overlapping subscriptions and subscription identifiers ------------------------------------

/// MQTT 5.0: one copy per matching subscription, each with its own
/// Subscription Identifier and QoS [MQTT-3.3.4-3..5].
#[tokio::test]
async fn overlapping_subscriptions_v5_one_copy_each() {
    let (_broker, addr) = start_default().await;
    let mut sub = Client::connect(addr, V5, "ov5-sub", true).await;
    sub.subscribe_opts("ov/+", opts(QoS::AtLeastOnce), Some(1))
        .await;
    sub.subscribe_opts("ov/#", opts(QoS::AtMostOnce), Some(2))
        .await;
    sub.subscribe_opts("ov/a", opts(QoS::ExactlyOnce), None)
        .await;
    let mut publisher = Client::connect(addr, V5, "ov5-pub", true).await;
    publisher
        .publish("ov/a", "m", QoS::ExactlyOnce, false)
        .await;
    let mut got = Vec::new();
    for _ in 0..3 {
        let p = sub.recv_publish().await;
        assert_eq!(text(&p), "m");
        let ids: Vec<u32> = p
            .properties
            .subscription_identifiers
            .iter()
            .map(|i| i.get())
            .collect();
        got.push((ids, p.qos));
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            (vec![], QoS::ExactlyOnce),
            (vec![1], QoS::AtLeastOnce),
            (vec![2], QoS::AtMostOnce),
        ]
    );
    sub.expect_nothing().await;
    // Only the matching ones.
    publisher
        .publish("ov/b/c", "n", QoS::AtLeastOnce, false)
        .await;
    let p = sub.recv_publish().await;
    assert_eq!(
        p.properties
            .subscription_identifiers
            .iter()
            .map(|i| i.get())
            .collect::<Vec<_>>(),
        vec![2]
    );
    assert_eq!(p.qos, QoS::AtMostOnce);
    sub.expect_nothing().await;
}

/// MQTT 3.1.1: the message is delivered respecting the maximum QoS of all
/// matching subscriptions [MQTT-3.3.5-1]; further copies are allowed.
#[tokio::test]
async fn overlapping_subscriptions_v311_max_qos() {
    let (_broker, addr) = start_default().await;
    let mut sub = Client::connect(addr, V3_1_1, "ov3-sub", true).await;
    let ack = sub
        .subscribe_many(&[("ov3/+", QoS::AtMostOnce), ("ov3/#", QoS::ExactlyOnce)])
        .await;
    assert_eq!(
        ack.reasons,
        vec![ReasonCode::Success, ReasonCode::GrantedQoS2]
    );
    let mut publisher = Client::connect(addr, V3_1_1, "ov3-pub", true).await;
    publisher
        .publish("ov3/a", "m", QoS::ExactlyOnce, false)
        .await;
    let mut copies = vec![sub.recv_publish().await];
    for p in sub.ping().await {
        match p {
            Packet::Publish(p) => {
                sub.ack(&p).await;
                copies.push(p);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!((1..=2).contains(&copies.len()), "{copies:?}");
    assert!(copies.iter().all(|p| text(p) == "m"));
    assert!(
        copies.iter().any(|p| p.qos == QoS::ExactlyOnce),
        "{copies:?}"
    );
}

/// Subscription Identifiers: carried on live and retained deliveries, shared
/// by the filters of one SUBSCRIBE, replaced with the subscription, absent
/// when the subscription has none.
#[tokio::test]
async fn subscription_identifiers_v5() {
    let (_broker, addr) = start_default().await;
    let mut publisher = Client::connect(addr, V5, "sid-pub", true).await;
    publisher
        .publish("sid/r", "kept", QoS::AtMostOnce, true)
        .await;

    let mut sub = Client::connect(addr, V5, "sid-sub", true).await;
    // Two filters in one SUBSCRIBE with identifier 77.
    let mut s2 = Subscribe::new(sub.next_pid(), s("sid/a"), opts(QoS::AtLeastOnce));
    s2.filters.push(SubscribeFilter {
        filter: s("sid/r"),
        options: opts(QoS::AtLeastOnce),
    });
    s2.properties.to_mut().subscription_identifier = Some(sub_id(77));
    let ack = sub.subscribe_packet(s2).await;
    assert_eq!(ack.reasons, vec![ReasonCode::GrantedQoS1; 2]);
    // The retained message, with the identifier.
    let r = sub.recv_publish().await;
    assert_eq!(text(&r), "kept");
    assert!(r.retain);
    assert_eq!(r.properties.subscription_identifiers, vec![sub_id(77)]);

    publisher
        .publish("sid/a", "1", QoS::AtLeastOnce, false)
        .await;
    let p = sub.recv_publish().await;
    assert_eq!(p.properties.subscription_identifiers, vec![sub_id(77)]);

    // The largest identifier (268,435,455).
    sub.subscribe_opts("sid/big", opts(QoS::AtLeastOnce), Some(268_435_455))
        .await;
    publisher
        .publish("sid/big", "2", QoS::AtLeastOnce, false)
        .await;
    let p = sub.recv_publish().await;
    assert_eq!(
        p.properties.subscription_identifiers,
        vec![sub_id(268_435_455)]
    );

    // Re-subscribing without an identifier replaces the subscription.
    sub.subscribe_opts("sid/a", opts(QoS::AtLeastOnce), None)
        .await;
    publisher
        .publish("sid/a", "3", QoS::AtLeastOnce, false)
        .await;
    let p = sub.recv_publish().await;
    assert_eq!(text(&p), "3");
    assert!(p.properties.subscription_identifiers.is_empty(), "{p:?}");
    sub.expect_nothing().await;
}

// ----- wildcards ------------------------------------------------------------------------------

#[tokio::test]
async fn wildcards() {
    for version in [V3_1_1, V5] {
        let (broker, addr) = start_default().await;
        let mut plus = Client::connect(addr, version, "wc-plus", true).await;
        plus.subscribe("sport/+/player1", QoS::AtLeastOnce).await;
        let mut hash = Client::connect(addr, version, "wc-hash", true).await;
        hash.subscribe("sport/#", QoS::AtLeastOnce).await;
        let mut all = Client::connect(addr, version, "wc-all", true).await;
        all.subscribe("#", QoS::AtLeastOnce).await;
        let mut first = Client::connect(addr, version, "wc-first", true).await;
        first.subscribe("+/tennis/#", QoS::AtLeastOnce).await;
        let mut dollar = Client::connect(addr, version, "wc-dollar", true).await;
        dollar.subscribe("$SYS/#", QoS::AtLeastOnce).await;

        let mut publisher = Client::connect(addr, version, "wc-pub", true).await;
        let topics = [
            "sport",
            "sport/tennis/player1",
            "sport/tennis/player2",
            "sport/tennis/player1/ranking",
            "sport//player1",
            "/sport",
        ];
        for t in topics {
            publisher.publish(t, t, QoS::AtLeastOnce, false).await;
        }
        // `$` topics are not matched by a leading wildcard [MQTT-4.7.2-1].
        broker.publish("$SYS/test".parse().unwrap(), "sys", QoS::AtLeastOnce, false);

        async fn drain(c: &mut Client) -> Vec<String> {
            let mut v = Vec::new();
            for p in c.ping().await {
                let Packet::Publish(p) = p else {
                    panic!("unexpected {p:?}")
                };
                c.ack(&p).await;
                v.push(p.topic.to_string());
            }
            v
        }
        assert_eq!(
            drain(&mut plus).await,
            ["sport/tennis/player1", "sport//player1"]
        );
        assert_eq!(
            drain(&mut hash).await,
            [
                "sport",
                "sport/tennis/player1",
                "sport/tennis/player2",
                "sport/tennis/player1/ranking",
                "sport//player1"
            ]
        );
        assert_eq!(drain(&mut all).await, topics);
        assert_eq!(
            drain(&mut first).await,
            [
                "sport/tennis/player1",
                "sport/tennis/player2",
                "sport/tennis/player1/ranking"
            ]
        );
        assert_eq!(drain(&mut dollar).await, ["$SYS/test"]);
    }
}

// ----- retained messages ----------------------------------------------------------------------

/// Set, replace, clear; RETAIN=1 on delivery because of SUBSCRIBE, RETAIN=0
/// on delivery to an established subscription (3.1.1 [MQTT-3.3.1-9]; 5.0
/// with Retain As Published 0); the clearing message itself is forwarded.
async fn retained_lifecycle(version: ProtocolVersion) {
    let (broker, addr) = start_default().await;
    let mut publisher = Client::connect(addr, version, "rl-pub", true).await;
    publisher.publish("rl/t", "a", QoS::AtLeastOnce, true).await;
    assert_eq!(broker.stats().retained, 1);

    let mut s1 = Client::connect(addr, version, "rl-s1", true).await;
    s1.subscribe("rl/#", QoS::AtLeastOnce).await;
    let p = s1.recv_publish().await;
    assert_eq!((text(&p), p.retain, p.qos), ("a", true, QoS::AtLeastOnce));
    s1.expect_nothing().await;

    // Replace.
    publisher.publish("rl/t", "b", QoS::AtLeastOnce, true).await;
    let p = s1.recv_publish().await;
    assert_eq!((text(&p), p.retain), ("b", false));
    assert_eq!(broker.stats().retained, 1);
    let mut s2 = Client::connect(addr, version, "rl-s2", true).await;
    s2.subscribe("rl/t", QoS::AtLeastOnce).await;
    let p = s2.recv_publish().await;
    assert_eq!((text(&p), p.retain), ("b", true));
    s2.expect_nothing().await;

    // A non-retained message leaves the retained one alone.
    publisher
        .publish("rl/t", "c", QoS::AtLeastOnce, false)
        .await;
    assert_eq!(text(&s1.recv_publish().await), "c");
    // A second retained topic.
    publisher.publish("rl/u", "d", QoS::AtMostOnce, true).await;
    assert_eq!(text(&s1.recv_publish().await), "d");

    // Clear with an empty payload: forwarded to current subscribers, not kept.
    publisher.publish("rl/t", "", QoS::AtLeastOnce, true).await;
    let p = s1.recv_publish().await;
    assert_eq!((p.payload.len(), p.retain), (0, false));
    assert_eq!(broker.stats().retained, 1);
    let mut s3 = Client::connect(addr, version, "rl-s3", true).await;
    s3.subscribe("rl/#", QoS::ExactlyOnce).await;
    let p = s3.recv_publish().await;
    assert_eq!(
        (&*p.topic, text(&p), p.retain, p.qos),
        ("rl/u", "d", true, QoS::AtMostOnce)
    );
    s3.expect_nothing().await;
    s1.expect_nothing().await;
}

#[tokio::test]
async fn retained_set_replace_clear_v311() {
    retained_lifecycle(V3_1_1).await;
}

#[tokio::test]
async fn retained_set_replace_clear_v5() {
    retained_lifecycle(V5).await;
}

/// Retained messages for a wildcard subscription, each at min(retained QoS,
/// granted QoS).
#[tokio::test]
async fn retained_wildcard_and_qos() {
    let (_broker, addr) = start_default().await;
    let mut publisher = Client::connect(addr, V5, "rw-pub", true).await;
    publisher.publish("rw/a", "0", QoS::AtMostOnce, true).await;
    publisher.publish("rw/b", "1", QoS::AtLeastOnce, true).await;
    publisher
        .publish("rw/c/d", "2", QoS::ExactlyOnce, true)
        .await;
    publisher
        .publish("other", "x", QoS::AtLeastOnce, true)
        .await;
    for (granted_qos, filter) in [(QoS::AtLeastOnce, "rw/#"), (QoS::ExactlyOnce, "rw/+")] {
        let mut sub = Client::connect(addr, V3_1_1, "rw-sub", true).await;
        sub.subscribe(filter, granted_qos).await;
        let mut got = Vec::new();
        for p in sub.ping().await {
            let Packet::Publish(p) = p else {
                panic!("{p:?}")
            };
            assert!(p.retain);
            sub.ack(&p).await;
            got.push((p.topic.to_string(), p.qos));
        }
        got.sort();
        let mut want = vec![
            ("rw/a".to_owned(), QoS::AtMostOnce),
            ("rw/b".to_owned(), QoS::AtLeastOnce),
        ];
        if filter == "rw/#" {
            want.push(("rw/c/d".to_owned(), QoS::ExactlyOnce.min(granted_qos)));
        }
        assert_eq!(got, want, "{filter}");
    }
}

/// Retain Handling 0 (send on every subscribe), 1 (only for a new
/// subscription), 2 (never) [MQTT-3.3.1-9..11].
#[tokio::test]
async fn retain_handling_v5() {
    let (_broker, addr) = start_default().await;
    let mut publisher = Client::connect(addr, V5, "rh-pub", true).await;
    publisher
        .publish("rh/t", "kept", QoS::AtLeastOnce, true)
        .await;
    let mut sub = Client::connect(addr, V5, "rh-sub", true).await;
    let mut o = opts(QoS::AtLeastOnce);

    // 0: every time.
    o.retain_handling = RetainHandling::SendOnSubscribe;
    for _ in 0..2 {
        sub.subscribe_opts("rh/t", o, None).await;
        let p = sub.recv_publish().await;
        assert_eq!((text(&p), p.retain), ("kept", true));
        sub.expect_nothing().await;
    }
    // 1: for a new subscription only.
    o.retain_handling = RetainHandling::SendIfNew;
    sub.subscribe_opts("rh/+", o, None).await;
    let p = sub.recv_publish().await;
    assert_eq!((text(&p), p.retain), ("kept", true));
    sub.expect_nothing().await;
    sub.subscribe_opts("rh/+", o, None).await;
    sub.expect_nothing().await;
    // 2: never.
    o.retain_handling = RetainHandling::DoNotSend;
    sub.subscribe_opts("rh/#", o, None).await;
    sub.expect_nothing().await;
    let mut fresh = Client::connect(addr, V5, "rh-fresh", true).await;
    fresh.subscribe_opts("rh/t", o, None).await;
    fresh.expect_nothing().await;
}

/// Retain As Published: RETAIN kept on live delivery when set, cleared when
/// not [MQTT-3.3.1-12, -13].
#[tokio::test]
async fn retain_as_published_v5() {
    let (_broker, addr) = start_default().await;
    let mut rap = Client::connect(addr, V5, "rap-1", true).await;
    let mut o = opts(QoS::AtLeastOnce);
    o.retain_as_published = true;
    rap.subscribe_opts("rap/t", o, None).await;
    let mut plain = Client::connect(addr, V5, "rap-0", true).await;
    plain
        .subscribe_opts("rap/t", opts(QoS::AtLeastOnce), None)
        .await;
    let mut publisher = Client::connect(addr, V5, "rap-pub", true).await;
    publisher
        .publish("rap/t", "r", QoS::AtLeastOnce, true)
        .await;
    publisher
        .publish("rap/t", "n", QoS::AtLeastOnce, false)
        .await;
    let (a, b) = (rap.recv_publish().await, rap.recv_publish().await);
    assert_eq!(
        (text(&a), a.retain, text(&b), b.retain),
        ("r", true, "n", false)
    );
    let (a, b) = (plain.recv_publish().await, plain.recv_publish().await);
    assert_eq!(
        (text(&a), a.retain, text(&b), b.retain),
        ("r", false, "n", false)
    );
    // Retain As Published does not change delivery on SUBSCRIBE.
    let mut late = Client::connect(addr, V5, "rap-late", true).await;
    late.subscribe_opts("rap/t", o, None).await;
    let p = late.recv_publish().await;
    assert_eq!((text(&p), p.retain), ("r", true));
}

// ----- No Local -------------------------------------------------------------------------------

#[tokio::test]
async fn no_local_v5() {
    let (_broker, addr) = start_default().await;
    let mut me = Client::connect(addr, V5, "nl-me", true).await;
    let mut o = opts(QoS::AtLeastOnce);
    o.no_local = true;
    me.subscribe_opts("nl/t", o, None).await;
    me.subscribe_opts("nl/own", opts(QoS::AtLeastOnce), None)
        .await;
    let mut other = Client::connect(addr, V5, "nl-other", true).await;
    other.subscribe("nl/#", QoS::AtLeastOnce).await;

    me.publish("nl/t", "mine", QoS::AtLeastOnce, false).await;
    assert_eq!(text(&other.recv_publish().await), "mine");
    me.expect_nothing().await;

    // Without No Local a client gets its own messages.
    me.publish("nl/own", "echo", QoS::AtLeastOnce, false).await;
    assert_eq!(text(&me.recv_publish().await), "echo");
    assert_eq!(text(&other.recv_publish().await), "echo");

    // Other clients' messages still arrive on the No Local subscription.
    other
        .publish("nl/t", "theirs", QoS::AtLeastOnce, false)
        .await;
    assert_eq!(text(&me.recv_publish().await), "theirs");
    assert_eq!(text(&other.recv_publish().await), "theirs");
    me.expect_nothing().await;
}

// ----- shared subscriptions -------------------------------------------------------------------

async fn collect_shared(c: &mut Client, topic: &str) -> Vec<usize> {
    let mut v = Vec::new();
    for p in c.ping().await {
        let Packet::Publish(p) = p else {
            panic!("{p:?}")
        };
        assert_eq!(&*p.topic, topic);
        c.ack(&p).await;
        v.push(text(&p).parse().unwrap());
    }
    v
}

/// `$share/g/filter`: each message goes to exactly one member of the group,
/// both members get some, a non-shared subscriber gets all, and retained
/// messages are not sent for a shared subscription [MQTT-4.8.2].
/// (The broker picks members at random: with 32 messages the chance that a
/// member gets none is 2^-31.)
#[tokio::test]
async fn shared_subscriptions() {
    let (_broker, addr) = start_default().await;
    let mut publisher = Client::connect(addr, V5, "sh-pub", true).await;
    publisher
        .publish("sh/r", "retained", QoS::AtLeastOnce, true)
        .await;

    let mut m1 = Client::connect(addr, V5, "sh-m1", true).await;
    m1.subscribe("$share/g/sh/#", QoS::AtLeastOnce).await;
    let mut m2 = Client::connect(addr, V3_1_1, "sh-m2", true).await;
    m2.subscribe("$share/g/sh/#", QoS::AtLeastOnce).await;
    let mut plain = Client::connect(addr, V5, "sh-plain", true).await;
    plain.subscribe("sh/+", QoS::AtLeastOnce).await;
    assert_eq!(text(&plain.recv_publish().await), "retained");
    m1.expect_nothing().await;
    m2.expect_nothing().await;

    const N: usize = 32;
    for i in 0..N {
        publisher
            .publish("sh/x", &i.to_string(), QoS::AtLeastOnce, false)
            .await;
    }
    let a = collect_shared(&mut m1, "sh/x").await;
    let b = collect_shared(&mut m2, "sh/x").await;
    assert!(!a.is_empty() && !b.is_empty(), "{a:?} {b:?}");
    let mut union: Vec<usize> = a.iter().chain(&b).copied().collect();
    union.sort_unstable();
    assert_eq!(union, (0..N).collect::<Vec<_>>(), "{a:?} {b:?}");
    assert_eq!(
        collect_shared(&mut plain, "sh/x").await,
        (0..N).collect::<Vec<_>>()
    );

    // A member that unsubscribes: the other gets everything.
    let ack = m2.unsubscribe("$share/g/sh/#").await;
    assert!(ack.reasons.is_empty(), "3.1.1 UNSUBACK has no reason codes");
    for i in 0..4 {
        publisher
            .publish("sh/x", &i.to_string(), QoS::AtLeastOnce, false)
            .await;
    }
    assert_eq!(collect_shared(&mut m1, "sh/x").await, vec![0, 1, 2, 3]);
    m2.expect_nothing().await;
    // Back in, then gone (clean session): the other gets everything.
    m2.subscribe("$share/g/sh/#", QoS::AtLeastOnce).await;
    m2.disconnect().await;
    for i in 0..4 {
        publisher
            .publish("sh/x", &i.to_string(), QoS::AtLeastOnce, false)
            .await;
    }
    assert_eq!(collect_shared(&mut m1, "sh/x").await, vec![0, 1, 2, 3]);
}

/// Two groups sharing the same topics: each group gets every message once,
/// and within each group both members get some.
#[tokio::test]
async fn shared_subscriptions_two_groups() {
    let (_broker, addr) = start_default().await;
    let mut g1 = Client::connect(addr, V5, "sg-g1", true).await;
    g1.subscribe("$share/g/sg/#", QoS::AtLeastOnce).await;
    let mut g2 = Client::connect(addr, V5, "sg-g2", true).await;
    g2.subscribe("$share/g/sg/#", QoS::AtLeastOnce).await;
    let mut h1 = Client::connect(addr, V5, "sg-h1", true).await;
    h1.subscribe("$share/h/sg/+", QoS::AtLeastOnce).await;
    let mut h2 = Client::connect(addr, V5, "sg-h2", true).await;
    h2.subscribe("$share/h/sg/+", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(addr, V5, "sg-pub", true).await;
    const N: usize = 32;
    for i in 0..N {
        publisher
            .publish("sg/x", &i.to_string(), QoS::AtLeastOnce, false)
            .await;
    }
    for (x, y) in [(&mut g1, &mut g2), (&mut h1, &mut h2)] {
        let a = collect_shared(x, "sg/x").await;
        let b = collect_shared(y, "sg/x").await;
        let mut union: Vec<usize> = a.iter().chain(&b).copied().collect();
        union.sort_unstable();
        assert_eq!(union, (0..N).collect::<Vec<_>>(), "{a:?} {b:?}");
        assert!(
            !a.is_empty() && !b.is_empty(),
            "a member got nothing: {a:?} {b:?}"
        );
    }
}

// ----- message expiry -------------------------------------------------------------------------

fn with_expiry(topic: &str, payload: &str, qos: QoS, retain: bool, secs: u32) -> Publish {
    let mut p = publish_packet(topic, payload, qos, retain);
    p.properties.to_mut().message_expiry_interval = Some(secs);
    p
}

/// A retained message whose Message Expiry Interval has passed is not
/// delivered; one that has not is delivered with the interval decremented
/// by the time it waited [MQTT-3.3.2-5, -6].
#[tokio::test]
async fn message_expiry_retained_v5() {
    let (_broker, addr) = start_default().await;
    let mut publisher = Client::connect(addr, V5, "mer-pub", true).await;
    publisher
        .publish_packet(with_expiry("mer/short", "s", QoS::AtLeastOnce, true, 1))
        .await;
    publisher
        .publish_packet(with_expiry("mer/long", "l", QoS::AtLeastOnce, true, 100))
        .await;
    // A live subscriber gets the interval unchanged.
    let mut live = Client::connect(addr, V5, "mer-live", true).await;
    live.subscribe("mer/live", QoS::AtLeastOnce).await;
    publisher
        .publish_packet(with_expiry("mer/live", "v", QoS::AtLeastOnce, false, 100))
        .await;
    let p = live.recv_publish().await;
    assert_eq!(p.properties.message_expiry_interval, Some(100));
    // Time must pass for the message to expire.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let mut sub = Client::connect(addr, V5, "mer-sub", true).await;
    sub.subscribe("mer/+", QoS::AtLeastOnce).await;
    let p = sub.recv_publish().await;
    assert_eq!(&*p.topic, "mer/long");
    let left = p.properties.message_expiry_interval.unwrap();
    assert!((97..=99).contains(&left), "remaining {left}");
    sub.expect_nothing().await;
    // A 3.1.1 subscriber does not get the expired one either.
    let mut old = Client::connect(addr, V3_1_1, "mer-311", true).await;
    old.subscribe("mer/+", QoS::AtLeastOnce).await;
    assert_eq!(&*old.recv_publish().await.topic, "mer/long");
    old.expect_nothing().await;
}

/// `$SYS/broker/retained messages/count` (and `Stats::retained`) used to
/// count retained messages that have expired; they also stayed in memory
/// (and in the store) until some SUBSCRIBE happened to match them.
#[tokio::test]
async fn expired_retained_messages_still_counted() {
    let (broker, addr) = start(config()).await;
    let mut publisher = Client::connect(addr, V5, "rex-pub", true).await;
    publisher
        .publish_packet(with_expiry("rex/t", "r", QoS::AtLeastOnce, true, 1))
        .await;
    assert_eq!(broker.stats().retained, 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        broker.stats().retained,
        0,
        "an expired retained message is still counted"
    );
}

/// Messages queued for an absent persistent subscriber expire too; the
/// others are delivered with the interval decremented.
#[tokio::test]
async fn message_expiry_queued_v5() {
    let (_broker, addr) = start_default().await;
    let (mut sub, _) = Client::connect_v5_persistent(addr, "meq-sub", true, 60).await;
    sub.subscribe("meq/#", QoS::AtLeastOnce).await;
    sub.disconnect().await;
    let mut publisher = Client::connect(addr, V5, "meq-pub", true).await;
    publisher
        .publish_packet(with_expiry("meq/short", "s", QoS::AtLeastOnce, false, 1))
        .await;
    publisher
        .publish_packet(with_expiry("meq/long", "l", QoS::ExactlyOnce, false, 100))
        .await;
    publisher
        .publish("meq/forever", "f", QoS::AtLeastOnce, false)
        .await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (mut sub, ack) = Client::connect_v5_persistent(addr, "meq-sub", false, 60).await;
    assert!(ack.session_present);
    let p = sub.recv_publish().await;
    assert_eq!(&*p.topic, "meq/long");
    let left = p.properties.message_expiry_interval.unwrap();
    assert!((97..=99).contains(&left), "remaining {left}");
    let p = sub.recv_publish().await;
    assert_eq!(&*p.topic, "meq/forever");
    assert_eq!(p.properties.message_expiry_interval, None);
    sub.expect_nothing().await;
}

/// [MQTT-3.3.2-5]: a message whose expiry passed before onward delivery
/// must be deleted. Expired messages used to stay in an offline client's
/// queue and count against `max_queued_messages`: with `DropNew` a fresh
/// message was refused because the queue was "full" of expired ones.
#[tokio::test]
async fn expired_messages_keep_the_offline_queue_full() {
    let mut cfg = config();
    cfg.max_queued_messages = 2;
    let (broker, addr) = start(cfg).await;
    let (mut sub, _) = Client::connect_v5_persistent(addr, "exq-sub", true, 60).await;
    sub.subscribe("exq/#", QoS::AtLeastOnce).await;
    sub.disconnect().await;

    let mut publisher = Client::connect(addr, V5, "exq-pub", true).await;
    for _ in 0..2 {
        publisher
            .publish_packet(with_expiry("exq/t", "short", QoS::AtLeastOnce, false, 1))
            .await;
    }
    // Both expire.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    publisher
        .publish("exq/t", "fresh", QoS::AtLeastOnce, false)
        .await;

    let (mut sub, ack) = Client::connect_v5_persistent(addr, "exq-sub", false, 60).await;
    assert!(ack.session_present);
    match sub.recv_timeout(Duration::from_secs(1)).await {
        Ok(Some(Packet::Publish(p))) => assert_eq!(text(&p), "fresh"),
        other => panic!(
            "the fresh message was dropped for a queue full of expired ones: {other:?}, \
             publish_dropped = {}",
            broker.stats().publish_dropped
        ),
    }
}

// ----- topic aliases --------------------------------------------------------------------------

fn aliased(topic: &str, payload: &str, alias: u16) -> Publish {
    let mut p = publish_packet(topic, payload, QoS::AtLeastOnce, false);
    p.properties.to_mut().topic_alias = Some(nz16(alias));
    p
}

/// Client to broker: an alias is set with a topic, used with an empty
/// topic, redefined; subscribers get the full topic and no alias.
#[tokio::test]
async fn topic_alias_client_to_broker_v5() {
    let (_broker, addr) = start_default().await;
    let mut sub = Client::connect(addr, V5, "tac-sub", true).await;
    sub.subscribe("tac/#", QoS::AtLeastOnce).await;
    let mut old = Client::connect(addr, V3_1_1, "tac-311", true).await;
    old.subscribe("tac/#", QoS::AtLeastOnce).await;

    let (mut publisher, ack) =
        Client::connect_with(addr, connect_packet(V5, "tac-pub", true)).await;
    assert_eq!(ack.properties.topic_alias_maximum, Some(64));
    publisher.publish_packet(aliased("tac/x", "1", 1)).await;
    publisher.publish_packet(aliased("", "2", 1)).await;
    publisher.publish_packet(aliased("tac/y", "3", 1)).await;
    publisher.publish_packet(aliased("", "4", 1)).await;
    publisher.publish_packet(aliased("tac/z", "5", 64)).await;
    publisher.publish_packet(aliased("", "6", 64)).await;
    publisher.publish_packet(aliased("", "7", 1)).await;
    let want = [
        ("tac/x", "1"),
        ("tac/x", "2"),
        ("tac/y", "3"),
        ("tac/y", "4"),
        ("tac/z", "5"),
        ("tac/z", "6"),
        ("tac/y", "7"),
    ];
    for c in [&mut sub, &mut old] {
        for (t, pl) in want {
            let p = c.recv_publish().await;
            assert_eq!((&*p.topic, text(&p)), (t, pl));
            assert_eq!(p.properties.topic_alias, None);
        }
        c.expect_nothing().await;
    }
}

/// An alias that was never set is a protocol error (0x82), and aliases do
/// not survive the connection [MQTT-3.3.2-7].
#[tokio::test]
async fn topic_alias_unknown_is_protocol_error_v5() {
    let (_broker, addr) = start_default().await;
    let (mut publisher, _) = Client::connect_v5_persistent(addr, "tau-pub", true, 60).await;
    publisher.publish_packet(aliased("tau/x", "1", 3)).await;
    publisher.disconnect().await;
    let (mut publisher, ack) = Client::connect_v5_persistent(addr, "tau-pub", false, 60).await;
    assert!(ack.session_present);
    let mut p = aliased("", "2", 3);
    p.packet_id = Some(pid(1));
    publisher.send(p).await;
    publisher.expect_disconnect(ReasonCode::ProtocolError).await;
}

/// Broker to client: aliases are used when the client announces a Topic
/// Alias Maximum, never above it, and resolve to the right topics.
#[tokio::test]
async fn topic_alias_broker_to_client_v5() {
    let (_broker, addr) = start_default().await;
    let mut c = connect_packet(V5, "tab-sub", true);
    c.properties.topic_alias_maximum = Some(2);
    let (mut sub, _) = Client::connect_with(addr, c).await;
    sub.subscribe("tab/#", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(addr, V5, "tab-pub", true).await;
    let topics = [
        "tab/a", "tab/a", "tab/b", "tab/a", "tab/b", "tab/c", "tab/c", "tab/a",
    ];
    for (i, t) in topics.iter().enumerate() {
        publisher
            .publish(t, &i.to_string(), QoS::AtLeastOnce, false)
            .await;
    }
    let mut aliases: HashMap<u16, String> = HashMap::new();
    let mut alias_only = 0;
    for (i, t) in topics.iter().enumerate() {
        let p = sub.recv_publish().await;
        assert_eq!(text(&p), i.to_string());
        let topic = match p.properties.topic_alias {
            Some(a) => {
                let a = a.get();
                assert!((1..=2).contains(&a), "alias {a} above the maximum 2");
                if p.topic.is_empty() {
                    alias_only += 1;
                    aliases
                        .get(&a)
                        .cloned()
                        .expect("alias used before it was set")
                } else {
                    aliases.insert(a, p.topic.to_string());
                    p.topic.to_string()
                }
            }
            None => p.topic.to_string(),
        };
        assert_eq!(topic, *t, "message {i}");
    }
    assert!(alias_only > 0, "the broker never used an alias");
    sub.expect_nothing().await;

    // A client that does not announce a maximum gets no aliases.
    let mut plain = Client::connect(addr, V5, "tab-plain", true).await;
    plain.subscribe("tab/#", QoS::AtLeastOnce).await;
    for _ in 0..2 {
        publisher
            .publish("tab/a", "x", QoS::AtLeastOnce, false)
            .await;
        let p = plain.recv_publish().await;
        assert_eq!((&*p.topic, p.properties.topic_alias), ("tab/a", None));
        sub.recv_publish().await;
    }
}

/// Broker-to-client aliases do not survive the connection [MQTT-3.3.2-7]:
/// after a session resumes, the topic is sent again.
#[tokio::test]
async fn topic_alias_broker_to_client_reset_on_reconnect_v5() {
    let (_broker, addr) = start_default().await;
    let connect = || {
        let mut c = connect_packet(V5, "tar-sub", false);
        c.properties.topic_alias_maximum = Some(4);
        c.properties.session_expiry_interval = Some(60);
        c
    };
    let (mut sub, _) = Client::connect_with(addr, connect()).await;
    sub.subscribe("tar/#", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(addr, V5, "tar-pub", true).await;
    publisher
        .publish("tar/a", "1", QoS::AtLeastOnce, false)
        .await;
    let p = sub.recv_publish().await;
    assert_eq!(&*p.topic, "tar/a");
    sub.disconnect().await;
    publisher
        .publish("tar/a", "2", QoS::AtLeastOnce, false)
        .await;
    let (mut sub, ack) = Client::connect_with(addr, connect()).await;
    assert!(ack.session_present);
    let p = sub.recv_publish().await;
    assert_eq!((&*p.topic, text(&p)), ("tar/a", "2"));
    publisher
        .publish("tar/a", "3", QoS::AtLeastOnce, false)
        .await;
    let p = sub.recv_publish().await;
    assert_eq!(text(&p), "3");
    assert!(
        !p.topic.is_empty() || p.properties.topic_alias.is_some(),
        "{p:?}"
    );
}

// ----- properties -----------------------------------------------------------------------------

fn request_properties() -> Props<PublishProperties> {
    let mut props = PublishProperties::default();
    props.payload_format_indicator = Some(PayloadFormat::Utf8);
    props.response_topic = Some(s("reply/to/me"));
    props.correlation_data = Some(Bytes::from_static(b"\x00\x01corr\xff"));
    props.content_type = Some(s("application/json"));
    props.user_properties = vec![
        UserProperty::new(s("b"), s("2")),
        UserProperty::new(s("a"), s("1")),
        UserProperty::new(s("b"), s("3")),
        UserProperty::new(s("empty"), s("")),
    ]
    .into();
    props.into()
}

/// Response Topic, Correlation Data, Content Type, Payload Format Indicator
/// and User Properties (order and duplicates) reach subscribers unchanged
/// [MQTT-3.3.2-15..20], on live, retained and QoS 0/1/2 deliveries.
#[tokio::test]
async fn request_response_and_user_properties_v5() {
    let (_broker, addr) = start_default().await;
    let mut sub = Client::connect(addr, V5, "rr-sub", true).await;
    sub.subscribe("rr/#", QoS::ExactlyOnce).await;
    let mut publisher = Client::connect(addr, V5, "rr-pub", true).await;
    for q in QOS {
        let mut p = publish_packet("rr/req", "{}", q, false);
        p.properties = request_properties();
        publisher.publish_packet(p).await;
        let got = sub.recv_publish().await;
        assert_eq!(got.qos, q);
        assert_eq!(got.properties, request_properties());
        assert_eq!(text(&got), "{}");
    }
    // Kept with a retained message.
    let mut p = publish_packet("rr/ret", "{}", QoS::AtLeastOnce, true);
    p.properties = request_properties();
    publisher.publish_packet(p).await;
    assert_eq!(sub.recv_publish().await.properties, request_properties());
    let mut late = Client::connect(addr, V5, "rr-late", true).await;
    late.subscribe("rr/ret", QoS::AtLeastOnce).await;
    let got = late.recv_publish().await;
    assert!(got.retain);
    assert_eq!(got.properties, request_properties());

    // A responder answers on the Response Topic with the Correlation Data.
    let mut requester = Client::connect(addr, V5, "rr-requester", true).await;
    requester.subscribe("reply/to/me", QoS::AtLeastOnce).await;
    let mut reply = publish_packet(
        got.properties.response_topic.as_deref().unwrap(),
        "answer",
        QoS::AtLeastOnce,
        false,
    );
    reply.properties.to_mut().correlation_data = got.properties.correlation_data.clone();
    late.publish_packet(reply).await;
    let r = requester.recv_publish().await;
    assert_eq!(text(&r), "answer");
    assert_eq!(
        r.properties.correlation_data,
        request_properties().correlation_data
    );
}

// ----- mixing versions ------------------------------------------------------------------------

/// A 3.1.1 publisher to a 5.0 subscriber and a 5.0 publisher (with
/// properties) to a 3.1.1 subscriber, at every QoS.
#[tokio::test]
async fn v311_to_v5_and_back() {
    let (_broker, addr) = start_default().await;
    let mut v3 = Client::connect(addr, V3_1_1, "mix-3", true).await;
    v3.subscribe("mix/to3", QoS::ExactlyOnce).await;
    let mut v5 = Client::connect(addr, V5, "mix-5", true).await;
    v5.subscribe("mix/to5", QoS::ExactlyOnce).await;
    for q in QOS {
        // 3.1.1 -> 5.0
        v3.publish("mix/to5", "from3", q, false).await;
        let p = v5.recv_publish().await;
        assert_eq!((&*p.topic, text(&p), p.qos), ("mix/to5", "from3", q));
        assert_eq!(p.properties, Props::none());
        // 5.0 (with properties) -> 3.1.1: the properties cannot be carried
        // and must not leak into the payload.
        let mut pkt = publish_packet("mix/to3", "from5", q, false);
        pkt.properties = request_properties();
        pkt.properties.to_mut().message_expiry_interval = Some(3600);
        v5.publish_packet(pkt).await;
        let p = v3.recv_publish().await;
        assert_eq!((&*p.topic, text(&p), p.qos), ("mix/to3", "from5", q));
    }
    // Retained across versions.
    v5.publish("mix/to3", "kept5", QoS::AtLeastOnce, true).await;
    let p = v3.recv_publish().await;
    assert_eq!((text(&p), p.retain), ("kept5", false));
    let mut late3 = Client::connect(addr, V3_1_1, "mix-late3", true).await;
    late3.subscribe("mix/to3", QoS::AtLeastOnce).await;
    let p = late3.recv_publish().await;
    assert_eq!((text(&p), p.retain), ("kept5", true));
    v3.expect_nothing().await;
    v5.expect_nothing().await;
}

/// Unsubscribing stops delivery (UNSUBACK; v5 reason codes per filter).
#[tokio::test]
async fn unsubscribe_stops_delivery() {
    for version in [V3_1_1, V5] {
        let (_broker, addr) = start_default().await;
        let mut sub = Client::connect(addr, version, "un-sub", true).await;
        sub.subscribe("un/#", QoS::AtLeastOnce).await;
        let mut publisher = Client::connect(addr, version, "un-pub", true).await;
        publisher
            .publish("un/a", "1", QoS::AtLeastOnce, false)
            .await;
        assert_eq!(text(&sub.recv_publish().await), "1");
        let ack = sub.unsubscribe("un/#").await;
        if version.is_v5() {
            assert_eq!(ack.reasons, vec![ReasonCode::Success]);
        } else {
            assert!(ack.reasons.is_empty());
        }
        publisher
            .publish("un/a", "2", QoS::AtLeastOnce, false)
            .await;
        sub.expect_nothing().await;
        let ack = sub.unsubscribe("un/#").await;
        if version.is_v5() {
            assert_eq!(ack.reasons, vec![ReasonCode::NoSubscriptionExisted]);
        }
    }
}

/// An invalid topic filter is refused in SUBACK (5.0: 0x8F; 3.1.1: 0x80)
/// and the valid filters of the same SUBSCRIBE are granted.
#[tokio::test]
async fn invalid_topic_filters_refused() {
    for version in [V3_1_1, V5] {
        let (_broker, addr) = start_default().await;
        let mut sub = Client::connect(addr, version, "if-sub", true).await;
        // Our encoder refuses these filters: written by hand.
        let id = sub
            .send_raw_subscribe(&[
                ("if/#/x", 1),
                ("if/ok", 1),
                ("if/a+", 1),
                ("$share/g+/x", 1),
            ])
            .await;
        let ack = sub
            .recv_until(|p| match p {
                Packet::SubAck(a) if a.packet_id == id => Some(a.clone()),
                _ => None,
            })
            .await;
        let bad = if version.is_v5() {
            ReasonCode::TopicFilterInvalid
        } else {
            ReasonCode::UnspecifiedError
        };
        assert_eq!(
            ack.reasons,
            vec![bad, ReasonCode::GrantedQoS1, bad, bad],
            "{version}"
        );
        let mut publisher = Client::connect(addr, version, "if-pub", true).await;
        publisher
            .publish("if/ok", "x", QoS::AtLeastOnce, false)
            .await;
        assert_eq!(text(&sub.recv_publish().await), "x");
    }
}

/// In-process clients of the embedding program and network clients see
/// each other's messages.
#[tokio::test]
async fn in_process_and_network_clients() {
    let (broker, addr) = start_default().await;
    let mut local = broker.subscribe("ip/#".parse().unwrap(), QoS::AtLeastOnce);
    let mut net = Client::connect(addr, V5, "ip-net", true).await;
    net.subscribe("ip/#", QoS::AtLeastOnce).await;
    net.publish("ip/from-net", "n", QoS::AtLeastOnce, false)
        .await;
    let m = local.recv().await.unwrap();
    assert_eq!(
        (m.topic.as_str(), &m.payload[..]),
        ("ip/from-net", &b"n"[..])
    );
    assert_eq!(text(&net.recv_publish().await), "n");
    broker.publish(
        "ip/from-local".parse().unwrap(),
        "l",
        QoS::AtLeastOnce,
        false,
    );
    let p = net.recv_publish().await;
    assert_eq!(
        (&*p.topic, text(&p), p.qos),
        ("ip/from-local", "l", QoS::AtLeastOnce)
    );
    assert_eq!(local.recv().await.unwrap().payload, "l");
}

/// SUBSCRIBE to a filter the session already has replaces the subscription
/// (new QoS), it does not add a second one [MQTT-3.8.4-3].
#[tokio::test]
async fn resubscribe_replaces_subscription() {
    for version in [V3_1_1, V5] {
        let (broker, addr) = start_default().await;
        let mut sub = Client::connect(addr, version, "rs-sub", true).await;
        sub.subscribe("rs/t", QoS::AtMostOnce).await;
        sub.subscribe("rs/t", QoS::ExactlyOnce).await;
        assert_eq!(broker.stats().subscriptions, 1);
        let mut publisher = Client::connect(addr, version, "rs-pub", true).await;
        publisher
            .publish("rs/t", "x", QoS::ExactlyOnce, false)
            .await;
        let p = sub.recv_publish().await;
        assert_eq!(p.qos, QoS::ExactlyOnce);
        sub.expect_nothing().await;
        sub.subscribe("rs/t", QoS::AtLeastOnce).await;
        publisher
            .publish("rs/t", "y", QoS::ExactlyOnce, false)
            .await;
        assert_eq!(sub.recv_publish().await.qos, QoS::AtLeastOnce);
        sub.expect_nothing().await;
    }
}

/// A PUBLISH to a topic name with a wildcard is refused (5.0: DISCONNECT
/// 0x90), so is a client PUBLISH carrying a Subscription Identifier (0x82)
/// [MQTT-3.3.2-2], [MQTT-3.3.4-6].
#[tokio::test]
async fn invalid_publish_refused() {
    let (_broker, addr) = start_default().await;
    for version in [V3_1_1, V5] {
        let mut c = Client::connect(addr, version, "ip-bad", true).await;
        // The encoder refuses such a topic: raw bytes.
        if version.is_v5() {
            c.send_bytes(b"\x30\x08\x00\x04ip/+\x00x").await;
        } else {
            c.send_bytes(b"\x30\x07\x00\x04ip/+x").await;
        }
        let got = c.expect_closed().await;
        if version.is_v5() {
            assert!(
                matches!(got.as_slice(), [Packet::Disconnect(d)] if d.reason == ReasonCode::TopicNameInvalid),
                "{got:?}"
            );
        } else {
            assert!(got.is_empty(), "{got:?}");
        }
    }
    let mut c = Client::connect(addr, V5, "ip-sid", true).await;
    let mut p = publish_packet("ip/t", "x", QoS::AtMostOnce, false);
    p.properties.to_mut().subscription_identifiers = vec![sub_id(1)].into();
    c.send(p).await;
    c.expect_disconnect(ReasonCode::ProtocolError).await;
}

/// No Local on a shared subscription is a Protocol Error [MQTT-3.8.3-4]: the
/// connection is closed, with DISCONNECT 0x82 [MQTT-4.13.1-1].
#[tokio::test]
async fn no_local_on_shared_subscription_is_protocol_error_v5() {
    let (_broker, addr) = start_default().await;
    let mut c = Client::connect(addr, V5, "nls", true).await;
    // QoS 1 and No Local (bit 2), which our encoder refuses to write.
    c.send_raw_subscribe(&[("$share/g/nls/t", 0x05)]).await;
    c.expect_disconnect(ReasonCode::ProtocolError).await;
}
