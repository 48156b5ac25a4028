//! The wire codec: all of Rivet's runner protocol v7 ("mk2"), byte for byte.
//!
//! Encoding goes through `serde_bare`. Decoding uses a strict hand-written reader that rejects
//! everything the official TypeScript codec (`@rivetkit/engine-runner-protocol@2.3.10`, whose
//! generated codec is identical to the 2.2.1 that `@rivetkit/engine-runner@2.2.1` uses) rejects,
//! and never trusts a length or a count before checking it against the bytes that remain and
//! against [`DecodeLimits`]. Maps keep their wire order, so for every frame that decodes,
//! encoding the result gives the same bytes.
//!
//! # Messages
//!
//! Four unions carry everything (see the framing table below); under them:
//!
//! * the **tunnel** ([`ToClientTunnelMessage`], [`ToServerTunnelMessage`]): HTTP requests and
//!   client WebSockets between a gateway and an actor;
//! * the **control plane** ([`ToServerInit`] / [`ToClientInit`] with [`ProtocolMetadata`],
//!   [`ToClientCommands`] of [`CommandWrapper`]s, [`ToServerEvents`] of [`EventWrapper`]s, their
//!   [`ActorCheckpoint`] acknowledgements [`ToServerAckCommands`] and [`ToClientAckEvents`],
//!   [`ToServer::Stopping`], and the runner-socket [`ToClientPing`] / [`ToServerPong`]);
//! * actor **KV storage** ([`ToServerKvRequest`], [`ToClientKvResponse`]);
//! * the gateway's liveness probe ([`ToRunnerPing`] / [`ToGatewayPong`]).
//!
//! Rust names are the official type names; union variants drop the union's prefix
//! (`ToClient::Init(ToClientInit)`, `Command::StopActor` for `CommandStopActor`) and carry the
//! official name as a doc alias. The `Serialize` impls name variants as the official schema does,
//! so a self-describing format (JSON) shows the official tags. JSON documents inside the protocol
//! (`ActorName::metadata`, `ToServerInit::metadata`) stay strings: hws never parses them.
//!
//! # Framing: which bytes go where
//!
//! | union | hop | framing | functions |
//! |---|---|---|---|
//! | [`ToClient`] (engine → runner) | the runner's WebSocket | plain BARE | [`encode`], [`decode`] |
//! | [`ToServer`] (runner → engine) | the runner's WebSocket | plain BARE | [`encode`], [`decode`] |
//! | [`ToRunner`] (→ a runner's connection) | pub/sub | 2-byte LE version + BARE | [`encode_versioned`], [`decode_versioned`] |
//! | [`ToGateway`] (→ a gateway) | pub/sub | 2-byte LE version + BARE | [`encode_versioned`], [`decode_versioned`] |
//!
//! The runner's WebSocket negotiates its version when it connects (`protocol_version=7` in the
//! URL) and then carries plain bodies: the official runner writes `encodeToServer` and reads
//! `decodeToClient`, and the official `encodeToRunner` / `encodeToGateway` write no prefix
//! either: the 2-byte prefix on the pub/sub hop is added around them.
//!
//! A runner's connection, between both hops, moves frames across without re-encoding them:
//! [`to_runner_as_to_client`], [`to_client_as_to_runner`], [`to_server_as_to_gateway`] and
//! [`to_gateway_as_to_server`] validate the frame as strictly as [`decode`] and splice its body
//! behind the other framing and the other union's tag. Tags differ between the unions (a
//! gateway's ping, tag 0 of `ToRunner`, is `ToClientInit` as tag 0 of `ToClient`), so they are
//! always mapped, never copied; messages with no counterpart come back decoded
//! ([`Reframed::Local`]).
//!
//! | pub/sub (versioned) | runner WebSocket (plain) |
//! |---|---|
//! | `ToRunner` 0 `ToRunnerPing` | — (answered by the connection with a [`ToGatewayPong`]) |
//! | `ToRunner` 1 `ToRunnerClose` | — (the connection closes the runner's WebSocket) |
//! | `ToRunner` 2 `ToClientCommands` | `ToClient` 1 |
//! | `ToRunner` 3 `ToClientAckEvents` | `ToClient` 2 |
//! | `ToRunner` 4 `ToClientTunnelMessage` | `ToClient` 4 |
//! | `ToGateway` 0 `ToGatewayPong` | — |
//! | `ToGateway` 1 `ToServerTunnelMessage` | `ToServer` 6 |
//!
//! ```
//! use hibernating_ws::wire::{self, MessageId, GatewayId, RequestId, ToClientTunnelMessage,
//!     ToClientTunnelMessageKind, ToClientWebSocketMessage, ToRunner};
//! use hibernating_ws::MessageIndex;
//!
//! let msg = ToRunner::TunnelMessage(ToClientTunnelMessage {
//!     message_id: MessageId {
//!         gateway_id: GatewayId([1, 2, 3, 4]),
//!         request_id: RequestId([5, 6, 7, 8]),
//!         message_index: MessageIndex::new(1),
//!     },
//!     kind: ToClientTunnelMessageKind::WebSocketMessage(ToClientWebSocketMessage {
//!         data: b"hi".to_vec(),
//!         binary: false,
//!     }),
//! });
//! let frame = wire::encode_versioned(wire::PROTOCOL_VERSION, &msg);
//! assert_eq!(&frame[..2], &[7, 0]); // version 7, little-endian
//! let (version, back) = wire::decode_versioned::<ToRunner>(&frame, &Default::default())?;
//! assert_eq!((version, &back), (7, &msg));
//!
//! // The same message on the runner's WebSocket: ToClient tag 4, no prefix, payload copied as is.
//! let (_, plain) = wire::to_runner_as_to_client(&frame, &Default::default())?;
//! let ToRunner::TunnelMessage(inner) = msg else { unreachable!() };
//! assert_eq!(plain, wire::Reframed::Frame(wire::encode(&wire::ToClient::TunnelMessage(inner))));
//! # Ok::<(), hibernating_ws::wire::DecodeError>(())
//! ```

