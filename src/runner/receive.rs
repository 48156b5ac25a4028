//! The receive path: frames from the gateway, routed to a live socket, a starting actor's queue
//! or away; duplicates, gaps and held messages; in-order delivery; the gateway's close.

use crate::close::{CloseFrame, KnownClose};
use bytes::Bytes;

use crate::index::MessageIndex;
use crate::time::Timestamp;
use crate::wire::{
    self, MessageId, Received, ToClient, ToClientTunnelMessage, ToClientTunnelMessageKind,
    ToClientWebSocketOpen, ToGateway, ToGatewayPong, ToRunner, ToServerTunnelMessageKind,
    ToServerWebSocketOpen,
};

use super::outbox::{close_kind, publish_on, send_ack};
use super::socket::{self, Phase, Socket, len_u64};
use super::table::slot_mut;
use super::timer::TimerKind;
use super::{Action, ActorState, CloseReason, Framing, GapPolicy, ReceiveError, Runner, SocketId};

impl Runner {
    pub(super) fn receive_frame(
        &mut self,
        now: Timestamp,
        frame: Received<'_>,
    ) -> Result<(), ReceiveError> {
        let limits = &self.config.decode_limits;
        let msg = match self.config.framing {
            Framing::PubSub { version } => {
                match frame.decode_versioned::<ToRunner>(limits) {
                    Ok((_, ToRunner::TunnelMessage(m))) => m,
                    Ok((_, ToRunner::Ping(probe))) => {
                        // Per-socket liveness: a pong only for a socket this runner holds (or
                        // queues for a starting actor).
                        let id = SocketId::new(probe.gateway_id, probe.request_id);
                        if !self.socket_index.contains_key(&id) && !self.routes.contains_key(&id) {
                            self.answer_not_held(id);
                            return Ok(());
                        }
                        let answer = ToGateway::Pong(ToGatewayPong {
                            request_id: probe.request_id,
                            ts: probe.ts,
                        });
                        self.actions.push_back(Action::Publish {
                            gateway_id: probe.gateway_id,
                            frame: wire::encode_versioned(version, &answer),
                        });
                        self.stats.pongs += 1;
                        return Ok(());
                    }
                    Ok((_, ToRunner::Close)) => {
                        return Err(self.dropped(ReceiveError::Unsupported {
                            kind: "runner_close",
                        }));
                    }
                    Ok((_, ToRunner::Commands(_) | ToRunner::AckEvents(_))) => {
                        return Err(self.dropped(ReceiveError::Unsupported { kind: "control" }));
                    }
                    Err(e) => return Err(self.dropped(ReceiveError::Malformed(e))),
                }
            }
            Framing::RunnerSocket => match frame.decode_with::<ToClient>(limits) {
                Ok(ToClient::TunnelMessage(m)) => m,
                Ok(_) => {
                    return Err(self.dropped(ReceiveError::Unsupported { kind: "control" }));
                }
                Err(e) => return Err(self.dropped(ReceiveError::Malformed(e))),
            },
        };
        self.dispatch(now, msg)
    }

    /// Counts a dropped input and hands the error back (the caller reports it: the adapters'
    /// `receive_error` hooks).
    pub(super) fn dropped(&mut self, e: ReceiveError) -> ReceiveError {
        let counter = match &e {
            ReceiveError::Malformed(_) => &mut self.stats.dropped_malformed,
            ReceiveError::UnknownActor { .. } => &mut self.stats.dropped_unknown_actor,
            ReceiveError::UnknownSocket { .. } => &mut self.stats.dropped_unknown_socket,
            ReceiveError::NotOpen { .. } => &mut self.stats.dropped_not_open,
            ReceiveError::QueueFull { .. } => &mut self.stats.dropped_queue_full,
            ReceiveError::SocketLimit { .. } => &mut self.stats.dropped_socket_limit,
            ReceiveError::Unsupported { .. } => &mut self.stats.dropped_unsupported,
        };
        *counter += 1;
        e
    }

