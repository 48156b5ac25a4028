//! Per-socket state: ids, indices, the held (out-of-order) buffer and the persist state.

use alloc::collections::BTreeMap;
use alloc::string::String;
use core::time::Duration;

use bytes::Bytes;

use crate::index::MessageIndex;
use crate::time::Timestamp;
use crate::wire::{GatewayId, HibernatingRequest, RequestId};

/// Identifies one WebSocket: the gateway holding the client connection and the request id the
/// gateway gave it. Two sockets are the same only if both halves are byte-for-byte equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SocketId {
    /// The gateway holding the client connection.
    pub gateway_id: GatewayId,
    /// The client connection within that gateway.
    pub request_id: RequestId,
}

impl SocketId {
    /// A socket id from its two halves.
    #[must_use]
    pub const fn new(gateway_id: GatewayId, request_id: RequestId) -> Self {
        Self {
            gateway_id,
            request_id,
        }
    }
}

/// `gateway_id/request_id` in hex, as the ids display.
impl core::fmt::Display for SocketId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}/{}", self.gateway_id, self.request_id)
    }
}

impl From<HibernatingRequest> for SocketId {
    fn from(r: HibernatingRequest) -> Self {
        Self::new(r.gateway_id, r.request_id)
    }
}

impl From<SocketId> for HibernatingRequest {
    fn from(s: SocketId) -> Self {
        Self {
            gateway_id: s.gateway_id,
            request_id: s.request_id,
        }
    }
}

/// The app's durable metadata for one hibernatable socket, handed back to
/// [`Runner::restore`](super::Runner::restore) when its actor starts again.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PersistedSocket {
    /// The socket.
    pub socket: SocketId,
    /// The last persisted delivered gateway index.
    pub server_index: MessageIndex,
    /// The next outgoing index.
    pub client_index: MessageIndex,
    /// Request path of the original upgrade.
    pub path: String,
    /// Headers of the original upgrade.
    pub headers: crate::wire::Headers,
}

/// Where a socket is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SocketState {
    /// The open was announced; the app has not accepted or rejected it yet.
    Connecting,
    /// Open: messages flow both ways.
    Open,
    /// Its actor is stopping; the runner waits for the final persist, then forgets the socket
    /// (the gateway hibernates it).
    Stopping,
}

/// A snapshot of one socket ([`Runner::socket`](super::Runner::socket)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocketInfo {
    /// Life-cycle state.
    pub state: SocketState,
    /// The socket's actor.
    pub actor_id: String,
    /// Whether the socket survives the actor sleeping (false while connecting).
    pub hibernatable: bool,
    /// The last gateway index delivered (the open's index before any message).
    pub last_delivered: MessageIndex,
    /// The last index the app reported durable, if any.
    pub last_persisted: Option<MessageIndex>,
    /// The last index acked to the gateway (the open's or restored index before any ack).
    pub last_acked: MessageIndex,
    /// The index the next outgoing tunnel message takes.
    pub next_client_index: MessageIndex,
    /// The index of the persist in flight, if any.
    pub persist_in_flight: Option<MessageIndex>,
    /// Messages held out of order.
    pub held: usize,
    /// Payload bytes held out of order.
    pub held_bytes: u64,
}

/// Internal life-cycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Connecting,
    Open,
    Stopping,
}

/// A message waiting for a gap to fill.
#[derive(Debug)]
pub(super) struct HeldMessage {
    pub(super) index: MessageIndex,
    pub(super) data: Bytes,
    pub(super) binary: bool,
    pub(super) arrived: Timestamp,
}

/// Out-of-order messages keyed by their unwrapped position (`delivered_seq + distance`), so the
/// order survives the 65 535 → 0 wrap.
#[derive(Debug, Default)]
pub(super) struct Held {
    pub(super) messages: BTreeMap<u64, HeldMessage>,
    pub(super) bytes: u64,
}

