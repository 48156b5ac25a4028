//! The gateway process: one WebSocket listener for clients (`/actors/<actor>`) and runners
//! (`/runner`), a [`GatewayDriver`], and an orchestrator that plays Rivet's engine: it places
//! actors on runners, starts and stops them, keeps the hibernating-request records, and turns a
//! lost runner into "actor stopped" for its requests.
//!
//! Runners authenticate at `/runner` with the token in their subprotocol list and must say hello
//! before any tunnel frame (see [`auth`](super::auth)); request ids are random. The accept loop
//! survives accept errors and the WebSocket buffers are sized per hop (see [`net`](super::net)).

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hibernating_ws::CloseFrame;
use hibernating_ws::driver::tokio::{
    ClientEvents, ClientOutput, ClientSender, GatewayDriver, GatewayHandle, GatewayIo,
    GatewayOptions as DriverOptions, Outbox, QueueLimits, QueueStats, TokioClock, outbox,
};
use hibernating_ws::gateway::{
    CloseReason, Frame, Gateway, GatewayConfig, GatewayStats, GcReason, OpenRequest, RouteId,
};
use hibernating_ws::wire::{GatewayId, RequestId};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::CloseFrame as WsCloseFrame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{WebSocketStream, accept_hdr_async_with_config};

use super::auth::{self, RunnerRejection};
use super::control::{Control, RunnerReport};
use super::net;

/// When the orchestrator puts the actor to sleep and when the runner is killed, counted in
/// client messages read by the gateway.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    /// The actor the schedule applies to.
    pub actor: String,
    /// Put the actor to sleep after this many messages (each entry once).
    pub sleep_at: Vec<u64>,
    /// Kill the runner after this many messages.
    pub kill_at: Option<u64>,
}

impl Schedule {
    /// `sleeps` sleeps evenly spread over `messages`, and a kill halfway between two of them.
    pub fn spread(actor: &str, messages: u64, sleeps: u32, kill: bool) -> Self {
        let parts = u64::from(sleeps) + 1;
        let sleep_at = (1..parts)
            .map(|k| k * messages / parts)
            .filter(|&n| n > 0)
            .collect();
        // Halfway between two sleeps, near the middle of the stream.
        let k = parts / 2;
        let kill_at =
            kill.then(|| ((2 * k + 1) * messages / (2 * parts)).clamp(1, messages.max(1)));
        Self {
            actor: actor.into(),
            sleep_at,
            kill_at,
        }
    }
}

/// How to start a gateway.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// `host:port` to listen on.
    pub listen: String,
    /// The engine's configuration.
    pub config: GatewayConfig,
    /// Sleeps and kill triggers.
    pub schedule: Schedule,
    /// How long a sleeping actor takes to start again.
    pub cold_start: Duration,
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
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:0".into(),
            config: GatewayConfig::default(),
            schedule: Schedule::default(),
            cold_start: Duration::ZERO,
            verbose: false,
            client_queue: QueueLimits::CLIENT,
            websocket: websocket_config(WS_READ_BUFFER, WS_WRITE_BUFFER),
            runner_token: auth::random_token(),
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

/// What the orchestrator saw (for the report and the tests).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Sleeps completed (the actor stopped and its requests hibernated).
    pub sleeps: u32,
    /// Actor starts (first start and wakes).
    pub starts: u32,
    /// Runner connections lost while they hosted an actor.
    pub runners_lost: u32,
    /// Runner connections accepted.
    pub runners_connected: u32,
    /// Requests closed, by reason.
    pub closes: BTreeMap<String, u64>,
    /// Runner frames the gateway engine dropped, by error.
    pub receive_errors: BTreeMap<String, u64>,
    /// The latest counters of every runner connection, by route.
    pub runner_reports: BTreeMap<u64, RunnerReport>,
    /// Live requests.
    pub requests: usize,
    /// Hibernating-request records.
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

impl Snapshot {
    /// Counters summed over every runner connection.
    pub fn runner_total(&self) -> RunnerReport {
        let mut t = RunnerReport::default();
        for r in self.runner_reports.values() {
            t.delivered += r.delivered;
            t.duplicates_dropped += r.duplicates_dropped;
            t.gaps += r.gaps;
            t.persists += r.persists;
            t.acks += r.acks;
            t.restored += r.restored;
            t.malformed += r.malformed;
            for (k, v) in &r.closes {
                *t.closes.entry(k.clone()).or_insert(0) += v;
            }
        }
        t
    }
}

