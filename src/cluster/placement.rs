//! The shared-state side of a [`Node`](super::Node): its state worker (placements, records,
//! runner registry, retried while the broker is away), the placement watch and liveness.

use alloc::string::{String, ToString as _};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use core::time::Duration;

use ::tokio::sync::mpsc;
use futures_util::StreamExt as _;

use super::node::{
    MAX_STATE_ATTEMPTS, PLACE_RETRY, Shared, StateOut, bump, ensure_actor, remote_route,
};
use super::state::{Claim, Placement, PlacementState, RunnerEntry, decode_placement};
use crate::control::ActorPhase;
use crate::driver::control::ControlHandle;

/// Attempts to read an actor's records before a start here is given up.
const RECORD_ATTEMPTS: u32 = 10;

pub(super) async fn state_worker(
    shared: Arc<Shared>,
    handle: ControlHandle,
    mut rx: mpsc::Receiver<(StateOut, u32)>,
) {
    while let Some((out, attempts)) = rx.recv().await {
        let again = out.clone();
        let ok = match out {
            StateOut::Place(actor_id) => place(&shared, &handle, &actor_id).await,
            StateOut::Record {
                actor_id,
                request,
                live,
            } => shared
                .state
                .record(&actor_id, shared.gateway_id, request, live)
                .await
                .is_ok(),
            StateOut::Running {
                actor_id,
                generation,
                runner_id,
            } => {
                let expect = Placement {
                    state: PlacementState::Starting,
                    node: shared.node_id.clone(),
                    runner_id,
                    generation,
                };
                shared
                    .state
                    .transition(&actor_id, &expect, PlacementState::Running)
                    .await
                    .is_ok()
            }
            StateOut::Stopped {
                actor_id,
                generation,
            } => {
                let expect = Placement {
                    state: PlacementState::Running,
                    node: shared.node_id.clone(),
                    runner_id: String::new(),
                    generation,
                };
                shared
                    .state
                    .transition(&actor_id, &expect, PlacementState::Sleeping)
                    .await
                    .is_ok()
            }
            StateOut::RunnerUp(runner_id) => {
                let info = handle.call({
                    let id = runner_id.clone();
                    move |c, _| c.runner(&id)
                });
                match info {
                    Ok(Some(info)) => {
                        let entry = RunnerEntry {
                            node: shared.node_id.clone(),
                            name: info.name,
                            slots: info.total_slots,
                        };
                        shared
                            .state
                            .register_runner(&runner_id, &entry)
                            .await
                            .is_ok()
                    }
                    _ => true,
                }
            }
            StateOut::RunnerLost(runner_id) => shared.state.remove_runner(&runner_id).await.is_ok(),
        };
        if !ok {
            bump(&shared.stats.state_errors);
            // The broker is away (a restart): try again later, in a bounded number of attempts.
            if attempts < MAX_STATE_ATTEMPTS && !matches!(again, StateOut::Place(_)) {
                let tx = shared.state_tx.clone();
                ::tokio::spawn(async move {
                    ::tokio::time::sleep(PLACE_RETRY).await;
                    let _ = tx.send((again, attempts + 1)).await;
                });
            }
        }
    }
}

/// Writes and deletes the local gateway's hibernating records, in order, each retried while
/// the broker is away (a start elsewhere lists what is written by then).
pub(super) async fn record_worker(shared: Arc<Shared>, mut rx: mpsc::Receiver<StateOut>) {
    while let Some(out) = rx.recv().await {
        let StateOut::Record {
            actor_id,
            request,
            live,
        } = out
        else {
            continue;
        };
        for _ in 0..MAX_STATE_ATTEMPTS {
            let written = shared
                .state
                .record(&actor_id, shared.gateway_id, request, live)
                .await;
            if written.is_ok() {
                break;
            }
            bump(&shared.stats.state_errors);
            ::tokio::time::sleep(PLACE_RETRY).await;
        }
    }
}

