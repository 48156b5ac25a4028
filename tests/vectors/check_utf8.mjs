#!/usr/bin/env node
// One-off check (~2 minutes, not run by CI): bare-ts decodes strings under 256 bytes with its own
// UTF-8 decoder, longer ones with a fatal TextDecoder (the same rules as Rust's str::from_utf8).
// This compares the former with the latter on every 1-, 2- and 3-byte input (3-byte inputs with a
// non-ASCII first byte), on 4-byte inputs with a representative set of last two bytes, and on
// mixes of ASCII and truncated sequences. Prints the number of inputs and of differences.
//
//   cd tests/vectors && npm ci && node check_utf8.mjs

import * as bare from "@rivetkit/bare-ts";
const td = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const cfg = bare.Config({});
let n = 0, diff = 0;
function check(arr) {
  n++;
  const u = Uint8Array.from(arr);
  let a, b;
  try { a = bare.readFixedString(new bare.ByteCursor(u, cfg), u.length); } catch { a = null; }
  try { b = td.decode(u); } catch { b = null; }
  if (a !== b) { if (diff++ < 10) console.log("DIFF", Buffer.from(u).toString("hex"), a, b); }
}
for (let x = 0; x < 256; x++) check([x]);
for (let x = 0; x < 65536; x++) check([x >> 8, x & 255]);
for (let x = 0x800000; x < 0x1000000; x++) check([x >> 16, (x >> 8) & 255, x & 255]); // lead byte >= 0x80
const rep = [0x00, 0x3f, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xe0, 0xf0, 0xff];
for (let a = 0xc0; a < 256; a++) for (let b2 = 0; b2 < 256; b2++) for (const c of rep) for (const d of rep) check([a, b2, c, d]);
// multi-char strings mixing ASCII and truncations
for (let a = 0x80; a < 256; a++) for (let b2 = 0; b2 < 256; b2++) { check([0x41, a, b2]); check([a, b2, 0x41]); }
console.log("checked", n, "differences", diff);
