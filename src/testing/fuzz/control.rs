//! [`control_ops`]: a [`Control`] engine, its gateway and several runner [`Session`]s driven
//! through an operation sequence drawn from the bytes, with [`World`], the in-memory harness the
//! scenario and model tests share.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use crate::control::{self, ActorSpec, ConnId, Control, ControlConfig};
use crate::gateway::{self, Gateway, GatewayConfig, OpenRequest};
use crate::runner::{self, PersistedSocket, SocketId};
use crate::session::{self, Session, SessionConfig};
use crate::time::Timestamp;
use crate::wire::{ActorConfig, GatewayId, RequestId};

use super::{Input, MAX_OPS};

/// The gateway id of every [`World`].
pub const WORLD_GATEWAY: GatewayId = GatewayId(*b"ctrl");

/// One runner process: its session, its connection and what its app saw.
#[derive(Debug)]
pub struct RunnerProc {
    /// The runner key it connects with.
    pub key: String,
    /// The session.
    pub session: Session,
    /// Its connection to the engine, while connected.
    pub conn: Option<ConnId>,
    /// Frames the session rejected.
    pub receive_errors: Vec<session::SessionReceiveError>,
}

/// One client WebSocket.
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// The actor it talks to.
    pub actor: String,
    /// Payloads sent (accepted by the engine), in order.
    pub sent: Vec<Vec<u8>>,
    /// The gateway opened it.
    pub opened: bool,
    /// It was closed (gateway `Closed` or `OpenFailed`).
    pub closed: bool,
}

/// An engine with its gateway, runner processes sharing one actor storage, and clients, all in
/// memory; [`pump`](Self::pump) moves every frame and plays every app until all are idle.
#[derive(Debug)]
pub struct World {
    /// The clock.
    pub now: Timestamp,
    /// The engine.
    pub control: Control,
    /// The runner processes.
    pub runners: Vec<RunnerProc>,
    /// The clients by request.
    pub clients: BTreeMap<RequestId, Client>,
    /// Persisted socket metadata (shared: the actors' storage), with the actor it belongs to.
    pub storage: BTreeMap<SocketId, (String, PersistedSocket)>,
    /// Messages the apps received, per socket, in order, across runners.
    pub delivered: BTreeMap<SocketId, Vec<Vec<u8>>>,
    /// Every control action other than `Send`, in order.
    pub log: Vec<control::Action>,
    /// Every session action other than `Send` and the socket-level ones, per runner.
    pub session_log: Vec<(usize, session::Action)>,
    /// Frames the engine rejected.
    pub receive_errors: Vec<control::ReceiveError>,
    next_conn: u64,
}

impl World {
    /// An engine and `runners` runner processes (keys `runner-0`, … ; not connected) of runner
    /// name `default` with `slots` slots each.
    ///
    /// # Panics
    /// If a configuration is invalid.
    #[must_use]
    pub fn new(config: ControlConfig, gateway: GatewayConfig, runners: usize, slots: u32) -> Self {
        let now = Timestamp::from_secs(1_000);
        let gw = Gateway::new(gateway, WORLD_GATEWAY, now).expect("valid gateway config");
        let control = Control::new(config, gw, 7, now).expect("valid control config");
        let runners = (0..runners)
            .map(|i| RunnerProc {
                key: alloc::format!("runner-{i}"),
                session: Session::new(SessionConfig::new("default", slots), now)
                    .expect("valid session config"),
                conn: None,
                receive_errors: Vec::new(),
            })
            .collect();
        Self {
            now,
            control,
            runners,
            clients: BTreeMap::new(),
            storage: BTreeMap::new(),
            delivered: BTreeMap::new(),
            log: Vec::new(),
            session_log: Vec::new(),
            receive_errors: Vec::new(),
            next_conn: 1,
        }
    }

