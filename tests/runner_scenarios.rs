//! Runner and ack-policy scenarios 21–31 (`docs/protocol.md#runner-socket-states` describes the
//! machine), plus the boundary tests the runner
//! issue asks for. Where hws deliberately differs from upstream, the test asserts hws and names
//! upstream's behaviour in a comment.

mod runner_support;

use core::time::Duration;

use hibernating_ws::runner::{
    ActorError, ActorState, CloseReason, Framing, GapPolicy, ReceiveError, RunnerConfig, SendError,
    SocketError, SocketState,
};
use hibernating_ws::wire::{
    self, GatewayId, RequestId, ToClient, ToRunner, ToRunnerPing, ToServer,
};
use hibernating_ws::{CloseFrame, KnownClose, MessageIndex, Timestamp};
use runner_support::*;

fn policy(gap_policy: GapPolicy) -> Harness {
    Harness::new(RunnerConfig::default().with_gap_policy(gap_policy))
}

/// What a message at distance `delta` past `p` does.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Duplicate,
    Deliver,
    Gap,
}

fn verdict_for(gap_policy: GapPolicy, base: u16, delta: u16) -> Verdict {
    let s = sid(1, 1);
    // The open index is the socket's starting `p`.
    let mut h = policy(gap_policy).with_open_socket(s, base);
    let r = base.wrapping_add(delta);
    h.msg(s, r, b"x");
    let out = h.drain();
    let stats = h.runner.stats();
    if out
        .iter()
        .any(|o| matches!(o, Out::Msg { index, .. } if *index == r))
    {
        assert_eq!(out, vec![Out::msg(s, r, b"x")]);
        assert_eq!(h.last_delivered(s), r);
        return Verdict::Deliver;
    }
    if stats.duplicates == 1 {
        // A duplicate of a persisted index re-acks it (rate-limited; this is the first).
        assert_eq!(out, vec![Out::ack(s, 1, base)], "base={base} δ={delta}");
        assert_eq!(h.last_delivered(s), base);
        return Verdict::Duplicate;
    }
    assert_eq!(stats.gaps, 1, "base={base} δ={delta}");
    match gap_policy {
        GapPolicy::Close => {
            assert_eq!(out, skip_closed(s, 1));
            assert!(h.runner.socket(s).is_none());
        }
        GapPolicy::Await => {
            assert_eq!(out, vec![]);
            let info = h.runner.socket(s).expect("still open");
            assert_eq!((info.held, info.last_delivered.get()), (1, base));
        }
    }
    Verdict::Gap
}

#[test]
fn scenario_21_index_validation_table() {
    // hws: one RFC 1982 arithmetic. δ = 0 or r before p → duplicate; δ = 1 → deliver; every
    // other δ (2..=32768) → gap. Upstream TS treats 32768 as a gap too but 32767.5 as the
    // float boundary; envoy-client (Rust) calls δ = 32769 a gap. hws agrees with TS here.
    let table = [
        (0u16, Verdict::Duplicate),
        (1, Verdict::Deliver),
        (2, Verdict::Gap),
        (32_767, Verdict::Gap),
        (32_768, Verdict::Gap),
        (32_769, Verdict::Duplicate),
        (65_535, Verdict::Duplicate),
    ];
    for gap_policy in [GapPolicy::Close, GapPolicy::Await] {
        for base in [0u16, 7, 32_768, 65_534, 65_535] {
            for (delta, expected) in &table {
                assert_eq!(
                    &verdict_for(gap_policy, base, *delta),
                    expected,
                    "{gap_policy:?} base={base} δ={delta}"
                );
            }
        }
    }
}

#[test]
fn scenario_21_wrap_65535_to_0_is_in_order() {
    for gap_policy in [GapPolicy::Close, GapPolicy::Await] {
        let s = sid(1, 2);
        let mut h = policy(gap_policy).with_open_socket(s, 65_533);
        for r in [65_534u16, 65_535, 0, 1, 2] {
            h.msg(s, r, &r.to_le_bytes());
        }
        let delivered: Vec<u16> = delivered(h.drain());
        assert_eq!(delivered, [65_534, 65_535, 0, 1, 2]);
        // 65 535 is now behind 2: a duplicate, not a gap.
        h.msg(s, 65_535, b"old");
        assert_eq!(h.runner.stats().duplicates, 1);
        assert_eq!(h.runner.stats().gaps, 0);
    }
}

#[test]
fn scenario_22_gap_closes_with_1008_exactly_once() {
    let s = sid(2, 1);
    let mut h = Harness::default_config().with_open_socket(s, 0);
    h.msg(s, 1, b"a");
    h.msg(s, 3, b"c");
    assert_eq!(
        h.drain(),
        vec![
            Out::msg(s, 1, b"a"),
            skip_close(s, 1),
            Out::Closed {
                socket: s,
                reason: CloseReason::MessageIndexSkip
            },
            Out::Delete { socket: s },
        ]
    );
    assert_eq!(
        CloseReason::MessageIndexSkip.frame(),
        KnownClose::MessageIndexSkip.frame()
    );
    // Later messages find no socket: no second 1008, each is answered as a frame for a socket
    // the runner does not hold (the gateway has closed the request by then and drops it).
    for r in [2u16, 4, 5] {
        assert_eq!(
            h.feed(s, r, msg_kind(b"z")),
            Err(ReceiveError::UnknownSocket { socket: s })
        );
    }
    let not_found = Out::close(s, 0, 1011, "ws.socket_not_found");
    assert_eq!(
        h.drain(),
        vec![not_found.clone(), not_found.clone(), not_found]
    );
    let st = h.runner.stats();
    assert_eq!(
        (st.gaps, st.gap_closes, st.dropped_unknown_socket),
        (1, 1, 3)
    );
}

#[test]
fn scenario_23_non_hibernatable_sockets_never_validate() {
    let mut h = Harness::default_config();
    h.start_actor();
    let s = sid(3, 1);
    h.open(s, 0, false);
    for r in [5u16, 5, 3, 40_000, 1] {
        h.msg(s, r, b"m");
    }
    let out = h.drain();
    let indices: Vec<u16> = out
        .iter()
        .map(|o| match o {
            Out::Msg { index, .. } => *index,
            other => panic!("only deliveries expected, got {other:?}"),
        })
        .collect();
    assert_eq!(indices, [5, 5, 3, 40_000, 1]);
    let st = h.runner.stats();
    assert_eq!((st.duplicates, st.gaps, st.persists_requested), (0, 0, 0));
    assert_eq!(
        h.runner.poll_timeout(),
        None,
        "no persist debounce for non-hibernatable sockets"
    );
}

