//! The control plane around the engines: the real [`Control`](crate::control::Control) engine
//! (which owns the gateway) and one [`Session`] per runner process, the runner WebSockets between
//! them (connect, break, reconnect), runner and app crashes, the app's side of actor starts
//! (load the metadata, restore, or fail the start), the chaos processes, and the heal phase's
//! stages.
//!
//! # Interface
//!
//! The rest of the world reaches the control plane through these entry points:
//!
//! * the engine's actions: [`World::drain_ctl`]; the session's actor life cycle:
//!   [`World::runner_started_actor`], [`World::runner_actor_stopped`];
//! * its own events, dispatched by the world: [`World::restore`], [`World::link_down`],
//!   [`World::engine_notices`], [`World::reconnect`], [`World::restart`], and the chaos
//!   processes ([`World::chaos_event`], [`World::crash_runner`], [`World::app_crash`],
//!   [`World::runner_sleep_intent`]);
//! * the heal phase: [`World::heal_progress`] after every step, and
//!   [`World::not_quiescent_reason`] when the world stops early.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use crate::control::{self, ActorPhase, ConnId};
use crate::gateway::Phase as GwPhase;
use crate::runner::PersistedSocket;
use crate::session::{Session, SessionConfig};

use super::app::Write;
use super::client::ClientState;
use super::event::{Chaos, Ev};
#[cfg(test)]
use super::world::Sabotage;
use super::world::{Hosted, POOL, Stage, World};

impl World {
    /// A runner process starts (incarnation `inc` of slot `r`) and connects.
    pub(super) fn start_runner(&mut self, r: usize) {
        let config = SessionConfig {
            runner: self.p.runner.clone(),
            ..SessionConfig::new(POOL, self.p.slots)
        };
        let session = Session::new(config, self.now)
            .expect("drawn runner configs are valid: every value is within bounds");
        self.runners[r].engine = Some(session);
        self.connect_runner(r);
    }

    /// Opens a new runner WebSocket: the engine learns the connection, the session sends its
    /// `ToServerInit`. The runner key names the process: a reconnect of the same process resumes
    /// its runner within the engine's lost threshold; a restarted process is a new runner.
    fn connect_runner(&mut self, r: usize) {
        let inc = self.runners[r].inc;
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.runners[r].conn = Some(conn);
        let key = format!("runner{r}.{inc}");
        tr!(self, "runner{r}.{inc}: connects as {conn}");
        if let Err(e) = self.ctl.runner_connected(self.now, conn, &key) {
            self.violation(format!("runner{r}: runner_connected: {e}"));
        }
        let now = self.now;
        if let Some(session) = self.runners[r].engine.as_mut() {
            session.connected(now);
        }
        self.drain_ctl();
        self.drain_runner(r);
    }

    /// The runner incarnation whose current WebSocket is `conn`.
    pub(super) fn link_of(&self, conn: ConnId) -> Option<usize> {
        self.runners.iter().position(|s| s.conn == Some(conn))
    }

    pub(super) fn drain_ctl(&mut self) {
        while let Some(action) = self.ctl.poll_action() {
            self.on_ctl_action(action);
        }
    }

