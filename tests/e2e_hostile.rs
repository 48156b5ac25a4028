//! Hostile peers against the real adapters (the demo's `driver::control` gateway and
//! `driver::session` runner) over WebSockets on 127.0.0.1, each alongside a well-behaved client whose every message must
//! arrive exactly once:
//!
//! * the runner hop, through a man in the middle: garbage and oversized frames both ways, acks
//!   for indices never sent, a foreign gateway id, frames for requests and sockets the peer does
//!   not hold, old frames replayed both ways, a gateway close for a socket the runner never held;
//! * the client hop: garbage, protocol violations and oversized messages, connection storms
//!   (thousands of opens and closes in bursts, handshakes abandoned half-way, connections
//!   dropped without a close), half-open clients and a half-open runner link, a slow reader.
//!
//! Each case gets a typed error, a counted drop or a typed close, and afterwards nothing leaks:
//! no request, record, pending message, queued client output or runner socket beyond the
//! well-behaved client's, and timer entries within the queue's bound.
//!
//! Real time, not paused; no timing assertions (every wait is for an event, bounded by a
//! generous timeout that only fails a broken system).

#![allow(
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc,
    clippy::similar_names,
    clippy::too_many_lines
)] // application code on std

#[path = "../examples/demo/lib.rs"]
mod demo;
mod hostile_support;

use std::time::Duration;

