//! The `tasks` diagnosis mode: the task graph the adapters had before they ran the engines in
//! the socket tasks, without the engines.

use std::io;

use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc::unbounded_channel;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use super::{Arrivals, Sample, TASKS_CAPACITY, accept, check, client, connect, url, writer};

/// The hws task graph without the engines: frames are forwarded as-is (no encoding, no decoding,
/// no acks), but every hop has the tasks, channels and copies of the adapters. Relay: the
/// client's reader copies each frame into a `Vec` and hands it through a bounded channel
/// ([`TASKS_CAPACITY`]) to a "driver" task, which takes
/// batches and publishes through an unbounded channel to the backend's writer task. Backend: the
/// reader copies each frame into a `Vec` and hands it through a bounded channel to a "driver"
/// task, which passes it through an unbounded channel to the app task that counts.
pub(super) async fn tasks_run(size: usize, messages: u64) -> io::Result<Sample> {
    let mut tasks = JoinSet::new();
    let (warm_tx, warm) = oneshot::channel();
    let (done_tx, done) = oneshot::channel();
    let mut arrivals = Arrivals {
        expected: messages + 1,
        warm_at: 1,
        count: 0,
        bytes: 0,
        warm: Some(warm_tx),
        done: Some(done_tx),
    };
    let capacity = TASKS_CAPACITY;

    // Backend: reader -> "driver" -> app.
    let backend = TcpListener::bind("127.0.0.1:0").await?;
    let backend_url = url(backend.local_addr()?);
    let (in_tx, mut in_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(capacity);
    let (app_tx, mut app_rx) = unbounded_channel::<Vec<u8>>();
    tasks.spawn(async move {
        let Ok((tcp, _)) = backend.accept().await else {
            return;
        };
        let Ok(mut ws) = accept(tcp).await else {
            return;
        };
        while let Some(Ok(msg)) = ws.next().await {
            let bytes = match msg {
                Message::Binary(b) => b,
                Message::Close(_) => return,
                _ => continue,
            };
            if in_tx.send(Vec::from(bytes)).await.is_err() {
                return;
            }
        }
    });
    tasks.spawn(async move {
        let mut batch = Vec::with_capacity(64);
        while in_rx.recv_many(&mut batch, 64).await > 0 {
            for data in batch.drain(..) {
                let _ = app_tx.send(data);
            }
        }
    });
    let (result_tx, result) = oneshot::channel();
    tasks.spawn(async move {
        while let Some(data) = app_rx.recv().await {
            arrivals.message(data.len());
            if arrivals.count == arrivals.expected {
                let _ = result_tx.send(arrivals);
                return;
            }
        }
    });

    // Relay: reader -> "driver" -> writer.
    let relay = TcpListener::bind("127.0.0.1:0").await?;
    let relay_url = url(relay.local_addr()?);
    let backend_ws = connect(&backend_url).await?;
    let (backend_tx, _backend_rx) = backend_ws.split();
    let (out_tx, out_rx) = unbounded_channel();
    tasks.spawn(writer(backend_tx, out_rx));
    let (in_tx, mut in_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(capacity);
    tasks.spawn(async move {
        let mut batch = Vec::with_capacity(64);
        while in_rx.recv_many(&mut batch, 64).await > 0 {
            for data in batch.drain(..) {
                let _ = out_tx.send(Message::Binary(Bytes::from(data)));
            }
        }
    });
    tasks.spawn(async move {
        let Ok((tcp, _)) = relay.accept().await else {
            return;
        };
        let Ok(mut ws) = accept(tcp).await else {
            return;
        };
        while let Some(Ok(msg)) = ws.next().await {
            let bytes = match msg {
                Message::Binary(b) => b,
                Message::Close(_) => return,
                _ => continue,
            };
            if in_tx.send(Vec::from(bytes)).await.is_err() {
                return;
            }
        }
    });

    let sample = client(relay_url, size, messages, warm, done).await;
    let outcome = result.await;
    tasks.abort_all();
    let sample = sample?;
    let arrivals = outcome.map_err(|_| io::Error::other("the app stopped early"))?;
    check(&arrivals, size, messages)?;
    Ok(sample)
}
