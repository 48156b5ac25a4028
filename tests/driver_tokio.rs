//! The tokio adapter with paused time and in-memory channels: the client gate (no read before
//! `Opened`, none while backpressured), timers driven by the clock, commands, shutdown.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

mod common;

use hibernating_ws::testing::msg;
use std::time::Duration;

use hibernating_ws::Timestamp;
use hibernating_ws::driver::tokio::{
    AppEvents, ClientEvents, ClientOutput, ClientSender, GatewayDriver, GatewayHandle, GatewayIo,
    RunnerDriver, RunnerIo, TokioClock,
};
use hibernating_ws::gateway::{self, Frame, Gateway, GatewayConfig, OverflowPolicy, RouteId};
use hibernating_ws::runner::{self, Runner, RunnerConfig, SocketId};
use hibernating_ws::wire::{
    self, GatewayId, Headers, RequestId, ToClientTunnelMessage, ToClientTunnelMessageKind,
    ToClientWebSocketMessage, ToClientWebSocketOpen, ToGateway, ToRunner,
    ToServerTunnelMessageKind,
};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

const GW: GatewayId = GatewayId([1, 2, 3, 4]);
const REQ: RequestId = RequestId([9, 9, 9, 9]);
const ROUTE: RouteId = RouteId(5);

/// What the gateway sink saw.
#[derive(Debug)]
enum Seen {
    Publish(ToRunner),
    Other,
}

struct Recorder(UnboundedSender<Seen>);

impl GatewayIo for Recorder {
    fn publish(&mut self, _: RouteId, _: RequestId, frame: Frame) {
        let (_, msg) = wire::decode_versioned::<ToRunner>(&frame, &wire::DecodeLimits::default())
            .expect("the gateway publishes valid frames");
        let _ = self.0.send(Seen::Publish(msg));
    }
    fn request_wake(&mut self, _: RequestId, _: String) {
        let _ = self.0.send(Seen::Other);
    }
    fn upsert_hibernating_record(&mut self, _: RequestId, _: String) {
        let _ = self.0.send(Seen::Other);
    }
    fn delete_hibernating_record(&mut self, _: RequestId, _: String) {
        let _ = self.0.send(Seen::Other);
    }
}

fn runner_frame(index: u16, kind: ToServerTunnelMessageKind) -> Vec<u8> {
    msg::to_gateway_frame(GW, REQ, index, kind)
}

/// The index and payload of a published client message, or panics.
fn published_message(seen: Option<Seen>) -> (u16, Vec<u8>) {
    match seen {
        Some(Seen::Publish(ToRunner::TunnelMessage(ToClientTunnelMessage {
            message_id,
            kind: ToClientTunnelMessageKind::WebSocketMessage(m),
        }))) => (message_id.message_index.get(), m.data.to_vec()),
        other => panic!("expected a published message, got {other:?}"),
    }
}

/// Opens request `REQ` on actor `a` and has the runner accept it (not hibernatable).
async fn open_accepted(gw: &GatewayHandle) -> (ClientSender, ClientEvents) {
    let open = gateway::OpenRequest::new("a", "/").expect("a path starting with /");
    let (mut sender, events) = gw.open(REQ, ROUTE, open).expect("open");
    let accept = msg::runner_open(false);
    gw.runner_frame(ROUTE, &runner_frame(0, accept))
        .expect("driver runs");
    sender.readable().await.expect("opened");
    (sender, events)
}

fn next_publish(rx: &mut UnboundedReceiver<Seen>) -> Option<Seen> {
    loop {
        match rx.try_recv() {
            Ok(Seen::Other) => {}
            Ok(seen) => return Some(seen),
            Err(_) => return None,
        }
    }
}

fn gateway(
    config: GatewayConfig,
) -> (
    GatewayHandle,
    tokio::task::JoinHandle<Gateway>,
    UnboundedReceiver<Seen>,
) {
    let clock = TokioClock::new();
    let (tx, rx) = unbounded_channel();
    let gateway = Gateway::new(config, GW, clock.now()).expect("valid config");
    let (handle, task) = GatewayDriver::spawn(gateway, Recorder(tx), clock);
    (handle, task, rx)
}

