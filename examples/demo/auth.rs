//! The runner hop's authentication and the demo's random identifiers.
//!
//! A runner proves who it is when it connects, the way Rivet's runner protocol carries a token:
//! in the WebSocket subprotocol list, `Sec-WebSocket-Protocol: rivet, rivet_token.<token>`. The
//! gateway compares the token in constant time before the upgrade completes and refuses the
//! handshake otherwise (HTTP 401 with the [`RunnerRejection`] in the body); the connect URL must
//! carry a `runner_key`. After the upgrade the runner speaks runner protocol v7: any frame before
//! its `ToServerInit` is dropped by the control engine and closes the connection with 1008
//! `runner.init_required`.
//!
//! Randomness is an input here, as everywhere in hws: the token and the request ids come from
//! the operating system's generator ([`getrandom`]), so a rogue cannot guess the id of another
//! client's socket.

use core::fmt;

/// The subprotocol every runner offers (and the gateway answers with).
pub const SUBPROTOCOL: &str = "rivet";
/// Prefix of the subprotocol entry that carries the token.
pub const TOKEN_PREFIX: &str = "rivet_token.";

/// Why the gateway refused a runner connection (typed; the close reason or HTTP body carries
/// [`RunnerRejection::reason`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RunnerRejection {
    /// No `rivet_token.<token>` subprotocol was offered.
    MissingToken,
    /// The token does not match the gateway's.
    BadToken,
    /// The connect URL carries no `runner_key`.
    MissingKey,
    /// A frame other than `ToServerInit` came first.
    InitRequired,
}

impl RunnerRejection {
    /// The reason string (HTTP body of a refused handshake, or close reason).
    pub const fn reason(self) -> &'static str {
        match self {
            Self::MissingToken => "runner.token_missing",
            Self::BadToken => "runner.token_invalid",
            Self::MissingKey => "runner.key_missing",
            Self::InitRequired => "runner.init_required",
        }
    }

    /// The reason back from its string.
    pub fn from_reason(reason: &str) -> Option<Self> {
        [
            Self::MissingToken,
            Self::BadToken,
            Self::MissingKey,
            Self::InitRequired,
        ]
        .into_iter()
        .find(|r| r.reason() == reason)
    }

    /// The WebSocket close code for a rejection after the upgrade: 1008 (policy violation).
    pub const CLOSE_CODE: u16 = 1008;
}

impl fmt::Display for RunnerRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// A fresh random token: 32 bytes from the OS generator, hex encoded.
pub fn random_token() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = [0u8; 32];
    // A platform without an OS generator cannot run the demo safely.
    getrandom::fill(&mut bytes).expect("the OS random number generator is available");
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

/// A fresh random request id (4 bytes from the OS generator).
pub fn random_request_id() -> [u8; 4] {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).expect("the OS random number generator is available");
    bytes
}

/// The `Sec-WebSocket-Protocol` value a runner sends.
pub fn subprotocol_header(token: &str) -> String {
    format!("{SUBPROTOCOL}, {TOKEN_PREFIX}{token}")
}

/// Checks the `Sec-WebSocket-Protocol` header values of a runner's upgrade against `expected`.
///
/// # Errors
/// [`RunnerRejection::MissingToken`] or [`RunnerRejection::BadToken`].
pub fn check_subprotocols<'a>(
    values: impl IntoIterator<Item = &'a str>,
    expected: &str,
) -> Result<(), RunnerRejection> {
    let mut offered = None;
    for value in values {
        for entry in value.split(',').map(str::trim) {
            if let Some(token) = entry.strip_prefix(TOKEN_PREFIX) {
                offered = Some(token);
            }
        }
    }
    let token = offered.ok_or(RunnerRejection::MissingToken)?;
    if constant_time_eq(token.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(RunnerRejection::BadToken)
    }
}

/// Compares two byte strings in time independent of where they differ (the length is not
/// secret: tokens have a fixed length).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
