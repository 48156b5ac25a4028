//! Model-based test of the gateway (proptest-state-machine): random sequences of opens, runner
//! opens, client messages around the limits, valid/stale/invalid acks, runner closes (with and
//! without hibernate), actor stops, wakes, client closes, pongs and time steps, checked against a
//! small reference model of requests and pending buffers.
//!
//! After every step: every result equals the model's; the requests closed in the step are
//! exactly those the model removed (and they are gone); pending counts and bytes equal the model
//! and stay within the limits; the gateway total is the sum over requests; the engine's own
//! invariant check passes (pending frames contiguous, timers armed); and after
//! `handle_timeout(now)` the next deadline is later than `now`.
//!
//! Timers in the model: open, ack and wake timeouts. The harness answers pings and confirms
//! record upserts at once, so ping and hibernation timeouts never fire here (the scenario tests
//! cover them).

// A model's step function and the engine driver are one match over every transition each.
#![allow(clippy::too_many_lines)]

extern crate alloc;

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use core::time::Duration;

use hibernating_ws::gateway::{
    Action, Gateway, GatewayConfig, Limit, OpenError, OpenRequest, OverflowPolicy, Phase,
    ReceiveError, RouteId, SendError, WakeError,
};
use hibernating_ws::wire::{
    self, GatewayId, MessageId, RequestId, ToGatewayPong, ToRunner, ToServerTunnelMessage,
    ToServerTunnelMessageKind, ToServerWebSocketClose, ToServerWebSocketMessageAck,
    ToServerWebSocketOpen,
};
use hibernating_ws::{CloseFrame, MessageIndex, Timestamp};
use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};

const GW: GatewayId = GatewayId([9, 8, 7, 6]);
const IDS: u32 = 3;
const MAX_MESSAGES: u16 = 4;
const OPEN_TIMEOUT: u64 = 15_000_000;
const ACK_TIMEOUT: u64 = 20_000_000;
const WAKE_TIMEOUT: u64 = 25_000_000;
const CLOSE_TIMEOUT: u64 = 45_000_000;
const BASE: u64 = 1_000_000_000;

fn frame_len(payload: usize) -> u64 {
    wire::ws_message_frame_len(payload) as u64
}

fn max_request_bytes() -> u64 {
    3 * frame_len(64)
}

fn max_gateway_bytes() -> u64 {
    5 * frame_len(64)
}

fn config(policy: OverflowPolicy) -> GatewayConfig {
    let mut c = GatewayConfig::default();
    c.overflow_policy = policy;
    c.max_pending_messages = MAX_MESSAGES;
    c.max_pending_bytes = max_request_bytes();
    c.max_gateway_pending_bytes = max_gateway_bytes();
    c.open_timeout = Duration::from_micros(OPEN_TIMEOUT);
    c.ack_timeout = Duration::from_micros(ACK_TIMEOUT);
    c.wake_timeout = Duration::from_micros(WAKE_TIMEOUT);
    c.close_timeout = Duration::from_micros(CLOSE_TIMEOUT);
    c
}

// =============================================================================================
// Reference model
// =============================================================================================

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MPhase {
    AwaitingOpen,
    Active,
    Hibernating,
}

#[derive(Debug, Clone)]
struct MEntry {
    index: u16,
    size: u64,
    sent_at: u64,
}

#[derive(Debug, Clone)]
struct MReq {
    phase: MPhase,
    hibernatable: bool,
    route: u64,
    next_index: u16,
    pending: VecDeque<MEntry>,
    /// Newest entries buffered while hibernating, not yet published.
    unsent: usize,
    opened_at: u64,
    wake_deadline: Option<u64>,
    client_closed: bool,
    /// A held client close is collected at this instant.
    close_deadline: Option<u64>,
    acks_ignored: u64,
}

impl MReq {
    fn bytes(&self) -> u64 {
        self.pending.iter().map(|e| e.size).sum()
    }
    fn sent_through(&self) -> u16 {
        self.next_index
            .wrapping_sub(1)
            .wrapping_sub(u16::try_from(self.unsent).expect("small"))
    }
}

#[derive(Debug, Clone)]
struct Model {
    policy: OverflowPolicy,
    now: u64,
    reqs: BTreeMap<u32, MReq>,
}

impl Model {
    fn total_bytes(&self) -> u64 {
        self.reqs.values().map(MReq::bytes).sum()
    }
}

