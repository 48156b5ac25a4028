//! The runner driver: a [`Runner`] shared by the task that reads its gateway links and the
//! app, its sink trait, its handle, and the app's bounded queue.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use ::tokio::task::JoinHandle;
use bytes::Bytes;
use futures_core::Stream;

use super::Stopped;
use super::clock::TokioClock;
use super::queue::{QueueLimits, QueueStats, wake};
use super::run::{CrashGuard, Driven, Shared, driver_type, run};
use crate::runner::{self, Runner};
use crate::time::Timestamp;
use crate::wire::{GatewayId, Received};

/// Where the runner driver sends the frames for the gateways.
///
/// Called inside the driver's critical section, in order, from whichever task handed the
/// input in: never block (queue the frame, typically in an [`Outbox`](super::Outbox)).
/// Every other action goes to the app through [`AppEvents`].
pub trait RunnerIo: Send + 'static {
    /// [`Action::Publish`](runner::Action::Publish): send `frame` to the gateway `gateway_id`.
    fn publish(&mut self, gateway_id: GatewayId, frame: Vec<u8>);
    /// A gateway frame was dropped (already counted in [`RunnerStats`](runner::RunnerStats)).
    /// With the `tracing` feature, the default reports it as a `warn` event.
    fn receive_error(&mut self, error: &runner::ReceiveError) {
        #[cfg(feature = "tracing")]
        {
            let socket = match error {
                runner::ReceiveError::UnknownSocket { socket }
                | runner::ReceiveError::NotOpen { socket } => Some(*socket),
                _ => None,
            };
            ::tracing::warn!(?socket, %error, "hws: gateway frame dropped");
        }
        let _ = error;
    }
}

/// Options of a [`RunnerDriver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunnerOptions {
    /// Limits of the app's queue ([`QueueLimits::APP`] by default). At half of them,
    /// [`RunnerHandle::frame`] waits (the gateway links are not read) until the app catches up.
    pub app_queue: QueueLimits,
}

impl RunnerOptions {
    /// These options with `limits` for the app's queue.
    #[must_use]
    pub fn with_app_queue(mut self, limits: QueueLimits) -> Self {
        self.app_queue = limits;
        self
    }
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            app_queue: QueueLimits::APP,
        }
    }
}

driver_type! {
    /// Drives a [`Runner`]. See the [module docs](super).
    RunnerDriver(RunnerState) -> Runner;
    /// Runs the engine's timer until [`RunnerHandle::shutdown`] or until every handle is
    /// dropped; returns the engine.
    /// Dropping the future before it returned (an aborted task, even one never polled) drops
    /// the engine abruptly.
}

impl RunnerDriver {
    /// A driver, its handle and the app's events. Build `runner` with `clock.now()`. Run its
    /// timer with [`run`](Self::run) (or use [`spawn`](Self::spawn)).
    pub fn new(
        runner: Runner,
        io: impl RunnerIo,
        clock: TokioClock,
        options: RunnerOptions,
    ) -> (Self, RunnerHandle, AppEvents) {
        let state = RunnerState {
            engine: Some(runner),
            io: Box::new(io),
            app: VecDeque::new(),
            app_bytes: 0,
            app_waker: None,
            limits: options.app_queue,
            peak_bytes: 0,
        };
        let shared = Shared::new(state, clock);
        let handle = RunnerHandle {
            token: Arc::new(HandleToken {
                shared: shared.clone(),
            }),
        };
        let events = AppEvents {
            shared: shared.clone(),
        };
        (Self { shared }, handle, events)
    }

    /// [`new`](Self::new) with the default options, then [`run`](Self::run) on a new task.
    /// Aborting the task drops the engine abruptly (a crash: nothing more is persisted or
    /// published).
    pub fn spawn(
        runner: Runner,
        io: impl RunnerIo,
        clock: TokioClock,
    ) -> (RunnerHandle, AppEvents, JoinHandle<Runner>) {
        let (driver, handle, events) = Self::new(runner, io, clock, RunnerOptions::default());
        (handle, events, ::tokio::spawn(driver.run()))
    }
}

