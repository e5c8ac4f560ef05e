//! Measures the heap bytes per subscription of the subscription tree (and per name of the
//! retained index) with a counting global allocator, on the realistic shape of
//! `common/mod.rs`: the bytes requested from the allocator and still live once the structure is
//! built, divided by the number of entries. The allocator's own per-block overhead comes on
//! top; the number of live blocks is printed so that it can be estimated. (`stats_alloc`
//! already folds reallocation growth into `bytes_allocated` / `bytes_deallocated`.)
//!
//! Run: `cargo bench -p mqtt-topic --bench memory`

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

mod common;

use std::alloc::System;

use common::Universe;
use mqtt_topic::{RetainedIndex, SubscriptionTree, TopicFilter, TopicName};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and similar probes
    }
    for n in [1_000u64, 100_000, 1_000_000] {
        let universe = Universe::for_subscriptions(n);
        let subs: Vec<(TopicFilter, u64, u8)> = universe
            .subscriptions(n, 1)
            .into_iter()
            .map(|(f, k, v)| (TopicFilter::try_from(f).unwrap(), k, v))
            .collect();
        let region = Region::new(GLOBAL);
        let mut tree = SubscriptionTree::new();
        for (f, k, v) in &subs {
            tree.insert(f, *k, *v);
        }
        let stats = region.change();
        let net = stats.bytes_allocated as i64 - stats.bytes_deallocated as i64;
        println!(
            "tree {n:>9} subscriptions (K = u64, V = u8): {:>11} heap bytes, {:>6.1} B/subscription, \
             {} nodes, {} live allocations",
            net,
            net as f64 / n as f64,
            tree.node_count(),
            stats.allocations as i64 - stats.deallocations as i64,
        );
        drop(tree);
    }

    let universe = Universe::for_subscriptions(1_000_000);
    let names: Vec<TopicName> = (0..universe.topic_count())
        .map(|i| TopicName::try_from(universe.nth_name(i)).unwrap())
        .collect();
    let region = Region::new(GLOBAL);
    let mut index = RetainedIndex::new();
    for (i, name) in names.iter().enumerate() {
        index.insert(name.clone(), i as u64);
    }
    let stats = region.change();
    let net = stats.bytes_allocated as i64 - stats.bytes_deallocated as i64;
    println!(
        "retained index {} names (V = u64, names shared with the caller): {} heap bytes, {:.1} B/name",
        index.len(),
        net,
        net as f64 / index.len() as f64
    );
}
