//! Scenarios 1–20, one test each.

use super::*;

#[test]
fn scenario_01_open_is_index_0_messages_from_1_and_open_is_not_buffered() {
    let mut h = Harness::new();
    let id = rid(1);
    let opened = h.open(id);
    let open = tunnel(&opened);
    assert_eq!(open.len(), 1);
    let (route, msg) = &open[0];
    assert_eq!(*route, ROUTE);
    assert_eq!(msg.message_id.message_index, idx(0));
    assert_eq!(msg.message_id.gateway_id, GW);
    match &msg.kind {
        ToClientTunnelMessageKind::WebSocketOpen(o) => {
            assert_eq!(o.path, "/ws");
            assert_eq!(o.headers.get("x-test"), Some("1"));
        }
        other => panic!("expected an open, got {other:?}"),
    }
    h.accept(id, true);
    let mut sent = Vec::new();
    for i in 1..=5u16 {
        assert_eq!(h.send(id, b"m"), Ok(idx(i)));
        sent.extend(h.drain());
    }
    assert_eq!(ws_indices(&sent), [1, 2, 3, 4, 5]);
    // Only the five WebSocket messages are buffered; the open (index 0) never was.
    assert_eq!(h.window(id), (5, Some(idx(1))));
    assert_eq!(h.gw.request(id).map(|i| i.next_index), Some(idx(6)));
    // A close consumes the next index too (sent once everything is acked).
    h.ack(id, 5);
    h.gw.client_close(h.now, id, Some(CloseFrame::new(1000, "bye")))
        .expect("live");
    let a = h.drain();
    assert_eq!(runner_closes(&a), [(6, Some(1000), Some("bye".into()))]);
}

#[test]
fn scenario_02_non_hibernatable_buffers_nothing_and_has_no_limits() {
    let mut config = GatewayConfig::default();
    config.max_pending_bytes = 64;
    config.max_pending_messages = 2;
    config.max_gateway_pending_bytes = 64;
    let mut h = Harness::with(config);
    let id = rid(2);
    h.active(id, false);
    let payload = [7u8; 200]; // alone 3× the byte limit
    let mut a = Vec::new();
    for i in 1..=10u16 {
        assert_eq!(h.send(id, &payload), Ok(idx(i)));
        a.extend(h.drain());
    }
    assert_eq!(ws_indices(&a), (1..=10).collect::<Vec<_>>());
    assert_eq!(h.pending(id), 0);
    assert_eq!(h.gw.stats().pending_bytes, 0);
    // Acks are ignored (upstream: warn), and counted.
    assert!(h.ack(id, 5).is_empty());
    assert_eq!(h.gw.stats().acks_not_hibernatable, 1);
    assert_eq!(h.gw.request(id).map(|r| r.phase), Some(Phase::Active));
}

#[test]
fn scenario_03_cumulative_ack_window_duplicates_and_ack_ahead() {
    let (mut h, id) = Harness::active_request(3, true);
    h.send_n(id, 5, b"x");
    h.drain();
    h.ack(id, 3);
    assert_eq!(h.window(id), (2, Some(idx(4))));
    // Duplicate and older acks are no-ops.
    h.ack(id, 3);
    assert_eq!(h.pending_after_ack(id, 1), 2);
    // An ack ahead of the last index sent is rejected (upstream accepts it and drops 4 and 5).
    assert_eq!(h.pending_after_ack(id, 9), 2);
    assert_eq!(h.pending_after_ack(id, 5), 0);
    let s = h.gw.stats();
    assert_eq!((s.acks_applied, s.acks_stale, s.acks_invalid), (2, 2, 1));
    assert_eq!(s.messages_acked, 5);
}

#[test]
fn scenario_04_wrap_65534_65535_0_1_with_acks() {
    let (mut h, id) = Harness::active_request(4, true);
    // Walk the counter to 65 534, acking every 1 000 messages.
    h.walk_to(id, 65_533, 1_000);
    h.drain();
    assert_eq!(h.pending(id), 0);
    let got: Vec<u16> = (0..4)
        .map(|_| h.send(id, b"w").expect("room").get())
        .collect();
    assert_eq!(got, [65_534, 65_535, 0, 1]);
    assert_eq!(ws_indices(&h.drain()), [65_534, 65_535, 0, 1]);
    h.ack(id, 65_535);
    assert_eq!(h.window(id), (2, Some(idx(0))));
    // An ack "behind" across the wrap is stale, not a release of everything.
    assert_eq!(h.pending_after_ack(id, 65_534), 2);
    assert_eq!(h.pending_after_ack(id, 1), 0);
    assert_eq!(h.gw.stats().acks_invalid, 0);
}

