//! End-to-end throughput: hws through the tokio adapter against a plain WebSocket relay, over
//! loopback WebSockets, in the same process and the same run (target:
//! `docs/design.md#performance-targets`).
//!
//! ```sh
//! cargo run --release --example relay_bench
//! cargo run --release --example relay_bench -- --help
//! ```
//!
//! Both topologies have the same two WebSocket hops and the same client:
//!
//! * **baseline**: client → relay → backend. The relay accepts the client's WebSocket, dials one
//!   backend WebSocket for it and forwards every frame as-is in both directions (one
//!   `StreamExt::forward` task per direction); the backend counts what arrives.
//! * **hws**: client → gateway → runner → app. The gateway (a [`GatewayDriver`]) reads the client
//!   through its [`ClientSender`] and publishes versioned `ToRunner` frames over one WebSocket
//!   to the runner; the runner (a [`RunnerDriver`]) validates and delivers them to the app task,
//!   which accepts the socket as hibernatable, counts messages and answers every
//!   [`Action::Persist`] at once (from memory, so storage is not what is measured) with the
//!   default persist debounce; the runner's acks travel back over the same WebSocket and release
//!   the gateway's pending buffer. The gateway uses the default limits with
//!   [`OverflowPolicy::Backpressure`], so a client that outruns the acks is paused instead of
//!   closed (the Rivet-compatible `Close` policy would close a pipelining client).
//! * **tasks** (diagnosis, `--modes baseline,tasks,hws`): the hws task graph without the engines.
//!   Frames are forwarded as-is, but every hop has the adapters' tasks, channels and copies
//!   (reader → bounded channel → "driver" task → unbounded channel → writer or app). Its gap to
//!   the baseline is the cost of the adapters' shape; the gap from it to hws is the engines and
//!   the protocol (encoding, decoding, validation, pending buffer, acks).
//!
//! The client connects, sends one warm-up message and waits until the receiving end has it (so
//! the handshakes and the open are not timed), then sends `N` messages of the given size
//! back-to-back (pipelined: `feed` each, one `flush` at the end) and stops the clock when the
//! receiving end (backend or app) has counted all `N`. Every (size, run) starts fresh servers;
//! the modes alternate within a run (the order flips every run) so all see the same machine
//! load. The CPU time of the whole process over the timed window is read from
//! `/proc/self/task/*/schedstat` (Linux; `-` elsewhere).

#![allow(
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc,
    clippy::cast_precision_loss,
    clippy::disallowed_methods
)] // application code on std that times itself with the wall clock; figures are printed as floats

mod args;
mod many;
mod relay;
mod report;
mod tasks;

#[path = "../common/cli.rs"]
mod cli;

use args::{Args, Mode};
use relay::{baseline, counting_backend};
use report::{Series, mib, render};
use tasks::tasks_run;

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hibernating_ws::driver::tokio::{
    ClientEvents, ClientOutput, ClientSender, GatewayDriver, GatewayHandle, GatewayIo,
    GatewayOptions, Outbox, OutboxReceiver, QueueLimits, RunnerDriver, RunnerHandle, RunnerIo,
    RunnerOptions, TokioClock, outbox,
};
use hibernating_ws::gateway::{
    Frame, Gateway, GatewayConfig, OpenRequest, OverflowPolicy, RouteId,
};
use hibernating_ws::runner::{Action, Runner, RunnerConfig};
use hibernating_ws::wire::{GatewayId, RequestId};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{WebSocketStream, accept_async_with_config, connect_async_with_config};

const USAGE: &str = "\
relay_bench: messages/s and MiB/s of hws (client -> gateway -> runner -> app) against a plain
WebSocket relay (client -> relay -> backend) over loopback, in the same run.

USAGE: cargo run --release --example relay_bench -- [OPTIONS]