impl Held {
    pub(super) fn len(&self) -> usize {
        self.messages.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    pub(super) fn clear(&mut self) {
        self.messages.clear();
        self.bytes = 0;
    }

    /// Removes and returns the message at unwrapped position `seq`.
    pub(super) fn take(&mut self, seq: u64) -> Option<HeldMessage> {
        let m = self.messages.remove(&seq)?;
        self.bytes = self.bytes.saturating_sub(len_u64(m.data.len()));
        Some(m)
    }

    /// Drops every message at or before unwrapped position `seq`.
    pub(super) fn drop_through(&mut self, seq: u64) {
        let keep = self.messages.split_off(&seq.saturating_add(1));
        for m in self.messages.values() {
            self.bytes = self.bytes.saturating_sub(len_u64(m.data.len()));
        }
        self.messages = keep;
    }

    /// Arrival time of the oldest held message.
    pub(super) fn oldest_arrival(&self) -> Option<Timestamp> {
        self.messages.values().map(|m| m.arrived).min()
    }
}

/// The persist in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct InFlight {
    pub(super) index: MessageIndex,
}

/// Persist-then-ack bookkeeping of one hibernatable socket (`docs/design.md#persist-then-ack`).
#[derive(Debug)]
pub(super) struct PersistState {
    pub(super) in_flight: Option<InFlight>,
    /// Something was delivered (or the index moved) since the last `Persist` was emitted.
    pub(super) dirty: bool,
    /// Persist at the next opportunity, whatever the debounce says.
    pub(super) force: bool,
    /// Payload bytes delivered since the first unpersisted message.
    pub(super) unpersisted_bytes: u64,
    pub(super) first_unpersisted_at: Option<Timestamp>,
    /// Armed debounce deadline.
    pub(super) deadline: Option<Timestamp>,
    /// Armed retry deadline after a failure.
    pub(super) retry_at: Option<Timestamp>,
    /// Delay of the next retry.
    pub(super) backoff: Duration,
    /// The actor is stopping and one more persist is owed after the one in flight.
    pub(super) flush_after_in_flight: bool,
}

impl PersistState {
    pub(super) fn new(backoff: Duration) -> Self {
        Self {
            in_flight: None,
            dirty: false,
            force: false,
            unpersisted_bytes: 0,
            first_unpersisted_at: None,
            deadline: None,
            retry_at: None,
            backoff,
            flush_after_in_flight: false,
        }
    }
}

/// One socket.
#[derive(Debug)]
pub(super) struct Socket {
    pub(super) id: SocketId,
    /// Slot of the socket's actor.
    pub(super) actor: usize,
    pub(super) phase: Phase,
    pub(super) hibernatable: bool,
    /// `p`: the last delivered gateway index.
    pub(super) last_delivered: MessageIndex,
    /// `p` unwrapped: grows by one per delivered index; keys the held buffer.
    pub(super) delivered_seq: u64,
    pub(super) last_persisted: Option<MessageIndex>,
    pub(super) last_acked: MessageIndex,
    pub(super) last_ack_at: Option<Timestamp>,
    pub(super) next_client: MessageIndex,
    pub(super) persist: PersistState,
    pub(super) held: Held,
    /// Armed gap deadline ([`GapPolicy::Await`](super::GapPolicy::Await)).
    pub(super) gap_deadline: Option<Timestamp>,
    /// Restored and nothing delivered in order since: the gateway's replay has not arrived.
    pub(super) awaiting_replay: bool,
}

impl Socket {
    pub(super) fn new(id: SocketId, actor: usize, index: MessageIndex, backoff: Duration) -> Self {
        Self {
            id,
            actor,
            phase: Phase::Connecting,
            hibernatable: false,
            last_delivered: index,
            delivered_seq: 0,
            last_persisted: None,
            last_acked: index,
            last_ack_at: None,
            next_client: MessageIndex::ZERO,
            persist: PersistState::new(backoff),
            held: Held::default(),
            gap_deadline: None,
            awaiting_replay: false,
        }
    }

    /// Takes the socket's next outgoing index.
    pub(super) fn take_client_index(&mut self) -> MessageIndex {
        let i = self.next_client;
        self.next_client = i.next();
        i
    }

    pub(super) fn info(&self, actor_id: &str) -> SocketInfo {
        SocketInfo {
            state: match self.phase {
                Phase::Connecting => SocketState::Connecting,
                Phase::Open => SocketState::Open,
                Phase::Stopping => SocketState::Stopping,
            },
            actor_id: actor_id.into(),
            hibernatable: self.hibernatable,
            last_delivered: self.last_delivered,
            last_persisted: self.last_persisted,
            last_acked: self.last_acked,
            next_client_index: self.next_client,
            persist_in_flight: self.persist.in_flight.map(|f| f.index),
            held: self.held.len(),
            held_bytes: self.held.bytes,
        }
    }
}

/// A length as `u64` (lossless on every supported target; saturates otherwise).
pub(super) fn len_u64(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}
