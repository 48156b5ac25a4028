//! The runner process: a [`SessionDriver`] connected to the gateway's runner endpoint exactly as
//! the official runner connects to Rivet's (`/runners/connect`, runner protocol v7, the token in
//! the subprotocol list), and the actor app ([`app`](super::app)) with its storage.
//!
//! It is `examples/runner.rs` grown into the demo's actor: the same session events, the same
//! atomic commit of a socket's state with its indices before the ack. Killing an instance aborts
//! its tasks at once and fences its storage off: a crash without a final persist.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hibernating_ws::Timestamp;
use hibernating_ws::driver::session::{
    Backoff, ConnectOptions, SessionDriver, SessionEvent, SessionEvents, SessionHandle,
    SessionOptions,
};
use hibernating_ws::driver::tokio::{Stopped, TokioClock};
use hibernating_ws::runner::{Runner, RunnerConfig};
use hibernating_ws::session::{Session, SessionConfig};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::app::{self, App};
use super::gateway::RUNNER_POOL;
use super::report::RunnerReport;
use super::storage::{Fence, Fenced, StorageKind};

/// How to start a runner.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// `ws://host:port` of the gateway.
    pub gateway: String,
    /// The runner's name (for logs and its report file).
    pub name: String,
    /// Where the actor storage lives.
    pub data_dir: PathBuf,
    /// Which store keeps it.
    pub storage: StorageKind,
    /// The runner engine's configuration.
    pub config: RunnerConfig,
    /// How often the counters are written to the runner's report file.
    pub report_interval: Duration,
    /// Counts every message handed to the app, across runner incarnations of one process (a
    /// killed runner cannot report its last deliveries).
    pub delivered: Arc<AtomicU64>,
    /// Extra time the actor takes to start (a cold start, or slow storage in tests).
    pub load_delay: Duration,
    /// Buffer sizes of the WebSocket to the gateway.
    pub websocket: WebSocketConfig,
    /// The gateway's runner token, presented at connect.
    pub token: String,
}

/// Slots of a demo runner (actors at once).
pub const SLOTS: u32 = 100_000;

/// The connect options of a runner of `gateway` presenting `token`, under a fresh random key (a
/// restarted runner must not reuse the key of the one it replaces).
pub fn connect_options(gateway: &str, token: &str) -> ConnectOptions {
    let key = super::auth::random_token();
    ConnectOptions::new(gateway, "default", &key[..32]).with_token(token)
}

/// A bare WebSocket to the gateway's runner endpoint, upgraded as a runner's (`rivet`,
/// `rivet_token.<token>`, a fresh runner key): a runner that tests drive by hand.
///
/// # Errors
/// The connection or the handshake failed (a wrong token is refused with HTTP 401).
pub async fn connect_raw(
    gateway: &str,
    token: &str,
    websocket: WebSocketConfig,
) -> io::Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
> {
    let request = connect_options(gateway, token)
        .request()
        .map_err(io::Error::other)?;
    let (ws, _) = tokio_tungstenite::connect_async_with_config(request, Some(websocket), true)
        .await
        .map_err(io::Error::other)?;
    Ok(ws)
}

/// The runner engine's calls on a [`RunnerInstance`] (its tunnel engine inside the session).
#[derive(Clone, Debug)]
pub struct RunnerCalls(SessionHandle);

impl RunnerCalls {
    /// Runs `f` on the runner's tunnel engine with the current time.
    ///
    /// # Errors
    /// [`Stopped`].
    pub fn call<R>(&self, f: impl FnOnce(&mut Runner, Timestamp) -> R) -> Result<R, Stopped> {
        self.0.call(|s, now| f(s.runner_mut(), now))
    }

    /// The session's handle.
    pub fn session(&self) -> &SessionHandle {
        &self.0
    }
}

/// A running runner.
pub struct RunnerInstance {
    tasks: JoinSet<()>,
    /// The session driver's task: the WebSocket and the session's timers.
    driver: tokio::task::AbortHandle,
    fence: Fence,
    calls: RunnerCalls,
    closed: watch::Receiver<bool>,
    closes: Arc<Mutex<BTreeMap<String, u64>>>,
    report_file: PathBuf,
}

