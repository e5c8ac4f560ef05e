//! Property tests: for arbitrary packets of every type and version,
//! `decode(encode(p)) == p`, and a stream of packets decodes the same
//! whatever chunks it arrives in.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test code

use std::num::{NonZeroU16, NonZeroU32};

use bytes::{Bytes, BytesMut};
use mqtt_codec::*;
use mqtt_topic::TopicFilter;
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use proptest::sample::select;

const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V3_1,
    ProtocolVersion::V3_1_1,
    ProtocolVersion::V5,
];

fn utf8() -> impl Strategy<Value = Utf8Bytes> {
    "[a-zA-Z0-9/ _é€𝄞+#$-]{0,16}".prop_map(|s| Utf8Bytes::try_from(s).unwrap())
}

fn topic_name() -> impl Strategy<Value = TopicName> {
    "[a-zA-Z0-9/ _é€$-]{1,16}".prop_map(|s| TopicName::try_from(s).unwrap())
}

/// A valid topic filter: levels (some `+`), maybe a final `#`, maybe
/// shared.
fn topic_filter() -> impl Strategy<Value = Utf8Bytes> {
    let level = prop_oneof![3 => "[a-zA-Z0-9 _é€$-]{0,4}", 1 => Just("+".to_owned())];
    (vec(level, 1..4), any::<bool>(), of("[a-z]{1,4}")).prop_map(|(levels, hash, share)| {
        let mut f = levels.join("/");
        if f.is_empty() {
            // A filter has at least one character [MQTT-4.7.3-1].
            f.push('+');
        }
        if hash {
            f.push_str("/#");
        }
        if let Some(group) = share {
            f = format!("$share/{group}/{f}");
        }
        assert!(TopicFilter::check(&f).is_ok(), "{f}");
        Utf8Bytes::try_from(f).unwrap()
    })
}

fn bin() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..32).prop_map(Bytes::from)
}

fn qos() -> impl Strategy<Value = QoS> {
    select(vec![QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])
}

fn pid() -> impl Strategy<Value = PacketId> {
    (1u16..).prop_map(|n| PacketId::new(n).unwrap())
}

fn sub_id() -> impl Strategy<Value = SubscriptionId> {
    (1u32..=SubscriptionId::MAX).prop_map(|n| SubscriptionId::new(n).unwrap())
}

fn nz16() -> impl Strategy<Value = NonZeroU16> {
    (1u16..).prop_map(|n| NonZeroU16::new(n).unwrap())
}

fn nz32() -> impl Strategy<Value = NonZeroU32> {
    (1u32..).prop_map(|n| NonZeroU32::new(n).unwrap())
}

/// Built both ways: from a `Vec` (held in it) and collected (one value
/// inline).
fn user_props() -> impl Strategy<Value = PropertyList<UserProperty>> {
    (
        vec(
            (utf8(), utf8()).prop_map(|(n, v)| UserProperty::new(n, v)),
            0..3,
        ),
        any::<bool>(),
    )
        .prop_map(|(v, collect)| {
            if collect {
                v.into_iter().collect()
            } else {
                v.into()
            }
        })
}

fn payload_format() -> impl Strategy<Value = PayloadFormat> {
    select(vec![PayloadFormat::Unspecified, PayloadFormat::Utf8])
}

/// Every reason code allowed in `packet` at `v`, in the form decoding gives.
fn reason(packet: PacketType, v: ProtocolVersion) -> impl Strategy<Value = ReasonCode> {
    let all: Vec<ReasonCode> = (0..=255u8)
        .filter_map(|b| ReasonCode::try_from(b).ok())
        .collect();
    let allowed: Vec<ReasonCode> = all
        .into_iter()
        .filter(|r| r.is_allowed_in(packet))
        .filter(|r| {
            v.is_v5()
                || match packet {
                    PacketType::ConnAck => r.to_v3_connack().is_some(),
                    PacketType::SubAck => r.as_u8() <= 0x80,
                    _ => *r == ReasonCode::Success,
                }
        })
        .collect();
    select(allowed)
}

/// `strategy` at MQTT 5.0, the empty default below it.
fn v5_only<T: Default + Clone + std::fmt::Debug + 'static>(
    v: ProtocolVersion,
    strategy: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<T> {
    if v.is_v5() {
        strategy.boxed()
    } else {
        Just(T::default()).boxed()
    }
}