    /// The spec of actor `actor_id` for runner name `default`.
    #[must_use]
    pub fn spec(actor_id: &str) -> ActorSpec {
        ActorSpec {
            runner_name: "default".into(),
            config: ActorConfig {
                name: actor_id.into(),
                key: None,
                create_ts: 0,
                input: None,
            },
        }
    }

    /// Runner `i` opens a connection and sends its init.
    pub fn connect(&mut self, i: usize) {
        let Some(r) = self.runners.get_mut(i) else {
            return;
        };
        if r.conn.is_some() {
            return;
        }
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        if self
            .control
            .runner_connected(self.now, conn, &r.key)
            .is_ok()
        {
            r.conn = Some(conn);
            r.session.connected(self.now);
        }
        self.pump();
    }

    /// Runner `i`'s connection drops (both ends see it).
    pub fn disconnect(&mut self, i: usize) {
        let Some(r) = self.runners.get_mut(i) else {
            return;
        };
        if let Some(conn) = r.conn.take() {
            let _ = self.control.runner_disconnected(self.now, conn);
            r.session.disconnected(self.now);
        }
        self.pump();
    }

    /// A client opens request `id` on `actor`.
    ///
    /// # Errors
    /// The engine's.
    pub fn open(&mut self, id: RequestId, actor: &str) -> Result<(), control::OpenError> {
        let open = OpenRequest::new(actor, "/ws").expect("a path starting with /");
        self.control.open(self.now, id, open)?;
        // A request id may be used again once its request closed: a new conversation.
        self.delivered.remove(&SocketId::new(WORLD_GATEWAY, id));
        self.clients.insert(
            id,
            Client {
                actor: actor.into(),
                ..Client::default()
            },
        );
        self.pump();
        Ok(())
    }

    /// Client `id` sends the next numbered message.
    ///
    /// # Errors
    /// The gateway's.
    pub fn send(&mut self, id: RequestId) -> Result<(), gateway::SendError> {
        let n = self.clients.get(&id).map_or(0, |c| c.sent.len());
        let mut data = id.0.to_vec();
        data.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
        self.control.client_message(self.now, id, &data, true)?;
        if let Some(c) = self.clients.get_mut(&id) {
            c.sent.push(data);
        }
        self.pump();
        Ok(())
    }

    /// The runner hosting `actor` (its session runs it), if any.
    #[must_use]
    pub fn host_of(&self, actor: &str) -> Option<usize> {
        self.runners
            .iter()
            .position(|r| r.session.runner().actor(actor).is_some())
    }

