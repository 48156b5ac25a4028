//! The demo's runner hop against rogue runners, over real WebSockets on 127.0.0.1: each rogue is
//! refused with a typed reason ([`RunnerRejection`]) and the honest client's stream is untouched.
//!
//! * no token, a wrong token, or no runner key: the upgrade is refused (HTTP 401, reason in the
//!   body);
//! * the right token but a tunnel frame before `ToServerInit`: the control engine drops it
//!   (`NotInitialized`) and the connection is closed with 1008 `runner.init_required`; no frame
//!   reaches the gateway;
//! * request ids are random: sequential guesses name no live request.
//!
//! Real time, not paused; no timing assertions (every wait is for an event, bounded by a generous
//! timeout that only fails a broken system).

#![allow(
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc,
    clippy::similar_names
)] // application code on std

mod e2e_support;

use demo::auth::{self, RunnerRejection};
use demo::client::Client;
use demo::gateway::GatewayServer;
use demo::scenario::DataDir;
use e2e_support::{WAIT, connect_as_runner, demo, gateway, runner_options, start_runner, stream};
use futures_util::{SinkExt, StreamExt};
use hibernating_ws::MessageIndex;
use hibernating_ws::gateway::GatewayConfig;
use hibernating_ws::wire::{
    self, GatewayId, MessageId, RequestId, ToServer, ToServerTunnelMessage,
    ToServerTunnelMessageKind, ToServerWebSocketClose, ToServerWebSocketMessage,
};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};

/// Connects to the runner endpoint (with a runner key if `key`) offering `protocols` (none if
/// `None`); returns the HTTP refusal's status and body, or `None` if the upgrade succeeded.
async fn refused(
    server: &GatewayServer,
    protocols: Option<&str>,
    key: bool,
) -> Option<(u16, String)> {
    let query = if key { "&runner_key=rogue" } else { "" };
    let mut request = format!(
        "{}/runners/connect?protocol_version=7&namespace=default{query}",
        server.url()
    )
    .into_client_request()
    .expect("a request");
    if let Some(p) = protocols {
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(p).expect("a header value"),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Err(WsError::Http(resp)) => Some((
            resp.status().as_u16(),
            String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned(),
        )),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => None,
    }
}

/// A tunnel frame a rogue would send: a close (4000) or a message for `request_id`.
fn injected(request_id: RequestId, close: bool) -> Vec<u8> {
    let kind = if close {
        ToServerTunnelMessageKind::WebSocketClose(ToServerWebSocketClose {
            code: Some(4000),
            reason: Some("rogue".into()),
            hibernate: false,
        })
    } else {
        ToServerTunnelMessageKind::WebSocketMessage(ToServerWebSocketMessage {
            data: b"injected".to_vec().into(),
            binary: false,
        })
    };
    // Plain `ToServer`, as runners send on their connection.
    wire::encode(&ToServer::TunnelMessage(ToServerTunnelMessage {
        message_id: MessageId {
            gateway_id: GatewayId(*b"demo"),
            request_id,
            message_index: MessageIndex::ZERO,
        },
        kind,
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rogue_runners_are_refused_with_a_typed_reason_and_the_hibernating_client_is_untouched() {
    let dir = DataDir::new(None).expect("temp dir");
    let server = gateway(GatewayConfig::default()).await;
    let _honest = start_runner(runner_options(&server, &dir, "honest")).await;
    let mut client = Client::connect(&server.url(), "victim")
        .await
        .expect("connect");
    let digest = stream(&mut client, 5, 0, 10, 500, 0).await;
    assert_eq!(client.wait_echo(10, WAIT).await, Some((10, digest)));
    // The victim's socket hibernates: the window the rogue used.
    server.sleep_actor("victim").await;
    assert_eq!(server.stats().hibernating, 1);

    // 1. No token at all, 2. a wrong token: the upgrade itself is refused.
    let missing = refused(&server, None, true).await;
    assert_eq!(
        missing,
        Some((401, RunnerRejection::MissingToken.reason().to_string()))
    );
    let wrong = refused(
        &server,
        Some(&auth::subprotocol_header("not-the-token")),
        true,
    )
    .await;
    assert_eq!(
        wrong,
        Some((401, RunnerRejection::BadToken.reason().to_string()))
    );
    // (The right token without a runner key is refused too.)
    let right = auth::subprotocol_header(server.runner_token());
    assert_eq!(
        refused(&server, Some(&right), false).await,
        Some((401, RunnerRejection::MissingKey.reason().to_string()))
    );

    // 3. The right token but no `ToServerInit`: its first tunnel frame closes it (1008), and the
    // frames (a close 4000 and a message for every guessable id) never reach the gateway.
    let ws = connect_as_runner(&server)
        .await
        .expect("the upgrade succeeds with the token");
    let (mut tx, mut rx) = ws.split();
    for guess in 1..=4u32 {
        for close in [false, true] {
            let frame = injected(RequestId::from_u32(guess), close);
            if tx.send(Message::Binary(Bytes::from(frame))).await.is_err() {
                break;
            }
        }
    }
    let close = tokio::time::timeout(WAIT, async {
        while let Some(Ok(msg)) = rx.next().await {
            if let Message::Close(frame) = msg {
                return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
            }
        }
        None
    })
    .await
    .expect("closed in time");
    assert_eq!(
        close,
        Some((1008, RunnerRejection::InitRequired.reason().to_string()))
    );

    let snapshot = server.snapshot().await;
    assert_eq!(
        snapshot
            .runners_rejected
            .get(&RunnerRejection::MissingToken),
        Some(&1)
    );
    assert_eq!(
        snapshot.runners_rejected.get(&RunnerRejection::BadToken),
        Some(&1)
    );
    assert_eq!(
        snapshot
            .runners_rejected
            .get(&RunnerRejection::InitRequired),
        Some(&1)
    );
    assert_eq!(
        snapshot.runners_rejected.get(&RunnerRejection::MissingKey),
        Some(&1)
    );
    // The engine dropped what the rogue sent before its handshake (typed: NotInitialized) and
    // nothing else: no tunnel message reached the gateway.
    assert!(
        !snapshot.receive_errors.is_empty()
            && snapshot
                .receive_errors
                .keys()
                .all(|e| e.contains("before ToServerInit")),
        "only frames before the handshake were dropped: {:?}",
        snapshot.receive_errors
    );
    assert_eq!(
        server.stats().messages_acked,
        10,
        "no rogue ack or message counted"
    );

    // The victim is still there, hibernating; it wakes on its next message and every message
    // arrives once, with nothing injected in between (the echo digest covers the whole stream).
    let stats = server.stats();
    assert_eq!((stats.hibernating, stats.closed), (1, 0), "{stats:?}");
    let digest = stream(&mut client, 5, 10, 20, 500, digest).await;
    assert_eq!(client.wait_echo(20, WAIT).await, Some((20, digest)));
    assert!(!client.ended());
}
