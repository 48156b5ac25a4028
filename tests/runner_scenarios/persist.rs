//! Persist debounce boundaries: the interval and the byte threshold, persists in flight and
//! failed persists.

use super::*;

#[test]
fn persist_interval_boundary_5s_minus_1us_and_5s() {
    let (mut h, s) = Harness::open_socket(80);
    h.msg(s, 1, b"first");
    let _ = h.drain();
    let first = h.now;
    // More messages later do not move the deadline (it counts from the first unpersisted one).
    h.advance(Duration::from_secs(3));
    h.msg(s, 2, b"second");
    let _ = h.drain();
    assert_eq!(
        h.runner.poll_timeout(),
        Some(first + Duration::from_secs(5))
    );
    h.now = first + Duration::from_secs(5) - Duration::from_micros(1);
    h.runner.handle_timeout(h.now);
    assert_eq!(h.drain(), vec![], "5 s − 1 µs: no persist yet");
    h.now = first + Duration::from_secs(5);
    h.runner.handle_timeout(h.now);
    h.expect_persist(s, 2, 2);
    // A second call at the same instant is a no-op; no deadline is left.
    h.runner.handle_timeout(h.now);
    assert_eq!(h.drain(), vec![]);
    assert_eq!(h.runner.poll_timeout(), None);
}

#[test]
fn persist_bytes_boundary_499_999_and_500_000() {
    for (bytes, persists) in [(499_999usize, false), (500_000, true)] {
        let s = sid(81, 1);
        let mut h = Harness::default_config().with_open_socket(s, 0);
        h.msg(s, 1, &vec![7u8; bytes]);
        let out = h.drain();
        assert_eq!(out.len(), if persists { 2 } else { 1 }, "{bytes} bytes");
        assert_eq!(out.contains(&Out::persist(s, 1, 2)), persists);
    }
}

#[test]
fn deliveries_during_a_persist_in_flight_are_persisted_next() {
    let (mut h, s) = Harness::open_socket(82);
    h.persist_first(s);
    // While 1 is in flight, 2 arrives; its deadline passes before the result comes.
    h.msg(s, 2, b"b");
    h.advance(Duration::from_secs(6));
    assert_eq!(h.drain(), vec![Out::msg(s, 2, b"b")]);
    h.persisted(s, 1);
    assert_eq!(h.drain(), vec![Out::ack(s, 1, 1), Out::persist(s, 2, 3),]);
}

#[test]
fn failed_persists_back_off_and_are_never_acked() {
    let (mut h, s) = Harness::open_socket(83);
    h.persist_first(s);
    let mut delays = Vec::new();
    for _ in 0..8 {
        h.runner
            .persist_failed(h.now, s, MessageIndex::new(1))
            .unwrap();
        assert_eq!(h.drain(), vec![], "a failure is never acked");
        let at = h.runner.poll_timeout().unwrap();
        delays.push((at - h.now).as_millis());
        h.now = at;
        h.runner.handle_timeout(h.now);
        h.expect_persist(s, 1, 2);
    }
    assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    // Success resets the backoff.
    h.persist_and_expect_ack(s, 1, 1);
    h.msg(s, 2, b"b");
    h.advance(Duration::from_secs(5));
    let _ = h.drain();
    h.runner
        .persist_failed(h.now, s, MessageIndex::new(2))
        .unwrap();
    assert_eq!(
        h.runner.poll_timeout(),
        Some(h.now + Duration::from_millis(100))
    );
    assert_eq!(h.runner.stats().persists_failed, 9);
}
