//! Short versions of the scale runs of `examples/reliability.rs` (BENCHMARKS.md, RELIABILITY),
//! over real WebSockets on 127.0.0.1 with the demo's gateway and runner: many concurrent
//! client sockets held through sleep/wake cycles, and open/close churn. They assert counts and
//! leaks (every echo, every request closed, no pending message, record, queued output or runner
//! socket left, timer entries within the queue's bound), never time.

#![allow(
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc,
    clippy::similar_names
)] // application code on std

#[path = "../examples/demo/lib.rs"]
mod demo;
mod hostile_support;

use demo::client::Client;
use demo::gateway::{GatewayOptions, GatewayServer, Schedule};
use demo::runner::RunnerInstance;
use demo::scenario::DataDir;
use hibernating_ws::gateway::GatewayConfig;
use hostile_support::{WAIT, runner, settled};
use tokio::task::JoinSet;

/// Concurrent client sockets (two descriptors each in this process: keep under `ulimit -n`).
const CONNS: u64 = 300;
/// Actors they spread over.
const ACTORS: u64 = 10;

async fn gateway() -> GatewayServer {
    GatewayServer::start(GatewayOptions::new(
        "127.0.0.1:0".into(),
        GatewayConfig::default(),
        Schedule::default(),
    ))
    .await
    .expect("gateway starts")
}

/// A gateway and the honest runner on a fresh data directory.
async fn deployment() -> (DataDir, GatewayServer, RunnerInstance) {
    let dir = DataDir::new(None).expect("temp dir");
    let server = gateway().await;
    let runner = runner(server.url(), server.runner_token(), &dir).await;
    (dir, server, runner)
}

/// Client `i` sends message `seq` and waits for its echo.
async fn round_trip(mut c: Client, i: u64, seq: u64) -> Client {
    let (data, binary) = demo::payload::message(i, seq, 16, 64);
    c.send(data, binary).await.expect("send");
    assert_eq!(
        c.wait_echo(seq + 1, WAIT).await.map(|e| e.0),
        Some(seq + 1),
        "client {i}, message {seq}"
    );
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sockets_survive_sleep_wake_cycles_and_leave_nothing_behind() {
    let (_dir, server, runner) = deployment().await;
    let url = server.url();
    let mut set = JoinSet::new();
    for i in 0..CONNS {
        let url = url.clone();
        set.spawn(async move {
            let c = Client::connect(&url, &format!("a{}", i % ACTORS))
                .await
                .expect("connect");
            (i, round_trip(c, i, 0).await)
        });
    }
    let mut clients = Vec::new();
    while let Some(r) = set.join_next().await {
        clients.push(r.expect("a client"));
    }
    assert_eq!(server.stats().requests, CONNS);
    for cycle in 1..=2u64 {
        for a in 0..ACTORS {
            server.sleep_actor(&format!("a{a}")).await;
        }
        let g = server.stats();
        assert_eq!((g.requests, g.hibernating), (CONNS, CONNS), "cycle {cycle}");
        // Every client sends one message: the gateway wakes the actors; every echo comes.
        let mut set = JoinSet::new();
        for (i, c) in clients.drain(..) {
            set.spawn(async move { (i, round_trip(c, i, cycle).await) });
        }
        while let Some(r) = set.join_next().await {
            clients.push(r.expect("a client"));
        }
        let g = server.stats();
        assert_eq!((g.requests, g.closed), (CONNS, 0), "cycle {cycle}");
    }
    settled(&server, &runner, CONNS).await;
    for (_, c) in clients {
        let _ = c.close(1000, "done").await;
    }
    settled(&server, &runner, 0).await;
    let s = server.snapshot().await;
    assert_eq!(s.records, 0);
    let g = server.stats();
    assert_eq!((g.opened, g.closed, g.wakes), (CONNS, CONNS, 2 * CONNS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_close_churn_leaves_nothing_behind() {
    const CYCLES: u64 = 3_000;
    let (_dir, server, runner) = deployment().await;
    let url = server.url();
    let mut set = JoinSet::new();
    for i in 0..CYCLES {
        if set.len() >= 64 {
            set.join_next().await.expect("a task").expect("a cycle");
        }
        let url = url.clone();
        set.spawn(async move {
            let c = Client::connect(&url, &format!("c{}", i % 16))
                .await
                .expect("connect");
            let c = round_trip(c, i, 0).await;
            let _ = c.close(1000, "bye").await;
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("a cycle");
    }
    settled(&server, &runner, 0).await;
    let g = server.stats();
    assert_eq!(
        (g.opened, g.closed, g.closed_by_client),
        (CYCLES, CYCLES, CYCLES)
    );
    let s = server.snapshot().await;
    assert_eq!((s.requests, s.records), (0, 0));
    let r = runner.handle().call(|r, _| r.stats()).expect("runner");
    assert_eq!((r.opens, r.closed_gateway, r.sockets), (CYCLES, CYCLES, 0));
}
