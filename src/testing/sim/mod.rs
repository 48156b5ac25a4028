//! The deterministic simulator (feature `sim`): a whole hws deployment — clients, the engine side
//! of the control plane ([`Control`](crate::control::Control), which owns the
//! [`Gateway`](crate::gateway::Gateway)), several runner processes (each a
//! [`Session`](crate::session::Session) around a [`Runner`](crate::runner::Runner)), actors with
//! durable storage, and a faulty network — in one single-threaded discrete-event world fully
//! determined by a `u64` seed.
//!
//! The world has a virtual clock, one event queue ordered by `(time, insertion sequence)`, and a
//! `SplitMix64` PRNG seeded from the seed; nothing reads a wall clock or iterates a hash map.
//! Every fault rate is drawn from the seed (swarm testing: some seeds have no drops, some many),
//! as are the gateway's overflow policy and limits, the runner's gap policy and the control
//! engine's timings.
//!
//! # What happens in a run
//!
//! * **Chaos phase** ([`SimConfig::chaos_duration`]): clients connect to actors (the engine
//!   starts a sleeping actor and holds the open until it runs), send scripted messages with
//!   unique payload ids (text and binary, in bursts that go past the limits, with oversize
//!   messages sometimes) and close, sometimes while their actor sleeps. The app accepts opens
//!   (hibernatable or not, sometimes rejects), appends each delivered message to an in-memory
//!   log, commits log and index atomically on `Persist`, echoes, closes, and hands sockets back
//!   to drain its actor now and then. The control engine places actors on runners with free
//!   slots, sends start and stop commands, keeps each actor's list of hibernating requests, and
//!   wakes them when the actor runs again (possibly on another runner); the app loads the
//!   actor's stored metadata and restores it, or fails the start. Faults: tunnel message drop,
//!   duplication, reordering, link stalls; runner WebSockets that break (partitions: the runner
//!   reconnects, within the engine's lost threshold or not); runner crashes (process gone,
//!   storage kept, writes in flight land or not; the restarted process is a new runner); app
//!   crashes and failed actor starts (the actor stops with an error); crashes timed to hit a
//!   write in flight; failed persists; sleeps asked by the engine or by the runner; clock jumps.
//! * **Heal phase**: faults off, no crashes, no new client data. Within
//!   [`SimConfig::heal_budget`] every buffer must drain (every accepted message of every open
//!   hibernatable connection committed and acked); then every actor sleeps and starts again, and
//!   at the end every live request is active with one runner socket, storage holds the metadata
//!   of exactly the sockets runners hold, and no actor lists a closed request.
//!
//! # Invariants (checked after every step)
//!
//! 1. Per connection, the app's committed log is exactly a prefix of what the gateway accepted
//!    (in order, no duplicate), and so is the committed log followed by the live session's
//!    deliveries. Every delivered message carries the index the gateway gave its payload. A
//!    message the gateway released (acked) is committed; a restore resumes where the committed
//!    log ends. A close one side reports as the other's agrees with what the other sent, through
//!    the close frames.
//! 2. Pending counts and bytes of every request within the limits; the gateway total within the
//!    global limit and equal to the sum; [`Control::check_invariants`](crate::control::Control)
//!    (which checks the gateway's too); runners' held buffers within their limits.
//! 3. No request left in the gateway after its `Closed`; no socket left in a runner after its
//!    `Closed`.
//! 4. No timer in the past: after `handle_timeout(now)`, `poll_timeout()` is `None` or later.
//! 5. Causality: a connection is collected by a timeout (ack, ping, open, wake, hibernation) or
//!    closed for a gap only if a fault touched its path — a frame of it lost, reordered or
//!    duplicated (for an ack timeout: after the oldest unacked message was last sent), a crash, a
//!    broken runner link, a clock jump, a full runner queue. At the end no orphan is allowed: a
//!    live request no runner holds (a ghost) and a runner socket whose request is closed (a
//!    zombie) are violations whatever caused them.
//!
//! # Reproducing
//!
//! ```
//! use hibernating_ws::sim::{self, SimConfig};
//!
//! let report = sim::run(42, &SimConfig::default());
//! assert!(report.violations.is_empty(), "{report}");
//! // Same seed, same run.
//! assert_eq!(report.trace_hash, sim::run(42, &SimConfig::default()).trace_hash);
//! ```
//!
//! `SIM_SEED=n cargo test --test sim --all-features -- --nocapture` prints one seed's trace;
//! `cargo run --release --example sim --features sim -- --seeds 500` sweeps.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

/// Records a trace line at the world's current time.
macro_rules! tr {
    ($w:expr, $($arg:tt)*) => {
        $w.trace.record($w.now, format_args!($($arg)*))
    };
}

mod actions;
mod app;
mod client;
mod config;
mod event;
mod format;
mod net;
mod oracle;
mod plane;
mod rng;
mod trace;
mod world;

pub use config::{Faults, SimConfig};

/// What one simulation did and found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// Client messages the gateway accepted (`client_message` returned `Ok`).
    pub messages_accepted: u64,
    /// Messages the runners delivered to the app (replays after a crash count again).
    pub delivered: u64,
    /// Messages the gateway replayed on wake.
    pub replayed: u64,
    /// Duplicates the runners dropped.
    pub duplicates_dropped: u64,
    /// Out-of-order messages held and later delivered in order (gap policy `Await`).
    pub gaps_healed: u64,
    /// Messages the gateway retransmitted.
    pub retransmits: u64,
    /// Closes by side and reason (`"gateway client closed (1000 bye)"`, `"runner message index
    /// skip"`, …).
    pub closes_by_reason: BTreeMap<String, u64>,
    /// Runner and app crashes.
    pub crashes: u64,
    /// Actors put to sleep.
    pub sleeps: u64,
    /// Requests woken.
    pub wakes: u64,
    /// Invariant violations (empty when the run is correct). The run stops at the first.
    pub violations: Vec<String>,
    /// Hash of the whole trace: equal for equal seeds and configs.
    pub trace_hash: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u64>,
    /// Other counters (zombie sockets, backpressure refusals, steps, …).
    pub counts: BTreeMap<String, u64>,
    /// The parameters the seed drew, one group per line.
    pub params: String,
    /// Virtual time at the end.
    pub virtual_time: Duration,
}

