//! Unit tests of the engine's internals: timer heap hygiene, slot reuse, the held buffer across
//! the wrap, open-replay edge cases, restore skips.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use super::deadline::TIMER_SLACK;
use super::*;
use crate::close::KnownClose;
use crate::wire::{
    self, GatewayId, Headers, RequestId, ToClientTunnelMessageKind, ToClientWebSocketClose,
    ToClientWebSocketMessage, ToClientWebSocketOpen, ToGateway,
};

const A: &str = "a";

fn sid(r: u32) -> SocketId {
    SocketId::new(GatewayId([1; 4]), RequestId::from_u32(r))
}

fn tunnel(s: SocketId, index: u16, kind: ToClientTunnelMessageKind) -> ToClientTunnelMessage {
    crate::testing::msg::to_runner(s.gateway_id, s.request_id, index, kind)
}

fn open(actor: &str) -> ToClientTunnelMessageKind {
    ToClientTunnelMessageKind::WebSocketOpen(ToClientWebSocketOpen {
        actor_id: actor.into(),
        path: "/".into(),
        headers: Headers::new(),
    })
}

fn msg(data: &[u8]) -> ToClientTunnelMessageKind {
    ToClientTunnelMessageKind::WebSocketMessage(ToClientWebSocketMessage {
        data: data.to_vec(),
        binary: false,
    })
}

fn drain(r: &mut Runner) -> Vec<Action> {
    core::iter::from_fn(|| r.poll_action()).collect()
}

fn delivered(actions: &[Action]) -> Vec<u16> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Message { index, .. } => Some(index.get()),
            _ => None,
        })
        .collect()
}

fn runner(config: RunnerConfig) -> (Runner, Timestamp) {
    let now = Timestamp::from_secs(1);
    let mut r = Runner::new(config, now).unwrap();
    r.actor_starting(now, A, vec![]).unwrap();
    r.restore(now, A, vec![]).unwrap();
    (r, now)
}

/// Opens and accepts `s` at index `k`, answering the initial persist.
fn open_socket(r: &mut Runner, now: Timestamp, s: SocketId, k: u16, hibernatable: bool) {
    r.handle_tunnel_message(now, tunnel(s, k, open(A))).unwrap();
    r.accept(now, s, hibernatable).unwrap();
    if hibernatable {
        r.persisted(now, s, MessageIndex::new(k)).unwrap();
    }
    drain(r);
}

#[test]
fn new_rejects_an_invalid_config() {
    let bad = RunnerConfig {
        persist_bytes: 0,
        ..RunnerConfig::default()
    };
    assert!(matches!(
        Runner::new(bad, Timestamp::ZERO),
        Err(ConfigError::OutOfBounds {
            field: "persist_bytes",
            ..
        })
    ));
}

#[test]
fn held_buffer_orders_across_the_wrap() {
    let (mut r, now) = runner(RunnerConfig {
        gap_policy: GapPolicy::Await,
        ..RunnerConfig::default()
    });
    let s = sid(1);
    open_socket(&mut r, now, s, 65_534, true);
    for i in [1u16, 0] {
        r.handle_tunnel_message(now, tunnel(s, i, msg(b"h")))
            .unwrap();
    }
    assert_eq!(r.socket(s).unwrap().held, 2);
    r.handle_tunnel_message(now, tunnel(s, 65_535, msg(b"x")))
        .unwrap();
    assert_eq!(delivered(&drain(&mut r)), [65_535, 0, 1]);
    assert_eq!(r.socket(s).unwrap().held_bytes, 0);
}

#[test]
fn open_replay_advance_drops_held_messages_it_skips() {
    let (mut r, now) = runner(RunnerConfig {
        gap_policy: GapPolicy::Await,
        ..RunnerConfig::default()
    });
    let s = sid(2);
    open_socket(&mut r, now, s, 0, true);
    for i in [3u16, 5, 6] {
        r.handle_tunnel_message(now, tunnel(s, i, msg(b"h")))
            .unwrap();
    }
    // The gateway says it is at 5 now: 3 and 5 are behind; 6 is next and comes out at once.
    r.handle_tunnel_message(now, tunnel(s, 5, open(A))).unwrap();
    assert_eq!(delivered(&drain(&mut r)), [6]);
    let info = r.socket(s).unwrap();
    assert_eq!((info.held, info.last_delivered.get()), (0, 6));
    // No gap timer is left, only the persist debounce.
    assert_eq!(r.poll_timeout(), Some(now + Duration::from_secs(5)));
}

