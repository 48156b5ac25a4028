//! Engine tests that need the internals: allocation sharing on replay, the timer-queue bound,
//! and a robustness property (arbitrary operations, including garbage frames, never panic and
//! never break an invariant).

use alloc::vec::Vec;
use core::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::wire::{ToGatewayPong, ToServerTunnelMessage, ToServerTunnelMessageKind};

const GW: GatewayId = GatewayId([1, 2, 3, 4]);

fn drain(gw: &mut Gateway) -> Vec<Action> {
    core::iter::from_fn(|| gw.poll_action()).collect()
}

fn runner_msg(id: RequestId, kind: ToServerTunnelMessageKind) -> ToServerTunnelMessage {
    crate::testing::msg::to_gateway(GW, id, 0, kind)
}

fn open_accepted(gw: &mut Gateway, now: Timestamp, id: RequestId, hibernatable: bool) {
    gw.open(
        now,
        id,
        RouteId(1),
        OpenRequest::new("", "/").expect("a path starting with /"),
    )
    .expect("open");
    let open = crate::testing::msg::runner_open(hibernatable);
    gw.handle_runner_message(now, RouteId(1), runner_msg(id, open))
        .expect("accepted");
    drain(gw);
}

#[test]
fn wake_replays_10000_messages_without_re_encoding() {
    let now = Timestamp::from_secs(1);
    let mut gw = Gateway::new(GatewayConfig::default(), GW, now).expect("valid");
    let id = RequestId::from_u32(1);
    open_accepted(&mut gw, now, id, true);
    let mut originals = Vec::new();
    for _ in 0..10_000 {
        gw.client_message(now, id, &[0x42; 64], true).expect("room");
        match gw.poll_action() {
            Some(Action::Publish { frame, .. }) => originals.push(frame),
            other => panic!("expected a publish, got {other:?}"),
        }
    }
    gw.actor_stopped(now, id).expect("live");
    drain(&mut gw);
    gw.wake(now, id, RouteId(2)).expect("hibernating");
    let replayed: Vec<Frame> = drain(&mut gw)
        .into_iter()
        .filter_map(|a| match a {
            Action::Publish { frame, .. } => Some(frame),
            _ => None,
        })
        .collect();
    assert_eq!(replayed.len(), 10_000);
    assert!(
        originals
            .iter()
            .zip(&replayed)
            .all(|(a, b)| Frame::ptr_eq(a, b)),
        "every replayed frame is the original allocation, in order"
    );
    gw.check_invariants().expect("invariants");
}

/// `check_invariants` accepts a buffered message larger than `decode_limits.max_frame_size`:
/// those limits bound runner input, not what the gateway buffers.
#[test]
fn check_invariants_accepts_pending_frames_larger_than_the_runner_decode_limit() {
    let now = Timestamp::from_secs(1);
    let config = GatewayConfig {
        decode_limits: crate::wire::DecodeLimits {
            max_frame_size: 25,
            max_headers: 0,
            ..crate::wire::DecodeLimits::default()
        },
        ..GatewayConfig::default()
    };
    let mut gw = Gateway::new(config, GW, now).expect("valid");
    let id = RequestId::from_u32(3);
    open_accepted(&mut gw, now, id, true);
    gw.client_message(now, id, &[7; 122], false).expect("room");
    drain(&mut gw);
    assert_eq!(gw.request(id).map(|r| r.pending_messages), Some(1));
    gw.check_invariants().expect("invariants");
}

#[test]
fn stale_timer_entries_stay_bounded() {
    // Every wake pushes an earlier deadline (the ping) while the later keepalive entry stays in
    // the heap; compaction keeps the heap within 2 × requests + slack.
    let mut now = Timestamp::from_secs(1);
    let mut gw = Gateway::new(GatewayConfig::default(), GW, now).expect("valid");
    let ids: Vec<RequestId> = (0..50).map(RequestId::from_u32).collect();
    for &id in &ids {
        open_accepted(&mut gw, now, id, true);
    }
    for round in 0..200u64 {
        now += Duration::from_millis(1);
        for &id in &ids {
            gw.actor_stopped(now, id).expect("live");
            gw.wake(now, id, RouteId(1)).expect("hibernating");
        }
        drain(&mut gw);
        assert!(gw.timers.len() <= 2 * ids.len() + 1024 + 1, "round {round}");
    }
    gw.check_invariants().expect("invariants");
}

