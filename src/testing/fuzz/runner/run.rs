//! Running one operation on the runner as the app, its storage and the gateway would, with
//! the shadow model's expectations for it.

use crate::close::CloseFrame;
use crate::fuzz::{TRACE_LEN, payload};
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
use alloc::collections::{BTreeSet, VecDeque};
use alloc::format;
use alloc::vec::Vec;
use core::time::Duration;

use crate::fuzz::{Clocked, Tick};

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
    pub(super) fn settle(&mut self) {
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
            self.ops
                .push_back((self.step, Op::Clock(Tick::Advance(step))));
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
    pub(super) fn run(&mut self, op: Op) {
        self.begin_op();
        let now = if self.step % 5 == 4 {
            self.now.saturating_sub(Duration::from_millis(3))
        } else {
            self.now
        };
        if !matches!(
            op,
            Op::Clock(_) | Op::PersistDone { .. } | Op::PersistBogus { .. }
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
            Op::ActorStopping { actor } => {
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
                self.check_ping_answered();
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
                self.check_ping_answered();
            }
            Op::Accept { sock, hibernatable } => {
                let id = socket_id(sock);
                let result = self.runner.accept(now, id, hibernatable);
                let state = self.sockets.get(&id).map(|s| s.state);
                self.check_command(
                    result,
                    state,
                    Some(SocketState::Connecting),
                    SocketError::WrongState { socket: id },
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
                    SocketError::WrongState { socket: id },
                    "reject",
                );
                self.drain();
            }
            Op::Send { sock, len } => {
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
            Op::Close { sock } => {
                let id = socket_id(sock);
                let result = self.runner.close(now, id, CloseFrame::new(1000, "done"));
                let state = self.sockets.get(&id).map(|s| s.state);
                self.check_command(
                    result,
                    state,
                    Some(SocketState::Open),
                    SocketError::NotOpen { socket: id },
                    "close",
                );
                self.drain();
            }
            Op::Hibernate { sock } => {
                let id = socket_id(sock);
                let result = self.runner.hibernate(now, id);
                let expected = match self.sockets.get(&id) {
                    None => Err(SocketError::UnknownSocket { socket: id }),
                    Some(s) if s.state != SocketState::Open => {
                        Err(SocketError::NotOpen { socket: id })
                    }
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
                    SocketError::UnexpectedPersist { socket: id }
                } else {
                    SocketError::UnknownSocket { socket: id }
                };
                if result != Err(expected) {
                    self.fail(&format!("a bogus persist result gave {result:?}"));
                }
                self.expect_quiet("a bogus persist result");
            }
            Op::Clock(tick) => tick.run(self),
        }
    }

    /// Mirrors the runner's record of a persist whose socket is gone, and its bound: past
    /// `max_sockets` entries the first stale one (by socket id) is forgotten.
    pub(super) fn push_orphan(&mut self, id: SocketId, index: MessageIndex, hand_back: bool) {
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
    pub(super) fn persist_done(&mut self, now: Timestamp, k: usize, ok: bool) {
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
                Err(SocketError::UnknownSocket { socket: o.socket })
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
                    (false, Err(SocketError::UnexpectedPersist { socket }))
                        if *socket == o.socket => {}
                    _ => self.fail(&format!(
                        "persist result {result:?} (in flight: {in_flight})"
                    )),
                }
            }
            None => {
                // (Results of persists of gone sockets were answered above.)
                if result != Err(SocketError::UnknownSocket { socket: o.socket }) {
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

    /// A socket command succeeds iff the socket is in `want`; otherwise it fails with
    /// `UnknownSocket` (no socket) or `wrong`, and does nothing.
    pub(super) fn check_command(
        &mut self,
        result: Result<(), SocketError>,
        state: Option<SocketState>,
        want: Option<SocketState>,
        wrong: SocketError,
        what: &str,
    ) {
        let expected = match state {
            None => Err(SocketError::UnknownSocket {
                socket: wrong.socket(),
            }),
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
    pub(super) fn timeout(&mut self, at: Timestamp) {
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
}

impl Clocked for Harness {
    fn now_mut(&mut self) -> &mut Timestamp {
        &mut self.now
    }

    fn deadline(&self) -> Option<Timestamp> {
        self.runner.poll_timeout()
    }

    fn timeout(&mut self, at: Timestamp) {
        Harness::timeout(self, at);
    }

    fn late(&mut self) {
        self.punctual = false;
    }
}
