//! The blocking adapter: a thread feeds a runner from a `std::sync::mpsc` channel; its timers
//! fire through `recv_timeout` on the real clock (short persist debounce; no timing assertion:
//! the test waits for the ack, however long the debounce takes).
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use core::ops::ControlFlow;
use std::sync::mpsc;
use std::time::Duration;

use hibernating_ws::driver::blocking::{Driver, Exit};
use hibernating_ws::runner::{Action, Runner, RunnerConfig};
use hibernating_ws::wire::{
    self, GatewayId, Headers, MessageId, RequestId, ToClientTunnelMessage,
    ToClientTunnelMessageKind, ToClientWebSocketMessage, ToClientWebSocketOpen, ToGateway,
    ToRunner, ToServerTunnelMessageKind,
};
use hibernating_ws::{Clock, MessageIndex};

fn frame(index: u16, kind: ToClientTunnelMessageKind) -> Vec<u8> {
    wire::encode_versioned(
        7,
        &ToRunner::TunnelMessage(ToClientTunnelMessage {
            message_id: MessageId {
                gateway_id: GatewayId([1; 4]),
                request_id: RequestId([2; 4]),
                message_index: MessageIndex::new(index),
            },
            kind,
        }),
    )
}

enum Input {
    Frame(Vec<u8>),
}

#[test]
fn blocking_runner_delivers_persists_on_its_timer_and_acks() {
    let clock = Clock::start();
    let config = RunnerConfig::default().with_persist_interval(Duration::from_millis(20));
    let mut runner = Runner::new(config, clock.now()).expect("valid config");
    runner
        .actor_starting(clock.now(), "a", Vec::new())
        .expect("start");
    runner
        .restore(clock.now(), "a", Vec::new())
        .expect("restore");
    let mut driver = Driver::new(runner, clock);

    let (tx, rx) = mpsc::channel();
    let open = ToClientTunnelMessageKind::WebSocketOpen(ToClientWebSocketOpen {
        actor_id: "a".into(),
        path: "/".into(),
        headers: Headers::new(),
    });
    tx.send(Input::Frame(frame(0, open))).expect("send");
    for i in 1..=3u16 {
        let m = ToClientTunnelMessageKind::WebSocketMessage(ToClientWebSocketMessage {
            data: vec![u8::try_from(i).expect("small"); 10].into(),
            binary: true,
        });
        tx.send(Input::Frame(frame(i, m))).expect("send");
    }

    let (acks_tx, acks) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let mut delivered = Vec::new();
        let mut acked = None;
        let exit = driver.run(
            &rx,
            |runner, now, input| {
                let Input::Frame(bytes) = input;
                runner.handle_frame(now, &bytes).expect("valid frame");
                ControlFlow::Continue(())
            },
            |runner, now, action| match action {
                Action::Open { socket, .. } => runner.accept(now, socket, true).expect("accept"),
                Action::Message { index, .. } => delivered.push(index.get()),
                // A synchronous "write": durable at once.
                Action::Persist {
                    socket,
                    server_index,
                    ..
                } => runner
                    .persisted(now, socket, server_index)
                    .expect("in flight"),
                Action::Publish { frame, .. } => {
                    if let Ok((_, ToGateway::TunnelMessage(m))) =
                        wire::decode_versioned::<ToGateway>(&frame, &wire::DecodeLimits::default())
                        && let ToServerTunnelMessageKind::WebSocketMessageAck(a) = m.kind
                    {
                        acked = Some(a.index.get());
                        let _ = acks_tx.send(a.index.get());
                    }
                }
                _ => {}
            },
        );
        (exit, delivered, acked, driver.into_engine().stats())
    });
    // Nothing more comes in: only the driver's timer (recv_timeout) can make the persist happen.
    let first_ack = acks
        .recv_timeout(Duration::from_secs(30))
        .expect("the debounced persist fired and was acked");
    drop(tx);
    let (exit, delivered, acked, stats) = worker.join().expect("driver thread");
    assert_eq!(first_ack, 3);
    assert_eq!(exit, Exit::Disconnected);
    assert_eq!(delivered, [1, 2, 3]);
    assert_eq!(acked, Some(3), "the debounced persist fired and was acked");
    assert_eq!(stats.persists_completed, 2, "the open, then index 3");
}

#[test]
fn blocking_driver_stops_when_the_input_callback_breaks() {
    let clock = Clock::start();
    let runner = Runner::new(RunnerConfig::default(), clock.now()).expect("valid config");
    let mut driver = Driver::new(runner, clock);
    let (tx, rx) = mpsc::channel();
    tx.send(1u32).expect("send");
    tx.send(2).expect("send");
    tx.send(3).expect("send");
    let mut seen = Vec::new();
    let exit = driver.run(
        &rx,
        |_, _, n| {
            seen.push(n);
            if n == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
        |_, _, _| {},
    );
    assert_eq!(exit, Exit::Stopped);
    assert_eq!(seen, [1, 2]);
    assert_eq!(rx.try_recv(), Ok(3), "the rest stays queued");
}
