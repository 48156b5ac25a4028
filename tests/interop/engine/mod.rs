//! A minimal Rivet-style engine around `hibernating_ws::gateway::Gateway`, for the interop test:
//! it serves a runner WebSocket (`/runners/connect`, plain `ToClient`/`ToServer` frames), speaks
//! the control part of runner protocol v7 (init, commands with checkpoints, events and their
//! acks, ping/pong, actor KV), places actors on the one runner, keeps the hibernating-request
//! records, and drives the gateway: open once the actor runs, `actor_stopped` for every request of
//! a stopped actor, `RequestWake` → start → `wake` on `Running`.
//!
//! Clients are in-process: [`Client`] talks to the gateway engine through the engine task.
//!
//! Everything runs on one task that owns all the state, so no lock is needed and the engine sees
//! one totally ordered stream of inputs.

mod kv;
mod server;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use hibernating_ws::gateway::{Action, CloseReason, Gateway, OpenRequest, Phase, RouteId};
use hibernating_ws::wire::{
    self, DecodeLimits, GatewayId, Headers, RequestId, ToGatewayPong, ToRunner,
};
use hibernating_ws::{Clock, CloseFrame, Timestamp};
use tokio::sync::mpsc;

use crate::proto::{
    self, ActorCheckpoint, Command, Event, EventWrapper, KvRequest, KvResponse, ToClient, ToServer,
};

pub use server::{Client, EngineHandle, start};

/// The gateway id of the engine's gateway.
pub const GATEWAY_ID: GatewayId = GatewayId([0xa1, 0xb2, 0xc3, 0xd4]);

/// How often the engine pings the runner.
const RUNNER_PING_INTERVAL: Duration = Duration::from_secs(1);

/// What a client sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The runner accepted the WebSocket.
    Opened {
        /// Whether it can hibernate.
        hibernatable: bool,
    },
    /// A message from the actor.
    Message(Vec<u8>),
    /// The gateway closed the client with this frame.
    Close(CloseFrame),
    /// The request hibernated (not a frame: the test's view of the gateway).
    Hibernated,
    /// The request is gone, for this reason (not a frame: the test's view of the gateway).
    Closed(CloseReason),
    /// The open was refused.
    OpenFailed(String),
}

type Inspect = Box<dyn FnOnce(&mut State) + Send>;

enum Input {
    RunnerUp {
        conn: u64,
        tx: mpsc::UnboundedSender<Vec<u8>>,
    },
    RunnerFrame {
        conn: u64,
        bytes: Vec<u8>,
    },
    RunnerDown {
        conn: u64,
    },
    Open {
        actor: String,
        path: String,
        request_id: RequestId,
        events: mpsc::UnboundedSender<ClientEvent>,
    },
    Message {
        request_id: RequestId,
        data: Vec<u8>,
    },
    Inspect(Inspect),
    Shutdown,
}

