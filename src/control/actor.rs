//! Actors: their states, placement, generations and start/stop commands.

use alloc::collections::{BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::gateway::{Frame, OpenRequest};
use crate::time::Timestamp;
use crate::wire::{ActorConfig, GatewayId, HibernatingRequest, RequestId};

use super::{Action, ActorError, Control, OpenFailure, OutFrame, StopReason, TimerKey};

/// What an actor is and where it may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorSpec {
    /// The runner name (pool) whose runners may host it (`ToServerInit::name`).
    pub runner_name: String,
    /// Sent in every `CommandStartActor`.
    pub config: ActorConfig,
}

/// The state of an actor (see the [module docs](super) for the diagram).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ActorPhase {
    /// Not running anywhere.
    Sleeping,
    /// Wants to run; no runner with a free slot yet.
    Pending,
    /// `CommandStartActor` sent; waiting for `Running`.
    Starting,
    /// Running.
    Running,
    /// `CommandStopActor` sent; waiting for `Stopped`.
    Stopping,
}

impl fmt::Display for ActorPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sleeping => "sleeping",
            Self::Pending => "pending",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Stopping => "stopping",
        })
    }
}

/// A snapshot of one actor ([`Control::actor`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActorInfo {
    /// Its state.
    pub phase: ActorPhase,
    /// Its latest generation (`None` before its first start).
    pub generation: Option<u32>,
    /// The runner it is placed on.
    pub runner_id: Option<String>,
    /// Its gateway requests.
    pub requests: usize,
    /// Its hibernatable requests (the list the next `CommandStartActor` carries).
    pub hibernating_requests: Vec<RequestId>,
    /// Opens waiting for it to run.
    pub waiting_opens: usize,
    /// Commands not yet acknowledged.
    pub unacked_commands: usize,
}

/// A command kept until the runner acknowledges it: its checkpoint and its encoded
/// `ToClientCommands` frame (sent again as is).
#[derive(Debug)]
pub(super) struct StoredCommand {
    pub(super) generation: u32,
    pub(super) index: i64,
    pub(super) start: bool,
    pub(super) frame: Frame,
}

#[derive(Debug)]
pub(super) struct Actor {
    pub(super) id: String,
    pub(super) spec: ActorSpec,
    pub(super) phase: ActorPhase,
    pub(super) generation: Option<u32>,
    /// Runner sequence number while Starting, Running or Stopping.
    pub(super) runner: Option<u64>,
    pub(super) next_command_index: i64,
    /// Commands of the current generation the runner has not acknowledged, oldest first (at
    /// most a start and a stop), kept encoded for resending.
    pub(super) commands: VecDeque<StoredCommand>,
    /// Last event index applied for the current generation (-1: none).
    pub(super) last_event: i64,
    /// Start or stop deadline (`MAX`: none).
    pub(super) deadline: Timestamp,
    pub(super) destroy_after_stop: bool,
    pub(super) start_after_stop: bool,
    /// Gateway requests of this actor.
    pub(super) requests: BTreeSet<RequestId>,
    /// Its hibernatable requests (their records).
    pub(super) records: BTreeSet<RequestId>,
    /// Opens waiting for `Running`.
    pub(super) waiting: VecDeque<(RequestId, OpenRequest)>,
}

