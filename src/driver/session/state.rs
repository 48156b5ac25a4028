//! The state behind the driver's lock: the session, the current connection's outbox, the app's
//! bounded queue and the counters.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::task::{Context, Poll, Waker};

use super::connect::WireVersion;
use super::envoy;
use super::events::SessionEvent;
use crate::driver::tokio::queue::wake;
use crate::driver::tokio::run::Driven;
use crate::driver::tokio::{Outbox, QueueLimits, QueueStats};
use crate::session::{self, Session};
use crate::time::Timestamp;

/// Counters of a session driver ([`SessionHandle::stats`](super::SessionHandle::stats)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct DriverStats {
    /// WebSocket connections opened.
    pub connections: u64,
    /// Handshakes the engine answered.
    pub handshakes: u64,
    /// Connections that ended, and failed connection attempts.
    pub disconnects: u64,
    /// Frames read from the engine.
    pub frames_in: u64,
    /// Frames queued for the engine.
    pub frames_out: u64,
    /// Frames the session refused (malformed, or refused by the session or the runner engine).
    pub frames_rejected: u64,
    /// Frames for the engine produced while no connection was open, and dropped (the session
    /// itself keeps its events and tunnel frames for the next handshake: what reaches this
    /// counter is a KV request, or a frame of a connection that just ended).
    pub frames_dropped_offline: u64,
    /// Times reading the engine paused because the app's queue was at half its limits.
    pub paused_reads: u64,
    /// The app's queue now and at its peak.
    pub app_queue: QueueStats,
}

/// The app's bounded queue.
pub(super) struct AppQueue {
    events: VecDeque<SessionEvent>,
    bytes: usize,
    waker: Option<Waker>,
    pub(super) limits: QueueLimits,
    peak_bytes: usize,
}

impl AppQueue {
    pub(super) fn new(limits: QueueLimits) -> Self {
        Self {
            events: VecDeque::new(),
            bytes: 0,
            waker: None,
            limits,
            peak_bytes: 0,
        }
    }

    /// Whether the reader must wait (half of either limit).
    pub(super) fn is_full(&self) -> bool {
        self.limits.soft(self.bytes, self.events.len())
    }

    pub(super) fn push(&mut self, event: SessionEvent) {
        self.bytes += event.queued_len();
        self.events.push_back(event);
        self.peak_bytes = self.peak_bytes.max(self.bytes);
        wake(&mut self.waker);
    }

    /// The next event; `freed` when the pop took the queue below its push-back point.
    pub(super) fn pop(
        &mut self,
        cx: &mut Context<'_>,
        stopped: bool,
    ) -> (Poll<Option<SessionEvent>>, bool) {
        if let Some(event) = self.events.pop_front() {
            let was_full = self.limits.soft(self.bytes, self.events.len() + 1);
            self.bytes -= event.queued_len();
            return (Poll::Ready(Some(event)), was_full && !self.is_full());
        }
        if stopped {
            return (Poll::Ready(None), false);
        }
        self.waker = Some(cx.waker().clone());
        (Poll::Pending, false)
    }

    /// Every queued event into `buf`; `freed` as for [`pop`](Self::pop).
    pub(super) fn pop_all(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut Vec<SessionEvent>,
        stopped: bool,
    ) -> (Poll<usize>, bool) {
        if self.events.is_empty() {
            if stopped {
                return (Poll::Ready(0), false);
            }
            self.waker = Some(cx.waker().clone());
            return (Poll::Pending, false);
        }
        let was_full = self.is_full();
        let n = self.events.len();
        buf.extend(self.events.drain(..));
        self.bytes = 0;
        (Poll::Ready(n), was_full)
    }

    fn stats(&self) -> QueueStats {
        QueueStats {
            bytes: self.bytes,
            messages: self.events.len(),
            peak_bytes: self.peak_bytes,
            overflows: 0,
        }
    }
}

/// The state behind the lock.
pub(crate) struct SessionState {
    pub(super) engine: Option<Session>,
    /// The current connection's frames, while one is open.
    pub(super) outbox: Option<Outbox<Vec<u8>>>,
    /// The limits every connection's outbox gets.
    pub(super) outbox_limits: QueueLimits,
    pub(super) app: AppQueue,
    pub(super) stats: DriverStats,
    /// Set once the run loop stopped: the app's stream ends after the queue.
    pub(super) stopped: bool,
    /// The protocol of the current (or last) connection: the session's v7 frames are written
    /// as v8 on an envoy connection.
    pub(super) wire: WireVersion,
}

impl SessionState {
    pub(super) fn new(session: Session, app_queue: QueueLimits, outbox: QueueLimits) -> Self {
        Self {
            engine: Some(session),
            outbox: None,
            outbox_limits: outbox,
            app: AppQueue::new(app_queue),
            stats: DriverStats::default(),
            stopped: false,
            wire: WireVersion::V7,
        }
    }

    pub(super) fn stats(&self) -> DriverStats {
        let mut stats = self.stats;
        stats.app_queue = self.app.stats();
        stats
    }
}

impl Driven for SessionState {
    type Engine = Session;

    fn engine(&mut self) -> Option<&mut Session> {
        self.engine.as_mut()
    }

    fn drain(&mut self, _now: Timestamp) {
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        while let Some(action) = engine.poll_action() {
            if let session::Action::Send { frame } = action {
                let frame = match self.wire {
                    WireVersion::V7 => frame,
                    // The session writes valid frames only; a failure is counted, never sent.
                    WireVersion::V8 => {
                        let Ok(frame) = envoy::to_rivet(frame) else {
                            self.stats.frames_rejected += 1;
                            continue;
                        };
                        frame
                    }
                };
                match &self.outbox {
                    Some(outbox) => {
                        self.stats.frames_out += 1;
                        if outbox.push(frame).is_err() {
                            // Overflowed: its receiver ends and the connection task reports it.
                            self.outbox = None;
                        }
                    }
                    None => self.stats.frames_dropped_offline += 1,
                }
                continue;
            }
            if let session::Action::Connected { .. } = &action {
                self.stats.handshakes += 1;
            }
            if let Some(event) = SessionEvent::from_action(action) {
                self.app.push(event);
            }
        }
    }

    fn stop(&mut self) -> Option<Session> {
        self.stopped = true;
        self.outbox = None;
        wake(&mut self.app.waker);
        self.engine.take()
    }
}
