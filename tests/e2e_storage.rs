//! The demo's storage over real WebSockets, with each store the crate ships: actor ids that an
//! ad-hoc file naming would merge, a record that does not load (the start stops; the client is
//! not closed; a later start restores everything), and a record that stays bounded.
//!
//! Real time, not paused (see `e2e_demo.rs`). No timing assertions: every wait is for an event,
//! bounded by a generous timeout that only fails a broken system.

#![allow(
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc,
    clippy::unwrap_used // test helpers
)] // application code on std

mod e2e_support;

use std::path::Path;

use demo::client::Client;
use demo::gateway::GatewayServer;
use demo::runner::{RunnerInstance, RunnerOptions};
use demo::scenario::{DataDir, committed_result};
use demo::storage::{ActorState, FINISHED_KEPT, StorageKind};
use e2e_support::{WAIT, demo, eventually, gateway, runner_options, start_runner};
use hibernating_ws::gateway::GatewayConfig;

fn kinds() -> Vec<StorageKind> {
    let mut v = vec![StorageKind::File];
    if cfg!(feature = "sqlite") {
        v.push(StorageKind::Sqlite);
    }
    v
}

async fn setup(dir: &DataDir, storage: StorageKind) -> (GatewayServer, RunnerInstance) {
    let server = gateway(GatewayConfig::default()).await;
    let runner = start_runner(RunnerOptions {
        storage,
        ..runner_options(&server, dir, "runner-1")
    })
    .await;
    (server, runner)
}

/// Sends messages `from..to` of stream `seed`; returns the digest of `0..to` given that of
/// `0..from`.
async fn stream(client: &mut Client, seed: u64, from: u64, to: u64, digest: u64) -> u64 {
    e2e_support::stream(client, seed, from, to, 500, digest).await
}

/// `x_y` and `x.y` (one file under the old demo's naming) keep separate, complete state across
/// sleeps, with either store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actor_ids_x_y_and_x_dot_y_keep_separate_state() {
    for storage in kinds() {
        let dir = DataDir::new(None).expect("temp dir");
        let (server, _runner) = setup(&dir, storage).await;
        let mut a = Client::connect(&server.url(), "x_y")
            .await
            .expect("connect");
        let mut b = Client::connect(&server.url(), "x.y")
            .await
            .expect("connect");
        let da = stream(&mut a, 1, 0, 5, 0).await;
        let db = stream(&mut b, 2, 0, 20, 0).await;
        assert_eq!(a.wait_echo(5, WAIT).await, Some((5, da)));
        assert_eq!(b.wait_echo(20, WAIT).await, Some((20, db)));
        server.sleep_actor("x_y").await;
        server.sleep_actor("x.y").await;
        let da = stream(&mut a, 1, 5, 10, da).await;
        let db = stream(&mut b, 2, 20, 43, db).await;
        assert_eq!(a.wait_echo(10, WAIT).await, Some((10, da)), "{storage:?}");
        assert_eq!(b.wait_echo(43, WAIT).await, Some((43, db)), "{storage:?}");
        let _ = a.close(1000, "done").await;
        let _ = b.close(1000, "done").await;
        for (actor, count, digest) in [("x_y", 10, da), ("x.y", 43, db)] {
            let s = committed_result(&dir.path, storage, actor, WAIT)
                .await
                .expect("committed");
            assert_eq!(
                (s.count, s.digest, s.duplicates, s.gaps),
                (count, digest, 0, 0),
                "{storage:?} {actor}"
            );
        }
    }
}

/// How a test breaks an actor's stored record and mends it.
trait Breakage {
    fn break_it(&mut self, dir: &Path, actor: &str);
    fn mend(&mut self, dir: &Path, actor: &str);
}

/// The file store: the record replaced by JSON (foreign data) or by a directory (reading it fails
/// with an I/O error, as with EIO).
struct FileBreakage {
    saved: Vec<u8>,
    as_dir: bool,
}

impl Breakage for FileBreakage {
    fn break_it(&mut self, dir: &Path, actor: &str) {
        let path = hibernating_ws::storage::FileStore::open(dir)
            .unwrap()
            .path_of(actor)
            .unwrap();
        self.saved = std::fs::read(&path).expect("the hibernated socket's record exists");
        if self.as_dir {
            std::fs::remove_file(&path).unwrap();
            std::fs::create_dir(&path).unwrap();
        } else {
            std::fs::write(&path, b"{\"actor_id\":\"sleepy\",\"sockets\":[]}").unwrap();
        }
    }

    fn mend(&mut self, dir: &Path, actor: &str) {
        let path = hibernating_ws::storage::FileStore::open(dir)
            .unwrap()
            .path_of(actor)
            .unwrap();
        if self.as_dir {
            std::fs::remove_dir(&path).unwrap();
        }
        std::fs::write(&path, &self.saved).unwrap();
    }
}

/// The SQLite store: a socket row whose headers do not decode.
#[cfg(feature = "sqlite")]
struct SqliteBreakage(Vec<u8>);

