//! [`SqliteStore`]: actor records as rows of a SQLite database, one transaction per commit.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::index::MessageIndex;
use crate::runner::{PersistedSocket, SocketId};
use crate::wire::{GatewayId, RequestId};

use super::{ActorRecord, Commit, SocketWrite, Store, StoreError, StoredSocket, codec};

/// The schema version this store writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS hws_actor (
    actor_id TEXT PRIMARY KEY NOT NULL,
    state BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hws_socket (
    actor_id TEXT NOT NULL,
    gateway_id BLOB NOT NULL,
    request_id BLOB NOT NULL,
    server_index INTEGER NOT NULL,
    client_index INTEGER NOT NULL,
    path TEXT NOT NULL,
    headers BLOB NOT NULL,
    state BLOB NOT NULL,
    PRIMARY KEY (actor_id, gateway_id, request_id)
) WITHOUT ROWID;
";

/// A [`Store`] in a SQLite database (feature `sqlite`; SQLite is compiled in).
///
/// * **Keys**: the actor id is the primary key as text, so distinct ids never share rows, and
///   rows are selected by exact id.
/// * **Atomic and durable**: each commit is one `IMMEDIATE` transaction; the database runs in
///   WAL mode with `synchronous = FULL`, so a committed transaction survives a power loss and
///   a crash mid-commit rolls back on the next open.
/// * **Checked**: rows that do not decode (ids of the wrong length, indices out of range,
///   headers that do not decode or repeat a key) are [`StoreError::Corrupt`].
/// * **Size**: one row per open socket and one per actor with state; a commit writes only the
///   rows it names ([`SocketWrite::Advance`] with `state: None` updates two integers).
///
/// One connection, serialized by a lock; open one store per database per process.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    #[cfg(test)]
    pub(super) fail_before_commit: core::sync::atomic::AtomicBool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    ///
    /// # Errors
    /// The database cannot be opened, or its schema is from another version.
    pub fn open(path: impl AsRef<Path>) -> rusqlite::Result<Self> {
        Self::from_connection(Connection::open(path)?)
    }

    /// A store in a private in-memory database (tests).
    ///
    /// # Errors
    /// SQLite failed.
    pub fn open_in_memory() -> rusqlite::Result<Self> {
        Self::from_connection(Connection::open_in_memory()?)
    }

    /// A store on an open connection: sets WAL mode, `synchronous = FULL` and a busy timeout,
    /// and creates the tables if missing.
    ///
    /// # Errors
    /// SQLite failed, or the database's `user_version` is neither 0 nor this store's.
    pub fn from_connection(conn: Connection) -> rusqlite::Result<Self> {
        conn.busy_timeout(core::time::Duration::from_secs(5))?;
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version != 0 && version != SCHEMA_VERSION {
            return Err(rusqlite::Error::InvalidParameterName(format!(
                "database schema version {version}; this store reads version {SCHEMA_VERSION}"
            )));
        }
        conn.execute_batch(SCHEMA)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        Ok(Self {
            conn: Mutex::new(conn),
            #[cfg(test)]
            fail_before_commit: core::sync::atomic::AtomicBool::new(false),
        })
    }

    fn try_load(conn: &mut Connection, actor_id: &str) -> Result<ActorRecord, StoreError> {
        let sql = |source| StoreError::Sqlite {
            actor_id: actor_id.into(),
            source,
        };
        let tx = conn.transaction().map_err(sql)?;
        let state: Option<Vec<u8>> = tx
            .query_row(
                "SELECT state FROM hws_actor WHERE actor_id = ?1",
                [actor_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        let mut stmt = tx
            .prepare(
                "SELECT gateway_id, request_id, server_index, client_index, path, headers, state \
                 FROM hws_socket WHERE actor_id = ?1 ORDER BY gateway_id, request_id",
            )
            .map_err(sql)?;
        let rows = stmt
            .query_map([actor_id], |r| {
                Ok(Row {
                    gateway_id: r.get(0)?,
                    request_id: r.get(1)?,
                    server_index: r.get(2)?,
                    client_index: r.get(3)?,
                    path: r.get(4)?,
                    headers: r.get(5)?,
                    state: r.get(6)?,
                })
            })
            .map_err(sql)?;
        let mut sockets = Vec::new();
        for row in rows {
            sockets.push(row.map_err(sql)?.decode(actor_id)?);
        }
        sockets.sort_by_key(|s| s.meta.socket);
        Ok(ActorRecord {
            actor_id: actor_id.into(),
            state: state.unwrap_or_default(),
            sockets,
        })
    }

    #[cfg_attr(not(test), allow(clippy::unused_self))] // the test-only crash point reads `self`
    fn try_commit(
        &self,
        conn: &mut Connection,
        actor_id: &str,
        commit: &Commit,
    ) -> Result<(), StoreError> {
        let sql = |source| StoreError::Sqlite {
            actor_id: actor_id.into(),
            source,
        };
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        for write in &commit.sockets {
            match write {
                SocketWrite::Put(s) => {
                    let headers = serde_bare::to_vec(&s.meta.headers.clone().into_entries())
                        .map_err(|e| StoreError::Corrupt {
                            actor_id: actor_id.into(),
                            detail: format!("headers do not encode: {e}"),
                        })?;
                    tx.execute(
                        "INSERT OR REPLACE INTO hws_socket VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        params![
                            actor_id,
                            &s.meta.socket.gateway_id.0[..],
                            &s.meta.socket.request_id.0[..],
                            s.meta.server_index.get(),
                            s.meta.client_index.get(),
                            s.meta.path,
                            headers,
                            s.state,
                        ],
                    )
                    .map_err(sql)?;
                }
                SocketWrite::Advance {
                    socket,
                    server_index,
                    client_index,
                    state,
                } => {
                    let changed = tx
                        .execute(
                            "UPDATE hws_socket SET server_index = ?4, client_index = ?5, \
                             state = COALESCE(?6, state) \
                             WHERE actor_id = ?1 AND gateway_id = ?2 AND request_id = ?3",
                            params![
                                actor_id,
                                &socket.gateway_id.0[..],
                                &socket.request_id.0[..],
                                server_index.get(),
                                client_index.get(),
                                state,
                            ],
                        )
                        .map_err(sql)?;
                    if changed == 0 {
                        return Err(StoreError::MissingSocket {
                            actor_id: actor_id.into(),
                            socket: *socket,
                        });
                    }
                }
                SocketWrite::Delete(socket) => {
                    tx.execute(
                        "DELETE FROM hws_socket \
                         WHERE actor_id = ?1 AND gateway_id = ?2 AND request_id = ?3",
                        params![actor_id, &socket.gateway_id.0[..], &socket.request_id.0[..]],
                    )
                    .map_err(sql)?;
                }
            }
        }
        match &commit.state {
            Some(state) if state.is_empty() => {
                tx.execute("DELETE FROM hws_actor WHERE actor_id = ?1", [actor_id])
                    .map_err(sql)?;
            }
            Some(state) => {
                tx.execute(
                    "INSERT OR REPLACE INTO hws_actor VALUES (?1, ?2)",
                    params![actor_id, state],
                )
                .map_err(sql)?;
            }
            None => {}
        }
        #[cfg(test)]
        if self
            .fail_before_commit
            .load(core::sync::atomic::Ordering::Relaxed)
        {
            // Dropping the transaction rolls it back, as SQLite's recovery does after a crash.
            return Err(StoreError::Io {
                actor_id: actor_id.into(),
                source: std::io::Error::other("simulated crash before commit"),
            });
        }
        tx.commit().map_err(sql)
    }
}

