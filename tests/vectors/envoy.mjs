// Generates the envoy protocol v8 vectors with the official codec
// (@rivetkit/engine-envoy-protocol@2.3.19 on @rivetkit/bare-ts@0.6.2, pinned in package.json):
//
//   cd tests/vectors && npm ci && node envoy.mjs
//
// Writes envoy.json next to this script: accept vectors (official values and their bytes),
// rejections (bytes the official decoder rejects, with its error) and a differential set
// (deterministic mutations of the accept vectors, each with the official verdict). The output
// is deterministic. tests/envoy_vectors.rs consumes it; README.md documents the format.

import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { ab, gen, mulberry32, toHex, utf8, wholeCodec } from "./common.mjs";

process.env.NODE_ENV = "development";
const p = await import("@rivetkit/engine-envoy-protocol");
const bare = await import("@rivetkit/bare-ts");

const OUT_DIR = dirname(fileURLToPath(import.meta.url));
const PACKAGE = "@rivetkit/engine-envoy-protocol@2.3.19";
const { readWhole, writeWhole } = wholeCodec(bare, 1 << 16);
assert.equal(p.VERSION, 8);

const fromHex = (hex) => new Uint8Array(Buffer.from(hex, "hex"));


// The types hws decodes; `subset` says whether an official value lies in what hws models (every
// envelope variant but the SQLite ones; hws answers `UnsupportedVariant` for those).
const TYPES = {
	ToEnvoyTunnelMessage: {
		read: p.readToEnvoyTunnelMessage,
		write: p.writeToEnvoyTunnelMessage,
		subset: () => true,
	},
	ToRivetTunnelMessage: {
		read: p.readToRivetTunnelMessage,
		write: p.writeToRivetTunnelMessage,
		subset: () => true,
	},
	ToEnvoy: {
		read: p.readToEnvoy,
		write: p.writeToEnvoy,
		subset: (o) => !o.tag.startsWith("ToEnvoySqlite"),
	},
	ToRivet: {
		read: p.readToRivet,
		write: p.writeToRivet,
		subset: (o) => !o.tag.startsWith("ToRivetSqlite"),
	},
};

function verdict(type, bytes) {
	const t = TYPES[type];
	let decoded;
	try {
		decoded = readWhole(t.read, bytes);
	} catch (e) {
		assert(e instanceof bare.BareError, `${type}: non-BARE error ${e}`);
		return { reject: { issue: e.issue, offset: e.offset } };
	}
	if (!t.subset(decoded)) return { accept_outside_subset: decoded.tag };
	const lossless = Buffer.from(writeWhole(t.write, decoded)).equals(Buffer.from(bytes));
	assert(lossless, `${type}: lossy official decode of ${toHex(bytes)}`);
	return { accept: gen(decoded) };
}

// ---------------------------------------------------------------------------------------------
// Accept vectors
// ---------------------------------------------------------------------------------------------

const id4 = (hex) => ab(fromHex(hex));
const mid = (index) => ({ gatewayId: id4("01020304"), requestId: id4("0a0b0c0d"), messageIndex: index });
const headers = (pairs) => new Map(pairs);
const H = headers([
	["sec-websocket-protocol", "rivet"],
	["x-b", "2"],
	["x-a", "ünïcödé ✓"],
]);
const reasons = [
	{ kind: p.HttpStreamAbortReasonKind.Unknown, detail: null },
	{ kind: p.HttpStreamAbortReasonKind.Cancelled, detail: "client went away" },
	{ kind: p.HttpStreamAbortReasonKind.HandlerError, detail: "" },
	{ kind: p.HttpStreamAbortReasonKind.InternalError, detail: null },
];

