//! The tunnel messages of Rivet runner protocol v7 and the ids they carry, as Rust types.
//!
//! Field order and union tag order follow the official schema; the `Serialize` impls are what
//! [`encode`](super::encode) feeds to `serde_bare`. Decoding is done by the strict reader in
//! `decode.rs`, not by serde, so that hostile input is rejected exactly as the official codec
//! rejects it.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};

use super::map::WireMap;
use crate::index::MessageIndex;

/// Identifies a gateway process: 4 opaque bytes (upstream: a random `u32`, little-endian).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
pub struct GatewayId(pub [u8; 4]);

/// Identifies one client connection within a gateway: 4 opaque bytes.
///
/// The same request id is kept across every hibernation cycle of the client's WebSocket.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
pub struct RequestId(pub [u8; 4]);

macro_rules! hex_id {
    ($ty:ident) => {
        impl $ty {
            /// Builds the id from a `u32`, stored little-endian (as upstream does).
            #[must_use]
            pub const fn from_u32(v: u32) -> Self {
                Self(v.to_le_bytes())
            }

            /// The id's bytes read as a little-endian `u32`.
            #[must_use]
            pub const fn to_u32(self) -> u32 {
                u32::from_le_bytes(self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($ty), "({})"), self)
            }
        }

        /// Lowercase hex of the 4 bytes, as upstream displays ids.
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for b in self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    };
}
hex_id!(GatewayId);
hex_id!(RequestId);

/// The id carried by every tunnel message, in both directions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, Serialize)]
pub struct MessageId {
    /// The gateway that owns the request.
    pub gateway_id: GatewayId,
    /// The request (client connection).
    pub request_id: RequestId,
    /// Per request and per direction, wrapping.
    pub message_index: MessageIndex,
}

/// An ordered header map (`map<str, str>` on the wire): entries keep their wire order, keys are
/// unique (decoding rejects a duplicate key, as the official codec does, and
/// [`insert`](WireMap::insert) replaces an existing value in place).
pub type Headers = WireMap<String>;

/// `data` on the wire: a length-prefixed byte string.
pub(crate) struct Bytes<'a>(pub(crate) &'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

#[allow(clippy::ptr_arg)] // signature fixed by serde's `serialize_with`
pub(crate) fn ser_bytes<S: Serializer>(v: &Vec<u8>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(v)
}

/// A `list<data>` on the wire.
pub(crate) fn ser_byte_list<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for b in v {
        seq.serialize_element(&Bytes(b))?;
    }
    seq.end()
}

#[allow(clippy::ref_option)] // signature fixed by serde's `serialize_with`
pub(crate) fn ser_opt_bytes<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(b) => s.serialize_some(&Bytes(b)),
        None => s.serialize_none(),
    }
}

// ---------------------------------------------------------------------------------------------
// Gateway → runner
// ---------------------------------------------------------------------------------------------

/// A tunnel message from the gateway to the runner (`ToClientTunnelMessage`).
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ToClientTunnelMessage {
    /// Ids and the gateway-assigned (server) index.
    pub message_id: MessageId,
    /// What the message says.
    #[doc(alias = "messageKind")]
    #[serde(rename = "message_kind")]
    pub kind: ToClientTunnelMessageKind,
}

/// The kinds of gateway → runner tunnel messages, in official union tag order (v4+).
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub enum ToClientTunnelMessageKind {
    /// Tag 0: start of an HTTP request.
    #[doc(alias = "ToClientRequestStart")]
    #[serde(rename = "ToClientRequestStart")]
    RequestStart(ToClientRequestStart),
    /// Tag 1: a chunk of a streamed HTTP request body.
    #[doc(alias = "ToClientRequestChunk")]
    #[serde(rename = "ToClientRequestChunk")]
    RequestChunk(ToClientRequestChunk),
    /// Tag 2: the HTTP request was aborted.
    #[doc(alias = "ToClientRequestAbort")]
    #[serde(rename = "ToClientRequestAbort")]
    RequestAbort,
    /// Tag 3: open a WebSocket on the actor.
    #[doc(alias = "ToClientWebSocketOpen")]
    #[serde(rename = "ToClientWebSocketOpen")]
    WebSocketOpen(ToClientWebSocketOpen),
    /// Tag 4: a client WebSocket message.
    #[doc(alias = "ToClientWebSocketMessage")]
    #[serde(rename = "ToClientWebSocketMessage")]
    WebSocketMessage(ToClientWebSocketMessage),
    /// Tag 5: the client side closed.
    #[doc(alias = "ToClientWebSocketClose")]
    #[serde(rename = "ToClientWebSocketClose")]
    WebSocketClose(ToClientWebSocketClose),
}

