//! [`gateway_ops`]: the gateway engine under operation sequences drawn from arbitrary bytes.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use super::{Input, MAX_OPS, TRACE_LEN, duration, payload, time_step, trace};
use crate::close::CloseFrame;
use crate::gateway::{
    Action, CloseReason, Gateway, GatewayConfig, OpenError, OpenRequest, OverflowPolicy, Phase,
    RequestInfo, RouteId, SendError, WakeError,
};
use crate::index::MessageIndex;
use crate::time::Timestamp;
use crate::wire::{
    self, DecodeLimits, GatewayId, Headers, MessageId, RequestId, ToClientTunnelMessageKind,
    ToGateway, ToGatewayPong, ToRunner, ToServerResponseChunk, ToServerResponseStart,
    ToServerTunnelMessage, ToServerTunnelMessageKind, ToServerWebSocketClose,
    ToServerWebSocketMessage, ToServerWebSocketMessageAck, ToServerWebSocketOpen,
};

/// Request ids the operations pick from (few, so they collide and get reused).
const REQUESTS: u8 = 4;
/// Routes the operations pick from.
const ROUTES: u8 = 3;
/// The gateway under test.
const GW: GatewayId = GatewayId([0x67, 0x77, 0, 1]);
/// Another gateway (runner input addressed to it must be dropped).
const OTHER_GW: GatewayId = GatewayId([0x67, 0x77, 0, 2]);
/// Most deadlines one punctual clock advance steps through before catching up at once.
const MAX_STEPS: usize = 64;

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
    /// Advance the clock, handling every deadline on the way (a punctual driver).
    Advance(Duration),
    /// Advance the clock without handling timeouts (a late driver).
    Jump(Duration),
    /// `handle_timeout(now)`.
    HandleTimeout,
    /// `handle_timeout` with a `now` older than the latest one.
    StaleTimeout(Duration),
    /// Advance exactly to `poll_timeout()` and handle it.
    FireNext,
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
    now: Timestamp,
    /// Every deadline at or before `now` was handled (the driver is punctual so far).
    punctual: bool,
    /// The latest `now` given to the engine (`now` runs ahead of it after a jump).
    seen: Timestamp,
    live: BTreeMap<RequestId, Req>,
    ops: VecDeque<(usize, Op)>,
    step: usize,
}

