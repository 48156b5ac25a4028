//! The cluster end to end over a real `nats-server`: nodes, in-process runners connected to
//! them, clients spread over the nodes; every message the clients sent is in the actors'
//! committed logs exactly once, in order.

#![cfg(feature = "nats")]
#![allow(clippy::unwrap_used)]

mod cluster_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster_support::{Storage, client, gw, node, runner, scratch, server};
use hibernating_ws::runner::SocketId;
use hibernating_ws::time::Clock;
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
        let lost = sent.iter().filter(|m| !got.contains(m)).count();
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
        let clock = Clock::start();
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
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
        );
        assert!(
            b.stats()
                .published
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
        );
        r.kill().await;
        drop((a, b));
    });
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
