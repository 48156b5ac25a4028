//! A runner you can copy: an echo actor on `hibernating_ws::driver::session`, connected to an
//! engine's runner endpoint (hws's own, or Rivet's), whose sockets survive sleep, wake and
//! runner restarts.
//!
//! Every client message is echoed back and applied to the socket's state, a message count and
//! a digest (16 bytes: count and FNV-1a digest, both `u64` little-endian; the digest starts at
//! the FNV offset basis and takes every message's bytes in order). On each persist the state is
//! written with the socket's indices in one atomic commit (`storage::FileStore`, or
//! `storage::SqliteStore` with `--storage sqlite`), and only then acknowledged; when an actor
//! starts, its sockets are restored from the store. The message `!sleep` also asks the engine
//! to put the actor to sleep.
//!
//! ```sh
//! cargo run --example runner --features tungstenite -- \
//!     --endpoint http://127.0.0.1:6420 --namespace default --runner-name hws-echo \
//!     --data /tmp/hws-runner [--storage file|sqlite] [--token T] [--runner-key K] [--slots N] \
//!     [--protocol runner|envoy|negotiate]
//! ```
//!
//! `--protocol` picks the engine endpoint: runner protocol v7 on `/runners/connect` (the
//! default), envoy protocol v8 on `/envoys/connect` (the runner name is the envoy's pool), or v8
//! when the engine offers it and v7 otherwise.
//!
//! Ctrl-C drains the runner (the engine stops its actors; their sockets persist and hibernate)
//! and exits; a SIGKILL loses nothing that was acknowledged.

// An application, not the library: std's paths read better here.
#![allow(clippy::std_instead_of_alloc, clippy::std_instead_of_core)]

use std::collections::HashMap;
use std::sync::Arc;

use hibernating_ws::MessageIndex;
use hibernating_ws::driver::session::{
    ConnectOptions, EnvoyParams, Protocol, SessionDriver, SessionEvent, SessionHandle,
    SessionOptions,
};
use hibernating_ws::driver::tokio::TokioClock;
use hibernating_ws::runner::{PersistedSocket, SocketId};
use hibernating_ws::session::{Session, SessionConfig};
use hibernating_ws::storage::{ActorRecord, Commit, FileStore, Store, StoredSocket};
use hibernating_ws::wire::Headers;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The FNV-1a offset basis: the digest of no message.
const DIGEST_START: u64 = 0xcbf2_9ce4_8422_2325;

/// A socket the actor holds: where it came from, and its state.
struct Socket {
    actor_id: String,
    path: String,
    headers: Headers,
    count: u64,
    digest: u64,
    /// Whether the store has its record (a first persist writes it whole).
    stored: bool,
}

impl Socket {
    fn state(&self) -> Vec<u8> {
        [self.count.to_le_bytes(), self.digest.to_le_bytes()].concat()
    }

    fn apply(&mut self, data: &[u8]) {
        self.count += 1;
        self.digest = data.iter().fold(self.digest, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
    }
}

/// The echo app: every actor's sockets, and the records loaded for starting actors.
struct App {
    runner: SessionHandle,
    store: Arc<dyn Store>,
    sockets: HashMap<SocketId, Socket>,
    loaded: HashMap<String, ActorRecord>,
    /// Actors running here.
    actors: usize,
}

impl App {
    /// Runs `f` on the store off the async workers.
    async fn store<R: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> R + Send + 'static,
    ) -> Result<R, Error> {
        let store = self.store.clone();
        Ok(tokio::task::spawn_blocking(move || f(&*store)).await?)
    }

