//! How the gateway copes with the official TypeScript runner's quirks (`docs/interop.md`), one
//! sans-IO test each. `tests/interop/` shows the same against the real runner; these run without
//! Node and pin the gateway's side.

use core::time::Duration;

use hibernating_ws::gateway::{
    Action, CloseReason, Gateway, GatewayConfig, GcReason, OpenRequest, Phase, ReceiveError,
    RouteId,
};
use hibernating_ws::wire::{
    self, GatewayId, MessageId, RequestId, ToClientTunnelMessageKind, ToRunner,
    ToServerTunnelMessage, ToServerTunnelMessageKind, ToServerWebSocketClose,
    ToServerWebSocketMessage, ToServerWebSocketMessageAck, ToServerWebSocketOpen,
};
use hibernating_ws::{CloseFrame, MessageIndex, Timestamp};

const GW: GatewayId = GatewayId([0xaa, 0xbb, 0xcc, 0xdd]);
const REQ: RequestId = RequestId([1, 2, 3, 4]);
const ROUTE: RouteId = RouteId(1);
const ROUTE2: RouteId = RouteId(2);

struct Harness {
    gw: Gateway,
    now: Timestamp,
}

impl Harness {
    fn new() -> Self {
        let now = Timestamp::from_secs(100);
        let mut config = GatewayConfig::default();
        config.ack_timeout = Duration::from_secs(3);
        Self {
            gw: Gateway::new(config, GW, now).expect("valid config"),
            now,
        }
    }

    /// Drains the actions, confirming record upserts as a healthy adapter does.
    fn drain(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        while let Some(a) = self.gw.poll_action() {
            if let Action::UpsertHibernatingRecord { request_id, .. } = &a {
                self.gw
                    .hibernating_record_upserted(self.now, *request_id)
                    .expect("live request");
            }
            out.push(a);
        }
        out
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.gw.handle_timeout(self.now);
    }

    fn runner(
        &mut self,
        route: RouteId,
        index: u16,
        kind: ToServerTunnelMessageKind,
    ) -> Result<(), ReceiveError> {
        let msg = ToServerTunnelMessage {
            message_id: MessageId {
                gateway_id: GW,
                request_id: REQ,
                message_index: MessageIndex::new(index),
            },
            kind,
        };
        self.gw.handle_runner_message(self.now, route, msg)
    }

    /// Opens the request and has the runner accept it as hibernatable.
    fn open_hibernatable(&mut self) {
        self.gw
            .open(
                self.now,
                REQ,
                ROUTE,
                OpenRequest::new("a", "/").expect("a path starting with /"),
            )
            .expect("open");
        let open = ToServerTunnelMessageKind::WebSocketOpen(ToServerWebSocketOpen {
            can_hibernate: true,
        });
        self.runner(ROUTE, 0, open).expect("accepted");
        self.drain();
    }

    fn send(&mut self, n: usize) {
        for i in 0..n {
            self.gw
                .client_message(self.now, REQ, format!("m{i}").as_bytes(), false)
                .expect("buffered");
        }
        self.drain();
    }

    fn ack(&mut self, route: RouteId, index: u16) {
        let ack = ToServerTunnelMessageKind::WebSocketMessageAck(ToServerWebSocketMessageAck {
            index: MessageIndex::new(index),
        });
        self.runner(route, 0, ack).expect("accepted");
    }

    fn phase(&self) -> Option<Phase> {
        self.gw.request(REQ).map(|r| r.phase)
    }
}

fn ws_message(data: &[u8]) -> ToServerTunnelMessageKind {
    ToServerTunnelMessageKind::WebSocketMessage(ToServerWebSocketMessage {
        data: data.to_vec(),
        binary: false,
    })
}

/// The SDK throws on an open whose path does not start with `/` before it maps the request to
/// the actor, so its close is dropped inside the runner: such a path is refused when the open is
/// built, and a valid one reaches the runner as given.
#[test]
fn an_open_path_must_start_with_a_slash() {
    for bad in ["", "ws", "actors/a"] {
        let refused = OpenRequest::new("a", bad).expect_err("a path without '/' is refused");
        assert_eq!(refused.path, bad);
    }
    let mut h = Harness::new();
    let open = OpenRequest::new("a", "/ws").expect("a path starting with /");
    assert_eq!(open.path(), "/ws");
    h.gw.open(h.now, REQ, ROUTE, open).expect("open");
    let Some(Action::Publish { frame, .. }) = h.gw.poll_action() else {
        panic!("the open is published");
    };
    let (_, msg) = wire::decode_versioned::<ToRunner>(&frame, &wire::DecodeLimits::default())
        .expect("decodes");
    let ToRunner::TunnelMessage(m) = msg else {
        panic!("a tunnel message")
    };
    let ToClientTunnelMessageKind::WebSocketOpen(open) = m.kind else {
        panic!("an open")
    };
    assert_eq!(open.path, "/ws");
}

