//! Pure helpers: payload ids in message bodies, frame peeking, and the formatters of the trace.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::{self, Write as _};

use crate::close::CloseFrame;
use crate::gateway::{self, GcReason};
use crate::runner::{self};
use crate::wire::{
    self, Command, RequestId, ToClient, ToClientTunnelMessageKind, ToServer,
    ToServerTunnelMessageKind,
};

use super::world::{ECHO_BIT, Entry};

/// `pid` in front of the payload: 8 bytes little-endian (binary) or 16 hex digits (text), then
/// filler up to `len`.
pub(super) fn make_payload(pid: u64, binary: bool, len: usize) -> Vec<u8> {
    let mut data = if binary {
        pid.to_le_bytes().to_vec()
    } else {
        format!("{pid:016x}").into_bytes()
    };
    let fill = if binary { 0xA5 } else { b'x' };
    data.resize(len.max(data.len()), fill);
    data
}

pub(super) fn parse_pid(data: &[u8], binary: bool) -> Option<u64> {
    if binary {
        let b: [u8; 8] = data.get(..8)?.try_into().ok()?;
        Some(u64::from_le_bytes(b))
    } else {
        let s = core::str::from_utf8(data.get(..16)?).ok()?;
        u64::from_str_radix(s, 16).ok()
    }
}

pub(super) struct PidFmt(pub(super) Option<u64>);

impl fmt::Display for PidFmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) if p & ECHO_BIT != 0 => write!(f, "e{}", p & !ECHO_BIT),
            Some(p) => write!(f, "p{p}"),
            None => f.write_str("p?"),
        }
    }
}

pub(super) struct EntryFmt<'a>(pub(super) Option<&'a Entry>);

impl fmt::Display for EntryFmt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some((i, p)) => write!(f, "#{} {}", i.get(), PidFmt(Some(*p))),
            None => f.write_str("nothing"),
        }
    }
}

fn down(frame: &[u8]) -> Option<ToClient> {
    wire::decode_with::<ToClient>(frame, &wire::DecodeLimits::default()).ok()
}

fn up(frame: &[u8]) -> Option<ToServer> {
    wire::decode_with::<ToServer>(frame, &wire::DecodeLimits::default()).ok()
}

/// The request an engine → runner frame is about.
pub(super) fn request_of_down(frame: &[u8]) -> Option<RequestId> {
    match down(frame)? {
        ToClient::TunnelMessage(m) => Some(m.message_id.request_id),
        _ => None,
    }
}

/// The request a runner → engine frame is about.
pub(super) fn request_of_up(frame: &[u8]) -> Option<RequestId> {
    match up(frame)? {
        ToServer::TunnelMessage(m) => Some(m.message_id.request_id),
        _ => None,
    }
}

/// The request an engine → runner close frame closes.
pub(super) fn close_to_runner(frame: &[u8]) -> Option<RequestId> {
    match down(frame)? {
        ToClient::TunnelMessage(m)
            if matches!(m.kind, ToClientTunnelMessageKind::WebSocketClose(_)) =>
        {
            Some(m.message_id.request_id)
        }
        _ => None,
    }
}

/// The request a runner → engine close frame (not a hand-back) closes.
pub(super) fn close_to_engine(frame: &[u8]) -> Option<RequestId> {
    match up(frame)? {
        ToServer::TunnelMessage(m) => match m.kind {
            ToServerTunnelMessageKind::WebSocketClose(c) if !c.hibernate => {
                Some(m.message_id.request_id)
            }
            _ => None,
        },
        _ => None,
    }
}

/// A short description of an engine → runner frame.
pub(super) fn describe_to_runner(frame: &[u8]) -> String {
    let Some(msg) = down(frame) else {
        return "undecodable frame".into();
    };
    match msg {
        ToClient::TunnelMessage(m) => {
            let i = m.message_id.message_index.get();
            let req = m.message_id.request_id;
            match m.kind {
                ToClientTunnelMessageKind::WebSocketOpen(_) => format!("open #{i} [{req}]"),
                ToClientTunnelMessageKind::WebSocketMessage(w) => {
                    format!("msg #{i} {} [{req}]", PidFmt(parse_pid(&w.data, w.binary)))
                }
                ToClientTunnelMessageKind::WebSocketClose(c) => format!(
                    "close #{i} {:?} [{req}]",
                    CloseFrame {
                        code: c.code,
                        reason: c.reason
                    }
                ),
                other => format!("{other:?} #{i} [{req}]"),
            }
        }
        ToClient::Commands(cs) => {
            let mut out = String::from("commands");
            for c in cs.0 {
                let what = match c.inner {
                    Command::StartActor(s) => {
                        format!("start (listing {})", s.hibernating_requests.len())
                    }
                    Command::StopActor => "stop".into(),
                };
                let _ = write!(
                    out,
                    " [{} {} gen {} #{}]",
                    what, c.checkpoint.actor_id, c.checkpoint.generation, c.checkpoint.index
                );
            }
            out
        }
        ToClient::Init(i) => format!("init {}", i.runner_id),
        ToClient::Ping(_) => "ping".into(),
        ToClient::AckEvents(a) => format!("ack events {:?}", a.last_event_checkpoints.len()),
        other @ ToClient::KvResponse(_) => format!("{other:?}"),
    }
}

