//! Per-message cost against the number of open connections (issue 10's O(1) target): the same
//! message path with 1 and with 1 000 000 open requests (gateway) or sockets (runner), each
//! message for a connection drawn at random, so the lookups miss the caches the way a busy
//! process's do.
//!
//! * `scale/gateway_client_message/N`: `Gateway::client_message` (lookup, limits, index, encode,
//!   publish) and the drain, for an accepted non-hibernatable request among N.
//! * `scale/gateway_client_message_at/N`: the same through `Gateway::client_message_at` with the
//!   request's `RequestSlot` (no request-id lookup), as an adapter keeping the handle calls it.
//! * `scale/floor_random_read/N`: no engine; one dependent read of a 128-byte record among N in
//!   the same order: the cost of touching one connection's memory at all.
//! * `scale/gateway_runner_message/N`: `Gateway::handle_runner_frame` of a versioned `ToGateway`
//!   WebSocket message (decode, lookup, route check, `SendToClient`) and the drain.
//! * `scale/runner_message/N`: `Runner::handle_frame` of a versioned `ToRunner` WebSocket
//!   message (decode, lookup, index check, delivery) and the drain, for an open
//!   non-hibernatable socket among N (1 000 actors).
//!
//! Each iteration handles 1 000 messages; the frames are encoded inside the iteration (the same
//! cost for every N; `scale/encode_only` measures the runner and gateway frames of 1 000
//! messages alone). Setting up the million connections takes a few seconds per group, outside
//! the measurement.
//!
//! Time is the benchmark thread's CPU time, not wall time (the machine is shared).
//!
//! Run: `cargo bench --bench scale -- --warm-up-time 1 --measurement-time 5`

use core::hint::black_box;
use core::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hibernating_ws::gateway::{Gateway, GatewayConfig, OpenRequest, RequestSlot, RouteId};
use hibernating_ws::runner::{Runner, RunnerConfig, SocketId};
use hibernating_ws::wire::{
    self, GatewayId, Headers, MessageId, RequestId, ToClientTunnelMessage,
    ToClientTunnelMessageKind, ToClientWebSocketMessage, ToClientWebSocketOpen, ToGateway,
    ToRunner, ToServerTunnelMessage, ToServerTunnelMessageKind, ToServerWebSocketMessage,
    ToServerWebSocketOpen,
};
use hibernating_ws::{MessageIndex, Timestamp};

const GW: GatewayId = GatewayId([1, 2, 3, 4]);
const ROUTE: RouteId = RouteId(1);
const BATCH: usize = 1_000;
const SIZES: [u32; 2] = [1, 1_000_000];
const ACTORS: u32 = 1_000;

/// Runs `routine` `iters` times; returns the CPU time this thread spent on it (the first field
/// of `/proc/thread-self/schedstat`), or the wall time where that file is missing. On a shared
/// machine the time the thread waits for a core is not the engine's; its cache misses are.
fn cpu_time(iters: u64, mut routine: impl FnMut()) -> Duration {
    let start = thread_cpu_ns();
    #[allow(clippy::disallowed_methods)] // the fallback measurement reads the clock on purpose
    let wall = std::time::Instant::now();
    for _ in 0..iters {
        routine();
    }
    match (start, thread_cpu_ns()) {
        (Some(a), Some(b)) => Duration::from_nanos(b.saturating_sub(a)),
        _ => wall.elapsed(),
    }
}

fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Connection numbers in a fixed pseudo-random order (xorshift), cycled through by the benches.
fn order(n: u32) -> Vec<u32> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..1 << 16)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            u32::try_from(x % u64::from(n)).expect("below n")
        })
        .collect()
}

fn message_id(request_id: RequestId, index: u16) -> MessageId {
    MessageId {
        gateway_id: GW,
        request_id,
        message_index: MessageIndex::new(index),
    }
}

/// A versioned `ToGateway` WebSocket message frame (the owned message through serde, as the
/// benchmark was first written, so that the same code runs against older versions).
fn to_gateway(message_id: MessageId, payload: &[u8]) -> Vec<u8> {
    let msg = ToServerTunnelMessage {
        message_id,
        kind: ToServerTunnelMessageKind::WebSocketMessage(ToServerWebSocketMessage {
            data: payload.to_vec().into(),
            binary: true,
        }),
    };
    wire::encode_versioned(7, &ToGateway::TunnelMessage(msg))
}

/// A versioned `ToRunner` WebSocket message frame, as [`to_gateway`].
fn to_runner(message_id: MessageId, payload: &[u8]) -> Vec<u8> {
    let msg = ToClientTunnelMessage {
        message_id,
        kind: ToClientTunnelMessageKind::WebSocketMessage(ToClientWebSocketMessage {
            data: payload.to_vec().into(),
            binary: true,
        }),
    };
    wire::encode_versioned(7, &ToRunner::TunnelMessage(msg))
}

fn gateway(n: u32, now: Timestamp) -> Gateway {
    let mut gw = Gateway::new(GatewayConfig::default(), GW, now).expect("valid config");
    for i in 0..n {
        let id = RequestId::from_u32(i);
        let open = OpenRequest::new(format!("actor-{}", i % ACTORS), "/").expect("valid path");
        gw.open(now, id, ROUTE, open).expect("open");
        let accept = ToServerTunnelMessage {
            message_id: message_id(id, 0),
            kind: ToServerTunnelMessageKind::WebSocketOpen(ToServerWebSocketOpen {
                can_hibernate: false,
            }),
        };
        gw.handle_runner_message(now, ROUTE, accept)
            .expect("accepted");
        while gw.poll_action().is_some() {}
    }
    gw
}

