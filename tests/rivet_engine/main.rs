//! The official Rivet engine (`rivet-engine` 2.3.19, pinned in `tests/rivet_engine/`) with runners
//! behind it: the engine runs on free loopback ports with its storage in a temporary directory,
//! actors are created through its HTTP API and clients talk to them through its gateway.
//!
//! * `typescript_runner_behind_official_engine`: the official TypeScript runner of
//!   `tests/interop` (`runner.mjs`) proves the harness: sleep/wake cycles with traffic while
//!   asleep and a client close while asleep; what the actor committed (read from the engine's
//!   actor KV) is exactly what the client sent.
//!
//! Needs `npm ci` in `tests/rivet_engine` (the engine binary) and in `tests/interop` (the
//! TypeScript runner). With `CI=true` a missing one fails the test; otherwise it is skipped with a
//! loud message.

#![allow(
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc,
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::too_many_lines,
    missing_docs,
    unreachable_pub,
    dead_code
)] // test code on std

mod client;
mod engine;
mod node;

use std::time::Duration;

use client::{EVENT, Seen, batch};
use engine::RivetEngine;
use node::NodeRunner;

/// Polls `f` until it holds (hang guard: [`EVENT`]).
async fn until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + EVENT;
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The committed log of one socket of the TypeScript runner's actor, from the engine's KV.
async fn ts_committed(engine: &RivetEngine, actor: &str, req: &str) -> Vec<String> {
    let mut log = Vec::new();
    for seq in 0.. {
        let key = format!("log/{req}/{seq:010}");
        let Some(chunk) = engine.kv_get(actor, &key).await else {
            break;
        };
        log.extend(serde_json::from_slice::<Vec<String>>(&chunk).unwrap());
    }
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_runner_behind_official_engine() {
    if !engine::ready() || !node::ready() {
        return;
    }
    let engine = RivetEngine::start().await;
    let node = NodeRunner::spawn(&engine.endpoint());
    until("the runner to connect", || async {
        node.count("app", "connected") > 0
    })
    .await;
    let actor = engine
        .create_actor("proof", "proof-1", node::RUNNER_NAME)
        .await;
    until("the actor to start", || async {
        node.find("app", "started")
            .iter()
            .any(|l| l["actor"] == actor.as_str())
    })
    .await;

    let mut c = engine.connect(&actor, "/ws").await;
    let mut sent = Vec::new();
    for cycle in 0..3 {
        let mut msgs = batch(&format!("m{cycle}"), 20);
        msgs.push("!sleep".into());
        c.send_all(&msgs, "proof").await;
        sent.extend(msgs);
        until("the actor to stop", || async {
            node.find("app", "stopped").len() > cycle
        })
        .await;
        // Traffic while asleep wakes the actor; the socket stayed open.
        let asleep = batch(&format!("asleep{cycle}"), 5);
        c.send_all(&asleep, "proof asleep").await;
        sent.extend(asleep);
    }
    let last = vec!["!sleep".to_string()];
    c.send_all(&last, "proof last sleep").await;
    sent.extend(last);
    until("the actor to stop", || async {
        node.find("app", "stopped").len() > 3
    })
    .await;
    // A client close while the actor sleeps: the engine answers the client and drops the
    // hibernating request without waking the actor; the actor learns it at its next start (here
    // woken by a second socket), when the request is missing from the start's hibernating list.
    c.close(4001, "bye while asleep").await;
    let seen = c.next(EVENT).await;
    assert_eq!(
        seen,
        Some(Seen::Close(Some((4001, "bye while asleep".into()))))
    );
    let opened = node.find("app", "opened");
    assert_eq!(opened.len(), 1, "one socket opened: {opened:?}");
    let req = opened[0]["req"].as_str().unwrap().to_string();
    let key = format!("closed/{req}");
    let mut waker = engine.connect(&actor, "/waker").await;
    waker.send_all(&batch("waker", 1), "waker").await;
    until("the actor to see the client's close", || async {
        engine.kv_get(&actor, &key).await.is_some()
    })
    .await;
    let closed: serde_json::Value =
        serde_json::from_slice(&engine.kv_get(&actor, &key).await.unwrap()).unwrap();
    assert_eq!(closed["code"], 1000, "{closed}");
    assert_eq!(closed["reason"], "ws.stale_metadata", "{closed}");

    let log = ts_committed(&engine, &actor, &req).await;
    assert_eq!(log.len(), sent.len(), "committed count");
    assert!(log == sent, "the committed log differs from what was sent");
    assert!(
        node.find("app", "restoring").len() >= 4,
        "every wake restored the socket"
    );
    drop(node);
}