#[tokio::test(start_paused = true)]
async fn the_client_is_not_read_before_opened_and_pings_follow_the_clock() {
    let (gw, task, mut seen) = gateway(GatewayConfig::default());
    let open = gateway::OpenRequest::new("a", "/").expect("a path starting with /");
    let (mut sender, mut events) = gw.open(REQ, ROUTE, open).expect("open");
    assert!(matches!(
        next_publish(&mut seen),
        Some(Seen::Publish(ToRunner::TunnelMessage(
            ToClientTunnelMessage {
                kind: ToClientTunnelMessageKind::WebSocketOpen(_),
                ..
            }
        )))
    ));

    // Before the runner accepts, the client is not read: `message` waits.
    let early = tokio::time::timeout(Duration::from_secs(1), sender.message(b"early", true));
    assert!(early.await.is_err(), "the gate is closed before Opened");
    assert!(next_publish(&mut seen).is_none());

    // The runner accepts: the gate opens, the message gets index 1.
    let accept = msg::runner_open(true);
    gw.runner_frame(ROUTE, &runner_frame(0, accept))
        .expect("driver runs");
    sender
        .message(b"hello", false)
        .await
        .expect("readable after Opened");
    let accepted_at = tokio::time::Instant::now();
    gw.call(|g, _| g.stats())
        .expect("a command round trip drains the input");
    assert_eq!(
        published_message(next_publish(&mut seen)),
        (1, b"hello".to_vec())
    );

    // Pings every 3 s, fired by the driver's timer on the paused clock.
    tokio::time::sleep_until(accepted_at + Duration::from_millis(2_900)).await;
    assert!(next_publish(&mut seen).is_none(), "no ping before 3 s");
    tokio::time::sleep_until(accepted_at + Duration::from_millis(3_100)).await;
    assert!(matches!(
        next_publish(&mut seen),
        Some(Seen::Publish(ToRunner::Ping(_)))
    ));
    tokio::time::sleep_until(accepted_at + Duration::from_millis(6_100)).await;
    assert!(matches!(
        next_publish(&mut seen),
        Some(Seen::Publish(ToRunner::Ping(_)))
    ));
    assert!(next_publish(&mut seen).is_none());
    assert_eq!(gw.call(|g, _| g.stats()).expect("stats").pings_sent, 2);

    // Runner → client.
    let echo = ToServerTunnelMessageKind::WebSocketMessage(
        hibernating_ws::wire::ToServerWebSocketMessage {
            data: b"echo".to_vec().into(),
            binary: true,
        },
    );
    gw.runner_frame(ROUTE, &runner_frame(1, echo))
        .expect("driver runs");
    assert_eq!(
        events.recv().await,
        Some(ClientOutput::Message {
            data: b"echo".to_vec().into(),
            binary: true
        })
    );

    // A runner close reaches the client and ends its channels.
    let close = msg::runner_close(4000, "bye");
    gw.runner_frame(ROUTE, &runner_frame(2, close))
        .expect("driver runs");
    assert_eq!(
        events.recv().await,
        Some(ClientOutput::Close(hibernating_ws::CloseFrame::new(
            4000, "bye"
        )))
    );
    assert_eq!(events.recv().await, None);
    assert!(
        sender.message(b"late", true).await.is_err(),
        "the request is gone"
    );

    gw.shutdown();
    let gateway = task.await.expect("driver task");
    assert_eq!(gateway.stats().closed_by_runner, 1);
    assert!(gateway.is_empty());
}

#[tokio::test(start_paused = true)]
async fn backpressure_closes_the_gate_until_an_ack_frees_room_and_keeps_order() {
    let mut config = GatewayConfig::default();
    config.overflow_policy = OverflowPolicy::Backpressure;
    config.max_pending_bytes = 3 * wire::ws_message_frame_len(100) as u64;
    let (gw, _task, mut seen) = gateway(config);
    let open = gateway::OpenRequest::new("", "/").expect("a path starting with /");
    let (mut sender, _events) = gw.open(REQ, ROUTE, open).expect("open");
    let accept = msg::runner_open(true);
    gw.runner_frame(ROUTE, &runner_frame(0, accept))
        .expect("driver runs");
    let _ = next_publish(&mut seen); // the open

    let msg = |i: u8| vec![i; 100];
    for i in 1..=4 {
        // The 4th is handed over while the gate is still open, then refused by the engine.
        sender.message(&msg(i), true).await.expect("gate open");
    }
    gw.call(|g, _| g.stats()).expect("round trip");
    assert_eq!(gw.call(|g, _| g.stats()).expect("stats").backpressured, 1);
    // The gate is closed now: the client is not read.
    // (1 s: before the first ping at 3 s, so only client messages are published meanwhile.)
    let fifth = msg(5);
    let blocked = tokio::time::timeout(Duration::from_secs(1), sender.message(&fifth, true));
    assert!(blocked.await.is_err(), "no read while backpressured");
    for i in 1..=3u16 {
        assert_eq!(
            published_message(next_publish(&mut seen)),
            (i, msg(u8::try_from(i).expect("small")))
        );
    }
    assert!(
        next_publish(&mut seen).is_none(),
        "the refused message waits"
    );

    // The runner acks index 2: room for the stalled 4th, published in order, the gate reopens.
    let ack = msg::runner_ack(2);
    gw.runner_frame(ROUTE, &runner_frame(1, ack))
        .expect("driver runs");
    sender.message(&msg(5), true).await.expect("readable again");
    gw.call(|g, _| g.stats()).expect("round trip");
    assert_eq!(published_message(next_publish(&mut seen)), (4, msg(4)));
    assert_eq!(published_message(next_publish(&mut seen)), (5, msg(5)));
    let stats = gw.call(|g, _| g.stats()).expect("stats");
    assert_eq!(
        (stats.client_writable, stats.messages_sent, stats.closed),
        (1, 5, 0)
    );
}

