//! The errors of the gateway's operations: one enum per operation.

use crate::wire::{DecodeError, GatewayId, RequestId};

use super::Limit;
use super::request::{Phase, RouteId};

/// Why [`Gateway::open`](super::Gateway::open) refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// A live request already has this id. Nothing changed; the live request is untouched.
    #[error("request {request_id} is already open")]
    AlreadyExists {
        /// The request.
        request_id: RequestId,
    },
    /// The gateway already holds [`GatewayConfig::max_requests`](super::GatewayConfig) requests.
    #[error("request {request_id} refused: the gateway already holds {max} requests")]
    TooManyRequests {
        /// The request.
        request_id: RequestId,
        /// The configured maximum.
        max: usize,
    },
}

/// Why [`Gateway::client_message`](super::Gateway::client_message) did not accept a message.
///
/// In every case the caller still owns the message bytes (they were borrowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// No live request has this id (it was never opened, or it closed).
    #[error("unknown request {request_id}")]
    UnknownRequest {
        /// The request.
        request_id: RequestId,
    },
    /// The runner has not accepted the WebSocket yet: wait for
    /// [`Action::Opened`](super::Action::Opened) before reading the client.
    #[error("request {request_id} is not open yet")]
    NotOpen {
        /// The request.
        request_id: RequestId,
    },
    /// The client already closed this request (its close waits for the runner's acks): nothing
    /// more is read from it.
    #[error("request {request_id}: the client already closed it")]
    ClientClosed {
        /// The request.
        request_id: RequestId,
    },
    /// [`OverflowPolicy::Backpressure`](super::OverflowPolicy::Backpressure): the message would
    /// exceed `limit`. Nothing changed. Stop reading the client and send the message again after
    /// [`Action::ClientWritable`](super::Action::ClientWritable).
    #[error("request {request_id}: backpressure, the {limit} limit is reached")]
    Backpressure {
        /// The request.
        request_id: RequestId,
        /// The limit that is full.
        limit: Limit,
    },
    /// [`OverflowPolicy::Close`](super::OverflowPolicy::Close): the message would exceed `limit`,
    /// so the request was closed (the close actions are queued). The message was not sent.
    #[error("request {request_id}: the {limit} limit was exceeded; the request was closed")]
    LimitExceeded {
        /// The request.
        request_id: RequestId,
        /// The limit that overflowed.
        limit: Limit,
    },
    /// The encoded message alone is larger than
    /// [`GatewayConfig::max_pending_bytes`](super::GatewayConfig::max_pending_bytes), so it could
    /// never be buffered. The request was closed under either policy.
    #[error(
        "request {request_id}: message of {size} encoded bytes exceeds the per-request maximum of {max}"
    )]
    MessageTooLarge {
        /// The request.
        request_id: RequestId,
        /// Encoded frame size, version prefix included.
        size: u64,
        /// The per-request maximum.
        max: u64,
    },
}

impl SendError {
    /// The request the error concerns.
    #[must_use]
    pub fn request_id(&self) -> RequestId {
        match *self {
            Self::UnknownRequest { request_id }
            | Self::NotOpen { request_id }
            | Self::ClientClosed { request_id }
            | Self::Backpressure { request_id, .. }
            | Self::LimitExceeded { request_id, .. }
            | Self::MessageTooLarge { request_id, .. } => request_id,
        }
    }
}

/// Why [`Gateway::wake`](super::Gateway::wake) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WakeError {
    /// No live request has this id. A request that was collected (for example by the wake
    /// timeout) is gone: the caller learns it here, explicitly.
    #[error("unknown request {request_id}")]
    UnknownRequest {
        /// The request.
        request_id: RequestId,
    },
    /// The request is not hibernating; nothing changed.
    #[error("request {request_id} is not hibernating")]
    NotHibernating {
        /// The request.
        request_id: RequestId,
    },
}

/// No live request has this id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown request {request_id}")]
pub struct UnknownRequest {
    /// The request.
    pub request_id: RequestId,
}

/// Why a runner input was dropped.
///
/// Every variant is non-fatal: the input was ignored, nothing else changed, and the matching
/// counter in [`GatewayStats`](super::GatewayStats) went up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// The frame did not decode as a versioned `ToGateway` message.
    #[error("malformed frame: {0}")]
    Malformed(#[from] DecodeError),
    /// No live request has the message's request id.
    #[error("unknown request {request_id}")]
    UnknownRequest {
        /// The request.
        request_id: RequestId,
    },
    /// The message names another gateway.
    #[error("message for request {request_id} addressed to gateway {gateway_id}")]
    WrongGateway {
        /// The request.
        request_id: RequestId,
        /// The gateway the message names.
        gateway_id: GatewayId,
    },
    /// The message came from a route the request is not currently routed to (for example the
    /// runner that hosted the actor before it moved).
    #[error("message for request {request_id} from route {route:?}, which it is not routed to")]
    WrongRoute {
        /// The request.
        request_id: RequestId,
        /// The route the message came from.
        route: RouteId,
    },
    /// The message kind is not valid in the request's phase (for example a message before the
    /// runner accepted the WebSocket, or a second open).
    #[error("{kind} is not valid while request {request_id} is {phase}")]
    InvalidForPhase {
        /// The request.
        request_id: RequestId,
        /// The request's phase.
        phase: Phase,
        /// The message kind.
        kind: &'static str,
    },
    /// The message kind is outside what the gateway engine handles: the HTTP response kinds
    /// (this engine tunnels WebSockets only).
    #[error("{kind} is not supported by the WebSocket gateway")]
    Unsupported {
        /// The message kind.
        kind: &'static str,
    },
}