/// Events of the orchestrator task.
enum Orch {
    RunnerUp {
        route: RouteId,
        name: String,
    },
    RunnerDown {
        route: RouteId,
    },
    RunnerControl {
        route: RouteId,
        control: Control,
    },
    EnsureRunning {
        actor: String,
        reply: oneshot::Sender<RouteId>,
    },
    ClientOpened {
        request_id: RequestId,
        actor: String,
        /// Whether the id was free (it is taken then).
        reply: oneshot::Sender<bool>,
    },
    RunnerRejected {
        why: RunnerRejection,
    },
    Wake {
        request_id: RequestId,
        actor: String,
    },
    Closed {
        request_id: RequestId,
        reason: String,
    },
    Upsert {
        request_id: RequestId,
        actor: String,
    },
    Delete {
        request_id: RequestId,
    },
    Sleep {
        actor: String,
        reply: Option<oneshot::Sender<()>>,
    },
    DoStart {
        actor: String,
    },
    ReceiveError {
        error: String,
    },
    Snapshot {
        reply: oneshot::Sender<Snapshot>,
    },
}

/// A running gateway.
pub struct GatewayServer {
    /// Where it listens.
    pub addr: SocketAddr,
    handle: GatewayHandle,
    orch: UnboundedSender<Orch>,
    driver: JoinHandle<Gateway>,
    tasks: Vec<JoinHandle<()>>,
    /// Fires when the schedule says to kill the runner.
    pub kill: Option<UnboundedReceiver<()>>,
    runner_token: String,
}

/// Runner connections: where to publish for each route.
type Routes = Arc<Mutex<BTreeMap<RouteId, Outbox<LinkOut>>>>;

/// A message for a runner connection, in its bounded outbox.
pub(crate) struct LinkOut(pub(crate) Message);

impl AsRef<[u8]> for LinkOut {
    fn as_ref(&self) -> &[u8] {
        match &self.0 {
            Message::Binary(b) => b,
            Message::Text(t) => t.as_bytes(),
            _ => &[],
        }
    }
}