use demo::client::Client;
use demo::gateway::{GatewayOptions, GatewayServer, Schedule};
use demo::runner::RunnerInstance;
use demo::scenario::{DataDir, committed_result};
use demo::storage::StorageKind;
use futures_util::{SinkExt, StreamExt};
use hibernating_ws::MessageIndex;
use hibernating_ws::gateway::GatewayConfig;
use hibernating_ws::wire::{
    self, DecodeLimits, GatewayId, MessageId, RequestId, ToClient, ToClientTunnelMessage,
    ToClientTunnelMessageKind, ToClientWebSocketClose, ToClientWebSocketMessage, ToServer,
    ToServerTunnelMessage, ToServerTunnelMessageKind, ToServerWebSocketMessage,
    ToServerWebSocketMessageAck,
};
use hostile_support::{MAX_FRAME, Mitm, WAIT, eventually, runner, settled, stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{Bytes, Message};

const DEMO: GatewayId = GatewayId(*b"demo");

async fn gateway(opts: GatewayOptions) -> GatewayServer {
    GatewayServer::start(opts).await.expect("gateway starts")
}

fn default_gateway() -> GatewayOptions {
    GatewayOptions::new(
        "127.0.0.1:0".into(),
        GatewayConfig::default(),
        Schedule::default(),
    )
}

/// A gateway with `opts`, the honest runner on it (its data in `dir`) and a client of actor
/// `steady` connected to the gateway.
async fn steady(opts: GatewayOptions, dir: &DataDir) -> (GatewayServer, RunnerInstance, Client) {
    let server = gateway(opts).await;
    let runner = runner(server.url(), server.runner_token(), dir).await;
    let client = Client::connect(&server.url(), "steady")
        .await
        .expect("connect");
    (server, runner, client)
}

fn id(gateway_id: GatewayId, request_id: RequestId, index: u16) -> MessageId {
    MessageId {
        gateway_id,
        request_id,
        message_index: MessageIndex::new(index),
    }
}

/// A gateway → runner tunnel frame (plain `ToClient`, as on a runner's connection).
fn to_runner(message_id: MessageId, kind: ToClientTunnelMessageKind) -> Vec<u8> {
    wire::encode(&ToClient::TunnelMessage(ToClientTunnelMessage {
        message_id,
        kind,
    }))
}

/// A runner → gateway tunnel frame (plain `ToServer`).
fn to_gateway(message_id: MessageId, kind: ToServerTunnelMessageKind) -> Vec<u8> {
    wire::encode(&ToServer::TunnelMessage(ToServerTunnelMessage {
        message_id,
        kind,
    }))
}

/// The gateway → runner tunnel message in `frame`, if it is one.
fn down_tunnel(frame: &[u8]) -> Option<ToClientTunnelMessage> {
    match wire::decode::<ToClient>(frame) {
        Ok(ToClient::TunnelMessage(m)) => Some(m),
        _ => None,
    }
}

/// The runner → gateway tunnel message in `frame`, if it is one.
fn up_tunnel(frame: &[u8]) -> Option<ToServerTunnelMessage> {
    match wire::decode::<ToServer>(frame) {
        Ok(ToServer::TunnelMessage(m)) => Some(m),
        _ => None,
    }
}

/// The request id of the first open the gateway sent through the man in the middle.
fn opened_request(mitm: &Mitm) -> RequestId {
    mitm.to_runner
        .seen()
        .iter()
        .find_map(|f| {
            down_tunnel(f)
                .filter(|m| matches!(m.kind, ToClientTunnelMessageKind::WebSocketOpen(_)))
                .map(|m| m.message_id.request_id)
        })
        .expect("the gateway sent an open")
}

/// Frames of `request_id` the runner published so far.
fn runner_frames_for(mitm: &Mitm, request_id: RequestId) -> usize {
    mitm.to_gateway
        .seen()
        .iter()
        .filter(|f| up_tunnel(f).is_some_and(|m| m.message_id.request_id == request_id))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_runner_hop_gets_typed_answers_and_the_client_keeps_every_message() {
    let dir = DataDir::new(None).expect("temp dir");
    let limits = DecodeLimits::default().with_max_frame_size(MAX_FRAME);
    let mut control = demo::gateway::control_config();
    control.decode_limits = limits.clone();
    let server = gateway(GatewayOptions {
        config: GatewayConfig::default().with_decode_limits(limits),
        control,
        ..default_gateway()
    })
    .await;
    let mitm = Mitm::start(&server).await;
    let runner = runner(mitm.url.clone(), server.runner_token(), &dir).await;
    let mut client = Client::connect(&server.url(), "steady")
        .await
        .expect("connect");
    let d = stream(&mut client, 9, 0, 20, 0).await;
    assert_eq!(client.wait_echo(20, WAIT).await, Some((20, d)));
    // Everything acked: the frames recorded so far are old from now on.
    eventually("every message acked", || async {
        (server.stats().messages_acked == 20).then_some(())
    })
    .await;
    let request = opened_request(&mitm);
    // The tunnel frames (the connection also carries the handshake, commands, events, pings).
    let old_down: Vec<_> = mitm
        .to_runner
        .seen()
        .into_iter()
        .filter(|f| down_tunnel(f).is_some())
        .collect();
    let old_up = mitm.to_gateway.seen();
    let stranger = RequestId(*b"\x00\x01\x02\x03");

    // --- Gateway → runner ---------------------------------------------------------------
    let before = runner.handle().call(|r, _| r.stats()).expect("runner");
    let rejected_before = runner.handle().session().stats().frames_rejected;
    // Garbage and an oversized frame (past the decode limit).
    let garbage: [&[u8]; 3] = [&[], &[0xff, 0xff, 1, 2, 3], &[7, 0, 4, 9, 9, 9, 9]];
    for g in garbage {
        mitm.to_runner.inject(g.to_vec());
    }
    let huge = vec![0u8; 2 * MAX_FRAME];
    mitm.to_runner.inject(to_runner(
        id(DEMO, request, 500),
        ToClientTunnelMessageKind::WebSocketMessage(ToClientWebSocketMessage {
            data: huge.into(),
            binary: true,
        }),
    ));
    // Every old gateway frame again (the open and the 20 messages).
    for f in &old_down {
        mitm.to_runner.inject(f.to_vec());
    }
    // A message for a socket the runner never held: answered 1011 `ws.socket_not_found`.
    mitm.to_runner.inject(to_runner(
        id(DEMO, stranger, 0),
        ToClientTunnelMessageKind::WebSocketMessage(ToClientWebSocketMessage {
            data: b"who?".to_vec().into(),
            binary: false,
        }),
    ));
    // A gateway close for a socket the runner never held: dropped and counted, no answer (the
    // gateway released the request when it sent the close).
    let never_held = RequestId(*b"\x09\x08\x07\x06");
    mitm.to_runner.inject(to_runner(
        id(DEMO, never_held, 0),
        ToClientTunnelMessageKind::WebSocketClose(ToClientWebSocketClose {
            code: Some(1000),
            reason: None,
        }),
    ));
    let after = eventually(
        "the runner to drop or answer every injected frame",
        || async {
            let r = runner.handle().call(|r, _| r.stats()).ok()?;
            let rejected = runner.handle().session().stats().frames_rejected;
            (rejected >= rejected_before + 4
                && r.duplicates >= before.duplicates + 20
                && r.not_found_answers > before.not_found_answers
                && r.dropped_unknown_socket >= before.dropped_unknown_socket + 2)
                .then_some(r)
        },
    )
    .await;
    assert_eq!(after.delivered, before.delivered, "nothing delivered twice");
    assert_eq!(
        runner_frames_for(&mitm, never_held),
        0,
        "a close is never answered"
    );

    // --- Runner → gateway ---------------------------------------------------------------
    let before = server.stats();
    let malformed = |s: &demo::gateway::Snapshot| -> u64 {
        s.receive_errors
            .iter()
            .filter(|(e, _)| e.starts_with("malformed frame"))
            .map(|(_, n)| n)
            .sum()
    };
    let malformed_before = malformed(&server.snapshot().await);
    for g in garbage {
        mitm.to_gateway.inject(g.to_vec());
    }
    mitm.to_gateway.inject(to_gateway(
        id(DEMO, request, 0),
        ToServerTunnelMessageKind::WebSocketMessage(ToServerWebSocketMessage {
            data: vec![0; 2 * MAX_FRAME].into(),
            binary: true,
        }),
    ));
    // An ack of an index the gateway never sent (ahead of the 20 sent, within the window; one
    // half the index space ahead reads as behind: stale).
    mitm.to_gateway.inject(to_gateway(
        id(DEMO, request, 0),
        ToServerTunnelMessageKind::WebSocketMessageAck(ToServerWebSocketMessageAck {
            index: MessageIndex::new(1_000),
        }),
    ));
    // A foreign gateway id.
    mitm.to_gateway.inject(to_gateway(
        id(GatewayId(*b"evil"), request, 0),
        ToServerTunnelMessageKind::WebSocketMessage(ToServerWebSocketMessage {
            data: b"forged".to_vec().into(),
            binary: false,
        }),
    ));
    // A message for a request the gateway does not have: answered 1011 `ws.request_not_found`
    // (which the runner drops without an answer: no loop).
    mitm.to_gateway.inject(to_gateway(
        id(DEMO, stranger, 0),
        ToServerTunnelMessageKind::WebSocketMessage(ToServerWebSocketMessage {
            data: b"anyone?".to_vec().into(),
            binary: false,
        }),
    ));
    // The runner's old acks again: stale.
    let old_acks: Vec<_> = old_up
        .iter()
        .filter(|f| {
            up_tunnel(f).is_some_and(|m| {
                matches!(m.kind, ToServerTunnelMessageKind::WebSocketMessageAck(_))
            })
        })
        .collect();
    assert!(!old_acks.is_empty());
    for f in &old_acks {
        mitm.to_gateway.inject(f.to_vec());
    }
    let after = eventually("the gateway to drop every injected frame", || async {
        let g = server.stats();
        // Malformed frames are the control engine's to drop (it decodes the connection).
        let m = malformed(&server.snapshot().await);
        (m == malformed_before + 4
            && g.acks_invalid == before.acks_invalid + 1
            && g.dropped_wrong_gateway == before.dropped_wrong_gateway + 1
            && g.unknown_request_answers == before.unknown_request_answers + 1
            && g.acks_stale >= before.acks_stale + old_acks.len() as u64)
            .then_some(g)
    })
    .await;
    assert_eq!(after.closed, 0, "no request was closed");
    let s = server.snapshot().await;
    assert!(
        s.receive_errors
            .keys()
            .any(|e| e.contains("addressed to gateway")),
        "typed errors: {:?}",
        s.receive_errors
    );

    // The well-behaved client keeps streaming; every message is committed exactly once.
    let d = stream(&mut client, 9, 20, 60, d).await;
    assert_eq!(client.wait_echo(60, WAIT).await, Some((60, d)));
    settled(&server, &runner, 1).await;
    let _ = client.close(1000, "done").await;
    let c = committed_result(&dir.path, StorageKind::File, "steady", WAIT)
        .await
        .expect("committed");
    assert_eq!((c.count, c.digest, c.duplicates, c.gaps), (60, d, 0, 0));
    settled(&server, &runner, 0).await;
}

/// Raw bytes to the gateway: a WebSocket handshake for `/actors/<actor>`, then `frames`.
async fn raw_client(server: &GatewayServer, actor: &str) -> tokio::net::TcpStream {
    let mut tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let request = format!(
        "GET /actors/{actor} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut buf = [0u8; 1024];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tcp.read(&mut buf).await.expect("read");
        assert!(n > 0, "the gateway answers the handshake");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 101"), "upgraded");
    tcp
}

/// A masked client frame.
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    let len = payload.len();
    if len < 126 {
        f.push(0x80 | u8::try_from(len).expect("small"));
    } else {
        f.push(0x80 | 0x7e);
        f.extend_from_slice(&u16::try_from(len).expect("medium").to_be_bytes());
    }
    let mask = [1u8, 2, 3, 4];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Reads until the gateway closes the connection; the close code it sent, if any.
async fn close_code(tcp: &mut tokio::net::TcpStream) -> Option<u16> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .expect("the gateway closes the connection");
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    // Server frames are unmasked: find a close frame (opcode 8) with a code.
    let mut i = 0;
    while i + 2 <= got.len() {
        let (op, len) = (got[i] & 0x0f, usize::from(got[i + 1] & 0x7f));
        let (start, len) = match len {
            126 if i + 4 <= got.len() => (
                i + 4,
                usize::from(u16::from_be_bytes([got[i + 2], got[i + 3]])),
            ),
            127 => return None,
            l => (i + 2, l),
        };
        if op == 8 && len >= 2 && start + 2 <= got.len() {
            return Some(u16::from_be_bytes([got[start], got[start + 1]]));
        }
        i = start + len;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_client_frames_are_closed_and_the_gateway_keeps_serving() {
    let dir = DataDir::new(None).expect("temp dir");
    let (server, runner, mut client) = steady(
        GatewayOptions {
            config: GatewayConfig::default().with_max_pending_bytes(64 * 1024),
            ..default_gateway()
        },
        &dir,
    )
    .await;
    let d = stream(&mut client, 11, 0, 10, 0).await;
    assert_eq!(client.wait_echo(10, WAIT).await, Some((10, d)));

    // Not HTTP at all.
    let mut junk = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    junk.write_all(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(
        close_code(&mut junk).await,
        None,
        "refused before any WebSocket"
    );

    // Each hostile frame after a good handshake: the connection is closed, with a code.
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        // A reserved opcode.
        ("reserved opcode", frame(0x3, b"x"), 1002),
        // An unmasked client frame.
        ("unmasked", vec![0x82, 0x01, 0x00], 1002),
        // Text that is not UTF-8.
        ("invalid utf-8", frame(0x1, &[0xc3, 0x28]), 1007),
        // A message larger than the request's whole pending limit: the engine's typed close,
        // 1011 `guard.websocket_pending_limit_reached`.
        ("oversized", frame(0x2, &vec![0x55; 65_535]), 1011),
    ];
    for (what, bytes, want) in cases {
        let mut tcp = raw_client(&server, "victim").await;
        // A good message first, so the request is open at the runner.
        tcp.write_all(&frame(0x2, b"0000000000hello"))
            .await
            .expect("write");
        tcp.write_all(&bytes).await.expect("write");
        let code = close_code(&mut tcp).await;
        assert_eq!(code, Some(want), "{what}");
    }
    // A frame header announcing 2^62 bytes: refused without taking the memory.
    let mut tcp = raw_client(&server, "victim").await;
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 62).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    tcp.write_all(&header).await.expect("write");
    assert_eq!(close_code(&mut tcp).await, Some(1009), "huge header");

    let d = stream(&mut client, 11, 10, 40, d).await;
    assert_eq!(client.wait_echo(40, WAIT).await, Some((40, d)));
    settled(&server, &runner, 1).await;
    let s = server.snapshot().await;
    assert!(
        s.closes.keys().any(|k| k.contains("pending limit")),
        "{:?}",
        s.closes
    );
    let _ = client.close(1000, "done").await;
    settled(&server, &runner, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_storms_leave_nothing_behind() {
    let dir = DataDir::new(None).expect("temp dir");
    let (server, runner, mut client) = steady(default_gateway(), &dir).await;
    let mut d = 0;
    let mut sent = 0;
    let url = server.url();
    let addr = server.addr;
    for burst in 0..8u64 {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..250u64 {
            let url = url.clone();
            let actor = format!("storm-{}", i % 8);
            set.spawn(async move {
                match i % 5 {
                    // TCP only, dropped before any handshake.
                    0 => {
                        let _ = tokio::net::TcpStream::connect(addr).await;
                    }
                    // Half a handshake, then dropped.
                    1 => {
                        if let Ok(mut tcp) = tokio::net::TcpStream::connect(addr).await {
                            let _ = tcp
                                .write_all(b"GET /actors/x HTTP/1.1\r\nHost: a\r\n")
                                .await;
                        }
                    }
                    // Opened, then the TCP connection dropped without a close frame.
                    2 => {
                        if let Ok((ws, _)) =
                            tokio_tungstenite::connect_async(format!("{url}/actors/{actor}")).await
                        {
                            drop(ws);
                        }
                    }
                    // Opened, one message, its echo, a normal close.
                    3 => {
                        let mut c = Client::connect(&url, &actor).await.expect("connect");
                        let (data, binary) = demo::payload::message(i, 0, 10, 64);
                        c.send(data, binary).await.expect("send");
                        assert_eq!(c.wait_echo(1, WAIT).await.map(|e| e.0), Some(1));
                        let _ = c.close(1000, "bye").await;
                    }
                    // Opened and closed at once, maybe before the runner accepted.
                    _ => {
                        if let Ok((mut ws, _)) =
                            tokio_tungstenite::connect_async(format!("{url}/actors/{actor}")).await
                        {
                            let _ = ws.close(None).await;
                            while let Some(Ok(_)) = ws.next().await {}
                        }
                    }
                }
            });
        }
        // The steady client streams between and during the bursts.
        d = stream(&mut client, 12, sent, sent + 10, d).await;
        sent += 10;
        while let Some(r) = set.join_next().await {
            r.expect("a storm task");
        }
        assert_eq!(
            client.wait_echo(sent, WAIT).await,
            Some((sent, d)),
            "burst {burst}"
        );
    }
    settled(&server, &runner, 1).await;
    let g = server.stats();
    assert!(g.opened >= 8 * 250 * 3 / 5, "{g:?}");
    assert_eq!(g.opened, g.closed + 1, "every storm request closed");
    let _ = client.close(1000, "done").await;
    let c = committed_result(&dir.path, StorageKind::File, "steady", WAIT)
        .await
        .expect("committed");
    assert_eq!((c.count, c.digest, c.duplicates, c.gaps), (sent, d, 0, 0));
    settled(&server, &runner, 0).await;
}

/// Reads `n` echo texts slowly (a pause every 64), checking the client queue's bound after
/// each; the close frame instead, if the gateway closes first.
async fn read_slowly(
    source: &mut futures_util::stream::SplitStream<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    >,
    server: &GatewayServer,
    limits: hibernating_ws::driver::tokio::QueueLimits,
    n: u64,
) -> (u64, Option<(u16, String)>) {
    let mut echoes = 0u64;
    while echoes < n {
        match tokio::time::timeout(WAIT, source.next()).await {
            Ok(Some(Ok(Message::Text(_)))) => echoes += 1,
            Ok(Some(Ok(Message::Close(f)))) => {
                return (echoes, f.map(|f| (u16::from(f.code), f.reason.to_string())));
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("after {echoes} echoes: {other:?}"),
        }
        if echoes.is_multiple_of(64) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let q = server.queue_stats();
        assert!(
            q.bytes <= limits.max_bytes && q.messages <= limits.max_messages,
            "{q:?}"
        );
    }
    (echoes, None)
}

/// A slow reader that keeps at most 32 messages unanswered gets every echo; one that writes
/// 2 000 messages at once and reads slowly is paused, then closed with 1008
/// `hws.client_queue_full` when the echoes already in flight overflow its queue. The queue
/// stays within its limits throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_readers_stay_within_their_queue_bound() {
    use hibernating_ws::driver::tokio::{CLIENT_QUEUE_FULL, QueueLimits};
    let limits = QueueLimits {
        max_bytes: 64 * 1024,
        max_messages: 256,
    };
    let dir = DataDir::new(None).expect("temp dir");
    let server = gateway(GatewayOptions {
        client_queue: limits,
        ..default_gateway()
    })
    .await;
    let runner = runner(server.url(), server.runner_token(), &dir).await;
    let n = 2_000u64;

    // Windowed: every echo.
    let (ws, _) = tokio_tungstenite::connect_async(format!("{}/actors/slow", server.url()))
        .await
        .expect("connect");
    let (mut sink, mut source) = ws.split();
    for seq in 0..n {
        let (data, _) = demo::payload::message(13, seq, 10, 200);
        sink.send(Message::Binary(Bytes::from(data)))
            .await
            .expect("send");
        if seq % 32 == 31 {
            let (got, closed) = read_slowly(&mut source, &server, limits, 32).await;
            assert_eq!((got, closed), (32, None), "message {seq}");
        }
    }
    let _ = sink.close().await;

    // Unwindowed: paused, then closed with a typed reason (or, if the runner kept up, every
    // echo).
    let (ws, _) = tokio_tungstenite::connect_async(format!("{}/actors/slow", server.url()))
        .await
        .expect("connect");
    let (mut sink, mut source) = ws.split();
    let writer = tokio::spawn(async move {
        for seq in 0..n {
            let (data, _) = demo::payload::message(14, seq, 10, 200);
            if sink.send(Message::Binary(Bytes::from(data))).await.is_err() {
                break;
            }
        }
        sink
    });
    let (got, closed) = read_slowly(&mut source, &server, limits, n).await;
    match closed {
        None => assert_eq!(got, n),
        Some((code, reason)) => assert_eq!((code, reason.as_str()), (1008, CLIENT_QUEUE_FULL)),
    }
    let mut sink = writer.await.expect("writer");
    let _ = sink.close().await;
    settled(&server, &runner, 0).await;
    let q = server.queue_stats();
    assert!(q.peak_bytes <= limits.max_bytes + 512, "{q:?}");
}

/// Half-open peers: clients that opened, sent a message and then neither read nor write (nor
/// close), and a runner link that completed its handshake and went silent. The keepalive closes each client
/// with 1001 `hws.idle_timeout` (the runner gets the close too) and drops the link; the
/// well-behaved client, which answers pings, keeps streaming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_clients_and_runner_links_are_closed_by_the_keepalive() {
    use demo::keepalive::{IDLE_TIMEOUT_REASON, Keepalive};
    let keepalive = Keepalive {
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(400),
    };
    let dir = DataDir::new(None).expect("temp dir");
    let (server, runner, mut client) = steady(
        GatewayOptions {
            keepalive,
            ..default_gateway()
        },
        &dir,
    )
    .await;
    let mut frozen = Vec::new();
    for i in 0..20u64 {
        let mut tcp = raw_client(&server, "frozen").await;
        let (data, _) = demo::payload::message(i, 0, 10, 64);
        tcp.write_all(&frame(0x2, &data)).await.expect("write");
        frozen.push(tcp);
    }
    let mut silent = demo::runner::connect_raw(
        &server.url(),
        server.runner_token(),
        GatewayOptions::default().websocket,
    )
    .await
    .expect("the silent runner connects");
    // Its handshake (one slot: nothing is placed on it), then silence.
    let init = ToServer::Init(wire::ToServerInit {
        name: demo::gateway::RUNNER_POOL.into(),
        version: 1,
        total_slots: 1,
        prepopulate_actor_names: None,
        metadata: None,
    });
    silent
        .send(Message::Binary(Bytes::from(wire::encode(&init))))
        .await
        .expect("init");

    // The steady client streams (and answers pings) meanwhile.
    let mut d = 0;
    for round in 0..10u64 {
        d = stream(&mut client, 15, round * 5, round * 5 + 5, d).await;
        assert_eq!(
            client.wait_echo(round * 5 + 5, WAIT).await,
            Some((round * 5 + 5, d))
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = eventually("every frozen client closed", || async {
        let s = server.snapshot().await;
        let idle: u64 = s
            .closes
            .iter()
            .filter(|(k, _)| k.contains(IDLE_TIMEOUT_REASON))
            .map(|(_, n)| n)
            .sum();
        (idle == 20).then_some(s)
    })
    .await;
    assert_eq!(s.closes.values().sum::<u64>(), 20, "{:?}", s.closes);
    for mut tcp in frozen {
        assert_eq!(close_code(&mut tcp).await, Some(1001), "a typed close");
    }
    // The silent link was dropped: reading it now finds pings, then its end.
    let ended = tokio::time::timeout(WAIT, async {
        while let Some(Ok(_)) = silent.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the silent runner link was dropped");
    settled(&server, &runner, 1).await;
    assert!(client.echoes() >= 50 && !client.ended());
    let _ = client.close(1000, "done").await;
    settled(&server, &runner, 0).await;
}