/// Counters of the engine (the gateway has its own [`hibernating_ws::gateway::GatewayStats`]).
#[derive(Debug, Clone, Default)]
pub struct EngineStats {
    /// `ToServer` frames that did not decode.
    pub malformed_frames: u64,
    /// Non-binary frames from the runner.
    pub text_frames: u64,
    /// Runner inits.
    pub inits: u64,
    /// Actor starts (commands sent).
    pub starts: u64,
    /// Stop commands sent.
    pub stop_commands: u64,
    /// Stops reported, by `StopCode` (`true` = Ok).
    pub stops_ok: u64,
    /// Stops reported with `StopCode::Error`.
    pub stops_error: u64,
    /// Sleep intents.
    pub sleep_intents: u64,
    /// Events for another generation or already seen.
    pub stale_events: u64,
    /// KV requests served.
    pub kv_requests: u64,
    /// KV requests answered with an error.
    pub kv_errors: u64,
    /// Pongs from the runner.
    pub runner_pongs: u64,
    /// Tunnel messages the gateway dropped, by error.
    pub receive_errors: BTreeMap<String, u64>,
    /// The request of every tunnel message the gateway dropped.
    pub dropped: Vec<RequestId>,
    /// Client messages the gateway refused.
    pub send_errors: u64,
    /// Publishes to a route with no runner.
    pub publish_dropped: u64,
    /// Requests collected by the gateway (any `Collected` reason).
    pub collected: Vec<RequestId>,
    /// Every request's close reason.
    pub closed: BTreeMap<RequestId, CloseReason>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ActorPhase {
    Stopped,
    Starting,
    Running,
    Stopping,
}

#[derive(Debug)]
struct Actor {
    generation: u32,
    phase: ActorPhase,
    next_command: i64,
    last_event: Option<i64>,
    requests: BTreeSet<RequestId>,
    waiting_opens: Vec<(RequestId, String)>,
    wake_wanted: bool,
}

impl Default for Actor {
    fn default() -> Self {
        Self {
            generation: 0,
            phase: ActorPhase::Stopped,
            next_command: 0,
            last_event: None,
            requests: BTreeSet::new(),
            waiting_opens: Vec::new(),
            wake_wanted: false,
        }
    }
}

struct RunnerConn {
    conn: u64,
    route: RouteId,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    up: bool,
}

/// Gateway calls made while handling gateway actions, run after the drain.
enum Deferred {
    Pong(RouteId, ToGatewayPong),
    RecordUpserted(RequestId),
    Wake(RequestId),
    ActorStopped(RequestId),
}

/// The engine's state, owned by its task. Tests read it through [`EngineHandle::inspect`].
pub struct State {
    clock: Clock,
    /// The gateway engine.
    pub gateway: Gateway,
    runner: Option<RunnerConn>,
    actors: BTreeMap<String, Actor>,
    records: BTreeMap<String, BTreeSet<RequestId>>,
    request_actor: BTreeMap<RequestId, String>,
    /// Actor KV, per actor.
    pub kv: BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>,
    clients: BTreeMap<RequestId, mpsc::UnboundedSender<ClientEvent>>,
    deferred: VecDeque<Deferred>,
    /// Counters.
    pub stats: EngineStats,
    next_runner_ping: Timestamp,
}

impl State {
    /// The phase of a live request.
    pub fn phase(&self, request_id: RequestId) -> Option<Phase> {
        self.gateway.request(request_id).map(|r| r.phase)
    }

    /// Whether a runner is connected and initialised.
    pub fn runner_up(&self) -> bool {
        self.route().is_some()
    }

    /// A client message, handed to the gateway now (several calls in one
    /// [`EngineHandle::inspect`] are atomic with respect to the runner).
    pub fn client_message(&mut self, request_id: RequestId, text: &str) {
        let now = self.now();
        if self
            .gateway
            .client_message(now, request_id, text.as_bytes(), false)
            .is_err()
        {
            self.stats.send_errors += 1;
        }
    }

    /// A client close, handed to the gateway now.
    pub fn client_close(&mut self, request_id: RequestId, frame: Option<CloseFrame>) {
        let now = self.now();
        let _ = self.gateway.client_close(now, request_id, frame);
    }

