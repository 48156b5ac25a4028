//! Model-based test of `hibernating_ws::runner::Runner` (proptest-state-machine).
//!
//! The reference model keeps, per socket, the last delivered / persisted / acked index, the
//! persist in flight, the debounce and retry deadlines and the held buffer, plus the app's
//! stored metadata and the gateway's hibernating list. The system under test is a `Runner`
//! driven as an app and a gateway would drive it. After every transition the runner's view of
//! every socket must equal the model's, and invariants are checked on the actions it emitted:
//! delivered indices of a hibernatable socket are strictly consecutive (no duplicate, no gap);
//! every ack equals the index the app last reported persisted, which is at or before the last
//! delivered one (acked ≤ persisted ≤ delivered); outgoing indices are consecutive; and after
//! `handle_timeout(now)`, `poll_timeout()` is later than `now`.

mod sut;

#[path = "../runner_support/mod.rs"]
mod runner_support;

extern crate alloc;

use alloc::collections::{BTreeMap, BTreeSet};

use core::time::Duration;

use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};

use hibernating_ws::runner::{
    CloseReason, GapPolicy, ReceiveError, Runner, RunnerConfig, SendError, SocketError, SocketState,
};
use hibernating_ws::{MessageIndex, Timestamp};
use runner_support::{
    ACTOR, Out, close_kind, decode, handle_timeout_checked, hib, meta, msg_kind, open_kind, sid,
};

const SOCKETS: u8 = 3;
const PERSIST_BYTES: u64 = 16;
const PERSIST_INTERVAL: u64 = 5_000_000;
const RETRY_INITIAL: u64 = 100_000;
const RETRY_MAX: u64 = 400_000;
const GAP_TIMEOUT: u64 = 10_000_000;
const REACK: u64 = 1_000_000;
const MAX_HELD: usize = 4;

fn config(gap_policy: GapPolicy) -> RunnerConfig {
    RunnerConfig::default()
        .with_gap_policy(gap_policy)
        .with_persist_bytes(PERSIST_BYTES)
        .with_persist_interval(Duration::from_micros(PERSIST_INTERVAL))
        .with_persist_retry_initial(Duration::from_micros(RETRY_INITIAL))
        .with_persist_retry_max(Duration::from_micros(RETRY_MAX))
        .with_gap_timeout(Duration::from_micros(GAP_TIMEOUT))
        .with_reack_interval(Duration::from_micros(REACK))
        .with_max_held_messages(MAX_HELD)
}

fn socket_id(s: u8) -> hibernating_ws::runner::SocketId {
    sid(7, u32::from(s))
}

fn idx(s: usize) -> u8 {
    u8::try_from(s).expect("the model has fewer than 256 sockets")
}

fn after(a: u16, b: u16) -> bool {
    MessageIndex::new(a).is_after(MessageIndex::new(b))
}

// ---------------------------------------------------------------------------------------------
// Reference model (the runner under test: `sut.rs`)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Absent,
    Open,
    Stopping,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ActorPhase {
    Running,
    Stopping,
    Stopped,
}

/// One socket of the model; its flags mirror the engine's persist state one for one.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone)]
struct Sock {
    phase: Phase,
    hib: bool,
    p: u16,
    seq: u64,
    /// Held messages: unwrapped position → arrival time.
    held: BTreeMap<u64, u64>,
    gap_deadline: Option<u64>,
    persisted: Option<u16>,
    acked: u16,
    last_ack_at: Option<u64>,
    next_client: u16,
    in_flight: Option<(u16, u16)>,
    dirty: bool,
    force: bool,
    bytes: u64,
    first_at: Option<u64>,
    deadline: Option<u64>,
    retry_at: Option<u64>,
    backoff: u64,
    flush_after: bool,
    /// Restored, nothing delivered in order since (the replay has not arrived).
    awaiting_replay: bool,
}

impl Sock {
    fn absent() -> Self {
        Self {
            phase: Phase::Absent,
            hib: false,
            p: 0,
            seq: 0,
            held: BTreeMap::new(),
            gap_deadline: None,
            persisted: None,
            acked: 0,
            last_ack_at: None,
            next_client: 0,
            in_flight: None,
            dirty: false,
            force: false,
            bytes: 0,
            first_at: None,
            deadline: None,
            retry_at: None,
            backoff: RETRY_INITIAL,
            flush_after: false,
            awaiting_replay: false,
        }
    }
}

