//! Runner → gateway message builders the benches share (`mod common;`). They need no feature,
//! unlike `hibernating_ws::testing::msg`, so `cargo bench` runs without `--features sim`.

#![allow(dead_code, unreachable_pub)] // each bench uses a part

use hibernating_ws::MessageIndex;
use hibernating_ws::wire::{
    GatewayId, MessageId, RequestId, ToServerTunnelMessage, ToServerTunnelMessageKind,
    ToServerWebSocketMessageAck, ToServerWebSocketOpen,
};

/// `kind` for request `id` of gateway `gw`, with index 0 (the index of the runner's messages
/// that carry none: opens and acks).
pub fn runner_msg(
    gw: GatewayId,
    id: RequestId,
    kind: ToServerTunnelMessageKind,
) -> ToServerTunnelMessage {
    ToServerTunnelMessage {
        message_id: MessageId {
            gateway_id: gw,
            request_id: id,
            message_index: MessageIndex::ZERO,
        },
        kind,
    }
}

/// The runner accepts request `id`'s WebSocket, hibernatable.
pub fn accept(gw: GatewayId, id: RequestId) -> ToServerTunnelMessage {
    let open = ToServerWebSocketOpen {
        can_hibernate: true,
    };
    runner_msg(gw, id, ToServerTunnelMessageKind::WebSocketOpen(open))
}

/// The runner acks request `id`'s client messages through `index`.
pub fn ack(gw: GatewayId, id: RequestId, index: MessageIndex) -> ToServerTunnelMessage {
    let ack = ToServerWebSocketMessageAck { index };
    runner_msg(gw, id, ToServerTunnelMessageKind::WebSocketMessageAck(ack))
}
