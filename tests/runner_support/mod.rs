//! Test driver for `hibernating_ws::runner::Runner`: builds gateway frames, drains and decodes actions.
#![allow(dead_code, unreachable_pub)]

use core::time::Duration;

use hibernating_ws::runner::{
    Action, CloseReason, PersistedSocket, Runner, RunnerConfig, SocketId,
};
use hibernating_ws::wire::{
    self, GatewayId, Headers, HibernatingRequest, MessageId, RequestId, ToClientTunnelMessage,
    ToClientTunnelMessageKind, ToClientWebSocketClose, ToClientWebSocketMessage,
    ToClientWebSocketOpen, ToGateway, ToRunner, ToServerTunnelMessageKind,
};
use hibernating_ws::{CloseFrame, MessageIndex, Timestamp};

pub const ACTOR: &str = "actor-a";

/// A decoded output of the runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// `Action::Open`.
    Open { socket: SocketId, index: u16 },
    /// `Action::Restored`.
    Restored { socket: SocketId, server_index: u16 },
    /// `Action::Message`.
    Msg {
        socket: SocketId,
        index: u16,
        data: Vec<u8>,
    },
    /// `Action::Persist`.
    Persist {
        socket: SocketId,
        server_index: u16,
        client_index: u16,
    },
    /// `Action::DeleteMetadata`.
    Delete { socket: SocketId },
    /// `Action::Closed`.
    Closed {
        socket: SocketId,
        reason: CloseReason,
    },
    /// `Action::ActorStopped`.
    ActorStopped { actor_id: String },
    /// Published `ToServerWebSocketOpen`.
    SendOpen {
        socket: SocketId,
        out: u16,
        can_hibernate: bool,
    },
    /// Published `ToServerWebSocketMessage`.
    SendMsg {
        socket: SocketId,
        out: u16,
        data: Vec<u8>,
    },
    /// Published `ToServerWebSocketMessageAck`.
    Ack {
        socket: SocketId,
        out: u16,
        index: u16,
    },
    /// Published `ToServerWebSocketClose`.
    SendClose {
        socket: SocketId,
        out: u16,
        code: Option<u16>,
        reason: Option<String>,
        hibernate: bool,
    },
    /// Published `ToGatewayPong`.
    Pong {
        gateway_id: GatewayId,
        request_id: RequestId,
        ts: i64,
    },
}

/// `handle_timeout(now)`, then the timer contract: the next deadline is after `now`.
pub fn handle_timeout_checked(runner: &mut Runner, now: Timestamp) {
    runner.handle_timeout(now);
    if let Some(t) = runner.poll_timeout() {
        assert!(
            t > now,
            "poll_timeout {t:?} not after the handled now {now:?}"
        );
    }
}

pub fn sid(g: u32, r: u32) -> SocketId {
    SocketId::new(GatewayId::from_u32(g), RequestId::from_u32(r))
}

pub fn hib(s: SocketId) -> HibernatingRequest {
    s.into()
}

pub fn meta(s: SocketId, server: u16, client: u16) -> PersistedSocket {
    PersistedSocket {
        socket: s,
        server_index: MessageIndex::new(server),
        client_index: MessageIndex::new(client),
        path: "/ws".into(),
        headers: Headers::new(),
    }
}

pub fn tunnel(s: SocketId, index: u16, kind: ToClientTunnelMessageKind) -> ToClientTunnelMessage {
    ToClientTunnelMessage {
        message_id: MessageId {
            gateway_id: s.gateway_id,
            request_id: s.request_id,
            message_index: MessageIndex::new(index),
        },
        kind,
    }
}

pub fn open_kind(actor: &str) -> ToClientTunnelMessageKind {
    ToClientTunnelMessageKind::WebSocketOpen(ToClientWebSocketOpen {
        actor_id: actor.into(),
        path: "/ws".into(),
        headers: Headers::new(),
    })
}

