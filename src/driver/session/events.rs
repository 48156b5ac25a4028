//! What the driver tells the app: [`SessionEvent`], in order, through the bounded
//! [`SessionEvents`] stream.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use futures_core::Stream;
use tokio_tungstenite::tungstenite;

use super::connect::RequestError;
use super::state::SessionState;
use crate::driver::tokio::QueueFull;
use crate::driver::tokio::run::Shared;
use crate::index::MessageIndex;
use crate::runner::{self, SocketId};
use crate::session;
use crate::wire::{ActorConfig, Headers, HibernatingRequest, ProtocolMetadata, ToClientKvResponse};

/// Something the app must know or do, in the order it happened. Socket events are the
/// [`Runner`](crate::runner::Runner)'s actions; actor events the
/// [`Session`](crate::session::Session)'s; connection events the driver's own.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SessionEvent {
    /// The engine answered the handshake on a new connection.
    Connected {
        /// The runner id it gave.
        runner_id: String,
        /// Timings the engine asks for.
        metadata: ProtocolMetadata,
        /// The id differs from the previous one: the engine dropped the previous id's actors,
        /// and they stop here too (an [`ActorStopped`](Self::ActorStopped) comes for each).
        new_id: bool,
    },
    /// The connection ended or could not be made.
    Disconnected {
        /// Why.
        reason: Disconnect,
        /// When the driver tries again; `None`: it does not (evicted, attempts exhausted, or
        /// shutting down).
        reconnect_in: Option<Duration>,
    },
    /// The runner was disconnected longer than the engine's lost threshold: the engine stopped
    /// its actors, and they stop here too (an [`ActorStopped`](Self::ActorStopped) comes for
    /// each once its sockets settled).
    Lost,
    /// Start the actor: load its persisted sockets and call
    /// [`SessionHandle::restore`](super::SessionHandle::restore) (with an empty list if there
    /// are none). Its tunnel messages queue until then.
    StartActor {
        /// The actor.
        actor_id: String,
        /// Its generation.
        generation: u32,
        /// Its configuration.
        config: ActorConfig,
        /// The gateway's list of its hibernating requests.
        hibernating_requests: Vec<HibernatingRequest>,
    },
    /// The actor stopped here: every hibernatable socket was persisted, the others closed.
    /// Drop its state; it may start again later, here or elsewhere.
    ActorStopped {
        /// The actor.
        actor_id: String,
        /// Its generation.
        generation: u32,
    },
    /// A client opened a WebSocket on the actor: answer with
    /// [`accept`](super::SessionHandle::accept) or [`reject`](super::SessionHandle::reject).
    Open {
        /// The socket.
        socket: SocketId,
        /// Its actor.
        actor_id: String,
        /// The gateway's index of the open.
        index: MessageIndex,
        /// Request path of the upgrade.
        path: String,
        /// Upgrade request headers.
        headers: Headers,
    },
    /// A hibernated socket was restored by [`restore`](super::SessionHandle::restore).
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
        /// Binary (`true`) or text.
        binary: bool,
    },
    /// Store the socket's metadata with these indices, together with the app state they cover,
    /// in one atomic write; then call [`persisted`](super::SessionHandle::persisted) (which
    /// acknowledges up to `server_index`) or [`persist_failed`](super::SessionHandle::persist_failed).
    Persist {
        /// The socket.
        socket: SocketId,
        /// Its actor.
        actor_id: String,
        /// Last delivered gateway index.
        server_index: MessageIndex,
        /// The outgoing index a restored socket starts at (store it as given).
        client_index: MessageIndex,
    },
    /// Delete the socket's stored metadata.
    DeleteMetadata {
        /// The socket.
        socket: SocketId,
        /// Its actor.
        actor_id: String,
    },
    /// The socket closed here; nothing follows for it.
    Closed {
        /// The socket.
        socket: SocketId,
        /// Why.
        reason: runner::CloseReason,
    },
    /// The engine answered a KV request.
    KvResponse(ToClientKvResponse),
}

/// `match $value { .. }` where each variant named moves field by field into the
/// [`SessionEvent`] variant of the same name (`$from` names the source enum); the arms after `;`
/// are the other variants'.
macro_rules! same_variants {
    ($value:expr, $from:ident: $($variant:ident { $($field:ident),* }),+; $($rest:tt)*) => {
        match $value {
            $($from::$variant { $($field),* } => Self::$variant { $($field),* },)+
            $($rest)*
        }
    };
}

