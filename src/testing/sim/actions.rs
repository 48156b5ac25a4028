//! What the world does with each engine action: the gateway's and the runners'.

use alloc::format;
use alloc::vec::Vec;

use crate::close::CloseFrame;
use crate::close::KnownClose;
use crate::gateway::{self, GcReason};
use crate::index::MessageIndex;
use crate::runner::{self, Runner, SocketId};
use crate::time::Timestamp;
use crate::wire::{self, RequestId, ToGateway, ToServerTunnelMessageKind};

use super::client::ClientState;
use super::event::Ev;
use super::format::{
    PidFmt, close_to_runner, describe_to_gateway, describe_to_runner, gw_reason_name, parse_pid,
    runner_reason_name,
};
use super::orchestrator::ActorPhase;
#[cfg(test)]
use super::world::Sabotage;
use super::world::{GATEWAY_ID, Stage, World};

impl World {
    pub(super) fn drain_gw(&mut self) {
        while let Some(action) = self.gw.poll_action() {
            self.on_gw_action(action);
        }
    }

    #[allow(clippy::too_many_lines)] // one arm per action
    pub(super) fn on_gw_action(&mut self, action: gateway::Action) {
        use gateway::Action as A;
        match action {
            A::Publish { route, frame, .. } => {
                let r = usize::try_from(route.0 >> 32).unwrap_or(usize::MAX);
                let inc = u32::try_from(route.0 & 0xffff_ffff).unwrap_or(u32::MAX);
                if r >= self.runners.len() {
                    self.violation(format!("gateway published to unknown route {route:?}"));
                    return;
                }
                tr!(self, "gw → runner{r}.{inc}: {}", describe_to_runner(&frame));
                let close_of =
                    close_to_runner(&frame).and_then(|req| self.by_req.get(&req).copied());
                self.send_to_runner(r, inc, &frame, close_of);
            }
            A::SendToClient {
                request_id,
                data,
                binary,
            } => {
                let Some(&c) = self.by_req.get(&request_id) else {
                    self.violation(format!("SendToClient for unknown request {request_id}"));
                    return;
                };
                let pid = parse_pid(&data, binary);
                tr!(self, "client{c} ← gw: msg {}", PidFmt(pid));
                match pid {
                    Some(pid) if self.conns[c].facts.app_sent.contains(&pid) => {
                        self.count("client_received");
                    }
                    _ => self.violation(format!(
                        "client{c} received a message its app never sent on this connection: {}",
                        PidFmt(pid)
                    )),
                }
            }
            A::CloseClient { request_id, frame } => {
                if let Some(&c) = self.by_req.get(&request_id) {
                    tr!(self, "client{c} ← gw: close {frame:?}");
                    if self.conns[c].facts.client_got.is_some() {
                        self.violation(format!("client{c} got two close frames"));
                    }
                    self.conns[c].facts.client_got = Some(frame);
                }
            }
            A::Opened {
                request_id,
                hibernatable,
            } => {
                let Some(&c) = self.by_req.get(&request_id) else {
                    return;
                };
                tr!(self, "gw: opened conn{c} hibernatable={hibernatable}");
                let conn = &mut self.conns[c];
                if conn.state != ClientState::Opening {
                    let state = conn.state;
                    self.violation(format!("Opened for conn{c} in client state {state:?}"));
                    return;
                }
                conn.state = ClientState::Open;
                conn.hibernatable = Some(hibernatable);
                let gap = self.rng.range(0, self.p.send_gap_us);
                self.sched(gap, Ev::ClientSend { c });
                if self.rng.chance(self.p.client_close_ppm) {
                    let at = self.rng.range(0, self.p.chaos_us);
                    self.sched(at, Ev::ClientClose { c });
                }
            }
            A::Hibernated { request_id } => {
                tr!(self, "gw: hibernated [{request_id}]");
                self.count("hibernations");
                if let Some(&c) = self.by_req.get(&request_id) {
                    self.conns[c].gw_hibernating = true;
                }
            }
            A::RequestWake {
                request_id,
                actor_id,
            } => {
                tr!(self, "gw: request wake [{request_id}] {actor_id}");
                #[cfg(test)]
                if self.sabotage == Some(Sabotage::IgnoreWakes) {
                    return;
                }
                if let Some(&c) = self.by_req.get(&request_id) {
                    self.conns[c].wake_requested = true;
                    self.want_wake(c);
                }
            }
            A::UpsertHibernatingRecord { request_id, .. } => {
                self.record_op(request_id, true);
            }
            A::DeleteHibernatingRecord { request_id, .. } => {
                self.record_op(request_id, false);
            }
            A::ClientWritable { request_id } => {
                if let Some(&c) = self.by_req.get(&request_id) {
                    tr!(self, "client{c} ← gw: writable");
                    self.sched(0, Ev::ClientSend { c });
                }
            }
            A::Closed { request_id, reason } => self.gw_closed(request_id, reason),
        }
    }

