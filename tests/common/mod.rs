//! What the integration-test harnesses share: the polling wait every real-time test uses, the
//! pieces of an engine's runner listener (the runner key of a handshake, the batch writer), and
//! starting an actor on a tokio runner driver.
//!
//! A test crate includes it with `mod common;`; a support module (`tests/*_support/`,
//! `tests/interop/`) with `#[path = "../common/mod.rs"] mod common;`. Every wait is a hang guard
//! bounded by the caller's limit, never a timing assertion.

#![allow(dead_code, unreachable_pub)] // each test crate uses a part of it

use std::future::Future;
use std::time::Duration;

use futures_util::{Sink, SinkExt};
use hibernating_ws::driver::control::RunnerOutput;
use hibernating_ws::driver::tokio::RunnerHandle;
use tokio_tungstenite::tungstenite::handshake::server::Request;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as WsCloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Message};

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
