//! The report: rates, CPU and RSS per mode, and the table.

use std::fmt::Write as _;

use super::Sample;
use super::args::{Args, Mode};

#[derive(Debug, Default)]
pub(super) struct Series {
    pub(super) samples: Vec<Sample>,
}

impl Series {
    pub(super) fn rates(&self, messages: u64) -> Vec<f64> {
        let mut r: Vec<f64> = self
            .samples
            .iter()
            .map(|s| messages as f64 / s.elapsed.as_secs_f64())
            .collect();
        r.sort_by(f64::total_cmp);
        r
    }

    /// CPU microseconds per message, sorted.
    pub(super) fn cpu_per_message(&self, messages: u64) -> Vec<f64> {
        let mut r: Vec<f64> = self
            .samples
            .iter()
            .filter_map(|s| s.cpu)
            .map(|c| c.as_secs_f64() * 1e6 / messages as f64)
            .collect();
        r.sort_by(f64::total_cmp);
        r
    }
}

pub(super) fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]),
    }
}

pub(super) fn mib(bytes_per_s: f64) -> f64 {
    bytes_per_s / (1024.0 * 1024.0)
}

pub(super) fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

pub(super) fn spread(sorted: &[f64], f: impl Fn(f64) -> String) -> String {
    match (sorted.first(), sorted.last()) {
        (Some(&lo), Some(&hi)) => format!("{} ({}–{})", f(median(sorted)), f(lo), f(hi)),
        _ => "-".into(),
    }
}

/// The table: one row per size and mode, with the ratio to the baseline.
pub(super) fn render(args: &Args, series: &[Vec<Series>]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n| payload | messages | mode | msg/s | MiB/s | / baseline | CPU µs/msg | RSS B/client |"
    );
    let _ = writeln!(out, "|---:|---:|---|---:|---:|---:|---:|---:|");
    let base = args.modes.iter().position(|&m| m == Mode::Baseline);
    for ((&size, &messages), row) in args.sizes.iter().zip(&args.messages).zip(series) {
        for (&mode, s) in args.modes.iter().zip(row) {
            let rates = s.rates(messages);
            let bytes = |r: f64| format!("{:.1}", mib(r * size as f64));
            let ratio = match base.map(|b| &row[b]) {
                Some(b) if mode != Mode::Baseline && !b.samples.is_empty() => {
                    // Paired: run k of this mode against run k of the baseline (adjacent in time).
                    let mut paired: Vec<f64> = s
                        .samples
                        .iter()
                        .zip(&b.samples)
                        .map(|(x, b)| b.elapsed.as_secs_f64() / x.elapsed.as_secs_f64())
                        .collect();
                    paired.sort_by(f64::total_cmp);
                    format!(
                        "{:.2} (paired {})",
                        median(&rates) / median(&b.rates(messages)),
                        spread(&paired, |r| format!("{r:.2}"))
                    )
                }
                _ => "-".into(),
            };
            let mut rss: Vec<f64> = s.samples.iter().filter_map(|x| x.rss_per_client).collect();
            rss.sort_by(f64::total_cmp);
            let _ = writeln!(
                out,
                "| {size} B | {messages} | {} | {} | {} | {ratio} | {} | {} |",
                mode.name(),
                spread(&rates, fmt_rate),
                spread(&rates, bytes),
                spread(&s.cpu_per_message(messages), |c| format!("{c:.2}")),
                spread(&rss, |r| format!("{r:.0}")),
            );
        }
    }
    let _ = writeln!(
        out,
        "\nmedian (min–max) over {} runs; / baseline: ratio of the median throughputs (paired: \
         per run, against the baseline run next to it); CPU: the whole process, per message (many-clients mode: the servers' process, the clients run in a child); RSS: what the open, warmed-up client connections added to the servers' process, per client",
        args.runs
    );
    out
}