OPTIONS:
  --sizes LIST        payload sizes in bytes, comma-separated   [default: 64,1024,16384]
  --messages LIST     messages per run, one per size or one for all
                      [default: 256 MiB / size, within 40000..=1000000]
  --runs N            runs per size and mode                    [default: 5]
  --threads N         tokio worker threads; 1 = current-thread runtime [default: 2]
  --clients N         clients at once (N > 1: many-clients mode; the clients run in a child
                      process, CPU is the servers' alone, RSS per client is reported;
                      modes baseline and hws)                   [default: 1]
  --per-client N      messages per client in many-clients mode  [default: 20]
  --ws-buffer BYTES   read and write buffer size of every WebSocket the servers accept
                      (both modes); 0 = tungstenite's default (128 KiB) [default: 0]
  --modes LIST        of baseline, hws, tasks (a plain relay shaped like the hws
                      adapters, for diagnosis), run in turn, the order reversed
                      every other run                           [default: baseline,hws]
  --window BYTES      gateway max_pending_bytes per request     [default: 1048576]
  -h, --help          this text
";

const ACTOR: &str = "bench";
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// Input channel capacity of the `tasks` mode (the shape the adapters had before they ran the
/// engines in the socket tasks).
const TASKS_CAPACITY: usize = 1024;

// ---------------------------------------------------------------------------------------------
// The receiving end (backend or app)
// ---------------------------------------------------------------------------------------------

/// Counts arrivals; signals the warm-up message and the last one.
struct Arrivals {
    /// Warm-up messages included.
    expected: u64,
    /// Arrivals that complete the warm-up (one per client).
    warm_at: u64,
    count: u64,
    bytes: u64,
    warm: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Sender<Instant>>,
}

impl Arrivals {
    /// Arrivals expecting `expected` messages (warm-ups included), warm after `warm_at`; with
    /// the receivers of the two signals.
    fn new(
        expected: u64,
        warm_at: u64,
    ) -> (Self, oneshot::Receiver<()>, oneshot::Receiver<Instant>) {
        let (warm_tx, warm) = oneshot::channel();
        let (done_tx, done) = oneshot::channel();
        let arrivals = Self {
            expected,
            warm_at,
            count: 0,
            bytes: 0,
            warm: Some(warm_tx),
            done: Some(done_tx),
        };
        (arrivals, warm, done)
    }

