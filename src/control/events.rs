//! Runner events and command acknowledgements, applied at most once per checkpoint.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::gateway::RouteId;
use crate::time::Timestamp;
use crate::wire::{ActorCheckpoint, ActorIntent, ActorState, Event, EventWrapper};

use super::{Action, ActorPhase, ConnId, Control, ReceiveError, StopReason};

/// Actors of one events frame acknowledged with a linear search; past it the list is merged.
const MAX_ACKS_LINEAR: usize = 16;

/// Where an event stands against the actor's current generation.
enum Verdict {
    Apply(u32),
    Skip,
    Reject(ReceiveError),
}

impl Control {
    /// `ToServerEvents`: applies each new event of the current generation in order, then
    /// acknowledges the highest checkpoint seen per actor (duplicates and stale generations
    /// included, so the runner can prune them).
    pub(super) fn on_events(
        &mut self,
        now: Timestamp,
        conn: ConnId,
        seq: u64,
        events: Vec<EventWrapper>,
    ) -> Result<(), ReceiveError> {
        let mut acks = Acks::default();
        let mut first_error = None;
        for EventWrapper { checkpoint, inner } in events {
            match self.classify(conn, seq, &checkpoint) {
                Verdict::Apply(slot) => {
                    self.stats.events_applied += 1;
                    self.apply(now, slot, inner);
                }
                Verdict::Skip => {}
                Verdict::Reject(error) => {
                    first_error.get_or_insert(error);
                    continue;
                }
            }
            acks.record(checkpoint);
        }
        let last_event_checkpoints = acks.into_sorted();
        if !last_event_checkpoints.is_empty() {
            self.actions.push_back(Action::Send {
                conn,
                frame: super::OutFrame::owned(super::frames::ack_events(&last_event_checkpoints)),
            });
        }
        first_error.map_or(Ok(()), Err)
    }

    fn classify(&mut self, conn: ConnId, seq: u64, cp: &ActorCheckpoint) -> Verdict {
        let foreign = || {
            Verdict::Reject(ReceiveError::ForeignActor {
                conn,
                actor_id: cp.actor_id.clone(),
            })
        };
        let Some(slot) = self.slot_of(&cp.actor_id) else {
            return foreign();
        };
        let Some(actor) = self.actors.get_mut(slot as usize).and_then(Option::as_mut) else {
            return foreign();
        };
        let Some(current) = actor.generation else {
            return foreign();
        };
        if cp.generation > current {
            return Verdict::Reject(ReceiveError::FutureGeneration {
                conn,
                actor_id: cp.actor_id.clone(),
                generation: cp.generation,
            });
        }
        if cp.generation < current {
            self.stats.events_stale += 1;
            return Verdict::Skip;
        }
        if actor.runner != Some(seq) {
            // The current generation lives elsewhere (or nowhere): this runner's copy is stale.
            self.stats.events_stale += 1;
            return Verdict::Skip;
        }
        if cp.index <= actor.last_event {
            self.stats.events_duplicate += 1;
            return Verdict::Skip;
        }
        if cp.index > actor.last_event.saturating_add(1) {
            self.stats.event_gaps += 1;
        }
        actor.last_event = cp.index;
        Verdict::Apply(slot)
    }

    /// Applies one event of the current generation.
    fn apply(&mut self, now: Timestamp, slot: u32, event: Event) {
        let Some(actor) = self.actor_mut(slot) else {
            return;
        };
        match event {
            Event::ActorIntent(intent) => {
                if intent.intent == ActorIntent::Stop {
                    actor.destroy_after_stop = true;
                }
                self.stop(now, slot);
            }
            Event::ActorStateUpdate(update) => match update.state {
                ActorState::Running => self.running(now, slot),
                ActorState::Stopped(stopped) => {
                    if matches!(
                        actor.phase,
                        ActorPhase::Starting | ActorPhase::Running | ActorPhase::Stopping
                    ) {
                        let reason = StopReason::Stopped {
                            code: stopped.code,
                            message: stopped.message,
                        };
                        self.stopped(now, slot, reason);
                    }
                }
            },
            Event::ActorSetAlarm(alarm) => {
                let actor_id = actor.id.clone();
                self.actions.push_back(Action::AlarmSet {
                    actor_id,
                    alarm_ts: alarm.alarm_ts,
                });
            }
        }
    }

