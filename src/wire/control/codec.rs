//! Strict decoding and exact encoded sizes of the control-plane types.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;

use super::{
    ActorCheckpoint, ActorConfig, ActorIntent, ActorName, ActorNames, ActorState,
    ActorStateStopped, Command, CommandStartActor, CommandWrapper, Event, EventActorIntent,
    EventActorSetAlarm, EventActorStateUpdate, EventWrapper, ProtocolMetadata, StopCode,
    ToClientAckEvents, ToClientCommands, ToClientInit, ToClientPing, ToServerAckCommands,
    ToServerEvents, ToServerInit, ToServerPong,
};
use crate::wire::decode::{Read, Reader, official_key};
use crate::wire::encode::{EncodedLen, TAG_LEN, bytes_len, opt_len, uvarint_len};
use crate::wire::error::DecodeError;
use crate::wire::types::HibernatingRequest;

/// Smallest encodings, used to check a list's count against the bytes that remain.
const MIN_CHECKPOINT: usize = 1 + 4 + 8;
const MIN_COMMAND_WRAPPER: usize = MIN_CHECKPOINT + 1;
const MIN_EVENT_WRAPPER: usize = MIN_CHECKPOINT + 2;
const MIN_ACTOR_NAME_ENTRY: usize = 2;
const HIBERNATING_REQUEST_LEN: usize = 8;

impl Read for ActorNames {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let count = r.count(MIN_ACTOR_NAME_ENTRY)?;
        let mut entries: Vec<(String, ActorName)> = Vec::with_capacity(count);
        let mut seen: BTreeSet<&[u8]> = BTreeSet::new();
        for _ in 0..count {
            let key_offset = r.offset();
            let key = r.str_ref()?;
            if !seen.insert(official_key(key.as_bytes())) {
                return Err(DecodeError::DuplicateKey { offset: key_offset });
            }
            let value = ActorName::read(r)?;
            entries.push((key.into(), value));
        }
        Ok(Self::from_entries_unchecked(entries))
    }
}

impl Read for ActorName {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            metadata: r.string()?,
        })
    }
}

impl Read for ToServerInit {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            name: r.string()?,
            version: r.u32()?,
            total_slots: r.u32()?,
            prepopulate_actor_names: r.opt(ActorNames::read)?,
            metadata: r.opt(Reader::string)?,
        })
    }
}

impl Read for ProtocolMetadata {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            runner_lost_threshold: r.i64()?,
            actor_stop_threshold: r.i64()?,
            serverless_drain_grace_period: r.opt(Reader::i64)?,
        })
    }
}

impl Read for ToClientInit {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            runner_id: r.string()?,
            metadata: ProtocolMetadata::read(r)?,
        })
    }
}

impl Read for ActorCheckpoint {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            actor_id: r.string()?,
            generation: r.u32()?,
            index: r.i64()?,
        })
    }
}

impl Read for ActorConfig {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            name: r.string()?,
            key: r.opt(Reader::string)?,
            create_ts: r.i64()?,
            input: r.opt(Reader::data)?,
        })
    }
}

impl Read for Command {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (tag, offset) = r.tag()?;
        Ok(match tag {
            0 => Self::StartActor(CommandStartActor {
                config: ActorConfig::read(r)?,
                hibernating_requests: r.list(HIBERNATING_REQUEST_LEN, HibernatingRequest::read)?,
            }),
            1 => Self::StopActor,
            tag => return Err(DecodeError::unknown_tag("Command", tag, offset)),
        })
    }
}

impl Read for CommandWrapper {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            checkpoint: ActorCheckpoint::read(r)?,
            inner: Command::read(r)?,
        })
    }
}

impl Read for ToClientCommands {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.list(MIN_COMMAND_WRAPPER, CommandWrapper::read).map(Self)
    }
}

impl Read for ToServerAckCommands {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            last_command_checkpoints: r.list(MIN_CHECKPOINT, ActorCheckpoint::read)?,
        })
    }
}

impl Read for ToClientAckEvents {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            last_event_checkpoints: r.list(MIN_CHECKPOINT, ActorCheckpoint::read)?,
        })
    }
}

impl Read for StopCode {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (tag, offset) = r.tag()?;
        match tag {
            0 => Ok(Self::Ok),
            1 => Ok(Self::Error),
            tag => Err(DecodeError::unknown_tag("StopCode", tag, offset)),
        }
    }
}

impl Read for ActorIntent {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (tag, offset) = r.tag()?;
        match tag {
            0 => Ok(Self::Sleep),
            1 => Ok(Self::Stop),
            tag => Err(DecodeError::unknown_tag("ActorIntent", tag, offset)),
        }
    }
}

impl Read for ActorState {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (tag, offset) = r.tag()?;
        Ok(match tag {
            0 => Self::Running,
            1 => Self::Stopped(ActorStateStopped {
                code: StopCode::read(r)?,
                message: r.opt(Reader::string)?,
            }),
            tag => return Err(DecodeError::unknown_tag("ActorState", tag, offset)),
        })
    }
}

