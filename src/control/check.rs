//! [`Control::check_invariants`]: the engine's internal consistency, for tests and the fuzzer.

use alloc::format;
use alloc::string::String;

use crate::time::Timestamp;

use super::{ActorPhase, Control, TimerKey};

impl Control {
    /// Checks the engine's internal invariants (and the gateway's).
    ///
    /// Actor index ↔ slots; every placed actor is in its runner's set and every runner's set
    /// names actors placed there; runners never hold more actors than slots; phases agree with
    /// placement (Starting, Running and Stopping have a runner, the others none); every request
    /// in the request map belongs to its actor's requests or waiting opens and back; every armed
    /// deadline has its timer entry and every timer entry matches an armed deadline; runner keys
    /// map to runners with that key.
    ///
    /// # Errors
    /// A description of the first violated invariant.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        self.gateway.check_invariants()?;
        for (id, &slot) in &self.actor_index {
            let actor = self
                .actor_ref(slot)
                .ok_or_else(|| format!("actor {id:?} maps to empty slot {slot}"))?;
            if actor.id != *id {
                return Err(format!(
                    "actor {id:?} maps to slot {slot} of {:?}",
                    actor.id
                ));
            }
            let placed = matches!(
                actor.phase,
                ActorPhase::Starting | ActorPhase::Running | ActorPhase::Stopping
            );
            match (placed, actor.runner) {
                (true, Some(seq)) if self.remote.contains_key(&seq) => {}
                (true, Some(seq)) => {
                    // A lost runner is removed with its actors, so the runner exists.
                    let runner = self
                        .runners
                        .get(&seq)
                        .ok_or_else(|| format!("actor {id:?} placed on missing runner {seq}"))?;
                    if !runner.actors.contains(&slot) {
                        return Err(format!("actor {id:?} missing from runner {seq}'s set"));
                    }
                }
                (false, None) => {}
                _ => {
                    return Err(format!(
                        "actor {id:?} is {} with runner {:?}",
                        actor.phase, actor.runner
                    ));
                }
            }
            let armed = actor.deadline != Timestamp::MAX;
            if armed
                != self
                    .timers
                    .contains(&(actor.deadline, TimerKey::Actor(slot)))
            {
                return Err(format!("actor {id:?}: deadline and timer disagree"));
            }
            if actor.commands.len() > 3 {
                return Err(format!(
                    "actor {id:?} keeps {} commands",
                    actor.commands.len()
                ));
            }
            for request_id in actor
                .requests
                .iter()
                .chain(actor.waiting.iter().map(|(r, _)| r))
            {
                if self.requests.get(request_id) != Some(&slot) {
                    return Err(format!(
                        "request {request_id} of actor {id:?} not mapped to it"
                    ));
                }
            }
            if !actor.records.is_subset(&actor.requests) {
                return Err(format!("actor {id:?} lists a record of a request it lacks"));
            }
        }
        self.check_requests_and_runners()
    }

    fn check_requests_and_runners(&self) -> Result<(), String> {
        for (request_id, &slot) in &self.requests {
            let actor = self
                .actor_ref(slot)
                .ok_or_else(|| format!("request {request_id} maps to empty slot {slot}"))?;
            if !actor.requests.contains(request_id)
                && !actor.waiting.iter().any(|(r, _)| r == request_id)
            {
                return Err(format!(
                    "request {request_id} not listed by actor {:?}",
                    actor.id
                ));
            }
        }
        for (&seq, runner) in &self.runners {
            if runner.actors.len() > runner.total_slots as usize {
                return Err(format!("runner {seq} holds more actors than slots"));
            }
            for &slot in &runner.actors {
                if self.actor_ref(slot).and_then(|a| a.runner) != Some(seq) {
                    return Err(format!("runner {seq} lists slot {slot} placed elsewhere"));
                }
            }
            if self.keys.get(&runner.key) != Some(&seq) {
                return Err(format!("runner {seq}'s key does not map to it"));
            }
            let armed = runner.lost_at != Timestamp::MAX;
            if armed != runner.conn.is_none() {
                return Err(format!(
                    "runner {seq}: lost deadline and connection disagree"
                ));
            }
            if armed
                && !self
                    .timers
                    .contains(&(runner.lost_at, TimerKey::Runner(seq)))
            {
                return Err(format!("runner {seq}: lost deadline without timer"));
            }
            if let Some(conn) = runner.conn
                && self.conns.get(&conn).and_then(|c| c.runner) != Some(seq)
            {
                return Err(format!("runner {seq}'s connection {conn} is not its own"));
            }
        }
        for (conn, state) in &self.conns {
            if state.armed != state.deadline_for_check()
                || (state.armed != Timestamp::MAX
                    && !self.timers.contains(&(state.armed, TimerKey::Conn(*conn))))
            {
                return Err(format!("connection {conn}: deadline and timer disagree"));
            }
        }
        for &(at, key) in &self.timers {
            let live = match key {
                TimerKey::Conn(conn) => self.conns.get(&conn).is_some_and(|c| c.armed == at),
                TimerKey::Runner(seq) => self.runners.get(&seq).is_some_and(|r| r.lost_at == at),
                TimerKey::Actor(slot) => self.actor_ref(slot).is_some_and(|a| a.deadline == at),
            };
            if !live {
                return Err(format!("stale timer entry {key:?} at {at}"));
            }
        }
        Ok(())
    }
}
