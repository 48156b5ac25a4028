//! The tokio adapter: one task per engine.
//!
//! * [`GatewayDriver`] drives a [`Gateway`]. Inputs come through a cloneable [`GatewayHandle`]
//!   (open a client, runner frames, actor and record events) and through the [`ClientSender`]
//!   of each client. Runner-bound and storage-bound actions go to a [`GatewayIo`] sink;
//!   client-bound actions go to that client's [`ClientEvents`].
//! * [`RunnerDriver`] drives a [`Runner`]. Inputs come through a cloneable [`RunnerHandle`]
//!   (gateway frames, app commands, actor life cycle, storage results); actions go to a
//!   [`RunnerIo`] sink.
//!
//! Time comes from a [`TokioClock`], which turns [`tokio::time::Instant`]
//! into [`Timestamp`]s, so a runtime with paused time (`#[tokio::test(start_paused = true)]`)
//! drives the engines' timers deterministically. The timer is one
//! [`sleep_until`](::tokio::time::sleep_until) re-armed only when the engine's deadline changes;
//! whether a deadline expired is decided by comparing the clock with it after every wake-up, never
//! by trusting that the sleep fired (quinn's `drive_timer`).
//!
//! # Backpressure
//!
//! The gateway adapter reads a client only through its [`ClientSender`]:
//! [`ClientSender::message`] waits until the runner accepted the WebSocket
//! ([`Action::Opened`](gateway::Action::Opened)) and while the engine refuses the client's
//! messages with [`SendError::Backpressure`]; it resumes after
//! [`Action::ClientWritable`](gateway::Action::ClientWritable), when the refused message is
//! handed to the engine again. A reader task that awaits `message` before reading the next frame
//! from its socket therefore stops reading that client (and TCP pushes back on it) while every
//! other client keeps flowing. Under [`OverflowPolicy::Close`](gateway::OverflowPolicy::Close) the
//! engine closes the offending request instead, and the client gets the close frame.
//!
//! # Commands
//!
//! Handle methods that call the engine return its result once the actions the call caused have
//! been handed to the sink (or to the clients), so a caller that awaits a command can rely on
//! its effects having been dispatched.
//!
//! # Sinks
//!
//! [`GatewayIo`] and [`RunnerIo`] methods are called from the driver task, synchronously, in the
//! order the engine emitted the actions. They must not block: hand the work to another task
//! (typically through an unbounded channel). The driver task itself never waits on anything but
//! its inputs and its timer, so two drivers connected through channels cannot deadlock on each
//! other. Memory in the gateway → runner direction stays bounded by the engine's pending limits
//! (a hibernatable request's published frames stay in its pending buffer until acked; replays
//! share those allocations).
//!
//! # Example
//!
//! A gateway and a runner connected in memory, with paused time.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use hibernating_ws::driver::tokio::{
//!     ClientOutput, GatewayDriver, GatewayIo, RunnerDriver, RunnerHandle, RunnerIo, TokioClock,
//! };
//! use hibernating_ws::gateway::{Frame, Gateway, GatewayConfig, OpenRequest, RouteId};
//! use hibernating_ws::runner::{Action, Runner, RunnerConfig};
//! use hibernating_ws::wire::{GatewayId, RequestId};
//! use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
//!
//! // The gateway publishes to the runner through a channel standing for the network.
//! struct ToRunner(UnboundedSender<Vec<u8>>);
//! impl GatewayIo for ToRunner {
//!     fn publish(&mut self, _: RouteId, _: RequestId, frame: Frame) {
//!         let _ = self.0.send(frame.into_vec());
//!     }
//!     fn request_wake(&mut self, _: RequestId, _: String) {}
//!     fn upsert_hibernating_record(&mut self, _: RequestId, _: String) {}
//!     fn delete_hibernating_record(&mut self, _: RequestId, _: String) {}
//! }
//! // The runner publishes to the gateway and hands app actions to the app task.
//! struct RunnerSide { to_gateway: UnboundedSender<Vec<u8>>, app: UnboundedSender<Action> }
//! impl RunnerIo for RunnerSide {
//!     fn publish(&mut self, _: GatewayId, frame: Vec<u8>) {
//!         let _ = self.to_gateway.send(frame);
//!     }
//!     fn app(&mut self, action: Action) {
//!         let _ = self.app.send(action);
//!     }
//! }
//!
//! let clock = TokioClock::new();
//! let (to_runner, mut runner_rx) = unbounded_channel();
//! let (to_gateway, mut gateway_rx) = unbounded_channel();
//! let (app_tx, mut app_rx) = unbounded_channel();
//!
//! let gateway = Gateway::new(GatewayConfig::default(), GatewayId([1; 4]), clock.now())?;
//! let (gw, gw_task) = GatewayDriver::spawn(gateway, ToRunner(to_runner), clock);
//! let runner = Runner::new(RunnerConfig::default(), clock.now())?;
//! let io = RunnerSide { to_gateway, app: app_tx };
//! let (rn, rn_task) = RunnerDriver::spawn(runner, io, clock);
//!
//! // The "network": frames flow both ways.
//! let rn2 = rn.clone();
//! tokio::spawn(async move { while let Some(f) = runner_rx.recv().await { let _ = rn2.frame(f).await; } });
//! let gw2 = gw.clone();
//! tokio::spawn(async move {
//!     while let Some(f) = gateway_rx.recv().await { let _ = gw2.runner_frame(RouteId(1), f).await; }
//! });
//!
//! // The app: an actor that accepts every socket and echoes every message.
//! rn.actor_starting("actor", Vec::new()).await?;
//! rn.restore("actor", Vec::new()).await?;
//! let app: RunnerHandle = rn.clone();
//! tokio::spawn(async move {
//!     while let Some(action) = app_rx.recv().await {
//!         match action {
//!             Action::Open { socket, .. } => { let _ = app.accept(socket, true).await; }
//!             Action::Message { socket, data, binary, .. } => { let _ = app.send(socket, data, binary).await; }
//!             Action::Persist { socket, server_index, .. } => { let _ = app.persisted(socket, server_index).await; }
//!             _ => {}
//!         }
//!     }
//! });
//!
//! // A client: open, wait for the accept, send, read the echo.
//! let open = OpenRequest { actor_id: "actor".into(), ..Default::default() };
//! let (mut sender, mut events) = gw.open(RequestId([7; 4]), RouteId(1), open).await?;
//! sender.message(b"hello".to_vec(), false).await?;
//! let echo = events.recv().await;
//! assert_eq!(echo, Some(ClientOutput::Message { data: b"hello".to_vec(), binary: false }));
//!
//! // The runner persists after its debounce (5 s of paused time) and acks: nothing is pending.
//! tokio::time::sleep(std::time::Duration::from_secs(6)).await;
//! assert_eq!(gw.stats().await?.pending_messages, 0);
//!
//! sender.close(None).await?;
//! gw.shutdown().await;
//! rn.shutdown().await;
//! let gateway = gw_task.await?;
//! assert_eq!(gateway.stats().closed_by_client, 1);
//! let _runner = rn_task.await?;
//! # Ok(())
//! # }
//! ```

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::pin::Pin;

