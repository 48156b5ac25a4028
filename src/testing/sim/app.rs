//! The app on each runner and its storage: sessions, accepting or rejecting opens, applying
//! delivered messages, atomic commits of log and index on `Persist`, echoes, closes and
//! hand-backs.

use alloc::format;
use alloc::vec::Vec;
use core::time::Duration;

use crate::close::{CloseFrame, KnownClose};
use crate::index::MessageIndex;
use crate::runner::{PersistedSocket, SocketId};
use crate::time::Timestamp;
use crate::wire::Headers;

use super::event::Ev;
use super::format::{PidFmt, make_payload, parse_pid};
#[cfg(test)]
use super::world::Sabotage;
use super::world::{ECHO_BIT, Entry, World};

/// The app's in-memory state for one socket on one runner incarnation.
#[derive(Debug)]
pub(super) struct AppSession {
    pub(super) c: usize,
    pub(super) zombie: bool,
    /// Accepted as hibernatable (restored sessions are).
    pub(super) hibernatable: bool,
    /// The app died (actor crash): its memory is gone.
    pub(super) dead: bool,
    /// Length of the connection's committed log when the session started.
    pub(super) base: usize,
    /// Everything delivered in this session, in order.
    pub(super) delivered: Vec<Entry>,
}

#[derive(Debug)]
pub(super) struct Write {
    pub(super) r: usize,
    pub(super) inc: u32,
    pub(super) a: usize,
    pub(super) socket: SocketId,
    /// `None` for a zombie session (its log is not the connection's).
    pub(super) c: Option<usize>,
    pub(super) server_index: MessageIndex,
    pub(super) client_index: MessageIndex,
    /// The session's start in the committed log, and everything it delivered up to
    /// `server_index`.
    pub(super) base: usize,
    pub(super) entries: Vec<Entry>,
    pub(super) ok: bool,
    /// Decided by a crash: landed or lost already; the result reported is a failure.
    pub(super) resolved: bool,
}

impl World {
    pub(super) fn actor_index(&mut self, actor_id: &str) -> Option<usize> {
        let a = self.actors.iter().position(|a| a.id == actor_id);
        if a.is_none() {
            self.violation(format!("runner named unknown actor {actor_id}"));
        }
        a
    }

    pub(super) fn new_session(
        &mut self,
        r: usize,
        c: usize,
        socket: SocketId,
        zombie: bool,
        restored: bool,
    ) {
        let session = AppSession {
            c,
            zombie,
            hibernatable: restored,
            dead: false,
            base: self.conns[c].committed.len(),
            delivered: Vec::new(),
        };
        if let Some(old) = self.runners[r].sessions.insert(socket, session) {
            self.violation(format!(
                "conn{c}: runner{r} announced a socket it already holds (session of conn{})",
                old.c
            ));
        }
        if !zombie {
            self.conns[c].session = Some((r, self.runners[r].inc));
            self.mark(c);
        }
    }

    pub(super) fn end_session(&mut self, r: usize, socket: SocketId) {
        if let Some(s) = self.runners[r].sessions.remove(&socket) {
            let inc = self.runners[r].inc;
            if self.conns[s.c].session == Some((r, inc)) && !s.zombie {
                self.conns[s.c].session = None;
            }
        }
    }

    pub(super) fn app_decide(&mut self, r: usize, inc: u32, socket: SocketId) {
        if !self.runner_alive(r, inc) {
            return;
        }
        let Some(s) = self.runners[r].sessions.get(&socket) else {
            return;
        };
        let c = s.c;
        let now = self.now;
        let result = if self.rng.chance(self.p.reject_ppm) {
            let frame = if self.rng.below(2) == 0 {
                KnownClose::ServerError.frame()
            } else {
                CloseFrame::new(4003, "rejected by the app")
            };
            tr!(self, "app@runner{r}: reject conn{c} {frame:?}");
            self.runners[r]
                .tunnel_mut()
                .map(|e| e.reject(now, socket, frame))
        } else {
            let hib = self.rng.chance(self.p.hibernatable_ppm);
            tr!(self, "app@runner{r}: accept conn{c} hibernatable={hib}");
            if let Some(s) = self.runners[r].sessions.get_mut(&socket) {
                s.hibernatable = hib;
            }
            self.runners[r]
                .tunnel_mut()
                .map(|e| e.accept(now, socket, hib))
        };
        if let Some(Err(e)) = result {
            tr!(self, "app@runner{r}: conn{c}: {e}");
        }
        self.drain_runner(r);
    }