impl Control {
    /// Defines an actor (it starts [`ActorPhase::Sleeping`]).
    ///
    /// # Errors
    /// [`ActorError::AlreadyExists`], [`ActorError::TooManyActors`].
    pub fn create_actor(
        &mut self,
        now: Timestamp,
        actor_id: &str,
        spec: ActorSpec,
    ) -> Result<(), ActorError> {
        self.advance(now);
        if self.actor_index.contains_key(actor_id) {
            return Err(ActorError::AlreadyExists {
                actor_id: actor_id.into(),
            });
        }
        if self.actor_index.len() >= self.config.max_actors {
            return Err(ActorError::TooManyActors {
                actor_id: actor_id.into(),
            });
        }
        let actor = Actor {
            id: actor_id.into(),
            spec,
            phase: ActorPhase::Sleeping,
            generation: None,
            runner: None,
            next_command_index: 0,
            commands: VecDeque::new(),
            last_event: -1,
            deadline: Timestamp::MAX,
            destroy_after_stop: false,
            start_after_stop: false,
            requests: BTreeSet::new(),
            records: BTreeSet::new(),
            waiting: VecDeque::new(),
        };
        let slot = if let Some(slot) = self.free_actors.pop() {
            if let Some(entry) = self.actors.get_mut(slot as usize) {
                *entry = Some(actor);
            }
            slot
        } else {
            let Ok(slot) = u32::try_from(self.actors.len()) else {
                return Err(ActorError::TooManyActors {
                    actor_id: actor_id.into(),
                });
            };
            self.actors.push(Some(actor));
            slot
        };
        self.actor_index.insert(actor_id.into(), slot);
        Ok(())
    }

    /// Makes the actor run: a sleeping actor is placed on a runner (or waits for one); a
    /// stopping actor starts again once it stopped; otherwise nothing changes.
    ///
    /// # Errors
    /// [`ActorError::UnknownActor`].
    pub fn start_actor(&mut self, now: Timestamp, actor_id: &str) -> Result<(), ActorError> {
        let now = self.advance(now);
        let slot = self.known(actor_id)?;
        self.ensure_running(now, slot);
        self.pump(now);
        Ok(())
    }

    /// Puts the actor to sleep: `CommandStopActor` if it is starting or running; a pending actor
    /// goes back to sleep at once.
    ///
    /// # Errors
    /// [`ActorError::UnknownActor`].
    pub fn stop_actor(&mut self, now: Timestamp, actor_id: &str) -> Result<(), ActorError> {
        let now = self.advance(now);
        let slot = self.known(actor_id)?;
        if let Some(actor) = self.actor_mut(slot) {
            actor.start_after_stop = false;
        }
        self.stop(now, slot);
        self.pump(now);
        Ok(())
    }

    /// Destroys the actor: it stops if it runs, then it is removed and all its requests (and
    /// waiting opens) close.
    ///
    /// # Errors
    /// [`ActorError::UnknownActor`].
    pub fn destroy_actor(&mut self, now: Timestamp, actor_id: &str) -> Result<(), ActorError> {
        let now = self.advance(now);
        let slot = self.known(actor_id)?;
        if let Some(actor) = self.actor_mut(slot) {
            actor.destroy_after_stop = true;
            actor.start_after_stop = false;
        }
        match self.actor_ref(slot).map(|a| a.phase) {
            Some(ActorPhase::Sleeping | ActorPhase::Pending) => self.remove_actor(now, slot),
            _ => self.stop(now, slot),
        }
        self.pump(now);
        Ok(())
    }

    /// A snapshot of an actor.
    pub fn actor(&self, actor_id: &str) -> Option<ActorInfo> {
        let actor = self.actor_ref(self.slot_of(actor_id)?)?;
        Some(ActorInfo {
            phase: actor.phase,
            generation: actor.generation,
            runner_id: actor.runner.and_then(|seq| {
                self.runners
                    .get(&seq)
                    .map(|r| r.id.clone())
                    .or_else(|| self.remote.get(&seq).map(|r| r.runner_id.clone()))
            }),
            requests: actor.requests.len(),
            hibernating_requests: actor.records.iter().copied().collect(),
            waiting_opens: actor.waiting.len(),
            unacked_commands: actor.commands.len(),
        })
    }

    /// Number of actors.
    pub fn actor_count(&self) -> usize {
        self.actor_index.len()
    }

    fn known(&self, actor_id: &str) -> Result<u32, ActorError> {
        self.slot_of(actor_id)
            .ok_or_else(|| ActorError::UnknownActor {
                actor_id: actor_id.into(),
            })
    }

