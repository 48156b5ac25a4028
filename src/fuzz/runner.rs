//! [`runner_ops`]: the runner engine under operation sequences drawn from arbitrary bytes.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use super::{Input, MAX_OPS, TRACE_LEN, duration, payload, time_step, trace};
use crate::close::{CloseFrame, KnownClose};
use crate::index::MessageIndex;
use crate::runner::{
    Action, ActorError, ActorState, CloseReason, Framing, GapPolicy, PersistedSocket, ReceiveError,
    Runner, RunnerConfig, SendError, SocketError, SocketId, SocketState,
};
use crate::time::Timestamp;
use crate::wire::{
    self, DecodeLimits, GatewayId, Headers, HibernatingRequest, MessageId, RequestId, ToClient,
    ToClientRequestChunk, ToClientTunnelMessage, ToClientTunnelMessageKind, ToClientWebSocketClose,
    ToClientWebSocketMessage, ToClientWebSocketOpen, ToGateway, ToRunner, ToRunnerPing, ToServer,
    ToServerTunnelMessage, ToServerTunnelMessageKind,
};

/// Actors the operations pick from (`a0`, `a1`, `a2`; opens may also name an unknown actor).
const ACTORS: u8 = 3;
/// Sockets the operations pick from: two gateways × three requests.
const SOCKETS: u8 = 6;
/// Most deadlines one punctual clock advance steps through before catching up at once.
const MAX_STEPS: usize = 64;

fn actor_name(a: u8) -> String {
    format!("a{a}")
}

fn socket_id(s: u8) -> SocketId {
    SocketId::new(
        GatewayId([0x67, 0, 0, s / 3]),
        RequestId([0x72, 0, 0, s % 3]),
    )
}

/// How a gateway → runner message reaches the runner.
#[derive(Debug, Clone, Copy)]
enum Path {
    /// `handle_tunnel_message`.
    Decoded,
    /// `handle_frame` with this version prefix (pub/sub framing) or plain (runner socket).
    Frame(u16),
}

/// One operation on the runner.
#[derive(Debug, Clone)]
enum Op {
    ActorStarting {
        actor: u8,
        hibernating: Vec<u8>,
    },
    Restore {
        actor: u8,
        persisted: Vec<PersistedSocket>,
    },
    ActorStopping {
        actor: u8,
    },
    Gateway {
        msg: ToClientTunnelMessage,
        path: Path,
    },
    Ping {
        sock: u8,
        ts: i64,
        version: u16,
    },
    /// `ToRunner::Close` (unsupported) as a frame.
    RunnerClose,
    RawFrame(Vec<u8>),
    Accept {
        sock: u8,
        hibernatable: bool,
    },
    Reject {
        sock: u8,
    },
    Send {
        sock: u8,
        len: usize,
    },
    Close {
        sock: u8,
    },
    Hibernate {
        sock: u8,
    },
    /// The app finishes the `k`-th outstanding persist (modulo their number).
    PersistDone {
        k: usize,
        ok: bool,
    },
    /// A persist result nobody asked for.
    PersistBogus {
        sock: u8,
        index: MessageIndex,
        ok: bool,
    },
    Advance(Duration),
    Jump(Duration),
    HandleTimeout,
    StaleTimeout(Duration),
    FireNext,
}

/// What must happen to a gateway message on an open hibernatable socket.
#[derive(Debug, Clone, Copy)]
enum Verdict {
    Deliver,
    Duplicate,
    Gap,
    /// A gap on a restored socket that has not seen the gateway's replay yet: dropped, neither
    /// closed nor held (the replay resends it after the missing ones).
    DropBeforeReplay,
}

/// Model of one live socket.
#[derive(Debug, Clone)]
struct Sock {
    actor: String,
    state: SocketState,
    hibernatable: bool,
    last_delivered: MessageIndex,
    next_out: MessageIndex,
    in_flight: Option<MessageIndex>,
    /// Indices the app reported durable for this socket (or restored from storage).
    durable: BTreeSet<u16>,
    /// An open replay moved the delivered index. A replay may advance it arbitrarily far (as
    /// upstream does), so the serial comparisons with the persisted and acked indices are no
    /// longer meaningful for this socket.
    jumped: bool,
    /// Restored and no in-order message delivered since: a gap is dropped, not closed or held.
    awaiting_replay: bool,
}

/// A persist the app was asked for and has not answered.
#[derive(Debug, Clone)]
struct Outstanding {
    socket: SocketId,
    actor: String,
    server_index: MessageIndex,
    client_index: MessageIndex,
}

struct Harness {
    runner: Runner,
    config: RunnerConfig,
    now: Timestamp,
    /// Every deadline at or before `now` was handled (the driver is punctual so far).
    punctual: bool,
    /// The latest `now` given to the engine (`now` runs ahead of it after a jump).
    seen: Timestamp,
    actors: BTreeMap<String, ActorState>,
    sockets: BTreeMap<SocketId, Sock>,
    outstanding: Vec<Outstanding>,
    /// The app's durable metadata: `(actor, socket) → (server index, client index)`.
    storage: BTreeMap<(String, SocketId), (MessageIndex, MessageIndex)>,
    /// Client indices of the metadata given to the restore in progress.
    restoring: BTreeMap<SocketId, MessageIndex>,
    /// Ping sent in the current operation: `(gateway, request, ts)`.
    ping: Option<(GatewayId, RequestId, i64)>,
    /// Persists whose socket is gone and whose result has not come, per socket id in request
    /// order: `(index, hand-back)`. The runner matches a result to the oldest one with its index
    /// before any live socket; a hand-back's answers `Ok`, any other `UnknownSocket`.
    orphans: BTreeMap<SocketId, VecDeque<(MessageIndex, bool)>>,
    /// The current operation answered or re-opened an existing socket (upstream open replay),
    /// which may move its indices: the per-message checks are relaxed and the model re-synced.
    replay: bool,
    /// `stats().duplicate_opens` before the current operation.
    duplicate_opens: u64,
    /// The gateway's hibernating list given to each starting actor (deduplicated, in order).
    listed: BTreeMap<String, Vec<SocketId>>,
    /// What the current operation's actions did: messages delivered, closes, acks published.
    delivered: Vec<(SocketId, MessageIndex)>,
    closes: Vec<(SocketId, CloseReason)>,
    acks: Vec<(SocketId, MessageIndex)>,
    ops: VecDeque<(usize, Op)>,
    step: usize,
}

