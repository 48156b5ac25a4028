//! `driver::control` without Node: a runner written by hand in wire types talks to the control
//! engine through the driver's runner halves (the official runner does the same over a socket in
//! `tests/interop/`), clients through the client halves it shares with the gateway driver.

#![allow(clippy::unwrap_used, clippy::std_instead_of_alloc)] // test helpers on std

use core::time::Duration;
use std::collections::VecDeque;

use hibernating_ws::control::ConnId;
use hibernating_ws::control::{Action, ActorSpec, Control, ControlConfig};
use hibernating_ws::driver::control::{
    ControlDriver, ControlHandle, ControlIo, ControlOptions, RunnerEvents, RunnerOutput,
    RunnerSender,
};
use hibernating_ws::driver::tokio::{ClientOutput, QueueFull, QueueLimits, TokioClock};
use hibernating_ws::gateway::{Gateway, GatewayConfig, OpenRequest, OverflowPolicy};
use hibernating_ws::wire::{
    self, ActorCheckpoint, ActorConfig, ActorState, Command, Event, EventActorStateUpdate,
    EventWrapper, GatewayId, KvGetRequest, KvGetResponse, KvRequestData, KvResponseData, MessageId,
    RequestId, ToClient, ToClientTunnelMessageKind, ToServer, ToServerEvents, ToServerInit,
    ToServerKvRequest, ToServerTunnelMessage, ToServerTunnelMessageKind, ToServerWebSocketMessage,
    ToServerWebSocketMessageAck, ToServerWebSocketOpen,
};
use hibernating_ws::{CloseFrame, MessageIndex};
use std::sync::{Arc, Mutex};

const WAIT: Duration = Duration::from_secs(10);

/// What the hooks saw.
#[derive(Debug, Default)]
struct Seen {
    runner_overflows: Vec<(ConnId, QueueFull)>,
    events: Vec<Action>,
}

/// Answers every KV get with the key as its value; records the hooks.
struct EchoKv(Arc<Mutex<Seen>>);

impl ControlIo for EchoKv {
    fn kv(&mut self, _actor_id: &str, request: KvRequestData) -> KvResponseData {
        match request {
            KvRequestData::Get(KvGetRequest { keys }) => KvResponseData::Get(KvGetResponse {
                values: keys.clone(),
                keys,
                metadata: Vec::new(),
            }),
            _ => KvResponseData::Put,
        }
    }

    fn event(&mut self, action: &Action) {
        self.0.lock().unwrap().events.push(action.clone());
    }

    fn runner_queue_full(&mut self, conn: ConnId, full: &QueueFull) {
        self.0.lock().unwrap().runner_overflows.push((conn, *full));
    }
}

/// The runner's end of a connection: what it sends, and what it was sent.
struct RunnerEnd {
    sender: RunnerSender,
    events: RunnerEvents,
    queued: VecDeque<RunnerOutput>,
}

impl RunnerEnd {
    /// Runner `key-1` of pool `pool` (4 slots) connects and completes its handshake.
    async fn connect(handle: &ControlHandle) -> Self {
        let (sender, events) = handle.runner_connected("key-1").unwrap();
        let mut runner = Self {
            sender,
            events,
            queued: VecDeque::new(),
        };
        runner.send(&ToServer::Init(ToServerInit {
            name: "pool".into(),
            version: 1,
            total_slots: 4,
            prepopulate_actor_names: None,
            metadata: None,
        }));
        assert!(matches!(runner.next_frame().await, ToClient::Init(_)));
        runner
    }

    fn send(&self, msg: &ToServer) {
        self.sender.frame(&wire::encode(msg)).unwrap();
    }

    /// The next output, or `None` once the queue ended.
    async fn next(&mut self) -> Option<RunnerOutput> {
        if self.queued.is_empty() {
            let mut batch = Vec::new();
            let n = tokio::time::timeout(WAIT, self.events.recv_many(&mut batch))
                .await
                .expect("an output in time");
            if n == 0 {
                return None;
            }
            self.queued.extend(batch);
        }
        self.queued.pop_front()
    }

    /// The next non-ping frame.
    async fn next_frame(&mut self) -> ToClient {
        loop {
            match self.next().await {
                Some(RunnerOutput::Frame(frame)) => {
                    match wire::decode::<ToClient>(&frame).expect("decodes") {
                        ToClient::Ping(_) => {}
                        msg => return msg,
                    }
                }
                other => panic!("expected a frame, got {other:?}"),
            }
        }
    }
}

