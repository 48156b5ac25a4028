//! One value of any vector type: decoded from bytes, built from fields, encoded, compared.

use super::{to_client_control, to_server_control};

use hibernating_ws::wire::{
    self, DecodeError, DecodeLimits, HibernatingRequest, ToClient, ToClientTunnelMessage,
    ToGateway, ToGatewayPong, ToRunner, ToRunnerPing, ToServer, ToServerTunnelMessage,
};
use serde_json::{Value, json};

use super::envelope::*;
use super::json::*;
use super::tunnel::*;

#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Msg {
    Client(ToClientTunnelMessage),
    Server(ToServerTunnelMessage),
    Ping(ToRunnerPing),
    Pong(ToGatewayPong),
    Hibernating(HibernatingRequest),
    Runner(ToRunner),
    Gateway(ToGateway),
    ToClient(ToClient),
    ToServer(ToServer),
    VersionedRunner(u16, ToRunner),
    VersionedGateway(u16, ToGateway),
}

impl Msg {
    /// Decodes `bytes` as the vector type `ty` with hws's default limits.
    pub(crate) fn decode(ty: &str, bytes: &[u8]) -> Result<Self, DecodeError> {
        let limits = DecodeLimits::default();
        Ok(match ty {
            "ToClientTunnelMessage" => Self::Client(wire::decode(bytes)?),
            "ToServerTunnelMessage" => Self::Server(wire::decode(bytes)?),
            "ToRunnerPing" => Self::Ping(wire::decode(bytes)?),
            "ToGatewayPong" => Self::Pong(wire::decode(bytes)?),
            "HibernatingRequest" => Self::Hibernating(wire::decode(bytes)?),
            "ToRunner" => Self::Runner(wire::decode(bytes)?),
            "ToGateway" => Self::Gateway(wire::decode(bytes)?),
            "ToClient" => Self::ToClient(wire::decode(bytes)?),
            "ToServer" => Self::ToServer(wire::decode(bytes)?),
            "Versioned<ToRunner>" => {
                let (v, m) = wire::decode_versioned(bytes, &limits)?;
                Self::VersionedRunner(v, m)
            }
            "Versioned<ToGateway>" => {
                let (v, m) = wire::decode_versioned(bytes, &limits)?;
                Self::VersionedGateway(v, m)
            }
            other => panic!("unknown vector type {other}"),
        })
    }

    /// Builds the value of type `ty` described by `fields`; `None` for the control variants
    /// (their fields are only compared with the decoded value).
    pub(crate) fn build(ty: &str, f: &Value) -> Option<Self> {
        Some(match ty {
            "ToClientTunnelMessage" => Self::Client(client_message(f)),
            "ToServerTunnelMessage" => Self::Server(server_message(f)),
            "ToRunnerPing" => Self::Ping(ping(f)),
            "ToGatewayPong" => Self::Pong(pong(f)),
            "HibernatingRequest" => Self::Hibernating(hibernating(f)),
            "ToRunner" => Self::Runner(to_runner(f)?),
            "ToGateway" => Self::Gateway(to_gateway(f)),
            "ToClient" => match variant(f) {
                ("TunnelMessage", m) => Self::ToClient(ToClient::TunnelMessage(client_message(m))),
                _ => return None,
            },
            "ToServer" => match variant(f) {
                ("TunnelMessage", m) => Self::ToServer(ToServer::TunnelMessage(server_message(m))),
                _ => return None,
            },
            "Versioned<ToRunner>" => {
                Self::VersionedRunner(uint16(field(f, "version")), to_runner(field(f, "message"))?)
            }
            "Versioned<ToGateway>" => {
                Self::VersionedGateway(uint16(field(f, "version")), to_gateway(field(f, "message")))
            }
            other => panic!("unknown vector type {other}"),
        })
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            Self::Client(m) => wire::encode(m),
            Self::Server(m) => wire::encode(m),
            Self::Ping(m) => wire::encode(m),
            Self::Pong(m) => wire::encode(m),
            Self::Hibernating(m) => wire::encode(m),
            Self::Runner(m) => wire::encode(m),
            Self::Gateway(m) => wire::encode(m),
            Self::ToClient(m) => wire::encode(m),
            Self::ToServer(m) => wire::encode(m),
            Self::VersionedRunner(v, m) => wire::encode_versioned(*v, m),
            Self::VersionedGateway(v, m) => wire::encode_versioned(*v, m),
        }
    }

    pub(crate) fn encoded_len(&self) -> usize {
        match self {
            Self::Client(m) => wire::encoded_len(m),
            Self::Server(m) => wire::encoded_len(m),
            Self::Ping(m) => wire::encoded_len(m),
            Self::Pong(m) => wire::encoded_len(m),
            Self::Hibernating(m) => wire::encoded_len(m),
            Self::Runner(m) => wire::encoded_len(m),
            Self::Gateway(m) => wire::encoded_len(m),
            Self::ToClient(m) => wire::encoded_len(m),
            Self::ToServer(m) => wire::encoded_len(m),
            Self::VersionedRunner(_, m) => wire::VERSION_PREFIX_LEN + wire::encoded_len(m),
            Self::VersionedGateway(_, m) => wire::VERSION_PREFIX_LEN + wire::encoded_len(m),
        }
    }

    /// `encode_into` appends after existing bytes and must produce the same encoding.
    pub(crate) fn encode_into_after(&self, prefix: &[u8]) -> Option<Vec<u8>> {
        let mut out = prefix.to_vec();
        match self {
            Self::Client(m) => wire::encode_into(m, &mut out),
            Self::Server(m) => wire::encode_into(m, &mut out),
            Self::Ping(m) => wire::encode_into(m, &mut out),
            Self::Pong(m) => wire::encode_into(m, &mut out),
            Self::Hibernating(m) => wire::encode_into(m, &mut out),
            Self::Runner(m) => wire::encode_into(m, &mut out),
            Self::Gateway(m) => wire::encode_into(m, &mut out),
            Self::ToClient(m) => wire::encode_into(m, &mut out),
            Self::ToServer(m) => wire::encode_into(m, &mut out),
            Self::VersionedRunner(..) | Self::VersionedGateway(..) => return None,
        }
        Some(out)
    }

    pub(crate) fn to_json(&self) -> Value {
        match self {
            Self::Client(m) => client_json(m),
            Self::Server(m) => server_json(m),
            Self::Ping(m) => ping_json(m),
            Self::Pong(m) => pong_json(m),
            Self::Hibernating(m) => {
                json!({ "gateway_id": id_json(m.gateway_id.0), "request_id": id_json(m.request_id.0) })
            }
            Self::Runner(m) => to_runner_json(m),
            Self::Gateway(m) => to_gateway_json(m),
            Self::ToClient(ToClient::TunnelMessage(m)) => {
                union_json("TunnelMessage", client_json(m))
            }
            Self::ToServer(ToServer::TunnelMessage(m)) => {
                union_json("TunnelMessage", server_json(m))
            }
            Self::ToClient(m) => {
                let (name, value) = to_client_control(m).expect("a control variant");
                union_json(name, value)
            }
            Self::ToServer(m) => {
                let (name, value) = to_server_control(m).expect("a control variant");
                union_json(name, value)
            }
            Self::VersionedRunner(v, m) => json!({ "version": v, "message": to_runner_json(m) }),
            Self::VersionedGateway(v, m) => json!({ "version": v, "message": to_gateway_json(m) }),
        }
    }
}
