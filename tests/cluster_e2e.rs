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

use cluster_support::{
    Storage, client, client_retrying, drive_client, gw, node, open_client, runner, scratch, server,
};
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

/// An actor placed on a runner of the clients' own node starts once: the state worker (right
/// after its claim) and the placement watch (seeing that claim) both start it, and the second
/// must find it started rather than give the claim back, which set the placement sleeping and
/// stopped the actor it had just started (the benchmark's direct path restarted actors in a loop).
#[test]
fn an_actor_claimed_for_a_local_runner_starts_once() {
    let dir = scratch("e2e-local-start");
    let Some(server) = server(&dir) else {
        return;
    };
    runtime().block_on(async {
        let clock = TokioClock::new();
        let a = node(&server.url(), 0, clock).await;
        let storage = Arc::new(Mutex::new(Storage::default()));
        let r = runner(
            "runner-0".into(),
            vec![a.handle().clone()],
            0,
            Arc::clone(&storage),
            clock,
        );
        // The runner registers in the shared state before the first placement.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (mut expected, mut open) = (Vec::new(), Vec::new());
        for k in 0..4u8 {
            let id = RequestId([0, 0, 1, k]);
            let report = client(&a, id, &format!("local-{k}"), 50, Duration::ZERO).await;
            assert_eq!(report.closed, None);
            expected.push((0, id, report.sent.clone()));
            open.push(report);
        }
        check_committed(&storage, &expected, Duration::from_secs(20)).await;
        let starts = storage.lock().unwrap().starts.clone();
        assert_eq!(starts.len(), 4, "one start per actor, no stop: {starts:?}");
        assert!(
            starts
                .iter()
                .all(|(_, _, generation, listed)| *generation == 0 && listed.is_empty())
        );
        drop(open);
        r.kill().await;
        drop(a);
    });
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Which faults a scenario injects.
#[derive(Clone, Copy)]
struct Faults {
    kill_runner: bool,
    restart_broker: bool,
    restart_node: bool,
}

impl Faults {
    /// Every fault, or those `HWS_FAULTS` names (`runner`, `broker`, `node`).
    fn from_env() -> Self {
        let only = std::env::var("HWS_FAULTS").unwrap_or_default();
        if only.is_empty() {
            return Self {
                kill_runner: true,
                restart_broker: true,
                restart_node: true,
            };
        }
        Self {
            kill_runner: only.contains("runner"),
            restart_broker: only.contains("broker"),
            restart_node: only.contains("node"),
        }
    }
}

/// A small deterministic generator (splitmix64): the seed picks the scenario's choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// `base` plus up to `jitter` milliseconds.
    fn millis(&mut self, base: u64, jitter: u64) -> Duration {
        Duration::from_millis(base + self.below(jitter + 1))
    }
}

/// What one seed does: which runner is killed, which node restarts, in which order the broker
/// and the node restart, which actor each client talks to, and the delays between steps.
struct Plan {
    killed_runner: usize,
    restarted_node: usize,
    broker_first: bool,
    client_actor: Vec<usize>,
    gap: Duration,
    delays: [Duration; 5],
}

impl Plan {
    fn new(seed: u64) -> Self {
        let mut rng = Rng(seed);
        let killed_runner = usize::try_from(rng.below(3)).unwrap();
        let restarted_node = usize::try_from(rng.below(3)).unwrap();
        let broker_first = rng.below(2) == 0;
        let client_actor = (0..CLIENTS)
            .map(|_| usize::try_from(rng.below(ACTORS.len() as u64)).unwrap())
            .collect();
        // 400 messages take longer than the steps before the node restart: its clients are cut.
        let gap = rng.millis(11, 4);
        let delays = [
            rng.millis(500, 400),
            rng.millis(500, 400),
            rng.millis(500, 400),
            rng.millis(900, 500),
            rng.millis(500, 400),
        ];
        Self {
            killed_runner,
            restarted_node,
            broker_first,
            client_actor,
            gap,
            delays,
        }
    }
}

const ACTORS: [&str; 6] = ["a0", "a1", "a2", "a3", "a4", "a5"];
const CLIENTS: usize = 8;
const MESSAGES: u32 = 400;
/// Clients opened on the restarted node once it is back.
const LATE_CLIENTS: usize = 2;

