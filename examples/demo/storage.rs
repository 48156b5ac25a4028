//! Actor storage: one JSON file per actor, written atomically (temp file, fsync, rename, fsync
//! the directory). It holds each hibernatable socket's metadata and last persisted index
//! together with the actor's state for that socket (count and digest of the messages it
//! processed), so the state and the index are committed in one step: exactly once.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hibernating_ws::MessageIndex;
use hibernating_ws::runner::{PersistedSocket, SocketId};
use hibernating_ws::wire::{GatewayId, Headers, RequestId};
use serde::{Deserialize, Serialize};

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
}

/// One open hibernatable socket: its metadata, indices and state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketRecord {
    pub gateway_id: [u8; 4],
    pub request_id: [u8; 4],
    pub server_index: u16,
    pub client_index: u16,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub state: StreamState,
}

impl SocketRecord {
    pub fn socket(&self) -> SocketId {
        SocketId::new(GatewayId(self.gateway_id), RequestId(self.request_id))
    }

    pub fn persisted(&self) -> PersistedSocket {
        PersistedSocket {
            socket: self.socket(),
            server_index: MessageIndex::new(self.server_index),
            client_index: MessageIndex::new(self.client_index),
            path: self.path.clone(),
            headers: Headers::from_entries_unchecked(self.headers.clone()),
        }
    }
}

/// A socket whose metadata was deleted (it closed): the committed result of its stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishedStream {
    pub gateway_id: [u8; 4],
    pub request_id: [u8; 4],
    pub state: StreamState,
}

/// The whole file of one actor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorFile {
    pub actor_id: String,
    pub sockets: Vec<SocketRecord>,
    pub finished: Vec<FinishedStream>,
}

impl ActorFile {
    pub fn socket_mut(&mut self, socket: SocketId) -> Option<&mut SocketRecord> {
        self.sockets.iter_mut().find(|r| r.socket() == socket)
    }

    /// Moves a socket's record to `finished` (keeping `state` as its final result).
    pub fn finish(&mut self, socket: SocketId, state: StreamState) {
        self.sockets.retain(|r| r.socket() != socket);
        self.finished.push(FinishedStream {
            gateway_id: socket.gateway_id.0,
            request_id: socket.request_id.0,
            state,
        });
    }

    pub fn finished(&self, request_id: RequestId) -> Option<&FinishedStream> {
        self.finished
            .iter()
            .rev()
            .find(|f| f.request_id == request_id.0)
    }
}

/// Stops a "crashed" process's writes from landing: a write renames its file into place only
/// while the fence is up, and [`Fence::kill`] waits for a rename in progress. In-process kills
/// use it to behave like a real process death (after which nothing more is written).
#[derive(Debug, Clone)]
pub struct Fence(Arc<Mutex<bool>>);

impl Default for Fence {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(true)))
    }
}

impl Fence {
    pub fn kill(&self) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = false;
    }
}

/// The files of one runner's actors.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    fence: Fence,
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>, fence: Fence) -> Self {
        Self {
            dir: dir.into(),
            fence,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, actor_id: &str) -> PathBuf {
        let name: String = actor_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("actor-{name}.json"))
    }

    /// The actor's file, or an empty one if it has none.
    pub fn load(&self, actor_id: &str) -> io::Result<ActorFile> {
        match fs::read(self.path(actor_id)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(io::Error::other),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(ActorFile {
                actor_id: actor_id.into(),
                ..ActorFile::default()
            }),
            Err(e) => Err(e),
        }
    }

    /// Replaces the actor's file atomically and durably.
    pub fn write(&self, file: &ActorFile) -> io::Result<()> {
        let path = self.path(&file.actor_id);
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(file).map_err(io::Error::other)?;
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        drop(f);
        let alive = self
            .fence
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !*alive {
            return Err(io::Error::other("the process was killed"));
        }
        fs::rename(&tmp, &path)?;
        File::open(&self.dir)?.sync_all()?;
        drop(alive);
        Ok(())
    }
}
