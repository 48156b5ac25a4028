#!/usr/bin/env node
// Generates the hws wire test vectors with the official Rivet runner-protocol codec
// (@rivetkit/engine-runner-protocol@2.3.10 on @rivetkit/bare-ts@0.6.2, pinned in package.json).
//
//   cd tests/vectors && npm ci && node generate.mjs
//
// Writes vectors.json, rejections.json, differential.json and quirks.json next to this script.
// The output is deterministic (no clock, no Math.random: the mutation PRNG has a fixed seed), so
// regenerating reproduces the committed files byte for byte. README.md documents the format;
// tests/vectors.rs consumes it.

import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { ab, gen, mulberry32, toHex, utf8, wholeCodec } from "./common.mjs";

// bare-ts checks its encoder inputs (u16 range, fixed-length ids, ...) only in development mode;
// turn that on before the codec is loaded so a bad vector cannot be encoded silently.
process.env.NODE_ENV = "development";
const p = await import("@rivetkit/engine-runner-protocol");
const bare = await import("@rivetkit/bare-ts");

const OUT_DIR = dirname(fileURLToPath(import.meta.url));
const PACKAGE = "@rivetkit/engine-runner-protocol@2.3.10";
const PROTOCOL_VERSION = 7;
const { readWhole, writeWhole } = wholeCodec(bare, 1024);

// ---------------------------------------------------------------------------------------------
// Bytes, hex and the pattern segments
// ---------------------------------------------------------------------------------------------

const fromHex = (hex) => {
	assert.match(hex, /^([0-9a-f]{2})*$/, `bad hex ${hex.slice(0, 40)}`);
	return new Uint8Array(Buffer.from(hex, "hex"));
};
const concat = (parts) => new Uint8Array(Buffer.concat(parts.map((x) => Buffer.from(x))));

/** `byte[i] = (31 * i + seed) mod 256` for `i` in `0..len`: the formula tests/vectors.rs repeats. */
function pattern(len, seed) {
	const out = new Uint8Array(len);
	for (let i = 0; i < len; i++) out[i] = (i * 31 + seed) & 0xff;
	return out;
}

/** A byte value in the vector format: a hex string, or a list of `{hex}` / `{pattern}` segments. */
function expand(v) {
	if (typeof v === "string") return fromHex(v);
	assert(Array.isArray(v), "bytes must be hex or segments");
	return concat(
		v.map((seg) => {
			if (seg.hex !== undefined) return fromHex(seg.hex);
			return pattern(seg.pattern.len, seg.pattern.seed);
		}),
	);
}

const patternSegs = (len, seed) => [{ pattern: { len, seed } }];

/** All pattern segments inside a fields value, in document order. */
function patternsIn(v, out = []) {
	if (Array.isArray(v)) {
		for (const x of v) {
			if (x && typeof x === "object" && x.pattern) out.push(x.pattern);
			else patternsIn(x, out);
		}
	} else if (v && typeof v === "object") {
		for (const x of Object.values(v)) patternsIn(x, out);
	}
	return out;
}

/**
 * Describes `bytes` as segments, using the pattern segments of the fields (so a 1 MiB payload
 * stays a few bytes of JSON), and checks that the description expands to exactly `bytes`.
 */
function describe(bytes, fields) {
	const pats = patternsIn(fields);
	if (pats.length === 0) return toHex(bytes);
	const buf = Buffer.from(bytes);
	const segs = [];
	let pos = 0;
	for (const pat of pats) {
		const needle = Buffer.from(pattern(pat.len, pat.seed));
		const at = buf.indexOf(needle, pos);
		assert(at >= 0, "pattern not found in the official encoding");
		if (at > pos) segs.push({ hex: toHex(bytes.subarray(pos, at)) });
		segs.push({ pattern: pat });
		pos = at + pat.len;
	}
	if (pos < bytes.length) segs.push({ hex: toHex(bytes.subarray(pos)) });
	assert.deepEqual(expand(segs), bytes, "segment expansion differs from the official encoding");
	return segs;
}

// ---------------------------------------------------------------------------------------------
// The fields shape <-> the official codec's objects
// ---------------------------------------------------------------------------------------------

const id4 = (hex) => {
	const b = fromHex(hex);
	assert.equal(b.length, 4, `ids are 4 bytes: ${hex}`);
	return ab(b);
};
const hexOfAb = (x) => toHex(new Uint8Array(x));

const mapOfHeaders = (pairs) => {
	const m = new Map(pairs);
	assert.equal(m.size, pairs.length, "headers in a vector must have unique keys");
	return m;
};
const headersOfMap = (m) => [...m.entries()];

const msgIdTo = (f) => ({
	gatewayId: id4(f.gateway_id),
	requestId: id4(f.request_id),
	messageIndex: f.message_index,
});
const msgIdFrom = (o) => ({
	gateway_id: hexOfAb(o.gatewayId),
	request_id: hexOfAb(o.requestId),
	message_index: o.messageIndex,
});
const optBytesTo = (v) => (v === null ? null : ab(expand(v)));
const optBytesFrom = (v) => (v === null ? null : hexOfAb(v));

// Each kind: [hws variant name, official tag, fields -> official val, official val -> fields].
const CLIENT_KINDS = [
	[
		"RequestStart",
		"ToClientRequestStart",
		(f) => ({
			actorId: f.actor_id,
			method: f.method,
			path: f.path,
			headers: mapOfHeaders(f.headers),
			body: optBytesTo(f.body),
			stream: f.stream,
		}),
		(o) => ({
			actor_id: o.actorId,
			method: o.method,
			path: o.path,
			headers: headersOfMap(o.headers),
			body: optBytesFrom(o.body),
			stream: o.stream,
		}),
	],
	[
		"RequestChunk",
		"ToClientRequestChunk",
		(f) => ({ body: ab(expand(f.body)), finish: f.finish }),
		(o) => ({ body: hexOfAb(o.body), finish: o.finish }),
	],
	["RequestAbort", "ToClientRequestAbort", () => null, () => null],
	[
		"WebSocketOpen",
		"ToClientWebSocketOpen",
		(f) => ({ actorId: f.actor_id, path: f.path, headers: mapOfHeaders(f.headers) }),
		(o) => ({ actor_id: o.actorId, path: o.path, headers: headersOfMap(o.headers) }),
	],
	[
		"WebSocketMessage",
		"ToClientWebSocketMessage",
		(f) => ({ data: ab(expand(f.data)), binary: f.binary }),
		(o) => ({ data: hexOfAb(o.data), binary: o.binary }),
	],
	[
		"WebSocketClose",
		"ToClientWebSocketClose",
		(f) => ({ code: f.code, reason: f.reason }),
		(o) => ({ code: o.code, reason: o.reason }),
	],
];

const SERVER_KINDS = [
	[
		"ResponseStart",
		"ToServerResponseStart",
		(f) => ({
			status: f.status,
			headers: mapOfHeaders(f.headers),
			body: optBytesTo(f.body),
			stream: f.stream,
		}),
		(o) => ({
			status: o.status,
			headers: headersOfMap(o.headers),
			body: optBytesFrom(o.body),
			stream: o.stream,
		}),
	],
	[
		"ResponseChunk",
		"ToServerResponseChunk",
		(f) => ({ body: ab(expand(f.body)), finish: f.finish }),
		(o) => ({ body: hexOfAb(o.body), finish: o.finish }),
	],
	["ResponseAbort", "ToServerResponseAbort", () => null, () => null],
	[
		"WebSocketOpen",
		"ToServerWebSocketOpen",
		(f) => ({ canHibernate: f.can_hibernate }),
		(o) => ({ can_hibernate: o.canHibernate }),
	],
	[
		"WebSocketMessage",
		"ToServerWebSocketMessage",
		(f) => ({ data: ab(expand(f.data)), binary: f.binary }),
		(o) => ({ data: hexOfAb(o.data), binary: o.binary }),
	],
	[
		"WebSocketMessageAck",
		"ToServerWebSocketMessageAck",
		(f) => ({ index: f.index }),
		(o) => ({ index: o.index }),
	],
	[
		"WebSocketClose",
		"ToServerWebSocketClose",
		(f) => ({ code: f.code, reason: f.reason, hibernate: f.hibernate }),
		(o) => ({ code: o.code, reason: o.reason, hibernate: o.hibernate }),
	],
];

function unionTo(table, f) {
	const row = table.find((r) => r[0] === f.variant);
	assert(row, `unknown variant ${f.variant}`);
	assert(row[2], `${f.variant}: vectors of control variants are built from official values`);
	return { tag: row[1], val: row[2](f.value) };
}
function unionFrom(table, o) {
	const row = table.find((r) => r[1] === o.tag);
	assert(row, `unknown official tag ${o.tag}`);
	return { variant: row[0], value: row[3](o.val) };
}

const clientMsgTo = (f) => ({ messageId: msgIdTo(f.message_id), messageKind: unionTo(CLIENT_KINDS, f.kind) });
const clientMsgFrom = (o) => ({ message_id: msgIdFrom(o.messageId), kind: unionFrom(CLIENT_KINDS, o.messageKind) });
const serverMsgTo = (f) => ({ messageId: msgIdTo(f.message_id), messageKind: unionTo(SERVER_KINDS, f.kind) });
const serverMsgFrom = (o) => ({ message_id: msgIdFrom(o.messageId), kind: unionFrom(SERVER_KINDS, o.messageKind) });
const pingTo = (f) => ({ gatewayId: id4(f.gateway_id), requestId: id4(f.request_id), ts: BigInt(f.ts) });
const pingFrom = (o) => ({ gateway_id: hexOfAb(o.gatewayId), request_id: hexOfAb(o.requestId), ts: o.ts.toString() });
const pongTo = (f) => ({ requestId: id4(f.request_id), ts: BigInt(f.ts) });
const pongFrom = (o) => ({ request_id: hexOfAb(o.requestId), ts: o.ts.toString() });
const hibTo = (f) => ({ gatewayId: id4(f.gateway_id), requestId: id4(f.request_id) });
const hibFrom = (o) => ({ gateway_id: hexOfAb(o.gatewayId), request_id: hexOfAb(o.requestId) });

