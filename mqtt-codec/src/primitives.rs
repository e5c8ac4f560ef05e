//! Wire primitives: the nom parsers for fields and the writers that mirror
//! them.
//!
//! Every parser here is a *complete* parser: it runs inside a frame whose
//! length is already known, so running out of input is
//! [`DecodeError::UnexpectedEnd`], never "need more data".

use bytes::{BufMut, Bytes};
use nom::error::{ErrorKind, ParseError};
use nom::{IResult, Parser};

use crate::error::{DecodeError, EncodeError};
use crate::topic::PublishTopic;
use crate::types::{PacketId, Utf8Bytes, check_utf8};

/// The largest value a Variable Byte Integer can hold.
pub(crate) const VARINT_MAX: u32 = 268_435_455;

/// The nom error type used inside the crate; it never leaves it.
#[derive(Debug)]
pub(crate) struct PErr(pub(crate) DecodeError);

impl<'a> ParseError<&'a [u8]> for PErr {
    fn from_error_kind(_input: &'a [u8], _kind: ErrorKind) -> Self {
        // Complete parsers over a bounded frame only fail for lack of bytes.
        PErr(DecodeError::UnexpectedEnd)
    }

    fn append(_input: &'a [u8], _kind: ErrorKind, other: Self) -> Self {
        other
    }
}

impl From<nom::Err<PErr>> for DecodeError {
    fn from(e: nom::Err<PErr>) -> Self {
        match e {
            nom::Err::Error(PErr(e)) | nom::Err::Failure(PErr(e)) => e,
            nom::Err::Incomplete(_) => DecodeError::UnexpectedEnd,
        }
    }
}

pub(crate) type PResult<'a, T> = IResult<&'a [u8], T, PErr>;

/// Fails the parse with `e` (not recoverable by `alt`).
#[inline]
pub(crate) fn fail<'a, T>(e: DecodeError) -> PResult<'a, T> {
    Err(nom::Err::Failure(PErr(e)))
}

#[inline]
pub(crate) fn u8(i: &[u8]) -> PResult<'_, u8> {
    nom::number::complete::u8(i)
}

#[inline]
pub(crate) fn u16(i: &[u8]) -> PResult<'_, u16> {
    nom::number::complete::be_u16(i)
}

#[inline]
pub(crate) fn u32(i: &[u8]) -> PResult<'_, u32> {
    nom::number::complete::be_u32(i)
}

/// A Variable Byte Integer (MQTT 5.0 section 1.5.5) inside a frame.
pub(crate) fn varint(i: &[u8]) -> PResult<'_, u32> {
    match read_varint(i) {
        Ok(Some((v, n))) => Ok((i.get(n..).unwrap_or_default(), v)),
        Ok(None) => fail(DecodeError::UnexpectedEnd),
        Err(e) => fail(e),
    }
}

/// Reads a Variable Byte Integer from the front of `b`.
///
/// `Ok(None)` if `b` ends before the integer does; errors for a fifth byte
/// and for a non-minimal encoding \[MQTT-1.5.5-1\].
#[inline]
pub(crate) fn read_varint(b: &[u8]) -> Result<Option<(u32, usize)>, DecodeError> {
    let mut value = 0u32;
    for (n, &byte) in b.iter().take(4).enumerate() {
        value |= u32::from(byte & 0x7F) << (7 * n);
        if byte & 0x80 == 0 {
            if n > 0 && byte == 0 {
                return Err(DecodeError::NonMinimalVarInt);
            }
            return Ok(Some((value, n + 1)));
        }
    }
    if b.len() >= 4 {
        Err(DecodeError::MalformedRemainingLength)
    } else {
        Ok(None)
    }
}

/// A Packet Identifier, which must not be 0.
#[inline]
pub(crate) fn packet_id(i: &[u8]) -> PResult<'_, PacketId> {
    let (i, id) = u16(i)?;
    match PacketId::new(id) {
        Some(id) => Ok((i, id)),
        None => fail(DecodeError::ZeroPacketId),
    }
}

