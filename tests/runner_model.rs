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
use runner_support::{ACTOR, Out, close_kind, decode, hib, meta, msg_kind, open_kind, sid};

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
// Reference model
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

// ---------------------------------------------------------------------------------------------
// System under test: the runner, driven as an app and a gateway would drive it
// ---------------------------------------------------------------------------------------------

struct Sut {
    runner: Runner,
    now: Timestamp,
    /// Persist requests not answered yet: socket → (server, client).
    outstanding: BTreeMap<u8, (u16, u16)>,
    /// Persists of sockets that closed before the app answered: the app still answers them
    /// (the write lands anyway), before the next transition.
    stale: Vec<(u8, u16)>,
    /// The app's storage.
    storage: BTreeMap<u8, (u16, u16)>,
    /// Sockets that were stopping when the actor stopped (the gateway hibernates them).
    stopping: BTreeSet<u8>,
    hibernatable: BTreeMap<u8, bool>,
    delivered: BTreeMap<u8, u16>,
    persisted: BTreeMap<u8, u16>,
    next_out: BTreeMap<u8, u16>,
}

impl Sut {
    fn sock_of(id: hibernating_ws::runner::SocketId) -> u8 {
        u8::try_from(u32::from_le_bytes(id.request_id.0)).expect("test socket ids are small")
    }

    /// Drains every action, playing the app and checking the invariants.
    fn drain(&mut self) {
        while let Some(action) = self.runner.poll_action() {
            match decode(action) {
                Out::Msg { socket, index, .. } => {
                    let s = Self::sock_of(socket);
                    if self.hibernatable.get(&s) == Some(&true) {
                        let last = self.delivered[&s];
                        assert_eq!(
                            index,
                            last.wrapping_add(1),
                            "socket {s}: delivered out of order"
                        );
                    }
                    self.delivered.insert(s, index);
                }
                Out::Persist {
                    socket,
                    server_index,
                    client_index,
                } => {
                    let s = Self::sock_of(socket);
                    assert_eq!(
                        server_index, self.delivered[&s],
                        "a persist names the last delivered index"
                    );
                    self.outstanding.insert(s, (server_index, client_index));
                }
                Out::Ack { socket, out, index } => {
                    let s = Self::sock_of(socket);
                    self.check_out(s, out);
                    let persisted = self.persisted.get(&s).copied();
                    assert_eq!(
                        Some(index),
                        persisted,
                        "socket {s}: every ack equals the persisted index"
                    );
                    let delivered = MessageIndex::new(self.delivered[&s]);
                    assert!(
                        MessageIndex::new(index).is_at_or_before(delivered),
                        "ack ≤ delivered"
                    );
                }
                // A close 1011 `ws.socket_not_found` answers a frame for a socket the runner does
                // not hold (any more): stateless, index 0.
                Out::SendClose {
                    out, ref reason, ..
                } if reason.as_deref() == Some("ws.socket_not_found") => {
                    assert_eq!(out, 0, "a stateless close uses index 0");
                }
                Out::SendOpen { socket, out, .. }
                | Out::SendMsg { socket, out, .. }
                | Out::SendClose { socket, out, .. } => {
                    let s = Self::sock_of(socket);
                    if self.next_out.contains_key(&s) {
                        self.check_out(s, out);
                    } else {
                        assert_eq!(out, 0, "a stateless close uses index 0");
                    }
                }
                Out::Delete { socket } => {
                    self.storage.remove(&Self::sock_of(socket));
                }
                Out::Closed { socket, reason } => {
                    let s = Self::sock_of(socket);
                    assert!(
                        matches!(
                            reason,
                            CloseReason::MessageIndexSkip
                                | CloseReason::GatewayClosed(_)
                                | CloseReason::ActorStopped
                                | CloseReason::StaleMetadata
                        ),
                        "{reason:?}"
                    );
                    self.forget(s);
                }
                Out::Restored { .. }
                | Out::Open { .. }
                | Out::ActorStopped { .. }
                | Out::Pong { .. } => {}
            }
        }
    }

    fn check_out(&mut self, s: u8, out: u16) {
        let expected = self.next_out.get(&s).copied().unwrap_or(0);
        assert_eq!(
            out, expected,
            "socket {s}: outgoing indices are consecutive"
        );
        self.next_out.insert(s, out.wrapping_add(1));
    }