// Control variants have no fields -> official direction (null): their vectors are built from
// official values, and their fields are `gen` of the official value.
const TO_RUNNER = [
	["Ping", "ToRunnerPing", pingTo, pingFrom],
	["Close", "ToRunnerClose", () => null, () => null],
	["Commands", "ToClientCommands", null, gen],
	["AckEvents", "ToClientAckEvents", null, gen],
	["TunnelMessage", "ToClientTunnelMessage", clientMsgTo, clientMsgFrom],
];
const TO_GATEWAY = [
	["Pong", "ToGatewayPong", pongTo, pongFrom],
	["TunnelMessage", "ToServerTunnelMessage", serverMsgTo, serverMsgFrom],
];
const TO_CLIENT = [
	["Init", "ToClientInit", null, gen],
	["Commands", "ToClientCommands", null, gen],
	["AckEvents", "ToClientAckEvents", null, gen],
	["KvResponse", "ToClientKvResponse", null, gen],
	["TunnelMessage", "ToClientTunnelMessage", clientMsgTo, clientMsgFrom],
	["Ping", "ToClientPing", null, gen],
];
const TO_SERVER = [
	["Init", "ToServerInit", null, gen],
	["Events", "ToServerEvents", null, gen],
	["AckCommands", "ToServerAckCommands", null, gen],
	["Stopping", "ToServerStopping", null, gen],
	["Pong", "ToServerPong", null, gen],
	["KvRequest", "ToServerKvRequest", null, gen],
	["TunnelMessage", "ToServerTunnelMessage", serverMsgTo, serverMsgFrom],
];

const copy = (u8) => u8.slice();

// Every type hws can decode as a whole frame. `subset(official)` tells whether an official
// union value lies in the tunnel subset hws models (hws answers `UnsupportedVariant` otherwise).
const TYPES = {
	ToClientTunnelMessage: {
		encode: (f) => writeWhole(p.writeToClientTunnelMessage, clientMsgTo(f)),
		decode: (b) => readWhole(p.readToClientTunnelMessage, b),
		reencode: (o) => writeWhole(p.writeToClientTunnelMessage, o),
		from: clientMsgFrom,
	},
	ToServerTunnelMessage: {
		encode: (f) => writeWhole(p.writeToServerTunnelMessage, serverMsgTo(f)),
		decode: (b) => readWhole(p.readToServerTunnelMessage, b),
		reencode: (o) => writeWhole(p.writeToServerTunnelMessage, o),
		from: serverMsgFrom,
	},
	ToRunnerPing: {
		encode: (f) => writeWhole(p.writeToRunnerPing, pingTo(f)),
		decode: (b) => readWhole(p.readToRunnerPing, b),
		reencode: (o) => writeWhole(p.writeToRunnerPing, o),
		from: pingFrom,
	},
	ToGatewayPong: {
		encode: (f) => writeWhole(p.writeToGatewayPong, pongTo(f)),
		decode: (b) => readWhole(p.readToGatewayPong, b),
		reencode: (o) => writeWhole(p.writeToGatewayPong, o),
		from: pongFrom,
	},
	HibernatingRequest: {
		encode: (f) => writeWhole(p.writeHibernatingRequest, hibTo(f)),
		decode: (b) => readWhole(p.readHibernatingRequest, b),
		reencode: (o) => writeWhole(p.writeHibernatingRequest, o),
		from: hibFrom,
	},
	ToRunner: {
		encode: (f) => copy(p.encodeToRunner(unionTo(TO_RUNNER, f))),
		decode: (b) => p.decodeToRunner(b),
		reencode: (o) => copy(p.encodeToRunner(o)),
		from: (o) => unionFrom(TO_RUNNER, o),
	},
	ToGateway: {
		encode: (f) => copy(p.encodeToGateway(unionTo(TO_GATEWAY, f))),
		decode: (b) => p.decodeToGateway(b),
		reencode: (o) => copy(p.encodeToGateway(o)),
		from: (o) => unionFrom(TO_GATEWAY, o),
	},
	ToClient: {
		encode: (f) => copy(p.encodeToClient(unionTo(TO_CLIENT, f))),
		decode: (b) => p.decodeToClient(b),
		reencode: (o) => copy(p.encodeToClient(o)),
		from: (o) => unionFrom(TO_CLIENT, o),
	},
	ToServer: {
		encode: (f) => copy(p.encodeToServer(unionTo(TO_SERVER, f))),
		decode: (b) => p.decodeToServer(b),
		reencode: (o) => copy(p.encodeToServer(o)),
		from: (o) => unionFrom(TO_SERVER, o),
	},
};

// The pub/sub hop frames a ToRunner / ToGateway body behind a 2-byte little-endian protocol
// version (vbare's embedded version). The npm package has no helper for it, so the prefix is
// written with bare-ts's own u16 writer and the body with the official encoder.
for (const inner of ["ToRunner", "ToGateway"]) {
	TYPES[`Versioned<${inner}>`] = {
		encode: (f) => concat([writeWhole(bare.writeU16, f.version), TYPES[inner].encode(f.message)]),
		decode: (b) => {
			const bc = new bare.ByteCursor(b, bare.Config({}));
			const version = bare.readU16(bc);
			return { version, message: TYPES[inner].decode(b.subarray(2)) };
		},
		reencode: (o) => concat([writeWhole(bare.writeU16, o.version), TYPES[inner].reencode(o.message)]),
		from: (o) => ({ version: o.version, message: TYPES[inner].from(o.message) }),
	};
}

function verdict(type, bytes) {
	const t = TYPES[type];
	let decoded;
	try {
		decoded = t.decode(bytes);
	} catch (e) {
		assert(e instanceof bare.BareError, `${type}: non-BARE error ${e}`);
		return { reject: { issue: e.issue, offset: e.offset } };
	}
	const fields = t.from(decoded);
	const lossless = Buffer.from(t.reencode(decoded)).equals(Buffer.from(bytes));
	return { accept: fields, ...(lossless ? {} : { lossy: true }) };
}

/** Byte fields expanded to plain hex, so two fields values can be compared. */
function canon(v) {
	if (Array.isArray(v) && v.length > 0 && v.every((s) => s && typeof s === "object" && (s.hex !== undefined || s.pattern))) {
		return toHex(expand(v));
	}
	if (Array.isArray(v)) return v.map(canon);
	if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, canon(x)]));
	return v;
}

// ---------------------------------------------------------------------------------------------
// Accept vectors
// ---------------------------------------------------------------------------------------------

const GW = "01020304";
const RQ = "a0b1c2d3";
const mid = (message_index, gateway_id = GW, request_id = RQ) => ({ gateway_id, request_id, message_index });
const cmsg = (message_id, variant, value = null) => ({ message_id, kind: { variant, value } });
const smsg = cmsg;
const wsData = (data, binary) => ({ data, binary });

const INDICES = [0, 1, 127, 128, 32767, 32768, 65535];
const I64_MIN = "-9223372036854775808";
const I64_MAX = "9223372036854775807";

// Header maps, in a chosen (unsorted) order; no leading BOM anywhere (see quirks.json).
const H_WS = [
	["host", "actor.example.com"],
	["upgrade", "websocket"],
	["connection", "Upgrade"],
	["sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="],
	["sec-websocket-version", "13"],
	["sec-websocket-protocol", "rivet, rivet_target.actor"],
];
const H_UNICODE = [
	["zzz-last-key-first", "order is kept, not sorted"],
	["café", "crème brûlée à la française"],
	["日本語", "東京都渋谷区"],
	["x-emoji-🚀", "🎉👍🏽👨‍👩‍👧‍👦"],
	["ключ", "значение"],
	["", "empty key"],
	["empty-value", ""],
	["a", "ünïcödé ✓"],
];
// Keys that differ only in case are different keys for both codecs.
const H_CASE = [
	["Content-Type", "text/plain"],
	["content-type", "application/json"],
	["CONTENT-TYPE", "x"],
];
// 40 entries: a count above 16 and long keys whose length needs a 2-byte varint.
const H_MANY = Array.from({ length: 40 }, (_, i) => [`x-header-${String(i).padStart(2, "0")}-${"k".repeat(i * 4)}`, `value ${i} ${"v".repeat(i * 5)}`]);

const S127 = "p".repeat(127);
const S128 = "q".repeat(128);
const S300_ASCII = "/".concat("segment/".repeat(37), "end"); // 300 bytes: TextDecoder path
const S_CJK_100 = "漢".repeat(100); // 100 UTF-16 units (JS writer) but 300 UTF-8 bytes (TextDecoder reader)
const S_16383 = "r".repeat(16383);
const S_16384 = "s".repeat(16384);
const S_LONG_UNICODE = "ñ日🚀a".repeat(2500); // 25 000 bytes: 3-byte varint, TextEncoder + TextDecoder paths

const vectors = [];
const add = (name, type, fields) => vectors.push({ name, type, fields });

