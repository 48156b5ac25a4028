//! The gateway's [`ControlIo`]: what the control engine tells the demo, kept in a [`Book`] for
//! the report and the tests, and the actor events handed to the [`Scheduler`].
//!
//! Every hook runs inside the driver's critical section: it updates a few maps bounded by the
//! live requests, connections and actors, and never blocks or sends on a channel.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hibernating_ws::control::{Action, ConnId, ReceiveError};
use hibernating_ws::driver::control::ControlIo;
use hibernating_ws::gateway::{CloseReason, GcReason};
use hibernating_ws::wire::{KvErrorResponse, KvRequestData, KvResponseData, RequestId};

use super::auth::RunnerRejection;
use super::runner::frame_text;
use super::schedule::Scheduler;

/// What the gateway saw, for [`Snapshot`](super::gateway::Snapshot).
#[derive(Debug, Default)]
pub struct Tally {
    /// Runner handshakes completed.
    pub runners_connected: u32,
    /// Runners lost (their actors stopped).
    pub runners_lost: u32,
    /// Requests closed, by reason.
    pub closes: BTreeMap<String, u64>,
    /// Runner frames the engine dropped, by error.
    pub receive_errors: BTreeMap<String, u64>,
    /// Runner connections refused, by reason.
    pub runners_rejected: BTreeMap<RunnerRejection, u64>,
    /// Live requests (opened, not closed).
    pub requests: BTreeSet<RequestId>,
    /// Actors the gateway created.
    pub actors: BTreeSet<String>,
    /// Connections that sent a frame before their handshake: closed by their reader.
    pub uninitialized: BTreeSet<ConnId>,
}

/// The shared [`Tally`].
#[derive(Debug, Default, Clone)]
pub struct Book(Arc<Mutex<Tally>>);

impl Book {
    /// The tally, locked.
    pub fn lock(&self) -> MutexGuard<'_, Tally> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A runner connection was refused.
    pub fn rejected(&self, why: RunnerRejection) {
        *self.lock().runners_rejected.entry(why).or_insert(0) += 1;
    }

    /// Whether `conn` sent a frame before its handshake (forgets it).
    pub fn take_uninitialized(&self, conn: ConnId) -> bool {
        self.lock().uninitialized.remove(&conn)
    }
}

/// The gateway's [`ControlIo`].
pub struct DemoIo {
    pub book: Book,
    pub scheduler: Arc<Scheduler>,
    pub verbose: bool,
}

impl DemoIo {
    fn log(&self, what: impl FnOnce() -> String) {
        if self.verbose {
            eprintln!("[gateway] {}", what());
        }
    }
}

impl ControlIo for DemoIo {
    fn kv(&mut self, _actor_id: &str, _request: KvRequestData) -> KvResponseData {
        // The demo's actors keep their state in the runner's own store.
        KvResponseData::Error(KvErrorResponse {
            message: "the demo engine keeps no KV".into(),
        })
    }

    fn event(&mut self, action: &Action) {
        match action {
            Action::RunnerConnected {
                runner_id, resumed, ..
            } => {
                self.book.lock().runners_connected += 1;
                self.log(|| format!("runner {runner_id} connected (resumed: {resumed})"));
            }
            Action::RunnerLost { runner_id } => {
                self.book.lock().runners_lost += 1;
                self.log(|| format!("runner {runner_id} lost; its actors stopped"));
            }
            Action::ActorRunning {
                actor_id,
                generation,
                runner_id,
            } => {
                self.log(|| {
                    format!("actor {actor_id} running (generation {generation}) on {runner_id}")
                });
                self.scheduler.running(actor_id);
            }
            Action::ActorStopped {
                actor_id, reason, ..
            } => {
                self.log(|| format!("actor {actor_id} stopped: {reason:?}"));
                self.scheduler.stopped(actor_id, reason);
            }
            Action::OpenFailed {
                request_id, reason, ..
            } => {
                let mut t = self.book.lock();
                t.requests.remove(request_id);
                *t.closes
                    .entry(format!("open failed: {reason:?}"))
                    .or_insert(0) += 1;
            }
            _ => {}
        }
    }

    fn closed(&mut self, request_id: RequestId, reason: &CloseReason) {
        let mut t = self.book.lock();
        t.requests.remove(&request_id);
        *t.closes.entry(close_reason_name(reason)).or_insert(0) += 1;
    }

    fn receive_error(&mut self, conn: ConnId, error: &ReceiveError) {
        let mut t = self.book.lock();
        if matches!(error, ReceiveError::NotInitialized { .. }) {
            t.uninitialized.insert(conn);
        }
        // A tunnel message the gateway dropped is named by the gateway's own error.
        let name = match error {
            ReceiveError::Tunnel { error, .. } => error.to_string(),
            other => other.to_string(),
        };
        *t.receive_errors.entry(name).or_insert(0) += 1;
    }
}

/// A short name for a gateway close reason, with the client's close frame.
pub fn close_reason_name(reason: &CloseReason) -> String {
    let frame = reason
        .client_frame()
        .map_or_else(|| "none".into(), |f| frame_text(&f));
    let what = match reason {
        CloseReason::ClientClosed(f) => format!("client closed ({})", frame_text(f)),
        CloseReason::ClientGone => "client gone".into(),
        CloseReason::RunnerClosed(_) => "runner closed".into(),
        CloseReason::ClosedBeforeOpen(_) => "closed before open".into(),
        CloseReason::OpenTimeout => "open timeout".into(),
        CloseReason::ActorStopped => "actor stopped".into(),
        CloseReason::ActorStoppedBeforeOpen => "actor stopped before open".into(),
        CloseReason::PendingLimit(l) => format!("pending limit ({l})"),
        CloseReason::PingTimeout => "ping timeout".into(),
        CloseReason::Collected(GcReason::AckTimeout { .. }) => "collected: ack timeout".into(),
        CloseReason::Collected(GcReason::HibernationTimeout) => {
            "collected: hibernation timeout".into()
        }
        CloseReason::Collected(GcReason::WakeTimeout) => "collected: wake timeout".into(),
        other => format!("{other:?}"),
    };
    format!("{what}; client frame: {frame}")
}