#[test]
fn scenario_05_window_edge_is_capped_below_half_the_index_space() {
    // Upstream allows 65 535 pending, but its ack rule only works within 32 766: an ack then
    // wrongly drops newer entries. hws caps the window at 32 767, where every ack is unambiguous.
    let mut over = GatewayConfig::default();
    over.max_pending_messages = 32_768;
    assert!(Gateway::new(over, GW, Timestamp::ZERO).is_err());

    let (mut h, id) = Harness::active_request(5, true);
    h.send_n(id, 32_767, b"");
    h.drain();
    assert_eq!(h.window(id), (32_767, Some(idx(1))));
    // The oldest − 1 (index 0) is stale, the newest (32 767) releases everything, and an ack
    // one past the newest (32 768) is invalid rather than ambiguous.
    h.ack(id, 32_768);
    assert_eq!(h.pending_after_ack(id, 0), 32_767);
    assert_eq!(h.pending_after_ack(id, 1), 32_766);
    assert_eq!(h.pending_after_ack(id, 32_767), 0);
    let s = h.gw.stats();
    assert_eq!((s.acks_invalid, s.acks_stale, s.acks_applied), (1, 1, 2));
}

#[test]
fn scenario_06_byte_limit_exact_and_decremented_on_ack() {
    let f = frame_len(10);
    let mut config = GatewayConfig::default();
    config.max_pending_bytes = 3 * f;
    let mut h = Harness::with(config);
    let id = rid(6);
    h.active(id, true);
    // Exactly at the limit is allowed (upstream checks with `>` too).
    h.send_n(id, 3, &[0; 10]);
    assert_eq!(h.gw.request(id).map(|r| r.pending_bytes), Some(3 * f));
    // Released bytes are subtracted (upstream never subtracts, so its counter is a lifetime
    // budget): after the ack the same traffic fits again, forever.
    h.drain();
    h.ack(id, 3);
    assert_eq!(h.gw.request(id).map(|r| r.pending_bytes), Some(0));
    h.send_n(id, 3, &[0; 10]);
    // One byte over is refused: the request closes (Close policy).
    assert_eq!(
        h.send(id, &[0; 1]),
        Err(SendError::LimitExceeded {
            request_id: id,
            limit: Limit::RequestBytes
        })
    );
    let a = h.drain();
    assert_eq!(closed(&a), [CloseReason::PendingLimit(Limit::RequestBytes)]);
    assert_eq!(client_closes(&a), [KnownClose::PendingLimitReached.frame()]);
    let (code, reason) = downstream_closed();
    assert_eq!(runner_closes(&a), [(7, code, reason)]);
}

#[test]
fn scenario_07_count_limit_is_32767_not_65535() {
    let (mut h, id) = Harness::active_request(7, true);
    h.send_n(id, 32_767, b"");
    // Upstream refuses only at 65 535 pending; hws at 32 768.
    assert_eq!(
        h.send(id, b""),
        Err(SendError::LimitExceeded {
            request_id: id,
            limit: Limit::Count
        })
    );
    let a = h.drain();
    assert_eq!(closed(&a), [CloseReason::PendingLimit(Limit::Count)]);
    assert!(h.gw.request(id).is_none());
    assert_eq!(h.gw.stats().pending_messages, 0);
}

#[test]
fn scenario_08_ack_timeout_fires_exactly() {
    let (mut h, id) = Harness::active_request(8, true);
    h.advance(secs(1));
    let t0 = h.now;
    h.send(id, b"unacked").expect("room");
    // Upstream: `elapsed > 30 s`, checked by a 15 s GC tick (collected between 30 s and ~45 s).
    // hws: an exact deadline at sent_at + 30 s.
    let a = h.run_to(t0 + secs(30) - US);
    assert!(closed(&a).is_empty());
    assert!(pings(&a) > 0, "pings kept the tunnel alive");
    let a = h.run_to(t0 + secs(30));
    assert_eq!(
        closed(&a),
        [CloseReason::Collected(GcReason::AckTimeout {
            first: idx(1),
            last: idx(1)
        })]
    );
    assert_eq!(client_closes(&a), [KnownClose::GarbageCollected.frame()]);
    let (code, reason) = downstream_closed();
    assert_eq!(runner_closes(&a), [(2, code, reason)]);
    assert_eq!(count(&a, is_delete), 1);
}

