//! Joining pieces that continue each other (page runs of one source,
//! copies contiguous in both files) before they are handed on: the one
//! implementation of extent merging.

/// A piece that can take in the piece after it when that one continues it.
pub(crate) trait Join {
    /// Extends `self` by `next` and returns true if `next` continues it;
    /// leaves `self` alone and returns false otherwise.
    fn join(&mut self, next: &Self) -> bool;
}

/// Holds the last piece back until the next one shows whether they join.
#[derive(Debug)]
pub(crate) struct Joiner<T> {
    pending: Option<T>,
}

impl<T: Join> Joiner<T> {
    /// A joiner holding nothing.
    pub(crate) fn new() -> Joiner<T> {
        Joiner { pending: None }
    }

    /// Takes `piece` in; returns the piece before it once it is complete
    /// (when `piece` does not continue it).
    pub(crate) fn push(&mut self, piece: T) -> Option<T> {
        if let Some(last) = &mut self.pending {
            if last.join(&piece) {
                return None;
            }
        }
        self.pending.replace(piece)
    }

    /// The piece held back, if any.
    pub(crate) fn take(&mut self) -> Option<T> {
        self.pending.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A range of a numbered file.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Range(u32, u64, u64);

    impl Join for Range {
        fn join(&mut self, next: &Range) -> bool {
            let ok = self.0 == next.0 && self.1 + self.2 == next.1;
            if ok {
                self.2 += next.2;
            }
            ok
        }
    }

    #[test]
    fn joins_what_continues_and_hands_on_the_rest() {
        let mut j = Joiner::new();
        assert_eq!(j.push(Range(1, 0, 10)), None);
        assert_eq!(j.push(Range(1, 10, 5)), None);
        assert_eq!(j.push(Range(1, 20, 1)), Some(Range(1, 0, 15)));
        assert_eq!(j.push(Range(2, 21, 1)), Some(Range(1, 20, 1)));
        assert_eq!(j.take(), Some(Range(2, 21, 1)));
        assert_eq!(j.take(), None);
    }
}
