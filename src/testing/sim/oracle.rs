//! The oracle: the facts it keeps about every connection and every check on them (after each
//! step, once drained, at the end).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::close::CloseFrame;
use crate::gateway::{self, Phase as GwPhase};
use crate::runner::{self, Runner, SocketId, SocketState};
use crate::time::Timestamp;
use crate::wire::RequestId;

use super::client::{ClientState, Conn};
use super::format::EntryFmt;
use super::world::{Entry, MAX_VIOLATIONS, Stage, World};

#[derive(Debug, Default)]
pub(super) struct Totals {
    pub(super) delivered: u64,
    pub(super) duplicates: u64,
    pub(super) gaps_healed: u64,
    pub(super) gap_closes: u64,
    pub(super) reacks: u64,
    pub(super) restored: u64,
}

pub(super) fn first_mismatch(log: &[Entry], accepted: &[Entry]) -> Option<usize> {
    log.iter()
        .zip(accepted.iter().map(Some).chain(core::iter::repeat(None)))
        .position(|(e, a)| a != Some(e))
}

/// The oracle's own records: what it found and what it counted.
#[derive(Debug, Default)]
pub(super) struct Oracle {
    /// Connections whose logs changed in this step.
    pub(super) dirty: Vec<usize>,
    /// Faults injected outside the network, by kind.
    pub(super) faults: BTreeMap<&'static str, u64>,
    /// Closes by side and reason.
    pub(super) closes: BTreeMap<String, u64>,
    pub(super) totals: Totals,
    pub(super) counts: BTreeMap<&'static str, u64>,
    pub(super) violations: Vec<String>,
}

/// What the oracle knows about one connection: what the gateway accepted and when, every close
/// each side reported, the faults that touched its path, and what explains an orphan.
#[derive(Debug, Default)]
#[allow(clippy::struct_excessive_bools)] // independent facts about one connection
pub(super) struct Facts {
    /// What `client_message` accepted, in order.
    pub(super) accepted: Vec<Entry>,
    pub(super) gw_close: Option<gateway::CloseReason>,
    pub(super) runner_closes: Vec<runner::CloseReason>,
    /// Close frames (not hand-backs) runners published for this socket.
    pub(super) runner_published: Vec<CloseFrame>,
    pub(super) client_got: Option<CloseFrame>,
    pub(super) app_sent: BTreeSet<u64>,
    /// A close for this connection was lost in transit (either way), or the gateway closed it
    /// while hibernating (it publishes nothing then), or a duplicated open recreated its
    /// socket after the close: the two sides may legitimately disagree on whether it lives.
    pub(super) orphan_cause: Option<&'static str>,
    /// The first fault that touched this connection's path (a frame of it lost, its runner or
    /// app crashed, a clock jump, a failed record upsert, a full runner queue): a timeout
    /// close is explained only by one.
    pub(super) disturbed: Option<&'static str>,
    /// The first lasting fault on its path (crash, clock jump, failed record upsert, full runner
    /// queue): explains a timeout whenever it happened.
    pub(super) lasting: Option<&'static str>,
    /// The last transient fault on its path (a frame lost, reordered or duplicated): explains
    /// an ack timeout only if it came after the oldest unacked message was last sent.
    pub(super) last_transient_at: Option<Timestamp>,
    /// A metadata write of its socket landed at least once.
    pub(super) meta_written: bool,
    /// When each accepted message was accepted (parallel to `accepted`).
    pub(super) accepted_at: Vec<Timestamp>,
    /// The last wake (which replays, and restarts the ack clock of, every pending message).
    pub(super) last_wake_at: Timestamp,
    /// Queued for the log checks of this step.
    pub(super) dirty: bool,
}

impl World {
    pub(super) fn fault(&mut self, kind: &'static str) {
        *self.oracle.faults.entry(kind).or_insert(0) += 1;
    }

    pub(super) fn count(&mut self, kind: &'static str) {
        *self.oracle.counts.entry(kind).or_insert(0) += 1;
    }

