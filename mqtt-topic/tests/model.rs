//! Model-based tests: the subscription tree and the retained index against a brute-force scan
//! with `matches`, over small alphabets so that levels collide.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};

use mqtt_topic::{RetainedIndex, SubscriptionTree, TopicFilter, TopicName, matches};
use proptest::prelude::*;

/// Levels of names: few, so that filters and names share them; includes the empty level and
/// a `$` level (which only matters first).
fn name_level() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "a", "b", "$s"])
}

fn filter_level() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "a", "b", "$s", "+", "+"])
}

fn name() -> impl Strategy<Value = String> {
    prop::collection::vec(name_level(), 1..5)
        .prop_map(|l| l.join("/"))
        .prop_filter("names are non-empty", |n| !n.is_empty())
}

/// A filter: levels, maybe a trailing `#`, maybe shared.
fn filter() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(filter_level(), 0..5),
        any::<bool>(),
        prop::sample::select(vec![None, None, None, Some("g1"), Some("g2")]),
    )
        .prop_map(|(levels, hash, group)| {
            let mut f = levels.join("/");
            if levels.is_empty() {
                f = "#".to_owned();
            } else if hash {
                f.push_str("/#");
            } else if f.is_empty() {
                f = "+".to_owned();
            }
            match group {
                Some(g) => format!("$share/{g}/{f}"),
                None => f,
            }
        })
}

/// Subscriber key: the filter it came with and a client number, so results are comparable.
type Key = (String, u8);

fn tf(s: &str) -> TopicFilter {
    TopicFilter::try_from(s).unwrap()
}

/// Non-shared matches from the tree, sorted.
fn tree_matches(tree: &SubscriptionTree<Key, u16>, name: &str) -> Vec<(Key, u16)> {
    let mut out = Vec::new();
    tree.for_each_match(name, |k, v| out.push((k.clone(), *v)));
    out.sort();
    out
}

/// Shared matches from the tree: (group, members) sorted.
fn tree_shared(tree: &SubscriptionTree<Key, u16>, name: &str) -> Vec<(String, Vec<(Key, u16)>)> {
    let mut out = Vec::new();
    tree.for_each_shared_match(name, |g, members| {
        out.push((g.to_owned(), members.to_vec()))
    });
    out.sort();
    out
}

/// The model: every subscription by (filter, client).
type Model = BTreeMap<Key, u16>;

