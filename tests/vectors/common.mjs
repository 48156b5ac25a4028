// What the vector generators share (generate.mjs: runner protocol v7; envoy.mjs: envoy v8):
// hex and byte helpers, the seeded PRNG of the differential sets, the value shape of the control-plane vectors, and whole-buffer
// encoding and decoding with an official codec.
//
// The bare-ts module is passed in, never imported here: each generator imports it after
// setting NODE_ENV=development (bare-ts checks its encoder inputs only in development mode),
// and a static import here would load it before that.

export const toHex = (u8) => Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength).toString("hex");
export const utf8 = (s) => new TextEncoder().encode(s);
export const ab = (u8) => u8.buffer.slice(u8.byteOffset, u8.byteOffset + u8.byteLength);
export const snake = (k) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * The control-plane value shape: an official value as hws's `Serialize` impls describe the Rust
 * value (serde_json), with every number as a decimal string. Struct fields in snake case; data as
 * a list of byte values; maps as objects; a union as `{"<official tag>": value}`, or the bare tag
 * when it has no body; an enum as its name.
 */
export function gen(v) {
	if (v === null) return null;
	if (typeof v === "bigint" || typeof v === "number") return v.toString();
	if (v instanceof ArrayBuffer) return [...new Uint8Array(v)].map(String);
	if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [k, gen(x)]));
	if (Array.isArray(v)) return v.map(gen);
	if (typeof v === "object") {
		const keys = Object.keys(v);
		if (keys.length === 2 && keys[0] === "tag" && keys[1] === "val") {
			return v.val === null ? v.tag : { [v.tag]: gen(v.val) };
		}
		return Object.fromEntries(Object.entries(v).map(([k, x]) => [snake(k), gen(x)]));
	}
	return v;
}

/** mulberry32 with a fixed `seed`: a deterministic stream of numbers in [0, 1), not random. */
export function mulberry32(seed) {
	let a = seed >>> 0;
	return () => {
		a = (a + 0x6d2b79f5) >>> 0;
		let t = a;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}

/**
 * Whole-buffer codec functions over the bare-ts module `bare`: `readWhole(read, bytes)` runs a
 * `read*` function over a whole buffer, rejecting trailing bytes as `decode*` does;
 * `writeWhole(write, x)` encodes with a `write*` function (into a cursor of `size` bytes to
 * start with) and returns exactly the written bytes.
 */
export function wholeCodec(bare, size) {
	const readWhole = (read, bytes) => {
		const bc = new bare.ByteCursor(bytes, bare.Config({}));
		const result = read(bc);
		if (bc.offset < bc.view.byteLength) throw new bare.BareError(bc.offset, "remaining bytes");
		return result;
	};
	const writeWhole = (write, x) => {
		const bc = new bare.ByteCursor(new Uint8Array(size), bare.Config({}));
		write(bc, x);
		return new Uint8Array(bc.view.buffer, bc.view.byteOffset, bc.offset).slice();
	};
	return { readWhole, writeWhole };
}
