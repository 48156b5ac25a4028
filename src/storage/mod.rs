//! Durable actor storage for the runner side: what a store must guarantee, the [`Store`] trait,
//! and the two stores the crate ships ([`FileStore`], and [`SqliteStore`] with the `sqlite`
//! feature).
//!
//! The runner acknowledges a client message to the gateway only after the app reported the
//! socket's index durable ([`Action::Persist`](crate::runner::Action::Persist), then
//! [`Runner::persisted`](crate::runner::Runner::persisted)). Once acked, the gateway forgets the
//! message: from then on the store is its only copy. A store therefore keeps, per actor, in one
//! atomic commit:
//!
//! * each hibernatable socket's metadata and indices ([`PersistedSocket`]), handed back to
//!   [`Runner::restore`](crate::runner::Runner::restore) when the actor starts again;
//! * the app's state derived from the messages up to those indices (per socket, and for the
//!   whole actor), so that state and index never disagree after a crash.
//!
//! # What a store must guarantee
//!
//! * **Atomic commits**: after a crash at any point, [`Store::load`] returns either everything
//!   of a [`Commit`] or nothing of it.
//! * **Durable before `Ok`**: [`Store::commit`] returns `Ok` only once the commit survives a
//!   process crash and a power loss; only then may the app call `persisted` (which acks).
//! * **Injective keys**: two different actor ids never share storage, and a record loaded for
//!   an actor is checked to belong to it ([`StoreError::ForeignRecord`]).
//! * **Typed load failures**: an unreadable, corrupt or foreign record is an error, never an
//!   empty actor. The app must not start the actor on it (see below).
//! * **Bounded size**: a socket's record is deleted with
//!   [`Action::DeleteMetadata`](crate::runner::Action::DeleteMetadata); nothing grows with the
//!   number of sockets an actor ever had.
//!
//! # When `load` fails
//!
//! Do not call `restore` with an empty list: the runner would treat every hibernating socket
//! as gone and the clients would see a normal close, while their acked messages are still in
//! the unreadable record. Stop the start instead
//! ([`Runner::actor_stopping`](crate::runner::Runner::actor_stopping) on the starting actor) and
//! report the failure to whatever starts actors; the gateway keeps the requests hibernating, and
//! a later start (after the disk or file is fixed) restores them.
//!
//! # State shared by several sockets of one actor
//!
//! When the actor's state depends on messages of several sockets (a chat room fed by every
//! member), a commit of that state must carry the index of **every** socket whose messages it
//! contains, not only the socket named by the `Persist`: otherwise a crash after the commit
//! replays the other sockets' unacknowledged messages into a state that already holds them.
//! The app tracks, per socket, the last index it applied ([`Action::Message`]'s `index`), and on
//! each `Persist` commits the shared state with [`Commit::advance`] of every socket of the actor
//! at its applied index. Indices stored ahead of what the runner asked for are safe: on
//! restore the runner re-acks them and drops the gateway's replay up to them as duplicates.
//! `tests/storage.rs` runs this pattern against a crash.
//!
//! [`Action::Message`]: crate::runner::Action::Message

use alloc::string::String;
use alloc::vec::Vec;
use std::io;

use crate::index::MessageIndex;
use crate::runner::{PersistedSocket, SocketId};

mod codec;
mod file;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(test)]
mod tests;

pub use file::FileStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

/// Everything stored for one actor, as [`Store::load`] returns it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ActorRecord {
    /// The actor the record belongs to (checked on load).
    pub actor_id: String,
    /// The app's state for the whole actor (empty if never written).
    pub state: Vec<u8>,
    /// Every socket with stored metadata, ordered by [`SocketId`].
    pub sockets: Vec<StoredSocket>,
}

impl ActorRecord {
    /// An empty record of `actor_id` (what `load` returns for an actor never committed).
    #[must_use]
    pub fn empty(actor_id: &str) -> Self {
        Self {
            actor_id: actor_id.into(),
            state: Vec::new(),
            sockets: Vec::new(),
        }
    }

    /// The sockets' metadata, for [`Runner::restore`](crate::runner::Runner::restore).
    #[must_use]
    pub fn persisted(&self) -> Vec<PersistedSocket> {
        self.sockets.iter().map(|s| s.meta.clone()).collect()
    }

    /// The stored socket `socket`, if any.
    #[must_use]
    pub fn socket(&self, socket: SocketId) -> Option<&StoredSocket> {
        self.sockets.iter().find(|s| s.meta.socket == socket)
    }
}

/// One socket's stored metadata, indices and the app's per-socket state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredSocket {
    /// Metadata and indices, as the runner restores them.
    pub meta: PersistedSocket,
    /// The app's state derived from this socket's messages up to `meta.server_index`.
    pub state: Vec<u8>,
}

impl StoredSocket {
    /// A stored socket from its metadata and state.
    #[must_use]
    pub fn new(meta: PersistedSocket, state: Vec<u8>) -> Self {
        Self { meta, state }
    }
}

/// One change of a [`Commit`] to a socket's record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SocketWrite {
    /// Create or replace the whole record (the socket's first persist).
    Put(StoredSocket),
    /// Move an existing record's indices, and replace its state when `state` is `Some`. The
    /// commit fails with [`StoreError::MissingSocket`] if the record does not exist.
    Advance {
        /// The socket.
        socket: SocketId,
        /// The last index whose message the stored state contains.
        server_index: MessageIndex,
        /// The next outgoing index.
        client_index: MessageIndex,
        /// The socket's new state, or `None` to keep the stored one.
        state: Option<Vec<u8>>,
    },
    /// Delete the record (the socket closed: [`Action::DeleteMetadata`](crate::runner::Action::DeleteMetadata)).
    Delete(SocketId),
}