    pub(super) fn app_message(
        &mut self,
        r: usize,
        socket: SocketId,
        index: MessageIndex,
        data: &[u8],
        binary: bool,
    ) {
        let Some(c) = self.conn_of(socket) else {
            return;
        };
        let pid = parse_pid(data, binary);
        tr!(
            self,
            "app@runner{r}: conn{c} msg #{} {}",
            index.get(),
            PidFmt(pid)
        );
        self.oracle.totals.delivered += 1;
        let binding = pid.and_then(|p| self.payloads.get(&p).copied());
        if binding != Some((c, index)) {
            self.violation(format!(
                "conn{c}: delivered #{} {} which the gateway accepted as {binding:?}",
                index.get(),
                PidFmt(pid)
            ));
            return;
        }
        let Some(pid) = pid else { return };
        let inc = self.runners[r].inc;
        let Some(s) = self.runners[r].sessions.get_mut(&socket) else {
            self.violation(format!(
                "conn{c}: message delivered to a socket the app never saw"
            ));
            return;
        };
        s.delivered.push((index, pid));
        #[cfg(test)]
        if self.sabotage == Some(Sabotage::DoubleApply) {
            s.delivered.push((index, pid));
        }
        let zombie = s.zombie;
        if zombie {
            self.count("zombie_deliveries");
        } else {
            self.mark(c);
        }
        if self.chaos() {
            if self.rng.chance(self.p.echo_ppm) {
                let d = self.rng.range(0, self.p.app_delay_max_us);
                self.sched(d, Ev::AppSend { r, inc, socket });
            }
            if self.rng.chance(self.p.app_close_ppm) {
                let d = self.rng.range(0, self.p.app_delay_max_us);
                self.sched(d, Ev::AppClose { r, inc, socket });
            }
            if self.rng.chance(self.p.app_hibernate_ppm) {
                let d = self.rng.range(0, self.p.app_delay_max_us);
                self.sched(d, Ev::AppHibernate { r, inc, socket });
            }
        }
    }

    pub(super) fn app_persist(
        &mut self,
        r: usize,
        socket: SocketId,
        actor_id: &str,
        server_index: MessageIndex,
        client_index: MessageIndex,
    ) {
        let Some(c) = self.conn_of(socket) else {
            return;
        };
        let Some(a) = self.actor_index(actor_id) else {
            return;
        };
        let inc = self.runners[r].inc;
        let dead = self.runners[r].dead_apps.contains(&a);
        let Some(s) = self.runners[r].sessions.get_mut(&socket) else {
            self.violation(format!("conn{c}: persist for a socket the app never saw"));
            return;
        };
        // The write commits everything delivered so far with the index, atomically.
        let entries = s.delivered.clone();
        let base = s.base;
        let zombie = s.zombie;
        if let Some(last) = entries.last()
            && last.0 != server_index
        {
            self.violation(format!(
                "conn{c}: persist of index {} but the last delivered message is #{}",
                server_index.get(),
                last.0.get()
            ));
        }
        let ok = dead || !self.chaos() || !self.rng.chance(self.p.persist_fail_ppm);
        let id = self.next_write;
        self.next_write += 1;
        tr!(
            self,
            "app@runner{r}: persist conn{c} at {} (+{} msgs){}",
            server_index.get(),
            entries.len(),
            if dead {
                " — app dead, fails"
            } else if ok {
                ""
            } else {
                " — will fail"
            }
        );
        self.writes.insert(
            id,
            Write {
                r,
                inc,
                a,
                socket,
                c: (!zombie).then_some(c),
                server_index,
                client_index,
                base,
                entries,
                ok,
                resolved: dead,
            },
        );
        if !ok {
            self.fault("persist_failure");
        }
        let at = if dead {
            self.now + Duration::from_micros(self.rng.range(0, self.p.app_delay_max_us))
        } else {
            self.storage_time(a)
        };
        if self.chaos() && !dead && self.rng.chance(self.p.crash_at_persist_ppm) {
            // While the write is in flight (scheduled first, so it also precedes a completion
            // at the same instant): the write lands or is lost.
            let runner = self.rng.below(2) == 0;
            let span = at.as_micros().saturating_sub(self.now.as_micros());
            let crash_at = self.now + Duration::from_micros(self.rng.range(0, span));
            self.sched_at(crash_at, Ev::CrashAtPersist { a, r, inc, runner });
        }
        self.sched_at(at, Ev::WriteDone { id });
    }

