//! The orchestrator: the record store, placing actors on runners, starting, restoring, waking,
//! putting them to sleep, crashes and restarts, the chaos processes, and the heal phase's stages.
//!
//! # Interface
//!
//! The rest of the world reaches the orchestrator only through these entry points, so another
//! placement policy (a control engine) can replace this file without touching the others:
//!
//! * needs: [`World::ensure_started`] (a client connects), [`World::want_wake`] (the gateway
//!   asked for a wake), [`World::sleep_actor`] (the app drains its actor);
//! * the record store: [`World::record_op`] (the gateway's upsert or delete) and the completion
//!   event it schedules ([`World::record_done`]);
//! * its own events, dispatched by the world: [`World::restore`], [`World::gw_wake`],
//!   [`World::stopped_signal`], [`World::crash_noticed`], [`World::restart`], and the chaos
//!   processes ([`World::chaos_event`], [`World::crash_runner`], [`World::app_crash`]);
//! * the heal phase: [`World::heal_progress`] after every step, and
//!   [`World::not_quiescent_reason`] when the world stops early.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use crate::gateway::Phase as GwPhase;
use crate::runner::{PersistedSocket, Runner};
use crate::wire::{HibernatingRequest, RequestId};

use super::app::Write;
use super::client::ClientState;
use super::event::{Chaos, Ev};
use super::format::route_id;
use super::trace::Time;
use super::world::{GATEWAY_ID, Stage, World};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ActorPhase {
    Asleep,
    Starting(usize, u32),
    Running(usize, u32),
    Stopping(usize, u32),
}

impl ActorPhase {
    pub(super) fn location(self) -> Option<(usize, u32)> {
        match self {
            Self::Asleep => None,
            Self::Starting(r, i) | Self::Running(r, i) | Self::Stopping(r, i) => Some((r, i)),
        }
    }
}

impl World {
    pub(super) fn record_op(&mut self, request_id: RequestId, upsert: bool) {
        let Some(&c) = self.by_req.get(&request_id) else {
            return;
        };
        let a = self.conns[c].actor;
        let ok = !upsert || !self.chaos() || !self.rng.chance(self.p.record_fail_ppm);
        if !ok {
            self.fault("record_failure");
        }
        let d = self.rng.range(0, self.p.storage_max_us);
        let at = (self.now + Duration::from_micros(d)).max(self.record_at);
        self.record_at = at;
        self.sched_at(at, Ev::RecordDone { c, a, upsert, ok });
    }

    pub(super) fn record_done(&mut self, c: usize, a: usize, upsert: bool, ok: bool) {
        let req = self.conns[c].req;
        let now = self.now;
        if !upsert {
            self.records.remove(&req);
            tr!(self, "records: delete [{req}]");
            return;
        }
        if ok {
            self.records.insert(req, (a, now));
            let _ = self.gw.hibernating_record_upserted(now, req);
        } else {
            self.disturb(c, "record upsert failed");
            self.conns[c].facts.record_failed = true;
            let _ = self.gw.hibernating_record_failed(now, req);
        }
        tr!(self, "records: upsert [{req}] ok={ok}");
        self.drain_gw();
    }

    fn live_runners(&self) -> Vec<usize> {
        (0..self.runners.len())
            .filter(|&r| self.runners[r].engine.is_some())
            .collect()
    }

    /// The actor is needed (a client connects, a request wants a wake).
    pub(super) fn ensure_started(&mut self, a: usize) {
        match self.actors[a].phase {
            ActorPhase::Asleep => {}
            ActorPhase::Stopping(..) => {
                self.actors[a].start_wanted = true;
                return;
            }
            ActorPhase::Starting(..) | ActorPhase::Running(..) => return,
        }
        let live = self.live_runners();
        if live.is_empty() {
            self.actors[a].start_wanted = true;
            return;
        }
        let r = self.rng.pick(&live);
        self.start_on(a, r);
    }

