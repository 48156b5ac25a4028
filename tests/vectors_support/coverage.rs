//! The vectors cover every variant of runner protocol v7.

use alloc::collections::BTreeSet;

use serde_json::Value;

use super::super::{VECTORS, entries, parse};

/// Every variant of every envelope, and every variant of every union under them, has a vector.
#[test]
fn official_vectors_cover_every_variant_of_protocol_v7() {
    let doc = parse(VECTORS);
    let vectors = entries(&doc, "vectors");
    let mut seen = BTreeSet::new();
    for v in vectors {
        let ty = v["type"].as_str().expect("type");
        let fields = &v["fields"];
        let (ty, fields) = match ty.strip_prefix("Versioned<") {
            Some(inner) => (inner.trim_end_matches('>'), &fields["message"]),
            None => (ty, fields),
        };
        if let Some(name) = fields.get("variant").and_then(Value::as_str) {
            seen.insert(format!("{ty}::{name}"));
        }
    }
    for want in [
        "ToClient::Init",
        "ToClient::Commands",
        "ToClient::AckEvents",
        "ToClient::KvResponse",
        "ToClient::TunnelMessage",
        "ToClient::Ping",
        "ToServer::Init",
        "ToServer::Events",
        "ToServer::AckCommands",
        "ToServer::Stopping",
        "ToServer::Pong",
        "ToServer::KvRequest",
        "ToServer::TunnelMessage",
        "ToRunner::Ping",
        "ToRunner::Close",
        "ToRunner::Commands",
        "ToRunner::AckEvents",
        "ToRunner::TunnelMessage",
        "ToGateway::Pong",
        "ToGateway::TunnelMessage",
    ] {
        assert!(seen.contains(want), "no vector of {want}");
    }
    // The inner unions and enums, by their official names as the fields spell them.
    let text = serde_json::to_string(vectors).expect("vectors serialize");
    for tag in [
        "\"CommandStartActor\"",
        "\"CommandStopActor\"",
        "\"EventActorIntent\"",
        "\"EventActorStateUpdate\"",
        "\"EventActorSetAlarm\"",
        "\"ActorIntentSleep\"",
        "\"ActorIntentStop\"",
        "\"ActorStateRunning\"",
        "\"ActorStateStopped\"",
        "\"Ok\"",
        "\"Error\"",
        "\"KvListAllQuery\"",
        "\"KvListRangeQuery\"",
        "\"KvListPrefixQuery\"",
        "\"KvGetRequest\"",
        "\"KvListRequest\"",
        "\"KvPutRequest\"",
        "\"KvDeleteRequest\"",
        "\"KvDeleteRangeRequest\"",
        "\"KvDropRequest\"",
        "\"KvErrorResponse\"",
        "\"KvGetResponse\"",
        "\"KvListResponse\"",
        "\"KvPutResponse\"",
        "\"KvDeleteResponse\"",
        "\"KvDropResponse\"",
        "\"prepopulate_actor_names\"",
        "\"serverless_drain_grace_period\"",
        "\"hibernating_requests\"",
    ] {
        assert!(text.contains(tag), "no vector with {tag}");
    }
}
