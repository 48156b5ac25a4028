//! Per-socket liveness on the runner side: a gateway probe for a socket the runner handed back
//! is dropped, not answered with close 1011 `ws.socket_not_found`, until an actor that started
//! after the hand-back restored (or did not restore) it.
//!
//! Pinned after a 10 000-socket run of `examples/reliability.rs idle`: a probe crossing an
//! actor's stop reached the runner after one socket's last persist but before the actor's other
//! sockets settled; the stopping actor still existed, so the hand-back did not count and the
//! healthy request was closed.

mod runner_support;

use hibernating_ws::MessageIndex;
use hibernating_ws::runner::SocketId;
use hibernating_ws::wire::{self, ToRunner, ToRunnerPing};
use runner_support::*;

fn ping(s: SocketId) -> Vec<u8> {
    wire::encode_versioned(
        7,
        &ToRunner::Ping(ToRunnerPing {
            gateway_id: s.gateway_id,
            request_id: s.request_id,
            ts: 1,
        }),
    )
}

fn not_found(s: SocketId) -> Out {
    Out::SendClose {
        socket: s,
        out: 0,
        code: Some(1011),
        reason: Some("ws.socket_not_found".into()),
        hibernate: false,
    }
}

/// Answers every persist the runner asks for; returns the other actions.
fn settle(h: &mut Harness) -> Vec<Out> {
    let mut rest = Vec::new();
    loop {
        let out = h.drain();
        if out.is_empty() {
            return rest;
        }
        for o in out {
            match o {
                Out::Persist {
                    socket,
                    server_index,
                    ..
                } => {
                    h.runner
                        .persisted(h.now, socket, MessageIndex::new(server_index))
                        .expect("persisted");
                }
                other => rest.push(other),
            }
        }
    }
}

/// A probe (a ping) for `s` is dropped: no answer, and no not-found answer counted.
fn assert_probe_dropped(h: &mut Harness, s: SocketId) {
    h.runner.handle_frame(h.now, &ping(s)).expect("a ping");
    assert_eq!(h.drain(), vec![]);
    assert_eq!(h.runner.stats().not_found_answers, 0);
}

#[test]
fn a_probe_for_a_socket_its_stopping_actor_handed_back_is_dropped() {
    let (mut h, s1, s2) = Harness::two_open(1, [true, true]);
    h.runner.actor_stopping(h.now, ACTOR).expect("stopping");
    let persists: Vec<Out> = h.drain();
    assert_eq!(persists.len(), 2, "{persists:?}");
    // s1's last persist lands: s1 is handed back; s2's is still in flight.
    h.runner
        .persisted(h.now, s1, MessageIndex::new(0))
        .expect("persisted");
    let _ = h.drain();
    assert!(h.runner.socket(s1).is_none() && h.runner.socket(s2).is_some());
    // A probe for s1 that crossed the stop: dropped, not answered.
    h.runner.handle_frame(h.now, &ping(s1)).expect("a ping");
    assert_eq!(h.drain(), vec![]);
    assert_eq!(h.runner.stats().dropped_handed_back, 1);
    // Once the actor finished stopping, the same.
    let _ = settle(&mut h);
    assert_probe_dropped(&mut h, s1);
}

#[test]
fn a_probe_for_a_socket_the_app_handed_back_is_dropped_before_the_actor_stops() {
    let (mut h, s) = Harness::open_socket(2);
    h.runner.hibernate(h.now, s).expect("hand back");
    let _ = settle(&mut h);
    assert!(h.runner.socket(s).is_none());
    assert_probe_dropped(&mut h, s);
}

#[test]
fn a_probe_after_a_later_incarnation_restored_without_the_socket_is_answered() {
    let (mut h, s) = Harness::open_socket(3);
    h.runner.actor_stopping(h.now, ACTOR).expect("stopping");
    let _ = settle(&mut h);
    h.advance(core::time::Duration::from_secs(1));
    // The actor starts again without the socket: its restore decided, the probe is answered.
    h.start_actor();
    h.runner.handle_frame(h.now, &ping(s)).expect("a ping");
    assert_eq!(h.drain(), vec![not_found(s)]);
}
