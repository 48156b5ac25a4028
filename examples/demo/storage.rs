//! Actor storage: the crate's stores ([`FileStore`] by default, [`SqliteStore`] with
//! `--storage sqlite` when built with the `sqlite` feature) behind a kill fence.
//!
//! Per socket the store holds its metadata, its last persisted index and the actor's state for
//! that socket ([`StreamState`]), committed together: exactly once. The actor's own state is
//! the results of its last [`FINISHED_KEPT`] finished streams (bounded).

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use hibernating_ws::runner::SocketId;
use hibernating_ws::storage::{ActorRecord, Commit, FileStore, Store, StoreError};
use hibernating_ws::wire::RequestId;
use serde::{Deserialize, Serialize};

/// How many finished streams an actor remembers.
pub const FINISHED_KEPT: usize = 16;

/// What the actor computed from one socket's messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamState {
    /// Messages processed, in order.
    pub count: u64,
    /// Digest of those messages ([`fold`](super::payload::fold)).
    pub digest: u64,
    /// Messages whose sequence number was already processed: delivered twice.
    pub duplicates: u64,
    /// Messages whose sequence number skipped ahead: something was lost.
    pub gaps: u64,
}

impl StreamState {
    /// Processes one message. A status probe (a message starting with `?`) changes nothing.
    pub fn process(&mut self, data: &[u8]) {
        if data.first() == Some(&b'?') {
            return;
        }
        match super::payload::seq_of(data) {
            Some(seq) if seq == self.count => {
                self.count += 1;
                self.digest = super::payload::fold(self.digest, data);
            }
            Some(seq) if seq < self.count => self.duplicates += 1,
            _ => {
                self.gaps += 1;
                self.count += 1;
                self.digest = super::payload::fold(self.digest, data);
            }
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// A socket whose metadata was deleted (it closed): the committed result of its stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishedStream {
    pub request_id: [u8; 4],
    pub state: StreamState,
}

/// The actor's own state: its last finished streams, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorState {
    pub finished: VecDeque<FinishedStream>,
}

impl ActorState {
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        if bytes.is_empty() {
            return Ok(Self::default());
        }
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Records a finished stream, forgetting the oldest beyond [`FINISHED_KEPT`].
    pub fn finish(&mut self, socket: SocketId, state: StreamState) {
        self.finished.push_back(FinishedStream {
            request_id: socket.request_id.0,
            state,
        });
        while self.finished.len() > FINISHED_KEPT {
            self.finished.pop_front();
        }
    }

    pub fn finished(&self, request_id: RequestId) -> Option<&FinishedStream> {
        self.finished
            .iter()
            .rev()
            .find(|f| f.request_id == request_id.0)
    }
}

/// Which store the runner uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StorageKind {
    /// One file per actor in the data directory.
    #[default]
    File,
    /// `actors.db` in the data directory (needs the `sqlite` feature).
    Sqlite,
}

impl StorageKind {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "file" => Ok(Self::File),
            "sqlite" if cfg!(feature = "sqlite") => Ok(Self::Sqlite),
            "sqlite" => Err("--storage sqlite needs a build with --features sqlite".into()),
            other => Err(format!("unknown storage {other:?} (file or sqlite)")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Sqlite => "sqlite",
        }
    }

    /// Opens the store in `dir`.
    pub fn open(self, dir: &Path) -> io::Result<Arc<dyn Store>> {
        match self {
            Self::File => Ok(Arc::new(FileStore::open(dir)?)),
            #[cfg(feature = "sqlite")]
            Self::Sqlite => {
                std::fs::create_dir_all(dir)?;
                let store = hibernating_ws::storage::SqliteStore::open(dir.join("actors.db"))
                    .map_err(io::Error::other)?;
                Ok(Arc::new(store))
            }
            #[cfg(not(feature = "sqlite"))]
            Self::Sqlite => Err(io::Error::other("built without the sqlite feature")),
        }
    }
}

/// Stops a "crashed" process's writes from landing: a commit runs only while the fence is up,
/// and [`Fence::kill`] waits for a commit in progress. In-process kills use it to behave like a
/// real process death (after which nothing more is written).
#[derive(Debug, Clone)]
pub struct Fence(Arc<Mutex<bool>>);

impl Default for Fence {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(true)))
    }
}

impl Fence {
    pub fn kill(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = false;
    }
}

/// A store behind a [`Fence`].
#[derive(Clone)]
pub struct Fenced {
    pub store: Arc<dyn Store>,
    pub fence: Fence,
}

impl Fenced {
    pub fn load(&self, actor_id: &str) -> Result<ActorRecord, StoreError> {
        self.store.load(actor_id)
    }

    pub fn commit(&self, actor_id: &str, commit: &Commit) -> Result<(), StoreError> {
        let alive = self.fence.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !*alive {
            return Err(StoreError::Io {
                actor_id: actor_id.into(),
                source: io::Error::other("the process was killed"),
            });
        }
        self.store.commit(actor_id, commit)
    }
}

/// The committed result of the actor's last finished stream, if any (`None` also when the
/// record does not load).
pub fn finished_stream(store: &dyn Store, actor: &str) -> Option<StreamState> {
    let record = store.load(actor).ok()?;
    let state = ActorState::decode(&record.state).ok()?;
    state.finished.back().map(|f| f.state)
}

/// The committed state of the actor's open streams (sockets whose metadata is still stored: the
/// actor has not seen their close), in socket order; empty also when the record does not load.
pub fn open_streams(store: &dyn Store, actor: &str) -> Vec<StreamState> {
    let Ok(record) = store.load(actor) else {
        return Vec::new();
    };
    record
        .sockets
        .iter()
        .filter_map(|s| StreamState::decode(&s.state).ok())
        .collect()
}
