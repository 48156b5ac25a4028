//! [`FileStore`]: one file per actor, replaced atomically on every commit.

use alloc::format;
use alloc::string::String;
use core::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use super::{ActorRecord, Commit, Store, StoreError, codec};

/// Longest file name the store creates (most file systems allow 255 bytes).
const MAX_NAME: usize = 240;

/// A [`Store`] keeping one file per actor in a directory.
///
/// * **Keys**: the file name encodes the actor id injectively, also on case-insensitive file
///   systems: `a`–`z`, `0`–`9` and `-` stand for themselves, every other byte is `_` and two
///   lowercase hex digits (`x_y` → `actor-x_5fy.hws`, `x.y` → `actor-x_2ey.hws`). The record
///   also names its actor, and [`load`](Store::load) checks it ([`StoreError::ForeignRecord`]).
///   Ids whose name would exceed 240 bytes are refused ([`StoreError::InvalidActorId`]).
/// * **Atomic and durable**: a commit reads the actor's record, applies the commit, writes the
///   result to a temporary file, syncs it, renames it over the record and syncs the directory.
///   A crash leaves the old record or the new one, never a mix; a leftover temporary file is
///   ignored and overwritten by the next commit.
/// * **Checked**: a record carries a magic, a format version and a checksum; anything else is
///   [`StoreError::Corrupt`]. Records larger than
///   [`max_record_bytes`](Self::with_max_record_bytes) are refused before they are read.
/// * **Size**: a record holds the actor's state and its sockets that are still open; it is
///   removed when both are empty. Every commit rewrites the actor's whole record, so the cost
///   of a persist grows with the actor's open sockets and state: for actors with many sockets
///   or large state prefer [`SqliteStore`](super::SqliteStore), which writes only the rows a
///   commit changes.
///
/// Commits are serialized by a lock; one actor should be written by one process at a time
/// (the runner that hosts it).
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    max_record_bytes: u64,
    lock: Mutex<()>,
    #[cfg(test)]
    pub(super) fault: Mutex<Option<Fault>>,
}

/// A simulated crash point inside a commit (unit tests only).
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    /// Half of the temporary file is written, then the process dies.
    TornTemp,
    /// The temporary file is complete and synced, then the process dies before the rename.
    BeforeRename,
}

impl FileStore {
    /// A store in `dir`, created if missing.
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            max_record_bytes: 64 << 20,
            lock: Mutex::new(()),
            #[cfg(test)]
            fault: Mutex::new(None),
        })
    }

    /// Refuses to read records larger than `max` bytes (default 64 MiB).
    #[must_use]
    pub fn with_max_record_bytes(mut self, max: u64) -> Self {
        self.max_record_bytes = max;
        self
    }

    /// The directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file holding `actor_id`'s record.
    ///
    /// # Errors
    /// [`StoreError::InvalidActorId`] if the encoded name is too long.
    pub fn path_of(&self, actor_id: &str) -> Result<PathBuf, StoreError> {
        let mut name = String::from("actor-");
        for b in actor_id.bytes() {
            if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' {
                name.push(char::from(b));
            } else {
                let _ = write!(name, "_{b:02x}");
            }
        }
        name.push_str(".hws");
        if name.len() > MAX_NAME {
            return Err(StoreError::InvalidActorId {
                actor_id: actor_id.into(),
                reason: "its file name would exceed 240 bytes",
            });
        }
        Ok(self.dir.join(name))
    }

    fn read(&self, actor_id: &str, path: &Path) -> Result<ActorRecord, StoreError> {
        let io_err = |source| StoreError::Io {
            actor_id: actor_id.into(),
            source,
        };
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(ActorRecord::empty(actor_id));
            }
            Err(e) => return Err(io_err(e)),
        };
        let len = file.metadata().map_err(io_err)?.len();
        if len > self.max_record_bytes {
            return Err(StoreError::Corrupt {
                actor_id: actor_id.into(),
                detail: format!(
                    "record of {len} bytes exceeds the maximum of {}",
                    self.max_record_bytes
                ),
            });
        }
        let mut bytes = alloc::vec::Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        file.take(self.max_record_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(io_err)?;
        codec::decode(actor_id, &bytes)
    }

    fn write(&self, actor_id: &str, path: &Path, record: &ActorRecord) -> Result<(), StoreError> {
        let io_err = |source| StoreError::Io {
            actor_id: actor_id.into(),
            source,
        };
        if record.sockets.is_empty() && record.state.is_empty() {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(io_err(e)),
            }
            return sync_dir(&self.dir).map_err(io_err);
        }
        let bytes = codec::encode(record)?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut f = File::create(&tmp).map_err(io_err)?;
        #[cfg(test)]
        if self.fault() == Some(Fault::TornTemp) {
            f.write_all(&bytes[..bytes.len() / 2]).map_err(io_err)?;
            return Err(io_err(io::Error::other("simulated crash mid-write")));
        }
        f.write_all(&bytes).map_err(io_err)?;
        f.sync_all().map_err(io_err)?;
        drop(f);
        #[cfg(test)]
        if self.fault() == Some(Fault::BeforeRename) {
            return Err(io_err(io::Error::other("simulated crash before rename")));
        }
        fs::rename(&tmp, path).map_err(io_err)?;
        sync_dir(&self.dir).map_err(io_err)
    }

    #[cfg(test)]
    fn fault(&self) -> Option<Fault> {
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Makes a rename or removal in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

impl Store for FileStore {
    fn load(&self, actor_id: &str) -> Result<ActorRecord, StoreError> {
        let path = self.path_of(actor_id)?;
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.read(actor_id, &path)
    }

    fn commit(&self, actor_id: &str, commit: &Commit) -> Result<(), StoreError> {
        let path = self.path_of(actor_id)?;
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut record = self.read(actor_id, &path)?;
        commit.apply_to(&mut record)?;
        self.write(actor_id, &path, &record)
    }
}