/// A duplicated copy of a socket's first open (index 0), arriving after messages were
/// delivered, changes nothing: it can only be a stale copy (the gateway numbers a request once,
/// from 0). It neither rewinds the socket nor persists index 0, and the retransmitted message 1
/// is a duplicate, not a second delivery.
#[test]
fn stale_copy_of_the_first_open_does_not_rewind_the_socket() {
    for gap_policy in [GapPolicy::Close, GapPolicy::Await] {
        let (mut r, now) = runner(RunnerConfig {
            gap_policy,
            ..RunnerConfig::default()
        });
        let s = sid(3);
        open_socket(&mut r, now, s, 0, true);
        r.handle_tunnel_message(now, tunnel(s, 1, msg(b"1")))
            .unwrap();
        if gap_policy == GapPolicy::Await {
            // Held behind the gap.
            r.handle_tunnel_message(now, tunnel(s, 3, msg(b"3")))
                .unwrap();
        }
        assert_eq!(delivered(&drain(&mut r)), [1]);
        r.handle_tunnel_message(now, tunnel(s, 0, open(A))).unwrap();
        let out = drain(&mut r);
        assert!(
            !out.iter().any(|a| matches!(a, Action::Persist { .. })),
            "no persist of a rewound index: {out:?}"
        );
        let info = r.socket(s).unwrap();
        assert_eq!(info.last_delivered.get(), 1, "{gap_policy:?}");
        // The gateway retransmits 1 (unacked): a duplicate, not a second delivery.
        r.handle_tunnel_message(now, tunnel(s, 1, msg(b"1")))
            .unwrap();
        r.handle_tunnel_message(now, tunnel(s, 2, msg(b"2")))
            .unwrap();
        let expected: &[u16] = match gap_policy {
            GapPolicy::Await => &[2, 3],
            GapPolicy::Close => &[2],
        };
        assert_eq!(delivered(&drain(&mut r)), expected, "{gap_policy:?}");
    }
}

/// A restored socket drops a message past a gap until the replay's first in-order message. The
/// client sends 7 and 8 while the actor stops; 7 reaches the runner after the socket was
/// forgotten (dropped), the actor restarts on the same runner, and 8 is queued for the listed
/// socket. The restore resumes at 6, so 8 is past a gap; the gateway's replay (after the wake)
/// resends 7 and 8, so 8 is dropped, neither closed on (`Close`) nor held (`Await`).
#[test]
fn restored_socket_drops_a_stale_message_past_a_gap_until_the_replay() {
    for gap_policy in [GapPolicy::Close, GapPolicy::Await] {
        let (mut r, now) = runner(RunnerConfig {
            gap_policy,
            max_held_messages: 1,
            ..RunnerConfig::default()
        });
        let s = sid(9);
        r.actor_starting(now, "b", vec![s.into()]).unwrap();
        // Published before the gateway hibernated the request; queued while the actor starts.
        r.handle_tunnel_message(now, tunnel(s, 8, msg(b"8")))
            .unwrap();
        let meta = PersistedSocket {
            socket: s,
            server_index: MessageIndex::new(6),
            client_index: MessageIndex::new(2),
            path: "/".into(),
            headers: Headers::new(),
        };
        r.restore(now, "b", vec![meta]).unwrap();
        // Another stale one would overflow a held buffer of one under `Await`.
        r.handle_tunnel_message(now, tunnel(s, 9, msg(b"9")))
            .unwrap();
        let out = drain(&mut r);
        assert!(
            !out.iter().any(|a| matches!(a, Action::Closed { .. })),
            "{gap_policy:?}: no gap close: {out:?}"
        );
        assert_eq!(r.stats().dropped_before_replay, 2, "{gap_policy:?}");
        assert_eq!(r.socket(s).unwrap().held, 0, "{gap_policy:?}");
        // The replay: 5 (duplicate), 6 (duplicate), 7, 8, 9 — delivered in order, once.
        for i in 5..=9u16 {
            r.handle_tunnel_message(now, tunnel(s, i, msg(b"r")))
                .unwrap();
        }
        assert_eq!(delivered(&drain(&mut r)), [7, 8, 9], "{gap_policy:?}");
        // From then on the gap policy applies as usual.
        r.handle_tunnel_message(now, tunnel(s, 11, msg(b"11")))
            .unwrap();
        let closed = drain(&mut r).iter().any(|a| {
            matches!(
                a,
                Action::Closed {
                    reason: CloseReason::MessageIndexSkip,
                    ..
                }
            )
        });
        assert_eq!(closed, gap_policy == GapPolicy::Close, "{gap_policy:?}");
        if gap_policy == GapPolicy::Await {
            assert_eq!(r.socket(s).unwrap().held, 1);
        }
    }
}

