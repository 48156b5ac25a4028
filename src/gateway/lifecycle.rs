//! Phase transitions of a request: accepted, hibernating, waiting for a wake, terminated.

use alloc::boxed::Box;
use alloc::string::ToString;

use crate::time::Timestamp;
use crate::wire::{ToClientTunnelMessageKind, ToClientWebSocketClose};

use super::request::{Active, Closing, Phase, PhaseState, Request};
use super::{Action, CloseReason, Gateway, GcReason};

impl Gateway {
    /// The runner accepted the WebSocket.
    pub(super) fn accept(&mut self, slot: u32, now: Timestamp, hibernatable: bool) {
        let cfg = &self.config;
        let Some(req) = self.requests.get_mut(slot) else {
            return;
        };
        req.phase = Phase::Active;
        req.hibernatable = hibernatable;
        set_phase_state(req, PhaseState::Active(Active::new(now, cfg.ping_interval)));
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

    /// Enters hibernation (the request is active and hibernatable). A client close still
    /// waiting for acks stays held and asks for the wake that replays them.
    pub(super) fn hibernate(&mut self, slot: u32, now: Timestamp) {
        let Some(req) = self.requests.get_mut(slot) else {
            return;
        };
        req.phase = Phase::Hibernating;
        let closing = match req.phase_state.take().map(|b| *b) {
            Some(PhaseState::Active(Active { closing, .. })) => closing,
            _ => None,
        };
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
        if has_pending || closing.is_some() {
            // Pending data (or a held close) needs the actor now: ask for a wake at once.
            self.request_wake(slot, now, closing);
        }
    }

    /// Emits [`Action::RequestWake`] and arms the wake timeout (the request is hibernating).
    pub(super) fn request_wake(
        &mut self,
        slot: u32,
        now: Timestamp,
        client_close: Option<Closing>,
    ) {
        let Some(req) = self.requests.get_mut(slot) else {
            return;
        };
        let next_route = req.next_route();
        set_phase_state(
            req,
            PhaseState::WakeRequested {
                deadline: now + self.config.wake_timeout,
                client_close,
                next_route,
            },
        );
        self.stats.wake_requests += 1;
        self.actions.push_back(Action::RequestWake {
            request_id: req.id,
            actor_id: req.actor_id.to_string(),
        });
        self.schedule(slot);
    }

    /// Closes and removes the request in `slot`: publishes the runner close (unless
    /// hibernating: then to the actor's declared next runner, if any, which may hold the socket
    /// restored already), closes the client (unless it closed first), releases its pending
    /// bytes, deletes its record, and emits [`Action::Closed`].
    pub(super) fn terminate(&mut self, slot: u32, reason: CloseReason) {
        let Some(req) = self.requests.remove(slot) else {
            return;
        };
        self.index.remove(&req.id);
        let request_id = req.id;
        let runner_route = if req.phase == Phase::Hibernating {
            req.next_route()
        } else {
            Some(req.route)
        };
        if let Some(route) = runner_route
            && let Some(frame) = reason.runner_frame()
        {
            let kind = ToClientTunnelMessageKind::WebSocketClose(ToClientWebSocketClose {
                code: frame.code,
                reason: frame.reason,
            });
            let frame = self.encode_tunnel(request_id, req.next_index, kind);
            self.actions.push_back(Action::Publish {
                route,
                request_id,
                frame,
            });
        }
        let client_gone = req.client_closed();
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
            CloseReason::Collected(GcReason::CloseTimeout) => {
                &mut self.stats.collected_close_timeout
            }
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
pub(super) fn set_phase_state(req: &mut Request, state: PhaseState) {
    match req.phase_state.as_deref_mut() {
        Some(slot) => *slot = state,
        None => req.phase_state = Some(Box::new(state)),
    }
}
