//! The gateway process: hws's control engine ([`ControlDriver`]) behind one WebSocket listener
//! for clients (`/actors/<actor>`) and runners (`/runners/connect`, runner protocol v7).
//!
//! The engine does everything Rivet's engine does around the tunnel: the runner handshake, actor
//! placement and generations, start and stop commands, hibernating-request records, wakes, lost
//! runners. The demo adds its own policy on top: actors are created when a client first opens
//! one, and the [`Scheduler`] puts the demo's actor to sleep and has its runner killed on a
//! schedule.
//!
//! Runners authenticate with the token in their subprotocol list (see [`auth`](super::auth));
//! request ids are random. The accept loop survives accept errors and the WebSocket buffers are
//! sized per hop (see [`net`](super::net)); the connections are in [`accept`](super::accept).

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hibernating_ws::control::{ActorSpec, Control, ControlConfig};
use hibernating_ws::driver::control::{
    ControlDriver, ControlHandle, ControlOptions, QueueLimits, QueueStats, TokioClock,
};
use hibernating_ws::gateway::{Gateway, GatewayConfig, GatewayStats};
use hibernating_ws::wire::{ActorConfig, GatewayId};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::accept::{self, Shared};
use super::auth::{self, RunnerRejection};
use super::hooks::{Book, DemoIo};
use super::keepalive::Keepalive;
use super::net;
pub use super::schedule::Schedule;
use super::schedule::Scheduler;

/// The runner name (pool) of the demo's runners and actors.
pub const RUNNER_POOL: &str = "hws-demo";

/// How to start a gateway.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// `host:port` to listen on.
    pub listen: String,
    /// The gateway engine's configuration.
    pub config: GatewayConfig,
    /// The control engine's configuration ([`control_config`] by default).
    pub control: ControlConfig,
    /// Sleeps and kill triggers.
    pub schedule: Schedule,
    /// Progress lines on stderr.
    pub verbose: bool,
    /// Limits of each client's outbound queue: a client that does not read is paused, then
    /// closed.
    pub client_queue: QueueLimits,
    /// Buffer sizes of every WebSocket ([`websocket_config`]).
    pub websocket: WebSocketConfig,
    /// The token runners must present (`rivet_token.<token>` subprotocol); default a fresh
    /// random one.
    pub runner_token: String,
    /// Pings on every connection (clients and runners), and how long a silent one is kept.
    pub keepalive: Keepalive,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:0".into(),
            config: GatewayConfig::default(),
            control: control_config(),
            schedule: Schedule::default(),
            verbose: false,
            client_queue: QueueLimits::CLIENT,
            websocket: websocket_config(WS_READ_BUFFER, WS_WRITE_BUFFER),
            runner_token: auth::random_token(),
            keepalive: Keepalive::default(),
        }
    }
}

impl GatewayOptions {
    /// The defaults with `listen`, `config` and `schedule`.
    pub fn new(listen: String, config: GatewayConfig, schedule: Schedule) -> Self {
        Self {
            listen,
            config,
            schedule,
            ..Self::default()
        }
    }
}

/// The control engine's configuration in the demo: the defaults, except a runner lost threshold
/// of 250 ms (a runner process that dies is replaced by a new one with a new key on loopback,
/// so its actors may start elsewhere almost at once).
pub fn control_config() -> ControlConfig {
    let mut c = ControlConfig::default();
    c.runner_lost_threshold = Duration::from_millis(250);
    c
}

/// Default read buffer of a WebSocket. tungstenite's own default (128 KiB per connection,
/// allocated up front) is what an idle connection mostly costs; 8 KiB reads a frame of the
/// demo's sizes in a few calls.
pub const WS_READ_BUFFER: usize = 8 * 1024;
/// Default write buffer of a WebSocket (writes are flushed once it is past this size).
pub const WS_WRITE_BUFFER: usize = 8 * 1024;
/// Most bytes a WebSocket buffers for writing before its writes fail (the connection is then
/// dropped): bounds a peer that does not read.
pub const WS_MAX_WRITE_BUFFER: usize = 4 * 1024 * 1024;

/// The WebSocket configuration of the demo's connections: `read` and `write` buffer sizes, the
/// write buffer capped at [`WS_MAX_WRITE_BUFFER`].
pub fn websocket_config(read: usize, write: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(read)
        .write_buffer_size(write)
        .max_write_buffer_size(WS_MAX_WRITE_BUFFER.max(write + 1))
}

/// What the gateway saw (for the report and the tests).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Sleeps completed (the actor stopped cleanly and its requests hibernated).
    pub sleeps: u32,
    /// Actor starts (`CommandStartActor` sent: first starts and wakes).
    pub starts: u32,
    /// Runners lost (without a connection past the lost threshold): their actors stopped.
    pub runners_lost: u32,
    /// Runner handshakes completed.
    pub runners_connected: u32,
    /// Requests closed, by reason.
    pub closes: BTreeMap<String, u64>,
    /// Runner frames the engine dropped, by error.
    pub receive_errors: BTreeMap<String, u64>,
    /// Live requests.
    pub requests: usize,
    /// Hibernating-request records (the lists the next starts carry).
    pub records: usize,
    /// Client messages read.
    pub client_messages: u64,
    /// Runner connections refused, by reason.
    pub runners_rejected: BTreeMap<RunnerRejection, u64>,
    /// Accept errors the listener survived.
    pub accept_errors: u64,
    /// Actor starts stopped because the actor's storage did not load, with the last error.
    pub start_failures: u32,
    pub last_start_error: Option<String>,
}