    /// Routes one tunnel message: to a live socket, to a starting actor's queue, or away.
    pub(super) fn dispatch(
        &mut self,
        now: Timestamp,
        msg: ToClientTunnelMessage,
    ) -> Result<(), ReceiveError> {
        let id = SocketId::new(msg.message_id.gateway_id, msg.message_id.request_id);
        let index = msg.message_id.message_index;
        match msg.kind {
            ToClientTunnelMessageKind::WebSocketMessage(m) => {
                if let Some(&slot) = self.socket_index.get(&id) {
                    return self.on_message(now, (id, slot), index, m.data, m.binary);
                }
                if let Some(&aslot) = self.routes.get(&id) {
                    let msg = ToClientTunnelMessage {
                        message_id: msg.message_id,
                        kind: ToClientTunnelMessageKind::WebSocketMessage(m),
                    };
                    return self.enqueue(aslot, id, msg, false);
                }
                self.answer_not_held(id);
                Err(self.dropped(ReceiveError::UnknownSocket { socket: id }))
            }
            ToClientTunnelMessageKind::WebSocketOpen(open) => {
                self.on_open(now, id, msg.message_id, open)
            }
            ToClientTunnelMessageKind::WebSocketClose(c) => {
                if let Some(&slot) = self.socket_index.get(&id) {
                    self.on_gateway_close(
                        slot,
                        CloseFrame {
                            code: c.code,
                            reason: c.reason,
                        },
                    );
                    return Ok(());
                }
                if let Some(&aslot) = self.routes.get(&id) {
                    let msg = ToClientTunnelMessage {
                        message_id: msg.message_id,
                        kind: ToClientTunnelMessageKind::WebSocketClose(c),
                    };
                    return self.enqueue(aslot, id, msg, false);
                }
                Err(self.dropped(ReceiveError::UnknownSocket { socket: id }))
            }
            ToClientTunnelMessageKind::RequestStart(_) => {
                Err(self.dropped(ReceiveError::Unsupported {
                    kind: "request_start",
                }))
            }
            ToClientTunnelMessageKind::RequestChunk(_) => {
                Err(self.dropped(ReceiveError::Unsupported {
                    kind: "request_chunk",
                }))
            }
            ToClientTunnelMessageKind::RequestAbort => {
                Err(self.dropped(ReceiveError::Unsupported {
                    kind: "request_abort",
                }))
            }
        }
    }

    /// Queues a message for a starting actor.
    pub(super) fn enqueue(
        &mut self,
        aslot: usize,
        id: SocketId,
        msg: ToClientTunnelMessage,
        route: bool,
    ) -> Result<(), ReceiveError> {
        let size = len_u64(wire::encoded_len(&msg));
        let max_count = self.config.max_queued_per_actor;
        let max_bytes = self.config.max_queued_bytes_per_actor;
        let Some(actor) = self.actors.get_mut(aslot).and_then(Option::as_mut) else {
            return Err(self.dropped(ReceiveError::UnknownSocket { socket: id }));
        };
        if actor.queue.len() >= max_count || actor.queued_bytes.saturating_add(size) > max_bytes {
            let actor_id = actor.id.clone();
            return Err(self.dropped(ReceiveError::QueueFull { actor_id }));
        }
        actor.queue.push_back(msg);
        actor.queued_bytes = actor.queued_bytes.saturating_add(size);
        if route && !self.routes.contains_key(&id) {
            self.routes.insert(id, aslot);
            actor.routes.push(id);
        }
        self.stats.queued += 1;
        Ok(())
    }

