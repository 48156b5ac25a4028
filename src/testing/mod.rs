//! Verification code, kept apart from the product: the deterministic simulator ([`sim`]), the
//! fuzz harness functions ([`fuzz`]) and a quinn-style test [`pair`] of both engines in memory,
//! behind feature `sim` and hidden from the documentation.
//! Unit tests, integration tests, the fuzz targets in `fuzz/` and `examples/sim.rs` all use them
//! from here (also reachable as `hibernating_ws::sim` and `hibernating_ws::fuzz`).
//!
//! Each engine is checked twice, on purpose: a proptest model (`tests/*_model.rs`) shrinks a
//! failure to a minimal operation sequence and runs on stable in every `cargo test`, while the
//! fuzz harness's shadow model follows libFuzzer's coverage into inputs no hand-written strategy
//! draws (malformed frames, stale clocks, odd configurations). The engines' own
//! `check_invariants` is shared by both.

pub mod fuzz;
pub mod pair;
pub mod sim;
