//! A quinn-style test pair: one [`Gateway`], some [`Runner`]s, the app's storage and the frames in
//! flight between them, moved one at a time, with frames the test chooses to lose. Used by the
//! weak-spot scenarios (`tests/weak_spots.rs`) and any test that needs both engines in memory.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::time::Duration;

use crate::gateway::{
    self, CloseReason, Frame, Gateway, GatewayConfig, OpenRequest, Phase, RouteId, SendError,
};
use crate::index::MessageIndex;
use crate::runner::{self, PersistedSocket, Runner, RunnerConfig, SocketId};
use crate::time::Timestamp;
use crate::wire::{
    self, GatewayId, Headers, HibernatingRequest, RequestId, ToClientTunnelMessageKind, ToGateway,
    ToRunner, ToServerTunnelMessageKind,
};

/// The gateway's id in a pair.
pub const GW: GatewayId = GatewayId([0x77, 0x73, 0x70, 0x74]);
/// The one actor of a pair.
pub const ACTOR: &str = "actor";

/// The route of runner `r`.
pub fn route(r: usize) -> RouteId {
    RouteId(r as u64 + 1)
}

/// What a frame in flight is, for filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// Gateway → runner `WebSocketOpen`.
    Open,
    /// Gateway → runner `WebSocketMessage` with this index.
    Msg(u16),
    /// Gateway → runner `WebSocketClose`.
    Close,
    /// Gateway → runner ping.
    Ping,
    /// Runner → gateway pong.
    Pong,
    /// Runner → gateway `WebSocketOpen`.
    RunnerOpen,
    /// Runner → gateway `WebSocketMessage`.
    RunnerMsg,
    /// Runner → gateway ack of this index.
    Ack(u16),
    /// Runner → gateway `WebSocketClose`.
    RunnerClose,
}

/// What a gateway → runner frame is.
///
/// # Panics
/// If it does not decode as a tunnel message or a ping.
pub fn what_down(frame: &[u8]) -> What {
    match wire::decode_versioned::<ToRunner>(frame, &wire::DecodeLimits::default()) {
        Ok((_, ToRunner::TunnelMessage(m))) => match m.kind {
            ToClientTunnelMessageKind::WebSocketOpen(_) => What::Open,
            ToClientTunnelMessageKind::WebSocketMessage(_) => {
                What::Msg(m.message_id.message_index.get())
            }
            ToClientTunnelMessageKind::WebSocketClose(_) => What::Close,
            other => panic!("unexpected {other:?}"),
        },
        Ok((_, ToRunner::Ping(_))) => What::Ping,
        other => panic!("unexpected {other:?}"),
    }
}

/// What a runner → gateway frame is.
///
/// # Panics
/// If it does not decode as a tunnel message or a pong.
pub fn what_up(frame: &[u8]) -> What {
    match wire::decode_versioned::<ToGateway>(frame, &wire::DecodeLimits::default()) {
        Ok((_, ToGateway::TunnelMessage(m))) => match m.kind {
            ToServerTunnelMessageKind::WebSocketOpen(_) => What::RunnerOpen,
            ToServerTunnelMessageKind::WebSocketMessage(_) => What::RunnerMsg,
            ToServerTunnelMessageKind::WebSocketMessageAck(a) => What::Ack(a.index.get()),
            ToServerTunnelMessageKind::WebSocketClose(_) => What::RunnerClose,
            other => panic!("unexpected {other:?}"),
        },
        Ok((_, ToGateway::Pong(_))) => What::Pong,
        Err(e) => panic!("undecodable {e}"),
    }
}

/// One gateway, some runners, the app's storage, and the frames in flight between them: a
/// quinn-style test pair. [`step`](Self::step) moves one frame (after draining every engine),
/// [`drive`](Self::drive) runs until nothing moves, and frames named with [`lose`](Self::lose)
/// are lost once each, whenever they come. The app accepts every open as hibernatable and
/// writes every `Persist` to [`storage`](Self::storage) at once; it reports the write durable
/// at once when [`auto_persist`](Self::auto_persist) is set (otherwise the test does, from
/// [`persists`](Self::persists)).
pub struct Pair {
    pub now: Timestamp,
    pub gw: Gateway,
    pub runners: Vec<Runner>,
    pub down: VecDeque<(usize, Frame)>,
    pub up: VecDeque<(usize, Vec<u8>)>,
    /// `Persist` actions the app has not finished: `(runner, socket, index)`.
    pub persists: VecDeque<(usize, SocketId, MessageIndex)>,
    /// The app's durable metadata.
    pub storage: BTreeMap<SocketId, PersistedSocket>,
    /// Every message delivered to the app, in order: `(socket, index, data)`.
    pub delivered: Vec<(SocketId, u16, Vec<u8>)>,
    /// Hibernating records (the gateway's upserts).
    pub records: BTreeMap<RequestId, Timestamp>,
    pub gw_events: Vec<gateway::Action>,
    pub runner_events: Vec<(usize, runner::Action)>,
    /// Answer every persist at once (otherwise the test completes them).
    pub auto_persist: bool,
    /// The next record upserts that fail.
    pub fail_upserts: usize,
    /// Frames to lose in transit, each once, whenever they come.
    pub to_lose: Vec<What>,
    /// Frames lost so far.
    pub dropped: Vec<What>,
}

