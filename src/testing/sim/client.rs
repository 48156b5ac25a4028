//! Clients: connecting, sending scripted messages (past the limits, sometimes oversize) and
//! closing.

use alloc::format;
use alloc::vec::Vec;

use crate::close::CloseFrame;
use crate::gateway::{OpenRequest, SendError};
use crate::runner::SocketId;
use crate::wire::RequestId;

use super::event::Ev;
use super::format::{PidFmt, make_payload};
use super::oracle::Facts;
use super::world::{Entry, World};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientState {
    /// Not connected yet.
    Idle,
    /// `Control::open` called (the open may wait for its actor), no `Opened` yet.
    Opening,
    Open,
    Closed,
}

#[derive(Debug, Clone)]
pub(super) struct Payload {
    pub(super) pid: u64,
    pub(super) data: Vec<u8>,
    pub(super) binary: bool,
}

/// One client WebSocket connection (= one gateway request = one runner socket id).
#[derive(Debug)]
#[allow(clippy::struct_excessive_bools)] // independent facts about one connection
pub(super) struct Conn {
    pub(super) req: RequestId,
    pub(super) socket: SocketId,
    pub(super) actor: usize,
    pub(super) state: ClientState,
    pub(super) hibernatable: Option<bool>,
    pub(super) to_send: u32,
    pub(super) blocked: Option<Payload>,
    /// The app's committed delivery log (durable; survives every crash).
    pub(super) committed: Vec<Entry>,
    /// The runner incarnation hosting the connection's live app session, if any.
    pub(super) session: Option<(usize, u32)>,
    /// An app session was ever opened (a later `Open` for the same id is a zombie).
    pub(super) ever_opened: bool,
    /// The gateway request is hibernating (as far as its actions tell).
    pub(super) gw_hibernating: bool,
    /// What the oracle knows about the connection.
    pub(super) facts: Facts,
}

impl World {
    pub(super) fn connect(&mut self, c: usize) {
        if !self.chaos() || self.conns[c].state != ClientState::Idle {
            return;
        }
        let a = self.conns[c].actor;
        tr!(self, "client{c}: connect to {}", self.actors[a].id);
        let open =
            OpenRequest::new(self.actors[a].id.clone(), "/ws").expect("a path starting with /");
        let req = self.conns[c].req;
        self.conns[c].state = ClientState::Opening;
        if let Err(e) = self.ctl.open(self.now, req, open) {
            self.violation(format!("conn{c}: open refused: {e}"));
        }
        self.drain_ctl();
    }

    pub(super) fn next_payload(&mut self) -> Payload {
        let pid = self.next_pid;
        self.next_pid += 1;
        let binary = !self.rng.chance(self.p.text_ppm);
        let mut len = usize::try_from(
            self.rng
                .range(*self.p.payload.start() as u64, *self.p.payload.end() as u64),
        )
        .unwrap_or(16);
        if self.rng.chance(self.p.oversize_ppm) {
            self.fault("oversize_message");
            len += usize::try_from(self.p.gateway.max_pending_bytes).unwrap_or(usize::MAX / 2);
        }
        Payload {
            pid,
            data: make_payload(pid, binary, len),
            binary,
        }
    }

    pub(super) fn client_send(&mut self, c: usize) {
        if !self.chaos() || self.conns[c].state != ClientState::Open {
            return;
        }
        let mut burst = if self.conns[c].blocked.is_some() {
            1
        } else {
            u32::try_from(self.rng.range(1, u64::from(self.p.burst_max))).unwrap_or(1)
        };
        if burst > 1 && u64::from(burst) > u64::from(self.p.gateway.max_pending_messages) {
            self.fault("burst_past_limit");
        }
        while burst > 0 {
            let payload = match self.conns[c].blocked.take() {
                Some(p) => p,
                None if self.conns[c].to_send > 0 => {
                    self.conns[c].to_send -= 1;
                    self.next_payload()
                }
                None => break,
            };
            burst -= 1;
            let req = self.conns[c].req;
            let result = self
                .ctl
                .client_message(self.now, req, &payload.data, payload.binary);
            match result {
                Ok(index) => {
                    tr!(
                        self,
                        "client{c} → gw: msg #{} {} ({} B)",
                        index.get(),
                        PidFmt(Some(payload.pid)),
                        payload.data.len()
                    );
                    self.conns[c].facts.accepted.push((index, payload.pid));
                    self.conns[c].facts.accepted_at.push(self.now);
                    self.payloads.insert(payload.pid, (c, index));
                    self.mark(c);
                    self.drain_ctl();
                }
                Err(SendError::Backpressure { limit, .. }) => {
                    tr!(
                        self,
                        "client{c} → gw: {} refused: backpressure ({limit})",
                        PidFmt(Some(payload.pid))
                    );
                    self.count("backpressured");
                    self.conns[c].blocked = Some(payload);
                    self.drain_ctl();
                    return;
                }
                Err(e) => {
                    tr!(
                        self,
                        "client{c} → gw: {} refused: {e}",
                        PidFmt(Some(payload.pid))
                    );
                    if matches!(e, SendError::NotOpen { .. }) {
                        self.violation(format!("conn{c}: NotOpen after Opened"));
                    }
                    self.drain_ctl();
                    return;
                }
            }
        }
        if self.conns[c].to_send > 0 && self.conns[c].state == ClientState::Open {
            let gap = self.rng.range(0, self.p.send_gap_us * 2);
            self.sched(gap, Ev::ClientSend { c });
        }
    }

    pub(super) fn client_close(&mut self, c: usize) {
        if !self.chaos() {
            return;
        }
        let state = self.conns[c].state;
        match state {
            ClientState::Opening | ClientState::Open => {
                let frame = match self.rng.below(3) {
                    0 => Some(CloseFrame::new(1000, "bye")),
                    1 => Some(CloseFrame::new(4001, "client reason")),
                    _ => None,
                };
                let req = self.conns[c].req;
                if self.gw().request(req).is_none() {
                    // The open still waits for its actor: the engine drops it, nothing follows.
                    tr!(self, "client{c}: gives up before the open");
                    self.conns[c].state = ClientState::Closed;
                } else {
                    tr!(self, "client{c} → gw: close {frame:?}");
                }
                if let Err(e) = self.ctl.client_close(self.now, req, frame) {
                    self.violation(format!("conn{c}: client_close: {e}"));
                }
                self.drain_ctl();
            }
            ClientState::Idle | ClientState::Closed => {}
        }
    }
}
