//! The runner engine: every actor and hibernatable WebSocket of one runner process.
//!
//! A [`Runner`] sits between the gateway's tunnel and the app that hosts actors. It validates the
//! gateway's indices on hibernatable sockets (duplicates dropped, gaps closed or held, see
//! [`GapPolicy`]), delivers messages to the app in order and exactly once per index, asks the
//! app to persist the last delivered index ([`Action::Persist`]) and acks to the gateway exactly
//! what the app reported durable ([`Runner::persisted`]), restores sockets when an actor starts
//! again ([`Runner::restore`]), and handles every close path. It does no I/O and reads no clock.
//!
//! # Driving contract
//!
//! 1. `now` never decreases from one call to the next (a smaller `now` is treated as the largest
//!    seen so far). The same `now` may repeat.
//! 2. After **every** call that takes `now` (`handle_*`, commands, actor life-cycle calls,
//!    `persisted`, …), drain [`Runner::poll_action`] until it returns `None` and perform the
//!    actions in order: publish frames, hand messages to the app, write or delete metadata.
//! 3. Then read [`Runner::poll_timeout`] last and call [`Runner::handle_timeout`] when that
//!    instant is reached. `handle_timeout` is a no-op when called early or twice, and after
//!    `handle_timeout(now)` the next deadline is always later than `now`.
//! 4. Answer every [`Action::Persist`] with [`Runner::persisted`] or
//!    [`Runner::persist_failed`] once the write finished (it may be much later; other calls may
//!    happen meanwhile), and carry out the `Persist` and `DeleteMetadata` actions of one socket
//!    in the order they were emitted. A result names a socket id and an index; the runner
//!    matches it first to the oldest unanswered persist of a socket with that id that is gone
//!    (closed or handed back), then to the live socket's, so a late result never counts as a
//!    newer socket's write. A result for a socket that has closed since returns
//!    [`SocketError::UnknownSocket`], which is harmless.
//!
//! # Lifecycle of an actor
//!
//! `actor_starting` (the `CommandStartActor`, with the gateway's list of hibernating requests)
//! → tunnel messages for the actor queue → `restore` with the app's persisted socket metadata
//! (always call it, with an empty list if there is none) → the queue is processed in order and
//! the actor runs → `actor_stopping` → every hibernatable socket gets a final persist (then is
//! forgotten: the gateway hibernates it), every other socket closes locally →
//! [`Action::ActorStopped`].
//!
//! # Indices
//!
//! Every index comparison uses [`MessageIndex`]'s serial arithmetic. With `p` the last delivered
//! index of a hibernatable socket and `δ = r − p mod 2¹⁶` for an incoming index `r`: `δ = 0` or
//! `r` before `p` is a duplicate, `δ = 1` is delivered, anything else (including `δ = 32 768`)
//! is a gap. A restored socket drops a message past a gap (instead of closing or holding it)
//! until the first in-order one: before the gateway's replay arrives, such a message was
//! published before the request hibernated, and the replay resends it. Every tunnel message the
//! runner sends for a socket takes the socket's next outgoing index, wrapping 65 535 → 0.

mod action;
mod actor;
mod config;
mod deadline;
mod error;
mod handed_back;
#[cfg(any(test, feature = "sim"))]
mod invariants;
mod outbox;
mod persist;
mod receive;
mod restore;
mod socket;
mod stats;
mod table;
mod timer;

#[cfg(test)]
mod tests;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;

use bytes::Bytes;

pub use action::{Action, CloseReason};
pub use actor::{ActorInfo, ActorState};
pub use config::{
    DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_PERSIST_BYTES, DEFAULT_PERSIST_INTERVAL, Framing, GapPolicy,
    RunnerConfig,
};
pub use error::{ActorError, ReceiveError, SendError, SocketError};
pub use restore::RestoreSummary;
pub use socket::{PersistedSocket, SocketId, SocketInfo, SocketState};
pub use stats::RunnerStats;

use crate::close::CloseFrame;
use crate::config::ConfigError;
use crate::hash::IdMap;
use crate::index::MessageIndex;
use crate::time::Timestamp;
use crate::wire::{
    self, HibernatingRequest, ToClientTunnelMessage, ToServerTunnelMessageKind,
    ToServerWebSocketClose, ToServerWebSocketOpen,
};