pub fn msg_kind(data: &[u8]) -> ToClientTunnelMessageKind {
    ToClientTunnelMessageKind::WebSocketMessage(ToClientWebSocketMessage {
        data: data.to_vec().into(),
        binary: true,
    })
}

pub fn close_kind(code: Option<u16>, reason: Option<&str>) -> ToClientTunnelMessageKind {
    ToClientTunnelMessageKind::WebSocketClose(ToClientWebSocketClose {
        code,
        reason: reason.map(Into::into),
    })
}

/// A versioned `ToRunner` frame as the gateway publishes it.
pub fn frame(s: SocketId, index: u16, kind: ToClientTunnelMessageKind) -> Vec<u8> {
    wire::encode_versioned(7, &ToRunner::TunnelMessage(tunnel(s, index, kind)))
}

/// Decodes one action into an [`Out`].
pub fn decode(action: Action) -> Out {
    match action {
        Action::Open { socket, index, .. } => Out::Open {
            socket,
            index: index.get(),
        },
        Action::Restored {
            socket,
            server_index,
            ..
        } => Out::Restored {
            socket,
            server_index: server_index.get(),
        },
        Action::Message {
            socket,
            index,
            data,
            ..
        } => Out::Msg {
            socket,
            index: index.get(),
            data: data.to_vec(),
        },
        Action::Persist {
            socket,
            server_index,
            client_index,
            ..
        } => Out::Persist {
            socket,
            server_index: server_index.get(),
            client_index: client_index.get(),
        },
        Action::DeleteMetadata { socket, .. } => Out::Delete { socket },
        Action::Closed { socket, reason } => Out::Closed { socket, reason },
        Action::ActorStopped { actor_id } => Out::ActorStopped { actor_id },
        Action::Publish { gateway_id, frame } => {
            let msg =
                match wire::decode_versioned::<ToGateway>(&frame, &wire::DecodeLimits::default()) {
                    Ok((7, ToGateway::TunnelMessage(m))) => m,
                    Ok((7, ToGateway::Pong(p))) => {
                        return Out::Pong {
                            gateway_id,
                            request_id: p.request_id,
                            ts: p.ts,
                        };
                    }
                    other => panic!("bad published frame: {other:?}"),
                };
            assert_eq!(
                msg.message_id.gateway_id, gateway_id,
                "published to the socket's gateway"
            );
            let socket = SocketId::new(msg.message_id.gateway_id, msg.message_id.request_id);
            let out = msg.message_id.message_index.get();
            match msg.kind {
                ToServerTunnelMessageKind::WebSocketOpen(o) => Out::SendOpen {
                    socket,
                    out,
                    can_hibernate: o.can_hibernate,
                },
                ToServerTunnelMessageKind::WebSocketMessage(m) => Out::SendMsg {
                    socket,
                    out,
                    data: m.data.to_vec(),
                },
                ToServerTunnelMessageKind::WebSocketMessageAck(a) => Out::Ack {
                    socket,
                    out,
                    index: a.index.get(),
                },
                ToServerTunnelMessageKind::WebSocketClose(c) => Out::SendClose {
                    socket,
                    out,
                    code: c.code,
                    reason: c.reason,
                    hibernate: c.hibernate,
                },
                other => panic!("runner published an HTTP kind: {other:?}"),
            }
        }
        other => panic!("unknown action {other:?}"),
    }
}

/// A runner plus a clock.
pub struct Harness {
    pub runner: Runner,
    pub now: Timestamp,
}

impl Out {
    /// `Out::Open` of `socket` at open index `index`.
    pub fn open(socket: SocketId, index: u16) -> Self {
        Self::Open { socket, index }
    }

    /// `Out::Persist` of `server_index` with the next outgoing index `client_index`.
    pub fn persist(socket: SocketId, server_index: u16, client_index: u16) -> Self {
        Self::Persist {
            socket,
            server_index,
            client_index,
        }
    }

    /// `Out::Ack` of `index`, published with outgoing index `out`.
    pub fn ack(socket: SocketId, out: u16, index: u16) -> Self {
        Self::Ack { socket, out, index }
    }