fn auth_pair() -> impl Strategy<Value = (Option<Utf8Bytes>, Option<Bytes>)> {
    (of(utf8()), of(bin())).prop_map(|(m, d)| (m.clone(), if m.is_some() { d } else { None }))
}

fn connect(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let props = v5_only(
        v,
        (
            of(any::<u32>()),
            of(nz16()),
            of(nz32()),
            of(any::<u16>()),
            of(any::<bool>()),
        )
            .prop_flat_map(|a| (Just(a), of(any::<bool>()), auth_pair(), user_props()))
            .prop_map(|((sei, rm, mps, tam, rri), rpi, (am, ad), up)| {
                let mut p = ConnectProperties::default();
                p.session_expiry_interval = sei;
                p.receive_maximum = rm;
                p.maximum_packet_size = mps;
                p.topic_alias_maximum = tam;
                p.request_response_information = rri;
                p.request_problem_information = rpi;
                p.authentication_method = am;
                p.authentication_data = ad;
                p.user_properties = up;
                p
            }),
    );
    let will_props = v5_only(
        v,
        (
            of(any::<u32>()),
            of(payload_format()),
            of(any::<u32>()),
            of(utf8()),
            of(topic_name().prop_map(|t| Utf8Bytes::try_from(t.into_bytes()).unwrap())),
            of(bin()),
            user_props(),
        )
            .prop_map(|(wdi, pf, mei, ct, rt, cd, up)| {
                let mut p = WillProperties::default();
                p.will_delay_interval = wdi;
                p.payload_format_indicator = pf;
                p.message_expiry_interval = mei;
                p.content_type = ct;
                p.response_topic = rt;
                p.correlation_data = cd;
                p.user_properties = up;
                p
            }),
    );
    let will = of(
        (topic_name(), bin(), qos(), any::<bool>(), will_props).prop_map(
            |(topic, payload, qos, retain, properties)| Will {
                topic,
                payload,
                qos,
                retain,
                properties,
            },
        ),
    );
    (
        any::<bool>(),
        any::<u16>(),
        utf8(),
        will,
        of(utf8()),
        of(bin()),
        props,
    )
        .prop_map(
            move |(clean_start, keep_alive, client_id, will, username, password, properties)| {
                // [MQTT-3.1.2-22]: no password without a user name before 5.0.
                let password = if v.is_v5() || username.is_some() {
                    password
                } else {
                    None
                };
                // [MQTT-3.1.3-7]: an empty ClientId needs Clean Session at
                // 3.1.1; 3.1 has none.
                let (client_id, clean_start) = match v {
                    _ if !client_id.is_empty() => (client_id, clean_start),
                    ProtocolVersion::V3_1 => (Utf8Bytes::from_static("c"), clean_start),
                    ProtocolVersion::V3_1_1 => (client_id, true),
                    _ => (client_id, clean_start),
                };
                Packet::Connect(Box::new(Connect {
                    protocol: v,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                }))
            },
        )
}

fn connack(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let props = v5_only(
        v,
        (
            (
                of(any::<u32>()),
                of(nz16()),
                of(select(vec![QoS::AtMostOnce, QoS::AtLeastOnce])),
            ),
            (
                of(any::<bool>()),
                of(nz32()),
                of(utf8()),
                of(any::<u16>()),
                of(utf8()),
            ),
            (
                of(any::<bool>()),
                of(any::<bool>()),
                of(any::<bool>()),
                of(any::<u16>()),
            ),
            (of(utf8()), of(utf8()), auth_pair(), user_props()),
        )
            .prop_map(
                |((a, b, c), (d, e, f, g, h), (i, j, k, l), (m, n, (o, q), up))| {
                    let mut p = ConnAckProperties::default();
                    p.session_expiry_interval = a;
                    p.receive_maximum = b;
                    p.maximum_qos = c;
                    p.retain_available = d;
                    p.maximum_packet_size = e;
                    p.assigned_client_identifier = f;
                    p.topic_alias_maximum = g;
                    p.reason_string = h;
                    p.wildcard_subscription_available = i;
                    p.subscription_identifiers_available = j;
                    p.shared_subscription_available = k;
                    p.server_keep_alive = l;
                    p.response_information = m;
                    p.server_reference = n;
                    p.authentication_method = o;
                    p.authentication_data = q;
                    p.user_properties = up;
                    p
                },
            ),
    );
    (any::<bool>(), reason(PacketType::ConnAck, v), props).prop_map(|(sp, reason, properties)| {
        // [MQTT-3.2.2-4]: no session present with an error.
        let session_present = sp && !reason.is_error();
        Packet::ConnAck(Box::new(ConnAck {
            session_present,
            reason,
            properties,
        }))
    })
}