use actor::Actor;
use deadline::timer_is_live;
use outbox::{close_kind, publish_on};
use socket::{Phase, len_u64};
use table::{Slot, slot_mut};
use timer::TimerQueue;

/// Every actor and socket of one runner process, as a sans-IO state machine.
///
/// See the [module docs](self) for the driving contract.
///
/// # Example
///
/// An actor starts, a client opens a hibernatable socket and sends one message; the app
/// persists the index and the runner acks it.
///
/// ```
/// use hibernating_ws::runner::{Action, Runner, RunnerConfig, SocketId};
/// use hibernating_ws::wire::{
///     self, GatewayId, Headers, MessageId, RequestId, ToClientTunnelMessage,
///     ToClientTunnelMessageKind, ToClientWebSocketMessage, ToClientWebSocketOpen, ToGateway,
///     ToRunner, ToServerTunnelMessageKind,
/// };
/// use hibernating_ws::{MessageIndex, Timestamp};
///
/// let socket = SocketId::new(GatewayId([1, 0, 0, 0]), RequestId([2, 0, 0, 0]));
/// // What the gateway would publish: a versioned `ToRunner` frame.
/// let frame = |index: u16, kind| {
///     wire::encode_versioned(7, &ToRunner::TunnelMessage(ToClientTunnelMessage {
///         message_id: MessageId {
///             gateway_id: socket.gateway_id,
///             request_id: socket.request_id,
///             message_index: MessageIndex::new(index),
///         },
///         kind,
///     }))
/// };
/// // What the runner publishes back: a versioned `ToGateway` frame.
/// let published = |action: Option<Action>| match action {
///     Some(Action::Publish { frame, .. }) => {
///         match wire::decode_versioned::<ToGateway>(&frame, &Default::default()) {
///             Ok((_, ToGateway::TunnelMessage(m))) => (m.message_id.message_index, m.kind),
///             other => panic!("unexpected frame {other:?}"),
///         }
///     }
///     other => panic!("expected a publish, got {other:?}"),
/// };
///
/// let mut now = Timestamp::from_secs(1);
/// let mut runner = Runner::new(RunnerConfig::default(), now)?;
///
/// // CommandStartActor with no hibernating requests; nothing persisted either.
/// runner.actor_starting(now, "actor", Vec::new())?;
/// runner.restore(now, "actor", Vec::new())?;
///
/// // The gateway opens a socket (index 0); the app accepts it as hibernatable.
/// runner.handle_frame(now, &frame(0, ToClientTunnelMessageKind::WebSocketOpen(
///     ToClientWebSocketOpen { actor_id: "actor".into(), path: "/ws".into(), headers: Headers::new() },
/// )))?;
/// assert!(matches!(runner.poll_action(), Some(Action::Open { index, .. }) if index.get() == 0));
/// runner.accept(now, socket, true)?;
/// let (index, kind) = published(runner.poll_action());
/// assert_eq!(index.get(), 0); // our first outgoing index
/// assert!(matches!(kind, ToServerTunnelMessageKind::WebSocketOpen(o) if o.can_hibernate));
/// // The metadata is written at once, before the actor can sleep.
/// let Some(Action::Persist { server_index, .. }) = runner.poll_action() else { panic!() };
/// runner.persisted(now, socket, server_index)?;
/// assert_eq!(runner.poll_action(), None); // nothing to ack yet
///
/// // Message 1 arrives and is delivered.
/// runner.handle_frame(now, &frame(1, ToClientTunnelMessageKind::WebSocketMessage(
///     ToClientWebSocketMessage { data: b"hello".to_vec().into(), binary: false },
/// )))?;
/// let Some(Action::Message { index, data, .. }) = runner.poll_action() else { panic!() };
/// assert_eq!((index.get(), &data[..]), (1, &b"hello"[..]));
/// assert_eq!(runner.poll_action(), None);
///
/// // The persist is debounced: it comes 5 s after the first unpersisted message.
/// let deadline = runner.poll_timeout().expect("a persist deadline is armed");
/// assert_eq!(deadline, now + core::time::Duration::from_secs(5));
/// now = deadline;
/// runner.handle_timeout(now);
/// let Some(Action::Persist { server_index, .. }) = runner.poll_action() else { panic!() };
/// assert_eq!(server_index.get(), 1);
///
/// // Only once the app reports the write durable is index 1 acked.
/// runner.persisted(now, socket, server_index)?;
/// let (_, kind) = published(runner.poll_action());
/// assert!(matches!(kind, ToServerTunnelMessageKind::WebSocketMessageAck(a) if a.index.get() == 1));
/// assert_eq!(runner.poll_action(), None);
/// assert_eq!(runner.poll_timeout(), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Runner {
    config: RunnerConfig,
    /// The latest `now` seen.
    now: Timestamp,
    actors: Vec<Option<Actor>>,
    free_actors: Vec<usize>,
    actor_index: BTreeMap<String, usize>,
    slots: Vec<Slot>,
    free_slots: Vec<usize>,
    socket_index: IdMap<SocketId, usize>,
    /// Socket ids of starting actors: their messages queue behind the actor's restore.
    routes: IdMap<SocketId, usize>,
    /// Persists whose socket is gone and whose result has not come, per socket id in the order
    /// they were requested. A result is matched here first (the oldest entry with its index),
    /// so a late result of a closed socket never settles a persist of a newer socket with the
    /// same id; a hand-back's entry also keeps its actor's stop waiting.
    orphans: BTreeMap<SocketId, VecDeque<persist::Orphan>>,
    /// Entries in `orphans`.
    orphan_count: usize,
    live_sockets: usize,
    /// Sockets handed back recently (see [`handed_back`]).
    handed_back: handed_back::HandedBack,
    /// Sockets the app closed recently: a stale copy of such a socket's open is answered with a
    /// close, never reopened (the gateway would replay what the app already had).
    app_closed: handed_back::HandedBack,
    /// Actor starts so far (numbers each start, see `Actor::start`).
    starts: u64,
    timers: TimerQueue,
    actions: VecDeque<Action>,
    stats: RunnerStats,
}

