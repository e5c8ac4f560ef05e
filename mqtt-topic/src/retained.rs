//! The retained-name index: which stored topic names does a filter match?

use core::fmt;

use crate::children::Children;
use crate::stack::Stack;
use crate::{TopicFilter, TopicName};

/// Values stored by topic name (typically retained messages), searchable by topic filter.
///
/// The reverse of [`SubscriptionTree`](crate::SubscriptionTree): when a client subscribes, the
/// broker sends it the retained messages whose names the new filter matches. Names are stored
/// level by level, so a lookup follows the filter's literal levels directly and only fans out
/// at `+` (every child of one node) and `#` (a whole subtree).
///
/// # Complexity
///
/// With `L` the number of levels of the filter: a filter without wildcards is an `O(L)`
/// lookup. A filter with wildcards visits only the nodes of the names it could match: the
/// literal levels are followed, a `+` visits the children of the nodes reached so far, a `#`
/// visits the subtree below. It never scans names outside those branches. Insert and remove
/// are `O(L)`; remove prunes nodes that became empty. Lookups use a small inline stack and
/// allocate only when many branches are pending.
///
/// # Example
///
/// ```
/// use mqtt_topic::{RetainedIndex, TopicFilter, TopicName};
///
/// let mut retained = RetainedIndex::new();
/// retained.insert(TopicName::try_from("sport/tennis/player1")?, "40-15");
/// retained.insert(TopicName::try_from("sport/golf/player2")?, "-3");
/// retained.insert(TopicName::try_from("$SYS/uptime")?, "42");
///
/// let mut hits = Vec::new();
/// retained.for_each_match(&TopicFilter::try_from("sport/+/player1")?, |name, v| {
///     hits.push((name.to_string(), *v))
/// });
/// assert_eq!(hits, [("sport/tennis/player1".to_string(), "40-15")]);
///
/// let mut all = 0;
/// retained.for_each_match(&TopicFilter::try_from("#")?, |_, _| all += 1);
/// assert_eq!(all, 2); // `#` does not match `$SYS/uptime`
/// # Ok::<(), mqtt_topic::TopicError>(())
/// ```
pub struct RetainedIndex<V> {
    root: RNode<V>,
    len: usize,
}

struct RNode<V> {
    children: Children<RNode<V>>,
    entry: Option<(TopicName, V)>,
}

impl<V> Default for RNode<V> {
    fn default() -> Self {
        Self {
            children: Children::default(),
            entry: None,
        }
    }
}

impl<V> Drop for RNode<V> {
    /// Drops the subtree iteratively, so that very deep trees cannot overflow the stack.
    fn drop(&mut self) {
        if self.children.is_empty() {
            return;
        }
        let mut stack = Vec::new();
        self.children.drain_into(&mut stack);
        while let Some(mut n) = stack.pop() {
            n.children.drain_into(&mut stack);
        }
    }
}

fn split_level(rest: &[u8]) -> (&[u8], Option<&[u8]>) {
    match rest.iter().position(|&c| c == b'/') {
        Some(i) => (rest.get(..i).unwrap_or_default(), rest.get(i + 1..)),
        None => (rest, None),
    }
}

enum Frame<'a, V> {
    /// Match the rest of the filter (`None`: all levels consumed) below this node.
    Match(&'a RNode<V>, Option<&'a [u8]>),
    /// Everything in this subtree matches (below a `#`).
    All(&'a RNode<V>),
}

impl<V> Clone for Frame<'_, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for Frame<'_, V> {}

impl<V> Default for RetainedIndex<V> {
    fn default() -> Self {
        Self {
            root: RNode::default(),
            len: 0,
        }
    }
}

