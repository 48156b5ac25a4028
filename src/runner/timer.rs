//! Exact per-socket deadlines in one min-heap with lazy deletion.
//!
//! An entry names a socket slot, the slot's generation when the entry was pushed, and the kind
//! of deadline. Cancelling or moving a deadline only changes the socket's field; the stale heap
//! entry is discarded when it reaches the top (the engine prunes the top after every call, so
//! [`peek`](TimerQueue::peek) is exact) or when the heap is compacted.

use alloc::collections::BinaryHeap;
use alloc::vec::Vec;
use core::cmp::Reverse;

use crate::time::Timestamp;

/// Which deadline of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum TimerKind {
    /// Persist debounce: `first_unpersisted_at + persist_interval`.
    Persist,
    /// Retry after a failed persist.
    Retry,
    /// A gap held too long under `GapPolicy::Await`.
    Gap,
}

/// A heap entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct TimerEntry {
    pub(super) at: Timestamp,
    pub(super) slot: usize,
    pub(super) generation: u64,
    pub(super) kind: TimerKind,
}

/// The heap.
#[derive(Debug, Default)]
pub(super) struct TimerQueue {
    heap: BinaryHeap<Reverse<TimerEntry>>,
}

impl TimerQueue {
    pub(super) fn push(&mut self, entry: TimerEntry) {
        self.heap.push(Reverse(entry));
    }

    pub(super) fn peek(&self) -> Option<TimerEntry> {
        self.heap.peek().map(|Reverse(e)| *e)
    }

    pub(super) fn pop(&mut self) -> Option<TimerEntry> {
        self.heap.pop().map(|Reverse(e)| e)
    }

    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Every entry, in no particular order.
    #[cfg(any(test, feature = "sim"))]
    pub(super) fn iter(&self) -> impl Iterator<Item = TimerEntry> + '_ {
        self.heap.iter().map(|Reverse(e)| *e)
    }

    /// Keeps only the entries `live` accepts.
    pub(super) fn retain(&mut self, mut live: impl FnMut(&TimerEntry) -> bool) {
        let entries: Vec<_> = core::mem::take(&mut self.heap).into_vec();
        self.heap = entries.into_iter().filter(|Reverse(e)| live(e)).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: u64, slot: usize, kind: TimerKind) -> TimerEntry {
        TimerEntry {
            at: Timestamp::from_micros(at),
            slot,
            generation: 0,
            kind,
        }
    }

    #[test]
    fn pops_in_deadline_order_and_retains() {
        let mut q = TimerQueue::default();
        q.push(entry(30, 1, TimerKind::Gap));
        q.push(entry(10, 2, TimerKind::Persist));
        q.push(entry(20, 3, TimerKind::Retry));
        assert_eq!(q.peek().map(|e| e.slot), Some(2));
        q.retain(|e| e.slot != 3);
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop().map(|e| e.slot), Some(2));
        assert_eq!(q.pop().map(|e| e.slot), Some(1));
        assert_eq!(q.pop(), None);
    }
}
