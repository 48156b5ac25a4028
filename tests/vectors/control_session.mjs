#!/usr/bin/env node
// Generates control_session.json: a runner session's conversation with an engine, every frame
// encoded by the official codec (@rivetkit/engine-runner-protocol, pinned in package.json).
//
//   cd tests/vectors && npm ci && node control_session.mjs
//
// Each step is either an engine frame the runner session receives (`to_client`) or an app call
// (`call`), followed by the exact frames the session must send (`expect_to_server`), in order.
// tests/control_vectors.rs replays it against hibernating_ws::session::Session. Deterministic:
// regenerating reproduces the committed file byte for byte.

import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

process.env.NODE_ENV = "development";
const p = await import("@rivetkit/engine-runner-protocol");

const hex = (u8) => Buffer.from(u8).toString("hex");
const buf = (bytes) => new Uint8Array(bytes).buffer;
const toClient = (tag, val) => hex(p.encodeToClient({ tag, val }));
const toServer = (tag, val) => hex(p.encodeToServer({ tag, val }));
const cp = (actorId, generation, index) => ({ actorId, generation, index: BigInt(index) });

const ACTOR = "actor-1";
const init = toServer("ToServerInit", {
	name: "default",
	version: 1,
	totalSlots: 4,
	prepopulateActorNames: null,
	metadata: null,
});
const clientInit = toClient("ToClientInit", {
	runnerId: "runner-a",
	metadata: { runnerLostThreshold: 15000n, actorStopThreshold: 30000n, serverlessDrainGracePeriod: null },
});
const running = (index) => ({ checkpoint: cp(ACTOR, 0, index), inner: { tag: "EventActorStateUpdate", val: { state: { tag: "ActorStateRunning", val: null } } } });
const sleep = (index) => ({ checkpoint: cp(ACTOR, 0, index), inner: { tag: "EventActorIntent", val: { intent: { tag: "ActorIntentSleep", val: null } } } });
const stopped = (index) => ({ checkpoint: cp(ACTOR, 0, index), inner: { tag: "EventActorStateUpdate", val: { state: { tag: "ActorStateStopped", val: { code: p.StopCode.Ok, message: null } } } } });
const start = toClient("ToClientCommands", [
	{
		checkpoint: cp(ACTOR, 0, 0),
		inner: {
			tag: "CommandStartActor",
			val: {
				config: { name: "chat", key: "room-7", createTs: 1700000000000n, input: buf([1, 2, 3]) },
				hibernatingRequests: [{ gatewayId: buf([1, 2, 3, 4]), requestId: buf([5, 6, 7, 8]) }],
			},
		},
	},
]);
const stop = toClient("ToClientCommands", [{ checkpoint: cp(ACTOR, 0, 1), inner: { tag: "CommandStopActor", val: null } }]);
const ackCommands = (index) => toServer("ToServerAckCommands", { lastCommandCheckpoints: [cp(ACTOR, 0, index)] });

const steps = [
	{ call: "connected", expect_to_server: [init] },
	{ to_client: clientInit, expect_to_server: [] },
	{ to_client: start, expect_to_server: [toServer("ToServerEvents", [running(0)]), ackCommands(0)] },
	// A resent start (same checkpoint) is carried out once: only the ack is repeated.
	{ to_client: start, expect_to_server: [ackCommands(0)] },
	// The app has no metadata for the listed request: the runner closes it (restore case 2).
	{
		call: "restore",
		expect_to_server: [
			toServer("ToServerTunnelMessage", {
				messageId: { gatewayId: buf([1, 2, 3, 4]), requestId: buf([5, 6, 7, 8]), messageIndex: 0 },
				messageKind: {
					tag: "ToServerWebSocketClose",
					val: { code: 1000, reason: "ws.meta_not_found_during_restore", hibernate: false },
				},
			}),
		],
	},
	{ to_client: toClient("ToClientPing", { ts: 1234567n }), expect_to_server: [toServer("ToServerPong", { ts: 1234567n })] },
	{ call: "sleep", expect_to_server: [toServer("ToServerEvents", [sleep(1)])] },
	{ to_client: toClient("ToClientAckEvents", { lastEventCheckpoints: [cp(ACTOR, 0, 0)] }), expect_to_server: [] },
	{ to_client: stop, expect_to_server: [ackCommands(1), toServer("ToServerEvents", [stopped(2)])] },
	{ to_client: stop, expect_to_server: [ackCommands(1)] },
	// Reconnect with the same runner id: the unacknowledged events are sent again, in order.
	{ call: "disconnected", expect_to_server: [] },
	{ call: "connected", expect_to_server: [init] },
	{ to_client: clientInit, expect_to_server: [toServer("ToServerEvents", [sleep(1), stopped(2)])] },
	{ to_client: toClient("ToClientAckEvents", { lastEventCheckpoints: [cp(ACTOR, 0, 2)] }), expect_to_server: [] },
	{ call: "disconnected", expect_to_server: [] },
	{ call: "connected", expect_to_server: [init] },
	{ to_client: clientInit, expect_to_server: [] },
];

const out = { package: "@rivetkit/engine-runner-protocol@2.3.10", actor: ACTOR, steps };
writeFileSync(join(dirname(fileURLToPath(import.meta.url)), "control_session.json"), `${JSON.stringify(out, null, 1)}\n`);
