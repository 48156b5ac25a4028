//! The control engine: the engine side of Rivet's runner protocol v7 for every runner connection
//! and actor of one engine process, wired to a [`Gateway`].
//!
//! [`Control`] plays the part of Rivet's engine (pegboard and its runner connections) around
//! hws's gateway: it runs the runner handshake and gives runner ids, pings every connection,
//! declares silent runners lost, places actors on runners with free slots, numbers their
//! generations, sends start and stop commands with checkpoints and resends the unacknowledged
//! ones when a runner reconnects, applies the runners' events exactly once and acknowledges
//! them, keeps each actor's list of hibernating requests for `CommandStartActor`, and drives the
//! gateway: a wake request starts the actor, `Running` wakes its hibernating requests, a stopped
//! actor hibernates (or closes) all its requests. It does no I/O and reads no clock.
//!
//! # Why the engine owns the gateway
//!
//! Every rule above is a conversation between runner state and gateway state: the route of a
//! request is the runner its actor runs on, `Running` must wake exactly the requests listed in the
//! start command, a gateway ping is answered by whoever knows whether the runner is connected,
//! and a record write must land in the actor's list before the next start. Owning the
//! [`Gateway`] keeps all of that inside one state machine: the adapter has one event loop with
//! one `poll_action`, one `poll_timeout` and one `handle_timeout`, and no ordering between two
//! engines to get right. Client input goes through [`Control::open`], [`Control::client_message`]
//! and [`Control::client_close`]; the engine hands back the gateway's client-side actions as
//! [`Action::Gateway`] and keeps the hibernating records itself (in memory, like the rest of its
//! state; the gateway's record confirmations are answered at once).
//!
//! # Driving contract
//!
//! Same as the other engines: every input takes `now`, which never decreases; after **every**
//! call drain [`Control::poll_action`] until `None` and perform the actions in order; then read
//! [`Control::poll_timeout`] and call [`Control::handle_timeout`] when that instant arrives
//! (early or repeated calls do nothing). Runner connections are reported with
//! [`Control::runner_connected`], [`Control::handle_runner_frame`] and
//! [`Control::runner_disconnected`].
//!
//! # Actor states
//!
//! ```text
//!             start_actor / wake request / open
//!  Sleeping ───────────────────────────────────► Pending ──runner with a free slot──┐
//!     ▲  ▲                                          (no runner yet)                 │
//!     │  │                                                      CommandStartActor   ▼
//!     │  │ StopTimeout, RunnerLost,                                             Starting
//!     │  │ Stopped                                   Running event: wake requests  │
//!     │  └────────────── Stopping ◄── sleep/stop intent, stop_actor ── Running ◄───┘
//!     │                                  CommandStopActor
//!     └── StartTimeout, RunnerLost (from Starting or Running)
//! ```
//!
//! A stopped actor's hibernatable requests hibernate and the others close
//! ([`Gateway::actor_stopped`] for each); a destroyed actor's requests all close. When a
//! request that needs its actor asked for a wake while the actor was stopping, the actor starts
//! again as soon as it stopped, with a new generation.
//!
//! # Checkpoints
//!
//! Every command carries the actor, its generation and an index that grows per actor; every
//! event carries the actor, its generation and the runner's index for that generation. The
//! engine keeps a command until the runner acknowledges it (`ToServerAckCommands`, or an event
//! of that generation that shows the command was carried out) and resends the rest to a runner
//! that comes back with the same key within the lost threshold; a generation given up on by a
//! start or stop timeout keeps its stop command queued for its runner until the runner
//! acknowledges it, so it cannot keep running there unseen (one stop per abandoned generation:
//! the runner may still run an older one when a newer start was lost with its link). It
//! applies each event at most once (an index at or below the last one applied is a duplicate),
//! acknowledges every event it saw, and ignores events of older generations.
//!
//! # Example
//!
//! A runner connects, an actor starts on it, and the engine answers each step; the runner's side
//! is written by hand here (see [`crate::session`] for the real one).
//!
//! ```
//! use hibernating_ws::control::{Action, ActorSpec, ConnId, Control, ControlConfig};
//! use hibernating_ws::gateway::{Gateway, GatewayConfig};
//! use hibernating_ws::wire::{self, ActorConfig, ActorState, ActorCheckpoint, Command, Event,
//!     EventActorStateUpdate, EventWrapper, GatewayId, ToClient, ToServer, ToServerEvents,
//!     ToServerInit};
//! use hibernating_ws::Timestamp;
//!
//! let now = Timestamp::from_secs(1);
//! let gateway = Gateway::new(GatewayConfig::default(), GatewayId(*b"gw01"), now)?;
//! let mut control = Control::new(ControlConfig::default(), gateway, 42, now)?;
//! let sent = |control: &mut Control| -> Vec<ToClient> {
//!     let mut out = Vec::new();
//!     while let Some(action) = control.poll_action() {
//!         if let Action::Send { frame, .. } = action {
//!             out.push(wire::decode(&frame).expect("engine frames decode"));
//!         }
//!     }
//!     out
//! };
//!
//! // The runner connects and introduces itself.
//! control.runner_connected(now, ConnId(1), "runner-key")?;
//! let init = ToServer::Init(ToServerInit {
//!     name: "default".into(),
//!     version: 1,
//!     total_slots: 10,
//!     prepopulate_actor_names: None,
//!     metadata: None,
//! });
//! control.handle_runner_frame(now, ConnId(1), &wire::encode(&init))?;
//! assert!(matches!(sent(&mut control)[..], [ToClient::Init(_)]));
//!
//! // An actor is created and started: the runner gets CommandStartActor, generation 0.
//! let config = ActorConfig { name: "chat".into(), key: None, create_ts: 0, input: None };
//! control.create_actor(now, "actor-1", ActorSpec { runner_name: "default".into(), config })?;
//! control.start_actor(now, "actor-1")?;
//! let [ToClient::Commands(commands)] = &sent(&mut control)[..] else { panic!() };
//! assert!(matches!(commands.0[0].inner, Command::StartActor(_)));
//! assert_eq!(commands.0[0].checkpoint.generation, 0);
//!
//! // The runner reports Running; the engine acknowledges the event.
//! let running = ToServer::Events(ToServerEvents(vec![EventWrapper {
//!     checkpoint: ActorCheckpoint { actor_id: "actor-1".into(), generation: 0, index: 0 },
//!     inner: Event::ActorStateUpdate(EventActorStateUpdate { state: ActorState::Running }),
//! }]));
//! control.handle_runner_frame(now, ConnId(1), &wire::encode(&running))?;
//! assert!(matches!(sent(&mut control)[..], [ToClient::AckEvents(_)]));
//! assert_eq!(control.actor("actor-1").unwrap().phase, hibernating_ws::control::ActorPhase::Running);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::config::ConfigError;
use crate::gateway::{Gateway, RouteId};
use crate::time::Timestamp;
use crate::wire::RequestId;

