//! Upstream's weak spots (`docs/upstream.md#weak-spots`) 1–8, 12 and 17: one scenario each showing
//! that hws's engines do not have them. Each test drives a real [`Gateway`] and real [`Runner`]s
//! through `hibernating_ws::testing::pair::Pair`, whose frames the test can drop, so every step is
//! explicit.

use core::time::Duration;

use hibernating_ws::gateway::{self, CloseReason, GatewayConfig, Phase, SendError};
use hibernating_ws::runner::{self, GapPolicy, PersistedSocket, Runner, RunnerConfig, SocketId};
use hibernating_ws::testing::msg;
use hibernating_ws::testing::pair::{ACTOR, GW, Pair, What, route, what_up};
use hibernating_ws::wire::{
    self, Headers, RequestId, ToClientTunnelMessageKind, ToServerTunnelMessageKind,
};
use hibernating_ws::{MessageIndex, Timestamp};

fn idx(i: u16) -> MessageIndex {
    MessageIndex::new(i)
}

/// Weak spot 4 (acks lost while no handler is attached) with the actor moving runners: the
/// ack of message 1 is lost, the actor sleeps on runner 0 and wakes on runner 1. Upstream's
/// gateway drops acks while hibernating and its runner never re-acks, so the socket dies of
/// the ack timeout. hws: the restore re-ack, the replay's duplicate re-ack, or both heal it.
#[test]
fn weak_spot_4_lost_ack_heals_after_the_actor_moves() {
    let req = RequestId::from_u32(4);
    let mut net = Pair::with_runners(2).with_open(req);
    net.send(req, b"one").expect("fits");
    // Persisted at the debounce deadline; its ack is lost.
    net.lose(What::Ack(1));
    net.advance(Duration::from_secs(6));
    assert_eq!(net.dropped, [What::Ack(1)]);
    assert_eq!(net.storage[&Pair::socket(req)].server_index, idx(1));
    assert_eq!(net.pending(req), 1);

    net.sleep_actor(0, &[req]);
    assert_eq!(net.phase(req), Some(Phase::Hibernating));
    // The actor starts on runner 1, then the gateway wakes the request there (upstream's
    // order: the wake follows the actor's `Ready`).
    net.start_actor(1);
    net.drive();
    net.gw.wake(net.now, req, route(1)).expect("hibernating");
    net.drive();
    net.advance(Duration::from_secs(2));
    assert_eq!(net.pending(req), 0, "the lost ack healed");
    assert_eq!(net.delivered_indices(req), [1], "delivered once");
    net.advance(Duration::from_secs(40));
    assert_eq!(net.closed(req), None, "no ack timeout");
}

/// Weak spot 12 (closes sent to a hibernating gateway entry are dropped), through the route
/// check: the actor wakes on runner 1 without the socket's metadata (the write was lost), so
/// its restore answers 1000 `ws.meta_not_found_during_restore` before the gateway wakes the
/// request, which is still routed to runner 0. The gateway must close the request then, not
/// replay into a runner that has no socket and collect it 30 s later.
#[test]
fn weak_spot_12_restore_close_reaches_a_hibernating_request() {
    let req = RequestId::from_u32(12);
    let mut net = Pair::with_runners(2).with_open(req);
    net.send(req, b"one").expect("fits");
    net.drive();
    net.sleep_actor(0, &[req]);
    assert_eq!(net.phase(req), Some(Phase::Hibernating));
    // The app's metadata for the socket is lost.
    net.storage.remove(&Pair::socket(req));
    net.start_actor(1);
    net.drive();
    let frame = hibernating_ws::KnownClose::MetaNotFoundDuringRestore.frame();
    assert_eq!(
        net.closed(req),
        Some(&CloseReason::RunnerClosed(frame.clone()))
    );
    assert!(net.gw.request(req).is_none());
    assert!(net.gw_events.contains(&gateway::Action::CloseClient {
        request_id: req,
        frame
    }));
    assert_eq!(net.gw.stats().dropped_wrong_route, 0);
    assert!(!net.records.contains_key(&req), "record deleted");
}

