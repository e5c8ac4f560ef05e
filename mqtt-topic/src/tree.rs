//! The subscription tree: which subscriptions match a topic name?

use core::fmt;

use crate::TopicFilter;
use crate::children::Children;
use crate::stack::Stack;

/// Subscriptions indexed by topic filter, for routing PUBLISH packets.
///
/// Each level of a filter is a node; a `+` level is a dedicated child slot and a trailing `#`
/// is a slot of its parent, so a lookup walks the name's levels once and only branches where a
/// `+` subscription exists. Each subscription is a `(K, V)` pair: `K` identifies the subscriber
/// (a client id, a session index) and `V` holds what the broker needs to deliver (QoS,
/// options, subscription identifier).
///
/// A node keeps its subscribers sorted by key, so one subscriber holds at most one
/// subscription per filter: inserting the same `(filter, key)` again replaces the value, as a
/// repeated SUBSCRIBE must \[MQTT-3.8.4-3\].
///
/// Shared subscriptions (`$share/{ShareName}/{filter}`) are kept apart, grouped by ShareName at
/// their filter's node. [`for_each_match`](Self::for_each_match) does not yield them;
/// [`for_each_shared_match`](Self::for_each_shared_match) yields each matching group with its
/// members so that the broker can pick one member per group.
///
/// # Complexity
///
/// With `L` the number of levels of a topic name, `b` the length of one level and `m` the
/// number of matching subscriptions:
///
/// - lookup visits one node per filter *prefix* that matches the name, which is `L + 1` nodes
///   when no `+` filters apply and grows only with the `+` branches that really exist; at each
///   node finding the child costs `O(log 24)` comparisons (sorted vector) or one hash of the
///   level (hash map, for nodes with more than 24 children). It does not depend on the total
///   number of subscriptions, and it does not allocate (unless more than 16 `+` branches are
///   pending at once).
/// - insert and remove are `O(L)` node steps plus a sorted insert into the node's subscriber
///   list (`O(s)` moves for `s` subscribers of that exact filter). Remove prunes nodes that
///   became empty, so the tree never keeps dead branches.
/// - memory: one node per distinct filter prefix, 80 bytes in its parent's child list for
///   `K = u64, V = u8` (levels up to 22 bytes and a filter's first subscriber are stored
///   inline), plus one `(K, V)` per further subscriber. The crate README records the measured
///   bytes per subscription.
///
/// Lookups, inserts, removes and drops use explicit stacks, not recursion, so a 65,535-byte
/// filter of 32,768 levels cannot overflow the thread's stack.
///
/// # Example
///
/// ```
/// use mqtt_topic::{SubscriptionTree, TopicFilter};
///
/// let mut tree = SubscriptionTree::new();
/// tree.insert(&TopicFilter::try_from("sport/tennis/+")?, "alice", 1u8);
/// tree.insert(&TopicFilter::try_from("sport/#")?, "bob", 0);
/// tree.insert(&TopicFilter::try_from("$share/g/sport/tennis/player1")?, "carol", 2);
///
/// let mut hits = Vec::new();
/// tree.for_each_match("sport/tennis/player1", |client, qos| hits.push((*client, *qos)));
/// hits.sort();
/// assert_eq!(hits, [("alice", 1), ("bob", 0)]);
///
/// tree.for_each_shared_match("sport/tennis/player1", |group, members| {
///     assert_eq!(group, "g");
///     assert_eq!(members, &[("carol", 2)]);
/// });
/// # Ok::<(), mqtt_topic::TopicError>(())
/// ```
pub struct SubscriptionTree<K, V> {
    root: Node<K, V>,
    len: usize,
}

struct Node<K, V> {
    children: Children<Node<K, V>>,
    /// Subscriptions whose filter ends at this node, sorted by key.
    subs: Subs<K, V>,
    /// Rarely used slots, boxed so that the common leaf stays small. `None` when all empty.
    extra: Option<Box<Extra<K, V>>>,
}

/// The subscribers of one filter, sorted by key. Most filters have exactly one subscriber: it
/// is stored inline, which saves a heap block per filter and a cache miss per matching node.
enum Subs<K, V> {
    One([(K, V); 1]),
    Many(Vec<(K, V)>),
}

impl<K, V> Subs<K, V> {
    fn as_slice(&self) -> &[(K, V)] {
        match self {
            Self::One(one) => one,
            Self::Many(v) => v,
        }
    }

    fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    fn len(&self) -> usize {
        self.as_slice().len()
    }
}

