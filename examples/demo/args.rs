//! Command-line flags of the demo.

use std::path::PathBuf;
use std::time::Duration;

use super::client::ClientOptions;
use super::storage::StorageKind;

/// Which part of the system this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Gateway, runner and client in one process (the default).
    All,
    /// Only the gateway (clients and runners connect to `--listen`).
    Gateway,
    /// Only a runner, connected to `--gateway`.
    Runner,
    /// Only the client, connected to `--gateway`.
    Client,
}

/// Every flag, with its default.
#[derive(Debug, Clone)]
#[allow(clippy::struct_excessive_bools)] // one bool per on/off flag
pub struct Args {
    pub role: Role,
    pub messages: u64,
    pub min_size: usize,
    pub max_size: usize,
    pub sleeps: u32,
    pub seed: u64,
    pub kill_runner: bool,
    pub runner_process: bool,
    /// The fault is a dropped runner link (the runner loses its connection, finishes the
    /// persists in flight, then stops) instead of a kill.
    pub drop_link: bool,
    /// Clients that open, stream a few messages to a fresh actor and close, over and over,
    /// alongside the main client; each stream's committed log is checked.
    pub churn_clients: usize,
    /// `ws://host:port` of the gateway (roles runner and client).
    pub gateway: Option<String>,
    /// Address the gateway listens on (roles all and gateway).
    pub listen: String,
    /// Where the runner keeps its actor storage (default: a new temporary directory).
    pub data_dir: Option<PathBuf>,
    /// Which store the runner uses.
    pub storage: StorageKind,
    /// The actor the client talks to.
    pub actor: String,
    /// How long an actor takes to start on the runner (a cold start).
    pub cold_start: Duration,
    /// The runner's persist debounce interval.
    pub persist_interval: Duration,
    /// The gateway's per-request pending limit.
    pub max_pending_bytes: u64,
    /// The runner's name (role runner).
    pub runner_name: String,
    /// Print progress lines.
    pub verbose: bool,
    /// Read buffer of each WebSocket (bytes).
    pub ws_read_buffer: usize,
    /// Write buffer of each WebSocket (bytes; writes are flushed past it).
    pub ws_write_buffer: usize,
    /// The token runners present to the gateway (default: `$HWS_RUNNER_TOKEN`, else a fresh
    /// random one; roles gateway and runner need the same).
    pub runner_token: String,
}

/// The environment variable a runner token may come from (kept out of the process list).
pub const TOKEN_ENV: &str = "HWS_RUNNER_TOKEN";

impl Default for Args {
    fn default() -> Self {
        Self {
            role: Role::All,
            messages: 20_000,
            min_size: 10,
            max_size: 64 * 1024,
            sleeps: 10,
            seed: 1,
            kill_runner: true,
            runner_process: false,
            drop_link: false,
            churn_clients: 0,
            gateway: None,
            listen: "127.0.0.1:0".into(),
            data_dir: None,
            storage: StorageKind::File,
            actor: "demo-actor".into(),
            cold_start: Duration::from_millis(20),
            persist_interval: Duration::from_millis(50),
            max_pending_bytes: 8 * 1024 * 1024,
            runner_name: "runner".into(),
            verbose: false,
            ws_read_buffer: super::gateway::WS_READ_BUFFER,
            ws_write_buffer: super::gateway::WS_WRITE_BUFFER,
            runner_token: std::env::var(TOKEN_ENV)
                .ok()
                .filter(|t| !t.is_empty())
                .unwrap_or_else(super::auth::random_token),
        }
    }
}

