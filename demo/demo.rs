//! The hws demo: a client, a gateway and a runner on loopback, over real WebSockets.
//!
//! ```sh
//! cargo run --release --example demo
//! cargo run --release --example demo -- --help
//! ```
//!
//! The client sends 20 000 messages (text and binary, 10 B to 64 KiB) to an actor while the
//! actor is put to sleep and woken 10 times and its runner is killed once without persisting.
//! The report says what was sent, delivered, replayed, lost and delivered twice; the exit code is
//! non-zero if anything was lost or delivered twice (checked against the actor's committed log).

#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)] // application code on std

#[path = "../examples/demo/lib.rs"]
mod demo;

#[path = "../examples/common/cli.rs"]
mod cli;

use std::process::ExitCode;
use std::time::Duration;

use demo::args::{Args, Role, USAGE};
use demo::client::run_client;
use demo::gateway::{GatewayOptions, GatewayServer, Schedule};
use demo::runner::{RunnerInstance, RunnerOptions};
use demo::scenario;

fn main() -> ExitCode {
    let args = match cli::parsed_or_exit(Args::parse(std::env::args().skip(1)), USAGE) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match args.role {
            Role::All => all(&args).await,
            Role::Gateway => gateway(&args).await,
            Role::Runner => runner(&args).await,
            Role::Client => client(&args).await,
        }
    });
    // Tasks still blocked on sockets must not hold the process.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn all(args: &Args) -> std::io::Result<bool> {
    let report = scenario::run_all(args).await?;
    print!("{}", report.render());
    Ok(report.pass())
}

async fn gateway(args: &Args) -> std::io::Result<bool> {
    let server = GatewayServer::start(GatewayOptions {
        verbose: args.verbose,
        runner_token: args.runner_token.clone(),
        websocket: demo::gateway::websocket_config(args.ws_read_buffer, args.ws_write_buffer),
        ..GatewayOptions::new(
            args.listen.clone(),
            scenario::gateway_config(args),
            Schedule::spread(&args.actor, args.messages, args.sleeps, false),
        )
    })
    .await?;
    println!("gateway listening on {}", server.url());
    if std::env::var(demo::args::TOKEN_ENV).is_err() {
        println!("  runner token: {}", server.runner_token());
    }
    println!(
        "  runners: {}{}   clients: {}/actors/<actor>",
        server.url(),
        demo::accept::RUNNER_PATH,
        server.url()
    );
    // Serve until the first client session is over.
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let s = server.snapshot().await;
        if s.requests == 0 && !s.closes.is_empty() {
            let g = server.stats();
            println!(
                "gateway done: published {}, replayed {}, acked {}, hibernations {}, wakes {}, sleeps {}",
                g.messages_sent,
                g.messages_replayed,
                g.messages_acked,
                g.hibernations,
                g.wakes,
                s.sleeps
            );
            for (reason, n) in &s.closes {
                println!("  closed: {reason}: {n}");
            }
            let _ = server.shutdown().await;
            return Ok(true);
        }
    }
}

async fn runner(args: &Args) -> std::io::Result<bool> {
    let dir = scenario::DataDir::new(args.data_dir.as_deref())?;
    let gateway = args.gateway.clone().unwrap_or_default();
    let mut instance = RunnerInstance::start(RunnerOptions {
        gateway,
        name: args.runner_name.clone(),
        data_dir: dir.path.clone(),
        storage: args.storage,
        config: scenario::runner_config(args),
        report_interval: Duration::from_millis(20),
        delivered: std::sync::Arc::default(),
        load_delay: args.cold_start,
        websocket: demo::gateway::websocket_config(args.ws_read_buffer, args.ws_write_buffer),
        token: args.runner_token.clone(),
    })
    .await?;
    if args.verbose {
        eprintln!(
            "[{}] connected; actor files in {}",
            args.runner_name,
            dir.path.display()
        );
    }
    instance.wait_closed().await;
    let report = instance.shutdown().await.unwrap_or_default();
    if args.verbose {
        eprintln!(
            "[{}] done: delivered {}, duplicates dropped {}, persists {}, acks {}",
            args.runner_name,
            report.delivered,
            report.duplicates_dropped,
            report.persists,
            report.acks
        );
    }
    Ok(true)
}

async fn client(args: &Args) -> std::io::Result<bool> {
    let options = args.client_options(args.gateway.clone().unwrap_or_default(), true);
    let (report, _) = run_client(&options).await?;
    println!(
        "client: sent {} messages ({} bytes) in {:.2} s; {} echoes; last echo {:?}; expected count {} digest {:016x}",
        report.sent,
        report.sent_bytes,
        report.elapsed.as_secs_f64(),
        report.echoes,
        report.last_echo,
        report.sent,
        report.expected_digest
    );
    let ok = report.echo_complete();
    println!(
        "{}",
        if ok {
            "PASS: the actor processed every message once, in order"
        } else {
            "FAIL: the last echo does not cover the stream"
        }
    );
    Ok(ok)
}