    fn message(&mut self, len: usize) {
        self.count += 1;
        self.bytes += len as u64;
        if self.count == self.warm_at
            && let Some(warm) = self.warm.take()
        {
            let _ = warm.send(());
        }
        if self.count == self.expected
            && let Some(done) = self.done.take()
        {
            let _ = done.send(Instant::now());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What one timed run measured.
#[derive(Debug, Clone, Copy)]
struct Sample {
    elapsed: Duration,
    /// CPU time of the whole process during the timed window.
    cpu: Option<Duration>,
    /// Resident memory the open, warmed-up connections added, per client (many-clients mode).
    rss_per_client: Option<f64>,
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

async fn connect(
    url: &str,
) -> io::Result<WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>> {
    let (ws, _) = connect_async_with_config(url, None, true)
        .await
        .map_err(io::Error::other)?;
    Ok(ws)
}

/// Accepts the next connection; an accept error (out of file descriptors while the previous
/// run's sockets close) is retried after a short pause instead of ending the listener.
async fn accept_retrying(listener: &TcpListener) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => return tcp,
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// The configuration of every WebSocket the servers accept (`--ws-buffer`).
static SERVER_WS: std::sync::OnceLock<Option<WebSocketConfig>> = std::sync::OnceLock::new();

async fn accept(tcp: TcpStream) -> io::Result<WebSocketStream<TcpStream>> {
    tcp.set_nodelay(true)?;
    let config = SERVER_WS.get().copied().flatten();
    accept_async_with_config(tcp, config)
        .await
        .map_err(io::Error::other)
}

/// Connects, warms up with one message, then times `messages` messages of `size` bytes until
/// `done` fires.
async fn client(
    url: String,
    size: usize,
    messages: u64,
    warm: oneshot::Receiver<()>,
    done: oneshot::Receiver<Instant>,
) -> io::Result<Sample> {
    let ws = connect(&url).await?;
    // The receiving ends never write to the client; keep the read half alive.
    let (mut sink, _stream) = ws.split();
    let payload = Bytes::from(vec![0xA5_u8; size]);
    sink.send(Message::Binary(payload.clone()))
        .await
        .map_err(io::Error::other)?;
    warm.await.map_err(|_| io::Error::other("warm-up lost"))?;
    let cpu0 = cpu_time();
    let start = Instant::now();
    for _ in 0..messages {
        sink.feed(Message::Binary(payload.clone()))
            .await
            .map_err(io::Error::other)?;
    }
    sink.flush().await.map_err(io::Error::other)?;
    let end = done
        .await
        .map_err(|_| io::Error::other("the receiving end stopped early"))?;
    let cpu1 = cpu_time();
    let _ = sink.close().await;
    Ok(Sample {
        elapsed: end.saturating_duration_since(start),
        cpu: cpu0.zip(cpu1).map(|(a, b)| b.saturating_sub(a)),
        rss_per_client: None,
    })
}

/// CPU time of every thread of this process (`/proc/self/task/*/schedstat`, nanoseconds).
fn cpu_time() -> Option<Duration> {
    let mut total = 0_u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let mut path = task.ok()?.path();
        path.push("schedstat");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // the thread exited meanwhile
        };
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

/// The next binary frame of a WebSocket (`None` at its close, end or first error; other
/// frames are skipped).
async fn next_binary<S, E>(ws: &mut S) -> Option<Bytes>
where
    S: futures_util::Stream<Item = Result<Message, E>> + Unpin,
{
    loop {
        match ws.next().await? {
            Ok(Message::Binary(b)) => return Some(b),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Accepts one WebSocket on `listener` (`None` if the connection or the handshake fails).
async fn accept_one(listener: &TcpListener) -> Option<WebSocketStream<TcpStream>> {
    let (tcp, _) = listener.accept().await.ok()?;
    accept(tcp).await.ok()
}

fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}")
}

fn check(arrivals: &Arrivals, size: usize, messages: u64) -> io::Result<()> {
    let expected = messages + 1;
    if arrivals.count == expected && arrivals.bytes == expected * size as u64 {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "received {} messages / {} bytes, expected {expected} / {}",
            arrivals.count,
            arrivals.bytes,
            expected * size as u64
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// hws: client -> gateway -> runner -> app
// ---------------------------------------------------------------------------------------------

/// Gateway sink: frames to the runner link's outbox.
struct GatewaySide {
    runner: Outbox<Frame>,
}

impl GatewayIo for GatewaySide {
    fn publish(&mut self, _route: RouteId, _request_id: RequestId, frame: Frame) {
        let _ = self.runner.push(frame);
    }
    fn request_wake(&mut self, _: RequestId, _: String) {}
    fn upsert_hibernating_record(&mut self, _: RequestId, _: String) {}
    fn delete_hibernating_record(&mut self, _: RequestId, _: String) {}
}

/// Runner sink: frames to the gateway link's outbox.
struct RunnerSide {
    gateway: Outbox<Vec<u8>>,
}

impl RunnerIo for RunnerSide {
    fn publish(&mut self, _gateway_id: GatewayId, frame: Vec<u8>) {
        let _ = self.gateway.push(frame);
    }
}

/// Writes an outbox to a WebSocket: everything queued at once, one flush per batch.
async fn link_writer<S, T>(mut ws: S, mut rx: OutboxReceiver<T>)
where
    S: futures_util::Sink<Message> + Unpin,
    T: AsRef<[u8]> + Into<Bytes> + Send + 'static,
{
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch).await > 0 {
        for frame in batch.drain(..) {
            // A `Frame` is a `Bytes` already: no copy, no allocation.
            if ws.feed(Message::Binary(frame.into())).await.is_err() {
                return;
            }
        }
        if ws.flush().await.is_err() {
            return;
        }
    }
    // The outbox overflowed, or the driver is gone: drop the link.
    if let Some(full) = rx.overflowed() {
        eprintln!("link outbox overflowed: {full}");
    }
    let _ = ws.close().await;
}

/// Writes queued messages to a WebSocket, flushing once per batch (the `tasks` mode).
async fn writer<S>(mut ws: S, mut rx: tokio::sync::mpsc::UnboundedReceiver<Message>)
where
    S: futures_util::Sink<Message> + Unpin,
{
    while let Some(msg) = rx.recv().await {
        if ws.feed(msg).await.is_err() {
            return;
        }
        while let Ok(msg) = rx.try_recv() {
            if ws.feed(msg).await.is_err() {
                return;
            }
        }
        if ws.flush().await.is_err() {
            return;
        }
    }
}

async fn hws_run(size: usize, messages: u64, window: u64) -> io::Result<Sample> {
    let mut tasks = JoinSet::new();
    let (arrivals, warm, done) = Arrivals::new(messages + 1, 1);
    let runner = start_runner(&mut tasks, arrivals).await?;
    let gateway = start_gateway(&mut tasks, &runner.url, window, 1).await?;

    let sample = client(gateway.url.clone(), size, messages, warm, done).await;
    let arrivals = finish(tasks, runner, gateway).await?;
    let sample = sample?;
    check(&arrivals, size, messages)?;
    Ok(sample)
}

/// After the clients sent everything: the app's arrivals (checked in order), both drivers
/// stopped and every task of the run ended.
async fn finish(
    mut tasks: JoinSet<()>,
    runner: RunnerSideStarted,
    gateway: GatewaySideStarted,
) -> io::Result<Arrivals> {
    let outcome = runner.result.await;
    gateway.handle.shutdown();
    runner.handle.shutdown();
    let _ = gateway.driver.await;
    let _ = runner.driver.await;
    tasks.abort_all();
    let (arrivals, in_order) = outcome.map_err(|_| io::Error::other("the app stopped early"))?;
    if !in_order {
        return Err(io::Error::other("messages arrived out of order"));
    }
    Ok(arrivals)
}

struct RunnerSideStarted {
    url: String,
    handle: RunnerHandle,
    driver: JoinHandle<Runner>,
    /// The app's arrivals once all came, and whether every index followed the previous one.
    result: oneshot::Receiver<(Arrivals, bool)>,
}

/// The runner with one started actor, listening for the gateway's connection, and the app.
async fn start_runner(
    tasks: &mut JoinSet<()>,
    mut arrivals: Arrivals,
) -> io::Result<RunnerSideStarted> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = url(listener.local_addr()?);
    let clock = TokioClock::new();
    let runner = Runner::new(RunnerConfig::default(), clock.now()).map_err(io::Error::other)?;
    let (to_gateway, to_gateway_rx) = outbox(QueueLimits::LINK);
    let io_side = RunnerSide {
        gateway: to_gateway,
    };
    let (runner_driver, handle, mut app_rx) =
        RunnerDriver::new(runner, io_side, clock, RunnerOptions::default());
    let driver = tokio::spawn(runner_driver.run());
    handle
        .call(|r, now| r.actor_starting(now, ACTOR, Vec::new()))
        .map_err(io::Error::other)?
        .map_err(io::Error::other)?;
    handle
        .call(|r, now| r.restore(now, ACTOR, Vec::new()))
        .map_err(io::Error::other)?
        .map_err(io::Error::other)?;

    // The gateway's WebSocket: frames in (read in place), frames out.
    let h = handle.clone();
    tasks.spawn(async move {
        let Some(ws) = accept_one(&listener).await else {
            return;
        };
        let (ws_tx, mut ws_rx) = ws.split();
        tokio::spawn(link_writer(ws_tx, to_gateway_rx));
        while let Some(bytes) = next_binary(&mut ws_rx).await {
            // Payloads borrow the frame (the app counts them and drops them at once).
            if h.frame_bytes(&bytes).await.is_err() {
                return;
            }
        }
    });

    // The app: accept, count, persist at once.
    let app = handle.clone();
    let (result_tx, result) = oneshot::channel();
    tasks.spawn(async move {
        // Per socket: the index the next message must have (one ordered-map lookup per
        // message; the relay's backend only counts).
        let mut next_index = std::collections::BTreeMap::new();
        let mut in_order = true;
        let mut batch = Vec::new();
        while app_rx.recv_many(&mut batch).await > 0 {
            for action in batch.drain(..) {
                match action {
                    Action::Open { socket, index, .. } => {
                        next_index.insert(socket, index.next());
                        let _ = app.call(|r, now| r.accept(now, socket, true));
                    }
                    Action::Message {
                        socket,
                        index,
                        data,
                        ..
                    } => {
                        match next_index.get_mut(&socket) {
                            Some(next) if *next == index => *next = index.next(),
                            _ => in_order = false,
                        }
                        arrivals.message(data.len());
                        if arrivals.count == arrivals.expected {
                            let _ = result_tx.send((arrivals, in_order));
                            return;
                        }
                    }
                    Action::Persist {
                        socket,
                        server_index,
                        ..
                    } => {
                        let _ = app.call(|r, now| r.persisted(now, socket, server_index));
                    }
                    _ => {}
                }
            }
        }
    });
    Ok(RunnerSideStarted {
        url,
        handle,
        driver,
        result,
    })
}

struct GatewaySideStarted {
    url: String,
    handle: GatewayHandle,
    driver: JoinHandle<Gateway>,
}

/// The gateway: dials the runner, listens for `clients` clients.
async fn start_gateway(
    tasks: &mut JoinSet<()>,
    runner_url: &str,
    window: u64,
    clients: u32,
) -> io::Result<GatewaySideStarted> {
    let runner_ws = connect(runner_url).await?;
    let (runner_tx, mut runner_rx) = runner_ws.split();
    let (to_runner, to_runner_rx) = outbox(QueueLimits::LINK);
    tasks.spawn(link_writer(runner_tx, to_runner_rx));
    let mut config = GatewayConfig::default();
    config.overflow_policy = OverflowPolicy::Backpressure;
    config.max_pending_bytes = window;
    config.max_gateway_pending_bytes = config.max_gateway_pending_bytes.max(window);
    let clock = TokioClock::new();
    let gateway =
        Gateway::new(config, GatewayId(*b"bnch"), clock.now()).map_err(io::Error::other)?;
    let (gateway_driver, handle) = GatewayDriver::new(
        gateway,
        GatewaySide { runner: to_runner },
        clock,
        GatewayOptions::default(),
    );
    let driver = tokio::spawn(gateway_driver.run());
    let route = RouteId(1);
    let g = handle.clone();
    tasks.spawn(async move {
        while let Some(bytes) = next_binary(&mut runner_rx).await {
            if g.runner_frame_bytes(route, &bytes).is_err() {
                return;
            }
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = url(listener.local_addr()?);
    let g = handle.clone();
    tasks.spawn(async move {
        for i in 0..clients {
            let tcp = accept_retrying(&listener).await;
            let g = g.clone();
            tokio::spawn(async move {
                let Ok(ws) = accept(tcp).await else {
                    return;
                };
                let open = OpenRequest::new(ACTOR, format!("/actors/{ACTOR}"))
                    .expect("a path starting with /");
                let Ok((sender, events)) = g.open(RequestId::from_u32(i + 1), route, open) else {
                    return;
                };
                let (ws_tx, ws_rx) = ws.split();
                tokio::spawn(client_writer(ws_tx, events));
                client_reader(ws_rx, sender).await;
            });
        }
    });
    Ok(GatewaySideStarted {
        url,
        handle,
        driver,
    })
}

/// The gateway's read side of the client: never ahead of the gate, each frame read in place.
async fn client_reader<S>(mut ws: S, mut sender: ClientSender)
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        if sender.readable().await.is_err() {
            return;
        }
        let handed = match ws.next().await {
            Some(Ok(Message::Binary(b))) => sender.message(&b, true).await,
            Some(Ok(Message::Text(t))) => sender.message(t.as_bytes(), false).await,
            Some(Ok(Message::Close(_)) | Err(_)) | None => {
                let _ = sender.close(None);
                return;
            }
            Some(Ok(_)) => continue,
        };
        if handed.is_err() {
            return;
        }
    }
}

/// The gateway's write side of the client: everything queued, then one flush.
async fn client_writer<S>(ws: S, events: ClientEvents)
where
    S: futures_util::Sink<Message> + Unpin,
{
    let messages = events.map(|out| {
        Ok(match out {
            ClientOutput::Message { data, .. } => Message::Binary(data),
            _ => Message::Close(None),
        })
    });
    let _ = messages.forward(ws).await;
}

/// `--client-child URL CLIENTS SIZE PER_CLIENT`: the client side of many-clients mode.
fn client_child(args: &[String]) -> ExitCode {
    let parsed = (|| {
        Some((
            args.first()?.clone(),
            args.get(1)?.parse().ok()?,
            args.get(2)?.parse().ok()?,
            args.get(3)?.parse().ok()?,
        ))
    })();
    let Some((url, clients, size, per_client)) = parsed else {
        eprintln!("error: --client-child URL CLIENTS SIZE PER_CLIENT");
        return ExitCode::from(2);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let result =
        runtime.and_then(|rt| rt.block_on(many::client_child(url, clients, size, per_client)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("client child: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let command_line: Vec<String> = std::env::args().skip(1).collect();
    if command_line.first().map(String::as_str) == Some("--client-child") {
        return client_child(&command_line[1..]);
    }
    let args = match cli::parsed_or_exit(Args::parse(command_line.into_iter()), USAGE) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let _ = SERVER_WS.set((args.ws_buffer > 0).then(|| {
        WebSocketConfig::default()
            .read_buffer_size(args.ws_buffer)
            .write_buffer_size(args.ws_buffer)
    }));
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run_all(&args));
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_all(args: &Args) -> io::Result<String> {
    // series[size][mode], modes in the order of `args.modes`.
    let mut series: Vec<Vec<Series>> = args
        .sizes
        .iter()
        .map(|_| args.modes.iter().map(|_| Series::default()).collect())
        .collect();
    println!(
        "relay_bench: sizes {:?}, messages {:?}, {} runs, {} worker thread(s), gateway window {} B, {} client(s), server WebSocket buffers {}",
        args.sizes,
        args.messages,
        args.runs,
        args.threads,
        args.window,
        args.clients,
        if args.ws_buffer == 0 {
            "default".to_string()
        } else {
            format!("{} B", args.ws_buffer)
        }
    );
    for run in 0..args.runs {
        for (i, (&size, &messages)) in args.sizes.iter().zip(&args.messages).enumerate() {
            let mut order: Vec<usize> = (0..args.modes.len()).collect();
            if run % 2 == 1 {
                order.reverse();
            }
            for m in order {
                let mode = args.modes[m];
                let sample = tokio::time::timeout(RUN_TIMEOUT, async {
                    match mode {
                        Mode::Baseline if args.clients > 1 => {
                            many::baseline(args.clients, size, args.per_client).await
                        }
                        Mode::Hws if args.clients > 1 => {
                            many::hws(args.clients, size, args.per_client, args.window).await
                        }
                        Mode::Baseline => baseline(size, messages).await,
                        Mode::Hws => hws_run(size, messages, args.window).await,
                        Mode::Tasks => tasks_run(size, messages).await,
                    }
                })
                .await
                .unwrap_or_else(|_| Err(io::Error::other("run timed out")))
                .map_err(|e| io::Error::other(format!("{} {size} B: {e}", mode.name())))?;
                let rate = messages as f64 / sample.elapsed.as_secs_f64();
                let cpu = sample.cpu.map_or_else(
                    || "-".into(),
                    |c| format!("{:.2}", c.as_secs_f64() * 1e6 / messages as f64),
                );
                let cpu = match sample.rss_per_client {
                    Some(r) => format!("{cpu} us/msg  rss {r:.0} B/client"),
                    None => format!("{cpu} us/msg"),
                };
                println!(
                    "run {} {:>8} {:>6} B x {:>7}: {:>8.3} s  {:>10.0} msg/s  {:>8.1} MiB/s  cpu {cpu}",
                    run + 1,
                    mode.name(),
                    size,
                    messages,
                    sample.elapsed.as_secs_f64(),
                    rate,
                    mib(rate * size as f64),
                );
                series[i][m].samples.push(sample);
            }
        }
    }
    Ok(render(args, &series))
}
