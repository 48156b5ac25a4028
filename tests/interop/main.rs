//! Interop: the official TypeScript runner (`@rivetkit/engine-runner@2.2.1`, pinned in
//! `tests/interop/package-lock.json`) connected to a hibernating-ws engine and gateway on
//! loopback, hosting the echo actor of `tests/interop/runner.mjs`.
//!
//! Scenarios, run at once on one runner, one actor each:
//! * `cycles`: two sockets, 10 sleep/wake cycles, client traffic sent while the actor is asleep;
//! * `wrap`: 70 001 messages across the index wrap (65 535 → 0), with a sleep before the wrap;
//! * `racing`: messages sent right behind a sleep request, reaching the SDK after `onActorStop`;
//! * `closing`: client messages then a client close while the request hibernates;
//! * `forgetful`: the actor lost the socket's record: `ws.meta_not_found_during_restore` reaches
//!   the client;
//! * `idle`: persisted-but-unacked messages replayed to a runner that already has them, then the
//!   client idles past the ack timeout: the socket stays open (the actor re-acks on restore);
//! * `noreack`: the same without the re-ack (negative control): the gateway collects it;
//! * `emptypath`: an open with an empty path, which the SDK drops without a close.
//!
//! Checked: for every socket, what the actor committed (read from the engine's actor KV) and the
//! echoes the client got are exactly what the client sent, in order; close codes and reasons;
//! no malformed frame, no invalid ack, no collected request but the negative control.
//!
//! Needs `node` and `npm ci` in `tests/interop`. With `CI=true` a missing one fails the test;
//! otherwise the test is skipped with a loud message.

#![allow(
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc,
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::too_many_lines,
    missing_docs,
    unreachable_pub
)] // test code on std

#[path = "../common/mod.rs"]
mod common;
mod engine;
#[path = "../common/node_runner.rs"]
mod node;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use engine::{Client, ClientEvent, Engine};
use futures_util::FutureExt;
use hibernating_ws::control::Control;
use hibernating_ws::gateway::{CloseReason, GatewayConfig, GcReason, OpenRequest, Phase};
use hibernating_ws::wire::RequestId;
use hibernating_ws::{CloseFrame, Timestamp};
use serde_json::Value;

/// The gateway's ack timeout in this test: the `idle` client waits longer than this.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// The gateway's open timeout in this test (the `emptypath` open ends with it).
const OPEN_TIMEOUT: Duration = Duration::from_secs(4);
/// Generous bound for one expected event (a hang guard, not a timing assertion).
const EVENT: Duration = Duration::from_secs(20);
/// Most client messages in flight (sent, not yet echoed).
const WINDOW: usize = 1000;

fn req_hex(r: RequestId) -> String {
    hex::encode(r.0)
}

/// One socket's outcome, checked at the end.
struct Outcome {
    actor: &'static str,
    request_id: RequestId,
    /// Every message sent, in order.
    sent: Vec<String>,
    /// Whether the actor must have committed every one of them.
    all_committed: bool,
    /// Kept open until the end (dropping a client's events closes it as gone).
    _client: Client,
}

impl Outcome {
    /// `client` on `actor` sent `sent`, and the actor must have committed every message.
    fn committed(actor: &'static str, client: Client, sent: Vec<String>) -> Self {
        Self {
            actor,
            request_id: client.request_id,
            sent,
            all_committed: true,
            _client: client,
        }
    }

    /// As [`Outcome::committed`], where the actor may have committed only some messages.
    fn uncommitted(actor: &'static str, client: Client, sent: Vec<String>) -> Self {
        Self {
            all_committed: false,
            ..Self::committed(actor, client, sent)
        }
    }
}

async fn open(engine: &Engine, actor: &str, n: u32) -> Client {
    static NEXT: AtomicU32 = AtomicU32::new(0x1000);
    let request_id = RequestId::from_u32(NEXT.fetch_add(1, Ordering::Relaxed));
    let mut client = engine.connect(actor, &format!("/{actor}/{n}"), request_id);
    match client.next(EVENT).await {
        Some(ClientEvent::Opened { hibernatable: true }) => {}
        other => panic!("{actor}: expected a hibernatable open, got {other:?}"),
    }
    client
}

