//! Runner receive path: decode → validate → deliver → persist/ack debounce.
//!
//! Pre-encoded versioned `ToRunner` frames (64-byte payloads, every index of the ring so the
//! stream wraps naturally) for one hibernatable socket go through `Runner::handle_frame`; every
//! action is drained and every `Persist` is answered at once with `persisted`, which publishes
//! the ack. `decode_only` is the baseline: the same frames through the codec alone.
//!
//! Run: `CARGO_TARGET_DIR=... cargo bench --bench runner`

use core::hint::black_box;
use core::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use hibernating_ws::runner::{Action, Runner, RunnerConfig, SocketId};
use hibernating_ws::wire::{
    self, DecodeLimits, GatewayId, Headers, MessageId, RequestId, ToClientTunnelMessage,
    ToClientTunnelMessageKind, ToClientWebSocketMessage, ToClientWebSocketOpen, ToRunner,
};
use hibernating_ws::{MessageIndex, Timestamp};

const PAYLOAD: usize = 64;
const BATCH: u64 = 10_000;
const RING: usize = 1 << 16;

fn frame(socket: SocketId, index: u16, kind: ToClientTunnelMessageKind) -> Vec<u8> {
    wire::encode_versioned(
        7,
        &ToRunner::TunnelMessage(ToClientTunnelMessage {
            message_id: MessageId {
                gateway_id: socket.gateway_id,
                request_id: socket.request_id,
                message_index: MessageIndex::new(index),
            },
            kind,
        }),
    )
}

/// One frame per index of the ring, index `i` at position `i`.
fn frames(socket: SocketId) -> Vec<Vec<u8>> {
    (0..RING)
        .map(|i| {
            let index = u16::try_from(i).expect("the ring has 2^16 indices");
            frame(
                socket,
                index,
                ToClientTunnelMessageKind::WebSocketMessage(ToClientWebSocketMessage {
                    data: vec![u8::try_from(i % 251).expect("below 251"); PAYLOAD].into(),
                    binary: true,
                }),
            )
        })
        .collect()
}

/// A runner with one open, accepted, persisted hibernatable socket at open index 0.
fn open_runner(socket: SocketId, now: Timestamp) -> Runner {
    let mut runner = Runner::new(RunnerConfig::default(), now).expect("valid config");
    runner
        .actor_starting(now, "bench", Vec::new())
        .expect("start");
    runner.restore(now, "bench", Vec::new()).expect("restore");
    let open = frame(
        socket,
        0,
        ToClientTunnelMessageKind::WebSocketOpen(ToClientWebSocketOpen {
            actor_id: "bench".into(),
            path: "/".into(),
            headers: Headers::new(),
        }),
    );
    runner.handle_frame(now, &open).expect("open");
    while runner.poll_action().is_some() {}
    runner.accept(now, socket, true).expect("accept");
    drain(&mut runner, now);
    runner
}

/// Drains every action, answering persists at once. Returns how many acks were published.
fn drain(runner: &mut Runner, now: Timestamp) -> u64 {
    let mut published = 0;
    while let Some(action) = runner.poll_action() {
        match action {
            Action::Persist {
                socket,
                server_index,
                ..
            } => runner
                .persisted(now, socket, server_index)
                .expect("the persist in flight"),
            Action::Message { data, .. } => {
                black_box(data);
            }
            Action::Publish { frame, .. } => {
                black_box(frame);
                published += 1;
            }
            other => {
                black_box(other);
            }
        }
    }
    published
}

fn receive_path(c: &mut Criterion) {
    let socket = SocketId::new(GatewayId([1, 2, 3, 4]), RequestId([5, 6, 7, 8]));
    let frames = frames(socket);
    let mut group = c.benchmark_group("runner");
    group.throughput(Throughput::Elements(BATCH));
    group.measurement_time(Duration::from_secs(5));

    group.bench_function("decode_only_64B", |b| {
        let limits = DecodeLimits::default();
        let mut pos = 1usize;
        b.iter(|| {
            for _ in 0..BATCH {
                let decoded = wire::decode_versioned::<ToRunner>(&frames[pos], &limits);
                black_box(decoded.expect("valid frame"));
                pos = (pos + 1) % RING;
            }
        });
    });

    group.bench_function("handle_frame_deliver_persist_ack_64B", |b| {
        let mut now = Timestamp::from_secs(1);
        let mut runner = open_runner(socket, now);
        // The next index to feed: the open took 0.
        let mut pos = 1usize;
        let mut acks = 0u64;
        b.iter(|| {
            for _ in 0..BATCH {
                runner
                    .handle_frame(now, &frames[pos])
                    .expect("in-order message");
                acks += drain(&mut runner, now);
                black_box(runner.poll_timeout());
                pos = (pos + 1) % RING;
            }
            now += Duration::from_micros(1);
        });
        // Every message was delivered in order and the persists were acked.
        let stats = runner.stats();
        assert_eq!(stats.duplicates + stats.gaps, 0);
        // The first persist (the open's, index 0) needs no ack; every later one is acked once.
        assert!(acks > 0 && stats.acks_sent + 1 == stats.persists_completed);
    });
    group.finish();
}

criterion_group!(benches, receive_path);
criterion_main!(benches);
