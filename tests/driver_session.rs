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

use core::time::Duration;

use hibernating_ws::MessageIndex;
use hibernating_ws::control::{Action, ControlConfig};
use hibernating_ws::driver::session::{Backoff, ConnectOptions, SessionOptions};
use hibernating_ws::driver::tokio::QueueLimits;
use hibernating_ws::gateway::{GatewayConfig, Phase};
use hibernating_ws::runner::GapPolicy;
use hibernating_ws::session::SessionConfig;
use hibernating_ws::wire::RequestId;
use session_support::app::App;
use session_support::engine::{ClientEvent, Engine, wait};

/// Sends `range` as `m<i>` and checks each echo.
async fn traffic(client: &mut session_support::engine::Client, range: core::ops::Range<u32>) {
    for i in range {
        let text = format!("m{i}");
        client.send(&text).await;
        assert_eq!(client.next_message().await, text);
    }
}

/// An engine hosting actor `a1` and the app connected to it as runner `key-1`.
async fn connected(
    gateway: GatewayConfig,
    control: ControlConfig,
    config: SessionConfig,
    options: SessionOptions,
) -> (Engine, App) {
    let engine = Engine::start(gateway, control, &["a1"]).await;
    let app = App::start(&engine.endpoint, "key-1", config, options);
    app.wait_count("connected", 1).await;
    (engine, app)
}

/// [`connected`] with every default but the session's `options`.
async fn started_with(options: SessionOptions) -> (Engine, App) {
    let (gateway, control) = (GatewayConfig::default(), ControlConfig::default());
    connected(gateway, control, App::config(), options).await
}

/// [`connected`] with every default.
async fn started() -> (Engine, App) {
    started_with(SessionOptions::default()).await
}

/// Queue limits of `max_messages` messages and 1 MiB.
fn limits(max_messages: usize) -> QueueLimits {
    QueueLimits {
        max_bytes: 1 << 20,
        max_messages,
    }
}

/// A client of `a1` (request `req1`) that exchanged messages `m0` to `m{n-1}` with it.
async fn opened(engine: &Engine, n: u32) -> (RequestId, session_support::engine::Client) {
    let request = RequestId(*b"req1");
    let mut client = engine.open("a1", request).await;
    traffic(&mut client, 0..n).await;
    (request, client)
}

fn sent(range: core::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("m{i}")).collect()
}

#[tokio::test]
async fn an_actor_starts_sleeps_and_wakes_with_replay() {
    let (engine, app) = started().await;

    // A client opens a socket: the engine starts the actor on the runner.
    let (request, mut client) = opened(&engine, 20).await;

    // The actor asks to sleep: the engine stops it, the socket hibernates.
    app.handle.sleep_actor("a1").unwrap();
    app.wait_count("stopped", 1).await;
    assert_eq!(client.next().await, ClientEvent::Hibernated);
    assert_eq!(engine.phase(request), Some(Phase::Hibernating));

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
    settled(&engine).await;
    let s = app.state.lock().unwrap();
    assert_eq!(s.received("a1"), sent(0..40));
    assert_eq!(s.duplicates, 0);
    assert_eq!(s.connected.len(), 1, "one connection: {:?}", s.disconnects);
}

/// Waits until the gateway holds nothing unacknowledged.
async fn settled(engine: &Engine) {
    let mut pending = u64::MAX;
    while pending != 0 {
        tokio::time::sleep(core::time::Duration::from_millis(10)).await;
        pending = engine.pending();
    }
}

/// A backoff short enough for tests.
fn quick() -> SessionOptions {
    SessionOptions::default().with_backoff(Backoff::new(
        Duration::from_millis(20),
        Duration::from_millis(100),
    ))
}

