//! A cluster of engine nodes over NATS (feature `nats`): clients and runners on any node, tunnel
//! frames between nodes on NATS subjects, shared state in JetStream KV.
//!
//! Each node runs one [`Control`](crate::control::Control) in cluster mode
//! ([`ControlConfig::cluster`](crate::control::ControlConfig::cluster); the engine side is
//! described there) with its own gateway id. This module carries the engines' cluster actions
//! over NATS: [`subjects`] names the subjects and checks frame sizes against the server's
//! `max_payload`, [`state`] keeps the shared state in JetStream KV, and [`server`] runs a real
//! `nats-server` for tests and demos. `docs/cluster.md` describes the whole design.

pub mod node;
mod placement;
pub mod server;
pub mod state;
pub mod subjects;

pub use node::{Node, NodeConfig, NodeError, NodeStats};
pub use server::{NatsServer, ServerError};
pub use state::{Claim, Placement, PlacementState, SharedState, StateError};

/// The NATS client this module is built on (its version is the one to use with it).
pub use async_nats;
