//! [`RunnerStats`]: counters of one [`Runner`](super::Runner).

use core::fmt;

use crate::stats_fmt::{compact_debug, sum};

/// Counters since the runner was created. All fields only grow, except the gauges marked so.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
#[non_exhaustive]
pub struct RunnerStats {
    /// Frames given to [`handle_frame`](super::Runner::handle_frame).
    pub frames_received: u64,
    /// Messages delivered to the app ([`Action::Message`](super::Action::Message)).
    pub delivered: u64,
    /// Payload bytes delivered to the app.
    pub delivered_bytes: u64,
    /// Messages dropped as duplicates (index at or before the last delivered one, or already
    /// held).
    pub duplicates: u64,
    /// Messages past a gap on hibernatable sockets (each new out-of-order index counts once).
    pub gaps: u64,
    /// Messages held out of order ([`GapPolicy::Await`](super::GapPolicy::Await)).
    pub held: u64,
    /// Held messages later delivered in order.
    pub held_delivered: u64,
    /// Sockets closed with 1008 `ws.message_index_skip` (gap, held overflow or gap timeout).
    pub gap_closes: u64,
    /// Of `gap_closes`: closes because the held buffer overflowed.
    pub held_overflows: u64,
    /// Of `gap_closes`: closes because a gap stayed open for `gap_timeout`.
    pub gap_timeouts: u64,
    /// Messages past a gap dropped by a restored socket before the gateway's replay arrived
    /// (they were published before the request hibernated; the replay resends them).
    pub dropped_before_replay: u64,
    /// [`Action::Persist`](super::Action::Persist) emitted.
    pub persists_requested: u64,
    /// Persists reported durable ([`persisted`](super::Runner::persisted)).
    pub persists_completed: u64,
    /// Persists reported failed ([`persist_failed`](super::Runner::persist_failed)).
    pub persists_failed: u64,
    /// `ToServerWebSocketMessageAck` published (all causes).
    pub acks_sent: u64,
    /// Of `acks_sent`: re-acks triggered by duplicates of persisted messages.
    pub reacks: u64,
    /// Restore case 1: sockets restored.
    pub restored: u64,
    /// Restore case 2: sockets the gateway listed without metadata (closed 1000
    /// `ws.meta_not_found_during_restore`).
    pub restore_meta_not_found: u64,
    /// Restore case 3: metadata the gateway no longer lists (closed locally `ws.stale_metadata`).
    pub restore_stale: u64,
    /// Restore entries skipped because the socket id is live under another actor, or repeated.
    pub restore_skipped: u64,
    /// Opens announced to the app ([`Action::Open`](super::Action::Open)).
    pub opens: u64,
    /// Opens for a socket that already exists (answered per upstream open replay).
    pub duplicate_opens: u64,
    /// Opens answered with 1011 `Actor not found`.
    pub actor_not_found: u64,
    /// WebSocket messages published by the app ([`send`](super::Runner::send)).
    pub sent: u64,
    /// Pongs published in answer to pings.
    pub pongs: u64,
    /// Closes by reason: the gateway closed.
    pub closed_gateway: u64,
    /// Closes by reason: the app closed.
    pub closed_app: u64,
    /// Closes by reason: the app rejected the open.
    pub closed_rejected: u64,
    /// Closes by reason: `ws.stale_metadata`.
    pub closed_stale: u64,
    /// Closes by reason: the actor stopped (non-hibernatable sockets).
    pub closed_actor_stopped: u64,
    /// Closes by reason: the app hibernated the socket.
    pub closed_hibernated: u64,
    /// Hibernatable sockets settled silently when their actor stopped.
    pub settled_on_stop: u64,
    /// Dropped: malformed frames.
    pub dropped_malformed: u64,
    /// Dropped: opens for unknown or stopping actors.
    pub dropped_unknown_actor: u64,
    /// Dropped: messages or closes for unknown sockets.
    pub dropped_unknown_socket: u64,
    /// Dropped: messages for sockets that are not open.
    pub dropped_not_open: u64,
    /// Dropped: the starting actor's queue was full.
    pub dropped_queue_full: u64,
    /// Dropped: opens (and restored sockets) beyond `max_sockets`.
    pub dropped_socket_limit: u64,
    /// Dropped: unsupported message kinds.
    pub dropped_unsupported: u64,
    /// Frames for a socket the runner handed back recently, dropped silently.
    pub dropped_handed_back: u64,
    /// Frames for a socket the runner does not hold answered with close 1011
    /// `ws.socket_not_found`.
    pub not_found_answers: u64,
    /// Tunnel messages queued for starting actors.
    pub queued: u64,
    /// Gauge: sockets currently known.
    pub sockets: u64,
    /// Gauge: actors currently known.
    pub actors: u64,
}

compact_debug!(RunnerStats {
    frames_received,
    delivered,
    delivered_bytes,
    duplicates,
    gaps,
    held,
    held_delivered,
    gap_closes,
    held_overflows,
    gap_timeouts,
    dropped_before_replay,
    persists_requested,
    persists_completed,
    persists_failed,
    acks_sent,
    reacks,
    restored,
    restore_meta_not_found,
    restore_stale,
    restore_skipped,
    opens,
    duplicate_opens,
    actor_not_found,
    sent,
    pongs,
    closed_gateway,
    closed_app,
    closed_rejected,
    closed_stale,
    closed_actor_stopped,
    closed_hibernated,
    settled_on_stop,
    dropped_malformed,
    dropped_unknown_actor,
    dropped_unknown_socket,
    dropped_not_open,
    dropped_queue_full,
    dropped_socket_limit,
    dropped_unsupported,
    dropped_handed_back,
    not_found_answers,
    queued,
    sockets,
    actors,
});

impl fmt::Display for RunnerStats {
    /// `2 actors, 5 sockets; 1000 delivered, 3 duplicates, 0 gaps; 40 of 41 persists (0 failed),
    /// 40 acks; 2 closed; 1 input dropped`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let closed = sum(&[
            self.closed_gateway,
            self.closed_app,
            self.closed_rejected,
            self.closed_stale,
            self.closed_actor_stopped,
            self.closed_hibernated,
            self.gap_closes,
        ]);
        let dropped = sum(&[
            self.dropped_malformed,
            self.dropped_unknown_actor,
            self.dropped_unknown_socket,
            self.dropped_not_open,
            self.dropped_queue_full,
            self.dropped_socket_limit,
            self.dropped_unsupported,
        ]);
        write!(
            f,
            "{} actors, {} sockets; {} delivered, {} duplicates, {} gaps; {} of {} persists \
             ({} failed), {} acks; {} closed; {} inputs dropped",
            self.actors,
            self.sockets,
            self.delivered,
            self.duplicates,
            self.gaps,
            self.persists_completed,
            self.persists_requested,
            self.persists_failed,
            self.acks_sent,
            closed,
            dropped,
        )
    }
}
