//! One error enum per operation of the [`Runner`](super::Runner).
//!
//! Errors returned by `handle_*` are informative: the runner has already reacted (dropped the
//! input, answered it, or queued a close) and counted it in [`RunnerStats`](super::RunnerStats).
//! The caller may log them and carry on. Errors returned by commands mean the command did
//! nothing.

use crate::wire::DecodeError;

/// Why an actor lifecycle call ([`actor_starting`](super::Runner::actor_starting),
/// [`restore`](super::Runner::restore), [`actor_stopping`](super::Runner::actor_stopping)) was
/// refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum ActorError {
    /// The runner hosts no actor with this id.
    #[error("unknown actor")]
    UnknownActor,
    /// The actor is already starting or running.
    #[error("actor is already starting or running")]
    AlreadyStarting,
    /// The actor's sockets were already restored.
    #[error("actor was already restored")]
    AlreadyRestored,
    /// `restore` for an actor that was never announced with `actor_starting`.
    #[error("actor is not starting")]
    NotStarting,
    /// The actor is stopping; wait for [`Action::ActorStopped`](super::Action::ActorStopped).
    #[error("actor is stopping")]
    Stopping,
}

/// Why a socket command ([`accept`](super::Runner::accept), [`reject`](super::Runner::reject),
/// [`close`](super::Runner::close), [`hibernate`](super::Runner::hibernate),
/// [`persisted`](super::Runner::persisted), [`persist_failed`](super::Runner::persist_failed))
/// was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// No such socket: never opened, or already closed, hibernated or removed.
    #[error("unknown socket")]
    UnknownSocket,
    /// The socket is not open (it is still connecting or its actor is stopping).
    #[error("socket is not open")]
    NotOpen,
    /// `accept`/`reject` on a socket that is not waiting for that decision.
    #[error("socket is not connecting")]
    WrongState,
    /// `hibernate` on a socket that cannot hibernate.
    #[error("socket is not hibernatable")]
    NotHibernatable,
    /// A persist result that does not match the persist in flight for this socket.
    #[error("persist result does not match the persist in flight")]
    UnexpectedPersist,
}

/// Why [`send`](super::Runner::send) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// No such socket.
    #[error("unknown socket")]
    UnknownSocket,
    /// The socket is not open.
    #[error("socket is not open")]
    NotOpen,
    /// The payload is larger than [`RunnerConfig::max_message_size`](super::RunnerConfig).
    #[error("message of {size} bytes exceeds the maximum of {max} bytes")]
    MessageTooLarge {
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
    #[error("unknown actor")]
    UnknownActor,
    /// A message or close for a socket the runner has no state for.
    #[error("unknown socket")]
    UnknownSocket,
    /// A message for a socket that is not open (connecting, or its actor is stopping); the
    /// index is unchanged and the gateway replays it after the next wake.
    #[error("socket is not open")]
    NotOpen,
    /// The actor is still starting and its queue is full; the message was dropped.
    #[error("actor queue is full")]
    QueueFull,
    /// An open beyond [`RunnerConfig::max_sockets`](super::RunnerConfig::max_sockets); the runner
    /// answered with close 1011 `Server Error`.
    #[error("socket limit reached")]
    SocketLimit,
    /// A message kind outside the WebSocket tunnel (HTTP request kinds, `ToRunnerClose`, the
    /// control messages: init, commands, event acks, KV responses, runner-socket pings).
    #[error("unsupported message kind {kind}")]
    Unsupported {
        /// Which kind.
        kind: &'static str,
    },
}
