//! Scenario tests of the runner session (`hibernating_ws::session`) against the control engine
//! in the in-memory `World` harness: tunnel frames the runner produces while its connection is
//! down are kept and sent after a handshake that keeps its id, and dropped when the id changed.

#![cfg(feature = "sim")]
#![allow(clippy::unwrap_used)]

use core::time::Duration;

use hibernating_ws::control::ControlConfig;
use hibernating_ws::fuzz::{WORLD_GATEWAY, World};
use hibernating_ws::gateway::GatewayConfig;
use hibernating_ws::runner::SocketId;
use hibernating_ws::wire::RequestId;

const R1: RequestId = RequestId([0, 0, 0, 1]);

/// One runner (2 slots), connected, declared lost after `lost`, actor `a` defined, a client on
/// it.
fn opened(lost: Duration) -> World {
    let mut config = ControlConfig::default();
    config.runner_lost_threshold = lost;
    let mut w = World::new(config, GatewayConfig::default(), 1, 2);
    w.connect(0);
    w.control
        .create_actor(w.now, "a", World::spec("a"))
        .unwrap();
    w.open(R1, "a").unwrap();
    w
}

/// [`opened`] with a 10 s threshold and a client that sent one message.
fn world() -> World {
    let mut w = opened(Duration::from_secs(10));
    w.send(R1).unwrap();
    w
}

fn pending(w: &World) -> u64 {
    w.control.gateway().stats().pending_messages
}

/// Regression: tunnel frames produced while the runner's connection was down (here the ack of a
/// debounced persist) were handed to the adapter, which had no socket and dropped them; the
/// official runner keeps them for the next connection.
#[test]
fn an_ack_produced_while_disconnected_is_sent_after_the_handshake() {
    let mut w = world();
    assert_eq!(pending(&w), 1);
    w.disconnect(0);
    // The persist debounce fires while disconnected: the ack is kept.
    w.advance(Duration::from_secs(6));
    let session = &w.runners[0].session;
    assert_eq!(session.offline_frames().0, 1);
    assert_eq!(pending(&w), 1, "the gateway has not seen the ack");
    // Same key within the threshold: same id, the kept ack goes out.
    w.connect(0);
    assert_eq!(w.runners[0].session.offline_frames(), (0, 0));
    assert_eq!(w.runners[0].session.offline_frames_dropped(), 0);
    assert_eq!(pending(&w), 0);
    w.check_delivery().unwrap();
}

#[test]
fn frames_kept_for_a_lost_runner_id_are_dropped() {
    let mut w = world();
    w.disconnect(0);
    w.advance(Duration::from_secs(6));
    assert_eq!(w.runners[0].session.offline_frames().0, 1);
    // Past the lost threshold: the engine and the session stop the actor; the kept frames
    // belonged to the old id.
    w.advance(Duration::from_secs(6));
    assert_eq!(w.runners[0].session.offline_frames(), (0, 0));
    assert!(w.runners[0].session.offline_frames_dropped() >= 1);
    w.connect(0);
    assert_eq!(w.runners[0].session.offline_frames(), (0, 0));
    w.check_delivery().unwrap();
}

#[test]
fn kept_frames_are_bounded() {
    let mut w = opened(Duration::from_secs(60));
    w.disconnect(0);
    // The app sends while disconnected: only `max_offline_frames` are kept.
    let session = &mut w.runners[0].session;
    let limit = 4096;
    let id = SocketId::new(WORLD_GATEWAY, R1);
    for _ in 0..limit + 10 {
        session.runner_mut().send(w.now, id, b"x", false).unwrap();
    }
    w.pump();
    let session = &w.runners[0].session;
    assert_eq!(session.offline_frames().0, limit);
    assert_eq!(session.offline_frames_dropped(), 10);
}
