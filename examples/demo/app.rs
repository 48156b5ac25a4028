//! The demo's actor app on the runner: it answers the session's events (see
//! [`driver::session`](hibernating_ws::driver::session)), processes the client's stream, echoes
//! a digest, and commits each socket's state with its indices before the ack.
//!
//! Storage writes go to one writer task through a bounded queue: an app that outruns its disk
//! waits, so the session's app queue fills and the driver stops reading the engine. The writer
//! merges the queued commits of one actor into one (one sync per burst) and reports each persist
//! to the session itself.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hibernating_ws::MessageIndex;
use hibernating_ws::driver::session::{SessionEvent, SessionEvents, SessionHandle};
use hibernating_ws::runner::{CloseReason, PersistedSocket, SocketId};
use hibernating_ws::storage::{Commit, StoreError, StoredSocket};
use hibernating_ws::wire::Headers;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::runner::reason_name;
use super::storage::{ActorState, Fenced, StreamState};

/// Commits queued for the writer, at most.
pub const WRITE_QUEUE: usize = 1024;

/// A commit to an actor's record; `done` is reported to the session once it is durable.
pub struct WriteJob {
    actor_id: String,
    commit: Commit,
    done: Option<(SocketId, MessageIndex)>,
}

/// Sockets whose record the store holds (a commit of it succeeded): their next commit advances
/// the record instead of writing it whole.
pub type Stored = Arc<Mutex<BTreeSet<SocketId>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts the storage writer; returns its queue and the set of stored sockets.
pub fn spawn_writer(
    tasks: &mut JoinSet<()>,
    store: Fenced,
    handle: SessionHandle,
) -> (mpsc::Sender<WriteJob>, Stored) {
    let (tx, rx) = mpsc::channel(WRITE_QUEUE);
    let stored = Stored::default();
    tasks.spawn(storage_writer(store, rx, handle, stored.clone()));
    (tx, stored)
}

/// The queued commits of one actor merged into one, with the persists it completes.
type Merged = (String, Commit, Vec<(SocketId, MessageIndex)>);

/// Commits in order, merging queued commits of one actor into one (applying them one after the
/// other is the same as applying their concatenation), so a burst costs one sync.
async fn storage_writer(
    store: Fenced,
    mut jobs: mpsc::Receiver<WriteJob>,
    handle: SessionHandle,
    stored: Stored,
) {
    let mut batch = Vec::new();
    while jobs.recv_many(&mut batch, WRITE_QUEUE).await > 0 {
        let mut merged: Vec<Merged> = Vec::new();
        for job in batch.drain(..) {
            let i = if let Some(i) = merged.iter().position(|(a, ..)| *a == job.actor_id) {
                i
            } else {
                merged.push((job.actor_id, Commit::new(), Vec::new()));
                merged.len() - 1
            };
            let entry = &mut merged[i];
            entry.1.sockets.extend(job.commit.sockets);
            if job.commit.state.is_some() {
                entry.1.state = job.commit.state;
            }
            entry.2.extend(job.done);
        }
        for (actor, commit, completions) in merged {
            let store = store.clone();
            let ok = tokio::task::spawn_blocking(move || store.commit(&actor, &commit))
                .await
                .is_ok_and(|r| r.is_ok());
            for (socket, index) in completions {
                // Refused only if the socket is gone meanwhile (or the session stopped).
                let _ = if ok {
                    lock(&stored).insert(socket);
                    handle.persisted(socket, index)
                } else {
                    handle.persist_failed(socket, index)
                };
            }
        }
    }
}

/// One actor on this runner.
struct ActorApp {
    /// The actor's own state (its last finished streams), as committed.
    state: ActorState,
    /// Live state per socket (ahead of the store until the next persist).
    live: BTreeMap<SocketId, Live>,
}

struct Live {
    state: StreamState,
    path: String,
    headers: Headers,
}