    /// `Out::SendClose`: a close the runner sends for `socket` with outgoing index `out`
    /// (not a hand-back).
    pub fn close(socket: SocketId, out: u16, code: u16, reason: &str) -> Self {
        Self::SendClose {
            socket,
            out,
            code: Some(code),
            reason: Some(reason.into()),
            hibernate: false,
        }
    }

    /// `Out::SendOpen` of a hibernatable socket, with outgoing index `out`.
    pub fn send_open(socket: SocketId, out: u16) -> Self {
        Self::SendOpen {
            socket,
            out,
            can_hibernate: true,
        }
    }

    /// `Out::ActorStopped` of `ACTOR`.
    pub fn actor_stopped() -> Self {
        Self::ActorStopped {
            actor_id: ACTOR.into(),
        }
    }

    /// `Out::Msg`: message `index` delivered to the app.
    pub fn msg(socket: SocketId, index: u16, data: &[u8]) -> Self {
        Self::Msg {
            socket,
            index,
            data: data.to_vec(),
        }
    }
}

impl Harness {
    pub fn new(config: RunnerConfig) -> Self {
        let now = Timestamp::from_secs(100);
        Self {
            runner: Runner::new(config, now).expect("valid config"),
            now,
        }
    }

    pub fn default_config() -> Self {
        Self::new(RunnerConfig::default())
    }

    /// This runner with `ACTOR` started and hibernatable socket `s` opened at index `k` (its
    /// open index persisted).
    #[must_use]
    pub fn with_open_socket(mut self, s: SocketId, k: u16) -> Self {
        self.start_actor();
        self.open(s, k, true);
        self
    }

    /// A default runner with hibernatable socket `sid(g, 1)` open at index 0, and that socket.
    pub fn open_socket(g: u32) -> (Self, SocketId) {
        let s = sid(g, 1);
        (Self::default_config().with_open_socket(s, 0), s)
    }

    /// A runner with `ACTOR` started and sockets `sid(g, 1)` and `sid(g, 2)` open at index 0,
    /// hibernatable as `hibernatable` says.
    pub fn two_open(g: u32, hibernatable: [bool; 2]) -> (Self, SocketId, SocketId) {
        let mut h = Self::started();
        let (a, b) = (sid(g, 1), sid(g, 2));
        h.open(a, 0, hibernatable[0]);
        h.open(b, 0, hibernatable[1]);
        (h, a, b)
    }

    /// Delivers message 1 (`a`) to `s` and lets the debounce pass: its persist is in flight.
    pub fn persist_first(&mut self, s: SocketId) {
        self.msg(s, 1, b"a");
        self.advance(Duration::from_secs(5));
        let _ = self.drain();
    }

    /// Starts `ACTOR` with `s` on the gateway's hibernating list and restores it from metadata
    /// `server`/`client`.
    pub fn restore_socket(&mut self, s: SocketId, server: u16, client: u16) {
        self.runner
            .actor_starting(self.now, ACTOR, vec![hib(s)])
            .expect("start");
        self.runner
            .restore(self.now, ACTOR, vec![meta(s, server, client)])
            .expect("restore");
    }

    /// Drains every action.
    pub fn drain(&mut self) -> Vec<Out> {
        let mut v = Vec::new();
        while let Some(a) = self.runner.poll_action() {
            v.push(decode(a));
        }
        v
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.runner.handle_timeout(self.now);
    }

    /// A default runner with `ACTOR` started.
    pub fn started() -> Self {
        let mut h = Self::default_config();
        h.start_actor();
        h
    }

    /// Feeds the gateway's open of `s` at index `k`: the app is asked to accept or reject it.
    pub fn offer(&mut self, s: SocketId, k: u16) {
        self.feed(s, k, open_kind(ACTOR)).expect("open");
        assert_eq!(self.drain(), vec![Out::open(s, k)]);
    }

