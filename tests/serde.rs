//! The `serde` feature: ids, `PersistedSocket`, `Headers`, configs and stats round-trip through
//! JSON; a header map with a repeated key is refused; a partial config takes the defaults.
#![cfg(feature = "serde")]

use core::fmt::Debug;
use core::time::Duration;

use hibernating_ws::MessageIndex;
use hibernating_ws::gateway::{GatewayConfig, GatewayStats, OverflowPolicy, RouteId};
use hibernating_ws::runner::{
    Framing, GapPolicy, PersistedSocket, RunnerConfig, RunnerStats, SocketId,
};
use hibernating_ws::wire::{GatewayId, Headers, RequestId};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) -> String {
    let json = serde_json::to_string(value).expect("serializes");
    let back: T = serde_json::from_str(&json).expect("deserializes");
    assert_eq!(&back, value, "{json}");
    json
}

#[test]
fn ids_round_trip() {
    round_trip(&GatewayId([1, 2, 3, 4]));
    round_trip(&RequestId::from_u32(0xdead_beef));
    round_trip(&MessageIndex::new(65_535));
    round_trip(&RouteId(7));
    let json = round_trip(&SocketId::new(
        GatewayId([1, 2, 3, 4]),
        RequestId([5, 6, 7, 8]),
    ));
    assert_eq!(json, r#"{"gateway_id":[1,2,3,4],"request_id":[5,6,7,8]}"#);
}

#[test]
fn headers_keep_their_order_and_refuse_a_repeated_key() {
    let h = Headers::from_iter([("z-last", "1"), ("a-first", "2"), ("m", "")]);
    let json = round_trip(&h);
    assert_eq!(json, r#"{"z-last":"1","a-first":"2","m":""}"#);
    let err = serde_json::from_str::<Headers>(r#"{"a":"1","a":"2"}"#).unwrap_err();
    assert!(err.to_string().contains("duplicate header"), "{err}");
}

#[test]
fn persisted_socket_round_trips() {
    round_trip(&PersistedSocket {
        socket: SocketId::new(GatewayId([9; 4]), RequestId([1; 4])),
        server_index: MessageIndex::new(65_000),
        client_index: MessageIndex::new(3),
        path: "/actors/room?x=1".into(),
        headers: Headers::from_iter([("origin", "https://example.com")]),
    });
}

#[test]
fn configs_round_trip_and_a_partial_config_takes_the_defaults() {
    let gw = GatewayConfig::default()
        .with_overflow_policy(OverflowPolicy::Backpressure)
        .with_max_pending_bytes(1 << 20);
    round_trip(&gw);
    let rn = RunnerConfig::default()
        .with_gap_policy(GapPolicy::Await)
        .with_framing(Framing::RunnerSocket)
        .with_persist_interval(Duration::from_millis(250));
    round_trip(&rn);
    let partial: RunnerConfig = serde_json::from_str(r#"{"persist_bytes": 1000}"#).unwrap();
    assert_eq!(partial, RunnerConfig::default().with_persist_bytes(1000));
    let partial: GatewayConfig =
        serde_json::from_str(r#"{"overflow_policy": "Backpressure"}"#).unwrap();
    assert_eq!(
        partial,
        GatewayConfig::default().with_overflow_policy(OverflowPolicy::Backpressure)
    );
}

#[test]
fn stats_round_trip() {
    let mut s = GatewayStats::default();
    s.messages_acked = 12;
    s.hibernating = 3;
    round_trip(&s);
    let mut r = RunnerStats::default();
    r.delivered = 99;
    r.acks_sent = 4;
    round_trip(&r);
}
