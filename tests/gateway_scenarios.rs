//! Gateway scenarios 1–20 (`docs/protocol.md#gateway-request-states` describes the machine), one
//! test each, plus the limit, ack, wrap,
//! routing and timer tests of the gateway issue.
//!
//! Where hws deviates from upstream on purpose, the test asserts hws's behaviour and a comment
//! says what upstream does.

use core::time::Duration;

use hibernating_ws::close::KnownClose;
use hibernating_ws::gateway::{
    Action, CloseReason, Frame, Gateway, GatewayConfig, GcReason, Limit, OpenRequest,
    OverflowPolicy, Phase, ReceiveError, RouteId, SendError, WakeError,
};
use hibernating_ws::wire::{
    self, DecodeError, GatewayId, Headers, MessageId, RequestId, ToClientTunnelMessage,
    ToClientTunnelMessageKind, ToGateway, ToGatewayPong, ToRunner, ToServerResponseStart,
    ToServerTunnelMessage, ToServerTunnelMessageKind, ToServerWebSocketClose,
    ToServerWebSocketMessage, ToServerWebSocketMessageAck, ToServerWebSocketOpen,
};
use hibernating_ws::{CloseFrame, MessageIndex, Timestamp};

const GW: GatewayId = GatewayId([0xaa, 0xbb, 0xcc, 0xdd]);
const ROUTE: RouteId = RouteId(1);
const ROUTE2: RouteId = RouteId(2);
const US: Duration = Duration::from_micros(1);

fn rid(n: u32) -> RequestId {
    RequestId::from_u32(n)
}

fn idx(n: u16) -> MessageIndex {
    MessageIndex::new(n)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Drives one [`Gateway`]: keeps `now`, drains actions, and (by default) answers pings and
/// confirms record upserts the way a healthy adapter would.
struct Harness {
    gw: Gateway,
    now: Timestamp,
    auto_pong: bool,
    auto_upsert: bool,
}

impl Harness {
    fn new() -> Self {
        Self::with(GatewayConfig::default())
    }

    fn with(config: GatewayConfig) -> Self {
        let now = Timestamp::from_secs(1_000);
        Self {
            gw: Gateway::new(config, GW, now).expect("valid config"),
            now,
            auto_pong: true,
            auto_upsert: true,
        }
    }

    fn drain(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        while let Some(action) = self.gw.poll_action() {
            match &action {
                Action::Publish {
                    route,
                    request_id,
                    frame,
                } if self.auto_pong => {
                    if let ToRunner::Ping(p) = decode(frame) {
                        let pong = ToGatewayPong {
                            request_id: *request_id,
                            ts: p.ts,
                        };
                        self.gw
                            .handle_pong(self.now, *route, pong)
                            .expect("pong for a live request");
                    }
                }
                Action::UpsertHibernatingRecord { request_id, .. } if self.auto_upsert => {
                    self.gw
                        .hibernating_record_upserted(self.now, *request_id)
                        .expect("live request");
                }
                _ => {}
            }
            out.push(action);
        }
        out
    }

    /// Moves time to `target`, handling every deadline on the way at its exact instant.
    fn run_to(&mut self, target: Timestamp) -> Vec<Action> {
        let mut out = self.drain();
        while let Some(t) = self.gw.poll_timeout() {
            if t > target {
                break;
            }
            self.now = self.now.max(t);
            self.gw.handle_timeout(self.now);
            out.extend(self.drain());
            assert!(
                self.gw.poll_timeout() > Some(self.now) || self.gw.poll_timeout().is_none(),
                "poll_timeout returned a handled deadline"
            );
        }
        self.now = self.now.max(target);
        self.gw.handle_timeout(self.now);
        out.extend(self.drain());
        out
    }

    fn advance(&mut self, d: Duration) -> Vec<Action> {
        self.run_to(self.now + d)
    }

    fn open(&mut self, id: RequestId) -> Vec<Action> {
        let mut headers = Headers::new();
        headers.insert("x-test", "1");
        let open = OpenRequest::new("actor-0123456789abcdef0123456789a", "/ws")
            .expect("a path starting with /")
            .with_headers(headers);
        self.gw.open(self.now, id, ROUTE, open).expect("open");
        self.drain()
    }

    fn runner_on(
        &mut self,
        route: RouteId,
        id: RequestId,
        kind: ToServerTunnelMessageKind,
    ) -> Result<Vec<Action>, ReceiveError> {
        let msg = ToServerTunnelMessage {
            message_id: MessageId {
                gateway_id: GW,
                request_id: id,
                message_index: idx(0),
            },
            kind,
        };
        self.gw.handle_runner_message(self.now, route, msg)?;
        Ok(self.drain())
    }

    fn runner(
        &mut self,
        id: RequestId,
        kind: ToServerTunnelMessageKind,
    ) -> Result<Vec<Action>, ReceiveError> {
        let route = self.gw.request(id).map_or(ROUTE, |r| r.route);
        self.runner_on(route, id, kind)
    }

    fn accept(&mut self, id: RequestId, hibernatable: bool) -> Vec<Action> {
        self.runner(id, open_kind(hibernatable)).expect("accepted")
    }

    /// Opens and accepts a request; returns nothing (actions are checked elsewhere).
    fn active(&mut self, id: RequestId, hibernatable: bool) {
        self.open(id);
        self.accept(id, hibernatable);
    }

    fn send(&mut self, id: RequestId, data: &[u8]) -> Result<MessageIndex, SendError> {
        self.gw.client_message(self.now, id, data, true)
    }

    fn ack(&mut self, id: RequestId, index: u16) -> Vec<Action> {
        self.runner(id, ack_kind(index)).expect("ack accepted")
    }

    /// Sends `n` client messages `data` to `id`; each must be accepted.
    fn send_n(&mut self, id: RequestId, n: usize, data: &[u8]) {
        for i in 0..n {
            if let Err(e) = self.send(id, data) {
                panic!("message {i} of {n} refused: {e}");
            }
        }
    }

    /// The ack of `index`, then what is still pending.
    fn pending_after_ack(&mut self, id: RequestId, index: u16) -> usize {
        self.ack(id, index);
        self.pending(id)
    }

    /// The pending window of `id`: how many messages, and the oldest unacked index.
    fn window(&self, id: RequestId) -> (usize, Option<MessageIndex>) {
        let info = self.gw.request(id).expect("live");
        (info.pending_messages, info.oldest_unacked)
    }

    fn pending(&self, id: RequestId) -> usize {
        self.gw.request(id).map_or(0, |r| r.pending_messages)
    }
}

fn open_kind(can_hibernate: bool) -> ToServerTunnelMessageKind {
    ToServerTunnelMessageKind::WebSocketOpen(ToServerWebSocketOpen { can_hibernate })
}

fn ack_kind(index: u16) -> ToServerTunnelMessageKind {
    ToServerTunnelMessageKind::WebSocketMessageAck(ToServerWebSocketMessageAck {
        index: idx(index),
    })
}

fn close_kind(
    code: Option<u16>,
    reason: Option<&str>,
    hibernate: bool,
) -> ToServerTunnelMessageKind {
    ToServerTunnelMessageKind::WebSocketClose(ToServerWebSocketClose {
        code,
        reason: reason.map(Into::into),
        hibernate,
    })
}

fn decode(frame: &Frame) -> ToRunner {
    let (version, msg) = wire::decode_versioned::<ToRunner>(frame, &wire::DecodeLimits::default())
        .expect("valid frame");
    assert_eq!(version, wire::PROTOCOL_VERSION);
    msg
}

/// Every published tunnel message, decoded, with its route.
fn tunnel(actions: &[Action]) -> Vec<(RouteId, ToClientTunnelMessage)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Publish { route, frame, .. } => match decode(frame) {
                ToRunner::TunnelMessage(m) => Some((*route, m)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Indices of published WebSocket messages, in order.
fn ws_indices(actions: &[Action]) -> Vec<u16> {
    tunnel(actions)
        .into_iter()
        .filter(|(_, m)| matches!(m.kind, ToClientTunnelMessageKind::WebSocketMessage(_)))
        .map(|(_, m)| m.message_id.message_index.get())
        .collect()
}

/// Closes published to the runner: (index, code, reason).
fn runner_closes(actions: &[Action]) -> Vec<(u16, Option<u16>, Option<String>)> {
    tunnel(actions)
        .into_iter()
        .filter_map(|(_, m)| match m.kind {
            ToClientTunnelMessageKind::WebSocketClose(c) => {
                Some((m.message_id.message_index.get(), c.code, c.reason))
            }
            _ => None,
        })
        .collect()
}

fn pings(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Publish { frame, .. } if matches!(decode(frame), ToRunner::Ping(_))))
        .count()
}

fn client_closes(actions: &[Action]) -> Vec<CloseFrame> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::CloseClient { frame, .. } => Some(frame.clone()),
            _ => None,
        })
        .collect()
}