/// Start of an HTTP request (tag 0).
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ToClientRequestStart {
    /// Target actor.
    pub actor_id: String,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Request headers, in wire order.
    pub headers: Headers,
    /// Whole body, if not streamed.
    #[serde(serialize_with = "ser_opt_bytes")]
    pub body: Option<Vec<u8>>,
    /// Whether the body follows as chunks.
    pub stream: bool,
}

/// A streamed HTTP request body chunk (tag 1).
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ToClientRequestChunk {
    /// Chunk bytes.
    #[serde(serialize_with = "ser_bytes")]
    pub body: Vec<u8>,
    /// Last chunk.
    pub finish: bool,
}

/// Open a WebSocket on an actor (tag 3).
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ToClientWebSocketOpen {
    /// Target actor.
    pub actor_id: String,
    /// Request path of the upgrade.
    pub path: String,
    /// Upgrade request headers, in wire order.
    pub headers: Headers,
}

/// A WebSocket message from the client (tag 4). Its index is in the message id.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ToClientWebSocketMessage {
    /// Payload.
    #[serde(serialize_with = "ser_bytes")]
    pub data: Vec<u8>,
    /// Binary (`true`) or text (`false`) frame.
    pub binary: bool,
}

/// The client closed its WebSocket (tag 5).
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize)]
pub struct ToClientWebSocketClose {
    /// Close code, if any.
    pub code: Option<u16>,
    /// Close reason, if any.
    pub reason: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Runner → gateway
// ---------------------------------------------------------------------------------------------

/// A tunnel message from the runner to the gateway (`ToServerTunnelMessage`).
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ToServerTunnelMessage {
    /// Ids and the runner-assigned (client) index.
    pub message_id: MessageId,
    /// What the message says.
    #[doc(alias = "messageKind")]
    #[serde(rename = "message_kind")]
    pub kind: ToServerTunnelMessageKind,
}

/// The kinds of runner → gateway tunnel messages, in official union tag order (v4+).
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub enum ToServerTunnelMessageKind {
    /// Tag 0: start of an HTTP response.
    #[doc(alias = "ToServerResponseStart")]
    #[serde(rename = "ToServerResponseStart")]
    ResponseStart(ToServerResponseStart),
    /// Tag 1: a chunk of a streamed HTTP response body.
    #[doc(alias = "ToServerResponseChunk")]
    #[serde(rename = "ToServerResponseChunk")]
    ResponseChunk(ToServerResponseChunk),
    /// Tag 2: the HTTP response was aborted.
    #[doc(alias = "ToServerResponseAbort")]
    #[serde(rename = "ToServerResponseAbort")]
    ResponseAbort,
    /// Tag 3: the actor accepted the WebSocket.
    #[doc(alias = "ToServerWebSocketOpen")]
    #[serde(rename = "ToServerWebSocketOpen")]
    WebSocketOpen(ToServerWebSocketOpen),
    /// Tag 4: a WebSocket message from the actor.
    #[doc(alias = "ToServerWebSocketMessage")]
    #[serde(rename = "ToServerWebSocketMessage")]
    WebSocketMessage(ToServerWebSocketMessage),
    /// Tag 5: cumulative acknowledgement of gateway (server) indices.
    #[doc(alias = "ToServerWebSocketMessageAck")]
    #[serde(rename = "ToServerWebSocketMessageAck")]
    WebSocketMessageAck(ToServerWebSocketMessageAck),
    /// Tag 6: the actor closed the WebSocket (or hands it back for hibernation).
    #[doc(alias = "ToServerWebSocketClose")]
    #[serde(rename = "ToServerWebSocketClose")]
    WebSocketClose(ToServerWebSocketClose),
}

/// Start of an HTTP response (tag 0).
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ToServerResponseStart {
    /// HTTP status.
    pub status: u16,
    /// Response headers, in wire order.
    pub headers: Headers,
    /// Whole body, if not streamed.
    #[serde(serialize_with = "ser_opt_bytes")]
    pub body: Option<Vec<u8>>,
    /// Whether the body follows as chunks.
    pub stream: bool,
}

/// A streamed HTTP response body chunk (tag 1).
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ToServerResponseChunk {
    /// Chunk bytes.
    #[serde(serialize_with = "ser_bytes")]
    pub body: Vec<u8>,
    /// Last chunk.
    pub finish: bool,
}

/// The actor accepted the WebSocket (tag 3).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub struct ToServerWebSocketOpen {
    /// Whether the socket survives the actor sleeping.
    pub can_hibernate: bool,
}

