//! The baseline: `driver::control` as it was before it was rebuilt on `driver::tokio`'s pieces
//! (one engine task fed by bounded channels, a channel per runner connection and per client),
//! kept here unchanged apart from its paths so both are measured in the same run. Not a public
//! API; not maintained beyond what the benchmark needs.

#![allow(
    dead_code,
    missing_docs,
    unreachable_pub,
    clippy::pedantic,
    clippy::missing_errors_doc
)]

use std::collections::BTreeMap;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use hibernating_ws::close::CloseFrame;
use hibernating_ws::control::{
    Action, ConnCloseReason, ConnId, ConnectError, Control, OpenError, OpenFailure, OutFrame,
};
use hibernating_ws::gateway::{self, CloseReason, OpenRequest, SendError};
use hibernating_ws::time::{Clock, Timestamp};
use hibernating_ws::wire::{KvRequestData, KvResponseData, RequestId, ToClientKvResponse};

/// Capacity of the engine's input queue.
pub const INPUT_QUEUE: usize = 1024;
/// Frames queued toward one runner connection before it is dropped as too slow.
pub const RUNNER_QUEUE: usize = 16 * 1024;
/// Events queued toward one client before it is closed as too slow.
pub const CLIENT_QUEUE: usize = 16 * 1024;

/// The driver task is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the control driver has stopped")]
pub struct Stopped;

/// A command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError<E> {
    /// The driver task is gone.
    #[error("the control driver has stopped")]
    Stopped,
    /// The engine refused the command.
    #[error(transparent)]
    Engine(E),
}

/// What the engine needs from its embedder besides sockets.
pub trait ControlIo: Send + 'static {
    /// A runner's KV request for `actor_id`; the answer is sent to the runner at once. hws keeps
    /// no KV itself.
    fn kv(&mut self, actor_id: &str, request: KvRequestData) -> KvResponseData;

    /// Every action the driver does not perform itself (runner connected or lost, actor running,
    /// stopped or destroyed, alarms), in order. Called from the driver task: do not block.
    ///
    /// With the `tracing` feature, the default reports each as a `debug` event.
    fn event(&mut self, action: &Action) {
        let _ = action;
    }
}

/// What to do to a runner connection ([`RunnerEvents::recv`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunnerOutput {
    /// Send this frame as a binary WebSocket message.
    Frame(OutFrame),
    /// Close the WebSocket with this reason; nothing follows.
    Close(ConnCloseReason),
}

/// What happens to a client ([`ClientEvents::recv`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The runner accepted the WebSocket: the client may be read.
    Opened {
        /// Whether it survives the actor sleeping.
        hibernatable: bool,
    },
    /// A WebSocket message from the actor.
    Message {
        /// Payload.
        data: Vec<u8>,
        /// Binary (`true`) or text.
        binary: bool,
    },
    /// Close the client's WebSocket with this frame.
    Close(CloseFrame),
    /// The request hibernates (nothing to do: the client socket stays open).
    Hibernated,
    /// A client message was refused and dropped.
    Refused(SendError),
    /// The open failed before it reached the gateway: close the client. Nothing follows.
    OpenFailed(OpenFailure),
    /// The request is gone, for this reason. Nothing follows.
    Closed(CloseReason),
}

type Call = Box<dyn FnOnce(&mut Control, Timestamp) + Send>;

