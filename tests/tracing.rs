//! The `tracing` feature: a capturing subscriber sees the gateway driver report a malformed
//! runner frame (with its route) and a frame for another gateway (with both ids) once each, an
//! open and a runner close (with the request id, code and reason).
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use hibernating_ws::testing::msg;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use hibernating_ws::CloseFrame;
use hibernating_ws::MessageIndex;
use hibernating_ws::driver::tokio::{ClientOutput, GatewayDriver, GatewayIo, TokioClock};
use hibernating_ws::gateway::{self, Frame, Gateway, GatewayConfig, RouteId};
use hibernating_ws::wire::{
    self, GatewayId, MessageId, RequestId, ToGateway, ToServerTunnelMessage,
    ToServerTunnelMessageKind,
};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

const GW: GatewayId = GatewayId([1, 2, 3, 4]);
const REQ: RequestId = RequestId([9, 9, 9, 9]);
const ROUTE: RouteId = RouteId(5);

/// One captured event: its level and its fields, each formatted with `Debug`.
#[derive(Debug, Clone)]
struct Captured {
    level: Level,
    fields: BTreeMap<String, String>,
}

impl Captured {
    fn message(&self) -> &str {
        self.fields.get("message").map_or("", String::as_str)
    }
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// A subscriber that records every event and ignores spans.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

impl Capture {
    fn events(&self) -> Vec<Captured> {
        self.0.lock().expect("not poisoned").clone()
    }
    /// The only captured event whose message is `message`, or panics.
    fn one(&self, message: &str) -> Captured {
        let all = self.events();
        let found: Vec<_> = all.iter().filter(|e| e.message() == message).collect();
        assert_eq!(found.len(), 1, "one {message:?} event in {all:#?}");
        found[0].clone()
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().expect("not poisoned").push(Captured {
            level: *event.metadata().level(),
            fields,
        });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// A sink that does not override the error hooks (their defaults report).
struct Sink;

impl GatewayIo for Sink {
    fn publish(&mut self, _: RouteId, _: RequestId, _: Frame) {}
    fn request_wake(&mut self, _: RequestId, _: String) {}
    fn upsert_hibernating_record(&mut self, _: RequestId, _: String) {}
    fn delete_hibernating_record(&mut self, _: RequestId, _: String) {}
}

fn runner_frame(index: u16, kind: ToServerTunnelMessageKind) -> Vec<u8> {
    msg::to_gateway_frame(GW, REQ, index, kind)
}

// The current-thread runtime runs the driver task on this thread, under the subscriber.
#[tokio::test(start_paused = true)]
async fn a_malformed_frame_an_open_and_a_close_are_reported_with_their_ids() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());

    let clock = TokioClock::new();
    let gateway = Gateway::new(GatewayConfig::default(), GW, clock.now()).expect("valid config");
    let (gw, task) = GatewayDriver::spawn(gateway, Sink, clock);
    let open = gateway::OpenRequest::new("a", "/").expect("a path starting with /");
    let (_sender, mut events) = gw.open(REQ, ROUTE, open).expect("open");

    // Garbage from the runner: dropped, reported by the default `receive_error` with the route.
    gw.runner_frame(ROUTE, &[0xff, 0x00, 0x13, 0x37])
        .expect("driver runs");
    let dropped = capture.one("hws: runner frame dropped");
    assert_eq!(dropped.level, Level::WARN);
    assert_eq!(dropped.field("route"), Some("5"));
    assert!(dropped.field("error").is_some_and(|e| !e.is_empty()));

    // A frame for another gateway: reported once, by the same hook; the error names both ids
    // (the engine itself emits nothing for an input it returns as an error).
    let other = ToServerTunnelMessage {
        message_id: MessageId {
            gateway_id: GatewayId([7, 7, 7, 7]),
            request_id: REQ,
            message_index: MessageIndex::new(0),
        },
        kind: msg::runner_open(false),
    };
    gw.runner_frame(
        ROUTE,
        &wire::encode_versioned(7, &ToGateway::TunnelMessage(other)),
    )
    .expect("driver runs");
    let dropped: Vec<_> = capture
        .events()
        .into_iter()
        .filter(|e| e.message() == "hws: runner frame dropped")
        .collect();
    assert_eq!(dropped.len(), 2);
    let error = dropped[1].field("error").expect("an error field");
    assert!(error.contains(&REQ.to_string()), "{error}");
    assert!(
        error.contains(&GatewayId([7, 7, 7, 7]).to_string()),
        "{error}"
    );
    assert_eq!(
        capture.events().len(),
        2,
        "one event per dropped frame, none from the engine"
    );

    let accept = msg::runner_open(false);
    gw.runner_frame(ROUTE, &runner_frame(0, accept))
        .expect("driver runs");
    let opened = capture.one("hws: request opened");
    assert_eq!(
        opened.field("request_id"),
        Some(format!("{REQ:?}").as_str())
    );
    assert_eq!(opened.field("hibernatable"), Some("false"));

    let close = msg::runner_close(4000, "bye");
    gw.runner_frame(ROUTE, &runner_frame(1, close))
        .expect("driver runs");
    assert_eq!(
        events.recv().await,
        Some(ClientOutput::Close(CloseFrame::new(4000, "bye")))
    );
    let closed = capture.one("hws: request closed");
    assert_eq!(
        closed.field("request_id"),
        Some(format!("{REQ:?}").as_str())
    );
    assert_eq!(closed.field("code"), Some("Some(4000)"));
    assert_eq!(closed.field("reason"), Some("Some(\"bye\")"));

    gw.shutdown();
    task.await.expect("driver task");
}
