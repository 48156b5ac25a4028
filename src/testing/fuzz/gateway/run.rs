//! Running one operation on the gateway and settling the record store, with the checks that
//! belong to the operation itself.

use crate::fuzz::{EngineHarness, payload};
use crate::gateway::{
    CloseReason, OpenError, OpenRequest, OverflowPolicy, Phase, ReceiveError, RouteId, SendError,
    WakeError,
};
use crate::index::MessageIndex;
use crate::time::Timestamp;
use crate::wire::{
    self, RequestId, ToGateway, ToGatewayPong, ToServerTunnelMessage, ToServerTunnelMessageKind,
};
use alloc::format;
use alloc::vec::Vec;
use core::time::Duration;

use super::{Before, Harness, Op, Req, actor_of, request_id};
use crate::close::CloseFrame;

impl Harness {
    pub(super) fn before(&self, req: u8) -> Before {
        Before {
            info: self.gw.request(request_id(req)),
        }
    }

    /// Runs one operation and checks what belongs to it.
    fn run_op(&mut self, op: Op) {
        let now = self.clock.stamp(Duration::from_millis(7));
        if !matches!(op, Op::Clock(_)) {
            // Every other operation gives `now` to the engine.
            self.clock.seen = self.clock.seen.max(now);
        }
        match op {
            Op::Open { req, route } => self.open(now, req, route),
            Op::Send {
                req,
                len,
                binary,
                repeat,
            } => {
                for _ in 0..repeat {
                    self.send(now, req, len, binary);
                }
            }
            Op::ClientClose { req, frame } => self.client_close(now, req, frame),
            Op::ActorStopped { req } => self.actor_stopped(now, req),
            Op::Wake { req, route } => self.wake(now, req, route),
            Op::RecordUpserted { req } => {
                let result = self.gw.hibernating_record_upserted(now, request_id(req));
                self.check_unknown(req, result.is_err(), "hibernating_record_upserted");
                self.expect_quiet("a record confirmation");
            }
            Op::RecordFailed { req } => {
                let result = self.gw.hibernating_record_failed(now, request_id(req));
                self.check_unknown(req, result.is_err(), "hibernating_record_failed");
                self.expect_quiet("a record failure");
            }
            Op::Runner {
                route,
                msg,
                version,
            } => self.runner_input(now, RouteId(route.into()), msg, version),
            Op::Pong {
                route,
                req,
                version,
            } => {
                let pong = ToGatewayPong {
                    request_id: request_id(req),
                    ts: 5,
                };
                let route = RouteId(route.into());
                let _ = match version {
                    None => self.gw.handle_pong(now, route, pong),
                    Some(v) => {
                        let frame = wire::encode_versioned(v, &ToGateway::Pong(pong));
                        self.gw.handle_runner_frame(now, route, &frame)
                    }
                };
                self.expect_quiet("a pong");
            }
            Op::RawFrame { route, bytes } => {
                let result = self
                    .gw
                    .handle_runner_frame(now, RouteId(route.into()), &bytes);
                if result.is_err() {
                    self.expect_quiet("a dropped raw frame");
                } else {
                    self.drain();
                }
            }
            Op::Clock(tick) => tick.run(self),
        }
    }

    /// `Gateway::open`: accepted unless the id is live or the gateway is full; one frame
    /// published.
    fn open(&mut self, now: Timestamp, req: u8, route: u8) {
        let id = request_id(req);
        let open = OpenRequest::new(actor_of(req), "/ws").expect("a path starting with /");
        let result = self.gw.open(now, id, RouteId(route.into()), open);
        match result {
            Ok(()) => {
                self.fail_if(self.live.contains_key(&id), "open of a live id succeeded");
                self.fail_if(
                    self.live.len() >= self.config.max_requests,
                    "open past max_requests succeeded",
                );
                self.live.insert(
                    id,
                    Req {
                        route: RouteId(route.into()),
                        phase: Phase::AwaitingOpen,
                        hibernatable: false,
                        next_index: MessageIndex::new(1),
                        blocked: None,
                        wake_requested: false,
                        client_gone: false,
                        sent_through: MessageIndex::ZERO,
                        actor: actor_of(req),
                    },
                );
                let fx = self.drain();
                self.fail_if(fx.actions != 1, "open did not publish exactly one frame");
            }
            Err(e) => {
                let expected = if self.live.contains_key(&id) {
                    OpenError::AlreadyExists { request_id: id }
                } else {
                    OpenError::TooManyRequests {
                        request_id: id,
                        max: self.config.max_requests,
                    }
                };
                if e != expected {
                    self.fail(&format!("open failed with {e:?}"));
                }
                self.expect_quiet("a refused open");
            }
        }
    }