#[tokio::test]
async fn a_dropped_connection_comes_back_under_the_same_key_and_keeps_its_actors() {
    // The gateway retransmits what the runner did not acknowledge and the runner holds
    // out-of-order messages: client messages sent while the runner is away are not lost.
    let gateway =
        GatewayConfig::default().with_retransmit_timeout(Some(Duration::from_millis(200)));
    let mut config = App::config();
    config.runner.gap_policy = GapPolicy::Await;
    let (engine, app) = connected(gateway, ControlConfig::default(), config, quick()).await;
    let (request, mut client) = opened(&engine, 10).await;

    // The network drops the runner's connection; the client keeps sending.
    engine.refuse(true);
    engine.kill();
    app.wait_count("disconnected", 1).await;
    for i in 10..20 {
        client.send(&format!("m{i}")).await;
    }
    engine.refuse(false);
    app.wait_count("connected", 2).await;
    for i in 10..20 {
        assert_eq!(client.next_message().await, format!("m{i}"));
    }
    traffic(&mut client, 20..30).await;
    settled(&engine).await;

    {
        let s = app.state.lock().unwrap();
        // Same key, same runner id: the actor was neither stopped nor started again.
        assert_eq!(s.connected.len(), 2);
        assert_eq!(s.connected[0].0, s.connected[1].0);
        assert!(!s.connected[1].1, "not a new id");
        assert_eq!(s.count("start"), 1);
        assert_eq!(s.count("stopped"), 0);
        assert_eq!(s.received("a1"), sent(0..30));
        assert_eq!(s.duplicates, 0);
    }
    let keys = engine.keys.lock().unwrap().clone();
    assert!(
        keys.len() >= 2 && keys.iter().all(|k| k == "key-1"),
        "{keys:?}"
    );
    engine
        .wait_event("the runner resumed", |events| {
            events
                .iter()
                .any(|e| matches!(e, Action::RunnerConnected { resumed: true, .. }))
        })
        .await;
    assert_eq!(engine.phase(request), Some(Phase::Active));
}

#[tokio::test]
async fn a_runner_back_after_the_lost_threshold_gets_a_new_id_and_its_actors_restart() {
    let mut control = ControlConfig::default();
    control.runner_lost_threshold = Duration::from_millis(300);
    let (engine, app) = connected(GatewayConfig::default(), control, App::config(), quick()).await;
    let (_, mut client) = opened(&engine, 10).await;
    settled(&engine).await;

    // Away longer than the threshold: the engine declares the runner lost and stops its
    // actors; the session does the same on its side.
    engine.refuse(true);
    engine.kill();
    app.wait_count("lost", 1).await;
    engine
        .wait_event("the runner lost", |events| {
            events
                .iter()
                .any(|e| matches!(e, Action::RunnerLost { .. }))
        })
        .await;
    assert_eq!(client.next().await, ClientEvent::Hibernated);
    engine.refuse(false);
    app.wait_count("connected", 2).await;
    {
        let s = app.state.lock().unwrap();
        assert!(s.connected[1].1, "a new id");
        assert_ne!(s.connected[0].0, s.connected[1].0);
        assert_eq!(s.count("stopped"), 1, "{:?}", s.log);
    }

    // The next message wakes the actor under the new runner id: restored, nothing lost.
    traffic(&mut client, 10..20).await;
    settled(&engine).await;
    let s = app.state.lock().unwrap();
    assert_eq!(s.count("start"), 2);
    assert_eq!(s.count("restored"), 1);
    assert_eq!(s.received("a1"), sent(0..20));
    assert_eq!(s.duplicates, 0);
}

#[tokio::test]
async fn a_full_app_queue_pauses_reading_the_engine_until_the_app_catches_up() {
    let limits = limits(8);
    let (engine, app) = started_with(SessionOptions::default().with_app_queue(limits)).await;
    let (_, mut client) = opened(&engine, 5).await;

    // The app stops taking events; the client keeps sending.
    app.state.lock().unwrap().paused = true;
    for i in 5..60 {
        client.send(&format!("m{i}")).await;
    }
    wait("reads paused", || app.handle.stats().paused_reads > 0).await;
    let stats = app.handle.stats();
    assert!(stats.app_queue.messages <= limits.max_messages, "{stats:?}");

    // The app takes events again: everything arrives, in order, once.
    app.state.lock().unwrap().paused = false;
    app.resume.notify_waiters();
    for i in 5..60 {
        assert_eq!(client.next_message().await, format!("m{i}"));
    }
    settled(&engine).await;
    let s = app.state.lock().unwrap();
    assert_eq!(s.received("a1"), sent(0..60));
    assert_eq!(s.duplicates, 0);
    assert!(app.handle.stats().app_queue.peak_bytes > 0);
}

