#!/usr/bin/env node
// Times the official TypeScript codec (@rivetkit/engine-runner-protocol@2.3.10, production mode)
// on the messages benches/wire.rs times for hws: same operations, same payload sizes and bytes.
//
//   cd tests/vectors && npm ci && node ts_codec.mjs [--json]
//
// Each operation is warmed up, then timed with process.hrtime.bigint() over ROUNDS rounds of
// enough iterations to last about ROUND_MS; the median round gives ns/op. Throughput counts the
// bytes of the encoded frame (version prefix included where there is one), as in benches/wire.rs.
//
// The npm package has no helper for the pub/sub hop's 2-byte version prefix (Rust's vbare adds
// it upstream), so "versioned" operations do what such a helper must: encode the body, then copy
// it behind the prefix; decode reads the u16 and decodes the rest.

import assert from "node:assert/strict";
import * as p from "@rivetkit/engine-runner-protocol";
import * as bare from "@rivetkit/bare-ts";

if (process.env.NODE_ENV === "development") {
	console.error("warning: NODE_ENV=development turns on bare-ts assertions; unset it to benchmark");
}

const ROUNDS = 7;
const ROUND_MS = 300;
const WARMUP_MS = 500;
const VERSION = 7;
const SIZES = [64, 16 * 1024];
const CONFIG = bare.Config({});

let sink = 0; // keeps results alive

/** `byte[i] = (31 * i + 7) mod 256`, the payload benches/wire.rs uses. */
function payload(len) {
	const out = new Uint8Array(len);
	for (let i = 0; i < len; i++) out[i] = (i * 31 + 7) & 0xff;
	return out.buffer;
}

const GATEWAY_ID = Uint8Array.of(0x01, 0x02, 0x03, 0x04).buffer;
const REQUEST_ID = Uint8Array.of(0xa0, 0xb1, 0xc2, 0xd3).buffer;
const messageId = () => ({ gatewayId: GATEWAY_ID, requestId: REQUEST_ID, messageIndex: 4242 });
const wsMessage = (data) => ({
	messageId: messageId(),
	messageKind: { tag: "ToClientWebSocketMessage", val: { data, binary: true } },
});
const ack = { messageId: messageId(), messageKind: { tag: "ToServerWebSocketMessageAck", val: { index: 4242 } } };

function withVersion(body) {
	const out = new Uint8Array(2 + body.length);
	out[0] = VERSION & 0xff;
	out[1] = VERSION >> 8;
	out.set(body, 2);
	return out;
}
function versionOf(frame) {
	return bare.readU16(new bare.ByteCursor(frame, CONFIG));
}
/** Like the package's encode* functions, for a type that has only a write* function. */
function encodeWith(write, x) {
	const bc = new bare.ByteCursor(new Uint8Array(CONFIG.initialBufferLength), CONFIG);
	write(bc, x);
	return new Uint8Array(bc.view.buffer, bc.view.byteOffset, bc.offset);
}
/** Like the package's decode* functions, for a type that has only a read* function. */
function decodeWith(read, bytes) {
	const bc = new bare.ByteCursor(bytes, CONFIG);
	const result = read(bc);
	if (bc.offset < bc.view.byteLength) throw new bare.BareError(bc.offset, "remaining bytes");
	return result;
}

const ops = [];
for (const len of SIZES) {
	const data = payload(len);
	const toRunner = { tag: "ToClientTunnelMessage", val: wsMessage(data) };
	const versioned = withVersion(p.encodeToRunner(toRunner));
	const bareMsg = encodeWith(p.writeToClientTunnelMessage, wsMessage(data)).slice();
	ops.push(
		// The gateway hot path: the frame built from the client's payload.
		["encode", "ws_message_frame", len, versioned.length, () => withVersion(p.encodeToRunner({ tag: "ToClientTunnelMessage", val: wsMessage(data) })).length],
		["encode", "versioned_to_runner", len, versioned.length, () => withVersion(p.encodeToRunner(toRunner)).length],
		["encode", "to_client_tunnel_message", len, bareMsg.length, () => encodeWith(p.writeToClientTunnelMessage, toRunner.val).length],
		["decode", "versioned_to_runner", len, versioned.length, () => versionOf(versioned) + p.decodeToRunner(versioned.subarray(2)).val.messageId.messageIndex],
		["decode", "to_client_tunnel_message", len, bareMsg.length, () => decodeWith(p.readToClientTunnelMessage, bareMsg).messageId.messageIndex],
	);
}
{
	const bareAck = encodeWith(p.writeToServerTunnelMessage, ack).slice();
	const versionedAck = withVersion(p.encodeToGateway({ tag: "ToServerTunnelMessage", val: ack }));
	ops.push(
		["encode", "ack_to_server_tunnel_message", null, bareAck.length, () => encodeWith(p.writeToServerTunnelMessage, ack).length],
		["decode", "ack_to_server_tunnel_message", null, bareAck.length, () => decodeWith(p.readToServerTunnelMessage, bareAck).messageKind.val.index],
		["decode", "ack_versioned_to_gateway", null, versionedAck.length, () => versionOf(versionedAck) + p.decodeToGateway(versionedAck.subarray(2)).val.messageKind.val.index],
	);
}

// Sanity: the frames are the ones hws benchmarks (checked against the committed vectors' format).
assert.equal(ops[0][3], 2 + 1 + 10 + 1 + 1 + 64 + 1);

function timeRound(f, iters) {
	const t0 = process.hrtime.bigint();
	for (let i = 0; i < iters; i++) sink += f();
	return Number(process.hrtime.bigint() - t0) / iters;
}

const results = [];
for (const [dir, name, len, frameLen, f] of ops) {
	// Warm up and size the rounds.
	let iters = 1;
	const warmEnd = process.hrtime.bigint() + BigInt(WARMUP_MS * 1e6);
	let perOp = 0;
	while (process.hrtime.bigint() < warmEnd) {
		perOp = timeRound(f, iters);
		if (perOp * iters < 20e6) iters *= 2;
	}
	iters = Math.max(1, Math.round((ROUND_MS * 1e6) / perOp));
	const rounds = [];
	for (let r = 0; r < ROUNDS; r++) rounds.push(timeRound(f, iters));
	rounds.sort((a, b) => a - b);
	const ns = rounds[Math.floor(ROUNDS / 2)];
	const id = `wire/${dir}/${name}${len === null ? "" : `/${len}`}`;
	results.push({ id, frame_bytes: frameLen, ns_per_op: ns, mb_per_s: (frameLen / ns) * 1e3, min_ns: rounds[0], max_ns: rounds[ROUNDS - 1] });
}

if (process.argv.includes("--json")) {
	console.log(JSON.stringify({ node: process.version, package: "@rivetkit/engine-runner-protocol@2.3.10", results }, null, 1));
} else {
	console.log(`node ${process.version}, @rivetkit/engine-runner-protocol@2.3.10, median of ${ROUNDS} rounds`);
	for (const r of results) {
		console.log(`${r.id.padEnd(48)} ${String(r.frame_bytes).padStart(6)} B ${r.ns_per_op.toFixed(1).padStart(10)} ns/op ${r.mb_per_s.toFixed(1).padStart(9)} MB/s`);
	}
}
if (sink === 0.5) console.log(sink); // never true; keeps `sink` observable
