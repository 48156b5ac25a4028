//! The gateway driver: a [`Gateway`] shared by the tasks that read its clients and its runner
//! links, its sink trait, its handle, and the dispatch of its actions.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::task::{Context, Poll};
use std::collections::HashMap;

use ::tokio::task::JoinHandle;
use bytes::Bytes;

use super::client::{Client, ClientEvents, ClientOutput, ClientSender, Stalled};
use super::clock::TokioClock;
use super::queue::{QueueFull, QueueLimits, QueueStats, wake};
use super::run::{CrashGuard, Driven, Shared, run};
use super::{CLIENT_QUEUE_FULL, CommandError, Stopped};
use crate::close::{CODE_POLICY_VIOLATION, CloseFrame};
use crate::gateway::{self, Frame, Gateway, OpenError, OpenRequest, RouteId, SendError};
use crate::hash::IdHasher;
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

/// Drives a [`Gateway`]. See the [module docs](super).
pub struct GatewayDriver {
    shared: Arc<Shared<GatewayState>>,
}

impl core::fmt::Debug for GatewayDriver {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GatewayDriver").finish_non_exhaustive()
    }
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
                clients: HashMap::default(),
                writable: VecDeque::new(),
                overflowed: Vec::new(),
                limits: options.client_queue,
                next_serial: 0,
                stats: QueueStats::default(),
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

    /// Runs the engine's timer until [`GatewayHandle::shutdown`]; returns the engine. Inputs do
    /// not wait for this task: they run the engine from the task that read them.
    /// Dropping the future before it returned (an aborted task, even one never polled) drops
    /// the engine abruptly.
    pub fn run(self) -> impl Future<Output = Gateway> + Send + 'static {
        run(CrashGuard::new(self.shared))
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
    clients: HashMap<RequestId, Client, IdHasher>,
    /// Requests that became writable, to retry after the current drain.
    writable: VecDeque<RequestId>,
    /// Requests whose outbound queue went past its limits, to close after the current drain.
    overflowed: Vec<RequestId>,
    limits: QueueLimits,
    next_serial: u64,
    stats: QueueStats,
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
            if let Some(request_id) = self.d.overflowed.pop() {
                self.d.overflow(engine, now, request_id);
            } else if let Some(request_id) = self.d.writable.pop_front() {
                self.d.retry(engine, now, request_id);
            } else {
                return;
            }
        }
    }

    fn stop(&mut self) -> Option<Gateway> {
        for client in self.d.clients.values_mut() {
            client.gone = true;
            wake(&mut client.reader);
            wake(&mut client.writer);
        }
        self.engine.take()
    }
}