impl Pair {
    pub fn new(gateway: GatewayConfig, runner: &RunnerConfig, runners: usize) -> Self {
        let now = Timestamp::from_secs(100);
        Self {
            now,
            gw: Gateway::new(gateway, GW, now).expect("valid gateway config"),
            runners: (0..runners)
                .map(|_| Runner::new(runner.clone(), now).expect("valid runner config"))
                .collect(),
            down: VecDeque::new(),
            up: VecDeque::new(),
            persists: VecDeque::new(),
            storage: BTreeMap::new(),
            delivered: Vec::new(),
            records: BTreeMap::new(),
            gw_events: Vec::new(),
            runner_events: Vec::new(),
            auto_persist: true,
            fail_upserts: 0,
            to_lose: Vec::new(),
            dropped: Vec::new(),
        }
    }

    /// A pair with default configurations and `runners` runners.
    pub fn with_runners(runners: usize) -> Self {
        Self::new(GatewayConfig::default(), &RunnerConfig::default(), runners)
    }

    /// This pair with the actor started on runner 0 and client `req` connected through it.
    #[must_use]
    pub fn with_open(mut self, req: RequestId) -> Self {
        self.start_actor(0);
        self.open(req, 0);
        self
    }

    pub fn socket(req: RequestId) -> SocketId {
        SocketId::new(GW, req)
    }

    /// Drains every engine's actions into the network, the app and the logs.
    pub fn pump(&mut self) {
        loop {
            let mut any = false;
            while let Some(action) = self.gw.poll_action() {
                any = true;
                match action {
                    gateway::Action::Publish { route, frame, .. } => {
                        let r = usize::try_from(route.0 - 1).expect("small route");
                        self.down.push_back((r, frame));
                    }
                    gateway::Action::UpsertHibernatingRecord { request_id, .. }
                        if self.fail_upserts > 0 =>
                    {
                        self.fail_upserts -= 1;
                        self.gw
                            .hibernating_record_failed(self.now, request_id)
                            .expect("live request");
                    }
                    gateway::Action::UpsertHibernatingRecord { request_id, .. } => {
                        self.records.insert(request_id, self.now);
                        self.gw
                            .hibernating_record_upserted(self.now, request_id)
                            .expect("live request");
                    }
                    gateway::Action::DeleteHibernatingRecord { request_id, .. } => {
                        self.records.remove(&request_id);
                    }
                    other => self.gw_events.push(other),
                }
            }
            for r in 0..self.runners.len() {
                while let Some(action) = self.runners[r].poll_action() {
                    any = true;
                    match action {
                        runner::Action::Publish { frame, .. } => self.up.push_back((r, frame)),
                        runner::Action::Persist {
                            socket,
                            server_index,
                            client_index,
                            ..
                        } => {
                            self.storage.insert(
                                socket,
                                PersistedSocket {
                                    socket,
                                    server_index,
                                    client_index,
                                    path: "/".into(),
                                    headers: Headers::new(),
                                },
                            );
                            self.persists.push_back((r, socket, server_index));
                        }
                        runner::Action::DeleteMetadata { socket, .. } => {
                            self.storage.remove(&socket);
                        }
                        runner::Action::Message {
                            socket,
                            index,
                            data,
                            ..
                        } => self.delivered.push((socket, index.get(), data)),
                        runner::Action::Open { socket, .. } => {
                            // The app accepts every open as hibernatable.
                            self.runners[r]
                                .accept(self.now, socket, true)
                                .expect("connecting socket");
                        }
                        other => self.runner_events.push((r, other)),
                    }
                }
            }
            if self.auto_persist {
                while let Some((r, socket, index)) = self.persists.pop_front() {
                    any = true;
                    let _ = self.runners[r].persisted(self.now, socket, index);
                }
            }
            if !any {
                return;
            }
        }
    }