    pub(super) fn violation(&mut self, msg: String) {
        tr!(self, "VIOLATION: {msg}");
        if self.oracle.violations.len() < MAX_VIOLATIONS {
            self.oracle.violations.push(msg);
        }
    }

    pub(super) fn disturb(&mut self, c: usize, cause: &'static str) {
        let now = self.now;
        let conn = &mut self.conns[c];
        conn.facts.disturbed.get_or_insert(cause);
        if cause.starts_with("frame") {
            conn.facts.last_transient_at = Some(now);
        } else {
            conn.facts.lasting.get_or_insert(cause);
        }
    }

    pub(super) fn disturb_req(&mut self, req: Option<RequestId>, cause: &'static str) {
        if let Some(&c) = req.as_ref().and_then(|r| self.by_req.get(r)) {
            self.disturb(c, cause);
        }
    }

    pub(super) fn mark(&mut self, c: usize) {
        if !self.conns[c].facts.dirty {
            self.conns[c].facts.dirty = true;
            self.oracle.dirty.push(c);
        }
    }

    pub(super) fn add_stats(&mut self, engine: &Runner) {
        let s = engine.stats();
        self.oracle.totals.duplicates += s.duplicates;
        self.oracle.totals.gaps_healed += s.held_delivered;
        self.oracle.totals.gap_closes += s.gap_closes;
        self.oracle.totals.reacks += s.reacks;
        self.oracle.totals.restored += s.restored;
    }

    pub(super) fn check_step(&mut self) {
        // 1. Logs of the connections that changed: prefixes of what the gateway accepted.
        for c in core::mem::take(&mut self.oracle.dirty) {
            self.conns[c].facts.dirty = false;
            self.check_logs(c);
        }
        // 1b. Ack implies durable; 2. limits.
        let g = self.p.gateway.clone();
        let mut total = 0u64;
        for c in 0..self.conns.len() {
            let req = self.conns[c].req;
            let Some(info) = self.gw().request(req) else {
                continue;
            };
            total += info.pending_bytes;
            if info.pending_messages > usize::from(g.max_pending_messages)
                || info.pending_bytes > g.max_pending_bytes
            {
                self.violation(format!(
                    "conn{c}: {} pending / {} B over the limits",
                    info.pending_messages, info.pending_bytes
                ));
            }
            if info.hibernatable {
                let conn = &self.conns[c];
                let acked = conn
                    .facts
                    .accepted
                    .len()
                    .saturating_sub(info.pending_messages);
                if conn.committed.len() < acked {
                    self.violation(format!(
                        "conn{c}: the gateway released {acked} acked messages but only {} are committed",
                        conn.committed.len()
                    ));
                }
            }
        }
        let stats = self.gw().stats();
        if total != stats.pending_bytes || stats.pending_bytes > g.max_gateway_pending_bytes {
            self.violation(format!(
                "gateway pending bytes {} (requests sum to {total}, limit {})",
                stats.pending_bytes, g.max_gateway_pending_bytes
            ));
        }
        if (self.steps.is_multiple_of(8) || self.stage != Stage::Chaos)
            && let Err(e) = self.ctl.check_invariants()
        {
            self.violation(format!("control invariant: {e}"));
        }
        let rc = &self.p.runner;
        let mut bad = None;
        for (r, slot) in self.runners.iter().enumerate() {
            let Some(engine) = slot.tunnel() else {
                continue;
            };
            if (self.steps.is_multiple_of(8) || self.stage != Stage::Chaos)
                && let Err(e) = engine.check_invariants()
            {
                bad = Some(format!("runner{r} invariant: {e}"));
            }
            for id in slot.sessions.keys() {
                if let Some(s) = engine.socket(*id)
                    && (s.held > rc.max_held_messages || s.held_bytes > rc.max_held_bytes)
                {
                    bad = Some(format!(
                        "runner{r} holds {} / {} B past the limits",
                        s.held, s.held_bytes
                    ));
                }
            }
        }
        if let Some(b) = bad {
            self.violation(b);
        }
    }