// ToClientTunnelMessage: every kind and its edges.
add("client/request_start/minimal", "ToClientTunnelMessage", cmsg(mid(0), "RequestStart", { actor_id: "actor-1", method: "GET", path: "/", headers: [], body: null, stream: false }));
add("client/request_start/headers_and_body", "ToClientTunnelMessage", cmsg(mid(1), "RequestStart", { actor_id: "3f9c0d4e-actor", method: "POST", path: "/upload?x=1&y=%20", headers: [["content-type", "application/json"], ["x-b", "2"], ["accept", "*/*"]], body: toHex(utf8('{"a":1}')), stream: false }));
add("client/request_start/empty_body_present_stream", "ToClientTunnelMessage", cmsg(mid(2), "RequestStart", { actor_id: "", method: "", path: "", headers: [], body: "", stream: true }));
add("client/request_start/unicode_headers", "ToClientTunnelMessage", cmsg(mid(3), "RequestStart", { actor_id: "actør", method: "PATCH", path: "/ünï/日本/🚀", headers: H_UNICODE, body: "00ff00ff", stream: false }));
add("client/request_start/case_distinct_headers", "ToClientTunnelMessage", cmsg(mid(4), "RequestStart", { actor_id: "a", method: "GET", path: "/", headers: H_CASE, body: null, stream: true }));
add("client/request_start/many_headers", "ToClientTunnelMessage", cmsg(mid(5), "RequestStart", { actor_id: "a", method: "GET", path: "/", headers: H_MANY, body: null, stream: false }));
add("client/request_start/long_strings", "ToClientTunnelMessage", cmsg(mid(6), "RequestStart", { actor_id: S128, method: S127, path: S_16384, headers: [[S300_ASCII, S_CJK_100]], body: null, stream: false }));
add("client/request_chunk/empty", "ToClientTunnelMessage", cmsg(mid(7), "RequestChunk", { body: "", finish: false }));
add("client/request_chunk/finish", "ToClientTunnelMessage", cmsg(mid(8), "RequestChunk", { body: "deadbeef", finish: true }));
add("client/request_abort", "ToClientTunnelMessage", cmsg(mid(9), "RequestAbort"));
add("client/ws_open/typical", "ToClientTunnelMessage", cmsg(mid(0), "WebSocketOpen", { actor_id: "actor-1", path: "/connect?token=abc", headers: H_WS }));
add("client/ws_open/empty", "ToClientTunnelMessage", cmsg(mid(0), "WebSocketOpen", { actor_id: "", path: "", headers: [] }));
add("client/ws_open/unicode", "ToClientTunnelMessage", cmsg(mid(0), "WebSocketOpen", { actor_id: "演员-🎭", path: "/chat/région", headers: H_UNICODE }));
add("client/ws_open/long_path_3_byte_varint", "ToClientTunnelMessage", cmsg(mid(0), "WebSocketOpen", { actor_id: S_CJK_100, path: S_LONG_UNICODE, headers: [] }));
for (const i of INDICES) {
	add(`client/ws_message/index_${i}`, "ToClientTunnelMessage", cmsg(mid(i), "WebSocketMessage", wsData(toHex(utf8(`msg ${i}`)), i % 2 === 1)));
}
add("client/ws_message/empty_text", "ToClientTunnelMessage", cmsg(mid(1), "WebSocketMessage", wsData("", false)));
add("client/ws_message/empty_binary", "ToClientTunnelMessage", cmsg(mid(1), "WebSocketMessage", wsData("", true)));
for (const len of [1, 64, 127, 128, 255, 256, 16383, 16384]) {
	add(`client/ws_message/data_${len}`, "ToClientTunnelMessage", cmsg(mid(len & 0xffff), "WebSocketMessage", wsData(toHex(pattern(len, len & 0xff)), true)));
}
add("client/ws_message/data_1mib", "ToClientTunnelMessage", cmsg(mid(4242), "WebSocketMessage", wsData(patternSegs(1 << 20, 7), true)));
add("client/ws_message/ids_all_zero", "ToClientTunnelMessage", cmsg(mid(0, "00000000", "00000000"), "WebSocketMessage", wsData("00", true)));
add("client/ws_message/ids_all_ff", "ToClientTunnelMessage", cmsg(mid(65535, "ffffffff", "ffffffff"), "WebSocketMessage", wsData("ff", false)));
add("client/ws_close/neither", "ToClientTunnelMessage", cmsg(mid(10), "WebSocketClose", { code: null, reason: null }));
add("client/ws_close/code_only", "ToClientTunnelMessage", cmsg(mid(11), "WebSocketClose", { code: 1000, reason: null }));
add("client/ws_close/reason_only", "ToClientTunnelMessage", cmsg(mid(12), "WebSocketClose", { code: null, reason: "going away" }));
add("client/ws_close/both", "ToClientTunnelMessage", cmsg(mid(13), "WebSocketClose", { code: 1011, reason: "guard.websocket_pending_limit_reached" }));
add("client/ws_close/code_0_empty_reason", "ToClientTunnelMessage", cmsg(mid(14), "WebSocketClose", { code: 0, reason: "" }));
add("client/ws_close/code_65535_unicode_reason", "ToClientTunnelMessage", cmsg(mid(15), "WebSocketClose", { code: 65535, reason: "au revoir 👋 さようなら" }));
add("client/ws_close/reason_2_byte_varint", "ToClientTunnelMessage", cmsg(mid(16), "WebSocketClose", { code: 4000, reason: S_CJK_100 }));
// NUL, other controls, noncharacters, the last code point, a lone combining mark: on the short
// (bare-ts's own UTF-8 code) and the long (TextEncoder/TextDecoder) string paths.
const EDGE_CODE_POINTS = "\u0000\u0001\u001f\u007f\u0080\u07ff\u0800\ufffd\ufffe\uffff\u{10000}\u{10ffff}\u0301";
add("client/ws_close/edge_code_points", "ToClientTunnelMessage", cmsg(mid(18), "WebSocketClose", { code: 1000, reason: EDGE_CODE_POINTS }));
add("server/ws_close/edge_code_points_long", "ToServerTunnelMessage", smsg(mid(28), "WebSocketClose", { code: null, reason: EDGE_CODE_POINTS.repeat(20), hibernate: true }));
add("client/ws_open/edge_code_point_headers", "ToClientTunnelMessage", cmsg(mid(0), "WebSocketOpen", { actor_id: "\u{10ffff}", path: "/\u0000", headers: [["\u0000", "\uffff"], ["\ufffe", EDGE_CODE_POINTS.repeat(30)]] }));
add("client/ws_close/reason_16383", "ToClientTunnelMessage", cmsg(mid(17), "WebSocketClose", { code: null, reason: S_16383 }));

// ToServerTunnelMessage: every kind and its edges.
add("server/response_start/minimal", "ToServerTunnelMessage", smsg(mid(0), "ResponseStart", { status: 200, headers: [], body: null, stream: false }));
add("server/response_start/headers_and_body", "ToServerTunnelMessage", smsg(mid(1), "ResponseStart", { status: 404, headers: [["content-type", "text/plain; charset=utf-8"], ["x-rivet-error", "actor.not_found"]], body: toHex(utf8("not found")), stream: false }));
add("server/response_start/status_0_empty_body_stream", "ToServerTunnelMessage", smsg(mid(2), "ResponseStart", { status: 0, headers: [], body: "", stream: true }));
add("server/response_start/status_65535_unicode", "ToServerTunnelMessage", smsg(mid(3), "ResponseStart", { status: 65535, headers: H_UNICODE, body: null, stream: true }));
add("server/response_start/status_101_many_headers", "ToServerTunnelMessage", smsg(mid(4), "ResponseStart", { status: 101, headers: H_MANY, body: toHex(pattern(300, 3)), stream: false }));
add("server/response_chunk/empty", "ToServerTunnelMessage", smsg(mid(5), "ResponseChunk", { body: "", finish: false }));
add("server/response_chunk/finish", "ToServerTunnelMessage", smsg(mid(6), "ResponseChunk", { body: "0102", finish: true }));
add("server/response_abort", "ToServerTunnelMessage", smsg(mid(7), "ResponseAbort"));
add("server/ws_open/can_hibernate", "ToServerTunnelMessage", smsg(mid(0), "WebSocketOpen", { can_hibernate: true }));
add("server/ws_open/cannot_hibernate", "ToServerTunnelMessage", smsg(mid(0), "WebSocketOpen", { can_hibernate: false }));
for (const i of INDICES) {
	add(`server/ws_message/index_${i}`, "ToServerTunnelMessage", smsg(mid(i), "WebSocketMessage", wsData(toHex(utf8(`reply ${i}`)), i % 2 === 0)));
}
add("server/ws_message/empty", "ToServerTunnelMessage", smsg(mid(1), "WebSocketMessage", wsData("", false)));
add("server/ws_message/data_128", "ToServerTunnelMessage", smsg(mid(2), "WebSocketMessage", wsData(toHex(pattern(128, 1)), true)));
add("server/ws_message/data_1mib", "ToServerTunnelMessage", smsg(mid(3), "WebSocketMessage", wsData(patternSegs(1 << 20, 9), false)));
for (const i of INDICES) {
	add(`server/ws_message_ack/index_${i}`, "ToServerTunnelMessage", smsg(mid(5), "WebSocketMessageAck", { index: i }));
}
add("server/ws_message_ack/ids_all_zero", "ToServerTunnelMessage", smsg(mid(0, "00000000", "00000000"), "WebSocketMessageAck", { index: 0 }));
add("server/ws_message_ack/ids_all_ff", "ToServerTunnelMessage", smsg(mid(65535, "ffffffff", "ffffffff"), "WebSocketMessageAck", { index: 65535 }));
add("server/ws_close/neither", "ToServerTunnelMessage", smsg(mid(20), "WebSocketClose", { code: null, reason: null, hibernate: false }));
add("server/ws_close/code_only", "ToServerTunnelMessage", smsg(mid(21), "WebSocketClose", { code: 1000, reason: null, hibernate: false }));
add("server/ws_close/reason_only", "ToServerTunnelMessage", smsg(mid(22), "WebSocketClose", { code: null, reason: "bye", hibernate: false }));
add("server/ws_close/both", "ToServerTunnelMessage", smsg(mid(23), "WebSocketClose", { code: 1008, reason: "ws.message_index_skip", hibernate: false }));
add("server/ws_close/hibernate", "ToServerTunnelMessage", smsg(mid(24), "WebSocketClose", { code: null, reason: null, hibernate: true }));
add("server/ws_close/meta_not_found", "ToServerTunnelMessage", smsg(mid(25), "WebSocketClose", { code: 1000, reason: "ws.meta_not_found_during_restore", hibernate: false }));
add("server/ws_close/all_set_unicode", "ToServerTunnelMessage", smsg(mid(26), "WebSocketClose", { code: 65535, reason: "fermé ✗ 閉じた", hibernate: true }));
add("server/ws_close/reason_3_byte_varint", "ToServerTunnelMessage", smsg(mid(27), "WebSocketClose", { code: 0, reason: S_16384, hibernate: false }));

