//! Byte-compatibility with the official TypeScript codec, `@rivetkit/engine-runner-protocol@2.3.10`.
//!
//! The vectors under `tests/vectors/` were produced by that codec (`tests/vectors/generate.mjs`;
//! the format is in `tests/vectors/README.md`). No npm at test time: this reads the committed
//! files.
//!
//! * `vectors.json`: for each vector, hws decodes the official bytes into the named type, every
//!   field matches `fields`, re-encoding gives the same bytes, and the value built from `fields`
//!   encodes to the same bytes (with the exact `encoded_len`).
//! * `rejections.json`: bytes the official decoder rejects; hws rejects them with the matching
//!   [`DecodeError`] variant (and the same offset where both codecs mean the same position).
//! * `quirks.json`: bytes the official decoder accepts but decodes lossily; hws keeps them intact.
//! * `differential.json`: deterministic mutations of small frames with the official verdict; hws
//!   accepts exactly what the official decoder accepts (and decodes it to the same value).

extern crate alloc;

use alloc::collections::{BTreeMap, BTreeSet};
use core::fmt::Write as _;

use hibernating_ws::MessageIndex;
use hibernating_ws::wire::{
    self, DecodeError, DecodeLimits, GatewayId, Headers, HibernatingRequest, MessageId, RequestId,
    ToClient, ToClientRequestChunk, ToClientRequestStart, ToClientTunnelMessage,
    ToClientTunnelMessageKind, ToClientWebSocketClose, ToClientWebSocketMessage,
    ToClientWebSocketOpen, ToGateway, ToGatewayPong, ToRunner, ToRunnerPing, ToServer,
    ToServerResponseChunk, ToServerResponseStart, ToServerTunnelMessage, ToServerTunnelMessageKind,
    ToServerWebSocketClose, ToServerWebSocketMessage, ToServerWebSocketMessageAck,
    ToServerWebSocketOpen,
};
use serde_json::{Value, json};

mod vectors_support;
use vectors_support::{check_reframing, to_client_control, to_runner_control, to_server_control};

const VECTORS: &str = include_str!("vectors/vectors.json");
const REJECTIONS: &str = include_str!("vectors/rejections.json");
const QUIRKS: &str = include_str!("vectors/quirks.json");
const DIFFERENTIAL: &str = include_str!("vectors/differential.json");

const OFFICIAL_PACKAGE: &str = "@rivetkit/engine-runner-protocol@2.3.10";

// ---------------------------------------------------------------------------------------------
// The vector format: bytes, patterns, field access
// ---------------------------------------------------------------------------------------------

/// `byte[i] = (31 * i + seed) mod 256`, the formula `generate.mjs` uses.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    (0..len as u64)
        .map(|i| u8::try_from((31 * i + seed) % 256).expect("a value mod 256 fits in a u8"))
        .collect()
}

/// A byte value: a hex string, or a list of `{"hex"}` / `{"pattern": {"len", "seed"}}` segments.
fn expand(v: &Value) -> Vec<u8> {
    match v {
        Value::String(h) => hex::decode(h).unwrap_or_else(|e| panic!("bad hex {h:.40}: {e}")),
        Value::Array(segs) => {
            let mut out = Vec::new();
            for seg in segs {
                if let Some(h) = seg.get("hex") {
                    out.extend(expand(h));
                } else {
                    let p = &seg["pattern"];
                    let len = usize::try_from(p["len"].as_u64().expect("pattern len"))
                        .expect("pattern len fits in usize");
                    out.extend(pattern(len, p["seed"].as_u64().expect("pattern seed")));
                }
            }
            out
        }
        other => panic!("not a byte value: {other}"),
    }
}

/// Whether `v` is a list of byte segments (as opposed to, say, a header list).
fn is_segments(v: &Value) -> bool {
    v.as_array().is_some_and(|a| {
        !a.is_empty()
            && a.iter()
                .all(|s| s.get("hex").is_some() || s.get("pattern").is_some())
    })
}

/// The fields with every byte value as plain hex, the shape [`Msg::to_json`] produces.
fn canon(v: &Value) -> Value {
    if is_segments(v) {
        return Value::String(hex::encode(expand(v)));
    }
    match v {
        Value::Array(a) => Value::Array(a.iter().map(canon).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (k.clone(), canon(x))).collect()),
        other => other.clone(),
    }
}

fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key)
        .unwrap_or_else(|| panic!("missing field {key:?} in {:.200}", v.to_string()))
}

fn string(v: &Value, key: &str) -> String {
    field(v, key)
        .as_str()
        .unwrap_or_else(|| panic!("{key:?} is not a string"))
        .to_owned()
}

fn boolean(v: &Value, key: &str) -> bool {
    field(v, key)
        .as_bool()
        .unwrap_or_else(|| panic!("{key:?} is not a bool"))
}

fn uint16(v: &Value) -> u16 {
    v.as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .unwrap_or_else(|| panic!("{v} is not a u16"))
}

fn opt<T>(v: &Value, key: &str, f: impl FnOnce(&Value) -> T) -> Option<T> {
    match field(v, key) {
        Value::Null => None,
        x => Some(f(x)),
    }
}

fn id4(v: &Value) -> [u8; 4] {
    expand(v)
        .try_into()
        .unwrap_or_else(|b: Vec<u8>| panic!("an id is 4 bytes, got {}", b.len()))
}

fn i64_of(v: &Value, key: &str) -> i64 {
    string(v, key)
        .parse()
        .unwrap_or_else(|e| panic!("{key:?} is not an i64: {e}"))
}

fn variant(v: &Value) -> (&str, &Value) {
    (
        field(v, "variant").as_str().expect("variant is a string"),
        field(v, "value"),
    )
}

// ---------------------------------------------------------------------------------------------
// fields -> hws values
// ---------------------------------------------------------------------------------------------

fn message_id(v: &Value) -> MessageId {
    MessageId {
        gateway_id: GatewayId(id4(field(v, "gateway_id"))),
        request_id: RequestId(id4(field(v, "request_id"))),
        message_index: MessageIndex::new(uint16(field(v, "message_index"))),
    }
}

fn headers(v: &Value) -> Headers {
    let pairs = v.as_array().expect("headers are a list of pairs");
    let h: Headers = pairs
        .iter()
        .map(|p| {
            (
                p[0].as_str().expect("header key").to_owned(),
                p[1].as_str().expect("header value").to_owned(),
            )
        })
        .collect();
    assert_eq!(h.len(), pairs.len(), "vector headers have unique keys");
    h
}

fn client_message(v: &Value) -> ToClientTunnelMessage {
    let (name, f) = variant(field(v, "kind"));
    let kind = match name {
        "RequestStart" => ToClientTunnelMessageKind::RequestStart(ToClientRequestStart {
            actor_id: string(f, "actor_id"),
            method: string(f, "method"),
            path: string(f, "path"),
            headers: headers(field(f, "headers")),
            body: opt(f, "body", expand),
            stream: boolean(f, "stream"),
        }),
        "RequestChunk" => ToClientTunnelMessageKind::RequestChunk(ToClientRequestChunk {
            body: expand(field(f, "body")),
            finish: boolean(f, "finish"),
        }),
        "RequestAbort" => ToClientTunnelMessageKind::RequestAbort,
        "WebSocketOpen" => ToClientTunnelMessageKind::WebSocketOpen(ToClientWebSocketOpen {
            actor_id: string(f, "actor_id"),
            path: string(f, "path"),
            headers: headers(field(f, "headers")),
        }),
        "WebSocketMessage" => {
            ToClientTunnelMessageKind::WebSocketMessage(ToClientWebSocketMessage {
                data: expand(field(f, "data")).into(),
                binary: boolean(f, "binary"),
            })
        }
        "WebSocketClose" => ToClientTunnelMessageKind::WebSocketClose(ToClientWebSocketClose {
            code: opt(f, "code", uint16),
            reason: opt(f, "reason", |r| r.as_str().expect("reason").to_owned()),
        }),
        other => panic!("unknown ToClientTunnelMessageKind {other}"),
    };
    ToClientTunnelMessage {
        message_id: message_id(field(v, "message_id")),
        kind,
    }
}

