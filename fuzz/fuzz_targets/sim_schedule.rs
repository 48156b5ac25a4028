//! Arbitrary bytes choose the schedule and the faults of a small simulation; the simulator's
//! invariants must hold. See `hibernating_ws::sim::fuzz_schedule`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hibernating_ws::sim::fuzz_schedule(data));