enum Input {
    RunnerConnected {
        key: String,
        reply: oneshot::Sender<Result<(ConnId, mpsc::Receiver<RunnerOutput>), ConnectError>>,
    },
    RunnerFrame {
        conn: ConnId,
        bytes: Vec<u8>,
    },
    RunnerDisconnected {
        conn: ConnId,
    },
    Open {
        request_id: RequestId,
        open: OpenRequest,
        reply: oneshot::Sender<Result<mpsc::Receiver<ClientEvent>, OpenError>>,
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
    Call(Call),
    Shutdown,
}

/// Cloneable handle to a control driver ([`spawn`]).
#[derive(Debug, Clone)]
pub struct ControlHandle {
    tx: mpsc::Sender<Input>,
}

/// Runner → engine half of a runner connection.
#[derive(Debug)]
pub struct RunnerSender {
    conn: ConnId,
    tx: mpsc::Sender<Input>,
}

/// Engine → runner half of a runner connection.
#[derive(Debug)]
pub struct RunnerEvents {
    rx: mpsc::Receiver<RunnerOutput>,
}

/// Client → engine half of a client connection.
#[derive(Debug, Clone)]
pub struct ClientSender {
    request_id: RequestId,
    tx: mpsc::Sender<Input>,
}

/// Engine → client half of a client connection.
#[derive(Debug)]
pub struct ClientEvents {
    rx: mpsc::Receiver<ClientEvent>,
}

impl ControlHandle {
    /// A runner WebSocket connected with `runner_key` (the `runner_key` of its connect URL).
    ///
    /// # Errors
    /// [`CommandError::Engine`] with the engine's [`ConnectError`]; [`CommandError::Stopped`].
    pub async fn runner_connected(
        &self,
        runner_key: impl Into<String>,
    ) -> Result<(RunnerSender, RunnerEvents), CommandError<ConnectError>> {
        let (reply, rx) = oneshot::channel();
        let key = runner_key.into();
        self.send(Input::RunnerConnected { key, reply })
            .await
            .map_err(|_| CommandError::Stopped)?;
        let (conn, events) = rx
            .await
            .map_err(|_| CommandError::Stopped)?
            .map_err(CommandError::Engine)?;
        let sender = RunnerSender {
            conn,
            tx: self.tx.clone(),
        };
        Ok((sender, RunnerEvents { rx: events }))
    }

    /// A client connected ([`Control::open`]). Read it only after [`ClientEvent::Opened`].
    ///
    /// # Errors
    /// [`CommandError::Engine`] with the engine's [`OpenError`]; [`CommandError::Stopped`].
    pub async fn open(
        &self,
        request_id: RequestId,
        open: OpenRequest,
    ) -> Result<(ClientSender, ClientEvents), CommandError<OpenError>> {
        let (reply, rx) = oneshot::channel();
        self.send(Input::Open {
            request_id,
            open,
            reply,
        })
        .await
        .map_err(|_| CommandError::Stopped)?;
        let events = rx
            .await
            .map_err(|_| CommandError::Stopped)?
            .map_err(CommandError::Engine)?;
        let sender = ClientSender {
            request_id,
            tx: self.tx.clone(),
        };
        Ok((sender, ClientEvents { rx: events }))
    }

    /// Runs `f` on the engine with the current time and returns its result; the actions it
    /// caused are performed before the next input.
    ///
    /// # Errors
    /// [`Stopped`].
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Control, Timestamp) -> R + Send + 'static,
    ) -> Result<R, Stopped> {
        let (reply, rx) = oneshot::channel();
        let call: Call = Box::new(move |control, now| {
            let _ = reply.send(f(control, now));
        });
        self.send(Input::Call(call)).await?;
        rx.await.map_err(|_| Stopped)
    }

    /// Stops the driver: the task returns the engine. Inputs queued before are handled first.
    pub async fn shutdown(&self) {
        let _ = self.send(Input::Shutdown).await;
    }

    async fn send(&self, input: Input) -> Result<(), Stopped> {
        self.tx.send(input).await.map_err(|_| Stopped)
    }
}

impl RunnerSender {
    /// The connection's id in the engine.
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// A binary frame from the runner.
    ///
    /// # Errors
    /// [`Stopped`].
    pub async fn frame(&self, bytes: Vec<u8>) -> Result<(), Stopped> {
        let conn = self.conn;
        self.tx
            .send(Input::RunnerFrame { conn, bytes })
            .await
            .map_err(|_| Stopped)
    }

    /// The runner's WebSocket closed.
    pub async fn disconnected(self) {
        let conn = self.conn;
        let _ = self.tx.send(Input::RunnerDisconnected { conn }).await;
    }
}

