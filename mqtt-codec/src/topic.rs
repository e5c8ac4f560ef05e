//! The Topic Name of a PUBLISH, validated when it is made.

use bytes::Bytes;
use mqtt_topic::{TopicError, TopicName};

use crate::types::Utf8Bytes;

/// The Topic Name field of a PUBLISH: a valid [`TopicName`], or empty when
/// an MQTT 5.0 Topic Alias stands for it.
///
/// The rules of a topic name (UTF-8, no U+0000, no `+` or `#`, at most
/// 65,535 bytes) are checked once, when the value is made; so encoding a
/// PUBLISH does not scan its topic again, and the topic a broker routes on
/// is the one the codec decoded, without a copy or a second check. Whether
/// an empty topic is allowed depends on the packet's Topic Alias, which the
/// encoder and decoder check.
///
/// ```
/// use mqtt_codec::{PublishTopic, TopicError, TopicName};
///
/// let t = PublishTopic::try_from("sensors/temp")?;
/// assert_eq!(t, "sensors/temp");
/// assert_eq!(t.name().map(TopicName::as_str), Some("sensors/temp"));
/// assert_eq!(PublishTopic::try_from("sensors/+"), Err(TopicError::WildcardInName));
/// assert!(PublishTopic::try_from("")?.is_empty());
/// # Ok::<(), TopicError>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublishTopic(Option<TopicName>);

impl PublishTopic {
    /// The empty topic, sent with a Topic Alias that stands for the name.
    pub const fn empty() -> Self {
        Self(None)
    }

    /// A topic from a constant.
    ///
    /// # Panics
    ///
    /// If `s` is not empty and not a valid topic name (a programming error:
    /// the value is a constant).
    #[allow(clippy::panic)] // a constant's precondition, as `Utf8Bytes::from_static`
    pub fn from_static(s: &'static str) -> Self {
        if s.is_empty() {
            return Self(None);
        }
        match TopicName::from_static(s) {
            Ok(n) => Self(Some(n)),
            Err(e) => panic!("invalid topic name {s:?}: {e}"),
        }
    }

    /// The topic name, unless the topic is empty.
    #[inline]
    pub fn name(&self) -> Option<&TopicName> {
        self.0.as_ref()
    }

    /// The topic name, unless the topic is empty.
    #[inline]
    pub fn into_name(self) -> Option<TopicName> {
        self.0
    }

    /// The topic as a string slice (`""` when empty).
    #[inline]
    pub fn as_str(&self) -> &str {
        self.0.as_ref().map_or("", TopicName::as_str)
    }

    /// The topic as bytes (UTF-8).
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_ref().map_or(&[], TopicName::as_bytes)
    }

    /// Wraps bytes whose every rule the decoder has checked (an empty slice
    /// is the empty topic).
    #[inline]
    pub(crate) fn from_checked(b: Bytes) -> Self {
        if b.is_empty() {
            return Self(None);
        }
        // SAFETY: the decoder's callers (`primitives::topic_name`) checked
        // UTF-8, U+0000 and wildcards; the two-byte length field bounds the
        // size, and emptiness is handled above.
        #[allow(unsafe_code)]
        Self(Some(unsafe { TopicName::from_bytes_unchecked(b) }))
    }

    fn from_bytes(b: Bytes) -> Result<Self, TopicError> {
        if b.is_empty() {
            return Ok(Self(None));
        }
        TopicName::try_from(b).map(|n| Self(Some(n)))
    }
}

impl From<TopicName> for PublishTopic {
    #[inline]
    fn from(name: TopicName) -> Self {
        Self(Some(name))
    }
}

impl TryFrom<&str> for PublishTopic {
    type Error = TopicError;

    /// Checks the rules of a topic name, unless `s` is empty.
    fn try_from(s: &str) -> Result<Self, TopicError> {
        if s.is_empty() {
            return Ok(Self(None));
        }
        TopicName::try_from(s).map(|n| Self(Some(n)))
    }
}

impl TryFrom<String> for PublishTopic {
    type Error = TopicError;

    /// Checks the rules of a topic name, unless `s` is empty, and keeps the
    /// allocation.
    fn try_from(s: String) -> Result<Self, TopicError> {
        Self::from_bytes(Bytes::from(s))
    }
}

impl TryFrom<Bytes> for PublishTopic {
    type Error = TopicError;

    /// Checks UTF-8 and the rules of a topic name, unless `b` is empty.
    fn try_from(b: Bytes) -> Result<Self, TopicError> {
        Self::from_bytes(b)
    }
}

impl TryFrom<Utf8Bytes> for PublishTopic {
    type Error = TopicError;

    /// Checks the rules of a topic name, unless `s` is empty.
    fn try_from(s: Utf8Bytes) -> Result<Self, TopicError> {
        Self::from_bytes(s.into_bytes())
    }
}

impl From<PublishTopic> for Bytes {
    fn from(t: PublishTopic) -> Bytes {
        t.0.map(TopicName::into_bytes).unwrap_or_default()
    }
}

crate::types::str_like!(PublishTopic);

impl PartialEq<TopicName> for PublishTopic {
    fn eq(&self, other: &TopicName) -> bool {
        self.0.as_ref() == Some(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_the_alias_form_and_everything_else_is_a_name() {
        for empty in [
            PublishTopic::try_from("").unwrap(),
            PublishTopic::try_from(String::new()).unwrap(),
            PublishTopic::try_from(Bytes::new()).unwrap(),
            PublishTopic::try_from(Utf8Bytes::new()).unwrap(),
            PublishTopic::default(),
        ] {
            assert_eq!(empty, PublishTopic::empty());
            assert!(empty.name().is_none() && empty.is_empty());
            assert_eq!(Bytes::from(empty), Bytes::new());
        }
        let t = PublishTopic::try_from(Bytes::from_static(b"a/b")).unwrap();
        assert_eq!(t, TopicName::try_from("a/b").unwrap());
        assert_eq!((t.as_str(), t.as_bytes()), ("a/b", &b"a/b"[..]));
        assert_eq!(format!("{t} {t:?}"), "a/b \"a/b\"");
        assert_eq!(Bytes::from(t), Bytes::from_static(b"a/b"));
    }

    #[test]
    fn every_source_checks_the_rules_of_a_name() {
        let cases: [(&[u8], TopicError); 5] = [
            (b"a/+", TopicError::WildcardInName),
            (b"#", TopicError::WildcardInName),
            (b"a\0b", TopicError::NullCharacter),
            (b"\xff", TopicError::InvalidUtf8),
            (&[b'x'; 65_536], TopicError::TooLong { len: 65_536 }),
        ];
        for (bytes, err) in cases {
            let b = Bytes::copy_from_slice(bytes);
            assert_eq!(PublishTopic::try_from(b), Err(err), "{bytes:?}");
            if let Ok(s) = std::str::from_utf8(bytes) {
                assert_eq!(PublishTopic::try_from(s), Err(err));
                assert_eq!(PublishTopic::try_from(s.to_owned()), Err(err));
            }
        }
        let u = Utf8Bytes::try_from("a/#").unwrap();
        assert_eq!(PublishTopic::try_from(u), Err(TopicError::WildcardInName));
    }
}
