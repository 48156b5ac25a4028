//! [`ControlStats`]: counters and gauges of the control engine; [`RunnerInfo`]: one runner.

use alloc::string::String;

/// Counters (cumulative) and gauges (current) of a [`Control`](super::Control) engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ControlStats {
    /// Gauge: open runner connections.
    pub connections: u64,
    /// Gauge: known runners.
    pub runners: u64,
    /// Gauge: known actors.
    pub actors: u64,
    /// Handshakes completed (new runners and resumed ones).
    pub handshakes: u64,
    /// Handshakes of a known runner within its lost threshold.
    pub runners_resumed: u64,
    /// Runners lost.
    pub runners_lost: u64,
    /// Connections closed for an unanswered ping.
    pub ping_timeouts: u64,
    /// Commands sent (resends included).
    pub commands_sent: u64,
    /// Commands resent after a reconnect.
    pub commands_resent: u64,
    /// Events applied.
    pub events_applied: u64,
    /// Events dropped as duplicates (index already applied).
    pub events_duplicate: u64,
    /// Events of an older generation, acknowledged and ignored.
    pub events_stale: u64,
    /// Events past a gap in the runner's indices (applied; the missing ones are lost).
    pub event_gaps: u64,
    /// Actor starts (`CommandStartActor` sent).
    pub starts: u64,
    /// Actor stops, for any reason.
    pub stops: u64,
    /// Hibernating requests woken on `Running`.
    pub requests_woken: u64,
    /// Gateway frames dropped because their runner had no connection.
    pub frames_unroutable: u64,
    /// Gateway pings answered.
    pub gateway_pings_answered: u64,
    /// Frames from runners dropped (any [`ReceiveError`](super::ReceiveError)).
    pub frames_dropped: u64,
    /// (Cluster) Local runners' tunnel messages forwarded to other gateways.
    pub frames_forwarded: u64,
    /// (Cluster) Gateway frames published to remote routes.
    pub frames_published_remote: u64,
}

/// A snapshot of one runner ([`Control::runner`](super::Control::runner)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunnerInfo {
    /// The runner id.
    pub runner_id: String,
    /// Its name (pool).
    pub name: String,
    /// Whether it has a connection.
    pub connected: bool,
    /// Whether it announced `ToServerStopping`.
    pub draining: bool,
    /// Its slots.
    pub total_slots: u32,
    /// Actors placed on it.
    pub actors: usize,
}
