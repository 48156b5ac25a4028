//! The simulated world: the clock, the event queue, `step` and the dispatch of events, and the
//! state every part shares (the control engine with its gateway, the runner sessions, the actors,
//! the connections). The network ([`Net`]), the oracle ([`Oracle`], [`Facts`]), the app, the
//! clients, the control plane's links, crashes and heal phase, and the formatters live in their
//! own files.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use crate::control::{ActorSpec, ConnId, Control};
use crate::gateway::{Gateway, RouteId};
use crate::index::MessageIndex;
use crate::runner::{PersistedSocket, Runner, SocketId};
use crate::session::Session;
use crate::time::Timestamp;
use crate::wire::{ActorConfig, GatewayId, RequestId};

use super::SimReport;
use super::app::{AppSession, Write};
use super::client::{ClientState, Conn};
use super::config::{Params, SimConfig};
use super::event::{Chaos, Ev, EventQueue};
use super::net::{Net, Weather};
use super::oracle::{Facts, Oracle};
use super::rng::Entropy;
use super::trace::{Time, Trace};

/// The gateway's id in every simulation.
pub(super) const GATEWAY_ID: GatewayId = GatewayId([0x67, 0x77, 0x00, 0x01]);

/// Most violations collected before the run stops.
pub(super) const MAX_VIOLATIONS: usize = 8;

/// Most steps of one run (a livelock guard).
pub(super) const MAX_STEPS: u64 = 5_000_000;

/// Payload ids of actor → client messages have this bit set.
pub(super) const ECHO_BIT: u64 = 1 << 63;

/// `(index, payload id)` of one message in a log.
pub(super) type Entry = (MessageIndex, u64);

/// The runner pool name every simulated runner serves and every actor asks for.
pub(super) const POOL: &str = "sim";

/// Where an actor stands on one runner incarnation, as its app sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hosted {
    /// `StartActor` came; the app loads the metadata and restores.
    Starting,
    /// Restored.
    Running,
    /// The session gave it up (its runner id was lost); it stops without reporting.
    Orphaned,
}

/// One runner process: its [`Session`] (`None` while crashed), its WebSocket to the engine, and
/// the app's state on it.
#[derive(Debug)]
pub(super) struct RunnerSlot {
    pub(super) engine: Option<Session>,
    /// Incarnation: a restart after a crash is a new process with a new runner key.
    pub(super) inc: u32,
    /// The runner WebSocket both ends consider open.
    pub(super) conn: Option<ConnId>,
    pub(super) sessions: BTreeMap<SocketId, AppSession>,
    pub(super) dead_apps: BTreeSet<usize>,
    /// Actors this incarnation hosts.
    pub(super) hosted: BTreeMap<usize, Hosted>,
}

impl RunnerSlot {
    /// The tunnel engine of the session.
    pub(super) fn tunnel(&self) -> Option<&Runner> {
        self.engine.as_ref().map(Session::runner)
    }

    /// The tunnel engine of the session, for the app's socket-level calls.
    pub(super) fn tunnel_mut(&mut self) -> Option<&mut Runner> {
        self.engine.as_mut().map(Session::runner_mut)
    }
}

#[derive(Debug)]
pub(super) struct ActorSim {
    pub(super) id: String,
    pub(super) conns: Vec<usize>,
    /// FIFO clock of the actor's storage: operations complete in issue order.
    pub(super) storage_at: Timestamp,
    pub(super) meta: BTreeMap<SocketId, PersistedSocket>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    Chaos,
    /// Heal: faults off, no new client data; wait until every buffer drains.
    Drain,
    /// Heal: every actor goes to sleep.
    Sleeping,
    /// Heal: every actor starts again and every hibernating request wakes.
    Waking,
    /// Heal: every request is woken; the gateway's liveness probes get the time to find a
    /// request no runner holds (two ping intervals and a round trip), then the final check.
    Settling(Timestamp),
    Done,
}

