//! The gateway driver: a [`Gateway`] shared by the tasks that read its clients and its runner
//! links, its sink trait, its handle, and the dispatch of its actions.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;

use ::tokio::task::JoinHandle;
use bytes::Bytes;

use super::client::{ClientEvents, ClientSender};
use super::clients::{ClientHooks, ClientPort, ClientState, Clients, client_hooks, client_state};
use super::clock::TokioClock;
use super::queue::{QueueFull, QueueLimits, QueueStats};
use super::run::{CrashGuard, Driven, Shared, driver_type, run};
use super::{CommandError, Stopped};
use crate::gateway::{self, Frame, Gateway, OpenError, OpenRequest, RouteId, SendError};
use crate::time::Timestamp;
use crate::wire::{Received, RequestId};

/// Where the gateway driver sends the actions that are not for a client.
///
/// Called inside the driver's critical section, in order, from whichever task handed the
/// input in: never block (queue the work, typically in an [`Outbox`](super::Outbox)).
pub trait GatewayIo: Send + 'static {
    /// [`Action::Publish`](gateway::Action::Publish): send `frame` (a versioned `ToRunner`) to the
    /// runner behind `route`.
    fn publish(&mut self, route: RouteId, request_id: RequestId, frame: Frame);
    /// [`Action::RequestWake`](gateway::Action::RequestWake): start the actor somewhere, then call
    /// [`Gateway::wake`] with its route (through [`GatewayHandle::call`]).
    fn request_wake(&mut self, request_id: RequestId, actor_id: String);
    /// [`Action::UpsertHibernatingRecord`](gateway::Action::UpsertHibernatingRecord): write the
    /// record, then report with [`Gateway::hibernating_record_upserted`] or
    /// [`Gateway::hibernating_record_failed`].
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
    /// [`Action::Closed`](gateway::Action::Closed) (the client's halves end).
    fn closed(&mut self, request_id: RequestId, reason: &gateway::CloseReason) {
        let _ = (request_id, reason);
    }
    /// A runner frame was dropped (already counted in [`GatewayStats`](gateway::GatewayStats)).
    /// With the `tracing` feature, the default reports it as a `warn` event with the route.
    fn receive_error(&mut self, route: RouteId, error: &gateway::ReceiveError) {
        #[cfg(feature = "tracing")]
        ::tracing::warn!(route = route.0, %error, "hws: runner frame dropped");
        let _ = (route, error);
    }
    /// A client message was refused for a reason other than backpressure (the request was closed
    /// by a limit, or it is gone); the message was dropped.
    /// With the `tracing` feature, the default reports it as a `debug` event with the request id.
    fn send_error(&mut self, request_id: RequestId, error: &SendError) {
        #[cfg(feature = "tracing")]
        ::tracing::debug!(?request_id, %error, "hws: client message refused");
        let _ = (request_id, error);
    }
    /// A client did not read: its outbound queue went past its limits, so the driver closed
    /// the request (the client gets [`CLIENT_QUEUE_FULL`](super::CLIENT_QUEUE_FULL)).
    fn client_queue_full(&mut self, request_id: RequestId, full: &QueueFull) {
        let _ = (request_id, full);
    }
}

/// Options of a [`GatewayDriver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GatewayOptions {
    /// Limits of each client's outbound queue ([`QueueLimits::CLIENT`] by default).
    pub client_queue: QueueLimits,
}

impl GatewayOptions {
    /// These options with `limits` for each client's outbound queue.
    #[must_use]
    pub fn with_client_queue(mut self, limits: QueueLimits) -> Self {
        self.client_queue = limits;
        self
    }
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            client_queue: QueueLimits::CLIENT,
        }
    }
}

driver_type! {
    /// Drives a [`Gateway`]. See the [module docs](super).
    GatewayDriver(GatewayState) -> Gateway;
    /// Runs the engine's timer until [`GatewayHandle::shutdown`]; returns the engine. Inputs do
    /// not wait for this task: they run the engine from the task that read them.
    /// Dropping the future before it returned (an aborted task, even one never polled) drops
    /// the engine abruptly.
}

