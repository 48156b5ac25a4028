//! [`Action`]: what the app must do after a call; [`CloseReason`]: why a socket closed.

use alloc::string::String;
use alloc::vec::Vec;

use crate::close::{CloseFrame, KnownClose};
use crate::index::MessageIndex;
use crate::wire::{GatewayId, Headers};

use super::SocketId;

/// An output of the [`Runner`](super::Runner), drained with
/// [`poll_action`](super::Runner::poll_action). Actions are owned and come out in the order the
/// runner produced them; perform them in that order (in particular `Persist` and
/// `DeleteMetadata` of one socket).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Send `frame` to the gateway `gateway_id` (encoded per [`Framing`](super::Framing)).
    Publish {
        /// Destination gateway.
        gateway_id: GatewayId,
        /// The encoded frame.
        frame: Vec<u8>,
    },
    /// A client opened a WebSocket on `actor_id`. The app must answer with
    /// [`accept`](super::Runner::accept) or [`reject`](super::Runner::reject).
    Open {
        /// The socket.
        socket: SocketId,
        /// The actor the client asked for.
        actor_id: String,
        /// The gateway's index of the open; the first message will be `index + 1`.
        index: MessageIndex,
        /// Request path of the upgrade.
        path: String,
        /// Upgrade request headers.
        headers: Headers,
    },
    /// A hibernated socket was restored (restore case 1): the app re-attaches its connection
    /// state. No `Open` is emitted for it.
    Restored {
        /// The socket.
        socket: SocketId,
        /// Its actor.
        actor_id: String,
        /// The persisted index it resumes from.
        server_index: MessageIndex,
    },
    /// A client message, in order, exactly once per index.
    Message {
        /// The socket.
        socket: SocketId,
        /// The gateway's index of the message.
        index: MessageIndex,
        /// Payload.
        data: Vec<u8>,
        /// Binary (`true`) or text (`false`).
        binary: bool,
    },
    /// Durably store the socket's metadata with these indices (creating it if needed), then
    /// call [`persisted`](super::Runner::persisted) or
    /// [`persist_failed`](super::Runner::persist_failed) with `server_index`.
    Persist {
        /// The socket.
        socket: SocketId,
        /// Its actor.
        actor_id: String,
        /// Last delivered gateway index.
        server_index: MessageIndex,
        /// The outgoing index a socket restored from this record starts at: the next one,
        /// after the ack that a successful persist sends (so no index is used twice).
        client_index: MessageIndex,
    },
    /// Delete the socket's stored metadata.
    DeleteMetadata {
        /// The socket.
        socket: SocketId,
        /// Its actor.
        actor_id: String,
    },
    /// The socket closed locally; terminal for the socket.
    Closed {
        /// The socket.
        socket: SocketId,
        /// Why.
        reason: CloseReason,
    },
    /// Every socket of a stopping actor has settled and every persist the runner asked for it
    /// (hand-backs included) was answered: its next start reads the durable indices. The actor
    /// is gone from the runner.
    ActorStopped {
        /// The actor.
        actor_id: String,
    },
}

/// Why a socket closed ([`Action::Closed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The gateway closed it (the client closed); carries the client's frame. No close is
    /// echoed back.
    GatewayClosed(CloseFrame),
    /// The app closed it with [`close`](super::Runner::close).
    AppClosed(CloseFrame),
    /// The app rejected the open with [`reject`](super::Runner::reject).
    Rejected(CloseFrame),
    /// A gap in the gateway's indices (also: [`GapPolicy::Await`](super::GapPolicy::Await)
    /// overflow or timeout). 1008 `ws.message_index_skip` was sent to the gateway.
    MessageIndexSkip,
    /// The app had metadata for a socket the gateway no longer lists (restore case 3).
    StaleMetadata,
    /// The actor stopped and the socket could not hibernate.
    ActorStopped,
    /// The app handed the socket back to the gateway with
    /// [`hibernate`](super::Runner::hibernate).
    Hibernated,
}

impl CloseReason {
    /// The upstream `(code, reason)` pair of this close.
    ///
    /// ```
    /// use hibernating_ws::runner::CloseReason;
    /// use hibernating_ws::CloseFrame;
    ///
    /// assert_eq!(CloseReason::MessageIndexSkip.frame(), CloseFrame::new(1008, "ws.message_index_skip"));
    /// assert_eq!(CloseReason::StaleMetadata.frame(), CloseFrame::new(1000, "ws.stale_metadata"));
    /// ```
    #[must_use]
    pub fn frame(&self) -> CloseFrame {
        match self {
            Self::GatewayClosed(f) | Self::AppClosed(f) | Self::Rejected(f) => f.clone(),
            Self::MessageIndexSkip => KnownClose::MessageIndexSkip.frame(),
            Self::StaleMetadata => KnownClose::StaleMetadata.frame(),
            Self::ActorStopped => KnownClose::ActorStopped.frame(),
            Self::Hibernated => CloseFrame::default(),
        }
    }
}
