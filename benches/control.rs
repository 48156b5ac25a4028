//! Control engine: command + event throughput, and a mass wake of hibernating requests.
//!
//! * `cycle`: 10 000 actors on 10 runners go through start → `Running` → sleep intent → stop →
//!   `Stopped`: 2 commands and 3 events per actor, every event arriving as an encoded
//!   `ToServerEvents` frame and every command and ack leaving as an encoded `ToClient` frame
//!   (decode and encode included). Throughput counts commands + events. `decode_only` is the
//!   baseline: the same event frames through the codec alone.
//! * `mass_wake`: 10 000 actors with 10 hibernatable requests each (100 000 requests) on 10
//!   runners go from running to stopped (their requests hibernate) and back to running (each
//!   `CommandStartActor` lists its 10 requests; `Running` wakes them): one iteration is the
//!   whole stop → running-again round trip, engine time only. `mass_wake_gateway_only_baseline`
//!   is the floor: the same requests in a bare `Gateway`, stopped and woken with one call each.
//!
//! Time is the **CPU time of the benchmark thread** (`/proc/thread-self/schedstat`, Linux; wall
//! time elsewhere), not wall time: on a shared machine the figures then count the engine's own
//! work, not the time other processes held the core. That clock advances in scheduler ticks
//! (4 ms here), so every measured iteration lasts several ticks and the mean of many samples is
//! taken.
//!
//! Run: `CARGO_TARGET_DIR=... cargo bench --bench control`

use core::hint::black_box;
use core::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

mod common;
#[path = "../tests/common/control_events.rs"]
mod control_events;

use control_events::{event, intent, running, stopped};
use hibernating_ws::Timestamp;
use hibernating_ws::control::{Action, ActorSpec, ConnId, Control, ControlConfig};
use hibernating_ws::gateway::{Gateway, GatewayConfig, OpenRequest, RouteId};
use hibernating_ws::wire::{
    self, ActorConfig, ActorIntent, DecodeLimits, Event, GatewayId, RequestId, StopCode, ToServer,
    ToServerEvents, ToServerInit,
};

const GW: GatewayId = GatewayId(*b"bnch");
const RUNNERS: u64 = 10;

fn engine(slots: u32) -> Control {
    let now = Timestamp::from_secs(1);
    let gw = Gateway::new(GatewayConfig::default(), GW, now).expect("config");
    let mut c = Control::new(ControlConfig::default(), gw, 1, now).expect("config");
    for r in 0..RUNNERS {
        c.runner_connected(now, ConnId(r), &format!("runner-{r}"))
            .expect("connect");
        let init = ToServer::Init(ToServerInit {
            name: "default".into(),
            version: 1,
            total_slots: slots,
            prepopulate_actor_names: None,
            metadata: None,
        });
        c.handle_runner_message(now, ConnId(r), init).expect("init");
    }
    drain(&mut c);
    c
}

fn actor_id(i: usize) -> String {
    format!("actor-{i:06}")
}

fn create(c: &mut Control, n: usize) {
    let now = Timestamp::from_secs(1);
    for i in 0..n {
        let spec = ActorSpec {
            runner_name: "default".into(),
            config: ActorConfig {
                name: "bench".into(),
                key: None,
                create_ts: 0,
                input: None,
            },
        };
        c.create_actor(now, &actor_id(i), spec).expect("create");
    }
}

/// Drains the actions; returns the connection of the last `Send`.
fn drain(c: &mut Control) -> Option<ConnId> {
    let mut conn = None;
    while let Some(a) = c.poll_action() {
        if let Action::Send { conn: to, frame } = a {
            black_box(&frame);
            conn = Some(to);
        }
    }
    conn
}

fn event_frame(actor: &str, generation: u32, index: i64, inner: Event) -> Vec<u8> {
    let batch = vec![event(actor, generation, index, inner)];
    wire::encode(&ToServer::Events(ToServerEvents(batch)))
}

/// Start, `Running`, sleep intent, stop, `Stopped` for every actor; returns the events fed.
fn cycle(c: &mut Control, frames: &[[Vec<u8>; 3]]) {
    let now = Timestamp::from_secs(1);
    for (i, f) in frames.iter().enumerate() {
        c.start_actor(now, &actor_id(i)).expect("start");
        let conn = drain(c).expect("a start command");
        for frame in f {
            c.handle_runner_frame(now, conn, frame).expect("event");
            drain(c);
        }
    }
}