// Ping, pong, hibernating request.
for (const [label, ts] of [["0", "0"], ["minus_1", "-1"], ["min", I64_MIN], ["max", I64_MAX], ["ms_epoch", "1764288000000"]]) {
	add(`ping/ts_${label}`, "ToRunnerPing", { gateway_id: GW, request_id: RQ, ts });
	add(`pong/ts_${label}`, "ToGatewayPong", { request_id: RQ, ts });
}
add("ping/ids_all_zero", "ToRunnerPing", { gateway_id: "00000000", request_id: "00000000", ts: "1" });
add("ping/ids_all_ff", "ToRunnerPing", { gateway_id: "ffffffff", request_id: "ffffffff", ts: "-2" });
add("pong/id_all_ff", "ToGatewayPong", { request_id: "ffffffff", ts: "256" });
add("hibernating_request/typical", "HibernatingRequest", { gateway_id: GW, request_id: RQ });
add("hibernating_request/all_zero", "HibernatingRequest", { gateway_id: "00000000", request_id: "00000000" });
add("hibernating_request/all_ff", "HibernatingRequest", { gateway_id: "ffffffff", request_id: "ffffffff" });

// Envelopes.
const wsMsg = cmsg(mid(32768), "WebSocketMessage", wsData(toHex(utf8("hello")), false));
const ack = smsg(mid(9), "WebSocketMessageAck", { index: 32767 });
add("to_runner/ping", "ToRunner", { variant: "Ping", value: { gateway_id: GW, request_id: RQ, ts: "1764288000000" } });
add("to_runner/close", "ToRunner", { variant: "Close", value: null });
add("to_runner/ws_message", "ToRunner", { variant: "TunnelMessage", value: wsMsg });
add("to_runner/ws_open", "ToRunner", { variant: "TunnelMessage", value: cmsg(mid(0), "WebSocketOpen", { actor_id: "actor-1", path: "/ws", headers: H_WS }) });
add("to_runner/ws_close", "ToRunner", { variant: "TunnelMessage", value: cmsg(mid(65535), "WebSocketClose", { code: 1000, reason: null }) });
add("to_runner/request_start", "ToRunner", { variant: "TunnelMessage", value: cmsg(mid(0), "RequestStart", { actor_id: "a", method: "GET", path: "/health", headers: [], body: null, stream: false }) });
add("to_gateway/pong", "ToGateway", { variant: "Pong", value: { request_id: RQ, ts: "-1" } });
add("to_gateway/ack", "ToGateway", { variant: "TunnelMessage", value: ack });
add("to_gateway/ws_close_hibernate", "ToGateway", { variant: "TunnelMessage", value: smsg(mid(3), "WebSocketClose", { code: null, reason: null, hibernate: true }) });
add("to_gateway/response_start", "ToGateway", { variant: "TunnelMessage", value: smsg(mid(0), "ResponseStart", { status: 200, headers: [["a", "b"]], body: "", stream: false }) });
add("to_client/ws_message", "ToClient", { variant: "TunnelMessage", value: wsMsg });
add("to_client/ws_open_unicode", "ToClient", { variant: "TunnelMessage", value: cmsg(mid(0), "WebSocketOpen", { actor_id: "x", path: "/", headers: H_UNICODE }) });
add("to_client/request_abort", "ToClient", { variant: "TunnelMessage", value: cmsg(mid(1), "RequestAbort") });
add("to_server/ack", "ToServer", { variant: "TunnelMessage", value: ack });
add("to_server/ws_message", "ToServer", { variant: "TunnelMessage", value: smsg(mid(1), "WebSocketMessage", wsData("68690a", false)) });
add("to_server/ws_open", "ToServer", { variant: "TunnelMessage", value: smsg(mid(0), "WebSocketOpen", { can_hibernate: true }) });

// The pub/sub hop: version 7 prefix + body.
const v7 = (message) => ({ version: PROTOCOL_VERSION, message });
add("versioned/to_runner/ws_message_empty", "Versioned<ToRunner>", v7({ variant: "TunnelMessage", value: cmsg(mid(0), "WebSocketMessage", wsData("", false)) }));
add("versioned/to_runner/ws_message_64", "Versioned<ToRunner>", v7({ variant: "TunnelMessage", value: cmsg(mid(1), "WebSocketMessage", wsData(toHex(pattern(64, 64)), true)) }));
add("versioned/to_runner/ws_message_16k", "Versioned<ToRunner>", v7({ variant: "TunnelMessage", value: cmsg(mid(65535), "WebSocketMessage", wsData(toHex(pattern(16384, 16)), true)) }));
add("versioned/to_runner/ws_message_1mib", "Versioned<ToRunner>", v7({ variant: "TunnelMessage", value: cmsg(mid(32767), "WebSocketMessage", wsData(patternSegs(1 << 20, 11), false)) }));
add("versioned/to_runner/ws_open", "Versioned<ToRunner>", v7({ variant: "TunnelMessage", value: cmsg(mid(0), "WebSocketOpen", { actor_id: "actor-1", path: "/ws", headers: H_WS }) }));
add("versioned/to_runner/ws_close", "Versioned<ToRunner>", v7({ variant: "TunnelMessage", value: cmsg(mid(2), "WebSocketClose", { code: 1001, reason: "client gone" }) }));
add("versioned/to_runner/ping", "Versioned<ToRunner>", v7({ variant: "Ping", value: { gateway_id: GW, request_id: RQ, ts: I64_MAX } }));
add("versioned/to_runner/close", "Versioned<ToRunner>", v7({ variant: "Close", value: null }));
add("versioned/to_gateway/ack", "Versioned<ToGateway>", v7({ variant: "TunnelMessage", value: ack }));
add("versioned/to_gateway/pong", "Versioned<ToGateway>", v7({ variant: "Pong", value: { request_id: RQ, ts: I64_MIN } }));
add("versioned/to_gateway/ws_message", "Versioned<ToGateway>", v7({ variant: "TunnelMessage", value: smsg(mid(128), "WebSocketMessage", wsData("", true)) }));
add("versioned/to_gateway/ws_open", "Versioned<ToGateway>", v7({ variant: "TunnelMessage", value: smsg(mid(0), "WebSocketOpen", { can_hibernate: false }) }));
add("versioned/to_gateway/ws_close", "Versioned<ToGateway>", v7({ variant: "TunnelMessage", value: smsg(mid(127), "WebSocketClose", { code: 1000, reason: "ws.meta_not_found_during_restore", hibernate: false }) }));

// Encode every vector with the official encoder, decode it back with the official decoder.
const names = new Set();
for (const v of vectors) {
	assert(!names.has(v.name), `duplicate vector name ${v.name}`);
	names.add(v.name);
	const t = TYPES[v.type];
	const bytes = t.encode(v.fields);
	const back = t.from(t.decode(bytes));
	assert.deepEqual(canon(back), canon(v.fields), `${v.name}: official decode differs from the fields`);
	v.bytes = describe(bytes, v.fields);
}

// ---------------------------------------------------------------------------------------------
// Rejection vectors: bytes the official decoder rejects, with its error
// ---------------------------------------------------------------------------------------------

/** Bytes from a list of hex strings, byte arrays, strings (as UTF-8) and numbers (as bytes). */
function b(...parts) {
	return concat(
		parts.map((x) => {
			if (typeof x === "number") return Uint8Array.of(x);
			if (typeof x === "string") return fromHex(x);
			return x;
		}),
	);
}
const uv = (n) => {
	const out = [];
	while (n >= 0x80) {
		out.push(0x80 | (n & 0x7f));
		n = Math.floor(n / 128);
	}
	out.push(n);
	return Uint8Array.from(out);
};
const str = (s) => b(uv(utf8(s).length), utf8(s));
const rawStr = (bytes) => b(uv(bytes.length), bytes);
const MID = "01020304a0b1c2d3" + "0100"; // gateway, request, index 1
const encOf = (type, fields) => TYPES[type].encode(fields);

/** `{issue, offset}` of the official decoder's error for `bytes`, or null if it accepts them. */
function officialError(type, bytes) {
	try {
		TYPES[type].decode(bytes);
		return null;
	} catch (e) {
		assert(e instanceof bare.BareError, `${type}: non-BARE error ${e}`);
		return { issue: e.issue, offset: e.offset };
	}
}

const rejections = [];
const rejectNames = new Set();
const reject = (name, type, bytes, segs) => {
	assert(!rejectNames.has(name), `duplicate rejection name ${name}`);
	rejectNames.add(name);
	const error = officialError(type, bytes);
	assert(error !== null, `${name}: the official decoder accepts these bytes`);
	rejections.push({ name, type, bytes: segs ?? toHex(bytes), official_error: error });
};

