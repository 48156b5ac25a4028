//! The control part of runner protocol v7 on the runner's WebSocket (plain BARE, no version
//! prefix), as much as the interop engine needs: every `ToServer` variant decoded, the `ToClient`
//! variants an engine sends encoded. Tunnel messages are left to `hibernating_ws::wire`.
//!
//! Layouts follow the official schema (`@rivetkit/engine-runner-protocol`): union tags are one
//! byte below 128, `u32`/`u64`/`i64` are fixed-width little-endian, `str`/`data` and lists carry
//! a uvarint length, `optional<T>` a 0/1 byte.

/// `ToServer` (runner → engine).
#[derive(Debug, Clone, PartialEq)]
pub enum ToServer {
    /// Tag 0.
    Init(ToServerInit),
    /// Tag 1.
    Events(Vec<EventWrapper>),
    /// Tag 2: the last command checkpoint per actor.
    AckCommands(Vec<ActorCheckpoint>),
    /// Tag 3: the runner is draining.
    Stopping,
    /// Tag 4: answer to a `ToClientPing`.
    Pong {
        /// The ping's timestamp.
        ts: i64,
    },
    /// Tag 5.
    KvRequest {
        /// The actor whose KV is read or written.
        actor_id: String,
        /// Echoed in the response.
        request_id: u32,
        /// The operation.
        data: KvRequest,
    },
    /// Tag 6: the whole frame, for `hibernating_ws::wire`.
    Tunnel,
}

/// `ToServerInit`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToServerInit {
    /// Runner name.
    pub name: String,
    /// Runner version.
    pub version: u32,
    /// Slots.
    pub total_slots: u32,
    /// Actor names with their metadata JSON.
    pub prepopulate_actor_names: Option<Vec<(String, String)>>,
    /// Metadata JSON.
    pub metadata: Option<String>,
}

/// `ActorCheckpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorCheckpoint {
    /// Actor.
    pub actor_id: String,
    /// Generation.
    pub generation: u32,
    /// Command or event index.
    pub index: i64,
}

/// `EventWrapper`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventWrapper {
    /// Which actor, generation and event index.
    pub checkpoint: ActorCheckpoint,
    /// The event.
    pub event: Event,
}

/// `Event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `EventActorIntent`: sleep (`true`) or stop (`false`).
    Intent {
        /// Sleep rather than stop.
        sleep: bool,
    },
    /// `EventActorStateUpdate` → `ActorStateRunning`.
    Running,
    /// `EventActorStateUpdate` → `ActorStateStopped`.
    Stopped {
        /// `StopCode::Ok` (`true`) or `StopCode::Error`.
        ok: bool,
        /// Message.
        message: Option<String>,
    },
    /// `EventActorSetAlarm`.
    SetAlarm {
        /// Alarm time, or none to clear.
        alarm_ts: Option<i64>,
    },
}

/// `KvRequestData`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvRequest {
    /// Tag 0.
    Get(Vec<Vec<u8>>),
    /// Tag 1.
    List {
        /// Which keys.
        query: KvListQuery,
        /// Descending order.
        reverse: bool,
        /// At most this many.
        limit: Option<u64>,
    },
    /// Tag 2: keys and values.
    Put(Vec<Vec<u8>>, Vec<Vec<u8>>),
    /// Tag 3.
    Delete(Vec<Vec<u8>>),
    /// Tag 4: `[start, end)`.
    DeleteRange(Vec<u8>, Vec<u8>),
    /// Tag 5: every key of the actor.
    Drop,
}

/// `KvListQuery`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvListQuery {
    /// Tag 0.
    All,
    /// Tag 1.
    Range {
        /// First key.
        start: Vec<u8>,
        /// Last key.
        end: Vec<u8>,
        /// Whether `end` is excluded.
        exclusive: bool,
    },
    /// Tag 2.
    Prefix(Vec<u8>),
}

/// `KvResponseData`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvResponse {
    /// Tag 0.
    Error(String),
    /// Tag 1: found keys and their values.
    Get(Vec<(Vec<u8>, Vec<u8>)>),
    /// Tag 2.
    List(Vec<(Vec<u8>, Vec<u8>)>),
    /// Tag 3.
    Put,
    /// Tag 4.
    Delete,
    /// Tag 5.
    Drop,
}

/// `Command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `CommandStartActor` with its `ActorConfig.name` and hibernating requests
    /// (`(gateway_id, request_id)`).
    Start {
        /// Actor name.
        name: String,
        /// Requests hibernating on the actor.
        hibernating: Vec<([u8; 4], [u8; 4])>,
    },
    /// `CommandStopActor`.
    Stop,
}