fn closed(actions: &[Action]) -> Vec<CloseReason> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Closed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

fn count(actions: &[Action], pred: impl Fn(&Action) -> bool) -> usize {
    actions.iter().filter(|a| pred(a)).count()
}

fn is_wake(a: &Action) -> bool {
    matches!(a, Action::RequestWake { .. })
}

fn is_delete(a: &Action) -> bool {
    matches!(a, Action::DeleteHibernatingRecord { .. })
}

fn downstream_closed() -> (Option<u16>, Option<String>) {
    let f = KnownClose::DownstreamClosed.frame();
    (f.code, f.reason)
}

/// Encoded size of a client message frame with `payload` bytes.
fn frame_len(payload: usize) -> u64 {
    wire::ws_message_frame_len(payload) as u64
}

// =============================================================================================
// Scenarios 1–20
// =============================================================================================

#[test]
fn scenario_01_open_is_index_0_messages_from_1_and_open_is_not_buffered() {
    let mut h = Harness::new();
    let id = rid(1);
    let opened = h.open(id);
    let open = tunnel(&opened);
    assert_eq!(open.len(), 1);
    let (route, msg) = &open[0];
    assert_eq!(*route, ROUTE);
    assert_eq!(msg.message_id.message_index, idx(0));
    assert_eq!(msg.message_id.gateway_id, GW);
    match &msg.kind {
        ToClientTunnelMessageKind::WebSocketOpen(o) => {
            assert_eq!(o.path, "/ws");
            assert_eq!(o.headers.get("x-test"), Some("1"));
        }
        other => panic!("expected an open, got {other:?}"),
    }
    h.accept(id, true);
    let mut sent = Vec::new();
    for i in 1..=5u16 {
        assert_eq!(h.send(id, b"m"), Ok(idx(i)));
        sent.extend(h.drain());
    }
    assert_eq!(ws_indices(&sent), [1, 2, 3, 4, 5]);
    // Only the five WebSocket messages are buffered; the open (index 0) never was.
    assert_eq!(h.window(id), (5, Some(idx(1))));
    assert_eq!(h.gw.request(id).map(|i| i.next_index), Some(idx(6)));
    // A close consumes the next index too (sent once everything is acked).
    h.ack(id, 5);
    h.gw.client_close(h.now, id, Some(CloseFrame::new(1000, "bye")))
        .expect("live");
    let a = h.drain();
    assert_eq!(runner_closes(&a), [(6, Some(1000), Some("bye".into()))]);
}

#[test]
fn scenario_02_non_hibernatable_buffers_nothing_and_has_no_limits() {
    let mut config = GatewayConfig::default();
    config.max_pending_bytes = 64;
    config.max_pending_messages = 2;
    config.max_gateway_pending_bytes = 64;
    let mut h = Harness::with(config);
    let id = rid(2);
    h.active(id, false);
    let payload = [7u8; 200]; // alone 3× the byte limit
    let mut a = Vec::new();
    for i in 1..=10u16 {
        assert_eq!(h.send(id, &payload), Ok(idx(i)));
        a.extend(h.drain());
    }
    assert_eq!(ws_indices(&a), (1..=10).collect::<Vec<_>>());
    assert_eq!(h.pending(id), 0);
    assert_eq!(h.gw.stats().pending_bytes, 0);
    // Acks are ignored (upstream: warn), and counted.
    assert!(h.ack(id, 5).is_empty());
    assert_eq!(h.gw.stats().acks_not_hibernatable, 1);
    assert_eq!(h.gw.request(id).map(|r| r.phase), Some(Phase::Active));
}

#[test]
fn scenario_03_cumulative_ack_window_duplicates_and_ack_ahead() {
    let mut h = Harness::new();
    let id = rid(3);
    h.active(id, true);
    h.send_n(id, 5, b"x");
    h.drain();
    h.ack(id, 3);
    assert_eq!(h.window(id), (2, Some(idx(4))));
    // Duplicate and older acks are no-ops.
    h.ack(id, 3);
    assert_eq!(h.pending_after_ack(id, 1), 2);
    // An ack ahead of the last index sent is rejected (upstream accepts it and drops 4 and 5).
    assert_eq!(h.pending_after_ack(id, 9), 2);
    assert_eq!(h.pending_after_ack(id, 5), 0);
    let s = h.gw.stats();
    assert_eq!((s.acks_applied, s.acks_stale, s.acks_invalid), (2, 2, 1));
    assert_eq!(s.messages_acked, 5);
}

#[test]
fn scenario_04_wrap_65534_65535_0_1_with_acks() {
    let mut h = Harness::new();
    let id = rid(4);
    h.active(id, true);
    // Walk the counter to 65 534, acking every 1 000 messages.
    let mut last = idx(0);
    while last != idx(65_533) {
        last = h.send(id, b"").expect("room");
        if last.get().is_multiple_of(1_000) || last == idx(65_533) {
            h.drain();
            h.ack(id, last.get());
        }
    }
    h.drain();
    assert_eq!(h.pending(id), 0);
    let got: Vec<u16> = (0..4)
        .map(|_| h.send(id, b"w").expect("room").get())
        .collect();
    assert_eq!(got, [65_534, 65_535, 0, 1]);
    assert_eq!(ws_indices(&h.drain()), [65_534, 65_535, 0, 1]);
    h.ack(id, 65_535);
    assert_eq!(h.window(id), (2, Some(idx(0))));
    // An ack "behind" across the wrap is stale, not a release of everything.
    assert_eq!(h.pending_after_ack(id, 65_534), 2);
    assert_eq!(h.pending_after_ack(id, 1), 0);
    assert_eq!(h.gw.stats().acks_invalid, 0);
}