    pub(super) fn on_open(
        &mut self,
        now: Timestamp,
        id: SocketId,
        message_id: MessageId,
        open: ToClientWebSocketOpen,
    ) -> Result<(), ReceiveError> {
        let k = message_id.message_index;
        let Some(&aslot) = self.actor_index.get(open.actor_id.as_str()) else {
            return Err(self.actor_not_found(id, &open.actor_id));
        };
        let state = match self.actors.get(aslot).and_then(Option::as_ref) {
            Some(actor) => actor.state,
            None => return Err(self.actor_not_found(id, &open.actor_id)),
        };
        match state {
            ActorState::Stopping => Err(self.actor_not_found(id, &open.actor_id)),
            ActorState::Starting => {
                let msg = ToClientTunnelMessage {
                    message_id,
                    kind: ToClientTunnelMessageKind::WebSocketOpen(open),
                };
                self.enqueue(aslot, id, msg, true)
            }
            ActorState::Running => {
                if let Some(&slot) = self.socket_index.get(&id) {
                    self.on_duplicate_open(now, slot, k);
                    return Ok(());
                }
                if self.handed_back_lately(id) {
                    // A stale copy of the open of a socket handed back: recreating it would
                    // deliver the gateway's replays a second time.
                    self.stats.dropped_handed_back += 1;
                    return Err(self.dropped(ReceiveError::UnknownSocket { socket: id }));
                }
                if self.app_closed_lately(id) {
                    // A stale copy of the open of a socket the app closed: its close may have
                    // been lost, so answer as for any socket not held (close 1011
                    // `ws.socket_not_found`); reopening it would deliver the gateway's
                    // retransmits a second time.
                    self.answer_not_held(id);
                    return Err(self.dropped(ReceiveError::UnknownSocket { socket: id }));
                }
                if self.live_sockets >= self.config.max_sockets {
                    let kind = close_kind(&KnownClose::ServerError.frame(), false);
                    self.publish_stateless(id, kind);
                    return Err(self.dropped(ReceiveError::SocketLimit { socket: id }));
                }
                let socket = Socket::new(id, aslot, k, self.config.persist_retry_initial);
                self.insert_socket(socket);
                self.stats.opens += 1;
                self.actions.push_back(Action::Open {
                    socket: id,
                    actor_id: open.actor_id,
                    index: k,
                    path: open.path,
                    headers: open.headers,
                });
                Ok(())
            }
        }
    }

    /// Answers an open for an actor this runner does not run with close 1011 `Actor not found`
    /// (outgoing index 0: the runner has no state for the socket).
    pub(super) fn actor_not_found(&mut self, id: SocketId, actor_id: &str) -> ReceiveError {
        self.stats.actor_not_found += 1;
        let kind = close_kind(&KnownClose::ActorNotFound.frame(), false);
        self.publish_stateless(id, kind);
        self.dropped(ReceiveError::UnknownActor {
            actor_id: actor_id.into(),
        })
    }

    /// A second open for a known socket (`docs/protocol.md#duplicate-open`), without upstream's
    /// reset to 0: an open at or
    /// behind the socket (index 0 included) is ignored, an open ahead of it advances it; the
    /// open is re-sent either way.
    pub(super) fn on_duplicate_open(&mut self, now: Timestamp, slot: usize, k: MessageIndex) {
        self.stats.duplicate_opens += 1;
        let framing = self.config.framing;
        let Some(s) = slot_mut(&mut self.slots, slot) else {
            return;
        };
        if s.phase != Phase::Open {
            // Not answered yet (connecting) or being flushed (stopping): nothing to re-send.
            return;
        }
        let mut persist = false;
        if s.hibernatable {
            let p = s.last_delivered;
            // Index 0 is the request's first open: a second one is a stale copy (a duplicated or
            // delayed frame), never a renumbering, since the gateway numbers a request once.
            // Rewinding the socket to 0 here (as upstream does) would rewind the durable index
            // under the app and redeliver what the gateway still retransmits. Only an open ahead of
            // the socket (an upstream guard retry) advances.
            if k != MessageIndex::ZERO && k.is_after(p) {
                s.delivered_seq = s.delivered_seq.saturating_add(u64::from(k.distance(p)));
                s.last_delivered = k;
                s.held.drop_through(s.delivered_seq);
                s.persist.dirty = true;
                s.persist.first_unpersisted_at.get_or_insert(now);
                persist = true;
            }
        }
        let can_hibernate = s.hibernatable;
        publish_on(
            &mut self.actions,
            framing,
            s,
            ToServerTunnelMessageKind::WebSocketOpen(ToServerWebSocketOpen { can_hibernate }),
        );
        if persist {
            self.deliver_held(now, slot);
            self.schedule_persist(now, slot);
        }
    }

