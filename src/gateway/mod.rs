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
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::{String, ToString};
use core::fmt;
use core::time::Duration;

use crate::close::CloseFrame;
use crate::config::ConfigError;
use crate::index::MessageIndex;
use crate::time::Timestamp;
use crate::wire::{
    self, GatewayId, Headers, MessageId, RequestId, ToClientTunnelMessage,
    ToClientTunnelMessageKind, ToClientWebSocketClose, ToClientWebSocketOpen, ToGateway,
    ToGatewayPong, ToRunner, ToRunnerPing, ToServerTunnelMessage, ToServerTunnelMessageKind,
};

mod action;
mod config;
mod error;
mod pending;
mod request;
mod stats;
mod timer;

#[cfg(test)]
mod tests;

pub use action::{Action, CloseReason, Frame, GcReason, Limit};
pub use config::{GatewayConfig, OverflowPolicy};
pub use error::{OpenError, ReceiveError, SendError, UnknownRequest, WakeError};
pub use stats::{GatewayStats, RequestInfo, RequestStats};

use pending::{AckVerdict, classify_ack};
use request::{Active, PhaseState, Request, Slab};
use timer::{TimerEntry, TimerQueue};

/// An opaque runner route chosen by the caller (for example the pub/sub subject of the runner
/// that hosts the actor). The gateway publishes a request's messages to its route and accepts
/// runner input for the request only from it (except a close, an ack or a message while the request hibernates, see
/// [`Gateway::handle_runner_message`]); the route changes only on [`Gateway::wake`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RouteId(pub u64);

/// What the runner needs to open a WebSocket on an actor ([`Gateway::open`]).
///
/// The default opens path `/` of actor `""` with no headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRequest {
    /// The actor.
    pub actor_id: String,
    /// Path of the client's upgrade request. It must start with `/`: the official TypeScript
    /// runner fails an open whose path does not before it registers the request, so the close it
    /// then sends is dropped inside the runner and the open ends only with
    /// [`GatewayConfig::open_timeout`].
    pub path: String,
    /// Headers of the client's upgrade request, in order.
    pub headers: Headers,
}

