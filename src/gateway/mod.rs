//! The gateway engine (work in progress).