impl RunnerEvents {
    /// The next output for the runner; `None` once the engine dropped the connection.
    pub async fn recv(&mut self) -> Option<RunnerOutput> {
        self.rx.recv().await
    }

    /// An output already queued, without waiting.
    pub fn try_recv(&mut self) -> Option<RunnerOutput> {
        self.rx.try_recv().ok()
    }
}

impl ClientSender {
    /// The client's request id.
    pub fn request_id(&self) -> RequestId {
        self.request_id
    }

    /// A message from the client.
    ///
    /// # Errors
    /// [`Stopped`].
    pub async fn message(&self, data: Vec<u8>, binary: bool) -> Result<(), Stopped> {
        let request_id = self.request_id;
        self.tx
            .send(Input::ClientMessage {
                request_id,
                data,
                binary,
            })
            .await
            .map_err(|_| Stopped)
    }

    /// The client closed with `frame`, or its stream ended (`None`).
    ///
    /// # Errors
    /// [`Stopped`].
    pub async fn close(&self, frame: Option<CloseFrame>) -> Result<(), Stopped> {
        let request_id = self.request_id;
        self.tx
            .send(Input::ClientClose { request_id, frame })
            .await
            .map_err(|_| Stopped)
    }
}

impl ClientEvents {
    /// The next event; `None` after [`ClientEvent::Closed`] or [`ClientEvent::OpenFailed`], or
    /// once the driver is gone.
    pub async fn recv(&mut self) -> Option<ClientEvent> {
        self.rx.recv().await
    }
}

/// Spawns the driver of `control` on the current runtime. Build `control` (and its gateway) with
/// `clock.now()`. The task returns the engine after [`ControlHandle::shutdown`].
pub fn spawn<Io: ControlIo>(
    control: Control,
    io: Io,
    clock: Clock,
) -> (ControlHandle, JoinHandle<Control>) {
    let (tx, rx) = mpsc::channel(INPUT_QUEUE);
    let driver = Driver {
        control,
        io,
        clock,
        rx,
        runners: BTreeMap::new(),
        clients: BTreeMap::new(),
        next_conn: 1,
    };
    (ControlHandle { tx }, tokio::spawn(driver.run()))
}

struct Driver<Io> {
    control: Control,
    io: Io,
    clock: Clock,
    rx: mpsc::Receiver<Input>,
    runners: BTreeMap<ConnId, mpsc::Sender<RunnerOutput>>,
    clients: BTreeMap<RequestId, mpsc::Sender<ClientEvent>>,
    next_conn: u64,
}

impl<Io: ControlIo> Driver<Io> {
    async fn run(mut self) -> Control {
        loop {
            let deadline = self.control.poll_timeout();
            let sleep = deadline.map(|d| tokio::time::sleep_until(self.clock.instant(d).into()));
            let input = match sleep {
                Some(sleep) => tokio::select! {
                    input = self.rx.recv() => Some(input),
                    () = sleep => None,
                },
                None => Some(self.rx.recv().await),
            };
            let now = self.clock.now();
            if deadline.is_some_and(|d| d <= now) {
                self.control.handle_timeout(now);
                self.drain(now);
            }
            match input {
                Some(Some(Input::Shutdown) | None) => return self.control,
                Some(Some(input)) => {
                    self.handle(now, input);
                    self.drain(now);
                }
                None => {}
            }
        }
    }