    /// `Gateway::client_close`: closes at once, except while hibernating (a wake is requested)
    /// and while active with messages pending (the close waits for their acks).
    fn client_close(&mut self, now: Timestamp, req: u8, frame: Option<CloseFrame>) {
        let id = request_id(req);
        let model = self.live.get(&id).map(|r| (r.phase, r.client_gone));
        let pending = self.gw.request(id).map_or(0, |i| i.pending_messages);
        let result = self.gw.client_close(now, id, frame);
        self.check_unknown(req, result.is_err(), "client_close");
        let fx = self.drain();
        let (Ok(()), Some((phase, gone))) = (result, model) else {
            return;
        };
        let closed = fx.closed.contains_key(&id);
        if gone {
            self.fail_if(fx.actions > 0, "a second client close did something");
            return;
        }
        let held = phase == Phase::Hibernating || (phase == Phase::Active && pending > 0);
        self.fail_if(
            !held && !closed,
            "client close with nothing pending did not close it",
        );
        self.fail_if(
            held && closed,
            "client close closed at once although messages wait for acks",
        );
        if let Some(r) = self.live.get_mut(&id) {
            r.client_gone = true;
            if phase == Phase::Hibernating && !r.wake_requested {
                self.fail("client close while hibernating did not request a wake");
            }
        }
    }

    /// `Gateway::actor_stopped`: what happens depends on the phase and on hibernatable.
    fn actor_stopped(&mut self, now: Timestamp, req: u8) {
        let id = request_id(req);
        let before = self.live.get(&id).map(|r| (r.phase, r.hibernatable));
        let result = self.gw.actor_stopped(now, id);
        self.check_unknown(req, result.is_err(), "actor_stopped");
        let fx = self.drain();
        let after = self.live.get(&id).map(|r| r.phase);
        let closed = fx.closed.get(&id);
        let ok = match before {
            None | Some((Phase::Hibernating, _)) => fx.actions == 0,
            Some((Phase::Active, true)) => after == Some(Phase::Hibernating),
            Some((Phase::Active, false)) => closed == Some(&CloseReason::ActorStopped),
            Some((Phase::AwaitingOpen, _)) => closed == Some(&CloseReason::ActorStoppedBeforeOpen),
        };
        if !ok {
            self.fail(&format!(
                "actor_stopped in {before:?}: now {after:?}, closed {closed:?}"
            ));
        }
    }

    /// `Gateway::wake`: only a hibernating request wakes, and its replay is exactly its pending
    /// messages, in order.
    fn wake(&mut self, now: Timestamp, req: u8, route: u8) {
        let id = request_id(req);
        let before = self.before(req);
        match self.gw.wake(now, id, RouteId(route.into())) {
            Ok(()) => {
                let Some(r) = self.live.get_mut(&id) else {
                    self.fail("wake of an unknown request succeeded");
                };
                if r.phase != Phase::Hibernating {
                    self.fail("wake of a request that is not hibernating succeeded");
                }
                r.phase = Phase::Active;
                r.route = RouteId(route.into());
                r.wake_requested = false;
                let fx = self.drain();
                let replayed = fx.published.get(&id).cloned().unwrap_or_default();
                let pending = before.info.map_or(0, |i| i.pending_messages);
                if replayed.len() != pending {
                    self.fail(&format!(
                        "wake replayed {} of {pending} pending",
                        replayed.len()
                    ));
                }
                if let Some(first) = before.info.and_then(|i| i.oldest_unacked) {
                    self.check_contiguous(&replayed, first, "wake replay");
                }
            }
            Err(e) => {
                let expected = match self.live.get(&id) {
                    None => WakeError::UnknownRequest { request_id: id },
                    Some(_) => WakeError::NotHibernating { request_id: id },
                };
                if e != expected {
                    self.fail(&format!("wake failed with {e:?}"));
                }
                if let Some(r) = self.live.get(&id) {
                    self.fail_if(
                        r.phase == Phase::Hibernating,
                        "wake of a hibernating request failed",
                    );
                }
                self.expect_quiet("a refused wake");
            }
        }
    }