// bool other than 0/1 (fields and optional flags).
reject("bool/ws_message_binary_2", "ToClientTunnelMessage", b(MID, 4, str("hi"), 2));
reject("bool/ws_message_binary_ff", "ToServerTunnelMessage", b(MID, 4, str("hi"), 0xff));
reject("bool/ws_open_can_hibernate_2", "ToServerTunnelMessage", b(MID, 3, 2));
reject("bool/server_close_hibernate_2", "ToServerTunnelMessage", b(MID, 6, 0, 0, 2));
reject("bool/request_start_stream_2", "ToClientTunnelMessage", b(MID, 0, str("a"), str("GET"), str("/"), 0, 0, 2));
reject("bool/request_chunk_finish_2", "ToClientTunnelMessage", b(MID, 1, 0, 2));
reject("bool/response_chunk_finish_80", "ToServerTunnelMessage", b(MID, 1, 0, 0x80));
reject("bool/optional_code_flag_2", "ToClientTunnelMessage", b(MID, 5, 2, "e803", 0));
reject("bool/optional_reason_flag_2", "ToServerTunnelMessage", b(MID, 6, 0, 2, str("x"), 0));
reject("bool/optional_body_flag_2", "ToServerTunnelMessage", b(MID, 0, "c800", 0, 2, 0, 0));
reject("bool/in_to_runner_envelope", "ToRunner", b(4, MID, 4, 0, 3));
// Varints in their non-shortest form.
reject("varint/data_len_0_in_2_bytes", "ToClientTunnelMessage", b(MID, 4, "8000", 1));
reject("varint/data_len_1_in_2_bytes", "ToServerTunnelMessage", b(MID, 4, "8100", "41", 1));
reject("varint/data_len_0_in_3_bytes", "ToClientTunnelMessage", b(MID, 4, "808000", 1));
reject("varint/string_len_0_in_2_bytes", "ToClientTunnelMessage", b(MID, 3, "8000", str("/"), 0));
reject("varint/reason_len_2_in_2_bytes", "ToServerTunnelMessage", b(MID, 6, 0, 1, "8200", "6f6b", 0));
reject("varint/header_count_0_in_2_bytes", "ToClientTunnelMessage", b(MID, 3, str("a"), str("/"), "8000"));
reject("varint/header_key_len_in_2_bytes", "ToServerTunnelMessage", b(MID, 0, "c800", 1, "8100", "6b", str("v"), 0, 0));
reject("varint/data_len_5_bytes_too_large", "ToClientTunnelMessage", b(MID, 4, "ffffffff7f", 1));
reject("varint/header_count_too_large", "ToClientTunnelMessage", b(MID, 3, str("a"), str("/"), "ffffffffffffffff7f"));
// Invalid UTF-8 (short strings take bare-ts's own decoder, 256+ byte strings TextDecoder).
const badUtf8 = [
	["lone_continuation", "80"],
	["overlong_nul", "c080"],
	["overlong_slash", "e080af"],
	["surrogate", "eda080"],
	["above_10ffff", "f4908080"],
	["truncated_2_byte", "c3"],
	["truncated_4_byte", "f09f98"],
	["invalid_byte_fe", "fe"],
	["invalid_byte_ff", "41ff"],
];
for (const [label, hex] of badUtf8) {
	reject(`utf8/path_${label}`, "ToClientTunnelMessage", b(MID, 3, str("actor"), rawStr(fromHex(hex)), 0));
}
reject("utf8/actor_id_overlong_2_byte", "ToClientTunnelMessage", b(MID, 0, rawStr(fromHex("c1bf")), str("GET"), str("/"), 0, 0, 0));
reject("utf8/method", "ToClientTunnelMessage", b(MID, 0, str("a"), rawStr(fromHex("474554ff")), str("/"), 0, 0, 0));
reject("utf8/header_key", "ToClientTunnelMessage", b(MID, 3, str("a"), str("/"), 1, rawStr(fromHex("6b80")), str("v")));
reject("utf8/header_value", "ToServerTunnelMessage", b(MID, 0, "c800", 1, str("k"), rawStr(fromHex("eda080")), 0, 0));
reject("utf8/client_close_reason", "ToClientTunnelMessage", b(MID, 5, 0, 1, rawStr(fromHex("6279e9")), ""));
reject("utf8/server_close_reason", "ToServerTunnelMessage", b(MID, 6, 1, "e803", 1, rawStr(fromHex("c0")), 0));
reject("utf8/long_string_text_decoder", "ToClientTunnelMessage", b(MID, 3, str("a"), rawStr(b(utf8("x".repeat(200)), "eda080", utf8("y".repeat(100)))), 0));
reject("utf8/long_header_value_text_decoder", "ToServer", b(6, MID, 0, "c800", 1, str("k"), rawStr(b(utf8("é".repeat(150)), "80")), 0, 0));
// Duplicate header keys.
reject("duplicate_key/adjacent", "ToClientTunnelMessage", b(MID, 3, str("a"), str("/"), 2, str("a"), str("1"), str("a"), str("2")));
reject("duplicate_key/apart", "ToServerTunnelMessage", b(MID, 0, "c800", 3, str("x"), str("1"), str("y"), str("2"), str("x"), str("3"), 0, 0));
reject("duplicate_key/empty", "ToClientTunnelMessage", b(MID, 0, str("a"), str("GET"), str("/"), 2, str(""), str(""), str(""), str(""), 0, 0));
reject("duplicate_key/unicode", "ToClient", b(4, MID, 3, str("a"), str("/"), 2, str("日本🚀"), str("1"), str("日本🚀"), str("1")));
// A 256+ byte key with a leading BOM decodes (TextDecoder strips the BOM) to the same string as
// the key without it: the official decoder reports a duplicate. See quirks.json and README.md.
const bomKey = "a".repeat(300);
reject("duplicate_key/bom_stripped_long_key", "ToClientTunnelMessage", b(MID, 3, str("a"), str("/"), 2, str(bomKey), str("1"), rawStr(b("efbbbf", utf8(bomKey))), str("2")));
reject("duplicate_key/bom_stripped_long_key_first", "ToServerTunnelMessage", b(MID, 0, "c800", 2, rawStr(b("efbbbf", utf8(bomKey))), str("1"), str(bomKey), str("2"), 0, 0));
// TextDecoder strips one BOM only: BOM BOM X (256+ bytes) reads as BOM X, which a key under 256
// bytes keeps as is.
const bom2 = b("efbbbfefbbbf", utf8("k".repeat(250)));
reject("duplicate_key/double_bom_long_key_vs_short_bom_key", "ToClientTunnelMessage", b(MID, 3, 0, 0, 2, rawStr(bom2), 0, rawStr(bom2.subarray(3)), 0));
// Unknown union tags.
for (const tag of [6, 0x7f, 0x80, 0xff]) reject(`tag/client_kind_${tag}`, "ToClientTunnelMessage", b(MID, tag));
for (const tag of [7, 0x80]) reject(`tag/server_kind_${tag}`, "ToServerTunnelMessage", b(MID, tag, 0));
reject("tag/to_runner_5", "ToRunner", b(5));
reject("tag/to_runner_ff", "ToRunner", b(0xff, MID));
reject("tag/to_gateway_2", "ToGateway", b(2, MID, 5, 0, 0));
reject("tag/to_client_6", "ToClient", b(6));
reject("tag/to_server_7", "ToServer", b(7, MID, 5, 0, 0));
reject("tag/kind_inside_to_runner", "ToRunner", b(4, MID, 9));
reject("tag/kind_inside_to_gateway", "ToGateway", b(1, MID, 8));
// Trailing bytes after a complete message.
const ok = {
	ToClientTunnelMessage: encOf("ToClientTunnelMessage", wsMsg),
	ToServerTunnelMessage: encOf("ToServerTunnelMessage", ack),
	ToRunnerPing: encOf("ToRunnerPing", { gateway_id: GW, request_id: RQ, ts: "5" }),
	ToGatewayPong: encOf("ToGatewayPong", { request_id: RQ, ts: "5" }),
	HibernatingRequest: encOf("HibernatingRequest", { gateway_id: GW, request_id: RQ }),
	ToRunner: encOf("ToRunner", { variant: "TunnelMessage", value: wsMsg }),
	ToGateway: encOf("ToGateway", { variant: "TunnelMessage", value: ack }),
	ToClient: encOf("ToClient", { variant: "TunnelMessage", value: wsMsg }),
	ToServer: encOf("ToServer", { variant: "TunnelMessage", value: ack }),
};
for (const [type, bytes] of Object.entries(ok)) {
	reject(`trailing/${type}_one_zero`, type, b(bytes, 0));
}
reject("trailing/to_runner_close_extra", "ToRunner", b(1, 1));
reject("trailing/request_abort_extra", "ToClientTunnelMessage", b(MID, 2, 0xff));
reject("trailing/server_response_abort_extra", "ToServerTunnelMessage", b(MID, 2, 0, 0));
// Truncated frames: empty, inside the message id, inside each field, a length past the end.
for (const [type, bytes] of Object.entries(ok)) {
	reject(`truncated/${type}_empty`, type, new Uint8Array(0));
	reject(`truncated/${type}_last_byte_missing`, type, bytes.subarray(0, bytes.length - 1));
}
reject("truncated/in_message_id", "ToClientTunnelMessage", fromHex(MID).subarray(0, 5));
reject("truncated/before_kind", "ToServerTunnelMessage", fromHex(MID));
reject("truncated/data_len_past_end", "ToClientTunnelMessage", b(MID, 4, 5, "6869"));
reject("truncated/data_len_huge", "ToServerTunnelMessage", b(MID, 4, "ffffffff0f", "6869", 0));
reject("truncated/string_len_past_end", "ToClientTunnelMessage", b(MID, 3, 10, "616263"));
reject("truncated/header_count_past_end", "ToClientTunnelMessage", b(MID, 3, str("a"), str("/"), 5, str("k"), str("v")));
reject("truncated/in_varint", "ToClientTunnelMessage", b(MID, 4, 0x80));
reject("truncated/optional_code", "ToClientTunnelMessage", b(MID, 5, 1, 0xe8));
reject("truncated/optional_reason", "ToServerTunnelMessage", b(MID, 6, 0, 1, 3, "6f6b"));
reject("truncated/ack_index", "ToServerTunnelMessage", b(MID, 5, 1));
reject("truncated/ping_ts", "ToRunner", b(0, GW, RQ, "01020304050607"));
reject("truncated/pong_ts", "ToGateway", b(0, RQ, "0102"));
reject("truncated/to_runner_tag_only", "ToRunner", b(4));
reject("truncated/to_server_tag_only", "ToServer", b(6));
// Larger than the codec's 32 MiB maximum (bare-ts Config.maxBufferLength; hws DEFAULT_MAX_FRAME_SIZE).
{
	const len = 32 * 1024 * 1024 + 1 - 16;
	const head = b(MID, 4, uv(len));
	const frame = b(head, pattern(len, 5), 1);
	assert.equal(frame.length, 32 * 1024 * 1024 + 1);
	const segs = [{ hex: toHex(head) }, { pattern: { len, seed: 5 } }, { hex: "01" }];
	assert.deepEqual(expand(segs), frame);
	reject("size/frame_32mib_plus_1", "ToClientTunnelMessage", frame, segs);
	// One byte less is accepted by the official decoder.
	const okLen = len - 1;
	const okHead = b(MID, 4, uv(okLen));
	assert.equal(officialError("ToClientTunnelMessage", b(okHead, pattern(okLen, 5), 1)), null);
}

