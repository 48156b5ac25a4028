//! Bounded queues: limits in bytes and messages, the typed error of a full queue, and the
//! [`Outbox`] a sink trait implementation hands link frames to.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use std::sync::{Mutex, MutexGuard, PoisonError};

use futures_core::Stream;

/// Limits of one queue. A queue at half of either limit pushes back on whoever fills it (where
/// that producer can wait); a queue past either limit is closed with [`QueueFull`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Most bytes queued (payload bytes; a queued item also counts its fixed size).
    pub max_bytes: usize,
    /// Most items queued.
    pub max_messages: usize,
}

impl QueueLimits {
    /// 4 MiB and 16 384 messages: the default for one client's outbound queue.
    pub const CLIENT: Self = Self {
        max_bytes: 4 << 20,
        max_messages: 16_384,
    };
    /// 8 MiB and 16 384 actions: the default for the runner's app queue.
    pub const APP: Self = Self {
        max_bytes: 8 << 20,
        max_messages: 16_384,
    };
    /// 256 MiB and 1 048 576 frames: the default for a link [`Outbox`]. The bytes match the
    /// gateway's default `max_gateway_pending_bytes`: a hibernatable request's published frames
    /// stay in its pending buffer until acked and the outbox shares those allocations, so a
    /// link that drains slower than its clients burst (many clients, one link) is not cut
    /// before the engine's own limits push back.
    pub const LINK: Self = Self {
        max_bytes: 256 << 20,
        max_messages: 1 << 20,
    };

    /// Whether `bytes` / `messages` reached the push-back point (half of either limit).
    pub(crate) fn soft(&self, bytes: usize, messages: usize) -> bool {
        bytes >= self.max_bytes / 2 || messages >= self.max_messages / 2
    }

    /// Whether `bytes` / `messages` are past either limit.
    pub(crate) fn exceeded(&self, bytes: usize, messages: usize) -> bool {
        bytes > self.max_bytes || messages > self.max_messages
    }
}

/// A queue went past its [`QueueLimits`]: its reader did not keep up, and the connection it
/// feeds was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("queue full: {bytes} bytes in {messages} messages (limits {limits:?})")]
#[non_exhaustive]
pub struct QueueFull {
    /// Bytes queued when it overflowed.
    pub bytes: usize,
    /// Items queued when it overflowed.
    pub messages: usize,
    /// The limits it went past.
    pub limits: QueueLimits,
}

/// Fill level of the queues of one driver, for monitoring and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct QueueStats {
    /// Bytes queued now (every client of a gateway; the app queue of a runner).
    pub bytes: usize,
    /// Items queued now.
    pub messages: usize,
    /// Most bytes ever queued at once by one queue.
    pub peak_bytes: usize,
    /// Queues closed because they went past their limits.
    pub overflows: u64,
}

/// The byte count of a queued frame.
pub(crate) fn len_of<T: AsRef<[u8]>>(item: &T) -> usize {
    item.as_ref().len() + core::mem::size_of::<T>()
}

/// Locks `m`, recovering the data of a poisoned lock (a panic elsewhere must not wedge every
/// other connection; the engines keep their invariants between calls).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A bounded queue of outbound frames for one link (the gateway's WebSocket to a runner, or the
/// runner's to a gateway), filled by a [`GatewayIo`](super::GatewayIo) or
/// [`RunnerIo`](super::RunnerIo) implementation and drained by the task writing that link.
///
/// [`push`](Self::push) never waits (sinks are called inside the driver's critical section).
/// A push that takes the queue past its limits closes the outbox with [`QueueFull`]: the queued
/// frames are dropped, the receiver ends, and [`OutboxReceiver::overflowed`] tells why; the
/// writer then closes the link, and the peer handles it as a lost link.
#[derive(Debug)]
pub struct Outbox<T> {
    inner: Arc<Mutex<OutboxInner<T>>>,
}

/// The draining half of an [`Outbox`]: a [`Stream`] of frames, or batches with
/// [`recv_many`](Self::recv_many).
#[derive(Debug)]
pub struct OutboxReceiver<T> {
    inner: Arc<Mutex<OutboxInner<T>>>,
}

#[derive(Debug)]
struct OutboxInner<T> {
    queue: VecDeque<T>,
    bytes: usize,
    limits: QueueLimits,
    overflowed: Option<QueueFull>,
    senders: usize,
    receiver_alive: bool,
    waker: Option<Waker>,
}

