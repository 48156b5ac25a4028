//! The simulated network: per-runner links with FIFO clocks, and the seed's faults (drop,
//! stall, reorder, duplicate, partition) applied to every frame between gateway and runners.

use alloc::vec::Vec;
use core::time::Duration;

use crate::gateway::Frame;
use crate::runner::{self};
use crate::time::Timestamp;

use super::event::Ev;
use super::format::{
    close_to_runner, describe_to_gateway, describe_to_runner, request_of_down, request_of_up,
    route_id,
};
#[cfg(test)]
use super::world::Sabotage;
use super::world::World;

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Link {
    pub(super) down_until: Timestamp,
    pub(super) to_runner_at: Timestamp,
    pub(super) to_gateway_at: Timestamp,
}

impl World {
    /// Delivery time of a message on a link under the seed's faults; `None` if it is lost.
    pub(super) fn transit(&mut self, r: usize, to_runner: bool) -> (Vec<Timestamp>, bool) {
        let (lo, hi) = self.p.latency_us;
        let lat = self.rng.range(lo, hi);
        let now = self.now;
        let mut base = now + Duration::from_micros(lat);
        if !self.chaos() {
            let link = &mut self.runners[r].link;
            let clock = if to_runner {
                &mut link.to_runner_at
            } else {
                &mut link.to_gateway_at
            };
            base = base.max(*clock);
            *clock = base;
            return (alloc::vec![base], false);
        }
        if self.runners[r].link.down_until > now {
            self.fault("partition_drop");
            return (Vec::new(), false);
        }
        if self.rng.chance(self.p.drop_ppm) {
            self.fault("drop");
            return (Vec::new(), false);
        }
        let stall = if self.rng.chance(self.p.delay_ppm) {
            self.fault("stall");
            self.rng.range(1, self.p.delay_max_us)
        } else {
            0
        };
        let reorder = self.rng.chance(self.p.reorder_ppm);
        let dup = self.rng.chance(self.p.dup_ppm);
        let dup_extra = if dup {
            self.rng.range(0, self.p.reorder_max_us)
        } else {
            0
        };
        let extra = if reorder {
            self.rng.range(1, self.p.reorder_max_us)
        } else {
            0
        };
        let link = &mut self.runners[r].link;
        let clock = if to_runner {
            &mut link.to_runner_at
        } else {
            &mut link.to_gateway_at
        };
        // FIFO unless reordered: a stall holds everything behind it.
        let mut at = (base + Duration::from_micros(stall)).max(*clock);
        *clock = at;
        if reorder {
            at += Duration::from_micros(extra);
        }
        let mut out = alloc::vec![at];
        if reorder {
            self.fault("reorder");
        }
        if dup {
            self.fault("duplicate");
            out.push(at + Duration::from_micros(dup_extra));
        }
        (out, reorder || dup)
    }

    pub(super) fn send_to_runner(
        &mut self,
        r: usize,
        inc: u32,
        frame: &Frame,
        close_of: Option<usize>,
    ) {
        #[cfg(test)]
        if self.sabotage == Some(Sabotage::HiddenLoss) && self.seq.is_multiple_of(50) {
            self.seq += 1;
            return;
        }
        let (times, shuffled) = self.transit(r, true);
        if shuffled {
            self.disturb_req(request_of_down(frame), "frame reordered or duplicated");
        }
        if times.is_empty() {
            self.disturb_req(request_of_down(frame), "frame lost");
            if let Some(c) = close_of {
                self.conns[c].orphan_cause = Some("gateway close lost");
            }
        }
        for at in times {
            self.sched_at(
                at,
                Ev::ToRunner {
                    r,
                    inc,
                    frame: frame.clone(),
                },
            );
        }
    }

    pub(super) fn send_to_gateway(
        &mut self,
        r: usize,
        inc: u32,
        frame: &[u8],
        close_of: Option<usize>,
    ) {
        let (times, shuffled) = self.transit(r, false);
        if shuffled {
            self.disturb_req(request_of_up(frame), "frame reordered or duplicated");
        }
        if times.is_empty() {
            self.disturb_req(request_of_up(frame), "frame lost");
            if let Some(c) = close_of {
                self.conns[c].orphan_cause = Some("runner close lost");
            }
        }
        for at in times {
            self.sched_at(
                at,
                Ev::ToGateway {
                    r,
                    inc,
                    frame: frame.to_vec(),
                },
            );
        }
    }

    pub(super) fn deliver_to_runner(&mut self, r: usize, inc: u32, frame: &Frame) {
        let desc = describe_to_runner(frame);
        if !self.runner_alive(r, inc) {
            tr!(self, "runner{r}.{inc} (down) ✗ {desc}");
            self.count("lost_to_dead_runner");
            self.disturb_req(request_of_down(frame), "frame to a dead runner");
            if let Some(c) = close_to_runner(frame).and_then(|req| self.by_req.get(&req).copied()) {
                self.conns[c].orphan_cause = Some("gateway close lost");
            }
            return;
        }
        let now = self.now;
        let result = self.runners[r]
            .engine
            .as_mut()
            .map(|e| e.handle_frame(now, frame));
        match result {
            Some(Err(e)) => {
                tr!(self, "runner{r} ← gw: {desc} (dropped: {e})");
                if matches!(e, runner::ReceiveError::QueueFull { .. }) {
                    self.disturb_req(request_of_down(frame), "runner queue full");
                }
            }
            _ => tr!(self, "runner{r} ← gw: {desc}"),
        }
        self.drain_runner(r);
    }

    pub(super) fn deliver_to_gateway(&mut self, r: usize, inc: u32, frame: &[u8]) {
        let desc = describe_to_gateway(frame);
        let result = self
            .gw
            .handle_runner_frame(self.now, route_id(r, inc), frame);
        match result {
            Err(e) => tr!(self, "gw ← runner{r}.{inc}: {desc} (dropped: {e})"),
            Ok(()) => tr!(self, "gw ← runner{r}.{inc}: {desc}"),
        }
        self.drain_gw();
    }
}
