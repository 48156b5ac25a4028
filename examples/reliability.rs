//! Reliability benchmarks of the demo gateway: memory per connection, churn and a soak with
//! faults. Not timed tests: numbers for BENCHMARKS.md (section RELIABILITY).
//!
//! ```sh
//! # N idle client WebSockets held through sleep/wake cycles: gateway RSS per connection
//! cargo run --release --example reliability -- idle --conns 10000 --actors 100 --cycles 3
//! # open/close cycles: gateway RSS, live requests and timers must stay flat
//! cargo run --release --example reliability -- churn --cycles 100000 --concurrency 64
//! # the demo scenario over and over for M minutes: sleeps and a fault each run (odd seeds kill
//! # the runner, even seeds drop its link), K churn clients alongside (fresh actor per stream)
//! cargo run --release --example reliability -- soak --minutes 30 --churn-clients 2
//! ```
//!
//! `idle` and `churn` run the gateway in this process and the runner and the clients in a child
//! process (this binary again, driven over its stdin/stdout), so the resident set measured
//! (`VmRSS` of `/proc/self/status`) is the gateway's alone, everything included: the engine, the
//! adapter's tasks and channels, the WebSocket buffers, the sockets' user-space state. Linux only.
//! Each connection costs two file descriptors (both ends are on this machine): raise `ulimit -n`
//! above `2 × conns + 100`.

#![allow(
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc,
    clippy::too_many_lines,
    clippy::cast_precision_loss,
    clippy::disallowed_methods // a benchmark measures its own wall-clock time
)] // application code on std

#[path = "demo/lib.rs"]
mod demo;

use std::io::Write;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use demo::args::Args;
use demo::client::Client;
use demo::gateway::{GatewayOptions, GatewayServer, Schedule};
use demo::payload;
use demo::runner::{RunnerInstance, RunnerOptions};
use demo::scenario::{self, DataDir};
use demo::storage::StorageKind;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const USAGE: &str = "\
usage: reliability idle  [--conns N] [--actors A] [--cycles C] [--tungstenite-defaults 1]
       reliability churn [--cycles N] [--concurrency K]
       reliability soak  [--minutes M] [--churn-clients K]
";

const WAIT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
struct Opts {
    mode: String,
    conns: usize,
    actors: usize,
    cycles: u64,
    concurrency: usize,
    minutes: u64,
    /// Churn clients alongside each soak run.
    churn: usize,
    /// Client hop with tungstenite's default buffers (the baseline).
    defaults: bool,
}

