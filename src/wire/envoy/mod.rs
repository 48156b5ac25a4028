//! Envoy protocol v8 (the engine's `/envoys/connect`): its tunnel messages, its control messages
//! and its two envelopes (all but the SQLite variants), byte for byte as the official codec
//! `@rivetkit/engine-envoy-protocol@2.3.19` encodes them.
//!
//! For hibernatable WebSockets v8 keeps v7's ids, the `u16` index, the message, ack and close
//! shapes and [`HibernatingRequest`](super::HibernatingRequest); what changes is:
//!
//! * the tunnel-kind tags: towards the engine the WebSocket kinds move from 3–6 to 5–8 (after
//!   the new `RequestBodyWindowUpdate` (3) and `RequestBodyCancel` (4)); towards the runner from
//!   3–5 to 5–7 (after `RequestBodyCancel` (3) and `ResponseBodyWindowUpdate` (4));
//! * the WebSocket open and the HTTP request start carry an optional `actor_generation`; the
//!   request start says whether the gateway takes a streamed response; the HTTP aborts carry a
//!   reason;
//! * the handshake: the envoy sends [`ToRivetMetadata`] (its pool name, version and key travel in
//!   the connection URL) and the engine answers [`ToEnvoyInit`], which names no connection id;
//! * a start command carries optional preloaded KV, a stop command its reason
//!   ([`EnvoyCommand`]);
//! * the envelopes are [`ToEnvoy`] and [`ToRivet`], with v7's tags for what they share; their
//!   SQLite variants are not decoded here: [`DecodeError::UnsupportedVariant`].
//!
//! [`ToEnvoy::into_v7`] and [`ToRivet::from`] (with the tunnel messages' own
//! [`ToEnvoyTunnelMessage::into_v7`] and [`ToRivetTunnelMessage::from`]) translate to and from
//! the v7 types the engines consume, so one engine serves both versions; which one a connection
//! speaks is the version it negotiated.

use alloc::string::String;
use alloc::vec::Vec;

use serde::Serialize;

use super::decode::{Read, Reader};
use super::encode::{EncodedLen, MESSAGE_ID_LEN, TAG_LEN, bytes_len, opt_len};
use super::error::DecodeError;
use super::types::{
    Headers, MessageId, ToClientRequestChunk, ToClientRequestStart, ToClientTunnelMessage,
    ToClientTunnelMessageKind, ToClientWebSocketClose, ToClientWebSocketMessage,
    ToClientWebSocketOpen, ToServerResponseChunk, ToServerResponseStart, ToServerTunnelMessage,
    ToServerTunnelMessageKind, ToServerWebSocketClose, ToServerWebSocketMessage,
    ToServerWebSocketMessageAck, ToServerWebSocketOpen, ser_opt_bytes,
};

mod control;
mod envelope;

pub use control::{
    EnvoyCommand, EnvoyCommandStartActor, EnvoyCommandWrapper, EnvoyProtocolMetadata, PreloadedKv,
    PreloadedKvEntry, StopActorReason, ToEnvoyCommands, ToEnvoyInit, ToRivetMetadata,
};
pub use envelope::{ToEnvoy, ToRivet};

/// The envoy protocol version these types implement.
pub const ENVOY_PROTOCOL_VERSION: u16 = 8;

// ---------------------------------------------------------------------------------------------
// Engine → envoy
// ---------------------------------------------------------------------------------------------

/// A tunnel message from the engine's gateway to an envoy (`ToEnvoyTunnelMessage`).
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ToEnvoyTunnelMessage {
    /// Ids and the gateway-assigned index.
    pub message_id: MessageId,
    /// What the message says.
    #[serde(rename = "message_kind")]
    pub kind: ToEnvoyTunnelMessageKind,
}

