//! The runner process: a [`RunnerDriver`] behind a WebSocket to the gateway, an actor app that
//! processes the client's stream and echoes a digest, and the actor storage.
//!
//! Tasks: the WebSocket reader (binary frames → the driver, text frames → the app as control),
//! the WebSocket writer, the driver, the app, the storage writer and a stats reporter. Killing an
//! instance aborts them all at once and fences its storage off: a crash without a final persist.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hibernating_ws::MessageIndex;
use hibernating_ws::driver::tokio::{
    AppEvents, Outbox, QueueLimits, RunnerDriver, RunnerHandle, RunnerIo,
    RunnerOptions as DriverOptions, TokioClock, outbox,
};
use hibernating_ws::runner::{Action, CloseReason, Runner, RunnerConfig, SocketId};
use hibernating_ws::wire::{GatewayId, HibernatingRequest, RequestId};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::{AbortHandle, JoinSet};
use tokio_tungstenite::connect_async_with_config;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use super::auth;
use super::control::{Control, RunnerReport};
use hibernating_ws::runner::PersistedSocket;
use hibernating_ws::storage::{Commit, StoreError, StoredSocket};
use hibernating_ws::wire::Headers;

use super::gateway::LinkOut;
use super::storage::{ActorState, Fence, Fenced, StorageKind, StreamState};

/// How to start a runner.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// `ws://host:port` of the gateway.
    pub gateway: String,
    /// The runner's name (for logs).
    pub name: String,
    /// Where the actor storage lives.
    pub data_dir: PathBuf,
    /// Which store keeps it.
    pub storage: StorageKind,
    /// The runner engine's configuration.
    pub config: RunnerConfig,
    /// How often counters are reported to the gateway.
    pub report_interval: Duration,
    /// Counts every message handed to the app, across runner incarnations of one process (a
    /// killed runner cannot report its last deliveries).
    pub delivered: Arc<AtomicU64>,
    /// Extra time the actor's storage takes to load on start (slow storage, for tests).
    pub load_delay: Duration,
    /// Buffer sizes of the WebSocket to the gateway.
    pub websocket: WebSocketConfig,
    /// The gateway's runner token, presented at connect.
    pub token: String,
}

/// Connects to the gateway's runner endpoint `url`, presenting `token` the way Rivet's runner
/// protocol carries it (`Sec-WebSocket-Protocol: rivet, rivet_token.<token>`).
///
/// # Errors
/// The connection or the handshake failed (a wrong token is refused with HTTP 401).
pub async fn connect_runner(
    url: &str,
    token: &str,
    websocket: WebSocketConfig,
) -> io::Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
> {
    let mut request = url.into_client_request().map_err(io::Error::other)?;
    let protocols =
        HeaderValue::from_str(&auth::subprotocol_header(token)).map_err(io::Error::other)?;
    request
        .headers_mut()
        .insert("sec-websocket-protocol", protocols);
    let (ws, _) = connect_async_with_config(request, Some(websocket), true)
        .await
        .map_err(io::Error::other)?;
    Ok(ws)
}

