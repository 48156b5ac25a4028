//! The official Rivet engine binary (`rivet-engine`, pinned in `tests/rivet_engine/package.json`)
//! as a child process on free loopback ports, with its file-system storage in a temporary
//! directory; a minimal HTTP/1.1 client for its API; WebSocket clients through its gateway.

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Generous bound for the engine to answer `/health` (a hang guard, not a timing assertion).
const READY: Duration = Duration::from_secs(60);

/// How long a runner (or envoy) may go without a ping before the engine finds it lost, in
/// milliseconds (`pegboard.runner_lost_threshold`, `pegboard.envoy_lost_threshold`; the engine's
/// default is 15 000). The engine checks it once per threshold, so it finds a killed runner
/// lost between one and two thresholds after its last ping, and only then moves its awake
/// actors; a client socket of such an actor is closed after 30 s without a pong from the runner
/// (`pegboard.gateway_tunnel_ping_timeout_ms`). 8 s (at most ~19 s with the 3 s ping
/// interval) always beats that; the default loses the race now and then, whatever the runner.
/// It must stay above the 3 s ping interval, or live runners are evicted.
pub const LOST_THRESHOLD_MS: u32 = 8_000;

/// The CPU the engine's workflow worker measures its load against, in millicores
/// (`runtime.worker_cpu_max`). The worker sheds load by the CPU usage of its whole cgroup (or
/// host): above 70 % of this it pulls ever fewer woken workflows, down to 5 % of them above
/// 90 %, so on a busy machine (other builds and tests, not the engine's own work) signals sit
/// unprocessed for tens of seconds: an actor's lost runner, a sleep intent, a wake. 1 000 cores
/// keeps it from shedding.
pub const WORKER_CPU_MAX: u32 = 1_000_000;

pub fn package_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rivet_engine")
}

pub fn binary() -> PathBuf {
    package_dir().join("node_modules/@rivetkit/engine-cli-linux-x64-musl/rivet-engine")
}

