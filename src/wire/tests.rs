//! Codec unit tests: known bytes, hostile input, and properties.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::index::MessageIndex;

fn mid(index: u16) -> MessageId {
    MessageId {
        gateway_id: GatewayId([0xAA, 0xBB, 0xCC, 0xDD]),
        request_id: RequestId([1, 2, 3, 4]),
        message_index: MessageIndex::new(index),
    }
}

const MID_BYTES: [u8; 8] = [0xAA, 0xBB, 0xCC, 0xDD, 1, 2, 3, 4];

fn mid_bytes(index: u16) -> Vec<u8> {
    let mut v = MID_BYTES[..8].to_vec();
    v.extend_from_slice(&index.to_le_bytes());
    v
}

fn ws_msg(index: u16, data: &[u8], binary: bool) -> ToClientTunnelMessage {
    ToClientTunnelMessage {
        message_id: mid(index),
        kind: ToClientTunnelMessageKind::WebSocketMessage(ToClientWebSocketMessage {
            data: data.to_vec().into(),
            binary,
        }),
    }
}

#[test]
fn known_bytes_ws_message() {
    let m = ws_msg(0x0102, b"hey", true);
    let mut expect = mid_bytes(0x0102);
    expect.extend_from_slice(&[4, 3, b'h', b'e', b'y', 1]);
    assert_eq!(encode(&m), expect);
    assert_eq!(encoded_len(&m), expect.len());
    assert_eq!(decode::<ToClientTunnelMessage>(&expect).unwrap(), m);
}

#[test]
fn known_bytes_close_and_ack() {
    let close = ToServerTunnelMessage {
        message_id: mid(7),
        kind: ToServerTunnelMessageKind::WebSocketClose(ToServerWebSocketClose {
            code: Some(1008),
            reason: Some("ws.message_index_skip".into()),
            hibernate: false,
        }),
    };
    let mut expect = mid_bytes(7);
    expect.extend_from_slice(&[6, 1, 0xF0, 0x03, 1, 21]);
    expect.extend_from_slice(b"ws.message_index_skip");
    expect.push(0);
    assert_eq!(encode(&close), expect);

    let ack = ToServerTunnelMessage {
        message_id: mid(0),
        kind: ToServerTunnelMessageKind::WebSocketMessageAck(ToServerWebSocketMessageAck {
            index: MessageIndex::new(65_535),
        }),
    };
    let mut expect = mid_bytes(0);
    expect.extend_from_slice(&[5, 0xFF, 0xFF]);
    assert_eq!(encode(&ack), expect);
}

