//! What `tests/vectors.rs` checks the official vectors with, one type family a file: the vector
//! format and failure reports (`json`), tunnel messages (`tunnel`), their envelopes (`envelope`),
//! one value of any vector type (`msg`), which decode error matches an official rejection
//! (`errors`, shared with `tests/envoy_vectors.rs`); here, control-plane fields and re-framing checks.
//!
//! Control-plane vectors describe a value as hws's `Serialize` impls do under `serde_json` (struct
//! fields in snake case, union variants under their official names, data as byte lists, maps as
//! objects), with every number written as a decimal string (`generate.mjs`'s `gen`).

mod coverage;
pub(crate) mod envelope;
pub(crate) mod errors;
pub(crate) mod json;
pub(crate) mod msg;
pub(crate) mod tunnel;

use hibernating_ws::wire::{
    self, DecodeError, DecodeLimits, Reframed, ToClient, ToGateway, ToRunner, ToServer,
};
use serde::Serialize;
use serde_json::Value;

/// `value` as `serde_json` describes it, every number turned into its decimal string.
pub(crate) fn control_json<T: Serialize>(value: &T) -> Value {
    numbers_as_strings(serde_json::to_value(value).expect("wire types serialize to JSON"))
}

fn numbers_as_strings(v: Value) -> Value {
    match v {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Array(a) => Value::Array(a.into_iter().map(numbers_as_strings).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, x)| (k, numbers_as_strings(x)))
                .collect(),
        ),
        other => other,
    }
}

/// The vector's Rust variant name and control-plane fields of a `ToClient` other than a tunnel
/// message (`None` for a tunnel message).
pub(crate) fn to_client_control(m: &ToClient) -> Option<(&'static str, Value)> {
    Some(match m {
        ToClient::Init(x) => ("Init", control_json(x)),
        ToClient::Commands(x) => ("Commands", control_json(x)),
        ToClient::AckEvents(x) => ("AckEvents", control_json(x)),
        ToClient::KvResponse(x) => ("KvResponse", control_json(x)),
        ToClient::Ping(x) => ("Ping", control_json(x)),
        ToClient::TunnelMessage(_) => return None,
    })
}

/// As [`to_client_control`], for `ToServer`.
pub(crate) fn to_server_control(m: &ToServer) -> Option<(&'static str, Value)> {
    Some(match m {
        ToServer::Init(x) => ("Init", control_json(x)),
        ToServer::Events(x) => ("Events", control_json(x)),
        ToServer::AckCommands(x) => ("AckCommands", control_json(x)),
        ToServer::Stopping => ("Stopping", Value::Null),
        ToServer::Pong(x) => ("Pong", control_json(x)),
        ToServer::KvRequest(x) => ("KvRequest", control_json(x)),
        ToServer::TunnelMessage(_) => return None,
    })
}

/// As [`to_client_control`], for the control variants of `ToRunner`.
pub(crate) fn to_runner_control(m: &ToRunner) -> Option<(&'static str, Value)> {
    Some(match m {
        ToRunner::Commands(x) => ("Commands", control_json(x)),
        ToRunner::AckEvents(x) => ("AckEvents", control_json(x)),
        ToRunner::Ping(_) | ToRunner::Close | ToRunner::TunnelMessage(_) => return None,
    })
}

/// Every re-framing function gives, for `bytes`, exactly what decoding, converting with the
/// `TryFrom` impls and encoding gives: the same error or the same output bytes.
pub(crate) fn check_reframing(name: &str, bytes: &[u8]) {
    let limits = DecodeLimits::default();
    let v = wire::PROTOCOL_VERSION;
    let fast = wire::to_runner_as_to_client(bytes, &limits);
    let slow = wire::decode_versioned::<ToRunner>(bytes, &limits).map(|(ver, m)| {
        let out = ToClient::try_from(m)
            .map_or_else(Reframed::Local, |c| Reframed::Frame(wire::encode(&c)));
        (ver, out)
    });
    same(name, "ToRunner -> ToClient", &fast, &slow);
    let fast = wire::to_client_as_to_runner(bytes, v, &limits);
    let slow = wire::decode_with::<ToClient>(bytes, &limits).map(|m| {
        ToRunner::try_from(m).map_or_else(Reframed::Local, |r| {
            Reframed::Frame(wire::encode_versioned(v, &r))
        })
    });
    same(name, "ToClient -> ToRunner", &fast, &slow);
    let fast = wire::to_server_as_to_gateway(bytes, v, &limits);
    let slow = wire::decode_with::<ToServer>(bytes, &limits).map(|m| {
        ToGateway::try_from(m).map_or_else(Reframed::Local, |g| {
            Reframed::Frame(wire::encode_versioned(v, &g))
        })
    });
    same(name, "ToServer -> ToGateway", &fast, &slow);
    let fast = wire::to_gateway_as_to_server(bytes, &limits);
    let slow = wire::decode_versioned::<ToGateway>(bytes, &limits).map(|(ver, m)| {
        let out = ToServer::try_from(m)
            .map_or_else(Reframed::Local, |s| Reframed::Frame(wire::encode(&s)));
        (ver, out)
    });
    same(name, "ToGateway -> ToServer", &fast, &slow);
}

fn same<T: PartialEq + core::fmt::Debug>(
    name: &str,
    what: &str,
    fast: &Result<T, DecodeError>,
    slow: &Result<T, DecodeError>,
) {
    assert!(
        fast == slow,
        "{name}: re-framing {what} differs from decode -> convert -> encode:\n fast {fast:.200?}\n slow {slow:.200?}"
    );
}
