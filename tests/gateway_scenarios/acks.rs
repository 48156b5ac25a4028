//! Acks, the index wrap and the replay after a wake.

use super::*;

#[test]
fn invalid_acks_drop_nothing_even_across_the_wrap() {
    let (mut h, id) = Harness::active_request(1, true);
    // Move the counter to just before the wrap.
    h.walk_to(id, 65_529, 4_096);
    for _ in 0..10 {
        h.send(id, b"w").expect("room"); // 65530..=65535, 0..=3
    }
    h.drain();
    assert_eq!(
        h.gw.request(id).map(|r| r.oldest_unacked),
        Some(Some(idx(65_530)))
    );
    for bad in [4u16, 5, 1_000, 32_000] {
        h.ack(id, bad); // ahead of the last sent (3)
    }
    // 32 768 behind the oldest − 1 (65 529): the undefined antipode, outside the window.
    assert_eq!(h.pending_after_ack(id, 32_761), 10);
    assert_eq!(h.gw.stats().acks_invalid, 5);
    // At or up to 32 767 behind the oldest − 1: stale duplicates.
    for stale in [65_529u16, 65_000, 40_000, 32_762] {
        h.ack(id, stale);
    }
    assert_eq!(h.pending(id), 10);
    assert_eq!(h.gw.stats().acks_stale, 4);
    h.ack(id, 0);
    assert_eq!(
        h.gw.request(id).map(|r| r.oldest_unacked),
        Some(Some(idx(1)))
    );
    assert_eq!(h.pending(id), 3);
}

#[test]
fn an_ack_for_a_message_buffered_during_hibernation_is_invalid_until_replayed() {
    let (mut h, id) = Harness::active_request(1, true);
    h.send(id, b"a").expect("room"); // 1, published
    h.gw.actor_stopped(h.now, id).expect("live");
    h.send(id, b"b").expect("room"); // 2, buffered, not published
    h.drain();
    h.ack(id, 2); // the runner cannot have seen 2
    assert_eq!(h.pending(id), 2);
    assert_eq!(h.gw.stats().acks_invalid, 1);
    assert_eq!(h.pending_after_ack(id, 1), 1);
    h.gw.wake(h.now, id, ROUTE2).expect("hibernating");
    assert_eq!(ws_indices(&h.drain()), [2]);
    assert_eq!(h.pending_after_ack(id, 2), 0);
}

#[test]
fn replay_after_wake_keeps_order_indices_and_resets_the_ack_clock() {
    let (mut h, id) = Harness::active_request(1, true);
    h.send_n(id, 5, b"m");
    h.drain();
    h.ack(id, 2);
    h.advance(secs(20));
    h.gw.actor_stopped(h.now, id).expect("live");
    // Hibernating longer than the ack timeout does not collect (the ack clock is paused).
    h.advance(secs(50));
    h.gw.wake(h.now, id, ROUTE2).expect("hibernating");
    let t_wake = h.now;
    assert_eq!(ws_indices(&h.drain()), [3, 4, 5]);
    let info = h.gw.request(id).expect("live");
    assert_eq!(info.oldest_unacked_sent_at, Some(t_wake));
    // The ack deadline counts from the replay.
    assert!(closed(&h.run_to(t_wake + secs(30) - US)).is_empty());
    assert_eq!(
        closed(&h.run_to(t_wake + secs(30))),
        [CloseReason::Collected(GcReason::AckTimeout {
            first: idx(3),
            last: idx(5)
        })]
    );
}

#[test]
fn retransmit_republishes_pending_without_resetting_the_ack_clock() {
    let mut c = GatewayConfig::default();
    c.retransmit_timeout = Some(secs(5));
    let mut h = Harness::with(c);
    let id = rid(1);
    h.active(id, true);
    let t0 = h.now;
    h.send(id, b"a").expect("room");
    h.send(id, b"b").expect("room");
    h.drain();
    assert!(ws_indices(&h.run_to(t0 + secs(5) - US)).is_empty());
    assert_eq!(ws_indices(&h.run_to(t0 + secs(5))), [1, 2]);
    assert_eq!(ws_indices(&h.run_to(t0 + secs(10))), [1, 2]);
    h.ack(id, 1);
    // A new oldest (sent at t0) was just released-to: the next round is 5 s after the last.
    assert_eq!(ws_indices(&h.run_to(t0 + secs(15))), [2]);
    assert_eq!(h.gw.stats().messages_retransmitted, 5);
    // Retransmits do not reset the ack timeout: still collected 30 s after the first send.
    let a = h.run_to(t0 + secs(30));
    assert_eq!(closed(&a).len(), 1);
}
