//! Per-request state and the slab that stores it.
//!
//! The struct is kept small because a gateway may hold a million idle hibernating requests:
//! state needed only while awaiting open, while active or while a wake is outstanding lives in
//! one boxed [`PhaseState`], and the pending buffer is boxed and dropped when it is empty during
//! hibernation.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::index::MessageIndex;
use crate::time::Timestamp;
use crate::wire::{Headers, RequestId};

use super::pending::PendingBuffer;
use super::{CloseReason, RequestStats};

/// An opaque runner route chosen by the caller (for example the pub/sub subject of the runner
/// that hosts the actor). The gateway publishes a request's messages to its route and accepts
/// runner input for the request only from it (while the request hibernates, also from the route
/// declared with [`Gateway::actor_starting`](super::Gateway::actor_starting), see
/// [`Gateway::handle_runner_message`](super::Gateway::handle_runner_message)); the route changes
/// only on [`Gateway::wake`](super::Gateway::wake).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RouteId(pub u64);

/// What the runner needs to open a WebSocket on an actor ([`Gateway::open`](super::Gateway::open)):
/// the actor, the path and the headers of the client's upgrade request.
///
/// The path is checked when the request is built ([`OpenRequest::new`]): it must start with `/`.
/// The official TypeScript runner fails an open whose path does not before it registers the
/// request, so the close it then sends is dropped inside the runner and the open would end only
/// with [`GatewayConfig::open_timeout`](super::GatewayConfig::open_timeout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRequest {
    actor_id: String,
    path: String,
    headers: Headers,
}

impl OpenRequest {
    /// An open of `path` on `actor_id`, with no headers.
    ///
    /// # Errors
    /// [`InvalidPath`] if `path` does not start with `/`.
    pub fn new(actor_id: impl Into<String>, path: impl Into<String>) -> Result<Self, InvalidPath> {
        let path = path.into();
        if !path.starts_with('/') {
            return Err(InvalidPath { path });
        }
        Ok(Self {
            actor_id: actor_id.into(),
            path,
            headers: Headers::new(),
        })
    }

    /// This open with the upgrade request's `headers`, in order.
    #[must_use]
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }

    /// The actor.
    pub fn actor_id(&self) -> &str {
        &self.actor_id
    }

    /// The path of the client's upgrade request (it starts with `/`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The headers of the client's upgrade request, in order.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// An open whose path is not checked: only for showing what the official runner does with
    /// one (the interop test).
    #[cfg(feature = "sim")]
    #[doc(hidden)]
    pub fn with_unchecked_path(actor_id: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            actor_id: actor_id.into(),
            path: path.into(),
            headers: Headers::new(),
        }
    }

    /// The actor, the path and the headers.
    pub(super) fn into_parts(self) -> (String, String, Headers) {
        (self.actor_id, self.path, self.headers)
    }
}

/// Why [`OpenRequest::new`] refused a path: it does not start with `/`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("open path {path:?} does not start with '/'")]
#[non_exhaustive]
pub struct InvalidPath {
    /// The path refused.
    pub path: String,
}

/// The phase of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// The open was published; the runner has not accepted it yet.
    AwaitingOpen,
    /// The runner accepted the WebSocket; messages flow.
    Active,
    /// The actor is gone; the client socket stays open and its messages are buffered.
    Hibernating,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AwaitingOpen => "awaiting open",
            Self::Active => "active",
            Self::Hibernating => "hibernating",
        })
    }
}

/// Where a live request sits in its [`Gateway`](super::Gateway): its slot and the slot's
/// generation, from [`Gateway::request_slot`](super::Gateway::request_slot). Passing it to
/// [`Gateway::client_message_at`](super::Gateway::client_message_at) skips the request-id
/// lookup. It names one request only: once that request ends, its slot's generation changes and
/// the handle matches nothing, even if the slot holds a new request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestSlot {
    pub(super) index: u32,
    pub(super) generation: u32,
}

/// One client WebSocket.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) id: RequestId,
    pub(crate) next_index: MessageIndex,
    pub(crate) phase: Phase,
    pub(crate) hibernatable: bool,
    pub(crate) route: RouteId,
    /// Deadline of this request's live timer-queue entry; `Timestamp::MAX` when none.
    pub(crate) timer_at: Timestamp,
    /// Next hibernating-record upsert (hibernatable only).
    pub(crate) keepalive_at: Timestamp,
    /// When the record stops being eligible (hibernatable only).
    pub(crate) record_expiry: Timestamp,
    pub(crate) actor_id: Box<str>,
    pub(crate) phase_state: Option<Box<PhaseState>>,
    pub(crate) buffer: Option<Box<Buffer>>,
    pub(crate) stats: RequestStats,
}

