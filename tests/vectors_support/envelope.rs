//! The envelopes around tunnel messages (`ToRunner`, `ToGateway`) and what they carry besides
//! (ping, pong, hibernating request): built from a vector's fields, and described as fields.

use super::to_runner_control;

use hibernating_ws::wire::{
    GatewayId, HibernatingRequest, RequestId, ToGateway, ToGatewayPong, ToRunner, ToRunnerPing,
};
use serde_json::{Value, json};

use super::json::*;
use super::tunnel::*;

pub(crate) fn ping(v: &Value) -> ToRunnerPing {
    ToRunnerPing {
        gateway_id: GatewayId(id4(field(v, "gateway_id"))),
        request_id: RequestId(id4(field(v, "request_id"))),
        ts: i64_of(v, "ts"),
    }
}

pub(crate) fn pong(v: &Value) -> ToGatewayPong {
    ToGatewayPong {
        request_id: RequestId(id4(field(v, "request_id"))),
        ts: i64_of(v, "ts"),
    }
}

pub(crate) fn hibernating(v: &Value) -> HibernatingRequest {
    HibernatingRequest {
        gateway_id: GatewayId(id4(field(v, "gateway_id"))),
        request_id: RequestId(id4(field(v, "request_id"))),
    }
}

/// `None` for the control variants, whose vectors have no fields -> value direction.
pub(crate) fn to_runner(v: &Value) -> Option<ToRunner> {
    Some(match variant(v) {
        ("Ping", f) => ToRunner::Ping(ping(f)),
        ("Close", Value::Null) => ToRunner::Close,
        ("TunnelMessage", f) => ToRunner::TunnelMessage(client_message(f)),
        ("Commands" | "AckEvents", _) => return None,
        (other, _) => panic!("unknown ToRunner variant {other}"),
    })
}

pub(crate) fn to_gateway(v: &Value) -> ToGateway {
    match variant(v) {
        ("Pong", f) => ToGateway::Pong(pong(f)),
        ("TunnelMessage", f) => ToGateway::TunnelMessage(server_message(f)),
        (other, _) => panic!("unknown ToGateway variant {other}"),
    }
}

pub(crate) fn ping_json(p: &ToRunnerPing) -> Value {
    json!({ "gateway_id": id_json(p.gateway_id.0), "request_id": id_json(p.request_id.0), "ts": p.ts.to_string() })
}

pub(crate) fn pong_json(p: &ToGatewayPong) -> Value {
    json!({ "request_id": id_json(p.request_id.0), "ts": p.ts.to_string() })
}

pub(crate) fn to_runner_json(m: &ToRunner) -> Value {
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

pub(crate) fn to_gateway_json(m: &ToGateway) -> Value {
    match m {
        ToGateway::Pong(p) => union_json("Pong", pong_json(p)),
        ToGateway::TunnelMessage(t) => union_json("TunnelMessage", server_json(t)),
    }
}
