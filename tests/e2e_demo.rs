//! End to end: the demo scenario, smaller, over real WebSockets on 127.0.0.1 (port 0): a client
//! streams messages while the actor sleeps and wakes and the runner is killed once without
//! persisting; the actor's committed log must hold every message exactly once, in order.
//!
//! Real time, not paused: the storage writes are blocking fsyncs on tokio's blocking pool, and
//! paused time auto-advances (firing the engines' timeouts) whenever the runtime waits on them.

#![allow(
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc,
    clippy::similar_names
)] // application code on std

mod e2e_support;

use std::time::Duration;

use demo::args::Args;
use demo::scenario;
use e2e_support::demo;

fn small(seed: u64) -> Args {
    Args {
        messages: 500,
        min_size: 10,
        max_size: 8 * 1024,
        sleeps: 3,
        seed,
        kill_runner: true,
        cold_start: Duration::from_millis(5),
        persist_interval: Duration::from_millis(20),
        ..Args::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_scenario_sleeps_and_a_runner_kill_lose_nothing_and_duplicate_nothing() {
    for seed in [1, 2] {
        let report = scenario::run_all(&small(seed))
            .await
            .expect("the demo runs");
        let text = report.render();
        assert!(report.pass(), "seed {seed}:\n{text}");
        assert_eq!(report.lost(), 0, "{text}");
        assert_eq!(report.twice(), 0, "{text}");
        assert_eq!(report.client.sent, 500, "{text}");
        assert_eq!(report.committed.map(|c| c.count), Some(500), "{text}");
        assert_eq!(report.kills, 1, "the runner was killed once:\n{text}");
        assert_eq!(report.snapshot.sleeps, 3, "three sleeps:\n{text}");
        assert!(
            report.gateway.hibernations >= 4,
            "3 sleeps + the kill:\n{text}"
        );
        assert_eq!(report.gateway.hibernations, report.gateway.wakes, "{text}");
        assert_eq!(report.gateway.pending_messages, 0, "{text}");
        // Every message the killed runner delivered without persisting came again (replayed).
        let delivered = report.app_deliveries.expect("in-process runner");
        assert!(delivered >= 500, "{text}");
        assert!(text.contains("PASS"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_without_kill_or_sleeps_delivers_everything_once() {
    let args = Args {
        sleeps: 0,
        kill_runner: false,
        messages: 200,
        ..small(7)
    };
    let report = scenario::run_all(&args).await.expect("the demo runs");
    let text = report.render();
    assert!(report.pass(), "{text}");
    assert_eq!(report.kills, 0, "{text}");
    assert_eq!(report.gateway.hibernations, 0, "{text}");
    // Without a crash every delivery is committed exactly once.
    assert_eq!(report.app_deliveries, Some(200), "{text}");
}