impl Default for OpenRequest {
    fn default() -> Self {
        Self {
            actor_id: String::new(),
            path: "/".into(),
            headers: Headers::new(),
        }
    }
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
/// gw.open(now, req, route, OpenRequest { actor_id: "actor-1".into(), ..Default::default() })?;
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
/// // Timers: the next ping is due 3 s after the open was accepted.
/// let deadline = gw.poll_timeout().expect("a ping is scheduled");
/// gw.handle_timeout(deadline);
/// assert!(matches!(gw.poll_action(), Some(Action::Publish { .. }))); // the ping
/// assert!(gw.poll_timeout() > Some(deadline));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Gateway {
    config: GatewayConfig,
    id: GatewayId,
    /// The latest `now` seen.
    now: Timestamp,
    requests: Slab<Request>,
    index: BTreeMap<RequestId, u32>,
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
            index: BTreeMap::new(),
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
            return Err(OpenError::AlreadyExists);
        }
        let max = self.config.max_requests;
        if self.requests.len() >= max {
            return Err(OpenError::TooManyRequests { max });
        }
        let OpenRequest {
            actor_id,
            path,
            headers,
        } = open;
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
            return Err(OpenError::TooManyRequests { max });
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
        let slot = self.slot_of(request_id).ok_or(SendError::UnknownRequest)?;
        let req = self.requests.get(slot).ok_or(SendError::UnknownRequest)?;
        let (phase, hibernatable) = (req.phase, req.hibernatable);
        let (count, request_bytes) = (req.pending_len(), req.pending_bytes());
        if phase == Phase::AwaitingOpen {
            return Err(SendError::NotOpen);
        }
        if hibernatable {
            let size = u64::try_from(wire::ws_message_frame_len(data.len())).unwrap_or(u64::MAX);
            let max = self.config.max_pending_bytes;
            if size > max {
                self.terminate(slot, CloseReason::PendingLimit(Limit::RequestBytes));
                return Err(SendError::MessageTooLarge { size, max });
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
            return Err(SendError::UnknownRequest);
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
            return Err(SendError::UnknownRequest);
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
            // Non-hibernatable requests are published and forgotten (PROTOCOL.md §6.2 scenario 2).
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
    /// Awaiting open or active: the close is published to the runner (client's code and reason;
    /// `None` → 1000), the request is removed ([`CloseReason::ClientClosed`] or
    /// [`CloseReason::ClientGone`]). Hibernating: the close is remembered and a wake requested;
    /// [`wake`](Self::wake) then replays the pending messages, publishes the close, and removes the
    /// request (a second close while hibernating changes nothing). If no wake comes within
    /// [`GatewayConfig::wake_timeout`] the request is collected without a close frame to the
    /// client, which is already gone.
    ///
    /// Upstream (PROTOCOL.md F6) deletes the hibernating record *before* waking, so the woken actor
    /// treats the socket as stale and never sees the client's close code. hws deletes it after the
    /// close is published: the actor restores the socket, receives every pending message and the
    /// client's real close.
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
        let slot = self.slot_of(request_id).ok_or(UnknownRequest)?;
        let req = self.requests.get_mut(slot).ok_or(UnknownRequest)?;
        let reason = frame.map_or(CloseReason::ClientGone, CloseReason::ClientClosed);
        if req.phase != Phase::Hibernating {
            self.terminate(slot, reason);
            return Ok(());
        }
        match req.phase_state.as_deref_mut() {
            Some(PhaseState::WakeRequested { client_close, .. }) => {
                // A second close of the same client changes nothing.
                client_close.get_or_insert(reason);
            }
            _ => self.request_wake(slot, now, Some(reason)),
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
        let slot = self.slot_of(request_id).ok_or(UnknownRequest)?;
        let req = self.requests.get(slot).ok_or(UnknownRequest)?;
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
    /// If the client closed while hibernating, its close is published after the replay and the
    /// request is removed.
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
        let slot = self.slot_of(request_id).ok_or(WakeError::UnknownRequest)?;
        let Self {
            requests,
            actions,
            stats,
            config,
            ..
        } = self;
        let req = requests.get_mut(slot).ok_or(WakeError::UnknownRequest)?;
        if req.phase != Phase::Hibernating {
            return Err(WakeError::NotHibernating);
        }
        let client_close = match req.phase_state.take().map(|b| *b) {
            Some(PhaseState::WakeRequested { client_close, .. }) => client_close,
            _ => None,
        };
        req.route = route;
        req.phase = Phase::Active;
        req.phase_state = Some(Box::new(PhaseState::Active(Active {
            next_ping: now + config.ping_interval,
            last_pong: now,
            last_retransmit: Timestamp::ZERO,
        })));
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
            Some(reason) => self.terminate(slot, reason),
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
        let slot = self.slot_of(request_id).ok_or(UnknownRequest)?;
        let req = self.requests.get_mut(slot).ok_or(UnknownRequest)?;
        if req.hibernatable {
            // Only ever moves later: the timer entry already in the queue is early enough.
            req.record_expiry = now + self.config.hibernation_timeout;
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
        self.slot_of(request_id).ok_or(UnknownRequest)?;
        self.stats.record_upserts_failed += 1;
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // Runner input
    // ---------------------------------------------------------------------------------------

    /// A frame from the runner side: a versioned `ToGateway` message (pong or tunnel message)
    /// received from `route`.
    ///
    /// # Errors
    /// [`ReceiveError::Malformed`] if it does not decode, and everything
    /// [`handle_runner_message`](Self::handle_runner_message) and
    /// [`handle_pong`](Self::handle_pong) return. Every error means the input was dropped.
    pub fn handle_runner_frame(
        &mut self,
        now: Timestamp,
        route: RouteId,
        bytes: &[u8],
    ) -> Result<(), ReceiveError> {
        match wire::decode_versioned::<ToGateway>(bytes, &self.config.decode_limits) {
            Ok((_, ToGateway::Pong(pong))) => self.handle_pong(now, route, pong),
            Ok((_, ToGateway::TunnelMessage(msg))) => self.handle_runner_message(now, route, msg),
            Err(e) => {
                self.advance(now);
                self.stats.dropped_malformed += 1;
                Err(ReceiveError::Malformed(e))
            }
        }
    }

    /// A tunnel message from the runner behind `route`.
    ///
    /// It is accepted only if it names this gateway, a live request, and comes from the
    /// request's current route; then it is handled by phase (see the module docs). Acks apply in
    /// every phase, hibernating included; stale or invalid acks are ignored and counted.
    ///
    /// One exception to the route: while the request hibernates it has no live runner, and a
    /// runner close (not a hand-back), an ack or a WebSocket message is accepted from any route.
    /// The actor's next runner answers the restore before the request is woken and routed to it:
    /// with an ack of the persisted index (which releases what is already durable, so the wake
    /// replays less) or with a close such as 1000 `ws.meta_not_found_during_restore` (dropping it
    /// would keep a request whose socket no runner holds: upstream weak spot 12); a restored actor
    /// may also write to the client at once. Acks stay validated: one for a message that was
    /// never published is still refused.
    ///
    /// # Errors
    /// [`ReceiveError::WrongGateway`], [`ReceiveError::UnknownRequest`],
    /// [`ReceiveError::WrongRoute`], [`ReceiveError::InvalidForPhase`],
    /// [`ReceiveError::Unsupported`] (HTTP kinds). Every error means the message was dropped.
    pub fn handle_runner_message(
        &mut self,
        now: Timestamp,
        route: RouteId,
        msg: ToServerTunnelMessage,
    ) -> Result<(), ReceiveError> {
        let now = self.advance(now);
        let ToServerTunnelMessage { message_id, kind } = msg;
        if message_id.gateway_id != self.id {
            self.stats.dropped_wrong_gateway += 1;
            return Err(ReceiveError::WrongGateway);
        }
        // While a request hibernates it has no live runner: the actor's next runner answers its
        // restore (ack of the persisted index, or a close) and may already talk to the client
        // before the request is woken and routed to it.
        let any_route = match &kind {
            ToServerTunnelMessageKind::WebSocketClose(c) => !c.hibernate,
            ToServerTunnelMessageKind::WebSocketMessageAck(_)
            | ToServerTunnelMessageKind::WebSocketMessage(_) => true,
            _ => false,
        };
        let slot = self.checked_slot(message_id.request_id, route, any_route)?;
        let Some(req) = self.requests.get(slot) else {
            return Err(ReceiveError::UnknownRequest);
        };
        let (phase, hibernatable) = (req.phase, req.hibernatable);
        let request_id = message_id.request_id;
        match (phase, kind) {
            (
                _,
                kind @ (ToServerTunnelMessageKind::ResponseStart(_)
                | ToServerTunnelMessageKind::ResponseChunk(_)
                | ToServerTunnelMessageKind::ResponseAbort),
            ) => {
                self.stats.dropped_unsupported += 1;
                Err(ReceiveError::Unsupported {
                    kind: kind_name(&kind),
                })
            }
            (Phase::AwaitingOpen, ToServerTunnelMessageKind::WebSocketOpen(open)) => {
                self.accept(slot, now, open.can_hibernate);
                Ok(())
            }
            (Phase::AwaitingOpen, ToServerTunnelMessageKind::WebSocketClose(close)) => {
                let frame = CloseFrame {
                    code: close.code,
                    reason: close.reason,
                };
                self.terminate(slot, CloseReason::ClosedBeforeOpen(frame));
                Ok(())
            }
            (
                Phase::Active | Phase::Hibernating,
                ToServerTunnelMessageKind::WebSocketMessage(m),
            ) => {
                self.stats.messages_to_client += 1;
                self.actions.push_back(Action::SendToClient {
                    request_id,
                    data: m.data,
                    binary: m.binary,
                });
                Ok(())
            }
            (
                Phase::Active | Phase::Hibernating,
                ToServerTunnelMessageKind::WebSocketMessageAck(ack),
            ) => {
                self.ack(slot, ack.index);
                Ok(())
            }
            (Phase::Active, ToServerTunnelMessageKind::WebSocketClose(close))
                if close.hibernate && hibernatable =>
            {
                self.hibernate(slot, now);
                Ok(())
            }
            (Phase::Hibernating, ToServerTunnelMessageKind::WebSocketClose(close))
                if close.hibernate =>
            {
                // Already handed back: stay hibernating.
                Ok(())
            }
            (
                Phase::Active | Phase::Hibernating,
                ToServerTunnelMessageKind::WebSocketClose(close),
            ) => {
                let frame = CloseFrame {
                    code: close.code,
                    reason: close.reason,
                };
                self.terminate(slot, CloseReason::RunnerClosed(frame));
                Ok(())
            }
            (phase, kind) => {
                self.stats.dropped_invalid_for_phase += 1;
                Err(ReceiveError::InvalidForPhase {
                    phase,
                    kind: kind_name(&kind),
                })
            }
        }
    }

    /// A pong from the runner side behind `route`: the tunnel of the request is alive.
    ///
    /// # Errors
    /// [`ReceiveError::UnknownRequest`], [`ReceiveError::WrongRoute`]. Every error means the pong
    /// was dropped.
    pub fn handle_pong(
        &mut self,
        now: Timestamp,
        route: RouteId,
        pong: ToGatewayPong,
    ) -> Result<(), ReceiveError> {
        let now = self.advance(now);
        let slot = self.checked_slot(pong.request_id, route, false)?;
        self.stats.pongs_received += 1;
        if let Some(active) = self.requests.get_mut(slot).and_then(Request::active_mut) {
            // Only ever moves later: the queued timer entry stays early enough.
            active.last_pong = now;
        }
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

    /// Number of live requests.
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// Whether no request is live.
    pub fn is_empty(&self) -> bool {
        self.requests.len() == 0
    }

    /// Checks the engine's internal invariants; for tests and the simulator.
    ///
    /// Index ↔ slab consistency; pending counts and bytes per request within the limits, equal to
    /// the frames held and summing to the gateway totals; pending frames decode to this request's
    /// `WebSocketMessage`s with contiguous indices ending at the last assigned index; every
    /// request with an armed deadline has a live timer entry no later than that deadline.
    ///
    /// # Errors
    /// A description of the first violated invariant.
    #[cfg(any(test, feature = "sim"))]
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        use alloc::collections::BTreeSet;
        use alloc::format;

        let cfg = &self.config;
        if self.index.len() != self.requests.len() {
            return Err(format!(
                "index has {} ids, slab {} requests",
                self.index.len(),
                self.requests.len()
            ));
        }
        for (id, &slot) in &self.index {
            if self.requests.get(slot).map(|r| r.id) != Some(*id) {
                return Err(format!(
                    "index maps {id} to slot {slot} holding another request"
                ));
            }
        }
        let entries: BTreeSet<TimerEntry> = self.timers.iter().collect();
        let (mut bytes, mut messages, mut hibernating) = (0u64, 0u64, 0u64);
        for (slot, req) in self.requests.iter() {
            let id = req.id;
            if req.phase == Phase::Hibernating {
                hibernating += 1;
            }
            if !req.hibernatable && req.buffer.is_some() {
                return Err(format!("{id}: buffer on a non-hibernatable request"));
            }
            let (len, req_bytes) = (req.pending_len(), req.pending_bytes());
            if len > usize::from(cfg.max_pending_messages) || req_bytes > cfg.max_pending_bytes {
                return Err(format!(
                    "{id}: {len} pending / {req_bytes} bytes over the limits"
                ));
            }
            bytes += req_bytes;
            messages += len as u64;
            self.check_pending(req)?;
            if req.phase == Phase::Active && req.sent_through() != req.next_index.prev() {
                return Err(format!("{id}: active but not everything was sent"));
            }
            let deadline = next_deadline(req, cfg);
            if req.timer_at > deadline {
                return Err(format!(
                    "{id}: timer at {:?} is later than deadline {deadline:?}",
                    req.timer_at
                ));
            }
            if req.timer_at != Timestamp::MAX {
                let entry = TimerEntry {
                    deadline: req.timer_at,
                    slot,
                };
                if !entries.contains(&entry) {
                    return Err(format!("{id}: no timer entry for {:?}", req.timer_at));
                }
            } else if deadline != Timestamp::MAX {
                return Err(format!("{id}: deadline {deadline:?} armed without a timer"));
            }
        }
        if bytes != self.pending_bytes || messages != self.pending_messages {
            return Err(format!(
                "totals {}/{} but requests sum to {bytes}/{messages}",
                self.pending_bytes, self.pending_messages
            ));
        }
        if self.pending_bytes > cfg.max_gateway_pending_bytes {
            return Err(format!(
                "gateway pending bytes {} over the limit",
                self.pending_bytes
            ));
        }
        if hibernating != self.hibernating {
            return Err(format!(
                "{hibernating} hibernating, gauge says {}",
                self.hibernating
            ));
        }
        Ok(())
    }

    /// The pending-buffer part of [`check_invariants`](Self::check_invariants).
    #[cfg(any(test, feature = "sim"))]
    fn check_pending(&self, req: &Request) -> Result<(), String> {
        use alloc::format;

        let (id, cfg, req_bytes) = (req.id, &self.config, req.pending_bytes());
        let Some(pending) = req.pending() else {
            return Ok(());
        };
        // The frames are this gateway's own output: `cfg.decode_limits` bounds runner input and
        // may well be smaller than a message the gateway legitimately buffers.
        let limits = wire::DecodeLimits {
            max_frame_size: usize::MAX,
            ..cfg.decode_limits.clone()
        };
        let mut sum = 0u64;
        let mut expected = pending.first().unwrap_or(req.next_index);
        for entry in pending.iter() {
            sum += entry.frame.byte_len();
            let decoded = wire::decode_versioned::<ToRunner>(&entry.frame, &limits);
            let ok = matches!(
                decoded,
                Ok((_, ToRunner::TunnelMessage(ToClientTunnelMessage {
                    message_id,
                    kind: ToClientTunnelMessageKind::WebSocketMessage(_),
                }))) if message_id == self.message_id(id, expected)
            );
            if !ok {
                return Err(format!("{id}: pending frame is not message {expected}"));
            }
            expected = expected.next();
        }
        if sum != req_bytes {
            return Err(format!(
                "{id}: pending bytes {req_bytes} but frames sum to {sum}"
            ));
        }
        if !pending.is_empty() && expected != req.next_index {
            return Err(format!(
                "{id}: newest pending is not the last assigned index"
            ));
        }
        Ok(())
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

    /// The slot of a live request whose current route is `route` (any route while it
    /// hibernates, if `any_while_hibernating`); counts the drop otherwise.
    fn checked_slot(
        &mut self,
        request_id: RequestId,
        route: RouteId,
        any_while_hibernating: bool,
    ) -> Result<u32, ReceiveError> {
        let Some(slot) = self.slot_of(request_id) else {
            self.stats.dropped_unknown_request += 1;
            return Err(ReceiveError::UnknownRequest);
        };
        match self.requests.get(slot) {
            Some(req) if req.route == route => Ok(slot),
            Some(req) if any_while_hibernating && req.phase == Phase::Hibernating => Ok(slot),
            Some(_) => {
                self.stats.dropped_wrong_route += 1;
                Err(ReceiveError::WrongRoute)
            }
            None => {
                self.stats.dropped_unknown_request += 1;
                Err(ReceiveError::UnknownRequest)
            }
        }
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

    /// Pushes a timer entry if the request's earliest deadline is earlier than its live entry.
    fn schedule(&mut self, slot: u32) {
        let Some(req) = self.requests.get_mut(slot) else {
            return;
        };
        let deadline = next_deadline(req, &self.config);
        if deadline < req.timer_at {
            req.timer_at = deadline;
            self.timers.push(TimerEntry { deadline, slot });
            let requests = &self.requests;
            self.timers.compact(requests.len(), |e| {
                requests
                    .get(e.slot)
                    .is_some_and(|r| r.timer_at == e.deadline)
            });
        }
    }

    /// Handles every deadline of the request in `slot` that is due at `now`.
    fn fire(&mut self, slot: u32, now: Timestamp) {
        if let Some(reason) = self.fire_terminal(slot, now) {
            self.terminate(slot, reason);
        } else {
            self.fire_periodic(slot, now);
        }
    }

    /// The deadline that ends the request, if one is due, checked in a fixed order. A ping
    /// timeout of a hibernatable request hibernates it instead (and returns `None`).
    fn fire_terminal(&mut self, slot: u32, now: Timestamp) -> Option<CloseReason> {
        let req = self.requests.get(slot)?;
        let cfg = &self.config;
        // Terminal deadlines first, in a fixed order.
        let oldest = req.pending().and_then(pending::PendingBuffer::first);
        let oldest_sent_at = req
            .pending()
            .and_then(pending::PendingBuffer::oldest_sent_at);
        match req.phase_state.as_deref() {
            Some(PhaseState::AwaitingOpen { deadline }) if *deadline <= now => {
                Some(CloseReason::OpenTimeout)
            }
            _ if req.hibernatable && req.record_expiry <= now => {
                Some(CloseReason::Collected(GcReason::HibernationTimeout))
            }
            Some(PhaseState::Active(_))
                if oldest_sent_at.is_some_and(|t| t + cfg.ack_timeout <= now) =>
            {
                Some(CloseReason::Collected(GcReason::AckTimeout {
                    first: oldest.unwrap_or_else(|| req.sent_through()),
                    last: req.sent_through(),
                }))
            }
            Some(PhaseState::WakeRequested { deadline, .. }) if *deadline <= now => {
                Some(CloseReason::Collected(GcReason::WakeTimeout))
            }
            Some(PhaseState::Active(a)) if a.last_pong + cfg.ping_timeout <= now => {
                if req.hibernatable && cfg.hibernate_on_ping_timeout {
                    // DESIGN.md §3.12: tunnel loss hibernates a hibernatable socket.
                    self.stats.ping_timeout_hibernations += 1;
                    self.hibernate(slot, now);
                    None
                } else {
                    Some(CloseReason::PingTimeout)
                }
            }
            _ => None,
        }
    }

    /// Keepalive, ping and retransmit ticks that are due.
    fn fire_periodic(&mut self, slot: u32, now: Timestamp) {
        let Self {
            requests,
            actions,
            stats,
            config,
            id: gateway_id,
            ..
        } = self;
        let Some(req) = requests.get_mut(slot) else {
            return;
        };
        if req.hibernatable && req.keepalive_at <= now {
            req.keepalive_at = next_tick(req.keepalive_at, config.keepalive_interval, now);
            stats.record_upserts += 1;
            actions.push_back(Action::UpsertHibernatingRecord {
                request_id: req.id,
                actor_id: req.actor_id.to_string(),
            });
        }
        let (request_id, route) = (req.id, req.route);
        let oldest_sent_at = req
            .pending()
            .and_then(pending::PendingBuffer::oldest_sent_at);
        let Some(PhaseState::Active(active)) = req.phase_state.as_deref_mut() else {
            return;
        };
        if active.next_ping <= now {
            active.next_ping = next_tick(active.next_ping, config.ping_interval, now);
            stats.pings_sent += 1;
            let ping = ToRunner::Ping(ToRunnerPing {
                gateway_id: *gateway_id,
                request_id,
                ts: i64::try_from(now.as_millis()).unwrap_or(i64::MAX),
            });
            actions.push_back(Action::Publish {
                route,
                request_id,
                frame: Frame::new(wire::encode_versioned(config.protocol_version, &ping)),
            });
        }
        if let (Some(rt), Some(sent_at)) = (config.retransmit_timeout, oldest_sent_at)
            && sent_at.max(active.last_retransmit) + rt <= now
        {
            active.last_retransmit = now;
            let mut resent = 0u64;
            for entry in req
                .pending()
                .into_iter()
                .flat_map(pending::PendingBuffer::iter)
            {
                actions.push_back(Action::Publish {
                    route,
                    request_id,
                    frame: entry.frame.clone(),
                });
                resent += 1;
            }
            req.stats.messages_resent += resent;
            stats.messages_retransmitted += resent;
        }
    }

    /// The runner accepted the WebSocket.
    fn accept(&mut self, slot: u32, now: Timestamp, hibernatable: bool) {
        let cfg = &self.config;
        let Some(req) = self.requests.get_mut(slot) else {
            return;
        };
        req.phase = Phase::Active;
        req.hibernatable = hibernatable;
        set_phase_state(
            req,
            PhaseState::Active(Active {
                next_ping: now + cfg.ping_interval,
                last_pong: now,
                last_retransmit: Timestamp::ZERO,
            }),
        );
        self.stats.accepted += 1;
        self.actions.push_back(Action::Opened {
            request_id: req.id,
            hibernatable,
        });
        if hibernatable {
            req.keepalive_at = now + cfg.keepalive_interval;
            req.record_expiry = now + cfg.hibernation_timeout;
            self.stats.record_upserts += 1;
            self.actions.push_back(Action::UpsertHibernatingRecord {
                request_id: req.id,
                actor_id: req.actor_id.to_string(),
            });
        }
        self.schedule(slot);
    }

    /// Enters hibernation (the request is active and hibernatable).
    fn hibernate(&mut self, slot: u32, now: Timestamp) {
        let Some(req) = self.requests.get_mut(slot) else {
            return;
        };
        req.phase = Phase::Hibernating;
        req.phase_state = None;
        let has_pending = req.pending_len() > 0;
        // An idle hibernating request keeps no buffer.
        if req
            .buffer
            .as_ref()
            .is_some_and(|b| b.blocked.is_none() && !b.in_blocked_queue && b.pending.is_empty())
        {
            req.buffer = None;
        }
        self.hibernating += 1;
        self.stats.hibernations += 1;
        self.actions
            .push_back(Action::Hibernated { request_id: req.id });
        if has_pending {
            // PROTOCOL.md §2.9 step 1: pending data needs the actor now.
            self.request_wake(slot, now, None);
        }
    }

    /// Emits [`Action::RequestWake`] and arms the wake timeout (the request is hibernating).
    fn request_wake(&mut self, slot: u32, now: Timestamp, client_close: Option<CloseReason>) {
        let Some(req) = self.requests.get_mut(slot) else {
            return;
        };
        set_phase_state(
            req,
            PhaseState::WakeRequested {
                deadline: now + self.config.wake_timeout,
                client_close,
            },
        );
        self.stats.wake_requests += 1;
        self.actions.push_back(Action::RequestWake {
            request_id: req.id,
            actor_id: req.actor_id.to_string(),
        });
        self.schedule(slot);
    }

    /// A message would exceed `limit`: apply the overflow policy. Returns the error for the caller.
    fn overflow(&mut self, slot: u32, limit: Limit, size: u64) -> SendError {
        match self.config.overflow_policy {
            OverflowPolicy::Close => {
                self.terminate(slot, CloseReason::PendingLimit(limit));
                SendError::LimitExceeded { limit }
            }
            OverflowPolicy::Backpressure => {
                self.stats.backpressured += 1;
                if let Some((req, generation)) = self.requests.get_mut_with_generation(slot) {
                    let buffer = req.buffer_mut();
                    buffer.blocked = Some(size);
                    if limit == Limit::GatewayBytes && !buffer.in_blocked_queue {
                        buffer.in_blocked_queue = true;
                        self.blocked.push_back((slot, generation));
                    }
                }
                SendError::Backpressure { limit }
            }
        }
    }

    /// Applies a cumulative ack (DESIGN.md §3.6).
    fn ack(&mut self, slot: u32, index: MessageIndex) {
        let Some(req) = self.requests.get_mut(slot) else {
            return;
        };
        if !req.hibernatable {
            self.stats.acks_not_hibernatable += 1;
            return;
        }
        let oldest = req.pending().and_then(pending::PendingBuffer::first);
        match classify_ack(oldest, req.sent_through(), index) {
            AckVerdict::Release(n) => {
                let released = req.buffer_mut().pending.release(n);
                req.stats.messages_acked += u64::from(n);
                self.stats.acks_applied += 1;
                self.stats.messages_acked += u64::from(n);
                self.pending_messages = self.pending_messages.saturating_sub(u64::from(n));
                self.pending_bytes = self.pending_bytes.saturating_sub(released);
                self.unblock(slot);
                self.drain_blocked();
            }
            AckVerdict::Stale => {
                req.stats.acks_ignored += 1;
                self.stats.acks_stale += 1;
            }
            AckVerdict::Invalid => {
                req.stats.acks_ignored += 1;
                self.stats.acks_invalid += 1;
            }
        }
    }

    /// After the request in `slot` released messages: if it was refused with backpressure and its
    /// own limits now have room, it becomes writable (or waits for gateway room).
    fn unblock(&mut self, slot: u32) {
        let Some((req, generation)) = self.requests.get_mut_with_generation(slot) else {
            return;
        };
        let Some(size) = req.buffer.as_ref().and_then(|b| b.blocked) else {
            return;
        };
        if !fits_request(req, size, &self.config) {
            return;
        }
        let request_id = req.id;
        let buffer = req.buffer_mut();
        if self.pending_bytes.saturating_add(size) <= self.config.max_gateway_pending_bytes {
            buffer.blocked = None;
            self.stats.client_writable += 1;
            self.actions
                .push_back(Action::ClientWritable { request_id });
        } else if !buffer.in_blocked_queue {
            buffer.in_blocked_queue = true;
            self.blocked.push_back((slot, generation));
        }
    }

    /// Gateway-wide room was freed: wake the requests waiting for it, first come first served,
    /// stopping at the first that still does not fit. Each queued entry is popped once, so the
    /// work is amortised O(1) per refusal.
    fn drain_blocked(&mut self) {
        while let Some(&(slot, generation)) = self.blocked.front() {
            let Some(req) = self.requests.get_live_mut(slot, generation) else {
                self.blocked.pop_front();
                continue;
            };
            let blocked = req.buffer.as_ref().and_then(|b| b.blocked);
            let fits = blocked.filter(|&s| fits_request(req, s, &self.config));
            let Some(buffer) = req.buffer.as_deref_mut() else {
                self.blocked.pop_front();
                continue;
            };
            let Some(size) = fits else {
                // Off the queue: a request blocked by its own limits waits for its own acks
                // (see `unblock`), one no longer blocked has nothing to wait for.
                buffer.in_blocked_queue = false;
                self.blocked.pop_front();
                continue;
            };
            if self.pending_bytes.saturating_add(size) > self.config.max_gateway_pending_bytes {
                break;
            }
            buffer.in_blocked_queue = false;
            buffer.blocked = None;
            self.blocked.pop_front();
            self.stats.client_writable += 1;
            self.actions
                .push_back(Action::ClientWritable { request_id: req.id });
        }
    }

    /// Closes and removes the request in `slot`: publishes the runner close (unless
    /// hibernating), closes the client (unless it closed first), releases its pending bytes,
    /// deletes its record, and emits [`Action::Closed`].
    fn terminate(&mut self, slot: u32, reason: CloseReason) {
        let Some(req) = self.requests.remove(slot) else {
            return;
        };
        self.index.remove(&req.id);
        let request_id = req.id;
        if req.phase != Phase::Hibernating
            && let Some(frame) = reason.runner_frame()
        {
            let kind = ToClientTunnelMessageKind::WebSocketClose(ToClientWebSocketClose {
                code: frame.code,
                reason: frame.reason,
            });
            let frame = self.encode_tunnel(request_id, req.next_index, kind);
            self.actions.push_back(Action::Publish {
                route: req.route,
                request_id,
                frame,
            });
        }
        let client_gone = matches!(
            req.phase_state.as_deref(),
            Some(PhaseState::WakeRequested {
                client_close: Some(_),
                ..
            })
        );
        if !client_gone && let Some(frame) = reason.client_frame() {
            self.actions
                .push_back(Action::CloseClient { request_id, frame });
        }
        if req.phase == Phase::Hibernating {
            self.hibernating -= 1;
        }
        let released = req.pending_bytes();
        self.pending_bytes = self.pending_bytes.saturating_sub(released);
        self.pending_messages = self
            .pending_messages
            .saturating_sub(req.pending_len() as u64);
        if req.hibernatable {
            self.stats.record_deletes += 1;
            self.actions.push_back(Action::DeleteHibernatingRecord {
                request_id,
                actor_id: req.actor_id.into_string(),
            });
        }
        let counter = match &reason {
            CloseReason::ClientClosed(_) | CloseReason::ClientGone => {
                &mut self.stats.closed_by_client
            }
            CloseReason::RunnerClosed(_) | CloseReason::ClosedBeforeOpen(_) => {
                &mut self.stats.closed_by_runner
            }
            CloseReason::OpenTimeout => &mut self.stats.open_timeouts,
            CloseReason::ActorStopped | CloseReason::ActorStoppedBeforeOpen => {
                &mut self.stats.closed_actor_stopped
            }
            CloseReason::PendingLimit(_) => &mut self.stats.closed_pending_limit,
            CloseReason::PingTimeout => &mut self.stats.ping_timeouts,
            CloseReason::Collected(GcReason::AckTimeout { .. }) => {
                &mut self.stats.collected_ack_timeout
            }
            CloseReason::Collected(GcReason::HibernationTimeout) => {
                &mut self.stats.collected_hibernation_timeout
            }
            CloseReason::Collected(GcReason::WakeTimeout) => &mut self.stats.collected_wake_timeout,
        };
        *counter += 1;
        self.stats.closed += 1;
        self.actions
            .push_back(Action::Closed { request_id, reason });
        if released > 0 {
            self.drain_blocked();
        }
    }
}

/// Replaces the request's phase state, reusing its allocation when there is one.
fn set_phase_state(req: &mut Request, state: PhaseState) {
    match req.phase_state.as_deref_mut() {
        Some(slot) => *slot = state,
        None => req.phase_state = Some(Box::new(state)),
    }
}

/// Whether a frame of `size` bytes fits the request's own limits.
fn fits_request(req: &Request, size: u64, cfg: &GatewayConfig) -> bool {
    req.pending_len() < usize::from(cfg.max_pending_messages)
        && req.pending_bytes().saturating_add(size) <= cfg.max_pending_bytes
}

/// The next tick of a periodic timer that was due at `due`: one interval later, or one interval
/// after `now` if ticks were missed (missed ticks are skipped, not bunched).
fn next_tick(due: Timestamp, interval: Duration, now: Timestamp) -> Timestamp {
    let next = due + interval;
    if next <= now { now + interval } else { next }
}

/// The earliest deadline of a request; `Timestamp::MAX` when none is armed.
fn next_deadline(req: &Request, cfg: &GatewayConfig) -> Timestamp {
    let mut d = Timestamp::MAX;
    if req.hibernatable {
        d = d.min(req.keepalive_at).min(req.record_expiry);
    }
    match req.phase_state.as_deref() {
        Some(
            PhaseState::AwaitingOpen { deadline } | PhaseState::WakeRequested { deadline, .. },
        ) => {
            d = d.min(*deadline);
        }
        Some(PhaseState::Active(a)) => {
            d = d.min(a.next_ping).min(a.last_pong + cfg.ping_timeout);
            if let Some(sent_at) = req
                .pending()
                .and_then(pending::PendingBuffer::oldest_sent_at)
            {
                d = d.min(sent_at + cfg.ack_timeout);
                if let Some(rt) = cfg.retransmit_timeout {
                    d = d.min(sent_at.max(a.last_retransmit) + rt);
                }
            }
        }
        None => {}
    }
    d
}

/// The kind's name, for errors.
fn kind_name(kind: &ToServerTunnelMessageKind) -> &'static str {
    match kind {
        ToServerTunnelMessageKind::ResponseStart(_) => "ResponseStart",
        ToServerTunnelMessageKind::ResponseChunk(_) => "ResponseChunk",
        ToServerTunnelMessageKind::ResponseAbort => "ResponseAbort",
        ToServerTunnelMessageKind::WebSocketOpen(_) => "WebSocketOpen",
        ToServerTunnelMessageKind::WebSocketMessage(_) => "WebSocketMessage",
        ToServerTunnelMessageKind::WebSocketMessageAck(_) => "WebSocketMessageAck",
        ToServerTunnelMessageKind::WebSocketClose(_) => "WebSocketClose",
    }
}
