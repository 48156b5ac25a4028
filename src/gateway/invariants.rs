//! The engine's internal invariants, checked by tests and the simulator.

use alloc::string::String;

use crate::time::Timestamp;
use crate::wire::{self, ToClientTunnelMessage, ToClientTunnelMessageKind, ToRunner};

use super::Gateway;
use super::deadline::next_deadline;
use super::request::{Phase, Request};
use super::timer::TimerEntry;

impl Gateway {
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
        for (id, slot) in crate::hash::sorted(&self.index) {
            if self.requests.get(slot).map(|r| r.id) != Some(id) {
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
            if req.phase == Phase::Active && req.client_closed() && len == 0 {
                return Err(format!("{id}: a client close is held with nothing pending"));
            }
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
}
