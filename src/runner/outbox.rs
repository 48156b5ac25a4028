//! What the runner publishes to the gateway: encoding per the framing, publishing with a
//! socket's next outgoing index, acks, closes, and metadata deletes.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::close::CloseFrame;
use crate::index::MessageIndex;
use crate::time::Timestamp;
use crate::wire::{
    self, MessageId, ToGateway, ToServer, ToServerTunnelMessage, ToServerTunnelMessageKind,
    ToServerWebSocketClose, ToServerWebSocketMessageAck,
};

use super::socket::Socket;
use super::{Action, Framing, Runner, SocketId};

impl Runner {
    pub(super) fn push_delete_metadata(&mut self, slot: usize) {
        let actor_id = self.actor_id_of(slot);
        if let Some(s) = self.socket_ref(slot) {
            self.actions.push_back(Action::DeleteMetadata {
                socket: s.id,
                actor_id,
            });
        }
    }

    /// Publishes a tunnel message for a socket the runner keeps no state for (index 0).
    pub(super) fn publish_stateless(&mut self, id: SocketId, kind: ToServerTunnelMessageKind) {
        let msg = ToServerTunnelMessage {
            message_id: MessageId {
                gateway_id: id.gateway_id,
                request_id: id.request_id,
                message_index: MessageIndex::ZERO,
            },
            kind,
        };
        self.actions.push_back(Action::Publish {
            gateway_id: id.gateway_id,
            frame: encode_tunnel(self.config.framing, msg),
        });
    }
}

/// The version prefix of the framing (`None`: the runner's socket, no prefix).
pub(super) fn framing_version(framing: Framing) -> Option<u16> {
    match framing {
        Framing::PubSub { version } => Some(version),
        Framing::RunnerSocket => None,
    }
}

/// Encodes a runner → gateway tunnel message per the framing (messages and acks through the
/// hand-written encoders).
pub(super) fn encode_tunnel(framing: Framing, msg: ToServerTunnelMessage) -> Vec<u8> {
    let version = framing_version(framing);
    match (&msg.kind, version) {
        (ToServerTunnelMessageKind::WebSocketMessageAck(ack), _) => {
            wire::encode_ack_frame(version, msg.message_id, ack.index)
        }
        (ToServerTunnelMessageKind::WebSocketMessage(m), _) => {
            wire::encode_server_ws_message_frame(version, msg.message_id, &m.data, m.binary)
        }
        (_, Some(version)) => wire::encode_versioned(version, &ToGateway::TunnelMessage(msg)),
        (_, None) => wire::encode(&ToServer::TunnelMessage(msg)),
    }
}

/// Publishes a tunnel message for `s` with its next outgoing index; returns that index.
pub(super) fn publish_on(
    actions: &mut VecDeque<Action>,
    framing: Framing,
    s: &mut Socket,
    kind: ToServerTunnelMessageKind,
) -> MessageIndex {
    publish_with(actions, s, |message_id| {
        encode_tunnel(framing, ToServerTunnelMessage { message_id, kind })
    })
}

/// Publishes the frame `encode` builds for `s`'s next outgoing message id; returns its index.
pub(super) fn publish_with(
    actions: &mut VecDeque<Action>,
    s: &mut Socket,
    encode: impl FnOnce(MessageId) -> Vec<u8>,
) -> MessageIndex {
    let index = s.take_client_index();
    let frame = encode(MessageId {
        gateway_id: s.id.gateway_id,
        request_id: s.id.request_id,
        message_index: index,
    });
    actions.push_back(Action::Publish {
        gateway_id: s.id.gateway_id,
        frame,
    });
    index
}

/// Publishes `ToServerWebSocketMessageAck { index }` and records it.
pub(super) fn send_ack(
    actions: &mut VecDeque<Action>,
    framing: Framing,
    s: &mut Socket,
    index: MessageIndex,
    now: Timestamp,
) {
    publish_on(
        actions,
        framing,
        s,
        ToServerTunnelMessageKind::WebSocketMessageAck(ToServerWebSocketMessageAck { index }),
    );
    s.last_acked = index;
    s.last_ack_at = Some(now);
}

/// `ToServerWebSocketClose` carrying `frame`.
pub(super) fn close_kind(frame: &CloseFrame, hibernate: bool) -> ToServerTunnelMessageKind {
    ToServerTunnelMessageKind::WebSocketClose(ToServerWebSocketClose {
        code: frame.code,
        reason: frame.reason.clone(),
        hibernate,
    })
}
