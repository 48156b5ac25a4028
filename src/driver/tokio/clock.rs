//! Tokio's clock as [`Timestamp`]s.

use ::tokio::time::Instant;

use crate::time::Timestamp;

/// Turns tokio's clock into [`Timestamp`]s: the origin is the instant the clock was created.
///
/// It reads [`tokio::time::Instant`], so paused time in tests
/// (`start_paused = true`, `tokio::time::advance`) drives the engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokioClock {
    epoch: Instant,
}

impl TokioClock {
    /// A clock whose origin is now. Call it inside a runtime when time is paused.
    #[must_use]
    #[allow(clippy::disallowed_methods, clippy::new_without_default)] // the adapter owns the clock
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
        }
    }

    /// A clock whose origin is `epoch`.
    #[must_use]
    pub fn with_epoch(epoch: Instant) -> Self {
        Self { epoch }
    }

    /// The current [`Timestamp`].
    #[must_use]
    #[allow(clippy::disallowed_methods)] // the adapter owns the clock
    pub fn now(&self) -> Timestamp {
        self.timestamp(Instant::now())
    }

    /// The [`Timestamp`] of `instant` (instants before the origin map to zero).
    #[must_use]
    pub fn timestamp(&self, instant: Instant) -> Timestamp {
        Timestamp::ZERO.saturating_add(instant.saturating_duration_since(self.epoch))
    }

    /// The instant of `t` (saturating far in the future).
    #[must_use]
    pub fn instant(&self, t: Timestamp) -> Instant {
        let d = core::time::Duration::from_micros(t.as_micros());
        self.epoch
            .checked_add(d)
            .unwrap_or_else(|| self.epoch + core::time::Duration::from_secs(86_400 * 365 * 30))
    }
}
