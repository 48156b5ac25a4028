//! The pending buffer of a hibernatable request: encoded WebSocket messages sent to the runner and
//! not yet acknowledged, with contiguous indices, plus the ack rule
//! (`docs/design.md#validated-cumulative-acks`).

use alloc::collections::VecDeque;

use crate::index::MessageIndex;
use crate::time::Timestamp;

use super::Frame;

/// One unacknowledged message. Its index is implied by its position (the buffer is contiguous).
#[derive(Debug, Clone)]
pub(crate) struct PendingEntry {
    /// When it was last sent (first publish or replay on wake; retransmits do not count).
    pub(crate) sent_at: Timestamp,
    pub(crate) frame: Frame,
}

/// Unacknowledged messages, oldest first, with indices `first, first+1, …` (wrapping).
#[derive(Debug, Default)]
pub(crate) struct PendingBuffer {
    entries: VecDeque<PendingEntry>,
    first: MessageIndex,
    bytes: u64,
}

/// What an ack does to a request's pending buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckVerdict {
    /// Release the `n` oldest entries (`n ≥ 1`).
    Release(u16),
    /// At or behind what was already released: a duplicate, nothing to do.
    Stale,
    /// Ahead of the last index sent, or nowhere near the window: ignored.
    Invalid,
}

/// The ack rule. `oldest` is the oldest pending index (`None` when nothing is pending) and
/// `last_sent` the last index published. An ack `a` applies iff it lies in
/// `[oldest − 1, last_sent]`; it then releases `d(a, oldest − 1)` entries. Behind that window (up
/// to 32 767 behind) it is stale; anywhere else it is invalid. No ack ever releases unsent data.
pub(crate) fn classify_ack(
    oldest: Option<MessageIndex>,
    last_sent: MessageIndex,
    ack: MessageIndex,
) -> AckVerdict {
    let released_through = oldest.map_or(last_sent, MessageIndex::prev);
    if ack.is_within(released_through, last_sent) {
        match ack.distance(released_through) {
            0 => AckVerdict::Stale,
            n => AckVerdict::Release(n),
        }
    } else if ack.is_before(released_through) {
        AckVerdict::Stale
    } else {
        AckVerdict::Invalid
    }
}

impl PendingBuffer {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sum of the entries' frame sizes.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The oldest pending index.
    pub(crate) fn first(&self) -> Option<MessageIndex> {
        (!self.entries.is_empty()).then_some(self.first)
    }

    pub(crate) fn oldest_sent_at(&self) -> Option<Timestamp> {
        self.entries.front().map(|e| e.sent_at)
    }

    /// Appends the message with `index`, which must follow the newest entry (the caller assigns
    /// indices from one counter, so it does).
    pub(crate) fn push(&mut self, index: MessageIndex, sent_at: Timestamp, frame: Frame) {
        if self.entries.is_empty() {
            self.first = index;
        }
        debug_assert_eq!(
            index,
            self.first
                .wrapping_add(u16::try_from(self.entries.len()).unwrap_or(0)),
            "pending indices are contiguous"
        );
        self.bytes = self.bytes.saturating_add(frame.byte_len());
        self.entries.push_back(PendingEntry { sent_at, frame });
    }

    /// Releases the `n` oldest entries; returns the bytes released.
    pub(crate) fn release(&mut self, n: u16) -> u64 {
        let mut released = 0u64;
        for _ in 0..n {
            let Some(entry) = self.entries.pop_front() else {
                break;
            };
            released = released.saturating_add(entry.frame.byte_len());
            self.first = self.first.next();
        }
        self.bytes = self.bytes.saturating_sub(released);
        released
    }