/// State that exists only in some phases.
#[derive(Debug)]
pub(crate) enum PhaseState {
    AwaitingOpen {
        deadline: Timestamp,
    },
    Active(Active),
    /// Hibernating after a [`RequestWake`](super::Action::RequestWake).
    WakeRequested {
        deadline: Timestamp,
        /// The client closed: its close waits for the wake replay and then for the runner's
        /// acks of every pending message.
        client_close: Option<Closing>,
        /// The actor's next runner, once declared
        /// ([`Gateway::actor_starting`](super::Gateway::actor_starting)).
        next_route: Option<RouteId>,
    },
    /// Hibernating, no wake requested, the actor's next runner declared.
    Restoring {
        next_route: RouteId,
    },
}

#[derive(Debug)]
pub(crate) struct Active {
    pub(crate) next_ping: Timestamp,
    pub(crate) last_pong: Timestamp,
    /// Last retransmit round; `Timestamp::ZERO` when none this activation.
    pub(crate) last_retransmit: Timestamp,
    /// The client closed while messages were unacknowledged: the close is forwarded once the
    /// runner acked them all.
    pub(crate) closing: Option<Closing>,
}

impl Active {
    /// A new activation: pings due one interval from `now`, nothing heard yet.
    pub(crate) fn new(now: Timestamp, ping_interval: core::time::Duration) -> Self {
        Self {
            next_ping: now + ping_interval,
            last_pong: now,
            last_retransmit: Timestamp::ZERO,
            closing: None,
        }
    }
}

/// A client close held back until the runner acknowledged every accepted message.
#[derive(Debug)]
pub(crate) struct Closing {
    /// [`CloseReason::ClientClosed`] or [`CloseReason::ClientGone`].
    pub(crate) reason: CloseReason,
    /// When the request is collected ([`GcReason::CloseTimeout`](super::GcReason::CloseTimeout))
    /// if the acks have not all come.
    pub(crate) deadline: Timestamp,
}

/// Buffered messages of a hibernatable request and its backpressure state.
#[derive(Debug, Default)]
pub(crate) struct Buffer {
    pub(crate) pending: PendingBuffer,
    /// Size of the frame refused with backpressure, until room is free for it.
    pub(crate) blocked: Option<u64>,
    /// Queued in the gateway-wide blocked queue.
    pub(crate) in_blocked_queue: bool,
    /// Newest pending messages that were buffered while hibernating and not published yet.
    pub(crate) unsent: u16,
}

impl Request {
    pub(crate) fn active_mut(&mut self) -> Option<&mut Active> {
        match self.phase_state.as_deref_mut() {
            Some(PhaseState::Active(a)) => Some(a),
            _ => None,
        }
    }

    pub(crate) fn pending(&self) -> Option<&PendingBuffer> {
        self.buffer.as_deref().map(|b| &b.pending)
    }

    pub(crate) fn pending_len(&self) -> usize {
        self.pending().map_or(0, PendingBuffer::len)
    }

    pub(crate) fn pending_bytes(&self) -> u64 {
        self.pending().map_or(0, PendingBuffer::bytes)
    }

    /// The last index published to a runner. Messages buffered while hibernating are assigned an
    /// index but published only by the wake replay; an ack beyond this index is invalid.
    pub(crate) fn sent_through(&self) -> MessageIndex {
        let unsent = self.buffer.as_deref().map_or(0, |b| b.unsent);
        self.next_index.prev().wrapping_sub(unsent)
    }

    /// The actor's next runner, if declared while hibernating.
    pub(crate) fn next_route(&self) -> Option<RouteId> {
        match self.phase_state.as_deref() {
            Some(PhaseState::WakeRequested { next_route, .. }) => *next_route,
            Some(PhaseState::Restoring { next_route }) => Some(*next_route),
            _ => None,
        }
    }

    /// The client closed: its close waits for acks (or for the wake that replays them).
    pub(crate) fn client_closed(&self) -> bool {
        self.closing().is_some()
    }

    /// The held-back client close, if the client closed.
    pub(crate) fn closing(&self) -> Option<&Closing> {
        match self.phase_state.as_deref() {
            Some(
                PhaseState::Active(Active { closing, .. })
                | PhaseState::WakeRequested {
                    client_close: closing,
                    ..
                },
            ) => closing.as_ref(),
            _ => None,
        }
    }

    pub(crate) fn wake_requested(&self) -> bool {
        matches!(
            self.phase_state.as_deref(),
            Some(PhaseState::WakeRequested { .. })
        )
    }

    pub(crate) fn buffer_mut(&mut self) -> &mut Buffer {
        self.buffer.get_or_insert_with(Box::default)
    }
}

/// A slot of the [`Slab`]: a generation counter, bumped on every removal so that stale handles
/// (timer entries of a removed request) never match a new occupant.
#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// Chunked slab with slot reuse: no reallocation of existing entries as it grows, waste bounded
/// by one chunk, O(1) insert/remove/get.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    chunks: Vec<Box<[Slot<T>]>>,
    /// Freed slots, reused last-in first-out.
    free: Vec<u32>,
    /// Slots ever handed out (the high-water mark).
    used: u32,
    len: usize,
}

/// Slots per chunk.
const CHUNK: u32 = 1024;

