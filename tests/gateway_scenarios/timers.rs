//! Timers: deadlines, `poll_timeout` and a `now` that goes backwards.

use super::*;

#[test]
fn timers_fire_exactly_at_their_deadline() {
    let mut h = Harness::new();
    let id = rid(1);
    let t_open = h.now;
    h.open(id);
    // Open timeout: nothing at t − 1 µs, the close at t.
    h.gw.handle_timeout(t_open + secs(15) - US);
    assert_eq!(h.gw.poll_action(), None);
    assert_eq!(h.gw.poll_timeout(), Some(t_open + secs(15)));
    h.gw.handle_timeout(t_open + secs(15));
    h.now = t_open + secs(15);
    assert_eq!(closed(&h.drain()), [CloseReason::OpenTimeout]);
    assert_eq!(h.gw.poll_timeout(), None, "nothing armed without requests");

    // Ping every 3 s and keepalive every 45 s, exactly.
    h.active(rid(2), true);
    let t0 = h.now;
    assert_eq!(h.gw.poll_timeout(), Some(t0 + secs(3)));
    h.gw.handle_timeout(t0 + secs(3) - US);
    assert_eq!(h.gw.poll_action(), None);
    let a = h.run_to(t0 + secs(3));
    assert_eq!(pings(&a), 1);
    let a = h.run_to(t0 + secs(45) - US);
    assert_eq!(
        count(&a, |a| matches!(a, Action::UpsertHibernatingRecord { .. })),
        0
    );
    let a = h.run_to(t0 + secs(45));
    assert_eq!(
        count(&a, |a| matches!(a, Action::UpsertHibernatingRecord { .. })),
        1
    );
    // Repeated and early calls are no-ops.
    h.gw.handle_timeout(h.now);
    h.gw.handle_timeout(t0);
    assert_eq!(h.gw.poll_action(), None);
}

#[test]
fn poll_timeout_is_never_a_handled_deadline() {
    // Drive many requests through every phase at awkward instants; `run_to` asserts after every
    // `handle_timeout(now)` that `poll_timeout` is later than `now`.
    let mut c = GatewayConfig::default();
    c.retransmit_timeout = Some(Duration::from_millis(1_700));
    let mut h = Harness::with(c);
    for n in 0..30u32 {
        let id = rid(n);
        h.open(id);
        if n % 5 != 0 {
            h.accept(id, n % 2 == 0);
        }
        if n % 3 == 0 {
            let _ = h.send(id, b"x");
        }
        if n % 4 == 0 {
            let _ = h.gw.actor_stopped(h.now, id);
        }
        h.auto_pong = n % 7 != 0;
        h.advance(Duration::from_millis(u64::from(n) * 997 + 1));
    }
    h.advance(secs(400));
    let now = h.now;
    if let Some(t) = h.gw.poll_timeout() {
        assert!(t > now);
    }
}

#[test]
fn decreasing_now_is_treated_as_the_latest_now() {
    let mut h = Harness::new();
    let id = rid(1);
    h.open(id);
    h.gw.handle_timeout(h.now + secs(14));
    // A late caller passes an older instant: deadlines do not move backwards.
    h.gw.handle_timeout(h.now);
    h.gw.client_message(Timestamp::ZERO, id, b"x", true)
        .expect_err("not open");
    assert_eq!(h.gw.poll_timeout(), Some(h.now + secs(15)));
}

#[test]
fn hibernating_request_accepts_the_restore_ack_and_actor_messages_from_its_next_route() {
    // The actor wakes on another runner (ROUTE2), which acks its persisted index and writes to
    // the client before the request is woken and routed there. Upstream drops all of it (no
    // handler attached; and hws's route check would too): the ack is then lost and the replay
    // resends what is already durable.
    let (mut h, id) = Harness::active_request(21, true);
    h.send_n(id, 3, b"m");
    h.drain();
    h.gw.actor_stopped(h.now, id).expect("live");
    h.drain();
    // Active on ROUTE: ROUTE2 is still refused.
    let other = rid(22);
    h.active(other, true);
    assert_eq!(
        h.runner_on(ROUTE2, other, ack_kind(0)),
        Err(ReceiveError::WrongRoute {
            request_id: other,
            route: ROUTE2
        })
    );
    // Hibernating, ROUTE2 not declared yet: refused, whoever it is.
    assert_eq!(
        h.runner_on(ROUTE2, id, ack_kind(2)),
        Err(ReceiveError::WrongRoute {
            request_id: id,
            route: ROUTE2
        })
    );
    // The control plane starts the actor on ROUTE2: its restore ack releases indices 1 and 2.
    h.gw.actor_starting(h.now, id, ROUTE2).expect("live");
    h.runner_on(ROUTE2, id, ack_kind(2))
        .expect("accepted while hibernating");
    assert_eq!(h.pending(id), 1);
    // An actor message from ROUTE2 reaches the client.
    let msg = ToServerTunnelMessageKind::WebSocketMessage(ToServerWebSocketMessage {
        data: b"hi".to_vec().into(),
        binary: false,
    });
    let a = h
        .runner_on(ROUTE2, id, msg)
        .expect("accepted while hibernating");
    assert_eq!(
        count(
            &a,
            |a| matches!(a, Action::SendToClient { data, .. } if **data == *b"hi")
        ),
        1
    );
    // Still validated: an ack beyond what was published changes nothing.
    h.runner_on(ROUTE2, id, ack_kind(9))
        .expect("counted, not an error");
    assert_eq!(h.pending(id), 1);
    // The wake replays only index 3.
    h.gw.wake(h.now, id, ROUTE2).expect("hibernating");
    assert_eq!(ws_indices(&h.drain()), [3]);
    // A hand-back close from a stranger is still refused while hibernating.
    h.gw.actor_stopped(h.now, id).expect("live");
    h.drain();
    assert_eq!(
        h.runner_on(ROUTE, id, close_kind(None, None, true)),
        Err(ReceiveError::WrongRoute {
            request_id: id,
            route: ROUTE
        })
    );
}
