//! Runner connections: handshake and runner ids, ping/pong, disconnects and lost runners.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::gateway::Frame;
use crate::time::Timestamp;
use crate::wire::{
    self, ToClient, ToClientInit, ToClientKvResponse, ToClientPing, ToServer, ToServerInit,
};

use super::{
    Action, ConnCloseReason, ConnId, ConnectError, Control, ReceiveError, RunnerInfo, StopReason,
    TimerKey,
};

#[derive(Debug)]
pub(super) struct Conn {
    pub(super) key: String,
    /// The runner's sequence number once the handshake is done.
    pub(super) runner: Option<u64>,
    pub(super) init_deadline: Timestamp,
    pub(super) next_ping: Timestamp,
    /// When the outstanding ping times out (`MAX`: none outstanding).
    pub(super) pong_deadline: Timestamp,
    /// The deadline in the timer set.
    pub(super) armed: Timestamp,
}

impl Conn {
    #[cfg(any(test, feature = "sim"))]
    pub(super) fn deadline_for_check(&self) -> Timestamp {
        self.deadline()
    }

    fn deadline(&self) -> Timestamp {
        self.init_deadline
            .min(self.next_ping)
            .min(self.pong_deadline)
    }
}

#[derive(Debug)]
pub(super) struct RunnerEntry {
    pub(super) id: String,
    pub(super) key: String,
    pub(super) name: String,
    pub(super) conn: Option<ConnId>,
    pub(super) total_slots: u32,
    /// Slots of the actors placed on it.
    pub(super) actors: BTreeSet<u32>,
    pub(super) draining: bool,
    /// When it is lost (`MAX` while connected).
    pub(super) lost_at: Timestamp,
    /// Stop commands of generations the engine gave up on while they were placed here (a start
    /// or stop timeout), by `(actor slot, generation)`: `(index, frame)`. Resent when the runner
    /// comes back, until it acknowledges them, so an actor the engine counts as sleeping does
    /// not keep running here. One per abandoned generation (the runner may still run any of
    /// them: a later generation's start can be lost with the link), at most
    /// [`MAX_ABANDONED_PER_ACTOR`] per actor.
    pub(super) abandoned: BTreeMap<(u32, u32), (i64, Frame)>,
}

/// Most abandoned generations of one actor whose stops a runner keeps; past it the oldest is
/// dropped. Each costs a start or stop timeout on that runner with no acknowledgement from it,
/// and any acknowledgement of a later generation clears the older ones.
pub(super) const MAX_ABANDONED_PER_ACTOR: usize = 8;

impl RunnerEntry {
    /// Keeps the stop of an abandoned generation of the actor in `slot` until acknowledged.
    pub(super) fn abandon(&mut self, slot: u32, generation: u32, index: i64, frame: Frame) {
        self.abandoned.insert((slot, generation), (index, frame));
        let kept = self.abandoned.range((slot, 0)..=(slot, u32::MAX)).count();
        if kept > MAX_ABANDONED_PER_ACTOR
            && let Some(&oldest) = self
                .abandoned
                .range((slot, 0)..=(slot, u32::MAX))
                .next()
                .map(|(k, _)| k)
        {
            self.abandoned.remove(&oldest);
        }
    }

    /// The runner acknowledged the actor's commands up to `(generation, index)`: the abandoned
    /// stops at or below it are done (an older generation no longer runs there).
    pub(super) fn forget_abandoned(&mut self, slot: u32, generation: u32, index: i64) {
        self.abandoned
            .retain(|&(s, g), &mut (i, _)| s != slot || (g, i) > (generation, index));
    }

    /// Forgets every abandoned stop of the actor in `slot` (it was removed).
    pub(super) fn forget_actor(&mut self, slot: u32) {
        self.abandoned.retain(|&(s, _), _| s != slot);
    }
}

impl Control {
    /// A runner opened a WebSocket; `runner_key` identifies the runner across reconnects (the
    /// `runner_key` of its connect URL). It must send `ToServerInit` within
    /// [`ControlConfig::init_timeout`](super::ControlConfig::init_timeout).
    ///
    /// # Errors
    /// [`ConnectError::AlreadyConnected`], [`ConnectError::TooManyConnections`].
    pub fn runner_connected(
        &mut self,
        now: Timestamp,
        conn: ConnId,
        runner_key: &str,
    ) -> Result<(), ConnectError> {
        let now = self.advance(now);
        if self.conns.contains_key(&conn) {
            return Err(ConnectError::AlreadyConnected { conn });
        }
        if self.conns.len() >= self.config.max_connections {
            return Err(ConnectError::TooManyConnections { conn });
        }
        let deadline = now + self.config.init_timeout;
        self.conns.insert(
            conn,
            Conn {
                key: runner_key.into(),
                runner: None,
                init_deadline: deadline,
                next_ping: Timestamp::MAX,
                pong_deadline: Timestamp::MAX,
                armed: deadline,
            },
        );
        self.timers.insert((deadline, TimerKey::Conn(conn)));
        Ok(())
    }

