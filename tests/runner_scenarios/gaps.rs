//! The await gap policy: a lost message healed by retransmit, the held limits and the gap
//! timeout.

use super::*;

/// A runner with `config` under the await gap policy, with socket `sid(g, 1)` open at index 0.
fn awaiting(g: u32, config: RunnerConfig) -> (Harness, hibernating_ws::runner::SocketId) {
    let s = sid(g, 1);
    let h = Harness::new(config.with_gap_policy(GapPolicy::Await)).with_open_socket(s, 0);
    (h, s)
}

#[test]
fn await_heals_a_lost_message_by_retransmit() {
    let (mut h, s) = awaiting(90, RunnerConfig::default());
    h.msg(s, 1, b"1");
    // 2 is lost in transit; 3, 4 and a duplicate 3 arrive.
    h.msg(s, 3, b"3");
    h.msg(s, 4, b"4");
    h.msg(s, 3, b"3");
    assert_eq!(h.drain(), vec![Out::msg(s, 1, b"1")]);
    assert_eq!(h.runner.socket(s).unwrap().held, 2);
    // The gateway retransmits 2, 3, 4.
    h.msg(s, 2, b"2");
    h.msg(s, 3, b"3");
    h.msg(s, 4, b"4");
    let delivered: Vec<u16> = delivered(h.drain());
    assert_eq!(delivered, [2, 3, 4]);
    let info = h.runner.socket(s).unwrap();
    assert_eq!(
        (info.held, info.held_bytes, info.last_delivered.get()),
        (0, 0, 4)
    );
    let st = h.runner.stats();
    assert_eq!(
        (st.held, st.held_delivered, st.duplicates, st.gap_closes),
        (2, 2, 3, 0)
    );
    // The gap timer was cancelled: only the persist debounce is left.
    assert_eq!(
        h.runner.poll_timeout(),
        Some(h.now + Duration::from_secs(5))
    );
}

#[test]
fn await_closes_on_held_count_overflow() {
    let (mut h, s) = awaiting(91, RunnerConfig::default().with_max_held_messages(3));
    h.msgs(s, [3u16, 4, 5], b"h");
    assert_eq!(h.drain(), vec![]);
    h.msg(s, 6, b"h");
    assert_eq!(h.drain(), skip_closed(s, 1));
    assert_eq!(h.runner.stats().held_overflows, 1);
}

#[test]
fn await_closes_on_held_bytes_overflow() {
    let (mut h, s) = awaiting(92, RunnerConfig::default().with_max_held_bytes(10));
    h.msg(s, 2, &[0; 6]);
    h.msg(s, 3, &[0; 4]); // exactly 10 bytes held: allowed
    assert_eq!(h.runner.socket(s).unwrap().held_bytes, 10);
    h.msg(s, 4, &[0; 1]); // 11: overflow
    assert_eq!(h.drain()[0], skip_close(s, 1));
    assert!(h.runner.socket(s).is_none());
}

#[test]
fn await_closes_when_the_gap_times_out() {
    let (mut h, s) = awaiting(93, RunnerConfig::default());
    h.msg(s, 2, b"x");
    let held_at = h.now;
    h.now = held_at + Duration::from_secs(30) - Duration::from_micros(1);
    h.runner.handle_timeout(h.now);
    assert_eq!(h.drain(), vec![]);
    h.now = held_at + Duration::from_secs(30);
    h.runner.handle_timeout(h.now);
    assert_eq!(h.drain(), skip_closed(s, 1));
    assert_eq!(h.runner.stats().gap_timeouts, 1);
    assert_eq!(h.runner.poll_timeout(), None);
}