fn publish(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let props = v5_only(
        v,
        (
            of(payload_format()),
            of(any::<u32>()),
            of(nz16()),
            of(topic_name().prop_map(|t| Utf8Bytes::try_from(t.into_bytes()).unwrap())),
            of(bin()),
            of(utf8()),
            user_props(),
            vec(sub_id(), 0..3),
        )
            .prop_map(|(pf, mei, ta, rt, cd, ct, up, si)| {
                let mut p = PublishProperties::default();
                p.payload_format_indicator = pf;
                p.message_expiry_interval = mei;
                p.topic_alias = ta;
                p.response_topic = rt;
                p.correlation_data = cd;
                p.content_type = ct;
                p.user_properties = up;
                p.subscription_identifiers = si.into();
                p
            }),
    );
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        topic_name(),
        any::<bool>(),
        pid(),
        props,
        bin(),
    )
        .prop_map(
            |(qos, dup, retain, topic, empty_topic, id, properties, payload)| {
                let has_id = qos != QoS::AtMostOnce;
                // An empty topic stands only with a Topic Alias.
                let topic = if empty_topic && properties.topic_alias.is_some() {
                    PublishTopic::empty()
                } else {
                    topic.into()
                };
                Packet::Publish(Publish {
                    dup: dup && has_id,
                    qos,
                    retain,
                    topic,
                    packet_id: has_id.then_some(id),
                    properties: properties.into(),
                    payload,
                })
            },
        )
}

fn ack_props(v: ProtocolVersion) -> BoxedStrategy<AckProperties> {
    v5_only(
        v,
        (of(utf8()), user_props()).prop_map(|(rs, up)| {
            let mut p = AckProperties::default();
            p.reason_string = rs;
            p.user_properties = up;
            p
        }),
    )
}

fn pub_response(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let ty = select(vec![
        PacketType::PubAck,
        PacketType::PubRec,
        PacketType::PubRel,
        PacketType::PubComp,
    ]);
    ty.prop_flat_map(move |ty| (Just(ty), pid(), reason(ty, v), ack_props(v)))
        .prop_map(|(ty, packet_id, reason, properties)| match ty {
            PacketType::PubAck => Packet::PubAck(PubAck {
                packet_id,
                reason,
                properties: properties.into(),
            }),
            PacketType::PubRec => Packet::PubRec(PubRec {
                packet_id,
                reason,
                properties: properties.into(),
            }),
            PacketType::PubRel => Packet::PubRel(PubRel {
                packet_id,
                reason,
                properties: properties.into(),
            }),
            _ => Packet::PubComp(PubComp {
                packet_id,
                reason,
                properties: properties.into(),
            }),
        })
}

fn subscribe(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let options = (
        qos(),
        any::<bool>(),
        any::<bool>(),
        select(vec![
            RetainHandling::SendOnSubscribe,
            RetainHandling::SendIfNew,
            RetainHandling::DoNotSend,
        ]),
    )
        .prop_map(move |(qos, nl, rap, rh)| {
            if v.is_v5() {
                SubscriptionOptions {
                    qos,
                    no_local: nl,
                    retain_as_published: rap,
                    retain_handling: rh,
                }
            } else {
                SubscriptionOptions::new(qos)
            }
        });
    let filters = vec(
        (topic_filter(), options).prop_map(|(filter, mut options)| {
            // [MQTT-3.8.3-4] no No Local on a shared subscription.
            if filter.as_str().starts_with("$share/") {
                options.no_local = false;
            }
            SubscribeFilter { filter, options }
        }),
        1..5,
    );
    let props = v5_only(
        v,
        (of(sub_id()), user_props()).prop_map(|(si, up)| {
            let mut p = SubscribeProperties::default();
            p.subscription_identifier = si;
            p.user_properties = up;
            p
        }),
    );
    (pid(), filters, props).prop_map(|(packet_id, filters, properties)| {
        Packet::Subscribe(Subscribe {
            packet_id,
            filters,
            properties: properties.into(),
        })
    })
}

