//! Runner input: frames, tunnel messages and pongs from the runner side, the route check, and
//! the cumulative ack.

use bytes::Bytes;

use crate::close::{CloseFrame, KnownClose};
use crate::index::MessageIndex;
use crate::time::Timestamp;
use crate::wire::{
    self, RequestId, ToClientTunnelMessageKind, ToClientWebSocketClose, ToGateway, ToGatewayPong,
    ToServerTunnelMessage, ToServerTunnelMessageKind,
};

use super::pending::{self, AckVerdict, classify_ack};
use super::request::{Phase, Request, RouteId};
use super::{Action, CloseReason, Gateway, ReceiveError};

impl Gateway {
    /// A frame from the runner side: a versioned `ToGateway` message (pong or tunnel message)
    /// received from `route`.
    ///
    /// # Errors
    /// [`ReceiveError::Malformed`] if it does not decode, and everything
    /// [`handle_runner_message`](Self::handle_runner_message) and
    /// [`handle_pong`](Self::handle_pong) return. Every error means the input was dropped.
    pub fn handle_runner_frame(
        &mut self,
        now: Timestamp,
        route: RouteId,
        bytes: &[u8],
    ) -> Result<(), ReceiveError> {
        self.receive(now, route, wire::Received::Slice(bytes))
    }

    /// [`handle_runner_frame`](Self::handle_runner_frame) for a frame the transport hands out
    /// as [`Bytes`]: the payload of [`Action::SendToClient`] is then a slice of `frame`, not a
    /// copy.
    ///
    /// # Errors
    /// As [`handle_runner_frame`](Self::handle_runner_frame).
    pub fn handle_runner_frame_bytes(
        &mut self,
        now: Timestamp,
        route: RouteId,
        frame: &Bytes,
    ) -> Result<(), ReceiveError> {
        self.receive(now, route, wire::Received::Shared(frame))
    }

    fn receive(
        &mut self,
        now: Timestamp,
        route: RouteId,
        frame: wire::Received<'_>,
    ) -> Result<(), ReceiveError> {
        match frame.decode_versioned::<ToGateway>(&self.config.decode_limits) {
            Ok((_, ToGateway::Pong(pong))) => self.handle_pong(now, route, pong),
            Ok((_, ToGateway::TunnelMessage(msg))) => self.handle_runner_message(now, route, msg),
            Err(e) => {
                self.advance(now);
                self.stats.dropped_malformed += 1;
                Err(ReceiveError::Malformed(e))
            }
        }
    }

