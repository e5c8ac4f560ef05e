//! Criterion benchmarks of the subscription tree and the retained index on the realistic shape
//! `tenant/{t}/site/{s}/device/{d}/{metric}` (see `common/mod.rs`).
//!
//! Run: `cargo bench -p mqtt-topic --bench tree -- --warm-up-time 1 --measurement-time 3`

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

mod common;

use std::hint::black_box;

use common::{Rng, Universe};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mqtt_topic::{RetainedIndex, SubscriptionTree, TopicFilter, TopicName};

fn build(subs: &[(String, u64, u8)]) -> SubscriptionTree<u64, u8> {
    let mut tree = SubscriptionTree::new();
    for (f, k, v) in subs {
        tree.insert(&TopicFilter::try_from(f.as_str()).unwrap(), *k, *v);
    }
    tree
}

/// Lookup latency at 1k, 100k and 1M subscriptions for 1,024 random names of
/// the universe that `keep` accepts (by how many filters they match).
fn bench_lookup(c: &mut Criterion, group_name: &str, keep: impl Fn(usize) -> bool) {
    let mut group = c.benchmark_group(group_name);
    for (label, n) in [("1k", 1_000u64), ("100k", 100_000), ("1M", 1_000_000)] {
        let universe = Universe::for_subscriptions(n);
        let tree = build(&universe.subscriptions(n, 1));
        let mut rng = Rng::new(2);
        let mut names: Vec<String> = Vec::with_capacity(1024);
        let mut total = 0usize;
        while names.len() < 1024 {
            let name = universe.name(&mut rng);
            let mut count = 0usize;
            tree.for_each_match(name.as_str(), |_, _| count += 1);
            if keep(count) {
                total += count;
                names.push(name);
            }
        }
        println!(
            "{group_name}/{label}: {} subscriptions, {:.1} matches per name on average",
            tree.len(),
            total as f64 / names.len() as f64
        );
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::from_parameter(label), |b| {
            let mut i = 0usize;
            b.iter(|| {
                let name = names[i & 1023].as_str();
                i = i.wrapping_add(1);
                let mut acc = 0u64;
                tree.for_each_match(black_box(name), |k, v| {
                    acc = acc.wrapping_add(k ^ u64::from(*v))
                });
                black_box(acc)
            });
        });
    }
    group.finish();
}

/// Random names: at 1M a random name matches about three times as many
/// filters as at 1k (the tenant-wide `+` and `#` filters grow with the tree).
fn lookup(c: &mut Criterion) {
    bench_lookup(c, "match", |_| true);
}

/// Names that match a handful (3 to 8) of filters at every size, so that the
/// sizes are compared on equal work.
fn lookup_handful(c: &mut Criterion) {
    bench_lookup(c, "match_handful", |n| (3..=8).contains(&n));
}

fn insert_remove(c: &mut Criterion) {
    let mut group = c.benchmark_group("update");
    group.sample_size(10);

    // Bulk rates: 100k subscriptions into an empty tree, and removing all of them.
    let universe = Universe::for_subscriptions(100_000);
    let subs = universe.subscriptions(100_000, 3);
    let filters: Vec<(TopicFilter, u64, u8)> = subs
        .iter()
        .map(|(f, k, v)| (TopicFilter::try_from(f.as_str()).unwrap(), *k, *v))
        .collect();
    group.throughput(Throughput::Elements(filters.len() as u64));
    group.bench_function("insert_100k_into_empty", |b| {
        b.iter(|| {
            let mut tree = SubscriptionTree::new();
            for (f, k, v) in &filters {
                tree.insert(f, *k, *v);
            }
            tree
        });
    });
    group.bench_function("remove_100k_all", |b| {
        b.iter_batched(
            || {
                let mut tree = SubscriptionTree::new();
                for (f, k, v) in &filters {
                    tree.insert(f, *k, *v);
                }
                tree
            },
            |mut tree| {
                for (f, k, _) in &filters {
                    tree.remove(f, k);
                }
                tree
            },
            BatchSize::LargeInput,
        );
    });

    // One subscribe + unsubscribe of a new client on a tree of 1M subscriptions.
    let universe = Universe::for_subscriptions(1_000_000);
    let mut tree = build(&universe.subscriptions(1_000_000, 4));
    let mut rng = Rng::new(5);
    let extra: Vec<TopicFilter> = (0..1024)
        .map(|_| TopicFilter::try_from(universe.filter(&mut rng)).unwrap())
        .collect();
    group.sample_size(50);
    group.throughput(Throughput::Elements(1));
    group.bench_function("insert_and_remove_at_1M", |b| {
        let mut i = 0usize;
        b.iter(|| {
            let f = &extra[i & 1023];
            i = i.wrapping_add(1);
            tree.insert(f, u64::MAX, 1);
            black_box(tree.remove(f, &u64::MAX))
        });
    });
    group.finish();
}

fn retained(c: &mut Criterion) {
    let mut group = c.benchmark_group("retained");
    let universe = Universe::for_subscriptions(1_000_000);
    let mut index = RetainedIndex::new();
    for i in 0..universe.topic_count() {
        index.insert(TopicName::try_from(universe.nth_name(i)).unwrap(), i);
    }
    for filter in [
        "tenant/7/site/3/device/+/temperature",
        "tenant/+/site/3/device/42/temperature",
        "tenant/7/site/3/device/+/#",
    ] {
        let f = TopicFilter::try_from(filter).unwrap();
        let mut count = 0;
        index.for_each_match(&f, |_, _| count += 1);
        println!("retained: {} names, {filter} matches {count}", index.len());
        group.throughput(Throughput::Elements(count));
        group.bench_function(BenchmarkId::new("1M_names", filter), |b| {
            b.iter(|| {
                let mut acc = 0u64;
                index.for_each_match(black_box(&f), |_, v| acc = acc.wrapping_add(*v));
                black_box(acc)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, lookup, lookup_handful, insert_remove, retained);
criterion_main!(benches);