impl GatewayServer {
    /// Binds, then starts the driver, the orchestrator and the accept loop.
    pub async fn start(opts: GatewayOptions) -> io::Result<Self> {
        let listener = TcpListener::bind(&opts.listen).await?;
        let addr = listener.local_addr()?;
        let clock = TokioClock::new();
        let gateway = Gateway::new(opts.config.clone(), GatewayId(*b"demo"), clock.now())
            .map_err(io::Error::other)?;
        let routes: Routes = Arc::default();
        let (orch_tx, orch_rx) = unbounded_channel();
        let io_side = GatewaySide {
            routes: routes.clone(),
            orch: orch_tx.clone(),
        };
        let (driver, handle) = GatewayDriver::new(
            gateway,
            io_side,
            clock,
            DriverOptions::default().with_client_queue(opts.client_queue),
        );
        let driver = tokio::spawn(driver.run());
        let client_messages = Arc::new(AtomicU64::new(0));
        let accept_errors = Arc::new(AtomicU64::new(0));
        let running = Arc::new(AtomicBool::new(false));
        let killed = Arc::new(AtomicBool::new(false));
        let (kill_tx, kill_rx) = unbounded_channel();
        let orchestrator = Orchestrator {
            kill_at: opts.schedule.kill_at,
            killed: killed.clone(),
            kill: kill_tx.clone(),
            running: running.clone(),
            scheduled_actor: opts.schedule.actor.clone(),
            gw: handle.clone(),
            tx: orch_tx.clone(),
            routes: routes.clone(),
            runners: BTreeMap::new(),
            actors: BTreeMap::new(),
            requests: BTreeMap::new(),
            records: BTreeMap::new(),
            snapshot: Snapshot::default(),
            cold_start: opts.cold_start,
            verbose: opts.verbose,
            client_messages: client_messages.clone(),
            accept_errors: accept_errors.clone(),
        };
        let mut tasks = vec![tokio::spawn(orchestrator.run(orch_rx))];
        let shared = Arc::new(Shared {
            handle: handle.clone(),
            orch: orch_tx.clone(),
            routes,
            next_route: AtomicU32::new(1),
            runner_token: opts.runner_token.clone(),
            schedule: opts.schedule.clone(),
            client_messages,
            kill: kill_tx,
            running,
            killed,
            websocket: opts.websocket,
        });
        tasks.push(tokio::spawn(net::accept_loop(
            listener,
            accept_errors,
            move |tcp| {
                let _ = tcp.set_nodelay(true);
                tokio::spawn(connection(tcp, shared.clone()));
            },
        )));
        Ok(Self {
            addr,
            handle,
            orch: orch_tx,
            driver,
            tasks,
            kill: Some(kill_rx),
            runner_token: opts.runner_token.clone(),
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
    pub fn handle(&self) -> &GatewayHandle {
        &self.handle
    }

    /// Puts the actor to sleep and waits until its requests hibernated.
    pub async fn sleep_actor(&self, actor: &str) {
        let (reply, rx) = oneshot::channel();
        let _ = self.orch.send(Orch::Sleep {
            actor: actor.into(),
            reply: Some(reply),
        });
        let _ = rx.await;
    }

    /// What the orchestrator saw so far.
    pub async fn snapshot(&self) -> Snapshot {
        let (reply, rx) = oneshot::channel();
        let _ = self.orch.send(Orch::Snapshot { reply });
        rx.await.unwrap_or_default()
    }

    /// Fill levels of the clients' outbound queues.
    pub fn queue_stats(&self) -> QueueStats {
        self.handle.queue_stats()
    }

    /// The engine's counters.
    pub fn stats(&self) -> GatewayStats {
        self.handle.call(|g, _| g.stats()).unwrap_or_default()
    }

    /// Stops everything; returns the engine.
    pub async fn shutdown(self) -> Option<Gateway> {
        self.handle.shutdown();
        let gateway = self.driver.await.ok();
        for t in self.tasks {
            t.abort();
        }
        gateway
    }
}

/// What the connection tasks share.
struct Shared {
    handle: GatewayHandle,
    orch: UnboundedSender<Orch>,
    routes: Routes,
    next_route: AtomicU32,
    runner_token: String,
    schedule: Schedule,
    client_messages: Arc<AtomicU64>,
    kill: UnboundedSender<()>,
    /// Whether the scheduled actor runs (maintained by the orchestrator).
    running: Arc<AtomicBool>,
    killed: Arc<AtomicBool>,
    websocket: WebSocketConfig,
}

/// How long a connection may take to complete its WebSocket handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One TCP connection: a runner (`/runner`, authenticated) or a client (`/actors/<actor>`).
async fn connection(tcp: TcpStream, shared: Arc<Shared>) {
    let mut path = String::new();
    let mut rejected = None;
    let token = shared.runner_token.as_str();
    #[allow(clippy::result_large_err)] // tungstenite's callback signature
    let callback = |req: &Request, mut resp: Response| {
        path = req.uri().path().to_string();
        if path != "/runner" {
            return Ok(resp);
        }
        let offered = req
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok());
        match auth::check_subprotocols(offered, token) {
            Ok(()) => {
                resp.headers_mut().insert(
                    "sec-websocket-protocol",
                    HeaderValue::from_static(auth::SUBPROTOCOL),
                );
                Ok(resp)
            }
            Err(why) => {
                rejected = Some(why);
                let mut refusal = ErrorResponse::new(Some(why.reason().to_string()));
                *refusal.status_mut() = StatusCode::UNAUTHORIZED;
                Err(refusal)
            }
        }
    };
    let ws = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        accept_hdr_async_with_config(tcp, callback, Some(shared.websocket)),
    )
    .await;
    if let Some(why) = rejected {
        let _ = shared.orch.send(Orch::RunnerRejected { why });
    }
    let Ok(Ok(ws)) = ws else {
        return;
    };
    if path == "/runner" {
        runner_connection(ws, shared).await;
    } else if let Some(actor) = path.strip_prefix("/actors/").filter(|a| !a.is_empty()) {
        let actor = actor.to_string();
        client_connection(ws, actor, path.clone(), shared).await;
    }
}

async fn runner_connection(ws: WebSocketStream<TcpStream>, shared: Arc<Shared>) {
    let route = RouteId(u64::from(shared.next_route.fetch_add(1, Ordering::Relaxed)));
    let (mut ws_tx, mut ws_rx) = ws.split();
    let (out_tx, mut out_rx) = outbox::<LinkOut>(QueueLimits::LINK);
    let writer = tokio::spawn(async move {
        // Everything queued at once, one flush per batch.
        let mut batch = Vec::new();
        while out_rx.recv_many(&mut batch).await > 0 {
            for LinkOut(msg) in batch.drain(..) {
                if ws_tx.feed(msg).await.is_err() {
                    return;
                }
            }
            if ws_tx.flush().await.is_err() {
                return;
            }
        }
        // The runner did not drain its link (the outbox overflowed), or the link ends.
        let _ = ws_tx.close().await;
    });
    let mut up = false;
    while let Some(Ok(msg)) = ws_rx.next().await {
        match msg {
            Message::Binary(_) if !up => {
                // No tunnel frame counts before the runner said who it is.
                let why = RunnerRejection::HelloRequired;
                let _ = shared.orch.send(Orch::RunnerRejected { why });
                let _ = out_tx.push(LinkOut(Message::Close(Some(WsCloseFrame {
                    code: CloseCode::from(RunnerRejection::CLOSE_CODE),
                    reason: why.reason().into(),
                }))));
                break;
            }
            Message::Binary(b) => {
                let handed = shared.handle.runner_frame(route, &b);
                if handed.is_err() {
                    break;
                }
            }
            Message::Text(t) => match Control::from_text(t.as_str()) {
                Some(Control::Hello { runner }) if !up => {
                    up = true;
                    lock(&shared.routes).insert(route, out_tx.clone());
                    let _ = shared.orch.send(Orch::RunnerUp {
                        route,
                        name: runner,
                    });
                }
                Some(control) if up => {
                    let _ = shared.orch.send(Orch::RunnerControl { route, control });
                }
                _ => {}
            },
            Message::Close(_) => {
                let _ = out_tx.push(LinkOut(Message::Close(None)));
                break;
            }
            _ => {}
        }
    }
    lock(&shared.routes).remove(&route);
    if up {
        let _ = shared.orch.send(Orch::RunnerDown { route });
    }
    drop(out_tx);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
}

async fn client_connection(
    ws: WebSocketStream<TcpStream>,
    actor: String,
    path: String,
    shared: Arc<Shared>,
) {
    let (reply, rx) = oneshot::channel();
    let _ = shared.orch.send(Orch::EnsureRunning {
        actor: actor.clone(),
        reply,
    });
    let Ok(route) = rx.await else {
        return;
    };
    // A random id nobody can guess; the orchestrator takes it only if no live request has it.
    let mut request_id = None;
    for _ in 0..16 {
        let candidate = RequestId(auth::random_request_id());
        let (reply, rx) = oneshot::channel();
        let _ = shared.orch.send(Orch::ClientOpened {
            request_id: candidate,
            actor: actor.clone(),
            reply,
        });
        if rx.await == Ok(true) {
            request_id = Some(candidate);
            break;
        }
    }
    let Some(request_id) = request_id else {
        return;
    };
    // (The path starts with `/actors/`, so it is a valid open path.)
    let opened = OpenRequest::new(actor.clone(), path)
        .ok()
        .and_then(|open| shared.handle.open(request_id, route, open).ok());
    let Some((sender, events)) = opened else {
        let _ = shared.orch.send(Orch::Closed {
            request_id,
            reason: "open refused".into(),
        });
        return;
    };
    let (ws_tx, ws_rx) = ws.split();
    let writer = tokio::spawn(client_writer(ws_tx, events));
    client_reader(ws_rx, sender, &actor, &shared).await;
    let _ = writer.await;
}

type WsSink = futures_util::stream::SplitSink<WebSocketStream<TcpStream>, Message>;
type WsSource = futures_util::stream::SplitStream<WebSocketStream<TcpStream>>;

/// Client reads: never before the gate opens, one frame at a time.
async fn client_reader(
    mut ws_rx: WsSource,
    mut sender: ClientSender,
    actor: &str,
    shared: &Shared,
) {
    loop {
        if sender.readable().await.is_err() {
            return;
        }
        let handed = match ws_rx.next().await {
            Some(Ok(Message::Text(t))) => sender.message(t.as_bytes(), false).await,
            Some(Ok(Message::Binary(b))) => sender.message(&b, true).await,
            Some(Ok(Message::Close(frame))) => {
                let frame = frame.map(|f| CloseFrame {
                    code: Some(u16::from(f.code)),
                    reason: (!f.reason.is_empty()).then(|| f.reason.as_str().to_string()),
                });
                let _ = sender.close(Some(frame.unwrap_or_else(|| CloseFrame::code(1005))));
                return;
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => {
                let _ = sender.close(None);
                return;
            }
        };
        if handed.is_err() {
            return;
        }
        let n = shared.client_messages.fetch_add(1, Ordering::Relaxed) + 1;
        if actor == shared.schedule.actor {
            if shared.schedule.sleep_at.contains(&n) {
                let _ = shared.orch.send(Orch::Sleep {
                    actor: actor.into(),
                    reply: None,
                });
            }
            // Kill while the actor runs (so it holds delivered, unpersisted messages): at the
            // scheduled message, or at the first message after it that finds the actor running.
            if shared.schedule.kill_at.is_some_and(|k| n >= k)
                && shared.running.load(Ordering::Relaxed)
                && !shared.killed.swap(true, Ordering::Relaxed)
            {
                let _ = shared.kill.send(());
            }
        }
    }
}

/// Client writes: messages from the actor, then the close frame if the gateway closes.
async fn client_writer(mut ws_tx: WsSink, mut events: ClientEvents) {
    while let Some(out) = events.recv().await {
        let msg = match out {
            ClientOutput::Message { data, binary: true } => Message::Binary(Bytes::from(data)),
            ClientOutput::Message {
                data,
                binary: false,
            } => match String::from_utf8(data) {
                Ok(text) => Message::text(text),
                Err(e) => Message::Binary(Bytes::from(e.into_bytes())),
            },
            ClientOutput::Close(frame) => {
                let close = WsCloseFrame {
                    code: CloseCode::from(frame.code.unwrap_or(1000)),
                    reason: frame.reason.unwrap_or_default().into(),
                };
                let _ = ws_tx.send(Message::Close(Some(close))).await;
                return;
            }
            _ => continue,
        };
        if ws_tx.send(msg).await.is_err() {
            return;
        }
    }
    let _ = ws_tx.close().await;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The [`GatewayIo`] sink: frames to the runner connection of the route, the rest to the
/// orchestrator.
struct GatewaySide {
    routes: Routes,
    orch: UnboundedSender<Orch>,
}

impl GatewayIo for GatewaySide {
    fn publish(&mut self, route: RouteId, _request_id: RequestId, frame: Frame) {
        // No subscriber (the runner is gone): dropped, as on a pub/sub subject; the pending
        // buffer replays it after the next wake.
        if let Some(tx) = lock(&self.routes).get(&route) {
            let _ = tx.push(LinkOut(Message::Binary(Bytes::from_owner(frame))));
        }
    }

    fn request_wake(&mut self, request_id: RequestId, actor_id: String) {
        let _ = self.orch.send(Orch::Wake {
            request_id,
            actor: actor_id,
        });
    }

    fn upsert_hibernating_record(&mut self, request_id: RequestId, actor_id: String) {
        let _ = self.orch.send(Orch::Upsert {
            request_id,
            actor: actor_id,
        });
    }

    fn delete_hibernating_record(&mut self, request_id: RequestId, _actor_id: String) {
        let _ = self.orch.send(Orch::Delete { request_id });
    }

    fn closed(&mut self, request_id: RequestId, reason: &CloseReason) {
        let _ = self.orch.send(Orch::Closed {
            request_id,
            reason: close_reason_name(reason),
        });
    }

    fn receive_error(&mut self, _route: RouteId, error: &hibernating_ws::gateway::ReceiveError) {
        let _ = self.orch.send(Orch::ReceiveError {
            error: error.to_string(),
        });
    }
}

/// A short name for a gateway close reason, with the client's close frame.
pub fn close_reason_name(reason: &CloseReason) -> String {
    let frame = reason
        .client_frame()
        .map_or_else(|| "none".into(), |f| super::runner::frame_text(&f));
    let what = match reason {
        CloseReason::ClientClosed(f) => format!("client closed ({})", super::runner::frame_text(f)),
        CloseReason::ClientGone => "client gone".into(),
        CloseReason::RunnerClosed(_) => "runner closed".into(),
        CloseReason::ClosedBeforeOpen(_) => "closed before open".into(),
        CloseReason::OpenTimeout => "open timeout".into(),
        CloseReason::ActorStopped => "actor stopped".into(),
        CloseReason::ActorStoppedBeforeOpen => "actor stopped before open".into(),
        CloseReason::PendingLimit(l) => format!("pending limit ({l})"),
        CloseReason::PingTimeout => "ping timeout".into(),
        CloseReason::Collected(GcReason::AckTimeout { .. }) => "collected: ack timeout".into(),
        CloseReason::Collected(GcReason::HibernationTimeout) => {
            "collected: hibernation timeout".into()
        }
        CloseReason::Collected(GcReason::WakeTimeout) => "collected: wake timeout".into(),
        other => format!("{other:?}"),
    };
    format!("{what}; client frame: {frame}")
}

/// Where an actor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Stopped,
    Starting(RouteId),
    Running(RouteId),
    Stopping(RouteId),
}

struct Placement {
    phase: Phase,
    /// Clients waiting for the actor to run.
    waiters: Vec<oneshot::Sender<RouteId>>,
    /// A start is scheduled (cold start) or waits for a runner.
    start_pending: bool,
    /// Sleeps requested while the actor was not running.
    deferred_sleeps: Vec<Option<oneshot::Sender<()>>>,
    /// Waiting for the actor to stop.
    sleepers: Vec<oneshot::Sender<()>>,
    /// A hibernating request asked for a wake that no start has served yet (the gateway asks
    /// once per hibernation, so a start lost with its runner must be retried).
    wake_wanted: bool,
    /// Starts in a row that failed on storage: the next start waits longer (doubling).
    start_failures: u32,
}

struct Orchestrator {
    gw: GatewayHandle,
    tx: UnboundedSender<Orch>,
    routes: Routes,
    runners: BTreeMap<RouteId, String>,
    actors: BTreeMap<String, Placement>,
    /// Live requests and their actor.
    requests: BTreeMap<RequestId, String>,
    /// Hibernating-request records: request → actor.
    records: BTreeMap<RequestId, String>,
    snapshot: Snapshot,
    cold_start: Duration,
    verbose: bool,
    client_messages: Arc<AtomicU64>,
    accept_errors: Arc<AtomicU64>,
    running: Arc<AtomicBool>,
    scheduled_actor: String,
    kill_at: Option<u64>,
    killed: Arc<AtomicBool>,
    kill: UnboundedSender<()>,
}

impl Orchestrator {
    async fn run(mut self, mut rx: UnboundedReceiver<Orch>) {
        while let Some(ev) = rx.recv().await {
            self.event(ev);
        }
    }

    fn log(&self, what: impl AsRef<str>) {
        if self.verbose {
            eprintln!("[gateway] {}", what.as_ref());
        }
    }

    fn placement(&mut self, actor: &str) -> &mut Placement {
        self.actors
            .entry(actor.to_string())
            .or_insert_with(|| Placement {
                phase: Phase::Stopped,
                waiters: Vec::new(),
                start_pending: false,
                deferred_sleeps: Vec::new(),
                sleepers: Vec::new(),
                wake_wanted: false,
                start_failures: 0,
            })
    }

    #[allow(clippy::too_many_lines)]
    fn event(&mut self, ev: Orch) {
        match ev {
            Orch::RunnerUp { route, name } => {
                self.log(format!("runner {name} connected (route {})", route.0));
                self.runners.insert(route, name);
                self.snapshot.runners_connected += 1;
                let waiting: Vec<String> = self
                    .actors
                    .iter()
                    .filter(|(_, p)| p.phase == Phase::Stopped && p.start_pending)
                    .map(|(a, _)| a.clone())
                    .collect();
                for actor in waiting {
                    self.do_start(&actor);
                }
            }
            Orch::RunnerDown { route } => {
                self.runners.remove(&route);
                let hosted: Vec<String> = self
                    .actors
                    .iter()
                    .filter(|(_, p)| {
                        matches!(p.phase, Phase::Starting(r) | Phase::Running(r) | Phase::Stopping(r) if r == route)
                    })
                    .map(|(a, _)| a.clone())
                    .collect();
                if !hosted.is_empty() {
                    self.snapshot.runners_lost += 1;
                    self.log(format!(
                        "runner on route {} lost; its actors stopped",
                        route.0
                    ));
                }
                for actor in hosted {
                    // A sleep in progress did not happen as a sleep (the runner died first):
                    // it is done again after the next start.
                    let p = self.placement(&actor);
                    if matches!(p.phase, Phase::Stopping(_)) {
                        p.deferred_sleeps.push(None);
                    }
                    self.stopped(&actor);
                }
            }
            Orch::RunnerControl { route, control } => match control {
                Control::Started { actor } => {
                    let p = self.placement(&actor);
                    if p.phase != Phase::Starting(route) {
                        return;
                    }
                    p.phase = Phase::Running(route);
                    p.wake_wanted = false;
                    for w in p.waiters.drain(..) {
                        let _ = w.send(route);
                    }
                    // One deferred sleep per start: each sleep is a real stop and wake. A kill
                    // that is due goes first (shortly after the start, once the replay is
                    // being delivered); the sleep waits for the next start.
                    let kill_due = actor == self.scheduled_actor
                        && self
                            .kill_at
                            .is_some_and(|k| self.client_messages.load(Ordering::Relaxed) >= k)
                        && !self.killed.load(Ordering::Relaxed);
                    let p = self.placement(&actor);
                    let deferred = (!kill_due && !p.deferred_sleeps.is_empty())
                        .then(|| p.deferred_sleeps.remove(0));
                    if kill_due {
                        let (running, killed, kill) =
                            (self.running.clone(), self.killed.clone(), self.kill.clone());
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            if running.load(Ordering::Relaxed)
                                && !killed.swap(true, Ordering::Relaxed)
                            {
                                let _ = kill.send(());
                            }
                        });
                    }
                    self.set_running(&actor, true);
                    self.log(format!("actor {actor} running on route {}", route.0));
                    // Every live request of the actor that hibernated continues here: the
                    // gateway replays its pending messages (they queue until the restore).
                    let requests: Vec<RequestId> = self
                        .requests
                        .iter()
                        .filter(|(_, a)| **a == actor)
                        .map(|(r, _)| *r)
                        .collect();
                    for request_id in requests {
                        let _ = self.gw.call(|g, now| g.wake(now, request_id, route));
                    }
                    if let Some(reply) = deferred {
                        self.sleep(&actor, reply);
                    }
                }
                Control::Stopped { actor } => {
                    let p = self.placement(&actor);
                    if matches!(p.phase, Phase::Running(r) | Phase::Stopping(r) if r == route) {
                        p.start_failures = 0;
                        self.stopped(&actor);
                        self.snapshot.sleeps += 1;
                    }
                }
                Control::StartFailed { actor, error } => {
                    // The actor never ran: its requests hibernate again (nothing is closed, the
                    // gateway still holds every unacked message) and the start is retried later.
                    let p = self.placement(&actor);
                    if matches!(p.phase, Phase::Starting(r) | Phase::Running(r) | Phase::Stopping(r) if r == route)
                    {
                        p.start_failures = p.start_failures.saturating_add(1);
                        p.wake_wanted = true;
                        self.log(format!("actor {actor}: start failed: {error}"));
                        self.snapshot.start_failures += 1;
                        self.snapshot.last_start_error = Some(error);
                        self.stopped(&actor);
                    }
                }
                Control::Stats(report) => {
                    self.snapshot.runner_reports.insert(route.0, report);
                }
                _ => {}
            },
            Orch::EnsureRunning { actor, reply } => {
                let p = self.placement(&actor);
                if let Phase::Running(route) = p.phase {
                    let _ = reply.send(route);
                    return;
                }
                p.waiters.push(reply);
                self.want_running(&actor, Duration::ZERO);
            }
            Orch::ClientOpened {
                request_id,
                actor,
                reply,
            } => {
                let free = !self.requests.contains_key(&request_id);
                if free {
                    self.requests.insert(request_id, actor);
                }
                let _ = reply.send(free);
            }
            Orch::RunnerRejected { why } => {
                self.log(format!("runner connection refused: {why}"));
                *self.snapshot.runners_rejected.entry(why).or_insert(0) += 1;
            }
            Orch::Wake { request_id, actor } => {
                let p = self.placement(&actor);
                let phase = p.phase;
                if !matches!(phase, Phase::Running(_)) {
                    p.wake_wanted = true;
                }
                match phase {
                    Phase::Running(route) => {
                        let _ = self.gw.call(|g, now| g.wake(now, request_id, route));
                    }
                    Phase::Stopped => self.want_running(&actor, self.cold_start),
                    // Woken when the actor runs (Started).
                    Phase::Starting(_) | Phase::Stopping(_) => {}
                }
            }
            Orch::Closed { request_id, reason } => {
                self.requests.remove(&request_id);
                *self.snapshot.closes.entry(reason).or_insert(0) += 1;
            }
            Orch::Upsert { request_id, actor } => {
                self.records.insert(request_id, actor);
                let _ = self
                    .gw
                    .call(|g, now| g.hibernating_record_upserted(now, request_id));
            }
            Orch::Delete { request_id } => {
                self.records.remove(&request_id);
            }
            Orch::Sleep { actor, reply } => self.sleep(&actor, reply),
            Orch::DoStart { actor } => self.do_start(&actor),
            Orch::ReceiveError { error } => {
                *self.snapshot.receive_errors.entry(error).or_insert(0) += 1;
            }
            Orch::Snapshot { reply } => {
                let mut s = self.snapshot.clone();
                s.requests = self.requests.len();
                s.records = self.records.len();
                s.client_messages = self.client_messages.load(Ordering::Relaxed);
                s.accept_errors = self.accept_errors.load(Ordering::Relaxed);
                let _ = reply.send(s);
            }
        }
    }