#[test]
fn actor_stop_waits_for_the_hand_back_persist() {
    let (mut r, now) = runner(RunnerConfig::default());
    let s = sid(11);
    open_socket(&mut r, now, s, 0, true);
    r.handle_tunnel_message(now, tunnel(s, 1, msg(b"1")))
        .unwrap();
    drain(&mut r);
    r.hibernate(now, s).unwrap();
    assert!(
        drain(&mut r)
            .iter()
            .any(|a| matches!(a, Action::Persist { server_index, .. } if server_index.get() == 1))
    );
    r.actor_stopping(now, A).unwrap();
    assert!(
        !drain(&mut r)
            .iter()
            .any(|a| matches!(a, Action::ActorStopped { .. })),
        "the hand-back's persist is not answered yet"
    );
    assert_eq!(r.persisted(now, s, MessageIndex::new(1)), Ok(()));
    assert_eq!(drain(&mut r), [Action::ActorStopped { actor_id: A.into() }]);
    // A failed write settles it too (nothing to retry: the gateway replays after the wake).
    let (mut r, now) = runner(RunnerConfig::default());
    open_socket(&mut r, now, s, 0, true);
    r.hibernate(now, s).unwrap();
    r.actor_stopping(now, A).unwrap();
    drain(&mut r);
    assert_eq!(r.persist_failed(now, s, MessageIndex::ZERO), Ok(()));
    assert!(
        drain(&mut r)
            .iter()
            .any(|a| matches!(a, Action::ActorStopped { .. }))
    );
}

#[test]
fn a_removed_sockets_timer_never_fires_for_the_slot_successor() {
    let (mut r, now) = runner(RunnerConfig {
        gap_policy: GapPolicy::Await,
        ..RunnerConfig::default()
    });
    let old = sid(4);
    open_socket(&mut r, now, old, 0, true);
    r.handle_tunnel_message(now, tunnel(old, 2, msg(b"gap")))
        .unwrap();
    let gap_at = r.poll_timeout().unwrap();
    // The gateway closes it; a new socket takes the same slot.
    r.handle_tunnel_message(
        now,
        tunnel(
            old,
            3,
            ToClientTunnelMessageKind::WebSocketClose(ToClientWebSocketClose::default()),
        ),
    )
    .unwrap();
    drain(&mut r);
    assert_eq!(
        r.poll_timeout(),
        None,
        "the stale entry was pruned from the top"
    );
    let new = sid(5);
    open_socket(&mut r, now, new, 0, true);
    r.handle_timeout(gap_at);
    assert!(drain(&mut r).is_empty());
    assert_eq!(r.socket(new).unwrap().state, SocketState::Open);
}

#[test]
fn stale_timer_entries_are_compacted() {
    let (mut r, mut now) = runner(RunnerConfig::default());
    let s = sid(6);
    open_socket(&mut r, now, s, 0, true);
    // `s` keeps the earliest (live) deadline at the top of the heap.
    r.handle_tunnel_message(now, tunnel(s, 1, msg(b"x")))
        .unwrap();
    // Each cycle arms a debounce deadline, then closes the socket: a stale heap entry stays
    // behind until compaction.
    for i in 100..2_100u32 {
        let t = sid(i);
        open_socket(&mut r, now, t, 0, true);
        r.handle_tunnel_message(now, tunnel(t, 1, msg(b"x")))
            .unwrap();
        r.close(now, t, CloseFrame::code(1000)).unwrap();
        drain(&mut r);
        now += Duration::from_micros(1);
        assert!(r.timers.len() <= r.live_sockets * 6 + TIMER_SLACK);
    }
    assert_eq!(r.len(), 1);
}

