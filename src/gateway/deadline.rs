//! Per-request deadlines: which one is next, scheduling it in the [`TimerQueue`](super::timer::TimerQueue),
//! and what happens when one is due (open, ack, ping, hibernation and wake timeouts; keepalive,
//! ping and retransmit ticks).

use alloc::string::ToString;
use core::time::Duration;

use crate::time::Timestamp;
use crate::wire::{self, ToRunner, ToRunnerPing};

use super::pending;
use super::request::{PhaseState, Request};
use super::timer::TimerEntry;
use super::{Action, CloseReason, Frame, Gateway, GatewayConfig, GcReason};

impl Gateway {
    /// Pushes a timer entry if the request's earliest deadline is earlier than its live entry.
    pub(super) fn schedule(&mut self, slot: u32) {
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
    pub(super) fn fire(&mut self, slot: u32, now: Timestamp) {
        if let Some(reason) = self.fire_terminal(slot, now) {
            self.terminate(slot, reason);
        } else {
            self.fire_periodic(slot, now);
        }
    }

    /// The deadline that ends the request, if one is due, checked in a fixed order. A ping
    /// timeout of a hibernatable request hibernates it instead (and returns `None`).
    pub(super) fn fire_terminal(&mut self, slot: u32, now: Timestamp) -> Option<CloseReason> {
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
                let first = oldest.unwrap_or_else(|| req.sent_through());
                let last = req.sent_through();
                crate::trace::debug!(
                    request_id = ?req.id,
                    ?first,
                    ?last,
                    "hws: gateway ack timeout"
                );
                Some(CloseReason::Collected(GcReason::AckTimeout { first, last }))
            }
            _ if req.closing().is_some_and(|c| c.deadline <= now) => {
                Some(CloseReason::Collected(GcReason::CloseTimeout))
            }
            Some(PhaseState::WakeRequested { deadline, .. }) if *deadline <= now => {
                Some(CloseReason::Collected(GcReason::WakeTimeout))
            }
            Some(PhaseState::Active(a)) if a.last_pong + cfg.ping_timeout <= now => {
                if req.hibernatable && cfg.hibernate_on_ping_timeout {
                    // Tunnel loss hibernates a hibernatable socket
                    // (`docs/design.md#tunnel-loss-hibernates`).
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
    pub(super) fn fire_periodic(&mut self, slot: u32, now: Timestamp) {
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
}

/// The next tick of a periodic timer that was due at `due`: one interval later, or one interval
/// after `now` if ticks were missed (missed ticks are skipped, not bunched).
pub(super) fn next_tick(due: Timestamp, interval: Duration, now: Timestamp) -> Timestamp {
    let next = due + interval;
    if next <= now { now + interval } else { next }
}

/// The earliest deadline of a request; `Timestamp::MAX` when none is armed.
pub(super) fn next_deadline(req: &Request, cfg: &GatewayConfig) -> Timestamp {
    let mut d = Timestamp::MAX;
    if req.hibernatable {
        d = d.min(req.keepalive_at).min(req.record_expiry);
    }
    if let Some(closing) = req.closing() {
        d = d.min(closing.deadline);
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
        Some(PhaseState::Restoring { .. }) | None => {}
    }
    d
}
