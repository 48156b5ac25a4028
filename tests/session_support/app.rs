//! A test runner on `driver::session`: an echo app that commits every socket's received
//! messages with its indices to an in-memory "disk" on each persist, restores from it on start,
//! and records every event.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use hibernating_ws::MessageIndex;
use hibernating_ws::driver::session::{
    ConnectOptions, SessionDriver, SessionEvent, SessionEvents, SessionHandle, SessionOptions,
};
use hibernating_ws::driver::tokio::TokioClock;
use hibernating_ws::runner::{PersistedSocket, SocketId};
use hibernating_ws::session::{Session, SessionConfig};
use hibernating_ws::wire::Headers;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::engine::{POOL, wait};

/// A socket's durable record: metadata and the messages committed with it.
#[derive(Debug, Clone)]
pub struct Stored {
    /// What `restore` gets.
    pub meta: PersistedSocket,
    /// Every message applied up to `meta.server_index`, in order.
    pub committed: Vec<String>,
}

/// A socket the app holds.
#[derive(Debug)]
struct Live {
    actor_id: String,
    path: String,
    headers: Headers,
    /// Applied since the last commit: (index, text).
    applied: Vec<(MessageIndex, String)>,
}

/// What the app saw and stored.
#[derive(Debug, Default)]
pub struct AppState {
    /// The "disk": per actor, per socket.
    pub disk: BTreeMap<String, BTreeMap<SocketId, Stored>>,
    live: BTreeMap<SocketId, Live>,
    /// Every event, by name, in order.
    pub log: Vec<String>,
    /// Runner ids of every handshake, with `new_id`.
    pub connected: Vec<(String, bool)>,
    /// Every disconnect reason, debug-formatted.
    pub disconnects: Vec<String>,
    /// Messages delivered with an index at or before one already applied (must stay 0).
    pub duplicates: u64,
    /// Whether the app takes events (a test pauses it to fill the queue).
    pub paused: bool,
    /// Every delivered message: (text, index).
    pub deliveries: Vec<(String, MessageIndex)>,
    /// Persists to answer with `persist_failed` before succeeding again.
    pub fail_persists: u32,
}

impl AppState {
    /// Committed plus applied messages of the one socket of `actor`.
    pub fn received(&self, actor: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (id, stored) in self.disk.get(actor).into_iter().flatten() {
            out.extend(stored.committed.iter().cloned());
            if let Some(live) = self.live.get(id) {
                out.extend(live.applied.iter().map(|(_, t)| t.clone()));
            }
        }
        out
    }

    /// The sockets the app holds.
    pub fn sockets(&self) -> Vec<SocketId> {
        self.live.keys().copied().collect()
    }

    /// How many events named `name` were seen.
    pub fn count(&self, name: &str) -> usize {
        self.log.iter().filter(|n| *n == name).count()
    }
}

/// A running test runner.
pub struct App {
    /// The driver's handle.
    pub handle: SessionHandle,
    /// What the app saw.
    pub state: Arc<Mutex<AppState>>,
    /// Wakes a paused app.
    pub resume: Arc<Notify>,
    /// The driver's task.
    pub task: JoinHandle<Session>,
}

impl App {
    /// A runner of [`POOL`] with key `key`, connected to `endpoint`.
    pub fn start(
        endpoint: &str,
        key: &str,
        config: SessionConfig,
        options: SessionOptions,
    ) -> Self {
        let clock = TokioClock::new();
        let session = Session::new(config, clock.now()).unwrap();
        let connect = ConnectOptions::new(endpoint, "default", key);
        let (handle, events, task) = SessionDriver::spawn_with(session, connect, clock, options);
        let state = Arc::new(Mutex::new(AppState::default()));
        let resume = Arc::new(Notify::new());
        tokio::spawn(app(handle.clone(), events, state.clone(), resume.clone()));
        Self {
            handle,
            state,
            resume,
            task,
        }
    }

    /// A session configuration for [`POOL`] that persists quickly.
    pub fn config() -> SessionConfig {
        let mut config = SessionConfig::new(POOL, 8);
        config.runner.persist_interval = core::time::Duration::from_millis(20);
        config
    }

    /// Waits until `f` holds for the app's state.
    pub async fn wait(&self, what: &str, f: impl Fn(&AppState) -> bool) {
        wait(what, || f(&self.state.lock().unwrap())).await;
    }

    /// Waits until the app has seen `n` events named `name`.
    pub async fn wait_count(&self, name: &str, n: usize) {
        self.wait(&format!("{n} × {name}"), |s| s.count(name) >= n)
            .await;
    }
}

