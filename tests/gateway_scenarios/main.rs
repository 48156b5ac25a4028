//! Gateway scenarios 1–20 (`docs/protocol.md#gateway-request-states` describes the machine), one
//! test each, plus the limit, ack, wrap,
//! routing and timer tests of the gateway issue.
//!
//! Where hws deviates from upstream on purpose, the test asserts hws's behaviour and a comment
//! says what upstream does.

mod acks;
mod limits;
mod numbered;
mod routing;
mod timers;

use core::time::Duration;

use hibernating_ws::close::KnownClose;
use hibernating_ws::gateway::{
    Action, CloseReason, Frame, Gateway, GatewayConfig, GcReason, Limit, OpenRequest,
    OverflowPolicy, Phase, ReceiveError, RouteId, SendError, WakeError,
};
use hibernating_ws::wire::{
    self, DecodeError, GatewayId, Headers, MessageId, RequestId, ToClientTunnelMessage,
    ToClientTunnelMessageKind, ToGateway, ToGatewayPong, ToRunner, ToServerResponseStart,
    ToServerTunnelMessage, ToServerTunnelMessageKind, ToServerWebSocketClose,
    ToServerWebSocketMessage, ToServerWebSocketMessageAck, ToServerWebSocketOpen,
};
use hibernating_ws::{CloseFrame, MessageIndex, Timestamp};

const GW: GatewayId = GatewayId([0xaa, 0xbb, 0xcc, 0xdd]);
const ROUTE: RouteId = RouteId(1);
const ROUTE2: RouteId = RouteId(2);
const US: Duration = Duration::from_micros(1);

fn rid(n: u32) -> RequestId {
    RequestId::from_u32(n)
}