impl Runner {
    /// A runner with no actors.
    ///
    /// # Errors
    /// [`ConfigError::OutOfBounds`] if `config` fails [`RunnerConfig::validate`].
    pub fn new(config: RunnerConfig, now: Timestamp) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            now,
            actors: Vec::new(),
            free_actors: Vec::new(),
            actor_index: BTreeMap::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            socket_index: IdMap::default(),
            routes: IdMap::default(),
            orphans: BTreeMap::new(),
            orphan_count: 0,
            live_sockets: 0,
            handed_back: handed_back::HandedBack::default(),
            app_closed: handed_back::HandedBack::default(),
            starts: 0,
            timers: TimerQueue::default(),
            actions: VecDeque::new(),
            stats: RunnerStats::default(),
        })
    }

    /// The configuration in force.
    #[must_use]
    pub fn config(&self) -> &RunnerConfig {
        &self.config
    }

    // -----------------------------------------------------------------------------------------
    // Actor life cycle
    // -----------------------------------------------------------------------------------------

    /// `CommandStartActor`: the actor is starting; `hibernating` is the gateway's list of its
    /// hibernating requests. Until [`restore`](Self::restore), tunnel messages for those sockets
    /// and opens naming the actor queue in arrival order (bounded by
    /// [`RunnerConfig::max_queued_per_actor`] and
    /// [`RunnerConfig::max_queued_bytes_per_actor`]).
    ///
    /// # Errors
    /// [`ActorError::AlreadyStarting`] if the actor is starting or running;
    /// [`ActorError::Stopping`] if it has not finished stopping.
    pub fn actor_starting(
        &mut self,
        now: Timestamp,
        actor_id: &str,
        hibernating: Vec<HibernatingRequest>,
    ) -> Result<(), ActorError> {
        self.advance(now);
        if let Some(actor) = self.actor_by_id(actor_id) {
            return Err(match actor.state {
                ActorState::Stopping => ActorError::Stopping {
                    actor_id: actor_id.into(),
                },
                ActorState::Starting | ActorState::Running => ActorError::AlreadyStarting {
                    actor_id: actor_id.into(),
                },
            });
        }
        let mut seen = alloc::collections::BTreeSet::new();
        let hibernating: Vec<SocketId> = hibernating
            .into_iter()
            .map(SocketId::from)
            .filter(|id| seen.insert(*id))
            .collect();
        let mut actor = Actor::new(actor_id.into(), hibernating);
        self.starts += 1;
        actor.start = self.starts;
        let slot = self.free_actors.pop().unwrap_or_else(|| {
            self.actors.push(None);
            self.actors.len() - 1
        });
        for id in &actor.hibernating {
            self.routes.insert(*id, slot);
        }
        actor.routes.clone_from(&actor.hibernating);
        if let Some(entry) = self.actors.get_mut(slot) {
            *entry = Some(actor);
        }
        self.actor_index.insert(actor_id.into(), slot);
        self.stats.actors = len_u64(self.actor_index.len());
        self.finish();
        Ok(())
    }

    /// The actor is stopping (going to sleep or shutting down).
    ///
    /// Every open hibernatable socket gets a [`Action::Persist`] of its latest delivered index,
    /// unconditionally, and waits for the result (acked on success); then it is forgotten
    /// without a close (the gateway hibernates it). Messages arriving meanwhile are dropped (the
    /// gateway replays them after the next wake). Every other socket closes locally with
    /// [`CloseReason::ActorStopped`], without a tunnel message. When every socket has settled,
    /// [`Action::ActorStopped`] is emitted and the actor is removed. A starting actor stops at
    /// once and its queue is dropped.
    ///
    /// # Errors
    /// [`ActorError::UnknownActor`]; [`ActorError::Stopping`] if it is already stopping.
    pub fn actor_stopping(&mut self, now: Timestamp, actor_id: &str) -> Result<(), ActorError> {
        self.advance(now);
        let Some(&aslot) = self.actor_index.get(actor_id) else {
            return Err(ActorError::UnknownActor {
                actor_id: actor_id.into(),
            });
        };
        let Some(actor) = self.actors.get_mut(aslot).and_then(Option::as_mut) else {
            return Err(ActorError::UnknownActor {
                actor_id: actor_id.into(),
            });
        };
        if actor.state == ActorState::Stopping {
            return Err(ActorError::Stopping {
                actor_id: actor_id.into(),
            });
        }
        actor.state = ActorState::Stopping;
        actor.queue.clear();
        actor.queued_bytes = 0;
        actor.hibernating.clear();
        let routes = core::mem::take(&mut actor.routes);
        let ids: Vec<SocketId> = actor.sockets.iter().copied().collect();
        // Every socket of the actor is handed back (the gateway hibernates or closes the request
        // once it learns of the stop); frames meanwhile are dropped, not answered.
        let actor_id: String = actor_id.into();
        for id in routes.iter().chain(&ids) {
            self.remember_handed_back(*id, &actor_id);
        }
        self.clear_routes(aslot, routes);
        for id in ids {
            let Some(&slot) = self.socket_index.get(&id) else {
                continue;
            };
            let Some(s) = slot_mut(&mut self.slots, slot) else {
                continue;
            };
            if s.phase == Phase::Open && s.hibernatable {
                s.phase = Phase::Stopping;
                s.persist.deadline = None;
                s.persist.retry_at = None;
                s.gap_deadline = None;
                s.held.clear();
                if s.persist.in_flight.is_some() {
                    s.persist.flush_after_in_flight = true;
                } else {
                    self.emit_persist(slot);
                }
            } else {
                self.stats.closed_actor_stopped += 1;
                self.actions.push_back(Action::Closed {
                    socket: id,
                    reason: CloseReason::ActorStopped,
                });
                self.remove_socket(slot);
            }
        }
        self.maybe_finish_actor(aslot);
        self.finish();
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Network input
    // -----------------------------------------------------------------------------------------

    /// A frame from the gateway, decoded per [`RunnerConfig::framing`]: a versioned `ToRunner`
    /// ([`Framing::PubSub`]; pings are answered with a pong) or a plain `ToClient`
    /// ([`Framing::RunnerSocket`]).
    ///
    /// # Errors
    /// [`ReceiveError::Malformed`] if the frame does not decode, [`ReceiveError::Unsupported`]
    /// for `ToRunnerClose` and the control messages, and everything
    /// [`handle_tunnel_message`](Self::handle_tunnel_message) returns. Every error is counted;
    /// none needs handling beyond logging.
    pub fn handle_frame(&mut self, now: Timestamp, bytes: &[u8]) -> Result<(), ReceiveError> {
        self.receive(now, wire::Received::Slice(bytes))
    }

    /// [`handle_frame`](Self::handle_frame) for a frame the transport hands out as [`Bytes`]:
    /// the payload of [`Action::Message`] is then a slice of `frame`, not a copy.
    ///
    /// # Errors
    /// As [`handle_frame`](Self::handle_frame).
    pub fn handle_frame_bytes(
        &mut self,
        now: Timestamp,
        frame: &Bytes,
    ) -> Result<(), ReceiveError> {
        self.receive(now, wire::Received::Shared(frame))
    }

    fn receive(&mut self, now: Timestamp, frame: wire::Received<'_>) -> Result<(), ReceiveError> {
        let now = self.advance(now);
        self.stats.frames_received += 1;
        let result = self.receive_frame(now, frame);
        self.finish();
        result
    }

    /// An already-decoded tunnel message from the gateway.
    ///
    /// # Errors
    /// [`ReceiveError::UnknownActor`] (an open for an actor this runner does not host or that is
    /// stopping: answered with close 1011 `Actor not found`), [`ReceiveError::UnknownSocket`],
    /// [`ReceiveError::NotOpen`], [`ReceiveError::QueueFull`], [`ReceiveError::SocketLimit`],
    /// [`ReceiveError::Unsupported`] (HTTP request kinds). Duplicates and gaps are not errors: they are protocol events,
    /// counted in [`RunnerStats`].
    pub fn handle_tunnel_message(
        &mut self,
        now: Timestamp,
        msg: ToClientTunnelMessage,
    ) -> Result<(), ReceiveError> {
        let now = self.advance(now);
        let result = self.dispatch(now, msg);
        self.finish();
        result
    }

    // -----------------------------------------------------------------------------------------
    // App commands
    // -----------------------------------------------------------------------------------------

    /// The app accepts an [`Action::Open`]: the runner publishes `ToServerWebSocketOpen
    /// { can_hibernate }` and the socket is open. A hibernatable socket gets an
    /// [`Action::Persist`] at once, so its metadata exists before the actor can sleep.
    ///
    /// # Errors
    /// [`SocketError::UnknownSocket`]; [`SocketError::WrongState`] if the socket is not waiting
    /// for an accept.
    pub fn accept(
        &mut self,
        now: Timestamp,
        socket: SocketId,
        can_hibernate: bool,
    ) -> Result<(), SocketError> {
        let now = self.advance(now);
        let slot = self
            .slot_of(socket)
            .ok_or(SocketError::UnknownSocket { socket })?;
        let framing = self.config.framing;
        let s = slot_mut(&mut self.slots, slot).ok_or(SocketError::UnknownSocket { socket })?;
        if s.phase != Phase::Connecting {
            return Err(SocketError::WrongState { socket });
        }
        s.phase = Phase::Open;
        s.hibernatable = can_hibernate;
        publish_on(
            &mut self.actions,
            framing,
            s,
            ToServerTunnelMessageKind::WebSocketOpen(ToServerWebSocketOpen { can_hibernate }),
        );
        if can_hibernate {
            s.persist.force = true;
            s.persist.dirty = true;
            self.schedule_persist(now, slot);
        }
        self.finish();
        Ok(())
    }

    /// The app rejects an [`Action::Open`]: the runner publishes `ToServerWebSocketClose
    /// { frame, hibernate: false }` and emits [`CloseReason::Rejected`].
    ///
    /// # Errors
    /// [`SocketError::UnknownSocket`]; [`SocketError::WrongState`] if the socket is not waiting
    /// for an accept.
    pub fn reject(
        &mut self,
        now: Timestamp,
        socket: SocketId,
        frame: CloseFrame,
    ) -> Result<(), SocketError> {
        self.advance(now);
        let slot = self
            .slot_of(socket)
            .ok_or(SocketError::UnknownSocket { socket })?;
        let framing = self.config.framing;
        let s = slot_mut(&mut self.slots, slot).ok_or(SocketError::UnknownSocket { socket })?;
        if s.phase != Phase::Connecting {
            return Err(SocketError::WrongState { socket });
        }
        publish_on(&mut self.actions, framing, s, close_kind(&frame, false));
        self.stats.closed_rejected += 1;
        self.actions.push_back(Action::Closed {
            socket,
            reason: CloseReason::Rejected(frame),
        });
        self.remove_socket(slot);
        self.finish();
        Ok(())
    }

    /// The app sends a WebSocket message to the client. Returns the outgoing index it took.
    ///
    /// # Errors
    /// [`SendError::UnknownSocket`]; [`SendError::NotOpen`] unless the socket is open;
    /// [`SendError::MessageTooLarge`] beyond [`RunnerConfig::max_message_size`].
    pub fn send(
        &mut self,
        now: Timestamp,
        socket: SocketId,
        data: &[u8],
        binary: bool,
    ) -> Result<MessageIndex, SendError> {
        self.advance(now);
        let slot = self
            .slot_of(socket)
            .ok_or(SendError::UnknownSocket { socket })?;
        let framing = self.config.framing;
        let max = self.config.max_message_size;
        let s = slot_mut(&mut self.slots, slot).ok_or(SendError::UnknownSocket { socket })?;
        if s.phase != Phase::Open {
            return Err(SendError::NotOpen { socket });
        }
        if data.len() > max {
            return Err(SendError::MessageTooLarge {
                socket,
                size: data.len(),
                max,
            });
        }
        let version = outbox::framing_version(framing);
        let index = outbox::publish_with(&mut self.actions, s, |id| {
            wire::encode_server_ws_message_frame(version, id, data, binary)
        });
        self.stats.sent += 1;
        self.finish();
        Ok(index)
    }

    /// The app closes the socket: the runner publishes `ToServerWebSocketClose { frame,
    /// hibernate: false }`, emits [`CloseReason::AppClosed`] and, for a hibernatable socket,
    /// [`Action::DeleteMetadata`].
    ///
    /// # Errors
    /// [`SocketError::UnknownSocket`]; [`SocketError::NotOpen`] unless the socket is open (use
    /// [`reject`](Self::reject) while it connects).
    pub fn close(
        &mut self,
        now: Timestamp,
        socket: SocketId,
        frame: CloseFrame,
    ) -> Result<(), SocketError> {
        self.advance(now);
        let slot = self
            .slot_of(socket)
            .ok_or(SocketError::UnknownSocket { socket })?;
        let framing = self.config.framing;
        let s = slot_mut(&mut self.slots, slot).ok_or(SocketError::UnknownSocket { socket })?;
        if s.phase != Phase::Open {
            return Err(SocketError::NotOpen { socket });
        }
        publish_on(&mut self.actions, framing, s, close_kind(&frame, false));
        let hibernatable = s.hibernatable;
        self.stats.closed_app += 1;
        self.actions.push_back(Action::Closed {
            socket,
            reason: CloseReason::AppClosed(frame),
        });
        if hibernatable {
            self.push_delete_metadata(slot);
        }
        let actor_id = self.actor_id_of(slot);
        self.remember_app_closed(socket, &actor_id);
        self.remove_socket(slot);
        self.finish();
        Ok(())
    }

    /// The app hands a hibernatable socket back to the gateway: the runner emits a
    /// [`Action::Persist`] of the latest delivered index, publishes `ToServerWebSocketClose
    /// { hibernate: true }` and emits [`CloseReason::Hibernated`]. The socket is forgotten (its
    /// metadata is kept; a later actor start restores it). Answer the persist as usual: nothing
    /// is acked, so the gateway replays what it still holds after the next wake and the restore
    /// drops what was already persisted; and the actor's stop ([`Action::ActorStopped`]) waits
    /// for the answer, so the actor's next start reads the durable index.
    ///
    /// This is a drain primitive: **stop the actor next** ([`actor_stopping`](Self::actor_stopping)).
    /// Only the actor's next start restores the socket, while the gateway asks for a wake as soon
    /// as it hibernates a request with messages pending (always, since nothing is acked here). A
    /// wake routed to this runner while the actor still runs finds no socket: the replay is
    /// dropped and the gateway collects the request by its ack timeout.
    ///
    /// # Errors
    /// [`SocketError::UnknownSocket`]; [`SocketError::NotOpen`];
    /// [`SocketError::NotHibernatable`].
    pub fn hibernate(&mut self, now: Timestamp, socket: SocketId) -> Result<(), SocketError> {
        self.advance(now);
        let slot = self
            .slot_of(socket)
            .ok_or(SocketError::UnknownSocket { socket })?;
        let s = self
            .socket_ref(slot)
            .ok_or(SocketError::UnknownSocket { socket })?;
        if s.phase != Phase::Open {
            return Err(SocketError::NotOpen { socket });
        }
        if !s.hibernatable {
            return Err(SocketError::NotHibernatable { socket });
        }
        // Its actor's stop waits for this persist: an actor restarted on ActorStopped must not
        // read the metadata before the write lands, or it resumes behind it.
        let aslot = s.actor;
        let earlier = s.persist.in_flight.map(|f| f.index);
        self.emit_persist(slot);
        let mut hand_back = None;
        if let Some(s) = slot_mut(&mut self.slots, slot) {
            hand_back = s.persist.in_flight.take().map(|f| f.index);
        }
        if let Some(index) = earlier {
            self.push_orphan(
                socket,
                persist::Orphan {
                    index,
                    hand_back: None,
                },
            );
        }
        if let Some(index) = hand_back {
            self.push_orphan(
                socket,
                persist::Orphan {
                    index,
                    hand_back: Some(aslot),
                },
            );
            if let Some(actor) = self.actors.get_mut(aslot).and_then(Option::as_mut) {
                actor.hand_backs += 1;
            }
        }
        let framing = self.config.framing;
        if let Some(s) = slot_mut(&mut self.slots, slot) {
            publish_on(
                &mut self.actions,
                framing,
                s,
                ToServerTunnelMessageKind::WebSocketClose(ToServerWebSocketClose {
                    code: None,
                    reason: None,
                    hibernate: true,
                }),
            );
        }
        self.stats.closed_hibernated += 1;
        self.actions.push_back(Action::Closed {
            socket,
            reason: CloseReason::Hibernated,
        });
        let actor_id = self.actor_id_of(slot);
        self.remember_handed_back(socket, &actor_id);
        self.remove_socket(slot);
        self.finish();
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Time and outputs
    // -----------------------------------------------------------------------------------------

    /// Fires every deadline at or before `now`: persist debounces, persist retries, gap
    /// timeouts. Early or repeated calls do nothing.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let now = self.advance(now);
        while let Some(entry) = self.timers.peek() {
            if entry.at > now {
                break;
            }
            let _ = self.timers.pop();
            if !timer_is_live(&self.slots, &entry) {
                continue;
            }
            self.fire(now, entry);
        }
        self.finish();
    }

    /// The next deadline, if any; call [`handle_timeout`](Self::handle_timeout) then. O(1).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers.peek().map(|e| e.at)
    }

    /// The next action, in the order produced.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    // -----------------------------------------------------------------------------------------
    // Getters
    // -----------------------------------------------------------------------------------------

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> RunnerStats {
        self.stats
    }

    /// A snapshot of one socket, if the runner knows it.
    #[must_use]
    pub fn socket(&self, id: SocketId) -> Option<SocketInfo> {
        let s = self.socket_ref(self.slot_of(id)?)?;
        let actor = self.actors.get(s.actor)?.as_ref()?;
        Some(s.info(&actor.id))
    }

    /// A snapshot of one actor, if the runner knows it.
    #[must_use]
    pub fn actor(&self, actor_id: &str) -> Option<ActorInfo> {
        self.actor_by_id(actor_id).map(Actor::info)
    }

    /// Number of sockets the runner holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.live_sockets
    }

    /// Whether the runner holds no socket.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.live_sockets == 0
    }

    /// Clamps `now` so it never goes backwards.
    fn advance(&mut self, now: Timestamp) -> Timestamp {
        if now > self.now {
            self.now = now;
        }
        self.now
    }
}