impl GatewayDriver {
    /// A driver and its handle. Build `gateway` with `clock.now()`. Run its timer with
    /// [`run`](Self::run) (or use [`spawn`](Self::spawn)).
    pub fn new(
        gateway: Gateway,
        io: impl GatewayIo,
        clock: TokioClock,
        options: GatewayOptions,
    ) -> (Self, GatewayHandle) {
        let state = GatewayState {
            engine: Some(gateway),
            d: Dispatch {
                io: Box::new(io),
                clients: Clients::new(options.client_queue),
            },
        };
        let shared = Shared::new(state, clock);
        let handle = GatewayHandle {
            port: shared.clone(),
        };
        (Self { shared }, handle)
    }

    /// [`new`](Self::new) with the default options, then [`run`](Self::run) on a new task.
    /// Aborting the task drops the engine abruptly (a crash).
    pub fn spawn(
        gateway: Gateway,
        io: impl GatewayIo,
        clock: TokioClock,
    ) -> (GatewayHandle, JoinHandle<Gateway>) {
        let (driver, handle) = Self::new(gateway, io, clock, GatewayOptions::default());
        (handle, ::tokio::spawn(driver.run()))
    }
}

/// The state behind the lock.
pub(super) struct GatewayState {
    engine: Option<Gateway>,
    d: Dispatch,
}

/// Everything but the engine, so actions can be performed while the engine is borrowed.
struct Dispatch {
    io: Box<dyn GatewayIo>,
    clients: Clients,
}

impl Driven for GatewayState {
    type Engine = Gateway;

    fn engine(&mut self) -> Option<&mut Gateway> {
        self.engine.as_mut()
    }

    fn drain(&mut self, now: Timestamp) {
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        loop {
            while let Some(action) = engine.poll_action() {
                self.d.perform(action);
            }
            if !self.d.clients.follow_up(engine, now, &mut self.d.io) {
                return;
            }
        }
    }

    fn stop(&mut self) -> Option<Gateway> {
        self.d.clients.stop();
        self.engine.take()
    }
}

client_state!(GatewayState, Gateway);
client_hooks!(GatewayIo);

impl Dispatch {
    fn perform(&mut self, action: gateway::Action) {
        use gateway::Action;
        let Some(action) = self.clients.gateway_action(&mut self.io, action) else {
            return;
        };
        match action {
            Action::Publish {
                route,
                request_id,
                frame,
            } => self.io.publish(route, request_id, frame),
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
            // The client table performed the rest.
            _ => {}
        }
    }
}

/// What the handle and the client halves need from the driver, without its sink's type.
pub(super) trait GatewayPort: ClientPort {
    fn with_engine(&self, f: &mut dyn FnMut(&mut Gateway, Timestamp)) -> Result<(), Stopped>;
    fn open(
        &self,
        request_id: RequestId,
        route: RouteId,
        open: OpenRequest,
    ) -> Result<u64, CommandError<OpenError>>;
    fn runner_frame(&self, route: RouteId, frame: Received<'_>) -> Result<(), Stopped>;
    fn shutdown(&self);
    fn queue_stats(&self) -> QueueStats;
}

impl GatewayPort for Shared<GatewayState> {
    fn with_engine(&self, f: &mut dyn FnMut(&mut Gateway, Timestamp)) -> Result<(), Stopped> {
        self.with(|s, now| {
            if let Some(engine) = s.engine.as_mut() {
                f(engine, now);
            }
        })
    }

    fn open(
        &self,
        request_id: RequestId,
        route: RouteId,
        open: OpenRequest,
    ) -> Result<u64, CommandError<OpenError>> {
        self.with(|s, now| {
            let engine = s.engine.as_mut().ok_or(CommandError::Stopped)?;
            engine
                .open(now, request_id, route, open)
                .map_err(CommandError::Engine)?;
            Ok(s.d.clients.insert(request_id))
        })?
    }

