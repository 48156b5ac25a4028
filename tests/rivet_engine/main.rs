//! The official Rivet engine (`rivet-engine` 2.3.19, pinned in `tests/rivet_engine/`) with runners
//! behind it: the engine runs on free loopback ports with its storage in a temporary directory,
//! actors are created through its HTTP API and clients talk to them through its gateway.
//!
//! One engine serves every scenario at once (`runners_behind_official_engine`), each runner under
//! its own runner name:
//!
//! * the official TypeScript runner of `tests/interop` (`runner.mjs`) proves the harness:
//!   sleep/wake cycles with traffic while asleep, a client close while asleep (the engine
//!   answers with the client's own code), and a SIGKILL of the runner under an awake actor with
//!   the client sending during the outage; what the actor committed (read from the engine's
//!   actor KV) is exactly what the client sent;
//! * the runner of `examples/runner.rs` (hws's session, runner and tokio adapter, with the file
//!   store) as a child process, over runner protocol v7 and over envoy protocol v8: 10
//!   sleep/wake cycles with traffic while asleep, a client close while asleep, 66 010 messages
//!   across the index wrap (v7 only), and a SIGKILL of the runner under an awake actor with the
//!   client sending during the outage, served by a new runner on the same store. The store's
//!   message count and digest of every socket equal what its client sent: each message once, in
//!   order. What the engine does that shapes these scenarios (and what is not checked because
//!   of it) is in `docs/rivet-engine.md`.
//!
//! Each scenario group prints its wall time, and the test its total.
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

use std::time::{Duration, Instant};

use client::{EVENT, Seen, batch};
use engine::RivetEngine;
use node::NodeRunner;

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

/// Every scenario on one engine, each runner under its own runner name: the TypeScript runner,
/// the hws runner over v7 and over envoy v8 at once; then, alone, the index wrap on a v7 runner
/// of its own (tens of thousands of messages keep the engine's CPU busy, and a busy engine left
/// other actors' sleep requests unanswered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runners_behind_official_engine() {
    if !engine::ready() {
        return;
    }
    let node = node::ready("the TypeScript runner behind the Rivet engine");
    let started = Instant::now();
    let engine = RivetEngine::start().await;
    eprintln!("rivet engine: healthy after {:?}", started.elapsed());
    let typescript = async {
        if node {
            timed("typescript runner", typescript_scenarios(&engine)).await;
        }
    };
    tokio::join!(
        typescript,
        timed("hws runner (v7)", hws_scenarios(&engine, "runner")),
        timed("hws runner (envoy v8)", hws_scenarios(&engine, "envoy")),
    );
    timed(
        "hws runner (v7): index wrap",
        hws_wrap(&engine, "runner", hws::WRAP_RUNNER_NAME),
    )
    .await;
    eprintln!(
        "runners behind the official engine: {:?} in all",
        started.elapsed()
    );
}

/// Runs `f`, then prints its wall time (a report, never an assertion).
async fn timed<T>(what: &str, f: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let out = f.await;
    eprintln!("{what}: {:?}", started.elapsed());
    out
}

/// Starts the official TypeScript runner on its pool and creates the actor `name`/`key` on it.
async fn typescript_runner(engine: &RivetEngine, name: &str, key: &str) -> (NodeRunner, String) {
    // A v7 runner creates its pool's config when it connects, but the engine sometimes took
    // more than a minute to accept actors for it: configure the pool first.
    engine.configure_pool(node::RUNNER_NAME).await;
    let node = NodeRunner::spawn(&engine.endpoint());
    until("the runner to connect", || async {
        node.count("app", "connected") > 0
    })
    .await;
    let actor = engine.create_actor(name, key, node::RUNNER_NAME).await;
    (node, actor)
}

/// The official TypeScript runner: sleep/wake cycles with traffic while asleep, a client close
/// while asleep, and a SIGKILL under an awake actor with the client sending during the outage.
async fn typescript_scenarios(engine: &RivetEngine) {
    let (node, actor) = typescript_runner(engine, "proof", "proof-1").await;
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

    let log = ts_committed(engine, &actor, &req).await;
    assert_eq!(log.len(), sent.len(), "committed count");
    assert!(log == sent, "the committed log differs from what was sent");
    assert!(
        node.find("app", "restoring").len() >= 4,
        "every wake restored the socket"
    );

    waker.close(1000, "done").await;
    drop(node);
    typescript_killed(engine).await;
}

/// The official TypeScript runner dies (SIGKILL) under an awake actor once what its client sent
/// is committed; a new runner connects, the client sends during the outage, and the engine
/// moves the actor there once it has found the runner lost: the committed log is what the
/// client sent, each message once.
async fn typescript_killed(engine: &RivetEngine) {
    let (node, actor) = typescript_runner(engine, "proof-killed", "proof-killed").await;
    let mut c = engine.connect(&actor, "/killed").await;
    let mut sent = batch("before", 20);
    c.send_all(&sent, "typescript killed").await;
    let opened = node.find("app", "opened");
    let req = opened
        .iter()
        .find(|l| l["actor"] == actor.as_str())
        .and_then(|l| l["req"].as_str())
        .expect("the socket opened")
        .to_string();
    until("the messages to be committed", || async {
        ts_committed(engine, &actor, &req).await.len() == sent.len()
    })
    .await;
    drop(node);
    let killed_at = Instant::now();
    let node = NodeRunner::spawn(&engine.endpoint());
    until("the new runner to connect", || async {
        node.count("app", "connected") > 0
    })
    .await;
    let outage = batch("outage", 20);
    for m in &outage {
        c.send(m).await;
    }
    for (i, m) in outage.iter().enumerate() {
        let e = c.next_echo("typescript killed: the outage's echoes").await;
        if i == 0 {
            eprintln!(
                "typescript runner: the outage's first echo {:?} after the kill",
                killed_at.elapsed()
            );
        }
        assert_eq!(&e, m, "typescript killed: outage echo {i}");
    }
    sent.extend(outage);
    until("the outage's messages to be committed", || async {
        ts_committed(engine, &actor, &req).await.len() >= sent.len()
    })
    .await;
    let log = ts_committed(engine, &actor, &req).await;
    assert!(
        log == sent,
        "the committed log differs from what was sent: {log:?}"
    );
    c.close(1000, "done").await;
    drop(node);
}

