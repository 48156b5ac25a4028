//! The tokio adapter of the control engine ([`Control`], which owns a gateway), in the same
//! shape as the gateway and runner drivers: the engine sits behind a short critical section and
//! runs in the task that has the input; one task sleeps until its next deadline
//! ([`ControlDriver::run`]); every output goes to a bounded queue.
//!
//! hws brings no WebSocket library: the embedder accepts the runner's WebSocket (the official
//! runner connects to `/runners/connect?protocol_version=7&namespace=…&runner_key=…` and asks
//! for the `rivet` subprotocol, which the server must select), then hands its frames over.
//! Frames on that socket are plain `ToClient`/`ToServer` messages, without a version prefix:
//!
//! * [`ControlHandle::runner_connected`] registers the connection with its runner key and gives a
//!   [`RunnerSender`] (hand it every binary frame the runner sends, in place; then
//!   [`disconnected`](RunnerSender::disconnected), or drop it) and a [`RunnerEvents`] (take
//!   every [`RunnerOutput`] queued at once with
//!   [`recv_many`](OutboxReceiver::recv_many), write the frames as binary messages, flush
//!   once per batch; close the socket on [`RunnerOutput::Close`] or when it ends).
//! * [`ControlHandle::open`] opens a client WebSocket on an actor and gives the same client
//!   halves as the gateway driver: a [`ClientSender`] (a `Sink` of what the client sends, ready
//!   once the runner accepted it) and a [`ClientEvents`] (a `Stream` of what to send it).
//! * Actors and everything else: [`ControlHandle::call`] runs a closure on the engine. KV
//!   requests and the engine's other actions go to a [`ControlIo`].
//!
//! # Bounded queues and backpressure
//!
//! Every queue has limits in bytes and items ([`QueueLimits`], set in [`ControlOptions`]):
//!
//! * Each client's outbound queue, with the gateway driver's rule: a client is read only while
//!   the engine takes its messages (every
//!   [`OverflowPolicy`](crate::gateway::OverflowPolicy), `Backpressure` included: a refused
//!   message is kept and handed over again on `ClientWritable`) and while its queue is below
//!   half its limits; past its limits the request is closed with
//!   [`CLIENT_QUEUE_FULL`] and
//!   [`ControlIo::client_queue_full`] is told.
//! * Each runner connection's outbound queue: a runner whose writer does not keep up goes past
//!   its limits, its [`RunnerEvents`] end ([`overflowed`](OutboxReceiver::overflowed)
//!   says why), [`ControlIo::runner_queue_full`] is told, and the engine handles the connection
//!   as lost (its runner keeps its actors for the lost threshold and may reconnect).
//!
//! # Sinks
//!
//! [`ControlIo`] methods are called inside the critical section, in the order the engine
//! emitted the actions: never block.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use hibernating_ws::control::{Control, ControlConfig};
//! use hibernating_ws::driver::control::{ControlDriver, ControlIo, RunnerOutput};
//! use hibernating_ws::driver::tokio::TokioClock;
//! use hibernating_ws::gateway::{Gateway, GatewayConfig};
//! use hibernating_ws::wire::{self, GatewayId, KvRequestData, KvResponseData, ToClient, ToServer,
//!     ToServerInit};
//!
//! struct NoKv;
//! impl ControlIo for NoKv {
//!     fn kv(&mut self, _: &str, _: KvRequestData) -> KvResponseData {
//!         KvResponseData::Drop
//!     }
//! }
//!
//! let clock = TokioClock::new();
//! let gateway = Gateway::new(GatewayConfig::default(), GatewayId(*b"gw01"), clock.now())?;
//! let control = Control::new(ControlConfig::default(), gateway, 1, clock.now())?;
//! let (handle, task) = ControlDriver::spawn(control, NoKv, clock);
//!
//! // A runner connects and introduces itself; the engine answers with its init.
//! let (runner, mut to_runner) = handle.runner_connected("runner-key")?;
//! let init = ToServer::Init(ToServerInit {
//!     name: "default".into(),
//!     version: 1,
//!     total_slots: 10,
//!     prepopulate_actor_names: None,
//!     metadata: None,
//! });
//! runner.frame(&wire::encode(&init))?;
//! let mut batch = Vec::new();
//! to_runner.recv_many(&mut batch).await;
//! let RunnerOutput::Frame(frame) = &batch[0] else { panic!() };
//! assert!(matches!(wire::decode::<ToClient>(frame)?, ToClient::Init(_)));
//!
//! runner.disconnected();
//! handle.shutdown();
//! let control = task.await?;
//! assert_eq!(control.stats().runners, 1); // kept for the lost threshold
//! # Ok(())
//! # }
//! ```

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;

