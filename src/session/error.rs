//! The errors of a runner session's operations, each naming the actor it concerns.

use alloc::string::String;

use crate::runner;
use crate::wire::DecodeError;

/// An app call on an actor ([`Session::restore`](super::Session::restore),
/// [`Session::sleep_actor`](super::Session::sleep_actor), …) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The session hosts no such actor (or it stopped).
    #[error("unknown actor {actor_id:?}")]
    UnknownActor {
        /// The actor.
        actor_id: String,
    },
    /// [`SessionConfig::max_unacked_events`](super::SessionConfig::max_unacked_events) events wait
    /// for the engine's acknowledgement.
    #[error("actor {actor_id:?}: event backlog full")]
    EventBacklogFull {
        /// The actor.
        actor_id: String,
    },
    /// The tunnel engine refused it.
    #[error("actor {actor_id:?}: {error}")]
    Runner {
        /// The actor.
        actor_id: String,
        /// Why.
        error: runner::ActorError,
    },
}

/// A frame from the engine that was dropped (entirely, or the commands named).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionReceiveError {
    /// It does not decode as a `ToClient` message.
    #[error("malformed frame: {0}")]
    Malformed(#[from] DecodeError),
    /// A message other than `ToClientInit` before the handshake completed.
    #[error("{message} before ToClientInit")]
    NotConnected {
        /// The message's official name.
        message: &'static str,
    },
    /// A command for an actor the session cannot start: every slot is taken.
    #[error("actor {actor_id:?}: no free slot")]
    NoFreeSlot {
        /// The actor.
        actor_id: String,
    },
    /// A command the tunnel engine refused.
    #[error("actor {actor_id:?}: {error}")]
    Runner {
        /// The actor.
        actor_id: String,
        /// Why.
        error: runner::ActorError,
    },
    /// A tunnel message the tunnel engine dropped.
    #[error("tunnel message dropped: {0}")]
    Tunnel(runner::ReceiveError),
}
