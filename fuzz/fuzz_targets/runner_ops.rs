//! Arbitrary bytes drawn into a runner configuration and operation sequence; in-order exactly-once delivery, durable-only acks, limits and the timer contract must hold.
//! See `hibernating_ws::fuzz::runner_ops`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hibernating_ws::fuzz::runner_ops(data));