use alloc::vec::Vec;
use core::ops::RangeInclusive;

mod compat;
mod control;
mod decode;
mod encode;
mod envelope;
pub mod envoy;
mod error;
mod kv;
mod map;
mod reframe;
mod types;

pub use compat::{
    MAX_PACKED_BYTES, message_id_from_uuid, message_uuid, pack_bytes, request_from_uuid,
    request_uuid, unpack_bytes,
};
pub use control::{
    ActorCheckpoint, ActorConfig, ActorIntent, ActorName, ActorNames, ActorState,
    ActorStateStopped, Command, CommandStartActor, CommandWrapper, Event, EventActorIntent,
    EventActorSetAlarm, EventActorStateUpdate, EventWrapper, ProtocolMetadata, StopCode,
    ToClientAckEvents, ToClientCommands, ToClientInit, ToClientPing, ToServerAckCommands,
    ToServerEvents, ToServerInit, ToServerPong,
};
pub use envelope::{ToClient, ToGateway, ToRunner, ToServer};
pub use error::DecodeError;
pub use kv::{
    KvDeleteRangeRequest, KvDeleteRequest, KvErrorResponse, KvGetRequest, KvGetResponse, KvKey,
    KvListPrefixQuery, KvListQuery, KvListRangeQuery, KvListRequest, KvListResponse, KvMetadata,
    KvPutRequest, KvRequestData, KvResponseData, KvValue, ToClientKvResponse, ToServerKvRequest,
};
pub use map::WireMap;
pub use reframe::{
    Reframed, gateway_of, to_client_as_to_runner, to_gateway_as_to_server, to_runner_as_to_client,
    to_server_as_to_gateway,
};
pub use types::{
    GatewayId, Headers, HibernatingRequest, MessageId, RequestId, ToClientRequestChunk,
    ToClientRequestStart, ToClientTunnelMessage, ToClientTunnelMessageKind, ToClientWebSocketClose,
    ToClientWebSocketMessage, ToClientWebSocketOpen, ToGatewayPong, ToRunnerPing,
    ToServerResponseChunk, ToServerResponseStart, ToServerTunnelMessage, ToServerTunnelMessageKind,
    ToServerWebSocketClose, ToServerWebSocketMessage, ToServerWebSocketMessageAck,
    ToServerWebSocketOpen,
};

use encode::EncodedLen;
pub(crate) use encode::bytes_len;

/// The runner protocol version hws speaks: v7 ("mk2").
pub const PROTOCOL_VERSION: u16 = 7;

/// Protocol versions whose tunnel messages have the v7 layout (v4 removed `DeprecatedTunnelAck`;
/// v5–v7 changed nothing in the tunnel). [`decode_versioned`] accepts these for the tunnel
/// messages, pings, pongs and closes; the control messages are read in v7 only.
pub const TUNNEL_COMPATIBLE_VERSIONS: RangeInclusive<u16> = 4..=7;