fn server_message(v: &Value) -> ToServerTunnelMessage {
    let (name, f) = variant(field(v, "kind"));
    let kind = match name {
        "ResponseStart" => ToServerTunnelMessageKind::ResponseStart(ToServerResponseStart {
            status: uint16(field(f, "status")),
            headers: headers(field(f, "headers")),
            body: opt(f, "body", expand),
            stream: boolean(f, "stream"),
        }),
        "ResponseChunk" => ToServerTunnelMessageKind::ResponseChunk(ToServerResponseChunk {
            body: expand(field(f, "body")),
            finish: boolean(f, "finish"),
        }),
        "ResponseAbort" => ToServerTunnelMessageKind::ResponseAbort,
        "WebSocketOpen" => ToServerTunnelMessageKind::WebSocketOpen(ToServerWebSocketOpen {
            can_hibernate: boolean(f, "can_hibernate"),
        }),
        "WebSocketMessage" => {
            ToServerTunnelMessageKind::WebSocketMessage(ToServerWebSocketMessage {
                data: expand(field(f, "data")).into(),
                binary: boolean(f, "binary"),
            })
        }
        "WebSocketMessageAck" => {
            ToServerTunnelMessageKind::WebSocketMessageAck(ToServerWebSocketMessageAck {
                index: MessageIndex::new(uint16(field(f, "index"))),
            })
        }
        "WebSocketClose" => ToServerTunnelMessageKind::WebSocketClose(ToServerWebSocketClose {
            code: opt(f, "code", uint16),
            reason: opt(f, "reason", |r| r.as_str().expect("reason").to_owned()),
            hibernate: boolean(f, "hibernate"),
        }),
        other => panic!("unknown ToServerTunnelMessageKind {other}"),
    };
    ToServerTunnelMessage {
        message_id: message_id(field(v, "message_id")),
        kind,
    }
}

fn ping(v: &Value) -> ToRunnerPing {
    ToRunnerPing {
        gateway_id: GatewayId(id4(field(v, "gateway_id"))),
        request_id: RequestId(id4(field(v, "request_id"))),
        ts: i64_of(v, "ts"),
    }
}

fn pong(v: &Value) -> ToGatewayPong {
    ToGatewayPong {
        request_id: RequestId(id4(field(v, "request_id"))),
        ts: i64_of(v, "ts"),
    }
}

fn hibernating(v: &Value) -> HibernatingRequest {
    HibernatingRequest {
        gateway_id: GatewayId(id4(field(v, "gateway_id"))),
        request_id: RequestId(id4(field(v, "request_id"))),
    }
}

/// `None` for the control variants, whose vectors have no fields -> value direction.
fn to_runner(v: &Value) -> Option<ToRunner> {
    Some(match variant(v) {
        ("Ping", f) => ToRunner::Ping(ping(f)),
        ("Close", Value::Null) => ToRunner::Close,
        ("TunnelMessage", f) => ToRunner::TunnelMessage(client_message(f)),
        ("Commands" | "AckEvents", _) => return None,
        (other, _) => panic!("unknown ToRunner variant {other}"),
    })
}

