//! [`RunnerConfig`]: framing, gap policy, persist debounce, limits.

use core::time::Duration;

use crate::config::ConfigError;
use crate::wire::{self, DecodeLimits};

/// How frames reach the runner and how its tunnel messages are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Framing {
    /// The pub/sub hop: input is a version-prefixed `ToRunner`, output a version-prefixed
    /// `ToGateway` carrying `version`. The runner answers `ToRunnerPing` with `ToGatewayPong`
    /// itself. Incoming frames of any tunnel-compatible version
    /// ([`wire::TUNNEL_COMPATIBLE_VERSIONS`]) are accepted.
    PubSub {
        /// Protocol version written in front of every outgoing frame.
        version: u16,
    },
    /// Rivet's runner WebSocket: input is a plain `ToClient`, output a plain `ToServer` (the
    /// version was negotiated when the socket connected).
    RunnerSocket,
}

impl Default for Framing {
    /// [`Framing::PubSub`] with [`wire::PROTOCOL_VERSION`] (7).
    fn default() -> Self {
        Self::PubSub {
            version: wire::PROTOCOL_VERSION,
        }
    }
}

/// What the runner does when a hibernatable socket receives a message past a gap in the
/// gateway's indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum GapPolicy {
    /// Rivet-compatible: close the socket with 1008 `ws.message_index_skip`.
    #[default]
    Close,
    /// Hold out-of-order messages (bounded by [`RunnerConfig::max_held_messages`] and
    /// [`RunnerConfig::max_held_bytes`]) for up to [`RunnerConfig::gap_timeout`] while the
    /// gateway retransmits; deliver them in order once the gap fills; close as under
    /// [`GapPolicy::Close`] on overflow or timeout.
    Await,
}

/// Configuration of a [`Runner`](super::Runner). [`Default`] gives the Rivet-compatible values
/// listed in `docs/design.md#defaults`.
///
/// The struct is `#[non_exhaustive]` (as [`GatewayConfig`](crate::gateway::GatewayConfig)):
/// start from `default()` and change fields with the `with_*` setters (or assign the public
/// fields). [`Runner::new`](super::Runner::new) checks the result with
/// [`validate`](Self::validate).
///
/// ```
/// use core::time::Duration;
/// use hibernating_ws::runner::{GapPolicy, RunnerConfig};
///
/// let config = RunnerConfig::default()
///     .with_gap_policy(GapPolicy::Await)
///     .with_persist_interval(Duration::from_secs(1));
/// assert!(config.validate().is_ok());
///
/// let err = RunnerConfig::default().with_persist_bytes(0).validate().unwrap_err();
/// assert_eq!(err.field(), "persist_bytes");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
#[non_exhaustive]
pub struct RunnerConfig {
    /// Frame format on the wire. Default: [`Framing::PubSub`] version 7.
    pub framing: Framing,
    /// Reaction to a gap in the gateway's indices. Default: [`GapPolicy::Close`].
    pub gap_policy: GapPolicy,
    /// Payload bytes delivered since the first unpersisted message that force a persist at once.
    /// Default 500 000. Must be at least 1.
    pub persist_bytes: u64,
    /// Longest time from the first unpersisted delivered message to its persist. Default 5 s.
    /// Must be positive.
    pub persist_interval: Duration,
    /// Delay before the first retry of a failed persist; doubles after each failure.
    /// Default 100 ms. Must be positive.
    pub persist_retry_initial: Duration,
    /// Ceiling of the retry delay. Default 5 s. Must be at least `persist_retry_initial`.
    pub persist_retry_max: Duration,
    /// Most out-of-order messages held per socket under [`GapPolicy::Await`]. Default 1024.
    /// Must be at least 1.
    pub max_held_messages: usize,
    /// Most payload bytes held per socket under [`GapPolicy::Await`]. Default 1 MiB.
    pub max_held_bytes: u64,
    /// Longest time a gap may stay open under [`GapPolicy::Await`], counted from the oldest
    /// held message. Default 30 s. Must be positive.
    pub gap_timeout: Duration,
    /// Most tunnel messages queued for an actor that is still starting. Default 65 536: two full
    /// gateway windows ([`MAX_WINDOW`](crate::index::MAX_WINDOW) unacked messages per request),
    /// because a gateway that wakes a request before the actor's [`restore`](super::Runner::restore)
    /// replays its whole window into this queue, and a message dropped here is a gap later.
    /// [`max_queued_bytes_per_actor`](Self::max_queued_bytes_per_actor) bounds the memory. Must
    /// be at least 1.
    pub max_queued_per_actor: usize,
    /// Most encoded bytes of tunnel messages queued for an actor that is still starting.
    /// Default 64 MiB. Must be at least 1.
    pub max_queued_bytes_per_actor: u64,
    /// Most sockets the runner holds at once (connecting, open or stopping). An open, or a
    /// socket to restore, beyond it is answered with close 1011 `Server Error` and counted. Default 1 048 576. Must be at
    /// least 1.
    pub max_sockets: usize,
    /// Largest outgoing WebSocket payload ([`Runner::send`](super::Runner::send)). Default
    /// 20 MiB (upstream `MAX_PAYLOAD_SIZE`). Must be at least 1.
    pub max_message_size: usize,
    /// Least time between two acks of one socket triggered by duplicates, so a replay of
    /// thousands of already-persisted messages yields one re-ack. Default 1 s. Zero re-acks on
    /// every duplicate.
    pub reack_interval: Duration,
    /// Limits for decoding incoming frames.
    pub decode_limits: DecodeLimits,
    /// How long a socket the runner handed back (its actor stopped, or
    /// [`Runner::hibernate`](super::Runner::hibernate)) is remembered: a ping or message for it
    /// meanwhile is dropped silently (the gateway is hibernating the request), while one for a
    /// socket the runner neither holds nor remembers is answered with close 1011
    /// `ws.socket_not_found`. Covers the time the gateway takes to learn of the stop. Default
    /// 60 s. Must be positive. Sockets the app closed are remembered as long: a stale copy of
    /// such a socket's open is answered with that close instead of reopening the socket.
    pub handed_back_memory: Duration,
    /// Most handed-back sockets remembered, and apart from them most app-closed sockets (the
    /// oldest is forgotten first). Default 65 536. Must be at least 1.
    pub max_handed_back: usize,
}