mod action;
mod actor;
mod bridge;
#[cfg(any(test, feature = "sim"))]
mod check;
mod cluster;
mod config;
mod conn;
mod error;
mod events;
mod frames;
mod stats;

pub use action::{Action, ConnCloseReason, OpenFailure, OutFrame, StopReason};
pub use actor::{ActorInfo, ActorPhase, ActorSpec};
pub use cluster::RemoteRunner;
pub use config::ControlConfig;
pub use error::{ActorError, ClusterError, ConnectError, OpenError, ReceiveError};
pub use stats::{ControlStats, RunnerInfo};

use actor::Actor;
use conn::{Conn, RunnerEntry};

/// A runner WebSocket connection, numbered by the caller (unique among open connections).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What a timer entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    Conn(ConnId),
    Runner(u64),
    Actor(u32),
}

/// The control engine. See the [module docs](self).
#[derive(Debug)]
pub struct Control {
    config: ControlConfig,
    gateway: Gateway,
    /// Distinguishes this engine's runner ids from those of an earlier run.
    epoch: u64,
    now: Timestamp,
    conns: BTreeMap<ConnId, Conn>,
    /// Runners by sequence number (also their gateway route).
    runners: BTreeMap<u64, RunnerEntry>,
    /// Runner key → sequence number.
    keys: BTreeMap<String, u64>,
    next_runner: u64,
    /// Routes to runners connected to other nodes (cluster mode), numbered with the runners.
    remote: BTreeMap<u64, RemoteRunner>,
    /// (node, runner id) → route number.
    remote_index: BTreeMap<(String, String), u64>,
    actors: Vec<Option<Actor>>,
    free_actors: Vec<u32>,
    actor_index: BTreeMap<String, u32>,
    /// Every gateway request and waiting open → its actor's slot.
    requests: BTreeMap<RequestId, u32>,
    /// Actors waiting for a runner, first come first placed (entries no longer pending are
    /// skipped).
    pending: VecDeque<u32>,
    timers: BTreeSet<(Timestamp, TimerKey)>,
    actions: VecDeque<Action>,
    stats: ControlStats,
}

