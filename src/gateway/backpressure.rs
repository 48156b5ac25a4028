//! Backpressure: what a message over a limit does ([`OverflowPolicy`]), and which refused
//! requests become writable again ([`Action::ClientWritable`]) once acks free room.

use super::request::Request;
use super::{Action, CloseReason, Gateway, GatewayConfig, Limit, OverflowPolicy, SendError};

impl Gateway {
    /// A message would exceed `limit`: apply the overflow policy. Returns the error for the caller.
    pub(super) fn overflow(&mut self, slot: u32, limit: Limit, size: u64) -> SendError {
        let request_id = self.requests.get(slot).map(|r| r.id).unwrap_or_default();
        match self.config.overflow_policy {
            OverflowPolicy::Close => {
                self.terminate(slot, CloseReason::PendingLimit(limit));
                SendError::LimitExceeded { request_id, limit }
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
                SendError::Backpressure { request_id, limit }
            }
        }
    }

    /// After the request in `slot` released messages: if it was refused with backpressure and its
    /// own limits now have room, it becomes writable (or waits for gateway room).
    pub(super) fn unblock(&mut self, slot: u32) {
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
    pub(super) fn drain_blocked(&mut self) {
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
}

/// Whether a frame of `size` bytes fits the request's own limits.
pub(super) fn fits_request(req: &Request, size: u64, cfg: &GatewayConfig) -> bool {
    req.pending_len() < usize::from(cfg.max_pending_messages)
        && req.pending_bytes().saturating_add(size) <= cfg.max_pending_bytes
}
