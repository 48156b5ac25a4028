//! The wiring to the [`Gateway`](crate::gateway::Gateway): client input, the gateway's
//! publishes, wake requests and hibernating records.

use alloc::collections::VecDeque;

use crate::close::CloseFrame;
use crate::gateway::{self, OpenRequest, RequestSlot, RouteId, SendError, UnknownRequest};
use crate::index::MessageIndex;
use crate::time::Timestamp;
use crate::wire::{self, RequestId, ToGatewayPong, ToRunner, VERSION_PREFIX_LEN};

use super::{Action, ActorPhase, Control, OpenError, OpenFailure, OutFrame};

/// `ToRunner` tags of the frames the gateway publishes.
const TAG_PING: u8 = 0;
const TAG_TUNNEL: u8 = 4;

impl Control {
    /// A client connected to `open.actor_id`. If the actor runs, the open goes to the gateway at
    /// once (routed to the actor's runner); otherwise the actor is started and the open waits
    /// for `Running` ([`Action::OpenFailed`] if the actor cannot run). Do not read the client
    /// before the gateway's `Opened` ([`Action::Gateway`]).
    ///
    /// # Errors
    /// [`OpenError::UnknownActor`], [`OpenError::AlreadyExists`],
    /// [`OpenError::TooManyWaiting`], [`OpenError::Gateway`].
    pub fn open(
        &mut self,
        now: Timestamp,
        request_id: RequestId,
        open: OpenRequest,
    ) -> Result<(), OpenError> {
        let now = self.advance(now);
        let Some(slot) = self.slot_of(open.actor_id()) else {
            return Err(OpenError::UnknownActor {
                request_id,
                actor_id: open.actor_id().into(),
            });
        };
        if self.requests.contains_key(&request_id) || self.gateway.request(request_id).is_some() {
            return Err(OpenError::AlreadyExists { request_id });
        }
        let max_waiting = self.config.max_waiting_opens_per_actor;
        let Some(actor) = self.actor_mut(slot) else {
            return Err(OpenError::UnknownActor {
                request_id,
                actor_id: open.actor_id().into(),
            });
        };
        if let (ActorPhase::Running, Some(seq)) = (actor.phase, actor.runner) {
            self.gateway
                .open(now, request_id, RouteId(seq), open)
                .map_err(|error| OpenError::Gateway { request_id, error })?;
            if let Some(actor) = self.actor_mut(slot) {
                actor.requests.insert(request_id);
            }
            self.requests.insert(request_id, slot);
        } else {
            if actor.waiting.len() >= max_waiting {
                return Err(OpenError::TooManyWaiting {
                    request_id,
                    actor_id: open.actor_id().into(),
                });
            }
            actor.waiting.push_back((request_id, open));
            self.requests.insert(request_id, slot);
            self.ensure_running(now, slot);
        }
        self.pump(now);
        Ok(())
    }

    /// A client message ([`Gateway::client_message`](gateway::Gateway::client_message)).
    ///
    /// # Errors
    /// As [`Gateway::client_message`](gateway::Gateway::client_message).
    pub fn client_message(
        &mut self,
        now: Timestamp,
        request_id: RequestId,
        data: &[u8],
        binary: bool,
    ) -> Result<MessageIndex, SendError> {
        let now = self.advance(now);
        let result = self.gateway.client_message(now, request_id, data, binary);
        self.pump(now);
        result
    }

    /// Where the gateway holds live request `request_id`
    /// ([`Gateway::request_slot`](gateway::Gateway::request_slot)), for
    /// [`client_message_at`](Self::client_message_at); `None` until the gateway opened it and
    /// after it ended.
    #[must_use]
    pub fn request_slot(&self, request_id: RequestId) -> Option<RequestSlot> {
        self.gateway.request_slot(request_id)
    }

    /// [`client_message`](Self::client_message) through the request's slot handle
    /// ([`Gateway::client_message_at`](gateway::Gateway::client_message_at)): no request-id
    /// lookup.
    ///
    /// # Errors
    /// As [`client_message`](Self::client_message); [`SendError::UnknownRequest`] for a handle
    /// of an ended request or of another request.
    pub fn client_message_at(
        &mut self,
        now: Timestamp,
        at: RequestSlot,
        request_id: RequestId,
        data: &[u8],
        binary: bool,
    ) -> Result<MessageIndex, SendError> {
        let now = self.advance(now);
        let result = self
            .gateway
            .client_message_at(now, at, request_id, data, binary);
        self.pump(now);
        result
    }

    /// The client closed ([`Gateway::client_close`](gateway::Gateway::client_close)). An open
    /// still waiting for its actor is dropped (no action follows for it).
    ///
    /// # Errors
    /// [`UnknownRequest`].
    pub fn client_close(
        &mut self,
        now: Timestamp,
        request_id: RequestId,
        frame: Option<CloseFrame>,
    ) -> Result<(), UnknownRequest> {
        let now = self.advance(now);
        if self.gateway.request(request_id).is_none() {
            let slot = self
                .requests
                .remove(&request_id)
                .ok_or(UnknownRequest { request_id })?;
            if let Some(actor) = self.actor_mut(slot) {
                actor.waiting.retain(|(id, _)| *id != request_id);
            }
            return Ok(());
        }
        let result = self.gateway.client_close(now, request_id, frame);
        self.pump(now);
        result
    }

    /// Wakes the actor's hibernating requests at the runner's route (a request that is not
    /// hibernating is left alone: the gateway refuses the wake without changing anything).
    pub(super) fn wake_requests(&mut self, now: Timestamp, seq: u64, records: &[RequestId]) {
        for &request_id in records {
            if self.gateway.wake(now, request_id, RouteId(seq)).is_ok() {
                self.stats.requests_woken += 1;
            }
        }
    }

