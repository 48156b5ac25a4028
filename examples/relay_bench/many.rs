//! Many-clients mode (`--clients N`, N > 1): N client WebSockets at once, each sending its share
//! of the messages, against the same two topologies. The clients run in a child process (this
//! example re-executed with `--client-child`), so the file descriptors of both sides fit the
//! limit and the CPU time reported is the servers' alone. Both topologies share one upstream
//! link for every client: the relay forwards every client's frames over one backend WebSocket
//! (as the gateway does over its one runner link).

use std::io;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use super::{
    Arrivals, Sample, accept, accept_retrying, check, connect, counting_backend, cpu_time, finish,
    lock, start_gateway, start_runner, url, writer,
};

/// Resident set size of this process, in bytes (Linux; `None` elsewhere).
fn rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// The client side, run in the child process: connects `clients` WebSockets to `url`, sends one
/// warm-up message on each, prints `ready`, waits for `go` on stdin, sends `per_client`
/// messages of `size` bytes on each (pipelined, one flush), prints `sent`, and keeps the
/// connections open until stdin closes.
pub(crate) async fn client_child(
    url: String,
    clients: u32,
    size: usize,
    per_client: u64,
) -> io::Result<()> {
    let (go_tx, go) = watch::channel(false);
    let payload = Bytes::from(vec![0xA5_u8; size]);
    let mut tasks = JoinSet::new();
    let (ready_tx, mut ready) = mpsc::channel::<io::Result<()>>(1024);
    let (sent_tx, mut sent) = mpsc::channel::<()>(1024);
    for _ in 0..clients {
        let ws = connect(&url).await?;
        let (mut sink, stream) = ws.split();
        let (payload, mut go, ready_tx, sent_tx) = (
            payload.clone(),
            go.clone(),
            ready_tx.clone(),
            sent_tx.clone(),
        );
        tasks.spawn(async move {
            let _stream = stream; // never read: the receiving ends do not answer
            let warm = sink.send(Message::Binary(payload.clone())).await;
            let _ = ready_tx.send(warm.map_err(io::Error::other)).await;
            if go.wait_for(|g| *g).await.is_err() {
                return;
            }
            for _ in 0..per_client {
                if sink.feed(Message::Binary(payload.clone())).await.is_err() {
                    return;
                }
            }
            let _ = sink.flush().await;
            let _ = sent_tx.send(()).await;
            std::future::pending::<()>().await;
        });
    }
    for _ in 0..clients {
        ready
            .recv()
            .await
            .ok_or_else(|| io::Error::other("a client task ended"))??;
    }
    say("ready")?;
    if read_line().await?.as_deref() != Some("go") {
        return Err(io::Error::other("expected go"));
    }
    let _ = go_tx.send(true);
    for _ in 0..clients {
        let _ = sent.recv().await;
    }
    say("sent")?;
    while read_line().await?.is_some() {}
    tasks.abort_all();
    Ok(())
}

/// Writes one line to stdout (the parent reads it).
fn say(line: &str) -> io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// One line from stdin (`None` at its end), read on the blocking pool.
async fn read_line() -> io::Result<Option<String>> {
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let n = std::io::stdin().read_line(&mut line)?;
        Ok((n > 0).then(|| line.trim_end().to_string()))
    })
    .await
    .map_err(io::Error::other)?
}

/// Starts the client child against `url`, waits for its warm-up (`warm`), measures the RSS the
/// connections added (meaningful in a process's first run only: later runs reuse the memory the
/// allocator kept from the previous one), then times the messages until `done`.
async fn drive_children(
    url: &str,
    clients: u32,
    size: usize,
    per_client: u64,
    warm: oneshot::Receiver<()>,
    done: oneshot::Receiver<Instant>,
) -> io::Result<Sample> {
    let rss0 = rss();
    let exe = std::env::current_exe()?;
    let mut child = tokio::process::Command::new(exe)
        .args([
            "--client-child",
            url,
            &clients.to_string(),
            &size.to_string(),
            &per_client.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| io::Error::other("no stdin"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    if lines.next_line().await?.as_deref() != Some("ready") {
        return Err(io::Error::other("the client child did not get ready"));
    }
    warm.await.map_err(|_| io::Error::other("warm-up lost"))?;
    // Let the servers settle after the warm-up burst before reading their memory.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss1 = rss();
    let cpu0 = cpu_time();
    let start = Instant::now();
    stdin.write_all(b"go\n").await?;
    stdin.flush().await?;
    let end = done
        .await
        .map_err(|_| io::Error::other("the receiving end stopped early"))?;
    let cpu1 = cpu_time();
    drop(stdin);
    let _ = child.kill().await;
    Ok(Sample {
        elapsed: end.saturating_duration_since(start),
        cpu: cpu0.zip(cpu1).map(|(a, b)| b.saturating_sub(a)),
        rss_per_client: rss0
            .zip(rss1)
            .map(|(a, b)| b.saturating_sub(a) as f64 / f64::from(clients)),
    })
}

fn arrivals(
    clients: u32,
    per_client: u64,
) -> (Arrivals, oneshot::Receiver<()>, oneshot::Receiver<Instant>) {
    Arrivals::new(u64::from(clients) * (per_client + 1), u64::from(clients))
}

/// The relay with `clients` clients: every client's frames go over one backend WebSocket.
pub(crate) async fn baseline(clients: u32, size: usize, per_client: u64) -> io::Result<Sample> {
    let mut tasks = JoinSet::new();
    let (arrivals, warm, done) = arrivals(clients, per_client);
    let arrivals = Arc::new(Mutex::new(arrivals));
    let backend_url = counting_backend(&mut tasks, arrivals.clone()).await?;
    let (backend_tx, _backend_rx) = connect(&backend_url).await?.split();
    let (to_backend, from_clients) = mpsc::unbounded_channel();
    tasks.spawn(writer(backend_tx, from_clients));
    let relay = TcpListener::bind("127.0.0.1:0").await?;
    let relay_url = url(relay.local_addr()?);
    tasks.spawn(async move {
        for _ in 0..clients {
            let tcp = accept_retrying(&relay).await;
            let to_backend = to_backend.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = accept(tcp).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if matches!(msg, Message::Binary(_)) && to_backend.send(msg).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let sample = drive_children(&relay_url, clients, size, per_client, warm, done).await?;
    check_many(&lock(&arrivals), clients, size, per_client)?;
    tasks.abort_all();
    Ok(sample)
}

/// hws with `clients` clients on one gateway, one runner link, one actor.
pub(crate) async fn hws(
    clients: u32,
    size: usize,
    per_client: u64,
    window: u64,
) -> io::Result<Sample> {
    let mut tasks = JoinSet::new();
    let (arrivals, warm, done) = arrivals(clients, per_client);
    let runner = start_runner(&mut tasks, arrivals).await?;
    let gateway = start_gateway(&mut tasks, &runner.url, window, clients).await?;
    let sample = drive_children(&gateway.url, clients, size, per_client, warm, done).await;
    let arrivals = finish(tasks, runner, gateway).await?;
    let sample = sample?;
    check_many(&arrivals, clients, size, per_client)?;
    Ok(sample)
}

fn check_many(arrivals: &Arrivals, clients: u32, size: usize, per_client: u64) -> io::Result<()> {
    // `check` expects messages + 1 (one warm-up); here every client warmed up.
    check(arrivals, size, u64::from(clients) * (per_client + 1) - 1)
}