use ::tokio::sync::{mpsc, oneshot, watch};
use ::tokio::task::JoinHandle;
use ::tokio::time::{Instant, Sleep};

use crate::close::CloseFrame;
use crate::gateway::{
    self, Frame, Gateway, GatewayStats, OpenError, OpenRequest, RequestInfo, RouteId, SendError,
    UnknownRequest, WakeError,
};
use crate::index::MessageIndex;
use crate::runner::{
    self, ActorError, PersistedSocket, RestoreSummary, Runner, RunnerStats, SocketError, SocketId,
    SocketInfo,
};
use crate::time::Timestamp;
use crate::wire::{GatewayId, HibernatingRequest, RequestId};

/// Capacity of a driver's input channel. Senders wait (asynchronously) when it is full.
pub const INPUT_CAPACITY: usize = 1024;

/// Most inputs a driver takes from its channel at once. They are handed to the engine one by
/// one, in order, with one clock reading, and the engine's actions are drained after each.
const INPUT_BATCH: usize = 64;

// ---------------------------------------------------------------------------------------------
// Clock and timer
// ---------------------------------------------------------------------------------------------

/// Turns tokio's clock into [`Timestamp`]s: the origin is the instant the clock was created.
///
/// It reads [`tokio::time::Instant`], so paused time in tests
/// (`start_paused = true`, `tokio::time::advance`) drives the engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokioClock {
    epoch: Instant,
}

impl TokioClock {
    /// A clock whose origin is now. Call it inside a runtime when time is paused.
    #[must_use]
    #[allow(clippy::disallowed_methods, clippy::new_without_default)] // the adapter owns the clock
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
        }
    }

    /// A clock whose origin is `epoch`.
    #[must_use]
    pub fn with_epoch(epoch: Instant) -> Self {
        Self { epoch }
    }

    /// The current [`Timestamp`].
    #[must_use]
    #[allow(clippy::disallowed_methods)] // the adapter owns the clock
    pub fn now(&self) -> Timestamp {
        self.timestamp(Instant::now())
    }

    /// The [`Timestamp`] of `instant` (instants before the origin map to zero).
    #[must_use]
    pub fn timestamp(&self, instant: Instant) -> Timestamp {
        Timestamp::ZERO.saturating_add(instant.saturating_duration_since(self.epoch))
    }

    /// The instant of `t` (saturating far in the future).
    #[must_use]
    pub fn instant(&self, t: Timestamp) -> Instant {
        let d = core::time::Duration::from_micros(t.as_micros());
        self.epoch
            .checked_add(d)
            .unwrap_or_else(|| self.epoch + core::time::Duration::from_secs(86_400 * 365 * 30))
    }
}

/// One `sleep_until`, re-armed only when the deadline changes.
struct Timer {
    sleep: Pin<alloc::boxed::Box<Sleep>>,
    armed: Option<Timestamp>,
}

impl Timer {
    fn new(clock: TokioClock) -> Self {
        Self {
            sleep: alloc::boxed::Box::pin(::tokio::time::sleep_until(clock.epoch)),
            armed: None,
        }
    }

    fn arm(&mut self, clock: &TokioClock, deadline: Option<Timestamp>) {
        if deadline != self.armed {
            if let Some(d) = deadline {
                self.sleep.as_mut().reset(clock.instant(d));
            }
            self.armed = deadline;
        }
    }

    /// Completes when the armed sleep does; never when nothing is armed. Afterwards the timer
    /// counts as unarmed, so the next [`arm`](Self::arm) resets it even to the same deadline
    /// (a sleep that completed early cannot spin).
    async fn wait(&mut self) {
        if self.armed.is_some() {
            self.sleep.as_mut().await;
            self.armed = None;
        } else {
            core::future::pending::<()>().await;
        }
    }
}

