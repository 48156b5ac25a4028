//! The system under test: the runner, driven as an app and a gateway would drive it, checked
//! against the model after every transition.

use super::*;

pub(crate) struct Sut {
    runner: Runner,
    now: Timestamp,
    /// Persist requests not answered yet: socket → (server, client).
    outstanding: BTreeMap<u8, (u16, u16)>,
    /// Persists of sockets that closed before the app answered: the app still answers them
    /// (the write lands anyway), before the next transition.
    stale: Vec<(u8, u16)>,
    /// The app's storage.
    storage: BTreeMap<u8, (u16, u16)>,
    /// Sockets that were stopping when the actor stopped (the gateway hibernates them).
    stopping: BTreeSet<u8>,
    hibernatable: BTreeMap<u8, bool>,
    delivered: BTreeMap<u8, u16>,
    persisted: BTreeMap<u8, u16>,
    next_out: BTreeMap<u8, u16>,
}

impl Sut {
    fn sock_of(id: hibernating_ws::runner::SocketId) -> u8 {
        u8::try_from(u32::from_le_bytes(id.request_id.0)).expect("test socket ids are small")
    }

    /// Drains every action, playing the app and checking the invariants.
    fn drain(&mut self) {
        while let Some(action) = self.runner.poll_action() {
            match decode(action) {
                Out::Msg { socket, index, .. } => {
                    let s = Self::sock_of(socket);
                    if self.hibernatable.get(&s) == Some(&true) {
                        let last = self.delivered[&s];
                        assert_eq!(
                            index,
                            last.wrapping_add(1),
                            "socket {s}: delivered out of order"
                        );
                    }
                    self.delivered.insert(s, index);
                }
                Out::Persist {
                    socket,
                    server_index,
                    client_index,
                } => {
                    let s = Self::sock_of(socket);
                    assert_eq!(
                        server_index, self.delivered[&s],
                        "a persist names the last delivered index"
                    );
                    self.outstanding.insert(s, (server_index, client_index));
                }
                Out::Ack { socket, out, index } => {
                    let s = Self::sock_of(socket);
                    self.check_out(s, out);
                    let persisted = self.persisted.get(&s).copied();
                    assert_eq!(
                        Some(index),
                        persisted,
                        "socket {s}: every ack equals the persisted index"
                    );
                    let delivered = MessageIndex::new(self.delivered[&s]);
                    assert!(
                        MessageIndex::new(index).is_at_or_before(delivered),
                        "ack ≤ delivered"
                    );
                }
                // A close 1011 `ws.socket_not_found` answers a frame for a socket the runner does
                // not hold (any more): stateless, index 0.
                Out::SendClose {
                    out, ref reason, ..
                } if reason.as_deref() == Some("ws.socket_not_found") => {
                    assert_eq!(out, 0, "a stateless close uses index 0");
                }
                Out::SendOpen { socket, out, .. }
                | Out::SendMsg { socket, out, .. }
                | Out::SendClose { socket, out, .. } => {
                    let s = Self::sock_of(socket);
                    if self.next_out.contains_key(&s) {
                        self.check_out(s, out);
                    } else {
                        assert_eq!(out, 0, "a stateless close uses index 0");
                    }
                }
                Out::Delete { socket } => {
                    self.storage.remove(&Self::sock_of(socket));
                }
                Out::Closed { socket, reason } => {
                    let s = Self::sock_of(socket);
                    assert!(
                        matches!(
                            reason,
                            CloseReason::MessageIndexSkip
                                | CloseReason::GatewayClosed(_)
                                | CloseReason::ActorStopped
                                | CloseReason::StaleMetadata
                        ),
                        "{reason:?}"
                    );
                    self.forget(s);
                }
                Out::Restored { .. }
                | Out::Open { .. }
                | Out::ActorStopped { .. }
                | Out::Pong { .. } => {}
            }
        }
    }

    fn check_out(&mut self, s: u8, out: u16) {
        let expected = self.next_out.get(&s).copied().unwrap_or(0);
        assert_eq!(
            out, expected,
            "socket {s}: outgoing indices are consecutive"
        );
        self.next_out.insert(s, out.wrapping_add(1));
    }

