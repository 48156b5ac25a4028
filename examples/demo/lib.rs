//! The demo's building blocks, shared by the demo (`demo/demo.rs`) and the end-to-end tests
//! (`tests/e2e_*.rs` include this file with `#[path]`).
//!
//! * [`payload`]: the seeded message stream and its digest.
//! * [`auth`]: the runner hop's token and the random request ids.
//! * [`net`]: the accept loop that survives accept errors.
//! * [`keepalive`]: pings, silent connections and protocol errors on the gateway's WebSockets.
//! * [`storage`]: one file per actor, written atomically.
//! * [`gateway`]: the gateway process: hws's control engine (`driver::control`) behind one
//!   listener; [`accept`] its connections, [`hooks`] what the engine tells it, [`schedule`] the
//!   demo's sleeps and runner kill.
//! * [`runner`]: the runner process: a `driver::session` runner (runner protocol v7, as the
//!   official runner) and [`app`], the actor app with its storage.
//! * [`client`]: the client that streams messages and checks the echoes.
//! * [`scenario`]: the whole demo in one process (or with the runner as a child process).
//! * [`report`]: the report it prints.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::missing_errors_doc,
    clippy::missing_panics_doc,
    // A demo reads top to bottom: short names are fine here.
    clippy::many_single_char_names,
    clippy::similar_names
)]

pub mod accept;
pub mod app;
pub mod args;
pub mod auth;
pub mod client;
pub mod gateway;
pub mod hooks;
pub mod keepalive;
pub mod net;
pub mod payload;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod schedule;
pub mod storage;