    fn restart(&mut self, now: Timestamp) {
        let listed: Vec<_> = core::mem::take(&mut self.stopping).into_iter().collect();
        let metas: Vec<_> = self
            .storage
            .iter()
            .map(|(&s, &(server, client))| meta(socket_id(s), server, client))
            .collect();
        for &s in &listed {
            // Settled silently on stop: the runner forgot it.
            self.forget(s);
            if let Some(&(server, client)) = self.storage.get(&s) {
                self.delivered.insert(s, server);
                self.persisted.insert(s, server);
                self.next_out.insert(s, client);
                self.hibernatable.insert(s, true);
            }
        }
        self.runner
            .actor_starting(
                now,
                ACTOR,
                listed.iter().map(|&s| hib(socket_id(s))).collect(),
            )
            .expect("start");
        self.runner.restore(now, ACTOR, metas).expect("restore");
    }

    fn message(&mut self, now: Timestamp, s: u8, delta: u16, len: u8) {
        let id = socket_id(s);
        let p = self.runner.socket(id).map_or(0, |i| i.last_delivered.get());
        let data = vec![0u8; usize::from(len)];
        // Held payloads are one byte in the model; gaps carry one byte.
        let data = if (2..=32_768).contains(&delta) {
            vec![1u8]
        } else {
            data
        };
        let frame = runner_support::frame(id, p.wrapping_add(delta), msg_kind(&data));
        let result = self.runner.handle_frame(now, &frame);
        match self.runner.socket(id).map(|i| i.state) {
            _ if result.is_ok() => {}
            None => assert_eq!(result, Err(ReceiveError::UnknownSocket { socket: id })),
            Some(_) => assert_eq!(result, Err(ReceiveError::NotOpen { socket: id })),
        }
    }

    fn forget(&mut self, s: u8) {
        if let Some((server, _)) = self.outstanding.remove(&s) {
            self.stale.push((s, server));
        }
        self.hibernatable.remove(&s);
        self.next_out.remove(&s);
    }
}

struct RunnerTest;

impl StateMachineTest for RunnerTest {
    type SystemUnderTest = Sut;
    type Reference = RefMachine;

    fn init_test(model: &Model) -> Sut {
        let now = Timestamp::ZERO;
        let mut runner = Runner::new(config(model.policy), now).expect("valid config");
        runner
            .actor_starting(now, ACTOR, Vec::new())
            .expect("start");
        runner.restore(now, ACTOR, Vec::new()).expect("restore");
        Sut {
            runner,
            now,
            outstanding: BTreeMap::new(),
            stale: Vec::new(),
            storage: BTreeMap::new(),
            stopping: BTreeSet::new(),
            hibernatable: BTreeMap::new(),
            delivered: BTreeMap::new(),
            persisted: BTreeMap::new(),
            next_out: BTreeMap::new(),
        }
    }

    #[allow(clippy::too_many_lines)] // one transition after another
    fn apply(mut sut: Sut, model: &Model, t: Transition) -> Sut {
        let now = sut.now;
        // Late results of closed sockets: harmless, and never taken for a newer socket's.
        for (s, server) in core::mem::take(&mut sut.stale) {
            let socket = socket_id(s);
            let late = sut.runner.persisted(now, socket, MessageIndex::new(server));
            let unknown = hibernating_ws::runner::SocketError::UnknownSocket { socket };
            assert_eq!(late, Err(unknown), "late result of socket {s}");
        }
        match t {
            Transition::Open { s, hib } => {
                let id = socket_id(s);
                let frame = runner_support::frame(id, 0, open_kind(ACTOR));
                sut.runner.handle_frame(now, &frame).expect("open");
                sut.next_out.insert(s, 0);
                sut.delivered.insert(s, 0);
                sut.persisted.remove(&s);
                sut.hibernatable.insert(s, hib);
                sut.runner.accept(now, id, hib).expect("accept");
            }
            Transition::Msg { s, delta, len } => sut.message(now, s, delta, len),
            Transition::PersistOk { s } => {
                let (server, client) = sut
                    .outstanding
                    .remove(&s)
                    .expect("model: a persist is in flight");
                sut.storage.insert(s, (server, client));
                sut.persisted.insert(s, server);
                sut.runner
                    .persisted(now, socket_id(s), MessageIndex::new(server))
                    .expect("persisted");
            }
            Transition::PersistFail { s } => {
                let (server, _) = sut
                    .outstanding
                    .remove(&s)
                    .expect("model: a persist is in flight");
                sut.runner
                    .persist_failed(now, socket_id(s), MessageIndex::new(server))
                    .expect("persist_failed");
                if model.socks[s as usize].phase == Phase::Open {
                    // The failed persist is no longer in flight: its result cannot be reported.
                    let socket = socket_id(s);
                    let result = sut.runner.persisted(now, socket, MessageIndex::new(server));
                    assert_eq!(result, Err(SocketError::UnexpectedPersist { socket }));
                }
            }
            Transition::Advance { micros } => {
                sut.now = now + Duration::from_micros(micros);
                sut.runner.handle_timeout(sut.now);
                if let Some(t) = sut.runner.poll_timeout() {
                    assert!(
                        t > sut.now,
                        "poll_timeout {t:?} not after now {:?}",
                        sut.now
                    );
                }
            }
            Transition::GatewayClose { s } => {
                let existed = sut.runner.socket(socket_id(s)).is_some();
                let result = sut.runner.handle_frame(
                    now,
                    &runner_support::frame(socket_id(s), 0, close_kind(Some(1000), None)),
                );
                if existed {
                    assert_eq!(result, Ok(()));
                } else {
                    let socket = socket_id(s);
                    assert_eq!(result, Err(ReceiveError::UnknownSocket { socket }));
                }
                sut.stopping.remove(&s);
            }
            Transition::Send { s } => {
                let socket = socket_id(s);
                let result = sut.runner.send(now, socket, b"out", true);
                match sut.runner.socket(socket).map(|i| i.state) {
                    Some(SocketState::Open) => assert!(result.is_ok()),
                    Some(_) => assert_eq!(result, Err(SendError::NotOpen { socket })),
                    None => assert_eq!(result, Err(SendError::UnknownSocket { socket })),
                }
            }
            Transition::Stop => {
                for s in 0..SOCKETS {
                    if sut
                        .runner
                        .socket(socket_id(s))
                        .is_some_and(|i| i.hibernatable && i.state == SocketState::Open)
                    {
                        sut.stopping.insert(s);
                    }
                }
                sut.runner.actor_stopping(now, ACTOR).expect("stop");
            }
            Transition::Restart => sut.restart(now),
        }
        sut.drain();
        sut
    }

