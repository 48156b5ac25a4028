//! The two envelopes of envoy protocol v8 on the envoy's own WebSocket: `ToEnvoy` (engine →
//! envoy) and `ToRivet` (envoy → engine), every variant but the SQLite ones, and their
//! translation to and from v7's `ToClient` and `ToServer`.
//!
//! Both keep v7's tag layout for what they share (handshake 0, commands or events 1,
//! acknowledgements 2, KV 3 or 5, tunnel 4 or 6, ping 5 and pong 4); the SQLite variants (tags
//! 6–14 and 7–14) are refused as [`DecodeError::UnsupportedVariant`].

use alloc::string::String;

use serde::Serialize;

use super::control::{ToEnvoyCommands, ToEnvoyInit, ToRivetMetadata};
use super::{BodyFlow, ToEnvoyTunnelMessage, ToRivetTunnelMessage};
use crate::wire::decode::{Read, Reader};
use crate::wire::encode::union_encoded_len;
use crate::wire::error::DecodeError;
use crate::wire::{
    ToClient, ToClientAckEvents, ToClientKvResponse, ToClientPing, ToServer, ToServerAckCommands,
    ToServerEvents, ToServerKvRequest, ToServerPong,
};

/// The engine → envoy envelope `ToEnvoy` (its SQLite responses are not modelled).
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum ToEnvoy {
    /// Tag 0: the answer to [`ToRivet::Metadata`].
    Init(ToEnvoyInit),
    /// Tag 1.
    Commands(ToEnvoyCommands),
    /// Tag 2.
    AckEvents(ToClientAckEvents),
    /// Tag 3.
    KvResponse(ToClientKvResponse),
    /// Tag 4.
    TunnelMessage(ToEnvoyTunnelMessage),
    /// Tag 5: a liveness probe with the engine's timestamp (answered by [`ToRivet::Pong`]).
    Ping {
        /// Milliseconds, echoed by the pong.
        ts: i64,
    },
}

/// The envoy → engine envelope `ToRivet` (its SQLite requests are not modelled).
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum ToRivet {
    /// Tag 0: the envoy's first message.
    Metadata(ToRivetMetadata),
    /// Tag 1.
    Events(ToServerEvents),
    /// Tag 2.
    AckCommands(ToServerAckCommands),
    /// Tag 3: the envoy is shutting down and takes no new actors (no body).
    Stopping,
    /// Tag 4: the answer to [`ToEnvoy::Ping`].
    Pong {
        /// The ping's timestamp.
        ts: i64,
    },
    /// Tag 5.
    KvRequest(ToServerKvRequest),
    /// Tag 6.
    TunnelMessage(ToRivetTunnelMessage),
}

/// How many tags `ToEnvoy` and `ToRivet` have (15 each).
const TO_ENVOY_TAGS: u64 = 15;
const TO_RIVET_TAGS: u64 = 15;

/// The body of a ping or pong: the engine's timestamp.
#[derive(Serialize)]
struct Ts {
    ts: i64,
}

impl Serialize for ToEnvoy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        const N: &str = "ToEnvoy";
        match self {
            Self::Init(m) => s.serialize_newtype_variant(N, 0, "ToEnvoyInit", m),
            Self::Commands(m) => s.serialize_newtype_variant(N, 1, "ToEnvoyCommands", m),
            Self::AckEvents(m) => s.serialize_newtype_variant(N, 2, "ToEnvoyAckEvents", m),
            Self::KvResponse(m) => s.serialize_newtype_variant(N, 3, "ToEnvoyKvResponse", m),
            Self::TunnelMessage(m) => s.serialize_newtype_variant(N, 4, "ToEnvoyTunnelMessage", m),
            &Self::Ping { ts } => s.serialize_newtype_variant(N, 5, "ToEnvoyPing", &Ts { ts }),
        }
    }
}

