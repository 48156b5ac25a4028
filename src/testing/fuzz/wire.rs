//! [`wire_decode`]: the codec round trip.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::fmt::Debug;

use crate::wire::{
    self, DEFAULT_MAX_HEADERS, DecodeError, DecodeLimits, HibernatingRequest, Message, Reframed,
    ToClient, ToClientAckEvents, ToClientCommands, ToClientInit, ToClientKvResponse, ToClientPing,
    ToClientTunnelMessage, ToClientTunnelMessageKind, ToGateway, ToGatewayPong, ToRunner,
    ToRunnerPing, ToServer, ToServerAckCommands, ToServerEvents, ToServerInit, ToServerKvRequest,
    ToServerPong, ToServerTunnelMessage, ToServerTunnelMessageKind,
};

/// Decodes `data` as every message type, plain and versioned, and checks the round trip and the
/// consistency of the decoders.
///
/// For every type `T` and every way `data` decodes:
/// * `encode(T)` (or `encode_versioned(version, T)`) gives back exactly `data`, and
///   `encoded_len` is its length;
/// * decoding under tighter limits (a frame-size limit just below the length, a small header
///   limit) either fails or gives the same value, and never accepts a frame longer than
///   `max_frame_size` or a map with more entries than `max_headers`;
/// * decoded header maps hold no duplicate key;
/// * the envelopes agree with what they wrap, tag by tag (`ToClient` tag 4 = tag byte +
///   `ToClientTunnelMessage`, tag 1 = tag byte + `ToClientCommands`, and so on for every variant
///   of `ToClient`, `ToServer`, `ToRunner` and `ToGateway`);
/// * each re-framing function (`to_runner_as_to_client` and the three others) gives exactly
///   what decoding, converting with the `TryFrom` impls and encoding gives: the same error, or
///   the same bytes;
/// * a decoded `ToRunner` WebSocket message frame equals `encode_ws_message_frame`'s bytes, a
///   decoded `ToGateway` or `ToServer` WebSocket message or ack frame the bytes of
///   `encode_server_ws_message_frame` or `encode_ack_frame` (and of the serde path);
/// * every error offset lies within the frame.
///
/// # Panics
/// When one of these properties is violated.
pub fn wire_decode(data: &[u8]) {
    let limits = DecodeLimits::default();
    // Tighter limits drawn from the frame itself, so the fuzzer controls them too.
    let tight = DecodeLimits {
        max_frame_size: data
            .len()
            .saturating_sub(usize::from(data.first() == Some(&0))),
        max_headers: usize::from(data.last().copied().unwrap_or(0) % 4),
        max_list_len: usize::from(data.last().copied().unwrap_or(0) / 4 % 4),
    };

    let client_tm = check::<ToClientTunnelMessage>(data, &limits, &tight);
    let server_tm = check::<ToServerTunnelMessage>(data, &limits, &tight);
    check::<ToRunnerPing>(data, &limits, &tight);
    check::<ToGatewayPong>(data, &limits, &tight);
    if let Some(h) = check::<HibernatingRequest>(data, &limits, &tight) {
        let uuid = wire::request_uuid(h.gateway_id, h.request_id);
        assert_eq!(
            wire::request_from_uuid(&uuid),
            (h.gateway_id, h.request_id),
            "v2 request uuid round trip"
        );
    }
    check::<ToClientInit>(data, &limits, &tight);
    check::<ToClientCommands>(data, &limits, &tight);
    check::<ToClientAckEvents>(data, &limits, &tight);
    check::<ToClientKvResponse>(data, &limits, &tight);
    check::<ToClientPing>(data, &limits, &tight);
    check::<ToServerInit>(data, &limits, &tight);
    check::<ToServerEvents>(data, &limits, &tight);
    check::<ToServerAckCommands>(data, &limits, &tight);
    check::<ToServerPong>(data, &limits, &tight);
    check::<ToServerKvRequest>(data, &limits, &tight);
    let to_runner = check::<ToRunner>(data, &limits, &tight);
    let to_gateway = check::<ToGateway>(data, &limits, &tight);
    let to_client = check::<ToClient>(data, &limits, &tight);
    let to_server = check::<ToServer>(data, &limits, &tight);

    check_envelopes(
        data,
        to_runner.as_ref(),
        to_gateway.as_ref(),
        to_client.as_ref(),
        to_server.as_ref(),
    );
    if let Some(m) = &client_tm {
        check_client_kind(m, DEFAULT_MAX_HEADERS);
    }
    if let Some(m) = &server_tm {
        check_server_kind(m, DEFAULT_MAX_HEADERS);
    }
    if let Ok(m) = wire::decode_with::<ToClientTunnelMessage>(data, &tight) {
        check_client_kind(&m, tight.max_headers);
    }
    if let Ok(m) = wire::decode_with::<ToServerTunnelMessage>(data, &tight) {
        check_server_kind(&m, tight.max_headers);
    }
    check_control_envelopes(
        data,
        to_runner.as_ref(),
        to_client.as_ref(),
        to_server.as_ref(),
    );
    check_reframing(data, &limits);
    check_reframing(data, &tight);
    check_fast_path(data, &limits);
    check_uuid_packing(data);
}

