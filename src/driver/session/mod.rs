//! The runner side's tokio adapter: a [`Session`] connected to an engine's runner endpoint over
//! a WebSocket (feature `tungstenite`).
//!
//! [`SessionDriver`] connects to `<endpoint>/runners/connect?protocol_version=7&namespace=…&runner_key=…`
//! with the subprotocol `rivet` (and `rivet_token.<token>` when a token is set), exactly as the
//! official TypeScript runner does ([`ConnectOptions`]). Frames on that socket are plain
//! `ToClient`/`ToServer` messages. When the connection ends it reconnects with a bounded
//! backoff ([`Backoff`]) under the same runner key: an engine that still knows the key keeps the
//! runner's actors, and the session resends every event the engine has not acknowledged; an
//! engine that gives a new runner id has stopped them, and the session stops them here too.
//!
//! # Shape
//!
//! The same as [`driver::tokio`](crate::driver::tokio): the session sits behind a short critical
//! section; the task that reads the WebSocket hands each frame to it in place; the frames it
//! produces go to a bounded [`Outbox`](crate::driver::tokio::Outbox) that the same task writes a
//! batch at a time with one flush; one generic timer loop fires its deadlines. App calls
//! ([`SessionHandle`]) run in the caller's task, inside the same critical section.
//!
//! # The app's side
//!
//! [`SessionEvents`] yields every [`SessionEvent`] in order; the app answers through the
//! cloneable [`SessionHandle`]:
//!
//! | event | the app |
//! |---|---|
//! | [`StartActor`](SessionEvent::StartActor) | loads the actor's persisted sockets, then [`restore`](SessionHandle::restore) |
//! | [`Open`](SessionEvent::Open) | [`accept`](SessionHandle::accept) or [`reject`](SessionHandle::reject) |
//! | [`Restored`](SessionEvent::Restored), [`Message`](SessionEvent::Message) | its logic; [`send`](SessionHandle::send), [`close`](SessionHandle::close) |
//! | [`Persist`](SessionEvent::Persist) | one atomic write of the socket's indices with the state they cover, then [`persisted`](SessionHandle::persisted) (this acknowledges the messages) or [`persist_failed`](SessionHandle::persist_failed) |
//! | [`DeleteMetadata`](SessionEvent::DeleteMetadata) | deletes the socket's record |
//! | [`ActorStopped`](SessionEvent::ActorStopped) | drops the actor's state |
//!
//! and on its own initiative [`sleep_actor`](SessionHandle::sleep_actor),
//! [`stop_actor`](SessionHandle::stop_actor), [`actor_failed`](SessionHandle::actor_failed),
//! [`drain`](SessionHandle::drain), or anything else on the session with
//! [`call`](SessionHandle::call).
//!
//! # Bounded queues
//!
//! * The app's queue ([`SessionOptions::app_queue`]): at half its limits the driver stops
//!   reading the WebSocket (the engine's frames wait in TCP) until the app catches up
//!   ([`DriverStats::paused_reads`]).
//! * The frames for the engine ([`SessionOptions::outbox`]): an app that sends a lot waits for
//!   [`SessionHandle::writable`] (at half the limits); a connection whose socket still does not
//!   drain them goes past the limits; the frames are dropped, the connection closes with
//!   [`Disconnect::OutboxFull`] and the driver reconnects (the session resends its events).
//! * While no connection is ready the session keeps its events and, within
//!   [`SessionConfig::max_offline_frames`](crate::session::SessionConfig::max_offline_frames),
//!   its tunnel frames, and sends them after the next handshake; anything else produced with no
//!   connection open is dropped and counted ([`DriverStats::frames_dropped_offline`]).
//!
//! # Across restarts
//!
//! A runner process that restarts (a crash, a deploy) must connect with a new runner key: an
//! engine that still knows the key would take the new process for the old session and keep the
//! actors it no longer has. The engine then declares the old runner lost after its threshold,
//! and the actors start again here, restored from storage. Outgoing (runner → client) indices
//! continue from the stored ones after a sleep; after a crash, the indices of what was sent
//! after the last persist are used again (engines accept that; nothing in the protocol relies
//! on them).
//!
//! # Example
//!
//! A runner connected to hws's own engine ([`driver::control`](crate::driver::control)) behind a
//! loopback WebSocket listener: a client opens a socket on actor `echo`, the engine starts the
//! actor on the runner, and the app echoes.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use hibernating_ws::control::{ActorSpec, Control, ControlConfig};
//! use hibernating_ws::driver::control::{ClientOutput, ControlDriver, ControlIo};
//! use hibernating_ws::driver::session::{ConnectOptions, SessionDriver, SessionEvent};
//! use hibernating_ws::driver::tokio::TokioClock;
//! use hibernating_ws::gateway::{Gateway, GatewayConfig, OpenRequest};
//! use hibernating_ws::session::{Session, SessionConfig};
//! use hibernating_ws::wire::{ActorConfig, GatewayId, KvRequestData, KvResponseData, RequestId};
//! # use hibernating_ws::driver::control::RunnerOutput;
//! # use tokio_tungstenite::tungstenite::{handshake::server::{Request, Response}, Message};
//! # use futures_util::{SinkExt, StreamExt};
//!
//! // The engine: hws's control engine, and a listener for runner WebSockets (hidden here; see
//! // tests/session_support/engine.rs).
//! struct NoKv;
//! impl ControlIo for NoKv {
//!     fn kv(&mut self, _: &str, _: KvRequestData) -> KvResponseData { KvResponseData::Drop }
//! }
//! let clock = TokioClock::new();
//! let gateway = Gateway::new(GatewayConfig::default(), GatewayId(*b"gw01"), clock.now())?;
//! let engine = Control::new(ControlConfig::default(), gateway, 1, clock.now())?;
//! let (engine, _task) = ControlDriver::spawn(engine, NoKv, clock);
//! let config = ActorConfig { name: "echo".into(), key: None, create_ts: 0, input: None };
//! let spec = ActorSpec { runner_name: "echoes".into(), config };
//! engine.call(move |c, now| c.create_actor(now, "echo", spec))??;
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let endpoint = format!("http://{}", listener.local_addr()?);
//! # let accept = engine.clone();
//! # tokio::spawn(async move {
//! #     let (tcp, _) = listener.accept().await.unwrap();
//! #     let ws = tokio_tungstenite::accept_hdr_async(tcp, |_: &Request, mut r: Response| {
//! #         r.headers_mut().insert("sec-websocket-protocol", "rivet".parse().unwrap());
//! #         Ok(r)
//! #     }).await.unwrap();
//! #     let (sender, mut events) = accept.runner_connected("runner-1").unwrap();
//! #     let (mut sink, mut stream) = ws.split();
//! #     tokio::spawn(async move {
//! #         while let Some(RunnerOutput::Frame(f)) = futures_util::StreamExt::next(&mut events).await {
//! #             if sink.send(Message::Binary(f.into_vec().into())).await.is_err() { return; }
//! #         }
//! #     });
//! #     while let Some(Ok(Message::Binary(b))) = stream.next().await {
//! #         let _ = sender.frame(&b);
//! #     }
//! # });
//!
//! // The runner: a session, connected by the driver.
//! let clock = TokioClock::new();
//! let session = Session::new(SessionConfig::new("echoes", 8), clock.now())?;
//! let connect = ConnectOptions::new(endpoint, "default", "runner-1");
//! let (runner, mut events, runner_task) = SessionDriver::spawn(session, connect, clock);
//!
//! // The app: restores every actor with no sockets, accepts every socket, echoes.
//! let app = runner.clone();
//! tokio::spawn(async move {
//!     while let Some(event) = events.recv().await {
//!         match event {
//!             SessionEvent::StartActor { actor_id, .. } => {
//!                 app.restore(&actor_id, vec![])?;
//!             }
//!             SessionEvent::Open { socket, .. } => app.accept(socket, false)?,
//!             SessionEvent::Message { socket, data, binary, .. } => {
//!                 app.send(socket, &data, binary)?;
//!             }
//!             _ => {}
//!         }
//!     }
//!     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
//! });
//!
//! // A client opens a WebSocket on the actor: the engine starts it on the runner.
//! let open = OpenRequest::new("echo", "/")?;
//! let (mut client, mut to_client) = engine.open(RequestId(*b"req1"), open)?;
//! client.message(b"hello", false).await?; // waits until the runner accepted the socket
//! let echo = to_client.recv().await;
//! assert!(matches!(echo, Some(ClientOutput::Message { data, .. }) if data == "hello"));
//!
//! runner.shutdown();
//! let session = runner_task.await?;
//! assert_eq!(session.runner().stats().delivered, 1);
//! # Ok(())
//! # }
//! ```

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::time::Duration;