    fn check_invariants(sut: &Sut, model: &Model) {
        // The engine's own invariant check exists with `sim` (as in `gateway_model.rs`).
        #[cfg(feature = "sim")]
        if let Err(e) = sut.runner.check_invariants() {
            panic!("runner invariant: {e}");
        }
        for s in 0..SOCKETS {
            let k = &model.socks[s as usize];
            let info = sut.runner.socket(socket_id(s));
            let Some(info) = info else {
                assert_eq!(k.phase, Phase::Absent, "socket {s}: the model still has it");
                continue;
            };
            let state = match k.phase {
                Phase::Open => SocketState::Open,
                Phase::Stopping => SocketState::Stopping,
                Phase::Absent => panic!("socket {s}: the runner still has it: {info:?}"),
            };
            assert_eq!(info.state, state, "socket {s}");
            assert_eq!(info.hibernatable, k.hib, "socket {s}");
            assert_eq!(info.last_delivered.get(), k.p, "socket {s}: last delivered");
            assert_eq!(
                info.last_persisted.map(MessageIndex::get),
                k.persisted,
                "socket {s}: persisted"
            );
            assert_eq!(info.last_acked.get(), k.acked, "socket {s}: acked");
            assert_eq!(
                info.next_client_index.get(),
                k.next_client,
                "socket {s}: next client index"
            );
            assert_eq!(
                info.persist_in_flight.map(MessageIndex::get),
                k.in_flight.map(|f| f.0),
                "socket {s}: in flight"
            );
            assert_eq!(info.held, k.held.len(), "socket {s}: held");
            // acked ≤ persisted ≤ delivered, serially.
            if let Some(lp) = info.last_persisted {
                assert!(lp.is_at_or_before(info.last_delivered));
                assert!(info.last_acked.is_at_or_before(lp) || info.last_acked == lp);
            }
            assert_eq!(
                sut.outstanding.get(&s).copied(),
                k.in_flight,
                "socket {s}: outstanding persist"
            );
        }
        assert_eq!(sut.storage, model.metas, "the app's storage");
        if let Some(t) = sut.runner.poll_timeout() {
            // Every armed deadline in the model matches the earliest one of the runner.
            let model_next = model
                .socks
                .iter()
                .flat_map(|k| [k.deadline, k.retry_at, k.gap_deadline])
                .flatten()
                .min();
            assert_eq!(Some(t.as_micros()), model_next, "next deadline");
        } else {
            assert!(
                model.socks.iter().all(|k| k.deadline.is_none()
                    && k.retry_at.is_none()
                    && k.gap_deadline.is_none())
            );
        }
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn runner_matches_the_reference_model(sequential 1..80 => RunnerTest);
}