    /// The actor's KV entries under `prefix`, keys as text.
    pub fn kv_prefix(&self, actor: &str, prefix: &str) -> Vec<(String, Vec<u8>)> {
        self.kv
            .get(actor)
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.starts_with(prefix.as_bytes()))
            .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), v.clone()))
            .collect()
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn send_runner(&mut self, msg: &ToClient) {
        if let Some(r) = &self.runner {
            let _ = r.tx.send(proto::encode_to_client(msg));
        }
    }

    fn client(&self, request_id: RequestId, event: ClientEvent) {
        if let Some(c) = self.clients.get(&request_id) {
            let _ = c.send(event);
        }
    }

    fn route(&self) -> Option<RouteId> {
        self.runner.as_ref().filter(|r| r.up).map(|r| r.route)
    }

    // ---------------------------------------------------------------------------------------
    // Actors
    // ---------------------------------------------------------------------------------------

    fn start_actor(&mut self, actor_id: &str) {
        let up = self.route().is_some();
        let hibernating: Vec<_> = self
            .records
            .get(actor_id)
            .into_iter()
            .flatten()
            .map(|r| (GATEWAY_ID.0, r.0))
            .collect();
        let actor = self.actors.entry(actor_id.to_string()).or_default();
        if !up {
            actor.wake_wanted = true;
            return;
        }
        actor.generation += 1;
        actor.phase = ActorPhase::Starting;
        actor.wake_wanted = false;
        actor.last_event = None;
        let checkpoint = ActorCheckpoint {
            actor_id: actor_id.to_string(),
            generation: actor.generation,
            index: actor.next_command,
        };
        actor.next_command += 1;
        self.stats.starts += 1;
        let command = Command::Start {
            name: actor_id.to_string(),
            hibernating,
        };
        self.send_runner(&ToClient::Commands(vec![(checkpoint, command)]));
    }

    fn stop_actor(&mut self, actor_id: &str) {
        let Some(actor) = self.actors.get_mut(actor_id) else {
            return;
        };
        if actor.phase != ActorPhase::Running {
            return;
        }
        actor.phase = ActorPhase::Stopping;
        let checkpoint = ActorCheckpoint {
            actor_id: actor_id.to_string(),
            generation: actor.generation,
            index: actor.next_command,
        };
        actor.next_command += 1;
        self.stats.stop_commands += 1;
        self.send_runner(&ToClient::Commands(vec![(checkpoint, Command::Stop)]));
    }

    /// The actor is gone: every request of it hibernates (or closes), and it starts again if
    /// something waits for it.
    fn actor_gone(&mut self, actor_id: &str) {
        let Some(actor) = self.actors.get_mut(actor_id) else {
            return;
        };
        actor.phase = ActorPhase::Stopped;
        for r in &actor.requests {
            self.deferred.push_back(Deferred::ActorStopped(*r));
        }
        if actor.wake_wanted || !actor.waiting_opens.is_empty() {
            self.start_actor(actor_id);
        }
    }

    fn on_event(&mut self, w: &EventWrapper) {
        let actor_id = w.checkpoint.actor_id.clone();
        let Some(actor) = self.actors.get_mut(&actor_id) else {
            self.stats.stale_events += 1;
            return;
        };
        if w.checkpoint.generation != actor.generation
            || actor.last_event.is_some_and(|l| w.checkpoint.index <= l)
        {
            self.stats.stale_events += 1;
            return;
        }
        actor.last_event = Some(w.checkpoint.index);
        match w.event {
            Event::Intent { sleep } => {
                if sleep {
                    self.stats.sleep_intents += 1;
                }
                self.stop_actor(&actor_id);
            }
            Event::Running => {
                if actor.phase != ActorPhase::Starting {
                    return;
                }
                actor.phase = ActorPhase::Running;
                let opens = std::mem::take(&mut actor.waiting_opens);
                let requests: Vec<_> = actor.requests.iter().copied().collect();
                for r in requests {
                    if self.phase(r) == Some(Phase::Hibernating) {
                        self.deferred.push_back(Deferred::Wake(r));
                    }
                }
                for (request_id, path) in opens {
                    self.open(&actor_id, request_id, path);
                }
            }
            Event::Stopped { ok, .. } => {
                if ok {
                    self.stats.stops_ok += 1;
                } else {
                    // The official runner reports every stop as an error (only a destroy or a
                    // drain is `Ok`): a stop this engine asked for is a sleep whatever the code.
                    self.stats.stops_error += 1;
                }
                self.actor_gone(&actor_id);
            }
            Event::SetAlarm { .. } => {}
        }
    }

    fn open(&mut self, actor_id: &str, request_id: RequestId, path: String) {
        let Some(route) = self.route() else { return };
        let now = self.now();
        let open = OpenRequest {
            actor_id: actor_id.to_string(),
            path,
            headers: Headers::new(),
        };
        match self.gateway.open(now, request_id, route, open) {
            Ok(()) => {
                if let Some(a) = self.actors.get_mut(actor_id) {
                    a.requests.insert(request_id);
                }
            }
            Err(e) => self.client(request_id, ClientEvent::OpenFailed(e.to_string())),
        }
    }

    // ---------------------------------------------------------------------------------------
    // Runner frames
    // ---------------------------------------------------------------------------------------

    fn on_runner_frame(&mut self, conn: u64, bytes: &[u8]) {
        let Some(route) = self
            .runner
            .as_ref()
            .filter(|r| r.conn == conn)
            .map(|r| r.route)
        else {
            return;
        };
        let Ok(msg) = proto::decode_to_server(bytes) else {
            self.stats.malformed_frames += 1;
            return;
        };
        match msg {
            ToServer::Init(_) => {
                self.stats.inits += 1;
                if let Some(r) = self.runner.as_mut() {
                    r.up = true;
                }
                self.send_runner(&ToClient::Init {
                    runner_id: format!("runner-{conn}"),
                    runner_lost_threshold: 10_000,
                    actor_stop_threshold: 30_000,
                });
                let waiting: Vec<_> = self
                    .actors
                    .iter()
                    .filter(|(_, a)| a.wake_wanted || !a.waiting_opens.is_empty())
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in waiting {
                    self.start_actor(&id);
                }
            }
            ToServer::Events(events) => {
                let mut acked: BTreeMap<String, ActorCheckpoint> = BTreeMap::new();
                for w in events {
                    acked.insert(w.checkpoint.actor_id.clone(), w.checkpoint.clone());
                    self.on_event(&w);
                }
                self.send_runner(&ToClient::AckEvents(acked.into_values().collect()));
            }
            ToServer::AckCommands(_) | ToServer::Stopping => {}
            ToServer::Pong { .. } => self.stats.runner_pongs += 1,
            ToServer::KvRequest {
                actor_id,
                request_id,
                data,
            } => {
                self.stats.kv_requests += 1;
                let data = self.kv(&actor_id, data);
                if matches!(data, KvResponse::Error(_)) {
                    self.stats.kv_errors += 1;
                }
                self.send_runner(&ToClient::KvResponse { request_id, data });
            }
            ToServer::Tunnel => match wire::decode::<wire::ToServer>(bytes) {
                Ok(wire::ToServer::TunnelMessage(m)) => {
                    let now = self.now();
                    let (kind, request_id) = (kind_name(&m.kind), m.message_id.request_id);
                    if let Err(e) = self.gateway.handle_runner_message(now, route, m) {
                        *self
                            .stats
                            .receive_errors
                            .entry(format!("{e:?} {kind}"))
                            .or_default() += 1;
                        self.stats.dropped.push(request_id);
                    }
                }
                Ok(_) | Err(_) => self.stats.malformed_frames += 1,
            },
        }
    }

    fn kv(&mut self, actor_id: &str, request: KvRequest) -> KvResponse {
        kv::apply(self.kv.entry(actor_id.to_string()).or_default(), request)
    }

    fn runner_down(&mut self, conn: u64) {
        if self.runner.as_ref().is_none_or(|r| r.conn != conn) {
            return;
        }
        self.runner = None;
        let live: Vec<_> = self
            .actors
            .iter()
            .filter(|(_, a)| a.phase != ActorPhase::Stopped)
            .map(|(id, _)| id.clone())
            .collect();
        for id in live {
            self.actor_gone(&id);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Gateway actions
    // ---------------------------------------------------------------------------------------

    fn drain(&mut self) {
        loop {
            while let Some(action) = self.gateway.poll_action() {
                self.on_action(action);
            }
            let Some(d) = self.deferred.pop_front() else {
                return;
            };
            let now = self.now();
            // Errors: the request is gone or not in the phase the call needs; nothing to do.
            match d {
                Deferred::Pong(route, pong) => {
                    let _ = self.gateway.handle_pong(now, route, pong);
                }
                Deferred::RecordUpserted(r) => {
                    let _ = self.gateway.hibernating_record_upserted(now, r);
                }
                Deferred::ActorStopped(r) => {
                    let _ = self.gateway.actor_stopped(now, r);
                }
                Deferred::Wake(r) => {
                    if let Some(route) = self.route() {
                        let _ = self.gateway.wake(now, r, route);
                    }
                }
            }
        }
    }

    fn on_action(&mut self, action: Action) {
        match action {
            Action::Publish { route, frame, .. } => {
                if self.route() != Some(route) {
                    self.stats.publish_dropped += 1;
                    return;
                }
                // A versioned `ToRunner` tunnel message (tag 4) is a `ToClient` tunnel message
                // (tag 4) once its version prefix is gone; a ping is answered here, as
                // pegboard-runner does (`ToRunner` tag 0 would be `ToClientInit`).
                match frame.get(wire::VERSION_PREFIX_LEN) {
                    Some(4) => {
                        if let Some(r) = &self.runner {
                            let _ = r.tx.send(frame[wire::VERSION_PREFIX_LEN..].to_vec());
                        }
                    }
                    _ => {
                        if let Ok((_, ToRunner::Ping(p))) =
                            wire::decode_versioned::<ToRunner>(&frame, &DecodeLimits::default())
                        {
                            let pong = ToGatewayPong {
                                request_id: p.request_id,
                                ts: p.ts,
                            };
                            self.deferred.push_back(Deferred::Pong(route, pong));
                        }
                    }
                }
            }
            Action::SendToClient {
                request_id, data, ..
            } => {
                self.client(request_id, ClientEvent::Message(data));
            }
            Action::CloseClient { request_id, frame } => {
                self.client(request_id, ClientEvent::Close(frame));
            }
            Action::Opened {
                request_id,
                hibernatable,
            } => {
                self.client(request_id, ClientEvent::Opened { hibernatable });
            }
            Action::Hibernated { request_id } => self.client(request_id, ClientEvent::Hibernated),
            Action::RequestWake {
                request_id,
                actor_id,
            } => {
                let phase = self.actors.get(&actor_id).map(|a| a.phase);
                match phase {
                    Some(ActorPhase::Running) => {
                        self.deferred.push_back(Deferred::Wake(request_id));
                    }
                    Some(ActorPhase::Stopped) | None => self.start_actor(&actor_id),
                    Some(ActorPhase::Starting | ActorPhase::Stopping) => {
                        self.actors.entry(actor_id).or_default().wake_wanted = true;
                    }
                }
            }
            Action::UpsertHibernatingRecord {
                request_id,
                actor_id,
            } => {
                self.records.entry(actor_id).or_default().insert(request_id);
                self.deferred
                    .push_back(Deferred::RecordUpserted(request_id));
            }
            Action::DeleteHibernatingRecord {
                request_id,
                actor_id,
            } => {
                if let Some(r) = self.records.get_mut(&actor_id) {
                    r.remove(&request_id);
                }
            }
            Action::Closed { request_id, reason } => {
                if matches!(reason, CloseReason::Collected(_)) {
                    self.stats.collected.push(request_id);
                }
                self.stats.closed.insert(request_id, reason.clone());
                let actor = self.request_actor.remove(&request_id);
                if let Some(a) = actor.and_then(|a| self.actors.get_mut(&a)) {
                    a.requests.remove(&request_id);
                }
                if let Some(c) = self.clients.remove(&request_id) {
                    let _ = c.send(ClientEvent::Closed(reason));
                }
            }
            _ => {}
        }
    }

    // ---------------------------------------------------------------------------------------
    // Inputs
    // ---------------------------------------------------------------------------------------

    fn on_input(&mut self, input: Input) -> bool {
        let now = self.now();
        match input {
            Input::RunnerUp { conn, tx } => {
                if self.runner.is_some() {
                    return true; // one runner at a time; the newcomer gets nothing
                }
                self.runner = Some(RunnerConn {
                    conn,
                    route: RouteId(conn),
                    tx,
                    up: false,
                });
            }
            Input::RunnerFrame { conn, bytes } => self.on_runner_frame(conn, &bytes),
            Input::RunnerDown { conn } => self.runner_down(conn),
            Input::Open {
                actor,
                path,
                request_id,
                events,
            } => {
                self.clients.insert(request_id, events);
                self.request_actor.insert(request_id, actor.clone());
                let phase = self.actors.entry(actor.clone()).or_default().phase;
                if phase == ActorPhase::Running {
                    self.open(&actor, request_id, path);
                } else {
                    let a = self.actors.entry(actor.clone()).or_default();
                    a.waiting_opens.push((request_id, path));
                    if phase == ActorPhase::Stopped {
                        self.start_actor(&actor);
                    }
                }
            }
            Input::Message { request_id, data } => {
                if self
                    .gateway
                    .client_message(now, request_id, &data, false)
                    .is_err()
                {
                    self.stats.send_errors += 1;
                }
            }
            Input::Inspect(f) => f(self),
            Input::Shutdown => return false,
        }
        true
    }
}

fn kind_name(kind: &wire::ToServerTunnelMessageKind) -> &'static str {
    use wire::ToServerTunnelMessageKind as K;
    match kind {
        K::ResponseStart(_) => "ResponseStart",
        K::ResponseChunk(_) => "ResponseChunk",
        K::ResponseAbort => "ResponseAbort",
        K::WebSocketOpen(_) => "WebSocketOpen",
        K::WebSocketMessage(_) => "WebSocketMessage",
        K::WebSocketMessageAck(_) => "WebSocketMessageAck",
        K::WebSocketClose(_) => "WebSocketClose",
    }
}