use ::tokio::sync::watch;
use ::tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::close::CloseFrame;
use crate::driver::tokio::run::{CrashGuard, Shared, run};
use crate::driver::tokio::{CommandError, QueueLimits, Stopped, TokioClock};
use crate::index::MessageIndex;
use crate::runner::{self, PersistedSocket, RestoreSummary, SocketId};
use crate::session::{Session, SessionError};
use crate::time::Timestamp;

mod conn;
mod connect;
mod envoy;
mod events;
mod state;

pub use connect::{
    Backoff, ConnectOptions, ENVOY_PROTOCOL_VERSION, EnvoyParams, PROTOCOL_VERSION, Protocol,
    RequestError, SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX, WireVersion,
};
pub use envoy::EnvoyFrameError;
pub use events::{Disconnect, SessionEvent, SessionEvents};
pub use state::DriverStats;

use state::SessionState;

/// Options of a [`SessionDriver`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct SessionOptions {
    /// Limits of the app's queue ([`QueueLimits::APP`] by default). At half of them the driver
    /// stops reading the engine until the app catches up.
    pub app_queue: QueueLimits,
    /// Limits of one connection's outgoing frames ([`QueueLimits::LINK`] by default). Past them
    /// the connection closes with [`Disconnect::OutboxFull`].
    pub outbox: QueueLimits,
    /// How long to wait between connection attempts.
    pub backoff: Backoff,
    /// A connection from which no frame arrived for this long is closed with
    /// [`Disconnect::Idle`] and made again (`None`, the default: never; engines ping their
    /// runners every few seconds, so a few ping intervals is a sensible value).
    pub idle_timeout: Option<Duration>,
    /// The WebSocket's buffers and message limits (tungstenite's defaults, with a 64 KiB read
    /// buffer).
    pub websocket: WebSocketConfig,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            app_queue: QueueLimits::APP,
            outbox: QueueLimits::LINK,
            backoff: Backoff::default(),
            idle_timeout: None,
            websocket: WebSocketConfig::default().read_buffer_size(64 << 10),
        }
    }
}

