//! Counters and gauges: [`GatewayStats`] for the whole gateway, [`RequestInfo`] and
//! [`RequestStats`] for one request.

use core::fmt;

use crate::index::MessageIndex;
use crate::stats_fmt::{compact_debug, sum};
use crate::time::Timestamp;

use super::request::{Phase, RouteId};

/// Counters (monotonic) and gauges (current values) of a [`Gateway`](super::Gateway).
///
/// `Debug` shows only the fields that are not zero; `Display` is a one-line summary.
///
/// Every dropped runner input increments exactly one `dropped_*` counter; every ignored ack
/// exactly one `acks_*` counter.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
#[non_exhaustive]
pub struct GatewayStats {
    // ---- gauges ----
    /// Live requests.
    pub requests: u64,
    /// Live requests that are hibernating.
    pub hibernating: u64,
    /// Pending (unacknowledged) messages across all requests.
    pub pending_messages: u64,
    /// Pending bytes across all requests (encoded frame sizes).
    pub pending_bytes: u64,

    // ---- lifecycle ----
    /// Requests opened.
    pub opened: u64,
    /// Requests the runner accepted.
    pub accepted: u64,
    /// Requests closed (each emitted one [`Action::Closed`](super::Action::Closed)).
    pub closed: u64,
    /// Hibernations entered.
    pub hibernations: u64,
    /// Wakes requested with [`Action::RequestWake`](super::Action::RequestWake).
    pub wake_requests: u64,
    /// Wakes performed.
    pub wakes: u64,

    // ---- client → runner ----
    /// Client messages published (first sends only).
    pub messages_sent: u64,
    /// Payload bytes of those messages.
    pub payload_bytes_sent: u64,
    /// Pending messages re-published on wake.
    pub messages_replayed: u64,
    /// Pending messages re-published by the retransmit timer.
    pub messages_retransmitted: u64,
    /// Pending messages released by acks.
    pub messages_acked: u64,
    /// Acks that released at least one message.
    pub acks_applied: u64,
    /// Acks at or behind what was already released (duplicates).
    pub acks_stale: u64,
    /// Acks ahead of the last index sent, or far outside the window: ignored.
    pub acks_invalid: u64,
    /// Acks for requests that do not hibernate (nothing is buffered): ignored.
    pub acks_not_hibernatable: u64,
    /// Client messages refused with [`SendError::Backpressure`](super::SendError::Backpressure).
    pub backpressured: u64,
    /// [`Action::ClientWritable`](super::Action::ClientWritable) emitted.
    pub client_writable: u64,

    // ---- runner → client ----
    /// Runner messages forwarded to the client.
    pub messages_to_client: u64,
    /// Runner messages dropped because the client had closed (its close waited for acks).
    pub messages_to_closed_client: u64,
    /// Pings published.
    pub pings_sent: u64,
    /// Pongs accepted.
    pub pongs_received: u64,

    // ---- hibernating record ----
    /// Upserts requested.
    pub record_upserts: u64,
    /// Upserts reported successful.
    pub record_upserts_succeeded: u64,
    /// Upserts reported failed.
    pub record_upserts_failed: u64,
    /// Deletes requested.
    pub record_deletes: u64,

    // ---- close reasons ----
    /// Closed by the client (with or without a close frame).
    pub closed_by_client: u64,
    /// Closed by the runner (after or before open).
    pub closed_by_runner: u64,
    /// Open timeouts.
    pub open_timeouts: u64,
    /// Closed because the actor stopped (before open, or not hibernatable).
    pub closed_actor_stopped: u64,
    /// Closed by a pending limit ([`OverflowPolicy::Close`](super::OverflowPolicy::Close) or a
    /// message that could never fit).
    pub closed_pending_limit: u64,
    /// Closed by ping timeout.
    pub ping_timeouts: u64,
    /// Hibernations caused by ping timeout.
    pub ping_timeout_hibernations: u64,
    /// Collected: ack timeout.
    pub collected_ack_timeout: u64,
    /// Collected: hibernating record not refreshed.
    pub collected_hibernation_timeout: u64,
    /// Collected: not woken in time.
    pub collected_wake_timeout: u64,
    /// Collected: a held client close whose messages were not all acknowledged in time.
    pub collected_close_timeout: u64,
    /// Client closes held until the runner acknowledged the pending messages.
    pub client_closes_held: u64,

