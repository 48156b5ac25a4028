//! The simulated network: per-runner links with FIFO clocks between the engine and the runners.
//! Tunnel frames cross the gateway's pub/sub hop and get the seed's faults (drop, stall, reorder,
//! duplicate); control-plane frames (handshake, commands, events, pings, acks) ride the runner
//! WebSocket in order and are lost only when it breaks (a partition, a crash).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::time::Duration;

use crate::control::{ConnId, OutFrame, ReceiveError};
use crate::runner;
use crate::session::SessionReceiveError;
use crate::time::Timestamp;

use super::event::Ev;
use super::format::{
    close_to_engine, close_to_runner, describe_to_engine, describe_to_runner, request_of_down,
    request_of_up,
};
use super::rng::Entropy;
#[cfg(test)]
use super::world::Sabotage;
use super::world::World;

/// One runner's link to the engine: a FIFO clock per direction.
#[derive(Debug, Default, Clone, Copy)]
struct Link {
    to_runner_at: Timestamp,
    to_gateway_at: Timestamp,
}

/// Which way a frame travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dir {
    ToRunner,
    ToGateway,
}

/// What the network does with one submitted frame.
#[derive(Debug)]
pub(super) struct Transit {
    /// When each copy arrives: none if lost, two if duplicated.
    pub(super) arrivals: Vec<Timestamp>,
    /// Reordered or duplicated.
    pub(super) shuffled: bool,
}

/// The faults the network may apply (drawn from the seed); `None` once the chaos phase is over.
#[derive(Debug, Clone, Copy)]
pub(super) struct Weather {
    pub(super) drop_ppm: u32,
    pub(super) delay_ppm: u32,
    pub(super) delay_max_us: u64,
    pub(super) reorder_ppm: u32,
    pub(super) dup_ppm: u32,
    pub(super) reorder_max_us: u64,
}

/// A netem-style network between the engine and the runners: per-link FIFO delivery with a
/// seeded latency, and in the chaos phase drop, stall, reorder and duplicate. It
/// owns the links and counts its own faults; the world schedules the arrivals it returns.
#[derive(Debug)]
pub(super) struct Net {
    links: Vec<Link>,
    latency_us: (u64, u64),
    faults: BTreeMap<&'static str, u64>,
}

impl Net {
    pub(super) fn new(runners: usize, latency_us: (u64, u64)) -> Self {
        Self {
            links: alloc::vec![Link::default(); runners],
            latency_us,
            faults: BTreeMap::new(),
        }
    }

    /// Submits one frame on runner `r`'s link at `now`: when (and whether) it arrives, under
    /// `weather` (`None`: no faults, FIFO).
    pub(super) fn submit(
        &mut self,
        rng: &mut Entropy,
        now: Timestamp,
        r: usize,
        dir: Dir,
        weather: Option<&Weather>,
    ) -> Transit {
        let (lo, hi) = self.latency_us;
        let lat = rng.range(lo, hi);
        let base = now + Duration::from_micros(lat);
        let Some(w) = weather else {
            let clock = self.clock(r, dir);
            let at = base.max(*clock);
            *clock = at;
            return Transit {
                arrivals: alloc::vec![at],
                shuffled: false,
            };
        };
        let lost = Transit {
            arrivals: Vec::new(),
            shuffled: false,
        };
        if rng.chance(w.drop_ppm) {
            self.fault("drop");
            return lost;
        }
        let stall = if rng.chance(w.delay_ppm) {
            self.fault("stall");
            rng.range(1, w.delay_max_us)
        } else {
            0
        };
        let reorder = rng.chance(w.reorder_ppm);
        let dup = rng.chance(w.dup_ppm);
        let dup_extra = if dup {
            rng.range(0, w.reorder_max_us)
        } else {
            0
        };
        let extra = if reorder {
            rng.range(1, w.reorder_max_us)
        } else {
            0
        };
        let clock = self.clock(r, dir);
        // FIFO unless reordered: a stall holds everything behind it.
        let mut at = (base + Duration::from_micros(stall)).max(*clock);
        *clock = at;
        if reorder {
            at += Duration::from_micros(extra);
            self.fault("reorder");
        }
        let mut arrivals = alloc::vec![at];
        if dup {
            self.fault("duplicate");
            arrivals.push(at + Duration::from_micros(dup_extra));
        }
        Transit {
            arrivals,
            shuffled: reorder || dup,
        }
    }

    /// A restarted runner gets a fresh link.
    pub(super) fn reset(&mut self, r: usize) {
        self.links[r] = Link::default();
    }

    /// The faults the network applied, by kind.
    pub(super) fn faults(&self) -> &BTreeMap<&'static str, u64> {
        &self.faults
    }

    fn clock(&mut self, r: usize, dir: Dir) -> &mut Timestamp {
        let link = &mut self.links[r];
        match dir {
            Dir::ToRunner => &mut link.to_runner_at,
            Dir::ToGateway => &mut link.to_gateway_at,
        }
    }

    fn fault(&mut self, kind: &'static str) {
        *self.faults.entry(kind).or_insert(0) += 1;
    }
}