// ---------------------------------------------------------------------------------------------
// Quirks: bytes the official decoder accepts but decodes to a different value (its re-encoding
// differs from the input). hws decodes them faithfully; the Rust test pins both facts.
// ---------------------------------------------------------------------------------------------

const quirks = [];
function quirk(name, type, bytes, note) {
	const t = TYPES[type];
	const decoded = t.decode(bytes);
	const reencoded = t.encode(t.from(decoded));
	assert.notDeepEqual(reencoded, bytes, `${name}: not a quirk`);
	// What the official decoder says about its own re-encoding (it can reject it).
	const again = verdict(type, reencoded);
	quirks.push({ name, type, note, bytes: toHex(bytes), official_fields: t.from(decoded), official_reencoded: toHex(reencoded), official_reencoded_verdict: again });
}
quirk(
	"bom/long_path_loses_bom",
	"ToClientTunnelMessage",
	b(MID, 3, str("a"), rawStr(b("efbbbf", utf8("/".repeat(300)))), 0),
	"strings of 256+ bytes go through TextDecoder, which drops a leading U+FEFF",
);
quirk(
	"bom/long_close_reason_loses_bom",
	"ToServerTunnelMessage",
	b(MID, 6, 0, 1, rawStr(b("efbbbf", utf8("r".repeat(253)))), 1),
	"a 256-byte reason starting with U+FEFF decodes without it",
);
quirk(
	"bom/double_bom_long_key_keeps_one",
	"ToClientTunnelMessage",
	b(MID, 3, 0, 0, 2, rawStr(b("efbbbfefbbbf", utf8("k".repeat(300)))), 0, str("k".repeat(300)), 0),
	"a 256+ byte key starting with two BOMs loses one and stays distinct from the bare key",
);
{
	// Under 256 bytes bare-ts's own decoder keeps the BOM: a key with it and one without are
	// distinct, and nothing is lost.
	const k = "k".repeat(200);
	const bytes = b(MID, 3, 0, 0, 2, str(k), 0, rawStr(b("efbbbf", utf8(k))), 0);
	const t = TYPES.ToClientTunnelMessage;
	assert.deepEqual(t.encode(t.from(t.decode(bytes))), bytes);
	vectors.push({ name: "client/ws_open/short_bom_key_distinct", type: "ToClientTunnelMessage", fields: t.from(t.decode(bytes)), bytes: toHex(bytes) });
}
{
	// Below 256 bytes bare-ts's own decoder keeps the BOM: no quirk.
	const short = b(MID, 3, str("a"), rawStr(b("efbbbf", utf8("/".repeat(252)))), 0);
	const t = TYPES.ToClientTunnelMessage;
	assert.deepEqual(t.encode(t.from(t.decode(short))), short);
	vectors.push({
		name: "client/ws_open/bom_255_byte_path_kept",
		type: "ToClientTunnelMessage",
		fields: t.from(t.decode(short)),
		bytes: toHex(short),
	});
}

// ---------------------------------------------------------------------------------------------
// The control plane: every variant of ToClient, ToServer and ToRunner beyond the tunnel, and every
// type under them. Built from official values (their fields are `gen` of the decoded value).
// ---------------------------------------------------------------------------------------------

/** Adds a vector from an official value of `type` (a `{version, message}` for the versioned). */
function addOfficial(name, type, official) {
	assert(!names.has(name), `duplicate vector name ${name}`);
	names.add(name);
	const t = TYPES[type];
	const bytes = t.reencode(official);
	const decoded = t.decode(bytes);
	assert.deepEqual(t.reencode(decoded), bytes, `${name}: the official codec does not round-trip`);
	vectors.push({ name, type, fields: t.from(decoded), bytes: toHex(bytes) });
}
const u = (tag, val = null) => ({ tag, val });
const abHex = (hex) => ab(fromHex(hex));
const abUtf8 = (str) => ab(utf8(str));
const ckpt = (actorId, generation, index) => ({ actorId, generation, index: BigInt(index) });
const hibReq = (g, r) => ({ gatewayId: id4(g), requestId: id4(r) });
const config = (name, key, createTs, input) => ({ name, key, createTs: BigInt(createTs), input });
const startCmd = (cfg, hib) => u("CommandStartActor", { config: cfg, hibernatingRequests: hib });
const LONG_ACTOR_ID = "actor-".concat("x".repeat(194)); // 200 bytes: a 2-byte length
const U32_MAX = 4294967295;
const U64_MAX = "18446744073709551615";

// ToClientInit and ProtocolMetadata.
const meta = (lost, stop, grace) => ({ runnerLostThreshold: BigInt(lost), actorStopThreshold: BigInt(stop), serverlessDrainGracePeriod: grace === null ? null : BigInt(grace) });
addOfficial("to_client/init/minimal", "ToClient", u("ToClientInit", { runnerId: "", metadata: meta(0, 0, null) }));
addOfficial("to_client/init/typical", "ToClient", u("ToClientInit", { runnerId: "0199a3f2-runner", metadata: meta(15000, 30000, 5000) }));
addOfficial("to_client/init/extremes", "ToClient", u("ToClientInit", { runnerId: "rünner-日本", metadata: meta(I64_MIN, I64_MAX, -1) }));
// ToClientCommands: CommandWrapper, ActorCheckpoint, CommandStartActor (ActorConfig, hibernating
// requests), CommandStopActor.
addOfficial("to_client/commands/empty", "ToClient", u("ToClientCommands", []));
addOfficial("to_client/commands/start_minimal", "ToClient", u("ToClientCommands", [{ checkpoint: ckpt("actor-1", 0, 0), inner: startCmd(config("counter", null, 0, null), []) }]));
addOfficial("to_client/commands/start_full", "ToClient", u("ToClientCommands", [{ checkpoint: ckpt("3f9c0d4e", 7, 12), inner: startCmd(config("chat-room", "room/ünï/🚀", "1764288000000", abHex("00ff10")), [hibReq(GW, RQ), hibReq("00000000", "00000000"), hibReq("ffffffff", "ffffffff")]) }]));
addOfficial("to_client/commands/start_empty_strings_and_input", "ToClient", u("ToClientCommands", [{ checkpoint: ckpt("", 1, -1), inner: startCmd(config("", "", -1, abHex("")), [hibReq(GW, RQ)]) }]));
addOfficial("to_client/commands/stop", "ToClient", u("ToClientCommands", [{ checkpoint: ckpt("actor-1", 2, 5), inner: u("CommandStopActor") }]));
addOfficial("to_client/commands/batch_extremes", "ToClient", u("ToClientCommands", [
	{ checkpoint: ckpt("a", U32_MAX, I64_MAX), inner: startCmd(config("n", null, I64_MIN, null), []) },
	{ checkpoint: ckpt("a", U32_MAX, I64_MIN), inner: u("CommandStopActor") },
	{ checkpoint: ckpt(LONG_ACTOR_ID, 0, 1), inner: startCmd(config("n", "k", 1, abUtf8("input")), []) },
]));
addOfficial("to_client/commands/130_hibernating_requests", "ToClient", u("ToClientCommands", [{ checkpoint: ckpt("actor-9", 3, 4), inner: startCmd(config("echo", null, 5, null), Array.from({ length: 130 }, (_, i) => hibReq(GW, i.toString(16).padStart(8, "0")))) }]));
// ToClientAckEvents.
addOfficial("to_client/ack_events/empty", "ToClient", u("ToClientAckEvents", { lastEventCheckpoints: [] }));
addOfficial("to_client/ack_events/two", "ToClient", u("ToClientAckEvents", { lastEventCheckpoints: [ckpt("actor-1", 1, 17), ckpt("actor-2", 0, I64_MAX)] }));
// ToClientKvResponse: every KvResponseData.
const kvMeta = (version, ts) => ({ version: abHex(version), updateTs: BigInt(ts) });
addOfficial("to_client/kv_response/error", "ToClient", u("ToClientKvResponse", { requestId: 0, data: u("KvErrorResponse", { message: "kv.key_too_large ✗" }) }));
addOfficial("to_client/kv_response/get_empty", "ToClient", u("ToClientKvResponse", { requestId: 1, data: u("KvGetResponse", { keys: [], values: [], metadata: [] }) }));
addOfficial("to_client/kv_response/get_two", "ToClient", u("ToClientKvResponse", { requestId: U32_MAX, data: u("KvGetResponse", { keys: [abHex("6b31"), abHex("")], values: [abUtf8("value ü"), abHex("00")], metadata: [kvMeta("0102", "1764288000000"), kvMeta("", -1)] }) }));
addOfficial("to_client/kv_response/list", "ToClient", u("ToClientKvResponse", { requestId: 7, data: u("KvListResponse", { keys: [abHex("01")], values: [abHex(toHex(pattern(130, 3)))], metadata: [kvMeta("ff", I64_MAX)] }) }));
addOfficial("to_client/kv_response/put", "ToClient", u("ToClientKvResponse", { requestId: 2, data: u("KvPutResponse") }));
addOfficial("to_client/kv_response/delete", "ToClient", u("ToClientKvResponse", { requestId: 3, data: u("KvDeleteResponse") }));
addOfficial("to_client/kv_response/drop", "ToClient", u("ToClientKvResponse", { requestId: 4, data: u("KvDropResponse") }));
// ToClientPing.
for (const [label, ts] of [["0", "0"], ["min", I64_MIN], ["max", I64_MAX]]) {
	addOfficial(`to_client/ping/ts_${label}`, "ToClient", u("ToClientPing", { ts: BigInt(ts) }));
}

