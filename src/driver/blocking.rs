//! The blocking adapter: one thread, one engine, a `std::sync::mpsc` channel of inputs.
//!
//! [`Driver::run`] waits for the next input with `recv_timeout(deadline − now)`, reads the
//! [`Clock`], fires the engine's timers when the clock reached the deadline, hands each input to
//! a callback that calls the engine, and hands every action to another callback. Both callbacks
//! get `&mut` access to the engine, so an application can answer an action at once (for
//! example accept an open, or report a synchronous write with `persisted`).
//!
//! ```
//! use std::sync::mpsc;
//! use core::ops::ControlFlow;
//! use hibernating_ws::driver::blocking::{Driver, Exit};
//! use hibernating_ws::runner::{Action, Runner, RunnerConfig};
//! use hibernating_ws::Clock;
//!
//! let clock = Clock::start();
//! let runner = Runner::new(RunnerConfig::default(), clock.now())?;
//! let mut driver = Driver::new(runner, clock);
//!
//! enum Input { Start(&'static str), Stop }
//! let (tx, rx) = mpsc::channel();
//! tx.send(Input::Start("actor-1")).unwrap();
//! tx.send(Input::Stop).unwrap();
//!
//! let mut stopped = Vec::new();
//! let exit = driver.run(
//!     &rx,
//!     |runner, now, input| match input {
//!         Input::Start(actor) => {
//!             runner.actor_starting(now, actor, Vec::new()).expect("new actor");
//!             runner.restore(now, actor, Vec::new()).expect("starting actor");
//!             runner.actor_stopping(now, actor).expect("running actor");
//!             ControlFlow::Continue(())
//!         }
//!         Input::Stop => ControlFlow::Break(()),
//!     },
//!     |_runner, _now, action| {
//!         if let Action::ActorStopped { actor_id } = action {
//!             stopped.push(actor_id);
//!         }
//!     },
//! );
//! assert_eq!(exit, Exit::Stopped);
//! assert_eq!(stopped, ["actor-1"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::ops::ControlFlow;
use std::sync::mpsc::{Receiver, RecvTimeoutError};

use super::Engine;
use crate::time::{Clock, Timestamp};

/// Why [`Driver::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Exit {
    /// The input callback returned [`ControlFlow::Break`].
    Stopped,
    /// Every sender of the input channel was dropped.
    Disconnected,
}

/// Drives one engine ([`Gateway`](crate::gateway::Gateway) or
/// [`Runner`](crate::runner::Runner)) from a blocking thread. See the [module docs](self).
#[derive(Debug)]
pub struct Driver<E> {
    engine: E,
    clock: Clock,
}

impl<E: Engine> Driver<E> {
    /// A driver for `engine`, whose timestamps come from `clock` (build the engine with
    /// `clock.now()` so both agree on the origin).
    pub fn new(engine: E, clock: Clock) -> Self {
        Self { engine, clock }
    }

    /// The engine.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// The engine, mutably (drain its actions yourself after calling it, or call
    /// [`run`](Self::run), which drains first).
    pub fn engine_mut(&mut self) -> &mut E {
        &mut self.engine
    }

    /// The clock.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Gives the engine back.
    pub fn into_engine(self) -> E {
        self.engine
    }

    /// Runs the loop on the current thread until `on_input` breaks or the channel disconnects
    /// (deadlines still armed then are not waited for: call `run` again with a new channel to
    /// keep the engine's timers going).
    ///
    /// * `on_input(engine, now, input)` is called once per received input; it calls the engine
    ///   (`handle_*` or a command) with `now`.
    /// * `on_action(engine, now, action)` is called for every action, in order, after every
    ///   engine call (including `handle_timeout`); it may call the engine again, and the actions
    ///   that produces are drained in the same pass.
    ///
    /// Timers fire when the clock reaches [`Engine::poll_timeout`], checked after every wake-up,
    /// whether it was caused by an input or by the timeout.
    pub fn run<I>(
        &mut self,
        inputs: &Receiver<I>,
        mut on_input: impl FnMut(&mut E, Timestamp, I) -> ControlFlow<()>,
        mut on_action: impl FnMut(&mut E, Timestamp, E::Action),
    ) -> Exit {
        loop {
            let now = self.clock.now();
            self.drain(now, &mut on_action);
            let deadline = self.engine.poll_timeout();
            let now = self.clock.now();
            if deadline.is_some_and(|d| d <= now) {
                self.engine.handle_timeout(now);
                continue;
            }
            let received = match deadline {
                Some(d) => inputs.recv_timeout(d - now),
                None => inputs.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let input = match received {
                Ok(input) => input,
                // The top of the loop compares the clock with the deadline.
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return Exit::Disconnected,
            };
            let now = self.clock.now();
            if on_input(&mut self.engine, now, input).is_break() {
                self.drain(now, &mut on_action);
                return Exit::Stopped;
            }
        }
    }

    fn drain(&mut self, now: Timestamp, on_action: &mut impl FnMut(&mut E, Timestamp, E::Action)) {
        while let Some(action) = self.engine.poll_action() {
            on_action(&mut self.engine, now, action);
        }
    }
}
