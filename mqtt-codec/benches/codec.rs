#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]
//! Throughput of `mqtt-codec` against rumqttc's `mqttbytes` (v4 for 3.1.1,
//! v5 for 5.0), on the same packets and, for decoding, on the very same bytes.
//!
//! Every group holds an `ours` and a `rumqttc` line, so each ratio is measured
//! in one run. Decoding takes `N` packets off one buffer (cloned outside the
//! timing); encoding appends `N` packets to a reused, cleared buffer.
//! Throughput is in packets (elements).
//!
//! Before timing, `check_*` asserts that each side decodes the other's bytes
//! to the same packet, so that the comparison is apples to apples.
//!
//! ```text
//! cargo bench -p mqtt-codec --bench codec -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;
use std::num::{NonZeroU16, NonZeroU32};

use bytes::{Bytes, BytesMut};
use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main,
};
use mqtt_codec::{
    Connect, Decoder, Encoder, Packet, PacketId, ProtocolVersion, PubAck, PubComp, PubRec, PubRel,
    Publish, PublishTopic, QoS, RetainHandling, Subscribe, SubscribeFilter, SubscriptionId,
    SubscriptionOptions, TopicName, UserProperty, Utf8Bytes, Will,
};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;

/// Packets per iteration of the single-packet-kind groups.
const N: usize = 1000;
/// Packets in the mixed stream.
const STREAM_LEN: usize = 10_000;

const TOPIC: &str = "sensors/building-7/floor-3/room-12/temperature";

// ---------------------------------------------------------------------------
// rumqttc, one type over both versions
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // boxing would add a load to the timed writes
enum Theirs {
    V4(v4::Packet),
    V5(v5::Packet),
}

impl Theirs {
    fn write(&self, out: &mut BytesMut) -> usize {
        match self {
            Self::V4(p) => p.write(out, usize::MAX).unwrap(),
            Self::V5(p) => p.write(out, None).unwrap(),
        }
    }

    fn encode(&self) -> BytesMut {
        let mut out = BytesMut::new();
        self.write(&mut out);
        out
    }

    /// Decodes all of `buf` with the same version as `self`.
    fn read_all(&self, buf: &mut BytesMut) -> Vec<Self> {
        let mut v = Vec::new();
        while !buf.is_empty() {
            v.push(match self {
                Self::V4(_) => Self::V4(v4::Packet::read(buf, usize::MAX).unwrap()),
                Self::V5(_) => Self::V5(v5::Packet::read(buf, None).unwrap()),
            });
        }
        v
    }
}

fn v4_qos(q: QoS) -> rumqttc::QoS {
    match q {
        QoS::AtMostOnce => rumqttc::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::QoS::ExactlyOnce,
    }
}

fn v5_qos(q: QoS) -> rumqttc::v5::mqttbytes::QoS {
    match q {
        QoS::AtMostOnce => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
    }
}

fn s(v: &str) -> Utf8Bytes {
    Utf8Bytes::try_from(v).unwrap()
}

// ---------------------------------------------------------------------------
// The packets, built identically for both codecs
// ---------------------------------------------------------------------------

/// A PUBLISH; at 5.0 with `props` it carries a message expiry, a content type
/// and one user property.
fn publish(
    v: ProtocolVersion,
    topic: &str,
    qos: QoS,
    id: u16,
    payload: Bytes,
    props: bool,
) -> (Packet, Theirs) {
    let mut ours = Publish::new(PublishTopic::try_from(topic).unwrap(), payload.clone());
    ours.qos = qos;
    ours.packet_id = if qos == QoS::AtMostOnce {
        None
    } else {
        PacketId::new(id)
    };
    let pkid = if qos == QoS::AtMostOnce { 0 } else { id };
    if props {
        ours.properties.to_mut().message_expiry_interval = Some(3600);
        ours.properties.to_mut().content_type = Some(s("application/json"));
        ours.properties
            .to_mut()
            .user_properties
            .push(UserProperty::new(s("trace-id"), s("4bf92f3577b34da6")));
    }
    let theirs = if v.is_v5() {
        let properties = props.then(|| v5::PublishProperties {
            message_expiry_interval: Some(3600),
            content_type: Some("application/json".into()),
            user_properties: vec![("trace-id".into(), "4bf92f3577b34da6".into())],
            ..Default::default()
        });
        let mut p = v5::Publish::new(topic, v5_qos(qos), payload, properties);
        p.pkid = pkid;
        Theirs::V5(v5::Packet::Publish(p))
    } else {
        assert!(!props);
        let mut p = v4::Publish::from_bytes(topic, v4_qos(qos), payload);
        p.pkid = pkid;
        Theirs::V4(v4::Packet::Publish(p))
    };
    (Packet::Publish(ours), theirs)
}