/// The envelopes agree with the types they wrap.
fn check_envelopes(
    data: &[u8],
    to_runner: Option<&ToRunner>,
    to_gateway: Option<&ToGateway>,
    to_client: Option<&ToClient>,
    to_server: Option<&ToServer>,
) {
    fn agree<T: PartialEq + Debug>(got: Option<&T>, want: Option<&T>, what: &str) {
        assert_eq!(got, want, "{what}");
    }
    let body = data.get(1..).unwrap_or_default();
    match data.first() {
        Some(4) => {
            let inner = wire::decode::<ToClientTunnelMessage>(body).ok();
            let what = "ToClient tag 4 disagrees with ToClientTunnelMessage";
            agree(
                to_client,
                inner.clone().map(ToClient::TunnelMessage).as_ref(),
                what,
            );
            let what = "ToRunner tag 4 disagrees with ToClientTunnelMessage";
            agree(to_runner, inner.map(ToRunner::TunnelMessage).as_ref(), what);
        }
        Some(6) => {
            let inner = wire::decode::<ToServerTunnelMessage>(body).ok();
            let what = "ToServer tag 6 disagrees with ToServerTunnelMessage";
            agree(to_server, inner.map(ToServer::TunnelMessage).as_ref(), what);
        }
        Some(0) => {
            let ping = wire::decode::<ToRunnerPing>(body).ok();
            agree(
                to_runner,
                ping.map(ToRunner::Ping).as_ref(),
                "ToRunner tag 0 disagrees with ToRunnerPing",
            );
            let answer = wire::decode::<ToGatewayPong>(body).ok();
            let what = "ToGateway tag 0 disagrees with ToGatewayPong";
            agree(to_gateway, answer.map(ToGateway::Pong).as_ref(), what);
        }
        Some(1) => {
            let inner = wire::decode::<ToServerTunnelMessage>(body).ok();
            let what = "ToGateway tag 1 disagrees with ToServerTunnelMessage";
            agree(
                to_gateway,
                inner.map(ToGateway::TunnelMessage).as_ref(),
                what,
            );
            let close = body.is_empty().then_some(&ToRunner::Close);
            agree(to_runner, close, "ToRunner tag 1 is the bodiless close");
        }
        _ => {}
    }
}

