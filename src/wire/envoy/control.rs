//! The control messages of envoy protocol v8 that differ from runner protocol v7: the handshake
//! (the envoy's [`ToRivetMetadata`], the engine's [`ToEnvoyInit`]) and the commands
//! ([`EnvoyCommand`]: a start carries preloaded KV, a stop carries its reason). Checkpoints,
//! events, acknowledgements and KV requests keep their v7 types.

use alloc::string::String;
use alloc::vec::Vec;

use serde::Serialize;

use crate::wire::control::{ActorCheckpoint, ActorConfig, ActorNames, CommandStartActor};
use crate::wire::decode::{Read, Reader};
use crate::wire::encode::{EncodedLen, TAG_LEN, bytes_len, opt_len, uvarint_len};
use crate::wire::error::DecodeError;
use crate::wire::kv::{KvKey, KvMetadata, KvValue};
use crate::wire::types::{HibernatingRequest, ser_byte_list, ser_bytes};
use crate::wire::{Command, CommandWrapper, ProtocolMetadata, ToClientCommands, ToClientInit};

/// Smallest encodings, used to check a list's count against the bytes that remain.
const MIN_CHECKPOINT: usize = 1 + 4 + 8;
const MIN_COMMAND_WRAPPER: usize = MIN_CHECKPOINT + 1;
const MIN_PRELOADED_ENTRY: usize = 1 + 1 + 1 + 8;
const MIN_DATA: usize = 1;
const HIBERNATING_REQUEST_LEN: usize = 8;

/// The envoy's first message (`ToRivetMetadata`, `ToRivet` tag 0). Its name (pool), version and
/// slots travel in the connection URL instead.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize)]
pub struct ToRivetMetadata {
    /// Actor names the envoy hosts, with their metadata, in wire order.
    pub prepopulate_actor_names: Option<ActorNames>,
    /// Free-form envoy metadata: a JSON document, kept as the string the wire carries.
    pub metadata: Option<String>,
}

/// Timing and size parameters sent in [`ToEnvoyInit`] (`ProtocolMetadata` of v8).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct EnvoyProtocolMetadata {
    /// Milliseconds the engine waits for a silent envoy before it declares it lost.
    pub envoy_lost_threshold: i64,
    /// Milliseconds an actor may take to stop.
    pub actor_stop_threshold: i64,
    /// The largest HTTP response payload the engine takes, in bytes.
    pub max_response_payload_size: u64,
}

/// The engine's answer to [`ToRivetMetadata`] (`ToEnvoy` tag 0). Unlike v7's it names no
/// connection id: the envoy is known by the key of its URL.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct ToEnvoyInit {
    /// The parameters the envoy must follow.
    pub metadata: EnvoyProtocolMetadata,
}

/// One KV entry the engine read for the actor ahead of its start (`PreloadedKvEntry`).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct PreloadedKvEntry {
    /// The key.
    #[serde(serialize_with = "ser_bytes")]
    pub key: KvKey,
    /// Its value.
    #[serde(serialize_with = "ser_bytes")]
    pub value: KvValue,
    /// Its metadata.
    pub metadata: KvMetadata,
}

/// KV the engine read for the actor ahead of its start (`PreloadedKv`).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default, Serialize)]
pub struct PreloadedKv {
    /// The entries found.
    pub entries: Vec<PreloadedKvEntry>,
    /// The keys that were asked for (found or not).
    #[serde(serialize_with = "ser_byte_list")]
    pub requested_get_keys: Vec<KvKey>,
    /// The prefixes that were listed.
    #[serde(serialize_with = "ser_byte_list")]
    pub requested_prefixes: Vec<KvKey>,
}

/// Start an actor (`CommandStartActor` of v8).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct EnvoyCommandStartActor {
    /// What to start.
    pub config: ActorConfig,
    /// Client WebSockets hibernating on this actor, to restore on start.
    pub hibernating_requests: Vec<HibernatingRequest>,
    /// KV read ahead of the start, if the engine preloaded any.
    pub preloaded_kv: Option<PreloadedKv>,
}

/// Why the engine stops an actor (`StopActorReason`), in official enum order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize)]
pub enum StopActorReason {
    /// 0: the actor asked to sleep.
    SleepIntent,
    /// 1: the actor asked to stop.
    StopIntent,
    /// 2: the actor is destroyed.
    Destroy,
    /// 3: the envoy is going away.
    GoingAway,
    /// 4: the engine lost track of the actor.
    Lost,
}

/// A command from the engine to an envoy (`Command` of v8).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub enum EnvoyCommand {
    /// Tag 0.
    #[serde(rename = "CommandStartActor")]
    StartActor(EnvoyCommandStartActor),
    /// Tag 1.
    #[serde(rename = "CommandStopActor")]
    StopActor {
        /// Why.
        reason: StopActorReason,
    },
}

/// A command with its checkpoint (`CommandWrapper` of v8).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct EnvoyCommandWrapper {
    /// The actor, its generation and the command's index.
    pub checkpoint: ActorCheckpoint,
    /// The command.
    pub inner: EnvoyCommand,
}

/// A batch of commands (`ToEnvoyCommands = list<CommandWrapper>`, `ToEnvoy` tag 1).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default, Serialize)]
pub struct ToEnvoyCommands(pub Vec<EnvoyCommandWrapper>);

// ---------------------------------------------------------------------------------------------
// Translation to and from v7
// ---------------------------------------------------------------------------------------------

