//! The engine's internal invariants, checked by tests and the simulator.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;

use super::socket::{Socket, len_u64};
use super::timer::{TimerEntry, TimerKind};
use super::{ActorState, Runner};

impl Runner {
    /// Checks the engine's internal invariants; for tests and the simulator.
    ///
    /// Socket index ↔ slot table ↔ actors' socket sets consistency and the live-socket gauge;
    /// actor index ↔ actor table, routes only to starting actors, queues within their limits;
    /// orphaned persists counted and every hand-back counted by its actor; held buffers within
    /// their limits with their byte totals exact; every armed deadline has a live heap entry.
    ///
    /// # Errors
    /// A description of the first violated invariant.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        self.check_sockets()?;
        self.check_actors()?;
        self.check_orphans()
    }

    /// Sockets: tables, gauges, held buffers and deadlines.
    fn check_sockets(&self) -> Result<(), String> {
        if self.socket_index.len() != self.live_sockets {
            return Err(format!(
                "socket index has {} ids, gauge says {}",
                self.socket_index.len(),
                self.live_sockets
            ));
        }
        if self.stats.sockets != len_u64(self.live_sockets) {
            return Err(format!(
                "stats say {} sockets, gauge says {}",
                self.stats.sockets, self.live_sockets
            ));
        }
        for (id, slot) in crate::hash::sorted(&self.socket_index) {
            if self.socket_ref(slot).map(|s| s.id) != Some(id) {
                return Err(format!(
                    "index maps {id:?} to slot {slot} holding another socket"
                ));
            }
        }
        let live = self.slots.iter().filter(|s| s.socket.is_some()).count();
        if live != self.live_sockets {
            return Err(format!(
                "{live} occupied slots, gauge says {}",
                self.live_sockets
            ));
        }
        for &slot in &self.free_slots {
            if self.socket_ref(slot).is_some() {
                return Err(format!("free slot {slot} holds a socket"));
            }
        }
        let entries: BTreeSet<TimerEntry> = self.timers.iter().collect();
        for (slot, entry) in self.slots.iter().enumerate() {
            let Some(s) = entry.socket.as_ref() else {
                continue;
            };
            let owned = self
                .actors
                .get(s.actor)
                .and_then(Option::as_ref)
                .is_some_and(|a| a.sockets.contains(&s.id));
            if !owned {
                return Err(format!("{:?}: its actor does not list it", s.id));
            }
            self.check_held(s)?;
            let armed = [
                (s.persist.deadline, TimerKind::Persist),
                (s.persist.retry_at, TimerKind::Retry),
                (s.gap_deadline, TimerKind::Gap),
            ];
            for (at, kind) in armed {
                let Some(at) = at else { continue };
                let e = TimerEntry {
                    at,
                    slot,
                    generation: entry.generation,
                    kind,
                };
                if !entries.contains(&e) {
                    return Err(format!(
                        "{:?}: {kind:?} deadline {at:?} has no timer entry",
                        s.id
                    ));
                }
            }
        }
        Ok(())
    }

    /// The held (out-of-order) buffer of one socket.
    fn check_held(&self, s: &Socket) -> Result<(), String> {
        let bytes: u64 = s
            .held
            .messages
            .values()
            .map(|m| len_u64(m.data.len()))
            .sum();
        if bytes != s.held.bytes {
            return Err(format!(
                "{:?}: held bytes {} but messages sum to {bytes}",
                s.id, s.held.bytes
            ));
        }
        if s.held.len() > self.config.max_held_messages || bytes > self.config.max_held_bytes {
            return Err(format!(
                "{:?}: {} held / {bytes} bytes over the limits",
                s.id,
                s.held.len()
            ));
        }
        if s.held.is_empty() && s.gap_deadline.is_some() {
            return Err(format!("{:?}: gap deadline armed with nothing held", s.id));
        }
        Ok(())
    }

    /// Actors: index, socket sets, routes and queues.
    fn check_actors(&self) -> Result<(), String> {
        let live = self.actors.iter().filter(|a| a.is_some()).count();
        if live != self.actor_index.len() {
            return Err(format!(
                "{live} actors, index has {}",
                self.actor_index.len()
            ));
        }
        for (id, &aslot) in &self.actor_index {
            if self
                .actors
                .get(aslot)
                .and_then(Option::as_ref)
                .map(|a| &a.id)
                != Some(id)
            {
                return Err(format!(
                    "actor index maps {id} to slot {aslot} holding another actor"
                ));
            }
        }
        for (aslot, actor) in self.actors.iter().enumerate() {
            let Some(actor) = actor else { continue };
            for id in &actor.sockets {
                let ok = self
                    .slot_of(*id)
                    .and_then(|slot| self.socket_ref(slot))
                    .is_some_and(|s| s.actor == aslot);
                if !ok {
                    return Err(format!(
                        "actor {}: lists {id:?}, which is not its socket",
                        actor.id
                    ));
                }
            }
            if actor.queue.len() > self.config.max_queued_per_actor
                || actor.queued_bytes > self.config.max_queued_bytes_per_actor
            {
                return Err(format!("actor {}: queue over its limits", actor.id));
            }
        }
        for (id, aslot) in crate::hash::sorted(&self.routes) {
            let starting = self
                .actors
                .get(aslot)
                .and_then(Option::as_ref)
                .is_some_and(|a| a.state == ActorState::Starting && a.routes.contains(&id));
            if !starting {
                return Err(format!(
                    "route {id:?} to actor slot {aslot}, which is not starting"
                ));
            }
        }
        Ok(())
    }

    /// Persists whose socket is gone: the count and the hand-backs their actors wait for.
    fn check_orphans(&self) -> Result<(), String> {
        let count: usize = self
            .orphans
            .values()
            .map(alloc::collections::VecDeque::len)
            .sum();
        if count != self.orphan_count {
            return Err(format!(
                "{count} orphaned persists, counter says {}",
                self.orphan_count
            ));
        }
        for (aslot, actor) in self.actors.iter().enumerate() {
            let Some(actor) = actor else { continue };
            let hand_backs = self
                .orphans
                .values()
                .flatten()
                .filter(|o| o.hand_back == Some(aslot))
                .count();
            if hand_backs != actor.hand_backs {
                return Err(format!(
                    "actor {}: {hand_backs} hand-back persists, counter says {}",
                    actor.id, actor.hand_backs
                ));
            }
        }
        Ok(())
    }
}
