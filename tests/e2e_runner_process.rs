//! End to end: the runner as a separate OS process, killed with SIGKILL mid-stream and
//! restarted; nothing is lost and nothing is processed twice.
//!
//! The runner child is this test binary re-executed in runner mode (`HWS_E2E_RUNNER_GATEWAY`
//! set): it runs the demo's runner (`examples/demo/runner.rs`, the code behind `demo --role
//! runner`), so no nested `cargo` is needed (cargo holds its build lock while tests run). Hence
//! `harness = false` and this `main`.

#![allow(
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc,
    clippy::similar_names
)] // application code on std

mod e2e_support;

use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use demo::client::{ClientOptions, run_client};
use demo::gateway::{GatewayOptions, GatewayServer, Schedule};
use demo::runner::{RunnerInstance, RunnerOptions};
use demo::scenario::{DataDir, committed_result, gateway_config, runner_config};
use demo::storage::StorageKind;
use e2e_support::demo;

const CHILD_GATEWAY: &str = "HWS_E2E_RUNNER_GATEWAY";
const CHILD_DIR: &str = "HWS_E2E_RUNNER_DIR";
const CHILD_TOKEN: &str = "HWS_E2E_RUNNER_TOKEN";
const CHILD_STORAGE: &str = "HWS_E2E_RUNNER_STORAGE";
const MESSAGES: u64 = 800;

fn main() -> ExitCode {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if let (Ok(gateway), Ok(dir)) = (std::env::var(CHILD_GATEWAY), std::env::var(CHILD_DIR)) {
        let token = std::env::var(CHILD_TOKEN).unwrap_or_default();
        let storage = std::env::var(CHILD_STORAGE).unwrap_or_default();
        let storage = StorageKind::parse(&storage).unwrap_or_default();
        rt.block_on(child(gateway, dir, storage, token));
        return ExitCode::SUCCESS;
    }
    // `cargo test -- --list` and filters: one test, named like a harness test.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("runner_process_killed_with_sigkill_mid_stream: test");
        return ExitCode::SUCCESS;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty()
        && !filters
            .iter()
            .any(|f| "runner_process_killed_with_sigkill_mid_stream".contains(f.as_str()))
    {
        println!(
            "\nrunning 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 1 filtered out\n"
        );
        return ExitCode::SUCCESS;
    }
    println!("\nrunning 1 test");
    // Every store the build has: a SIGKILL lands at any point of a file write or a transaction.
    let mut kinds = vec![StorageKind::File];
    if cfg!(feature = "sqlite") {
        kinds.push(StorageKind::Sqlite);
    }
    let result = rt.block_on(async {
        for storage in kinds {
            match tokio::time::timeout(Duration::from_secs(60), parent(storage)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Ok(Err(format!("{storage:?} storage: {e}"))),
                Err(e) => return Err(e),
            }
        }
        Ok(Ok(()))
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(Ok(())) => {
            println!("test runner_process_killed_with_sigkill_mid_stream ... ok\n");
            println!(
                "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n"
            );
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => fail(&e),
        Err(_) => fail("timed out after 60 s"),
    }
}

fn fail(why: &str) -> ExitCode {
    println!("test runner_process_killed_with_sigkill_mid_stream ... FAILED\n\n{why}\n");
    println!("test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n");
    ExitCode::FAILURE
}

/// Runner mode: serve until the gateway goes away (or SIGKILL).
async fn child(gateway: String, dir: String, storage: StorageKind, token: String) {
    let args = demo::args::Args::default();
    let mut instance = RunnerInstance::start(RunnerOptions {
        gateway,
        name: format!("child-{}", std::process::id()),
        data_dir: dir.into(),
        storage,
        config: runner_config(&args),
        report_interval: Duration::from_millis(20),
        delivered: Arc::default(),
        load_delay: Duration::ZERO,
        token,
        websocket: demo::gateway::GatewayOptions::default().websocket,
    })
    .await
    .expect("the child runner connects");
    instance.wait_closed().await;
    let _ = instance.shutdown().await;
}

fn spawn_child(
    gateway: &str,
    dir: &Path,
    storage: StorageKind,
    token: &str,
) -> Result<tokio::process::Child, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    tokio::process::Command::new(exe)
        .env(CHILD_GATEWAY, gateway)
        .env(CHILD_DIR, dir)
        .env(CHILD_TOKEN, token)
        .env(CHILD_STORAGE, storage.name())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("spawn the runner child: {e}"))
}

