//! Draining the gateway's actions against the shadow model, and the checks after every
//! operation.

use crate::close::{CloseFrame, KnownClose};
use crate::fuzz::trace;
use crate::gateway::{Action, Phase, RequestInfo, RouteId};
use crate::index::MessageIndex;
use crate::wire::{self, DecodeLimits, MessageId, RequestId, ToClientTunnelMessageKind, ToRunner};
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;

use super::{Effects, GW, Harness, REQUESTS, action_request, request_id};

impl Harness {
    /// Drains and checks the actions against the model; applies them to it.
    #[allow(clippy::too_many_lines)] // one arm per action
    pub(super) fn drain(&mut self) -> Effects {
        let mut fx = Effects::default();
        let mut close_client: BTreeMap<RequestId, CloseFrame> = BTreeMap::new();
        let mut deleted: BTreeSet<RequestId> = BTreeSet::new();
        let mut runner_close: BTreeSet<RequestId> = BTreeSet::new();
        while let Some(action) = self.gw.poll_action() {
            fx.actions += 1;
            let id = action_request(&action);
            let Some(r) = self.live.get_mut(&id) else {
                self.fail(&format!(
                    "action for a request that is not live: {action:?}"
                ));
            };
            match action {
                Action::Publish {
                    route,
                    request_id,
                    frame,
                } => {
                    if route != r.route {
                        let expected = r.route;
                        self.fail(&format!(
                            "published to {route:?}, the request is routed to {expected:?}"
                        ));
                    }
                    let version = self.config.protocol_version;
                    match wire::decode_versioned::<ToRunner>(&frame, &DecodeLimits::default()) {
                        Ok((v, _)) if v != version => {
                            self.fail(&format!("published version {v}, configured {version}"));
                        }
                        Ok((_, ToRunner::Ping(p))) => {
                            self.fail_if(
                                p.gateway_id != GW || p.request_id != request_id,
                                "ping with wrong ids",
                            );
                        }
                        Ok((_, ToRunner::TunnelMessage(m))) => {
                            let expected_id = MessageId {
                                gateway_id: GW,
                                request_id,
                                message_index: m.message_id.message_index,
                            };
                            if m.message_id != expected_id {
                                self.fail("tunnel message with wrong ids");
                            }
                            let index = m.message_id.message_index;
                            match m.kind {
                                ToClientTunnelMessageKind::WebSocketOpen(_) => {
                                    self.fail_if(
                                        index != MessageIndex::ZERO,
                                        "open not at index 0",
                                    );
                                }
                                ToClientTunnelMessageKind::WebSocketMessage(_) => {
                                    if runner_close.contains(&id) {
                                        self.fail("message published after the runner close");
                                    }
                                    if index.is_after(r.sent_through) {
                                        r.sent_through = index;
                                    }
                                    fx.published.entry(id).or_default().push(index);
                                }
                                ToClientTunnelMessageKind::WebSocketClose(_) => {
                                    if !runner_close.insert(id) {
                                        self.fail("two runner closes");
                                    }
                                }
                                other => self.fail(&format!("published {other:?}")),
                            }
                        }
                        Ok((_, ToRunner::Close)) => self.fail("published a runner close"),
                        Ok((_, other)) => self.fail(&format!("published {other:?}")),
                        Err(e) => self.fail(&format!("published an undecodable frame: {e}")),
                    }
                }
                Action::SendToClient { .. } => {
                    if !matches!(r.phase, Phase::Active | Phase::Hibernating) {
                        self.fail("SendToClient before the open");
                    }
                }
                Action::CloseClient { frame, .. } => {
                    if frame.code.is_none() {
                        self.fail("CloseClient without a code");
                    }
                    if close_client.insert(id, frame).is_some() {
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
                    if !deleted.insert(id) {
                        self.fail("two record deletes");
                    }
                }
                Action::ClientWritable { .. } => {
                    if r.blocked.take().is_none() {
                        self.fail("ClientWritable for a request that was not refused");
                    }
                }
                Action::Closed { reason, .. } => {
                    let hibernatable = r.hibernatable;
                    let phase = r.phase;
                    let client_frame = if r.client_gone {
                        None
                    } else {
                        reason.client_frame()
                    };
                    self.live.remove(&id);
                    if close_client.remove(&id) != client_frame {
                        self.fail(&format!("CloseClient does not match {reason:?}"));
                    }
                    if deleted.remove(&id) != hibernatable {
                        self.fail("record delete does not match hibernatable");
                    }
                    let runner_frame_expected =
                        phase != Phase::Hibernating && reason.runner_frame().is_some();
                    if runner_close.remove(&id) != runner_frame_expected {
                        self.fail(&format!(
                            "runner close does not match {reason:?} in phase {phase:?}"
                        ));
                    }
                    fx.closed.insert(id, reason);
                }
            }
        }
        for (id, indices) in &fx.published {
            self.check_published_window(*id, indices);
        }
        if let Some(id) = close_client.keys().next() {
            self.fail(&format!("CloseClient for {id} without Closed"));
        }
        if let Some(id) = deleted.iter().next() {
            self.fail(&format!("record delete for {id} without Closed"));
        }
        if let Some(id) = runner_close.iter().next() {
            self.fail(&format!("runner close for {id} without Closed"));
        }
        fx
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

    pub(super) fn check_all(&self) {
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
        if self.punctual
            && let Some(t) = self.gw.poll_timeout()
            && t <= self.now
        {
            self.fail(&format!(
                "poll_timeout {t:?} at or before now {:?}, every earlier deadline was handled",
                self.now
            ));
        }
    }

    pub(super) fn fail_if(&self, bad: bool, what: &str) {
        if bad {
            self.fail(what);
        }
    }

    pub(super) fn fail(&self, what: &str) -> ! {
        panic!(
            "gateway_ops: {what}\nat step {} now {:?}\nconfig {:?}\nlast operations:\n{}",
            self.step,
            self.now,
            self.config,
            trace(&self.ops)
        );
    }
}
