//! Draining the gateway's actions against the shadow model, and the checks after every
//! operation.

use crate::close::{CloseFrame, KnownClose};
use crate::fuzz::EngineHarness;
use crate::gateway::{Action, CloseReason, Phase, RequestInfo, RouteId};
use crate::index::MessageIndex;
use crate::wire::{self, DecodeLimits, MessageId, RequestId, ToClientTunnelMessageKind, ToRunner};
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;

use super::{Effects, GW, Harness, REQUESTS, action_request, request_id};

/// What one drained batch of actions did, beyond its [`Effects`]: the client close frames, record
/// deletes and runner closes that its `Closed` actions must match.
#[derive(Debug, Default)]
struct Batch {
    fx: Effects,
    close_client: BTreeMap<RequestId, CloseFrame>,
    deleted: BTreeSet<RequestId>,
    runner_close: BTreeSet<RequestId>,
}

impl Harness {
    /// Drains and checks the actions against the model; applies them to it.
    pub(super) fn drain(&mut self) -> Effects {
        let mut batch = Batch::default();
        while let Some(action) = self.gw.poll_action() {
            batch.fx.actions += 1;
            let id = action_request(&action);
            if !self.live.contains_key(&id) {
                self.fail(&format!(
                    "action for a request that is not live: {action:?}"
                ));
            }
            match action {
                Action::Publish { route, frame, .. } => {
                    self.check_publish(id, route, &frame, &mut batch);
                }
                Action::Closed { reason, .. } => self.apply_closed(id, reason, &mut batch),
                other => self.apply(id, other, &mut batch),
            }
        }
        for (id, indices) in &batch.fx.published {
            self.check_published_window(*id, indices);
        }
        if let Some(id) = batch.close_client.keys().next() {
            self.fail(&format!("CloseClient for {id} without Closed"));
        }
        if let Some(id) = batch.deleted.iter().next() {
            self.fail(&format!("record delete for {id} without Closed"));
        }
        if let Some(id) = batch.runner_close.iter().next() {
            self.fail(&format!("runner close for {id} without Closed"));
        }
        batch.fx
    }

    /// A frame published for live request `id`: to its route, in the configured version, with
    /// the right ids; an open at index 0, messages recorded, at most one runner close.
    fn check_publish(&mut self, id: RequestId, route: RouteId, frame: &[u8], batch: &mut Batch) {
        let Some(r) = self.live.get_mut(&id) else {
            return;
        };
        if route != r.route {
            let expected = r.route;
            self.fail(&format!(
                "published to {route:?}, the request is routed to {expected:?}"
            ));
        }
        let version = self.config.protocol_version;
        let m = match wire::decode_versioned::<ToRunner>(frame, &DecodeLimits::default()) {
            Ok((v, _)) if v != version => {
                self.fail(&format!("published version {v}, configured {version}"));
            }
            Ok((_, ToRunner::Ping(p))) => {
                self.fail_if(
                    p.gateway_id != GW || p.request_id != id,
                    "ping with wrong ids",
                );
                return;
            }
            Ok((_, ToRunner::TunnelMessage(m))) => m,
            Ok((_, ToRunner::Close)) => self.fail("published a runner close"),
            Ok((_, other)) => self.fail(&format!("published {other:?}")),
            Err(e) => self.fail(&format!("published an undecodable frame: {e}")),
        };
        let index = m.message_id.message_index;
        let expected_id = MessageId {
            gateway_id: GW,
            request_id: id,
            message_index: index,
        };
        if m.message_id != expected_id {
            self.fail("tunnel message with wrong ids");
        }
        match m.kind {
            ToClientTunnelMessageKind::WebSocketOpen(_) => {
                self.fail_if(index != MessageIndex::ZERO, "open not at index 0");
            }
            ToClientTunnelMessageKind::WebSocketMessage(_) => {
                if batch.runner_close.contains(&id) {
                    self.fail("message published after the runner close");
                }
                if index.is_after(r.sent_through) {
                    r.sent_through = index;
                }
                batch.fx.published.entry(id).or_default().push(index);
            }
            ToClientTunnelMessageKind::WebSocketClose(_) => {
                if !batch.runner_close.insert(id) {
                    self.fail("two runner closes");
                }
            }
            other => self.fail(&format!("published {other:?}")),
        }
    }