/// A driver with actor `a1` defined and a runner of pool `pool` connected and initialised.
async fn setup_with(
    gateway: GatewayConfig,
    options: ControlOptions,
) -> (
    ControlHandle,
    tokio::task::JoinHandle<Control>,
    RunnerEnd,
    Arc<Mutex<Seen>>,
) {
    let clock = TokioClock::new();
    let gw = Gateway::new(gateway, GatewayId([9; 4]), clock.now()).unwrap();
    let engine = Control::new(ControlConfig::default(), gw, 7, clock.now()).unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (driver, handle) = ControlDriver::new(engine, EchoKv(seen.clone()), clock, options);
    let task = tokio::spawn(driver.run());
    let config = ActorConfig {
        name: "echo".into(),
        key: None,
        create_ts: 0,
        input: None,
    };
    let spec = ActorSpec {
        runner_name: "pool".into(),
        config,
    };
    handle
        .call(move |c, now| c.create_actor(now, "a1", spec))
        .unwrap()
        .unwrap();
    let runner = RunnerEnd::connect(&handle).await;
    (handle, task, runner, seen)
}

async fn setup() -> (
    ControlHandle,
    tokio::task::JoinHandle<Control>,
    RunnerEnd,
    Arc<Mutex<Seen>>,
) {
    setup_with(GatewayConfig::default(), ControlOptions::default()).await
}

/// The runner carries out the start command a client's open caused, reports `Running`, and
/// accepts the open that follows; returns the open's message id.
async fn start_and_accept(runner: &mut RunnerEnd) -> MessageId {
    let ToClient::Commands(commands) = runner.next_frame().await else {
        panic!("a start")
    };
    assert!(matches!(commands.0[0].inner, Command::StartActor(_)));
    runner.send(&ToServer::Events(ToServerEvents(vec![EventWrapper {
        checkpoint: ActorCheckpoint {
            index: 0,
            ..commands.0[0].checkpoint.clone()
        },
        inner: Event::ActorStateUpdate(EventActorStateUpdate {
            state: ActorState::Running,
        }),
    }])));
    assert!(matches!(runner.next_frame().await, ToClient::AckEvents(_)));
    let ToClient::TunnelMessage(open) = runner.next_frame().await else {
        panic!("the open")
    };
    let ToClientTunnelMessageKind::WebSocketOpen(o) = &open.kind else {
        panic!("an open")
    };
    assert_eq!(o.path, "/");
    let kind = ToServerTunnelMessageKind::WebSocketOpen(ToServerWebSocketOpen {
        can_hibernate: true,
    });
    runner.send(&ToServer::TunnelMessage(ToServerTunnelMessage {
        message_id: open.message_id,
        kind,
    }));
    open.message_id
}

fn open_a1() -> OpenRequest {
    OpenRequest::new("a1", "/").expect("a path starting with /")
}

#[tokio::test]
async fn a_runner_and_a_client_through_the_control_driver() {
    let (handle, task, mut runner, _) = setup().await;
    // A client opens a WebSocket on the sleeping actor: the actor is started first.
    let (mut client, mut client_events) = handle.open(RequestId([1, 2, 3, 4]), open_a1()).unwrap();
    let message_id = start_and_accept(&mut runner).await;
    // The sender is ready once the runner accepted the WebSocket.
    tokio::time::timeout(WAIT, client.readable())
        .await
        .unwrap()
        .unwrap();

    // Client → runner, runner → client.
    client.message(b"hi", false).await.unwrap();
    let ToClient::TunnelMessage(m) = runner.next_frame().await else {
        panic!("a message")
    };
    assert!(matches!(&m.kind, ToClientTunnelMessageKind::WebSocketMessage(w) if *w.data == *b"hi"));
    let echo = ToServerTunnelMessageKind::WebSocketMessage(ToServerWebSocketMessage {
        data: b"hi back".to_vec().into(),
        binary: false,
    });
    // The runner numbers its messages after the open answer (index 0).
    let next = |n: u16| MessageId {
        message_index: MessageIndex::new(n),
        ..message_id
    };
    runner.send(&ToServer::TunnelMessage(ToServerTunnelMessage {
        message_id: next(1),
        kind: echo,
    }));
    let got = tokio::time::timeout(WAIT, client_events.recv())
        .await
        .unwrap();
    assert_eq!(
        got,
        Some(ClientOutput::Message {
            data: b"hi back".to_vec().into(),
            binary: false
        })
    );

    // KV goes to ControlIo and its answer back to the runner.
    runner.send(&ToServer::KvRequest(ToServerKvRequest {
        actor_id: "a1".into(),
        request_id: 42,
        data: KvRequestData::Get(KvGetRequest {
            keys: vec![b"k".to_vec()],
        }),
    }));
    let ToClient::KvResponse(r) = runner.next_frame().await else {
        panic!("a KV response")
    };
    assert_eq!(r.request_id, 42);
    assert!(matches!(r.data, KvResponseData::Get(g) if g.values == vec![b"k".to_vec()]));

    // The runner acks "hi" (persisted), then the client closes: the runner gets the close (a
    // close waits for the acks of what the client sent), the client's events end.
    let ack = ToServerTunnelMessageKind::WebSocketMessageAck(ToServerWebSocketMessageAck {
        index: MessageIndex::new(1),
    });
    runner.send(&ToServer::TunnelMessage(ToServerTunnelMessage {
        message_id: next(2),
        kind: ack,
    }));
    client.close(Some(CloseFrame::new(4000, "bye"))).unwrap();
    let ToClient::TunnelMessage(c) = runner.next_frame().await else {
        panic!("the close")
    };
    assert!(matches!(
        c.kind,
        ToClientTunnelMessageKind::WebSocketClose(_)
    ));
    let end = tokio::time::timeout(WAIT, client_events.recv())
        .await
        .unwrap();
    assert_eq!(end, None);

    runner.sender.disconnected();
    handle.shutdown();
    let engine = task.await.unwrap();
    assert_eq!(engine.stats().frames_dropped, 0);
    assert_eq!(engine.gateway().stats().closed_by_client, 1);
}