/// What the app is built from.
pub struct Parts {
    pub handle: SessionHandle,
    pub store: Fenced,
    pub writes: mpsc::Sender<WriteJob>,
    pub stored: Stored,
    pub closes: Arc<Mutex<BTreeMap<String, u64>>>,
    pub delivered: Arc<AtomicU64>,
    pub load_delay: Duration,
    /// Set when the connection to the gateway ends.
    pub closed: watch::Sender<bool>,
}

/// The actor app: accepts sockets, processes messages, persists state with the indices.
pub struct App {
    p: Parts,
    actors: BTreeMap<String, ActorApp>,
    socket_actor: BTreeMap<SocketId, String>,
    /// Starts in a row that failed on storage, per actor: the next load waits longer.
    failures: BTreeMap<String, u32>,
}

impl App {
    pub fn new(parts: Parts) -> Self {
        Self {
            p: parts,
            actors: BTreeMap::new(),
            socket_actor: BTreeMap::new(),
            failures: BTreeMap::new(),
        }
    }

    /// Handles every session event, in order, until the session ends.
    pub async fn run(mut self, mut events: SessionEvents) {
        while let Some(event) = events.recv().await {
            self.event(event).await;
        }
        let _ = self.p.closed.send(true);
    }

    async fn event(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Disconnected { .. } => {
                let _ = self.p.closed.send(true);
            }
            SessionEvent::StartActor { actor_id, .. } => self.start(actor_id).await,
            SessionEvent::Open {
                socket,
                actor_id,
                path,
                headers,
                ..
            } => self.open(socket, actor_id, path, headers),
            SessionEvent::Message { socket, data, .. } => self.message(socket, &data),
            SessionEvent::Persist {
                socket,
                actor_id,
                server_index,
                client_index,
            } => {
                self.persist(socket, actor_id, server_index, client_index)
                    .await;
            }
            SessionEvent::DeleteMetadata { socket, actor_id } => {
                self.delete(socket, actor_id).await;
            }
            SessionEvent::Closed { socket, reason } => self.closed(socket, &reason),
            SessionEvent::ActorStopped { actor_id, .. } => {
                if let Some(app) = self.actors.remove(&actor_id) {
                    let mut stored = lock(&self.p.stored);
                    for socket in app.live.keys() {
                        self.socket_actor.remove(socket);
                        stored.remove(socket);
                    }
                }
            }
            _ => {}
        }
    }

    /// An actor starts here: load its record (never run it on an empty state if the record
    /// does not load: its start fails and the gateway keeps its requests hibernating), then
    /// restore its sockets.
    async fn start(&mut self, actor: String) {
        let failures = self.failures.get(&actor).copied().unwrap_or(0);
        let backoff = match failures {
            0 => Duration::ZERO,
            n => Duration::from_millis(10 << n.min(8)).min(Duration::from_secs(2)),
        };
        let delay = self.p.load_delay.max(backoff);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match self.load(&actor).await {
            Ok((app, persisted)) => {
                self.failures.remove(&actor);
                let mut stored = lock(&self.p.stored);
                for socket in app.live.keys() {
                    self.socket_actor.insert(*socket, actor.clone());
                    stored.insert(*socket);
                }
                drop(stored);
                self.actors.insert(actor.clone(), app);
                let _ = self.p.handle.restore(&actor, persisted);
            }
            Err(e) => {
                eprintln!("[runner] actor {actor}: storage did not load: {e}");
                self.failures
                    .insert(actor.clone(), failures.saturating_add(1));
                let _ = self.p.handle.actor_failed(&actor, Some(e.to_string()));
            }
        }
    }

    async fn load(&self, actor: &str) -> Result<(ActorApp, Vec<PersistedSocket>), StoreError> {
        let store = self.p.store.clone();
        let a = actor.to_string();
        let loaded = tokio::task::spawn_blocking(move || store.load(&a))
            .await
            .unwrap_or_else(|e| {
                Err(StoreError::Io {
                    actor_id: actor.into(),
                    source: io::Error::other(e),
                })
            })?;
        let corrupt = |detail| StoreError::Corrupt {
            actor_id: actor.into(),
            detail,
        };
        let state = ActorState::decode(&loaded.state).map_err(corrupt)?;
        let mut live = BTreeMap::new();
        for s in &loaded.sockets {
            let l = Live {
                state: StreamState::decode(&s.state).map_err(corrupt)?,
                path: s.meta.path.clone(),
                headers: s.meta.headers.clone(),
            };
            live.insert(s.meta.socket, l);
        }
        Ok((ActorApp { state, live }, loaded.persisted()))
    }

    fn open(&mut self, socket: SocketId, actor: String, path: String, headers: Headers) {
        let Some(app) = self.actors.get_mut(&actor) else {
            let frame = hibernating_ws::CloseFrame::new(1011, "no such actor");
            let _ = self.p.handle.reject(socket, frame);
            return;
        };
        let live = Live {
            state: StreamState::default(),
            path,
            headers,
        };
        app.live.insert(socket, live);
        self.socket_actor.insert(socket, actor);
        let _ = self.p.handle.accept(socket, true);
    }

    fn message(&mut self, socket: SocketId, data: &[u8]) {
        self.p.delivered.fetch_add(1, Ordering::Relaxed);
        let Some(live) = self.live_mut(socket) else {
            return;
        };
        live.state.process(data);
        let seq = super::payload::seq_of(data).unwrap_or(u64::MAX);
        let echo = format!("{seq} {} {:016x}", live.state.count, live.state.digest);
        let _ = self.p.handle.send(socket, echo.as_bytes(), false);
    }

    /// The socket's state and its indices in one commit; the record's metadata is written
    /// whole until a commit of it succeeded.
    async fn persist(
        &mut self,
        socket: SocketId,
        actor_id: String,
        server_index: MessageIndex,
        client_index: MessageIndex,
    ) {
        let Some(live) = self.actors.get(&actor_id).and_then(|a| a.live.get(&socket)) else {
            return;
        };
        let state = live.state.encode();
        let commit = if lock(&self.p.stored).contains(&socket) {
            Commit::new().advance(socket, server_index, client_index, Some(state))
        } else {
            let meta = PersistedSocket {
                socket,
                server_index,
                client_index,
                path: live.path.clone(),
                headers: live.headers.clone(),
            };
            Commit::new().put(StoredSocket::new(meta, state))
        };
        let job = WriteJob {
            actor_id,
            commit,
            done: Some((socket, server_index)),
        };
        let _ = self.p.writes.send(job).await;
    }

    /// The socket is gone for good: its stream is finished in the actor's state.
    async fn delete(&mut self, socket: SocketId, actor_id: String) {
        self.socket_actor.remove(&socket);
        lock(&self.p.stored).remove(&socket);
        let Some(app) = self.actors.get_mut(&actor_id) else {
            return;
        };
        let state = app
            .live
            .remove(&socket)
            .map(|l| l.state)
            .unwrap_or_default();
        app.state.finish(socket, state);
        let commit = Commit::new().delete(socket).state(app.state.encode());
        let job = WriteJob {
            actor_id,
            commit,
            done: None,
        };
        let _ = self.p.writes.send(job).await;
    }

    fn closed(&mut self, socket: SocketId, reason: &CloseReason) {
        *lock(&self.p.closes).entry(reason_name(reason)).or_insert(0) += 1;
        if matches!(reason, CloseReason::ActorStopped | CloseReason::Rejected(_))
            && let Some(actor) = self.socket_actor.remove(&socket)
            && let Some(app) = self.actors.get_mut(&actor)
        {
            app.live.remove(&socket);
        }
    }

    fn live_mut(&mut self, socket: SocketId) -> Option<&mut Live> {
        let actor = self.socket_actor.get(&socket)?;
        self.actors.get_mut(actor)?.live.get_mut(&socket)
    }
}