    /// Any action but `Publish` and `Closed` for live request `id`: checked against its phase
    /// and applied to the model.
    fn apply(&mut self, id: RequestId, action: Action, batch: &mut Batch) {
        let Some(r) = self.live.get_mut(&id) else {
            return;
        };
        match action {
            Action::SendToClient { .. } => {
                if !matches!(r.phase, Phase::Active | Phase::Hibernating) {
                    self.fail("SendToClient before the open");
                }
                if r.client_gone {
                    self.fail("SendToClient after the client's close");
                }
            }
            Action::CloseClient { frame, .. } => {
                if frame.code.is_none() {
                    self.fail("CloseClient without a code");
                }
                if batch.close_client.insert(id, frame).is_some() {
                    self.fail("two CloseClient");
                }
            }
            Action::Opened { hibernatable, .. } => {
                if r.phase != Phase::AwaitingOpen {
                    self.fail("Opened twice");
                }
                r.phase = Phase::Active;
                r.hibernatable = hibernatable;
            }
            Action::Hibernated { .. } => {
                if r.phase != Phase::Active || !r.hibernatable {
                    self.fail("Hibernated from the wrong phase");
                }
                r.phase = Phase::Hibernating;
                r.wake_requested = false;
            }
            Action::RequestWake { actor_id, .. } => {
                if r.phase != Phase::Hibernating {
                    self.fail("RequestWake while not hibernating");
                }
                if r.wake_requested {
                    self.fail("RequestWake twice in one hibernation");
                }
                if actor_id != r.actor {
                    self.fail("RequestWake for the wrong actor");
                }
                r.wake_requested = true;
            }
            Action::UpsertHibernatingRecord { actor_id, .. } => {
                if !r.hibernatable || actor_id != r.actor {
                    self.fail("record upsert for a non-hibernatable request or wrong actor");
                }
            }
            Action::DeleteHibernatingRecord { actor_id, .. } => {
                if !r.hibernatable || actor_id != r.actor {
                    self.fail("record delete for a non-hibernatable request or wrong actor");
                }
                if !batch.deleted.insert(id) {
                    self.fail("two record deletes");
                }
            }
            Action::ClientWritable { .. } => {
                if r.blocked.take().is_none() {
                    self.fail("ClientWritable for a request that was not refused");
                }
            }
            Action::Publish { .. } | Action::Closed { .. } => {}
        }
    }

    /// The one `Closed` of live request `id`: the client's close frame, the record delete and
    /// the runner close of this batch match its reason and phase.
    fn apply_closed(&mut self, id: RequestId, reason: CloseReason, batch: &mut Batch) {
        let Some(r) = self.live.remove(&id) else {
            return;
        };
        let client_frame = if r.client_gone {
            None
        } else {
            reason.client_frame()
        };
        if batch.close_client.remove(&id) != client_frame {
            self.fail(&format!("CloseClient does not match {reason:?}"));
        }
        if batch.deleted.remove(&id) != r.hibernatable {
            self.fail("record delete does not match hibernatable");
        }
        let runner_frame_expected =
            r.phase != Phase::Hibernating && reason.runner_frame().is_some();
        if batch.runner_close.remove(&id) != runner_frame_expected {
            let phase = r.phase;
            self.fail(&format!(
                "runner close does not match {reason:?} in phase {phase:?}"
            ));
        }
        batch.fx.closed.insert(id, reason);
    }

    /// A runner ack applied as the ack rule says, with the window taken from what was actually
    /// published: `[oldest − 1, last published]` releases up to the ack, anything else changes
    /// nothing. So an ack can never release a message that was only buffered (never sent).
    pub(super) fn check_ack(&self, id: RequestId, ack: MessageIndex, before: &RequestInfo) {
        let (Some(r), Some(after)) = (self.live.get(&id), self.gw.request(id)) else {
            self.fail("an ack closed the request");
        };
        let unchanged = (before.pending_messages, before.oldest_unacked);
        let expected = if r.hibernatable {
            let released = before
                .oldest_unacked
                .map_or(r.sent_through, MessageIndex::prev);
            let n = usize::from(ack.distance(released));
            if ack.is_within(released, r.sent_through) && n > 0 {
                let left = before.pending_messages.saturating_sub(n);
                (left, (left > 0).then(|| ack.next()))
            } else {
                unchanged
            }
        } else {
            unchanged
        };
        if (after.pending_messages, after.oldest_unacked) != expected {
            self.fail(&format!(
                "ack {ack:?} (last published {:?}) turned {unchanged:?} into {:?}, expected \
                 {expected:?}",
                r.sent_through,
                (after.pending_messages, after.oldest_unacked)
            ));
        }
    }

