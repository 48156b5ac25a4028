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

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
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

/// What both engine harnesses keep besides their shadow model: the clock as the harness drives
/// it, and the recent operations for a failure message.
#[derive(Debug)]
pub(crate) struct Clock<Op> {
    /// The harness's current time.
    pub(crate) now: Timestamp,
    /// The latest `now` given to the engine (`now` runs ahead of it after a jump).
    pub(crate) seen: Timestamp,
    /// Every deadline at or before `now` was handled (the driver is punctual so far).
    pub(crate) punctual: bool,
    /// Operations run so far.
    pub(crate) step: usize,
    /// The last [`TRACE_LEN`] operations, with their step.
    ops: VecDeque<(usize, Op)>,
}

impl<Op: core::fmt::Debug> Clock<Op> {
    /// A clock starting at a time drawn from the input: usually small, sometimes zero or near
    /// the end of time.
    pub(crate) fn draw(input: &mut Input<'_>) -> Self {
        let start = match input.u8() % 8 {
            0 => Timestamp::ZERO,
            1 => Timestamp::from_micros(u64::MAX - u64::from(input.u32())),
            _ => Timestamp::from_micros(u64::from(input.u32())),
        };
        Self {
            now: start,
            seen: start,
            punctual: true,
            step: 0,
            ops: VecDeque::new(),
        }
    }

    /// A `now` for a command: every fifth step one `stale` older than the current time (the
    /// engine must treat it as the latest seen).
    pub(crate) fn stamp(&self, stale: Duration) -> Timestamp {
        if self.step % 5 == 4 {
            self.now.saturating_sub(stale)
        } else {
            self.now
        }
    }

    /// Remembers `op` as the operation of the current step.
    fn record(&mut self, op: Op) {
        self.ops.push_back((self.step, op));
        if self.ops.len() > TRACE_LEN {
            self.ops.pop_front();
        }
    }

    /// The clock step of the liveness phase: twice the `longest` timer of the configuration and
    /// a second. `None` near the end of time, where deadlines saturate to `Timestamp::MAX`
    /// ("never") and there is nothing to check.
    pub(crate) fn settle_step(
        &self,
        longest: impl IntoIterator<Item = Duration>,
    ) -> Option<Duration> {
        let longest = longest.into_iter().max().unwrap_or_default();
        let step = longest * 2 + Duration::from_secs(1);
        self.now
            .checked_add(step * 16)
            .filter(|&t| t != Timestamp::MAX)
            .map(|_| step)
    }

    /// A failure message: what went wrong, where, under which configuration, after which
    /// operations.
    pub(crate) fn report(
        &self,
        harness: &str,
        what: &str,
        config: &dyn core::fmt::Debug,
    ) -> String {
        format!(
            "{harness}: {what}\nat step {} now {:?}\nconfig {config:?}\nlast operations:\n{}",
            self.step,
            self.now,
            trace(&self.ops)
        )
    }
}

