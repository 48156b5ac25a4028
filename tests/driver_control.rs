//! `driver::control` without Node: a runner written by hand in wire types talks to the control
//! engine through the driver's channel halves (the official runner does the same over a socket in
//! `tests/interop/`).

#![allow(clippy::unwrap_used)] // test helpers

use core::time::Duration;

use hibernating_ws::control::{Action, ActorSpec, Control, ControlConfig};
use hibernating_ws::driver::control::{self, ClientEvent, ControlIo, RunnerEvents, RunnerOutput};
use hibernating_ws::gateway::{Gateway, GatewayConfig, OpenRequest};
use hibernating_ws::wire::{
    self, ActorCheckpoint, ActorConfig, ActorState, Command, Event, EventActorStateUpdate,
    EventWrapper, GatewayId, KvGetRequest, KvGetResponse, KvRequestData, KvResponseData, MessageId,
    RequestId, ToClient, ToClientTunnelMessageKind, ToServer, ToServerEvents, ToServerInit,
    ToServerKvRequest, ToServerTunnelMessage, ToServerTunnelMessageKind, ToServerWebSocketMessage,
    ToServerWebSocketOpen,
};
use hibernating_ws::{Clock, CloseFrame};

const WAIT: Duration = Duration::from_secs(10);

/// Answers every KV get with the key as its value.
struct EchoKv;

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

    fn event(&mut self, _action: &Action) {}
}