    /// The runner's WebSocket closed. Its runner keeps its actors for
    /// [`ControlConfig::runner_lost_threshold`](super::ControlConfig::runner_lost_threshold);
    /// commands meanwhile wait for it to reconnect.
    ///
    /// # Errors
    /// [`ReceiveError::UnknownConnection`].
    pub fn runner_disconnected(
        &mut self,
        now: Timestamp,
        conn: ConnId,
    ) -> Result<(), ReceiveError> {
        let now = self.advance(now);
        if !self.conns.contains_key(&conn) {
            return Err(ReceiveError::UnknownConnection { conn });
        }
        self.drop_conn(now, conn);
        self.pump(now);
        Ok(())
    }

    /// A frame from a runner connection: a plain `ToServer` message.
    ///
    /// # Errors
    /// [`ReceiveError::Malformed`] and everything
    /// [`handle_runner_message`](Self::handle_runner_message) returns. Every error means the
    /// frame (or, for a batch of events or acks, the entries named) was dropped; none needs
    /// handling beyond logging.
    pub fn handle_runner_frame(
        &mut self,
        now: Timestamp,
        conn: ConnId,
        bytes: &[u8],
    ) -> Result<(), ReceiveError> {
        match wire::decode_with::<ToServer>(bytes, &self.config.decode_limits) {
            Ok(msg) => self.handle_runner_message(now, conn, msg),
            Err(error) => {
                self.advance(now);
                self.stats.frames_dropped += 1;
                if self.conns.contains_key(&conn) {
                    Err(ReceiveError::Malformed { conn, error })
                } else {
                    Err(ReceiveError::UnknownConnection { conn })
                }
            }
        }
    }

    /// An already-decoded message from a runner connection.
    ///
    /// # Errors
    /// [`ReceiveError::UnknownConnection`], [`ReceiveError::NotInitialized`],
    /// [`ReceiveError::AlreadyInitialized`], [`ReceiveError::TooManyRunners`],
    /// [`ReceiveError::ForeignActor`], [`ReceiveError::FutureGeneration`],
    /// [`ReceiveError::Tunnel`].
    pub fn handle_runner_message(
        &mut self,
        now: Timestamp,
        conn: ConnId,
        msg: ToServer,
    ) -> Result<(), ReceiveError> {
        let now = self.advance(now);
        let result = self.dispatch(now, conn, msg);
        if result.is_err() {
            self.stats.frames_dropped += 1;
        }
        self.pump(now);
        result
    }

    /// Answers a runner's KV request ([`Action::KvRequest`]).
    ///
    /// # Errors
    /// [`ReceiveError::UnknownConnection`] (the connection closed meanwhile).
    pub fn kv_response(
        &mut self,
        now: Timestamp,
        conn: ConnId,
        response: ToClientKvResponse,
    ) -> Result<(), ReceiveError> {
        self.advance(now);
        if !self.conns.contains_key(&conn) {
            return Err(ReceiveError::UnknownConnection { conn });
        }
        self.send(conn, &ToClient::KvResponse(response));
        Ok(())
    }

    /// A snapshot of a runner.
    pub fn runner(&self, runner_id: &str) -> Option<RunnerInfo> {
        self.runners
            .values()
            .find(|r| r.id == runner_id)
            .map(|r| RunnerInfo {
                runner_id: r.id.clone(),
                name: r.name.clone(),
                connected: r.conn.is_some(),
                draining: r.draining,
                total_slots: r.total_slots,
                actors: r.actors.len(),
            })
    }

