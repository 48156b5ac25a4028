//! PROTOCOL.md §5.2 weak spots 1–8: one scenario each showing that hws's engines do not have
//! them. Each test drives a real [`Gateway`] and real [`Runner`]s through a small in-memory
//! network ([`Net`]) whose frames the test can drop, so every step is explicit.

extern crate alloc;

use alloc::collections::{BTreeMap, VecDeque};
use core::time::Duration;

use hws::gateway::{
    self, CloseReason, Frame, Gateway, GatewayConfig, OpenRequest, Phase, RouteId, SendError,
};
use hws::runner::{self, PersistedSocket, Runner, RunnerConfig, SocketId};
use hws::wire::{
    self, GatewayId, Headers, HibernatingRequest, RequestId, ToClientTunnelMessageKind, ToGateway,
    ToRunner, ToServerTunnelMessageKind,
};
use hws::{MessageIndex, Timestamp};

const GW: GatewayId = GatewayId([0x77, 0x73, 0x70, 0x74]);
const ACTOR: &str = "actor";

fn idx(i: u16) -> MessageIndex {
    MessageIndex::new(i)
}

fn route(r: usize) -> RouteId {
    RouteId(r as u64 + 1)
}

/// What a frame in flight is, for filters.
#[derive(Debug, Clone, PartialEq, Eq)]
enum What {
    Open,
    Msg(u16),
    Close,
    Ping,
    Pong,
    RunnerOpen,
    RunnerMsg,
    Ack(u16),
    RunnerClose,
}

fn what_down(frame: &[u8]) -> What {
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

fn what_up(frame: &[u8]) -> What {
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

/// One gateway, some runners, the app's storage, and the frames in flight between them.
struct Net {
    now: Timestamp,
    gw: Gateway,
    runners: Vec<Runner>,
    down: VecDeque<(usize, Frame)>,
    up: VecDeque<(usize, Vec<u8>)>,
    /// `Persist` actions the app has not finished: `(runner, socket, index)`.
    persists: VecDeque<(usize, SocketId, MessageIndex)>,
    /// The app's durable metadata.
    storage: BTreeMap<SocketId, PersistedSocket>,
    /// Every message delivered to the app, in order: `(socket, index, data)`.
    delivered: Vec<(SocketId, u16, Vec<u8>)>,
    /// Hibernating records (the gateway's upserts).
    records: BTreeMap<RequestId, Timestamp>,
    gw_events: Vec<gateway::Action>,
    runner_events: Vec<(usize, runner::Action)>,
    /// Answer every persist at once (otherwise the test completes them).
    auto_persist: bool,
    /// The next record upserts that fail.
    fail_upserts: usize,
    /// Frames to lose in transit, each once, whenever they come.
    lose: Vec<What>,
    /// Frames lost so far.
    dropped: Vec<What>,
}

impl Net {
    fn new(gateway: GatewayConfig, runner: &RunnerConfig, runners: usize) -> Self {
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
            lose: Vec::new(),
            dropped: Vec::new(),
        }
    }

    fn socket(req: RequestId) -> SocketId {
        SocketId::new(GW, req)
    }

    /// Drains every engine's actions into the network, the app and the logs.
    fn pump(&mut self) {
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

    /// Whether a frame is lost (it is in `lose`: then it is lost once).
    fn lost(&mut self, what: What) -> bool {
        match self.lose.iter().position(|w| *w == what) {
            Some(i) => {
                self.lose.remove(i);
                self.dropped.push(what);
                true
            }
            None => false,
        }
    }

    /// Delivers every frame in flight (both ways) until none is left, losing those in `lose`.
    fn settle(&mut self) {
        loop {
            self.pump();
            if let Some((r, frame)) = self.down.pop_front() {
                if !self.lost(what_down(&frame)) {
                    let _ = self.runners[r].handle_frame(self.now, &frame);
                }
                continue;
            }
            if let Some((r, frame)) = self.up.pop_front() {
                if !self.lost(what_up(&frame)) {
                    let _ = self.gw.handle_runner_frame(self.now, route(r), &frame);
                }
                continue;
            }
            return;
        }
    }

    /// Advances time by `d` in 10 ms steps, firing every timer and settling the network.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now = (self.now + Duration::from_millis(10)).min(end);
            self.gw.handle_timeout(self.now);
            for r in &mut self.runners {
                r.handle_timeout(self.now);
            }
            self.settle();
        }
    }

    /// Starts the actor on runner `r` with the records and the metadata in storage.
    fn start_actor(&mut self, r: usize) {
        let listed: Vec<HibernatingRequest> = self
            .records
            .keys()
            .map(|&request_id| HibernatingRequest {
                gateway_id: GW,
                request_id,
            })
            .collect();
        let now = self.now;
        self.runners[r]
            .actor_starting(now, ACTOR, listed)
            .expect("actor starts");
        let metas = self.storage.values().cloned().collect();
        self.runners[r].restore(now, ACTOR, metas).expect("restore");
    }

    /// The actor on runner `r` goes to sleep; the gateway hears it stopped.
    fn sleep_actor(&mut self, r: usize, reqs: &[RequestId]) {
        let now = self.now;
        self.runners[r]
            .actor_stopping(now, ACTOR)
            .expect("running actor");
        self.settle();
        for &req in reqs {
            let _ = self.gw.actor_stopped(self.now, req);
        }
        self.settle();
    }

    /// A client connects through runner `r`'s route; the app accepts it as hibernatable.
    fn open(&mut self, req: RequestId, r: usize) {
        let open = OpenRequest {
            actor_id: ACTOR.into(),
            path: "/".into(),
            headers: Headers::new(),
        };
        self.gw.open(self.now, req, route(r), open).expect("open");
        self.settle();
        assert_eq!(
            self.gw.request(req).map(|i| (i.phase, i.hibernatable)),
            Some((Phase::Active, true))
        );
    }

    fn send(&mut self, req: RequestId, data: &[u8]) -> Result<MessageIndex, SendError> {
        self.gw.client_message(self.now, req, data, true)
    }

    fn pending(&self, req: RequestId) -> usize {
        self.gw.request(req).map_or(0, |i| i.pending_messages)
    }

    fn delivered_indices(&self, req: RequestId) -> Vec<u16> {
        let s = Self::socket(req);
        self.delivered
            .iter()
            .filter(|(sock, ..)| *sock == s)
            .map(|(_, i, _)| *i)
            .collect()
    }

    fn closed(&self, req: RequestId) -> Option<&CloseReason> {
        self.gw_events.iter().find_map(|a| match a {
            gateway::Action::Closed { request_id, reason } if *request_id == req => Some(reason),
            _ => None,
        })
    }
}

