//! Validated topic names and topic filters, and the matching rule between them.

use core::fmt;
use core::ops::Deref;
use core::str::FromStr;

use bytes::Bytes;

use crate::TopicError;

/// The most bytes a topic can have: a UTF-8 Encoded String carries a two-byte length.
pub const MAX_TOPIC_LEN: usize = 65_535;

/// The prefix that turns a topic filter into a shared subscription (MQTT 5.0, section 4.8.2).
pub const SHARE_PREFIX: &str = "$share/";

/// Rules shared by names and filters: non-empty, at most 65,535 bytes, no U+0000.
fn check_common(b: &[u8]) -> Result<(), TopicError> {
    if b.is_empty() {
        return Err(TopicError::Empty);
    }
    if b.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong { len: b.len() });
    }
    if b.contains(&0) {
        return Err(TopicError::NullCharacter);
    }
    Ok(())
}

fn validate_name(b: &[u8]) -> Result<(), TopicError> {
    check_common(b)?;
    // "The wildcard characters can be used in Topic Filters, but MUST NOT be used within a
    // Topic Name" [MQTT-4.7.0-1].
    if b.iter().any(|&c| c == b'+' || c == b'#') {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// Checks the wildcard rules of a (non-shared) filter pattern.
///
/// A wildcard must fill its level: `+` between separators (or the ends)
/// \[MQTT-4.7.1-2\], `#` after a separator (or alone) and last
/// \[MQTT-4.7.1-1\]. The pattern is read eight bytes at a time, and only
/// the wildcards found in a word are looked at: filters are checked on
/// every SUBSCRIBE decoded and encoded, and most of their bytes are plain.
/// (About twice as fast as splitting the pattern into levels, in the
/// SUBSCRIBE encode benchmark of `mqtt-codec`.)
fn validate_pattern(b: &[u8]) -> Result<(), TopicError> {
    const LOWS: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const ONES: u64 = 0x0101_0101_0101_0101;
    // The high bit of each zero byte of `v`, and only of those.
    let zero_bytes = |v: u64| !(((v & LOWS) + LOWS) | v | LOWS);
    let wildcards = |w: u64| {
        zero_bytes(w ^ (ONES * u64::from(b'+'))) | zero_bytes(w ^ (ONES * u64::from(b'#')))
    };
    let check = |i: usize| -> Result<(), TopicError> {
        let before_ok = i == 0 || b.get(i - 1) == Some(&b'/');
        let after = b.get(i + 1);
        match b.get(i) {
            // "the single-level wildcard MUST occupy an entire level" [MQTT-4.7.1-2]
            Some(b'+') if !before_ok || after.is_some_and(|&n| n != b'/') => {
                Err(TopicError::SingleLevelNotAlone)
            }
            // "MUST be specified either on its own or following a topic level separator"
            // [MQTT-4.7.1-1]
            Some(b'#') if !before_ok || after.is_some_and(|&n| n != b'/') => {
                Err(TopicError::MultiLevelNotAlone)
            }
            // "it MUST be the last character specified in the Topic Filter" [MQTT-4.7.1-1]
            Some(b'#') if after.is_some() => Err(TopicError::MultiLevelNotLast),
            _ => Ok(()),
        }
    };
    // Checks the wildcards among the eight bytes from `at` (little endian:
    // byte `k` of the word is `b[at + k]`).
    let scan = |w: u64, at: usize| -> Result<(), TopicError> {
        let mut found = wildcards(w);
        while found != 0 {
            check(at + found.trailing_zeros() as usize / 8)?;
            found &= found - 1;
        }
        Ok(())
    };
    let mut words = b.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut words {
        scan(u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])), at)?;
        at += 8;
    }
    // The last few bytes, padded with zeros (which are not wildcards).
    let tail = words
        .remainder()
        .iter()
        .enumerate()
        .fold(0u64, |w, (k, &c)| w | u64::from(c) << (8 * k));
    scan(tail, at)
}

