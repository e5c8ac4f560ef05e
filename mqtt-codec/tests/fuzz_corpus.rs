//! Replays the fuzz seeds and every input kept from fuzzing
//! (`fuzz/seeds/<target>/`, `fuzz/regressions/<target>/`) through the same
//! checks as the fuzz targets, so that `cargo test` guards them without a
//! nightly toolchain.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test code

use std::path::Path;

use bytes::BytesMut;
use mqtt_codec::{DecodeError, Decoder, EncodeError, Encoder, Packet, ProtocolVersion};

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut out = Vec::new();
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

fn decoder(selector: u8) -> Decoder {
    let mut dec = match selector % 4 {
        0 => Decoder::new(),
        1 => Decoder::with_version(ProtocolVersion::V3_1),
        2 => Decoder::with_version(ProtocolVersion::V3_1_1),
        _ => Decoder::with_version(ProtocolVersion::V5),
    };
    if selector & 0x80 != 0 {
        dec.set_max_packet_size(64.try_into().unwrap());
    }
    dec
}

fn run(dec: &mut Decoder, buf: &mut BytesMut, out: &mut Vec<Result<Packet, DecodeError>>) {
    loop {
        match dec.decode(buf) {
            Ok(Some(p)) => out.push(Ok(p)),
            Ok(None) => return,
            Err(e) => {
                out.push(Err(e));
                return;
            }
        }
    }
}

#[test]
fn decode_seeds_and_regressions() {
    for (name, data) in inputs("decode") {
        let Some((&selector, input)) = data.split_first() else {
            continue;
        };
        let mut whole = Vec::new();
        run(
            &mut decoder(selector),
            &mut BytesMut::from(input),
            &mut whole,
        );
        let chunk = usize::from(selector >> 2 & 0x1F) + 1;
        let mut chunked = Vec::new();
        let mut dec = decoder(selector);
        let mut buf = BytesMut::new();
        for piece in input.chunks(chunk) {
            buf.extend_from_slice(piece);
            run(&mut dec, &mut buf, &mut chunked);
            if matches!(chunked.last(), Some(Err(_))) {
                break;
            }
        }
        assert_eq!(whole, chunked, "{name}");
    }
}

#[test]
fn roundtrip_seeds_and_regressions() {
    for (name, data) in inputs("roundtrip") {
        let Some((&selector, input)) = data.split_first() else {
            continue;
        };
        let version = [
            ProtocolVersion::V3_1,
            ProtocolVersion::V3_1_1,
            ProtocolVersion::V5,
        ][usize::from(selector % 3)];
        let mut dec = Decoder::with_version(version);
        let mut buf = BytesMut::from(input);
        while let Ok(Some(packet)) = dec.decode(&mut buf) {
            let mut wire = BytesMut::new();
            match Encoder::new(version).encode(&packet, &mut wire) {
                Ok(_) => {}
                // As in the fuzz target: what only a receiver may see.
                Err(
                    EncodeError::InvalidTopicFilter(_)
                    | EncodeError::NoLocalOnSharedSubscription
                    | EncodeError::EmptyClientId,
                ) => continue,
                Err(e) => panic!("{name}: {e}"),
            }
            assert_eq!(
                Decoder::with_version(version).decode(&mut wire),
                Ok(Some(packet)),
                "{name}"
            );
        }
    }
}