    /// A tunnel message from the runner side: dropped input changes nothing; accepted input
    /// never adds pending messages nor re-publishes, and an ack follows the ack rule.
    fn runner_input(
        &mut self,
        now: Timestamp,
        route: RouteId,
        msg: ToServerTunnelMessage,
        version: Option<u16>,
    ) {
        let id = msg.message_id.request_id;
        let before = self.gw.request(id);
        let ack = match &msg.kind {
            ToServerTunnelMessageKind::WebSocketMessageAck(a) => Some(a.index),
            _ => None,
        };
        let is_close = matches!(msg.kind, ToServerTunnelMessageKind::WebSocketClose(_));
        let result = match version {
            None => self.gw.handle_runner_message(now, route, msg),
            Some(v) => {
                let frame = wire::encode_versioned(v, &ToGateway::TunnelMessage(msg));
                self.gw.handle_runner_frame(now, route, &frame)
            }
        };
        if result.is_err() {
            if matches!(result, Err(ReceiveError::UnknownRequest { .. })) && !is_close {
                self.expect_request_not_found(route, id);
            }
            self.expect_quiet("dropped runner input");
            self.fail_if(
                self.gw.request(id) != before,
                "dropped runner input changed the request",
            );
            return;
        }
        let fx = self.drain();
        if let (Some(b), Some(a)) = (before, self.gw.request(id)) {
            self.fail_if(
                a.pending_messages > b.pending_messages,
                "runner input added pending messages",
            );
        }
        self.fail_if(
            fx.published.contains_key(&id),
            "runner input re-published client messages",
        );
        if let (Some(ack), Some(b)) = (ack, before) {
            if let Some(reason) = fx.closed.get(&id) {
                // Only a held client close ends with an ack: the one that releases the last
                // pending message.
                let client = matches!(
                    reason,
                    CloseReason::ClientClosed(_) | CloseReason::ClientGone
                );
                self.fail_if(
                    !client || b.pending_messages == 0,
                    "an ack closed the request",
                );
            } else {
                self.check_ack(id, ack, &b);
            }
        }
    }

    /// Liveness, once the input is exhausted: with no more client, runner or record-store input,
    /// a few large clock steps collect every request (open, ping, ack, wake and hibernation
    /// timeouts), each with its one `Closed`.
    fn settle_all(&mut self) {
        let c = &self.config;
        let timers = [
            c.ack_timeout,
            c.open_timeout,
            c.ping_interval,
            c.ping_timeout,
            c.keepalive_interval,
            c.hibernation_timeout,
            c.wake_timeout,
            c.retransmit_timeout.unwrap_or_default(),
        ];
        let Some(step) = self.clock.settle_step(timers) else {
            return;
        };
        for _ in 0..8 {
            if self.live.is_empty() {
                return;
            }
            self.settle_tick(step);
        }
        if !self.live.is_empty() {
            let ids: Vec<&RequestId> = self.live.keys().collect();
            self.fail(&format!("requests never collected without input: {ids:?}"));
        }
    }

    /// `Gateway::client_message`, checking that an error names the request.
    fn client_message(
        &mut self,
        now: Timestamp,
        id: RequestId,
        data: &[u8],
        binary: bool,
    ) -> Result<MessageIndex, SendError> {
        let result = self.gw.client_message(now, id, data, binary);
        self.fail_if(
            result.is_err_and(|e| e.request_id() != id),
            "a send error names another request",
        );
        result
    }