    /// When an operation issued now on the actor's storage completes (FIFO per actor).
    pub(super) fn storage_time(&mut self, a: usize) -> Timestamp {
        let d = self.rng.range(0, self.p.storage_max_us);
        let at = (self.now + Duration::from_micros(d)).max(self.actors[a].storage_at);
        self.actors[a].storage_at = at;
        at
    }

    pub(super) fn apply_write(&mut self, w: &Write) {
        let actor = &mut self.actors[w.a];
        actor.meta.insert(
            w.socket,
            PersistedSocket {
                socket: w.socket,
                server_index: w.server_index,
                client_index: w.client_index,
                path: "/ws".into(),
                headers: Headers::new(),
            },
        );
        if let Some(c) = w.c {
            self.conns[c].facts.meta_written = true;
            // Log := log[..base] ++ entries; never shrinks (an older write landing after a newer
            // one leaves the log alone; its index would show at the next restore).
            let log = &mut self.conns[c].committed;
            let have = log.len().saturating_sub(w.base);
            if log.len() < w.base {
                let msg = format!(
                    "conn{c}: a write from a session starting at {} lands on a log of {}",
                    w.base,
                    log.len()
                );
                self.violation(msg);
            } else if w.entries.len() > have {
                #[cfg(test)]
                if self.sabotage == Some(Sabotage::IndexWithoutLog) {
                    return;
                }
                log.extend_from_slice(&w.entries[have..]);
            }
            self.mark(c);
        } else {
            *self.oracle.counts.entry("zombie_commits").or_insert(0) += w.entries.len() as u64;
        }
    }

    pub(super) fn write_done(&mut self, id: u64) {
        let Some(w) = self.writes.remove(&id) else {
            return;
        };
        let applied = !w.resolved && w.ok;
        if applied {
            self.apply_write(&w);
        }
        if !self.runner_alive(w.r, w.inc) {
            return;
        }
        let now = self.now;
        let c = w.c.map_or(usize::MAX, |c| c);
        let result = self.runners[w.r].tunnel_mut().map(|e| {
            if applied {
                e.persisted(now, w.socket, w.server_index)
            } else {
                e.persist_failed(now, w.socket, w.server_index)
            }
        });
        tr!(
            self,
            "app@runner{}: persist conn{c} at {} {} {:?}",
            w.r,
            w.server_index.get(),
            if applied { "done" } else { "failed" },
            result
        );
        self.drain_runner(w.r);
    }

    pub(super) fn app_send(&mut self, r: usize, inc: u32, socket: SocketId) {
        if !self.runner_alive(r, inc) {
            return;
        }
        let Some(c) = self.runners[r].sessions.get(&socket).map(|s| s.c) else {
            return;
        };
        let pid = ECHO_BIT | self.next_pid;
        self.next_pid += 1;
        let binary = self.rng.below(2) == 0;
        let data = make_payload(pid, binary, 24);
        let now = self.now;
        let result = self.runners[r]
            .tunnel_mut()
            .map(|e| e.send(now, socket, &data, binary));
        if let Some(Ok(_)) = result {
            self.conns[c].facts.app_sent.insert(pid);
        }
        tr!(
            self,
            "app@runner{r}: send to conn{c} {} {:?}",
            PidFmt(Some(pid)),
            result
        );
        self.drain_runner(r);
    }

    pub(super) fn app_close(&mut self, r: usize, inc: u32, socket: SocketId) {
        if !self.runner_alive(r, inc) {
            return;
        }
        let now = self.now;
        let frame = CloseFrame::new(4000, "app close");
        let result = self.runners[r]
            .tunnel_mut()
            .map(|e| e.close(now, socket, frame));
        tr!(
            self,
            "app@runner{r}: close [{}] {:?}",
            socket.request_id,
            result
        );
        self.drain_runner(r);
    }

    pub(super) fn app_hibernate(&mut self, r: usize, inc: u32, socket: SocketId) {
        if !self.runner_alive(r, inc) {
            return;
        }
        let now = self.now;
        let result = self.runners[r]
            .tunnel_mut()
            .map(|e| e.hibernate(now, socket));
        tr!(
            self,
            "app@runner{r}: hand back [{}] {:?}",
            socket.request_id,
            result
        );
        if let Some(Ok(())) = result {
            self.count("app_hand_backs");
            if let Some(&c) = self.by_req.get(&socket.request_id) {
                let a = self.conns[c].actor;
                let d = self.rng.range(0, self.p.app_delay_max_us);
                self.sched(d, Ev::Drain { a, r, inc });
            }
        }
        self.drain_runner(r);
    }
}