/// The actor must run: follow a placement that stands, or claim a runner for it.
async fn place(shared: &Arc<Shared>, handle: &ControlHandle, actor_id: &str) -> bool {
    let phase = handle.call({
        let id = actor_id.to_string();
        move |c, _| c.actor(&id).map(|a| a.phase)
    });
    if phase != Ok(Some(ActorPhase::Pending)) {
        // Nothing here waits for it any more.
        return true;
    }
    let Ok(current) = shared.state.placement(actor_id).await else {
        retry_place(shared, actor_id);
        return false;
    };
    if let Some((p, _)) = &current
        && p.state != PlacementState::Sleeping
    {
        follow(shared, handle, actor_id, p);
        return true;
    }
    let Some(runner) = pick_runner(shared, actor_id, current.map(|(p, _)| p.generation)).await
    else {
        retry_place(shared, actor_id);
        return true;
    };
    match shared
        .state
        .claim(actor_id, &runner.1.node, &runner.0)
        .await
    {
        Ok(Claim::Won { generation }) if runner.1.node == shared.node_id => {
            start_here(shared, handle, actor_id, &runner.0, generation).await;
            true
        }
        // The runner's node starts it when its watch sees the claim.
        Ok(Claim::Won { .. }) => true,
        Ok(Claim::Taken(p)) => {
            follow(shared, handle, actor_id, &p);
            true
        }
        Err(_) => {
            retry_place(shared, actor_id);
            false
        }
    }
}

/// Asks for the placement again a little later.
fn retry_place(shared: &Arc<Shared>, actor_id: &str) {
    let tx = shared.state_tx.clone();
    let actor_id = actor_id.to_string();
    ::tokio::spawn(async move {
        ::tokio::time::sleep(PLACE_RETRY).await;
        let _ = tx.send((StateOut::Place(actor_id), 0)).await;
    });
}

/// A registered runner of a live node: the actor's generation picks among them, so an actor
/// that wakes usually wakes on another runner than before.
async fn pick_runner(
    shared: &Shared,
    actor_id: &str,
    last_generation: Option<u32>,
) -> Option<(String, RunnerEntry)> {
    let live = shared.state.live_nodes().await.ok()?;
    let runners: Vec<_> = shared
        .state
        .runners()
        .await
        .ok()?
        .into_iter()
        .filter(|(_, r)| live.contains(&r.node) && r.name == shared.runner_name)
        .collect();
    if runners.is_empty() {
        return None;
    }
    let hash = actor_id
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let next = last_generation.map_or(0, |g| g.wrapping_add(1));
    let i = (hash.wrapping_add(next) as usize) % runners.len();
    runners.into_iter().nth(i)
}

/// Follows a standing placement: a running actor elsewhere gets its route.
fn follow(shared: &Arc<Shared>, handle: &ControlHandle, actor_id: &str, p: &Placement) {
    if p.state != PlacementState::Running || p.node == shared.node_id {
        return;
    }
    let shared2 = Arc::clone(shared);
    let (actor_id, node, runner_id, generation) = (
        actor_id.to_string(),
        p.node.clone(),
        p.runner_id.clone(),
        p.generation,
    );
    let name = shared.runner_name.clone();
    let _ = handle.call(move |c, now| {
        ensure_actor(c, now, &actor_id, &name);
        if let Ok(route) = remote_route(&shared2, c, &node, &runner_id) {
            let _ = c.running_elsewhere(now, &actor_id, route, generation);
        }
    });
}

/// This node won a claim for its runner: start the actor here with every gateway's records;
/// if the runner cannot take it, give the claim back.
async fn start_here(
    shared: &Arc<Shared>,
    handle: &ControlHandle,
    actor_id: &str,
    runner_id: &str,
    generation: u32,
) {
    // Started without every record, the runner would close the missing sockets as not found:
    // a broker away now gives the claim back (the actor is placed again) instead.
    let mut records = None;
    for _ in 0..RECORD_ATTEMPTS {
        if let Ok(list) = shared.state.records(actor_id).await {
            records = Some(list);
            break;
        }
        bump(&shared.stats.state_errors);
        ::tokio::time::sleep(PLACE_RETRY).await;
    }
    let name = shared.runner_name.clone();
    let result = records.ok_or(()).and_then(|records| {
        handle
            .call({
                let (actor_id, runner_id) = (actor_id.to_string(), runner_id.to_string());
                move |c, now| {
                    ensure_actor(c, now, &actor_id, &name);
                    // The state worker (after its claim) and the watch (seeing that claim)
                    // both start it: the second finds it started and must not give the
                    // claim back (that stopped the actor it had just started).
                    if started_at(c, &actor_id, generation) {
                        return Ok(());
                    }
                    c.place_here(now, &actor_id, &runner_id, generation, &records)
                }
            })
            .map_err(drop)
    });
    if let Ok(Ok(())) = result {
        bump(&shared.stats.placed_here);
    } else {
        {
            let expect = Placement {
                state: PlacementState::Starting,
                node: shared.node_id.clone(),
                runner_id: runner_id.to_string(),
                generation,
            };
            let _ = shared
                .state
                .transition(actor_id, &expect, PlacementState::Sleeping)
                .await;
        }
    }
}

