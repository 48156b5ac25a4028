//! What the end-to-end tests share: the demo's code (`examples/demo/`, included with `#[path]`),
//! a gateway and a runner on 127.0.0.1 (port 0), a client's message stream, and a bounded wait
//! for an event.
//!
//! Real time, not paused: the storage writes are blocking fsyncs on tokio's blocking pool, and
//! paused time auto-advances (firing the engines' timeouts) whenever the runtime waits on them.
//! No timing assertions: every wait is for an event, bounded by [`WAIT`], which only fails a
//! broken system.
#![allow(dead_code, unreachable_pub)]

#[path = "../common/mod.rs"]
mod common;
#[path = "../../examples/demo/lib.rs"]
pub mod demo;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use demo::client::Client;
use demo::gateway::{GatewayOptions, GatewayServer, Schedule};
use demo::payload;
use demo::runner::{RunnerInstance, RunnerOptions};
use demo::scenario::DataDir;
use demo::storage::StorageKind;
use hibernating_ws::gateway::GatewayConfig;
use hibernating_ws::runner::RunnerConfig;

/// The longest any test waits for one event.
pub const WAIT: Duration = Duration::from_secs(20);

/// A gateway with `config`, on a free port of 127.0.0.1.
pub async fn gateway(config: GatewayConfig) -> GatewayServer {
    GatewayServer::start(GatewayOptions::new(
        "127.0.0.1:0".into(),
        config,
        Schedule::default(),
    ))
    .await
    .expect("gateway starts")
}

/// A runner engine configuration that persists after 10 ms.
pub fn fast_runner() -> RunnerConfig {
    RunnerConfig::default().with_persist_interval(Duration::from_millis(10))
}

/// Options of a runner `name` connecting to `server` with its token, keeping its actors in
/// `dir` (file storage, [`fast_runner`], counters every 20 ms, no load delay).
pub fn runner_options(server: &GatewayServer, dir: &DataDir, name: &str) -> RunnerOptions {
    RunnerOptions {
        gateway: server.url(),
        name: name.into(),
        data_dir: dir.path.clone(),
        storage: StorageKind::File,
        config: fast_runner(),
        report_interval: Duration::from_millis(20),
        delivered: Arc::default(),
        load_delay: Duration::ZERO,
        token: server.runner_token().into(),
        websocket: GatewayOptions::default().websocket,
    }
}

/// A runner started with `options`, connected.
pub async fn start_runner(options: RunnerOptions) -> RunnerInstance {
    RunnerInstance::start(options)
        .await
        .expect("runner connects")
}

/// Sends messages `from..to` of stream `seed` (sizes 10 to `max` bytes); returns the digest of
/// `0..to` given that of `0..from`.
pub async fn stream(
    client: &mut Client,
    seed: u64,
    from: u64,
    to: u64,
    max: usize,
    digest: u64,
) -> u64 {
    let mut d = digest;
    for seq in from..to {
        let (data, binary) = payload::message(seed, seq, 10, max);
        d = payload::fold(d, &data);
        client.send(data, binary).await.expect("send");
    }
    d
}

/// Polls `f` every 10 ms until it returns `Some`; panics after [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    common::eventually(what, WAIT, Duration::from_millis(10), f).await
}

/// A WebSocket to `server`'s runner endpoint presenting its token: a runner the test drives by
/// hand (a rogue, or one that misbehaves on purpose).
///
/// # Errors
/// The connection or the handshake failed.
pub async fn connect_as_runner(
    server: &GatewayServer,
) -> std::io::Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
> {
    demo::runner::connect_raw(
        &server.url(),
        server.runner_token(),
        GatewayOptions::default().websocket,
    )
    .await
}