fn bench_cycle(cr: &mut Criterion<ThreadCpu>) {
    const ACTORS: usize = 10_000;
    let frames: Vec<[Vec<u8>; 3]> = (0..ACTORS)
        .map(|i| {
            let a = actor_id(i);
            [
                event_frame(&a, 0, 0, running()),
                event_frame(&a, 0, 1, intent(ActorIntent::Sleep)),
                event_frame(&a, 0, 2, stopped(StopCode::Ok)),
            ]
        })
        .collect();
    let mut g = cr.benchmark_group("control");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(5 * ACTORS as u64));
    // The cycle does what it claims: every actor ends asleep after 2 commands and 3 events.
    let mut check = engine(1001);
    create(&mut check, ACTORS);
    cycle(&mut check, &frames);
    assert_eq!(check.stats().events_applied, 3 * ACTORS as u64);
    assert_eq!(check.stats().commands_sent, 2 * ACTORS as u64);
    g.bench_function("cycle", |b| {
        b.iter_batched(
            || {
                let mut c = engine(1001);
                create(&mut c, ACTORS);
                c
            },
            |mut c| {
                cycle(&mut c, &frames);
                c
            },
            BatchSize::PerIteration,
        );
    });
    // The baseline decodes the three event frames of each actor, twice over so one iteration
    // outlasts the CPU clock's tick.
    let limits = DecodeLimits::default();
    g.throughput(Throughput::Elements(2 * 3 * ACTORS as u64));
    g.bench_function("decode_only", |b| {
        b.iter(|| {
            for _ in 0..2 {
                for f in frames.iter().flatten() {
                    black_box(wire::decode_with::<ToServer>(f, &limits).expect("decodes"));
                }
            }
        });
    });
    g.finish();
}

/// 10 000 actors, 10 hibernatable requests each, all running.
fn mass_setup(actors: usize, per_actor: u32) -> Control {
    let now = Timestamp::from_secs(1);
    let slots = u32::try_from(actors).expect("fits") / u32::try_from(RUNNERS).expect("fits") + 1;
    let mut c = engine(slots);
    create(&mut c, actors);
    for i in 0..actors {
        let a = actor_id(i);
        c.start_actor(now, &a).expect("start");
        let conn = drain(&mut c).expect("start command");
        c.handle_runner_frame(now, conn, &event_frame(&a, 0, 0, running()))
            .expect("running");
        drain(&mut c);
        for k in 0..per_actor {
            let id = RequestId((u32::try_from(i).expect("fits") * per_actor + k).to_be_bytes());
            let open = OpenRequest::new(a.clone(), "/ws").expect("a path starting with /");
            c.open(now, id, open).expect("open");
            let accept = ToServer::TunnelMessage(common::accept(GW, id));
            c.handle_runner_message(now, conn, accept).expect("accept");
        }
        drain(&mut c);
    }
    c
}

/// Stop every actor (its requests hibernate), then run it again (its requests wake). The actor
/// ids are made before the measurement (engine time only).
fn round_trip(
    c: &mut Control,
    ids: &[String],
    actors: usize,
    stopped_frames: &[Vec<u8>],
    running_frames: &[Vec<u8>],
) {
    let now = Timestamp::from_secs(1);
    let mut conns = Vec::with_capacity(actors);
    for id in &ids[..actors] {
        c.stop_actor(now, id).expect("stop");
        conns.push(drain(c).expect("stop command"));
    }
    for (i, conn) in conns.iter().enumerate() {
        c.handle_runner_frame(now, *conn, &stopped_frames[i])
            .expect("stopped");
        drain(c);
    }
    for (i, f) in running_frames.iter().enumerate() {
        c.start_actor(now, &ids[i]).expect("start");
        let conn = drain(c).expect("start command");
        c.handle_runner_frame(now, conn, f).expect("running");
        drain(c);
    }
}

