//! Any bytes, any version: decoding never panics, never hangs, and gives the
//! same packets (or the same error) whatever chunks the bytes arrive in.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use mqtt_codec::{Decoder, Packet, ProtocolVersion};
use std::num::NonZeroU32;

fn decoder(selector: u8) -> Decoder {
    let mut dec = match selector % 4 {
        0 => Decoder::new(),
        1 => Decoder::with_version(ProtocolVersion::V3_1),
        2 => Decoder::with_version(ProtocolVersion::V3_1_1),
        _ => Decoder::with_version(ProtocolVersion::V5),
    };
    if selector & 0x80 != 0 {
        dec.set_max_packet_size(NonZeroU32::new(64).unwrap());
    }
    dec
}

/// Every packet until the decoder needs more input or fails.
fn run(dec: &mut Decoder, buf: &mut BytesMut, out: &mut Vec<Result<Packet, mqtt_codec::DecodeError>>) {
    loop {
        match dec.decode(buf) {
            Ok(Some(p)) => out.push(Ok(p)),
            Ok(None) => return,
            Err(e) => {
                out.push(Err(e));
                // Errors are sticky.
                assert_eq!(dec.decode(buf), Err(e));
                return;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else { return };

    let mut whole = Vec::new();
    let mut buf = BytesMut::from(input);
    run(&mut decoder(selector), &mut buf, &mut whole);

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
    assert_eq!(whole, chunked);
});
