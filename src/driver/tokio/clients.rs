//! The client table of an engine that hosts a gateway (the [`Gateway`] itself, or the
//! [`Control`] engine that owns one), shared by the gateway driver and the control driver: each
//! client's bounded outbound queue, the backpressure rule, the retry of stalled input, and the
//! port the client halves ([`ClientSender`](super::ClientSender),
//! [`ClientEvents`](super::ClientEvents)) talk to.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::task::{Context, Poll};
use std::collections::HashMap;

use super::client::{Client, ClientOutput, Stalled};
use super::queue::{QueueFull, QueueLimits, QueueStats, wake};
use super::run::{Driven, Shared};
use super::{CLIENT_QUEUE_FULL, Stopped};
use crate::close::{CODE_POLICY_VIOLATION, CloseFrame};
use crate::control::Control;
use crate::gateway::{self, CloseReason, Gateway, RequestSlot, SendError};
use crate::hash::IdHasher;
use crate::time::Timestamp;
use crate::wire::RequestId;

/// The client input of an engine that hosts a gateway.
pub(super) trait ClientHost {
    /// Where the engine holds live request `request_id` (`None` if it does not).
    fn request_slot(&self, request_id: RequestId) -> Option<RequestSlot>;

    /// Hands one client message to the engine: through the request's slot handle if `at` has
    /// one (no request-id lookup in the engine), by its id otherwise.
    fn client_message(
        &mut self,
        now: Timestamp,
        request: (RequestId, Option<RequestSlot>),
        data: &[u8],
        binary: bool,
    ) -> Result<(), SendError>;

    /// The client closed. `true` if the request ended without a `Closed` action to follow (an
    /// open that was still waiting for its actor).
    fn client_close(
        &mut self,
        now: Timestamp,
        request_id: RequestId,
        frame: Option<CloseFrame>,
    ) -> bool;
}

/// The client input both engines take the same way: [`ClientHost::request_slot`] and
/// [`ClientHost::client_message`], delegated to the engine's methods of those names.
macro_rules! client_input {
    ($engine:ident) => {
        fn request_slot(&self, request_id: RequestId) -> Option<RequestSlot> {
            $engine::request_slot(self, request_id)
        }

        fn client_message(
            &mut self,
            now: Timestamp,
            (request_id, at): (RequestId, Option<RequestSlot>),
            data: &[u8],
            binary: bool,
        ) -> Result<(), SendError> {
            match at {
                Some(at) => $engine::client_message_at(self, now, at, request_id, data, binary),
                None => $engine::client_message(self, now, request_id, data, binary),
            }
            .map(|_| ())
        }
    };
}

impl ClientHost for Gateway {
    client_input!(Gateway);

    fn client_close(
        &mut self,
        now: Timestamp,
        request_id: RequestId,
        frame: Option<CloseFrame>,
    ) -> bool {
        // Unknown: the request closed meanwhile.
        let _ = Gateway::client_close(self, now, request_id, frame);
        false
    }
}

impl ClientHost for Control {
    client_input!(Control);

    fn client_close(
        &mut self,
        now: Timestamp,
        request_id: RequestId,
        frame: Option<CloseFrame>,
    ) -> bool {
        let waiting = self.gateway().request(request_id).is_none();
        // Unknown: the request closed meanwhile.
        Control::client_close(self, now, request_id, frame).is_ok() && waiting
    }
}

/// The embedder's hooks the client table reports to.
pub(super) trait ClientHooks {
    /// A client message was refused for a reason other than backpressure; it was dropped.
    fn send_error(&mut self, request_id: RequestId, error: &SendError);
    /// A client did not read: its queue went past its limits and the request was closed.
    fn client_queue_full(&mut self, request_id: RequestId, full: &QueueFull);
    /// The runner accepted the client's WebSocket.
    fn opened(&mut self, request_id: RequestId, hibernatable: bool);
    /// The client's request hibernates.
    fn hibernated(&mut self, request_id: RequestId);
    /// The client's request is gone.
    fn closed(&mut self, request_id: RequestId, reason: &CloseReason);
}

