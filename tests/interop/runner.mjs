// An echo actor hosted by the official Rivet TypeScript runner (@rivetkit/engine-runner, pinned in
// package.json), connected to a hibernating-ws engine. Spawned by tests/interop.rs; see README.md.
//
// The actor follows the SDK's hibernatable WebSocket contract, plus what the SDK's quirks require
// (docs/interop.md):
//
// * persist the socket's record when it opens (before the SDK answers the open);
// * on every message: process it (append it to the committed log, echo it), then persist the
//   index together with the log chunk, and only then ack that index (debounced);
// * on close: flush, record the close code and reason, delete the record;
// * on start: load the records, restore them, then re-ack each restored socket's persisted index
//   (the SDK drops replayed duplicates without acking them);
// * on stop: ignore every later message (the SDK still delivers them), flush and ack.
//
// Storage is the runner protocol's actor KV, served by the engine, so the test can read what the
// actor committed. Keys: `hws/<request>` the record (JSON), `log/<request>/<seq>` a committed chunk
// (JSON array of payloads), `closed/<request>` the close the actor saw (JSON).
//
// Control messages (text, processed and committed like any other message):
//   !sleep     the actor asks to sleep (runner.sleepActor)
//   !forget    delete this socket's record and never persist it again (lost metadata)
//   !noack     persist without acking until the next restore (a lost ack)
//   !noreack   do not re-ack this socket after a restore (negative control of the re-ack)
//
// Environment: HWS_INTEROP_ENDPOINT (http://127.0.0.1:PORT, required), HWS_INTEROP_VERBOSE=1 to
// copy the SDK's debug log to stderr. Events for the test go to stdout as JSON lines.

import { Runner } from "@rivetkit/engine-runner";

const ENDPOINT = process.env.HWS_INTEROP_ENDPOINT;
const VERBOSE = process.env.HWS_INTEROP_VERBOSE === "1";
if (!ENDPOINT) {
	console.error("HWS_INTEROP_ENDPOINT is not set");
	process.exit(2);
}

// Persist after this many unpersisted messages, or this long after the first one.
const FLUSH_MESSAGES = 256;
const FLUSH_DELAY_MS = 20;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function emit(event) {
	process.stdout.write(`${JSON.stringify(event)}\n`);
}

// The SDK logs through a pino-like logger. Warnings, errors and the few info lines that show a
// quirk at work are forwarded to the test; the rest goes to stderr when verbose.
const FORWARDED_INFO = new Set(["received duplicate hibernating websocket message"]);
function makeLogger(bindings = {}) {
	const at = (level) => (obj, maybeMsg) => {
		const msg = typeof obj === "string" ? obj : (obj?.msg ?? maybeMsg ?? "");
		if (level === "warn" || level === "error" || level === "fatal" || FORWARDED_INFO.has(msg)) {
			emit({ sdk: level, msg });
		}
		if (VERBOSE) {
			console.error(level, msg, typeof obj === "object" ? safeJson({ ...bindings, ...obj }) : "");
		}
	};
	return {
		level: VERBOSE ? "debug" : "info",
		child: (more) => makeLogger({ ...bindings, ...more }),
		trace: at("trace"),
		debug: at("debug"),
		info: at("info"),
		warn: at("warn"),
		error: at("error"),
		fatal: at("fatal"),
	};
}

function safeJson(value) {
	try {
		return JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
	} catch {
		return "<unserializable>";
	}
}

const hex = (buf) => Buffer.from(new Uint8Array(buf)).toString("hex");
const fromHex = (s) => {
	const b = Buffer.from(s, "hex");
	return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
};
const key = (s) => encoder.encode(s);
const json = (v) => encoder.encode(JSON.stringify(v));

// ------------------------------------------------------------------------------------------------
// Actor state (in memory; the durable copy is in the engine's KV)
// ------------------------------------------------------------------------------------------------

/** actorId -> { stopping, metas: Map<requestHex, meta>, sockets: Map<requestHex, Socket> } */
const actors = new Map();

