//! The official Rivet engine (`rivet-engine` 2.3.19, pinned in `tests/rivet_engine/`) with runners
//! behind it: the engine runs on free loopback ports with its storage in a temporary directory,
//! actors are created through its HTTP API and clients talk to them through its gateway.
//!
//! * `typescript_runner_behind_official_engine`: the official TypeScript runner of
//!   `tests/interop` (`runner.mjs`) proves the harness: sleep/wake cycles with traffic while
//!   asleep, and a client close while asleep (the engine answers with the client's own code);
//!   what the actor committed (read from the engine's actor KV) is exactly what the client sent.
//! * `hws_runner_behind_official_engine`: the runner of `examples/runner.rs` (hws's session,
//!   runner and tokio adapter, with the file store) as a child process: 10 sleep/wake cycles
//!   with traffic while asleep, a client close while asleep, 66 010 messages across the index
//!   wrap, and a SIGKILL of the runner under an awake actor with a new runner on the same store.
//!   The store's message count and digest of every socket equal what its client sent: each
//!   message once, in order. What the engine does that shapes these scenarios (and what is not
//!   checked because of it) is in `docs/rivet-engine.md`.
//!
//! Needs `npm ci` in `tests/rivet_engine` (the engine binary) and in `tests/interop` (the
//! TypeScript runner). With `CI=true` a missing one fails the test; otherwise it is skipped with a
//! loud message.

#![allow(
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc,
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::disallowed_methods, // the wall clock, for the reports only
    clippy::too_many_lines,
    missing_docs,
    unreachable_pub,
    dead_code
)] // test code on std

mod bench;
mod client;
mod engine;
#[allow(clippy::pedantic, clippy::unwrap_used)]
#[path = "../../examples/runner.rs"]
mod example;
mod hws;
#[path = "../common/node_runner.rs"]
mod node;

use std::time::Duration;

use client::{EVENT, Seen, batch};
use engine::RivetEngine;
use node::NodeRunner;

