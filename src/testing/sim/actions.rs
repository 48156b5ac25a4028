//! What the world does with each engine action: the gateway's client-side actions (through the
//! control engine) and the runner sessions'.

use alloc::format;
use alloc::vec::Vec;

use crate::close::CloseFrame;
use crate::close::KnownClose;
use crate::gateway::{self, GcReason};
use crate::index::MessageIndex;
use crate::runner::{self, SocketId};
use crate::session;
use crate::time::Timestamp;
use crate::wire::{self, RequestId, ToServer, ToServerTunnelMessageKind};

use super::client::ClientState;
use super::event::Ev;
use super::format::{PidFmt, describe_to_engine, gw_reason_name, parse_pid, runner_reason_name};
use super::world::{GATEWAY_ID, Hosted, Stage, World};

impl World {
    /// A client-side action of the gateway (the control engine handles the others).
    #[allow(clippy::too_many_lines)] // one arm per action
    pub(super) fn on_gw_action(&mut self, action: gateway::Action) {
        use gateway::Action as A;
        match action {
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
            A::ClientWritable { request_id } => {
                if let Some(&c) = self.by_req.get(&request_id) {
                    tr!(self, "client{c} ← gw: writable");
                    self.sched(0, Ev::ClientSend { c });
                }
            }
            A::Closed { request_id, reason } => self.gw_closed(request_id, reason),
            other => self.violation(format!(
                "the control engine passed on a gateway action it handles: {other:?}"
            )),
        }
    }

    /// A client open that waited for its actor failed: the client is closed.
    pub(super) fn open_failed(
        &mut self,
        request_id: RequestId,
        reason: &crate::control::OpenFailure,
    ) {
        let Some(&c) = self.by_req.get(&request_id) else {
            self.violation(format!("OpenFailed for unknown request {request_id}"));
            return;
        };
        tr!(self, "engine: open of conn{c} failed: {reason:?}");
        *self
            .oracle
            .closes
            .entry(format!("engine open failed ({reason:?})"))
            .or_insert(0) += 1;
        if self.conns[c].state != ClientState::Opening {
            let state = self.conns[c].state;
            self.violation(format!("OpenFailed for conn{c} in client state {state:?}"));
        }
        self.conns[c].state = ClientState::Closed;
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
        if self.gw().request(request_id).is_some() {
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
        // A runner answers `ws.socket_not_found` only for a socket a fault lost (a crash, a lost
        // close, a failed write): a live connection must not end that way otherwise.
        let not_found = matches!(
            &reason,
            gateway::CloseReason::RunnerClosed(f) if f.known() == Some(KnownClose::SocketNotFound)
        );
        let unexplained_not_found =
            not_found && conn.facts.disturbed.is_none() && conn.facts.orphan_cause.is_none();
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
        if unexplained_not_found {
            self.violation(format!(
                "conn{c} was closed as ws.socket_not_found although no fault touched its path"
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
            .and_then(session::Session::poll_action)
        {
            match action {
                session::Action::Runner(action) => {
                    match &action {
                        runner::Action::Closed { socket, .. } => closed.push(*socket),
                        runner::Action::Open { socket, .. }
                        | runner::Action::Restored { socket, .. } => {
                            closed.retain(|s| s != socket);
                        }
                        _ => {}
                    }
                    self.on_runner_action(r, action);
                }
                session::Action::Send { frame } => self.session_send(r, &frame),
                session::Action::StartActor {
                    actor_id,
                    generation,
                    ..
                } => self.runner_started_actor(r, &actor_id, generation),
                session::Action::ActorStopped {
                    actor_id,
                    generation,
                } => self.runner_actor_stopped(r, &actor_id, generation),
                session::Action::Connected {
                    runner_id, new_id, ..
                } => {
                    tr!(
                        self,
                        "runner{r}: connected as {runner_id} (new id {new_id})"
                    );
                    if new_id {
                        for h in self.runners[r].hosted.values_mut() {
                            *h = Hosted::Orphaned;
                        }
                    }
                }
                session::Action::Lost => {
                    tr!(self, "runner{r}: lost; its actors stop");
                    for h in self.runners[r].hosted.values_mut() {
                        *h = Hosted::Orphaned;
                    }
                }
                other => self.violation(format!("unexpected session action {other:?}")),
            }
        }
        // Invariant 3: no socket left in a runner after its Closed.
        for socket in closed {
            if self.runners[r]
                .tunnel()
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

    /// A frame the session sends to the engine: a runner close is recorded, then it travels.
    fn session_send(&mut self, r: usize, frame: &[u8]) {
        let inc = self.runners[r].inc;
        let mut close_of = None;
        if let Ok(ToServer::TunnelMessage(m)) =
            wire::decode_with::<ToServer>(frame, &wire::DecodeLimits::default())
            && let ToServerTunnelMessageKind::WebSocketClose(close) = &m.kind
            && !close.hibernate
            && let Some(&c) = self.by_req.get(&m.message_id.request_id)
        {
            if m.message_id.gateway_id != GATEWAY_ID {
                self.violation(format!(
                    "runner{r} published to unknown gateway {}",
                    m.message_id.gateway_id
                ));
                return;
            }
            self.conns[c].facts.runner_published.push(CloseFrame {
                code: close.code,
                reason: close.reason.clone(),
            });
            close_of = Some(c);
        }
        tr!(self, "runner{r} → engine: {}", describe_to_engine(frame));
        match self.runners[r].conn {
            Some(conn) => self.send_to_engine(r, inc, conn, frame, close_of),
            None => self.lost_on_closed_link(frame, false),
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
            other => self.violation(format!(
                "the session passed on a tunnel action it handles: {other:?}"
            )),
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
        self.new_session(r, c, socket, false, true);
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
            self.conns[c].facts.runner_closes.push(reason);
        }
    }
}