/// Whether the engine binary is installed; fails under CI when it is not (`npm ci` in
/// `tests/rivet_engine` installs it), skips loudly otherwise.
pub fn ready() -> bool {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if !package_dir().join("package.json").exists() {
        eprintln!("tests/rivet_engine skipped: not a repository checkout");
        return false;
    }
    if binary().exists() {
        return true;
    }
    let missing = format!(
        "{} is missing: run `npm ci` in tests/rivet_engine",
        binary().display()
    );
    assert!(!in_ci, "rivet engine test cannot run under CI: {missing}");
    eprintln!("!! SKIPPED tests/rivet_engine: {missing}");
    eprintln!("!! The official Rivet engine was NOT tested. CI (CI=true) fails instead.");
    false
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hws-{what}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `rivet-engine start`; killed (and its data removed) on drop.
pub struct RivetEngine {
    child: Child,
    /// The guard port: public API, gateway, `/runners/connect` and `/envoys/connect`.
    pub port: u16,
    log: PathBuf,
    dir: TempDir,
}

impl RivetEngine {
    /// Starts the engine on free loopback ports and waits for `/health`.
    pub async fn start() -> Self {
        let dir = TempDir::new("rivet-engine");
        let port = free_port();
        let log = dir.0.join("engine.log");
        let out = std::fs::File::create(&log).expect("engine log");
        let err = out.try_clone().expect("engine log");
        let child = Command::new(binary())
            .arg("start")
            .current_dir(&dir.0)
            .env("RIVET__telemetry__enabled", "false")
            .env("RIVET__guard__host", "127.0.0.1")
            .env("RIVET__guard__port", port.to_string())
            .env("RIVET__api_peer__host", "127.0.0.1")
            .env("RIVET__api_peer__port", free_port().to_string())
            .env("RIVET__metrics__host", "127.0.0.1")
            .env("RIVET__metrics__port", free_port().to_string())
            .env("RIVET__file_system__path", dir.0.join("db"))
            .env("RIVET__runtime__worker_cpu_max", WORKER_CPU_MAX.to_string())
            .env(
                "RIVET__pegboard__runner_lost_threshold",
                LOST_THRESHOLD_MS.to_string(),
            )
            .env(
                "RIVET__pegboard__envoy_lost_threshold",
                LOST_THRESHOLD_MS.to_string(),
            )
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn rivet-engine");
        let mut engine = Self {
            child,
            port,
            log,
            dir,
        };
        let deadline = tokio::time::Instant::now() + READY;
        loop {
            if let Ok((200, body)) = engine.http("GET", "/health", None).await {
                let health: Value = serde_json::from_str(&body).expect("health JSON");
                assert_eq!(health["status"], "ok", "{body}");
                assert_eq!(health["version"], "2.3.19", "{body}");
                break;
            }
            if let Ok(Some(status)) = engine.child.try_wait() {
                panic!(
                    "rivet-engine exited with {status}:\n{}",
                    engine.log_tail(40)
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "rivet-engine not healthy:\n{}",
                engine.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        engine
    }

    /// The engine process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir.0
    }

    /// The last `n` lines of the engine's log.
    pub fn log_tail(&self, n: usize) -> String {
        let Ok(file) = std::fs::File::open(&self.log) else {
            return String::new();
        };
        let lines: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// One HTTP/1.1 request (`Connection: close`); the status and the body.
    pub async fn http(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> std::io::Result<(u16, String)> {
        http(self.port, method, path, body).await
    }

    /// `POST /actors`: an actor named `name` with `key` for runners named `runner_name`. The
    /// engine refuses it until its `default` namespace exists (shortly after `/health` answers)
    /// and a runner of that name has connected: retried until then.
    pub async fn create_actor(&self, name: &str, key: &str, runner_name: &str) -> String {
        let body = serde_json::json!({
            "name": name,
            "key": key,
            "runner_name_selector": runner_name,
            "crash_policy": "sleep",
        });
        let deadline = tokio::time::Instant::now() + READY;
        let (status, body) = loop {
            let (status, text) = self
                .http("POST", "/actors?namespace=default", Some(&body))
                .await
                .expect("POST /actors");
            let not_yet = text.contains("no_runner_config_configured")
                || text.contains(r#""group":"namespace","code":"not_found""#);
            if !not_yet {
                break (status, text);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no runner named {runner_name} connected"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(status, 200, "POST /actors: {body}");
        let v: Value = serde_json::from_str(&body).expect("actor JSON");
        v["actor"]["actor_id"]
            .as_str()
            .expect("actor_id")
            .to_string()
    }

    /// `PUT /runner-configs/{pool}`: a normal (not serverless) pool in the engine's datacenter.
    /// An envoy connection is refused (`ws.no_runner_config`) until its pool has one; a v7
    /// runner creates its own when it connects. Retried until the namespace exists.
    pub async fn configure_pool(&self, pool: &str) {
        let dcs = self.datacenter().await;
        let body = serde_json::json!({ "datacenters": { dcs: { "normal": {} } } });
        let path = format!("/runner-configs/{pool}?namespace=default");
        let deadline = tokio::time::Instant::now() + READY;
        loop {
            let (status, text) = self
                .http("PUT", &path, Some(&body))
                .await
                .expect("PUT /runner-configs");
            if status == 200 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "PUT /runner-configs/{pool}: {status} {text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The name of the engine's (only) datacenter (`GET /datacenters`).
    async fn datacenter(&self) -> String {
        let deadline = tokio::time::Instant::now() + READY;
        loop {
            let (status, text) = self
                .http("GET", "/datacenters", None)
                .await
                .expect("GET /datacenters");
            if status == 200 {
                let v: Value = serde_json::from_str(&text).expect("datacenters JSON");
                if let Some(name) = v["datacenters"][0]["name"].as_str() {
                    return name.to_owned();
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "GET /datacenters: {status} {text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET /actors?actor_ids=…`: the actor's record.
    pub async fn actor(&self, actor_id: &str) -> Value {
        let path = format!("/actors?namespace=default&actor_ids={actor_id}");
        let (status, body) = self.http("GET", &path, None).await.expect("GET /actors");
        assert_eq!(status, 200, "GET /actors: {body}");
        let mut v: Value = serde_json::from_str(&body).expect("actors JSON");
        v["actors"][0].take()
    }

    /// `POST /actors/{id}/sleep`: the engine puts the actor to sleep.
    pub async fn sleep_actor(&self, actor_id: &str) {
        let path = format!("/actors/{actor_id}/sleep?namespace=default");
        let (status, body) = self
            .http("POST", &path, Some(&serde_json::json!({})))
            .await
            .expect("POST sleep");
        eprintln!("POST /actors/{actor_id}/sleep: {status} {body}");
    }

    /// `GET /actors/{id}/kv/keys/{key}`: the value stored under `key` in the actor's KV.
    pub async fn kv_get(&self, actor_id: &str, key: &str) -> Option<Vec<u8>> {
        let path = format!(
            "/actors/{actor_id}/kv/keys/{}?namespace=default",
            base64(key.as_bytes())
        );
        let (status, body) = self.http("GET", &path, None).await.expect("GET kv");
        if status == 404 || body.contains("kv_key_not_found") {
            return None;
        }
        assert_eq!(status, 200, "GET kv {key}: {body}");
        let v: Value = serde_json::from_str(&body).expect("kv JSON");
        Some(unbase64(v["value"].as_str().expect("kv value")))
    }

    /// Opens a client WebSocket to `actor_id` through the engine's gateway.
    pub async fn connect(&self, actor_id: &str, path: &str) -> crate::client::Client {
        let url = format!("ws://127.0.0.1:{}/gateway/{actor_id}{path}", self.port);
        crate::client::Client::connect(&url).await
    }
}

impl Drop for RivetEngine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(keep) = std::env::var("HWS_RIVET_ENGINE_KEEP_LOG") {
            let _ = std::fs::copy(&self.log, keep);
        }
        if std::thread::panicking() {
            eprintln!("--- rivet-engine log (tail) ---\n{}", self.log_tail(60));
        }
    }
}

/// One HTTP/1.1 request to `127.0.0.1:port` with `Connection: close`: the status and the body
/// (plain or chunked). Enough for the engine's JSON API; not a general client.
pub async fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<(u16, String)> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await?;
    tcp.write_all(body.as_bytes()).await?;
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await?;
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut payload = raw[split + 4..].to_vec();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        payload = dechunk(&payload).ok_or_else(|| bad("bad chunked body"))?;
    }
    Ok((status, String::from_utf8_lossy(&payload).to_string()))
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn unbase64(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = B64.iter().position(|&b| b == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
