//! The storage contract against the real engines: a gateway, a runner, an app whose state is
//! shared by several sockets of one actor, and each store the crate ships. The runner crashes
//! between a commit and its ack, and mid-commit; the actor's storage fails to load. Every client
//! message must be in the state exactly once afterwards.

#![allow(
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc,
    clippy::unwrap_used // test helpers
)] // application code on std

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hibernating_ws::gateway::{self, Gateway, GatewayConfig, OpenRequest, Phase, RouteId};
use hibernating_ws::runner::{self, PersistedSocket, Runner, RunnerConfig, SocketId};
use hibernating_ws::storage::{ActorRecord, Commit, FileStore, Store, StoreError, StoredSocket};
use hibernating_ws::wire::{GatewayId, Headers, HibernatingRequest, RequestId};
use hibernating_ws::{MessageIndex, Timestamp};

const ACTOR: &str = "room";
const GW: GatewayId = GatewayId([1, 2, 3, 4]);

/// How the app commits the shared state on a `Persist`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pattern {
    /// The documented pattern: every socket of the actor at the index it applied.
    AllSockets,
    /// Only the socket the `Persist` names (wrong for shared state).
    NamedOnly,
}

/// Where the app "crashes" on its `n`th commit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Crash {
    /// The commit lands; the process dies before reporting it (no ack).
    AfterWrite,
    /// The process dies while writing: nothing of the commit lands.
    MidWrite,
}

struct Sock {
    path: String,
    headers: Headers,
    applied: MessageIndex,
    client: MessageIndex,
    stored: bool,
}

/// The actor: a room whose state is the log of every message of every member, in order.
struct App {
    store: Arc<dyn Store>,
    pattern: Pattern,
    log: Vec<(u32, u32)>,
    sockets: BTreeMap<SocketId, Sock>,
    commits: usize,
    crash: Option<(usize, Crash)>,
    crashed: bool,
}

impl App {
    fn encode(&self) -> Vec<u8> {
        self.log
            .iter()
            .flat_map(|(r, s)| [r.to_le_bytes(), s.to_le_bytes()].concat())
            .collect()
    }

    fn load(&mut self, record: &ActorRecord) {
        self.log = record
            .state
            .chunks_exact(8)
            .map(|c| {
                (
                    u32::from_le_bytes(c[..4].try_into().unwrap()),
                    u32::from_le_bytes(c[4..].try_into().unwrap()),
                )
            })
            .collect();
        self.sockets = record
            .sockets
            .iter()
            .map(|s| {
                let m = &s.meta;
                (
                    m.socket,
                    Sock {
                        path: m.path.clone(),
                        headers: m.headers.clone(),
                        applied: m.server_index,
                        client: m.client_index,
                        stored: true,
                    },
                )
            })
            .collect();
    }

    /// Commits for a `Persist`; `Some(ok)` is what to report, `None` means the process died.
    fn persist(
        &mut self,
        socket: SocketId,
        server: MessageIndex,
        client: MessageIndex,
    ) -> Option<bool> {
        if let Some(s) = self.sockets.get_mut(&socket) {
            s.client = client;
        }
        let mut commit = Commit::new().state(self.encode());
        for (id, s) in &self.sockets {
            let index = if *id == socket { server } else { s.applied };
            if self.pattern == Pattern::NamedOnly && *id != socket {
                continue;
            }
            commit = if s.stored {
                commit.advance(*id, index, s.client, None)
            } else {
                let meta = PersistedSocket {
                    socket: *id,
                    server_index: index,
                    client_index: s.client,
                    path: s.path.clone(),
                    headers: s.headers.clone(),
                };
                commit.put(StoredSocket::new(meta, Vec::new()))
            };
        }
        self.commits += 1;
        let crash = self
            .crash
            .filter(|(n, _)| *n == self.commits)
            .map(|(_, c)| c);
        if crash == Some(Crash::MidWrite) {
            self.crashed = true;
            return None;
        }
        let ok = self.store.commit(ACTOR, &commit).is_ok();
        if ok {
            for (id, s) in &mut self.sockets {
                if self.pattern == Pattern::AllSockets || *id == socket {
                    s.stored = true;
                }
            }
        }
        if crash == Some(Crash::AfterWrite) {
            self.crashed = true;
            return None;
        }
        Some(ok)
    }
}