    // ---------------------------------------------------------------------------------------
    // Transitions
    // ---------------------------------------------------------------------------------------

    /// Sleeping → placed (or pending); Stopping → start again after the stop.
    pub(super) fn ensure_running(&mut self, now: Timestamp, slot: u32) {
        let cluster = self.config.cluster;
        let Some(actor) = self.actor_mut(slot) else {
            return;
        };
        match actor.phase {
            ActorPhase::Sleeping if cluster => {
                actor.phase = ActorPhase::Pending;
                let actor_id = actor.id.clone();
                self.actions.push_back(Action::PlaceActor { actor_id });
            }
            ActorPhase::Sleeping => {
                actor.phase = ActorPhase::Pending;
                self.pending.push_back(slot);
                self.place_pending(now);
            }
            ActorPhase::Stopping => actor.start_after_stop = true,
            ActorPhase::Pending | ActorPhase::Starting | ActorPhase::Running => {}
        }
    }

    /// Places every pending actor that has a runner with a free slot, oldest first.
    pub(super) fn place_pending(&mut self, now: Timestamp) {
        if self.pending.is_empty() {
            return;
        }
        let mut waiting = VecDeque::new();
        while let Some(slot) = self.pending.pop_front() {
            let Some(actor) = self.actor_ref(slot) else {
                continue;
            };
            if actor.phase != ActorPhase::Pending {
                continue;
            }
            match self.pick_runner(&actor.spec.runner_name) {
                Some(seq) => self.start_on(now, slot, seq),
                None => waiting.push_back(slot),
            }
        }
        self.pending = waiting;
    }

    /// The connected, non-draining runner of that name with the most free slots (lowest
    /// sequence number on ties).
    fn pick_runner(&self, name: &str) -> Option<u64> {
        let mut best: Option<(u64, usize)> = None;
        for (&seq, runner) in &self.runners {
            if runner.conn.is_none() || runner.draining || runner.name != name {
                continue;
            }
            let free = (runner.total_slots as usize).saturating_sub(runner.actors.len());
            if free > 0 && best.is_none_or(|(_, f)| free > f) {
                best = Some((seq, free));
            }
        }
        best.map(|(seq, _)| seq)
    }

    /// Pending → Starting on runner `seq`: a new generation and its `CommandStartActor`.
    fn start_on(&mut self, now: Timestamp, slot: u32, seq: u64) {
        let Some(actor) = self.actor_ref(slot) else {
            return;
        };
        let generation = actor.generation.map_or(0, |g| g.wrapping_add(1));
        self.start_placed(now, slot, seq, generation, &[]);
    }

    /// Pending → Starting on runner `seq` at `generation`; `CommandStartActor` lists this
    /// gateway's records and `others`.
    pub(super) fn start_placed(
        &mut self,
        now: Timestamp,
        slot: u32,
        seq: u64,
        generation: u32,
        others: &[HibernatingRequest],
    ) {
        let gateway_id = self.gateway.gateway_id();
        let timeout = self.config.actor_start_timeout;
        let Some(actor) = self.actor_mut(slot) else {
            return;
        };
        actor.generation = Some(generation);
        actor.phase = ActorPhase::Starting;
        actor.runner = Some(seq);
        actor.last_event = -1;
        actor.commands.clear();
        let old = actor.deadline;
        actor.deadline = now + timeout;
        let new = actor.deadline;
        let frame = actor.push_command(Some((gateway_id, others)));
        self.rearm(TimerKey::Actor(slot), old, new);
        if let Some(runner) = self.runners.get_mut(&seq) {
            runner.actors.insert(slot);
        }
        self.stats.starts += 1;
        self.send_command(seq, frame);
    }

