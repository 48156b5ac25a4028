//! The engine task, its handle, in-process clients, and the runner WebSocket listener.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hibernating_ws::gateway::{Gateway, GatewayConfig};
use hibernating_ws::wire::RequestId;
use hibernating_ws::{Clock, Timestamp};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use super::{ClientEvent, EngineStats, GATEWAY_ID, Input, Inspect, RUNNER_PING_INTERVAL, State};
use crate::proto::ToClient;

/// Handle to the engine task.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Input>,
    /// Where runners connect: `http://ADDR`.
    pub endpoint: String,
}

/// An in-process client of the gateway.
pub struct Client {
    /// Its request id.
    pub request_id: RequestId,
    tx: mpsc::Sender<Input>,
    /// What it receives.
    pub events: mpsc::UnboundedReceiver<ClientEvent>,
}

impl Client {
    /// Sends a text message.
    pub async fn send(&self, text: &str) {
        let request_id = self.request_id;
        let data = text.as_bytes().to_vec();
        self.tx
            .send(Input::Message { request_id, data })
            .await
            .expect("engine gone");
    }

    /// The next event, or `None` after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<ClientEvent> {
        tokio::time::timeout(timeout, self.events.recv())
            .await
            .ok()
            .flatten()
    }
}

impl EngineHandle {
    /// Opens a client WebSocket on `actor` at `path`.
    pub async fn connect(&self, actor: &str, path: &str, request_id: RequestId) -> Client {
        let (events_tx, events) = mpsc::unbounded_channel();
        let input = Input::Open {
            actor: actor.to_string(),
            path: path.to_string(),
            request_id,
            events: events_tx,
        };
        self.tx.send(input).await.expect("engine gone");
        Client {
            request_id,
            tx: self.tx.clone(),
            events,
        }
    }

    /// Runs `f` on the engine's state and returns its result.
    pub async fn inspect<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut State) -> R + Send + 'static,
    ) -> R {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let f: Inspect = Box::new(move |s| {
            let _ = tx.send(f(s));
        });
        self.tx.send(Input::Inspect(f)).await.expect("engine gone");
        rx.await.expect("engine gone")
    }

    /// Stops the engine task.
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Input::Shutdown).await;
    }
}

/// Starts the engine: a listener on loopback for runners and the engine task.
pub async fn start(config: GatewayConfig) -> EngineHandle {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr: SocketAddr = listener.local_addr().expect("local addr");
    let clock = Clock::start();
    let gateway = Gateway::new(config, GATEWAY_ID, clock.now()).expect("gateway config");
    let (tx, rx) = mpsc::channel(1024);
    let state = State {
        clock,
        gateway,
        runner: None,
        actors: BTreeMap::new(),
        records: BTreeMap::new(),
        request_actor: BTreeMap::new(),
        kv: BTreeMap::new(),
        clients: BTreeMap::new(),
        deferred: VecDeque::new(),
        stats: EngineStats::default(),
        next_runner_ping: Timestamp::ZERO,
    };
    tokio::spawn(run(state, rx));
    let accept_tx = tx.clone();
    tokio::spawn(async move {
        let mut conn = 0u64;
        while let Ok((tcp, _)) = listener.accept().await {
            conn += 1;
            tokio::spawn(runner_connection(tcp, conn, accept_tx.clone()));
        }
    });
    EngineHandle {
        tx,
        endpoint: format!("http://{addr}"),
    }
}

async fn run(mut state: State, mut rx: mpsc::Receiver<Input>) {
    loop {
        let now = state.now();
        if now >= state.next_runner_ping {
            state.next_runner_ping = now + RUNNER_PING_INTERVAL;
            if state.route().is_some() {
                let ts = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
                state.send_runner(&ToClient::Ping { ts });
            }
        }
        let deadline = state
            .gateway
            .poll_timeout()
            .map_or(state.next_runner_ping, |d| d.min(state.next_runner_ping));
        let sleep = tokio::time::sleep_until(state.clock.instant(deadline).into());
        tokio::select! {
            input = rx.recv() => {
                let Some(input) = input else { return };
                if !state.on_input(input) {
                    return;
                }
            }
            () = sleep => {}
        }
        let now = state.now();
        if state.gateway.poll_timeout().is_some_and(|d| d <= now) {
            state.gateway.handle_timeout(now);
        }
        state.drain();
    }
}

/// One runner WebSocket: checks the path and answers the `rivet` subprotocol the official runner
/// asks for (its WebSocket library refuses a handshake that selects none).
async fn runner_connection(tcp: TcpStream, conn: u64, engine: mpsc::Sender<Input>) {
    let mut path_ok = false;
    #[allow(clippy::result_large_err)] // tungstenite's callback signature
    let ws = tokio_tungstenite::accept_hdr_async(tcp, |req: &Request, mut resp: Response| {
        path_ok = req.uri().path() == "/runners/connect"
            && req
                .uri()
                .query()
                .is_some_and(|q| q.contains("protocol_version=7"));
        resp.headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static("rivet"));
        Ok(resp)
    })
    .await;
    let Ok(ws) = ws else { return };
    if !path_ok {
        return;
    }
    let (mut sink, mut stream) = ws.split();
    let (tx, mut out) = mpsc::unbounded_channel::<Vec<u8>>();
    if engine.send(Input::RunnerUp { conn, tx }).await.is_err() {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(bytes) = out.recv().await {
            if sink
                .feed(Message::Binary(Bytes::from(bytes)))
                .await
                .is_err()
            {
                return;
            }
            while let Ok(bytes) = out.try_recv() {
                if sink
                    .feed(Message::Binary(Bytes::from(bytes)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(msg)) = stream.next().await {
        match msg {
            Message::Binary(b) => {
                let frame = Input::RunnerFrame {
                    conn,
                    bytes: b.to_vec(),
                };
                if engine.send(frame).await.is_err() {
                    break;
                }
            }
            Message::Close(_) => break,
            Message::Text(_) => {
                let f: Inspect = Box::new(|s| s.stats.text_frames += 1);
                let _ = engine.send(Input::Inspect(f)).await;
            }
            _ => {}
        }
    }
    let _ = engine.send(Input::RunnerDown { conn }).await;
    writer.abort();
}
