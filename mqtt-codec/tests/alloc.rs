//! Zero copy, shown by counting: in steady state, decoding a PUBLISH
//! without properties (every 3.1.1 PUBLISH) allocates nothing; its topic and
//! payload are reference counted slices of the received buffer. A 5.0
//! PUBLISH with properties allocates one block, the shared, out-of-line
//! properties (`Props`), whose binary values and long strings are slices
//! of the buffer too; strings of up to 23 bytes are copied inline into their
//! `Utf8Bytes`, which is cheaper than sharing them and allocates nothing.
//! A single user property is held inline in its `PropertyList`; two or more
//! take one more block.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test code
#![allow(unsafe_code)] // a counting `GlobalAlloc` is the only way to observe allocations

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::num::NonZeroU16;

use bytes::{Bytes, BytesMut};
use mqtt_codec::PublishTopic;
use mqtt_codec::{
    Decoder, Encoder, Packet, PacketId, ProtocolVersion, PubAck, Publish, QoS, UserProperty,
    Utf8Bytes,
};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: defers every call to `System`; the counter is a const-initialised
// thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// A PUBLISH; with `props`, a set of properties and that many user
/// properties.
fn publish(payload_len: usize, props: Option<usize>) -> Packet {
    let mut p = Publish::new(
        PublishTopic::from_static("tenant/7/site/3/device/42/temp"),
        vec![7u8; payload_len],
    );
    p.qos = QoS::AtLeastOnce;
    p.packet_id = PacketId::new(1);
    if let Some(users) = props {
        for i in 0..users {
            p.properties
                .to_mut()
                .user_properties
                .push(UserProperty::new(
                    Utf8Bytes::from_static("trace-id"),
                    Utf8Bytes::try_from(format!("4bf92f3577b34da{i}")).unwrap(),
                ));
        }
        p.properties.to_mut().message_expiry_interval = Some(30);
        p.properties.to_mut().topic_alias = NonZeroU16::new(3);
        p.properties.to_mut().content_type = Some(Utf8Bytes::from_static("application/json"));
        p.properties.to_mut().correlation_data = Some(Bytes::from_static(b"req-1"));
        p.properties.to_mut().response_topic =
            Some(Utf8Bytes::from_static("tenant/7/site/3/device/42/replies"));
    }
    p.into()
}

/// Decodes 1,000 copies of a PUBLISH and checks that, after the first, each
/// allocated `per_packet` blocks.
fn assert_steady_state_decode_allocates(
    v: ProtocolVersion,
    payload_len: usize,
    props: Option<usize>,
    per_packet: usize,
) {
    const N: usize = 1000;
    let packet = publish(payload_len, props);
    let enc = Encoder::new(v);
    let mut buf = BytesMut::new();
    for _ in 0..N {
        enc.encode(&packet, &mut buf).unwrap();
    }
    let mut dec = Decoder::with_version(v);
    // The first split turns the buffer into a shared one: one allocation.
    assert_eq!(dec.decode(&mut buf).unwrap().as_ref(), Some(&packet));

    let before = allocations();
    let mut decoded = 0;
    while let Some(p) = dec.decode(&mut buf).unwrap() {
        let Packet::Publish(p) = p else {
            panic!("not a publish")
        };
        assert_eq!(p.payload.len(), payload_len);
        decoded += 1;
    }
    let after = allocations();
    assert_eq!(decoded, N - 1);
    assert_eq!(
        after - before,
        per_packet * decoded,
        "decoding {decoded} PUBLISH ({v}, properties: {props:?})"
    );
}

#[test]
fn v311_publish_decode_allocates_nothing() {
    assert_steady_state_decode_allocates(ProtocolVersion::V3_1_1, 64, None, 0);
    assert_steady_state_decode_allocates(ProtocolVersion::V3_1_1, 4096, None, 0);
}

#[test]
fn v5_publish_without_properties_decode_allocates_nothing() {
    assert_steady_state_decode_allocates(ProtocolVersion::V5, 64, None, 0);
    assert_steady_state_decode_allocates(ProtocolVersion::V5, 4096, None, 0);
}

#[test]
fn v5_publish_with_properties_decode_allocates_only_the_property_block() {
    for users in [0, 1] {
        assert_steady_state_decode_allocates(ProtocolVersion::V5, 64, Some(users), 1);
        assert_steady_state_decode_allocates(ProtocolVersion::V5, 4096, Some(users), 1);
    }
}

#[test]
fn v5_publish_with_more_user_properties_allocates_their_list_once() {
    for users in [2, 4] {
        assert_steady_state_decode_allocates(ProtocolVersion::V5, 64, Some(users), 2);
    }
}

#[test]
fn decoded_fields_share_the_received_buffer() {
    let v = ProtocolVersion::V5;
    let mut buf = BytesMut::new();
    Encoder::new(v)
        .encode(&publish(64, Some(1)), &mut buf)
        .unwrap();
    let range = buf.as_ptr_range();
    let Some(Packet::Publish(p)) = Decoder::with_version(v).decode(&mut buf).unwrap() else {
        panic!("not a publish")
    };
    let response_topic = p.properties.response_topic.as_ref().unwrap();
    assert!(response_topic.is_shared());
    for field in [
        p.topic.as_bytes(),
        &p.payload,
        p.properties.correlation_data.as_ref().unwrap(),
        response_topic.as_bytes(),
    ] {
        assert!(
            range.contains(&field.as_ptr()),
            "field was copied out of the frame"
        );
    }
    // A short property string is copied inline, not shared.
    let content_type = p.properties.content_type.as_ref().unwrap();
    assert!(!content_type.is_shared());
    assert_eq!(content_type, "application/json");
}

/// A `Packet` is moved through every queue of a broker: it stays a few
/// words, with rare 5.0 properties out of line.
#[test]
fn packets_stay_small() {
    use std::mem::size_of;
    assert!(size_of::<Publish>() <= 80, "{}", size_of::<Publish>());
    assert!(size_of::<Packet>() <= 88, "{}", size_of::<Packet>());
    // Acknowledgements, the other packets of every QoS 1/2 flow, are a
    // packet identifier, a reason code and a pointer.
    assert!(size_of::<PubAck>() <= 16, "{}", size_of::<PubAck>());
    // Inline strings fit beside the niche of the `Bytes` they replace.
    assert_eq!(size_of::<Utf8Bytes>(), size_of::<Bytes>());
}