const envoyKinds = [
	["request_start_min", { tag: "ToEnvoyRequestStart", val: { actorId: "a", actorGeneration: null, method: "GET", path: "/", headers: headers([]), body: null, stream: false, responseStream: false } }],
	["request_start_full", { tag: "ToEnvoyRequestStart", val: { actorId: "actor-1", actorGeneration: 4294967295, method: "POST", path: "/x?y=1", headers: H, body: ab(utf8("body")), stream: true, responseStream: true } }],
	["request_chunk", { tag: "ToEnvoyRequestChunk", val: { body: ab(utf8("chunk")), finish: true } }],
	["request_chunk_empty", { tag: "ToEnvoyRequestChunk", val: { body: ab(new Uint8Array(0)), finish: false } }],
	...reasons.map((reason, i) => [`request_abort_${i}`, { tag: "ToEnvoyRequestAbort", val: { actorId: i % 2 ? "actor-1" : null, actorGeneration: i % 2 ? i : null, reason } }]),
	["request_body_cancel", { tag: "ToEnvoyRequestBodyCancel", val: null }],
	["response_body_window_0", { tag: "ToEnvoyResponseBodyWindowUpdate", val: { consumedBytes: 0n } }],
	["response_body_window_max", { tag: "ToEnvoyResponseBodyWindowUpdate", val: { consumedBytes: 18446744073709551615n } }],
	["ws_open_no_generation", { tag: "ToEnvoyWebSocketOpen", val: { actorId: "actor-1", actorGeneration: null, path: "/ws", headers: H } }],
	["ws_open_generation_0", { tag: "ToEnvoyWebSocketOpen", val: { actorId: "actor-1", actorGeneration: 0, path: "", headers: headers([]) } }],
	["ws_open_generation_max", { tag: "ToEnvoyWebSocketOpen", val: { actorId: "", actorGeneration: 4294967295, path: "/ws/é", headers: headers([["k", ""]]) } }],
	["ws_message_text", { tag: "ToEnvoyWebSocketMessage", val: { data: ab(utf8("hello")), binary: false } }],
	["ws_message_binary_empty", { tag: "ToEnvoyWebSocketMessage", val: { data: ab(new Uint8Array(0)), binary: true } }],
	["ws_message_200", { tag: "ToEnvoyWebSocketMessage", val: { data: ab(new Uint8Array(200).map((_, i) => i)), binary: true } }],
	["ws_close_none", { tag: "ToEnvoyWebSocketClose", val: { code: null, reason: null } }],
	["ws_close_code", { tag: "ToEnvoyWebSocketClose", val: { code: 4001, reason: null } }],
	["ws_close_reason", { tag: "ToEnvoyWebSocketClose", val: { code: null, reason: "bye" } }],
	["ws_close_both", { tag: "ToEnvoyWebSocketClose", val: { code: 1000, reason: "ws.stale_metadata" } }],
];
const rivetKinds = [
	["response_start_min", { tag: "ToRivetResponseStart", val: { status: 200, headers: headers([]), body: null, stream: false } }],
	["response_start_full", { tag: "ToRivetResponseStart", val: { status: 65535, headers: H, body: ab(utf8("ok")), stream: true } }],
	["response_chunk", { tag: "ToRivetResponseChunk", val: { body: ab(utf8("chunk")), finish: false } }],
	...reasons.map((reason, i) => [`response_abort_${i}`, { tag: "ToRivetResponseAbort", val: { reason } }]),
	["request_body_window", { tag: "ToRivetRequestBodyWindowUpdate", val: { consumedBytes: 65536n } }],
	["request_body_cancel", { tag: "ToRivetRequestBodyCancel", val: null }],
	["ws_open_hibernatable", { tag: "ToRivetWebSocketOpen", val: { canHibernate: true } }],
	["ws_open_plain", { tag: "ToRivetWebSocketOpen", val: { canHibernate: false } }],
	["ws_message", { tag: "ToRivetWebSocketMessage", val: { data: ab(utf8("echo")), binary: false } }],
	["ws_ack_0", { tag: "ToRivetWebSocketMessageAck", val: { index: 0 } }],
	["ws_ack_32768", { tag: "ToRivetWebSocketMessageAck", val: { index: 32768 } }],
	["ws_ack_65535", { tag: "ToRivetWebSocketMessageAck", val: { index: 65535 } }],
	["ws_close_hibernate", { tag: "ToRivetWebSocketClose", val: { code: null, reason: null, hibernate: true } }],
	["ws_close_both", { tag: "ToRivetWebSocketClose", val: { code: 1011, reason: "ws.downstream_closed", hibernate: false } }],
];