pub(crate) struct World {
    pub(super) seed: u64,
    pub(super) p: Params,
    pub(super) rng: Entropy,
    pub(super) now: Timestamp,
    pub(super) jump_until: Timestamp,
    pub(super) steps: u64,
    pub(super) queue: EventQueue,
    pub(super) net: Net,
    /// The network's faults in the chaos phase.
    pub(super) weather: Weather,
    /// The engine side of the control plane; it owns the gateway.
    pub(super) ctl: Control,
    /// Runner routes (the control engine's runner sequence numbers) → runner and incarnation.
    pub(super) routes: BTreeMap<u64, (usize, u32)>,
    pub(super) next_conn: u64,
    pub(super) runners: Vec<RunnerSlot>,
    pub(super) actors: Vec<ActorSim>,
    pub(super) conns: Vec<Conn>,
    pub(super) by_req: BTreeMap<RequestId, usize>,
    pub(super) payloads: BTreeMap<u64, (usize, MessageIndex)>,
    pub(super) next_pid: u64,
    pub(super) writes: BTreeMap<u64, Write>,
    pub(super) next_write: u64,
    pub(super) stage: Stage,
    pub(super) heal_deadline: Timestamp,
    pub(super) oracle: Oracle,
    pub(super) trace: Trace,
    /// A deliberate defect in the simulated app or network, to prove the checks fire.
    #[cfg(test)]
    pub(crate) sabotage: Option<Sabotage>,
}

/// Defects the self-tests plant in the world (never in the engines).
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sabotage {
    /// The app applies every delivered message twice.
    DoubleApply,
    /// The app's write stores the index but not the log (a non-atomic commit).
    IndexWithoutLog,
    /// The app never restores a started actor.
    IgnoreStarts,
    /// The network silently loses every 50th frame without telling the checker.
    HiddenLoss,
}

impl World {
    pub(crate) fn new(seed: u64, cfg: &SimConfig, mut rng: Entropy) -> Self {
        let p = Params::draw(cfg, &mut rng);
        let start = Timestamp::from_secs(1);
        let gw = Gateway::new(p.gateway.clone(), GATEWAY_ID, start)
            .expect("drawn gateway configs are valid: every drawn value is within its bounds");
        let mut ctl = Control::new(p.control.clone(), gw, seed, start)
            .expect("drawn control configs are valid: every drawn value is within its bounds");
        let actors: Vec<ActorSim> = (0..p.actors)
            .map(|a| ActorSim {
                id: format!("actor-{a}"),
                conns: Vec::new(),
                storage_at: Timestamp::ZERO,
                meta: BTreeMap::new(),
            })
            .collect();
        for actor in &actors {
            let spec = ActorSpec {
                runner_name: POOL.into(),
                config: ActorConfig {
                    name: actor.id.clone(),
                    key: None,
                    create_ts: 0,
                    input: None,
                },
            };
            ctl.create_actor(start, &actor.id, spec)
                .expect("a few actors with distinct ids fit");
        }
        let runners = (0..p.runners)
            .map(|_| RunnerSlot {
                engine: None,
                inc: 0,
                conn: None,
                sessions: BTreeMap::new(),
                dead_apps: BTreeSet::new(),
                hosted: BTreeMap::new(),
            })
            .collect();
        let heal_deadline = start + Duration::from_micros(p.chaos_us) + cfg.heal_budget;
        let net = Net::new(p.runners, p.latency_us);
        let weather = Weather {
            drop_ppm: p.drop_ppm,
            delay_ppm: p.delay_ppm,
            delay_max_us: p.delay_max_us,
            reorder_ppm: p.reorder_ppm,
            dup_ppm: p.dup_ppm,
            reorder_max_us: p.reorder_max_us,
        };
        Self {
            seed,
            p,
            rng,
            now: start,
            jump_until: Timestamp::ZERO,
            steps: 0,
            queue: EventQueue::default(),
            net,
            weather,
            ctl,
            routes: BTreeMap::new(),
            next_conn: 1,
            runners,
            actors,
            conns: Vec::new(),
            by_req: BTreeMap::new(),
            payloads: BTreeMap::new(),
            next_pid: 1,
            writes: BTreeMap::new(),
            next_write: 0,
            stage: Stage::Chaos,
            heal_deadline,
            oracle: Oracle::default(),
            trace: Trace::new(cfg.trace_capacity),
            #[cfg(test)]
            sabotage: None,
        }
    }

