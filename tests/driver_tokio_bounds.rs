//! Bounded queues of the tokio adapter: a client that does not read is paused, then closed with
//! a typed reason, while the other clients keep working; the app queue pushes back on the
//! links; a link outbox that does not drain closes. Every assertion is on counters and bytes.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

mod common;

use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use hibernating_ws::driver::tokio::{
    AppEvents, CLIENT_QUEUE_FULL, ClientEvents, ClientOutput, ClientSender, GatewayDriver,
    GatewayHandle, GatewayIo, GatewayOptions, Outbox, OutboxReceiver, QueueFull, QueueLimits,
    RunnerDriver, RunnerHandle, RunnerIo, RunnerOptions, TokioClock, outbox,
};
use hibernating_ws::gateway::{
    Frame, Gateway, GatewayConfig, OpenRequest, OverflowPolicy, RouteId,
};
use hibernating_ws::runner::{Action, Runner, RunnerConfig};
use hibernating_ws::wire::{self, GatewayId, RequestId};

const ROUTE: RouteId = RouteId(1);

struct ToRunner {
    link: Outbox<Frame>,
    full: Arc<Mutex<Vec<(RequestId, QueueFull)>>>,
}

impl GatewayIo for ToRunner {
    fn publish(&mut self, _: RouteId, _: RequestId, frame: Frame) {
        let _ = self.link.push(frame);
    }
    fn request_wake(&mut self, _: RequestId, _: String) {}
    fn upsert_hibernating_record(&mut self, _: RequestId, _: String) {}
    fn delete_hibernating_record(&mut self, _: RequestId, _: String) {}
    fn client_queue_full(&mut self, request_id: RequestId, full: &QueueFull) {
        self.full.lock().expect("lock").push((request_id, *full));
    }
}

struct ToGateway(Outbox<Vec<u8>>);

impl RunnerIo for ToGateway {
    fn publish(&mut self, _: GatewayId, frame: Vec<u8>) {
        let _ = self.0.push(frame);
    }
}

/// The app: accepts, persists at once, echoes every message; a message `blast N` makes it send
/// `N` messages of 1 KiB to that socket instead.
async fn app(rn: RunnerHandle, mut events: AppEvents) {
    while let Some(action) = events.recv().await {
        // Errors are the test's to find through counters, not the app's to act on.
        let _ = rn.call(|r, now| match action {
            Action::Open { socket, .. } => r.accept(now, socket, true).is_ok(),
            Action::Message {
                socket,
                data,
                binary,
                ..
            } => match std::str::from_utf8(&data)
                .ok()
                .and_then(|t| t.strip_prefix("blast "))
                .and_then(|n| n.parse::<usize>().ok())
            {
                // Every send is tried: a refused one does not stop the blast.
                Some(n) => (0..n).fold(true, |ok, _| {
                    r.send(now, socket, &[7; 1024], true).is_ok() && ok
                }),
                None => r.send(now, socket, &data, binary).is_ok(),
            },
            Action::Persist {
                socket,
                server_index,
                ..
            } => r.persisted(now, socket, server_index).is_ok(),
            _ => true,
        });
    }
}

/// Hands every frame of a link to `deliver`, a batch at a time, until the link closes.
async fn pump<T: AsRef<[u8]>>(mut rx: OutboxReceiver<T>, mut deliver: impl AsyncFnMut(T)) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch).await > 0 {
        for f in batch.drain(..) {
            deliver(f).await;
        }
    }
}

struct Setup {
    gw: GatewayHandle,
    full: Arc<Mutex<Vec<(RequestId, QueueFull)>>>,
}

/// A gateway and a runner with one started actor, linked in memory.
fn setup(client_queue: QueueLimits) -> Setup {
    let clock = TokioClock::new();
    let (to_runner, runner_rx) = outbox(QueueLimits::LINK);
    let (to_gateway, gateway_rx) = outbox(QueueLimits::LINK);
    let full = Arc::new(Mutex::new(Vec::new()));
    let mut config = GatewayConfig::default();
    config.overflow_policy = OverflowPolicy::Backpressure;
    let gateway = Gateway::new(config, GatewayId([1; 4]), clock.now()).expect("config");
    let io = ToRunner {
        link: to_runner,
        full: full.clone(),
    };
    let options = GatewayOptions::default().with_client_queue(client_queue);
    let (driver, gw) = GatewayDriver::new(gateway, io, clock, options);
    tokio::spawn(driver.run());
    let runner = Runner::new(RunnerConfig::default(), clock.now()).expect("config");
    let (rn, events, _task) = RunnerDriver::spawn(runner, ToGateway(to_gateway), clock);
    let rn2 = rn.clone();
    tokio::spawn(pump(runner_rx, async move |f: Frame| {
        let _ = rn2.frame(f.as_ref()).await;
    }));
    let gw2 = gw.clone();
    tokio::spawn(pump(gateway_rx, async move |f: Vec<u8>| {
        let _ = gw2.runner_frame(ROUTE, &f);
    }));
    common::start_actor(&rn, "a");
    tokio::spawn(app(rn, events));
    Setup { gw, full }
}

