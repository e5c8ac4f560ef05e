//! QoS 1 and QoS 2 round trips through a client and a server session wired
//! in memory (no codec, no I/O): the cost of the protocol logic per message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Instant;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mqtt_codec::{ProtocolVersion, QoS, Utf8Bytes};
use mqtt_session::{
    Accept, ClientConfig, ClientSession, Event, Message, ServerConfig, ServerSession,
};

struct Pair {
    now: Instant,
    client: ClientSession,
    server: ServerSession,
    delivered: usize,
    completed: usize,
}

impl Pair {
    fn new(v: ProtocolVersion) -> Self {
        let now = Instant::now();
        let mut p = Self {
            now,
            client: ClientSession::new(ClientConfig::new(v, Utf8Bytes::from_static("bench"))),
            server: ServerSession::new(ServerConfig::default(), now),
            delivered: 0,
            completed: 0,
        };
        p.client.connect(now).unwrap();
        p.run();
        assert!(p.client.is_connected());
        p
    }

    fn run(&mut self) {
        loop {
            let mut moved = false;
            while let Some(pkt) = self.client.poll_transmit() {
                self.server.handle_packet(self.now, pkt);
                moved = true;
            }
            while let Some(e) = self.server.poll_event() {
                match e {
                    Event::Connect(_) => self.server.accept(self.now, Accept::new()).unwrap(),
                    Event::Message { .. } => self.delivered += 1,
                    _ => {}
                }
            }
            while let Some(pkt) = self.server.poll_transmit() {
                self.client.handle_packet(self.now, pkt);
                moved = true;
            }
            while let Some(e) = self.client.poll_event() {
                if matches!(e, Event::Delivered { .. }) {
                    self.completed += 1;
                }
            }
            if !moved {
                return;
            }
        }
    }
}

fn round_trips(c: &mut Criterion) {
    const N: usize = 1_000;
    let mut g = c.benchmark_group("session_round_trip");
    g.throughput(Throughput::Elements(N as u64));
    for v in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let name = format!("{v}/qos{}", qos as u8);
            let msg = Message::new(
                "bench/topic".parse().unwrap(),
                Bytes::from_static(&[0u8; 64]),
                qos,
                false,
            );
            g.bench_function(&name, |b| {
                b.iter_batched_ref(
                    || Pair::new(v),
                    |pair| {
                        for _ in 0..N {
                            pair.client.publish(pair.now, msg.clone()).unwrap();
                            pair.run();
                        }
                        assert_eq!((pair.delivered, pair.completed), (N, N));
                    },
                    BatchSize::LargeInput,
                );
            });
        }
    }
    g.finish();
}

criterion_group!(benches, round_trips);
criterion_main!(benches);
