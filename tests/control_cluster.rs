//! Cluster mode of the control engine, in memory: several `Control` nodes, runner sessions
//! connected to different nodes, an in-memory bus for the cluster actions (which can lose
//! frames) and an in-memory placement table with revisions (the shared state).
//!
//! Clients on one node, their actor's runner on another: opens, messages, sleeps and wakes on a
//! runner of another node deliver every message exactly once and in order; foreign tunnel
//! messages are forwarded, not refused; a lost bus frame is healed by retransmission; and a
//! single-node engine (cluster off) refuses the cluster calls.

#![allow(clippy::unwrap_used, clippy::too_many_lines)] // a test harness

extern crate alloc;

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use core::time::Duration;

use hibernating_ws::Timestamp;
use hibernating_ws::control::{
    Action, ActorPhase, ActorSpec, ClusterError, ConnId, Control, ControlConfig, StopReason,
};
use hibernating_ws::gateway::{self, Gateway, GatewayConfig, OpenRequest, Phase};
use hibernating_ws::runner::{GapPolicy, PersistedSocket, RunnerConfig, SocketId};
use hibernating_ws::session::{self, Session, SessionConfig};
use hibernating_ws::wire::{ActorConfig, GatewayId, HibernatingRequest, RequestId};
use hibernating_ws::{MessageIndex, runner};

/// What crosses the bus between nodes.
enum BusMsg {
    /// A `ToRunner` frame for a runner of the destination node.
    ToRunner { runner_id: String, frame: Vec<u8> },
    /// A `ToGateway` frame from (node, runner).
    ToGateway {
        node: usize,
        runner_id: String,
        frame: Vec<u8>,
    },
}

struct RunnerProc {
    session: Session,
    node: usize,
    conn: ConnId,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Placed {
    Starting,
    Running,
    Sleeping,
}

/// The shared state: per actor its placement and a revision bumped on every write.
#[derive(Clone, Debug)]
struct Placement {
    state: Placed,
    node: usize,
    runner_id: String,
    generation: u32,
}

struct Cluster {
    now: Timestamp,
    nodes: Vec<Control>,
    runners: Vec<RunnerProc>,
    bus: VecDeque<(usize, BusMsg)>,
    /// Drop every n-th bus frame (0: none).
    lose_every: usize,
    bus_count: usize,
    lost: usize,
    placement: BTreeMap<String, Placement>,
    records: BTreeSet<(String, GatewayId, RequestId)>,
    storage: BTreeMap<SocketId, (String, PersistedSocket)>,
    delivered: BTreeMap<SocketId, Vec<Vec<u8>>>,
    sent: BTreeMap<RequestId, (usize, Vec<Vec<u8>>)>,
    log: Vec<(usize, Action)>,
}

fn gw(i: usize) -> GatewayId {
    GatewayId([b'g', b'w', b'0', b'0' + u8::try_from(i).unwrap()])
}

fn node_name(i: usize) -> String {
    format!("node-{i}")
}

impl Cluster {
    /// `nodes` nodes; runner `i` (2 slots) connects to node `runner_nodes[i]`; actors `a`, `b`.
    fn new(nodes: usize, runner_nodes: &[usize]) -> Self {
        let now = Timestamp::from_secs(1_000);
        let mut gcfg = GatewayConfig::default();
        gcfg.retransmit_timeout = Some(Duration::from_millis(500));
        let mut ccfg = ControlConfig::default();
        ccfg.cluster = true;
        let nodes: Vec<Control> = (0..nodes)
            .map(|i| {
                let g = Gateway::new(gcfg.clone(), gw(i), now).unwrap();
                Control::new(ccfg.clone(), g, 100 + i as u64, now).unwrap()
            })
            .collect();
        let mut c = Self {
            now,
            nodes,
            runners: Vec::new(),
            bus: VecDeque::new(),
            lose_every: 0,
            bus_count: 0,
            lost: 0,
            placement: BTreeMap::new(),
            records: BTreeSet::new(),
            storage: BTreeMap::new(),
            delivered: BTreeMap::new(),
            sent: BTreeMap::new(),
            log: Vec::new(),
        };
        for n in 0..c.nodes.len() {
            for a in ["a", "b"] {
                let spec = ActorSpec {
                    runner_name: "default".into(),
                    config: ActorConfig {
                        name: a.into(),
                        key: None,
                        create_ts: 0,
                        input: None,
                    },
                };
                c.nodes[n].create_actor(now, a, spec).unwrap();
            }
        }
        for (i, &node) in runner_nodes.iter().enumerate() {
            let mut scfg = SessionConfig::new("default", 2);
            scfg.runner = RunnerConfig::default().with_gap_policy(GapPolicy::Await);
            let mut session = Session::new(scfg, now).unwrap();
            let conn = ConnId(i as u64 + 1);
            c.nodes[node]
                .runner_connected(now, conn, &format!("runner-{i}"))
                .unwrap();
            session.connected(now);
            c.runners.push(RunnerProc {
                session,
                node,
                conn,
            });
        }
        c.pump();
        c
    }

