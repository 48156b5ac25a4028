//! [`Node`]: one engine node of the cluster — a [`Control`] in cluster mode on the tokio control
//! driver, its cluster actions carried over NATS and JetStream KV.
//!
//! Tasks of a node (all stopped by [`Node::shutdown`] or on drop):
//!
//! * **publisher**: the engine's `PublishRemote` and `ForwardToGateway` frames, in order, to
//!   their subjects ([`subjects`](super::subjects)); a frame over the server's `max_payload` is
//!   not published ([`NodeStats::too_large`]). Its queue is bounded: when NATS stalls (a broker
//!   restart) frames past [`FRAME_QUEUE`] are dropped and counted, and the protocol heals them
//!   (the gateway replays or retransmits whatever the runner did not acknowledge).
//! * **inbound**: the node's two subscriptions, `hws.runner.<node>.*` into
//!   [`Control::handle_forwarded_frame`] and `hws.gateway.<gateway>.>` into
//!   [`Control::handle_remote_frame`].
//! * **state**: the engine's `PlaceActor`, `HibernatingRecord`, `ActorRunning`, `ActorStopped`,
//!   `RunnerConnected` and `RunnerLost`, in order, into the shared state; placement claims a
//!   runner by compare-and-set (see [`SharedState::claim`]).
//! * **watch**: every placement change: a claim for a runner of this node starts the actor
//!   here ([`Control::place_here`], with every gateway's records), a running actor elsewhere
//!   gets its remote route ([`Control::running_elsewhere`]), a sleeping one stops here
//!   ([`Control::stopped_elsewhere`]).
//! * **liveness**: refreshes the node's entry and reaps actors of nodes whose entry expired.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString as _};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::sync::Mutex;

use ::tokio::sync::mpsc;
use ::tokio::task::JoinHandle;
use async_nats::jetstream;
use bytes::Bytes;
use futures_util::StreamExt as _;

use super::state::{Claim, Placement, PlacementState, RunnerEntry, SharedState, decode_placement};
use super::subjects;
use crate::control::{Action, ActorPhase, ActorSpec, Control, ControlConfig, StopReason};
use crate::driver::control::{ControlDriver, ControlHandle, ControlIo};
use crate::driver::tokio::TokioClock;
use crate::gateway::{Gateway, GatewayConfig, RouteId, SendError};
use crate::time::Timestamp;
use crate::wire::{ActorConfig, GatewayId, KvRequestData, KvResponseData};

/// Frames queued for the publisher before new ones are dropped (and healed by the protocol).
pub const FRAME_QUEUE: usize = 16 * 1024;
/// Shared-state events queued before new ones are dropped (counted in
/// [`NodeStats::state_dropped`]; a dropped placement is asked for again by the next wake).
pub const STATE_QUEUE: usize = 16 * 1024;
/// Delay before a placement that found no runner is tried again.
const PLACE_RETRY: Duration = Duration::from_millis(200);
/// Attempts of a shared-state write before it is given up (with [`PLACE_RETRY`] between them).
const MAX_STATE_ATTEMPTS: u32 = 150;

/// How a node is set up.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeConfig {
    /// The node's id: a subject token, unique in the cluster.
    pub node_id: String,
    /// The gateway id of its gateway, unique in the cluster.
    pub gateway_id: GatewayId,
    /// The control engine's configuration (`cluster` is set by [`Node::start`]).
    pub control: ControlConfig,
    /// The gateway's configuration.
    pub gateway: GatewayConfig,
    /// The runner name (pool) every actor is placed in.
    pub runner_name: String,
    /// A node whose liveness entry is this old is dead: its actors are set sleeping.
    pub node_ttl: Duration,
    /// Distinguishes this run's runner ids (see [`Control::new`]).
    pub epoch: u64,
}

impl NodeConfig {
    /// Defaults for a node: runner name `default`, a 3 s node TTL, the engines' defaults.
    #[must_use]
    pub fn new(node_id: impl Into<String>, gateway_id: GatewayId, epoch: u64) -> Self {
        Self {
            node_id: node_id.into(),
            gateway_id,
            control: ControlConfig::default(),
            gateway: GatewayConfig::default(),
            runner_name: "default".into(),
            node_ttl: Duration::from_secs(3),
            epoch,
        }
    }
}