const vectors = [];
function add(name, type, value) {
	const bytes = writeWhole(TYPES[type].write, value);
	const v = verdict(type, bytes);
	assert(v.accept, `${name}: the official decoder rejects its own encoding`);
	assert.deepEqual(v.accept, gen(value), `${name}: official round trip`);
	vectors.push({ name, type, value: gen(value), bytes: toHex(bytes) });
}
const indices = [0, 1, 127, 128, 32767, 32768, 65535];
envoyKinds.forEach(([name, kind], i) => {
	add(`envoy/${name}`, "ToEnvoyTunnelMessage", { messageId: mid(indices[i % indices.length]), messageKind: kind });
});
rivetKinds.forEach(([name, kind], i) => {
	add(`rivet/${name}`, "ToRivetTunnelMessage", { messageId: mid(indices[i % indices.length]), messageKind: kind });
});
for (const [name, kind] of envoyKinds.filter(([n]) => n.startsWith("ws_"))) {
	add(`to_envoy/${name}`, "ToEnvoy", { tag: "ToEnvoyTunnelMessage", val: { messageId: mid(65535), messageKind: kind } });
}
for (const ts of [0n, -1n, -9223372036854775808n, 9223372036854775807n]) {
	add(`to_envoy/ping_${ts}`, "ToEnvoy", { tag: "ToEnvoyPing", val: { ts } });
	add(`to_rivet/pong_${ts}`, "ToRivet", { tag: "ToRivetPong", val: { ts } });
}
for (const [name, kind] of rivetKinds.filter(([n]) => n.startsWith("ws_"))) {
	add(`to_rivet/${name}`, "ToRivet", { tag: "ToRivetTunnelMessage", val: { messageId: mid(7), messageKind: kind } });
}

// The control variants: handshake, commands (start with and without preloaded KV, every stop
// reason), events, acknowledgements, KV, stopping.
const cp = (actorId, generation, index) => ({ actorId, generation, index });
const config = { name: "echo", key: "k", createTs: 1700000000000n, input: ab(utf8("in")) };
const hib = [{ gatewayId: id4("01020304"), requestId: id4("0a0b0c0d") }, { gatewayId: id4("ffffffff"), requestId: id4("00000000") }];
const kvMeta = { version: ab(utf8("v1")), updateTs: -1n };
const preloaded = {
	entries: [{ key: ab(utf8("a")), value: ab(new Uint8Array(0)), metadata: kvMeta }],
	requestedGetKeys: [ab(utf8("a")), ab(utf8("b"))],
	requestedPrefixes: [ab(new Uint8Array(0))],
};
const names = new Map([["echo", { metadata: "{}" }], ["other", { metadata: '{"x":1}' }]]);
const toEnvoyControl = [
	["init", { tag: "ToEnvoyInit", val: { metadata: { envoyLostThreshold: 15000n, actorStopThreshold: -1n, maxResponsePayloadSize: 18446744073709551615n } } }],
	["commands_empty", { tag: "ToEnvoyCommands", val: [] }],
	["commands_start", { tag: "ToEnvoyCommands", val: [
		{ checkpoint: cp("actor-1", 0, 0n), inner: { tag: "CommandStartActor", val: { config: { name: "n", key: null, createTs: 0n, input: null }, hibernatingRequests: [], preloadedKv: null } } },
		{ checkpoint: cp("actor-2", 4294967295, 9223372036854775807n), inner: { tag: "CommandStartActor", val: { config, hibernatingRequests: hib, preloadedKv: preloaded } } },
	] }],
	["commands_stop", { tag: "ToEnvoyCommands", val: Object.values(p.StopActorReason).map((reason, i) => ({ checkpoint: cp(`a${i}`, i, BigInt(i)), inner: { tag: "CommandStopActor", val: { reason } } })) }],
	["ack_events", { tag: "ToEnvoyAckEvents", val: { lastEventCheckpoints: [cp("actor-1", 3, 7n), cp("", 0, -1n)] } }],
	["kv_response_get", { tag: "ToEnvoyKvResponse", val: { requestId: 4294967295, data: { tag: "KvGetResponse", val: { keys: [ab(utf8("k"))], values: [ab(utf8("v"))], metadata: [kvMeta] } } } }],
	["kv_response_error", { tag: "ToEnvoyKvResponse", val: { requestId: 0, data: { tag: "KvErrorResponse", val: { message: "no" } } } }],
	["kv_response_put", { tag: "ToEnvoyKvResponse", val: { requestId: 1, data: { tag: "KvPutResponse", val: null } } }],
];
const toRivetControl = [
	["metadata_none", { tag: "ToRivetMetadata", val: { prepopulateActorNames: null, metadata: null } }],
	["metadata_full", { tag: "ToRivetMetadata", val: { prepopulateActorNames: names, metadata: '{"hws":true}' } }],
	["events", { tag: "ToRivetEvents", val: [
		{ checkpoint: cp("actor-1", 1, 0n), inner: { tag: "EventActorStateUpdate", val: { state: { tag: "ActorStateRunning", val: null } } } },
		{ checkpoint: cp("actor-1", 1, 1n), inner: { tag: "EventActorIntent", val: { intent: { tag: "ActorIntentSleep", val: null } } } },
		{ checkpoint: cp("actor-1", 1, 2n), inner: { tag: "EventActorStateUpdate", val: { state: { tag: "ActorStateStopped", val: { code: p.StopCode.Ok, message: null } } } } },
		{ checkpoint: cp("actor-1", 1, 3n), inner: { tag: "EventActorSetAlarm", val: { alarmTs: 5n } } },
	] }],
	["ack_commands", { tag: "ToRivetAckCommands", val: { lastCommandCheckpoints: [cp("actor-1", 2, 5n)] } }],
	["stopping", { tag: "ToRivetStopping", val: null }],
	["kv_request_put", { tag: "ToRivetKvRequest", val: { actorId: "actor-1", requestId: 7, data: { tag: "KvPutRequest", val: { keys: [ab(utf8("k"))], values: [ab(utf8("v"))] } } } }],
	["kv_request_list", { tag: "ToRivetKvRequest", val: { actorId: "a", requestId: 0, data: { tag: "KvListRequest", val: { query: { tag: "KvListPrefixQuery", val: { key: ab(utf8("p")) } }, reverse: true, limit: 10n } } } }],
];
for (const [name, value] of toEnvoyControl) add(`to_envoy/${name}`, "ToEnvoy", value);
for (const [name, value] of toRivetControl) add(`to_rivet/${name}`, "ToRivet", value);

