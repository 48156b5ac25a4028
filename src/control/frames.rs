//! The engine's hot frames written straight to bytes: a `ToClientCommands` frame with one start
//! or stop command, and `ToClientAckEvents`. Byte for byte what [`wire::encode`](crate::wire::encode)
//! produces for the same message (checked by the tests below), without building the message or
//! going through serde.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;

use crate::wire::{ActorCheckpoint, ActorConfig, GatewayId, HibernatingRequest, RequestId};

/// `ToClient` tags.
const TAG_COMMANDS: u8 = 1;
const TAG_ACK_EVENTS: u8 = 2;
/// `Command` tags.
const TAG_START: u8 = 0;
const TAG_STOP: u8 = 1;

/// What a `CommandStartActor` carries: the config, and the hibernating requests (this gateway's
/// records, then those of other gateways; entries of `others` naming this gateway are skipped).
#[derive(Clone, Copy)]
pub(super) struct Start<'a> {
    pub(super) config: &'a ActorConfig,
    pub(super) gateway_id: GatewayId,
    pub(super) records: &'a BTreeSet<RequestId>,
    pub(super) others: &'a [HibernatingRequest],
}

/// A `ToClient::Commands` frame with one command: a `CommandStartActor` for `Some`, a
/// `CommandStopActor` for `None`.
pub(super) fn command(
    actor_id: &str,
    generation: u32,
    index: i64,
    start: Option<Start<'_>>,
) -> Vec<u8> {
    let start_len = start.as_ref().map_or(0, |s| {
        32 + s.config.name.len()
            + s.config.key.as_ref().map_or(0, String::len)
            + s.config.input.as_ref().map_or(0, Vec::len)
            + 8 * (s.records.len() + s.others.len())
    });
    let mut out = Vec::with_capacity(32 + actor_id.len() + start_len);
    out.push(TAG_COMMANDS);
    uvarint(&mut out, 1);
    checkpoint(&mut out, actor_id, generation, index);
    match start {
        None => out.push(TAG_STOP),
        Some(Start {
            config,
            gateway_id,
            records,
            others,
        }) => {
            out.push(TAG_START);
            string(&mut out, &config.name);
            match &config.key {
                Some(key) => {
                    out.push(1);
                    string(&mut out, key);
                }
                None => out.push(0),
            }
            out.extend_from_slice(&config.create_ts.to_le_bytes());
            match &config.input {
                Some(input) => {
                    out.push(1);
                    uvarint(&mut out, input.len() as u64);
                    out.extend_from_slice(input);
                }
                None => out.push(0),
            }
            let foreign = || others.iter().filter(|h| h.gateway_id != gateway_id);
            uvarint(&mut out, (records.len() + foreign().count()) as u64);
            for request_id in records {
                out.extend_from_slice(&gateway_id.0);
                out.extend_from_slice(&request_id.0);
            }
            for h in foreign() {
                out.extend_from_slice(&h.gateway_id.0);
                out.extend_from_slice(&h.request_id.0);
            }
        }
    }
    out
}

/// A `ToClient::AckEvents` frame.
pub(super) fn ack_events(checkpoints: &[ActorCheckpoint]) -> Vec<u8> {
    let len: usize = checkpoints.iter().map(|c| 24 + c.actor_id.len()).sum();
    let mut out = Vec::with_capacity(12 + len);
    out.push(TAG_ACK_EVENTS);
    uvarint(&mut out, checkpoints.len() as u64);
    for c in checkpoints {
        checkpoint(&mut out, &c.actor_id, c.generation, c.index);
    }
    out
}

fn checkpoint(out: &mut Vec<u8>, actor_id: &str, generation: u32, index: i64) {
    string(out, actor_id);
    out.extend_from_slice(&generation.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
}

fn string(out: &mut Vec<u8>, s: &str) {
    uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn uvarint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        // Seven bits at a time, low first; the cast keeps the low byte.
        #[allow(clippy::cast_possible_truncation)]
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    #[allow(clippy::cast_possible_truncation)]
    out.push(n as u8);
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::wire::{
        self, Command, CommandStartActor, CommandWrapper, ToClient, ToClientAckEvents,
        ToClientCommands,
    };

    fn reference(actor_id: &str, generation: u32, index: i64, inner: Command) -> Vec<u8> {
        wire::encode(&ToClient::Commands(ToClientCommands(vec![
            CommandWrapper {
                checkpoint: ActorCheckpoint {
                    actor_id: actor_id.into(),
                    generation,
                    index,
                },
                inner,
            },
        ])))
    }

    #[test]
    fn commands_match_the_codec() {
        let gw = GatewayId(*b"gw01");
        let long = "x".repeat(300);
        let configs = [
            ActorConfig {
                name: "chat".into(),
                key: None,
                create_ts: 0,
                input: None,
            },
            ActorConfig {
                name: long.clone(),
                key: Some("k".repeat(200)),
                create_ts: -5,
                input: Some(vec![7; 130]),
            },
        ];
        for (actor, generation, index) in [("a", 0, 0), (long.as_str(), u32::MAX, i64::MAX)] {
            assert_eq!(
                command(actor, generation, index, None),
                reference(actor, generation, index, Command::StopActor)
            );
            for config in &configs {
                for n in [0u32, 1, 3, 200] {
                    let ids: BTreeSet<RequestId> = (0..n).map(RequestId::from_u32).collect();
                    let other_gw = GatewayId(*b"gw02");
                    let others: Vec<HibernatingRequest> = (0..n % 3)
                        .flat_map(|k| {
                            [other_gw, gw].map(|gateway_id| HibernatingRequest {
                                gateway_id,
                                request_id: RequestId::from_u32(1000 + k),
                            })
                        })
                        .collect();
                    let start = CommandStartActor {
                        config: config.clone(),
                        hibernating_requests: ids
                            .iter()
                            .map(|&request_id| HibernatingRequest {
                                gateway_id: gw,
                                request_id,
                            })
                            .chain(others.iter().filter(|h| h.gateway_id != gw).copied())
                            .collect(),
                    };
                    let ours = command(
                        actor,
                        generation,
                        index,
                        Some(Start {
                            config,
                            gateway_id: gw,
                            records: &ids,
                            others: &others,
                        }),
                    );
                    let theirs = reference(actor, generation, index, Command::StartActor(start));
                    assert_eq!(ours, theirs, "{n} requests");
                    assert_eq!(
                        wire::decode::<ToClient>(&ours).ok(),
                        wire::decode(&theirs).ok()
                    );
                }
            }
        }
    }

    #[test]
    fn acks_match_the_codec() {
        for n in [0usize, 1, 2, 150] {
            let checkpoints: Vec<ActorCheckpoint> = (0..n)
                .map(|i| ActorCheckpoint {
                    actor_id: String::from("actor-") + &"y".repeat(i),
                    generation: u32::try_from(i).unwrap_or(0),
                    index: i64::try_from(i).unwrap_or(0) - 1,
                })
                .collect();
            let theirs = wire::encode(&ToClient::AckEvents(ToClientAckEvents {
                last_event_checkpoints: checkpoints.clone(),
            }));
            assert_eq!(ack_events(&checkpoints), theirs);
        }
    }
}