/// Waits for the next echo, skipping the test's view of hibernation.
async fn next_echo(client: &mut Client, what: &str) -> String {
    loop {
        match client.next(EVENT).await {
            Some(ClientEvent::Message { data, .. }) => return String::from_utf8(data).unwrap(),
            Some(ClientEvent::Hibernated) => {}
            other => panic!("{what}: expected an echo, got {other:?}"),
        }
    }
}

/// Sends `msgs` with at most [`WINDOW`] in flight and checks their echoes, in order.
async fn send_all(client: &mut Client, msgs: &[String], what: &str) {
    let mut echoed = 0;
    for (sent, m) in msgs.iter().enumerate() {
        while sent - echoed >= WINDOW {
            let e = next_echo(client, what).await;
            assert_eq!(e, msgs[echoed], "{what}: echo {echoed}");
            echoed += 1;
        }
        client.send(m).await;
    }
    while echoed < msgs.len() {
        let e = next_echo(client, what).await;
        assert_eq!(e, msgs[echoed], "{what}: echo {echoed}");
        echoed += 1;
    }
}

async fn expect_hibernated(client: &mut Client, what: &str) {
    match client.next(EVENT).await {
        Some(ClientEvent::Hibernated) => {}
        other => panic!("{what}: expected hibernation, got {other:?}"),
    }
}

fn phase(engine: &Engine, r: RequestId) -> Option<Phase> {
    engine.phase(r)
}

/// Polls `f` until it holds (hang guard: [`EVENT`]).
async fn until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let every = Duration::from_millis(20);
    common::eventually(what, EVENT, every, || f().map(|done| done.then_some(()))).await;
}

/// Runs `f` on the control engine.
fn call<R: Send + 'static>(
    engine: &Engine,
    f: impl FnOnce(&mut Control, Timestamp) -> R + Send + 'static,
) -> R {
    engine.handle.call(f).expect("engine running")
}

