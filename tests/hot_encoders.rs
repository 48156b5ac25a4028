//! The hand-written encoders of the hot tunnel frames (`wire::encode_ws_message_frame`,
//! `encode_server_ws_message_frame`, `encode_ack_frame`) against the official codec's vectors:
//! every vector holding a WebSocket message or an ack, in any envelope, is re-encoded by them
//! and must come out byte for byte (and equal to the serde path's bytes).

use hibernating_ws::wire::{
    self, ToClient, ToClientTunnelMessage, ToClientTunnelMessageKind, ToGateway, ToRunner,
    ToServer, ToServerTunnelMessage, ToServerTunnelMessageKind,
};
use serde_json::Value;

const VECTORS: &str = include_str!("vectors/vectors.json");

/// A byte value: a hex string, or a list of `{"hex"}` / `{"pattern": {"len", "seed"}}` segments.
fn expand(v: &Value) -> Vec<u8> {
    match v {
        Value::String(h) => hex::decode(h).expect("hex"),
        Value::Array(segs) => segs
            .iter()
            .flat_map(|seg| {
                if let Some(h) = seg.get("hex") {
                    return expand(h);
                }
                let p = &seg["pattern"];
                let len = p["len"].as_u64().expect("pattern len");
                let seed = p["seed"].as_u64().expect("pattern seed");
                (0..len)
                    .map(|i| u8::try_from((31 * i + seed) % 256).expect("below 256"))
                    .collect()
            })
            .collect(),
        other => panic!("not a byte value: {other}"),
    }
}

/// The `ToRunner` frame (version 7) the gateway's encoder builds for a client message.
fn to_runner(m: &ToClientTunnelMessage) -> Option<Vec<u8>> {
    match &m.kind {
        ToClientTunnelMessageKind::WebSocketMessage(ws) => Some(wire::encode_ws_message_frame(
            wire::PROTOCOL_VERSION,
            m.message_id,
            &ws.data,
            ws.binary,
        )),
        _ => None,
    }
}

/// The frame the runner's encoders build for a message or an ack (`version`: `ToGateway`;
/// `None`: `ToServer`).
fn to_gateway(m: &ToServerTunnelMessage, version: Option<u16>) -> Option<Vec<u8>> {
    match &m.kind {
        ToServerTunnelMessageKind::WebSocketMessage(ws) => Some(
            wire::encode_server_ws_message_frame(version, m.message_id, &ws.data, ws.binary),
        ),
        ToServerTunnelMessageKind::WebSocketMessageAck(ack) => {
            Some(wire::encode_ack_frame(version, m.message_id, ack.index))
        }
        _ => None,
    }
}

fn with_prefix(prefix: &[u8], body: &[u8]) -> Vec<u8> {
    [prefix, body].concat()
}

#[test]
fn hand_encoders_reproduce_every_official_message_and_ack_vector() {
    let doc: Value = serde_json::from_str(VECTORS).expect("vectors.json");
    let v7 = wire::PROTOCOL_VERSION.to_le_bytes();
    let mut checked = Vec::new();
    for vector in doc["vectors"].as_array().expect("vector list") {
        let name = vector["name"].as_str().expect("name");
        let bytes = expand(&vector["bytes"]);
        // (what the hand encoder built, what it must equal, the serde path's bytes)
        let built: Option<(Vec<u8>, Vec<u8>, Vec<u8>)> = match vector["type"].as_str() {
            Some("ToClientTunnelMessage") => {
                let m: ToClientTunnelMessage = wire::decode(&bytes).expect(name);
                let serde = wire::encode_versioned(7, &ToRunner::TunnelMessage(m.clone()));
                to_runner(&m).map(|b| (b, with_prefix(&[v7[0], v7[1], 4], &bytes), serde))
            }
            Some("ToServerTunnelMessage") => {
                let m: ToServerTunnelMessage = wire::decode(&bytes).expect(name);
                let serde = wire::encode(&ToServer::TunnelMessage(m.clone()));
                to_gateway(&m, None).map(|b| (b, with_prefix(&[6], &bytes), serde))
            }
            Some("ToClient") => match wire::decode::<ToClient>(&bytes).expect(name) {
                ToClient::TunnelMessage(m) => {
                    let serde = wire::encode_versioned(7, &ToRunner::TunnelMessage(m.clone()));
                    to_runner(&m).map(|b| (b, with_prefix(&v7, &bytes), serde))
                }
                _ => None,
            },
            Some("ToServer") => match wire::decode::<ToServer>(&bytes).expect(name) {
                ToServer::TunnelMessage(m) => {
                    let serde = wire::encode(&ToServer::TunnelMessage(m.clone()));
                    to_gateway(&m, None).map(|b| (b, bytes.clone(), serde))
                }
                _ => None,
            },
            Some("Versioned<ToRunner>") => {
                let limits = wire::DecodeLimits::default();
                match wire::decode_versioned::<ToRunner>(&bytes, &limits).expect(name) {
                    (7, ToRunner::TunnelMessage(m)) => {
                        let serde = wire::encode_versioned(7, &ToRunner::TunnelMessage(m.clone()));
                        to_runner(&m).map(|b| (b, bytes.clone(), serde))
                    }
                    _ => None,
                }
            }
            Some("Versioned<ToGateway>") => {
                let limits = wire::DecodeLimits::default();
                match wire::decode_versioned::<ToGateway>(&bytes, &limits).expect(name) {
                    (v, ToGateway::TunnelMessage(m)) => {
                        let serde = wire::encode_versioned(v, &ToGateway::TunnelMessage(m.clone()));
                        to_gateway(&m, Some(v)).map(|b| (b, bytes.clone(), serde))
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some((built, expected, serde)) = built {
            assert_eq!(
                built, expected,
                "{name}: hand-written encoder differs from the vector"
            );
            assert_eq!(
                built, serde,
                "{name}: hand-written encoder differs from serde"
            );
            checked.push(name.to_owned());
        }
    }
    // Messages and acks of every envelope are among the vectors (the index and length classes
    // of `client/ws_message/*` and `server/ws_message/*` included).
    for expected in [
        "client/ws_message/data_16384",
        "server/ws_message/data_1mib",
        "to_client/ws_message",
        "to_server/ack",
        "to_server/ws_message",
        "versioned/to_runner/ws_message_1mib",
        "versioned/to_gateway/ack",
        "versioned/to_gateway/ws_message",
    ] {
        assert!(
            checked.iter().any(|n| n == expected),
            "{expected} not checked (checked: {checked:?})"
        );
    }
    assert!(
        checked.len() >= 30,
        "only {} vectors checked",
        checked.len()
    );
}