    /// Whether a frame is lost (it is in `to_lose`: then it is lost once).
    fn lost(&mut self, what: What) -> bool {
        match self.to_lose.iter().position(|w| *w == what) {
            Some(i) => {
                self.to_lose.remove(i);
                self.dropped.push(what);
                true
            }
            None => false,
        }
    }

    /// Drains every engine, then moves one frame in flight (gateway → runner first), unless it
    /// is to be lost. Returns whether a frame moved.
    ///
    /// # Panics
    /// If a frame in flight does not decode (the engines' own output always does).
    pub fn step(&mut self) -> bool {
        self.pump();
        if let Some((r, frame)) = self.down.pop_front() {
            if !self.lost(what_down(&frame)) {
                let _ = self.runners[r].handle_frame(self.now, &frame);
            }
            return true;
        }
        if let Some((r, frame)) = self.up.pop_front() {
            if !self.lost(what_up(&frame)) {
                let _ = self.gw.handle_runner_frame(self.now, route(r), &frame);
            }
            return true;
        }
        false
    }

    /// Steps until no frame is in flight and every engine is drained.
    ///
    /// # Panics
    /// As [`step`](Self::step).
    pub fn drive(&mut self) {
        while self.step() {}
    }

    /// Loses the next frame that is `what` (once), whenever it comes.
    pub fn lose(&mut self, what: What) {
        self.to_lose.push(what);
    }

    /// Advances time by `d` in 10 ms steps, firing every timer and settling the network.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now = (self.now + Duration::from_millis(10)).min(end);
            self.gw.handle_timeout(self.now);
            for r in &mut self.runners {
                r.handle_timeout(self.now);
            }
            self.drive();
        }
    }

    /// Starts the actor on runner `r` with the records and the metadata in storage.
    pub fn start_actor(&mut self, r: usize) {
        let listed: Vec<HibernatingRequest> = self
            .records
            .keys()
            .map(|&request_id| HibernatingRequest {
                gateway_id: GW,
                request_id,
            })
            .collect();
        let now = self.now;
        // The control plane names the actor's next runner to the gateway.
        for req in listed.iter().map(|l| l.request_id) {
            let _ = self.gw.actor_starting(now, req, route(r));
        }
        self.runners[r]
            .actor_starting(now, ACTOR, listed)
            .expect("actor starts");
        let metas = self.storage.values().cloned().collect();
        self.runners[r].restore(now, ACTOR, metas).expect("restore");
    }

    /// The actor on runner `r` goes to sleep; the gateway hears it stopped.
    pub fn sleep_actor(&mut self, r: usize, reqs: &[RequestId]) {
        let now = self.now;
        self.runners[r]
            .actor_stopping(now, ACTOR)
            .expect("running actor");
        self.drive();
        for &req in reqs {
            let _ = self.gw.actor_stopped(self.now, req);
        }
        self.drive();
    }

    /// A client connects through runner `r`'s route; the app accepts it as hibernatable.
    pub fn open(&mut self, req: RequestId, r: usize) {
        let open = OpenRequest::new(ACTOR, "/").expect("a path starting with /");
        self.gw.open(self.now, req, route(r), open).expect("open");
        self.drive();
        assert_eq!(
            self.gw.request(req).map(|i| (i.phase, i.hibernatable)),
            Some((Phase::Active, true))
        );
    }

    pub fn send(&mut self, req: RequestId, data: &[u8]) -> Result<MessageIndex, SendError> {
        self.gw.client_message(self.now, req, data, true)
    }

    /// The phase of request `req` at the gateway (`None` once it is gone).
    pub fn phase(&self, req: RequestId) -> Option<Phase> {
        self.gw.request(req).map(|i| i.phase)
    }

    pub fn pending(&self, req: RequestId) -> usize {
        self.gw.request(req).map_or(0, |i| i.pending_messages)
    }

    pub fn delivered_indices(&self, req: RequestId) -> Vec<u16> {
        let s = Self::socket(req);
        self.delivered
            .iter()
            .filter(|(sock, ..)| *sock == s)
            .map(|(_, i, _)| *i)
            .collect()
    }

    pub fn closed(&self, req: RequestId) -> Option<&CloseReason> {
        self.gw_events.iter().find_map(|a| match a {
            gateway::Action::Closed { request_id, reason } if *request_id == req => Some(reason),
            _ => None,
        })
    }
}
