//! Arbitrary bytes drawn into a gateway configuration and operation sequence; invariants, limits, the action protocol and the timer contract must hold.
//! See `hibernating_ws::fuzz::gateway_ops`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hibernating_ws::fuzz::gateway_ops(data));
