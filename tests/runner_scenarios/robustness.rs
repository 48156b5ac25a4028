//! Arbitrary call sequences never panic, and the default queue holds a full gateway window
//! replayed before the restore.

use super::*;

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
            handle_timeout_checked(&mut h.runner, h.now);
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