    /// `Running`: the start command is done; hibernating requests are woken at the runner's
    /// route, and the opens that waited go to the gateway.
    fn running(&mut self, now: Timestamp, slot: u32) {
        let Some(actor) = self.actor_mut(slot) else {
            return;
        };
        if actor.phase != ActorPhase::Starting {
            return;
        }
        actor.phase = ActorPhase::Running;
        actor.commands.retain(|c| !c.start);
        let old = core::mem::replace(&mut actor.deadline, Timestamp::MAX);
        let generation = actor.generation.unwrap_or(0);
        let actor_id = actor.id.clone();
        // Taken for the loop (the gateway's actions wait until `pump`), put back after.
        let records = core::mem::take(&mut actor.records);
        let waiting = core::mem::take(&mut actor.waiting);
        let seq = actor.runner;
        self.rearm(super::TimerKey::Actor(slot), old, Timestamp::MAX);
        let runner_id = seq
            .and_then(|s| self.runners.get(&s))
            .map(|r| r.id.clone())
            .unwrap_or_default();
        self.actions.push_back(Action::ActorRunning {
            actor_id,
            generation,
            runner_id,
        });
        if let Some(seq) = seq {
            for &request_id in &records {
                if self.gateway.wake(now, request_id, RouteId(seq)).is_ok() {
                    self.stats.requests_woken += 1;
                }
            }
        }
        if let Some(actor) = self.actor_mut(slot) {
            actor.records = records;
        }
        if let Some(seq) = seq {
            self.open_waiting(now, slot, seq, waiting);
        }
    }

    /// `ToServerAckCommands`: drops every command of the named generation up to the index.
    pub(super) fn on_ack_commands(
        &mut self,
        conn: ConnId,
        seq: u64,
        checkpoints: Vec<ActorCheckpoint>,
    ) -> Result<(), ReceiveError> {
        let mut first_error = None;
        for cp in checkpoints {
            let actor = self
                .slot_of(&cp.actor_id)
                .and_then(|slot| self.actors.get_mut(slot as usize))
                .and_then(Option::as_mut);
            match actor {
                Some(actor) if actor.generation.is_some_and(|g| cp.generation > g) => {
                    first_error.get_or_insert(ReceiveError::FutureGeneration {
                        conn,
                        actor_id: cp.actor_id,
                        generation: cp.generation,
                    });
                }
                Some(actor) if actor.runner == Some(seq) => {
                    actor
                        .commands
                        .retain(|c| (c.generation, c.index) > (cp.generation, cp.index));
                    self.forget_abandoned(seq, &cp);
                }
                // An older placement's ack: only a stop it abandoned may be kept.
                Some(actor) if actor.generation.is_some() => self.forget_abandoned(seq, &cp),
                _ => {
                    first_error.get_or_insert(ReceiveError::ForeignActor {
                        conn,
                        actor_id: cp.actor_id,
                    });
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Control {
    /// The runner acknowledged commands up to `cp`: an abandoned stop at or below it is done.
    fn forget_abandoned(&mut self, seq: u64, cp: &ActorCheckpoint) {
        let Some(slot) = self.slot_of(&cp.actor_id) else {
            return;
        };
        if let Some(runner) = self.runners.get_mut(&seq) {
            runner.forget_abandoned(slot, cp.generation, cp.index);
        }
    }
}

/// The highest checkpoint seen per actor in one events frame: a short vector searched linearly
/// (a frame usually names one actor), a map once it names many.
#[derive(Default)]
struct Acks {
    few: Vec<ActorCheckpoint>,
    many: BTreeMap<String, (u32, i64)>,
}

impl Acks {
    fn record(&mut self, cp: ActorCheckpoint) {
        let key = (cp.generation, cp.index);
        if self.many.is_empty() && self.few.len() < MAX_ACKS_LINEAR {
            match self.few.iter_mut().find(|a| a.actor_id == cp.actor_id) {
                Some(a) if key > (a.generation, a.index) => *a = cp,
                Some(_) => {}
                None => self.few.push(cp),
            }
            return;
        }
        for a in self.few.drain(..) {
            self.many.insert(a.actor_id, (a.generation, a.index));
        }
        let entry = self.many.entry(cp.actor_id).or_insert(key);
        if key > *entry {
            *entry = key;
        }
    }

    /// The checkpoints, sorted by actor.
    fn into_sorted(self) -> Vec<ActorCheckpoint> {
        if self.many.is_empty() {
            let mut few = self.few;
            few.sort_unstable_by(|a, b| a.actor_id.cmp(&b.actor_id));
            return few;
        }
        self.many
            .into_iter()
            .map(|(actor_id, (generation, index))| ActorCheckpoint {
                actor_id,
                generation,
                index,
            })
            .collect()
    }
}