/// The driver task is gone: it was shut down, or it panicked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, thiserror::Error)]
#[error("the driver has stopped")]
pub struct Stopped;

/// Why a command sent through a handle failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError<E> {
    /// The driver task is gone.
    #[error("the driver has stopped")]
    Stopped,
    /// The engine refused the command.
    #[error(transparent)]
    Engine(E),
}

impl<E> From<Stopped> for CommandError<E> {
    fn from(_: Stopped) -> Self {
        Self::Stopped
    }
}

/// Sends a closure to a driver and waits for its result.
async fn call<T, R, Input>(
    tx: &mpsc::Sender<Input>,
    wrap: impl FnOnce(Call<T>) -> Input,
    f: impl FnOnce(&mut T, Timestamp) -> R + Send + 'static,
) -> Result<R, Stopped>
where
    R: Send + 'static,
{
    let (reply, rx) = oneshot::channel();
    let call: Call<T> = alloc::boxed::Box::new(move |engine, now| {
        let result = f(engine, now);
        alloc::boxed::Box::new(move || {
            let _ = reply.send(result);
        })
    });
    tx.send(wrap(call)).await.map_err(|_| Stopped)?;
    rx.await.map_err(|_| Stopped)
}

/// A command: a closure run by the driver on its engine, with `now`. It returns the reply, which
/// the driver sends once the actions the command caused were handed to the sink.
type Call<T> = alloc::boxed::Box<dyn FnOnce(&mut T, Timestamp) -> Reply + Send>;

/// Sends a command's result.
type Reply = alloc::boxed::Box<dyn FnOnce() + Send>;

// ---------------------------------------------------------------------------------------------
// Gateway
// ---------------------------------------------------------------------------------------------

/// Where the gateway driver sends the actions that are not for a client.
///
/// Called from the driver task, in order; must not block (see the [module docs](self)).
pub trait GatewayIo: Send + 'static {
    /// [`Action::Publish`](gateway::Action::Publish): send `frame` (a versioned `ToRunner`) to the
    /// runner behind `route`.
    fn publish(&mut self, route: RouteId, request_id: RequestId, frame: Frame);
    /// [`Action::RequestWake`](gateway::Action::RequestWake): start the actor somewhere, then call
    /// [`GatewayHandle::wake`] with its route.
    fn request_wake(&mut self, request_id: RequestId, actor_id: String);
    /// [`Action::UpsertHibernatingRecord`](gateway::Action::UpsertHibernatingRecord): write the
    /// record, then report with [`GatewayHandle::record_upserted`] or
    /// [`GatewayHandle::record_failed`].
    fn upsert_hibernating_record(&mut self, request_id: RequestId, actor_id: String);
    /// [`Action::DeleteHibernatingRecord`](gateway::Action::DeleteHibernatingRecord).
    fn delete_hibernating_record(&mut self, request_id: RequestId, actor_id: String);
    /// [`Action::Opened`](gateway::Action::Opened) (the client's sender is released).
    fn opened(&mut self, request_id: RequestId, hibernatable: bool) {
        let _ = (request_id, hibernatable);
    }
    /// [`Action::Hibernated`](gateway::Action::Hibernated).
    fn hibernated(&mut self, request_id: RequestId) {
        let _ = request_id;
    }
    /// [`Action::Closed`](gateway::Action::Closed) (the client's channels are closed).
    fn closed(&mut self, request_id: RequestId, reason: &gateway::CloseReason) {
        let _ = (request_id, reason);
    }
    /// A runner frame was dropped (already counted in [`GatewayStats`]).
    fn receive_error(&mut self, route: RouteId, error: &gateway::ReceiveError) {
        let _ = (route, error);
    }
    /// A client message was refused for a reason other than backpressure (the request was closed
    /// by a limit, or it is gone); the message was dropped.
    fn send_error(&mut self, request_id: RequestId, error: &SendError) {
        let _ = (request_id, error);
    }
}

/// What the gateway sends to a client ([`ClientEvents::recv`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientOutput {
    /// A WebSocket message from the actor.
    Message {
        /// Payload.
        data: Vec<u8>,
        /// Binary (`true`) or text (`false`).
        binary: bool,
    },
    /// Close the client's WebSocket with this frame. Nothing follows.
    Close(CloseFrame),
}

/// Whether a client may be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Not yet opened, or backpressured: wait.
    Wait,
    /// Read.
    Open,
    /// The request is gone.
    Closed,
}

enum GatewayInput {
    Open {
        request_id: RequestId,
        route: RouteId,
        open: OpenRequest,
        reply: oneshot::Sender<Result<(ClientSender, ClientEvents), OpenError>>,
    },
    ClientMessage {
        request_id: RequestId,
        data: Vec<u8>,
        binary: bool,
    },
    ClientClose {
        request_id: RequestId,
        frame: Option<CloseFrame>,
    },
    RunnerFrame {
        route: RouteId,
        bytes: Vec<u8>,
    },
    Call(Call<Gateway>),
    Shutdown,
}

/// Read side of one client, given by [`GatewayHandle::open`]: feed it what the client sends.
#[derive(Debug)]
pub struct ClientSender {
    request_id: RequestId,
    gate: watch::Receiver<Gate>,
    tx: mpsc::Sender<GatewayInput>,
}

impl ClientSender {
    /// The request this client is.
    pub fn request_id(&self) -> RequestId {
        self.request_id
    }