/// The next non-ping frame sent to the runner.
async fn next_frame(events: &mut RunnerEvents) -> ToClient {
    loop {
        let out = tokio::time::timeout(WAIT, events.recv())
            .await
            .expect("a frame in time");
        match out {
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

/// A driver with actor `a1` defined and a runner of pool `pool` connected and initialised.
async fn setup() -> (
    control::ControlHandle,
    tokio::task::JoinHandle<Control>,
    control::RunnerSender,
    RunnerEvents,
) {
    let clock = Clock::start();
    let gw = Gateway::new(GatewayConfig::default(), GatewayId([9; 4]), clock.now()).unwrap();
    let engine = Control::new(ControlConfig::default(), gw, 7, clock.now()).unwrap();
    let (handle, task) = control::spawn(engine, EchoKv, clock);
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
        .await
        .unwrap()
        .unwrap();
    let (runner, mut to_runner) = handle.runner_connected("key-1").await.unwrap();
    let init = ToServer::Init(ToServerInit {
        name: "pool".into(),
        version: 1,
        total_slots: 4,
        prepopulate_actor_names: None,
        metadata: None,
    });
    runner.frame(wire::encode(&init)).await.unwrap();
    assert!(matches!(
        next_frame(&mut to_runner).await,
        ToClient::Init(_)
    ));
    (handle, task, runner, to_runner)
}

/// The runner carries out the start command a client's open caused, reports `Running`, and
/// accepts the open that follows; returns the open's message id.
async fn start_and_accept(
    runner: &control::RunnerSender,
    to_runner: &mut RunnerEvents,
) -> MessageId {
    let ToClient::Commands(commands) = next_frame(to_runner).await else {
        panic!("a start")
    };
    assert!(matches!(commands.0[0].inner, Command::StartActor(_)));
    let running = ToServer::Events(ToServerEvents(vec![EventWrapper {
        checkpoint: ActorCheckpoint {
            index: 0,
            ..commands.0[0].checkpoint.clone()
        },
        inner: Event::ActorStateUpdate(EventActorStateUpdate {
            state: ActorState::Running,
        }),
    }]));
    runner.frame(wire::encode(&running)).await.unwrap();
    assert!(matches!(
        next_frame(to_runner).await,
        ToClient::AckEvents(_)
    ));
    let ToClient::TunnelMessage(open) = next_frame(to_runner).await else {
        panic!("the open")
    };
    let ToClientTunnelMessageKind::WebSocketOpen(o) = &open.kind else {
        panic!("an open")
    };
    assert_eq!(o.path, "/");
    let kind = ToServerTunnelMessageKind::WebSocketOpen(ToServerWebSocketOpen {
        can_hibernate: true,
    });
    let accept = ToServer::TunnelMessage(ToServerTunnelMessage {
        message_id: open.message_id,
        kind,
    });
    runner.frame(wire::encode(&accept)).await.unwrap();
    open.message_id
}

#[tokio::test]
async fn a_runner_and_a_client_through_the_control_driver() {
    let (handle, task, runner, mut to_runner) = setup().await;
    // A client opens a WebSocket on the sleeping actor: the actor is started first.
    let open = OpenRequest::new("a1", "/").expect("a path starting with /");
    let (client, mut client_events) = handle.open(RequestId([1, 2, 3, 4]), open).await.unwrap();
    let message_id = start_and_accept(&runner, &mut to_runner).await;
    let from_runner = |kind| {
        wire::encode(&ToServer::TunnelMessage(ToServerTunnelMessage {
            message_id,
            kind,
        }))
    };
    let opened = tokio::time::timeout(WAIT, client_events.recv())
        .await
        .unwrap();
    assert_eq!(opened, Some(ClientEvent::Opened { hibernatable: true }));

    // Client → runner, runner → client.
    client.message(b"hi".to_vec(), false).await.unwrap();
    let ToClient::TunnelMessage(m) = next_frame(&mut to_runner).await else {
        panic!("a message")
    };
    assert!(matches!(&m.kind, ToClientTunnelMessageKind::WebSocketMessage(w) if w.data == b"hi"));
    let echo = ToServerTunnelMessageKind::WebSocketMessage(ToServerWebSocketMessage {
        data: b"hi back".to_vec(),
        binary: false,
    });
    runner.frame(from_runner(echo)).await.unwrap();
    let got = tokio::time::timeout(WAIT, client_events.recv())
        .await
        .unwrap();
    assert_eq!(
        got,
        Some(ClientEvent::Message {
            data: b"hi back".to_vec(),
            binary: false
        })
    );

    // KV goes to ControlIo and its answer back to the runner.
    let kv = ToServer::KvRequest(ToServerKvRequest {
        actor_id: "a1".into(),
        request_id: 42,
        data: KvRequestData::Get(KvGetRequest {
            keys: vec![b"k".to_vec()],
        }),
    });
    runner.frame(wire::encode(&kv)).await.unwrap();
    let ToClient::KvResponse(r) = next_frame(&mut to_runner).await else {
        panic!("a KV response")
    };
    assert_eq!(r.request_id, 42);
    assert!(matches!(r.data, KvResponseData::Get(g) if g.values == vec![b"k".to_vec()]));

    // The client closes: the runner gets the close, the client's events end.
    client
        .close(Some(CloseFrame::new(4000, "bye")))
        .await
        .unwrap();
    let ToClient::TunnelMessage(c) = next_frame(&mut to_runner).await else {
        panic!("the close")
    };
    assert!(matches!(
        c.kind,
        ToClientTunnelMessageKind::WebSocketClose(_)
    ));
    let closed = tokio::time::timeout(WAIT, client_events.recv())
        .await
        .unwrap();
    assert!(matches!(closed, Some(ClientEvent::Closed(_))), "{closed:?}");
    assert_eq!(
        tokio::time::timeout(WAIT, client_events.recv())
            .await
            .unwrap(),
        None
    );

    runner.disconnected().await;
    handle.shutdown().await;
    let engine = task.await.unwrap();
    assert_eq!(engine.stats().frames_dropped, 0);
    assert_eq!(engine.gateway().stats().closed_by_client, 1);
}

#[tokio::test]
async fn a_client_whose_events_are_dropped_is_closed_as_gone() {
    let (handle, task, runner, mut to_runner) = setup().await;
    // The client goes away before the runner accepts: nobody reads its events.
    let open = OpenRequest::new("a1", "/").expect("a path starting with /");
    let (_client, events) = handle.open(RequestId([5; 4]), open).await.unwrap();
    drop(events);
    start_and_accept(&runner, &mut to_runner).await;

    // `Opened` cannot be delivered: the request is closed as if the client's stream had ended
    // (1000, no reason, to the runner).
    let ToClient::TunnelMessage(close) = next_frame(&mut to_runner).await else {
        panic!("a close")
    };
    let ToClientTunnelMessageKind::WebSocketClose(close) = close.kind else {
        panic!("a close")
    };
    assert_eq!((close.code, close.reason), (Some(1000), None));
    handle.shutdown().await;
    let engine = task.await.unwrap();
    assert_eq!(engine.gateway().stats().closed_by_client, 1);
    assert!(engine.gateway().is_empty());
}