#[tokio::test]
async fn a_client_whose_events_are_dropped_is_closed_as_gone() {
    let (handle, task, mut runner, _) = setup().await;
    // The client goes away before the runner accepts: nobody reads its events.
    let (_client, events) = handle.open(RequestId([5; 4]), open_a1()).unwrap();
    drop(events);
    // The open was still waiting for its actor: it is dropped, the actor starts anyway and the
    // runner never sees it.
    let ToClient::Commands(commands) = runner.next_frame().await else {
        panic!("a start")
    };
    assert!(matches!(commands.0[0].inner, Command::StartActor(_)));
    handle.shutdown();
    let engine = task.await.unwrap();
    assert!(engine.gateway().is_empty());
    assert_eq!(engine.stats().frames_dropped, 0);
}

#[tokio::test]
async fn a_client_whose_events_are_dropped_after_the_open_is_closed_as_gone() {
    let (handle, task, mut runner, _) = setup().await;
    let (mut client, events) = handle.open(RequestId([6; 4]), open_a1()).unwrap();
    start_and_accept(&mut runner).await;
    tokio::time::timeout(WAIT, client.readable())
        .await
        .unwrap()
        .unwrap();
    drop(events);
    // Closed as if the client's stream had ended (1000, no reason, to the runner).
    let ToClient::TunnelMessage(close) = runner.next_frame().await else {
        panic!("a close")
    };
    let ToClientTunnelMessageKind::WebSocketClose(close) = close.kind else {
        panic!("a close")
    };
    assert_eq!((close.code, close.reason), (Some(1000), None));
    assert!(client.message(b"late", false).await.is_err());
    handle.shutdown();
    let engine = task.await.unwrap();
    assert_eq!(engine.gateway().stats().closed_by_client, 1);
    assert!(engine.gateway().is_empty());
}

/// `OverflowPolicy::Backpressure`: a message refused for want of room is kept, the client is not
/// read meanwhile, and the message goes out once the runner's ack frees room; nothing is closed.
#[tokio::test]
async fn backpressure_holds_the_client_until_the_runner_acks() {
    let gateway = GatewayConfig::default()
        .with_max_pending_messages(2)
        .with_overflow_policy(OverflowPolicy::Backpressure);
    let (handle, task, mut runner, _) = setup_with(gateway, ControlOptions::default()).await;
    let (mut client, _events) = handle.open(RequestId([7; 4]), open_a1()).unwrap();
    let message_id = start_and_accept(&mut runner).await;
    let writer = tokio::spawn(async move {
        for i in 0..5_u8 {
            client.message(&[i], true).await.unwrap();
        }
        client
    });
    let mut got = Vec::new();
    while got.len() < 5 {
        let ToClient::TunnelMessage(m) = runner.next_frame().await else {
            panic!("a message")
        };
        let ToClientTunnelMessageKind::WebSocketMessage(w) = m.kind else {
            panic!("a message, got {:?}", m.kind)
        };
        got.push(w.data[0]);
        // Two in flight at most: the gateway refuses the third until the runner acks.
        let pending = handle
            .call(|c, _| c.gateway().stats().pending_messages)
            .unwrap();
        assert!(pending <= 2, "{pending} pending");
        if got.len() % 2 == 0 {
            runner.send(&ToServer::TunnelMessage(ToServerTunnelMessage {
                message_id,
                kind: ToServerTunnelMessageKind::WebSocketMessageAck(ToServerWebSocketMessageAck {
                    index: m.message_id.message_index,
                }),
            }));
        }
    }
    assert_eq!(got, [0, 1, 2, 3, 4]);
    let client = tokio::time::timeout(WAIT, writer).await.unwrap().unwrap();
    assert_eq!(client.request_id(), RequestId([7; 4]));
    handle.shutdown();
    let engine = task.await.unwrap();
    let stats = engine.gateway().stats();
    assert!(stats.backpressured >= 1, "{stats:?}");
    assert_eq!(stats.closed, 0, "{stats:?}");
}