// ---------------------------------------------------------------------------------------------
// Rejections: every truncation, a trailing byte, unknown tags, bad bools
// ---------------------------------------------------------------------------------------------

const rejections = [];
function reject(name, type, bytes) {
	const v = verdict(type, bytes);
	assert(v.reject, `${name}: expected the official decoder to reject ${toHex(bytes)}`);
	rejections.push({ name, type, bytes: toHex(bytes), official_error: v.reject });
}
for (const v of vectors) {
	const bytes = fromHex(v.bytes);
	for (let n = 0; n < bytes.length; n++) reject(`${v.name}/truncated_${n}`, v.type, bytes.subarray(0, n));
	reject(`${v.name}/trailing`, v.type, new Uint8Array([...bytes, 0]));
}
// Unknown tags: the kinds (8 and 9 kinds), the abort reason kind (4), the envelopes (15).
const kindTagAt = 10;
const tagCases = [
	["envoy/ws_close_none", "ToEnvoyTunnelMessage", kindTagAt, [8, 9, 127, 128, 255]],
	["rivet/ws_ack_0", "ToRivetTunnelMessage", kindTagAt, [9, 10, 127, 128, 255]],
	["to_envoy/ping_0", "ToEnvoy", 0, [15, 16, 255]],
	["to_rivet/pong_0", "ToRivet", 0, [15, 16, 255]],
];
for (const [src, type, at, tags] of tagCases) {
	const base = fromHex(vectors.find((v) => v.name === src).bytes);
	for (const tag of tags) {
		const b = base.slice();
		b[at] = tag;
		reject(`${src}/tag_${tag}`, type, b);
	}
}
{
	// The abort reason kind sits after the two absent optionals of request_abort_0.
	const base = fromHex(vectors.find((v) => v.name === "envoy/request_abort_0").bytes);
	const b = base.slice();
	b[kindTagAt + 1 + 2] = 4;
	reject("envoy/request_abort_0/reason_kind_4", "ToEnvoyTunnelMessage", b);
	const r = fromHex(vectors.find((v) => v.name === "rivet/response_abort_0").bytes).slice();
	r[kindTagAt + 1] = 4;
	reject("rivet/response_abort_0/reason_kind_4", "ToRivetTunnelMessage", r);
}
// Bools: every byte of every vector that decodes as 0 or 1 and rejects when set to 2 is a bool
// (or an optional's flag); keep those rejections.
for (const v of vectors) {
	const base = fromHex(v.bytes);
	for (let i = 0; i < base.length; i++) {
		if (base[i] > 1) continue;
		const b = base.slice();
		b[i] = 2;
		const verdictOf = verdict(v.type, b);
		if (verdictOf.reject?.issue === "a bool must be equal to 0 or 1" && verdictOf.reject.offset === i) {
			rejections.push({ name: `${v.name}/bool_at_${i}`, type: v.type, bytes: toHex(b), official_error: verdictOf.reject });
		}
	}
}

