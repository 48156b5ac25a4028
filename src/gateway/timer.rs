//! The timer queue: one min-heap of exact deadlines for every request, with lazy deletion.
//!
//! Each request keeps the deadline of its *live* heap entry (`timer_at`). An entry is pushed only
//! when the request's earliest deadline moves earlier than that; when a deadline moves later the
//! old entry simply stays and fires early, and the request re-pushes its true deadline then. An
//! entry whose slot is empty, or whose deadline is not the slot's `timer_at`, is stale and is
//! dropped when it surfaces. (A stale entry of a removed request that happens to carry the exact
//! `timer_at` of the slot's new occupant is a harmless duplicate of that occupant's live entry:
//! both name the same instant, and whichever surfaces second no longer matches.) A spurious early
//! wake-up is harmless; a late one cannot happen, because the live entry is never later than the
//! request's earliest deadline.
//!
//! Entries are packed into 12 bytes (`[u32; 3]`, deadline high/low word and slot), since an idle
//! gateway holds about one entry per request. `peek` is O(1), `push`/`pop` O(log n). Stale
//! entries are bounded by [`TimerQueue::compact`].

use alloc::collections::BinaryHeap;
use core::cmp::Reverse;

use crate::time::Timestamp;

/// One heap entry: a deadline for the request in `slot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerEntry {
    pub(crate) deadline: Timestamp,
    pub(crate) slot: u32,
}

/// A [`TimerEntry`] as stored: `[deadline >> 32, deadline as u32, slot]`, whose lexicographic
/// order is the entry's order, in 12 bytes instead of 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Packed([u32; 3]);

impl From<TimerEntry> for Packed {
    fn from(e: TimerEntry) -> Self {
        let d = e.deadline.as_micros();
        #[allow(clippy::cast_possible_truncation)] // splitting a u64 into its two halves
        Self([(d >> 32) as u32, d as u32, e.slot])
    }
}

impl From<Packed> for TimerEntry {
    fn from(Packed([hi, lo, slot]): Packed) -> Self {
        Self {
            deadline: Timestamp::from_micros((u64::from(hi) << 32) | u64::from(lo)),
            slot,
        }
    }
}

/// Min-heap of [`TimerEntry`], earliest first; ties in slot order, so the order in which
/// simultaneous deadlines fire is deterministic.
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<Reverse<Packed>>,
}

impl TimerQueue {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn push(&mut self, entry: TimerEntry) {
        self.heap.push(Reverse(entry.into()));
    }

    /// The earliest deadline, live or stale.
    pub(crate) fn peek_deadline(&self) -> Option<Timestamp> {
        self.heap
            .peek()
            .map(|&Reverse(e)| TimerEntry::from(e).deadline)
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Timestamp) -> Option<TimerEntry> {
        if self.peek_deadline()? <= now {
            self.heap.pop().map(|Reverse(e)| e.into())
        } else {
            None
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Every entry, in no particular order.
    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn iter(&self) -> impl Iterator<Item = TimerEntry> + '_ {
        self.heap.iter().map(|&Reverse(e)| e.into())
    }

    /// Drops every entry for which `is_live` is false, when stale entries outnumber `live`
    /// (the number of requests) by more than a slack. Amortised O(1) per push: a rebuild happens
    /// only after at least `live + SLACK` pushes since the last one.
    pub(crate) fn compact(&mut self, live: usize, is_live: impl FnMut(&TimerEntry) -> bool) {
        const SLACK: usize = 1024;
        let mut is_live = is_live;
        if self.heap.len() > live.saturating_mul(2).saturating_add(SLACK) {
            self.heap.retain(|&Reverse(e)| is_live(&e.into()));
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
    fn packing_preserves_order_and_value() {
        let entries = [
            e(0, 0),
            e(1, 7),
            e(u64::from(u32::MAX), 1),
            e(u64::from(u32::MAX) + 1, 0),
            e(u64::MAX, u32::MAX),
        ];
        for a in entries {
            assert_eq!(TimerEntry::from(Packed::from(a)), a);
            for b in entries {
                assert_eq!(Packed::from(a).cmp(&Packed::from(b)), a.cmp(&b));
            }
        }
        assert_eq!(core::mem::size_of::<Reverse<Packed>>(), 12);
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
