//! [`runner_ops`]: the runner engine under operation sequences drawn from arbitrary bytes.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use super::{Clock, Input, Tick, duration, payload, run_engine};
use crate::index::MessageIndex;
use crate::runner::{
    ActorState, CloseReason, Framing, GapPolicy, PersistedSocket, Runner, RunnerConfig, SocketId,
    SocketState,
};
use crate::wire::{
    DecodeLimits, GatewayId, Headers, MessageId, RequestId, ToClientRequestChunk,
    ToClientTunnelMessage, ToClientTunnelMessageKind, ToClientWebSocketClose,
    ToClientWebSocketMessage, ToClientWebSocketOpen,
};

mod checks;
mod persist;
mod run;

/// Actors the operations pick from (`a0`, `a1`, `a2`; opens may also name an unknown actor).
const ACTORS: u8 = 3;
/// Sockets the operations pick from: two gateways × three requests.
const SOCKETS: u8 = 6;

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
    /// A clock operation.
    Clock(Tick),
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
    /// The last index acked (the open's or the restored one before any ack).
    last_acked: MessageIndex,
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

impl Sock {
    /// A socket the runner opened: connecting, nothing delivered after `index`.
    fn new(actor: String, index: MessageIndex) -> Self {
        Self {
            actor,
            state: SocketState::Connecting,
            hibernatable: false,
            last_delivered: index,
            last_acked: index,
            next_out: MessageIndex::ZERO,
            in_flight: None,
            durable: BTreeSet::new(),
            jumped: false,
            awaiting_replay: false,
        }
    }

    /// A socket restored from the app's metadata: open, hibernatable, its persisted
    /// `server_index` durable, waiting for the gateway's replay.
    fn restored(actor: String, server_index: MessageIndex, client: MessageIndex) -> Self {
        Self {
            actor,
            state: SocketState::Open,
            hibernatable: true,
            last_delivered: server_index,
            last_acked: server_index,
            next_out: client,
            in_flight: None,
            durable: BTreeSet::from([server_index.get()]),
            jumped: false,
            awaiting_replay: true,
        }
    }
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
    clock: Clock<Op>,
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
}

/// Drives a [`Runner`] through an operation sequence drawn from `data` and checks its properties
/// after every operation. See the [module docs](super).
///
/// # Panics
/// When a property is violated (with the last operations in the message).
pub fn runner_ops(data: &[u8]) {
    run_engine(data, config, Runner::new, |runner, config, clock| Harness {
        runner,
        config,
        clock,
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
    });
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
            k => Op::Clock(Tick::draw(input, k - 23)),
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
                        data: payload(len, sock).into(),
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
