//! Scenarios 21–31: index validation, gaps, restores, duplicate opens, the outgoing index and
//! persist-then-ack.

use super::*;

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
    let (mut h, s) = Harness::open_socket(2);
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
    let mut h = Harness::started();
    let s = sid(3, 1);
    h.open(s, 0, false);
    h.msgs(s, [5u16, 5, 3, 40_000, 1], b"m");
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
    let mut h = Harness::started();
    let s = sid(4, 1);
    h.offer(s, 0);
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
    h.msgs(s, 5..=10u16, b"old");
    assert_eq!(h.drain(), vec![Out::ack(s, 4, 10)]);
    assert_eq!(h.runner.stats().duplicates, 6);
    assert_eq!(h.runner.stats().reacks, 1);
    // After reack_interval a duplicate re-acks once more.
    h.advance(Duration::from_secs(1));
    h.msgs(s, 8..=10u16, b"old");
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
    h.msgs(s, 1..=10_000u16, b"");
    assert_eq!(h.drain(), vec![Out::ack(s, 1, 10_000)]);
}

#[test]
fn scenario_27_duplicate_open_replay() {
    let (mut h, s) = Harness::open_socket(30);
    h.msgs(s, 1..=5u16, b"m");
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
    let (mut h, s) = Harness::open_socket(41);
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
    let (mut h, s) = Harness::open_socket(50);
    h.msgs(s, 1..=3u16, b"abc");
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
    h.msgs(s, [65_534u16, 65_535, 0, 1], b"w");
    let _ = h.drain();
    h.advance(Duration::from_secs(5));
    h.expect_persist(s, 1, 2);
    h.persist_and_expect_ack(s, 1, 1);
}

#[test]
fn scenario_31_bytes_threshold_forces_a_write() {
    // Upstream: the 500 000-byte "immediate" save is a no-op unless the actor's own state is
    // dirty. hws persists at once when the threshold is reached, whatever else happens.
    let (mut h, s) = Harness::open_socket(70);
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