    fn runner_id(&self, i: usize) -> String {
        self.runners[i].session.runner_id().unwrap().to_string()
    }

    fn open(&mut self, node: usize, id: RequestId, actor: &str) {
        let open = OpenRequest::new(actor, "/ws").unwrap();
        let now = self.now;
        self.nodes[node].open(now, id, open).unwrap();
        self.sent.insert(id, (node, Vec::new()));
        self.pump();
    }

    fn send(&mut self, id: RequestId) {
        let (node, sent) = self.sent.get_mut(&id).unwrap();
        let mut data = id.0.to_vec();
        data.extend_from_slice(&u32::try_from(sent.len()).unwrap().to_be_bytes());
        let now = self.now;
        self.nodes[*node]
            .client_message(now, id, &data, true)
            .unwrap();
        sent.push(data);
        self.pump();
    }

    fn host_of(&self, actor: &str) -> Option<usize> {
        self.runners
            .iter()
            .position(|r| r.session.runner().actor(actor).is_some())
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += Duration::from_millis(50);
            let now = self.now;
            for n in &mut self.nodes {
                if n.poll_timeout().is_some_and(|t| t <= now) {
                    n.handle_timeout(now);
                }
            }
            for r in &mut self.runners {
                if r.session.poll_timeout().is_some_and(|t| t <= now) {
                    r.session.handle_timeout(now);
                }
            }
            self.pump();
        }
    }

    fn pump(&mut self) {
        for _ in 0..100_000 {
            let mut idle = true;
            for n in 0..self.nodes.len() {
                while let Some(action) = self.nodes[n].poll_action() {
                    idle = false;
                    self.on_control(n, action);
                }
            }
            for i in 0..self.runners.len() {
                while let Some(action) = self.runners[i].session.poll_action() {
                    idle = false;
                    self.on_session(i, action);
                }
            }
            if let Some((to, msg)) = self.bus.pop_front() {
                idle = false;
                self.bus_count += 1;
                if self.lose_every > 0 && self.bus_count.is_multiple_of(self.lose_every) {
                    self.lost += 1;
                } else {
                    self.deliver(to, msg);
                }
            }
            if idle {
                return;
            }
        }
        panic!("the cluster does not settle");
    }

    fn deliver(&mut self, to: usize, msg: BusMsg) {
        let now = self.now;
        match msg {
            BusMsg::ToRunner { runner_id, frame } => {
                let _ = self.nodes[to].handle_forwarded_frame(now, &runner_id, &frame);
            }
            BusMsg::ToGateway {
                node,
                runner_id,
                frame,
            } => {
                let route = self.nodes[to]
                    .remote_route(&node_name(node), &runner_id)
                    .unwrap();
                let _ = self.nodes[to].handle_remote_frame(now, route, &frame);
            }
        }
    }

