//! [`ControlConfig`]: timings and limits of the control engine.

use core::time::Duration;

use crate::config::ConfigError;
use crate::wire::{DecodeLimits, ProtocolMetadata};

/// Timings and limits of a [`Control`](super::Control) engine. Every collection the engine keeps
/// is bounded by one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ControlConfig {
    /// A connection must send `ToServerInit` within this time of
    /// [`runner_connected`](super::Control::runner_connected), or it is closed. Default 10 s.
    pub init_timeout: Duration,
    /// Interval between two `ToClientPing`s on a runner connection. Default 3 s.
    pub ping_interval: Duration,
    /// A connection that leaves a ping unanswered this long is closed as dead. Default 15 s.
    pub ping_timeout: Duration,
    /// A runner without a connection for this long is lost: its actors are stopped (their
    /// hibernatable requests hibernate) and a reconnect with its key gets a new runner id. Sent
    /// to runners in `ProtocolMetadata`. Default 15 s.
    pub runner_lost_threshold: Duration,
    /// An actor that does not report `Stopped` this long after its `CommandStopActor` is taken as
    /// stopped. Sent to runners in `ProtocolMetadata`. Default 30 s.
    pub actor_stop_threshold: Duration,
    /// An actor that does not report `Running` this long after its `CommandStartActor` is taken
    /// as failed to start. Default 30 s.
    pub actor_start_timeout: Duration,
    /// Sent to runners in `ProtocolMetadata` as is; hws does not use it. Default `None`.
    pub serverless_drain_grace_period: Option<Duration>,
    /// Runner connections open at once. Default 1 024.
    pub max_connections: usize,
    /// Runners known at once (connected or within their lost threshold). Default 1 024.
    pub max_runners: usize,
    /// Actors known at once. Default 1 000 000.
    pub max_actors: usize,
    /// Client opens waiting for one actor to run. Default 1 024.
    pub max_waiting_opens_per_actor: usize,
    /// Limits for decoding runner frames.
    pub decode_limits: DecodeLimits,
    /// This engine is one node of a cluster (see [`Control::place_here`](super::Control::place_here)):
    /// placement is decided outside the engine ([`Action::PlaceActor`](super::Action::PlaceActor)),
    /// hibernating records are reported ([`Action::HibernatingRecord`](super::Action::HibernatingRecord)),
    /// and a local runner's tunnel messages for other gateways are forwarded
    /// ([`Action::ForwardToGateway`](super::Action::ForwardToGateway)) instead of refused.
    /// Default `false`: one engine, placement by the engine.
    pub cluster: bool,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            init_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(3),
            ping_timeout: Duration::from_secs(15),
            runner_lost_threshold: Duration::from_secs(15),
            actor_stop_threshold: Duration::from_secs(30),
            actor_start_timeout: Duration::from_secs(30),
            serverless_drain_grace_period: None,
            max_connections: 1024,
            max_runners: 1024,
            max_actors: 1_000_000,
            max_waiting_opens_per_actor: 1024,
            decode_limits: DecodeLimits::default(),
            cluster: false,
        }
    }
}

const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

impl ControlConfig {
    /// Checks every field against its bounds: durations between 1 ms and one year, limits at
    /// least 1.
    ///
    /// # Errors
    /// [`ConfigError::OutOfBounds`] naming the first offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let durations = [
            ("init_timeout", self.init_timeout),
            ("ping_interval", self.ping_interval),
            ("ping_timeout", self.ping_timeout),
            ("runner_lost_threshold", self.runner_lost_threshold),
            ("actor_stop_threshold", self.actor_stop_threshold),
            ("actor_start_timeout", self.actor_start_timeout),
        ];
        for (field, d) in durations {
            if d < Duration::from_millis(1) || d > MAX_DURATION {
                return Err(ConfigError::OutOfBounds {
                    field,
                    constraint: "between 1 ms and 365 days",
                });
            }
        }
        if self
            .serverless_drain_grace_period
            .is_some_and(|d| d > MAX_DURATION)
        {
            return Err(ConfigError::OutOfBounds {
                field: "serverless_drain_grace_period",
                constraint: "at most 365 days",
            });
        }
        let limits = [
            ("max_connections", self.max_connections),
            ("max_runners", self.max_runners),
            ("max_actors", self.max_actors),
            (
                "max_waiting_opens_per_actor",
                self.max_waiting_opens_per_actor,
            ),
        ];
        for (field, n) in limits {
            if n == 0 {
                return Err(ConfigError::OutOfBounds {
                    field,
                    constraint: "at least 1",
                });
            }
        }
        Ok(())
    }

    /// The `ProtocolMetadata` sent in every `ToClientInit` (milliseconds).
    #[must_use]
    pub fn protocol_metadata(&self) -> ProtocolMetadata {
        ProtocolMetadata {
            runner_lost_threshold: millis(self.runner_lost_threshold),
            actor_stop_threshold: millis(self.actor_stop_threshold),
            serverless_drain_grace_period: self.serverless_drain_grace_period.map(millis),
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