use ::tokio::task::JoinHandle;

pub use super::client::{ClientEvents, ClientInput, ClientOutput, ClientSender};
use super::clients::{ClientHooks, ClientState, Clients, client_hooks, client_state};
pub use super::clock::TokioClock;
use super::queue::{Outbox, outbox};
pub use super::queue::{OutboxReceiver, QueueFull, QueueLimits, QueueStats};
use super::run::{CrashGuard, Driven, Shared, driver_type, run};
pub use super::{CLIENT_QUEUE_FULL, CommandError, Stopped};
use crate::close::{CloseFrame, KnownClose};
use crate::control::{
    Action, ConnCloseReason, ConnId, ConnectError, Control, OpenError, OpenFailure, OutFrame,
    ReceiveError,
};
use crate::gateway::{self, CloseReason, OpenRequest, SendError};
use crate::time::Timestamp;
use crate::wire::{KvRequestData, KvResponseData, RequestId, ToClientKvResponse};

/// What the control driver needs from its embedder besides sockets.
///
/// Called inside the driver's critical section, in order, from whichever task handed the input
/// in: never block.
pub trait ControlIo: Send + 'static {
    /// A runner's KV request for `actor_id`; the answer is sent to the runner at once. hws keeps
    /// no KV itself.
    fn kv(&mut self, actor_id: &str, request: KvRequestData) -> KvResponseData;

    /// Every engine action the driver does not perform itself (runner connected or lost, actor
    /// running, stopped or destroyed, alarms, and [`Action::OpenFailed`] after the client was
    /// closed), in order.
    ///
    /// With the `tracing` feature, the default reports each as a `debug` event.
    fn event(&mut self, action: &Action) {
        #[cfg(feature = "tracing")]
        ::tracing::debug!(?action, "hws: control event");
        let _ = action;
    }

    /// The runner accepted a client's WebSocket (its sender is released).
    fn opened(&mut self, request_id: RequestId, hibernatable: bool) {
        let _ = (request_id, hibernatable);
    }

    /// A client's request hibernates (its socket stays open).
    fn hibernated(&mut self, request_id: RequestId) {
        let _ = request_id;
    }

    /// A client's request is gone, for this reason (its halves end).
    fn closed(&mut self, request_id: RequestId, reason: &CloseReason) {
        let _ = (request_id, reason);
    }

    /// A runner frame was dropped (already counted in
    /// [`ControlStats`](crate::control::ControlStats)).
    /// With the `tracing` feature, the default reports it as a `warn` event with the connection.
    fn receive_error(&mut self, conn: ConnId, error: &ReceiveError) {
        #[cfg(feature = "tracing")]
        ::tracing::warn!(%conn, %error, "hws: runner frame dropped");
        let _ = (conn, error);
    }

    /// A client message was refused for a reason other than backpressure; it was dropped.
    /// With the `tracing` feature, the default reports it as a `debug` event.
    fn send_error(&mut self, request_id: RequestId, error: &SendError) {
        #[cfg(feature = "tracing")]
        ::tracing::debug!(?request_id, %error, "hws: client message refused");
        let _ = (request_id, error);
    }

    /// A client did not read: its outbound queue went past its limits and the driver closed the
    /// request (the client gets [`CLIENT_QUEUE_FULL`]).
    fn client_queue_full(&mut self, request_id: RequestId, full: &QueueFull) {
        let _ = (request_id, full);
    }

    /// A runner connection did not drain: its outbound queue went past its limits, so the
    /// driver dropped it (the engine handles it as disconnected).
    fn runner_queue_full(&mut self, conn: ConnId, full: &QueueFull) {
        let _ = (conn, full);
    }
}

