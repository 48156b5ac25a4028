//! The gateway engine: [`Gateway`] holds every client WebSocket ("request") of one gateway
//! process and speaks the tunnel protocol to the runners.
//!
//! It numbers every gateway → runner tunnel message of a request with a wrapping
//! [`MessageIndex`] (open = 0, first client message = 1, the counter survives hibernation),
//! buffers the encoded messages of *hibernatable* requests until the runner's cumulative ack,
//! replays them verbatim on wake, enforces per-request and gateway-wide limits, and collects dead
//! requests with exact timers. It does no I/O and reads no clock.
//!
//! # Driving contract
//!
//! * **Inputs**: commands from the client side and the adapter ([`open`](Gateway::open),
//!   [`client_message`](Gateway::client_message), [`client_close`](Gateway::client_close),
//!   [`actor_stopped`](Gateway::actor_stopped), [`wake`](Gateway::wake), the record results),
//!   runner input ([`handle_runner_frame`](Gateway::handle_runner_frame),
//!   [`handle_runner_message`](Gateway::handle_runner_message),
//!   [`handle_pong`](Gateway::handle_pong)) and time ([`handle_timeout`](Gateway::handle_timeout)).
//!   Every one takes `now`.
//! * **`now` never decreases** across calls (the same instant may repeat). A `now` older than one
//!   already seen is treated as the latest one seen.
//! * After **every** call, drain [`poll_action`](Gateway::poll_action) until it returns `None`
//!   and perform the actions in order.
//! * Then read [`poll_timeout`](Gateway::poll_timeout) last, and call
//!   [`handle_timeout`](Gateway::handle_timeout) once that instant is reached (calling it early
//!   or twice is a harmless no-op). After `handle_timeout(now)`, `poll_timeout` is always later
//!   than `now`: a handled deadline is never returned again.
//! * Report the result of every [`Action::UpsertHibernatingRecord`] with
//!   [`hibernating_record_upserted`](Gateway::hibernating_record_upserted) or
//!   [`hibernating_record_failed`](Gateway::hibernating_record_failed): a hibernatable request
//!   whose record was not confirmed for [`GatewayConfig::hibernation_timeout`] is collected.
//!
//! Runner input that is invalid is dropped with a typed [`ReceiveError`] and counted in
//! [`GatewayStats`]; it never panics and never closes anything by itself.
//!
//! # Lifecycle of a request
//!
//! ```text
//! open ──► AwaitingOpen ──runner Open──► Active ◄──────── wake ────────┐
//!              │                          │  actor stopped / runner    │
//!              │ runner Close, timeout,   │  close{hibernate} / ping   │
//!              │ actor stopped            ▼  timeout (hibernatable)    │
//!              │                     Hibernating ──pending data or ────┘
//!              ▼                          │       client close: RequestWake
//!           Closed ◄──────────────────────┘  (any close, limit, collection)
//! ```
//!
//! Every opened request ends with exactly one [`Action::Closed`], after which it is gone
//! ([`Gateway::request`] returns `None`) and its hibernating record is deleted.

use alloc::boxed::Box;
use alloc::collections::VecDeque;

use crate::close::CloseFrame;
use crate::config::ConfigError;
use crate::hash::IdMap;
use crate::index::MessageIndex;
use crate::time::Timestamp;
use crate::wire::{
    self, GatewayId, MessageId, RequestId, ToClientTunnelMessage, ToClientTunnelMessageKind,
    ToClientWebSocketOpen, ToRunner,
};

mod action;
mod actor_gone;
mod backpressure;
mod config;
mod deadline;
mod error;
#[cfg(any(test, feature = "sim"))]
mod invariants;
mod lifecycle;
mod next_route;
mod pending;
mod receive;
mod request;
mod stats;
mod timer;

#[cfg(test)]
mod held_close_tests;
#[cfg(test)]
mod tests;

pub use action::{Action, CloseReason, Frame, GcReason, Limit};
pub use config::{GatewayConfig, OverflowPolicy};
pub use error::{OpenError, ReceiveError, SendError, UnknownRequest, WakeError};
pub use request::{InvalidPath, OpenRequest, Phase, RequestSlot, RouteId};
pub use stats::{GatewayStats, RequestInfo, RequestStats};