/// The first record upsert of a request fails (the gateway retries at
/// the next keepalive, 45 s later), the actor sleeps and wakes meanwhile, and its restore does
/// not list the request. Upstream's restore case 3 closes the socket locally and tells no one,
/// so the gateway kept a request with no socket behind it, forever once a later upsert
/// succeeded. The runner now publishes the stale close, and the gateway closes the request.
#[test]
fn failed_record_upsert_leaves_no_ghost_request() {
    let mut net = Pair::new(GatewayConfig::default(), &RunnerConfig::default(), 1);
    let req = RequestId::from_u32(21);
    net.start_actor(0);
    net.fail_upserts = 1;
    net.open(req, 0);
    assert!(!net.records.contains_key(&req), "the upsert failed");
    net.sleep_actor(0, &[req]);
    assert_eq!(net.phase(req), Some(Phase::Hibernating));
    net.start_actor(0);
    net.drive();
    let frame = hibernating_ws::KnownClose::StaleMetadata.frame();
    assert_eq!(
        net.closed(req),
        Some(&CloseReason::RunnerClosed(frame.clone()))
    );
    assert!(net.gw_events.contains(&gateway::Action::CloseClient {
        request_id: req,
        frame
    }));
    // Nothing is left anywhere.
    net.advance(Duration::from_secs(100));
    assert!(net.gw.is_empty());
    assert!(net.runners[0].is_empty());
    assert!(net.storage.is_empty() && net.records.is_empty());
}

/// Weak spot 17 (a runner cannot hand a socket back except by the actor stopping): hws's
/// `Runner::hibernate` hands a socket back to drain it; the actor then stops and the request
/// resumes on the actor's next runner with nothing lost or delivered twice. (The simulator found
/// that a hand-back *not* followed by the actor stopping loses the connection to the ack
/// timeout: the gateway wakes it into the still-running actor, which no longer holds the socket;
/// `Runner::hibernate` documents the drain contract.)
#[test]
fn weak_spot_17_hand_back_then_stop_resumes_on_the_next_runner() {
    let req = RequestId::from_u32(17);
    let mut net = Pair::with_runners(2).with_open(req);
    net.send(req, b"one").expect("fits");
    net.send(req, b"two").expect("fits");
    net.drive();
    assert_eq!(net.delivered_indices(req), [1, 2]);
    net.runners[0]
        .hibernate(net.now, Pair::socket(req))
        .expect("open hibernatable socket");
    net.drive();
    assert_eq!(net.phase(req), Some(Phase::Hibernating));
    assert!(
        net.gw_events.iter().any(
            |a| matches!(a, gateway::Action::RequestWake { request_id, .. } if *request_id == req)
        ),
        "pending messages ask for a wake at once"
    );
    // Drain: the actor stops, starts on runner 1, the request wakes there.
    net.sleep_actor(0, &[req]);
    net.start_actor(1);
    net.drive();
    net.gw.wake(net.now, req, route(1)).expect("hibernating");
    net.drive();
    net.send(req, b"three").expect("fits");
    net.advance(Duration::from_secs(6));
    assert_settled(&net, req, &[1, 2, 3], "nothing lost or repeated");
}

/// `req` got exactly the messages `delivered` (by index, in order), holds nothing unacked and is
/// still open.
fn assert_settled(net: &Pair, req: RequestId, delivered: &[u16], what: &str) {
    assert_eq!(net.delivered_indices(req), delivered, "{what}");
    assert_eq!(net.pending(req), 0, "{what}: nothing pending");
    assert_eq!(net.closed(req), None, "{what}: still open");
}

fn runner_frame(req: RequestId, kind: ToServerTunnelMessageKind) -> wire::ToServerTunnelMessage {
    wire::ToServerTunnelMessage {
        message_id: wire::MessageId {
            gateway_id: GW,
            request_id: req,
            message_index: idx(0),
        },
        kind,
    }
}

fn ack(req: RequestId, index: u16) -> wire::ToServerTunnelMessage {
    runner_frame(
        req,
        ToServerTunnelMessageKind::WebSocketMessageAck(wire::ToServerWebSocketMessageAck {
            index: idx(index),
        }),
    )
}