#[test]
fn scenario_24_messages_while_connecting_or_closed_are_dropped() {
    let mut h = Harness::default_config();
    h.start_actor();
    let s = sid(4, 1);
    h.feed(s, 0, open_kind(ACTOR)).unwrap();
    assert_eq!(
        h.drain(),
        vec![Out::Open {
            socket: s,
            index: 0
        }]
    );
    // Connecting: dropped, index unchanged.
    assert_eq!(
        h.feed(s, 1, msg_kind(b"early")),
        Err(ReceiveError::NotOpen { socket: s })
    );
    assert_eq!(h.drain(), vec![]);
    let info = h.runner.socket(s).unwrap();
    assert_eq!(
        (info.state, info.last_delivered.get()),
        (SocketState::Connecting, 0)
    );
    // Accepted: message 1 is still the next one.
    h.runner.accept(h.now, s, true).unwrap();
    let _ = h.drain();
    h.persisted(s, 0);
    h.msg(s, 1, b"one");
    assert_eq!(h.drain(), vec![Out::msg(s, 1, b"one")]);
    // Closed: dropped as unknown, answered `ws.socket_not_found`.
    h.runner.close(h.now, s, CloseFrame::code(1000)).unwrap();
    let _ = h.drain();
    assert_eq!(
        h.feed(s, 2, msg_kind(b"late")),
        Err(ReceiveError::UnknownSocket { socket: s })
    );
    assert_eq!(
        h.drain(),
        vec![Out::close(s, 0, 1011, "ws.socket_not_found")]
    );
    let st = h.runner.stats();
    assert_eq!((st.dropped_not_open, st.dropped_unknown_socket), (1, 1));
}

#[test]
fn scenario_25_restore_mixed_lists_match_both_ids() {
    let mut h = Harness::default_config();
    let both = sid(10, 1);
    let gateway_only = sid(10, 2);
    let meta_only = sid(10, 3);
    // Equal in one half only: must not match.
    let same_gateway = sid(11, 20); // listed by the gateway
    let same_gateway_meta = sid(11, 21); // persisted: same gateway id, other request id
    let same_request = sid(12, 30); // listed
    let same_request_meta = sid(13, 30); // persisted: same request id, other gateway id
    h.runner
        .actor_starting(
            h.now,
            ACTOR,
            vec![
                hib(both),
                hib(gateway_only),
                hib(same_gateway),
                hib(same_request),
            ],
        )
        .unwrap();
    let summary = h
        .runner
        .restore(
            h.now,
            ACTOR,
            vec![
                meta(both, 41, 9),
                meta(meta_only, 5, 0),
                meta(same_gateway_meta, 6, 0),
                meta(same_request_meta, 7, 0),
            ],
        )
        .unwrap();
    assert_eq!(
        (
            summary.restored,
            summary.meta_not_found,
            summary.stale,
            summary.skipped
        ),
        (1, 3, 3, 0)
    );
    // Case 3 also tells the gateway (upstream publishes nothing): a request whose record was
    // missing from the list may still be live there.
    let stale = |s| {
        [
            Out::Closed {
                socket: s,
                reason: CloseReason::StaleMetadata,
            },
            Out::Delete { socket: s },
            Out::close(s, 0, 1000, "ws.stale_metadata"),
        ]
    };
    let zombie = |s| Out::close(s, 0, 1000, "ws.meta_not_found_during_restore");
    let mut expected = vec![
        Out::Restored {
            socket: both,
            server_index: 41,
        },
        // Ack the persisted index at once (`docs/design.md#re-ack-heals-lost-acks`) (upstream:
        // nothing acks on restore).
        Out::ack(both, 9, 41),
    ];
    expected.extend(stale(meta_only));
    expected.extend(stale(same_gateway_meta));
    expected.extend(stale(same_request_meta));
    expected.extend([
        zombie(gateway_only),
        zombie(same_gateway),
        zombie(same_request),
    ]);
    assert_eq!(h.drain(), expected);
    assert_eq!(
        CloseReason::StaleMetadata.frame(),
        CloseFrame::new(1000, "ws.stale_metadata")
    );
    let info = h.runner.socket(both).unwrap();
    assert_eq!(info.state, SocketState::Open);
    assert!(info.hibernatable);
    assert_eq!(h.runner.len(), 1);
}

#[test]
fn scenario_25_double_restore_and_restore_error() {
    let mut h = Harness::default_config();
    let both = sid(10, 1);
    h.restore_socket(both, 41, 9);
    let _ = h.drain();
    // A second restore is refused; so is a restore for an actor that never started.
    assert_eq!(
        h.runner.restore(h.now, ACTOR, vec![]),
        Err(ActorError::AlreadyRestored {
            actor_id: ACTOR.into()
        })
    );
    assert_eq!(
        h.runner.restore(h.now, "other", vec![]),
        Err(ActorError::NotStarting {
            actor_id: "other".into()
        })
    );

    // Upstream case-1 handler failure (`ws.restore_error`) has no engine counterpart: the app
    // closes the restored socket with that frame.
    h.runner
        .close(h.now, both, KnownClose::RestoreError.frame())
        .unwrap();
    assert_eq!(
        h.drain(),
        vec![
            Out::close(both, 10, 1011, "ws.restore_error"),
            Out::Closed {
                socket: both,
                reason: CloseReason::AppClosed(KnownClose::RestoreError.frame())
            },
            Out::Delete { socket: both },
        ]
    );
}

#[test]
fn scenario_26_restored_socket_dedupes_replay_and_reacks() {
    let mut h = Harness::default_config();
    let s = sid(20, 1);
    h.restore_socket(s, 10, 3);
    // No Open event; the persisted index is re-acked at once (upstream: no ack on restore, so
    // an ack lost before sleep leaves the gateway's buffer full until the ack timeout).
    assert_eq!(
        h.drain(),
        vec![
            Out::Restored {
                socket: s,
                server_index: 10
            },
            Out::ack(s, 3, 10)
        ]
    );
    // The gateway replays 5..=10: all duplicates (so the restore ack did not reach it: a
    // gateway still routing the request to the previous runner drops it). The first duplicate
    // re-acks at once (the restore ack does not arm the rate limit; upstream drops duplicates
    // silently), the others fall within reack_interval.
    for r in 5..=10u16 {
        h.msg(s, r, b"old");
    }
    assert_eq!(h.drain(), vec![Out::ack(s, 4, 10)]);
    assert_eq!(h.runner.stats().duplicates, 6);
    assert_eq!(h.runner.stats().reacks, 1);
    // After reack_interval a duplicate re-acks once more.
    h.advance(Duration::from_secs(1));
    for r in 8..=10u16 {
        h.msg(s, r, b"old");
    }
    assert_eq!(h.drain(), vec![Out::ack(s, 5, 10)]);
    assert_eq!(h.runner.stats().reacks, 2);
    // The first new index is accepted.
    h.msg(s, 11, b"new");
    assert_eq!(h.drain(), vec![Out::msg(s, 11, b"new")]);
}

#[test]
fn scenario_26_ten_thousand_duplicates_yield_one_reack() {
    let mut h = Harness::default_config();
    let s = sid(20, 2);
    h.restore_socket(s, 10_000, 0);
    let _ = h.drain();
    h.advance(Duration::from_secs(2));
    for r in 1..=10_000u16 {
        h.msg(s, r, b"");
    }
    assert_eq!(h.drain(), vec![Out::ack(s, 1, 10_000)]);
}