    fn start_on(&mut self, a: usize, r: usize) {
        let inc = self.runners[r].inc;
        let eligible = self.p.gateway.hibernation_timeout;
        let now = self.now;
        let listed: Vec<HibernatingRequest> = self
            .records
            .iter()
            .filter(|(_, (owner, at))| *owner == a && *at + eligible >= now)
            .map(|(req, _)| HibernatingRequest {
                gateway_id: GATEWAY_ID,
                request_id: *req,
            })
            .collect();
        tr!(
            self,
            "orchestrator: start {} on runner{r}.{inc}, listing {} requests",
            self.actors[a].id,
            listed.len()
        );
        let id = self.actors[a].id.clone();
        let result = self.runners[r]
            .engine
            .as_mut()
            .map(|e| e.actor_starting(now, &id, listed));
        if let Some(Err(e)) = result {
            self.violation(format!("actor_starting {id} on runner{r}: {e}"));
            return;
        }
        self.count("starts");
        // The control plane names the actor's next runner to the gateway: its hibernating
        // requests accept the restore's answers from this route (and only from it).
        let route = route_id(r, inc);
        let reqs: Vec<RequestId> = self
            .conns
            .iter()
            .filter(|conn| conn.actor == a)
            .map(|conn| conn.req)
            .collect();
        for req in reqs {
            let _ = self.gw.actor_starting(now, req, route);
        }
        self.actors[a].phase = ActorPhase::Starting(r, inc);
        self.actors[a].start_wanted = false;
        self.drain_runner(r);
        let d = self.rng.range(0, self.p.start_max_us);
        self.sched(d, Ev::Restore { a, r, inc });
        for c in core::mem::take(&mut self.actors[a].pending_opens) {
            self.gw_open(c, r, inc);
        }
    }

    pub(super) fn restore(&mut self, a: usize, r: usize, inc: u32) {
        if self.actors[a].phase != ActorPhase::Starting(r, inc) || !self.runner_alive(r, inc) {
            return;
        }
        let metas: Vec<PersistedSocket> = self.actors[a].meta.values().cloned().collect();
        let id = self.actors[a].id.clone();
        let now = self.now;
        let result = self.runners[r]
            .engine
            .as_mut()
            .map(|e| e.restore(now, &id, metas));
        tr!(self, "orchestrator: restore {id} on runner{r}: {result:?}");
        match result {
            Some(Ok(_)) => {
                self.actors[a].phase = ActorPhase::Running(r, inc);
                // The actor is ready: its hibernating requests wake (upstream's `Ready` signal).
                for c in self.actors[a].conns.clone() {
                    let d = self.rng.range(0, self.p.signal_max_us);
                    self.sched(d, Ev::GwWake { c, r, inc });
                }
            }
            Some(Err(e)) => self.violation(format!("restore {id}: {e}")),
            None => {}
        }
        self.drain_runner(r);
    }

    /// Whether a live request of actor `a` asked for a wake that has not happened.
    fn wakes_outstanding(&self, a: usize) -> bool {
        self.actors[a]
            .conns
            .iter()
            .any(|&c| self.conns[c].wake_requested && self.gw.request(self.conns[c].req).is_some())
    }

    pub(super) fn want_wake(&mut self, c: usize) {
        let a = self.conns[c].actor;
        match self.actors[a].phase {
            ActorPhase::Running(r, inc) if self.conns[c].handed_back_on == Some((r, inc)) => {
                // Handed back: only the actor's next start restores it.
                self.actors[a].start_wanted = true;
                self.sleep_actor(a);
            }
            ActorPhase::Running(r, inc) => {
                let d = self.rng.range(0, self.p.signal_max_us);
                self.sched(d, Ev::GwWake { c, r, inc });
            }
            // The restore wakes every hibernating request of the actor.
            ActorPhase::Starting(..) => {}
            ActorPhase::Stopping(..) => self.actors[a].start_wanted = true,
            ActorPhase::Asleep => self.ensure_started(a),
        }
    }

