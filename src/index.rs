//! Serial-number arithmetic (RFC 1982) for wrapping `u16` message indices.
//!
//! Every part of the crate — the gateway's ack window, the runner's duplicate and gap detection,
//! the outgoing index of the runner — compares indices with the functions here, so both roles agree
//! at every distance (upstream's TypeScript and Rust helpers disagree at distance 32 767).
//!
//! With `d(a, b) = (a − b) mod 2¹⁶`:
//!
//! | `d(a, b)`          | relation                               |
//! |--------------------|----------------------------------------|
//! | 0                  | `a == b`                               |
//! | 1 ..= 32 767       | `a` is after `b` ([`MessageIndex::is_after`]) |
//! | 32 768             | undefined: neither after nor before    |
//! | 32 769 ..= 65 535  | `a` is before `b` ([`MessageIndex::is_before`]) |
//!
//! The relation is antisymmetric but not transitive over the whole ring; it is transitive for
//! indices that lie within one half-window, which is why hws caps the number of unacked messages at
//! [`MAX_WINDOW`] (32 767).

use core::fmt;

/// The largest number of consecutive indices that can be compared unambiguously: 2¹⁵ − 1.
///
/// hws never keeps more than this many unacked messages per request.
pub const MAX_WINDOW: u16 = 32_767;

/// A wrapping `u16` message index, compared with serial-number arithmetic.
///
/// `MessageIndex` deliberately does not implement `Ord`: "after" is only defined within half the
/// index space. Use [`is_after`](Self::is_after) and [`is_before`](Self::is_before).
///
/// ```
/// use hibernating_ws::MessageIndex;
///
/// let last = MessageIndex::new(65_535);
/// let next = last.next();
/// assert_eq!(next.get(), 0);
/// assert!(next.is_after(last));
/// assert_eq!(next.distance(last), 1);
/// // Exactly half-way round the ring neither relation holds.
/// let far = MessageIndex::new(0).wrapping_add(32_768);
/// assert!(!far.is_after(MessageIndex::new(0)) && !far.is_before(MessageIndex::new(0)));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct MessageIndex(u16);

impl MessageIndex {
    /// Index zero (upstream's `ToClientWebSocketOpen` of a fresh request).
    pub const ZERO: Self = Self(0);

    /// Wraps a raw index.
    #[must_use]
    pub const fn new(raw: u16) -> Self {
        Self(raw)
    }

    /// The raw `u16`.
    #[must_use]
    pub const fn get(self) -> u16 {
        self.0
    }

    /// The following index, wrapping 65 535 → 0.
    #[must_use]
    pub const fn next(self) -> Self {
        Self(self.0.wrapping_add(1))
    }

    /// The preceding index, wrapping 0 → 65 535.
    #[must_use]
    pub const fn prev(self) -> Self {
        Self(self.0.wrapping_sub(1))
    }

    /// `self + n` modulo 2¹⁶.
    #[must_use]
    pub const fn wrapping_add(self, n: u16) -> Self {
        Self(self.0.wrapping_add(n))
    }

    /// `self − n` modulo 2¹⁶.
    #[must_use]
    pub const fn wrapping_sub(self, n: u16) -> Self {
        Self(self.0.wrapping_sub(n))
    }

    /// `d(self, other) = (self − other) mod 2¹⁶`: how many steps forward from `other` reach `self`.
    #[must_use]
    pub const fn distance(self, other: Self) -> u16 {
        self.0.wrapping_sub(other.0)
    }

    /// `self` is after `other`: `d(self, other) ∈ [1, 32 767]`.
    #[must_use]
    pub const fn is_after(self, other: Self) -> bool {
        let d = self.distance(other);
        d >= 1 && d <= MAX_WINDOW
    }

    /// `self` is before `other`: `other` is after `self`.
    #[must_use]
    pub const fn is_before(self, other: Self) -> bool {
        other.is_after(self)
    }

    /// `self` is after `other` or equal to it.
    #[must_use]
    pub const fn is_at_or_after(self, other: Self) -> bool {
        self.0 == other.0 || self.is_after(other)
    }

    /// `self` is before `other` or equal to it.
    #[must_use]
    pub const fn is_at_or_before(self, other: Self) -> bool {
        self.0 == other.0 || self.is_before(other)
    }

    /// `self` lies in the inclusive range walked forward from `first` to `last`
    /// (`d(self, first) ≤ d(last, first)`). Ranges longer than the ring are not representable.
    #[must_use]
    pub const fn is_within(self, first: Self, last: Self) -> bool {
        self.distance(first) <= last.distance(first)
    }
}

impl From<u16> for MessageIndex {
    fn from(raw: u16) -> Self {
        Self(raw)
    }
}