#[tokio::test]
async fn an_outbox_past_its_limits_drops_the_connection_with_a_typed_reason() {
    let limits = limits(4);
    let (engine, app) = started_with(quick().with_outbox(limits)).await;
    let (_, mut client) = opened(&engine, 5).await;

    // Twenty sends without yielding: the connection's writer cannot run in between.
    let socket = app.state.lock().unwrap().sockets()[0];
    for i in 0..20 {
        let _ = app
            .handle
            .send(socket, format!("burst{i}").as_bytes(), false);
    }
    app.wait_count("connected", 2).await;
    {
        let s = app.state.lock().unwrap();
        assert!(
            s.disconnects[0].starts_with("OutboxFull"),
            "{:?}",
            s.disconnects
        );
        assert!(!s.connected[1].1, "same runner id");
    }
    assert!(app.handle.stats().frames_dropped_offline > 0);

    // The socket survives: traffic continues exactly once.
    loop {
        client.send("probe").await;
        if client.next_message().await == "probe" {
            break;
        }
    }
    settled(&engine).await;
    let s = app.state.lock().unwrap();
    let received = s.received("a1");
    assert_eq!(received[..5], sent(0..5)[..]);
    assert!(received[5..].iter().all(|m| m == "probe"));
    assert_eq!(s.duplicates, 0);
}

