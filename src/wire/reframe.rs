//! Moving frames between the two hops without re-encoding their payloads.
//!
//! A runner's connection sits between both hops: it receives versioned [`ToRunner`] frames from
//! pub/sub and writes plain [`ToClient`] frames to the runner's WebSocket, and it reads plain
//! [`ToServer`] frames from the runner and publishes versioned [`ToGateway`] frames. The message
//! bodies have the same layout on both hops; only the framing (the 2-byte version prefix) and the
//! union tag differ:
//!
//! The tag mapping is tabled in the [`wire`](super) module docs.
//!
//! Tags must be mapped, never copied: forwarded as is, a gateway's ping (tag 0) would reach the
//! runner as `ToClient` tag 0, a `ToClientInit`.
//!
//! Each function checks the whole frame as strictly as [`decode`](super::decode) does (a frame
//! is re-framed if and only if it decodes), then builds the output from the input's own bytes:
//! prefix and tag replaced, body copied. Tunnel messages are validated without allocating; for
//! every frame the output equals decoding, converting with the `TryFrom` impls here and encoding.

use alloc::vec::Vec;

use super::decode::{Read, Reader};
use super::envelope::{ToClient, ToGateway, ToRunner, ToServer};
use super::error::DecodeError;
use super::types::{GatewayId, ToClientTunnelMessage, ToServerTunnelMessage};
use super::{
    DecodeLimits, PROTOCOL_VERSION, TUNNEL_COMPATIBLE_VERSIONS, VERSION_PREFIX_LEN, check_legacy,
    check_size,
};

/// The result of re-framing one frame.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Reframed<M> {
    /// The same message in the other hop's framing: a whole frame to send as is.
    Frame(Vec<u8>),
    /// A message that has no form on the other hop, decoded for the caller to act on.
    Local(M),
}

/// A versioned `ToRunner` frame (pub/sub) as a plain `ToClient` frame (runner WebSocket).
///
/// Returns the frame's protocol version with the result; pings and closes come back as
/// [`Reframed::Local`].
///
/// # Errors
/// Everything [`decode_versioned`](super::decode_versioned) returns for this frame.
pub fn to_runner_as_to_client(
    frame: &[u8],
    limits: &DecodeLimits,
) -> Result<(u16, Reframed<ToRunner>), DecodeError> {
    let (version, mut r) = versioned_reader::<ToRunner>(frame, limits)?;
    let (tag, offset) = r.tag()?;
    if matches!(tag, 0 | 1) {
        return Ok((version, Reframed::Local(local(frame, limits, true)?)));
    }
    let (runner_tag, client_tag) = runner_bound("ToRunner", tag, offset)?;
    validate_runner_bound(runner_tag, &mut r)?;
    Ok((
        version,
        spliced(&r, None, client_tag, &frame[offset + 1..])?,
    ))
}

/// A plain `ToClient` frame (runner WebSocket) as a versioned `ToRunner` frame with `version`
/// (pub/sub). Init, KV responses and runner-socket pings come back as [`Reframed::Local`].
///
/// # Errors
/// Everything [`decode`](super::decode) returns for this frame.
pub fn to_client_as_to_runner(
    frame: &[u8],
    version: u16,
    limits: &DecodeLimits,
) -> Result<Reframed<ToClient>, DecodeError> {
    check_size(frame, limits)?;
    let mut r = Reader::new(frame, limits);
    let (tag, offset) = r.tag()?;
    if matches!(tag, 0 | 3 | 5) {
        return Ok(Reframed::Local(local(frame, limits, false)?));
    }
    let (runner_tag, _) = runner_bound("ToClient", tag, offset)?;
    validate_runner_bound(runner_tag, &mut r)?;
    spliced(&r, Some(version), runner_tag, &frame[1..])
}

/// A plain `ToServer` frame (runner WebSocket) as a versioned `ToGateway` frame with `version`
/// (pub/sub). Everything but tunnel messages is for the engine and comes back as
/// [`Reframed::Local`]; [`gateway_of`] names the gateway to publish a frame to.
///
/// # Errors
/// Everything [`decode`](super::decode) returns for this frame.
pub fn to_server_as_to_gateway(
    frame: &[u8],
    version: u16,
    limits: &DecodeLimits,
) -> Result<Reframed<ToServer>, DecodeError> {
    check_size(frame, limits)?;
    let mut r = Reader::new(frame, limits);
    let (tag, _) = r.tag()?;
    // 6: a tunnel message (tag 1 in `ToGateway`).
    if tag != 6 {
        return Ok(Reframed::Local(local(frame, limits, false)?));
    }
    validate_to_server_tunnel(&mut r)?;
    spliced(&r, Some(version), 1, &frame[1..])
}