use request::{Active, Closing, PhaseState, Request, Slab};
use timer::TimerQueue;

/// The gateway engine: every request of one gateway process. See the [module docs](self) for the
/// driving contract.
///
/// A request through open → message → ack:
///
/// ```
/// use hibernating_ws::gateway::{Action, Gateway, GatewayConfig, OpenRequest, RouteId};
/// use hibernating_ws::wire::{GatewayId, MessageId, RequestId, ToServerTunnelMessage,
///     ToServerTunnelMessageKind, ToServerWebSocketMessageAck, ToServerWebSocketOpen};
/// use hibernating_ws::{MessageIndex, Timestamp};
///
/// let gw_id = GatewayId([1, 2, 3, 4]);
/// let mut now = Timestamp::from_secs(1);
/// let mut gw = Gateway::new(GatewayConfig::default(), gw_id, now)?;
/// let (req, route) = (RequestId([9, 9, 9, 9]), RouteId(7));
///
/// // A client connects: publish the open (index 0) to the actor's runner.
/// gw.open(now, req, route, OpenRequest::new("actor-1", "/")?)?;
/// let mut actions = Vec::new();
/// while let Some(a) = gw.poll_action() { actions.push(a); }
/// assert!(matches!(actions.as_slice(), [Action::Publish { route: RouteId(7), .. }]));
///
/// // The runner accepts it as hibernatable.
/// let from_runner = |index: u16, kind| ToServerTunnelMessage {
///     message_id: MessageId { gateway_id: gw_id, request_id: req, message_index: MessageIndex::new(index) },
///     kind,
/// };
/// let open = ToServerTunnelMessageKind::WebSocketOpen(ToServerWebSocketOpen { can_hibernate: true });
/// gw.handle_runner_message(now, route, from_runner(0, open))?;
/// actions.clear();
/// while let Some(a) = gw.poll_action() { actions.push(a); }
/// assert!(actions.contains(&Action::Opened { request_id: req, hibernatable: true }));
/// assert!(matches!(actions.last(), Some(Action::UpsertHibernatingRecord { .. })));
///
/// // A client message gets index 1, is published and stays buffered until acked.
/// now = now + core::time::Duration::from_millis(5);
/// let index = gw.client_message(now, req, b"hello", false)?;
/// assert_eq!(index, MessageIndex::new(1));
/// assert!(matches!(gw.poll_action(), Some(Action::Publish { .. })));
/// assert_eq!(gw.poll_action(), None);
/// assert_eq!(gw.request(req).map(|r| r.pending_messages), Some(1));
///
/// // The runner persisted it and acks index 1: the buffer is empty again.
/// let ack = ToServerTunnelMessageKind::WebSocketMessageAck(ToServerWebSocketMessageAck { index });
/// gw.handle_runner_message(now, route, from_runner(1, ack))?;
/// assert_eq!(gw.poll_action(), None);
/// assert_eq!(gw.request(req).map(|r| r.pending_messages), Some(0));
/// assert_eq!(gw.stats().pending_bytes, 0);
///
/// // Timers: the next ping (the liveness probe) is due 3 s after the runner was last heard
/// // from (the ack); a deadline may come early, which does nothing.
/// let ping = loop {
///     let deadline = gw.poll_timeout().expect("a ping is scheduled");
///     gw.handle_timeout(deadline);
///     assert!(gw.poll_timeout() > Some(deadline));
///     if let Some(action) = gw.poll_action() {
///         break (deadline, action);
///     }
/// };
/// assert_eq!(ping.0, now + core::time::Duration::from_secs(3));
/// assert!(matches!(ping.1, Action::Publish { .. })); // the ping
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Gateway {
    config: GatewayConfig,
    id: GatewayId,
    /// The latest `now` seen.
    now: Timestamp,
    requests: Slab<Request>,
    index: IdMap<RequestId, u32>,
    timers: TimerQueue,
    actions: VecDeque<Action>,
    /// Requests refused with backpressure on the gateway-wide limit, first come first served:
    /// `(slot, generation)`; entries of requests gone or no longer blocked are skipped.
    blocked: VecDeque<(u32, u32)>,
    /// Pending bytes across all requests.
    pending_bytes: u64,
    /// Pending messages across all requests.
    pending_messages: u64,
    hibernating: u64,
    stats: GatewayStats,
}

