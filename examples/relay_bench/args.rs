//! Command-line arguments of `relay_bench`.

use hibernating_ws::gateway::GatewayConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Baseline,
    Hws,
    Tasks,
}

impl Mode {
    pub(super) fn name(self) -> &'static str {
        match self {
            Mode::Baseline => "baseline",
            Mode::Hws => "hws",
            Mode::Tasks => "tasks",
        }
    }

    pub(super) fn parse(s: &str) -> Option<Self> {
        [Mode::Baseline, Mode::Hws, Mode::Tasks]
            .into_iter()
            .find(|m| m.name() == s.trim())
    }
}

#[derive(Debug, Clone)]
pub(super) struct Args {
    pub(super) sizes: Vec<usize>,
    pub(super) messages: Vec<u64>,
    pub(super) runs: u32,
    pub(super) threads: usize,
    pub(super) clients: u32,
    pub(super) per_client: u64,
    pub(super) ws_buffer: usize,
    pub(super) modes: Vec<Mode>,
    pub(super) window: u64,
}

impl Args {
    pub(super) fn parse(mut it: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut args = Args {
            sizes: vec![64, 1024, 16 * 1024],
            messages: Vec::new(),
            runs: 5,
            threads: 2,
            clients: 1,
            per_client: 20,
            ws_buffer: 0,
            modes: vec![Mode::Baseline, Mode::Hws],
            window: GatewayConfig::default().max_pending_bytes,
        };
        while let Some(flag) = it.next() {
            if flag == "-h" || flag == "--help" {
                return Err(String::new());
            }
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
            match flag.as_str() {
                "--sizes" => args.sizes = list(&value).map_err(|e| bad(&e))?,
                "--messages" => args.messages = list(&value).map_err(|e| bad(&e))?,
                "--runs" => args.runs = value.parse().map_err(|e| bad(&e))?,
                "--threads" => args.threads = value.parse().map_err(|e| bad(&e))?,
                "--clients" => args.clients = value.parse().map_err(|e| bad(&e))?,
                "--ws-buffer" => args.ws_buffer = value.parse().map_err(|e| bad(&e))?,
                "--per-client" => args.per_client = value.parse().map_err(|e| bad(&e))?,
                "--window" => args.window = value.parse().map_err(|e| bad(&e))?,
                "--modes" => {
                    args.modes = value
                        .split(',')
                        .map(|m| Mode::parse(m).ok_or_else(|| format!("--modes: unknown mode {m}")))
                        .collect::<Result<_, _>>()?;
                }
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        if args.clients > 1 {
            if args.modes.contains(&Mode::Tasks) || args.per_client == 0 {
                return Err("many-clients mode: modes baseline and hws, --per-client > 0".into());
            }
            args.messages = vec![u64::from(args.clients) * args.per_client; args.sizes.len()];
        }
        if args.messages.is_empty() {
            args.messages = args.sizes.iter().map(|&s| default_messages(s)).collect();
        }
        if args.messages.len() == 1 {
            args.messages = vec![args.messages[0]; args.sizes.len()];
        }
        if args.messages.len() != args.sizes.len() {
            return Err("--messages needs one value, or one per size".into());
        }
        if args.sizes.contains(&0) || args.messages.contains(&0) || args.runs == 0 {
            return Err("sizes, messages and runs must be positive".into());
        }
        if args.modes.is_empty() {
            return Err("--modes needs at least one mode".into());
        }
        if args.threads == 0 {
            return Err("--threads must be positive".into());
        }
        Ok(args)
    }
}

/// About 256 MiB of payload per run, between 40 000 and 1 000 000 messages.
pub(super) fn default_messages(size: usize) -> u64 {
    ((256_u64 << 20) / size.max(1) as u64).clamp(40_000, 1_000_000)
}

pub(super) fn list<T: std::str::FromStr>(s: &str) -> Result<Vec<T>, T::Err> {
    s.split(',').map(|v| v.trim().parse()).collect()
}