class Socket {
	constructor(runner, actorId, gatewayId, requestId, path, headers, meta) {
		this.runner = runner;
		this.actorId = actorId;
		this.gatewayId = gatewayId;
		this.requestId = requestId;
		this.req = hex(requestId);
		this.path = path;
		this.headers = headers;
		// Durable state.
		this.persistedIndex = meta?.serverMessageIndex ?? 0;
		this.seq = meta?.seq ?? 0;
		this.noReack = meta?.noReack ?? false;
		// Volatile state.
		this.lastProcessed = this.persistedIndex;
		this.chunk = [];
		this.forgotten = false;
		this.noAck = false;
		this.closed = false;
		this.timer = undefined;
		this.metaDirty = false;
		this.running = undefined;
	}

	meta(index) {
		return {
			gatewayId: hex(this.gatewayId),
			requestId: this.req,
			serverMessageIndex: index,
			clientMessageIndex: 0,
			path: this.path,
			headers: this.headers,
			seq: this.seq,
			noReack: this.noReack,
		};
	}

	isDirty() {
		return !this.forgotten && (this.chunk.length > 0 || this.lastProcessed !== this.persistedIndex || this.metaDirty);
	}

	/**
	 * Persists what was processed (the record with the last processed index, and the log chunk),
	 * then acks that index. One write at a time: what arrives meanwhile goes into the next one.
	 * Resolves when the write in progress (or a new one) is done.
	 */
	flush() {
		if (this.timer) {
			clearTimeout(this.timer);
			this.timer = undefined;
		}
		if (!this.running) {
			this.running = this.drain()
				.catch((err) => emit({ app: "persist_failed", req: this.req, error: String(err) }))
				.finally(() => {
					this.running = undefined;
				});
		}
		return this.running;
	}

	/** Flushes until nothing processed is left unpersisted. */
	async flushAll() {
		while (this.running || this.isDirty()) {
			await this.flush();
		}
	}

	async drain() {
		while (this.isDirty()) {
			const chunk = this.chunk;
			const index = this.lastProcessed;
			this.chunk = [];
			this.metaDirty = false;
			const entries = [];
			if (chunk.length > 0) {
				entries.push([key(`log/${this.req}/${String(this.seq).padStart(10, "0")}`), json(chunk)]);
				this.seq += 1;
			}
			entries.push([key(`hws/${this.req}`), json(this.meta(index))]);
			const ack = !this.noAck;
			await this.runner.kvPut(this.actorId, entries);
			this.persistedIndex = index;
			if (ack) {
				this.runner.sendHibernatableWebSocketMessageAck(this.gatewayId, this.requestId, index);
			}
		}
	}

	schedule() {
		if (this.chunk.length >= FLUSH_MESSAGES) {
			this.flush();
		} else if (!this.timer) {
			this.timer = setTimeout(() => {
				this.timer = undefined;
				this.flush();
			}, FLUSH_DELAY_MS);
		}
	}
}

function attach(runner, actorId, ws, socket) {
	const actor = actors.get(actorId);
	ws.addEventListener("message", (ev) => {
		if (!actor || actor.stopping || actor !== actors.get(actorId)) {
			// The SDK delivers messages after onActorStop: not processed, not persisted, not acked,
			// so the gateway replays them to the next instance.
			emit({ app: "ignored_after_stop", actor: actorId, req: socket.req, index: ev.rivetMessageIndex });
			return;
		}
		const text = typeof ev.data === "string" ? ev.data : decoder.decode(ev.data);
		socket.lastProcessed = ev.rivetMessageIndex;
		socket.chunk.push(text);
		ws.send(text);
		if (text === "!sleep") {
			socket.flush();
			runner.sleepActor(actorId);
		} else if (text === "!forget") {
			socket.forgotten = true;
			Promise.resolve(socket.running)
				.then(() => runner.kvDelete(actorId, [key(`hws/${socket.req}`)]))
				.catch((err) => emit({ app: "forget_failed", error: String(err) }));
		} else if (text === "!noack") {
			socket.flush();
			socket.noAck = true;
		} else if (text === "!noreack") {
			socket.noReack = true;
			socket.metaDirty = true;
			socket.flush();
		} else {
			socket.schedule();
		}
	});
	ws.addEventListener("close", (ev) => {
		socket.closed = true;
		actor?.sockets.delete(socket.req);
		emit({ app: "closed", actor: actorId, req: socket.req, code: ev.code, reason: ev.reason });
		if (socket.forgotten) return;
		socket
			.flushAll()
			.then(async () => {
				await runner.kvPut(actorId, [[key(`closed/${socket.req}`), json({ code: ev.code, reason: ev.reason })]]);
				await runner.kvDelete(actorId, [key(`hws/${socket.req}`)]);
			})
			.catch((err) => emit({ app: "close_persist_failed", error: String(err) }));
	});
}