fn payload(len: usize) -> Bytes {
    (0..len)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz"[i % 26])
        .collect::<Vec<u8>>()
        .into()
}

/// A 5.0 CONNECT with properties, a will with will properties, and
/// credentials.
fn connect_v5() -> (Packet, Theirs) {
    let mut ours = Connect::new(ProtocolVersion::V5, s("bench-client-0001"));
    ours.keep_alive = 30;
    let props = &mut ours.properties;
    props.session_expiry_interval = Some(3600);
    props.receive_maximum = NonZeroU16::new(100);
    props.maximum_packet_size = NonZeroU32::new(1 << 20);
    props.topic_alias_maximum = Some(16);
    props.user_properties = vec![UserProperty::new(s("region"), s("eu-west-1"))].into();
    let mut will = Will::new(
        TopicName::from_static("clients/bench-client-0001/status").unwrap(),
        Bytes::from_static(b"offline"),
    );
    will.qos = QoS::AtLeastOnce;
    will.retain = true;
    let wp = &mut will.properties;
    wp.will_delay_interval = Some(30);
    wp.message_expiry_interval = Some(600);
    wp.content_type = Some(s("text/plain"));
    wp.user_properties = vec![UserProperty::new(s("reason"), s("unexpected"))].into();
    ours.will = Some(will);
    ours.username = Some(s("bench-user"));
    ours.password = Some(Bytes::from_static(b"s3cr3t-passw0rd"));

    let props = v5::ConnectProperties {
        session_expiry_interval: Some(3600),
        receive_maximum: Some(100),
        max_packet_size: Some(1 << 20),
        topic_alias_max: Some(16),
        user_properties: vec![("region".into(), "eu-west-1".into())],
        ..v5::ConnectProperties::new()
    };
    let connect = v5::Connect {
        keep_alive: 30,
        client_id: "bench-client-0001".into(),
        clean_start: true,
        properties: Some(props),
    };
    let will = v5::LastWill::new(
        "clients/bench-client-0001/status",
        "offline",
        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        true,
        Some(v5::LastWillProperties {
            delay_interval: Some(30),
            payload_format_indicator: None,
            message_expiry_interval: Some(600),
            content_type: Some("text/plain".into()),
            response_topic: None,
            correlation_data: None,
            user_properties: vec![("reason".into(), "unexpected".into())],
        }),
    );
    let login = v5::Login::new("bench-user", "s3cr3t-passw0rd");
    (
        Packet::Connect(Box::new(ours)),
        Theirs::V5(v5::Packet::Connect(connect, Some(will), Some(login))),
    )
}