/// The `ToClient` variants an engine sends (engine → runner). Tunnel messages are the gateway's
/// frames without their version prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToClient {
    /// Tag 0: `ToClientInit` with `ProtocolMetadata`.
    Init {
        /// Runner id.
        runner_id: String,
        /// `runnerLostThreshold`, ms.
        runner_lost_threshold: i64,
        /// `actorStopThreshold`, ms.
        actor_stop_threshold: i64,
    },
    /// Tag 1.
    Commands(Vec<(ActorCheckpoint, Command)>),
    /// Tag 2.
    AckEvents(Vec<ActorCheckpoint>),
    /// Tag 3.
    KvResponse {
        /// The request's id.
        request_id: u32,
        /// The result.
        data: KvResponse,
    },
    /// Tag 5.
    Ping {
        /// Timestamp, ms.
        ts: i64,
    },
}

/// Why a frame did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str, pub usize);

/// Most list entries or bytes one frame may announce (the frame itself bounds them too).
const MAX_LEN: u64 = 1 << 24;

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

type R<T> = Result<T, DecodeError>;

impl<'a> Reader<'a> {
    fn err<T>(&self, what: &'static str) -> R<T> {
        Err(DecodeError(what, self.pos))
    }
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        if self.bytes.len() - self.pos < n {
            return self.err("unexpected end");
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }
    fn tag(&mut self, max: u8) -> R<u8> {
        let t = self.u8()?;
        if t > max {
            return self.err("invalid tag");
        }
        Ok(t)
    }
    fn bool(&mut self) -> R<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => self.err("invalid bool"),
        }
    }
    fn u32(&mut self) -> R<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> R<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn i64(&mut self) -> R<i64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_le_bytes(a))
    }
    fn uvarint(&mut self) -> R<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return self.err("varint overflow");
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                if b == 0 && shift > 0 {
                    return self.err("non-canonical varint");
                }
                return Ok(v);
            }
        }
        self.err("varint overflow")
    }
    fn len(&mut self) -> R<usize> {
        let n = self.uvarint()?;
        if n > MAX_LEN || n > (self.bytes.len() - self.pos) as u64 {
            return self.err("length exceeds frame");
        }
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
    fn data(&mut self) -> R<Vec<u8>> {
        let n = self.len()?;
        Ok(self.take(n)?.to_vec())
    }
    fn str(&mut self) -> R<String> {
        let n = self.len()?;
        let at = self.pos;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError("invalid UTF-8", at))
    }
    fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> R<T>) -> R<Option<T>> {
        if self.bool()? {
            Ok(Some(f(self)?))
        } else {
            Ok(None)
        }
    }
    fn list<T>(&mut self, mut f: impl FnMut(&mut Self) -> R<T>) -> R<Vec<T>> {
        let n = self.len()?;
        let mut out = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            out.push(f(self)?);
        }
        Ok(out)
    }
    fn checkpoint(&mut self) -> R<ActorCheckpoint> {
        Ok(ActorCheckpoint {
            actor_id: self.str()?,
            generation: self.u32()?,
            index: self.i64()?,
        })
    }
    fn event(&mut self) -> R<Event> {
        Ok(match self.tag(2)? {
            0 => Event::Intent {
                sleep: self.tag(1)? == 0,
            },
            1 => match self.tag(1)? {
                0 => Event::Running,
                _ => Event::Stopped {
                    ok: self.tag(1)? == 0,
                    message: self.opt(Self::str)?,
                },
            },
            _ => Event::SetAlarm {
                alarm_ts: self.opt(Self::i64)?,
            },
        })
    }
    fn kv_request(&mut self) -> R<KvRequest> {
        Ok(match self.tag(5)? {
            0 => KvRequest::Get(self.list(Self::data)?),
            1 => {
                let query = match self.tag(2)? {
                    0 => KvListQuery::All,
                    1 => KvListQuery::Range {
                        start: self.data()?,
                        end: self.data()?,
                        exclusive: self.bool()?,
                    },
                    _ => KvListQuery::Prefix(self.data()?),
                };
                KvRequest::List {
                    query,
                    reverse: self.opt(Self::bool)?.unwrap_or(false),
                    limit: self.opt(Self::u64)?,
                }
            }
            2 => KvRequest::Put(self.list(Self::data)?, self.list(Self::data)?),
            3 => KvRequest::Delete(self.list(Self::data)?),
            4 => KvRequest::DeleteRange(self.data()?, self.data()?),
            _ => KvRequest::Drop,
        })
    }
}

