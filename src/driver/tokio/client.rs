//! The two halves of a gateway client: [`ClientSender`] (what the client sends, a
//! [`Sink`](futures_sink::Sink)) and [`ClientEvents`] (what to send it, a
//! [`Stream`](futures_core::Stream)), and the driver's record of each client.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use futures_core::Stream;
use futures_sink::Sink;

use super::Stopped;
use super::clients::ClientPort;
use super::queue::QueueLimits;
use crate::close::CloseFrame;
use crate::gateway::RequestSlot;
use crate::wire::RequestId;

/// What the gateway sends to a client ([`ClientEvents`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientOutput {
    /// A WebSocket message from the actor.
    Message {
        /// Payload (write it to the client's WebSocket as is: `Bytes` is what tungstenite and
        /// axum take).
        data: bytes::Bytes,
        /// Binary (`true`) or text (`false`).
        binary: bool,
    },
    /// Close the client's WebSocket with this frame. Nothing follows.
    Close(CloseFrame),
}

impl ClientOutput {
    /// Bytes this output counts for in the client's queue.
    pub(super) fn queued_len(&self) -> usize {
        let payload = match self {
            Self::Message { data, .. } => data.len(),
            Self::Close(_) => 0,
        };
        payload + core::mem::size_of::<Self>()
    }
}

/// What a client sent, for the [`Sink`] of a [`ClientSender`]. `B` is any byte buffer
/// (`Vec<u8>`, `bytes::Bytes`, a slice): the gateway reads it in place.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientInput<B> {
    /// A WebSocket message.
    Message {
        /// Payload.
        data: B,
        /// Binary (`true`) or text (`false`).
        binary: bool,
    },
    /// The client closed its WebSocket with this frame, or its stream ended without one.
    Close(Option<CloseFrame>),
}

/// Inputs a client sent that the engine could not take yet (refused with backpressure, or
/// handed over before the runner accepted): retried in order when the client is writable.
#[derive(Debug, Default)]
pub(super) struct Stalled {
    pub(super) message: Option<(Vec<u8>, bool)>,
    /// The client closed after the stalled message.
    pub(super) closed: bool,
    /// Its close frame, if it sent one.
    pub(super) close_frame: Option<CloseFrame>,
}

/// A client as the gateway driver sees it.
#[derive(Debug)]
#[allow(clippy::struct_excessive_bools)] // independent flags of one client's life cycle
pub(super) struct Client {
    /// Tells this client apart from an earlier one with the same request id.
    pub(super) serial: u64,
    pub(super) out: VecDeque<ClientOutput>,
    pub(super) out_bytes: usize,
    /// The task waiting in [`ClientSender::readable`].
    pub(super) reader: Option<Waker>,
    /// The task waiting for [`ClientEvents`].
    pub(super) writer: Option<Waker>,
    pub(super) stalled: Option<Box<Stalled>>,
    /// The runner accepted the WebSocket.
    pub(super) opened: bool,
    /// The engine refused a message with backpressure: wait for `ClientWritable`.
    pub(super) blocked: bool,
    /// The request is gone: nothing more is read; the queued outputs drain, then the events end.
    pub(super) gone: bool,
    /// Closed by the adapter (its queue overflowed): further outputs are dropped.
    pub(super) closing: bool,
    /// The [`ClientEvents`] were dropped: outputs are dropped.
    pub(super) events_dropped: bool,
    /// Where the engine holds this client's request, once asked: its messages reach the
    /// engine's state without a second request-id lookup.
    pub(super) engine_slot: Option<RequestSlot>,
}

impl Client {
    pub(super) fn new(serial: u64) -> Self {
        Self {
            serial,
            out: VecDeque::new(),
            out_bytes: 0,
            reader: None,
            writer: None,
            stalled: None,
            opened: false,
            blocked: false,
            gone: false,
            closing: false,
            events_dropped: false,
            engine_slot: None,
        }
    }

    /// Whether the client may be read: the runner accepted it, the engine takes its messages,
    /// nothing is stalled, and its outbound queue is below half its limits.
    pub(super) fn readable(&self, limits: &QueueLimits) -> bool {
        self.opened
            && !self.blocked
            && self.stalled.is_none()
            && !self.gone
            && !self.closing
            && !limits.soft(self.out_bytes, self.out.len())
    }

    /// Whether a reader waits for nothing anymore.
    pub(super) fn finished(&self) -> bool {
        self.gone || self.closing
    }
}

/// Read side of one client, given by [`GatewayHandle::open`](super::GatewayHandle::open) (or the
/// control driver's [`ControlHandle::open`](crate::driver::control::ControlHandle::open)): hand
/// it what the client sends.
///
/// It is a [`Sink`] of [`ClientInput`]s: `poll_ready` is [`readable`](Self::readable), and
/// closing the sink closes the request (`Close(None)`). Read the next frame from the client's
/// socket only when it is ready, so a client the gateway cannot take more from is not read
/// (and TCP pushes back on it) while every other client keeps flowing.
pub struct ClientSender {
    port: Arc<dyn ClientPort>,
    request_id: RequestId,
    serial: u64,
    closed: bool,
}

impl core::fmt::Debug for ClientSender {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClientSender")
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

impl ClientSender {
    pub(super) fn new(port: Arc<dyn ClientPort>, request_id: RequestId, serial: u64) -> Self {
        Self {
            port,
            request_id,
            serial,
            closed: false,
        }
    }