impl Read for Event {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (tag, offset) = r.tag()?;
        Ok(match tag {
            0 => Self::ActorIntent(EventActorIntent {
                intent: ActorIntent::read(r)?,
            }),
            1 => Self::ActorStateUpdate(EventActorStateUpdate {
                state: ActorState::read(r)?,
            }),
            2 => Self::ActorSetAlarm(EventActorSetAlarm {
                alarm_ts: r.opt(Reader::i64)?,
            }),
            tag => return Err(DecodeError::unknown_tag("Event", tag, offset)),
        })
    }
}

impl Read for EventWrapper {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            checkpoint: ActorCheckpoint::read(r)?,
            inner: Event::read(r)?,
        })
    }
}

impl Read for ToServerEvents {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.list(MIN_EVENT_WRAPPER, EventWrapper::read).map(Self)
    }
}

impl Read for ToClientPing {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self { ts: r.i64()? })
    }
}

impl Read for ToServerPong {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self { ts: r.i64()? })
    }
}

// ---------------------------------------------------------------------------------------------
// Encoded sizes
// ---------------------------------------------------------------------------------------------

fn list_len<T>(items: &[T], f: impl Fn(&T) -> usize) -> usize {
    uvarint_len(items.len() as u64) + items.iter().map(f).sum::<usize>()
}

impl EncodedLen for ActorNames {
    fn encoded_len(&self) -> usize {
        uvarint_len(self.len() as u64)
            + self
                .iter()
                .map(|(k, v)| bytes_len(k.len()) + bytes_len(v.metadata.len()))
                .sum::<usize>()
    }
}

impl EncodedLen for ToServerInit {
    fn encoded_len(&self) -> usize {
        bytes_len(self.name.len())
            + 4
            + 4
            + opt_len(
                self.prepopulate_actor_names.as_ref(),
                EncodedLen::encoded_len,
            )
            + opt_len(self.metadata.as_ref(), |m| bytes_len(m.len()))
    }
}

impl EncodedLen for ProtocolMetadata {
    fn encoded_len(&self) -> usize {
        8 + 8 + opt_len(self.serverless_drain_grace_period.as_ref(), |_| 8)
    }
}

impl EncodedLen for ToClientInit {
    fn encoded_len(&self) -> usize {
        bytes_len(self.runner_id.len()) + self.metadata.encoded_len()
    }
}

impl EncodedLen for ActorCheckpoint {
    fn encoded_len(&self) -> usize {
        bytes_len(self.actor_id.len()) + 4 + 8
    }
}

impl EncodedLen for ActorConfig {
    fn encoded_len(&self) -> usize {
        bytes_len(self.name.len())
            + opt_len(self.key.as_ref(), |k| bytes_len(k.len()))
            + 8
            + opt_len(self.input.as_ref(), |i| bytes_len(i.len()))
    }
}

impl EncodedLen for Command {
    fn encoded_len(&self) -> usize {
        TAG_LEN
            + match self {
                Self::StartActor(c) => {
                    c.config.encoded_len()
                        + list_len(&c.hibernating_requests, |_| HIBERNATING_REQUEST_LEN)
                }
                Self::StopActor => 0,
            }
    }
}

impl EncodedLen for CommandWrapper {
    fn encoded_len(&self) -> usize {
        self.checkpoint.encoded_len() + self.inner.encoded_len()
    }
}

impl EncodedLen for ToClientCommands {
    fn encoded_len(&self) -> usize {
        list_len(&self.0, EncodedLen::encoded_len)
    }
}

impl EncodedLen for ToServerAckCommands {
    fn encoded_len(&self) -> usize {
        list_len(&self.last_command_checkpoints, EncodedLen::encoded_len)
    }
}

impl EncodedLen for ToClientAckEvents {
    fn encoded_len(&self) -> usize {
        list_len(&self.last_event_checkpoints, EncodedLen::encoded_len)
    }
}

impl EncodedLen for Event {
    fn encoded_len(&self) -> usize {
        TAG_LEN
            + match self {
                Self::ActorIntent(_) => TAG_LEN,
                Self::ActorStateUpdate(u) => match &u.state {
                    ActorState::Running => TAG_LEN,
                    ActorState::Stopped(s) => {
                        TAG_LEN + 1 + opt_len(s.message.as_ref(), |m| bytes_len(m.len()))
                    }
                },
                Self::ActorSetAlarm(a) => opt_len(a.alarm_ts.as_ref(), |_| 8),
            }
    }
}

impl EncodedLen for EventWrapper {
    fn encoded_len(&self) -> usize {
        self.checkpoint.encoded_len() + self.inner.encoded_len()
    }
}

impl EncodedLen for ToServerEvents {
    fn encoded_len(&self) -> usize {
        list_len(&self.0, EncodedLen::encoded_len)
    }
}

impl EncodedLen for ToClientPing {
    fn encoded_len(&self) -> usize {
        8
    }
}

impl EncodedLen for ToServerPong {
    fn encoded_len(&self) -> usize {
        8
    }
}
