//! Codec tests of the control plane, the KV types, the full envelopes and the re-framing.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::tests::{arb_bytes, arb_ping, arb_string, arb_to_client, arb_to_server, check_frame};
use super::*;

// ----- strategies ------------------------------------------------------------------------------

fn arb_hib() -> impl Strategy<Value = HibernatingRequest> {
    (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(g, r)| HibernatingRequest {
        gateway_id: GatewayId(g),
        request_id: RequestId(r),
    })
}

fn arb_checkpoint() -> impl Strategy<Value = ActorCheckpoint> {
    (arb_string(), any::<u32>(), any::<i64>()).prop_map(|(actor_id, generation, index)| {
        ActorCheckpoint {
            actor_id,
            generation,
            index,
        }
    })
}

fn arb_command() -> impl Strategy<Value = Command> {
    let config = (
        arb_string(),
        proptest::option::of(arb_string()),
        any::<i64>(),
        proptest::option::of(arb_bytes()),
    )
        .prop_map(|(name, key, create_ts, input)| ActorConfig {
            name,
            key,
            create_ts,
            input,
        });
    prop_oneof![
        (config, proptest::collection::vec(arb_hib(), 0..4)).prop_map(|(config, hib)| {
            Command::StartActor(CommandStartActor {
                config,
                hibernating_requests: hib,
            })
        }),
        Just(Command::StopActor),
    ]
}

/// Up to three `inner` values, each wrapped with a checkpoint by `wrap`.
fn arb_batch<T: core::fmt::Debug, W: core::fmt::Debug>(
    inner: impl Strategy<Value = T>,
    wrap: fn(ActorCheckpoint, T) -> W,
) -> impl Strategy<Value = Vec<W>> {
    proptest::collection::vec(
        (arb_checkpoint(), inner).prop_map(move |(c, i)| wrap(c, i)),
        0..4,
    )
}

fn arb_commands() -> impl Strategy<Value = ToClientCommands> {
    arb_batch(arb_command(), |checkpoint, inner| CommandWrapper {
        checkpoint,
        inner,
    })
    .prop_map(ToClientCommands)
}

fn arb_checkpoints() -> impl Strategy<Value = Vec<ActorCheckpoint>> {
    proptest::collection::vec(arb_checkpoint(), 0..4)
}

fn arb_event() -> impl Strategy<Value = Event> {
    let stop_code = prop_oneof![Just(StopCode::Ok), Just(StopCode::Error)];
    prop_oneof![
        prop_oneof![Just(ActorIntent::Sleep), Just(ActorIntent::Stop)]
            .prop_map(|intent| Event::ActorIntent(EventActorIntent { intent })),
        Just(Event::ActorStateUpdate(EventActorStateUpdate {
            state: ActorState::Running
        })),
        (stop_code, proptest::option::of(arb_string())).prop_map(|(code, message)| {
            Event::ActorStateUpdate(EventActorStateUpdate {
                state: ActorState::Stopped(ActorStateStopped { code, message }),
            })
        }),
        proptest::option::of(any::<i64>())
            .prop_map(|alarm_ts| Event::ActorSetAlarm(EventActorSetAlarm { alarm_ts })),
    ]
}

fn arb_events() -> impl Strategy<Value = ToServerEvents> {
    arb_batch(arb_event(), |checkpoint, inner| EventWrapper {
        checkpoint,
        inner,
    })
    .prop_map(ToServerEvents)
}

fn arb_init() -> impl Strategy<Value = ToServerInit> {
    let names = proptest::collection::vec((arb_string(), arb_string()), 0..4).prop_map(|v| {
        v.into_iter()
            .map(|(k, metadata)| (k, ActorName { metadata }))
            .collect::<ActorNames>()
    });
    (
        arb_string(),
        any::<u32>(),
        any::<u32>(),
        proptest::option::of(names),
        proptest::option::of(arb_string()),
    )
        .prop_map(
            |(name, version, total_slots, prepopulate_actor_names, metadata)| ToServerInit {
                name,
                version,
                total_slots,
                prepopulate_actor_names,
                metadata,
            },
        )
}

fn arb_keys() -> impl Strategy<Value = Vec<Vec<u8>>> {
    proptest::collection::vec(arb_bytes(), 0..3)
}

