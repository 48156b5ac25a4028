//! End to end over real WebSockets on 127.0.0.1 (port 0): a client closing while its actor
//! sleeps, per-connection limits under both overflow policies, malformed runner frames.
//!
//! Real time, not paused (see `e2e_demo.rs`). No timing assertions: every wait is for an event,
//! bounded by a generous timeout that only fails a broken system.

#![allow(
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc,
    clippy::similar_names
)] // application code on std

mod e2e_support;

use std::time::Duration;

use demo::client::Client;
use demo::gateway::{GatewayOptions, GatewayServer, Schedule};
use demo::runner::{RunnerInstance, RunnerOptions};
use demo::scenario::{DataDir, committed_result};
use demo::storage::{ActorState, StorageKind, StreamState};
use e2e_support::{
    WAIT, connect_as_runner, demo, eventually, fast_runner, gateway, runner_options, start_runner,
    stream,
};
use futures_util::SinkExt;
use hibernating_ws::gateway::{GatewayConfig, OverflowPolicy};
use hibernating_ws::runner::RunnerConfig;
use hibernating_ws::storage::{FileStore, Store};
use tokio_tungstenite::tungstenite::{Bytes, Message};

async fn runner(server: &GatewayServer, dir: &DataDir, config: RunnerConfig) -> RunnerInstance {
    slow_storage_runner(server, dir, config, Duration::ZERO).await
}