    fn dispatch(
        &mut self,
        now: Timestamp,
        conn: ConnId,
        msg: ToServer,
    ) -> Result<(), ReceiveError> {
        let Some(state) = self.conns.get(&conn) else {
            return Err(ReceiveError::UnknownConnection { conn });
        };
        let seq = match (state.runner, msg) {
            (None, ToServer::Init(init)) => return self.on_init(now, conn, init),
            (Some(_), ToServer::Init(_)) => return Err(ReceiveError::AlreadyInitialized { conn }),
            (None, other) => {
                return Err(ReceiveError::NotInitialized {
                    conn,
                    message: message_name(&other),
                });
            }
            (Some(seq), msg) => (seq, msg),
        };
        match seq {
            (seq, ToServer::Events(events)) => self.on_events(now, conn, seq, events.0),
            (seq, ToServer::AckCommands(ack)) => {
                self.on_ack_commands(conn, seq, ack.last_command_checkpoints)
            }
            (seq, ToServer::Stopping) => {
                self.on_stopping(now, seq);
                Ok(())
            }
            (_, ToServer::Pong(_)) => {
                if let Some(state) = self.conns.get_mut(&conn) {
                    state.pong_deadline = Timestamp::MAX;
                }
                self.rearm_conn(conn);
                Ok(())
            }
            (_, ToServer::KvRequest(request)) => {
                self.actions.push_back(Action::KvRequest { conn, request });
                Ok(())
            }
            (seq, ToServer::TunnelMessage(msg))
                if self.config.cluster
                    && msg.message_id.gateway_id != self.gateway.gateway_id() =>
            {
                self.forward_to_gateway(seq, msg);
                Ok(())
            }
            (seq, ToServer::TunnelMessage(msg)) => self
                .gateway
                .handle_runner_message(now, crate::gateway::RouteId(seq), msg)
                .map_err(|error| ReceiveError::Tunnel { conn, error }),
            (_, ToServer::Init(_)) => Err(ReceiveError::AlreadyInitialized { conn }),
        }
    }

    /// `ToServerInit`: a known key within its lost threshold resumes its runner (an older
    /// connection of it is evicted); otherwise a new runner id.
    fn on_init(
        &mut self,
        now: Timestamp,
        conn: ConnId,
        init: ToServerInit,
    ) -> Result<(), ReceiveError> {
        let key = self
            .conns
            .get(&conn)
            .map(|c| c.key.clone())
            .unwrap_or_default();
        let (seq, resumed) = if let Some(&seq) = self.keys.get(&key) {
            let old = self.runners.get(&seq).and_then(|r| r.conn);
            if let Some(old) = old.filter(|&old| old != conn) {
                self.close_conn(now, old, ConnCloseReason::Evicted);
            }
            (seq, true)
        } else {
            if self.runners.len() >= self.config.max_runners {
                self.close_conn(now, conn, ConnCloseReason::TooManyRunners);
                return Err(ReceiveError::TooManyRunners { conn });
            }
            let seq = self.next_runner;
            self.next_runner += 1;
            self.runners.insert(
                seq,
                RunnerEntry {
                    id: format!("{:016x}-{seq:08x}", self.epoch),
                    key: key.clone(),
                    name: String::new(),
                    conn: None,
                    total_slots: 0,
                    actors: BTreeSet::new(),
                    draining: false,
                    lost_at: Timestamp::MAX,
                    abandoned: BTreeMap::new(),
                },
            );
            self.keys.insert(key, seq);
            (seq, false)
        };
        let Some(runner) = self.runners.get_mut(&seq) else {
            return Ok(());
        };
        runner.conn = Some(conn);
        runner.name = init.name;
        runner.total_slots = init.total_slots;
        runner.draining = false;
        let lost_at = core::mem::replace(&mut runner.lost_at, Timestamp::MAX);
        let runner_id = runner.id.clone();
        let actors: Vec<u32> = runner.actors.iter().copied().collect();
        self.rearm(TimerKey::Runner(seq), lost_at, Timestamp::MAX);
        if let Some(state) = self.conns.get_mut(&conn) {
            state.runner = Some(seq);
            state.init_deadline = Timestamp::MAX;
            state.next_ping = now + self.config.ping_interval;
        }
        self.rearm_conn(conn);
        self.stats.handshakes += 1;
        let init = ToClientInit {
            runner_id: runner_id.clone(),
            metadata: self.config.protocol_metadata(),
        };
        self.send(conn, &ToClient::Init(init));
        if resumed {
            self.stats.runners_resumed += 1;
            let mut frames = Vec::new();
            for slot in actors {
                if let Some(actor) = self.actor_ref(slot) {
                    frames.extend(actor.commands.iter().map(|c| c.frame.clone()));
                }
            }
            if let Some(runner) = self.runners.get(&seq) {
                frames.extend(runner.abandoned.values().map(|(_, f)| f.clone()));
            }
            self.stats.commands_resent += frames.len() as u64;
            for frame in frames {
                self.send_command(seq, frame);
            }
        }
        self.actions.push_back(Action::RunnerConnected {
            conn,
            runner_id,
            resumed,
        });
        self.place_pending(now);
        Ok(())
    }