/// Weak spot 1 (the pending-size counter is never decremented, so a long-lived socket trips the
/// limit with nothing pending): hws subtracts released bytes, so a socket that moves 25 times
/// its byte limit through acks never trips it, and the buffer is empty at the end.
#[test]
fn weak_spot_1_pending_bytes_are_released_on_ack() {
    let mut gateway = GatewayConfig::default();
    gateway.max_pending_bytes = 4_096;
    gateway.max_gateway_pending_bytes = 4_096;
    let runner = RunnerConfig::default().with_persist_bytes(1_000);
    let req = RequestId::from_u32(1);
    let mut net = Pair::new(gateway, &runner, 1).with_open(req);
    let payload = [0x5a_u8; 200];
    for round in 0..100u32 {
        for _ in 0..5 {
            net.send(req, &payload).expect("acks keep the buffer small");
        }
        net.drive();
        assert!(net.gw.stats().pending_bytes <= 4_096, "round {round}");
    }
    net.advance(Duration::from_secs(6));
    assert_eq!(net.delivered_indices(req).len(), 500);
    assert_eq!(net.gw.stats().pending_bytes, 0);
    assert_eq!(net.gw.stats().messages_acked, 500);
    assert_eq!(net.closed(req), None);
}

/// Weak spot 2 (65 535 pending allowed while the ack rule only works within 32 766): hws caps the
/// count at 32 767, refuses a larger configuration, and a cumulative ack within a full window
/// releases exactly what it covers. Then 70 000 messages cross the 65 535 → 0 wrap end to end
/// with periodic acks, in order, exactly once.
#[test]
fn weak_spot_2_count_cap_matches_the_wrap_window() {
    let mut too_big = GatewayConfig::default();
    too_big.max_pending_messages = 32_768;
    assert!(too_big.validate().is_err());

    let req = RequestId::from_u32(2);
    let mut net = Pair::with_runners(1).with_open(req);
    for _ in 0..32_767 {
        net.send(req, b"m").expect("within the window");
    }
    assert_eq!(
        net.send(req, b"m"),
        Err(SendError::LimitExceeded {
            request_id: req,
            limit: gateway::Limit::Count
        })
    );
    // (That closed the request under the default Close policy; a fresh one shows the ack rule.)
    let req = RequestId::from_u32(22);
    net.down.clear();
    net.open(req, 0);
    net.down.clear();
    for _ in 0..32_767 {
        net.send(req, b"m").expect("within the window");
    }
    net.down.clear(); // never reach the runner: only acks matter here
    net.gw
        .handle_runner_message(net.now, route(0), ack(req, 1))
        .expect("valid ack");
    assert_eq!(net.pending(req), 32_766, "ack 1 releases exactly one");
    net.gw
        .handle_runner_message(net.now, route(0), ack(req, 32_767))
        .expect("valid ack");
    assert_eq!(
        net.pending(req),
        0,
        "the newest index releases the whole window"
    );

    // 70 000 messages across the wrap, end to end.
    let runner = RunnerConfig::default().with_persist_bytes(50);
    let req = RequestId::from_u32(23);
    let mut net = Pair::new(GatewayConfig::default(), &runner, 1).with_open(req);
    for _ in 0..70 {
        for _ in 0..1_000 {
            net.send(req, b"0123456789").expect("acks keep room");
        }
        net.drive();
    }
    net.advance(Duration::from_secs(6));
    let delivered = net.delivered_indices(req);
    assert_eq!(delivered.len(), 70_000);
    let expected: Vec<u16> = (1..=70_000u32)
        .map(|i| u16::try_from(i % 65_536).expect("below 65 536"))
        .collect();
    assert_eq!(delivered, expected, "in order across the wrap, once each");
    assert_eq!(net.pending(req), 0);
    assert_eq!(net.closed(req), None);
}

/// Weak spot 3 (unvalidated acks silently drop entries): an ack for an index never sent, or far
/// behind, is ignored and counted; a valid one releases exactly what it covers.
#[test]
fn weak_spot_3_acks_are_validated() {
    let req = RequestId::from_u32(3);
    let mut net = Pair::with_runners(1).with_open(req);
    for _ in 0..5 {
        net.send(req, b"m").expect("room");
    }
    net.down.clear(); // pending 1..=5, nothing delivered
    let now = net.now;
    // Never sent.
    net.gw
        .handle_runner_message(now, route(0), ack(req, 9))
        .expect("dropped, not an error");
    // Far behind (32 767 before the oldest pending − 1).
    net.gw
        .handle_runner_message(now, route(0), ack(req, 0u16.wrapping_sub(32_767)))
        .expect("dropped, not an error");
    assert_eq!(net.pending(req), 5, "neither released anything");
    let stats = net.gw.stats();
    assert_eq!((stats.acks_invalid, stats.acks_stale), (1, 1));
    net.gw
        .handle_runner_message(now, route(0), ack(req, 3))
        .expect("valid");
    assert_eq!(net.pending(req), 2);
    assert_eq!(
        net.gw.request(req).and_then(|i| i.oldest_unacked),
        Some(idx(4))
    );
}