/// Changes to one actor's record, applied all or nothing by [`Store::commit`], in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Commit {
    /// Socket changes, applied in order.
    pub sockets: Vec<SocketWrite>,
    /// The actor's new state, or `None` to keep the stored one.
    pub state: Option<Vec<u8>>,
}

impl Commit {
    /// An empty commit.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds [`SocketWrite::Put`].
    #[must_use]
    pub fn put(mut self, socket: StoredSocket) -> Self {
        self.sockets.push(SocketWrite::Put(socket));
        self
    }

    /// Adds [`SocketWrite::Advance`].
    #[must_use]
    pub fn advance(
        mut self,
        socket: SocketId,
        server_index: MessageIndex,
        client_index: MessageIndex,
        state: Option<Vec<u8>>,
    ) -> Self {
        self.sockets.push(SocketWrite::Advance {
            socket,
            server_index,
            client_index,
            state,
        });
        self
    }

    /// Adds [`SocketWrite::Delete`].
    #[must_use]
    pub fn delete(mut self, socket: SocketId) -> Self {
        self.sockets.push(SocketWrite::Delete(socket));
        self
    }

    /// Replaces the actor's state.
    #[must_use]
    pub fn state(mut self, state: Vec<u8>) -> Self {
        self.state = Some(state);
        self
    }

    /// Applies the commit to an in-memory record (what every store does, atomically).
    ///
    /// # Errors
    /// [`StoreError::MissingSocket`] for an `Advance` of a socket the record does not hold;
    /// `record` may then be partly changed (stores apply to a copy or roll back).
    pub fn apply_to(&self, record: &mut ActorRecord) -> Result<(), StoreError> {
        for write in &self.sockets {
            match write {
                SocketWrite::Put(s) => {
                    match record
                        .sockets
                        .binary_search_by_key(&s.meta.socket, |r| r.meta.socket)
                    {
                        Ok(i) => record.sockets[i] = s.clone(),
                        Err(i) => record.sockets.insert(i, s.clone()),
                    }
                }
                SocketWrite::Advance {
                    socket,
                    server_index,
                    client_index,
                    state,
                } => {
                    let Some(r) = record.sockets.iter_mut().find(|r| r.meta.socket == *socket)
                    else {
                        return Err(StoreError::MissingSocket {
                            actor_id: record.actor_id.clone(),
                            socket: *socket,
                        });
                    };
                    r.meta.server_index = *server_index;
                    r.meta.client_index = *client_index;
                    if let Some(state) = state {
                        r.state.clone_from(state);
                    }
                }
                SocketWrite::Delete(socket) => record.sockets.retain(|r| r.meta.socket != *socket),
            }
        }
        if let Some(state) = &self.state {
            record.state.clone_from(state);
        }
        Ok(())
    }
}

/// Durable storage of actor records. Implementations must keep the guarantees in the
/// [module documentation](self). Methods block; call them off an async runtime's workers
/// (`spawn_blocking`).
pub trait Store: Send + Sync {
    /// The record of `actor_id`; an empty record if nothing was ever committed for it.
    ///
    /// # Errors
    /// Any failure to read, decode or attribute the record. The caller must not start the
    /// actor on an error.
    fn load(&self, actor_id: &str) -> Result<ActorRecord, StoreError>;

    /// Applies `commit` to the record of `actor_id` atomically and durably.
    ///
    /// # Errors
    /// Nothing of the commit is applied (after a crash, nothing of it is loaded).
    fn commit(&self, actor_id: &str, commit: &Commit) -> Result<(), StoreError>;
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing failed (EIO, EMFILE, ENOSPC, permissions, …).
    #[error("storage of actor {actor_id:?}: {source}")]
    Io {
        /// The actor.
        actor_id: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The stored record does not decode or fails its checksum.
    #[error("stored record of actor {actor_id:?} is corrupt: {detail}")]
    Corrupt {
        /// The actor.
        actor_id: String,
        /// What is wrong.
        detail: String,
    },
    /// The record found under `actor_id`'s key belongs to another actor.
    #[error("stored record for actor {actor_id:?} belongs to actor {found:?}")]
    ForeignRecord {
        /// The actor that was asked for.
        actor_id: String,
        /// The actor the record names.
        found: String,
    },
    /// The actor id cannot be stored (the file store: its encoded name is too long for a file
    /// name).
    #[error("actor id {actor_id:?} cannot be stored: {reason}")]
    InvalidActorId {
        /// The actor.
        actor_id: String,
        /// Why.
        reason: &'static str,
    },
    /// A [`SocketWrite::Advance`] of a socket that has no record; nothing was committed.
    #[error("actor {actor_id:?} has no stored socket {socket:?}")]
    MissingSocket {
        /// The actor.
        actor_id: String,
        /// The socket.
        socket: SocketId,
    },
    /// SQLite failed.
    #[cfg(feature = "sqlite")]
    #[error("sqlite storage of actor {actor_id:?}: {source}")]
    Sqlite {
        /// The actor.
        actor_id: String,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
}

impl StoreError {
    /// The actor the error concerns.
    #[must_use]
    pub fn actor_id(&self) -> &str {
        match self {
            Self::Io { actor_id, .. }
            | Self::Corrupt { actor_id, .. }
            | Self::ForeignRecord { actor_id, .. }
            | Self::InvalidActorId { actor_id, .. }
            | Self::MissingSocket { actor_id, .. } => actor_id,
            #[cfg(feature = "sqlite")]
            Self::Sqlite { actor_id, .. } => actor_id,
        }
    }
}
