//! A subscription lookup does not allocate. This test binary installs a counting allocator
//! (the workspace forbids `unsafe`, so it comes from `stats_alloc`) and holds a single test, so
//! no other test thread allocates while it measures.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::alloc::System;

use mqtt_topic::{SubscriptionTree, TopicFilter, TopicName};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn lookup_does_not_allocate() {
    let mut tree = SubscriptionTree::new();
    let filters = [
        "tenant/1/site/2/device/3/temp",
        "tenant/1/site/2/device/+/temp",
        "tenant/1/site/+/device/+/+",
        "tenant/+/#",
        "tenant/1/site/2/#",
        "#",
        "+/+/+/+/+/+/+",
        "$share/g/tenant/1/site/2/device/3/temp",
        "$share/h/tenant/+/site/2/#",
    ];
    for (i, f) in filters.iter().enumerate() {
        tree.insert(&TopicFilter::try_from(*f).unwrap(), i, i as u64);
    }
    for i in 0..1000 {
        let f = format!("tenant/{}/site/{}/device/{i}/temp", i % 7, i % 3);
        tree.insert(&TopicFilter::try_from(f).unwrap(), 100 + i, 0);
    }
    let name = TopicName::try_from("tenant/1/site/2/device/3/temp").unwrap();

    let region = Region::new(GLOBAL);
    let mut hits = 0u64;
    let mut groups = 0;
    for _ in 0..100 {
        tree.for_each_match(&name, |_, v| hits += v);
        tree.for_each_match("tenant/1/site/2/device/3/temp", |_, v| hits += v);
        tree.for_each_shared_match(&name, |_, members| groups += members.len());
    }
    let stats = region.change();

    assert_eq!(hits, 2 * 100 * (1 + 2 + 3 + 4 + 5 + 6));
    assert_eq!(groups, 2 * 100);
    assert_eq!(stats.allocations, 0, "{stats:?}");
    assert_eq!(stats.reallocations, 0, "{stats:?}");
}