fn arb_kv_request() -> impl Strategy<Value = KvRequestData> {
    let query = prop_oneof![
        Just(KvListQuery::All),
        (arb_bytes(), arb_bytes(), any::<bool>()).prop_map(|(start, end, exclusive)| {
            KvListQuery::Range(KvListRangeQuery {
                start,
                end,
                exclusive,
            })
        }),
        arb_bytes().prop_map(|key| KvListQuery::Prefix(KvListPrefixQuery { key })),
    ];
    prop_oneof![
        arb_keys().prop_map(|keys| KvRequestData::Get(KvGetRequest { keys })),
        (
            query,
            proptest::option::of(any::<bool>()),
            proptest::option::of(any::<u64>())
        )
            .prop_map(
                |(query, reverse, limit)| KvRequestData::List(KvListRequest {
                    query,
                    reverse,
                    limit
                })
            ),
        (arb_keys(), arb_keys())
            .prop_map(|(keys, values)| KvRequestData::Put(KvPutRequest { keys, values })),
        arb_keys().prop_map(|keys| KvRequestData::Delete(KvDeleteRequest { keys })),
        (arb_bytes(), arb_bytes()).prop_map(|(start, end)| KvRequestData::DeleteRange(
            KvDeleteRangeRequest { start, end }
        )),
        Just(KvRequestData::Drop),
    ]
}

fn arb_kv_response() -> impl Strategy<Value = KvResponseData> {
    let metadata = || {
        proptest::collection::vec(
            (arb_bytes(), any::<i64>())
                .prop_map(|(version, update_ts)| KvMetadata { version, update_ts }),
            0..3,
        )
    };
    prop_oneof![
        arb_string().prop_map(|message| KvResponseData::Error(KvErrorResponse { message })),
        (arb_keys(), arb_keys(), metadata()).prop_map(|(keys, values, metadata)| {
            KvResponseData::Get(KvGetResponse {
                keys,
                values,
                metadata,
            })
        }),
        (arb_keys(), arb_keys(), metadata()).prop_map(|(keys, values, metadata)| {
            KvResponseData::List(KvListResponse {
                keys,
                values,
                metadata,
            })
        }),
        Just(KvResponseData::Put),
        Just(KvResponseData::Delete),
        Just(KvResponseData::Drop),
    ]
}

pub(super) fn arb_full_to_client() -> BoxedStrategy<ToClient> {
    let metadata = (
        any::<i64>(),
        any::<i64>(),
        proptest::option::of(any::<i64>()),
    )
        .prop_map(
            |(runner_lost_threshold, actor_stop_threshold, serverless_drain_grace_period)| {
                ProtocolMetadata {
                    runner_lost_threshold,
                    actor_stop_threshold,
                    serverless_drain_grace_period,
                }
            },
        );
    prop_oneof![
        (arb_string(), metadata).prop_map(|(runner_id, metadata)| ToClient::Init(ToClientInit {
            runner_id,
            metadata
        })),
        arb_commands().prop_map(ToClient::Commands),
        arb_checkpoints().prop_map(|c| ToClient::AckEvents(ToClientAckEvents {
            last_event_checkpoints: c
        })),
        (any::<u32>(), arb_kv_response()).prop_map(|(request_id, data)| ToClient::KvResponse(
            ToClientKvResponse { request_id, data }
        )),
        arb_to_client().prop_map(ToClient::TunnelMessage),
        any::<i64>().prop_map(|ts| ToClient::Ping(ToClientPing { ts })),
    ]
    .boxed()
}

pub(super) fn arb_full_to_server() -> BoxedStrategy<ToServer> {
    prop_oneof![
        arb_init().prop_map(ToServer::Init),
        arb_events().prop_map(ToServer::Events),
        arb_checkpoints().prop_map(|c| ToServer::AckCommands(ToServerAckCommands {
            last_command_checkpoints: c
        })),
        Just(ToServer::Stopping),
        any::<i64>().prop_map(|ts| ToServer::Pong(ToServerPong { ts })),
        (arb_string(), any::<u32>(), arb_kv_request()).prop_map(|(actor_id, request_id, data)| {
            ToServer::KvRequest(ToServerKvRequest {
                actor_id,
                request_id,
                data,
            })
        }),
        arb_to_server().prop_map(ToServer::TunnelMessage),
    ]
    .boxed()
}