#[test]
fn scenario_09_keepalive_keeps_the_request_and_its_absence_collects_after_90s() {
    let (mut h, id) = Harness::active_request(9, true);
    let t_accept = h.now;
    h.gw.actor_stopped(h.now, id).expect("live");
    let a = h.drain();
    assert_eq!(count(&a, |a| matches!(a, Action::Hibernated { .. })), 1);
    // Refreshed every 45 s and confirmed: still there after 450 s.
    let a = h.run_to(t_accept + secs(450));
    assert_eq!(
        count(&a, |a| matches!(a, Action::UpsertHibernatingRecord { .. })),
        10
    );
    assert_eq!(h.gw.request(id).map(|r| r.phase), Some(Phase::Hibernating));
    // From now on the record store fails: collected exactly 90 s after the last success.
    h.auto_upsert = false;
    let a = h.run_to(t_accept + secs(540) - US);
    assert!(closed(&a).is_empty());
    for a in &a {
        if let Action::UpsertHibernatingRecord { request_id, .. } = a {
            h.gw.hibernating_record_failed(h.now, *request_id)
                .expect("live");
        }
    }
    let a = h.run_to(t_accept + secs(540));
    assert_eq!(
        closed(&a),
        [CloseReason::Collected(GcReason::HibernationTimeout)]
    );
    assert_eq!(client_closes(&a), [KnownClose::GarbageCollected.frame()]);
    // Hibernating: nothing is published to a runner.
    assert!(runner_closes(&a).is_empty());
    assert_eq!(h.gw.stats().record_upserts_failed, 1);
}

#[test]
fn scenario_10_non_hibernatable_request_is_removed_when_the_client_goes() {
    // Upstream: GatewayClosed flags it and a later GC tick removes it. hws: removed at once.
    let (mut h, id) = Harness::active_request(10, false);
    h.gw.client_close(h.now, id, None).expect("live");
    let a = h.drain();
    assert_eq!(runner_closes(&a), [(1, Some(1000), None)]);
    assert_eq!(closed(&a), [CloseReason::ClientGone]);
    assert_eq!(count(&a, is_delete), 0, "never hibernatable: no record");
    assert!(h.gw.request(id).is_none());
    assert!(h.gw.is_empty());
    assert_eq!(h.gw.poll_timeout(), h.gw.poll_timeout()); // no panic on stale timers
    let a = h.advance(secs(120));
    assert!(
        a.is_empty(),
        "stale timers of a removed request do nothing: {a:?}"
    );
}

#[test]
fn scenario_11_collected_request_is_removed_in_the_same_step() {
    // Upstream: phase 1 flags the entry, phase 2 removes it once its handler detached.
    let (mut h, id) = Harness::active_request(11, true);
    h.send(id, b"a").expect("room");
    let a = h.advance(secs(30));
    assert_eq!(closed(&a).len(), 1);
    assert!(h.gw.request(id).is_none());
    assert_eq!(h.gw.len(), 0);
    let s = h.gw.stats();
    assert_eq!((s.pending_messages, s.pending_bytes, s.requests), (0, 0, 0));
    // The id is free again at once.
    h.open(id);
    assert_eq!(h.gw.request(id).map(|r| r.phase), Some(Phase::AwaitingOpen));
}

#[test]
fn scenario_12_hibernate_with_pending_wakes_at_once_and_replays_verbatim() {
    let (mut h, id) = Harness::active_request(12, true);
    let mut originals = Vec::new();
    h.send_n(id, 3, b"p");
    for a in h.drain() {
        if let Action::Publish { frame, .. } = a {
            originals.push(frame);
        }
    }
    h.ack(id, 1);
    h.gw.actor_stopped(h.now, id).expect("live");
    let a = h.drain();
    assert!(matches!(
        a.as_slice(),
        [Action::Hibernated { .. }, Action::RequestWake { .. }]
    ));
    // While hibernating, new messages are buffered and not published; no second wake request.
    assert_eq!(h.send(id, b"q"), Ok(idx(4)));
    let a = h.drain();
    assert!(a.is_empty(), "{a:?}");
    h.advance(secs(10));
    h.gw.wake(h.now, id, ROUTE2).expect("hibernating");
    let a = h.drain();
    let replay = tunnel(&a);
    assert!(replay.iter().all(|(route, _)| *route == ROUTE2));
    assert_eq!(ws_indices(&a), [2, 3, 4]);
    // Same allocations as first published: no re-encoding.
    let frames: Vec<&Frame> = a
        .iter()
        .filter_map(|a| match a {
            Action::Publish { frame, .. } => Some(frame),
            _ => None,
        })
        .collect();
    assert!(Frame::ptr_eq(frames[0], &originals[1]));
    assert!(Frame::ptr_eq(frames[1], &originals[2]));
    // No open on wake; the counter continues.
    assert_eq!(h.send(id, b"r"), Ok(idx(5)));
    let a = h.drain();
    assert_eq!(tunnel(&a)[0].0, ROUTE2);
    assert_eq!(h.gw.request(id).map(|r| r.stats.messages_resent), Some(3));
}