    async fn handle(&mut self, event: SessionEvent) -> Result<(), Error> {
        match event {
            SessionEvent::Connected {
                runner_id, new_id, ..
            } => {
                eprintln!("runner: connected as {runner_id} (new id: {new_id})");
            }
            SessionEvent::Disconnected {
                reason,
                reconnect_in,
            } => {
                eprintln!("runner: disconnected ({reason:?}), reconnecting in {reconnect_in:?}");
            }
            SessionEvent::StartActor { actor_id, .. } => {
                self.actors += 1;
                self.start(actor_id).await?;
            }
            SessionEvent::Restored {
                socket, actor_id, ..
            } => self.restored(socket, actor_id),
            SessionEvent::Open {
                socket,
                actor_id,
                path,
                headers,
                ..
            } => {
                let state = Socket {
                    actor_id,
                    path,
                    headers,
                    count: 0,
                    digest: DIGEST_START,
                    stored: false,
                };
                self.sockets.insert(socket, state);
                self.runner.accept(socket, true)?;
            }
            SessionEvent::Message {
                socket,
                data,
                binary,
                ..
            } => {
                let Some(s) = self.sockets.get_mut(&socket) else {
                    return Ok(());
                };
                s.apply(&data);
                let actor_id = s.actor_id.clone();
                let _ = self.runner.send(socket, &data, binary);
                if data == b"!sleep" {
                    let _ = self.runner.sleep_actor(&actor_id);
                }
            }
            SessionEvent::Persist {
                socket,
                actor_id,
                server_index,
                client_index,
            } => {
                self.persist(socket, actor_id, server_index, client_index)
                    .await?;
            }
            SessionEvent::DeleteMetadata { socket, actor_id } => {
                let commit = Commit::new().delete(socket);
                if let Err(e) = self.store(move |st| st.commit(&actor_id, &commit)).await? {
                    eprintln!("runner: delete of {socket} failed: {e}");
                }
            }
            SessionEvent::Closed { socket, .. } => {
                self.sockets.remove(&socket);
            }
            SessionEvent::ActorStopped { actor_id, .. } => {
                eprintln!("runner: actor {actor_id} stopped");
                self.actors = self.actors.saturating_sub(1);
                self.sockets.retain(|_, s| s.actor_id != actor_id);
                self.loaded.remove(&actor_id);
            }
            _ => {}
        }
        Ok(())
    }

    /// An actor starts: load its record, restore its sockets.
    async fn start(&mut self, actor_id: String) -> Result<(), Error> {
        let id = actor_id.clone();
        match self.store(move |s| s.load(&id)).await? {
            Ok(record) => {
                let persisted = record.persisted();
                self.loaded.insert(actor_id.clone(), record);
                self.runner.restore(&actor_id, persisted)?;
            }
            // Never start on an unreadable record: its sockets stay hibernating.
            Err(e) => self.runner.actor_failed(&actor_id, Some(e.to_string()))?,
        }
        Ok(())
    }

    /// A socket came back from the store.
    fn restored(&mut self, socket: SocketId, actor_id: String) {
        let Some(stored) = self.loaded.get(&actor_id).and_then(|r| r.socket(socket)) else {
            return;
        };
        let word = |i: usize| stored.state.get(i..i + 8).and_then(|b| b.try_into().ok());
        let state = Socket {
            path: stored.meta.path.clone(),
            headers: stored.meta.headers.clone(),
            count: word(0).map_or(0, u64::from_le_bytes),
            digest: word(8).map_or(DIGEST_START, u64::from_le_bytes),
            stored: true,
            actor_id,
        };
        self.sockets.insert(socket, state);
    }

    /// Writes the socket's indices and the state they cover in one atomic commit, then acks.
    async fn persist(
        &mut self,
        socket: SocketId,
        actor_id: String,
        server_index: MessageIndex,
        client_index: MessageIndex,
    ) -> Result<(), Error> {
        let Some(s) = self.sockets.get_mut(&socket) else {
            return Ok(());
        };
        let commit = if s.stored {
            Commit::new().advance(socket, server_index, client_index, Some(s.state()))
        } else {
            let meta = PersistedSocket {
                socket,
                server_index,
                client_index,
                path: s.path.clone(),
                headers: s.headers.clone(),
            };
            Commit::new().put(StoredSocket::new(meta, s.state()))
        };
        match self.store(move |st| st.commit(&actor_id, &commit)).await? {
            Ok(()) => {
                if let Some(s) = self.sockets.get_mut(&socket) {
                    s.stored = true;
                }
                self.runner.persisted(socket, server_index)?;
            }
            Err(e) => {
                eprintln!("runner: persist of {socket} failed: {e}");
                self.runner.persist_failed(socket, server_index)?;
            }
        }
        Ok(())
    }
}

/// The command line.
pub struct Args {
    endpoint: String,
    namespace: String,
    runner_name: String,
    runner_key: String,
    token: Option<String>,
    data: String,
    storage: String,
    slots: u32,
    protocol: String,
}