// ToServerInit, ActorName.
addOfficial("to_server/init/minimal", "ToServer", u("ToServerInit", { name: "", version: 0, totalSlots: 0, prepopulateActorNames: null, metadata: null }));
addOfficial("to_server/init/empty_names", "ToServer", u("ToServerInit", { name: "default", version: 1, totalSlots: 100, prepopulateActorNames: new Map(), metadata: "{}" }));
addOfficial("to_server/init/full", "ToServer", u("ToServerInit", {
	name: "pool-ü",
	version: U32_MAX,
	totalSlots: 100000,
	prepopulateActorNames: new Map([
		["zeta-counter", { metadata: '{"icon":"🚀","order":2}' }],
		["alpha", { metadata: "{}" }],
		["日本", { metadata: "not json: kept as a string" }],
		["", { metadata: "" }],
	]),
	metadata: '{"region":"eu-west","tags":["a","b"]}',
}));
// ToServerEvents: EventWrapper, every Event, ActorIntent, ActorState, StopCode.
const ev = (checkpoint, inner) => ({ checkpoint, inner });
const EVENTS = [
	["intent_sleep", u("EventActorIntent", { intent: u("ActorIntentSleep") })],
	["intent_stop", u("EventActorIntent", { intent: u("ActorIntentStop") })],
	["state_running", u("EventActorStateUpdate", { state: u("ActorStateRunning") })],
	["state_stopped_ok", u("EventActorStateUpdate", { state: u("ActorStateStopped", { code: "Ok", message: null }) })],
	["state_stopped_error_message", u("EventActorStateUpdate", { state: u("ActorStateStopped", { code: "Error", message: "actor crashed: ünïcode ✗" }) })],
	["set_alarm", u("EventActorSetAlarm", { alarmTs: 1764288000000n })],
	["clear_alarm", u("EventActorSetAlarm", { alarmTs: null })],
];
addOfficial("to_server/events/empty", "ToServer", u("ToServerEvents", []));
EVENTS.forEach(([label, e], i) => addOfficial(`to_server/events/${label}`, "ToServer", u("ToServerEvents", [ev(ckpt("actor-1", 1, i), e)])));
addOfficial("to_server/events/batch_all", "ToServer", u("ToServerEvents", EVENTS.map(([, e], i) => ev(ckpt(i % 2 ? LONG_ACTOR_ID : "b", i, i * 1000), e))));
// ToServerAckCommands, ToServerStopping, ToServerPong.
addOfficial("to_server/ack_commands/empty", "ToServer", u("ToServerAckCommands", { lastCommandCheckpoints: [] }));
addOfficial("to_server/ack_commands/two", "ToServer", u("ToServerAckCommands", { lastCommandCheckpoints: [ckpt("actor-1", 4, 9), ckpt("actor-2", U32_MAX, I64_MIN)] }));
addOfficial("to_server/stopping", "ToServer", u("ToServerStopping"));
for (const [label, ts] of [["0", "0"], ["minus_1", "-1"], ["max", I64_MAX]]) {
	addOfficial(`to_server/pong/ts_${label}`, "ToServer", u("ToServerPong", { ts: BigInt(ts) }));
}
// ToServerKvRequest: every KvRequestData and KvListQuery.
const kvReq = (name, requestId, data) => addOfficial(`to_server/kv_request/${name}`, "ToServer", u("ToServerKvRequest", { actorId: "actor-1", requestId, data }));
kvReq("get_empty", 0, u("KvGetRequest", { keys: [] }));
kvReq("get_two", 1, u("KvGetRequest", { keys: [abUtf8("state"), abHex("00ff")] }));
kvReq("list_all", 2, u("KvListRequest", { query: u("KvListAllQuery"), reverse: null, limit: null }));
kvReq("list_range", 3, u("KvListRequest", { query: u("KvListRangeQuery", { start: abHex("00"), end: abHex("ff"), exclusive: true }), reverse: false, limit: 10n }));
kvReq("list_range_inclusive_empty", 4, u("KvListRequest", { query: u("KvListRangeQuery", { start: abHex(""), end: abHex(""), exclusive: false }), reverse: true, limit: BigInt(U64_MAX) }));
kvReq("list_prefix", 5, u("KvListRequest", { query: u("KvListPrefixQuery", { key: abUtf8("conn/") }), reverse: null, limit: 0n }));
kvReq("put", 6, u("KvPutRequest", { keys: [abUtf8("a"), abUtf8("b")], values: [abHex(toHex(pattern(200, 1))), abHex("")] }));
kvReq("put_mismatched_lengths", 7, u("KvPutRequest", { keys: [abUtf8("a")], values: [] }));
kvReq("delete", 8, u("KvDeleteRequest", { keys: [abUtf8("conn/1")] }));
kvReq("delete_range", 9, u("KvDeleteRangeRequest", { start: abUtf8("a"), end: abUtf8("z") }));
kvReq("drop", U32_MAX, u("KvDropRequest"));
// The same control messages inside ToRunner, plain and on the pub/sub hop.
const someCommands = [{ checkpoint: ckpt("actor-1", 2, 3), inner: startCmd(config("echo", "k", 1, null), [hibReq(GW, RQ)]) }, { checkpoint: ckpt("actor-2", 0, 0), inner: u("CommandStopActor") }];
const someAcks = { lastEventCheckpoints: [ckpt("actor-1", 2, 8)] };
addOfficial("to_runner/commands", "ToRunner", u("ToClientCommands", someCommands));
addOfficial("to_runner/commands_empty", "ToRunner", u("ToClientCommands", []));
addOfficial("to_runner/ack_events", "ToRunner", u("ToClientAckEvents", someAcks));
addOfficial("versioned/to_runner/commands", "Versioned<ToRunner>", { version: PROTOCOL_VERSION, message: u("ToClientCommands", someCommands) });
addOfficial("versioned/to_runner/ack_events", "Versioned<ToRunner>", { version: PROTOCOL_VERSION, message: u("ToClientAckEvents", someAcks) });