/// The SIGKILL scenario alone, for every runner at once (a comparison on one engine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "part of runners_behind_official_engine; alone: cargo test --all-features --test rivet_engine killed -- --ignored"]
async fn killed_runners_behind_official_engine() {
    if !engine::ready() || !node::ready("the TypeScript runner behind the Rivet engine") {
        return;
    }
    let engine = RivetEngine::start().await;
    let hws = |protocol: &'static str| {
        let engine = &engine;
        async move {
            let name = hws::runner_name(protocol);
            let (mut runner, data) = hws_runner(engine, protocol, name).await;
            let actor = format!("{name}-killed");
            let actor = engine.create_actor(&actor, &actor, name).await;
            let moved = hws::killed(engine, &actor, &mut runner, &data).await;
            eprintln!("hws runner ({protocol}): the outage's first echo {moved:?} after the kill");
        }
    };
    tokio::join!(typescript_killed(&engine), hws("runner"), hws("envoy"));
}

/// Not a test: the hws runner process that the tests of this binary start (this
/// binary re-executed with [`hws::RUNNER_ARGS`] set). Without that variable it does nothing.
#[test]
#[ignore = "the hws runner child process of this binary's tests"]
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

/// The index wrap over envoy v8: minutes, not run by default (the engine's envoy path slows
/// down on a socket with many messages, tens per second after a few thousand:
/// `docs/rivet-engine.md`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes: cargo test --all-features --test rivet_engine hws_envoy_wrap -- --ignored"]
async fn hws_envoy_wrap_behind_official_engine() {
    if !engine::ready() {
        return;
    }
    let engine = RivetEngine::start().await;
    hws_wrap(&engine, "envoy", "hws-envoy-wrap").await;
}

/// The hws runner speaking `protocol` behind the engine: 10 sleep/wake cycles, a client close
/// while asleep, and a SIGKILL with a new runner serving what the client sent during the outage.
async fn hws_scenarios(engine: &RivetEngine, protocol: &'static str) {
    let name = hws::runner_name(protocol);
    let (mut runner, data) = hws_runner(engine, protocol, name).await;
    // Actor keys are unique per name in the namespace: the name carries the runner's.
    let create = |actor: &'static str| async move {
        let actor = format!("{name}-{actor}");
        engine.create_actor(&actor, &actor, name).await
    };
    let (a_cycles, a_closing, a_killed) =
        tokio::join!(create("cycles"), create("closing"), create("killed"));

    let (mut cycles, ()) = tokio::join!(
        hws::cycles(engine, &a_cycles),
        hws::closing(engine, &a_closing, &data),
    );
    // The store holds exactly what the client sent (the runner persists within 5 s); the
    // client closes and the engine answers with its own code and reason.
    hws::committed(&data, &cycles).await;
    hws::close(&mut cycles).await;
    // Last, the runner dies under an awake actor; a new one opens the same store and serves
    // what the client sent during the outage.
    let moved = hws::killed(engine, &a_killed, &mut runner, &data).await;
    eprintln!("hws runner ({protocol}): the outage's first echo {moved:?} after the kill");
}

/// An hws runner speaking `protocol` under the runner name (or pool) `name`, connected, and its
/// data directory.
async fn hws_runner(
    engine: &RivetEngine,
    protocol: &'static str,
    name: &'static str,
) -> (hws::RunnerProcess, std::path::PathBuf) {
    // An envoy needs its pool before it connects; a v7 runner creates one when it connects, but
    // on a loaded machine the engine took more than a minute to accept actors for it.
    engine.configure_pool(name).await;
    let data = hws::data_dir(engine, name);
    // An envoy's pool exists before it connects, so actors could be created (and wait
    // unplaced) before it does: create them once it has.
    let runner = hws::RunnerProcess::start(&engine.endpoint(), &data, protocol, name).await;
    (runner, data)
}

/// More than 65 536 messages on one socket of an hws runner speaking `protocol` under the
/// runner name `name`, after a sleep and a wake: the store holds each once, in order.
async fn hws_wrap(engine: &RivetEngine, protocol: &'static str, name: &'static str) {
    let (runner, data) = hws_runner(engine, protocol, name).await;
    let actor = engine.create_actor(name, name, name).await;
    let mut wrap = hws::wrap(engine, &actor).await;
    hws::committed(&data, &wrap).await;
    hws::close(&mut wrap).await;
    drop(runner);
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
    let (runner, _data) = hws_runner(&engine, "runner", hws::runner_name("runner")).await;
    let node = NodeRunner::spawn(&engine.endpoint());
    until("the TypeScript runner to connect", || async {
        node.count("app", "connected") > 0
    })
    .await;
    let hws_actor = engine
        .create_actor("bench-hws", "bench-hws", hws::runner_name("runner"))
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