impl From<MessageIndex> for u16 {
    fn from(i: MessageIndex) -> Self {
        i.0
    }
}

impl fmt::Debug for MessageIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl fmt::Display for MessageIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn idx(v: u16) -> MessageIndex {
        MessageIndex::new(v)
    }

    /// Every distance from every one of a spread of bases, checked against the table in the
    /// module docs.
    #[test]
    fn exhaustive_over_all_distances() {
        for base in [0u16, 1, 2, 1000, 32_767, 32_768, 32_769, 65_534, 65_535] {
            let b = idx(base);
            for d in 0..=u16::MAX {
                let a = b.wrapping_add(d);
                assert_eq!(a.distance(b), d);
                let after = a.is_after(b);
                let before = a.is_before(b);
                match d {
                    0 => assert!(!after && !before && a == b, "d=0 base={base}"),
                    1..=32_767 => assert!(after && !before, "d={d} base={base}"),
                    32_768 => assert!(!after && !before, "d=32768 base={base}"),
                    _ => assert!(!after && before, "d={d} base={base}"),
                }
                assert_eq!(a.is_at_or_after(b), after || d == 0);
                assert_eq!(a.is_at_or_before(b), before || d == 0);
            }
        }
    }

    #[test]
    fn wrap_65535_to_0() {
        assert_eq!(idx(65_535).next(), idx(0));
        assert_eq!(idx(0).prev(), idx(65_535));
        assert!(idx(0).is_after(idx(65_535)));
        assert!(idx(1).is_after(idx(65_535)));
        assert!(idx(65_535).is_before(idx(0)));
        assert_eq!(idx(0).distance(idx(65_535)), 1);
        assert_eq!(idx(65_535).distance(idx(0)), 65_535);
        // The sequence 65534 → 65535 → 0 → 1 is strictly increasing step by step.
        let seq = [65_534u16, 65_535, 0, 1];
        for w in seq.windows(2) {
            assert!(idx(w[1]).is_after(idx(w[0])));
            assert_eq!(idx(w[0]).next(), idx(w[1]));
        }
    }

    #[test]
    fn half_range_boundaries_match_upstream_tests() {
        // Upstream utils.test.ts: 32766 and 32767 ahead are "gt"; 32768 is neither.
        assert!(idx(32_766).is_after(idx(0)));
        assert!(idx(32_767).is_after(idx(0)));
        assert!(!idx(32_768).is_after(idx(0)));
        assert!(!idx(0).is_after(idx(32_768)));
    }

    #[test]
    fn is_within_ranges() {
        assert!(idx(5).is_within(idx(3), idx(7)));
        assert!(idx(3).is_within(idx(3), idx(7)));
        assert!(idx(7).is_within(idx(3), idx(7)));
        assert!(!idx(8).is_within(idx(3), idx(7)));
        assert!(!idx(2).is_within(idx(3), idx(7)));
        // Across the wrap.
        assert!(idx(0).is_within(idx(65_530), idx(4)));
        assert!(idx(65_535).is_within(idx(65_530), idx(4)));
        assert!(!idx(5).is_within(idx(65_530), idx(4)));
    }

    proptest! {
        #[test]
        fn antisymmetry(a: u16, b: u16) {
            let (a, b) = (idx(a), idx(b));
            prop_assert!(!(a.is_after(b) && b.is_after(a)));
            prop_assert_eq!(a.is_after(b), b.is_before(a));
            // Trichotomy everywhere except the undefined antipode.
            if a.distance(b) != 32_768 {
                let n = u8::from(a == b) + u8::from(a.is_after(b)) + u8::from(a.is_before(b));
                prop_assert_eq!(n, 1);
            }
        }

        #[test]
        fn transitive_within_a_half_window(base: u16, x in 0u16..=MAX_WINDOW, y in 0u16..=MAX_WINDOW, z in 0u16..=MAX_WINDOW) {
            // Three indices inside one window of 32 767 consecutive values behave like integers.
            let b = idx(base);
            let (p, q, r) = (b.wrapping_add(x), b.wrapping_add(y), b.wrapping_add(z));
            if q.is_after(p) && r.is_after(q) {
                prop_assert!(r.is_after(p));
            }
            prop_assert_eq!(q.is_after(p), y > x);
        }

        #[test]
        fn next_then_prev_is_identity(a: u16, n: u16) {
            prop_assert_eq!(idx(a).next().prev(), idx(a));
            prop_assert_eq!(idx(a).wrapping_add(n).wrapping_sub(n), idx(a));
            prop_assert_eq!(idx(a).wrapping_add(n).distance(idx(a)), n);
        }
    }
}