fn open(gw: &GatewayHandle, id: u32) -> (ClientSender, ClientEvents) {
    let open = OpenRequest::new("a", "/").expect("a path starting with /");
    gw.open(RequestId::from_u32(id), ROUTE, open).expect("open")
}

/// A well-behaved client: `n` round trips, each echo checked.
async fn round_trips(sender: &mut ClientSender, events: &mut ClientEvents, n: u32) {
    for i in 0..n {
        let msg = format!("ping {i}");
        sender
            .message(msg.as_bytes(), false)
            .await
            .expect("readable");
        assert_eq!(
            events.recv().await,
            Some(ClientOutput::Message {
                data: msg.into_bytes().into(),
                binary: false
            })
        );
    }
}

const SMALL: QueueLimits = QueueLimits {
    max_bytes: 64 * 1024,
    max_messages: 1024,
};

/// The flood of a hostile client: it sends as fast as it may and never reads its echoes. Its
/// outbound queue reaches half its limits and it is not read anymore; what it had in flight
/// still comes back, and if that takes its queue past the limits it is closed with the typed
/// reason. Either way the gateway's queued bytes stay under the bound and another client keeps
/// its round trips.
#[tokio::test(start_paused = true)]
async fn a_flooding_client_that_never_reads_stays_bounded_and_others_keep_working() {
    let s = setup(SMALL);
    let (mut flooder, mut flooder_events) = open(&s.gw, 1);
    let sent = Arc::new(Mutex::new(0_u64));
    let counted = sent.clone();
    let flood = tokio::spawn(async move {
        let payload = [0xA5_u8; 10];
        while flooder.message(&payload, true).await.is_ok() {
            *counted.lock().expect("lock") += 1;
            // A socket reader yields between reads now and then.
            tokio::task::yield_now().await;
        }
    });
    let (mut good, mut good_events) = open(&s.gw, 2);
    // The good client's round trips until the flood reached its queue's push-back point (or
    // 10 000 of them).
    for _ in 0..100 {
        round_trips(&mut good, &mut good_events, 100).await;
        let stats = s.gw.queue_stats();
        if stats.peak_bytes >= SMALL.max_bytes / 2 || stats.messages >= SMALL.max_messages / 2 {
            break;
        }
    }

    let stats = s.gw.queue_stats();
    let item = 10 + std::mem::size_of::<ClientOutput>();
    // The flood reached the push-back point (so the test can fail) ...
    assert!(
        stats.peak_bytes >= SMALL.max_bytes / 2 || stats.messages >= SMALL.max_messages / 2,
        "the flood never filled the queue: {stats:?}"
    );
    assert!(stats.messages <= SMALL.max_messages, "{stats:?}");
    // ... and never went past the limits by more than the item that closed it.
    assert!(stats.peak_bytes <= SMALL.max_bytes + item, "{stats:?}");
    assert!(stats.bytes <= SMALL.max_bytes, "{stats:?}");
    // The flooder is paused (read no further) or was closed with the typed reason.
    let sent_then = *sent.lock().expect("lock");
    round_trips(&mut good, &mut good_events, 100).await;
    assert_eq!(*sent.lock().expect("lock"), sent_then, "read no further");
    if stats.overflows > 0 {
        assert_eq!(s.full.lock().expect("lock").len(), 1);
        let close = flooder_events.recv().await;
        assert!(
            matches!(&close, Some(ClientOutput::Close(f)) if f.reason.as_deref() == Some(CLIENT_QUEUE_FULL)),
            "{close:?}"
        );
    }
    flood.abort();
}

/// A client that does not read while the actor keeps sending goes past its queue's limits: it
/// is closed with 1008 `hws.client_queue_full`, what was queued for it is dropped, the sink is
/// told, and another client keeps working.
#[tokio::test(start_paused = true)]
async fn a_client_past_its_queue_limits_is_closed_with_a_typed_reason() {
    let s = setup(SMALL);
    let (mut slow, mut slow_events) = open(&s.gw, 1);
    let (mut good, mut good_events) = open(&s.gw, 2);
    round_trips(&mut good, &mut good_events, 3).await;

    // 200 KiB for a client that reads nothing meanwhile.
    slow.message(b"blast 200", false).await.expect("readable");
    round_trips(&mut good, &mut good_events, 3).await;

    let stats = s.gw.queue_stats();
    assert_eq!(stats.overflows, 1, "{stats:?}");
    assert!(
        stats.peak_bytes <= SMALL.max_bytes + 1024 + std::mem::size_of::<ClientOutput>(),
        "{stats:?}"
    );
    let full = s.full.lock().expect("lock").clone();
    assert_eq!(full.len(), 1);
    assert_eq!(full[0].0, RequestId::from_u32(1));
    assert!(full[0].1.bytes > SMALL.max_bytes || full[0].1.messages > SMALL.max_messages);
    // The slow client gets the typed close first (its queue was dropped), then nothing.
    match slow_events.recv().await {
        Some(ClientOutput::Close(frame)) => {
            assert_eq!(frame.code, Some(1008));
            assert_eq!(frame.reason.as_deref(), Some(CLIENT_QUEUE_FULL));
        }
        other => panic!("expected the close, got {other:?}"),
    }
    assert_eq!(slow_events.recv().await, None);
    assert!(slow.message(b"more", false).await.is_err(), "closed");
    let request =
        s.gw.call(|g, _| g.request(RequestId::from_u32(1)))
            .expect("runs");
    assert!(request.is_none(), "the engine closed the request");
    // Only the good client's queue is left, and it is empty.
    assert_eq!(s.gw.queue_stats().bytes, 0);
    round_trips(&mut good, &mut good_events, 3).await;
}