    /// Moves time forward by `d` and fires every timer due, repeatedly, until none is due.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        for _ in 0..64 {
            let mut fired = false;
            if self.control.poll_timeout().is_some_and(|t| t <= self.now) {
                self.control.handle_timeout(self.now);
                fired = true;
            }
            for r in &mut self.runners {
                if r.session.poll_timeout().is_some_and(|t| t <= self.now) {
                    r.session.handle_timeout(self.now);
                    fired = true;
                }
            }
            self.pump();
            if !fired {
                break;
            }
        }
    }

    /// Moves every frame and plays every app until all engines are idle.
    pub fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut idle = true;
            while let Some(action) = self.control.poll_action() {
                idle = false;
                self.on_control(action);
            }
            for i in 0..self.runners.len() {
                while let Some(action) = self
                    .runners
                    .get_mut(i)
                    .and_then(|r| r.session.poll_action())
                {
                    idle = false;
                    self.on_session(i, action);
                }
            }
            if idle {
                return;
            }
        }
    }

    fn on_control(&mut self, action: control::Action) {
        match action {
            control::Action::Send { conn, frame } => {
                let now = self.now;
                if let Some(r) = self.runners.iter_mut().find(|r| r.conn == Some(conn))
                    && let Err(e) = r.session.handle_frame(now, &frame)
                {
                    r.receive_errors.push(e);
                }
            }
            control::Action::CloseConnection { conn, .. } => {
                let now = self.now;
                if let Some(r) = self.runners.iter_mut().find(|r| r.conn == Some(conn)) {
                    r.conn = None;
                    r.session.disconnected(now);
                }
                self.log.push(action);
            }
            control::Action::Gateway(gateway::Action::Opened { request_id, .. }) => {
                if let Some(c) = self.clients.get_mut(&request_id) {
                    c.opened = true;
                }
            }
            control::Action::Gateway(gateway::Action::Closed { request_id, .. })
            | control::Action::OpenFailed { request_id, .. } => {
                if let Some(c) = self.clients.get_mut(&request_id) {
                    c.closed = true;
                }
                self.log.push(action);
            }
            control::Action::Gateway(gateway::Action::SendToClient { .. }) => {}
            other => self.log.push(other),
        }
    }

    fn on_session(&mut self, i: usize, action: session::Action) {
        let now = self.now;
        match action {
            session::Action::Send { frame } => {
                let Some(conn) = self.runners.get(i).and_then(|r| r.conn) else {
                    return;
                };
                if let Err(e) = self.control.handle_runner_frame(now, conn, &frame) {
                    self.receive_errors.push(e);
                }
            }
            session::Action::StartActor { ref actor_id, .. } => {
                let persisted: Vec<PersistedSocket> = self
                    .storage
                    .values()
                    .filter(|(a, _)| a == actor_id)
                    .map(|(_, s)| s.clone())
                    .collect();
                if let Some(r) = self.runners.get_mut(i) {
                    let _ = r.session.restore(now, actor_id, persisted);
                }
                self.session_log.push((i, action));
            }
            session::Action::Runner(ra) => self.on_runner(i, ra),
            other => self.session_log.push((i, other)),
        }
    }

    fn on_runner(&mut self, i: usize, action: runner::Action) {
        let now = self.now;
        let Some(r) = self.runners.get_mut(i) else {
            return;
        };
        match action {
            runner::Action::Open {
                socket,
                actor_id,
                path,
                headers,
                ..
            } => {
                let meta = PersistedSocket {
                    socket,
                    server_index: crate::MessageIndex::default(),
                    client_index: crate::MessageIndex::default(),
                    path,
                    headers,
                };
                self.storage.insert(socket, (actor_id, meta));
                let _ = r.session.runner_mut().accept(now, socket, true);
            }
            runner::Action::Persist {
                socket,
                actor_id,
                server_index,
                client_index,
            } => {
                if let Some((a, meta)) = self.storage.get_mut(&socket) {
                    *a = actor_id;
                    meta.server_index = server_index;
                    meta.client_index = client_index;
                }
                let _ = r.session.runner_mut().persisted(now, socket, server_index);
            }
            runner::Action::DeleteMetadata { socket, .. } => {
                self.storage.remove(&socket);
            }
            runner::Action::Message { socket, data, .. } => {
                self.delivered.entry(socket).or_default().push(data);
            }
            _ => {}
        }
    }

    /// Every client's delivered messages are messages it sent; unless a runner was lost (its
    /// deliveries not yet persisted are delivered again elsewhere, by design), they are also
    /// distinct and in the order sent.
    ///
    /// # Errors
    /// The first client whose deliveries break this.
    pub fn check_delivery(&self) -> Result<(), String> {
        let strict = !self
            .log
            .iter()
            .any(|a| matches!(a, control::Action::RunnerLost { .. }));
        for (id, client) in &self.clients {
            let socket = SocketId::new(WORLD_GATEWAY, *id);
            let Some(got) = self.delivered.get(&socket) else {
                continue;
            };
            let mut seen = BTreeSet::new();
            let mut last = None;
            for data in got {
                let pos = client.sent.iter().position(|s| s == data);
                let Some(pos) = pos else {
                    return Err(alloc::format!(
                        "request {id}: delivered a message never sent"
                    ));
                };
                if strict && (!seen.insert(pos) || last.is_some_and(|l| pos <= l)) {
                    return Err(alloc::format!(
                        "request {id}: message {pos} delivered twice or out of order"
                    ));
                }
                last = Some(pos);
            }
        }
        Ok(())
    }
}

