//! The deterministic simulator (`hibernating_ws::sim`) over many seeds.
//!
//! * `cargo test --test sim --all-features` sweeps 2 000 seeds of the default world and 200 of
//!   the large one (`SimConfig::large`), in shards that run in parallel.
//! * `SIM_SEEDS=n` sweeps `n` seeds of each world instead.
//! * `SIM_SEED=n cargo test --test sim --all-features -- --nocapture` runs seed `n` alone and
//!   prints its whole trace (the sweeps are skipped); add `SIM_LARGE=1` for the large world.
//!
//! A failing sweep re-runs its first failing seed with the trace on and prints the trace tail,
//! the report (drawn parameters, faults, closes, violations) and the command that reproduces it.
#![cfg(feature = "sim")]

extern crate alloc;

use alloc::collections::BTreeMap;

use hibernating_ws::sim::{self, SimConfig, SimReport};

/// Seeds of the default world swept by default.
const SEEDS: u64 = 2_000;
/// Seeds of the large world swept by default.
const LARGE_SEEDS: u64 = 200;
/// Trace lines printed for a failing seed.
const TAIL: usize = 300;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn large() -> bool {
    std::env::var("SIM_LARGE").is_ok_and(|v| v != "0")
}

/// Runs `seed`, and on failure prints its trace tail and report and panics.
fn check(seed: u64, config: &SimConfig) {
    let report = sim::run(seed, config);
    if !report.passed() {
        fail(&[report], config);
    }
}

fn fail(failed: &[SimReport], config: &SimConfig) -> ! {
    let first = &failed[0];
    let (report, trace) = sim::run_traced(first.seed, config);
    eprintln!("--- last {TAIL} trace lines of seed {} ---", first.seed);
    let skip = trace.len().saturating_sub(TAIL);
    for line in &trace[skip..] {
        eprintln!("{line}");
    }
    eprintln!("--- report ---\n{report}");
    let seeds: Vec<u64> = failed.iter().map(|r| r.seed).collect();
    panic!(
        "{} seed(s) failed: {seeds:?}; first violation: {}",
        failed.len(),
        first.violations.first().map_or("", String::as_str)
    );
}

/// Every `shards`-th seed from `shard` below `count`.
fn sweep(config: &SimConfig, count: u64, shard: u64, shards: u64) {
    if std::env::var("SIM_SEED").is_ok() {
        return; // `seed_from_env` runs the one seed.
    }
    let failed: Vec<SimReport> = (shard..count)
        .step_by(usize::try_from(shards).expect("a few shards"))
        .map(|seed| sim::run(seed, config))
        .filter(|r| !r.passed())
        .collect();
    if !failed.is_empty() {
        fail(&failed, config);
    }
}

fn default_sweep(shard: u64) {
    sweep(
        &SimConfig::default(),
        env_u64("SIM_SEEDS").unwrap_or(SEEDS),
        shard,
        4,
    );
}

fn large_sweep(shard: u64) {
    sweep(
        &SimConfig::large(),
        env_u64("SIM_SEEDS").unwrap_or(LARGE_SEEDS),
        shard,
        2,
    );
}

#[test]
fn sweep_default_world_shard_0() {
    default_sweep(0);
}

#[test]
fn sweep_default_world_shard_1() {
    default_sweep(1);
}

#[test]
fn sweep_default_world_shard_2() {
    default_sweep(2);
}

#[test]
fn sweep_default_world_shard_3() {
    default_sweep(3);
}

#[test]
fn sweep_large_world_shard_0() {
    large_sweep(0);
}

#[test]
fn sweep_large_world_shard_1() {
    large_sweep(1);
}

/// `SIM_SEED=n`: one seed, whole trace printed.
#[test]
fn seed_from_env() {
    let Some(seed) = env_u64("SIM_SEED") else {
        return;
    };
    let mut config = if large() {
        SimConfig::large()
    } else {
        SimConfig::default()
    };
    config.trace_capacity = usize::MAX >> 8;
    let (report, trace) = sim::run_traced(seed, &config);
    for line in &trace {
        println!("{line}");
    }
    println!("{report}");
    assert!(report.passed(), "seed {seed} failed");
}