/// Default [`RunnerConfig::persist_bytes`].
pub const DEFAULT_PERSIST_BYTES: u64 = 500_000;
/// Default [`RunnerConfig::persist_interval`].
pub const DEFAULT_PERSIST_INTERVAL: Duration = Duration::from_secs(5);
/// Default [`RunnerConfig::max_message_size`]: 20 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 20 * 1024 * 1024;

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            framing: Framing::default(),
            gap_policy: GapPolicy::default(),
            persist_bytes: DEFAULT_PERSIST_BYTES,
            persist_interval: DEFAULT_PERSIST_INTERVAL,
            persist_retry_initial: Duration::from_millis(100),
            persist_retry_max: Duration::from_secs(5),
            max_held_messages: 1024,
            max_held_bytes: 1024 * 1024,
            gap_timeout: Duration::from_secs(30),
            max_queued_per_actor: 65_536,
            max_queued_bytes_per_actor: 64 * 1024 * 1024,
            max_sockets: 1 << 20,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            reack_interval: Duration::from_secs(1),
            decode_limits: DecodeLimits::default(),
            handed_back_memory: Duration::from_secs(60),
            max_handed_back: 65_536,
        }
    }
}

crate::config::with_setters!(RunnerConfig {
    with_framing => framing: Framing,
    with_gap_policy => gap_policy: GapPolicy,
    with_persist_bytes => persist_bytes: u64,
    with_persist_interval => persist_interval: Duration,
    with_persist_retry_initial => persist_retry_initial: Duration,
    with_persist_retry_max => persist_retry_max: Duration,
    with_max_held_messages => max_held_messages: usize,
    with_max_held_bytes => max_held_bytes: u64,
    with_gap_timeout => gap_timeout: Duration,
    with_max_queued_per_actor => max_queued_per_actor: usize,
    with_max_queued_bytes_per_actor => max_queued_bytes_per_actor: u64,
    with_max_sockets => max_sockets: usize,
    with_max_message_size => max_message_size: usize,
    with_reack_interval => reack_interval: Duration,
    with_decode_limits => decode_limits: DecodeLimits,
    with_handed_back_memory => handed_back_memory: Duration,
    with_max_handed_back => max_handed_back: usize,
});