    /// Starts `ACTOR` with nothing to restore; drains.
    pub fn start_actor(&mut self) {
        self.runner
            .actor_starting(self.now, ACTOR, Vec::new())
            .expect("start");
        self.runner
            .restore(self.now, ACTOR, Vec::new())
            .expect("restore");
        assert_eq!(self.drain(), vec![]);
    }

    /// Opens and accepts `s` at open index `k`; answers the initial persist if hibernatable.
    pub fn open(&mut self, s: SocketId, k: u16, hibernatable: bool) {
        self.offer(s, k);
        self.runner
            .accept(self.now, s, hibernatable)
            .expect("accept");
        let out = self.drain();
        assert_eq!(
            out[0],
            Out::SendOpen {
                socket: s,
                out: 0,
                can_hibernate: hibernatable
            }
        );
        if hibernatable {
            assert_eq!(
                out[1..],
                [Out::Persist {
                    socket: s,
                    server_index: k,
                    client_index: 1
                }]
            );
            self.runner
                .persisted(self.now, s, MessageIndex::new(k))
                .expect("persisted");
            assert_eq!(self.drain(), vec![], "no ack for the open index");
        } else {
            assert_eq!(out.len(), 1);
        }
    }

    /// Feeds one gateway frame through `handle_frame`.
    pub fn feed(
        &mut self,
        s: SocketId,
        index: u16,
        kind: ToClientTunnelMessageKind,
    ) -> Result<(), hibernating_ws::runner::ReceiveError> {
        self.runner.handle_frame(self.now, &frame(s, index, kind))
    }

    /// [`Harness::msg`] for each of `indices`, in order.
    pub fn msgs(&mut self, s: SocketId, indices: impl IntoIterator<Item = u16>, data: &[u8]) {
        for index in indices {
            self.msg(s, index, data);
        }
    }

    /// Feeds one WebSocket message.
    pub fn msg(&mut self, s: SocketId, index: u16, data: &[u8]) {
        self.feed(s, index, msg_kind(data))
            .expect("message accepted");
    }

    pub fn persisted(&mut self, s: SocketId, i: u16) {
        self.runner
            .persisted(self.now, s, MessageIndex::new(i))
            .expect("persisted");
    }

    /// The runner asks for exactly one write: `server` delivered, `client` the next outgoing index.
    pub fn expect_persist(&mut self, s: SocketId, server: u16, client: u16) {
        assert_eq!(self.drain(), vec![Out::persist(s, server, client)]);
    }

    /// The app reports `index` durable; the runner acks exactly that, with outgoing index `out`.
    pub fn persist_and_expect_ack(&mut self, s: SocketId, index: u16, out: u16) {
        self.persisted(s, index);
        assert_eq!(self.drain(), vec![Out::ack(s, out, index)]);
    }

    pub fn last_delivered(&self, s: SocketId) -> u16 {
        self.runner.socket(s).expect("socket").last_delivered.get()
    }
}

/// The `(code, reason)` of the 1008 `ws.message_index_skip` close.
pub fn skip_close(s: SocketId, out: u16) -> Out {
    Out::close(s, out, 1008, "ws.message_index_skip")
}

/// A gap's end of socket `s`: the 1008 close (outgoing index `out`), `Closed` and the metadata
/// delete.
pub fn skip_closed(s: SocketId, out: u16) -> Vec<Out> {
    vec![
        skip_close(s, out),
        Out::Closed {
            socket: s,
            reason: CloseReason::MessageIndexSkip,
        },
        Out::Delete { socket: s },
    ]
}

/// The indices of the messages delivered among `out`, in order.
pub fn delivered(out: Vec<Out>) -> Vec<u16> {
    out.into_iter()
        .filter_map(|o| match o {
            Out::Msg { index, .. } => Some(index),
            _ => None,
        })
        .collect()
}

pub fn frame_of(code: u16, reason: &str) -> CloseFrame {
    CloseFrame::new(code, reason)
}
