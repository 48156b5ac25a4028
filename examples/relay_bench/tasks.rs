//! The `tasks` diagnosis mode: the task graph the adapters had before they ran the engines in
//! the socket tasks, without the engines.

use std::io;

use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc::{self, unbounded_channel};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use super::{
    Arrivals, Sample, TASKS_CAPACITY, accept_one, check, client, connect, next_binary, url, writer,
};

/// The hws task graph without the engines: frames are forwarded as-is (no encoding, no decoding,
/// no acks), but every hop has the tasks, channels and copies of the adapters. Relay: the
/// client's reader copies each frame into a `Vec` and hands it through a bounded channel
/// ([`TASKS_CAPACITY`]) to a "driver" task, which takes
/// batches and publishes through an unbounded channel to the backend's writer task. Backend: the
/// reader copies each frame into a `Vec` and hands it through a bounded channel to a "driver"
/// task, which passes it through an unbounded channel to the app task that counts.
pub(super) async fn tasks_run(size: usize, messages: u64) -> io::Result<Sample> {
    let mut tasks = JoinSet::new();
    let (mut arrivals, warm, done) = Arrivals::new(messages + 1, 1);
    let capacity = TASKS_CAPACITY;

    // Backend: reader -> "driver" -> app.
    let backend = TcpListener::bind("127.0.0.1:0").await?;
    let backend_url = url(backend.local_addr()?);
    let (in_tx, mut in_rx) = mpsc::channel::<Vec<u8>>(capacity);
    let (app_tx, mut app_rx) = unbounded_channel::<Vec<u8>>();
    tasks.spawn(copying_reader(backend, in_tx));
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
    let (in_tx, mut in_rx) = mpsc::channel::<Vec<u8>>(capacity);
    tasks.spawn(async move {
        let mut batch = Vec::with_capacity(64);
        while in_rx.recv_many(&mut batch, 64).await > 0 {
            for data in batch.drain(..) {
                let _ = out_tx.send(Message::Binary(Bytes::from(data)));
            }
        }
    });
    tasks.spawn(copying_reader(relay, in_tx));

    let sample = client(relay_url, size, messages, warm, done).await;
    let outcome = result.await;
    tasks.abort_all();
    let sample = sample?;
    let arrivals = outcome.map_err(|_| io::Error::other("the app stopped early"))?;
    check(&arrivals, size, messages)?;
    Ok(sample)
}

/// The old adapters' reader: accepts one WebSocket and copies each binary frame into a `Vec`
/// for the bounded channel to its "driver" task.
async fn copying_reader(listener: TcpListener, to_driver: mpsc::Sender<Vec<u8>>) {
    let Some(mut ws) = accept_one(&listener).await else {
        return;
    };
    while let Some(bytes) = next_binary(&mut ws).await {
        if to_driver.send(Vec::from(bytes)).await.is_err() {
            return;
        }
    }
}
