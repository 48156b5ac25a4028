//! Restoring hibernated sockets when an actor starts again (`docs/protocol.md#restore`,
//! `docs/design.md#re-ack-heals-lost-acks`).

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use crate::close::KnownClose;
use crate::time::Timestamp;

use super::outbox::{close_kind, send_ack};
use super::socket::{Phase, Socket};
use super::table::slot_mut;
use super::{Action, ActorError, ActorState, CloseReason, PersistedSocket, Runner, SocketId};

/// What [`Runner::restore`] did, by verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RestoreSummary {
    /// Case 1 — listed by the gateway and persisted: restored ([`Action::Restored`]) and the
    /// persisted index re-acked.
    pub restored: usize,
    /// Case 2 — listed by the gateway, no metadata: closed on the gateway with 1000
    /// `ws.meta_not_found_during_restore`.
    pub meta_not_found: usize,
    /// Case 3 — metadata the gateway no longer lists: closed locally with
    /// [`CloseReason::StaleMetadata`] and [`Action::DeleteMetadata`], and 1000
    /// `ws.stale_metadata` published to the gateway.
    pub stale: usize,
    /// Entries skipped: a repeated metadata entry, or a socket id that is live under another
    /// actor (left untouched).
    pub skipped: usize,
    /// Case 1 sockets refused because the runner already held
    /// [`RunnerConfig::max_sockets`](super::RunnerConfig::max_sockets) sockets: closed on the
    /// gateway with 1011 `Server Error` (as an open beyond the limit) and
    /// [`Action::DeleteMetadata`].
    pub socket_limit: usize,
    /// Tunnel messages that were queued while the actor started, processed after the restore.
    pub replayed: usize,
}

