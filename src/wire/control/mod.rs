//! The control plane of runner protocol v7: the runner's handshake, actor commands and events,
//! their checkpoints and acknowledgements, and the runner-socket ping/pong.
//!
//! These messages travel on the runner's own WebSocket (inside [`ToClient`](super::ToClient) and
//! [`ToServer`](super::ToServer)); commands and event acks also cross the pub/sub hop inside
//! [`ToRunner`](super::ToRunner). Field order and union tag order follow the official schema.
//! JSON-carrying fields (`ActorName::metadata`, `ToServerInit::metadata`) are kept as the strings
//! the wire holds; hws never parses them.

use alloc::string::String;
use alloc::vec::Vec;

use serde::Serialize;

use super::map::WireMap;
use super::types::{HibernatingRequest, ser_opt_bytes};

mod codec;

// ---------------------------------------------------------------------------------------------
// Handshake
// ---------------------------------------------------------------------------------------------

/// The runner's first message on its WebSocket (`ToServer` tag 0).
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ToServerInit {
    /// The runner name (the pool it serves).
    pub name: String,
    /// The runner's own version (not the protocol version).
    pub version: u32,
    /// How many actors the runner can host at once.
    pub total_slots: u32,
    /// Actor names the runner hosts, with their metadata, in wire order.
    pub prepopulate_actor_names: Option<ActorNames>,
    /// Free-form runner metadata: a JSON document, kept as the string the wire carries.
    pub metadata: Option<String>,
}

/// Metadata of one actor name (`ActorName`), announced in [`ToServerInit`].
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default, Serialize)]
pub struct ActorName {
    /// A JSON document, kept as the string the wire carries.
    pub metadata: String,
}

/// An ordered `map<str, ActorName>` (the type of
/// [`ToServerInit::prepopulate_actor_names`]): entries keep their wire order, names are unique
/// (decoding rejects a duplicate name, as the official codec does, and
/// [`insert`](WireMap::insert) replaces an existing value in place).
pub type ActorNames = WireMap<ActorName>;

/// The engine's answer to [`ToServerInit`] (`ToClient` tag 0).
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ToClientInit {
    /// The id the engine gave this runner connection.
    pub runner_id: String,
    /// Timing parameters the runner must follow.
    pub metadata: ProtocolMetadata,
}

/// Timing parameters sent in [`ToClientInit`] (`ProtocolMetadata`). All values are milliseconds.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct ProtocolMetadata {
    /// How long the engine waits for a silent runner before it declares it lost.
    pub runner_lost_threshold: i64,
    /// How long an actor may take to stop before the engine gives up on it.
    pub actor_stop_threshold: i64,
    /// For serverless runners: how long a draining runner may keep running.
    pub serverless_drain_grace_period: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// Checkpoints, commands
// ---------------------------------------------------------------------------------------------

/// Position of a command or event in an actor's stream (`ActorCheckpoint`).
///
/// Commands and events each carry one; acknowledgements name the last one processed per actor.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize)]
pub struct ActorCheckpoint {
    /// The actor.
    pub actor_id: String,
    /// The actor's generation (incremented each time it is placed again).
    pub generation: u32,
    /// Position within the actor's command or event stream.
    pub index: i64,
}

/// How to start an actor (`ActorConfig`).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct ActorConfig {
    /// Actor name (its type).
    pub name: String,
    /// Actor key, if it has one.
    pub key: Option<String>,
    /// Creation time, milliseconds since the Unix epoch.
    pub create_ts: i64,
    /// Creation input, opaque bytes.
    #[serde(serialize_with = "ser_opt_bytes")]
    pub input: Option<Vec<u8>>,
}

/// Start an actor (`CommandStartActor`, `Command` tag 0).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct CommandStartActor {
    /// What to start.
    pub config: ActorConfig,
    /// Client WebSockets hibernating on this actor, to restore on start.
    pub hibernating_requests: Vec<HibernatingRequest>,
}

/// A command from the engine to a runner (`Command`).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub enum Command {
    /// Tag 0.
    #[doc(alias = "CommandStartActor")]
    #[serde(rename = "CommandStartActor")]
    StartActor(CommandStartActor),
    /// Tag 1: stop the actor (no body).
    #[doc(alias = "CommandStopActor")]
    #[serde(rename = "CommandStopActor")]
    StopActor,
}

