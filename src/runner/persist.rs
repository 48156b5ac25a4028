//! Persist, then ack (`docs/design.md#persist-then-ack`): the debounce that decides when to ask the
//! app to persist a socket's delivered index, and the handling of the app's answers.
//!
//! * After a delivery, once the payload bytes delivered since the first unpersisted message
//!   reach [`RunnerConfig::persist_bytes`](super::RunnerConfig::persist_bytes), a
//!   [`Action::Persist`] is emitted at once; otherwise a deadline `first_unpersisted_at +
//!   persist_interval` is armed and the persist comes then.
//! * At most one persist is in flight per socket. When it completes and more was delivered
//!   meanwhile, the same rule applies again (a deadline already past fires at once).
//! * A durable persist of index `i` is acked (`ToServerWebSocketMessageAck { i }`) exactly once,
//!   and only after the app reported it durable. A failed persist is never acked; it is retried
//!   with the latest delivered index after `persist_retry_initial`, doubling up to
//!   `persist_retry_max`.

use crate::index::MessageIndex;
use crate::time::Timestamp;

use super::outbox::send_ack;
use super::socket::{InFlight, Phase};
use super::table::slot_mut;
use super::timer::TimerKind;
use super::{Action, Runner, RunnerStats, SocketError, SocketId};

impl Runner {
    /// The app finished persisting `server_index` for `socket` (an [`Action::Persist`]).
    ///
    /// The runner records it as the socket's last persisted index and acks it to the gateway
    /// unless that index was already acked. If the socket's actor is stopping, the socket is
    /// then forgotten (the gateway hibernates it).
    ///
    /// # Errors
    /// [`SocketError::UnknownSocket`] if the socket closed since (harmless);
    /// [`SocketError::UnexpectedPersist`] if no persist of `server_index` is in flight.
    pub fn persisted(
        &mut self,
        now: Timestamp,
        socket: SocketId,
        server_index: MessageIndex,
    ) -> Result<(), SocketError> {
        let now = self.advance(now);
        let Some(slot) = self.persist_result(socket, server_index, false)? else {
            return Ok(());
        };
        let framing = self.config.framing;
        let initial = self.config.persist_retry_initial;
        let s = slot_mut(&mut self.slots, slot).ok_or(SocketError::UnknownSocket { socket })?;
        s.persist.backoff = initial;
        s.last_persisted = Some(server_index);
        if server_index != s.last_acked {
            send_ack(&mut self.actions, framing, s, server_index, now);
            self.stats.acks_sent += 1;
        }
        match s.phase {
            Phase::Stopping => self.after_stop_persist(slot),
            Phase::Open | Phase::Connecting => self.schedule_persist(now, slot),
        }
        self.finish();
        Ok(())
    }

    /// The app failed to persist `server_index` for `socket`. Nothing is acked. The persist is
    /// retried (with the then latest delivered index) after
    /// [`RunnerConfig::persist_retry_initial`](super::RunnerConfig::persist_retry_initial),
    /// doubling after each failure up to `persist_retry_max`. If the socket's actor is
    /// stopping, the socket is forgotten without an ack instead: the gateway replays what it
    /// still holds after the next wake.
    ///
    /// # Errors
    /// [`SocketError::UnknownSocket`] if the socket closed since (harmless);
    /// [`SocketError::UnexpectedPersist`] if no persist of `server_index` is in flight.
    pub fn persist_failed(
        &mut self,
        now: Timestamp,
        socket: SocketId,
        server_index: MessageIndex,
    ) -> Result<(), SocketError> {
        let now = self.advance(now);
        // An orphan's failure: nothing to retry, the socket is gone and nothing was acked.
        let Some(slot) = self.persist_result(socket, server_index, true)? else {
            return Ok(());
        };
        let max = self.config.persist_retry_max;
        let s = slot_mut(&mut self.slots, slot).ok_or(SocketError::UnknownSocket { socket })?;
        if s.phase == Phase::Stopping {
            self.after_stop_persist(slot);
        } else {
            let p = &mut s.persist;
            p.dirty = true;
            p.first_unpersisted_at.get_or_insert(now);
            let delay = p.backoff;
            p.backoff = delay.saturating_mul(2).min(max);
            if let Some(at) = now.checked_add(delay) {
                p.retry_at = Some(at);
                self.arm(slot, at, TimerKind::Retry);
            }
        }
        self.finish();
        Ok(())
    }

    /// What [`persisted`](Self::persisted) and [`persist_failed`](Self::persist_failed) do
    /// first: the persist of `server_index` is taken out of flight and counted (as failed if
    /// `failed`). `None`: it was the persist of a socket that is gone, now settled; otherwise
    /// the socket's slot.
    fn persist_result(
        &mut self,
        socket: SocketId,
        server_index: MessageIndex,
        failed: bool,
    ) -> Result<Option<usize>, SocketError> {
        let count = |stats: &mut RunnerStats| {
            if failed {
                stats.persists_failed += 1;
            } else {
                stats.persists_completed += 1;
            }
        };
        if let Some(orphan) = self.take_orphan(socket, server_index) {
            count(&mut self.stats);
            return self.settle_orphan(socket, orphan).map(|()| None);
        }
        let slot = self
            .slot_of(socket)
            .ok_or(SocketError::UnknownSocket { socket })?;
        let s = slot_mut(&mut self.slots, slot).ok_or(SocketError::UnknownSocket { socket })?;
        take_in_flight(&mut s.persist.in_flight, socket, server_index)?;
        count(&mut self.stats);
        Ok(Some(slot))
    }