fn suback(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        pid(),
        vec(reason(PacketType::SubAck, v), 0..5),
        ack_props(v),
    )
        .prop_map(|(packet_id, reasons, properties)| {
            Packet::SubAck(SubAck {
                packet_id,
                reasons,
                properties: properties.into(),
            })
        })
}

fn unsubscribe(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let props = v5_only(
        v,
        user_props().prop_map(|up| {
            let mut p = UnsubscribeProperties::default();
            p.user_properties = up;
            p
        }),
    );
    (pid(), vec(topic_filter(), 1..5), props).prop_map(|(packet_id, filters, properties)| {
        Packet::Unsubscribe(Unsubscribe {
            packet_id,
            filters,
            properties: properties.into(),
        })
    })
}

fn unsuback(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    // A 3.1.1 UNSUBACK carries no reason codes.
    let reasons = v5_only(v, vec(reason(PacketType::UnsubAck, v), 0..5));
    (pid(), reasons, ack_props(v)).prop_map(|(packet_id, reasons, properties)| {
        Packet::UnsubAck(UnsubAck {
            packet_id,
            reasons,
            properties: properties.into(),
        })
    })
}

fn disconnect(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let props =
        (of(any::<u32>()), of(utf8()), of(utf8()), user_props()).prop_map(|(sei, rs, sr, up)| {
            let mut p = DisconnectProperties::default();
            p.session_expiry_interval = sei;
            p.reason_string = rs;
            p.server_reference = sr;
            p.user_properties = up;
            p
        });
    v5_only(
        v,
        (reason(PacketType::Disconnect, v), props).prop_map(|(reason, properties)| Disconnect {
            reason,
            properties: properties.into(),
        }),
    )
    .prop_map(Packet::Disconnect)
    .boxed()
}

fn auth() -> impl Strategy<Value = Packet> {
    let props = (auth_pair(), of(utf8()), user_props()).prop_map(|((am, ad), rs, up)| {
        let mut p = AuthProperties::default();
        p.authentication_method = am;
        p.authentication_data = ad;
        p.reason_string = rs;
        p.user_properties = up;
        p
    });
    (reason(PacketType::Auth, ProtocolVersion::V5), props).prop_map(|(reason, mut properties)| {
        // The method may be left out only from the short Success AUTH
        // (5.0 section 3.15.2.2.2).
        if properties.authentication_method.is_none()
            && (reason != ReasonCode::Success || !properties.is_empty())
        {
            properties.authentication_method = Some(Utf8Bytes::from_static("SCRAM-SHA-1"));
        }
        Packet::Auth(Auth {
            reason,
            properties: properties.into(),
        })
    })
}

/// Any packet that is valid at `v`.
fn packet(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let common = prop_oneof![
        1 => connect(v),
        1 => connack(v),
        3 => publish(v),
        2 => pub_response(v),
        1 => subscribe(v),
        1 => suback(v),
        1 => unsubscribe(v),
        1 => unsuback(v),
        1 => Just(Packet::PingReq),
        1 => Just(Packet::PingResp),
        1 => disconnect(v),
    ];
    if v.is_v5() {
        prop_oneof![10 => common, 1 => auth()].boxed()
    } else {
        common.boxed()
    }
}

fn version_and_packets() -> impl Strategy<Value = (ProtocolVersion, Vec<Packet>)> {
    select(VERSIONS.to_vec()).prop_flat_map(|v| (Just(v), vec(packet(v), 1..8)))
}

fn encode_all(v: ProtocolVersion, packets: &[Packet]) -> BytesMut {
    let enc = Encoder::new(v);
    let mut buf = BytesMut::new();
    for p in packets {
        let before = buf.len();
        let n = enc.encode(p, &mut buf).expect("valid packet encodes");
        assert_eq!(buf.len() - before, n, "encode returns the bytes written");
        assert_eq!(p.encoded_len(v), Ok(n), "encoded_len is exact");
    }
    buf
}