/// Drives a [`Gateway`] through an operation sequence drawn from `data` and checks its
/// properties after every operation. See the [module docs](super).
///
/// # Panics
/// When a property is violated (with the last operations in the message).
pub fn gateway_ops(data: &[u8]) {
    let mut input = Input::new(data);
    let config = config(&mut input);
    let start = match input.u8() % 8 {
        0 => Timestamp::ZERO,
        1 => Timestamp::from_micros(u64::MAX - u64::from(input.u32())),
        _ => Timestamp::from_micros(u64::from(input.u32())),
    };
    let gw = match Gateway::new(config.clone(), GW, start) {
        Ok(gw) => gw,
        Err(e) => panic!("a valid configuration was refused: {e:?} {config:?}"),
    };
    let mut h = Harness {
        gw,
        config,
        now: start,
        punctual: true,
        seen: start,
        live: BTreeMap::new(),
        ops: VecDeque::new(),
        step: 0,
    };
    while !input.is_empty() && h.step < MAX_OPS {
        let op = h.next_op(&mut input);
        h.ops.push_back((h.step, op.clone()));
        if h.ops.len() > TRACE_LEN {
            h.ops.pop_front();
        }
        h.run(op);
        h.check_all();
        h.step += 1;
    }
    h.settle();
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
            19 | 20 => Op::Advance(time_step(input)),
            21 => Op::Jump(time_step(input)),
            22 => {
                if input.bool() {
                    Op::HandleTimeout
                } else {
                    Op::StaleTimeout(time_step(input))
                }
            }
            _ => Op::FireNext,
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
                data: payload(input.below(32), input.u8()),
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

    // -----------------------------------------------------------------------------------------
    // Running operations
    // -----------------------------------------------------------------------------------------

    /// A `now` for a command: usually the current time, sometimes an older one (the engine must
    /// treat it as the latest seen).
    fn stamp(&self, stale: bool) -> Timestamp {
        if stale {
            self.now.saturating_sub(Duration::from_millis(7))
        } else {
            self.now
        }
    }

    fn before(&self, req: u8) -> Before {
        Before {
            info: self.gw.request(request_id(req)),
        }
    }

    #[allow(clippy::too_many_lines)] // one arm per operation reads best as one match
    fn run(&mut self, op: Op) {
        let stale = self.step % 5 == 4;
        let now = self.stamp(stale);
        if !matches!(
            op,
            Op::Advance(_) | Op::Jump(_) | Op::HandleTimeout | Op::StaleTimeout(_) | Op::FireNext
        ) {
            // Every other operation gives `now` to the engine.
            self.seen = self.seen.max(now);
        }
        match op {
            Op::Open { req, route } => {
                let id = request_id(req);
                let open = OpenRequest {
                    actor_id: actor_of(req),
                    path: "/ws".into(),
                    headers: Headers::new(),
                };
                let result = self.gw.open(now, id, RouteId(route.into()), open);
                match result {
                    Ok(()) => {
                        self.fail_if(self.live.contains_key(&id), "open of a live id succeeded");
                        self.fail_if(
                            self.live.len() >= self.config.max_requests,
                            "open past max_requests succeeded",
                        );
                        self.live.insert(
                            id,
                            Req {
                                route: RouteId(route.into()),
                                phase: Phase::AwaitingOpen,
                                hibernatable: false,
                                next_index: MessageIndex::new(1),
                                blocked: None,
                                wake_requested: false,
                                client_gone: false,
                                sent_through: MessageIndex::ZERO,
                                actor: actor_of(req),
                            },
                        );
                        let fx = self.drain();
                        self.fail_if(fx.actions != 1, "open did not publish exactly one frame");
                    }
                    Err(e) => {
                        let expected = if self.live.contains_key(&id) {
                            OpenError::AlreadyExists { request_id: id }
                        } else {
                            OpenError::TooManyRequests {
                                request_id: id,
                                max: self.config.max_requests,
                            }
                        };
                        if e != expected {
                            self.fail(&format!("open failed with {e:?}"));
                        }
                        self.expect_quiet("a refused open");
                    }
                }
            }
            Op::Send {
                req,
                len,
                binary,
                repeat,
            } => {
                for _ in 0..repeat {
                    self.send(now, req, len, binary);
                }
            }
            Op::ClientClose { req, frame } => {
                let id = request_id(req);
                let phase = self.live.get(&id).map(|r| r.phase);
                let result = self.gw.client_close(now, id, frame);
                self.check_unknown(req, result.is_err(), "client_close");
                let fx = self.drain();
                if result.is_ok() {
                    let closed = fx.closed.contains_key(&id);
                    self.fail_if(
                        phase != Some(Phase::Hibernating) && !closed,
                        "client close of a non-hibernating request did not close it",
                    );
                    self.fail_if(
                        phase == Some(Phase::Hibernating) && closed,
                        "client close while hibernating closed at once instead of waking",
                    );
                    if let Some(r) = self.live.get_mut(&id) {
                        r.client_gone = true;
                        if !r.wake_requested {
                            self.fail("client close while hibernating did not request a wake");
                        }
                    }
                }
            }
            Op::ActorStopped { req } => {
                let id = request_id(req);
                let before = self.live.get(&id).map(|r| (r.phase, r.hibernatable));
                let result = self.gw.actor_stopped(now, id);
                self.check_unknown(req, result.is_err(), "actor_stopped");
                let fx = self.drain();
                let after = self.live.get(&id).map(|r| r.phase);
                let closed = fx.closed.get(&id);
                let ok = match before {
                    None | Some((Phase::Hibernating, _)) => fx.actions == 0,
                    Some((Phase::Active, true)) => after == Some(Phase::Hibernating),
                    Some((Phase::Active, false)) => closed == Some(&CloseReason::ActorStopped),
                    Some((Phase::AwaitingOpen, _)) => {
                        closed == Some(&CloseReason::ActorStoppedBeforeOpen)
                    }
                };
                if !ok {
                    self.fail(&format!(
                        "actor_stopped in {before:?}: now {after:?}, closed {closed:?}"
                    ));
                }
            }
            Op::Wake { req, route } => {
                let id = request_id(req);
                let before = self.before(req);
                let result = self.gw.wake(now, id, RouteId(route.into()));
                match result {
                    Ok(()) => {
                        let Some(r) = self.live.get_mut(&id) else {
                            self.fail("wake of an unknown request succeeded");
                        };
                        if r.phase != Phase::Hibernating {
                            self.fail("wake of a request that is not hibernating succeeded");
                        }
                        r.phase = Phase::Active;
                        r.route = RouteId(route.into());
                        r.wake_requested = false;
                        let fx = self.drain();
                        // The replay is exactly the pending messages, in order.
                        let replayed = fx.published.get(&id).cloned().unwrap_or_default();
                        let pending = before.info.map_or(0, |i| i.pending_messages);
                        if replayed.len() != pending {
                            self.fail(&format!(
                                "wake replayed {} of {pending} pending",
                                replayed.len()
                            ));
                        }
                        if let Some(first) = before.info.and_then(|i| i.oldest_unacked) {
                            self.check_contiguous(&replayed, first, "wake replay");
                        }
                    }
                    Err(e) => {
                        let expected = match self.live.get(&id) {
                            None => WakeError::UnknownRequest { request_id: id },
                            Some(_) => WakeError::NotHibernating { request_id: id },
                        };
                        if e != expected {
                            self.fail(&format!("wake failed with {e:?}"));
                        }
                        if let Some(r) = self.live.get(&id) {
                            self.fail_if(
                                r.phase == Phase::Hibernating,
                                "wake of a hibernating request failed",
                            );
                        }
                        self.expect_quiet("a refused wake");
                    }
                }
            }
            Op::RecordUpserted { req } => {
                let result = self.gw.hibernating_record_upserted(now, request_id(req));
                self.check_unknown(req, result.is_err(), "hibernating_record_upserted");
                self.expect_quiet("a record confirmation");
            }
            Op::RecordFailed { req } => {
                let result = self.gw.hibernating_record_failed(now, request_id(req));
                self.check_unknown(req, result.is_err(), "hibernating_record_failed");
                self.expect_quiet("a record failure");
            }
            Op::Runner {
                route,
                msg,
                version,
            } => {
                let id = msg.message_id.request_id;
                let before = self.gw.request(id);
                let ack = match &msg.kind {
                    ToServerTunnelMessageKind::WebSocketMessageAck(a) => Some(a.index),
                    _ => None,
                };
                let result = match version {
                    None => self
                        .gw
                        .handle_runner_message(now, RouteId(route.into()), msg),
                    Some(v) => {
                        let frame = wire::encode_versioned(v, &ToGateway::TunnelMessage(msg));
                        self.gw
                            .handle_runner_frame(now, RouteId(route.into()), &frame)
                    }
                };
                if result.is_err() {
                    self.expect_quiet("dropped runner input");
                    self.fail_if(
                        self.gw.request(id) != before,
                        "dropped runner input changed the request",
                    );
                } else {
                    let fx = self.drain();
                    if let (Some(b), Some(a)) = (before, self.gw.request(id)) {
                        self.fail_if(
                            a.pending_messages > b.pending_messages,
                            "runner input added pending messages",
                        );
                    }
                    self.fail_if(
                        fx.published.contains_key(&id),
                        "runner input re-published client messages",
                    );
                    if let (Some(ack), Some(b)) = (ack, before) {
                        self.check_ack(id, ack, &b);
                    }
                }
            }
            Op::Pong {
                route,
                req,
                version,
            } => {
                let pong = ToGatewayPong {
                    request_id: request_id(req),
                    ts: 5,
                };
                let result = match version {
                    None => self.gw.handle_pong(now, RouteId(route.into()), pong),
                    Some(v) => {
                        let frame = wire::encode_versioned(v, &ToGateway::Pong(pong));
                        self.gw
                            .handle_runner_frame(now, RouteId(route.into()), &frame)
                    }
                };
                let _ = result;
                self.expect_quiet("a pong");
            }
            Op::RawFrame { route, bytes } => {
                let result = self
                    .gw
                    .handle_runner_frame(now, RouteId(route.into()), &bytes);
                if result.is_err() {
                    self.expect_quiet("a dropped raw frame");
                } else {
                    self.drain();
                }
            }
            Op::Advance(d) => {
                let target = self.now + d;
                let mut steps = 0;
                while let Some(t) = self.gw.poll_timeout() {
                    if t > target || steps == MAX_STEPS {
                        break;
                    }
                    steps += 1;
                    let at = t.max(self.now);
                    self.now = at;
                    self.timeout(at);
                }
                self.now = target;
                self.timeout(target);
            }
            Op::Jump(d) => {
                self.now += d;
                if d > Duration::ZERO {
                    self.punctual = false;
                }
            }
            Op::HandleTimeout => self.timeout(self.now),
            Op::StaleTimeout(d) => self.timeout(self.now.saturating_sub(d)),
            Op::FireNext => {
                if let Some(t) = self.gw.poll_timeout() {
                    self.now = self.now.max(t);
                }
                self.timeout(self.now);
            }
        }
    }

    /// Liveness, once the input is exhausted: with no more client, runner or record-store input,
    /// a few large clock steps collect every request (open, ping, ack, wake and hibernation
    /// timeouts), each with its one `Closed`.
    fn settle(&mut self) {
        let c = &self.config;
        let longest = [
            c.ack_timeout,
            c.open_timeout,
            c.ping_interval,
            c.ping_timeout,
            c.keepalive_interval,
            c.hibernation_timeout,
            c.wake_timeout,
            c.retransmit_timeout.unwrap_or_default(),
        ]
        .into_iter()
        .max()
        .unwrap_or_default();
        let step = longest * 2 + Duration::from_secs(1);
        // Near the end of time deadlines saturate to `Timestamp::MAX` ("never"): nothing to check.
        if self
            .now
            .checked_add(step * 16)
            .is_none_or(|t| t == Timestamp::MAX)
        {
            return;
        }
        for _ in 0..8 {
            if self.live.is_empty() {
                return;
            }
            self.step += 1;
            self.ops.push_back((self.step, Op::Advance(step)));
            if self.ops.len() > TRACE_LEN {
                self.ops.pop_front();
            }
            self.now += step;
            self.seen = self.seen.max(self.now);
            self.timeout(self.now);
            self.check_all();
        }
        if !self.live.is_empty() {
            let ids: Vec<&RequestId> = self.live.keys().collect();
            self.fail(&format!("requests never collected without input: {ids:?}"));
        }
    }

    /// `Gateway::client_message`, checking that an error names the request.
    fn client_message(
        &mut self,
        now: Timestamp,
        id: RequestId,
        data: &[u8],
        binary: bool,
    ) -> Result<MessageIndex, SendError> {
        let result = self.gw.client_message(now, id, data, binary);
        self.fail_if(
            result.is_err_and(|e| e.request_id() != id),
            "a send error names another request",
        );
        result
    }

    fn send(&mut self, now: Timestamp, req: u8, len: usize, binary: bool) {
        let id = request_id(req);
        let data = payload(len, req);
        let before = self.before(req);
        let size = u64::try_from(wire::ws_message_frame_len(len)).unwrap_or(u64::MAX);
        let result = self.client_message(now, id, &data, binary);
        let policy = self.config.overflow_policy;
        match result {
            Ok(index) => {
                let Some(r) = self.live.get_mut(&id) else {
                    self.fail("client_message on an unknown request succeeded");
                };
                if index != r.next_index {
                    let expected = r.next_index;
                    self.fail(&format!(
                        "client_message gave index {index:?}, expected {expected:?}"
                    ));
                }
                r.next_index = index.next();
                r.blocked = None;
                let (phase, hibernatable) = (r.phase, r.hibernatable);
                let fx = self.drain();
                let published = fx.published.get(&id).cloned().unwrap_or_default();
                match phase {
                    Phase::Active => {
                        if published != [index] {
                            self.fail(&format!(
                                "an active send published {published:?}, not [{index:?}]"
                            ));
                        }
                    }
                    Phase::Hibernating => self.fail_if(
                        !published.is_empty(),
                        "a send while hibernating was published",
                    ),
                    _ => self.fail("a send before the open was accepted succeeded"),
                }
                let after = self.gw.request(id);
                let (b, a) = (
                    before.info.map_or(0, |i| i.pending_messages),
                    after.map_or(0, |i| i.pending_messages),
                );
                let expected = if hibernatable { b + 1 } else { 0 };
                if a != expected {
                    self.fail(&format!(
                        "pending went from {b} to {a} on a send (expected {expected})"
                    ));
                }
            }
            Err(SendError::UnknownRequest { .. }) => {
                self.fail_if(
                    self.live.contains_key(&id),
                    "send to a live request: unknown",
                );
                self.expect_quiet("a send to an unknown request");
            }
            Err(SendError::NotOpen { .. }) => {
                let phase = self.live.get(&id).map(|r| r.phase);
                self.fail_if(
                    phase != Some(Phase::AwaitingOpen),
                    "NotOpen outside AwaitingOpen",
                );
                self.expect_quiet("a send before the open");
            }
            Err(SendError::Backpressure { .. }) => {
                self.fail_if(
                    policy != OverflowPolicy::Backpressure,
                    "Backpressure under the Close policy",
                );
                self.expect_quiet("a send refused with backpressure");
                self.fail_if(
                    self.gw.request(id) != before.info,
                    "a send refused with backpressure changed the request",
                );
                if let Some(r) = self.live.get_mut(&id) {
                    r.blocked = Some(size);
                }
            }
            Err(SendError::LimitExceeded { .. }) => {
                self.fail_if(
                    policy != OverflowPolicy::Close,
                    "LimitExceeded under the Backpressure policy",
                );
                let fx = self.drain();
                self.fail_if(
                    !fx.closed.contains_key(&id),
                    "LimitExceeded did not close the request",
                );
            }
            Err(SendError::MessageTooLarge { size: s, max, .. }) => {
                self.fail_if(
                    s != size || max != self.config.max_pending_bytes || s <= max,
                    "wrong MessageTooLarge",
                );
                let fx = self.drain();
                self.fail_if(
                    !fx.closed.contains_key(&id),
                    "MessageTooLarge did not close the request",
                );
            }
        }
    }

    /// `handle_timeout(at)`, then the timer contract: the next deadline is after the latest now.
    fn timeout(&mut self, at: Timestamp) {
        self.gw.handle_timeout(at);
        // An older `at` is treated as the latest `now` the engine has seen.
        self.seen = self.seen.max(at);
        self.drain();
        if let Some(t) = self.gw.poll_timeout()
            && t <= self.seen
        {
            self.fail(&format!(
                "poll_timeout {t:?} at or before the handled now {:?}",
                self.seen
            ));
        }
        if self.seen >= self.now {
            self.punctual = true;
        }
    }

    fn check_unknown(&self, req: u8, failed: bool, what: &str) {
        let live = self.live.contains_key(&request_id(req));
        if failed == live {
            self.fail(&format!(
                "{what}: UnknownRequest is {failed}, request live is {live}"
            ));
        }
    }

    // -----------------------------------------------------------------------------------------
    // Actions
    // -----------------------------------------------------------------------------------------

    /// Drains and checks the actions against the model; applies them to it.
    #[allow(clippy::too_many_lines)] // one arm per action
    fn drain(&mut self) -> Effects {
        let mut fx = Effects::default();
        let mut close_client: BTreeMap<RequestId, CloseFrame> = BTreeMap::new();
        let mut deleted: BTreeSet<RequestId> = BTreeSet::new();
        let mut runner_close: BTreeSet<RequestId> = BTreeSet::new();
        while let Some(action) = self.gw.poll_action() {
            fx.actions += 1;
            let id = action_request(&action);
            let Some(r) = self.live.get_mut(&id) else {
                self.fail(&format!(
                    "action for a request that is not live: {action:?}"
                ));
            };
            match action {
                Action::Publish {
                    route,
                    request_id,
                    frame,
                } => {
                    if route != r.route {
                        let expected = r.route;
                        self.fail(&format!(
                            "published to {route:?}, the request is routed to {expected:?}"
                        ));
                    }
                    let version = self.config.protocol_version;
                    match wire::decode_versioned::<ToRunner>(&frame, &DecodeLimits::default()) {
                        Ok((v, _)) if v != version => {
                            self.fail(&format!("published version {v}, configured {version}"));
                        }
                        Ok((_, ToRunner::Ping(p))) => {
                            self.fail_if(
                                p.gateway_id != GW || p.request_id != request_id,
                                "ping with wrong ids",
                            );
                        }
                        Ok((_, ToRunner::TunnelMessage(m))) => {
                            let expected_id = MessageId {
                                gateway_id: GW,
                                request_id,
                                message_index: m.message_id.message_index,
                            };
                            if m.message_id != expected_id {
                                self.fail("tunnel message with wrong ids");
                            }
                            let index = m.message_id.message_index;
                            match m.kind {
                                ToClientTunnelMessageKind::WebSocketOpen(_) => {
                                    self.fail_if(
                                        index != MessageIndex::ZERO,
                                        "open not at index 0",
                                    );
                                }
                                ToClientTunnelMessageKind::WebSocketMessage(_) => {
                                    if runner_close.contains(&id) {
                                        self.fail("message published after the runner close");
                                    }
                                    if index.is_after(r.sent_through) {
                                        r.sent_through = index;
                                    }
                                    fx.published.entry(id).or_default().push(index);
                                }
                                ToClientTunnelMessageKind::WebSocketClose(_) => {
                                    if !runner_close.insert(id) {
                                        self.fail("two runner closes");
                                    }
                                }
                                other => self.fail(&format!("published {other:?}")),
                            }
                        }
                        Ok((_, ToRunner::Close)) => self.fail("published a runner close"),
                        Ok((_, other)) => self.fail(&format!("published {other:?}")),
                        Err(e) => self.fail(&format!("published an undecodable frame: {e}")),
                    }
                }
                Action::SendToClient { .. } => {
                    if !matches!(r.phase, Phase::Active | Phase::Hibernating) {
                        self.fail("SendToClient before the open");
                    }
                }
                Action::CloseClient { frame, .. } => {
                    if frame.code.is_none() {
                        self.fail("CloseClient without a code");
                    }
                    if close_client.insert(id, frame).is_some() {
                        self.fail("two CloseClient");
                    }
                }
                Action::Opened { hibernatable, .. } => {
                    if r.phase != Phase::AwaitingOpen {
                        self.fail("Opened twice");
                    }
                    r.phase = Phase::Active;
                    r.hibernatable = hibernatable;
                }
                Action::Hibernated { .. } => {
                    if r.phase != Phase::Active || !r.hibernatable {
                        self.fail("Hibernated from the wrong phase");
                    }
                    r.phase = Phase::Hibernating;
                    r.wake_requested = false;
                }
                Action::RequestWake { actor_id, .. } => {
                    if r.phase != Phase::Hibernating {
                        self.fail("RequestWake while not hibernating");
                    }
                    if r.wake_requested {
                        self.fail("RequestWake twice in one hibernation");
                    }
                    if actor_id != r.actor {
                        self.fail("RequestWake for the wrong actor");
                    }
                    r.wake_requested = true;
                }
                Action::UpsertHibernatingRecord { actor_id, .. } => {
                    if !r.hibernatable || actor_id != r.actor {
                        self.fail("record upsert for a non-hibernatable request or wrong actor");
                    }
                }
                Action::DeleteHibernatingRecord { actor_id, .. } => {
                    if !r.hibernatable || actor_id != r.actor {
                        self.fail("record delete for a non-hibernatable request or wrong actor");
                    }
                    if !deleted.insert(id) {
                        self.fail("two record deletes");
                    }
                }
                Action::ClientWritable { .. } => {
                    if r.blocked.take().is_none() {
                        self.fail("ClientWritable for a request that was not refused");
                    }
                }
                Action::Closed { reason, .. } => {
                    let hibernatable = r.hibernatable;
                    let phase = r.phase;
                    let client_frame = if r.client_gone {
                        None
                    } else {
                        reason.client_frame()
                    };
                    self.live.remove(&id);
                    if close_client.remove(&id) != client_frame {
                        self.fail(&format!("CloseClient does not match {reason:?}"));
                    }
                    if deleted.remove(&id) != hibernatable {
                        self.fail("record delete does not match hibernatable");
                    }
                    let runner_frame_expected =
                        phase != Phase::Hibernating && reason.runner_frame().is_some();
                    if runner_close.remove(&id) != runner_frame_expected {
                        self.fail(&format!(
                            "runner close does not match {reason:?} in phase {phase:?}"
                        ));
                    }
                    fx.closed.insert(id, reason);
                }
            }
        }
        for (id, indices) in &fx.published {
            self.check_published_window(*id, indices);
        }
        if let Some(id) = close_client.keys().next() {
            self.fail(&format!("CloseClient for {id} without Closed"));
        }
        if let Some(id) = deleted.iter().next() {
            self.fail(&format!("record delete for {id} without Closed"));
        }
        if let Some(id) = runner_close.iter().next() {
            self.fail(&format!("runner close for {id} without Closed"));
        }
        fx
    }

    /// A runner ack applied as the ack rule says, with the window taken from what was actually
    /// published: `[oldest − 1, last published]` releases up to the ack, anything else changes
    /// nothing. So an ack can never release a message that was only buffered (never sent).
    fn check_ack(&self, id: RequestId, ack: MessageIndex, before: &RequestInfo) {
        let (Some(r), Some(after)) = (self.live.get(&id), self.gw.request(id)) else {
            self.fail("an ack closed the request");
        };
        let unchanged = (before.pending_messages, before.oldest_unacked);
        let expected = if r.hibernatable {
            let released = before
                .oldest_unacked
                .map_or(r.sent_through, MessageIndex::prev);
            let n = usize::from(ack.distance(released));
            if ack.is_within(released, r.sent_through) && n > 0 {
                let left = before.pending_messages.saturating_sub(n);
                (left, (left > 0).then(|| ack.next()))
            } else {
                unchanged
            }
        } else {
            unchanged
        };
        if (after.pending_messages, after.oldest_unacked) != expected {
            self.fail(&format!(
                "ack {ack:?} (last published {:?}) turned {unchanged:?} into {:?}, expected \
                 {expected:?}",
                r.sent_through,
                (after.pending_messages, after.oldest_unacked)
            ));
        }
    }

    /// Client messages published for a live request lie in its unacked window (hibernatable) or
    /// are the last one assigned (not hibernatable).
    fn check_published_window(&self, id: RequestId, indices: &[MessageIndex]) {
        let Some(info) = self.gw.request(id) else {
            return;
        };
        let last = info.next_index.prev();
        let first = match (info.hibernatable, info.oldest_unacked) {
            (false, _) => last,
            (true, Some(oldest)) => oldest,
            // Nothing pending: no message may have been published (an empty window cannot be
            // written as a range of the ring).
            (true, None) => {
                if !indices.is_empty() {
                    self.fail(&format!("{id}: published {indices:?} with nothing pending"));
                }
                return;
            }
        };
        if let Some(i) = indices.iter().find(|i| !i.is_within(first, last)) {
            self.fail(&format!(
                "{id}: published message {i:?} outside the window {first:?}..={last:?}"
            ));
        }
    }

    fn expect_quiet(&mut self, what: &str) {
        if let Some(a) = self.gw.poll_action() {
            self.fail(&format!("{what} emitted {a:?}"));
        }
    }

    /// `indices` are consecutive from `first`.
    fn check_contiguous(&self, indices: &[MessageIndex], first: MessageIndex, what: &str) {
        let mut expected = first;
        for &i in indices {
            if i != expected {
                self.fail(&format!(
                    "{what}: {indices:?} not consecutive from {first:?}"
                ));
            }
            expected = expected.next();
        }
    }

    // -----------------------------------------------------------------------------------------
    // Checks after every operation
    // -----------------------------------------------------------------------------------------

    fn check_all(&self) {
        if let Err(e) = self.gw.check_invariants() {
            self.fail(&format!("check_invariants: {e}"));
        }
        let stats = self.gw.stats();
        let cfg = &self.config;
        self.fail_if(
            stats.pending_bytes > cfg.max_gateway_pending_bytes,
            "gateway pending bytes over the limit",
        );
        self.fail_if(
            self.gw.len() != self.live.len()
                || u64::try_from(self.live.len()).ok() != Some(stats.requests),
            "live request count differs from the model",
        );
        for req in 0..REQUESTS {
            let id = request_id(req);
            let info = self.gw.request(id);
            let (Some(r), Some(info)) = (self.live.get(&id), info) else {
                if info.is_some() != self.live.contains_key(&id) {
                    self.fail(&format!("{id}: live in the gateway is {}", info.is_some()));
                }
                continue;
            };
            if info.phase != r.phase
                || info.route != r.route
                || info.hibernatable != r.hibernatable
                || info.next_index != r.next_index
            {
                self.fail(&format!("{id}: gateway {info:?} differs from model {r:?}"));
            }
            self.fail_if(
                info.pending_messages > usize::from(cfg.max_pending_messages)
                    || info.pending_bytes > cfg.max_pending_bytes,
                "request pending over the limits",
            );
            self.fail_if(
                !r.hibernatable && info.pending_messages > 0,
                "a non-hibernatable request holds pending messages",
            );
            // A request refused with backpressure is told when everything was released.
            if r.blocked.is_some() && stats.pending_bytes == 0 {
                self.fail(&format!(
                    "{id}: refused with backpressure and never told ClientWritable, though \
                     nothing is pending"
                ));
            }
        }
        if self.punctual
            && let Some(t) = self.gw.poll_timeout()
            && t <= self.now
        {
            self.fail(&format!(
                "poll_timeout {t:?} at or before now {:?}, every earlier deadline was handled",
                self.now
            ));
        }
    }

    fn fail_if(&self, bad: bool, what: &str) {
        if bad {
            self.fail(what);
        }
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "gateway_ops: {what}\nat step {} now {:?}\nconfig {:?}\nlast operations:\n{}",
            self.step,
            self.now,
            self.config,
            trace(&self.ops)
        );
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