/// The kinds of engine → envoy tunnel messages, in official union tag order.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub enum ToEnvoyTunnelMessageKind {
    /// Tag 0: start of an HTTP request.
    #[serde(rename = "ToEnvoyRequestStart")]
    RequestStart(ToEnvoyRequestStart),
    /// Tag 1: a chunk of a streamed HTTP request body.
    #[serde(rename = "ToEnvoyRequestChunk")]
    RequestChunk(ToClientRequestChunk),
    /// Tag 2: the HTTP request was aborted.
    #[serde(rename = "ToEnvoyRequestAbort")]
    RequestAbort(ToEnvoyRequestAbort),
    /// Tag 3: stop the request body; the response may continue.
    #[serde(rename = "ToEnvoyRequestBodyCancel")]
    RequestBodyCancel,
    /// Tag 4: response-body bytes the gateway's client consumed (cumulative).
    #[serde(rename = "ToEnvoyResponseBodyWindowUpdate")]
    ResponseBodyWindowUpdate(BodyWindowUpdate),
    /// Tag 5: open a WebSocket on the actor.
    #[serde(rename = "ToEnvoyWebSocketOpen")]
    WebSocketOpen(ToEnvoyWebSocketOpen),
    /// Tag 6: a client WebSocket message.
    #[serde(rename = "ToEnvoyWebSocketMessage")]
    WebSocketMessage(ToClientWebSocketMessage),
    /// Tag 7: the client side closed.
    #[serde(rename = "ToEnvoyWebSocketClose")]
    WebSocketClose(ToClientWebSocketClose),
}

/// Start of an HTTP request (tag 0).
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ToEnvoyRequestStart {
    /// Target actor.
    pub actor_id: String,
    /// The actor generation the gateway chose, if it chose one.
    pub actor_generation: Option<u32>,
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
    /// Whether the gateway takes a streamed response body.
    pub response_stream: bool,
}

/// The HTTP request was aborted (tag 2).
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ToEnvoyRequestAbort {
    /// The actor the request was admitted to, when the gateway knows it.
    pub actor_id: Option<String>,
    /// Its generation, when the gateway knows it.
    pub actor_generation: Option<u32>,
    /// Why.
    pub reason: HttpStreamAbortReason,
}

/// Cumulative body bytes consumed (the envoy's request body, or the gateway's response body).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub struct BodyWindowUpdate {
    /// Bytes consumed so far.
    pub consumed_bytes: u64,
}

/// Open a WebSocket on an actor (tag 5).
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ToEnvoyWebSocketOpen {
    /// Target actor.
    pub actor_id: String,
    /// The actor generation the gateway chose, if it chose one.
    pub actor_generation: Option<u32>,
    /// Request path of the upgrade.
    pub path: String,
    /// Upgrade request headers, in wire order.
    pub headers: Headers,
}

/// Why an HTTP stream was aborted.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct HttpStreamAbortReason {
    /// The kind of cause.
    pub kind: HttpStreamAbortReasonKind,
    /// Free-form detail.
    pub detail: Option<String>,
}

/// The kind of an [`HttpStreamAbortReason`], in official enum order.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub enum HttpStreamAbortReasonKind {
    /// 0.
    Unknown,
    /// 1.
    Cancelled,
    /// 2.
    HandlerError,
    /// 3.
    InternalError,
}

// ---------------------------------------------------------------------------------------------
// Envoy → engine
// ---------------------------------------------------------------------------------------------

/// A tunnel message from an envoy to the engine's gateway (`ToRivetTunnelMessage`).
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ToRivetTunnelMessage {
    /// Ids and the envoy-assigned index.
    pub message_id: MessageId,
    /// What the message says.
    #[serde(rename = "message_kind")]
    pub kind: ToRivetTunnelMessageKind,
}

/// The kinds of envoy → engine tunnel messages, in official union tag order.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub enum ToRivetTunnelMessageKind {
    /// Tag 0: start of an HTTP response.
    #[serde(rename = "ToRivetResponseStart")]
    ResponseStart(ToServerResponseStart),
    /// Tag 1: a chunk of a streamed HTTP response body.
    #[serde(rename = "ToRivetResponseChunk")]
    ResponseChunk(ToServerResponseChunk),
    /// Tag 2: the HTTP response was aborted.
    #[serde(rename = "ToRivetResponseAbort")]
    ResponseAbort(ToRivetResponseAbort),
    /// Tag 3: request-body bytes the actor consumed (cumulative).
    #[serde(rename = "ToRivetRequestBodyWindowUpdate")]
    RequestBodyWindowUpdate(BodyWindowUpdate),
    /// Tag 4: the actor wants no more request-body bytes.
    #[serde(rename = "ToRivetRequestBodyCancel")]
    RequestBodyCancel,
    /// Tag 5: the actor accepted the WebSocket.
    #[serde(rename = "ToRivetWebSocketOpen")]
    WebSocketOpen(ToServerWebSocketOpen),
    /// Tag 6: a WebSocket message from the actor.
    #[serde(rename = "ToRivetWebSocketMessage")]
    WebSocketMessage(ToServerWebSocketMessage),
    /// Tag 7: cumulative acknowledgement of the gateway's indices.
    #[serde(rename = "ToRivetWebSocketMessageAck")]
    WebSocketMessageAck(ToServerWebSocketMessageAck),
    /// Tag 8: the actor closed (or handed back) the WebSocket.
    #[serde(rename = "ToRivetWebSocketClose")]
    WebSocketClose(ToServerWebSocketClose),
}