/// Validates a whole filter and returns the byte offset where its pattern starts (0, or the
/// offset after `$share/{ShareName}/`).
fn validate_filter(b: &[u8]) -> Result<usize, TopicError> {
    check_common(b)?;
    let Some(rest) = b.strip_prefix(SHARE_PREFIX.as_bytes()) else {
        validate_pattern(b)?;
        return Ok(0);
    };
    // "A Shared Subscription's Topic Filter MUST start with $share/ and MUST contain a
    // ShareName that is at least one character long" [MQTT-4.8.2-1]. "The ShareName MUST NOT
    // contain the characters "/", "+" or "#", but MUST be followed by a "/" character. This "/"
    // character MUST be followed by a Topic Filter" [MQTT-4.8.2-2].
    let Some(slash) = rest.iter().position(|&c| c == b'/') else {
        return if rest.is_empty() {
            Err(TopicError::EmptyShareName)
        } else if rest.iter().any(|&c| c == b'+' || c == b'#') {
            Err(TopicError::InvalidShareName)
        } else {
            Err(TopicError::MissingSharedFilter)
        };
    };
    let (group, pattern) = rest.split_at(slash);
    let pattern = pattern.get(1..).unwrap_or_default();
    if group.is_empty() {
        return Err(TopicError::EmptyShareName);
    }
    if group.iter().any(|&c| c == b'+' || c == b'#') {
        return Err(TopicError::InvalidShareName);
    }
    if pattern.is_empty() {
        return Err(TopicError::MissingSharedFilter);
    }
    validate_pattern(pattern)?;
    Ok(b.len() - pattern.len())
}

/// Reads validated UTF-8 back as `&str`, without checking it again.
///
/// Only called on the bytes of a `TopicName` or `TopicFilter`, and every
/// constructor of those checks UTF-8 (`TryFrom<Bytes>` with `from_utf8`, the
/// others take a `&str` or `String`); the bytes are never mutated after.
#[inline]
fn utf8(b: &[u8]) -> &str {
    debug_assert!(core::str::from_utf8(b).is_ok());
    // SAFETY: see above: `b` is the content of a validated name or filter.
    #[allow(unsafe_code)]
    unsafe {
        core::str::from_utf8_unchecked(b)
    }
}

fn bytes_to_utf8(b: &Bytes) -> Result<(), TopicError> {
    core::str::from_utf8(b)
        .map(|_| ())
        .map_err(|_| TopicError::InvalidUtf8)
}

/// A validated MQTT topic name: the topic a PUBLISH is sent to.
///
/// Holds a UTF-8 [`Bytes`], so cloning is a reference-count increment and a name decoded from a
/// packet can be kept without copying it. The rules checked on construction are: at least one
/// byte \[MQTT-4.7.3-1\], at most 65,535 bytes \[MQTT-4.7.3-3\], no U+0000 \[MQTT-4.7.3-2\], no
/// `+` or `#` \[MQTT-4.7.0-1\], and well-formed UTF-8 when built from bytes.
///
/// ```
/// use mqtt_topic::{TopicError, TopicName};
///
/// let name: TopicName = "sport/tennis/player1".parse()?;
/// assert_eq!(name.levels().count(), 3);
/// assert_eq!(TopicName::try_from("sport/+"), Err(TopicError::WildcardInName));
/// # Ok::<(), TopicError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(Bytes);

impl TopicName {
    /// Validates `s` and wraps it without copying.
    ///
    /// # Errors
    ///
    /// A [`TopicError`] naming the first rule `s` breaks.
    pub fn from_static(s: &'static str) -> Result<Self, TopicError> {
        validate_name(s.as_bytes())?;
        Ok(Self(Bytes::from_static(s.as_bytes())))
    }

    /// Wraps bytes that the caller has already checked against every rule
    /// of a topic name, without checking them again: for a codec that
    /// validates a received topic in its own single pass.
    ///
    /// # Safety
    ///
    /// `b` must be well-formed UTF-8: [`as_str`](Self::as_str) reads it
    /// without checking. It must also keep the other rules above (non-empty,
    /// at most 65,535 bytes, no U+0000, no `+` or `#`); breaking those is
    /// not undefined behaviour, but matching and encoding then go wrong.
    /// Debug builds check all of them.
    #[allow(unsafe_code)]
    #[must_use]
    #[inline]
    pub unsafe fn from_bytes_unchecked(b: Bytes) -> Self {
        debug_assert!(validate_name(&b).is_ok() && bytes_to_utf8(&b).is_ok());
        Self(b)
    }