/// A running gateway.
pub struct GatewayServer {
    /// Where it listens.
    pub addr: SocketAddr,
    handle: ControlHandle,
    driver: JoinHandle<Control>,
    tasks: Vec<JoinHandle<()>>,
    /// Fires once when the schedule says to kill the runner.
    pub kill: Option<mpsc::Receiver<()>>,
    runner_token: String,
    book: Book,
    scheduler: Arc<Scheduler>,
    accept_errors: Arc<AtomicU64>,
}

impl GatewayServer {
    /// Binds, then starts the driver, the scheduler and the accept loop.
    pub async fn start(opts: GatewayOptions) -> io::Result<Self> {
        let listener = TcpListener::bind(&opts.listen).await?;
        let addr = listener.local_addr()?;
        let clock = TokioClock::new();
        let gateway = Gateway::new(opts.config.clone(), GatewayId(*b"demo"), clock.now())
            .map_err(io::Error::other)?;
        let epoch = u64::from_le_bytes(
            [auth::random_request_id(), auth::random_request_id()]
                .concat()
                .try_into()
                .unwrap_or_default(),
        );
        let control = Control::new(opts.control.clone(), gateway, epoch, clock.now())
            .map_err(io::Error::other)?;
        let book = Book::default();
        let (scheduler, kill) = Scheduler::new(opts.schedule.clone());
        let io_side = DemoIo {
            book: book.clone(),
            scheduler: scheduler.clone(),
            verbose: opts.verbose,
        };
        let options = ControlOptions::default().with_client_queue(opts.client_queue);
        let (driver, handle) = ControlDriver::new(control, io_side, clock, options);
        let driver = tokio::spawn(driver.run());
        let mut tasks = vec![tokio::spawn(scheduler.clone().run(handle.clone()))];
        let accept_errors = Arc::new(AtomicU64::new(0));
        let shared = Arc::new(Shared {
            handle: handle.clone(),
            book: book.clone(),
            scheduler: scheduler.clone(),
            runner_token: opts.runner_token.clone(),
            websocket: opts.websocket,
            keepalive: opts.keepalive,
            spec: actor_spec(),
        });
        tasks.push(tokio::spawn(net::accept_loop(
            listener,
            accept_errors.clone(),
            move |tcp| {
                let _ = tcp.set_nodelay(true);
                tokio::spawn(accept::connection(tcp, shared.clone()));
            },
        )));
        Ok(Self {
            addr,
            handle,
            driver,
            tasks,
            kill: Some(kill),
            runner_token: opts.runner_token,
            book,
            scheduler,
            accept_errors,
        })
    }

    /// `ws://host:port`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The token runners must present.
    pub fn runner_token(&self) -> &str {
        &self.runner_token
    }

    /// The driver's handle.
    pub fn handle(&self) -> &ControlHandle {
        &self.handle
    }

    /// Puts the actor to sleep (now if it runs, else after its next start) and waits until it
    /// stopped and its requests hibernated.
    pub async fn sleep_actor(&self, actor: &str) {
        let (done, rx) = oneshot::channel();
        self.scheduler.sleep(actor, Some(done));
        let _ = rx.await;
    }

    /// What the gateway saw so far.
    #[allow(clippy::unused_async)] // awaited alongside the other waits of the tests and demo
    pub async fn snapshot(&self) -> Snapshot {
        let (sleeps, start_failures, last_start_error) = self.scheduler.counts();
        let (mut s, actors) = {
            let t = self.book.lock();
            let s = Snapshot {
                sleeps,
                runners_lost: t.runners_lost,
                runners_connected: t.runners_connected,
                closes: t.closes.clone(),
                receive_errors: t.receive_errors.clone(),
                requests: t.requests.len(),
                runners_rejected: t.runners_rejected.clone(),
                start_failures,
                last_start_error,
                ..Snapshot::default()
            };
            (s, t.actors.iter().cloned().collect::<Vec<_>>())
        };
        s.client_messages = self.scheduler.client_messages.load(Ordering::Relaxed);
        s.accept_errors = self.accept_errors.load(Ordering::Relaxed);
        let _ = self.handle.call(|c, _| {
            s.starts = u32::try_from(c.stats().starts).unwrap_or(u32::MAX);
            s.records = actors
                .iter()
                .filter_map(|a| c.actor(a))
                .map(|a| a.hibernating_requests.len())
                .sum();
        });
        s
    }

    /// Fill levels of the clients' outbound queues.
    pub fn queue_stats(&self) -> QueueStats {
        self.handle.queue_stats()
    }

    /// The gateway engine's counters.
    pub fn stats(&self) -> GatewayStats {
        self.handle
            .call(|c, _| c.gateway().stats())
            .unwrap_or_default()
    }

    /// Stops everything; returns the engine.
    pub async fn shutdown(self) -> Option<Control> {
        self.handle.shutdown();
        let control = self.driver.await.ok();
        for t in self.tasks {
            t.abort();
        }
        control
    }
}

/// The spec of every actor clients open: hosted by the demo's runners.
fn actor_spec() -> ActorSpec {
    ActorSpec {
        runner_name: RUNNER_POOL.into(),
        config: ActorConfig {
            name: "demo".into(),
            key: None,
            create_ts: 0,
            input: None,
        },
    }
}
