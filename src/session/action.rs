//! What a runner session asks its caller to do: [`Action`].

use alloc::string::String;
use alloc::vec::Vec;

use crate::runner;
use crate::wire::{ActorConfig, HibernatingRequest, ProtocolMetadata, ToClientKvResponse};

/// Something the caller must do, drained with [`Session::poll_action`](super::Session::poll_action),
/// in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Send `frame` (a plain `ToServer` message) on the runner WebSocket.
    Send {
        /// The bytes.
        frame: Vec<u8>,
    },
    /// The engine accepted the handshake.
    Connected {
        /// The runner id the engine gave.
        runner_id: String,
        /// Timings the engine asks for.
        metadata: ProtocolMetadata,
        /// Whether the id differs from the previous one: every actor of the previous id was
        /// stopped.
        new_id: bool,
    },
    /// Start the actor: load its persisted socket metadata and call
    /// [`Session::restore`](super::Session::restore) (with an empty list if there is none).
    /// The engine was already told it runs; its tunnel messages queue until the restore.
    StartActor {
        /// The actor.
        actor_id: String,
        /// Its generation.
        generation: u32,
        /// Its configuration.
        config: ActorConfig,
        /// The gateway's list of its hibernating requests.
        hibernating_requests: Vec<HibernatingRequest>,
    },
    /// The actor stopped here: every hibernatable socket was persisted, the others closed.
    ActorStopped {
        /// The actor.
        actor_id: String,
        /// Its generation.
        generation: u32,
    },
    /// A socket-level action of the tunnel engine: `Open`, `Restored`, `Message`, `Persist`,
    /// `DeleteMetadata`, `Closed` (its publishes become [`Action::Send`]).
    Runner(runner::Action),
    /// The engine answered a KV request.
    KvResponse(ToClientKvResponse),
    /// The runner was disconnected longer than the engine's lost threshold: every actor was
    /// stopped (the engine has stopped them too).
    Lost,
}