    pub(super) fn on_message(
        &mut self,
        now: Timestamp,
        (id, slot): (SocketId, usize),
        r: MessageIndex,
        data: Bytes,
        binary: bool,
    ) -> Result<(), ReceiveError> {
        let Some(s) = slot_mut(&mut self.slots, slot) else {
            return Err(self.dropped(ReceiveError::UnknownSocket { socket: id }));
        };
        if s.phase != Phase::Open {
            return Err(self.dropped(ReceiveError::NotOpen { socket: id }));
        }
        if !s.hibernatable {
            self.deliver(now, slot, r, data, binary);
            return Ok(());
        }
        let p = s.last_delivered;
        let delta = r.distance(p);
        if delta == 0 || r.is_before(p) {
            self.stats.duplicates += 1;
            self.maybe_reack(now, slot, r);
            return Ok(());
        }
        if delta == 1 {
            s.awaiting_replay = false;
            self.deliver(now, slot, r, data, binary);
            self.deliver_held(now, slot);
            self.schedule_persist(now, slot);
            return Ok(());
        }
        if s.awaiting_replay {
            // A restored socket has not seen the gateway's replay yet: a message past a gap is
            // one the gateway published before it hibernated the request (still in flight when
            // the actor restarted on this runner). The replay, which follows the wake, resends
            // it after the missing ones: drop it; neither close (`Close`) nor hold it (`Await`,
            // whose held buffer it could overflow).
            self.stats.dropped_before_replay += 1;
            return Ok(());
        }
        match self.config.gap_policy {
            GapPolicy::Close => {
                self.stats.gaps += 1;
                self.close_index_skip(slot);
            }
            GapPolicy::Await => self.hold(now, slot, r, delta, data, binary),
        }
        Ok(())
    }

    /// Delivers one message in order (no validation: the caller did it).
    pub(super) fn deliver(
        &mut self,
        now: Timestamp,
        slot: usize,
        r: MessageIndex,
        data: Bytes,
        binary: bool,
    ) {
        let Some(s) = slot_mut(&mut self.slots, slot) else {
            return;
        };
        let len = len_u64(data.len());
        s.last_delivered = r;
        s.delivered_seq = s.delivered_seq.saturating_add(1);
        if s.hibernatable {
            let p = &mut s.persist;
            p.dirty = true;
            p.unpersisted_bytes = p.unpersisted_bytes.saturating_add(len);
            p.first_unpersisted_at.get_or_insert(now);
        }
        let socket = s.id;
        self.stats.delivered += 1;
        self.stats.delivered_bytes = self.stats.delivered_bytes.saturating_add(len);
        self.actions.push_back(Action::Message {
            socket,
            index: r,
            data,
            binary,
        });
    }