#[test]
fn scenario_13_ack_while_hibernating_applies() {
    // Upstream drops acks that arrive while no handler is attached.
    let (mut h, id) = Harness::active_request(13, true);
    h.send_n(id, 3, b"m");
    h.gw.actor_stopped(h.now, id).expect("live");
    h.drain();
    assert_eq!(h.pending_after_ack(id, 3), 0);
    assert_eq!(h.gw.stats().pending_bytes, 0);
    h.gw.wake(h.now, id, ROUTE2).expect("hibernating");
    assert!(ws_indices(&h.drain()).is_empty(), "nothing left to replay");
}

#[test]
fn scenario_14_wake_of_a_collected_request_is_an_explicit_error() {
    let (mut h, id) = Harness::active_request(14, true);
    h.send(id, b"m").expect("room");
    h.gw.actor_stopped(h.now, id).expect("live");
    let a = h.drain();
    assert_eq!(count(&a, is_wake), 1);
    let t = h.now;
    assert!(closed(&h.run_to(t + secs(60) - US)).is_empty());
    let a = h.run_to(t + secs(60));
    assert_eq!(closed(&a), [CloseReason::Collected(GcReason::WakeTimeout)]);
    assert_eq!(client_closes(&a), [KnownClose::GarbageCollected.frame()]);
    assert_eq!(
        h.gw.wake(h.now, id, ROUTE2),
        Err(WakeError::UnknownRequest { request_id: id })
    );
}

