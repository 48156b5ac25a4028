//! Arbitrary bytes choose the schedule and the faults of a small simulation; the simulator's
//! invariants must hold. See `hws::sim::fuzz_schedule`.
//!
//! Not built yet: its `[[bin]]` in fuzz/Cargo.toml is commented out until `hws::sim::fuzz_schedule`
//! exists (the `sim` branch provides it).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hws::sim::fuzz_schedule(data));
