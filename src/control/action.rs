//! What the control engine asks its caller to do: [`Action`] and the bytes it sends,
//! [`OutFrame`].

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Deref;

use crate::gateway::{self, Frame, RouteId};
use crate::wire::{GatewayId, RequestId, StopCode, ToServerKvRequest};

use super::ConnId;

/// Bytes of one plain `ToClient` message for a runner's WebSocket.
///
/// A tunnel message from the gateway is the gateway's own versioned `ToRunner` frame seen without
/// its 2-byte version prefix (`ToRunner` and `ToClient` both give the tunnel message tag 4), so a
/// replayed message is never copied or re-encoded.
#[derive(Clone, PartialEq, Eq)]
pub struct OutFrame(Repr);

#[derive(Clone, PartialEq, Eq)]
enum Repr {
    /// Encoded for this send only.
    Owned(Vec<u8>),
    /// Shared with the gateway's buffer or the engine's kept commands, `skip` bytes in.
    Shared(Frame, usize),
}

impl OutFrame {
    pub(crate) fn owned(bytes: Vec<u8>) -> Self {
        Self(Repr::Owned(bytes))
    }

    pub(crate) fn shared(frame: Frame, skip: usize) -> Self {
        Self(Repr::Shared(frame, skip))
    }

    /// A copy of the bytes.
    #[must_use]
    pub fn to_vec(&self) -> Vec<u8> {
        self.as_ref().to_vec()
    }

    /// The bytes, moved out without a copy when they are not shared.
    #[must_use]
    pub fn into_vec(self) -> Vec<u8> {
        match self.0 {
            Repr::Owned(bytes) => bytes,
            Repr::Shared(frame, skip) => frame.get(skip..).unwrap_or_default().to_vec(),
        }
    }
}

impl Deref for OutFrame {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Owned(bytes) => bytes,
            Repr::Shared(frame, skip) => frame.get(*skip..).unwrap_or_default(),
        }
    }
}

impl AsRef<[u8]> for OutFrame {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl fmt::Debug for OutFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OutFrame({} bytes)", self.len())
    }
}

/// Why the engine closes a runner connection ([`Action::CloseConnection`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnCloseReason {
    /// No `ToServerInit` within [`ControlConfig::init_timeout`](super::ControlConfig::init_timeout).
    InitTimeout,
    /// A ping went unanswered for [`ControlConfig::ping_timeout`](super::ControlConfig::ping_timeout).
    PingTimeout,
    /// A newer connection with the same runner key took over (upstream's `ws.eviction`).
    Evicted,
    /// The runner limit was reached at the handshake.
    TooManyRunners,
}

impl ConnCloseReason {
    /// The WebSocket close reason upstream uses for it.
    #[must_use]
    pub fn reason(self) -> &'static str {
        match self {
            Self::InitTimeout => "ws.init_timeout",
            Self::PingTimeout => "ws.timeout",
            Self::Evicted => "ws.eviction",
            Self::TooManyRunners => "ws.too_many_runners",
        }
    }
}

/// Why an actor stopped ([`Action::ActorStopped`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// The runner reported `ActorStateStopped`.
    Stopped {
        /// The code it reported (the official TypeScript runner reports `Error` for every stop it
        /// did not ask for itself).
        code: StopCode,
        /// Its message.
        message: Option<String>,
    },
    /// No `Stopped` within [`ControlConfig::actor_stop_threshold`](super::ControlConfig::actor_stop_threshold).
    StopTimeout,
    /// No `Running` within [`ControlConfig::actor_start_timeout`](super::ControlConfig::actor_start_timeout).
    StartTimeout,
    /// Its runner was lost.
    RunnerLost,
    /// (Cluster) It ran on another node, which reported it stopped
    /// ([`Control::stopped_elsewhere`](super::Control::stopped_elsewhere)).
    Elsewhere,
}

/// Why an open never reached the gateway ([`Action::OpenFailed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenFailure {
    /// The actor was destroyed while the open waited for it.
    ActorDestroyed,
    /// The actor failed to start while the open waited for it.
    ActorStartFailed,
    /// The gateway refused it once the actor ran.
    Gateway(gateway::OpenError),
}

