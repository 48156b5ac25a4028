//! [`GatewayConfig`]: limits, timeouts and policies of a [`Gateway`](super::Gateway).

use core::time::Duration;

use crate::config::ConfigError;
use crate::index::MAX_WINDOW;
use crate::wire::{DecodeLimits, PROTOCOL_VERSION, TUNNEL_COMPATIBLE_VERSIONS};

/// What happens when a client message would exceed a pending limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// Close the request (Rivet-compatible): the client gets 1011
    /// `guard.websocket_pending_limit_reached`, the runner 1011 `ws.downstream_closed`.
    #[default]
    Close,
    /// Refuse the message with [`SendError::Backpressure`](super::SendError::Backpressure) and
    /// change nothing; [`Action::ClientWritable`](super::Action::ClientWritable) follows once acks
    /// free room for it. The adapter stops reading the client in between.
    Backpressure,
}

/// Configuration of a [`Gateway`](super::Gateway). `Default` gives the Rivet-compatible values
/// listed in `docs/design.md#defaults`.
///
/// The struct is `#[non_exhaustive]` (as [`RunnerConfig`](crate::runner::RunnerConfig)): start
/// from `default()` and change fields with the `with_*` setters (or assign the public fields).
/// [`Gateway::new`](super::Gateway::new) checks the result with [`validate`](Self::validate).
///
/// ```
/// use core::time::Duration;
/// use hibernating_ws::gateway::{GatewayConfig, OverflowPolicy};
///
/// let config = GatewayConfig::default()
///     .with_max_pending_bytes(4 * 1024 * 1024)
///     .with_overflow_policy(OverflowPolicy::Backpressure)
///     .with_retransmit_timeout(Some(Duration::from_secs(5)));
/// assert!(config.validate().is_ok());
///
/// let err = GatewayConfig::default().with_ping_interval(Duration::ZERO).validate().unwrap_err();
/// assert_eq!(err.field(), "ping_interval");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
#[non_exhaustive]
pub struct GatewayConfig {
    /// Most unacknowledged messages buffered per hibernatable request. Default and ceiling:
    /// 32 767 ([`MAX_WINDOW`]), so an index comparison is never ambiguous. Must be at least 1.
    pub max_pending_messages: u16,
    /// Most pending bytes per hibernatable request, counted as encoded frame sizes (version prefix
    /// included). Released bytes are subtracted on ack. Default 1 MiB. Must be at least 1 and at
    /// most `max_gateway_pending_bytes`.
    pub max_pending_bytes: u64,
    /// Most pending bytes across all requests. Default 256 MiB.
    pub max_gateway_pending_bytes: u64,
    /// What happens when a limit would be exceeded. Default [`OverflowPolicy::Close`].
    pub overflow_policy: OverflowPolicy,
    /// Most live requests; [`Gateway::open`](super::Gateway::open) fails beyond it. Default 2²²;
    /// at most `u32::MAX`.
    pub max_requests: usize,
    /// An active request whose oldest pending message is not acknowledged this long after it was
    /// sent (or replayed) is collected. Paused while hibernating. Default 30 s.
    pub ack_timeout: Duration,
    /// How long the runner may take to accept a WebSocket. Default 15 s.
    pub open_timeout: Duration,
    /// Interval of tunnel pings while active. Default 3 s.
    pub ping_interval: Duration,
    /// Silence (no pong) after which the tunnel is considered lost. Default 30 s.
    pub ping_timeout: Duration,
    /// Interval of hibernating-record upserts of a hibernatable request. Default 45 s. Must be
    /// shorter than `hibernation_timeout`.
    pub keepalive_interval: Duration,
    /// A hibernatable request whose record was not successfully upserted for this long is
    /// collected (the record's eligibility window upstream). Default 90 s.
    pub hibernation_timeout: Duration,
    /// A hibernating request that asked for a wake and was not woken within this time is
    /// collected. Default 60 s.
    pub wake_timeout: Duration,
    /// How long a client close waits for the runner to acknowledge the messages still pending
    /// when the client closed ([`Gateway::client_close`](super::Gateway::client_close)); then the
    /// request is collected ([`GcReason::CloseTimeout`](super::GcReason::CloseTimeout)). Default
    /// 60 s. Must be positive.
    pub close_timeout: Duration,
    /// Re-publish all pending messages of an active request when the oldest has gone unacked this
    /// long (pair with the runner's `Await` gap policy). Default `None` (off); 5 s is a good
    /// value when used (`docs/design.md#defaults`).
    pub retransmit_timeout: Option<Duration>,
    /// On ping timeout, hibernate a hibernatable request instead of closing it
    /// (`docs/design.md#tunnel-loss-hibernates`).
    /// Default `true`.
    pub hibernate_on_ping_timeout: bool,
    /// Protocol version written in the prefix of every published frame. Default
    /// [`PROTOCOL_VERSION`] (7); must be in [`TUNNEL_COMPATIBLE_VERSIONS`].
    pub protocol_version: u16,
    /// Limits applied when decoding runner frames
    /// ([`Gateway::handle_runner_frame`](super::Gateway::handle_runner_frame)).
    pub decode_limits: DecodeLimits,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_pending_messages: MAX_WINDOW,
            max_pending_bytes: 1024 * 1024,
            max_gateway_pending_bytes: 256 * 1024 * 1024,
            overflow_policy: OverflowPolicy::Close,
            max_requests: 1 << 22,
            ack_timeout: Duration::from_secs(30),
            open_timeout: Duration::from_secs(15),
            ping_interval: Duration::from_secs(3),
            ping_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(45),
            hibernation_timeout: Duration::from_secs(90),
            wake_timeout: Duration::from_secs(60),
            close_timeout: Duration::from_secs(60),
            retransmit_timeout: None,
            hibernate_on_ping_timeout: true,
            protocol_version: PROTOCOL_VERSION,
            decode_limits: DecodeLimits::default(),
        }
    }
}

