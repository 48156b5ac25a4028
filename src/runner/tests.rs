//! Unit tests of the engine's internals: timer heap hygiene, slot reuse, the held buffer across
//! the wrap, open-replay edge cases, restore skips.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use super::*;
use crate::wire::{
    GatewayId, Headers, RequestId, ToClientWebSocketClose, ToClientWebSocketMessage,
};

const A: &str = "a";

fn sid(r: u32) -> SocketId {
    SocketId::new(GatewayId([1; 4]), RequestId::from_u32(r))
}

fn tunnel(s: SocketId, index: u16, kind: ToClientTunnelMessageKind) -> ToClientTunnelMessage {
    ToClientTunnelMessage {
        message_id: MessageId {
            gateway_id: s.gateway_id,
            request_id: s.request_id,
            message_index: MessageIndex::new(index),
        },
        kind,
    }
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

#[test]
fn open_replay_reset_clears_held_messages() {
    let (mut r, now) = runner(RunnerConfig {
        gap_policy: GapPolicy::Await,
        ..RunnerConfig::default()
    });
    let s = sid(3);
    open_socket(&mut r, now, s, 0, true);
    r.handle_tunnel_message(now, tunnel(s, 1, msg(b"1")))
        .unwrap();
    r.handle_tunnel_message(now, tunnel(s, 3, msg(b"3")))
        .unwrap();
    drain(&mut r);
    r.handle_tunnel_message(now, tunnel(s, 0, open(A))).unwrap();
    let info = r.socket(s).unwrap();
    assert_eq!(
        (info.held, info.last_delivered.get(), info.last_persisted),
        (0, 0, None)
    );
    assert_eq!(
        info.next_client_index.get(),
        1,
        "the re-sent open took index 0"
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

/// Found by the `runner_ops` fuzz target: `restore` inserted every persisted socket without
/// checking `max_sockets`, so a runner already at its limit held more sockets than configured.
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
    assert_eq!(r.actor_stopping(now, A), Err(ActorError::UnknownActor));
    assert_eq!(r.restore(now, A, vec![]), Err(ActorError::NotStarting));
    r.actor_starting(now, A, vec![]).unwrap();
    assert_eq!(
        r.actor_starting(now, A, vec![]),
        Err(ActorError::AlreadyStarting)
    );
    r.restore(now, A, vec![]).unwrap();
    assert_eq!(
        r.actor_starting(now, A, vec![]),
        Err(ActorError::AlreadyStarting)
    );
    // An actor without sockets stops at once, and its slot is reused.
    r.actor_stopping(now, A).unwrap();
    assert!(
        matches!(drain(&mut r).as_slice(), [Action::ActorStopped { actor_id }] if actor_id == A)
    );
    r.actor_starting(now, "b", vec![]).unwrap();
    assert_eq!(r.actors.len(), 1);
}