/// [`ClientHooks`] for a boxed embedder sink `$io` that has methods of the same names.
macro_rules! client_hooks {
    ($io:path) => {
        impl ClientHooks for Box<dyn $io> {
            fn send_error(
                &mut self,
                request_id: $crate::wire::RequestId,
                error: &$crate::gateway::SendError,
            ) {
                (**self).send_error(request_id, error);
            }

            fn client_queue_full(
                &mut self,
                request_id: $crate::wire::RequestId,
                full: &$crate::driver::tokio::QueueFull,
            ) {
                (**self).client_queue_full(request_id, full);
            }

            fn opened(&mut self, request_id: $crate::wire::RequestId, hibernatable: bool) {
                (**self).opened(request_id, hibernatable);
            }

            fn hibernated(&mut self, request_id: $crate::wire::RequestId) {
                (**self).hibernated(request_id);
            }

            fn closed(
                &mut self,
                request_id: $crate::wire::RequestId,
                reason: &$crate::gateway::CloseReason,
            ) {
                (**self).closed(request_id, reason);
            }
        }
    };
}
pub(super) use client_hooks;

/// A driver's state with a client table.
pub(super) trait ClientState: Driven {
    /// The engine the clients talk to.
    type Host: ClientHost;
    /// The engine (unless the driver stopped), the client table and the hooks, borrowed at once.
    fn parts(&mut self) -> (Option<&mut Self::Host>, &mut Clients, &mut dyn ClientHooks);
}

/// [`ClientState`] for a driver state `$state` over engine `$host` that keeps the engine in
/// `engine` and the client table and the hooks in `d.clients` and `d.io`.
macro_rules! client_state {
    ($state:ty, $host:ty) => {
        impl ClientState for $state {
            type Host = $host;

            fn parts(&mut self) -> (Option<&mut $host>, &mut Clients, &mut dyn ClientHooks) {
                (self.engine.as_mut(), &mut self.d.clients, &mut self.d.io)
            }
        }
    };
}
pub(super) use client_state;

/// Every client of a driver.
pub(super) struct Clients {
    map: HashMap<RequestId, Client, IdHasher>,
    /// Requests that became writable, to retry after the current drain.
    writable: VecDeque<RequestId>,
    /// Requests whose outbound queue went past its limits, to close after the current drain.
    overflowed: Vec<RequestId>,
    limits: QueueLimits,
    next_serial: u64,
    stats: QueueStats,
}

impl Clients {
    pub(super) fn new(limits: QueueLimits) -> Self {
        Self {
            map: HashMap::default(),
            writable: VecDeque::new(),
            overflowed: Vec::new(),
            limits,
            next_serial: 0,
            stats: QueueStats::default(),
        }
    }

    pub(super) fn stats(&self) -> QueueStats {
        self.stats
    }