/// A running runner.
pub struct RunnerInstance {
    tasks: JoinSet<()>,
    /// The WebSocket reader and writer.
    link: Vec<AbortHandle>,
    fence: Fence,
    handle: RunnerHandle,
    ws: Outbox<LinkOut>,
    closed: tokio::sync::watch::Receiver<bool>,
    closes: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl RunnerInstance {
    /// Connects to the gateway and starts every task.
    pub async fn start(opts: RunnerOptions) -> io::Result<Self> {
        let url = format!("{}/runner", opts.gateway.trim_end_matches('/'));
        let ws = connect_runner(&url, &opts.token, opts.websocket).await?;
        let (mut ws_tx, mut ws_rx) = ws.split();
        let fence = Fence::default();
        let store = Fenced {
            store: opts.storage.open(&opts.data_dir)?,
            fence: fence.clone(),
        };
        let mut tasks = JoinSet::new();

        // WebSocket writer.
        let (out_tx, mut out_rx) = outbox::<LinkOut>(QueueLimits::LINK);
        let mut link = Vec::new();
        link.push(tasks.spawn(async move {
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
            // The gateway did not drain the link (the outbox overflowed): drop it.
            let _ = ws_tx.close().await;
        }));
        let _ = out_tx.push(LinkOut(Message::text(
            Control::Hello {
                runner: opts.name.clone(),
            }
            .to_text(),
        )));

        // The driver.
        let clock = TokioClock::new();
        let runner = Runner::new(opts.config.clone(), clock.now()).map_err(io::Error::other)?;
        let io_side = RunnerSide { ws: out_tx.clone() };
        let (driver, handle, app_rx) =
            RunnerDriver::new(runner, io_side, clock, DriverOptions::default());
        tasks.spawn(async move {
            let _ = driver.run().await;
        });

        // WebSocket reader.
        let (ctl_tx, ctl_rx) = unbounded_channel();
        let (closed_tx, closed) = tokio::sync::watch::channel(false);
        let h = handle.clone();
        link.push(tasks.spawn(async move {
            while let Some(Ok(msg)) = ws_rx.next().await {
                match msg {
                    Message::Binary(b) => {
                        let delivered = h.frame(&b).await;
                        if delivered.is_err() {
                            break;
                        }
                    }
                    Message::Text(t) => {
                        if let Some(c) = Control::from_text(t.as_str()) {
                            let _ = ctl_tx.send(c);
                        }
                    }
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            let _ = closed_tx.send(true);
        }));

        // Storage writer.
        let (write_tx, write_rx) = unbounded_channel();
        let (done_tx, done_rx) = unbounded_channel();
        tasks.spawn(storage_writer(store.clone(), write_rx, done_tx));

        // The app.
        let closes = Arc::new(Mutex::new(BTreeMap::new()));
        let closes_for_instance = closes.clone();
        let app = App {
            handle: handle.clone(),
            ws: out_tx.clone(),
            store,
            writes: write_tx,
            actors: BTreeMap::new(),
            socket_actor: BTreeMap::new(),
            failed_starts: BTreeMap::new(),
            closes: closes.clone(),
            delivered: opts.delivered.clone(),
            load_delay: opts.load_delay,
        };
        tasks.spawn(app.run(app_rx, ctl_rx, done_rx));

        // Stats reporter.
        let (h, ws) = (handle.clone(), out_tx.clone());
        let interval = opts.report_interval;
        tasks.spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(report) = report(&h, &closes) else {
                    return;
                };
                if ws
                    .push(LinkOut(Message::text(Control::Stats(report).to_text())))
                    .is_err()
                {
                    return;
                }
            }
        });

        Ok(Self {
            tasks,
            link,
            fence,
            handle,
            ws: out_tx,
            closed,
            closes: closes_for_instance,
        })
    }

    /// The driver's handle.
    pub fn handle(&self) -> &RunnerHandle {
        &self.handle
    }

    /// Crashes the runner: storage is fenced off (no write lands from now on), every task is
    /// aborted and the engine dropped. Nothing is persisted or published any more.
    pub fn kill(mut self) {
        self.fence.kill();
        self.tasks.abort_all();
    }

