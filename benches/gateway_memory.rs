//! Memory of idle hibernating requests (target ≤ 192 bytes each, all included;
//! `docs/design.md#performance-targets`), measured
//! with a counting global allocator: the live heap bytes of a gateway holding N = 1 000 000
//! hibernating requests with 32-character actor ids, divided by N. Everything the gateway owns
//! is counted: slab chunks, the id index, the timer heap, actor ids, and any per-request boxes.
//!
//! The figure counts bytes requested from the allocator (its own per-block overhead is not
//! included). Not a timing benchmark: it prints its result and exits.
//!
//! Run: `cargo bench --bench gateway_memory`.

mod common;

use core::time::Duration;

use hibernating_ws::Timestamp;
use hibernating_ws::gateway::{Gateway, GatewayConfig, OpenRequest, RouteId};
use hibernating_ws::wire::{GatewayId, RequestId};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const GW: GatewayId = GatewayId([1, 2, 3, 4]);
const ROUTE: RouteId = RouteId(1);
const N: u32 = 1_000_000;

fn main() {
    // `cargo test --benches` and `cargo bench -- --list` run bench binaries with arguments; only
    // measure on a plain `cargo bench` invocation.
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let region = Region::new(GLOBAL);
    let now = Timestamp::from_secs(1);
    let mut gw = Gateway::new(GatewayConfig::default(), GW, now).expect("valid config");
    for i in 0..N {
        // Random-looking ids, as upstream allocates them (not sequential keys).
        let id = RequestId::from_u32(i.wrapping_mul(0x9e37_79b9));
        let open = OpenRequest::new(
            format!("{:032x}", u128::from(i) * 0x1234_5678_9abc),
            "/socket",
        )
        .expect("a path starting with /");
        gw.open(now, id, ROUTE, open).expect("open");
        gw.handle_runner_message(now, ROUTE, common::accept(GW, id))
            .expect("accepted");
        // Each request exchanged one acked message before it went idle.
        let index = gw.client_message(now, id, b"hello", false).expect("room");
        gw.handle_runner_message(now, ROUTE, common::ack(GW, id, index))
            .expect("ack");
        gw.hibernating_record_upserted(now, id).expect("live");
        gw.actor_stopped(now, id).expect("live");
        while gw.poll_action().is_some() {}
    }
    // Steady state: the setup's stale timer entries (open and ping deadlines) have surfaced.
    gw.handle_timeout(now + Duration::from_secs(20));
    while gw.poll_action().is_some() {}
    assert_eq!(gw.stats().hibernating, u64::from(N));

    let stats = region.change();
    let live = stats.bytes_allocated - stats.bytes_deallocated;
    #[allow(clippy::cast_precision_loss)] // a report, not arithmetic
    let per_request = live as f64 / f64::from(N);
    println!(
        "gateway/idle_hibernating_memory: {N} requests, {live} live heap bytes, {per_request:.1} bytes/request (target <= 192)"
    );
    drop(gw);
}