impl<K: Ord, V> Subs<K, V> {
    fn upsert(&mut self, key: K, value: V) -> Option<V> {
        match self {
            Self::Many(v) if v.is_empty() => {
                *self = Self::One([(key, value)]);
                None
            }
            Self::Many(v) => upsert(v, key, value),
            Self::One([(k, v)]) if *k == key => Some(core::mem::replace(v, value)),
            Self::One(_) => {
                let Self::One([first]) = core::mem::replace(self, Self::Many(Vec::new())) else {
                    return None;
                };
                let mut v = Vec::with_capacity(2);
                v.push(first);
                let old = upsert(&mut v, key, value);
                *self = Self::Many(v);
                old
            }
        }
    }

    fn take(&mut self, key: &K) -> Option<V> {
        match self {
            Self::Many(v) => take(v, key),
            Self::One([(k, _)]) if k == key => {
                let Self::One([(_, v)]) = core::mem::replace(self, Self::Many(Vec::new())) else {
                    return None;
                };
                Some(v)
            }
            Self::One(_) => None,
        }
    }
}

struct Extra<K, V> {
    /// The child for a `+` level.
    plus: Option<Node<K, V>>,
    /// Subscriptions to `{this node}/#`, sorted by key.
    hash: Vec<(K, V)>,
    /// Shared subscriptions whose filter ends at this node.
    shared: Vec<Group<K, V>>,
    /// Shared subscriptions to `{this node}/#`.
    hash_shared: Vec<Group<K, V>>,
}

struct Group<K, V> {
    /// The shared subscription as subscribed to (`$share/{ShareName}/{filter}`): its ShareName
    /// names the group, and it is what [`SubscriptionTree::for_each_shared_group`] reports.
    filter: TopicFilter,
    members: Vec<(K, V)>,
}

impl<K, V> Group<K, V> {
    fn name(&self) -> &str {
        self.filter.share_name().unwrap_or_default()
    }
}

impl<K, V> Default for Node<K, V> {
    fn default() -> Self {
        Self {
            children: Children::default(),
            subs: Subs::Many(Vec::new()),
            extra: None,
        }
    }
}

impl<K, V> Default for Extra<K, V> {
    fn default() -> Self {
        Self {
            plus: None,
            hash: Vec::new(),
            shared: Vec::new(),
            hash_shared: Vec::new(),
        }
    }
}

impl<K, V> Extra<K, V> {
    fn is_empty(&self) -> bool {
        self.plus.is_none()
            && self.hash.is_empty()
            && self.shared.is_empty()
            && self.hash_shared.is_empty()
    }
}

/// A pending lookup step: a node and the offset in the name of the levels still to match
/// below it ([`CONSUMED`] once every level is consumed; 0 only for the root).
type Frame<'a, K, V> = (&'a Node<K, V>, usize);

/// Frame offset meaning "every level of the name is consumed".
const CONSUMED: usize = usize::MAX;

/// One step down the tree: a literal level or the `+` slot.
#[derive(Clone, Copy)]
enum Step<'a> {
    Level(&'a [u8]),
    Plus,
}

/// Where a filter's subscriptions live at its node.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// The filter ends at the node.
    Exact,
    /// The filter is `{node}/#`.
    Hash,
}

/// Splits a filter pattern into its steps and its slot.
fn steps(pattern: &[u8]) -> (impl Iterator<Item = Step<'_>> + Clone, Slot) {
    let (body, slot) = if pattern == b"#" {
        (None, Slot::Hash)
    } else if let Some(body) = pattern.strip_suffix(b"/#") {
        (Some(body), Slot::Hash)
    } else {
        (Some(pattern), Slot::Exact)
    };
    let iter = body
        .into_iter()
        .flat_map(|b| b.split(|&c| c == b'/'))
        .map(|l| {
            if l == b"+" {
                Step::Plus
            } else {
                Step::Level(l)
            }
        });
    (iter, slot)
}

impl<K, V> Node<K, V> {
    fn plus(&self) -> Option<&Self> {
        self.extra.as_ref().and_then(|e| e.plus.as_ref())
    }

    fn extra_mut(&mut self) -> &mut Extra<K, V> {
        self.extra.get_or_insert_with(Box::default)
    }

    fn child_mut(&mut self, step: Step<'_>) -> Option<&mut Self> {
        match step {
            Step::Level(l) => self.children.get_mut(l),
            Step::Plus => self.extra.as_mut().and_then(|e| e.plus.as_mut()),
        }
    }

