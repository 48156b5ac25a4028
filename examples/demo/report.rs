//! The demo's report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use hibernating_ws::gateway::GatewayStats;
use serde::{Deserialize, Serialize};

use super::args::Args;
use super::client::ClientReport;
use super::gateway::Snapshot;
use super::scenario::{ChurnTally, META_NOT_FOUND};
use super::storage::StreamState;

/// Counters a runner reports (cumulative for its lifetime), written to its report file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerReport {
    /// Messages handed to the app, duplicates of a crash included.
    pub delivered: u64,
    /// Duplicates the runner engine dropped.
    pub duplicates_dropped: u64,
    /// Gaps the runner engine saw.
    pub gaps: u64,
    /// Persists completed.
    pub persists: u64,
    /// Acks sent.
    pub acks: u64,
    /// Sockets restored after a wake.
    pub restored: u64,
    /// Frames the runner engine dropped as malformed.
    pub malformed: u64,
    /// Socket closes seen by the runner, by reason.
    pub closes: BTreeMap<String, u64>,
}

impl RunnerReport {
    /// Adds `o`'s counters to these.
    pub fn add(&mut self, o: &Self) {
        self.delivered += o.delivered;
        self.duplicates_dropped += o.duplicates_dropped;
        self.gaps += o.gaps;
        self.persists += o.persists;
        self.acks += o.acks;
        self.restored += o.restored;
        self.malformed += o.malformed;
        for (k, v) in &o.closes {
            *self.closes.entry(k.clone()).or_insert(0) += v;
        }
    }
}

/// The latest report of every runner that kept its actors in `data_dir`, by runner name (see
/// [`report_path`](super::runner::report_path)).
pub fn runner_reports(data_dir: &Path) -> BTreeMap<String, RunnerReport> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("reports")) else {
        return BTreeMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_str()?.strip_suffix(".json")?.to_string();
            let report = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
            Some((name, report))
        })
        .collect()
}

/// The counters of every runner that kept its actors in `data_dir`, summed.
pub fn runner_total(data_dir: &Path) -> RunnerReport {
    let mut t = RunnerReport::default();
    for r in runner_reports(data_dir).values() {
        t.add(r);
    }
    t
}

/// Everything the demo measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub args: Args,
    pub client: ClientReport,
    pub gateway: GatewayStats,
    pub snapshot: Snapshot,
    /// Every runner's counters, summed (a killed one as of its last report).
    pub runners: RunnerReport,
    /// The actor's committed result for the client's stream (`None`: never committed).
    pub committed: Option<StreamState>,
    pub kills: u32,
    /// Messages handed to the actor app by every runner of this process (`None` when the
    /// runner is a child process: then the runners' own reports are used).
    pub app_deliveries: Option<u64>,
    pub elapsed: Duration,
    /// What the churn clients saw (all zero without them).
    pub churn: ChurnTally,
}

impl Report {
    fn committed(&self) -> StreamState {
        self.committed.unwrap_or_default()
    }

    /// Messages sent but not in the committed log (or skipped over in it).
    pub fn lost(&self) -> u64 {
        let c = self.committed();
        self.client
            .sent
            .saturating_sub(c.count.saturating_sub(c.gaps))
            + c.gaps
    }

    /// Messages the committed log processed twice.
    pub fn twice(&self) -> u64 {
        let c = self.committed();
        c.duplicates + c.count.saturating_sub(self.client.sent)
    }

    /// Whether the committed log's digest is the digest of everything sent, in order.
    pub fn digest_ok(&self) -> bool {
        self.committed
            .is_some_and(|c| c.digest == self.client.expected_digest && c.count == self.client.sent)
    }

    /// Exactly once: nothing lost, nothing twice, the right content in the right order.
    pub fn pass(&self) -> bool {
        self.lost() == 0
            && self.twice() == 0
            && self.digest_ok()
            && self.churn.pass_with(&self.snapshot.closes)
    }

    /// The report as text.
    #[allow(clippy::cast_precision_loss)]
    pub fn render(&self) -> String {
        let (a, c) = (&self.args, &self.client);
        let mut r = self.runners.clone();
        if let Some(d) = self.app_deliveries {
            r.delivered = d;
        }
        let mut o = String::new();
        let _ = writeln!(
            o,
            "hws demo: client -> gateway -> runner -> actor over loopback WebSockets"
        );
        let _ = writeln!(
            o,
            "  {} messages, {}..{} bytes, seed {}, {} sleeps, runner kill: {}, runner: {}",
            a.messages,
            a.min_size,
            a.max_size,
            a.seed,
            a.sleeps,
            if a.kill_runner { "yes" } else { "no" },
            if a.runner_process {
                "child process"
            } else {
                "in process"
            },
        );
        let _ = writeln!(o);
        let _ = writeln!(o, "client");
        let _ = writeln!(
            o,
            "  sent                      {:>9}  ({} text, {} binary, {:.1} MiB)",
            c.sent,
            c.text,
            c.binary,
            c.sent_bytes as f64 / 1_048_576.0
        );
        let _ = writeln!(
            o,
            "  echoes received           {:>9}  (+{} status probes after the stream)",
            c.echoes, c.probes
        );
        let _ = writeln!(
            o,
            "  last echo                 {:>9}  digest {}",
            c.last_echo.map_or(0, |e| e.0),
            match c.last_echo {
                Some(e) if e.1 == c.expected_digest && e.0 == c.sent => "matches",
                Some(_) => "differs (echoes are not replayed; the committed log decides)",
                None => "none",
            }
        );
        self.render_engines(&mut o, &r);
        self.render_outcome(&mut o, &r);
        o
    }