/// A SUBSCRIBE with `n` filters; at 5.0 with non-default options and a
/// subscription identifier.
fn subscribe(v: ProtocolVersion, id: u16, n: usize) -> (Packet, Theirs) {
    let filters: Vec<(String, QoS)> = (0..n)
        .map(|i| {
            let f = if i % 2 == 0 {
                format!("devices/dev-{i:04}/+/status")
            } else {
                format!("alerts/zone-{i}/#")
            };
            (
                f,
                [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce][i % 3],
            )
        })
        .collect();
    let v5_opts = |i: usize| v.is_v5() && i % 2 == 1;
    let mut ours = Subscribe {
        packet_id: PacketId::new(id).unwrap(),
        filters: filters
            .iter()
            .enumerate()
            .map(|(i, (f, q))| {
                let mut options = SubscriptionOptions::new(*q);
                if v5_opts(i) {
                    options.no_local = true;
                    options.retain_as_published = true;
                    options.retain_handling = RetainHandling::SendIfNew;
                }
                SubscribeFilter {
                    filter: s(f),
                    options,
                }
            })
            .collect(),
        properties: Default::default(),
    };
    if v.is_v5() && n > 3 {
        ours.properties.to_mut().subscription_identifier = SubscriptionId::new(7);
    }
    let theirs = if v.is_v5() {
        let fs = filters.iter().enumerate().map(|(i, (f, q))| v5::Filter {
            path: f.clone(),
            qos: v5_qos(*q),
            nolocal: v5_opts(i),
            preserve_retain: v5_opts(i),
            retain_forward_rule: if v5_opts(i) {
                v5::RetainForwardRule::OnNewSubscribe
            } else {
                v5::RetainForwardRule::OnEverySubscribe
            },
        });
        let props = (n > 3).then(|| v5::SubscribeProperties {
            id: Some(7),
            user_properties: vec![],
        });
        let mut p = v5::Subscribe::new_many(fs, props);
        p.pkid = id;
        Theirs::V5(v5::Packet::Subscribe(p))
    } else {
        let mut p = v4::Subscribe::new_many(
            filters
                .iter()
                .map(|(f, q)| v4::SubscribeFilter::new(f.clone(), v4_qos(*q))),
        );
        p.pkid = id;
        Theirs::V4(v4::Packet::Subscribe(p))
    };
    (Packet::Subscribe(ours), theirs)
}

/// The mixed stream: QoS 0/1/2 publishes of varied sizes with their acks,
/// PINGREQ and SUBSCRIBE, from a fixed pseudo-random sequence.
fn mixed_stream(v: ProtocolVersion) -> Vec<(Packet, Theirs)> {
    const SIZES: [usize; 8] = [0, 8, 32, 64, 200, 512, 1500, 4096];
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut out = Vec::with_capacity(STREAM_LEN + 4);
    let mut id: u16 = 0;
    let payloads: Vec<Bytes> = SIZES.iter().map(|&n| payload(n)).collect();
    while out.len() < STREAM_LEN {
        let r = next();
        let roll = r % 100;
        let topic = format!(
            "fleet/truck-{}/telemetry/{}",
            r % 97,
            ["gps", "engine", "cargo"][(r % 3) as usize]
        );
        let body = payloads[((r >> 8) % SIZES.len() as u64) as usize].clone();
        // A few 5.0 publishes carry properties.
        let props = v.is_v5() && (r >> 16) % 4 == 0;
        id = id % u16::MAX + 1;
        let pid = PacketId::new(id).unwrap();
        let ack = |ours: Packet, v4p: v4::Packet, v5p: v5::Packet| {
            (
                ours,
                if v.is_v5() {
                    Theirs::V5(v5p)
                } else {
                    Theirs::V4(v4p)
                },
            )
        };
        match roll {
            0..=44 => out.push(publish(v, &topic, QoS::AtMostOnce, 0, body, props)),
            45..=69 => {
                out.push(publish(v, &topic, QoS::AtLeastOnce, id, body, props));
                out.push(ack(
                    PubAck::new(pid).into(),
                    v4::Packet::PubAck(v4::PubAck::new(id)),
                    v5::Packet::PubAck(v5::PubAck::new(id, None)),
                ));
            }
            70..=84 => {
                out.push(publish(v, &topic, QoS::ExactlyOnce, id, body, props));
                out.push(ack(
                    PubRec::new(pid).into(),
                    v4::Packet::PubRec(v4::PubRec::new(id)),
                    v5::Packet::PubRec(v5::PubRec::new(id, None)),
                ));
                out.push(ack(
                    PubRel::new(pid).into(),
                    v4::Packet::PubRel(v4::PubRel::new(id)),
                    v5::Packet::PubRel(v5::PubRel::new(id, None)),
                ));
                out.push(ack(
                    PubComp::new(pid).into(),
                    v4::Packet::PubComp(v4::PubComp::new(id)),
                    v5::Packet::PubComp(v5::PubComp::new(id, None)),
                ));
            }
            85..=94 => out.push(ack(
                Packet::PingReq,
                v4::Packet::PingReq,
                v5::Packet::PingReq(v5::PingReq),
            )),
            _ => out.push(subscribe(v, id, 1 + (r >> 24) as usize % 3)),
        }
    }
    out.truncate(STREAM_LEN);
    out
}