/// Which ack to send, resolved against the model state before the step.
#[derive(Debug, Clone, Copy)]
enum AckSel {
    /// The k-th published pending entry (k modulo their number); the last sent if none.
    Pending(u8),
    /// `d` behind the oldest pending − 1 (stale when d ≤ 32 766, invalid beyond).
    Behind(u16),
    /// `d + 1` ahead of the last index sent (invalid).
    Ahead(u16),
}

#[derive(Debug, Clone)]
enum Transition {
    Open(u32),
    RunnerOpen(u32, bool),
    ClientMessage(u32, usize),
    Ack(u32, AckSel),
    AckFromWrongRoute(u32),
    RunnerClose(u32, bool),
    ActorStopped(u32),
    Wake(u32, u64),
    ClientClose(u32, bool),
    Pong(u32),
    Advance(u64),
}

/// What a step returns, to compare with the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Open(Result<(), OpenError>),
    Receive(Result<(), &'static str>),
    Send(Result<u16, SendError>),
    Unit(bool),
    Wake(Result<(), WakeError>),
    Time,
}

fn receive_kind(r: &Result<(), ReceiveError>) -> Result<(), &'static str> {
    match r {
        Ok(()) => Ok(()),
        Err(ReceiveError::UnknownRequest { .. }) => Err("unknown"),
        Err(ReceiveError::WrongRoute { .. }) => Err("route"),
        Err(ReceiveError::InvalidForPhase { .. }) => Err("phase"),
        Err(e) => panic!("unexpected receive error {e}"),
    }
}

fn resolve_ack(req: &MReq, sel: AckSel) -> u16 {
    let sent = req.pending.len() - req.unsent;
    let oldest_minus_1 = req
        .pending
        .front()
        .map_or(req.sent_through(), |e| e.index.wrapping_sub(1));
    match sel {
        AckSel::Pending(k) if sent > 0 => req.pending[usize::from(k) % sent].index,
        AckSel::Pending(_) => req.sent_through(),
        AckSel::Behind(d) => oldest_minus_1.wrapping_sub(d),
        AckSel::Ahead(d) => req.sent_through().wrapping_add(1).wrapping_add(d),
    }
}

/// A validated cumulative ack: releases the published entries up to `ack`, or counts it ignored.
fn apply_ack(r: &mut MReq, ack: u16) {
    let sent = r.pending.len() - r.unsent;
    match r.pending.iter().take(sent).position(|e| e.index == ack) {
        Some(p) => {
            r.pending.drain(..=p);
        }
        None => r.acks_ignored += 1,
    }
}