pub(super) fn arb_full_to_runner() -> BoxedStrategy<ToRunner> {
    prop_oneof![
        arb_ping(),
        Just(ToRunner::Close),
        arb_commands().prop_map(ToRunner::Commands),
        arb_checkpoints().prop_map(|c| ToRunner::AckEvents(ToClientAckEvents {
            last_event_checkpoints: c
        })),
        arb_to_client().prop_map(ToRunner::TunnelMessage),
    ]
    .boxed()
}

pub(super) fn arb_full_to_gateway() -> BoxedStrategy<ToGateway> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<i64>()).prop_map(|(r, ts)| ToGateway::Pong(ToGatewayPong {
            request_id: RequestId(r),
            ts
        })),
        arb_to_server().prop_map(ToGateway::TunnelMessage),
    ]
    .boxed()
}

// ----- re-framing against decode -> convert -> encode -------------------------------------------

/// Every re-framing function agrees with the decode → convert → encode path on `bytes`:
/// same verdict, same output bytes.
pub(super) fn check_reframing(bytes: &[u8], limits: &DecodeLimits) -> Result<(), TestCaseError> {
    let v = PROTOCOL_VERSION;
    // ToRunner (versioned) -> ToClient (plain)
    let fast = to_runner_as_to_client(bytes, limits);
    let slow = decode_versioned::<ToRunner>(bytes, limits).map(|(ver, m)| {
        (
            ver,
            ToClient::try_from(m).map_or_else(Reframed::Local, |c| Reframed::Frame(encode(&c))),
        )
    });
    prop_assert_eq!(fast, slow);
    // ToClient (plain) -> ToRunner (versioned)
    let fast = to_client_as_to_runner(bytes, v, limits);
    let slow = decode_with::<ToClient>(bytes, limits).map(|m| {
        ToRunner::try_from(m).map_or_else(Reframed::Local, |r| {
            Reframed::Frame(encode_versioned(v, &r))
        })
    });
    prop_assert_eq!(fast, slow);
    // ToServer (plain) -> ToGateway (versioned)
    let fast = to_server_as_to_gateway(bytes, v, limits);
    let slow = decode_with::<ToServer>(bytes, limits).map(|m| {
        ToGateway::try_from(m).map_or_else(Reframed::Local, |g| {
            Reframed::Frame(encode_versioned(v, &g))
        })
    });
    if let Ok(Reframed::Frame(f)) = &fast {
        let Ok(ToServer::TunnelMessage(m)) = decode_with::<ToServer>(bytes, limits) else {
            return Err(TestCaseError::fail(
                "a re-framed ToServer is not a tunnel message",
            ));
        };
        prop_assert_eq!(gateway_of(f), Some(m.message_id.gateway_id));
    }
    prop_assert_eq!(fast, slow);
    // ToGateway (versioned) -> ToServer (plain)
    let fast = to_gateway_as_to_server(bytes, limits);
    let slow = decode_versioned::<ToGateway>(bytes, limits).map(|(ver, m)| {
        (
            ver,
            ToServer::try_from(m).map_or_else(Reframed::Local, |s| Reframed::Frame(encode(&s))),
        )
    });
    prop_assert_eq!(fast, slow);
    Ok(())
}

/// The frame, one byte of it changed, and one of its prefixes.
fn check_reframing_of(frame: &[u8], pos: usize, byte: u8) -> Result<(), TestCaseError> {
    let limits = DecodeLimits::default();
    check_reframing(frame, &limits)?;
    let mut mutated = frame.to_vec();
    let at = pos % mutated.len();
    mutated[at] = byte;
    check_reframing(&mutated, &limits)?;
    check_reframing(&frame[..pos % frame.len()], &limits)
}

