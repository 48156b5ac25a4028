//! Model-based test of `hibernating_ws::runner::Runner` (proptest-state-machine).
//!
//! The reference model keeps, per socket, the last delivered / persisted / acked index, the
//! persist in flight, the debounce and retry deadlines and the held buffer, plus the app's
//! stored metadata and the gateway's hibernating list. The system under test is a `Runner`
//! driven as an app and a gateway would drive it. After every transition the runner's view of
//! every socket must equal the model's, and invariants are checked on the actions it emitted:
//! delivered indices of a hibernatable socket are strictly consecutive (no duplicate, no gap);
//! every ack equals the index the app last reported persisted, which is at or before the last
//! delivered one (acked ≤ persisted ≤ delivered); outgoing indices are consecutive; and after
//! `handle_timeout(now)`, `poll_timeout()` is later than `now`.

mod model;
mod sut;

#[path = "../runner_support/mod.rs"]
mod runner_support;

extern crate alloc;

use alloc::collections::{BTreeMap, BTreeSet};

use core::time::Duration;

use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};

use hibernating_ws::runner::{
    CloseReason, GapPolicy, ReceiveError, Runner, RunnerConfig, SendError, SocketError, SocketState,
};
use hibernating_ws::{MessageIndex, Timestamp};
use runner_support::{ACTOR, Out, close_kind, decode, hib, meta, msg_kind, open_kind, sid};

const SOCKETS: u8 = 3;
const PERSIST_BYTES: u64 = 16;
const PERSIST_INTERVAL: u64 = 5_000_000;
const RETRY_INITIAL: u64 = 100_000;
const RETRY_MAX: u64 = 400_000;
const GAP_TIMEOUT: u64 = 10_000_000;
const REACK: u64 = 1_000_000;
const MAX_HELD: usize = 4;

fn config(gap_policy: GapPolicy) -> RunnerConfig {
    RunnerConfig::default()
        .with_gap_policy(gap_policy)
        .with_persist_bytes(PERSIST_BYTES)
        .with_persist_interval(Duration::from_micros(PERSIST_INTERVAL))
        .with_persist_retry_initial(Duration::from_micros(RETRY_INITIAL))
        .with_persist_retry_max(Duration::from_micros(RETRY_MAX))
        .with_gap_timeout(Duration::from_micros(GAP_TIMEOUT))
        .with_reack_interval(Duration::from_micros(REACK))
        .with_max_held_messages(MAX_HELD)
}

fn socket_id(s: u8) -> hibernating_ws::runner::SocketId {
    sid(7, u32::from(s))
}

fn idx(s: usize) -> u8 {
    u8::try_from(s).expect("the model has fewer than 256 sockets")
}

fn after(a: u16, b: u16) -> bool {
    MessageIndex::new(a).is_after(MessageIndex::new(b))
}

use sut::RunnerTest;

prop_state_machine! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn runner_matches_the_reference_model(sequential 1..80 => RunnerTest);
}