fn parse() -> Result<Opts, String> {
    let mut it = std::env::args().skip(1);
    let mode = it.next().ok_or_else(|| USAGE.to_string())?;
    let mut o = Opts {
        mode,
        conns: 2_000,
        actors: 100,
        cycles: 0,
        concurrency: 64,
        minutes: 1,
        churn: 2,
        defaults: false,
    };
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let n: u64 = v.parse().map_err(|_| format!("not a number: {v}"))?;
        match flag.as_str() {
            "--conns" => o.conns = usize::try_from(n).map_err(|e| e.to_string())?,
            "--actors" => o.actors = usize::try_from(n.max(1)).map_err(|e| e.to_string())?,
            "--cycles" => o.cycles = n,
            "--concurrency" => {
                o.concurrency = usize::try_from(n.max(1)).map_err(|e| e.to_string())?;
            }
            "--minutes" => o.minutes = n,
            "--churn-clients" => o.churn = usize::try_from(n).map_err(|e| e.to_string())?,
            "--tungstenite-defaults" => o.defaults = n != 0,
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    // Child: the load (runner and clients), driven by the parent.
    if let (Ok(url), Ok(token)) = (std::env::var(CHILD_URL), std::env::var(CHILD_TOKEN)) {
        rt.block_on(child(url, token));
        rt.shutdown_timeout(Duration::from_secs(1));
        return ExitCode::SUCCESS;
    }
    let opts = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let ok = rt.block_on(async {
        match opts.mode.as_str() {
            "idle" => idle(&opts).await,
            "churn" => churn(&opts).await,
            "soak" => soak(&opts).await,
            other => Err(format!("unknown mode {other}\n{USAGE}")),
        }
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    match ok {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parent: the gateway
// ---------------------------------------------------------------------------------------------

const CHILD_URL: &str = "HWS_RELIABILITY_URL";
const CHILD_TOKEN: &str = "HWS_RELIABILITY_TOKEN";

/// This process's resident set in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

struct Load {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Load {
    fn spawn(server: &GatewayServer) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = tokio::process::Command::new(exe)
            .env(CHILD_URL, server.url())
            .env(CHILD_TOKEN, server.runner_token())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        Ok(Self {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        })
    }

    /// Sends a command line and returns the child's answer line.
    async fn ask(&mut self, cmd: &str) -> Result<String, String> {
        self.stdin
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        self.stdin.flush().await.map_err(|e| e.to_string())?;
        match tokio::time::timeout(WAIT * 10, self.lines.next_line()).await {
            Ok(Ok(Some(line))) if line.starts_with("ok") => Ok(line),
            Ok(Ok(Some(line))) => Err(format!("load: {line}")),
            other => Err(format!("load ended: {other:?}")),
        }
    }

    async fn quit(mut self) {
        let _ = self.ask("quit").await;
        let _ = self.child.wait().await;
    }
}

async fn start_gateway(o: &Opts) -> Result<GatewayServer, String> {
    let args = Args::default();
    GatewayServer::start(GatewayOptions {
        websocket: if o.defaults {
            WebSocketConfig::default()
        } else {
            demo::gateway::websocket_config(
                demo::gateway::WS_READ_BUFFER,
                demo::gateway::WS_WRITE_BUFFER,
            )
        },
        ..GatewayOptions::new(
            "127.0.0.1:0".into(),
            scenario::gateway_config(&args),
            Schedule::default(),
        )
    })
    .await
    .map_err(|e| e.to_string())
}

/// Lets freed memory settle before a reading.
async fn settle() -> u64 {
    tokio::time::sleep(Duration::from_millis(500)).await;
    rss_kib()
}

async fn idle(o: &Opts) -> Result<(), String> {
    let server = start_gateway(o).await?;
    let mut load = Load::spawn(&server)?;
    load.ask("runner").await?;
    let base = settle().await;
    let t = Instant::now();
    load.ask(&format!("open {} {}", o.conns, o.actors)).await?;
    let opened = t.elapsed();
    let open_rss = settle().await;
    let stats = server.stats();
    let per = |rss: u64| (rss.saturating_sub(base) as f64) * 1024.0 / o.conns.max(1) as f64;
    println!(
        "idle ({} buffers): {} connections on {} actors opened in {:.1}s; gateway RSS {} KiB before, {} KiB with them: {:.0} B per connection ({} live requests)",
        if o.defaults {
            "tungstenite default"
        } else {
            "demo"
        },
        o.conns,
        o.actors,
        opened.as_secs_f64(),
        base,
        open_rss,
        per(open_rss),
        stats.requests
    );
    for c in 1..=o.cycles {
        for a in 0..o.actors {
            server.sleep_actor(&format!("a{a}")).await;
        }
        let stats = server.stats();
        let slept = settle().await;
        let t = Instant::now();
        if let Err(e) = load.ask("send").await {
            let s = server.snapshot().await;
            return Err(format!(
                "{e}\ngateway closes: {:?}\nrunner frames dropped: {:?}\n{:?}",
                s.closes,
                s.receive_errors,
                server.stats()
            ));
        }
        let woke = t.elapsed();
        let awake = settle().await;
        let after = server.stats();
        println!(
            "cycle {c}: {} hibernating after the sleep ({} KiB, {:.0} B/conn); every client sent one message and got its echo in {:.1}s ({} KiB, {:.0} B/conn); {} live, {} closed, {} timer entries",
            stats.hibernating,
            slept,
            per(slept),
            woke.as_secs_f64(),
            awake,
            per(awake),
            after.requests,
            after.closed,
            after.timer_entries
        );
    }
    load.quit().await;
    let _ = server.shutdown().await;
    Ok(())
}

async fn churn(o: &Opts) -> Result<(), String> {
    let server = start_gateway(o).await?;
    let mut load = Load::spawn(&server)?;
    load.ask("runner").await?;
    let cycles = if o.cycles == 0 { 10_000 } else { o.cycles };
    let step = (cycles / 10).max(1);
    let mut done = 0;
    let t = Instant::now();
    println!(
        "churn: {cycles} open/message/close cycles, {} at a time",
        o.concurrency
    );
    while done < cycles {
        let n = step.min(cycles - done);
        load.ask(&format!("churn {n} {}", o.concurrency)).await?;
        done += n;
        let rss = settle().await;
        let s = server.stats();
        let snap = server.snapshot().await;
        println!(
            "{done:>8} cycles ({:.0}/s): gateway RSS {rss} KiB, {} live requests, {} pending, {} timer entries, {} queued to clients, {} opened, {} closed, {} records",
            done as f64 / t.elapsed().as_secs_f64(),
            s.requests,
            s.pending_messages,
            s.timer_entries,
            server.queue_stats().messages,
            s.opened,
            s.closed,
            snap.records
        );
    }
    load.quit().await;
    let _ = server.shutdown().await;
    Ok(())
}

async fn soak(o: &Opts) -> Result<(), String> {
    let until = Instant::now() + Duration::from_secs(o.minutes.max(1) * 60);
    let t = Instant::now();
    let (mut runs, mut lost, mut twice, mut kills, mut drops, mut sleeps, mut sent) =
        (0u64, 0, 0, 0u64, 0u64, 0, 0);
    let mut churn = demo::scenario::ChurnTally::default();
    let mut failed = 0u64;
    let mut seed = 1;
    while Instant::now() < until {
        // Odd seeds kill the runner, even seeds drop its link.
        let drop_link = seed % 2 == 0;
        let args = Args {
            messages: 2_000,
            max_size: 16 * 1024,
            sleeps: 4,
            seed,
            kill_runner: true,
            drop_link,
            churn_clients: o.churn,
            cold_start: Duration::from_millis(5),
            persist_interval: Duration::from_millis(20),
            ..Args::default()
        };
        let report = scenario::run_all(&args).await.map_err(|e| e.to_string())?;
        runs += 1;
        lost += report.lost();
        twice += report.twice();
        if drop_link {
            drops += u64::from(report.kills);
        } else {
            kills += u64::from(report.kills);
        }
        sleeps += u64::from(report.snapshot.sleeps);
        sent += report.client.sent;
        churn.cycles += report.churn.cycles;
        churn.sent += report.churn.sent;
        churn.exact += report.churn.exact;
        churn.aborted += report.churn.aborted;
        churn.lost += report.churn.lost;
        churn.twice += report.churn.twice;
        churn.failed += report.churn.failed;
        churn.close_unseen += report.churn.close_unseen;
        churn.never_persisted += report.churn.never_persisted;
        churn.never_persisted_messages += report.churn.never_persisted_messages;
        churn.unfinished += report.churn.unfinished;
        churn.unfinished_messages += report.churn.unfinished_messages;
        if !report.pass() {
            failed += 1;
            println!("seed {seed} FAILED:\n{}", report.render());
        }
        if runs % 20 == 0 {
            println!(
                "{:>5.1} min: {runs} runs, {sent} messages, {kills} kills, {drops} link drops, {} churn streams; {lost} lost, {twice} twice, RSS {} KiB",
                t.elapsed().as_secs_f64() / 60.0,
                churn.cycles,
                rss_kib()
            );
        }
        seed += 1;
    }
    println!(
        "soak: {runs} demo runs in {:.1} min: {sent} messages, {sleeps} sleeps, {kills} runner kills, {drops} dropped runner links: {lost} lost, {twice} delivered twice; {failed} runs failed",
        t.elapsed().as_secs_f64() / 60.0
    );
    println!(
        "churn clients ({} alongside): {} streams, {} messages: {} exact ({} of them finished only once the soak started the actor again: the client close was lost with the runner), {} closed by the gateway (typed), {} never persisted ({} messages accepted and never committed: the runner died before the socket's first persist, the restore closed it ws.meta_not_found_during_restore after the client had closed), {} failed, {} never ended in the committed log even after a start ({} messages); {} lost, {} twice",
        o.churn,
        churn.cycles,
        churn.sent,
        churn.exact,
        churn.close_unseen,
        churn.aborted,
        churn.never_persisted,
        churn.never_persisted_messages,
        churn.failed,
        churn.unfinished,
        churn.unfinished_messages,
        churn.lost,
        churn.twice
    );
    if lost + twice + failed > 0 || !churn.pass() {
        return Err("messages lost or delivered twice".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Child: the runner and the clients
// ---------------------------------------------------------------------------------------------

struct Held {
    client: Client,
    sent: u64,
}

async fn child(url: String, token: String) {
    // Commands come line by line on stdin (read on a thread: the runtime has no stdin support).
    let (tx, mut stdin) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut out = std::io::stdout();
    let dir = DataDir::new(None).expect("temp dir");
    let mut runner = None;
    let mut held: Vec<Held> = Vec::new();
    while let Some(line) = stdin.recv().await {
        let parts: Vec<&str> = line.split(' ').collect();
        let answer = match parts.as_slice() {
            ["runner"] => {
                let args = Args::default();
                match RunnerInstance::start(RunnerOptions {
                    gateway: url.clone(),
                    name: "load".into(),
                    data_dir: dir.path.clone(),
                    config: scenario::runner_config(&args),
                    report_interval: Duration::from_millis(500),
                    delivered: Arc::default(),
                    load_delay: Duration::ZERO,
                    storage: StorageKind::File,
                    token: token.clone(),
                    websocket: demo::gateway::websocket_config(
                        demo::gateway::WS_READ_BUFFER,
                        demo::gateway::WS_WRITE_BUFFER,
                    ),
                })
                .await
                {
                    Ok(r) => {
                        runner = Some(r);
                        "ok".to_string()
                    }
                    Err(e) => format!("error {e}"),
                }
            }
            ["open", n, actors] => {
                let (n, actors): (usize, usize) =
                    (n.parse().unwrap_or(0), actors.parse().unwrap_or(1));
                match open_all(&url, n, actors).await {
                    Ok(h) => {
                        held = h;
                        "ok".into()
                    }
                    Err(e) => format!("error {e}"),
                }
            }
            ["send"] => match send_all(&mut held).await {
                Ok(()) => "ok".into(),
                Err(e) => format!("error {e}"),
            },
            ["churn", n, k] => {
                match churn_some(&url, n.parse().unwrap_or(0), k.parse().unwrap_or(1)).await {
                    Ok(()) => "ok".into(),
                    Err(e) => format!("error {e}"),
                }
            }
            ["quit"] => {
                let _ = writeln!(out, "ok");
                let _ = out.flush();
                break;
            }
            _ => format!("error unknown command {line}"),
        };
        let _ = writeln!(out, "{answer}");
        let _ = out.flush();
    }
    drop(held);
    if let Some(r) = runner {
        let _ = r.shutdown().await;
    }
}

/// One message of client `i`'s stream (sequence `seq`).
fn message(i: usize, seq: u64) -> (Vec<u8>, bool) {
    payload::message(i as u64, seq, 16, 64)
}

async fn open_all(url: &str, n: usize, actors: usize) -> Result<Vec<Held>, String> {
    let mut set = JoinSet::new();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        if set.len() >= 256
            && let Some(r) = set.join_next().await
        {
            out.push(r.map_err(|e| e.to_string())??);
        }
        let url = url.to_string();
        set.spawn(async move {
            let mut client = Client::connect(&url, &format!("a{}", i % actors))
                .await
                .map_err(|e| format!("connect {i}: {e}"))?;
            let (data, binary) = message(i, 0);
            client.send(data, binary).await.map_err(|e| e.to_string())?;
            match client.wait_echo(1, WAIT).await {
                Some((1, _)) => Ok::<_, String>(Held { client, sent: 1 }),
                other => Err(format!("client {i}: echo {other:?}")),
            }
        });
    }
    while let Some(r) = set.join_next().await {
        out.push(r.map_err(|e| e.to_string())??);
    }
    Ok(out)
}

async fn send_all(held: &mut [Held]) -> Result<(), String> {
    for (i, h) in held.iter_mut().enumerate() {
        let (data, binary) = message(i, h.sent);
        if let Err(e) = h.client.send(data, binary).await {
            let closed = h.client.wait_closed(Duration::ZERO).await;
            return Err(format!("client {i}: {e} (closed with {closed:?})"));
        }
        h.sent += 1;
    }
    for (i, h) in held.iter_mut().enumerate() {
        match h.client.wait_echo(h.sent, WAIT).await {
            Some((c, _)) if c >= h.sent => {}
            other => return Err(format!("client {i}: echo {other:?} of {}", h.sent)),
        }
    }
    Ok(())
}

async fn churn_some(url: &str, n: u64, k: usize) -> Result<(), String> {
    let mut set = JoinSet::new();
    for i in 0..n {
        if set.len() >= k
            && let Some(r) = set.join_next().await
        {
            r.map_err(|e| e.to_string())??;
        }
        let url = url.to_string();
        set.spawn(async move {
            let actor = format!("c{}", i % 16);
            let mut client = Client::connect(&url, &actor)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let (data, binary) = payload::message(i, 0, 16, 64);
            client.send(data, binary).await.map_err(|e| e.to_string())?;
            if client.wait_echo(1, WAIT).await.map(|(c, _)| c) != Some(1) {
                return Err(format!("cycle {i}: no echo"));
            }
            let _ = client.close(1000, "bye").await;
            Ok::<_, String>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r.map_err(|e| e.to_string())??;
    }
    Ok(())
}