proptest! {
    #[test]
    fn round_trip_full_envelopes(
        c in arb_full_to_client(),
        s in arb_full_to_server(),
        r in arb_full_to_runner(),
        g in arb_full_to_gateway(),
    ) {
        check_frame(&c)?;
        check_frame(&s)?;
        check_frame(&r)?;
        check_frame(&g)?;
    }

    #[test]
    fn reframing_equals_decode_convert_encode(
        c in arb_full_to_client(),
        s in arb_full_to_server(),
        pos: usize,
        byte: u8,
    ) {
        check_reframing_of(&encode(&c), pos, byte)?;
        check_reframing_of(&encode(&s), pos, byte)?;
    }

    #[test]
    fn reframing_equals_decode_convert_encode_versioned(
        r in arb_full_to_runner(),
        g in arb_full_to_gateway(),
        pos: usize,
        byte: u8,
    ) {
        check_reframing_of(&encode_versioned(PROTOCOL_VERSION, &r), pos, byte)?;
        check_reframing_of(&encode_versioned(PROTOCOL_VERSION, &g), pos, byte)?;
    }

    #[test]
    fn arbitrary_bytes_reframe_like_decode(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
        check_reframing(&bytes, &DecodeLimits::default())?;
        if let Ok(m) = decode::<ToClient>(&bytes) { prop_assert_eq!(encode(&m), bytes.clone()); }
        if let Ok(m) = decode::<ToServer>(&bytes) { prop_assert_eq!(encode(&m), bytes.clone()); }
    }
}

// ----- known bytes and edge cases -----------------------------------------------------------

#[test]
fn a_gateway_ping_is_never_forwarded_as_a_client_init() {
    let ping = ToRunner::Ping(ToRunnerPing {
        gateway_id: GatewayId([1, 2, 3, 4]),
        request_id: RequestId([5, 6, 7, 8]),
        ts: 9,
    });
    let frame = encode_versioned(PROTOCOL_VERSION, &ping);
    // Copied as is (minus the prefix) it would read as a ToClientInit...
    assert!(matches!(
        decode::<ToClient>(&frame[2..]),
        Err(_) | Ok(ToClient::Init(_))
    ));
    // ...so the re-framing hands it back instead.
    assert_eq!(
        to_runner_as_to_client(&frame, &DecodeLimits::default()),
        Ok((PROTOCOL_VERSION, Reframed::Local(ping)))
    );
}

#[test]
fn reframing_maps_tags() {
    let limits = DecodeLimits::default();
    // ToRunner 2 (commands, empty list) -> ToClient 1; ToRunner 3 -> ToClient 2.
    assert_eq!(
        to_runner_as_to_client(&[7, 0, 2, 0], &limits),
        Ok((7, Reframed::Frame(vec![1, 0])))
    );
    assert_eq!(
        to_runner_as_to_client(&[7, 0, 3, 0], &limits),
        Ok((7, Reframed::Frame(vec![2, 0])))
    );
    assert_eq!(
        to_client_as_to_runner(&[2, 0], 7, &limits),
        Ok(Reframed::Frame(vec![7, 0, 3, 0]))
    );
    // ToServer 6 <-> ToGateway 1, body untouched.
    let mut body = vec![6, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 5, 3, 0];
    let out = to_server_as_to_gateway(&body, 7, &limits).unwrap();
    let mut expected = vec![7, 0, 1];
    expected.extend_from_slice(&body[1..]);
    assert_eq!(out, Reframed::Frame(expected.clone()));
    assert_eq!(gateway_of(&expected), Some(GatewayId([1, 2, 3, 4])));
    assert_eq!(
        to_gateway_as_to_server(&expected, &limits),
        Ok((7, Reframed::Frame(body.clone())))
    );
    // A stop request is for the engine, not the gateway.
    body = vec![3];
    assert_eq!(
        to_server_as_to_gateway(&body, 7, &limits),
        Ok(Reframed::Local(ToServer::Stopping))
    );
}

#[test]
fn control_messages_are_read_from_v7_only() {
    let limits = DecodeLimits::default();
    let commands = encode_versioned(6, &ToRunner::Commands(ToClientCommands::default()));
    assert_eq!(
        decode_versioned::<ToRunner>(&commands, &limits),
        Err(DecodeError::UnsupportedVariant {
            union: "ToRunner",
            tag: 2,
            offset: 2
        })
    );
    assert!(to_runner_as_to_client(&commands, &limits).is_err());
    let close = encode_versioned(5, &ToRunner::Close);
    assert_eq!(
        decode_versioned::<ToRunner>(&close, &limits),
        Ok((5, ToRunner::Close))
    );
    let ping = encode_versioned(4, &ToClientPing { ts: 1 });
    assert_eq!(
        decode_versioned::<ToClientPing>(&ping, &limits),
        Err(DecodeError::UnsupportedVersion { version: 4 })
    );
}

