//! The app's side of persist-then-ack: persist results (in flight, of gone sockets, bogus) and
//! the model of the results the runner still expects for sockets that are gone.

use alloc::collections::VecDeque;
use alloc::format;

use super::{Harness, socket_id};
use crate::index::MessageIndex;
use crate::runner::{SocketError, SocketId};
use crate::time::Timestamp;

impl Harness {
    /// Mirrors the runner's record of a persist whose socket is gone, and its bound: past
    /// `max_sockets` entries the first stale one (by socket id) is forgotten.
    pub(super) fn push_orphan(&mut self, id: SocketId, index: MessageIndex, hand_back: bool) {
        self.orphans
            .entry(id)
            .or_default()
            .push_back((index, hand_back));
        while self.orphans.values().map(VecDeque::len).sum::<usize>() > self.config.max_sockets {
            let victim = self.orphans.iter_mut().find_map(|(id, q)| {
                let pos = q.iter().position(|&(_, hb)| !hb)?;
                q.remove(pos);
                Some((*id, q.is_empty()))
            });
            let Some((id, empty)) = victim else {
                break;
            };
            if empty {
                self.orphans.remove(&id);
            }
        }
    }

    /// The app finishes an outstanding persist: it writes its storage first, then reports.
    pub(super) fn persist_done(&mut self, now: Timestamp, k: usize, ok: bool) {
        if self.outstanding.is_empty() {
            return;
        }
        let o = self.outstanding.remove(k % self.outstanding.len());
        let orphan = self.orphans.get_mut(&o.socket).and_then(|q| {
            let pos = q.iter().position(|&(i, _)| i == o.server_index)?;
            q.remove(pos)
        });
        if self.orphans.get(&o.socket).is_some_and(VecDeque::is_empty) {
            self.orphans.remove(&o.socket);
        }
        if let Some((_, hand_back)) = orphan {
            // The result of a persist whose socket is gone (possibly another persist of it with
            // the same index: results are keyed by socket id and index, oldest first). Never
            // applied to a newer socket with the same id.
            if ok && hand_back {
                self.storage.insert(
                    (o.actor.clone(), o.socket),
                    (o.server_index, o.client_index),
                );
            }
            let result = self.report_persist(now, o.socket, o.server_index, ok);
            let expected = if hand_back {
                Ok(())
            } else {
                Err(SocketError::UnknownSocket { socket: o.socket })
            };
            if result != expected {
                self.fail(&format!("result of a gone socket's persist: {result:?}"));
            }
            self.drain();
            return;
        }
        // A result of an earlier socket with this id that no record of the runner's claims (its
        // record was bounded away, or a result of the newer socket with the same index took it):
        // it is the newer socket's result now if it names the persist in flight, else refused.
        if ok {
            self.storage.insert(
                (o.actor.clone(), o.socket),
                (o.server_index, o.client_index),
            );
        }
        let acked_before = self.runner.socket(o.socket).map(|i| i.last_acked);
        let result = self.report_persist(now, o.socket, o.server_index, ok);
        match self.sockets.get_mut(&o.socket) {
            Some(s) => {
                let in_flight = s.in_flight == Some(o.server_index);
                // (A result of an earlier socket with this id may have claimed the persist in
                // flight first: then this one is refused as unexpected.)
                match (in_flight, &result) {
                    (true, Ok(())) => {
                        s.in_flight = None;
                        if ok {
                            s.durable.insert(o.server_index.get());
                        }
                    }
                    (false, Err(SocketError::UnexpectedPersist { socket }))
                        if *socket == o.socket => {}
                    _ => self.fail(&format!(
                        "persist result {result:?} (in flight: {in_flight})"
                    )),
                }
            }
            None => {
                // (Results of persists of gone sockets were answered above.)
                if result != Err(SocketError::UnknownSocket { socket: o.socket }) {
                    self.fail(&format!("persist result of a gone socket: {result:?}"));
                }
            }
        }
        self.drain();
        // Persist, then ack: a new durable index is acked at once.
        if ok
            && result.is_ok()
            && acked_before != Some(o.server_index)
            && self.runner.socket(o.socket).and_then(|i| i.last_persisted) == Some(o.server_index)
            && !self.acks.contains(&(o.socket, o.server_index))
        {
            self.fail(&format!(
                "{:?}: persisted {:?} was not acked",
                o.socket, o.server_index
            ));
        }
    }

    /// A persist result nobody asked for: refused as unexpected (or for an unknown socket),
    /// unless it happens to name a persist the runner is waiting for.
    pub(super) fn persist_bogus(
        &mut self,
        now: Timestamp,
        sock: u8,
        index: MessageIndex,
        ok: bool,
    ) {
        let id = socket_id(sock);
        let matches_flight = self
            .sockets
            .get(&id)
            .is_some_and(|s| s.in_flight == Some(index));
        // Results are keyed by socket id and index only: one that names a hand-back's
        // persist answers it, whatever the app meant.
        let matches_hand_back = self
            .orphans
            .get(&id)
            .is_some_and(|q| q.iter().any(|&(i, _)| i == index));
        if matches_flight || matches_hand_back {
            // Not bogus after all: it answers the persist in flight.
            return;
        }
        let result = self.report_persist(now, id, index, ok);
        let expected = if self.sockets.contains_key(&id) {
            SocketError::UnexpectedPersist { socket: id }
        } else {
            SocketError::UnknownSocket { socket: id }
        };
        if result != Err(expected) {
            self.fail(&format!("a bogus persist result gave {result:?}"));
        }
        self.expect_quiet("a bogus persist result");
    }

    /// The app reports a persist of `socket` at `index` as done (`ok`) or failed.
    fn report_persist(
        &mut self,
        now: Timestamp,
        socket: SocketId,
        index: MessageIndex,
        ok: bool,
    ) -> Result<(), SocketError> {
        self.clock.seen = self.clock.seen.max(now);
        if ok {
            self.runner.persisted(now, socket, index)
        } else {
            self.runner.persist_failed(now, socket, index)
        }
    }
}