    pub(super) fn gw_wake(&mut self, c: usize, r: usize, inc: u32) {
        let req = self.conns[c].req;
        let Some(info) = self.gw.request(req) else {
            return;
        };
        if info.phase != GwPhase::Hibernating {
            return;
        }
        let a = self.conns[c].actor;
        match self.actors[a].phase {
            ActorPhase::Running(ar, ai)
                if (ar, ai) == (r, inc) && self.conns[c].handed_back_on != Some((r, inc)) =>
            {
                let result = self.gw.wake(self.now, req, route_id(r, inc));
                self.conns[c].wake_requested = false;
                self.conns[c].gw_hibernating = false;
                self.conns[c].facts.last_wake_at = self.now;
                tr!(
                    self,
                    "orchestrator: wake conn{c} via runner{r}.{inc}: {result:?}"
                );
                if let Err(e) = result {
                    self.violation(format!("conn{c}: wake: {e}"));
                }
                self.count("wakes");
                self.drain_gw();
            }
            // The actor moved on meanwhile: wake it where it is (or will be).
            _ => self.want_wake(c),
        }
    }

    pub(super) fn stopped_signal(&mut self, a: usize, r: usize, inc: u32) {
        if self.actors[a].phase.location() != Some((r, inc)) {
            return;
        }
        tr!(
            self,
            "orchestrator: {} stopped on runner{r}.{inc}",
            self.actors[a].id
        );
        self.actors[a].phase = ActorPhase::Asleep;
        let route = route_id(r, inc);
        for c in self.actors[a].conns.clone() {
            let req = self.conns[c].req;
            if self.gw.request(req).is_some_and(|i| i.route == route) {
                let _ = self.gw.actor_stopped(self.now, req);
                self.drain_gw();
            }
        }
        // A start cut short (crash) leaves wake requests outstanding: the gateway asks once.
        let wanted = self.actors[a].start_wanted
            || !self.actors[a].pending_opens.is_empty()
            || self.wakes_outstanding(a);
        if wanted {
            self.ensure_started(a);
        }
    }

    pub(super) fn sleep_actor(&mut self, a: usize) {
        let ActorPhase::Running(r, inc) = self.actors[a].phase else {
            return;
        };
        if !self.runner_alive(r, inc) {
            return;
        }
        let id = self.actors[a].id.clone();
        tr!(self, "orchestrator: sleep {id} on runner{r}");
        self.actors[a].phase = ActorPhase::Stopping(r, inc);
        let now = self.now;
        let result = self.runners[r]
            .engine
            .as_mut()
            .map(|e| e.actor_stopping(now, &id));
        if let Some(Err(e)) = result {
            self.violation(format!("actor_stopping {id}: {e}"));
        }
        self.count("sleeps");
        self.drain_runner(r);
    }

