//! Fuzzing harness functions, shared by the cargo-fuzz targets in `fuzz/` and by
//! `tests/fuzz_corpus.rs` (which replays the committed corpora on stable).
//!
//! Every function takes arbitrary bytes and **panics if and only if a property is violated**; it
//! never panics on an input merely because the input is odd. The properties checked are:
//!
//! * [`wire_decode`]: every frame that decodes (plain or versioned, as any message type)
//!   re-encodes to the very same bytes, with `encoded_len` equal to its length; decoding under
//!   tighter [`DecodeLimits`](crate::wire::DecodeLimits) never accepts what the defaults reject;
//!   the envelope types agree with the types they wrap; the v2 UUID packing round-trips.
//! * [`gateway_ops`]: a [`Gateway`](crate::gateway::Gateway) with a configuration drawn from the
//!   bytes is driven through an operation sequence drawn from the bytes (client, runner, record
//!   store and clock events, malformed frames included). After every operation:
//!   `check_invariants` passes, the pending limits hold, the actions are consistent with a
//!   shadow model (exactly one terminal `Closed` per request and nothing after it, consecutive
//!   indices, phases, wake requests, backpressure wake-ups), and the timer contract holds
//!   (`poll_timeout` is never at or before a `now` whose timeouts were handled).
//! * [`runner_ops`]: the same for a [`Runner`](crate::runner::Runner) driven as an app, a
//!   storage and a gateway would drive it: hibernatable sockets receive gateway indices in order
//!   and exactly once, every ack names an index the app reported durable, outgoing indices are
//!   consecutive, limits hold, every socket ends with at most one `Closed`, and the timer
//!   contract holds.
//!
//! The operation sequences are decoded with [`Input`], a byte-consuming reader that yields
//! zeros once the bytes run out, so every byte string is a valid (if short) test case and
//! libFuzzer's mutations map to small changes of the sequence.

mod control;
mod gateway;
mod runner;
mod wire;

pub use control::{Client, RunnerProc, WORLD_GATEWAY, World, control_ops};
pub use gateway::gateway_ops;
pub use runner::runner_ops;
pub use wire::wire_decode;

use core::time::Duration;

use crate::time::Timestamp;

/// Most operations one input may run: keeps every input fast whatever its length.
pub const MAX_OPS: usize = 400;

/// A byte-consuming reader: each call takes the next bytes of the input and maps them to a
/// value. Once the input is exhausted every call returns zero (or the smallest choice).
#[derive(Debug, Clone)]
pub struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    /// A reader over `data`.
    #[must_use]
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// Whether every byte was consumed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The next byte, or 0.
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }

    /// Whether the next byte is a multiple of `n`: true about once in `n` draws (always once
    /// the input is exhausted).
    pub fn one_in(&mut self, n: u8) -> bool {
        self.u8().is_multiple_of(n.max(1))
    }

    /// The next byte's low bit.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// Two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// Four bytes, little-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Eight bytes, little-endian.
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// A value in `0..n` from one byte (`n` ≤ 256; 0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        let b = usize::from(self.u8());
        if n == 0 { 0 } else { b % n }
    }

    /// One of `items` (the first when the input is exhausted).
    ///
    /// # Panics
    /// If `items` is empty (a harness bug, never an input's fault).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        let i = self.below(items.len());
        *items.get(i).expect("pick is called with a non-empty table")
    }

    /// Up to `max` bytes, the length taken from the next byte.
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let want = self.below(max.saturating_add(1));
        let start = self.pos.min(self.data.len());
        let end = start.saturating_add(want).min(self.data.len());
        self.pos = self.pos.saturating_add(want);
        self.data.get(start..end).unwrap_or_default()
    }
}

/// A duration from a table that spans microseconds to minutes (never zero).
pub(crate) fn duration(input: &mut Input<'_>) -> Duration {
    const MICROS: [u64; 12] = [
        1,
        1_000,
        10_000,
        50_000,
        100_000,
        250_000,
        1_000_000,
        3_000_000,
        5_000_000,
        30_000_000,
        90_000_000,
        600_000_000,
    ];
    Duration::from_micros(input.pick(&MICROS))
}