fn idx(n: u16) -> MessageIndex {
    MessageIndex::new(n)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Drives one [`Gateway`]: keeps `now`, drains actions, and (by default) answers pings and
/// confirms record upserts the way a healthy adapter would.
struct Harness {
    gw: Gateway,
    now: Timestamp,
    auto_pong: bool,
    auto_upsert: bool,
}

impl Harness {
    fn new() -> Self {
        Self::with(GatewayConfig::default())
    }

    fn with(config: GatewayConfig) -> Self {
        let now = Timestamp::from_secs(1_000);
        Self {
            gw: Gateway::new(config, GW, now).expect("valid config"),
            now,
            auto_pong: true,
            auto_upsert: true,
        }
    }

    fn drain(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        while let Some(action) = self.gw.poll_action() {
            match &action {
                Action::Publish {
                    route,
                    request_id,
                    frame,
                } if self.auto_pong => {
                    if let ToRunner::Ping(p) = decode(frame) {
                        let pong = ToGatewayPong {
                            request_id: *request_id,
                            ts: p.ts,
                        };
                        self.gw
                            .handle_pong(self.now, *route, pong)
                            .expect("pong for a live request");
                    }
                }
                Action::UpsertHibernatingRecord { request_id, .. } if self.auto_upsert => {
                    self.gw
                        .hibernating_record_upserted(self.now, *request_id)
                        .expect("live request");
                }
                _ => {}
            }
            out.push(action);
        }
        out
    }

    /// Moves time to `target`, handling every deadline on the way at its exact instant.
    fn run_to(&mut self, target: Timestamp) -> Vec<Action> {
        let mut out = self.drain();
        while let Some(t) = self.gw.poll_timeout() {
            if t > target {
                break;
            }
            self.now = self.now.max(t);
            self.gw.handle_timeout(self.now);
            out.extend(self.drain());
            assert!(
                self.gw.poll_timeout() > Some(self.now) || self.gw.poll_timeout().is_none(),
                "poll_timeout returned a handled deadline"
            );
        }
        self.now = self.now.max(target);
        self.gw.handle_timeout(self.now);
        out.extend(self.drain());
        out
    }

    fn advance(&mut self, d: Duration) -> Vec<Action> {
        self.run_to(self.now + d)
    }

    fn open(&mut self, id: RequestId) -> Vec<Action> {
        let mut headers = Headers::new();
        headers.insert("x-test", "1");
        let open = OpenRequest::new("actor-0123456789abcdef0123456789a", "/ws")
            .expect("a path starting with /")
            .with_headers(headers);
        self.gw.open(self.now, id, ROUTE, open).expect("open");
        self.drain()
    }

    fn runner_on(
        &mut self,
        route: RouteId,
        id: RequestId,
        kind: ToServerTunnelMessageKind,
    ) -> Result<Vec<Action>, ReceiveError> {
        let msg = ToServerTunnelMessage {
            message_id: MessageId {
                gateway_id: GW,
                request_id: id,
                message_index: idx(0),
            },
            kind,
        };
        self.gw.handle_runner_message(self.now, route, msg)?;
        Ok(self.drain())
    }

    fn runner(
        &mut self,
        id: RequestId,
        kind: ToServerTunnelMessageKind,
    ) -> Result<Vec<Action>, ReceiveError> {
        let route = self.gw.request(id).map_or(ROUTE, |r| r.route);
        self.runner_on(route, id, kind)
    }

    fn accept(&mut self, id: RequestId, hibernatable: bool) -> Vec<Action> {
        self.runner(id, open_kind(hibernatable)).expect("accepted")
    }

    /// Opens and accepts a request; returns nothing (actions are checked elsewhere).
    fn active(&mut self, id: RequestId, hibernatable: bool) {
        self.open(id);
        self.accept(id, hibernatable);
    }

    /// A harness with request `rid(n)` opened and accepted.
    fn active_request(n: u32, hibernatable: bool) -> (Self, RequestId) {
        let mut h = Self::new();
        let id = rid(n);
        h.active(id, hibernatable);
        (h, id)
    }

    /// Sends empty messages until `target` was sent, acking every `every`-th index and
    /// `target` itself: everything up to `target` is released.
    fn walk_to(&mut self, id: RequestId, target: u16, every: u16) {
        let mut last = idx(0);
        while last != idx(target) {
            last = self.send(id, b"").expect("room");
            if last.get().is_multiple_of(every) || last == idx(target) {
                self.drain();
                self.ack(id, last.get());
            }
        }
    }

    fn send(&mut self, id: RequestId, data: &[u8]) -> Result<MessageIndex, SendError> {
        self.gw.client_message(self.now, id, data, true)
    }

    fn ack(&mut self, id: RequestId, index: u16) -> Vec<Action> {
        self.runner(id, ack_kind(index)).expect("ack accepted")
    }

    /// Sends `n` client messages `data` to `id`; each must be accepted.
    fn send_n(&mut self, id: RequestId, n: usize, data: &[u8]) {
        for i in 0..n {
            if let Err(e) = self.send(id, data) {
                panic!("message {i} of {n} refused: {e}");
            }
        }
    }

    /// The ack of `index`, then what is still pending.
    fn pending_after_ack(&mut self, id: RequestId, index: u16) -> usize {
        self.ack(id, index);
        self.pending(id)
    }

    /// The pending window of `id`: how many messages, and the oldest unacked index.
    fn window(&self, id: RequestId) -> (usize, Option<MessageIndex>) {
        let info = self.gw.request(id).expect("live");
        (info.pending_messages, info.oldest_unacked)
    }

    fn pending(&self, id: RequestId) -> usize {
        self.gw.request(id).map_or(0, |r| r.pending_messages)
    }
}

fn open_kind(can_hibernate: bool) -> ToServerTunnelMessageKind {
    ToServerTunnelMessageKind::WebSocketOpen(ToServerWebSocketOpen { can_hibernate })
}

fn ack_kind(index: u16) -> ToServerTunnelMessageKind {
    ToServerTunnelMessageKind::WebSocketMessageAck(ToServerWebSocketMessageAck {
        index: idx(index),
    })
}

fn close_kind(
    code: Option<u16>,
    reason: Option<&str>,
    hibernate: bool,
) -> ToServerTunnelMessageKind {
    ToServerTunnelMessageKind::WebSocketClose(ToServerWebSocketClose {
        code,
        reason: reason.map(Into::into),
        hibernate,
    })
}

fn decode(frame: &Frame) -> ToRunner {
    let (version, msg) = wire::decode_versioned::<ToRunner>(frame, &wire::DecodeLimits::default())
        .expect("valid frame");
    assert_eq!(version, wire::PROTOCOL_VERSION);
    msg
}

/// Every published tunnel message, decoded, with its route.
fn tunnel(actions: &[Action]) -> Vec<(RouteId, ToClientTunnelMessage)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Publish { route, frame, .. } => match decode(frame) {
                ToRunner::TunnelMessage(m) => Some((*route, m)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Indices of published WebSocket messages, in order.
fn ws_indices(actions: &[Action]) -> Vec<u16> {
    tunnel(actions)
        .into_iter()
        .filter(|(_, m)| matches!(m.kind, ToClientTunnelMessageKind::WebSocketMessage(_)))
        .map(|(_, m)| m.message_id.message_index.get())
        .collect()
}

/// Closes published to the runner: (index, code, reason).
fn runner_closes(actions: &[Action]) -> Vec<(u16, Option<u16>, Option<String>)> {
    tunnel(actions)
        .into_iter()
        .filter_map(|(_, m)| match m.kind {
            ToClientTunnelMessageKind::WebSocketClose(c) => {
                Some((m.message_id.message_index.get(), c.code, c.reason))
            }
            _ => None,
        })
        .collect()
}

fn pings(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Publish { frame, .. } if matches!(decode(frame), ToRunner::Ping(_))))
        .count()
}

fn client_closes(actions: &[Action]) -> Vec<CloseFrame> {
    let frame = |a: &Action| match a {
        Action::CloseClient { frame, .. } => Some(frame.clone()),
        _ => None,
    };
    actions.iter().filter_map(frame).collect()
}

fn closed(actions: &[Action]) -> Vec<CloseReason> {
    let reason = |a: &Action| match a {
        Action::Closed { reason, .. } => Some(reason.clone()),
        _ => None,
    };
    actions.iter().filter_map(reason).collect()
}

fn count(actions: &[Action], pred: impl Fn(&Action) -> bool) -> usize {
    actions.iter().filter(|a| pred(a)).count()
}

fn is_wake(a: &Action) -> bool {
    matches!(a, Action::RequestWake { .. })
}

fn is_delete(a: &Action) -> bool {
    matches!(a, Action::DeleteHibernatingRecord { .. })
}

fn downstream_closed() -> (Option<u16>, Option<String>) {
    let f = KnownClose::DownstreamClosed.frame();
    (f.code, f.reason)
}

/// Encoded size of a client message frame with `payload` bytes.
fn frame_len(payload: usize) -> u64 {
    wire::ws_message_frame_len(payload) as u64
}
