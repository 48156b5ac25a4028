//! The runner engine (work in progress).