    /// Drops the link to the gateway abruptly (its reader and writer end, the gateway sees the
    /// connection close) while the engine, the app and the storage writer run on for `grace`:
    /// persists in flight land, their acks are lost with the link. Then the runner stops as a
    /// runner that lost its gateway does: storage fenced off, every task ended.
    pub async fn drop_link(mut self, grace: Duration) {
        for task in &self.link {
            task.abort();
        }
        tokio::time::sleep(grace).await;
        self.fence.kill();
        self.handle.shutdown();
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Waits until the gateway closes the connection.
    pub async fn wait_closed(&mut self) {
        let _ = self.closed.wait_for(|c| *c).await;
    }

    /// Sends a last stats report, closes the connection and stops every task.
    pub async fn shutdown(mut self) -> Option<RunnerReport> {
        let r = report(&self.handle, &self.closes);
        if let Some(r) = &r {
            let _ = self
                .ws
                .push(LinkOut(Message::text(Control::Stats(r.clone()).to_text())));
        }
        let _ = self.ws.push(LinkOut(Message::Close(None)));
        let _ = tokio::time::timeout(Duration::from_secs(2), self.wait_closed()).await;
        self.handle.shutdown();
        self.tasks.abort_all();
        r
    }
}

/// The counters of this runner as a report.
fn report(h: &RunnerHandle, closes: &Mutex<BTreeMap<String, u64>>) -> Option<RunnerReport> {
    let s = h.call(|r, _| r.stats()).ok()?;
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

/// The [`RunnerIo`] sink: tunnel frames to the WebSocket writer (the app gets the rest through
/// its [`AppEvents`]).
struct RunnerSide {
    ws: Outbox<LinkOut>,
}

impl RunnerIo for RunnerSide {
    fn publish(&mut self, _gateway_id: GatewayId, frame: Vec<u8>) {
        let _ = self.ws.push(LinkOut(Message::Binary(Bytes::from(frame))));
    }
}

/// A commit to an actor's record; `done` is reported to the app once it is durable.
struct WriteJob {
    actor_id: String,
    commit: Commit,
    done: Option<(SocketId, MessageIndex)>,
}

/// A persist's outcome: the socket, the index, whether it is durable.
type Done = (SocketId, MessageIndex, bool);

/// The queued commits of one actor merged into one, with the persists it completes.
type Merged = (String, Commit, Vec<(SocketId, MessageIndex)>);

/// Commits in order, merging queued commits of one actor into one (applying them one after the
/// other is the same as applying their concatenation), so a burst costs one sync.
async fn storage_writer(
    store: Fenced,
    mut jobs: UnboundedReceiver<WriteJob>,
    done: UnboundedSender<Done>,
) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while let Ok(job) = jobs.try_recv() {
            batch.push(job);
        }
        let mut merged: Vec<Merged> = Vec::new();
        for job in batch {
            let i = if let Some(i) = merged.iter().position(|(a, ..)| *a == job.actor_id) {
                i
            } else {
                merged.push((job.actor_id, Commit::new(), Vec::new()));
                merged.len() - 1
            };
            let entry = &mut merged[i];
            entry.1.sockets.extend(job.commit.sockets);
            if job.commit.state.is_some() {
                entry.1.state = job.commit.state;
            }
            entry.2.extend(job.done);
        }
        for (actor, commit, completions) in merged {
            let store = store.clone();
            let ok = tokio::task::spawn_blocking(move || store.commit(&actor, &commit))
                .await
                .is_ok_and(|r| r.is_ok());
            for (socket, index) in completions {
                let _ = done.send((socket, index, ok));
            }
        }
    }
}

/// One actor on this runner.
struct ActorApp {
    /// The actor's own state (its last finished streams), as committed.
    state: ActorState,
    /// Live state per socket (ahead of the store until the next persist).
    live: BTreeMap<SocketId, Live>,
}

struct Live {
    state: StreamState,
    path: String,
    headers: Headers,
    /// The store holds a record of this socket (a commit of it succeeded).
    stored: bool,
}

/// The actor app: accepts sockets, processes messages, persists state with the index.
struct App {
    handle: RunnerHandle,
    ws: Outbox<LinkOut>,
    store: Fenced,
    writes: UnboundedSender<WriteJob>,
    actors: BTreeMap<String, ActorApp>,
    socket_actor: BTreeMap<SocketId, String>,
    /// Actors whose start was stopped because their storage did not load, with the error.
    failed_starts: BTreeMap<String, String>,
    closes: Arc<Mutex<BTreeMap<String, u64>>>,
    delivered: Arc<AtomicU64>,
    load_delay: Duration,
}