    /// Hands one client message to the gateway. Waits until the client may be read: after the
    /// runner accepted the WebSocket and while the engine is not refusing this client's messages
    /// with backpressure. Read the next frame from the client's socket only after this returns.
    ///
    /// # Errors
    /// [`Stopped`] if the request is closed or the driver is gone; the message was dropped.
    pub async fn message(&mut self, data: Vec<u8>, binary: bool) -> Result<(), Stopped> {
        self.readable().await?;
        let request_id = self.request_id;
        self.tx
            .send(GatewayInput::ClientMessage {
                request_id,
                data,
                binary,
            })
            .await
            .map_err(|_| Stopped)
    }

    /// Waits until the client may be read (see [`message`](Self::message)).
    ///
    /// # Errors
    /// [`Stopped`] if the request is closed or the driver is gone.
    pub async fn readable(&mut self) -> Result<(), Stopped> {
        // An open gate needs no wait. Checking it first also keeps this path off the task's
        // cooperative budget (`wait_for` takes one unit per call, and a reader calls this for
        // every message), so a reader hands over as many messages per turn as its sends allow.
        if *self.gate.borrow() != Gate::Open {
            match self.gate.wait_for(|g| *g != Gate::Wait).await {
                Ok(g) if *g == Gate::Open => {}
                _ => return Err(Stopped),
            }
        }
        // A driver task that was aborted or panicked left its gates as they were.
        if self.gate.has_changed().is_err() {
            return Err(Stopped);
        }
        Ok(())
    }

    /// The client closed its WebSocket with `frame`, or its stream ended without one (`None`).
    /// Does not wait for the gate: messages handed over before are processed first.
    ///
    /// # Errors
    /// [`Stopped`] if the driver is gone.
    pub async fn close(self, frame: Option<CloseFrame>) -> Result<(), Stopped> {
        let request_id = self.request_id;
        self.tx
            .send(GatewayInput::ClientClose { request_id, frame })
            .await
            .map_err(|_| Stopped)
    }
}

/// Write side of one client, given by [`GatewayHandle::open`]: what to send to the client.
#[derive(Debug)]
pub struct ClientEvents {
    rx: mpsc::UnboundedReceiver<ClientOutput>,
}

impl ClientEvents {
    /// The next output for the client; `None` once the request is gone (after a
    /// [`ClientOutput::Close`] if the gateway closed it, right away if the client closed first).
    pub async fn recv(&mut self) -> Option<ClientOutput> {
        self.rx.recv().await
    }
}

/// Cloneable handle to a [`GatewayDriver`].
#[derive(Debug, Clone)]
pub struct GatewayHandle {
    tx: mpsc::Sender<GatewayInput>,
}

impl GatewayHandle {
    /// A client connected: opens the request ([`Gateway::open`]) and returns the client's two
    /// halves. The sender stays closed until the runner accepts the WebSocket.
    ///
    /// # Errors
    /// [`CommandError::Engine`] with the engine's [`OpenError`]; [`CommandError::Stopped`].
    pub async fn open(
        &self,
        request_id: RequestId,
        route: RouteId,
        open: OpenRequest,
    ) -> Result<(ClientSender, ClientEvents), CommandError<OpenError>> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(GatewayInput::Open {
                request_id,
                route,
                open,
                reply,
            })
            .await
            .map_err(|_| CommandError::Stopped)?;
        rx.await
            .map_err(|_| CommandError::Stopped)?
            .map_err(CommandError::Engine)
    }

    /// A frame from the runner behind `route` ([`Gateway::handle_runner_frame`]). A frame the
    /// engine drops is reported to [`GatewayIo::receive_error`].
    ///
    /// # Errors
    /// [`Stopped`].
    pub async fn runner_frame(&self, route: RouteId, bytes: Vec<u8>) -> Result<(), Stopped> {
        self.tx
            .send(GatewayInput::RunnerFrame { route, bytes })
            .await
            .map_err(|_| Stopped)
    }

    /// [`Gateway::actor_stopped`].
    ///
    /// # Errors
    /// [`CommandError::Engine`] with [`UnknownRequest`]; [`CommandError::Stopped`].
    pub async fn actor_stopped(
        &self,
        request_id: RequestId,
    ) -> Result<(), CommandError<UnknownRequest>> {
        self.call(move |g, now| g.actor_stopped(now, request_id))
            .await?
            .map_err(CommandError::Engine)
    }

    /// [`Gateway::wake`]: the actor runs again behind `route`.
    ///
    /// # Errors
    /// [`CommandError::Engine`] with the engine's [`WakeError`]; [`CommandError::Stopped`].
    pub async fn wake(
        &self,
        request_id: RequestId,
        route: RouteId,
    ) -> Result<(), CommandError<WakeError>> {
        self.call(move |g, now| g.wake(now, request_id, route))
            .await?
            .map_err(CommandError::Engine)
    }

    /// [`Gateway::hibernating_record_upserted`].
    ///
    /// # Errors
    /// [`CommandError::Engine`] with [`UnknownRequest`]; [`CommandError::Stopped`].
    pub async fn record_upserted(
        &self,
        request_id: RequestId,
    ) -> Result<(), CommandError<UnknownRequest>> {
        self.call(move |g, now| g.hibernating_record_upserted(now, request_id))
            .await?
            .map_err(CommandError::Engine)
    }

    /// [`Gateway::hibernating_record_failed`].
    ///
    /// # Errors
    /// [`CommandError::Engine`] with [`UnknownRequest`]; [`CommandError::Stopped`].
    pub async fn record_failed(
        &self,
        request_id: RequestId,
    ) -> Result<(), CommandError<UnknownRequest>> {
        self.call(move |g, now| g.hibernating_record_failed(now, request_id))
            .await?
            .map_err(CommandError::Engine)
    }

    /// [`Gateway::stats`].
    ///
    /// # Errors
    /// [`Stopped`].
    pub async fn stats(&self) -> Result<GatewayStats, Stopped> {
        self.call(|g, _| g.stats()).await
    }

    /// [`Gateway::request`].
    ///
    /// # Errors
    /// [`Stopped`].
    pub async fn request(&self, request_id: RequestId) -> Result<Option<RequestInfo>, Stopped> {
        self.call(move |g, _| g.request(request_id)).await
    }

    /// Stops the driver: [`GatewayDriver::run`] returns the engine. Every client's sender and
    /// events end. Returns once the request is queued (inputs queued before it are handled).
    pub async fn shutdown(&self) {
        let _ = self.tx.send(GatewayInput::Shutdown).await;
    }

    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Gateway, Timestamp) -> R + Send + 'static,
    ) -> Result<R, Stopped> {
        call(&self.tx, GatewayInput::Call, f).await
    }
}

