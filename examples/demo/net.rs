//! The gateway's listener and WebSocket settings.
//!
//! * [`accept_loop`] keeps listening through accept errors: an error about one connection
//!   (reset or aborted before it was accepted) is skipped, a lack of resources (out of file
//!   descriptors, buffers or memory) backs off (10 ms doubling to 1 s) and tries again. Every error
//!   is counted.
//! * [`WsLimits`] sizes the WebSocket buffers per hop. tungstenite's defaults (a 128 KiB read
//!   buffer allocated eagerly per connection, an unlimited write buffer, 64 MiB messages) cost
//!   about 134 KiB per idle client; the demo's defaults read in 4 KiB chunks, write each message
//!   through (the writer flushes anyway) and bound both the write buffer and the message size.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// First back-off after a resource error.
pub const MIN_BACKOFF: Duration = Duration::from_millis(10);
/// Longest back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// WebSocket buffer sizes and limits of one hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsLimits {
    /// Read buffer, allocated per connection (tungstenite grows it for a larger frame, up to
    /// `max_message_size`, and keeps that capacity).
    pub read_buffer_size: usize,
    /// Bytes buffered before a write goes to the socket (`0`: every message at once).
    pub write_buffer_size: usize,
    /// Most bytes the write buffer may hold (a peer that does not read makes writes fail past
    /// it instead of growing memory).
    pub max_write_buffer_size: usize,
    /// Largest message (and frame) accepted.
    pub max_message_size: usize,
}

impl WsLimits {
    /// Client hop: many mostly idle connections.
    pub const CLIENT: Self = Self {
        read_buffer_size: 4 * 1024,
        write_buffer_size: 0,
        max_write_buffer_size: 1024 * 1024,
        max_message_size: 1024 * 1024,
    };

    /// Runner hop: few connections carrying every tunnel frame.
    pub const RUNNER: Self = Self {
        read_buffer_size: 64 * 1024,
        write_buffer_size: 0,
        max_write_buffer_size: 64 * 1024 * 1024,
        max_message_size: 16 * 1024 * 1024,
    };

    /// tungstenite's own defaults (the baseline the demo's sizes are measured against).
    pub const TUNGSTENITE_DEFAULTS: Self = Self {
        read_buffer_size: 128 * 1024,
        write_buffer_size: 128 * 1024,
        max_write_buffer_size: usize::MAX,
        max_message_size: 64 << 20,
    };

    /// The tungstenite configuration.
    pub fn config(self) -> WebSocketConfig {
        let max_message = self.max_message_size.max(1);
        WebSocketConfig::default()
            .read_buffer_size(self.read_buffer_size.max(1))
            .write_buffer_size(self.write_buffer_size)
            // tungstenite needs room for one message beyond the write target.
            .max_write_buffer_size(
                self.max_write_buffer_size
                    .max(self.write_buffer_size.saturating_add(max_message)),
            )
            .max_message_size(Some(max_message))
            .max_frame_size(Some(max_message))
    }
}

/// Whether an accept error concerns only the connection being accepted.
fn per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Accepts connections forever, handing each to `on_connection`; survives accept errors (see the
/// module docs), counting them in `errors`.
pub async fn accept_loop(
    listener: TcpListener,
    errors: Arc<AtomicU64>,
    mut on_connection: impl FnMut(TcpStream),
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                backoff = MIN_BACKOFF;
                on_connection(tcp);
            }
            Err(e) => {
                errors.fetch_add(1, Ordering::Relaxed);
                if !per_connection(&e) {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// The path of the HTTP request line a new connection starts with, read without consuming it
/// (`None` if the connection ends first or the line is not a `GET` within 1 KiB). Call it under a
/// timeout: a peer that sends nothing keeps it waiting.
pub async fn peek_path(tcp: &TcpStream) -> Option<String> {
    let mut buf = [0u8; 1024];
    loop {
        let n = tcp.peek(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        let seen = buf.get(..n)?;
        if let Some(end) = seen.iter().position(|&b| b == b'\n') {
            let line = core::str::from_utf8(seen.get(..end)?).ok()?;
            let mut parts = line.split(' ');
            return match (parts.next(), parts.next()) {
                (Some("GET"), Some(target)) => {
                    Some(target.split('?').next().unwrap_or_default().to_string())
                }
                _ => None,
            };
        }
        if n == buf.len() {
            return None;
        }
        // Only part of the line has arrived: peek again once more may be there.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