    fn on_ctl_action(&mut self, action: control::Action) {
        use control::Action as A;
        match action {
            A::Send { conn, frame } => match self.link_of(conn) {
                Some(r) => {
                    let inc = self.runners[r].inc;
                    self.send_to_runner(r, inc, conn, &frame);
                }
                None => self.lost_on_closed_link(&frame, true),
            },
            A::CloseConnection { conn, reason } => {
                tr!(self, "engine: closes {conn}: {reason:?}");
                if let Some(r) = self.link_of(conn) {
                    self.runners[r].conn = None;
                    self.disturb_runner(r, "runner link closed");
                    let inc = self.runners[r].inc;
                    let d = self.rng.range(0, self.p.signal_max_us);
                    self.sched(d, Ev::LinkDown { r, inc });
                }
            }
            A::Gateway(action) => self.on_gw_action(action),
            A::OpenFailed {
                request_id, reason, ..
            } => self.open_failed(request_id, &reason),
            A::RunnerConnected {
                conn,
                runner_id,
                resumed,
            } => {
                let owner = self.link_of(conn).map(|r| (r, self.runners[r].inc));
                let route = self.ctl.route_of(&runner_id);
                tr!(
                    self,
                    "engine: {conn} is runner {runner_id} (resumed {resumed}) of {owner:?}"
                );
                if let (Some(owner), Some(route)) = (owner, route) {
                    self.routes.insert(route.0, owner);
                }
            }
            A::RunnerLost { runner_id } => {
                tr!(self, "engine: runner {runner_id} lost");
                self.count("runners_lost");
            }
            A::ActorRunning {
                actor_id,
                generation,
                runner_id,
            } => tr!(
                self,
                "engine: {actor_id} gen {generation} running on {runner_id}"
            ),
            A::ActorStopped {
                actor_id,
                generation,
                reason,
            } => tr!(
                self,
                "engine: {actor_id} gen {generation} stopped: {reason:?}"
            ),
            other => self.violation(format!("unexpected control action {other:?}")),
        }
    }

    /// The session was told to start actor `actor_id`: the app loads its metadata, then
    /// restores it (or fails the start).
    pub(super) fn runner_started_actor(&mut self, r: usize, actor_id: &str, generation: u32) {
        let Some(a) = self.actor_index(actor_id) else {
            return;
        };
        let inc = self.runners[r].inc;
        tr!(self, "runner{r}.{inc}: start {actor_id} gen {generation}");
        self.count("starts");
        self.runners[r].hosted.insert(a, Hosted::Starting);
        self.runners[r].generations.insert(a, generation);
        let d = self.rng.range(0, self.p.start_max_us);
        self.sched(
            d,
            Ev::Restore {
                a,
                r,
                inc,
                generation,
            },
        );
    }

    pub(super) fn restore(&mut self, a: usize, r: usize, inc: u32, generation: u32) {
        if self.hosted(a, r, inc) != Some(Hosted::Starting) {
            return;
        }
        #[cfg(test)]
        if self.sabotage == Some(Sabotage::IgnoreStarts) {
            return;
        }
        let id = self.actors[a].id.clone();
        let now = self.now;
        if self.chaos() && self.rng.chance(self.p.start_fail_ppm) {
            // The actor's start fails after the engine heard `Running`: replays of its woken
            // requests are on their way to this runner.
            tr!(self, "app@runner{r}: start of {id} gen {generation} fails");
            self.fault("start_failed");
            let result = self.runners[r]
                .engine
                .as_mut()
                .map(|e| e.actor_failed(now, &id, Some("start failed".into())));
            if let Some(Err(e)) = result {
                self.violation(format!("actor_failed {id}: {e}"));
            }
            self.drain_runner(r);
            return;
        }
        // The new generation claims the storage: older generations' writes are refused now.
        self.actors[a].fence = self.actors[a].fence.max(generation);
        let metas: Vec<PersistedSocket> = self.actors[a].meta.values().cloned().collect();
        let result = self.runners[r]
            .engine
            .as_mut()
            .map(|e| e.restore(now, &id, metas));
        tr!(
            self,
            "app@runner{r}: restore {id} gen {generation}: {result:?}"
        );
        match result {
            Some(Ok(_)) => {
                self.runners[r].hosted.insert(a, Hosted::Running);
            }
            Some(Err(e)) => self.violation(format!("restore {id}: {e}")),
            None => {}
        }
        self.drain_runner(r);
    }