#[test]
fn scenario_27_duplicate_open_replay() {
    let s = sid(30, 1);
    let mut h = Harness::default_config().with_open_socket(s, 0);
    for r in 1..=5u16 {
        h.msg(s, r, b"m");
    }
    let _ = h.drain();
    // k at/behind p: left alone; Open re-sent; no second Open event.
    h.feed(s, 3, open_kind(ACTOR)).unwrap();
    assert_eq!(h.drain(), vec![Out::send_open(s, 1)]);
    assert_eq!(h.last_delivered(s), 5);
    // k ahead of p: advanced (as upstream does); 9 is next.
    h.feed(s, 8, open_kind(ACTOR)).unwrap();
    assert_eq!(h.drain(), vec![Out::send_open(s, 2)]);
    assert_eq!(h.last_delivered(s), 8);
    h.msg(s, 9, b"nine");
    assert_eq!(h.drain(), vec![Out::msg(s, 9, b"nine")]);
    // k == 0 with p != 0: a stale copy of the first open (hws deviates from upstream's reset,
    // which rewound the durable index and redelivered retransmitted messages): ignored, the
    // Open is re-sent, nothing is rewound or persisted.
    h.advance(Duration::from_secs(5)); // the debounced persist of 9
    let out = h.drain();
    assert_eq!(out, vec![Out::persist(s, 9, 4)]);
    h.feed(s, 0, open_kind(ACTOR)).unwrap();
    assert_eq!(h.drain(), vec![Out::send_open(s, 3)]);
    assert_eq!(h.last_delivered(s), 9);
    h.persist_and_expect_ack(s, 9, 4);
    h.msg(s, 1, b"stale");
    h.msg(s, 10, b"ten");
    assert_eq!(h.drain(), vec![Out::msg(s, 10, b"ten")]);

    // Non-hibernatable: ignored, Open re-sent with can_hibernate = false.
    let n = sid(30, 2);
    h.open(n, 0, false);
    h.msg(n, 1, b"x");
    let _ = h.drain();
    h.feed(n, 0, open_kind(ACTOR)).unwrap();
    assert_eq!(
        h.drain(),
        vec![Out::SendOpen {
            socket: n,
            out: 1,
            can_hibernate: false
        }]
    );
    assert_eq!(h.runner.stats().opens, 2);
    assert_eq!(h.runner.stats().duplicate_opens, 4);
}