    fn child_or_insert(&mut self, step: Step<'_>) -> &mut Self {
        match step {
            Step::Level(l) => self.children.get_or_insert(l),
            Step::Plus => self.extra_mut().plus.get_or_insert_with(Self::default),
        }
    }

    fn remove_child(&mut self, step: Step<'_>) {
        match step {
            Step::Level(l) => {
                self.children.remove(l);
            }
            Step::Plus => {
                if let Some(e) = &mut self.extra {
                    e.plus = None;
                }
                self.tidy();
            }
        }
    }

    /// Drops the `extra` box once all its slots are empty.
    fn tidy(&mut self) {
        if self.extra.as_ref().is_some_and(|e| e.is_empty()) {
            self.extra = None;
        }
    }

    fn child_count(&self) -> usize {
        self.children.len() + usize::from(self.plus().is_some())
    }

    /// Whether the node holds any subscription itself (ignoring its children).
    fn has_entries(&self) -> bool {
        !self.subs.is_empty()
            || self.extra.as_ref().is_some_and(|e| {
                !e.hash.is_empty() || !e.shared.is_empty() || !e.hash_shared.is_empty()
            })
    }

    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.subs.is_empty() && self.extra.is_none()
    }

    /// Moves all children (labelled and `+`) into `out`.
    fn drain_into(&mut self, out: &mut Vec<Self>) {
        self.children.drain_into(out);
        if let Some(p) = self.extra.as_mut().and_then(|e| e.plus.take()) {
            out.push(p);
        }
    }
}

impl<K, V> Drop for Node<K, V> {
    /// Drops the subtree iteratively, so that very deep trees cannot overflow the stack.
    fn drop(&mut self) {
        if self.children.is_empty() && self.plus().is_none() {
            return;
        }
        let mut stack = Vec::new();
        self.drain_into(&mut stack);
        while let Some(mut n) = stack.pop() {
            n.drain_into(&mut stack);
        }
    }
}

/// Inserts or replaces `key` in a list sorted by key.
fn upsert<K: Ord, V>(list: &mut Vec<(K, V)>, key: K, value: V) -> Option<V> {
    match list.binary_search_by(|(k, _)| k.cmp(&key)) {
        Ok(i) => list.get_mut(i).map(|e| core::mem::replace(&mut e.1, value)),
        Err(i) => {
            if list.len() == list.capacity() {
                list.reserve_exact(1 + list.len() / 8);
            }
            list.insert(i, (key, value));
            None
        }
    }
}

fn take<K: Ord, V>(list: &mut Vec<(K, V)>, key: &K) -> Option<V> {
    let i = list.binary_search_by(|(k, _)| k.cmp(key)).ok()?;
    let (_, v) = list.remove(i);
    if list.capacity() > 4 && list.len() <= list.capacity() / 2 {
        list.shrink_to_fit();
    }
    Some(v)
}

/// Adds `key` to the group of the shared subscription `filter` (whose ShareName is `name`),
/// creating the group.
fn group_upsert<K: Ord, V>(
    groups: &mut Vec<Group<K, V>>,
    name: &str,
    filter: &TopicFilter,
    key: K,
    value: V,
) -> Option<V> {
    if let Some(g) = groups.iter_mut().find(|g| g.name() == name) {
        return upsert(&mut g.members, key, value);
    }
    groups.push(Group {
        filter: filter.clone(),
        members: vec![(key, value)],
    });
    None
}

fn group_take<K: Ord, V>(groups: &mut Vec<Group<K, V>>, name: &str, key: &K) -> Option<V> {
    let i = groups.iter().position(|g| g.name() == name)?;
    let g = groups.get_mut(i)?;
    let v = take(&mut g.members, key)?;
    if g.members.is_empty() {
        groups.swap_remove(i);
    }
    Some(v)
}