    /// The name as a string slice.
    #[must_use]
    #[inline]
    pub fn as_str(&self) -> &str {
        utf8(&self.0)
    }

    /// The name as bytes (UTF-8).
    #[must_use]
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The underlying buffer, for encoding without a copy.
    #[must_use]
    #[inline]
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// The levels of the name, split at `/`. Empty levels are levels: `/finance` has two.
    pub fn levels(&self) -> core::str::Split<'_, char> {
        self.as_str().split('/')
    }

    /// Whether the name starts with `$` (such as `$SYS/uptime`), which filters starting with a
    /// wildcard do not match \[MQTT-4.7.2-1\].
    #[must_use]
    pub fn is_dollar(&self) -> bool {
        self.0.first() == Some(&b'$')
    }
}

impl TryFrom<Bytes> for TopicName {
    type Error = TopicError;

    /// Validates UTF-8 and the name rules, keeping the buffer (no copy).
    fn try_from(b: Bytes) -> Result<Self, TopicError> {
        validate_name(&b)?;
        bytes_to_utf8(&b)?;
        Ok(Self(b))
    }
}

impl TryFrom<&str> for TopicName {
    type Error = TopicError;

    fn try_from(s: &str) -> Result<Self, TopicError> {
        validate_name(s.as_bytes())?;
        Ok(Self(Bytes::copy_from_slice(s.as_bytes())))
    }
}

impl TryFrom<String> for TopicName {
    type Error = TopicError;

    /// Validates and takes over the string's allocation.
    fn try_from(s: String) -> Result<Self, TopicError> {
        validate_name(s.as_bytes())?;
        Ok(Self(Bytes::from(s)))
    }
}

impl FromStr for TopicName {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<Self, TopicError> {
        Self::try_from(s)
    }
}

/// A validated MQTT topic filter: what a SUBSCRIBE asks for, possibly with the `+`
/// (single-level) and `#` (multi-level) wildcards, possibly a shared subscription
/// `$share/{ShareName}/{filter}`.
///
/// Holds a UTF-8 [`Bytes`], so cloning is a reference-count increment. The rules checked on
/// construction are those of [`TopicName`] except for wildcards, plus: `+` occupies a whole level
/// \[MQTT-4.7.1-2\]; `#` occupies a whole level and is the last one \[MQTT-4.7.1-1\]; a filter
/// starting with `$share/` is a shared subscription whose ShareName is non-empty, has no `+` or
/// `#`, and is followed by `/` and a non-empty filter \[MQTT-4.8.2-1\] \[MQTT-4.8.2-2\].
///
/// ```
/// use mqtt_topic::{TopicError, TopicFilter};
///
/// let f: TopicFilter = "$share/workers/sport/+/player1".parse()?;
/// assert_eq!(f.share_name(), Some("workers"));
/// assert_eq!(f.pattern(), "sport/+/player1");
/// assert!(f.is_wildcard());
/// assert_eq!(TopicFilter::try_from("sport/#/ranking"), Err(TopicError::MultiLevelNotLast));
/// # Ok::<(), TopicError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicFilter {
    raw: Bytes,
    /// Offset of the pattern in `raw`: 0, or past `$share/{ShareName}/`.
    pattern_start: usize,
}

impl TopicFilter {
    fn new(raw: Bytes) -> Result<Self, TopicError> {
        let pattern_start = validate_filter(&raw)?;
        Ok(Self { raw, pattern_start })
    }

    /// Validates `s` and wraps it without copying.
    ///
    /// # Errors
    ///
    /// A [`TopicError`] naming the first rule `s` breaks.
    pub fn from_static(s: &'static str) -> Result<Self, TopicError> {
        Self::new(Bytes::from_static(s.as_bytes()))
    }

