//! [`Node`]: one engine node of the cluster — a [`Control`] in cluster mode on the tokio control
//! driver, its cluster actions carried over NATS and JetStream KV.
//!
//! Tasks of a node (all stopped by [`Node::shutdown`] or on drop):
//!
//! * **publisher**: the engine's `PublishRemote` and `ForwardToGateway` frames, in order, to
//!   their subjects ([`super::subjects`]); a frame over the server's `max_payload` is
//!   not published ([`NodeStats::too_large`]). Its queue is bounded: when NATS stalls (a broker
//!   restart) frames past [`NodeConfig::frame_queue`] are dropped and counted, and the protocol
//!   heals them (the gateway replays or retransmits whatever the runner did not acknowledge).
//!   Sized to the frames in flight (requests × the gateway's window), it drops none while NATS
//!   keeps up.
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

use super::state::SharedState;
use super::{placement, subjects};
use crate::control::{Action, ActorSpec, Control, ControlConfig, StopReason};
use crate::driver::control::{ControlDriver, ControlHandle, ControlIo};
use crate::driver::tokio::TokioClock;
use crate::gateway::{Gateway, GatewayConfig, RouteId, SendError};
use crate::time::Timestamp;
use crate::wire::{ActorConfig, GatewayId, KvRequestData, KvResponseData};

/// Default of [`NodeConfig::frame_queue`].
pub const FRAME_QUEUE: usize = 16 * 1024;
/// Shared-state events queued before new ones are dropped (counted in
/// [`NodeStats::state_dropped`]; a dropped placement is asked for again by the next wake).
pub const STATE_QUEUE: usize = 16 * 1024;
/// Delay before a placement that found no runner is tried again.
pub(super) const PLACE_RETRY: Duration = Duration::from_millis(200);
/// Attempts of a shared-state write before it is given up (with [`PLACE_RETRY`] between them).
pub(super) const MAX_STATE_ATTEMPTS: u32 = 150;

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
    /// Frames queued for the publisher before new ones are dropped (counted in
    /// [`NodeStats::dropped`], healed by the gateway's retransmit). Default [`FRAME_QUEUE`]. A
    /// drop costs the request a retransmit timeout: size it at least to the frames in flight,
    /// requests × [`GatewayConfig::max_pending_messages`] plus the acks going back (0 is taken
    /// as 1).
    pub frame_queue: usize,
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
            frame_queue: FRAME_QUEUE,
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

pub(super) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

enum FrameOut {
    Remote { route: RouteId, frame: Bytes },
    Gateway { subject: String, frame: Bytes },
}