impl SessionOptions {
    /// These options with `backoff`.
    #[must_use]
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// These options with `limits` for the app's queue.
    #[must_use]
    pub fn with_app_queue(mut self, limits: QueueLimits) -> Self {
        self.app_queue = limits;
        self
    }

    /// These options with `limits` for each connection's outgoing frames.
    #[must_use]
    pub fn with_outbox(mut self, limits: QueueLimits) -> Self {
        self.outbox = limits;
        self
    }

    /// These options with an idle timeout.
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }
}

/// Drives a [`Session`] over a WebSocket to an engine. See the [module docs](self).
pub struct SessionDriver {
    shared: Arc<Shared<SessionState>>,
    connect: ConnectOptions,
    options: SessionOptions,
    stop: watch::Receiver<bool>,
}

impl core::fmt::Debug for SessionDriver {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SessionDriver")
            .field("connect", &self.connect)
            .finish_non_exhaustive()
    }
}

impl SessionDriver {
    /// A driver, its handle and the app's events. Build `session` with `clock.now()`. Nothing
    /// connects until [`run`](Self::run) is polled (or use [`spawn`](Self::spawn)).
    pub fn new(
        session: Session,
        connect: ConnectOptions,
        clock: TokioClock,
        options: SessionOptions,
    ) -> (Self, SessionHandle, SessionEvents) {
        let state = SessionState::new(session, options.app_queue, options.outbox);
        let shared = Shared::new(state, clock);
        let (stop_tx, stop) = watch::channel(false);
        let handle = SessionHandle {
            token: Arc::new(HandleToken {
                shared: shared.clone(),
                stop: stop_tx,
            }),
        };
        let events = SessionEvents {
            shared: shared.clone(),
        };
        let driver = Self {
            shared,
            connect,
            options,
            stop,
        };
        (driver, handle, events)
    }

    /// [`new`](Self::new) with the default options, then [`run`](Self::run) on a new task.
    /// Aborting the task is a crash: the socket drops, nothing more is persisted or sent.
    pub fn spawn(
        session: Session,
        connect: ConnectOptions,
        clock: TokioClock,
    ) -> (SessionHandle, SessionEvents, JoinHandle<Session>) {
        Self::spawn_with(session, connect, clock, SessionOptions::default())
    }

