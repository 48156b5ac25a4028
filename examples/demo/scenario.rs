//! The whole demo: a gateway, a runner (in process, or as a child OS process) and a client on
//! loopback; the actor sleeps and wakes on a schedule, the runner is killed once and restarted,
//! and the actor's committed log is checked at the end.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use hibernating_ws::gateway::{GatewayConfig, OverflowPolicy};
use hibernating_ws::runner::RunnerConfig;
use tokio::sync::Mutex;

use super::args::Args;
use super::client::{ClientOptions, run_client};
use super::gateway::{GatewayOptions, GatewayServer, Schedule};
use super::report::{Report, runner_total};
use super::runner::{RunnerInstance, RunnerOptions};
use super::storage::{StorageKind, StreamState, finished_stream};
use hibernating_ws::control::ActorPhase;
use hibernating_ws::driver::control::ControlHandle;

/// The gateway engine's configuration in the demo: Rivet's defaults, except the overflow policy
/// (backpressure instead of closing) and the per-request pending limit (a flag).
pub fn gateway_config(args: &Args) -> GatewayConfig {
    let mut c = GatewayConfig::default();
    c.overflow_policy = OverflowPolicy::Backpressure;
    c.max_pending_bytes = args.max_pending_bytes;
    c.max_gateway_pending_bytes = c.max_gateway_pending_bytes.max(args.max_pending_bytes);
    c
}

/// The runner engine's configuration in the demo: the defaults, except the persist debounce
/// interval (a flag; 5 s by default upstream) and the queue of a starting actor.
///
/// That queue holds the tunnel messages that arrive between `actor_starting` and `restore`,
/// which includes the gateway's whole replay on wake: up to `max_pending_messages` (32 767 by
/// default) per request. A replay that overflows it loses messages, which closes the socket on the
/// gap (1008 `ws.message_index_skip`). The runner's defaults hold two full windows of 1 MiB; the
/// demo's window is larger, so it sizes the byte limit to match.
pub fn runner_config(args: &Args) -> RunnerConfig {
    RunnerConfig::default()
        .with_persist_interval(args.persist_interval)
        .with_max_queued_per_actor(2 * usize::from(hibernating_ws::index::MAX_WINDOW) + 2)
        .with_max_queued_bytes_per_actor(2 * args.max_pending_bytes.max(1 << 20) + (1 << 20))
}

/// A runner in this process or in a child process.
pub enum RunnerProc {
    InProcess(RunnerInstance),
    Child(tokio::process::Child),
}

impl RunnerProc {
    /// Starts runner number `n`.
    pub async fn start(
        args: &Args,
        gateway: &str,
        dir: &Path,
        n: u32,
        delivered: &Arc<AtomicU64>,
    ) -> io::Result<Self> {
        if args.runner_process {
            let exe = std::env::current_exe()?;
            let mut cmd = tokio::process::Command::new(exe);
            cmd.args(["--role", "runner", "--gateway", gateway, "--data-dir"])
                .arg(dir)
                .args(["--storage", args.storage.name()])
                .args([
                    "--persist-interval-ms",
                    &args.persist_interval.as_millis().to_string(),
                ])
                .args(["--runner-name", &format!("runner-{n}")])
                .args(["--cold-start-ms", &args.cold_start.as_millis().to_string()])
                .env(super::args::TOKEN_ENV, &args.runner_token)
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true);
            if args.verbose {
                cmd.arg("--verbose");
            }
            Ok(Self::Child(cmd.spawn()?))
        } else {
            let opts = RunnerOptions {
                gateway: gateway.into(),
                name: format!("runner-{n}"),
                data_dir: dir.into(),
                storage: args.storage,
                config: runner_config(args),
                report_interval: Duration::from_millis(20),
                delivered: delivered.clone(),
                load_delay: args.cold_start,
                websocket: super::gateway::websocket_config(
                    args.ws_read_buffer,
                    args.ws_write_buffer,
                ),
                token: args.runner_token.clone(),
            };
            Ok(Self::InProcess(RunnerInstance::start(opts).await?))
        }
    }

    /// Kills it abruptly (SIGKILL for a child process).
    pub async fn kill(self) {
        match self {
            Self::InProcess(r) => r.kill(),
            Self::Child(mut c) => {
                let _ = c.start_kill();
                let _ = c.wait().await;
            }
        }
    }

    /// Drops its link to the gateway; it finishes the persists in flight, then stops (a child
    /// process is killed).
    pub async fn drop_link(self) {
        match self {
            Self::InProcess(r) => r.drop_link(DROP_LINK_GRACE).await,
            Self::Child(_) => self.kill().await,
        }
    }

    /// Stops it cleanly (a child process is killed: its counters were reported already).
    pub async fn stop(self) {
        match self {
            Self::InProcess(r) => {
                let _ = r.shutdown().await;
            }
            Self::Child(_) => self.kill().await,
        }
    }
}