impl RunnerConfig {
    /// Checks every field against its documented bounds.
    ///
    /// # Errors
    /// [`ConfigError::OutOfBounds`] naming the first offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn check(
            ok: bool,
            field: &'static str,
            constraint: &'static str,
        ) -> Result<(), ConfigError> {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::OutOfBounds { field, constraint })
            }
        }
        if let Framing::PubSub { version } = self.framing {
            check(
                wire::TUNNEL_COMPATIBLE_VERSIONS.contains(&version),
                "framing.version",
                "must be a tunnel-compatible protocol version (4..=7)",
            )?;
        }
        check(
            self.persist_bytes >= 1,
            "persist_bytes",
            "must be at least 1",
        )?;
        check(
            !self.persist_interval.is_zero(),
            "persist_interval",
            "must be positive",
        )?;
        check(
            !self.persist_retry_initial.is_zero(),
            "persist_retry_initial",
            "must be positive",
        )?;
        check(
            self.persist_retry_max >= self.persist_retry_initial,
            "persist_retry_max",
            "must be at least persist_retry_initial",
        )?;
        check(
            self.max_held_messages >= 1,
            "max_held_messages",
            "must be at least 1",
        )?;
        check(
            !self.gap_timeout.is_zero(),
            "gap_timeout",
            "must be positive",
        )?;
        check(
            self.max_queued_per_actor >= 1,
            "max_queued_per_actor",
            "must be at least 1",
        )?;
        check(
            self.max_queued_bytes_per_actor >= 1,
            "max_queued_bytes_per_actor",
            "must be at least 1",
        )?;
        check(self.max_sockets >= 1, "max_sockets", "must be at least 1")?;
        check(
            self.max_message_size >= 1,
            "max_message_size",
            "must be at least 1",
        )?;
        check(
            !self.handed_back_memory.is_zero(),
            "handed_back_memory",
            "must be positive",
        )?;
        check(
            self.max_handed_back >= 1,
            "max_handed_back",
            "must be at least 1",
        )?;
        check(
            self.decode_limits.max_frame_size >= 1,
            "decode_limits.max_frame_size",
            "must be at least 1",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_design() {
        let c = RunnerConfig::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.persist_bytes, 500_000);
        assert_eq!(c.persist_interval, Duration::from_secs(5));
        assert_eq!(c.max_held_messages, 1024);
        assert_eq!(c.max_held_bytes, 1 << 20);
        assert_eq!(c.framing, Framing::PubSub { version: 7 });
        assert_eq!(c.gap_policy, GapPolicy::Close);
    }

    #[test]
    fn each_bound_is_checked() {
        let base = RunnerConfig::default();
        let cases: [(RunnerConfig, &str); 11] = [
            (
                RunnerConfig {
                    max_sockets: 0,
                    ..base.clone()
                },
                "max_sockets",
            ),
            (
                RunnerConfig {
                    framing: Framing::PubSub { version: 3 },
                    ..base.clone()
                },
                "framing.version",
            ),
            (
                RunnerConfig {
                    persist_bytes: 0,
                    ..base.clone()
                },
                "persist_bytes",
            ),
            (
                RunnerConfig {
                    persist_interval: Duration::ZERO,
                    ..base.clone()
                },
                "persist_interval",
            ),
            (
                RunnerConfig {
                    persist_retry_initial: Duration::ZERO,
                    ..base.clone()
                },
                "persist_retry_initial",
            ),
            (
                RunnerConfig {
                    persist_retry_max: Duration::from_millis(99),
                    ..base.clone()
                },
                "persist_retry_max",
            ),
            (
                RunnerConfig {
                    max_held_messages: 0,
                    ..base.clone()
                },
                "max_held_messages",
            ),
            (
                RunnerConfig {
                    gap_timeout: Duration::ZERO,
                    ..base.clone()
                },
                "gap_timeout",
            ),
            (
                RunnerConfig {
                    max_queued_per_actor: 0,
                    ..base.clone()
                },
                "max_queued_per_actor",
            ),
            (
                RunnerConfig {
                    max_message_size: 0,
                    ..base.clone()
                },
                "max_message_size",
            ),
            (
                RunnerConfig {
                    max_queued_bytes_per_actor: 0,
                    ..base.clone()
                },
                "max_queued_bytes_per_actor",
            ),
        ];
        for (config, field) in cases {
            match config.validate() {
                Err(ConfigError::OutOfBounds { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: expected an error, got {other:?}"),
            }
        }
        // Boundaries that are allowed.
        let ok = RunnerConfig {
            persist_bytes: 1,
            persist_retry_max: base.persist_retry_initial,
            reack_interval: Duration::ZERO,
            max_held_bytes: 0,
            framing: Framing::RunnerSocket,
            ..base
        };
        assert_eq!(ok.validate(), Ok(()));
    }
}
