//! The engines' per-message lookups (request id → slot, socket id → slot): a hash map with a
//! fast deterministic hasher under `std`, a `BTreeMap` without it.
//!
//! The keys are ids the peer side cannot choose freely for a victim (a gateway's request ids
//! come from its embedder, which draws them at random; a runner's socket ids from the gateways
//! it trusts), so the hasher is not keyed against collision flooding. Nothing iterates these
//! maps to produce an output: their order never reaches an action, a frame or a stat.

use core::hash::{BuildHasherDefault, Hasher};

/// Folded-multiply hashing: each word is mixed with a 64 × 64 → 128-bit multiply whose halves
/// are xored, so every input bit reaches the low bits the table indexes with.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHash(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl IdHash {
    fn add(&mut self, word: u64) {
        let product = u128::from(self.0 ^ word) * u128::from(K);
        // Truncation intended: the two halves of the product, folded.
        #[allow(clippy::cast_possible_truncation)]
        let folded = (product as u64) ^ ((product >> 64) as u64);
        self.0 = folded;
    }
}

impl Hasher for IdHash {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0_u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The [`BuildHasher`](core::hash::BuildHasher) of [`IdHash`].
pub(crate) type IdHasher = BuildHasherDefault<IdHash>;

/// An id → slot index: O(1) with `std`, O(log n) without.
#[cfg(feature = "std")]
pub(crate) type IdMap<K, V> = std::collections::HashMap<K, V, IdHasher>;

/// An id → slot index: O(1) with `std`, O(log n) without.
#[cfg(not(feature = "std"))]
pub(crate) type IdMap<K, V> = alloc::collections::BTreeMap<K, V>;

/// Sorted `(key, value)` pairs of an index, for checks that report in a deterministic order.
pub(crate) fn sorted<K: Ord + Copy, V: Copy>(map: &IdMap<K, V>) -> alloc::vec::Vec<(K, V)> {
    // Sorted right below: the map's order does not escape.
    #[allow(clippy::disallowed_methods)]
    let mut pairs: alloc::vec::Vec<(K, V)> = map.iter().map(|(k, v)| (*k, *v)).collect();
    pairs.sort_unstable_by_key(|pair| pair.0);
    pairs
}

#[cfg(test)]
mod tests {
    use core::hash::BuildHasher;

    use super::*;
    use crate::wire::RequestId;

    /// Ids that differ only in their last byte (the high byte read little-endian) still spread
    /// over the low bits a table indexes with.
    #[test]
    fn high_byte_differences_reach_the_low_bits() {
        let hasher = IdHasher::default();
        let low: alloc::collections::BTreeSet<u64> = (0..=255_u8)
            .map(|b| hasher.hash_one(RequestId([0, 0, 0, b])) & 0xff)
            .collect();
        assert!(low.len() > 128, "only {} distinct low bytes", low.len());
    }
}