impl Serialize for ToRivet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        const N: &str = "ToRivet";
        match self {
            Self::Metadata(m) => s.serialize_newtype_variant(N, 0, "ToRivetMetadata", m),
            Self::Events(m) => s.serialize_newtype_variant(N, 1, "ToRivetEvents", m),
            Self::AckCommands(m) => s.serialize_newtype_variant(N, 2, "ToRivetAckCommands", m),
            Self::Stopping => s.serialize_unit_variant(N, 3, "ToRivetStopping"),
            &Self::Pong { ts } => s.serialize_newtype_variant(N, 4, "ToRivetPong", &Ts { ts }),
            Self::KvRequest(m) => s.serialize_newtype_variant(N, 5, "ToRivetKvRequest", m),
            Self::TunnelMessage(m) => s.serialize_newtype_variant(N, 6, "ToRivetTunnelMessage", m),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Translation to and from v7
// ---------------------------------------------------------------------------------------------

impl ToEnvoy {
    /// The v7 message with the same meaning, for the runner-side session: the handshake gets
    /// `runner_id` (the envoy's key: v8 names no connection id), commands lose what v7 does not
    /// carry ([`ToEnvoyCommands::into_v7`]), tunnel messages as
    /// [`ToEnvoyTunnelMessage::into_v7`].
    ///
    /// # Errors
    /// [`BodyFlow`] for the tunnel's HTTP body flow-control kinds.
    pub fn into_v7(self, runner_id: &str) -> Result<ToClient, BodyFlow> {
        Ok(match self {
            Self::Init(m) => ToClient::Init(m.into_v7(String::from(runner_id))),
            Self::Commands(m) => ToClient::Commands(m.into_v7()),
            Self::AckEvents(m) => ToClient::AckEvents(m),
            Self::KvResponse(m) => ToClient::KvResponse(m),
            Self::TunnelMessage(m) => ToClient::TunnelMessage(m.into_v7()?),
            Self::Ping { ts } => ToClient::Ping(ToClientPing { ts }),
        })
    }
}

impl From<ToServer> for ToRivet {
    /// The v8 form of what a v7 runner session sends. The handshake becomes
    /// [`ToRivet::Metadata`]: its name, version and slots are not in it (they travel in the
    /// connection URL).
    fn from(m: ToServer) -> Self {
        match m {
            ToServer::Init(i) => Self::Metadata(ToRivetMetadata {
                prepopulate_actor_names: i.prepopulate_actor_names,
                metadata: i.metadata,
            }),
            ToServer::Events(e) => Self::Events(e),
            ToServer::AckCommands(a) => Self::AckCommands(a),
            ToServer::Stopping => Self::Stopping,
            ToServer::Pong(ToServerPong { ts }) => Self::Pong { ts },
            ToServer::KvRequest(k) => Self::KvRequest(k),
            ToServer::TunnelMessage(t) => Self::TunnelMessage(t.into()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding and sizes
// ---------------------------------------------------------------------------------------------

impl Read for ToEnvoy {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (tag, offset) = r.tag()?;
        match tag {
            0 => ToEnvoyInit::read(r).map(Self::Init),
            1 => ToEnvoyCommands::read(r).map(Self::Commands),
            2 => ToClientAckEvents::read(r).map(Self::AckEvents),
            3 => ToClientKvResponse::read(r).map(Self::KvResponse),
            4 => ToEnvoyTunnelMessage::read(r).map(Self::TunnelMessage),
            5 => Ok(Self::Ping { ts: r.i64()? }),
            tag if tag < TO_ENVOY_TAGS => Err(DecodeError::UnsupportedVariant {
                union: "ToEnvoy",
                tag,
                offset,
            }),
            tag => Err(DecodeError::unknown_tag("ToEnvoy", tag, offset)),
        }
    }
}

impl Read for ToRivet {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (tag, offset) = r.tag()?;
        match tag {
            0 => ToRivetMetadata::read(r).map(Self::Metadata),
            1 => ToServerEvents::read(r).map(Self::Events),
            2 => ToServerAckCommands::read(r).map(Self::AckCommands),
            3 => Ok(Self::Stopping),
            4 => Ok(Self::Pong { ts: r.i64()? }),
            5 => ToServerKvRequest::read(r).map(Self::KvRequest),
            6 => ToRivetTunnelMessage::read(r).map(Self::TunnelMessage),
            tag if tag < TO_RIVET_TAGS => Err(DecodeError::UnsupportedVariant {
                union: "ToRivet",
                tag,
                offset,
            }),
            tag => Err(DecodeError::unknown_tag("ToRivet", tag, offset)),
        }
    }
}

union_encoded_len!(
    ToEnvoy: Init, Commands, AckEvents, KvResponse, TunnelMessage;
    Self::Ping { .. } => 8
);

union_encoded_len!(
    ToRivet: Metadata, Events, AckCommands, KvRequest, TunnelMessage;
    Self::Stopping => 0,
    Self::Pong { .. } => 8,
);