    /// The gateway's and the runners' counters.
    fn render_engines(&self, o: &mut String, r: &RunnerReport) {
        let (g, s) = (&self.gateway, &self.snapshot);
        let committed = self.committed();
        let _ = writeln!(o, "gateway");
        let _ = writeln!(
            o,
            "  published (first send)    {:>9}  (messages and probes)",
            g.messages_sent
        );
        let _ = writeln!(
            o,
            "  replayed on wake          {:>9}  (buffered while asleep, or unacked)",
            g.messages_replayed
        );
        let _ = writeln!(
            o,
            "  retransmitted             {:>9}",
            g.messages_retransmitted
        );
        let _ = writeln!(
            o,
            "  acked                     {:>9}  ({} acks)",
            g.messages_acked, g.acks_applied
        );
        let _ = writeln!(o, "  backpressured reads       {:>9}", g.backpressured);
        let _ = writeln!(
            o,
            "  hibernations / wakes      {:>9}  / {}",
            g.hibernations, g.wakes
        );
        let _ = writeln!(
            o,
            "  actor sleeps / starts     {:>9}  / {}  (runner kills: {}, runners lost: {})",
            s.sleeps, s.starts, self.kills, s.runners_lost
        );
        let _ = writeln!(o, "  pending at the end        {:>9}", g.pending_messages);
        let _ = writeln!(
            o,
            "runner (all incarnations; a killed one as of its last report, at most 20 ms old)"
        );
        let _ = writeln!(o, "  delivered to the app      {:>9}", r.delivered);
        let _ = writeln!(o, "  duplicates dropped        {:>9}", r.duplicates_dropped);
        match self.app_deliveries {
            Some(d) => {
                let _ = writeln!(
                    o,
                    "  redelivered after a crash {:>9}  (the killed runner's delivered but unpersisted messages, delivered again)",
                    d.saturating_sub(committed.count)
                );
            }
            None => {
                let _ = writeln!(
                    o,
                    "  redelivered after a crash   unknown  (a SIGKILLed child cannot report its last deliveries)"
                );
            }
        }
        let _ = writeln!(
            o,
            "  persists / acks           {:>9}  / {}",
            r.persists, r.acks
        );
        let _ = writeln!(o, "  sockets restored          {:>9}", r.restored);
    }

    /// Closes, the committed log, churn, throughput and the verdict.
    #[allow(clippy::cast_precision_loss)]
    fn render_outcome(&self, o: &mut String, r: &RunnerReport) {
        let (c, s) = (&self.client, &self.snapshot);
        let committed = self.committed();
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let _ = writeln!(o, "closes by reason");
        for (reason, n) in &s.closes {
            let _ = writeln!(o, "  gateway: {reason}: {n}");
        }
        for (reason, n) in &r.closes {
            let _ = writeln!(o, "  runner:  {reason}: {n}");
        }
        for (error, n) in &s.receive_errors {
            let _ = writeln!(o, "  gateway dropped runner frames: {error}: {n}");
        }
        let _ = writeln!(
            o,
            "actor's committed log (persisted atomically with the index)"
        );
        let _ = writeln!(
            o,
            "  committed                 {:>9}  digest {}",
            committed.count,
            if self.digest_ok() {
                "matches what the client sent"
            } else {
                "DIFFERS"
            }
        );
        let _ = writeln!(o, "  lost                      {:>9}", self.lost());
        let _ = writeln!(o, "  delivered twice           {:>9}", self.twice());
        if self.churn.cycles > 0 {
            let t = &self.churn;
            let _ = writeln!(
                o,
                "churn clients: {} streams ({} messages): {} exact ({} of them finished only after a start: the close was lost with the runner), {} closed by the gateway, {} never persisted ({} messages; runner died before the socket's first persist, closed {META_NOT_FOUND}), {} failed, {} unfinished ({} messages); {} lost, {} twice",
                t.cycles,
                t.sent,
                t.exact,
                t.close_unseen,
                t.aborted,
                t.never_persisted,
                t.never_persisted_messages,
                t.failed,
                t.unfinished,
                t.unfinished_messages,
                t.lost,
                t.twice
            );
        }
        let _ = writeln!(
            o,
            "elapsed {:.2} s, {:.0} messages/s, {:.1} MiB/s",
            secs,
            c.sent as f64 / secs,
            c.sent_bytes as f64 / 1_048_576.0 / secs
        );
        let _ = writeln!(
            o,
            "{}",
            if self.pass() {
                "PASS: every message exactly once, in order"
            } else if self.committed.is_none() {
                "FAIL: the stream was never committed"
            } else {
                "FAIL: messages lost or delivered twice"
            }
        );
    }
}
