//! A client close never drops an accepted message: the close waits for the runner's acks of
//! everything pending, across a runner loss and the wake that replays to the next runner
//! (`docs/guarantees.md#a-client-close-waits-for-the-acks`).

use alloc::vec::Vec;
use core::time::Duration;

use super::*;
use crate::testing::msg::{runner_ack, runner_open, to_gateway};
use crate::wire::{
    ToClientTunnelMessageKind, ToRunner, ToServerTunnelMessageKind, ToServerWebSocketMessage,
};

const GW: GatewayId = GatewayId([1, 2, 3, 4]);
const ID: RequestId = RequestId([0, 0, 0, 7]);

fn drain(gw: &mut Gateway) -> Vec<Action> {
    core::iter::from_fn(|| gw.poll_action()).collect()
}

/// The close frames published in `actions`, with their routes and indices.
fn runner_closes(actions: &[Action]) -> Vec<(RouteId, u16, Option<u16>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Publish { route, frame, .. } => {
                match wire::decode_versioned::<ToRunner>(
                    frame.as_bytes(),
                    &wire::DecodeLimits::default(),
                ) {
                    Ok((_, ToRunner::TunnelMessage(m))) => match m.kind {
                        ToClientTunnelMessageKind::WebSocketClose(c) => {
                            Some((*route, m.message_id.message_index.get(), c.code))
                        }
                        _ => None,
                    },
                    _ => None,
                }
            }
            _ => None,
        })
        .collect()
}

fn published(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Publish { .. }))
        .count()
}

fn closed(actions: &[Action]) -> Option<&CloseReason> {
    actions.iter().find_map(|a| match a {
        Action::Closed { reason, .. } => Some(reason),
        _ => None,
    })
}

/// A hibernatable request on route 1 with two client messages (indices 1 and 2) unacked.
fn two_pending(config: GatewayConfig) -> (Gateway, Timestamp) {
    let now = Timestamp::from_secs(1);
    let mut gw = Gateway::new(config, GW, now).expect("valid");
    gw.open(
        now,
        ID,
        RouteId(1),
        OpenRequest::new("a", "/").expect("path"),
    )
    .expect("open");
    gw.handle_runner_message(now, RouteId(1), to_gateway(GW, ID, 0, runner_open(true)))
        .expect("accepted");
    gw.client_message(now, ID, b"one", false).expect("room");
    gw.client_message(now, ID, b"two", false).expect("room");
    drain(&mut gw);
    (gw, now)
}

#[test]
fn a_client_close_waits_for_the_acks_of_pending_messages() {
    let (mut gw, now) = two_pending(GatewayConfig::default());
    gw.client_close(now, ID, Some(CloseFrame::new(4001, "bye")))
        .expect("live");
    // Held: nothing published, nothing closed, the request still live and active.
    assert_eq!(drain(&mut gw), []);
    assert_eq!(gw.request(ID).map(|r| r.phase), Some(Phase::Active));
    assert_eq!(gw.stats().client_closes_held, 1);
    // The client is gone: no more client input, the runner's messages to it are dropped.
    assert_eq!(
        gw.client_message(now, ID, b"three", false),
        Err(SendError::ClientClosed { request_id: ID })
    );
    let to_client = ToServerTunnelMessageKind::WebSocketMessage(ToServerWebSocketMessage {
        data: bytes::Bytes::from_static(b"echo"),
        binary: false,
    });
    gw.handle_runner_message(now, RouteId(1), to_gateway(GW, ID, 1, to_client))
        .expect("accepted");
    assert_eq!(drain(&mut gw), []);
    assert_eq!(gw.stats().messages_to_closed_client, 1);
    // A second close changes nothing.
    gw.client_close(now, ID, None).expect("live");
    assert_eq!(drain(&mut gw), []);
    // The ack of the first message releases it; the close still waits for the second.
    gw.handle_runner_message(now, RouteId(1), to_gateway(GW, ID, 2, runner_ack(1)))
        .expect("accepted");
    assert_eq!(drain(&mut gw), []);
    // The ack of the last one forwards the client's close (index 3) and ends the request.
    gw.handle_runner_message(now, RouteId(1), to_gateway(GW, ID, 3, runner_ack(2)))
        .expect("accepted");
    let actions = drain(&mut gw);
    assert_eq!(runner_closes(&actions), [(RouteId(1), 3, Some(4001))]);
    assert_eq!(
        closed(&actions),
        Some(&CloseReason::ClientClosed(CloseFrame::new(4001, "bye")))
    );
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::CloseClient { .. })),
        "the client closed first: no close frame to it"
    );
    assert!(gw.request(ID).is_none());
    gw.check_invariants().expect("invariants");
}