impl SessionEvent {
    /// The event for a session action (`None` for `Send`, which the driver writes).
    pub(super) fn from_action(action: session::Action) -> Option<Self> {
        use session::Action as A;
        Some(same_variants!(action, A:
            Connected { runner_id, metadata, new_id },
            StartActor { actor_id, generation, config, hibernating_requests },
            ActorStopped { actor_id, generation };
            A::Send { .. } => return None,
            A::KvResponse(response) => Self::KvResponse(response),
            A::Lost => Self::Lost,
            A::Runner(action) => Self::from_runner(action)?,
        ))
    }

    fn from_runner(action: runner::Action) -> Option<Self> {
        use runner::Action as A;
        Some(same_variants!(action, A:
            Open { socket, actor_id, index, path, headers },
            Restored { socket, actor_id, server_index },
            Persist { socket, actor_id, server_index, client_index },
            DeleteMetadata { socket, actor_id },
            Closed { socket, reason };
            // The session turns publishes into sends, and reports stops itself.
            A::Publish { .. } | A::ActorStopped { .. } => return None,
            A::Message { socket, index, data, binary } => Self::Message {
                socket,
                index,
                data: Vec::from(data),
                binary,
            },
        ))
    }

    /// Bytes the event counts for in the app's queue.
    pub(super) fn queued_len(&self) -> usize {
        let payload = match self {
            Self::Message { data, .. } => data.len(),
            _ => 0,
        };
        payload + core::mem::size_of::<Self>()
    }
}

/// Why a connection ended ([`SessionEvent::Disconnected`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Disconnect {
    /// The upgrade request could not be built; the driver does not retry.
    Request(RequestError),
    /// The engine answered the upgrade with an HTTP error (401 or 403 for a refused token);
    /// the driver retries with its backoff.
    Refused {
        /// The HTTP status.
        status: u16,
    },
    /// Connecting (TCP, TLS or the WebSocket handshake) failed.
    ConnectFailed(Arc<tungstenite::Error>),
    /// The engine closed the WebSocket.
    Closed {
        /// The close code (1005 when the frame had none).
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// A newer connection with the same runner key took over (close reason `ws.eviction`); the
    /// driver does not reconnect.
    Evicted,
    /// Reading or writing the WebSocket failed.
    Socket(Arc<tungstenite::Error>),
    /// The stream ended without a close frame.
    Ended,
    /// The frames for the engine went past the outbox's limits (the socket did not drain);
    /// they were dropped with the connection.
    OutboxFull(QueueFull),
    /// No frame from the engine for
    /// [`SessionOptions::idle_timeout`](super::SessionOptions::idle_timeout).
    Idle,
}

/// The app's half of a session driver: every [`SessionEvent`], in order, as a [`Stream`].
/// Bounded: at half of [`SessionOptions::app_queue`](super::SessionOptions::app_queue) the driver
/// stops reading the engine's WebSocket until the app catches up. It ends once the driver
/// stopped and the queue is drained.
pub struct SessionEvents {
    pub(super) shared: Arc<Shared<SessionState>>,
}

impl core::fmt::Debug for SessionEvents {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SessionEvents").finish_non_exhaustive()
    }
}

impl SessionEvents {
    /// The next event; `None` once the driver stopped and the queue is drained.
    pub async fn recv(&mut self) -> Option<SessionEvent> {
        core::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Moves every queued event into `buf` (one critical section for the batch). Returns how
    /// many; 0 once the driver stopped and the queue is drained.
    pub async fn recv_many(&mut self, buf: &mut Vec<SessionEvent>) -> usize {
        core::future::poll_fn(|cx| self.poll_recv_many(cx, buf)).await
    }

    /// Polling form of [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<SessionEvent>> {
        let mut slot = self.shared.lock();
        let stopping = slot.is_stopping();
        let (event, freed) = slot.state.app.pop(cx, stopping);
        drop(slot);
        if freed {
            self.shared.room.notify_waiters();
        }
        event
    }

    /// Polling form of [`recv_many`](Self::recv_many).
    pub fn poll_recv_many(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut Vec<SessionEvent>,
    ) -> Poll<usize> {
        let mut slot = self.shared.lock();
        let stopping = slot.is_stopping();
        let (n, freed) = slot.state.app.pop_all(cx, buf, stopping);
        drop(slot);
        if freed {
            self.shared.room.notify_waiters();
        }
        n
    }
}

impl Stream for SessionEvents {
    type Item = SessionEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SessionEvent>> {
        self.get_mut().poll_recv(cx)
    }
}
