//! The client's message stream: seeded sizes, text or binary, each starting with its sequence
//! number, and the digest both ends compute over it.

/// `SplitMix64`: a tiny seeded generator (no dependency, deterministic everywhere).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi` (`lo <= hi`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        let span = hi.saturating_sub(lo).saturating_add(1);
        if span == 0 {
            return self.next_u64();
        }
        lo + self.next_u64() % span
    }
}

/// Bytes of the sequence-number prefix (zero-padded decimal: valid text and binary).
pub const SEQ_LEN: usize = 10;
/// The smallest message that can carry its sequence number.
pub const MIN_SIZE: usize = SEQ_LEN;

/// Message `seq` of the stream `seed`: `(data, binary)`. Sizes are uniform in
/// `min..=max` (at least [`MIN_SIZE`]); about half the messages are text.
pub fn message(seed: u64, seq: u64, min: usize, max: usize) -> (Vec<u8>, bool) {
    let mut rng = Rng::new(seed ^ seq.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    let min = min.max(MIN_SIZE);
    let max = max.max(min);
    let size = usize::try_from(rng.range(min as u64, max as u64)).unwrap_or(min);
    let binary = rng.next_u64() & 1 == 1;
    let mut data = Vec::with_capacity(size);
    data.extend_from_slice(format!("{:0width$}", seq % 10_000_000_000, width = SEQ_LEN).as_bytes());
    while data.len() < size {
        let word = rng.next_u64().to_le_bytes();
        for b in word {
            if data.len() == size {
                break;
            }
            // Text: printable ASCII only, so it is valid UTF-8.
            data.push(if binary { b } else { b' ' + (b % 95) });
        }
    }
    (data, binary)
}

/// The sequence number at the start of a message, if it has one.
pub fn seq_of(data: &[u8]) -> Option<u64> {
    let prefix = data.get(..SEQ_LEN)?;
    core::str::from_utf8(prefix).ok()?.parse().ok()
}

/// The digest of a stream after one more message: order-sensitive, fast (8 bytes per step).
pub fn fold(digest: u64, data: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = (digest ^ data.len() as u64).wrapping_mul(K).rotate_left(29);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(31);
    }
    for &b in chunks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(K).rotate_left(7);
    }
    h
}

/// The digest of the first `n` messages of a stream.
pub fn expected_digest(seed: u64, n: u64, min: usize, max: usize) -> u64 {
    (0..n).fold(0, |d, seq| fold(d, &message(seed, seq, min, max).0))
}