#[test]
fn scenario_28_outgoing_index_wraps_and_restored_sockets_continue() {
    let mut h = Harness::default_config();
    let s = sid(40, 1);
    h.restore_socket(s, 0, 65_533);
    // The restore ack takes 65 533.
    assert_eq!(h.drain()[1], Out::ack(s, 65_533, 0));
    let mut taken = Vec::new();
    for _ in 0..4 {
        taken.push(h.runner.send(h.now, s, b"hi", false).unwrap().get());
    }
    assert_eq!(taken, [65_534, 65_535, 0, 1]);
    let outs: Vec<u16> = h
        .drain()
        .into_iter()
        .map(|o| match o {
            Out::SendMsg { out, .. } => out,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(outs, taken);
    // A new socket starts at 0. (Upstream's buffered-while-disconnected flush is the adapter's
    // concern: the engine assigns indices when the app sends, in call order.)
    let n = sid(40, 2);
    h.open(n, 0, false);
    assert_eq!(
        h.runner.send(h.now, n, b"x", true),
        Ok(MessageIndex::new(1))
    );
}

/// Regression: the final persist of a stopping actor stored the next outgoing index before the
/// ack that answers it took that index, so the socket restored from the record sent its restore
/// ack with the same index again (the official engine accepts such reuse silently). The stored
/// index now covers that ack.
#[test]
fn scenario_28_a_restored_socket_never_reuses_the_index_of_the_last_ack() {
    let mut h = Harness::default_config();
    h.start_actor();
    let s = sid(41, 1);
    h.open(s, 0, true);
    h.msg(s, 1, b"a");
    let out = h.runner.send(h.now, s, b"a", false).unwrap().get();
    assert_eq!(out, 1);
    // The stop persists index 1; the ack that answers it takes outgoing index 2.
    h.runner.actor_stopping(h.now, ACTOR).unwrap();
    let drained = h.drain();
    assert!(drained.contains(&Out::persist(s, 1, 3)), "{drained:?}");
    h.persisted(s, 1);
    let drained = h.drain();
    assert!(drained.contains(&Out::ack(s, 2, 1)), "{drained:?}");
    // Restored from that record, the socket continues at 3: its restore ack takes 3.
    h.runner.actor_starting(h.now, ACTOR, vec![hib(s)]).unwrap();
    h.runner.restore(h.now, ACTOR, vec![meta(s, 1, 3)]).unwrap();
    assert!(h.drain().contains(&Out::ack(s, 3, 1)));
    assert_eq!(h.runner.send(h.now, s, b"b", false).unwrap().get(), 4);
}

#[test]
fn scenario_29_ack_only_after_durable_write() {
    let s = sid(50, 1);
    let mut h = Harness::default_config().with_open_socket(s, 0);
    for r in 1..=3u16 {
        h.msg(s, r, b"abc");
    }
    let _ = h.drain();
    h.advance(Duration::from_secs(5));
    h.expect_persist(s, 3, 2);
    h.msg(s, 4, b"d");
    let _ = h.drain();
    // The write fails: nothing is acked; a retry of the latest index comes after 100 ms.
    h.runner
        .persist_failed(h.now, s, MessageIndex::new(3))
        .unwrap();
    assert_eq!(h.drain(), vec![]);
    assert_eq!(
        h.runner.poll_timeout(),
        Some(h.now + Duration::from_millis(100))
    );
    h.advance(Duration::from_millis(100));
    h.expect_persist(s, 4, 2);
    // The result must match the persist in flight.
    assert_eq!(
        h.runner.persisted(h.now, s, MessageIndex::new(3)),
        Err(SocketError::UnexpectedPersist { socket: s })
    );
    // One ack per persist, covering the highest index, only after the durable write.
    h.persist_and_expect_ack(s, 4, 1);
    assert_eq!(
        h.runner.persisted(h.now, s, MessageIndex::new(4)),
        Err(SocketError::UnexpectedPersist { socket: s }),
        "a result is consumed once"
    );
    let info = h.runner.socket(s).unwrap();
    assert_eq!(
        (info.last_persisted, info.last_acked.get()),
        (Some(MessageIndex::new(4)), 4)
    );
}

#[test]
fn scenario_30_wrapping_increase_acks_across_65535_to_0() {
    // Upstream rivetkit compares `new > old` without wrapping: a persist cycle crossing the
    // wrap produces no ack. hws acks whatever was persisted if it differs from the last ack.
    let s = sid(60, 1);
    let mut h = Harness::default_config().with_open_socket(s, 65_533);
    for r in [65_534u16, 65_535, 0, 1] {
        h.msg(s, r, b"w");
    }
    let _ = h.drain();
    h.advance(Duration::from_secs(5));
    h.expect_persist(s, 1, 2);
    h.persist_and_expect_ack(s, 1, 1);
}

#[test]
fn scenario_31_bytes_threshold_forces_a_write() {
    // Upstream: the 500 000-byte "immediate" save is a no-op unless the actor's own state is
    // dirty. hws persists at once when the threshold is reached, whatever else happens.
    let s = sid(70, 1);
    let mut h = Harness::default_config().with_open_socket(s, 0);
    h.msg(s, 1, &vec![0u8; 499_998]);
    h.msg(s, 2, b"x"); // 499 999 bytes: not yet
    assert_eq!(h.drain().len(), 2);
    h.msg(s, 3, b"y"); // 500 000 bytes: persist now, no time passed
    assert_eq!(
        h.drain(),
        vec![Out::msg(s, 3, b"y"), Out::persist(s, 3, 2),]
    );
    h.persist_and_expect_ack(s, 3, 1);
}

// ---------------------------------------------------------------------------------------------
// Persist debounce boundaries
// ---------------------------------------------------------------------------------------------

#[test]
fn persist_interval_boundary_5s_minus_1us_and_5s() {
    let s = sid(80, 1);
    let mut h = Harness::default_config().with_open_socket(s, 0);
    h.msg(s, 1, b"first");
    let _ = h.drain();
    let first = h.now;
    // More messages later do not move the deadline (it counts from the first unpersisted one).
    h.advance(Duration::from_secs(3));
    h.msg(s, 2, b"second");
    let _ = h.drain();
    assert_eq!(
        h.runner.poll_timeout(),
        Some(first + Duration::from_secs(5))
    );
    h.now = first + Duration::from_secs(5) - Duration::from_micros(1);
    h.runner.handle_timeout(h.now);
    assert_eq!(h.drain(), vec![], "5 s − 1 µs: no persist yet");
    h.now = first + Duration::from_secs(5);
    h.runner.handle_timeout(h.now);
    h.expect_persist(s, 2, 2);
    // A second call at the same instant is a no-op; no deadline is left.
    h.runner.handle_timeout(h.now);
    assert_eq!(h.drain(), vec![]);
    assert_eq!(h.runner.poll_timeout(), None);
}

#[test]
fn persist_bytes_boundary_499_999_and_500_000() {
    for (bytes, persists) in [(499_999usize, false), (500_000, true)] {
        let s = sid(81, 1);
        let mut h = Harness::default_config().with_open_socket(s, 0);
        h.msg(s, 1, &vec![7u8; bytes]);
        let out = h.drain();
        assert_eq!(out.len(), if persists { 2 } else { 1 }, "{bytes} bytes");
        assert_eq!(out.contains(&Out::persist(s, 1, 2)), persists);
    }
}

#[test]
fn deliveries_during_a_persist_in_flight_are_persisted_next() {
    let s = sid(82, 1);
    let mut h = Harness::default_config().with_open_socket(s, 0);
    h.msg(s, 1, b"a");
    h.advance(Duration::from_secs(5));
    let _ = h.drain();
    // While 1 is in flight, 2 arrives; its deadline passes before the result comes.
    h.msg(s, 2, b"b");
    h.advance(Duration::from_secs(6));
    assert_eq!(h.drain(), vec![Out::msg(s, 2, b"b")]);
    h.persisted(s, 1);
    assert_eq!(h.drain(), vec![Out::ack(s, 1, 1), Out::persist(s, 2, 3),]);
}

#[test]
fn failed_persists_back_off_and_are_never_acked() {
    let s = sid(83, 1);
    let mut h = Harness::default_config().with_open_socket(s, 0);
    h.msg(s, 1, b"a");
    h.advance(Duration::from_secs(5));
    let _ = h.drain();
    let mut delays = Vec::new();
    for _ in 0..8 {
        h.runner
            .persist_failed(h.now, s, MessageIndex::new(1))
            .unwrap();
        assert_eq!(h.drain(), vec![], "a failure is never acked");
        let at = h.runner.poll_timeout().unwrap();
        delays.push((at - h.now).as_millis());
        h.now = at;
        h.runner.handle_timeout(h.now);
        h.expect_persist(s, 1, 2);
    }
    assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    // Success resets the backoff.
    h.persist_and_expect_ack(s, 1, 1);
    h.msg(s, 2, b"b");
    h.advance(Duration::from_secs(5));
    let _ = h.drain();
    h.runner
        .persist_failed(h.now, s, MessageIndex::new(2))
        .unwrap();
    assert_eq!(
        h.runner.poll_timeout(),
        Some(h.now + Duration::from_millis(100))
    );
    assert_eq!(h.runner.stats().persists_failed, 9);
}

// ---------------------------------------------------------------------------------------------
// Await gap policy
// ---------------------------------------------------------------------------------------------

#[test]
fn await_heals_a_lost_message_by_retransmit() {
    let s = sid(90, 1);
    let mut h = policy(GapPolicy::Await).with_open_socket(s, 0);
    h.msg(s, 1, b"1");
    // 2 is lost in transit; 3, 4 and a duplicate 3 arrive.
    h.msg(s, 3, b"3");
    h.msg(s, 4, b"4");
    h.msg(s, 3, b"3");
    assert_eq!(h.drain(), vec![Out::msg(s, 1, b"1")]);
    assert_eq!(h.runner.socket(s).unwrap().held, 2);
    // The gateway retransmits 2, 3, 4.
    h.msg(s, 2, b"2");
    h.msg(s, 3, b"3");
    h.msg(s, 4, b"4");
    let delivered: Vec<u16> = delivered(h.drain());
    assert_eq!(delivered, [2, 3, 4]);
    let info = h.runner.socket(s).unwrap();
    assert_eq!(
        (info.held, info.held_bytes, info.last_delivered.get()),
        (0, 0, 4)
    );
    let st = h.runner.stats();
    assert_eq!(
        (st.held, st.held_delivered, st.duplicates, st.gap_closes),
        (2, 2, 3, 0)
    );
    // The gap timer was cancelled: only the persist debounce is left.
    assert_eq!(
        h.runner.poll_timeout(),
        Some(h.now + Duration::from_secs(5))
    );
}

#[test]
fn await_closes_on_held_count_overflow() {
    let s = sid(91, 1);
    let mut h = Harness::new(
        RunnerConfig::default()
            .with_gap_policy(GapPolicy::Await)
            .with_max_held_messages(3),
    )
    .with_open_socket(s, 0);
    for r in [3u16, 4, 5] {
        h.msg(s, r, b"h");
    }
    assert_eq!(h.drain(), vec![]);
    h.msg(s, 6, b"h");
    assert_eq!(h.drain(), skip_closed(s, 1));
    assert_eq!(h.runner.stats().held_overflows, 1);
}

#[test]
fn await_closes_on_held_bytes_overflow() {
    let s = sid(92, 1);
    let mut h = Harness::new(
        RunnerConfig::default()
            .with_gap_policy(GapPolicy::Await)
            .with_max_held_bytes(10),
    )
    .with_open_socket(s, 0);
    h.msg(s, 2, &[0; 6]);
    h.msg(s, 3, &[0; 4]); // exactly 10 bytes held: allowed
    assert_eq!(h.runner.socket(s).unwrap().held_bytes, 10);
    h.msg(s, 4, &[0; 1]); // 11: overflow
    assert_eq!(h.drain()[0], skip_close(s, 1));
    assert!(h.runner.socket(s).is_none());
}

#[test]
fn await_closes_when_the_gap_times_out() {
    let s = sid(93, 1);
    let mut h = policy(GapPolicy::Await).with_open_socket(s, 0);
    h.msg(s, 2, b"x");
    let held_at = h.now;
    h.now = held_at + Duration::from_secs(30) - Duration::from_micros(1);
    h.runner.handle_timeout(h.now);
    assert_eq!(h.drain(), vec![]);
    h.now = held_at + Duration::from_secs(30);
    h.runner.handle_timeout(h.now);
    assert_eq!(h.drain(), skip_closed(s, 1));
    assert_eq!(h.runner.stats().gap_timeouts, 1);
    assert_eq!(h.runner.poll_timeout(), None);
}

// ---------------------------------------------------------------------------------------------
// Actor life cycle and close paths
// ---------------------------------------------------------------------------------------------

#[test]
fn actor_stop_persists_unconditionally_then_settles_silently() {
    let mut h = Harness::default_config();
    h.start_actor();
    let (hs, ns, cs) = (sid(100, 1), sid(100, 2), sid(100, 3));
    h.open(hs, 0, true);
    h.open(ns, 0, false);
    h.feed(cs, 0, open_kind(ACTOR)).unwrap(); // still connecting
    let _ = h.drain();
    // Nothing new since the metadata was persisted: the stop still persists (upstream weak
    // spot 9b, `docs/upstream.md#weak-spots`: it flushed only if the actor's own state was dirty).
    h.runner.actor_stopping(h.now, ACTOR).unwrap();
    let out = h.drain();
    assert!(out.contains(&Out::persist(hs, 0, 1)));
    assert!(out.contains(&Out::Closed {
        socket: ns,
        reason: CloseReason::ActorStopped
    }));
    assert!(out.contains(&Out::Closed {
        socket: cs,
        reason: CloseReason::ActorStopped
    }));
    assert_eq!(out.len(), 3, "no tunnel message on stop: {out:?}");
    assert_eq!(h.runner.actor(ACTOR).unwrap().state, ActorState::Stopping);
    // Messages meanwhile are dropped (replayed after wake); opens get "Actor not found".
    assert_eq!(
        h.feed(hs, 1, msg_kind(b"late")),
        Err(ReceiveError::NotOpen { socket: hs })
    );
    let fresh = sid(100, 4);
    assert_eq!(
        h.feed(fresh, 0, open_kind(ACTOR)),
        Err(ReceiveError::UnknownActor {
            actor_id: ACTOR.into()
        })
    );
    assert_eq!(
        h.drain(),
        vec![Out::close(fresh, 0, 1011, "Actor not found")]
    );
    assert_eq!(
        h.runner.send(h.now, hs, b"x", true),
        Err(SendError::NotOpen { socket: hs })
    );
    assert_eq!(
        h.runner.actor_starting(h.now, ACTOR, vec![]),
        Err(ActorError::Stopping {
            actor_id: ACTOR.into()
        })
    );
    // The flush completes: no ack (0 was already the acked open index), socket forgotten.
    h.persisted(hs, 0);
    assert_eq!(h.drain(), vec![Out::actor_stopped()]);
    assert!(h.runner.is_empty());
    assert_eq!(h.runner.actor(ACTOR), None);
    assert_eq!(h.runner.stats().settled_on_stop, 1);
}

#[test]
fn actor_stop_waits_for_the_persist_in_flight_then_flushes_again() {
    let s = sid(101, 1);
    let mut h = Harness::default_config().with_open_socket(s, 0);
    h.msg(s, 1, b"a");
    h.advance(Duration::from_secs(5));
    let _ = h.drain(); // Persist 1 in flight
    h.msg(s, 2, b"b");
    let _ = h.drain();
    h.runner.actor_stopping(h.now, ACTOR).unwrap();
    assert_eq!(h.drain(), vec![]);
    h.persisted(s, 1);
    assert_eq!(h.drain(), vec![Out::ack(s, 1, 1), Out::persist(s, 2, 3)]);
    // A failed final flush settles without an ack: the gateway replays 2 after wake.
    h.runner
        .persist_failed(h.now, s, MessageIndex::new(2))
        .unwrap();
    assert_eq!(h.drain(), vec![Out::actor_stopped()]);
}

#[test]
fn stopping_a_starting_actor_drops_its_queue() {
    let mut h = Harness::default_config();
    let s = sid(102, 1);
    h.runner.actor_starting(h.now, ACTOR, vec![hib(s)]).unwrap();
    h.msg(s, 5, b"q");
    assert_eq!(h.runner.actor(ACTOR).unwrap().queued, 1);
    h.runner.actor_stopping(h.now, ACTOR).unwrap();
    assert_eq!(h.drain(), vec![Out::actor_stopped()]);
    assert_eq!(
        h.feed(s, 6, msg_kind(b"q")),
        Err(ReceiveError::UnknownSocket { socket: s })
    );
    assert_eq!(
        h.runner.actor_stopping(h.now, ACTOR),
        Err(ActorError::UnknownActor {
            actor_id: ACTOR.into()
        })
    );
}

#[test]
fn messages_queue_while_the_actor_starts_and_drain_in_order() {
    let mut h = Harness::default_config();
    let (restored, fresh) = (sid(103, 1), sid(103, 2));
    h.runner
        .actor_starting(h.now, ACTOR, vec![hib(restored)])
        .unwrap();
    assert_eq!(
        h.runner.actor_starting(h.now, ACTOR, vec![]),
        Err(ActorError::AlreadyStarting {
            actor_id: ACTOR.into()
        })
    );
    h.msg(restored, 4, b"dup");
    h.msg(restored, 5, b"five");
    h.feed(fresh, 0, open_kind(ACTOR)).unwrap();
    h.feed(fresh, 1, msg_kind(b"before accept")).unwrap(); // queued behind its open
    assert_eq!(h.drain(), vec![]);
    assert_eq!(h.runner.actor(ACTOR).unwrap().queued, 4);
    let summary = h
        .runner
        .restore(h.now, ACTOR, vec![meta(restored, 4, 0)])
        .unwrap();
    assert_eq!((summary.restored, summary.replayed), (1, 4));
    assert_eq!(
        h.drain(),
        vec![
            Out::Restored {
                socket: restored,
                server_index: 4
            },
            Out::ack(restored, 0, 4),
            // The queued duplicate re-acks (the restore ack does not arm the rate limit).
            Out::ack(restored, 1, 4),
            Out::msg(restored, 5, b"five"),
            Out::Open {
                socket: fresh,
                index: 0
            },
        ]
    );
    let st = h.runner.stats();
    assert_eq!((st.queued, st.duplicates, st.dropped_not_open), (4, 1, 1));
}

#[test]
fn queue_is_bounded() {
    let mut h = Harness::new(RunnerConfig::default().with_max_queued_per_actor(2));
    let s = sid(104, 1);
    h.runner.actor_starting(h.now, ACTOR, vec![hib(s)]).unwrap();
    h.msg(s, 1, b"a");
    h.msg(s, 2, b"b");
    assert_eq!(
        h.feed(s, 3, msg_kind(b"c")),
        Err(ReceiveError::QueueFull {
            actor_id: ACTOR.into()
        })
    );
    assert_eq!(h.runner.stats().dropped_queue_full, 1);
    let mut h = Harness::new(RunnerConfig::default().with_max_queued_bytes_per_actor(40));
    h.runner.actor_starting(h.now, ACTOR, vec![hib(s)]).unwrap();
    h.msg(s, 1, &[0; 20]); // 10 id + 1 tag + 21 data + 1 flag = 33 bytes
    assert_eq!(
        h.feed(s, 2, msg_kind(&[0; 1])),
        Err(ReceiveError::QueueFull {
            actor_id: ACTOR.into()
        })
    );
}

#[test]
fn gateway_close_is_not_echoed() {
    let mut h = Harness::default_config();
    h.start_actor();
    let (hs, ns) = (sid(110, 1), sid(110, 2));
    h.open(hs, 0, true);
    h.open(ns, 0, false);
    h.feed(hs, 1, close_kind(Some(1001), Some("going away")))
        .unwrap();
    h.feed(ns, 1, close_kind(None, None)).unwrap();
    // Upstream echoes a ToServerWebSocketClose back (weak spot 16,
    // `docs/upstream.md#weak-spots`); hws sends nothing.
    assert_eq!(
        h.drain(),
        vec![
            Out::Closed {
                socket: hs,
                reason: CloseReason::GatewayClosed(frame_of(1001, "going away"))
            },
            Out::Delete { socket: hs },
            Out::Closed {
                socket: ns,
                reason: CloseReason::GatewayClosed(CloseFrame::default())
            },
        ]
    );
    assert_eq!(
        h.feed(hs, 2, close_kind(None, None)),
        Err(ReceiveError::UnknownSocket { socket: hs })
    );
    assert_eq!(h.runner.stats().closed_gateway, 2);
}

#[test]
fn app_commands_reject_close_hibernate() {
    let mut h = Harness::default_config();
    h.start_actor();
    let s = sid(120, 1);
    h.feed(s, 0, open_kind(ACTOR)).unwrap();
    let _ = h.drain();
    assert_eq!(
        h.runner.close(h.now, s, CloseFrame::code(1000)),
        Err(SocketError::NotOpen { socket: s })
    );
    assert_eq!(
        h.runner.hibernate(h.now, s),
        Err(SocketError::NotOpen { socket: s })
    );
    h.runner.reject(h.now, s, frame_of(1011, "nope")).unwrap();
    assert_eq!(
        h.drain(),
        vec![
            Out::close(s, 0, 1011, "nope"),
            Out::Closed {
                socket: s,
                reason: CloseReason::Rejected(frame_of(1011, "nope"))
            },
        ]
    );
    assert_eq!(
        h.runner.accept(h.now, s, true),
        Err(SocketError::UnknownSocket { socket: s })
    );

    let n = sid(120, 2);
    h.open(n, 0, false);
    assert_eq!(
        h.runner.accept(h.now, n, true),
        Err(SocketError::WrongState { socket: n })
    );
    assert_eq!(
        h.runner.reject(h.now, n, CloseFrame::default()),
        Err(SocketError::WrongState { socket: n })
    );
    assert_eq!(
        h.runner.hibernate(h.now, n),
        Err(SocketError::NotHibernatable { socket: n })
    );
    let max = h.runner.config().max_message_size;
    assert_eq!(
        h.runner.send(h.now, n, &vec![0; max + 1], true),
        Err(SendError::MessageTooLarge {
            socket: n,
            size: max + 1,
            max
        })
    );
    assert_eq!(
        h.runner.send(h.now, sid(9, 9), b"", true),
        Err(SendError::UnknownSocket { socket: sid(9, 9) })
    );

    let hs = sid(120, 3);
    h.open(hs, 0, true);
    h.msg(hs, 1, b"a");
    let _ = h.drain();
    h.runner.hibernate(h.now, hs).unwrap();
    assert_eq!(
        h.drain(),
        vec![
            Out::persist(hs, 1, 2),
            Out::SendClose {
                socket: hs,
                out: 1,
                code: None,
                reason: None,
                hibernate: true
            },
            Out::Closed {
                socket: hs,
                reason: CloseReason::Hibernated
            },
        ]
    );
    // The result settles the hand-back (an actor stopping meanwhile waits for it).
    assert_eq!(h.runner.persisted(h.now, hs, MessageIndex::new(1)), Ok(()));
    assert_eq!(
        h.runner.persisted(h.now, hs, MessageIndex::new(1)),
        Err(SocketError::UnknownSocket { socket: hs })
    );
    assert_eq!(
        h.runner.poll_timeout(),
        None,
        "the hibernated socket's debounce is gone"
    );
}

// ---------------------------------------------------------------------------------------------
// Receive errors, framing, pings
// ---------------------------------------------------------------------------------------------

#[test]
fn every_receive_error_is_counted() {
    let mut h = Harness::default_config();
    h.start_actor();
    let s = sid(130, 1);
    // Malformed.
    assert!(matches!(
        h.runner.handle_frame(h.now, &[7, 0, 99]),
        Err(ReceiveError::Malformed(_))
    ));
    assert!(matches!(
        h.runner.handle_frame(h.now, &[]),
        Err(ReceiveError::Malformed(_))
    ));
    // Unknown actor (answered).
    assert_eq!(
        h.feed(s, 0, open_kind("nobody")),
        Err(ReceiveError::UnknownActor {
            actor_id: "nobody".into()
        })
    );
    // Unknown socket.
    assert_eq!(
        h.feed(s, 1, msg_kind(b"?")),
        Err(ReceiveError::UnknownSocket { socket: s })
    );
    // Not open.
    h.feed(s, 0, open_kind(ACTOR)).unwrap();
    assert_eq!(
        h.feed(s, 1, msg_kind(b"?")),
        Err(ReceiveError::NotOpen { socket: s })
    );
    // Unsupported: ToRunnerClose and HTTP kinds.
    let close = wire::encode_versioned(7, &ToRunner::Close);
    assert_eq!(
        h.runner.handle_frame(h.now, &close),
        Err(ReceiveError::Unsupported {
            kind: "runner_close"
        })
    );
    assert_eq!(
        h.runner.handle_tunnel_message(
            h.now,
            tunnel(
                s,
                2,
                hibernating_ws::wire::ToClientTunnelMessageKind::RequestAbort
            )
        ),
        Err(ReceiveError::Unsupported {
            kind: "request_abort"
        })
    );
    // Queue full.
    let mut q = Harness::new(RunnerConfig::default().with_max_queued_per_actor(1));
    q.runner.actor_starting(q.now, ACTOR, vec![]).unwrap();
    q.feed(s, 0, open_kind(ACTOR)).unwrap();
    assert_eq!(
        q.feed(s, 1, msg_kind(b"")),
        Err(ReceiveError::QueueFull {
            actor_id: ACTOR.into()
        })
    );
    assert_eq!(q.runner.stats().dropped_queue_full, 1);

    let st = h.runner.stats();
    assert_eq!(st.dropped_malformed, 2);
    assert_eq!(st.dropped_unknown_actor, 1);
    assert_eq!(st.actor_not_found, 1);
    assert_eq!(st.dropped_unknown_socket, 1);
    assert_eq!(st.dropped_not_open, 1);
    assert_eq!(st.dropped_unsupported, 2);
    assert_eq!(st.frames_received, 7);
}

#[test]
fn socket_limit_answers_server_error() {
    let mut h = Harness::new(RunnerConfig::default().with_max_sockets(2));
    h.start_actor();
    h.open(sid(160, 1), 0, false);
    h.open(sid(160, 2), 0, true);
    let third = sid(160, 3);
    assert_eq!(
        h.feed(third, 0, open_kind(ACTOR)),
        Err(ReceiveError::SocketLimit { socket: third })
    );
    assert_eq!(h.drain(), vec![Out::close(third, 0, 1011, "Server Error")]);
    assert_eq!(h.runner.stats().dropped_socket_limit, 1);
    // Room again once a socket closes.
    h.runner
        .close(h.now, sid(160, 1), CloseFrame::code(1000))
        .unwrap();
    let _ = h.drain();
    h.feed(third, 0, open_kind(ACTOR)).unwrap();
    assert_eq!(
        h.drain(),
        vec![Out::Open {
            socket: third,
            index: 0
        }]
    );
}

#[test]
fn ping_is_answered_with_a_pong_only_for_a_socket_the_runner_holds() {
    let mut h = Harness::default_config();
    let ping = |s: hibernating_ws::runner::SocketId| {
        wire::encode_versioned(
            7,
            &ToRunner::Ping(ToRunnerPing {
                gateway_id: s.gateway_id,
                request_id: s.request_id,
                ts: -5,
            }),
        )
    };
    // A socket the runner never held: a typed answer, close 1011 `ws.socket_not_found`.
    let unknown = hibernating_ws::runner::SocketId::new(GatewayId([9; 4]), RequestId([8; 4]));
    h.runner.handle_frame(h.now, &ping(unknown)).unwrap();
    assert_eq!(
        h.drain(),
        vec![Out::close(unknown, 0, 1011, "ws.socket_not_found")]
    );
    // A socket it holds: a pong.
    h.start_actor();
    let s = sid(141, 1);
    h.feed(s, 0, open_kind(ACTOR)).unwrap();
    h.runner.accept(h.now, s, true).unwrap();
    let _ = h.drain();
    h.runner.handle_frame(h.now, &ping(s)).unwrap();
    assert_eq!(
        h.drain(),
        vec![Out::Pong {
            gateway_id: s.gateway_id,
            request_id: s.request_id,
            ts: -5
        }]
    );
    let st = h.runner.stats();
    assert_eq!((st.pongs, st.not_found_answers), (1, 1));
}

#[test]
fn runner_socket_framing_uses_plain_to_client_and_to_server() {
    let mut h = Harness::new(RunnerConfig::default().with_framing(Framing::RunnerSocket));
    h.start_actor();
    let s = sid(140, 1);
    let open = wire::encode(&ToClient::TunnelMessage(tunnel(s, 0, open_kind(ACTOR))));
    h.runner.handle_frame(h.now, &open).unwrap();
    assert!(matches!(
        h.runner.poll_action(),
        Some(hibernating_ws::runner::Action::Open { .. })
    ));
    h.runner.accept(h.now, s, false).unwrap();
    let Some(hibernating_ws::runner::Action::Publish { frame, .. }) = h.runner.poll_action() else {
        panic!("expected a publish")
    };
    let ToServer::TunnelMessage(m) = wire::decode::<ToServer>(&frame).unwrap() else {
        panic!("expected a tunnel message")
    };
    assert_eq!(m.message_id.message_index.get(), 0);
    // A versioned frame is malformed on this framing.
    assert!(matches!(
        h.runner.handle_frame(h.now, &frame_for_pubsub(s)),
        Err(ReceiveError::Malformed(_))
    ));
}

fn frame_for_pubsub(s: hibernating_ws::runner::SocketId) -> Vec<u8> {
    runner_support::frame(s, 1, msg_kind(b"x"))
}

#[test]
fn time_never_goes_backwards_and_handled_deadlines_do_not_return() {
    let s = sid(150, 1);
    let mut h = Harness::default_config().with_open_socket(s, 0);
    h.msg(s, 1, b"a");
    let _ = h.drain();
    let deadline = h.runner.poll_timeout().unwrap();
    h.runner.handle_timeout(deadline);
    let _ = h.drain();
    // An earlier `now` is clamped: no panic, no rewind.
    h.runner.handle_timeout(Timestamp::ZERO);
    assert!(h.runner.poll_timeout().is_none_or(|t| t > deadline));
    // At the end of time deadlines cannot be armed, and nothing loops.
    h.persisted(s, 1);
    let _ = h.drain();
    h.runner.handle_timeout(Timestamp::MAX);
    h.msg(s, 2, b"b");
    h.runner.handle_timeout(Timestamp::MAX);
    assert!(
        h.runner
            .poll_timeout()
            .is_none_or(|t| t > Timestamp::MAX - Duration::from_secs(1))
    );
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(512))]

    /// Arbitrary bytes never panic, on either framing; they are either a valid frame or counted
    /// as malformed.
    #[test]
    fn arbitrary_frames_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
                                    runner_socket in proptest::bool::ANY) {
        let framing = if runner_socket { Framing::RunnerSocket } else { Framing::default() };
        let mut h = Harness::new(RunnerConfig::default().with_framing(framing));
        h.start_actor();
        let result = h.runner.handle_frame(h.now, &bytes);
        let st = h.runner.stats();
        if let Err(ReceiveError::Malformed(_)) = result {
            proptest::prop_assert_eq!(st.dropped_malformed, 1);
        } else {
            proptest::prop_assert_eq!(st.dropped_malformed, 0);
        }
        while h.runner.poll_action().is_some() {}
    }
}