#[derive(Clone)]
pub(super) enum StateOut {
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

pub(super) struct Shared {
    pub(super) node_id: String,
    pub(super) gateway_id: GatewayId,
    pub(super) runner_name: String,
    pub(super) client: async_nats::Client,
    pub(super) state: SharedState,
    /// Remote route → its runner subject.
    pub(super) routes: Mutex<BTreeMap<RouteId, String>>,
    pub(super) stats: NodeStats,
    /// Shared-state events, with the number of earlier failed attempts.
    pub(super) state_tx: mpsc::Sender<(StateOut, u32)>,
}

/// The engine's actions the control driver does not perform, routed to the node's queues.
struct ClusterIo {
    node_id: String,
    shared: Arc<Shared>,
    frames: mpsc::Sender<FrameOut>,
    records: mpsc::Sender<StateOut>,
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
                // Shares the gateway's replay buffer: no copy.
                let out = FrameOut::Remote {
                    route: *route,
                    frame: frame.as_bytes().clone(),
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
                    frame: Bytes::from(frame.clone()),
                };
                if self.frames.try_send(out).is_err() {
                    bump(&stats.dropped);
                }
            }
            other => {
                let queued = match state_out(other) {
                    None => true,
                    // Records have their own queue: one must reach the shared state before a
                    // start elsewhere lists the actor's records, so none waits behind placements.
                    Some(out @ StateOut::Record { .. }) => self.records.try_send(out).is_ok(),
                    Some(out) => self.shared.state_tx.try_send((out, 0)).is_ok(),
                };
                if !queued {
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
        // A restart under the same id: what the earlier run placed and registered is gone.
        let forgotten = Box::pin(state.forget_node(&config.node_id)).await?.len();
        let now = clock.now();
        let gateway = Gateway::new(config.gateway.clone(), config.gateway_id, now)?;
        let control = Control::new(config.control.clone(), gateway, config.epoch, now)?;
        let (frames_tx, frames_rx) = mpsc::channel(config.frame_queue.max(1));
        let (state_tx, state_rx) = mpsc::channel(STATE_QUEUE);
        let (records_tx, records_rx) = mpsc::channel(STATE_QUEUE);
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
        shared
            .stats
            .reaped
            .fetch_add(forgotten as u64, Ordering::Relaxed);
        let io = ClusterIo {
            node_id: config.node_id.clone(),
            shared: Arc::clone(&shared),
            frames: frames_tx,
            records: records_tx,
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
            ::tokio::spawn(placement::state_worker(
                Arc::clone(&shared),
                handle.clone(),
                state_rx,
            )),
            ::tokio::spawn(placement::record_worker(Arc::clone(&shared), records_rx)),
            ::tokio::spawn(placement::watcher(Arc::clone(&shared), handle.clone())),
            ::tokio::spawn(placement::liveness(Arc::clone(&shared), config.node_ttl)),
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
    /// Stops the engine too: a dropped node's runners and clients see their connections end (a
    /// handle kept elsewhere must not keep serving them behind the cluster's back).
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.handle.shutdown();
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

pub(super) fn ensure_actor(
    control: &mut Control,
    now: Timestamp,
    actor_id: &str,
    runner_name: &str,
) {
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
    let mut batch = Vec::with_capacity(INBOUND_BATCH);
    // Per subject, in the order of their first frame: the message being built and its frames.
    let mut messages: Vec<(String, Vec<u8>, u64)> = Vec::new();
    while rx.recv_many(&mut batch, INBOUND_BATCH).await > 0 {
        // Read once per batch (it changes only with a reconnect to another server).
        let max = shared.client.server_info().max_payload;
        for out in batch.drain(..) {
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
            let len = frame.len() + subjects::LEN_PREFIX;
            if subjects::check_size(&subject, len, max).is_err() {
                bump(&stats.too_large);
                continue;
            }
            let at = if let Some(at) = messages.iter().position(|(s, ..)| *s == subject) {
                at
            } else {
                messages.push((subject, Vec::new(), 0));
                messages.len() - 1
            };
            if messages[at].1.len() + len > max {
                let (subject, message, count) = &mut messages[at];
                let full = core::mem::take(message);
                publish(&shared, subject.clone(), full, core::mem::take(count)).await;
            }
            let (_, message, count) = &mut messages[at];
            subjects::pack(message, &frame);
            *count += 1;
        }
        for (subject, message, count) in messages.drain(..) {
            publish(&shared, subject, message, count).await;
        }
    }
}

/// Publishes one message of `frames` frames (counted as published or dropped).
async fn publish(shared: &Shared, subject: String, message: Vec<u8>, frames: u64) {
    if frames == 0 {
        return;
    }
    let counter = if shared.client.publish(subject, message.into()).await.is_ok() {
        &shared.stats.published
    } else {
        &shared.stats.dropped
    };
    counter.fetch_add(frames, Ordering::Relaxed);
}

/// Most frames of a subscription handed to the engine in one call.
const INBOUND_BATCH: usize = 256;

/// The next message of `sub` and those already received after it (at most [`INBOUND_BATCH`]):
/// one engine call per batch instead of one per frame.
async fn next_batch(
    sub: &mut async_nats::Subscriber,
    batch: &mut Vec<async_nats::Message>,
) -> bool {
    batch.clear();
    let Some(first) = sub.next().await else {
        return false;
    };
    batch.push(first);
    while batch.len() < INBOUND_BATCH {
        match futures_util::FutureExt::now_or_never(sub.next()) {
            Some(Some(msg)) => batch.push(msg),
            _ => break,
        }
    }
    true
}

async fn inbound_runner(
    shared: Arc<Shared>,
    handle: ControlHandle,
    mut sub: async_nats::Subscriber,
) {
    let mut batch = Vec::with_capacity(INBOUND_BATCH);
    while next_batch(&mut sub, &mut batch).await {
        let mut frames = Vec::new();
        let mut parts = Vec::new();
        for msg in batch.drain(..) {
            let Some(runner_id) = subjects::parse_runner(msg.subject.as_str()) else {
                continue;
            };
            if subjects::unpack(msg.subject.as_str(), &msg.payload, &mut parts).is_err() {
                bump(&shared.stats.refused);
            }
            frames.extend(parts.drain(..).map(|f| (runner_id.to_string(), f)));
        }
        let count = u64::try_from(frames.len()).unwrap_or(u64::MAX);
        shared.stats.received.fetch_add(count, Ordering::Relaxed);
        let refused = handle.call(move |c, now| {
            frames
                .iter()
                .filter(|(runner_id, payload)| {
                    c.handle_forwarded_frame(now, runner_id, payload).is_err()
                })
                .count()
        });
        match refused {
            Ok(n) => {
                let n = u64::try_from(n).unwrap_or(u64::MAX);
                shared.stats.refused.fetch_add(n, Ordering::Relaxed);
            }
            Err(_) => return,
        }
    }
}

async fn inbound_gateway(
    shared: Arc<Shared>,
    handle: ControlHandle,
    mut sub: async_nats::Subscriber,
) {
    let mut batch = Vec::with_capacity(INBOUND_BATCH);
    while next_batch(&mut sub, &mut batch).await {
        let mut frames = Vec::new();
        let mut parts = Vec::new();
        for msg in batch.drain(..) {
            let Some((node, runner_id)) = subjects::parse_gateway(msg.subject.as_str()) else {
                continue;
            };
            if subjects::unpack(msg.subject.as_str(), &msg.payload, &mut parts).is_err() {
                bump(&shared.stats.refused);
            }
            frames.extend(
                parts
                    .drain(..)
                    .map(|f| (node.to_string(), runner_id.to_string(), f)),
            );
        }
        let count = u64::try_from(frames.len()).unwrap_or(u64::MAX);
        shared.stats.received.fetch_add(count, Ordering::Relaxed);
        let shared2 = Arc::clone(&shared);
        let refused = handle.call(move |c, now| {
            frames
                .iter()
                .filter(|(node, runner_id, payload)| {
                    remote_route(&shared2, c, node, runner_id)
                        .and_then(|route| c.handle_remote_frame(now, route, payload).map_err(drop))
                        .is_err()
                })
                .count()
        });
        match refused {
            Ok(n) => {
                let n = u64::try_from(n).unwrap_or(u64::MAX);
                shared.stats.refused.fetch_add(n, Ordering::Relaxed);
            }
            Err(_) => return,
        }
    }
}

/// The route to (node, runner), remembered with its subject for the publisher.
pub(super) fn remote_route(
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