    /// The session finished an actor's stop: the app's memory for it is gone.
    pub(super) fn runner_actor_stopped(&mut self, r: usize, actor_id: &str, generation: u32) {
        let Some(a) = self.actor_index(actor_id) else {
            return;
        };
        tr!(self, "runner{r}: actor {actor_id} gen {generation} stopped");
        let slot = &mut self.runners[r];
        slot.hosted.remove(&a);
        slot.generations.remove(&a);
        slot.dead_apps.remove(&a);
        let ended: Vec<_> = slot
            .sessions
            .iter()
            .filter(|(_, s)| self.conns[s.c].actor == a)
            .map(|(id, _)| *id)
            .collect();
        for id in ended {
            self.end_session(r, id);
        }
    }

    /// The runner asks the engine to let actor `a` sleep (`ActorIntentSleep`).
    pub(super) fn runner_sleep_intent(&mut self, a: usize, r: usize) {
        let id = self.actors[a].id.clone();
        let now = self.now;
        let result = self.runners[r]
            .engine
            .as_mut()
            .map(|e| e.sleep_actor(now, &id));
        tr!(self, "runner{r}: sleep intent for {id}: {result:?}");
        self.count("sleeps");
        self.drain_runner(r);
    }

    /// The engine puts actor `a` to sleep.
    fn engine_stop(&mut self, a: usize) {
        let id = self.actors[a].id.clone();
        tr!(self, "engine: stop {id}");
        if let Err(e) = self.ctl.stop_actor(self.now, &id) {
            self.violation(format!("stop_actor {id}: {e}"));
        }
        self.drain_ctl();
    }

    fn engine_start(&mut self, a: usize) {
        let id = self.actors[a].id.clone();
        if let Err(e) = self.ctl.start_actor(self.now, &id) {
            self.violation(format!("start_actor {id}: {e}"));
        }
        self.drain_ctl();
    }