#[test]
fn envelopes_use_official_tags() {
    let ping = ToRunner::Ping(ToRunnerPing {
        gateway_id: GatewayId([1, 1, 1, 1]),
        request_id: RequestId([2, 2, 2, 2]),
        ts: -2,
    });
    let bytes = encode(&ping);
    assert_eq!(bytes[0], 0);
    assert_eq!(&bytes[9..], &(-2i64).to_le_bytes());
    assert_eq!(encode(&ToRunner::Close), vec![1]);
    assert_eq!(
        encode(&ToRunner::TunnelMessage(ws_msg(1, b"", false)))[0],
        4
    );
    let tm = ToServerTunnelMessage {
        message_id: mid(1),
        kind: ToServerTunnelMessageKind::ResponseAbort,
    };
    assert_eq!(encode(&ToGateway::TunnelMessage(tm.clone()))[0], 1);
    assert_eq!(encode(&ToServer::TunnelMessage(tm))[0], 6);
    assert_eq!(
        encode(&ToClient::TunnelMessage(ws_msg(1, b"", false)))[0],
        4
    );
    let pong_msg = ToGateway::Pong(ToGatewayPong {
        request_id: RequestId([9; 4]),
        ts: 5,
    });
    assert_eq!(encode(&pong_msg), [0, 9, 9, 9, 9, 5, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn borrowed_ws_frame_matches_owned_encoding() {
    for data in [&b""[..], b"x", &[7u8; 300][..]] {
        for binary in [false, true] {
            let owned = encode_versioned(
                PROTOCOL_VERSION,
                &ToRunner::TunnelMessage(ws_msg(9, data, binary)),
            );
            let fast = encode_ws_message_frame(PROTOCOL_VERSION, mid(9), data, binary);
            assert_eq!(fast, owned);
            assert_eq!(ws_message_frame_len(data.len()), owned.len());
        }
    }
}

#[test]
fn versioned_round_trip_and_version_check() {
    let msg = ToGateway::Pong(ToGatewayPong {
        request_id: RequestId([1; 4]),
        ts: 1,
    });
    let frame = encode_versioned(7, &msg);
    assert_eq!(&frame[..2], &[7, 0]);
    let (v, back) = decode_versioned::<ToGateway>(&frame, &DecodeLimits::default()).unwrap();
    assert_eq!((v, back), (7, msg.clone()));
    for bad in [0u16, 3, 8, 0x0700] {
        let frame = encode_versioned(bad, &msg);
        assert_eq!(
            decode_versioned::<ToGateway>(&frame, &DecodeLimits::default()),
            Err(DecodeError::UnsupportedVersion { version: bad })
        );
    }
    assert!(matches!(
        decode_versioned::<ToGateway>(&[7], &DecodeLimits::default()),
        Err(DecodeError::UnexpectedEof { .. })
    ));
}

// ----- hostile input -------------------------------------------------------------------------

#[test]
fn frame_size_checked_first() {
    let limits = DecodeLimits {
        max_frame_size: 16,
        ..DecodeLimits::default()
    };
    let frame = encode(&ws_msg(1, &[0; 10], true));
    assert_eq!(frame.len(), 23);
    assert_eq!(
        decode_with::<ToClientTunnelMessage>(&frame, &limits),
        Err(DecodeError::FrameTooLarge { size: 23, max: 16 })
    );
    // Exactly at the limit is accepted.
    let limits = DecodeLimits {
        max_frame_size: 23,
        ..DecodeLimits::default()
    };
    assert!(decode_with::<ToClientTunnelMessage>(&frame, &limits).is_ok());
}

#[test]
fn trailing_bytes_rejected() {
    let mut frame = encode(&ws_msg(1, b"a", false));
    let n = frame.len();
    frame.push(0);
    assert_eq!(
        decode::<ToClientTunnelMessage>(&frame),
        Err(DecodeError::TrailingBytes {
            offset: n,
            count: 1
        })
    );
}

#[test]
fn unknown_tags_rejected() {
    let mut frame = mid_bytes(1);
    frame.push(6);
    assert!(matches!(
        decode::<ToClientTunnelMessage>(&frame),
        Err(DecodeError::UnknownTag {
            tag: 6,
            offset: 10,
            ..
        })
    ));
    let mut frame = mid_bytes(1);
    frame.push(7);
    assert!(matches!(
        decode::<ToServerTunnelMessage>(&frame),
        Err(DecodeError::UnknownTag { tag: 7, .. })
    ));
    // A tag byte with the continuation bit is unknown too (the official codec reads a u8).
    let mut frame = mid_bytes(1);
    frame.extend_from_slice(&[0x84, 0x00]);
    assert!(matches!(
        decode::<ToClientTunnelMessage>(&frame),
        Err(DecodeError::UnknownTag { tag: 0x84, .. })
    ));
    assert!(matches!(
        decode::<ToRunner>(&[5]),
        Err(DecodeError::UnknownTag { tag: 5, .. })
    ));
    assert!(matches!(
        decode::<ToGateway>(&[2]),
        Err(DecodeError::UnknownTag { tag: 2, .. })
    ));
    // Empty command and event-ack batches, and the body-less stop.
    assert_eq!(
        decode::<ToRunner>(&[2, 0]),
        Ok(ToRunner::Commands(ToClientCommands::default()))
    );
    assert_eq!(
        decode::<ToRunner>(&[3, 0]),
        Ok(ToRunner::AckEvents(ToClientAckEvents::default()))
    );
    assert!(matches!(
        decode::<ToClient>(&[6]),
        Err(DecodeError::UnknownTag { .. })
    ));
    assert_eq!(decode::<ToServer>(&[3]), Ok(ToServer::Stopping));
    assert!(matches!(
        decode::<ToServer>(&[7]),
        Err(DecodeError::UnknownTag { .. })
    ));
}

#[test]
fn bad_bool_rejected() {
    let mut frame = encode(&ws_msg(1, b"a", false));
    *frame.last_mut().unwrap() = 2;
    assert_eq!(
        decode::<ToClientTunnelMessage>(&frame),
        Err(DecodeError::InvalidBool {
            value: 2,
            offset: frame.len() - 1
        })
    );
    // Optional presence flag.
    let mut frame = mid_bytes(1);
    frame.extend_from_slice(&[5, 3]);
    assert!(matches!(
        decode::<ToClientTunnelMessage>(&frame),
        Err(DecodeError::InvalidBool { value: 3, .. })
    ));
}

#[test]
fn invalid_utf8_rejected() {
    let mut frame = mid_bytes(1);
    frame.extend_from_slice(&[5, 0, 1, 2, 0xC3, 0x28]);
    assert_eq!(
        decode::<ToClientTunnelMessage>(&frame),
        Err(DecodeError::InvalidUtf8 { offset: 14 })
    );
    // In a header key.
    let mut frame = mid_bytes(1);
    frame.extend_from_slice(&[3, 1, b'a', 1, b'/', 1, 1, 0xFF, 0]);
    assert!(matches!(
        decode::<ToClientTunnelMessage>(&frame),
        Err(DecodeError::InvalidUtf8 { .. })
    ));
    // Surrogates encoded as UTF-8 (CESU) are invalid too.
    let mut frame = mid_bytes(1);
    frame.extend_from_slice(&[5, 0, 1, 3, 0xED, 0xA0, 0x80]);
    assert!(matches!(
        decode::<ToClientTunnelMessage>(&frame),
        Err(DecodeError::InvalidUtf8 { .. })
    ));
}

#[test]
fn non_canonical_varints_rejected() {
    // Length 1 written as two bytes.
    let mut frame = mid_bytes(1);
    frame.extend_from_slice(&[4, 0x81, 0x00, b'x', 0]);
    assert_eq!(
        decode::<ToClientTunnelMessage>(&frame),
        Err(DecodeError::InvalidVarint { offset: 11 })
    );
    // Zero written as 0x80 0x00.
    let mut frame = mid_bytes(1);
    frame.extend_from_slice(&[4, 0x80, 0x00, 0]);
    assert!(matches!(
        decode::<ToClientTunnelMessage>(&frame),
        Err(DecodeError::InvalidVarint { .. })
    ));
    // Eleven bytes, and a 10th byte above 1.
    let mut frame = mid_bytes(1);
    frame.push(4);
    frame.extend_from_slice(&[0xFF; 10]);
    frame.push(0x01);
    assert!(matches!(
        decode::<ToClientTunnelMessage>(&frame),
        Err(DecodeError::InvalidVarint { .. })
    ));
    let mut frame = mid_bytes(1);
    frame.push(4);
    frame.extend_from_slice(&[0xFF; 9]);
    frame.push(0x02);
    assert!(matches!(
        decode::<ToClientTunnelMessage>(&frame),
        Err(DecodeError::InvalidVarint { .. })
    ));
}

#[test]
fn huge_claimed_lengths_fail_without_allocating() {
    // u64::MAX as a data length: 10-byte canonical varint.
    let mut frame = mid_bytes(1);
    frame.push(4);
    frame.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]);
    assert!(matches!(
        decode::<ToClientTunnelMessage>(&frame),
        Err(DecodeError::LengthExceedsFrame {
            claimed: u64::MAX,
            remaining: 0,
            ..
        })
    ));
    // One more byte claimed than present.
    let mut frame = mid_bytes(1);
    frame.extend_from_slice(&[4, 4, b'a', b'b', 1]);
    assert!(matches!(
        decode::<ToClientTunnelMessage>(&frame),
        Err(DecodeError::LengthExceedsFrame {
            claimed: 4,
            remaining: 3,
            ..
        })
    ));
    // A header map claiming 2^40 entries.
    let mut frame = mid_bytes(1);
    frame.extend_from_slice(&[3, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20]);
    assert!(matches!(
        decode::<ToClientTunnelMessage>(&frame),
        Err(DecodeError::LengthExceedsFrame { .. })
    ));
}

#[test]
fn header_maps_duplicates_and_limit() {
    let mut frame = mid_bytes(1);
    frame.extend_from_slice(&[3, 0, 0, 2, 1, b'k', 1, b'a', 1, b'k', 1, b'b']);
    assert_eq!(
        decode::<ToClientTunnelMessage>(&frame),
        Err(DecodeError::DuplicateKey { offset: 18 })
    );
    let mut headers = Headers::new();
    for i in 0..5 {
        headers.insert(alloc::format!("k{i}"), "v");
    }
    let msg = ToClientTunnelMessage {
        message_id: mid(0),
        kind: ToClientTunnelMessageKind::WebSocketOpen(ToClientWebSocketOpen {
            actor_id: "a".into(),
            path: "/".into(),
            headers,
        }),
    };
    let frame = encode(&msg);
    let at = |max| DecodeLimits {
        max_headers: max,
        ..DecodeLimits::default()
    };
    assert!(decode_with::<ToClientTunnelMessage>(&frame, &at(5)).is_ok());
    assert!(matches!(
        decode_with::<ToClientTunnelMessage>(&frame, &at(4)),
        Err(DecodeError::TooManyHeaders {
            count: 5,
            max: 4,
            ..
        })
    ));
}

/// Header keys of 256+ bytes that differ only by a leading BOM are duplicates, as for the
/// official decoder (its `TextDecoder` drops that BOM; vectors
/// `tests/vectors/rejections.json`, `duplicate_key/bom_stripped_long_key*`).
#[test]
fn header_keys_that_differ_only_by_a_bom_the_official_decoder_drops_are_duplicates() {
    const BOM: &str = "\u{feff}";
    let frame_with = |keys: &[&str]| {
        let mut frame = mid_bytes(1);
        frame.extend_from_slice(&[3, 0, 0]); // WebSocketOpen, empty actor id, empty path
        frame.push(u8::try_from(keys.len()).unwrap());
        for key in keys {
            let mut n = key.len();
            while n >= 0x80 {
                frame.push(0x80 | u8::try_from(n & 0x7f).unwrap());
                n >>= 7;
            }
            frame.push(u8::try_from(n).unwrap());
            frame.extend_from_slice(key.as_bytes());
            frame.push(0); // empty value
        }
        frame
    };
    let long = "k".repeat(300);
    let bom_long = alloc::format!("{BOM}{long}");
    let key_offset = |first: &str| 10 + 3 + 1 + 2 + first.len() + 1;
    // 256+ bytes with a BOM: the official decoder strips it, in either order.
    for (a, b) in [(&long, &bom_long), (&bom_long, &long)] {
        assert_eq!(
            decode::<ToClientTunnelMessage>(&frame_with(&[a, b])),
            Err(DecodeError::DuplicateKey {
                offset: key_offset(a)
            }),
        );
    }
    // One BOM is stripped, not two: BOM BOM X reads as BOM X, which differs from X...
    let double = alloc::format!("{BOM}{bom_long}");
    let frame = frame_with(&[&double, &long]);
    let msg = decode::<ToClientTunnelMessage>(&frame).unwrap();
    assert_eq!(encode(&msg), frame);
    // ...but equals a BOM X short enough (< 256 bytes) to keep its BOM.
    let short_bom = alloc::format!("{BOM}{}", &long[..250]);
    let double_short = alloc::format!("{BOM}{short_bom}");
    assert!(double_short.len() >= 256 && short_bom.len() < 256);
    assert!(matches!(
        decode::<ToClientTunnelMessage>(&frame_with(&[&double_short, &short_bom])),
        Err(DecodeError::DuplicateKey { .. })
    ));
    // Under 256 bytes the BOM is kept by the official decoder too: distinct keys.
    let short = "k".repeat(200);
    let frame = frame_with(&[&short, &alloc::format!("{BOM}{short}")]);
    let msg = decode::<ToClientTunnelMessage>(&frame).unwrap();
    assert_eq!(encode(&msg), frame);
}

#[test]
fn headers_keep_order_and_insert_replaces() {
    let mut h = Headers::new();
    h.insert("z", "1");
    h.insert("a", "2");
    h.insert("z", "3");
    assert_eq!(h.iter().collect::<Vec<_>>(), [("z", "3"), ("a", "2")]);
    assert_eq!(h.get("a"), Some("2"));
    assert_eq!(h.get("b"), None);
    let h2: Headers = [("b", "1"), ("a", "2")].into_iter().collect();
    assert_eq!(h2.iter().next(), Some(("b", "1")));
}

// ----- properties ----------------------------------------------------------------------------

pub(super) fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z0-9/._-]{0,12}", "\\PC{0,8}",]
}

