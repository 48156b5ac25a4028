//! Draining the runner's actions against the shadow model, and the checks after every
//! operation.

use crate::close::KnownClose;
use crate::fuzz::EngineHarness;
use crate::index::MessageIndex;
use crate::runner::{Action, ActorState, CloseReason, Framing, GapPolicy, SocketId, SocketState};
use crate::wire::{
    self, DecodeLimits, GatewayId, ToGateway, ToServer, ToServerTunnelMessage,
    ToServerTunnelMessageKind,
};
use alloc::collections::BTreeSet;
use alloc::format;
use alloc::vec::Vec;

use super::{ACTORS, Harness, Outstanding, SOCKETS, Sock, actor_name, socket_id};

/// What one drained batch of actions did to sockets: closed ones (a metadata delete may
/// follow), and ones that got a second persist while one was in flight (allowed only when the
/// socket goes away).
#[derive(Debug, Default)]
struct Batch {
    closed: BTreeSet<SocketId>,
    double_persist: BTreeSet<SocketId>,
}

impl Harness {
    /// Drains and checks the actions against the model; applies them to it.
    pub(super) fn drain(&mut self) {
        let mut batch = Batch::default();
        if self.runner.stats().duplicate_opens != self.duplicate_opens {
            self.replay = true;
        }
        while let Some(action) = self.runner.poll_action() {
            match action {
                Action::Publish { gateway_id, frame } => {
                    if let Some(refused) = self.published(gateway_id, &frame) {
                        batch.closed.insert(refused);
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
                    batch.closed.remove(&socket);
                    self.sockets.insert(socket, Sock::new(actor_id, index));
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
                    batch.closed.remove(&socket);
                    let s = Sock::restored(actor_id, server_index, client);
                    self.sockets.insert(socket, s);
                }
                Action::Message { socket, index, .. } => self.delivered(socket, index),
                Action::Persist {
                    socket,
                    actor_id,
                    server_index,
                    client_index,
                } => {
                    let o = Outstanding {
                        socket,
                        actor: actor_id,
                        server_index,
                        client_index,
                    };
                    self.persist_asked(o, &mut batch);
                }
                Action::DeleteMetadata { socket, actor_id } => {
                    if !batch.closed.contains(&socket) {
                        self.fail("DeleteMetadata for a socket not closed in this batch");
                    }
                    self.storage.remove(&(actor_id, socket));
                }
                Action::Closed { socket, reason } => self.closed(socket, reason, &mut batch),
                Action::ActorStopped { actor_id } => self.actor_stopped(&actor_id),
            }
        }
        if let Some(id) = batch
            .double_persist
            .iter()
            .find(|id| self.sockets.contains_key(id))
        {
            self.fail(&format!("two persists in flight for {id:?}"));
        }
    }

    /// A message delivered to the app: hibernatable sockets deliver every index once, in order;
    /// the others deliver what comes (upstream: no validation) and only record it.
    fn delivered(&mut self, socket: SocketId, index: MessageIndex) {
        let replay = self.replay;
        let Some(s) = self.sockets.get_mut(&socket) else {
            self.fail("Message for a socket that is not live");
        };
        if s.state != SocketState::Open {
            self.fail("Message for a socket that is not open");
        }
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

    /// A persist asked of the app: of an open hibernatable socket, at the indices the model
    /// holds, one at a time.
    fn persist_asked(&mut self, o: Outstanding, batch: &mut Batch) {
        let replay = self.replay;
        let Some(s) = self.sockets.get_mut(&o.socket) else {
            self.fail("Persist for a socket that is not live");
        };
        if !s.hibernatable || s.state == SocketState::Connecting {
            self.fail("Persist for a socket that is not hibernatable and open");
        }
        // The stored outgoing index covers the ack a successful persist will send.
        let next = s
            .next_out
            .wrapping_add(u16::from(s.last_delivered != s.last_acked));
        if !replay && (o.server_index != s.last_delivered || o.client_index != next) {
            let (d, n) = (s.last_delivered, next);
            self.fail(&format!(
                "Persist {:?}/{:?}, model {d:?}/{n:?}",
                o.server_index, o.client_index
            ));
        }
        if o.actor != s.actor {
            self.fail("Persist names the wrong actor");
        }
        if s.in_flight.is_some() {
            batch.double_persist.insert(o.socket);
        }
        s.in_flight = Some(o.server_index);
        self.outstanding.push(o);
    }

    /// A socket's one `Closed`.
    fn closed(&mut self, socket: SocketId, reason: CloseReason, batch: &mut Batch) {
        match self.sockets.remove(&socket) {
            Some(s) => {
                // Closed with a persist in flight: its late result stays apart (a hand-back
                // records its own two, see `Harness::hibernate`).
                if reason != CloseReason::Hibernated
                    && let Some(i) = s.in_flight
                {
                    self.push_orphan(socket, i, false);
                }
                if reason == CloseReason::StaleMetadata {
                    self.fail("StaleMetadata close of a live socket");
                }
                if reason == CloseReason::Hibernated {
                    batch.double_persist.remove(&socket);
                }
                if reason == CloseReason::ActorStopped && s.state == SocketState::Stopping {
                    self.fail("a hibernatable socket closed on actor stop");
                }
            }
            None => {
                if reason != CloseReason::StaleMetadata {
                    self.fail(&format!("Closed {reason:?} for a socket not live"));
                }
            }
        }
        batch.closed.insert(socket);
        self.closes.push((socket, reason));
    }

    /// An actor finished stopping: its hibernatable sockets settled silently.
    fn actor_stopped(&mut self, actor_id: &str) {
        if self.actors.remove(actor_id) != Some(ActorState::Stopping) {
            self.fail("ActorStopped for an actor that was not stopping");
        }
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

    /// Checks a published frame. Returns the socket of a stateless close that refused a socket
    /// (a restore beyond `max_sockets`: its metadata delete follows).
    pub(super) fn published(&mut self, gateway_id: GatewayId, frame: &[u8]) -> Option<SocketId> {
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
                s.last_acked = a.index;
                self.acks.push((id, a.index));
            }
            other => self.fail(&format!("published {other:?}")),
        }
        None
    }

    pub(super) fn expect_quiet(&mut self, what: &str) {
        if let Some(a) = self.runner.poll_action() {
            self.fail(&format!("{what} emitted {a:?}"));
        }
    }

    pub(super) fn check_all(&mut self) {
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
        self.check_timer();
    }

    /// A ping for a socket the model knows was answered with a pong (`published` clears
    /// `ping`). One for another socket is answered with close `ws.socket_not_found` or, if the
    /// runner handed the socket back recently, not at all.
    pub(super) fn check_ping_answered(&mut self) {
        if let Some((gateway_id, request_id, _)) = self.ping.take()
            && self
                .sockets
                .contains_key(&SocketId::new(gateway_id, request_id))
        {
            self.fail("a ping for a live socket was not answered with a pong");
        }
    }

    pub(super) fn fail_if(&self, bad: bool, what: &str) {
        if bad {
            self.fail(what);
        }
    }

    /// The engine's own invariants.
    pub(super) fn check_engine(&self) {
        if let Err(e) = self.runner.check_invariants() {
            self.fail(&format!("check_invariants: {e}"));
        }
    }

    pub(super) fn fail(&self, what: &str) -> ! {
        panic!("{}", self.clock.report("runner_ops", what, &self.config));
    }
}
