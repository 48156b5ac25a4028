//! The cluster end to end over a real `nats-server`: nodes, in-process runners connected to
//! them, clients spread over the nodes; every message the clients sent is in the actors'
//! committed logs exactly once, in order.

#![cfg(feature = "nats")]
#![allow(clippy::unwrap_used)]

mod cluster_support;

extern crate alloc;

use alloc::sync::Arc;
use core::time::Duration;
use std::sync::Mutex;

use cluster_support::{Storage, client, gw, node, runner, scratch, server};
use hibernating_ws::driver::tokio::TokioClock;
use hibernating_ws::runner::SocketId;
use hibernating_ws::wire::RequestId;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Waits until every socket's committed log holds what its client sent (or `limit` passes),
/// then checks it exactly.
async fn check_committed(
    storage: &Arc<Mutex<Storage>>,
    expected: &[(usize, RequestId, Vec<Vec<u8>>)],
    limit: Duration,
) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let done = {
            let st = storage.lock().unwrap();
            expected.iter().all(|(n, id, sent)| {
                st.committed
                    .get(&SocketId::new(gw(*n), *id))
                    .is_some_and(|c| c.len() >= sent.len())
            })
        };
        if done || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let st = storage.lock().unwrap();
    for (n, id, sent) in expected {
        let got = st
            .committed
            .get(&SocketId::new(gw(*n), *id))
            .cloned()
            .unwrap_or_default();
        let lost: Vec<_> = sent
            .iter()
            .enumerate()
            .filter(|(_, m)| !got.contains(m))
            .map(|(i, _)| i)
            .collect();
        if !lost.is_empty() {
            let commits: Vec<_> = st
                .log
                .iter()
                .filter(|(s, ..)| *s == SocketId::new(gw(*n), *id))
                .map(|(_, k, a, first, len)| format!("{k}/{a}@{first}+{len}"))
                .collect();
            eprintln!("request {id} on node {n}: lost messages {lost:?}; commits {commits:?}");
        }
        let lost = lost.len();
        assert_eq!(
            lost,
            0,
            "request {id} on node {n}: {lost} of {} lost",
            sent.len()
        );
        assert_eq!(
            &got, sent,
            "request {id} on node {n}: committed twice or out of order"
        );
    }
}

#[test]
fn a_client_on_one_node_reaches_a_runner_on_another_over_nats() {
    let dir = scratch("e2e-basic");
    let Some(server) = server(&dir) else {
        return;
    };
    runtime().block_on(async {
        let clock = TokioClock::new();
        let a = node(&server.url(), 0, clock).await;
        let b = node(&server.url(), 1, clock).await;
        let storage = Arc::new(Mutex::new(Storage::default()));
        let r = runner(
            "runner-0".into(),
            vec![b.handle().clone()],
            0,
            Arc::clone(&storage),
            clock,
        );
        let id = RequestId([0, 0, 0, 1]);
        let report = client(&a, id, "actor-1", 200, Duration::from_millis(1)).await;
        assert_eq!(report.closed, None);
        assert_eq!(report.sent.len(), 200);
        check_committed(&storage, &[(0, id, report.sent)], Duration::from_secs(20)).await;
        assert!(
            a.stats()
                .published
                .load(core::sync::atomic::Ordering::Relaxed)
                > 0
        );
        assert!(
            b.stats()
                .published
                .load(core::sync::atomic::Ordering::Relaxed)
                > 0
        );
        r.kill().await;
        drop((a, b));
    });
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Three nodes, three runners (each reconnects to another node when its node goes), eight
/// clients on six actors spread over the nodes. Meanwhile: every actor sleeps and wakes twice
/// (usually on another runner, often behind another node), one runner is killed, the
/// nats-server restarts, and one node is killed (its runner moves to another node; its own
/// clients' sockets end). Every message of every client whose node survived is committed
/// exactly once, in order.
/// Which faults a scenario injects.
#[derive(Clone, Copy)]
struct Faults {
    kill_runner: bool,
    restart_broker: bool,
    kill_node: bool,
}

#[test]
fn the_cluster_survives_sleeps_a_runner_kill_a_broker_restart_and_a_node_kill() {
    let all = Faults {
        kill_runner: true,
        restart_broker: true,
        kill_node: true,
    };
    let only = std::env::var("HWS_FAULTS").unwrap_or_default();
    let faults = if only.is_empty() {
        all
    } else {
        Faults {
            kill_runner: only.contains("runner"),
            restart_broker: only.contains("broker"),
            kill_node: only.contains("node"),
        }
    };
    scenario("e2e-faults", faults);
}

fn scenario(name: &str, faults: Faults) {
    let dir = scratch(name);
    let Some(mut server) = server(&dir) else {
        return;
    };
    let rt = runtime();
    rt.block_on(async {
        let clock = TokioClock::new();
        let url = server.url();
        let mut nodes = Vec::new();
        for i in 0..3 {
            nodes.push(Arc::new(node(&url, i, clock).await));
        }
        let handles: Vec<_> = nodes.iter().map(|n| n.handle().clone()).collect();
        let storage = Arc::new(Mutex::new(Storage::default()));
        // Runner i starts on node i and moves to node i+1, then i+2, when its node goes.
        let mut runners: Vec<_> = (0..3)
            .map(|i| {
                runner(
                    format!("runner-{i}"),
                    handles.clone(),
                    i,
                    Arc::clone(&storage),
                    clock,
                )
            })
            .map(Some)
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;

        let actors = ["a0", "a1", "a2", "a3", "a4", "a5"];
        let mut clients = Vec::new();
        for c in 0..8usize {
            let n = c % 3;
            let node = Arc::clone(&nodes[n]);
            let id = RequestId([0, 0, 1, u8::try_from(c).unwrap()]);
            let actor = actors[c % actors.len()];
            clients.push((
                n,
                id,
                tokio::spawn(async move {
                    client(&node, id, actor, 400, Duration::from_millis(12)).await
                }),
            ));
        }
        let sleep_all = |nodes: Vec<Arc<hibernating_ws::cluster::Node>>| async move {
            for actor in actors {
                for n in &nodes {
                    let _ = n.sleep_actor(actor);
                }
            }
        };
        tokio::time::sleep(Duration::from_millis(800)).await;
        sleep_all(nodes.clone()).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        // A runner is killed: its actors stop after the lost threshold and wake elsewhere.
        if faults.kill_runner {
            runners[1].take().unwrap().kill().await;
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        if faults.restart_broker {
            server.restart().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(1200)).await;
        // A node is killed: its runner moves to the next node, its clients' sockets end.
        if faults.kill_node {
            drop(nodes.remove(2));
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        sleep_all(nodes.clone()).await;

        let mut expected = Vec::new();
        let mut open = Vec::new();
        for (n, id, task) in clients {
            let report = task.await.unwrap();
            if n == 2 && faults.kill_node {
                continue;
            }
            assert_eq!(report.closed, None, "client {id} on node {n} was closed");
            assert_eq!(report.sent.len(), 400, "client {id} on node {n}");
            expected.push((n, id, report.sent));
            // The connection stays open until the end.
            open.push(report.keep);
        }
        check_committed(&storage, &expected, Duration::from_secs(30)).await;
        drop(open);
        for r in runners.into_iter().flatten() {
            r.kill().await;
        }
    });
    drop(rt);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