pub(super) fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::collection::vec(any::<u8>(), 120..300),
    ]
}

fn arb_headers() -> impl Strategy<Value = Headers> {
    proptest::collection::vec((arb_string(), arb_string()), 0..5)
        .prop_map(|v| v.into_iter().collect())
}

fn arb_mid() -> impl Strategy<Value = MessageId> {
    (any::<[u8; 4]>(), any::<[u8; 4]>(), any::<u16>()).prop_map(|(g, r, i)| MessageId {
        gateway_id: GatewayId(g),
        request_id: RequestId(r),
        message_index: MessageIndex::new(i),
    })
}

pub(super) fn arb_to_client() -> impl Strategy<Value = ToClientTunnelMessage> {
    let kind = prop_oneof![
        (
            arb_string(),
            arb_string(),
            arb_string(),
            arb_headers(),
            proptest::option::of(arb_bytes()),
            any::<bool>()
        )
            .prop_map(|(actor_id, method, path, headers, body, stream)| {
                ToClientTunnelMessageKind::RequestStart(ToClientRequestStart {
                    actor_id,
                    method,
                    path,
                    headers,
                    body,
                    stream,
                })
            }),
        (arb_bytes(), any::<bool>()).prop_map(|(body, finish)| {
            ToClientTunnelMessageKind::RequestChunk(ToClientRequestChunk { body, finish })
        }),
        Just(ToClientTunnelMessageKind::RequestAbort),
        (arb_string(), arb_string(), arb_headers()).prop_map(|(actor_id, path, headers)| {
            ToClientTunnelMessageKind::WebSocketOpen(ToClientWebSocketOpen {
                actor_id,
                path,
                headers,
            })
        }),
        (arb_bytes(), any::<bool>()).prop_map(|(data, binary)| {
            ToClientTunnelMessageKind::WebSocketMessage(ToClientWebSocketMessage {
                data: data.into(),
                binary,
            })
        }),
        (
            proptest::option::of(any::<u16>()),
            proptest::option::of(arb_string())
        )
            .prop_map(|(code, reason)| {
                ToClientTunnelMessageKind::WebSocketClose(ToClientWebSocketClose { code, reason })
            }),
    ];
    (arb_mid(), kind).prop_map(|(message_id, kind)| ToClientTunnelMessage { message_id, kind })
}

