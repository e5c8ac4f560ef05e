//! Fuzzes topic validation, `matches`, the subscription tree and the retained index with an
//! arbitrary list of operations, checking every answer against a brute-force model.

#![no_main]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mqtt_topic::{RetainedIndex, SubscriptionTree, TopicFilter, TopicName, matches};

/// A level from a small alphabet (so that filters and names collide), or arbitrary text.
#[derive(Arbitrary, Debug)]
enum Level {
    Empty,
    A,
    B,
    Dollar,
    Plus,
    Hash,
    Share,
    Text(String),
}

/// A topic built from levels, joined with `/`.
#[derive(Arbitrary, Debug)]
struct Topic(Vec<Level>);

impl Topic {
    fn render(&self) -> String {
        let levels: Vec<&str> = self
            .0
            .iter()
            .map(|l| match l {
                Level::Empty => "",
                Level::A => "a",
                Level::B => "b",
                Level::Dollar => "$s",
                Level::Plus => "+",
                Level::Hash => "#",
                Level::Share => "$share",
                Level::Text(t) => t.as_str(),
            })
            .collect();
        levels.join("/")
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Subscribe {
        filter: Topic,
        client: u8,
        value: u8,
    },
    Unsubscribe {
        filter: Topic,
        client: u8,
    },
    Publish {
        name: Topic,
    },
    Retain {
        name: Topic,
        value: u8,
    },
    Unretain {
        name: Topic,
    },
    Lookup {
        filter: Topic,
    },
    Raw {
        filter: String,
        name: String,
    },
}

type Key = (String, u8);

fuzz_target!(|ops: Vec<Op>| {
    let mut tree: SubscriptionTree<Key, u8> = SubscriptionTree::new();
    let mut subs: BTreeMap<Key, u8> = BTreeMap::new();
    let mut retained: RetainedIndex<u8> = RetainedIndex::new();
    let mut names: BTreeMap<String, u8> = BTreeMap::new();

    for op in ops.iter().take(256) {
        match op {
            Op::Subscribe {
                filter,
                client,
                value,
            } => {
                let s = filter.render();
                if let Ok(f) = TopicFilter::try_from(s.as_str()) {
                    assert_eq!(f.as_str(), s);
                    let key = (s, *client);
                    assert_eq!(
                        tree.insert(&f, key.clone(), *value),
                        subs.insert(key, *value)
                    );
                }
            }
            Op::Unsubscribe { filter, client } => {
                let s = filter.render();
                if let Ok(f) = TopicFilter::try_from(s.as_str()) {
                    let key = (s, *client);
                    assert_eq!(tree.get(&f, &key), subs.get(&key));
                    assert_eq!(tree.remove(&f, &key), subs.remove(&key));
                }
            }
            Op::Publish { name } => {
                let s = name.render();
                let Ok(n) = TopicName::try_from(s.as_str()) else {
                    continue;
                };
                let mut got = Vec::new();
                tree.for_each_match(&n, |k, v| got.push((k.clone(), *v)));
                let mut shared = Vec::new();
                tree.for_each_shared_match(&n, |g, members| {
                    for (k, v) in members {
                        shared.push((g.to_owned(), k.clone(), *v));
                    }
                });
                got.sort();
                shared.sort();
                let mut want = Vec::new();
                let mut want_shared = Vec::new();
                for ((f, c), v) in &subs {
                    let parsed = TopicFilter::try_from(f.as_str()).unwrap();
                    if matches(parsed.pattern(), &s) {
                        assert!(parsed.matches(&n));
                        match parsed.share_name() {
                            None => want.push(((f.clone(), *c), *v)),
                            Some(g) => want_shared.push((g.to_owned(), (f.clone(), *c), *v)),
                        }
                    }
                }
                want_shared.sort();
                assert_eq!(got, want);
                assert_eq!(shared, want_shared);
            }
            Op::Retain { name, value } => {
                let s = name.render();
                if let Ok(n) = TopicName::try_from(s.clone()) {
                    assert_eq!(retained.insert(n, *value), names.insert(s, *value));
                }
            }
            Op::Unretain { name } => {
                let s = name.render();
                assert_eq!(retained.remove(s.as_str()), names.remove(&s));
            }
            Op::Lookup { filter } => {
                let s = filter.render();
                let Ok(f) = TopicFilter::try_from(s.as_str()) else {
                    continue;
                };
                let mut got = Vec::new();
                retained.for_each_match(&f, |n, v| got.push((n.to_string(), *v)));
                got.sort();
                let want: Vec<(String, u8)> = names
                    .iter()
                    .filter(|(n, _)| matches(f.pattern(), n))
                    .map(|(n, v)| (n.clone(), *v))
                    .collect();
                assert_eq!(got, want);
            }
            Op::Raw { filter, name } => {
                // Never panics, whatever the input.
                let any = matches(filter, name);
                if let (Ok(f), Ok(n)) = (
                    TopicFilter::try_from(filter.as_str()),
                    TopicName::try_from(name.as_str()),
                ) {
                    assert_eq!(f.matches(&n), matches(f.pattern(), name));
                    if !f.is_shared() {
                        assert_eq!(f.matches(&n), any);
                    }
                }
            }
        }
    }

    assert_eq!(tree.check_invariants(), Ok(()));
    assert_eq!(retained.check_invariants(), Ok(()));
    assert_eq!(tree.len(), subs.len());
    assert_eq!(retained.len(), names.len());
    let mut fresh = SubscriptionTree::new();
    for (k, v) in &subs {
        fresh.insert(&TopicFilter::try_from(k.0.as_str()).unwrap(), k.clone(), *v);
    }
    assert_eq!(tree.node_count(), fresh.node_count());
});