fn runner(n: u32, now: Timestamp) -> Runner {
    let config = RunnerConfig::default().with_max_sockets(1 << 20);
    let mut rn = Runner::new(config, now).expect("valid config");
    for a in 0..ACTORS.min(n) {
        let actor = format!("actor-{a}");
        rn.actor_starting(now, &actor, Vec::new()).expect("start");
        rn.restore(now, &actor, Vec::new()).expect("restore");
    }
    for i in 0..n {
        let socket = SocketId::new(GW, RequestId::from_u32(i));
        let open = ToClientTunnelMessage {
            message_id: message_id(socket.request_id, 0),
            kind: ToClientTunnelMessageKind::WebSocketOpen(ToClientWebSocketOpen {
                actor_id: format!("actor-{}", i % ACTORS),
                path: "/".into(),
                headers: Headers::new(),
            }),
        };
        rn.handle_frame(
            now,
            &wire::encode_versioned(7, &ToRunner::TunnelMessage(open)),
        )
        .expect("open");
        rn.accept(now, socket, false).expect("accept");
        while rn.poll_action().is_some() {}
    }
    rn
}

fn gateway_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("scale");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    let payload = [0x5a_u8; 64];
    let now = Timestamp::from_secs(1);
    for n in SIZES {
        let mut gw = gateway(n, now);
        let order = order(n);
        let mut next_out = vec![1_u16; n as usize];
        let mut at = 0;
        group.bench_function(BenchmarkId::new("gateway_client_message", n), |b| {
            b.iter_custom(|iters| {
                cpu_time(iters, || {
                    for _ in 0..BATCH {
                        let i = order[at % order.len()];
                        at += 1;
                        gw.client_message(now, RequestId::from_u32(i), &payload, true)
                            .expect("room");
                        while let Some(a) = gw.poll_action() {
                            black_box(a);
                        }
                    }
                })
            });
        });
        // The handles in the benches' order, as an adapter finds a client's handle in the
        // client's own record (already in cache), not by a random read of a table.
        let handles: Vec<(RequestId, RequestSlot)> = order
            .iter()
            .map(|&i| {
                let id = RequestId::from_u32(i);
                (id, gw.request_slot(id).expect("live"))
            })
            .collect();
        group.bench_function(BenchmarkId::new("gateway_client_message_at", n), |b| {
            b.iter_custom(|iters| {
                cpu_time(iters, || {
                    for _ in 0..BATCH {
                        let (id, slot) = handles[at % handles.len()];
                        at += 1;
                        gw.client_message_at(now, slot, id, &payload, true)
                            .expect("room");
                        while let Some(a) = gw.poll_action() {
                            black_box(a);
                        }
                    }
                })
            });
        });
        drop(handles);
        group.bench_function(BenchmarkId::new("gateway_runner_message", n), |b| {
            b.iter_custom(|iters| {
                cpu_time(iters, || {
                    for _ in 0..BATCH {
                        let i = order[at % order.len()];
                        at += 1;
                        let slot = &mut next_out[i as usize];
                        let id = message_id(RequestId::from_u32(i), *slot);
                        *slot = slot.wrapping_add(1);
                        let frame = to_gateway(id, &payload);
                        gw.handle_runner_frame(now, ROUTE, &frame)
                            .expect("accepted");
                        while let Some(a) = gw.poll_action() {
                            black_box(a);
                        }
                    }
                })
            });
        });
        drop(gw);
    }
    group.finish();
}

fn runner_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("scale");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    let payload = [0x5a_u8; 64];
    let now = Timestamp::from_secs(1);
    // Baseline: building the benches' frames alone (the part of each message that is the
    // benchmark's, not the engine's).
    let mut index = 0_u16;
    group.bench_function("encode_only", |b| {
        b.iter_custom(|iters| {
            cpu_time(iters, || {
                for _ in 0..BATCH {
                    index = index.wrapping_add(1);
                    let id = message_id(RequestId::from_u32(u32::from(index)), index);
                    black_box(to_runner(id, &payload));
                    black_box(to_gateway(id, &payload));
                }
            })
        });
    });
    for n in SIZES {
        let mut rn = runner(n, now);
        let order = order(n);
        let mut next_in = vec![1_u16; n as usize];
        let mut at = 0;
        group.bench_function(BenchmarkId::new("runner_message", n), |b| {
            b.iter_custom(|iters| {
                cpu_time(iters, || {
                    for _ in 0..BATCH {
                        let i = order[at % order.len()];
                        at += 1;
                        let slot = &mut next_in[i as usize];
                        let id = message_id(RequestId::from_u32(i), *slot);
                        *slot = slot.wrapping_add(1);
                        let frame = to_runner(id, &payload);
                        rn.handle_frame(now, &frame).expect("delivered");
                        while let Some(a) = rn.poll_action() {
                            black_box(a);
                        }
                    }
                })
            });
        });
        drop(rn);
    }
    group.finish();
}

/// The memory floor: one dependent read of a 128-byte record (a request slot's size class)
/// among N, in the benches' order. At a million records each read misses the caches and the
/// TLB; no per-message path that touches one record of its connection can be cheaper.
fn floor_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("scale");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    for n in SIZES {
        let records: Vec<[u64; 16]> = (0..u64::from(n)).map(|i| [i; 16]).collect();
        let order = order(n);
        let mut at = 0;
        let mut carry = 0_u64;
        group.bench_function(BenchmarkId::new("floor_random_read", n), |b| {
            b.iter_custom(|iters| {
                cpu_time(iters, || {
                    for _ in 0..BATCH {
                        // The next index depends on the read, as a lookup's slot depends on its key.
                        let i = order[(at + (carry & 1) as usize) % order.len()];
                        at += 1;
                        carry = records[i as usize][7];
                    }
                    black_box(carry);
                })
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = floor_benches, gateway_benches, runner_benches
}
criterion_main!(benches);