fn batch(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Each client, in turn, sends `n` messages named `{prefix}{name}{cycle}-…` and records them.
async fn send_batches(
    clients: [(&mut Client, &mut Vec<String>, &str); 2],
    prefix: &str,
    cycle: u32,
    n: usize,
) {
    for (client, sent, name) in clients {
        let msgs = batch(&format!("{prefix}{name}{cycle}"), n);
        send_all(client, &msgs, &format!("cycles {prefix}{name}")).await;
        sent.extend(msgs);
    }
}

/// 10 sleep/wake cycles of an actor with two sockets; each cycle the clients talk, the actor asks
/// to sleep, both requests hibernate, and the clients send while it is asleep (which wakes it).
async fn cycles(engine: Engine) -> Vec<Outcome> {
    let mut a = open(&engine, "cycles", 1).await;
    let mut b = open(&engine, "cycles", 2).await;
    let (mut sent_a, mut sent_b) = (Vec::new(), Vec::new());
    for cycle in 0..10 {
        let both = [(&mut a, &mut sent_a, "a"), (&mut b, &mut sent_b, "b")];
        send_batches(both, "", cycle, 20).await;
        let sleep = vec!["!sleep".to_string()];
        send_all(&mut a, &sleep, "cycles a sleep").await;
        sent_a.extend(sleep);
        expect_hibernated(&mut a, "cycles a").await;
        expect_hibernated(&mut b, "cycles b").await;
        assert_eq!(phase(&engine, a.request_id), Some(Phase::Hibernating));
        assert_eq!(phase(&engine, b.request_id), Some(Phase::Hibernating));
        // Traffic while asleep: buffered by the gateway, which asks for the actor.
        let both = [(&mut a, &mut sent_a, "a"), (&mut b, &mut sent_b, "b")];
        send_batches(both, "asleep-", cycle, 5).await;
    }
    vec![
        Outcome::committed("cycles", a, sent_a),
        Outcome::committed("cycles", b, sent_b),
    ]
}

/// 70 001 messages on one socket; the actor sleeps at 60 000 and the wrap happens after the wake.
async fn wrap(engine: Engine) -> Vec<Outcome> {
    let mut w = open(&engine, "wrap", 1).await;
    let mut sent = batch("w", 60_000);
    send_all(&mut w, &sent, "wrap").await;
    let sleep = vec!["!sleep".to_string()];
    send_all(&mut w, &sleep, "wrap sleep").await;
    sent.extend(sleep);
    expect_hibernated(&mut w, "wrap").await;
    let rest = batch("v", 10_000);
    send_all(&mut w, &rest, "wrap rest").await;
    sent.extend(rest);
    assert!(sent.len() >= 70_000);
    let r = w.request_id;
    let next = call(&engine, move |c, _| {
        c.gateway().request(r).map(|i| i.next_index.get())
    });
    // Open took index 0, so the last message has index 70 001 mod 65 536.
    assert_eq!(
        next,
        Some((sent.len() as u32 + 1).rem_euclid(65_536) as u16),
        "the index wrapped"
    );
    vec![Outcome::committed("wrap", w, sent)]
}

/// Messages sent right behind the sleep request reach the SDK during or after `onActorStop`; the
/// actor ignores them, the gateway replays them to the next instance.
async fn racing(engine: Engine) -> Vec<Outcome> {
    let mut r = open(&engine, "racing", 1).await;
    let mut sent = Vec::new();
    for cycle in 0..5 {
        let mut msgs = batch(&format!("r{cycle}"), 10);
        msgs.push("!sleep".into());
        msgs.extend(batch(&format!("behind{cycle}"), 20));
        send_all(&mut r, &msgs, "racing").await;
        sent.extend(msgs);
    }
    vec![Outcome::committed("racing", r, sent)]
}

/// The client sends and then closes while its request hibernates: the actor is woken, gets every
/// message, then the client's own close code and reason.
/// Runner messages the gateway dropped: for requests it no longer has, or to a client that
/// closed while its close waits for acks.
fn dropped(gw: &hibernating_ws::gateway::GatewayStats) -> u64 {
    gw.dropped_unknown_request + gw.messages_to_closed_client
}

async fn closing(engine: Engine) -> Vec<Outcome> {
    let mut c = open(&engine, "closing", 1).await;
    let mut sent = batch("c", 20);
    sent.push("!sleep".into());
    send_all(&mut c, &sent, "closing").await;
    expect_hibernated(&mut c, "closing").await;
    let r = c.request_id;
    let burst = batch("asleep-c", 5);
    sent.extend(burst.clone());
    // Atomic with respect to the runner: the request is hibernating for all six calls.
    let phases = call(&engine, move |c, now| {
        let before = c.gateway().request(r).map(|i| i.phase);
        for m in &burst {
            c.client_message(now, r, m.as_bytes(), false)
                .expect("buffered");
        }
        c.client_close(now, r, Some(CloseFrame::new(4001, "bye while hibernating")))
            .expect("live");
        (before, c.gateway().request(r).map(|i| i.phase))
    });
    assert_eq!(phases, (Some(Phase::Hibernating), Some(Phase::Hibernating)));
    loop {
        match c.next(EVENT).await {
            Some(ClientEvent::Closed(reason)) => {
                assert_eq!(
                    reason,
                    CloseReason::ClientClosed(CloseFrame::new(4001, "bye while hibernating"))
                );
                break;
            }
            Some(ClientEvent::Message { .. }) => {} // echoes to a client that is gone
            other => panic!("closing: expected the request to close, got {other:?}"),
        }
    }
    vec![Outcome::committed("closing", c, sent)]
}

/// The actor loses the socket's record; on the next start the SDK closes it with
/// `ws.meta_not_found_during_restore`, which reaches the client.
async fn forgetful(engine: Engine) -> Vec<Outcome> {
    let mut f = open(&engine, "forgetful", 1).await;
    let mut sent = batch("f", 10);
    sent.push("!forget".into());
    sent.push("!sleep".into());
    send_all(&mut f, &sent, "forgetful").await;
    let frame = loop {
        match f.next(EVENT).await {
            Some(ClientEvent::Close(frame)) => break frame,
            Some(ClientEvent::Hibernated) => {}
            other => panic!("forgetful: expected a close, got {other:?}"),
        }
    };
    assert_eq!(
        frame,
        CloseFrame::new(1000, "ws.meta_not_found_during_restore")
    );
    // Outputs come before life-cycle events (see `Client::next`), so the hibernation before the
    // wake may still be queued behind the close.
    loop {
        match f.next(EVENT).await {
            Some(ClientEvent::Hibernated) => {}
            Some(ClientEvent::Closed(CloseReason::RunnerClosed(f))) => {
                assert_eq!(f, frame);
                break;
            }
            other => panic!("forgetful: expected RunnerClosed, got {other:?}"),
        }
    }
    vec![Outcome::uncommitted("forgetful", f, sent)]
}

/// Messages persisted but never acked are replayed to a runner that already has them; the SDK
/// drops them without an ack. With the actor's re-ack on restore the idle client stays open past
/// the ack timeout; without it (`reack == false`) the gateway collects the request.
async fn idle(engine: Engine, actor: &'static str, reack: bool) -> Vec<Outcome> {
    let mut i = open(&engine, actor, 1).await;
    let mut sent = batch(actor, 10);
    if !reack {
        sent.push("!noreack".into());
    }
    sent.push("!noack".into());
    sent.extend(batch(&format!("{actor}-unacked"), 10));
    sent.push("!sleep".into());
    send_all(&mut i, &sent, actor).await;
    expect_hibernated(&mut i, actor).await;
    // Pending messages wake it at once: replay, duplicates dropped by the SDK.
    let r = i.request_id;
    until("the replay", || async {
        engine.phase(r) == Some(Phase::Active)
    })
    .await;
    if reack {
        // Idle past the ack timeout: nothing comes, the socket stays open.
        assert_eq!(
            i.next(ACK_TIMEOUT + Duration::from_millis(1500)).await,
            None
        );
        let pending = call(&engine, move |c, _| {
            c.gateway().request(r).map(|i| i.pending_messages)
        });
        assert_eq!(pending, Some(0), "{actor}: the re-ack released the replay");
        let last = vec![format!("{actor}-after-idle")];
        send_all(&mut i, &last, actor).await;
        sent.extend(last);
    } else {
        match i.next(EVENT).await {
            Some(ClientEvent::Close(frame)) => {
                assert_eq!(
                    frame,
                    CloseFrame::new(1011, "guard.websocket_garbage_collected")
                );
            }
            other => panic!("{actor}: expected the collection, got {other:?}"),
        }
        match i.next(EVENT).await {
            Some(ClientEvent::Closed(CloseReason::Collected(GcReason::AckTimeout { .. }))) => {}
            other => panic!("{actor}: expected an ack-timeout collection, got {other:?}"),
        }
    }
    vec![Outcome::committed(actor, i, sent)]
}

/// An open whose path does not start with `/`: the SDK fails it before it maps the request to
/// the actor, so the close it sends never leaves the runner; the gateway's open timeout ends it.
async fn empty_path(engine: Engine) -> Vec<Outcome> {
    static NEXT: AtomicU32 = AtomicU32::new(0x9000);
    let request_id = RequestId::from_u32(NEXT.fetch_add(1, Ordering::Relaxed));
    let refused = OpenRequest::new("emptypath", "").expect_err("an empty path is refused");
    assert_eq!(refused.path, "");
    let mut e = engine.connect("emptypath", "", request_id);
    match e.next(EVENT).await {
        Some(ClientEvent::Close(frame)) => {
            assert_eq!(frame, CloseFrame::new(1011, "guard.websocket_open_timeout"));
        }
        other => panic!("emptypath: expected the open timeout, got {other:?}"),
    }
    match e.next(EVENT).await {
        Some(ClientEvent::Closed(CloseReason::OpenTimeout)) => {}
        other => panic!("emptypath: expected OpenTimeout, got {other:?}"),
    }
    Vec::new()
}

/// Reads the actor's committed log of one socket from its KV.
fn committed(engine: &Engine, o: &Outcome) -> Vec<String> {
    let (actor, prefix) = (o.actor, format!("log/{}/", req_hex(o.request_id)));
    let chunks = engine.kv_prefix(actor, &prefix);
    chunks
        .into_iter()
        .flat_map(|(_, v)| serde_json::from_slice::<Vec<String>>(&v).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_typescript_runner_against_hibernating_ws() {
    if !node::ready("tests/interop") {
        return;
    }
    let mut config = GatewayConfig::default();
    config.ack_timeout = ACK_TIMEOUT;
    config.open_timeout = OPEN_TIMEOUT;
    let actors = [
        "cycles",
        "wrap",
        "racing",
        "closing",
        "forgetful",
        "idle",
        "noreack",
        "emptypath",
    ];
    let engine = Engine::start(config, &actors).await;
    let node = node::NodeRunner::spawn(&engine.endpoint);
    until("the runner to connect", || async {
        engine.events().runners_connected > 0
    })
    .await;

    let e = || engine.clone();
    let (c1, c2, c3, c4, c5, c6, c7, c8) = tokio::join!(
        cycles(e()),
        wrap(e()),
        racing(e()),
        closing(e()),
        forgetful(e()),
        idle(e(), "idle", true),
        idle(e(), "noreack", false),
        empty_path(e()),
    );
    let outcomes: Vec<Outcome> = [c1, c2, c3, c4, c5, c6, c7, c8]
        .into_iter()
        .flatten()
        .collect();

    // The client's close reached the woken actor with its code and reason.
    let closing = outcomes.iter().find(|o| o.actor == "closing").unwrap();
    let key = format!("closed/{}", req_hex(closing.request_id));
    until("the actor to see the client's close", || async {
        !engine.kv_prefix("closing", &key).is_empty()
    })
    .await;
    let closed: Value = serde_json::from_slice(&engine.kv_prefix("closing", &key)[0].1).unwrap();
    assert_eq!(closed["code"], 4001);
    assert_eq!(closed["reason"], "bye while hibernating");

    // Close every socket still open; the actor records each close and deletes each record.
    let open_ones: Vec<_> = outcomes
        .iter()
        .filter(|o| !matches!(o.actor, "closing" | "forgetful" | "noreack"))
        .map(|o| o.request_id)
        .collect();
    for &r in &open_ones {
        call(&engine, move |c, now| {
            c.client_close(now, r, Some(CloseFrame::new(1000, "done")))
        })
        .unwrap_or_else(|e| {
            let phase = outcomes.iter().find(|o| o.request_id == r).map(|o| o.actor);
            panic!("{phase:?} {r:?}: {e}")
        });
    }
    for o in outcomes
        .iter()
        .filter(|o| open_ones.contains(&o.request_id))
    {
        let key = format!("closed/{}", req_hex(o.request_id));
        until("the actor to see the close", || async {
            !engine.kv_prefix(o.actor, &key).is_empty()
        })
        .await;
    }

    // Exactly once, in order, durable: what each actor committed is what its client sent.
    for o in &outcomes {
        let log = committed(&engine, o);
        if o.all_committed {
            assert_eq!(log.len(), o.sent.len(), "{}: committed count", o.actor);
            assert!(
                log == o.sent,
                "{}: the committed log differs from what was sent",
                o.actor
            );
        } else {
            assert!(
                o.sent.starts_with(&log),
                "{}: the committed log is a prefix",
                o.actor
            );
        }
        let record = engine.kv_prefix(o.actor, &format!("hws/{}", req_hex(o.request_id)));
        assert!(
            record.is_empty(),
            "{}: the record is deleted on close",
            o.actor
        );
    }

    // Runner messages the gateway drops: for requests it already removed, the runner's echo of
    // every close the gateway sent it (the client closes and the collected request) and acks on
    // their way when a client closed; for the `closing` request, whose client close waits for
    // the acks of the 5 messages replayed to the actor after its client left, the echoes of those
    // 5 (dropped as messages to a closed client while the close is held).
    let echoes = open_ones.len() as u64 + 2;
    let deterministic = echoes + 5;
    until("the runner's close echoes", || async {
        call(&engine, |c, _| dropped(&c.gateway().stats())) >= deterministic
    })
    .await;

    let (control, gw) = call(&engine, |c, _| (c.stats(), c.gateway().stats()));
    let events = engine.events();
    let report = format!("control: {control:#?}\ngateway: {gw:#?}\nevents: {events:#?}");
    let unknown = gw.dropped_unknown_request;
    assert!(
        (deterministic..=deterministic + 1 + outcomes.len() as u64).contains(&dropped(&gw)),
        "{report}"
    );
    // The `closing` request's close waits for acks; a client that closes right after its last
    // message may wait too.
    assert!(
        (1..=outcomes.len() as u64).contains(&gw.client_closes_held),
        "{report}"
    );
    // Nothing else was dropped: no malformed frame, no other refusal.
    assert_eq!(control.frames_dropped, unknown, "{report}");
    assert_eq!(gw.dropped_malformed, 0, "{report}");
    assert_eq!(
        gw.dropped_wrong_gateway + gw.dropped_wrong_route,
        0,
        "{report}"
    );
    assert_eq!(
        gw.dropped_invalid_for_phase + gw.dropped_unsupported,
        0,
        "{report}"
    );
    assert_eq!(gw.acks_invalid, 0, "{report}");
    assert_eq!(events.kv_errors, 0, "{report}");
    // Only the negative control is collected.
    assert_eq!(gw.collected_ack_timeout, 1, "{report}");
    assert_eq!(
        gw.collected_hibernation_timeout + gw.collected_wake_timeout,
        0,
        "{report}"
    );
    assert_eq!(
        gw.closed_pending_limit + gw.ping_timeouts + gw.open_timeouts,
        1,
        "the empty path\n{report}"
    );
    // The SDK reports every stop, sleeps included, as StopCode::Error; the engine took each one
    // as the sleep it asked for.
    assert_eq!(events.stopped_ok + events.stopped_other, 0, "{report}");
    assert_eq!(events.stopped_error, control.stops, "{report}");
    assert!(control.stops >= 10 + 1 + 5 + 1 + 1 + 2, "{report}");
    assert!(gw.wakes >= 10, "{report}");
    assert!(gw.messages_replayed > 0, "{report}");
    assert_eq!(
        (control.events_duplicate, control.event_gaps),
        (0, 0),
        "{report}"
    );
    // The replay to the runner that had persisted them: duplicates dropped by the SDK, re-acked.
    let duplicates = node.count("msg", "received duplicate hibernating websocket message");
    assert!(duplicates >= 2 * 10, "{report}");
    assert!(node.count("app", "reacked") > 0, "{report}");
    // The empty-path open: the SDK failed it and dropped its own close.
    assert!(
        node.count("msg", "error handling websocket open") >= 1,
        "{report}"
    );
    assert!(
        node.count("msg", "cannot send tunnel message, actor not found") >= 1,
        "{report}"
    );
    eprintln!(
        "interop: {} messages sent, {} wakes, {} replayed, {} ignored after onActorStop",
        outcomes.iter().map(|o| o.sent.len()).sum::<usize>(),
        gw.wakes,
        gw.messages_replayed,
        node.find("app", "ignored_after_stop").len()
    );

    engine.handle.shutdown();
    drop(node);
}