/// A client that does not read is closed with the typed reason once its queue is past its
/// limits; the runner's connection is not affected.
#[tokio::test]
async fn a_client_that_does_not_read_is_closed_with_client_queue_full() {
    let limits = QueueLimits {
        max_bytes: 1 << 20,
        max_messages: 4,
    };
    let options = ControlOptions::default().with_client_queue(limits);
    let (handle, task, mut runner, _) = setup_with(GatewayConfig::default(), options).await;
    let (_client, mut events) = handle.open(RequestId([8; 4]), open_a1()).unwrap();
    let message_id = start_and_accept(&mut runner).await;
    for i in 0..6_u8 {
        runner.send(&ToServer::TunnelMessage(ToServerTunnelMessage {
            message_id: MessageId {
                message_index: hibernating_ws::MessageIndex::new(u16::from(i)),
                ..message_id
            },
            kind: ToServerTunnelMessageKind::WebSocketMessage(ToServerWebSocketMessage {
                data: vec![i].into(),
                binary: true,
            }),
        }));
    }
    let out = tokio::time::timeout(WAIT, events.recv()).await.unwrap();
    assert_eq!(
        out,
        Some(ClientOutput::Close(CloseFrame::new(
            1008,
            hibernating_ws::driver::tokio::CLIENT_QUEUE_FULL
        )))
    );
    assert_eq!(handle.queue_stats().overflows, 1);
    // The runner hears the close.
    let ToClient::TunnelMessage(c) = runner.next_frame().await else {
        panic!("the close")
    };
    assert!(matches!(
        c.kind,
        ToClientTunnelMessageKind::WebSocketClose(_)
    ));
    handle.shutdown();
    task.await.unwrap();
}

/// A runner connection that does not drain is dropped with the typed reason; the engine handles
/// it as a lost connection and a reconnect under the same key resumes the runner.
#[tokio::test]
async fn a_runner_that_does_not_drain_is_dropped_and_may_reconnect() {
    let limits = QueueLimits {
        max_bytes: 1 << 20,
        max_messages: 3,
    };
    let options = ControlOptions::default().with_runner_queue(limits);
    let (handle, task, runner, seen) = setup_with(GatewayConfig::default(), options).await;
    let conn = runner.sender.conn();
    // Four KV answers, nobody reading.
    for i in 0..4 {
        runner.send(&ToServer::KvRequest(ToServerKvRequest {
            actor_id: "a1".into(),
            request_id: i,
            data: KvRequestData::Drop,
        }));
    }
    let mut events = runner.events;
    let mut batch = Vec::new();
    assert_eq!(events.recv_many(&mut batch).await, 0);
    assert!(events.overflowed().is_some());
    assert_eq!(seen.lock().unwrap().runner_overflows.len(), 1);
    assert_eq!(seen.lock().unwrap().runner_overflows[0].0, conn);
    drop(runner.sender);

    let _again = RunnerEnd::connect(&handle).await;
    let resumed = seen
        .lock()
        .unwrap()
        .events
        .iter()
        .any(|a| matches!(a, Action::RunnerConnected { resumed: true, .. }));
    assert!(resumed);
    handle.shutdown();
    task.await.unwrap();
}

/// An open on an actor that is destroyed while the open waits for a runner ends with a close frame and the
/// engine's `OpenFailed`.
#[tokio::test]
async fn an_open_that_cannot_reach_its_actor_closes_the_client() {
    let (handle, task, _runner, seen) = setup().await;
    // No runner serves pool `elsewhere`: the open waits.
    let spec = ActorSpec {
        runner_name: "elsewhere".into(),
        config: ActorConfig {
            name: "echo".into(),
            key: None,
            create_ts: 0,
            input: None,
        },
    };
    handle
        .call(move |c, now| c.create_actor(now, "a2", spec))
        .unwrap()
        .unwrap();
    let open = OpenRequest::new("a2", "/").expect("a path starting with /");
    let (_client, mut events) = handle.open(RequestId([9; 4]), open).unwrap();
    handle
        .call(|c, now| c.destroy_actor(now, "a2"))
        .unwrap()
        .unwrap();
    let out = tokio::time::timeout(WAIT, events.recv()).await.unwrap();
    assert_eq!(
        out,
        Some(ClientOutput::Close(CloseFrame::new(
            1011,
            "Actor not found"
        )))
    );
    assert_eq!(
        tokio::time::timeout(WAIT, events.recv()).await.unwrap(),
        None
    );
    assert!(
        seen.lock()
            .unwrap()
            .events
            .iter()
            .any(|a| matches!(a, Action::OpenFailed { .. }))
    );
    handle.shutdown();
    task.await.unwrap();
}