/// A client as the driver sees it.
struct Client {
    gate: watch::Sender<Gate>,
    out: mpsc::UnboundedSender<ClientOutput>,
    opened: bool,
    /// Refused with backpressure: wait for `ClientWritable`.
    blocked: bool,
    /// Inputs read before the gate closed, to hand over in order once writable.
    stalled: VecDeque<Stalled>,
}

enum Stalled {
    Message(Vec<u8>, bool),
    Close(Option<CloseFrame>),
}

impl Client {
    fn update_gate(&self) {
        let gate = if self.opened && !self.blocked && self.stalled.is_empty() {
            Gate::Open
        } else {
            Gate::Wait
        };
        self.gate.send_if_modified(|g| {
            let changed = *g != gate;
            *g = gate;
            changed
        });
    }
}

/// Drives a [`Gateway`] on a tokio task. See the [module docs](self).
pub struct GatewayDriver<Io> {
    gateway: Gateway,
    io: Io,
    clock: TokioClock,
    rx: mpsc::Receiver<GatewayInput>,
    /// A clone for the client senders it creates.
    tx: mpsc::Sender<GatewayInput>,
    clients: BTreeMap<RequestId, Client>,
    /// Requests that became writable, to retry after the current drain.
    writable: VecDeque<RequestId>,
}

impl<Io> core::fmt::Debug for GatewayDriver<Io> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GatewayDriver")
            .field("gateway", &self.gateway)
            .field("clients", &self.clients.len())
            .finish_non_exhaustive()
    }
}

impl<Io: GatewayIo> GatewayDriver<Io> {
    /// A driver and its handle. Build `gateway` with `clock.now()`. Run it with
    /// [`run`](Self::run) (or use [`spawn`](Self::spawn)).
    pub fn new(gateway: Gateway, io: Io, clock: TokioClock) -> (Self, GatewayHandle) {
        let (tx, rx) = mpsc::channel(INPUT_CAPACITY);
        let driver = Self {
            gateway,
            io,
            clock,
            rx,
            tx: tx.clone(),
            clients: BTreeMap::new(),
            writable: VecDeque::new(),
        };
        (driver, GatewayHandle { tx })
    }

    /// [`new`](Self::new), then [`run`](Self::run) on a new task. Aborting the task drops the
    /// engine abruptly.
    pub fn spawn(
        gateway: Gateway,
        io: Io,
        clock: TokioClock,
    ) -> (GatewayHandle, JoinHandle<Gateway>) {
        let (driver, handle) = Self::new(gateway, io, clock);
        (handle, ::tokio::spawn(driver.run()))
    }