/// Weak spot 4 (acks lost while no handler is attached) with the actor moving runners: the
/// ack of message 1 is lost, the actor sleeps on runner 0 and wakes on runner 1. Upstream's
/// gateway drops acks while hibernating and its runner never re-acks, so the socket dies of
/// the ack timeout. hws: the restore re-ack, the replay's duplicate re-ack, or both heal it.
#[test]
fn weak_spot_4_lost_ack_heals_after_the_actor_moves() {
    let mut net = Net::new(GatewayConfig::default(), &RunnerConfig::default(), 2);
    let req = RequestId::from_u32(4);
    net.start_actor(0);
    net.open(req, 0);
    net.send(req, b"one").expect("fits");
    // Persisted at the debounce deadline; its ack is lost.
    net.lose.push(What::Ack(1));
    net.advance(Duration::from_secs(6));
    assert_eq!(net.dropped, [What::Ack(1)]);
    assert_eq!(net.storage[&Net::socket(req)].server_index, idx(1));
    assert_eq!(net.pending(req), 1);

    net.sleep_actor(0, &[req]);
    assert_eq!(
        net.gw.request(req).map(|i| i.phase),
        Some(Phase::Hibernating)
    );
    // The actor starts on runner 1, then the gateway wakes the request there (upstream's
    // order: the wake follows the actor's `Ready`).
    net.start_actor(1);
    net.settle();
    net.gw.wake(net.now, req, route(1)).expect("hibernating");
    net.settle();
    net.advance(Duration::from_secs(2));
    assert_eq!(net.pending(req), 0, "the lost ack healed");
    assert_eq!(net.delivered_indices(req), [1], "delivered once");
    net.advance(Duration::from_secs(40));
    assert_eq!(net.closed(req), None, "no ack timeout");
}

