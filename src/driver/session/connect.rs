//! Where and how the runner connects: the runner endpoint's URL, the subprotocols that carry the
//! token, and the reconnect backoff.

use alloc::format;
use alloc::string::String;
use core::fmt::Write as _;
use core::time::Duration;

use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// The runner protocol version the driver speaks on `/runners/connect` (the `protocol_version`
/// query parameter).
pub const PROTOCOL_VERSION: u16 = 7;

/// The envoy protocol version the driver speaks on `/envoys/connect`.
pub const ENVOY_PROTOCOL_VERSION: u16 = crate::wire::envoy::ENVOY_PROTOCOL_VERSION;

/// Which protocol the driver speaks with the engine.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Protocol {
    /// Runner protocol v7 on `/runners/connect` (the default).
    #[default]
    Runner,
    /// Envoy protocol v8 on `/envoys/connect`.
    Envoy(EnvoyParams),
    /// Envoy protocol v8 when the engine offers it (its `/envoys/connect` upgrades), runner
    /// protocol v7 when it refuses that upgrade with an HTTP status: the driver then stays on v7
    /// for its lifetime.
    Negotiate(EnvoyParams),
}

/// What an envoy connection says of itself in its URL (v8 carries in the URL what v7's
/// `ToServerInit` carries).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EnvoyParams {
    /// The pool the envoy serves (the `pool_name` query parameter; v7's runner name).
    pub pool_name: String,
    /// The envoy's own version (the `version` query parameter; not the protocol version).
    pub version: u32,
}

impl EnvoyParams {
    /// The parameters of an envoy serving `pool_name` at `version`.
    #[must_use]
    pub fn new(pool_name: impl Into<String>, version: u32) -> Self {
        Self {
            pool_name: pool_name.into(),
            version,
        }
    }
}

/// The wire protocol of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireVersion {
    /// Runner protocol v7.
    V7,
    /// Envoy protocol v8.
    V8,
}

/// The subprotocol every runner connection offers (the engine selects it).
pub const SUBPROTOCOL: &str = "rivet";

/// The prefix of the subprotocol that carries the token: `rivet_token.<token>`.
pub const TOKEN_SUBPROTOCOL_PREFIX: &str = "rivet_token.";

/// Where the runner connects, and as whom. With [`Protocol::Runner`] the driver connects to
/// `<endpoint>/runners/connect?protocol_version=7&namespace=<namespace>&runner_key=<runner_key>`,
/// with [`Protocol::Envoy`] to
/// `<endpoint>/envoys/connect?protocol_version=8&namespace=<namespace>&envoy_key=<runner_key>&version=<version>&pool_name=<pool_name>`
/// (`http://` becomes `ws://`, `https://` becomes `wss://`; parameters are percent-encoded),
/// offering the subprotocols `rivet` and, with a token, `rivet_token.<token>`, as the official
/// TypeScript runner and the official envoy client do. Every reconnection uses the same key: an
/// engine that still knows the key within its lost threshold keeps the runner's actors.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// The engine's base URL (`http://`, `https://`, `ws://` or `wss://`), without a path or
    /// with a path prefix the endpoint is served under.
    pub endpoint: String,
    /// The namespace the runner serves.
    pub namespace: String,
    /// The runner key: the same on every reconnection of this process.
    pub runner_key: String,
    /// The token the engine authenticates runners with, if any.
    pub token: Option<String>,
    /// The protocol to speak.
    pub protocol: Protocol,
}

impl ConnectOptions {
    /// Options for `endpoint`, `namespace` and `runner_key`, without a token.
    #[must_use]
    pub fn new(
        endpoint: impl Into<String>,
        namespace: impl Into<String>,
        runner_key: impl Into<String>,
    ) -> Self {
        Self {
            endpoint: endpoint.into(),
            namespace: namespace.into(),
            runner_key: runner_key.into(),
            token: None,
            protocol: Protocol::Runner,
        }
    }