struct World {
    now: Timestamp,
    gw: Gateway,
    rn: Runner,
    route: RouteId,
    app: App,
    requests: Vec<RequestId>,
    sent: BTreeMap<u32, u32>,
}

fn runner_config() -> RunnerConfig {
    // Debounced persists, so that one commit carries messages of several sockets.
    RunnerConfig::default()
        .with_persist_bytes(1 << 20)
        .with_persist_interval(Duration::from_millis(100))
}

impl World {
    fn new(store: Arc<dyn Store>, pattern: Pattern) -> Self {
        let now = Timestamp::from_secs(1);
        let mut w = Self {
            now,
            gw: Gateway::new(GatewayConfig::default(), GW, now).unwrap(),
            rn: Runner::new(runner_config(), now).unwrap(),
            route: RouteId(1),
            app: App {
                store,
                pattern,
                log: Vec::new(),
                sockets: BTreeMap::new(),
                commits: 0,
                crash: None,
                crashed: false,
            },
            requests: Vec::new(),
            sent: BTreeMap::new(),
        };
        w.rn.actor_starting(now, ACTOR, vec![]).unwrap();
        w.rn.restore(now, ACTOR, vec![]).unwrap();
        for n in 1..=3 {
            let id = RequestId::from_u32(n);
            let open = OpenRequest::new(ACTOR, "/room").expect("a path starting with /");
            w.gw.open(now, id, w.route, open).unwrap();
            w.requests.push(id);
        }
        w.pump();
        w
    }

    fn pump(&mut self) {
        let now = self.now;
        loop {
            let mut idle = true;
            while let Some(a) = self.gw.poll_action() {
                idle = false;
                match a {
                    gateway::Action::Publish { route, frame, .. }
                        if route == self.route && !self.app.crashed =>
                    {
                        let _ = self.rn.handle_frame(now, &frame);
                    }
                    gateway::Action::UpsertHibernatingRecord { request_id, .. } => {
                        self.gw
                            .hibernating_record_upserted(now, request_id)
                            .unwrap();
                    }
                    _ => {}
                }
            }
            while !self.app.crashed
                && let Some(a) = self.rn.poll_action()
            {
                idle = false;
                self.runner_action(a);
            }
            if idle {
                return;
            }
        }
    }

    fn runner_action(&mut self, a: runner::Action) {
        let now = self.now;
        match a {
            runner::Action::Publish { frame, .. } => {
                let _ = self.gw.handle_runner_frame(now, self.route, &frame);
            }
            runner::Action::Open {
                socket,
                index,
                path,
                headers,
                ..
            } => {
                let sock = Sock {
                    path,
                    headers,
                    applied: index,
                    client: MessageIndex::ZERO,
                    stored: false,
                };
                self.app.sockets.insert(socket, sock);
                self.rn.accept(now, socket, true).unwrap();
            }
            runner::Action::Message {
                socket,
                index,
                data,
                ..
            } => {
                let text = String::from_utf8(data).unwrap();
                let (r, s) = text.split_once(':').unwrap();
                self.app.log.push((r.parse().unwrap(), s.parse().unwrap()));
                self.app.sockets.get_mut(&socket).unwrap().applied = index;
            }
            runner::Action::Persist {
                socket,
                server_index,
                client_index,
                ..
            } => match self.app.persist(socket, server_index, client_index) {
                Some(true) => self.rn.persisted(now, socket, server_index).unwrap(),
                Some(false) => self.rn.persist_failed(now, socket, server_index).unwrap(),
                None => {}
            },
            runner::Action::DeleteMetadata { socket, .. } => {
                self.app.sockets.remove(&socket);
                self.app
                    .store
                    .commit(
                        ACTOR,
                        &Commit::new().delete(socket).state(self.app.encode()),
                    )
                    .unwrap();
            }
            _ => {}
        }
    }

