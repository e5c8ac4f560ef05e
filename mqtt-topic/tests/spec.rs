//! Every topic example of the MQTT 5.0 specification (section 4.7, and 4.8.2 for shared
//! subscriptions; the 3.1.1 section 4.7 examples are the same set), in both directions, checked
//! through `matches`, `TopicFilter::matches`, the subscription tree and the retained index.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use bytes::Bytes;
use mqtt_topic::{
    MAX_TOPIC_LEN, RetainedIndex, SubscriptionTree, TopicError, TopicFilter, TopicName, matches,
};

/// (filter, name, matches?)
const MATCH_TABLE: &[(&str, &str, bool)] = &[
    // 4.7.1.2 Multi-level wildcard.
    ("sport/tennis/player1/#", "sport/tennis/player1", true),
    (
        "sport/tennis/player1/#",
        "sport/tennis/player1/ranking",
        true,
    ),
    (
        "sport/tennis/player1/#",
        "sport/tennis/player1/score/wimbledon",
        true,
    ),
    ("sport/tennis/player1/#", "sport/tennis/player2", false),
    ("sport/tennis/player1/#", "sport/tennis", false),
    ("sport/#", "sport", true),
    ("sport/#", "sport/", true),
    ("sport/#", "sports", false),
    ("#", "sport", true),
    ("#", "sport/tennis/player1", true),
    ("#", "/finance", true),
    ("#", "/", true),
    ("sport/tennis/#", "sport/tennis/player1/ranking", true),
    ("sport/tennis/#", "sport/tennis", true),
    ("sport/tennis/#", "sport", false),
    // 4.7.1.3 Single-level wildcard.
    ("sport/tennis/+", "sport/tennis/player1", true),
    ("sport/tennis/+", "sport/tennis/player2", true),
    ("sport/tennis/+", "sport/tennis/player1/ranking", false),
    ("sport/tennis/+", "sport/tennis", false),
    ("sport/+", "sport", false),
    ("sport/+", "sport/", true),
    ("+", "sport", true),
    ("+", "/finance", false),
    ("+/+", "/finance", true),
    ("/+", "/finance", true),
    ("/+", "finance", false),
    ("+/tennis/#", "sport/tennis/player1/ranking", true),
    ("+/tennis/#", "sport/tennis", true),
    ("+/tennis/#", "sport/golf", false),
    ("sport/+/player1", "sport/tennis/player1", true),
    ("sport/+/player1", "sport/golf/player1", true),
    ("sport/+/player1", "sport/tennis/player2", false),
    ("sport/+/player1", "sport//player1", true),
    ("+/#", "sport", true),
    ("sport/+/#", "sport/tennis", true),
    ("sport/+/#", "sport", false),
    // 4.7.2 Topics beginning with $.
    ("#", "$SYS/monitor/Clients", false),
    ("#", "$SYS", false),
    ("+/monitor/Clients", "$SYS/monitor/Clients", false),
    ("+", "$SYS", false),
    ("+/#", "$SYS/uptime", false),
    ("$SYS/#", "$SYS/monitor/Clients", true),
    ("$SYS/#", "$SYS", true),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
    ("$SYS/+", "$SYS", false),
    ("sport/+", "sport/$tennis", true),
    ("sport/#", "sport/$tennis/x", true),
    // 4.7.3 Topic semantic and usage: case, spaces, leading and trailing slashes.
    ("ACCOUNTS", "Accounts", false),
    ("Accounts", "ACCOUNTS", false),
    ("Accounts payable", "Accounts payable", true),
    ("/finance", "finance", false),
    ("finance", "/finance", false),
    ("/finance", "/finance", true),
    ("finance/", "finance", false),
    ("sport/tennis/player1", "sport/tennis/player1", true),
    ("sport/tennis/player1", "sport/tennis/player1/", false),
    ("/", "/", true),
    ("+/+", "/", true),
    ("+", "/", false),
    ("//", "//", true),
    ("+/+/+", "//", true),
    ("température/+", "température/salon", true),
];

fn filter(s: &str) -> TopicFilter {
    TopicFilter::try_from(s).unwrap_or_else(|e| panic!("{s:?} should be a valid filter: {e}"))
}

fn name(s: &str) -> TopicName {
    TopicName::try_from(s).unwrap_or_else(|e| panic!("{s:?} should be a valid name: {e}"))
}

