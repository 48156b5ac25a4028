//! The runner side of Rivet's runner protocol v7: one runner process's [`Session`] with an
//! engine, sans-IO.
//!
//! A session sends `ToServerInit` on every (re)connection, takes the engine's `ToClientInit`
//! (a changed runner id stops every actor of the old one), carries out `CommandStartActor` and
//! `CommandStopActor` exactly once per checkpoint and acknowledges them, reports actor state and
//! intents as events numbered per generation, keeps them until the engine acknowledges them and
//! resends them after a reconnect, answers pings, and feeds the tunnel to a
//! [`runner::Runner`] (which it owns): a start announces the actor with the gateway's list of
//! hibernating requests, the app restores it with its persisted sockets, and a stop persists
//! every hibernatable socket before `Stopped` is reported. It does no I/O and reads no clock.
//!
//! # Driving contract
//!
//! As for the other engines: every call takes `now`, which never decreases; after every call
//! drain [`Session::poll_action`] until `None` and perform the actions in order; then call
//! [`Session::handle_timeout`] at [`Session::poll_timeout`]. Report the WebSocket with
//! [`Session::connected`], [`Session::handle_frame`] and [`Session::disconnected`]. Socket-level
//! app calls (accept, send, persisted, …) go to [`Session::runner_mut`]; their actions come out
//! of [`Session::poll_action`] too.
//!
//! # Link states
//!
//! ```text
//!                connected: send ToServerInit
//!  Disconnected ────────────────────────────► AwaitingInit ──ToClientInit──► Ready
//!     ▲   │ lost threshold: stop every actor        │                          │
//!     │   └──────────► (Lost)                       │ disconnected             │ disconnected
//!     └─────────────────────────────────────────────┴──────────────────────────┘
//! ```
//!
//! Events produced while not `Ready` are kept and sent after the next `ToClientInit`, together
//! with every event the engine has not acknowledged. So are the tunnel engine's frames (acks,
//! messages to clients, closes), up to [`SessionConfig::max_offline_frames`] and
//! [`SessionConfig::max_offline_bytes`]: sent after a handshake that keeps the runner id,
//! dropped (and counted) when the id changed or the runner was lost.
//!
//! # Actor life
//!
//! `CommandStartActor` → [`Action::StartActor`] and a `Running` event at once (the engine then
//! wakes the gateway's hibernating requests; their replays queue in the tunnel engine) →
//! [`Session::restore`] → the actor runs → `CommandStopActor` (or the app's
//! [`Session::sleep_actor`] / [`Session::stop_actor`] intent, which makes the engine send it) →
//! every hibernatable socket persists → `Stopped` event and [`Action::ActorStopped`]. A stop
//! the engine asked for, or the actor asked for, reports [`StopCode::Ok`]; a stop after
//! [`Session::actor_failed`] reports [`StopCode::Error`].
//!
//! # Example
//!
//! A runner session and an engine ([`crate::control::Control`]) in memory: the runner connects,
//! an actor starts on it, and the runner's sleep intent makes the engine stop it.
//!
//! ```
//! use hibernating_ws::control::{self, ActorPhase, ActorSpec, ConnId, Control, ControlConfig};
//! use hibernating_ws::gateway::{Gateway, GatewayConfig};
//! use hibernating_ws::session::{self, Session, SessionConfig};
//! use hibernating_ws::wire::{ActorConfig, GatewayId};
//! use hibernating_ws::Timestamp;
//!
//! /// Moves frames both ways and restores every starting actor with no sockets.
//! fn pump(now: Timestamp, engine: &mut Control, runner: &mut Session) {
//!     loop {
//!         let mut idle = true;
//!         while let Some(action) = engine.poll_action() {
//!             idle = false;
//!             if let control::Action::Send { frame, .. } = action {
//!                 runner.handle_frame(now, &frame).expect("engine frames are valid");
//!             }
//!         }
//!         while let Some(action) = runner.poll_action() {
//!             idle = false;
//!             match action {
//!                 session::Action::Send { frame } => {
//!                     engine.handle_runner_frame(now, ConnId(1), &frame).expect("valid");
//!                 }
//!                 session::Action::StartActor { actor_id, .. } => {
//!                     runner.restore(now, &actor_id, vec![]).expect("starting");
//!                 }
//!                 _ => {}
//!             }
//!         }
//!         if idle {
//!             return;
//!         }
//!     }
//! }
//!
//! let now = Timestamp::from_secs(1);
//! let gateway = Gateway::new(GatewayConfig::default(), GatewayId(*b"gw01"), now)?;
//! let mut engine = Control::new(ControlConfig::default(), gateway, 1, now)?;
//! let mut runner = Session::new(SessionConfig::new("default", 8), now)?;
//!
//! engine.runner_connected(now, ConnId(1), "my-runner")?;
//! runner.connected(now);
//! pump(now, &mut engine, &mut runner);
//! assert_eq!(runner.link(), session::Link::Ready);
//!
//! let config = ActorConfig { name: "counter".into(), key: None, create_ts: 0, input: None };
//! engine.create_actor(now, "actor-1", ActorSpec { runner_name: "default".into(), config })?;
//! engine.start_actor(now, "actor-1")?;
//! pump(now, &mut engine, &mut runner);
//! assert_eq!(engine.actor("actor-1").unwrap().phase, ActorPhase::Running);
//!
//! runner.sleep_actor(now, "actor-1")?;
//! pump(now, &mut engine, &mut runner);
//! assert_eq!(engine.actor("actor-1").unwrap().phase, ActorPhase::Sleeping);
//! assert!(runner.runner().actor("actor-1").is_none());
//! assert_eq!(runner.unacked_events(), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;

