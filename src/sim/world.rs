//! The simulated world: clock, event queue, gateway, runners, actors with storage, clients,
//! network, orchestrator, and the invariant checks after every step.

use alloc::collections::{BTreeMap, BTreeSet, BinaryHeap};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cmp::{Ordering, Reverse};
use core::fmt;
use core::time::Duration;

use crate::close::{CloseFrame, KnownClose};
use crate::gateway::{
    self, Frame, Gateway, GcReason, OpenRequest, Phase as GwPhase, RouteId, SendError,
};
use crate::index::MessageIndex;
use crate::runner::{self, PersistedSocket, Runner, SocketId, SocketState};
use crate::time::Timestamp;
use crate::wire::{
    self, GatewayId, Headers, HibernatingRequest, RequestId, ToClientTunnelMessageKind, ToGateway,
    ToRunner, ToServerTunnelMessageKind,
};

use super::SimReport;
use super::config::{Params, SimConfig};
use super::rng::Entropy;
use super::trace::{Time, Trace};

/// The gateway's id in every simulation.
const GATEWAY_ID: GatewayId = GatewayId([0x67, 0x77, 0x00, 0x01]);
/// Most violations collected before the run stops.
const MAX_VIOLATIONS: usize = 8;
/// Most steps of one run (a livelock guard).
const MAX_STEPS: u64 = 5_000_000;
/// Payload ids of actor → client messages have this bit set.
const ECHO_BIT: u64 = 1 << 63;

macro_rules! tr {
    ($w:expr, $($arg:tt)*) => {
        $w.trace.record($w.now, format_args!($($arg)*))
    };
}

fn route_id(r: usize, inc: u32) -> RouteId {
    RouteId(((r as u64) << 32) | u64::from(inc))
}

/// `(index, payload id)` of one message in a log.
type Entry = (MessageIndex, u64);

// -------------------------------------------------------------------------------------------
// Events
// -------------------------------------------------------------------------------------------

#[derive(Debug)]
enum Ev {
    /// A gateway frame reaches runner `r` (incarnation `inc`).
    ToRunner {
        r: usize,
        inc: u32,
        frame: Frame,
    },
    /// A runner frame reaches the gateway.
    ToGateway {
        r: usize,
        inc: u32,
        frame: Vec<u8>,
    },
    Connect {
        c: usize,
    },
    ClientSend {
        c: usize,
    },
    ClientClose {
        c: usize,
    },
    AppDecide {
        r: usize,
        inc: u32,
        socket: SocketId,
    },
    AppSend {
        r: usize,
        inc: u32,
        socket: SocketId,
    },
    AppClose {
        r: usize,
        inc: u32,
        socket: SocketId,
    },
    AppHibernate {
        r: usize,
        inc: u32,
        socket: SocketId,
    },
    /// A crash timed to hit a write in flight: the app of actor `a` (or its runner).
    CrashAtPersist {
        a: usize,
        r: usize,
        inc: u32,
        runner: bool,
    },
    /// The app drains its actor after a hand-back: the actor stops.
    Drain {
        a: usize,
        r: usize,
        inc: u32,
    },
    WriteDone {
        id: u64,
    },
    MetaDelete {
        a: usize,
        socket: SocketId,
    },
    RecordDone {
        c: usize,
        a: usize,
        upsert: bool,
        ok: bool,
    },
    Restore {
        a: usize,
        r: usize,
        inc: u32,
    },
    GwWake {
        c: usize,
        r: usize,
        inc: u32,
    },
    StoppedSignal {
        a: usize,
        r: usize,
        inc: u32,
    },
    CrashNoticed {
        r: usize,
        inc: u32,
    },
    Restart {
        r: usize,
    },
    Chaos(Chaos),
    EndChaos,
}

impl Ev {
    /// Events that do nothing once the chaos phase is over (they do not keep the world busy).
    fn inert_in_heal(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. }
                | Self::ClientSend { .. }
                | Self::ClientClose { .. }
                | Self::Chaos(_)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chaos {
    Sleep,
    AppCrash,
    RunnerCrash,
    Partition,
    ClockJump,
}

/// A queue entry ordered by `(at, seq)` only.
#[derive(Debug)]
struct Scheduled {
    at: Timestamp,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

// -------------------------------------------------------------------------------------------
// World state
// -------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    /// Not connected yet.
    Idle,
    /// Waiting for its actor to start before the gateway is asked to open.
    Waiting,
    /// `Gateway::open` called, no `Opened` yet.
    Opening,
    Open,
    Closed,
}

#[derive(Debug, Clone)]
struct Payload {
    pid: u64,
    data: Vec<u8>,
    binary: bool,
}

/// One client WebSocket connection (= one gateway request = one runner socket id).
#[derive(Debug)]
#[allow(clippy::struct_excessive_bools)] // independent facts about one connection
struct Conn {
    req: RequestId,
    socket: SocketId,
    actor: usize,
    state: ClientState,
    hibernatable: Option<bool>,
    /// What `client_message` accepted, in order.
    accepted: Vec<Entry>,
    to_send: u32,
    blocked: Option<Payload>,
    /// The app's committed delivery log (durable; survives every crash).
    committed: Vec<Entry>,
    /// The runner incarnation hosting the connection's live app session, if any.
    session: Option<(usize, u32)>,
    /// An app session was ever opened (a later `Open` for the same id is a zombie).
    ever_opened: bool,
    gw_close: Option<gateway::CloseReason>,
    runner_closes: Vec<runner::CloseReason>,
    /// Close frames (not hand-backs) runners published for this socket.
    runner_published: Vec<CloseFrame>,
    client_got: Option<CloseFrame>,
    app_sent: BTreeSet<u64>,
    /// The gateway asked for a wake (once per hibernation) that has not happened yet.
    wake_requested: bool,
    /// The gateway request is hibernating (as far as its actions tell).
    gw_hibernating: bool,
    /// A close for this connection was lost in transit (either way), or the gateway closed it
    /// while hibernating (it publishes nothing then), or a duplicated open recreated its
    /// socket after the close: the two sides may legitimately disagree on whether it lives.
    orphan_cause: Option<&'static str>,
    /// The first fault that touched this connection's path (a frame of it lost, its runner or
    /// app crashed, a clock jump, a failed record upsert, a full runner queue): a timeout
    /// close is explained only by one.
    disturbed: Option<&'static str>,
    /// The first lasting fault on its path (crash, clock jump, failed record upsert, full runner
    /// queue): explains a timeout whenever it happened.
    lasting: Option<&'static str>,
    /// The last transient fault on its path (a frame lost, reordered or duplicated): explains
    /// an ack timeout only if it came after the oldest unacked message was last sent.
    last_transient_at: Option<Timestamp>,
    /// A record upsert of this request failed at least once.
    record_failed: bool,
    /// A metadata write of its socket landed at least once.
    meta_written: bool,
    /// When each accepted message was accepted (parallel to `accepted`).
    accepted_at: Vec<Timestamp>,
    /// The last wake (which replays, and restarts the ack clock of, every pending message).
    last_wake_at: Timestamp,
    /// The app handed the socket back on this runner incarnation: only the actor's next start
    /// restores it (`Runner::hibernate`'s drain contract).
    handed_back_on: Option<(usize, u32)>,
    dirty: bool,
}

/// The app's in-memory state for one socket on one runner incarnation.
#[derive(Debug)]
struct Session {
    c: usize,
    zombie: bool,
    /// Accepted as hibernatable (restored sessions are).
    hibernatable: bool,
    /// The app died (actor crash): its memory is gone.
    dead: bool,
    /// Length of the connection's committed log when the session started.
    base: usize,
    /// Everything delivered in this session, in order.
    delivered: Vec<Entry>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Link {
    down_until: Timestamp,
    to_runner_at: Timestamp,
    to_gateway_at: Timestamp,
}

#[derive(Debug)]
struct RunnerSlot {
    engine: Option<Runner>,
    inc: u32,
    link: Link,
    sessions: BTreeMap<SocketId, Session>,
    dead_apps: BTreeSet<usize>,
    restart_pending: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ActorPhase {
    Asleep,
    Starting(usize, u32),
    Running(usize, u32),
    Stopping(usize, u32),
}

impl ActorPhase {
    fn location(self) -> Option<(usize, u32)> {
        match self {
            Self::Asleep => None,
            Self::Starting(r, i) | Self::Running(r, i) | Self::Stopping(r, i) => Some((r, i)),
        }
    }
}

#[derive(Debug)]
struct ActorSim {
    id: String,
    phase: ActorPhase,
    start_wanted: bool,
    pending_opens: Vec<usize>,
    conns: Vec<usize>,
    /// FIFO clock of the actor's storage: operations complete in issue order.
    storage_at: Timestamp,
    meta: BTreeMap<SocketId, PersistedSocket>,
}

#[derive(Debug)]
struct Write {
    r: usize,
    inc: u32,
    a: usize,
    socket: SocketId,
    /// `None` for a zombie session (its log is not the connection's).
    c: Option<usize>,
    server_index: MessageIndex,
    client_index: MessageIndex,
    /// The session's start in the committed log, and everything it delivered up to
    /// `server_index`.
    base: usize,
    entries: Vec<Entry>,
    ok: bool,
    /// Decided by a crash: landed or lost already; the result reported is a failure.
    resolved: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Chaos,
    /// Heal: faults off, no new client data; wait until every buffer drains.
    Drain,
    /// Heal: every actor goes to sleep.
    Sleeping,
    /// Heal: every actor starts again and every hibernating request wakes.
    Waking,
    Done,
}

#[derive(Debug, Default)]
struct Totals {
    delivered: u64,
    duplicates: u64,
    gaps_healed: u64,
    gap_closes: u64,
    reacks: u64,
    restored: u64,
}

pub(crate) struct World {
    seed: u64,
    p: Params,
    rng: Entropy,
    now: Timestamp,
    jump_until: Timestamp,
    seq: u64,
    steps: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    gw: Gateway,
    runners: Vec<RunnerSlot>,
    actors: Vec<ActorSim>,
    conns: Vec<Conn>,
    by_req: BTreeMap<RequestId, usize>,
    payloads: BTreeMap<u64, (usize, MessageIndex)>,
    next_pid: u64,
    writes: BTreeMap<u64, Write>,
    next_write: u64,
    records: BTreeMap<RequestId, (usize, Timestamp)>,
    record_at: Timestamp,
    stage: Stage,
    heal_deadline: Timestamp,
    dirty: Vec<usize>,
    faults: BTreeMap<&'static str, u64>,
    closes: BTreeMap<String, u64>,
    totals: Totals,
    counts: BTreeMap<&'static str, u64>,
    violations: Vec<String>,
    trace: Trace,
    /// A deliberate defect in the simulated app or orchestrator, to prove the checks fire.
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
    /// The orchestrator ignores wake requests.
    IgnoreWakes,
    /// The network silently loses every 50th frame without telling the checker.
    HiddenLoss,
}

impl World {
    pub(crate) fn new(seed: u64, cfg: &SimConfig, mut rng: Entropy) -> Self {
        let p = Params::draw(cfg, &mut rng);
        let start = Timestamp::from_secs(1);
        let gw = Gateway::new(p.gateway.clone(), GATEWAY_ID, start)
            .expect("drawn gateway configs are valid: every drawn value is within its bounds");
        let runners = (0..p.runners)
            .map(|_| RunnerSlot {
                engine: Some(
                    Runner::new(p.runner.clone(), start)
                        .expect("drawn runner configs are valid: every value is within bounds"),
                ),
                inc: 0,
                link: Link::default(),
                sessions: BTreeMap::new(),
                dead_apps: BTreeSet::new(),
                restart_pending: false,
            })
            .collect();
        let actors = (0..p.actors)
            .map(|a| ActorSim {
                id: format!("actor-{a}"),
                phase: ActorPhase::Asleep,
                start_wanted: false,
                pending_opens: Vec::new(),
                conns: Vec::new(),
                storage_at: Timestamp::ZERO,
                meta: BTreeMap::new(),
            })
            .collect();
        let heal_deadline = start + Duration::from_micros(p.chaos_us) + cfg.heal_budget;
        Self {
            seed,
            p,
            rng,
            now: start,
            jump_until: Timestamp::ZERO,
            seq: 0,
            steps: 0,
            queue: BinaryHeap::new(),
            gw,
            runners,
            actors,
            conns: Vec::new(),
            by_req: BTreeMap::new(),
            payloads: BTreeMap::new(),
            next_pid: 1,
            writes: BTreeMap::new(),
            next_write: 0,
            records: BTreeMap::new(),
            record_at: Timestamp::ZERO,
            stage: Stage::Chaos,
            heal_deadline,
            dirty: Vec::new(),
            faults: BTreeMap::new(),
            closes: BTreeMap::new(),
            totals: Totals::default(),
            counts: BTreeMap::new(),
            violations: Vec::new(),
            trace: Trace::new(cfg.trace_capacity),
            #[cfg(test)]
            sabotage: None,
        }
    }