/// A WebSocket message from the actor (tag 4).
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ToServerWebSocketMessage {
    /// Payload.
    #[serde(serialize_with = "ser_bytes")]
    pub data: Vec<u8>,
    /// Binary (`true`) or text (`false`) frame.
    pub binary: bool,
}

/// Cumulative acknowledgement (tag 5): every gateway index up to `index` is durably processed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub struct ToServerWebSocketMessageAck {
    /// The highest acknowledged gateway (server) index.
    pub index: MessageIndex,
}

/// The actor closed the WebSocket (tag 6).
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize)]
pub struct ToServerWebSocketClose {
    /// Close code, if any.
    pub code: Option<u16>,
    /// Close reason, if any.
    pub reason: Option<String>,
    /// Hand the socket back to the gateway for hibernation instead of closing it.
    pub hibernate: bool,
}

// ---------------------------------------------------------------------------------------------
// Ping / pong / hibernating request
// ---------------------------------------------------------------------------------------------

/// Gateway → runner liveness probe (`ToRunnerPing`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub struct ToRunnerPing {
    /// The pinging gateway.
    pub gateway_id: GatewayId,
    /// The request being probed.
    pub request_id: RequestId,
    /// Sender's timestamp in milliseconds, echoed by the pong.
    pub ts: i64,
}

/// Answer to [`ToRunnerPing`] (`ToGatewayPong`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub struct ToGatewayPong {
    /// The probed request.
    pub request_id: RequestId,
    /// The ping's timestamp.
    pub ts: i64,
}

/// A request that is hibernating on an actor (`HibernatingRequest`, listed in `CommandStartActor`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize)]
pub struct HibernatingRequest {
    /// The gateway holding the client connection.
    pub gateway_id: GatewayId,
    /// The client connection.
    pub request_id: RequestId,
}

/// A borrowed gateway → runner WebSocket message inside a `ToRunner` envelope: lets the gateway
/// encode a client frame without first copying it into an owned [`ToClientTunnelMessage`].
pub(crate) struct ToRunnerWebSocketMessageRef<'a> {
    pub(crate) message_id: MessageId,
    pub(crate) data: &'a [u8],
    pub(crate) binary: bool,
}

impl Serialize for ToRunnerWebSocketMessageRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Kind<'b>(&'b [u8], bool);
        impl Serialize for Kind<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                struct Body<'c>(&'c [u8], bool);
                impl Serialize for Body<'_> {
                    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                        let mut st = s.serialize_struct("ToClientWebSocketMessage", 2)?;
                        st.serialize_field("data", &Bytes(self.0))?;
                        st.serialize_field("binary", &self.1)?;
                        st.end()
                    }
                }
                s.serialize_newtype_variant(
                    "ToClientTunnelMessageKind",
                    4,
                    "WebSocketMessage",
                    &Body(self.0, self.1),
                )
            }
        }
        struct Msg<'b>(&'b ToRunnerWebSocketMessageRef<'b>);
        impl Serialize for Msg<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut st = s.serialize_struct("ToClientTunnelMessage", 2)?;
                st.serialize_field("message_id", &self.0.message_id)?;
                st.serialize_field("kind", &Kind(self.0.data, self.0.binary))?;
                st.end()
            }
        }
        s.serialize_newtype_variant("ToRunner", 4, "ToClientTunnelMessage", &Msg(self))
    }
}