/// Weak spot 5 (the ack timeout runs across hibernation and is not reset on replay): the actor
/// sleeps with a message unacked and wakes 45 s later (slower than the 30 s ack timeout); hws
/// pauses the clock while hibernating and restarts it at the replay, so the connection lives and
/// the message is delivered and acked after the wake.
#[test]
fn weak_spot_5_ack_timeout_pauses_while_hibernating() {
    let req = RequestId::from_u32(5);
    let mut net = Pair::with_runners(1).with_open(req);
    net.send(req, b"late").expect("room");
    // The actor stops before the message reaches it.
    net.lose(What::Msg(1));
    net.drive();
    net.sleep_actor(0, &[req]);
    assert_eq!(net.phase(req), Some(Phase::Hibernating));
    net.advance(Duration::from_secs(45));
    assert_eq!(net.closed(req), None, "no ack timeout while hibernating");
    net.start_actor(0);
    net.gw.wake(net.now, req, route(0)).expect("hibernating");
    net.drive();
    net.advance(Duration::from_secs(20));
    assert_settled(&net, req, &[1], "delivered once each");
}

/// A runner (at 1 s) whose actor [`ACTOR`] restored socket `s` at server index `server_index`.
fn restored(s: SocketId, server_index: u16) -> Runner {
    let now = Timestamp::from_secs(1);
    let mut r = Runner::new(RunnerConfig::default(), now).expect("valid");
    r.actor_starting(now, ACTOR, vec![s.into()])
        .expect("new actor");
    let meta = PersistedSocket {
        socket: s,
        server_index: idx(server_index),
        client_index: idx(0),
        path: "/".into(),
        headers: Headers::new(),
    };
    r.restore(now, ACTOR, vec![meta]).expect("restore");
    r
}

/// A one-byte binary message with index `i` for socket `s`.
fn ws_message(s: SocketId, i: u16) -> wire::ToClientTunnelMessage {
    let kind = ToClientTunnelMessageKind::WebSocketMessage(wire::ToClientWebSocketMessage {
        data: b"x".to_vec().into(),
        binary: true,
    });
    msg::to_runner(GW, s.request_id, i, kind)
}

/// Weak spot 6 (rivetkit's non-wrapping "index increased" check skips an ack at 65 535 → 0):
/// the runner acks exactly the persisted index on both sides of the wrap.
#[test]
fn weak_spot_6_acks_continue_across_the_wrap() {
    let now = Timestamp::from_secs(1);
    let s = Pair::socket(RequestId::from_u32(6));
    let mut r = restored(s, 65_534);
    let mut acks = Vec::new();
    let drain = |r: &mut Runner, acks: &mut Vec<u16>| {
        while let Some(a) = r.poll_action() {
            match a {
                runner::Action::Publish { frame, .. } => {
                    if let What::Ack(i) = what_up(&frame) {
                        acks.push(i);
                    }
                }
                runner::Action::Persist { server_index, .. } => {
                    r.persisted(now, s, server_index).expect("in flight");
                }
                _ => {}
            }
        }
    };
    drain(&mut r, &mut acks);
    for (i, then) in [(65_535u16, true), (0, true), (1, false)] {
        r.handle_tunnel_message(now, ws_message(s, i))
            .expect("in order");
        if then {
            // Persist now (the actor stops and flushes; simplest way to force a cycle).
            let deadline = r.poll_timeout().expect("a persist deadline");
            r.handle_timeout(deadline);
        }
        drain(&mut r, &mut acks);
    }
    r.handle_timeout(r.poll_timeout().expect("the last persist"));
    drain(&mut r, &mut acks);
    assert_eq!(
        acks,
        [65_534, 65_535, 0, 1],
        "restore ack, then one per persist, wrapping"
    );
}

