//! The four top-level unions of runner protocol v7 and their codec.
//!
//! | union | hop | direction | framing |
//! |-------|-----|-----------|---------|
//! | [`ToClient`] | runner WebSocket | engine → runner | plain |
//! | [`ToServer`] | runner WebSocket | runner → engine | plain |
//! | [`ToRunner`] | pub/sub | gateway or engine → runner's connection | 2-byte version prefix |
//! | [`ToGateway`] | pub/sub | runner's connection → gateway | 2-byte version prefix |

use serde::{Serialize, Serializer};

use super::control::{
    ToClientAckEvents, ToClientCommands, ToClientInit, ToClientPing, ToServerAckCommands,
    ToServerEvents, ToServerInit, ToServerPong,
};
use super::decode::{Read, Reader};
use super::encode::union_encoded_len;
use super::error::DecodeError;
use super::kv::{ToClientKvResponse, ToServerKvRequest};
use super::types::{ToClientTunnelMessage, ToGatewayPong, ToRunnerPing, ToServerTunnelMessage};

/// Engine → runner, on the runner's own WebSocket (`ToClient`, plain framing).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ToClient {
    /// Tag 0: answer to the runner's [`ToServerInit`].
    #[doc(alias = "ToClientInit")]
    Init(ToClientInit),
    /// Tag 1.
    #[doc(alias = "ToClientCommands")]
    Commands(ToClientCommands),
    /// Tag 2.
    #[doc(alias = "ToClientAckEvents")]
    AckEvents(ToClientAckEvents),
    /// Tag 3.
    #[doc(alias = "ToClientKvResponse")]
    KvResponse(ToClientKvResponse),
    /// Tag 4.
    #[doc(alias = "ToClientTunnelMessage")]
    TunnelMessage(ToClientTunnelMessage),
    /// Tag 5.
    #[doc(alias = "ToClientPing")]
    Ping(ToClientPing),
}

/// Runner → engine, on the runner's own WebSocket (`ToServer`, plain framing).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ToServer {
    /// Tag 0: the runner's first message.
    #[doc(alias = "ToServerInit")]
    Init(ToServerInit),
    /// Tag 1.
    #[doc(alias = "ToServerEvents")]
    Events(ToServerEvents),
    /// Tag 2.
    #[doc(alias = "ToServerAckCommands")]
    AckCommands(ToServerAckCommands),
    /// Tag 3: the runner is shutting down and takes no new actors (no body).
    #[doc(alias = "ToServerStopping")]
    Stopping,
    /// Tag 4: answer to [`ToClientPing`].
    #[doc(alias = "ToServerPong")]
    Pong(ToServerPong),
    /// Tag 5.
    #[doc(alias = "ToServerKvRequest")]
    KvRequest(ToServerKvRequest),
    /// Tag 6.
    #[doc(alias = "ToServerTunnelMessage")]
    TunnelMessage(ToServerTunnelMessage),
}

/// To a runner's connection, on the pub/sub hop (`ToRunner`, versioned framing).
///
/// Tags 2–4 are forwarded to the runner as [`ToClient`] tags 1, 2 and 4 (see
/// [`to_runner_as_to_client`](super::to_runner_as_to_client)); a ping and a close are handled by
/// the connection itself.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ToRunner {
    /// Tag 0: a gateway probes the runner connection; answered with [`ToGatewayPong`], never
    /// forwarded to the runner.
    #[doc(alias = "ToRunnerPing")]
    Ping(ToRunnerPing),
    /// Tag 1: close the runner's connection (no body).
    #[doc(alias = "ToRunnerClose")]
    Close,
    /// Tag 2.
    #[doc(alias = "ToClientCommands")]
    Commands(ToClientCommands),
    /// Tag 3.
    #[doc(alias = "ToClientAckEvents")]
    AckEvents(ToClientAckEvents),
    /// Tag 4.
    #[doc(alias = "ToClientTunnelMessage")]
    TunnelMessage(ToClientTunnelMessage),
}

/// To a gateway, on the pub/sub hop (`ToGateway`, versioned framing).
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub enum ToGateway {
    /// Tag 0.
    #[doc(alias = "ToGatewayPong")]
    #[serde(rename = "ToGatewayPong")]
    Pong(ToGatewayPong),
    /// Tag 1: forwarded from the runner's [`ToServer`] tag 6.
    #[doc(alias = "ToServerTunnelMessage")]
    #[serde(rename = "ToServerTunnelMessage")]
    TunnelMessage(ToServerTunnelMessage),
}

impl Serialize for ToClient {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        const N: &str = "ToClient";
        match self {
            Self::Init(m) => s.serialize_newtype_variant(N, 0, "ToClientInit", m),
            Self::Commands(m) => s.serialize_newtype_variant(N, 1, "ToClientCommands", m),
            Self::AckEvents(m) => s.serialize_newtype_variant(N, 2, "ToClientAckEvents", m),
            Self::KvResponse(m) => s.serialize_newtype_variant(N, 3, "ToClientKvResponse", m),
            Self::TunnelMessage(m) => s.serialize_newtype_variant(N, 4, "ToClientTunnelMessage", m),
            Self::Ping(m) => s.serialize_newtype_variant(N, 5, "ToClientPing", m),
        }
    }
}