    fn handle(&mut self, now: Timestamp, input: Input) {
        match input {
            Input::RunnerConnected { key, reply } => {
                let conn = ConnId(self.next_conn);
                self.next_conn += 1;
                let result = self.control.runner_connected(now, conn, &key).map(|()| {
                    let (tx, rx) = mpsc::channel(RUNNER_QUEUE);
                    self.runners.insert(conn, tx);
                    (conn, rx)
                });
                let _ = reply.send(result);
            }
            Input::RunnerFrame { conn, bytes } => {
                // A dropped frame is counted by the engine; it is only reported.
                let result = self.control.handle_runner_frame(now, conn, &bytes);
                let _ = result;
            }
            Input::RunnerDisconnected { conn } => {
                self.runners.remove(&conn);
                let _ = self.control.runner_disconnected(now, conn);
            }
            Input::Open {
                request_id,
                open,
                reply,
            } => {
                let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
                let result = self.control.open(now, request_id, open);
                if result.is_ok() {
                    self.clients.insert(request_id, tx);
                }
                let _ = reply.send(result.map(|()| rx));
            }
            Input::ClientMessage {
                request_id,
                data,
                binary,
            } => {
                if let Err(e) = self.control.client_message(now, request_id, &data, binary) {
                    self.client(request_id, ClientEvent::Refused(e));
                }
            }
            Input::ClientClose { request_id, frame } => {
                let _ = self.control.client_close(now, request_id, frame);
            }
            Input::Call(f) => f(&mut self.control, now),
            Input::Shutdown => {}
        }
    }

    /// Performs every action; overflowing peers are dropped after the drain.
    fn drain(&mut self, now: Timestamp) {
        loop {
            let mut slow_runners = Vec::new();
            let mut slow_clients = Vec::new();
            while let Some(action) = self.control.poll_action() {
                self.perform(now, action, &mut slow_runners, &mut slow_clients);
            }
            if slow_runners.is_empty() && slow_clients.is_empty() {
                return;
            }
            for conn in slow_runners {
                if self.runners.remove(&conn).is_some() {
                    let _ = self.control.runner_disconnected(now, conn);
                }
            }
            for request_id in slow_clients {
                if self.clients.remove(&request_id).is_some() {
                    let _ = self.control.client_close(now, request_id, None);
                }
            }
        }
    }

    fn perform(
        &mut self,
        now: Timestamp,
        action: Action,
        slow_runners: &mut Vec<ConnId>,
        slow_clients: &mut Vec<RequestId>,
    ) {
        match action {
            Action::Send { conn, frame } => {
                let full = self
                    .runners
                    .get(&conn)
                    .is_some_and(|tx| tx.try_send(RunnerOutput::Frame(frame)).is_err());
                if full {
                    slow_runners.push(conn);
                }
            }
            Action::CloseConnection { conn, reason } => {
                if let Some(tx) = self.runners.remove(&conn) {
                    let _ = tx.try_send(RunnerOutput::Close(reason));
                }
            }
            Action::Gateway(action) => {
                self.gateway_action(action, slow_clients);
            }
            Action::OpenFailed {
                request_id, reason, ..
            } => {
                if let Some(tx) = self.clients.remove(&request_id) {
                    let _ = tx.try_send(ClientEvent::OpenFailed(reason));
                }
            }
            Action::KvRequest { conn, request } => {
                let data = self.io.kv(&request.actor_id, request.data);
                let response = ToClientKvResponse {
                    request_id: request.request_id,
                    data,
                };
                let _ = self.control.kv_response(now, conn, response);
            }
            other => self.io.event(&other),
        }
    }

    fn gateway_action(&mut self, action: gateway::Action, slow: &mut Vec<RequestId>) {
        let (request_id, event) = match action {
            gateway::Action::SendToClient {
                request_id,
                data,
                binary,
            } => (request_id, ClientEvent::Message { data, binary }),
            gateway::Action::CloseClient { request_id, frame } => {
                (request_id, ClientEvent::Close(frame))
            }
            gateway::Action::Opened {
                request_id,
                hibernatable,
            } => (request_id, ClientEvent::Opened { hibernatable }),
            gateway::Action::Hibernated { request_id } => (request_id, ClientEvent::Hibernated),
            gateway::Action::Closed { request_id, reason } => {
                if let Some(tx) = self.clients.remove(&request_id) {
                    let _ = tx.try_send(ClientEvent::Closed(reason));
                }
                return;
            }
            _ => return,
        };
        if self.client(request_id, event) {
            slow.push(request_id);
        }
    }

    /// Queues `event` for a client; `true` if its queue is full.
    fn client(&self, request_id: RequestId, event: ClientEvent) -> bool {
        self.clients
            .get(&request_id)
            .is_some_and(|tx| tx.try_send(event).is_err())
    }
}