/// Decodes a `ToServer` frame. A tunnel message (tag 6) is only recognised: decode the same bytes
/// with `hibernating_ws::wire`.
///
/// # Errors
/// Truncated frames, invalid tags, bools, varints or UTF-8, and trailing bytes.
pub fn decode_to_server(bytes: &[u8]) -> Result<ToServer, DecodeError> {
    let mut r = Reader { bytes, pos: 0 };
    let msg = match r.tag(6)? {
        0 => ToServer::Init(ToServerInit {
            name: r.str()?,
            version: r.u32()?,
            total_slots: r.u32()?,
            prepopulate_actor_names: r.opt(|r| r.list(|r| Ok((r.str()?, r.str()?))))?,
            metadata: r.opt(Reader::str)?,
        }),
        1 => ToServer::Events(r.list(|r| {
            Ok(EventWrapper {
                checkpoint: r.checkpoint()?,
                event: r.event()?,
            })
        })?),
        2 => ToServer::AckCommands(r.list(Reader::checkpoint)?),
        3 => ToServer::Stopping,
        4 => ToServer::Pong { ts: r.i64()? },
        5 => ToServer::KvRequest {
            actor_id: r.str()?,
            request_id: r.u32()?,
            data: r.kv_request()?,
        },
        _ => return Ok(ToServer::Tunnel),
    };
    if r.pos != bytes.len() {
        return r.err("trailing bytes");
    }
    Ok(msg)
}

struct Writer(Vec<u8>);

impl Writer {
    fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn data(&mut self, d: &[u8]) {
        self.uvarint(d.len() as u64);
        self.0.extend_from_slice(d);
    }
    fn str(&mut self, s: &str) {
        self.data(s.as_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn checkpoint(&mut self, c: &ActorCheckpoint) {
        self.str(&c.actor_id);
        self.0.extend_from_slice(&c.generation.to_le_bytes());
        self.i64(c.index);
    }
    fn entries(&mut self, entries: &[(Vec<u8>, Vec<u8>)]) {
        self.uvarint(entries.len() as u64);
        for (k, _) in entries {
            self.data(k);
        }
        self.uvarint(entries.len() as u64);
        for (_, v) in entries {
            self.data(v);
        }
        // metadata: version (data) and update timestamp per entry
        self.uvarint(entries.len() as u64);
        for _ in entries {
            self.data(&[]);
            self.i64(0);
        }
    }
}

/// Encodes a `ToClient` frame.
pub fn encode_to_client(msg: &ToClient) -> Vec<u8> {
    let mut w = Writer(Vec::new());
    match msg {
        ToClient::Init {
            runner_id,
            runner_lost_threshold,
            actor_stop_threshold,
        } => {
            w.0.push(0);
            w.str(runner_id);
            w.i64(*runner_lost_threshold);
            w.i64(*actor_stop_threshold);
            w.0.push(0); // serverlessDrainGracePeriod: none
        }
        ToClient::Commands(commands) => {
            w.0.push(1);
            w.uvarint(commands.len() as u64);
            for (checkpoint, command) in commands {
                w.checkpoint(checkpoint);
                match command {
                    Command::Start { name, hibernating } => {
                        w.0.push(0);
                        w.str(name); // ActorConfig.name
                        w.0.push(0); // key: none
                        w.i64(0); // createTs
                        w.0.push(0); // input: none
                        w.uvarint(hibernating.len() as u64);
                        for (gateway_id, request_id) in hibernating {
                            w.0.extend_from_slice(gateway_id);
                            w.0.extend_from_slice(request_id);
                        }
                    }
                    Command::Stop => w.0.push(1),
                }
            }
        }
        ToClient::AckEvents(checkpoints) => {
            w.0.push(2);
            w.uvarint(checkpoints.len() as u64);
            for c in checkpoints {
                w.checkpoint(c);
            }
        }
        ToClient::KvResponse { request_id, data } => {
            w.0.push(3);
            w.0.extend_from_slice(&request_id.to_le_bytes());
            match data {
                KvResponse::Error(message) => {
                    w.0.push(0);
                    w.str(message);
                }
                KvResponse::Get(entries) => {
                    w.0.push(1);
                    w.entries(entries);
                }
                KvResponse::List(entries) => {
                    w.0.push(2);
                    w.entries(entries);
                }
                KvResponse::Put => w.0.push(3),
                KvResponse::Delete => w.0.push(4),
                KvResponse::Drop => w.0.push(5),
            }
        }
        ToClient::Ping { ts } => {
            w.0.push(5);
            w.i64(*ts);
        }
    }
    w.0
}