    /// Schedules a start of a stopped actor after `delay` (its cold start), or later after
    /// failed starts (10 ms doubling, at most 2 s).
    fn want_running(&mut self, actor: &str, delay: Duration) {
        let p = self.placement(actor);
        if p.phase != Phase::Stopped || p.start_pending {
            return;
        }
        let backoff = match p.start_failures {
            0 => Duration::ZERO,
            n => Duration::from_millis(10 << n.min(8)).min(Duration::from_secs(2)),
        };
        let delay = delay.max(backoff);
        p.start_pending = true;
        let tx = self.tx.clone();
        let actor = actor.to_string();
        if delay.is_zero() {
            let _ = tx.send(Orch::DoStart { actor });
        } else {
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = tx.send(Orch::DoStart { actor });
            });
        }
    }

    /// Starts the actor on the newest runner (or waits for one).
    fn do_start(&mut self, actor: &str) {
        let Some((&route, _)) = self.runners.iter().next_back() else {
            return; // start_pending stays set: RunnerUp retries
        };
        let hibernating: Vec<([u8; 4], [u8; 4])> = self
            .records
            .iter()
            .filter(|(_, a)| a.as_str() == actor)
            .map(|(r, _)| (*b"demo", r.0))
            .collect();
        let p = self.placement(actor);
        if p.phase != Phase::Stopped {
            return;
        }
        p.start_pending = false;
        p.phase = Phase::Starting(route);
        self.log(format!("actor {actor}: starting on route {}", route.0));
        self.snapshot.starts += 1;
        // The actor's hibernating requests accept the restore's answers from this runner (and
        // no other connection) until they are woken here.
        let requests: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, a)| a.as_str() == actor)
            .map(|(r, _)| *r)
            .collect();
        for request_id in requests {
            let _ = self
                .gw
                .call(|g, now| g.actor_starting(now, request_id, route));
        }
        self.send(
            route,
            &Control::Start {
                actor: actor.into(),
                hibernating,
            },
        );
    }

    fn set_running(&self, actor: &str, running: bool) {
        if actor == self.scheduled_actor {
            self.running.store(running, Ordering::Relaxed);
        }
    }

    fn sleep(&mut self, actor: &str, reply: Option<oneshot::Sender<()>>) {
        self.set_running(actor, false);
        let p = self.placement(actor);
        match p.phase {
            Phase::Running(route) => {
                p.phase = Phase::Stopping(route);
                p.sleepers.extend(reply);
                self.log(format!("actor {actor}: sleep"));
                self.send(
                    route,
                    &Control::Stop {
                        actor: actor.into(),
                    },
                );
            }
            // The client keeps streaming while the actor is away (the gateway buffers), so
            // later sleeps come due meanwhile: each waits for the next start.
            Phase::Stopping(_) | Phase::Stopped | Phase::Starting(_) => {
                p.deferred_sleeps.push(reply);
            }
        }
    }

    /// The actor stopped (it slept, or its runner is gone): its requests hibernate.
    fn stopped(&mut self, actor: &str) {
        self.log(format!("actor {actor} stopped"));
        self.set_running(actor, false);
        let p = self.placement(actor);
        p.phase = Phase::Stopped;
        let sleepers = std::mem::take(&mut p.sleepers);
        let requests: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, a)| a.as_str() == actor)
            .map(|(r, _)| *r)
            .collect();
        for request_id in requests {
            let _ = self.gw.call(|g, now| g.actor_stopped(now, request_id));
        }
        for s in sleepers {
            let _ = s.send(());
        }
        // Clients still waiting for the actor, or wakes not served yet (it stopped while
        // starting): start it again.
        let p = self.placement(actor);
        if !p.waiters.is_empty() || p.wake_wanted {
            self.want_running(actor, self.cold_start);
        }
    }

    fn send(&self, route: RouteId, c: &Control) {
        if let Some(tx) = lock(&self.routes).get(&route) {
            let _ = tx.push(LinkOut(Message::text(c.to_text())));
        }
    }
}