    pub(super) fn gw_closed(&mut self, request_id: RequestId, reason: gateway::CloseReason) {
        let Some(&c) = self.by_req.get(&request_id) else {
            self.violation(format!("Closed for unknown request {request_id}"));
            return;
        };
        tr!(self, "gw: closed conn{c}: {reason:?}");
        *self
            .oracle
            .closes
            .entry(format!("gateway {}", gw_reason_name(&reason)))
            .or_insert(0) += 1;
        if self.stage != Stage::Chaos {
            *self
                .oracle
                .closes
                .entry(format!("heal: gateway {}", gw_reason_name(&reason)))
                .or_insert(0) += 1;
        }
        if self.gw.request(request_id).is_some() {
            self.violation(format!(
                "conn{c}: request still in the gateway after Closed"
            ));
        }
        let conn = &mut self.conns[c];
        if conn.facts.gw_close.is_some() {
            self.violation(format!("conn{c}: two gateway Closed"));
            return;
        }
        conn.state = ClientState::Closed;
        conn.blocked = None;
        if conn.gw_hibernating {
            conn.facts
                .orphan_cause
                .get_or_insert("closed while hibernating (no close sent)");
        }
        // The runner's close this one echoes must exist (mapped through the close frame).
        let echoed = match &reason {
            gateway::CloseReason::RunnerClosed(f) | gateway::CloseReason::ClosedBeforeOpen(f) => {
                Some(f.clone())
            }
            _ => None,
        };
        let timeout = matches!(
            reason,
            gateway::CloseReason::PingTimeout
                | gateway::CloseReason::OpenTimeout
                | gateway::CloseReason::Collected(_)
        );
        // An ack timeout needs a lasting fault, or a transient one after the oldest unacked
        // message was last sent (accepted, or replayed by a wake).
        let ack_unexplained = match &reason {
            gateway::CloseReason::Collected(GcReason::AckTimeout { first, .. }) => {
                let sent = conn
                    .facts
                    .accepted
                    .iter()
                    .rposition(|(i, _)| i == first)
                    .and_then(|pos| conn.facts.accepted_at.get(pos).copied())
                    .unwrap_or(Timestamp::ZERO)
                    .max(conn.facts.last_wake_at);
                conn.facts.lasting.is_none()
                    && conn.facts.orphan_cause.is_none()
                    && conn.facts.last_transient_at.is_none_or(|t| t < sent)
            }
            // A wake or the record refresh does not travel the tunnel: only a lasting fault
            // (crash, clock jump, failed upsert) explains missing it.
            gateway::CloseReason::Collected(
                GcReason::WakeTimeout | GcReason::HibernationTimeout,
            ) => conn.facts.lasting.is_none(),
            _ => false,
        };
        conn.facts.gw_close = Some(reason);
        let undisturbed = conn.facts.disturbed.is_none() || ack_unexplained;
        if let Some(f) = echoed
            && !conn.facts.runner_published.contains(&f)
        {
            self.violation(format!(
                "conn{c}: gateway reports a runner close {f:?} no runner published"
            ));
        }
        if timeout && undisturbed {
            self.violation(format!(
                "liveness: conn{c} was collected by a timeout although no fault touched its path"
            ));
        }
    }

    pub(super) fn drain_runner(&mut self, r: usize) {
        // Sockets closed in this batch; one re-announced later in the batch (a queued stale open
        // processed after the restore closed it) is a new socket.
        let mut closed: Vec<SocketId> = Vec::new();
        while let Some(action) = self.runners[r]
            .engine
            .as_mut()
            .and_then(Runner::poll_action)
        {
            match &action {
                runner::Action::Closed { socket, .. } => closed.push(*socket),
                runner::Action::Open { socket, .. } | runner::Action::Restored { socket, .. } => {
                    closed.retain(|s| s != socket);
                }
                _ => {}
            }
            self.on_runner_action(r, action);
        }
        // Invariant 3: no socket left in a runner after its Closed.
        for socket in closed {
            if self.runners[r]
                .engine
                .as_ref()
                .and_then(|e| e.socket(socket))
                .is_some()
            {
                self.violation(format!(
                    "socket {} still in runner{r} after its Closed",
                    socket.request_id
                ));
            }
        }
    }