pub const USAGE: &str = "\
usage: demo [flags]

  --messages N              messages the client sends (default 20000)
  --min-size B --max-size B message sizes in bytes, uniform (default 10 and 65536)
  --sleeps N                times the actor is put to sleep and woken (default 10)
  --seed S                  seed of the sizes, payloads and text/binary choice (default 1)
  --kill-runner | --no-kill-runner
                            kill the runner once, abruptly, mid-stream (default: kill)
  --runner-process          run the runner as a child OS process (killed with SIGKILL)
  --drop-link               the fault drops the runner's link instead of killing it (the
                            runner finishes its persists in flight, then stops)
  --churn-clients N         N more clients open, stream to a fresh actor and close, over
                            and over, alongside (default 0)
  --role all|gateway|runner|client
                            which part to run (default all)
  --gateway ws://HOST:PORT  the gateway to connect to (roles runner and client)
  --listen HOST:PORT        where the gateway listens (default 127.0.0.1:0)
  --data-dir DIR            the runner's actor storage (default: a new temporary directory)
  --storage file|sqlite     the runner's store: one file per actor (default), or SQLite
                            (actors.db; needs a build with --features sqlite)
  --actor NAME              the actor the client talks to (default demo-actor)
  --cold-start-ms MS        how long an actor takes to start on the runner (default 20)
  --persist-interval-ms MS  the runner's persist debounce (default 50)
  --max-pending-bytes B     the gateway's per-request pending limit (default 8388608)
  --runner-name NAME        the runner's name (role runner)
  --ws-read-buffer B        read buffer of each WebSocket (default 8192)
  --ws-write-buffer B       write buffer of each WebSocket (default 8192)
  --runner-token TOKEN      the token runners present (roles gateway and runner; default
                            $HWS_RUNNER_TOKEN, else random, printed by role gateway)
  --verbose                 progress lines
";

impl Args {
    /// The main client of these arguments on the gateway at `gateway`, waiting up to a minute
    /// for its last echo; `close`: it closes its WebSocket at the end.
    #[must_use]
    pub fn client_options(&self, gateway: String, close: bool) -> ClientOptions {
        ClientOptions {
            gateway,
            actor: self.actor.clone(),
            messages: self.messages,
            min_size: self.min_size,
            max_size: self.max_size,
            seed: self.seed,
            final_wait: Duration::from_secs(60),
            close,
        }
    }

    /// Parses `std::env::args()`-style arguments (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut a = Self::default();
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
            match flag.as_str() {
                "--messages" => a.messages = num(&value(&flag)?)?,
                "--min-size" => a.min_size = num(&value(&flag)?)?,
                "--max-size" => a.max_size = num(&value(&flag)?)?,
                "--sleeps" => a.sleeps = num(&value(&flag)?)?,
                "--seed" => a.seed = num(&value(&flag)?)?,
                "--kill-runner" => a.kill_runner = true,
                "--no-kill-runner" => a.kill_runner = false,
                "--runner-process" => a.runner_process = true,
                "--drop-link" => a.drop_link = true,
                "--churn-clients" => a.churn_clients = num(&value(&flag)?)?,
                "--gateway" => a.gateway = Some(value(&flag)?),
                "--listen" => a.listen = value(&flag)?,
                "--data-dir" => a.data_dir = Some(PathBuf::from(value(&flag)?)),
                "--storage" => a.storage = StorageKind::parse(&value(&flag)?)?,
                "--actor" => a.actor = value(&flag)?,
                "--ws-read-buffer" => a.ws_read_buffer = num(&value(&flag)?)?,
                "--ws-write-buffer" => a.ws_write_buffer = num(&value(&flag)?)?,
                "--cold-start-ms" => a.cold_start = Duration::from_millis(num(&value(&flag)?)?),
                "--persist-interval-ms" => {
                    a.persist_interval = Duration::from_millis(num(&value(&flag)?)?);
                }
                "--max-pending-bytes" => a.max_pending_bytes = num(&value(&flag)?)?,
                "--runner-name" => a.runner_name = value(&flag)?,
                "--verbose" => a.verbose = true,
                "--runner-token" => a.runner_token = value(&flag)?,
                "--role" => {
                    a.role = match value(&flag)?.as_str() {
                        "all" => Role::All,
                        "gateway" => Role::Gateway,
                        "runner" => Role::Runner,
                        "client" => Role::Client,
                        other => return Err(format!("unknown role {other:?}")),
                    };
                }
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown flag {other:?}")),
            }
        }
        if a.min_size < super::payload::MIN_SIZE {
            return Err(format!(
                "--min-size must be at least {} (the sequence-number prefix)",
                super::payload::MIN_SIZE
            ));
        }
        if a.max_size < a.min_size {
            return Err("--max-size must be at least --min-size".into());
        }
        if a.persist_interval.is_zero() {
            return Err("--persist-interval-ms must be positive".into());
        }
        if matches!(a.role, Role::Runner | Role::Client) && a.gateway.is_none() {
            return Err("--gateway ws://HOST:PORT is required for this role".into());
        }
        Ok(a)
    }
}

fn num<T: core::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("not a number: {s:?}"))
}
