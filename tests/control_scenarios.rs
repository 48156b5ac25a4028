//! Scenario tests of the control engine (`hibernating_ws::control`) and the runner session
//! (`hibernating_ws::session`), driven as a pair through the in-memory `World` harness, plus
//! hand-written runner frames where a rule needs a misbehaving or scripted runner. The runner
//! connection scenarios (handshake, ids, reconnects, loss) are in `control_scenarios/runners.rs`.

#![cfg(feature = "sim")]
#![allow(clippy::too_many_lines, clippy::unwrap_used)] // scenario helpers unwrap like tests

use core::time::Duration;

#[path = "common/control_events.rs"]
mod control_events;
#[path = "control_scenarios/runners.rs"]
mod runners;

use control_events::{event, intent, running, stopped};
use hibernating_ws::Timestamp;
use hibernating_ws::control::{
    Action, ActorError, ActorPhase, ConnCloseReason, ConnId, ConnectError, Control, ControlConfig,
    OpenError, OpenFailure, ReceiveError, StopReason,
};
use hibernating_ws::fuzz::{WORLD_GATEWAY, World};
use hibernating_ws::gateway::{self, Gateway, GatewayConfig, Phase};
use hibernating_ws::runner::SocketId;
use hibernating_ws::session;
use hibernating_ws::wire::{
    self, ActorCheckpoint, ActorIntent, Command, EventWrapper, RequestId, StopCode, ToClient,
    ToServer, ToServerAckCommands, ToServerEvents, ToServerInit, ToServerPong,
};

const R1: RequestId = RequestId([0, 0, 0, 1]);
const R2: RequestId = RequestId([0, 0, 0, 2]);

fn config() -> ControlConfig {
    let mut c = ControlConfig::default();
    c.runner_lost_threshold = Duration::from_secs(10);
    c.ping_interval = Duration::from_secs(3);
    c.ping_timeout = Duration::from_secs(8);
    c
}

/// A world with `runners` runners (2 slots each), all connected, and actors `a` and `b`.
fn world(runners: usize) -> World {
    let mut w = World::new(config(), GatewayConfig::default(), runners, 2);
    for i in 0..runners {
        w.connect(i);
    }
    for a in ["a", "b"] {
        w.control.create_actor(w.now, a, World::spec(a)).unwrap();
    }
    w
}

fn phase(w: &World, actor: &str) -> ActorPhase {
    w.control.actor(actor).unwrap().phase
}

fn delivered(w: &World, id: RequestId) -> Vec<u32> {
    w.delivered
        .get(&SocketId::new(WORLD_GATEWAY, id))
        .map(|v| {
            v.iter()
                .map(|d| u32::from_be_bytes(d[4..8].try_into().unwrap()))
                .collect()
        })
        .unwrap_or_default()
}

fn gw_phase(w: &World, id: RequestId) -> Option<Phase> {
    w.control.gateway().request(id).map(|r| r.phase)
}

fn check(w: &World) {
    w.control.check_invariants().unwrap();
    w.check_delivery().unwrap();
}

// ---------------------------------------------------------------------------------------------
// The whole cycle
// ---------------------------------------------------------------------------------------------

#[test]
fn open_sleep_wake_delivers_each_message_once_in_order() {
    let mut w = world(1);
    // Opening on a sleeping actor starts it and the open waits for Running.
    w.open(R1, "a").unwrap();
    assert_eq!(phase(&w, "a"), ActorPhase::Running);
    assert!(w.clients[&R1].opened);
    for _ in 0..3 {
        w.send(R1).unwrap();
    }
    // The actor asks to sleep: the engine stops it, the request hibernates.
    let host = w.host_of("a").unwrap();
    let now = w.now;
    w.runners[host].session.sleep_actor(now, "a").unwrap();
    w.pump();
    assert_eq!(phase(&w, "a"), ActorPhase::Sleeping);
    assert_eq!(gw_phase(&w, R1), Some(Phase::Hibernating));
    assert_eq!(w.control.actor("a").unwrap().hibernating_requests, vec![R1]);
    // A client message while asleep wakes it (new generation) with the request listed.
    w.send(R1).unwrap();
    assert_eq!(phase(&w, "a"), ActorPhase::Running);
    assert_eq!(w.control.actor("a").unwrap().generation, Some(1));
    assert_eq!(gw_phase(&w, R1), Some(Phase::Active));
    let listed = w.session_log.iter().rev().find_map(|(_, a)| match a {
        session::Action::StartActor {
            hibernating_requests,
            ..
        } => Some(hibernating_requests.clone()),
        _ => None,
    });
    assert_eq!(
        listed
            .unwrap()
            .iter()
            .map(|h| h.request_id)
            .collect::<Vec<_>>(),
        vec![R1]
    );
    w.send(R1).unwrap();
    assert_eq!(delivered(&w, R1), vec![0, 1, 2, 3, 4]);
    check(&w);
}