impl<T> Slab<T> {
    pub(crate) fn new() -> Self {
        Self {
            chunks: Vec::new(),
            free: Vec::new(),
            used: 0,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn slot(&self, index: u32) -> Option<&Slot<T>> {
        let chunk = self.chunks.get(usize::try_from(index / CHUNK).ok()?)?;
        chunk.get(usize::try_from(index % CHUNK).ok()?)
    }

    fn slot_mut(&mut self, index: u32) -> Option<&mut Slot<T>> {
        let chunk = self.chunks.get_mut(usize::try_from(index / CHUNK).ok()?)?;
        chunk.get_mut(usize::try_from(index % CHUNK).ok()?)
    }

    /// Stores `value`; returns its slot and generation, or `None` when all `u32` slots are used.
    pub(crate) fn insert(&mut self, value: T) -> Option<(u32, u32)> {
        let index = if let Some(i) = self.free.pop() {
            i
        } else {
            let i = self.used;
            if i.is_multiple_of(CHUNK) {
                i.checked_add(CHUNK)?;
                let chunk: Box<[Slot<T>]> = (0..CHUNK)
                    .map(|_| Slot {
                        generation: 0,
                        value: None,
                    })
                    .collect();
                self.chunks.push(chunk);
            }
            self.used = i.checked_add(1)?;
            i
        };
        let slot = self.slot_mut(index)?;
        debug_assert!(slot.value.is_none(), "free slots are empty");
        slot.value = Some(value);
        let generation = slot.generation;
        self.len += 1;
        Some((index, generation))
    }

    /// Removes the value in `index`, bumping the slot's generation.
    pub(crate) fn remove(&mut self, index: u32) -> Option<T> {
        let slot = self.slot_mut(index)?;
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index);
        self.len -= 1;
        Some(value)
    }

    pub(crate) fn get(&self, index: u32) -> Option<&T> {
        self.slot(index)?.value.as_ref()
    }

    pub(crate) fn get_mut(&mut self, index: u32) -> Option<&mut T> {
        self.slot_mut(index)?.value.as_mut()
    }

    /// The value in `index` and its generation.
    pub(crate) fn get_with_generation(&self, index: u32) -> Option<(&T, u32)> {
        let slot = self.slot(index)?;
        slot.value.as_ref().map(|v| (v, slot.generation))
    }

    /// The value in `index` if its generation is still `generation`.
    pub(crate) fn get_live_mut(&mut self, index: u32, generation: u32) -> Option<&mut T> {
        let slot = self.slot_mut(index)?;
        if slot.generation == generation {
            slot.value.as_mut()
        } else {
            None
        }
    }

    /// The value in `index` and its generation.
    pub(crate) fn get_mut_with_generation(&mut self, index: u32) -> Option<(&mut T, u32)> {
        let slot = self.slot_mut(index)?;
        let generation = slot.generation;
        slot.value.as_mut().map(|v| (v, generation))
    }

    /// Every stored value with its slot, in slot order.
    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .zip(0u32..)
            .filter_map(|(s, i)| s.value.as_ref().map(|v| (i, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_remove_reuse_with_generations() {
        let mut s: Slab<u64> = Slab::new();
        let (a, ga) = s.insert(10).expect("room");
        let (b, gb) = s.insert(20).expect("room");
        assert_eq!((a, b, ga, gb), (0, 1, 0, 0));
        assert_eq!(s.len(), 2);
        assert_eq!(s.remove(a), Some(10));
        assert_eq!(s.remove(a), None);
        assert_eq!(s.get(a), None);
        // Reused slot, new generation: the old handle no longer matches.
        let (c, gc) = s.insert(30).expect("room");
        assert_eq!((c, gc), (0, 1));
        assert_eq!(s.get_live_mut(c, ga), None);
        assert_eq!(s.get_live_mut(c, gc).copied(), Some(30));
        assert_eq!(s.get_live_mut(b, gb).copied(), Some(20));
        assert_eq!(
            s.get_mut_with_generation(c).map(|(v, g)| (*v, g)),
            Some((30, 1))
        );
        assert_eq!(
            s.iter().map(|(i, v)| (i, *v)).collect::<Vec<_>>(),
            [(0, 30), (1, 20)]
        );
        assert_eq!(s.get(5_000), None);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn grows_in_chunks() {
        let mut s: Slab<u32> = Slab::new();
        for i in 0..3000 {
            assert_eq!(s.insert(i).map(|(slot, _)| slot), Some(i));
        }
        assert_eq!(s.chunks.len(), 3);
        for i in 0..3000 {
            assert_eq!(s.get(i), Some(&i));
        }
        assert_eq!(s.remove(1500), Some(1500));
        assert_eq!(s.insert(7).map(|(slot, _)| slot), Some(1500));
        assert_eq!(s.chunks.len(), 3);
    }

    #[test]
    fn idle_request_is_small() {
        // Part of the ≤ 192 bytes per idle hibernating request budget (see benches/gateway.rs).
        assert!(
            core::mem::size_of::<Slot<Request>>() <= 112,
            "{}",
            core::mem::size_of::<Slot<Request>>()
        );
    }
}