    /// These options speaking `protocol`.
    #[must_use]
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// The version the first connection attempt speaks.
    #[must_use]
    pub fn first_version(&self) -> WireVersion {
        match self.protocol {
            Protocol::Runner => WireVersion::V7,
            Protocol::Envoy(_) | Protocol::Negotiate(_) => WireVersion::V8,
        }
    }

    /// These options with `token`.
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The WebSocket URL of the first connection attempt.
    #[must_use]
    pub fn url(&self) -> String {
        self.url_for(self.first_version())
    }

    /// The WebSocket URL of the endpoint of `version` (v8 needs [`EnvoyParams`]: without them
    /// the v7 URL).
    #[must_use]
    pub fn url_for(&self, version: WireVersion) -> String {
        let base = self.endpoint.trim_end_matches('/');
        let base = if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else {
            String::from(base)
        };
        let envoy = match (&self.protocol, version) {
            (Protocol::Envoy(p) | Protocol::Negotiate(p), WireVersion::V8) => Some(p),
            _ => None,
        };
        match envoy {
            Some(p) => format!(
                "{base}/envoys/connect?protocol_version={ENVOY_PROTOCOL_VERSION}&namespace={}&envoy_key={}&version={}&pool_name={}",
                encode_component(&self.namespace),
                encode_component(&self.runner_key),
                p.version,
                encode_component(&p.pool_name),
            ),
            None => format!(
                "{base}/runners/connect?protocol_version={PROTOCOL_VERSION}&namespace={}&runner_key={}",
                encode_component(&self.namespace),
                encode_component(&self.runner_key),
            ),
        }
    }

    /// The upgrade request of the first attempt: [`url`](Self::url) with the subprotocols.
    ///
    /// # Errors
    /// [`RequestError`] if the URL does not parse or the token cannot be a header value.
    pub fn request(&self) -> Result<Request, RequestError> {
        self.request_for(self.first_version())
    }

    /// The upgrade request for `version`: [`url_for`](Self::url_for) with the subprotocols.
    ///
    /// # Errors
    /// [`RequestError`] if the URL does not parse or the token cannot be a header value.
    pub fn request_for(&self, version: WireVersion) -> Result<Request, RequestError> {
        let mut request = self
            .url_for(version)
            .into_client_request()
            .map_err(|e| RequestError::Url(format!("{e}")))?;
        let protocols = match &self.token {
            Some(token) => format!("{SUBPROTOCOL}, {TOKEN_SUBPROTOCOL_PREFIX}{token}"),
            None => String::from(SUBPROTOCOL),
        };
        let value = HeaderValue::from_str(&protocols).map_err(|_| RequestError::Token)?;
        request
            .headers_mut()
            .insert("sec-websocket-protocol", value);
        Ok(request)
    }
}

/// The upgrade request cannot be built from the [`ConnectOptions`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The URL does not parse.
    #[error("invalid runner endpoint URL: {0}")]
    Url(String),
    /// The token contains characters a header value cannot carry.
    #[error("the token cannot be carried in a subprotocol header")]
    Token,
}

/// `encodeURIComponent`: every byte but the unreserved ASCII characters as `%XX`.
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// How long to wait before reconnecting: `initial × multiplier^attempt`, at most `max`, plus a
/// jitter of up to `jitter_percent` drawn deterministically from the runner key and the attempt
/// (runners of one deployment spread out without a random source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Backoff {
    /// The first delay (default 1 s, as the official runner).
    pub initial: Duration,
    /// The longest delay (default 30 s).
    pub max: Duration,
    /// Growth per failed attempt (default 2).
    pub multiplier: u32,
    /// Extra delay, in percent of the delay, at most (default 25).
    pub jitter_percent: u32,
    /// Consecutive failed attempts after which the driver stops reconnecting (`None`: never
    /// stops). An attempt succeeds when the engine answered the handshake.
    pub max_attempts: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
            multiplier: 2,
            jitter_percent: 25,
            max_attempts: None,
        }
    }
}