    /// Starting or Running → Stopping (`CommandStopActor`); Pending → Sleeping (or removed).
    pub(super) fn stop(&mut self, now: Timestamp, slot: u32) {
        if self.runs_elsewhere(slot) {
            // Its host node runs its life cycle.
            return;
        }
        let threshold = self.config.actor_stop_threshold;
        let Some(actor) = self.actor_mut(slot) else {
            return;
        };
        match actor.phase {
            ActorPhase::Starting | ActorPhase::Running => {
                actor.phase = ActorPhase::Stopping;
                let old = actor.deadline;
                actor.deadline = now + threshold;
                let new = actor.deadline;
                let frame = actor.push_command(None);
                let seq = actor.runner;
                self.rearm(TimerKey::Actor(slot), old, new);
                if let Some(seq) = seq {
                    self.send_command(seq, frame);
                }
            }
            ActorPhase::Pending => {
                actor.phase = ActorPhase::Sleeping;
                if actor.destroy_after_stop {
                    self.remove_actor(now, slot);
                } else {
                    self.fail_waiting(slot, &OpenFailure::ActorStartFailed);
                }
            }
            ActorPhase::Sleeping | ActorPhase::Stopping => {}
        }
    }

    /// The actor stopped (`Stopped` event, a timeout, or its runner was lost): its requests
    /// hibernate or close, and it sleeps, is removed, or starts again.
    pub(super) fn stopped(&mut self, now: Timestamp, slot: u32, reason: StopReason) {
        let Some(actor) = self.actor_mut(slot) else {
            return;
        };
        let generation = actor.generation.unwrap_or(0);
        let seq = actor.runner.take();
        actor.phase = ActorPhase::Sleeping;
        // A generation given up on by a timeout may still run on its runner (the stop command
        // went nowhere while it was disconnected): the runner keeps the stop until it
        // acknowledges it.
        let abandoned = if matches!(reason, StopReason::StartTimeout | StopReason::StopTimeout) {
            actor
                .commands
                .iter()
                .rev()
                .find(|c| !c.start)
                .map(|c| (c.generation, c.index, c.frame.clone()))
        } else {
            None
        };
        actor.commands.clear();
        let old = core::mem::replace(&mut actor.deadline, Timestamp::MAX);
        let destroy = actor.destroy_after_stop;
        let restart = actor.start_after_stop || !actor.waiting.is_empty();
        actor.start_after_stop = false;
        let actor_id = actor.id.clone();
        self.rearm(TimerKey::Actor(slot), old, Timestamp::MAX);
        if let Some(runner) = seq.and_then(|seq| self.runners.get_mut(&seq)) {
            runner.actors.remove(&slot);
            if let Some((generation, index, frame)) = abandoned {
                runner.abandon(slot, generation, index, frame);
            }
        }
        self.stats.stops += 1;
        let start_failed = matches!(reason, StopReason::StartTimeout);
        let elsewhere = matches!(reason, StopReason::Elsewhere);
        self.actions.push_back(Action::ActorStopped {
            actor_id,
            generation,
            reason,
        });
        if destroy {
            self.remove_actor(now, slot);
        } else {
            // Hibernatable requests hibernate (and may ask for a wake at once), the others close;
            // the gateway's actions wait in its queue until `pump`, so the set is not touched
            // meanwhile. The only error is a request already gone.
            let requests = self
                .actor_mut(slot)
                .map(|a| core::mem::take(&mut a.requests))
                .unwrap_or_default();
            for &request_id in &requests {
                let _ = self.gateway.actor_stopped(now, request_id);
            }
            if let Some(actor) = self.actor_mut(slot) {
                actor.requests = requests;
            }
            if start_failed {
                self.fail_waiting(slot, &OpenFailure::ActorStartFailed);
            }
            // A hibernating request that asked for the wake still waits for it (its wake
            // timeout runs) when the start failed or the runner was lost under the woken actor:
            // nobody asks again, so start again, on whichever runner has room. Each attempt waits
            // out the start timeout or the runner-lost threshold, so this cannot spin.
            let wake_wanted = !elsewhere
                && self.actor_ref(slot).is_some_and(|a| {
                    a.requests
                        .iter()
                        .any(|&request_id| self.gateway.wake_pending(request_id))
                });
            if wake_wanted || (restart && !start_failed) {
                self.ensure_running(now, slot);
            }
        }
        // The runner has a free slot now.
        self.place_pending(now);
    }