    /// Entries oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &PendingEntry> {
        self.entries.iter()
    }

    /// Marks every entry as sent at `now` (a replay).
    pub(crate) fn mark_sent(&mut self, now: Timestamp) {
        for e in &mut self.entries {
            e.sent_at = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    fn idx(v: u16) -> MessageIndex {
        MessageIndex::new(v)
    }

    fn frame(len: usize) -> Frame {
        Frame::new(vec![0u8; len])
    }

    #[test]
    fn push_release_accounting_and_contiguity() {
        let mut p = PendingBuffer::default();
        assert_eq!(p.first(), None);
        for (i, len) in [(65_534u16, 10usize), (65_535, 20), (0, 30), (1, 40)] {
            p.push(idx(i), Timestamp::from_micros(u64::from(i)), frame(len));
        }
        assert_eq!((p.len(), p.bytes(), p.first()), (4, 100, Some(idx(65_534))));
        assert_eq!(p.release(2), 30);
        assert_eq!((p.len(), p.bytes(), p.first()), (2, 70, Some(idx(0))));
        assert_eq!(p.oldest_sent_at(), Some(Timestamp::from_micros(0)));
        p.mark_sent(Timestamp::from_secs(9));
        assert!(p.iter().all(|e| e.sent_at == Timestamp::from_secs(9)));
        // Releasing more than held stops at empty.
        assert_eq!(p.release(5), 70);
        assert!(p.is_empty());
        assert_eq!(p.bytes(), 0);
        assert_eq!(p.first(), None);
    }

    #[test]
    fn ack_rule_table() {
        // Pending 10..=14 (last sent 14).
        let o = Some(idx(10));
        let last = idx(14);
        assert_eq!(classify_ack(o, last, idx(9)), AckVerdict::Stale); // already released
        assert_eq!(classify_ack(o, last, idx(10)), AckVerdict::Release(1));
        assert_eq!(classify_ack(o, last, idx(14)), AckVerdict::Release(5));
        assert_eq!(classify_ack(o, last, idx(15)), AckVerdict::Invalid); // never sent
        assert_eq!(classify_ack(o, last, idx(8)), AckVerdict::Stale);
        assert_eq!(
            classify_ack(o, last, idx(9u16.wrapping_sub(32_767))),
            AckVerdict::Stale
        );
        assert_eq!(
            classify_ack(o, last, idx(9u16.wrapping_sub(32_768))),
            AckVerdict::Invalid
        );
        assert_eq!(classify_ack(o, last, idx(30_000)), AckVerdict::Invalid);
        assert_eq!(classify_ack(o, last, idx(40_000)), AckVerdict::Stale); // 25 545 behind
        // Nothing pending, last sent 14.
        assert_eq!(classify_ack(None, last, idx(14)), AckVerdict::Stale);
        assert_eq!(classify_ack(None, last, idx(3)), AckVerdict::Stale);
        assert_eq!(classify_ack(None, last, idx(15)), AckVerdict::Invalid);
        // Across the wrap: pending 65534..=1.
        let o = Some(idx(65_534));
        let last = idx(1);
        assert_eq!(classify_ack(o, last, idx(65_535)), AckVerdict::Release(2));
        assert_eq!(classify_ack(o, last, idx(0)), AckVerdict::Release(3));
        assert_eq!(classify_ack(o, last, idx(1)), AckVerdict::Release(4));
        assert_eq!(classify_ack(o, last, idx(2)), AckVerdict::Invalid);
        assert_eq!(classify_ack(o, last, idx(65_533)), AckVerdict::Stale);
    }

    proptest! {
        /// For any buffer position, length and ack, the verdict never releases more than is
        /// pending, and releases exactly up to the ack when it applies.
        #[test]
        fn ack_never_releases_unsent(first: u16, len in 0u16..=32_767, ack: u16) {
            let oldest = (len > 0).then_some(idx(first));
            let last_sent = idx(first).wrapping_add(len).prev();
            match classify_ack(oldest, last_sent, idx(ack)) {
                AckVerdict::Release(n) => {
                    prop_assert!(n >= 1 && n <= len);
                    prop_assert_eq!(idx(first).wrapping_add(n - 1), idx(ack));
                }
                AckVerdict::Stale => {
                    prop_assert!(idx(ack).is_at_or_before(idx(first).prev()));
                }
                AckVerdict::Invalid => {
                    prop_assert!(!idx(ack).is_within(idx(first).prev(), last_sent));
                }
            }
        }
    }
}