/// A command with its checkpoint (`CommandWrapper`).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct CommandWrapper {
    /// The actor, its generation and the command's index.
    pub checkpoint: ActorCheckpoint,
    /// The command.
    pub inner: Command,
}

/// A batch of commands (`ToClientCommands = list<CommandWrapper>`; `ToClient` tag 1, `ToRunner`
/// tag 2).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default, Serialize)]
pub struct ToClientCommands(pub Vec<CommandWrapper>);

/// The runner acknowledges commands (`ToServer` tag 2): the last processed checkpoint per actor.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default, Serialize)]
pub struct ToServerAckCommands {
    /// One checkpoint per actor.
    pub last_command_checkpoints: Vec<ActorCheckpoint>,
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// How an actor stopped (`StopCode`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize)]
pub enum StopCode {
    /// Value 0: a clean stop.
    Ok,
    /// Value 1: the actor failed.
    Error,
}

/// What an actor asks of the engine (`ActorIntent`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize)]
pub enum ActorIntent {
    /// Tag 0: the actor wants to sleep.
    #[doc(alias = "ActorIntentSleep")]
    #[serde(rename = "ActorIntentSleep")]
    Sleep,
    /// Tag 1: the actor wants to be destroyed.
    #[doc(alias = "ActorIntentStop")]
    #[serde(rename = "ActorIntentStop")]
    Stop,
}

/// The actor stopped (`ActorStateStopped`).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct ActorStateStopped {
    /// Clean or failed.
    pub code: StopCode,
    /// Why, if known.
    pub message: Option<String>,
}

/// An actor's new state (`ActorState`).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub enum ActorState {
    /// Tag 0: the actor runs and accepts traffic.
    #[doc(alias = "ActorStateRunning")]
    #[serde(rename = "ActorStateRunning")]
    Running,
    /// Tag 1.
    #[doc(alias = "ActorStateStopped")]
    #[serde(rename = "ActorStateStopped")]
    Stopped(ActorStateStopped),
}

/// The actor states an intent (`EventActorIntent`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct EventActorIntent {
    /// The intent.
    pub intent: ActorIntent,
}

/// The actor changed state (`EventActorStateUpdate`).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct EventActorStateUpdate {
    /// The new state.
    pub state: ActorState,
}

/// The actor sets or clears its wake-up alarm (`EventActorSetAlarm`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct EventActorSetAlarm {
    /// When to wake the actor, milliseconds since the Unix epoch; `None` clears the alarm.
    pub alarm_ts: Option<i64>,
}

/// An event from a runner about one of its actors (`Event`).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub enum Event {
    /// Tag 0.
    #[doc(alias = "EventActorIntent")]
    #[serde(rename = "EventActorIntent")]
    ActorIntent(EventActorIntent),
    /// Tag 1.
    #[doc(alias = "EventActorStateUpdate")]
    #[serde(rename = "EventActorStateUpdate")]
    ActorStateUpdate(EventActorStateUpdate),
    /// Tag 2.
    #[doc(alias = "EventActorSetAlarm")]
    #[serde(rename = "EventActorSetAlarm")]
    ActorSetAlarm(EventActorSetAlarm),
}

/// An event with its checkpoint (`EventWrapper`).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct EventWrapper {
    /// The actor, its generation and the event's index.
    pub checkpoint: ActorCheckpoint,
    /// The event.
    pub inner: Event,
}

/// A batch of events (`ToServerEvents = list<EventWrapper>`; `ToServer` tag 1).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default, Serialize)]
pub struct ToServerEvents(pub Vec<EventWrapper>);

/// The engine acknowledges events (`ToClient` tag 2, `ToRunner` tag 3): the last processed
/// checkpoint per actor.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default, Serialize)]
pub struct ToClientAckEvents {
    /// One checkpoint per actor.
    pub last_event_checkpoints: Vec<ActorCheckpoint>,
}

// ---------------------------------------------------------------------------------------------
// Runner-socket ping / pong
// ---------------------------------------------------------------------------------------------

/// The engine's liveness probe on the runner socket (`ToClient` tag 5).
///
/// Not the gateway's [`ToRunnerPing`](super::ToRunnerPing): that one never reaches the runner.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct ToClientPing {
    /// Sender's timestamp in milliseconds, echoed by the pong.
    pub ts: i64,
}

/// The runner's answer to [`ToClientPing`] (`ToServer` tag 4).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct ToServerPong {
    /// The ping's timestamp.
    pub ts: i64,
}
