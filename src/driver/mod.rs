//! Adapters that drive the engines with real I/O and a real clock.
//!
//! The engines ([`Gateway`], [`Runner`]) are sans-IO: they never read a clock and never touch a
//! socket. An adapter owns both and runs the loop every embedding needs:
//!
//! 1. drain the engine's actions and perform them;
//! 2. read [`poll_timeout`](Engine::poll_timeout) last;
//! 3. wait for exactly one of {an input, the deadline};
//! 4. read the clock and turn it into a [`Timestamp`];
//! 5. if the clock is at or past the deadline, call [`handle_timeout`](Engine::handle_timeout)
//!    (expiry is decided by comparing the clock with the deadline, never by trusting that a
//!    sleep completed);
//! 6. hand the input to the engine with that `now`, and repeat.
//!
//! The tokio adapter splits that loop: an input (steps 4 and 6, then 1) runs in the task that
//! read it, inside a short critical section around the engine; steps 2, 3 and 5 run in one timer
//! task per engine, woken early when an input moved the deadline earlier.
//!
//! Two adapters share that loop:
//!
//! * [`tokio`] (feature `tokio`): each engine runs in the task that has its input (no driver
//!   task or channel between a socket and its engine); link frames go to a user-provided sink
//!   trait, client and app outputs to bounded queues; the gateway adapter also owns the read side
//!   of every client connection and enforces the backpressure rule (a client is not read before
//!   the runner accepted it, nor while the engine says it is full, nor while it does not read).
//! * [`blocking`] (std only): a thread loop around `std::sync::mpsc::Receiver::recv_timeout` that
//!   feeds one engine and hands its actions to a callback.
//!
//! [`control`] (feature `tokio`; also `driver::tokio::control`) is the tokio adapter of the
//! control engine ([`crate::control::Control`], which owns a gateway), in the same shape and on
//! the same pieces: the run loop, the bounded queues and the client halves of [`tokio`].
//!
//! None contains protocol logic: every decision is the engine's.

pub mod blocking;
#[cfg(feature = "tokio")]
pub use self::tokio::control;
#[cfg(feature = "tungstenite")]
pub mod session;
#[cfg(feature = "tokio")]
pub mod tokio;
mod trace;

use crate::control::Control;
use crate::gateway::{self, Gateway};
use crate::runner::{self, Runner};
use crate::session::Session;
use crate::time::Timestamp;

mod sealed {
    pub trait Sealed {}
}

/// The part of an engine's API every adapter needs: outputs and timers. Implemented by
/// [`Gateway`], [`Runner`], [`Control`] and [`Session`] (sealed).
pub trait Engine: sealed::Sealed {
    /// What the engine asks its caller to do.
    type Action;
    /// The next action, in order (see the engine's own `poll_action`).
    fn poll_action(&mut self) -> Option<Self::Action>;
    /// The next deadline, if any (see the engine's own `poll_timeout`).
    fn poll_timeout(&self) -> Option<Timestamp>;
    /// Fires every deadline due at `now` (see the engine's own `handle_timeout`).
    fn handle_timeout(&mut self, now: Timestamp);
}

/// [`Engine`] (and the seal) for each engine type, delegating to its own methods of those names.
macro_rules! engines {
    ($($engine:ident => $action:ty),+ $(,)?) => {$(
        impl sealed::Sealed for $engine {}

        impl Engine for $engine {
            type Action = $action;
            fn poll_action(&mut self) -> Option<$action> {
                $engine::poll_action(self)
            }
            fn poll_timeout(&self) -> Option<Timestamp> {
                $engine::poll_timeout(self)
            }
            fn handle_timeout(&mut self, now: Timestamp) {
                $engine::handle_timeout(self, now);
            }
        }
    )+};
}

engines! {
    Gateway => gateway::Action,
    Runner => runner::Action,
    Control => crate::control::Action,
    Session => crate::session::Action,
}