#[tokio::test]
async fn an_evicted_runner_does_not_reconnect() {
    let engine = Engine::start(GatewayConfig::default(), ControlConfig::default(), &["a1"]).await;
    let first = App::start(&engine.endpoint, "key-1", App::config(), quick());
    first.wait_count("connected", 1).await;
    // A second process with the same key takes over.
    let second = App::start(&engine.endpoint, "key-1", App::config(), quick());
    second.wait_count("connected", 1).await;
    first.wait_count("disconnected", 1).await;
    assert_eq!(first.state.lock().unwrap().disconnects, ["Evicted"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(first.handle.stats().connections, 1, "no reconnection");
    assert_eq!(first.state.lock().unwrap().count("connected"), 1);
}

#[tokio::test]
async fn drain_stops_the_actors_then_shutdown_closes_and_returns_the_session() {
    let (engine, app) = started().await;
    let (_, mut client) = opened(&engine, 3).await;

    // Draining: the engine stops the actor (its socket persists and hibernates).
    app.handle.drain().unwrap();
    app.wait_count("stopped", 1).await;
    assert_eq!(client.next().await, ClientEvent::Hibernated);
    assert_eq!(engine.connections(), 1);

    app.handle.shutdown();
    let session = app.task.await.unwrap();
    assert_eq!(session.runner().stats().delivered, 3);
    assert!(session.runner().is_empty());
    assert!(app.handle.sleep_actor("a1").is_err(), "stopped");
    wait_engine(&engine, "the runner's connection closed", 0).await;
    let s = app.state.lock().unwrap();
    assert_eq!(s.disk["a1"].values().next().unwrap().committed, sent(0..3));
}

/// Waits until the engine has `n` runner connections.
async fn wait_engine(engine: &Engine, what: &str, n: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while engine.connections() != n {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether `indices` are consecutive (each one after the previous, wrapping).
fn consecutive(indices: &[MessageIndex]) -> bool {
    indices.windows(2).all(|w| w[1] == w[0].wrapping_add(1))
}

/// The official engine wakes an actor again about 100 ms after a sleep whose messages were not
/// acknowledged and replays them with their original indices. hws's engine does the same (at
/// once): a runner whose final persist failed stops without acknowledging, the gateway asks for
/// a wake with messages pending, and the restored socket gets them again, same indices, while
/// the app (which dropped the uncommitted state with the actor) commits each once.
#[tokio::test]
async fn a_sleep_without_acks_wakes_again_and_replays_with_the_original_indices() {
    let mut config = App::config();
    config.runner.persist_interval = Duration::from_secs(3600);
    let (engine, app) = connected(
        GatewayConfig::default(),
        ControlConfig::default(),
        config,
        SessionOptions::default(),
    )
    .await;
    let (_, _client) = opened(&engine, 10).await;

    // The stop's persist fails: nothing is acknowledged.
    app.state.lock().unwrap().fail_persists = 1;
    app.handle.sleep_actor("a1").unwrap();
    // No client message follows, yet the actor starts again and gets the ten messages back.
    app.wait_count("start", 2).await;
    app.wait("the replay", |s| s.deliveries.len() >= 20).await;
    {
        let s = app.state.lock().unwrap();
        let (first, replay) = s.deliveries.split_at(10);
        assert_eq!(first, replay, "same messages, same indices");
        assert_eq!(s.count("stopped"), 1);
    }
    // A successful sleep commits them, once.
    app.handle.sleep_actor("a1").unwrap();
    app.wait_count("stopped", 2).await;
    settled(&engine).await;
    let s = app.state.lock().unwrap();
    assert_eq!(s.received("a1"), sent(0..10));
    assert_eq!(s.duplicates, 0);
}

/// The official engine accepts a runner that reuses its own outgoing indices; hws's runner
/// keeps them consecutive across a sleep and wake (they are persisted with the socket) and
/// across a same-key reconnection.
#[tokio::test]
async fn outgoing_indices_stay_consecutive_across_sleep_wake_and_reconnection() {
    let (engine, app) = started_with(quick()).await;
    let (_, mut client) = opened(&engine, 10).await;
    app.handle.sleep_actor("a1").unwrap();
    assert_eq!(client.next().await, ClientEvent::Hibernated);
    traffic(&mut client, 10..20).await;
    engine.kill();
    app.wait_count("connected", 2).await;
    traffic(&mut client, 20..30).await;

    let outgoing = engine.outgoing.lock().unwrap().clone();
    eprintln!("{outgoing:?}");
    let indices: Vec<_> = outgoing.iter().map(|(i, _)| *i).collect();
    assert!(consecutive(&indices), "{outgoing:?}");
    assert_eq!(app.state.lock().unwrap().count("start"), 2);
}

#[tokio::test]
async fn a_silent_connection_is_dropped_after_the_idle_timeout_and_made_again() {
    let mut control = ControlConfig::default();
    control.ping_interval = Duration::from_millis(20);
    let options = quick().with_idle_timeout(Duration::from_secs(1));
    let (engine, app) = connected(GatewayConfig::default(), control, App::config(), options).await;
    let (_, mut client) = opened(&engine, 5).await;
    // Pings every 20 ms keep a live connection well inside the timeout; a frozen one is not.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(app.handle.stats().connections, 1);
    engine.freeze();
    app.wait_count("connected", 2).await;
    assert_eq!(app.state.lock().unwrap().disconnects, ["Idle"]);
    traffic(&mut client, 5..10).await;
    settled(&engine).await;
    assert_eq!(app.state.lock().unwrap().received("a1"), sent(0..10));
}

#[tokio::test]
async fn the_token_travels_as_a_subprotocol_and_a_refusal_is_typed() {
    let engine = Engine::start(GatewayConfig::default(), ControlConfig::default(), &["a1"]).await;
    engine.require_token("s3cret");
    let wrong = ConnectOptions::new(&engine.endpoint, "default", "key-1").with_token("guess");
    let refused = App::start_with(wrong, App::config(), quick());
    refused.wait_count("disconnected", 2).await;
    assert_eq!(
        refused.state.lock().unwrap().disconnects[..2],
        ["Refused { status: 401 }", "Refused { status: 401 }"]
    );
    assert_eq!(refused.handle.stats().handshakes, 0);
    refused.handle.shutdown();

    let right = ConnectOptions::new(&engine.endpoint, "default", "key-2").with_token("s3cret");
    let app = App::start_with(right, App::config(), quick());
    app.wait_count("connected", 1).await;
    let offered = engine.offered.lock().unwrap().clone();
    assert_eq!(offered.last().unwrap(), "rivet, rivet_token.s3cret");
    let (_, _client) = opened(&engine, 3).await;
}

#[tokio::test]
async fn an_app_that_waits_for_writable_never_overflows_the_outbox() {
    let limits = limits(4);
    let options = quick().with_outbox(limits);
    let (engine, app) = started_with(options).await;
    let (_, mut client) = opened(&engine, 3).await;

    let socket = app.state.lock().unwrap().sockets()[0];
    for i in 0..200 {
        app.handle.writable().await.unwrap();
        app.handle
            .send(socket, format!("burst{i}").as_bytes(), false)
            .unwrap();
    }
    for i in 0..200 {
        assert_eq!(client.next_message().await, format!("burst{i}"));
    }
    assert_eq!(app.handle.stats().connections, 1, "never dropped");
    assert_eq!(app.state.lock().unwrap().count("disconnected"), 0);
}