    /// The gateway inside the control engine.
    pub(super) fn gw(&self) -> &Gateway {
        self.ctl.gateway()
    }

    /// The runner incarnation behind a gateway route.
    pub(super) fn route_owner(&self, route: RouteId) -> Option<(usize, u32)> {
        self.routes.get(&route.0).copied()
    }

    pub(crate) fn run(mut self) -> (SimReport, Vec<String>) {
        tr!(self, "seed {}", self.seed);
        for line in self.p.describe() {
            tr!(self, "{line}");
        }
        self.setup();
        while self.stage != Stage::Done && self.oracle.violations.is_empty() {
            if !self.step() {
                break;
            }
        }
        self.finish()
    }

    pub(super) fn setup(&mut self) {
        for r in 0..self.runners.len() {
            self.start_runner(r);
        }
        for c in 0..self.p.connections {
            let a = usize::try_from(self.rng.below(self.p.actors as u64)).unwrap_or(0);
            let req = RequestId::from_u32(u32::try_from(c).unwrap_or(0) + 1);
            let to_send = u32::try_from(self.rng.range(
                u64::from(*self.p.messages.start()),
                u64::from(*self.p.messages.end()),
            ))
            .unwrap_or(0);
            self.conns.push(Conn {
                req,
                socket: SocketId::new(GATEWAY_ID, req),
                actor: a,
                state: ClientState::Idle,
                hibernatable: None,
                to_send,
                blocked: None,
                committed: Vec::new(),
                session: None,
                ever_opened: false,
                gw_hibernating: false,
                facts: Facts::default(),
            });
            self.by_req.insert(req, c);
            self.actors[a].conns.push(c);
            let at = self.rng.below(self.p.chaos_us * 2 / 3);
            self.sched(at, Ev::Connect { c });
        }
        let p = &self.p;
        let processes = [
            (Chaos::Sleep, p.sleep_every_us),
            (Chaos::AppCrash, p.app_crash_every_us),
            (Chaos::RunnerCrash, p.crash_every_us),
            (Chaos::Partition, p.partition_every_us),
            (Chaos::ClockJump, p.jump_every_us),
        ];
        for (kind, every) in processes {
            if every > 0 {
                let at = self.rng.below(every * 2);
                self.sched(at, Ev::Chaos(kind));
            }
        }
        let chaos = self.p.chaos_us;
        self.sched(chaos, Ev::EndChaos);
    }

    pub(super) fn sched(&mut self, delay_us: u64, ev: Ev) {
        let at = self.now + Duration::from_micros(delay_us);
        self.sched_at(at, ev);
    }

    pub(super) fn sched_at(&mut self, at: Timestamp, ev: Ev) {
        self.queue.push(at, ev);
    }

    pub(super) fn chaos(&self) -> bool {
        self.stage == Stage::Chaos
    }