impl App {
    async fn run(
        mut self,
        mut actions: AppEvents,
        mut control: UnboundedReceiver<Control>,
        mut done: UnboundedReceiver<Done>,
    ) {
        loop {
            tokio::select! {
                Some(a) = actions.recv() => self.action(a),
                Some(c) = control.recv() => self.control(c).await,
                Some((socket, index, ok)) = done.recv() => {
                    let _ = if ok {
                        if let Some(live) = self.live_mut(socket) {
                            live.stored = true;
                        }
                        self.handle.call(|r, now| r.persisted(now, socket, index))
                    } else {
                        self.handle.call(|r, now| r.persist_failed(now, socket, index))
                    };
                }
                else => return,
            }
        }
    }

    fn send_control(&self, c: &Control) {
        let _ = self.ws.push(LinkOut(Message::text(c.to_text())));
    }

    async fn control(&mut self, c: Control) {
        match c {
            Control::Start { actor, hibernating } => self.start(actor, hibernating).await,
            Control::Stop { actor } => {
                let _ = self.handle.call(|r, now| r.actor_stopping(now, &actor));
            }
            _ => {}
        }
    }

    async fn start(&mut self, actor: String, hibernating: Vec<([u8; 4], [u8; 4])>) {
        let list: Vec<HibernatingRequest> = hibernating
            .into_iter()
            .map(|(g, r)| HibernatingRequest {
                gateway_id: GatewayId(g),
                request_id: RequestId(r),
            })
            .collect();
        if self
            .handle
            .call(|r, now| r.actor_starting(now, &actor, list))
            .is_err()
        {
            return;
        }
        // The gateway may wake the actor's requests now: their replay queues in the runner
        // until the restore below, which overlaps the storage load with the replay. (Waking
        // after the restore works too: a hibernating request accepts the restore's re-acks and
        // closes from any route.) The queue must hold a whole replay: see
        // `scenario::runner_config`.
        self.send_control(&Control::Started {
            actor: actor.clone(),
        });
        if !self.load_delay.is_zero() {
            tokio::time::sleep(self.load_delay).await;
        }
        let store = self.store.clone();
        let a = actor.clone();
        let loaded = tokio::task::spawn_blocking(move || store.load(&a)).await;
        let loaded = loaded.unwrap_or_else(|e| {
            Err(StoreError::Io {
                actor_id: actor.clone(),
                source: io::Error::other(e),
            })
        });
        let app = loaded.and_then(|record| {
            let state =
                ActorState::decode(&record.state).map_err(|detail| StoreError::Corrupt {
                    actor_id: actor.clone(),
                    detail,
                })?;
            let mut live = BTreeMap::new();
            for s in &record.sockets {
                let state =
                    StreamState::decode(&s.state).map_err(|detail| StoreError::Corrupt {
                        actor_id: actor.clone(),
                        detail,
                    })?;
                let l = Live {
                    state,
                    path: s.meta.path.clone(),
                    headers: s.meta.headers.clone(),
                    stored: true,
                };
                live.insert(s.meta.socket, l);
            }
            Ok((ActorApp { state, live }, record.persisted()))
        });
        match app {
            Ok((app, persisted)) => {
                for socket in app.live.keys() {
                    self.socket_actor.insert(*socket, actor.clone());
                }
                self.actors.insert(actor.clone(), app);
                let _ = self.handle.call(|r, now| r.restore(now, &actor, persisted));
            }
            Err(e) => {
                // Never run the actor on an empty state: its hibernated sockets would be
                // closed normally while their acked messages sit in the unreadable record.
                // The start stops; the gateway keeps the requests hibernating.
                eprintln!("[runner] actor {actor}: storage did not load: {e}");
                self.failed_starts.insert(actor.clone(), e.to_string());
                let _ = self.handle.call(|r, now| r.actor_stopping(now, &actor));
            }
        }
    }