/// Runner sink: the tunnel messages it publishes.
struct RunnerRecorder(UnboundedSender<ToServerTunnelMessageKind>);

impl RunnerIo for RunnerRecorder {
    fn publish(&mut self, _: GatewayId, frame: Vec<u8>) {
        match wire::decode_versioned::<ToGateway>(&frame, &wire::DecodeLimits::default()) {
            Ok((_, ToGateway::TunnelMessage(m))) => {
                let _ = self.0.send(m.kind);
            }
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// The next queued app action, without waiting.
fn next_app(app: &mut AppEvents) -> Option<runner::Action> {
    futures_util::FutureExt::now_or_never(app.recv()).flatten()
}

fn gateway_frame(index: u16, kind: ToClientTunnelMessageKind) -> Vec<u8> {
    msg::to_runner_frame(GW, REQ, index, kind)
}

#[tokio::test(start_paused = true)]
async fn runner_driver_persists_after_the_debounce_and_acks_only_what_was_persisted() {
    let clock = TokioClock::new();
    let (tx, mut seen) = unbounded_channel();
    let runner = Runner::new(RunnerConfig::default(), clock.now()).expect("valid config");
    let (rn, mut app, task) = RunnerDriver::spawn(runner, RunnerRecorder(tx), clock);
    let socket = SocketId::new(GW, REQ);
    common::start_actor(&rn, "a");
    let _ = next_app(&mut app); // Restored
    let open = ToClientTunnelMessageKind::WebSocketOpen(ToClientWebSocketOpen {
        actor_id: "a".into(),
        path: "/".into(),
        headers: Headers::new(),
    });
    rn.frame(&gateway_frame(0, open))
        .await
        .expect("driver runs");
    assert!(matches!(
        next_app(&mut app),
        Some(runner::Action::Open { .. })
    ));
    rn.call(|r, now| r.accept(now, socket, true))
        .expect("driver runs")
        .expect("accept");
    assert!(matches!(
        seen.try_recv(),
        Ok(ToServerTunnelMessageKind::WebSocketOpen(_))
    ));
    let Some(runner::Action::Persist { server_index, .. }) = next_app(&mut app) else {
        panic!("the open is persisted at once");
    };
    rn.call(|r, now| r.persisted(now, socket, server_index))
        .expect("driver runs")
        .expect("persisted");
    assert!(seen.try_recv().is_err(), "the open index is not acked");

    let message = ToClientTunnelMessageKind::WebSocketMessage(ToClientWebSocketMessage {
        data: b"m".to_vec().into(),
        binary: true,
    });
    rn.frame(&gateway_frame(1, message))
        .await
        .expect("driver runs");
    let delivered_at = tokio::time::Instant::now();
    assert!(matches!(
        next_app(&mut app),
        Some(runner::Action::Message { .. })
    ));
    tokio::time::sleep_until(delivered_at + Duration::from_millis(4_900)).await;
    assert!(
        next_app(&mut app).is_none(),
        "debounced: no persist before 5 s"
    );
    tokio::time::sleep_until(delivered_at + Duration::from_millis(5_100)).await;
    let Some(runner::Action::Persist { server_index, .. }) = next_app(&mut app) else {
        panic!("the persist comes after 5 s");
    };
    assert_eq!(server_index.get(), 1);
    assert!(
        seen.try_recv().is_err(),
        "no ack before the write is durable"
    );
    rn.call(|r, now| r.persisted(now, socket, server_index))
        .expect("driver runs")
        .expect("persisted");
    match seen.try_recv() {
        Ok(ToServerTunnelMessageKind::WebSocketMessageAck(a)) => {
            assert_eq!(a.index.get(), 1);
        }
        other => panic!("expected the ack, got {other:?}"),
    }

    // Dropping every handle stops the runner driver; it returns the engine.
    drop(rn);
    let runner = task.await.expect("driver task");
    assert_eq!(runner.stats().acks_sent, 1);
    assert_eq!(runner.len(), 1);
    assert_eq!(
        app.recv().await,
        None,
        "the app's events end with the driver"
    );
}

#[tokio::test(start_paused = true)]
async fn commands_report_engine_errors_and_a_stopped_driver() {
    let clock = TokioClock::new();
    let (tx, _seen) = unbounded_channel();
    let runner = Runner::new(RunnerConfig::default(), clock.now()).expect("valid config");
    let (rn, _app, task) = RunnerDriver::spawn(runner, RunnerRecorder(tx), clock);
    let err = rn
        .call(|r, now| r.restore(now, "nobody", Vec::new()))
        .expect("driver runs")
        .expect_err("not starting");
    assert!(
        matches!(err, runner::ActorError::NotStarting { ref actor_id } if actor_id == "nobody")
    );
    rn.shutdown();
    let _ = task.await.expect("driver task");
    assert!(matches!(
        rn.call(|r, _| r.stats()),
        Err(hibernating_ws::driver::tokio::Stopped)
    ));

    let (gw, task, _) = gateway(GatewayConfig::default());
    let err = gw
        .call(|g, now| g.wake(now, REQ, ROUTE))
        .expect("driver runs")
        .expect_err("unknown request");
    assert!(matches!(
        err,
        gateway::WakeError::UnknownRequest { request_id: REQ }
    ));
    gw.shutdown();
    let _ = task.await.expect("driver task");
    assert!(gw.call(|g, _| g.stats()).is_err());
}

/// Inputs run the engine in the task that hands them over: a burst is handled in order, and a
/// shutdown in the middle of a burst stops the driver right after the inputs before it (the ones
/// after it are refused, never handled).
#[tokio::test(start_paused = true)]
async fn a_burst_of_inputs_is_handled_in_order_up_to_a_shutdown() {
    let (gw, task, mut seen) = gateway(GatewayConfig::default());
    let (mut sender, _events) = open_accepted(&gw).await;
    let _ = next_publish(&mut seen); // the open

    // 150 messages (more than two batches), the shutdown, then 10 more.
    let payload = |i: u32| i.to_be_bytes().to_vec();
    for i in 0..150 {
        sender
            .message(&payload(i), true)
            .await
            .expect("driver runs");
    }
    gw.shutdown();
    for i in 150..160 {
        assert_eq!(
            sender.message(&payload(i), true).await,
            Err(hibernating_ws::driver::tokio::Stopped),
            "refused after the shutdown"
        );
    }
    let gateway = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("the driver stops at the shutdown")
        .expect("driver task");
    assert_eq!(gateway.stats().messages_sent, 150);
    for i in 0..150_u16 {
        assert_eq!(
            published_message(next_publish(&mut seen)),
            (i + 1, payload(u32::from(i)))
        );
    }
    assert!(next_publish(&mut seen).is_none());
}

/// `readable` returns at once while the gate is open (no wait, no cooperative budget spent), and
/// reports a driver that is gone even when the gate was open when it went (an aborted task never
/// closes the gates).
#[tokio::test(start_paused = true)]
async fn an_open_gate_never_waits_and_reports_a_driver_that_is_gone() {
    let (gw, task, _seen) = gateway(GatewayConfig::default());
    let (mut sender, _events) = open_accepted(&gw).await;
    // An open gate never makes the reader wait, nor spends the task's cooperative budget (128
    // units per turn): a reader checks the gate for every message.
    let many = async {
        for _ in 0..1_000 {
            sender.readable().await?;
        }
        Ok::<(), hibernating_ws::driver::tokio::Stopped>(())
    };
    assert_eq!(futures_util::FutureExt::now_or_never(many), Some(Ok(())));

    task.abort();
    assert!(task.await.is_err(), "the task was aborted");
    assert_eq!(
        sender.readable().await,
        Err(hibernating_ws::driver::tokio::Stopped)
    );
    assert_eq!(
        sender.message(b"lost", true).await,
        Err(hibernating_ws::driver::tokio::Stopped)
    );
}

#[test]
fn tokio_clock_round_trips_timestamps() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let clock = TokioClock::new();
        let t0 = clock.now();
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(clock.now() - t0, Duration::from_millis(1_500));
        let t = Timestamp::from_millis(42_000);
        assert_eq!(clock.timestamp(clock.instant(t)), t);
    });
}
