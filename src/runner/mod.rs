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
mod error;
mod persist;
mod restore;
mod socket;
mod stats;
mod timer;

#[cfg(test)]
mod tests;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;

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

use crate::close::{CloseFrame, KnownClose};
use crate::config::ConfigError;
use crate::index::MessageIndex;
use crate::time::Timestamp;
use crate::wire::{
    self, HibernatingRequest, MessageId, ToClient, ToClientTunnelMessage,
    ToClientTunnelMessageKind, ToClientWebSocketOpen, ToGateway, ToGatewayPong, ToRunner, ToServer,
    ToServerTunnelMessage, ToServerTunnelMessageKind, ToServerWebSocketClose,
    ToServerWebSocketMessage, ToServerWebSocketMessageAck, ToServerWebSocketOpen,
};

use actor::Actor;
use socket::{Phase, Socket, len_u64};
use timer::{TimerEntry, TimerKind, TimerQueue};

/// Heap entries allowed beyond three per socket before stale ones are compacted away.
const TIMER_SLACK: usize = 64;

/// A socket slot: the socket and a generation that changes whenever the slot is freed, so timer
/// entries of a removed socket never fire for its successor.
#[derive(Debug, Default)]
struct Slot {
    generation: u64,
    socket: Option<Socket>,
}

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
///     ToClientWebSocketMessage { data: b"hello".to_vec(), binary: false },
/// )))?;
/// let Some(Action::Message { index, data, .. }) = runner.poll_action() else { panic!() };
/// assert_eq!((index.get(), data.as_slice()), (1, &b"hello"[..]));
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
    socket_index: BTreeMap<SocketId, usize>,
    /// Socket ids of starting actors: their messages queue behind the actor's restore.
    routes: BTreeMap<SocketId, usize>,
    /// Persists whose socket is gone and whose result has not come, per socket id in the order
    /// they were requested. A result is matched here first (the oldest entry with its index),
    /// so a late result of a closed socket never settles a persist of a newer socket with the
    /// same id; a hand-back's entry also keeps its actor's stop waiting.
    orphans: BTreeMap<SocketId, VecDeque<persist::Orphan>>,
    /// Entries in `orphans`.
    orphan_count: usize,
    live_sockets: usize,
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
            socket_index: BTreeMap::new(),
            routes: BTreeMap::new(),
            orphans: BTreeMap::new(),
            orphan_count: 0,
            live_sockets: 0,
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
                ActorState::Stopping => ActorError::Stopping,
                ActorState::Starting | ActorState::Running => ActorError::AlreadyStarting,
            });
        }
        let mut seen = alloc::collections::BTreeSet::new();
        let hibernating: Vec<SocketId> = hibernating
            .into_iter()
            .map(SocketId::from)
            .filter(|id| seen.insert(*id))
            .collect();
        let mut actor = Actor::new(actor_id.into(), hibernating);
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
            return Err(ActorError::UnknownActor);
        };
        let Some(actor) = self.actors.get_mut(aslot).and_then(Option::as_mut) else {
            return Err(ActorError::UnknownActor);
        };
        if actor.state == ActorState::Stopping {
            return Err(ActorError::Stopping);
        }
        actor.state = ActorState::Stopping;
        actor.queue.clear();
        actor.queued_bytes = 0;
        actor.hibernating.clear();
        let routes = core::mem::take(&mut actor.routes);
        let ids: Vec<SocketId> = actor.sockets.iter().copied().collect();
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
    /// for `ToRunnerClose`, and everything
    /// [`handle_tunnel_message`](Self::handle_tunnel_message) returns. Every error is counted;
    /// none needs handling beyond logging.
    pub fn handle_frame(&mut self, now: Timestamp, bytes: &[u8]) -> Result<(), ReceiveError> {
        let now = self.advance(now);
        self.stats.frames_received += 1;
        let result = self.receive_frame(now, bytes);
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
        let slot = self.slot_of(socket).ok_or(SocketError::UnknownSocket)?;
        let framing = self.config.framing;
        let s = slot_mut(&mut self.slots, slot).ok_or(SocketError::UnknownSocket)?;
        if s.phase != Phase::Connecting {
            return Err(SocketError::WrongState);
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
        let slot = self.slot_of(socket).ok_or(SocketError::UnknownSocket)?;
        let framing = self.config.framing;
        let s = slot_mut(&mut self.slots, slot).ok_or(SocketError::UnknownSocket)?;
        if s.phase != Phase::Connecting {
            return Err(SocketError::WrongState);
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
        let slot = self.slot_of(socket).ok_or(SendError::UnknownSocket)?;
        let framing = self.config.framing;
        let max = self.config.max_message_size;
        let s = slot_mut(&mut self.slots, slot).ok_or(SendError::UnknownSocket)?;
        if s.phase != Phase::Open {
            return Err(SendError::NotOpen);
        }
        if data.len() > max {
            return Err(SendError::MessageTooLarge {
                size: data.len(),
                max,
            });
        }
        let index = publish_on(
            &mut self.actions,
            framing,
            s,
            ToServerTunnelMessageKind::WebSocketMessage(ToServerWebSocketMessage {
                data: data.to_vec(),
                binary,
            }),
        );
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
        let slot = self.slot_of(socket).ok_or(SocketError::UnknownSocket)?;
        let framing = self.config.framing;
        let s = slot_mut(&mut self.slots, slot).ok_or(SocketError::UnknownSocket)?;
        if s.phase != Phase::Open {
            return Err(SocketError::NotOpen);
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
        let slot = self.slot_of(socket).ok_or(SocketError::UnknownSocket)?;
        let s = self.socket_ref(slot).ok_or(SocketError::UnknownSocket)?;
        if s.phase != Phase::Open {
            return Err(SocketError::NotOpen);
        }
        if !s.hibernatable {
            return Err(SocketError::NotHibernatable);
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

    // -----------------------------------------------------------------------------------------
    // Internals: receive path
    // -----------------------------------------------------------------------------------------

    fn receive_frame(&mut self, now: Timestamp, bytes: &[u8]) -> Result<(), ReceiveError> {
        let limits = &self.config.decode_limits;
        let msg = match self.config.framing {
            Framing::PubSub { version } => {
                match wire::decode_versioned::<ToRunner>(bytes, limits) {
                    Ok((_, ToRunner::TunnelMessage(m))) => m,
                    Ok((_, ToRunner::Ping(probe))) => {
                        let answer = ToGateway::Pong(ToGatewayPong {
                            request_id: probe.request_id,
                            ts: probe.ts,
                        });
                        self.actions.push_back(Action::Publish {
                            gateway_id: probe.gateway_id,
                            frame: wire::encode_versioned(version, &answer),
                        });
                        self.stats.pongs += 1;
                        return Ok(());
                    }
                    Ok((_, ToRunner::Close)) => {
                        return Err(self.dropped(ReceiveError::Unsupported {
                            kind: "runner_close",
                        }));
                    }
                    Err(e) => return Err(self.dropped(ReceiveError::Malformed(e))),
                }
            }
            Framing::RunnerSocket => match wire::decode_with::<ToClient>(bytes, limits) {
                Ok(ToClient::TunnelMessage(m)) => m,
                Err(e) => return Err(self.dropped(ReceiveError::Malformed(e))),
            },
        };
        self.dispatch(now, msg)
    }

    /// Counts a dropped input and hands the error back.
    fn dropped(&mut self, e: ReceiveError) -> ReceiveError {
        let counter = match &e {
            ReceiveError::Malformed(_) => &mut self.stats.dropped_malformed,
            ReceiveError::UnknownActor => &mut self.stats.dropped_unknown_actor,
            ReceiveError::UnknownSocket => &mut self.stats.dropped_unknown_socket,
            ReceiveError::NotOpen => &mut self.stats.dropped_not_open,
            ReceiveError::QueueFull => &mut self.stats.dropped_queue_full,
            ReceiveError::SocketLimit => &mut self.stats.dropped_socket_limit,
            ReceiveError::Unsupported { .. } => &mut self.stats.dropped_unsupported,
        };
        *counter += 1;
        e
    }

    /// Routes one tunnel message: to a live socket, to a starting actor's queue, or away.
    fn dispatch(&mut self, now: Timestamp, msg: ToClientTunnelMessage) -> Result<(), ReceiveError> {
        let id = SocketId::new(msg.message_id.gateway_id, msg.message_id.request_id);
        let index = msg.message_id.message_index;
        match msg.kind {
            ToClientTunnelMessageKind::WebSocketMessage(m) => {
                if let Some(&slot) = self.socket_index.get(&id) {
                    return self.on_message(now, slot, index, m.data, m.binary);
                }
                if let Some(&aslot) = self.routes.get(&id) {
                    let msg = ToClientTunnelMessage {
                        message_id: msg.message_id,
                        kind: ToClientTunnelMessageKind::WebSocketMessage(m),
                    };
                    return self.enqueue(aslot, id, msg, false);
                }
                Err(self.dropped(ReceiveError::UnknownSocket))
            }
            ToClientTunnelMessageKind::WebSocketOpen(open) => {
                self.on_open(now, id, msg.message_id, open)
            }
            ToClientTunnelMessageKind::WebSocketClose(c) => {
                if let Some(&slot) = self.socket_index.get(&id) {
                    self.on_gateway_close(
                        slot,
                        CloseFrame {
                            code: c.code,
                            reason: c.reason,
                        },
                    );
                    return Ok(());
                }
                if let Some(&aslot) = self.routes.get(&id) {
                    let msg = ToClientTunnelMessage {
                        message_id: msg.message_id,
                        kind: ToClientTunnelMessageKind::WebSocketClose(c),
                    };
                    return self.enqueue(aslot, id, msg, false);
                }
                Err(self.dropped(ReceiveError::UnknownSocket))
            }
            ToClientTunnelMessageKind::RequestStart(_) => {
                Err(self.dropped(ReceiveError::Unsupported {
                    kind: "request_start",
                }))
            }
            ToClientTunnelMessageKind::RequestChunk(_) => {
                Err(self.dropped(ReceiveError::Unsupported {
                    kind: "request_chunk",
                }))
            }
            ToClientTunnelMessageKind::RequestAbort => {
                Err(self.dropped(ReceiveError::Unsupported {
                    kind: "request_abort",
                }))
            }
        }
    }

    /// Queues a message for a starting actor.
    fn enqueue(
        &mut self,
        aslot: usize,
        id: SocketId,
        msg: ToClientTunnelMessage,
        route: bool,
    ) -> Result<(), ReceiveError> {
        let size = len_u64(wire::encoded_len(&msg));
        let max_count = self.config.max_queued_per_actor;
        let max_bytes = self.config.max_queued_bytes_per_actor;
        let Some(actor) = self.actors.get_mut(aslot).and_then(Option::as_mut) else {
            return Err(self.dropped(ReceiveError::UnknownActor));
        };
        if actor.queue.len() >= max_count || actor.queued_bytes.saturating_add(size) > max_bytes {
            return Err(self.dropped(ReceiveError::QueueFull));
        }
        actor.queue.push_back(msg);
        actor.queued_bytes = actor.queued_bytes.saturating_add(size);
        if route && !self.routes.contains_key(&id) {
            self.routes.insert(id, aslot);
            actor.routes.push(id);
        }
        self.stats.queued += 1;
        Ok(())
    }

    fn on_open(
        &mut self,
        now: Timestamp,
        id: SocketId,
        message_id: MessageId,
        open: ToClientWebSocketOpen,
    ) -> Result<(), ReceiveError> {
        let k = message_id.message_index;
        let Some(&aslot) = self.actor_index.get(open.actor_id.as_str()) else {
            return Err(self.actor_not_found(id));
        };
        let state = match self.actors.get(aslot).and_then(Option::as_ref) {
            Some(actor) => actor.state,
            None => return Err(self.actor_not_found(id)),
        };
        match state {
            ActorState::Stopping => Err(self.actor_not_found(id)),
            ActorState::Starting => {
                let msg = ToClientTunnelMessage {
                    message_id,
                    kind: ToClientTunnelMessageKind::WebSocketOpen(open),
                };
                self.enqueue(aslot, id, msg, true)
            }
            ActorState::Running => {
                if let Some(&slot) = self.socket_index.get(&id) {
                    self.on_duplicate_open(now, slot, k);
                    return Ok(());
                }
                if self.live_sockets >= self.config.max_sockets {
                    let kind = close_kind(&KnownClose::ServerError.frame(), false);
                    self.publish_stateless(id, kind);
                    return Err(self.dropped(ReceiveError::SocketLimit));
                }
                let socket = Socket::new(id, aslot, k, self.config.persist_retry_initial);
                self.insert_socket(socket);
                self.stats.opens += 1;
                self.actions.push_back(Action::Open {
                    socket: id,
                    actor_id: open.actor_id,
                    index: k,
                    path: open.path,
                    headers: open.headers,
                });
                Ok(())
            }
        }
    }

    /// Answers an open for an actor this runner does not run with close 1011 `Actor not found`
    /// (outgoing index 0: the runner has no state for the socket).
    fn actor_not_found(&mut self, id: SocketId) -> ReceiveError {
        self.stats.actor_not_found += 1;
        let kind = close_kind(&KnownClose::ActorNotFound.frame(), false);
        self.publish_stateless(id, kind);
        self.dropped(ReceiveError::UnknownActor)
    }

    /// A second open for a known socket (`docs/protocol.md#duplicate-open`), without upstream's
    /// reset to 0: an open at or
    /// behind the socket (index 0 included) is ignored, an open ahead of it advances it; the
    /// open is re-sent either way.
    fn on_duplicate_open(&mut self, now: Timestamp, slot: usize, k: MessageIndex) {
        self.stats.duplicate_opens += 1;
        let framing = self.config.framing;
        let Some(s) = slot_mut(&mut self.slots, slot) else {
            return;
        };
        if s.phase != Phase::Open {
            // Not answered yet (connecting) or being flushed (stopping): nothing to re-send.
            return;
        }
        let mut persist = false;
        if s.hibernatable {
            let p = s.last_delivered;
            // Index 0 is the request's first open: a second one is a stale copy (a duplicated or
            // delayed frame), never a renumbering, since the gateway numbers a request once.
            // Rewinding the socket to 0 here (as upstream does) would rewind the durable index
            // under the app and redeliver what the gateway still retransmits. Only an open ahead of
            // the socket (an upstream guard retry) advances.
            if k != MessageIndex::ZERO && k.is_after(p) {
                s.delivered_seq = s.delivered_seq.saturating_add(u64::from(k.distance(p)));
                s.last_delivered = k;
                s.held.drop_through(s.delivered_seq);
                s.persist.dirty = true;
                s.persist.first_unpersisted_at.get_or_insert(now);
                persist = true;
            }
        }
        let can_hibernate = s.hibernatable;
        publish_on(
            &mut self.actions,
            framing,
            s,
            ToServerTunnelMessageKind::WebSocketOpen(ToServerWebSocketOpen { can_hibernate }),
        );
        if persist {
            self.deliver_held(now, slot);
            self.schedule_persist(now, slot);
        }
    }

    fn on_message(
        &mut self,
        now: Timestamp,
        slot: usize,
        r: MessageIndex,
        data: Vec<u8>,
        binary: bool,
    ) -> Result<(), ReceiveError> {
        let Some(s) = slot_mut(&mut self.slots, slot) else {
            return Err(self.dropped(ReceiveError::UnknownSocket));
        };
        if s.phase != Phase::Open {
            return Err(self.dropped(ReceiveError::NotOpen));
        }
        if !s.hibernatable {
            self.deliver(now, slot, r, data, binary);
            return Ok(());
        }
        let p = s.last_delivered;
        let delta = r.distance(p);
        if delta == 0 || r.is_before(p) {
            self.stats.duplicates += 1;
            self.maybe_reack(now, slot, r);
            return Ok(());
        }
        if delta == 1 {
            s.awaiting_replay = false;
            self.deliver(now, slot, r, data, binary);
            self.deliver_held(now, slot);
            self.schedule_persist(now, slot);
            return Ok(());
        }
        if s.awaiting_replay {
            // A restored socket has not seen the gateway's replay yet: a message past a gap is
            // one the gateway published before it hibernated the request (still in flight when
            // the actor restarted on this runner). The replay, which follows the wake, resends
            // it after the missing ones: drop it; neither close (`Close`) nor hold it (`Await`,
            // whose held buffer it could overflow).
            self.stats.dropped_before_replay += 1;
            return Ok(());
        }
        match self.config.gap_policy {
            GapPolicy::Close => {
                self.stats.gaps += 1;
                self.close_index_skip(slot);
            }
            GapPolicy::Await => self.hold(now, slot, r, delta, data, binary),
        }
        Ok(())
    }

    /// Delivers one message in order (no validation: the caller did it).
    fn deliver(
        &mut self,
        now: Timestamp,
        slot: usize,
        r: MessageIndex,
        data: Vec<u8>,
        binary: bool,
    ) {
        let Some(s) = slot_mut(&mut self.slots, slot) else {
            return;
        };
        let len = len_u64(data.len());
        s.last_delivered = r;
        s.delivered_seq = s.delivered_seq.saturating_add(1);
        if s.hibernatable {
            let p = &mut s.persist;
            p.dirty = true;
            p.unpersisted_bytes = p.unpersisted_bytes.saturating_add(len);
            p.first_unpersisted_at.get_or_insert(now);
        }
        let socket = s.id;
        self.stats.delivered += 1;
        self.stats.delivered_bytes = self.stats.delivered_bytes.saturating_add(len);
        self.actions.push_back(Action::Message {
            socket,
            index: r,
            data,
            binary,
        });
    }

    /// Holds an out-of-order message ([`GapPolicy::Await`]); closes on overflow.
    fn hold(
        &mut self,
        now: Timestamp,
        slot: usize,
        r: MessageIndex,
        delta: u16,
        data: Vec<u8>,
        binary: bool,
    ) {
        let max_messages = self.config.max_held_messages;
        let max_bytes = self.config.max_held_bytes;
        let gap_timeout = self.config.gap_timeout;
        let Some(s) = slot_mut(&mut self.slots, slot) else {
            return;
        };
        let seq = s.delivered_seq.saturating_add(u64::from(delta));
        if s.held.messages.contains_key(&seq) {
            self.stats.duplicates += 1;
            return;
        }
        self.stats.gaps += 1;
        let len = len_u64(data.len());
        if s.held.len() >= max_messages || s.held.bytes.saturating_add(len) > max_bytes {
            self.stats.held_overflows += 1;
            self.close_index_skip(slot);
            return;
        }
        s.held.bytes = s.held.bytes.saturating_add(len);
        s.held.messages.insert(
            seq,
            socket::HeldMessage {
                index: r,
                data,
                binary,
                arrived: now,
            },
        );
        self.stats.held += 1;
        if s.gap_deadline.is_none()
            && let Some(at) = now.checked_add(gap_timeout)
        {
            s.gap_deadline = Some(at);
            self.arm(slot, at, TimerKind::Gap);
        }
    }

    /// Delivers held messages that are now in order and re-arms the gap deadline.
    fn deliver_held(&mut self, now: Timestamp, slot: usize) {
        loop {
            let Some(s) = slot_mut(&mut self.slots, slot) else {
                return;
            };
            if s.held.is_empty() {
                break;
            }
            let Some(m) = s.held.take(s.delivered_seq.saturating_add(1)) else {
                break;
            };
            self.stats.held_delivered += 1;
            self.deliver(now, slot, m.index, m.data, m.binary);
        }
        let gap_timeout = self.config.gap_timeout;
        let Some(s) = slot_mut(&mut self.slots, slot) else {
            return;
        };
        let want = s
            .held
            .oldest_arrival()
            .and_then(|t| t.checked_add(gap_timeout));
        if want != s.gap_deadline {
            s.gap_deadline = want;
            if let Some(at) = want {
                self.arm(slot, at, TimerKind::Gap);
            }
        }
    }

    /// A duplicate of a persisted message: re-ack the persisted index (rate-limited), so a lost
    /// ack heals (`docs/design.md#re-ack-heals-lost-acks`).
    fn maybe_reack(&mut self, now: Timestamp, slot: usize, r: MessageIndex) {
        let interval = self.config.reack_interval;
        let framing = self.config.framing;
        let Some(s) = slot_mut(&mut self.slots, slot) else {
            return;
        };
        let Some(lp) = s.last_persisted else {
            return;
        };
        if !r.is_at_or_before(lp) {
            return;
        }
        if s.last_ack_at
            .is_some_and(|t| now < t.saturating_add(interval))
        {
            return;
        }
        send_ack(&mut self.actions, framing, s, lp, now);
        self.stats.acks_sent += 1;
        self.stats.reacks += 1;
    }

    fn on_gateway_close(&mut self, slot: usize, frame: CloseFrame) {
        let Some(s) = self.socket_ref(slot) else {
            return;
        };
        let socket = s.id;
        let hibernatable = s.hibernatable;
        self.stats.closed_gateway += 1;
        self.actions.push_back(Action::Closed {
            socket,
            reason: CloseReason::GatewayClosed(frame),
        });
        if hibernatable {
            self.push_delete_metadata(slot);
        }
        self.remove_socket(slot);
    }

    /// Gap (or held overflow/timeout): one close 1008 `ws.message_index_skip` to the gateway,
    /// a local close, and the metadata deleted.
    fn close_index_skip(&mut self, slot: usize) {
        let framing = self.config.framing;
        let Some(s) = slot_mut(&mut self.slots, slot) else {
            return;
        };
        publish_on(
            &mut self.actions,
            framing,
            s,
            close_kind(&KnownClose::MessageIndexSkip.frame(), false),
        );
        let socket = s.id;
        let hibernatable = s.hibernatable;
        self.stats.gap_closes += 1;
        self.actions.push_back(Action::Closed {
            socket,
            reason: CloseReason::MessageIndexSkip,
        });
        if hibernatable {
            self.push_delete_metadata(slot);
        }
        self.remove_socket(slot);
    }

    // -----------------------------------------------------------------------------------------
    // Internals: timers
    // -----------------------------------------------------------------------------------------

    fn fire(&mut self, now: Timestamp, entry: TimerEntry) {
        let slot = entry.slot;
        let Some(s) = slot_mut(&mut self.slots, slot) else {
            return;
        };
        match entry.kind {
            TimerKind::Persist => {
                s.persist.deadline = None;
                self.schedule_persist(now, slot);
            }
            TimerKind::Retry => {
                s.persist.retry_at = None;
                if s.phase == Phase::Open {
                    self.emit_persist(slot);
                }
            }
            TimerKind::Gap => {
                s.gap_deadline = None;
                self.stats.gap_timeouts += 1;
                self.close_index_skip(slot);
            }
        }
    }

    fn arm(&mut self, slot: usize, at: Timestamp, kind: TimerKind) {
        if let Some(entry) = self.slots.get(slot) {
            self.timers.push(TimerEntry {
                at,
                slot,
                generation: entry.generation,
                kind,
            });
        }
    }

    /// Ends every public mutating call: drops stale timer entries from the top of the heap so
    /// [`poll_timeout`](Self::poll_timeout) is exact, and compacts the heap when stale entries
    /// pile up.
    fn finish(&mut self) {
        while let Some(top) = self.timers.peek() {
            if timer_is_live(&self.slots, &top) {
                break;
            }
            let _ = self.timers.pop();
        }
        let limit = self
            .live_sockets
            .saturating_mul(6)
            .saturating_add(TIMER_SLACK);
        if self.timers.len() > limit {
            let slots = &self.slots;
            self.timers.retain(|e| timer_is_live(slots, e));
        }
    }

    /// Clamps `now` so it never goes backwards.
    fn advance(&mut self, now: Timestamp) -> Timestamp {
        if now > self.now {
            self.now = now;
        }
        self.now
    }

    // -----------------------------------------------------------------------------------------
    // Internals: tables
    // -----------------------------------------------------------------------------------------

    fn actor_by_id(&self, actor_id: &str) -> Option<&Actor> {
        let slot = *self.actor_index.get(actor_id)?;
        self.actors.get(slot)?.as_ref()
    }

    fn slot_of(&self, id: SocketId) -> Option<usize> {
        self.socket_index.get(&id).copied()
    }

    fn socket_ref(&self, slot: usize) -> Option<&Socket> {
        self.slots.get(slot)?.socket.as_ref()
    }

    fn actor_id_of(&self, slot: usize) -> String {
        self.socket_ref(slot)
            .and_then(|s| self.actors.get(s.actor))
            .and_then(Option::as_ref)
            .map(|a| a.id.clone())
            .unwrap_or_default()
    }

    fn insert_socket(&mut self, socket: Socket) -> usize {
        let id = socket.id;
        let aslot = socket.actor;
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.slots.push(Slot::default());
            self.slots.len() - 1
        });
        if let Some(entry) = self.slots.get_mut(slot) {
            entry.socket = Some(socket);
        }
        self.socket_index.insert(id, slot);
        if let Some(actor) = self.actors.get_mut(aslot).and_then(Option::as_mut) {
            actor.sockets.insert(id);
        }
        self.live_sockets += 1;
        self.stats.sockets = len_u64(self.live_sockets);
        slot
    }

    /// Forgets a socket; finishes its actor's stop if it was the last one.
    fn remove_socket(&mut self, slot: usize) {
        let Some(entry) = self.slots.get_mut(slot) else {
            return;
        };
        let Some(socket) = entry.socket.take() else {
            return;
        };
        entry.generation = entry.generation.wrapping_add(1);
        self.free_slots.push(slot);
        self.socket_index.remove(&socket.id);
        if let Some(f) = socket.persist.in_flight {
            // Its result may still come: keep it from settling a newer socket's persist.
            self.push_orphan(
                socket.id,
                persist::Orphan {
                    index: f.index,
                    hand_back: None,
                },
            );
        }
        self.live_sockets = self.live_sockets.saturating_sub(1);
        self.stats.sockets = len_u64(self.live_sockets);
        if let Some(actor) = self.actors.get_mut(socket.actor).and_then(Option::as_mut) {
            actor.sockets.remove(&socket.id);
        }
        self.maybe_finish_actor(socket.actor);
    }

    /// A stopping actor with no socket and no hand-back persist left is removed and reported.
    fn maybe_finish_actor(&mut self, aslot: usize) {
        let Some(entry) = self.actors.get_mut(aslot) else {
            return;
        };
        let done = entry.as_ref().is_some_and(|a| {
            a.state == ActorState::Stopping && a.sockets.is_empty() && a.hand_backs == 0
        });
        if !done {
            return;
        }
        let Some(actor) = entry.take() else {
            return;
        };
        self.free_actors.push(aslot);
        self.actor_index.remove(&actor.id);
        self.stats.actors = len_u64(self.actor_index.len());
        self.actions
            .push_back(Action::ActorStopped { actor_id: actor.id });
    }

    /// Removes the routes a starting actor registered.
    fn clear_routes(&mut self, aslot: usize, routes: Vec<SocketId>) {
        for id in routes {
            if self.routes.get(&id) == Some(&aslot) {
                self.routes.remove(&id);
            }
        }
    }

    fn push_delete_metadata(&mut self, slot: usize) {
        let actor_id = self.actor_id_of(slot);
        if let Some(s) = self.socket_ref(slot) {
            self.actions.push_back(Action::DeleteMetadata {
                socket: s.id,
                actor_id,
            });
        }
    }

    /// Publishes a tunnel message for a socket the runner keeps no state for (index 0).
    fn publish_stateless(&mut self, id: SocketId, kind: ToServerTunnelMessageKind) {
        let msg = ToServerTunnelMessage {
            message_id: MessageId {
                gateway_id: id.gateway_id,
                request_id: id.request_id,
                message_index: MessageIndex::ZERO,
            },
            kind,
        };
        self.actions.push_back(Action::Publish {
            gateway_id: id.gateway_id,
            frame: encode_tunnel(self.config.framing, msg),
        });
    }
}

/// The socket in `slot`, borrowing only the slot table.
fn slot_mut(slots: &mut [Slot], slot: usize) -> Option<&mut Socket> {
    slots.get_mut(slot)?.socket.as_mut()
}

/// Whether a heap entry still names a live deadline.
fn timer_is_live(slots: &[Slot], e: &TimerEntry) -> bool {
    let Some(slot) = slots.get(e.slot) else {
        return false;
    };
    if slot.generation != e.generation {
        return false;
    }
    let Some(s) = slot.socket.as_ref() else {
        return false;
    };
    let armed = match e.kind {
        TimerKind::Persist => s.persist.deadline,
        TimerKind::Retry => s.persist.retry_at,
        TimerKind::Gap => s.gap_deadline,
    };
    armed == Some(e.at)
}

/// Encodes a runner → gateway tunnel message per the framing.
fn encode_tunnel(framing: Framing, msg: ToServerTunnelMessage) -> Vec<u8> {
    match framing {
        Framing::PubSub { version } => {
            wire::encode_versioned(version, &ToGateway::TunnelMessage(msg))
        }
        Framing::RunnerSocket => wire::encode(&ToServer::TunnelMessage(msg)),
    }
}

/// Publishes a tunnel message for `s` with its next outgoing index; returns that index.
fn publish_on(
    actions: &mut VecDeque<Action>,
    framing: Framing,
    s: &mut Socket,
    kind: ToServerTunnelMessageKind,
) -> MessageIndex {
    let index = s.take_client_index();
    let msg = ToServerTunnelMessage {
        message_id: MessageId {
            gateway_id: s.id.gateway_id,
            request_id: s.id.request_id,
            message_index: index,
        },
        kind,
    };
    actions.push_back(Action::Publish {
        gateway_id: s.id.gateway_id,
        frame: encode_tunnel(framing, msg),
    });
    index
}

/// Publishes `ToServerWebSocketMessageAck { index }` and records it.
fn send_ack(
    actions: &mut VecDeque<Action>,
    framing: Framing,
    s: &mut Socket,
    index: MessageIndex,
    now: Timestamp,
) {
    publish_on(
        actions,
        framing,
        s,
        ToServerTunnelMessageKind::WebSocketMessageAck(ToServerWebSocketMessageAck { index }),
    );
    s.last_acked = index;
    s.last_ack_at = Some(now);
}

/// `ToServerWebSocketClose` carrying `frame`.
fn close_kind(frame: &CloseFrame, hibernate: bool) -> ToServerTunnelMessageKind {
    ToServerTunnelMessageKind::WebSocketClose(ToServerWebSocketClose {
        code: frame.code,
        reason: frame.reason.clone(),
        hibernate,
    })
}