/// One arbitrary call, from the network, the app, storage or the clock.
#[derive(Debug, Clone)]
enum Op {
    Open {
        s: u8,
        k: u16,
        actor: u8,
    },
    Msg {
        s: u8,
        r: u16,
        len: u8,
    },
    GatewayClose {
        s: u8,
    },
    Accept {
        s: u8,
        hib: bool,
    },
    Reject {
        s: u8,
    },
    Send {
        s: u8,
        len: u8,
    },
    Close {
        s: u8,
    },
    Hibernate {
        s: u8,
    },
    Persisted {
        s: u8,
        i: u16,
    },
    PersistFailed {
        s: u8,
        i: u16,
    },
    Start {
        actor: u8,
        listed: Vec<u8>,
    },
    Restore {
        actor: u8,
        metas: Vec<(u8, u16, u16)>,
    },
    Stop {
        actor: u8,
    },
    Advance {
        micros: u32,
    },
    Bytes {
        bytes: Vec<u8>,
    },
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    let s = 0u8..4;
    let idx = prop_oneof![0u16..8, Just(32_768u16), any::<u16>()];
    prop_oneof![
        (s.clone(), idx.clone(), 0u8..2).prop_map(|(s, k, actor)| Op::Open { s, k, actor }),
        (s.clone(), idx.clone(), 0u8..8).prop_map(|(s, r, len)| Op::Msg { s, r, len }),
        s.clone().prop_map(|s| Op::GatewayClose { s }),
        (s.clone(), any::<bool>()).prop_map(|(s, hib)| Op::Accept { s, hib }),
        s.clone().prop_map(|s| Op::Reject { s }),
        (s.clone(), 0u8..8).prop_map(|(s, len)| Op::Send { s, len }),
        s.clone().prop_map(|s| Op::Close { s }),
        s.clone().prop_map(|s| Op::Hibernate { s }),
        (s.clone(), idx.clone()).prop_map(|(s, i)| Op::Persisted { s, i }),
        (s.clone(), idx.clone()).prop_map(|(s, i)| Op::PersistFailed { s, i }),
        (0u8..2, proptest::collection::vec(s.clone(), 0..4))
            .prop_map(|(actor, listed)| Op::Start { actor, listed }),
        (
            0u8..2,
            proptest::collection::vec((s, idx.clone(), idx), 0..4)
        )
            .prop_map(|(actor, metas)| Op::Restore { actor, metas }),
        (0u8..2).prop_map(|actor| Op::Stop { actor }),
        prop_oneof![Just(1u32), 0u32..10_000_000].prop_map(|micros| Op::Advance { micros }),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(|bytes| Op::Bytes { bytes }),
    ]
}