impl Serialize for ToServer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        const N: &str = "ToServer";
        match self {
            Self::Init(m) => s.serialize_newtype_variant(N, 0, "ToServerInit", m),
            Self::Events(m) => s.serialize_newtype_variant(N, 1, "ToServerEvents", m),
            Self::AckCommands(m) => s.serialize_newtype_variant(N, 2, "ToServerAckCommands", m),
            Self::Stopping => s.serialize_unit_variant(N, 3, "ToServerStopping"),
            Self::Pong(m) => s.serialize_newtype_variant(N, 4, "ToServerPong", m),
            Self::KvRequest(m) => s.serialize_newtype_variant(N, 5, "ToServerKvRequest", m),
            Self::TunnelMessage(m) => s.serialize_newtype_variant(N, 6, "ToServerTunnelMessage", m),
        }
    }
}

impl Serialize for ToRunner {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        const N: &str = "ToRunner";
        match self {
            Self::Ping(p) => s.serialize_newtype_variant(N, 0, "ToRunnerPing", p),
            Self::Close => s.serialize_unit_variant(N, 1, "ToRunnerClose"),
            Self::Commands(m) => s.serialize_newtype_variant(N, 2, "ToClientCommands", m),
            Self::AckEvents(m) => s.serialize_newtype_variant(N, 3, "ToClientAckEvents", m),
            Self::TunnelMessage(m) => s.serialize_newtype_variant(N, 4, "ToClientTunnelMessage", m),
        }
    }
}

/// Reads a control message out of line, so that the envelopes' tunnel arms (the hot path) stay
/// as small as they were before the control plane existed.
#[inline(never)]
fn control<T: Read>(r: &mut Reader<'_>) -> Result<T, DecodeError> {
    T::read(r)
}

impl Read for ToClient {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (tag, offset) = r.tag()?;
        if tag == 4 {
            // The tunnel: the hot path, first.
            return ToClientTunnelMessage::read(r).map(Self::TunnelMessage);
        }
        Ok(match tag {
            0 => Self::Init(control::<ToClientInit>(r)?),
            1 => Self::Commands(control::<ToClientCommands>(r)?),
            2 => Self::AckEvents(control::<ToClientAckEvents>(r)?),
            3 => Self::KvResponse(control::<ToClientKvResponse>(r)?),
            5 => Self::Ping(control::<ToClientPing>(r)?),
            tag => return Err(DecodeError::unknown_tag("ToClient", tag, offset)),
        })
    }
}

impl Read for ToServer {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (tag, offset) = r.tag()?;
        if tag == 6 {
            // The tunnel: the hot path, first.
            return ToServerTunnelMessage::read(r).map(Self::TunnelMessage);
        }
        Ok(match tag {
            0 => Self::Init(control::<ToServerInit>(r)?),
            1 => Self::Events(control::<ToServerEvents>(r)?),
            2 => Self::AckCommands(control::<ToServerAckCommands>(r)?),
            3 => Self::Stopping,
            4 => Self::Pong(control::<ToServerPong>(r)?),
            5 => Self::KvRequest(control::<ToServerKvRequest>(r)?),
            tag => return Err(DecodeError::unknown_tag("ToServer", tag, offset)),
        })
    }
}

impl Read for ToRunner {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (tag, offset) = r.tag()?;
        if tag == 4 {
            // The tunnel: the hot path, first.
            return ToClientTunnelMessage::read(r).map(Self::TunnelMessage);
        }
        Ok(match tag {
            0 => Self::Ping(ToRunnerPing::read(r)?),
            1 => Self::Close,
            2 => Self::Commands(control::<ToClientCommands>(r)?),
            3 => Self::AckEvents(control::<ToClientAckEvents>(r)?),
            tag => return Err(DecodeError::unknown_tag("ToRunner", tag, offset)),
        })
    }
}

impl Read for ToGateway {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (tag, offset) = r.tag()?;
        if tag == 1 {
            // The tunnel: the hot path, first.
            return ToServerTunnelMessage::read(r).map(Self::TunnelMessage);
        }
        Ok(match tag {
            0 => Self::Pong(ToGatewayPong::read(r)?),
            tag => return Err(DecodeError::unknown_tag("ToGateway", tag, offset)),
        })
    }
}

union_encoded_len!(ToClient: Init, Commands, AckEvents, KvResponse, TunnelMessage, Ping;);

union_encoded_len!(
    ToServer: Init, Events, AckCommands, Pong, KvRequest, TunnelMessage;
    Self::Stopping => 0
);

union_encoded_len!(ToRunner: Ping, Commands, AckEvents, TunnelMessage; Self::Close => 0);

union_encoded_len!(ToGateway: Pong, TunnelMessage;);