/// A bounded outbox and its receiver.
#[must_use]
pub fn outbox<T: AsRef<[u8]>>(limits: QueueLimits) -> (Outbox<T>, OutboxReceiver<T>) {
    let inner = Arc::new(Mutex::new(OutboxInner {
        queue: VecDeque::new(),
        bytes: 0,
        limits,
        overflowed: None,
        senders: 1,
        receiver_alive: true,
        waker: None,
    }));
    (
        Outbox {
            inner: inner.clone(),
        },
        OutboxReceiver { inner },
    )
}

impl<T: AsRef<[u8]>> Outbox<T> {
    /// Queues `item`.
    ///
    /// # Errors
    /// [`QueueFull`] when this push took the outbox past its limits, or it overflowed before
    /// (the item is dropped). A receiver that is gone drops items silently.
    pub fn push(&self, item: T) -> Result<(), QueueFull> {
        let mut inner = lock(&self.inner);
        if let Some(full) = inner.overflowed {
            return Err(full);
        }
        if !inner.receiver_alive {
            return Ok(());
        }
        let bytes = inner.bytes + len_of(&item);
        let messages = inner.queue.len() + 1;
        if inner.limits.exceeded(bytes, messages) {
            let full = QueueFull {
                bytes,
                messages,
                limits: inner.limits,
            };
            inner.overflowed = Some(full);
            inner.queue = VecDeque::new();
            inner.bytes = 0;
            wake(&mut inner.waker);
            return Err(full);
        }
        inner.bytes = bytes;
        inner.queue.push_back(item);
        wake(&mut inner.waker);
        Ok(())
    }

    /// Bytes and frames queued now.
    pub fn len(&self) -> (usize, usize) {
        let inner = lock(&self.inner);
        (inner.bytes, inner.queue.len())
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        lock(&self.inner).queue.is_empty()
    }
}

impl<T> Clone for Outbox<T> {
    fn clone(&self) -> Self {
        lock(&self.inner).senders += 1;
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<T> Drop for Outbox<T> {
    fn drop(&mut self) {
        let mut inner = lock(&self.inner);
        inner.senders -= 1;
        if inner.senders == 0 {
            wake(&mut inner.waker);
        }
    }
}

impl<T: AsRef<[u8]>> OutboxReceiver<T> {
    /// Moves every queued frame into `buf` (one lock for the batch): write them, then flush
    /// once. Returns how many; 0 once every [`Outbox`] is gone or it overflowed.
    pub async fn recv_many(&mut self, buf: &mut Vec<T>) -> usize {
        core::future::poll_fn(|cx| self.poll_recv_many(cx, buf)).await
    }

    /// Polling form of [`recv_many`](Self::recv_many).
    pub fn poll_recv_many(&mut self, cx: &mut Context<'_>, buf: &mut Vec<T>) -> Poll<usize> {
        let mut inner = lock(&self.inner);
        if inner.queue.is_empty() {
            if inner.overflowed.is_some() || inner.senders == 0 {
                return Poll::Ready(0);
            }
            inner.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = inner.queue.len();
        buf.extend(inner.queue.drain(..));
        inner.bytes = 0;
        Poll::Ready(n)
    }

    /// Why the outbox closed, if it overflowed.
    pub fn overflowed(&self) -> Option<QueueFull> {
        lock(&self.inner).overflowed
    }
}

impl<T> Drop for OutboxReceiver<T> {
    fn drop(&mut self) {
        let mut inner = lock(&self.inner);
        inner.receiver_alive = false;
        inner.queue = VecDeque::new();
        inner.bytes = 0;
    }
}

impl<T: AsRef<[u8]> + Unpin> Stream for OutboxReceiver<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut inner = lock(&self.inner);
        if let Some(item) = inner.queue.pop_front() {
            inner.bytes -= len_of(&item);
            return Poll::Ready(Some(item));
        }
        if inner.overflowed.is_some() || inner.senders == 0 {
            return Poll::Ready(None);
        }
        inner.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Wakes and clears `waker`.
pub(crate) fn wake(waker: &mut Option<Waker>) {
    if let Some(w) = waker.take() {
        w.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::GatewayConfig;

    /// Regression: with 32 MiB / 65 536 frames, the gateway's link outbox overflowed (and the
    /// link was dropped) when 10 000 clients on a current-thread runtime burst faster than the
    /// link's writer ran, while the engine was far from its own limits. The default holds what
    /// the engine lets the gateway have in flight.
    #[test]
    fn the_default_link_outbox_holds_the_gateway_wide_pending_default() {
        let config = GatewayConfig::default();
        let bytes = u64::try_from(QueueLimits::LINK.max_bytes).unwrap_or(u64::MAX);
        assert!(bytes >= config.max_gateway_pending_bytes);
        const { assert!(QueueLimits::LINK.max_messages >= 200_000) };
    }
}
