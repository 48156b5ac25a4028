//! Limits: N−1 / N / N+1 under both overflow policies.

use super::*;

fn limit_config(policy: OverflowPolicy) -> GatewayConfig {
    let mut c = GatewayConfig::default();
    c.overflow_policy = policy;
    c
}

/// How a send past `limit` is refused under `policy`.
fn refused(policy: OverflowPolicy, request_id: RequestId, limit: Limit) -> SendError {
    match policy {
        OverflowPolicy::Close => SendError::LimitExceeded { request_id, limit },
        _ => SendError::Backpressure { request_id, limit },
    }
}

/// A harness under `policy` and the limits `set` writes, with request `rid(n)` active.
fn limited(
    policy: OverflowPolicy,
    n: u32,
    set: impl FnOnce(&mut GatewayConfig),
) -> (Harness, RequestId) {
    let mut c = limit_config(policy);
    set(&mut c);
    let mut h = Harness::with(c);
    let id = rid(n);
    h.active(id, true);
    (h, id)
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
        let (mut h, id) = limited(policy, 1, |c| {
            c.max_pending_messages = 4;
        });
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
        let (mut h, id) = limited(policy, 2, |c| {
            c.max_pending_bytes = 2 * f + 1;
        });
        fill(&mut h, id, 2, 100); // N − 1 bytes left
        assert_eq!(h.gw.request(id).map(|r| r.pending_bytes), Some(2 * f));
        // One byte of room left; the smallest frame does not fit.
        let over = h.send(id, b"");
        let limit = Limit::RequestBytes;
        assert_eq!(over, Err(refused(policy, id, limit)));
        if policy == OverflowPolicy::Close {
            assert!(h.gw.request(id).is_none());
        } else {
            assert_eq!(h.gw.stats().backpressured, 1);
            assert_eq!(h.ack(id, 1), [Action::ClientWritable { request_id: id }]);
            assert_eq!(h.send(id, b""), Ok(idx(3)));
        }
    }
    // N − 1, N and N + 1 bytes: a second frame lands one byte short of, exactly on, or one
    // byte past the limit (payload 99 / 100 / 101 after a 100-byte one).
    for policy in [OverflowPolicy::Close, OverflowPolicy::Backpressure] {
        for (payload, fits) in [(99usize, true), (100, true), (101, false)] {
            let (mut h, id) = limited(policy, 3, |c| {
                c.max_pending_bytes = 2 * frame_len(100);
            });
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
        assert_eq!(over, Err(refused(policy, second, limit)));
        if policy == OverflowPolicy::Close {
            let actions = h.drain();
            assert_eq!(closed(&actions), [CloseReason::PendingLimit(limit)]);
            // The closed request's bytes went back to the gateway pool: the first fits again.
            assert_eq!(h.gw.stats().pending_bytes, 2 * f);
            assert!(h.send(first, &[0; 50]).is_ok());
        } else {
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