#[derive(Debug, Clone)]
struct Model {
    policy: GapPolicy,
    now: u64,
    actor: ActorPhase,
    socks: Vec<Sock>,
    /// The app's stored metadata: socket → (server index, client index).
    metas: BTreeMap<u8, (u16, u16)>,
    /// Sockets the gateway holds hibernating (settled silently on stop).
    listed: BTreeSet<u8>,
    /// When each socket was handed back, until a restore decides it: the runner drops an open
    /// of such an id within its hand-back memory as a stale copy (ids are never reused).
    handed_back: BTreeMap<u8, u64>,
}

/// `RunnerConfig::handed_back_memory` (the default), in microseconds.
const HANDED_BACK_MEMORY: u64 = 60_000_000;

impl Model {
    /// Whether `s` may be opened: absent, without metadata, not listed, not a recent hand-back.
    fn openable(&self, s: u8) -> bool {
        self.actor == ActorPhase::Running
            && self.socks[s as usize].phase == Phase::Absent
            && !self.metas.contains_key(&s)
            && !self.listed.contains(&s)
            && self
                .handed_back
                .get(&s)
                .is_none_or(|&at| at + HANDED_BACK_MEMORY <= self.now)
    }
}

#[derive(Debug, Clone)]
enum Transition {
    Open { s: u8, hib: bool },
    Msg { s: u8, delta: u16, len: u8 },
    PersistOk { s: u8 },
    PersistFail { s: u8 },
    Advance { micros: u64 },
    GatewayClose { s: u8 },
    Send { s: u8 },
    Stop,
    Restart,
}

impl Model {
    fn emit(&mut self, s: usize) {
        let k = &mut self.socks[s];
        // The stored outgoing index covers the ack a successful persist sends.
        let acks = k.p != k.acked;
        k.in_flight = Some((k.p, k.next_client.wrapping_add(u16::from(acks))));
        k.dirty = false;
        k.force = false;
        k.bytes = 0;
        k.first_at = None;
        k.deadline = None;
        k.retry_at = None;
    }

    fn schedule(&mut self, s: usize) {
        let now = self.now;
        let k = &mut self.socks[s];
        if k.phase != Phase::Open
            || !k.hib
            || k.in_flight.is_some()
            || k.retry_at.is_some()
            || !k.dirty
        {
            return;
        }
        if k.force || k.bytes >= PERSIST_BYTES {
            self.emit(s);
            return;
        }
        let at = k.first_at.unwrap_or(now) + PERSIST_INTERVAL;
        if at <= now {
            self.emit(s);
        } else {
            k.deadline = Some(at);
        }
    }

    fn deliver(&mut self, s: usize, r: u16, len: u64) {
        let now = self.now;
        let k = &mut self.socks[s];
        k.p = r;
        k.seq += 1;
        if k.hib {
            k.dirty = true;
            k.bytes += len;
            k.first_at.get_or_insert(now);
        }
    }

    fn deliver_held(&mut self, s: usize) {
        loop {
            let k = &mut self.socks[s];
            let next = k.seq + 1;
            if k.held.remove(&next).is_none() {
                break;
            }
            let r = k.p.wrapping_add(1);
            // Held payloads in the model are all one byte.
            self.deliver(s, r, 1);
        }
        let k = &mut self.socks[s];
        k.gap_deadline = k.held.values().min().map(|t| t + GAP_TIMEOUT);
    }

    fn remove(&mut self, s: usize) {
        self.socks[s] = Sock::absent();
        if self.actor == ActorPhase::Stopping && self.socks.iter().all(|k| k.phase == Phase::Absent)
        {
            self.actor = ActorPhase::Stopped;
        }
    }

    fn close_skip(&mut self, s: usize) {
        if self.socks[s].hib {
            self.metas.remove(&idx(s));
        }
        self.socks[s].next_client = self.socks[s].next_client.wrapping_add(1);
        self.remove(s);
    }

    fn ack(&mut self, s: usize, index: u16) {
        let now = self.now;
        let k = &mut self.socks[s];
        k.acked = index;
        k.last_ack_at = Some(now);
        k.next_client = k.next_client.wrapping_add(1);
    }

    fn on_msg(&mut self, s: usize, delta: u16, len: u64) {
        let now = self.now;
        let k = &self.socks[s];
        if k.phase != Phase::Open {
            return;
        }
        let r = k.p.wrapping_add(delta);
        if !k.hib {
            self.deliver(s, r, len);
            return;
        }
        if delta == 0 || after(k.p, r) {
            if let Some(lp) = k.persisted {
                let at_or_before = r == lp || after(lp, r);
                if at_or_before && k.last_ack_at.is_none_or(|t| now >= t + REACK) {
                    self.ack(s, lp);
                }
            }
            return;
        }
        if delta == 1 {
            self.socks[s].awaiting_replay = false;
            self.deliver(s, r, len);
            self.deliver_held(s);
            self.schedule(s);
            return;
        }
        if k.awaiting_replay {
            // Before the replay, a restored socket drops a message past a gap.
            return;
        }
        match self.policy {
            GapPolicy::Close => self.close_skip(s),
            GapPolicy::Await => {
                let k = &mut self.socks[s];
                let seq = k.seq + u64::from(delta);
                if k.held.contains_key(&seq) {
                    return;
                }
                if k.held.len() >= MAX_HELD {
                    self.close_skip(s);
                    return;
                }
                k.held.insert(seq, now);
                if k.gap_deadline.is_none() {
                    k.gap_deadline = Some(now + GAP_TIMEOUT);
                }
            }
        }
    }