    fn runner_frame(&self, route: RouteId, frame: Received<'_>) -> Result<(), Stopped> {
        self.with(|s, now| {
            let Some(engine) = s.engine.as_mut() else {
                return;
            };
            let result = match frame {
                Received::Slice(bytes) => engine.handle_runner_frame(now, route, bytes),
                Received::Shared(frame) => engine.handle_runner_frame_bytes(now, route, frame),
            };
            if let Err(e) = result {
                s.d.io.receive_error(route, &e);
            }
        })
    }

    fn shutdown(&self) {
        Shared::shutdown(self);
    }

    fn queue_stats(&self) -> QueueStats {
        self.lock().state.d.clients.stats()
    }
}

/// Cloneable handle to a [`GatewayDriver`]: opens clients, takes runner frames, runs commands
/// on the engine. Every method runs the engine right away, in the calling task, and returns
/// once the actions it caused were handed to the sink and the clients.
#[derive(Clone)]
pub struct GatewayHandle {
    port: Arc<dyn GatewayPort>,
}

impl core::fmt::Debug for GatewayHandle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GatewayHandle").finish_non_exhaustive()
    }
}

impl GatewayHandle {
    /// A client connected: opens the request ([`Gateway::open`]) and returns the client's two
    /// halves. The sender is not ready until the runner accepts the WebSocket.
    ///
    /// # Errors
    /// [`CommandError::Engine`] with the engine's [`OpenError`]; [`CommandError::Stopped`].
    pub fn open(
        &self,
        request_id: RequestId,
        route: RouteId,
        open: OpenRequest,
    ) -> Result<(ClientSender, ClientEvents), CommandError<OpenError>> {
        let serial = self.port.open(request_id, route, open)?;
        Ok((
            ClientSender::new(self.port.clone(), request_id, serial),
            ClientEvents::new(self.port.clone(), request_id, serial),
        ))
    }

    /// A frame from the runner behind `route` ([`Gateway::handle_runner_frame`]), read in
    /// place. A frame the engine drops is reported to [`GatewayIo::receive_error`].
    ///
    /// # Errors
    /// [`Stopped`].
    pub fn runner_frame(&self, route: RouteId, bytes: &[u8]) -> Result<(), Stopped> {
        self.port.runner_frame(route, Received::Slice(bytes))
    }

    /// [`runner_frame`](Self::runner_frame) for a frame the transport hands out as [`Bytes`]
    /// ([`Gateway::handle_runner_frame_bytes`]): the payloads queued for the clients are
    /// slices of it, not copies. A payload queued for a client that reads slowly keeps the
    /// transport's buffer allocated (with tungstenite, the read buffer the frame was parsed
    /// from), beyond what the client queue's limits count: use
    /// [`runner_frame`](Self::runner_frame) where clients may not read.
    ///
    /// # Errors
    /// [`Stopped`].
    pub fn runner_frame_bytes(&self, route: RouteId, frame: &Bytes) -> Result<(), Stopped> {
        self.port.runner_frame(route, Received::Shared(frame))
    }

    /// Runs `f` on the engine with the current time, then performs the actions it caused:
    /// every other engine call (`wake`, `actor_stopped`, `hibernating_record_upserted`,
    /// `stats`, `request`, ...).
    ///
    /// # Errors
    /// [`Stopped`].
    pub fn call<R>(&self, f: impl FnOnce(&mut Gateway, Timestamp) -> R) -> Result<R, Stopped> {
        let mut f = Some(f);
        let mut result = None;
        self.port.with_engine(&mut |engine, now| {
            if let Some(f) = f.take() {
                result = Some(f(engine, now));
            }
        })?;
        result.ok_or(Stopped)
    }

    /// Bytes and outputs queued for the clients now, the most one client ever had queued, and
    /// how many clients were closed for not reading.
    pub fn queue_stats(&self) -> QueueStats {
        self.port.queue_stats()
    }

    /// Stops the driver: [`GatewayDriver::run`] returns the engine. Every client's sender
    /// fails; its events end after what was queued. Inputs from now on get [`Stopped`].
    pub fn shutdown(&self) {
        self.port.shutdown();
    }
}
