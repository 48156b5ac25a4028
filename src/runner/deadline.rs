//! Per-socket deadlines (persist debounce, persist retry, gap): arming them in the
//! [`TimerQueue`](super::timer::TimerQueue), firing them, and dropping stale heap entries.

use crate::time::Timestamp;

use super::Runner;
use super::socket::Phase;
use super::table::{Slot, slot_mut};
use super::timer::{TimerEntry, TimerKind};

/// Heap entries allowed beyond three per socket before stale ones are compacted away.
pub(super) const TIMER_SLACK: usize = 64;

impl Runner {
    pub(super) fn fire(&mut self, now: Timestamp, entry: TimerEntry) {
        let slot = entry.slot;
        let Some(s) = slot_mut(&mut self.slots, slot) else {
            return;
        };
        match entry.kind {
            TimerKind::Persist => {
                s.persist.deadline = None;
                self.schedule_persist(now, slot);
            }
            TimerKind::Retry => {
                s.persist.retry_at = None;
                if s.phase == Phase::Open {
                    self.emit_persist(slot);
                }
            }
            TimerKind::Gap => {
                s.gap_deadline = None;
                self.stats.gap_timeouts += 1;
                self.close_index_skip(slot);
            }
        }
    }

    pub(super) fn arm(&mut self, slot: usize, at: Timestamp, kind: TimerKind) {
        if let Some(entry) = self.slots.get(slot) {
            self.timers.push(TimerEntry {
                at,
                slot,
                generation: entry.generation,
                kind,
            });
        }
    }

    /// Ends every public mutating call: drops stale timer entries from the top of the heap so
    /// [`poll_timeout`](Self::poll_timeout) is exact, and compacts the heap when stale entries
    /// pile up.
    pub(super) fn finish(&mut self) {
        while let Some(top) = self.timers.peek() {
            if timer_is_live(&self.slots, &top) {
                break;
            }
            let _ = self.timers.pop();
        }
        let limit = self
            .live_sockets
            .saturating_mul(6)
            .saturating_add(TIMER_SLACK);
        if self.timers.len() > limit {
            let slots = &self.slots;
            self.timers.retain(|e| timer_is_live(slots, e));
        }
    }
}

/// Whether a heap entry still names a live deadline.
pub(super) fn timer_is_live(slots: &[Slot], e: &TimerEntry) -> bool {
    let Some(slot) = slots.get(e.slot) else {
        return false;
    };
    if slot.generation != e.generation {
        return false;
    }
    let Some(s) = slot.socket.as_ref() else {
        return false;
    };
    let armed = match e.kind {
        TimerKind::Persist => s.persist.deadline,
        TimerKind::Retry => s.persist.retry_at,
        TimerKind::Gap => s.gap_deadline,
    };
    armed == Some(e.at)
}
