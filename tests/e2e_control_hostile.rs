//! Hostile runners against `driver::control` (the control engine and its gateway) over real
//! WebSockets on 127.0.0.1, through the runner listener of the interop test
//! (`tests/interop/engine.rs`), alongside a well-behaved runner (written here in wire types)
//! serving a well-behaved client whose every message must come back:
//!
//! * a rogue runner connection: garbage before and after its handshake, a batch past the
//!   decode limits, events for an actor it does not host, tunnel frames with a foreign gateway
//!   id, for a request it does not hold (the client's, from the wrong route), for a request
//!   nobody has, and the honest runner's old frames replayed;
//! * the honest runner acking an index never sent;
//! * a storm of runner connections that handshake (or not) and drop.
//!
//! Each gets a typed error or a counted drop; afterwards the engine holds no connection,
//! request or pending message beyond the honest ones. Real time, no timing assertions.

#![allow(
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc,
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::too_many_lines,
    missing_docs,
    unreachable_pub,
    dead_code
)] // test code on std

mod common;
#[path = "interop/engine.rs"]
mod engine;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::{ClientEvent, Engine, RUNNER_NAME};
use futures_util::{SinkExt, StreamExt};
use hibernating_ws::MessageIndex;

use hibernating_ws::gateway::GatewayConfig;
use hibernating_ws::wire::{
    self, ActorCheckpoint, ActorState, Command, Event, EventActorStateUpdate, EventWrapper,
    GatewayId, MessageId, RequestId, ToClient, ToClientTunnelMessageKind, ToServer, ToServerEvents,
    ToServerInit, ToServerPong, ToServerTunnelMessage, ToServerTunnelMessageKind,
    ToServerWebSocketMessage, ToServerWebSocketMessageAck, ToServerWebSocketOpen,
};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Bytes, Message};

const WAIT: Duration = Duration::from_secs(30);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A runner WebSocket to the engine with `key`.
async fn connect(engine: &Engine, key: &str) -> Ws {
    let url = format!(
        "{}/runners/connect?protocol_version=7&runner_key={key}",
        engine.endpoint.replace("http://", "ws://")
    );
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("rivet"));
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

fn init(name: &str) -> Vec<u8> {
    wire::encode(&ToServer::Init(ToServerInit {
        name: name.into(),
        version: 1,
        total_slots: 8,
        prepopulate_actor_names: None,
        metadata: None,
    }))
}

fn tunnel(message_id: MessageId, kind: ToServerTunnelMessageKind) -> Vec<u8> {
    wire::encode(&ToServer::TunnelMessage(ToServerTunnelMessage {
        message_id,
        kind,
    }))
}

/// The honest runner: answers pings, starts every actor it is told to, accepts every socket,
/// acks and echoes every message. Every frame it sends is recorded (for the rogue to replay);
/// `extra` frames are sent on its connection on request.
struct Honest {
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
    extra: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    /// The message id of the first open it accepted.
    opened: Arc<Mutex<Option<MessageId>>>,
}