/// The state behind the lock.
pub(super) struct RunnerState {
    engine: Option<Runner>,
    io: Box<dyn RunnerIo>,
    app: VecDeque<runner::Action>,
    app_bytes: usize,
    app_waker: Option<Waker>,
    limits: QueueLimits,
    peak_bytes: usize,
}

/// Bytes an app action counts for in the app queue.
fn action_len(action: &runner::Action) -> usize {
    let payload = match action {
        runner::Action::Message { data, .. } => data.len(),
        _ => 0,
    };
    payload + core::mem::size_of::<runner::Action>()
}

impl Driven for RunnerState {
    type Engine = Runner;

    fn engine(&mut self) -> Option<&mut Runner> {
        self.engine.as_mut()
    }

    fn drain(&mut self, _now: Timestamp) {
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        let mut woke = false;
        while let Some(action) = engine.poll_action() {
            crate::driver::trace::runner_action(&action);
            match action {
                runner::Action::Publish { gateway_id, frame } => {
                    self.io.publish(gateway_id, frame);
                }
                other => {
                    self.app_bytes += action_len(&other);
                    self.app.push_back(other);
                    woke = true;
                }
            }
        }
        if woke {
            self.peak_bytes = self.peak_bytes.max(self.app_bytes);
            wake(&mut self.app_waker);
        }
    }

    fn stop(&mut self) -> Option<Runner> {
        wake(&mut self.app_waker);
        self.engine.take()
    }
}

/// Cloneable handle to a [`RunnerDriver`]: takes gateway frames and runs app commands on the
/// engine, in the calling task. Dropping the last handle stops the driver.
#[derive(Clone)]
pub struct RunnerHandle {
    token: Arc<HandleToken>,
}

/// Shared by the clones of one [`RunnerHandle`]; the last one to go stops the driver.
struct HandleToken {
    shared: Arc<Shared<RunnerState>>,
}

impl Drop for HandleToken {
    fn drop(&mut self) {
        self.shared.shutdown();
    }
}

impl core::fmt::Debug for RunnerHandle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RunnerHandle").finish_non_exhaustive()
    }
}

impl RunnerHandle {
    /// A frame from a gateway ([`Runner::handle_frame`]), read in place. Waits first while the
    /// app's queue is at half its limits, so a link is not read faster than the app takes its
    /// actions. A frame the engine drops is reported to [`RunnerIo::receive_error`].
    ///
    /// # Errors
    /// [`Stopped`].
    pub async fn frame(&self, bytes: &[u8]) -> Result<(), Stopped> {
        self.frame_in(Received::Slice(bytes)).await
    }

    /// [`frame`](Self::frame) for a frame the transport hands out as [`Bytes`]
    /// ([`Runner::handle_frame_bytes`]): the payloads the app gets are slices of it, not
    /// copies. A payload the app keeps keeps the transport's buffer allocated (with
    /// tungstenite, the read buffer the frame was parsed from): use [`frame`](Self::frame) if
    /// the app holds on to payloads.
    ///
    /// # Errors
    /// [`Stopped`].
    pub async fn frame_bytes(&self, frame: &Bytes) -> Result<(), Stopped> {
        self.frame_in(Received::Shared(frame)).await
    }

    async fn frame_in(&self, frame: Received<'_>) -> Result<(), Stopped> {
        // Room in the app queue (the common case): one critical section, no waiter registered.
        if let Some(result) = self.try_frame(frame) {
            return result;
        }
        loop {
            let room = self.token.shared.room.notified();
            let mut room = core::pin::pin!(room);
            room.as_mut().enable();
            let handed = self.try_frame(frame);
            if let Some(result) = handed {
                return result;
            }
            room.await;
        }
    }

    /// Hands `frame` to the engine unless the app queue is at half its limits (`None`).
    fn try_frame(&self, frame: Received<'_>) -> Option<Result<(), Stopped>> {
        let mut slot = self.token.shared.lock();
        let s = &slot.state;
        if s.limits.soft(s.app_bytes, s.app.len()) && s.engine.is_some() {
            return None;
        }
        Some(self.token.shared.with_locked(&mut slot, |s, now| {
            let Some(engine) = s.engine.as_mut() else {
                return;
            };
            let result = match frame {
                Received::Slice(bytes) => engine.handle_frame(now, bytes),
                Received::Shared(frame) => engine.handle_frame_bytes(now, frame),
            };
            if let Err(e) = result {
                s.io.receive_error(&e);
            }
        }))
    }

