//! Envoy protocol v8 (the engine's `/envoys/connect`): its tunnel messages and the tunnel and
//! ping/pong variants of its two envelopes, byte for byte as the official codec
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
//! * the envelopes are `ToEnvoy` (tunnel message = tag 4, ping = tag 5) and `ToRivet` (pong =
//!   tag 4, tunnel message = tag 6); their control variants (init, commands, events, KV, SQLite)
//!   are not decoded here: [`DecodeError::UnsupportedVariant`].
//!
//! [`ToEnvoyTunnelMessage::into_v7`] and [`ToRivetTunnelMessage::from`] translate to and from the
//! v7 types the engines consume, so one engine serves both versions; which one a connection
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
use crate::index::MessageIndex;

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
// Envelopes (tunnel and liveness variants)
// ---------------------------------------------------------------------------------------------

/// The engine → envoy envelope `ToEnvoy`, its tunnel and ping variants.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum ToEnvoy {
    /// Tag 4.
    TunnelMessage(ToEnvoyTunnelMessage),
    /// Tag 5: a liveness probe with the engine's timestamp (answered by [`ToRivet::Pong`]).
    Ping {
        /// Milliseconds, echoed by the pong.
        ts: i64,
    },
}

/// The envoy → engine envelope `ToRivet`, its pong and tunnel variants.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum ToRivet {
    /// Tag 4: the answer to [`ToEnvoy::Ping`].
    Pong {
        /// The ping's timestamp.
        ts: i64,
    },
    /// Tag 6.
    TunnelMessage(ToRivetTunnelMessage),
}

/// Tags of `ToEnvoy` (15 in all) and `ToRivet` (15 in all).
const TO_ENVOY_TUNNEL: u8 = 4;
const TO_ENVOY_PING: u8 = 5;
const TO_ENVOY_TAGS: u64 = 15;
const TO_RIVET_PONG: u8 = 4;
const TO_RIVET_TUNNEL: u8 = 6;
const TO_RIVET_TAGS: u64 = 15;

/// The body of a ping or pong: the engine's timestamp.
#[derive(Serialize)]
struct Ts {
    ts: i64,
}

impl Serialize for ToEnvoy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::TunnelMessage(m) => s.serialize_newtype_variant(
                "ToEnvoy",
                TO_ENVOY_TUNNEL.into(),
                "ToEnvoyTunnelMessage",
                m,
            ),
            &Self::Ping { ts } => s.serialize_newtype_variant(
                "ToEnvoy",
                TO_ENVOY_PING.into(),
                "ToEnvoyPing",
                &Ts { ts },
            ),
        }
    }
}

impl Serialize for ToRivet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            &Self::Pong { ts } => s.serialize_newtype_variant(
                "ToRivet",
                TO_RIVET_PONG.into(),
                "ToRivetPong",
                &Ts { ts },
            ),
            Self::TunnelMessage(m) => s.serialize_newtype_variant(
                "ToRivet",
                TO_RIVET_TUNNEL.into(),
                "ToRivetTunnelMessage",
                m,
            ),
        }
    }
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
                return Err(DecodeError::UnknownTag {
                    union: "HttpStreamAbortReasonKind",
                    tag,
                    offset,
                });
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
            1 => Self::RequestChunk(ToClientRequestChunk {
                body: r.data()?,
                finish: r.bool()?,
            }),
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
            6 => Self::WebSocketMessage(ToClientWebSocketMessage {
                data: r.data()?,
                binary: r.bool()?,
            }),
            7 => Self::WebSocketClose(ToClientWebSocketClose {
                code: r.opt(Reader::u16)?,
                reason: r.opt(Reader::string)?,
            }),
            tag => {
                return Err(DecodeError::UnknownTag {
                    union: "ToEnvoyTunnelMessageKind",
                    tag,
                    offset,
                });
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
            0 => Self::ResponseStart(ToServerResponseStart {
                status: r.u16()?,
                headers: r.headers()?,
                body: r.opt(Reader::data)?,
                stream: r.bool()?,
            }),
            1 => Self::ResponseChunk(ToServerResponseChunk {
                body: r.data()?,
                finish: r.bool()?,
            }),
            2 => Self::ResponseAbort(ToRivetResponseAbort {
                reason: r.abort_reason()?,
            }),
            3 => Self::RequestBodyWindowUpdate(BodyWindowUpdate {
                consumed_bytes: r.u64()?,
            }),
            4 => Self::RequestBodyCancel,
            5 => Self::WebSocketOpen(ToServerWebSocketOpen {
                can_hibernate: r.bool()?,
            }),
            6 => Self::WebSocketMessage(ToServerWebSocketMessage {
                data: r.data()?,
                binary: r.bool()?,
            }),
            7 => Self::WebSocketMessageAck(ToServerWebSocketMessageAck {
                index: MessageIndex::new(r.u16()?),
            }),
            8 => Self::WebSocketClose(ToServerWebSocketClose {
                code: r.opt(Reader::u16)?,
                reason: r.opt(Reader::string)?,
                hibernate: r.bool()?,
            }),
            tag => {
                return Err(DecodeError::UnknownTag {
                    union: "ToRivetTunnelMessageKind",
                    tag,
                    offset,
                });
            }
        })
    }
}

impl Read for ToEnvoy {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (tag, offset) = r.tag()?;
        match tag {
            4 => ToEnvoyTunnelMessage::read(r).map(Self::TunnelMessage),
            5 => Ok(Self::Ping { ts: r.i64()? }),
            tag if tag < TO_ENVOY_TAGS => Err(DecodeError::UnsupportedVariant {
                union: "ToEnvoy",
                tag,
                offset,
            }),
            tag => Err(DecodeError::UnknownTag {
                union: "ToEnvoy",
                tag,
                offset,
            }),
        }
    }
}

impl Read for ToRivet {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (tag, offset) = r.tag()?;
        match tag {
            4 => Ok(Self::Pong { ts: r.i64()? }),
            6 => ToRivetTunnelMessage::read(r).map(Self::TunnelMessage),
            tag if tag < TO_RIVET_TAGS => Err(DecodeError::UnsupportedVariant {
                union: "ToRivet",
                tag,
                offset,
            }),
            tag => Err(DecodeError::UnknownTag {
                union: "ToRivet",
                tag,
                offset,
            }),
        }
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

impl EncodedLen for ToEnvoy {
    fn encoded_len(&self) -> usize {
        TAG_LEN
            + match self {
                Self::TunnelMessage(m) => m.encoded_len(),
                Self::Ping { .. } => 8,
            }
    }
}

impl EncodedLen for ToRivet {
    fn encoded_len(&self) -> usize {
        TAG_LEN
            + match self {
                Self::Pong { .. } => 8,
                Self::TunnelMessage(m) => m.encoded_len(),
            }
    }
}