impl RunnerInstance {
    /// Connects to the gateway and starts every task; returns once the engine answered the
    /// handshake.
    ///
    /// # Errors
    /// The storage does not open, or the connection is refused (a wrong token is refused with
    /// HTTP 401).
    pub async fn start(opts: RunnerOptions) -> io::Result<Self> {
        let fence = Fence::default();
        let store = Fenced {
            store: opts.storage.open(&opts.data_dir)?,
            fence: fence.clone(),
        };
        let clock = TokioClock::new();
        let mut config = SessionConfig::new(RUNNER_POOL, SLOTS);
        // The session decodes the engine's frames before its tunnel engine sees them.
        config.decode_limits = opts.config.decode_limits.clone();
        config.runner = opts.config.clone();
        let session = Session::new(config, clock.now()).map_err(io::Error::other)?;
        let connect = connect_options(&opts.gateway, &opts.token);
        let mut options = SessionOptions::default().with_backoff(Backoff::new(
            Duration::from_millis(20),
            Duration::from_millis(500),
        ));
        options.websocket = opts.websocket;
        let (driver, handle, mut events) = SessionDriver::new(session, connect, clock, options);
        let mut tasks = JoinSet::new();
        let driver = tasks.spawn(async move {
            let _ = driver.run().await;
        });
        if let Err(e) = connected(&mut events).await {
            handle.shutdown();
            tasks.abort_all();
            return Err(e);
        }
        let (closed_tx, closed) = watch::channel(false);
        let closes = Arc::new(Mutex::new(BTreeMap::new()));
        let (writes, stored) = app::spawn_writer(&mut tasks, store.clone(), handle.clone());
        let app = App::new(app::Parts {
            handle: handle.clone(),
            store,
            writes,
            stored,
            closes: closes.clone(),
            delivered: opts.delivered.clone(),
            load_delay: opts.load_delay,
            closed: closed_tx,
        });
        tasks.spawn(app.run(events));
        let report_file = report_path(&opts.data_dir, &opts.name);
        let calls = RunnerCalls(handle);
        let (c, cl, file) = (calls.clone(), closes.clone(), report_file.clone());
        let interval = opts.report_interval;
        tasks.spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(report) = report(&c, &cl) else {
                    return;
                };
                let _ = write_report(&file, &report).await;
            }
        });
        Ok(Self {
            tasks,
            driver,
            fence,
            calls,
            closed,
            closes,
            report_file,
        })
    }

    /// The runner engine.
    pub fn handle(&self) -> &RunnerCalls {
        &self.calls
    }

    /// The runner's counters now.
    pub fn report(&self) -> Option<RunnerReport> {
        report(&self.calls, &self.closes)
    }

    /// Crashes the runner: storage is fenced off (no write lands from now on), every task is
    /// aborted and the session dropped. Nothing is persisted or sent any more.
    pub fn kill(mut self) {
        self.fence.kill();
        self.tasks.abort_all();
    }

    /// Drops the connection to the gateway abruptly (the session driver and its socket go)
    /// while the app and the storage writer run on for `grace`: persists in flight land, their
    /// acks are lost with the connection. Then the runner stops: storage fenced off, every task
    /// ended.
    pub async fn drop_link(mut self, grace: Duration) {
        self.driver.abort();
        tokio::time::sleep(grace).await;
        self.fence.kill();
        self.calls.0.shutdown();
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Waits until the connection to the gateway ends (the gateway went away).
    pub async fn wait_closed(&mut self) {
        let _ = self.closed.wait_for(|c| *c).await;
    }

    /// Writes a last report, closes the connection and stops every task.
    pub async fn shutdown(mut self) -> Option<RunnerReport> {
        let r = self.report();
        if let Some(r) = &r {
            let _ = write_report(&self.report_file, r).await;
        }
        self.calls.0.shutdown();
        // The session closes its connection (1000 `pegboard.runner_shutdown`); the app, the
        // storage writer and the reporter end after it.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        self.tasks.abort_all();
        r
    }
}

/// Waits for the outcome of the first connection attempt.
async fn connected(events: &mut SessionEvents) -> io::Result<()> {
    let first = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = events.recv().await {
            match event {
                SessionEvent::Connected { .. } => return Ok(()),
                SessionEvent::Disconnected { reason, .. } => {
                    return Err(io::Error::other(format!("{reason:?}")));
                }
                _ => {}
            }
        }
        Err(io::Error::other("the runner stopped"))
    })
    .await;
    first.unwrap_or_else(|_| Err(io::Error::other("no answer to the handshake")))
}

/// The counters of this runner as a report.
fn report(calls: &RunnerCalls, closes: &Mutex<BTreeMap<String, u64>>) -> Option<RunnerReport> {
    let s = calls.call(|r, _| r.stats()).ok()?;
    Some(RunnerReport {
        delivered: s.delivered,
        duplicates_dropped: s.duplicates,
        gaps: s.gaps,
        persists: s.persists_completed,
        acks: s.acks_sent,
        restored: s.restored,
        malformed: s.dropped_malformed,
        closes: closes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone(),
    })
}

/// Where runner `name` writes its counters: `<data dir>/reports/<name>.json`.
pub fn report_path(data_dir: &std::path::Path, name: &str) -> PathBuf {
    data_dir.join("reports").join(format!("{name}.json"))
}

/// Writes `report` to `file` (through a temporary file, so a reader never sees half of it).
async fn write_report(file: &std::path::Path, report: &RunnerReport) -> io::Result<()> {
    let json = serde_json::to_vec(report).map_err(io::Error::other)?;
    if let Some(dir) = file.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let tmp = file.with_extension("json.tmp");
    tokio::fs::write(&tmp, json).await?;
    tokio::fs::rename(&tmp, file).await
}

/// A short name for a runner-side close reason.
pub fn reason_name(reason: &hibernating_ws::runner::CloseReason) -> String {
    use hibernating_ws::runner::CloseReason;
    match reason {
        CloseReason::GatewayClosed(f) => format!("gateway closed ({})", frame_text(f)),
        CloseReason::AppClosed(f) => format!("app closed ({})", frame_text(f)),
        CloseReason::Rejected(f) => format!("rejected ({})", frame_text(f)),
        CloseReason::MessageIndexSkip => "1008 ws.message_index_skip".into(),
        CloseReason::StaleMetadata => "1000 ws.stale_metadata".into(),
        CloseReason::ActorStopped => "actor stopped".into(),
        CloseReason::Hibernated => "hibernated".into(),
        other => format!("{other:?}"),
    }
}

/// `code reason` of a close frame.
pub fn frame_text(f: &hibernating_ws::CloseFrame) -> String {
    match (&f.code, &f.reason) {
        (Some(c), Some(r)) => format!("{c} {r}"),
        (Some(c), None) => format!("{c}"),
        (None, _) => "no code".into(),
    }
}