/// What to write to a runner connection ([`RunnerEvents`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunnerOutput {
    /// Send this frame as a binary WebSocket message.
    Frame(OutFrame),
    /// Close the WebSocket with this reason (upstream's close reason:
    /// [`ConnCloseReason::reason`]); nothing follows.
    Close(ConnCloseReason),
}

impl AsRef<[u8]> for RunnerOutput {
    /// The frame's bytes (none for a close), for the queue's byte count.
    fn as_ref(&self) -> &[u8] {
        match self {
            Self::Frame(frame) => frame,
            Self::Close(_) => &[],
        }
    }
}

/// Engine → runner half of a runner connection: a bounded queue of [`RunnerOutput`]s. It ends
/// after a [`RunnerOutput::Close`], when the engine dropped the connection, or when it
/// overflowed.
pub type RunnerEvents = OutboxReceiver<RunnerOutput>;

/// Options of a [`ControlDriver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ControlOptions {
    /// Limits of each client's outbound queue ([`QueueLimits::CLIENT`] by default).
    pub client_queue: QueueLimits,
    /// Limits of each runner connection's outbound queue ([`QueueLimits::LINK`] by default).
    pub runner_queue: QueueLimits,
}

impl ControlOptions {
    /// These options with `limits` for each client's outbound queue.
    #[must_use]
    pub fn with_client_queue(mut self, limits: QueueLimits) -> Self {
        self.client_queue = limits;
        self
    }

    /// These options with `limits` for each runner connection's outbound queue.
    #[must_use]
    pub fn with_runner_queue(mut self, limits: QueueLimits) -> Self {
        self.runner_queue = limits;
        self
    }
}

impl Default for ControlOptions {
    fn default() -> Self {
        Self {
            client_queue: QueueLimits::CLIENT,
            runner_queue: QueueLimits::LINK,
        }
    }
}

driver_type! {
    /// Drives a [`Control`] engine. See the [module docs](self).
    ControlDriver(ControlState) -> Control;
    /// Runs the engine's timers until [`ControlHandle::shutdown`]; returns the engine. Inputs do
    /// not wait for this task: they run the engine from the task that read them. Dropping the
    /// future before it returned drops the engine abruptly.
}

impl ControlDriver {
    /// A driver and its handle. Build `control` (and its gateway) with `clock.now()`. Run its
    /// timer with [`run`](Self::run) (or use [`spawn`](Self::spawn)).
    pub fn new(
        control: Control,
        io: impl ControlIo,
        clock: TokioClock,
        options: ControlOptions,
    ) -> (Self, ControlHandle) {
        let state = ControlState {
            engine: Some(control),
            d: Dispatch {
                io: Box::new(io),
                clients: Clients::new(options.client_queue),
                runners: BTreeMap::new(),
                slow_runners: Vec::new(),
                runner_limits: options.runner_queue,
                next_conn: 1,
            },
        };
        let shared = Shared::new(state, clock);
        let handle = ControlHandle {
            shared: shared.clone(),
        };
        (Self { shared }, handle)
    }

    /// [`new`](Self::new) with the default options, then [`run`](Self::run) on a new task.
    /// Aborting the task drops the engine abruptly (a crash).
    pub fn spawn(
        control: Control,
        io: impl ControlIo,
        clock: TokioClock,
    ) -> (ControlHandle, JoinHandle<Control>) {
        let (driver, handle) = Self::new(control, io, clock, ControlOptions::default());
        (handle, ::tokio::spawn(driver.run()))
    }
}

/// The state behind the lock.
struct ControlState {
    engine: Option<Control>,
    d: Dispatch,
}

/// Everything but the engine, so actions can be performed while the engine is borrowed.
struct Dispatch {
    io: Box<dyn ControlIo>,
    clients: Clients,
    runners: BTreeMap<ConnId, Outbox<RunnerOutput>>,
    /// Runner connections whose queue overflowed, to drop after the current drain.
    slow_runners: Vec<(ConnId, QueueFull)>,
    runner_limits: QueueLimits,
    next_conn: u64,
}

impl Driven for ControlState {
    type Engine = Control;

