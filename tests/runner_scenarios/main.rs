//! Runner and ack-policy scenarios 21–31 (`docs/protocol.md#runner-socket-states` describes the
//! machine), plus the boundary tests the runner
//! issue asks for. Where hws deliberately differs from upstream, the test asserts hws and names
//! upstream's behaviour in a comment.

mod gaps;
mod lifecycle;
mod numbered;
mod persist;
mod receive;
mod robustness;

#[path = "../runner_support/mod.rs"]
mod runner_support;

use core::time::Duration;

use hibernating_ws::runner::{
    ActorError, ActorState, CloseReason, Framing, GapPolicy, ReceiveError, RunnerConfig, SendError,
    SocketError, SocketState,
};
use hibernating_ws::wire::{
    self, GatewayId, RequestId, ToClient, ToRunner, ToRunnerPing, ToServer,
};
use hibernating_ws::{CloseFrame, KnownClose, MessageIndex, Timestamp};
use runner_support::*;

fn policy(gap_policy: GapPolicy) -> Harness {
    Harness::new(RunnerConfig::default().with_gap_policy(gap_policy))
}

/// What a message at distance `delta` past `p` does.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Duplicate,
    Deliver,
    Gap,
}

fn verdict_for(gap_policy: GapPolicy, base: u16, delta: u16) -> Verdict {
    let s = sid(1, 1);
    // The open index is the socket's starting `p`.
    let mut h = policy(gap_policy).with_open_socket(s, base);
    let r = base.wrapping_add(delta);
    h.msg(s, r, b"x");
    let out = h.drain();
    let stats = h.runner.stats();
    if out
        .iter()
        .any(|o| matches!(o, Out::Msg { index, .. } if *index == r))
    {
        assert_eq!(out, vec![Out::msg(s, r, b"x")]);
        assert_eq!(h.last_delivered(s), r);
        return Verdict::Deliver;
    }
    if stats.duplicates == 1 {
        // A duplicate of a persisted index re-acks it (rate-limited; this is the first).
        assert_eq!(out, vec![Out::ack(s, 1, base)], "base={base} δ={delta}");
        assert_eq!(h.last_delivered(s), base);
        return Verdict::Duplicate;
    }
    assert_eq!(stats.gaps, 1, "base={base} δ={delta}");
    match gap_policy {
        GapPolicy::Close => {
            assert_eq!(out, skip_closed(s, 1));
            assert!(h.runner.socket(s).is_none());
        }
        GapPolicy::Await => {
            assert_eq!(out, vec![]);
            let info = h.runner.socket(s).expect("still open");
            assert_eq!((info.held, info.last_delivered.get()), (1, base));
        }
    }
    Verdict::Gap
}