/// Bytes of the version prefix on the pub/sub hop.
pub const VERSION_PREFIX_LEN: usize = 2;

/// Default [`DecodeLimits::max_frame_size`]: 32 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 32 * 1024 * 1024;

/// Default [`DecodeLimits::max_headers`].
pub const DEFAULT_MAX_HEADERS: usize = 1024;

/// Default [`DecodeLimits::max_list_len`].
pub const DEFAULT_MAX_LIST_LEN: usize = 65_536;

/// Limits applied while decoding untrusted frames. `#[non_exhaustive]`, like the engines'
/// configurations: start from `default()` and use the `with_*` setters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
#[non_exhaustive]
pub struct DecodeLimits {
    /// Frames longer than this are rejected before any byte is read
    /// ([`DecodeError::FrameTooLarge`]). Default 32 MiB.
    pub max_frame_size: usize,
    /// Header maps with more entries are rejected before any entry is read
    /// ([`DecodeError::TooManyHeaders`]). Default 1024.
    pub max_headers: usize,
    /// Lists (commands, events, checkpoints, hibernating requests, KV keys, values and
    /// metadata) and actor-name maps with more elements are rejected before any element is read
    /// ([`DecodeError::TooManyItems`]). Default 65 536.
    pub max_list_len: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_headers: DEFAULT_MAX_HEADERS,
            max_list_len: DEFAULT_MAX_LIST_LEN,
        }
    }
}

crate::config::with_setters!(DecodeLimits {
    with_max_frame_size => max_frame_size: usize,
    with_max_headers => max_headers: usize,
    with_max_list_len => max_list_len: usize,
});

mod sealed {
    #![allow(unreachable_pub)]

    /// Which parts of a type have the v7 layout in the older tunnel-compatible versions.
    pub enum Legacy {
        /// The whole type.
        Same,
        /// None of it.
        Differs,
        /// A union whose variants with these tags (of `known` tags in all) have the v7 layout.
        Tags {
            union: &'static str,
            known: u8,
            same: &'static [u8],
        },
    }

    pub trait Sealed: serde::Serialize + super::EncodedLen + super::decode::Read {
        const LEGACY: Legacy;
    }
}

use sealed::Legacy;

/// A message that can be a whole frame: the four unions, and the message types they carry
/// (decoded on their own, without the union's tag).
///
/// Sealed: implemented by the types of this module only.
pub trait Message: sealed::Sealed + Sized {}

macro_rules! message {
    ($legacy:expr => $($t:ty),* $(,)?) => {$(
        impl sealed::Sealed for $t {
            const LEGACY: Legacy = $legacy;
        }
        impl Message for $t {}
    )*};
}
message!(Legacy::Same =>
    ToClientTunnelMessage,
    ToServerTunnelMessage,
    ToRunnerPing,
    ToGatewayPong,
    HibernatingRequest,
    ToGateway,
);
message!(Legacy::Differs =>
    ToClientInit,
    ToClientCommands,
    ToClientAckEvents,
    ToClientKvResponse,
    ToClientPing,
    ToServerInit,
    ToServerEvents,
    ToServerAckCommands,
    ToServerPong,
    ToServerKvRequest,
);
// Envoy v8 types never travel behind a v4–v7 prefix.
message!(Legacy::Differs =>
    envoy::ToEnvoyTunnelMessage,
    envoy::ToRivetTunnelMessage,
    envoy::ToEnvoy,
    envoy::ToRivet,
);
message!(Legacy::Tags { union: "ToRunner", known: 5, same: &[0, 1, 4] } => ToRunner);
message!(Legacy::Tags { union: "ToClient", known: 6, same: &[4] } => ToClient);
message!(Legacy::Tags { union: "ToServer", known: 7, same: &[6] } => ToServer);

/// Exact number of bytes [`encode`] produces for `msg`.
#[must_use]
pub fn encoded_len<M: Message>(msg: &M) -> usize {
    msg.encoded_len()
}

/// Encodes `msg` as BARE.
#[must_use]
pub fn encode<M: Message>(msg: &M) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.encoded_len());
    encode_into(msg, &mut out);
    out
}

/// Appends the BARE encoding of `msg` to `out`.
pub fn encode_into<M: Message>(msg: &M, out: &mut Vec<u8>) {
    out.reserve(msg.encoded_len());
    serialize_into(msg, out);
}