/// Parses the flags (without the program name).
///
/// # Errors
/// An unknown flag, a missing or invalid value.
pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        endpoint: "http://127.0.0.1:6420".into(),
        namespace: "default".into(),
        runner_name: "hws-echo".into(),
        runner_key: random_key()?,
        token: None,
        data: "hws-runner-data".into(),
        storage: "file".into(),
        slots: 1000,
        protocol: "runner".into(),
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--endpoint" => a.endpoint = value()?,
            "--namespace" => a.namespace = value()?,
            "--runner-name" => a.runner_name = value()?,
            "--runner-key" => a.runner_key = value()?,
            "--token" => a.token = Some(value()?),
            "--data" => a.data = value()?,
            "--storage" => a.storage = value()?,
            "--slots" => a.slots = value()?.parse().map_err(|e| format!("--slots: {e}"))?,
            "--protocol" => a.protocol = value()?,
            other => return Err(format!("unknown flag {other} (see the file's header)")),
        }
    }
    Ok(a)
}

/// A runner key of its own for this process: a restarted runner must not reuse the key of the
/// one it replaces (the engine would take it for the same session and keep its actors there).
fn random_key() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| e.to_string())?;
    Ok(hex::encode(bytes))
}

fn open_store(args: &Args) -> Result<Arc<dyn Store>, Error> {
    match args.storage.as_str() {
        "file" => Ok(Arc::new(FileStore::open(&args.data)?)),
        #[cfg(feature = "sqlite")]
        "sqlite" => {
            std::fs::create_dir_all(&args.data)?;
            let path = std::path::Path::new(&args.data).join("actors.sqlite");
            Ok(Arc::new(hibernating_ws::storage::SqliteStore::open(path)?))
        }
        other => Err(format!("--storage {other}: file, or sqlite (feature `sqlite`)").into()),
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = parse(std::env::args().skip(1))?;
    run(args, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}

/// Runs the runner until `stop` completes, then drains it: the engine stops every actor (their
/// sockets persist and hibernate) and the runner leaves.
///
/// # Errors
/// The store cannot be opened, or the session's configuration is invalid.
pub async fn run(args: Args, stop: impl Future<Output = ()>) -> Result<(), Error> {
    let store = open_store(&args)?;
    let clock = TokioClock::new();
    let mut config = SessionConfig::new(&args.runner_name, args.slots);
    let envoy = EnvoyParams::new(&args.runner_name, 1);
    let protocol = match args.protocol.as_str() {
        "runner" => Protocol::Runner,
        "envoy" => Protocol::Envoy(envoy),
        "negotiate" => Protocol::Negotiate(envoy),
        other => return Err(format!("--protocol {other}: runner, envoy or negotiate").into()),
    };
    if !matches!(protocol, Protocol::Runner) {
        // The engine's envoy gateway slows its deliveries while acknowledgements lag (see
        // docs/rivet-engine.md): persist (and so acknowledge) within 100 ms, not 5 s.
        config.runner.persist_interval = std::time::Duration::from_millis(100);
    }
    let session = Session::new(config, clock.now())?;
    let mut connect = ConnectOptions::new(&args.endpoint, &args.namespace, &args.runner_key)
        .with_protocol(protocol);
    connect.token.clone_from(&args.token);
    let options = SessionOptions::default();
    let (driver, runner, mut events) = SessionDriver::new(session, connect, clock, options);
    eprintln!(
        "runner: {} as {:?} ({}), key {}",
        args.endpoint, args.runner_name, args.protocol, args.runner_key
    );
    let app = async move {
        let mut app = App {
            runner: runner.clone(),
            store,
            sockets: HashMap::new(),
            loaded: HashMap::new(),
            actors: 0,
        };
        let mut stop = std::pin::pin!(stop);
        let mut draining = false;
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    // A refused call concerns one socket or actor: report it and go on.
                    Some(event) => {
                        if let Err(e) = app.handle(event).await {
                            eprintln!("runner: {e}");
                        }
                    }
                    None => return Ok(()),
                },
                () = &mut stop, if !draining => {
                    eprintln!("runner: draining");
                    draining = true;
                    runner.drain()?;
                }
            }
            if draining && app.actors == 0 {
                runner.shutdown();
            }
        }
    };
    // The connection and the session's timers run in this task, next to the app: a crash of
    // the process (or an abort of this task) takes all of them at once.
    let (_session, result) = tokio::join!(driver.run(), app);
    result
}