/// Applies `t` to the model; returns the expected outcome and the ids the step closed.
fn step(m: &mut Model, t: &Transition) -> (Outcome, BTreeSet<u32>) {
    let now = m.now;
    let mut closed = BTreeSet::new();
    let outcome = match *t {
        Transition::Open(id) => match m.reqs.entry(id) {
            alloc::collections::btree_map::Entry::Occupied(_) => {
                Outcome::Open(Err(OpenError::AlreadyExists {
                    request_id: rid(id),
                }))
            }
            alloc::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(MReq {
                    phase: MPhase::AwaitingOpen,
                    hibernatable: false,
                    route: 1,
                    next_index: 1,
                    pending: VecDeque::new(),
                    unsent: 0,
                    opened_at: now,
                    wake_deadline: None,
                    client_closed: false,
                    close_deadline: None,
                    acks_ignored: 0,
                });
                Outcome::Open(Ok(()))
            }
        },
        Transition::RunnerOpen(id, hib) => Outcome::Receive(match m.reqs.get_mut(&id) {
            None => Err("unknown"),
            Some(r) if r.phase == MPhase::AwaitingOpen => {
                r.phase = MPhase::Active;
                r.hibernatable = hib;
                Ok(())
            }
            Some(_) => Err("phase"),
        }),
        Transition::ClientMessage(id, len) => {
            let total = m.total_bytes();
            let policy = m.policy;
            let Some(r) = m.reqs.get_mut(&id) else {
                return (
                    Outcome::Send(Err(SendError::UnknownRequest {
                        request_id: rid(id),
                    })),
                    closed,
                );
            };
            if r.phase == MPhase::AwaitingOpen {
                return (
                    Outcome::Send(Err(SendError::NotOpen {
                        request_id: rid(id),
                    })),
                    closed,
                );
            }
            if r.client_closed {
                return (
                    Outcome::Send(Err(SendError::ClientClosed {
                        request_id: rid(id),
                    })),
                    closed,
                );
            }
            let size = frame_len(len);
            let index = r.next_index;
            if !r.hibernatable {
                r.next_index = index.wrapping_add(1);
                return (Outcome::Send(Ok(index)), closed);
            }
            let limit = if size > max_request_bytes() {
                m.reqs.remove(&id);
                closed.insert(id);
                return (
                    Outcome::Send(Err(SendError::MessageTooLarge {
                        request_id: rid(id),
                        size,
                        max: max_request_bytes(),
                    })),
                    closed,
                );
            } else if r.pending.len() >= usize::from(MAX_MESSAGES) {
                Some(Limit::Count)
            } else if r.bytes() + size > max_request_bytes() {
                Some(Limit::RequestBytes)
            } else if total + size > max_gateway_bytes() {
                Some(Limit::GatewayBytes)
            } else {
                None
            };
            match (limit, policy) {
                (Some(limit), OverflowPolicy::Close) => {
                    m.reqs.remove(&id);
                    closed.insert(id);
                    Outcome::Send(Err(SendError::LimitExceeded {
                        request_id: rid(id),
                        limit,
                    }))
                }
                (Some(limit), _) => Outcome::Send(Err(SendError::Backpressure {
                    request_id: rid(id),
                    limit,
                })),
                (None, _) => {
                    r.next_index = index.wrapping_add(1);
                    r.pending.push_back(MEntry {
                        index,
                        size,
                        sent_at: now,
                    });
                    if r.phase == MPhase::Hibernating {
                        r.unsent += 1;
                        if r.wake_deadline.is_none() {
                            r.wake_deadline = Some(now + WAKE_TIMEOUT);
                        }
                    }
                    Outcome::Send(Ok(index))
                }
            }
        }
        Transition::Ack(id, sel) => Outcome::Receive(match m.reqs.get_mut(&id) {
            None => Err("unknown"),
            Some(r) if r.phase == MPhase::AwaitingOpen => Err("phase"),
            Some(r) => {
                if r.hibernatable {
                    let ack = resolve_ack(r, sel);
                    apply_ack(r, ack);
                }
                // The ack of the last pending message forwards a held client close.
                if r.client_closed && r.phase == MPhase::Active && r.pending.is_empty() {
                    m.reqs.remove(&id);
                    closed.insert(id);
                }
                Ok(())
            }
        }),
        // While a request hibernates, an ack is accepted from the actor's declared next runner
        // (it acks its persisted index on restore, before the wake routes the request to it);
        // it is validated like any ack. The SUT declares route 99 and acks index 1 from it.
        Transition::AckFromWrongRoute(id) => Outcome::Receive(match m.reqs.get_mut(&id) {
            None => Err("unknown"),
            Some(r) if r.phase == MPhase::Hibernating => {
                apply_ack(r, 1);
                Ok(())
            }
            Some(_) => Err("route"),
        }),
        Transition::RunnerClose(id, hibernate) => Outcome::Receive(match m.reqs.get_mut(&id) {
            None => Err("unknown"),
            Some(r) => {
                match r.phase {
                    MPhase::Active if hibernate && r.hibernatable => hibernate_model(r, now),
                    MPhase::Hibernating if hibernate => {}
                    _ => {
                        m.reqs.remove(&id);
                        closed.insert(id);
                    }
                }
                Ok(())
            }
        }),
        Transition::ActorStopped(id) => Outcome::Unit(match m.reqs.get_mut(&id) {
            None => false,
            Some(r) => {
                match (r.phase, r.hibernatable) {
                    (MPhase::Active, true) => hibernate_model(r, now),
                    (MPhase::Hibernating, _) => {}
                    _ => {
                        m.reqs.remove(&id);
                        closed.insert(id);
                    }
                }
                true
            }
        }),
        Transition::Wake(id, route) => Outcome::Wake(match m.reqs.get_mut(&id) {
            None => Err(WakeError::UnknownRequest {
                request_id: rid(id),
            }),
            Some(r) if r.phase != MPhase::Hibernating => Err(WakeError::NotHibernating {
                request_id: rid(id),
            }),
            Some(r) => {
                r.phase = MPhase::Active;
                r.route = route;
                r.unsent = 0;
                r.wake_deadline = None;
                for e in &mut r.pending {
                    e.sent_at = now;
                }
                // A held client close waits for the acks of the replay.
                if r.client_closed && r.pending.is_empty() {
                    m.reqs.remove(&id);
                    closed.insert(id);
                }
                Ok(())
            }
        }),
        Transition::ClientClose(id, _) => Outcome::Unit(match m.reqs.get_mut(&id) {
            None => false,
            Some(r) if r.client_closed => true,
            Some(r) => {
                let held = r.phase == MPhase::Hibernating
                    || (r.phase == MPhase::Active && r.hibernatable && !r.pending.is_empty());
                if held {
                    r.client_closed = true;
                    r.close_deadline = Some(now + CLOSE_TIMEOUT);
                    if r.phase == MPhase::Hibernating && r.wake_deadline.is_none() {
                        r.wake_deadline = Some(now + WAKE_TIMEOUT);
                    }
                } else {
                    m.reqs.remove(&id);
                    closed.insert(id);
                }
                true
            }
        }),
        Transition::Pong(id) => Outcome::Receive(if m.reqs.contains_key(&id) {
            Ok(())
        } else {
            Err("unknown")
        }),
        Transition::Advance(us) => {
            m.now += us;
            let now = m.now;
            m.reqs.retain(|&id, r| {
                let expired = r.close_deadline.is_some_and(|d| d <= now)
                    || match r.phase {
                        MPhase::AwaitingOpen => r.opened_at + OPEN_TIMEOUT <= now,
                        MPhase::Active => r
                            .pending
                            .front()
                            .is_some_and(|e| e.sent_at + ACK_TIMEOUT <= now),
                        MPhase::Hibernating => r.wake_deadline.is_some_and(|d| d <= now),
                    };
                if expired {
                    closed.insert(id);
                }
                !expired
            });
            Outcome::Time
        }
    };
    (outcome, closed)
}