/// Two-byte length-prefixed bytes, as a slice.
#[inline]
pub(crate) fn raw_binary(i: &[u8]) -> PResult<'_, &[u8]> {
    nom::multi::length_data(nom::number::complete::be_u16).parse(i)
}

/// Binary Data, as a zero-copy slice of `frame`.
#[inline]
pub(crate) fn binary<'a>(frame: &Bytes, i: &'a [u8]) -> PResult<'a, Bytes> {
    let (i, b) = raw_binary(i)?;
    Ok((i, frame.slice_ref(b)))
}

/// A UTF-8 Encoded String, checked and kept as a slice of `frame`.
#[inline]
pub(crate) fn string<'a>(frame: &Bytes, i: &'a [u8]) -> PResult<'a, Utf8Bytes> {
    let (i, b) = raw_binary(i)?;
    if let Err(e) = check_utf8(b) {
        return fail(e);
    }
    Ok((i, Utf8Bytes::from_checked(frame.slice_ref(b))))
}

/// A UTF-8 Encoded String of a 5.0 property, checked, kept inline when short
/// (see [`Utf8Bytes`]) and as a slice of `frame` otherwise.
#[inline(always)]
pub(crate) fn property_string<'a>(frame: &Bytes, i: &'a [u8]) -> PResult<'a, Utf8Bytes> {
    let (i, b) = raw_binary(i)?;
    if let Err(e) = check_utf8(b) {
        return fail(e);
    }
    Ok((i, Utf8Bytes::from_checked_short(frame, b)))
}

/// Bytes a Variable Byte Integer of `v` takes (`v` at most [`VARINT_MAX`]).
#[inline]
pub(crate) fn varint_len(v: usize) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Bytes past a field that the raw writers of a PUBLISH may store into
/// (an inline string is stored as its whole 24 bytes; fixed fields as a
/// word), overwritten by the next field or left in spare capacity.
pub(crate) const RAW_SLACK: usize = 24;

/// A Variable Byte Integer of `v` (at most [`VARINT_MAX`]) as the low bytes
/// of a word, in memory order once stored little-endian, and its length.
#[inline(always)]
pub(crate) fn varint_word(mut v: usize) -> (u32, usize) {
    debug_assert!(v <= VARINT_MAX as usize);
    if let Ok(byte @ 0..0x80) = u8::try_from(v) {
        return (u32::from(byte), 1);
    }
    let mut word = 0;
    for k in 0..4 {
        let byte = u32::try_from(v & 0x7F).unwrap_or_default();
        v >>= 7;
        if v == 0 {
            return (word | byte << (8 * k), k + 1);
        }
        word |= (byte | 0x80) << (8 * k);
    }
    (word, 4)
}

/// Writes a Variable Byte Integer; `v` must be at most [`VARINT_MAX`]
/// (checked by the caller's length computation).
#[inline]
pub(crate) fn put_varint<B: BufMut>(buf: &mut B, mut v: usize) {
    loop {
        let byte = u8::try_from(v & 0x7F).unwrap_or_default();
        v >>= 7;
        if v == 0 {
            buf.put_u8(byte);
            return;
        }
        buf.put_u8(byte | 0x80);
    }
}

/// Encoded size of a two-byte length-prefixed field.
#[inline]
pub(crate) fn field_len(len: usize) -> Result<usize, EncodeError> {
    if len > usize::from(u16::MAX) {
        return Err(EncodeError::FieldTooLong(len));
    }
    Ok(2 + len)
}