/// A versioned `ToGateway` frame (pub/sub) as a plain `ToServer` frame (runner WebSocket).
/// Pongs come back as [`Reframed::Local`].
///
/// # Errors
/// Everything [`decode_versioned`](super::decode_versioned) returns for this frame.
pub fn to_gateway_as_to_server(
    frame: &[u8],
    limits: &DecodeLimits,
) -> Result<(u16, Reframed<ToGateway>), DecodeError> {
    let (version, mut r) = versioned_reader::<ToGateway>(frame, limits)?;
    let (tag, offset) = r.tag()?;
    match tag {
        0 => Ok((version, Reframed::Local(local(frame, limits, true)?))),
        1 => {
            validate_to_server_tunnel(&mut r)?;
            let body = &frame[offset + 1..];
            Ok((version, spliced(&r, None, 6, body)?))
        }
        tag => Err(DecodeError::unknown_tag("ToGateway", tag, offset)),
    }
}

/// The gateway a versioned `ToGateway` tunnel frame is for (the pub/sub subject to publish it
/// on), read without decoding the rest; `None` for any other frame.
#[must_use]
pub fn gateway_of(frame: &[u8]) -> Option<GatewayId> {
    match frame.get(VERSION_PREFIX_LEN..VERSION_PREFIX_LEN + 5)? {
        [1, a, b, c, d] => Some(GatewayId([*a, *b, *c, *d])),
        _ => None,
    }
}

fn versioned_reader<'a, M: super::Message>(
    frame: &'a [u8],
    limits: &DecodeLimits,
) -> Result<(u16, Reader<'a>), DecodeError> {
    check_size(frame, limits)?;
    let mut r = Reader::new(frame, limits);
    let version = r.u16()?;
    if !TUNNEL_COMPATIBLE_VERSIONS.contains(&version) {
        return Err(DecodeError::UnsupportedVersion { version });
    }
    if version != PROTOCOL_VERSION {
        check_legacy::<M>(version, frame)?;
    }
    Ok((version, r))
}

/// The messages both runner-bound hops carry, as `(ToRunner tag, ToClient tag)`: commands,
/// event acks and tunnel messages. No other tag has a form on the other hop.
const RUNNER_BOUND_TAGS: [(u8, u8); 3] = [(2, 1), (3, 2), (4, 4)];

/// The entry of [`RUNNER_BOUND_TAGS`] whose tag in `union` (`"ToRunner"` or `"ToClient"`) is
/// `tag` (read at `offset`).
///
/// # Errors
/// [`DecodeError::UnknownTag`] if no runner-bound message has that tag.
fn runner_bound(union: &'static str, tag: u64, offset: usize) -> Result<(u8, u8), DecodeError> {
    let side = |&(runner_tag, client_tag): &(u8, u8)| {
        if union == "ToRunner" {
            runner_tag
        } else {
            client_tag
        }
    };
    RUNNER_BOUND_TAGS
        .iter()
        .copied()
        .find(|entry| u64::from(side(entry)) == tag)
        .ok_or_else(|| DecodeError::unknown_tag(union, tag, offset))
}

/// Checks the body of a runner-bound message by its `ToRunner` tag (one of
/// [`RUNNER_BOUND_TAGS`]).
fn validate_runner_bound(to_runner_tag: u8, r: &mut Reader<'_>) -> Result<(), DecodeError> {
    match to_runner_tag {
        2 => skip_read::<super::ToClientCommands>(r),
        3 => skip_read::<super::ToClientAckEvents>(r),
        _ => validate_to_client_tunnel(r),
    }
}

/// The whole frame decoded as `M` (`versioned`: after its version prefix): a message that stays
/// on this hop.
fn local<M: Read>(frame: &[u8], limits: &DecodeLimits, versioned: bool) -> Result<M, DecodeError> {
    let mut r = Reader::new(frame, limits);
    if versioned {
        r.u16()?;
    }
    let msg = M::read(&mut r)?;
    r.finish()?;
    Ok(msg)
}

/// Once `r` checked the body to the frame's end: the frame for the other hop.
fn spliced<M>(
    r: &Reader<'_>,
    version: Option<u16>,
    tag: u8,
    body: &[u8],
) -> Result<Reframed<M>, DecodeError> {
    r.finish()?;
    Ok(Reframed::Frame(splice(version, tag, body)))
}