    fn action(&mut self, action: Action) {
        match action {
            Action::Open {
                socket,
                actor_id,
                path,
                headers,
                ..
            } => {
                let Some(app) = self.actors.get_mut(&actor_id) else {
                    let frame = hibernating_ws::CloseFrame::new(1011, "no such actor");
                    let _ = self.handle.call(|r, now| r.reject(now, socket, frame));
                    return;
                };
                let live = Live {
                    state: StreamState::default(),
                    path,
                    headers,
                    stored: false,
                };
                app.live.insert(socket, live);
                self.socket_actor.insert(socket, actor_id);
                let _ = self.handle.call(|r, now| r.accept(now, socket, true));
            }
            Action::Message { socket, data, .. } => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                let Some(live) = self.live_mut(socket) else {
                    return;
                };
                live.state.process(&data);
                let seq = super::payload::seq_of(&data).unwrap_or(u64::MAX);
                let echo = format!("{seq} {} {:016x}", live.state.count, live.state.digest);
                let _ = self
                    .handle
                    .call(|r, now| r.send(now, socket, echo.as_bytes(), false));
            }
            Action::Persist {
                socket,
                actor_id,
                server_index,
                client_index,
            } => {
                let Some(live) = self.actors.get(&actor_id).and_then(|a| a.live.get(&socket))
                else {
                    return;
                };
                // The socket's state and its index in one commit; the record's metadata is
                // written once, on the first persist.
                let state = live.state.encode();
                let commit = if live.stored {
                    Commit::new().advance(socket, server_index, client_index, Some(state))
                } else {
                    let meta = PersistedSocket {
                        socket,
                        server_index,
                        client_index,
                        path: live.path.clone(),
                        headers: live.headers.clone(),
                    };
                    Commit::new().put(StoredSocket::new(meta, state))
                };
                let _ = self.writes.send(WriteJob {
                    actor_id,
                    commit,
                    done: Some((socket, server_index)),
                });
            }
            Action::DeleteMetadata { socket, actor_id } => {
                self.socket_actor.remove(&socket);
                let Some(app) = self.actors.get_mut(&actor_id) else {
                    return;
                };
                let state = app
                    .live
                    .remove(&socket)
                    .map(|l| l.state)
                    .unwrap_or_default();
                app.state.finish(socket, state);
                let commit = Commit::new().delete(socket).state(app.state.encode());
                let _ = self.writes.send(WriteJob {
                    actor_id,
                    commit,
                    done: None,
                });
            }
            Action::Closed { socket, reason } => {
                *self
                    .closes
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .entry(reason_name(&reason))
                    .or_insert(0) += 1;
                if matches!(reason, CloseReason::ActorStopped | CloseReason::Rejected(_))
                    && let Some(actor) = self.socket_actor.remove(&socket)
                    && let Some(app) = self.actors.get_mut(&actor)
                {
                    app.live.remove(&socket);
                }
            }
            Action::ActorStopped { actor_id } => {
                if let Some(app) = self.actors.remove(&actor_id) {
                    for socket in app.live.keys() {
                        self.socket_actor.remove(socket);
                    }
                }
                match self.failed_starts.remove(&actor_id) {
                    Some(error) => self.send_control(&Control::StartFailed {
                        actor: actor_id,
                        error,
                    }),
                    None => self.send_control(&Control::Stopped { actor: actor_id }),
                }
            }
            _ => {}
        }
    }

    fn live_mut(&mut self, socket: SocketId) -> Option<&mut Live> {
        let actor = self.socket_actor.get(&socket)?;
        self.actors.get_mut(actor)?.live.get_mut(&socket)
    }
}

/// A short name for a runner-side close reason.
pub fn reason_name(reason: &CloseReason) -> String {
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
