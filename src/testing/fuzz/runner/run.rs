//! Running one operation on the runner as the app, its storage and the gateway would, with
//! the shadow model's expectations for it.

use crate::close::CloseFrame;
use crate::fuzz::{EngineHarness, payload};
use crate::index::MessageIndex;
use crate::runner::{
    ActorError, ActorState, CloseReason, Framing, GapPolicy, PersistedSocket, ReceiveError,
    SendError, SocketError, SocketId, SocketState,
};
use crate::time::Timestamp;
use crate::wire::{
    self, HibernatingRequest, ToClient, ToClientTunnelMessage, ToClientTunnelMessageKind, ToRunner,
    ToRunnerPing,
};
use alloc::collections::BTreeSet;
use alloc::format;
use alloc::vec::Vec;
use core::time::Duration;

use super::{Harness, Op, Path, Sock, Verdict, actor_name, socket_id};

impl Harness {
    /// Resets what one operation observes.
    pub(super) fn begin_op(&mut self) {
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
    fn settle_all(&mut self) {
        let c = &self.config;
        let timers = [
            c.persist_interval,
            c.persist_retry_max,
            c.gap_timeout,
            c.reack_interval,
        ];
        let Some(step) = self.clock.settle_step(timers) else {
            return;
        };
        for _ in 0..8 {
            while !self.outstanding.is_empty() {
                self.begin_op();
                self.persist_done(self.clock.now, 0, true);
                self.check_all();
            }
            self.begin_op();
            self.settle_tick(step);
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

    /// Runs one operation and checks what belongs to it.
    fn run_op(&mut self, op: Op) {
        self.begin_op();
        let now = self.clock.stamp(Duration::from_millis(3));
        if !matches!(
            op,
            Op::Clock(_) | Op::PersistDone { .. } | Op::PersistBogus { .. }
        ) {
            // Every other operation gives `now` to the engine (the persist results do when they
            // call it).
            self.clock.seen = self.clock.seen.max(now);
        }
        match op {
            Op::ActorStarting { actor, hibernating } => {
                self.actor_starting(now, actor, &hibernating);
            }
            Op::Restore { actor, persisted } => self.restore(now, actor, persisted),
            Op::ActorStopping { actor } => self.actor_stopping(now, actor),
            Op::Gateway { msg, path } => self.gateway_input(now, msg, path),
            Op::Ping { sock, ts, version } => self.ping(now, sock, ts, version),
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
                self.check_ping_answered();
            }
            Op::Accept { sock, hibernatable } => self.accept(now, sock, hibernatable),
            Op::Reject { sock } => self.end_socket(now, sock, false),
            Op::Send { sock, len } => self.send(now, sock, len),
            Op::Close { sock } => self.end_socket(now, sock, true),
            Op::Hibernate { sock } => self.hibernate(now, sock),
            Op::PersistDone { k, ok } => self.persist_done(now, k, ok),
            Op::PersistBogus { sock, index, ok } => self.persist_bogus(now, sock, index, ok),
            Op::Clock(tick) => tick.run(self),
        }
    }

    /// `Runner::actor_starting`: refused while the actor starts, runs or stops.
    fn actor_starting(&mut self, now: Timestamp, actor: u8, hibernating: &[u8]) {
        let name = actor_name(actor);
        let list: Vec<HibernatingRequest> =
            hibernating.iter().map(|&s| socket_id(s).into()).collect();
        let mut ids: Vec<SocketId> = Vec::new();
        for &s in hibernating {
            if !ids.contains(&socket_id(s)) {
                ids.push(socket_id(s));
            }
        }
        let result = self.runner.actor_starting(now, &name, list);
        let expected = match self.actors.get(&name) {
            None => Ok(()),
            Some(ActorState::Stopping) => Err(ActorError::Stopping {
                actor_id: name.clone(),
            }),
            Some(_) => Err(ActorError::AlreadyStarting {
                actor_id: name.clone(),
            }),
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

    /// `Runner::restore`: the verdicts the model computes, for a starting actor only.
    fn restore(&mut self, now: Timestamp, actor: u8, persisted: Vec<PersistedSocket>) {
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
            (None, Err(ActorError::NotStarting { actor_id }))
            | (
                Some(ActorState::Running | ActorState::Stopping),
                Err(ActorError::AlreadyRestored { actor_id }),
            ) if *actor_id == name => {
                self.expect_quiet("a refused restore");
            }
            (state, result) => self.fail(&format!("restore of {state:?}: {result:?}")),
        }
        self.drain();
        self.restoring.clear();
    }

    /// `Runner::actor_stopping`: its open hibernatable sockets stop with it.
    fn actor_stopping(&mut self, now: Timestamp, actor: u8) {
        let name = actor_name(actor);
        let result = self.runner.actor_stopping(now, &name);
        let expected = match self.actors.get(&name) {
            None => Err(ActorError::UnknownActor {
                actor_id: name.clone(),
            }),
            Some(ActorState::Stopping) => Err(ActorError::Stopping {
                actor_id: name.clone(),
            }),
            Some(_) => Ok(()),
        };
        if result != expected {
            self.fail(&format!("actor_stopping: {result:?}"));
        }
        if result.is_err() {
            self.expect_quiet("a refused actor_stopping");
            return;
        }
        self.actors.insert(name.clone(), ActorState::Stopping);
        for s in self.sockets.values_mut() {
            if s.actor == name && s.state == SocketState::Open && s.hibernatable {
                s.state = SocketState::Stopping;
            }
        }
        self.drain();
    }

    /// A gateway → runner tunnel message: a message to an open hibernatable socket meets the
    /// model's verdict (deliver, duplicate, gap).
    fn gateway_input(&mut self, now: Timestamp, msg: ToClientTunnelMessage, path: Path) {
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

    /// A gateway ping: under pub/sub framing it is accepted and answered.
    fn ping(&mut self, now: Timestamp, sock: u8, ts: i64, version: u16) {
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
        self.check_ping_answered();
    }

    /// `Runner::accept`: only a connecting socket opens.
    fn accept(&mut self, now: Timestamp, sock: u8, hibernatable: bool) {
        let id = socket_id(sock);
        let result = self.runner.accept(now, id, hibernatable);
        let wrong = SocketError::WrongState { socket: id };
        self.socket_command(result, id, SocketState::Connecting, wrong, "accept");
        if result.is_ok()
            && let Some(s) = self.sockets.get_mut(&id)
        {
            s.state = SocketState::Open;
            s.hibernatable = hibernatable;
        }
        self.drain();
    }

    /// `Runner::send`: an open socket takes its next outgoing index, unless the message is too
    /// large.
    fn send(&mut self, now: Timestamp, sock: u8, len: usize) {
        let id = socket_id(sock);
        let result = self.runner.send(now, id, &payload(len, 3), true);
        let expected = match self.sockets.get(&id).map(|s| s.state) {
            None => Err(SendError::UnknownSocket { socket: id }),
            Some(SocketState::Open) if len > self.config.max_message_size => {
                Err(SendError::MessageTooLarge {
                    socket: id,
                    size: len,
                    max: self.config.max_message_size,
                })
            }
            Some(SocketState::Open) => Ok(()),
            Some(_) => Err(SendError::NotOpen { socket: id }),
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

    /// `Runner::hibernate`: an open hibernatable socket is handed back; the runner keeps the
    /// results of its persists apart from any newer socket with its id.
    fn hibernate(&mut self, now: Timestamp, sock: u8) {
        let id = socket_id(sock);
        let result = self.runner.hibernate(now, id);
        let expected = match self.sockets.get(&id) {
            None => Err(SocketError::UnknownSocket { socket: id }),
            Some(s) if s.state != SocketState::Open => Err(SocketError::NotOpen { socket: id }),
            Some(s) if !s.hibernatable => Err(SocketError::NotHibernatable { socket: id }),
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
            // The persist that was in flight, then the hand-back's own.
            if let Some(earlier) = earlier {
                self.push_orphan(id, earlier, false);
            }
            self.push_orphan(id, index, true);
        }
    }

    /// The restore verdicts, computed from the model: `[restored, meta not found, stale,
    /// skipped, socket limit, replayed]`.
    pub(super) fn expected_restore(&self, name: &str, persisted: &[PersistedSocket]) -> [usize; 6] {
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
    pub(super) fn expected_verdict(
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

    pub(super) fn check_verdict(&self, id: SocketId, r: MessageIndex, verdict: Verdict) {
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

    /// `close` (`close`: an open socket) or `reject` (a connecting one), checked by
    /// [`Self::socket_command`].
    fn end_socket(&mut self, now: Timestamp, sock: u8, close: bool) {
        let id = socket_id(sock);
        let (result, want, wrong, what) = if close {
            let result = self.runner.close(now, id, CloseFrame::new(1000, "done"));
            let wrong = SocketError::NotOpen { socket: id };
            (result, SocketState::Open, wrong, "close")
        } else {
            let result = self.runner.reject(now, id, CloseFrame::new(4001, "no"));
            let wrong = SocketError::WrongState { socket: id };
            (result, SocketState::Connecting, wrong, "reject")
        };
        self.socket_command(result, id, want, wrong, what);
        self.drain();
    }

    /// A socket command succeeds iff the socket is in state `want`; otherwise it fails with
    /// `UnknownSocket` (no socket) or `wrong`, and does nothing.
    fn socket_command(
        &mut self,
        result: Result<(), SocketError>,
        id: SocketId,
        want: SocketState,
        wrong: SocketError,
        what: &str,
    ) {
        let expected = match self.sockets.get(&id).map(|s| s.state) {
            None => Err(SocketError::UnknownSocket { socket: id }),
            Some(s) if s == want => Ok(()),
            Some(_) => Err(wrong),
        };
        if result != expected {
            self.fail(&format!("{what}: {result:?}, expected {expected:?}"));
        }
        if result.is_err() {
            self.expect_quiet(what);
        }
    }
}

crate::fuzz::engine_harness!(Harness, Op, runner);
