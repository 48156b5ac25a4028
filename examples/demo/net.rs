//! The gateway's listener: [`accept_loop`] keeps listening through accept errors. An error about
//! one connection (reset or aborted before it was accepted) is skipped; a lack of resources (out
//! of file descriptors, buffers or memory) backs off (10 ms doubling to 1 s) and tries again.
//! Every error is counted.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// First back-off after a resource error.
pub const MIN_BACKOFF: Duration = Duration::from_millis(10);
/// Longest back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);

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
