//! Arbitrary bytes drawn into an operation sequence over a control engine, its gateway and two runner sessions; invariants, frame acceptance between the two ends and in-order delivery must hold.
//! See `hibernating_ws::fuzz::control_ops`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hibernating_ws::fuzz::control_ops(data));
