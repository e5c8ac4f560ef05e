//! The error returned when a topic name or filter is rejected.

/// Why a string is not a valid topic name, topic filter or shared subscription.
///
/// Each variant names the rule of the MQTT specification (section 4.7 for topics, 4.8.2 for
/// shared subscriptions) that the input breaks. A broker answers such a topic with reason code
/// 0x90 (Topic Name invalid) in a PUBLISH context or 0x8F (Topic Filter invalid) in a
/// SUBSCRIBE context, or closes the connection under MQTT 3.1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The topic is the empty string: "All Topic Names and Topic Filters MUST be at least one
    /// character long" \[MQTT-4.7.3-1\].
    #[error("topic is empty")]
    Empty,
    /// The topic is longer than 65,535 bytes, the most a UTF-8 Encoded String can hold
    /// \[MQTT-4.7.3-3\].
    #[error("topic of {len} bytes exceeds 65535 bytes")]
    TooLong {
        /// Length of the rejected input in bytes.
        len: usize,
    },
    /// The bytes are not well-formed UTF-8 \[MQTT-1.5.4-1\].
    #[error("topic is not valid utf-8")]
    InvalidUtf8,
    /// The topic contains the null character U+0000 \[MQTT-4.7.3-2\].
    #[error("topic contains the null character")]
    NullCharacter,
    /// A topic name contains `+` or `#`: "The wildcard characters can be used in Topic Filters,
    /// but MUST NOT be used within a Topic Name" \[MQTT-4.7.0-1\].
    #[error("wildcard in topic name")]
    WildcardInName,
    /// A `+` shares its level with other characters (`sport+`): "the single-level wildcard MUST
    /// occupy an entire level of the filter" \[MQTT-4.7.1-2\].
    #[error("single-level wildcard must occupy an entire level")]
    SingleLevelNotAlone,
    /// A `#` shares its level with other characters (`sport/tennis#`): "the multi-level wildcard
    /// character MUST be specified either on its own or following a topic level separator"
    /// \[MQTT-4.7.1-1\].
    #[error("multi-level wildcard must occupy an entire level")]
    MultiLevelNotAlone,
    /// A `#` level is followed by more levels (`sport/#/ranking`): "in either case it MUST be
    /// the last character specified in the Topic Filter" \[MQTT-4.7.1-1\].
    #[error("multi-level wildcard must be the last level")]
    MultiLevelNotLast,
    /// A shared subscription has an empty ShareName (`$share//sport`): "A ShareName MUST be at
    /// least one character long" \[MQTT-4.8.2-1\].
    #[error("share name is empty")]
    EmptyShareName,
    /// A ShareName contains `+` or `#`: "The ShareName MUST NOT contain the characters "/", "+"
    /// or "#"" \[MQTT-4.8.2-2\].
    #[error("share name contains a wildcard")]
    InvalidShareName,
    /// `$share/{ShareName}` is not followed by `/` and a non-empty topic filter
    /// \[MQTT-4.8.2-2\].
    #[error("shared subscription has no topic filter")]
    MissingSharedFilter,
}
