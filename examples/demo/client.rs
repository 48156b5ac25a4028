//! The client: streams the seeded messages over a real WebSocket and reads the actor's echoes
//! (`"<seq> <count> <digest>"` after every message it processed).

use std::io;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as WsCloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use super::payload;

/// What the client sends.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `ws://host:port` of the gateway.
    pub gateway: String,
    pub actor: String,
    pub messages: u64,
    pub min_size: usize,
    pub max_size: usize,
    pub seed: u64,
    /// How long to wait for the echo of the last message before closing.
    pub final_wait: Duration,
    /// Close the WebSocket at the end (`false` leaves it to the caller: see [`Client`]).
    pub close: bool,
}

/// What the client saw.
#[derive(Debug, Clone, Default)]
pub struct ClientReport {
    pub sent: u64,
    pub sent_bytes: u64,
    pub text: u64,
    pub binary: u64,
    /// Digest of everything sent.
    pub expected_digest: u64,
    pub echoes: u64,
    /// The highest `(count, digest)` echoed.
    pub last_echo: Option<(u64, u64)>,
    /// The close frame the gateway sent, if it closed the connection.
    pub closed_by_gateway: Option<(u16, String)>,
    /// Status probes sent after the stream (see [`run_client`]).
    pub probes: u64,
    /// Time from the first message to the echo of the last one (or the end of the wait).
    pub elapsed: Duration,
}

impl ClientReport {
    /// Whether the last echo covers every message with the right digest.
    pub fn echo_complete(&self) -> bool {
        self.last_echo == Some((self.sent, self.expected_digest))
    }
}

#[derive(Debug, Clone, Default)]
struct Echoes {
    count: u64,
    last: Option<(u64, u64)>,
    closed: Option<(u16, String)>,
    ended: bool,
}

/// A connected client.
pub struct Client {
    sink: futures_util::stream::SplitSink<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        Message,
    >,
    echoes: watch::Receiver<Echoes>,
    reader: tokio::task::JoinHandle<()>,
}

impl Client {
    /// Connects to `ws://…/actors/<actor>`.
    pub async fn connect(gateway: &str, actor: &str) -> io::Result<Self> {
        let url = format!("{}/actors/{actor}", gateway.trim_end_matches('/'));
        let (ws, _) = connect_async(url.as_str())
            .await
            .map_err(io::Error::other)?;
        let (sink, mut stream) = ws.split();
        let (tx, echoes) = watch::channel(Echoes::default());
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                match msg {
                    Message::Text(t) => {
                        let mut parts = t.as_str().split(' ');
                        let _seq = parts.next();
                        let count = parts.next().and_then(|c| c.parse::<u64>().ok());
                        let digest = parts.next().and_then(|d| u64::from_str_radix(d, 16).ok());
                        tx.send_modify(|e| {
                            e.count += 1;
                            if let (Some(c), Some(d)) = (count, digest)
                                && e.last.is_none_or(|(lc, _)| c >= lc)
                            {
                                e.last = Some((c, d));
                            }
                        });
                    }
                    Message::Close(f) => {
                        let f = f.map_or((1005, String::new()), |f| {
                            (u16::from(f.code), f.reason.as_str().to_string())
                        });
                        tx.send_modify(|e| e.closed = Some(f));
                    }
                    _ => {}
                }
            }
            tx.send_modify(|e| e.ended = true);
        });
        Ok(Self {
            sink,
            echoes,
            reader,
        })
    }

    /// Sends one message.
    pub async fn send(&mut self, data: Vec<u8>, binary: bool) -> io::Result<()> {
        let msg = if binary {
            Message::Binary(Bytes::from(data))
        } else {
            Message::text(String::from_utf8(data).map_err(io::Error::other)?)
        };
        self.sink.send(msg).await.map_err(io::Error::other)
    }

    /// Waits until an echo reports `count` processed messages (or the timeout, or the end).
    pub async fn wait_echo(&mut self, count: u64, timeout: Duration) -> Option<(u64, u64)> {
        let _ = tokio::time::timeout(
            timeout,
            self.echoes
                .wait_for(|e| e.ended || e.last.is_some_and(|(c, _)| c >= count)),
        )
        .await;
        self.echoes.borrow().last
    }

    /// Whether the connection ended.
    pub fn ended(&self) -> bool {
        self.echoes.borrow().ended
    }

    /// Echoes received so far.
    pub fn echoes(&self) -> u64 {
        self.echoes.borrow().count
    }

    /// Waits until the gateway closes the connection; its close frame.
    pub async fn wait_closed(&mut self, timeout: Duration) -> Option<(u16, String)> {
        let _ = tokio::time::timeout(
            timeout,
            self.echoes.wait_for(|e| e.closed.is_some() || e.ended),
        )
        .await;
        self.echoes.borrow().closed.clone()
    }

    /// Closes with `code`/`reason` and waits (bounded) for the connection to end.
    pub async fn close(mut self, code: u16, reason: &str) -> Option<(u16, String)> {
        let frame = WsCloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        let _ = self.sink.send(Message::Close(Some(frame))).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.reader).await;
        self.reader.abort();
        let e = self.echoes.borrow();
        e.closed.clone()
    }
}

/// Streams the messages, waits for the last echo, closes (if asked). The connection is returned
/// when `opts.close` is false.
pub async fn run_client(opts: &ClientOptions) -> io::Result<(ClientReport, Option<Client>)> {
    let mut client = Client::connect(&opts.gateway, &opts.actor).await?;
    let mut report = ClientReport::default();
    let mut digest = 0;
    #[allow(clippy::disallowed_methods)] // the demo measures wall-clock time
    let start = Instant::now();
    for seq in 0..opts.messages {
        let (data, binary) = payload::message(opts.seed, seq, opts.min_size, opts.max_size);
        digest = payload::fold(digest, &data);
        report.sent_bytes += data.len() as u64;
        if binary {
            report.binary += 1;
        } else {
            report.text += 1;
        }
        client.send(data, binary).await?;
        report.sent += 1;
    }
    report.expected_digest = digest;
    // Echoes are not replayed (an echo sent just before the actor slept, or by a runner that was
    // killed, is gone), so the last one may never come: probe until it does. A probe is a message
    // starting with `?`, which the actor answers without counting it.
    #[allow(clippy::disallowed_methods)] // the demo measures wall-clock time
    let wait_start = Instant::now();
    loop {
        report.last_echo = client
            .wait_echo(opts.messages, Duration::from_millis(500))
            .await;
        if report.last_echo.is_some_and(|(c, _)| c >= opts.messages)
            || client.ended()
            || wait_start.elapsed() >= opts.final_wait
        {
            break;
        }
        client.send(b"?".to_vec(), false).await?;
        report.probes += 1;
    }
    report.elapsed = start.elapsed();
    report.echoes = client.echoes();
    if opts.close {
        report.closed_by_gateway = client.close(1000, "done").await;
        Ok((report, None))
    } else {
        Ok((report, Some(client)))
    }
}