    /// Checks `filter` by the rules of a topic filter without keeping it (nothing is copied
    /// or allocated), and returns its ShareName if it is a shared subscription: what an
    /// encoder checks before it writes a filter it holds as a plain string.
    ///
    /// ```
    /// use mqtt_topic::{TopicError, TopicFilter};
    ///
    /// assert_eq!(TopicFilter::check("sport/+/player1"), Ok(None));
    /// assert_eq!(TopicFilter::check("$share/workers/jobs/#"), Ok(Some("workers")));
    /// assert_eq!(TopicFilter::check("sport/#/ranking"), Err(TopicError::MultiLevelNotLast));
    /// ```
    ///
    /// # Errors
    ///
    /// A [`TopicError`] naming the first rule `filter` breaks.
    pub fn check(filter: &str) -> Result<Option<&str>, TopicError> {
        let pattern_start = validate_filter(filter.as_bytes())?;
        if pattern_start == 0 {
            return Ok(None);
        }
        Ok(filter.get(SHARE_PREFIX.len()..pattern_start - 1))
    }

    /// The whole filter as written, including any `$share/{ShareName}/` prefix.
    #[must_use]
    #[inline]
    pub fn as_str(&self) -> &str {
        utf8(&self.raw)
    }

    /// The whole filter as bytes (UTF-8).
    #[must_use]
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The underlying buffer, for encoding without a copy.
    #[must_use]
    #[inline]
    pub fn into_bytes(self) -> Bytes {
        self.raw
    }

    /// The part matched against topic names: the filter without its `$share/{ShareName}/`
    /// prefix, or the whole filter when it is not shared.
    #[must_use]
    pub fn pattern(&self) -> &str {
        utf8(self.pattern_bytes())
    }

    pub(crate) fn pattern_bytes(&self) -> &[u8] {
        self.raw.get(self.pattern_start..).unwrap_or_default()
    }

    /// The ShareName of a shared subscription (`workers` in `$share/workers/a/b`).
    #[must_use]
    pub fn share_name(&self) -> Option<&str> {
        if self.pattern_start == 0 {
            return None;
        }
        let group = self
            .raw
            .get(SHARE_PREFIX.len()..self.pattern_start - 1)
            .unwrap_or_default();
        Some(utf8(group))
    }

    /// Whether this is a shared subscription (`$share/{ShareName}/{filter}`).
    #[must_use]
    pub fn is_shared(&self) -> bool {
        self.pattern_start != 0
    }

    /// Whether the pattern contains a `+` or `#` level.
    #[must_use]
    pub fn is_wildcard(&self) -> bool {
        self.pattern_bytes().iter().any(|&c| c == b'+' || c == b'#')
    }

    /// The levels of the pattern, split at `/` (the `$share/{ShareName}/` prefix is not part of
    /// them). Empty levels are levels: `/finance` has two.
    pub fn levels(&self) -> core::str::Split<'_, char> {
        self.pattern().split('/')
    }

    /// Whether this filter matches `name`, by the rules of [`matches()`]. A shared subscription
    /// matches with its pattern.
    #[must_use]
    pub fn matches(&self, name: &TopicName) -> bool {
        matches_bytes(self.pattern_bytes(), name.as_bytes())
    }
}

impl TryFrom<Bytes> for TopicFilter {
    type Error = TopicError;

    /// Validates UTF-8 and the filter rules, keeping the buffer (no copy).
    fn try_from(b: Bytes) -> Result<Self, TopicError> {
        let f = Self::new(b)?;
        bytes_to_utf8(&f.raw)?;
        Ok(f)
    }
}

impl TryFrom<&str> for TopicFilter {
    type Error = TopicError;

    fn try_from(s: &str) -> Result<Self, TopicError> {
        let pattern_start = validate_filter(s.as_bytes())?;
        Ok(Self {
            raw: Bytes::copy_from_slice(s.as_bytes()),
            pattern_start,
        })
    }
}

impl TryFrom<String> for TopicFilter {
    type Error = TopicError;

    /// Validates and takes over the string's allocation.
    fn try_from(s: String) -> Result<Self, TopicError> {
        Self::new(Bytes::from(s))
    }
}

impl FromStr for TopicFilter {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<Self, TopicError> {
        Self::try_from(s)
    }
}

macro_rules! str_like {
    ($t:ty) => {
        impl Deref for $t {
            type Target = str;

            #[inline]
            fn deref(&self) -> &str {
                self.as_str()
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl AsRef<[u8]> for $t {
            fn as_ref(&self) -> &[u8] {
                self.as_bytes()
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self.as_str(), f)
            }
        }

        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.as_bytes() == other.as_bytes()
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.as_bytes() == other.as_bytes()
            }
        }

        impl From<$t> for Bytes {
            fn from(t: $t) -> Bytes {
                t.into_bytes()
            }
        }
    };
}

