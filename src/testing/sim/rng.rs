//! Randomness of the simulator: a `SplitMix64` PRNG seeded from the seed, or (for fuzzing) the
//! fuzzer's bytes consumed one decision at a time with a PRNG behind them once they run out.

use alloc::vec::Vec;

/// `SplitMix64` (Steele, Lea, Flood 2014): tiny, fast, full-period, good enough for test
/// schedules. No dependency.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) const fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Where every random decision of a simulation comes from.
#[derive(Debug, Clone)]
pub(crate) enum Entropy {
    /// A seeded PRNG (normal runs).
    Rng(SplitMix64),
    /// Fuzzer bytes: each decision consumes the few bytes it needs; once they are exhausted the
    /// PRNG (seeded from a hash of the bytes) takes over, so every input is a complete run.
    Bytes {
        data: Vec<u8>,
        pos: usize,
        tail: SplitMix64,
    },
}

/// One part in a million: probabilities are integers in `0..=1_000_000`.
pub(crate) const PPM: u32 = 1_000_000;

impl Entropy {
    pub(crate) fn from_seed(seed: u64) -> Self {
        Self::Rng(SplitMix64::new(seed))
    }

    pub(crate) fn from_bytes(data: &[u8]) -> Self {
        // FNV-1a of the input seeds the tail.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in data {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01B3);
        }
        Self::Bytes {
            data: data.to_vec(),
            pos: 0,
            tail: SplitMix64::new(h),
        }
    }

    /// `n` bytes of the input as a little-endian number, or PRNG output once exhausted.
    fn take(&mut self, n: usize) -> u64 {
        match self {
            Self::Rng(r) => r.next_u64(),
            Self::Bytes { data, pos, tail } => {
                if *pos + n > data.len() {
                    return tail.next_u64();
                }
                let mut v = 0u64;
                for (i, b) in data[*pos..*pos + n].iter().enumerate() {
                    v |= u64::from(*b) << (8 * i);
                }
                *pos += n;
                v
            }
        }
    }

    /// Uniform in `0..n` (`0` when `n == 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n <= 1 {
            return 0;
        }
        match self {
            Self::Rng(r) => {
                // Lemire's multiply-shift; the bias is irrelevant for a test schedule.
                let x = u128::from(r.next_u64()) * u128::from(n);
                u64::try_from(x >> 64).unwrap_or(0)
            }
            Self::Bytes { .. } => {
                let bytes = if n <= 1 << 8 {
                    1
                } else if n <= 1 << 16 {
                    2
                } else if n <= 1 << 32 {
                    4
                } else {
                    8
                };
                self.take(bytes) % n
            }
        }
    }

    /// Uniform in `lo..=hi` (`lo` when `hi <= lo`).
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below(hi - lo + 1)
    }

    /// `true` with probability `ppm / 1_000_000`.
    pub(crate) fn chance(&mut self, ppm: u32) -> bool {
        if ppm == 0 {
            return false;
        }
        if ppm >= PPM {
            return true;
        }
        match self {
            // One byte per decision keeps fuzz inputs short; byte 0 always says yes.
            Self::Bytes { data, pos, .. } if *pos < data.len() => {
                let b = u64::from(data[*pos]);
                *pos += 1;
                b * u64::from(PPM) < u64::from(ppm) * 256
            }
            _ => self.below(u64::from(PPM)) < u64::from(ppm),
        }
    }

    /// One element of `items` (which must not be empty).
    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        let i = usize::try_from(self.below(items.len() as u64)).unwrap_or(0);
        items[i.min(items.len() - 1)]
    }

    /// Whether the decisions still come from fuzzer bytes.
    #[cfg(test)]
    pub(crate) fn bytes_left(&self) -> usize {
        match self {
            Self::Rng(_) => 0,
            Self::Bytes { data, pos, .. } => data.len().saturating_sub(*pos),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // First outputs for seed 1234567 (reference implementation by Vigna).
        let mut r = SplitMix64::new(1_234_567);
        assert_eq!(r.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(r.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn below_and_range_stay_in_bounds() {
        let mut e = Entropy::from_seed(7);
        for n in [1u64, 2, 3, 10, 1000, u64::MAX] {
            for _ in 0..200 {
                assert!(e.below(n) < n.max(1));
            }
        }
        for _ in 0..200 {
            let v = e.range(5, 9);
            assert!((5..=9).contains(&v));
        }
        assert_eq!(e.range(9, 5), 9);
    }

    #[test]
    fn bytes_are_consumed_then_the_tail_takes_over() {
        let mut e = Entropy::from_bytes(&[3, 0, 255]);
        assert_eq!(e.below(10), 3);
        assert!(e.chance(1)); // byte 0 says yes
        assert!(!e.chance(PPM / 2)); // byte 255: 255 * 1e6 >= 500_000 * 256
        assert_eq!(e.bytes_left(), 0);
        // Deterministic tail.
        let mut a = Entropy::from_bytes(&[1, 2]);
        let mut b = Entropy::from_bytes(&[1, 2]);
        let _ = (a.below(300), b.below(300));
        assert_eq!(a.below(1 << 40), b.below(1 << 40));
    }
}
