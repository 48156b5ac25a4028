//! [`gateway_ops`]: the gateway engine under operation sequences drawn from arbitrary bytes.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use super::{Clock, Input, Tick, duration, payload, run_engine};
use crate::close::CloseFrame;
use crate::gateway::{
    Action, CloseReason, Gateway, GatewayConfig, OverflowPolicy, Phase, RequestInfo, RouteId,
};
use crate::index::MessageIndex;
use crate::wire::{
    DecodeLimits, GatewayId, Headers, MessageId, RequestId, ToServerResponseChunk,
    ToServerResponseStart, ToServerTunnelMessage, ToServerTunnelMessageKind,
    ToServerWebSocketClose, ToServerWebSocketMessage, ToServerWebSocketMessageAck,
    ToServerWebSocketOpen,
};

mod checks;
mod run;

/// Request ids the operations pick from (few, so they collide and get reused).
const REQUESTS: u8 = 4;
/// Routes the operations pick from.
const ROUTES: u8 = 3;
/// The gateway under test.
const GW: GatewayId = GatewayId([0x67, 0x77, 0, 1]);
/// Another gateway (runner input addressed to it must be dropped).
const OTHER_GW: GatewayId = GatewayId([0x67, 0x77, 0, 2]);

/// One operation on the gateway.
#[derive(Debug, Clone)]
enum Op {
    Open {
        req: u8,
        route: u8,
    },
    /// `repeat` client messages in a row (a burst).
    Send {
        req: u8,
        len: usize,
        binary: bool,
        repeat: u8,
    },
    ClientClose {
        req: u8,
        frame: Option<CloseFrame>,
    },
    ActorStopped {
        req: u8,
    },
    Wake {
        req: u8,
        route: u8,
    },
    RecordUpserted {
        req: u8,
    },
    RecordFailed {
        req: u8,
    },
    /// A tunnel message from the runner side, decoded (`version: None`) or as a frame.
    Runner {
        route: u8,
        msg: ToServerTunnelMessage,
        version: Option<u16>,
    },
    Pong {
        route: u8,
        req: u8,
        version: Option<u16>,
    },
    /// Arbitrary bytes as a runner frame.
    RawFrame {
        route: u8,
        bytes: Vec<u8>,
    },
    /// A clock operation.
    Clock(Tick),
}

/// The shadow model of one live request.
#[derive(Debug, Clone)]
struct Req {
    route: RouteId,
    phase: Phase,
    hibernatable: bool,
    /// The index the next client message gets.
    next_index: MessageIndex,
    /// Encoded size of the message last refused with backpressure, until `ClientWritable` or a
    /// successful send.
    blocked: Option<u64>,
    /// A `RequestWake` was emitted in the current hibernation.
    wake_requested: bool,
    /// The client closed while hibernating: it gets no close frame any more.
    client_gone: bool,
    /// The last client message index published (0, the open's, before any).
    sent_through: MessageIndex,
    actor: String,
}

/// What the batch of actions after one operation did per request.
#[derive(Debug, Default)]
struct Effects {
    /// WebSocket message indices published, per request, in order.
    published: BTreeMap<RequestId, Vec<MessageIndex>>,
    /// Requests closed in this batch.
    closed: BTreeMap<RequestId, CloseReason>,
    /// Any action at all.
    actions: usize,
}

/// The per-request state captured before an operation.
#[derive(Debug, Clone, Copy)]
struct Before {
    info: Option<RequestInfo>,
}

struct Harness {
    gw: Gateway,
    config: GatewayConfig,
    clock: Clock<Op>,
    live: BTreeMap<RequestId, Req>,
}

/// Drives a [`Gateway`] through an operation sequence drawn from `data` and checks its
/// properties after every operation. See the [module docs](super).
///
/// # Panics
/// When a property is violated (with the last operations in the message).
pub fn gateway_ops(data: &[u8]) {
    run_engine(
        data,
        config,
        |config, now| Gateway::new(config, GW, now),
        |gw, config, clock| Harness {
            gw,
            config,
            clock,
            live: BTreeMap::new(),
        },
    );
}

