//! Store tests, run against every store the crate ships, with simulated crashes.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use std::path::PathBuf;
use std::sync::PoisonError;

use super::file::Fault;
use super::{ActorRecord, Commit, FileStore, Store, StoreError, StoredSocket};
use crate::index::MessageIndex;
use crate::runner::{PersistedSocket, SocketId};
use crate::wire::{GatewayId, Headers, RequestId};

/// Removes the test's directory when the test ends.
struct Cleanup(&'static str);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(dir_of(self.0));
    }
}

fn dir_of(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("hws-store-{name}-{}", std::process::id()))
}

fn tempdir(name: &str) -> PathBuf {
    let dir = dir_of(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn sid(n: u32) -> SocketId {
    SocketId::new(GatewayId([9, 9, 9, 9]), RequestId::from_u32(n))
}

fn stored(n: u32, index: u16, state: &[u8]) -> StoredSocket {
    StoredSocket::new(
        PersistedSocket {
            socket: sid(n),
            server_index: MessageIndex::new(index),
            client_index: MessageIndex::new(7),
            path: "/chat".into(),
            headers: Headers::from_iter([("x-user", "ann"), ("origin", "o")]),
        },
        state.to_vec(),
    )
}

/// Every store under test, fresh.
fn stores(name: &str) -> Vec<(&'static str, Box<dyn Store>)> {
    #[cfg_attr(not(feature = "sqlite"), allow(unused_mut))]
    let mut v: Vec<(&'static str, Box<dyn Store>)> = vec![(
        "file",
        Box::new(FileStore::open(tempdir(name)).expect("dir")),
    )];
    #[cfg(feature = "sqlite")]
    v.push((
        "sqlite",
        Box::new(super::SqliteStore::open_in_memory().expect("sqlite")),
    ));
    v
}

#[test]
fn commits_round_trip() {
    let _cleanup_0 = Cleanup("round-trip");
    for (kind, store) in stores("round-trip") {
        assert_eq!(store.load("a").unwrap(), ActorRecord::empty("a"), "{kind}");
        let c = Commit::new()
            .put(stored(1, 3, b"s1"))
            .put(stored(2, 4, b"s2"))
            .state(b"room".to_vec());
        store.commit("a", &c).unwrap();
        let c = Commit::new()
            .advance(sid(1), MessageIndex::new(10), MessageIndex::new(8), None)
            .advance(
                sid(2),
                MessageIndex::new(11),
                MessageIndex::new(9),
                Some(b"s2'".to_vec()),
            );
        store.commit("a", &c).unwrap();
        let r = store.load("a").unwrap();
        assert_eq!(r.state, b"room", "{kind}");
        assert_eq!(r.sockets.len(), 2, "{kind}");
        let s1 = r.socket(sid(1)).unwrap();
        assert_eq!(
            (s1.meta.server_index.get(), s1.meta.client_index.get()),
            (10, 8),
            "{kind}"
        );
        assert_eq!(s1.state, b"s1", "{kind}");
        assert_eq!(s1.meta.headers.get("x-user"), Some("ann"), "{kind}");
        assert_eq!(s1.meta.path, "/chat", "{kind}");
        assert_eq!(r.socket(sid(2)).unwrap().state, b"s2'", "{kind}");
        store.commit("a", &Commit::new().delete(sid(1))).unwrap();
        assert_eq!(store.load("a").unwrap().persisted().len(), 1, "{kind}");
        // Another actor is untouched.
        assert_eq!(store.load("b").unwrap(), ActorRecord::empty("b"), "{kind}");
    }
}

#[test]
fn similar_ids_never_share_a_record() {
    let _cleanup_0 = Cleanup("ids");
    for (kind, store) in stores("ids") {
        let ids = ["x_y", "x.y", "x y", "X_Y", "x_5fy", "x/y", "", "é"];
        for (n, id) in (0u32..).zip(ids) {
            store
                .commit(id, &Commit::new().put(stored(n, 1, id.as_bytes())))
                .unwrap();
        }
        for (n, id) in (0u32..).zip(ids) {
            let r = store.load(id).unwrap();
            assert_eq!(r.actor_id, id, "{kind}");
            assert_eq!(r.sockets.len(), 1, "{kind} {id:?}");
            assert_eq!(r.sockets[0].meta.socket, sid(n), "{kind} {id:?}");
            assert_eq!(r.sockets[0].state, id.as_bytes(), "{kind} {id:?}");
        }
    }
}

#[test]
fn a_failed_commit_applies_nothing() {
    let _cleanup_0 = Cleanup("atomic");
    for (kind, store) in stores("atomic") {
        store
            .commit("a", &Commit::new().put(stored(1, 1, b"one")))
            .unwrap();
        let before = store.load("a").unwrap();
        let c = Commit::new()
            .put(stored(2, 1, b"two"))
            .advance(sid(1), MessageIndex::new(5), MessageIndex::ZERO, None)
            .advance(sid(3), MessageIndex::new(5), MessageIndex::ZERO, None)
            .state(b"new".to_vec());
        let err = store.commit("a", &c).unwrap_err();
        assert!(
            matches!(&err, StoreError::MissingSocket { actor_id, socket } if actor_id == "a" && *socket == sid(3)),
            "{kind}: {err}"
        );
        assert_eq!(store.load("a").unwrap(), before, "{kind}");
    }
}

#[test]
fn state_stays_bounded_over_many_sockets() {
    let _cleanup_0 = Cleanup("bounded");
    let _cleanup_1 = Cleanup("bounded-file");
    for (kind, store) in stores("bounded") {
        for n in 0..100 {
            store
                .commit("a", &Commit::new().put(stored(n, 1, &[0; 64])))
                .unwrap();
            let c = Commit::new().advance(
                sid(n),
                MessageIndex::new(9),
                MessageIndex::ZERO,
                Some(vec![1; 64]),
            );
            store.commit("a", &c).unwrap();
            store.commit("a", &Commit::new().delete(sid(n))).unwrap();
        }
        assert_eq!(store.load("a").unwrap(), ActorRecord::empty("a"), "{kind}");
    }
    // The file store removes an empty actor's file.
    let dir = tempdir("bounded-file");
    let store = FileStore::open(&dir).unwrap();
    store
        .commit("a", &Commit::new().put(stored(1, 1, b"")))
        .unwrap();
    let path = store.path_of("a").unwrap();
    assert!(path.exists());
    store.commit("a", &Commit::new().delete(sid(1))).unwrap();
    assert!(!path.exists());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn file_names_are_readable_and_injective() {
    let _cleanup_0 = Cleanup("names");
    let store = FileStore::open(tempdir("names")).unwrap();
    let name = |id: &str| {
        store
            .path_of(id)
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    assert_eq!(name("x_y"), "actor-x_5fy.hws");
    assert_eq!(name("x.y"), "actor-x_2ey.hws");
    assert_eq!(name("Ab"), "actor-_41b.hws");
    let long: String = "a".repeat(300);
    assert!(matches!(
        store.path_of(&long),
        Err(StoreError::InvalidActorId { .. })
    ));
}

#[test]
fn file_load_failures_are_typed_errors() {
    let _cleanup_0 = Cleanup("load-failures");
    let store = FileStore::open(tempdir("load-failures")).unwrap();
    store
        .commit("a", &Commit::new().put(stored(1, 5, b"st")))
        .unwrap();
    let good = std::fs::read(store.path_of("a").unwrap()).unwrap();

    // A record copied under another actor's key.
    std::fs::write(store.path_of("b").unwrap(), &good).unwrap();
    let err = store.load("b").unwrap_err();
    assert!(
        matches!(&err, StoreError::ForeignRecord { actor_id, found } if actor_id == "b" && found == "a"),
        "{err}"
    );
    // ... and a commit on it fails too, leaving it as it is.
    assert!(store.commit("b", &Commit::new().delete(sid(1))).is_err());
    assert_eq!(std::fs::read(store.path_of("b").unwrap()).unwrap(), good);

    // Truncated, bit-flipped, foreign data (JSON), empty.
    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 1;
    for bad in [
        &good[..good.len() - 3],
        &flipped[..],
        b"{\"actor_id\":\"c\"}",
        b"",
    ] {
        std::fs::write(store.path_of("c").unwrap(), bad).unwrap();
        let err = store.load("c").unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { actor_id, .. } if actor_id == "c"),
            "{err}"
        );
    }

    // Unreadable (the key is a directory: EISDIR, like EIO a read failure).
    std::fs::create_dir(store.path_of("d").unwrap()).unwrap();
    let err = store.load("d").unwrap_err();
    assert!(
        matches!(&err, StoreError::Io { actor_id, .. } if actor_id == "d"),
        "{err}"
    );
    assert_eq!(err.actor_id(), "d");

    // Larger than the limit: refused before it is read.
    let small = FileStore::open(store.dir())
        .unwrap()
        .with_max_record_bytes(8);
    assert!(matches!(small.load("a"), Err(StoreError::Corrupt { .. })));
}

#[test]
fn file_crash_mid_write_keeps_the_old_record() {
    let _cleanup_0 = Cleanup("crash");
    let store = FileStore::open(tempdir("crash")).unwrap();
    store
        .commit("a", &Commit::new().put(stored(1, 5, b"old")))
        .unwrap();
    let before = store.load("a").unwrap();
    for fault in [Fault::TornTemp, Fault::BeforeRename] {
        *store.fault.lock().unwrap_or_else(PoisonError::into_inner) = Some(fault);
        let c = Commit::new().advance(
            sid(1),
            MessageIndex::new(9),
            MessageIndex::ZERO,
            Some(b"new".to_vec()),
        );
        assert!(store.commit("a", &c).is_err(), "{fault:?}");
        *store.fault.lock().unwrap_or_else(PoisonError::into_inner) = None;
        // The "restarted process" reads the old record; the leftover temp file is ignored.
        let reopened = FileStore::open(store.dir()).unwrap();
        assert_eq!(reopened.load("a").unwrap(), before, "{fault:?}");
    }
    // The next commit lands over the leftover temporary file.
    let c = Commit::new().advance(
        sid(1),
        MessageIndex::new(9),
        MessageIndex::ZERO,
        Some(b"new".to_vec()),
    );
    store.commit("a", &c).unwrap();
    assert_eq!(store.load("a").unwrap().sockets[0].state, b"new");
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_crash_mid_commit_keeps_the_old_rows_and_corrupt_rows_are_typed() {
    use core::sync::atomic::Ordering;
    let _cleanup_0 = Cleanup("sqlite");

    let dir = tempdir("sqlite");
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("actors.db");
    let store = super::SqliteStore::open(&db).unwrap();
    store
        .commit("a", &Commit::new().put(stored(1, 5, b"old")))
        .unwrap();
    let before = store.load("a").unwrap();
    store.fail_before_commit.store(true, Ordering::Relaxed);
    let c = Commit::new()
        .advance(
            sid(1),
            MessageIndex::new(9),
            MessageIndex::ZERO,
            Some(b"new".to_vec()),
        )
        .put(stored(2, 1, b""))
        .state(b"x".to_vec());
    assert!(store.commit("a", &c).is_err());
    drop(store);
    let store = super::SqliteStore::open(&db).unwrap();
    assert_eq!(store.load("a").unwrap(), before);

    // A row another program wrote badly.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "INSERT INTO hws_socket VALUES ('b', x'0102', x'01020304', 1, 1, '/', x'00', x'')",
        [],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO hws_socket VALUES ('c', x'01020304', x'01020304', 70000, 1, '/', x'00', x'')",
        [],
    )
    .unwrap();
    for id in ["b", "c"] {
        let err = store.load(id).unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { actor_id, .. } if actor_id == id),
            "{err}"
        );
    }
    // Not a database at all.
    let junk = dir.join("junk.db");
    std::fs::write(
        &junk,
        b"this is not a sqlite database, not even close......",
    )
    .unwrap();
    assert!(super::SqliteStore::open(&junk).is_err());
}
