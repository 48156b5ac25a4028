//! Fuzzing harness functions (work in progress).
