//! Message builders shared by unit tests, integration tests, benches and fuzz targets: tunnel
//! messages in both directions, with the ids and the index as plain values, and their frames in
//! the current protocol version.

use alloc::vec::Vec;

use crate::index::MessageIndex;
use crate::wire::{
    self, GatewayId, MessageId, RequestId, ToClientTunnelMessage, ToClientTunnelMessageKind,
    ToGateway, ToRunner, ToServerTunnelMessage, ToServerTunnelMessageKind, ToServerWebSocketClose,
    ToServerWebSocketMessageAck, ToServerWebSocketOpen,
};

fn message_id(gateway_id: GatewayId, request_id: RequestId, index: u16) -> MessageId {
    MessageId {
        gateway_id,
        request_id,
        message_index: MessageIndex::new(index),
    }
}

/// A runner → gateway tunnel message for request `request_id` of gateway `gateway_id`, with
/// index `index`.
pub fn to_gateway(
    gateway_id: GatewayId,
    request_id: RequestId,
    index: u16,
    kind: ToServerTunnelMessageKind,
) -> ToServerTunnelMessage {
    ToServerTunnelMessage {
        message_id: message_id(gateway_id, request_id, index),
        kind,
    }
}

/// [`to_gateway`] as a versioned `ToGateway` frame.
pub fn to_gateway_frame(
    gateway_id: GatewayId,
    request_id: RequestId,
    index: u16,
    kind: ToServerTunnelMessageKind,
) -> Vec<u8> {
    let msg = to_gateway(gateway_id, request_id, index, kind);
    wire::encode_versioned(wire::PROTOCOL_VERSION, &ToGateway::TunnelMessage(msg))
}

/// A gateway → runner tunnel message for request `request_id` of gateway `gateway_id`, with
/// index `index`.
pub fn to_runner(
    gateway_id: GatewayId,
    request_id: RequestId,
    index: u16,
    kind: ToClientTunnelMessageKind,
) -> ToClientTunnelMessage {
    ToClientTunnelMessage {
        message_id: message_id(gateway_id, request_id, index),
        kind,
    }
}

/// [`to_runner`] as a versioned `ToRunner` frame.
pub fn to_runner_frame(
    gateway_id: GatewayId,
    request_id: RequestId,
    index: u16,
    kind: ToClientTunnelMessageKind,
) -> Vec<u8> {
    let msg = to_runner(gateway_id, request_id, index, kind);
    wire::encode_versioned(wire::PROTOCOL_VERSION, &ToRunner::TunnelMessage(msg))
}

/// The runner accepts the WebSocket (`can_hibernate`: hibernatable).
pub fn runner_open(can_hibernate: bool) -> ToServerTunnelMessageKind {
    ToServerTunnelMessageKind::WebSocketOpen(ToServerWebSocketOpen { can_hibernate })
}

/// The runner closes the WebSocket with `code` and `reason` (not a hibernation).
pub fn runner_close(code: u16, reason: &str) -> ToServerTunnelMessageKind {
    ToServerTunnelMessageKind::WebSocketClose(ToServerWebSocketClose {
        code: Some(code),
        reason: Some(reason.into()),
        hibernate: false,
    })
}

/// The runner acks every client message up to `index`.
pub fn runner_ack(index: u16) -> ToServerTunnelMessageKind {
    ToServerTunnelMessageKind::WebSocketMessageAck(ToServerWebSocketMessageAck {
        index: MessageIndex::new(index),
    })
}