/// Whether the actor was started at `generation` (and not stopped since) by this engine.
fn started_at(c: &crate::control::Control, actor_id: &str, generation: u32) -> bool {
    c.actor(actor_id).is_some_and(|a| {
        a.generation == Some(generation)
            && !matches!(a.phase, ActorPhase::Sleeping | ActorPhase::Pending)
    })
}

pub(super) async fn watcher(shared: Arc<Shared>, handle: ControlHandle) {
    let stats = shared.client.statistics();
    loop {
        let connects = stats.connects.load(Ordering::Relaxed);
        if let Ok(mut watch) = shared.state.watch_placements().await {
            let mut tick = ::tokio::time::interval(PLACE_RETRY);
            loop {
                ::tokio::select! {
                    entry = watch.next() => {
                        let Some(Ok(entry)) = entry else { break };
                        if let Some(p) = decode_placement(&entry) {
                            on_placement(&shared, &handle, &entry.key, p).await;
                        }
                    }
                    _ = tick.tick() => {
                        // The client reconnected (a broker restart): a watch may have missed
                        // changes or stalled, so watch again from the current values.
                        if stats.connects.load(Ordering::Relaxed) != connects {
                            break;
                        }
                    }
                }
            }
        }
        ::tokio::time::sleep(PLACE_RETRY).await;
    }
}

async fn on_placement(shared: &Arc<Shared>, handle: &ControlHandle, actor_id: &str, p: Placement) {
    match p.state {
        PlacementState::Starting if p.node == shared.node_id => {
            let started = handle.call({
                let (id, generation) = (actor_id.to_string(), p.generation);
                move |c, _| started_at(c, &id, generation)
            });
            // Already started here at this generation (a replayed watch entry): nothing to do.
            if started != Ok(true) {
                start_here(shared, handle, actor_id, &p.runner_id, p.generation).await;
            }
        }
        PlacementState::Running => follow(shared, handle, actor_id, &p),
        PlacementState::Sleeping => {
            let generation = p.generation;
            let pending = handle
                .call({
                    let id = actor_id.to_string();
                    move |c, now| {
                        let info = c.actor(&id);
                        let hosted_here = info.as_ref().is_some_and(|a| {
                            a.generation == Some(generation)
                                && a.runner_id.as_ref().is_some_and(|r| c.runner(r).is_some())
                        });
                        if hosted_here {
                            // The cluster took it as dead here (its node was reaped): stop
                            // this copy, the shared state already lets it start elsewhere.
                            let _ = c.stop_actor(now, &id);
                        } else {
                            let _ = c.stopped_elsewhere(now, &id, generation);
                        }
                        c.actor(&id).map(|a| a.phase)
                    }
                })
                .ok()
                .flatten();
            // A request here still needs it (the claim it followed was given back).
            if pending == Some(ActorPhase::Pending) {
                let _ = shared
                    .state_tx
                    .try_send((StateOut::Place(actor_id.to_string()), 0));
            }
        }
        PlacementState::Starting => {}
    }
}

pub(super) async fn liveness(shared: Arc<Shared>, ttl: Duration) {
    let period = ttl / 3;
    let stats = shared.client.statistics();
    let mut connects = stats.connects.load(Ordering::Relaxed);
    // Heartbeats in a row since the last (re)connect: a node's entry is missing for sure only
    // after every node had time to write it again, so nothing is reaped before a full TTL of
    // heartbeats (after a broker restart every entry may have expired at once).
    let mut streak = 0u32;
    loop {
        ::tokio::time::sleep(period).await;
        let now_connects = stats.connects.load(Ordering::Relaxed);
        if now_connects != connects {
            connects = now_connects;
            streak = 0;
        }
        if shared
            .state
            .heartbeat(&shared.node_id, shared.gateway_id)
            .await
            .is_err()
        {
            bump(&shared.stats.state_errors);
            streak = 0;
            continue;
        }
        streak += 1;
        if streak <= 6 {
            continue;
        }
        if let Ok(live) = shared.state.live_nodes().await
            && let Ok(reaped) = shared.state.reap(&live).await
        {
            for _ in reaped {
                bump(&shared.stats.reaped);
            }
        }
    }
}