    pub(super) fn check_logs(&mut self, c: usize) {
        let conn = &self.conns[c];
        if let Some(i) = first_mismatch(&conn.committed, &conn.facts.accepted) {
            let msg = format!(
                "conn{c}: committed log is not a prefix of the accepted messages at position {i}: committed {} vs accepted {}",
                EntryFmt(conn.committed.get(i)),
                EntryFmt(conn.facts.accepted.get(i))
            );
            self.violation(msg);
            return;
        }
        let Some((r, inc)) = conn.session else {
            return;
        };
        if self.runners[r].inc != inc {
            return;
        }
        let Some(s) = self.runners[r].sessions.get(&conn.socket) else {
            return;
        };
        if s.zombie || s.dead || !s.hibernatable {
            return;
        }
        // The session's deliveries continue the log from where the session started; the
        // committed part of them is in the log already.
        let base = s.base;
        for (k, e) in s.delivered.iter().enumerate() {
            if conn.facts.accepted.get(base + k) != Some(e) {
                let msg = format!(
                    "conn{c}: committed + session log is not a prefix of the accepted messages at position {}: delivered {} vs accepted {}",
                    base + k,
                    EntryFmt(Some(e)),
                    EntryFmt(conn.facts.accepted.get(base + k))
                );
                self.violation(msg);
                return;
            }
        }
    }

    /// Every live hibernatable connection has all it sent committed and acked.
    pub(super) fn check_drained(&mut self, when: &str) {
        for c in 0..self.conns.len() {
            let conn = &self.conns[c];
            let Some(info) = self.gw().request(conn.req) else {
                continue;
            };
            if info.hibernatable && conn.committed != conn.facts.accepted {
                let msg = format!(
                    "liveness ({when}): conn{c} is open and drained but its committed log has {} of {} accepted messages",
                    conn.committed.len(),
                    conn.facts.accepted.len()
                );
                self.violation(msg);
            }
        }
    }

    /// After the final sleep/wake round: every live request is active and hibernatable, held by
    /// exactly one runner socket; every runner socket belongs to a live request; storage holds
    /// the metadata of exactly the sockets runners hold, and no actor lists a closed request as
    /// hibernating. An orphan is a violation, whatever caused it: a live request no runner
    /// holds (a ghost) or a runner socket whose request is closed (a zombie).
    #[allow(clippy::too_many_lines)] // one check after another
    pub(super) fn check_final(&mut self) {
        let mut f = Final::default();
        for (c, conn) in self.conns.iter().enumerate() {
            self.final_conn(c, conn, &mut f);
        }
        for (r, slot) in self.runners.iter().enumerate() {
            let expected = f.held_by.get(&r).copied().unwrap_or(0);
            if let Some(e) = slot.tunnel()
                && e.len() != expected
            {
                f.problems.push(format!(
                    "runner{r} holds {} sockets, {expected} of known connections (leak)",
                    e.len()
                ));
            }
        }
        for (a, actor) in self.actors.iter().enumerate() {
            let stored: BTreeSet<SocketId> = actor.meta.keys().copied().collect();
            let expected = f.held_sockets.remove(&a).unwrap_or_default();
            if stored != expected {
                f.problems.push(format!(
                    "{} stores metadata for {} sockets, runners hold {} (leak or loss)",
                    actor.id,
                    stored.len(),
                    expected.len()
                ));
            }
        }
        for actor in &self.actors {
            let listed = self
                .ctl
                .actor(&actor.id)
                .map(|i| i.hibernating_requests)
                .unwrap_or_default();
            for req in listed {
                if self.gw().request(req).is_none() {
                    f.problems.push(format!(
                        "{} lists closed request {req} as hibernating (leak)",
                        actor.id
                    ));
                }
            }
        }
        let stats = self.gw().stats();
        if stats.pending_bytes != 0 || stats.pending_messages != 0 {
            f.problems
                .push(format!("gateway still buffers {} B", stats.pending_bytes));
        }
        if let Err(e) = self.ctl.check_invariants() {
            f.problems.push(format!("control invariant: {e}"));
        }
        for cause in f.orphans {
            *self.oracle.counts.entry(cause).or_insert(0) += 1;
        }
        for p in f.problems {
            self.violation(format!("final state: {p}"));
        }
    }