impl Backoff {
    /// A backoff from `initial` to `max`, defaults elsewhere.
    #[must_use]
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            ..Self::default()
        }
    }

    /// This backoff, giving up after `attempts` consecutive failures.
    #[must_use]
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// The delay before attempt `attempt + 1` (`attempt` failures so far), `None` once the
    /// attempts are exhausted. `seed` spreads the jitter.
    #[must_use]
    pub fn delay(&self, attempt: u32, seed: u64) -> Option<Duration> {
        if self.max_attempts.is_some_and(|max| attempt >= max) {
            return None;
        }
        let mut delay = self.initial;
        for _ in 0..attempt {
            delay = delay.saturating_mul(self.multiplier.max(1));
            if delay >= self.max {
                break;
            }
        }
        let delay = delay.min(self.max);
        let draw = splitmix(seed ^ u64::from(attempt)) % 1001;
        let permille = u64::from(self.jitter_percent.min(100)) * draw / 100;
        let jitter = delay.as_micros().saturating_mul(u128::from(permille)) / 1000;
        let jitter = Duration::from_micros(u64::try_from(jitter).unwrap_or(u64::MAX));
        Some(delay.saturating_add(jitter))
    }
}

/// `SplitMix64`: a deterministic spread of `x`.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seed for the jitter from the runner key (FNV-1a).
pub(super) fn seed_of(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_the_official_runners() {
        let o = ConnectOptions::new("http://127.0.0.1:6420/", "default", "k 1/ü");
        assert_eq!(
            o.url(),
            "ws://127.0.0.1:6420/runners/connect?protocol_version=7&namespace=default&runner_key=k%201%2F%C3%BC"
        );
        let o = ConnectOptions::new("https://api.example.com/base", "ns", "k");
        assert!(
            o.url()
                .starts_with("wss://api.example.com/base/runners/connect?")
        );
    }

    #[test]
    fn the_envoy_url_is_the_official_envoy_clients() {
        let o = ConnectOptions::new("http://127.0.0.1:6420", "default", "k 1")
            .with_protocol(Protocol::Envoy(EnvoyParams::new("pool/ü", 3)));
        assert_eq!(
            o.url(),
            "ws://127.0.0.1:6420/envoys/connect?protocol_version=8&namespace=default&envoy_key=k%201&version=3&pool_name=pool%2F%C3%BC"
        );
        assert_eq!(o.first_version(), WireVersion::V8);
        let n = o
            .clone()
            .with_protocol(Protocol::Negotiate(EnvoyParams::new("p", 1)));
        assert!(n.url().contains("/envoys/connect?protocol_version=8&"));
        assert!(
            n.url_for(WireVersion::V7).ends_with(
                "/runners/connect?protocol_version=7&namespace=default&runner_key=k%201"
            )
        );
        assert_eq!(
            ConnectOptions::new("http://h", "d", "k").first_version(),
            WireVersion::V7
        );
    }

    #[test]
    fn the_token_travels_as_a_subprotocol() {
        let o = ConnectOptions::new("http://127.0.0.1:1", "default", "k").with_token("s3cret");
        let request = o.request().expect("valid");
        let header = request
            .headers()
            .get("sec-websocket-protocol")
            .expect("set");
        assert_eq!(header, "rivet, rivet_token.s3cret");
        let bad = ConnectOptions::new("http://127.0.0.1:1", "d", "k").with_token("a\nb");
        assert_eq!(bad.request().err(), Some(RequestError::Token));
    }

    #[test]
    fn backoff_grows_to_its_bound_and_gives_up_when_told() {
        let b = Backoff {
            jitter_percent: 0,
            ..Backoff::new(Duration::from_millis(100), Duration::from_secs(1))
        };
        let delays: Vec<_> = (0..6).map(|a| b.delay(a, 0).expect("no limit")).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1000, 1000].map(Duration::from_millis)
        );
        let b = b.with_max_attempts(2);
        assert!(b.delay(1, 0).is_some());
        assert_eq!(b.delay(2, 0), None);
        let jittered = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for seed in 0..100 {
            let d = jittered.delay(0, seed).expect("no limit");
            assert!(d >= Duration::from_secs(1) && d <= Duration::from_millis(1250));
        }
    }
}
