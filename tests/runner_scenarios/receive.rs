//! Receive errors, framing and pings; arbitrary frames never panic.

use super::*;

#[test]
fn every_receive_error_is_counted() {
    let mut h = Harness::started();
    let s = sid(130, 1);
    // Malformed.
    assert!(matches!(
        h.runner.handle_frame(h.now, &[7, 0, 99]),
        Err(ReceiveError::Malformed(_))
    ));
    assert!(matches!(
        h.runner.handle_frame(h.now, &[]),
        Err(ReceiveError::Malformed(_))
    ));
    // Unknown actor (answered).
    assert_eq!(
        h.feed(s, 0, open_kind("nobody")),
        Err(ReceiveError::UnknownActor {
            actor_id: "nobody".into()
        })
    );
    // Unknown socket.
    assert_eq!(
        h.feed(s, 1, msg_kind(b"?")),
        Err(ReceiveError::UnknownSocket { socket: s })
    );
    // Not open.
    h.feed(s, 0, open_kind(ACTOR)).unwrap();
    assert_eq!(
        h.feed(s, 1, msg_kind(b"?")),
        Err(ReceiveError::NotOpen { socket: s })
    );
    // Unsupported: ToRunnerClose and HTTP kinds.
    let close = wire::encode_versioned(7, &ToRunner::Close);
    assert_eq!(
        h.runner.handle_frame(h.now, &close),
        Err(ReceiveError::Unsupported {
            kind: "runner_close"
        })
    );
    assert_eq!(
        h.runner.handle_tunnel_message(
            h.now,
            tunnel(
                s,
                2,
                hibernating_ws::wire::ToClientTunnelMessageKind::RequestAbort
            )
        ),
        Err(ReceiveError::Unsupported {
            kind: "request_abort"
        })
    );
    // Queue full.
    let mut q = Harness::new(RunnerConfig::default().with_max_queued_per_actor(1));
    q.runner.actor_starting(q.now, ACTOR, vec![]).unwrap();
    q.feed(s, 0, open_kind(ACTOR)).unwrap();
    assert_eq!(
        q.feed(s, 1, msg_kind(b"")),
        Err(ReceiveError::QueueFull {
            actor_id: ACTOR.into()
        })
    );
    assert_eq!(q.runner.stats().dropped_queue_full, 1);

    let st = h.runner.stats();
    assert_eq!(st.dropped_malformed, 2);
    assert_eq!(st.dropped_unknown_actor, 1);
    assert_eq!(st.actor_not_found, 1);
    assert_eq!(st.dropped_unknown_socket, 1);
    assert_eq!(st.dropped_not_open, 1);
    assert_eq!(st.dropped_unsupported, 2);
    assert_eq!(st.frames_received, 7);
}

#[test]
fn socket_limit_answers_server_error() {
    let mut h = Harness::new(RunnerConfig::default().with_max_sockets(2));
    h.start_actor();
    h.open(sid(160, 1), 0, false);
    h.open(sid(160, 2), 0, true);
    let third = sid(160, 3);
    assert_eq!(
        h.feed(third, 0, open_kind(ACTOR)),
        Err(ReceiveError::SocketLimit { socket: third })
    );
    assert_eq!(h.drain(), vec![Out::close(third, 0, 1011, "Server Error")]);
    assert_eq!(h.runner.stats().dropped_socket_limit, 1);
    // Room again once a socket closes.
    h.runner
        .close(h.now, sid(160, 1), CloseFrame::code(1000))
        .unwrap();
    let _ = h.drain();
    h.offer(third, 0);
}