use crate::config::ConfigError;
use crate::runner::{self, Framing, PersistedSocket, RestoreSummary, Runner};
use crate::time::Timestamp;
use crate::wire::{
    self, ActorCheckpoint, ActorIntent, ActorState, ActorStateStopped, CommandStartActor, Event,
    EventActorIntent, EventActorSetAlarm, EventActorStateUpdate, EventWrapper, ProtocolMetadata,
    StopCode, ToClient, ToServer, ToServerEvents, ToServerInit, ToServerKvRequest,
};

mod action;
mod commands;
mod config;
mod error;

pub use action::Action;
pub use config::SessionConfig;
pub use error::{SessionError, SessionReceiveError};

/// The state of the session's WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Link {
    /// No WebSocket.
    Disconnected,
    /// `ToServerInit` sent; waiting for `ToClientInit`.
    AwaitingInit,
    /// Handshake done.
    Ready,
}

#[derive(Debug)]
struct SessionActor {
    generation: u32,
    /// Last command index carried out for this actor (-1: none).
    last_command: i64,
    next_event: i64,
    /// Events the engine has not acknowledged, oldest first.
    events: VecDeque<EventWrapper>,
    /// The code the `Stopped` event will carry.
    stop_code: StopCode,
    stop_message: Option<String>,
    /// `actor_stopping` was called.
    stopping: bool,
    /// The tunnel engine reported it stopped (the entry stays while events are unacknowledged).
    gone: bool,
    /// It belongs to an earlier runner id: it stops without reporting anything.
    orphaned: bool,
    /// A start of a newer generation that waits for this one to stop.
    queued_start: Option<(u32, i64, CommandStartActor)>,
    /// The index of a stop of that queued generation, which arrived before it could start: it
    /// is carried out right after the start, in command order.
    queued_stop: Option<i64>,
}

