//! The control messages between the gateway's orchestrator and a runner, sent as JSON text
//! frames on the runner's WebSocket (tunnel frames are the binary frames). They stand for what
//! Rivet's engine does around the tunnel: placing actors, starting and stopping them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Counters a runner reports (cumulative for its lifetime).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerReport {
    /// Messages handed to the app (`Action::Message`), duplicates of a crash included.
    pub delivered: u64,
    /// Duplicates the runner engine dropped.
    pub duplicates_dropped: u64,
    /// Gaps the runner engine saw.
    pub gaps: u64,
    /// Persists completed.
    pub persists: u64,
    /// Acks published.
    pub acks: u64,
    /// Sockets restored after a wake.
    pub restored: u64,
    /// Frames the runner engine dropped as malformed.
    pub malformed: u64,
    /// Socket closes seen by the runner, by reason.
    pub closes: BTreeMap<String, u64>,
}

/// One control message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Control {
    /// Runner → gateway, first message: who I am.
    Hello { runner: String },
    /// Gateway → runner: start the actor; `hibernating` lists its hibernating requests as
    /// `(gateway id, request id)` (the hibernating-request records).
    Start {
        actor: String,
        hibernating: Vec<([u8; 4], [u8; 4])>,
    },
    /// Gateway → runner: put the actor to sleep.
    Stop { actor: String },
    /// Runner → gateway: the actor is starting here: wake its requests (their tunnel messages
    /// queue in the runner until it restored the actor's sockets).
    Started { actor: String },
    /// Runner → gateway: the actor stopped (every socket settled).
    Stopped { actor: String },
    /// Runner → gateway: the actor's start was stopped because its storage did not load; its
    /// requests stay hibernating and a later start retries.
    StartFailed { actor: String, error: String },
    /// Runner → gateway: counters.
    Stats(RunnerReport),
}

impl Control {
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_text(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}