#[test]
fn known_bytes_of_control_messages() {
    let init = ToClient::Init(ToClientInit {
        runner_id: String::from("r"),
        metadata: ProtocolMetadata {
            runner_lost_threshold: 1,
            actor_stop_threshold: 2,
            serverless_drain_grace_period: None,
        },
    });
    let mut expected = vec![
        0, 1, b'r', 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert_eq!(encode(&init), expected);
    let stopped = ToServer::Events(ToServerEvents(vec![EventWrapper {
        checkpoint: ActorCheckpoint {
            actor_id: String::from("a"),
            generation: 3,
            index: 4,
        },
        inner: Event::ActorStateUpdate(EventActorStateUpdate {
            state: ActorState::Stopped(ActorStateStopped {
                code: StopCode::Error,
                message: None,
            }),
        }),
    }]));
    expected = vec![
        1, 1, 1, b'a', 3, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0,
    ];
    assert_eq!(encode(&stopped), expected);
    assert_eq!(decode::<ToServer>(&expected), Ok(stopped));
    // StopCode 2 does not exist.
    expected[18] = 2;
    assert!(matches!(
        decode::<ToServer>(&expected),
        Err(DecodeError::UnknownTag {
            union: "StopCode",
            tag: 2,
            offset: 18
        })
    ));
}

#[test]
fn list_counts_are_checked_before_allocation_and_capped() {
    let limits = DecodeLimits {
        max_list_len: 2,
        ..DecodeLimits::default()
    };
    // Three empty-keyed KV gets: count 3 > 2.
    let req = ToServer::KvRequest(ToServerKvRequest {
        actor_id: String::new(),
        request_id: 0,
        data: KvRequestData::Get(KvGetRequest {
            keys: vec![Vec::new(); 3],
        }),
    });
    let bytes = encode(&req);
    assert!(matches!(
        decode_with::<ToServer>(&bytes, &limits),
        Err(DecodeError::TooManyItems {
            count: 3,
            max: 2,
            ..
        })
    ));
    assert_eq!(decode::<ToServer>(&bytes), Ok(req));
    // A huge claimed count fails on the remaining bytes, whatever the cap.
    let huge = [1u8, 0xff, 0xff, 0xff, 0xff, 0x0f];
    assert!(matches!(
        decode::<ToServer>(&huge),
        Err(DecodeError::LengthExceedsFrame { .. })
    ));
}

#[test]
fn actor_name_maps_reject_duplicates_and_keep_order() {
    let init = |names: Vec<(&str, &str)>| {
        ToServer::Init(ToServerInit {
            name: String::from("pool"),
            version: 1,
            total_slots: 10,
            prepopulate_actor_names: Some(ActorNames::from_entries_unchecked(
                names
                    .into_iter()
                    .map(|(k, m)| {
                        (
                            String::from(k),
                            ActorName {
                                metadata: String::from(m),
                            },
                        )
                    })
                    .collect(),
            )),
            metadata: Some(String::from("{\"a\":1}")),
        })
    };
    let ordered = init(vec![("z", "{}"), ("a", "not json at all")]);
    let bytes = encode(&ordered);
    assert_eq!(decode::<ToServer>(&bytes), Ok(ordered));
    let dup = encode(&init(vec![("a", "{}"), ("a", "{}")]));
    assert!(matches!(
        decode::<ToServer>(&dup),
        Err(DecodeError::DuplicateKey { .. })
    ));
}

#[test]
fn serde_names_are_the_official_names() {
    let abort = ToRunner::TunnelMessage(ToClientTunnelMessage {
        message_id: MessageId::default(),
        kind: ToClientTunnelMessageKind::RequestAbort,
    });
    let v = serde_json::to_value(&abort).unwrap();
    assert_eq!(
        v["ToClientTunnelMessage"]["message_kind"],
        "ToClientRequestAbort"
    );
    let pong = ToGateway::Pong(ToGatewayPong {
        request_id: RequestId([0; 4]),
        ts: 1,
    });
    assert!(serde_json::to_value(&pong).unwrap()["ToGatewayPong"].is_object());
    let stop = Command::StopActor;
    assert_eq!(serde_json::to_value(&stop).unwrap(), "CommandStopActor");
}