/// A runner process's session with the engine. See the [module docs](self).
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    runner: Runner,
    link: Link,
    runner_id: Option<String>,
    metadata: Option<ProtocolMetadata>,
    actors: BTreeMap<String, SessionActor>,
    /// Intents and alarms not acknowledged (bounded by `max_unacked_events`).
    unacked_intents: usize,
    /// When the runner counts as lost (`MAX`: not disconnected, or no threshold known).
    lost_at: Timestamp,
    /// Tunnel frames produced while the link was not ready, oldest first.
    offline: VecDeque<Vec<u8>>,
    /// Bytes in `offline`.
    offline_bytes: usize,
    /// Tunnel frames dropped because `offline` was full or the runner id changed.
    offline_dropped: u64,
    /// `drain` was called: `ToServerStopping` is repeated after every handshake.
    draining: bool,
    now: Timestamp,
    actions: VecDeque<Action>,
}

impl Session {
    /// A disconnected session with no actors.
    ///
    /// # Errors
    /// [`ConfigError::OutOfBounds`] if `config` fails [`SessionConfig::validate`].
    pub fn new(mut config: SessionConfig, now: Timestamp) -> Result<Self, ConfigError> {
        config.validate()?;
        config.runner.framing = Framing::RunnerSocket;
        let runner = Runner::new(config.runner.clone(), now)?;
        Ok(Self {
            config,
            runner,
            link: Link::Disconnected,
            runner_id: None,
            metadata: None,
            actors: BTreeMap::new(),
            unacked_intents: 0,
            lost_at: Timestamp::MAX,
            offline: VecDeque::new(),
            offline_bytes: 0,
            offline_dropped: 0,
            draining: false,
            now,
            actions: VecDeque::new(),
        })
    }

    /// The WebSocket to the engine is open: sends `ToServerInit`.
    pub fn connected(&mut self, now: Timestamp) {
        self.advance(now);
        self.link = Link::AwaitingInit;
        self.lost_at = Timestamp::MAX;
        let init = ToServerInit {
            name: self.config.name.clone(),
            version: self.config.version,
            total_slots: self.config.total_slots,
            prepopulate_actor_names: self.config.prepopulate_actor_names.clone(),
            metadata: self.config.metadata.clone(),
        };
        self.send(&ToServer::Init(init));
        self.pump();
    }

    /// The WebSocket closed. Actors keep running for the engine's runner-lost threshold; if no
    /// handshake completes by then, they are stopped ([`Action::Lost`]).
    pub fn disconnected(&mut self, now: Timestamp) {
        let now = self.advance(now);
        if self.link == Link::Disconnected {
            return;
        }
        self.link = Link::Disconnected;
        if let Some(meta) = self.metadata
            && meta.runner_lost_threshold > 0
        {
            let ms = u64::try_from(meta.runner_lost_threshold).unwrap_or(u64::MAX);
            self.lost_at = now.saturating_add(core::time::Duration::from_millis(ms));
        }
        self.pump();
    }

    /// A frame from the engine: a plain `ToClient` message.
    ///
    /// # Errors
    /// [`SessionReceiveError::Malformed`] and everything
    /// [`handle_message`](Self::handle_message) returns.
    pub fn handle_frame(
        &mut self,
        now: Timestamp,
        bytes: &[u8],
    ) -> Result<(), SessionReceiveError> {
        let msg = wire::decode_with::<ToClient>(bytes, &self.config.decode_limits);
        match msg {
            Ok(msg) => self.handle_message(now, msg),
            Err(e) => {
                self.advance(now);
                Err(SessionReceiveError::Malformed(e))
            }
        }
    }

    /// An already-decoded message from the engine.
    ///
    /// # Errors
    /// [`SessionReceiveError::NotConnected`] (anything but `ToClientInit` before the handshake),
    /// [`SessionReceiveError::NoFreeSlot`], [`SessionReceiveError::Runner`],
    /// [`SessionReceiveError::Tunnel`]. Commands of a batch that fail are skipped; the others are
    /// carried out.
    pub fn handle_message(
        &mut self,
        now: Timestamp,
        msg: ToClient,
    ) -> Result<(), SessionReceiveError> {
        let now = self.advance(now);
        let result = self.dispatch(now, msg);
        self.pump();
        result
    }