/// Encodes `msg` behind the 2-byte little-endian `version` prefix (the pub/sub hop framing).
#[must_use]
pub fn encode_versioned<M: Message>(version: u16, msg: &M) -> Vec<u8> {
    let mut out = Vec::with_capacity(VERSION_PREFIX_LEN + msg.encoded_len());
    out.extend_from_slice(&version.to_le_bytes());
    serialize_into(msg, &mut out);
    out
}

fn serialize_into<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    let mut ser = serde_bare::ser::Serializer::new(serde_bare::ser::VecWrite::new(out));
    // serde_bare only fails for sequences or maps of unknown length; every Serialize impl in this
    // module gives its length, and writing into a Vec cannot fail.
    value
        .serialize(&mut ser)
        .expect("hws wire types always serialize: every map and sequence has a known length");
}

/// Encoded size of a versioned gateway → runner WebSocket message frame (version prefix
/// included), computed without building the message.
#[must_use]
pub const fn ws_message_frame_len(data_len: usize) -> usize {
    // prefix + ToRunner tag + MessageId + kind tag + data + binary flag
    VERSION_PREFIX_LEN + 1 + encode::MESSAGE_ID_LEN + 1 + bytes_len(data_len) + 1
}

/// Encodes a versioned `ToRunner::TunnelMessage(WebSocketMessage)` frame straight from borrowed
/// payload bytes: the same bytes as building the owned message and calling [`encode_versioned`],
/// without copying the payload twice. This is the gateway's hot path.
#[must_use]
pub fn encode_ws_message_frame(
    version: u16,
    message_id: MessageId,
    data: &[u8],
    binary: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(ws_message_frame_len(data.len()));
    out.extend_from_slice(&version.to_le_bytes());
    serialize_into(
        &types::ToRunnerWebSocketMessageRef {
            message_id,
            data,
            binary,
        },
        &mut out,
    );
    out
}

/// Decodes a whole frame with the default [`DecodeLimits`].
///
/// # Errors
/// Any [`DecodeError`]: the frame is too large, truncated, has trailing bytes, or holds a value
/// the schema forbids.
pub fn decode<M: Message>(bytes: &[u8]) -> Result<M, DecodeError> {
    decode_with(bytes, &DecodeLimits::default())
}

/// Decodes a whole frame under `limits`.
///
/// # Errors
/// As [`decode`].
pub fn decode_with<M: Message>(bytes: &[u8], limits: &DecodeLimits) -> Result<M, DecodeError> {
    check_size(bytes, limits)?;
    let mut r = decode::Reader::new(bytes, limits);
    let msg = M::read(&mut r)?;
    r.finish()?;
    Ok(msg)
}

/// Decodes a frame that starts with the 2-byte version prefix; returns the version and the message.
///
/// # Errors
/// [`DecodeError::UnsupportedVersion`] for a version outside [`TUNNEL_COMPATIBLE_VERSIONS`], and
/// everything [`decode`] returns.
pub fn decode_versioned<M: Message>(
    bytes: &[u8],
    limits: &DecodeLimits,
) -> Result<(u16, M), DecodeError> {
    check_size(bytes, limits)?;
    let mut r = decode::Reader::new(bytes, limits);
    let version = r.u16()?;
    if !TUNNEL_COMPATIBLE_VERSIONS.contains(&version) {
        return Err(DecodeError::UnsupportedVersion { version });
    }
    if version != PROTOCOL_VERSION {
        check_legacy::<M>(version, bytes)?;
    }
    let msg = M::read(&mut r)?;
    r.finish()?;
    Ok((version, msg))
}

/// Rejects what a frame of an older `version` may not be read as with the v7 layout. Out of
/// line and cold, so that [`decode_versioned`] stays small enough to inline on the hot path.
#[cold]
#[inline(never)]
fn check_legacy<M: Message>(version: u16, bytes: &[u8]) -> Result<(), DecodeError> {
    match M::LEGACY {
        Legacy::Same => Ok(()),
        Legacy::Differs => Err(DecodeError::UnsupportedVersion { version }),
        Legacy::Tags { union, known, same } => match bytes.get(VERSION_PREFIX_LEN) {
            Some(&tag) if tag < known && !same.contains(&tag) => {
                Err(DecodeError::UnsupportedVariant {
                    union,
                    tag: u64::from(tag),
                    offset: VERSION_PREFIX_LEN,
                })
            }
            _ => Ok(()),
        },
    }
}

fn check_size(bytes: &[u8], limits: &DecodeLimits) -> Result<(), DecodeError> {
    if bytes.len() > limits.max_frame_size {
        return Err(DecodeError::FrameTooLarge {
            size: bytes.len(),
            max: limits.max_frame_size,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_v7;
