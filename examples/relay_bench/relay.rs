//! The baseline: a plain WebSocket relay (client → relay → backend) forwarding every frame
//! as-is, and the counting backend both relay modes share.

use std::io;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use super::{Arrivals, Sample, accept_one, check, client, connect, lock, url};

/// One client through the relay to the counting backend: `messages` of `size` bytes.
pub(crate) async fn baseline(size: usize, messages: u64) -> io::Result<Sample> {
    let mut tasks = JoinSet::new();
    let (arrivals, warm, done) = Arrivals::new(messages + 1, 1);

    let arrivals = Arc::new(Mutex::new(arrivals));
    let backend_url = counting_backend(&mut tasks, arrivals.clone()).await?;

    // Relay: per client, dial the backend and forward both ways.
    let relay = TcpListener::bind("127.0.0.1:0").await?;
    let relay_url = url(relay.local_addr()?);
    tasks.spawn(async move {
        let Some(client) = accept_one(&relay).await else {
            return;
        };
        let Ok(backend) = connect(&backend_url).await else {
            return;
        };
        let (client_tx, client_rx) = client.split();
        let (backend_tx, backend_rx) = backend.split();
        let up = tokio::spawn(client_rx.forward(backend_tx));
        let down = tokio::spawn(backend_rx.forward(client_tx));
        let _ = up.await;
        down.abort();
    });

    let sample = client(relay_url, size, messages, warm, done).await?;
    check(&lock(&arrivals), size, messages)?;
    tasks.abort_all();
    Ok(sample)
}

/// The backend of both relay modes: one connection, whose binary frames it counts. Returns its
/// URL.
pub(crate) async fn counting_backend(
    tasks: &mut JoinSet<()>,
    arrivals: Arc<Mutex<Arrivals>>,
) -> io::Result<String> {
    let backend = TcpListener::bind("127.0.0.1:0").await?;
    let backend_url = url(backend.local_addr()?);
    tasks.spawn(async move {
        let Some(mut ws) = accept_one(&backend).await else {
            return;
        };
        while let Some(Ok(msg)) = ws.next().await {
            match msg {
                Message::Binary(b) => lock(&arrivals).message(b.len()),
                Message::Close(_) => break,
                _ => {}
            }
        }
    });
    Ok(backend_url)
}
