//! Routing, malformed input and the drop counters.

use super::*;

#[test]
fn route_and_gateway_checks_drop_and_count() {
    let (mut h, id) = Harness::active_request(1, true);
    h.send(id, b"a").expect("room");
    h.drain();
    // Another gateway's id.
    let foreign = ToServerTunnelMessage {
        message_id: MessageId {
            gateway_id: GatewayId([0; 4]),
            request_id: id,
            message_index: idx(0),
        },
        kind: ack_kind(1),
    };
    assert_eq!(
        h.gw.handle_runner_message(h.now, ROUTE, foreign),
        Err(ReceiveError::WrongGateway {
            request_id: id,
            gateway_id: GatewayId([0; 4])
        })
    );
    // Another route.
    assert_eq!(
        h.runner_on(ROUTE2, id, ack_kind(1)),
        Err(ReceiveError::WrongRoute {
            request_id: id,
            route: ROUTE2
        })
    );
    // Unknown request.
    assert_eq!(
        h.runner(rid(99), ack_kind(1)),
        Err(ReceiveError::UnknownRequest {
            request_id: rid(99)
        })
    );
    assert_eq!(h.pending(id), 1, "no dropped message had an effect");
    // After a wake to ROUTE2 the old route is refused, the new one accepted.
    h.gw.actor_stopped(h.now, id).expect("live");
    h.gw.wake(h.now, id, ROUTE2).expect("hibernating");
    h.drain();
    assert_eq!(
        h.runner_on(ROUTE, id, ack_kind(1)),
        Err(ReceiveError::WrongRoute {
            request_id: id,
            route: ROUTE
        })
    );
    let pong = ToGatewayPong {
        request_id: id,
        ts: 0,
    };
    assert_eq!(
        h.gw.handle_pong(h.now, ROUTE, pong),
        Err(ReceiveError::WrongRoute {
            request_id: id,
            route: ROUTE
        })
    );
    assert_eq!(
        h.gw.handle_pong(
            h.now,
            ROUTE2,
            ToGatewayPong {
                request_id: rid(98),
                ts: 0
            }
        ),
        Err(ReceiveError::UnknownRequest {
            request_id: rid(98)
        })
    );
    assert!(h.runner_on(ROUTE2, id, ack_kind(1)).is_ok());
    assert_eq!(h.pending(id), 0);
    let s = h.gw.stats();
    assert_eq!(
        (
            s.dropped_wrong_gateway,
            s.dropped_wrong_route,
            s.dropped_unknown_request
        ),
        (1, 3, 2)
    );
}

#[test]
fn malformed_frames_are_dropped_and_counted_and_valid_frames_work() {
    let (mut h, id) = Harness::active_request(1, true);
    h.send(id, b"a").expect("room");
    h.drain();
    let ack = ToGateway::TunnelMessage(ToServerTunnelMessage {
        message_id: MessageId {
            gateway_id: GW,
            request_id: id,
            message_index: idx(0),
        },
        kind: ack_kind(1),
    });
    let good = wire::encode_versioned(wire::PROTOCOL_VERSION, &ack);
    let bad_inputs: Vec<Vec<u8>> = vec![
        vec![],
        vec![7],
        good[..good.len() - 1].to_vec(),
        [good.as_slice(), &[0]].concat(),
        wire::encode_versioned(3, &ack),
        vec![7, 0, 9, 9, 9],
    ];
    for bytes in &bad_inputs {
        let r = h.gw.handle_runner_frame(h.now, ROUTE, bytes);
        assert!(
            matches!(r, Err(ReceiveError::Malformed(_))),
            "{bytes:?}: {r:?}"
        );
    }
    assert!(matches!(
        h.gw.handle_runner_frame(h.now, ROUTE, &wire::encode_versioned(3, &ack)),
        Err(ReceiveError::Malformed(DecodeError::UnsupportedVersion {
            version: 3
        }))
    ));
    assert_eq!(h.gw.stats().dropped_malformed, bad_inputs.len() as u64 + 1);
    assert_eq!(h.pending(id), 1);
    h.gw.handle_runner_frame(h.now, ROUTE, &good)
        .expect("valid");
    assert_eq!(h.pending(id), 0);
    let pong = wire::encode_versioned(
        wire::PROTOCOL_VERSION,
        &ToGateway::Pong(ToGatewayPong {
            request_id: id,
            ts: 1,
        }),
    );
    h.gw.handle_runner_frame(h.now, ROUTE, &pong)
        .expect("valid pong");
    assert_eq!(h.gw.stats().pongs_received, 1);
    // A frame over the decode limit is refused before decoding.
    let mut c = GatewayConfig::default();
    c.decode_limits.max_frame_size = 8;
    let mut small = Harness::with(c);
    assert!(matches!(
        small.gw.handle_runner_frame(small.now, ROUTE, &good),
        Err(ReceiveError::Malformed(DecodeError::FrameTooLarge { .. }))
    ));
}

#[test]
fn every_dropped_input_increments_exactly_one_counter() {
    let mut h = Harness::new();
    h.active(rid(1), true);
    h.open(rid(2));
    let inputs: Vec<(RouteId, RequestId, ToServerTunnelMessageKind)> = vec![
        (ROUTE, rid(1), open_kind(true)),
        (ROUTE2, rid(1), ack_kind(0)),
        (ROUTE, rid(3), ack_kind(0)),
        (ROUTE, rid(2), ack_kind(0)),
        (ROUTE, rid(1), ToServerTunnelMessageKind::ResponseAbort),
    ];
    let mut errors = 0u64;
    for (route, id, kind) in inputs {
        if h.runner_on(route, id, kind).is_err() {
            errors += 1;
        }
    }
    errors += u64::from(h.gw.handle_runner_frame(h.now, ROUTE, b"junk").is_err());
    let s = h.gw.stats();
    let dropped = s.dropped_malformed
        + s.dropped_unknown_request
        + s.dropped_wrong_gateway
        + s.dropped_wrong_route
        + s.dropped_invalid_for_phase
        + s.dropped_unsupported;
    assert_eq!((errors, dropped), (6, 6));
}