/// The control variants of the envelopes agree with the types they wrap.
fn check_control_envelopes(
    data: &[u8],
    to_runner: Option<&ToRunner>,
    to_client: Option<&ToClient>,
    to_server: Option<&ToServer>,
) {
    fn inner<M: Message>(body: &[u8]) -> Option<M> {
        wire::decode::<M>(body).ok()
    }
    let body = data.get(1..).unwrap_or_default();
    let (client, server, runner) = match data.first() {
        Some(0) => (
            inner(body).map(ToClient::Init),
            inner(body).map(ToServer::Init),
            None,
        ),
        Some(1) => (
            inner(body).map(ToClient::Commands),
            inner(body).map(ToServer::Events),
            None,
        ),
        Some(2) => (
            inner(body).map(ToClient::AckEvents),
            inner(body).map(ToServer::AckCommands),
            inner(body).map(ToRunner::Commands),
        ),
        Some(3) => (
            inner(body).map(ToClient::KvResponse),
            body.is_empty().then_some(ToServer::Stopping),
            inner(body).map(ToRunner::AckEvents),
        ),
        Some(4) => (None, inner(body).map(ToServer::Pong), None),
        Some(5) => (
            inner(body).map(ToClient::Ping),
            inner(body).map(ToServer::KvRequest),
            None,
        ),
        _ => return,
    };
    if data.first() != Some(&4) {
        assert_eq!(
            to_client,
            client.as_ref(),
            "ToClient disagrees with its variant"
        );
    }
    assert_eq!(
        to_server,
        server.as_ref(),
        "ToServer disagrees with its variant"
    );
    if matches!(data.first(), Some(2 | 3)) {
        assert_eq!(
            to_runner,
            runner.as_ref(),
            "ToRunner disagrees with its variant"
        );
    }
}

/// Each re-framing function gives what decode -> convert -> encode gives, error or bytes.
fn check_reframing(data: &[u8], limits: &DecodeLimits) {
    let v = wire::PROTOCOL_VERSION;
    let fast = wire::to_runner_as_to_client(data, limits);
    let slow = wire::decode_versioned::<ToRunner>(data, limits).map(|(ver, m)| {
        let out = ToClient::try_from(m)
            .map_or_else(Reframed::Local, |c| Reframed::Frame(wire::encode(&c)));
        (ver, out)
    });
    assert_eq!(
        fast, slow,
        "to_runner_as_to_client differs from decode/encode"
    );
    let fast = wire::to_client_as_to_runner(data, v, limits);
    let slow = wire::decode_with::<ToClient>(data, limits).map(|m| {
        ToRunner::try_from(m).map_or_else(Reframed::Local, |r| {
            Reframed::Frame(wire::encode_versioned(v, &r))
        })
    });
    assert_eq!(
        fast, slow,
        "to_client_as_to_runner differs from decode/encode"
    );
    let fast = wire::to_server_as_to_gateway(data, v, limits);
    let slow = wire::decode_with::<ToServer>(data, limits).map(|m| {
        ToGateway::try_from(m).map_or_else(Reframed::Local, |g| {
            Reframed::Frame(wire::encode_versioned(v, &g))
        })
    });
    if let Ok(Reframed::Frame(frame)) = &fast {
        let id = data.get(1..5).and_then(|b| <[u8; 4]>::try_from(b).ok());
        assert_eq!(
            wire::gateway_of(frame).map(|g| g.0),
            id,
            "gateway_of names another gateway than the message"
        );
    }
    assert_eq!(
        fast, slow,
        "to_server_as_to_gateway differs from decode/encode"
    );
    let fast = wire::to_gateway_as_to_server(data, limits);
    let slow = wire::decode_versioned::<ToGateway>(data, limits).map(|(ver, m)| {
        let out = ToServer::try_from(m)
            .map_or_else(Reframed::Local, |s| Reframed::Frame(wire::encode(&s)));
        (ver, out)
    });
    assert_eq!(
        fast, slow,
        "to_gateway_as_to_server differs from decode/encode"
    );
}