impl SimReport {
    /// Whether no invariant was violated.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {}: {} accepted, {} delivered, {} replayed, {} duplicates dropped, {} gaps healed, {} retransmits, {} crashes, {} sleeps, {} wakes, {:.1}s virtual, trace {:016x}",
            self.seed,
            self.messages_accepted,
            self.delivered,
            self.replayed,
            self.duplicates_dropped,
            self.gaps_healed,
            self.retransmits,
            self.crashes,
            self.sleeps,
            self.wakes,
            self.virtual_time.as_secs_f64(),
            self.trace_hash
        )?;
        writeln!(f, "{}", self.params)?;
        writeln!(f, "faults: {:?}", self.faults)?;
        writeln!(f, "closes: {:?}", self.closes_by_reason)?;
        for v in &self.violations {
            writeln!(f, "VIOLATION: {v}")?;
        }
        if !self.violations.is_empty() {
            write!(
                f,
                "reproduce with SIM_SEED={} cargo test --test sim --all-features -- --nocapture",
                self.seed
            )?;
        }
        Ok(())
    }
}

/// Runs one simulation.
#[must_use]
pub fn run(seed: u64, config: &SimConfig) -> SimReport {
    let rng = rng::Entropy::from_seed(seed);
    world::World::new(seed, config, rng).run().0
}

/// Runs one simulation keeping the last `config.trace_capacity` trace lines (at least 1 000).
#[must_use]
pub fn run_traced(seed: u64, config: &SimConfig) -> (SimReport, Vec<String>) {
    let mut config = config.clone();
    config.trace_capacity = config.trace_capacity.max(1_000);
    let rng = rng::Entropy::from_seed(seed);
    world::World::new(seed, &config, rng).run()
}

/// Fuzzing entry point: the input bytes choose the world, the schedule and the faults of a
/// small simulation (each random decision consumes input bytes; a PRNG seeded from the input
/// takes over once they run out). Panics iff an invariant is violated, with the trace tail.
///
/// # Panics
/// When an invariant is violated.
#[doc(hidden)]
pub fn fuzz_schedule(data: &[u8]) {
    let config = SimConfig {
        trace_capacity: 200,
        ..SimConfig::small()
    };
    let rng = rng::Entropy::from_bytes(data);
    let (report, trace) = world::World::new(0, &config, rng).run();
    if !report.violations.is_empty() {
        let tail = trace.join("\n");
        panic!("{report}\n--- trace tail ---\n{tail}");
    }
}

/// A one-line summary of a report for sweep logs.
#[must_use]
pub fn summary(report: &SimReport) -> String {
    format!(
        "seed {:>6}: {:>4} accepted {:>4} delivered {:>3} replayed {:>3} dups {:>3} healed {:>3} retx {:>2} crashes {:>2} sleeps {:>3} wakes {}",
        report.seed,
        report.messages_accepted,
        report.delivered,
        report.replayed,
        report.duplicates_dropped,
        report.gaps_healed,
        report.retransmits,
        report.crashes,
        report.sleeps,
        report.wakes,
        if report.passed() { "ok" } else { "FAILED" }
    )
}

#[cfg(test)]
mod tests {
    use super::world::{Sabotage, World};
    use super::*;

    fn sabotaged(seed: u64, sabotage: Sabotage) -> SimReport {
        let mut world = World::new(seed, &SimConfig::default(), rng::Entropy::from_seed(seed));
        world.sabotage = Some(sabotage);
        world.run().0
    }

    /// Each planted defect is caught, with the violation it should produce, in some seed.
    fn caught(sabotage: Sabotage, expected: &str) {
        let mut hits = 0;
        for seed in 0..300 {
            let report = sabotaged(seed, sabotage);
            if report.violations.iter().any(|v| v.contains(expected)) {
                hits += 1;
            }
        }
        std::eprintln!("{sabotage:?}: caught in {hits} of 300 seeds");
        assert!(hits > 0, "{sabotage:?} was never caught as {expected:?}");
    }

    #[test]
    fn a_message_applied_twice_is_caught() {
        caught(
            Sabotage::DoubleApply,
            "is not a prefix of the accepted messages",
        );
    }

    #[test]
    fn an_ack_of_an_uncommitted_message_is_caught() {
        caught(Sabotage::IndexWithoutLog, "only");
    }

    #[test]
    fn a_start_never_restored_is_caught() {
        caught(Sabotage::IgnoreStarts, "liveness");
    }

    #[test]
    fn an_unexplained_loss_is_caught() {
        caught(Sabotage::HiddenLoss, "no fault touched its path");
    }

    #[test]
    fn the_same_seed_gives_the_same_trace_and_tracing_changes_nothing() {
        let config = SimConfig::default();
        for seed in [0, 1, 2, 42] {
            let a = run(seed, &config);
            let b = run(seed, &config);
            let (c, lines) = run_traced(seed, &config);
            assert_eq!(a, b);
            assert_eq!(a, c, "tracing must not change the run");
            assert!(!lines.is_empty());
        }
        assert_ne!(run(0, &config).trace_hash, run(1, &config).trace_hash);
    }
}