/// The HTTP response was aborted (tag 2).
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ToRivetResponseAbort {
    /// Why.
    pub reason: HttpStreamAbortReason,
}

// ---------------------------------------------------------------------------------------------
// Translation to and from v7
// ---------------------------------------------------------------------------------------------

/// A v8 tunnel message with no v7 counterpart: HTTP body flow control, which the engines (v7)
/// do not model.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct BodyFlow {
    /// The message's ids and index.
    pub message_id: MessageId,
    /// What it says.
    pub kind: BodyFlowKind,
}

impl BodyFlow {
    fn new(message_id: MessageId, kind: BodyFlowKind) -> Self {
        Self { message_id, kind }
    }
}

/// The body flow-control kinds of v8.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BodyFlowKind {
    /// The body is no longer wanted.
    Cancel,
    /// Cumulative bytes consumed.
    WindowUpdate(BodyWindowUpdate),
}

impl ToEnvoyTunnelMessage {
    /// The v7 message with the same meaning, for the engines. The WebSocket kinds map exactly
    /// but for `actor_generation`, which v7 does not carry; the HTTP start and abort lose their
    /// new fields; the body flow-control kinds have no v7 counterpart.
    ///
    /// # Errors
    /// [`BodyFlow`] for [`ToEnvoyTunnelMessageKind::RequestBodyCancel`] and
    /// [`ToEnvoyTunnelMessageKind::ResponseBodyWindowUpdate`].
    pub fn into_v7(self) -> Result<ToClientTunnelMessage, BodyFlow> {
        let kind = match self.kind {
            ToEnvoyTunnelMessageKind::RequestStart(m) => {
                ToClientTunnelMessageKind::RequestStart(ToClientRequestStart {
                    actor_id: m.actor_id,
                    method: m.method,
                    path: m.path,
                    headers: m.headers,
                    body: m.body,
                    stream: m.stream,
                })
            }
            ToEnvoyTunnelMessageKind::RequestChunk(m) => ToClientTunnelMessageKind::RequestChunk(m),
            ToEnvoyTunnelMessageKind::RequestAbort(_) => ToClientTunnelMessageKind::RequestAbort,
            ToEnvoyTunnelMessageKind::WebSocketOpen(m) => {
                ToClientTunnelMessageKind::WebSocketOpen(ToClientWebSocketOpen {
                    actor_id: m.actor_id,
                    path: m.path,
                    headers: m.headers,
                })
            }
            ToEnvoyTunnelMessageKind::WebSocketMessage(m) => {
                ToClientTunnelMessageKind::WebSocketMessage(m)
            }
            ToEnvoyTunnelMessageKind::WebSocketClose(m) => {
                ToClientTunnelMessageKind::WebSocketClose(m)
            }
            ToEnvoyTunnelMessageKind::RequestBodyCancel => {
                return Err(BodyFlow::new(self.message_id, BodyFlowKind::Cancel));
            }
            ToEnvoyTunnelMessageKind::ResponseBodyWindowUpdate(w) => {
                return Err(BodyFlow::new(
                    self.message_id,
                    BodyFlowKind::WindowUpdate(w),
                ));
            }
        };
        Ok(ToClientTunnelMessage {
            message_id: self.message_id,
            kind,
        })
    }
}