crate::config::with_setters!(GatewayConfig {
    with_max_pending_messages => max_pending_messages: u16,
    with_max_pending_bytes => max_pending_bytes: u64,
    with_max_gateway_pending_bytes => max_gateway_pending_bytes: u64,
    with_overflow_policy => overflow_policy: OverflowPolicy,
    with_max_requests => max_requests: usize,
    with_ack_timeout => ack_timeout: Duration,
    with_open_timeout => open_timeout: Duration,
    with_ping_interval => ping_interval: Duration,
    with_ping_timeout => ping_timeout: Duration,
    with_keepalive_interval => keepalive_interval: Duration,
    with_hibernation_timeout => hibernation_timeout: Duration,
    with_wake_timeout => wake_timeout: Duration,
    with_close_timeout => close_timeout: Duration,
    with_retransmit_timeout => retransmit_timeout: Option<Duration>,
    with_hibernate_on_ping_timeout => hibernate_on_ping_timeout: bool,
    with_protocol_version => protocol_version: u16,
    with_decode_limits => decode_limits: DecodeLimits,
});

impl GatewayConfig {
    /// Checks every field against its documented bounds.
    ///
    /// # Errors
    /// [`ConfigError::OutOfBounds`] naming the first field out of bounds. Zero durations are
    /// refused: a zero interval would make a timer fire forever at the same instant.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let check = |ok: bool, field: &'static str, constraint: &'static str| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::OutOfBounds { field, constraint })
            }
        };
        check(
            (1..=MAX_WINDOW).contains(&self.max_pending_messages),
            "max_pending_messages",
            "1..=32767",
        )?;
        check(
            self.max_pending_bytes >= 1,
            "max_pending_bytes",
            "at least 1",
        )?;
        check(
            self.max_gateway_pending_bytes >= self.max_pending_bytes,
            "max_gateway_pending_bytes",
            "at least max_pending_bytes",
        )?;
        check(
            self.max_requests >= 1 && u32::try_from(self.max_requests).is_ok(),
            "max_requests",
            "1..=u32::MAX",
        )?;
        let positive = |d: Duration, field| check(!d.is_zero(), field, "greater than zero");
        positive(self.ack_timeout, "ack_timeout")?;
        positive(self.open_timeout, "open_timeout")?;
        positive(self.ping_interval, "ping_interval")?;
        positive(self.ping_timeout, "ping_timeout")?;
        positive(self.keepalive_interval, "keepalive_interval")?;
        positive(self.hibernation_timeout, "hibernation_timeout")?;
        positive(self.wake_timeout, "wake_timeout")?;
        positive(self.close_timeout, "close_timeout")?;
        if let Some(d) = self.retransmit_timeout {
            positive(d, "retransmit_timeout")?;
        }
        check(
            self.keepalive_interval < self.hibernation_timeout,
            "keepalive_interval",
            "shorter than hibernation_timeout",
        )?;
        check(
            TUNNEL_COMPATIBLE_VERSIONS.contains(&self.protocol_version),
            "protocol_version",
            "4..=7",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_design_table() {
        let c = GatewayConfig::default();
        assert_eq!(c.max_pending_messages, 32_767);
        assert_eq!(c.max_pending_bytes, 1 << 20);
        assert_eq!(c.max_gateway_pending_bytes, 256 << 20);
        assert_eq!(c.overflow_policy, OverflowPolicy::Close);
        assert_eq!(c.max_requests, 1 << 22);
        assert_eq!(c.ack_timeout, Duration::from_secs(30));
        assert_eq!(c.open_timeout, Duration::from_secs(15));
        assert_eq!(c.ping_interval, Duration::from_secs(3));
        assert_eq!(c.ping_timeout, Duration::from_secs(30));
        assert_eq!(c.keepalive_interval, Duration::from_secs(45));
        assert_eq!(c.hibernation_timeout, Duration::from_secs(90));
        assert_eq!(c.wake_timeout, Duration::from_secs(60));
        assert_eq!(c.close_timeout, Duration::from_secs(60));
        assert_eq!(c.retransmit_timeout, None);
        assert!(c.hibernate_on_ping_timeout);
        assert_eq!(c.protocol_version, 7);
        assert_eq!(c.validate(), Ok(()));
    }

    fn field_of(c: &GatewayConfig) -> Option<&'static str> {
        match c.validate() {
            Ok(()) => None,
            Err(ConfigError::OutOfBounds { field, .. }) => Some(field),
        }
    }

    #[test]
    fn bounds_are_enforced() {
        let mut c = GatewayConfig {
            max_pending_messages: 0,
            ..GatewayConfig::default()
        };
        assert_eq!(field_of(&c), Some("max_pending_messages"));
        c.max_pending_messages = 32_768;
        assert_eq!(field_of(&c), Some("max_pending_messages"));
        c.max_pending_messages = 1;
        assert_eq!(field_of(&c), None);

        let mut c = GatewayConfig {
            max_pending_bytes: 0,
            ..GatewayConfig::default()
        };
        assert_eq!(field_of(&c), Some("max_pending_bytes"));
        c.max_pending_bytes = c.max_gateway_pending_bytes + 1;
        assert_eq!(field_of(&c), Some("max_gateway_pending_bytes"));
        c.max_pending_bytes = c.max_gateway_pending_bytes;
        assert_eq!(field_of(&c), None);

        let c = GatewayConfig {
            max_requests: 0,
            ..GatewayConfig::default()
        };
        assert_eq!(field_of(&c), Some("max_requests"));

        let c = GatewayConfig {
            ping_interval: Duration::ZERO,
            ..GatewayConfig::default()
        };
        assert_eq!(field_of(&c), Some("ping_interval"));

        let c = GatewayConfig {
            retransmit_timeout: Some(Duration::ZERO),
            ..GatewayConfig::default()
        };
        assert_eq!(field_of(&c), Some("retransmit_timeout"));

        let c = GatewayConfig {
            keepalive_interval: c.hibernation_timeout,
            ..GatewayConfig::default()
        };
        assert_eq!(field_of(&c), Some("keepalive_interval"));

        let c = GatewayConfig {
            protocol_version: 3,
            ..GatewayConfig::default()
        };
        assert_eq!(field_of(&c), Some("protocol_version"));
    }
}