fn to_gateway(v: &Value) -> ToGateway {
    match variant(v) {
        ("Pong", f) => ToGateway::Pong(pong(f)),
        ("TunnelMessage", f) => ToGateway::TunnelMessage(server_message(f)),
        (other, _) => panic!("unknown ToGateway variant {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// hws values -> fields (canonical: bytes as plain hex)
// ---------------------------------------------------------------------------------------------

fn id_json(id: [u8; 4]) -> Value {
    Value::String(hex::encode(id))
}

fn mid_json(m: &MessageId) -> Value {
    json!({
        "gateway_id": id_json(m.gateway_id.0),
        "request_id": id_json(m.request_id.0),
        "message_index": m.message_index.get(),
    })
}

fn headers_json(h: &Headers) -> Value {
    Value::Array(h.iter().map(|(k, v)| json!([k, v])).collect())
}

fn opt_bytes_json(b: Option<&Vec<u8>>) -> Value {
    b.map_or(Value::Null, |b| Value::String(hex::encode(b)))
}

#[allow(clippy::needless_pass_by_value)] // reads better at the call sites
fn union_json(name: &str, value: Value) -> Value {
    json!({ "variant": name, "value": value })
}

fn client_json(m: &ToClientTunnelMessage) -> Value {
    let kind = match &m.kind {
        ToClientTunnelMessageKind::RequestStart(s) => union_json(
            "RequestStart",
            json!({
                "actor_id": s.actor_id, "method": s.method, "path": s.path,
                "headers": headers_json(&s.headers), "body": opt_bytes_json(s.body.as_ref()),
                "stream": s.stream,
            }),
        ),
        ToClientTunnelMessageKind::RequestChunk(c) => union_json(
            "RequestChunk",
            json!({ "body": hex::encode(&c.body), "finish": c.finish }),
        ),
        ToClientTunnelMessageKind::RequestAbort => union_json("RequestAbort", Value::Null),
        ToClientTunnelMessageKind::WebSocketOpen(o) => union_json(
            "WebSocketOpen",
            json!({ "actor_id": o.actor_id, "path": o.path, "headers": headers_json(&o.headers) }),
        ),
        ToClientTunnelMessageKind::WebSocketMessage(w) => union_json(
            "WebSocketMessage",
            json!({ "data": hex::encode(&w.data), "binary": w.binary }),
        ),
        ToClientTunnelMessageKind::WebSocketClose(c) => union_json(
            "WebSocketClose",
            json!({ "code": c.code, "reason": c.reason }),
        ),
    };
    json!({ "message_id": mid_json(&m.message_id), "kind": kind })
}

fn server_json(m: &ToServerTunnelMessage) -> Value {
    let kind = match &m.kind {
        ToServerTunnelMessageKind::ResponseStart(s) => union_json(
            "ResponseStart",
            json!({
                "status": s.status, "headers": headers_json(&s.headers),
                "body": opt_bytes_json(s.body.as_ref()), "stream": s.stream,
            }),
        ),
        ToServerTunnelMessageKind::ResponseChunk(c) => union_json(
            "ResponseChunk",
            json!({ "body": hex::encode(&c.body), "finish": c.finish }),
        ),
        ToServerTunnelMessageKind::ResponseAbort => union_json("ResponseAbort", Value::Null),
        ToServerTunnelMessageKind::WebSocketOpen(o) => {
            union_json("WebSocketOpen", json!({ "can_hibernate": o.can_hibernate }))
        }
        ToServerTunnelMessageKind::WebSocketMessage(w) => union_json(
            "WebSocketMessage",
            json!({ "data": hex::encode(&w.data), "binary": w.binary }),
        ),
        ToServerTunnelMessageKind::WebSocketMessageAck(a) => {
            union_json("WebSocketMessageAck", json!({ "index": a.index.get() }))
        }
        ToServerTunnelMessageKind::WebSocketClose(c) => union_json(
            "WebSocketClose",
            json!({ "code": c.code, "reason": c.reason, "hibernate": c.hibernate }),
        ),
    };
    json!({ "message_id": mid_json(&m.message_id), "kind": kind })
}

fn ping_json(p: &ToRunnerPing) -> Value {
    json!({ "gateway_id": id_json(p.gateway_id.0), "request_id": id_json(p.request_id.0), "ts": p.ts.to_string() })
}

fn pong_json(p: &ToGatewayPong) -> Value {
    json!({ "request_id": id_json(p.request_id.0), "ts": p.ts.to_string() })
}

fn to_runner_json(m: &ToRunner) -> Value {
    match m {
        ToRunner::Ping(p) => union_json("Ping", ping_json(p)),
        ToRunner::Close => union_json("Close", Value::Null),
        ToRunner::TunnelMessage(t) => union_json("TunnelMessage", client_json(t)),
        control => {
            let (name, value) = to_runner_control(control).expect("a control variant");
            union_json(name, value)
        }
    }
}

fn to_gateway_json(m: &ToGateway) -> Value {
    match m {
        ToGateway::Pong(p) => union_json("Pong", pong_json(p)),
        ToGateway::TunnelMessage(t) => union_json("TunnelMessage", server_json(t)),
    }
}

// ---------------------------------------------------------------------------------------------
// One value of any vector type
// ---------------------------------------------------------------------------------------------

#[derive(Clone, PartialEq, Eq)]
enum Msg {
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
    fn decode(ty: &str, bytes: &[u8]) -> Result<Self, DecodeError> {
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
    fn build(ty: &str, f: &Value) -> Option<Self> {
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

    fn encode(&self) -> Vec<u8> {
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

    fn encoded_len(&self) -> usize {
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
    fn encode_into_after(&self, prefix: &[u8]) -> Option<Vec<u8>> {
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

    fn to_json(&self) -> Value {
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

// ---------------------------------------------------------------------------------------------
// Failure reports that name the vector and the first difference
// ---------------------------------------------------------------------------------------------

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 120 {
        let cut = (0..=120)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        format!("{}… ({} chars)", &s[..cut], s.len())
    } else {
        s
    }
}

/// Path and values of the first difference between two JSON values, if any.
fn first_difference(path: &str, got: &Value, want: &Value) -> Option<String> {
    match (got, want) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, w) in b {
                let p = format!("{path}.{k}");
                match a.get(k) {
                    Some(g) => {
                        if let Some(d) = first_difference(&p, g, w) {
                            return Some(d);
                        }
                    }
                    None => return Some(format!("{p}: missing in hws, expected {}", short(w))),
                }
            }
            a.keys()
                .find(|k| !b.contains_key(*k))
                .map(|k| format!("{path}.{k}: unexpected in hws"))
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (g, w))| first_difference(&format!("{path}[{i}]"), g, w)),
        (Value::String(a), Value::String(b)) if a != b => {
            let at = a
                .bytes()
                .zip(b.bytes())
                .position(|(x, y)| x != y)
                .unwrap_or_else(|| a.len().min(b.len()));
            Some(format!(
                "{path}: strings differ at char offset {at} (hibernating_ws {} vs official {})",
                short(got),
                short(want)
            ))
        }
        _ if got == want => None,
        _ => Some(format!(
            "{path}: hibernating_ws {} vs official {}",
            short(got),
            short(want)
        )),
    }
}

fn assert_json(name: &str, what: &str, got: &Value, want: &Value) {
    if let Some(d) = first_difference("$", got, want) {
        panic!("vector {name}: {what}: {d}");
    }
}

fn assert_bytes(name: &str, what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| got.len().min(want.len()));
    let window =
        |b: &[u8]| hex::encode(&b[at.saturating_sub(4).min(b.len())..(at + 12).min(b.len())]);
    panic!(
        "vector {name}: {what}: {} bytes vs {} official bytes, first difference at byte {at}: \
         hws …{}… official …{}…",
        got.len(),
        want.len(),
        window(got),
        window(want)
    );
}

fn entries<'a>(doc: &'a Value, key: &str) -> &'a Vec<Value> {
    assert_eq!(
        doc["package"], OFFICIAL_PACKAGE,
        "vectors come from the pinned package"
    );
    doc[key].as_array().expect("a list of entries")
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("vector files are valid JSON")
}

// ---------------------------------------------------------------------------------------------
// Accept vectors
// ---------------------------------------------------------------------------------------------

/// Every check an accepted frame goes through; `fields` is canonical (plain hex bytes).
fn check_accepted(name: &str, ty: &str, bytes: &[u8], fields: &Value) {
    let decoded = Msg::decode(ty, bytes)
        .unwrap_or_else(|e| panic!("vector {name}: hws rejects the official bytes: {e:?}"));
    assert_json(name, "decoded fields", &decoded.to_json(), fields);
    assert_bytes(
        name,
        "re-encoding the decoded value",
        &decoded.encode(),
        bytes,
    );

    check_reframing(name, bytes);
    // Control-plane vectors have no fields -> value direction: their fields were compared with
    // the decoded value above, and the encoder checks run on that value.
    let built = Msg::build(ty, fields).unwrap_or_else(|| decoded.clone());
    assert!(
        built == decoded,
        "vector {name}: value built from fields != decoded value"
    );
    assert_bytes(
        name,
        "encoding the value built from fields",
        &built.encode(),
        bytes,
    );
    assert_eq!(
        built.encoded_len(),
        bytes.len(),
        "vector {name}: encoded_len"
    );
    if let Some(out) = built.encode_into_after(b"xyz") {
        assert_bytes(name, "encode_into after 3 bytes", &out[3..], bytes);
        assert_eq!(
            &out[..3],
            b"xyz",
            "vector {name}: encode_into kept the prefix"
        );
    }

    // The gateway's borrowed fast path must give the same frame as the owned message.
    if let Msg::VersionedRunner(version, ToRunner::TunnelMessage(m)) = &built
        && let ToClientTunnelMessageKind::WebSocketMessage(w) = &m.kind
    {
        let fast = wire::encode_ws_message_frame(*version, m.message_id, &w.data, w.binary);
        assert_bytes(name, "encode_ws_message_frame", &fast, bytes);
        let len = wire::ws_message_frame_len(w.data.len());
        assert_eq!(len, bytes.len(), "vector {name}: ws_message_frame_len");
    }
}

#[test]
fn official_vectors_decode_and_encode_identically() {
    let doc = parse(VECTORS);
    assert_eq!(doc["pattern"], "byte[i] = (31 * i + seed) mod 256");
    let vectors = entries(&doc, "vectors");
    let mut types = BTreeMap::<String, usize>::new();
    for v in vectors {
        let name = v["name"].as_str().expect("name");
        let ty = v["type"].as_str().expect("type");
        let bytes = expand(&v["bytes"]);
        check_accepted(name, ty, &bytes, &canon(&v["fields"]));
        *types.entry(ty.to_owned()).or_default() += 1;
    }
    // Every type and every kind is covered (a truncated file would otherwise pass).
    for ty in [
        "ToClientTunnelMessage",
        "ToServerTunnelMessage",
        "ToRunnerPing",
        "ToGatewayPong",
        "HibernatingRequest",
        "ToRunner",
        "ToGateway",
        "ToClient",
        "ToServer",
        "Versioned<ToRunner>",
        "Versioned<ToGateway>",
    ] {
        assert!(
            types.get(ty).copied().unwrap_or(0) > 0,
            "no vector of type {ty}"
        );
    }
    let kinds: BTreeSet<(String, String)> = vectors
        .iter()
        .filter(|v| {
            v["type"]
                .as_str()
                .is_some_and(|t| t.ends_with("TunnelMessage"))
        })
        .map(|v| {
            (
                v["type"].as_str().unwrap_or_default().to_owned(),
                v["fields"]["kind"]["variant"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        kinds.len(),
        6 + 7,
        "every tunnel message kind has a vector: {kinds:?}"
    );
    assert!(vectors.len() >= 100, "only {} vectors", vectors.len());
}

/// The edge cases the spec asks for are really in the file (not only in the generator).
#[test]
fn official_vectors_cover_the_edges() {
    let doc = parse(VECTORS);
    let vectors = entries(&doc, "vectors");
    let names: Vec<&str> = vectors.iter().filter_map(|v| v["name"].as_str()).collect();
    for i in [0, 1, 127, 128, 32767, 32768, 65535] {
        for prefix in [
            "client/ws_message",
            "server/ws_message",
            "server/ws_message_ack",
        ] {
            let n = format!("{prefix}/index_{i}");
            assert!(names.contains(&n.as_str()), "missing vector {n}");
        }
    }
    for n in [
        "client/ws_close/neither",
        "client/ws_close/code_only",
        "client/ws_close/reason_only",
        "client/ws_close/both",
        "server/ws_close/neither",
        "server/ws_close/code_only",
        "server/ws_close/reason_only",
        "server/ws_close/both",
        "ping/ts_0",
        "ping/ts_minus_1",
        "ping/ts_min",
        "ping/ts_max",
        "pong/ts_min",
        "pong/ts_max",
        "client/ws_message/ids_all_zero",
        "client/ws_message/ids_all_ff",
        "client/ws_message/empty_text",
        "client/ws_message/data_1mib",
        "server/ws_message/data_1mib",
        "versioned/to_runner/ws_message_1mib",
        "client/request_start/unicode_headers",
        "client/ws_open/long_path_3_byte_varint",
        "client/ws_close/reason_2_byte_varint",
    ] {
        assert!(names.contains(&n), "missing vector {n}");
    }
    let ping_min = vectors
        .iter()
        .find(|v| v["name"] == "ping/ts_min")
        .expect("ping/ts_min");
    assert_eq!(ping_min["fields"]["ts"], i64::MIN.to_string());
    let mib = vectors
        .iter()
        .find(|v| v["name"] == "client/ws_message/data_1mib")
        .expect("1 MiB vector");
    assert_eq!(expand(&mib["bytes"]).len(), 10 + 1 + 3 + (1 << 20) + 1);
}

// ---------------------------------------------------------------------------------------------
// Rejections
// ---------------------------------------------------------------------------------------------

/// Checks that hws's error `e` is the variant matching the official decoder's `issue` at
/// `offset`. Offsets are compared where both codecs report the same position.
fn assert_matching_error(name: &str, issue: &str, offset: u64, e: &DecodeError) {
    let offset = usize::try_from(offset).expect("offset fits in usize");
    let ok = match (issue, e) {
        ("a bool must be equal to 0 or 1", DecodeError::InvalidBool { offset: o, .. })
        | ("invalid tag", DecodeError::UnknownTag { offset: o, .. })
        | ("remaining bytes", DecodeError::TrailingBytes { offset: o, .. })
        | ("duplicated key", DecodeError::DuplicateKey { offset: o }) => *o == offset,
        // bare-ts's own UTF-8 decoder (strings under 256 bytes) reports the start of the
        // string, TextDecoder (256 bytes and more) its end; hws reports the start.
        ("invalid UTF-8 string", DecodeError::InvalidUtf8 { offset: o }) => *o <= offset,
        // bare-ts reads strings of 256+ bytes inside a `try` that turns its own "missing bytes"
        // into "invalid UTF-8 string" (at the start of the string's bytes).
        (
            "invalid UTF-8 string",
            DecodeError::LengthExceedsFrame {
                offset: o, claimed, ..
            },
        ) => *claimed >= 256 && *o < offset,
        // bare-ts miscomputes the offset of a non-canonical varint longer than 2 bytes.
        ("must be canonical", DecodeError::InvalidVarint { .. })
        | (
            "missing bytes",
            DecodeError::UnexpectedEof { .. } | DecodeError::LengthExceedsFrame { .. },
        )
        // bare-ts stops a varint once it exceeds 2^53 - 1, even where the frame ends before
        // the varint does; hws reads on and reports the end of the frame.
        | (
            "too large number",
            DecodeError::LengthExceedsFrame { .. }
            | DecodeError::InvalidVarint { .. }
            | DecodeError::UnexpectedEof { .. },
        )
        | ("too large buffer", DecodeError::FrameTooLarge { .. }) => true,
        _ => false,
    };
    assert!(
        ok,
        "vector {name}: official error {issue:?} at byte {offset}, hws error {e:?}"
    );
}

#[test]
fn official_rejections_are_rejected_with_the_matching_variant() {
    let doc = parse(REJECTIONS);
    let rejections = entries(&doc, "rejections");
    let mut issues = BTreeSet::new();
    for r in rejections {
        let name = r["name"].as_str().expect("name");
        let ty = r["type"].as_str().expect("type");
        let bytes = expand(&r["bytes"]);
        let issue = r["official_error"]["issue"].as_str().expect("issue");
        let offset = r["official_error"]["offset"].as_u64().expect("offset");
        match Msg::decode(ty, &bytes) {
            Ok(_) => {
                panic!("vector {name}: hws accepts bytes the official decoder rejects ({issue})")
            }
            Err(e) => assert_matching_error(name, issue, offset, &e),
        }
        issues.insert(issue.to_owned());
    }
    // Every rejection class the spec names is present.
    for issue in [
        "a bool must be equal to 0 or 1",
        "must be canonical",
        "invalid UTF-8 string",
        "duplicated key",
        "invalid tag",
        "remaining bytes",
        "missing bytes",
        "too large buffer",
    ] {
        assert!(issues.contains(issue), "no rejection vector for {issue:?}");
    }
}

#[test]
fn frame_size_rejection_matches_the_official_limit() {
    let doc = parse(REJECTIONS);
    let r = entries(&doc, "rejections")
        .iter()
        .find(|r| r["name"] == "size/frame_32mib_plus_1")
        .expect("size vector");
    let bytes = expand(&r["bytes"]);
    assert_eq!(
        wire::decode::<ToClientTunnelMessage>(&bytes),
        Err(DecodeError::FrameTooLarge {
            size: 32 * 1024 * 1024 + 1,
            max: wire::DEFAULT_MAX_FRAME_SIZE,
        })
    );
    // One byte less (drop one payload byte, fix the length) is a valid frame for both codecs.
    let mut smaller = bytes;
    smaller.remove(20);
    let len = smaller.len() - 16; // MessageId 10 + tag 1 + 4-byte varint + bool 1
    let varint: Vec<u8> = (0..4)
        .map(|i| {
            let group = u8::try_from((len >> (7 * i)) & 0x7f).expect("7 bits");
            if i < 3 { group | 0x80 } else { group }
        })
        .collect();
    smaller[11..15].copy_from_slice(&varint);
    let msg = wire::decode::<ToClientTunnelMessage>(&smaller).expect("32 MiB frame decodes");
    assert!(
        matches!(&msg.kind, ToClientTunnelMessageKind::WebSocketMessage(w) if w.data.len() == len)
    );
}

// ---------------------------------------------------------------------------------------------
// Quirks and the differential set
// ---------------------------------------------------------------------------------------------

#[test]
fn official_quirks_are_decoded_faithfully_by_hws() {
    let doc = parse(QUIRKS);
    let quirks = entries(&doc, "quirks");
    assert!(!quirks.is_empty());
    for q in quirks {
        let name = q["name"].as_str().expect("name");
        let ty = q["type"].as_str().expect("type");
        let bytes = expand(&q["bytes"]);
        let official_reencoded = expand(&q["official_reencoded"]);
        assert_ne!(official_reencoded, bytes, "vector {name}: not a quirk");
        // hws keeps the bytes: decode then encode is the identity.
        let decoded = Msg::decode(ty, &bytes).unwrap_or_else(|e| panic!("vector {name}: {e:?}"));
        assert_bytes(name, "hws round trip", &decoded.encode(), &bytes);
        assert!(
            decoded.to_json() != q["official_fields"],
            "vector {name}: hws is lossy too"
        );
        // hws agrees with the official verdict on the official codec's own re-encoding (which
        // it may itself reject: a BOM-stripped key can collide with another key).
        let verdict = &q["official_reencoded_verdict"];
        if let Some(fields) = verdict.get("accept") {
            assert_eq!(fields, &q["official_fields"], "vector {name}");
            check_accepted(name, ty, &official_reencoded, fields);
        } else {
            let issue = verdict["reject"]["issue"].as_str().expect("issue");
            let offset = verdict["reject"]["offset"].as_u64().expect("offset");
            match Msg::decode(ty, &official_reencoded) {
                Ok(_) => panic!("vector {name}: hws accepts the re-encoding, official rejects it"),
                Err(e) => assert_matching_error(name, issue, offset, &e),
            }
        }
    }
}

#[test]
fn differential_cases_get_the_official_verdict() {
    let doc = parse(DIFFERENTIAL);
    let cases = entries(&doc, "cases");
    let (mut accepted, mut rejected) = (0, 0);
    let mut control_cases = 0;
    for (i, c) in cases.iter().enumerate() {
        let ty = c["type"].as_str().expect("type");
        let bytes = expand(&c["bytes"]);
        let mut name = String::new();
        write!(name, "differential[{i}] {ty} {}", hex::encode(&bytes)).expect("write to String");
        let control = match ty {
            "ToClient" => bytes.first() != Some(&4),
            "ToServer" => bytes.first() != Some(&6),
            "ToRunner" => matches!(bytes.first(), Some(2 | 3)),
            _ => false,
        };
        control_cases += usize::from(control);
        if let Some(fields) = c.get("accept") {
            assert!(
                c.get("lossy").is_none(),
                "{name}: lossy cases belong in quirks.json"
            );
            check_accepted(&name, ty, &bytes, fields);
            accepted += 1;
        } else {
            let issue = c["reject"]["issue"].as_str().expect("issue");
            let offset = c["reject"]["offset"].as_u64().expect("offset");
            check_reframing(&name, &bytes);
            match Msg::decode(ty, &bytes) {
                Ok(_) => panic!("{name}: hws accepts bytes the official decoder rejects ({issue})"),
                // hws checks a map or list count against the bytes left before reading any
                // entry, so it can stop at a length prefix before the official error's position.
                Err(DecodeError::LengthExceedsFrame { offset: o, .. })
                    if usize::try_from(offset).is_ok_and(|off| o < off) => {}
                Err(e) => assert_matching_error(&name, issue, offset, &e),
            }
            rejected += 1;
        }
    }
    assert_eq!(doc["counts"]["accept"], accepted);
    assert_eq!(doc["counts"]["reject"], rejected);
    assert!(
        accepted > 400 && rejected > 1000 && control_cases > 1000,
        "{accepted} {rejected} {control_cases}"
    );
}