    fn restart(&mut self, now: Timestamp) {
        let listed: Vec<_> = core::mem::take(&mut self.stopping).into_iter().collect();
        let metas: Vec<_> = self
            .storage
            .iter()
            .map(|(&s, &(server, client))| meta(socket_id(s), server, client))
            .collect();
        for &s in &listed {
            // Settled silently on stop: the runner forgot it.
            self.forget(s);
            if let Some(&(server, client)) = self.storage.get(&s) {
                self.delivered.insert(s, server);
                self.persisted.insert(s, server);
                self.next_out.insert(s, client);
                self.hibernatable.insert(s, true);
            }
        }
        self.runner
            .actor_starting(
                now,
                ACTOR,
                listed.iter().map(|&s| hib(socket_id(s))).collect(),
            )
            .expect("start");
        self.runner.restore(now, ACTOR, metas).expect("restore");
    }

    fn message(&mut self, now: Timestamp, s: u8, delta: u16, len: u8) {
        let id = socket_id(s);
        let p = self.runner.socket(id).map_or(0, |i| i.last_delivered.get());
        let data = vec![0u8; usize::from(len)];
        // Held payloads are one byte in the model; gaps carry one byte.
        let data = if (2..=32_768).contains(&delta) {
            vec![1u8]
        } else {
            data
        };
        let frame = runner_support::frame(id, p.wrapping_add(delta), msg_kind(&data));
        let result = self.runner.handle_frame(now, &frame);
        match self.runner.socket(id).map(|i| i.state) {
            _ if result.is_ok() => {}
            None => assert_eq!(result, Err(ReceiveError::UnknownSocket { socket: id })),
            Some(_) => assert_eq!(result, Err(ReceiveError::NotOpen { socket: id })),
        }
    }

    fn forget(&mut self, s: u8) {
        if let Some((server, _)) = self.outstanding.remove(&s) {
            self.stale.push((s, server));
        }
        self.hibernatable.remove(&s);
        self.next_out.remove(&s);
    }
}

pub(crate) struct RunnerTest;

impl StateMachineTest for RunnerTest {
    type SystemUnderTest = Sut;
    type Reference = RefMachine;

    fn init_test(model: &Model) -> Sut {
        let now = Timestamp::ZERO;
        let mut runner = Runner::new(config(model.policy), now).expect("valid config");
        runner
            .actor_starting(now, ACTOR, Vec::new())
            .expect("start");
        runner.restore(now, ACTOR, Vec::new()).expect("restore");
        Sut {
            runner,
            now,
            outstanding: BTreeMap::new(),
            stale: Vec::new(),
            storage: BTreeMap::new(),
            stopping: BTreeSet::new(),
            hibernatable: BTreeMap::new(),
            delivered: BTreeMap::new(),
            persisted: BTreeMap::new(),
            next_out: BTreeMap::new(),
        }
    }

    #[allow(clippy::too_many_lines)] // one transition after another
    fn apply(mut sut: Sut, model: &Model, t: Transition) -> Sut {
        let now = sut.now;
        // Late results of closed sockets: harmless, and never taken for a newer socket's.
        for (s, server) in core::mem::take(&mut sut.stale) {
            let socket = socket_id(s);
            let late = sut.runner.persisted(now, socket, MessageIndex::new(server));
            let unknown = hibernating_ws::runner::SocketError::UnknownSocket { socket };
            assert_eq!(late, Err(unknown), "late result of socket {s}");
        }
        match t {
            Transition::Open { s, hib } => {
                let id = socket_id(s);
                let frame = runner_support::frame(id, 0, open_kind(ACTOR));
                sut.runner.handle_frame(now, &frame).expect("open");
                sut.next_out.insert(s, 0);
                sut.delivered.insert(s, 0);
                sut.persisted.remove(&s);
                sut.hibernatable.insert(s, hib);
                sut.runner.accept(now, id, hib).expect("accept");
            }
            Transition::Msg { s, delta, len } => sut.message(now, s, delta, len),
            Transition::PersistOk { s } => {
                let (server, client) = sut
                    .outstanding
                    .remove(&s)
                    .expect("model: a persist is in flight");
                sut.storage.insert(s, (server, client));
                sut.persisted.insert(s, server);
                sut.runner
                    .persisted(now, socket_id(s), MessageIndex::new(server))
                    .expect("persisted");
            }
            Transition::PersistFail { s } => {
                let (server, _) = sut
                    .outstanding
                    .remove(&s)
                    .expect("model: a persist is in flight");
                sut.runner
                    .persist_failed(now, socket_id(s), MessageIndex::new(server))
                    .expect("persist_failed");
                if model.socks[s as usize].phase == Phase::Open {
                    // The failed persist is no longer in flight: its result cannot be reported.
                    let socket = socket_id(s);
                    let result = sut.runner.persisted(now, socket, MessageIndex::new(server));
                    assert_eq!(result, Err(SocketError::UnexpectedPersist { socket }));
                }
            }
            Transition::Advance { micros } => {
                sut.now = now + Duration::from_micros(micros);
                handle_timeout_checked(&mut sut.runner, sut.now);
            }
            Transition::GatewayClose { s } => {
                let existed = sut.runner.socket(socket_id(s)).is_some();
                let result = sut.runner.handle_frame(
                    now,
                    &runner_support::frame(socket_id(s), 0, close_kind(Some(1000), None)),
                );
                if existed {
                    assert_eq!(result, Ok(()));
                } else {
                    let socket = socket_id(s);
                    assert_eq!(result, Err(ReceiveError::UnknownSocket { socket }));
                }
                sut.stopping.remove(&s);
            }
            Transition::Send { s } => {
                let socket = socket_id(s);
                let result = sut.runner.send(now, socket, b"out", true);
                match sut.runner.socket(socket).map(|i| i.state) {
                    Some(SocketState::Open) => assert!(result.is_ok()),
                    Some(_) => assert_eq!(result, Err(SendError::NotOpen { socket })),
                    None => assert_eq!(result, Err(SendError::UnknownSocket { socket })),
                }
            }
            Transition::Stop => {
                for s in 0..SOCKETS {
                    if sut
                        .runner
                        .socket(socket_id(s))
                        .is_some_and(|i| i.hibernatable && i.state == SocketState::Open)
                    {
                        sut.stopping.insert(s);
                    }
                }
                sut.runner.actor_stopping(now, ACTOR).expect("stop");
            }
            Transition::Restart => sut.restart(now),
        }
        sut.drain();
        sut
    }

