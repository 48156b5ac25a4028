//! The official TypeScript runner of `tests/interop` (`runner.mjs` on
//! `@rivetkit/engine-runner`, pinned there) as a child process, and the JSON lines it prints:
//! the one spawner of the interop test and the Rivet engine test. A test includes it with
//! `#[path = "../common/node_runner.rs"] mod node;`.

#![allow(dead_code, unreachable_pub)] // each test uses a part of it

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// The runner name `runner.mjs` registers with.
pub const RUNNER_NAME: &str = "hws-interop";

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// Whether node and the installed SDK are there, for the test `suite` (named in the messages);
/// fails under CI when they are not. The packaged crate carries no `runner.mjs`: there the test
/// always skips.
pub fn ready(suite: &str) -> bool {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if !interop_dir().join("runner.mjs").exists() {
        eprintln!("{suite} skipped: no runner.mjs (not a repository checkout)");
        return false;
    }
    let node = std::process::Command::new("node").arg("--version").output();
    let sdk = interop_dir().join("node_modules/@rivetkit/engine-runner/package.json");
    let missing = if !node.is_ok_and(|out| out.status.success()) {
        "node is not installed".to_string()
    } else if !sdk.exists() {
        format!(
            "{} is missing: run `npm ci` in tests/interop",
            sdk.display()
        )
    } else {
        return true;
    };
    assert!(!in_ci, "{suite} cannot run under CI: {missing}");
    eprintln!();
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("!! SKIPPED {suite}: {missing}");
    eprintln!("!! The official TypeScript runner was NOT tested. CI (CI=true) fails instead.");
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    false
}

/// The node runner process and the JSON lines it printed.
pub struct NodeRunner {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl NodeRunner {
    pub fn spawn(endpoint: &str) -> Self {
        let mut child = Command::new("node")
            .arg("runner.mjs")
            .current_dir(interop_dir())
            .env("HWS_INTEROP_ENDPOINT", endpoint)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn node");
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                sink.lock().unwrap().push(value);
            }
        });
        Self { child, lines }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("a running node process")
    }

    /// How many lines have `field` == `value`.
    pub fn count(&self, field: &str, value: &str) -> usize {
        self.find(field, value).len()
    }

    /// The lines with `field` == `value`.
    pub fn find(&self, field: &str, value: &str) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.get(field).and_then(Value::as_str) == Some(value))
            .cloned()
            .collect()
    }
}
