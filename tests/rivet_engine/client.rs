//! A client WebSocket through the engine's gateway, and the checks the scenarios share.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Generous bound for one expected event (a hang guard, not a timing assertion).
pub const EVENT: Duration = Duration::from_secs(30);
/// Most client messages in flight (sent, not yet echoed).
pub const WINDOW: usize = 1000;

/// What the client saw next.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    Text(String),
    Close(Option<(u16, String)>),
    /// The stream ended without a close frame.
    Ended,
}

pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    /// Connects, offering the `rivet` subprotocol (the engine's gateway wants one).
    pub async fn connect(url: &str) -> Self {
        let mut request = url.into_client_request().expect("ws url");
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("rivet"));
        let (ws, _) = tokio::time::timeout(EVENT, tokio_tungstenite::connect_async(request))
            .await
            .expect("connect in time")
            .expect("connect through the gateway");
        Self { ws }
    }

    pub async fn send(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_string()))
            .await
            .expect("client send");
    }

    pub async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_string().into(),
        };
        self.ws.close(Some(frame)).await.expect("client close");
    }

    /// The next text or close; `None` when nothing came within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Seen> {
        loop {
            let item = tokio::time::timeout(wait, self.ws.next()).await.ok()?;
            return Some(match item {
                Some(Ok(Message::Text(t))) => Seen::Text(t.to_string()),
                Some(Ok(Message::Binary(b))) => Seen::Text(String::from_utf8_lossy(&b).into()),
                Some(Ok(Message::Close(frame))) => {
                    Seen::Close(frame.map(|f| (u16::from(f.code), f.reason.to_string())))
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => Seen::Ended,
            });
        }
    }

    pub async fn next_echo(&mut self, what: &str) -> String {
        match self.next(EVENT).await {
            Some(Seen::Text(t)) => t,
            other => panic!("{what}: expected an echo, got {other:?}"),
        }
    }

    /// Sends `msgs` with at most [`WINDOW`] in flight and checks their echoes, in order.
    pub async fn send_all(&mut self, msgs: &[String], what: &str) {
        let mut echoed = 0;
        for (sent, m) in msgs.iter().enumerate() {
            while sent - echoed >= WINDOW {
                let e = self.next_echo(what).await;
                assert_eq!(e, msgs[echoed], "{what}: echo {echoed}");
                echoed += 1;
            }
            self.send(m).await;
        }
        while echoed < msgs.len() {
            let e = self.next_echo(what).await;
            assert_eq!(e, msgs[echoed], "{what}: echo {echoed}");
            echoed += 1;
        }
    }
}

pub fn batch(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}