    /// Writes of `(r, inc)` (optionally of one actor) in flight when their app died: each lands or
    /// is lost, decided now.
    fn resolve_writes(&mut self, r: usize, inc: u32, actor: Option<usize>) {
        let ids: Vec<u64> = self
            .writes
            .iter()
            .filter(|(_, w)| {
                w.r == r && w.inc == inc && !w.resolved && actor.is_none_or(|a| a == w.a)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let lands = self.rng.chance(self.p.write_lands_on_crash_ppm);
            let Some(w) = self.writes.get_mut(&id) else {
                continue;
            };
            w.resolved = true;
            if lands && w.ok {
                let w = self.writes.get(&id).map(|w| Write {
                    entries: w.entries.clone(),
                    ..*w
                });
                if let Some(w) = w {
                    self.fault("write_landed_at_crash");
                    self.apply_write(&w);
                }
            } else {
                self.fault("write_lost_at_crash");
            }
        }
    }

    pub(super) fn crash_runner(&mut self, r: usize) {
        let inc = self.runners[r].inc;
        let Some(engine) = self.runners[r].engine.take() else {
            return;
        };
        tr!(self, "CRASH runner{r}.{inc}");
        self.fault("runner_crash");
        for c in 0..self.conns.len() {
            let on_it = self.actors[self.conns[c].actor].phase.location() == Some((r, inc))
                || self.conns[c].session == Some((r, inc))
                || self
                    .gw
                    .request(self.conns[c].req)
                    .is_some_and(|i| i.route == route_id(r, inc));
            if on_it {
                self.disturb(c, "runner crash");
            }
        }
        self.add_stats(&engine);
        self.resolve_writes(r, inc, None);
        let slot = &mut self.runners[r];
        slot.sessions.clear();
        slot.dead_apps.clear();
        for conn in &mut self.conns {
            if conn.session.is_some_and(|(sr, si)| (sr, si) == (r, inc)) {
                conn.session = None;
            }
        }
        let d = self.rng.range(0, self.p.crash_notice_max_us);
        self.sched(d, Ev::CrashNoticed { r, inc });
    }

    pub(super) fn crash_noticed(&mut self, r: usize, inc: u32) {
        tr!(self, "orchestrator: runner{r}.{inc} is gone");
        for a in 0..self.actors.len() {
            if self.actors[a].phase.location() == Some((r, inc)) {
                self.sched(0, Ev::StoppedSignal { a, r, inc });
            }
        }
        self.runners[r].restart_pending = true;
        let d = self.rng.range(0, self.p.restart_max_us);
        self.sched(d, Ev::Restart { r });
    }

    pub(super) fn restart(&mut self, r: usize) {
        let slot = &mut self.runners[r];
        if slot.engine.is_some() {
            return;
        }
        slot.inc += 1;
        slot.restart_pending = false;
        self.net.reset(r);
        slot.engine = Some(
            Runner::new(self.p.runner.clone(), self.now)
                .expect("drawn runner configs are valid: every value is within bounds"),
        );
        tr!(
            self,
            "orchestrator: runner{r} restarted as incarnation {}",
            slot.inc
        );
        for a in 0..self.actors.len() {
            if self.actors[a].phase == ActorPhase::Asleep
                && (self.actors[a].start_wanted
                    || !self.actors[a].pending_opens.is_empty()
                    || self.wakes_outstanding(a))
            {
                self.ensure_started(a);
            }
        }
    }

    pub(super) fn app_crash(&mut self, a: usize) {
        let ActorPhase::Running(r, inc) = self.actors[a].phase else {
            return;
        };
        if !self.runner_alive(r, inc) {
            return;
        }
        tr!(self, "CRASH app of {} on runner{r}", self.actors[a].id);
        self.fault("actor_crash");
        for c in self.actors[a].conns.clone() {
            self.disturb(c, "app crash");
        }
        self.runners[r].dead_apps.insert(a);
        for s in self.runners[r].sessions.values_mut() {
            if self.conns[s.c].actor == a {
                s.dead = true;
            }
        }
        self.resolve_writes(r, inc, Some(a));
        self.sleep_actor(a);
    }

    pub(super) fn chaos_event(&mut self, kind: Chaos) {
        if !self.chaos() {
            return;
        }
        let p = &self.p;
        let every = match kind {
            Chaos::Sleep => p.sleep_every_us,
            Chaos::AppCrash => p.app_crash_every_us,
            Chaos::RunnerCrash => p.crash_every_us,
            Chaos::Partition => p.partition_every_us,
            Chaos::ClockJump => p.jump_every_us,
        };
        let next = self.rng.range(every / 4, every * 2);
        self.sched(next, Ev::Chaos(kind));
        match kind {
            Chaos::Sleep | Chaos::AppCrash => {
                let running: Vec<usize> = (0..self.actors.len())
                    .filter(|&a| matches!(self.actors[a].phase, ActorPhase::Running(..)))
                    .collect();
                if running.is_empty() {
                    return;
                }
                let a = self.rng.pick(&running);
                if kind == Chaos::Sleep {
                    self.sleep_actor(a);
                } else {
                    self.app_crash(a);
                }
            }
            Chaos::RunnerCrash => {
                let live = self.live_runners();
                if !live.is_empty() {
                    let r = self.rng.pick(&live);
                    self.crash_runner(r);
                }
            }
            Chaos::Partition => {
                let r = usize::try_from(self.rng.below(self.runners.len() as u64)).unwrap_or(0);
                let d = self.rng.range(1, self.p.partition_max_us);
                tr!(self, "PARTITION gw ⇹ runner{r} for {}ms", d / 1000);
                self.fault("partition");
                self.net.partition(r, self.now + Duration::from_micros(d));
            }
            Chaos::ClockJump => {
                let d = self.rng.range(1, self.p.jump_max_us);
                tr!(self, "CLOCK JUMP +{}ms", d / 1000);
                self.fault("clock_jump");
                for c in 0..self.conns.len() {
                    self.disturb(c, "clock jump");
                }
                self.jump_until = self.now + Duration::from_micros(d);
            }
        }
    }

    /// `None` when nothing is in flight and every buffer is drained; otherwise why not.
    fn busy(&self) -> Option<String> {
        if let Some(ev) = self.queue.busy() {
            return Some(format!("event in flight: {ev:?}"));
        }
        if !self.writes.is_empty() {
            return Some("writes in flight".into());
        }
        for (a, actor) in self.actors.iter().enumerate() {
            if matches!(
                actor.phase,
                ActorPhase::Starting(..) | ActorPhase::Stopping(..)
            ) {
                return Some(format!("actor{a} is {:?}", actor.phase));
            }
        }
        for (c, conn) in self.conns.iter().enumerate() {
            if matches!(conn.state, ClientState::Waiting | ClientState::Opening) {
                return Some(format!("conn{c} is {:?}", conn.state));
            }
            if let Some(info) = self.gw.request(conn.req) {
                if info.phase == GwPhase::AwaitingOpen {
                    return Some(format!("conn{c} awaits open"));
                }
                if info.pending_messages > 0 {
                    return Some(format!(
                        "conn{c} has {} pending ({:?})",
                        info.pending_messages, info.phase
                    ));
                }
            }
        }
        None
    }

    pub(super) fn not_quiescent_reason(&self) -> String {
        self.busy()
            .unwrap_or_else(|| "stage condition not met".into())
    }

    pub(super) fn heal_progress(&mut self) {
        if self.busy().is_some() {
            return;
        }
        match self.stage {
            Stage::Drain => {
                self.check_drained("drain");
                tr!(self, "=== heal: drained; every actor goes to sleep ===");
                self.stage = Stage::Sleeping;
                self.sleep_all();
            }
            Stage::Sleeping => {
                if self
                    .actors
                    .iter()
                    .any(|a| matches!(a.phase, ActorPhase::Running(..)))
                {
                    self.sleep_all();
                    return;
                }
                tr!(self, "=== heal: all asleep; every actor starts again ===");
                self.stage = Stage::Waking;
                for a in 0..self.actors.len() {
                    self.ensure_started(a);
                }
            }
            Stage::Waking => {
                if self.actors.iter().any(|a| a.phase == ActorPhase::Asleep) {
                    for a in 0..self.actors.len() {
                        self.ensure_started(a);
                    }
                    return;
                }
                let hibernating = self.conns.iter().any(|c| {
                    self.gw
                        .request(c.req)
                        .is_some_and(|i| i.phase == GwPhase::Hibernating)
                });
                if hibernating {
                    return;
                }
                let until = self.now + self.p.gateway.ping_interval * 2 + Duration::from_secs(1);
                self.heal_deadline = self.heal_deadline.max(until + Duration::from_secs(1));
                tr!(
                    self,
                    "=== heal: all awake; liveness probes until {} ===",
                    Time(until)
                );
                self.stage = Stage::Settling(until);
            }
            Stage::Settling(until) => {
                if self.now < until && !self.gw.is_empty() {
                    return;
                }
                self.check_drained("final");
                self.check_final();
                tr!(self, "=== heal: done ===");
                self.stage = Stage::Done;
            }
            Stage::Chaos | Stage::Done => {}
        }
    }

    fn sleep_all(&mut self) {
        for a in 0..self.actors.len() {
            self.sleep_actor(a);
        }
    }
}