/// One `hws_socket` row as read.
struct Row {
    gateway_id: Vec<u8>,
    request_id: Vec<u8>,
    server_index: i64,
    client_index: i64,
    path: String,
    headers: Vec<u8>,
    state: Vec<u8>,
}

impl Row {
    fn decode(self, actor_id: &str) -> Result<StoredSocket, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            actor_id: actor_id.into(),
            detail,
        };
        let id = |bytes: &[u8]| {
            <[u8; 4]>::try_from(bytes).map_err(|_| corrupt(format!("id of {} bytes", bytes.len())))
        };
        let index = |v: i64| {
            u16::try_from(v)
                .map(MessageIndex::new)
                .map_err(|_| corrupt(format!("index {v} out of range")))
        };
        let entries: Vec<(String, String)> =
            serde_bare::from_slice(&self.headers).map_err(|e| corrupt(e.to_string()))?;
        Ok(StoredSocket {
            meta: PersistedSocket {
                socket: SocketId::new(
                    GatewayId(id(&self.gateway_id)?),
                    RequestId(id(&self.request_id)?),
                ),
                server_index: index(self.server_index)?,
                client_index: index(self.client_index)?,
                path: self.path,
                headers: codec::headers(entries).map_err(corrupt)?,
            },
            state: self.state,
        })
    }
}

impl Store for SqliteStore {
    fn load(&self, actor_id: &str) -> Result<ActorRecord, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        Self::try_load(&mut conn, actor_id)
    }

    fn commit(&self, actor_id: &str, commit: &Commit) -> Result<(), StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        self.try_commit(&mut conn, actor_id, commit)
    }
}