    fn send_round(&mut self) {
        for (n, id) in (1..).zip(self.requests.clone()) {
            let seq = self.sent.entry(n).or_insert(0);
            *seq += 1;
            let text = format!("{n}:{seq}");
            self.gw
                .client_message(self.now, id, text.as_bytes(), false)
                .unwrap();
        }
        self.pump();
    }

    fn advance(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
        self.gw.handle_timeout(self.now);
        if !self.app.crashed {
            self.rn.handle_timeout(self.now);
        }
        self.pump();
    }

    /// The runner process died: its link drops, the gateway hibernates the requests.
    fn crash_runner(&mut self) {
        self.app.crashed = true;
        for id in self.requests.clone() {
            self.gw.actor_stopped(self.now, id).unwrap();
        }
        self.pump();
        for id in &self.requests {
            assert_eq!(self.gw.request(*id).unwrap().phase, Phase::Hibernating);
        }
    }

    /// A new runner process starts the actor: load, restore, wake.
    fn start_again(&mut self) -> Result<(), StoreError> {
        self.route = RouteId(self.route.0 + 1);
        self.rn = Runner::new(runner_config(), self.now).unwrap();
        self.app.crashed = false;
        self.app.crash = None;
        let listed: Vec<HibernatingRequest> = self
            .requests
            .iter()
            .map(|r| HibernatingRequest {
                gateway_id: GW,
                request_id: *r,
            })
            .collect();
        self.rn.actor_starting(self.now, ACTOR, listed).unwrap();
        match self.app.store.load(ACTOR) {
            Ok(record) => {
                self.app.load(&record);
                self.rn
                    .restore(self.now, ACTOR, record.persisted())
                    .unwrap();
            }
            Err(e) => {
                // The start stops: the actor is not run on an empty state.
                self.rn.actor_stopping(self.now, ACTOR).unwrap();
                let actions: Vec<_> = std::iter::from_fn(|| self.rn.poll_action()).collect();
                assert!(
                    actions
                        .iter()
                        .all(|a| matches!(a, runner::Action::ActorStopped { .. })),
                    "a failed start must close nothing: {actions:?}"
                );
                return Err(e);
            }
        }
        for id in self.requests.clone() {
            self.gw.wake(self.now, id, self.route).unwrap();
        }
        self.pump();
        Ok(())
    }

    /// Each message sent is in the shared state exactly once, in order per member.
    fn duplicates_and_gaps(&self) -> (usize, usize) {
        let mut dup = 0;
        let mut gaps = 0;
        for (n, last) in &self.sent {
            let seqs: Vec<u32> = self
                .app
                .log
                .iter()
                .filter(|(r, _)| r == n)
                .map(|(_, s)| *s)
                .collect();
            let mut expect = 1;
            for s in seqs {
                if s < expect {
                    dup += 1;
                } else {
                    gaps += usize::from(s > expect);
                    expect = s + 1;
                }
            }
            gaps += usize::from(expect != last + 1);
        }
        (dup, gaps)
    }
}

/// Removes the test's directory when the test ends.
struct Cleanup(&'static str);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(dir_of(self.0));
    }
}

fn dir_of(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("hws-storage-it-{name}-{}", std::process::id()))
}