    /// One client message: on success it gets the next index and is published (active) or only
    /// buffered (hibernating); a refusal matches the model and the overflow policy.
    pub(super) fn send(&mut self, now: Timestamp, req: u8, len: usize, binary: bool) {
        let id = request_id(req);
        let data = payload(len, req);
        let before = self.before(req);
        let size = u64::try_from(wire::ws_message_frame_len(len)).unwrap_or(u64::MAX);
        match self.client_message(now, id, &data, binary) {
            Ok(index) => self.sent(id, index, before),
            Err(e) => self.send_refused(id, e, size, before),
        }
    }

    /// A client message accepted with `index`.
    fn sent(&mut self, id: RequestId, index: MessageIndex, before: Before) {
        let Some(r) = self.live.get_mut(&id) else {
            self.fail("client_message on an unknown request succeeded");
        };
        if index != r.next_index {
            let expected = r.next_index;
            self.fail(&format!(
                "client_message gave index {index:?}, expected {expected:?}"
            ));
        }
        r.next_index = index.next();
        r.blocked = None;
        let (phase, hibernatable) = (r.phase, r.hibernatable);
        let fx = self.drain();
        let published = fx.published.get(&id).cloned().unwrap_or_default();
        match phase {
            Phase::Active => {
                if published != [index] {
                    self.fail(&format!(
                        "an active send published {published:?}, not [{index:?}]"
                    ));
                }
            }
            Phase::Hibernating => self.fail_if(
                !published.is_empty(),
                "a send while hibernating was published",
            ),
            _ => self.fail("a send before the open was accepted succeeded"),
        }
        let after = self.gw.request(id);
        let (b, a) = (
            before.info.map_or(0, |i| i.pending_messages),
            after.map_or(0, |i| i.pending_messages),
        );
        let expected = if hibernatable { b + 1 } else { 0 };
        if a != expected {
            self.fail(&format!(
                "pending went from {b} to {a} on a send (expected {expected})"
            ));
        }
    }

    /// A client message of encoded `size` refused with `e`.
    fn send_refused(&mut self, id: RequestId, e: SendError, size: u64, before: Before) {
        let policy = self.config.overflow_policy;
        match e {
            SendError::UnknownRequest { .. } => {
                self.fail_if(
                    self.live.contains_key(&id),
                    "send to a live request: unknown",
                );
                self.expect_quiet("a send to an unknown request");
            }
            SendError::ClientClosed { .. } => {
                let gone = self.live.get(&id).map(|r| r.client_gone);
                self.fail_if(gone != Some(true), "ClientClosed before the client closed");
                self.expect_quiet("a send after the client's close");
            }
            SendError::NotOpen { .. } => {
                let phase = self.live.get(&id).map(|r| r.phase);
                self.fail_if(
                    phase != Some(Phase::AwaitingOpen),
                    "NotOpen outside AwaitingOpen",
                );
                self.expect_quiet("a send before the open");
            }
            SendError::Backpressure { .. } => {
                self.fail_if(
                    policy != OverflowPolicy::Backpressure,
                    "Backpressure under the Close policy",
                );
                self.expect_quiet("a send refused with backpressure");
                self.fail_if(
                    self.gw.request(id) != before.info,
                    "a send refused with backpressure changed the request",
                );
                if let Some(r) = self.live.get_mut(&id) {
                    r.blocked = Some(size);
                }
            }
            SendError::LimitExceeded { .. } => {
                self.fail_if(
                    policy != OverflowPolicy::Close,
                    "LimitExceeded under the Backpressure policy",
                );
                let fx = self.drain();
                self.fail_if(
                    !fx.closed.contains_key(&id),
                    "LimitExceeded did not close the request",
                );
            }
            SendError::MessageTooLarge { size: s, max, .. } => {
                self.fail_if(
                    s != size || max != self.config.max_pending_bytes || s <= max,
                    "wrong MessageTooLarge",
                );
                let fx = self.drain();
                self.fail_if(
                    !fx.closed.contains_key(&id),
                    "MessageTooLarge did not close the request",
                );
            }
        }
    }

    pub(super) fn check_unknown(&self, req: u8, failed: bool, what: &str) {
        let live = self.live.contains_key(&request_id(req));
        if failed == live {
            self.fail(&format!(
                "{what}: UnknownRequest is {failed}, request live is {live}"
            ));
        }
    }
}

crate::fuzz::engine_harness!(Harness, Op, gw);