/// How long a runner whose link dropped keeps running (its persists in flight land, their acks
/// are lost) before it stops.
const DROP_LINK_GRACE: Duration = Duration::from_millis(100);

/// A temporary directory removed on drop (unless it was given by the user).
pub struct DataDir {
    pub path: PathBuf,
    owned: bool,
}

impl DataDir {
    pub fn new(given: Option<&Path>) -> io::Result<Self> {
        let (path, owned) = if let Some(p) = given {
            (p.to_path_buf(), false)
        } else {
            #[allow(clippy::disallowed_methods)] // a unique name, not protocol time
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let name = format!("hws-demo-{}-{nanos}", std::process::id());
            (std::env::temp_dir().join(name), true)
        };
        std::fs::create_dir_all(&path)?;
        Ok(Self { path, owned })
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if self.owned {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Waits until the actor's record holds a finished stream (the client's close reached the actor
/// and its metadata was deleted), or the timeout.
pub async fn committed_result(
    dir: &Path,
    storage: StorageKind,
    actor: &str,
    timeout: Duration,
) -> Option<StreamState> {
    let store = storage.open(dir).ok()?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(state) = finished_stream(store.as_ref(), actor) {
            return Some(state);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits (at most 30 s) until the actor's record holds a finished stream, or the actor sleeps with
/// no request left (then nothing finishes it until it starts again: `None`).
async fn finished_or_asleep(
    dir: &Path,
    storage: StorageKind,
    actor: &str,
    gw: &ControlHandle,
) -> Option<StreamState> {
    let store = storage.open(dir).ok()?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut asleep_since = None;
    loop {
        if let Some(state) = finished_stream(store.as_ref(), actor) {
            return Some(state);
        }
        let now = tokio::time::Instant::now();
        let asleep = gw
            .call(|c, _| c.actor(actor))
            .ok()
            .flatten()
            .is_some_and(|a| a.phase == ActorPhase::Sleeping && a.requests == 0);
        asleep_since = if asleep {
            asleep_since.or(Some(now))
        } else {
            None
        };
        if now >= deadline || asleep_since.is_some_and(|t| now - t >= Duration::from_secs(1)) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits (bounded) until the gateway got a first ack: from then on the socket's metadata is
/// durable on the runner, so a kill tests recovery, not a socket that never existed there (whose
/// restore correctly ends in 1000 `ws.meta_not_found_during_restore`).
pub async fn wait_for_first_ack(gw: &hibernating_ws::driver::control::ControlHandle) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while gw
        .call(|c, _| c.gateway().stats())
        .is_ok_and(|s| s.messages_acked == 0)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The runner of a demo run and what its supervisor needs to replace it.
struct Runners {
    slot: Arc<Mutex<Option<RunnerProc>>>,
    kills: Arc<std::sync::atomic::AtomicU32>,
    delivered: Arc<AtomicU64>,
    url: String,
    path: PathBuf,
}

/// The supervisor: kills the runner each time `kill` fires (once the gateway saw a first ack),
/// then starts a new one.
async fn supervise(
    kill: Option<tokio::sync::mpsc::Receiver<()>>,
    gw: hibernating_ws::driver::control::ControlHandle,
    args: Args,
    runners: Runners,
) {
    let Some(mut rx) = kill else {
        return;
    };
    while rx.recv().await.is_some() {
        wait_for_first_ack(&gw).await;
        let mut slot = runners.slot.lock().await;
        if let Some(r) = slot.take() {
            if args.drop_link {
                r.drop_link().await;
            } else {
                r.kill().await;
            }
        }
        let n = runners
            .kills
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        if args.verbose {
            eprintln!("[demo] runner killed; starting runner-{}", n + 1);
        }
        *slot = RunnerProc::start(
            &args,
            &runners.url,
            &runners.path,
            n + 1,
            &runners.delivered,
        )
        .await
        .ok();
    }
}

/// Runs the demo (role `all`).
pub async fn run_all(args: &Args) -> io::Result<Report> {
    let dir = DataDir::new(args.data_dir.as_deref())?;
    let schedule = Schedule::spread(&args.actor, args.messages, args.sleeps, args.kill_runner);
    let mut server = GatewayServer::start(GatewayOptions {
        verbose: args.verbose,
        websocket: super::gateway::websocket_config(args.ws_read_buffer, args.ws_write_buffer),
        runner_token: args.runner_token.clone(),
        listen: args.listen.clone(),
        config: gateway_config(args),
        schedule,
        ..GatewayOptions::default()
    })
    .await?;
    let url = server.url();
    let delivered = Arc::new(AtomicU64::new(0));
    let runner = Arc::new(Mutex::new(Some(
        RunnerProc::start(args, &url, &dir.path, 1, &delivered).await?,
    )));

    let kills = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let supervisor = tokio::spawn(supervise(
        server.kill.take(),
        server.handle().clone(),
        args.clone(),
        Runners {
            slot: runner.clone(),
            kills: kills.clone(),
            delivered: delivered.clone(),
            url: url.clone(),
            path: dir.path.clone(),
        },
    ));

    let churn = Churn::start(args, &url, &dir.path, server.handle());
    #[allow(clippy::disallowed_methods)] // the demo measures wall-clock time
    let start = Instant::now();
    let (client, conn) = run_client(&args.client_options(url.clone(), false)).await?;
    let mut client = client;
    if let Some(mut conn) = conn {
        // The client streams on while the actor is away (the gateway buffers), so a short stream
        // can end before every scheduled sleep (or the kill) happened: keep the actor busy with
        // status probes until they did.
        let want_kills = u32::from(args.kill_runner && args.messages > 0);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let s = server.snapshot().await;
            let done = s.sleeps >= args.sleeps
                && kills.load(std::sync::atomic::Ordering::Relaxed) >= want_kills;
            if done || tokio::time::Instant::now() >= deadline || conn.ended() {
                break;
            }
            conn.send(b"?".to_vec(), false).await?;
            client.probes += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        client.echoes = conn.echoes();
        client.closed_by_gateway = conn.close(1000, "done").await;
    }
    let committed = committed_result(
        &dir.path,
        args.storage,
        &args.actor,
        Duration::from_secs(60),
    )
    .await;
    let elapsed = start.elapsed();
    let churn = churn.finish().await;

    supervisor.abort();
    // Let the runner report its final counters, then stop it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let snapshot = server.snapshot().await;
    if let Some(r) = runner.lock().await.take() {
        r.stop().await;
    }
    let gateway = server.shutdown().await;
    Ok(Report {
        args: args.clone(),
        client,
        gateway: gateway.map(|c| c.gateway().stats()).unwrap_or_default(),
        snapshot,
        runners: runner_total(&dir.path),
        committed,
        kills: kills.load(std::sync::atomic::Ordering::Relaxed),
        app_deliveries: (!args.runner_process)
            .then(|| delivered.load(std::sync::atomic::Ordering::Relaxed)),
        elapsed,
        churn,
    })
}

/// Clients that open, stream a few messages to a fresh actor and close, over and over, until
/// told to stop; each stream's committed log is checked like the main client's.
struct Churn {
    stop: Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<ChurnTally>>,
}

impl Churn {
    fn start(args: &Args, url: &str, dir: &Path, gw: &ControlHandle) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = (0..args.churn_clients)
            .map(|t| {
                let (stop, url, dir) = (stop.clone(), url.to_string(), dir.to_path_buf());
                let gw = gw.clone();
                let (storage, seed) = (args.storage, args.seed);
                tokio::spawn(async move {
                    let mut tally = ChurnTally::default();
                    let mut n = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let actor = format!("churn-{t}-{n}");
                        let opts = ClientOptions {
                            gateway: url.clone(),
                            actor: actor.clone(),
                            messages: 1 + (seed + n) % 8,
                            min_size: super::payload::MIN_SIZE,
                            max_size: 512,
                            seed: seed.wrapping_mul(1_000_003) + (t as u64) * 100_000 + n,
                            final_wait: Duration::from_secs(30),
                            close: true,
                        };
                        n += 1;
                        tally.record(&opts, &dir, storage, &gw).await;
                    }
                    tally
                })
            })
            .collect();
        Self { stop, tasks }
    }

    async fn finish(self) -> ChurnTally {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut total = ChurnTally::default();
        for t in self.tasks {
            if let Ok(t) = t.await {
                total.add(&t);
            } else {
                total.failed += 1;
            }
        }
        total
    }
}

/// The close reason a restore gives a socket the gateway lists and the actor has no metadata for.
pub const META_NOT_FOUND: &str = "ws.meta_not_found_during_restore";

/// What the churn clients saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChurnTally {
    /// Streams opened, sent and closed.
    pub cycles: u64,
    /// Messages they sent.
    pub sent: u64,
    /// Streams whose every message is in the committed log exactly once, in order.
    pub exact: u64,
    /// Streams the gateway closed before the last echo (a typed close: the client knows).
    pub aborted: u64,
    /// Messages lost from streams that were not aborted.
    pub lost: u64,
    /// Messages committed twice (any stream).
    pub twice: u64,
    /// Streams that could not connect or failed mid-way.
    pub failed: u64,
    /// Streams whose client close never reached the actor (the gateway published it after every
    /// ack, and it went down with a killed runner or a dropped link): every message was
    /// committed, and the actor finished the stream once the soak started it again (its restore
    /// finds the socket's metadata without a gateway request and closes it). Counted in
    /// `exact` too when the result is exact.
    pub close_unseen: u64,
    /// Streams whose socket never reached the actor's storage: no metadata and no finished
    /// stream, even after that start. The runner died before the socket's first persist, so
    /// nothing was acknowledged; the gateway held the client's close, replayed the messages on
    /// the wake, and the restored actor closed the socket 1000
    /// `ws.meta_not_found_during_restore` (a typed close the gateway reports, which the client,
    /// already gone, never sees). Their messages were accepted and never committed. Checked
    /// against the gateway's count of such closes ([`ChurnTally::pass_with`]).
    pub never_persisted: u64,
    /// Messages of those streams.
    pub never_persisted_messages: u64,
    /// Other streams whose end never reached the committed log even after that start: not
    /// verified (a failure).
    pub unfinished: u64,
    /// Messages of those streams.
    pub unfinished_messages: u64,
}

impl ChurnTally {
    async fn record(
        &mut self,
        opts: &ClientOptions,
        dir: &Path,
        storage: StorageKind,
        gw: &ControlHandle,
    ) {
        self.cycles += 1;
        let report = match run_client(opts).await {
            Ok((report, _)) => report,
            Err(e) => {
                eprintln!("[churn] {}: {e}", opts.actor);
                self.failed += 1;
                return;
            }
        };
        self.sent += report.sent;
        let aborted = report.last_echo.is_none_or(|(c, _)| c < report.sent);
        if aborted {
            // Whatever committed before the close; nothing to wait for.
            let committed =
                committed_result(dir, storage, &opts.actor, Duration::from_millis(500)).await;
            let c = committed.unwrap_or_default();
            self.twice += c.duplicates + c.count.saturating_sub(report.sent);
            self.aborted += 1;
            return;
        }
        let mut committed = finished_or_asleep(dir, storage, &opts.actor, gw).await;
        if committed.is_none() {
            // The actor has not seen the close. Start it: its restore closes a socket whose
            // request the gateway no longer has, and the stream ends in the committed log with
            // what was committed for it; a close still held by the gateway is released by the
            // wake's replay and acks.
            let open = storage
                .open(dir)
                .map(|store| super::storage::open_streams(store.as_ref(), &opts.actor))
                .unwrap_or_default();
            let actor = opts.actor.clone();
            let _ = gw.call(|c, now| c.start_actor(now, &actor));
            committed = committed_result(dir, storage, &opts.actor, Duration::from_secs(30)).await;
            let _ = gw.call(|c, now| c.stop_actor(now, &actor));
            let stored = storage
                .open(dir)
                .map(|store| super::storage::open_streams(store.as_ref(), &opts.actor))
                .unwrap_or_default();
            if committed.is_some() {
                self.close_unseen += 1;
            } else if open.is_empty() && stored.is_empty() {
                self.never_persisted += 1;
                self.never_persisted_messages += report.sent;
                return;
            } else {
                eprintln!(
                    "[churn] {}: the stream never ended in the committed log, even after a start: sent {}; open streams {open:?}; engine {:?}",
                    opts.actor,
                    report.sent,
                    gw.call(|c, _| c.actor(&actor))
                );
                self.unfinished += 1;
                self.unfinished_messages += report.sent;
                return;
            }
        }
        let c = committed.unwrap_or_default();
        let twice = c.duplicates + c.count.saturating_sub(report.sent);
        self.twice += twice;
        let lost = report.sent.saturating_sub(c.count.saturating_sub(c.gaps)) + c.gaps;
        self.lost += lost;
        if lost == 0 && twice == 0 && c.digest == report.expected_digest {
            self.exact += 1;
        } else if lost == 0 && twice == 0 {
            // Same count, other messages: a stream mixed up with another.
            self.lost += 1;
        }
    }

    fn add(&mut self, o: &Self) {
        self.cycles += o.cycles;
        self.sent += o.sent;
        self.exact += o.exact;
        self.aborted += o.aborted;
        self.lost += o.lost;
        self.twice += o.twice;
        self.failed += o.failed;
        self.close_unseen += o.close_unseen;
        self.never_persisted += o.never_persisted;
        self.never_persisted_messages += o.never_persisted_messages;
        self.unfinished += o.unfinished;
        self.unfinished_messages += o.unfinished_messages;
    }

    /// Nothing lost, nothing twice, nothing failed, and every stream that was not aborted ended
    /// in the committed log.
    pub fn pass(&self) -> bool {
        self.lost == 0 && self.twice == 0 && self.failed == 0 && self.unfinished == 0
    }

    /// [`pass`](Self::pass), and every never-persisted stream matched by a gateway close
    /// `ws.meta_not_found_during_restore` among `closes` (the gateway's closes by reason).
    pub fn pass_with(&self, closes: &std::collections::BTreeMap<String, u64>) -> bool {
        let typed: u64 = closes
            .iter()
            .filter(|(k, _)| k.contains("runner closed") && k.contains(META_NOT_FOUND))
            .map(|(_, n)| n)
            .sum();
        self.pass() && self.never_persisted <= typed
    }
}
