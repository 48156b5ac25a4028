//! [`SessionConfig`]: who the runner says it is, and the session's limits.

use alloc::string::String;

use crate::config::ConfigError;
use crate::runner::RunnerConfig;
use crate::wire::{ActorNames, DecodeLimits};

/// Configuration of a runner [`Session`](super::Session).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// `ToServerInit::name`: the runner name (pool) it serves.
    pub name: String,
    /// `ToServerInit::version`: the runner's own version.
    pub version: u32,
    /// `ToServerInit::total_slots`: how many actors it hosts at once. Also the session's actor
    /// limit.
    pub total_slots: u32,
    /// `ToServerInit::prepopulate_actor_names`.
    pub prepopulate_actor_names: Option<ActorNames>,
    /// `ToServerInit::metadata` (a JSON document).
    pub metadata: Option<String>,
    /// The tunnel engine's configuration. Its framing is forced to
    /// [`Framing::RunnerSocket`](crate::runner::Framing::RunnerSocket).
    pub runner: RunnerConfig,
    /// Unacknowledged intents and alarms kept for resending, across all actors; past it
    /// [`sleep_actor`](super::Session::sleep_actor) and friends are refused. State updates are
    /// never refused (at most two per generation). Default 4 096.
    pub max_unacked_events: usize,
    /// Limits for decoding the engine's frames.
    pub decode_limits: DecodeLimits,
    /// Tunnel frames the tunnel engine produces while the link is not ready are kept (at most
    /// this many, and [`max_offline_bytes`](Self::max_offline_bytes)) and sent after the next
    /// handshake that keeps the runner id; past either limit they are dropped and counted.
    /// Default 4 096.
    pub max_offline_frames: usize,
    /// Bytes of kept tunnel frames, at most. Default 4 MiB.
    pub max_offline_bytes: usize,
}

impl SessionConfig {
    /// A configuration for runner name `name` with `total_slots` slots and defaults elsewhere.
    #[must_use]
    pub fn new(name: impl Into<String>, total_slots: u32) -> Self {
        Self {
            name: name.into(),
            version: 1,
            total_slots,
            prepopulate_actor_names: None,
            metadata: None,
            runner: RunnerConfig::default(),
            max_unacked_events: 4096,
            decode_limits: DecodeLimits::default(),
            max_offline_frames: 4096,
            max_offline_bytes: 4 << 20,
        }
    }

    /// Checks the bounds (and the runner configuration's).
    ///
    /// # Errors
    /// [`ConfigError::OutOfBounds`] naming the first offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.total_slots == 0 {
            return Err(ConfigError::OutOfBounds {
                field: "total_slots",
                constraint: "at least 1",
            });
        }
        if self.max_unacked_events == 0 {
            return Err(ConfigError::OutOfBounds {
                field: "max_unacked_events",
                constraint: "at least 1",
            });
        }
        self.runner.validate()
    }
}
