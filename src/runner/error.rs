//! One error enum per operation of the [`Runner`](super::Runner).
//!
//! Errors returned by `handle_*` are informative: the runner has already reacted (dropped the
//! input, answered it, or queued a close) and counted it in [`RunnerStats`](super::RunnerStats).
//! The caller may log them and carry on. Errors returned by commands mean the command did
//! nothing.

use alloc::string::String;

use crate::wire::DecodeError;

use super::SocketId;

/// Why an actor lifecycle call ([`actor_starting`](super::Runner::actor_starting),
/// [`restore`](super::Runner::restore), [`actor_stopping`](super::Runner::actor_stopping)) was
/// refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum ActorError {
    /// The runner hosts no actor with this id.
    #[error("unknown actor {actor_id:?}")]
    UnknownActor {
        /// The actor.
        actor_id: String,
    },
    /// The actor is already starting or running.
    #[error("actor {actor_id:?} is already starting or running")]
    AlreadyStarting {
        /// The actor.
        actor_id: String,
    },
    /// The actor's sockets were already restored.
    #[error("actor {actor_id:?} was already restored")]
    AlreadyRestored {
        /// The actor.
        actor_id: String,
    },
    /// `restore` for an actor that was never announced with `actor_starting`.
    #[error("actor {actor_id:?} is not starting")]
    NotStarting {
        /// The actor.
        actor_id: String,
    },
    /// The actor is stopping; wait for [`Action::ActorStopped`](super::Action::ActorStopped).
    #[error("actor {actor_id:?} is stopping")]
    Stopping {
        /// The actor.
        actor_id: String,
    },
}

/// Why a socket command ([`accept`](super::Runner::accept), [`reject`](super::Runner::reject),
/// [`close`](super::Runner::close), [`hibernate`](super::Runner::hibernate),
/// [`persisted`](super::Runner::persisted), [`persist_failed`](super::Runner::persist_failed))
/// was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// No such socket: never opened, or already closed, hibernated or removed.
    #[error("unknown socket {socket}")]
    UnknownSocket {
        /// The socket.
        socket: SocketId,
    },
    /// The socket is not open (it is still connecting or its actor is stopping).
    #[error("socket {socket} is not open")]
    NotOpen {
        /// The socket.
        socket: SocketId,
    },
    /// `accept`/`reject` on a socket that is not waiting for that decision.
    #[error("socket {socket} is not connecting")]
    WrongState {
        /// The socket.
        socket: SocketId,
    },
    /// `hibernate` on a socket that cannot hibernate.
    #[error("socket {socket} is not hibernatable")]
    NotHibernatable {
        /// The socket.
        socket: SocketId,
    },
    /// A persist result that does not match the persist in flight for this socket.
    #[error("persist result for socket {socket} does not match the persist in flight")]
    UnexpectedPersist {
        /// The socket.
        socket: SocketId,
    },
}

impl SocketError {
    /// The socket the error concerns.
    #[must_use]
    pub fn socket(&self) -> SocketId {
        match *self {
            Self::UnknownSocket { socket }
            | Self::NotOpen { socket }
            | Self::WrongState { socket }
            | Self::NotHibernatable { socket }
            | Self::UnexpectedPersist { socket } => socket,
        }
    }
}

impl ActorError {
    /// The actor the error concerns.
    #[must_use]
    pub fn actor_id(&self) -> &str {
        match self {
            Self::UnknownActor { actor_id }
            | Self::AlreadyStarting { actor_id }
            | Self::AlreadyRestored { actor_id }
            | Self::NotStarting { actor_id }
            | Self::Stopping { actor_id } => actor_id,
        }
    }
}

/// Why [`send`](super::Runner::send) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// No such socket.
    #[error("unknown socket {socket}")]
    UnknownSocket {
        /// The socket.
        socket: SocketId,
    },
    /// The socket is not open.
    #[error("socket {socket} is not open")]
    NotOpen {
        /// The socket.
        socket: SocketId,
    },
    /// The payload is larger than [`RunnerConfig::max_message_size`](super::RunnerConfig).
    #[error("socket {socket}: message of {size} bytes exceeds the maximum of {max} bytes")]
    MessageTooLarge {
        /// The socket.
        socket: SocketId,
        /// Payload size.
        size: usize,
        /// Configured maximum.
        max: usize,
    },
}

/// Why an incoming frame or tunnel message was dropped. Every variant is counted in
/// [`RunnerStats`](super::RunnerStats).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// The frame does not decode.
    #[error("malformed frame: {0}")]
    Malformed(#[from] DecodeError),
    /// An open for an actor this runner does not host or that is stopping; the runner answered
    /// with a close 1011 `Actor not found`.
    #[error("unknown actor {actor_id:?}")]
    UnknownActor {
        /// The actor.
        actor_id: String,
    },
    /// A message or close for a socket the runner has no state for.
    #[error("unknown socket {socket}")]
    UnknownSocket {
        /// The socket.
        socket: SocketId,
    },
    /// A message for a socket that is not open (connecting, or its actor is stopping); the
    /// index is unchanged and the gateway replays it after the next wake.
    #[error("socket {socket} is not open")]
    NotOpen {
        /// The socket.
        socket: SocketId,
    },
    /// The actor is still starting and its queue is full; the message was dropped.
    #[error("the queue of starting actor {actor_id:?} is full")]
    QueueFull {
        /// The actor.
        actor_id: String,
    },
    /// An open beyond [`RunnerConfig::max_sockets`](super::RunnerConfig::max_sockets); the runner
    /// answered with close 1011 `Server Error`.
    #[error("socket {socket} refused: socket limit reached")]
    SocketLimit {
        /// The socket.
        socket: SocketId,
    },
    /// A message kind outside the WebSocket tunnel (HTTP request kinds, `ToRunnerClose`, the
    /// control messages: init, commands, event acks, KV responses, runner-socket pings).
    #[error("unsupported message kind {kind}")]
    Unsupported {
        /// Which kind.
        kind: &'static str,
    },
}
