//! A depth-first work stack that lives on the call stack for the common case.

/// Frames kept inline before spilling to the heap.
const INLINE: usize = 16;

/// A LIFO stack holding up to [`INLINE`] items without allocating, then spilling into a `Vec`.
///
/// Tree walks push one pending frame per branch point (a level where both an exact child and a
/// `+` child match), so a lookup only allocates for names that branch more than 16 times deep.
/// Walking with an explicit stack instead of recursion also keeps a 32,768-level topic from
/// overflowing the thread's stack.
pub(crate) struct Stack<T: Copy> {
    inline: [Option<T>; INLINE],
    len: usize,
    spill: Vec<T>,
}

impl<T: Copy> Stack<T> {
    pub(crate) fn new() -> Self {
        Self {
            inline: [None; INLINE],
            len: 0,
            spill: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, item: T) {
        if let Some(slot) = self.inline.get_mut(self.len) {
            *slot = Some(item);
            self.len += 1;
        } else {
            self.spill.push(item);
        }
    }

    pub(crate) fn pop(&mut self) -> Option<T> {
        if let Some(item) = self.spill.pop() {
            return Some(item);
        }
        let top = self.len.checked_sub(1)?;
        self.len = top;
        self.inline.get_mut(top).and_then(Option::take)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifo_across_spill() {
        let mut s = Stack::new();
        for i in 0..40 {
            s.push(i);
        }
        for i in (0..40).rev() {
            assert_eq!(s.pop(), Some(i));
        }
        assert_eq!(s.pop(), None);
    }
}