    /// Runs until [`GatewayHandle::shutdown`]; returns the engine.
    ///
    /// The driver keeps a sender of its own input channel (for the client senders it creates),
    /// so dropping every handle does not stop it: call `shutdown`.
    pub async fn run(mut self) -> Gateway {
        let mut timer = Timer::new(self.clock);
        let mut batch = Vec::with_capacity(INPUT_BATCH);
        'run: loop {
            let now = self.clock.now();
            let deadline = self.gateway.poll_timeout();
            if deadline.is_some_and(|d| d <= now) {
                self.gateway.handle_timeout(now);
                self.drain(now);
                continue;
            }
            timer.arm(&self.clock, deadline);
            ::tokio::select! {
                n = self.rx.recv_many(&mut batch, INPUT_BATCH) => {
                    if n == 0 {
                        break; // the channel closed (not while the driver holds a sender)
                    }
                    let now = self.clock.now();
                    for input in batch.drain(..) {
                        if matches!(input, GatewayInput::Shutdown) {
                            break 'run;
                        }
                        self.input(now, input);
                    }
                }
                () = timer.wait() => {}
            }
        }
        for (_, client) in core::mem::take(&mut self.clients) {
            client.gate.send_replace(Gate::Closed);
        }
        self.gateway
    }

    fn input(&mut self, now: Timestamp, input: GatewayInput) {
        match input {
            GatewayInput::Open {
                request_id,
                route,
                open,
                reply,
            } => {
                let result = self.gateway.open(now, request_id, route, open);
                let result = result.map(|()| self.new_client(request_id));
                self.drain(now);
                let _ = reply.send(result);
                return;
            }
            GatewayInput::ClientMessage {
                request_id,
                data,
                binary,
            } => self.client_input(now, request_id, Stalled::Message(data, binary)),
            GatewayInput::ClientClose { request_id, frame } => {
                self.client_input(now, request_id, Stalled::Close(frame));
            }
            GatewayInput::RunnerFrame { route, bytes } => {
                if let Err(e) = self.gateway.handle_runner_frame(now, route, &bytes) {
                    self.io.receive_error(route, &e);
                }
            }
            GatewayInput::Call(f) => {
                let reply = f(&mut self.gateway, now);
                self.drain(now);
                reply();
                return;
            }
            GatewayInput::Shutdown => {}
        }
        self.drain(now);
    }

    fn new_client(&mut self, request_id: RequestId) -> (ClientSender, ClientEvents) {
        let (gate, gate_rx) = watch::channel(Gate::Wait);
        let (out, out_rx) = mpsc::unbounded_channel();
        self.clients.insert(
            request_id,
            Client {
                gate,
                out,
                opened: false,
                blocked: false,
                stalled: VecDeque::new(),
            },
        );
        let sender = ClientSender {
            request_id,
            gate: gate_rx,
            tx: self.tx.clone(),
        };
        (sender, ClientEvents { rx: out_rx })
    }

    /// A client input: handed to the engine, or queued behind earlier refused ones.
    fn client_input(&mut self, now: Timestamp, request_id: RequestId, input: Stalled) {
        let Some(client) = self.clients.get_mut(&request_id) else {
            return; // the request is gone; so is the input
        };
        if client.blocked || !client.stalled.is_empty() {
            client.stalled.push_back(input);
            client.update_gate();
            return;
        }
        if let Some(refused) = self.feed(now, request_id, input)
            && let Some(client) = self.clients.get_mut(&request_id)
        {
            client.blocked = true;
            client.stalled.push_front(refused);
            client.update_gate();
        }
    }

    /// Hands one client input to the engine; gives it back if the engine refused it with
    /// backpressure.
    fn feed(&mut self, now: Timestamp, request_id: RequestId, input: Stalled) -> Option<Stalled> {
        match input {
            Stalled::Message(data, binary) => {
                match self.gateway.client_message(now, request_id, &data, binary) {
                    Ok(_) => None,
                    Err(SendError::Backpressure { .. }) => Some(Stalled::Message(data, binary)),
                    Err(e) => {
                        self.io.send_error(request_id, &e);
                        None
                    }
                }
            }
            Stalled::Close(frame) => {
                // Unknown: the request closed meanwhile; nothing to do.
                let _ = self.gateway.client_close(now, request_id, frame);
                None
            }
        }
    }

    /// Drains the engine's actions, then retries the clients that became writable (each retry
    /// drained in turn).
    fn drain(&mut self, now: Timestamp) {
        loop {
            while let Some(action) = self.gateway.poll_action() {
                self.perform(action);
            }
            let Some(request_id) = self.writable.pop_front() else {
                return;
            };
            self.retry(now, request_id);
        }
    }

    /// A writable client: hand over its stalled inputs in order until one is refused again.
    fn retry(&mut self, now: Timestamp, request_id: RequestId) {
        let Some(client) = self.clients.get_mut(&request_id) else {
            return;
        };
        client.blocked = false;
        let Some(input) = client.stalled.pop_front() else {
            client.update_gate();
            return;
        };
        match self.feed(now, request_id, input) {
            Some(refused) => {
                if let Some(client) = self.clients.get_mut(&request_id) {
                    client.blocked = true;
                    client.stalled.push_front(refused);
                    client.update_gate();
                }
            }
            // Continue with the next stalled input after the actions of this one are drained.
            None => self.writable.push_back(request_id),
        }
    }

    fn perform(&mut self, action: gateway::Action) {
        use gateway::Action;
        match action {
            Action::Publish {
                route,
                request_id,
                frame,
            } => self.io.publish(route, request_id, frame),
            Action::SendToClient {
                request_id,
                data,
                binary,
            } => {
                if let Some(c) = self.clients.get(&request_id) {
                    let _ = c.out.send(ClientOutput::Message { data, binary });
                }
            }
            Action::CloseClient { request_id, frame } => {
                if let Some(c) = self.clients.get(&request_id) {
                    let _ = c.out.send(ClientOutput::Close(frame));
                }
            }
            Action::Opened {
                request_id,
                hibernatable,
            } => {
                if let Some(c) = self.clients.get_mut(&request_id) {
                    c.opened = true;
                    c.update_gate();
                }
                self.io.opened(request_id, hibernatable);
            }
            Action::Hibernated { request_id } => self.io.hibernated(request_id),
            Action::RequestWake {
                request_id,
                actor_id,
            } => self.io.request_wake(request_id, actor_id),
            Action::UpsertHibernatingRecord {
                request_id,
                actor_id,
            } => self.io.upsert_hibernating_record(request_id, actor_id),
            Action::DeleteHibernatingRecord {
                request_id,
                actor_id,
            } => self.io.delete_hibernating_record(request_id, actor_id),
            Action::ClientWritable { request_id } => self.writable.push_back(request_id),
            Action::Closed { request_id, reason } => {
                if let Some(c) = self.clients.remove(&request_id) {
                    c.gate.send_replace(Gate::Closed);
                }
                self.io.closed(request_id, &reason);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Runner
// ---------------------------------------------------------------------------------------------

/// Where the runner driver sends the engine's actions.
///
/// Called from the driver task, in order; must not block (see the [module docs](self)).
pub trait RunnerIo: Send + 'static {
    /// [`Action::Publish`](runner::Action::Publish): send `frame` to the gateway `gateway_id`.
    fn publish(&mut self, gateway_id: GatewayId, frame: Vec<u8>);
    /// Every other action, for the app: [`Open`](runner::Action::Open) (answer with
    /// [`RunnerHandle::accept`] or [`RunnerHandle::reject`]), [`Message`](runner::Action::Message),
    /// [`Persist`](runner::Action::Persist) (write, then [`RunnerHandle::persisted`] or
    /// [`RunnerHandle::persist_failed`]), [`DeleteMetadata`](runner::Action::DeleteMetadata),
    /// [`Restored`](runner::Action::Restored), [`Closed`](runner::Action::Closed),
    /// [`ActorStopped`](runner::Action::ActorStopped).
    fn app(&mut self, action: runner::Action);
    /// A gateway frame was dropped (already counted in [`RunnerStats`]).
    fn receive_error(&mut self, error: &runner::ReceiveError) {
        let _ = error;
    }
}

enum RunnerInput {
    Frame(Vec<u8>),
    Call(Call<Runner>),
    Shutdown,
}

/// Cloneable handle to a [`RunnerDriver`].
#[derive(Debug, Clone)]
pub struct RunnerHandle {
    tx: mpsc::Sender<RunnerInput>,
}

impl RunnerHandle {
    /// A frame from the gateway ([`Runner::handle_frame`]). A frame the engine drops is reported
    /// to [`RunnerIo::receive_error`].
    ///
    /// # Errors
    /// [`Stopped`].
    pub async fn frame(&self, bytes: Vec<u8>) -> Result<(), Stopped> {
        self.tx
            .send(RunnerInput::Frame(bytes))
            .await
            .map_err(|_| Stopped)
    }

    /// [`Runner::actor_starting`].
    ///
    /// # Errors
    /// [`CommandError::Engine`] with the engine's [`ActorError`]; [`CommandError::Stopped`].
    pub async fn actor_starting(
        &self,
        actor_id: impl Into<String>,
        hibernating: Vec<HibernatingRequest>,
    ) -> Result<(), CommandError<ActorError>> {
        let actor_id = actor_id.into();
        self.call(move |r, now| r.actor_starting(now, &actor_id, hibernating))
            .await?
            .map_err(CommandError::Engine)
    }

    /// [`Runner::restore`].
    ///
    /// # Errors
    /// [`CommandError::Engine`] with the engine's [`ActorError`]; [`CommandError::Stopped`].
    pub async fn restore(
        &self,
        actor_id: impl Into<String>,
        persisted: Vec<PersistedSocket>,
    ) -> Result<RestoreSummary, CommandError<ActorError>> {
        let actor_id = actor_id.into();
        self.call(move |r, now| r.restore(now, &actor_id, persisted))
            .await?
            .map_err(CommandError::Engine)
    }

    /// [`Runner::actor_stopping`].
    ///
    /// # Errors
    /// [`CommandError::Engine`] with the engine's [`ActorError`]; [`CommandError::Stopped`].
    pub async fn actor_stopping(
        &self,
        actor_id: impl Into<String>,
    ) -> Result<(), CommandError<ActorError>> {
        let actor_id = actor_id.into();
        self.call(move |r, now| r.actor_stopping(now, &actor_id))
            .await?
            .map_err(CommandError::Engine)
    }

    /// [`Runner::accept`].
    ///
    /// # Errors
    /// [`CommandError::Engine`] with the engine's [`SocketError`]; [`CommandError::Stopped`].
    pub async fn accept(
        &self,
        socket: SocketId,
        can_hibernate: bool,
    ) -> Result<(), CommandError<SocketError>> {
        self.call(move |r, now| r.accept(now, socket, can_hibernate))
            .await?
            .map_err(CommandError::Engine)
    }

    /// [`Runner::reject`].
    ///
    /// # Errors
    /// [`CommandError::Engine`] with the engine's [`SocketError`]; [`CommandError::Stopped`].
    pub async fn reject(
        &self,
        socket: SocketId,
        frame: CloseFrame,
    ) -> Result<(), CommandError<SocketError>> {
        self.call(move |r, now| r.reject(now, socket, frame))
            .await?
            .map_err(CommandError::Engine)
    }

    /// [`Runner::send`].
    ///
    /// # Errors
    /// [`CommandError::Engine`] with the engine's [`runner::SendError`];
    /// [`CommandError::Stopped`].
    pub async fn send(
        &self,
        socket: SocketId,
        data: Vec<u8>,
        binary: bool,
    ) -> Result<MessageIndex, CommandError<runner::SendError>> {
        self.call(move |r, now| r.send(now, socket, &data, binary))
            .await?
            .map_err(CommandError::Engine)
    }

    /// [`Runner::close`].
    ///
    /// # Errors
    /// [`CommandError::Engine`] with the engine's [`SocketError`]; [`CommandError::Stopped`].
    pub async fn close(
        &self,
        socket: SocketId,
        frame: CloseFrame,
    ) -> Result<(), CommandError<SocketError>> {
        self.call(move |r, now| r.close(now, socket, frame))
            .await?
            .map_err(CommandError::Engine)
    }

    /// [`Runner::hibernate`].
    ///
    /// # Errors
    /// [`CommandError::Engine`] with the engine's [`SocketError`]; [`CommandError::Stopped`].
    pub async fn hibernate(&self, socket: SocketId) -> Result<(), CommandError<SocketError>> {
        self.call(move |r, now| r.hibernate(now, socket))
            .await?
            .map_err(CommandError::Engine)
    }

    /// [`Runner::persisted`]: the write of an [`Action::Persist`](runner::Action::Persist) is
    /// durable.
    ///
    /// # Errors
    /// [`CommandError::Engine`] with the engine's [`SocketError`] (`UnknownSocket` is harmless:
    /// the socket closed meanwhile); [`CommandError::Stopped`].
    pub async fn persisted(
        &self,
        socket: SocketId,
        server_index: MessageIndex,
    ) -> Result<(), CommandError<SocketError>> {
        self.call(move |r, now| r.persisted(now, socket, server_index))
            .await?
            .map_err(CommandError::Engine)
    }

    /// [`Runner::persist_failed`].
    ///
    /// # Errors
    /// [`CommandError::Engine`] with the engine's [`SocketError`]; [`CommandError::Stopped`].
    pub async fn persist_failed(
        &self,
        socket: SocketId,
        server_index: MessageIndex,
    ) -> Result<(), CommandError<SocketError>> {
        self.call(move |r, now| r.persist_failed(now, socket, server_index))
            .await?
            .map_err(CommandError::Engine)
    }

    /// [`Runner::stats`].
    ///
    /// # Errors
    /// [`Stopped`].
    pub async fn stats(&self) -> Result<RunnerStats, Stopped> {
        self.call(|r, _| r.stats()).await
    }

    /// [`Runner::socket`].
    ///
    /// # Errors
    /// [`Stopped`].
    pub async fn socket(&self, socket: SocketId) -> Result<Option<SocketInfo>, Stopped> {
        self.call(move |r, _| r.socket(socket)).await
    }

    /// Stops the driver: [`RunnerDriver::run`] returns the engine. Returns once the request is
    /// queued (inputs queued before it are handled).
    pub async fn shutdown(&self) {
        let _ = self.tx.send(RunnerInput::Shutdown).await;
    }

    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Runner, Timestamp) -> R + Send + 'static,
    ) -> Result<R, Stopped> {
        call(&self.tx, RunnerInput::Call, f).await
    }
}