async fn slow_storage_runner(
    server: &GatewayServer,
    dir: &DataDir,
    config: RunnerConfig,
    load_delay: Duration,
) -> RunnerInstance {
    start_runner(RunnerOptions {
        config,
        load_delay,
        ..runner_options(server, dir, "runner-1")
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_close_while_the_actor_sleeps_reaches_the_actor_after_wake_and_deletes_metadata() {
    let (dir, server, rn) = deployed(GatewayConfig::default(), fast_runner()).await;

    let mut client = connect(&server, "sleepy").await;
    let digest = stream(&mut client, 3, 0, 20, 2_000, 0).await;
    assert_eq!(client.wait_echo(20, WAIT).await, Some((20, digest)));

    // The actor sleeps: every socket's index is persisted, the request hibernates.
    server.sleep_actor("sleepy").await;
    let store = FileStore::open(&dir.path).expect("store");
    let file = store.load("sleepy").expect("actor record");
    assert_eq!(
        file.sockets.len(),
        1,
        "hibernated socket's metadata is stored"
    );
    assert_eq!(
        StreamState::decode(&file.sockets[0].state).unwrap().count,
        20
    );
    assert!(ActorState::decode(&file.state).unwrap().finished.is_empty());
    let stats = server.stats();
    assert_eq!(stats.hibernating, 1);

    // The client closes while the actor sleeps: the gateway wakes the actor, which restores the
    // socket and gets the client's own close frame.
    let echoed = client.close(4001, "bye").await;
    let state = committed_result(&dir.path, StorageKind::File, "sleepy", WAIT)
        .await
        .expect("the close reached the actor");
    assert_eq!((state.count, state.digest), (20, digest));
    assert_eq!((state.duplicates, state.gaps), (0, 0));
    let file = store.load("sleepy").expect("actor file");
    assert!(file.sockets.is_empty(), "metadata deleted: {file:?}");

    let (snapshot, runner_closes) =
        eventually("the request to close and its record to go", || async {
            let s = server.snapshot().await;
            let closes = rn.report()?.closes;
            (s.requests == 0 && s.records == 0 && closes.len() == 1).then_some((s, closes))
        })
        .await;
    assert_eq!(
        runner_closes.get("gateway closed (4001 bye)"),
        Some(&1),
        "the actor saw the client's code and reason: {runner_closes:?}"
    );
    assert_eq!(snapshot.starts, 2, "started, slept, woken by the close");
    let stats = server.stats();
    assert_eq!((stats.closed_by_client, stats.wakes), (1, 1));
    assert_eq!(stats.pending_messages, 0);
    let _ = echoed;
}

/// A runner that never persists on its own during the test (huge debounce), so nothing is acked
/// and pending bytes only grow.
fn slow_runner(persist_interval: Duration) -> RunnerConfig {
    RunnerConfig::default()
        .with_persist_interval(persist_interval)
        .with_persist_bytes(u64::MAX / 2)
}

/// A gateway holding at most 64 KiB per connection under `policy`, and a [`slow_runner`]
/// persisting every `persist_interval`.
async fn limited(
    policy: OverflowPolicy,
    persist_interval: Duration,
) -> (DataDir, GatewayServer, RunnerInstance) {
    let mut config = GatewayConfig::default();
    config.max_pending_bytes = 64 * 1024;
    config.overflow_policy = policy;
    deployed(config, slow_runner(persist_interval)).await
}

/// A gateway with `config` and a runner with `runner_config` on a fresh data directory.
async fn deployed(
    config: GatewayConfig,
    runner_config: RunnerConfig,
) -> (DataDir, GatewayServer, RunnerInstance) {
    let dir = DataDir::new(None).expect("temp dir");
    let server = gateway(config).await;
    let runner = runner(&server, &dir, runner_config).await;
    (dir, server, runner)
}

/// Sends `n` messages of 64 bytes of stream `seed`, each echoed before the next; returns the
/// stream's digest.
async fn round_trips(client: &mut Client, seed: u64, n: u64) -> u64 {
    let mut digest = 0;
    for seq in 0..n {
        digest = stream(client, seed, seq, seq + 1, 64, digest).await;
        assert_eq!(
            client.wait_echo(seq + 1, WAIT).await.map(|e| e.0),
            Some(seq + 1)
        );
    }
    digest
}

async fn connect(server: &GatewayServer, actor: &str) -> Client {
    Client::connect(&server.url(), actor)
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_policy_closes_only_the_connection_over_its_limit() {
    let (_dir, server, _runner) = limited(OverflowPolicy::Close, Duration::from_secs(3600)).await;

    // A: 40 messages of 4 KiB, never acked: the 17th exceeds 64 KiB.
    let mut big = connect(&server, "actor-a").await;
    for seq in 0..40u64 {
        let mut data = format!("{seq:010}").into_bytes();
        data.resize(4096, b'x');
        if big.send(data, true).await.is_err() {
            break; // the gateway may close before we are done
        }
    }
    let closed = big.wait_closed(WAIT).await;
    assert_eq!(
        closed,
        Some((1011, "guard.websocket_pending_limit_reached".to_string())),
        "Rivet's close for the pending limit"
    );

    // B, on another actor of the same runner and gateway, keeps working.
    let mut small = connect(&server, "actor-b").await;
    let digest = round_trips(&mut small, 9, 50).await;
    assert_eq!(small.wait_echo(50, WAIT).await, Some((50, digest)));
    let stats = server.stats();
    assert_eq!(stats.closed_pending_limit, 1);
    assert_eq!(stats.requests, 1, "only B is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_policy_stops_reading_only_the_full_connection() {
    // Persist (and ack) only every 300 ms: A fills its 64 KiB long before that.
    let (_dir, server, _runner) =
        limited(OverflowPolicy::Backpressure, Duration::from_millis(300)).await;

    let mut big = connect(&server, "actor-a").await;
    let digest_a = stream(&mut big, 5, 0, 60, 4096, 0).await;
    // A is refused with backpressure at least once: the gateway stopped reading it.
    eventually("A to be backpressured", || async {
        (server.stats().backpressured > 0).then_some(())
    })
    .await;

    // Meanwhile B works, one round trip at a time.
    let mut small = connect(&server, "actor-b").await;
    let digest_b = round_trips(&mut small, 11, 20).await;

    // A was never closed, never over its limit, and completes exactly once as acks free room.
    assert_eq!(big.wait_echo(60, WAIT).await, Some((60, digest_a)));
    assert_eq!(small.wait_echo(20, WAIT).await, Some((20, digest_b)));
    let stats = server.stats();
    assert_eq!(stats.closed, 0, "nobody was closed: {stats:?}");
    assert!(stats.client_writable > 0, "{stats:?}");
    assert_eq!(stats.messages_sent, 80);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_runner_frames_are_typed_errors_and_the_gateway_keeps_serving() {
    let (_dir, server, _runner) = deployed(GatewayConfig::default(), fast_runner()).await;
    let mut client = connect(&server, "steady").await;
    let d = stream(&mut client, 4, 0, 10, 512, 0).await;
    assert_eq!(client.wait_echo(10, WAIT).await, Some((10, d)));

    // A runner with the token (a buggy one, or one whose token leaked) publishes garbage.
    let mut rogue = connect_as_runner(&server).await.expect("rogue connects");
    // Its handshake (one slot: nothing is placed on it).
    let init = hibernating_ws::wire::ToServer::Init(hibernating_ws::wire::ToServerInit {
        name: demo::gateway::RUNNER_POOL.into(),
        version: 1,
        total_slots: 1,
        prepopulate_actor_names: None,
        metadata: None,
    });
    rogue
        .send(Message::Binary(Bytes::from(hibernating_ws::wire::encode(
            &init,
        ))))
        .await
        .expect("init");
    let garbage: [&[u8]; 4] = [
        &[],
        &[0xff, 0xff, 1, 2, 3],
        &[7, 0, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9],
        &[7, 0, 1, 0, 0, 0, 0],
    ];
    for frame in garbage {
        rogue
            .send(Message::Binary(Bytes::copy_from_slice(frame)))
            .await
            .expect("frame");
    }
    let snapshot = eventually("the four frames to be dropped", || async {
        let s = server.snapshot().await;
        (s.receive_errors.values().sum::<u64>() == 4).then_some(s)
    })
    .await;
    assert!(
        snapshot
            .receive_errors
            .keys()
            .all(|e| e.starts_with("malformed frame")),
        "typed errors: {:?}",
        snapshot.receive_errors
    );
    // The control engine decodes the runner's connection: it dropped them.
    let dropped = server.handle().call(|c, _| c.stats().frames_dropped);
    assert_eq!(dropped, Ok(4));

    // The gateway keeps serving the real client.
    let d = stream(&mut client, 4, 10, 30, 512, d).await;
    assert_eq!(client.wait_echo(30, WAIT).await, Some((30, d)));
    let stats = server.stats();
    assert_eq!(stats.closed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_replays_more_buffered_messages_than_the_runner_queues_for_a_starting_actor() {
    // 3 000 small messages buffered while the actor sleeps, replayed on wake while the actor's
    // storage is slow to load: the replay queues in the runner between `actor_starting` and
    // `restore`. With the runner's first default `max_queued_per_actor` (1 024) the rest was
    // dropped and the socket closed on the gap; the default now holds two full windows, and the
    // demo's runner config sizes the byte limit for its larger window.
    let dir = DataDir::new(None).expect("temp dir");
    let server = GatewayServer::start(GatewayOptions::new(
        "127.0.0.1:0".into(),
        GatewayConfig::default(),
        Schedule::default(),
    ))
    .await
    .expect("gateway starts");
    // Slow storage: the replay reaches the runner long before the restore could happen.
    let config = demo::scenario::runner_config(&demo::args::Args::default())
        .with_persist_interval(Duration::from_millis(10));
    let first = slow_storage_runner(&server, &dir, config.clone(), Duration::ZERO).await;
    let mut client = connect(&server, "bulk").await;
    let d = stream(&mut client, 8, 0, 10, 20, 0).await;
    assert_eq!(client.wait_echo(10, WAIT).await, Some((10, d)));
    server.sleep_actor("bulk").await;
    // No runner while the client streams on: the gateway buffers everything, and the actor
    // waits for a runner to start on.
    let _ = first.shutdown().await;
    let d = stream(&mut client, 8, 10, 3_010, 20, d).await;
    eventually("3 000 messages buffered", || async {
        (server.stats().pending_messages >= 3_000).then_some(())
    })
    .await;
    let rn = slow_storage_runner(&server, &dir, config, Duration::from_millis(200)).await;
    assert_eq!(client.wait_echo(3_010, WAIT).await, Some((3_010, d)));
    let stats = server.stats();
    assert_eq!(stats.closed, 0, "no gap close: {stats:?}");
    assert!(stats.messages_replayed >= 1_025, "{stats:?}");
    let runner = rn.report().expect("the runner runs");
    assert_eq!(runner.gaps, 0, "{runner:?}");
}

/// A hostile client over a real socket: it sends small messages as fast as TCP lets it and never
/// reads the actor's echoes. Its outbound queue at the gateway reaches the push-back point and
/// the gateway stops reading it (or closes it with `hws.client_queue_full` past the limits): the
/// queued bytes stay under the configured bound while another client on the same gateway keeps
/// getting every echo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_never_reading_flooder_stays_bounded_and_another_client_keeps_working() {
    use hibernating_ws::driver::tokio::QueueLimits;
    let limits = QueueLimits {
        max_bytes: 256 * 1024,
        max_messages: 4096,
    };
    let dir = DataDir::new(None).expect("temp dir");
    let server = GatewayServer::start(GatewayOptions {
        client_queue: limits,
        ..GatewayOptions::default()
    })
    .await
    .expect("gateway starts");
    let _runner = runner(&server, &dir, fast_runner()).await;

    let url = format!("{}/actors/flood", server.url());
    let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("connect");
    let (mut sink, never_read) = futures_util::StreamExt::split(ws);
    let flood = tokio::spawn(async move {
        let payload = Bytes::from_static(&[0xA5; 10]);
        loop {
            for _ in 0..64 {
                if sink.feed(Message::Binary(payload.clone())).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });

    let mut client = connect(&server, "other").await;
    let filled = eventually(
        "the flooder's queue to reach its push-back point",
        || async {
            let q = server.queue_stats();
            (q.peak_bytes >= limits.max_bytes / 2 || q.messages >= limits.max_messages / 2)
                .then_some(q)
        },
    )
    .await;
    let item = 64 + std::mem::size_of::<hibernating_ws::driver::tokio::ClientOutput>();
    assert!(filled.peak_bytes <= limits.max_bytes + item, "{filled:?}");

    // The other client streams and gets every echo while the flooder sits at its bound.
    let digest = stream(&mut client, 5, 0, 200, 2_000, 0).await;
    assert_eq!(client.wait_echo(200, WAIT).await, Some((200, digest)));
    let q = server.queue_stats();
    assert!(q.peak_bytes <= limits.max_bytes + item, "{q:?}");
    assert!(q.bytes <= limits.max_bytes, "{q:?}");
    assert!(q.messages <= limits.max_messages, "{q:?}");
    flood.abort();
    drop(never_read);
}
