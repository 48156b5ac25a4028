//! Arbitrary bytes decoded as every wire message type, plain and versioned; whatever decodes must re-encode to the same bytes.
//! See `hibernating_ws::fuzz::wire_decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hibernating_ws::fuzz::wire_decode(data));