/// The app's task.
async fn app(
    handle: SessionHandle,
    mut events: SessionEvents,
    state: Arc<Mutex<AppState>>,
    resume: Arc<Notify>,
) {
    loop {
        loop {
            let resumed = resume.notified();
            if !state.lock().unwrap().paused {
                break;
            }
            resumed.await;
        }
        let Some(event) = events.recv().await else {
            return;
        };
        let mut s = state.lock().unwrap();
        handle_event(&handle, &mut s, event);
    }
}

fn name(event: &SessionEvent) -> &'static str {
    match event {
        SessionEvent::Connected { .. } => "connected",
        SessionEvent::Disconnected { .. } => "disconnected",
        SessionEvent::Lost => "lost",
        SessionEvent::StartActor { .. } => "start",
        SessionEvent::ActorStopped { .. } => "stopped",
        SessionEvent::Open { .. } => "open",
        SessionEvent::Restored { .. } => "restored",
        SessionEvent::Message { .. } => "message",
        SessionEvent::Persist { .. } => "persist",
        SessionEvent::DeleteMetadata { .. } => "delete",
        SessionEvent::Closed { .. } => "closed",
        _ => "other",
    }
}

#[allow(clippy::too_many_lines)] // one arm per session event, each a few lines
fn handle_event(handle: &SessionHandle, s: &mut AppState, event: SessionEvent) {
    s.log.push(name(&event).into());
    match event {
        SessionEvent::Connected {
            runner_id, new_id, ..
        } => s.connected.push((runner_id, new_id)),
        SessionEvent::Disconnected { reason, .. } => s.disconnects.push(format!("{reason:?}")),
        SessionEvent::StartActor { actor_id, .. } => {
            let persisted = s
                .disk
                .get(&actor_id)
                .map(|d| d.values().map(|st| st.meta.clone()).collect())
                .unwrap_or_default();
            handle.restore(&actor_id, persisted).unwrap();
        }
        SessionEvent::Restored {
            socket, actor_id, ..
        } => {
            let meta = &s.disk[&actor_id][&socket].meta;
            let live = Live {
                actor_id,
                path: meta.path.clone(),
                headers: meta.headers.clone(),
                applied: Vec::new(),
            };
            s.live.insert(socket, live);
        }
        SessionEvent::Open {
            socket,
            actor_id,
            path,
            headers,
            ..
        } => {
            let live = Live {
                actor_id,
                path,
                headers,
                applied: Vec::new(),
            };
            s.live.insert(socket, live);
            handle.accept(socket, true).unwrap();
        }
        SessionEvent::Message {
            socket,
            index,
            data,
            binary,
        } => {
            let live = s.live.get_mut(&socket).expect("a live socket");
            if live
                .applied
                .last()
                .is_some_and(|(last, _)| !index.is_after(*last))
            {
                s.duplicates += 1;
                return;
            }
            let text = String::from_utf8(data.clone()).unwrap();
            live.applied.push((index, text.clone()));
            s.deliveries.push((text, index));
            // The echo may fail while the connection is down; the test checks what arrives.
            let _ = handle.send(socket, &data, binary);
        }
        SessionEvent::Persist {
            socket,
            actor_id,
            server_index,
            client_index,
        } => {
            if s.fail_persists > 0 {
                s.fail_persists -= 1;
                handle.persist_failed(socket, server_index).unwrap();
                return;
            }
            commit(s, socket, actor_id, server_index, client_index);
            handle.persisted(socket, server_index).unwrap();
        }
        SessionEvent::DeleteMetadata { socket, actor_id } => {
            if let Some(d) = s.disk.get_mut(&actor_id) {
                d.remove(&socket);
            }
        }
        SessionEvent::Closed { socket, .. } => {
            s.live.remove(&socket);
        }
        SessionEvent::ActorStopped { actor_id, .. } => {
            s.live.retain(|_, l| l.actor_id != actor_id);
        }
        _ => {}
    }
}

/// Commits what the socket applied since its last commit, with its indices.
fn commit(
    s: &mut AppState,
    socket: SocketId,
    actor_id: String,
    server_index: MessageIndex,
    client_index: MessageIndex,
) {
    let live = s.live.get_mut(&socket).expect("a live socket");
    let applied: Vec<String> = live.applied.drain(..).map(|(_, t)| t).collect();
    let (path, headers) = (live.path.clone(), live.headers.clone());
    let record = s
        .disk
        .entry(actor_id)
        .or_default()
        .entry(socket)
        .or_insert_with(|| Stored {
            meta: PersistedSocket {
                socket,
                server_index,
                client_index,
                path,
                headers,
            },
            committed: Vec::new(),
        });
    record.meta.server_index = server_index;
    record.meta.client_index = client_index;
    record.committed.extend(applied);
}
