//! [`PropertyList`]: the values of a property that may repeat, the first
//! held inline.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::{Deref, DerefMut};

/// The values of an MQTT 5.0 property that may appear more than once (User
/// Property, Subscription Identifier), in order.
///
/// It reads and writes like a `Vec`: it dereferences to a slice (`len`,
/// `iter`, indexing, `sort`, ...) and has [`push`](Self::push),
/// [`pop`](Self::pop), [`clear`](Self::clear), [`retain`](Self::retain),
/// `extend` and `collect`, and it compares equal to a `Vec`, a slice or an
/// array with the same values. Unlike a `Vec`, it holds a single value
/// inline: a packet with one user property, or a PUBLISH forwarded with one
/// subscription identifier, allocates nothing for the list. Two values or
/// more live in a `Vec`.
///
/// ```
/// use mqtt_codec::{PropertyList, UserProperty, Utf8Bytes};
///
/// let mut list = PropertyList::new();
/// list.push(UserProperty::new(
///     Utf8Bytes::from_static("region"),
///     Utf8Bytes::from_static("eu-west-1"),
/// ));
/// assert_eq!(list.len(), 1);
/// assert_eq!(list[0].value, "eu-west-1");
///
/// let ids: PropertyList<u32> = [1, 2, 3].into();
/// assert_eq!(ids, vec![1, 2, 3]);
/// assert_eq!(ids.iter().sum::<u32>(), 6);
/// ```
pub struct PropertyList<T>(Repr<T>);

enum Repr<T> {
    /// Exactly one value.
    One(T),
    /// Any number of values; empty, and without allocation, when new.
    Many(Vec<T>),
}

impl<T> PropertyList<T> {
    /// An empty list; allocates nothing.
    pub const fn new() -> Self {
        Self(Repr::Many(Vec::new()))
    }

    /// The values as a slice.
    #[inline]
    pub fn as_slice(&self) -> &[T] {
        match &self.0 {
            Repr::One(v) => std::slice::from_ref(v),
            Repr::Many(v) => v,
        }
    }

    /// The values as a mutable slice.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        match &mut self.0 {
            Repr::One(v) => std::slice::from_mut(v),
            Repr::Many(v) => v,
        }
    }

    /// Appends a value. The first one pushed onto an empty list that has
    /// never allocated is held inline.
    #[inline(always)]
    pub fn push(&mut self, value: T) {
        // Inlined, the first value is written in place: the decoder pushes
        // every repeated property, and a value passed by pointer to an
        // out-of-line call was read back before its stores had landed.
        match &mut self.0 {
            Repr::Many(v) if v.capacity() > 0 => v.push(value),
            Repr::Many(_) => self.0 = Repr::One(value),
            Repr::One(_) => self.push_second(value),
        }
    }

    /// Moves the inline value and `value` into a `Vec`.
    #[inline(never)]
    fn push_second(&mut self, value: T) {
        if let Repr::One(first) = std::mem::replace(&mut self.0, Repr::Many(Vec::new())) {
            let mut v = Vec::with_capacity(4);
            v.push(first);
            v.push(value);
            self.0 = Repr::Many(v);
        }
    }

    /// Removes the last value and returns it, if any.
    pub fn pop(&mut self) -> Option<T> {
        match &mut self.0 {
            Repr::Many(v) => v.pop(),
            Repr::One(_) => match std::mem::replace(&mut self.0, Repr::Many(Vec::new())) {
                Repr::One(v) => Some(v),
                Repr::Many(_) => None,
            },
        }
    }

    /// Removes every value (keeping an allocated `Vec` for reuse).
    pub fn clear(&mut self) {
        match &mut self.0 {
            Repr::Many(v) => v.clear(),
            Repr::One(_) => self.0 = Repr::Many(Vec::new()),
        }
    }

    /// Keeps only the values for which `keep` returns true, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        match &mut self.0 {
            Repr::Many(v) => v.retain(keep),
            Repr::One(v) => {
                if !keep(v) {
                    self.0 = Repr::Many(Vec::new());
                }
            }
        }
    }

    /// The values as a `Vec` (allocating for a single value).
    pub fn into_vec(self) -> Vec<T> {
        match self.0 {
            Repr::One(v) => vec![v],
            Repr::Many(v) => v,
        }
    }
}

impl<T> Default for PropertyList<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone> Clone for PropertyList<T> {
    fn clone(&self) -> Self {
        // A clone of one value stays inline even if `self` holds it in a
        // `Vec`; more are copied into a `Vec` of their exact length.
        match self.as_slice() {
            [one] => Self(Repr::One(one.clone())),
            many => Self(Repr::Many(many.to_vec())),
        }
    }
}