#[test]
fn scenario_15_client_close_while_hibernating_is_delivered_after_the_replay() {
    // Upstream deletes the record first (`docs/upstream.md#client-close-while-hibernating`), so the
    // woken actor treats the socket as stale and never sees the client's code; hws replays,
    // publishes the client's close, then deletes.
    let (mut h, id) = Harness::active_request(15, true);
    h.send(id, b"1").expect("room");
    h.send(id, b"2").expect("room");
    h.gw.actor_stopped(h.now, id).expect("live");
    h.drain();
    h.gw.client_close(h.now, id, Some(CloseFrame::new(4000, "bye")))
        .expect("live");
    let a = h.drain();
    assert!(
        a.is_empty(),
        "the wake was already requested; nothing is deleted yet: {a:?}"
    );
    h.gw.wake(h.now, id, ROUTE2).expect("hibernating");
    let mut a = h.drain();
    assert_eq!(ws_indices(&a), [1, 2]);
    // The close waits for the acks of the replay.
    assert_eq!(runner_closes(&a), []);
    a.extend(h.ack(id, 2));
    assert_eq!(runner_closes(&a), [(3, Some(4000), Some("bye".into()))]);
    let kinds: Vec<&str> = a
        .iter()
        .map(|a| match a {
            Action::Publish { .. } => "publish",
            Action::DeleteHibernatingRecord { .. } => "delete",
            Action::Closed { .. } => "closed",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["publish", "publish", "publish", "delete", "closed"]);
    assert_eq!(
        closed(&a),
        [CloseReason::ClientClosed(CloseFrame::new(4000, "bye"))]
    );
    assert!(client_closes(&a).is_empty(), "the client closed first");

    // Without pending data the close itself requests the wake; a stream end maps to 1000.
    let id = rid(150);
    h.active(id, true);
    h.gw.actor_stopped(h.now, id).expect("live");
    assert_eq!(count(&h.drain(), is_wake), 0);
    h.gw.client_close(h.now, id, None).expect("live");
    assert_eq!(count(&h.drain(), is_wake), 1);
    h.gw.wake(h.now, id, ROUTE).expect("hibernating");
    let a = h.drain();
    assert_eq!(runner_closes(&a), [(1, Some(1000), None)]);
    assert_eq!(closed(&a), [CloseReason::ClientGone]);
}

#[test]
fn scenario_16_close_to_runner_rules() {
    let mut h = Harness::new();
    // Client close frame: forwarded verbatim.
    h.active(rid(1), true);
    h.gw.client_close(h.now, rid(1), Some(CloseFrame::new(4001, "x")))
        .expect("live");
    assert_eq!(
        runner_closes(&h.drain()),
        [(1, Some(4001), Some("x".into()))]
    );
    // Stream ended: 1000, no reason.
    h.active(rid(2), false);
    h.gw.client_close(h.now, rid(2), None).expect("live");
    assert_eq!(runner_closes(&h.drain()), [(1, Some(1000), None)]);
    // Errors: 1011 ws.downstream_closed (here: open timeout).
    h.open(rid(3));
    let a = h.advance(secs(15));
    let (code, reason) = downstream_closed();
    assert_eq!(runner_closes(&a), [(1, code, reason)]);
    assert_eq!(closed(&a), [CloseReason::OpenTimeout]);
    assert_eq!(client_closes(&a), [KnownClose::OpenTimeout.frame()]);
    // Hibernation: no close at all.
    h.active(rid(4), true);
    h.gw.actor_stopped(h.now, rid(4)).expect("live");
    assert!(runner_closes(&h.drain()).is_empty());
    // A runner close is not echoed back (upstream echoes a 1000 close).
    h.active(rid(5), true);
    let a = h
        .runner(rid(5), close_kind(Some(4002), Some("done"), false))
        .expect("accepted");
    assert!(runner_closes(&a).is_empty());
    assert_eq!(client_closes(&a), [CloseFrame::new(4002, "done")]);
}

#[test]
fn scenario_17_first_ping_after_a_long_hibernation_does_not_time_out() {
    // Upstream bug #4090: last_pong was not reset on wake, so the first ping check 3 s after a
    // hibernation longer than ~27 s killed the socket.
    let (mut h, id) = Harness::active_request(17, true);
    h.gw.actor_stopped(h.now, id).expect("live");
    let a = h.advance(secs(600));
    assert_eq!(pings(&a), 0, "no pings while hibernating");
    h.gw.wake(h.now, id, ROUTE2).expect("hibernating");
    let t_wake = h.now;
    h.auto_pong = false;
    let a = h.run_to(t_wake + secs(3) - US);
    assert_eq!(pings(&a), 0);
    let a = h.run_to(t_wake + secs(3));
    assert_eq!(pings(&a), 1);
    assert_eq!(h.gw.request(id).map(|r| r.phase), Some(Phase::Active));
    // Exactly 30 s of silence after the wake: the tunnel is lost; a hibernatable request
    // hibernates (`docs/design.md#tunnel-loss-hibernates`) instead of closing.
    let a = h.run_to(t_wake + secs(30) - US);
    assert!(!a.iter().any(|a| matches!(a, Action::Hibernated { .. })));
    let a = h.run_to(t_wake + secs(30));
    assert_eq!(count(&a, |a| matches!(a, Action::Hibernated { .. })), 1);
    assert_eq!(h.gw.stats().ping_timeout_hibernations, 1);

    // Not hibernatable: the ping timeout closes.
    let id = rid(170);
    h.active(id, false);
    let t = h.now;
    let a = h.run_to(t + secs(30));
    assert_eq!(closed(&a), [CloseReason::PingTimeout]);
    assert_eq!(client_closes(&a), [KnownClose::PingTimeout.frame()]);
    let (code, reason) = downstream_closed();
    assert_eq!(runner_closes(&a), [(1, code, reason)]);
}

#[test]
fn scenario_18_no_retry_path_second_open_fails_and_indices_continue_across_wake() {
    // Upstream's guard retry reused the entry and sent a second open with index k > 0. hws has
    // no retry path: a live id cannot be opened again; continuity goes through hibernate/wake.
    let (mut h, id) = Harness::active_request(18, true);
    let open = OpenRequest::new("", "/").expect("a path starting with /");
    assert_eq!(
        h.gw.open(h.now, id, ROUTE, open),
        Err(hibernating_ws::gateway::OpenError::AlreadyExists { request_id: id })
    );
    assert!(h.drain().is_empty());
    h.send(id, b"a").expect("room");
    h.send(id, b"b").expect("room");
    h.drain();
    h.ack(id, 2);
    h.gw.actor_stopped(h.now, id).expect("live");
    h.gw.wake(h.now, id, ROUTE2).expect("hibernating");
    let a = h.drain();
    assert!(tunnel(&a).is_empty(), "no open is sent on wake: {a:?}");
    assert_eq!(h.send(id, b"c"), Ok(idx(3)));
}

#[test]
fn scenario_19_state_filter() {
    let mut h = Harness::new();
    let id = rid(19);
    h.open(id);
    let msg = ToServerTunnelMessageKind::WebSocketMessage(ToServerWebSocketMessage {
        data: b"early".to_vec().into(),
        binary: false,
    });
    assert_eq!(
        h.runner(id, msg.clone()),
        Err(ReceiveError::InvalidForPhase {
            request_id: id,
            phase: Phase::AwaitingOpen,
            kind: "WebSocketMessage"
        })
    );
    assert_eq!(
        h.runner(id, ack_kind(0)),
        Err(ReceiveError::InvalidForPhase {
            request_id: id,
            phase: Phase::AwaitingOpen,
            kind: "WebSocketMessageAck"
        })
    );
    h.accept(id, true);
    assert_eq!(
        h.runner(id, open_kind(true)),
        Err(ReceiveError::InvalidForPhase {
            request_id: id,
            phase: Phase::Active,
            kind: "WebSocketOpen"
        })
    );
    // HTTP kinds never apply to the WebSocket gateway.
    let http = ToServerTunnelMessageKind::ResponseStart(ToServerResponseStart {
        status: 200,
        headers: Headers::new(),
        body: None,
        stream: false,
    });
    assert_eq!(
        h.runner(id, http),
        Err(ReceiveError::Unsupported {
            kind: "ResponseStart"
        })
    );
    let s = h.gw.stats();
    assert_eq!((s.dropped_invalid_for_phase, s.dropped_unsupported), (3, 1));
    // Messages flow once open; a close ends the request.
    let a = h.runner(id, msg).expect("active");
    assert!(matches!(
        a.as_slice(),
        [Action::SendToClient { binary: false, .. }]
    ));
    let a = h.runner(id, close_kind(None, None, false)).expect("active");
    assert_eq!(
        closed(&a),
        [CloseReason::RunnerClosed(CloseFrame::default())]
    );
    assert_eq!(client_closes(&a), [CloseFrame::code(1000)]);

    // A close before the open refuses the WebSocket; nothing goes to the runner.
    let id = rid(190);
    h.open(id);
    let a = h
        .runner(id, close_kind(Some(1011), Some("Actor not found"), false))
        .expect("awaiting");
    assert_eq!(
        closed(&a),
        [CloseReason::ClosedBeforeOpen(CloseFrame::new(
            1011,
            "Actor not found"
        ))]
    );
    assert_eq!(client_closes(&a), [KnownClose::ClosedBeforeOpen.frame()]);
    assert!(runner_closes(&a).is_empty());
}

#[test]
fn scenario_20_actor_stopped_signal() {
    let mut h = Harness::new();
    // Hibernatable: hibernate, no close either way.
    h.active(rid(1), true);
    h.gw.actor_stopped(h.now, rid(1)).expect("live");
    let a = h.drain();
    assert!(matches!(a.as_slice(), [Action::Hibernated { .. }]));
    // Stopping again while hibernating changes nothing.
    h.gw.actor_stopped(h.now, rid(1)).expect("live");
    assert!(h.drain().is_empty());
    // Not hibernatable: upstream's current behaviour, client 1000 actor.stopped, nothing to the
    // runner.
    h.active(rid(2), false);
    h.gw.actor_stopped(h.now, rid(2)).expect("live");
    let a = h.drain();
    assert_eq!(client_closes(&a), [KnownClose::ActorStopped.frame()]);
    assert!(runner_closes(&a).is_empty());
    assert_eq!(closed(&a), [CloseReason::ActorStopped]);
    // Before the open was accepted.
    h.open(rid(3));
    h.gw.actor_stopped(h.now, rid(3)).expect("live");
    let a = h.drain();
    assert_eq!(
        client_closes(&a),
        [KnownClose::ActorStoppedWhileWaitingForOpen.frame()]
    );
    assert_eq!(closed(&a), [CloseReason::ActorStoppedBeforeOpen]);
}