    /// [`spawn`](Self::spawn) with `options`.
    pub fn spawn_with(
        session: Session,
        connect: ConnectOptions,
        clock: TokioClock,
        options: SessionOptions,
    ) -> (SessionHandle, SessionEvents, JoinHandle<Session>) {
        let (driver, handle, events) = Self::new(session, connect, clock, options);
        (handle, events, ::tokio::spawn(driver.run()))
    }

    /// Connects, reconnects and runs the session's timer until [`SessionHandle::shutdown`] or
    /// until every handle is dropped; returns the session. The connection and the timer run in
    /// this one future: dropping it before it returned (an aborted task) drops the socket and
    /// the session abruptly, like a crash.
    pub fn run(self) -> impl Future<Output = Session> + Send + 'static {
        let timer = run(CrashGuard::new(self.shared.clone()));
        let connection = conn::connection_loop(self.shared, self.connect, self.options, self.stop);
        async move {
            let (session, ()) = ::tokio::join!(timer, connection);
            session
        }
    }
}

/// Cloneable handle to a [`SessionDriver`]: app calls, run in the calling task. Dropping the
/// last handle shuts the driver down.
#[derive(Clone)]
pub struct SessionHandle {
    token: Arc<HandleToken>,
}

/// Shared by the clones of one [`SessionHandle`]; the last one to go stops the driver.
struct HandleToken {
    shared: Arc<Shared<SessionState>>,
    stop: watch::Sender<bool>,
}

impl HandleToken {
    fn shutdown(&self) {
        let _ = self.stop.send(true);
        self.shared.shutdown();
    }
}

impl Drop for HandleToken {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl core::fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SessionHandle").finish_non_exhaustive()
    }
}

impl SessionHandle {
    /// Runs `f` on the session with the current time, then performs the actions it caused.
    ///
    /// # Errors
    /// [`Stopped`].
    pub fn call<R>(&self, f: impl FnOnce(&mut Session, Timestamp) -> R) -> Result<R, Stopped> {
        self.token
            .shared
            .with(|s, now| s.engine.as_mut().map(|e| f(e, now)))?
            .ok_or(Stopped)
    }

    /// Runs `f` on the session's tunnel engine ([`Session::runner_mut`]).
    fn runner<R, E>(
        &self,
        f: impl FnOnce(&mut runner::Runner, Timestamp) -> Result<R, E>,
    ) -> Result<R, CommandError<E>> {
        self.call(|s, now| f(s.runner_mut(), now))?
            .map_err(CommandError::Engine)
    }

    /// The actor's persisted sockets are loaded: restore them and process what queued
    /// meanwhile ([`Session::restore`]). Answer every [`SessionEvent::StartActor`] with it.
    ///
    /// # Errors
    /// [`CommandError::Engine`] with [`SessionError::UnknownActor`] or
    /// [`SessionError::Runner`]; [`CommandError::Stopped`].
    pub fn restore(
        &self,
        actor_id: &str,
        persisted: Vec<PersistedSocket>,
    ) -> Result<RestoreSummary, CommandError<SessionError>> {
        self.call(|s, now| s.restore(now, actor_id, persisted))?
            .map_err(CommandError::Engine)
    }

    /// Accepts an [`SessionEvent::Open`]; `can_hibernate` makes it survive the actor sleeping
    /// (a [`SessionEvent::Persist`] follows at once).
    ///
    /// # Errors
    /// [`CommandError::Engine`] with the runner's [`SocketError`](runner::SocketError);
    /// [`CommandError::Stopped`].
    pub fn accept(
        &self,
        socket: SocketId,
        can_hibernate: bool,
    ) -> Result<(), CommandError<runner::SocketError>> {
        self.runner(|r, now| r.accept(now, socket, can_hibernate))
    }

    /// Rejects an [`SessionEvent::Open`] with `frame`.
    ///
    /// # Errors
    /// As [`accept`](Self::accept).
    pub fn reject(
        &self,
        socket: SocketId,
        frame: CloseFrame,
    ) -> Result<(), CommandError<runner::SocketError>> {
        self.runner(|r, now| r.reject(now, socket, frame))
    }

    /// Sends a message to the client; returns the outgoing index it took.
    ///
    /// # Errors
    /// [`CommandError::Engine`] with the runner's [`SendError`](runner::SendError);
    /// [`CommandError::Stopped`].
    pub fn send(
        &self,
        socket: SocketId,
        data: &[u8],
        binary: bool,
    ) -> Result<MessageIndex, CommandError<runner::SendError>> {
        self.runner(|r, now| r.send(now, socket, data, binary))
    }