    /// `ToServerStopping`: no new actors go there, and its actors are asked to stop.
    fn on_stopping(&mut self, now: Timestamp, seq: u64) {
        let Some(runner) = self.runners.get_mut(&seq) else {
            return;
        };
        runner.draining = true;
        let actors: Vec<u32> = runner.actors.iter().copied().collect();
        for slot in actors {
            self.stop(now, slot);
        }
    }

    /// A connection's handshake, ping or pong deadline.
    pub(super) fn fire_conn(&mut self, now: Timestamp, conn: ConnId) {
        let interval = self.config.ping_interval;
        let timeout = self.config.ping_timeout;
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        state.armed = Timestamp::MAX;
        if state.init_deadline <= now {
            self.close_conn(now, conn, ConnCloseReason::InitTimeout);
            return;
        }
        if state.pong_deadline <= now {
            self.stats.ping_timeouts += 1;
            self.close_conn(now, conn, ConnCloseReason::PingTimeout);
            return;
        }
        if state.next_ping <= now {
            state.next_ping = now + interval;
            if state.pong_deadline == Timestamp::MAX {
                state.pong_deadline = now + timeout;
            }
            let ts = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
            self.send(conn, &ToClient::Ping(ToClientPing { ts }));
        }
        self.rearm_conn(conn);
    }

    /// A runner's lost threshold passed without a connection: its actors stop (their
    /// hibernatable requests hibernate) and its key is forgotten.
    pub(super) fn fire_runner(&mut self, now: Timestamp, seq: u64) {
        let Some(runner) = self.runners.get(&seq) else {
            return;
        };
        if runner.conn.is_some() || runner.lost_at > now {
            return;
        }
        let Some(runner) = self.runners.remove(&seq) else {
            return;
        };
        if self.keys.get(&runner.key) == Some(&seq) {
            self.keys.remove(&runner.key);
        }
        self.stats.runners_lost += 1;
        self.actions.push_back(Action::RunnerLost {
            runner_id: runner.id,
        });
        for slot in runner.actors {
            self.stopped(now, slot, StopReason::RunnerLost);
        }
    }

    /// Tells the caller to close `conn` and forgets it.
    pub(super) fn close_conn(&mut self, now: Timestamp, conn: ConnId, reason: ConnCloseReason) {
        if self.conns.contains_key(&conn) {
            self.actions
                .push_back(Action::CloseConnection { conn, reason });
            self.drop_conn(now, conn);
        }
    }

    /// Forgets `conn`; its runner starts its lost threshold.
    fn drop_conn(&mut self, now: Timestamp, conn: ConnId) {
        let Some(state) = self.conns.remove(&conn) else {
            return;
        };
        self.rearm(TimerKey::Conn(conn), state.armed, Timestamp::MAX);
        let threshold = self.config.runner_lost_threshold;
        if let Some(seq) = state.runner
            && let Some(runner) = self.runners.get_mut(&seq)
            && runner.conn == Some(conn)
        {
            runner.conn = None;
            runner.lost_at = now + threshold;
            let at = runner.lost_at;
            self.rearm(TimerKey::Runner(seq), Timestamp::MAX, at);
        }
    }

    fn rearm_conn(&mut self, conn: ConnId) {
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        let new = state.deadline();
        let old = core::mem::replace(&mut state.armed, new);
        self.rearm(TimerKey::Conn(conn), old, new);
    }

    /// Encodes `msg` for `conn`.
    pub(super) fn send(&mut self, conn: ConnId, msg: &ToClient) {
        self.actions.push_back(Action::Send {
            conn,
            frame: super::OutFrame::owned(wire::encode(msg)),
        });
    }
}

/// The official name of a `ToServer` message.
fn message_name(msg: &ToServer) -> &'static str {
    match msg {
        ToServer::Init(_) => "ToServerInit",
        ToServer::Events(_) => "ToServerEvents",
        ToServer::AckCommands(_) => "ToServerAckCommands",
        ToServer::Stopping => "ToServerStopping",
        ToServer::Pong(_) => "ToServerPong",
        ToServer::KvRequest(_) => "ToServerKvRequest",
        ToServer::TunnelMessage(_) => "ToServerTunnelMessage",
    }
}