#[test]
fn stop_intent_destroys_the_actor_and_closes_its_requests() {
    let mut w = world(1);
    w.open(R1, "a").unwrap();
    let host = w.host_of("a").unwrap();
    let now = w.now;
    w.runners[host].session.stop_actor(now, "a").unwrap();
    w.pump();
    assert!(w.control.actor("a").is_none());
    assert!(w.clients[&R1].closed);
    assert!(
        w.log
            .iter()
            .any(|a| matches!(a, Action::ActorDestroyed { actor_id } if actor_id == "a"))
    );
    let stopped_ok = w.log.iter().any(|a| {
        matches!(
            a,
            Action::ActorStopped {
                reason: StopReason::Stopped {
                    code: StopCode::Ok,
                    ..
                },
                ..
            }
        )
    });
    assert!(stopped_ok);
    check(&w);
}

#[test]
fn destroy_closes_hibernating_requests_and_fails_waiting_opens() {
    let mut w = world(1);
    w.open(R1, "a").unwrap();
    w.control.stop_actor(w.now, "a").unwrap();
    w.pump();
    assert_eq!(gw_phase(&w, R1), Some(Phase::Hibernating));
    w.control.destroy_actor(w.now, "a").unwrap();
    w.pump();
    assert_eq!(gw_phase(&w, R1), None);
    assert!(w.clients[&R1].closed);
    // An open waiting for an actor that cannot be placed fails when it is destroyed.
    w.disconnect(0);
    w.open(R2, "b").unwrap();
    assert_eq!(phase(&w, "b"), ActorPhase::Pending);
    w.control.destroy_actor(w.now, "b").unwrap();
    w.pump();
    assert!(w.log.iter().any(|a| matches!(
        a,
        Action::OpenFailed { request_id, reason: OpenFailure::ActorDestroyed, .. } if *request_id == R2
    )));
    check(&w);
}

// ---------------------------------------------------------------------------------------------
// Runners: handshake, ids, reconnects, loss (in `control_scenarios/runners.rs`), and the
// hand-written runner frames the other sections share
// ---------------------------------------------------------------------------------------------

fn init_msg(slots: u32) -> ToServerInit {
    ToServerInit {
        name: "default".into(),
        version: 1,
        total_slots: slots,
        prepopulate_actor_names: None,
        metadata: None,
    }
}

fn bare_control() -> (Control, Timestamp) {
    let now = Timestamp::from_secs(1);
    let gw = Gateway::new(GatewayConfig::default(), WORLD_GATEWAY, now).unwrap();
    (Control::new(config(), gw, 1, now).unwrap(), now)
}