/// A valid configuration drawn from the input: small limits, short timers, either policy.
fn config(input: &mut Input<'_>) -> GatewayConfig {
    let mut c = GatewayConfig::default();
    if input.one_in(8) {
        return c;
    }
    c.max_pending_messages = input.pick(&[1, 2, 3, 4, 8, crate::index::MAX_WINDOW]);
    c.max_pending_bytes = match input.u8() % 4 {
        0 => 1 + u64::from(input.u8()),
        1 | 2 => 16 + u64::from(input.u16() % 2048),
        _ => 1 << 20,
    };
    // Often barely above the per-request limit, so several requests compete for it.
    c.max_gateway_pending_bytes = match input.u8() % 4 {
        0 | 1 => c.max_pending_bytes + u64::from(input.u8()),
        2 => c.max_pending_bytes * 2,
        _ => c.max_pending_bytes * u64::from(1 + input.u8() % 8),
    };
    c.overflow_policy = if input.bool() {
        OverflowPolicy::Backpressure
    } else {
        OverflowPolicy::Close
    };
    c.max_requests = 1 + input.below(usize::from(REQUESTS) + 1);
    c.ack_timeout = duration(input);
    c.open_timeout = duration(input);
    c.ping_interval = duration(input);
    c.ping_timeout = duration(input);
    c.hibernation_timeout = duration(input).max(Duration::from_micros(2));
    // Strictly shorter than the hibernation timeout.
    let eighths = u32::from(1 + input.u8() % 7);
    c.keepalive_interval = (c.hibernation_timeout * eighths / 8).max(Duration::from_micros(1));
    if c.keepalive_interval >= c.hibernation_timeout {
        c.keepalive_interval = c
            .hibernation_timeout
            .saturating_sub(Duration::from_micros(1));
    }
    c.wake_timeout = duration(input);
    c.retransmit_timeout = input.bool().then(|| duration(input));
    c.hibernate_on_ping_timeout = !input.one_in(4);
    c.protocol_version = 4 + u16::from(input.u8() % 4);
    if input.one_in(4) {
        c.decode_limits = DecodeLimits {
            max_frame_size: 1 + usize::from(input.u8()),
            max_headers: input.below(3),
            ..DecodeLimits::default()
        };
    }
    c
}

fn request_id(req: u8) -> RequestId {
    RequestId([0x72, 0x65, 0x71, req])
}

fn actor_of(req: u8) -> String {
    format!("actor-{}", req % 2)
}

impl Harness {
    fn route_of(&self, req: u8) -> Option<RouteId> {
        self.live.get(&request_id(req)).map(|r| r.route)
    }

    /// Draws the next operation. Runner input usually comes from the request's own route and
    /// names this gateway; sometimes not.
    fn next_op(&mut self, input: &mut Input<'_>) -> Op {
        let req = input.u8() % REQUESTS;
        match input.u8() % 24 {
            0 | 1 => Op::Open {
                req,
                route: input.u8() % ROUTES,
            },
            2..=5 => Op::Send {
                req,
                len: if input.one_in(8) {
                    usize::from(input.u16() % 2048)
                } else {
                    input.below(48)
                },
                binary: input.bool(),
                repeat: if input.one_in(8) {
                    2 + input.u8() % 16
                } else {
                    1
                },
            },
            6 => Op::ClientClose {
                req,
                frame: match input.u8() % 3 {
                    0 => None,
                    1 => Some(CloseFrame::code(1000 + u16::from(input.u8() % 16))),
                    _ => Some(CloseFrame::new(4000, "bye")),
                },
            },
            7 => Op::ActorStopped { req },
            8 => Op::Wake {
                req,
                route: input.u8() % ROUTES,
            },
            9 => Op::RecordUpserted { req },
            10 => Op::RecordFailed { req },
            11..=16 => self.runner_op(input, req),
            17 => Op::Pong {
                route: self.route_sel(input, req),
                req,
                version: version(input),
            },
            18 => Op::RawFrame {
                route: self.route_sel(input, req),
                bytes: input.bytes(64).to_vec(),
            },
            k => Op::Clock(Tick::draw(input, k - 19)),
        }
    }