/// Weak spot 7 (TS compares at 32 767.5, Rust at 32 767): one serial arithmetic, and both engines
/// agree with it at every distance. The runner's duplicate window is exactly the gateway's stale
/// window; 32 768 is a gap for the runner and never releases anything at the gateway.
#[test]
fn weak_spot_7_one_arithmetic_for_both_engines() {
    let p = 1_000u16;
    for d in [0u16, 1, 2, 32_766, 32_767, 32_768, 32_769, 65_534, 65_535] {
        let r = p.wrapping_add(d);
        let after = idx(r).is_after(idx(p));
        let before = idx(r).is_before(idx(p));
        assert_eq!(after, (1..=32_767).contains(&d), "δ {d}");
        assert_eq!(before, d >= 32_769, "δ {d}");

        // Runner: a socket at p receives index r.
        let now = Timestamp::from_secs(1);
        let s = Pair::socket(RequestId::from_u32(7));
        let mut runner = restored(s, p - 1);
        // Deliver p: the socket is at p and past the restore's "before the replay" state.
        let message = |i: u16| ws_message(s, i);
        runner
            .handle_tunnel_message(now, message(p))
            .expect("in order");
        assert_eq!(runner.stats().delivered, 1);
        let (dups, gaps) = (runner.stats().duplicates, runner.stats().gap_closes);
        runner
            .handle_tunnel_message(now, message(r))
            .expect("handled");
        let st = runner.stats();
        let verdict = if st.duplicates > dups {
            "duplicate"
        } else if st.gap_closes > gaps {
            "gap"
        } else {
            "delivered"
        };
        let expected = match d {
            0 => "duplicate",
            1 => "delivered",
            _ if before => "duplicate",
            _ => "gap",
        };
        assert_eq!(verdict, expected, "runner at δ {d}");
    }

    // Gateway: pending 1..=5 (released through 0): an ack δ behind index 0 is stale iff
    // 0 - δ is before 0, i.e. δ in 1..=32_767; δ = 32_768 is invalid (releases nothing).
    for (delta, stale) in [
        (1u16, true),
        (32_767, true),
        (32_768, false),
        (32_769, false),
    ] {
        let req = RequestId::from_u32(70);
        let mut net = Pair::with_runners(1).with_open(req);
        for _ in 0..5 {
            net.send(req, b"m").expect("room");
        }
        net.down.clear();
        let a = 0u16.wrapping_sub(delta);
        net.gw
            .handle_runner_message(net.now, route(0), ack(req, a))
            .expect("dropped, not an error");
        let s = net.gw.stats();
        assert_eq!(net.pending(req), 5, "δ {delta} released nothing");
        assert_eq!(
            (s.acks_stale == 1, s.acks_invalid == 1),
            (stale, !stale),
            "δ {delta}"
        );
        assert_eq!(idx(a).is_before(idx(0)), stale);
    }
}

/// Weak spot 8 (a message lost in transit produces a gap and a 1008 close although the gateway
/// still buffers it): with the runner's `Await` gap policy and the gateway's retransmit timer,
/// a lost message heals in order. The Rivet-compatible `Close` policy still closes.
#[test]
fn weak_spot_8_a_lost_message_heals_by_retransmit() {
    let mut gateway = GatewayConfig::default();
    gateway.retransmit_timeout = Some(Duration::from_secs(1));
    let runner = RunnerConfig::default().with_gap_policy(GapPolicy::Await);
    let req = RequestId::from_u32(8);
    let mut net = Pair::new(gateway.clone(), &runner, 1).with_open(req);
    net.lose(What::Msg(2));
    for _ in 0..3 {
        net.send(req, b"m").expect("room");
    }
    net.drive();
    assert_eq!(net.delivered_indices(req), [1], "3 is held behind the gap");
    net.advance(Duration::from_secs(8));
    assert_settled(&net, req, &[1, 2, 3], "healed, in order, once");
    assert!(net.gw.stats().messages_retransmitted > 0);

    // Rivet-compatible policy: the same loss closes with 1008.
    let mut net = Pair::new(gateway, &RunnerConfig::default(), 1);
    net.start_actor(0);
    net.open(req, 0);
    net.lose(What::Msg(2));
    for _ in 0..3 {
        net.send(req, b"m").expect("room");
    }
    net.drive();
    assert_eq!(
        net.closed(req),
        Some(&CloseReason::RunnerClosed(
            hibernating_ws::KnownClose::MessageIndexSkip.frame()
        ))
    );
}
