//! [`SimConfig`] (what a user sets) and the per-seed parameters drawn from it (swarm testing:
//! every fault probability and rate comes from the seed, so some seeds have no drops and some
//! many).

use alloc::format;
use alloc::string::String;
use core::ops::RangeInclusive;
use core::time::Duration;

use crate::control::ControlConfig;
use crate::gateway::{GatewayConfig, OverflowPolicy};
use crate::index::MAX_WINDOW;
use crate::runner::{GapPolicy, RunnerConfig};

use super::rng::{Entropy, PPM};

/// Upper bounds of the faults a seed may draw. Each seed draws its own rate for every kind in
/// `0..=max` (a third of the seeds get exactly zero for each kind), and logs what it drew.
/// Probabilities are in parts per million.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[allow(clippy::struct_excessive_bools)] // one switch per fault kind
pub struct Faults {
    /// Most probability that a gateway ⇄ runner message is dropped.
    pub drop_ppm: u32,
    /// Most probability that a message is delivered twice.
    pub duplicate_ppm: u32,
    /// Most probability that a message takes a random extra delay (reordering it).
    pub reorder_ppm: u32,
    /// Most probability that a link stalls for a while (order kept).
    pub delay_ppm: u32,
    /// Links go down for a while (both directions).
    pub partitions: bool,
    /// Runners crash (engine dropped, storage kept) and restart.
    pub runner_crashes: bool,
    /// Actors crash (the app dies, the runner stays).
    pub actor_crashes: bool,
    /// Actors are put to sleep and woken.
    pub sleeps: bool,
    /// Most probability that a persist write fails.
    pub persist_failure_ppm: u32,
    /// Most probability that an actor's start fails (after the engine heard `Running`, while
    /// the replays of its woken requests travel to the runner).
    pub start_failure_ppm: u32,
    /// The whole world stalls and its clock jumps forward (up to 2 minutes).
    pub clock_jumps: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            drop_ppm: 30_000,
            duplicate_ppm: 30_000,
            reorder_ppm: 30_000,
            delay_ppm: 20_000,
            partitions: true,
            runner_crashes: true,
            actor_crashes: true,
            sleeps: true,
            persist_failure_ppm: 100_000,
            start_failure_ppm: 50_000,
            clock_jumps: true,
        }
    }
}

impl Faults {
    /// No faults at all (still sleeps and wakes actors).
    #[must_use]
    pub fn none() -> Self {
        Self {
            drop_ppm: 0,
            duplicate_ppm: 0,
            reorder_ppm: 0,
            delay_ppm: 0,
            partitions: false,
            runner_crashes: false,
            actor_crashes: false,
            sleeps: true,
            persist_failure_ppm: 0,
            start_failure_ppm: 0,
            clock_jumps: false,
        }
    }
}

/// What a simulation looks like. Ranges are drawn from per seed; `None` policies and limits are
/// drawn per seed too.
///
/// ```
/// use hibernating_ws::sim::SimConfig;
///
/// let mut config = SimConfig::default();
/// config.messages_per_connection = 0..=100;
/// assert!(config.chaos_duration.as_secs() > 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SimConfig {
    /// Runner processes.
    pub runners: RangeInclusive<usize>,
    /// Actors (each with its own durable storage).
    pub actors: RangeInclusive<usize>,
    /// Client WebSocket connections over the run.
    pub connections: RangeInclusive<usize>,
    /// Messages each client sends.
    pub messages_per_connection: RangeInclusive<u32>,
    /// Payload sizes in bytes (at least 16: the payload id is written in front).
    pub payload_bytes: RangeInclusive<usize>,
    /// Virtual duration of the chaos phase (clients send, faults happen).
    pub chaos_duration: Duration,
    /// Virtual time the heal phase may take to reach quiescence before it counts as a
    /// liveness violation.
    pub heal_budget: Duration,
    /// Fault bounds.
    pub faults: Faults,
    /// Gateway overflow policy; `None`: drawn per seed.
    pub overflow_policy: Option<OverflowPolicy>,
    /// Runner gap policy; `None`: drawn per seed.
    pub gap_policy: Option<GapPolicy>,
    /// Gateway pending-message limit per request; `None`: drawn per seed (often small, so
    /// bursts go past it).
    pub max_pending_messages: Option<u16>,
    /// Gateway pending-byte limit per request; `None`: drawn per seed.
    pub max_pending_bytes: Option<u64>,
    /// Lines of trace kept (the tail is printed on failure); 0 keeps none and only hashes.
    pub trace_capacity: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            runners: 1..=3,
            actors: 1..=3,
            connections: 1..=6,
            messages_per_connection: 0..=32,
            payload_bytes: 16..=256,
            chaos_duration: Duration::from_secs(90),
            heal_budget: Duration::from_secs(900),
            faults: Faults::default(),
            overflow_policy: None,
            gap_policy: None,
            max_pending_messages: None,
            max_pending_bytes: None,
            trace_capacity: 0,
        }
    }
}