impl From<ToClientTunnelMessage> for ToEnvoyTunnelMessage {
    /// The v8 form of a v7 message: no actor generation, no streamed response, an abort of kind
    /// [`HttpStreamAbortReasonKind::Unknown`].
    fn from(m: ToClientTunnelMessage) -> Self {
        let kind = match m.kind {
            ToClientTunnelMessageKind::RequestStart(s) => {
                ToEnvoyTunnelMessageKind::RequestStart(ToEnvoyRequestStart {
                    actor_id: s.actor_id,
                    actor_generation: None,
                    method: s.method,
                    path: s.path,
                    headers: s.headers,
                    body: s.body,
                    stream: s.stream,
                    response_stream: false,
                })
            }
            ToClientTunnelMessageKind::RequestChunk(c) => ToEnvoyTunnelMessageKind::RequestChunk(c),
            ToClientTunnelMessageKind::RequestAbort => {
                ToEnvoyTunnelMessageKind::RequestAbort(ToEnvoyRequestAbort {
                    actor_id: None,
                    actor_generation: None,
                    reason: HttpStreamAbortReason::unknown(),
                })
            }
            ToClientTunnelMessageKind::WebSocketOpen(o) => {
                ToEnvoyTunnelMessageKind::WebSocketOpen(ToEnvoyWebSocketOpen {
                    actor_id: o.actor_id,
                    actor_generation: None,
                    path: o.path,
                    headers: o.headers,
                })
            }
            ToClientTunnelMessageKind::WebSocketMessage(w) => {
                ToEnvoyTunnelMessageKind::WebSocketMessage(w)
            }
            ToClientTunnelMessageKind::WebSocketClose(c) => {
                ToEnvoyTunnelMessageKind::WebSocketClose(c)
            }
        };
        Self {
            message_id: m.message_id,
            kind,
        }
    }
}

impl HttpStreamAbortReason {
    fn unknown() -> Self {
        Self {
            kind: HttpStreamAbortReasonKind::Unknown,
            detail: None,
        }
    }
}

impl From<ToServerTunnelMessage> for ToRivetTunnelMessage {
    /// The v8 form of what a v7 runner engine publishes; every v7 kind has one (an abort gets
    /// the reason [`HttpStreamAbortReasonKind::Unknown`]).
    fn from(m: ToServerTunnelMessage) -> Self {
        let kind = match m.kind {
            ToServerTunnelMessageKind::ResponseStart(s) => {
                ToRivetTunnelMessageKind::ResponseStart(s)
            }
            ToServerTunnelMessageKind::ResponseChunk(c) => {
                ToRivetTunnelMessageKind::ResponseChunk(c)
            }
            ToServerTunnelMessageKind::ResponseAbort => {
                ToRivetTunnelMessageKind::ResponseAbort(ToRivetResponseAbort {
                    reason: HttpStreamAbortReason::unknown(),
                })
            }
            ToServerTunnelMessageKind::WebSocketOpen(o) => {
                ToRivetTunnelMessageKind::WebSocketOpen(o)
            }
            ToServerTunnelMessageKind::WebSocketMessage(w) => {
                ToRivetTunnelMessageKind::WebSocketMessage(w)
            }
            ToServerTunnelMessageKind::WebSocketMessageAck(a) => {
                ToRivetTunnelMessageKind::WebSocketMessageAck(a)
            }
            ToServerTunnelMessageKind::WebSocketClose(c) => {
                ToRivetTunnelMessageKind::WebSocketClose(c)
            }
        };
        Self {
            message_id: m.message_id,
            kind,
        }
    }
}