/// The same seed replays the same run: equal trace hashes and reports, twice, for seeds of
/// both worlds; different seeds differ.
#[test]
fn runs_are_deterministic() {
    for (config, seeds) in [
        (SimConfig::default(), [3u64, 91, 1_149, 20_472]),
        (SimConfig::large(), [9, 907, 5_821, 14_223]),
    ] {
        let mut hashes = Vec::new();
        for seed in seeds {
            let a = sim::run(seed, &config);
            let b = sim::run(seed, &config);
            assert_eq!(a.trace_hash, b.trace_hash, "seed {seed}");
            assert_eq!(a, b, "seed {seed}");
            hashes.push(a.trace_hash);
        }
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), seeds.len(), "distinct seeds, distinct runs");
    }
}

/// Seeds that found engine bugs. Each fails on this simulator when its fix is reverted (checked
/// when it was pinned; a change to the simulator's draws may move a scenario to another seed).
///
/// The simulator runs the real control plane (`Control` and one `Session` per runner) since the
/// pins marked "hand orchestrator": their seeds are kept as regression runs, but the schedules
/// they drew under the hand orchestrator (where they failed) are gone, and the scenarios are
/// covered by the engines' scenario tests named in each note.
#[test]
fn seeds_that_found_bugs() {
    let default = SimConfig::default();
    let large = SimConfig::large();
    let small = SimConfig::small();
    let pinned: [(&str, &SimConfig, &[u64]); 19] = [
        // (The fuzzer found two more on this simulator, pinned as corpus entries and replayed by
        // `tests/fuzz_corpus.rs`: `regression-stale-open-after-hand-back` (runner) and
        // `regression-restore-behind-the-log` (storage fencing).)
        // Control plane: an actor the engine gave up on (a start timeout while its runner was
        // disconnected) kept running on the runner, which came back within the lost threshold;
        // the heal phase never saw it sleep. The engine now resends the abandoned stop.
        (
            "abandoned generation keeps running",
            &default,
            &[49, 127, 202, 240, 277],
        ),
        // Control plane: an actor whose start timed out (its runner crashed) was not started
        // again although a hibernating request had asked for the wake; the request waited out
        // its wake timeout and was collected while another runner had room.
        ("wake lost to a start timeout", &small, &[45_740]),
        // Runner: a socket handed back by an actor still stopping (another socket's final
        // persist in flight) was answered `ws.socket_not_found`, closing a live client.
        ("hand-back while the actor stops", &default, &[3_737]),
        ("hand-back while the actor stops", &small, &[535]),
        // Hand orchestrator (see `tests/runner_scenarios/`, stale opens): a duplicated first
        // open rewound a live socket to index 0.
        ("stale open rewind", &default, &[1_149, 3_171]),
        ("stale open rewind", &large, &[1_517]),
        // Hand orchestrator: the restore ack armed the re-ack rate limit while the gateway
        // dropped it.
        ("restore ack", &default, &[1_983]),
        ("restore ack", &large, &[2_547, 4_984]),
        // Hand orchestrator: a hibernating request dropped the restore close of the actor's new
        // runner.
        ("route check while hibernating", &default, &[91, 198, 743]),
        ("route check while hibernating", &large, &[907, 1_471]),
        // Hand orchestrator: restore case 3 closed silently; the gateway kept a ghost.
        ("silent stale close", &default, &[228, 434]),
        ("silent stale close", &large, &[260, 3_248]),
        // Hand orchestrator: a restored socket closed (Close) or overflowed its held buffer
        // (Await) on a stale message published before the request hibernated.
        ("restored socket before the replay", &default, &[20_472]),
        (
            "restored socket before the replay",
            &large,
            &[5_821, 21_963],
        ),
        // Hand orchestrator: the actor's stop did not wait for a hand-back's write.
        ("stop racing a hand-back", &default, &[45_017]),
        // Hand orchestrator: ghosts (a live request no runner holds) and a zombie (a request
        // collected while hibernating kept its socket restored on the next runner).
        (
            "ghost",
            &small,
            &[907, 5_896, 20_679, 21_703, 31_616, 32_755, 33_309],
        ),
        ("zombie: close while hibernating", &default, &[13_744]),
        // Gateway: a client close ended the request at once, so messages its runner had
        // delivered but not persisted (the runner then closed the socket, or crashed) never
        // reached the committed log. The close now waits for the acks.
        ("client close before the acks", &small, &[63, 117, 154]),
        // Session: the engine gave up on a generation (start timeout) whose start the runner had
        // queued behind the previous generation's stop; the stop for it was ignored, the queued
        // start then ran, and the actor kept running after the engine saw it stopped. The stop
        // is now carried out right after the queued start.
        ("stop of a queued start", &large, &[14_126]),
    ];
    for (what, config, seeds) in pinned {
        for &seed in seeds {
            let report = sim::run(seed, config);
            if !report.passed() {
                eprintln!("pinned seed ({what}) failed");
                check(seed, config);
            }
        }
    }
}