impl<V> fmt::Debug for RetainedIndex<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetainedIndex")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<V> RetainedIndex<V> {
    /// An empty index.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of stored names.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no name is stored.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes every name.
    pub fn clear(&mut self) {
        self.root = RNode::default();
        self.len = 0;
    }

    /// Stores `value` under `name`, returning the value it replaces.
    pub fn insert(&mut self, name: TopicName, value: V) -> Option<V> {
        let mut node = &mut self.root;
        for level in name.as_bytes().split(|&c| c == b'/') {
            node = node.children.get_or_insert(level);
        }
        let old = node.entry.replace((name, value)).map(|(_, v)| v);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    fn node<N: AsRef<[u8]> + ?Sized>(&self, name: &N) -> Option<&RNode<V>> {
        let mut node = &self.root;
        for level in name.as_ref().split(|&c| c == b'/') {
            node = node.children.get(level)?;
        }
        Some(node)
    }

    /// The value stored under `name` (a [`TopicName`], `&str` or bytes).
    #[must_use]
    pub fn get<N: AsRef<[u8]> + ?Sized>(&self, name: &N) -> Option<&V> {
        self.node(name)?.entry.as_ref().map(|(_, v)| v)
    }

    /// Removes the value stored under `name` and returns it, pruning nodes that no longer
    /// lead to any name.
    pub fn remove<N: AsRef<[u8]> + ?Sized>(&mut self, name: &N) -> Option<V> {
        let levels = name.as_ref().split(|&c| c == b'/');
        let mut node = &mut self.root;
        let mut cut = 0;
        for (i, level) in levels.clone().enumerate() {
            if node.entry.is_some() || node.children.len() > 1 {
                cut = i;
            }
            node = node.children.get_mut(level)?;
        }
        let (_, value) = node.entry.take()?;
        self.len -= 1;
        // A name has at least one level, so the node is never the root.
        if node.children.is_empty() {
            let mut levels = levels;
            let mut node = &mut self.root;
            for level in levels.by_ref().take(cut) {
                match node.children.get_mut(level) {
                    Some(n) => node = n,
                    None => return Some(value),
                }
            }
            if let Some(level) = levels.next() {
                node.children.remove(level);
            }
        }
        Some(value)
    }

    /// Calls `f` with every stored name that `filter` matches, and its value, by the rules of
    /// [`matches()`](crate::matches): names starting with `$` are not matched by a filter whose
    /// first level is a wildcard. A shared subscription matches with its pattern. The order is
    /// unspecified.
    pub fn for_each_match(&self, filter: &TopicFilter, mut f: impl FnMut(&TopicName, &V)) {
        let pattern = filter.pattern_bytes();
        let mut stack: Stack<Frame<'_, V>> = Stack::new();
        // At the root, wildcards skip names starting with `$` [MQTT-4.7.2-1].
        let (level, next) = split_level(pattern);
        Self::expand(&self.root, level, next, true, &mut stack, &mut f);
        while let Some(frame) = stack.pop() {
            match frame {
                Frame::All(node) => {
                    if let Some((n, v)) = &node.entry {
                        f(n, v);
                    }
                    node.children.for_each(|_, c| stack.push(Frame::All(c)));
                }
                Frame::Match(node, None) => {
                    if let Some((n, v)) = &node.entry {
                        f(n, v);
                    }
                }
                Frame::Match(node, Some(rest)) => {
                    let (level, next) = split_level(rest);
                    Self::expand(node, level, next, false, &mut stack, &mut f);
                }
            }
        }
    }

    /// Applies one filter level at `node`.
    fn expand<'a>(
        node: &'a RNode<V>,
        level: &'a [u8],
        next: Option<&'a [u8]>,
        root: bool,
        stack: &mut Stack<Frame<'a, V>>,
        f: &mut impl FnMut(&TopicName, &V),
    ) {
        let visible = |label: &[u8]| !(root && label.first() == Some(&b'$'));
        match level {
            b"#" => {
                // "sport/#" also matches "sport", the parent level.
                if let Some((n, v)) = &node.entry {
                    f(n, v);
                }
                node.children.for_each(|label, c| {
                    if visible(label) {
                        stack.push(Frame::All(c));
                    }
                });
            }
            b"+" => node.children.for_each(|label, c| {
                if visible(label) {
                    stack.push(Frame::Match(c, next));
                }
            }),
            _ => {
                if let Some(c) = node.children.get(level) {
                    stack.push(Frame::Match(c, next));
                }
            }
        }
    }

    /// Calls `f` with every stored name and value.
    pub fn for_each(&self, mut f: impl FnMut(&TopicName, &V)) {
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            if let Some((n, v)) = &node.entry {
                f(n, v);
            }
            node.children.for_each(|_, c| stack.push(c));
        }
    }

    /// The number of nodes below the root (for tests of pruning).
    #[doc(hidden)]
    #[must_use]
    pub fn node_count(&self) -> usize {
        let mut count = 0;
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            node.children.for_each(|_, c| stack.push(c));
            count += 1;
        }
        count - 1
    }

    /// Checks that no node below the root is dead and that `len` is right (for tests).
    ///
    /// # Errors
    ///
    /// A description of the first broken invariant.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let mut count = 0;
        let mut stack = vec![(&self.root, true)];
        while let Some((node, is_root)) = stack.pop() {
            if !is_root && node.entry.is_none() && node.children.is_empty() {
                return Err("dead node");
            }
            count += usize::from(node.entry.is_some());
            node.children.for_each(|_, c| stack.push((c, false)));
        }
        if count == self.len {
            Ok(())
        } else {
            Err("len does not match the stored names")
        }
    }
}
