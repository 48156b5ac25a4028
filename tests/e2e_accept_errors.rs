//! The demo gateway keeps listening through accept errors: with the process's file-descriptor
//! limit lowered (`prlimit`, as `ulimit -n` would) and more connections than it allows, `accept`
//! fails with "too many open files"; once descriptors are free again, runners and clients
//! connect as before.
//!
//! Its own test binary: the limit applies to the whole process. Skipped (passes with a note) where
//! `prlimit` is missing. No timing assertions: every wait is for an event, bounded by a generous
//! timeout that only fails a broken system.

#![allow(
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc,
    clippy::similar_names
)] // application code on std

mod e2e_support;

use std::process::Command;
use std::time::Duration;

use demo::client::Client;
use demo::scenario::DataDir;
use e2e_support::{WAIT, demo, gateway, runner_options, start_runner, stream};
use hibernating_ws::gateway::GatewayConfig;

/// Sets this process's soft and hard `RLIMIT_NOFILE` (hard only ever lowered by an unprivileged
/// process, so the soft limit alone is changed). Returns `false` if `prlimit` is unavailable.
fn set_fd_limit(soft: u64) -> bool {
    let pid = std::process::id().to_string();
    Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={soft}:")])
        .status()
        .is_ok_and(|s| s.success())
}

/// The current soft `RLIMIT_NOFILE`, from `/proc/self/limits`.
fn fd_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_keeps_listening_after_running_out_of_file_descriptors() {
    let Some(original) = fd_limit() else {
        eprintln!("no /proc/self/limits: skipped");
        return;
    };
    let dir = DataDir::new(None).expect("temp dir");
    let server = gateway(GatewayConfig::default()).await;
    let addr = server.addr;

    // Room for about 40 more descriptors, then 80 connections: both ends live in this process,
    // so the listener runs out while connections wait in its backlog.
    let limit = u64::try_from(open_fds()).unwrap_or(u64::MAX) + 40;
    if !set_fd_limit(limit) {
        eprintln!("prlimit is not available: skipped");
        return;
    }
    let mut held = Vec::new();
    let mut rounds = 0;
    let snapshot = loop {
        for _ in 0..80 {
            if let Ok(s) = tokio::net::TcpStream::connect(addr).await {
                held.push(s);
            }
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut s = server.snapshot().await;
        while s.accept_errors == 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            s = server.snapshot().await;
        }
        rounds += 1;
        if s.accept_errors > 0 || rounds == 3 {
            break s;
        }
    };
    assert!(
        snapshot.accept_errors > 0,
        "the listener never ran out of descriptors (limit {limit}, {} held)",
        held.len()
    );

    // Descriptors come back; the same listener serves a runner and a client.
    drop(held);
    assert!(set_fd_limit(original), "restore the limit");
    let _runner = start_runner(runner_options(&server, &dir, "after")).await;
    let mut client = Client::connect(&server.url(), "after")
        .await
        .expect("a client connects after the errors");
    let digest = stream(&mut client, 9, 0, 10, 200, 0).await;
    assert_eq!(client.wait_echo(10, WAIT).await, Some((10, digest)));
}
