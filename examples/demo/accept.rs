//! The gateway's connections: the WebSocket handshake (runners authenticated at
//! `/runners/connect`, clients at `/actors/<actor>`), then one task pair per connection that
//! hands its frames to the control driver and writes what the driver queued for it.
//!
//! Runners speak plain runner protocol v7, as the official runner does: the token travels in the
//! subprotocol list (`rivet, rivet_token.<token>`) and is checked before the upgrade completes
//! (a refusal is an HTTP 401 with the typed [`RunnerRejection`] in its body); the runner key comes
//! from the query string. A frame before the runner's `ToServerInit` is dropped by the engine
//! and closes the connection with 1008 `runner.init_required`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hibernating_ws::CloseFrame;
use hibernating_ws::control::OpenError;
use hibernating_ws::driver::control::{
    ClientEvents, ClientOutput, ClientSender, CommandError, ControlHandle, RunnerOutput,
};
use hibernating_ws::gateway::OpenRequest;
use hibernating_ws::wire::RequestId;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::CloseFrame as WsCloseFrame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{WebSocketStream, accept_hdr_async_with_config};

use super::auth::{self, RunnerRejection};
use super::hooks::Book;
use super::keepalive::{self, CloseSlot, Keepalive};
use super::schedule::Scheduler;

/// The path runners connect to (the official runner's).
pub const RUNNER_PATH: &str = "/runners/connect";

/// How long a connection may take to complete its WebSocket handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the connection tasks share.
pub struct Shared {
    pub handle: ControlHandle,
    pub book: Book,
    pub scheduler: Arc<Scheduler>,
    pub runner_token: String,
    pub websocket: WebSocketConfig,
    pub keepalive: Keepalive,
    /// The spec of the actors clients open (created on first use).
    pub spec: hibernating_ws::control::ActorSpec,
}

/// The `runner_key` parameter of a query string (`None` if absent or empty).
fn runner_key(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "runner_key")
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// One TCP connection: a runner (authenticated) or a client (`/actors/<actor>`).
pub async fn connection(tcp: TcpStream, shared: Arc<Shared>) {
    let mut path = String::new();
    let mut key = None;
    let mut rejected = None;
    let token = shared.runner_token.as_str();
    #[allow(clippy::result_large_err)] // tungstenite's callback signature
    let callback = |req: &Request, mut resp: Response| {
        path = req.uri().path().to_string();
        if path != RUNNER_PATH {
            return Ok(resp);
        }
        let offered = req
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok());
        let checked = auth::check_subprotocols(offered, token).and_then(|()| {
            key = runner_key(req.uri().query());
            key.as_ref().map(|_| ()).ok_or(RunnerRejection::MissingKey)
        });
        match checked {
            Ok(()) => {
                resp.headers_mut().insert(
                    "sec-websocket-protocol",
                    HeaderValue::from_static(auth::SUBPROTOCOL),
                );
                Ok(resp)
            }
            Err(why) => {
                rejected = Some(why);
                let mut refusal = ErrorResponse::new(Some(why.reason().to_string()));
                *refusal.status_mut() = StatusCode::UNAUTHORIZED;
                Err(refusal)
            }
        }
    };
    let ws = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        accept_hdr_async_with_config(tcp, callback, Some(shared.websocket)),
    )
    .await;
    if let Some(why) = rejected {
        shared.book.rejected(why);
    }
    let Ok(Ok(ws)) = ws else {
        return;
    };
    if let Some(key) = key {
        runner_connection(ws, &key, &shared).await;
    } else if let Some(actor) = path.strip_prefix("/actors/").filter(|a| !a.is_empty()) {
        let actor = actor.to_string();
        client_connection(ws, actor, path.clone(), &shared).await;
    }
}

/// A close frame for the WebSocket.
fn ws_close(code: u16, reason: &str) -> Message {
    Message::Close(Some(WsCloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_string().into(),
    }))
}