#[test]
fn scenario_05_window_edge_is_capped_below_half_the_index_space() {
    // Upstream allows 65 535 pending, but its ack rule only works within 32 766: an ack then
    // wrongly drops newer entries. hws caps the window at 32 767, where every ack is unambiguous.
    let mut over = GatewayConfig::default();
    over.max_pending_messages = 32_768;
    assert!(Gateway::new(over, GW, Timestamp::ZERO).is_err());

    let mut h = Harness::new();
    let id = rid(5);
    h.active(id, true);
    h.send_n(id, 32_767, b"");
    h.drain();
    assert_eq!(h.window(id), (32_767, Some(idx(1))));
    // The oldest − 1 (index 0) is stale, the newest (32 767) releases everything, and an ack
    // one past the newest (32 768) is invalid rather than ambiguous.
    h.ack(id, 32_768);
    assert_eq!(h.pending_after_ack(id, 0), 32_767);
    assert_eq!(h.pending_after_ack(id, 1), 32_766);
    assert_eq!(h.pending_after_ack(id, 32_767), 0);
    let s = h.gw.stats();
    assert_eq!((s.acks_invalid, s.acks_stale, s.acks_applied), (1, 1, 2));
}

#[test]
fn scenario_06_byte_limit_exact_and_decremented_on_ack() {
    let f = frame_len(10);
    let mut config = GatewayConfig::default();
    config.max_pending_bytes = 3 * f;
    let mut h = Harness::with(config);
    let id = rid(6);
    h.active(id, true);
    // Exactly at the limit is allowed (upstream checks with `>` too).
    h.send_n(id, 3, &[0; 10]);
    assert_eq!(h.gw.request(id).map(|r| r.pending_bytes), Some(3 * f));
    // Released bytes are subtracted (upstream never subtracts, so its counter is a lifetime
    // budget): after the ack the same traffic fits again, forever.
    h.drain();
    h.ack(id, 3);
    assert_eq!(h.gw.request(id).map(|r| r.pending_bytes), Some(0));
    h.send_n(id, 3, &[0; 10]);
    // One byte over is refused: the request closes (Close policy).
    assert_eq!(
        h.send(id, &[0; 1]),
        Err(SendError::LimitExceeded {
            request_id: id,
            limit: Limit::RequestBytes
        })
    );
    let a = h.drain();
    assert_eq!(closed(&a), [CloseReason::PendingLimit(Limit::RequestBytes)]);
    assert_eq!(client_closes(&a), [KnownClose::PendingLimitReached.frame()]);
    let (code, reason) = downstream_closed();
    assert_eq!(runner_closes(&a), [(7, code, reason)]);
}

#[test]
fn scenario_07_count_limit_is_32767_not_65535() {
    let mut h = Harness::new();
    let id = rid(7);
    h.active(id, true);
    h.send_n(id, 32_767, b"");
    // Upstream refuses only at 65 535 pending; hws at 32 768.
    assert_eq!(
        h.send(id, b""),
        Err(SendError::LimitExceeded {
            request_id: id,
            limit: Limit::Count
        })
    );
    let a = h.drain();
    assert_eq!(closed(&a), [CloseReason::PendingLimit(Limit::Count)]);
    assert!(h.gw.request(id).is_none());
    assert_eq!(h.gw.stats().pending_messages, 0);
}

#[test]
fn scenario_08_ack_timeout_fires_exactly() {
    let mut h = Harness::new();
    let id = rid(8);
    h.active(id, true);
    h.advance(secs(1));
    let t0 = h.now;
    h.send(id, b"unacked").expect("room");
    // Upstream: `elapsed > 30 s`, checked by a 15 s GC tick (collected between 30 s and ~45 s).
    // hws: an exact deadline at sent_at + 30 s.
    let a = h.run_to(t0 + secs(30) - US);
    assert!(closed(&a).is_empty());
    assert!(pings(&a) > 0, "pings kept the tunnel alive");
    let a = h.run_to(t0 + secs(30));
    assert_eq!(
        closed(&a),
        [CloseReason::Collected(GcReason::AckTimeout {
            first: idx(1),
            last: idx(1)
        })]
    );
    assert_eq!(client_closes(&a), [KnownClose::GarbageCollected.frame()]);
    let (code, reason) = downstream_closed();
    assert_eq!(runner_closes(&a), [(2, code, reason)]);
    assert_eq!(count(&a, is_delete), 1);
}

#[test]
fn scenario_09_keepalive_keeps_the_request_and_its_absence_collects_after_90s() {
    let mut h = Harness::new();
    let id = rid(9);
    h.active(id, true);
    let t_accept = h.now;
    h.gw.actor_stopped(h.now, id).expect("live");
    let a = h.drain();
    assert_eq!(count(&a, |a| matches!(a, Action::Hibernated { .. })), 1);
    // Refreshed every 45 s and confirmed: still there after 450 s.
    let a = h.run_to(t_accept + secs(450));
    assert_eq!(
        count(&a, |a| matches!(a, Action::UpsertHibernatingRecord { .. })),
        10
    );
    assert_eq!(h.gw.request(id).map(|r| r.phase), Some(Phase::Hibernating));
    // From now on the record store fails: collected exactly 90 s after the last success.
    h.auto_upsert = false;
    let a = h.run_to(t_accept + secs(540) - US);
    assert!(closed(&a).is_empty());
    for a in &a {
        if let Action::UpsertHibernatingRecord { request_id, .. } = a {
            h.gw.hibernating_record_failed(h.now, *request_id)
                .expect("live");
        }
    }
    let a = h.run_to(t_accept + secs(540));
    assert_eq!(
        closed(&a),
        [CloseReason::Collected(GcReason::HibernationTimeout)]
    );
    assert_eq!(client_closes(&a), [KnownClose::GarbageCollected.frame()]);
    // Hibernating: nothing is published to a runner.
    assert!(runner_closes(&a).is_empty());
    assert_eq!(h.gw.stats().record_upserts_failed, 1);
}

#[test]
fn scenario_10_non_hibernatable_request_is_removed_when_the_client_goes() {
    // Upstream: GatewayClosed flags it and a later GC tick removes it. hws: removed at once.
    let mut h = Harness::new();
    let id = rid(10);
    h.active(id, false);
    h.gw.client_close(h.now, id, None).expect("live");
    let a = h.drain();
    assert_eq!(runner_closes(&a), [(1, Some(1000), None)]);
    assert_eq!(closed(&a), [CloseReason::ClientGone]);
    assert_eq!(count(&a, is_delete), 0, "never hibernatable: no record");
    assert!(h.gw.request(id).is_none());
    assert!(h.gw.is_empty());
    assert_eq!(h.gw.poll_timeout(), h.gw.poll_timeout()); // no panic on stale timers
    let a = h.advance(secs(120));
    assert!(
        a.is_empty(),
        "stale timers of a removed request do nothing: {a:?}"
    );
}