impl Control {
    /// An engine with no runners and no actors, driving `gateway`.
    ///
    /// `epoch` goes into every runner id: give each run of the engine a different one (for
    /// example a random number or the boot time), so that a runner reconnecting after an engine
    /// restart never gets an id it had before and stops its stale actors.
    ///
    /// # Errors
    /// [`ConfigError::OutOfBounds`] if `config` fails [`ControlConfig::validate`].
    pub fn new(
        config: ControlConfig,
        gateway: Gateway,
        epoch: u64,
        now: Timestamp,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            gateway,
            epoch,
            now,
            conns: BTreeMap::new(),
            runners: BTreeMap::new(),
            keys: BTreeMap::new(),
            next_runner: 1,
            remote: BTreeMap::new(),
            remote_index: BTreeMap::new(),
            actors: Vec::new(),
            free_actors: Vec::new(),
            actor_index: BTreeMap::new(),
            requests: BTreeMap::new(),
            pending: VecDeque::new(),
            timers: BTreeSet::new(),
            actions: VecDeque::new(),
            stats: ControlStats::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ControlConfig {
        &self.config
    }

    /// The gateway, read-only (its requests and stats).
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// The gateway route of a runner (what [`gateway::RequestInfo::route`](crate::gateway::RequestInfo)
    /// shows for requests of actors on it).
    pub fn route_of(&self, runner_id: &str) -> Option<RouteId> {
        self.runners
            .iter()
            .find(|(_, r)| r.id == runner_id)
            .map(|(&seq, _)| RouteId(seq))
    }

    // ---------------------------------------------------------------------------------------
    // Time and output
    // ---------------------------------------------------------------------------------------

    /// Fires every timer due at `now` (handshake, ping, lost runner, actor start and stop, and
    /// the gateway's). Early or repeated calls do nothing.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let now = self.advance(now);
        self.gateway.handle_timeout(now);
        while let Some(&(at, key)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            match key {
                TimerKey::Conn(conn) => self.fire_conn(now, conn),
                TimerKey::Runner(seq) => self.fire_runner(now, seq),
                TimerKey::Actor(slot) => self.fire_actor(now, slot),
            }
        }
        self.pump(now);
    }

    /// The next instant [`handle_timeout`](Self::handle_timeout) must be called at, or `None`.
    /// Never later than needed; after `handle_timeout(now)` always after `now`.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let own = self.timers.first().map(|&(at, _)| at);
        match (own, self.gateway.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next action to perform, in order. Drain it after every call.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Counters and gauges.
    pub fn stats(&self) -> ControlStats {
        ControlStats {
            connections: self.conns.len() as u64,
            runners: self.runners.len() as u64,
            actors: self.actor_index.len() as u64,
            ..self.stats
        }
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

    /// Moves the timer of `key` from `old` to `new` (`Timestamp::MAX` = disarmed).
    fn rearm(&mut self, key: TimerKey, old: Timestamp, new: Timestamp) {
        if old == new {
            return;
        }
        if old != Timestamp::MAX {
            self.timers.remove(&(old, key));
        }
        if new != Timestamp::MAX {
            self.timers.insert((new, key));
        }
    }

    fn actor_ref(&self, slot: u32) -> Option<&Actor> {
        self.actors.get(slot as usize).and_then(Option::as_ref)
    }

    fn actor_mut(&mut self, slot: u32) -> Option<&mut Actor> {
        self.actors.get_mut(slot as usize).and_then(Option::as_mut)
    }

    fn slot_of(&self, actor_id: &str) -> Option<u32> {
        self.actor_index.get(actor_id).copied()
    }
}