#[allow(clippy::too_many_lines)]
async fn parent(storage: StorageKind) -> Result<(), String> {
    let args = demo::args::Args {
        max_size: 16 * 1024,
        ..demo::args::Args::default()
    };
    let dir = DataDir::new(None).map_err(|e| e.to_string())?;
    let mut server = GatewayServer::start(GatewayOptions::new(
        "127.0.0.1:0".into(),
        gateway_config(&args),
        Schedule {
            actor: "proc-actor".into(),
            sleep_at: Vec::new(),
            kill_at: Some(MESSAGES / 3),
        },
    ))
    .await
    .map_err(|e| e.to_string())?;
    let url = server.url();
    let first = spawn_child(&url, &dir.path, storage, server.runner_token())?;
    let first_pid = first.id();

    // Supervisor: SIGKILL the child when the schedule says so (the actor runs and holds
    // delivered messages), then start another one on the same storage.
    let mut kill_rx = server.kill.take().ok_or("no kill channel")?;
    let (url2, path2) = (url.clone(), dir.path.clone());
    let token2 = server.runner_token().to_string();
    let gw = server.handle().clone();
    let supervisor = tokio::spawn(async move {
        let mut first = first;
        kill_rx.recv().await.ok_or("the kill was never due")?;
        demo::scenario::wait_for_first_ack(&gw).await;
        first.start_kill().map_err(|e| e.to_string())?;
        let status = first.wait().await.map_err(|e| e.to_string())?;
        let second = spawn_child(&url2, &path2, storage, &token2)?;
        Ok::<_, String>((status, second))
    });

    let (mut report, conn) = run_client(&ClientOptions {
        gateway: url.clone(),
        actor: "proc-actor".into(),
        messages: MESSAGES,
        min_size: args.min_size,
        max_size: args.max_size,
        seed: 42,
        final_wait: Duration::from_secs(30),
        close: false,
    })
    .await
    .map_err(|e| e.to_string())?;
    let mut conn = conn.ok_or("the client connection is kept")?;
    // The kill may be due only after the stream (the actor was away): probe until it happened.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !supervisor.is_finished() && tokio::time::Instant::now() < deadline {
        if let Err(e) = conn.send(b"?".to_vec(), false).await {
            let closed = conn.wait_closed(Duration::from_secs(1)).await;
            return Err(format!(
                "probe failed: {e}; the gateway closed the client with {closed:?}; {:?}",
                server.snapshot().await
            ));
        }
        report.probes += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _second) = supervisor.await.map_err(|e| e.to_string())??;
    let _ = conn.wait_echo(MESSAGES, Duration::from_secs(10)).await;
    let _ = conn.close(1000, "done").await;

    let Some(committed) =
        committed_result(&dir.path, storage, "proc-actor", Duration::from_secs(20)).await
    else {
        return Err(format!(
            "the stream was never committed; child exit {status:?}; {:?}; {:?}",
            server.snapshot().await,
            server.stats()
        ));
    };
    let snapshot = server.snapshot().await;
    let stats = server.stats();
    let summary = format!(
        "child {first_pid:?} exit {status:?}; committed {committed:?}; expected digest {:016x}; \
         gateway {stats:?}; snapshot {snapshot:?}",
        report.expected_digest
    );
    let check = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(format!("{what}\n{summary}"))
        }
    };
    check(
        status.signal() == Some(9),
        "the first runner died of SIGKILL",
    )?;
    check(
        snapshot.runners_lost == 1,
        "the gateway lost the killed runner while it hosted the actor",
    )?;
    check(
        snapshot.runners_connected == 2,
        "a second runner process took over",
    )?;
    check(committed.count == MESSAGES, "every message committed")?;
    check(
        committed.digest == report.expected_digest,
        "in order, with the right content",
    )?;
    check(committed.duplicates == 0, "nothing processed twice")?;
    check(committed.gaps == 0, "nothing skipped")?;
    check(
        stats.wakes >= 1 && stats.hibernations >= 1,
        "the request hibernated and woke",
    )?;
    check(stats.pending_messages == 0, "nothing left pending")?;
    let _ = server.shutdown().await;
    Ok(())
}