    fn settle_or_flush(&mut self, s: usize) {
        if self.socks[s].flush_after {
            self.socks[s].flush_after = false;
            self.emit(s);
        } else {
            self.listed.insert(idx(s));
            self.remove(s);
        }
    }

    fn stop(&mut self) {
        self.actor = ActorPhase::Stopping;
        // The runner remembers every socket of a stopping actor as handed back.
        for i in 0..self.socks.len() {
            if self.socks[i].phase != Phase::Absent {
                self.handed_back.insert(idx(i), self.now);
            }
        }
        for i in 0..self.socks.len() {
            let k = &mut self.socks[i];
            match k.phase {
                Phase::Open if k.hib => {
                    k.phase = Phase::Stopping;
                    k.deadline = None;
                    k.retry_at = None;
                    k.gap_deadline = None;
                    k.held.clear();
                    if k.in_flight.is_some() {
                        k.flush_after = true;
                    } else {
                        self.emit(i);
                    }
                }
                Phase::Open => self.remove(i),
                _ => {}
            }
        }
        if self.socks.iter().all(|k| k.phase == Phase::Absent) {
            self.actor = ActorPhase::Stopped;
        }
    }

    fn restart(&mut self) {
        let listed = core::mem::take(&mut self.listed);
        let metas = self.metas.clone();
        for (&s, &(server, client)) in &metas {
            self.handed_back.remove(&s);
            if listed.contains(&s) {
                let k = &mut self.socks[s as usize];
                *k = Sock::absent();
                k.phase = Phase::Open;
                k.hib = true;
                k.p = server;
                k.persisted = Some(server);
                k.acked = server;
                // The restore ack does not arm the duplicate re-ack rate limit.
                k.last_ack_at = None;
                k.awaiting_replay = true;
                k.next_client = client.wrapping_add(1);
            } else {
                self.metas.remove(&s);
            }
        }
        self.actor = ActorPhase::Running;
    }

    fn fire_timers(&mut self) {
        let now = self.now;
        for s in 0..self.socks.len() {
            loop {
                let k = &self.socks[s];
                // Same order as the engine's heap: deadline, then kind (persist, retry, gap).
                let due = [(k.deadline, 0u8), (k.retry_at, 1), (k.gap_deadline, 2)]
                    .into_iter()
                    .filter_map(|(at, kind)| at.filter(|&t| t <= now).map(|t| (t, kind)))
                    .min();
                let Some((_, kind)) = due else { break };
                match kind {
                    0 => {
                        self.socks[s].deadline = None;
                        self.schedule(s);
                    }
                    1 => {
                        self.socks[s].retry_at = None;
                        if self.socks[s].phase == Phase::Open {
                            self.emit(s);
                        }
                    }
                    _ => {
                        self.socks[s].gap_deadline = None;
                        self.close_skip(s);
                    }
                }
            }
        }
    }
}

struct RefMachine;

impl ReferenceStateMachine for RefMachine {
    type State = Model;
    type Transition = Transition;