    /// Hands the opens that waited for the actor to the gateway.
    pub(super) fn open_waiting(
        &mut self,
        now: Timestamp,
        slot: u32,
        seq: u64,
        waiting: VecDeque<(RequestId, OpenRequest)>,
    ) {
        for (request_id, open) in waiting {
            let actor_id = alloc::string::String::from(open.actor_id());
            match self.gateway.open(now, request_id, RouteId(seq), open) {
                Ok(()) => {
                    if let Some(actor) = self.actor_mut(slot) {
                        actor.requests.insert(request_id);
                    }
                }
                Err(error) => {
                    self.requests.remove(&request_id);
                    self.actions.push_back(Action::OpenFailed {
                        request_id,
                        actor_id,
                        reason: OpenFailure::Gateway(error),
                    });
                }
            }
        }
    }

    /// Drains the gateway: publishes go to runner connections, wake requests start actors,
    /// record writes update the actors' lists, everything else goes to the caller.
    pub(super) fn pump(&mut self, now: Timestamp) {
        while let Some(action) = self.gateway.poll_action() {
            match action {
                gateway::Action::Publish { route, frame, .. } => self.publish(now, route, frame),
                gateway::Action::RequestWake {
                    request_id,
                    actor_id,
                } => self.on_request_wake(now, request_id, &actor_id),
                gateway::Action::UpsertHibernatingRecord { request_id, .. } => {
                    let known = self.requests.get(&request_id).copied();
                    let cluster = self.config.cluster;
                    if let Some(actor) = known.and_then(|slot| self.actor_mut(slot)) {
                        let fresh = actor.records.insert(request_id);
                        if cluster && fresh {
                            let actor_id = actor.id.clone();
                            self.actions.push_back(Action::HibernatingRecord {
                                actor_id,
                                request_id,
                                live: true,
                            });
                        }
                        let _ = self.gateway.hibernating_record_upserted(now, request_id);
                    } else {
                        let _ = self.gateway.hibernating_record_failed(now, request_id);
                    }
                }
                gateway::Action::DeleteHibernatingRecord { request_id, .. } => {
                    let known = self.requests.get(&request_id).copied();
                    self.record_deleted(known, request_id);
                }
                gateway::Action::Closed { request_id, reason } => {
                    let known = self.requests.remove(&request_id);
                    if let Some(actor) = known.and_then(|slot| self.actor_mut(slot)) {
                        actor.requests.remove(&request_id);
                    }
                    self.record_deleted(known, request_id);
                    self.actions
                        .push_back(Action::Gateway(gateway::Action::Closed {
                            request_id,
                            reason,
                        }));
                }
                other => self.actions.push_back(Action::Gateway(other)),
            }
        }
    }

    /// A versioned `ToRunner` frame of the gateway for the runner behind `route`: a ping is
    /// answered here while the runner is connected (or the remote route exists); a tunnel
    /// message goes to the runner as a plain `ToClient` (the same bytes without the version
    /// prefix), or to the runner's node as is ([`Action::PublishRemote`]).
    fn publish(&mut self, now: Timestamp, route: RouteId, frame: gateway::Frame) {
        let remote = self.remote.contains_key(&route.0);
        let conn = self.runners.get(&route.0).and_then(|r| r.conn);
        if conn.is_none() && !remote {
            self.stats.frames_unroutable += 1;
            return;
        }
        match (frame.get(VERSION_PREFIX_LEN).copied(), conn) {
            (Some(TAG_TUNNEL), None) => {
                self.stats.frames_published_remote += 1;
                self.actions
                    .push_back(Action::PublishRemote { route, frame });
            }
            (Some(TAG_TUNNEL), Some(conn)) => {
                self.actions.push_back(Action::Send {
                    conn,
                    frame: OutFrame::shared(frame, VERSION_PREFIX_LEN),
                });
            }
            (Some(TAG_PING), _) => {
                let limits = self.config.decode_limits.clone();
                if let Ok((_, ToRunner::Ping(ping))) =
                    wire::decode_versioned::<ToRunner>(&frame, &limits)
                {
                    self.stats.gateway_pings_answered += 1;
                    let pong = ToGatewayPong {
                        request_id: ping.request_id,
                        ts: ping.ts,
                    };
                    let _ = self.gateway.handle_pong(now, route, pong);
                }
            }
            _ => self.stats.frames_unroutable += 1,
        }
    }

    /// Drops a record from its actor's list (reported in cluster mode).
    fn record_deleted(&mut self, slot: Option<u32>, request_id: RequestId) {
        let cluster = self.config.cluster;
        let Some(actor) = slot.and_then(|slot| self.actor_mut(slot)) else {
            return;
        };
        if actor.records.remove(&request_id) && cluster {
            let actor_id = actor.id.clone();
            self.actions.push_back(Action::HibernatingRecord {
                actor_id,
                request_id,
                live: false,
            });
        }
    }

    /// The gateway needs the actor of a hibernating request.
    fn on_request_wake(&mut self, now: Timestamp, request_id: RequestId, actor_id: &str) {
        let Some(slot) = self.slot_of(actor_id) else {
            let _ = self.gateway.actor_destroyed(now, request_id);
            return;
        };
        match self.actor_ref(slot).map(|a| (a.phase, a.runner)) {
            Some((ActorPhase::Running, Some(seq))) => {
                self.wake_requests(now, seq, &[request_id]);
            }
            _ => self.ensure_running(now, slot),
        }
    }
}
