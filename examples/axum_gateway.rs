//! A gateway behind axum: clients connect with axum's WebSocket upgrade at `/actors/{actor}`,
//! the gateway driver tunnels each one to a runner (here in the same process, hosting the
//! actor `echo`, which echoes every message). `cargo run --example axum_gateway --features
//! axum`, then connect to `ws://127.0.0.1:3000/actors/echo`.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)] // application code on std

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame as WsCloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use hibernating_ws::driver::tokio::{
    ClientInput, ClientOutput, GatewayDriver, GatewayHandle, GatewayIo, Outbox, QueueLimits,
    RunnerDriver, RunnerIo, TokioClock, outbox,
};
use hibernating_ws::gateway::{Frame, Gateway, GatewayConfig, OpenRequest, RouteId};
use hibernating_ws::runner::{Action, Runner, RunnerConfig};
use hibernating_ws::wire::{GatewayId, Headers, RequestId};
use hibernating_ws::{CloseFrame, Timestamp};

/// The only runner: every request is routed to it.
const ROUTE: RouteId = RouteId(1);

struct GatewaySide(Outbox<Frame>);
impl GatewayIo for GatewaySide {
    fn publish(&mut self, _: RouteId, _: RequestId, frame: Frame) {
        let _ = self.0.push(frame);
    }
    fn request_wake(&mut self, _: RequestId, _: String) {}
    fn upsert_hibernating_record(&mut self, _: RequestId, _: String) {}
    fn delete_hibernating_record(&mut self, _: RequestId, _: String) {}
}

struct RunnerSide(Outbox<Vec<u8>>);
impl RunnerIo for RunnerSide {
    fn publish(&mut self, _: GatewayId, frame: Vec<u8>) {
        let _ = self.0.push(frame);
    }
}

/// Runs the gateway, an in-process runner hosting `echo`, and the axum server on `listener`.
///
/// # Errors
/// An engine refused its configuration, or the server failed.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
) -> Result<(), Box<dyn core::error::Error>> {
    let clock = TokioClock::new();
    let (to_runner, mut runner_inbox) = outbox(QueueLimits::LINK);
    let (to_gateway, mut gateway_inbox) = outbox(QueueLimits::LINK);
    let gateway = Gateway::new(GatewayConfig::default(), GatewayId(*b"axum"), clock.now())?;
    let (gw, _) = GatewayDriver::spawn(gateway, GatewaySide(to_runner), clock);
    let runner = Runner::new(RunnerConfig::default(), clock.now())?;
    let (rn, mut app, _) = RunnerDriver::spawn(runner, RunnerSide(to_gateway), clock);
    rn.call(|r, now| r.actor_starting(now, "echo", Vec::new()))??;
    rn.call(|r, now| r.restore(now, "echo", Vec::new()))??;
    // The runner hop, in memory (a WebSocket or pub/sub link in a real deployment).
    let (gw2, rn2) = (gw.clone(), rn.clone());
    tokio::spawn(async move {
        while let Some(frame) = runner_inbox.next().await {
            let _ = rn2.frame(frame.as_ref()).await;
        }
    });
    tokio::spawn(async move {
        while let Some(frame) = gateway_inbox.next().await {
            let _ = gw2.runner_frame(ROUTE, &frame);
        }
    });
    // The actor: accepts, echoes, persists at once (see `storage` for a durable store).
    tokio::spawn(async move {
        while let Some(action) = app.recv().await {
            let _ = rn.call(|r, now| echo(r, now, action));
        }
    });
    let state = (gw, Arc::new(AtomicU32::new(1)));
    let router = Router::new().route("/actors/{actor}", get(upgrade));
    axum::serve(listener, router.with_state(state)).await?;
    Ok(())
}

fn echo(r: &mut Runner, now: Timestamp, action: Action) {
    if let Action::Open { socket, .. } = action {
        let _ = r.accept(now, socket, true);
    } else if let Action::Message {
        socket,
        data,
        binary,
        ..
    } = action
    {
        let _ = r.send(now, socket, &data, binary);
    } else if let Action::Persist {
        socket,
        server_index,
        ..
    } = action
    {
        let _ = r.persisted(now, socket, server_index);
    }
}

async fn upgrade(
    ws: WebSocketUpgrade,
    Path(actor_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    State((gw, next_request)): State<(GatewayHandle, Arc<AtomicU32>)>,
) -> Response {
    // Header values that are not UTF-8 are left out (the protocol carries strings).
    let headers: Headers = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let Ok(open) = OpenRequest::new(actor_id, uri.path()) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let open = open.with_headers(headers);
    // A counter keeps the example short; a real gateway draws unguessable request ids.
    let request_id = RequestId::from_u32(next_request.fetch_add(1, Ordering::Relaxed));
    ws.on_upgrade(move |socket| client(socket, gw, request_id, open))
}

/// Pumps one client both ways until either side is done.
async fn client(socket: WebSocket, gw: GatewayHandle, request_id: RequestId, open: OpenRequest) {
    let Ok((mut sender, mut events)) = gw.open(request_id, ROUTE, open) else {
        return; // (the socket drops: the client sees the connection end)
    };
    let (mut ws_tx, mut ws_rx) = socket.split();
    let reader = async move {
        while let Some(Ok(msg)) = ws_rx.next().await {
            let Some(input) = input(msg) else { continue };
            let last = matches!(input, ClientInput::Close(_));
            if sender.send(input).await.is_err() || last {
                return;
            }
        }
        let _ = sender.send(ClientInput::<Bytes>::Close(None)).await;
    };
    let writer = async move {
        while let Some(msg) = events.next().await.and_then(output) {
            let last = matches!(msg, Message::Close(_));
            if ws_tx.send(msg).await.is_err() || last {
                return;
            }
        }
    };
    tokio::join!(reader, writer);
}

/// A client's WebSocket message as gateway input (pings and pongs are axum's business).
fn input(msg: Message) -> Option<ClientInput<Bytes>> {
    let (data, binary) = match msg {
        Message::Text(t) => (Bytes::from(t), false),
        Message::Binary(b) => (b, true),
        Message::Close(f) => {
            let frame = f.map(|f| CloseFrame::new(f.code, f.reason.as_str()));
            return Some(ClientInput::Close(frame));
        }
        Message::Ping(_) | Message::Pong(_) => return None,
    };
    Some(ClientInput::Message { data, binary })
}

/// Gateway output as the client's WebSocket message. Text from the actor is checked: invalid
/// UTF-8 closes the client with 1007.
fn output(out: ClientOutput) -> Option<Message> {
    let close = |code, reason: &str| {
        Message::Close(Some(WsCloseFrame {
            code,
            reason: reason.into(),
        }))
    };
    Some(match out {
        ClientOutput::Message { data, binary: true } => Message::Binary(data.into()),
        ClientOutput::Message { data, .. } => match String::from_utf8(data) {
            Ok(text) => Message::Text(text.into()),
            Err(_) => close(1007, "invalid UTF-8 in a text message"),
        },
        ClientOutput::Close(f) => close(f.code.unwrap_or(1000), f.reason.as_deref().unwrap_or("")),
        _ => return None,
    })
}

#[allow(dead_code)] // the test includes this file and starts `serve` itself
#[tokio::main]
async fn main() -> Result<(), Box<dyn core::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("ws://{}/actors/echo", listener.local_addr()?);
    serve(listener).await
}