    fn init_state() -> BoxedStrategy<Model> {
        prop_oneof![Just(GapPolicy::Close), Just(GapPolicy::Await)]
            .prop_map(|policy| Model {
                policy,
                now: 0,
                actor: ActorPhase::Running,
                socks: (0..SOCKETS).map(|_| Sock::absent()).collect(),
                metas: BTreeMap::new(),
                listed: BTreeSet::new(),
                handed_back: BTreeMap::new(),
            })
            .boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Transition> {
        let sock = 0..SOCKETS;
        let delta = prop_oneof![
            8 => Just(1u16),
            1 => Just(0u16),
            2 => 2u16..5,
            1 => Just(32_767u16),
            1 => Just(32_768u16),
            1 => 32_769u16..=65_535,
        ];
        let mut options: Vec<(u32, BoxedStrategy<Transition>)> = vec![
            (
                10,
                (sock.clone(), delta, 0u8..12)
                    .prop_map(|(s, delta, len)| Transition::Msg { s, delta, len })
                    .boxed(),
            ),
            (
                3,
                prop_oneof![
                    Just(1u64),
                    Just(100_000),
                    Just(1_000_000),
                    Just(PERSIST_INTERVAL - 1),
                    Just(PERSIST_INTERVAL),
                    Just(6_000_000)
                ]
                .prop_map(|micros| Transition::Advance { micros })
                .boxed(),
            ),
            (
                1,
                sock.clone()
                    .prop_map(|s| Transition::GatewayClose { s })
                    .boxed(),
            ),
            (1, sock.clone().prop_map(|s| Transition::Send { s }).boxed()),
        ];
        let openable: Vec<u8> = (0..SOCKETS).filter(|&s| state.openable(s)).collect();
        if !openable.is_empty() {
            options.push((
                3,
                (proptest::sample::select(openable), any::<bool>())
                    .prop_map(|(s, hib)| Transition::Open { s, hib })
                    .boxed(),
            ));
        }
        let in_flight: Vec<u8> = (0..SOCKETS)
            .filter(|&s| state.socks[s as usize].in_flight.is_some())
            .collect();
        if !in_flight.is_empty() {
            options.push((
                4,
                proptest::sample::select(in_flight.clone())
                    .prop_map(|s| Transition::PersistOk { s })
                    .boxed(),
            ));
            options.push((
                1,
                proptest::sample::select(in_flight)
                    .prop_map(|s| Transition::PersistFail { s })
                    .boxed(),
            ));
        }
        match state.actor {
            ActorPhase::Running => options.push((1, Just(Transition::Stop).boxed())),
            ActorPhase::Stopped => options.push((3, Just(Transition::Restart).boxed())),
            ActorPhase::Stopping => {}
        }
        proptest::strategy::Union::new_weighted(options).boxed()
    }

    fn preconditions(state: &Model, t: &Transition) -> bool {
        match t {
            Transition::Open { s, .. } => state.openable(*s),
            Transition::PersistOk { s } | Transition::PersistFail { s } => {
                state.socks[*s as usize].in_flight.is_some()
            }
            Transition::Stop => state.actor == ActorPhase::Running,
            Transition::Restart => state.actor == ActorPhase::Stopped,
            _ => true,
        }
    }

    fn apply(mut m: Model, t: &Transition) -> Model {
        match *t {
            Transition::Open { s, hib } => {
                let k = &mut m.socks[s as usize];
                *k = Sock::absent();
                k.phase = Phase::Open;
                k.hib = hib;
                k.next_client = 1;
                if hib {
                    k.force = true;
                    k.dirty = true;
                    m.schedule(s as usize);
                }
            }
            Transition::Msg { s, delta, len } => m.on_msg(s as usize, delta, u64::from(len)),
            Transition::PersistOk { s } => {
                let i = s as usize;
                let (idx, client) = m.socks[i].in_flight.take().expect("precondition");
                m.metas.insert(s, (idx, client));
                m.socks[i].backoff = RETRY_INITIAL;
                m.socks[i].persisted = Some(idx);
                if idx != m.socks[i].acked {
                    m.ack(i, idx);
                }
                if m.socks[i].phase == Phase::Stopping {
                    m.settle_or_flush(i);
                } else {
                    m.schedule(i);
                }
            }
            Transition::PersistFail { s } => {
                let i = s as usize;
                m.socks[i].in_flight = None;
                if m.socks[i].phase == Phase::Stopping {
                    m.settle_or_flush(i);
                } else {
                    let now = m.now;
                    let k = &mut m.socks[i];
                    k.dirty = true;
                    k.first_at.get_or_insert(now);
                    k.retry_at = Some(now + k.backoff);
                    k.backoff = (k.backoff * 2).min(RETRY_MAX);
                }
            }
            Transition::Advance { micros } => {
                m.now += micros;
                m.fire_timers();
            }
            Transition::GatewayClose { s } => {
                let i = s as usize;
                // The client left: the gateway no longer lists the request as hibernating.
                m.listed.remove(&s);
                if m.socks[i].phase != Phase::Absent {
                    if m.socks[i].hib {
                        m.metas.remove(&s);
                    }
                    m.remove(i);
                }
            }
            Transition::Send { s } => {
                let k = &mut m.socks[s as usize];
                if k.phase == Phase::Open {
                    k.next_client = k.next_client.wrapping_add(1);
                }
            }
            Transition::Stop => m.stop(),
            Transition::Restart => m.restart(),
        }
        m
    }
}

use sut::RunnerTest;

prop_state_machine! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn runner_matches_the_reference_model(sequential 1..80 => RunnerTest);
}