// Rejections of the control plane.
const u32le = (n) => writeWhole(bare.writeU32, n);
const i64le = (n) => writeWhole(bare.writeI64, BigInt(n));
const CKPT = b(str("a"), u32le(1), i64le(2)); // ActorCheckpoint "a", generation 1, index 2
const CONFIG = b(str("n"), 0, i64le(0), 0); // ActorConfig "n", no key, ts 0, no input
const INIT = b(str("r"), u32le(1), u32le(1)); // ToServerInit up to prepopulateActorNames
reject("bool/init_actor_names_flag_2", "ToServer", b(0, INIT, 2));
reject("bool/init_metadata_flag_ff", "ToServer", b(0, INIT, 0, 0xff));
reject("bool/metadata_grace_flag_2", "ToClient", b(0, str("r"), i64le(1), i64le(2), 2));
reject("bool/actor_config_key_flag_80", "ToClient", b(1, 1, CKPT, 0, str("n"), 0x80));
reject("bool/actor_config_input_flag_2", "ToRunner", b(2, 1, CKPT, 0, str("n"), 0, i64le(0), 2));
reject("bool/stopped_message_flag_2", "ToServer", b(1, 1, CKPT, 1, 1, 1, 2));
reject("bool/set_alarm_flag_2", "ToServer", b(1, 1, CKPT, 2, 2));
reject("bool/kv_list_reverse_2", "ToServer", b(5, str("a"), u32le(0), 1, 0, 2));
reject("bool/kv_list_reverse_value_2", "ToServer", b(5, str("a"), u32le(0), 1, 0, 1, 2));
reject("bool/kv_list_limit_flag_2", "ToServer", b(5, str("a"), u32le(0), 1, 0, 0, 2));
reject("bool/kv_range_exclusive_2", "ToServer", b(5, str("a"), u32le(0), 1, 1, str("a"), str("b"), 2));
reject("tag/command_2", "ToClient", b(1, 1, CKPT, 2));
reject("tag/command_in_to_runner_ff", "ToRunner", b(2, 1, CKPT, 0xff));
reject("tag/event_3", "ToServer", b(1, 1, CKPT, 3));
reject("tag/actor_intent_2", "ToServer", b(1, 1, CKPT, 0, 2));
reject("tag/actor_state_2", "ToServer", b(1, 1, CKPT, 1, 2));
reject("tag/stop_code_2", "ToServer", b(1, 1, CKPT, 1, 1, 2, 0));
reject("tag/kv_list_query_3", "ToServer", b(5, str("a"), u32le(0), 1, 3, 0, 0));
reject("tag/kv_request_data_6", "ToServer", b(5, str("a"), u32le(0), 6));
reject("tag/kv_response_data_6", "ToClient", b(3, u32le(0), 6));
reject("tag/to_client_80", "ToClient", b(0x80));
reject("utf8/runner_id", "ToClient", b(0, rawStr(fromHex("c0af")), i64le(1), i64le(2), 0));
reject("utf8/checkpoint_actor_id", "ToClient", b(2, 1, rawStr(fromHex("ff")), u32le(1), i64le(2)));
reject("utf8/actor_config_name", "ToClient", b(1, 1, CKPT, 0, rawStr(fromHex("eda080")), 0, i64le(0), 0, 0));
reject("utf8/actor_config_key", "ToClient", b(1, 1, CKPT, 0, str("n"), 1, rawStr(fromHex("80")), i64le(0), 0, 0));
reject("utf8/init_name", "ToServer", b(0, rawStr(fromHex("f4908080")), u32le(1), u32le(1), 0, 0));
reject("utf8/actor_names_key", "ToServer", b(0, INIT, 1, 1, rawStr(fromHex("c3")), str("{}"), 0));
reject("utf8/actor_name_metadata", "ToServer", b(0, INIT, 1, 1, str("a"), rawStr(fromHex("7bfe7d")), 0));
reject("utf8/init_metadata", "ToServer", b(0, INIT, 0, 1, rawStr(fromHex("e080af"))));
reject("utf8/stopped_message", "ToServer", b(1, 1, CKPT, 1, 1, 1, 1, rawStr(fromHex("6279e9"))));
reject("utf8/kv_request_actor_id", "ToServer", b(5, rawStr(fromHex("80")), u32le(0), 5));
reject("utf8/kv_error_message", "ToClient", b(3, u32le(0), 0, rawStr(fromHex("c1bf"))));
reject("duplicate_key/actor_names", "ToServer", b(0, INIT, 1, 2, str("a"), str("{}"), str("a"), str("{}"), 0));
reject("duplicate_key/actor_names_empty", "ToServer", b(0, INIT, 1, 3, str(""), str(""), str("b"), str(""), str(""), str(""), 0));
reject("varint/commands_count_in_2_bytes", "ToClient", b(1, "8000"));
reject("varint/hibernating_count_in_2_bytes", "ToClient", b(1, 1, CKPT, 0, CONFIG, "8100", GW, RQ));
reject("varint/ack_count_in_2_bytes", "ToRunner", b(3, "8000"));
reject("varint/events_count_in_3_bytes", "ToServer", b(1, "808000"));
reject("varint/actor_names_count_in_2_bytes", "ToServer", b(0, INIT, 1, "8000", 0));
reject("varint/kv_keys_count_in_2_bytes", "ToServer", b(5, str("a"), u32le(0), 0, "8000"));
reject("varint/kv_key_len_in_2_bytes", "ToServer", b(5, str("a"), u32le(0), 3, 1, "8100", "6b"));
reject("varint/kv_metadata_count_too_large", "ToClient", b(3, u32le(0), 1, 0, 0, "ffffffffffffffffff01"));
reject("trailing/to_server_stopping_extra", "ToServer", b(3, 0));
reject("trailing/to_client_ping_extra", "ToClient", b(5, i64le(1), 0));
reject("trailing/kv_drop_extra", "ToServer", b(5, str("a"), u32le(0), 5, 0));
reject("trailing/to_runner_ack_events_extra", "ToRunner", b(3, 0, 0));
reject("truncated/init_total_slots", "ToServer", b(0, str("r"), u32le(1), "0100"));
reject("truncated/protocol_metadata", "ToClient", b(0, str("r"), i64le(1), "0200"));
reject("truncated/checkpoint_index", "ToClient", b(2, 1, str("a"), u32le(1), "0200000000"));
reject("truncated/commands_count_past_end", "ToClient", b(1, 3, CKPT, 1));
reject("truncated/hibernating_request", "ToClient", b(1, 1, CKPT, 0, CONFIG, 1, GW, "a0b1"));
reject("truncated/events_count_huge", "ToServer", b(1, "ffffffff0f", CKPT, 0, 0));
reject("truncated/alarm_ts", "ToServer", b(1, 1, CKPT, 2, 1, "0102"));
reject("truncated/kv_request_id", "ToServer", b(5, str("a"), "0000"));
reject("truncated/kv_list_limit", "ToServer", b(5, str("a"), u32le(0), 1, 0, 0, 1, "01"));
reject("truncated/kv_value_len_past_end", "ToClient", b(3, u32le(0), 1, 0, 1, 9, "0102"));
reject("truncated/kv_response_request_id", "ToClient", b(3, "000000"));
reject("truncated/to_client_tag_only", "ToClient", b(0));
reject("truncated/to_server_init_tag_only", "ToServer", b(0));

// ---------------------------------------------------------------------------------------------
// Differential set: deterministic mutations of small valid frames, each with the official verdict
// ---------------------------------------------------------------------------------------------

const rand = mulberry32(0x68777331); // "hws1"
const below = (n) => Math.floor(rand() * n);
const INTERESTING = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x7f, 0x80, 0x81, 0xbf, 0xc0, 0xc3, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xff];

function mutate(src) {
	const a = [...src];
	switch (below(7)) {
		case 0: // random byte
			if (a.length) a[below(a.length)] = below(256);
			break;
		case 1: // interesting byte
			if (a.length) a[below(a.length)] = INTERESTING[below(INTERESTING.length)];
			break;
		case 2: // truncate
			a.length = below(a.length + 1);
			break;
		case 3: // insert
			a.splice(below(a.length + 1), 0, rand() < 0.5 ? below(256) : INTERESTING[below(INTERESTING.length)]);
			break;
		case 4: // delete
			if (a.length) a.splice(below(a.length), 1);
			break;
		case 5: {
			// duplicate a range
			const i = below(a.length + 1);
			const j = Math.min(a.length, i + 1 + below(6));
			a.splice(j, 0, ...a.slice(i, j));
			break;
		}
		default: // two mutations
			return mutate(mutate(src));
	}
	return Uint8Array.from(a);
}

const differential = [];
const seen = new Set();
const bases = vectors.filter((v) => typeof v.bytes === "string" && v.bytes.length <= 2 * 160 && !v.type.startsWith("Versioned"));
const MUTANTS_PER_BASE = 24;
for (const base of bases) {
	const src = fromHex(base.bytes);
	const types = [base.type];
	// Also feed the bytes to a related type (type confusion between directions).
	const confusion = {
		ToClientTunnelMessage: "ToServerTunnelMessage",
		ToServerTunnelMessage: "ToClientTunnelMessage",
		ToRunner: "ToGateway",
		ToGateway: "ToRunner",
		ToClient: "ToServer",
		ToServer: "ToClient",
		ToRunnerPing: "ToGatewayPong",
		ToGatewayPong: "HibernatingRequest",
		HibernatingRequest: "ToRunnerPing",
	};
	types.push(confusion[base.type]);
	for (const type of types) {
		const key0 = `${type}:${base.bytes}`;
		if (!seen.has(key0)) {
			seen.add(key0);
			differential.push({ type, bytes: base.bytes, ...verdict(type, src) });
		}
	}
	for (let k = 0; k < MUTANTS_PER_BASE; k++) {
		const m = mutate(src);
		const key = `${base.type}:${toHex(m)}`;
		if (seen.has(key)) continue;
		seen.add(key);
		differential.push({ type: base.type, bytes: toHex(m), ...verdict(base.type, m) });
	}
}

// Small envelope bodies around the control variants (accepted and rejected alike).
for (const [type, hex] of [
	["ToRunner", "0200"], // ToClientCommands, empty list
	["ToRunner", "0300"], // ToClientAckEvents, empty list
	["ToRunner", "0201"], // ToClientCommands, truncated
	["ToClient", "0100"], // ToClientCommands
	["ToClient", "0200"], // ToClientAckEvents
	["ToClient", "050000000000000000"], // ToClientPing
	["ToClient", "0500"], // ToClientPing, truncated
	["ToServer", "0100"], // ToServerEvents
	["ToServer", "0200"], // ToServerAckCommands
	["ToServer", "03"], // ToServerStopping
	["ToServer", "03ff"], // ToServerStopping + trailing byte
	["ToServer", "04ffffffffffffffff"], // ToServerPong
]) {
	const key = `${type}:${hex}`;
	if (seen.has(key)) continue; // already a vector or a mutant
	seen.add(key);
	differential.push({ type, bytes: hex, ...verdict(type, fromHex(hex)) });
}

// ---------------------------------------------------------------------------------------------
// Output: one entry per line, so diffs stay readable
// ---------------------------------------------------------------------------------------------

function write(file, header, key, entries) {
	const lines = entries.map((e) => JSON.stringify(e));
	const head = JSON.stringify({ generator: "tests/vectors/generate.mjs", package: PACKAGE, ...header });
	const text = `${head.slice(0, -1)},\n"${key}": [\n${lines.join(",\n")}\n]}\n`;
	JSON.parse(text); // well-formed
	writeFileSync(join(OUT_DIR, file), text);
	console.log(`${file}: ${entries.length} entries, ${text.length} bytes`);
}

const PATTERN_DOC = "byte[i] = (31 * i + seed) mod 256";
write("vectors.json", { pattern: PATTERN_DOC }, "vectors", vectors);
write("rejections.json", { pattern: PATTERN_DOC }, "rejections", rejections);
write("quirks.json", {}, "quirks", quirks);
const counts = differential.reduce((c, d) => {
	const k = d.reject ? "reject" : d.accept ? "accept" : "accept_outside_subset";
	c[k] = (c[k] ?? 0) + 1;
	return c;
}, {});
write("differential.json", { seed: "0x68777331", mutants_per_base: MUTANTS_PER_BASE, counts }, "cases", differential);