    /// Closes the socket with `frame`.
    ///
    /// # Errors
    /// As [`accept`](Self::accept).
    pub fn close(
        &self,
        socket: SocketId,
        frame: CloseFrame,
    ) -> Result<(), CommandError<runner::SocketError>> {
        self.runner(|r, now| r.close(now, socket, frame))
    }

    /// The write a [`SessionEvent::Persist`] asked for is durable: the runner acknowledges the
    /// client's messages up to `server_index`.
    ///
    /// # Errors
    /// As [`accept`](Self::accept).
    pub fn persisted(
        &self,
        socket: SocketId,
        server_index: MessageIndex,
    ) -> Result<(), CommandError<runner::SocketError>> {
        self.runner(|r, now| r.persisted(now, socket, server_index))
    }

    /// The write a [`SessionEvent::Persist`] asked for failed: the runner retries later and
    /// acknowledges nothing meanwhile.
    ///
    /// # Errors
    /// As [`accept`](Self::accept).
    pub fn persist_failed(
        &self,
        socket: SocketId,
        server_index: MessageIndex,
    ) -> Result<(), CommandError<runner::SocketError>> {
        self.runner(|r, now| r.persist_failed(now, socket, server_index))
    }

    /// The actor wants to sleep: the engine answers with a stop ([`Session::sleep_actor`]).
    ///
    /// # Errors
    /// [`CommandError::Engine`] with [`SessionError::UnknownActor`] or
    /// [`SessionError::EventBacklogFull`]; [`CommandError::Stopped`].
    pub fn sleep_actor(&self, actor_id: &str) -> Result<(), CommandError<SessionError>> {
        self.call(|s, now| s.sleep_actor(now, actor_id))?
            .map_err(CommandError::Engine)
    }

    /// The actor wants to be destroyed: the engine answers with a stop
    /// ([`Session::stop_actor`]).
    ///
    /// # Errors
    /// As [`sleep_actor`](Self::sleep_actor).
    pub fn stop_actor(&self, actor_id: &str) -> Result<(), CommandError<SessionError>> {
        self.call(|s, now| s.stop_actor(now, actor_id))?
            .map_err(CommandError::Engine)
    }

    /// The actor failed: it stops here at once and reports an error stop
    /// ([`Session::actor_failed`]).
    ///
    /// # Errors
    /// [`CommandError::Engine`] with [`SessionError::UnknownActor`] or
    /// [`SessionError::Runner`]; [`CommandError::Stopped`].
    pub fn actor_failed(
        &self,
        actor_id: &str,
        message: Option<String>,
    ) -> Result<(), CommandError<SessionError>> {
        self.call(|s, now| s.actor_failed(now, actor_id, message))?
            .map_err(CommandError::Engine)
    }

    /// The runner is going away: the engine places nothing new here and stops its actors
    /// ([`Session::drain`]). Call [`shutdown`](Self::shutdown) once they stopped.
    ///
    /// # Errors
    /// [`Stopped`].
    pub fn drain(&self) -> Result<(), Stopped> {
        self.call(Session::drain)
    }

    /// Waits while the current connection's outgoing frames are at half their limits
    /// ([`SessionOptions::outbox`]): an app that sends a lot calls it before sending, so the
    /// connection is not dropped with [`Disconnect::OutboxFull`]. Returns at once while no
    /// connection is open (the session keeps its frames then).
    ///
    /// # Errors
    /// [`Stopped`].
    pub async fn writable(&self) -> Result<(), Stopped> {
        let shared = &self.token.shared;
        loop {
            let room = shared.room.notified();
            let mut room = core::pin::pin!(room);
            room.as_mut().enable();
            {
                let slot = shared.lock();
                if slot.is_stopping() || slot.state.engine.is_none() {
                    return Err(Stopped);
                }
                let full = slot.state.outbox.as_ref().is_some_and(|o| {
                    let (bytes, frames) = o.len();
                    slot.state.outbox_limits.soft(bytes, frames)
                });
                if !full {
                    return Ok(());
                }
            }
            room.await;
        }
    }

    /// The driver's counters and the app queue's fill level.
    pub fn stats(&self) -> DriverStats {
        self.token.shared.lock().state.stats()
    }

    /// Stops the driver: closes the connection (1000 `pegboard.runner_shutdown`), and the
    /// driver's future returns the session. Calls from now on get [`Stopped`];
    /// [`SessionEvents`] ends after what was queued.
    pub fn shutdown(&self) {
        self.token.shutdown();
    }
}
