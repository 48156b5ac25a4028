//! Adapters that drive the engines with real I/O and a real clock (work in progress).