fn hibernate_model(r: &mut MReq, now: u64) {
    r.phase = MPhase::Hibernating;
    if !r.pending.is_empty() || r.client_closed {
        r.wake_deadline = Some(now + WAKE_TIMEOUT);
    }
}

struct GatewayModel;

impl ReferenceStateMachine for GatewayModel {
    type State = Model;
    type Transition = Transition;

    fn init_state() -> BoxedStrategy<Model> {
        prop_oneof![
            Just(OverflowPolicy::Close),
            Just(OverflowPolicy::Backpressure)
        ]
        .prop_map(|policy| Model {
            policy,
            now: 0,
            reqs: BTreeMap::new(),
        })
        .boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Transition> {
        // Mostly live ids (so sequences reach deep states), sometimes any id.
        let live: Vec<u32> = state.reqs.keys().copied().collect();
        let id = if live.is_empty() {
            (0..IDS).boxed()
        } else {
            prop_oneof![4 => proptest::sample::select(live), 1 => 0..IDS].boxed()
        };
        let size = prop_oneof![
            4 => Just(0usize),
            2 => Just(1),
            1 => Just(63),
            1 => Just(64),
            1 => Just(65),
            1 => Just(120),
            1 => Just(200),
            1 => Just(260),
        ];
        let ack = prop_oneof![
            3 => any::<u8>().prop_map(AckSel::Pending),
            1 => prop_oneof![Just(0u16), Just(1), Just(32_766), Just(32_767), any::<u16>()]
                .prop_map(AckSel::Behind),
            1 => prop_oneof![Just(0u16), Just(5), any::<u16>()].prop_map(AckSel::Ahead),
        ];
        prop_oneof![
            2 => (0..IDS).prop_map(Transition::Open),
            2 => (id.clone(), prop_oneof![3 => Just(true), 1 => Just(false)])
                .prop_map(|(i, h)| Transition::RunnerOpen(i, h)),
            8 => (id.clone(), size).prop_map(|(i, s)| Transition::ClientMessage(i, s)),
            4 => (id.clone(), ack).prop_map(|(i, a)| Transition::Ack(i, a)),
            1 => id.clone().prop_map(Transition::AckFromWrongRoute),
            1 => (id.clone(), any::<bool>()).prop_map(|(i, h)| Transition::RunnerClose(i, h)),
            1 => id.clone().prop_map(Transition::ActorStopped),
            2 => (id.clone(), 1u64..4).prop_map(|(i, r)| Transition::Wake(i, r)),
            1 => (id.clone(), any::<bool>()).prop_map(|(i, f)| Transition::ClientClose(i, f)),
            1 => id.prop_map(Transition::Pong),
            3 => (0u64..8_000_000).prop_map(Transition::Advance),
        ]
        .boxed()
    }

    fn apply(mut state: Model, transition: &Transition) -> Model {
        step(&mut state, transition);
        state
    }
}

// =============================================================================================
// System under test
// =============================================================================================

struct Sut {
    gw: Gateway,
    /// The model before the step being applied.
    prev: Model,
}

fn rid(id: u32) -> RequestId {
    RequestId::from_u32(id)
}

fn ts(m: &Model) -> Timestamp {
    Timestamp::from_micros(BASE + m.now)
}

fn runner_msg(id: u32, kind: ToServerTunnelMessageKind) -> ToServerTunnelMessage {
    ToServerTunnelMessage {
        message_id: MessageId {
            gateway_id: GW,
            request_id: rid(id),
            message_index: MessageIndex::ZERO,
        },
        kind,
    }
}

impl Sut {
    fn route(&self, id: u32) -> RouteId {
        RouteId(self.prev.reqs.get(&id).map_or(1, |r| r.route))
    }