impl SimConfig {
    /// A large world: up to 4 runners, 4 actors, 10 connections of 200 messages of up to 2 KB,
    /// 3 minutes of chaos.
    #[must_use]
    pub fn large() -> Self {
        Self {
            runners: 1..=4,
            actors: 1..=4,
            connections: 1..=10,
            messages_per_connection: 0..=200,
            payload_bytes: 16..=2_000,
            chaos_duration: Duration::from_secs(180),
            ..Self::default()
        }
    }

    /// A small world for fuzzing: few actors, connections and messages, 20 s of chaos.
    #[must_use]
    pub fn small() -> Self {
        Self {
            runners: 1..=2,
            actors: 1..=2,
            connections: 1..=3,
            messages_per_connection: 0..=8,
            payload_bytes: 16..=64,
            chaos_duration: Duration::from_secs(20),
            ..Self::default()
        }
    }
}

/// Everything a seed drew. Probabilities in ppm, times in microseconds.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    pub(crate) runners: usize,
    pub(crate) actors: usize,
    pub(crate) connections: usize,
    pub(crate) messages: RangeInclusive<u32>,
    pub(crate) payload: RangeInclusive<usize>,
    /// A message this much bigger than the per-request byte limit (never fits).
    pub(crate) oversize_ppm: u32,
    pub(crate) text_ppm: u32,
    pub(crate) burst_max: u32,
    pub(crate) send_gap_us: u64,
    pub(crate) client_close_ppm: u32,
    pub(crate) chaos_us: u64,

    pub(crate) latency_us: (u64, u64),
    pub(crate) drop_ppm: u32,
    pub(crate) dup_ppm: u32,
    pub(crate) reorder_ppm: u32,
    pub(crate) reorder_max_us: u64,
    pub(crate) delay_ppm: u32,
    pub(crate) delay_max_us: u64,
    /// Mean interval between partitions (0: none).
    pub(crate) partition_every_us: u64,
    pub(crate) partition_max_us: u64,
    pub(crate) crash_every_us: u64,
    pub(crate) crash_notice_max_us: u64,
    pub(crate) restart_max_us: u64,
    pub(crate) write_lands_on_crash_ppm: u32,
    /// A persist makes its app (or its runner) crash while the write is in flight.
    pub(crate) crash_at_persist_ppm: u32,
    pub(crate) app_crash_every_us: u64,
    pub(crate) sleep_every_us: u64,
    pub(crate) jump_every_us: u64,
    pub(crate) jump_max_us: u64,
    pub(crate) persist_fail_ppm: u32,
    pub(crate) start_fail_ppm: u32,
    pub(crate) storage_max_us: u64,
    pub(crate) signal_max_us: u64,
    pub(crate) start_max_us: u64,

    pub(crate) hibernatable_ppm: u32,
    pub(crate) reject_ppm: u32,
    pub(crate) echo_ppm: u32,
    pub(crate) app_close_ppm: u32,
    pub(crate) app_hibernate_ppm: u32,
    pub(crate) app_delay_max_us: u64,

    /// Actors each runner hosts at once.
    pub(crate) slots: u32,

    pub(crate) gateway: GatewayConfig,
    pub(crate) runner: RunnerConfig,
    pub(crate) control: ControlConfig,
}