#[test]
fn scenario_11_collected_request_is_removed_in_the_same_step() {
    // Upstream: phase 1 flags the entry, phase 2 removes it once its handler detached.
    let mut h = Harness::new();
    let id = rid(11);
    h.active(id, true);
    h.send(id, b"a").expect("room");
    let a = h.advance(secs(30));
    assert_eq!(closed(&a).len(), 1);
    assert!(h.gw.request(id).is_none());
    assert_eq!(h.gw.len(), 0);
    let s = h.gw.stats();
    assert_eq!((s.pending_messages, s.pending_bytes, s.requests), (0, 0, 0));
    // The id is free again at once.
    h.open(id);
    assert_eq!(h.gw.request(id).map(|r| r.phase), Some(Phase::AwaitingOpen));
}

#[test]
fn scenario_12_hibernate_with_pending_wakes_at_once_and_replays_verbatim() {
    let mut h = Harness::new();
    let id = rid(12);
    h.active(id, true);
    let mut originals = Vec::new();
    h.send_n(id, 3, b"p");
    for a in h.drain() {
        if let Action::Publish { frame, .. } = a {
            originals.push(frame);
        }
    }
    h.ack(id, 1);
    h.gw.actor_stopped(h.now, id).expect("live");
    let a = h.drain();
    assert!(matches!(
        a.as_slice(),
        [Action::Hibernated { .. }, Action::RequestWake { .. }]
    ));
    // While hibernating, new messages are buffered and not published; no second wake request.
    assert_eq!(h.send(id, b"q"), Ok(idx(4)));
    let a = h.drain();
    assert!(a.is_empty(), "{a:?}");
    h.advance(secs(10));
    h.gw.wake(h.now, id, ROUTE2).expect("hibernating");
    let a = h.drain();
    let replay = tunnel(&a);
    assert!(replay.iter().all(|(route, _)| *route == ROUTE2));
    assert_eq!(ws_indices(&a), [2, 3, 4]);
    // Same allocations as first published: no re-encoding.
    let frames: Vec<&Frame> = a
        .iter()
        .filter_map(|a| match a {
            Action::Publish { frame, .. } => Some(frame),
            _ => None,
        })
        .collect();
    assert!(Frame::ptr_eq(frames[0], &originals[1]));
    assert!(Frame::ptr_eq(frames[1], &originals[2]));
    // No open on wake; the counter continues.
    assert_eq!(h.send(id, b"r"), Ok(idx(5)));
    let a = h.drain();
    assert_eq!(tunnel(&a)[0].0, ROUTE2);
    assert_eq!(h.gw.request(id).map(|r| r.stats.messages_resent), Some(3));
}

#[test]
fn scenario_13_ack_while_hibernating_applies() {
    // Upstream drops acks that arrive while no handler is attached.
    let mut h = Harness::new();
    let id = rid(13);
    h.active(id, true);
    h.send_n(id, 3, b"m");
    h.gw.actor_stopped(h.now, id).expect("live");
    h.drain();
    assert_eq!(h.pending_after_ack(id, 3), 0);
    assert_eq!(h.gw.stats().pending_bytes, 0);
    h.gw.wake(h.now, id, ROUTE2).expect("hibernating");
    assert!(ws_indices(&h.drain()).is_empty(), "nothing left to replay");
}

#[test]
fn scenario_14_wake_of_a_collected_request_is_an_explicit_error() {
    let mut h = Harness::new();
    let id = rid(14);
    h.active(id, true);
    h.send(id, b"m").expect("room");
    h.gw.actor_stopped(h.now, id).expect("live");
    let a = h.drain();
    assert_eq!(count(&a, is_wake), 1);
    let t = h.now;
    assert!(closed(&h.run_to(t + secs(60) - US)).is_empty());
    let a = h.run_to(t + secs(60));
    assert_eq!(closed(&a), [CloseReason::Collected(GcReason::WakeTimeout)]);
    assert_eq!(client_closes(&a), [KnownClose::GarbageCollected.frame()]);
    assert_eq!(
        h.gw.wake(h.now, id, ROUTE2),
        Err(WakeError::UnknownRequest { request_id: id })
    );
}

