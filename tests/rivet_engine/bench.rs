//! A measurement, not a test (`#[ignore]`d; run on demand, see `BENCHMARKS.md`): one client
//! echo stream through the official engine's gateway to the hws runner, and the same to the
//! official TypeScript runner, in the same run, on the same engine process. Throughput, and CPU
//! per message of the runner process and of the engine process (from `/proc/<pid>/stat`).

use std::time::{Duration, Instant};

use crate::client::{Client, Seen};
use crate::engine::RivetEngine;

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// One measured stream.
#[derive(Debug)]
pub struct Sample {
    pub messages: usize,
    pub payload: usize,
    pub elapsed: Duration,
    pub runner_cpu: f64,
    pub engine_cpu: f64,
}

impl Sample {
    pub fn line(&self, runner: &str) -> String {
        let n = self.messages as f64;
        format!(
            "| {runner} | {} B | {} | {:.0} msg/s | {:.1} µs | {:.1} µs |",
            self.payload,
            self.messages,
            n / self.elapsed.as_secs_f64(),
            self.runner_cpu * 1e6 / n,
            self.engine_cpu * 1e6 / n,
        )
    }
}

/// Echoes `messages` payloads of `payload` bytes with at most `window` in flight.
pub async fn stream(
    engine: &RivetEngine,
    engine_pid: u32,
    runner_pid: u32,
    actor_id: &str,
    payload: usize,
    messages: usize,
    window: usize,
) -> Sample {
    let mut client: Client = engine.connect(actor_id, &format!("/bench/{payload}")).await;
    let body: String = "x".repeat(payload.saturating_sub(8));
    // Warm up (the actor starts, the sockets settle).
    for i in 0..10 {
        client.send(&format!("{i:08}{body}")).await;
    }
    for _ in 0..10 {
        client.next_echo("warm-up").await;
    }
    let (runner0, engine0, start) = (
        cpu_seconds(runner_pid),
        cpu_seconds(engine_pid),
        Instant::now(),
    );
    let (mut sent, mut echoed) = (0, 0);
    while echoed < messages {
        while sent < messages && sent - echoed < window {
            client.send(&format!("{sent:08}{body}")).await;
            sent += 1;
        }
        match client.next(crate::client::EVENT).await {
            Some(Seen::Text(t)) => {
                assert_eq!(&t[..8], format!("{echoed:08}"), "echo order");
                echoed += 1;
            }
            other => panic!("bench: expected an echo, got {other:?}"),
        }
    }
    let elapsed = start.elapsed();
    let sample = Sample {
        messages,
        payload,
        elapsed,
        runner_cpu: cpu_seconds(runner_pid) - runner0,
        engine_cpu: cpu_seconds(engine_pid) - engine0,
    };
    client.close(1000, "done").await;
    sample
}