    /// One step: the earliest engine timer or queued event. Returns `false` when the run must
    /// stop.
    pub(super) fn step(&mut self) -> bool {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            self.violation(format!("more than {MAX_STEPS} steps: livelock"));
            return false;
        }
        let next_ev = self.queue.next_at();
        let next_ctl = self.ctl.poll_timeout();
        let mut next_rn: Option<(Timestamp, usize)> = None;
        for (r, slot) in self.runners.iter().enumerate() {
            if let Some(t) = slot.engine.as_ref().and_then(Session::poll_timeout)
                && next_rn.is_none_or(|(best, _)| t < best)
            {
                next_rn = Some((t, r));
            }
        }
        let candidates = [next_ctl, next_rn.map(|(t, _)| t), next_ev];
        let Some(first) = candidates.iter().flatten().min().copied() else {
            if self.stage != Stage::Chaos {
                let stage = self.stage;
                self.heal_progress();
                if self.stage != stage {
                    return true;
                }
            }
            let why = self.not_quiescent_reason();
            self.violation(format!(
                "nothing left to do before the heal phase finished (stage {:?}): {why}",
                self.stage
            ));
            return false;
        };
        let t = first.max(self.jump_until).max(self.now);
        if self.stage != Stage::Chaos && t > self.heal_deadline {
            let why = self.not_quiescent_reason();
            self.violation(format!(
                "liveness: no quiescence within the heal budget (stage {:?}): {why}",
                self.stage
            ));
            return false;
        }
        self.now = t;
        if next_ctl == Some(first) {
            self.ctl.handle_timeout(t);
            self.drain_ctl();
            if let Some(next) = self.ctl.poll_timeout()
                && next <= t
            {
                self.violation(format!(
                    "control poll_timeout {} not after handled now {}",
                    Time(next),
                    Time(t)
                ));
            }
        } else if let Some((rt, r)) = next_rn
            && rt == first
        {
            if let Some(e) = self.runners[r].engine.as_mut() {
                e.handle_timeout(t);
            }
            self.drain_runner(r);
            if let Some(next) = self.runners[r]
                .engine
                .as_ref()
                .and_then(Session::poll_timeout)
                && next <= t
            {
                self.violation(format!(
                    "runner{r} poll_timeout {} not after handled now {}",
                    Time(next),
                    Time(t)
                ));
            }
        } else if let Some(ev) = self.queue.pop() {
            self.handle(ev);
        }
        self.check_step();
        if self.stage != Stage::Chaos && self.oracle.violations.is_empty() {
            self.heal_progress();
        }
        true
    }

    pub(super) fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::ToRunner {
                r,
                inc,
                conn,
                frame,
            } => self.deliver_to_runner(r, inc, conn, &frame),
            Ev::ToEngine {
                r,
                inc,
                conn,
                frame,
            } => self.deliver_to_engine(r, inc, conn, &frame),
            Ev::Connect { c } => self.connect(c),
            Ev::ClientSend { c } => self.client_send(c),
            Ev::ClientClose { c } => self.client_close(c),
            Ev::AppDecide { r, inc, socket } => self.app_decide(r, inc, socket),
            Ev::AppSend { r, inc, socket } => self.app_send(r, inc, socket),
            Ev::AppClose { r, inc, socket } => self.app_close(r, inc, socket),
            Ev::AppHibernate { r, inc, socket } => self.app_hibernate(r, inc, socket),
            Ev::CrashAtPersist { a, r, inc, runner } => {
                if self.chaos() && self.hosted(a, r, inc) == Some(Hosted::Running) {
                    if runner {
                        self.crash_runner(r);
                    } else {
                        self.app_crash(a, r);
                    }
                }
            }
            Ev::Drain { a, r, inc } => {
                if self.hosted(a, r, inc) == Some(Hosted::Running) {
                    tr!(self, "app@runner{r}: drains {}", self.actors[a].id);
                    self.runner_sleep_intent(a, r);
                }
            }
            Ev::WriteDone { id } => self.write_done(id),
            Ev::MetaDelete { a, socket } => {
                tr!(
                    self,
                    "storage[{}]: delete meta {}",
                    self.actors[a].id,
                    socket.request_id
                );
                self.actors[a].meta.remove(&socket);
            }
            Ev::Restore {
                a,
                r,
                inc,
                generation,
            } => self.restore(a, r, inc, generation),
            Ev::LinkDown { r, inc } => self.link_down(r, inc),
            Ev::EngineNotices { conn } => self.engine_notices(conn),
            Ev::Reconnect { r, inc } => self.reconnect(r, inc),
            Ev::Restart { r } => self.restart(r),
            Ev::Chaos(kind) => self.chaos_event(kind),
            Ev::EndChaos => {
                tr!(self, "=== heal phase: faults off, no new client data ===");
                self.stage = Stage::Drain;
            }
        }
    }

    /// Where actor `a` stands on runner `r`, if that is incarnation `inc` and alive.
    pub(super) fn hosted(&self, a: usize, r: usize, inc: u32) -> Option<Hosted> {
        if !self.runner_alive(r, inc) {
            return None;
        }
        self.runners[r].hosted.get(&a).copied()
    }

    pub(super) fn runner_alive(&self, r: usize, inc: u32) -> bool {
        self.runners
            .get(r)
            .is_some_and(|s| s.inc == inc && s.engine.is_some())
    }

    pub(super) fn finish(mut self) -> (SimReport, Vec<String>) {
        for r in 0..self.runners.len() {
            if let Some(e) = self.runners[r].engine.take() {
                self.add_stats(e.runner());
            }
        }
        let g = self.gw().stats();
        let cs = self.ctl.stats();
        let mut counts: BTreeMap<String, u64> = self
            .oracle
            .counts
            .iter()
            .map(|(k, v)| ((*k).to_string(), *v))
            .collect();
        counts.insert("gap_closes".into(), self.oracle.totals.gap_closes);
        counts.insert("reacks".into(), self.oracle.totals.reacks);
        counts.insert("restored".into(), self.oracle.totals.restored);
        counts.insert("gateway_acks_invalid".into(), g.acks_invalid);
        counts.insert("gateway_acks_stale".into(), g.acks_stale);
        counts.insert("gateway_dropped_wrong_route".into(), g.dropped_wrong_route);
        counts.insert(
            "gateway_dropped_unknown_request".into(),
            g.dropped_unknown_request,
        );
        counts.insert(
            "gateway_dropped_invalid_for_phase".into(),
            g.dropped_invalid_for_phase,
        );
        counts.insert("control_starts".into(), cs.starts);
        counts.insert("control_stops".into(), cs.stops);
        counts.insert("control_runners_lost".into(), cs.runners_lost);
        counts.insert("control_runners_resumed".into(), cs.runners_resumed);
        counts.insert("control_commands_resent".into(), cs.commands_resent);
        counts.insert("control_events_duplicate".into(), cs.events_duplicate);
        counts.insert("control_events_stale".into(), cs.events_stale);
        counts.insert("steps".into(), self.steps);
        counts.insert("trace_lines".into(), self.trace.lines());
        let report = SimReport {
            seed: self.seed,
            messages_accepted: self
                .conns
                .iter()
                .map(|c| c.facts.accepted.len() as u64)
                .sum(),
            delivered: self.oracle.totals.delivered,
            replayed: g.messages_replayed,
            duplicates_dropped: self.oracle.totals.duplicates,
            gaps_healed: self.oracle.totals.gaps_healed,
            retransmits: g.messages_retransmitted,
            closes_by_reason: self.oracle.closes,
            crashes: self.oracle.faults.get("runner_crash").copied().unwrap_or(0)
                + self.oracle.faults.get("actor_crash").copied().unwrap_or(0),
            sleeps: self.oracle.counts.get("sleeps").copied().unwrap_or(0),
            wakes: g.wakes,
            violations: self.oracle.violations,
            trace_hash: self.trace.hash(),
            faults: self
                .oracle
                .faults
                .iter()
                .chain(self.net.faults())
                .map(|(k, v)| ((*k).to_string(), *v))
                .collect(),
            counts,
            params: self.p.describe().join("\n"),
            virtual_time: Duration::from_micros(self.now.as_micros()),
        };
        let lines = if self.trace.enabled() {
            self.trace.take_lines()
        } else {
            Vec::new()
        };
        (report, lines)
    }
}