/// Drives a [`Runner`] on a tokio task. See the [module docs](self).
pub struct RunnerDriver<Io> {
    runner: Runner,
    io: Io,
    clock: TokioClock,
    rx: mpsc::Receiver<RunnerInput>,
}

impl<Io> core::fmt::Debug for RunnerDriver<Io> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RunnerDriver")
            .field("runner", &self.runner)
            .finish_non_exhaustive()
    }
}

impl<Io: RunnerIo> RunnerDriver<Io> {
    /// A driver and its handle. Build `runner` with `clock.now()`. Run it with
    /// [`run`](Self::run) (or use [`spawn`](Self::spawn)).
    pub fn new(runner: Runner, io: Io, clock: TokioClock) -> (Self, RunnerHandle) {
        let (tx, rx) = mpsc::channel(INPUT_CAPACITY);
        let driver = Self {
            runner,
            io,
            clock,
            rx,
        };
        (driver, RunnerHandle { tx })
    }

    /// [`new`](Self::new), then [`run`](Self::run) on a new task. Aborting the task drops the
    /// engine abruptly (a crash: nothing more is persisted or published).
    pub fn spawn(runner: Runner, io: Io, clock: TokioClock) -> (RunnerHandle, JoinHandle<Runner>) {
        let (driver, handle) = Self::new(runner, io, clock);
        (handle, ::tokio::spawn(driver.run()))
    }