    /// A tunnel message from the runner behind `route`.
    ///
    /// It is accepted only if it names this gateway, a live request, and comes from the
    /// request's current route; then it is handled by phase (see the module docs). Acks apply in
    /// every phase, hibernating included; stale or invalid acks are ignored and counted.
    ///
    /// While the request hibernates it has no live runner: a runner close (not a hand-back), an
    /// ack or a WebSocket message is accepted from the route it hibernated from and from the
    /// actor's next runner declared with [`actor_starting`](Self::actor_starting), which answers
    /// the restore before the request is woken and routed to it: with an ack of the persisted
    /// index (which releases what is already durable, so the wake replays less) or with a close
    /// such as 1000 `ws.meta_not_found_during_restore` (dropping it would keep a request whose
    /// socket no runner holds; `docs/upstream.md#weak-spots`, 12); a restored actor may also
    /// write to the client at once. No other connection counts. Acks stay validated: one for a
    /// message that was never published is still refused.
    ///
    /// Per-socket liveness: any accepted message from the current route of an active request
    /// counts as a pong (its ping is deferred), and a runner close 1011 `ws.socket_not_found`
    /// (the runner does not hold the socket) ends it like any runner close. A message (not a
    /// close) naming this gateway and a request it no longer has is answered with close 1011
    /// `ws.request_not_found` to its route ([`Action::Publish`]), so the runner drops a socket
    /// nobody talks to (one recreated by a stale open, one whose close was lost).
    ///
    /// # Errors
    /// [`ReceiveError::WrongGateway`], [`ReceiveError::UnknownRequest`],
    /// [`ReceiveError::WrongRoute`], [`ReceiveError::InvalidForPhase`],
    /// [`ReceiveError::Unsupported`] (HTTP kinds). Every error means the message was dropped.
    pub fn handle_runner_message(
        &mut self,
        now: Timestamp,
        route: RouteId,
        msg: ToServerTunnelMessage,
    ) -> Result<(), ReceiveError> {
        let now = self.advance(now);
        let ToServerTunnelMessage { message_id, kind } = msg;
        if message_id.gateway_id != self.id {
            return Err(self.wrong_gateway(message_id));
        }
        // While a request hibernates it has no live runner: the actor's declared next runner
        // answers its restore (ack of the persisted index, or a close) and may already talk to
        // the client before the request is woken and routed to it.
        let restore_answer = match &kind {
            ToServerTunnelMessageKind::WebSocketClose(c) => !c.hibernate,
            ToServerTunnelMessageKind::WebSocketMessageAck(_)
            | ToServerTunnelMessageKind::WebSocketMessage(_) => true,
            _ => false,
        };
        let request_id = message_id.request_id;
        let is_close = matches!(kind, ToServerTunnelMessageKind::WebSocketClose(_));
        let slot = self.slot_or_answer(request_id, route, restore_answer, is_close)?;
        let Some(req) = self.requests.get_mut(slot) else {
            return Err(ReceiveError::UnknownRequest { request_id });
        };
        let (phase, hibernatable, client_closed) =
            (req.phase, req.hibernatable, req.client_closed());
        self.heard_from(slot, route, now);
        match (phase, kind) {
            (
                _,
                kind @ (ToServerTunnelMessageKind::ResponseStart(_)
                | ToServerTunnelMessageKind::ResponseChunk(_)
                | ToServerTunnelMessageKind::ResponseAbort),
            ) => {
                self.stats.dropped_unsupported += 1;
                Err(ReceiveError::Unsupported {
                    kind: kind_name(&kind),
                })
            }
            (Phase::AwaitingOpen, ToServerTunnelMessageKind::WebSocketOpen(open)) => {
                self.accept(slot, now, open.can_hibernate);
                Ok(())
            }
            (Phase::AwaitingOpen, ToServerTunnelMessageKind::WebSocketClose(close)) => {
                let frame = CloseFrame {
                    code: close.code,
                    reason: close.reason,
                };
                self.terminate(slot, CloseReason::ClosedBeforeOpen(frame));
                Ok(())
            }
            (
                Phase::Active | Phase::Hibernating,
                ToServerTunnelMessageKind::WebSocketMessage(m),
            ) => {
                self.forward_to_client(request_id, m, client_closed);
                Ok(())
            }
            (
                Phase::Active | Phase::Hibernating,
                ToServerTunnelMessageKind::WebSocketMessageAck(ack),
            ) => {
                self.ack(slot, ack.index);
                Ok(())
            }
            (Phase::Active, ToServerTunnelMessageKind::WebSocketClose(close))
                if close.hibernate && hibernatable =>
            {
                self.hibernate(slot, now);
                Ok(())
            }
            (Phase::Hibernating, ToServerTunnelMessageKind::WebSocketClose(close))
                if close.hibernate =>
            {
                // Already handed back: stay hibernating.
                Ok(())
            }
            (
                Phase::Active | Phase::Hibernating,
                ToServerTunnelMessageKind::WebSocketClose(close),
            ) => {
                let frame = CloseFrame {
                    code: close.code,
                    reason: close.reason,
                };
                self.terminate(slot, CloseReason::RunnerClosed(frame));
                Ok(())
            }
            (phase, kind) => {
                self.stats.dropped_invalid_for_phase += 1;
                Err(ReceiveError::InvalidForPhase {
                    request_id,
                    phase,
                    kind: kind_name(&kind),
                })
            }
        }
    }

    /// A pong from the runner side behind `route`: the tunnel of the request is alive.
    ///
    /// # Errors
    /// [`ReceiveError::UnknownRequest`], [`ReceiveError::WrongRoute`]. Every error means the pong
    /// was dropped.
    pub fn handle_pong(
        &mut self,
        now: Timestamp,
        route: RouteId,
        pong: ToGatewayPong,
    ) -> Result<(), ReceiveError> {
        let now = self.advance(now);
        let slot = self.checked_slot(pong.request_id, route, false)?;
        self.stats.pongs_received += 1;
        if let Some(active) = self.requests.get_mut(slot).and_then(Request::active_mut) {
            // Only ever moves later: the queued timer entry stays early enough.
            active.last_pong = now;
        }
        Ok(())
    }

    /// [`checked_slot`](Self::checked_slot); a message (not a close) for an unknown request is
    /// answered with close 1011 `ws.request_not_found`.
    fn slot_or_answer(
        &mut self,
        request_id: RequestId,
        route: RouteId,
        restore_answer: bool,
        is_close: bool,
    ) -> Result<u32, ReceiveError> {
        let result = self.checked_slot(request_id, route, restore_answer);
        if matches!(result, Err(ReceiveError::UnknownRequest { .. })) && !is_close {
            self.answer_unknown_request(route, request_id);
        }
        result
    }

    /// Traffic from the current route of an active request proves its runner holds the socket:
    /// it counts as a pong, and no probe is needed for a ping interval. Both deadlines only move
    /// later, so the queued timer entry stays early enough.
    fn heard_from(&mut self, slot: u32, route: RouteId, now: Timestamp) {
        let interval = self.config.ping_interval;
        if let Some(req) = self.requests.get_mut(slot)
            && req.route == route
            && let Some(active) = req.active_mut()
        {
            active.last_pong = now;
            active.next_ping = active.next_ping.max(now + interval);
        }
    }