/// A short description of a runner → engine frame.
pub(super) fn describe_to_engine(frame: &[u8]) -> String {
    let Some(msg) = up(frame) else {
        return "undecodable frame".into();
    };
    match msg {
        ToServer::TunnelMessage(m) => {
            let i = m.message_id.message_index.get();
            let req = m.message_id.request_id;
            match m.kind {
                ToServerTunnelMessageKind::WebSocketOpen(o) => {
                    format!("open out#{i} hibernatable={} [{req}]", o.can_hibernate)
                }
                ToServerTunnelMessageKind::WebSocketMessage(w) => {
                    format!(
                        "msg out#{i} {} [{req}]",
                        PidFmt(parse_pid(&w.data, w.binary))
                    )
                }
                ToServerTunnelMessageKind::WebSocketMessageAck(a) => {
                    format!("ack {} out#{i} [{req}]", a.index.get())
                }
                ToServerTunnelMessageKind::WebSocketClose(c) => format!(
                    "close out#{i} {:?} hibernate={} [{req}]",
                    CloseFrame {
                        code: c.code,
                        reason: c.reason
                    },
                    c.hibernate
                ),
                other => format!("{other:?} out#{i} [{req}]"),
            }
        }
        ToServer::Events(es) => {
            let mut out = String::from("events");
            for e in es.0 {
                let _ = write!(
                    out,
                    " [{:?} {} gen {} #{}]",
                    e.inner, e.checkpoint.actor_id, e.checkpoint.generation, e.checkpoint.index
                );
            }
            out
        }
        ToServer::Init(i) => format!("init {} slots {}", i.name, i.total_slots),
        ToServer::Pong(_) => "pong".into(),
        ToServer::AckCommands(a) => format!("ack commands ({})", a.last_command_checkpoints.len()),
        other => format!("{other:?}"),
    }
}

pub(super) fn frame_name(f: &CloseFrame) -> String {
    match (f.known(), f.code, &f.reason) {
        (Some(k), _, _) => k.reason().to_string(),
        (None, Some(c), Some(r)) => format!("{c} {r}"),
        (None, Some(c), None) => c.to_string(),
        (None, None, _) => "no code".into(),
    }
}

pub(super) fn gw_reason_name(r: &gateway::CloseReason) -> String {
    use gateway::CloseReason as R;
    match r {
        R::ClientClosed(f) => format!("client closed ({})", frame_name(f)),
        R::ClientGone => "client gone".into(),
        R::RunnerClosed(f) => format!("runner closed ({})", frame_name(f)),
        R::ClosedBeforeOpen(f) => format!("closed before open ({})", frame_name(f)),
        R::OpenTimeout => "open timeout".into(),
        R::ActorStopped => "actor stopped".into(),
        R::ActorStoppedBeforeOpen => "actor stopped before open".into(),
        R::PendingLimit(l) => format!("pending limit ({l})"),
        R::PingTimeout => "ping timeout".into(),
        R::Collected(GcReason::AckTimeout { .. }) => "collected: ack timeout".into(),
        R::Collected(GcReason::HibernationTimeout) => "collected: hibernation timeout".into(),
        R::Collected(GcReason::WakeTimeout) => "collected: wake timeout".into(),
        R::Collected(GcReason::CloseTimeout) => "collected: close timeout".into(),
    }
}

pub(super) fn runner_reason_name(r: &runner::CloseReason) -> String {
    use runner::CloseReason as R;
    match r {
        R::GatewayClosed(f) => format!("gateway closed ({})", frame_name(f)),
        R::AppClosed(f) => format!("app closed ({})", frame_name(f)),
        R::Rejected(f) => format!("rejected ({})", frame_name(f)),
        R::MessageIndexSkip => "message index skip".into(),
        R::StaleMetadata => "stale metadata".into(),
        R::ActorStopped => "actor stopped".into(),
        R::Hibernated => "handed back".into(),
    }
}