pub(super) fn arb_to_server() -> impl Strategy<Value = ToServerTunnelMessage> {
    let kind = prop_oneof![
        (
            any::<u16>(),
            arb_headers(),
            proptest::option::of(arb_bytes()),
            any::<bool>()
        )
            .prop_map(|(status, headers, body, stream)| {
                ToServerTunnelMessageKind::ResponseStart(ToServerResponseStart {
                    status,
                    headers,
                    body,
                    stream,
                })
            }),
        (arb_bytes(), any::<bool>()).prop_map(|(body, finish)| {
            ToServerTunnelMessageKind::ResponseChunk(ToServerResponseChunk { body, finish })
        }),
        Just(ToServerTunnelMessageKind::ResponseAbort),
        any::<bool>().prop_map(|can_hibernate| {
            ToServerTunnelMessageKind::WebSocketOpen(ToServerWebSocketOpen { can_hibernate })
        }),
        (arb_bytes(), any::<bool>()).prop_map(|(data, binary)| {
            ToServerTunnelMessageKind::WebSocketMessage(ToServerWebSocketMessage {
                data: data.into(),
                binary,
            })
        }),
        any::<u16>().prop_map(|i| {
            ToServerTunnelMessageKind::WebSocketMessageAck(ToServerWebSocketMessageAck {
                index: MessageIndex::new(i),
            })
        }),
        (
            proptest::option::of(any::<u16>()),
            proptest::option::of(arb_string()),
            any::<bool>()
        )
            .prop_map(|(code, reason, hibernate)| {
                ToServerTunnelMessageKind::WebSocketClose(ToServerWebSocketClose {
                    code,
                    reason,
                    hibernate,
                })
            }),
    ];
    (arb_mid(), kind).prop_map(|(message_id, kind)| ToServerTunnelMessage { message_id, kind })
}

