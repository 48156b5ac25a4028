//! Hand-written encoders for the hot tunnel frames: a WebSocket message either way and the
//! runner's ack. They write the bytes the serde path writes for the same message (checked on
//! every official vector by `tests/hot_encoders.rs`, and on every frame the `wire_decode` fuzz
//! target decodes), without building the owned message first and without going through serde.

use alloc::vec::Vec;

use super::encode::{MESSAGE_ID_LEN, bytes_len};
use super::types::MessageId;
use super::{VERSION_PREFIX_LEN, ws_message_frame_len};
use crate::index::MessageIndex;

/// `ToRunner` / `ToClient` tag of a tunnel message.
const TO_RUNNER_TUNNEL: u8 = 4;
/// `ToGateway` tag of a tunnel message (versioned hop).
const TO_GATEWAY_TUNNEL: u8 = 1;
/// `ToServer` tag of a tunnel message (runner socket).
const TO_SERVER_TUNNEL: u8 = 6;
/// Kind tag of a WebSocket message, in both directions.
const WS_MESSAGE: u8 = 4;
/// Kind tag of `ToServerWebSocketMessageAck`.
const WS_ACK: u8 = 5;

fn put_message_id(out: &mut Vec<u8>, id: MessageId) {
    out.extend_from_slice(&id.gateway_id.0);
    out.extend_from_slice(&id.request_id.0);
    out.extend_from_slice(&id.message_index.get().to_le_bytes());
}

fn put_uvarint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        // Truncation intended: the low seven bits, with the continuation bit.
        #[allow(clippy::cast_possible_truncation)]
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    #[allow(clippy::cast_possible_truncation)]
    out.push(n as u8);
}

/// The envelope head of a runner → gateway frame: the version prefix and `ToGateway`'s tag, or
/// `ToServer`'s tag alone.
fn put_server_envelope(out: &mut Vec<u8>, version: Option<u16>) {
    match version {
        Some(v) => {
            out.extend_from_slice(&v.to_le_bytes());
            out.push(TO_GATEWAY_TUNNEL);
        }
        None => out.push(TO_SERVER_TUNNEL),
    }
}

fn put_ws_message(out: &mut Vec<u8>, id: MessageId, data: &[u8], binary: bool) {
    put_message_id(out, id);
    out.push(WS_MESSAGE);
    put_uvarint(out, data.len() as u64);
    out.extend_from_slice(data);
    out.push(u8::from(binary));
}

/// Encodes a versioned `ToRunner::TunnelMessage(WebSocketMessage)` frame straight from borrowed
/// payload bytes: the same bytes as building the owned message and calling
/// [`encode_versioned`](super::encode_versioned), with one copy of the payload. This is the
/// gateway's hot path.
#[must_use]
pub fn encode_ws_message_frame(
    version: u16,
    message_id: MessageId,
    data: &[u8],
    binary: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(ws_message_frame_len(data.len()));
    out.extend_from_slice(&version.to_le_bytes());
    out.push(TO_RUNNER_TUNNEL);
    put_ws_message(&mut out, message_id, data, binary);
    out
}

/// Encodes a runner → gateway `ToServerTunnelMessage` carrying a `WebSocketMessage`, straight
/// from borrowed payload bytes: a versioned `ToGateway` frame with `Some(version)` (the pub/sub
/// hop), a plain `ToServer` frame with `None` (the runner's socket). The same bytes as the owned
/// message through [`encode_versioned`](super::encode_versioned) or [`encode`](super::encode).
#[must_use]
pub fn encode_server_ws_message_frame(
    version: Option<u16>,
    message_id: MessageId,
    data: &[u8],
    binary: bool,
) -> Vec<u8> {
    let prefix = if version.is_some() {
        VERSION_PREFIX_LEN
    } else {
        0
    };
    let mut out = Vec::with_capacity(prefix + 1 + MESSAGE_ID_LEN + 1 + bytes_len(data.len()) + 1);
    put_server_envelope(&mut out, version);
    put_ws_message(&mut out, message_id, data, binary);
    out
}

/// Encodes a runner → gateway `ToServerWebSocketMessageAck { index }`, framed as
/// [`encode_server_ws_message_frame`] frames.
#[must_use]
pub fn encode_ack_frame(
    version: Option<u16>,
    message_id: MessageId,
    index: MessageIndex,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(VERSION_PREFIX_LEN + 1 + MESSAGE_ID_LEN + 1 + 2);
    put_server_envelope(&mut out, version);
    put_message_id(&mut out, message_id);
    out.push(WS_ACK);
    out.extend_from_slice(&index.get().to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::wire::encode::uvarint_len;
    use crate::wire::{
        self, GatewayId, RequestId, ToClientTunnelMessage, ToClientTunnelMessageKind,
        ToClientWebSocketMessage, ToGateway, ToRunner, ToServer, ToServerTunnelMessage,
        ToServerTunnelMessageKind, ToServerWebSocketMessage, ToServerWebSocketMessageAck,
    };

    fn id(index: u16) -> MessageId {
        MessageId {
            gateway_id: GatewayId([1, 0x80, 0xff, 7]),
            request_id: RequestId([9, 8, 0, 0xfe]),
            message_index: MessageIndex::new(index),
        }
    }

    /// Every length class of the payload's varint (1, 2, 3 bytes), both flags, indices across
    /// the range, both framings: byte-equal to the serde path.
    #[test]
    fn hand_encoders_equal_the_serde_path() {
        for len in [0, 1, 127, 128, 255, 16_383, 16_384, 70_000] {
            let data = vec![0x5a; len];
            for index in [0, 1, 255, 256, 65_535] {
                for binary in [false, true] {
                    let to_runner = ToRunner::TunnelMessage(ToClientTunnelMessage {
                        message_id: id(index),
                        kind: ToClientTunnelMessageKind::WebSocketMessage(
                            ToClientWebSocketMessage {
                                data: data.clone().into(),
                                binary,
                            },
                        ),
                    });
                    assert_eq!(
                        encode_ws_message_frame(7, id(index), &data, binary),
                        wire::encode_versioned(7, &to_runner)
                    );
                    let back = ToServerTunnelMessage {
                        message_id: id(index),
                        kind: ToServerTunnelMessageKind::WebSocketMessage(
                            ToServerWebSocketMessage {
                                data: data.clone().into(),
                                binary,
                            },
                        ),
                    };
                    assert_eq!(
                        encode_server_ws_message_frame(Some(4), id(index), &data, binary),
                        wire::encode_versioned(4, &ToGateway::TunnelMessage(back.clone()))
                    );
                    assert_eq!(
                        encode_server_ws_message_frame(None, id(index), &data, binary),
                        wire::encode(&ToServer::TunnelMessage(back))
                    );
                }
            }
        }
        for ack in [0, 1, 0x1234, 65_535] {
            let msg = ToServerTunnelMessage {
                message_id: id(3),
                kind: ToServerTunnelMessageKind::WebSocketMessageAck(ToServerWebSocketMessageAck {
                    index: MessageIndex::new(ack),
                }),
            };
            assert_eq!(
                encode_ack_frame(Some(7), id(3), MessageIndex::new(ack)),
                wire::encode_versioned(7, &ToGateway::TunnelMessage(msg.clone()))
            );
            assert_eq!(
                encode_ack_frame(None, id(3), MessageIndex::new(ack)),
                wire::encode(&ToServer::TunnelMessage(msg))
            );
        }
    }

    #[test]
    fn uvarint_lengths_match_the_size_function() {
        for n in [
            0_u64,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_uvarint(&mut out, n);
            assert_eq!(out.len(), uvarint_len(n));
        }
    }
}