    /// Drains actions, answering pings and confirming upserts; returns the closed ids.
    fn drain(&mut self, now: Timestamp) -> BTreeSet<u32> {
        let mut closed = BTreeSet::new();
        while let Some(action) = self.gw.poll_action() {
            match action {
                Action::Publish {
                    route,
                    request_id,
                    frame,
                } => {
                    if let Ok((_, ToRunner::Ping(p))) =
                        wire::decode_versioned::<ToRunner>(&frame, &wire::DecodeLimits::default())
                    {
                        let pong = ToGatewayPong {
                            request_id,
                            ts: p.ts,
                        };
                        self.gw
                            .handle_pong(now, route, pong)
                            .expect("pong for a live request");
                    }
                }
                Action::UpsertHibernatingRecord { request_id, .. } => {
                    self.gw
                        .hibernating_record_upserted(now, request_id)
                        .expect("live");
                }
                Action::Closed { request_id, .. } => {
                    assert!(
                        self.gw.request(request_id).is_none(),
                        "request left after its Closed"
                    );
                    assert!(
                        closed.insert(request_id.to_u32()),
                        "two Closed for one request"
                    );
                }
                _ => {}
            }
        }
        closed
    }

    fn run(&mut self, t: &Transition, target: Timestamp) -> (Outcome, BTreeSet<u32>) {
        let now = ts(&self.prev);
        let outcome = match *t {
            Transition::Open(id) => Outcome::Open(self.gw.open(
                now,
                rid(id),
                RouteId(1),
                OpenRequest::new(format!("actor-{id}"), "/").expect("a path starting with /"),
            )),
            Transition::RunnerOpen(id, can_hibernate) => {
                let kind = ToServerTunnelMessageKind::WebSocketOpen(ToServerWebSocketOpen {
                    can_hibernate,
                });
                let r = self
                    .gw
                    .handle_runner_message(now, self.route(id), runner_msg(id, kind));
                Outcome::Receive(receive_kind(&r))
            }
            Transition::ClientMessage(id, len) => Outcome::Send(
                self.gw
                    .client_message(now, rid(id), &vec![3; len], true)
                    .map(MessageIndex::get),
            ),
            Transition::Ack(id, sel) => {
                let index = self.prev.reqs.get(&id).map_or(0, |r| resolve_ack(r, sel));
                let kind =
                    ToServerTunnelMessageKind::WebSocketMessageAck(ToServerWebSocketMessageAck {
                        index: MessageIndex::new(index),
                    });
                let r = self
                    .gw
                    .handle_runner_message(now, self.route(id), runner_msg(id, kind));
                Outcome::Receive(receive_kind(&r))
            }
            Transition::AckFromWrongRoute(id) => {
                let kind =
                    ToServerTunnelMessageKind::WebSocketMessageAck(ToServerWebSocketMessageAck {
                        index: MessageIndex::new(1),
                    });
                let _ = self.gw.actor_starting(now, rid(id), RouteId(99));
                let r = self
                    .gw
                    .handle_runner_message(now, RouteId(99), runner_msg(id, kind));
                Outcome::Receive(receive_kind(&r))
            }
            Transition::RunnerClose(id, hibernate) => {
                let kind = ToServerTunnelMessageKind::WebSocketClose(ToServerWebSocketClose {
                    code: Some(1000),
                    reason: None,
                    hibernate,
                });
                let r = self
                    .gw
                    .handle_runner_message(now, self.route(id), runner_msg(id, kind));
                Outcome::Receive(receive_kind(&r))
            }
            Transition::ActorStopped(id) => {
                Outcome::Unit(self.gw.actor_stopped(now, rid(id)).is_ok())
            }
            Transition::Wake(id, route) => {
                Outcome::Wake(self.gw.wake(now, rid(id), RouteId(route)))
            }
            Transition::ClientClose(id, with_frame) => Outcome::Unit(
                self.gw
                    .client_close(
                        now,
                        rid(id),
                        with_frame.then(|| CloseFrame::new(4000, "bye")),
                    )
                    .is_ok(),
            ),
            Transition::Pong(id) => {
                let pong = ToGatewayPong {
                    request_id: rid(id),
                    ts: 0,
                };
                Outcome::Receive(receive_kind(&self.gw.handle_pong(
                    now,
                    self.route(id),
                    pong,
                )))
            }
            Transition::Advance(_) => Outcome::Time,
        };
        let mut closed = self.drain(now);
        // Time: every deadline up to the target, each at its exact instant.
        let mut t_now = now;
        while let Some(deadline) = self.gw.poll_timeout() {
            if deadline > target {
                break;
            }
            t_now = t_now.max(deadline);
            self.gw.handle_timeout(t_now);
            closed.extend(self.drain(t_now));
            if let Some(next) = self.gw.poll_timeout() {
                assert!(
                    next > t_now,
                    "poll_timeout {next:?} not after handled {t_now:?}"
                );
            }
        }
        self.gw.handle_timeout(target);
        closed.extend(self.drain(target));
        if let Some(next) = self.gw.poll_timeout() {
            assert!(next > target, "poll_timeout {next:?} not after {target:?}");
        }
        (outcome, closed)
    }
}

struct GatewayModelTest;

impl StateMachineTest for GatewayModelTest {
    type SystemUnderTest = Sut;
    type Reference = GatewayModel;