/// Three nodes, three runners (each reconnects to another node when its node goes), eight
/// clients on six actors spread over the nodes. Meanwhile, in an order and with delays the
/// seed picks: every actor sleeps and wakes twice (usually on another runner, often behind
/// another node), one runner is killed, the nats-server restarts, and one node is killed and
/// started again under its id (its runner moves to another node; its own clients' sockets
/// end; two new clients open on it). Every socket of every surviving node stays open and every
/// message of its client is committed exactly once, in order.
#[allow(clippy::too_many_lines)] // one timeline, read top to bottom
fn scenario(seed: u64, faults: Faults) {
    let plan = Plan::new(seed);
    eprintln!(
        "seed {seed}: runner {} killed, node {} restarted, broker first: {}, gap {:?}",
        plan.killed_runner, plan.restarted_node, plan.broker_first, plan.gap
    );
    let dir = scratch(&format!("e2e-seed-{seed}"));
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

        // (node, incarnation, request, task)
        let mut clients = Vec::new();
        for c in 0..CLIENTS {
            let n = c % 3;
            let id = RequestId([0, 0, 1, u8::try_from(c).unwrap()]);
            let (sender, events) = open_client(&nodes[n], id, ACTORS[plan.client_actor[c]]);
            let gap = plan.gap;
            clients.push((
                n,
                0,
                id,
                tokio::spawn(drive_client(sender, events, id, MESSAGES, gap)),
            ));
        }
        let sleep_all = |nodes: Vec<Arc<hibernating_ws::cluster::Node>>| async move {
            for actor in ACTORS {
                for n in &nodes {
                    let _ = n.sleep_actor(actor);
                }
            }
        };
        tokio::time::sleep(plan.delays[0]).await;
        sleep_all(nodes.clone()).await;
        tokio::time::sleep(plan.delays[1]).await;
        // A runner is killed: its actors stop after the lost threshold and wake elsewhere.
        if faults.kill_runner {
            runners[plan.killed_runner].take().unwrap().kill().await;
        }
        tokio::time::sleep(plan.delays[2]).await;
        for step in 0..2 {
            if (step == 0) == plan.broker_first {
                if faults.restart_broker {
                    server.restart().unwrap();
                }
            } else if faults.restart_node {
                // A node is killed and started again under its id with a fresh gateway id: its
                // runner moves to the next node, its clients' sockets end, new clients open.
                let k = plan.restarted_node;
                if let Ok(old) = Arc::try_unwrap(nodes.remove(k)) {
                    drop(old);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                nodes.insert(k, Arc::new(restarted(&url, k, clock).await));
                for c in 0..LATE_CLIENTS {
                    let node = Arc::clone(&nodes[k]);
                    let actor = ACTORS[(k + c) % ACTORS.len()];
                    let gap = plan.gap;
                    let c = u8::try_from(c).unwrap();
                    let retry = move |attempt| RequestId([0, attempt, 2, c]);
                    clients.push((
                        k,
                        1,
                        retry(0),
                        tokio::spawn(async move {
                            client_retrying(node, retry, actor, MESSAGES / 2, gap).await
                        }),
                    ));
                }
            }
            tokio::time::sleep(plan.delays[3 + step]).await;
        }
        sleep_all(nodes.clone()).await;

        let mut expected = Vec::new();
        let mut open = Vec::new();
        for (n, incarnation, _, task) in clients {
            let report = task.await.unwrap();
            let id = report.request;
            if faults.restart_node && n == plan.restarted_node && incarnation == 0 {
                // Its node was killed while it sent: its socket ended.
                assert!(
                    report.closed.is_some(),
                    "seed {seed}: client {id} of the killed node was not closed"
                );
                continue;
            }
            let gateway = if incarnation == 0 { n } else { n + 3 };
            if report.closed.is_some() {
                let st = storage.lock().unwrap();
                let socket = SocketId::new(gw(gateway), id);
                let _ = socket;
                let actor = Some(if incarnation == 0 {
                    ACTORS[plan.client_actor[usize::from(id.0[3])]].to_string()
                } else {
                    ACTORS[(n + usize::from(id.0[3])) % ACTORS.len()].to_string()
                });
                for s in st.starts.iter().filter(|s| Some(&s.1) == actor.as_ref()) {
                    eprintln!("seed {seed}: {actor:?} {s:?}");
                }
            }
            assert_eq!(
                report.closed, None,
                "seed {seed}: client {id} on node {n} was closed"
            );
            expected.push((gateway, id, report.sent));
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

/// Node `k` started again: the same node id, a fresh gateway id (`gw(k + 3)`).
async fn restarted(url: &str, k: usize, clock: TokioClock) -> hibernating_ws::cluster::Node {
    cluster_support::node_as(url, k, k + 3, clock).await
}

/// One test per seed, so that the harness runs two at a time and names the seed that fails.
macro_rules! seeds {
    ($($name:ident = $seed:expr),* $(,)?) => {$(
        #[test]
        fn $name() {
            scenario($seed, Faults::from_env());
        }
    )*};
}

seeds! {
    faults_seed_0 = 0,
    faults_seed_1 = 1,
    faults_seed_2 = 2,
    faults_seed_3 = 3,
    faults_seed_4 = 4,
    faults_seed_5 = 5,
    faults_seed_6 = 6,
    faults_seed_7 = 7,
    faults_seed_8 = 8,
    faults_seed_9 = 9,
}

/// More seeds: `HWS_SEEDS=100 cargo test --release --all-features --test cluster_e2e --
/// --ignored many_seeds` (`HWS_SEED_FROM` moves the first one).
#[test]
#[ignore = "long: about 7 s per seed"]
fn many_seeds() {
    let count: u64 = std::env::var("HWS_SEEDS").map_or(50, |s| s.parse().unwrap());
    let from: u64 = std::env::var("HWS_SEED_FROM").map_or(10, |s| s.parse().unwrap());
    for seed in from..from + count {
        eprintln!("seed {seed}");
        scenario(seed, Faults::from_env());
    }
}