/// The gateway's borrowed fast path encodes WebSocket messages exactly like the owned path.
fn check_fast_path(data: &[u8], limits: &DecodeLimits) {
    if let Ok((version, ToRunner::TunnelMessage(m))) =
        wire::decode_versioned::<ToRunner>(data, limits)
        && let ToClientTunnelMessageKind::WebSocketMessage(ws) = &m.kind
    {
        let fast = wire::encode_ws_message_frame(version, m.message_id, &ws.data, ws.binary);
        assert_eq!(fast, data, "encode_ws_message_frame differs from the frame");
        assert_eq!(
            wire::ws_message_frame_len(ws.data.len()),
            data.len(),
            "ws_message_frame_len differs from the frame length"
        );
        let uuid = wire::message_uuid(&m.message_id);
        assert_eq!(
            wire::message_id_from_uuid(&uuid),
            m.message_id,
            "v2 message uuid round trip"
        );
    }
    // The runner's hand-written encoders: messages and acks, both framings; the frame already
    // equals the serde path's re-encoding (checked by `check`), so these equal it too.
    let server = |m: &ToServerTunnelMessage, version: Option<u16>| match &m.kind {
        ToServerTunnelMessageKind::WebSocketMessage(ws) => Some(
            wire::encode_server_ws_message_frame(version, m.message_id, &ws.data, ws.binary),
        ),
        ToServerTunnelMessageKind::WebSocketMessageAck(ack) => {
            Some(wire::encode_ack_frame(version, m.message_id, ack.index))
        }
        _ => None,
    };
    if let Ok((version, ToGateway::TunnelMessage(m))) =
        wire::decode_versioned::<ToGateway>(data, limits)
        && let Some(fast) = server(&m, Some(version))
    {
        assert_eq!(
            fast, data,
            "hand-written ToGateway encoder differs from the frame"
        );
        let serde = wire::encode_versioned(version, &ToGateway::TunnelMessage(m));
        assert_eq!(
            fast, serde,
            "hand-written ToGateway encoder differs from serde"
        );
    }
    if let Ok(ToServer::TunnelMessage(m)) = wire::decode_with::<ToServer>(data, limits)
        && let Some(fast) = server(&m, None)
    {
        assert_eq!(
            fast, data,
            "hand-written ToServer encoder differs from the frame"
        );
        let serde = wire::encode(&ToServer::TunnelMessage(m));
        assert_eq!(
            fast, serde,
            "hand-written ToServer encoder differs from serde"
        );
    }
}

/// v2 UUID packing of arbitrary bytes round-trips.
fn check_uuid_packing(data: &[u8]) {
    let packed = data
        .get(..data.len().min(wire::MAX_PACKED_BYTES + 1))
        .unwrap_or_default();
    match wire::pack_bytes(packed) {
        Some(uuid) => {
            assert!(
                packed.len() <= wire::MAX_PACKED_BYTES,
                "packed too many bytes"
            );
            let back = wire::unpack_bytes(&uuid);
            assert_eq!(
                back.get(..packed.len()),
                Some(packed),
                "pack/unpack round trip"
            );
            assert!(
                back.iter().skip(packed.len()).all(|&b| b == 0),
                "unpacked padding is not zero"
            );
            assert_eq!(uuid.get_version_num(), 4, "packed uuid is not version 4");
        }
        None => assert!(
            packed.len() > wire::MAX_PACKED_BYTES,
            "pack refused a short input"
        ),
    }
}

/// Decodes `data` as `M`, plain and versioned, under the default and the tight limits; checks
/// the round trips and the limits. Returns the plainly decoded value.
fn check<M: Message + PartialEq + Debug + Clone>(
    data: &[u8],
    limits: &DecodeLimits,
    tight: &DecodeLimits,
) -> Option<M> {
    let name = core::any::type_name::<M>();
    let plain = wire::decode_with::<M>(data, limits);
    match &plain {
        Ok(m) => {
            assert_eq!(wire::encode(m), data, "{name}: plain re-encoding differs");
            assert_eq!(
                wire::encoded_len(m),
                data.len(),
                "{name}: encoded_len differs"
            );
            let mut appended = alloc::vec![0xAA];
            wire::encode_into(m, &mut appended);
            assert_eq!(appended.get(1..), Some(data), "{name}: encode_into differs");
        }
        Err(e) => check_error(e, data, name),
    }
    let plain_tight = wire::decode_with::<M>(data, tight);
    check_tight(name, data, tight, plain.as_ref().ok(), &plain_tight);

    let versioned = wire::decode_versioned::<M>(data, limits);
    match &versioned {
        Ok((version, m)) => {
            assert!(
                wire::TUNNEL_COMPATIBLE_VERSIONS.contains(version),
                "{name}: accepted version {version}"
            );
            assert_eq!(
                wire::encode_versioned(*version, m),
                data,
                "{name}: versioned re-encoding differs"
            );
            assert_eq!(
                wire::encoded_len(m) + wire::VERSION_PREFIX_LEN,
                data.len(),
                "{name}: versioned encoded_len differs"
            );
            // The body alone decodes plainly to the same value.
            let body = data.get(wire::VERSION_PREFIX_LEN..).unwrap_or_default();
            assert_eq!(
                wire::decode_with::<M>(body, limits).as_ref().ok(),
                Some(m),
                "{name}: versioned body does not decode plainly"
            );
        }
        Err(e) => check_error(e, data, name),
    }
    let versioned_tight = wire::decode_versioned::<M>(data, tight);
    check_tight(name, data, tight, versioned.as_ref().ok(), &versioned_tight);
    plain.ok()
}