/// Arbitrary bytes drawn into an operation sequence over an engine, two runners (two slots
/// each) and three actors. After every operation: the engine's and the gateway's invariants
/// hold, every frame one side sends the other decodes and is accepted except for garbage the
/// input injected, and every client's deliveries are distinct messages in the order sent. No
/// input may panic the engines.
///
/// # Panics
/// If a property is violated.
#[allow(clippy::too_many_lines)] // one arm per operation reads best as one match
pub fn control_ops(data: &[u8]) {
    let mut input = Input::new(data);
    let config = ControlConfig {
        runner_lost_threshold: Duration::from_millis(u64::from(input.u8()) * 100 + 100),
        ping_timeout: Duration::from_millis(u64::from(input.u8()) * 100 + 100),
        ..ControlConfig::default()
    };
    let mut world = World::new(config, GatewayConfig::default(), 2, 2);
    let actors = ["a", "b", "c"];
    for a in actors {
        let _ = world.control.create_actor(world.now, a, World::spec(a));
    }
    let mut garbage = false;
    let mut trace: Vec<String> = Vec::new();
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        let runner = input.below(2);
        let actor = input.pick(&actors);
        let client = RequestId([0, 0, 0, input.u8() % 4]);
        let op = input.below(12);
        trace.push(alloc::format!(
            "op {op} runner {runner} actor {actor} client {client} at {}",
            world.now
        ));
        let log_len = world.log.len();
        let slog_len = world.session_log.len();
        match op {
            0 => world.connect(runner),
            1 => world.disconnect(runner),
            2 => {
                let _ = world.open(client, actor);
            }
            3 | 4 => {
                let _ = world.send(client);
            }
            5 => {
                let _ = world.control.client_close(world.now, client, None);
                world.pump();
            }
            6 => {
                if let Some(h) = world.host_of(actor) {
                    let now = world.now;
                    let _ = if input.one_in(4) {
                        world.runners[h].session.stop_actor(now, actor)
                    } else {
                        world.runners[h].session.sleep_actor(now, actor)
                    };
                    world.pump();
                }
            }
            7 => {
                let _ = world.control.stop_actor(world.now, actor);
                world.pump();
            }
            8 => {
                let _ = world.control.start_actor(world.now, actor);
                world.pump();
            }
            9 => world.advance(Duration::from_millis(u64::from(input.u16()) % 20_000)),
            10 => {
                if let Some(conn) = world.runners[runner].conn {
                    garbage = true;
                    let bytes = input.bytes(64).to_vec();
                    let _ = world.control.handle_runner_frame(world.now, conn, &bytes);
                    world.pump();
                }
            }
            _ => {
                let _ = world.control.destroy_actor(world.now, actor);
                let _ = world
                    .control
                    .create_actor(world.now, actor, World::spec(actor));
                world.pump();
            }
        }
        for a in world.log.get(log_len..).unwrap_or_default() {
            trace.push(alloc::format!("  engine: {a:?}"));
        }
        for a in world.session_log.get(slog_len..).unwrap_or_default() {
            trace.push(alloc::format!("  session: {a:?}"));
        }
        if let Err(e) = world.control.check_invariants() {
            panic!("invariant violated: {e}\n{}", trace.join("\n"));
        }
        if let Err(e) = world.check_delivery() {
            panic!("delivery violated: {e}\n{}", trace.join("\n"));
        }
        for r in &world.runners {
            assert!(
                r.receive_errors
                    .iter()
                    .all(|e| !matches!(e, session::SessionReceiveError::Malformed(_))),
                "the session rejected an engine frame: {:?}",
                r.receive_errors
            );
        }
        if !garbage {
            assert!(
                world
                    .receive_errors
                    .iter()
                    .all(|e| !matches!(e, control::ReceiveError::Malformed { .. })),
                "the engine rejected a session frame: {:?}",
                world.receive_errors
            );
        }
    }
}