/// The `sim_schedule` inputs that found bugs on this simulator, by name (also replayed with the
/// whole corpus by `tests/fuzz_corpus.rs`): a stale copy of an open recreated a socket the app had
/// handed back, and the runner answered the hand-back's frames `ws.socket_not_found`; and a late
/// write of an actor generation the engine had given up on rolled the stored index back.
#[test]
fn fuzz_inputs_that_found_bugs() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/sim_schedule");
    if !dir.is_dir() {
        eprintln!("no fuzz workspace (a packaged crate?); skipping");
        return;
    }
    for name in [
        "regression-stale-open-after-hand-back",
        "regression-restore-behind-the-log",
    ] {
        let data = std::fs::read(dir.join(name)).expect("a committed corpus entry");
        sim::fuzz_schedule(&data);
    }
}

/// Swarm testing draws every fault kind and both of each policy somewhere in the first seeds, and
/// the interesting protocol paths happen.
#[test]
fn the_swarm_covers_every_fault_and_path() {
    let config = SimConfig::default();
    let mut faults = BTreeMap::<String, u64>::new();
    let mut counts = BTreeMap::<String, u64>::new();
    let mut closes = BTreeMap::<String, u64>::new();
    let mut params = String::new();
    let (mut replayed, mut dups, mut healed, mut retx, mut sleeps, mut wakes) = (0, 0, 0, 0, 0, 0);
    for seed in 0..300 {
        let r = sim::run(seed, &config);
        assert!(r.passed(), "{r}");
        for (k, v) in &r.faults {
            *faults.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &r.counts {
            *counts.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &r.closes_by_reason {
            *closes.entry(k.clone()).or_default() += v;
        }
        params.push_str(&r.params);
        replayed += r.replayed;
        dups += r.duplicates_dropped;
        healed += r.gaps_healed;
        retx += r.retransmits;
        sleeps += r.sleeps;
        wakes += r.wakes;
    }
    for kind in [
        "drop",
        "duplicate",
        "reorder",
        "stall",
        "partition",
        "runner_crash",
        "actor_crash",
        "start_failed",
        "persist_failure",
        "clock_jump",
        "burst_past_limit",
        "oversize_message",
        "write_landed_at_crash",
        "write_lost_at_crash",
    ] {
        assert!(
            faults.get(kind).copied().unwrap_or(0) > 0,
            "no {kind}: {faults:?}"
        );
    }
    for path in [
        "restored",
        "reacks",
        "app_hand_backs",
        "backpressured",
        "hibernations",
    ] {
        assert!(
            counts.get(path).copied().unwrap_or(0) > 0,
            "no {path}: {counts:?}"
        );
    }
    for policy in [
        "Close max",
        "Backpressure max",
        "runner: Close",
        "runner: Await",
    ] {
        assert!(params.contains(policy), "policy {policy} never drawn");
    }
    for close in [
        "gateway client closed",
        "gateway runner closed (ws.message_index_skip)",
        "gateway pending limit",
        "gateway collected: ack timeout",
        "runner stale metadata",
        "runner gateway closed",
    ] {
        assert!(
            closes.keys().any(|k| k.starts_with(close)),
            "no close {close:?}: {closes:?}"
        );
    }
    assert!(replayed > 0 && dups > 0 && healed > 0 && retx > 0 && sleeps > 0 && wakes > 0);
}

/// The fuzzing entry point accepts any bytes (it panics only on a violation).
#[test]
fn fuzz_schedule_runs_on_arbitrary_bytes() {
    let mut x: u64 = 0x1234_5678_9abc_def0;
    let mut inputs: Vec<Vec<u8>> = vec![Vec::new(), vec![0; 64], vec![0xff; 64], vec![7; 3]];
    for len in [16usize, 128, 1024, 4096] {
        inputs.push(
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x.to_le_bytes()[0]
                })
                .collect(),
        );
    }
    for input in inputs {
        sim::fuzz_schedule(&input);
    }
}