#[test]
fn restore_skips_repeats_and_ids_live_under_another_actor() {
    let now = Timestamp::from_secs(1);
    let mut r = Runner::new(RunnerConfig::default(), now).unwrap();
    r.actor_starting(now, "first", vec![]).unwrap();
    r.restore(now, "first", vec![]).unwrap();
    let live = sid(7);
    r.handle_tunnel_message(now, tunnel(live, 0, open("first")))
        .unwrap();
    r.accept(now, live, true).unwrap();
    drain(&mut r);
    let other = sid(8);
    r.actor_starting(now, "second", vec![live.into(), other.into()])
        .unwrap();
    let meta = |s: SocketId| PersistedSocket {
        socket: s,
        server_index: MessageIndex::new(3),
        client_index: MessageIndex::ZERO,
        path: String::from("/"),
        headers: Headers::new(),
    };
    let summary = r
        .restore(now, "second", vec![meta(other), meta(other), meta(live)])
        .unwrap();
    assert_eq!((summary.restored, summary.skipped), (1, 2));
    assert_eq!(r.socket(live).unwrap().actor_id, "first");
    assert_eq!(r.socket(other).unwrap().actor_id, "second");
    assert_eq!(r.stats().restore_skipped, 2);
    assert_eq!((r.stats().sockets, r.stats().actors), (2, 2));
    let info = r.actor("second").unwrap();
    assert_eq!(
        (info.state, info.sockets, info.queued),
        (ActorState::Running, 1, 0)
    );
}

/// `restore` respects `max_sockets`: a runner already at its limit refuses a socket to restore
/// like an open beyond the limit.
#[test]
fn restore_respects_max_sockets() {
    let now = Timestamp::from_secs(1);
    let config = RunnerConfig {
        max_sockets: 2,
        ..RunnerConfig::default()
    };
    let mut r = Runner::new(config, now).unwrap();
    r.actor_starting(now, "first", vec![]).unwrap();
    r.restore(now, "first", vec![]).unwrap();
    let live = sid(1);
    r.handle_tunnel_message(now, tunnel(live, 0, open("first")))
        .unwrap();
    drain(&mut r);
    let (a, b) = (sid(2), sid(3));
    r.actor_starting(now, "second", vec![a.into(), b.into()])
        .unwrap();
    let meta = |s: SocketId| PersistedSocket {
        socket: s,
        server_index: MessageIndex::new(4),
        client_index: MessageIndex::new(2),
        path: String::from("/"),
        headers: Headers::new(),
    };
    let summary = r.restore(now, "second", vec![meta(a), meta(b)]).unwrap();
    assert_eq!((summary.restored, summary.socket_limit), (1, 1));
    assert_eq!(r.len(), 2);
    assert!(r.socket(a).is_some());
    assert!(r.socket(b).is_none());
    assert_eq!(r.stats().dropped_socket_limit, 1);
    let actions = drain(&mut r);
    assert!(actions.contains(&Action::DeleteMetadata {
        socket: b,
        actor_id: "second".into(),
    }));
    assert!(
        !actions
            .iter()
            .any(|x| matches!(x, Action::Restored { socket, .. } if *socket == b))
    );
    // The gateway is told, as for an open beyond the limit.
    let closes: Vec<_> = actions
        .iter()
        .filter_map(|x| match x {
            Action::Publish { frame, .. } => {
                match wire::decode_versioned::<ToGateway>(frame, &wire::DecodeLimits::default()) {
                    Ok((_, ToGateway::TunnelMessage(m))) => Some(m),
                    _ => None,
                }
            }
            _ => None,
        })
        .filter(|m| m.message_id.request_id == b.request_id)
        .map(|m| m.kind)
        .collect();
    assert_eq!(
        closes,
        [close_kind(&KnownClose::ServerError.frame(), false)]
    );
}

#[test]
fn zero_reack_interval_reacks_every_duplicate() {
    let (mut r, now) = runner(RunnerConfig {
        reack_interval: Duration::ZERO,
        ..RunnerConfig::default()
    });
    let s = sid(9);
    open_socket(&mut r, now, s, 10, true);
    for _ in 0..3 {
        r.handle_tunnel_message(now, tunnel(s, 9, msg(b"old")))
            .unwrap();
    }
    assert_eq!(r.stats().reacks, 3);
    // A duplicate after the last persisted index (delivered, not yet persisted) is not re-acked.
    r.handle_tunnel_message(now, tunnel(s, 11, msg(b"new")))
        .unwrap();
    r.handle_tunnel_message(now, tunnel(s, 11, msg(b"new")))
        .unwrap();
    assert_eq!(r.stats().reacks, 3);
}

