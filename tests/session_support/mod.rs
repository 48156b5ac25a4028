//! Support for `tests/driver_session.rs`: hws's engine behind a runner listener, and a test app
//! on `driver::session`.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

pub mod app;
#[path = "../common/mod.rs"]
pub mod common;
pub mod engine;