    /// Client messages published for a live request lie in its unacked window (hibernatable) or
    /// are the last one assigned (not hibernatable).
    pub(super) fn check_published_window(&self, id: RequestId, indices: &[MessageIndex]) {
        let Some(info) = self.gw.request(id) else {
            return;
        };
        let last = info.next_index.prev();
        let first = match (info.hibernatable, info.oldest_unacked) {
            (false, _) => last,
            (true, Some(oldest)) => oldest,
            // Nothing pending: no message may have been published (an empty window cannot be
            // written as a range of the ring).
            (true, None) => {
                if !indices.is_empty() {
                    self.fail(&format!("{id}: published {indices:?} with nothing pending"));
                }
                return;
            }
        };
        if let Some(i) = indices.iter().find(|i| !i.is_within(first, last)) {
            self.fail(&format!(
                "{id}: published message {i:?} outside the window {first:?}..={last:?}"
            ));
        }
    }

    /// The answer to a runner message for an unknown request: one close 1011
    /// `ws.request_not_found` to the route it came from.
    pub(super) fn expect_request_not_found(&mut self, route: RouteId, id: RequestId) {
        let answer = self.gw.poll_action();
        let ok = match &answer {
            Some(Action::Publish {
                route: r,
                request_id,
                frame,
            }) if *r == route && *request_id == id => matches!(
                wire::decode_versioned::<ToRunner>(frame.as_ref(), &DecodeLimits::default()),
                Ok((_, ToRunner::TunnelMessage(m)))
                    if m.message_id.request_id == id
                        && matches!(&m.kind, ToClientTunnelMessageKind::WebSocketClose(c)
                            if KnownClose::classify(c.code, c.reason.as_deref())
                                == Some(KnownClose::RequestNotFound))
            ),
            _ => false,
        };
        if !ok {
            self.fail(&format!(
                "a message for unknown {id:?} was answered with {answer:?}, not a close \
                 ws.request_not_found to {route:?}"
            ));
        }
    }

    pub(super) fn expect_quiet(&mut self, what: &str) {
        if let Some(a) = self.gw.poll_action() {
            self.fail(&format!("{what} emitted {a:?}"));
        }
    }

    /// `indices` are consecutive from `first`.
    pub(super) fn check_contiguous(
        &self,
        indices: &[MessageIndex],
        first: MessageIndex,
        what: &str,
    ) {
        let mut expected = first;
        for &i in indices {
            if i != expected {
                self.fail(&format!(
                    "{what}: {indices:?} not consecutive from {first:?}"
                ));
            }
            expected = expected.next();
        }
    }

    pub(super) fn check_all(&mut self) {
        if let Err(e) = self.gw.check_invariants() {
            self.fail(&format!("check_invariants: {e}"));
        }
        let stats = self.gw.stats();
        let cfg = &self.config;
        self.fail_if(
            stats.pending_bytes > cfg.max_gateway_pending_bytes,
            "gateway pending bytes over the limit",
        );
        self.fail_if(
            self.gw.len() != self.live.len()
                || u64::try_from(self.live.len()).ok() != Some(stats.requests),
            "live request count differs from the model",
        );
        for req in 0..REQUESTS {
            let id = request_id(req);
            let info = self.gw.request(id);
            let (Some(r), Some(info)) = (self.live.get(&id), info) else {
                if info.is_some() != self.live.contains_key(&id) {
                    self.fail(&format!("{id}: live in the gateway is {}", info.is_some()));
                }
                continue;
            };
            if info.phase != r.phase
                || info.route != r.route
                || info.hibernatable != r.hibernatable
                || info.next_index != r.next_index
            {
                self.fail(&format!("{id}: gateway {info:?} differs from model {r:?}"));
            }
            self.fail_if(
                info.pending_messages > usize::from(cfg.max_pending_messages)
                    || info.pending_bytes > cfg.max_pending_bytes,
                "request pending over the limits",
            );
            self.fail_if(
                !r.hibernatable && info.pending_messages > 0,
                "a non-hibernatable request holds pending messages",
            );
            // A request refused with backpressure is told when everything was released.
            if r.blocked.is_some() && stats.pending_bytes == 0 {
                self.fail(&format!(
                    "{id}: refused with backpressure and never told ClientWritable, though \
                     nothing is pending"
                ));
            }
        }
        self.check_timer();
    }

    pub(super) fn fail_if(&self, bad: bool, what: &str) {
        if bad {
            self.fail(what);
        }
    }

    pub(super) fn fail(&self, what: &str) -> ! {
        panic!("{}", self.clock.report("gateway_ops", what, &self.config));
    }
}
