//! Envoy protocol v8 on a session that speaks v7: the engine's `ToEnvoy` frames become the
//! `ToClient` messages the session consumes, the session's `ToServer` frames become `ToRivet`
//! frames. The session and the runner engine stay unchanged.
//!
//! Most of what a session sends has the same bytes in both versions (events, command
//! acknowledgements, stopping, pong, KV requests, and the tunnel's HTTP start and chunk); the
//! tunnel's WebSocket kinds differ only in their tag (v7 3–6, v8 5–8): those are rewritten in
//! place. The handshake and an HTTP abort are translated through the types.

use alloc::vec::Vec;

use bytes::Bytes;

use crate::wire::envoy::{BodyFlow, ToEnvoy, ToRivet};
use crate::wire::{self, DecodeError, DecodeLimits, ToClient, ToServer};

/// A `ToEnvoy` frame that the session cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvoyFrameError {
    /// The frame does not decode (or is a variant hws does not model, such as SQLite).
    #[error("malformed envoy frame: {0}")]
    Malformed(#[from] DecodeError),
    /// HTTP body flow control, which the session does not model.
    #[error("envoy body flow control on request {:?} is not modelled", .0.message_id.request_id)]
    BodyFlow(BodyFlow),
}

/// The `ToClient` message of an engine frame, for a session known to the engine as `key`.
pub(super) fn to_client(
    frame: &Bytes,
    limits: &DecodeLimits,
    key: &str,
) -> Result<ToClient, EnvoyFrameError> {
    let msg: ToEnvoy = wire::decode_shared(frame, limits)?;
    msg.into_v7(key).map_err(EnvoyFrameError::BodyFlow)
}

/// `ToServer` tag of a tunnel message, and where its kind's tag sits (after the 10-byte id).
const TUNNEL: u8 = 6;
const KIND_AT: usize = 1 + 10;
/// v7's tunnel kinds towards the engine whose v8 form is the same bytes under a tag 2 higher:
/// WebSocket open, message, ack and close.
const WEBSOCKET_KINDS: core::ops::RangeInclusive<u8> = 3..=6;

/// The `ToRivet` frame of a session's `ToServer` frame.
///
/// # Errors
/// [`DecodeError`] if `frame` is not a `ToServer` message (the session only writes valid
/// ones).
pub(super) fn to_rivet(mut frame: Vec<u8>) -> Result<Vec<u8>, DecodeError> {
    match frame.first().copied() {
        // Events, command acks, stopping, pong, KV request: the same layout under the same tag.
        Some(1..=5) => return Ok(frame),
        Some(TUNNEL) => match frame.get(KIND_AT).copied() {
            // HTTP response start and chunk.
            Some(0 | 1) => return Ok(frame),
            Some(kind) if WEBSOCKET_KINDS.contains(&kind) => {
                frame[KIND_AT] = kind + 2;
                return Ok(frame);
            }
            _ => {}
        },
        _ => {}
    }
    let msg: ToServer = wire::decode(&frame)?;
    Ok(wire::encode(&ToRivet::from(msg)))
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::index::MessageIndex;
    use crate::wire::envoy::{ToEnvoyInit, ToEnvoyTunnelMessage};
    use crate::wire::{
        ActorCheckpoint, ActorIntent, Event, EventActorIntent, EventWrapper, GatewayId, MessageId,
        RequestId, ToServerAckCommands, ToServerEvents, ToServerInit, ToServerPong,
        ToServerTunnelMessage, ToServerTunnelMessageKind, ToServerWebSocketClose,
        ToServerWebSocketMessage, ToServerWebSocketMessageAck, ToServerWebSocketOpen,
    };

    fn id() -> MessageId {
        MessageId {
            gateway_id: GatewayId(*b"gw01"),
            request_id: RequestId(*b"rq01"),
            message_index: MessageIndex::new(65_535),
        }
    }

    fn tunnel(kind: ToServerTunnelMessageKind) -> ToServer {
        ToServer::TunnelMessage(ToServerTunnelMessage {
            message_id: id(),
            kind,
        })
    }

    #[test]
    fn every_session_frame_becomes_the_v8_frame_with_the_same_meaning() {
        let checkpoint = ActorCheckpoint {
            actor_id: "a".into(),
            generation: 2,
            index: 3,
        };
        let frames = vec![
            ToServer::Init(ToServerInit {
                name: "pool".into(),
                version: 1,
                total_slots: 8,
                prepopulate_actor_names: None,
                metadata: Some("{}".into()),
            }),
            ToServer::Events(ToServerEvents(vec![EventWrapper {
                checkpoint: checkpoint.clone(),
                inner: Event::ActorIntent(EventActorIntent {
                    intent: ActorIntent::Sleep,
                }),
            }])),
            ToServer::AckCommands(ToServerAckCommands {
                last_command_checkpoints: vec![checkpoint],
            }),
            ToServer::Stopping,
            ToServer::Pong(ToServerPong { ts: -5 }),
            tunnel(ToServerTunnelMessageKind::ResponseAbort),
            tunnel(ToServerTunnelMessageKind::WebSocketOpen(
                ToServerWebSocketOpen {
                    can_hibernate: true,
                },
            )),
            tunnel(ToServerTunnelMessageKind::WebSocketMessage(
                ToServerWebSocketMessage {
                    data: Bytes::from_static(b"hi"),
                    binary: false,
                },
            )),
            tunnel(ToServerTunnelMessageKind::WebSocketMessageAck(
                ToServerWebSocketMessageAck {
                    index: MessageIndex::new(7),
                },
            )),
            tunnel(ToServerTunnelMessageKind::WebSocketClose(
                ToServerWebSocketClose {
                    code: Some(1000),
                    reason: Some("bye".into()),
                    hibernate: true,
                },
            )),
        ];
        for msg in frames {
            let fast = to_rivet(wire::encode(&msg)).expect("valid");
            let typed = wire::encode(&ToRivet::from(msg.clone()));
            assert_eq!(fast, typed, "{msg:?}");
            let back: ToRivet = wire::decode(&fast).expect("decodes as v8");
            assert_eq!(back, ToRivet::from(msg));
        }
    }

    #[test]
    fn engine_frames_become_the_session_messages() {
        let limits = DecodeLimits::default();
        let init = ToEnvoy::Init(ToEnvoyInit {
            metadata: crate::wire::envoy::EnvoyProtocolMetadata {
                envoy_lost_threshold: 1500,
                actor_stop_threshold: 2000,
                max_response_payload_size: 1 << 20,
            },
        });
        let frame = Bytes::from(wire::encode(&init));
        let Ok(ToClient::Init(i)) = to_client(&frame, &limits, "key-1") else {
            panic!("an init");
        };
        assert_eq!(i.runner_id, "key-1");
        assert_eq!(i.metadata.runner_lost_threshold, 1500);
        let flow = ToEnvoy::TunnelMessage(ToEnvoyTunnelMessage {
            message_id: id(),
            kind: crate::wire::envoy::ToEnvoyTunnelMessageKind::RequestBodyCancel,
        });
        let frame = Bytes::from(wire::encode(&flow));
        assert!(matches!(
            to_client(&frame, &limits, "k"),
            Err(EnvoyFrameError::BodyFlow(_))
        ));
        let sqlite = Bytes::from(vec![6u8, 0]);
        assert!(matches!(
            to_client(&sqlite, &limits, "k"),
            Err(EnvoyFrameError::Malformed(
                DecodeError::UnsupportedVariant { .. }
            ))
        ));
    }
}