/// One step of the robustness property.
#[derive(Debug, Clone)]
enum Op {
    Open(u8),
    Accept(u8, bool),
    Send(u8, u16),
    Ack(u8, u16),
    RunnerClose(u8, bool),
    ClientClose(u8, bool),
    Stop(u8),
    Wake(u8, u8),
    Upserted(u8),
    Pong(u8, u8),
    Garbage(Vec<u8>),
    Advance(u32),
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0u8..4;
    prop_oneof![
        1 => id.clone().prop_map(Op::Open),
        1 => (id.clone(), any::<bool>()).prop_map(|(i, b)| Op::Accept(i, b)),
        4 => (id.clone(), 0u16..300).prop_map(|(i, n)| Op::Send(i, n)),
        3 => (id.clone(), any::<u16>()).prop_map(|(i, n)| Op::Ack(i, n)),
        1 => (id.clone(), any::<bool>()).prop_map(|(i, b)| Op::RunnerClose(i, b)),
        1 => (id.clone(), any::<bool>()).prop_map(|(i, b)| Op::ClientClose(i, b)),
        1 => id.clone().prop_map(Op::Stop),
        1 => (id.clone(), 0u8..2).prop_map(|(i, r)| Op::Wake(i, r)),
        1 => id.clone().prop_map(Op::Upserted),
        1 => (id, 0u8..2).prop_map(|(i, r)| Op::Pong(i, r)),
        1 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Op::Garbage),
        3 => (0u32..40_000_000).prop_map(Op::Advance),
    ]
}

