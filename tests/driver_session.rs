//! `driver::session` end to end over real loopback WebSockets against hws's own engine side
//! (`driver::control`): actors start, sleep and wake with replay, the runner's connection drops
//! and comes back under the same key (actors kept) or after the engine gave up on it (a new
//! runner id: actors stopped), and the bounded queues give their typed outcomes. Every client
//! message must be committed exactly once, in order.

#![allow(
    clippy::unwrap_used,
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc
)]

mod session_support;

use hibernating_ws::control::ControlConfig;
use hibernating_ws::driver::control::ClientEvent;
use hibernating_ws::driver::session::SessionOptions;
use hibernating_ws::gateway::{GatewayConfig, Phase};
use hibernating_ws::wire::RequestId;
use session_support::app::App;
use session_support::engine::Engine;

/// Sends `range` as `m<i>` and checks each echo.
async fn traffic(client: &mut session_support::engine::Client, range: core::ops::Range<u32>) {
    for i in range {
        let text = format!("m{i}");
        client.send(&text).await;
        assert_eq!(client.next_message().await, text);
    }
}

fn sent(range: core::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("m{i}")).collect()
}

#[tokio::test]
async fn an_actor_starts_sleeps_and_wakes_with_replay() {
    let engine = Engine::start(GatewayConfig::default(), ControlConfig::default(), &["a1"]).await;
    let app = App::start(
        &engine.endpoint,
        "key-1",
        App::config(),
        SessionOptions::default(),
    );
    app.wait_count("connected", 1).await;

    // A client opens a socket: the engine starts the actor on the runner.
    let request = RequestId(*b"req1");
    let mut client = engine.open("a1", request).await;
    traffic(&mut client, 0..20).await;

    // The actor asks to sleep: the engine stops it, the socket hibernates.
    app.handle.sleep_actor("a1").unwrap();
    app.wait_count("stopped", 1).await;
    assert_eq!(client.next().await, ClientEvent::Hibernated);
    assert_eq!(engine.phase(request).await, Some(Phase::Hibernating));

    // Messages while asleep wake it; the gateway replays them to the restored socket.
    for i in 20..30 {
        client.send(&format!("m{i}")).await;
    }
    for i in 20..30 {
        assert_eq!(client.next_message().await, format!("m{i}"));
    }
    traffic(&mut client, 30..40).await;
    app.wait_count("restored", 1).await;
    assert_eq!(app.state.lock().unwrap().count("start"), 2);

    // Everything persisted and acknowledged: committed == sent, in order, once.
    let mut pending = u64::MAX;
    while pending != 0 {
        tokio::time::sleep(core::time::Duration::from_millis(10)).await;
        pending = engine.pending().await;
    }
    let s = app.state.lock().unwrap();
    assert_eq!(s.received("a1"), sent(0..40));
    assert_eq!(s.duplicates, 0);
    assert_eq!(s.connected.len(), 1, "one connection: {:?}", s.disconnects);
}