impl ToEnvoyInit {
    /// The v7 handshake answer with the same meaning: `runner_id` names the connection (an envoy
    /// is known by its key), the envoy-lost threshold is the runner-lost threshold.
    #[must_use]
    pub fn into_v7(self, runner_id: String) -> ToClientInit {
        ToClientInit {
            runner_id,
            metadata: ProtocolMetadata {
                runner_lost_threshold: self.metadata.envoy_lost_threshold,
                actor_stop_threshold: self.metadata.actor_stop_threshold,
                serverless_drain_grace_period: None,
            },
        }
    }
}

impl ToEnvoyCommands {
    /// The v7 commands with the same meaning: a start loses its preloaded KV (the actor reads
    /// its KV itself), a stop its reason.
    #[must_use]
    pub fn into_v7(self) -> ToClientCommands {
        ToClientCommands(
            self.0
                .into_iter()
                .map(|w| CommandWrapper {
                    checkpoint: w.checkpoint,
                    inner: match w.inner {
                        EnvoyCommand::StartActor(s) => Command::StartActor(CommandStartActor {
                            config: s.config,
                            hibernating_requests: s.hibernating_requests,
                        }),
                        EnvoyCommand::StopActor { .. } => Command::StopActor,
                    },
                })
                .collect(),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

impl Read for ToRivetMetadata {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            prepopulate_actor_names: r.opt(ActorNames::read)?,
            metadata: r.opt(Reader::string)?,
        })
    }
}

impl Read for ToEnvoyInit {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            metadata: EnvoyProtocolMetadata {
                envoy_lost_threshold: r.i64()?,
                actor_stop_threshold: r.i64()?,
                max_response_payload_size: r.u64()?,
            },
        })
    }
}

impl Read for PreloadedKv {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            entries: r.list(MIN_PRELOADED_ENTRY, |r| {
                Ok(PreloadedKvEntry {
                    key: r.data()?,
                    value: r.data()?,
                    metadata: KvMetadata::read(r)?,
                })
            })?,
            requested_get_keys: r.list(MIN_DATA, Reader::data)?,
            requested_prefixes: r.list(MIN_DATA, Reader::data)?,
        })
    }
}

impl Read for StopActorReason {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (tag, offset) = r.tag()?;
        Ok(match tag {
            0 => Self::SleepIntent,
            1 => Self::StopIntent,
            2 => Self::Destroy,
            3 => Self::GoingAway,
            4 => Self::Lost,
            tag => {
                return Err(DecodeError::unknown_tag("StopActorReason", tag, offset));
            }
        })
    }
}

impl Read for EnvoyCommandWrapper {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let checkpoint = ActorCheckpoint::read(r)?;
        let (tag, offset) = r.tag()?;
        let inner = match tag {
            0 => EnvoyCommand::StartActor(EnvoyCommandStartActor {
                config: ActorConfig::read(r)?,
                hibernating_requests: r.list(HIBERNATING_REQUEST_LEN, HibernatingRequest::read)?,
                preloaded_kv: r.opt(PreloadedKv::read)?,
            }),
            1 => EnvoyCommand::StopActor {
                reason: StopActorReason::read(r)?,
            },
            tag => {
                return Err(DecodeError::unknown_tag("Command", tag, offset));
            }
        };
        Ok(Self { checkpoint, inner })
    }
}

impl Read for ToEnvoyCommands {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.list(MIN_COMMAND_WRAPPER, EnvoyCommandWrapper::read)
            .map(Self)
    }
}

// ---------------------------------------------------------------------------------------------
// Encoded sizes
// ---------------------------------------------------------------------------------------------

fn list_len<T>(items: &[T], f: impl Fn(&T) -> usize) -> usize {
    uvarint_len(items.len() as u64) + items.iter().map(f).sum::<usize>()
}

impl EncodedLen for ToRivetMetadata {
    fn encoded_len(&self) -> usize {
        opt_len(
            self.prepopulate_actor_names.as_ref(),
            EncodedLen::encoded_len,
        ) + opt_len(self.metadata.as_ref(), |m| bytes_len(m.len()))
    }
}

impl EncodedLen for ToEnvoyInit {
    fn encoded_len(&self) -> usize {
        8 + 8 + 8
    }
}

impl EncodedLen for PreloadedKv {
    fn encoded_len(&self) -> usize {
        list_len(&self.entries, |e| {
            bytes_len(e.key.len())
                + bytes_len(e.value.len())
                + bytes_len(e.metadata.version.len())
                + 8
        }) + list_len(&self.requested_get_keys, |k| bytes_len(k.len()))
            + list_len(&self.requested_prefixes, |k| bytes_len(k.len()))
    }
}

impl EncodedLen for EnvoyCommandWrapper {
    fn encoded_len(&self) -> usize {
        self.checkpoint.encoded_len()
            + TAG_LEN
            + match &self.inner {
                EnvoyCommand::StartActor(s) => {
                    s.config.encoded_len()
                        + list_len(&s.hibernating_requests, |_| HIBERNATING_REQUEST_LEN)
                        + opt_len(s.preloaded_kv.as_ref(), EncodedLen::encoded_len)
                }
                // The reason: a uvarint below 128.
                EnvoyCommand::StopActor { .. } => 1,
            }
    }
}

impl EncodedLen for ToEnvoyCommands {
    fn encoded_len(&self) -> usize {
        list_len(&self.0, EncodedLen::encoded_len)
    }
}
