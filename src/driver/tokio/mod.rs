//! The tokio adapter: each engine runs in the task that has its input.
//!
//! An engine sits behind a short critical section (a mutex held for one input and the
//! dispatch of the actions it caused). The task that reads a socket hands the frame to the
//! engine itself, in place: there is no driver task and no channel between a socket and the
//! engine. Outputs go to bounded queues drained by the tasks that write the sockets, which
//! take everything queued at once and flush once per burst. One task per engine sleeps until
//! its next deadline ([`GatewayDriver::run`], [`RunnerDriver::run`]).
//!
//! * [`GatewayDriver`] drives a [`Gateway`](crate::gateway::Gateway). Runner frames and commands
//!   come through a cloneable [`GatewayHandle`]; each client has a [`ClientSender`] (a `Sink`
//!   of what it sends) and a [`ClientEvents`] (a `Stream` of what to send it). Runner-bound and
//!   storage-bound actions go to a [`GatewayIo`] sink.
//! * [`RunnerDriver`] drives a [`Runner`](crate::runner::Runner). Gateway frames and app commands
//!   come through a cloneable [`RunnerHandle`]; frames for the gateways go to a [`RunnerIo`]
//!   sink; every other action goes to the app through [`AppEvents`] (a `Stream`).
//!
//! Time comes from a [`TokioClock`], which turns [`tokio::time::Instant`] into
//! [`Timestamp`](crate::Timestamp)s, so a runtime with paused time
//! (`#[tokio::test(start_paused = true)]`) drives the engines' timers deterministically.
//! Whether a deadline expired is decided by comparing the clock with it after every wake-up,
//! never by trusting that the sleep fired.
//!
//! # Bounded queues and backpressure
//!
//! Every queue has limits in bytes and items ([`QueueLimits`]):
//!
//! * A client is read only through its [`ClientSender`], which is ready once the runner
//!   accepted the WebSocket, while the engine does not refuse the client's messages with
//!   backpressure, and while the client's outbound queue is below half its limits. A reader
//!   that waits for it before reading the next frame stops reading that client (TCP pushes back
//!   on it) while every other client keeps flowing. A client whose outbound queue still goes
//!   past its limits (it does not read, and the actor keeps sending) is closed with
//!   [`CLIENT_QUEUE_FULL`]; what was queued for it is dropped.
//! * The app's queue ([`AppEvents`]): at half its limits, [`RunnerHandle::frame`] waits, so
//!   the gateway links are not read faster than the app works.
//! * Link frames go to an [`Outbox`] per link: a link whose writer does not keep up goes past
//!   its limits, the outbox closes with [`QueueFull`], and the link is dropped (the engines
//!   handle a lost link).
//!
//! # Sinks
//!
//! [`GatewayIo`] and [`RunnerIo`] methods are called inside the critical section, in the order
//! the engine emitted the actions. They must not block: queue the work ([`Outbox::push`] for
//! frames, a channel to another task for storage).
//!
//! # Example
//!
//! A gateway and a runner connected in memory, with paused time.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use hibernating_ws::driver::tokio::{
//!     outbox, ClientOutput, GatewayDriver, GatewayIo, Outbox, QueueLimits, RunnerDriver,
//!     RunnerIo, TokioClock,
//! };
//! use hibernating_ws::gateway::{Frame, Gateway, GatewayConfig, OpenRequest, RouteId};
//! use hibernating_ws::runner::{Action, Runner, RunnerConfig};
//! use hibernating_ws::wire::{GatewayId, RequestId};
//!
//! // The gateway publishes to the runner through an outbox standing for the network.
//! struct ToRunner(Outbox<Frame>);
//! impl GatewayIo for ToRunner {
//!     fn publish(&mut self, _: RouteId, _: RequestId, frame: Frame) {
//!         let _ = self.0.push(frame);
//!     }
//!     fn request_wake(&mut self, _: RequestId, _: String) {}
//!     fn upsert_hibernating_record(&mut self, _: RequestId, _: String) {}
//!     fn delete_hibernating_record(&mut self, _: RequestId, _: String) {}
//! }
//! // The runner publishes to the gateway.
//! struct ToGateway(Outbox<Vec<u8>>);
//! impl RunnerIo for ToGateway {
//!     fn publish(&mut self, _: GatewayId, frame: Vec<u8>) {
//!         let _ = self.0.push(frame);
//!     }
//! }
//!
//! let clock = TokioClock::new();
//! let (to_runner, mut runner_rx) = outbox(QueueLimits::LINK);
//! let (to_gateway, mut gateway_rx) = outbox(QueueLimits::LINK);
//!
//! let gateway = Gateway::new(GatewayConfig::default(), GatewayId([1; 4]), clock.now())?;
//! let (gw, gw_task) = GatewayDriver::spawn(gateway, ToRunner(to_runner), clock);
//! let runner = Runner::new(RunnerConfig::default(), clock.now())?;
//! let (rn, mut app, rn_task) = RunnerDriver::spawn(runner, ToGateway(to_gateway), clock);
//!
//! // The "network": frames flow both ways, a batch at a time.
//! let rn2 = rn.clone();
//! tokio::spawn(async move {
//!     let mut batch = Vec::new();
//!     while runner_rx.recv_many(&mut batch).await > 0 {
//!         for f in batch.drain(..) { let _ = rn2.frame(f.as_ref()).await; }
//!     }
//! });
//! let gw2 = gw.clone();
//! tokio::spawn(async move {
//!     let mut batch = Vec::new();
//!     while gateway_rx.recv_many(&mut batch).await > 0 {
//!         for f in batch.drain(..) { let _ = gw2.runner_frame(RouteId(1), &f); }
//!     }
//! });
//!
//! // The app: an actor that accepts every socket and echoes every message.
//! rn.call(|r, now| r.actor_starting(now, "actor", Vec::new()))??;
//! rn.call(|r, now| r.restore(now, "actor", Vec::new()))??;
//! let app_rn = rn.clone();
//! tokio::spawn(async move {
//!     while let Some(action) = app.recv().await {
//!         let _ = app_rn.call(|r, now| match action {
//!             Action::Open { socket, .. } => { let _ = r.accept(now, socket, true); }
//!             Action::Message { socket, data, binary, .. } => { let _ = r.send(now, socket, &data, binary); }
//!             Action::Persist { socket, server_index, .. } => { let _ = r.persisted(now, socket, server_index); }
//!             _ => {}
//!         });
//!     }
//! });
//!
//! // A client: open, wait for the accept, send, read the echo.
//! let open = OpenRequest::new("actor", "/")?;
//! let (mut sender, mut events) = gw.open(RequestId([7; 4]), RouteId(1), open)?;
//! sender.message(b"hello", false).await?;
//! let echo = events.recv().await;
//! assert_eq!(echo, Some(ClientOutput::Message { data: b"hello".to_vec(), binary: false }));
//!
//! // The runner persists after its debounce (5 s of paused time) and acks: nothing is pending.
//! tokio::time::sleep(std::time::Duration::from_secs(6)).await;
//! assert_eq!(gw.call(|g, _| g.stats())?.pending_messages, 0);
//!
//! sender.close(None)?;
//! gw.shutdown();
//! rn.shutdown();
//! let gateway = gw_task.await?;
//! assert_eq!(gateway.stats().closed_by_client, 1);
//! let _runner = rn_task.await?;
//! # Ok(())
//! # }
//! ```

mod client;
mod clients;
mod clock;
pub mod control;
mod gateway;
mod hash;
pub(crate) mod queue;
pub(crate) mod run;
mod runner;

pub use client::{ClientEvents, ClientInput, ClientOutput, ClientSender};
pub use clock::TokioClock;
pub use gateway::{GatewayDriver, GatewayHandle, GatewayIo, GatewayOptions};
pub use queue::{Outbox, OutboxReceiver, QueueFull, QueueLimits, QueueStats, outbox};
pub use runner::{AppEvents, RunnerDriver, RunnerHandle, RunnerIo, RunnerOptions};

/// The close reason a client gets (with code 1008, policy violation) when the gateway closed
/// it for not reading: its outbound queue went past its [`QueueLimits`].
pub const CLIENT_QUEUE_FULL: &str = "hws.client_queue_full";

/// The driver is gone: it was shut down, or its task was aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, thiserror::Error)]
#[error("the driver has stopped")]
pub struct Stopped;

/// Why a command sent through a handle failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError<E> {
    /// The driver is gone.
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