impl Honest {
    async fn start(engine: &Engine) -> Self {
        let mut ws = connect(engine, "honest").await;
        ws.send(Message::Binary(Bytes::from(init(RUNNER_NAME))))
            .await
            .unwrap();
        let sent: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let opened: Arc<Mutex<Option<MessageId>>> = Arc::default();
        let (extra, mut extra_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        let (log, first_open) = (sent.clone(), opened.clone());
        tokio::spawn(async move {
            let mut out: Vec<Vec<u8>> = Vec::new();
            loop {
                let msg = tokio::select! {
                    m = ws.next() => match m {
                        Some(Ok(Message::Binary(b))) => b,
                        Some(Ok(_)) => continue,
                        _ => return,
                    },
                    Some(f) = extra_rx.recv() => {
                        if ws.send(Message::Binary(Bytes::from(f))).await.is_err() {
                            return;
                        }
                        continue;
                    }
                };
                match wire::decode::<ToClient>(&msg) {
                    Ok(ToClient::Ping(p)) => {
                        out.push(wire::encode(&ToServer::Pong(ToServerPong { ts: p.ts })));
                    }
                    Ok(ToClient::Commands(commands)) => {
                        for c in commands.0 {
                            if matches!(c.inner, Command::StartActor(_)) {
                                let running =
                                    ToServer::Events(ToServerEvents(vec![EventWrapper {
                                        checkpoint: ActorCheckpoint {
                                            index: 0,
                                            ..c.checkpoint.clone()
                                        },
                                        inner: Event::ActorStateUpdate(EventActorStateUpdate {
                                            state: ActorState::Running,
                                        }),
                                    }]));
                                out.push(wire::encode(&running));
                            }
                        }
                    }
                    Ok(ToClient::TunnelMessage(m)) => match m.kind {
                        ToClientTunnelMessageKind::WebSocketOpen(_) => {
                            first_open.lock().unwrap().get_or_insert(m.message_id);
                            out.push(tunnel(
                                m.message_id,
                                ToServerTunnelMessageKind::WebSocketOpen(ToServerWebSocketOpen {
                                    can_hibernate: true,
                                }),
                            ));
                        }
                        ToClientTunnelMessageKind::WebSocketMessage(w) => {
                            out.push(tunnel(
                                m.message_id,
                                ToServerTunnelMessageKind::WebSocketMessageAck(
                                    ToServerWebSocketMessageAck {
                                        index: m.message_id.message_index,
                                    },
                                ),
                            ));
                            out.push(tunnel(
                                m.message_id,
                                ToServerTunnelMessageKind::WebSocketMessage(
                                    ToServerWebSocketMessage {
                                        data: w.data,
                                        binary: w.binary,
                                    },
                                ),
                            ));
                        }
                        _ => {}
                    },
                    _ => {}
                }
                for f in out.drain(..) {
                    log.lock().unwrap().push(f.clone());
                    if ws.send(Message::Binary(Bytes::from(f))).await.is_err() {
                        return;
                    }
                }
            }
        });
        Self {
            sent,
            extra,
            opened,
        }
    }
}

/// Sends `n` messages from the client and waits for their echoes.
async fn echo_round(client: &mut engine::Client, from: u64, n: u64) {
    for i in from..from + n {
        client.send(&format!("m{i}")).await;
    }
    for i in from..from + n {
        match client.next(WAIT).await {
            Some(ClientEvent::Message { data, .. }) => {
                assert_eq!(data, format!("m{i}").into_bytes());
            }
            other => panic!("echo {i}: {other:?}"),
        }
    }
}

async fn eventually<T>(what: &str, engine: &Engine, f: impl Fn(&Snapshot) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = snapshot(engine);
        if let Some(v) = f(&s) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[derive(Debug)]
struct Snapshot {
    control: hibernating_ws::control::ControlStats,
    gateway: hibernating_ws::gateway::GatewayStats,
}

fn snapshot(engine: &Engine) -> Snapshot {
    engine
        .handle
        .call(|c, _| Snapshot {
            control: c.stats(),
            gateway: c.gateway().stats(),
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_runners_get_typed_drops_and_the_honest_client_keeps_every_message() {
    let engine = Engine::start(GatewayConfig::default(), &["good"]).await;
    let honest = Honest::start(&engine).await;
    let mut client = engine.connect("good", "/", RequestId(*b"good"));
    match client.next(WAIT).await {
        Some(ClientEvent::Opened { hibernatable: true }) => {}
        other => panic!("opened: {other:?}"),
    }
    echo_round(&mut client, 0, 20).await;
    let open = honest.opened.lock().unwrap().expect("an open");
    let before = snapshot(&engine);

    // The rogue: garbage before its handshake, then a handshake under another pool name.
    let mut rogue = connect(&engine, "rogue").await;
    let send = |frame: Vec<u8>| Message::Binary(Bytes::from(frame));
    rogue.send(send(vec![0xff, 0xee, 0xdd])).await.unwrap(); // malformed
    rogue
        .send(send(tunnel(
            open,
            ToServerTunnelMessageKind::WebSocketMessage(ToServerWebSocketMessage {
                data: b"too early".to_vec().into(),
                binary: false,
            }),
        )))
        .await
        .unwrap(); // not initialized
    rogue.send(send(init("rogue-pool"))).await.unwrap();
    let mut dropped = 2;
    // Garbage after the handshake, and a batch past the decode limits (list length).
    rogue.send(send(vec![])).await.unwrap();
    let limits = wire::DecodeLimits::default();
    let mut huge = vec![1u8]; // ToServer tag 1: Events
    let mut n = limits.max_list_len + 1; // uleb128 list length, then nothing
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            huge.push(byte);
            break;
        }
        huge.push(byte | 0x80);
    }
    rogue.send(send(huge)).await.unwrap();
    dropped += 2;
    // Events for an actor it does not host.
    let foreign = ToServer::Events(ToServerEvents(vec![EventWrapper {
        checkpoint: ActorCheckpoint {
            actor_id: "good".into(),
            generation: 0,
            index: 1,
        },
        inner: Event::ActorStateUpdate(EventActorStateUpdate {
            state: ActorState::Running,
        }),
    }]));
    rogue.send(send(wire::encode(&foreign))).await.unwrap();
    dropped += 1;
    // Tunnel frames: a foreign gateway id; the honest client's request from the wrong route
    // (an ack of an index never sent, and a message); a request nobody has.
    let with = |gateway_id: GatewayId, request_id: RequestId| MessageId {
        gateway_id,
        request_id,
        message_index: MessageIndex::ZERO,
    };
    let frames = [
        tunnel(
            with(GatewayId(*b"evil"), open.request_id),
            ToServerTunnelMessageKind::WebSocketMessage(ToServerWebSocketMessage {
                data: b"forged".to_vec().into(),
                binary: false,
            }),
        ),
        tunnel(
            open,
            ToServerTunnelMessageKind::WebSocketMessageAck(ToServerWebSocketMessageAck {
                index: MessageIndex::new(1_000),
            }),
        ),
        tunnel(
            open,
            ToServerTunnelMessageKind::WebSocketMessage(ToServerWebSocketMessage {
                data: b"injected".to_vec().into(),
                binary: false,
            }),
        ),
        tunnel(
            with(open.gateway_id, RequestId(*b"none")),
            ToServerTunnelMessageKind::WebSocketMessage(ToServerWebSocketMessage {
                data: b"anyone?".to_vec().into(),
                binary: false,
            }),
        ),
    ];
    for f in frames {
        rogue.send(send(f)).await.unwrap();
    }
    dropped += 4;
    // The honest runner's old frames, replayed from the rogue's connection.
    let old: Vec<Vec<u8>> = honest.sent.lock().unwrap().clone();
    let replayed_tunnel = old
        .iter()
        .filter(|f| matches!(wire::decode::<ToServer>(f), Ok(ToServer::TunnelMessage(_))))
        .count() as u64;
    let replayed_events = old
        .iter()
        .filter(|f| matches!(wire::decode::<ToServer>(f), Ok(ToServer::Events(_))))
        .count() as u64;
    for f in &old {
        if !matches!(wire::decode::<ToServer>(f), Ok(ToServer::Pong(_))) {
            rogue.send(send(f.clone())).await.unwrap();
        }
    }
    dropped += replayed_tunnel + replayed_events;
    // The honest runner acks an index it was never sent, on its own route.
    honest
        .extra
        .send(tunnel(
            open,
            ToServerTunnelMessageKind::WebSocketMessageAck(ToServerWebSocketMessageAck {
                index: MessageIndex::new(1_000),
            }),
        ))
        .unwrap();

    // Dropped frames, and events from a runner that does not host the actor (stale).
    let refused = |s: &Snapshot| s.control.frames_dropped + s.control.events_stale;
    eventually("every hostile frame to be dropped", &engine, |s| {
        (refused(s) >= refused(&before) + dropped
            && s.gateway.acks_invalid > before.gateway.acks_invalid)
            .then_some(())
    })
    .await;
    let s = snapshot(&engine);
    assert_eq!(refused(&s), refused(&before) + dropped, "{s:?}");
    assert_eq!(s.gateway.acks_invalid, before.gateway.acks_invalid + 1);
    assert_eq!(
        s.gateway.dropped_wrong_gateway,
        before.gateway.dropped_wrong_gateway + 1
    );
    assert!(s.gateway.dropped_wrong_route >= before.gateway.dropped_wrong_route + 2);
    assert_eq!(
        s.gateway.unknown_request_answers,
        before.gateway.unknown_request_answers + 1
    );
    assert_eq!(s.gateway.closed, 0, "no request was closed");
    assert_eq!(
        s.gateway.messages_to_client,
        before.gateway.messages_to_client
    );

    // The honest client keeps working: every echo, nothing injected in between.
    echo_round(&mut client, 20, 20).await;

    // A storm of runner connections: half drop before their handshake, half after.
    for i in 0..100 {
        let mut ws = connect(&engine, &format!("storm-{i}")).await;
        if i % 2 == 0 {
            ws.send(send(init("storm-pool"))).await.unwrap();
        }
        drop(ws);
    }
    drop(rogue);
    eventually("the rogue and storm connections to be gone", &engine, |s| {
        (s.control.connections == 1).then_some(())
    })
    .await;
    echo_round(&mut client, 40, 10).await;
    client.close(Some(hibernating_ws::CloseFrame::new(1000, "done")));
    eventually("the honest request to end", &engine, |s| {
        (s.gateway.requests == 0
            && s.gateway.pending_messages == 0
            && s.gateway.pending_bytes == 0
            && s.gateway.timer_entries <= 1024)
            .then_some(())
    })
    .await;
}