const MS: u64 = 1_000;
const S: u64 = 1_000_000;

/// A rate in `0..=max`, zero for a third of the seeds.
fn rate(e: &mut Entropy, max: u32) -> u32 {
    if max == 0 || e.below(3) == 0 {
        0
    } else {
        u32::try_from(e.range(1, u64::from(max))).unwrap_or(max)
    }
}

/// A mean interval in `lo..=hi` seconds, or 0 (off) for a third of the seeds or when disabled.
fn every(e: &mut Entropy, enabled: bool, lo: u64, hi: u64) -> u64 {
    if !enabled || e.below(3) == 0 {
        0
    } else {
        e.range(lo * S, hi * S)
    }
}

fn draw_range<T: Copy + Into<u64> + TryFrom<u64>>(e: &mut Entropy, r: &RangeInclusive<T>) -> T {
    let v = e.range((*r.start()).into(), (*r.end()).into());
    T::try_from(v).unwrap_or(*r.start())
}

impl Params {
    #[allow(clippy::too_many_lines)] // one draw per parameter, in a fixed order
    pub(crate) fn draw(cfg: &SimConfig, e: &mut Entropy) -> Self {
        let f = &cfg.faults;
        let usize_range = |e: &mut Entropy, r: &RangeInclusive<usize>| {
            let v = e.range(*r.start() as u64, *r.end() as u64);
            usize::try_from(v).unwrap_or(*r.start()).max(1)
        };
        let runners = usize_range(e, &cfg.runners);
        let actors = usize_range(e, &cfg.actors);
        let connections = usize_range(e, &cfg.connections);
        let hi_msgs = draw_range(e, &cfg.messages_per_connection);
        let messages = *cfg.messages_per_connection.start()..=hi_msgs;
        let min_payload = (*cfg.payload_bytes.start()).max(16);
        let max_payload = (*cfg.payload_bytes.end()).max(min_payload);
        let payload = min_payload..=max_payload;

        let (gateway, runner) = draw_engines(cfg, e, max_payload);
        let max_pending_messages = gateway.max_pending_messages;

        let lat_lo = e.range(50, 2 * MS);
        let lat_hi = lat_lo + e.range(0, 20 * MS);
        Self {
            runners,
            actors,
            connections,
            messages,
            payload,
            oversize_ppm: if e.below(4) == 0 { 20_000 } else { 0 },
            text_ppm: u32::try_from(e.below(u64::from(PPM) + 1)).unwrap_or(0),
            burst_max: u32::try_from(e.range(1, u64::from(max_pending_messages.min(64)) + 2))
                .unwrap_or(1),
            send_gap_us: e.range(10 * MS, 3 * S),
            client_close_ppm: u32::try_from(e.range(0, 600_000)).unwrap_or(0),
            chaos_us: u64::try_from(cfg.chaos_duration.as_micros()).unwrap_or(u64::MAX),

            latency_us: (lat_lo, lat_hi),
            drop_ppm: rate(e, f.drop_ppm),
            dup_ppm: rate(e, f.duplicate_ppm),
            reorder_ppm: rate(e, f.reorder_ppm),
            reorder_max_us: e.range(MS, 500 * MS),
            delay_ppm: rate(e, f.delay_ppm),
            delay_max_us: e.range(100 * MS, 5 * S),
            partition_every_us: every(e, f.partitions, 5, 60),
            partition_max_us: e.range(500 * MS, 45 * S),
            crash_every_us: every(e, f.runner_crashes, 10, 120),
            crash_notice_max_us: e.range(100 * MS, 10 * S),
            restart_max_us: e.range(100 * MS, 20 * S),
            write_lands_on_crash_ppm: u32::try_from(e.below(u64::from(PPM) + 1)).unwrap_or(0),
            app_crash_every_us: every(e, f.actor_crashes, 10, 120),
            sleep_every_us: every(e, f.sleeps, 3, 60),
            jump_every_us: every(e, f.clock_jumps, 20, 120),
            jump_max_us: e.range(S, 120 * S),
            persist_fail_ppm: rate(e, f.persist_failure_ppm),
            start_fail_ppm: rate(e, f.start_failure_ppm),
            storage_max_us: e.range(100, 50 * MS),
            signal_max_us: e.range(100, 500 * MS),
            start_max_us: e.range(MS, 2 * S),

            hibernatable_ppm: e.pick(&[PPM, 900_000, 500_000, 0]),
            reject_ppm: e.pick(&[0, 0, 50_000]),
            echo_ppm: e.pick(&[0, 200_000, 800_000]),
            app_close_ppm: e.pick(&[0, 0, 5_000, 30_000]),
            app_hibernate_ppm: e.pick(&[0, 0, 5_000, 30_000]),
            app_delay_max_us: e.range(0, 50 * MS),

            // Enough slots across the runners for every actor at once (the heal phase's final
            // round runs them all), sometimes no more than that.
            slots: u32::try_from(e.range(actors.div_ceil(runners) as u64, actors as u64))
                .unwrap_or(1),
            control: draw_control(e),
            gateway,
            runner,
            // Drawn last so that adding it did not move the other draws.
            crash_at_persist_ppm: if f.actor_crashes || f.runner_crashes {
                rate(e, 30_000)
            } else {
                0
            },
        }
    }