    fn engine(&mut self) -> Option<&mut Control> {
        self.engine.as_mut()
    }

    fn drain(&mut self, now: Timestamp) {
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        loop {
            while let Some(action) = engine.poll_action() {
                self.d.perform(engine, now, action);
            }
            if let Some((conn, full)) = self.d.slow_runners.pop() {
                if self.d.runners.remove(&conn).is_some() {
                    self.d.io.runner_queue_full(conn, &full);
                    // Unknown: the engine closed it meanwhile.
                    let _ = engine.runner_disconnected(now, conn);
                }
            } else if !self.d.clients.follow_up(engine, now, &mut self.d.io) {
                return;
            }
        }
    }

    fn stop(&mut self) -> Option<Control> {
        self.d.clients.stop();
        self.d.runners.clear();
        self.engine.take()
    }
}

client_state!(ControlState, Control);
client_hooks!(ControlIo);

/// The close frame a client gets when its open could not reach the gateway.
fn open_failed_frame(reason: &OpenFailure) -> CloseFrame {
    match reason {
        OpenFailure::ActorDestroyed => KnownClose::ActorNotFound.frame(),
        OpenFailure::ActorStartFailed => KnownClose::ActorStoppedWhileWaitingForOpen.frame(),
        _ => KnownClose::ServerError.frame(),
    }
}

impl Dispatch {
    fn perform(&mut self, engine: &mut Control, now: Timestamp, action: Action) {
        match action {
            Action::Send { conn, frame } => self.queue_for_runner(conn, RunnerOutput::Frame(frame)),
            Action::CloseConnection { conn, reason } => {
                self.queue_for_runner(conn, RunnerOutput::Close(reason));
                self.runners.remove(&conn);
            }
            Action::Gateway(action) => self.gateway_action(action),
            Action::KvRequest { conn, request } => {
                let data = self.io.kv(&request.actor_id, request.data);
                let response = ToClientKvResponse {
                    request_id: request.request_id,
                    data,
                };
                // Unknown: the connection closed meanwhile; the answer has nowhere to go.
                let _ = engine.kv_response(now, conn, response);
            }
            Action::OpenFailed {
                request_id,
                ref reason,
                ..
            } => {
                let frame = open_failed_frame(reason);
                self.clients
                    .push_out(request_id, ClientOutput::Close(frame));
                self.clients.closed(request_id);
                self.io.event(&action);
            }
            other => self.io.event(&other),
        }
    }

    /// Queues an output for a runner connection; an overflowing one is dropped after the drain.
    fn queue_for_runner(&mut self, conn: ConnId, out: RunnerOutput) {
        if let Some(outbox) = self.runners.get(&conn)
            && let Err(full) = outbox.push(out)
        {
            self.slow_runners.push((conn, full));
        }
    }

    fn gateway_action(&mut self, action: gateway::Action) {
        // The engine performs the gateway's publishes, wake requests and records itself.
        let _ = self.clients.gateway_action(&mut self.io, action);
    }
}

/// Cloneable handle to a [`ControlDriver`]: registers runner connections, opens clients, runs
/// commands on the engine. Every method runs the engine right away, in the calling task, and
/// returns once the actions it caused were queued.
#[derive(Clone)]
pub struct ControlHandle {
    shared: Arc<Shared<ControlState>>,
}

impl core::fmt::Debug for ControlHandle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ControlHandle").finish_non_exhaustive()
    }
}

impl ControlHandle {
    /// A runner WebSocket connected with `runner_key` (the `runner_key` of its connect URL;
    /// authenticate the connection before calling this).
    ///
    /// # Errors
    /// [`CommandError::Engine`] with the engine's [`ConnectError`]; [`CommandError::Stopped`].
    pub fn runner_connected(
        &self,
        runner_key: &str,
    ) -> Result<(RunnerSender, RunnerEvents), CommandError<ConnectError>> {
        let (conn, events) = self.shared.with(|s, now| {
            let engine = s
                .engine
                .as_mut()
                .ok_or(CommandError::<ConnectError>::Stopped)?;
            let conn = ConnId(s.d.next_conn);
            engine
                .runner_connected(now, conn, runner_key)
                .map_err(CommandError::Engine)?;
            s.d.next_conn += 1;
            let (tx, rx) = outbox(s.d.runner_limits);
            s.d.runners.insert(conn, tx);
            Ok::<_, CommandError<ConnectError>>((conn, rx))
        })??;
        let sender = RunnerSender {
            conn,
            shared: self.shared.clone(),
            done: false,
        };
        Ok((sender, events))
    }

