//! Whatever decodes re-encodes, at the same version, to a packet that
//! decodes equal (but for what only a receiver may see: invalid topic
//! filters, an empty client id where one is needed); the encoder's PUBLISH
//! fast path, its generic writer and its vectored head agree byte for byte.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use mqtt_codec::{Decoder, EncodeError, Encoder, Packet, ProtocolVersion};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else { return };
    let version = match selector % 3 {
        0 => ProtocolVersion::V3_1,
        1 => ProtocolVersion::V3_1_1,
        _ => ProtocolVersion::V5,
    };
    let mut dec = Decoder::with_version(version);
    let mut buf = BytesMut::from(input);
    while let Ok(Some(packet)) = dec.decode(&mut buf) {
        let mut wire = BytesMut::new();
        let n = match Encoder::new(version).encode(&packet, &mut wire) {
            Ok(n) => n,
            // What a receiver decodes to answer with a reason code (SUBACK
            // 0x8F, CONNACK 0x02), but a sender must never write.
            Err(
                EncodeError::InvalidTopicFilter(_)
                | EncodeError::NoLocalOnSharedSubscription
                | EncodeError::EmptyClientId,
            ) if matches!(
                packet,
                Packet::Subscribe(_) | Packet::Unsubscribe(_) | Packet::Connect(_)
            ) =>
            {
                assert!(wire.is_empty(), "nothing is written");
                continue;
            }
            Err(e) => panic!("decoded {packet:?} but cannot encode it: {e}"),
        };
        assert_eq!(n, wire.len());
        let mut generic = BytesMut::with_capacity(n);
        assert_eq!(Encoder::new(version).encode_to(&packet, &mut generic), Ok(n));
        assert_eq!(generic, wire);
        if let Packet::Publish(p) = &packet {
            let mut head = BytesMut::new();
            assert_eq!(Encoder::new(version).encode_publish_head(p, &mut head), Ok(n));
            assert_eq!(head.len() + p.payload.len(), n);
            assert_eq!(head[..], wire[..head.len()]);
        }
        let again = Decoder::with_version(version).decode(&mut wire);
        assert_eq!(again, Ok(Some(packet)));
        assert!(wire.is_empty());
    }
});
