//! NATS subjects and framing of the cluster.
//!
//! | subject | payload | from → to |
//! |---|---|---|
//! | `hws.runner.<node>.<runner_id>` | versioned `ToRunner` tunnel frame, as the gateway encoded it | a gateway on any node → the node holding the runner's connection |
//! | `hws.gateway.<gateway_id>.<node>.<runner_id>` | versioned `ToGateway` tunnel frame | the node holding the runner → the node of the gateway named in the message id |
//!
//! `<gateway_id>` is the 4-byte gateway id in lowercase hex. The last two tokens of a gateway
//! subject name the runner the frame comes from: the receiving gateway accepts a request's
//! frames only from its current route, and that route is (node, runner). Node ids and runner ids
//! are single subject tokens: ASCII letters, digits, `-` and `_` ([`check_token`]).
//!
//! A NATS message (no header) carries one or more frames for its subject, each as a 4-byte
//! little-endian length and the frame's bytes ([`pack`], [`unpack`]): a node publishes what its
//! queue holds for one subject in as few messages as `max_payload` allows, since the per-message
//! cost of the server dominates at small frames. NATS keeps the order of one publisher's
//! messages on one subject, and a message keeps its frames' order: the per-request order the
//! protocol needs. A frame larger than the server's `max_payload` (with its 4-byte length) is
//! refused before publishing ([`FrameTooLarge`]); the
//! protocol's own limits (1 MiB of pending messages per request) stay below NATS's default
//! `max_payload` of 1 MiB only for messages under it, so raise `max_payload` for larger ones.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use bytes::Bytes;

use crate::wire::GatewayId;

/// Prefix of every subject.
pub const PREFIX: &str = "hws";

/// A node or runner id that cannot be a subject token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {id:?} is not a subject token (ASCII letters, digits, '-', '_'; 1 to 128 bytes)")]
pub struct BadToken {
    /// What it names (`"node"`, `"runner"`).
    pub what: &'static str,
    /// The id.
    pub id: String,
}

/// A frame larger than the server's `max_payload` was not published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("frame of {len} bytes for {subject} exceeds the server's max_payload of {max_payload}")]
pub struct FrameTooLarge {
    /// The subject.
    pub subject: String,
    /// The frame's length.
    pub len: usize,
    /// The server's limit.
    pub max_payload: usize,
}

/// Bytes of the length before each frame of a message.
pub const LEN_PREFIX: usize = 4;

/// Appends `frame` with its length to a message being built.
pub fn pack(message: &mut Vec<u8>, frame: &[u8]) {
    let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
    message.extend_from_slice(&len.to_le_bytes());
    message.extend_from_slice(frame);
}

/// A message whose frames' lengths do not add up to its size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed message on {subject}: a frame length runs past its end at byte {offset}")]
pub struct BadMessage {
    /// The subject.
    pub subject: String,
    /// Where the frame that does not fit starts.
    pub offset: usize,
}

/// The frames of a received message (slices of it, no copy), in order.
///
/// # Errors
/// [`BadMessage`]: the message is dropped whole (the protocol heals a lost frame).
pub fn unpack(subject: &str, message: &Bytes, out: &mut Vec<Bytes>) -> Result<(), BadMessage> {
    let start = out.len();
    let mut at = 0;
    while at < message.len() {
        let len = message
            .get(at..at + LEN_PREFIX)
            .and_then(|b| <[u8; LEN_PREFIX]>::try_from(b).ok())
            .and_then(|b| usize::try_from(u32::from_le_bytes(b)).ok());
        let end = len.and_then(|l| (at + LEN_PREFIX).checked_add(l));
        let Some(end) = end.filter(|&e| e <= message.len()) else {
            out.truncate(start);
            return Err(BadMessage {
                subject: subject.into(),
                offset: at,
            });
        };
        out.push(message.slice(at + LEN_PREFIX..end));
        at = end;
    }
    Ok(())
}

/// Checks that `id` can be one subject token.
///
/// # Errors
/// [`BadToken`].
pub fn check_token(what: &'static str, id: &str) -> Result<(), BadToken> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(BadToken {
            what,
            id: id.into(),
        })
    }
}

/// `hws.runner.<node>.<runner_id>`: where gateways publish `ToRunner` frames for a runner.
#[must_use]
pub fn runner(node: &str, runner_id: &str) -> String {
    alloc::format!("{PREFIX}.runner.{node}.{runner_id}")
}