fn tempdir(name: &str) -> PathBuf {
    let dir = dir_of(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn stores(name: &str) -> Vec<Arc<dyn Store>> {
    #[cfg_attr(not(feature = "sqlite"), allow(unused_mut))]
    let mut v: Vec<Arc<dyn Store>> = vec![Arc::new(FileStore::open(tempdir(name)).unwrap())];
    #[cfg(feature = "sqlite")]
    v.push(Arc::new(
        hibernating_ws::storage::SqliteStore::open_in_memory().unwrap(),
    ));
    v
}

/// Runs rounds with debounced persists, crashes at the `crash_at`th commit, restarts, sends
/// more, and returns (duplicates, gaps) in the shared state.
fn run(store: Arc<dyn Store>, pattern: Pattern, crash_at: usize, crash: Crash) -> (usize, usize) {
    let mut w = World::new(store, pattern);
    w.app.crash = Some((w.app.commits + crash_at, crash));
    for _ in 0..6 {
        w.send_round();
        w.send_round();
        w.advance(150);
        if w.app.crashed {
            break;
        }
    }
    assert!(
        w.app.crashed,
        "the crash point {crash_at} was reached ({} commits)",
        w.app.commits
    );
    w.crash_runner();
    w.start_again().unwrap();
    for _ in 0..3 {
        w.send_round();
        w.advance(150);
    }
    w.duplicates_and_gaps()
}

#[test]
fn shared_state_survives_a_crash_between_write_and_ack() {
    let _cleanup = Cleanup("between");
    for store in stores("between") {
        for crash_at in [1, 4, 5, 7] {
            assert_eq!(
                run(
                    store.clone(),
                    Pattern::AllSockets,
                    crash_at,
                    Crash::AfterWrite
                ),
                (0, 0),
                "crash at commit {crash_at}"
            );
            // Fresh storage for the next run.
            let actor = store.load(ACTOR).unwrap();
            let mut wipe = Commit::new().state(Vec::new());
            for s in &actor.sockets {
                wipe = wipe.delete(s.meta.socket);
            }
            store.commit(ACTOR, &wipe).unwrap();
        }
    }
}

#[test]
fn shared_state_survives_a_crash_mid_write() {
    let _cleanup = Cleanup("mid");
    for store in stores("mid") {
        assert_eq!(
            run(store.clone(), Pattern::AllSockets, 5, Crash::MidWrite),
            (0, 0)
        );
    }
}

/// Why the pattern matters: committing shared state with only the named socket's index
/// re-applies the other members' messages after a crash.
#[test]
fn committing_only_the_named_socket_duplicates_shared_state() {
    let _cleanup = Cleanup("naive");
    for store in stores("naive") {
        let (dup, _) = run(store, Pattern::NamedOnly, 4, Crash::AfterWrite);
        assert!(dup > 0, "expected duplicates from the naive pattern");
    }
}

/// A load failure stops the actor's start: no empty actor, no close to the clients; once the
/// storage is readable again the next start restores everything.
#[test]
fn a_load_failure_stops_the_start_and_a_later_start_restores() {
    let _cleanup = Cleanup("load-failure");
    let dir = tempdir("load-failure");
    let store = Arc::new(FileStore::open(&dir).unwrap());
    let mut w = World::new(store.clone(), Pattern::AllSockets);
    for _ in 0..3 {
        w.send_round();
        w.advance(150);
    }
    w.crash_runner();
    let path = store.path_of(ACTOR).unwrap();
    let good = std::fs::read(&path).unwrap();
    for bad in [
        &b"{\"actor_id\":\"room\",\"sockets\":[]}"[..],
        &good[..good.len() / 2],
    ] {
        std::fs::write(&path, bad).unwrap();
        let err = w.start_again().unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt { ref actor_id, .. } if actor_id == ACTOR),
            "{err}"
        );
        w.pump();
        for id in &w.requests {
            let info = w.gw.request(*id).expect("the client is still connected");
            assert_eq!(info.phase, Phase::Hibernating);
        }
        w.app.crashed = true;
    }
    std::fs::write(&path, &good).unwrap();
    w.start_again().unwrap();
    w.send_round();
    w.advance(150);
    assert_eq!(w.duplicates_and_gaps(), (0, 0));
    assert_eq!(w.app.log.len(), 12);
}