#[test]
fn spec_matches_free_function() {
    for &(f, n, expect) in MATCH_TABLE {
        assert_eq!(matches(f, n), expect, "matches({f:?}, {n:?})");
        assert_eq!(
            filter(f).matches(&name(n)),
            expect,
            "TopicFilter::matches({f:?}, {n:?})"
        );
    }
}

#[test]
fn spec_matches_subscription_tree() {
    // One tree holding every filter, queried with every name, against the table.
    let mut tree = SubscriptionTree::new();
    for &(f, _, _) in MATCH_TABLE {
        tree.insert(&filter(f), f.to_owned(), ());
        tree.insert(&filter(&format!("$share/g/{f}")), f.to_owned(), ());
    }
    for &(f, n, expect) in MATCH_TABLE {
        let mut hit = false;
        tree.for_each_match(n, |k, ()| hit |= k == f);
        assert_eq!(hit, expect, "tree: {f:?} vs {n:?}");
        let mut shared_hit = false;
        tree.for_each_shared_match(n, |group, members| {
            assert_eq!(group, "g");
            shared_hit |= members.iter().any(|(k, ())| k == f);
        });
        assert_eq!(shared_hit, expect, "tree (shared): {f:?} vs {n:?}");
    }
}

#[test]
fn spec_matches_retained_index() {
    let mut index = RetainedIndex::new();
    for &(_, n, _) in MATCH_TABLE {
        index.insert(name(n), n.to_owned());
    }
    for &(f, n, expect) in MATCH_TABLE {
        let mut hit = false;
        index.for_each_match(&filter(f), |tn, v| {
            assert_eq!(tn.as_str(), v);
            hit |= v == n;
        });
        assert_eq!(hit, expect, "retained: {f:?} vs {n:?}");
    }
}

#[test]
fn spec_valid_filters() {
    for f in [
        "#",
        "+",
        "sport/tennis/#",
        "sport/tennis/player1/#",
        "+/tennis/#",
        "sport/+/player1",
        "+/+",
        "/+",
        "/finance",
        "/",
        "//",
        "$SYS/#",
        "$SYS/monitor/+",
        "Accounts payable",
        "$share",
        "$share/consumer1/sport/tennis/+",
        "$share/consumer2/sport/tennis/+",
        "$share/consumer1//finance",
        "$share/g/#",
        "$share/g/+",
        "$share/g/$share/h/x",
    ] {
        assert!(TopicFilter::try_from(f).is_ok(), "{f:?}");
    }
}

#[test]
fn spec_invalid_filters() {
    let long = "a".repeat(MAX_TOPIC_LEN + 1);
    let cases: &[(&str, TopicError)] = &[
        ("", TopicError::Empty),
        (
            &long,
            TopicError::TooLong {
                len: MAX_TOPIC_LEN + 1,
            },
        ),
        ("sport/tennis\0", TopicError::NullCharacter),
        ("sport/tennis#", TopicError::MultiLevelNotAlone),
        ("sport/tennis/#/ranking", TopicError::MultiLevelNotLast),
        ("#/", TopicError::MultiLevelNotLast),
        ("#/#", TopicError::MultiLevelNotLast),
        ("sport#", TopicError::MultiLevelNotAlone),
        ("##", TopicError::MultiLevelNotAlone),
        ("sport+", TopicError::SingleLevelNotAlone),
        ("sport/+tennis", TopicError::SingleLevelNotAlone),
        ("++", TopicError::SingleLevelNotAlone),
        ("+#", TopicError::SingleLevelNotAlone),
        ("$share/", TopicError::EmptyShareName),
        ("$share//sport", TopicError::EmptyShareName),
        ("$share/consumer1", TopicError::MissingSharedFilter),
        ("$share/consumer1/", TopicError::MissingSharedFilter),
        ("$share/con+/sport", TopicError::InvalidShareName),
        ("$share/#/sport", TopicError::InvalidShareName),
        ("$share/+", TopicError::InvalidShareName),
        ("$share/g/sport#", TopicError::MultiLevelNotAlone),
        ("$share/g/#/x", TopicError::MultiLevelNotLast),
        ("$share/g/a+", TopicError::SingleLevelNotAlone),
    ];
    for (f, err) in cases {
        assert_eq!(TopicFilter::try_from(*f), Err(*err), "{f:?}");
        assert_eq!(f.parse::<TopicFilter>(), Err(*err), "{f:?}");
        assert_eq!(TopicFilter::try_from(f.to_string()), Err(*err), "{f:?}");
        assert_eq!(
            TopicFilter::try_from(Bytes::copy_from_slice(f.as_bytes())),
            Err(*err)
        );
    }
}

