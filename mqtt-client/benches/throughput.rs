//! Publish throughput of one client through Mosquitto, side by side with
//! rumqttc 0.25's `AsyncClient`, in the same run, with the same inflight
//! window, payload, topic, runtime and TCP_NODELAY.
//!
//! - QoS 1: N messages; the clock stops at the last PUBACK.
//! - QoS 0: N messages then one QoS 1 marker; the clock stops at the
//!   marker's PUBACK (Mosquitto handles a connection's packets in order, so
//!   every QoS 0 message has been processed by then).
//!
//! Run with `cargo bench -p mqtt-client --bench throughput`. Environment:
//! `BENCH_N` (messages per run, default 100000), `BENCH_ROUNDS` (default 3;
//! the best round of each is reported), `BENCH_PAYLOAD` (bytes, default 64),
//! `BENCH_INFLIGHT` (default 100), `BENCH_QOS` (`0` or `1`: only that one),
//! `BENCH_ONLY` (`ours` or `rumqttc`: only that client, for profiling).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::num::NonZeroU16;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Mosquitto;
use mqtt_client::{Client, ClientOptions, Message, ProtocolVersion, QoS, TopicName};

const TOPIC: &str = "bench/throughput";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn nodelay() -> bool {
    std::env::var("BENCH_NODELAY").map_or(true, |v| v != "0")
}

async fn ours(port: u16, n: usize, qos: QoS, payload: &Bytes, inflight: u16) -> Duration {
    let mut o = ClientOptions::new("127.0.0.1", port);
    o.tcp_nodelay(nodelay());
    o.protocol(ProtocolVersion::V3_1_1)
        .client_id("bench-ours")
        .inflight(NonZeroU16::new(inflight).unwrap());
    let client = Client::connect(o).await.unwrap();
    let topic = TopicName::try_from(TOPIC).unwrap();
    let start = Instant::now();
    let mut last = None;
    for _ in 0..n {
        let d = client
            .enqueue(Message::new(topic.clone(), payload.clone(), qos, false))
            .await
            .unwrap();
        // Deliveries complete in order for one QoS: awaiting the last one
        // is enough; the others are dropped (which does not cancel them).
        last = Some(d);
    }
    if qos == QoS::AtMostOnce {
        last = Some(
            client
                .enqueue(Message::new(
                    topic.clone(),
                    payload.clone(),
                    QoS::AtLeastOnce,
                    false,
                ))
                .await
                .unwrap(),
        );
    }
    last.unwrap().await.unwrap();
    let t = start.elapsed();
    client.disconnect().await.unwrap();
    t
}

async fn rumqttc(port: u16, n: usize, qos: QoS, payload: &Bytes, inflight: u16) -> Duration {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet};
    let mut o = MqttOptions::new("bench-rumqttc", "127.0.0.1", port);
    o.set_inflight(inflight)
        .set_max_packet_size(1 << 20, 1 << 20)
        .set_keep_alive(Duration::from_secs(60));
    let (client, mut eventloop) = AsyncClient::new(o, 10_000);
    let mut net = eventloop.network_options();
    net.set_tcp_nodelay(nodelay());
    eventloop.set_network_options(net);
    // Connect first, as ours does.
    loop {
        if let Event::Incoming(Packet::ConnAck(_)) = eventloop.poll().await.unwrap() {
            break;
        }
    }
    let want = if qos == QoS::AtMostOnce { 1 } else { n };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let driver = tokio::spawn(async move {
        let mut acks = 0;
        let mut tx = Some(tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acks += 1;
                    if acks == want {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(Instant::now());
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    let rq = match qos {
        QoS::AtMostOnce => rumqttc::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::QoS::ExactlyOnce,
    };
    let start = Instant::now();
    for _ in 0..n {
        client
            .publish(TOPIC, rq, false, payload.to_vec())
            .await
            .unwrap();
    }
    if qos == QoS::AtMostOnce {
        client
            .publish(TOPIC, rumqttc::QoS::AtLeastOnce, false, payload.to_vec())
            .await
            .unwrap();
    }
    let end = rx.await.unwrap();
    let t = end - start;
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), driver).await;
    t
}

fn main() {
    // `cargo test --benches` runs this with `--bench` absent: do nothing
    // then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n = env("BENCH_N", 100_000);
    let rounds = env("BENCH_ROUNDS", 3).max(1);
    let size = env("BENCH_PAYLOAD", 64);
    let inflight = env("BENCH_INFLIGHT", 100) as u16;
    let payload = Bytes::from(vec![b'x'; size]);
    // BENCH_BROKER_CONFIG: extra mosquitto.conf lines (e.g.
    // "set_tcp_nodelay true").
    let extra = std::env::var("BENCH_BROKER_CONFIG").unwrap_or_default();
    let broker = Mosquitto::with_config(&extra.replace("\\n", "\n"));
    let port = broker.port;
    let threads = env("BENCH_THREADS", 0);
    let rt = if threads == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .unwrap()
    };
    println!(
        "publish throughput through Mosquitto 2.0 (127.0.0.1), MQTT 3.1.1, {n} messages of {size} bytes, inflight window {inflight}, best of {rounds}"
    );
    println!(
        "{:<6} {:>16} {:>16} {:>7}",
        "qos", "mqtt-client", "rumqttc 0.25", "ratio"
    );
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let qos_list = match std::env::var("BENCH_QOS").as_deref() {
        Ok("0") => vec![QoS::AtMostOnce],
        Ok("1") => vec![QoS::AtLeastOnce],
        _ => vec![QoS::AtMostOnce, QoS::AtLeastOnce],
    };
    for qos in qos_list {
        let (mut best_ours, mut best_theirs) = (Duration::MAX, Duration::MAX);
        for _ in 0..rounds {
            if only != "ours" {
                let t = rt.block_on(rumqttc(port, n, qos, &payload, inflight));
                best_theirs = best_theirs.min(t);
            }
            if only != "rumqttc" {
                let t = rt.block_on(ours(port, n, qos, &payload, inflight));
                best_ours = best_ours.min(t);
            }
        }
        let rate = |d: Duration| n as f64 / d.as_secs_f64();
        println!(
            "{:<6} {:>12.0} m/s {:>12.0} m/s {:>6.2}x",
            format!("QoS {}", qos as u8),
            rate(best_ours),
            rate(best_theirs),
            rate(best_ours) / rate(best_theirs)
        );
    }
}