    // ---------------------------------------------------------------------------------------
    // Driver
    // ---------------------------------------------------------------------------------------

    pub(crate) fn run(mut self) -> (SimReport, Vec<String>) {
        tr!(self, "seed {}", self.seed);
        for line in self.p.describe() {
            tr!(self, "{line}");
        }
        self.setup();
        while self.stage != Stage::Done && self.violations.is_empty() {
            if !self.step() {
                break;
            }
        }
        self.finish()
    }

    fn setup(&mut self) {
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
                accepted: Vec::new(),
                to_send,
                blocked: None,
                committed: Vec::new(),
                session: None,
                ever_opened: false,
                gw_close: None,
                runner_closes: Vec::new(),
                runner_published: Vec::new(),
                client_got: None,
                app_sent: BTreeSet::new(),
                wake_requested: false,
                gw_hibernating: false,
                orphan_cause: None,
                disturbed: None,
                lasting: None,
                last_transient_at: None,
                record_failed: false,
                meta_written: false,
                accepted_at: Vec::new(),
                last_wake_at: Timestamp::ZERO,
                handed_back_on: None,
                dirty: false,
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

    fn sched(&mut self, delay_us: u64, ev: Ev) {
        let at = self.now + Duration::from_micros(delay_us);
        self.sched_at(at, ev);
    }

    fn sched_at(&mut self, at: Timestamp, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            ev,
        }));
    }

    fn fault(&mut self, kind: &'static str) {
        *self.faults.entry(kind).or_insert(0) += 1;
    }

    fn count(&mut self, kind: &'static str) {
        *self.counts.entry(kind).or_insert(0) += 1;
    }

    fn violation(&mut self, msg: String) {
        tr!(self, "VIOLATION: {msg}");
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push(msg);
        }
    }

    fn chaos(&self) -> bool {
        self.stage == Stage::Chaos
    }

    /// One step: the earliest engine timer or queued event. Returns `false` when the run must
    /// stop.
    fn step(&mut self) -> bool {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            self.violation(format!("more than {MAX_STEPS} steps: livelock"));
            return false;
        }
        let next_ev = self.queue.peek().map(|Reverse(s)| s.at);
        let next_gw = self.gw.poll_timeout();
        let mut next_rn: Option<(Timestamp, usize)> = None;
        for (r, slot) in self.runners.iter().enumerate() {
            if let Some(t) = slot.engine.as_ref().and_then(Runner::poll_timeout)
                && next_rn.is_none_or(|(best, _)| t < best)
            {
                next_rn = Some((t, r));
            }
        }
        let candidates = [next_gw, next_rn.map(|(t, _)| t), next_ev];
        let Some(t) = candidates.iter().flatten().min().copied() else {
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
        let t = t.max(self.jump_until).max(self.now);
        if self.stage != Stage::Chaos && t > self.heal_deadline {
            let why = self.not_quiescent_reason();
            self.violation(format!(
                "liveness: no quiescence within the heal budget (stage {:?}): {why}",
                self.stage
            ));
            return false;
        }
        self.now = t;
        if next_gw.is_some_and(|g| g <= t && Some(g) == candidates.iter().flatten().min().copied())
        {
            self.gw.handle_timeout(t);
            self.drain_gw();
            if let Some(next) = self.gw.poll_timeout()
                && next <= t
            {
                self.violation(format!(
                    "gateway poll_timeout {} not after handled now {}",
                    Time(next),
                    Time(t)
                ));
            }
        } else if let Some((rt, r)) = next_rn
            && Some(rt) == candidates.iter().flatten().min().copied()
        {
            if let Some(e) = self.runners[r].engine.as_mut() {
                e.handle_timeout(t);
            }
            self.drain_runner(r);
            if let Some(next) = self.runners[r]
                .engine
                .as_ref()
                .and_then(Runner::poll_timeout)
                && next <= t
            {
                self.violation(format!(
                    "runner{r} poll_timeout {} not after handled now {}",
                    Time(next),
                    Time(t)
                ));
            }
        } else if let Some(Reverse(s)) = self.queue.pop() {
            self.handle(s.ev);
        }
        self.check_step();
        if self.stage != Stage::Chaos && self.violations.is_empty() {
            self.heal_progress();
        }
        true
    }

    // ---------------------------------------------------------------------------------------
    // Event handlers
    // ---------------------------------------------------------------------------------------

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::ToRunner { r, inc, frame } => self.deliver_to_runner(r, inc, &frame),
            Ev::ToGateway { r, inc, frame } => self.deliver_to_gateway(r, inc, &frame),
            Ev::Connect { c } => self.connect(c),
            Ev::ClientSend { c } => self.client_send(c),
            Ev::ClientClose { c } => self.client_close(c),
            Ev::AppDecide { r, inc, socket } => self.app_decide(r, inc, socket),
            Ev::AppSend { r, inc, socket } => self.app_send(r, inc, socket),
            Ev::AppClose { r, inc, socket } => self.app_close(r, inc, socket),
            Ev::AppHibernate { r, inc, socket } => self.app_hibernate(r, inc, socket),
            Ev::CrashAtPersist { a, r, inc, runner } => {
                if self.chaos() && self.actors[a].phase == ActorPhase::Running(r, inc) {
                    if runner {
                        self.crash_runner(r);
                    } else {
                        self.app_crash(a);
                    }
                }
            }
            Ev::Drain { a, r, inc } => {
                if self.actors[a].phase == ActorPhase::Running(r, inc) {
                    tr!(self, "app@runner{r}: drains {}", self.actors[a].id);
                    self.sleep_actor(a);
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
            Ev::RecordDone { c, a, upsert, ok } => self.record_done(c, a, upsert, ok),
            Ev::Restore { a, r, inc } => self.restore(a, r, inc),
            Ev::GwWake { c, r, inc } => self.gw_wake(c, r, inc),
            Ev::StoppedSignal { a, r, inc } => self.stopped_signal(a, r, inc),
            Ev::CrashNoticed { r, inc } => self.crash_noticed(r, inc),
            Ev::Restart { r } => self.restart(r),
            Ev::Chaos(kind) => self.chaos_event(kind),
            Ev::EndChaos => {
                tr!(self, "=== heal phase: faults off, no new client data ===");
                self.stage = Stage::Drain;
            }
        }
    }

