//! Sweeps seeds of the deterministic simulator and prints a summary table.
//!
//! ```sh
//! cargo run --release --example sim --features sim -- --seeds 500
//! cargo run --release --example sim --features sim -- --seeds 2000 --large --policy await
//! cargo run --release --example sim --features sim -- --trace 42
//! ```
//!
//! Options: `--seeds N` (default 500), `--start S` (first seed, default 0), `--large` (the large
//! world), `--small` (the fuzz target's small world), `--messages N` (most messages per connection), `--connections N` (most connections),
//! `--policy close|backpressure|await` (`close`: both Rivet-compatible policies;
//! `backpressure`: the gateway's overflow policy; `await`: the runner's gap policy),
//! `--no-faults` (only sleeps and wakes), `--verbose` (one line per seed), `--trace S` (print
//! seed S's whole trace and report, nothing else).

extern crate alloc;

use alloc::collections::BTreeMap;
use std::process::ExitCode;

use hibernating_ws::gateway::OverflowPolicy;
use hibernating_ws::runner::GapPolicy;
use hibernating_ws::sim::{self, Faults, SimConfig};

struct Options {
    seeds: u64,
    start: u64,
    config: SimConfig,
    verbose: bool,
    trace: Option<u64>,
}

fn parse() -> Result<Options, String> {
    let mut o = Options {
        seeds: 500,
        start: 0,
        config: SimConfig::default(),
        verbose: false,
        trace: None,
    };
    let mut args = std::env::args().skip(1);
    let number = |v: Option<String>, name: &str| -> Result<u64, String> {
        v.as_deref()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("{name} needs a number"))
    };
    let (mut large, mut small) = (false, false);
    let (mut messages, mut connections, mut policy, mut no_faults) = (None, None, None, false);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seeds" => o.seeds = number(args.next(), "--seeds")?,
            "--start" => o.start = number(args.next(), "--start")?,
            "--messages" => messages = Some(number(args.next(), "--messages")?),
            "--connections" => connections = Some(number(args.next(), "--connections")?),
            "--policy" => policy = args.next(),
            "--large" => large = true,
            "--small" => small = true,
            "--no-faults" => no_faults = true,
            "--verbose" => o.verbose = true,
            "--trace" => o.trace = Some(number(args.next(), "--trace")?),
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if large {
        o.config = SimConfig::large();
    }
    if small {
        o.config = SimConfig::small();
    }
    if let Some(m) = messages {
        o.config.messages_per_connection =
            0..=u32::try_from(m).map_err(|_| "--messages too large")?;
    }
    if let Some(c) = connections {
        o.config.connections = 1..=usize::try_from(c.max(1)).map_err(|_| "--connections")?;
    }
    match policy.as_deref() {
        None => {}
        Some("close") => {
            o.config.overflow_policy = Some(OverflowPolicy::Close);
            o.config.gap_policy = Some(GapPolicy::Close);
        }
        Some("backpressure") => o.config.overflow_policy = Some(OverflowPolicy::Backpressure),
        Some("await") => o.config.gap_policy = Some(GapPolicy::Await),
        Some(p) => return Err(format!("unknown policy {p}")),
    }
    if no_faults {
        o.config.faults = Faults::none();
    }
    Ok(o)
}

fn add(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_default() += v;
    }
}

fn main() -> ExitCode {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "{e}\nusage: sim [--seeds N] [--start S] [--large | --small] [--messages N] [--connections N] [--policy close|backpressure|await] [--no-faults] [--verbose] [--trace S]"
            );
            return ExitCode::from(2);
        }
    };
    if let Some(seed) = o.trace {
        let mut config = o.config.clone();
        config.trace_capacity = usize::MAX >> 8;
        let (report, trace) = sim::run_traced(seed, &config);
        for line in trace {
            println!("{line}");
        }
        println!("{report}");
        return if report.passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }

    #[allow(clippy::disallowed_methods)] // a tool measuring its own run time
    let started = std::time::Instant::now();
    let (mut accepted, mut delivered, mut replayed, mut dups, mut healed, mut retx) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut crashes, mut sleeps, mut wakes, mut virtual_secs) = (0u64, 0u64, 0u64, 0f64);
    let (mut faults, mut closes, mut counts) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    let mut failed = Vec::new();
    for seed in o.start..o.start + o.seeds {
        let r = sim::run(seed, &o.config);
        if o.verbose {
            println!("{}", sim::summary(&r));
        }
        accepted += r.messages_accepted;
        delivered += r.delivered;
        replayed += r.replayed;
        dups += r.duplicates_dropped;
        healed += r.gaps_healed;
        retx += r.retransmits;
        crashes += r.crashes;
        sleeps += r.sleeps;
        wakes += r.wakes;
        virtual_secs += r.virtual_time.as_secs_f64();
        add(&mut faults, &r.faults);
        add(&mut closes, &r.closes_by_reason);
        add(&mut counts, &r.counts);
        if !r.passed() {
            println!("{r}");
            failed.push(r.seed);
        }
    }
    let elapsed = started.elapsed();

    println!("{:<28} {:>12}", "seeds", o.seeds);
    println!("{:<28} {:>12}", "seeds failed", failed.len());
    println!("{:<28} {:>12}", "messages accepted", accepted);
    println!("{:<28} {:>12}", "messages delivered", delivered);
    println!("{:<28} {:>12}", "messages replayed", replayed);
    println!("{:<28} {:>12}", "duplicates dropped", dups);
    println!("{:<28} {:>12}", "gaps healed", healed);
    println!("{:<28} {:>12}", "retransmits", retx);
    println!("{:<28} {:>12}", "crashes", crashes);
    println!("{:<28} {:>12}", "sleeps", sleeps);
    println!("{:<28} {:>12}", "wakes", wakes);
    println!("{:<28} {:>12.0}", "virtual seconds", virtual_secs);
    println!("{:<28} {:>12.3}", "wall seconds", elapsed.as_secs_f64());
    println!("\nfaults injected");
    for (k, v) in &faults {
        println!("  {k:<40} {v:>10}");
    }
    println!("\ncloses by reason");
    for (k, v) in &closes {
        println!("  {k:<60} {v:>8}");
    }
    println!("\nother counters");
    for (k, v) in &counts {
        println!("  {k:<40} {v:>10}");
    }
    if failed.is_empty() {
        println!("\nviolations: none");
        ExitCode::SUCCESS
    } else {
        println!("\nviolations in seeds {failed:?}");
        ExitCode::FAILURE
    }
}
