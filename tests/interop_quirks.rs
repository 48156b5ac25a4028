//! How the gateway copes with the official TypeScript runner's quirks (`docs/interop.md`), one
//! sans-IO test each. `tests/interop/` shows the same against the real runner; these run without
//! Node and pin the gateway's side.

use core::time::Duration;

use hibernating_ws::gateway::{
    Action, Gateway, GatewayConfig, OpenRequest, Phase, ReceiveError, RouteId,
};
use hibernating_ws::wire::{
    self, GatewayId, MessageId, RequestId, ToClientTunnelMessageKind, ToRunner,
    ToServerTunnelMessage, ToServerTunnelMessageKind, ToServerWebSocketMessage,
    ToServerWebSocketMessageAck, ToServerWebSocketOpen,
};
use hibernating_ws::{MessageIndex, Timestamp};

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
        self.now = self.now + d;
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
                OpenRequest {
                    actor_id: "a".into(),
                    ..OpenRequest::default()
                },
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
/// the actor, so its close is dropped inside the runner: the default must be a valid path.
#[test]
fn the_default_open_has_a_path_the_official_runner_accepts() {
    let mut h = Harness::new();
    h.gw.open(h.now, REQ, ROUTE, OpenRequest::default())
        .expect("open");
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
    assert_eq!(open.path, "/");
    assert!(open.path.starts_with('/'));
}