    fn init_test(ref_state: &Model) -> Sut {
        Sut {
            gw: Gateway::new(config(ref_state.policy), GW, ts(ref_state)).expect("valid config"),
            prev: ref_state.clone(),
        }
    }

    fn apply(mut sut: Sut, ref_state: &Model, transition: Transition) -> Sut {
        let mut expected_state = sut.prev.clone();
        let (expected, expected_closed) = step(&mut expected_state, &transition);
        let (got, closed) = sut.run(&transition, ts(ref_state));
        assert_eq!(got, expected, "result of {transition:?}");
        assert_eq!(closed, expected_closed, "requests closed by {transition:?}");
        sut.prev = ref_state.clone();
        sut
    }

    fn check_invariants(sut: &Sut, model: &Model) {
        let gw = &sut.gw;
        assert_eq!(gw.len(), model.reqs.len());
        // The engine's own deep check (frame contents, timer entries) ships with `sim`.
        #[cfg(feature = "sim")]
        if let Err(e) = gw.check_invariants() {
            panic!("engine invariant: {e}");
        }
        let mut total = 0;
        for (&id, m) in &model.reqs {
            let info = gw
                .request(rid(id))
                .expect("live in the model, live in the engine");
            let phase = match m.phase {
                MPhase::AwaitingOpen => Phase::AwaitingOpen,
                MPhase::Active => Phase::Active,
                MPhase::Hibernating => Phase::Hibernating,
            };
            assert_eq!(info.phase, phase, "phase of {id}");
            assert_eq!(info.hibernatable, m.hibernatable);
            assert_eq!(info.route, RouteId(m.route));
            assert_eq!(info.next_index, MessageIndex::new(m.next_index));
            assert_eq!(info.pending_messages, m.pending.len(), "pending of {id}");
            assert_eq!(info.pending_bytes, m.bytes(), "pending bytes of {id}");
            assert_eq!(
                info.oldest_unacked,
                m.pending.front().map(|e| MessageIndex::new(e.index))
            );
            assert!(info.pending_messages <= usize::from(MAX_MESSAGES));
            assert!(info.pending_bytes <= max_request_bytes());
            assert_eq!(
                info.stats.acks_ignored, m.acks_ignored,
                "ignored acks of {id}"
            );
            // Pending indices are contiguous and increasing from the oldest.
            for (k, e) in m.pending.iter().enumerate() {
                let k = u16::try_from(k).expect("small");
                assert_eq!(e.index, m.pending[0].index.wrapping_add(k));
            }
            total += info.pending_bytes;
        }
        let stats = gw.stats();
        assert_eq!(
            stats.pending_bytes, total,
            "gateway total is the sum over requests"
        );
        assert_eq!(stats.pending_bytes, model.total_bytes());
        assert!(stats.pending_bytes <= max_gateway_bytes());
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn gateway_matches_the_reference_model(sequential 1..80 => GatewayModelTest);
}