    /// One line per group of parameters, logged at the start of a trace.
    pub(crate) fn describe(&self) -> [String; 6] {
        let g = &self.gateway;
        let r = &self.runner;
        let c = &self.control;
        [
            format!(
                "world: {} runners, {} actors, {} connections, messages {:?}, payload {:?}, burst<={}, send gap~{}ms, hibernatable {}ppm",
                self.runners,
                self.actors,
                self.connections,
                self.messages,
                self.payload,
                self.burst_max,
                self.send_gap_us / MS,
                self.hibernatable_ppm
            ),
            format!(
                "net: latency {}..{}us drop {}ppm dup {}ppm reorder {}ppm (<{}ms) stall {}ppm (<{}ms) partition every~{}s (<{}s)",
                self.latency_us.0,
                self.latency_us.1,
                self.drop_ppm,
                self.dup_ppm,
                self.reorder_ppm,
                self.reorder_max_us / MS,
                self.delay_ppm,
                self.delay_max_us / MS,
                self.partition_every_us / S,
                self.partition_max_us / S
            ),
            format!(
                "crash: runner every~{}s (notice<{}ms) actor every~{}s, at a persist {}ppm, sleep every~{}s, clock jump every~{}s (<{}s), persist fail {}ppm, start fail {}ppm, write lands on crash {}ppm",
                self.crash_every_us / S,
                self.crash_notice_max_us / MS,
                self.app_crash_every_us / S,
                self.crash_at_persist_ppm,
                self.sleep_every_us / S,
                self.jump_every_us / S,
                self.jump_max_us / S,
                self.persist_fail_ppm,
                self.start_fail_ppm,
                self.write_lands_on_crash_ppm
            ),
            format!(
                "gateway: {:?} max {} msgs / {} B per request, {} B total, retransmit {:?}, hibernate on ping timeout {}",
                g.overflow_policy,
                g.max_pending_messages,
                g.max_pending_bytes,
                g.max_gateway_pending_bytes,
                g.retransmit_timeout,
                g.hibernate_on_ping_timeout
            ),
            format!(
                "runner: {:?} persist {} B / {:?}, retry {:?}..{:?}, held {} / {} B for {:?}, queue {}, reack {:?}",
                r.gap_policy,
                r.persist_bytes,
                r.persist_interval,
                r.persist_retry_initial,
                r.persist_retry_max,
                r.max_held_messages,
                r.max_held_bytes,
                r.gap_timeout,
                r.max_queued_per_actor,
                r.reack_interval
            ),
            format!(
                "control: {} slots per runner, runner lost after {:?}, ping {:?} / {:?}, start timeout {:?}, stop threshold {:?}",
                self.slots,
                c.runner_lost_threshold,
                c.ping_interval,
                c.ping_timeout,
                c.actor_start_timeout,
                c.actor_stop_threshold
            ),
        ]
    }
}