    /// The app loaded the actor's persisted sockets: the tunnel engine restores them and
    /// processes what queued meanwhile ([`Runner::restore`]).
    ///
    /// # Errors
    /// [`SessionError::UnknownActor`], [`SessionError::Runner`].
    pub fn restore(
        &mut self,
        now: Timestamp,
        actor_id: &str,
        persisted: Vec<PersistedSocket>,
    ) -> Result<RestoreSummary, SessionError> {
        let now = self.advance(now);
        self.live(actor_id)?;
        let result = self
            .runner
            .restore(now, actor_id, persisted)
            .map_err(|error| SessionError::Runner {
                actor_id: actor_id.into(),
                error,
            });
        self.pump();
        result
    }

    /// The actor wants to sleep (`ActorIntentSleep`); the engine answers with a stop.
    ///
    /// # Errors
    /// [`SessionError::UnknownActor`], [`SessionError::EventBacklogFull`].
    pub fn sleep_actor(&mut self, now: Timestamp, actor_id: &str) -> Result<(), SessionError> {
        self.intent(now, actor_id, ActorIntent::Sleep)
    }

    /// The actor wants to be destroyed (`ActorIntentStop`); the engine answers with a stop.
    ///
    /// # Errors
    /// [`SessionError::UnknownActor`], [`SessionError::EventBacklogFull`].
    pub fn stop_actor(&mut self, now: Timestamp, actor_id: &str) -> Result<(), SessionError> {
        self.intent(now, actor_id, ActorIntent::Stop)
    }

    /// The actor sets (`Some`, milliseconds since the Unix epoch) or clears its alarm.
    ///
    /// # Errors
    /// [`SessionError::UnknownActor`], [`SessionError::EventBacklogFull`].
    pub fn set_alarm(
        &mut self,
        now: Timestamp,
        actor_id: &str,
        alarm_ts: Option<i64>,
    ) -> Result<(), SessionError> {
        self.advance(now);
        self.live(actor_id)?;
        self.reserve_intent(actor_id)?;
        self.emit_event(
            actor_id,
            Event::ActorSetAlarm(EventActorSetAlarm { alarm_ts }),
        );
        self.pump();
        Ok(())
    }

    /// The actor failed: it stops here at once and reports `Stopped` with [`StopCode::Error`].
    ///
    /// # Errors
    /// [`SessionError::UnknownActor`], [`SessionError::Runner`].
    pub fn actor_failed(
        &mut self,
        now: Timestamp,
        actor_id: &str,
        message: Option<String>,
    ) -> Result<(), SessionError> {
        let now = self.advance(now);
        let actor = self.live(actor_id)?;
        actor.stop_code = StopCode::Error;
        actor.stop_message = message;
        if !actor.stopping {
            actor.stopping = true;
            self.runner
                .actor_stopping(now, actor_id)
                .map_err(|error| SessionError::Runner {
                    actor_id: actor_id.into(),
                    error,
                })?;
        }
        self.pump();
        Ok(())
    }

    /// The runner is shutting down (`ToServerStopping`): the engine places no new actors here
    /// and stops the current ones.
    /// While disconnected, it is sent after the next handshake.
    pub fn drain(&mut self, now: Timestamp) {
        self.advance(now);
        self.draining = true;
        if self.link == Link::Ready {
            self.send(&ToServer::Stopping);
        }
        self.pump();
    }

    /// Sends a KV request (answered with [`Action::KvResponse`]).
    pub fn kv_request(&mut self, now: Timestamp, request: ToServerKvRequest) {
        self.advance(now);
        self.send(&ToServer::KvRequest(request));
        self.pump();
    }

    /// The tunnel engine, for socket-level calls (`accept`, `send`, `persisted`, …). Its actions
    /// come out of [`poll_action`](Self::poll_action). Do not call its actor life-cycle methods
    /// (`actor_starting`, `actor_stopping`, `restore`): the session does.
    pub fn runner_mut(&mut self) -> &mut Runner {
        &mut self.runner
    }

    /// The tunnel engine, read-only.
    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    /// The link state.
    pub fn link(&self) -> Link {
        self.link
    }