fn apply(gw: &mut Gateway, now: &mut Timestamp, op: Op) {
    let rid = |i: u8| RequestId::from_u32(u32::from(i));
    let route = |r: u8| RouteId(u64::from(r) + 1);
    let t = *now;
    match op {
        Op::Open(i) => {
            let _ = gw.open(
                t,
                rid(i),
                route(0),
                OpenRequest::new("", "/").expect("a path starting with /"),
            );
        }
        Op::Accept(i, h) => {
            let kind = crate::testing::msg::runner_open(h);
            let _ = gw.handle_runner_message(t, route(0), runner_msg(rid(i), kind));
        }
        Op::Send(i, n) => {
            let _ = gw.client_message(t, rid(i), &alloc::vec![7; usize::from(n)], false);
        }
        Op::Ack(i, n) => {
            let kind = crate::testing::msg::runner_ack(n);
            let r = gw.request(rid(i)).map_or(route(0), |r| r.route);
            let _ = gw.handle_runner_message(t, r, runner_msg(rid(i), kind));
        }
        Op::RunnerClose(i, hibernate) => {
            let kind = ToServerTunnelMessageKind::WebSocketClose(wire::ToServerWebSocketClose {
                code: Some(1000),
                reason: None,
                hibernate,
            });
            let r = gw.request(rid(i)).map_or(route(0), |r| r.route);
            let _ = gw.handle_runner_message(t, r, runner_msg(rid(i), kind));
        }
        Op::ClientClose(i, with_frame) => {
            let _ = gw.client_close(t, rid(i), with_frame.then(|| CloseFrame::code(1001)));
        }
        Op::Stop(i) => {
            let _ = gw.actor_stopped(t, rid(i));
        }
        Op::Wake(i, r) => {
            let _ = gw.wake(t, rid(i), route(r));
        }
        Op::Upserted(i) => {
            let _ = gw.hibernating_record_upserted(t, rid(i));
        }
        Op::Pong(i, r) => {
            let _ = gw.handle_pong(
                t,
                route(r),
                ToGatewayPong {
                    request_id: rid(i),
                    ts: 0,
                },
            );
        }
        Op::Garbage(bytes) => {
            let _ = gw.handle_runner_frame(t, route(0), &bytes);
        }
        Op::Advance(us) => {
            *now = t + Duration::from_micros(u64::from(us));
            gw.handle_timeout(*now);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary operations (tight limits, both policies, retransmit on or off) never panic,
    /// keep every invariant, emit exactly one `Closed` per opened request, and leave no handled
    /// deadline in `poll_timeout`.
    #[test]
    fn arbitrary_operations_keep_the_invariants(
        ops in proptest::collection::vec(op(), 1..120),
        backpressure: bool,
        retransmit: bool,
    ) {
        let mut config = GatewayConfig {
            max_pending_messages: 5,
            max_pending_bytes: 600,
            max_gateway_pending_bytes: 1_000,
            max_requests: 3,
            ..GatewayConfig::default()
        };
        if backpressure {
            config.overflow_policy = OverflowPolicy::Backpressure;
        }
        if retransmit {
            config.retransmit_timeout = Some(Duration::from_secs(2));
        }
        let mut now = Timestamp::from_secs(10);
        let mut gw = Gateway::new(config, GW, now).expect("valid");
        let (mut opened, mut closed) = (0u64, 0u64);
        for op in ops {
            let before = gw.stats().opened;
            apply(&mut gw, &mut now, op);
            opened += gw.stats().opened - before;
            for action in drain(&mut gw) {
                if let Action::Closed { request_id, .. } = action {
                    closed += 1;
                    prop_assert!(gw.request(request_id).is_none());
                }
            }
            if let Err(e) = gw.check_invariants() {
                prop_assert!(false, "{}", e);
            }
            gw.handle_timeout(now);
            for action in drain(&mut gw) {
                if matches!(action, Action::Closed { .. }) {
                    closed += 1;
                }
            }
            if let Some(t) = gw.poll_timeout() {
                prop_assert!(t > now, "poll_timeout {:?} <= now {:?} after handle_timeout", t, now);
            }
        }
        prop_assert_eq!(opened - closed, gw.len() as u64);
        prop_assert_eq!(gw.stats().closed, closed);
    }
}

#[test]
fn a_shared_runner_frame_reaches_the_client_without_copying_the_payload() {
    let now = Timestamp::from_secs(1);
    let mut gw = Gateway::new(GatewayConfig::default(), GW, now).expect("valid");
    let id = RequestId::from_u32(1);
    open_accepted(&mut gw, now, id, false);
    let frame = |fill: u8| {
        let kind =
            ToServerTunnelMessageKind::WebSocketMessage(crate::wire::ToServerWebSocketMessage {
                data: alloc::vec![fill; 30].into(),
                binary: true,
            });
        bytes::Bytes::from(crate::wire::encode_versioned(
            crate::wire::PROTOCOL_VERSION,
            &crate::wire::ToGateway::TunnelMessage(runner_msg(id, kind)),
        ))
    };
    let (shared, copied) = (frame(1), frame(2));
    gw.handle_runner_frame_bytes(now, RouteId(1), &shared)
        .expect("accepted");
    gw.handle_runner_frame(now, RouteId(1), &copied)
        .expect("accepted");
    let payloads: Vec<bytes::Bytes> = drain(&mut gw)
        .into_iter()
        .filter_map(|a| match a {
            Action::SendToClient { data, .. } => Some(data),
            _ => None,
        })
        .collect();
    assert_eq!(payloads, [alloc::vec![1_u8; 30], alloc::vec![2_u8; 30]]);
    let inside = |part: &[u8], whole: &[u8]| whole.as_ptr_range().contains(&part.as_ptr());
    assert!(inside(&payloads[0], &shared));
    assert!(!inside(&payloads[1], &copied));
}

/// `client_message_at` acts exactly as `client_message` (same frames, same indexes) while its
/// handle is live, and refuses with `UnknownRequest`, changing nothing, once the request ended
/// (even with its slot reused by a new request), or for another request id.
#[test]
fn client_message_at_matches_client_message_and_refuses_stale_handles() {
    let now = Timestamp::from_secs(1);
    let mut by_id = Gateway::new(GatewayConfig::default(), GW, now).expect("valid");
    let mut by_slot = Gateway::new(GatewayConfig::default(), GW, now).expect("valid");
    let (a, b) = (RequestId::from_u32(7), RequestId::from_u32(8));
    for gw in [&mut by_id, &mut by_slot] {
        open_accepted(gw, now, a, true);
        open_accepted(gw, now, b, false);
    }
    let (at_a, at_b) = (
        by_slot.request_slot(a).expect("live"),
        by_slot.request_slot(b).expect("live"),
    );
    for (i, id, at) in [(0_u8, a, at_a), (1, b, at_b), (2, a, at_a), (3, b, at_b)] {
        let data = [i; 10];
        assert_eq!(
            by_id.client_message(now, id, &data, true),
            by_slot.client_message_at(now, at, id, &data, true)
        );
        assert_eq!(drain(&mut by_id), drain(&mut by_slot));
    }
    assert_eq!(
        by_slot.client_message_at(now, at_a, b, b"x", true),
        Err(SendError::UnknownRequest { request_id: b })
    );
    by_slot.client_close(now, b, None).expect("live");
    drain(&mut by_slot);
    assert_eq!(by_slot.request_slot(b), None);
    let c = RequestId::from_u32(9);
    open_accepted(&mut by_slot, now, c, false);
    let at_c = by_slot.request_slot(c).expect("live");
    assert_eq!(at_c.index, at_b.index, "the freed slot is reused");
    for (id, at) in [(b, at_b), (c, at_b)] {
        assert_eq!(
            by_slot.client_message_at(now, at, id, b"x", true),
            Err(SendError::UnknownRequest { request_id: id })
        );
    }
    assert!(
        by_slot.poll_action().is_none(),
        "a refused handle changes nothing"
    );
    assert!(by_slot.client_message_at(now, at_c, c, b"x", true).is_ok());
    by_slot.check_invariants().expect("invariants");
}