impl ToRivetTunnelMessage {
    /// The v7 message with the same meaning (an abort loses its reason); the body flow-control
    /// kinds have no v7 counterpart.
    ///
    /// # Errors
    /// [`BodyFlow`] for [`ToRivetTunnelMessageKind::RequestBodyWindowUpdate`] and
    /// [`ToRivetTunnelMessageKind::RequestBodyCancel`].
    pub fn into_v7(self) -> Result<ToServerTunnelMessage, BodyFlow> {
        let kind = match self.kind {
            ToRivetTunnelMessageKind::ResponseStart(s) => {
                ToServerTunnelMessageKind::ResponseStart(s)
            }
            ToRivetTunnelMessageKind::ResponseChunk(c) => {
                ToServerTunnelMessageKind::ResponseChunk(c)
            }
            ToRivetTunnelMessageKind::ResponseAbort(_) => ToServerTunnelMessageKind::ResponseAbort,
            ToRivetTunnelMessageKind::WebSocketOpen(o) => {
                ToServerTunnelMessageKind::WebSocketOpen(o)
            }
            ToRivetTunnelMessageKind::WebSocketMessage(w) => {
                ToServerTunnelMessageKind::WebSocketMessage(w)
            }
            ToRivetTunnelMessageKind::WebSocketMessageAck(a) => {
                ToServerTunnelMessageKind::WebSocketMessageAck(a)
            }
            ToRivetTunnelMessageKind::WebSocketClose(c) => {
                ToServerTunnelMessageKind::WebSocketClose(c)
            }
            ToRivetTunnelMessageKind::RequestBodyWindowUpdate(w) => {
                return Err(BodyFlow::new(
                    self.message_id,
                    BodyFlowKind::WindowUpdate(w),
                ));
            }
            ToRivetTunnelMessageKind::RequestBodyCancel => {
                return Err(BodyFlow::new(self.message_id, BodyFlowKind::Cancel));
            }
        };
        Ok(ToServerTunnelMessage {
            message_id: self.message_id,
            kind,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

impl Reader<'_> {
    fn abort_reason(&mut self) -> Result<HttpStreamAbortReason, DecodeError> {
        let (tag, offset) = self.tag()?;
        let kind = match tag {
            0 => HttpStreamAbortReasonKind::Unknown,
            1 => HttpStreamAbortReasonKind::Cancelled,
            2 => HttpStreamAbortReasonKind::HandlerError,
            3 => HttpStreamAbortReasonKind::InternalError,
            tag => {
                return Err(DecodeError::unknown_tag(
                    "HttpStreamAbortReasonKind",
                    tag,
                    offset,
                ));
            }
        };
        Ok(HttpStreamAbortReason {
            kind,
            detail: self.opt(Reader::string)?,
        })
    }
}

impl Read for ToEnvoyTunnelMessage {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let message_id = r.message_id()?;
        let kind = ToEnvoyTunnelMessageKind::read(r)?;
        Ok(Self { message_id, kind })
    }
}

impl Read for ToEnvoyTunnelMessageKind {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (tag, offset) = r.tag()?;
        Ok(match tag {
            0 => Self::RequestStart(ToEnvoyRequestStart {
                actor_id: r.string()?,
                actor_generation: r.opt(Reader::u32)?,
                method: r.string()?,
                path: r.string()?,
                headers: r.headers()?,
                body: r.opt(Reader::data)?,
                stream: r.bool()?,
                response_stream: r.bool()?,
            }),
            1 => Self::RequestChunk(ToClientRequestChunk::read(r)?),
            2 => Self::RequestAbort(ToEnvoyRequestAbort {
                actor_id: r.opt(Reader::string)?,
                actor_generation: r.opt(Reader::u32)?,
                reason: r.abort_reason()?,
            }),
            3 => Self::RequestBodyCancel,
            4 => Self::ResponseBodyWindowUpdate(BodyWindowUpdate {
                consumed_bytes: r.u64()?,
            }),
            5 => Self::WebSocketOpen(ToEnvoyWebSocketOpen {
                actor_id: r.string()?,
                actor_generation: r.opt(Reader::u32)?,
                path: r.string()?,
                headers: r.headers()?,
            }),
            6 => Self::WebSocketMessage(ToClientWebSocketMessage::read(r)?),
            7 => Self::WebSocketClose(ToClientWebSocketClose::read(r)?),
            tag => {
                return Err(DecodeError::unknown_tag(
                    "ToEnvoyTunnelMessageKind",
                    tag,
                    offset,
                ));
            }
        })
    }
}

impl Read for ToRivetTunnelMessage {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let message_id = r.message_id()?;
        let kind = ToRivetTunnelMessageKind::read(r)?;
        Ok(Self { message_id, kind })
    }
}

