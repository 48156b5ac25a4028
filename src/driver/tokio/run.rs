//! The one run loop both drivers share: an engine behind a short critical section, fed by
//! whichever task has the input, and one task for its timer.

use alloc::boxed::Box;
use alloc::sync::Arc;
use std::sync::{Mutex, MutexGuard};

use ::tokio::sync::Notify;

use super::Stopped;
use super::clock::TokioClock;
use super::queue::lock;
use crate::driver::Engine;
use crate::time::Timestamp;

/// The state a driver keeps around its engine.
pub(crate) trait Driven: Send + 'static {
    /// The engine.
    type Engine: Engine + Send;
    /// The engine, unless the driver stopped.
    fn engine(&mut self) -> Option<&mut Self::Engine>;
    /// Performs every queued action of the engine, and the adapter's follow-ups (retries of
    /// refused inputs, closes of overflowing queues) until none is left.
    fn drain(&mut self, now: Timestamp);
    /// The driver stops: takes the engine out, ends every client half and queue, wakes every
    /// waiting task.
    fn stop(&mut self) -> Option<Self::Engine>;
}

/// A driver's state, shared by its handles, its client halves and its timer task.
pub(crate) struct Shared<S> {
    state: Mutex<Slot<S>>,
    /// Wakes the timer task when the engine's deadline moved earlier, or on shutdown.
    timer: Notify,
    /// Wakes producers waiting for room in a queue (the runner's app queue).
    pub(crate) room: Notify,
    pub(crate) clock: TokioClock,
}

pub(crate) struct Slot<S> {
    pub(crate) state: S,
    /// The deadline the timer task sleeps until.
    armed: Option<Timestamp>,
    shutdown: bool,
}

impl<S: Driven> Shared<S> {
    pub(crate) fn new(state: S, clock: TokioClock) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(Slot {
                state,
                armed: None,
                shutdown: false,
            }),
            timer: Notify::new(),
            room: Notify::new(),
            clock,
        })
    }

    /// The state, locked (not for engine calls: use [`with`](Self::with)).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Slot<S>> {
        lock(&self.state)
    }

    /// Runs `f` on the state with the current time, then drains the engine's actions and
    /// re-arms the timer if the deadline moved earlier: the whole input, in one critical
    /// section.
    ///
    /// # Errors
    /// [`Stopped`] once the driver stopped (or a shutdown is requested).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut S, Timestamp) -> R) -> Result<R, Stopped> {
        let mut slot = self.lock();
        self.with_locked(&mut slot, f)
    }

    /// [`with`](Self::with) on a slot locked by the caller.
    pub(crate) fn with_locked<R>(
        &self,
        slot: &mut Slot<S>,
        f: impl FnOnce(&mut S, Timestamp) -> R,
    ) -> Result<R, Stopped> {
        if slot.shutdown || slot.state.engine().is_none() {
            return Err(Stopped);
        }
        let now = self.clock.now();
        let result = f(&mut slot.state, now);
        slot.state.drain(now);
        let deadline = slot.state.engine().and_then(|e| e.poll_timeout());
        if let Some(d) = deadline
            && slot.armed.is_none_or(|armed| d < armed)
        {
            slot.armed = Some(d);
            self.timer.notify_one();
        }
        Ok(result)
    }

    /// Asks the run loop to stop; inputs from now on get [`Stopped`].
    pub(crate) fn shutdown(&self) {
        self.lock().shutdown = true;
        self.timer.notify_one();
    }
}

impl<S> Slot<S> {
    pub(crate) fn is_stopping(&self) -> bool {
        self.shutdown
    }
}

/// Drops the engine if the run loop is dropped before it returned it (an aborted task: a crash).
/// It is the run loop's argument, so a task aborted before its first poll drops it too.
pub(crate) struct CrashGuard<S: Driven> {
    shared: Arc<Shared<S>>,
    armed: bool,
}

impl<S: Driven> CrashGuard<S> {
    pub(crate) fn new(shared: Arc<Shared<S>>) -> Self {
        Self {
            shared,
            armed: true,
        }
    }
}

impl<S: Driven> Drop for CrashGuard<S> {
    fn drop(&mut self) {
        if self.armed {
            let engine = self.shared.lock().state.stop();
            self.shared.room.notify_waiters();
            drop(engine);
        }
    }
}

/// The run loop: sleeps until the engine's deadline or until an input moved it earlier, fires
/// due deadlines (comparing the clock with the deadline, never trusting that the sleep fired),
/// and returns the engine on shutdown. Inputs do not pass through here: they call the engine
/// from the task that read them ([`Shared::with`]).
pub(crate) async fn run<S: Driven>(mut guard: CrashGuard<S>) -> S::Engine {
    let shared = guard.shared.clone();
    let mut sleep = Box::pin(::tokio::time::sleep_until(
        shared.clock.instant(Timestamp::ZERO),
    ));
    loop {
        let notified = shared.timer.notified();
        ::tokio::pin!(notified);
        notified.as_mut().enable();
        let deadline = {
            let mut slot = shared.lock();
            if slot.shutdown {
                let engine = slot.state.stop();
                drop(slot);
                shared.room.notify_waiters();
                guard.armed = false;
                return engine.expect("only the run loop takes the engine out");
            }
            let now = shared.clock.now();
            match slot.state.engine() {
                // Only a crash guard takes the engine out without returning it.
                None => Wait::Forever,
                Some(engine) => {
                    let deadline = engine.poll_timeout();
                    if deadline.is_some_and(|d| d <= now) {
                        engine.handle_timeout(now);
                        slot.state.drain(now);
                        Wait::Again
                    } else {
                        slot.armed = deadline;
                        Wait::Until(deadline)
                    }
                }
            }
        };
        let deadline = match deadline {
            Wait::Again => continue,
            Wait::Forever => return core::future::pending().await,
            Wait::Until(d) => d,
        };
        match deadline {
            Some(d) => {
                sleep.as_mut().reset(shared.clock.instant(d));
                ::tokio::select! {
                    () = sleep.as_mut() => {}
                    () = notified => {}
                }
            }
            None => notified.await,
        }
    }
}

/// What the run loop does after a look at the engine.
enum Wait {
    /// Deadlines fired: look again.
    Again,
    /// Sleep until this deadline or an earlier one.
    Until(Option<Timestamp>),
    /// Nothing left to run.
    Forever,
}

/// A driver type over the state `$state` of engine `$engine`: the struct (its docs are the
/// attributes given first), a `Debug` that shows no state, and `run` (documented by the
/// attributes given last), which runs the engine's timers until shutdown and returns the
/// engine; dropping its future before it returned drops the engine abruptly. Each driver adds
/// its own `new` and `spawn`.
macro_rules! driver_type {
    ($(#[$doc:meta])* $driver:ident($state:ty) -> $engine:ty; $(#[$run_doc:meta])*) => {
        $(#[$doc])*
        pub struct $driver {
            shared: Arc<Shared<$state>>,
        }

        impl core::fmt::Debug for $driver {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.debug_struct(stringify!($driver)).finish_non_exhaustive()
            }
        }

        impl $driver {
            $(#[$run_doc])*
            pub fn run(self) -> impl Future<Output = $engine> + Send + 'static {
                run(CrashGuard::new(self.shared))
            }
        }
    };
}
pub(crate) use driver_type;