/// Drives a [`Runner`] through an operation sequence drawn from `data` and checks its properties
/// after every operation. See the [module docs](super).
///
/// # Panics
/// When a property is violated (with the last operations in the message).
pub fn runner_ops(data: &[u8]) {
    let mut input = Input::new(data);
    let config = config(&mut input);
    let start = match input.u8() % 8 {
        0 => Timestamp::ZERO,
        1 => Timestamp::from_micros(u64::MAX - u64::from(input.u32())),
        _ => Timestamp::from_micros(u64::from(input.u32())),
    };
    let runner = match Runner::new(config.clone(), start) {
        Ok(r) => r,
        Err(e) => panic!("a valid configuration was refused: {e:?} {config:?}"),
    };
    let mut h = Harness {
        runner,
        config,
        now: start,
        punctual: true,
        seen: start,
        actors: BTreeMap::new(),
        sockets: BTreeMap::new(),
        outstanding: Vec::new(),
        storage: BTreeMap::new(),
        restoring: BTreeMap::new(),
        ping: None,
        orphans: BTreeMap::new(),
        replay: false,
        duplicate_opens: 0,
        listed: BTreeMap::new(),
        delivered: Vec::new(),
        closes: Vec::new(),
        acks: Vec::new(),
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

/// A valid configuration drawn from the input.
fn config(input: &mut Input<'_>) -> RunnerConfig {
    let mut c = RunnerConfig::default();
    if input.one_in(8) {
        return c;
    }
    c.framing = if input.one_in(4) {
        Framing::RunnerSocket
    } else {
        Framing::PubSub {
            version: 4 + u16::from(input.u8() % 4),
        }
    };
    c.gap_policy = if input.bool() {
        GapPolicy::Await
    } else {
        GapPolicy::Close
    };
    c.persist_bytes = match input.u8() % 3 {
        0 => 1 + u64::from(input.u8()),
        1 => 1 + u64::from(input.u16()),
        _ => crate::runner::DEFAULT_PERSIST_BYTES,
    };
    c.persist_interval = duration(input);
    c.persist_retry_initial = duration(input);
    c.persist_retry_max = c.persist_retry_initial * u32::from(1 + input.u8() % 8);
    c.max_held_messages = 1 + input.below(6);
    c.max_held_bytes = u64::from(input.u16() % 512);
    c.gap_timeout = duration(input);
    c.max_queued_per_actor = 1 + input.below(6);
    c.max_queued_bytes_per_actor = 1 + u64::from(input.u16() % 1024);
    c.max_sockets = 1 + input.below(usize::from(SOCKETS));
    c.max_message_size = 1 + usize::from(input.u16() % 1024);
    c.reack_interval = if input.one_in(4) {
        Duration::ZERO
    } else {
        duration(input)
    };
    if input.one_in(4) {
        c.decode_limits = DecodeLimits {
            max_frame_size: 1 + usize::from(input.u8()),
            max_headers: input.below(3),
            ..DecodeLimits::default()
        };
    }
    c
}

impl Harness {
    fn next_op(&self, input: &mut Input<'_>) -> Op {
        let sock = input.u8() % SOCKETS;
        match input.u8() % 28 {
            0 | 1 => Op::ActorStarting {
                actor: input.u8() % ACTORS,
                hibernating: mask(input.u8()),
            },
            2 | 3 => {
                let actor = input.u8() % ACTORS;
                Op::Restore {
                    actor,
                    persisted: self.persisted_for(input, actor),
                }
            }
            4 => Op::ActorStopping {
                actor: input.u8() % ACTORS,
            },
            5..=11 => Op::Gateway {
                msg: self.gateway_message(input, sock),
                path: self.path(input),
            },
            12 => match input.u8() % 4 {
                0 => Op::RunnerClose,
                1 => Op::RawFrame(input.bytes(64).to_vec()),
                _ => Op::Ping {
                    sock,
                    ts: i64::from(input.u32()) - 7,
                    version: 4 + u16::from(input.u8() % 4),
                },
            },
            13 | 14 => Op::Accept {
                sock,
                hibernatable: !input.one_in(4),
            },
            15 => Op::Reject { sock },
            16 => Op::Send {
                sock,
                len: if input.one_in(8) {
                    usize::from(input.u16() % 1200)
                } else {
                    input.below(16)
                },
            },
            17 => Op::Close { sock },
            18 => Op::Hibernate { sock },
            19..=21 => Op::PersistDone {
                k: usize::from(input.u8()),
                ok: !input.one_in(4),
            },
            22 => Op::PersistBogus {
                sock,
                index: MessageIndex::new(input.u16()),
                ok: input.bool(),
            },
            23 | 24 => Op::Advance(time_step(input)),
            25 => Op::Jump(time_step(input)),
            26 => {
                if input.bool() {
                    Op::HandleTimeout
                } else {
                    Op::StaleTimeout(time_step(input))
                }
            }
            _ => Op::FireNext,
        }
    }

    /// The metadata a restore gets: the app's storage for the actor (usually), sometimes with
    /// arbitrary entries added.
    fn persisted_for(&self, input: &mut Input<'_>, actor: u8) -> Vec<PersistedSocket> {
        let name = actor_name(actor);
        let mut list: Vec<PersistedSocket> = self
            .storage
            .iter()
            .filter(|((a, _), _)| *a == name)
            .map(|((_, socket), &(server, client))| meta(*socket, server, client))
            .collect();
        if input.one_in(4) {
            for s in mask(input.u8()) {
                list.push(meta(
                    socket_id(s),
                    MessageIndex::new(input.u16()),
                    MessageIndex::new(u16::from(input.u8())),
                ));
            }
        }
        list
    }

    fn path(&self, input: &mut Input<'_>) -> Path {
        match input.u8() % 4 {
            0 => Path::Decoded,
            1 => Path::Frame(u16::from(input.u8() % 9)),
            _ => Path::Frame(match self.config.framing {
                Framing::PubSub { version } => version,
                Framing::RunnerSocket => 0,
            }),
        }
    }

    fn gateway_message(&self, input: &mut Input<'_>, sock: u8) -> ToClientTunnelMessage {
        let id = socket_id(sock);
        let last = self
            .runner
            .socket(id)
            .map_or(MessageIndex::ZERO, |s| s.last_delivered);
        let (index, kind) = match input.u8() % 10 {
            0 | 1 => {
                let actor = match input.u8() % 8 {
                    0 => "ghost".to_string(),
                    a => actor_name(a % ACTORS),
                };
                let index = if input.one_in(4) {
                    MessageIndex::new(input.u16())
                } else {
                    MessageIndex::ZERO
                };
                (
                    index,
                    ToClientTunnelMessageKind::WebSocketOpen(ToClientWebSocketOpen {
                        actor_id: actor,
                        path: "/ws".into(),
                        headers: Headers::new(),
                    }),
                )
            }
            2..=6 => {
                let index = match input.u8() % 10 {
                    0..=4 => last.next(),
                    5 => last,
                    6 => last.wrapping_add(2 + u16::from(input.u8() % 4)),
                    7 => last.prev(),
                    8 => last.wrapping_add(0x8000),
                    _ => MessageIndex::new(input.u16()),
                };
                let len = if input.one_in(8) {
                    usize::from(input.u16() % 600)
                } else {
                    input.below(24)
                };
                (
                    index,
                    ToClientTunnelMessageKind::WebSocketMessage(ToClientWebSocketMessage {
                        data: payload(len, sock),
                        binary: input.bool(),
                    }),
                )
            }
            7 | 8 => (
                last.next(),
                ToClientTunnelMessageKind::WebSocketClose(ToClientWebSocketClose {
                    code: input.bool().then_some(1000),
                    reason: input.bool().then(|| "bye".to_string()),
                }),
            ),
            _ => (
                last.next(),
                match input.u8() % 2 {
                    0 => ToClientTunnelMessageKind::RequestAbort,
                    _ => ToClientTunnelMessageKind::RequestChunk(ToClientRequestChunk {
                        body: Vec::new(),
                        finish: true,
                    }),
                },
            ),
        };
        ToClientTunnelMessage {
            message_id: MessageId {
                gateway_id: id.gateway_id,
                request_id: id.request_id,
                message_index: index,
            },
            kind,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Running operations
    // -----------------------------------------------------------------------------------------

    /// Resets what one operation observes.
    fn begin_op(&mut self) {
        self.replay = false;
        self.duplicate_opens = self.runner.stats().duplicate_opens;
        self.delivered.clear();
        self.closes.clear();
        self.acks.clear();
        self.ping = None;
    }

    /// Liveness, once the input is exhausted: the app answers every persist successfully and
    /// the clock takes a few large steps (persist debounces, retries and gap timeouts fire).
    /// Then every open hibernatable socket has its last delivered index persisted and acked,
    /// and every stopping actor has finished stopping.
    fn settle(&mut self) {
        let c = &self.config;
        let longest = [
            c.persist_interval,
            c.persist_retry_max,
            c.gap_timeout,
            c.reack_interval,
        ]
        .into_iter()
        .max()
        .unwrap_or_default();
        let step = longest * 2 + Duration::from_secs(1);
        if self
            .now
            .checked_add(step * 16)
            .is_none_or(|t| t == Timestamp::MAX)
        {
            return;
        }
        for _ in 0..8 {
            while !self.outstanding.is_empty() {
                self.begin_op();
                self.persist_done(self.now, 0, true);
                self.check_all();
            }
            self.begin_op();
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
        let unsettled: Vec<(SocketId, Sock)> = self
            .sockets
            .iter()
            .filter(|(_, s)| s.state == SocketState::Open && s.hibernatable && !s.jumped)
            .map(|(id, s)| (*id, s.clone()))
            .collect();
        for (id, s) in unsettled {
            let Some(info) = self.runner.socket(id) else {
                continue;
            };
            if info.last_persisted != Some(info.last_delivered)
                || info.last_acked != info.last_delivered
            {
                self.fail(&format!(
                    "{id:?} never persisted and acked what it delivered: {info:?} {s:?}"
                ));
            }
        }
        if let Some((name, _)) = self
            .actors
            .iter()
            .find(|(_, state)| **state == ActorState::Stopping)
        {
            self.fail(&format!("{name} never finished stopping"));
        }
    }

    #[allow(clippy::too_many_lines)] // one arm per operation reads best as one match
    fn run(&mut self, op: Op) {
        self.begin_op();
        let now = if self.step % 5 == 4 {
            self.now.saturating_sub(Duration::from_millis(3))
        } else {
            self.now
        };
        if !matches!(
            op,
            Op::Advance(_)
                | Op::Jump(_)
                | Op::HandleTimeout
                | Op::StaleTimeout(_)
                | Op::FireNext
                | Op::PersistDone { .. }
                | Op::PersistBogus { .. }
        ) {
            // Every other operation gives `now` to the engine (the persist results do when they
            // call it).
            self.seen = self.seen.max(now);
        }
        match op {
            Op::ActorStarting { actor, hibernating } => {
                let name = actor_name(actor);
                let list: Vec<HibernatingRequest> =
                    hibernating.iter().map(|&s| socket_id(s).into()).collect();
                let mut ids: Vec<SocketId> = Vec::new();
                for &s in &hibernating {
                    if !ids.contains(&socket_id(s)) {
                        ids.push(socket_id(s));
                    }
                }
                let result = self.runner.actor_starting(now, &name, list);
                let expected = match self.actors.get(&name) {
                    None => Ok(()),
                    Some(ActorState::Stopping) => Err(ActorError::Stopping),
                    Some(_) => Err(ActorError::AlreadyStarting),
                };
                if result != expected {
                    self.fail(&format!("actor_starting: {result:?}"));
                }
                if result.is_ok() {
                    self.listed.insert(name.clone(), ids);
                    self.actors.insert(name, ActorState::Starting);
                }
                self.expect_quiet("actor_starting");
            }
            Op::Restore { actor, persisted } => {
                let name = actor_name(actor);
                self.restoring.clear();
                for m in &persisted {
                    self.restoring.entry(m.socket).or_insert(m.client_index);
                }
                let expected = self.expected_restore(&name, &persisted);
                let result = self.runner.restore(now, &name, persisted);
                match (self.actors.get(&name), &result) {
                    (Some(ActorState::Starting), Ok(summary)) => {
                        let got = [
                            summary.restored,
                            summary.meta_not_found,
                            summary.stale,
                            summary.skipped,
                            summary.socket_limit,
                            summary.replayed,
                        ];
                        if got != expected {
                            self.fail(&format!(
                                "restore verdicts [restored, meta not found, stale, skipped, \
                                 socket limit, replayed] {got:?}, expected {expected:?}"
                            ));
                        }
                        self.actors.insert(name, ActorState::Running);
                    }
                    (None, Err(ActorError::NotStarting))
                    | (
                        Some(ActorState::Running | ActorState::Stopping),
                        Err(ActorError::AlreadyRestored),
                    ) => {
                        self.expect_quiet("a refused restore");
                    }
                    (state, result) => self.fail(&format!("restore of {state:?}: {result:?}")),
                }
                self.drain();
                self.restoring.clear();
            }
            Op::ActorStopping { actor } => {
                let name = actor_name(actor);
                let result = self.runner.actor_stopping(now, &name);
                let expected = match self.actors.get(&name) {
                    None => Err(ActorError::UnknownActor),
                    Some(ActorState::Stopping) => Err(ActorError::Stopping),
                    Some(_) => Ok(()),
                };
                if result != expected {
                    self.fail(&format!("actor_stopping: {result:?}"));
                }
                if result.is_ok() {
                    self.actors.insert(name.clone(), ActorState::Stopping);
                    for s in self.sockets.values_mut() {
                        if s.actor == name && s.state == SocketState::Open && s.hibernatable {
                            s.state = SocketState::Stopping;
                        }
                    }
                    self.drain();
                } else {
                    self.expect_quiet("a refused actor_stopping");
                }
            }
            Op::Gateway { msg, path } => {
                let verdict = self.expected_verdict(&msg);
                let result = match path {
                    Path::Decoded => self.runner.handle_tunnel_message(now, msg),
                    Path::Frame(version) => {
                        let frame = match self.config.framing {
                            Framing::PubSub { .. } => {
                                wire::encode_versioned(version, &ToRunner::TunnelMessage(msg))
                            }
                            Framing::RunnerSocket => wire::encode(&ToClient::TunnelMessage(msg)),
                        };
                        self.runner.handle_frame(now, &frame)
                    }
                };
                self.drain();
                if let Some((id, r, verdict)) = verdict
                    && !matches!(result, Err(ReceiveError::Malformed(_)))
                {
                    self.check_verdict(id, r, verdict);
                }
            }
            Op::Ping { sock, ts, version } => {
                let id = socket_id(sock);
                let ping = ToRunner::Ping(ToRunnerPing {
                    gateway_id: id.gateway_id,
                    request_id: id.request_id,
                    ts,
                });
                let frame = wire::encode_versioned(version, &ping);
                let result = self.runner.handle_frame(now, &frame);
                if matches!(self.config.framing, Framing::PubSub { .. })
                    && frame.len() <= self.config.decode_limits.max_frame_size
                {
                    if result.is_err() {
                        self.fail(&format!("a ping was refused: {result:?}"));
                    }
                    self.ping = Some((id.gateway_id, id.request_id, ts));
                }
                self.drain();
                self.fail_if(self.ping.is_some(), "a ping was not answered");
            }
            Op::RunnerClose => {
                let frame = wire::encode_versioned(7, &ToRunner::Close);
                let result = self.runner.handle_frame(now, &frame);
                self.fail_if(result.is_ok(), "ToRunner::Close accepted");
                self.expect_quiet("ToRunner::Close");
            }
            Op::RawFrame(bytes) => {
                // Arbitrary bytes may well be a ping: then it must be answered.
                if matches!(self.config.framing, Framing::PubSub { .. })
                    && let Ok((_, ToRunner::Ping(p))) =
                        wire::decode_versioned::<ToRunner>(&bytes, &self.config.decode_limits)
                {
                    self.ping = Some((p.gateway_id, p.request_id, p.ts));
                }
                let _ = self.runner.handle_frame(now, &bytes);
                self.drain();
                self.fail_if(self.ping.is_some(), "a ping was not answered");
            }
            Op::Accept { sock, hibernatable } => {
                let id = socket_id(sock);
                let result = self.runner.accept(now, id, hibernatable);
                let state = self.sockets.get(&id).map(|s| s.state);
                self.check_command(
                    result,
                    state,
                    Some(SocketState::Connecting),
                    SocketError::WrongState,
                    "accept",
                );
                if result.is_ok()
                    && let Some(s) = self.sockets.get_mut(&id)
                {
                    s.state = SocketState::Open;
                    s.hibernatable = hibernatable;
                }
                self.drain();
            }
            Op::Reject { sock } => {
                let id = socket_id(sock);
                let frame = CloseFrame::new(4001, "no");
                let result = self.runner.reject(now, id, frame);
                let state = self.sockets.get(&id).map(|s| s.state);
                self.check_command(
                    result,
                    state,
                    Some(SocketState::Connecting),
                    SocketError::WrongState,
                    "reject",
                );
                self.drain();
            }
            Op::Send { sock, len } => {
                let id = socket_id(sock);
                let result = self.runner.send(now, id, &payload(len, 3), true);
                let expected = match self.sockets.get(&id).map(|s| s.state) {
                    None => Err(SendError::UnknownSocket),
                    Some(SocketState::Open) if len > self.config.max_message_size => {
                        Err(SendError::MessageTooLarge {
                            size: len,
                            max: self.config.max_message_size,
                        })
                    }
                    Some(SocketState::Open) => Ok(()),
                    Some(_) => Err(SendError::NotOpen),
                };
                match (&result, &expected) {
                    (Ok(index), Ok(())) => {
                        let next = self.sockets.get(&id).map(|s| s.next_out);
                        self.fail_if(Some(*index) != next, "send took the wrong index");
                    }
                    (Err(a), Err(b)) if a == b => self.expect_quiet("a refused send"),
                    _ => self.fail(&format!("send: {result:?}, expected {expected:?}")),
                }
                self.drain();
            }
            Op::Close { sock } => {
                let id = socket_id(sock);
                let result = self.runner.close(now, id, CloseFrame::new(1000, "done"));
                let state = self.sockets.get(&id).map(|s| s.state);
                self.check_command(
                    result,
                    state,
                    Some(SocketState::Open),
                    SocketError::NotOpen,
                    "close",
                );
                self.drain();
            }
            Op::Hibernate { sock } => {
                let id = socket_id(sock);
                let result = self.runner.hibernate(now, id);
                let expected = match self.sockets.get(&id) {
                    None => Err(SocketError::UnknownSocket),
                    Some(s) if s.state != SocketState::Open => Err(SocketError::NotOpen),
                    Some(s) if !s.hibernatable => Err(SocketError::NotHibernatable),
                    Some(_) => Ok(()),
                };
                if result != expected {
                    self.fail(&format!("hibernate: {result:?}"));
                }
                if result.is_err() {
                    self.expect_quiet("a refused hibernate");
                }
                let before = self
                    .sockets
                    .get(&id)
                    .map(|s| (s.in_flight, s.last_delivered));
                self.drain();
                if result.is_ok()
                    && let Some((earlier, index)) = before
                {
                    // The runner keeps both results apart from any newer socket with this id:
                    // the persist that was in flight, then the hand-back's own.
                    if let Some(earlier) = earlier {
                        self.push_orphan(id, earlier, false);
                    }
                    self.push_orphan(id, index, true);
                }
            }
            Op::PersistDone { k, ok } => self.persist_done(now, k, ok),
            Op::PersistBogus { sock, index, ok } => {
                let id = socket_id(sock);
                let matches_flight = self
                    .sockets
                    .get(&id)
                    .is_some_and(|s| s.in_flight == Some(index));
                // Results are keyed by socket id and index only: one that names a hand-back's
                // persist answers it, whatever the app meant.
                let matches_hand_back = self
                    .orphans
                    .get(&id)
                    .is_some_and(|q| q.iter().any(|&(i, _)| i == index));
                if matches_flight || matches_hand_back {
                    // Not bogus after all: it answers the persist in flight.
                    return;
                }
                self.seen = self.seen.max(now);
                let result = if ok {
                    self.runner.persisted(now, id, index)
                } else {
                    self.runner.persist_failed(now, id, index)
                };
                let expected = if self.sockets.contains_key(&id) {
                    SocketError::UnexpectedPersist
                } else {
                    SocketError::UnknownSocket
                };
                if result != Err(expected) {
                    self.fail(&format!("a bogus persist result gave {result:?}"));
                }
                self.expect_quiet("a bogus persist result");
            }
            Op::Advance(d) => {
                let target = self.now + d;
                let mut steps = 0;
                while let Some(t) = self.runner.poll_timeout() {
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
                if let Some(t) = self.runner.poll_timeout() {
                    self.now = self.now.max(t);
                }
                self.timeout(self.now);
            }
        }
    }

    /// Mirrors the runner's record of a persist whose socket is gone, and its bound: past
    /// `max_sockets` entries the first stale one (by socket id) is forgotten.
    fn push_orphan(&mut self, id: SocketId, index: MessageIndex, hand_back: bool) {
        self.orphans
            .entry(id)
            .or_default()
            .push_back((index, hand_back));
        while self.orphans.values().map(VecDeque::len).sum::<usize>() > self.config.max_sockets {
            let victim = self.orphans.iter_mut().find_map(|(id, q)| {
                let pos = q.iter().position(|&(_, hb)| !hb)?;
                q.remove(pos);
                Some((*id, q.is_empty()))
            });
            let Some((id, empty)) = victim else {
                break;
            };
            if empty {
                self.orphans.remove(&id);
            }
        }
    }

    /// The app finishes an outstanding persist: it writes its storage first, then reports.
    fn persist_done(&mut self, now: Timestamp, k: usize, ok: bool) {
        if self.outstanding.is_empty() {
            return;
        }
        let o = self.outstanding.remove(k % self.outstanding.len());
        let orphan = self.orphans.get_mut(&o.socket).and_then(|q| {
            let pos = q.iter().position(|&(i, _)| i == o.server_index)?;
            q.remove(pos)
        });
        if self.orphans.get(&o.socket).is_some_and(VecDeque::is_empty) {
            self.orphans.remove(&o.socket);
        }
        if let Some((_, hand_back)) = orphan {
            // The result of a persist whose socket is gone (possibly another persist of it with
            // the same index: results are keyed by socket id and index, oldest first). Never
            // applied to a newer socket with the same id.
            if ok && hand_back {
                self.storage.insert(
                    (o.actor.clone(), o.socket),
                    (o.server_index, o.client_index),
                );
            }
            self.seen = self.seen.max(now);
            let result = if ok {
                self.runner.persisted(now, o.socket, o.server_index)
            } else {
                self.runner.persist_failed(now, o.socket, o.server_index)
            };
            let expected = if hand_back {
                Ok(())
            } else {
                Err(SocketError::UnknownSocket)
            };
            if result != expected {
                self.fail(&format!("result of a gone socket's persist: {result:?}"));
            }
            self.drain();
            return;
        }
        // A result of an earlier socket with this id that no record of the runner's claims (its
        // record was bounded away, or a result of the newer socket with the same index took it):
        // it is the newer socket's result now if it names the persist in flight, else refused.
        if ok {
            self.storage.insert(
                (o.actor.clone(), o.socket),
                (o.server_index, o.client_index),
            );
        }
        self.seen = self.seen.max(now);
        let acked_before = self.runner.socket(o.socket).map(|i| i.last_acked);
        let result = if ok {
            self.runner.persisted(now, o.socket, o.server_index)
        } else {
            self.runner.persist_failed(now, o.socket, o.server_index)
        };
        match self.sockets.get_mut(&o.socket) {
            Some(s) => {
                let in_flight = s.in_flight == Some(o.server_index);
                // (A result of an earlier socket with this id may have claimed the persist in
                // flight first: then this one is refused as unexpected.)
                match (in_flight, &result) {
                    (true, Ok(())) => {
                        s.in_flight = None;
                        if ok {
                            s.durable.insert(o.server_index.get());
                        }
                    }
                    (false, Err(SocketError::UnexpectedPersist)) => {}
                    _ => self.fail(&format!(
                        "persist result {result:?} (in flight: {in_flight})"
                    )),
                }
            }
            None => {
                // (Results of persists of gone sockets were answered above.)
                if result != Err(SocketError::UnknownSocket) {
                    self.fail(&format!("persist result of a gone socket: {result:?}"));
                }
            }
        }
        self.drain();
        // Persist, then ack: a new durable index is acked at once.
        if ok
            && result.is_ok()
            && acked_before != Some(o.server_index)
            && self.runner.socket(o.socket).and_then(|i| i.last_persisted) == Some(o.server_index)
            && !self.acks.contains(&(o.socket, o.server_index))
        {
            self.fail(&format!(
                "{:?}: persisted {:?} was not acked",
                o.socket, o.server_index
            ));
        }
    }

    /// The restore verdicts, computed from the model: `[restored, meta not found, stale,
    /// skipped, socket limit, replayed]`.
    fn expected_restore(&self, name: &str, persisted: &[PersistedSocket]) -> [usize; 6] {
        if self.actors.get(name) != Some(&ActorState::Starting) {
            return [0; 6];
        }
        let listed = self.listed.get(name).cloned().unwrap_or_default();
        let mut live: BTreeSet<SocketId> = self.sockets.keys().copied().collect();
        let mut seen = BTreeSet::new();
        let mut v = [0usize; 6];
        for m in persisted {
            if !seen.insert(m.socket) || live.contains(&m.socket) {
                v[3] += 1;
            } else if !listed.contains(&m.socket) {
                v[2] += 1;
            } else if live.len() >= self.config.max_sockets {
                v[4] += 1;
            } else {
                v[0] += 1;
                live.insert(m.socket);
            }
        }
        for id in listed {
            if seen.contains(&id) {
                continue;
            }
            if live.contains(&id) {
                v[3] += 1;
            } else {
                v[1] += 1;
            }
        }
        v[5] = self.runner.actor(name).map_or(0, |a| a.queued);
        v
    }

    /// For a WebSocket message to an open hibernatable socket: the socket, the index and what must
    /// happen to it (`docs/protocol.md#index-validation`: `δ = r − p`; 1 delivers, 0 or behind is a
    /// duplicate, anything else is a gap).
    fn expected_verdict(
        &self,
        msg: &ToClientTunnelMessage,
    ) -> Option<(SocketId, MessageIndex, Verdict)> {
        if !matches!(msg.kind, ToClientTunnelMessageKind::WebSocketMessage(_)) {
            return None;
        }
        let id = SocketId::new(msg.message_id.gateway_id, msg.message_id.request_id);
        let s = self.sockets.get(&id)?;
        if s.state != SocketState::Open || !s.hibernatable {
            return None;
        }
        let (r, p) = (msg.message_id.message_index, s.last_delivered);
        let verdict = match r.distance(p) {
            1 => Verdict::Deliver,
            0 => Verdict::Duplicate,
            _ if r.is_before(p) => Verdict::Duplicate,
            _ if s.awaiting_replay => Verdict::DropBeforeReplay,
            _ => Verdict::Gap,
        };
        Some((id, r, verdict))
    }

    fn check_verdict(&self, id: SocketId, r: MessageIndex, verdict: Verdict) {
        let delivered = self.delivered.contains(&(id, r));
        let skip = self.closes.contains(&(id, CloseReason::MessageIndexSkip));
        let ok = match (verdict, self.config.gap_policy) {
            (Verdict::Deliver, _) => delivered,
            (Verdict::Duplicate | Verdict::DropBeforeReplay, _) => {
                !delivered && !skip && self.sockets.contains_key(&id)
            }
            (Verdict::Gap, GapPolicy::Close) => !delivered && skip,
            // Held, or closed when the held buffer overflows.
            (Verdict::Gap, _) => !delivered,
        };
        if !ok {
            self.fail(&format!(
                "{id:?}: message {r:?} should be {verdict:?}; delivered {delivered}, closed \
                 index-skip {skip}"
            ));
        }
    }

    /// A socket command succeeds iff the socket is in `want`; otherwise it fails with
    /// `UnknownSocket` (no socket) or `wrong`, and does nothing.
    fn check_command(
        &mut self,
        result: Result<(), SocketError>,
        state: Option<SocketState>,
        want: Option<SocketState>,
        wrong: SocketError,
        what: &str,
    ) {
        let expected = match state {
            None => Err(SocketError::UnknownSocket),
            s if s == want => Ok(()),
            Some(_) => Err(wrong),
        };
        if result != expected {
            self.fail(&format!("{what}: {result:?}, expected {expected:?}"));
        }
        if result.is_err() {
            self.expect_quiet(what);
        }
    }

    /// `handle_timeout(at)`, then the timer contract.
    fn timeout(&mut self, at: Timestamp) {
        self.runner.handle_timeout(at);
        // An older `at` is treated as the latest `now` the engine has seen.
        self.seen = self.seen.max(at);
        self.drain();
        if let Some(t) = self.runner.poll_timeout()
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

    // -----------------------------------------------------------------------------------------
    // Actions
    // -----------------------------------------------------------------------------------------

    #[allow(clippy::too_many_lines)] // one arm per action
    fn drain(&mut self) {
        // Sockets closed in this batch (a metadata delete may follow), and sockets that got a
        // second persist while one was in flight (allowed only when the socket goes away).
        let mut closed: BTreeSet<SocketId> = BTreeSet::new();
        let mut double_persist: BTreeSet<SocketId> = BTreeSet::new();
        if self.runner.stats().duplicate_opens != self.duplicate_opens {
            self.replay = true;
        }
        while let Some(action) = self.runner.poll_action() {
            match action {
                Action::Publish { gateway_id, frame } => {
                    if let Some(refused) = self.published(gateway_id, &frame) {
                        closed.insert(refused);
                    }
                }
                Action::Open {
                    socket,
                    actor_id,
                    index,
                    ..
                } => {
                    if self.sockets.contains_key(&socket) {
                        self.fail("Open for a live socket");
                    }
                    if self.actors.get(&actor_id) != Some(&ActorState::Running) {
                        self.fail("Open for an actor that is not running");
                    }
                    closed.remove(&socket);
                    self.sockets.insert(
                        socket,
                        Sock {
                            actor: actor_id,
                            state: SocketState::Connecting,
                            hibernatable: false,
                            last_delivered: index,
                            next_out: MessageIndex::ZERO,
                            in_flight: None,
                            durable: BTreeSet::new(),
                            jumped: false,
                            awaiting_replay: false,
                        },
                    );
                }
                Action::Restored {
                    socket,
                    actor_id,
                    server_index,
                } => {
                    if self.sockets.contains_key(&socket) {
                        self.fail("Restored a live socket");
                    }
                    let Some(&client) = self.restoring.get(&socket) else {
                        self.fail("Restored a socket without metadata");
                    };
                    closed.remove(&socket);
                    self.sockets.insert(
                        socket,
                        Sock {
                            actor: actor_id,
                            state: SocketState::Open,
                            hibernatable: true,
                            last_delivered: server_index,
                            next_out: client,
                            in_flight: None,
                            durable: BTreeSet::from([server_index.get()]),
                            jumped: false,
                            awaiting_replay: true,
                        },
                    );
                }
                Action::Message { socket, index, .. } => {
                    let replay = self.replay;
                    let Some(s) = self.sockets.get_mut(&socket) else {
                        self.fail("Message for a socket that is not live");
                    };
                    if s.state != SocketState::Open {
                        self.fail("Message for a socket that is not open");
                    }
                    // Hibernatable sockets deliver every index once, in order; the others
                    // deliver what comes (upstream: no validation) and only record it.
                    if s.hibernatable && !replay && index != s.last_delivered.next() {
                        let last = s.last_delivered;
                        self.fail(&format!(
                            "delivered {index:?} after {last:?} on a hibernatable socket"
                        ));
                    }
                    s.last_delivered = index;
                    s.awaiting_replay = false;
                    self.delivered.push((socket, index));
                }
                Action::Persist {
                    socket,
                    actor_id,
                    server_index,
                    client_index,
                } => {
                    let replay = self.replay;
                    let Some(s) = self.sockets.get_mut(&socket) else {
                        self.fail("Persist for a socket that is not live");
                    };
                    if !s.hibernatable || s.state == SocketState::Connecting {
                        self.fail("Persist for a socket that is not hibernatable and open");
                    }
                    if !replay && (server_index != s.last_delivered || client_index != s.next_out) {
                        let (d, n) = (s.last_delivered, s.next_out);
                        self.fail(&format!(
                            "Persist {server_index:?}/{client_index:?}, model {d:?}/{n:?}"
                        ));
                    }
                    if actor_id != s.actor {
                        self.fail("Persist names the wrong actor");
                    }
                    if s.in_flight.is_some() {
                        double_persist.insert(socket);
                    }
                    s.in_flight = Some(server_index);
                    self.outstanding.push(Outstanding {
                        socket,
                        actor: actor_id,
                        server_index,
                        client_index,
                    });
                }
                Action::DeleteMetadata { socket, actor_id } => {
                    if !closed.contains(&socket) {
                        self.fail("DeleteMetadata for a socket not closed in this batch");
                    }
                    self.storage.remove(&(actor_id, socket));
                }
                Action::Closed { socket, reason } => {
                    match self.sockets.remove(&socket) {
                        Some(s) => {
                            // Closed with a persist in flight: its late result stays apart
                            // (a hand-back records its own two, see `Op::Hibernate`).
                            if reason != CloseReason::Hibernated
                                && let Some(i) = s.in_flight
                            {
                                self.push_orphan(socket, i, false);
                            }
                            if reason == CloseReason::StaleMetadata {
                                self.fail("StaleMetadata close of a live socket");
                            }
                            if reason == CloseReason::Hibernated {
                                double_persist.remove(&socket);
                            }
                            if reason == CloseReason::ActorStopped
                                && s.state == SocketState::Stopping
                            {
                                self.fail("a hibernatable socket closed on actor stop");
                            }
                        }
                        None => {
                            if reason != CloseReason::StaleMetadata {
                                self.fail(&format!("Closed {reason:?} for a socket not live"));
                            }
                        }
                    }
                    closed.insert(socket);
                    self.closes.push((socket, reason));
                }
                Action::ActorStopped { actor_id } => {
                    if self.actors.remove(&actor_id) != Some(ActorState::Stopping) {
                        self.fail("ActorStopped for an actor that was not stopping");
                    }
                    // Its hibernatable sockets settled silently.
                    let left: Vec<SocketId> = self
                        .sockets
                        .iter()
                        .filter(|(_, s)| s.actor == actor_id)
                        .map(|(id, _)| *id)
                        .collect();
                    for id in left {
                        if self.runner.socket(id).is_some() {
                            self.fail("ActorStopped while one of its sockets is live");
                        }
                        self.sockets.remove(&id);
                    }
                }
            }
        }
        if let Some(id) = double_persist
            .iter()
            .find(|id| self.sockets.contains_key(id))
        {
            self.fail(&format!("two persists in flight for {id:?}"));
        }
    }

    /// Checks a published frame. Returns the socket of a stateless close that refused a socket
    /// (a restore beyond `max_sockets`: its metadata delete follows).
    fn published(&mut self, gateway_id: GatewayId, frame: &[u8]) -> Option<SocketId> {
        let limits = DecodeLimits::default();
        let msg = match self.config.framing {
            Framing::PubSub { version } => {
                match wire::decode_versioned::<ToGateway>(frame, &limits) {
                    Ok((v, _)) if v != version => self.fail("published with the wrong version"),
                    Ok((_, ToGateway::Pong(p))) => {
                        let ping = self.ping.take();
                        if ping != Some((gateway_id, p.request_id, p.ts)) {
                            self.fail(&format!("pong {p:?} to {gateway_id:?} answers no ping"));
                        }
                        return None;
                    }
                    Ok((_, ToGateway::TunnelMessage(m))) => m,
                    Err(e) => self.fail(&format!("published an undecodable frame: {e}")),
                }
            }
            Framing::RunnerSocket => match wire::decode_with::<ToServer>(frame, &limits) {
                Ok(ToServer::TunnelMessage(m)) => m,
                Ok(other) => self.fail(&format!("published {other:?}")),
                Err(e) => self.fail(&format!("published an undecodable frame: {e}")),
            },
        };
        let ToServerTunnelMessage { message_id, kind } = msg;
        if message_id.gateway_id != gateway_id {
            self.fail("published to another gateway than the message names");
        }
        let id = SocketId::new(message_id.gateway_id, message_id.request_id);
        let index = message_id.message_index;
        let replay = self.replay;
        // An open naming an actor this runner does not run is answered statelessly, even when the
        // socket id is live under another actor (as upstream does: the actor lookup comes first).
        let stateless = index == MessageIndex::ZERO
            && matches!(&kind, ToServerTunnelMessageKind::WebSocketClose(c)
                if !c.hibernate && KnownClose::classify(c.code, c.reason.as_deref())
                    == Some(KnownClose::ActorNotFound));
        let live = self.sockets.get_mut(&id).filter(|_| !stateless);
        let Some(s) = live else {
            // Stateless answers: a close at index 0.
            if index != MessageIndex::ZERO
                || !matches!(kind, ToServerTunnelMessageKind::WebSocketClose(ref c) if !c.hibernate)
            {
                self.fail(&format!(
                    "published {kind:?} #{index:?} for a socket not live"
                ));
            }
            let refused = matches!(&kind, ToServerTunnelMessageKind::WebSocketClose(c)
                if KnownClose::classify(c.code, c.reason.as_deref())
                    == Some(KnownClose::ServerError));
            return refused.then_some(id);
        };
        if index != s.next_out && !replay {
            let n = s.next_out;
            self.fail(&format!("outgoing index {index:?}, expected {n:?}"));
        }
        s.next_out = index.next();
        match kind {
            ToServerTunnelMessageKind::WebSocketOpen(o) => {
                if o.can_hibernate != s.hibernatable || s.state == SocketState::Connecting {
                    self.fail("published an open that does not match the accept");
                }
            }
            ToServerTunnelMessageKind::WebSocketMessage(_)
            | ToServerTunnelMessageKind::WebSocketClose(_) => {}
            ToServerTunnelMessageKind::WebSocketMessageAck(a) => {
                if !s.durable.contains(&a.index.get()) {
                    let msg = format!(
                        "acked {:?}, never reported durable (durable: {:?})",
                        a.index, s.durable
                    );
                    self.fail(&msg);
                }
                if !s.jumped && !a.index.is_at_or_before(s.last_delivered) {
                    self.fail("acked past the last delivered index");
                }
                self.acks.push((id, a.index));
            }
            other => self.fail(&format!("published {other:?}")),
        }
        None
    }

    fn expect_quiet(&mut self, what: &str) {
        if let Some(a) = self.runner.poll_action() {
            self.fail(&format!("{what} emitted {a:?}"));
        }
    }

    // -----------------------------------------------------------------------------------------
    // Checks after every operation
    // -----------------------------------------------------------------------------------------

    fn check_all(&mut self) {
        self.check_engine();
        let cfg = self.config.clone();
        let stats = self.runner.stats();
        self.fail_if(
            self.runner.len() > cfg.max_sockets,
            "more sockets than max_sockets",
        );
        self.fail_if(
            u64::try_from(self.runner.len()).ok() != Some(stats.sockets),
            "stats.sockets differs from len()",
        );
        // Sockets of stopping actors settle silently; everything else must be known.
        let ids: Vec<SocketId> = self.sockets.keys().copied().collect();
        for id in ids {
            let info = self.runner.socket(id);
            let Some(s) = self.sockets.get_mut(&id) else {
                continue;
            };
            let Some(info) = info else {
                if s.state == SocketState::Stopping {
                    self.sockets.remove(&id);
                    continue;
                }
                self.fail(&format!("{id:?} vanished without Closed"));
            };
            if self.replay {
                // An open replay may move the indices: re-sync.
                if info.last_delivered != s.last_delivered {
                    s.jumped = true;
                }
                s.last_delivered = info.last_delivered;
                s.next_out = info.next_client_index;
                if info.last_persisted.is_none() {
                    s.durable.clear();
                }
            }
            let m = s.clone();
            if info.state != m.state
                || info.actor_id != m.actor
                || (m.state != SocketState::Connecting && info.hibernatable != m.hibernatable)
                || info.last_delivered != m.last_delivered
                || info.next_client_index != m.next_out
                || info.persist_in_flight != m.in_flight
            {
                self.fail(&format!("{id:?}: runner {info:?} differs from model {m:?}"));
            }
            if info.held > cfg.max_held_messages || info.held_bytes > cfg.max_held_bytes {
                self.fail(&format!(
                    "{id:?}: held {} / {} bytes over the limits",
                    info.held, info.held_bytes
                ));
            }
            if cfg.gap_policy == GapPolicy::Close && info.held > 0 {
                self.fail("messages held under GapPolicy::Close");
            }
            // Only hibernatable sockets validate indices; the others deliver whatever comes.
            let ordered = m.hibernatable && !m.jumped;
            if let Some(p) = info.last_persisted
                && ordered
                && !p.is_at_or_before(info.last_delivered)
            {
                self.fail("persisted past the last delivered index");
            }
            if ordered && !info.last_acked.is_at_or_before(info.last_delivered) {
                self.fail("acked past the last delivered index");
            }
        }
        let mut actors = 0u64;
        for a in 0..ACTORS {
            let name = actor_name(a);
            let info = self.runner.actor(&name);
            if info.map(|i| i.state) != self.actors.get(&name).copied() {
                self.fail(&format!(
                    "{name}: runner {info:?}, model {:?}",
                    self.actors.get(&name)
                ));
            }
            if let Some(i) = info {
                actors += 1;
                if i.queued > cfg.max_queued_per_actor {
                    self.fail("actor queue over the limit");
                }
                if i.queued > 0 && i.state != ActorState::Starting {
                    self.fail("messages queued for an actor that is not starting");
                }
            }
        }
        self.fail_if(stats.actors != actors, "stats.actors differs");
        for s in 0..SOCKETS {
            let id = socket_id(s);
            if self.runner.socket(id).is_some() && !self.sockets.contains_key(&id) {
                self.fail(&format!("{id:?} live in the runner, unknown to the model"));
            }
        }
        if self.punctual
            && let Some(t) = self.runner.poll_timeout()
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

    /// The engine's own invariants.
    fn check_engine(&self) {
        if let Err(e) = self.runner.check_invariants() {
            self.fail(&format!("check_invariants: {e}"));
        }
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "runner_ops: {what}\nat step {} now {:?}\nconfig {:?}\nlast operations:\n{}",
            self.step,
            self.now,
            self.config,
            trace(&self.ops)
        );
    }
}

/// The sockets whose bits are set in `bits` (the top bits repeat one, to exercise duplicates).
fn mask(bits: u8) -> Vec<u8> {
    let mut v: Vec<u8> = (0..SOCKETS).filter(|s| bits & (1 << s) != 0).collect();
    if bits & 0x80 != 0
        && let Some(&first) = v.first()
    {
        v.push(first);
    }
    v
}

fn meta(socket: SocketId, server: MessageIndex, client: MessageIndex) -> PersistedSocket {
    PersistedSocket {
        socket,
        server_index: server,
        client_index: client,
        path: "/ws".into(),
        headers: Headers::new(),
    }
}