/// The engines' configurations: policies and limits drawn unless `cfg` fixes them.
fn draw_engines(
    cfg: &SimConfig,
    e: &mut Entropy,
    max_payload: usize,
) -> (GatewayConfig, RunnerConfig) {
    let gap_policy = cfg
        .gap_policy
        .unwrap_or_else(|| e.pick(&[GapPolicy::Close, GapPolicy::Await]));
    let overflow_policy = cfg
        .overflow_policy
        .unwrap_or_else(|| e.pick(&[OverflowPolicy::Close, OverflowPolicy::Backpressure]));
    let max_pending_messages = cfg.max_pending_messages.unwrap_or_else(|| {
        let v = e.pick(&[2u16, 3, 4, 6, 8, 16, 64, MAX_WINDOW]);
        v.clamp(1, MAX_WINDOW)
    });
    let frame = |len: usize| crate::wire::ws_message_frame_len(len) as u64;
    let max_pending_bytes = cfg.max_pending_bytes.unwrap_or_else(|| {
        let per = frame(max_payload);
        match e.below(4) {
            0 => per * e.range(1, 4),
            1 => per * e.range(4, 16),
            2 => 64 * 1024,
            _ => 1024 * 1024,
        }
    });
    let max_gateway_pending_bytes = max_pending_bytes * e.range(1, 4);
    let retransmit = match gap_policy {
        GapPolicy::Await => e.below(5) != 0,
        GapPolicy::Close => e.below(5) == 0,
    };
    let gateway = GatewayConfig {
        max_pending_messages,
        max_pending_bytes,
        max_gateway_pending_bytes,
        overflow_policy,
        retransmit_timeout: retransmit.then(|| Duration::from_millis(e.range(200, 5_000))),
        hibernate_on_ping_timeout: e.below(5) != 0,
        ..GatewayConfig::default()
    };
    let runner = RunnerConfig {
        gap_policy,
        persist_bytes: if e.below(2) == 0 {
            e.range(1, 2_000)
        } else {
            crate::runner::DEFAULT_PERSIST_BYTES
        },
        persist_interval: Duration::from_millis(e.range(20, 5_000)),
        persist_retry_initial: Duration::from_millis(e.range(20, 200)),
        persist_retry_max: Duration::from_millis(e.range(200, 5_000)),
        max_held_messages: usize::try_from(e.pick(&[1u64, 2, 4, 16, 1024])).unwrap_or(1024),
        max_held_bytes: e.pick(&[256u64, 4096, 1024 * 1024]),
        gap_timeout: Duration::from_millis(e.range(1_000, 30_000)),
        max_queued_per_actor: usize::try_from(e.pick(&[2u64, 8, 64, 1024])).unwrap_or(1024),
        reack_interval: Duration::from_millis(e.pick(&[0u64, 200, 1_000])),
        ..RunnerConfig::default()
    };
    (gateway, runner)
}

/// The control engine's timings: the runner-lost threshold short or long against partitions and
/// crash notices, the other timeouts around their defaults.
fn draw_control(e: &mut Entropy) -> ControlConfig {
    ControlConfig {
        runner_lost_threshold: Duration::from_millis(e.range(1_000, 20_000)),
        ping_interval: Duration::from_millis(e.range(500, 3_000)),
        ping_timeout: Duration::from_millis(e.range(5_000, 15_000)),
        actor_start_timeout: Duration::from_millis(e.range(5_000, 30_000)),
        actor_stop_threshold: Duration::from_millis(e.range(5_000, 30_000)),
        ..ControlConfig::default()
    }
}
