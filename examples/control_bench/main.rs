//! Per-message cost of the control engine's tokio adapter, before and after it was rebuilt on
//! `driver::tokio`'s pieces, in the same process and the same run.
//!
//! ```sh
//! cargo run --release --example control_bench --features tokio
//! cargo run --release --example control_bench --features tokio -- CLIENTS MESSAGES SIZE RUNS
//! ```
//!
//! Both modes run the same in-memory deployment: one control engine (and its gateway), one runner
//! written by hand in wire types on the runner connection's halves (it starts the actor, accepts
//! every socket as hibernatable, echoes every message and acks the highest index of each batch it
//! took), and `CLIENTS` clients on one actor, each sending `MESSAGES` messages of `SIZE` bytes
//! with at most [`WINDOW`] in flight and reading every echo. No sockets: the cost measured is the
//! adapter, the engine and the wire codec. **old** is the channel-based driver as it was
//! (`old_driver.rs`: one engine task fed by bounded channels); **new** is
//! `hibernating_ws::driver::control`. The modes alternate within a run (the order flips every
//! run). CPU time is that of every thread of the process over the timed window
//! (`/proc/self/task/*/schedstat`, Linux).

#![allow(
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc,
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    clippy::disallowed_methods,
    missing_docs
)] // benchmark code on std, reading the wall clock

mod old_driver;

use std::time::{Duration, Instant};

use hibernating_ws::Clock;
use hibernating_ws::control::{ActorSpec, Control, ControlConfig};
use hibernating_ws::driver::control::{ControlDriver, ControlIo, ControlOptions, RunnerOutput};
use hibernating_ws::driver::tokio::{ClientOutput, TokioClock};
use hibernating_ws::gateway::{Gateway, GatewayConfig, OpenRequest};
use hibernating_ws::wire::{
    self, ActorCheckpoint, ActorConfig, ActorState, Command, Event, EventActorStateUpdate,
    EventWrapper, GatewayId, KvRequestData, KvResponseData, MessageId, RequestId, ToClient,
    ToClientTunnelMessageKind, ToServer, ToServerEvents, ToServerInit, ToServerTunnelMessage,
    ToServerTunnelMessageKind, ToServerWebSocketMessage, ToServerWebSocketMessageAck,
    ToServerWebSocketOpen,
};

/// Most messages a client has in flight (sent, echo not read).
const WINDOW: usize = 64;

struct NoKv;

impl ControlIo for NoKv {
    fn kv(&mut self, _: &str, _: KvRequestData) -> KvResponseData {
        KvResponseData::Drop
    }
}

impl old_driver::ControlIo for NoKv {
    fn kv(&mut self, _: &str, _: KvRequestData) -> KvResponseData {
        KvResponseData::Drop
    }
}

/// The hand-written runner: its answers to one frame from the engine.
#[derive(Default)]
struct Runner {
    /// Runner → gateway message index, per request.
    next_index: std::collections::HashMap<RequestId, u16>,
}

impl Runner {
    fn init() -> Vec<u8> {
        wire::encode(&ToServer::Init(ToServerInit {
            name: "pool".into(),
            version: 1,
            total_slots: 8,
            prepopulate_actor_names: None,
            metadata: None,
        }))
    }