/// A runner connection: its frames go to the engine in place; a writer sends what the engine
/// queued for it (one flush per batch) and pings.
async fn runner_connection(ws: WebSocketStream<TcpStream>, key: &str, shared: &Shared) {
    let Ok((sender, mut events)) = shared.handle.runner_connected(key) else {
        // The connection limit: refused like an engine at its limit.
        let mut ws = ws;
        let _ = ws.send(ws_close(1013, "ws.too_many_runners")).await;
        return;
    };
    let conn = sender.conn();
    let (mut ws_tx, mut ws_rx) = ws.split();
    let slot = CloseSlot::default();
    let decided = slot.clone();
    let mut ping = tokio::time::interval(shared.keepalive.interval);
    let writer = tokio::spawn(async move {
        let mut batch = Vec::new();
        loop {
            let n = tokio::select! {
                n = events.recv_many(&mut batch) => n,
                _ = ping.tick() => {
                    if ws_tx.send(Message::Ping(Bytes::new())).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            if n == 0 {
                break;
            }
            for out in batch.drain(..) {
                let msg = match out {
                    RunnerOutput::Frame(frame) => Message::Binary(Bytes::from_owner(frame)),
                    RunnerOutput::Close(reason) => ws_close(1000, reason.reason()),
                    _ => continue,
                };
                if ws_tx.feed(msg).await.is_err() {
                    return;
                }
            }
            if ws_tx.flush().await.is_err() {
                return;
            }
        }
        // The engine dropped the connection, it overflowed, or the reader decided a close.
        match keepalive::decided(&decided) {
            Some(frame) => {
                let _ = ws_tx.send(Message::Close(Some(frame))).await;
            }
            None => {
                let _ = ws_tx.close().await;
            }
        }
    });
    // A link that stays silent (no frame, no pong) past the keepalive timeout is dropped.
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(shared.keepalive.timeout, ws_rx.next()).await
    {
        match msg {
            Message::Binary(b) => {
                if sender.frame(&b).is_err() {
                    break;
                }
                if shared.book.take_uninitialized(conn) {
                    // Nothing counts before the runner said who it is.
                    let why = RunnerRejection::InitRequired;
                    shared.book.rejected(why);
                    let frame = WsCloseFrame {
                        code: CloseCode::from(RunnerRejection::CLOSE_CODE),
                        reason: why.reason().into(),
                    };
                    keepalive::decide(&slot, frame);
                    break;
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    sender.disconnected();
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
}

/// Opens a request on `actor` (created on first use) with a random id nobody can guess.
fn open(
    shared: &Shared,
    actor: &str,
    path: &str,
) -> Option<(RequestId, ClientSender, ClientEvents)> {
    let spec = shared.spec.clone();
    let created = shared
        .handle
        .call(|c, now| {
            if c.actor(actor).is_none() {
                let _ = c.create_actor(now, actor, spec);
            }
        })
        .is_ok();
    if !created {
        return None;
    }
    shared.book.lock().actors.insert(actor.to_string());
    for _ in 0..16 {
        let request_id = RequestId(auth::random_request_id());
        // (The path starts with `/actors/`, so it is a valid open path.)
        let open = OpenRequest::new(actor, path).ok()?;
        // Counted live before the open: its close may come from within it.
        shared.book.lock().requests.insert(request_id);
        match shared.handle.open(request_id, open) {
            Ok((sender, events)) => return Some((request_id, sender, events)),
            Err(CommandError::Engine(OpenError::AlreadyExists { .. })) => {}
            Err(_) => {
                shared.book.lock().requests.remove(&request_id);
                return None;
            }
        }
    }
    None
}

async fn client_connection(
    ws: WebSocketStream<TcpStream>,
    actor: String,
    path: String,
    shared: &Shared,
) {
    let Some((_request_id, sender, events)) = open(shared, &actor, &path) else {
        let mut ws = ws;
        let _ = ws.send(ws_close(1011, "open refused")).await;
        return;
    };
    let (ws_tx, mut ws_rx) = ws.split();
    let slot = CloseSlot::default();
    let ping = shared.keepalive.interval;
    let writer = tokio::spawn(client_writer(ws_tx, events, slot.clone(), ping));
    client_reader(&mut ws_rx, sender, &actor, shared, &slot).await;
    let _ = writer.await;
    linger(&mut ws_rx, LINGER).await;
}

/// Reads (and drops) what the client still sends until its close frame, its end of stream or
/// `limit`, so the socket is not closed with unread data. Closing with unread data makes the
/// kernel reset the connection, and a reset can discard the close frame the client has not read
/// yet: a client closed for a typed reason would see only a reset.
async fn linger(ws_rx: &mut WsSource, limit: Duration) {
    let drain = async {
        while let Some(Ok(m)) = ws_rx.next().await {
            if m.is_close() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(limit, drain).await;
}

/// How long a closed client connection is read for its close frame before it is dropped.
const LINGER: Duration = Duration::from_secs(2);

type WsSink = futures_util::stream::SplitSink<WebSocketStream<TcpStream>, Message>;
type WsSource = futures_util::stream::SplitStream<WebSocketStream<TcpStream>>;

/// Client reads: never before the gate opens, one frame at a time. A client silent past the
/// keepalive timeout, or whose frame breaks the protocol, is closed with a typed frame (see
/// [`keepalive`]), which the runner gets too.
async fn client_reader(
    ws_rx: &mut WsSource,
    mut sender: ClientSender,
    actor: &str,
    shared: &Shared,
    slot: &CloseSlot,
) {
    loop {
        if sender.readable().await.is_err() {
            return;
        }
        let Ok(next) = tokio::time::timeout(shared.keepalive.timeout, ws_rx.next()).await else {
            // Decided before the engine closes: the writer sends it once the events end.
            let frame = keepalive::idle_close();
            let engine_frame = keepalive::engine_frame(&frame);
            keepalive::decide(slot, frame);
            let _ = sender.close(Some(engine_frame));
            return;
        };
        let handed = match next {
            Some(Ok(Message::Text(t))) => sender.message(t.as_bytes(), false).await,
            Some(Ok(Message::Binary(b))) => sender.message(&b, true).await,
            Some(Ok(Message::Close(frame))) => {
                let frame = frame.map(|f| CloseFrame {
                    code: Some(u16::from(f.code)),
                    reason: (!f.reason.is_empty()).then(|| f.reason.as_str().to_string()),
                });
                let _ = sender.close(Some(frame.unwrap_or_else(|| CloseFrame::code(1005))));
                return;
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                let frame = keepalive::error_close(&e);
                let engine_frame = frame.as_ref().map(keepalive::engine_frame);
                if let Some(frame) = frame {
                    keepalive::decide(slot, frame);
                }
                let _ = sender.close(engine_frame);
                return;
            }
            None => {
                let _ = sender.close(None);
                return;
            }
        };
        if handed.is_err() {
            return;
        }
        shared.scheduler.client_message(actor);
    }
}

/// Client writes: messages from the actor and pings, then the close frame if the gateway closes
/// (or the one the reader decided on).
async fn client_writer(
    mut ws_tx: WsSink,
    mut events: ClientEvents,
    slot: CloseSlot,
    ping: Duration,
) {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping, ping);
    loop {
        let out = tokio::select! {
            out = events.recv() => out,
            _ = ping.tick() => {
                if ws_tx.send(Message::Ping(Bytes::new())).await.is_err() {
                    return;
                }
                continue;
            }
        };
        let Some(out) = out else { break };
        let msg = match out {
            ClientOutput::Message { data, binary: true } => Message::Binary(data),
            ClientOutput::Message {
                data,
                binary: false,
            } => match String::from_utf8(Vec::from(data)) {
                Ok(text) => Message::text(text),
                Err(e) => Message::Binary(Bytes::from(e.into_bytes())),
            },
            ClientOutput::Close(frame) => {
                let close = WsCloseFrame {
                    code: CloseCode::from(frame.code.unwrap_or(1000)),
                    reason: frame.reason.unwrap_or_default().into(),
                };
                let _ = ws_tx.send(Message::Close(Some(close))).await;
                return;
            }
            _ => continue,
        };
        if ws_tx.send(msg).await.is_err() {
            return;
        }
    }
    match keepalive::decided(&slot) {
        Some(frame) => {
            let _ = ws_tx.send(Message::Close(Some(frame))).await;
        }
        None => {
            let _ = ws_tx.close().await;
        }
    }
}