impl Gateway {
    /// A gateway with no requests.
    ///
    /// # Errors
    /// [`ConfigError::OutOfBounds`] if `config` fails [`GatewayConfig::validate`].
    pub fn new(
        config: GatewayConfig,
        gateway_id: GatewayId,
        now: Timestamp,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            id: gateway_id,
            now,
            requests: Slab::new(),
            index: IdMap::default(),
            timers: TimerQueue::new(),
            actions: VecDeque::new(),
            blocked: VecDeque::new(),
            pending_bytes: 0,
            pending_messages: 0,
            hibernating: 0,
            stats: GatewayStats::default(),
        })
    }

    /// This gateway's id (written in every tunnel message it publishes).
    pub fn gateway_id(&self) -> GatewayId {
        self.id
    }

    /// The configuration.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    // ---------------------------------------------------------------------------------------
    // Commands
    // ---------------------------------------------------------------------------------------

    /// A client connected: publishes `ToClientWebSocketOpen` at index 0 to `route` and waits
    /// (at most [`GatewayConfig::open_timeout`]) for the runner to accept.
    ///
    /// Do not read the client before [`Action::Opened`].
    ///
    /// `request_id` is the embedder's choice, and it must be unguessable: draw it from a
    /// cryptographic random source (the engine never reads one itself; randomness is an input
    /// like time). A runner-side peer that could guess live request ids could address frames to
    /// other clients' sockets. The engine finds a request by id in O(1) (a hash index),
    /// whatever the ids look like.
    ///
    /// # Errors
    /// [`OpenError::AlreadyExists`] if `request_id` is live (nothing changes; upstream reused the
    /// entry for a retry, hws has no retry path: a hibernated request continues through
    /// [`wake`](Self::wake)); [`OpenError::TooManyRequests`] past
    /// [`GatewayConfig::max_requests`].
    pub fn open(
        &mut self,
        now: Timestamp,
        request_id: RequestId,
        route: RouteId,
        open: OpenRequest,
    ) -> Result<(), OpenError> {
        let now = self.advance(now);
        if self.index.contains_key(&request_id) {
            return Err(OpenError::AlreadyExists { request_id });
        }
        let max = self.config.max_requests;
        if self.requests.len() >= max {
            return Err(OpenError::TooManyRequests { request_id, max });
        }
        let (actor_id, path, headers) = open.into_parts();
        let request = Request {
            id: request_id,
            next_index: MessageIndex::ZERO.next(),
            phase: Phase::AwaitingOpen,
            hibernatable: false,
            route,
            timer_at: Timestamp::MAX,
            keepalive_at: Timestamp::MAX,
            record_expiry: Timestamp::MAX,
            actor_id: actor_id.as_str().into(),
            phase_state: Some(Box::new(PhaseState::AwaitingOpen {
                deadline: now + self.config.open_timeout,
            })),
            buffer: None,
            stats: RequestStats::default(),
        };
        let Some((slot, _)) = self.requests.insert(request) else {
            return Err(OpenError::TooManyRequests { request_id, max });
        };
        self.index.insert(request_id, slot);
        self.stats.opened += 1;
        // Path and headers go straight into the encoded open; only the actor id is kept.
        let kind = ToClientTunnelMessageKind::WebSocketOpen(ToClientWebSocketOpen {
            actor_id,
            path,
            headers,
        });
        let frame = self.encode_tunnel(request_id, MessageIndex::ZERO, kind);
        self.actions.push_back(Action::Publish {
            route,
            request_id,
            frame,
        });
        self.schedule(slot);
        Ok(())
    }

    /// A client WebSocket message. Returns the index it was given.
    ///
    /// * Active, not hibernatable: encoded and published; nothing is buffered and no limit
    ///   applies.
    /// * Active or hibernating, hibernatable: the limits are checked first (exactly at a limit is
    ///   allowed); then the message is encoded once, buffered until acked, and published — or,
    ///   while hibernating, only buffered, with an [`Action::RequestWake`].
    ///
    /// # Errors
    /// [`SendError::UnknownRequest`], [`SendError::NotOpen`] before [`Action::Opened`];
    /// over a limit: [`SendError::Backpressure`] (nothing changed) or
    /// [`SendError::LimitExceeded`] (the request was closed) depending on
    /// [`GatewayConfig::overflow_policy`]; [`SendError::MessageTooLarge`] if the message alone
    /// exceeds [`GatewayConfig::max_pending_bytes`] (the request was closed).
    pub fn client_message(
        &mut self,
        now: Timestamp,
        request_id: RequestId,
        data: &[u8],
        binary: bool,
    ) -> Result<MessageIndex, SendError> {
        let now = self.advance(now);
        let slot = self
            .slot_of(request_id)
            .ok_or(SendError::UnknownRequest { request_id })?;
        self.client_message_in(now, slot, request_id, data, binary)
    }

    /// Where live request `request_id` sits, for [`client_message_at`](Self::client_message_at);
    /// `None` if it is not live. The handle stays valid until the request ends.
    #[must_use]
    pub fn request_slot(&self, request_id: RequestId) -> Option<RequestSlot> {
        let index = self.slot_of(request_id)?;
        let (_, generation) = self.requests.get_with_generation(index)?;
        Some(RequestSlot { index, generation })
    }

    /// [`client_message`](Self::client_message) for the request at `at` (from
    /// [`request_slot`](Self::request_slot)), without looking `request_id` up: an adapter that
    /// keeps the handle with its own per-client state reaches the engine's state directly. The
    /// same rules, results and errors; a handle of a request that has ended, or of another
    /// request than `request_id`, gives [`SendError::UnknownRequest`] and changes nothing.
    ///
    /// # Errors
    /// As [`client_message`](Self::client_message).
    pub fn client_message_at(
        &mut self,
        now: Timestamp,
        at: RequestSlot,
        request_id: RequestId,
        data: &[u8],
        binary: bool,
    ) -> Result<MessageIndex, SendError> {
        let now = self.advance(now);
        match self.requests.get_with_generation(at.index) {
            Some((req, generation)) if generation == at.generation && req.id == request_id => {
                self.client_message_in(now, at.index, request_id, data, binary)
            }
            _ => Err(SendError::UnknownRequest { request_id }),
        }
    }

    /// [`client_message`](Self::client_message) for the request in `slot`.
    fn client_message_in(
        &mut self,
        now: Timestamp,
        slot: u32,
        request_id: RequestId,
        data: &[u8],
        binary: bool,
    ) -> Result<MessageIndex, SendError> {
        let req = self
            .requests
            .get(slot)
            .ok_or(SendError::UnknownRequest { request_id })?;
        let (phase, hibernatable) = (req.phase, req.hibernatable);
        let (count, request_bytes) = (req.pending_len(), req.pending_bytes());
        if phase == Phase::AwaitingOpen {
            return Err(SendError::NotOpen { request_id });
        }
        if req.client_closed() {
            return Err(SendError::ClientClosed { request_id });
        }
        if hibernatable {
            let size = u64::try_from(wire::ws_message_frame_len(data.len())).unwrap_or(u64::MAX);
            let max = self.config.max_pending_bytes;
            if size > max {
                self.terminate(slot, CloseReason::PendingLimit(Limit::RequestBytes));
                return Err(SendError::MessageTooLarge {
                    request_id,
                    size,
                    max,
                });
            }
            let limit = if count >= usize::from(self.config.max_pending_messages) {
                Some(Limit::Count)
            } else if request_bytes.saturating_add(size) > max {
                Some(Limit::RequestBytes)
            } else if self.pending_bytes.saturating_add(size)
                > self.config.max_gateway_pending_bytes
            {
                Some(Limit::GatewayBytes)
            } else {
                None
            };
            if let Some(limit) = limit {
                return Err(self.overflow(slot, limit, size));
            }
        }

        let Some(req) = self.requests.get_mut(slot) else {
            return Err(SendError::UnknownRequest { request_id });
        };
        let index = req.next_index;
        req.next_index = index.next();
        req.stats.messages_sent += 1;
        let route = req.route;
        let frame = self.encode_ws_message(request_id, index, data, binary);
        self.stats.messages_sent += 1;
        let payload_len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        self.stats.payload_bytes_sent = self.stats.payload_bytes_sent.saturating_add(payload_len);
        let Some(req) = self.requests.get_mut(slot) else {
            return Err(SendError::UnknownRequest { request_id });
        };
        if hibernatable {
            let buffer = req.buffer_mut();
            buffer.blocked = None;
            self.pending_bytes = self.pending_bytes.saturating_add(frame.byte_len());
            self.pending_messages += 1;
            buffer.pending.push(index, now, frame.clone());
            if phase == Phase::Hibernating {
                buffer.unsent = buffer.unsent.saturating_add(1);
            }
        }
        if phase == Phase::Active {
            // Non-hibernatable requests are published and forgotten: nothing is buffered or acked.
            self.actions.push_back(Action::Publish {
                route,
                request_id,
                frame,
            });
            if hibernatable && count == 0 {
                // The ack (and retransmit) deadline starts now; it may be the earliest.
                self.schedule(slot);
            }
        } else if !req.wake_requested() {
            self.request_wake(slot, now, None);
        }
        Ok(index)
    }

    /// The client closed its WebSocket (`frame`) or its stream ended without a close frame
    /// (`None`).
    ///
    /// **A client close never drops an accepted message.** The close is published to the runner
    /// (client's code and reason; `None` → 1000) and the request removed
    /// ([`CloseReason::ClientClosed`] or [`CloseReason::ClientGone`]) only once the runner
    /// acknowledged every message the gateway accepted:
    ///
    /// * Awaiting open, not hibernatable, or active with nothing pending: at once.
    /// * Active with pending messages: the close is held; the request stays active (pings,
    ///   retransmits, ack timeout and limits as before, nothing more is read from the client, the
    ///   runner's messages to the client are dropped) and closes when the ack of the last pending
    ///   message arrives. If the runner is lost meanwhile the request hibernates as usual, asks
    ///   for a wake, and the wake replays the pending messages to the actor's next runner.
    /// * Hibernating: the close is held and a wake requested; [`wake`](Self::wake) replays the
    ///   pending messages and then waits for their acks as above.
    ///
    /// A held close is bounded by [`GatewayConfig::close_timeout`] from this call (then
    /// [`GcReason::CloseTimeout`]) and by the other deadlines (ack, wake, hibernation timeouts);
    /// every such end is reported with its own [`Action::Closed`] reason, never as a client close.
    /// No close frame goes to the client, which is already gone. A second close changes nothing.
    ///
    /// The hibernating record is deleted only after the close is published, so the woken actor
    /// restores the socket, receives every pending message and then the client's real close
    /// (`docs/upstream.md#client-close-while-hibernating`).
    ///
    /// # Errors
    /// [`UnknownRequest`].
    pub fn client_close(
        &mut self,
        now: Timestamp,
        request_id: RequestId,
        frame: Option<CloseFrame>,
    ) -> Result<(), UnknownRequest> {
        let now = self.advance(now);
        let deadline = now + self.config.close_timeout;
        let (slot, req) = self.live_mut(request_id)?;
        if req.client_closed() {
            // A second close of the same client changes nothing.
            return Ok(());
        }
        let reason = frame.map_or(CloseReason::ClientGone, CloseReason::ClientClosed);
        let closing = Closing { reason, deadline };
        match req.phase {
            Phase::Hibernating => match req.phase_state.as_deref_mut() {
                // A wake is already requested: it now also carries the close.
                Some(PhaseState::WakeRequested { client_close, .. }) => {
                    *client_close = Some(closing);
                }
                _ => self.request_wake(slot, now, Some(closing)),
            },
            Phase::Active if req.pending_len() > 0 => {
                if let Some(active) = req.active_mut() {
                    active.closing = Some(closing);
                }
                self.stats.client_closes_held += 1;
                self.schedule(slot);
            }
            Phase::AwaitingOpen | Phase::Active => self.terminate(slot, closing.reason),
        }
        Ok(())
    }

    /// The actor behind the request stopped (upstream's `Stopped` signal).
    ///
    /// Active and hibernatable: the request hibernates. Active, not hibernatable: the client gets
    /// 1000 `actor.stopped` ([`CloseReason::ActorStopped`]). Awaiting open:
    /// [`CloseReason::ActorStoppedBeforeOpen`]. Hibernating: nothing.
    ///
    /// # Errors
    /// [`UnknownRequest`].
    pub fn actor_stopped(
        &mut self,
        now: Timestamp,
        request_id: RequestId,
    ) -> Result<(), UnknownRequest> {
        let now = self.advance(now);
        let (slot, req) = self.live_mut(request_id)?;
        match (req.phase, req.hibernatable) {
            (Phase::Active, true) => self.hibernate(slot, now),
            (Phase::Active, false) => self.terminate(slot, CloseReason::ActorStopped),
            (Phase::AwaitingOpen, _) => self.terminate(slot, CloseReason::ActorStoppedBeforeOpen),
            (Phase::Hibernating, _) => {}
        }
        Ok(())
    }

    /// The actor of a hibernating request is running again behind `route`: every pending
    /// message is re-published there verbatim (same frames, same indices, same order; no open),
    /// and the request is active again. Numbering continues where it was.
    ///
    /// If the client closed, its close is published once the replayed messages are acknowledged
    /// (at once if none is pending), and the request is removed.
    ///
    /// # Errors
    /// [`WakeError::UnknownRequest`] (for example it was collected meanwhile), or
    /// [`WakeError::NotHibernating`] (nothing changes).
    pub fn wake(
        &mut self,
        now: Timestamp,
        request_id: RequestId,
        route: RouteId,
    ) -> Result<(), WakeError> {
        let now = self.advance(now);
        let slot = self
            .slot_of(request_id)
            .ok_or(WakeError::UnknownRequest { request_id })?;
        let Self {
            requests,
            actions,
            stats,
            config,
            ..
        } = self;
        let req = requests
            .get_mut(slot)
            .ok_or(WakeError::UnknownRequest { request_id })?;
        if req.phase != Phase::Hibernating {
            return Err(WakeError::NotHibernating { request_id });
        }
        let client_close = match req.phase_state.take().map(|b| *b) {
            Some(PhaseState::WakeRequested { client_close, .. }) => client_close,
            _ => None,
        };
        req.route = route;
        req.phase = Phase::Active;
        let mut active = Active::new(now, config.ping_interval);
        let has_pending = req.pending_len() > 0;
        let client_close = match client_close {
            // The close waits for the acks of the replayed messages.
            Some(closing) if has_pending => {
                active.closing = Some(closing);
                stats.client_closes_held += 1;
                None
            }
            other => other,
        };
        req.phase_state = Some(Box::new(PhaseState::Active(active)));
        let mut replayed = 0u64;
        if let Some(buffer) = req.buffer.as_deref_mut() {
            for entry in buffer.pending.iter() {
                actions.push_back(Action::Publish {
                    route,
                    request_id,
                    frame: entry.frame.clone(),
                });
                replayed += 1;
            }
            buffer.pending.mark_sent(now);
            buffer.unsent = 0;
        }
        req.stats.messages_resent += replayed;
        stats.messages_replayed += replayed;
        stats.wakes += 1;
        self.hibernating -= 1;
        match client_close {
            Some(closing) => self.terminate(slot, closing.reason),
            None => self.schedule(slot),
        }
        Ok(())
    }

    /// The hibernating record of the request was written: it stays eligible for
    /// [`GatewayConfig::hibernation_timeout`] from `now`. Ignored for a request that is not
    /// hibernatable.
    ///
    /// # Errors
    /// [`UnknownRequest`].
    pub fn hibernating_record_upserted(
        &mut self,
        now: Timestamp,
        request_id: RequestId,
    ) -> Result<(), UnknownRequest> {
        let now = self.advance(now);
        let timeout = self.config.hibernation_timeout;
        let (_, req) = self.live_mut(request_id)?;
        if req.hibernatable {
            // Only ever moves later: the timer entry already in the queue is early enough.
            req.record_expiry = now + timeout;
            self.stats.record_upserts_succeeded += 1;
        }
        Ok(())
    }

    /// Writing the hibernating record failed. Counted; the next keepalive tick retries, and the
    /// request is collected if no upsert succeeds within [`GatewayConfig::hibernation_timeout`].
    ///
    /// # Errors
    /// [`UnknownRequest`].
    pub fn hibernating_record_failed(
        &mut self,
        now: Timestamp,
        request_id: RequestId,
    ) -> Result<(), UnknownRequest> {
        self.advance(now);
        self.live_mut(request_id)?;
        self.stats.record_upserts_failed += 1;
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // Time and output
    // ---------------------------------------------------------------------------------------

    /// Fires every timer due at `now`: open, ack, ping, keepalive, hibernation, wake and
    /// retransmit deadlines. Early or repeated calls do nothing.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let now = self.advance(now);
        while let Some(entry) = self.timers.pop_due(now) {
            let Some(req) = self.requests.get_mut(entry.slot) else {
                continue;
            };
            if req.timer_at != entry.deadline {
                // Stale: the request's live entry is another one.
                continue;
            }
            req.timer_at = Timestamp::MAX;
            self.fire(entry.slot, now);
            self.schedule(entry.slot);
        }
        self.timers.shrink();
    }

    /// The next instant [`handle_timeout`](Self::handle_timeout) must be called at, or `None`
    /// when no timer is armed. O(1). It may be earlier than strictly needed (a spurious wake-up
    /// does nothing), never later, and after `handle_timeout(now)` it is always after `now`.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers.peek_deadline()
    }

    /// The next action to perform, in order. Drain it after every call.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    // ---------------------------------------------------------------------------------------
    // Getters
    // ---------------------------------------------------------------------------------------

    /// Counters and gauges.
    pub fn stats(&self) -> GatewayStats {
        GatewayStats {
            requests: self.requests.len() as u64,
            hibernating: self.hibernating,
            pending_messages: self.pending_messages,
            pending_bytes: self.pending_bytes,
            timer_entries: self.timers.len() as u64,
            ..self.stats
        }
    }

    /// A snapshot of a live request.
    pub fn request(&self, request_id: RequestId) -> Option<RequestInfo> {
        let req = self.requests.get(self.slot_of(request_id)?)?;
        let pending = req.pending();
        Some(RequestInfo {
            phase: req.phase,
            route: req.route,
            hibernatable: req.hibernatable,
            next_index: req.next_index,
            pending_messages: req.pending_len(),
            pending_bytes: req.pending_bytes(),
            oldest_unacked: pending.and_then(pending::PendingBuffer::first),
            oldest_unacked_sent_at: pending.and_then(pending::PendingBuffer::oldest_sent_at),
            stats: req.stats,
        })
    }

    /// Whether `request_id` is hibernating with a wake requested and not yet answered (a client
    /// message or close waits for the actor).
    pub(crate) fn wake_pending(&self, request_id: RequestId) -> bool {
        self.slot_of(request_id)
            .and_then(|slot| self.requests.get(slot))
            .is_some_and(|req| req.phase == Phase::Hibernating && req.wake_requested())
    }

    /// Number of live requests.
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// Whether no request is live.
    pub fn is_empty(&self) -> bool {
        self.requests.len() == 0
    }

    // ---------------------------------------------------------------------------------------
    // Internals
    // ---------------------------------------------------------------------------------------

    fn advance(&mut self, now: Timestamp) -> Timestamp {
        if now > self.now {
            self.now = now;
        }
        self.now
    }

    fn slot_of(&self, request_id: RequestId) -> Option<u32> {
        self.index.get(&request_id).copied()
    }

    /// The slot and the state of live request `request_id`.
    fn live_mut(&mut self, request_id: RequestId) -> Result<(u32, &mut Request), UnknownRequest> {
        let slot = self
            .slot_of(request_id)
            .ok_or(UnknownRequest { request_id })?;
        let req = self
            .requests
            .get_mut(slot)
            .ok_or(UnknownRequest { request_id })?;
        Ok((slot, req))
    }

    fn message_id(&self, request_id: RequestId, index: MessageIndex) -> MessageId {
        MessageId {
            gateway_id: self.id,
            request_id,
            message_index: index,
        }
    }

    fn encode_tunnel(
        &self,
        request_id: RequestId,
        index: MessageIndex,
        kind: ToClientTunnelMessageKind,
    ) -> Frame {
        let msg = ToRunner::TunnelMessage(ToClientTunnelMessage {
            message_id: self.message_id(request_id, index),
            kind,
        });
        Frame::new(wire::encode_versioned(self.config.protocol_version, &msg))
    }

    fn encode_ws_message(
        &self,
        request_id: RequestId,
        index: MessageIndex,
        data: &[u8],
        binary: bool,
    ) -> Frame {
        Frame::new(wire::encode_ws_message_frame(
            self.config.protocol_version,
            self.message_id(request_id, index),
            data,
            binary,
        ))
    }
}