    fn check_invariants(sut: &Sut, model: &Model) {
        // The engine's own invariant check exists with `sim` (as in `gateway_model.rs`).
        #[cfg(feature = "sim")]
        if let Err(e) = sut.runner.check_invariants() {
            panic!("runner invariant: {e}");
        }
        for s in 0..SOCKETS {
            let k = &model.socks[s as usize];
            let info = sut.runner.socket(socket_id(s));
            let Some(info) = info else {
                assert_eq!(k.phase, Phase::Absent, "socket {s}: the model still has it");
                continue;
            };
            let state = match k.phase {
                Phase::Open => SocketState::Open,
                Phase::Stopping => SocketState::Stopping,
                Phase::Absent => panic!("socket {s}: the runner still has it: {info:?}"),
            };
            assert_eq!(info.state, state, "socket {s}");
            assert_eq!(info.hibernatable, k.hib, "socket {s}");
            assert_eq!(info.last_delivered.get(), k.p, "socket {s}: last delivered");
            assert_eq!(
                info.last_persisted.map(MessageIndex::get),
                k.persisted,
                "socket {s}: persisted"
            );
            assert_eq!(info.last_acked.get(), k.acked, "socket {s}: acked");
            assert_eq!(
                info.next_client_index.get(),
                k.next_client,
                "socket {s}: next client index"
            );
            assert_eq!(
                info.persist_in_flight.map(MessageIndex::get),
                k.in_flight.map(|f| f.0),
                "socket {s}: in flight"
            );
            assert_eq!(info.held, k.held.len(), "socket {s}: held");
            // acked ≤ persisted ≤ delivered, serially.
            if let Some(lp) = info.last_persisted {
                assert!(lp.is_at_or_before(info.last_delivered));
                assert!(info.last_acked.is_at_or_before(lp) || info.last_acked == lp);
            }
            assert_eq!(
                sut.outstanding.get(&s).copied(),
                k.in_flight,
                "socket {s}: outstanding persist"
            );
        }
        assert_eq!(sut.storage, model.metas, "the app's storage");
        if let Some(t) = sut.runner.poll_timeout() {
            // Every armed deadline in the model matches the earliest one of the runner.
            let model_next = model
                .socks
                .iter()
                .flat_map(|k| [k.deadline, k.retry_at, k.gap_deadline])
                .flatten()
                .min();
            assert_eq!(Some(t.as_micros()), model_next, "next deadline");
        } else {
            assert!(
                model.socks.iter().all(|k| k.deadline.is_none()
                    && k.retry_at.is_none()
                    && k.gap_deadline.is_none())
            );
        }
    }
}