    /// The end state of one connection: gone from both sides, or active and hibernatable with
    /// one runner socket.
    fn final_conn(&self, c: usize, conn: &Conn, f: &mut Final) {
        let holders: Vec<usize> = self
            .runners
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.tunnel().and_then(|e| e.socket(conn.socket)).is_some())
            .map(|(r, _)| r)
            .collect();
        for &r in &holders {
            *f.held_by.entry(r).or_insert(0) += 1;
            f.held_sockets
                .entry(conn.actor)
                .or_default()
                .insert(conn.socket);
        }
        let Some(info) = self.gw().request(conn.req) else {
            if conn.state != ClientState::Closed {
                f.problems
                    .push(format!("conn{c} is gone from the gateway without a Closed"));
            }
            // A client close is reported only after the runner acknowledged (so committed)
            // every message the gateway accepted: nothing the client sent before its close may
            // be missing from the committed log, whatever crashed meanwhile.
            let client_closed = matches!(
                conn.facts.gw_close,
                Some(gateway::CloseReason::ClientClosed(_) | gateway::CloseReason::ClientGone)
            );
            if client_closed
                && conn.hibernatable == Some(true)
                && conn.committed.len() < conn.facts.accepted.len()
            {
                f.problems.push(format!(
                    "conn{c} was closed by its client, but only {} of its {} accepted messages were committed (lost)",
                    conn.committed.len(),
                    conn.facts.accepted.len()
                ));
            }
            if !holders.is_empty() {
                // Per-socket liveness: the gateway answers the socket's next message with
                // `ws.request_not_found`, and the final sleep/wake round drops any socket whose
                // request is not listed, so even a lost close or a stale open leaves none.
                let why = conn
                    .facts
                    .orphan_cause
                    .map_or_else(String::new, |cause| format!(" ({cause})"));
                f.problems.push(format!(
                    "conn{c} is closed but runner{holders:?} still holds its socket (zombie){why}"
                ));
            }
            return;
        };
        if info.phase != GwPhase::Active || !info.hibernatable || info.pending_messages > 0 {
            f.problems.push(format!(
                "conn{c} ends {:?}, hibernatable {}, {} pending",
                info.phase, info.hibernatable, info.pending_messages
            ));
        }
        let socket = self.route_owner(info.route).and_then(|(r, inc)| {
            self.runners
                .get(r)
                .filter(|s| s.inc == inc)
                .and_then(|s| s.tunnel())
                .and_then(|e| e.socket(conn.socket))
        });
        match socket {
            Some(s) if s.state == SocketState::Open && s.hibernatable => {}
            None => {
                // Per-socket liveness: the runner the request is routed to answers its probes
                // with `ws.socket_not_found`, whatever lost the socket (a lost close, failed
                // writes), so no live request may end without one.
                let why = conn
                    .facts
                    .orphan_cause
                    .map_or_else(String::new, |cause| format!(" ({cause})"));
                f.problems.push(format!(
                    "conn{c} is live but no runner holds its socket (ghost){why}"
                ));
            }
            Some(s) => f
                .problems
                .push(format!("conn{c}: its runner socket is {s:?}")),
        }
        if holders.len() > 1 {
            f.problems
                .push(format!("conn{c} is held by runners {holders:?}"));
        }
    }
}

/// What the final check collects across connections.
#[derive(Debug, Default)]
struct Final {
    problems: Vec<String>,
    /// Sockets each runner holds of known connections.
    held_by: BTreeMap<usize, usize>,
    /// Sockets held, by actor.
    held_sockets: BTreeMap<usize, BTreeSet<SocketId>>,
    /// Why each orphan may exist.
    orphans: Vec<&'static str>,
}
