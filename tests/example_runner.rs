//! `examples/runner.rs`, run in process against hws's engine side over loopback WebSockets:
//! sleeps and wakes (asked for by the client's `!sleep`), a crash of the runner (its task
//! aborted: the socket and the session drop at once) and a restart on the same storage. The
//! store's count and digest must equal what the client sent, each message once, in order.

#![allow(
    clippy::unwrap_used,
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc
)]

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/runner.rs"]
mod example;
mod session_support;

use core::time::Duration;

use hibernating_ws::control::ControlConfig;
use hibernating_ws::gateway::GatewayConfig;
use hibernating_ws::storage::{FileStore, Store};
use hibernating_ws::wire::RequestId;
use session_support::engine::{Client, ClientEvent, Engine, POOL};

/// The example's digest of `messages`.
fn digest(messages: &[String]) -> u64 {
    messages.iter().fold(0xcbf2_9ce4_8422_2325, |h, m| {
        m.bytes()
            .fold(h, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
    })
}

/// Starts the example with runner key `key` on `data`; abort the task to crash it.
fn start(engine: &Engine, data: &std::path::Path, key: &str) -> tokio::task::JoinHandle<()> {
    let args = [
        "--endpoint",
        &engine.endpoint,
        "--runner-name",
        POOL,
        "--runner-key",
        key,
        "--data",
        data.to_str().unwrap(),
    ];
    let args = example::parse(args.into_iter().map(String::from)).unwrap();
    tokio::spawn(async move {
        example::run(args, std::future::pending()).await.unwrap();
    })
}

/// Sends `text` and records it.
async fn send(client: &mut Client, sent: &mut Vec<String>, text: String) {
    client.send(&text).await;
    sent.push(text);
}

/// Sends `!sleep` and waits until the request hibernated (echoes before it are skipped).
async fn sleep(client: &mut Client, sent: &mut Vec<String>) {
    send(client, sent, "!sleep".into()).await;
    loop {
        match client.next().await {
            ClientEvent::Hibernated => return,
            ClientEvent::Message { .. } => {}
            other => panic!("expected the hibernation, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_runner_survives_sleep_wake_and_a_crash() {
    let data = std::env::temp_dir().join(format!("hws-example-runner-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let mut control = ControlConfig::default();
    control.runner_lost_threshold = Duration::from_millis(500);
    let engine = Engine::start(GatewayConfig::default(), control, &["a1"]).await;
    let runner = start(&engine, &data, "first");
    let mut client = engine.open("a1", RequestId(*b"req1")).await;
    let mut sent = Vec::new();

    // Traffic, then three sleeps with traffic while asleep (each wakes the actor again).
    for round in 0..3 {
        for i in 0..10 {
            send(&mut client, &mut sent, format!("r{round}-{i}")).await;
            assert_eq!(client.next_message().await, format!("r{round}-{i}"));
        }
        sleep(&mut client, &mut sent).await;
        for i in 0..5 {
            send(&mut client, &mut sent, format!("r{round}-asleep-{i}")).await;
        }
        for i in 0..5 {
            assert_eq!(client.next_message().await, format!("r{round}-asleep-{i}"));
        }
    }

    // The runner crashes mid-traffic; the client keeps sending. A new process (a new key, the
    // same storage) takes the actor over once the engine declares the old runner lost.
    for i in 0..5 {
        send(&mut client, &mut sent, format!("before-crash-{i}")).await;
    }
    runner.abort();
    let _ = runner.await;
    for i in 0..5 {
        send(&mut client, &mut sent, format!("during-crash-{i}")).await;
    }
    let runner = start(&engine, &data, "second");
    for i in 0..5 {
        send(&mut client, &mut sent, format!("after-crash-{i}")).await;
    }
    // Whatever was echoed before the crash, the last echo comes from the new runner.
    loop {
        match client.next().await {
            ClientEvent::Message { data, .. } if data == b"after-crash-4" => break,
            ClientEvent::Message { .. } | ClientEvent::Hibernated => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    // A last sleep persists everything: the store holds every message once, in order.
    sleep(&mut client, &mut sent).await;
    let store = FileStore::open(&data).unwrap();
    let record = store.load("a1").unwrap();
    assert_eq!(record.sockets.len(), 1);
    let state = &record.sockets[0].state;
    let count = u64::from_le_bytes(state[..8].try_into().unwrap());
    let stored_digest = u64::from_le_bytes(state[8..16].try_into().unwrap());
    assert_eq!(count, sent.len() as u64);
    assert_eq!(stored_digest, digest(&sent));
    runner.abort();
    let _ = std::fs::remove_dir_all(&data);
}
