//! Per-actor state: life-cycle phase, the queue of a starting actor, the actor's sockets.

use alloc::collections::{BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;

use crate::wire::ToClientTunnelMessage;

use super::SocketId;
use crate::time::Timestamp;

/// Where an actor is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ActorState {
    /// Announced with [`actor_starting`](super::Runner::actor_starting): tunnel messages for it
    /// queue until [`restore`](super::Runner::restore).
    Starting,
    /// Restored: messages flow.
    Running,
    /// [`actor_stopping`](super::Runner::actor_stopping) was called: waiting for its sockets to
    /// settle.
    Stopping,
}

/// A snapshot of one actor ([`Runner::actor`](super::Runner::actor)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActorInfo {
    /// Life-cycle state.
    pub state: ActorState,
    /// Sockets the actor holds.
    pub sockets: usize,
    /// Tunnel messages queued while starting.
    pub queued: usize,
}

/// One actor.
#[derive(Debug)]
pub(super) struct Actor {
    pub(super) id: String,
    pub(super) state: ActorState,
    /// `CommandStartActor.hibernatingRequests`, deduplicated, in order (until restore).
    pub(super) hibernating: Vec<SocketId>,
    /// Socket ids routed to this actor while it starts (hibernating ones and queued opens).
    pub(super) routes: Vec<SocketId>,
    /// Tunnel messages waiting for restore, in arrival order.
    pub(super) queue: VecDeque<ToClientTunnelMessage>,
    pub(super) queued_bytes: u64,
    /// Live sockets.
    pub(super) sockets: BTreeSet<SocketId>,
    /// Hand-backs ([`Runner::hibernate`](super::Runner::hibernate)) whose persist is not
    /// answered yet: the actor's stop waits for them.
    pub(super) hand_backs: usize,
    /// When this incarnation started ([`Runner::actor_starting`](super::Runner::actor_starting)):
    /// its restore decides the sockets handed back before then, not those it handed back itself.
    pub(super) started_at: Timestamp,
}

impl Actor {
    pub(super) fn new(id: String, hibernating: Vec<SocketId>, started_at: Timestamp) -> Self {
        Self {
            started_at,
            id,
            state: ActorState::Starting,
            hibernating,
            routes: Vec::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            sockets: BTreeSet::new(),
            hand_backs: 0,
        }
    }

    pub(super) fn info(&self) -> ActorInfo {
        ActorInfo {
            state: self.state,
            sockets: self.sockets.len(),
            queued: self.queue.len(),
        }
    }
}