    pub(super) fn conn_of(&mut self, socket: SocketId) -> Option<usize> {
        let c = self.by_req.get(&socket.request_id).copied();
        if c.is_none() || socket.gateway_id != GATEWAY_ID {
            self.violation(format!(
                "runner action for a socket no client opened: {socket:?}"
            ));
            return None;
        }
        c
    }

    pub(super) fn on_runner_action(&mut self, r: usize, action: runner::Action) {
        use runner::Action as A;
        let inc = self.runners[r].inc;
        match action {
            A::Publish { gateway_id, frame } => {
                if gateway_id != GATEWAY_ID {
                    self.violation(format!(
                        "runner{r} published to unknown gateway {gateway_id}"
                    ));
                    return;
                }
                let mut close_of = None;
                if let Ok((_, ToGateway::TunnelMessage(m))) =
                    wire::decode_versioned::<ToGateway>(&frame, &wire::DecodeLimits::default())
                    && let ToServerTunnelMessageKind::WebSocketClose(close) = &m.kind
                    && !close.hibernate
                    && let Some(&c) = self.by_req.get(&m.message_id.request_id)
                {
                    self.conns[c].facts.runner_published.push(CloseFrame {
                        code: close.code,
                        reason: close.reason.clone(),
                    });
                    close_of = Some(c);
                }
                tr!(self, "runner{r} → gw: {}", describe_to_gateway(&frame));
                self.send_to_gateway(r, inc, &frame, close_of);
            }
            A::Open { socket, index, .. } => self.runner_opened(r, inc, socket, index),
            A::Restored {
                socket,
                actor_id,
                server_index,
            } => self.runner_restored(r, socket, &actor_id, server_index),
            A::Message {
                socket,
                index,
                data,
                binary,
            } => self.app_message(r, socket, index, &data, binary),
            A::Persist {
                socket,
                actor_id,
                server_index,
                client_index,
            } => self.app_persist(r, socket, &actor_id, server_index, client_index),
            A::DeleteMetadata { socket, actor_id } => {
                let Some(a) = self.actor_index(&actor_id) else {
                    return;
                };
                let at = self.storage_time(a);
                tr!(self, "runner{r}: delete meta [{}]", socket.request_id);
                self.sched_at(at, Ev::MetaDelete { a, socket });
            }
            A::Closed { socket, reason } => self.runner_closed(r, socket, reason),
            A::ActorStopped { actor_id } => self.runner_actor_stopped(r, inc, &actor_id),
        }
    }

    /// The runner announced a socket: a new one, or one recreated by a stale duplicated open.
    fn runner_opened(&mut self, r: usize, inc: u32, socket: SocketId, index: MessageIndex) {
        let Some(c) = self.conn_of(socket) else {
            return;
        };
        // A second open of the connection is a copy of its first (the network duplicated
        // it). If the gateway already closed the request, the socket it creates is a
        // zombie nobody will talk to (its commits are kept apart). If the request is live
        // (the runner's close of the first socket was lost), it is the gateway's peer
        // now and continues the connection.
        let reopen = self.conns[c].ever_opened;
        let zombie = reopen && self.conns[c].facts.gw_close.is_some();
        tr!(
            self,
            "runner{r}: open conn{c} index {}{}",
            index.get(),
            if zombie {
                " (zombie: stale open)"
            } else if reopen {
                " (reopened by a stale open)"
            } else {
                ""
            }
        );
        if reopen {
            self.count(if zombie {
                "zombie_sockets"
            } else {
                "reopened_sockets"
            });
            self.conns[c].facts.orphan_cause = Some("socket recreated by a stale open");
        } else if index != MessageIndex::ZERO {
            self.violation(format!(
                "conn{c}: open announced with index {}",
                index.get()
            ));
        }
        self.conns[c].ever_opened = true;
        self.new_session(r, c, socket, zombie, false);
        let d = self.rng.range(0, self.p.app_delay_max_us);
        self.sched(d, Ev::AppDecide { r, inc, socket });
    }