    fn runner_alive(&self, r: usize, inc: u32) -> bool {
        self.runners
            .get(r)
            .is_some_and(|s| s.inc == inc && s.engine.is_some())
    }

    // ---- network ------------------------------------------------------------------------

    /// Delivery time of a message on a link under the seed's faults; `None` if it is lost.
    fn transit(&mut self, r: usize, to_runner: bool) -> (Vec<Timestamp>, bool) {
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

    fn send_to_runner(&mut self, r: usize, inc: u32, frame: &Frame, close_of: Option<usize>) {
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

    fn send_to_gateway(&mut self, r: usize, inc: u32, frame: &[u8], close_of: Option<usize>) {
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

    fn deliver_to_runner(&mut self, r: usize, inc: u32, frame: &Frame) {
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

    fn deliver_to_gateway(&mut self, r: usize, inc: u32, frame: &[u8]) {
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

    // ---- gateway actions ----------------------------------------------------------------

    fn drain_gw(&mut self) {
        while let Some(action) = self.gw.poll_action() {
            self.on_gw_action(action);
        }
    }

    #[allow(clippy::too_many_lines)] // one arm per action
    fn on_gw_action(&mut self, action: gateway::Action) {
        use gateway::Action as A;
        match action {
            A::Publish { route, frame, .. } => {
                let r = usize::try_from(route.0 >> 32).unwrap_or(usize::MAX);
                let inc = u32::try_from(route.0 & 0xffff_ffff).unwrap_or(u32::MAX);
                if r >= self.runners.len() {
                    self.violation(format!("gateway published to unknown route {route:?}"));
                    return;
                }
                tr!(self, "gw → runner{r}.{inc}: {}", describe_to_runner(&frame));
                let close_of =
                    close_to_runner(&frame).and_then(|req| self.by_req.get(&req).copied());
                self.send_to_runner(r, inc, &frame, close_of);
            }
            A::SendToClient {
                request_id,
                data,
                binary,
            } => {
                let Some(&c) = self.by_req.get(&request_id) else {
                    self.violation(format!("SendToClient for unknown request {request_id}"));
                    return;
                };
                let pid = parse_pid(&data, binary);
                tr!(self, "client{c} ← gw: msg {}", PidFmt(pid));
                match pid {
                    Some(pid) if self.conns[c].app_sent.contains(&pid) => {
                        self.count("client_received");
                    }
                    _ => self.violation(format!(
                        "client{c} received a message its app never sent on this connection: {}",
                        PidFmt(pid)
                    )),
                }
            }
            A::CloseClient { request_id, frame } => {
                if let Some(&c) = self.by_req.get(&request_id) {
                    tr!(self, "client{c} ← gw: close {frame:?}");
                    if self.conns[c].client_got.is_some() {
                        self.violation(format!("client{c} got two close frames"));
                    }
                    self.conns[c].client_got = Some(frame);
                }
            }
            A::Opened {
                request_id,
                hibernatable,
            } => {
                let Some(&c) = self.by_req.get(&request_id) else {
                    return;
                };
                tr!(self, "gw: opened conn{c} hibernatable={hibernatable}");
                let conn = &mut self.conns[c];
                if conn.state != ClientState::Opening {
                    let state = conn.state;
                    self.violation(format!("Opened for conn{c} in client state {state:?}"));
                    return;
                }
                conn.state = ClientState::Open;
                conn.hibernatable = Some(hibernatable);
                let gap = self.rng.range(0, self.p.send_gap_us);
                self.sched(gap, Ev::ClientSend { c });
                if self.rng.chance(self.p.client_close_ppm) {
                    let at = self.rng.range(0, self.p.chaos_us);
                    self.sched(at, Ev::ClientClose { c });
                }
            }
            A::Hibernated { request_id } => {
                tr!(self, "gw: hibernated [{request_id}]");
                self.count("hibernations");
                if let Some(&c) = self.by_req.get(&request_id) {
                    self.conns[c].gw_hibernating = true;
                }
            }
            A::RequestWake {
                request_id,
                actor_id,
            } => {
                tr!(self, "gw: request wake [{request_id}] {actor_id}");
                #[cfg(test)]
                if self.sabotage == Some(Sabotage::IgnoreWakes) {
                    return;
                }
                if let Some(&c) = self.by_req.get(&request_id) {
                    self.conns[c].wake_requested = true;
                    self.want_wake(c);
                }
            }
            A::UpsertHibernatingRecord { request_id, .. } => {
                self.record_op(request_id, true);
            }
            A::DeleteHibernatingRecord { request_id, .. } => {
                self.record_op(request_id, false);
            }
            A::ClientWritable { request_id } => {
                if let Some(&c) = self.by_req.get(&request_id) {
                    tr!(self, "client{c} ← gw: writable");
                    self.sched(0, Ev::ClientSend { c });
                }
            }
            A::Closed { request_id, reason } => self.gw_closed(request_id, reason),
        }
    }

    fn gw_closed(&mut self, request_id: RequestId, reason: gateway::CloseReason) {
        let Some(&c) = self.by_req.get(&request_id) else {
            self.violation(format!("Closed for unknown request {request_id}"));
            return;
        };
        tr!(self, "gw: closed conn{c}: {reason:?}");
        *self
            .closes
            .entry(format!("gateway {}", gw_reason_name(&reason)))
            .or_insert(0) += 1;
        if self.stage != Stage::Chaos {
            *self
                .closes
                .entry(format!("heal: gateway {}", gw_reason_name(&reason)))
                .or_insert(0) += 1;
        }
        if self.gw.request(request_id).is_some() {
            self.violation(format!(
                "conn{c}: request still in the gateway after Closed"
            ));
        }
        let conn = &mut self.conns[c];
        if conn.gw_close.is_some() {
            self.violation(format!("conn{c}: two gateway Closed"));
            return;
        }
        conn.state = ClientState::Closed;
        conn.blocked = None;
        if conn.gw_hibernating {
            conn.orphan_cause
                .get_or_insert("closed while hibernating (no close sent)");
        }
        // The runner's close this one echoes must exist (mapped through the close frame).
        let echoed = match &reason {
            gateway::CloseReason::RunnerClosed(f) | gateway::CloseReason::ClosedBeforeOpen(f) => {
                Some(f.clone())
            }
            _ => None,
        };
        let timeout = matches!(
            reason,
            gateway::CloseReason::PingTimeout
                | gateway::CloseReason::OpenTimeout
                | gateway::CloseReason::Collected(_)
        );
        // An ack timeout needs a lasting fault, or a transient one after the oldest unacked
        // message was last sent (accepted, or replayed by a wake).
        let ack_unexplained = match &reason {
            gateway::CloseReason::Collected(GcReason::AckTimeout { first, .. }) => {
                let sent = conn
                    .accepted
                    .iter()
                    .rposition(|(i, _)| i == first)
                    .and_then(|pos| conn.accepted_at.get(pos).copied())
                    .unwrap_or(Timestamp::ZERO)
                    .max(conn.last_wake_at);
                conn.lasting.is_none()
                    && conn.orphan_cause.is_none()
                    && conn.last_transient_at.is_none_or(|t| t < sent)
            }
            // A wake or the record refresh does not travel the tunnel: only a lasting fault
            // (crash, clock jump, failed upsert) explains missing it.
            gateway::CloseReason::Collected(
                GcReason::WakeTimeout | GcReason::HibernationTimeout,
            ) => conn.lasting.is_none(),
            _ => false,
        };
        conn.gw_close = Some(reason);
        let undisturbed = conn.disturbed.is_none() || ack_unexplained;
        if let Some(f) = echoed
            && !conn.runner_published.contains(&f)
        {
            self.violation(format!(
                "conn{c}: gateway reports a runner close {f:?} no runner published"
            ));
        }
        if timeout && undisturbed {
            self.violation(format!(
                "liveness: conn{c} was collected by a timeout although no fault touched its path"
            ));
        }
    }

    // ---- runner actions -------------------------------------------------------------------

    fn drain_runner(&mut self, r: usize) {
        // Sockets closed in this batch; one re-announced later in the batch (a queued stale open
        // processed after the restore closed it) is a new socket.
        let mut closed: Vec<SocketId> = Vec::new();
        while let Some(action) = self.runners[r]
            .engine
            .as_mut()
            .and_then(Runner::poll_action)
        {
            match &action {
                runner::Action::Closed { socket, .. } => closed.push(*socket),
                runner::Action::Open { socket, .. } | runner::Action::Restored { socket, .. } => {
                    closed.retain(|s| s != socket);
                }
                _ => {}
            }
            self.on_runner_action(r, action);
        }
        // Invariant 3: no socket left in a runner after its Closed.
        for socket in closed {
            if self.runners[r]
                .engine
                .as_ref()
                .and_then(|e| e.socket(socket))
                .is_some()
            {
                self.violation(format!(
                    "socket {} still in runner{r} after its Closed",
                    socket.request_id
                ));
            }
        }
    }

    fn conn_of(&mut self, socket: SocketId) -> Option<usize> {
        let c = self.by_req.get(&socket.request_id).copied();
        if c.is_none() || socket.gateway_id != GATEWAY_ID {
            self.violation(format!(
                "runner action for a socket no client opened: {socket:?}"
            ));
            return None;
        }
        c
    }

    #[allow(clippy::too_many_lines)]
    fn on_runner_action(&mut self, r: usize, action: runner::Action) {
        use runner::Action as A;
        let inc = self.runners[r].inc;
        match action {
            A::Publish { gateway_id, frame } => {
                if gateway_id != GATEWAY_ID {
                    self.violation(format!(
                        "runner{r} published to unknown gateway {gateway_id}"
                    ));
                    return;
                }
                let mut close_of = None;
                if let Ok((_, ToGateway::TunnelMessage(m))) =
                    wire::decode_versioned::<ToGateway>(&frame, &wire::DecodeLimits::default())
                    && let ToServerTunnelMessageKind::WebSocketClose(close) = &m.kind
                    && !close.hibernate
                    && let Some(&c) = self.by_req.get(&m.message_id.request_id)
                {
                    self.conns[c].runner_published.push(CloseFrame {
                        code: close.code,
                        reason: close.reason.clone(),
                    });
                    close_of = Some(c);
                }
                tr!(self, "runner{r} → gw: {}", describe_to_gateway(&frame));
                self.send_to_gateway(r, inc, &frame, close_of);
            }
            A::Open { socket, index, .. } => {
                let Some(c) = self.conn_of(socket) else {
                    return;
                };
                // A second open of the connection is a copy of its first (the network duplicated
                // it). If the gateway already closed the request, the socket it creates is a
                // zombie nobody will talk to (its commits are kept apart). If the request is live
                // (the runner's close of the first socket was lost), it is the gateway's peer
                // now and continues the connection.
                let reopen = self.conns[c].ever_opened;
                let zombie = reopen && self.conns[c].gw_close.is_some();
                tr!(
                    self,
                    "runner{r}: open conn{c} index {}{}",
                    index.get(),
                    if zombie {
                        " (zombie: stale open)"
                    } else if reopen {
                        " (reopened by a stale open)"
                    } else {
                        ""
                    }
                );
                if reopen {
                    self.count(if zombie {
                        "zombie_sockets"
                    } else {
                        "reopened_sockets"
                    });
                    self.conns[c].orphan_cause = Some("socket recreated by a stale open");
                } else if index != MessageIndex::ZERO {
                    self.violation(format!(
                        "conn{c}: open announced with index {}",
                        index.get()
                    ));
                }
                self.conns[c].ever_opened = true;
                self.new_session(r, c, socket, zombie, false);
                let d = self.rng.range(0, self.p.app_delay_max_us);
                self.sched(d, Ev::AppDecide { r, inc, socket });
            }
            A::Restored {
                socket,
                actor_id,
                server_index,
            } => {
                let Some(c) = self.conn_of(socket) else {
                    return;
                };
                tr!(
                    self,
                    "runner{r}: restored conn{c} at {}",
                    server_index.get()
                );
                let a = self.conns[c].actor;
                if self.actors[a].id != actor_id {
                    self.violation(format!("conn{c} restored under {actor_id}"));
                }
                let stored = self.actors[a].meta.get(&socket).map(|m| m.server_index);
                if stored != Some(server_index) {
                    self.violation(format!(
                        "conn{c}: restored at {} but storage holds {stored:?}",
                        server_index.get()
                    ));
                }
                let log_end = self.conns[c]
                    .committed
                    .last()
                    .map_or(MessageIndex::ZERO, |e| e.0);
                if log_end != server_index {
                    self.violation(format!(
                        "conn{c}: restored at {} but the committed log ends at {}",
                        server_index.get(),
                        log_end.get()
                    ));
                }
                self.conns[c].ever_opened = true;
                self.conns[c].handed_back_on = None;
                self.new_session(r, c, socket, false, true);
            }
            A::Message {
                socket,
                index,
                data,
                binary,
            } => self.app_message(r, socket, index, &data, binary),
            A::Persist {
                socket,
                actor_id,
                server_index,
                client_index,
            } => self.app_persist(r, socket, &actor_id, server_index, client_index),
            A::DeleteMetadata { socket, actor_id } => {
                let Some(a) = self.actor_index(&actor_id) else {
                    return;
                };
                let at = self.storage_time(a);
                tr!(self, "runner{r}: delete meta [{}]", socket.request_id);
                self.sched_at(at, Ev::MetaDelete { a, socket });
            }
            A::Closed { socket, reason } => self.runner_closed(r, socket, reason),
            A::ActorStopped { actor_id } => {
                let Some(a) = self.actor_index(&actor_id) else {
                    return;
                };
                tr!(self, "runner{r}: actor {actor_id} stopped");
                if self.actors[a].phase != ActorPhase::Stopping(r, inc) {
                    let phase = self.actors[a].phase;
                    self.violation(format!(
                        "{actor_id} stopped on runner{r} in phase {phase:?}"
                    ));
                }
                // The app's memory for the actor is gone.
                let slot = &mut self.runners[r];
                slot.dead_apps.remove(&a);
                let ended: Vec<SocketId> = slot
                    .sessions
                    .iter()
                    .filter(|(_, s)| self.conns[s.c].actor == a)
                    .map(|(id, _)| *id)
                    .collect();
                for id in ended {
                    self.end_session(r, id);
                }
                let d = self.rng.range(0, self.p.signal_max_us);
                self.sched(d, Ev::StoppedSignal { a, r, inc });
            }
        }
    }

    fn actor_index(&mut self, actor_id: &str) -> Option<usize> {
        let a = self.actors.iter().position(|a| a.id == actor_id);
        if a.is_none() {
            self.violation(format!("runner named unknown actor {actor_id}"));
        }
        a
    }

    fn new_session(&mut self, r: usize, c: usize, socket: SocketId, zombie: bool, restored: bool) {
        let session = Session {
            c,
            zombie,
            hibernatable: restored,
            dead: false,
            base: self.conns[c].committed.len(),
            delivered: Vec::new(),
        };
        if let Some(old) = self.runners[r].sessions.insert(socket, session) {
            self.violation(format!(
                "conn{c}: runner{r} announced a socket it already holds (session of conn{})",
                old.c
            ));
        }
        if !zombie {
            self.conns[c].session = Some((r, self.runners[r].inc));
            self.mark(c);
        }
    }

    fn end_session(&mut self, r: usize, socket: SocketId) {
        if let Some(s) = self.runners[r].sessions.remove(&socket) {
            let inc = self.runners[r].inc;
            if self.conns[s.c].session == Some((r, inc)) && !s.zombie {
                self.conns[s.c].session = None;
            }
        }
    }

    fn disturb(&mut self, c: usize, cause: &'static str) {
        let now = self.now;
        let conn = &mut self.conns[c];
        conn.disturbed.get_or_insert(cause);
        if cause.starts_with("frame") {
            conn.last_transient_at = Some(now);
        } else {
            conn.lasting.get_or_insert(cause);
        }
    }

    fn disturb_req(&mut self, req: Option<RequestId>, cause: &'static str) {
        if let Some(&c) = req.as_ref().and_then(|r| self.by_req.get(r)) {
            self.disturb(c, cause);
        }
    }

    fn mark(&mut self, c: usize) {
        if !self.conns[c].dirty {
            self.conns[c].dirty = true;
            self.dirty.push(c);
        }
    }

    fn runner_closed(&mut self, r: usize, socket: SocketId, reason: runner::CloseReason) {
        let Some(c) = self.conn_of(socket) else {
            return;
        };
        tr!(self, "runner{r}: closed conn{c}: {reason:?}");
        *self
            .closes
            .entry(format!("runner {}", runner_reason_name(&reason)))
            .or_insert(0) += 1;
        let zombie = self.runners[r]
            .sessions
            .get(&socket)
            .is_some_and(|s| s.zombie);
        self.end_session(r, socket);
        if let runner::CloseReason::GatewayClosed(f) = &reason {
            // The runner echoes the gateway's close: the gateway must have closed the request
            // with a reason whose runner frame is exactly this one.
            let expected = self.conns[c]
                .gw_close
                .as_ref()
                .and_then(gateway::CloseReason::runner_frame);
            if expected.as_ref() != Some(f) {
                let gw = self.conns[c].gw_close.clone();
                self.violation(format!(
                    "conn{c}: runner reports gateway close {f:?}, gateway closed with {gw:?}"
                ));
            }
        }
        if reason == runner::CloseReason::MessageIndexSkip && self.conns[c].disturbed.is_none() {
            self.violation(format!(
                "conn{c}: a gap in the gateway's indices although no frame of it was lost, reordered or duplicated"
            ));
        }
        if !zombie {
            if reason == runner::CloseReason::Hibernated {
                self.conns[c].handed_back_on = Some((r, self.runners[r].inc));
            }
            self.conns[c].runner_closes.push(reason);
        }
    }

    // ---- app ---------------------------------------------------------------------------------

    fn app_decide(&mut self, r: usize, inc: u32, socket: SocketId) {
        if !self.runner_alive(r, inc) {
            return;
        }
        let Some(s) = self.runners[r].sessions.get(&socket) else {
            return;
        };
        let c = s.c;
        let now = self.now;
        let result = if self.rng.chance(self.p.reject_ppm) {
            let frame = if self.rng.below(2) == 0 {
                KnownClose::ServerError.frame()
            } else {
                CloseFrame::new(4003, "rejected by the app")
            };
            tr!(self, "app@runner{r}: reject conn{c} {frame:?}");
            self.runners[r]
                .engine
                .as_mut()
                .map(|e| e.reject(now, socket, frame))
        } else {
            let hib = self.rng.chance(self.p.hibernatable_ppm);
            tr!(self, "app@runner{r}: accept conn{c} hibernatable={hib}");
            if let Some(s) = self.runners[r].sessions.get_mut(&socket) {
                s.hibernatable = hib;
            }
            self.runners[r]
                .engine
                .as_mut()
                .map(|e| e.accept(now, socket, hib))
        };
        if let Some(Err(e)) = result {
            tr!(self, "app@runner{r}: conn{c}: {e}");
        }
        self.drain_runner(r);
    }

    fn app_message(
        &mut self,
        r: usize,
        socket: SocketId,
        index: MessageIndex,
        data: &[u8],
        binary: bool,
    ) {
        let Some(c) = self.conn_of(socket) else {
            return;
        };
        let pid = parse_pid(data, binary);
        tr!(
            self,
            "app@runner{r}: conn{c} msg #{} {}",
            index.get(),
            PidFmt(pid)
        );
        self.totals.delivered += 1;
        let binding = pid.and_then(|p| self.payloads.get(&p).copied());
        if binding != Some((c, index)) {
            self.violation(format!(
                "conn{c}: delivered #{} {} which the gateway accepted as {binding:?}",
                index.get(),
                PidFmt(pid)
            ));
            return;
        }
        let Some(pid) = pid else { return };
        let inc = self.runners[r].inc;
        let Some(s) = self.runners[r].sessions.get_mut(&socket) else {
            self.violation(format!(
                "conn{c}: message delivered to a socket the app never saw"
            ));
            return;
        };
        s.delivered.push((index, pid));
        #[cfg(test)]
        if self.sabotage == Some(Sabotage::DoubleApply) {
            s.delivered.push((index, pid));
        }
        let zombie = s.zombie;
        if zombie {
            self.count("zombie_deliveries");
        } else {
            self.mark(c);
        }
        if self.chaos() {
            if self.rng.chance(self.p.echo_ppm) {
                let d = self.rng.range(0, self.p.app_delay_max_us);
                self.sched(d, Ev::AppSend { r, inc, socket });
            }
            if self.rng.chance(self.p.app_close_ppm) {
                let d = self.rng.range(0, self.p.app_delay_max_us);
                self.sched(d, Ev::AppClose { r, inc, socket });
            }
            if self.rng.chance(self.p.app_hibernate_ppm) {
                let d = self.rng.range(0, self.p.app_delay_max_us);
                self.sched(d, Ev::AppHibernate { r, inc, socket });
            }
        }
    }

    fn app_persist(
        &mut self,
        r: usize,
        socket: SocketId,
        actor_id: &str,
        server_index: MessageIndex,
        client_index: MessageIndex,
    ) {
        let Some(c) = self.conn_of(socket) else {
            return;
        };
        let Some(a) = self.actor_index(actor_id) else {
            return;
        };
        let inc = self.runners[r].inc;
        let dead = self.runners[r].dead_apps.contains(&a);
        let Some(s) = self.runners[r].sessions.get_mut(&socket) else {
            self.violation(format!("conn{c}: persist for a socket the app never saw"));
            return;
        };
        // The write commits everything delivered so far with the index, atomically.
        let entries = s.delivered.clone();
        let base = s.base;
        let zombie = s.zombie;
        if let Some(last) = entries.last()
            && last.0 != server_index
        {
            self.violation(format!(
                "conn{c}: persist of index {} but the last delivered message is #{}",
                server_index.get(),
                last.0.get()
            ));
        }
        let ok = dead || !self.chaos() || !self.rng.chance(self.p.persist_fail_ppm);
        let id = self.next_write;
        self.next_write += 1;
        tr!(
            self,
            "app@runner{r}: persist conn{c} at {} (+{} msgs){}",
            server_index.get(),
            entries.len(),
            if dead {
                " — app dead, fails"
            } else if ok {
                ""
            } else {
                " — will fail"
            }
        );
        self.writes.insert(
            id,
            Write {
                r,
                inc,
                a,
                socket,
                c: (!zombie).then_some(c),
                server_index,
                client_index,
                base,
                entries,
                ok,
                resolved: dead,
            },
        );
        if !ok {
            self.fault("persist_failure");
        }
        let at = if dead {
            self.now + Duration::from_micros(self.rng.range(0, self.p.app_delay_max_us))
        } else {
            self.storage_time(a)
        };
        if self.chaos() && !dead && self.rng.chance(self.p.crash_at_persist_ppm) {
            // While the write is in flight (scheduled first, so it also precedes a completion
            // at the same instant): the write lands or is lost.
            let runner = self.rng.below(2) == 0;
            let span = at.as_micros().saturating_sub(self.now.as_micros());
            let crash_at = self.now + Duration::from_micros(self.rng.range(0, span));
            self.sched_at(crash_at, Ev::CrashAtPersist { a, r, inc, runner });
        }
        self.sched_at(at, Ev::WriteDone { id });
    }

    /// When an operation issued now on the actor's storage completes (FIFO per actor).
    fn storage_time(&mut self, a: usize) -> Timestamp {
        let d = self.rng.range(0, self.p.storage_max_us);
        let at = (self.now + Duration::from_micros(d)).max(self.actors[a].storage_at);
        self.actors[a].storage_at = at;
        at
    }

    fn apply_write(&mut self, w: &Write) {
        let actor = &mut self.actors[w.a];
        actor.meta.insert(
            w.socket,
            PersistedSocket {
                socket: w.socket,
                server_index: w.server_index,
                client_index: w.client_index,
                path: "/ws".into(),
                headers: Headers::new(),
            },
        );
        if let Some(c) = w.c {
            self.conns[c].meta_written = true;
            // Log := log[..base] ++ entries; never shrinks (an older write landing after a newer
            // one leaves the log alone; its index would show at the next restore).
            let log = &mut self.conns[c].committed;
            let have = log.len().saturating_sub(w.base);
            if log.len() < w.base {
                let msg = format!(
                    "conn{c}: a write from a session starting at {} lands on a log of {}",
                    w.base,
                    log.len()
                );
                self.violation(msg);
            } else if w.entries.len() > have {
                #[cfg(test)]
                if self.sabotage == Some(Sabotage::IndexWithoutLog) {
                    return;
                }
                log.extend_from_slice(&w.entries[have..]);
            }
            self.mark(c);
        } else {
            *self.counts.entry("zombie_commits").or_insert(0) += w.entries.len() as u64;
        }
    }

    fn write_done(&mut self, id: u64) {
        let Some(w) = self.writes.remove(&id) else {
            return;
        };
        let applied = !w.resolved && w.ok;
        if applied {
            self.apply_write(&w);
        }
        if !self.runner_alive(w.r, w.inc) {
            return;
        }
        let now = self.now;
        let c = w.c.map_or(usize::MAX, |c| c);
        let result = self.runners[w.r].engine.as_mut().map(|e| {
            if applied {
                e.persisted(now, w.socket, w.server_index)
            } else {
                e.persist_failed(now, w.socket, w.server_index)
            }
        });
        tr!(
            self,
            "app@runner{}: persist conn{c} at {} {} {:?}",
            w.r,
            w.server_index.get(),
            if applied { "done" } else { "failed" },
            result
        );
        self.drain_runner(w.r);
    }

    fn app_send(&mut self, r: usize, inc: u32, socket: SocketId) {
        if !self.runner_alive(r, inc) {
            return;
        }
        let Some(c) = self.runners[r].sessions.get(&socket).map(|s| s.c) else {
            return;
        };
        let pid = ECHO_BIT | self.next_pid;
        self.next_pid += 1;
        let binary = self.rng.below(2) == 0;
        let data = make_payload(pid, binary, 24);
        let now = self.now;
        let result = self.runners[r]
            .engine
            .as_mut()
            .map(|e| e.send(now, socket, &data, binary));
        if let Some(Ok(_)) = result {
            self.conns[c].app_sent.insert(pid);
        }
        tr!(
            self,
            "app@runner{r}: send to conn{c} {} {:?}",
            PidFmt(Some(pid)),
            result
        );
        self.drain_runner(r);
    }

    fn app_close(&mut self, r: usize, inc: u32, socket: SocketId) {
        if !self.runner_alive(r, inc) {
            return;
        }
        let now = self.now;
        let frame = CloseFrame::new(4000, "app close");
        let result = self.runners[r]
            .engine
            .as_mut()
            .map(|e| e.close(now, socket, frame));
        tr!(
            self,
            "app@runner{r}: close [{}] {:?}",
            socket.request_id,
            result
        );
        self.drain_runner(r);
    }

    fn app_hibernate(&mut self, r: usize, inc: u32, socket: SocketId) {
        if !self.runner_alive(r, inc) {
            return;
        }
        let now = self.now;
        let result = self.runners[r]
            .engine
            .as_mut()
            .map(|e| e.hibernate(now, socket));
        tr!(
            self,
            "app@runner{r}: hand back [{}] {:?}",
            socket.request_id,
            result
        );
        if let Some(Ok(())) = result {
            self.count("app_hand_backs");
            if let Some(&c) = self.by_req.get(&socket.request_id) {
                let a = self.conns[c].actor;
                let d = self.rng.range(0, self.p.app_delay_max_us);
                self.sched(d, Ev::Drain { a, r, inc });
            }
        }
        self.drain_runner(r);
    }

    // ---- records ----------------------------------------------------------------------------

    fn record_op(&mut self, request_id: RequestId, upsert: bool) {
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

    fn record_done(&mut self, c: usize, a: usize, upsert: bool, ok: bool) {
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
            self.conns[c].record_failed = true;
            let _ = self.gw.hibernating_record_failed(now, req);
        }
        tr!(self, "records: upsert [{req}] ok={ok}");
        self.drain_gw();
    }

    // ---- clients ------------------------------------------------------------------------------

    fn connect(&mut self, c: usize) {
        if !self.chaos() || self.conns[c].state != ClientState::Idle {
            return;
        }
        let a = self.conns[c].actor;
        tr!(self, "client{c}: connect to {}", self.actors[a].id);
        self.conns[c].state = ClientState::Waiting;
        match self.actors[a].phase {
            ActorPhase::Starting(r, inc) | ActorPhase::Running(r, inc)
                if self.runner_alive(r, inc) =>
            {
                self.gw_open(c, r, inc);
            }
            _ => {
                self.actors[a].pending_opens.push(c);
                self.ensure_started(a);
            }
        }
    }

    fn gw_open(&mut self, c: usize, r: usize, inc: u32) {
        if self.conns[c].state != ClientState::Waiting {
            return;
        }
        let a = self.conns[c].actor;
        let open = OpenRequest {
            actor_id: self.actors[a].id.clone(),
            path: "/ws".into(),
            headers: Headers::new(),
        };
        let req = self.conns[c].req;
        match self.gw.open(self.now, req, route_id(r, inc), open) {
            Ok(()) => {
                tr!(self, "client{c}: gw.open via runner{r}.{inc}");
                self.conns[c].state = ClientState::Opening;
            }
            Err(e) => self.violation(format!("conn{c}: open refused: {e}")),
        }
        self.drain_gw();
    }

    fn next_payload(&mut self) -> Payload {
        let pid = self.next_pid;
        self.next_pid += 1;
        let binary = !self.rng.chance(self.p.text_ppm);
        let mut len = usize::try_from(
            self.rng
                .range(*self.p.payload.start() as u64, *self.p.payload.end() as u64),
        )
        .unwrap_or(16);
        if self.rng.chance(self.p.oversize_ppm) {
            self.fault("oversize_message");
            len += usize::try_from(self.p.gateway.max_pending_bytes).unwrap_or(usize::MAX / 2);
        }
        Payload {
            pid,
            data: make_payload(pid, binary, len),
            binary,
        }
    }

    fn client_send(&mut self, c: usize) {
        if !self.chaos() || self.conns[c].state != ClientState::Open {
            return;
        }
        let mut burst = if self.conns[c].blocked.is_some() {
            1
        } else {
            u32::try_from(self.rng.range(1, u64::from(self.p.burst_max))).unwrap_or(1)
        };
        if burst > 1 && u64::from(burst) > u64::from(self.p.gateway.max_pending_messages) {
            self.fault("burst_past_limit");
        }
        while burst > 0 {
            let payload = match self.conns[c].blocked.take() {
                Some(p) => p,
                None if self.conns[c].to_send > 0 => {
                    self.conns[c].to_send -= 1;
                    self.next_payload()
                }
                None => break,
            };
            burst -= 1;
            let req = self.conns[c].req;
            let result = self
                .gw
                .client_message(self.now, req, &payload.data, payload.binary);
            match result {
                Ok(index) => {
                    tr!(
                        self,
                        "client{c} → gw: msg #{} {} ({} B)",
                        index.get(),
                        PidFmt(Some(payload.pid)),
                        payload.data.len()
                    );
                    self.conns[c].accepted.push((index, payload.pid));
                    self.conns[c].accepted_at.push(self.now);
                    self.payloads.insert(payload.pid, (c, index));
                    self.mark(c);
                    self.drain_gw();
                }
                Err(SendError::Backpressure { limit, .. }) => {
                    tr!(
                        self,
                        "client{c} → gw: {} refused: backpressure ({limit})",
                        PidFmt(Some(payload.pid))
                    );
                    self.count("backpressured");
                    self.conns[c].blocked = Some(payload);
                    self.drain_gw();
                    return;
                }
                Err(e) => {
                    tr!(
                        self,
                        "client{c} → gw: {} refused: {e}",
                        PidFmt(Some(payload.pid))
                    );
                    if matches!(e, SendError::NotOpen { .. }) {
                        self.violation(format!("conn{c}: NotOpen after Opened"));
                    }
                    self.drain_gw();
                    return;
                }
            }
        }
        if self.conns[c].to_send > 0 && self.conns[c].state == ClientState::Open {
            let gap = self.rng.range(0, self.p.send_gap_us * 2);
            self.sched(gap, Ev::ClientSend { c });
        }
    }

    fn client_close(&mut self, c: usize) {
        if !self.chaos() {
            return;
        }
        let state = self.conns[c].state;
        match state {
            ClientState::Opening | ClientState::Open => {
                let frame = match self.rng.below(3) {
                    0 => Some(CloseFrame::new(1000, "bye")),
                    1 => Some(CloseFrame::new(4001, "client reason")),
                    _ => None,
                };
                tr!(self, "client{c} → gw: close {frame:?}");
                let req = self.conns[c].req;
                if let Err(e) = self.gw.client_close(self.now, req, frame) {
                    self.violation(format!("conn{c}: client_close: {e}"));
                }
                self.drain_gw();
            }
            ClientState::Waiting => {
                tr!(self, "client{c}: gives up before the open");
                self.conns[c].state = ClientState::Closed;
                let a = self.conns[c].actor;
                self.actors[a].pending_opens.retain(|&x| x != c);
            }
            ClientState::Idle | ClientState::Closed => {}
        }
    }

    // ---- orchestrator --------------------------------------------------------------------------

    fn live_runners(&self) -> Vec<usize> {
        (0..self.runners.len())
            .filter(|&r| self.runners[r].engine.is_some())
            .collect()
    }

    /// The actor is needed (a client connects, a request wants a wake).
    fn ensure_started(&mut self, a: usize) {
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
        self.actors[a].phase = ActorPhase::Starting(r, inc);
        self.actors[a].start_wanted = false;
        self.drain_runner(r);
        let d = self.rng.range(0, self.p.start_max_us);
        self.sched(d, Ev::Restore { a, r, inc });
        for c in core::mem::take(&mut self.actors[a].pending_opens) {
            self.gw_open(c, r, inc);
        }
    }

    fn restore(&mut self, a: usize, r: usize, inc: u32) {
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

    fn want_wake(&mut self, c: usize) {
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

    fn gw_wake(&mut self, c: usize, r: usize, inc: u32) {
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
                self.conns[c].last_wake_at = self.now;
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

    fn stopped_signal(&mut self, a: usize, r: usize, inc: u32) {
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

    fn sleep_actor(&mut self, a: usize) {
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

    fn crash_runner(&mut self, r: usize) {
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

    fn crash_noticed(&mut self, r: usize, inc: u32) {
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

    fn restart(&mut self, r: usize) {
        let slot = &mut self.runners[r];
        if slot.engine.is_some() {
            return;
        }
        slot.inc += 1;
        slot.link = Link::default();
        slot.restart_pending = false;
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

    fn app_crash(&mut self, a: usize) {
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

    fn chaos_event(&mut self, kind: Chaos) {
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
                self.runners[r].link.down_until = self.now + Duration::from_micros(d);
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

    fn add_stats(&mut self, engine: &Runner) {
        let s = engine.stats();
        self.totals.duplicates += s.duplicates;
        self.totals.gaps_healed += s.held_delivered;
        self.totals.gap_closes += s.gap_closes;
        self.totals.reacks += s.reacks;
        self.totals.restored += s.restored;
    }

    // ---------------------------------------------------------------------------------------
    // Invariants
    // ---------------------------------------------------------------------------------------

    fn check_step(&mut self) {
        // 1. Logs of the connections that changed: prefixes of what the gateway accepted.
        for c in core::mem::take(&mut self.dirty) {
            self.conns[c].dirty = false;
            self.check_logs(c);
        }
        // 1b. Ack implies durable; 2. limits.
        let g = self.p.gateway.clone();
        let mut total = 0u64;
        for c in 0..self.conns.len() {
            let req = self.conns[c].req;
            let Some(info) = self.gw.request(req) else {
                continue;
            };
            total += info.pending_bytes;
            if info.pending_messages > usize::from(g.max_pending_messages)
                || info.pending_bytes > g.max_pending_bytes
            {
                self.violation(format!(
                    "conn{c}: {} pending / {} B over the limits",
                    info.pending_messages, info.pending_bytes
                ));
            }
            if info.hibernatable {
                let conn = &self.conns[c];
                let acked = conn.accepted.len().saturating_sub(info.pending_messages);
                if conn.committed.len() < acked {
                    self.violation(format!(
                        "conn{c}: the gateway released {acked} acked messages but only {} are committed",
                        conn.committed.len()
                    ));
                }
            }
        }
        let stats = self.gw.stats();
        if total != stats.pending_bytes || stats.pending_bytes > g.max_gateway_pending_bytes {
            self.violation(format!(
                "gateway pending bytes {} (requests sum to {total}, limit {})",
                stats.pending_bytes, g.max_gateway_pending_bytes
            ));
        }
        if (self.steps.is_multiple_of(8) || self.stage != Stage::Chaos)
            && let Err(e) = self.gw.check_invariants()
        {
            self.violation(format!("gateway invariant: {e}"));
        }
        let rc = &self.p.runner;
        let mut bad = None;
        for (r, slot) in self.runners.iter().enumerate() {
            let Some(engine) = slot.engine.as_ref() else {
                continue;
            };
            if (self.steps.is_multiple_of(8) || self.stage != Stage::Chaos)
                && let Err(e) = engine.check_invariants()
            {
                bad = Some(format!("runner{r} invariant: {e}"));
            }
            for id in slot.sessions.keys() {
                if let Some(s) = engine.socket(*id)
                    && (s.held > rc.max_held_messages || s.held_bytes > rc.max_held_bytes)
                {
                    bad = Some(format!(
                        "runner{r} holds {} / {} B past the limits",
                        s.held, s.held_bytes
                    ));
                }
            }
        }
        if let Some(b) = bad {
            self.violation(b);
        }
    }

    fn check_logs(&mut self, c: usize) {
        let conn = &self.conns[c];
        if let Some(i) = first_mismatch(&conn.committed, &conn.accepted) {
            let msg = format!(
                "conn{c}: committed log is not a prefix of the accepted messages at position {i}: committed {} vs accepted {}",
                EntryFmt(conn.committed.get(i)),
                EntryFmt(conn.accepted.get(i))
            );
            self.violation(msg);
            return;
        }
        let Some((r, inc)) = conn.session else {
            return;
        };
        if self.runners[r].inc != inc {
            return;
        }
        let Some(s) = self.runners[r].sessions.get(&conn.socket) else {
            return;
        };
        if s.zombie || s.dead || !s.hibernatable {
            return;
        }
        // The session's deliveries continue the log from where the session started; the
        // committed part of them is in the log already.
        let base = s.base;
        for (k, e) in s.delivered.iter().enumerate() {
            if conn.accepted.get(base + k) != Some(e) {
                let msg = format!(
                    "conn{c}: committed + session log is not a prefix of the accepted messages at position {}: delivered {} vs accepted {}",
                    base + k,
                    EntryFmt(Some(e)),
                    EntryFmt(conn.accepted.get(base + k))
                );
                self.violation(msg);
                return;
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Heal phase
    // ---------------------------------------------------------------------------------------

    /// `None` when nothing is in flight and every buffer is drained; otherwise why not.
    fn busy(&self) -> Option<String> {
        if let Some(Reverse(s)) = self.queue.iter().find(|Reverse(s)| !s.ev.inert_in_heal()) {
            return Some(format!("event in flight: {:?}", s.ev));
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

    fn not_quiescent_reason(&self) -> String {
        self.busy()
            .unwrap_or_else(|| "stage condition not met".into())
    }

    fn heal_progress(&mut self) {
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

    /// Every live hibernatable connection has all it sent committed and acked.
    fn check_drained(&mut self, when: &str) {
        for c in 0..self.conns.len() {
            let conn = &self.conns[c];
            let Some(info) = self.gw.request(conn.req) else {
                continue;
            };
            if info.hibernatable && conn.committed != conn.accepted {
                let msg = format!(
                    "liveness ({when}): conn{c} is open and drained but its committed log has {} of {} accepted messages",
                    conn.committed.len(),
                    conn.accepted.len()
                );
                self.violation(msg);
            }
        }
    }

    /// After the final sleep/wake round: every live request is active and hibernatable, held by
    /// exactly one runner socket; every runner socket belongs to a live request; storage holds
    /// the metadata of exactly the sockets runners hold, the record store no record of a
    /// closed request. An orphan (a live request no runner holds, or a runner socket whose
    /// request is closed) is allowed only with a cause the protocol cannot see: a close lost in
    /// transit, a close the gateway could not send (closed while hibernating), a socket
    /// recreated by a stale open. Those are counted, any other is a violation.
    #[allow(clippy::too_many_lines)] // one check after another
    fn check_final(&mut self) {
        let mut problems = Vec::new();
        let mut held_by: BTreeMap<usize, usize> = BTreeMap::new();
        let mut held_sockets: BTreeMap<usize, BTreeSet<SocketId>> = BTreeMap::new();
        let mut orphans: Vec<&'static str> = Vec::new();
        for (c, conn) in self.conns.iter().enumerate() {
            let holders: Vec<usize> = self
                .runners
                .iter()
                .enumerate()
                .filter(|(_, slot)| {
                    slot.engine
                        .as_ref()
                        .and_then(|e| e.socket(conn.socket))
                        .is_some()
                })
                .map(|(r, _)| r)
                .collect();
            for &r in &holders {
                *held_by.entry(r).or_insert(0) += 1;
                held_sockets
                    .entry(conn.actor)
                    .or_default()
                    .insert(conn.socket);
            }
            let Some(info) = self.gw.request(conn.req) else {
                if conn.state != ClientState::Closed {
                    problems.push(format!("conn{c} is gone from the gateway without a Closed"));
                }
                if !holders.is_empty() {
                    match conn.orphan_cause {
                        Some(cause) => orphans.push(cause),
                        None => problems.push(format!(
                            "conn{c} is closed but runner{holders:?} still holds its socket (leak)"
                        )),
                    }
                }
                continue;
            };
            if info.phase != GwPhase::Active || !info.hibernatable || info.pending_messages > 0 {
                problems.push(format!(
                    "conn{c} ends {:?}, hibernatable {}, {} pending",
                    info.phase, info.hibernatable, info.pending_messages
                ));
            }
            let r = usize::try_from(info.route.0 >> 32).unwrap_or(usize::MAX);
            let inc = u32::try_from(info.route.0 & 0xffff_ffff).unwrap_or(u32::MAX);
            let socket = self
                .runners
                .get(r)
                .filter(|s| s.inc == inc)
                .and_then(|s| s.engine.as_ref())
                .and_then(|e| e.socket(conn.socket));
            // Neither the record list nor the stored metadata knows the request (both writes
            // failed or were lost): no runner can ever tell the gateway (a design gap).
            let untraceable = conn.record_failed && !conn.meta_written;
            match socket {
                Some(s) if s.state == SocketState::Open && s.hibernatable => {}
                None => match conn.orphan_cause {
                    Some(cause) => orphans.push(cause),
                    None if untraceable => {
                        orphans.push("ghost: metadata write and record upsert both failed");
                    }
                    None => problems.push(format!(
                        "conn{c} is live but no runner holds its socket (ghost)"
                    )),
                },
                Some(s) => problems.push(format!("conn{c}: its runner socket is {s:?}")),
            }
            if holders.len() > 1 {
                problems.push(format!("conn{c} is held by runners {holders:?}"));
            }
        }
        for (r, slot) in self.runners.iter().enumerate() {
            let expected = held_by.get(&r).copied().unwrap_or(0);
            if let Some(e) = slot.engine.as_ref()
                && e.len() != expected
            {
                problems.push(format!(
                    "runner{r} holds {} sockets, {expected} of known connections (leak)",
                    e.len()
                ));
            }
        }
        for (a, actor) in self.actors.iter().enumerate() {
            let stored: BTreeSet<SocketId> = actor.meta.keys().copied().collect();
            let expected = held_sockets.remove(&a).unwrap_or_default();
            if stored != expected {
                problems.push(format!(
                    "{} stores metadata for {} sockets, runners hold {} (leak or loss)",
                    actor.id,
                    stored.len(),
                    expected.len()
                ));
            }
        }
        for req in self.records.keys() {
            if self.gw.request(*req).is_none() {
                problems.push(format!("record of closed request {req} left (leak)"));
            }
        }
        let stats = self.gw.stats();
        if stats.pending_bytes != 0 || stats.pending_messages != 0 {
            problems.push(format!("gateway still buffers {} B", stats.pending_bytes));
        }
        if let Err(e) = self.gw.check_invariants() {
            problems.push(format!("gateway invariant: {e}"));
        }
        for cause in orphans {
            *self.counts.entry(cause).or_insert(0) += 1;
        }
        for p in problems {
            self.violation(format!("final state: {p}"));
        }
    }

    // ---------------------------------------------------------------------------------------
    // Report
    // ---------------------------------------------------------------------------------------

    fn finish(mut self) -> (SimReport, Vec<String>) {
        for r in 0..self.runners.len() {
            if let Some(e) = self.runners[r].engine.take() {
                self.add_stats(&e);
            }
        }
        let g = self.gw.stats();
        let mut counts: BTreeMap<String, u64> = self
            .counts
            .iter()
            .map(|(k, v)| ((*k).to_string(), *v))
            .collect();
        counts.insert("gap_closes".into(), self.totals.gap_closes);
        counts.insert("reacks".into(), self.totals.reacks);
        counts.insert("restored".into(), self.totals.restored);
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
        counts.insert("steps".into(), self.steps);
        counts.insert("trace_lines".into(), self.trace.lines());
        let report = SimReport {
            seed: self.seed,
            messages_accepted: self.conns.iter().map(|c| c.accepted.len() as u64).sum(),
            delivered: self.totals.delivered,
            replayed: g.messages_replayed,
            duplicates_dropped: self.totals.duplicates,
            gaps_healed: self.totals.gaps_healed,
            retransmits: g.messages_retransmitted,
            closes_by_reason: self.closes,
            crashes: self.faults.get("runner_crash").copied().unwrap_or(0)
                + self.faults.get("actor_crash").copied().unwrap_or(0),
            sleeps: self.counts.get("sleeps").copied().unwrap_or(0),
            wakes: g.wakes,
            violations: self.violations,
            trace_hash: self.trace.hash(),
            faults: self
                .faults
                .iter()
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

// -------------------------------------------------------------------------------------------
// Helpers
// -------------------------------------------------------------------------------------------

fn first_mismatch(log: &[Entry], accepted: &[Entry]) -> Option<usize> {
    log.iter()
        .zip(accepted.iter().map(Some).chain(core::iter::repeat(None)))
        .position(|(e, a)| a != Some(e))
}

/// `pid` in front of the payload: 8 bytes little-endian (binary) or 16 hex digits (text), then
/// filler up to `len`.
fn make_payload(pid: u64, binary: bool, len: usize) -> Vec<u8> {
    let mut data = if binary {
        pid.to_le_bytes().to_vec()
    } else {
        format!("{pid:016x}").into_bytes()
    };
    let fill = if binary { 0xA5 } else { b'x' };
    data.resize(len.max(data.len()), fill);
    data
}

fn parse_pid(data: &[u8], binary: bool) -> Option<u64> {
    if binary {
        let b: [u8; 8] = data.get(..8)?.try_into().ok()?;
        Some(u64::from_le_bytes(b))
    } else {
        let s = core::str::from_utf8(data.get(..16)?).ok()?;
        u64::from_str_radix(s, 16).ok()
    }
}

struct PidFmt(Option<u64>);

impl fmt::Display for PidFmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) if p & ECHO_BIT != 0 => write!(f, "e{}", p & !ECHO_BIT),
            Some(p) => write!(f, "p{p}"),
            None => f.write_str("p?"),
        }
    }
}

struct EntryFmt<'a>(Option<&'a Entry>);

impl fmt::Display for EntryFmt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some((i, p)) => write!(f, "#{} {}", i.get(), PidFmt(Some(*p))),
            None => f.write_str("nothing"),
        }
    }
}

/// The request a gateway → runner frame is about.
fn request_of_down(frame: &[u8]) -> Option<RequestId> {
    match wire::decode_versioned::<ToRunner>(frame, &wire::DecodeLimits::default()) {
        Ok((_, ToRunner::TunnelMessage(m))) => Some(m.message_id.request_id),
        Ok((_, ToRunner::Ping(p))) => Some(p.request_id),
        _ => None,
    }
}

/// The request a runner → gateway frame is about.
fn request_of_up(frame: &[u8]) -> Option<RequestId> {
    match wire::decode_versioned::<ToGateway>(frame, &wire::DecodeLimits::default()) {
        Ok((_, ToGateway::TunnelMessage(m))) => Some(m.message_id.request_id),
        Ok((_, ToGateway::Pong(p))) => Some(p.request_id),
        _ => None,
    }
}

/// The request a gateway → runner close frame closes.
fn close_to_runner(frame: &[u8]) -> Option<RequestId> {
    match wire::decode_versioned::<ToRunner>(frame, &wire::DecodeLimits::default()) {
        Ok((_, ToRunner::TunnelMessage(m)))
            if matches!(m.kind, ToClientTunnelMessageKind::WebSocketClose(_)) =>
        {
            Some(m.message_id.request_id)
        }
        _ => None,
    }
}

/// A short description of a gateway → runner frame.
fn describe_to_runner(frame: &[u8]) -> String {
    match wire::decode_versioned::<ToRunner>(frame, &wire::DecodeLimits::default()) {
        Ok((_, ToRunner::Ping(p))) => format!("ping [{}]", p.request_id),
        Ok((_, ToRunner::Close)) => "runner close".into(),
        Ok((_, ToRunner::TunnelMessage(m))) => {
            let i = m.message_id.message_index.get();
            let req = m.message_id.request_id;
            match m.kind {
                ToClientTunnelMessageKind::WebSocketOpen(_) => format!("open #{i} [{req}]"),
                ToClientTunnelMessageKind::WebSocketMessage(w) => {
                    format!("msg #{i} {} [{req}]", PidFmt(parse_pid(&w.data, w.binary)))
                }
                ToClientTunnelMessageKind::WebSocketClose(c) => format!(
                    "close #{i} {:?} [{req}]",
                    CloseFrame {
                        code: c.code,
                        reason: c.reason
                    }
                ),
                other => format!("{other:?} #{i} [{req}]"),
            }
        }
        Ok((_, other)) => format!("{other:?}"),
        Err(e) => format!("undecodable frame ({e})"),
    }
}

/// A short description of a runner → gateway frame.
fn describe_to_gateway(frame: &[u8]) -> String {
    match wire::decode_versioned::<ToGateway>(frame, &wire::DecodeLimits::default()) {
        Ok((_, ToGateway::Pong(p))) => format!("pong [{}]", p.request_id),
        Ok((_, ToGateway::TunnelMessage(m))) => {
            let i = m.message_id.message_index.get();
            let req = m.message_id.request_id;
            match m.kind {
                ToServerTunnelMessageKind::WebSocketOpen(o) => {
                    format!("open out#{i} hibernatable={} [{req}]", o.can_hibernate)
                }
                ToServerTunnelMessageKind::WebSocketMessage(w) => {
                    format!(
                        "msg out#{i} {} [{req}]",
                        PidFmt(parse_pid(&w.data, w.binary))
                    )
                }
                ToServerTunnelMessageKind::WebSocketMessageAck(a) => {
                    format!("ack {} out#{i} [{req}]", a.index.get())
                }
                ToServerTunnelMessageKind::WebSocketClose(c) => format!(
                    "close out#{i} {:?} hibernate={} [{req}]",
                    CloseFrame {
                        code: c.code,
                        reason: c.reason
                    },
                    c.hibernate
                ),
                other => format!("{other:?} out#{i} [{req}]"),
            }
        }
        Err(e) => format!("undecodable frame ({e})"),
    }
}

fn frame_name(f: &CloseFrame) -> String {
    match (f.known(), f.code, &f.reason) {
        (Some(k), _, _) => k.reason().to_string(),
        (None, Some(c), Some(r)) => format!("{c} {r}"),
        (None, Some(c), None) => c.to_string(),
        (None, None, _) => "no code".into(),
    }
}

fn gw_reason_name(r: &gateway::CloseReason) -> String {
    use gateway::CloseReason as R;
    match r {
        R::ClientClosed(f) => format!("client closed ({})", frame_name(f)),
        R::ClientGone => "client gone".into(),
        R::RunnerClosed(f) => format!("runner closed ({})", frame_name(f)),
        R::ClosedBeforeOpen(f) => format!("closed before open ({})", frame_name(f)),
        R::OpenTimeout => "open timeout".into(),
        R::ActorStopped => "actor stopped".into(),
        R::ActorStoppedBeforeOpen => "actor stopped before open".into(),
        R::PendingLimit(l) => format!("pending limit ({l})"),
        R::PingTimeout => "ping timeout".into(),
        R::Collected(GcReason::AckTimeout { .. }) => "collected: ack timeout".into(),
        R::Collected(GcReason::HibernationTimeout) => "collected: hibernation timeout".into(),
        R::Collected(GcReason::WakeTimeout) => "collected: wake timeout".into(),
    }
}

fn runner_reason_name(r: &runner::CloseReason) -> String {
    use runner::CloseReason as R;
    match r {
        R::GatewayClosed(f) => format!("gateway closed ({})", frame_name(f)),
        R::AppClosed(f) => format!("app closed ({})", frame_name(f)),
        R::Rejected(f) => format!("rejected ({})", frame_name(f)),
        R::MessageIndexSkip => "message index skip".into(),
        R::StaleMetadata => "stale metadata".into(),
        R::ActorStopped => "actor stopped".into(),
        R::Hibernated => "handed back".into(),
    }
}
