//! The timer queue: one min-heap of exact deadlines for every request, with lazy deletion.
//!
//! Each request keeps the deadline of its *live* heap entry (`timer_at`). An entry is pushed only
//! when the request's earliest deadline moves earlier than that; when a deadline moves later the
//! old entry simply stays and fires early, and the request re-pushes its true deadline then. An
//! entry whose slot was reused (generation mismatch) or whose deadline is no longer the request's
//! live one is stale and is dropped when it surfaces. A spurious early wake-up is harmless; a late
//! one cannot happen, because the live entry is never later than the request's earliest deadline.
//!
//! `peek` is O(1), `push`/`pop` O(log n). Stale entries are bounded by [`TimerQueue::compact`].

use alloc::collections::BinaryHeap;
use core::cmp::Reverse;

use crate::time::Timestamp;

/// One heap entry: a deadline for the request in `slot` at `generation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerEntry {
    pub(crate) deadline: Timestamp,
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

/// Min-heap of [`TimerEntry`], earliest first; ties in slot then generation order, so the order
/// in which simultaneous deadlines fire is deterministic.
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<Reverse<TimerEntry>>,
}

impl TimerQueue {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn push(&mut self, entry: TimerEntry) {
        self.heap.push(Reverse(entry));
    }

    /// The earliest deadline, live or stale.
    pub(crate) fn peek_deadline(&self) -> Option<Timestamp> {
        self.heap.peek().map(|Reverse(e)| e.deadline)
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Timestamp) -> Option<TimerEntry> {
        match self.heap.peek() {
            Some(Reverse(e)) if e.deadline <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Every entry, in no particular order.
    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &TimerEntry> {
        self.heap.iter().map(|Reverse(e)| e)
    }

    /// Drops every entry for which `is_live` is false, when stale entries outnumber `live`
    /// (the number of requests) by more than a slack. Amortised O(1) per push: a rebuild happens
    /// only after at least `live + SLACK` pushes since the last one.
    pub(crate) fn compact(&mut self, live: usize, is_live: impl FnMut(&TimerEntry) -> bool) {
        const SLACK: usize = 1024;
        let mut is_live = is_live;
        if self.heap.len() > live.saturating_mul(2).saturating_add(SLACK) {
            self.heap.retain(|Reverse(e)| is_live(e));
            self.shrink();
        }
    }

    /// Gives memory back when the heap is far below its capacity (after a burst of stale entries
    /// drained). Amortised: it shrinks to 1.5× the length, so the next shrink needs the length to
    /// fall by a third again.
    pub(crate) fn shrink(&mut self) {
        const MIN_CAPACITY: usize = 4096;
        let (len, cap) = (self.heap.len(), self.heap.capacity());
        if cap > MIN_CAPACITY && len < cap / 3 {
            self.heap
                .shrink_to(MIN_CAPACITY.max(len.saturating_add(len / 2)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(deadline: u64, slot: u32) -> TimerEntry {
        TimerEntry {
            deadline: Timestamp::from_micros(deadline),
            slot,
            generation: 0,
        }
    }

    #[test]
    fn pops_in_deadline_order_only_when_due() {
        let mut q = TimerQueue::new();
        assert_eq!(q.peek_deadline(), None);
        q.push(e(30, 1));
        q.push(e(10, 2));
        q.push(e(20, 3));
        q.push(e(10, 0));
        assert_eq!(q.peek_deadline(), Some(Timestamp::from_micros(10)));
        assert_eq!(q.pop_due(Timestamp::from_micros(9)), None);
        // Ties break by slot: deterministic.
        assert_eq!(q.pop_due(Timestamp::from_micros(10)), Some(e(10, 0)));
        assert_eq!(q.pop_due(Timestamp::from_micros(10)), Some(e(10, 2)));
        assert_eq!(q.pop_due(Timestamp::from_micros(10)), None);
        assert_eq!(q.pop_due(Timestamp::from_micros(100)), Some(e(20, 3)));
        assert_eq!(q.pop_due(Timestamp::from_micros(100)), Some(e(30, 1)));
        assert_eq!(q.pop_due(Timestamp::MAX), None);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn compact_drops_stale_entries_once_they_dominate() {
        let mut q = TimerQueue::new();
        for i in 0..3000u32 {
            q.push(e(u64::from(i), i));
        }
        // 3000 entries, 10 live requests: 3000 > 2 * 10 + 1024, so it compacts.
        q.compact(10, |t| t.slot < 10);
        assert_eq!(q.len(), 10);
        // Below the slack nothing is dropped even if stale.
        for i in 0..100u32 {
            q.push(e(u64::from(i), 1000 + i));
        }
        q.compact(10, |t| t.slot < 10);
        assert_eq!(q.len(), 110);
        assert_eq!(q.peek_deadline(), Some(Timestamp::ZERO));
    }

    #[test]
    fn shrink_releases_capacity_after_a_burst() {
        let mut q = TimerQueue::new();
        for i in 0..100_000u32 {
            q.push(e(u64::from(i), i));
        }
        while q.pop_due(Timestamp::from_micros(98_999)).is_some() {}
        assert_eq!(q.len(), 1_000);
        q.shrink();
        assert!(q.heap.capacity() <= 4096, "{}", q.heap.capacity());
        assert_eq!(q.peek_deadline(), Some(Timestamp::from_micros(99_000)));
    }
}
