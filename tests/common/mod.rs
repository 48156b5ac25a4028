//! What the integration-test harnesses share: the polling wait every real-time test uses, the
//! pieces of an engine's runner listener (the runner key of a handshake, the batch writer), what
//! a client of an engine sees (`ClientEvent`), and starting an actor on a tokio runner driver.
//!
//! A test crate includes it with `mod common;`; a support module (`tests/*_support/`,
//! `tests/interop/`) with `#[path = "../common/mod.rs"] mod common;`. Every wait is a hang guard
//! bounded by the caller's limit, never a timing assertion.

#![allow(dead_code, unreachable_pub)] // each test crate uses a part of it

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::{Sink, SinkExt};
use hibernating_ws::CloseFrame;
use hibernating_ws::driver::control::RunnerOutput;
use hibernating_ws::driver::tokio::{ClientOutput, RunnerHandle};
use hibernating_ws::gateway::CloseReason;
use hibernating_ws::wire::RequestId;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as WsCloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Message};

/// What a test client of an engine saw: its outputs ([`ClientOutput`]) and its request's
/// life-cycle hooks (`ControlIo::opened`, `hibernated`, `closed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The runner accepted the WebSocket.
    Opened {
        /// Whether it survives the actor sleeping.
        hibernatable: bool,
    },
    /// A message from the actor.
    Message {
        /// Payload.
        data: Vec<u8>,
        /// Binary or text.
        binary: bool,
    },
    /// Close the client's WebSocket with this frame.
    Close(CloseFrame),
    /// The request hibernates.
    Hibernated,
    /// The request is gone, for this reason.
    Closed(CloseReason),
}

/// Each request's life-cycle events, in order.
pub type Lifecycle = BTreeMap<RequestId, VecDeque<ClientEvent>>;

/// The next life-cycle event of `request_id`, if one is queued.
pub fn next_lifecycle(lifecycle: &Mutex<Lifecycle>, request_id: RequestId) -> Option<ClientEvent> {
    lifecycle
        .lock()
        .expect("lifecycle lock")
        .get_mut(&request_id)
        .and_then(VecDeque::pop_front)
}

/// `resp` answering the `rivet` subprotocol, which the official runner's WebSocket library
/// requires to be selected.
pub fn rivet_protocol(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("rivet"));
    resp
}

/// A client output as a [`ClientEvent`].
pub fn output(out: ClientOutput) -> ClientEvent {
    match out {
        ClientOutput::Message { data, binary } => ClientEvent::Message {
            data: data.to_vec(),
            binary,
        },
        ClientOutput::Close(frame) => ClientEvent::Close(frame),
        other => panic!("unexpected output {other:?}"),
    }
}

/// Polls `f` every `every` until it returns `Some`; panics after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, every: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(every).await;
    }
}

/// Polls the synchronous `f` every 5 ms until it holds; panics after `limit`.
pub async fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let every = Duration::from_millis(5);
    eventually(what, limit, every, || std::future::ready(f().then_some(()))).await;
}

/// The runner key of an upgrade to an engine's runner endpoint
/// (`/runners/connect?protocol_version=7&runner_key=KEY`); `None` for any other request.
pub fn runner_key(req: &Request) -> Option<String> {
    let query = req.uri().query().unwrap_or_default();
    if req.uri().path() != "/runners/connect"
        || !query.split('&').any(|p| p == "protocol_version=7")
    {
        return None;
    }
    query
        .split('&')
        .find_map(|p| p.strip_prefix("runner_key="))
        .map(str::to_string)
}

/// Writes a batch of a runner connection's outputs with one flush; `false` once the connection
/// must end (a write failed, or the engine closed it: the close frame is sent first).
pub async fn write_batch<S>(sink: &mut S, batch: &mut Vec<RunnerOutput>) -> bool
where
    S: Sink<Message> + Unpin,
{
    for out in batch.drain(..) {
        match out {
            RunnerOutput::Frame(frame) => {
                let msg = Message::Binary(Bytes::from(frame.into_vec()));
                if sink.feed(msg).await.is_err() {
                    return false;
                }
            }
            RunnerOutput::Close(reason) => {
                let frame = WsCloseFrame {
                    code: 1000.into(),
                    reason: reason.reason().into(),
                };
                let _ = sink.send(Message::Close(Some(frame))).await;
                return false;
            }
            _ => {}
        }
    }
    sink.flush().await.is_ok()
}

/// Starts `actor` on the runner with nothing to restore.
pub fn start_actor(rn: &RunnerHandle, actor: &str) {
    rn.call(|r, now| r.actor_starting(now, actor, Vec::new()))
        .expect("driver runs")
        .expect("starting");
    rn.call(|r, now| r.restore(now, actor, Vec::new()))
        .expect("driver runs")
        .expect("restore");
}
