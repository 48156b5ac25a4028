//! The world's events and the queue entry that orders them by `(time, insertion sequence)`.

use alloc::collections::BinaryHeap;
use alloc::vec::Vec;
use core::cmp::{Ordering, Reverse};

use crate::control::{ConnId, OutFrame};
use crate::runner::SocketId;
use crate::time::Timestamp;

#[derive(Debug)]
pub(super) enum Ev {
    /// An engine frame (plain `ToClient`) reaches runner `r` (incarnation `inc`) on `conn`.
    ToRunner {
        r: usize,
        inc: u32,
        conn: ConnId,
        frame: OutFrame,
    },
    /// A runner frame (plain `ToServer`) reaches the engine on `conn`.
    ToEngine {
        r: usize,
        inc: u32,
        conn: ConnId,
        frame: Vec<u8>,
    },
    Connect {
        c: usize,
    },
    ClientSend {
        c: usize,
    },
    ClientClose {
        c: usize,
    },
    AppDecide {
        r: usize,
        inc: u32,
        socket: SocketId,
    },
    AppSend {
        r: usize,
        inc: u32,
        socket: SocketId,
    },
    AppClose {
        r: usize,
        inc: u32,
        socket: SocketId,
    },
    AppHibernate {
        r: usize,
        inc: u32,
        socket: SocketId,
    },
    /// A crash timed to hit a write in flight: the app of actor `a` (or its runner).
    CrashAtPersist {
        a: usize,
        r: usize,
        inc: u32,
        runner: bool,
    },
    /// The app drains its actor after a hand-back: the runner asks the engine to let it sleep.
    Drain {
        a: usize,
        r: usize,
        inc: u32,
    },
    WriteDone {
        id: u64,
    },
    MetaDelete {
        a: usize,
        socket: SocketId,
    },
    /// The app has loaded actor `a`'s metadata for the start of `generation` on runner `r`.
    Restore {
        a: usize,
        r: usize,
        inc: u32,
        generation: u32,
    },
    /// Runner `r` notices that its WebSocket to the engine broke.
    LinkDown {
        r: usize,
        inc: u32,
    },
    /// The engine notices that the runner connection `conn` broke (its runner crashed).
    EngineNotices {
        conn: ConnId,
    },
    /// Runner `r` opens a new WebSocket to the engine.
    Reconnect {
        r: usize,
        inc: u32,
    },
    /// A crashed runner process starts again (a new incarnation).
    Restart {
        r: usize,
    },
    Chaos(Chaos),
    EndChaos,
}

impl Ev {
    /// Events that do nothing once the chaos phase is over (they do not keep the world busy).
    pub(super) fn inert_in_heal(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. }
                | Self::ClientSend { .. }
                | Self::ClientClose { .. }
                | Self::Chaos(_)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chaos {
    Sleep,
    AppCrash,
    RunnerCrash,
    Partition,
    ClockJump,
}

/// A queue entry ordered by `(at, seq)` only.
#[derive(Debug)]
struct Scheduled {
    at: Timestamp,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// The world's event queue: earliest first, ties in insertion order.
#[derive(Debug, Default)]
pub(super) struct EventQueue {
    heap: BinaryHeap<Reverse<Scheduled>>,
    /// Insertion sequence of the last event pushed.
    seq: u64,
}

impl EventQueue {
    /// Queues `ev` at `at`.
    pub(super) fn push(&mut self, at: Timestamp, ev: Ev) {
        self.seq += 1;
        self.heap.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            ev,
        }));
    }

    /// When the earliest event is due.
    pub(super) fn next_at(&self) -> Option<Timestamp> {
        self.heap.peek().map(|Reverse(s)| s.at)
    }

    /// Takes the earliest event.
    pub(super) fn pop(&mut self) -> Option<Ev> {
        self.heap.pop().map(|Reverse(s)| s.ev)
    }

    /// The first queued event (in no particular order) that keeps the world busy in the heal
    /// phase.
    pub(super) fn busy(&self) -> Option<&Ev> {
        self.heap
            .iter()
            .map(|Reverse(s)| &s.ev)
            .find(|ev| !ev.inert_in_heal())
    }

    /// The insertion sequence so far (the self-tests' hidden loss keys on it).
    #[cfg(test)]
    pub(super) fn seq(&self) -> u64 {
        self.seq
    }

    /// Advances the insertion sequence without queueing anything.
    #[cfg(test)]
    pub(super) fn skip(&mut self) {
        self.seq += 1;
    }
}