    fn on_control(&mut self, n: usize, action: Action) {
        let now = self.now;
        match action {
            Action::Send { conn, frame } => {
                let r = self
                    .runners
                    .iter_mut()
                    .find(|r| r.node == n && r.conn == conn)
                    .unwrap();
                r.session.handle_frame(now, &frame).unwrap();
            }
            Action::PublishRemote { route, frame } => {
                let remote = self.nodes[n].remote_runner(route).unwrap().clone();
                let to = (0..self.nodes.len())
                    .find(|&i| node_name(i) == remote.node)
                    .unwrap();
                self.bus.push_back((
                    to,
                    BusMsg::ToRunner {
                        runner_id: remote.runner_id,
                        frame: frame.to_vec(),
                    },
                ));
            }
            Action::ForwardToGateway {
                gateway_id,
                runner_id,
                frame,
            } => {
                let to = (0..self.nodes.len())
                    .find(|&i| gw(i) == gateway_id)
                    .unwrap();
                self.bus.push_back((
                    to,
                    BusMsg::ToGateway {
                        node: n,
                        runner_id,
                        frame,
                    },
                ));
            }
            Action::PlaceActor { actor_id } => self.place(n, &actor_id),
            Action::HibernatingRecord {
                actor_id,
                request_id,
                live,
            } => {
                let key = (actor_id, gw(n), request_id);
                if live {
                    self.records.insert(key);
                } else {
                    self.records.remove(&key);
                }
            }
            Action::ActorRunning {
                ref actor_id,
                generation,
                ref runner_id,
            } => {
                self.placement.insert(
                    actor_id.clone(),
                    Placement {
                        state: Placed::Running,
                        node: n,
                        runner_id: runner_id.clone(),
                        generation,
                    },
                );
                for other in (0..self.nodes.len()).filter(|&o| o != n) {
                    let route = self.nodes[other]
                        .remote_route(&node_name(n), runner_id)
                        .unwrap();
                    self.nodes[other]
                        .running_elsewhere(now, actor_id, route, generation)
                        .unwrap();
                }
                self.log.push((n, action));
            }
            Action::ActorStopped {
                ref actor_id,
                generation,
                ref reason,
            } => {
                if *reason != StopReason::Elsewhere {
                    if let Some(p) = self.placement.get_mut(actor_id) {
                        p.state = Placed::Sleeping;
                    }
                    for other in (0..self.nodes.len()).filter(|&o| o != n) {
                        self.nodes[other]
                            .stopped_elsewhere(now, actor_id, generation)
                            .unwrap();
                    }
                }
                self.log.push((n, action));
            }
            other => self.log.push((n, other)),
        }
    }

    /// The embedder's placement: an actor running or starting stays where it is; otherwise the
    /// first runner with a free slot (preferring one not on `n` when `prefer_remote`) gets it,
    /// at the next generation.
    fn place(&mut self, n: usize, actor_id: &str) {
        let now = self.now;
        match self.placement.get(actor_id).cloned() {
            Some(p) if p.state == Placed::Running => {
                if p.node != n {
                    let route = self.nodes[n]
                        .remote_route(&node_name(p.node), &p.runner_id)
                        .unwrap();
                    self.nodes[n]
                        .running_elsewhere(now, actor_id, route, p.generation)
                        .unwrap();
                }
            }
            Some(p) if p.state == Placed::Starting => {}
            previous => {
                let generation = previous.map_or(0, |p| p.generation + 1);
                // The runner with the fewest actors (first on ties).
                let pick = (0..self.runners.len())
                    .min_by_key(|&i| {
                        self.nodes[self.runners[i].node]
                            .runner(&self.runner_id(i))
                            .map_or(0, |r| r.actors)
                    })
                    .unwrap();
                let (host, runner_id) = (self.runners[pick].node, self.runner_id(pick));
                self.placement.insert(
                    actor_id.into(),
                    Placement {
                        state: Placed::Starting,
                        node: host,
                        runner_id: runner_id.clone(),
                        generation,
                    },
                );
                let others: Vec<HibernatingRequest> = self
                    .records
                    .iter()
                    .filter(|(a, _, _)| a == actor_id)
                    .map(|&(_, gateway_id, request_id)| HibernatingRequest {
                        gateway_id,
                        request_id,
                    })
                    .collect();
                self.nodes[host]
                    .place_here(now, actor_id, &runner_id, generation, &others)
                    .unwrap();
            }
        }
    }

