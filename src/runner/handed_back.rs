//! Per-socket liveness, runner side: sockets handed back recently, and the answer to a frame
//! for a socket the runner does not hold.
//!
//! A gateway keeps routing a request to this runner until it learns that the actor stopped (a
//! signal of the control plane, not of the tunnel), so frames for a socket the runner just
//! handed back are normal for a while: they are dropped silently and the gateway replays them
//! after the next wake. A frame (a ping or a WebSocket message) for a socket the runner neither
//! holds, nor queues for a starting actor, nor handed back within
//! [`RunnerConfig::handed_back_memory`](super::RunnerConfig::handed_back_memory) (by an actor
//! that has not started here again since: then its restore decided) means the
//! gateway routes a request here that no runner serves (a "ghost"): it is answered with close
//! 1011 `ws.socket_not_found` ([`KnownClose::SocketNotFound`]), which ends the request at the
//! gateway within one probe interval. Closes are never answered (a close for an unknown socket is
//! the end of a conversation, and answering could loop).

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use core::time::Duration;

use crate::close::KnownClose;
use crate::time::Timestamp;

use super::outbox::close_kind;
use super::{Runner, SocketId};

/// Recently handed-back socket ids, bounded in count and age.
#[derive(Debug, Default)]
pub(super) struct HandedBack {
    /// When each remembered id was handed back (its latest hand-back), by which actor, and by
    /// which start of it.
    at: BTreeMap<SocketId, (Timestamp, Box<str>, u64)>,
    /// Ids in hand-back order (an id handed back twice appears twice; the older entry is stale).
    order: VecDeque<(SocketId, Timestamp)>,
}

impl HandedBack {
    /// Remembers `id` as handed back by `actor` at `now`, forgetting expired and, past `max`,
    /// the oldest entries first.
    pub(super) fn insert(
        &mut self,
        id: SocketId,
        (actor, start): (&str, u64),
        now: Timestamp,
        memory: Duration,
        max: usize,
    ) {
        self.expire(now, memory);
        while self.at.len() >= max || self.order.len() >= max.saturating_mul(2) {
            if !self.pop_oldest() {
                break;
            }
        }
        self.at.insert(id, (now, actor.into(), start));
        self.order.push_back((id, now));
    }

    /// Forgets `id` (the runner holds the socket again, or closed it for good: whatever happens
    /// to it next is answered on its own terms).
    pub(super) fn forget(&mut self, id: SocketId) {
        self.at.remove(&id);
    }

    /// The actor (and its start) that handed `id` back within `memory` before `now`.
    pub(super) fn get(
        &self,
        id: SocketId,
        now: Timestamp,
        memory: Duration,
    ) -> Option<(&str, u64)> {
        self.at
            .get(&id)
            .filter(|(at, _, _)| *at + memory > now)
            .map(|(_, actor, start)| (&**actor, *start))
    }

    /// Forgets the entries older than `memory`.
    pub(super) fn expire(&mut self, now: Timestamp, memory: Duration) {
        while self
            .order
            .front()
            .is_some_and(|&(_, at)| at + memory <= now)
        {
            self.pop_oldest();
        }
    }

    /// Remembered ids.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.at.len()
    }

    fn pop_oldest(&mut self) -> bool {
        let Some((id, at)) = self.order.pop_front() else {
            return false;
        };
        if self.at.get(&id).is_some_and(|(t, _, _)| *t == at) {
            self.at.remove(&id);
        }
        true
    }
}

impl Runner {
    /// Remembers a socket `actor` hands back without closing it.
    pub(super) fn remember_handed_back(&mut self, id: SocketId, actor: &str) {
        let (memory, max) = (self.config.handed_back_memory, self.config.max_handed_back);
        let start = self.actor_by_id(actor).map_or(0, |a| a.start);
        self.handed_back
            .insert(id, (actor, start), self.now, memory, max);
    }

    /// Whether a frame for `id` (which the runner does not hold) is for a socket handed back
    /// recently by an actor that has not started here again since (once it has, its restore
    /// decided the socket's fate). Until then the actor may still run (a hand-back drains it
    /// later) or stop (its other sockets' final persists keep it).
    pub(super) fn recently_handed_back(&self, id: SocketId) -> bool {
        self.handed_back
            .get(id, self.now, self.config.handed_back_memory)
            .is_some_and(|(actor, start)| self.actor_by_id(actor).is_none_or(|a| a.start == start))
    }

    /// Whether `id` was handed back within the memory, by whichever start of its actor: an open
    /// for it is a stale copy (request ids are never opened twice).
    pub(super) fn handed_back_lately(&self, id: SocketId) -> bool {
        self.handed_back
            .get(id, self.now, self.config.handed_back_memory)
            .is_some()
    }

    /// Answers a frame for a socket the runner does not hold: nothing if it handed the socket
    /// back recently, close 1011 `ws.socket_not_found` otherwise.
    pub(super) fn remember_app_closed(&mut self, id: SocketId, actor: &str) {
        let (memory, max) = (self.config.handed_back_memory, self.config.max_handed_back);
        self.app_closed
            .insert(id, (actor, 0), self.now, memory, max);
    }

    /// Whether the app closed `id` within the hand-back memory (a stale open of it is answered
    /// with a close, see [`answer_not_held`](Self::answer_not_held)).
    pub(super) fn app_closed_lately(&self, id: SocketId) -> bool {
        self.app_closed
            .get(id, self.now, self.config.handed_back_memory)
            .is_some()
    }

    pub(super) fn answer_not_held(&mut self, id: SocketId) {
        if self.recently_handed_back(id) {
            self.stats.dropped_handed_back += 1;
            return;
        }
        self.stats.not_found_answers += 1;
        let kind = close_kind(&KnownClose::SocketNotFound.frame(), false);
        self.publish_stateless(id, kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{GatewayId, RequestId};

    fn id(n: u32) -> SocketId {
        SocketId::new(GatewayId([1, 0, 0, 0]), RequestId::from_u32(n))
    }

    #[test]
    fn remembered_for_the_memory_then_forgotten() {
        let mut h = HandedBack::default();
        let m = Duration::from_secs(60);
        let t = Timestamp::from_secs(10);
        h.insert(id(1), ("a", 1), t, m, 8);
        assert_eq!(h.get(id(1), t + Duration::from_secs(59), m), Some(("a", 1)));
        assert_eq!(h.get(id(1), t + m, m), None);
        assert_eq!(h.get(id(2), t, m), None);
        h.expire(t + m, m);
        assert_eq!(h.len(), 0);
    }

    #[test]
    fn bounded_by_count_oldest_first_and_a_second_hand_back_renews() {
        let mut h = HandedBack::default();
        let m = Duration::from_secs(60);
        let t = Timestamp::from_secs(10);
        for n in 0..4 {
            h.insert(id(n), ("a", 1), t, m, 3);
        }
        assert_eq!(h.len(), 3);
        assert_eq!(h.get(id(0), t, m), None, "the oldest went first");
        assert_eq!(h.get(id(3), t, m), Some(("a", 1)));
        // id 1 again, later: its older entry is stale and does not evict the renewed one.
        h.insert(id(1), ("b", 1), t + Duration::from_secs(30), m, 3);
        h.expire(t + Duration::from_secs(61), m);
        assert_eq!(h.get(id(1), t + Duration::from_secs(61), m), Some(("b", 1)));
        assert_eq!(h.len(), 1);
        assert!(h.order.len() <= 6);
        h.forget(id(1));
        assert_eq!(h.len(), 0);
    }
}