#[test]
fn scenario_15_client_close_while_hibernating_is_delivered_after_the_replay() {
    // Upstream deletes the record first (`docs/upstream.md#client-close-while-hibernating`), so the
    // woken actor treats the socket as stale and never sees the client's code; hws replays,
    // publishes the client's close, then deletes.
    let mut h = Harness::new();
    let id = rid(15);
    h.active(id, true);
    h.send(id, b"1").expect("room");
    h.send(id, b"2").expect("room");
    h.gw.actor_stopped(h.now, id).expect("live");
    h.drain();
    h.gw.client_close(h.now, id, Some(CloseFrame::new(4000, "bye")))
        .expect("live");
    let a = h.drain();
    assert!(
        a.is_empty(),
        "the wake was already requested; nothing is deleted yet: {a:?}"
    );
    h.gw.wake(h.now, id, ROUTE2).expect("hibernating");
    let mut a = h.drain();
    assert_eq!(ws_indices(&a), [1, 2]);
    // The close waits for the acks of the replay.
    assert_eq!(runner_closes(&a), []);
    a.extend(h.ack(id, 2));
    assert_eq!(runner_closes(&a), [(3, Some(4000), Some("bye".into()))]);
    let kinds: Vec<&str> = a
        .iter()
        .map(|a| match a {
            Action::Publish { .. } => "publish",
            Action::DeleteHibernatingRecord { .. } => "delete",
            Action::Closed { .. } => "closed",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["publish", "publish", "publish", "delete", "closed"]);
    assert_eq!(
        closed(&a),
        [CloseReason::ClientClosed(CloseFrame::new(4000, "bye"))]
    );
    assert!(client_closes(&a).is_empty(), "the client closed first");

    // Without pending data the close itself requests the wake; a stream end maps to 1000.
    let id = rid(150);
    h.active(id, true);
    h.gw.actor_stopped(h.now, id).expect("live");
    assert_eq!(count(&h.drain(), is_wake), 0);
    h.gw.client_close(h.now, id, None).expect("live");
    assert_eq!(count(&h.drain(), is_wake), 1);
    h.gw.wake(h.now, id, ROUTE).expect("hibernating");
    let a = h.drain();
    assert_eq!(runner_closes(&a), [(1, Some(1000), None)]);
    assert_eq!(closed(&a), [CloseReason::ClientGone]);
}

#[test]
fn scenario_16_close_to_runner_rules() {
    let mut h = Harness::new();
    // Client close frame: forwarded verbatim.
    h.active(rid(1), true);
    h.gw.client_close(h.now, rid(1), Some(CloseFrame::new(4001, "x")))
        .expect("live");
    assert_eq!(
        runner_closes(&h.drain()),
        [(1, Some(4001), Some("x".into()))]
    );
    // Stream ended: 1000, no reason.
    h.active(rid(2), false);
    h.gw.client_close(h.now, rid(2), None).expect("live");
    assert_eq!(runner_closes(&h.drain()), [(1, Some(1000), None)]);
    // Errors: 1011 ws.downstream_closed (here: open timeout).
    h.open(rid(3));
    let a = h.advance(secs(15));
    let (code, reason) = downstream_closed();
    assert_eq!(runner_closes(&a), [(1, code, reason)]);
    assert_eq!(closed(&a), [CloseReason::OpenTimeout]);
    assert_eq!(client_closes(&a), [KnownClose::OpenTimeout.frame()]);
    // Hibernation: no close at all.
    h.active(rid(4), true);
    h.gw.actor_stopped(h.now, rid(4)).expect("live");
    assert!(runner_closes(&h.drain()).is_empty());
    // A runner close is not echoed back (upstream echoes a 1000 close).
    h.active(rid(5), true);
    let a = h
        .runner(rid(5), close_kind(Some(4002), Some("done"), false))
        .expect("accepted");
    assert!(runner_closes(&a).is_empty());
    assert_eq!(client_closes(&a), [CloseFrame::new(4002, "done")]);
}

#[test]
fn scenario_17_first_ping_after_a_long_hibernation_does_not_time_out() {
    // Upstream bug #4090: last_pong was not reset on wake, so the first ping check 3 s after a
    // hibernation longer than ~27 s killed the socket.
    let mut h = Harness::new();
    let id = rid(17);
    h.active(id, true);
    h.gw.actor_stopped(h.now, id).expect("live");
    let a = h.advance(secs(600));
    assert_eq!(pings(&a), 0, "no pings while hibernating");
    h.gw.wake(h.now, id, ROUTE2).expect("hibernating");
    let t_wake = h.now;
    h.auto_pong = false;
    let a = h.run_to(t_wake + secs(3) - US);
    assert_eq!(pings(&a), 0);
    let a = h.run_to(t_wake + secs(3));
    assert_eq!(pings(&a), 1);
    assert_eq!(h.gw.request(id).map(|r| r.phase), Some(Phase::Active));
    // Exactly 30 s of silence after the wake: the tunnel is lost; a hibernatable request
    // hibernates (`docs/design.md#tunnel-loss-hibernates`) instead of closing.
    let a = h.run_to(t_wake + secs(30) - US);
    assert!(!a.iter().any(|a| matches!(a, Action::Hibernated { .. })));
    let a = h.run_to(t_wake + secs(30));
    assert_eq!(count(&a, |a| matches!(a, Action::Hibernated { .. })), 1);
    assert_eq!(h.gw.stats().ping_timeout_hibernations, 1);

    // Not hibernatable: the ping timeout closes.
    let id = rid(170);
    h.active(id, false);
    let t = h.now;
    let a = h.run_to(t + secs(30));
    assert_eq!(closed(&a), [CloseReason::PingTimeout]);
    assert_eq!(client_closes(&a), [KnownClose::PingTimeout.frame()]);
    let (code, reason) = downstream_closed();
    assert_eq!(runner_closes(&a), [(1, code, reason)]);
}

#[test]
fn scenario_18_no_retry_path_second_open_fails_and_indices_continue_across_wake() {
    // Upstream's guard retry reused the entry and sent a second open with index k > 0. hws has
    // no retry path: a live id cannot be opened again; continuity goes through hibernate/wake.
    let mut h = Harness::new();
    let id = rid(18);
    h.active(id, true);
    let open = OpenRequest::new("", "/").expect("a path starting with /");
    assert_eq!(
        h.gw.open(h.now, id, ROUTE, open),
        Err(hibernating_ws::gateway::OpenError::AlreadyExists { request_id: id })
    );
    assert!(h.drain().is_empty());
    h.send(id, b"a").expect("room");
    h.send(id, b"b").expect("room");
    h.drain();
    h.ack(id, 2);
    h.gw.actor_stopped(h.now, id).expect("live");
    h.gw.wake(h.now, id, ROUTE2).expect("hibernating");
    let a = h.drain();
    assert!(tunnel(&a).is_empty(), "no open is sent on wake: {a:?}");
    assert_eq!(h.send(id, b"c"), Ok(idx(3)));
}

#[test]
fn scenario_19_state_filter() {
    let mut h = Harness::new();
    let id = rid(19);
    h.open(id);
    let msg = ToServerTunnelMessageKind::WebSocketMessage(ToServerWebSocketMessage {
        data: b"early".to_vec().into(),
        binary: false,
    });
    assert_eq!(
        h.runner(id, msg.clone()),
        Err(ReceiveError::InvalidForPhase {
            request_id: id,
            phase: Phase::AwaitingOpen,
            kind: "WebSocketMessage"
        })
    );
    assert_eq!(
        h.runner(id, ack_kind(0)),
        Err(ReceiveError::InvalidForPhase {
            request_id: id,
            phase: Phase::AwaitingOpen,
            kind: "WebSocketMessageAck"
        })
    );
    h.accept(id, true);
    assert_eq!(
        h.runner(id, open_kind(true)),
        Err(ReceiveError::InvalidForPhase {
            request_id: id,
            phase: Phase::Active,
            kind: "WebSocketOpen"
        })
    );
    // HTTP kinds never apply to the WebSocket gateway.
    let http = ToServerTunnelMessageKind::ResponseStart(ToServerResponseStart {
        status: 200,
        headers: Headers::new(),
        body: None,
        stream: false,
    });
    assert_eq!(
        h.runner(id, http),
        Err(ReceiveError::Unsupported {
            kind: "ResponseStart"
        })
    );
    let s = h.gw.stats();
    assert_eq!((s.dropped_invalid_for_phase, s.dropped_unsupported), (3, 1));
    // Messages flow once open; a close ends the request.
    let a = h.runner(id, msg).expect("active");
    assert!(matches!(
        a.as_slice(),
        [Action::SendToClient { binary: false, .. }]
    ));
    let a = h.runner(id, close_kind(None, None, false)).expect("active");
    assert_eq!(
        closed(&a),
        [CloseReason::RunnerClosed(CloseFrame::default())]
    );
    assert_eq!(client_closes(&a), [CloseFrame::code(1000)]);

    // A close before the open refuses the WebSocket; nothing goes to the runner.
    let id = rid(190);
    h.open(id);
    let a = h
        .runner(id, close_kind(Some(1011), Some("Actor not found"), false))
        .expect("awaiting");
    assert_eq!(
        closed(&a),
        [CloseReason::ClosedBeforeOpen(CloseFrame::new(
            1011,
            "Actor not found"
        ))]
    );
    assert_eq!(client_closes(&a), [KnownClose::ClosedBeforeOpen.frame()]);
    assert!(runner_closes(&a).is_empty());
}

#[test]
fn scenario_20_actor_stopped_signal() {
    let mut h = Harness::new();
    // Hibernatable: hibernate, no close either way.
    h.active(rid(1), true);
    h.gw.actor_stopped(h.now, rid(1)).expect("live");
    let a = h.drain();
    assert!(matches!(a.as_slice(), [Action::Hibernated { .. }]));
    // Stopping again while hibernating changes nothing.
    h.gw.actor_stopped(h.now, rid(1)).expect("live");
    assert!(h.drain().is_empty());
    // Not hibernatable: upstream's current behaviour, client 1000 actor.stopped, nothing to the
    // runner.
    h.active(rid(2), false);
    h.gw.actor_stopped(h.now, rid(2)).expect("live");
    let a = h.drain();
    assert_eq!(client_closes(&a), [KnownClose::ActorStopped.frame()]);
    assert!(runner_closes(&a).is_empty());
    assert_eq!(closed(&a), [CloseReason::ActorStopped]);
    // Before the open was accepted.
    h.open(rid(3));
    h.gw.actor_stopped(h.now, rid(3)).expect("live");
    let a = h.drain();
    assert_eq!(
        client_closes(&a),
        [KnownClose::ActorStoppedWhileWaitingForOpen.frame()]
    );
    assert_eq!(closed(&a), [CloseReason::ActorStoppedBeforeOpen]);
}

// =============================================================================================
// Limits: N−1 / N / N+1 under both policies
// =============================================================================================

fn limit_config(policy: OverflowPolicy) -> GatewayConfig {
    let mut c = GatewayConfig::default();
    c.overflow_policy = policy;
    c
}

/// Fills `id` with `n` messages of `payload` bytes, asserting each is accepted.
fn fill(h: &mut Harness, id: RequestId, n: usize, payload: usize) {
    for i in 0..n {
        assert!(
            h.send(id, &vec![0; payload]).is_ok(),
            "message {i} of {n} refused"
        );
    }
    h.drain();
}

#[test]
fn count_limit_boundaries_under_both_policies() {
    for policy in [OverflowPolicy::Close, OverflowPolicy::Backpressure] {
        let mut c = limit_config(policy);
        c.max_pending_messages = 4;
        let mut h = Harness::with(c);
        let id = rid(1);
        h.active(id, true);
        fill(&mut h, id, 3, 1); // N − 1
        assert_eq!(h.send(id, b"x"), Ok(idx(4))); // N: exactly at the limit
        let over = h.send(id, b"x"); // N + 1
        if policy == OverflowPolicy::Close {
            assert_eq!(
                over,
                Err(SendError::LimitExceeded {
                    request_id: id,
                    limit: Limit::Count
                })
            );
            assert_eq!(
                closed(&h.drain()),
                [CloseReason::PendingLimit(Limit::Count)]
            );
        } else {
            assert_eq!(
                over,
                Err(SendError::Backpressure {
                    request_id: id,
                    limit: Limit::Count
                })
            );
            h.drain();
            assert_eq!(h.pending(id), 4, "nothing changed");
            assert_eq!(h.gw.request(id).map(|r| r.next_index), Some(idx(5)));
            // An ack frees room: the client becomes writable, and the message fits.
            let a = h.ack(id, 1);
            assert_eq!(a, [Action::ClientWritable { request_id: id }]);
            assert_eq!(h.send(id, b"x"), Ok(idx(5)));
        }
    }
}

#[test]
fn request_byte_limit_boundaries_under_both_policies() {
    let f = frame_len(100);
    for policy in [OverflowPolicy::Close, OverflowPolicy::Backpressure] {
        let mut c = limit_config(policy);
        c.max_pending_bytes = 2 * f + 1;
        let mut h = Harness::with(c);
        let id = rid(2);
        h.active(id, true);
        fill(&mut h, id, 2, 100); // N − 1 bytes left
        assert_eq!(h.gw.request(id).map(|r| r.pending_bytes), Some(2 * f));
        // One byte of room left; the smallest frame does not fit.
        let over = h.send(id, b"");
        let limit = Limit::RequestBytes;
        if policy == OverflowPolicy::Close {
            assert_eq!(
                over,
                Err(SendError::LimitExceeded {
                    request_id: id,
                    limit
                })
            );
            assert!(h.gw.request(id).is_none());
        } else {
            assert_eq!(
                over,
                Err(SendError::Backpressure {
                    request_id: id,
                    limit
                })
            );
            assert_eq!(h.gw.stats().backpressured, 1);
            assert_eq!(h.ack(id, 1), [Action::ClientWritable { request_id: id }]);
            assert_eq!(h.send(id, b""), Ok(idx(3)));
        }
    }
    // N − 1, N and N + 1 bytes: a second frame lands one byte short of, exactly on, or one
    // byte past the limit (payload 99 / 100 / 101 after a 100-byte one).
    for policy in [OverflowPolicy::Close, OverflowPolicy::Backpressure] {
        for (payload, fits) in [(99usize, true), (100, true), (101, false)] {
            let mut c = limit_config(policy);
            c.max_pending_bytes = 2 * frame_len(100);
            let mut h = Harness::with(c);
            let id = rid(3);
            h.active(id, true);
            h.send(id, &[0; 100]).expect("half the limit");
            let r = h.send(id, &vec![0; payload]);
            let bytes = h.gw.request(id).map(|r| r.pending_bytes);
            match (fits, policy) {
                (true, _) => {
                    assert_eq!(r, Ok(idx(2)), "{payload}");
                    assert!(bytes <= Some(2 * frame_len(100)));
                }
                (false, OverflowPolicy::Close) => {
                    assert_eq!(
                        r,
                        Err(SendError::LimitExceeded {
                            request_id: id,
                            limit: Limit::RequestBytes
                        })
                    );
                    assert_eq!(bytes, None, "closed");
                }
                (false, _) => {
                    assert_eq!(
                        r,
                        Err(SendError::Backpressure {
                            request_id: id,
                            limit: Limit::RequestBytes
                        })
                    );
                    assert_eq!(bytes, Some(frame_len(100)), "nothing changed");
                }
            }
        }
    }
}

#[test]
fn gateway_byte_limit_boundaries_under_both_policies() {
    let f = frame_len(50);
    for policy in [OverflowPolicy::Close, OverflowPolicy::Backpressure] {
        let mut c = limit_config(policy);
        c.max_pending_bytes = 3 * f;
        c.max_gateway_pending_bytes = 3 * f;
        let mut h = Harness::with(c);
        let (first, second) = (rid(1), rid(2));
        h.active(first, true);
        h.active(second, true);
        fill(&mut h, first, 2, 50); // N − 1 frames gateway-wide
        assert_eq!(h.send(second, &[0; 50]), Ok(idx(1))); // N: exactly at the gateway limit
        h.drain();
        assert_eq!(h.gw.stats().pending_bytes, 3 * f);
        let over = h.send(second, &[0; 50]); // N + 1
        let limit = Limit::GatewayBytes;
        if policy == OverflowPolicy::Close {
            assert_eq!(
                over,
                Err(SendError::LimitExceeded {
                    request_id: second,
                    limit
                })
            );
            let actions = h.drain();
            assert_eq!(closed(&actions), [CloseReason::PendingLimit(limit)]);
            // The closed request's bytes went back to the gateway pool: the first fits again.
            assert_eq!(h.gw.stats().pending_bytes, 2 * f);
            assert!(h.send(first, &[0; 50]).is_ok());
        } else {
            assert_eq!(
                over,
                Err(SendError::Backpressure {
                    request_id: second,
                    limit
                })
            );
            assert_eq!(h.drain(), []);
            // Another request's ack frees gateway room: the second becomes writable.
            let actions = h.ack(first, 1);
            assert_eq!(actions, [Action::ClientWritable { request_id: second }]);
            assert_eq!(h.send(second, &[0; 50]), Ok(idx(2)));
            assert_eq!(h.gw.stats().client_writable, 1);
        }
    }
}

#[test]
fn backpressure_waiters_on_the_gateway_limit_are_served_in_order() {
    let f = frame_len(10);
    let mut c = limit_config(OverflowPolicy::Backpressure);
    c.max_pending_bytes = 2 * f;
    c.max_gateway_pending_bytes = 2 * f;
    let mut h = Harness::with(c);
    let ids = [rid(1), rid(2), rid(3)];
    for id in ids {
        h.active(id, true);
    }
    fill(&mut h, ids[0], 2, 10);
    assert!(h.send(ids[1], &[0; 10]).is_err());
    assert!(h.send(ids[2], &[0; 10]).is_err());
    // One frame freed: every waiter that fits *now* is told, first come first served.
    // `ClientWritable` means "there is room", not a reservation: the first to send wins.
    assert_eq!(
        h.ack(ids[0], 1),
        [
            Action::ClientWritable { request_id: ids[1] },
            Action::ClientWritable { request_id: ids[2] }
        ]
    );
    assert!(h.send(ids[1], &[0; 10]).is_ok());
    h.drain();
    assert_eq!(
        h.send(ids[2], &[0; 10]),
        Err(SendError::Backpressure {
            request_id: ids[2],
            limit: Limit::GatewayBytes
        })
    );
    // The first waiter closing frees its bytes once its message is acked (a client close
    // waits for the acks): the one still waiting is served.
    h.gw.client_close(h.now, ids[1], None).expect("live");
    assert_eq!(h.drain(), []);
    let a = h.ack(ids[1], 1);
    assert!(
        a.contains(&Action::ClientWritable { request_id: ids[2] }),
        "{a:?}"
    );
    assert!(h.send(ids[2], &[0; 10]).is_ok());
}

#[test]
fn a_message_too_large_for_any_buffer_closes_under_both_policies() {
    for policy in [OverflowPolicy::Close, OverflowPolicy::Backpressure] {
        let mut c = limit_config(policy);
        c.max_pending_bytes = 1_000;
        let mut h = Harness::with(c);
        h.active(rid(1), true);
        let r = h.send(rid(1), &[0; 1_000]);
        assert_eq!(
            r,
            Err(SendError::MessageTooLarge {
                request_id: rid(1),
                size: frame_len(1_000),
                max: 1_000
            })
        );
        let a = h.drain();
        assert_eq!(closed(&a), [CloseReason::PendingLimit(Limit::RequestBytes)]);
    }
}

#[test]
fn a_long_lived_socket_sending_100x_the_byte_limit_never_trips_it() {
    // Upstream weak spot 1 (`docs/upstream.md#weak-spots`): the byte counter was never decremented,
    // so any hibernatable socket died after sending the limit in total.
    let mut c = GatewayConfig::default();
    c.max_pending_bytes = 64 * 1024;
    let mut h = Harness::with(c);
    let id = rid(1);
    h.active(id, true);
    let payload = [0u8; 1_000];
    let per_msg = frame_len(1_000);
    let total_target = 100 * 64 * 1024;
    let mut sent = 0u64;
    while sent < total_target {
        let i = h.send(id, &payload).expect("never over the limit");
        sent += per_msg;
        if i.get().is_multiple_of(32) {
            h.drain();
            h.ack(id, i.get());
        }
        assert!(h.gw.request(id).expect("live").pending_bytes <= 64 * 1024);
    }
    let last = h.gw.request(id).expect("live").next_index.prev();
    h.drain();
    h.ack(id, last.get());
    let info = h.gw.request(id).expect("live");
    assert_eq!((info.pending_messages, info.pending_bytes), (0, 0));
    assert_eq!(h.gw.stats().pending_bytes, 0);
    assert!(sent >= total_target);
}

// =============================================================================================
// Acks, wrap, replay
// =============================================================================================

#[test]
fn invalid_acks_drop_nothing_even_across_the_wrap() {
    let mut h = Harness::new();
    let id = rid(1);
    h.active(id, true);
    // Move the counter to just before the wrap.
    let mut i = idx(0);
    while i != idx(65_529) {
        i = h.send(id, b"").expect("room");
        if i.get().is_multiple_of(4_096) || i == idx(65_529) {
            h.drain();
            h.ack(id, i.get());
        }
    }
    for _ in 0..10 {
        h.send(id, b"w").expect("room"); // 65530..=65535, 0..=3
    }
    h.drain();
    assert_eq!(
        h.gw.request(id).map(|r| r.oldest_unacked),
        Some(Some(idx(65_530)))
    );
    for bad in [4u16, 5, 1_000, 32_000] {
        h.ack(id, bad); // ahead of the last sent (3)
    }
    // 32 768 behind the oldest − 1 (65 529): the undefined antipode, outside the window.
    assert_eq!(h.pending_after_ack(id, 32_761), 10);
    assert_eq!(h.gw.stats().acks_invalid, 5);
    // At or up to 32 767 behind the oldest − 1: stale duplicates.
    for stale in [65_529u16, 65_000, 40_000, 32_762] {
        h.ack(id, stale);
    }
    assert_eq!(h.pending(id), 10);
    assert_eq!(h.gw.stats().acks_stale, 4);
    h.ack(id, 0);
    assert_eq!(
        h.gw.request(id).map(|r| r.oldest_unacked),
        Some(Some(idx(1)))
    );
    assert_eq!(h.pending(id), 3);
}

#[test]
fn an_ack_for_a_message_buffered_during_hibernation_is_invalid_until_replayed() {
    let mut h = Harness::new();
    let id = rid(1);
    h.active(id, true);
    h.send(id, b"a").expect("room"); // 1, published
    h.gw.actor_stopped(h.now, id).expect("live");
    h.send(id, b"b").expect("room"); // 2, buffered, not published
    h.drain();
    h.ack(id, 2); // the runner cannot have seen 2
    assert_eq!(h.pending(id), 2);
    assert_eq!(h.gw.stats().acks_invalid, 1);
    assert_eq!(h.pending_after_ack(id, 1), 1);
    h.gw.wake(h.now, id, ROUTE2).expect("hibernating");
    assert_eq!(ws_indices(&h.drain()), [2]);
    assert_eq!(h.pending_after_ack(id, 2), 0);
}

#[test]
fn replay_after_wake_keeps_order_indices_and_resets_the_ack_clock() {
    let mut h = Harness::new();
    let id = rid(1);
    h.active(id, true);
    h.send_n(id, 5, b"m");
    h.drain();
    h.ack(id, 2);
    h.advance(secs(20));
    h.gw.actor_stopped(h.now, id).expect("live");
    // Hibernating longer than the ack timeout does not collect (the ack clock is paused).
    h.advance(secs(50));
    h.gw.wake(h.now, id, ROUTE2).expect("hibernating");
    let t_wake = h.now;
    assert_eq!(ws_indices(&h.drain()), [3, 4, 5]);
    let info = h.gw.request(id).expect("live");
    assert_eq!(info.oldest_unacked_sent_at, Some(t_wake));
    // The ack deadline counts from the replay.
    assert!(closed(&h.run_to(t_wake + secs(30) - US)).is_empty());
    assert_eq!(
        closed(&h.run_to(t_wake + secs(30))),
        [CloseReason::Collected(GcReason::AckTimeout {
            first: idx(3),
            last: idx(5)
        })]
    );
}

#[test]
fn retransmit_republishes_pending_without_resetting_the_ack_clock() {
    let mut c = GatewayConfig::default();
    c.retransmit_timeout = Some(secs(5));
    let mut h = Harness::with(c);
    let id = rid(1);
    h.active(id, true);
    let t0 = h.now;
    h.send(id, b"a").expect("room");
    h.send(id, b"b").expect("room");
    h.drain();
    assert!(ws_indices(&h.run_to(t0 + secs(5) - US)).is_empty());
    assert_eq!(ws_indices(&h.run_to(t0 + secs(5))), [1, 2]);
    assert_eq!(ws_indices(&h.run_to(t0 + secs(10))), [1, 2]);
    h.ack(id, 1);
    // A new oldest (sent at t0) was just released-to: the next round is 5 s after the last.
    assert_eq!(ws_indices(&h.run_to(t0 + secs(15))), [2]);
    assert_eq!(h.gw.stats().messages_retransmitted, 5);
    // Retransmits do not reset the ack timeout: still collected 30 s after the first send.
    let a = h.run_to(t0 + secs(30));
    assert_eq!(closed(&a).len(), 1);
}

// =============================================================================================
// Routing, malformed input, drop counters
// =============================================================================================

#[test]
fn route_and_gateway_checks_drop_and_count() {
    let mut h = Harness::new();
    let id = rid(1);
    h.active(id, true);
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
    let mut h = Harness::new();
    let id = rid(1);
    h.active(id, true);
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

// =============================================================================================
// Timers
// =============================================================================================

#[test]
fn timers_fire_exactly_at_their_deadline() {
    let mut h = Harness::new();
    let id = rid(1);
    let t_open = h.now;
    h.open(id);
    // Open timeout: nothing at t − 1 µs, the close at t.
    h.gw.handle_timeout(t_open + secs(15) - US);
    assert_eq!(h.gw.poll_action(), None);
    assert_eq!(h.gw.poll_timeout(), Some(t_open + secs(15)));
    h.gw.handle_timeout(t_open + secs(15));
    h.now = t_open + secs(15);
    assert_eq!(closed(&h.drain()), [CloseReason::OpenTimeout]);
    assert_eq!(h.gw.poll_timeout(), None, "nothing armed without requests");

    // Ping every 3 s and keepalive every 45 s, exactly.
    h.active(rid(2), true);
    let t0 = h.now;
    assert_eq!(h.gw.poll_timeout(), Some(t0 + secs(3)));
    h.gw.handle_timeout(t0 + secs(3) - US);
    assert_eq!(h.gw.poll_action(), None);
    let a = h.run_to(t0 + secs(3));
    assert_eq!(pings(&a), 1);
    let a = h.run_to(t0 + secs(45) - US);
    assert_eq!(
        count(&a, |a| matches!(a, Action::UpsertHibernatingRecord { .. })),
        0
    );
    let a = h.run_to(t0 + secs(45));
    assert_eq!(
        count(&a, |a| matches!(a, Action::UpsertHibernatingRecord { .. })),
        1
    );
    // Repeated and early calls are no-ops.
    h.gw.handle_timeout(h.now);
    h.gw.handle_timeout(t0);
    assert_eq!(h.gw.poll_action(), None);
}

#[test]
fn poll_timeout_is_never_a_handled_deadline() {
    // Drive many requests through every phase at awkward instants; `run_to` asserts after every
    // `handle_timeout(now)` that `poll_timeout` is later than `now`.
    let mut c = GatewayConfig::default();
    c.retransmit_timeout = Some(Duration::from_millis(1_700));
    let mut h = Harness::with(c);
    for n in 0..30u32 {
        let id = rid(n);
        h.open(id);
        if n % 5 != 0 {
            h.accept(id, n % 2 == 0);
        }
        if n % 3 == 0 {
            let _ = h.send(id, b"x");
        }
        if n % 4 == 0 {
            let _ = h.gw.actor_stopped(h.now, id);
        }
        h.auto_pong = n % 7 != 0;
        h.advance(Duration::from_millis(u64::from(n) * 997 + 1));
    }
    h.advance(secs(400));
    let now = h.now;
    if let Some(t) = h.gw.poll_timeout() {
        assert!(t > now);
    }
}

#[test]
fn decreasing_now_is_treated_as_the_latest_now() {
    let mut h = Harness::new();
    let id = rid(1);
    h.open(id);
    h.gw.handle_timeout(h.now + secs(14));
    // A late caller passes an older instant: deadlines do not move backwards.
    h.gw.handle_timeout(h.now);
    h.gw.client_message(Timestamp::ZERO, id, b"x", true)
        .expect_err("not open");
    assert_eq!(h.gw.poll_timeout(), Some(h.now + secs(15)));
}

#[test]
fn hibernating_request_accepts_the_restore_ack_and_actor_messages_from_its_next_route() {
    // The actor wakes on another runner (ROUTE2), which acks its persisted index and writes to
    // the client before the request is woken and routed there. Upstream drops all of it (no
    // handler attached; and hws's route check would too): the ack is then lost and the replay
    // resends what is already durable.
    let mut h = Harness::new();
    let id = rid(21);
    h.active(id, true);
    h.send_n(id, 3, b"m");
    h.drain();
    h.gw.actor_stopped(h.now, id).expect("live");
    h.drain();
    // Active on ROUTE: ROUTE2 is still refused.
    let other = rid(22);
    h.active(other, true);
    assert_eq!(
        h.runner_on(ROUTE2, other, ack_kind(0)),
        Err(ReceiveError::WrongRoute {
            request_id: other,
            route: ROUTE2
        })
    );
    // Hibernating, ROUTE2 not declared yet: refused, whoever it is.
    assert_eq!(
        h.runner_on(ROUTE2, id, ack_kind(2)),
        Err(ReceiveError::WrongRoute {
            request_id: id,
            route: ROUTE2
        })
    );
    // The control plane starts the actor on ROUTE2: its restore ack releases indices 1 and 2.
    h.gw.actor_starting(h.now, id, ROUTE2).expect("live");
    h.runner_on(ROUTE2, id, ack_kind(2))
        .expect("accepted while hibernating");
    assert_eq!(h.pending(id), 1);
    // An actor message from ROUTE2 reaches the client.
    let msg = ToServerTunnelMessageKind::WebSocketMessage(ToServerWebSocketMessage {
        data: b"hi".to_vec().into(),
        binary: false,
    });
    let a = h
        .runner_on(ROUTE2, id, msg)
        .expect("accepted while hibernating");
    assert_eq!(
        count(
            &a,
            |a| matches!(a, Action::SendToClient { data, .. } if **data == *b"hi")
        ),
        1
    );
    // Still validated: an ack beyond what was published changes nothing.
    h.runner_on(ROUTE2, id, ack_kind(9))
        .expect("counted, not an error");
    assert_eq!(h.pending(id), 1);
    // The wake replays only index 3.
    h.gw.wake(h.now, id, ROUTE2).expect("hibernating");
    assert_eq!(ws_indices(&h.drain()), [3]);
    // A hand-back close from a stranger is still refused while hibernating.
    h.gw.actor_stopped(h.now, id).expect("live");
    h.drain();
    assert_eq!(
        h.runner_on(ROUTE, id, close_kind(None, None, true)),
        Err(ReceiveError::WrongRoute {
            request_id: id,
            route: ROUTE
        })
    );
}
