//! A fast deterministic hasher for the driver's maps keyed by request id.
//!
//! Request ids are chosen by the gateway's embedder, not by its clients, so the map needs no
//! keyed hash against collision flooding; iteration order of these maps never reaches an
//! output.

use core::hash::{BuildHasherDefault, Hasher};

/// Multiply-rotate hashing (the `FxHash` scheme) over the bytes it is given.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct IdHash(u64);

const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl IdHash {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
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
pub(super) type IdHasher = BuildHasherDefault<IdHash>;