    fn actor_phase(&self, a: usize) -> Option<ActorPhase> {
        self.ctl.actor(&self.actors[a].id).map(|i| i.phase)
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
            if lands && w.ok && w.generation >= self.actors[w.a].fence {
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

    /// Every connection whose path crosses runner `r` (its actor there, its session there, or its
    /// request routed there) met a lasting fault.
    fn disturb_runner(&mut self, r: usize, cause: &'static str) {
        let inc = self.runners[r].inc;
        for c in 0..self.conns.len() {
            let routed = self
                .gw()
                .request(self.conns[c].req)
                .is_some_and(|i| self.route_owner(i.route).is_some_and(|(rr, _)| rr == r));
            let on_it = self.runners[r].hosted.contains_key(&self.conns[c].actor)
                || self.conns[c].session == Some((r, inc))
                || routed;
            if on_it {
                self.disturb(c, cause);
            }
        }
    }

    pub(super) fn crash_runner(&mut self, r: usize) {
        let inc = self.runners[r].inc;
        if self.runners[r].engine.is_none() {
            return;
        }
        tr!(self, "CRASH runner{r}.{inc}");
        self.fault("runner_crash");
        self.disturb_runner(r, "runner crash");
        let Some(engine) = self.runners[r].engine.take() else {
            return;
        };
        self.add_stats(engine.runner());
        self.resolve_writes(r, inc, None);
        let slot = &mut self.runners[r];
        slot.sessions.clear();
        slot.dead_apps.clear();
        slot.hosted.clear();
        slot.generations.clear();
        let conn = slot.conn.take();
        for conn in &mut self.conns {
            if conn.session.is_some_and(|(sr, si)| (sr, si) == (r, inc)) {
                conn.session = None;
            }
        }
        let notice = self.rng.range(0, self.p.crash_notice_max_us);
        if let Some(conn) = conn {
            self.sched(notice, Ev::EngineNotices { conn });
        }
        let d = notice + self.rng.range(0, self.p.restart_max_us);
        self.sched(d, Ev::Restart { r });
    }

    /// The engine learns that a crashed runner's WebSocket is gone.
    pub(super) fn engine_notices(&mut self, conn: ConnId) {
        tr!(self, "engine: {conn} is gone");
        let _ = self.ctl.runner_disconnected(self.now, conn);
        self.drain_ctl();
    }

    pub(super) fn restart(&mut self, r: usize) {
        if self.runners[r].engine.is_some() {
            return;
        }
        self.runners[r].inc += 1;
        self.net.reset(r);
        tr!(
            self,
            "runner{r} restarted as incarnation {}",
            self.runners[r].inc
        );
        self.start_runner(r);
    }

    /// Breaks runner `r`'s WebSocket (both ends notice now); it reconnects after `after_us`.
    fn break_link(&mut self, r: usize, after_us: u64) {
        let Some(conn) = self.runners[r].conn.take() else {
            return;
        };
        self.disturb_runner(r, "runner link broken");
        let _ = self.ctl.runner_disconnected(self.now, conn);
        self.drain_ctl();
        let now = self.now;
        if let Some(session) = self.runners[r].engine.as_mut() {
            session.disconnected(now);
        }
        self.drain_runner(r);
        let inc = self.runners[r].inc;
        self.sched(after_us, Ev::Reconnect { r, inc });
    }

    /// Runner `r` notices that the engine closed its WebSocket; it reconnects soon.
    pub(super) fn link_down(&mut self, r: usize, inc: u32) {
        if !self.runner_alive(r, inc) || self.runners[r].conn.is_some() {
            return;
        }
        tr!(self, "runner{r}.{inc}: link down");
        let now = self.now;
        if let Some(session) = self.runners[r].engine.as_mut() {
            session.disconnected(now);
        }
        self.drain_runner(r);
        let d = self.rng.range(0, self.p.restart_max_us);
        self.sched(d, Ev::Reconnect { r, inc });
    }

    pub(super) fn reconnect(&mut self, r: usize, inc: u32) {
        if self.runner_alive(r, inc) && self.runners[r].conn.is_none() {
            self.connect_runner(r);
        }
    }

    pub(super) fn app_crash(&mut self, a: usize, r: usize) {
        let inc = self.runners[r].inc;
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
        let id = self.actors[a].id.clone();
        let now = self.now;
        let result = self.runners[r]
            .engine
            .as_mut()
            .map(|e| e.actor_failed(now, &id, Some("app crashed".into())));
        if let Some(Err(e)) = result {
            self.violation(format!("actor_failed {id}: {e}"));
        }
        self.drain_runner(r);
    }

    /// `(actor, runner)` pairs where the app runs the actor.
    fn running_hosted(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (r, slot) in self.runners.iter().enumerate() {
            if slot.engine.is_none() {
                continue;
            }
            for (&a, &h) in &slot.hosted {
                if h == Hosted::Running {
                    out.push((a, r));
                }
            }
        }
        out
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
            Chaos::Sleep => {
                let running: Vec<usize> = (0..self.actors.len())
                    .filter(|&a| self.actor_phase(a) == Some(ActorPhase::Running))
                    .collect();
                if running.is_empty() {
                    return;
                }
                let a = self.rng.pick(&running);
                let on = self.running_hosted().into_iter().find(|&(x, _)| x == a);
                match on {
                    Some((_, r)) if self.rng.below(2) == 0 => self.runner_sleep_intent(a, r),
                    _ => {
                        self.count("sleeps");
                        self.engine_stop(a);
                    }
                }
            }
            Chaos::AppCrash => {
                let running = self.running_hosted();
                if running.is_empty() {
                    return;
                }
                let (a, r) = self.rng.pick(&running);
                self.app_crash(a, r);
            }
            Chaos::RunnerCrash => {
                let live: Vec<usize> = (0..self.runners.len())
                    .filter(|&r| self.runners[r].engine.is_some())
                    .collect();
                if !live.is_empty() {
                    let r = self.rng.pick(&live);
                    self.crash_runner(r);
                }
            }
            Chaos::Partition => {
                let r = usize::try_from(self.rng.below(self.runners.len() as u64)).unwrap_or(0);
                let d = self.rng.range(1, self.p.partition_max_us);
                if self.runners[r].conn.is_some() {
                    tr!(self, "PARTITION engine ⇹ runner{r} for {}ms", d / 1000);
                    self.fault("partition");
                    self.break_link(r, d);
                }
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
        for a in 0..self.actors.len() {
            let phase = self.actor_phase(a);
            if matches!(
                phase,
                Some(ActorPhase::Pending | ActorPhase::Starting | ActorPhase::Stopping)
            ) {
                return Some(format!("actor{a} is {phase:?}"));
            }
        }
        for (r, slot) in self.runners.iter().enumerate() {
            if slot.engine.is_some() && slot.conn.is_none() {
                return Some(format!("runner{r} has no link"));
            }
            if let Some((a, _)) = slot.hosted.iter().find(|(_, h)| **h == Hosted::Starting) {
                return Some(format!("actor{a} is starting on runner{r}"));
            }
        }
        for (c, conn) in self.conns.iter().enumerate() {
            if conn.state == ClientState::Opening {
                return Some(format!("conn{c} is opening"));
            }
            if let Some(info) = self.gw().request(conn.req) {
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
            .or_else(|| self.stage_unmet())
            .unwrap_or_else(|| "stage condition not met".into())
    }

    /// What keeps the current heal stage from its condition, if anything does.
    fn stage_unmet(&self) -> Option<String> {
        match self.stage {
            Stage::Sleeping => {
                for a in 0..self.actors.len() {
                    let phase = self.actor_phase(a);
                    if phase != Some(ActorPhase::Sleeping) {
                        return Some(format!("actor{a} is {phase:?}, not asleep"));
                    }
                }
                let (r, slot) = self
                    .runners
                    .iter()
                    .enumerate()
                    .find(|(_, s)| !s.hosted.is_empty())?;
                Some(format!(
                    "runner{r}.{} still hosts {:?}",
                    slot.inc, slot.hosted
                ))
            }
            Stage::Waking => {
                if let Some(a) = (0..self.actors.len())
                    .find(|&a| self.actor_phase(a) == Some(ActorPhase::Sleeping))
                {
                    return Some(format!("actor{a} is still asleep"));
                }
                let c = self.conns.iter().position(|c| {
                    self.gw()
                        .request(c.req)
                        .is_some_and(|i| i.phase == GwPhase::Hibernating)
                })?;
                Some(format!("conn{c} is still hibernating"))
            }
            _ => None,
        }
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
                let awake = (0..self.actors.len())
                    .any(|a| self.actor_phase(a) != Some(ActorPhase::Sleeping))
                    || self.runners.iter().any(|s| !s.hosted.is_empty());
                if awake {
                    self.sleep_all();
                    return;
                }
                tr!(self, "=== heal: all asleep; every actor starts again ===");
                self.stage = Stage::Waking;
                for a in 0..self.actors.len() {
                    self.engine_start(a);
                }
            }
            Stage::Waking => {
                let asleep: Vec<usize> = (0..self.actors.len())
                    .filter(|&a| self.actor_phase(a) == Some(ActorPhase::Sleeping))
                    .collect();
                if !asleep.is_empty() {
                    for a in asleep {
                        self.engine_start(a);
                    }
                    return;
                }
                let hibernating = self.conns.iter().any(|c| {
                    self.gw()
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
                    super::trace::Time(until)
                );
                self.stage = Stage::Settling(until);
            }
            Stage::Settling(until) => {
                if self.now < until && !self.gw().is_empty() {
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
            if matches!(
                self.actor_phase(a),
                Some(ActorPhase::Running | ActorPhase::Starting | ActorPhase::Pending)
            ) {
                self.engine_stop(a);
            }
        }
    }
}