    fn on_session(&mut self, i: usize, action: session::Action) {
        let now = self.now;
        let r = &mut self.runners[i];
        match action {
            session::Action::Send { frame } => {
                let (node, conn) = (r.node, r.conn);
                self.nodes[node]
                    .handle_runner_frame(now, conn, &frame)
                    .unwrap();
            }
            session::Action::StartActor { actor_id, .. } => {
                let persisted: Vec<PersistedSocket> = self
                    .storage
                    .values()
                    .filter(|(a, _)| *a == actor_id)
                    .map(|(_, s)| s.clone())
                    .collect();
                r.session.restore(now, &actor_id, persisted).unwrap();
            }
            session::Action::Runner(runner::Action::Open {
                socket,
                actor_id,
                path,
                headers,
                ..
            }) => {
                let meta = PersistedSocket {
                    socket,
                    server_index: MessageIndex::default(),
                    client_index: MessageIndex::default(),
                    path,
                    headers,
                };
                self.storage.insert(socket, (actor_id, meta));
                r.session.runner_mut().accept(now, socket, true).unwrap();
            }
            session::Action::Runner(runner::Action::Persist {
                socket,
                server_index,
                client_index,
                ..
            }) => {
                if let Some((_, meta)) = self.storage.get_mut(&socket) {
                    meta.server_index = server_index;
                    meta.client_index = client_index;
                }
                let _ = r.session.runner_mut().persisted(now, socket, server_index);
            }
            session::Action::Runner(runner::Action::Message { socket, data, .. }) => {
                self.delivered.entry(socket).or_default().push(data);
            }
            _ => {}
        }
    }

    /// Every request's deliveries are exactly what its client sent, in order.
    fn check_exactly_once(&self) {
        for (id, (node, sent)) in &self.sent {
            let socket = SocketId::new(gw(*node), *id);
            let got = self.delivered.get(&socket).cloned().unwrap_or_default();
            assert_eq!(
                &got, sent,
                "request {id}: deliveries differ from what was sent"
            );
        }
        for n in &self.nodes {
            n.check_invariants().unwrap();
        }
    }
}

const R1: RequestId = RequestId([0, 0, 0, 1]);
const R2: RequestId = RequestId([0, 0, 0, 2]);

#[test]
fn a_client_on_one_node_talks_to_a_runner_on_another() {
    // Node 0 has the client, node 1 the only runner.
    let mut c = Cluster::new(2, &[1]);
    c.open(0, R1, "a");
    assert_eq!(c.host_of("a"), Some(0));
    assert_eq!(c.nodes[0].actor("a").unwrap().phase, ActorPhase::Running);
    assert_eq!(
        c.nodes[0].actor("a").unwrap().runner_id,
        Some(c.runner_id(0))
    );
    assert_eq!(
        c.nodes[0].gateway().request(R1).map(|r| r.phase),
        Some(Phase::Active)
    );
    for _ in 0..5 {
        c.send(R1);
    }
    c.advance(Duration::from_secs(6));
    c.check_exactly_once();
    assert_eq!(c.delivered.values().map(Vec::len).sum::<usize>(), 5);
    // The runner's answers crossed the bus: the hosting node forwarded, never refused.
    assert!(c.nodes[1].stats().frames_forwarded > 0);
    assert!(c.nodes[0].stats().frames_published_remote > 0);
    assert_eq!(c.nodes[1].gateway().stats().dropped_wrong_gateway, 0);
}