impl<K, V> Default for SubscriptionTree<K, V> {
    fn default() -> Self {
        Self {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<K, V> fmt::Debug for SubscriptionTree<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionTree")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<K, V> SubscriptionTree<K, V> {
    /// An empty tree.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of subscriptions (shared members included).
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tree holds no subscription.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes every subscription.
    pub fn clear(&mut self) {
        self.root = Node::default();
        self.len = 0;
    }

    /// Walks the nodes whose filters match `name` and calls `f` with each node and the slot
    /// that matches there.
    fn walk<'a>(&'a self, name: &'a [u8], mut f: impl FnMut(&'a Node<K, V>, Slot)) {
        // "The Server MUST NOT match Topic Filters starting with a wildcard character (# or +)
        // with Topic Names beginning with a $ character" [MQTT-4.7.2-1].
        let dollar = name.first() == Some(&b'$');
        let mut stack: Stack<Frame<'a, K, V>> = Stack::new();
        stack.push((&self.root, 0));
        while let Some((node, at)) = stack.pop() {
            let Some(rest) = name.get(at..).filter(|_| at != CONSUMED) else {
                // All levels consumed: filters ending here match, and so does `{here}/#`
                // ("sport/#" matches "sport").
                f(node, Slot::Exact);
                f(node, Slot::Hash);
                continue;
            };
            // Only the root frame starts at offset 0.
            let wildcards = !(at == 0 && dollar);
            if wildcards {
                f(node, Slot::Hash);
            }
            let (level, next) = match rest.iter().position(|&c| c == b'/') {
                Some(i) => (rest.get(..i).unwrap_or_default(), at + i + 1),
                None => (rest, CONSUMED),
            };
            if wildcards {
                if let Some(p) = node.plus() {
                    stack.push((p, next));
                }
            }
            if let Some(c) = node.children.get(level) {
                stack.push((c, next));
            }
        }
    }

    /// Calls `f` with the key and value of every non-shared subscription whose filter matches
    /// the topic name `name` (a [`TopicName`](crate::TopicName), `&str` or bytes). Each
    /// matching subscription is visited once; the order is unspecified.
    ///
    /// A client with several matching subscriptions ("overlapping subscriptions") is visited
    /// once per subscription; the broker decides how to combine them.
    pub fn for_each_match<N: AsRef<[u8]> + ?Sized>(&self, name: &N, mut f: impl FnMut(&K, &V)) {
        self.walk(name.as_ref(), |node, slot| {
            let list = match (slot, &node.extra) {
                (Slot::Exact, _) => node.subs.as_slice(),
                (Slot::Hash, Some(e)) => e.hash.as_slice(),
                (Slot::Hash, None) => return,
            };
            for (k, v) in list {
                f(k, v);
            }
        });
    }

    /// Calls `f` once per shared subscription (ShareName and filter) that matches `name`, with
    /// the ShareName and the group's members sorted by key. The broker delivers the message to
    /// one member of each group \[MQTT-4.8.2-4\].
    ///
    /// Two shared subscriptions with the same ShareName but different filters are different
    /// groups, and are visited separately.
    pub fn for_each_shared_match<N: AsRef<[u8]> + ?Sized>(
        &self,
        name: &N,
        mut f: impl FnMut(&str, &[(K, V)]),
    ) {
        self.for_each_shared_group(name, |filter, members| {
            f(filter.share_name().unwrap_or_default(), members);
        });
    }

    /// Like [`for_each_shared_match`](Self::for_each_shared_match), with each matching shared
    /// subscription as subscribed to (`$share/{ShareName}/{filter}`) instead of its ShareName
    /// alone: what identifies the group, for example to find its members again later with
    /// [`shared_members`](Self::shared_members). It does not allocate either.
    ///
    /// ```
    /// use mqtt_topic::{SubscriptionTree, TopicFilter};
    ///
    /// let mut tree = SubscriptionTree::new();
    /// tree.insert(&TopicFilter::try_from("$share/g/sport/#")?, "carol", 1u8);
    /// tree.insert(&TopicFilter::try_from("$share/g/sport/+")?, "dave", 1u8);
    /// let mut groups = Vec::new();
    /// tree.for_each_shared_group("sport/tennis", |filter, members| {
    ///     groups.push((filter.as_str().to_owned(), members.len()));
    /// });
    /// groups.sort();
    /// assert_eq!(groups, [("$share/g/sport/#".to_owned(), 1), ("$share/g/sport/+".to_owned(), 1)]);
    /// # Ok::<(), mqtt_topic::TopicError>(())
    /// ```
    pub fn for_each_shared_group<N: AsRef<[u8]> + ?Sized>(
        &self,
        name: &N,
        mut f: impl FnMut(&TopicFilter, &[(K, V)]),
    ) {
        self.walk(name.as_ref(), |node, slot| {
            let Some(e) = &node.extra else { return };
            let groups = match slot {
                Slot::Exact => &e.shared,
                Slot::Hash => &e.hash_shared,
            };
            for g in groups {
                f(&g.filter, &g.members);
            }
        });
    }