impl Runner {
    /// Restores the actor's hibernated sockets and starts it running. `persisted` is the app's
    /// stored metadata for the actor's hibernatable sockets; it is matched against the
    /// gateway's list given to [`actor_starting`](Self::actor_starting) by [`SocketId`]
    /// equality (both the gateway id and the request id, byte for byte):
    ///
    /// * in both — restored: open and hibernatable, with the persisted indices; emits
    ///   [`Action::Restored`] (no `Open`) and acks the persisted index at once, so an ack lost
    ///   before the actor slept heals;
    /// * gateway only — publishes `ToServerWebSocketClose { 1000,
    ///   "ws.meta_not_found_during_restore" }`;
    /// * metadata only — [`CloseReason::StaleMetadata`] locally and [`Action::DeleteMetadata`];
    ///   and `ToServerWebSocketClose { 1000, "ws.stale_metadata" }` is published (upstream
    ///   publishes nothing): the list comes from records the gateway writes asynchronously, so
    ///   a request whose record is missing (a failed or late upsert) may still be live there,
    ///   and would otherwise stay open with no socket behind it. A gateway that no longer
    ///   holds the request drops the close;
    /// * in both, but the runner already holds
    ///   [`RunnerConfig::max_sockets`](super::RunnerConfig::max_sockets) sockets — refused like an
    ///   open beyond the limit: publishes `ToServerWebSocketClose { 1011, "Server Error" }` and
    ///   emits [`Action::DeleteMetadata`] (no [`Action::Restored`]).
    ///
    /// Then the messages queued while the actor started are processed in order. Call this even
    /// with an empty list: it is what makes the actor run.
    ///
    /// # Errors
    /// [`ActorError::NotStarting`] if the actor was never announced with `actor_starting`;
    /// [`ActorError::AlreadyRestored`] if it was restored already.
    pub fn restore(
        &mut self,
        now: Timestamp,
        actor_id: &str,
        persisted: Vec<PersistedSocket>,
    ) -> Result<RestoreSummary, ActorError> {
        let now = self.advance(now);
        let Some(&aslot) = self.actor_index.get(actor_id) else {
            return Err(ActorError::NotStarting {
                actor_id: actor_id.into(),
            });
        };
        let Some(actor) = self.actors.get_mut(aslot).and_then(Option::as_mut) else {
            return Err(ActorError::NotStarting {
                actor_id: actor_id.into(),
            });
        };
        if actor.state != ActorState::Starting {
            return Err(ActorError::AlreadyRestored {
                actor_id: actor_id.into(),
            });
        }
        let hibernating = core::mem::take(&mut actor.hibernating);
        let routes = core::mem::take(&mut actor.routes);
        let queue = core::mem::take(&mut actor.queue);
        actor.queued_bytes = 0;
        actor.state = ActorState::Running;
        let actor_id = actor.id.clone();
        self.clear_routes(aslot, routes);

        let listed: BTreeSet<SocketId> = hibernating.iter().copied().collect();
        let mut seen = BTreeSet::new();
        let mut summary = RestoreSummary::default();
        for meta in persisted {
            if !seen.insert(meta.socket) || self.socket_index.contains_key(&meta.socket) {
                summary.skipped += 1;
                continue;
            }
            if !listed.contains(&meta.socket) {
                summary.stale += 1;
                self.stats.restore_stale += 1;
                self.stats.closed_stale += 1;
                self.actions.push_back(Action::Closed {
                    socket: meta.socket,
                    reason: CloseReason::StaleMetadata,
                });
                self.actions.push_back(Action::DeleteMetadata {
                    socket: meta.socket,
                    actor_id: actor_id.clone(),
                });
                let kind = close_kind(&KnownClose::StaleMetadata.frame(), false);
                self.publish_stateless(meta.socket, kind);
                // Closed for good here: a later probe for it is answered `ws.socket_not_found`
                // (that close may be lost), not dropped as a hand-back.
                self.handed_back.forget(meta.socket);
                continue;
            }
            if self.live_sockets >= self.config.max_sockets {
                summary.socket_limit += 1;
                self.stats.dropped_socket_limit += 1;
                let kind = close_kind(&KnownClose::ServerError.frame(), false);
                self.publish_stateless(meta.socket, kind);
                self.actions.push_back(Action::DeleteMetadata {
                    socket: meta.socket,
                    actor_id: actor_id.clone(),
                });
                continue;
            }
            self.restore_one(now, aslot, &actor_id, &meta);
            summary.restored += 1;
        }
        for id in hibernating {
            if seen.contains(&id) {
                continue;
            }
            if self.socket_index.contains_key(&id) {
                summary.skipped += 1;
                continue;
            }
            summary.meta_not_found += 1;
            self.stats.restore_meta_not_found += 1;
            let kind = close_kind(&KnownClose::MetaNotFoundDuringRestore.frame(), false);
            self.publish_stateless(id, kind);
        }
        self.stats.restore_skipped += crate::runner::socket::len_u64(summary.skipped);

        for msg in queue {
            summary.replayed += 1;
            // Errors are counted in the stats; a queued message has no caller to report to.
            let _ = self.dispatch(now, msg);
        }
        self.finish();
        Ok(summary)
    }

    /// Restore case 1 for one socket.
    fn restore_one(
        &mut self,
        now: Timestamp,
        aslot: usize,
        actor_id: &str,
        meta: &PersistedSocket,
    ) {
        let mut socket = Socket::new(
            meta.socket,
            aslot,
            meta.server_index,
            self.config.persist_retry_initial,
        );
        socket.phase = Phase::Open;
        socket.hibernatable = true;
        socket.awaiting_replay = true;
        socket.last_persisted = Some(meta.server_index);
        socket.next_client = meta.client_index;
        let slot = self.insert_socket(socket);
        self.stats.restored += 1;
        self.actions.push_back(Action::Restored {
            socket: meta.socket,
            actor_id: actor_id.into(),
            server_index: meta.server_index,
        });
        let framing = self.config.framing;
        if let Some(s) = slot_mut(&mut self.slots, slot) {
            send_ack(&mut self.actions, framing, s, meta.server_index, now);
            self.stats.acks_sent += 1;
            // The restore ack does not hold back the re-ack of the first replayed duplicate: it
            // goes out before the gateway wakes the request, and a gateway still routing the
            // request to the actor's previous runner drops it (as does a lossy network). The
            // duplicates of the replay are then the only chance to heal a lost ack. When the
            // restore ack does arrive, nothing acked is replayed.
            s.last_ack_at = None;
        }
    }
}