str_like!(TopicName);
str_like!(TopicFilter);

/// Whether the topic filter `filter` matches the topic name `name`, by the rules of the MQTT
/// specification, section 4.7:
///
/// - levels are separated by `/`, and empty levels are levels (`/finance` has two, and matches
///   `+/+` and `/+` but not `+`);
/// - `+` matches exactly one level, including an empty one (`sport/+` matches `sport/` but not
///   `sport`);
/// - `#` matches its parent level and any number of levels below (`sport/#` matches `sport`,
///   `sport/` and `sport/tennis/player1`);
/// - a filter whose first level is a wildcard does not match a name that starts with `$`
///   (`#` does not match `$SYS/uptime`; `$SYS/#` does) \[MQTT-4.7.2-1\].
///
/// Both arguments are taken as written: `filter` is the pattern (strip a `$share/{ShareName}/`
/// prefix first, or use [`TopicFilter::matches`]). The inputs are expected to be valid; for
/// invalid ones the answer is unspecified, but the function never panics.
///
/// ```
/// use mqtt_topic::matches;
///
/// assert!(matches("sport/tennis/+", "sport/tennis/player1"));
/// assert!(matches("sport/#", "sport"));
/// assert!(!matches("sport/+", "sport"));
/// assert!(!matches("#", "$SYS/uptime"));
/// assert!(matches("$SYS/#", "$SYS/uptime"));
/// ```
#[must_use]
pub fn matches(filter: &str, name: &str) -> bool {
    matches_bytes(filter.as_bytes(), name.as_bytes())
}

pub(crate) fn matches_bytes(filter: &[u8], name: &[u8]) -> bool {
    if name.first() == Some(&b'$') && matches!(filter.first(), Some(b'+' | b'#')) {
        return false;
    }
    let mut f = filter.split(|&c| c == b'/');
    let mut n = name.split(|&c| c == b'/');
    loop {
        match (f.next(), n.next()) {
            (Some(b"#"), _) => return true,
            (None, None) => return true,
            (Some(b"+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pattern rules as first written, level by level: the word-wise
    /// scan must give the same answer, error included.
    fn validate_pattern_by_levels(b: &[u8]) -> Result<(), TopicError> {
        let mut levels = b.split(|&c| c == b'/').peekable();
        while let Some(level) = levels.next() {
            match level {
                b"+" => {}
                b"#" => {
                    if levels.peek().is_some() {
                        return Err(TopicError::MultiLevelNotLast);
                    }
                }
                _ => {
                    for &c in level {
                        match c {
                            b'+' => return Err(TopicError::SingleLevelNotAlone),
                            b'#' => return Err(TopicError::MultiLevelNotAlone),
                            _ => {}
                        }
                    }
                }
            }
        }
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn pattern_scan_agrees_with_the_level_rules(s in "[a/+#\u{e9}]{0,40}") {
            proptest::prop_assert_eq!(
                validate_pattern(s.as_bytes()),
                validate_pattern_by_levels(s.as_bytes()),
                "{:?}", s
            );
        }
    }

    #[test]
    fn shared_offsets() {
        let f = TopicFilter::try_from("$share/g/a/b").unwrap();
        assert_eq!(f.share_name(), Some("g"));
        assert_eq!(f.pattern(), "a/b");
        assert!(f.is_shared());
        let f = TopicFilter::try_from("$share").unwrap();
        assert_eq!(f.share_name(), None);
        assert_eq!(f.pattern(), "$share");
    }

    #[test]
    fn from_bytes_is_zero_copy() {
        let frame = Bytes::from_static(b"xxsport/tennisyy");
        let slice = frame.slice(2..14);
        let ptr = slice.as_ptr();
        let name = TopicName::try_from(slice).unwrap();
        assert_eq!(name.as_bytes().as_ptr(), ptr);
        assert_eq!(name, "sport/tennis");
    }

    #[test]
    fn invalid_utf8() {
        let b = Bytes::from_static(b"a/\xff");
        assert_eq!(TopicName::try_from(b.clone()), Err(TopicError::InvalidUtf8));
        assert_eq!(TopicFilter::try_from(b), Err(TopicError::InvalidUtf8));
    }
}