    // ---- dropped runner input (one per `ReceiveError` variant) ----
    /// Frames that did not decode.
    pub dropped_malformed: u64,
    /// Messages for unknown requests.
    pub dropped_unknown_request: u64,
    /// Messages addressed to another gateway.
    pub dropped_wrong_gateway: u64,
    /// Messages from a route the request is not routed to.
    pub dropped_wrong_route: u64,
    /// Messages invalid for the request's phase.
    pub dropped_invalid_for_phase: u64,
    /// Unsupported (HTTP) message kinds.
    pub dropped_unsupported: u64,
    /// Runner messages for a request this gateway no longer has, answered with close 1011
    /// `ws.request_not_found`.
    pub unknown_request_answers: u64,
    /// Entries in the timer queue (live and stale), a gauge.
    pub timer_entries: u64,
}

/// Counters of one request.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
#[non_exhaustive]
pub struct RequestStats {
    /// Client messages published (first sends only).
    pub messages_sent: u64,
    /// Messages re-published (wake replays and retransmits).
    pub messages_resent: u64,
    /// Messages released by acks.
    pub messages_acked: u64,
    /// Acks ignored (stale or invalid).
    pub acks_ignored: u64,
}

/// A snapshot of one request ([`Gateway::request`](super::Gateway::request)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestInfo {
    /// Current phase.
    pub phase: Phase,
    /// Current route (changes only on wake).
    pub route: RouteId,
    /// Whether the runner accepted it as hibernatable.
    pub hibernatable: bool,
    /// The index the next gateway → runner tunnel message gets.
    pub next_index: MessageIndex,
    /// Pending (unacknowledged) messages.
    pub pending_messages: usize,
    /// Pending bytes (encoded frame sizes).
    pub pending_bytes: u64,
    /// Index of the oldest pending message.
    pub oldest_unacked: Option<MessageIndex>,
    /// When the oldest pending message was last sent (first send or replay).
    pub oldest_unacked_sent_at: Option<Timestamp>,
    /// Per-request counters.
    pub stats: RequestStats,
}

compact_debug!(GatewayStats {
    requests,
    hibernating,
    pending_messages,
    pending_bytes,
    opened,
    accepted,
    closed,
    hibernations,
    wake_requests,
    wakes,
    messages_sent,
    payload_bytes_sent,
    messages_replayed,
    messages_retransmitted,
    messages_acked,
    acks_applied,
    acks_stale,
    acks_invalid,
    acks_not_hibernatable,
    backpressured,
    client_writable,
    messages_to_client,
    messages_to_closed_client,
    pings_sent,
    pongs_received,
    record_upserts,
    record_upserts_succeeded,
    record_upserts_failed,
    record_deletes,
    closed_by_client,
    closed_by_runner,
    open_timeouts,
    closed_actor_stopped,
    closed_pending_limit,
    ping_timeouts,
    ping_timeout_hibernations,
    collected_ack_timeout,
    collected_hibernation_timeout,
    collected_wake_timeout,
    collected_close_timeout,
    client_closes_held,
    dropped_malformed,
    dropped_unknown_request,
    dropped_wrong_gateway,
    dropped_wrong_route,
    dropped_invalid_for_phase,
    dropped_unsupported,
    unknown_request_answers,
    timer_entries,
});

compact_debug!(RequestStats {
    messages_sent,
    messages_resent,
    messages_acked,
    acks_ignored,
});

impl fmt::Display for GatewayStats {
    /// `3 requests (1 hibernating), 12 pending (4096 B); 1000 sent, 20 replayed, 990 acked;
    /// 7 closed; 2 inputs dropped, 1 ack ignored`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dropped = sum(&[
            self.dropped_malformed,
            self.dropped_unknown_request,
            self.dropped_wrong_gateway,
            self.dropped_wrong_route,
            self.dropped_invalid_for_phase,
            self.dropped_unsupported,
        ]);
        let acks_ignored = sum(&[
            self.acks_stale,
            self.acks_invalid,
            self.acks_not_hibernatable,
        ]);
        write!(
            f,
            "{} requests ({} hibernating), {} pending ({} B); {} sent, {} replayed, {} acked; \
             {} closed; {} inputs dropped, {} acks ignored",
            self.requests,
            self.hibernating,
            self.pending_messages,
            self.pending_bytes,
            self.messages_sent,
            sum(&[self.messages_replayed, self.messages_retransmitted]),
            self.messages_acked,
            self.closed,
            dropped,
            acks_ignored,
        )
    }
}
