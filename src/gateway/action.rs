//! What the gateway asks its caller to do: [`Action`], with the typed close reasons and the
//! shared encoded [`Frame`].

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Deref;

use bytes::Bytes;

use crate::close::{CODE_NORMAL, CloseFrame, KnownClose};
use crate::index::MessageIndex;
use crate::wire::RequestId;

use super::request::RouteId;

/// Encoded bytes of one versioned `ToRunner` message, shared between the outgoing action, the
/// gateway's pending buffer and the transport.
///
/// One reference-counted buffer ([`Bytes`]): cloning is a reference-count increment, a replayed
/// message is the very buffer that was published first ([`Frame::ptr_eq`]), never a
/// re-encoding, and [`into_bytes`](Self::into_bytes) hands the buffer to a transport that takes
/// `Bytes` (tungstenite, hyper, axum) without a copy.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Frame(Bytes);

impl Frame {
    /// Wraps encoded bytes (no copy).
    #[must_use]
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Bytes::from(bytes))
    }

    /// Whether both frames share one buffer (one is a clone of the other).
    #[must_use]
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        a.0.as_ptr() == b.0.as_ptr() && a.0.len() == b.0.len()
    }

    /// The shared buffer.
    #[must_use]
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// The shared buffer, moved out (no copy).
    #[must_use]
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// A copy of the bytes.
    #[must_use]
    pub fn to_vec(&self) -> Vec<u8> {
        self.0.to_vec()
    }

    /// The bytes, moved out without a copy when this is the only handle, copied otherwise.
    #[must_use]
    pub fn into_vec(self) -> Vec<u8> {
        Vec::from(self.0)
    }

    /// The frame size as a byte count for the pending-bytes accounting.
    pub(crate) fn byte_len(&self) -> u64 {
        u64::try_from(self.0.len()).unwrap_or(u64::MAX)
    }
}

impl From<Bytes> for Frame {
    fn from(bytes: Bytes) -> Self {
        Self(bytes)
    }
}

impl From<Frame> for Bytes {
    fn from(frame: Frame) -> Self {
        frame.0
    }
}

impl Deref for Frame {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Frame {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Frame({} bytes)", self.0.len())
    }
}

/// Something the caller must do, drained with [`Gateway::poll_action`](super::Gateway::poll_action).
///
/// Actions come out in the order they must be performed. Per request they follow the protocol:
/// for example every [`Publish`](Action::Publish) of a request reaches the runner in the order it
/// was emitted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Publish `frame` (a versioned `ToRunner` message: tunnel message or ping) to the runner
    /// behind `route`.
    Publish {
        /// Where to publish.
        route: RouteId,
        /// The request the frame belongs to.
        request_id: RequestId,
        /// The encoded message.
        frame: Frame,
    },
    /// Send a WebSocket message from the actor to the client.
    SendToClient {
        /// The client connection.
        request_id: RequestId,
        /// Payload (a slice of the runner's frame when it came through
        /// [`Gateway::handle_runner_frame_bytes`](super::Gateway::handle_runner_frame_bytes)).
        data: Bytes,
        /// Binary (`true`) or text (`false`).
        binary: bool,
    },
    /// Close the client's WebSocket with `frame` (its code is always set). A
    /// [`Closed`](Action::Closed) for the same request follows.
    CloseClient {
        /// The client connection.
        request_id: RequestId,
        /// Close code and reason.
        frame: CloseFrame,
    },
    /// The runner accepted the WebSocket: start reading the client.
    Opened {
        /// The request.
        request_id: RequestId,
        /// Whether the socket survives the actor sleeping (its messages are buffered until acked).
        hibernatable: bool,
    },
    /// The request is hibernating: the actor is gone, the client socket stays open, client
    /// messages are buffered until [`Gateway::wake`](super::Gateway::wake).
    Hibernated {
        /// The request.
        request_id: RequestId,
    },
    /// The hibernating request needs its actor (buffered client data or a client close is waiting):
    /// wake the actor, then call [`Gateway::wake`](super::Gateway::wake) with its route. Emitted at
    /// most once per hibernation.
    RequestWake {
        /// The request.
        request_id: RequestId,
        /// The actor to wake.
        actor_id: String,
    },
    /// Write (or refresh) the hibernating-request record of this request, then report the result
    /// with [`Gateway::hibernating_record_upserted`](super::Gateway::hibernating_record_upserted)
    /// or [`Gateway::hibernating_record_failed`](super::Gateway::hibernating_record_failed).
    UpsertHibernatingRecord {
        /// The request.
        request_id: RequestId,
        /// The actor the record is listed under.
        actor_id: String,
    },
    /// Delete the hibernating-request record of this request.
    DeleteHibernatingRecord {
        /// The request.
        request_id: RequestId,
        /// The actor the record is listed under.
        actor_id: String,
    },
    /// [`OverflowPolicy::Backpressure`](super::OverflowPolicy::Backpressure): acks (or closed
    /// requests) freed room for the message that was refused; resume reading the client and send
    /// it again. Room is not reserved: when several requests wait on the gateway-wide limit, every
    /// one that fits at that moment is told (first come first served), and one that loses the race
    /// gets [`SendError::Backpressure`](super::SendError::Backpressure) again and is told again
    /// later.
    ClientWritable {
        /// The request.
        request_id: RequestId,
    },
    /// The request is gone. Terminal: emitted exactly once per opened request, after every other
    /// action of that request.
    Closed {
        /// The request.
        request_id: RequestId,
        /// Why it closed.
        reason: CloseReason,
    },
}