/// Output frame: an optional version prefix, the new tag, then the body bytes unchanged.
fn splice(version: Option<u16>, tag: u8, body: &[u8]) -> Vec<u8> {
    let prefix = if version.is_some() {
        VERSION_PREFIX_LEN
    } else {
        0
    };
    let mut out = Vec::with_capacity(prefix + 1 + body.len());
    if let Some(v) = version {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.push(tag);
    out.extend_from_slice(body);
    out
}

/// Checks a control body by decoding it (control messages are small and rare).
fn skip_read<T: Read>(r: &mut Reader<'_>) -> Result<(), DecodeError> {
    T::read(r).map(drop)
}

/// Checks a `ToClientTunnelMessage` body as [`Read`] does, without copying payloads.
fn validate_to_client_tunnel(r: &mut Reader<'_>) -> Result<(), DecodeError> {
    r.message_id()?;
    let (tag, offset) = r.tag()?;
    match tag {
        0 => {
            r.str_ref()?;
            r.str_ref()?;
            r.str_ref()?;
            r.headers()?;
            r.opt(Reader::skip_data)?;
            r.bool()?;
        }
        1 | 4 => {
            r.skip_data()?;
            r.bool()?;
        }
        2 => {}
        3 => {
            r.str_ref()?;
            r.str_ref()?;
            r.headers()?;
        }
        5 => {
            r.opt(Reader::u16)?;
            r.opt(Reader::str_ref)?;
        }
        tag => {
            return Err(DecodeError::unknown_tag(
                "ToClientTunnelMessageKind",
                tag,
                offset,
            ));
        }
    }
    Ok(())
}

/// Checks a `ToServerTunnelMessage` body as [`Read`] does, without copying payloads.
fn validate_to_server_tunnel(r: &mut Reader<'_>) -> Result<(), DecodeError> {
    r.message_id()?;
    let (tag, offset) = r.tag()?;
    match tag {
        0 => {
            r.u16()?;
            r.headers()?;
            r.opt(Reader::skip_data)?;
            r.bool()?;
        }
        1 | 4 => {
            r.skip_data()?;
            r.bool()?;
        }
        2 => {}
        3 => {
            r.bool()?;
        }
        5 => {
            r.u16()?;
        }
        6 => {
            r.opt(Reader::u16)?;
            r.opt(Reader::str_ref)?;
            r.bool()?;
        }
        tag => {
            return Err(DecodeError::unknown_tag(
                "ToServerTunnelMessageKind",
                tag,
                offset,
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The same mappings on decoded messages
// ---------------------------------------------------------------------------------------------

/// `TryFrom<$from> for $to`: each variant named maps to the variant of the same name; what
/// matches `$rest` (every other variant, spelled out so a new one must be placed) is handed
/// back.
macro_rules! narrow {
    ($(#[$doc:meta])* $from:ident => $to:ident: $($variant:ident),+; $rest:pat) => {
        impl TryFrom<$from> for $to {
            type Error = $from;

            $(#[$doc])*
            fn try_from(m: $from) -> Result<Self, $from> {
                match m {
                    $($from::$variant(v) => Ok(Self::$variant(v)),)+
                    other @ $rest => Err(other),
                }
            }
        }
    };
}

narrow! {
    /// Commands, event acks and tunnel messages; a ping or a close is handed back.
    ToRunner => ToClient: Commands, AckEvents, TunnelMessage;
    ToRunner::Ping(_) | ToRunner::Close
}

narrow! {
    /// Commands, event acks and tunnel messages; the rest is handed back.
    ToClient => ToRunner: Commands, AckEvents, TunnelMessage;
    ToClient::Init(_) | ToClient::KvResponse(_) | ToClient::Ping(_)
}

narrow! {
    /// Tunnel messages; the rest is handed back.
    ToServer => ToGateway: TunnelMessage;
    ToServer::Init(_)
        | ToServer::Events(_)
        | ToServer::AckCommands(_)
        | ToServer::Stopping
        | ToServer::Pong(_)
        | ToServer::KvRequest(_)
}

narrow! {
    /// Tunnel messages; a pong is handed back.
    ToGateway => ToServer: TunnelMessage;
    ToGateway::Pong(_)
}

impl From<ToClientTunnelMessage> for ToRunner {
    fn from(m: ToClientTunnelMessage) -> Self {
        Self::TunnelMessage(m)
    }
}

impl From<ToServerTunnelMessage> for ToGateway {
    fn from(m: ToServerTunnelMessage) -> Self {
        Self::TunnelMessage(m)
    }
}