impl Dispatch {
    fn perform(&mut self, action: gateway::Action) {
        use gateway::Action;
        crate::driver::trace::gateway_action(&action);
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
            } => self.push_out(request_id, ClientOutput::Message { data, binary }),
            Action::CloseClient { request_id, frame } => {
                self.push_out(request_id, ClientOutput::Close(frame));
            }
            Action::Opened {
                request_id,
                hibernatable,
            } => {
                if let Some(c) = self.clients.get_mut(&request_id) {
                    c.opened = true;
                    if c.stalled.is_some() {
                        self.writable.push_back(request_id);
                    } else {
                        wake(&mut c.reader);
                    }
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
                if let Some(c) = self.clients.get_mut(&request_id) {
                    c.gone = true;
                    wake(&mut c.reader);
                    wake(&mut c.writer);
                    if c.events_dropped {
                        self.clients.remove(&request_id);
                    }
                }
                self.io.closed(request_id, &reason);
            }
        }
    }

    /// Queues an output for a client; a queue past its limits is closed after the drain.
    fn push_out(&mut self, request_id: RequestId, out: ClientOutput) {
        let Some(c) = self.clients.get_mut(&request_id) else {
            return;
        };
        if c.closing || c.events_dropped {
            return;
        }
        let len = out.queued_len();
        c.out.push_back(out);
        c.out_bytes += len;
        self.stats.bytes += len;
        self.stats.messages += 1;
        self.stats.peak_bytes = self.stats.peak_bytes.max(c.out_bytes);
        if self.limits.exceeded(c.out_bytes, c.out.len()) {
            c.closing = true;
            self.overflowed.push(request_id);
        }
        wake(&mut c.writer);
    }

    /// A client whose queue went past its limits: drop what is queued, close the request with
    /// a typed reason, tell the client (if it ever reads again).
    fn overflow(&mut self, engine: &mut Gateway, now: Timestamp, request_id: RequestId) {
        let Some(c) = self.clients.get_mut(&request_id) else {
            return;
        };
        let full = QueueFull {
            bytes: c.out_bytes,
            messages: c.out.len(),
            limits: self.limits,
        };
        self.stats.bytes -= c.out_bytes;
        self.stats.messages -= c.out.len();
        self.stats.overflows += 1;
        c.out = VecDeque::new();
        c.out_bytes = 0;
        let frame = CloseFrame::new(CODE_POLICY_VIOLATION, CLIENT_QUEUE_FULL);
        let close = ClientOutput::Close(frame.clone());
        c.out_bytes = close.queued_len();
        self.stats.bytes += c.out_bytes;
        self.stats.messages += 1;
        c.out.push_back(close);
        c.stalled = None;
        wake(&mut c.reader);
        wake(&mut c.writer);
        crate::driver::trace::client_queue_full(request_id);
        self.io.client_queue_full(request_id, &full);
        // Unknown: the request closed meanwhile.
        let _ = engine.client_close(now, request_id, Some(frame));
    }

    /// Hands one client message to the engine; `false` if refused with backpressure.
    fn feed(
        &mut self,
        engine: &mut Gateway,
        now: Timestamp,
        request_id: RequestId,
        data: &[u8],
        binary: bool,
    ) -> bool {
        match engine.client_message(now, request_id, data, binary) {
            Ok(_) => true,
            Err(SendError::Backpressure { .. }) => false,
            Err(e) => {
                self.io.send_error(request_id, &e);
                true
            }
        }
    }

    /// A writable (or newly opened) client: hand over what it stalled, in order.
    fn retry(&mut self, engine: &mut Gateway, now: Timestamp, request_id: RequestId) {
        let Some(c) = self.clients.get_mut(&request_id) else {
            return;
        };
        c.blocked = false;
        if !c.opened {
            return;
        }
        let Some(mut stalled) = c.stalled.take() else {
            wake(&mut c.reader);
            return;
        };
        if let Some((data, binary)) = stalled.message.take()
            && !self.feed(engine, now, request_id, &data, binary)
        {
            stalled.message = Some((data, binary));
            if let Some(c) = self.clients.get_mut(&request_id) {
                c.blocked = true;
                c.stalled = Some(stalled);
            }
            return;
        }
        if stalled.closed {
            let _ = engine.client_close(now, request_id, stalled.close_frame);
        } else if let Some(c) = self.clients.get_mut(&request_id) {
            wake(&mut c.reader);
        }
    }

    fn client(&mut self, request_id: RequestId, serial: u64) -> Option<&mut Client> {
        self.clients
            .get_mut(&request_id)
            .filter(|c| c.serial == serial)
    }
}

/// What the handle and the client halves need from the driver, without its sink's type.
pub(super) trait GatewayPort: Send + Sync {
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
    fn poll_readable(
        &self,
        request_id: RequestId,
        serial: u64,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Stopped>>;
    fn message(
        &self,
        request_id: RequestId,
        serial: u64,
        data: &[u8],
        binary: bool,
    ) -> Result<(), Stopped>;
    /// Hands the message over if the client is readable (`true`); `false` leaves it untouched.
    fn try_message(
        &self,
        request_id: RequestId,
        serial: u64,
        data: &[u8],
        binary: bool,
    ) -> Result<bool, Stopped>;
    fn close(
        &self,
        request_id: RequestId,
        serial: u64,
        frame: Option<CloseFrame>,
    ) -> Result<(), Stopped>;
    fn poll_output(
        &self,
        request_id: RequestId,
        serial: u64,
        cx: &mut Context<'_>,
    ) -> Poll<Option<ClientOutput>>;
    fn events_dropped(&self, request_id: RequestId, serial: u64);
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
            let serial = s.d.next_serial;
            s.d.next_serial += 1;
            // A client of an earlier request with this id that is still draining is replaced;
            // its halves see a different serial and end.
            if let Some(old) = s.d.clients.insert(request_id, Client::new(serial)) {
                s.d.stats.bytes -= old.out_bytes;
                s.d.stats.messages -= old.out.len();
            }
            Ok(serial)
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
        self.lock().state.d.stats
    }