/// The tests of this binary run one at a time: each starts an engine and runners, and the
/// engine's timings stretch under load.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Polls `f` until it holds (hang guard: [`EVENT`]).
async fn until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + EVENT;
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The committed log of one socket of the TypeScript runner's actor, from the engine's KV.
async fn ts_committed(engine: &RivetEngine, actor: &str, req: &str) -> Vec<String> {
    let mut log = Vec::new();
    for seq in 0.. {
        let key = format!("log/{req}/{seq:010}");
        let Some(chunk) = engine.kv_get(actor, &key).await else {
            break;
        };
        log.extend(serde_json::from_slice::<Vec<String>>(&chunk).unwrap());
    }
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_runner_behind_official_engine() {
    if !engine::ready() || !node::ready("the TypeScript runner behind the Rivet engine") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let engine = RivetEngine::start().await;
    let node = NodeRunner::spawn(&engine.endpoint());
    until("the runner to connect", || async {
        node.count("app", "connected") > 0
    })
    .await;
    let actor = engine
        .create_actor("proof", "proof-1", node::RUNNER_NAME)
        .await;
    until("the actor to start", || async {
        node.find("app", "started")
            .iter()
            .any(|l| l["actor"] == actor.as_str())
    })
    .await;

    let mut c = engine.connect(&actor, "/ws").await;
    let mut sent = Vec::new();
    for cycle in 0..3 {
        let mut msgs = batch(&format!("m{cycle}"), 20);
        msgs.push("!sleep".into());
        c.send_all(&msgs, "proof").await;
        sent.extend(msgs);
        until("the actor to stop", || async {
            node.find("app", "stopped").len() > cycle
        })
        .await;
        // Traffic while asleep wakes the actor; the socket stayed open.
        let asleep = batch(&format!("asleep{cycle}"), 5);
        c.send_all(&asleep, "proof asleep").await;
        sent.extend(asleep);
    }
    let last = vec!["!sleep".to_string()];
    c.send_all(&last, "proof last sleep").await;
    sent.extend(last);
    until("the actor to stop", || async {
        node.find("app", "stopped").len() > 3
    })
    .await;
    // A client close while the actor sleeps: the engine answers the client with its own close
    // without waking the actor (what the actor learns of it depends on a race inside the engine:
    // `docs/rivet-engine.md`). A second socket wakes the actor, which serves it.
    c.close(4001, "bye while asleep").await;
    let seen = c.next(EVENT).await;
    assert_eq!(
        seen,
        Some(Seen::Close(Some((4001, "bye while asleep".into()))))
    );
    let opened = node.find("app", "opened");
    assert_eq!(opened.len(), 1, "one socket opened: {opened:?}");
    let req = opened[0]["req"].as_str().unwrap().to_string();
    let mut waker = engine.connect(&actor, "/waker").await;
    waker.send_all(&batch("waker", 3), "waker").await;

    let log = ts_committed(&engine, &actor, &req).await;
    assert_eq!(log.len(), sent.len(), "committed count");
    assert!(log == sent, "the committed log differs from what was sent");
    assert!(
        node.find("app", "restoring").len() >= 4,
        "every wake restored the socket"
    );
    drop(node);
}

/// Not a test: the hws runner process that `hws_runner_behind_official_engine` starts (this
/// binary re-executed with [`hws::RUNNER_ARGS`] set). Without that variable it does nothing.
#[test]
#[ignore = "the runner child process of hws_runner_behind_official_engine"]
fn runner_child() {
    let Ok(args) = std::env::var(hws::RUNNER_ARGS) else {
        return;
    };
    let args = example::parse(args.lines().map(String::from)).expect("runner arguments");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(example::run(args, std::future::pending()))
        .expect("the runner runs until killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hws_runner_behind_official_engine() {
    hws_scenarios("runner", true).await;
}

/// The same scenarios with the runner speaking envoy protocol v8 on `/envoys/connect`, but the
/// index wrap: the engine's envoy path slows down on a socket with many messages (tens per
/// second after a few thousand; `docs/rivet-engine.md`), so 66 010 messages take minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hws_envoy_behind_official_engine() {
    hws_scenarios("envoy", false).await;
}

/// The index wrap over envoy v8 (and every other scenario): minutes, not run by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes: cargo test --all-features --test rivet_engine hws_envoy_wrap -- --ignored"]
async fn hws_envoy_wrap_behind_official_engine() {
    hws_scenarios("envoy", true).await;
}

/// The hws runner speaking `protocol` behind the engine: every scenario of `hws` (the index
/// wrap only with `wrap`).
async fn hws_scenarios(protocol: &'static str, wrap: bool) {
    if !engine::ready() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let started = std::time::Instant::now();
    let engine = RivetEngine::start().await;
    // An envoy needs its pool before it connects; a v7 runner creates one when it connects, but
    // on a loaded machine the engine took more than a minute to accept actors for it.
    engine.configure_pool(hws::RUNNER_NAME).await;
    let data = hws::data_dir(&engine);
    let before = hws::connects();
    let mut runner = hws::RunnerProcess::spawn(&engine.endpoint(), &data, protocol);
    // An envoy's pool exists before it connects, so actors could be created (and wait
    // unplaced) before it does: create them once it has.
    hws::connected(before).await;
    let create = |name: &'static str| engine.create_actor(name, name, hws::RUNNER_NAME);
    let (a_cycles, a_wrap, a_closing, a_killed) = tokio::join!(
        create("cycles"),
        create("wrap"),
        create("closing"),
        create("killed")
    );

    let (cycles, ()) = tokio::join!(
        hws::cycles(&engine, &a_cycles),
        hws::closing(&engine, &a_closing, &data),
    );
    let mut outcomes = vec![cycles];
    if wrap {
        outcomes.push(hws::wrap(&engine, &a_wrap).await);
    }
    // The store holds exactly what each client sent (the runner persists within 5 s).
    for o in &outcomes {
        hws::committed(&data, o).await;
    }
    // The clients close: the engine answers each with its own code and reason.
    for o in &mut outcomes {
        o.client.close(1000, "done").await;
        let seen = o.client.next(EVENT).await;
        assert_eq!(
            seen,
            Some(Seen::Close(Some((1000, "done".into())))),
            "{}",
            o.path
        );
    }
    // Last, the runner dies under an awake actor; a new one opens the same store.
    hws::killed(&engine, &a_killed, &mut runner, &data).await;
    runner.kill();
    eprintln!(
        "hws runner ({protocol}) behind the official engine: {} messages, {:?}",
        outcomes.iter().map(|o| o.sent.len()).sum::<usize>(),
        started.elapsed()
    );
}

/// A measurement, not a test: see `BENCHMARKS.md` ("Behind the official Rivet engine").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: cargo test --release --all-features --test rivet_engine bench -- --ignored --nocapture"]
async fn bench_behind_official_engine() {
    assert!(
        engine::ready() && node::ready("the TypeScript runner behind the Rivet engine"),
        "needs npm ci in tests/rivet_engine and tests/interop"
    );
    let engine = RivetEngine::start().await;
    let data = hws::data_dir(&engine);
    let runner = hws::RunnerProcess::spawn(&engine.endpoint(), &data, "runner");
    let node = NodeRunner::spawn(&engine.endpoint());
    until("the TypeScript runner to connect", || async {
        node.count("app", "connected") > 0
    })
    .await;
    let hws_actor = engine
        .create_actor("bench-hws", "bench-hws", hws::RUNNER_NAME)
        .await;
    let ts_actor = engine
        .create_actor("bench-ts", "bench-ts", node::RUNNER_NAME)
        .await;
    let pid = engine.pid();
    println!("| runner | payload | messages | throughput | runner CPU / msg | engine CPU / msg |");
    println!("|---|---|---|---|---|---|");
    for (payload, messages, window) in [(64, 20_000, 500), (16_384, 2_000, 32)] {
        for round in 0..2 {
            let h = bench::stream(
                &engine,
                pid,
                runner.pid(),
                &hws_actor,
                payload,
                messages,
                window,
            )
            .await;
            let t = bench::stream(
                &engine,
                pid,
                node.pid(),
                &ts_actor,
                payload,
                messages,
                window,
            )
            .await;
            if round == 1 {
                println!("{}", h.line("hws (examples/runner.rs)"));
                println!(
                    "{}",
                    t.line("official TypeScript (tests/interop/runner.mjs)")
                );
            }
        }
    }
    drop(node);
}