/// Starting a node failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The node id is not a subject token.
    #[error(transparent)]
    BadToken(#[from] subjects::BadToken),
    /// An engine configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The shared state could not be opened.
    #[error(transparent)]
    State(#[from] super::StateError),
    /// A subscription failed.
    #[error("subscribing to {subject} failed: {message}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// The client's error.
        message: String,
    },
}

/// Counters of one node's cluster traffic.
#[derive(Debug, Default)]
pub struct NodeStats {
    /// Frames published to other nodes.
    pub published: AtomicU64,
    /// Frames received from other nodes and handed to the engine.
    pub received: AtomicU64,
    /// Frames the engine refused (unknown runner or route, gateway refusal).
    pub refused: AtomicU64,
    /// Frames dropped because the publisher's queue was full or the publish failed.
    pub dropped: AtomicU64,
    /// Frames over the server's `max_payload`, not published.
    pub too_large: AtomicU64,
    /// Client messages the engine refused (other than backpressure): dropped, so a client must
    /// not count them as sent.
    pub client_refused: AtomicU64,
    /// Shared-state events dropped (queue full).
    pub state_dropped: AtomicU64,
    /// Shared-state operations that failed (retried where it matters).
    pub state_errors: AtomicU64,
    /// Actors started on this node's runners.
    pub placed_here: AtomicU64,
    /// Actors of dead nodes this node set sleeping.
    pub reaped: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

enum FrameOut {
    Remote { route: RouteId, frame: Vec<u8> },
    Gateway { subject: String, frame: Vec<u8> },
}

#[derive(Clone)]
enum StateOut {
    Place(String),
    Record {
        actor_id: String,
        request: crate::wire::RequestId,
        live: bool,
    },
    Running {
        actor_id: String,
        generation: u32,
        runner_id: String,
    },
    Stopped {
        actor_id: String,
        generation: u32,
    },
    RunnerUp(String),
    RunnerLost(String),
}

struct Shared {
    node_id: String,
    gateway_id: GatewayId,
    runner_name: String,
    client: async_nats::Client,
    state: SharedState,
    /// Remote route → its runner subject.
    routes: Mutex<BTreeMap<RouteId, String>>,
    stats: NodeStats,
    /// Shared-state events, with the number of earlier failed attempts.
    state_tx: mpsc::Sender<(StateOut, u32)>,
}

/// The engine's actions the control driver does not perform, routed to the node's queues.
struct ClusterIo {
    node_id: String,
    shared: Arc<Shared>,
    frames: mpsc::Sender<FrameOut>,
}

impl ControlIo for ClusterIo {
    fn kv(&mut self, _actor_id: &str, _request: KvRequestData) -> KvResponseData {
        KvResponseData::Drop
    }

    fn send_error(&mut self, _request_id: crate::wire::RequestId, _error: &SendError) {
        bump(&self.shared.stats.client_refused);
    }

