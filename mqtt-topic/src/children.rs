//! The labelled children of a tree node: a sorted vector while small, a hash map when large.

use core::cmp::Ordering;
use std::collections::HashMap;

/// Bytes of a level kept inline, without a heap allocation.
const INLINE_LABEL: usize = 22;

/// A topic level, stored once per node: inline when short (the common case: ids, metric
/// names), so that searching a node's children touches no other cache line; boxed otherwise.
/// Same size as the entry it replaces would have with a `Box<[u8]>` plus one word.
#[derive(Clone)]
pub(crate) enum Label {
    Inline { len: u8, buf: [u8; INLINE_LABEL] },
    Heap(Box<[u8]>),
}

impl Label {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, buf } => buf.get(..usize::from(*len)).unwrap_or_default(),
            Self::Heap(b) => b,
        }
    }
}

impl From<&[u8]> for Label {
    fn from(level: &[u8]) -> Self {
        let mut buf = [0; INLINE_LABEL];
        match (buf.get_mut(..level.len()), u8::try_from(level.len())) {
            (Some(dst), Ok(len)) => {
                dst.copy_from_slice(level);
                Self::Inline { len, buf }
            }
            _ => Self::Heap(level.into()),
        }
    }
}

impl core::borrow::Borrow<[u8]> for Label {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for Label {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Label {}

impl core::hash::Hash for Label {
    /// Hashes exactly like the `[u8]` it borrows as, as `HashMap` lookups require.
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

/// The order of a node's sorted children: by length, then by bytes. Any total order serves a
/// binary search; this one settles most comparisons on the length and compares short levels
/// inline instead of calling `memcmp`.
fn cmp_level(a: &[u8], b: &[u8]) -> Ordering {
    match a.len().cmp(&b.len()) {
        Ordering::Equal => {
            for (x, y) in a.iter().zip(b) {
                if x != y {
                    return x.cmp(y);
                }
            }
            Ordering::Equal
        }
        other => other,
    }
}

/// Above this many children a node switches from a sorted vector to a hash map.
const SMALL_MAX: usize = 24;

/// Children of a node keyed by level.
///
/// Most nodes have a handful of children: a sorted `Vec` (binary search, no per-entry
/// overhead) keeps them compact. A node with many children (device ids, client ids) moves to
/// a `HashMap` so that inserting stays O(1) and lookups stay O(level length). The map uses the
/// standard library's keyed hasher: topic levels come from clients, so a fixed hash would invite
/// collision attacks.
pub(crate) enum Children<N> {
    Small(Vec<(Label, N)>),
    // Boxed so that `Children` stays as small as a `Vec`: most nodes are leaves.
    #[allow(clippy::box_collection)]
    Large(Box<HashMap<Label, N>>),
}

impl<N> Default for Children<N> {
    fn default() -> Self {
        Self::Small(Vec::new())
    }
}

impl<N> Children<N> {
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Self::Small(v) => v.is_empty(),
            Self::Large(m) => m.is_empty(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Small(v) => v.len(),
            Self::Large(m) => m.len(),
        }
    }

    pub(crate) fn get(&self, level: &[u8]) -> Option<&N> {
        match self {
            Self::Small(v) => v
                .binary_search_by(|(l, _)| cmp_level(l.as_bytes(), level))
                .ok()
                .and_then(|i| v.get(i))
                .map(|(_, n)| n),
            Self::Large(m) => m.get(level),
        }
    }

    pub(crate) fn get_mut(&mut self, level: &[u8]) -> Option<&mut N> {
        match self {
            Self::Small(v) => match v.binary_search_by(|(l, _)| cmp_level(l.as_bytes(), level)) {
                Ok(i) => v.get_mut(i).map(|(_, n)| n),
                Err(_) => None,
            },
            Self::Large(m) => m.get_mut(level),
        }
    }

    /// The child for `level`, created with `N::default()` when missing.
    pub(crate) fn get_or_insert(&mut self, level: &[u8]) -> &mut N
    where
        N: Default,
    {
        if let Self::Small(v) = self {
            if v.len() >= SMALL_MAX
                && v.binary_search_by(|(l, _)| cmp_level(l.as_bytes(), level))
                    .is_err()
            {
                let map: HashMap<Label, N> = core::mem::take(v).into_iter().collect();
                *self = Self::Large(Box::new(map));
            }
        }
        match self {
            Self::Small(v) => {
                let i = match v.binary_search_by(|(l, _)| cmp_level(l.as_bytes(), level)) {
                    Ok(i) => i,
                    Err(i) => {
                        // Grow by about an eighth instead of doubling: leaves are the bulk of a
                        // tree and their parents rarely change size again.
                        if v.len() == v.capacity() {
                            v.reserve_exact(1 + v.len() / 8);
                        }
                        v.insert(i, (level.into(), N::default()));
                        i
                    }
                };
                match v.get_mut(i) {
                    Some((_, n)) => n,
                    // `i` is in bounds: found by the search or just inserted.
                    None => unreachable!(),
                }
            }
            Self::Large(m) => m.entry(level.into()).or_default(),
        }
    }

    /// Removes the child for `level`, returning it.
    pub(crate) fn remove(&mut self, level: &[u8]) -> Option<N> {
        let removed = match self {
            Self::Small(v) => match v.binary_search_by(|(l, _)| cmp_level(l.as_bytes(), level)) {
                Ok(i) => Some(v.remove(i).1),
                Err(_) => None,
            },
            Self::Large(m) => m.remove(level),
        };
        self.compact();
        removed
    }

    /// Gives memory back after removals: a map that became small turns back into a vector, and
    /// a vector with much spare room shrinks.
    fn compact(&mut self) {
        match self {
            Self::Small(v) => {
                if v.capacity() > 4 && v.len() <= v.capacity() / 2 {
                    v.shrink_to_fit();
                }
            }
            Self::Large(m) => {
                if m.len() <= SMALL_MAX / 2 {
                    let mut v: Vec<(Label, N)> = core::mem::take(&mut **m).into_iter().collect();
                    v.sort_unstable_by(|a, b| cmp_level(a.0.as_bytes(), b.0.as_bytes()));
                    *self = Self::Small(v);
                } else if m.capacity() > 64 && m.len() <= m.capacity() / 4 {
                    m.shrink_to_fit();
                }
            }
        }
    }

    /// Calls `f` on every child with its label.
    pub(crate) fn for_each<'a>(&'a self, mut f: impl FnMut(&'a [u8], &'a N)) {
        match self {
            Self::Small(v) => v.iter().for_each(|(l, n)| f(l.as_bytes(), n)),
            Self::Large(m) => m.iter().for_each(|(l, n)| f(l.as_bytes(), n)),
        }
    }

    /// Moves every child out into `out` (used to drop deep trees without recursion).
    pub(crate) fn drain_into(&mut self, out: &mut Vec<N>) {
        match self {
            Self::Small(v) => out.extend(v.drain(..).map(|(_, n)| n)),
            Self::Large(m) => out.extend(m.drain().map(|(_, n)| n)),
        }
    }
}