    /// Performs a gateway action that concerns a client (its output, its opening, its
    /// hibernation, its end, its writability), reporting to `hooks`; hands back the others.
    pub(super) fn gateway_action(
        &mut self,
        hooks: &mut dyn ClientHooks,
        action: gateway::Action,
    ) -> Option<gateway::Action> {
        use gateway::Action;
        crate::driver::trace::gateway_action(&action);
        match action {
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
                self.opened(request_id);
                hooks.opened(request_id, hibernatable);
            }
            Action::Hibernated { request_id } => hooks.hibernated(request_id),
            Action::ClientWritable { request_id } => self.writable(request_id),
            Action::Closed { request_id, reason } => {
                self.closed(request_id);
                hooks.closed(request_id, &reason);
            }
            other => return Some(other),
        }
        None
    }

    /// A new client for `request_id` (just opened in the engine); returns its serial. A client
    /// of an earlier request with this id that is still draining is replaced; its halves see a
    /// different serial and end.
    pub(super) fn insert(&mut self, request_id: RequestId) -> u64 {
        let serial = self.next_serial;
        self.next_serial += 1;
        if let Some(old) = self.map.insert(request_id, Client::new(serial)) {
            self.stats.bytes -= old.out_bytes;
            self.stats.messages -= old.out.len();
        }
        serial
    }

    /// The runner accepted the WebSocket: the client may be read.
    pub(super) fn opened(&mut self, request_id: RequestId) {
        if let Some(c) = self.map.get_mut(&request_id) {
            c.opened = true;
            if c.stalled.is_some() {
                self.writable.push_back(request_id);
            } else {
                wake(&mut c.reader);
            }
        }
    }

    /// The engine takes this client's messages again.
    pub(super) fn writable(&mut self, request_id: RequestId) {
        self.writable.push_back(request_id);
    }

    /// The request is gone: nothing more is read; what is queued drains, then the events end.
    pub(super) fn closed(&mut self, request_id: RequestId) {
        if let Some(c) = self.map.get_mut(&request_id) {
            c.gone = true;
            wake(&mut c.reader);
            wake(&mut c.writer);
            if c.events_dropped {
                self.map.remove(&request_id);
            }
        }
    }

    /// The driver stops: every client ends.
    pub(super) fn stop(&mut self) {
        for client in self.map.values_mut() {
            client.gone = true;
            wake(&mut client.reader);
            wake(&mut client.writer);
        }
    }

    /// Queues an output for a client; a queue past its limits is closed after the drain.
    pub(super) fn push_out(&mut self, request_id: RequestId, out: ClientOutput) {
        let Some(c) = self.map.get_mut(&request_id) else {
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

    /// One follow-up of a drain (the close of an overflowing queue, or the retry of a writable
    /// client); `false` when none is left. Drain the engine's actions after each.
    pub(super) fn follow_up<H: ClientHost + ?Sized>(
        &mut self,
        host: &mut H,
        now: Timestamp,
        hooks: &mut dyn ClientHooks,
    ) -> bool {
        if let Some(request_id) = self.overflowed.pop() {
            self.overflow(host, now, hooks, request_id);
        } else if let Some(request_id) = self.writable.pop_front() {
            self.retry(host, now, hooks, request_id);
        } else {
            return false;
        }
        true
    }

    /// A client whose queue went past its limits: drop what is queued, close the request with
    /// a typed reason, tell the client (if it ever reads again).
    fn overflow<H: ClientHost + ?Sized>(
        &mut self,
        host: &mut H,
        now: Timestamp,
        hooks: &mut dyn ClientHooks,
        request_id: RequestId,
    ) {
        let Some(c) = self.map.get_mut(&request_id) else {
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
        hooks.client_queue_full(request_id, &full);
        if host.client_close(now, request_id, Some(frame)) {
            self.closed(request_id);
        }
    }

    /// Hands one client message to the engine (through its slot handle `at` if known);
    /// `false` if refused with backpressure.
    fn feed<H: ClientHost + ?Sized>(
        host: &mut H,
        now: Timestamp,
        hooks: &mut dyn ClientHooks,
        (request_id, at): (RequestId, Option<RequestSlot>),
        data: &[u8],
        binary: bool,
    ) -> bool {
        match host.client_message(now, (request_id, at), data, binary) {
            Ok(()) => true,
            Err(SendError::Backpressure { .. }) => false,
            Err(e) => {
                hooks.send_error(request_id, &e);
                true
            }
        }
    }

    /// Feeds a message to the engine; one refused with backpressure is kept for the retry.
    /// `at` is the client's engine slot handle if the record has it; otherwise the engine is
    /// asked once and the record keeps the answer, so later messages skip the engine's
    /// request-id lookup.
    #[allow(clippy::too_many_arguments)] // one client message: its client, its handle, its data
    fn feed_or_stall<H: ClientHost + ?Sized>(
        &mut self,
        host: &mut H,
        now: Timestamp,
        hooks: &mut dyn ClientHooks,
        (request_id, serial): (RequestId, u64),
        at: Option<RequestSlot>,
        data: &[u8],
        binary: bool,
    ) {
        let at = at.or_else(|| {
            let at = host.request_slot(request_id)?;
            if let Some(c) = self.client(request_id, serial) {
                c.engine_slot = Some(at);
            }
            Some(at)
        });
        if !Self::feed(host, now, hooks, (request_id, at), data, binary)
            && let Some(c) = self.client(request_id, serial)
        {
            c.blocked = true;
            c.stalled = Some(Box::new(Stalled {
                message: Some((data.to_vec(), binary)),
                ..Stalled::default()
            }));
        }
    }

    /// A writable (or newly opened) client: hand over what it stalled, in order.
    fn retry<H: ClientHost + ?Sized>(
        &mut self,
        host: &mut H,
        now: Timestamp,
        hooks: &mut dyn ClientHooks,
        request_id: RequestId,
    ) {
        let Some(c) = self.map.get_mut(&request_id) else {
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
            && !Self::feed(host, now, hooks, (request_id, None), &data, binary)
        {
            stalled.message = Some((data, binary));
            if let Some(c) = self.map.get_mut(&request_id) {
                c.blocked = true;
                c.stalled = Some(stalled);
            }
            return;
        }
        if stalled.closed {
            if host.client_close(now, request_id, stalled.close_frame) {
                self.closed(request_id);
            }
        } else if let Some(c) = self.map.get_mut(&request_id) {
            wake(&mut c.reader);
        }
    }

    fn client(&mut self, request_id: RequestId, serial: u64) -> Option<&mut Client> {
        self.map.get_mut(&request_id).filter(|c| c.serial == serial)
    }
}

/// What the client halves need from their driver.
pub(super) trait ClientPort: Send + Sync {
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

impl<S: ClientState> ClientPort for Shared<S> {
    fn poll_readable(
        &self,
        request_id: RequestId,
        serial: u64,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Stopped>> {
        let mut slot = self.lock();
        let stopping = slot.is_stopping();
        let (host, clients, _) = slot.state.parts();
        if stopping || host.is_none() {
            return Poll::Ready(Err(Stopped));
        }
        let limits = clients.limits;
        let Some(c) = clients.client(request_id, serial) else {
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
            let (host, clients, hooks) = s.parts();
            let limits = clients.limits;
            let Some(c) = clients.client(request_id, serial) else {
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
            let at = c.engine_slot;
            let Some(host) = host else {
                return Err(Stopped);
            };
            clients.feed_or_stall(host, now, hooks, (request_id, serial), at, data, binary);
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
        let at = {
            let (_, clients, _) = slot.state.parts();
            let limits = clients.limits;
            let Some(c) = clients.client(request_id, serial) else {
                return Err(Stopped);
            };
            if c.finished() {
                return Err(Stopped);
            }
            if !c.readable(&limits) {
                return Ok(false);
            }
            c.engine_slot
        };
        self.with_locked(&mut slot, |s, now| {
            let (host, clients, hooks) = s.parts();
            if let Some(host) = host {
                clients.feed_or_stall(host, now, hooks, (request_id, serial), at, data, binary);
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
            let (host, clients, _) = s.parts();
            let Some(c) = clients.client(request_id, serial) else {
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
            if let Some(host) = host
                && host.client_close(now, request_id, frame)
            {
                clients.closed(request_id);
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
        let (_, d, _) = slot.state.parts();
        let limits = d.limits;
        let Some(c) = d.map.get_mut(&request_id).filter(|c| c.serial == serial) else {
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
            d.map.remove(&request_id);
            return Poll::Ready(None);
        }
        c.writer = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Nobody writes to the client anymore: its outputs are dropped, and a request still live
    /// is closed as if the client's stream had ended.
    fn events_dropped(&self, request_id: RequestId, serial: u64) {
        let mut slot = self.lock();
        {
            let (_, d, _) = slot.state.parts();
            let Some(c) = d.map.get_mut(&request_id).filter(|c| c.serial == serial) else {
                return;
            };
            d.stats.bytes -= c.out_bytes;
            d.stats.messages -= c.out.len();
            if c.gone {
                d.map.remove(&request_id);
                return;
            }
            c.events_dropped = true;
            c.out = VecDeque::new();
            c.out_bytes = 0;
            c.stalled = None;
        }
        // Stopped: every client ends anyway.
        let _ = self.with_locked(&mut slot, |s, now| {
            let (host, d, _) = s.parts();
            if let Some(host) = host
                && host.client_close(now, request_id, None)
            {
                d.closed(request_id);
            }
        });
    }
}