    /// Calls `f` with every subscription: its filter as written (including a
    /// `$share/{ShareName}/` prefix), key and value. This allocates; it is meant for
    /// persistence and diagnostics, not for routing.
    pub fn for_each(&self, mut f: impl FnMut(&str, &K, &V)) {
        let mut stack: Vec<(&Node<K, V>, Option<String>)> = vec![(&self.root, None)];
        let join = |path: &Option<String>, level: &str| match path {
            None => level.to_owned(),
            Some(p) => format!("{p}/{level}"),
        };
        while let Some((node, path)) = stack.pop() {
            let here = path.clone().unwrap_or_default();
            for (k, v) in node.subs.as_slice() {
                f(&here, k, v);
            }
            if let Some(e) = &node.extra {
                let hash = join(&path, "#");
                for (k, v) in &e.hash {
                    f(&hash, k, v);
                }
                for groups in [&e.shared, &e.hash_shared] {
                    for g in groups {
                        for (k, v) in &g.members {
                            f(g.filter.as_str(), k, v);
                        }
                    }
                }
                if let Some(p) = &e.plus {
                    stack.push((p, Some(join(&path, "+"))));
                }
            }
            node.children.for_each(|label, child| {
                let label = String::from_utf8_lossy(label);
                stack.push((child, Some(join(&path, &label))));
            });
        }
    }

    /// The number of nodes below the root. Exposed for tests: a tree after any sequence of
    /// inserts and removes has exactly as many nodes as one freshly built from its entries.
    #[doc(hidden)]
    #[must_use]
    pub fn node_count(&self) -> usize {
        let mut count = 0;
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            node.children.for_each(|_, c| stack.push(c));
            if let Some(p) = node.plus() {
                stack.push(p);
            }
            count += 1;
        }
        count - 1
    }

    /// Checks the structural invariants: no empty node below the root, no empty `extra`, no
    /// empty shared group, subscriber lists sorted, `len` consistent. Exposed for tests.
    ///
    /// # Errors
    ///
    /// A description of the first broken invariant.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), &'static str>
    where
        K: Ord,
    {
        let sorted = |l: &[(K, V)]| l.windows(2).all(|w| matches!(w, [a, b] if a.0 < b.0));
        let mut count = 0;
        let mut stack = vec![(&self.root, true)];
        while let Some((node, is_root)) = stack.pop() {
            if !is_root && node.is_empty() {
                return Err("dead node");
            }
            if !sorted(node.subs.as_slice()) {
                return Err("unsorted subscribers");
            }
            count += node.subs.len();
            if let Some(e) = &node.extra {
                if e.is_empty() {
                    return Err("empty extra slots");
                }
                if !sorted(&e.hash) {
                    return Err("unsorted subscribers");
                }
                count += e.hash.len();
                for g in e.shared.iter().chain(&e.hash_shared) {
                    if g.members.is_empty() {
                        return Err("empty shared group");
                    }
                    if !sorted(&g.members) {
                        return Err("unsorted subscribers");
                    }
                    count += g.members.len();
                }
                if let Some(p) = &e.plus {
                    stack.push((p, false));
                }
            }
            node.children.for_each(|_, c| stack.push((c, false)));
        }
        if count == self.len {
            Ok(())
        } else {
            Err("len does not match the stored subscriptions")
        }
    }
}