/// Which limit a message would exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Limit {
    /// [`GatewayConfig::max_pending_messages`](super::GatewayConfig::max_pending_messages).
    Count,
    /// [`GatewayConfig::max_pending_bytes`](super::GatewayConfig::max_pending_bytes).
    RequestBytes,
    /// [`GatewayConfig::max_gateway_pending_bytes`](super::GatewayConfig::max_gateway_pending_bytes).
    GatewayBytes,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Count => "pending message count",
            Self::RequestBytes => "per-request pending bytes",
            Self::GatewayBytes => "gateway pending bytes",
        })
    }
}

/// Why a request was garbage-collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GcReason {
    /// The oldest pending message was not acknowledged within
    /// [`GatewayConfig::ack_timeout`](super::GatewayConfig::ack_timeout) of being sent (or
    /// replayed) while active.
    AckTimeout {
        /// The oldest unacknowledged index.
        first: MessageIndex,
        /// The last index sent.
        last: MessageIndex,
    },
    /// The hibernating-request record was not refreshed successfully within
    /// [`GatewayConfig::hibernation_timeout`](super::GatewayConfig::hibernation_timeout).
    HibernationTimeout,
    /// The request asked for a wake and was not woken within
    /// [`GatewayConfig::wake_timeout`](super::GatewayConfig::wake_timeout).
    WakeTimeout,
    /// The client closed while messages were unacknowledged, and the runner did not acknowledge
    /// them all within [`GatewayConfig::close_timeout`](super::GatewayConfig::close_timeout).
    CloseTimeout,
}