    /// The runner id of the last handshake.
    pub fn runner_id(&self) -> Option<&str> {
        self.runner_id.as_deref()
    }

    /// Tunnel frames kept while the link is not ready: how many, and their bytes.
    pub fn offline_frames(&self) -> (usize, usize) {
        (self.offline.len(), self.offline_bytes)
    }

    /// Tunnel frames dropped while the link was not ready: past
    /// [`SessionConfig::max_offline_frames`] or [`SessionConfig::max_offline_bytes`], or kept
    /// for a runner id the engine replaced.
    pub fn offline_frames_dropped(&self) -> u64 {
        self.offline_dropped
    }

    /// Events not yet acknowledged by the engine, across all actors.
    pub fn unacked_events(&self) -> usize {
        self.actors.values().map(|a| a.events.len()).sum()
    }

    /// Fires the lost-runner deadline and the tunnel engine's timers.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let now = self.advance(now);
        self.runner.handle_timeout(now);
        if self.lost_at <= now {
            self.lost_at = Timestamp::MAX;
            self.orphan_all(now);
            self.runner_id = None;
            self.drop_offline();
            self.actions.push_back(Action::Lost);
        }
        self.pump();
    }

    /// The next instant [`handle_timeout`](Self::handle_timeout) must be called at.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let own = (self.lost_at != Timestamp::MAX).then_some(self.lost_at);
        match (own, self.runner.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next action to perform, in order. Drain it after every call.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        if self.actions.is_empty() {
            self.pump();
        }
        self.actions.pop_front()
    }

    // ---------------------------------------------------------------------------------------
    // Internals
    // ---------------------------------------------------------------------------------------

    fn advance(&mut self, now: Timestamp) -> Timestamp {
        if now > self.now {
            self.now = now;
        }
        self.now
    }

    fn send(&mut self, msg: &ToServer) {
        self.actions.push_back(Action::Send {
            frame: wire::encode(msg),
        });
    }

    /// An actor that runs here (not stopped, not orphaned).
    fn live(&mut self, actor_id: &str) -> Result<&mut SessionActor, SessionError> {
        match self.actors.get_mut(actor_id) {
            Some(a) if !a.gone && !a.orphaned => Ok(a),
            _ => Err(SessionError::UnknownActor {
                actor_id: actor_id.into(),
            }),
        }
    }

    fn reserve_intent(&mut self, actor_id: &str) -> Result<(), SessionError> {
        if self.unacked_intents >= self.config.max_unacked_events {
            return Err(SessionError::EventBacklogFull {
                actor_id: actor_id.into(),
            });
        }
        self.unacked_intents += 1;
        Ok(())
    }

    fn intent(
        &mut self,
        now: Timestamp,
        actor_id: &str,
        intent: ActorIntent,
    ) -> Result<(), SessionError> {
        self.advance(now);
        let actor = self.live(actor_id)?;
        if intent == ActorIntent::Stop {
            actor.stop_code = StopCode::Ok;
        }
        self.reserve_intent(actor_id)?;
        self.emit_event(actor_id, Event::ActorIntent(EventActorIntent { intent }));
        self.pump();
        Ok(())
    }

    /// Numbers an event of the actor's current generation, keeps it, and sends it when ready.
    fn emit_event(&mut self, actor_id: &str, inner: Event) {
        let Some(actor) = self.actors.get_mut(actor_id) else {
            return;
        };
        let wrapper = EventWrapper {
            checkpoint: ActorCheckpoint {
                actor_id: actor_id.into(),
                generation: actor.generation,
                index: actor.next_event,
            },
            inner,
        };
        actor.next_event = actor.next_event.saturating_add(1);
        actor.events.push_back(wrapper.clone());
        if self.link == Link::Ready {
            self.send(&ToServer::Events(ToServerEvents(alloc::vec![wrapper])));
        }
    }

    fn emit_state(&mut self, actor_id: &str, state: ActorState) {
        self.emit_event(
            actor_id,
            Event::ActorStateUpdate(EventActorStateUpdate { state }),
        );
    }

    /// Moves the tunnel engine's actions out: publishes become sends (kept while the link is
    /// not ready), a stopped actor reports.
    fn pump(&mut self) {
        while let Some(action) = self.runner.poll_action() {
            match action {
                runner::Action::Publish { frame, .. } if self.link == Link::Ready => {
                    self.actions.push_back(Action::Send { frame });
                }
                runner::Action::Publish { frame, .. } => self.keep_offline(frame),
                runner::Action::ActorStopped { actor_id } => self.on_stopped(&actor_id),
                other => self.actions.push_back(Action::Runner(other)),
            }
        }
    }

    /// Keeps a tunnel frame for the next handshake, within the limits.
    fn keep_offline(&mut self, frame: Vec<u8>) {
        let bytes = self.offline_bytes.saturating_add(frame.len());
        if self.offline.len() >= self.config.max_offline_frames
            || bytes > self.config.max_offline_bytes
        {
            self.offline_dropped += 1;
            return;
        }
        self.offline_bytes = bytes;
        self.offline.push_back(frame);
    }

    /// Drops the kept tunnel frames (their runner id is gone).
    pub(super) fn drop_offline(&mut self) {
        self.offline_dropped += self.offline.len() as u64;
        self.offline.clear();
        self.offline_bytes = 0;
    }

    /// Sends the kept tunnel frames, oldest first.
    pub(super) fn flush_offline(&mut self) {
        self.offline_bytes = 0;
        while let Some(frame) = self.offline.pop_front() {
            self.actions.push_back(Action::Send { frame });
        }
    }

    /// The tunnel engine finished stopping the actor.
    fn on_stopped(&mut self, actor_id: &str) {
        let Some(actor) = self.actors.get_mut(actor_id) else {
            return;
        };
        actor.gone = true;
        let generation = actor.generation;
        if !actor.orphaned {
            let stopped = ActorStateStopped {
                code: actor.stop_code,
                message: actor.stop_message.take(),
            };
            self.emit_state(actor_id, ActorState::Stopped(stopped));
        }
        self.actions.push_back(Action::ActorStopped {
            actor_id: actor_id.into(),
            generation,
        });
        let queued = self
            .actors
            .get_mut(actor_id)
            .and_then(|a| a.queued_start.take());
        if let Some((generation, index, start)) = queued {
            let stop = self
                .actors
                .get_mut(actor_id)
                .and_then(|a| a.queued_stop.take());
            self.start(self.now, actor_id, generation, index, start);
            if let Some(stop) = stop {
                // Already acknowledged in order with the start; a runner error here leaves the
                // actor running, which the engine's resent stop retries.
                let _ = self.command(
                    self.now,
                    actor_id,
                    generation,
                    stop,
                    crate::wire::Command::StopActor,
                );
            }
        }
        self.forget_if_done(actor_id);
    }

    /// Removes a stopped actor once nothing of it waits for an acknowledgement.
    fn forget_if_done(&mut self, actor_id: &str) {
        if self
            .actors
            .get(actor_id)
            .is_some_and(|a| a.gone && a.events.is_empty() && a.queued_start.is_none())
        {
            self.actors.remove(actor_id);
        }
    }

    /// Every actor belongs to a runner id that is gone: stop them without reporting.
    fn orphan_all(&mut self, now: Timestamp) {
        self.unacked_intents = 0;
        let ids: Vec<String> = self.actors.keys().cloned().collect();
        for id in ids {
            let Some(actor) = self.actors.get_mut(&id) else {
                continue;
            };
            actor.events.clear();
            actor.queued_start = None;
            actor.queued_stop = None;
            if actor.gone {
                self.actors.remove(&id);
                continue;
            }
            actor.orphaned = true;
            if !actor.stopping {
                actor.stopping = true;
                let _ = self.runner.actor_stopping(now, &id);
            }
        }
    }
}
