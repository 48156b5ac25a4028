//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the harness functions of
//! `hibernating_ws::fuzz`, on stable and without cargo-fuzz.
//!
//! Each corpus holds seeds (for `wire_decode`, the official codec's vectors) and a minimised set
//! of inputs the fuzzer found interesting, including the inputs that found the bugs fixed so far
//! (files named `regression-*`). A harness function panics iff one of its properties is violated,
//! so this test fails as soon as a change breaks a property on any of them.
//!
//! The packaged crate does not ship the fuzz workspace: without `fuzz/` the tests skip with a
//! message. With `fuzz/` present, a missing or nearly empty corpus fails.

#![cfg(feature = "sim")]

use core::panic::AssertUnwindSafe;
use std::fs;
use std::panic::catch_unwind;
use std::path::{Path, PathBuf};

/// Runs every file of `fuzz/corpus/<target>/` through `harness`; fails listing the files whose
/// run panicked.
fn replay(target: &str, harness: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    if !fuzz.is_dir() {
        eprintln!(
            "{}: no fuzz workspace (a packaged crate?); skipping the {target} corpus",
            fuzz.display()
        );
        return;
    }
    let dir = fuzz.join("corpus").join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "{}: the corpus is missing or nearly empty",
        dir.display()
    );
    let mut failed = Vec::new();
    for file in &files {
        let data = fs::read(file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        if catch_unwind(AssertUnwindSafe(|| harness(&data))).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} corpus inputs violate a property:\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

/// One test per fuzz target, each replaying that target's committed corpus.
macro_rules! corpus_tests {
    ($($test:ident: $target:literal => $harness:path;)*) => {
        $(
            #[test]
            fn $test() {
                replay($target, $harness);
            }
        )*
    };
}

corpus_tests! {
    wire_decode_corpus: "wire_decode" => hibernating_ws::fuzz::wire_decode;
    gateway_ops_corpus: "gateway_ops" => hibernating_ws::fuzz::gateway_ops;
    runner_ops_corpus: "runner_ops" => hibernating_ws::fuzz::runner_ops;
    sim_schedule_corpus: "sim_schedule" => hibernating_ws::sim::fuzz_schedule;
    control_ops_corpus: "control_ops" => hibernating_ws::fuzz::control_ops;
}

/// A `sim_schedule` input the fuzzer found
/// (`fuzz/corpus/sim_schedule/regression-stale-open-after-app-close`): the app closed a socket,
/// its close to the gateway was lost, and a duplicated open must not reopen the socket on the
/// same runner (the gateway's retransmit would then deliver the pending messages a second
/// time); the runner answers it with a close instead.
#[test]
fn sim_schedule_stale_open_after_app_close() {
    replay_sim_schedule("regression-stale-open-after-app-close");
}

/// A `sim_schedule` input CI's fuzz step found
/// (`fuzz/corpus/sim_schedule/regression-wake-after-runner-lost`): a client message woke a
/// sleeping actor, the control engine placed it on a runner that was then lost, and nothing
/// started the actor again, so the request waited out its wake timeout while another runner was
/// free. The control engine now starts again any actor stopped with a wake still pending.
#[test]
fn sim_schedule_wake_after_runner_lost() {
    replay_sim_schedule("regression-wake-after-runner-lost");
}

/// A `sim_schedule` input CI's fuzz step found
/// (`fuzz/corpus/sim_schedule/regression-abandoned-generations-one-runner`): two generations of
/// one actor were given up on (start timeouts) while placed on the same runner, whose link was
/// partitioned; the engine kept only the newest generation's stop for the runner, which never
/// saw that generation, so the older one kept running there while the engine counted the actor
/// asleep (the healed world never reached its all-asleep stage). The engine now keeps a stop
/// for every abandoned generation until the runner acknowledges it.
#[test]
fn sim_schedule_abandoned_generations_one_runner() {
    replay_sim_schedule("regression-abandoned-generations-one-runner");
}

/// Replays the committed `sim_schedule` corpus entry `name` (panics on a violation).
fn replay_sim_schedule(name: &str) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus/sim_schedule")
        .join(name);
    let data = fs::read(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    hibernating_ws::sim::fuzz_schedule(&data);
}