/// `head` plus the size of a list of length-prefixed fields of the given
/// lengths, each followed by `extra` bytes, refused when over what a
/// Remaining Length holds. Only the lengths are read, so a list too long
/// to send is refused before any field is checked; and the sum saturates,
/// where on a 32-bit target many fields sharing one long string would
/// wrap it.
pub(crate) fn list_len(
    head: usize,
    lens: impl Iterator<Item = usize>,
    extra: usize,
) -> Result<usize, EncodeError> {
    let n = lens.fold(head, |n, len| {
        n.saturating_add(len.saturating_add(2 + extra))
    });
    if n > VARINT_MAX as usize {
        return Err(EncodeError::RemainingLengthTooLarge(n));
    }
    Ok(n)
}

/// Writes a two-byte length-prefixed field whose length was checked by
/// [`field_len`].
#[inline]
pub(crate) fn put_field<B: BufMut>(buf: &mut B, b: &[u8]) {
    buf.put_u16(u16::try_from(b.len()).unwrap_or(u16::MAX));
    buf.put_slice(b);
}

/// Whether a topic name contains a wildcard character (`+` or `#`), which
/// topic names must not \[MQTT-3.3.2-2\]\[MQTT-4.7.0-1\].
#[inline]
pub(crate) fn has_wildcard(topic: &[u8]) -> bool {
    scan_words(topic, wildcard_bytes, |b| b == b'+' || b == b'#')
}

/// The high bit of each byte of `v` that may be `+` (0x2B) or `#` (0x23):
/// the two differ only in bit 3, so one comparison finds both. Exact as to
/// whether any byte is one (see [`zero_bytes`]).
#[inline(always)]
fn wildcard_bytes(v: u64) -> u64 {
    zero_bytes((v | splat(0x08)) ^ splat(b'+'))
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// `b` in every byte of a word.
#[inline(always)]
const fn splat(b: u8) -> u64 {
    LO * b as u64
}

/// The high bit of each byte of `v` that is zero. Exact for the bytes below
/// 0x80; a byte at or above it may flag its neighbour, so callers that care
/// reject such bytes separately (or accept a false positive that sends them
/// to a precise check).
#[inline(always)]
fn zero_bytes(v: u64) -> u64 {
    v.wrapping_sub(LO) & !v & HI
}

/// Whether any byte of `bytes` is flagged: eight bytes at a time by `word`
/// (non-zero when a byte of the word is flagged), the last partial word
/// overlapping what was already read, and byte by byte by `byte` below eight
/// bytes.
#[inline(always)]
fn scan_words(bytes: &[u8], word: impl Fn(u64) -> u64, byte: impl Fn(u8) -> bool) -> bool {
    let load = |c: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        u64::from_le_bytes(w)
    };
    if bytes.len() < 8 {
        return bytes.iter().any(|&b| byte(b));
    }
    // A branch per word rather than one at the end: topics are short, and
    // a loop the compiler vectorizes spends longer setting up than scanning.
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        if word(load(c)) != 0 {
            return true;
        }
    }
    !chunks.remainder().is_empty()
        && word(load(bytes.get(bytes.len() - 8..).unwrap_or_default())) != 0
}

/// The common case of a string: every byte is ASCII and none is U+0000,
/// checked eight bytes at a time. `false` sends the caller to the precise
/// checks.
#[inline]
pub(crate) fn is_plain_ascii(b: &[u8]) -> bool {
    !scan_words(
        b,
        |v| (v & HI) | zero_bytes(v),
        |b| b.wrapping_sub(1) >= 0x7F,
    )
}

/// The common case of a topic name, checked eight bytes at a time: every
/// byte is ASCII and none is U+0000, `+` or `#`. `false` sends the caller to
/// the precise checks (a non-ASCII byte may also flag its neighbour).
#[inline]
pub(crate) fn is_plain_ascii_topic(topic: &[u8]) -> bool {
    !scan_words(
        topic,
        |v| (v & HI) | zero_bytes(v) | wildcard_bytes(v),
        |b| b.wrapping_sub(1) >= 0x7F || b == b'+' || b == b'#',
    )
}