#[test]
fn an_actor_sleeps_on_one_node_and_wakes_on_a_runner_of_another() {
    // Runner 0 on node 1, runner 1 on node 2; clients on nodes 0 and 1.
    let mut c = Cluster::new(3, &[1, 2]);
    c.open(0, R1, "a");
    c.open(1, R2, "a");
    let first = c.host_of("a").unwrap();
    for _ in 0..3 {
        c.send(R1);
        c.send(R2);
    }
    // Everything acknowledged (persist debounce), so the sleep does not wake it at once.
    c.advance(Duration::from_secs(6));
    let now = c.now;
    let host_node = c.runners[first].node;
    c.runners[first].session.sleep_actor(now, "a").unwrap();
    c.pump();
    for n in 0..2 {
        assert_eq!(
            c.nodes[n].gateway().request([R1, R2][n]).map(|r| r.phase),
            Some(Phase::Hibernating),
            "node {n}"
        );
    }
    assert_eq!(c.placement["a"].state, Placed::Sleeping);
    assert_eq!(c.records.len(), 2, "both gateways' records are shared");
    // Put `b` on the first runner so `a` wakes on the other one.
    c.place(host_node, "b");
    c.pump();
    c.send(R1);
    c.send(R2);
    let second = c.host_of("a").unwrap();
    assert_ne!(second, first, "a woke on the other runner");
    assert_eq!(c.placement["a"].generation, 1);
    for _ in 0..3 {
        c.send(R1);
        c.send(R2);
    }
    c.advance(Duration::from_secs(6));
    c.check_exactly_once();
    assert_eq!(c.delivered.values().map(Vec::len).sum::<usize>(), 14);
}

#[test]
fn lost_bus_frames_are_healed_by_retransmission() {
    let mut c = Cluster::new(2, &[1]);
    c.open(0, R1, "a");
    c.lose_every = 4;
    for _ in 0..40 {
        c.send(R1);
    }
    c.advance(Duration::from_secs(20));
    c.lose_every = 0;
    c.advance(Duration::from_secs(10));
    assert!(c.lost > 0);
    c.check_exactly_once();
    assert_eq!(c.delivered.values().map(Vec::len).sum::<usize>(), 40);
}

#[test]
fn a_single_node_engine_refuses_the_cluster_calls() {
    let now = Timestamp::from_secs(1);
    let g = Gateway::new(GatewayConfig::default(), gw(0), now).unwrap();
    let mut control = Control::new(ControlConfig::default(), g, 1, now).unwrap();
    assert_eq!(
        control.remote_route("node-1", "r"),
        Err(ClusterError::NotClustered)
    );
    assert_eq!(
        control.place_here(now, "a", "r", 0, &[]),
        Err(ClusterError::NotClustered)
    );
    assert!(matches!(
        control.handle_forwarded_frame(now, "r", &[7, 0, 4]),
        Err(ClusterError::UnknownRunner { .. })
    ));
}

#[test]
fn forwarded_frames_are_checked() {
    let mut c = Cluster::new(2, &[1]);
    let runner_id = c.runner_id(0);
    let now = c.now;
    // Not a tunnel frame, a bad version, too short.
    for bad in [&[7u8, 0, 0][..], &[9, 9, 4], &[7]] {
        assert_eq!(
            c.nodes[1].handle_forwarded_frame(now, &runner_id, bad),
            Err(ClusterError::Malformed {
                runner_id: runner_id.clone()
            })
        );
    }
    assert_eq!(
        c.nodes[0].handle_remote_frame(now, gateway::RouteId(999), &[7, 0, 1]),
        Err(ClusterError::UnknownRoute { route: 999 })
    );
    assert!(matches!(
        c.nodes[0].place_here(now, "a", &runner_id, 0, &[]),
        Err(ClusterError::RunnerUnavailable { .. })
    ));
}