    /// The runner restored a hibernated socket: storage and the committed log must agree.
    fn runner_restored(
        &mut self,
        r: usize,
        socket: SocketId,
        actor_id: &str,
        server_index: MessageIndex,
    ) {
        let Some(c) = self.conn_of(socket) else {
            return;
        };
        tr!(
            self,
            "runner{r}: restored conn{c} at {}",
            server_index.get()
        );
        let a = self.conns[c].actor;
        if self.actors[a].id != actor_id {
            self.violation(format!("conn{c} restored under {actor_id}"));
        }
        let stored = self.actors[a].meta.get(&socket).map(|m| m.server_index);
        if stored != Some(server_index) {
            self.violation(format!(
                "conn{c}: restored at {} but storage holds {stored:?}",
                server_index.get()
            ));
        }
        let log_end = self.conns[c]
            .committed
            .last()
            .map_or(MessageIndex::ZERO, |e| e.0);
        if log_end != server_index {
            self.violation(format!(
                "conn{c}: restored at {} but the committed log ends at {}",
                server_index.get(),
                log_end.get()
            ));
        }
        self.conns[c].ever_opened = true;
        self.conns[c].handed_back_on = None;
        self.new_session(r, c, socket, false, true);
    }

    /// The runner finished an actor's stop: the app's memory for it is gone.
    fn runner_actor_stopped(&mut self, r: usize, inc: u32, actor_id: &str) {
        let Some(a) = self.actor_index(actor_id) else {
            return;
        };
        tr!(self, "runner{r}: actor {actor_id} stopped");
        if self.actors[a].phase != ActorPhase::Stopping(r, inc) {
            let phase = self.actors[a].phase;
            self.violation(format!(
                "{actor_id} stopped on runner{r} in phase {phase:?}"
            ));
        }
        // The app's memory for the actor is gone.
        let slot = &mut self.runners[r];
        slot.dead_apps.remove(&a);
        let ended: Vec<SocketId> = slot
            .sessions
            .iter()
            .filter(|(_, s)| self.conns[s.c].actor == a)
            .map(|(id, _)| *id)
            .collect();
        for id in ended {
            self.end_session(r, id);
        }
        let d = self.rng.range(0, self.p.signal_max_us);
        self.sched(d, Ev::StoppedSignal { a, r, inc });
    }

    pub(super) fn runner_closed(
        &mut self,
        r: usize,
        socket: SocketId,
        reason: runner::CloseReason,
    ) {
        let Some(c) = self.conn_of(socket) else {
            return;
        };
        tr!(self, "runner{r}: closed conn{c}: {reason:?}");
        *self
            .oracle
            .closes
            .entry(format!("runner {}", runner_reason_name(&reason)))
            .or_insert(0) += 1;
        let zombie = self.runners[r]
            .sessions
            .get(&socket)
            .is_some_and(|s| s.zombie);
        self.end_session(r, socket);
        if let runner::CloseReason::GatewayClosed(f) = &reason {
            // The runner echoes the gateway's close: the gateway must have closed the request
            // with a reason whose runner frame is exactly this one.
            let expected = self.conns[c]
                .facts
                .gw_close
                .as_ref()
                .and_then(gateway::CloseReason::runner_frame);
            // Or the gateway had closed the request already and answered a later message of
            // the socket with `ws.request_not_found` (its own close was lost or is in flight).
            let late = f.known() == Some(KnownClose::RequestNotFound)
                && self.conns[c].facts.gw_close.is_some();
            if !late && expected.as_ref() != Some(f) {
                let gw = self.conns[c].facts.gw_close.clone();
                self.violation(format!(
                    "conn{c}: runner reports gateway close {f:?}, gateway closed with {gw:?}"
                ));
            }
        }
        if reason == runner::CloseReason::MessageIndexSkip
            && self.conns[c].facts.disturbed.is_none()
        {
            self.violation(format!(
                "conn{c}: a gap in the gateway's indices although no frame of it was lost, reordered or duplicated"
            ));
        }
        if !zombie {
            if reason == runner::CloseReason::Hibernated {
                self.conns[c].handed_back_on = Some((r, self.runners[r].inc));
            }
            self.conns[c].facts.runner_closes.push(reason);
        }
    }
}
