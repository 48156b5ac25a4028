//! The oracle: the facts it keeps about every connection and every check on them (after each
//! step, once drained, at the end).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::gateway::Phase as GwPhase;
use crate::runner::{Runner, SocketId, SocketState};
use crate::wire::RequestId;

use super::client::ClientState;
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

impl World {
    pub(super) fn fault(&mut self, kind: &'static str) {
        *self.faults.entry(kind).or_insert(0) += 1;
    }

    pub(super) fn count(&mut self, kind: &'static str) {
        *self.counts.entry(kind).or_insert(0) += 1;
    }

    pub(super) fn violation(&mut self, msg: String) {
        tr!(self, "VIOLATION: {msg}");
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push(msg);
        }
    }

    pub(super) fn disturb(&mut self, c: usize, cause: &'static str) {
        let now = self.now;
        let conn = &mut self.conns[c];
        conn.disturbed.get_or_insert(cause);
        if cause.starts_with("frame") {
            conn.last_transient_at = Some(now);
        } else {
            conn.lasting.get_or_insert(cause);
        }
    }

    pub(super) fn disturb_req(&mut self, req: Option<RequestId>, cause: &'static str) {
        if let Some(&c) = req.as_ref().and_then(|r| self.by_req.get(r)) {
            self.disturb(c, cause);
        }
    }

    pub(super) fn mark(&mut self, c: usize) {
        if !self.conns[c].dirty {
            self.conns[c].dirty = true;
            self.dirty.push(c);
        }
    }

    pub(super) fn add_stats(&mut self, engine: &Runner) {
        let s = engine.stats();
        self.totals.duplicates += s.duplicates;
        self.totals.gaps_healed += s.held_delivered;
        self.totals.gap_closes += s.gap_closes;
        self.totals.reacks += s.reacks;
        self.totals.restored += s.restored;
    }

    pub(super) fn check_step(&mut self) {
        // 1. Logs of the connections that changed: prefixes of what the gateway accepted.
        for c in core::mem::take(&mut self.dirty) {
            self.conns[c].dirty = false;
            self.check_logs(c);
        }
        // 1b. Ack implies durable; 2. limits.
        let g = self.p.gateway.clone();
        let mut total = 0u64;
        for c in 0..self.conns.len() {
            let req = self.conns[c].req;
            let Some(info) = self.gw.request(req) else {
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
                let acked = conn.accepted.len().saturating_sub(info.pending_messages);
                if conn.committed.len() < acked {
                    self.violation(format!(
                        "conn{c}: the gateway released {acked} acked messages but only {} are committed",
                        conn.committed.len()
                    ));
                }
            }
        }
        let stats = self.gw.stats();
        if total != stats.pending_bytes || stats.pending_bytes > g.max_gateway_pending_bytes {
            self.violation(format!(
                "gateway pending bytes {} (requests sum to {total}, limit {})",
                stats.pending_bytes, g.max_gateway_pending_bytes
            ));
        }
        if (self.steps.is_multiple_of(8) || self.stage != Stage::Chaos)
            && let Err(e) = self.gw.check_invariants()
        {
            self.violation(format!("gateway invariant: {e}"));
        }
        let rc = &self.p.runner;
        let mut bad = None;
        for (r, slot) in self.runners.iter().enumerate() {
            let Some(engine) = slot.engine.as_ref() else {
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
        if let Some(i) = first_mismatch(&conn.committed, &conn.accepted) {
            let msg = format!(
                "conn{c}: committed log is not a prefix of the accepted messages at position {i}: committed {} vs accepted {}",
                EntryFmt(conn.committed.get(i)),
                EntryFmt(conn.accepted.get(i))
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
            if conn.accepted.get(base + k) != Some(e) {
                let msg = format!(
                    "conn{c}: committed + session log is not a prefix of the accepted messages at position {}: delivered {} vs accepted {}",
                    base + k,
                    EntryFmt(Some(e)),
                    EntryFmt(conn.accepted.get(base + k))
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
            let Some(info) = self.gw.request(conn.req) else {
                continue;
            };
            if info.hibernatable && conn.committed != conn.accepted {
                let msg = format!(
                    "liveness ({when}): conn{c} is open and drained but its committed log has {} of {} accepted messages",
                    conn.committed.len(),
                    conn.accepted.len()
                );
                self.violation(msg);
            }
        }
    }

    /// After the final sleep/wake round: every live request is active and hibernatable, held by
    /// exactly one runner socket; every runner socket belongs to a live request; storage holds
    /// the metadata of exactly the sockets runners hold, the record store no record of a
    /// closed request. An orphan (a live request no runner holds, or a runner socket whose
    /// request is closed) is allowed only with a cause the protocol cannot see: a close lost in
    /// transit, a close the gateway could not send (closed while hibernating), a socket
    /// recreated by a stale open. Those are counted, any other is a violation.
    #[allow(clippy::too_many_lines)] // one check after another
    pub(super) fn check_final(&mut self) {
        let mut problems = Vec::new();
        let mut held_by: BTreeMap<usize, usize> = BTreeMap::new();
        let mut held_sockets: BTreeMap<usize, BTreeSet<SocketId>> = BTreeMap::new();
        let mut orphans: Vec<&'static str> = Vec::new();
        for (c, conn) in self.conns.iter().enumerate() {
            let holders: Vec<usize> = self
                .runners
                .iter()
                .enumerate()
                .filter(|(_, slot)| {
                    slot.engine
                        .as_ref()
                        .and_then(|e| e.socket(conn.socket))
                        .is_some()
                })
                .map(|(r, _)| r)
                .collect();
            for &r in &holders {
                *held_by.entry(r).or_insert(0) += 1;
                held_sockets
                    .entry(conn.actor)
                    .or_default()
                    .insert(conn.socket);
            }
            let Some(info) = self.gw.request(conn.req) else {
                if conn.state != ClientState::Closed {
                    problems.push(format!("conn{c} is gone from the gateway without a Closed"));
                }
                if !holders.is_empty() {
                    match conn.orphan_cause {
                        Some(cause) => orphans.push(cause),
                        None => problems.push(format!(
                            "conn{c} is closed but runner{holders:?} still holds its socket (leak)"
                        )),
                    }
                }
                continue;
            };
            if info.phase != GwPhase::Active || !info.hibernatable || info.pending_messages > 0 {
                problems.push(format!(
                    "conn{c} ends {:?}, hibernatable {}, {} pending",
                    info.phase, info.hibernatable, info.pending_messages
                ));
            }
            let r = usize::try_from(info.route.0 >> 32).unwrap_or(usize::MAX);
            let inc = u32::try_from(info.route.0 & 0xffff_ffff).unwrap_or(u32::MAX);
            let socket = self
                .runners
                .get(r)
                .filter(|s| s.inc == inc)
                .and_then(|s| s.engine.as_ref())
                .and_then(|e| e.socket(conn.socket));
            // Neither the record list nor the stored metadata knows the request (both writes
            // failed or were lost): no runner can ever tell the gateway (a design gap).
            let untraceable = conn.record_failed && !conn.meta_written;
            match socket {
                Some(s) if s.state == SocketState::Open && s.hibernatable => {}
                None => match conn.orphan_cause {
                    Some(cause) => orphans.push(cause),
                    None if untraceable => {
                        orphans.push("ghost: metadata write and record upsert both failed");
                    }
                    None => problems.push(format!(
                        "conn{c} is live but no runner holds its socket (ghost)"
                    )),
                },
                Some(s) => problems.push(format!("conn{c}: its runner socket is {s:?}")),
            }
            if holders.len() > 1 {
                problems.push(format!("conn{c} is held by runners {holders:?}"));
            }
        }
        for (r, slot) in self.runners.iter().enumerate() {
            let expected = held_by.get(&r).copied().unwrap_or(0);
            if let Some(e) = slot.engine.as_ref()
                && e.len() != expected
            {
                problems.push(format!(
                    "runner{r} holds {} sockets, {expected} of known connections (leak)",
                    e.len()
                ));
            }
        }
        for (a, actor) in self.actors.iter().enumerate() {
            let stored: BTreeSet<SocketId> = actor.meta.keys().copied().collect();
            let expected = held_sockets.remove(&a).unwrap_or_default();
            if stored != expected {
                problems.push(format!(
                    "{} stores metadata for {} sockets, runners hold {} (leak or loss)",
                    actor.id,
                    stored.len(),
                    expected.len()
                ));
            }
        }
        for req in self.records.keys() {
            if self.gw.request(*req).is_none() {
                problems.push(format!("record of closed request {req} left (leak)"));
            }
        }
        let stats = self.gw.stats();
        if stats.pending_bytes != 0 || stats.pending_messages != 0 {
            problems.push(format!("gateway still buffers {} B", stats.pending_bytes));
        }
        if let Err(e) = self.gw.check_invariants() {
            problems.push(format!("gateway invariant: {e}"));
        }
        for cause in orphans {
            *self.counts.entry(cause).or_insert(0) += 1;
        }
        for p in problems {
            self.violation(format!("final state: {p}"));
        }
    }
}