/// `ToClient` tag of a tunnel message (the first byte of a plain frame).
const TUNNEL_TO_RUNNER: u8 = 4;
/// `ToServer` tag of a tunnel message.
const TUNNEL_TO_ENGINE: u8 = 6;

impl World {
    /// Puts a frame on runner `r`'s link: a tunnel frame under the phase's weather, a control
    /// frame in order.
    fn transit(&mut self, r: usize, dir: Dir, tunnel: bool) -> Transit {
        let weather = (tunnel && self.chaos()).then_some(&self.weather);
        self.net.submit(&mut self.rng, self.now, r, dir, weather)
    }

    pub(super) fn send_to_runner(&mut self, r: usize, inc: u32, conn: ConnId, frame: &OutFrame) {
        tr!(
            self,
            "engine → runner{r}.{inc}: {}",
            describe_to_runner(frame)
        );
        #[cfg(test)]
        if self.sabotage == Some(Sabotage::HiddenLoss) && self.queue.seq().is_multiple_of(50) {
            self.queue.skip();
            return;
        }
        let tunnel = frame.first() == Some(&TUNNEL_TO_RUNNER);
        let Transit {
            arrivals: times,
            shuffled,
        } = self.transit(r, Dir::ToRunner, tunnel);
        if shuffled {
            self.disturb_req(request_of_down(frame), "frame reordered or duplicated");
        }
        if times.is_empty() {
            self.lost_on_closed_link(frame, true);
        }
        for at in times {
            self.sched_at(
                at,
                Ev::ToRunner {
                    r,
                    inc,
                    conn,
                    frame: frame.clone(),
                },
            );
        }
    }

    pub(super) fn send_to_engine(
        &mut self,
        r: usize,
        inc: u32,
        conn: ConnId,
        frame: &[u8],
        close_of: Option<usize>,
    ) {
        let tunnel = frame.first() == Some(&TUNNEL_TO_ENGINE);
        let Transit {
            arrivals: times,
            shuffled,
        } = self.transit(r, Dir::ToGateway, tunnel);
        if shuffled {
            self.disturb_req(request_of_up(frame), "frame reordered or duplicated");
        }
        if times.is_empty() {
            self.disturb_req(request_of_up(frame), "frame lost");
            if let Some(c) = close_of {
                self.conns[c].facts.orphan_cause = Some("runner close lost");
            }
        }
        for at in times {
            let frame = frame.to_vec();
            self.sched_at(
                at,
                Ev::ToEngine {
                    r,
                    inc,
                    conn,
                    frame,
                },
            );
        }
    }

    /// A frame lost in transit (or sent on a link that is gone): the request it concerns met a
    /// fault, and a lost close may leave an orphan.
    pub(super) fn lost_on_closed_link(&mut self, frame: &[u8], to_runner: bool) {
        if to_runner {
            self.disturb_req(request_of_down(frame), "frame lost");
            if let Some(c) = close_to_runner(frame).and_then(|req| self.by_req.get(&req).copied()) {
                self.conns[c].facts.orphan_cause = Some("gateway close lost");
            }
        } else {
            self.disturb_req(request_of_up(frame), "frame lost");
            if let Some(c) = close_to_engine(frame).and_then(|req| self.by_req.get(&req).copied()) {
                self.conns[c].facts.orphan_cause = Some("runner close lost");
            }
        }
    }

    pub(super) fn deliver_to_runner(&mut self, r: usize, inc: u32, conn: ConnId, frame: &[u8]) {
        let desc = describe_to_runner(frame);
        if !self.runner_alive(r, inc) || self.runners[r].conn != Some(conn) {
            tr!(self, "runner{r}.{inc} (link gone) ✗ {desc}");
            self.count("lost_on_broken_link");
            self.lost_on_closed_link(frame, true);
            return;
        }
        let now = self.now;
        let result = self.runners[r]
            .engine
            .as_mut()
            .map(|e| e.handle_frame(now, frame));
        match result {
            Some(Err(e)) => {
                tr!(self, "runner{r} ← engine: {desc} (dropped: {e})");
                if matches!(
                    e,
                    SessionReceiveError::Tunnel(runner::ReceiveError::QueueFull { .. })
                ) {
                    self.disturb_req(request_of_down(frame), "runner queue full");
                }
            }
            _ => tr!(self, "runner{r} ← engine: {desc}"),
        }
        self.drain_runner(r);
    }

    pub(super) fn deliver_to_engine(&mut self, r: usize, inc: u32, conn: ConnId, frame: &[u8]) {
        let desc = describe_to_engine(frame);
        let result = self.ctl.handle_runner_frame(self.now, conn, frame);
        match result {
            Err(ReceiveError::UnknownConnection { .. }) => {
                tr!(self, "engine ✗ runner{r}.{inc} (link gone): {desc}");
                self.count("lost_on_broken_link");
                self.lost_on_closed_link(frame, false);
            }
            Err(e) => tr!(self, "engine ← runner{r}.{inc}: {desc} (dropped: {e})"),
            Ok(()) => tr!(self, "engine ← runner{r}.{inc}: {desc}"),
        }
        self.drain_ctl();
    }
}