#[cfg(feature = "sqlite")]
impl Breakage for SqliteBreakage {
    fn break_it(&mut self, dir: &Path, actor: &str) {
        let conn = rusqlite::Connection::open(dir.join("actors.db")).unwrap();
        self.0 = conn
            .query_row(
                "SELECT headers FROM hws_socket WHERE actor_id = ?1",
                [actor],
                |r| r.get(0),
            )
            .expect("the hibernated socket's row exists");
        conn.execute(
            "UPDATE hws_socket SET headers = x'ff' WHERE actor_id = ?1",
            [actor],
        )
        .unwrap();
    }

    fn mend(&mut self, dir: &Path, actor: &str) {
        let conn = rusqlite::Connection::open(dir.join("actors.db")).unwrap();
        conn.execute(
            "UPDATE hws_socket SET headers = ?2 WHERE actor_id = ?1",
            rusqlite::params![actor, self.0],
        )
        .unwrap();
    }
}

/// A record that does not load stops the actor's start with a typed error: the hibernated
/// client is not closed, nothing is acked or lost, and once the record reads again the next
/// start restores the socket and every message arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_failure_stops_the_start_and_the_client_is_not_closed() {
    #[cfg_attr(not(feature = "sqlite"), allow(unused_mut))]
    let mut cases: Vec<(StorageKind, Box<dyn Breakage>)> = vec![
        (
            StorageKind::File,
            Box::new(FileBreakage {
                saved: Vec::new(),
                as_dir: false,
            }),
        ),
        (
            StorageKind::File,
            Box::new(FileBreakage {
                saved: Vec::new(),
                as_dir: true,
            }),
        ),
    ];
    #[cfg(feature = "sqlite")]
    cases.push((StorageKind::Sqlite, Box::new(SqliteBreakage(Vec::new()))));
    for (storage, mut breakage) in cases {
        let dir = DataDir::new(None).expect("temp dir");
        let (server, _runner) = setup(&dir, storage).await;
        let mut client = Client::connect(&server.url(), "sleepy")
            .await
            .expect("connect");
        let d = stream(&mut client, 3, 0, 20, 0).await;
        assert_eq!(client.wait_echo(20, WAIT).await, Some((20, d)));
        server.sleep_actor("sleepy").await;

        breakage.break_it(&dir.path, "sleepy");
        // The client keeps talking: the gateway wakes the actor, whose start fails.
        let d = stream(&mut client, 3, 20, 25, d).await;
        let s = eventually("a failed start", || async {
            let s = server.snapshot().await;
            (s.start_failures >= 1).then_some(s)
        })
        .await;
        let error = s.last_start_error.clone().unwrap_or_default();
        assert!(
            error.contains("sleepy"),
            "the error names the actor: {error}"
        );
        assert!(
            s.closes.is_empty(),
            "{storage:?}: no request was closed: {:?}",
            s.closes
        );
        assert_eq!(s.requests, 1);
        assert!(
            !client.ended(),
            "{storage:?}: the client is still connected"
        );
        assert_eq!(
            client.echoes(),
            20,
            "nothing was processed on an empty state"
        );

        breakage.mend(&dir.path, "sleepy");
        assert_eq!(
            client.wait_echo(25, WAIT).await,
            Some((25, d)),
            "{storage:?}: restored and replayed"
        );
        let _ = client.close(1000, "done").await;
        let s = committed_result(&dir.path, storage, "sleepy", WAIT)
            .await
            .expect("committed");
        assert_eq!(
            (s.count, s.digest, s.duplicates, s.gaps),
            (25, d, 0, 0),
            "{storage:?}"
        );
    }
}

/// An actor that served many connections keeps a bounded record: closed sockets are deleted and
/// only the last few results are remembered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_stays_bounded_over_many_connections() {
    for storage in kinds() {
        let dir = DataDir::new(None).expect("temp dir");
        let (server, _runner) = setup(&dir, storage).await;
        let connections = 2 * FINISHED_KEPT as u64 + 4;
        for seed in 0..connections {
            let mut c = Client::connect(&server.url(), "busy")
                .await
                .expect("connect");
            let d = stream(&mut c, seed, 0, 3, 0).await;
            assert_eq!(c.wait_echo(3, WAIT).await, Some((3, d)));
            let _ = c.close(1000, "done").await;
        }
        let store = storage.open(&dir.path).expect("store");
        let record = eventually("every close to reach the store", || async {
            let r = store.load("busy").ok()?;
            let state = ActorState::decode(&r.state).ok()?;
            (r.sockets.is_empty() && state.finished.len() == FINISHED_KEPT).then_some(state)
        })
        .await;
        assert!(
            record.finished.iter().all(|f| f.state.count == 3),
            "{storage:?}"
        );
        if storage == StorageKind::File {
            let path = hibernating_ws::storage::FileStore::open(&dir.path)
                .unwrap()
                .path_of("busy")
                .unwrap();
            let len = std::fs::metadata(path).unwrap().len();
            assert!(
                len < 4096,
                "the record holds {FINISHED_KEPT} results, not {connections}: {len} bytes"
            );
        }
    }
}