/// Weak spot 12 (closes sent to a hibernating gateway entry are dropped), through the route
/// check: the actor wakes on runner 1 without the socket's metadata (the write was lost), so
/// its restore answers 1000 `ws.meta_not_found_during_restore` before the gateway wakes the
/// request, which is still routed to runner 0. The gateway must close the request then, not
/// replay into a runner that has no socket and collect it 30 s later.
#[test]
fn weak_spot_12_restore_close_reaches_a_hibernating_request() {
    let mut net = Net::new(GatewayConfig::default(), &RunnerConfig::default(), 2);
    let req = RequestId::from_u32(12);
    net.start_actor(0);
    net.open(req, 0);
    net.send(req, b"one").expect("fits");
    net.settle();
    net.sleep_actor(0, &[req]);
    assert_eq!(
        net.gw.request(req).map(|i| i.phase),
        Some(Phase::Hibernating)
    );
    // The app's metadata for the socket is lost.
    net.storage.remove(&Net::socket(req));
    net.start_actor(1);
    net.settle();
    let frame = hws::KnownClose::MetaNotFoundDuringRestore.frame();
    assert_eq!(
        net.closed(req),
        Some(&CloseReason::RunnerClosed(frame.clone()))
    );
    assert!(net.gw.request(req).is_none());
    assert!(net.gw_events.contains(&gateway::Action::CloseClient {
        request_id: req,
        frame
    }));
    assert_eq!(net.gw.stats().dropped_wrong_route, 0);
    assert!(!net.records.contains_key(&req), "record deleted");
}

/// Found by the simulator: the first record upsert of a request fails (the gateway retries at
/// the next keepalive, 45 s later), the actor sleeps and wakes meanwhile, and its restore does
/// not list the request. Upstream's restore case 3 closes the socket locally and tells no one,
/// so the gateway kept a request with no socket behind it, forever once a later upsert
/// succeeded. The runner now publishes the stale close, and the gateway closes the request.
#[test]
fn failed_record_upsert_leaves_no_ghost_request() {
    let mut net = Net::new(GatewayConfig::default(), &RunnerConfig::default(), 1);
    let req = RequestId::from_u32(21);
    net.start_actor(0);
    net.fail_upserts = 1;
    net.open(req, 0);
    assert!(!net.records.contains_key(&req), "the upsert failed");
    net.sleep_actor(0, &[req]);
    assert_eq!(
        net.gw.request(req).map(|i| i.phase),
        Some(Phase::Hibernating)
    );
    net.start_actor(0);
    net.settle();
    let frame = hws::KnownClose::StaleMetadata.frame();
    assert_eq!(
        net.closed(req),
        Some(&CloseReason::RunnerClosed(frame.clone()))
    );
    assert!(net.gw_events.contains(&gateway::Action::CloseClient {
        request_id: req,
        frame
    }));
    // Nothing is left anywhere.
    net.advance(Duration::from_secs(100));
    assert!(net.gw.is_empty());
    assert!(net.runners[0].is_empty());
    assert!(net.storage.is_empty() && net.records.is_empty());
}

/// Weak spot 17 (a runner cannot hand a socket back except by the actor stopping): hws's
/// `Runner::hibernate` hands a socket back to drain it; the actor then stops and the request
/// resumes on the actor's next runner with nothing lost or delivered twice. (The simulator found
/// that a hand-back *not* followed by the actor stopping loses the connection to the ack
/// timeout: the gateway wakes it into the still-running actor, which no longer holds the socket;
/// `Runner::hibernate` documents the drain contract.)
#[test]
fn weak_spot_17_hand_back_then_stop_resumes_on_the_next_runner() {
    let mut net = Net::new(GatewayConfig::default(), &RunnerConfig::default(), 2);
    let req = RequestId::from_u32(17);
    net.start_actor(0);
    net.open(req, 0);
    net.send(req, b"one").expect("fits");
    net.send(req, b"two").expect("fits");
    net.settle();
    assert_eq!(net.delivered_indices(req), [1, 2]);
    net.runners[0]
        .hibernate(net.now, Net::socket(req))
        .expect("open hibernatable socket");
    net.settle();
    assert_eq!(
        net.gw.request(req).map(|i| i.phase),
        Some(Phase::Hibernating)
    );
    assert!(
        net.gw_events.iter().any(
            |a| matches!(a, gateway::Action::RequestWake { request_id, .. } if *request_id == req)
        ),
        "pending messages ask for a wake at once"
    );
    // Drain: the actor stops, starts on runner 1, the request wakes there.
    net.sleep_actor(0, &[req]);
    net.start_actor(1);
    net.settle();
    net.gw.wake(net.now, req, route(1)).expect("hibernating");
    net.settle();
    net.send(req, b"three").expect("fits");
    net.advance(Duration::from_secs(6));
    assert_eq!(
        net.delivered_indices(req),
        [1, 2, 3],
        "nothing lost or repeated"
    );
    assert_eq!(net.pending(req), 0);
    assert_eq!(net.closed(req), None);
}