#[test]
fn spec_valid_names() {
    for n in [
        "sport/tennis/player1",
        "sport",
        "/finance",
        "finance/",
        "/",
        "//",
        "$SYS/monitor/Clients",
        "Accounts payable",
        "ACCOUNTS",
        "température/ü",
        "$share/g/x",
    ] {
        let t = TopicName::try_from(n).unwrap();
        assert_eq!(t, n);
        assert_eq!(t.to_string(), n);
    }
}

#[test]
fn spec_invalid_names() {
    let long = "a".repeat(MAX_TOPIC_LEN + 1);
    let cases: &[(&str, TopicError)] = &[
        ("", TopicError::Empty),
        (
            &long,
            TopicError::TooLong {
                len: MAX_TOPIC_LEN + 1,
            },
        ),
        ("sport\0", TopicError::NullCharacter),
        ("sport/+", TopicError::WildcardInName),
        ("sport/#", TopicError::WildcardInName),
        ("#", TopicError::WildcardInName),
        ("+", TopicError::WildcardInName),
        ("sport/tennis#", TopicError::WildcardInName),
    ];
    for (n, err) in cases {
        assert_eq!(TopicName::try_from(*n), Err(*err), "{n:?}");
        assert_eq!(n.parse::<TopicName>(), Err(*err), "{n:?}");
        assert_eq!(TopicName::try_from(n.to_string()), Err(*err), "{n:?}");
        assert_eq!(
            TopicName::try_from(Bytes::copy_from_slice(n.as_bytes())),
            Err(*err)
        );
    }
}

#[test]
fn length_boundary() {
    let max = "a".repeat(MAX_TOPIC_LEN);
    assert!(TopicName::try_from(max.as_str()).is_ok());
    assert!(TopicFilter::try_from(max.as_str()).is_ok());
}

#[test]
fn invalid_utf8_bytes() {
    for b in [&b"\xff"[..], b"a/\xc3", b"\xed\xa0\x80"] {
        let b = Bytes::copy_from_slice(b);
        assert_eq!(TopicName::try_from(b.clone()), Err(TopicError::InvalidUtf8));
        assert_eq!(TopicFilter::try_from(b), Err(TopicError::InvalidUtf8));
    }
}

#[test]
fn filter_accessors() {
    let f = filter("$share/consumer1//finance");
    assert_eq!(f.share_name(), Some("consumer1"));
    assert_eq!(f.pattern(), "/finance");
    assert_eq!(f.levels().collect::<Vec<_>>(), ["", "finance"]);
    assert!(!f.is_wildcard());
    assert_eq!(f.as_str(), "$share/consumer1//finance");

    let f = filter("sport/+/player1");
    assert!(f.is_wildcard());
    assert!(!f.is_shared());
    assert_eq!(f.share_name(), None);
    assert_eq!(f.levels().count(), 3);

    // A shared subscription's pattern follows the $ rule of its own first level.
    let f = filter("$share/g/#");
    assert!(!f.matches(&name("$SYS/uptime")));
    assert!(f.matches(&name("sport")));
    assert!(name("$SYS").is_dollar());
}

#[test]
fn error_messages_are_lower_case() {
    let errors = [
        TopicError::Empty,
        TopicError::TooLong { len: 70_000 },
        TopicError::InvalidUtf8,
        TopicError::NullCharacter,
        TopicError::WildcardInName,
        TopicError::SingleLevelNotAlone,
        TopicError::MultiLevelNotAlone,
        TopicError::MultiLevelNotLast,
        TopicError::EmptyShareName,
        TopicError::InvalidShareName,
        TopicError::MissingSharedFilter,
    ];
    for e in errors {
        let msg = e.to_string();
        assert!(msg.chars().next().is_some_and(char::is_lowercase), "{msg}");
    }
    assert_eq!(
        TopicError::TooLong { len: 70_000 }.to_string(),
        "topic of 70000 bytes exceeds 65535 bytes"
    );
}