// ---------------------------------------------------------------------------------------------
// Differential: deterministic mutations of the accept vectors
// ---------------------------------------------------------------------------------------------

const rand = mulberry32(0x8e4f0a1);
const pick = (n) => Math.floor(rand() * n);
function mutate(src) {
	const b = [...src];
	switch (pick(5)) {
		case 0: // change one byte
			if (b.length) b[pick(b.length)] = pick(256);
			break;
		case 1: // small value in one byte (tags, bools, lengths)
			if (b.length) b[pick(b.length)] = pick(12);
			break;
		case 2: // insert a byte
			b.splice(pick(b.length + 1), 0, pick(256));
			break;
		case 3: // delete a byte
			if (b.length) b.splice(pick(b.length), 1);
			break;
		default: // two mutations
			return mutate(mutate(src));
	}
	return new Uint8Array(b);
}
const differential = [];
const seen = new Set();
for (let round = 0; round < 12; round++) {
	for (const v of vectors) {
		const m = mutate(fromHex(v.bytes));
		const key = `${v.type}:${toHex(m)}`;
		if (seen.has(key)) continue;
		seen.add(key);
		differential.push({ type: v.type, bytes: toHex(m), ...verdict(v.type, m) });
	}
}

// Official values outside the modelled subset (SQLite): hws answers `UnsupportedVariant`.
for (const [type, value] of [
	["ToRivet", { tag: "ToRivetSqliteGetPagesRequest", val: { requestId: 1, data: { actorId: "a", pgnos: [1], expectedGeneration: null, expectedHeadTxid: null } } }],
	["ToRivet", { tag: "ToRivetSqliteCommitStageBeginRequest", val: { requestId: 2, data: { actorId: "a", expectedGeneration: 1n, expectedHeadTxid: null } } }],
	["ToEnvoy", { tag: "ToEnvoySqliteCommitResponse", val: { requestId: 1, data: { tag: "SqliteCommitOk", val: { headTxid: null } } } }],
	["ToEnvoy", { tag: "ToEnvoySqliteGetPagesResponse", val: { requestId: 2, data: { tag: "SqliteGetPagesOk", val: { pages: [], headTxid: 3n } } } }],
]) {
	const bytes = writeWhole(TYPES[type].write, value);
	differential.push({ type, bytes: toHex(bytes), ...verdict(type, bytes) });
}

writeFileSync(
	join(OUT_DIR, "envoy.json"),
	`{"generator":"tests/vectors/envoy.mjs","package":"${PACKAGE}",\n"vectors":[\n${vectors.map((x) => JSON.stringify(x)).join(",\n")}\n],\n"rejections":[\n${rejections.map((x) => JSON.stringify(x)).join(",\n")}\n],\n"differential":[\n${differential.map((x) => JSON.stringify(x)).join(",\n")}\n]}\n`,
);
const accepted = differential.filter((d) => d.accept).length;
const outside = differential.filter((d) => d.accept_outside_subset).length;
console.log(
	`envoy.json: ${vectors.length} vectors, ${rejections.length} rejections, ${differential.length} differential (${accepted} accepted, ${outside} accepted outside the modelled subset)`,
);