    /// The request this client is.
    pub fn request_id(&self) -> RequestId {
        self.request_id
    }

    /// Waits until the client may be read: after the runner accepted the WebSocket, while the
    /// engine takes this client's messages (no backpressure) and while the client's outbound
    /// queue is below half its limits (a client that does not read is not read either).
    ///
    /// # Errors
    /// [`Stopped`] if the request is closed or the driver is gone.
    pub async fn readable(&mut self) -> Result<(), Stopped> {
        core::future::poll_fn(|cx| self.poll_readable(cx)).await
    }

    /// Polling form of [`readable`](Self::readable).
    ///
    /// # Errors
    /// [`Stopped`] if the request is closed or the driver is gone.
    pub fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Stopped>> {
        if self.closed {
            return Poll::Ready(Err(Stopped));
        }
        self.port.poll_readable(self.request_id, self.serial, cx)
    }

    /// Waits until [`readable`](Self::readable), then hands one client message to the gateway
    /// (read in place; copied only if the engine refuses it with backpressure).
    ///
    /// # Errors
    /// [`Stopped`] if the request is closed or the driver is gone; the message was dropped.
    pub async fn message(&mut self, data: &[u8], binary: bool) -> Result<(), Stopped> {
        loop {
            // One critical section when the client is readable (the common case).
            if self
                .port
                .try_message(self.request_id, self.serial, data, binary)?
            {
                return Ok(());
            }
            self.readable().await?;
        }
    }

    /// The client closed its WebSocket with `frame`, or its stream ended without one (`None`).
    /// Does not wait: messages handed over before are processed first.
    ///
    /// # Errors
    /// [`Stopped`] if the request is gone or the driver is gone.
    pub fn close(mut self, frame: Option<CloseFrame>) -> Result<(), Stopped> {
        self.closed = true;
        self.port.close(self.request_id, self.serial, frame)
    }
}

impl<B: AsRef<[u8]>> Sink<ClientInput<B>> for ClientSender {
    type Error = Stopped;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Stopped>> {
        self.poll_readable(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: ClientInput<B>) -> Result<(), Stopped> {
        if self.closed {
            return Err(Stopped);
        }
        match item {
            ClientInput::Message { data, binary } => {
                self.port
                    .message(self.request_id, self.serial, data.as_ref(), binary)
            }
            ClientInput::Close(frame) => {
                self.closed = true;
                self.port.close(self.request_id, self.serial, frame)
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Stopped>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Stopped>> {
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        self.closed = true;
        // A request that is already gone needs no close.
        let _ = self.port.close(self.request_id, self.serial, None);
        Poll::Ready(Ok(()))
    }
}

/// Write side of one client, given by [`GatewayHandle::open`](super::GatewayHandle::open) (or
/// [`ControlHandle::open`](crate::driver::control::ControlHandle::open)): what
/// to send to the client, a [`Stream`] of [`ClientOutput`]s. It ends once the request is gone
/// and everything queued before was taken (after a [`ClientOutput::Close`] if the gateway
/// closed it).
///
/// The queue behind it is bounded ([`GatewayOptions::client_queue`](super::GatewayOptions)):
/// at half its limits the client is not read anymore; past them the gateway closes the request
/// with [`CLIENT_QUEUE_FULL`](super::CLIENT_QUEUE_FULL) and drops what was queued.
///
/// Dropping it while the request is live closes the request as if the client's stream had
/// ended (nobody writes to the client anymore).
pub struct ClientEvents {
    port: Arc<dyn ClientPort>,
    request_id: RequestId,
    serial: u64,
}

impl core::fmt::Debug for ClientEvents {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClientEvents")
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

impl ClientEvents {
    pub(super) fn new(port: Arc<dyn ClientPort>, request_id: RequestId, serial: u64) -> Self {
        Self {
            port,
            request_id,
            serial,
        }
    }

    /// The next output for the client; `None` once the request is gone and its queue drained.
    pub async fn recv(&mut self) -> Option<ClientOutput> {
        core::future::poll_fn(|cx| self.port.poll_output(self.request_id, self.serial, cx)).await
    }
}

impl Stream for ClientEvents {
    type Item = ClientOutput;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ClientOutput>> {
        self.port.poll_output(self.request_id, self.serial, cx)
    }
}

impl Drop for ClientEvents {
    fn drop(&mut self) {
        self.port.events_dropped(self.request_id, self.serial);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an open idle client costs the adapter beyond the engine: its record in the
    /// driver's map (key, value, one control byte of the hash table) and its two halves.
    #[test]
    fn an_idle_client_costs_the_adapter_at_most_256_bytes() {
        let record = core::mem::size_of::<(RequestId, Client)>() + 1;
        let halves = core::mem::size_of::<ClientSender>() + core::mem::size_of::<ClientEvents>();
        println!("record {record} B + halves {halves} B");
        assert!(
            record + halves <= 256,
            "record {record} B + halves {halves} B"
        );
        // An idle client allocates nothing: its queue and its stalled inputs are empty.
        let client = Client::new(0);
        assert_eq!(client.out.capacity(), 0);
        assert!(client.stalled.is_none());
    }
}
