//! The actor and socket tables: generation-tagged socket slots, lookups, insertion and removal.

use alloc::string::String;
use alloc::vec::Vec;

use super::actor::Actor;
use super::persist;
use super::socket::{Socket, len_u64};
use super::{Action, ActorState, Runner, SocketId};

/// A socket slot: the socket and a generation that changes whenever the slot is freed, so timer
/// entries of a removed socket never fire for its successor.
#[derive(Debug, Default)]
pub(super) struct Slot {
    pub(super) generation: u64,
    pub(super) socket: Option<Socket>,
}

impl Runner {
    pub(super) fn actor_by_id(&self, actor_id: &str) -> Option<&Actor> {
        let slot = *self.actor_index.get(actor_id)?;
        self.actors.get(slot)?.as_ref()
    }

    pub(super) fn slot_of(&self, id: SocketId) -> Option<usize> {
        self.socket_index.get(&id).copied()
    }

    pub(super) fn socket_ref(&self, slot: usize) -> Option<&Socket> {
        self.slots.get(slot)?.socket.as_ref()
    }

    pub(super) fn actor_id_of(&self, slot: usize) -> String {
        self.socket_ref(slot)
            .and_then(|s| self.actors.get(s.actor))
            .and_then(Option::as_ref)
            .map(|a| a.id.clone())
            .unwrap_or_default()
    }

    pub(super) fn insert_socket(&mut self, socket: Socket) -> usize {
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
        self.handed_back.forget(id);
        if let Some(actor) = self.actors.get_mut(aslot).and_then(Option::as_mut) {
            actor.sockets.insert(id);
        }
        self.live_sockets += 1;
        self.stats.sockets = len_u64(self.live_sockets);
        slot
    }

    /// Forgets a socket; finishes its actor's stop if it was the last one.
    pub(super) fn remove_socket(&mut self, slot: usize) {
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
    pub(super) fn maybe_finish_actor(&mut self, aslot: usize) {
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
    pub(super) fn clear_routes(&mut self, aslot: usize, routes: Vec<SocketId>) {
        for id in routes {
            if self.routes.get(&id) == Some(&aslot) {
                self.routes.remove(&id);
            }
        }
    }
}

/// The socket in `slot`, borrowing only the slot table.
pub(super) fn slot_mut(slots: &mut [Slot], slot: usize) -> Option<&mut Socket> {
    slots.get_mut(slot)?.socket.as_mut()
}