    fn event(&mut self, action: &Action) {
        let stats = &self.shared.stats;
        match action {
            Action::PublishRemote { route, frame } => {
                let out = FrameOut::Remote {
                    route: *route,
                    frame: frame.to_vec(),
                };
                if self.frames.try_send(out).is_err() {
                    bump(&stats.dropped);
                }
            }
            Action::ForwardToGateway {
                gateway_id,
                runner_id,
                frame,
            } => {
                let out = FrameOut::Gateway {
                    subject: subjects::gateway(*gateway_id, &self.node_id, runner_id),
                    frame: frame.clone(),
                };
                if self.frames.try_send(out).is_err() {
                    bump(&stats.dropped);
                }
            }
            other => {
                if let Some(out) = state_out(other)
                    && self.shared.state_tx.try_send((out, 0)).is_err()
                {
                    bump(&stats.state_dropped);
                }
            }
        }
    }
}

fn state_out(action: &Action) -> Option<StateOut> {
    Some(match action {
        Action::PlaceActor { actor_id } => StateOut::Place(actor_id.clone()),
        Action::HibernatingRecord {
            actor_id,
            request_id,
            live,
        } => StateOut::Record {
            actor_id: actor_id.clone(),
            request: *request_id,
            live: *live,
        },
        Action::ActorRunning {
            actor_id,
            generation,
            runner_id,
        } => StateOut::Running {
            actor_id: actor_id.clone(),
            generation: *generation,
            runner_id: runner_id.clone(),
        },
        Action::ActorStopped {
            actor_id,
            generation,
            reason,
        } if *reason != StopReason::Elsewhere => StateOut::Stopped {
            actor_id: actor_id.clone(),
            generation: *generation,
        },
        Action::RunnerConnected { runner_id, .. } => StateOut::RunnerUp(runner_id.clone()),
        Action::RunnerLost { runner_id } => StateOut::RunnerLost(runner_id.clone()),
        _ => return None,
    })
}

/// One engine node. See the [module docs](self).
pub struct Node {
    handle: ControlHandle,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    driver: Option<JoinHandle<Control>>,
}

impl core::fmt::Debug for Node {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Node")
            .field("node_id", &self.shared.node_id)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Starts a node on `client` (connected to the cluster's NATS server).
    ///
    /// # Errors
    /// [`NodeError`].
    pub async fn start(
        client: async_nats::Client,
        mut config: NodeConfig,
        clock: TokioClock,
    ) -> Result<Self, NodeError> {
        subjects::check_token("node", &config.node_id)?;
        config.control.cluster = true;
        let js = jetstream::new(client.clone());
        let state = SharedState::open(&js, config.node_ttl).await?;
        let now = clock.now();
        let gateway = Gateway::new(config.gateway.clone(), config.gateway_id, now)?;
        let control = Control::new(config.control.clone(), gateway, config.epoch, now)?;
        let (frames_tx, frames_rx) = mpsc::channel(FRAME_QUEUE);
        let (state_tx, state_rx) = mpsc::channel(STATE_QUEUE);
        let shared = Arc::new(Shared {
            node_id: config.node_id.clone(),
            gateway_id: config.gateway_id,
            runner_name: config.runner_name.clone(),
            client: client.clone(),
            state,
            routes: Mutex::new(BTreeMap::new()),
            stats: NodeStats::default(),
            state_tx,
        });
        let io = ClusterIo {
            node_id: config.node_id.clone(),
            shared: Arc::clone(&shared),
            frames: frames_tx,
        };
        let (handle, driver) = ControlDriver::spawn(control, io, clock);
        let runner_sub = subscribe(&client, subjects::runners_of(&config.node_id)).await?;
        let gateway_sub = subscribe(&client, subjects::gateway_of(config.gateway_id)).await?;
        shared
            .state
            .heartbeat(&config.node_id, config.gateway_id)
            .await?;
        let tasks = vec![
            ::tokio::spawn(publisher(Arc::clone(&shared), frames_rx)),
            ::tokio::spawn(inbound_runner(
                Arc::clone(&shared),
                handle.clone(),
                runner_sub,
            )),
            ::tokio::spawn(inbound_gateway(
                Arc::clone(&shared),
                handle.clone(),
                gateway_sub,
            )),
            ::tokio::spawn(state_worker(Arc::clone(&shared), handle.clone(), state_rx)),
            ::tokio::spawn(watcher(Arc::clone(&shared), handle.clone())),
            ::tokio::spawn(liveness(Arc::clone(&shared), config.node_ttl)),
        ];
        Ok(Self {
            handle,
            shared,
            tasks,
            driver: Some(driver),
        })
    }

    /// The control driver: connect runners ([`ControlHandle::runner_connected`]) and open
    /// clients ([`ControlHandle::open`], after [`ensure_actor`](Self::ensure_actor)) here.
    pub fn handle(&self) -> &ControlHandle {
        &self.handle
    }

    /// The node's id.
    pub fn node_id(&self) -> &str {
        &self.shared.node_id
    }

    /// Its gateway id.
    pub fn gateway_id(&self) -> GatewayId {
        self.shared.gateway_id
    }

    /// Its counters.
    pub fn stats(&self) -> &NodeStats {
        &self.shared.stats
    }

    /// Defines `actor_id` on this node's engine if it is not yet (every node knows every actor
    /// it serves a client of or hosts).
    ///
    /// # Errors
    /// [`Stopped`](crate::driver::control::Stopped) if the driver is gone.
    pub fn ensure_actor(&self, actor_id: &str) -> Result<(), crate::driver::control::Stopped> {
        let actor_id = actor_id.to_string();
        let name = self.shared.runner_name.clone();
        self.handle
            .call(move |c, now| ensure_actor(c, now, &actor_id, &name))
    }

    /// Puts the actor to sleep if it runs on a runner of this node (`CommandStopActor`); on any
    /// other node this does nothing. Returns whether it was asked to stop here.
    ///
    /// # Errors
    /// [`Stopped`](crate::driver::control::Stopped) if the driver is gone.
    pub fn sleep_actor(&self, actor_id: &str) -> Result<bool, crate::driver::control::Stopped> {
        let actor_id = actor_id.to_string();
        self.handle.call(move |c, now| {
            let local = c
                .actor(&actor_id)
                .and_then(|a| a.runner_id)
                .is_some_and(|r| c.runner(&r).is_some());
            local && c.stop_actor(now, &actor_id).is_ok()
        })
    }

    /// Stops every task and the driver; returns the engine.
    pub async fn shutdown(mut self) -> Option<Control> {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        self.handle.shutdown();
        match self.driver.take() {
            Some(driver) => driver.await.ok(),
            None => None,
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Some(driver) = &self.driver {
            driver.abort();
        }
    }
}

async fn subscribe(
    client: &async_nats::Client,
    subject: String,
) -> Result<async_nats::Subscriber, NodeError> {
    client
        .subscribe(subject.clone())
        .await
        .map_err(|e| NodeError::Subscribe {
            subject,
            message: e.to_string(),
        })
}

fn ensure_actor(control: &mut Control, now: Timestamp, actor_id: &str, runner_name: &str) {
    if control.actor(actor_id).is_none() {
        let spec = ActorSpec {
            runner_name: runner_name.into(),
            config: ActorConfig {
                name: actor_id.into(),
                key: None,
                create_ts: 0,
                input: None,
            },
        };
        let _ = control.create_actor(now, actor_id, spec);
    }
}

async fn publisher(shared: Arc<Shared>, mut rx: mpsc::Receiver<FrameOut>) {
    let stats = &shared.stats;
    while let Some(out) = rx.recv().await {
        let (subject, frame) = match out {
            FrameOut::Remote { route, frame } => {
                let subject = shared
                    .routes
                    .lock()
                    .ok()
                    .and_then(|r| r.get(&route).cloned());
                let Some(subject) = subject else {
                    bump(&stats.dropped);
                    continue;
                };
                (subject, frame)
            }
            FrameOut::Gateway { subject, frame } => (subject, frame),
        };
        let max = shared.client.server_info().max_payload;
        if subjects::check_size(&subject, frame.len(), max).is_err() {
            bump(&stats.too_large);
            continue;
        }
        if shared
            .client
            .publish(subject, Bytes::from(frame))
            .await
            .is_ok()
        {
            bump(&stats.published);
        } else {
            bump(&stats.dropped);
        }
    }
}

async fn inbound_runner(
    shared: Arc<Shared>,
    handle: ControlHandle,
    mut sub: async_nats::Subscriber,
) {
    while let Some(msg) = sub.next().await {
        let Some(runner_id) = subjects::parse_runner(msg.subject.as_str()) else {
            continue;
        };
        let runner_id = runner_id.to_string();
        let payload = msg.payload;
        bump(&shared.stats.received);
        let result = handle.call(move |c, now| c.handle_forwarded_frame(now, &runner_id, &payload));
        match result {
            Ok(Ok(())) => {}
            Ok(Err(_)) => bump(&shared.stats.refused),
            Err(_) => return,
        }
    }
}

async fn inbound_gateway(
    shared: Arc<Shared>,
    handle: ControlHandle,
    mut sub: async_nats::Subscriber,
) {
    while let Some(msg) = sub.next().await {
        let Some((node, runner_id)) = subjects::parse_gateway(msg.subject.as_str()) else {
            continue;
        };
        let (node, runner_id) = (node.to_string(), runner_id.to_string());
        let payload = msg.payload;
        bump(&shared.stats.received);
        let shared2 = Arc::clone(&shared);
        let result = handle.call(move |c, now| {
            let route = remote_route(&shared2, c, &node, &runner_id)?;
            c.handle_remote_frame(now, route, &payload).map_err(drop)
        });
        match result {
            Ok(Ok(())) => {}
            Ok(Err(())) => bump(&shared.stats.refused),
            Err(_) => return,
        }
    }
}

/// The route to (node, runner), remembered with its subject for the publisher.
fn remote_route(
    shared: &Shared,
    control: &mut Control,
    node: &str,
    runner_id: &str,
) -> Result<RouteId, ()> {
    let route = control.remote_route(node, runner_id).map_err(drop)?;
    if let Ok(mut routes) = shared.routes.lock() {
        routes
            .entry(route)
            .or_insert_with(|| subjects::runner(node, runner_id));
    }
    Ok(route)
}

async fn state_worker(
    shared: Arc<Shared>,
    handle: ControlHandle,
    mut rx: mpsc::Receiver<(StateOut, u32)>,
) {
    while let Some((out, attempts)) = rx.recv().await {
        let again = out.clone();
        let ok = match out {
            StateOut::Place(actor_id) => place(&shared, &handle, &actor_id).await,
            StateOut::Record {
                actor_id,
                request,
                live,
            } => shared
                .state
                .record(&actor_id, shared.gateway_id, request, live)
                .await
                .is_ok(),
            StateOut::Running {
                actor_id,
                generation,
                runner_id,
            } => {
                let expect = Placement {
                    state: PlacementState::Starting,
                    node: shared.node_id.clone(),
                    runner_id,
                    generation,
                };
                shared
                    .state
                    .transition(&actor_id, &expect, PlacementState::Running)
                    .await
                    .is_ok()
            }
            StateOut::Stopped {
                actor_id,
                generation,
            } => {
                let expect = Placement {
                    state: PlacementState::Running,
                    node: shared.node_id.clone(),
                    runner_id: String::new(),
                    generation,
                };
                shared
                    .state
                    .transition(&actor_id, &expect, PlacementState::Sleeping)
                    .await
                    .is_ok()
            }
            StateOut::RunnerUp(runner_id) => {
                let info = handle.call({
                    let id = runner_id.clone();
                    move |c, _| c.runner(&id)
                });
                match info {
                    Ok(Some(info)) => {
                        let entry = RunnerEntry {
                            node: shared.node_id.clone(),
                            name: info.name,
                            slots: info.total_slots,
                        };
                        shared
                            .state
                            .register_runner(&runner_id, &entry)
                            .await
                            .is_ok()
                    }
                    _ => true,
                }
            }
            StateOut::RunnerLost(runner_id) => shared.state.remove_runner(&runner_id).await.is_ok(),
        };
        if !ok {
            bump(&shared.stats.state_errors);
            // The broker is away (a restart): try again later, in a bounded number of attempts.
            if attempts < MAX_STATE_ATTEMPTS && !matches!(again, StateOut::Place(_)) {
                let tx = shared.state_tx.clone();
                ::tokio::spawn(async move {
                    ::tokio::time::sleep(PLACE_RETRY).await;
                    let _ = tx.send((again, attempts + 1)).await;
                });
            }
        }
    }
}

/// The actor must run: follow a placement that stands, or claim a runner for it.
async fn place(shared: &Arc<Shared>, handle: &ControlHandle, actor_id: &str) -> bool {
    let phase = handle.call({
        let id = actor_id.to_string();
        move |c, _| c.actor(&id).map(|a| a.phase)
    });
    if phase != Ok(Some(ActorPhase::Pending)) {
        // Nothing here waits for it any more.
        return true;
    }
    let Ok(current) = shared.state.placement(actor_id).await else {
        retry_place(shared, actor_id);
        return false;
    };
    if let Some((p, _)) = &current
        && p.state != PlacementState::Sleeping
    {
        follow(shared, handle, actor_id, p);
        return true;
    }
    let Some(runner) = pick_runner(shared, actor_id, current.map(|(p, _)| p.generation)).await
    else {
        retry_place(shared, actor_id);
        return true;
    };
    match shared
        .state
        .claim(actor_id, &runner.1.node, &runner.0)
        .await
    {
        Ok(Claim::Won { generation }) if runner.1.node == shared.node_id => {
            start_here(shared, handle, actor_id, &runner.0, generation).await;
            true
        }
        // The runner's node starts it when its watch sees the claim.
        Ok(Claim::Won { .. }) => true,
        Ok(Claim::Taken(p)) => {
            follow(shared, handle, actor_id, &p);
            true
        }
        Err(_) => {
            retry_place(shared, actor_id);
            false
        }
    }
}

/// Asks for the placement again a little later.
fn retry_place(shared: &Arc<Shared>, actor_id: &str) {
    let tx = shared.state_tx.clone();
    let actor_id = actor_id.to_string();
    ::tokio::spawn(async move {
        ::tokio::time::sleep(PLACE_RETRY).await;
        let _ = tx.send((StateOut::Place(actor_id), 0)).await;
    });
}

/// A registered runner of a live node: the actor's generation picks among them, so an actor
/// that wakes usually wakes on another runner than before.
async fn pick_runner(
    shared: &Shared,
    actor_id: &str,
    last_generation: Option<u32>,
) -> Option<(String, RunnerEntry)> {
    let live = shared.state.live_nodes().await.ok()?;
    let runners: Vec<_> = shared
        .state
        .runners()
        .await
        .ok()?
        .into_iter()
        .filter(|(_, r)| live.contains(&r.node) && r.name == shared.runner_name)
        .collect();
    if runners.is_empty() {
        return None;
    }
    let hash = actor_id
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let next = last_generation.map_or(0, |g| g.wrapping_add(1));
    let i = (hash.wrapping_add(next) as usize) % runners.len();
    runners.into_iter().nth(i)
}

/// Follows a standing placement: a running actor elsewhere gets its route.
fn follow(shared: &Arc<Shared>, handle: &ControlHandle, actor_id: &str, p: &Placement) {
    if p.state != PlacementState::Running || p.node == shared.node_id {
        return;
    }
    let shared2 = Arc::clone(shared);
    let (actor_id, node, runner_id, generation) = (
        actor_id.to_string(),
        p.node.clone(),
        p.runner_id.clone(),
        p.generation,
    );
    let name = shared.runner_name.clone();
    let _ = handle.call(move |c, now| {
        ensure_actor(c, now, &actor_id, &name);
        if let Ok(route) = remote_route(&shared2, c, &node, &runner_id) {
            let _ = c.running_elsewhere(now, &actor_id, route, generation);
        }
    });
}

/// This node won a claim for its runner: start the actor here with every gateway's records;
/// if the runner cannot take it, give the claim back.
async fn start_here(
    shared: &Arc<Shared>,
    handle: &ControlHandle,
    actor_id: &str,
    runner_id: &str,
    generation: u32,
) {
    let records = shared.state.records(actor_id).await.unwrap_or_default();
    let name = shared.runner_name.clone();
    let result = handle.call({
        let (actor_id, runner_id) = (actor_id.to_string(), runner_id.to_string());
        move |c, now| {
            ensure_actor(c, now, &actor_id, &name);
            c.place_here(now, &actor_id, &runner_id, generation, &records)
        }
    });
    if let Ok(Ok(())) = result {
        bump(&shared.stats.placed_here);
    } else {
        {
            let expect = Placement {
                state: PlacementState::Starting,
                node: shared.node_id.clone(),
                runner_id: runner_id.to_string(),
                generation,
            };
            let _ = shared
                .state
                .transition(actor_id, &expect, PlacementState::Sleeping)
                .await;
        }
    }
}

async fn watcher(shared: Arc<Shared>, handle: ControlHandle) {
    let stats = shared.client.statistics();
    loop {
        let connects = stats.connects.load(Ordering::Relaxed);
        if let Ok(mut watch) = shared.state.watch_placements().await {
            let mut tick = ::tokio::time::interval(PLACE_RETRY);
            loop {
                ::tokio::select! {
                    entry = watch.next() => {
                        let Some(Ok(entry)) = entry else { break };
                        if let Some(p) = decode_placement(&entry) {
                            on_placement(&shared, &handle, &entry.key, p).await;
                        }
                    }
                    _ = tick.tick() => {
                        // The client reconnected (a broker restart): a watch may have missed
                        // changes or stalled, so watch again from the current values.
                        if stats.connects.load(Ordering::Relaxed) != connects {
                            break;
                        }
                    }
                }
            }
        }
        ::tokio::time::sleep(PLACE_RETRY).await;
    }
}

async fn on_placement(shared: &Arc<Shared>, handle: &ControlHandle, actor_id: &str, p: Placement) {
    match p.state {
        PlacementState::Starting if p.node == shared.node_id => {
            let phase = handle
                .call({
                    let id = actor_id.to_string();
                    move |c, _| c.actor(&id).map(|a| (a.phase, a.generation))
                })
                .ok()
                .flatten();
            // Already started here at this generation (a replayed watch entry): nothing to do.
            let started = phase.is_some_and(|(ph, g)| {
                g == Some(p.generation) && !matches!(ph, ActorPhase::Sleeping | ActorPhase::Pending)
            });
            if !started {
                start_here(shared, handle, actor_id, &p.runner_id, p.generation).await;
            }
        }
        PlacementState::Running => follow(shared, handle, actor_id, &p),
        PlacementState::Sleeping => {
            let generation = p.generation;
            let pending = handle
                .call({
                    let id = actor_id.to_string();
                    move |c, now| {
                        let info = c.actor(&id);
                        let hosted_here = info.as_ref().is_some_and(|a| {
                            a.generation == Some(generation)
                                && a.runner_id.as_ref().is_some_and(|r| c.runner(r).is_some())
                        });
                        if hosted_here {
                            // The cluster took it as dead here (its node was reaped): stop
                            // this copy, the shared state already lets it start elsewhere.
                            let _ = c.stop_actor(now, &id);
                        } else {
                            let _ = c.stopped_elsewhere(now, &id, generation);
                        }
                        c.actor(&id).map(|a| a.phase)
                    }
                })
                .ok()
                .flatten();
            // A request here still needs it (the claim it followed was given back).
            if pending == Some(ActorPhase::Pending) {
                let _ = shared
                    .state_tx
                    .try_send((StateOut::Place(actor_id.to_string()), 0));
            }
        }
        PlacementState::Starting => {}
    }
}

async fn liveness(shared: Arc<Shared>, ttl: Duration) {
    let period = ttl / 3;
    let stats = shared.client.statistics();
    let mut connects = stats.connects.load(Ordering::Relaxed);
    // Heartbeats in a row since the last (re)connect: a node's entry is missing for sure only
    // after every node had time to write it again, so nothing is reaped before a full TTL of
    // heartbeats (after a broker restart every entry may have expired at once).
    let mut streak = 0u32;
    loop {
        ::tokio::time::sleep(period).await;
        let now_connects = stats.connects.load(Ordering::Relaxed);
        if now_connects != connects {
            connects = now_connects;
            streak = 0;
        }
        if shared
            .state
            .heartbeat(&shared.node_id, shared.gateway_id)
            .await
            .is_err()
        {
            bump(&shared.stats.state_errors);
            streak = 0;
            continue;
        }
        streak += 1;
        if streak <= 6 {
            continue;
        }
        if let Ok(live) = shared.state.live_nodes().await
            && let Ok(reaped) = shared.state.reap(&live).await
        {
            for _ in reaped {
                bump(&shared.stats.reaped);
            }
        }
    }
}