/// A gateway's ping as a `ToRunner`.
pub(super) fn arb_ping() -> impl Strategy<Value = ToRunner> {
    (any::<[u8; 4]>(), any::<[u8; 4]>(), any::<i64>()).prop_map(|(g, r, ts)| {
        ToRunner::Ping(ToRunnerPing {
            gateway_id: GatewayId(g),
            request_id: RequestId(r),
            ts,
        })
    })
}

fn arb_to_runner() -> impl Strategy<Value = ToRunner> {
    prop_oneof![
        arb_ping(),
        Just(ToRunner::Close),
        arb_to_client().prop_map(ToRunner::TunnelMessage),
    ]
}

fn arb_to_gateway() -> impl Strategy<Value = ToGateway> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<i64>()).prop_map(|(r, ts)| {
            ToGateway::Pong(ToGatewayPong {
                request_id: RequestId(r),
                ts,
            })
        }),
        arb_to_server().prop_map(ToGateway::TunnelMessage),
    ]
}

/// Round trip, exact length, and every strict prefix fails.
pub(super) fn check_frame<M: Message + PartialEq + core::fmt::Debug>(
    msg: &M,
) -> Result<(), TestCaseError> {
    let bytes = encode(msg);
    prop_assert_eq!(bytes.len(), encoded_len(msg));
    let back: M = decode(&bytes).map_err(|e| TestCaseError::fail(alloc::format!("{e}")))?;
    prop_assert_eq!(&back, msg);
    prop_assert_eq!(encode(&back), bytes.clone());
    for cut in 0..bytes.len() {
        prop_assert!(
            decode::<M>(&bytes[..cut]).is_err(),
            "prefix {} decoded",
            cut
        );
    }
    Ok(())
}