    /// A route: the request's own (usually) or any.
    fn route_sel(&self, input: &mut Input<'_>, req: u8) -> u8 {
        match (input.u8() % 8, self.route_of(req)) {
            (0, _) | (_, None) => input.u8() % ROUTES,
            (_, Some(RouteId(r))) => u8::try_from(r).unwrap_or(0),
        }
    }

    fn runner_op(&self, input: &mut Input<'_>, req: u8) -> Op {
        let route = self.route_sel(input, req);
        let gateway_id = if input.one_in(16) { OTHER_GW } else { GW };
        let info = self.gw.request(request_id(req));
        let kind = match input.u8() % 10 {
            0 | 1 => ToServerTunnelMessageKind::WebSocketOpen(ToServerWebSocketOpen {
                can_hibernate: !input.one_in(4),
            }),
            2..=5 => ToServerTunnelMessageKind::WebSocketMessageAck(ToServerWebSocketMessageAck {
                index: ack_index(input, info.as_ref()),
            }),
            6 => ToServerTunnelMessageKind::WebSocketClose(ToServerWebSocketClose {
                code: input.bool().then(|| 1000 + u16::from(input.u8() % 16)),
                reason: input.bool().then(|| "r".to_string()),
                hibernate: input.bool(),
            }),
            7 => ToServerTunnelMessageKind::WebSocketMessage(ToServerWebSocketMessage {
                data: payload(input.below(32), input.u8()).into(),
                binary: input.bool(),
            }),
            8 => ToServerTunnelMessageKind::WebSocketClose(ToServerWebSocketClose {
                code: None,
                reason: None,
                hibernate: true,
            }),
            _ => match input.u8() % 3 {
                0 => ToServerTunnelMessageKind::ResponseAbort,
                1 => ToServerTunnelMessageKind::ResponseChunk(ToServerResponseChunk {
                    body: payload(input.below(8), 0),
                    finish: input.bool(),
                }),
                _ => ToServerTunnelMessageKind::ResponseStart(ToServerResponseStart {
                    status: 101,
                    headers: Headers::new(),
                    body: None,
                    stream: false,
                }),
            },
        };
        Op::Runner {
            route,
            msg: ToServerTunnelMessage {
                message_id: MessageId {
                    gateway_id,
                    request_id: request_id(req),
                    message_index: MessageIndex::new(u16::from(input.u8())),
                },
                kind,
            },
            version: version(input),
        }
    }
}

/// An ack index: relative to the request's window (most of the time) or arbitrary.
fn ack_index(input: &mut Input<'_>, info: Option<&RequestInfo>) -> MessageIndex {
    let Some(info) = info else {
        return MessageIndex::new(input.u16());
    };
    let last = info.next_index.prev();
    let oldest = info.oldest_unacked.unwrap_or(info.next_index);
    match input.u8() % 8 {
        0 | 1 => last,
        2 => oldest,
        3 => oldest.prev(),
        4 => info.next_index,
        5 => oldest.wrapping_add(u16::from(input.u8() % 4)),
        6 => last.wrapping_add(0x8000),
        _ => MessageIndex::new(input.u16()),
    }
}

/// How runner input is delivered: decoded (`None`) or as a frame of this version.
fn version(input: &mut Input<'_>) -> Option<u16> {
    match input.u8() % 8 {
        0..=3 => None,
        4 => Some(3),
        _ => Some(4 + u16::from(input.u8() % 4)),
    }
}

fn action_request(a: &Action) -> RequestId {
    match a {
        Action::Publish { request_id, .. }
        | Action::SendToClient { request_id, .. }
        | Action::CloseClient { request_id, .. }
        | Action::Opened { request_id, .. }
        | Action::Hibernated { request_id }
        | Action::RequestWake { request_id, .. }
        | Action::UpsertHibernatingRecord { request_id, .. }
        | Action::DeleteHibernatingRecord { request_id, .. }
        | Action::ClientWritable { request_id }
        | Action::Closed { request_id, .. } => *request_id,
    }
}