/// Why a request closed ([`Action::Closed`]).
///
/// [`client_frame`](Self::client_frame) and [`runner_frame`](Self::runner_frame) give the close
/// frames that go with it, mapped to upstream's `(code, reason)` pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client sent this close frame; it was forwarded to the runner.
    ClientClosed(CloseFrame),
    /// The client's stream ended without a close frame; the runner got 1000.
    ClientGone,
    /// The runner closed the WebSocket with this frame; it was forwarded to the client.
    RunnerClosed(CloseFrame),
    /// The runner refused the WebSocket (closed it before accepting it) with this frame.
    ClosedBeforeOpen(CloseFrame),
    /// The runner did not accept the WebSocket within
    /// [`GatewayConfig::open_timeout`](super::GatewayConfig::open_timeout).
    OpenTimeout,
    /// The actor stopped and the WebSocket cannot hibernate.
    ActorStopped,
    /// The actor stopped before the runner accepted the WebSocket.
    ActorStoppedBeforeOpen,
    /// A client message would have exceeded a pending limit under
    /// [`OverflowPolicy::Close`](super::OverflowPolicy::Close), or could never fit.
    PendingLimit(Limit),
    /// No pong within [`GatewayConfig::ping_timeout`](super::GatewayConfig::ping_timeout) on a
    /// request that does not hibernate on tunnel loss.
    PingTimeout,
    /// Garbage-collected.
    Collected(GcReason),
}

impl CloseReason {
    /// The close frame the client gets, or `None` when the client closed first.
    ///
    /// | reason | client frame |
    /// |---|---|
    /// | `ClientClosed`, `ClientGone` | none |
    /// | `RunnerClosed(f)` | `f` (code 1000 if it had none) |
    /// | `ActorStopped` | 1000 `actor.stopped` |
    /// | `ClosedBeforeOpen` | 1011 `guard.websocket_closed_before_open` |
    /// | `OpenTimeout` | 1011 `guard.websocket_open_timeout` |
    /// | `ActorStoppedBeforeOpen` | 1011 `guard.actor_stopped_while_waiting_for_websocket_open` |
    /// | `PendingLimit` | 1011 `guard.websocket_pending_limit_reached` |
    /// | `PingTimeout` | 1011 `guard.websocket_tunnel_ping_timeout` |
    /// | `Collected` | 1011 `guard.websocket_garbage_collected` |
    #[must_use]
    pub fn client_frame(&self) -> Option<CloseFrame> {
        let known = match self {
            Self::ClientClosed(_) | Self::ClientGone => return None,
            Self::RunnerClosed(f) => {
                return Some(CloseFrame {
                    code: Some(f.code.unwrap_or(CODE_NORMAL)),
                    reason: f.reason.clone(),
                });
            }
            Self::ClosedBeforeOpen(_) => KnownClose::ClosedBeforeOpen,
            Self::OpenTimeout => KnownClose::OpenTimeout,
            Self::ActorStopped => KnownClose::ActorStopped,
            Self::ActorStoppedBeforeOpen => KnownClose::ActorStoppedWhileWaitingForOpen,
            Self::PendingLimit(_) => KnownClose::PendingLimitReached,
            Self::PingTimeout => KnownClose::PingTimeout,
            Self::Collected(_) => KnownClose::GarbageCollected,
        };
        Some(known.frame())
    }

    /// The close the gateway publishes to the runner for this reason, when the request is routed
    /// to a live runner (nothing is published while the request hibernates).
    ///
    /// | reason | runner frame |
    /// |---|---|
    /// | `ClientClosed(f)` | `f`, verbatim |
    /// | `ClientGone` | 1000, no reason |
    /// | `OpenTimeout`, `PendingLimit`, `PingTimeout`, `Collected` | 1011 `ws.downstream_closed` |
    /// | `RunnerClosed`, `ClosedBeforeOpen`, `ActorStopped`, `ActorStoppedBeforeOpen` | none (the runner side is already closed) |
    #[must_use]
    pub fn runner_frame(&self) -> Option<CloseFrame> {
        match self {
            Self::ClientClosed(f) => Some(f.clone()),
            Self::ClientGone => Some(CloseFrame::code(CODE_NORMAL)),
            Self::OpenTimeout | Self::PendingLimit(_) | Self::PingTimeout | Self::Collected(_) => {
                Some(KnownClose::DownstreamClosed.frame())
            }
            Self::RunnerClosed(_)
            | Self::ClosedBeforeOpen(_)
            | Self::ActorStopped
            | Self::ActorStoppedBeforeOpen => None,
        }
    }
}
