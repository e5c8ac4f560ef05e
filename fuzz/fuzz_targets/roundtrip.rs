//! Whatever decodes re-encodes, at the same version, to a packet that
//! decodes equal; the encoder's PUBLISH fast path, its generic writer and
//! its vectored head agree byte for byte.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use mqtt_codec::{Decoder, Encoder, Packet, ProtocolVersion};

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
        let n = Encoder::new(version)
            .encode(&packet, &mut wire)
            .unwrap_or_else(|e| panic!("decoded {packet:?} but cannot encode it: {e}"));
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
