//! The engines' per-message lookups (request id → slot, socket id → slot): [`IdMap`], an
//! open-addressing table with a fast deterministic hasher, with or without `std`; the hasher
//! also serves the tokio gateway driver's client map.
//!
//! The keys are ids the peer side cannot choose freely for a victim (a gateway's request ids
//! come from its embedder, which draws them at random; a runner's socket ids from the gateways
//! it trusts), so the hasher is not keyed against collision flooding. Nothing iterates these
//! maps to produce an output: their order never reaches an action, a frame or a stat.

use alloc::vec::Vec;
use core::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};

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

/// A slot number an [`IdMap`] can hold: every value but [`EMPTY`](Self::EMPTY), which marks a
/// free table entry. The engines' slots are bounded by their tables, far below it.
pub(crate) trait Slot: Copy + Eq {
    /// The value no entry holds.
    const EMPTY: Self;
}

impl Slot for u32 {
    const EMPTY: Self = u32::MAX;
}

impl Slot for usize {
    const EMPTY: Self = usize::MAX;
}

/// The smallest table, in entries.
const MIN_CAPACITY: usize = 16;

/// An id → slot index: open addressing with linear probing over one array of `(key, slot)`
/// pairs, so a lookup reads one entry (usually one cache line) where a map keeping its control
/// bytes apart from its entries reads two. Load stays at most 3/4; a removal shifts the
/// entries after it back (no tombstones), so lookups never probe past the first free entry.
/// The table grows by doubling and never shrinks, like the standard map.
///
/// Deterministic: the hasher is fixed, and nothing reads the table's order but
/// [`sorted`](super::sorted), which sorts.
#[derive(Debug, Clone)]
pub(crate) struct IdMap<K, V> {
    entries: Vec<(K, V)>,
    len: usize,
}

impl<K, V> Default for IdMap<K, V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            len: 0,
        }
    }
}

impl<K: Copy + Eq + Hash + Default, V: Slot> IdMap<K, V> {
    /// The number of ids held.
    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn mask(&self) -> usize {
        self.entries.len().wrapping_sub(1)
    }

    fn home(&self, key: &K) -> usize {
        // Truncation intended: the table index is the hash's low bits.
        #[allow(clippy::cast_possible_truncation)]
        let hash = IdHasher::default().hash_one(key) as usize;
        hash & self.mask()
    }

    /// The entry holding `key`, or the free entry where it would go.
    fn find(&self, key: &K) -> (usize, bool) {
        let mask = self.mask();
        let mut i = self.home(key);
        loop {
            let (k, v) = &self.entries[i];
            if *v == V::EMPTY {
                return (i, false);
            }
            if k == key {
                return (i, true);
            }
            i = (i + 1) & mask;
        }
    }

    /// The slot of `key`.
    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        if self.len == 0 {
            return None;
        }
        match self.find(key) {
            (i, true) => Some(&self.entries[i].1),
            (_, false) => None,
        }
    }

    /// Whether `key` is held.
    pub(crate) fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    /// Holds `key` → `value`; returns the slot it replaced. `value` must not be
    /// [`Slot::EMPTY`].
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        debug_assert!(value != V::EMPTY, "the empty marker is not a slot");
        if (self.len + 1) * 4 > self.entries.len() * 3 {
            self.grow();
        }
        let (i, found) = self.find(&key);
        let entry = &mut self.entries[i];
        let old = core::mem::replace(entry, (key, value));
        if found {
            Some(old.1)
        } else {
            self.len += 1;
            None
        }
    }

    /// Forgets `key`; returns its slot.
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        if self.len == 0 {
            return None;
        }
        let (mut hole, true) = self.find(key) else {
            return None;
        };
        let value = self.entries[hole].1;
        self.len -= 1;
        // Backward shift: move each following entry of the run into the hole if the hole lies
        // between its home and where it sits, so every entry stays reachable from its home.
        let mask = self.mask();
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let (k, v) = self.entries[j];
            if v == V::EMPTY {
                break;
            }
            let k_home = self.home(&k);
            if (j.wrapping_sub(k_home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.entries[hole] = (k, v);
                hole = j;
            }
        }
        self.entries[hole] = (K::default(), V::EMPTY);
        Some(value)
    }

    fn grow(&mut self) {
        let capacity = (self.entries.len() * 2).max(MIN_CAPACITY);
        let old = core::mem::replace(
            &mut self.entries,
            alloc::vec![(K::default(), V::EMPTY); capacity],
        );
        let mask = self.mask();
        for (k, v) in old {
            if v == V::EMPTY {
                continue;
            }
            let mut i = self.home(&k);
            while self.entries[i].1 != V::EMPTY {
                i = (i + 1) & mask;
            }
            self.entries[i] = (k, v);
        }
    }

    /// The held `(key, slot)` pairs, in table order (which must not reach an output).
    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries
            .iter()
            .filter(|(_, v)| *v != V::EMPTY)
            .map(|(k, v)| (k, v))
    }
}

/// Sorted `(key, value)` pairs of an index, for checks that report in a deterministic order.
#[cfg(any(test, feature = "sim"))]
pub(crate) fn sorted<K: Ord + Copy + Hash + Default, V: Slot>(
    map: &IdMap<K, V>,
) -> alloc::vec::Vec<(K, V)> {
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

    /// Random inserts, replacements and removals (with many keys sharing a home entry, so runs
    /// wrap around the table's end and removals shift entries back) agree with a `BTreeMap`
    /// after every step.
    #[test]
    fn id_map_agrees_with_a_btree_map() {
        use alloc::collections::BTreeMap;
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for keys in [3_u64, 40, 700, 5_000] {
            let mut map: IdMap<RequestId, u32> = IdMap::default();
            let mut model: BTreeMap<RequestId, u32> = BTreeMap::new();
            for step in 0..20_000_u32 {
                let key = RequestId::from_u32(u32::try_from(next() % keys).expect("small"));
                match next() % 3 {
                    0 | 1 => assert_eq!(map.insert(key, step), model.insert(key, step)),
                    _ => assert_eq!(map.remove(&key), model.remove(&key)),
                }
                let probe = RequestId::from_u32(u32::try_from(next() % keys).expect("small"));
                assert_eq!(map.get(&probe), model.get(&probe));
                assert_eq!(map.len(), model.len());
            }
            let pairs: alloc::vec::Vec<(RequestId, u32)> = model.into_iter().collect();
            assert_eq!(sorted(&map), pairs);
            for (key, _) in &pairs {
                assert!(map.contains_key(key));
                assert!(map.remove(key).is_some());
            }
            assert_eq!(map.len(), 0);
            assert!(map.iter().next().is_none());
        }
    }

    /// Removing from the middle of a run that wraps past the table's last entry keeps every
    /// other key of the run reachable.
    #[test]
    fn removal_inside_a_wrapped_run_keeps_the_rest_reachable() {
        let mut map: IdMap<RequestId, u32> = IdMap::default();
        for n in 0..12 {
            map.insert(RequestId::from_u32(n), n);
        }
        for gone in 0..12 {
            let mut copy = map.clone();
            assert_eq!(copy.remove(&RequestId::from_u32(gone)), Some(gone));
            for n in (0..12).filter(|n| *n != gone) {
                assert_eq!(copy.get(&RequestId::from_u32(n)), Some(&n));
            }
            assert_eq!(copy.get(&RequestId::from_u32(gone)), None);
        }
    }
}