    /// Holds an out-of-order message ([`GapPolicy::Await`]); closes on overflow.
    pub(super) fn hold(
        &mut self,
        now: Timestamp,
        slot: usize,
        r: MessageIndex,
        delta: u16,
        data: Bytes,
        binary: bool,
    ) {
        let max_messages = self.config.max_held_messages;
        let max_bytes = self.config.max_held_bytes;
        let gap_timeout = self.config.gap_timeout;
        let Some(s) = slot_mut(&mut self.slots, slot) else {
            return;
        };
        let seq = s.delivered_seq.saturating_add(u64::from(delta));
        if s.held.messages.contains_key(&seq) {
            self.stats.duplicates += 1;
            return;
        }
        self.stats.gaps += 1;
        let len = len_u64(data.len());
        if s.held.len() >= max_messages || s.held.bytes.saturating_add(len) > max_bytes {
            self.stats.held_overflows += 1;
            self.close_index_skip(slot);
            return;
        }
        s.held.bytes = s.held.bytes.saturating_add(len);
        s.held.messages.insert(
            seq,
            socket::HeldMessage {
                index: r,
                data,
                binary,
                arrived: now,
            },
        );
        self.stats.held += 1;
        if s.gap_deadline.is_none()
            && let Some(at) = now.checked_add(gap_timeout)
        {
            s.gap_deadline = Some(at);
            self.arm(slot, at, TimerKind::Gap);
        }
    }

    /// Delivers held messages that are now in order and re-arms the gap deadline.
    pub(super) fn deliver_held(&mut self, now: Timestamp, slot: usize) {
        loop {
            let Some(s) = slot_mut(&mut self.slots, slot) else {
                return;
            };
            if s.held.is_empty() {
                break;
            }
            let Some(m) = s.held.take(s.delivered_seq.saturating_add(1)) else {
                break;
            };
            self.stats.held_delivered += 1;
            self.deliver(now, slot, m.index, m.data, m.binary);
        }
        let gap_timeout = self.config.gap_timeout;
        let Some(s) = slot_mut(&mut self.slots, slot) else {
            return;
        };
        let want = s
            .held
            .oldest_arrival()
            .and_then(|t| t.checked_add(gap_timeout));
        if want != s.gap_deadline {
            s.gap_deadline = want;
            if let Some(at) = want {
                self.arm(slot, at, TimerKind::Gap);
            }
        }
    }

    /// A duplicate of a persisted message: re-ack the persisted index (rate-limited), so a lost
    /// ack heals (`docs/design.md#re-ack-heals-lost-acks`).
    pub(super) fn maybe_reack(&mut self, now: Timestamp, slot: usize, r: MessageIndex) {
        let interval = self.config.reack_interval;
        let framing = self.config.framing;
        let Some(s) = slot_mut(&mut self.slots, slot) else {
            return;
        };
        let Some(lp) = s.last_persisted else {
            return;
        };
        if !r.is_at_or_before(lp) {
            return;
        }
        if s.last_ack_at
            .is_some_and(|t| now < t.saturating_add(interval))
        {
            return;
        }
        send_ack(&mut self.actions, framing, s, lp, now);
        self.stats.acks_sent += 1;
        self.stats.reacks += 1;
    }

    pub(super) fn on_gateway_close(&mut self, slot: usize, frame: CloseFrame) {
        let Some(s) = self.socket_ref(slot) else {
            return;
        };
        let socket = s.id;
        let hibernatable = s.hibernatable;
        self.stats.closed_gateway += 1;
        self.actions.push_back(Action::Closed {
            socket,
            reason: CloseReason::GatewayClosed(frame),
        });
        if hibernatable {
            self.push_delete_metadata(slot);
        }
        self.remove_socket(slot);
    }

    /// Gap (or held overflow/timeout): one close 1008 `ws.message_index_skip` to the gateway,
    /// a local close, and the metadata deleted.
    pub(super) fn close_index_skip(&mut self, slot: usize) {
        let framing = self.config.framing;
        let Some(s) = slot_mut(&mut self.slots, slot) else {
            return;
        };
        publish_on(
            &mut self.actions,
            framing,
            s,
            close_kind(&KnownClose::MessageIndexSkip.frame(), false),
        );
        let socket = s.id;
        let hibernatable = s.hibernatable;
        self.stats.gap_closes += 1;
        self.actions.push_back(Action::Closed {
            socket,
            reason: CloseReason::MessageIndexSkip,
        });
        if hibernatable {
            self.push_delete_metadata(slot);
        }
        self.remove_socket(slot);
    }
}