fn model_matches(model: &Model, name: &str) -> Vec<(Key, u16)> {
    model
        .iter()
        .filter(|((f, _), _)| {
            let f = tf(f);
            !f.is_shared() && matches(f.pattern(), name)
        })
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// Shared matches from the tree by group filter (`$share/{ShareName}/{filter}`): (filter,
/// members) sorted.
fn tree_shared_groups(
    tree: &SubscriptionTree<Key, u16>,
    name: &str,
) -> Vec<(String, Vec<(Key, u16)>)> {
    let mut out = Vec::new();
    tree.for_each_shared_group(name, |f, members| {
        out.push((f.as_str().to_owned(), members.to_vec()))
    });
    out.sort();
    out
}

/// The members of each shared subscription of the model that match `name`, by filter.
fn model_shared_groups(model: &Model, name: &str) -> BTreeMap<String, Vec<(Key, u16)>> {
    let mut groups: BTreeMap<String, Vec<(Key, u16)>> = BTreeMap::new();
    for ((f, c), v) in model {
        let parsed = tf(f);
        if parsed.is_shared() && matches(parsed.pattern(), name) {
            // One group per (ShareName, filter); members sorted by key.
            groups
                .entry(f.clone())
                .or_default()
                .push(((f.clone(), *c), *v));
        }
    }
    groups
}

fn model_shared(model: &Model, name: &str) -> Vec<(String, Vec<(Key, u16)>)> {
    let mut out: Vec<_> = model_shared_groups(model, name)
        .into_iter()
        .map(|(f, members)| (tf(&f).share_name().unwrap().to_owned(), members))
        .collect();
    out.sort();
    out
}

fn build(model: &Model) -> SubscriptionTree<Key, u16> {
    let mut tree = SubscriptionTree::new();
    for (k, v) in model {
        tree.insert(&tf(&k.0), k.clone(), *v);
    }
    tree
}

fn dump(tree: &SubscriptionTree<Key, u16>) -> Vec<(String, Key, u16)> {
    let mut out = Vec::new();
    tree.for_each(|f, k, v| out.push((f.to_owned(), k.clone(), *v)));
    out.sort();
    out
}

#[derive(Debug, Clone)]
enum Op {
    Insert(String, u8, u16),
    Remove(String, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (filter(), 0..3u8, any::<u16>()).prop_map(|(f, c, v)| Op::Insert(f, c, v)),
        2 => (filter(), 0..3u8).prop_map(|(f, c)| Op::Remove(f, c)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn tree_equals_brute_force(
        subs in prop::collection::vec((filter(), 0..3u8, any::<u16>()), 0..40),
        names in prop::collection::vec(name(), 1..20),
    ) {
        let mut model = Model::new();
        let mut tree = SubscriptionTree::new();
        for (f, c, v) in subs {
            let old = tree.insert(&tf(&f), (f.clone(), c), v);
            prop_assert_eq!(old, model.insert((f, c), v));
        }
        prop_assert_eq!(tree.len(), model.len());
        prop_assert_eq!(tree.check_invariants(), Ok(()));
        for n in &names {
            prop_assert_eq!(tree_matches(&tree, n), model_matches(&model, n), "name {:?}", n);
            prop_assert_eq!(tree_shared(&tree, n), model_shared(&model, n), "name {:?}", n);
            let groups = model_shared_groups(&model, n);
            let want: Vec<_> = groups.clone().into_iter().collect();
            prop_assert_eq!(tree_shared_groups(&tree, n), want, "name {:?}", n);
            for (f, members) in &groups {
                prop_assert_eq!(tree.shared_members(&tf(f)), members.as_slice(), "filter {:?}", f);
            }
            let tn = TopicName::try_from(n.as_str()).unwrap();
            let mut via_name = 0;
            tree.for_each_match(&tn, |_, _| via_name += 1);
            prop_assert_eq!(via_name, model_matches(&model, n).len());
        }
    }

    #[test]
    fn tree_after_inserts_and_removes_equals_fresh_build(ops in prop::collection::vec(op(), 0..80)) {
        let mut model = Model::new();
        let mut tree = SubscriptionTree::new();
        for op in ops {
            match op {
                Op::Insert(f, c, v) => {
                    let old = tree.insert(&tf(&f), (f.clone(), c), v);
                    prop_assert_eq!(old, model.insert((f, c), v));
                }
                Op::Remove(f, c) => {
                    let key = (f.clone(), c);
                    let members: Vec<(Key, u16)> = model
                        .iter()
                        .filter(|((g, _), _)| *g == f && tf(g).is_shared())
                        .map(|(k, v)| (k.clone(), *v))
                        .collect();
                    prop_assert_eq!(tree.shared_members(&tf(&f)), members.as_slice());
                    prop_assert_eq!(tree.get(&tf(&f), &key).copied(), model.get(&key).copied());
                    prop_assert_eq!(tree.remove(&tf(&f), &key), model.remove(&key));
                }
            }
            prop_assert_eq!(tree.check_invariants(), Ok(()));
        }
        let fresh = build(&model);
        prop_assert_eq!(dump(&tree), dump(&fresh));
        prop_assert_eq!(tree.node_count(), fresh.node_count());
        prop_assert_eq!(tree.len(), model.len());
        // The dump's filter strings are the filters as written.
        let written: BTreeSet<String> = dump(&tree).into_iter().map(|(f, _, _)| f).collect();
        let expected: BTreeSet<String> = model.keys().map(|(f, _)| f.clone()).collect();
        prop_assert_eq!(written, expected);
        // Removing everything leaves an empty tree with no nodes.
        let keys: Vec<Key> = model.keys().cloned().collect();
        for k in keys {
            prop_assert!(tree.remove(&tf(&k.0), &k).is_some());
        }
        prop_assert!(tree.is_empty());
        prop_assert_eq!(tree.node_count(), 0);
    }

    #[test]
    fn retained_equals_brute_force(
        ops in prop::collection::vec((name(), any::<bool>(), any::<u16>()), 0..60),
        filters in prop::collection::vec(filter(), 1..20),
    ) {
        let mut model: BTreeMap<String, u16> = BTreeMap::new();
        let mut index = RetainedIndex::new();
        for (n, insert, v) in ops {
            if insert {
                let old = index.insert(TopicName::try_from(n.as_str()).unwrap(), v);
                prop_assert_eq!(old, model.insert(n, v));
            } else {
                prop_assert_eq!(index.remove(n.as_str()), model.remove(&n));
            }
            prop_assert_eq!(index.check_invariants(), Ok(()));
        }
        prop_assert_eq!(index.len(), model.len());
        for f in &filters {
            let f = tf(f);
            let mut got = Vec::new();
            index.for_each_match(&f, |n, v| got.push((n.to_string(), *v)));
            got.sort();
            let want: Vec<(String, u16)> = model
                .iter()
                .filter(|(n, _)| matches(f.pattern(), n))
                .map(|(n, v)| (n.clone(), *v))
                .collect();
            prop_assert_eq!(got, want, "filter {:?}", f);
        }
        // Fresh build has the same number of nodes: no dead branches were left behind.
        let mut fresh = RetainedIndex::new();
        for (n, v) in &model {
            fresh.insert(TopicName::try_from(n.as_str()).unwrap(), *v);
        }
        prop_assert_eq!(index.node_count(), fresh.node_count());
        for (n, v) in &model {
            prop_assert_eq!(index.get(n.as_str()), Some(v));
        }
    }
}

#[test]
fn deep_topics_do_not_overflow_the_stack() {
    // 32,767 levels: the longest possible topic of one-byte levels.
    let deep = "a/".repeat(32_767) + "a";
    let name = TopicName::try_from(deep.as_str()).unwrap();
    let plus = "+/".repeat(32_767) + "#";
    let mut tree = SubscriptionTree::new();
    tree.insert(&tf(&deep), 1u8, ());
    tree.insert(&tf(&plus), 2u8, ());
    tree.insert(&tf("#"), 3u8, ());
    let mut hits = Vec::new();
    tree.for_each_match(&name, |k, ()| hits.push(*k));
    hits.sort_unstable();
    assert_eq!(hits, [1, 2, 3]);
    assert_eq!(tree.remove(&tf(&deep), &1), Some(()));
    assert_eq!(tree.check_invariants(), Ok(()));

    let mut index = RetainedIndex::new();
    index.insert(name.clone(), ());
    let mut n = 0;
    index.for_each_match(&tf("#"), |_, ()| n += 1);
    index.for_each_match(&tf(&plus), |_, ()| n += 1);
    assert_eq!(n, 2);
    drop(tree);
    drop(index);
}

#[test]
fn many_children_switch_to_map_and_back() {
    let mut tree = SubscriptionTree::new();
    let mut index = RetainedIndex::new();
    for i in 0..200u32 {
        tree.insert(&tf(&format!("dev/{i}/t")), i, ());
        index.insert(TopicName::try_from(format!("dev/{i}/t")).unwrap(), i);
    }
    for i in 0..200u32 {
        let mut hits = Vec::new();
        tree.for_each_match(&format!("dev/{i}/t"), |k, ()| hits.push(*k));
        assert_eq!(hits, [i]);
    }
    let mut n = 0;
    index.for_each_match(&tf("dev/+/t"), |_, _| n += 1);
    assert_eq!(n, 200);
    for i in 0..195u32 {
        assert!(tree.remove(&tf(&format!("dev/{i}/t")), &i).is_some());
        assert!(index.remove(&format!("dev/{i}/t")).is_some());
    }
    assert_eq!(tree.check_invariants(), Ok(()));
    assert_eq!(index.check_invariants(), Ok(()));
    assert_eq!(tree.node_count(), 1 + 2 * 5);
    assert_eq!(index.node_count(), 1 + 2 * 5);
    let mut hits = Vec::new();
    tree.for_each_match("dev/197/t", |k, ()| hits.push(*k));
    assert_eq!(hits, [197]);
}