    /// Answers one engine frame; `acks` collects the highest message index per request.
    fn answer(
        &mut self,
        frame: &[u8],
        out: &mut Vec<Vec<u8>>,
        acks: &mut Vec<(MessageId, hibernating_ws::MessageIndex)>,
    ) {
        match wire::decode::<ToClient>(frame).unwrap() {
            ToClient::Commands(commands) => {
                for c in commands.0 {
                    if let Command::StartActor(_) = c.inner {
                        let running = EventWrapper {
                            checkpoint: ActorCheckpoint {
                                index: 0,
                                ..c.checkpoint
                            },
                            inner: Event::ActorStateUpdate(EventActorStateUpdate {
                                state: ActorState::Running,
                            }),
                        };
                        out.push(wire::encode(&ToServer::Events(ToServerEvents(vec![
                            running,
                        ]))));
                    }
                }
            }
            ToClient::TunnelMessage(m) => {
                let id = m.message_id;
                let reply = |kind| {
                    wire::encode(&ToServer::TunnelMessage(ToServerTunnelMessage {
                        message_id: id,
                        kind,
                    }))
                };
                match m.kind {
                    ToClientTunnelMessageKind::WebSocketOpen(_) => {
                        out.push(reply(ToServerTunnelMessageKind::WebSocketOpen(
                            ToServerWebSocketOpen {
                                can_hibernate: true,
                            },
                        )));
                    }
                    ToClientTunnelMessageKind::WebSocketMessage(w) => {
                        let next = self.next_index.entry(id.request_id).or_insert(0);
                        *next = next.wrapping_add(1);
                        let message_id = MessageId {
                            message_index: hibernating_ws::MessageIndex::new(*next),
                            ..id
                        };
                        out.push(wire::encode(&ToServer::TunnelMessage(
                            ToServerTunnelMessage {
                                message_id,
                                kind: ToServerTunnelMessageKind::WebSocketMessage(
                                    ToServerWebSocketMessage {
                                        data: w.data,
                                        binary: w.binary,
                                    },
                                ),
                            },
                        )));
                        match acks.iter_mut().find(|(a, _)| a.request_id == id.request_id) {
                            Some(a) => a.1 = id.message_index,
                            None => acks.push((id, id.message_index)),
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// The acks collected over a batch, as frames.
    fn acks(acks: &mut Vec<(MessageId, hibernating_ws::MessageIndex)>, out: &mut Vec<Vec<u8>>) {
        for (id, index) in acks.drain(..) {
            out.push(wire::encode(&ToServer::TunnelMessage(
                ToServerTunnelMessage {
                    message_id: id,
                    kind: ToServerTunnelMessageKind::WebSocketMessageAck(
                        ToServerWebSocketMessageAck { index },
                    ),
                },
            )));
        }
    }
}

fn spec() -> ActorSpec {
    ActorSpec {
        runner_name: "pool".into(),
        config: ActorConfig {
            name: "echo".into(),
            key: None,
            create_ts: 0,
            input: None,
        },
    }
}

fn engine(now: hibernating_ws::Timestamp) -> Control {
    let gw = Gateway::new(GatewayConfig::default(), GatewayId(*b"bnch"), now).unwrap();
    Control::new(ControlConfig::default(), gw, 1, now).unwrap()
}

fn open(i: usize) -> (RequestId, OpenRequest) {
    let request_id = RequestId::from_u32(u32::try_from(i).unwrap() + 1);
    (request_id, OpenRequest::new("a1", "/").unwrap())
}

struct Sample {
    wall: Duration,
    cpu: Option<Duration>,
}

/// The rebuilt driver.
async fn run_new(clients: usize, messages: usize, size: usize) -> Sample {
    let clock = TokioClock::new();
    let (driver, handle) =
        ControlDriver::new(engine(clock.now()), NoKv, clock, ControlOptions::default());
    let timer = tokio::spawn(driver.run());
    handle
        .call(|c, now| c.create_actor(now, "a1", spec()))
        .unwrap()
        .unwrap();
    let (sender, mut events) = handle.runner_connected("k").unwrap();
    sender.frame(&Runner::init()).unwrap();
    let runner = tokio::spawn(async move {
        let mut r = Runner::default();
        let (mut batch, mut out, mut acks) = (Vec::new(), Vec::new(), Vec::new());
        while events.recv_many(&mut batch).await > 0 {
            for o in batch.drain(..) {
                if let RunnerOutput::Frame(f) = o {
                    r.answer(&f, &mut out, &mut acks);
                }
            }
            Runner::acks(&mut acks, &mut out);
            for f in out.drain(..) {
                if sender.frame(&f).is_err() {
                    return;
                }
            }
        }
    });
    let mut halves = Vec::new();
    for i in 0..clients {
        let (id, o) = open(i);
        let (mut tx, rx) = handle.open(id, o).unwrap();
        tx.readable().await.unwrap();
        halves.push((tx, rx));
    }
    let payload = vec![7_u8; size];
    let (wall, cpu) = timed(async {
        let tasks: Vec<_> = halves
            .into_iter()
            .map(|(mut tx, mut rx)| {
                let payload = payload.clone();
                tokio::spawn(async move {
                    let (mut sent, mut got) = (0, 0);
                    while got < messages {
                        while sent < messages && sent - got < WINDOW {
                            tx.message(&payload, true).await.unwrap();
                            sent += 1;
                        }
                        match rx.recv().await {
                            Some(ClientOutput::Message { .. }) => got += 1,
                            other => panic!("{other:?}"),
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await;
    handle.shutdown();
    timer.await.unwrap();
    runner.abort();
    Sample { wall, cpu }
}

/// The channel-based driver as it was.
async fn run_old(clients: usize, messages: usize, size: usize) -> Sample {
    let clock = Clock::start();
    let (handle, task) = old_driver::spawn(engine(clock.now()), NoKv, clock);
    handle
        .call(|c, now| c.create_actor(now, "a1", spec()))
        .await
        .unwrap()
        .unwrap();
    let (sender, mut events) = handle.runner_connected("k").await.unwrap();
    sender.frame(Runner::init()).await.unwrap();
    let runner = tokio::spawn(async move {
        let mut r = Runner::default();
        let (mut out, mut acks) = (Vec::new(), Vec::new());
        while let Some(first) = events.recv().await {
            let mut next = Some(first);
            while let Some(o) = next {
                if let old_driver::RunnerOutput::Frame(f) = o {
                    r.answer(&f, &mut out, &mut acks);
                }
                next = events.try_recv();
            }
            Runner::acks(&mut acks, &mut out);
            for f in out.drain(..) {
                if sender.frame(f).await.is_err() {
                    return;
                }
            }
        }
    });
    let mut halves = Vec::new();
    for i in 0..clients {
        let (id, o) = open(i);
        let (tx, mut rx) = handle.open(id, o).await.unwrap();
        match rx.recv().await {
            Some(old_driver::ClientEvent::Opened { .. }) => {}
            other => panic!("{other:?}"),
        }
        halves.push((tx, rx));
    }
    let payload = vec![7_u8; size];
    let (wall, cpu) = timed(async {
        let tasks: Vec<_> = halves
            .into_iter()
            .map(|(tx, mut rx)| {
                let payload = payload.clone();
                tokio::spawn(async move {
                    let (mut sent, mut got) = (0, 0);
                    while got < messages {
                        while sent < messages && sent - got < WINDOW {
                            tx.message(payload.clone(), true).await.unwrap();
                            sent += 1;
                        }
                        match rx.recv().await {
                            Some(old_driver::ClientEvent::Message { .. }) => got += 1,
                            other => panic!("{other:?}"),
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await;
    handle.shutdown().await;
    task.await.unwrap();
    runner.abort();
    Sample { wall, cpu }
}

async fn timed(f: impl Future<Output = ()>) -> (Duration, Option<Duration>) {
    let (t0, c0) = (Instant::now(), cpu_time());
    f.await;
    let (wall, c1) = (t0.elapsed(), cpu_time());
    (wall, c0.zip(c1).map(|(a, b)| b.saturating_sub(a)))
}

/// CPU time of every thread of this process (`/proc/self/task/*/schedstat`, nanoseconds).
fn cpu_time() -> Option<Duration> {
    let mut total = 0_u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let mut path = task.ok()?.path();
        path.push("schedstat");
        let text = std::fs::read_to_string(path).ok()?;
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("CLIENTS MESSAGES SIZE RUNS"))
        .collect();
    let arg = |i: usize, default: usize| args.get(i).copied().unwrap_or(default);
    let (clients, messages, size, runs) = (arg(0, 16), arg(1, 20_000), arg(2, 64), arg(3, 5));
    let total = clients * messages;
    println!("{clients} clients × {messages} messages of {size} B, window {WINDOW}, {runs} runs");
    println!("mode  run  round trips/s  wall ns/msg  CPU ns/msg");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut cpu = [Vec::new(), Vec::new()];
    for run in 0..runs {
        let order = if run % 2 == 0 { [0, 1] } else { [1, 0] };
        for mode in order {
            let s = if mode == 0 {
                rt.block_on(run_old(clients, messages, size))
            } else {
                rt.block_on(run_new(clients, messages, size))
            };
            let per = |d: Duration| d.as_nanos() as f64 / total as f64;
            let c = s.cpu.map(per);
            if let Some(c) = c {
                cpu[mode].push(c);
            }
            println!(
                "{:<4}  {run:>3}  {:>13.0}  {:>11.0}  {:>10}",
                ["old", "new"][mode],
                total as f64 / s.wall.as_secs_f64(),
                per(s.wall),
                c.map_or_else(|| "-".into(), |c| format!("{c:.0}")),
            );
        }
    }
    for (mode, mut v) in cpu.into_iter().enumerate() {
        v.sort_by(f64::total_cmp);
        if let Some(m) = v.get(v.len() / 2) {
            println!(
                "{}: median CPU {m:.0} ns per round trip",
                ["old", "new"][mode]
            );
        }
    }
}