impl<T> Deref for PropertyList<T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T> DerefMut for PropertyList<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<T> AsRef<[T]> for PropertyList<T> {
    fn as_ref(&self) -> &[T] {
        self
    }
}

impl<T: fmt::Debug> fmt::Debug for PropertyList<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: Hash> Hash for PropertyList<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl<T: PartialEq<U>, U> PartialEq<PropertyList<U>> for PropertyList<T> {
    fn eq(&self, other: &PropertyList<U>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Eq> Eq for PropertyList<T> {}

impl<T: PartialEq<U>, U> PartialEq<Vec<U>> for PropertyList<T> {
    fn eq(&self, other: &Vec<U>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: PartialEq<U>, U> PartialEq<[U]> for PropertyList<T> {
    fn eq(&self, other: &[U]) -> bool {
        self.as_slice() == other
    }
}

impl<T: PartialEq<U>, U> PartialEq<&[U]> for PropertyList<T> {
    fn eq(&self, other: &&[U]) -> bool {
        self.as_slice() == *other
    }
}

impl<T: PartialEq<U>, U, const N: usize> PartialEq<[U; N]> for PropertyList<T> {
    fn eq(&self, other: &[U; N]) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T> From<Vec<T>> for PropertyList<T> {
    fn from(v: Vec<T>) -> Self {
        Self(Repr::Many(v))
    }
}

impl<T, const N: usize> From<[T; N]> for PropertyList<T> {
    fn from(values: [T; N]) -> Self {
        values.into_iter().collect()
    }
}

impl<T> From<PropertyList<T>> for Vec<T> {
    fn from(list: PropertyList<T>) -> Self {
        list.into_vec()
    }
}

impl<T> FromIterator<T> for PropertyList<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut iter = iter.into_iter();
        let Some(first) = iter.next() else {
            return Self::new();
        };
        let Some(second) = iter.next() else {
            return Self(Repr::One(first));
        };
        let mut v = Vec::with_capacity(iter.size_hint().0.saturating_add(2));
        v.push(first);
        v.push(second);
        v.extend(iter);
        Self(Repr::Many(v))
    }
}

impl<T> Extend<T> for PropertyList<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for v in iter {
            self.push(v);
        }
    }
}

impl<'a, T> IntoIterator for &'a PropertyList<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, T> IntoIterator for &'a mut PropertyList<T> {
    type Item = &'a mut T;
    type IntoIter = std::slice::IterMut<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

impl<T> IntoIterator for PropertyList<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;

    fn into_iter(self) -> IntoIter<T> {
        IntoIter(match self.0 {
            Repr::One(v) => Either::One(Some(v).into_iter()),
            Repr::Many(v) => Either::Many(v.into_iter()),
        })
    }
}

/// The owning iterator of a [`PropertyList`].
#[derive(Debug, Clone)]
pub struct IntoIter<T>(Either<T>);

#[derive(Debug, Clone)]
enum Either<T> {
    One(std::option::IntoIter<T>),
    Many(std::vec::IntoIter<T>),
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match &mut self.0 {
            Either::One(i) => i.next(),
            Either::Many(i) => i.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            Either::One(i) => i.size_hint(),
            Either::Many(i) => i.size_hint(),
        }
    }
}

impl<T> DoubleEndedIterator for IntoIter<T> {
    fn next_back(&mut self) -> Option<T> {
        match &mut self.0 {
            Either::One(i) => i.next_back(),
            Either::Many(i) => i.next_back(),
        }
    }
}

impl<T> ExactSizeIterator for IntoIter<T> {}