/// An engine harness: an engine, a shadow model of it and a [`Clock`]; what [`drive`] and
/// [`Tick::run`] need from it.
pub(crate) trait EngineHarness {
    /// One operation on the engine.
    type Op: Clone + core::fmt::Debug + From<Tick>;
    /// The harness's clock.
    fn clock(&mut self) -> &mut Clock<Self::Op>;
    /// Draws the next operation.
    fn next_op(&mut self, input: &mut Input<'_>) -> Self::Op;
    /// Runs one operation and checks what belongs to it.
    fn run(&mut self, op: Self::Op);
    /// The checks after every operation (invariants, limits, model agreement).
    fn check_all(&mut self);
    /// The liveness phase once the input is exhausted.
    fn settle(&mut self);
    /// The engine's `poll_timeout`.
    fn poll_timeout(&self) -> Option<Timestamp>;
    /// The engine's `handle_timeout(at)`, then draining and checking its actions.
    fn handle_timeout(&mut self, at: Timestamp);
    /// Panics with the failure and the recent operations.
    fn fail(&self, what: &str) -> !;

    /// `handle_timeout(at)`, then the timer contract: the next deadline is after the latest now.
    fn timeout(&mut self, at: Timestamp) {
        self.handle_timeout(at);
        // An older `at` is treated as the latest `now` the engine has seen.
        let clock = self.clock();
        clock.seen = clock.seen.max(at);
        let seen = clock.seen;
        if seen >= clock.now {
            clock.punctual = true;
        }
        if let Some(t) = self.poll_timeout()
            && t <= seen
        {
            self.fail(&format!(
                "poll_timeout {t:?} at or before the handled now {seen:?}"
            ));
        }
    }

    /// While the driver is punctual, no deadline is at or before `now`.
    fn check_timer(&mut self) {
        let clock = self.clock();
        let (punctual, now) = (clock.punctual, clock.now);
        if punctual
            && let Some(t) = self.poll_timeout()
            && t <= now
        {
            self.fail(&format!(
                "poll_timeout {t:?} at or before now {now:?}, every earlier deadline was handled"
            ));
        }
    }

    /// One clock step of the liveness phase, recorded as an operation, then every check.
    fn settle_tick(&mut self, step: Duration) {
        let clock = self.clock();
        clock.step += 1;
        clock.record(Tick::Advance(step).into());
        clock.now += step;
        clock.seen = clock.seen.max(clock.now);
        let now = clock.now;
        self.timeout(now);
        self.check_all();
    }
}

/// Implements [`EngineHarness`] for a harness `$harness` with inherent `next_op`, `run_op`,
/// `check_all`, `settle_all` and `fail`, a `clock` field and its engine in field `$engine`; and
/// `From<Tick>` for `$op`, whose clock operations are `$op::Clock`.
macro_rules! engine_harness {
    ($harness:ident, $op:ident, $engine:ident) => {
        impl From<crate::fuzz::Tick> for $op {
            fn from(tick: crate::fuzz::Tick) -> Self {
                Self::Clock(tick)
            }
        }

        impl crate::fuzz::EngineHarness for $harness {
            type Op = $op;

            fn clock(&mut self) -> &mut crate::fuzz::Clock<$op> {
                &mut self.clock
            }

            fn next_op(&mut self, input: &mut crate::fuzz::Input<'_>) -> $op {
                $harness::next_op(self, input)
            }

            fn run(&mut self, op: $op) {
                self.run_op(op);
            }

            fn check_all(&mut self) {
                $harness::check_all(self);
            }

            fn settle(&mut self) {
                self.settle_all();
            }

            fn poll_timeout(&self) -> Option<crate::time::Timestamp> {
                self.$engine.poll_timeout()
            }

            fn handle_timeout(&mut self, at: crate::time::Timestamp) {
                self.$engine.handle_timeout(at);
                self.drain();
            }

            fn fail(&self, what: &str) -> ! {
                $harness::fail(self, what)
            }
        }
    };
}
pub(crate) use engine_harness;

/// Runs operations drawn from `input` on `h` (at most [`MAX_OPS`]), each followed by every
/// check, then the liveness phase.
pub(crate) fn drive<H: EngineHarness>(h: &mut H, input: &mut Input<'_>) {
    while !input.is_empty() && h.clock().step < MAX_OPS {
        let op = h.next_op(input);
        h.clock().record(op.clone());
        h.run(op);
        h.check_all();
        h.clock().step += 1;
    }
    h.settle();
}

/// Draws a configuration (with `config`) and a [`Clock`] from `data`, builds the engine with
/// `new` and the harness around it with `harness`, then [`drive`]s it.
///
/// # Panics
/// When `new` refuses the drawn configuration (a harness bug), or a property is violated.
pub(crate) fn run_engine<C, E, R, H>(
    data: &[u8],
    config: fn(&mut Input<'_>) -> C,
    new: impl FnOnce(C, Timestamp) -> Result<E, R>,
    harness: impl FnOnce(E, C, Clock<H::Op>) -> H,
) where
    C: Clone + core::fmt::Debug,
    R: core::fmt::Debug,
    H: EngineHarness,
{
    let mut input = Input::new(data);
    let config = config(&mut input);
    let clock = Clock::draw(&mut input);
    let engine = match new(config.clone(), clock.now) {
        Ok(engine) => engine,
        Err(e) => panic!("a valid configuration was refused: {e:?} {config:?}"),
    };
    let mut h = harness(engine, config, clock);
    drive(&mut h, &mut input);
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
    pub(crate) fn run<H: EngineHarness>(self, h: &mut H) {
        match self {
            Self::Advance(d) => {
                let target = h.clock().now + d;
                let mut steps = 0;
                while let Some(t) = h.poll_timeout() {
                    if t > target || steps == CLOCK_STEPS {
                        break;
                    }
                    steps += 1;
                    let clock = h.clock();
                    clock.now = t.max(clock.now);
                    let at = clock.now;
                    h.timeout(at);
                }
                h.clock().now = target;
                h.timeout(target);
            }
            Self::Jump(d) => {
                let clock = h.clock();
                clock.now += d;
                if d > Duration::ZERO {
                    clock.punctual = false;
                }
            }
            Self::HandleTimeout => {
                let now = h.clock().now;
                h.timeout(now);
            }
            Self::StaleTimeout(d) => {
                let now = h.clock().now;
                h.timeout(now.saturating_sub(d));
            }
            Self::FireNext => {
                if let Some(t) = h.poll_timeout() {
                    let clock = h.clock();
                    clock.now = clock.now.max(t);
                }
                let now = h.clock().now;
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
fn trace<T: core::fmt::Debug>(ops: &VecDeque<(usize, T)>) -> String {
    use core::fmt::Write as _;
    let mut s = String::new();
    for (i, op) in ops {
        let _ = writeln!(s, "  #{i}: {op:?}");
    }
    s
}

/// How many recent operations a failure message shows.
const TRACE_LEN: usize = 24;