proptest! {
    #[test]
    fn round_trip_to_client(m in arb_to_client()) { check_frame(&m)?; }

    #[test]
    fn round_trip_to_server(m in arb_to_server()) { check_frame(&m)?; }

    #[test]
    fn round_trip_to_runner(m in arb_to_runner()) {
        check_frame(&m)?;
        let v = encode_versioned(PROTOCOL_VERSION, &m);
        let (ver, back) = decode_versioned::<ToRunner>(&v, &DecodeLimits::default()).unwrap();
        prop_assert_eq!(ver, PROTOCOL_VERSION);
        prop_assert_eq!(back, m);
    }

    #[test]
    fn round_trip_to_gateway(m in arb_to_gateway()) { check_frame(&m)?; }

    #[test]
    fn round_trip_small_types(g: [u8; 4], r: [u8; 4], ts: i64) {
        check_frame(&ToRunnerPing { gateway_id: GatewayId(g), request_id: RequestId(r), ts })?;
        check_frame(&ToGatewayPong { request_id: RequestId(r), ts })?;
        check_frame(&HibernatingRequest { gateway_id: GatewayId(g), request_id: RequestId(r) })?;
    }

    #[test]
    fn round_trip_runner_socket_envelopes(c in arb_to_client(), s in arb_to_server()) {
        check_frame(&ToClient::TunnelMessage(c))?;
        check_frame(&ToServer::TunnelMessage(s))?;
    }

    /// Arbitrary bytes never panic, and whatever decodes re-encodes to the same bytes.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(m) = decode::<ToClientTunnelMessage>(&bytes) { prop_assert_eq!(encode(&m), bytes.clone()); }
        if let Ok(m) = decode::<ToServerTunnelMessage>(&bytes) { prop_assert_eq!(encode(&m), bytes.clone()); }
        if let Ok(m) = decode::<ToRunner>(&bytes) { prop_assert_eq!(encode(&m), bytes.clone()); }
        if let Ok(m) = decode::<ToGateway>(&bytes) { prop_assert_eq!(encode(&m), bytes.clone()); }
        if let Ok((v, m)) = decode_versioned::<ToRunner>(&bytes, &DecodeLimits::default()) {
            prop_assert_eq!(encode_versioned(v, &m), bytes.clone());
        }
    }

    /// Mutating one byte of a valid frame either fails cleanly or decodes to a frame that
    /// re-encodes to exactly the mutated bytes.
    #[test]
    fn mutated_frames_are_canonical_or_rejected(m in arb_to_runner(), pos: usize, byte: u8) {
        let mut bytes = encode(&m);
        let at = pos % bytes.len();
        bytes[at] = byte;
        if let Ok(back) = decode::<ToRunner>(&bytes) {
            prop_assert_eq!(encode(&back), bytes);
        }
    }
}