/// Something the caller must do, drained with [`Control::poll_action`](super::Control::poll_action),
/// in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Send `frame` (a plain `ToClient` message) on the runner connection `conn`. Frames of one
    /// connection must be sent in the order emitted.
    Send {
        /// The connection.
        conn: ConnId,
        /// The bytes.
        frame: OutFrame,
    },
    /// Close the runner connection `conn`. The engine has already forgotten it: do not report
    /// [`runner_disconnected`](super::Control::runner_disconnected) for it.
    CloseConnection {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: ConnCloseReason,
    },
    /// A client-side action of the gateway: `SendToClient`, `CloseClient`, `Opened`,
    /// `Hibernated`, `ClientWritable`, `Closed`. The engine handles the gateway's publishes, wake
    /// requests and hibernating records itself.
    Gateway(gateway::Action),
    /// A client open that waited for its actor failed; no gateway request exists for it. Close
    /// the client.
    OpenFailed {
        /// The request.
        request_id: RequestId,
        /// Its actor.
        actor_id: String,
        /// Why.
        reason: OpenFailure,
    },
    /// A runner completed its handshake.
    RunnerConnected {
        /// The connection.
        conn: ConnId,
        /// The runner id it was given.
        runner_id: String,
        /// Whether it is a known runner coming back within its lost threshold (its actors kept).
        resumed: bool,
    },
    /// A runner was without a connection for the lost threshold: its actors stopped.
    RunnerLost {
        /// The runner.
        runner_id: String,
    },
    /// An actor reported `Running`; its hibernating requests were woken.
    ActorRunning {
        /// The actor.
        actor_id: String,
        /// Its generation.
        generation: u32,
        /// Where it runs.
        runner_id: String,
    },
    /// An actor stopped: its hibernatable requests hibernate, its other requests closed.
    ActorStopped {
        /// The actor.
        actor_id: String,
        /// The generation that stopped.
        generation: u32,
        /// Why.
        reason: StopReason,
    },
    /// An actor was destroyed (its stop intent, or
    /// [`destroy_actor`](super::Control::destroy_actor)); its requests were closed.
    ActorDestroyed {
        /// The actor.
        actor_id: String,
    },
    /// An actor set (`Some`) or cleared (`None`) its alarm, milliseconds since the Unix epoch.
    /// The engine does not keep alarms: start the actor at that time if wanted.
    AlarmSet {
        /// The actor.
        actor_id: String,
        /// The alarm.
        alarm_ts: Option<i64>,
    },
    /// (Cluster) Publish `frame`, a versioned `ToRunner` tunnel frame of this node's gateway, to
    /// the node holding the runner behind the remote `route`
    /// ([`Control::remote_runner`](super::Control::remote_runner) names both); that node hands
    /// it to [`Control::handle_forwarded_frame`](super::Control::handle_forwarded_frame). Frames of
    /// one route must be published in the order emitted; a lost frame is healed by the
    /// protocol's replay and retransmission.
    PublishRemote {
        /// The remote route.
        route: RouteId,
        /// The versioned `ToRunner` bytes, shared with the gateway's replay buffer.
        frame: Frame,
    },
    /// (Cluster) A local runner's tunnel message for another node's gateway, as a versioned
    /// `ToGateway` frame: publish it to `gateway_id`'s node, which hands it to
    /// [`Control::handle_remote_frame`](super::Control::handle_remote_frame).
    ForwardToGateway {
        /// The gateway named in the message id.
        gateway_id: GatewayId,
        /// The local runner that sent it (the receiving gateway's route is this node and this
        /// runner: [`Control::remote_route`](super::Control::remote_route)).
        runner_id: String,
        /// The versioned `ToGateway` bytes.
        frame: Vec<u8>,
    },
    /// (Cluster) The actor must run and the engine does not place it: decide where (shared
    /// placement state), then call [`Control::place_here`](super::Control::place_here) for a
    /// local runner, or [`Control::running_elsewhere`](super::Control::running_elsewhere) once it
    /// runs on another node.
    PlaceActor {
        /// The actor.
        actor_id: String,
    },
    /// (Cluster) A hibernating-request record of this node's gateway was written (`live`) or
    /// deleted: keep it in the shared state, so whichever node starts the actor lists it in
    /// `CommandStartActor`.
    HibernatingRecord {
        /// The actor.
        actor_id: String,
        /// The request.
        request_id: RequestId,
        /// Written (`true`) or deleted.
        live: bool,
    },
    /// A runner's KV request. The engine does not implement KV: answer it with
    /// [`kv_response`](super::Control::kv_response).
    KvRequest {
        /// The connection.
        conn: ConnId,
        /// The request.
        request: ToServerKvRequest,
    },
}