#[test]
fn ping_is_answered_with_a_pong_only_for_a_socket_the_runner_holds() {
    let mut h = Harness::default_config();
    let ping = |s: hibernating_ws::runner::SocketId| {
        wire::encode_versioned(
            7,
            &ToRunner::Ping(ToRunnerPing {
                gateway_id: s.gateway_id,
                request_id: s.request_id,
                ts: -5,
            }),
        )
    };
    // A socket the runner never held: a typed answer, close 1011 `ws.socket_not_found`.
    let unknown = hibernating_ws::runner::SocketId::new(GatewayId([9; 4]), RequestId([8; 4]));
    h.runner.handle_frame(h.now, &ping(unknown)).unwrap();
    assert_eq!(
        h.drain(),
        vec![Out::close(unknown, 0, 1011, "ws.socket_not_found")]
    );
    // A socket it holds: a pong.
    h.start_actor();
    let s = sid(141, 1);
    h.feed(s, 0, open_kind(ACTOR)).unwrap();
    h.runner.accept(h.now, s, true).unwrap();
    let _ = h.drain();
    h.runner.handle_frame(h.now, &ping(s)).unwrap();
    assert_eq!(
        h.drain(),
        vec![Out::Pong {
            gateway_id: s.gateway_id,
            request_id: s.request_id,
            ts: -5
        }]
    );
    let st = h.runner.stats();
    assert_eq!((st.pongs, st.not_found_answers), (1, 1));
}

#[test]
fn runner_socket_framing_uses_plain_to_client_and_to_server() {
    let mut h = Harness::new(RunnerConfig::default().with_framing(Framing::RunnerSocket));
    h.start_actor();
    let s = sid(140, 1);
    let open = wire::encode(&ToClient::TunnelMessage(tunnel(s, 0, open_kind(ACTOR))));
    h.runner.handle_frame(h.now, &open).unwrap();
    assert!(matches!(
        h.runner.poll_action(),
        Some(hibernating_ws::runner::Action::Open { .. })
    ));
    h.runner.accept(h.now, s, false).unwrap();
    let Some(hibernating_ws::runner::Action::Publish { frame, .. }) = h.runner.poll_action() else {
        panic!("expected a publish")
    };
    let ToServer::TunnelMessage(m) = wire::decode::<ToServer>(&frame).unwrap() else {
        panic!("expected a tunnel message")
    };
    assert_eq!(m.message_id.message_index.get(), 0);
    // A versioned frame is malformed on this framing.
    assert!(matches!(
        h.runner.handle_frame(h.now, &frame_for_pubsub(s)),
        Err(ReceiveError::Malformed(_))
    ));
}

fn frame_for_pubsub(s: hibernating_ws::runner::SocketId) -> Vec<u8> {
    runner_support::frame(s, 1, msg_kind(b"x"))
}

#[test]
fn time_never_goes_backwards_and_handled_deadlines_do_not_return() {
    let (mut h, s) = Harness::open_socket(150);
    h.msg(s, 1, b"a");
    let _ = h.drain();
    let deadline = h.runner.poll_timeout().unwrap();
    h.runner.handle_timeout(deadline);
    let _ = h.drain();
    // An earlier `now` is clamped: no panic, no rewind.
    h.runner.handle_timeout(Timestamp::ZERO);
    assert!(h.runner.poll_timeout().is_none_or(|t| t > deadline));
    // At the end of time deadlines cannot be armed, and nothing loops.
    h.persisted(s, 1);
    let _ = h.drain();
    h.runner.handle_timeout(Timestamp::MAX);
    h.msg(s, 2, b"b");
    h.runner.handle_timeout(Timestamp::MAX);
    assert!(
        h.runner
            .poll_timeout()
            .is_none_or(|t| t > Timestamp::MAX - Duration::from_secs(1))
    );
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(512))]

    /// Arbitrary bytes never panic, on either framing; they are either a valid frame or counted
    /// as malformed.
    #[test]
    fn arbitrary_frames_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
                                    runner_socket in proptest::bool::ANY) {
        let framing = if runner_socket { Framing::RunnerSocket } else { Framing::default() };
        let mut h = Harness::new(RunnerConfig::default().with_framing(framing));
        h.start_actor();
        let result = h.runner.handle_frame(h.now, &bytes);
        let st = h.runner.stats();
        if let Err(ReceiveError::Malformed(_)) = result {
            proptest::prop_assert_eq!(st.dropped_malformed, 1);
        } else {
            proptest::prop_assert_eq!(st.dropped_malformed, 0);
        }
        while h.runner.poll_action().is_some() {}
    }
}