    fn poll_readable(
        &self,
        request_id: RequestId,
        serial: u64,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Stopped>> {
        let mut slot = self.lock();
        if slot.is_stopping() || slot.state.engine.is_none() {
            return Poll::Ready(Err(Stopped));
        }
        let limits = slot.state.d.limits;
        let Some(c) = slot.state.d.client(request_id, serial) else {
            return Poll::Ready(Err(Stopped));
        };
        if c.finished() {
            return Poll::Ready(Err(Stopped));
        }
        if c.readable(&limits) {
            return Poll::Ready(Ok(()));
        }
        c.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    fn message(
        &self,
        request_id: RequestId,
        serial: u64,
        data: &[u8],
        binary: bool,
    ) -> Result<(), Stopped> {
        self.with(|s, now| {
            let limits = s.d.limits;
            let Some(c) = s.d.client(request_id, serial) else {
                return Err(Stopped);
            };
            if c.finished() {
                return Err(Stopped);
            }
            if !c.readable(&limits) && (c.stalled.is_some() || c.blocked || !c.opened) {
                // Handed over without waiting for `readable`: keep it for the retry (one).
                let stalled = c.stalled.get_or_insert_with(Box::default);
                if stalled.message.is_some() || stalled.closed {
                    return Err(Stopped);
                }
                stalled.message = Some((data.to_vec(), binary));
                return Ok(());
            }
            let Some(engine) = s.engine.as_mut() else {
                return Err(Stopped);
            };
            if !s.d.feed(engine, now, request_id, data, binary)
                && let Some(c) = s.d.client(request_id, serial)
            {
                c.blocked = true;
                c.stalled = Some(Box::new(Stalled {
                    message: Some((data.to_vec(), binary)),
                    ..Stalled::default()
                }));
            }
            Ok(())
        })?
    }

    fn try_message(
        &self,
        request_id: RequestId,
        serial: u64,
        data: &[u8],
        binary: bool,
    ) -> Result<bool, Stopped> {
        let mut slot = self.lock();
        {
            let d = &mut slot.state.d;
            let limits = d.limits;
            let Some(c) = d.client(request_id, serial) else {
                return Err(Stopped);
            };
            if c.finished() {
                return Err(Stopped);
            }
            if !c.readable(&limits) {
                return Ok(false);
            }
        }
        self.with_locked(&mut slot, |s, now| {
            let Some(engine) = s.engine.as_mut() else {
                return;
            };
            if !s.d.feed(engine, now, request_id, data, binary)
                && let Some(c) = s.d.client(request_id, serial)
            {
                c.blocked = true;
                c.stalled = Some(Box::new(Stalled {
                    message: Some((data.to_vec(), binary)),
                    ..Stalled::default()
                }));
            }
        })?;
        Ok(true)
    }

    fn close(
        &self,
        request_id: RequestId,
        serial: u64,
        frame: Option<CloseFrame>,
    ) -> Result<(), Stopped> {
        self.with(|s, now| {
            let Some(c) = s.d.client(request_id, serial) else {
                return Err(Stopped);
            };
            if c.gone {
                return Err(Stopped);
            }
            if let Some(stalled) = c.stalled.as_mut() {
                stalled.closed = true;
                stalled.close_frame = frame;
                return Ok(());
            }
            if let Some(engine) = s.engine.as_mut() {
                // Unknown: the request closed meanwhile.
                let _ = engine.client_close(now, request_id, frame);
            }
            Ok(())
        })?
    }

    fn poll_output(
        &self,
        request_id: RequestId,
        serial: u64,
        cx: &mut Context<'_>,
    ) -> Poll<Option<ClientOutput>> {
        let mut slot = self.lock();
        let d = &mut slot.state.d;
        let limits = d.limits;
        let Some(c) = d
            .clients
            .get_mut(&request_id)
            .filter(|c| c.serial == serial)
        else {
            return Poll::Ready(None);
        };
        if let Some(out) = c.out.pop_front() {
            let len = out.queued_len();
            let was_full = limits.soft(c.out_bytes, c.out.len() + 1);
            c.out_bytes -= len;
            d.stats.bytes -= len;
            d.stats.messages -= 1;
            if was_full && c.readable(&limits) {
                wake(&mut c.reader);
            }
            return Poll::Ready(Some(out));
        }
        if c.gone {
            d.clients.remove(&request_id);
            return Poll::Ready(None);
        }
        c.writer = Some(cx.waker().clone());
        Poll::Pending
    }

    fn events_dropped(&self, request_id: RequestId, serial: u64) {
        let mut slot = self.lock();
        let d = &mut slot.state.d;
        let Some(c) = d
            .clients
            .get_mut(&request_id)
            .filter(|c| c.serial == serial)
        else {
            return;
        };
        d.stats.bytes -= c.out_bytes;
        d.stats.messages -= c.out.len();
        if c.gone {
            d.clients.remove(&request_id);
        } else {
            c.events_dropped = true;
            c.out = VecDeque::new();
            c.out_bytes = 0;
        }
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
