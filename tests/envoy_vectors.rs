//! Envoy protocol v8 (`wire::envoy`) against the official codec
//! `@rivetkit/engine-envoy-protocol@2.3.19`: `tests/vectors/envoy.json`, produced by
//! `tests/vectors/envoy.mjs` (see `tests/vectors/README.md`).
//!
//! * accept vectors: hws decodes the official bytes to the official value, re-encodes them byte
//!   for byte, and `encoded_len` agrees;
//! * rejections: hws rejects every frame the official decoder rejects, with the matching error;
//! * differential: on deterministic mutations hws accepts exactly what the official decoder
//!   accepts (with the same value) and rejects the rest; official values outside the tunnel
//!   subset get `UnsupportedVariant`.
//!
//! Also: the v7 translation of every WebSocket kind is lossless both ways.

#![allow(clippy::unwrap_used, clippy::std_instead_of_alloc, missing_docs)]

use hibernating_ws::wire::envoy::{
    ToEnvoy, ToEnvoyTunnelMessage, ToEnvoyTunnelMessageKind, ToRivet, ToRivetTunnelMessage,
    ToRivetTunnelMessageKind,
};
use hibernating_ws::wire::{self, DecodeError, ToServerTunnelMessage};
use serde::Serialize;
use serde_json::Value;

#[path = "vectors_support/errors.rs"]
mod errors;

const ENVOY: &str = include_str!("vectors/envoy.json");

#[derive(Debug)]
enum Msg {
    Envoy(ToEnvoyTunnelMessage),
    Rivet(ToRivetTunnelMessage),
    ToEnvoy(ToEnvoy),
    ToRivet(ToRivet),
}

impl Msg {
    fn decode(ty: &str, bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(match ty {
            "ToEnvoyTunnelMessage" => Self::Envoy(wire::decode(bytes)?),
            "ToRivetTunnelMessage" => Self::Rivet(wire::decode(bytes)?),
            "ToEnvoy" => Self::ToEnvoy(wire::decode(bytes)?),
            "ToRivet" => Self::ToRivet(wire::decode(bytes)?),
            other => panic!("unknown vector type {other}"),
        })
    }

    fn encode(&self) -> (Vec<u8>, usize) {
        match self {
            Self::Envoy(m) => (wire::encode(m), wire::encoded_len(m)),
            Self::Rivet(m) => (wire::encode(m), wire::encoded_len(m)),
            Self::ToEnvoy(m) => (wire::encode(m), wire::encoded_len(m)),
            Self::ToRivet(m) => (wire::encode(m), wire::encoded_len(m)),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Self::Envoy(m) => json(m),
            Self::Rivet(m) => json(m),
            Self::ToEnvoy(m) => json(m),
            Self::ToRivet(m) => json(m),
        }
    }
}

/// `value` as `serde_json` describes it, every number as its decimal string (the vectors' shape).
fn json<T: Serialize>(value: &T) -> Value {
    fn strings(v: Value) -> Value {
        match v {
            Value::Number(n) => Value::String(n.to_string()),
            Value::Array(a) => Value::Array(a.into_iter().map(strings).collect()),
            Value::Object(o) => {
                Value::Object(o.into_iter().map(|(k, x)| (k, strings(x))).collect())
            }
            other => other,
        }
    }
    strings(serde_json::to_value(value).unwrap())
}

fn doc() -> Value {
    serde_json::from_str(ENVOY).expect("envoy.json parses")
}

fn list<'a>(doc: &'a Value, key: &str) -> &'a Vec<Value> {
    doc[key].as_array().expect("a list")
}

fn hex_of(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex")).expect("valid hex")
}

/// Decodes `bytes`, compares with the official value, re-encodes byte for byte.
fn check_accepted(name: &str, ty: &str, bytes: &[u8], value: &Value) -> Msg {
    let msg = Msg::decode(ty, bytes)
        .unwrap_or_else(|e| panic!("{name}: hws rejects what the official codec accepts: {e}"));
    assert_eq!(&msg.to_json(), value, "{name}: decoded value");
    let (encoded, len) = msg.encode();
    assert_eq!(encoded, bytes, "{name}: re-encoding");
    assert_eq!(len, bytes.len(), "{name}: encoded_len");
    msg
}

/// The v7 translation loses nothing for the WebSocket kinds without an actor generation.
fn check_v7_round_trip(name: &str, msg: &Msg) {
    match msg {
        Msg::Envoy(m) => {
            let no_generation = match &m.kind {
                ToEnvoyTunnelMessageKind::WebSocketOpen(o) => o.actor_generation.is_none(),
                ToEnvoyTunnelMessageKind::WebSocketMessage(_)
                | ToEnvoyTunnelMessageKind::WebSocketClose(_) => true,
                _ => false,
            };
            if let Err(flow) = m.clone().into_v7() {
                assert_eq!(flow.message_id, m.message_id, "{name}: body flow");
            }
            if no_generation {
                let v7 = m.clone().into_v7().unwrap();
                assert_eq!(ToEnvoyTunnelMessage::from(v7), *m, "{name}: v7 and back");
            }
        }
        Msg::Rivet(m) => match m.clone().into_v7() {
            Ok(v7) => {
                let abort = matches!(m.kind, ToRivetTunnelMessageKind::ResponseAbort(_));
                if !abort {
                    assert_eq!(ToRivetTunnelMessage::from(v7.clone()), *m, "{name}");
                }
                let back: ToServerTunnelMessage =
                    ToRivetTunnelMessage::from(v7.clone()).into_v7().unwrap();
                assert_eq!(back, v7, "{name}: v8 and back");
            }
            Err(flow) => assert_eq!(flow.message_id, m.message_id, "{name}: body flow"),
        },
        Msg::ToEnvoy(m) => {
            // Every control variant has a v7 counterpart; the init takes the connection's key.
            if let Ok(v7) = m.clone().into_v7("envoy-key") {
                if let (ToEnvoy::Init(init), wire::ToClient::Init(i)) = (m, &v7) {
                    assert_eq!(i.runner_id, "envoy-key", "{name}");
                    assert_eq!(
                        i.metadata.runner_lost_threshold, init.metadata.envoy_lost_threshold,
                        "{name}"
                    );
                }
            } else {
                assert!(
                    matches!(m, ToEnvoy::TunnelMessage(_)),
                    "{name}: only body flow fails"
                );
            }
        }
        Msg::ToRivet(m) => {
            // What a v7 session sends maps onto the same v8 message, field for field.
            let v7 = match m.clone() {
                ToRivet::Events(e) => wire::ToServer::Events(e),
                ToRivet::AckCommands(a) => wire::ToServer::AckCommands(a),
                ToRivet::Stopping => wire::ToServer::Stopping,
                ToRivet::KvRequest(k) => wire::ToServer::KvRequest(k),
                _ => return,
            };
            assert_eq!(ToRivet::from(v7), *m, "{name}: v7 and back");
        }
    }
}