// ------------------------------------------------------------------------------------------------
// Runner
// ------------------------------------------------------------------------------------------------

const runner = new Runner({
	logger: makeLogger(),
	version: 1,
	endpoint: ENDPOINT,
	namespace: "default",
	totalSlots: 1000,
	runnerName: "hws-interop",
	prepopulateActorNames: {},
	metadata: {},
	noAutoShutdown: true,
	onConnected: () => emit({ app: "connected" }),
	onDisconnected: (code, reason) => emit({ app: "disconnected", code, reason }),
	onShutdown: () => emit({ app: "shutdown" }),
	fetch: async () => new Response("not found", { status: 404 }),
	hibernatableWebSocket: {
		canHibernate: () => true,
	},
	websocket: async (runner, actorId, ws, gatewayId, requestId, _request, path, headers, isHibernatable, isRestoring) => {
		const actor = actors.get(actorId);
		const req = hex(requestId);
		const meta = isRestoring ? actor?.metas.get(req) : undefined;
		const socket = new Socket(runner, actorId, gatewayId, requestId, path, headers, meta);
		// Listeners first: the SDK dispatches events right after this handler resolves.
		attach(runner, actorId, ws, socket);
		actor?.sockets.set(req, socket);
		if (!isRestoring && isHibernatable) {
			// Persist the record before the SDK answers the open.
			await runner.kvPut(actorId, [[key(`hws/${req}`), json(socket.meta(0))]]);
		}
		emit({ app: isRestoring ? "restoring" : "opened", actor: actorId, req, path, index: socket.persistedIndex });
	},
	onActorStart: async (actorId, generation) => {
		const actor = { stopping: false, metas: new Map(), sockets: new Map() };
		actors.set(actorId, actor);
		const entries = await runner.kvListPrefix(actorId, key("hws/"));
		const metas = [];
		for (const [, value] of entries) {
			const m = JSON.parse(decoder.decode(value));
			actor.metas.set(m.requestId, m);
			metas.push({
				gatewayId: fromHex(m.gatewayId),
				requestId: fromHex(m.requestId),
				clientMessageIndex: m.clientMessageIndex,
				serverMessageIndex: m.serverMessageIndex,
				path: m.path,
				headers: m.headers,
			});
		}
		await runner.restoreHibernatingRequests(actorId, metas);
		// The SDK drops replayed messages at or below the restored index without acking them, and an
		// ack sent from inside the restoring handler is dropped (its pending record does not exist
		// yet). Re-ack now, so a replay of messages that were persisted but never acked is released.
		for (const socket of actor.sockets.values()) {
			if (socket.closed || socket.noReack) continue;
			runner.sendHibernatableWebSocketMessageAck(socket.gatewayId, socket.requestId, socket.persistedIndex);
			emit({ app: "reacked", actor: actorId, req: socket.req, index: socket.persistedIndex });
		}
		emit({ app: "started", actor: actorId, generation, restored: metas.length });
	},
	onActorStop: async (actorId, generation) => {
		const actor = actors.get(actorId);
		if (!actor) return;
		actor.stopping = true;
		// Flush and ack now: once onActorStop returns the SDK forgets the actor and drops acks.
		await Promise.all([...actor.sockets.values()].map((s) => s.flushAll()));
		actors.delete(actorId);
		emit({ app: "stopped", actor: actorId, generation });
	},
});

process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
process.on("SIGTERM", () => process.exit(0));

await runner.start();
emit({ app: "started_runner" });
