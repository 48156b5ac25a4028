//! The errors of the control engine's operations: one enum per operation, each naming the id it
//! concerns. Every error means the input was dropped (or the call changed nothing).

use alloc::string::String;

use crate::gateway;
use crate::wire::{DecodeError, RequestId};

use super::ConnId;

/// [`Control::runner_connected`](super::Control::runner_connected) refused a connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The connection id is already in use.
    #[error("runner connection {conn} already exists")]
    AlreadyConnected {
        /// The connection.
        conn: ConnId,
    },
    /// [`ControlConfig::max_connections`](super::ControlConfig::max_connections) connections are
    /// open.
    #[error("runner connection {conn} refused: connection limit reached")]
    TooManyConnections {
        /// The connection.
        conn: ConnId,
    },
}

/// Input from a runner connection that was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// No such connection (never connected, or already closed).
    #[error("unknown runner connection {conn}")]
    UnknownConnection {
        /// The connection.
        conn: ConnId,
    },
    /// The frame does not decode as a `ToServer` message.
    #[error("malformed frame on runner connection {conn}: {error}")]
    Malformed {
        /// The connection.
        conn: ConnId,
        /// Why.
        error: DecodeError,
    },
    /// A message other than `ToServerInit` before the handshake.
    #[error("runner connection {conn} sent {message} before ToServerInit")]
    NotInitialized {
        /// The connection.
        conn: ConnId,
        /// The message's official name.
        message: &'static str,
    },
    /// A second `ToServerInit` on one connection.
    #[error("runner connection {conn} sent ToServerInit twice")]
    AlreadyInitialized {
        /// The connection.
        conn: ConnId,
    },
    /// [`ControlConfig::max_runners`](super::ControlConfig::max_runners) runners are known; the
    /// connection is closed.
    #[error("runner connection {conn} refused: runner limit reached")]
    TooManyRunners {
        /// The connection.
        conn: ConnId,
    },
    /// An event or command ack names an actor the engine does not know, or one that is not
    /// placed on this connection's runner.
    #[error("runner connection {conn} named actor {actor_id:?}, which it does not host")]
    ForeignActor {
        /// The connection.
        conn: ConnId,
        /// The actor.
        actor_id: String,
    },
    /// An event or command ack names a generation the engine never started.
    #[error(
        "runner connection {conn} named generation {generation} of actor {actor_id:?}, which was never started"
    )]
    FutureGeneration {
        /// The connection.
        conn: ConnId,
        /// The actor.
        actor_id: String,
        /// The generation named.
        generation: u32,
    },
    /// The gateway dropped a tunnel message of this connection.
    #[error("runner connection {conn}: tunnel message dropped: {error}")]
    Tunnel {
        /// The connection.
        conn: ConnId,
        /// The gateway's reason.
        error: gateway::ReceiveError,
    },
}

/// An actor operation ([`create_actor`](super::Control::create_actor),
/// [`start_actor`](super::Control::start_actor), …) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ActorError {
    /// No actor with this id.
    #[error("unknown actor {actor_id:?}")]
    UnknownActor {
        /// The actor.
        actor_id: String,
    },
    /// An actor with this id exists.
    #[error("actor {actor_id:?} already exists")]
    AlreadyExists {
        /// The actor.
        actor_id: String,
    },
    /// [`ControlConfig::max_actors`](super::ControlConfig::max_actors) actors exist.
    #[error("actor {actor_id:?} refused: actor limit reached")]
    TooManyActors {
        /// The actor.
        actor_id: String,
    },
}

/// [`Control::open`](super::Control::open) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The request names an actor the engine does not know.
    #[error("request {request_id}: unknown actor {actor_id:?}")]
    UnknownActor {
        /// The request.
        request_id: RequestId,
        /// The actor.
        actor_id: String,
    },
    /// The request id is live (open, or waiting for its actor).
    #[error("request {request_id} already exists")]
    AlreadyExists {
        /// The request.
        request_id: RequestId,
    },
    /// [`ControlConfig::max_waiting_opens_per_actor`](super::ControlConfig::max_waiting_opens_per_actor)
    /// opens already wait for this actor.
    #[error("request {request_id} refused: too many opens wait for actor {actor_id:?}")]
    TooManyWaiting {
        /// The request.
        request_id: RequestId,
        /// The actor.
        actor_id: String,
    },
    /// The gateway refused it.
    #[error("request {request_id}: {error}")]
    Gateway {
        /// The request.
        request_id: RequestId,
        /// The gateway's reason.
        error: gateway::OpenError,
    },
}

/// (Cluster) A cluster input was refused ([`Control::place_here`](super::Control::place_here) and
/// the other cluster calls). Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The engine is not in cluster mode ([`ControlConfig::cluster`](super::ControlConfig::cluster)).
    #[error("not a cluster node")]
    NotClustered,
    /// No such actor.
    #[error("unknown actor {actor_id:?}")]
    UnknownActor {
        /// The actor.
        actor_id: String,
    },
    /// The actor is not waiting for a placement here (it runs, or asked for no start).
    #[error("actor {actor_id:?} is not pending")]
    NotPending {
        /// The actor.
        actor_id: String,
    },
    /// No connected, non-draining runner with that id and a free slot on this node.
    #[error("runner {runner_id:?} cannot take actor {actor_id:?} here")]
    RunnerUnavailable {
        /// The runner.
        runner_id: String,
        /// The actor.
        actor_id: String,
    },
    /// No connected runner with that id on this node (a forwarded frame is dropped).
    #[error("runner {runner_id:?} is not connected here")]
    UnknownRunner {
        /// The runner.
        runner_id: String,
    },
    /// No such remote route.
    #[error("unknown remote route {route}")]
    UnknownRoute {
        /// The route.
        route: u64,
    },
    /// [`ControlConfig::max_runners`](super::ControlConfig::max_runners) remote routes exist.
    #[error("remote runner {runner_id:?} refused: route limit reached")]
    TooManyRoutes {
        /// The runner.
        runner_id: String,
    },
    /// A forwarded frame that is not a versioned tunnel frame of a supported version.
    #[error("malformed forwarded frame for runner {runner_id:?}")]
    Malformed {
        /// The runner (or the route's runner) it was for.
        runner_id: String,
    },
    /// The gateway refused a remote runner's frame.
    #[error("remote frame on route {route} refused: {error}")]
    Tunnel {
        /// The route.
        route: u64,
        /// Why.
        error: gateway::ReceiveError,
    },
}