/// The soak's case: the client closes right after a runner crash the gateway has not learned
/// of yet. The close waits; the runner's loss hibernates the request, the wake replays the
/// pending messages to the actor's next runner, and only its ack forwards the close.
#[test]
fn a_client_close_racing_a_runner_crash_replays_to_the_next_runner() {
    let (mut gw, mut now) = two_pending(GatewayConfig::default());
    gw.client_close(now, ID, None).expect("live");
    assert_eq!(drain(&mut gw), []);
    // The gateway learns of the loss (here the actor's stop; a ping timeout hibernates too).
    now += Duration::from_millis(10);
    gw.actor_stopped(now, ID).expect("live");
    let actions = drain(&mut gw);
    assert!(actions.contains(&Action::Hibernated { request_id: ID }));
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::RequestWake { .. }))
    );
    assert_eq!(closed(&actions), None);
    // The actor restarts on route 2: the replay goes there, the close still waits.
    gw.wake(now, ID, RouteId(2)).expect("hibernating");
    let actions = drain(&mut gw);
    assert_eq!(published(&actions), 2);
    assert_eq!(runner_closes(&actions), []);
    assert_eq!(closed(&actions), None);
    // The next runner persisted both and acks: the close (1000, the client sent no frame)
    // follows, to route 2.
    gw.handle_runner_message(now, RouteId(2), to_gateway(GW, ID, 1, runner_ack(2)))
        .expect("accepted");
    let actions = drain(&mut gw);
    assert_eq!(runner_closes(&actions), [(RouteId(2), 3, Some(1000))]);
    assert_eq!(closed(&actions), Some(&CloseReason::ClientGone));
    gw.check_invariants().expect("invariants");
}

/// The same race learned through the tunnel: the ping timeout hibernates the request, and the
/// held close rides along with the wake request.
#[test]
fn a_held_close_survives_a_ping_timeout_hibernation() {
    let config = GatewayConfig::default().with_ack_timeout(Duration::from_secs(60));
    let ping_timeout = config.ping_timeout;
    let (mut gw, mut now) = two_pending(config);
    gw.client_close(now, ID, Some(CloseFrame::new(1000, "")))
        .expect("live");
    while gw.request(ID).map(|r| r.phase) == Some(Phase::Active) {
        now = gw.poll_timeout().expect("armed");
        gw.handle_timeout(now);
        assert_eq!(closed(&drain(&mut gw)), None);
    }
    assert!(now <= Timestamp::from_secs(1) + ping_timeout);
    assert!(gw.wake_pending(ID));
    gw.wake(now, ID, RouteId(3)).expect("hibernating");
    assert_eq!(published(&drain(&mut gw)), 2);
    gw.handle_runner_message(now, RouteId(3), to_gateway(GW, ID, 5, runner_ack(2)))
        .expect("accepted");
    let actions = drain(&mut gw);
    assert_eq!(runner_closes(&actions), [(RouteId(3), 3, Some(1000))]);
    assert!(matches!(
        closed(&actions),
        Some(CloseReason::ClientClosed(_))
    ));
}

/// A held close is bounded: without the acks it ends at `close_timeout` with its own typed
/// reason (never reported as a client close), and the runner gets `ws.downstream_closed`.
#[test]
fn a_held_close_is_collected_at_the_close_timeout() {
    let config = GatewayConfig::default()
        .with_close_timeout(Duration::from_secs(2))
        .with_ping_timeout(Duration::from_secs(600))
        .with_ack_timeout(Duration::from_secs(600));
    let (mut gw, mut now) = two_pending(config);
    gw.client_close(now, ID, None).expect("live");
    drain(&mut gw);
    let mut end = None;
    while end.is_none() {
        now = gw.poll_timeout().expect("armed");
        gw.handle_timeout(now);
        let actions = drain(&mut gw);
        // Pings and record refreshes go on until then.
        end = closed(&actions)
            .cloned()
            .map(|r| (r, runner_closes(&actions)));
    }
    assert_eq!(now, Timestamp::from_secs(3));
    let (reason, closes) = end.expect("closed");
    assert_eq!(reason, CloseReason::Collected(GcReason::CloseTimeout));
    assert_eq!(closes, [(RouteId(1), 3, Some(1011))]);
    assert_eq!(gw.stats().collected_close_timeout, 1);
}

/// Nothing pending (or not hibernatable): the close goes to the runner at once, as before.
#[test]
fn a_client_close_with_nothing_pending_closes_at_once() {
    let (mut gw, now) = two_pending(GatewayConfig::default());
    gw.handle_runner_message(now, RouteId(1), to_gateway(GW, ID, 1, runner_ack(2)))
        .expect("accepted");
    drain(&mut gw);
    gw.client_close(now, ID, None).expect("live");
    let actions = drain(&mut gw);
    assert_eq!(runner_closes(&actions), [(RouteId(1), 3, Some(1000))]);
    assert_eq!(closed(&actions), Some(&CloseReason::ClientGone));

    let other = RequestId([0, 0, 0, 8]);
    gw.open(
        now,
        other,
        RouteId(1),
        OpenRequest::new("a", "/").expect("path"),
    )
    .expect("open");
    gw.handle_runner_message(
        now,
        RouteId(1),
        to_gateway(GW, other, 0, runner_open(false)),
    )
    .expect("accepted");
    gw.client_message(now, other, b"x", false).expect("sent");
    drain(&mut gw);
    gw.client_close(now, other, None).expect("live");
    assert_eq!(closed(&drain(&mut gw)), Some(&CloseReason::ClientGone));
}
