//! `examples/axum_gateway.rs` driven by a real client over loopback: messages go through axum's
//! upgrade, the gateway, the runner hop and the echoing actor and back; an unknown actor is
//! refused with a close; the client's close ends the request.

#![allow(clippy::std_instead_of_core)] // application code on std

#[path = "../examples/axum_gateway.rs"]
mod axum_gateway;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gets_its_echoes_through_axum_and_the_runner() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = tokio::spawn(async move { axum_gateway::serve(listener).await.is_ok() });

    let (mut ws, _) = connect_async(format!("ws://{addr}/actors/echo"))
        .await
        .expect("the upgrade succeeds");
    for i in 0..20u8 {
        let sent = if i % 2 == 0 {
            Message::text(format!("hello {i}"))
        } else {
            Message::binary(vec![i; usize::from(i) * 100])
        };
        ws.send(sent.clone()).await.expect("send");
        let echo = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("an echo in time")
            .expect("the connection is open")
            .expect("a message");
        assert_eq!(echo, sent, "message {i} echoed as sent, text as text");
    }
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "done".into(),
    }))
    .await
    .expect("close");
    let end = tokio::time::timeout(WAIT, async {
        while let Some(Ok(m)) = ws.next().await {
            if m.is_close() {
                return true;
            }
        }
        true
    })
    .await;
    assert_eq!(end, Ok(true), "the connection ends after the close");

    // An actor no runner hosts: the runner refuses the open, the client gets a close frame.
    let (mut ws, _) = connect_async(format!("ws://{addr}/actors/nobody"))
        .await
        .expect("the upgrade succeeds");
    let close = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("a close in time");
    match close {
        Some(Ok(Message::Close(Some(f)))) => {
            assert_eq!(u16::from(f.code), 1011, "{f:?}");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    assert!(!server.is_finished(), "the server keeps serving");
    server.abort();
}