/// The SDK restores a socket's runner → gateway index from the app's record, where the app can
/// only store 0 (the SDK never exposes the current one): after every restore the runner numbers
/// its messages from 0 again. The gateway does not validate runner indices.
#[test]
fn runner_indices_restarting_at_zero_after_a_wake_still_reach_the_client() {
    let mut h = Harness::new();
    h.open_hibernatable();
    for i in 0..3 {
        h.runner(ROUTE, i, ws_message(b"before"))
            .expect("delivered");
    }
    h.gw.actor_stopped(h.now, REQ).expect("live");
    h.drain();
    assert_eq!(h.phase(), Some(Phase::Hibernating));
    h.send(1); // the client talks: wake
    h.gw.wake(h.now, REQ, ROUTE2).expect("wakes");
    h.drain();
    for i in 0..3 {
        h.runner(ROUTE2, i, ws_message(b"after"))
            .expect("delivered");
    }
    let to_client = h
        .drain()
        .into_iter()
        .filter(|a| matches!(a, Action::SendToClient { data, .. } if data == b"after"))
        .count();
    assert_eq!(to_client, 3);
    assert_eq!(h.gw.stats().dropped_invalid_for_phase, 0);
}

/// The SDK answers the gateway's close with a close of its own. The request is already gone:
/// the echo is dropped as an unknown request, counted, and causes nothing.
#[test]
fn the_runners_echo_of_a_client_close_is_dropped_and_counted() {
    let mut h = Harness::new();
    h.open_hibernatable();
    h.gw.client_close(h.now, REQ, Some(CloseFrame::new(4001, "bye")))
        .expect("live");
    let actions = h.drain();
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::Closed {
            reason: CloseReason::ClientClosed(_),
            ..
        }
    )));
    let echo = ToServerTunnelMessageKind::WebSocketClose(ToServerWebSocketClose {
        code: Some(4001),
        reason: Some("bye".into()),
        hibernate: false,
    });
    assert_eq!(
        h.runner(ROUTE, 1, echo),
        Err(ReceiveError::UnknownRequest { request_id: REQ })
    );
    assert!(h.drain().is_empty());
    assert_eq!(h.gw.stats().dropped_unknown_request, 1);
}

/// Messages persisted by the app but never acked are replayed on wake; the SDK drops them as
/// duplicates without an ack. Handled by the app re-acking its persisted index after the
/// restore: the replay is released and the idle request stays open past the ack timeout.
#[test]
fn a_re_ack_after_restore_releases_a_replay_of_persisted_messages() {
    let mut h = Harness::new();
    h.open_hibernatable();
    h.send(5); // indices 1..=5, persisted by the app, ack lost
    h.gw.actor_stopped(h.now, REQ).expect("live");
    let actions = h.drain();
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::RequestWake { .. })),
        "pending data wakes at once"
    );
    h.gw.wake(h.now, REQ, ROUTE2).expect("wakes");
    let replayed = h
        .drain()
        .iter()
        .filter(|a| matches!(a, Action::Publish { .. }))
        .count();
    assert_eq!(replayed, 5);
    h.ack(ROUTE2, 5); // the re-ack after restoreHibernatingRequests
    assert_eq!(h.gw.request(REQ).map(|r| r.pending_messages), Some(0));
    h.advance(Duration::from_secs(10)); // idle past the ack timeout (3 s), before the ping timeout
    assert_eq!(h.phase(), Some(Phase::Active), "still open");
    let stats = h.gw.stats();
    assert_eq!((stats.acks_invalid, stats.collected_ack_timeout), (0, 0));
    // A second re-ack (the next restore, nothing pending) is stale, not invalid.
    h.ack(ROUTE2, 5);
    assert_eq!((h.gw.stats().acks_stale, h.gw.stats().acks_invalid), (1, 0));
}

/// Without the re-ack the replayed messages are never acked and the gateway collects the
/// request once the ack timeout runs out after the replay.
#[test]
fn without_the_re_ack_the_replayed_request_is_collected() {
    let mut h = Harness::new();
    h.open_hibernatable();
    h.send(5);
    h.gw.actor_stopped(h.now, REQ).expect("live");
    h.drain();
    h.gw.wake(h.now, REQ, ROUTE2).expect("wakes");
    h.drain();
    h.advance(Duration::from_secs(3) + Duration::from_millis(1));
    let closed = h.drain().into_iter().find_map(|a| match a {
        Action::Closed { reason, .. } => Some(reason),
        _ => None,
    });
    assert!(
        matches!(
            closed,
            Some(CloseReason::Collected(GcReason::AckTimeout { .. }))
        ),
        "{closed:?}"
    );
}

/// The SDK still hands messages to the socket after `onActorStop`; the app ignores them, so they
/// stay unacked: the gateway keeps them through the hibernation and replays them on wake.
#[test]
fn messages_the_app_ignored_after_stop_are_replayed_on_wake() {
    let mut h = Harness::new();
    h.open_hibernatable();
    h.send(3);
    h.ack(ROUTE, 1); // the app processed and persisted index 1 before the stop; 2 and 3 came after
    h.gw.actor_stopped(h.now, REQ).expect("live");
    h.drain();
    h.gw.wake(h.now, REQ, ROUTE2).expect("wakes");
    let replayed: Vec<u16> = h
        .drain()
        .into_iter()
        .filter_map(|a| match a {
            Action::Publish {
                route: ROUTE2,
                frame,
                ..
            } => match wire::decode_versioned::<ToRunner>(&frame, &wire::DecodeLimits::default()) {
                Ok((_, ToRunner::TunnelMessage(m))) => Some(m.message_id.message_index.get()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(replayed, vec![2, 3]);
}
