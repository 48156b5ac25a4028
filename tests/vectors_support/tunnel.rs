//! Tunnel messages (both directions), their ids and headers: built from a vector's fields, and
//! described as fields (canonical: bytes as plain hex).

use hibernating_ws::MessageIndex;
use hibernating_ws::wire::{
    GatewayId, Headers, MessageId, RequestId, ToClientRequestChunk, ToClientRequestStart,
    ToClientTunnelMessage, ToClientTunnelMessageKind, ToClientWebSocketClose,
    ToClientWebSocketMessage, ToClientWebSocketOpen, ToServerResponseChunk, ToServerResponseStart,
    ToServerTunnelMessage, ToServerTunnelMessageKind, ToServerWebSocketClose,
    ToServerWebSocketMessage, ToServerWebSocketMessageAck, ToServerWebSocketOpen,
};
use serde_json::{Value, json};

use super::json::*;

pub(crate) fn message_id(v: &Value) -> MessageId {
    MessageId {
        gateway_id: GatewayId(id4(field(v, "gateway_id"))),
        request_id: RequestId(id4(field(v, "request_id"))),
        message_index: MessageIndex::new(uint16(field(v, "message_index"))),
    }
}

pub(crate) fn headers(v: &Value) -> Headers {
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

pub(crate) fn client_message(v: &Value) -> ToClientTunnelMessage {
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

pub(crate) fn server_message(v: &Value) -> ToServerTunnelMessage {
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

pub(crate) fn id_json(id: [u8; 4]) -> Value {
    Value::String(hex::encode(id))
}

pub(crate) fn mid_json(m: &MessageId) -> Value {
    json!({
        "gateway_id": id_json(m.gateway_id.0),
        "request_id": id_json(m.request_id.0),
        "message_index": m.message_index.get(),
    })
}

pub(crate) fn headers_json(h: &Headers) -> Value {
    Value::Array(h.iter().map(|(k, v)| json!([k, v])).collect())
}

pub(crate) fn opt_bytes_json(b: Option<&Vec<u8>>) -> Value {
    b.map_or(Value::Null, |b| Value::String(hex::encode(b)))
}

#[allow(clippy::needless_pass_by_value)] // reads better at the call sites
pub(crate) fn union_json(name: &str, value: Value) -> Value {
    json!({ "variant": name, "value": value })
}

pub(crate) fn client_json(m: &ToClientTunnelMessage) -> Value {
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

pub(crate) fn server_json(m: &ToServerTunnelMessage) -> Value {
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