/// `hws.runner.<node>.*`: what a node subscribes to for its runners.
#[must_use]
pub fn runners_of(node: &str) -> String {
    alloc::format!("{PREFIX}.runner.{node}.*")
}

/// `hws.gateway.<gateway_id>.<node>.<runner_id>`: where a runner's node publishes `ToGateway`
/// frames for a gateway.
#[must_use]
pub fn gateway(gateway_id: GatewayId, node: &str, runner_id: &str) -> String {
    alloc::format!("{}.{node}.{runner_id}", gateway_prefix(gateway_id))
}

/// `hws.gateway.<gateway_id>.>`: what a node subscribes to for its gateway.
#[must_use]
pub fn gateway_of(gateway_id: GatewayId) -> String {
    alloc::format!("{}.>", gateway_prefix(gateway_id))
}

fn gateway_prefix(gateway_id: GatewayId) -> String {
    let mut s = alloc::format!("{PREFIX}.gateway.");
    for b in gateway_id.0 {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The runner id of a `hws.runner.<node>.<runner_id>` subject.
#[must_use]
pub fn parse_runner(subject: &str) -> Option<&str> {
    let mut parts = subject.split('.');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some(PREFIX), Some("runner"), Some(_), Some(runner), None) => Some(runner),
        _ => None,
    }
}

/// The (node, runner id) of a `hws.gateway.<gateway_id>.<node>.<runner_id>` subject.
#[must_use]
pub fn parse_gateway(subject: &str) -> Option<(&str, &str)> {
    let mut parts = subject.split('.');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some(PREFIX), Some("gateway"), Some(_), Some(node), Some(runner), None) => {
            Some((node, runner))
        }
        _ => None,
    }
}

/// Checks a frame against the server's `max_payload` before publishing it.
///
/// # Errors
/// [`FrameTooLarge`].
pub fn check_size(subject: &str, len: usize, max_payload: usize) -> Result<(), FrameTooLarge> {
    if len > max_payload {
        Err(FrameTooLarge {
            subject: subject.into(),
            len,
            max_payload,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_frames_in_order_and_refuse_bad_lengths() {
        let mut m = Vec::new();
        pack(&mut m, b"abc");
        pack(&mut m, b"");
        pack(&mut m, b"de");
        let m = Bytes::from(m);
        let mut out = Vec::new();
        unpack("s", &m, &mut out).unwrap();
        assert_eq!(out, [&b"abc"[..], b"", b"de"]);
        // A length past the end drops the whole message; nothing of it is kept.
        let mut bad = m.to_vec();
        bad.truncate(bad.len() - 1);
        let mut out = vec![Bytes::from_static(b"kept")];
        let err = unpack("s", &Bytes::from(bad), &mut out).unwrap_err();
        assert_eq!(err.offset, 11);
        assert_eq!(out, [&b"kept"[..]]);
        assert!(unpack("s", &Bytes::from_static(&[1, 0]), &mut out).is_err());
        assert!(unpack("s", &Bytes::new(), &mut out).is_ok());
    }

    #[test]
    fn subjects_round_trip() {
        let s = runner("node-1", "00ab-0001");
        assert_eq!(s, "hws.runner.node-1.00ab-0001");
        assert_eq!(parse_runner(&s), Some("00ab-0001"));
        let g = gateway(GatewayId(*b"gw01"), "node-2", "r_9");
        assert_eq!(g, "hws.gateway.67773031.node-2.r_9");
        assert_eq!(parse_gateway(&g), Some(("node-2", "r_9")));
        assert_eq!(gateway_of(GatewayId(*b"gw01")), "hws.gateway.67773031.>");
        assert_eq!(parse_runner("hws.runner.a.b.c"), None);
        assert_eq!(parse_gateway("hws.gateway.x.a"), None);
    }

    #[test]
    fn tokens_and_sizes_are_checked() {
        assert!(check_token("node", "node-1_a").is_ok());
        for bad in ["", "a.b", "a*", "a>", "a b", &"x".repeat(129)] {
            assert_eq!(check_token("node", bad).unwrap_err().id, bad);
        }
        assert!(check_size("s", 10, 10).is_ok());
        let e = check_size("s", 11, 10).unwrap_err();
        assert_eq!((e.len, e.max_payload), (11, 10));
    }
}