/// A time step for the clock: mostly small, sometimes huge (clock jumps).
pub(crate) fn time_step(input: &mut Input<'_>) -> Duration {
    match input.u8() % 16 {
        0 => Duration::ZERO,
        1..=6 => Duration::from_micros(u64::from(input.u8()) * 1_000),
        7..=11 => Duration::from_micros(u64::from(input.u16()) * 1_000),
        12..=13 => Duration::from_micros(u64::from(input.u16()) * 100_000),
        14 => Duration::from_secs(u64::from(input.u16()) * 3_600),
        _ => Duration::from_micros(input.u64() >> (input.u8() % 64)),
    }
}

/// Most deadlines one [`Tick::Advance`] handles on its way.
const CLOCK_STEPS: usize = 64;

/// A clock operation: the same five in both engine harnesses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tick {
    /// Advance the clock, handling every deadline on the way (a punctual driver).
    Advance(Duration),
    /// Advance the clock without handling timeouts (a late driver).
    Jump(Duration),
    /// `handle_timeout(now)`.
    HandleTimeout,
    /// `handle_timeout` with a `now` older than the latest one.
    StaleTimeout(Duration),
    /// Advance exactly to `poll_timeout()` and handle it.
    FireNext,
}

/// A harness whose engine runs on a clock the harness drives.
pub(crate) trait Clocked {
    /// The harness's current time.
    fn now_mut(&mut self) -> &mut Timestamp;
    /// The engine's `poll_timeout`.
    fn deadline(&self) -> Option<Timestamp>;
    /// Calls the engine's `handle_timeout(at)` and checks what follows.
    fn timeout(&mut self, at: Timestamp);
    /// Deadlines may have passed unhandled: the timer contract no longer applies as is.
    fn late(&mut self);
}

impl Tick {
    /// Draws a clock operation from `choice` (0 and 1: advance, 2: jump, 3: handle, possibly
    /// stale, otherwise fire the next deadline).
    pub(crate) fn draw(input: &mut Input<'_>, choice: u8) -> Self {
        match choice {
            0 | 1 => Self::Advance(time_step(input)),
            2 => Self::Jump(time_step(input)),
            3 => {
                if input.bool() {
                    Self::HandleTimeout
                } else {
                    Self::StaleTimeout(time_step(input))
                }
            }
            _ => Self::FireNext,
        }
    }

    /// Runs the operation on `h`.
    pub(crate) fn run<H: Clocked>(self, h: &mut H) {
        match self {
            Self::Advance(d) => {
                let now = *h.now_mut();
                let target = now + d;
                let mut steps = 0;
                while let Some(t) = h.deadline() {
                    if t > target || steps == CLOCK_STEPS {
                        break;
                    }
                    steps += 1;
                    let at = t.max(*h.now_mut());
                    *h.now_mut() = at;
                    h.timeout(at);
                }
                *h.now_mut() = target;
                h.timeout(target);
            }
            Self::Jump(d) => {
                *h.now_mut() += d;
                if d > Duration::ZERO {
                    h.late();
                }
            }
            Self::HandleTimeout => {
                let now = *h.now_mut();
                h.timeout(now);
            }
            Self::StaleTimeout(d) => {
                let now = *h.now_mut();
                h.timeout(now.saturating_sub(d));
            }
            Self::FireNext => {
                if let Some(t) = h.deadline() {
                    let now = h.now_mut();
                    *now = (*now).max(t);
                }
                let now = *h.now_mut();
                h.timeout(now);
            }
        }
    }
}

/// A payload of `len` bytes that does not consume input (its contents never matter to the
/// engines, only its length does).
pub(crate) fn payload(len: usize, seed: u8) -> alloc::vec::Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add(u8::try_from(i % 251).unwrap_or(0)))
        .collect()
}

/// Formats the last operations of a run for a failure message.
pub(crate) fn trace<T: core::fmt::Debug>(ops: &alloc::collections::VecDeque<(usize, T)>) -> String {
    use core::fmt::Write as _;
    let mut s = String::new();
    for (i, op) in ops {
        let _ = writeln!(s, "  #{i}: {op:?}");
    }
    s
}

use alloc::string::String;

/// How many recent operations a failure message shows.
pub(crate) const TRACE_LEN: usize = 24;