fn apply_op(h: &mut Harness, op: Op) {
    /// Results are ignored: only panics, hangs and the timer contract are checked.
    fn ignore<T, E>(_: Result<T, E>) {}
    let name = |actor: u8| if actor == 0 { "a0" } else { "a1" };
    let id = |sock: u8| sid(1, u32::from(sock));
    let now = h.now;
    match op {
        Op::Open { s, k, actor } => ignore(h.feed(id(s), k, open_kind(name(actor)))),
        Op::Msg { s, r, len } => ignore(h.feed(id(s), r, msg_kind(&vec![1; usize::from(len)]))),
        Op::GatewayClose { s } => ignore(h.feed(id(s), 0, close_kind(Some(1000), Some("bye")))),
        Op::Accept { s, hib } => ignore(h.runner.accept(now, id(s), hib)),
        Op::Reject { s } => ignore(h.runner.reject(now, id(s), CloseFrame::code(1011))),
        Op::Send { s, len } => ignore(h.runner.send(now, id(s), &vec![0; usize::from(len)], true)),
        Op::Close { s } => ignore(h.runner.close(now, id(s), CloseFrame::default())),
        Op::Hibernate { s } => ignore(h.runner.hibernate(now, id(s))),
        Op::Persisted { s, i } => ignore(h.runner.persisted(now, id(s), MessageIndex::new(i))),
        Op::PersistFailed { s, i } => {
            ignore(h.runner.persist_failed(now, id(s), MessageIndex::new(i)));
        }
        Op::Start { actor, listed } => ignore(h.runner.actor_starting(
            now,
            name(actor),
            listed.into_iter().map(|sock| hib(id(sock))).collect(),
        )),
        Op::Restore { actor, metas } => ignore(
            h.runner.restore(
                now,
                name(actor),
                metas
                    .into_iter()
                    .map(|(sock, server, client)| meta(id(sock), server, client))
                    .collect(),
            ),
        ),
        Op::Stop { actor } => ignore(h.runner.actor_stopping(now, name(actor))),
        Op::Advance { micros } => {
            h.now += Duration::from_micros(u64::from(micros));
            h.runner.handle_timeout(h.now);
            if let Some(t) = h.runner.poll_timeout() {
                assert!(
                    t > h.now,
                    "poll_timeout {t:?} returned after handle_timeout({:?})",
                    h.now
                );
            }
        }
        Op::Bytes { bytes } => ignore(h.runner.handle_frame(now, &bytes)),
    }
    // Persists are never answered here, or answered with arbitrary indices above: drain only.
    while h.runner.poll_action().is_some() {}
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(256))]

    /// Any sequence of calls, valid or not, in any order, never panics; the timer contract
    /// holds throughout.
    #[test]
    fn arbitrary_call_sequences_never_panic(
        ops in proptest::collection::vec(op(), 1..120),
        await_gaps in proptest::bool::ANY,
    ) {
        let gap_policy = if await_gaps { GapPolicy::Await } else { GapPolicy::Close };
        let mut h = Harness::new(RunnerConfig::default().with_gap_policy(gap_policy).with_max_held_messages(3));
        for op in ops {
            apply_op(&mut h, op);
        }
        proptest::prop_assert!(h.runner.len() <= 4);
    }
}

#[test]
fn default_queue_holds_a_full_gateway_window_replayed_before_restore() {
    // A gateway may wake a request as soon as the actor is starting: its whole window
    // (32 767 unacked messages at most) then queues here until `restore`. The first default
    // (1 024) dropped the rest, which the socket later saw as a gap (1008 close).
    let mut h = Harness::default_config();
    let s = sid(120, 1);
    h.runner.actor_starting(h.now, ACTOR, vec![hib(s)]).unwrap();
    let window = hibernating_ws::index::MAX_WINDOW;
    for i in 1..=window {
        h.msg(s, i, b"x");
    }
    assert_eq!(h.runner.stats().dropped_queue_full, 0);
    h.runner.restore(h.now, ACTOR, vec![meta(s, 0, 0)]).unwrap();
    let delivered = h
        .drain()
        .into_iter()
        .filter(|o| matches!(o, Out::Msg { .. }))
        .count();
    assert_eq!(delivered, usize::from(window));
    assert_eq!(h.last_delivered(s), window);
}