    /// Removes the actor: its requests close, its waiting opens fail.
    pub(super) fn remove_actor(&mut self, now: Timestamp, slot: u32) {
        self.fail_waiting(slot, &OpenFailure::ActorDestroyed);
        let Some(actor) = self.actors.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        self.rearm(TimerKey::Actor(slot), actor.deadline, Timestamp::MAX);
        if let Some(runner) = actor.runner.and_then(|seq| self.runners.get_mut(&seq)) {
            runner.actors.remove(&slot);
        }
        self.actor_index.remove(&actor.id);
        for runner in self.runners.values_mut() {
            runner.forget_actor(slot);
        }
        for request_id in &actor.requests {
            self.requests.remove(request_id);
            let _ = self.gateway.actor_destroyed(now, *request_id);
        }
        self.free_actors.push(slot);
        self.actions
            .push_back(Action::ActorDestroyed { actor_id: actor.id });
    }

    /// Fails every open waiting for the actor.
    pub(super) fn fail_waiting(&mut self, slot: u32, reason: &OpenFailure) {
        let Some(actor) = self.actor_mut(slot) else {
            return;
        };
        let waiting = core::mem::take(&mut actor.waiting);
        let actor_id = actor.id.clone();
        for (request_id, _) in waiting {
            self.requests.remove(&request_id);
            self.actions.push_back(Action::OpenFailed {
                request_id,
                actor_id: actor_id.clone(),
                reason: reason.clone(),
            });
        }
    }

    /// An actor's start or stop deadline.
    pub(super) fn fire_actor(&mut self, now: Timestamp, slot: u32) {
        let Some(actor) = self.actor_mut(slot) else {
            return;
        };
        if actor.deadline > now {
            return;
        }
        actor.deadline = Timestamp::MAX;
        match actor.phase {
            ActorPhase::Starting => {
                // Tell the runner to drop it; the generation is abandoned either way.
                let frame = actor.push_command(None);
                if let Some(seq) = actor.runner {
                    self.send_command(seq, frame);
                }
                self.stopped(now, slot, StopReason::StartTimeout);
            }
            ActorPhase::Stopping => self.stopped(now, slot, StopReason::StopTimeout),
            _ => {}
        }
    }

    /// Sends an encoded command to a runner if it has a connection (otherwise it waits for the
    /// runner's return).
    pub(super) fn send_command(&mut self, seq: u64, frame: Frame) {
        let Some(conn) = self.runners.get(&seq).and_then(|r| r.conn) else {
            return;
        };
        self.stats.commands_sent += 1;
        self.actions.push_back(Action::Send {
            conn,
            frame: OutFrame::shared(frame, 0),
        });
    }
}

impl Actor {
    /// Records a command of the current generation and returns its encoded frame: a
    /// `CommandStartActor` listing the actor's hibernating requests of `start`'s gateway, then
    /// those of other gateways given with it, or a `CommandStopActor` (`None`).
    fn push_command(&mut self, start: Option<(GatewayId, &[HibernatingRequest])>) -> Frame {
        let generation = self.generation.unwrap_or(0);
        let index = self.next_command_index;
        let bytes = super::frames::command(
            &self.id,
            generation,
            index,
            start.map(|(gateway_id, others)| super::frames::Start {
                config: &self.spec.config,
                gateway_id,
                records: &self.records,
                others,
            }),
        );
        let frame = Frame::new(bytes);
        self.next_command_index = self.next_command_index.saturating_add(1);
        self.commands.push_back(StoredCommand {
            generation,
            index,
            start: start.is_some(),
            frame: frame.clone(),
        });
        frame
    }
}