/// A property block of more than 2,097,151 bytes takes four bytes of
/// Property Length, and its packet four of Remaining Length: the word
/// stores of the fast writer for both, checked against the general writer
/// and decoded back.
#[test]
fn four_byte_lengths_through_the_fast_writer() {
    let long = Utf8Bytes::from_utf8(Bytes::from(vec![b'u'; 65_535])).unwrap();
    let mut p = Publish::new(PublishTopic::from_static("a/b"), &b"payload"[..]);
    p.qos = QoS::AtLeastOnce;
    p.packet_id = PacketId::new(9);
    p.properties.to_mut().message_expiry_interval = Some(1);
    for _ in 0..17 {
        p.properties
            .to_mut()
            .user_properties
            .push(UserProperty::new(long.clone(), long.clone()));
    }
    let props = 5 + 17 * (5 + 2 * 65_535);
    assert!(props > 2_097_151);
    let packet = Packet::Publish(p);
    let enc = Encoder::new(ProtocolVersion::V5);
    let mut fast = BytesMut::new();
    let n = enc.encode(&packet, &mut fast).unwrap();
    // Fixed header 1 + 4, topic 5, packet id 2, Property Length 4.
    assert_eq!(n, 1 + 4 + 5 + 2 + 4 + props + 7);
    assert_eq!(&fast[10..12], &[0, 9], "packet id");
    let mut general = BytesMut::new();
    assert_eq!(enc.encode_to(&packet, &mut general), Ok(n));
    assert_eq!(fast, general);
    let mut dec = Decoder::with_version(ProtocolVersion::V5);
    assert_eq!(dec.decode(&mut fast), Ok(Some(packet)));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decode_encode_roundtrip((v, packets) in version_and_packets()) {
        let mut buf = encode_all(v, &packets);
        let mut dec = Decoder::with_version(v);
        for p in &packets {
            prop_assert_eq!(dec.decode(&mut buf), Ok(Some(p.clone())));
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(dec.decode(&mut buf), Ok(None));
    }

    /// The fast writers (`encode`: PUBLISH with and without properties,
    /// the four-byte acknowledgements) write what the general `BufMut`
    /// writer (`encode_to`) writes, and the vectored head of a PUBLISH is
    /// that packet without its payload.
    #[test]
    fn fast_writers_write_what_the_general_writer_writes((v, packets) in version_and_packets()) {
        let enc = Encoder::new(v);
        for p in &packets {
            let mut fast = BytesMut::from(&b"before"[..]);
            let n = enc.encode(p, &mut fast);
            let mut general = BytesMut::from(&b"before"[..]);
            prop_assert_eq!(n, enc.encode_to(p, &mut general));
            prop_assert_eq!(&fast, &general);
            if let Packet::Publish(publish) = p {
                let mut head = BytesMut::new();
                prop_assert_eq!(enc.encode_publish_head(publish, &mut head), n);
                prop_assert_eq!(&fast[6..], &[&head[..], &publish.payload[..]].concat()[..]);
            }
        }
    }

    #[test]
    fn any_chunking_decodes_the_same(
        (v, packets) in version_and_packets(),
        cuts in vec(0usize..64, 0..40),
    ) {
        let wire = encode_all(v, &packets).freeze();
        let mut dec = Decoder::with_version(v);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut rest = &wire[..];
        let mut cuts = cuts.into_iter();
        while !rest.is_empty() {
            let n = cuts.next().unwrap_or(1).clamp(1, rest.len());
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            buf.extend_from_slice(chunk);
            while let Some(p) = dec.decode(&mut buf).unwrap() {
                got.push(p);
            }
        }
        prop_assert_eq!(got, packets);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn byte_at_a_time_consumes_nothing_until_complete(
        (v, p) in select(VERSIONS.to_vec()).prop_flat_map(|v| (Just(v), packet(v))),
    ) {
        let wire = encode_all(v, std::slice::from_ref(&p));
        let mut dec = Decoder::with_version(v);
        let mut buf = BytesMut::new();
        for (i, &byte) in wire.iter().enumerate() {
            buf.extend_from_slice(&[byte]);
            let r = dec.decode(&mut buf).unwrap();
            if i + 1 < wire.len() {
                prop_assert_eq!(r, None);
                prop_assert_eq!(buf.len(), i + 1);
            } else {
                prop_assert_eq!(r, Some(p.clone()));
            }
        }
    }

    #[test]
    fn server_decoder_learns_version_from_connect((v, packets) in version_and_packets()) {
        let connect = Packet::Connect(Box::new(Connect::new(v, Utf8Bytes::from_static("c"))));
        let mut all = vec![connect];
        all.extend(packets);
        let mut buf = encode_all(v, &all);
        let mut dec = Decoder::new();
        for p in &all {
            prop_assert_eq!(dec.decode(&mut buf), Ok(Some(p.clone())));
        }
        prop_assert_eq!(dec.version(), Some(v));
    }
}