    /// The oldest persist of `socket` whose socket is gone and that asked for `index`.
    fn take_orphan(&mut self, socket: SocketId, index: MessageIndex) -> Option<Orphan> {
        let queue = self.orphans.get_mut(&socket)?;
        let pos = queue.iter().position(|o| o.index == index)?;
        let orphan = queue.remove(pos)?;
        if queue.is_empty() {
            self.orphans.remove(&socket);
        }
        self.orphan_count = self.orphan_count.saturating_sub(1);
        Some(orphan)
    }

    /// The result of a persist whose socket is gone: a hand-back's lets its actor finish
    /// stopping (`Ok`); any other is harmless ([`SocketError::UnknownSocket`]).
    fn settle_orphan(&mut self, socket: SocketId, orphan: Orphan) -> Result<(), SocketError> {
        let result = match orphan.hand_back {
            Some(aslot) => {
                if let Some(actor) = self.actors.get_mut(aslot).and_then(Option::as_mut) {
                    actor.hand_backs = actor.hand_backs.saturating_sub(1);
                }
                self.maybe_finish_actor(aslot);
                Ok(())
            }
            None => Err(SocketError::UnknownSocket { socket }),
        };
        self.finish();
        result
    }

    /// Remembers a persist whose socket is gone. Entries nothing waits for are bounded by
    /// [`RunnerConfig::max_sockets`](super::RunnerConfig::max_sockets): past it the oldest
    /// (by socket id) are forgotten, after which their late result, if it ever comes, is
    /// treated as a result for the socket's id as it is then.
    pub(super) fn push_orphan(&mut self, socket: SocketId, orphan: Orphan) {
        self.orphans.entry(socket).or_default().push_back(orphan);
        self.orphan_count += 1;
        while self.orphan_count > self.config.max_sockets {
            let victim = self.orphans.iter_mut().find_map(|(id, queue)| {
                let pos = queue.iter().position(|o| o.hand_back.is_none())?;
                queue.remove(pos);
                Some((*id, queue.is_empty()))
            });
            let Some((id, empty)) = victim else {
                break;
            };
            if empty {
                self.orphans.remove(&id);
            }
            self.orphan_count -= 1;
        }
    }

    /// A persist result arrived for a socket of a stopping actor: flush once more if owed,
    /// otherwise forget the socket.
    fn after_stop_persist(&mut self, slot: usize) {
        let Some(s) = slot_mut(&mut self.slots, slot) else {
            return;
        };
        if s.persist.flush_after_in_flight {
            s.persist.flush_after_in_flight = false;
            self.emit_persist(slot);
        } else {
            self.stats.settled_on_stop += 1;
            self.remove_socket(slot);
        }
    }

    /// Applies the debounce rule to an open hibernatable socket.
    pub(super) fn schedule_persist(&mut self, now: Timestamp, slot: usize) {
        let bytes = self.config.persist_bytes;
        let interval = self.config.persist_interval;
        let Some(s) = slot_mut(&mut self.slots, slot) else {
            return;
        };
        let p = &mut s.persist;
        if s.phase != Phase::Open
            || !s.hibernatable
            || p.in_flight.is_some()
            || p.retry_at.is_some()
            || !p.dirty
        {
            return;
        }
        if p.force || p.unpersisted_bytes >= bytes {
            self.emit_persist(slot);
            return;
        }
        let first = *p.first_unpersisted_at.get_or_insert(now);
        match first.checked_add(interval) {
            Some(at) if at <= now => self.emit_persist(slot),
            Some(at) if p.deadline != Some(at) => {
                p.deadline = Some(at);
                self.arm(slot, at, TimerKind::Persist);
            }
            Some(_) | None => {}
        }
    }

    /// Emits [`Action::Persist`] of the latest delivered index and marks it in flight.
    ///
    /// The stored outgoing index covers the ack that follows a successful persist: that ack
    /// takes the next outgoing index, so a socket restored from this record (after the actor's
    /// stop, whose final persist this is) continues after it instead of reusing it. If the
    /// persist fails, no ack is sent and one outgoing index is skipped: indices stay
    /// increasing, never reused.
    pub(super) fn emit_persist(&mut self, slot: usize) {
        let actor_id = self.actor_id_of(slot);
        let Some(s) = slot_mut(&mut self.slots, slot) else {
            return;
        };
        let p = &mut s.persist;
        p.in_flight = Some(InFlight {
            index: s.last_delivered,
        });
        p.dirty = false;
        p.force = false;
        p.unpersisted_bytes = 0;
        p.first_unpersisted_at = None;
        p.deadline = None;
        p.retry_at = None;
        self.stats.persists_requested += 1;
        let acks = s.last_delivered != s.last_acked;
        self.actions.push_back(Action::Persist {
            socket: s.id,
            actor_id,
            server_index: s.last_delivered,
            client_index: s.next_client.wrapping_add(u16::from(acks)),
        });
    }
}

/// A persist whose socket is gone (closed, or handed back) and whose result has not come.
#[derive(Debug, Clone, Copy)]
pub(super) struct Orphan {
    /// The index it asked the app to persist.
    pub(super) index: MessageIndex,
    /// For a hand-back: the slot of the actor whose stop waits for it.
    pub(super) hand_back: Option<usize>,
}

/// Takes the in-flight persist if it is the one for `index`.
fn take_in_flight(
    slot: &mut Option<InFlight>,
    socket: SocketId,
    index: MessageIndex,
) -> Result<InFlight, SocketError> {
    match *slot {
        Some(f) if f.index == index => {
            *slot = None;
            Ok(f)
        }
        _ => Err(SocketError::UnexpectedPersist { socket }),
    }
}