impl Read for ToRivetTunnelMessageKind {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (tag, offset) = r.tag()?;
        Ok(match tag {
            0 => Self::ResponseStart(ToServerResponseStart::read(r)?),
            1 => Self::ResponseChunk(ToServerResponseChunk::read(r)?),
            2 => Self::ResponseAbort(ToRivetResponseAbort {
                reason: r.abort_reason()?,
            }),
            3 => Self::RequestBodyWindowUpdate(BodyWindowUpdate {
                consumed_bytes: r.u64()?,
            }),
            4 => Self::RequestBodyCancel,
            5 => Self::WebSocketOpen(ToServerWebSocketOpen::read(r)?),
            6 => Self::WebSocketMessage(ToServerWebSocketMessage::read(r)?),
            7 => Self::WebSocketMessageAck(ToServerWebSocketMessageAck::read(r)?),
            8 => Self::WebSocketClose(ToServerWebSocketClose::read(r)?),
            tag => {
                return Err(DecodeError::unknown_tag(
                    "ToRivetTunnelMessageKind",
                    tag,
                    offset,
                ));
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Encoded sizes
// ---------------------------------------------------------------------------------------------

fn abort_reason_len(reason: &HttpStreamAbortReason) -> usize {
    TAG_LEN + opt_len(reason.detail.as_ref(), |d| bytes_len(d.len()))
}

impl EncodedLen for ToEnvoyTunnelMessage {
    fn encoded_len(&self) -> usize {
        MESSAGE_ID_LEN
            + TAG_LEN
            + match &self.kind {
                ToEnvoyTunnelMessageKind::RequestStart(m) => {
                    bytes_len(m.actor_id.len())
                        + opt_len(m.actor_generation.as_ref(), |_| 4)
                        + bytes_len(m.method.len())
                        + bytes_len(m.path.len())
                        + m.headers.encoded_len()
                        + opt_len(m.body.as_ref(), |b| bytes_len(b.len()))
                        + 2
                }
                ToEnvoyTunnelMessageKind::RequestChunk(m) => bytes_len(m.body.len()) + 1,
                ToEnvoyTunnelMessageKind::RequestAbort(m) => {
                    opt_len(m.actor_id.as_ref(), |a| bytes_len(a.len()))
                        + opt_len(m.actor_generation.as_ref(), |_| 4)
                        + abort_reason_len(&m.reason)
                }
                ToEnvoyTunnelMessageKind::RequestBodyCancel => 0,
                ToEnvoyTunnelMessageKind::ResponseBodyWindowUpdate(_) => 8,
                ToEnvoyTunnelMessageKind::WebSocketOpen(m) => {
                    bytes_len(m.actor_id.len())
                        + opt_len(m.actor_generation.as_ref(), |_| 4)
                        + bytes_len(m.path.len())
                        + m.headers.encoded_len()
                }
                ToEnvoyTunnelMessageKind::WebSocketMessage(m) => bytes_len(m.data.len()) + 1,
                ToEnvoyTunnelMessageKind::WebSocketClose(m) => {
                    opt_len(m.code.as_ref(), |_| 2)
                        + opt_len(m.reason.as_ref(), |r| bytes_len(r.len()))
                }
            }
    }
}

impl EncodedLen for ToRivetTunnelMessage {
    fn encoded_len(&self) -> usize {
        MESSAGE_ID_LEN
            + TAG_LEN
            + match &self.kind {
                ToRivetTunnelMessageKind::ResponseStart(m) => {
                    2 + m.headers.encoded_len()
                        + opt_len(m.body.as_ref(), |b| bytes_len(b.len()))
                        + 1
                }
                ToRivetTunnelMessageKind::ResponseChunk(m) => bytes_len(m.body.len()) + 1,
                ToRivetTunnelMessageKind::ResponseAbort(m) => abort_reason_len(&m.reason),
                ToRivetTunnelMessageKind::RequestBodyWindowUpdate(_) => 8,
                ToRivetTunnelMessageKind::RequestBodyCancel => 0,
                ToRivetTunnelMessageKind::WebSocketOpen(_) => 1,
                ToRivetTunnelMessageKind::WebSocketMessage(m) => bytes_len(m.data.len()) + 1,
                ToRivetTunnelMessageKind::WebSocketMessageAck(_) => 2,
                ToRivetTunnelMessageKind::WebSocketClose(m) => {
                    opt_len(m.code.as_ref(), |_| 2)
                        + opt_len(m.reason.as_ref(), |r| bytes_len(r.len()))
                        + 1
                }
            }
    }
}