/// A PUBLISH Topic Name: a UTF-8 string that is a valid topic name (the
/// emptiness rule depends on the Topic Alias and is checked by the caller).
#[inline]
pub(crate) fn topic_name<'a>(frame: &Bytes, i: &'a [u8]) -> PResult<'a, PublishTopic> {
    let (i, b) = raw_binary(i)?;
    if !is_plain_ascii_topic(b) {
        if let Err(e) = check_utf8(b) {
            return fail(e);
        }
        if has_wildcard(b) {
            return fail(DecodeError::WildcardInTopicName);
        }
    }
    Ok((i, PublishTopic::from_checked(frame.slice_ref(b))))
}

/// A Response Topic is a topic name: no wildcards \[MQTT-3.3.2-14\].
#[inline]
pub(crate) fn check_response_topic(topic: Option<&Utf8Bytes>) -> Result<(), DecodeError> {
    match topic {
        Some(t) if has_wildcard(t.as_bytes()) || t.is_empty() => Err(
            DecodeError::InvalidPropertyValue(crate::properties::id::RESPONSE_TOPIC),
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A list's size is exact up to the limit and refused past it, and its
    /// sum saturates instead of wrapping, at any width of `usize`.
    #[test]
    fn list_len_saturates_and_refuses() {
        let max = VARINT_MAX as usize;
        assert_eq!(list_len(2, [3, 0].into_iter(), 1), Ok(2 + 6 + 3));
        assert_eq!(list_len(max - 3, [0].into_iter(), 1), Ok(max));
        assert_eq!(
            list_len(max - 3, [1].into_iter(), 1),
            Err(EncodeError::RemainingLengthTooLarge(max + 1))
        );
        for lens in [
            [usize::MAX, 0],
            [usize::MAX - 2, 1],
            [usize::MAX / 2 + 1; 2],
        ] {
            assert_eq!(
                list_len(2, lens.into_iter(), 0),
                Err(EncodeError::RemainingLengthTooLarge(usize::MAX))
            );
        }
    }

    /// The word form of a Variable Byte Integer holds the bytes
    /// `put_varint` writes, at every boundary of its four sizes.
    #[test]
    fn varint_word_is_the_written_varint() {
        for v in [
            0,
            1,
            127,
            128,
            200,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            268_435_455usize,
        ] {
            let mut written = Vec::new();
            put_varint(&mut written, v);
            let (word, len) = varint_word(v);
            assert_eq!(len, varint_len(v), "{v}");
            assert_eq!(&word.to_le_bytes()[..len], &written[..], "{v}");
        }
    }

    #[test]
    fn plain_ascii_topic_check_agrees_with_the_byte_rules() {
        let naive = |t: &[u8]| {
            t.iter()
                .all(|&b| b != 0 && b < 0x80 && b != b'+' && b != b'#')
        };
        let mut cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"a/b".to_vec(),
            b"tenant/7/site/3/device/42/temp".to_vec(),
        ];
        for len in 0..20 {
            for pos in 0..len {
                for bad in [
                    0u8, b'+', b'#', 0x80, 0xC3, 0xFF, 0x7F, 0x01, b'*', b'"', b'$',
                    // One bit from a wildcard, or a wildcard with the high bit.
                    0x03, 0x0B, 0x2F, 0x27, 0xA3, 0xAB,
                ] {
                    let mut t = vec![b'x'; len];
                    t[pos] = bad;
                    cases.push(t);
                }
            }
        }
        for t in cases {
            assert_eq!(is_plain_ascii_topic(&t), naive(&t), "{t:?}");
            assert_eq!(
                is_plain_ascii(&t),
                t.iter().all(|&b| b != 0 && b < 0x80),
                "{t:?}"
            );
            assert_eq!(
                has_wildcard(&t),
                t.iter().any(|&b| b == b'+' || b == b'#'),
                "{t:?}"
            );
        }
    }
}