// ---------------------------------------------------------------------------
// Equivalence checks, run once before timing
// ---------------------------------------------------------------------------

fn encode_ours(v: ProtocolVersion, p: &Packet) -> BytesMut {
    let mut b = BytesMut::new();
    Encoder::new(v).encode(p, &mut b).unwrap();
    b
}

fn decode_ours(v: ProtocolVersion, mut buf: BytesMut) -> Vec<Packet> {
    let mut dec = Decoder::with_version(v);
    let mut out = Vec::new();
    while let Some(p) = dec.decode(&mut buf).unwrap() {
        out.push(p);
    }
    assert!(buf.is_empty());
    out
}

/// Each codec decodes the other's bytes to the packet it was built from,
/// and both sizes agree. Returns our encoding.
fn check_pair(v: ProtocolVersion, ours: &Packet, theirs: &Theirs) -> BytesMut {
    let our_bytes = encode_ours(v, ours);
    let their_bytes = theirs.encode();
    assert_eq!(
        our_bytes.len(),
        their_bytes.len(),
        "sizes differ for {ours:?}"
    );
    assert_eq!(
        decode_ours(v, their_bytes),
        vec![ours.clone()],
        "ours cannot read rumqttc's bytes"
    );
    assert_eq!(
        theirs.read_all(&mut our_bytes.clone()),
        vec![theirs.clone()],
        "rumqttc cannot read our bytes"
    );
    our_bytes
}