struct Drop0;
impl RunnerIo for Drop0 {
    fn publish(&mut self, _: GatewayId, _: Vec<u8>) {}
}

/// The app's queue pushes back on the links: at half its limits `RunnerHandle::frame` waits
/// (the link is not read) until the app takes its actions.
#[tokio::test(start_paused = true)]
async fn the_app_queue_pushes_back_on_the_gateway_link() {
    use wire::{
        Headers, MessageId, ToClientTunnelMessage, ToClientTunnelMessageKind,
        ToClientWebSocketMessage, ToClientWebSocketOpen, ToRunner,
    };
    let gw_id = GatewayId([1; 4]);
    let req = RequestId([2; 4]);
    let frame = |index: u16, kind| {
        wire::encode_versioned(
            7,
            &ToRunner::TunnelMessage(ToClientTunnelMessage {
                message_id: MessageId {
                    gateway_id: gw_id,
                    request_id: req,
                    message_index: hibernating_ws::MessageIndex::new(index),
                },
                kind,
            }),
        )
    };
    let clock = TokioClock::new();
    let runner = Runner::new(RunnerConfig::default(), clock.now()).expect("config");
    let limits = QueueLimits {
        max_bytes: 1 << 20,
        max_messages: 16,
    };
    let options = RunnerOptions::default().with_app_queue(limits);
    let (driver, rn, mut app) = RunnerDriver::new(runner, Drop0, clock, options);
    tokio::spawn(driver.run());
    common::start_actor(&rn, "a");
    let open = ToClientTunnelMessageKind::WebSocketOpen(ToClientWebSocketOpen {
        actor_id: "a".into(),
        path: "/".into(),
        headers: Headers::new(),
    });
    rn.frame(&frame(0, open)).await.expect("runs");
    let socket = loop {
        match app.recv().await {
            Some(Action::Open { socket, .. }) => break socket,
            Some(_) => {}
            None => panic!("the driver stopped"),
        }
    };
    rn.call(|r, now| r.accept(now, socket, true))
        .expect("runs")
        .expect("accept");
    let message = |i: u16| {
        frame(
            i,
            ToClientTunnelMessageKind::WebSocketMessage(ToClientWebSocketMessage {
                data: vec![1; 100].into(),
                binary: true,
            }),
        )
    };
    // Fill: frames are taken until the queue is at half its limits.
    let mut handed = 0_u16;
    loop {
        let next = message(handed + 1);
        if rn.frame(&next).now_or_never().is_none() {
            break;
        }
        handed += 1;
        assert!(handed < 100, "the app queue never pushed back");
    }
    let stats = rn.queue_stats();
    assert!(stats.messages >= limits.max_messages / 2, "{stats:?}");
    assert!(stats.messages <= limits.max_messages, "{stats:?}");
    // The app takes its actions: the link is read again, nothing was lost.
    let mut delivered = 0_u16;
    while let Some(Some(action)) = app.recv().now_or_never() {
        if matches!(action, Action::Message { .. }) {
            delivered += 1;
        }
    }
    assert_eq!(delivered, handed);
    rn.frame(&message(handed + 1)).await.expect("room again");
    assert!(matches!(app.recv().await, Some(Action::Message { .. })));
}

/// A link outbox that does not drain closes with `QueueFull` and ends its receiver.
#[tokio::test]
async fn a_link_outbox_past_its_limits_closes() {
    let limits = QueueLimits {
        max_bytes: 1000,
        max_messages: 1000,
    };
    let (tx, mut rx) = outbox::<Vec<u8>>(limits);
    let mut pushed = 0;
    let err = loop {
        match tx.push(vec![0; 100]) {
            Ok(()) => pushed += 1,
            Err(e) => break e,
        }
        assert!(pushed < 100, "never overflowed");
    };
    assert!(err.bytes > limits.max_bytes);
    assert_eq!(rx.overflowed(), Some(err));
    assert_eq!(tx.push(vec![1]), Err(err), "stays closed");
    let mut batch = Vec::new();
    assert_eq!(rx.recv_many(&mut batch).await, 0, "the receiver ends");
    assert!(batch.is_empty(), "the queued frames were dropped");
}
