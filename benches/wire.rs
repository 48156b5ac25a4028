//! Wire codec benchmarks: the messages of the WebSocket hot path, as encoded and decoded by hws.
//!
//! `tests/vectors/ts_codec.mjs` times the official TypeScript codec on the same messages (same
//! payload sizes, same payload bytes); BENCHMARKS.md ("Wire codec") has both and their ratio.
//! Throughput counts the bytes of the encoded frame (version prefix included where there is one).
//!
//! ```text
//! cargo bench --bench wire
//! ```

use core::hint::black_box; // = std::hint::black_box (the crate lints prefer `core` paths)

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hibernating_ws::MessageIndex;
use hibernating_ws::wire::{
    self, DecodeLimits, GatewayId, MessageId, RequestId, ToClientTunnelMessage,
    ToClientTunnelMessageKind, ToClientWebSocketMessage, ToGateway, ToRunner,
    ToServerTunnelMessage, ToServerTunnelMessageKind, ToServerWebSocketMessageAck,
};

/// Payload sizes of the gateway → runner WebSocket message benchmarks.
const SIZES: [usize; 2] = [64, 16 * 1024];

fn message_id() -> MessageId {
    MessageId {
        gateway_id: GatewayId([0x01, 0x02, 0x03, 0x04]),
        request_id: RequestId([0xa0, 0xb1, 0xc2, 0xd3]),
        message_index: MessageIndex::new(4242),
    }
}

/// The payload both benchmarks use: `byte[i] = (31 * i + 7) mod 256`.
fn payload(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from((31 * i + 7) % 256).expect("a value mod 256 fits in a u8"))
        .collect()
}

fn ws_message(len: usize) -> ToClientTunnelMessage {
    ToClientTunnelMessage {
        message_id: message_id(),
        kind: ToClientTunnelMessageKind::WebSocketMessage(ToClientWebSocketMessage {
            data: payload(len).into(),
            binary: true,
        }),
    }
}

fn ack() -> ToServerTunnelMessage {
    ToServerTunnelMessage {
        message_id: message_id(),
        kind: ToServerTunnelMessageKind::WebSocketMessageAck(ToServerWebSocketMessageAck {
            index: MessageIndex::new(4242),
        }),
    }
}

fn throughput(frame: &[u8]) -> Throughput {
    Throughput::Bytes(u64::try_from(frame.len()).expect("a frame length fits in u64"))
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire/encode");
    for len in SIZES {
        let data = payload(len);
        let owned = ToRunner::TunnelMessage(ws_message(len));
        let frame = wire::encode_versioned(wire::PROTOCOL_VERSION, &owned);
        g.throughput(throughput(&frame));
        // The gateway hot path: a versioned ToRunner frame straight from the client's bytes.
        g.bench_with_input(
            BenchmarkId::new("ws_message_frame", len),
            &data,
            |b, data| {
                b.iter(|| {
                    wire::encode_ws_message_frame(
                        black_box(wire::PROTOCOL_VERSION),
                        black_box(message_id()),
                        black_box(data),
                        black_box(true),
                    )
                });
            },
        );
        g.bench_with_input(
            BenchmarkId::new("versioned_to_runner", len),
            &owned,
            |b, m| {
                b.iter(|| wire::encode_versioned(black_box(wire::PROTOCOL_VERSION), black_box(m)));
            },
        );
        let bare = ws_message(len);
        g.throughput(throughput(&wire::encode(&bare)));
        g.bench_with_input(
            BenchmarkId::new("to_client_tunnel_message", len),
            &bare,
            |b, m| {
                b.iter(|| wire::encode(black_box(m)));
            },
        );
    }
    let ack = ack();
    g.throughput(throughput(&wire::encode(&ack)));
    g.bench_function("ack_to_server_tunnel_message", |b| {
        b.iter(|| wire::encode(black_box(&ack)));
    });
    g.finish();
}

fn decode(c: &mut Criterion) {
    let limits = DecodeLimits::default();
    let mut g = c.benchmark_group("wire/decode");
    for len in SIZES {
        let frame = wire::encode_versioned(
            wire::PROTOCOL_VERSION,
            &ToRunner::TunnelMessage(ws_message(len)),
        );
        g.throughput(throughput(&frame));
        g.bench_with_input(
            BenchmarkId::new("versioned_to_runner", len),
            &frame,
            |b, f| {
                b.iter(|| wire::decode_versioned::<ToRunner>(black_box(f), &limits));
            },
        );
        let bare = wire::encode(&ws_message(len));
        g.throughput(throughput(&bare));
        g.bench_with_input(
            BenchmarkId::new("to_client_tunnel_message", len),
            &bare,
            |b, f| {
                b.iter(|| wire::decode::<ToClientTunnelMessage>(black_box(f)));
            },
        );
    }
    // The gateway's receive path for acks: bare, and versioned inside ToGateway.
    let bare = wire::encode(&ack());
    g.throughput(throughput(&bare));
    g.bench_function("ack_to_server_tunnel_message", |b| {
        b.iter(|| wire::decode::<ToServerTunnelMessage>(black_box(&bare)));
    });
    let frame = wire::encode_versioned(wire::PROTOCOL_VERSION, &ToGateway::TunnelMessage(ack()));
    g.throughput(throughput(&frame));
    g.bench_function("ack_versioned_to_gateway", |b| {
        b.iter(|| wire::decode_versioned::<ToGateway>(black_box(&frame), &limits));
    });
    g.finish();
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