    /// Runs until [`RunnerHandle::shutdown`] or until every handle is dropped; returns the
    /// engine.
    pub async fn run(mut self) -> Runner {
        let mut timer = Timer::new(self.clock);
        let mut batch = Vec::with_capacity(INPUT_BATCH);
        'run: loop {
            let now = self.clock.now();
            let deadline = self.runner.poll_timeout();
            if deadline.is_some_and(|d| d <= now) {
                self.runner.handle_timeout(now);
                self.drain();
                continue;
            }
            timer.arm(&self.clock, deadline);
            ::tokio::select! {
                n = self.rx.recv_many(&mut batch, INPUT_BATCH) => {
                    if n == 0 {
                        break; // every handle is gone
                    }
                    let now = self.clock.now();
                    for input in batch.drain(..) {
                        if matches!(input, RunnerInput::Shutdown) {
                            break 'run;
                        }
                        self.input(now, input);
                    }
                }
                () = timer.wait() => {}
            }
        }
        self.runner
    }

    fn input(&mut self, now: Timestamp, input: RunnerInput) {
        match input {
            RunnerInput::Frame(bytes) => {
                if let Err(e) = self.runner.handle_frame(now, &bytes) {
                    self.io.receive_error(&e);
                }
            }
            RunnerInput::Call(f) => {
                let reply = f(&mut self.runner, now);
                self.drain();
                reply();
                return;
            }
            RunnerInput::Shutdown => {}
        }
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(action) = self.runner.poll_action() {
            match action {
                runner::Action::Publish { gateway_id, frame } => self.io.publish(gateway_id, frame),
                other => self.io.app(other),
            }
        }
    }
}