/// The PUBLISH fields spelled out, as the brief asks, on top of `check_pair`.
fn check_publish(v: ProtocolVersion, ours: &Packet, theirs: &Theirs) {
    let Packet::Publish(p) = ours else { panic!() };
    let our_bytes = check_pair(v, ours, theirs);
    match &theirs.read_all(&mut our_bytes.clone())[..] {
        [Theirs::V4(v4::Packet::Publish(t))] => {
            assert_eq!(
                (t.topic.as_bytes(), &t.payload),
                (p.topic.as_bytes(), &p.payload)
            );
        }
        [Theirs::V5(v5::Packet::Publish(t))] => {
            assert_eq!((&t.topic[..], &t.payload), (p.topic.as_bytes(), &p.payload));
            let tp = t.properties.as_ref().unwrap();
            assert_eq!(
                tp.message_expiry_interval,
                p.properties.message_expiry_interval
            );
            assert_eq!(
                tp.content_type.as_deref(),
                p.properties.content_type.as_deref()
            );
            assert_eq!(tp.user_properties.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    let Packet::Publish(back) = &decode_ours(v, theirs.encode())[0] else {
        panic!()
    };
    assert_eq!((&back.topic, &back.payload), (&p.topic, &p.payload));
}

// ---------------------------------------------------------------------------
// Benchmark bodies
// ---------------------------------------------------------------------------

fn repeat(bytes: &[u8], n: usize) -> BytesMut {
    let mut b = BytesMut::with_capacity(bytes.len() * n);
    for _ in 0..n {
        b.extend_from_slice(bytes);
    }
    b
}

/// Both codecs decode every packet of `wire` (a clone, made untimed).
fn bench_decode(
    g: &mut BenchmarkGroup<'_, WallTime>,
    v: ProtocolVersion,
    wire: &BytesMut,
    count: usize,
) {
    g.throughput(Throughput::Elements(count as u64));
    g.bench_function("ours", |b| {
        b.iter_batched(
            || wire.clone(),
            |mut buf| {
                let mut dec = Decoder::with_version(v);
                while !buf.is_empty() {
                    black_box(dec.decode(&mut buf).unwrap().unwrap());
                }
                buf
            },
            BatchSize::LargeInput,
        );
    });
    if v.is_v5() {
        g.bench_function("rumqttc", |b| {
            b.iter_batched(
                || wire.clone(),
                |mut buf| {
                    while !buf.is_empty() {
                        black_box(v5::Packet::read(&mut buf, None).unwrap());
                    }
                    buf
                },
                BatchSize::LargeInput,
            );
        });
    } else {
        g.bench_function("rumqttc", |b| {
            b.iter_batched(
                || wire.clone(),
                |mut buf| {
                    while !buf.is_empty() {
                        black_box(v4::Packet::read(&mut buf, usize::MAX).unwrap());
                    }
                    buf
                },
                BatchSize::LargeInput,
            );
        });
    }
}

/// Both codecs append `N` copies of the packet to a reused, cleared buffer.
/// `clear_each` empties it before every packet (rumqttc's CONNECT writer
/// patches its flags at an absolute buffer index, so it can only write a
/// CONNECT at the start of a buffer).
fn bench_encode(
    g: &mut BenchmarkGroup<'_, WallTime>,
    v: ProtocolVersion,
    ours: &Packet,
    theirs: &Theirs,
    clear_each: bool,
) {
    let size = encode_ours(v, ours).len();
    g.throughput(Throughput::Elements(N as u64));
    let enc = Encoder::new(v);
    let mut out = BytesMut::with_capacity(size * N);
    g.bench_function("ours", |b| {
        b.iter(|| {
            out.clear();
            for _ in 0..N {
                if clear_each {
                    out.clear();
                }
                enc.encode(black_box(ours), &mut out).unwrap();
            }
            black_box(&out);
        });
    });
    g.bench_function("rumqttc", |b| {
        b.iter(|| {
            out.clear();
            for _ in 0..N {
                if clear_each {
                    out.clear();
                }
                black_box(theirs).write(&mut out);
            }
            black_box(&out);
        });
    });
    if let Packet::Publish(p) = ours {
        // Not an encoder: the packet's bytes appended with one copy, the
        // least that any encoder writing the payload into the buffer does.
        // At 4 KiB it costs about what both encoders cost, which is why a
        // broker writes the head and shares the payload (below).
        let bytes = encode_ours(v, ours);
        g.bench_function("copy_of_the_bytes", |b| {
            b.iter(|| {
                out.clear();
                for _ in 0..N {
                    out.extend_from_slice(black_box(&bytes));
                }
                black_box(&out);
            });
        });
        // Not comparable to the two lines above: the payload is not copied
        // (a broker sends the head and the shared payload with writev).
        g.bench_function("ours_head_only_vectored", |b| {
            b.iter(|| {
                out.clear();
                for _ in 0..N {
                    enc.encode_publish_head(black_box(p), &mut out).unwrap();
                }
                black_box(&out);
            });
        });
    }
}

fn publish_cases() -> Vec<(&'static str, ProtocolVersion, usize, bool)> {
    vec![
        ("publish_64B_v311", ProtocolVersion::V3_1_1, 64, false),
        ("publish_4KiB_v311", ProtocolVersion::V3_1_1, 4096, false),
        ("publish_64B_v5_props", ProtocolVersion::V5, 64, true),
        ("publish_4KiB_v5_props", ProtocolVersion::V5, 4096, true),
    ]
}

fn publish_benches(c: &mut Criterion) {
    for (name, v, len, props) in publish_cases() {
        let (ours, theirs) = publish(v, TOPIC, QoS::AtLeastOnce, 4242, payload(len), props);
        check_publish(v, &ours, &theirs);
        let wire = repeat(&encode_ours(v, &ours), N);
        {
            let mut g = c.benchmark_group(format!("decode_{name}"));
            bench_decode(&mut g, v, &wire, N);
            g.finish();
        }
        {
            let mut g = c.benchmark_group(format!("encode_{name}"));
            bench_encode(&mut g, v, &ours, &theirs, false);
            g.finish();
        }
    }
}

fn connect_subscribe_benches(c: &mut Criterion) {
    let v = ProtocolVersion::V5;
    let (ours, theirs) = connect_v5();
    let wire = repeat(&check_pair(v, &ours, &theirs), N);
    {
        let mut g = c.benchmark_group("decode_connect_v5_will_props");
        bench_decode(&mut g, v, &wire, N);
        g.finish();
    }
    {
        let mut g = c.benchmark_group("encode_connect_v5_will_props");
        bench_encode(&mut g, v, &ours, &theirs, true);
        g.finish();
    }

    for (name, v) in [
        ("subscribe_10_v311", ProtocolVersion::V3_1_1),
        ("subscribe_10_v5", ProtocolVersion::V5),
    ] {
        let (ours, theirs) = subscribe(v, 17, 10);
        decode_and_encode(c, name, v, &ours, &theirs);
    }
}

/// Groups `decode_{name}` (`N` copies of the packet) and `encode_{name}`,
/// after checking that each codec reads the other's bytes.
fn decode_and_encode(
    c: &mut Criterion,
    name: &str,
    v: ProtocolVersion,
    ours: &Packet,
    theirs: &Theirs,
) {
    let wire = repeat(&check_pair(v, ours, theirs), N);
    let mut g = c.benchmark_group(format!("decode_{name}"));
    bench_decode(&mut g, v, &wire, N);
    g.finish();
    let mut g = c.benchmark_group(format!("encode_{name}"));
    bench_encode(&mut g, v, ours, theirs, false);
    g.finish();
}

fn stream_benches(c: &mut Criterion) {
    for (name, v) in [
        ("stream_10k_mixed_v311", ProtocolVersion::V3_1_1),
        ("stream_10k_mixed_v5", ProtocolVersion::V5),
    ] {
        let packets = mixed_stream(v);
        let mut wire = BytesMut::new();
        let mut their_wire = BytesMut::new();
        let enc = Encoder::new(v);
        for (ours, theirs) in &packets {
            enc.encode(ours, &mut wire).unwrap();
            theirs.write(&mut their_wire);
        }
        assert_eq!(wire.len(), their_wire.len());
        let expected_ours: Vec<Packet> = packets.iter().map(|(o, _)| o.clone()).collect();
        let expected_theirs: Vec<Theirs> = packets.iter().map(|(_, t)| t.clone()).collect();
        assert_eq!(decode_ours(v, their_wire), expected_ours);
        assert_eq!(
            expected_theirs[0].read_all(&mut wire.clone()),
            expected_theirs
        );
        {
            let mut g = c.benchmark_group(format!("decode_{name}"));
            bench_decode(&mut g, v, &wire, STREAM_LEN);
            g.finish();
        }
    }
}

/// `N` PUBACKs: what a QoS 1 publisher reads back, and a broker from every
/// QoS 1 subscriber (and writes to every QoS 1 publisher).
fn puback_benches(c: &mut Criterion) {
    for (name, v) in [
        ("puback_v311", ProtocolVersion::V3_1_1),
        ("puback_v5", ProtocolVersion::V5),
    ] {
        let ours = Packet::from(PubAck::new(PacketId::new(4242).unwrap()));
        let theirs = if v.is_v5() {
            Theirs::V5(v5::Packet::PubAck(v5::PubAck::new(4242, None)))
        } else {
            Theirs::V4(v4::Packet::PubAck(v4::PubAck::new(4242)))
        };
        decode_and_encode(c, name, v, &ours, &theirs);
    }
}

criterion_group!(
    benches,
    publish_benches,
    connect_subscribe_benches,
    stream_benches,
    puback_benches
);
criterion_main!(benches);
