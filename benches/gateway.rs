//! Gateway benchmarks (criterion); targets in `docs/design.md#performance-targets`:
//!
//! * `gateway/message_path_64B`: client message → encode → buffer → publish → ack → release,
//!   end to end through the public API (one ack per 32 messages), with
//!   `gateway/baseline_encode_64B` (encoding the same frames alone) as the machine baseline.
//! * `gateway/idle_timeout_check_1M`: `poll_timeout` + `handle_timeout` with 1 M idle hibernating
//!   requests and nothing due.
//! * `gateway/wake_replay_10k`: waking a request with 10 000 pending messages (replay, no
//!   re-encoding).
//!
//! Memory per idle request is measured by `benches/gateway_memory.rs` (it needs a counting global
//! allocator, which would slow these down).
//!
//! Run: `cargo bench --bench gateway`.

mod common;

use core::hint::black_box;
use core::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use hibernating_ws::gateway::{Action, Frame, Gateway, GatewayConfig, OpenRequest, RouteId};
use hibernating_ws::wire::{self, GatewayId, MessageId, RequestId};
use hibernating_ws::{MessageIndex, Timestamp};

const GW: GatewayId = GatewayId([1, 2, 3, 4]);
const ROUTE: RouteId = RouteId(1);
const BATCH: u64 = 32;

fn drain(gw: &mut Gateway) -> usize {
    let mut n = 0;
    while let Some(a) = gw.poll_action() {
        black_box(a);
        n += 1;
    }
    n
}

/// A gateway with `n` active hibernatable requests (ids 0..n).
fn active_gateway(config: GatewayConfig, n: u32, now: Timestamp) -> Gateway {
    let mut gw = Gateway::new(config, GW, now).expect("valid config");
    for i in 0..n {
        let id = RequestId::from_u32(i);
        let open = OpenRequest::new(format!("{i:032}"), "/").expect("a path starting with /");
        gw.open(now, id, ROUTE, open).expect("open");
        gw.handle_runner_message(now, ROUTE, common::accept(GW, id))
            .expect("accepted");
        drain(&mut gw);
    }
    gw
}

fn message_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("gateway");
    group.throughput(Throughput::Elements(BATCH));
    let payload = [0x5a_u8; 64];

    group.bench_function("baseline_encode_64B", |b| {
        let mut index = MessageIndex::ZERO;
        b.iter(|| {
            for _ in 0..BATCH {
                index = index.next();
                let id = MessageId {
                    gateway_id: GW,
                    request_id: RequestId::from_u32(0),
                    message_index: index,
                };
                let frame = Frame::new(wire::encode_ws_message_frame(
                    wire::PROTOCOL_VERSION,
                    id,
                    black_box(&payload),
                    true,
                ));
                black_box(frame);
            }
        });
    });

    group.bench_function("message_path_64B", |b| {
        let now = Timestamp::from_secs(1);
        let mut gw = active_gateway(GatewayConfig::default(), 1, now);
        let id = RequestId::from_u32(0);
        b.iter(|| {
            let mut last = MessageIndex::ZERO;
            for _ in 0..BATCH {
                last = gw
                    .client_message(now, id, black_box(&payload), true)
                    .expect("room");
                while let Some(action) = gw.poll_action() {
                    black_box(action);
                }
            }
            gw.handle_runner_message(now, ROUTE, common::ack(GW, id, last))
                .expect("ack");
            drain(&mut gw);
        });
        assert_eq!(gw.stats().pending_messages, 0, "every message was released");
    });
    group.finish();
}

fn idle_timeout_check(c: &mut Criterion) {
    let now = Timestamp::from_secs(1);
    let mut gw = active_gateway(GatewayConfig::default(), 1_000_000, now);
    for i in 0..1_000_000 {
        gw.actor_stopped(now, RequestId::from_u32(i)).expect("live");
    }
    drain(&mut gw);
    // Let the stale entries of the setup (open and ping deadlines) surface and go.
    let later = now + Duration::from_secs(20);
    gw.handle_timeout(later);
    drain(&mut gw);
    assert_eq!(gw.stats().hibernating, 1_000_000);
    let next = gw.poll_timeout().expect("keepalives are armed");
    assert!(next > later, "nothing is due");

    let mut group = c.benchmark_group("gateway");
    group.bench_function("idle_timeout_check_1M", |b| {
        b.iter(|| {
            let deadline = gw.poll_timeout();
            gw.handle_timeout(black_box(later));
            black_box(deadline)
        });
    });
    group.finish();
}

fn wake_replay(c: &mut Criterion) {
    const PENDING: usize = 10_000;
    let now = Timestamp::from_secs(1);
    let id = RequestId::from_u32(0);
    let payload = [0x5a_u8; 64];
    let mut group = c.benchmark_group("gateway");
    group.throughput(Throughput::Elements(PENDING as u64));
    group.bench_function("wake_replay_10k", |b| {
        b.iter_batched(
            || {
                let mut gw = active_gateway(GatewayConfig::default(), 1, now);
                for _ in 0..PENDING {
                    gw.client_message(now, id, &payload, true).expect("room");
                }
                gw.actor_stopped(now, id).expect("live");
                drain(&mut gw);
                gw
            },
            |mut gw| {
                gw.wake(now, id, RouteId(2)).expect("hibernating");
                let mut replayed = 0usize;
                while let Some(action) = gw.poll_action() {
                    if matches!(action, Action::Publish { .. }) {
                        replayed += 1;
                    }
                    black_box(action);
                }
                assert_eq!(replayed, PENDING);
                gw
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

criterion_group!(benches, message_path, idle_timeout_check, wake_replay);
criterion_main!(benches);
