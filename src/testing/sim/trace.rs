//! The simulation trace: one line per event, hashed (FNV-1a over the exact text) for determinism
//! checks, and kept in a ring buffer when tracing is on.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write as _};

use crate::time::Timestamp;

/// FNV-1a, fed through `fmt::Write` so a trace line is hashed without being allocated.
struct Fnv(u64);

impl Fnv {
    fn byte(&mut self, b: u8) {
        self.0 ^= u64::from(b);
        self.0 = self.0.wrapping_mul(0x0000_0100_0000_01B3);
    }
}

impl fmt::Write for Fnv {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            self.byte(b);
        }
        Ok(())
    }
}

/// `t=12.345678s`.
pub(crate) struct Time(pub(crate) Timestamp);

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0.as_micros();
        write!(f, "{}.{:06}s", us / 1_000_000, us % 1_000_000)
    }
}

/// Hash of every line, and the last `capacity` lines when tracing is on.
#[derive(Debug)]
pub(crate) struct Trace {
    hash: u64,
    lines: u64,
    ring: VecDeque<String>,
    capacity: usize,
}

impl Trace {
    /// `capacity == 0` hashes only.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            hash: 0xcbf2_9ce4_8422_2325,
            lines: 0,
            ring: VecDeque::new(),
            capacity,
        }
    }

    pub(crate) fn record(&mut self, now: Timestamp, args: fmt::Arguments<'_>) {
        let mut h = Fnv(self.hash);
        // Writing into a hasher cannot fail.
        let _ = write!(h, "{} {}", now.as_micros(), args);
        h.byte(b'\n');
        self.hash = h.0;
        self.lines += 1;
        if self.capacity > 0 {
            if self.ring.len() == self.capacity {
                self.ring.pop_front();
            }
            let mut line = String::new();
            let _ = write!(line, "t={:<14} {}", Time(now).to_string_lossless(), args);
            self.ring.push_back(line);
        }
    }

    pub(crate) fn hash(&self) -> u64 {
        self.hash
    }

    pub(crate) fn lines(&self) -> u64 {
        self.lines
    }

    pub(crate) fn enabled(&self) -> bool {
        self.capacity > 0
    }

    pub(crate) fn take_lines(&mut self) -> Vec<String> {
        core::mem::take(&mut self.ring).into()
    }
}

impl Time {
    fn to_string_lossless(&self) -> String {
        let mut s = String::new();
        let _ = write!(s, "{self}");
        s
    }
}