fn sent(c: &mut Control) -> Vec<(ConnId, ToClient)> {
    let mut out = Vec::new();
    while let Some(a) = c.poll_action() {
        if let Action::Send { conn, frame } = a {
            out.push((conn, wire::decode::<ToClient>(&frame).unwrap()));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Placement
// ---------------------------------------------------------------------------------------------

#[test]
fn placement_respects_slots_and_waits_for_a_runner() {
    let mut w = World::new(config(), GatewayConfig::default(), 2, 1);
    for a in ["a", "b", "c"] {
        w.control.create_actor(w.now, a, World::spec(a)).unwrap();
        w.control.start_actor(w.now, a).unwrap();
    }
    w.pump();
    assert_eq!(phase(&w, "a"), ActorPhase::Pending);
    w.connect(0);
    assert_eq!(phase(&w, "a"), ActorPhase::Running);
    assert_eq!(phase(&w, "b"), ActorPhase::Pending);
    w.connect(1);
    assert_eq!(phase(&w, "b"), ActorPhase::Running);
    assert_eq!(phase(&w, "c"), ActorPhase::Pending);
    assert_ne!(w.host_of("a"), w.host_of("b"));
    // A slot frees up: the oldest pending actor takes it.
    w.control.stop_actor(w.now, "a").unwrap();
    w.pump();
    assert_eq!(phase(&w, "c"), ActorPhase::Running);
    // An actor for another runner name never lands on these runners.
    let mut spec = World::spec("x");
    spec.runner_name = "gpu".into();
    w.control.create_actor(w.now, "x", spec).unwrap();
    w.control.start_actor(w.now, "x").unwrap();
    w.pump();
    assert_eq!(phase(&w, "x"), ActorPhase::Pending);
    check(&w);
}

#[test]
fn draining_runner_gets_no_actors_and_stops_its_own() {
    let mut w = world(2);
    w.control.start_actor(w.now, "a").unwrap();
    w.pump();
    let host = w.host_of("a").unwrap();
    let now = w.now;
    w.runners[host].session.drain(now);
    w.pump();
    assert_eq!(phase(&w, "a"), ActorPhase::Sleeping);
    w.control.start_actor(w.now, "a").unwrap();
    w.pump();
    assert_eq!(w.host_of("a"), Some(1 - host));
    check(&w);
}

// ---------------------------------------------------------------------------------------------
// Checkpoints, acks, idempotence (scripted runner)
// ---------------------------------------------------------------------------------------------

fn events(c: &mut Control, now: Timestamp, evs: Vec<EventWrapper>) -> Result<(), ReceiveError> {
    c.handle_runner_frame(
        now,
        ConnId(1),
        &wire::encode(&ToServer::Events(ToServerEvents(evs))),
    )
}

/// A control with one scripted runner on `ConnId(1)` and actor `a` started on it.
fn scripted() -> (Control, Timestamp) {
    let (mut c, now) = bare_control();
    c.runner_connected(now, ConnId(1), "k").unwrap();
    c.handle_runner_frame(now, ConnId(1), &wire::encode(&ToServer::Init(init_msg(4))))
        .unwrap();
    c.create_actor(now, "a", World::spec("a")).unwrap();
    c.start_actor(now, "a").unwrap();
    let _ = sent(&mut c);
    (c, now)
}

#[test]
fn duplicate_and_stale_events_are_acked_but_applied_once() {
    let (mut c, now) = scripted();
    events(&mut c, now, vec![event("a", 0, 0, running())]).unwrap();
    let first = sent(&mut c);
    assert!(matches!(&first[..], [(_, ToClient::AckEvents(_))]));
    // The same event again (a resend after a reconnect): acked, not applied.
    events(&mut c, now, vec![event("a", 0, 0, running())]).unwrap();
    let again = sent(&mut c);
    let [(_, ToClient::AckEvents(ack))] = &again[..] else {
        panic!("{again:?}")
    };
    assert_eq!(ack.last_event_checkpoints[0].index, 0);
    assert_eq!(c.stats().events_applied, 1);
    assert_eq!(c.stats().events_duplicate, 1);
    // A sleep intent: stop command with the next command index.
    let sleep = intent(ActorIntent::Sleep);
    events(&mut c, now, vec![event("a", 0, 1, sleep)]).unwrap();
    let out = sent(&mut c);
    let stop = out.iter().find_map(|(_, m)| match m {
        ToClient::Commands(cmds) => Some(cmds.0[0].clone()),
        _ => None,
    });
    let stop = stop.unwrap();
    assert_eq!(stop.inner, Command::StopActor);
    assert_eq!((stop.checkpoint.generation, stop.checkpoint.index), (0, 1));
    events(
        &mut c,
        now,
        vec![event("a", 0, 2, stopped(StopCode::Error))],
    )
    .unwrap();
    assert_eq!(c.actor("a").unwrap().phase, ActorPhase::Sleeping);
    // Start again: generation 1; a late event of generation 0 is stale.
    c.start_actor(now, "a").unwrap();
    let _ = sent(&mut c);
    events(&mut c, now, vec![event("a", 0, 3, running())]).unwrap();
    assert_eq!(c.actor("a").unwrap().phase, ActorPhase::Starting);
    assert_eq!(c.stats().events_stale, 1);
    // A generation never started is an error naming it.
    assert_eq!(
        events(&mut c, now, vec![event("a", 5, 0, running())]),
        Err(ReceiveError::FutureGeneration {
            conn: ConnId(1),
            actor_id: "a".into(),
            generation: 5
        })
    );
    assert_eq!(
        events(&mut c, now, vec![event("zz", 0, 0, running())]),
        Err(ReceiveError::ForeignActor {
            conn: ConnId(1),
            actor_id: "zz".into()
        })
    );
    c.check_invariants().unwrap();
}

#[test]
fn unacked_commands_are_resent_on_reconnect_and_acks_clear_them() {
    let (mut c, now) = scripted();
    assert_eq!(c.actor("a").unwrap().unacked_commands, 1);
    c.runner_disconnected(now, ConnId(1)).unwrap();
    c.runner_connected(now, ConnId(2), "k").unwrap();
    c.handle_runner_frame(now, ConnId(2), &wire::encode(&ToServer::Init(init_msg(4))))
        .unwrap();
    let out = sent(&mut c);
    assert!(matches!(out[0], (ConnId(2), ToClient::Init(_))));
    let resent: Vec<_> = out
        .iter()
        .filter_map(|(_, m)| match m {
            ToClient::Commands(cmds) => Some(cmds.0.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(resent.len(), 1);
    assert!(matches!(resent[0].inner, Command::StartActor(_)));
    assert_eq!(c.stats().commands_resent, 1);
    let ack = ToServer::AckCommands(ToServerAckCommands {
        last_command_checkpoints: vec![resent[0].checkpoint.clone()],
    });
    c.handle_runner_frame(now, ConnId(2), &wire::encode(&ack))
        .unwrap();
    assert_eq!(c.actor("a").unwrap().unacked_commands, 0);
    c.check_invariants().unwrap();
}

/// A generation the engine gave up on while its runner was disconnected (start timeout) gets its
/// stop when the runner comes back within the lost threshold, until the runner acknowledges it;
/// otherwise the runner would keep running an actor the engine counts as sleeping.
#[test]
fn an_abandoned_generation_is_stopped_when_its_runner_returns() {
    let (mut c, now) = scripted();
    // Disconnected 25 s after the start; the start timeout (30 s) passes within the runner's
    // lost threshold (10 s), and the runner returns at 31 s.
    c.runner_disconnected(now + Duration::from_secs(25), ConnId(1))
        .unwrap();
    let timeout = now + Duration::from_secs(30);
    c.handle_timeout(timeout);
    assert_eq!(phase_of(&c, "a"), ActorPhase::Sleeping);
    let _ = sent(&mut c);
    let timeout = now + Duration::from_secs(31);
    c.runner_connected(timeout, ConnId(3), "k").unwrap();
    c.handle_runner_frame(
        timeout,
        ConnId(3),
        &wire::encode(&ToServer::Init(init_msg(4))),
    )
    .unwrap();
    let resent = resent_stops(&sent(&mut c));
    assert_eq!(resent.len(), 1, "the abandoned generation's stop");
    assert_eq!(resent[0].generation, 0);
    // Acknowledged: not sent again on the next reconnect.
    let ack = ToServer::AckCommands(ToServerAckCommands {
        last_command_checkpoints: resent.clone(),
    });
    c.handle_runner_frame(timeout, ConnId(3), &wire::encode(&ack))
        .unwrap();
    c.runner_disconnected(timeout, ConnId(3)).unwrap();
    c.runner_connected(timeout, ConnId(4), "k").unwrap();
    c.handle_runner_frame(
        timeout,
        ConnId(4),
        &wire::encode(&ToServer::Init(init_msg(4))),
    )
    .unwrap();
    assert!(resent_stops(&sent(&mut c)).is_empty());
    c.check_invariants().unwrap();
}

/// The stop commands in `out`, as their checkpoints.
fn resent_stops(out: &[(ConnId, ToClient)]) -> Vec<ActorCheckpoint> {
    out.iter()
        .filter_map(|(_, m)| match m {
            ToClient::Commands(cmds) => Some(cmds.0.clone()),
            _ => None,
        })
        .flatten()
        .filter(|w| matches!(w.inner, Command::StopActor))
        .map(|w| w.checkpoint)
        .collect()
}

/// Reconnects the scripted runner `k` on `conn` and returns the stops resent to it.
fn return_runner(c: &mut Control, now: Timestamp, conn: ConnId) -> Vec<(u32, i64)> {
    c.runner_connected(now, conn, "k").unwrap();
    c.handle_runner_frame(now, conn, &wire::encode(&ToServer::Init(init_msg(4))))
        .unwrap();
    resent_stops(&sent(c))
        .into_iter()
        .map(|cp| (cp.generation, cp.index))
        .collect()
}

/// Two generations of one actor abandoned on the same runner (the first start timed out, the
/// second was placed there and lost with the link): the runner may still run the first (it
/// never saw the second start), so both stops wait for it. Keeping only the newest left the
/// first generation running forever while the engine counted the actor asleep (found by
/// `sim_schedule`, `regression-abandoned-generations-one-runner`).
#[test]
fn every_abandoned_generation_on_a_runner_gets_its_stop() {
    let (mut c, now) = scripted();
    // Generation 0 runs on the runner, but its Running never arrives: start timeout at 30 s.
    // The stop goes out on the link and is lost.
    let t = now + Duration::from_secs(30);
    c.handle_timeout(t);
    assert_eq!(phase_of(&c, "a"), ActorPhase::Sleeping);
    let _ = sent(&mut c);
    // Generation 1 is placed on the same runner; its start is lost too, then the link drops.
    c.start_actor(t, "a").unwrap();
    assert_eq!(c.actor("a").unwrap().generation, Some(1));
    let _ = sent(&mut c);
    c.runner_disconnected(t + Duration::from_secs(25), ConnId(1))
        .unwrap();
    // Generation 1's start times out while the runner is away (within its lost threshold).
    c.handle_timeout(t + Duration::from_secs(30));
    assert_eq!(phase_of(&c, "a"), ActorPhase::Sleeping);
    let _ = sent(&mut c);
    let back = t + Duration::from_secs(31);
    let stops = return_runner(&mut c, back, ConnId(2));
    assert_eq!(
        stops,
        vec![(0, 1), (1, 3)],
        "a stop for each abandoned generation"
    );
    // The runner stops generation 0 and acknowledges it: only generation 1's stop is kept.
    let ack = ToServer::AckCommands(ToServerAckCommands {
        last_command_checkpoints: vec![ActorCheckpoint {
            actor_id: "a".into(),
            generation: 0,
            index: 1,
        }],
    });
    c.handle_runner_frame(back, ConnId(2), &wire::encode(&ack))
        .unwrap();
    c.runner_disconnected(back, ConnId(2)).unwrap();
    assert_eq!(return_runner(&mut c, back, ConnId(3)), vec![(1, 3)]);
    c.check_invariants().unwrap();
}

/// Abandoned stops a runner keeps are bounded per actor; the newest survive.
#[test]
fn abandoned_stops_per_actor_are_bounded() {
    let (mut c, now) = scripted();
    let mut t = now;
    let pong = wire::encode(&ToServer::Pong(ToServerPong { ts: 0 }));
    for _ in 0..12 {
        // The runner answers pings and acknowledges nothing.
        c.handle_runner_frame(t, ConnId(1), &pong).unwrap();
        t += Duration::from_secs(30);
        c.handle_timeout(t);
        assert_eq!(phase_of(&c, "a"), ActorPhase::Sleeping);
        c.start_actor(t, "a").unwrap();
        let _ = sent(&mut c);
    }
    c.runner_disconnected(t, ConnId(1)).unwrap();
    let stops = return_runner(&mut c, t, ConnId(2));
    assert_eq!(stops.len(), 8, "{stops:?}");
    let generations: Vec<u32> = stops.iter().map(|&(g, _)| g).collect();
    assert_eq!(generations, (4..12).collect::<Vec<_>>());
    c.check_invariants().unwrap();
}

fn phase_of(c: &Control, actor: &str) -> ActorPhase {
    c.actor(actor).unwrap().phase
}

#[test]
fn session_carries_out_a_resent_start_once() {
    let mut w = world(1);
    w.control.start_actor(w.now, "a").unwrap();
    w.pump();
    let starts = |w: &World| {
        w.session_log
            .iter()
            .filter(|(_, a)| matches!(a, session::Action::StartActor { .. }))
            .count()
    };
    assert_eq!(starts(&w), 1);
    // Reconnect: the engine resends nothing the session acknowledged, and a resent start
    // would be dropped by the session's checkpoint.
    w.disconnect(0);
    w.connect(0);
    assert_eq!(starts(&w), 1);
    assert_eq!(phase(&w, "a"), ActorPhase::Running);
    check(&w);
}

#[test]
fn stop_and_start_timeouts() {
    let (mut c, now) = scripted();
    // No Running within the start timeout: failed start.
    c.handle_timeout(now + Duration::from_secs(30));
    let log: Vec<Action> = core::iter::from_fn(|| c.poll_action()).collect();
    assert!(log.iter().any(|a| matches!(
        a,
        Action::ActorStopped {
            reason: StopReason::StartTimeout,
            ..
        }
    )));
    // Running, then a stop the runner never confirms.
    let now = now + Duration::from_secs(30);
    c.start_actor(now, "a").unwrap();
    let _ = sent(&mut c);
    events(&mut c, now, vec![event("a", 1, 0, running())]).unwrap();
    c.stop_actor(now, "a").unwrap();
    assert_eq!(c.actor("a").unwrap().phase, ActorPhase::Stopping);
    c.handle_timeout(now + Duration::from_secs(30));
    let log: Vec<Action> = core::iter::from_fn(|| c.poll_action()).collect();
    assert!(log.iter().any(|a| matches!(
        a,
        Action::ActorStopped {
            reason: StopReason::StopTimeout,
            ..
        }
    )));
    assert_eq!(c.actor("a").unwrap().phase, ActorPhase::Sleeping);
    c.check_invariants().unwrap();
}

#[test]
fn session_resends_unacked_events_after_reconnect() {
    let mut w = world(1);
    w.control.start_actor(w.now, "a").unwrap();
    w.pump();
    // The runner's sleep intent is lost with the connection; it is resent after the handshake.
    let conn = w.runners[0].conn.take().unwrap();
    let now = w.now;
    w.runners[0].session.disconnected(now);
    w.runners[0].session.sleep_actor(now, "a").unwrap();
    w.pump();
    assert_eq!(w.runners[0].session.unacked_events(), 1);
    w.control.runner_disconnected(now, conn).unwrap();
    w.pump();
    w.connect(0);
    assert_eq!(phase(&w, "a"), ActorPhase::Sleeping);
    assert_eq!(w.runners[0].session.unacked_events(), 0);
    check(&w);
}

#[test]
fn gateway_pings_are_answered_by_the_engine_not_forwarded() {
    let mut gcfg = GatewayConfig::default();
    gcfg.ping_interval = Duration::from_secs(1);
    let mut w = World::new(config(), gcfg, 1, 2);
    w.connect(0);
    w.control
        .create_actor(w.now, "a", World::spec("a"))
        .unwrap();
    w.open(R1, "a").unwrap();
    w.advance(Duration::from_secs(20));
    assert!(w.control.stats().gateway_pings_answered > 0);
    assert_eq!(gw_phase(&w, R1), Some(Phase::Active));
    assert!(w.runners[0].receive_errors.is_empty());
    check(&w);
}

#[test]
fn tunnel_frames_are_the_gateways_bytes_without_the_prefix() {
    // The zero-copy path equals the wire module's re-framing of the same frame.
    let (mut c, now) = scripted();
    events(&mut c, now, vec![event("a", 0, 0, running())]).unwrap();
    let _ = sent(&mut c);
    c.open(
        now,
        R1,
        gateway::OpenRequest::new("a", "/").expect("a path starting with /"),
    )
    .unwrap();
    let mut tunnel = None;
    while let Some(a) = c.poll_action() {
        if let Action::Send { frame, .. } = a {
            tunnel = Some(frame.to_vec());
        }
    }
    let bytes = tunnel.unwrap();
    let msg = wire::decode::<ToClient>(&bytes).unwrap();
    let ToClient::TunnelMessage(t) = msg.clone() else {
        panic!("{msg:?}")
    };
    let versioned = wire::encode_versioned(7, &wire::ToRunner::TunnelMessage(t));
    let (_, reframed) =
        wire::to_runner_as_to_client(&versioned, &wire::DecodeLimits::default()).unwrap();
    assert_eq!(reframed, wire::Reframed::Frame(bytes));
}