    /// Runs `f` on the engine with the current time, then performs the actions it caused:
    /// every app command (`accept`, `send`, `persisted`, `actor_starting`, `restore`,
    /// `stats`, ...).
    ///
    /// # Errors
    /// [`Stopped`].
    pub fn call<R>(&self, f: impl FnOnce(&mut Runner, Timestamp) -> R) -> Result<R, Stopped> {
        self.token
            .shared
            .with(|s, now| s.engine.as_mut().map(|e| f(e, now)))?
            .ok_or(Stopped)
    }

    /// Bytes and actions in the app's queue now, and the most it ever held.
    pub fn queue_stats(&self) -> QueueStats {
        let slot = self.token.shared.lock();
        QueueStats {
            bytes: slot.state.app_bytes,
            messages: slot.state.app.len(),
            peak_bytes: slot.state.peak_bytes,
            overflows: 0,
        }
    }

    /// Stops the driver: [`RunnerDriver::run`] returns the engine. Inputs from now on get
    /// [`Stopped`]; the [`AppEvents`] end after what was queued.
    pub fn shutdown(&self) {
        self.token.shared.shutdown();
    }
}

/// The app's half of a [`RunnerDriver`]: every action but `Publish`, in order, as a
/// [`Stream`]: [`Open`](runner::Action::Open) (answer with [`Runner::accept`] or
/// [`Runner::reject`] through [`RunnerHandle::call`]), [`Message`](runner::Action::Message),
/// [`Persist`](runner::Action::Persist) (write, then [`Runner::persisted`] or
/// [`Runner::persist_failed`]), [`DeleteMetadata`](runner::Action::DeleteMetadata),
/// [`Restored`](runner::Action::Restored), [`Closed`](runner::Action::Closed),
/// [`ActorStopped`](runner::Action::ActorStopped). It ends when the driver stopped and the
/// queue is drained.
pub struct AppEvents {
    shared: Arc<Shared<RunnerState>>,
}

impl core::fmt::Debug for AppEvents {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AppEvents").finish_non_exhaustive()
    }
}

impl AppEvents {
    /// The next action for the app; `None` once the driver stopped and the queue is drained.
    pub async fn recv(&mut self) -> Option<runner::Action> {
        core::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Moves every queued action into `buf` (one critical section for the batch). Returns how
    /// many; 0 once the driver stopped and the queue is drained.
    pub async fn recv_many(&mut self, buf: &mut Vec<runner::Action>) -> usize {
        core::future::poll_fn(|cx| self.poll_recv_many(cx, buf)).await
    }

    /// Polling form of [`recv_many`](Self::recv_many).
    pub fn poll_recv_many(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut Vec<runner::Action>,
    ) -> Poll<usize> {
        let mut slot = self.shared.lock();
        let s = &mut slot.state;
        if s.app.is_empty() {
            if s.engine.is_none() || slot.is_stopping() {
                return Poll::Ready(0);
            }
            slot.state.app_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let was_full = s.limits.soft(s.app_bytes, s.app.len());
        let n = s.app.len();
        buf.extend(s.app.drain(..));
        s.app_bytes = 0;
        drop(slot);
        if was_full {
            self.shared.room.notify_waiters();
        }
        Poll::Ready(n)
    }

    /// Polling form of [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<runner::Action>> {
        let mut slot = self.shared.lock();
        let s = &mut slot.state;
        if let Some(action) = s.app.pop_front() {
            let was_full = s.limits.soft(s.app_bytes, s.app.len() + 1);
            s.app_bytes -= action_len(&action);
            if was_full && !s.limits.soft(s.app_bytes, s.app.len()) {
                drop(slot);
                self.shared.room.notify_waiters();
            }
            return Poll::Ready(Some(action));
        }
        if s.engine.is_none() || slot.is_stopping() {
            return Poll::Ready(None);
        }
        slot.state.app_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Stream for AppEvents {
    type Item = runner::Action;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<runner::Action>> {
        self.get_mut().poll_recv(cx)
    }
}