/// Decoding under tighter limits accepts only what the defaults accept, with the same value, and
/// enforces the limits.
fn check_tight<T: PartialEq + Debug>(
    name: &str,
    data: &[u8],
    tight: &DecodeLimits,
    loose: Option<&T>,
    result: &Result<T, DecodeError>,
) {
    match result {
        Ok(v) => {
            assert_eq!(
                Some(v),
                loose,
                "{name}: tight limits accept what the defaults do not, or differently"
            );
            assert!(
                data.len() <= tight.max_frame_size,
                "{name}: frame of {} bytes accepted over max_frame_size {}",
                data.len(),
                tight.max_frame_size
            );
        }
        Err(DecodeError::FrameTooLarge { size, max }) => {
            assert!(
                *size == data.len() && *max == tight.max_frame_size && size > max,
                "{name}: wrong FrameTooLarge {size} > {max}"
            );
        }
        Err(e) => check_error(e, data, name),
    }
}

/// Every offset an error reports lies within the frame.
fn check_error(e: &DecodeError, data: &[u8], name: &str) {
    let offset = match e {
        DecodeError::UnexpectedEof { offset }
        | DecodeError::LengthExceedsFrame { offset, .. }
        | DecodeError::TrailingBytes { offset, .. }
        | DecodeError::UnknownTag { offset, .. }
        | DecodeError::UnsupportedVariant { offset, .. }
        | DecodeError::InvalidBool { offset, .. }
        | DecodeError::InvalidUtf8 { offset }
        | DecodeError::InvalidVarint { offset }
        | DecodeError::DuplicateKey { offset }
        | DecodeError::TooManyHeaders { offset, .. }
        | DecodeError::TooManyItems { offset, .. } => Some(*offset),
        _ => None,
    };
    if let Some(offset) = offset {
        assert!(
            offset <= data.len(),
            "{name}: error offset {offset} past the frame ({} bytes): {e}",
            data.len()
        );
    }
    if let DecodeError::TrailingBytes { offset, count } = e {
        assert_eq!(
            offset + count,
            data.len(),
            "{name}: trailing bytes do not end the frame"
        );
    }
}

/// Header maps of a decoded gateway → runner message: unique keys, at most `max` entries.
fn check_client_kind(m: &ToClientTunnelMessage, max: usize) {
    let headers = match &m.kind {
        ToClientTunnelMessageKind::RequestStart(s) => Some(&s.headers),
        ToClientTunnelMessageKind::WebSocketOpen(o) => Some(&o.headers),
        _ => None,
    };
    if let Some(h) = headers {
        unique_keys(h.iter().map(|(k, _)| k), max);
    }
}

/// Header maps of a decoded runner → gateway message: unique keys, at most `max` entries.
fn check_server_kind(m: &ToServerTunnelMessage, max: usize) {
    if let ToServerTunnelMessageKind::ResponseStart(s) = &m.kind {
        unique_keys(s.headers.iter().map(|(k, _)| k), max);
    }
}

/// No key twice (byte for byte), at most `max` keys.
fn unique_keys<'a>(keys: impl Iterator<Item = &'a str>, max: usize) {
    let keys: Vec<&str> = keys.collect();
    let set: BTreeSet<&str> = keys.iter().copied().collect();
    assert_eq!(
        set.len(),
        keys.len(),
        "decoded header map has a duplicate key"
    );
    assert!(
        keys.len() <= max,
        "decoded header map of {} entries over the limit {max}",
        keys.len()
    );
}