    /// A client connected ([`Control::open`]): opens the request (starting its actor if needed)
    /// and returns the client's two halves. The sender is not ready until the runner accepts
    /// the WebSocket. An open that cannot reach the gateway (the actor cannot run) ends with a
    /// [`ClientOutput::Close`] and [`Action::OpenFailed`] to [`ControlIo::event`].
    ///
    /// # Errors
    /// [`CommandError::Engine`] with the engine's [`OpenError`]; [`CommandError::Stopped`].
    pub fn open(
        &self,
        request_id: RequestId,
        open: OpenRequest,
    ) -> Result<(ClientSender, ClientEvents), CommandError<OpenError>> {
        let serial = self.shared.with(|s, now| {
            let engine = s
                .engine
                .as_mut()
                .ok_or(CommandError::<OpenError>::Stopped)?;
            engine
                .open(now, request_id, open)
                .map_err(CommandError::Engine)?;
            Ok::<_, CommandError<OpenError>>(s.d.clients.insert(request_id))
        })??;
        Ok((
            ClientSender::new(self.shared.clone(), request_id, serial),
            ClientEvents::new(self.shared.clone(), request_id, serial),
        ))
    }

    /// Runs `f` on the engine with the current time, then performs the actions it caused (actor
    /// commands, stats, snapshots).
    ///
    /// # Errors
    /// [`Stopped`].
    pub fn call<R>(&self, f: impl FnOnce(&mut Control, Timestamp) -> R) -> Result<R, Stopped> {
        self.shared
            .with(|s, now| s.engine.as_mut().map(|engine| f(engine, now)))?
            .ok_or(Stopped)
    }

    /// Bytes and outputs queued for the clients now, the most one client ever had queued, and
    /// how many clients were closed for not reading.
    pub fn queue_stats(&self) -> QueueStats {
        self.shared.lock().state.d.clients.stats()
    }

    /// Stops the driver: [`ControlDriver::run`] returns the engine. Every client's sender fails
    /// and its events end after what was queued; every runner's events end. Inputs from now on
    /// get [`Stopped`].
    pub fn shutdown(&self) {
        self.shared.shutdown();
    }
}

/// Runner → engine half of a runner connection, given by [`ControlHandle::runner_connected`].
/// Dropping it reports the connection closed.
pub struct RunnerSender {
    conn: ConnId,
    shared: Arc<Shared<ControlState>>,
    done: bool,
}

impl core::fmt::Debug for RunnerSender {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RunnerSender")
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

impl RunnerSender {
    /// The connection's id in the engine.
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// A binary frame from the runner, read in place. A frame the engine drops is reported to
    /// [`ControlIo::receive_error`].
    ///
    /// # Errors
    /// [`Stopped`].
    pub fn frame(&self, bytes: &[u8]) -> Result<(), Stopped> {
        let conn = self.conn;
        self.shared.with(|s, now| {
            if let Some(engine) = s.engine.as_mut()
                && let Err(e) = engine.handle_runner_frame(now, conn, bytes)
            {
                s.d.io.receive_error(conn, &e);
            }
        })
    }

    /// The runner's WebSocket closed.
    pub fn disconnected(mut self) {
        self.report();
    }

    fn report(&mut self) {
        if core::mem::replace(&mut self.done, true) {
            return;
        }
        let conn = self.conn;
        // Stopped, or the engine dropped the connection before: nothing to report.
        let _ = self.shared.with(|s, now| {
            if s.d.runners.remove(&conn).is_some()
                && let Some(engine) = s.engine.as_mut()
            {
                let _ = engine.runner_disconnected(now, conn);
            }
        });
    }
}

impl Drop for RunnerSender {
    fn drop(&mut self) {
        self.report();
    }
}