#[test]
fn official_envoy_vectors_decode_and_encode_identically() {
    let doc = doc();
    let vectors = list(&doc, "vectors");
    let mut kinds = std::collections::BTreeSet::new();
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let ty = v["type"].as_str().unwrap();
        let msg = check_accepted(name, ty, &hex_of(&v["bytes"]), &v["value"]);
        check_v7_round_trip(name, &msg);
        let value = match ty {
            "ToEnvoy" | "ToRivet" => &v["value"],
            _ => &v["value"]["message_kind"],
        };
        let kind = match value {
            Value::String(s) => s.clone(),
            Value::Object(o) => o.keys().next().unwrap().clone(),
            other => panic!("{name}: unexpected kind {other}"),
        };
        kinds.insert(format!("{ty}/{kind}"));
    }
    // Every kind of both tunnel unions, and every modelled envelope variant.
    assert_eq!(kinds.len(), 8 + 9 + 6 + 7, "{kinds:#?}");
}

/// [`errors::matching_error`], and what only the envoy vectors need: a list count that its
/// smallest elements could not fit in what remains (hws refuses it before reading the elements,
/// the official decoder at the element it stumbles on), and a varint cut short.
fn matching_error(issue: &str, offset: usize, e: &DecodeError) -> bool {
    errors::matching_error(issue, offset, e)
        || match (issue, e) {
            ("invalid UTF-8 string", _) => false,
            (_, DecodeError::LengthExceedsFrame { offset: o, .. }) => *o < offset,
            ("missing bytes", DecodeError::InvalidVarint { .. }) => true,
            _ => false,
        }
}

#[test]
fn official_envoy_rejections_are_rejected_with_the_matching_error() {
    let doc = doc();
    let rejections = list(&doc, "rejections");
    assert!(rejections.len() > 1000);
    let mut issues = std::collections::BTreeSet::new();
    for r in rejections {
        let name = r["name"].as_str().unwrap();
        let issue = r["official_error"]["issue"].as_str().unwrap();
        let offset = usize::try_from(r["official_error"]["offset"].as_u64().unwrap()).unwrap();
        match Msg::decode(r["type"].as_str().unwrap(), &hex_of(&r["bytes"])) {
            Ok(m) => {
                panic!("{name}: hws accepts what the official decoder rejects ({issue}): {m:?}")
            }
            Err(e) => assert!(
                matching_error(issue, offset, &e),
                "{name}: official {issue:?} at {offset}, hws {e:?}"
            ),
        }
        issues.insert(issue.to_string());
    }
    for issue in [
        "a bool must be equal to 0 or 1",
        "invalid tag",
        "remaining bytes",
        "missing bytes",
    ] {
        assert!(issues.contains(issue), "no rejection for {issue:?}");
    }
}

#[test]
fn envoy_differential_cases_get_the_official_verdict() {
    let doc = doc();
    let cases = list(&doc, "differential");
    let (mut accepted, mut rejected, mut outside) = (0, 0, 0);
    for (i, c) in cases.iter().enumerate() {
        let name = format!("differential #{i}");
        let ty = c["type"].as_str().unwrap();
        let bytes = hex_of(&c["bytes"]);
        if let Some(value) = c.get("accept") {
            check_accepted(&name, ty, &bytes, value);
            accepted += 1;
        } else if let Some(tag) = c.get("accept_outside_subset") {
            match Msg::decode(ty, &bytes) {
                Err(DecodeError::UnsupportedVariant { offset: 0, .. }) => outside += 1,
                other => panic!("{name}: official {tag}, hws {other:?}"),
            }
        } else {
            let issue = c["reject"]["issue"].as_str().unwrap();
            let offset = usize::try_from(c["reject"]["offset"].as_u64().unwrap()).unwrap();
            match Msg::decode(ty, &bytes) {
                Ok(m) => panic!("{name}: hws accepts what the official decoder rejects: {m:?}"),
                // An envelope variant hws does not model: refused at its tag, before the byte
                // the official decoder stumbles on.
                Err(DecodeError::UnsupportedVariant { offset: 0, .. }) => {}
                Err(e) => assert!(
                    matching_error(issue, offset, &e),
                    "{name}: official {issue:?} at {offset}, hws {e:?}"
                ),
            }
            rejected += 1;
        }
    }
    assert!(
        accepted > 100 && rejected > 100 && outside >= 4,
        "{accepted} {rejected} {outside}"
    );
}
