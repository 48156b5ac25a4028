//! Verification code, kept apart from the product: the deterministic simulator ([`sim`]), the
//! fuzz harness functions ([`fuzz`]), a quinn-style test [`pair`] of both engines in memory and
//! the [`msg`] builders, behind feature `sim` (the builders also in the crate's own unit tests)
//! and hidden from the documentation.
//! Unit tests, integration tests, the fuzz targets in `fuzz/` and `examples/sim.rs` all use them
//! from here (also reachable as `hibernating_ws::sim` and `hibernating_ws::fuzz`).
//!
//! Each engine is checked twice, on purpose: a proptest model (`tests/*_model.rs`) shrinks a
//! failure to a minimal operation sequence and runs on stable in every `cargo test`, while the
//! fuzz harness's shadow model follows libFuzzer's coverage into inputs no hand-written strategy
//! draws (malformed frames, stale clocks, odd configurations). The engines' own
//! `check_invariants` is shared by both.

#[cfg(feature = "sim")]
pub mod fuzz;
pub mod msg;
#[cfg(feature = "sim")]
pub mod pair;
#[cfg(feature = "sim")]
pub mod sim;
