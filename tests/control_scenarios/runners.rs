//! Runners: handshake, ids, reconnects, loss (the control engine and its runner sessions).

use super::*;

#[test]
fn reconnect_within_threshold_keeps_runner_id_and_actors() {
    let mut w = world(1);
    w.open(R1, "a").unwrap();
    let id = w.runners[0].session.runner_id().unwrap().to_string();
    w.disconnect(0);
    w.advance(Duration::from_secs(5));
    w.send(R1).unwrap();
    w.connect(0);
    assert_eq!(w.runners[0].session.runner_id(), Some(id.as_str()));
    assert!(
        w.log
            .iter()
            .any(|a| matches!(a, Action::RunnerConnected { resumed: true, .. }))
    );
    assert_eq!(phase(&w, "a"), ActorPhase::Running);
    assert!(w.runners[0].session.runner().actor("a").is_some());
    check(&w);
}

#[test]
fn lost_runner_hibernates_requests_and_gets_a_new_id() {
    let mut w = world(2);
    w.open(R1, "a").unwrap();
    w.send(R1).unwrap();
    let host = w.host_of("a").unwrap();
    let old_id = w.runners[host].session.runner_id().unwrap().to_string();
    w.disconnect(host);
    w.advance(Duration::from_secs(11));
    assert!(
        w.log
            .iter()
            .any(|a| matches!(a, Action::RunnerLost { runner_id } if *runner_id == old_id))
    );
    // Its request hibernated; its unacknowledged message needed the actor, so the actor
    // started again on the other runner and the request was woken there.
    assert!(w.log.iter().any(|a| matches!(
        a,
        Action::Gateway(gateway::Action::Hibernated { request_id }) if *request_id == R1
    )));
    let other = 1 - host;
    assert_eq!(w.host_of("a"), Some(other));
    assert_eq!(gw_phase(&w, R1), Some(Phase::Active));
    assert_eq!(w.control.actor("a").unwrap().generation, Some(1));
    // The lost runner stopped its actors by itself too.
    assert!(
        w.session_log
            .iter()
            .any(|(i, a)| *i == host && matches!(a, session::Action::Lost))
    );
    assert!(w.runners[host].session.runner().actor("a").is_none());
    w.send(R1).unwrap();
    assert_eq!(delivered(&w, R1).last(), Some(&1));
    // The lost runner comes back: a new id.
    w.connect(host);
    assert_ne!(w.runners[host].session.runner_id(), Some(old_id.as_str()));
    assert!(
        w.session_log.iter().any(
            |(i, a)| *i == host && matches!(a, session::Action::Connected { new_id: true, .. })
        )
    );
    check(&w);
}

#[test]
fn a_second_connection_with_the_same_key_evicts_the_first() {
    let now = Timestamp::from_secs(1);
    let gw = Gateway::new(GatewayConfig::default(), WORLD_GATEWAY, now).unwrap();
    let mut c = Control::new(config(), gw, 1, now).unwrap();
    let init = wire::encode(&ToServer::Init(init_msg(2)));
    c.runner_connected(now, ConnId(1), "k").unwrap();
    c.handle_runner_frame(now, ConnId(1), &init).unwrap();
    c.runner_connected(now, ConnId(2), "k").unwrap();
    c.handle_runner_frame(now, ConnId(2), &init).unwrap();
    let actions: Vec<Action> = core::iter::from_fn(|| c.poll_action()).collect();
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::CloseConnection {
            conn: ConnId(1),
            reason: ConnCloseReason::Evicted
        }
    )));
    let ids: Vec<&str> = actions
        .iter()
        .filter_map(|a| match a {
            Action::RunnerConnected { runner_id, .. } => Some(runner_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1]);
    assert_eq!(
        c.runner_disconnected(now, ConnId(1)),
        Err(ReceiveError::UnknownConnection { conn: ConnId(1) })
    );
    c.check_invariants().unwrap();
}