impl<K: Ord, V> SubscriptionTree<K, V> {
    /// Adds the subscription of `key` to `filter` with `value`, and returns the value it
    /// replaces if `key` was already subscribed to this exact filter (for a shared
    /// subscription: the same ShareName and filter).
    pub fn insert(&mut self, filter: &TopicFilter, key: K, value: V) -> Option<V> {
        let (steps, slot) = steps(filter.pattern_bytes());
        let mut node = &mut self.root;
        for step in steps {
            node = node.child_or_insert(step);
        }
        let old = match (filter.share_name(), slot) {
            (None, Slot::Exact) => node.subs.upsert(key, value),
            (None, Slot::Hash) => upsert(&mut node.extra_mut().hash, key, value),
            (Some(g), Slot::Exact) => {
                group_upsert(&mut node.extra_mut().shared, g, filter, key, value)
            }
            (Some(g), Slot::Hash) => {
                group_upsert(&mut node.extra_mut().hash_shared, g, filter, key, value)
            }
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes the subscription of `key` to `filter` and returns its value, pruning the nodes
    /// that no longer hold anything.
    pub fn remove(&mut self, filter: &TopicFilter, key: &K) -> Option<V> {
        let (steps, slot) = steps(filter.pattern_bytes());
        // First pass: find the node, remove the entry, and note the deepest node on the path
        // that must survive if the target becomes empty (the root, or a node holding anything
        // besides the path).
        let mut node = &mut self.root;
        let mut cut = 0;
        let mut depth = 0;
        for (i, step) in steps.clone().enumerate() {
            if node.has_entries() || node.child_count() > 1 {
                cut = i;
            }
            node = node.child_mut(step)?;
            depth = i + 1;
        }
        let removed = match (filter.share_name(), slot, &mut node.extra) {
            (None, Slot::Exact, _) => node.subs.take(key),
            (_, _, None) => None,
            (None, Slot::Hash, Some(e)) => take(&mut e.hash, key),
            (Some(g), Slot::Exact, Some(e)) => group_take(&mut e.shared, g, key),
            (Some(g), Slot::Hash, Some(e)) => group_take(&mut e.hash_shared, g, key),
        }?;
        self.len -= 1;
        node.tidy();
        if depth > 0 && node.is_empty() {
            // Second pass: cut the now-dead chain below the surviving node.
            let mut steps = steps;
            let mut node = &mut self.root;
            for step in steps.by_ref().take(cut) {
                match node.child_mut(step) {
                    Some(n) => node = n,
                    None => return Some(removed),
                }
            }
            if let Some(step) = steps.next() {
                node.remove_child(step);
            }
        }
        Some(removed)
    }

    /// The value of `key`'s subscription to `filter`, if any.
    #[must_use]
    pub fn get(&self, filter: &TopicFilter, key: &K) -> Option<&V> {
        let list = self.subscribers(filter)?;
        let i = list.binary_search_by(|(k, _)| k.cmp(key)).ok()?;
        list.get(i).map(|(_, v)| v)
    }

    /// The members of the shared subscription `filter` (`$share/{ShareName}/{filter}`),
    /// sorted by key: the group a message that matched it goes to one member of. Empty when
    /// nobody holds that shared subscription, or when `filter` is not a shared subscription.
    ///
    /// Costs one step per level of the filter, like [`get`](Self::get).
    ///
    /// ```
    /// use mqtt_topic::{SubscriptionTree, TopicFilter};
    ///
    /// let mut tree = SubscriptionTree::new();
    /// let workers = TopicFilter::try_from("$share/workers/jobs/+")?;
    /// tree.insert(&workers, "w2", 1u8);
    /// tree.insert(&workers, "w1", 2u8);
    /// tree.insert(&TopicFilter::try_from("$share/other/jobs/+")?, "o1", 1u8);
    /// tree.insert(&TopicFilter::try_from("jobs/+")?, "plain", 0u8);
    /// assert_eq!(tree.shared_members(&workers), &[("w1", 2), ("w2", 1)]);
    /// assert!(tree.shared_members(&TopicFilter::try_from("jobs/+")?).is_empty());
    /// # Ok::<(), mqtt_topic::TopicError>(())
    /// ```
    #[must_use]
    pub fn shared_members(&self, filter: &TopicFilter) -> &[(K, V)] {
        if !filter.is_shared() {
            return &[];
        }
        self.subscribers(filter).unwrap_or_default()
    }

    /// The subscribers of exactly `filter` (for a shared subscription: its group's members).
    fn subscribers(&self, filter: &TopicFilter) -> Option<&[(K, V)]> {
        let (steps, slot) = steps(filter.pattern_bytes());
        let mut node = &self.root;
        for step in steps {
            node = match step {
                Step::Level(l) => node.children.get(l)?,
                Step::Plus => node.plus()?,
            };
        }
        fn group<'g, K, V>(groups: &'g [Group<K, V>], name: &str) -> Option<&'g [(K, V)]> {
            groups
                .iter()
                .find(|g| g.name() == name)
                .map(|g| &*g.members)
        }
        Some(match (filter.share_name(), slot, &node.extra) {
            (None, Slot::Exact, _) => node.subs.as_slice(),
            (_, _, None) => return None,
            (None, Slot::Hash, Some(e)) => e.hash.as_slice(),
            (Some(g), Slot::Exact, Some(e)) => group(&e.shared, g)?,
            (Some(g), Slot::Hash, Some(e)) => group(&e.hash_shared, g)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::children::Label;

    #[test]
    fn compact_layout() {
        // The memory budget per subscription rests on these sizes.
        assert_eq!(size_of::<Label>(), 24);
        assert_eq!(size_of::<Children<Node<u64, u8>>>(), 24);
        assert_eq!(size_of::<Subs<u64, u8>>(), 24);
        assert_eq!(size_of::<Node<u64, u8>>(), 56);
    }
}