impl<T> std::iter::FusedIterator for IntoIter<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_inline<T>(l: &PropertyList<T>) -> bool {
        matches!(l.0, Repr::One(_))
    }

    #[test]
    fn one_value_is_inline_and_more_go_to_a_vec() {
        let mut l = PropertyList::new();
        assert!(l.is_empty());
        l.push(1);
        assert!(is_inline(&l));
        assert_eq!(l, [1]);
        l.push(2);
        l.push(3);
        assert!(!is_inline(&l));
        assert_eq!(l, vec![1, 2, 3]);
        assert_eq!(l.pop(), Some(3));
        l.retain(|&v| v != 1);
        assert_eq!(l, [2]);
        l.clear();
        assert!(l.is_empty());
        // The cleared `Vec` is reused rather than an inline value made.
        l.push(4);
        assert!(!is_inline(&l));
        assert_eq!(l, [4]);
        // ... but a clone of one value is inline.
        assert!(is_inline(&l.clone()));
    }

    #[test]
    fn pop_retain_and_clear_of_an_inline_value() {
        let mut l = PropertyList::from([7]);
        assert!(is_inline(&l));
        assert_eq!(l.pop(), Some(7));
        assert_eq!(l.pop(), None);
        let mut l = PropertyList::from([7]);
        l.retain(|&v| v == 7);
        assert_eq!(l, [7]);
        l.retain(|&v| v != 7);
        assert!(l.is_empty());
        let mut l = PropertyList::from([7]);
        l.clear();
        assert_eq!(l, PropertyList::<i32>::new());
    }

    #[test]
    fn equality_and_hash_follow_the_values_not_the_representation() {
        use std::collections::hash_map::DefaultHasher;
        let inline = PropertyList::from([5]);
        let boxed = PropertyList::from(vec![5]);
        assert!(is_inline(&inline) && !is_inline(&boxed));
        assert_eq!(inline, boxed);
        let hash = |l: &PropertyList<i32>| {
            let mut h = DefaultHasher::new();
            l.hash(&mut h);
            h.finish()
        };
        assert_eq!(hash(&inline), hash(&boxed));
        assert_ne!(inline, PropertyList::from([5, 5]));
        assert_eq!(format!("{inline:?}"), "[5]");
    }

    #[test]
    fn iterators_collect_and_convert() {
        for n in 0..5 {
            let l: PropertyList<usize> = (0..n).collect();
            assert_eq!(l.len(), n);
            assert_eq!(is_inline(&l), n == 1);
            assert_eq!(
                l.iter().copied().collect::<Vec<_>>(),
                (0..n).collect::<Vec<_>>()
            );
            let it = l.clone().into_iter();
            assert_eq!(it.len(), n);
            assert_eq!(
                it.rev().collect::<Vec<_>>(),
                (0..n).rev().collect::<Vec<_>>()
            );
            assert_eq!(Vec::from(l.clone()), (0..n).collect::<Vec<_>>());
            let mut e = PropertyList::new();
            e.extend(l.clone());
            assert_eq!(e, l);
            let mut m = l;
            for v in &mut m {
                *v += 1;
            }
            assert_eq!(m, (1..=n).collect::<Vec<_>>());
        }
    }

    /// An operation on a list, applied to a `PropertyList` and a `Vec`.
    #[derive(Debug, Clone)]
    enum Op {
        Push(u8),
        Pop,
        Clear,
        RetainEven,
        Extend(Vec<u8>),
        Collect(Vec<u8>),
        FromVec(Vec<u8>),
        Clone,
        SetFirst(u8),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        let values = || proptest::collection::vec(any::<u8>(), 0..4);
        prop_oneof![
            4 => any::<u8>().prop_map(Op::Push),
            2 => Just(Op::Pop),
            1 => Just(Op::Clear),
            1 => Just(Op::RetainEven),
            1 => values().prop_map(Op::Extend),
            1 => values().prop_map(Op::Collect),
            1 => values().prop_map(Op::FromVec),
            1 => Just(Op::Clone),
            1 => any::<u8>().prop_map(Op::SetFirst),
        ]
    }

    proptest::proptest! {
        /// Any sequence of operations leaves the list equal to a `Vec` that
        /// went through the same ones, whichever representation it is in.
        /// (Safe code: nothing for Miri to check, slowly.)
        #[test]
        #[cfg_attr(miri, ignore)]
        fn behaves_like_a_vec(ops in proptest::collection::vec(op(), 0..40)) {
            let mut list = PropertyList::new();
            let mut model: Vec<u8> = Vec::new();
            for op in ops {
                match op {
                    Op::Push(v) => {
                        list.push(v);
                        model.push(v);
                    }
                    Op::Pop => proptest::prop_assert_eq!(list.pop(), model.pop()),
                    Op::Clear => {
                        list.clear();
                        model.clear();
                    }
                    Op::RetainEven => {
                        list.retain(|v| v % 2 == 0);
                        model.retain(|v| v % 2 == 0);
                    }
                    Op::Extend(vs) => {
                        list.extend(vs.iter().copied());
                        model.extend(vs);
                    }
                    Op::Collect(vs) => {
                        list = vs.iter().copied().collect();
                        model = vs;
                    }
                    Op::FromVec(vs) => {
                        list = vs.clone().into();
                        model = vs;
                    }
                    Op::Clone => list = list.clone(),
                    Op::SetFirst(v) => {
                        if let (Some(a), Some(b)) = (list.first_mut(), model.first_mut()) {
                            *a = v;
                            *b = v;
                        }
                    }
                }
                proptest::prop_assert_eq!(list.as_slice(), model.as_slice());
                proptest::prop_assert_eq!(&list, &model);
                proptest::prop_assert_eq!(list.len(), model.len());
            }
            proptest::prop_assert_eq!(list.clone().into_iter().collect::<Vec<_>>(), model.clone());
            proptest::prop_assert_eq!(list.into_vec(), model);
        }
    }
}