#[test]
fn handshake_rules_and_typed_errors() {
    let (mut c, now) = bare_control();
    c.runner_connected(now, ConnId(1), "k").unwrap();
    assert_eq!(
        c.runner_connected(now, ConnId(1), "k"),
        Err(ConnectError::AlreadyConnected { conn: ConnId(1) })
    );
    let pong = wire::encode(&ToServer::Pong(wire::ToServerPong { ts: 1 }));
    assert_eq!(
        c.handle_runner_frame(now, ConnId(1), &pong),
        Err(ReceiveError::NotInitialized {
            conn: ConnId(1),
            message: "ToServerPong"
        })
    );
    assert!(matches!(
        c.handle_runner_frame(now, ConnId(1), &[0xff, 0xff]),
        Err(ReceiveError::Malformed {
            conn: ConnId(1),
            ..
        })
    ));
    assert_eq!(
        c.handle_runner_frame(now, ConnId(9), &pong),
        Err(ReceiveError::UnknownConnection { conn: ConnId(9) })
    );
    let init = wire::encode(&ToServer::Init(init_msg(1)));
    c.handle_runner_frame(now, ConnId(1), &init).unwrap();
    let out = sent(&mut c);
    let [(ConnId(1), ToClient::Init(ci))] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(ci.metadata.runner_lost_threshold, 10_000);
    assert_eq!(ci.metadata.actor_stop_threshold, 30_000);
    assert_eq!(
        c.handle_runner_frame(now, ConnId(1), &init),
        Err(ReceiveError::AlreadyInitialized { conn: ConnId(1) })
    );
    // A connection that never sends its init is closed at the init timeout.
    c.runner_connected(now, ConnId(2), "other").unwrap();
    c.handle_timeout(now + Duration::from_secs(10));
    let closed: Vec<Action> = core::iter::from_fn(|| c.poll_action()).collect();
    assert!(closed.iter().any(|a| matches!(
        a,
        Action::CloseConnection {
            conn: ConnId(2),
            reason: ConnCloseReason::InitTimeout
        }
    )));
    c.check_invariants().unwrap();
}

#[test]
fn limits_are_typed_errors_naming_the_id() {
    let now = Timestamp::from_secs(1);
    let gw = Gateway::new(GatewayConfig::default(), WORLD_GATEWAY, now).unwrap();
    let mut cfg = config();
    cfg.max_connections = 1;
    cfg.max_actors = 1;
    cfg.max_waiting_opens_per_actor = 1;
    cfg.max_runners = 1;
    let mut c = Control::new(cfg, gw, 1, now).unwrap();
    c.runner_connected(now, ConnId(1), "k").unwrap();
    assert_eq!(
        c.runner_connected(now, ConnId(2), "k2"),
        Err(ConnectError::TooManyConnections { conn: ConnId(2) })
    );
    c.create_actor(now, "a", World::spec("a")).unwrap();
    assert_eq!(
        c.create_actor(now, "a", World::spec("a")),
        Err(ActorError::AlreadyExists {
            actor_id: "a".into()
        })
    );
    assert_eq!(
        c.create_actor(now, "b", World::spec("b")),
        Err(ActorError::TooManyActors {
            actor_id: "b".into()
        })
    );
    assert_eq!(
        c.start_actor(now, "zz"),
        Err(ActorError::UnknownActor {
            actor_id: "zz".into()
        })
    );
    let open = |id: &str| gateway::OpenRequest::new(id, "/").expect("a path starting with /");
    c.open(now, R1, open("a")).unwrap();
    assert_eq!(
        c.open(now, R1, open("a")),
        Err(OpenError::AlreadyExists { request_id: R1 })
    );
    assert_eq!(
        c.open(now, R2, open("a")),
        Err(OpenError::TooManyWaiting {
            request_id: R2,
            actor_id: "a".into()
        })
    );
    assert_eq!(
        c.open(now, R2, open("nope")),
        Err(OpenError::UnknownActor {
            request_id: R2,
            actor_id: "nope".into()
        })
    );
    c.check_invariants().unwrap();
}

#[test]
fn ping_is_answered_by_the_session_and_silence_closes_the_connection() {
    let mut w = world(1);
    w.advance(Duration::from_secs(30));
    assert!(
        !w.log
            .iter()
            .any(|a| matches!(a, Action::CloseConnection { .. }))
    );
    assert_eq!(w.control.stats().ping_timeouts, 0);
    // A runner that stops answering (its frames are lost) is closed after the ping timeout.
    let (mut c, now) = bare_control();
    c.runner_connected(now, ConnId(1), "k").unwrap();
    c.handle_runner_frame(now, ConnId(1), &wire::encode(&ToServer::Init(init_msg(1))))
        .unwrap();
    let _ = sent(&mut c);
    let ping_at = c.poll_timeout().unwrap();
    assert_eq!(ping_at, now + Duration::from_secs(3));
    c.handle_timeout(ping_at);
    assert!(matches!(sent(&mut c)[..], [(ConnId(1), ToClient::Ping(_))]));
    c.handle_timeout(ping_at + Duration::from_secs(8));
    let closed: Vec<Action> = core::iter::from_fn(|| c.poll_action()).collect();
    assert!(closed.iter().any(|a| matches!(
        a,
        Action::CloseConnection {
            conn: ConnId(1),
            reason: ConnCloseReason::PingTimeout
        }
    )));
    c.check_invariants().unwrap();
}