fn bench_mass_wake(cr: &mut Criterion<ThreadCpu>) {
    const ACTORS: usize = 10_000;
    const PER_ACTOR: u32 = 10;
    let stopped_frames: Vec<Vec<u8>> = (0..ACTORS)
        .map(|i| event_frame(&actor_id(i), 0, 1, stopped(StopCode::Ok)))
        .collect();
    let running_frames: Vec<Vec<u8>> = (0..ACTORS)
        .map(|i| event_frame(&actor_id(i), 1, 0, running()))
        .collect();
    // The round trip does what it claims: every request hibernated and woke again.
    let ids: Vec<String> = (0..ACTORS).map(actor_id).collect();
    let mut check = mass_setup(100, PER_ACTOR);
    round_trip(
        &mut check,
        &ids,
        100,
        &stopped_frames[..100],
        &running_frames[..100],
    );
    let stats = check.stats();
    assert_eq!(stats.requests_woken, 100 * u64::from(PER_ACTOR));
    assert_eq!(check.gateway().stats().hibernating, 0);
    assert_eq!(check.gateway().len(), 100 * PER_ACTOR as usize);

    let mut g = cr.benchmark_group("control");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(ACTORS as u64 * u64::from(PER_ACTOR)));
    g.bench_function("mass_wake_10k_actors_x10", |b| {
        b.iter_batched(
            || mass_setup(ACTORS, PER_ACTOR),
            |mut c| {
                round_trip(&mut c, &ids, ACTORS, &stopped_frames, &running_frames);
                c
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();
}

/// The baseline: the same 100 000 hibernatable requests in a bare `Gateway`, every one stopped
/// (hibernates) and woken again with one call each, actions drained; no runners, no commands, no
/// events. The control engine does this plus the control plane.
fn bench_mass_wake_gateway_only(cr: &mut Criterion<ThreadCpu>) {
    const REQUESTS: u32 = 100_000;
    let now = Timestamp::from_secs(1);
    let setup = || {
        let mut gw = Gateway::new(GatewayConfig::default(), GW, now).expect("config");
        for i in 0..REQUESTS {
            let id = RequestId(i.to_be_bytes());
            let open = OpenRequest::new(actor_id((i / 10) as usize), "/ws")
                .expect("a path starting with /");
            gw.open(now, id, RouteId(1), open).expect("open");
            gw.handle_runner_message(now, RouteId(1), common::accept(GW, id))
                .expect("accept");
        }
        while gw.poll_action().is_some() {}
        gw
    };
    let mut g = cr.benchmark_group("control");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(u64::from(REQUESTS)));
    g.bench_function("mass_wake_gateway_only_baseline", |b| {
        b.iter_batched(
            setup,
            |mut gw| {
                for i in 0..REQUESTS {
                    gw.actor_stopped(now, RequestId(i.to_be_bytes()))
                        .expect("live");
                }
                while let Some(a) = gw.poll_action() {
                    black_box(a);
                }
                for i in 0..REQUESTS {
                    gw.wake(now, RequestId(i.to_be_bytes()), RouteId(2))
                        .expect("hibernating");
                }
                while let Some(a) = gw.poll_action() {
                    black_box(a);
                }
                gw
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// Thread CPU time as criterion's measurement
// ---------------------------------------------------------------------------------------------

/// Nanoseconds this thread has run on a CPU (first field of `/proc/thread-self/schedstat`), or
/// the wall clock where that file does not exist.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(wall_ns)
}

#[allow(clippy::disallowed_methods)] // the fallback measurement reads the clock on purpose
fn wall_ns() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

struct ThreadCpu;

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, i: u64) -> u64 {
        thread_cpu_ns().saturating_sub(i)
    }
    fn add(&self, v1: &u64, v2: &u64) -> u64 {
        v1 + v2
    }
    fn zero(&self) -> u64 {
        0
    }
    #[allow(clippy::cast_precision_loss)] // nanoseconds of a benchmark fit an f64's mantissa
    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &NanosFormatter
    }
}

/// Formats nanoseconds and elements per second like criterion's wall-time formatter.
struct NanosFormatter;

impl ValueFormatter for NanosFormatter {
    fn scale_values(&self, ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if ns < 1e3 {
            (1.0, "ns")
        } else if ns < 1e6 {
            (1e-3, "µs")
        } else if ns < 1e9 {
            (1e-6, "ms")
        } else {
            (1e-9, "s")
        };
        for v in values {
            *v *= factor;
        }
        unit
    }

    #[allow(clippy::cast_precision_loss)] // element counts of a benchmark fit an f64's mantissa
    fn scale_throughputs(
        &self,
        typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let n = match *throughput {
            Throughput::Elements(n)
            | Throughput::ElementsAndBytes { elements: n, .. }
            | Throughput::Bytes(n)
            | Throughput::BytesDecimal(n)
            | Throughput::Bits(n) => n,
        } as f64;
        let per_second = n * 1e9 / typical;
        let (denominator, unit) = if per_second < 1e3 {
            (1.0, " elem/s")
        } else if per_second < 1e6 {
            (1e3, "Kelem/s")
        } else {
            (1e6, "Melem/s")
        };
        for v in values {
            *v = n * 1e9 / *v / denominator;
        }
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn config() -> Criterion<ThreadCpu> {
    Criterion::default().with_measurement(ThreadCpu)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_cycle, bench_mass_wake, bench_mass_wake_gateway_only
}
criterion_main!(benches);