    /// Answers a runner message for a request this gateway does not have with close 1011
    /// `ws.request_not_found`.
    fn answer_unknown_request(&mut self, route: RouteId, request_id: RequestId) {
        self.stats.unknown_request_answers += 1;
        let frame = KnownClose::RequestNotFound.frame();
        let kind = ToClientTunnelMessageKind::WebSocketClose(ToClientWebSocketClose {
            code: frame.code,
            reason: frame.reason,
        });
        let frame = self.encode_tunnel(request_id, MessageIndex::ZERO, kind);
        self.actions.push_back(Action::Publish {
            route,
            request_id,
            frame,
        });
    }

    /// Counts a message addressed to another gateway (the caller reports the error).
    fn wrong_gateway(&mut self, message_id: crate::wire::MessageId) -> ReceiveError {
        self.stats.dropped_wrong_gateway += 1;
        ReceiveError::WrongGateway {
            request_id: message_id.request_id,
            gateway_id: message_id.gateway_id,
        }
    }

    /// The slot of a live request whose current route is `route` (while it hibernates, if
    /// `also_next_runner`, also the actor's declared next runner); counts the drop otherwise.
    pub(super) fn checked_slot(
        &mut self,
        request_id: RequestId,
        route: RouteId,
        also_next_runner: bool,
    ) -> Result<u32, ReceiveError> {
        let Some(slot) = self.slot_of(request_id) else {
            self.stats.dropped_unknown_request += 1;
            return Err(ReceiveError::UnknownRequest { request_id });
        };
        match self.requests.get(slot) {
            Some(req) if req.route == route => Ok(slot),
            Some(req)
                if also_next_runner
                    && req.phase == Phase::Hibernating
                    && req.next_route() == Some(route) =>
            {
                Ok(slot)
            }
            Some(_) => {
                self.stats.dropped_wrong_route += 1;
                Err(ReceiveError::WrongRoute { request_id, route })
            }
            None => {
                self.stats.dropped_unknown_request += 1;
                Err(ReceiveError::UnknownRequest { request_id })
            }
        }
    }

    /// Applies a cumulative ack (`docs/design.md#validated-cumulative-acks`).
    pub(super) fn ack(&mut self, slot: u32, index: MessageIndex) {
        let Some(req) = self.requests.get_mut(slot) else {
            return;
        };
        if !req.hibernatable {
            self.stats.acks_not_hibernatable += 1;
            return;
        }
        let oldest = req.pending().and_then(pending::PendingBuffer::first);
        match classify_ack(oldest, req.sent_through(), index) {
            AckVerdict::Release(n) => {
                let released = req.buffer_mut().pending.release(n);
                req.stats.messages_acked += u64::from(n);
                self.stats.acks_applied += 1;
                self.stats.messages_acked += u64::from(n);
                self.pending_messages = self.pending_messages.saturating_sub(u64::from(n));
                self.pending_bytes = self.pending_bytes.saturating_sub(released);
                self.unblock(slot);
                self.drain_blocked();
                self.finish_held_close(slot);
            }
            AckVerdict::Stale => {
                req.stats.acks_ignored += 1;
                self.stats.acks_stale += 1;
            }
            AckVerdict::Invalid => {
                req.stats.acks_ignored += 1;
                self.stats.acks_invalid += 1;
            }
        }
    }

    /// A runner message for the client; dropped (counted) once the client closed, its close
    /// waiting for acks.
    fn forward_to_client(
        &mut self,
        request_id: RequestId,
        m: crate::wire::ToServerWebSocketMessage,
        client_closed: bool,
    ) {
        if client_closed {
            self.stats.messages_to_closed_client += 1;
            return;
        }
        self.stats.messages_to_client += 1;
        self.actions.push_back(Action::SendToClient {
            request_id,
            data: m.data,
            binary: m.binary,
        });
    }

    /// A held client close whose messages are all acknowledged now is forwarded: the request
    /// closes with the client's reason.
    fn finish_held_close(&mut self, slot: u32) {
        let Some(req) = self.requests.get_mut(slot) else {
            return;
        };
        if req.pending_len() > 0 {
            return;
        }
        if let Some(closing) = req.active_mut().and_then(|a| a.closing.take()) {
            self.terminate(slot, closing.reason);
        }
    }
}

/// The kind's name, for errors.
fn kind_name(kind: &ToServerTunnelMessageKind) -> &'static str {
    match kind {
        ToServerTunnelMessageKind::ResponseStart(_) => "ResponseStart",
        ToServerTunnelMessageKind::ResponseChunk(_) => "ResponseChunk",
        ToServerTunnelMessageKind::ResponseAbort => "ResponseAbort",
        ToServerTunnelMessageKind::WebSocketOpen(_) => "WebSocketOpen",
        ToServerTunnelMessageKind::WebSocketMessage(_) => "WebSocketMessage",
        ToServerTunnelMessageKind::WebSocketMessageAck(_) => "WebSocketMessageAck",
        ToServerTunnelMessageKind::WebSocketClose(_) => "WebSocketClose",
    }
}