/// Whether `part` lies inside `whole`'s buffer (a slice of it, not a copy).
fn inside(part: &[u8], whole: &[u8]) -> bool {
    let range = whole.as_ptr_range();
    range.contains(&part.as_ptr()) && part.as_ptr_range().end <= range.end
}

#[test]
fn shared_decode_borrows_the_payload_and_slice_decode_copies_it() {
    let frame = bytes::Bytes::from(encode_versioned(
        PROTOCOL_VERSION,
        &ToRunner::TunnelMessage(ws_msg(7, &[9; 100], true)),
    ));
    let limits = DecodeLimits::default();
    let (_, shared) = decode_versioned_shared::<ToRunner>(&frame, &limits).unwrap();
    let (_, copied) = decode_versioned::<ToRunner>(&frame, &limits).unwrap();
    assert_eq!(shared, copied);
    let payload = |m: &ToRunner| match m {
        ToRunner::TunnelMessage(ToClientTunnelMessage {
            kind: ToClientTunnelMessageKind::WebSocketMessage(w),
            ..
        }) => w.data.clone(),
        other => panic!("not a message: {other:?}"),
    };
    assert!(inside(&payload(&shared), &frame));
    assert!(!inside(&payload(&copied), &frame));

    // The same for the runner's messages to the gateway.
    let back = ToServerTunnelMessage {
        message_id: mid(3),
        kind: ToServerTunnelMessageKind::WebSocketMessage(ToServerWebSocketMessage {
            data: vec![5; 50].into(),
            binary: false,
        }),
    };
    let frame = bytes::Bytes::from(encode(&ToServer::TunnelMessage(back.clone())));
    let ToServer::TunnelMessage(decoded) = decode_shared::<ToServer>(&frame, &limits).unwrap()
    else {
        panic!("not a tunnel message");
    };
    assert_eq!(decoded, back);
    let ToServerTunnelMessageKind::WebSocketMessage(w) = decoded.kind else {
        panic!("not a message");
    };
    assert!(inside(&w.data, &frame));
}
