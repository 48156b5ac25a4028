//! Shared pieces of the hostile suites: a gateway and a runner of the demo over loopback, a
//! man in the middle on the runner hop that records and injects frames both ways, and the
//! checks that nothing leaked.

#![allow(dead_code, unreachable_pub)] // each suite uses a part

#[path = "../common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use super::demo;
use demo::client::Client;
use demo::gateway::{GatewayOptions, GatewayServer};
use demo::payload;
use demo::runner::{RunnerInstance, RunnerOptions};
use demo::scenario::DataDir;
use demo::storage::StorageKind;
use hibernating_ws::runner::RunnerConfig;
use hibernating_ws::wire::DecodeLimits;

/// The engines' decode limit in the hostile suites: frames past it are oversized.
pub const MAX_FRAME: usize = 1 << 20;

/// Generous bound for one expected event (a hang guard, not a timing assertion).
pub const WAIT: Duration = Duration::from_secs(30);

/// Polls `f` every 10 ms until it returns `Some`; panics after [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    common::eventually(what, WAIT, Duration::from_millis(10), f).await
}

/// Sends messages `from..to` of stream `seed`; returns the digest of `0..to` given that of
/// `0..from`.
pub async fn stream(client: &mut Client, seed: u64, from: u64, to: u64, digest: u64) -> u64 {
    let mut d = digest;
    for seq in from..to {
        let (data, binary) = payload::message(seed, seq, 10, 300);
        d = payload::fold(d, &data);
        client.send(data, binary).await.expect("send");
    }
    d
}

/// The demo's runner, connected to `gateway` (a `ws://` URL: the gateway or a [`Mitm`]).
pub async fn runner(gateway: String, token: &str, dir: &DataDir) -> RunnerInstance {
    RunnerInstance::start(RunnerOptions {
        gateway,
        name: "honest".into(),
        data_dir: dir.path.clone(),
        storage: StorageKind::File,
        config: RunnerConfig::default()
            .with_persist_interval(Duration::from_millis(10))
            .with_decode_limits(DecodeLimits::default().with_max_frame_size(MAX_FRAME)),
        report_interval: Duration::from_millis(20),
        delivered: Arc::default(),
        load_delay: Duration::ZERO,
        token: token.into(),
        websocket: GatewayOptions::default().websocket,
    })
    .await
    .expect("runner connects")
}

/// Frames seen on one direction of the runner hop, and a way to inject more.
#[derive(Clone)]
pub struct Direction {
    /// Every binary frame forwarded so far, in order.
    pub seen: Arc<Mutex<Vec<Bytes>>>,
    inject: UnboundedSender<Message>,
}

impl Direction {
    /// Sends `frame` as if the peer had sent it (after what is already forwarded).
    pub fn inject(&self, frame: Vec<u8>) {
        self.inject
            .send(Message::Binary(Bytes::from(frame)))
            .expect("the man in the middle runs");
    }

    /// The binary frames forwarded so far.
    pub fn seen(&self) -> Vec<Bytes> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// A man in the middle of the runner hop: the runner connects to it as to the gateway, it
/// connects to the gateway with the runner token and forwards every message both ways,
/// recording binary frames and injecting frames on command.
pub struct Mitm {
    /// `ws://` URL to give the runner as its gateway.
    pub url: String,
    /// Gateway → runner.
    pub to_runner: Direction,
    /// Runner → gateway.
    pub to_gateway: Direction,
}

impl Mitm {
    /// Listens on loopback; the first connection is forwarded to `server`'s runner endpoint.
    pub async fn start(server: &GatewayServer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("ws://{}", listener.local_addr().expect("addr"));
        let upstream_url = server.url();
        let token = server.runner_token().to_string();
        let (to_runner_tx, mut to_runner_rx) = unbounded_channel::<Message>();
        let (to_gateway_tx, mut to_gateway_rx) = unbounded_channel::<Message>();
        let to_runner = Direction {
            seen: Arc::default(),
            inject: to_runner_tx,
        };
        let to_gateway = Direction {
            seen: Arc::default(),
            inject: to_gateway_tx,
        };
        let (seen_down, seen_up) = (to_runner.seen.clone(), to_gateway.seen.clone());
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("the runner connects");
            #[allow(clippy::result_large_err)] // tungstenite's callback signature
            let callback = |_: &Request, mut resp: Response| {
                resp.headers_mut().insert(
                    "sec-websocket-protocol",
                    HeaderValue::from_static(demo::auth::SUBPROTOCOL),
                );
                Ok(resp)
            };
            let down = tokio_tungstenite::accept_hdr_async(tcp, callback)
                .await
                .expect("runner handshake");
            let up = demo::runner::connect_raw(
                &upstream_url,
                &token,
                GatewayOptions::default().websocket,
            )
            .await
            .expect("gateway handshake");
            let (mut down_tx, mut down_rx) = down.split();
            let (mut up_tx, mut up_rx) = up.split();
            // Gateway → runner.
            tokio::spawn(async move {
                loop {
                    let msg = tokio::select! {
                        m = up_rx.next() => match m {
                            Some(Ok(m)) => {
                                if let Message::Binary(b) = &m {
                                    seen_down.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(b.clone());
                                }
                                m
                            }
                            _ => break,
                        },
                        Some(m) = to_runner_rx.recv() => m,
                    };
                    if down_tx.send(msg).await.is_err() {
                        break;
                    }
                }
                let _ = down_tx.close().await;
            });
            // Runner → gateway.
            loop {
                let msg = tokio::select! {
                    m = down_rx.next() => match m {
                        Some(Ok(m)) => {
                            if let Message::Binary(b) = &m {
                                seen_up.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(b.clone());
                            }
                            m
                        }
                        _ => break,
                    },
                    Some(m) = to_gateway_rx.recv() => m,
                };
                if up_tx.send(msg).await.is_err() {
                    break;
                }
            }
            let _ = up_tx.close().await;
        });
        Self {
            url,
            to_runner,
            to_gateway,
        }
    }
}

/// Waits until the gateway and the runner hold nothing but `live` requests: no pending message,
/// no record, empty client queues, a runner with `live` sockets, and timer entries within the
/// queue's compaction bound.
pub async fn settled(server: &GatewayServer, runner: &RunnerInstance, live: u64) {
    eventually("the gateway and the runner to settle", || async {
        let g = server.stats();
        let s = server.snapshot().await;
        let q = server.queue_stats();
        let r = runner.handle().call(|r, _| r.stats()).ok()?;
        let ok = g.requests == live
            && g.pending_messages == 0
            && g.pending_bytes == 0
            && s.requests == usize::try_from(live).ok()?
            && q.messages == 0
            && q.bytes == 0
            && r.sockets == live
            && g.timer_entries <= 3 * live + 1024;
        ok.then_some(())
    })
    .await;
}