#[test]
fn actor_errors() {
    let now = Timestamp::ZERO;
    let mut r = Runner::new(RunnerConfig::default(), now).unwrap();
    assert_eq!(
        r.actor_stopping(now, A),
        Err(ActorError::UnknownActor { actor_id: A.into() })
    );
    assert_eq!(
        r.restore(now, A, vec![]),
        Err(ActorError::NotStarting { actor_id: A.into() })
    );
    r.actor_starting(now, A, vec![]).unwrap();
    assert_eq!(
        r.actor_starting(now, A, vec![]),
        Err(ActorError::AlreadyStarting { actor_id: A.into() })
    );
    r.restore(now, A, vec![]).unwrap();
    assert_eq!(
        r.actor_starting(now, A, vec![]),
        Err(ActorError::AlreadyStarting { actor_id: A.into() })
    );
    // An actor without sockets stops at once, and its slot is reused.
    r.actor_stopping(now, A).unwrap();
    assert!(
        matches!(drain(&mut r).as_slice(), [Action::ActorStopped { actor_id }] if actor_id == A)
    );
    r.actor_starting(now, "b", vec![]).unwrap();
    assert_eq!(r.actors.len(), 1);
}

#[test]
fn a_late_result_of_a_closed_socket_never_settles_a_newer_socket_with_its_id() {
    // Socket 21 asks for a persist of index 5, then the gateway closes it; a new socket with the
    // same id opens at index 5 and asks for its own persist of 5. The first socket's result
    // arrives late: it must not count as the new socket's (whose write has not landed), which
    // would mark index 5 durable for it without a write.
    let (mut r, now) = runner(RunnerConfig::default());
    let s = sid(21);
    r.handle_tunnel_message(now, tunnel(s, 5, open(A))).unwrap();
    drain(&mut r);
    r.accept(now, s, true).unwrap();
    drain(&mut r); // the open's persist of index 5, unanswered
    let close = ToClientTunnelMessageKind::WebSocketClose(ToClientWebSocketClose::default());
    r.handle_tunnel_message(now, tunnel(s, 6, close)).unwrap();
    drain(&mut r);
    assert!(r.socket(s).is_none());
    r.handle_tunnel_message(now, tunnel(s, 5, open(A))).unwrap();
    drain(&mut r);
    r.accept(now, s, true).unwrap();
    drain(&mut r);
    let five = MessageIndex::new(5);
    assert_eq!(r.socket(s).unwrap().persist_in_flight, Some(five));
    // The late result of the closed socket: harmless, and the new socket still waits.
    assert_eq!(
        r.persisted(now, s, five),
        Err(SocketError::UnknownSocket { socket: s })
    );
    assert_eq!(r.socket(s).unwrap().persist_in_flight, Some(five));
    assert_eq!(r.socket(s).unwrap().last_persisted, None);
    // Its own result settles it.
    assert_eq!(r.persisted(now, s, five), Ok(()));
    assert_eq!(r.socket(s).unwrap().last_persisted, Some(five));
}

#[test]
fn a_hand_backs_result_is_its_own_even_after_the_id_is_reused() {
    // Socket 22 (index 0) is handed back while the actor keeps running; a new socket with the
    // same id opens at index 0 before the hand-back's write lands. Results come in request
    // order: the hand-back's settles the hand-back, the next one the new socket.
    let (mut r, now) = runner(RunnerConfig::default());
    let s = sid(22);
    open_socket(&mut r, now, s, 0, true);
    r.hibernate(now, s).unwrap();
    drain(&mut r);
    r.handle_tunnel_message(now, tunnel(s, 0, open(A))).unwrap();
    drain(&mut r);
    r.accept(now, s, true).unwrap();
    drain(&mut r);
    r.actor_stopping(now, A).unwrap();
    drain(&mut r);
    let zero = MessageIndex::ZERO;
    // The hand-back's result: the new socket is untouched and the actor still waits for it.
    assert_eq!(r.persisted(now, s, zero), Ok(()));
    assert_eq!(r.socket(s).unwrap().persist_in_flight, Some(zero));
    assert!(
        !drain(&mut r)
            .iter()
            .any(|a| matches!(a, Action::ActorStopped { .. }))
    );
    // The new socket's open persist, then the stop's flush that follows it: now the actor
    // has stopped.
    assert_eq!(r.persisted(now, s, zero), Ok(()));
    let flush = drain(&mut r);
    assert!(
        flush
            .iter()
            .any(|a| matches!(a, Action::Persist { server_index, .. } if *server_index == zero))
    );
    assert_eq!(r.persisted(now, s, zero), Ok(()));
    assert!(
        drain(&mut r)
            .iter()
            .any(|a| matches!(a, Action::ActorStopped { .. }))
    );
    assert!(r.socket(s).is_none());
}
