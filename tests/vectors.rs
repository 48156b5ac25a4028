//! Byte-compatibility with the official TypeScript codec, `@rivetkit/engine-runner-protocol@2.3.10`.
//!
//! The vectors under `tests/vectors/` were produced by that codec (`tests/vectors/generate.mjs`;
//! the format is in `tests/vectors/README.md`). No npm at test time: this reads the committed
//! files.
//!
//! * `vectors.json`: for each vector, hws decodes the official bytes into the named type, every
//!   field matches `fields`, re-encoding gives the same bytes, and the value built from `fields`
//!   encodes to the same bytes (with the exact `encoded_len`).
//! * `rejections.json`: bytes the official decoder rejects; hws rejects them with the matching
//!   [`DecodeError`] variant (and the same offset where both codecs mean the same position).
//! * `quirks.json`: bytes the official decoder accepts but decodes lossily; hws keeps them intact.
//! * `differential.json`: deterministic mutations of small frames with the official verdict; hws
//!   accepts exactly what the official decoder accepts (and decodes it to the same value).

extern crate alloc;

use alloc::collections::{BTreeMap, BTreeSet};
use core::fmt::Write as _;

use hibernating_ws::wire::{
    self, DecodeError, ToClientTunnelMessage, ToClientTunnelMessageKind, ToRunner,
};
use serde_json::Value;

mod vectors_support;
use vectors_support::check_reframing;
use vectors_support::errors::matching_error;
use vectors_support::json::*;
use vectors_support::msg::*;

const VECTORS: &str = include_str!("vectors/vectors.json");
const REJECTIONS: &str = include_str!("vectors/rejections.json");
const QUIRKS: &str = include_str!("vectors/quirks.json");
const DIFFERENTIAL: &str = include_str!("vectors/differential.json");

pub(crate) const OFFICIAL_PACKAGE: &str = "@rivetkit/engine-runner-protocol@2.3.10";

// ---------------------------------------------------------------------------------------------
// Accept vectors
// ---------------------------------------------------------------------------------------------

/// Every check an accepted frame goes through; `fields` is canonical (plain hex bytes).
fn check_accepted(name: &str, ty: &str, bytes: &[u8], fields: &Value) {
    let decoded = Msg::decode(ty, bytes)
        .unwrap_or_else(|e| panic!("vector {name}: hws rejects the official bytes: {e:?}"));
    assert_json(name, "decoded fields", &decoded.to_json(), fields);
    assert_bytes(
        name,
        "re-encoding the decoded value",
        &decoded.encode(),
        bytes,
    );

    check_reframing(name, bytes);
    // Control-plane vectors have no fields -> value direction: their fields were compared with
    // the decoded value above, and the encoder checks run on that value.
    let built = Msg::build(ty, fields).unwrap_or_else(|| decoded.clone());
    assert!(
        built == decoded,
        "vector {name}: value built from fields != decoded value"
    );
    assert_bytes(
        name,
        "encoding the value built from fields",
        &built.encode(),
        bytes,
    );
    assert_eq!(
        built.encoded_len(),
        bytes.len(),
        "vector {name}: encoded_len"
    );
    if let Some(out) = built.encode_into_after(b"xyz") {
        assert_bytes(name, "encode_into after 3 bytes", &out[3..], bytes);
        assert_eq!(
            &out[..3],
            b"xyz",
            "vector {name}: encode_into kept the prefix"
        );
    }

    // The gateway's borrowed fast path must give the same frame as the owned message.
    if let Msg::VersionedRunner(version, ToRunner::TunnelMessage(m)) = &built
        && let ToClientTunnelMessageKind::WebSocketMessage(w) = &m.kind
    {
        let fast = wire::encode_ws_message_frame(*version, m.message_id, &w.data, w.binary);
        assert_bytes(name, "encode_ws_message_frame", &fast, bytes);
        let len = wire::ws_message_frame_len(w.data.len());
        assert_eq!(len, bytes.len(), "vector {name}: ws_message_frame_len");
    }
}

#[test]
fn official_vectors_decode_and_encode_identically() {
    let doc = parse(VECTORS);
    assert_eq!(doc["pattern"], "byte[i] = (31 * i + seed) mod 256");
    let vectors = entries(&doc, "vectors");
    let mut types = BTreeMap::<String, usize>::new();
    for v in vectors {
        let name = v["name"].as_str().expect("name");
        let ty = v["type"].as_str().expect("type");
        let bytes = expand(&v["bytes"]);
        check_accepted(name, ty, &bytes, &canon(&v["fields"]));
        *types.entry(ty.to_owned()).or_default() += 1;
    }
    // Every type and every kind is covered (a truncated file would otherwise pass).
    for ty in [
        "ToClientTunnelMessage",
        "ToServerTunnelMessage",
        "ToRunnerPing",
        "ToGatewayPong",
        "HibernatingRequest",
        "ToRunner",
        "ToGateway",
        "ToClient",
        "ToServer",
        "Versioned<ToRunner>",
        "Versioned<ToGateway>",
    ] {
        assert!(
            types.get(ty).copied().unwrap_or(0) > 0,
            "no vector of type {ty}"
        );
    }
    let kinds: BTreeSet<(String, String)> = vectors
        .iter()
        .filter(|v| {
            v["type"]
                .as_str()
                .is_some_and(|t| t.ends_with("TunnelMessage"))
        })
        .map(|v| {
            (
                v["type"].as_str().unwrap_or_default().to_owned(),
                v["fields"]["kind"]["variant"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        kinds.len(),
        6 + 7,
        "every tunnel message kind has a vector: {kinds:?}"
    );
    assert!(vectors.len() >= 100, "only {} vectors", vectors.len());
}

/// The edge cases the spec asks for are really in the file (not only in the generator).
#[test]
fn official_vectors_cover_the_edges() {
    let doc = parse(VECTORS);
    let vectors = entries(&doc, "vectors");
    let names: Vec<&str> = vectors.iter().filter_map(|v| v["name"].as_str()).collect();
    for i in [0, 1, 127, 128, 32767, 32768, 65535] {
        for prefix in [
            "client/ws_message",
            "server/ws_message",
            "server/ws_message_ack",
        ] {
            let n = format!("{prefix}/index_{i}");
            assert!(names.contains(&n.as_str()), "missing vector {n}");
        }
    }
    for n in [
        "client/ws_close/neither",
        "client/ws_close/code_only",
        "client/ws_close/reason_only",
        "client/ws_close/both",
        "server/ws_close/neither",
        "server/ws_close/code_only",
        "server/ws_close/reason_only",
        "server/ws_close/both",
        "ping/ts_0",
        "ping/ts_minus_1",
        "ping/ts_min",
        "ping/ts_max",
        "pong/ts_min",
        "pong/ts_max",
        "client/ws_message/ids_all_zero",
        "client/ws_message/ids_all_ff",
        "client/ws_message/empty_text",
        "client/ws_message/data_1mib",
        "server/ws_message/data_1mib",
        "versioned/to_runner/ws_message_1mib",
        "client/request_start/unicode_headers",
        "client/ws_open/long_path_3_byte_varint",
        "client/ws_close/reason_2_byte_varint",
    ] {
        assert!(names.contains(&n), "missing vector {n}");
    }
    let ping_min = vectors
        .iter()
        .find(|v| v["name"] == "ping/ts_min")
        .expect("ping/ts_min");
    assert_eq!(ping_min["fields"]["ts"], i64::MIN.to_string());
    let mib = vectors
        .iter()
        .find(|v| v["name"] == "client/ws_message/data_1mib")
        .expect("1 MiB vector");
    assert_eq!(expand(&mib["bytes"]).len(), 10 + 1 + 3 + (1 << 20) + 1);
}

// ---------------------------------------------------------------------------------------------
// Rejections
// ---------------------------------------------------------------------------------------------

/// Checks that hws's error `e` is the variant matching the official decoder's `issue` at
/// `offset`. Offsets are compared where both codecs report the same position.
fn assert_matching_error(name: &str, issue: &str, offset: u64, e: &DecodeError) {
    let offset = usize::try_from(offset).expect("offset fits in usize");
    let ok = matching_error(issue, offset, e)
        || matches!(
            (issue, e),
            ("too large buffer", DecodeError::FrameTooLarge { .. })
        );
    assert!(
        ok,
        "vector {name}: official error {issue:?} at byte {offset}, hws error {e:?}"
    );
}

#[test]
fn official_rejections_are_rejected_with_the_matching_variant() {
    let doc = parse(REJECTIONS);
    let rejections = entries(&doc, "rejections");
    let mut issues = BTreeSet::new();
    for r in rejections {
        let name = r["name"].as_str().expect("name");
        let ty = r["type"].as_str().expect("type");
        let bytes = expand(&r["bytes"]);
        let issue = r["official_error"]["issue"].as_str().expect("issue");
        let offset = r["official_error"]["offset"].as_u64().expect("offset");
        match Msg::decode(ty, &bytes) {
            Ok(_) => {
                panic!("vector {name}: hws accepts bytes the official decoder rejects ({issue})")
            }
            Err(e) => assert_matching_error(name, issue, offset, &e),
        }
        issues.insert(issue.to_owned());
    }
    // Every rejection class the spec names is present.
    for issue in [
        "a bool must be equal to 0 or 1",
        "must be canonical",
        "invalid UTF-8 string",
        "duplicated key",
        "invalid tag",
        "remaining bytes",
        "missing bytes",
        "too large buffer",
    ] {
        assert!(issues.contains(issue), "no rejection vector for {issue:?}");
    }
}

#[test]
fn frame_size_rejection_matches_the_official_limit() {
    let doc = parse(REJECTIONS);
    let r = entries(&doc, "rejections")
        .iter()
        .find(|r| r["name"] == "size/frame_32mib_plus_1")
        .expect("size vector");
    let bytes = expand(&r["bytes"]);
    assert_eq!(
        wire::decode::<ToClientTunnelMessage>(&bytes),
        Err(DecodeError::FrameTooLarge {
            size: 32 * 1024 * 1024 + 1,
            max: wire::DEFAULT_MAX_FRAME_SIZE,
        })
    );
    // One byte less (drop one payload byte, fix the length) is a valid frame for both codecs.
    let mut smaller = bytes;
    smaller.remove(20);
    let len = smaller.len() - 16; // MessageId 10 + tag 1 + 4-byte varint + bool 1
    let varint: Vec<u8> = (0..4)
        .map(|i| {
            let group = u8::try_from((len >> (7 * i)) & 0x7f).expect("7 bits");
            if i < 3 { group | 0x80 } else { group }
        })
        .collect();
    smaller[11..15].copy_from_slice(&varint);
    let msg = wire::decode::<ToClientTunnelMessage>(&smaller).expect("32 MiB frame decodes");
    assert!(
        matches!(&msg.kind, ToClientTunnelMessageKind::WebSocketMessage(w) if w.data.len() == len)
    );
}

// ---------------------------------------------------------------------------------------------
// Quirks and the differential set
// ---------------------------------------------------------------------------------------------

#[test]
fn official_quirks_are_decoded_faithfully_by_hws() {
    let doc = parse(QUIRKS);
    let quirks = entries(&doc, "quirks");
    assert!(!quirks.is_empty());
    for q in quirks {
        let name = q["name"].as_str().expect("name");
        let ty = q["type"].as_str().expect("type");
        let bytes = expand(&q["bytes"]);
        let official_reencoded = expand(&q["official_reencoded"]);
        assert_ne!(official_reencoded, bytes, "vector {name}: not a quirk");
        // hws keeps the bytes: decode then encode is the identity.
        let decoded = Msg::decode(ty, &bytes).unwrap_or_else(|e| panic!("vector {name}: {e:?}"));
        assert_bytes(name, "hws round trip", &decoded.encode(), &bytes);
        assert!(
            decoded.to_json() != q["official_fields"],
            "vector {name}: hws is lossy too"
        );
        // hws agrees with the official verdict on the official codec's own re-encoding (which
        // it may itself reject: a BOM-stripped key can collide with another key).
        let verdict = &q["official_reencoded_verdict"];
        if let Some(fields) = verdict.get("accept") {
            assert_eq!(fields, &q["official_fields"], "vector {name}");
            check_accepted(name, ty, &official_reencoded, fields);
        } else {
            let issue = verdict["reject"]["issue"].as_str().expect("issue");
            let offset = verdict["reject"]["offset"].as_u64().expect("offset");
            match Msg::decode(ty, &official_reencoded) {
                Ok(_) => panic!("vector {name}: hws accepts the re-encoding, official rejects it"),
                Err(e) => assert_matching_error(name, issue, offset, &e),
            }
        }
    }
}

#[test]
fn differential_cases_get_the_official_verdict() {
    let doc = parse(DIFFERENTIAL);
    let cases = entries(&doc, "cases");
    let (mut accepted, mut rejected) = (0, 0);
    let mut control_cases = 0;
    for (i, c) in cases.iter().enumerate() {
        let ty = c["type"].as_str().expect("type");
        let bytes = expand(&c["bytes"]);
        let mut name = String::new();
        write!(name, "differential[{i}] {ty} {}", hex::encode(&bytes)).expect("write to String");
        let control = match ty {
            "ToClient" => bytes.first() != Some(&4),
            "ToServer" => bytes.first() != Some(&6),
            "ToRunner" => matches!(bytes.first(), Some(2 | 3)),
            _ => false,
        };
        control_cases += usize::from(control);
        if let Some(fields) = c.get("accept") {
            assert!(
                c.get("lossy").is_none(),
                "{name}: lossy cases belong in quirks.json"
            );
            check_accepted(&name, ty, &bytes, fields);
            accepted += 1;
        } else {
            let issue = c["reject"]["issue"].as_str().expect("issue");
            let offset = c["reject"]["offset"].as_u64().expect("offset");
            check_reframing(&name, &bytes);
            match Msg::decode(ty, &bytes) {
                Ok(_) => panic!("{name}: hws accepts bytes the official decoder rejects ({issue})"),
                // hws checks a map or list count against the bytes left before reading any
                // entry, so it can stop at a length prefix before the official error's position.
                Err(DecodeError::LengthExceedsFrame { offset: o, .. })
                    if usize::try_from(offset).is_ok_and(|off| o < off) => {}
                Err(e) => assert_matching_error(&name, issue, offset, &e),
            }
            rejected += 1;
        }
    }
    assert_eq!(doc["counts"]["accept"], accepted);
    assert_eq!(doc["counts"]["reject"], rejected);
    assert!(
        accepted > 400 && rejected > 1000 && control_cases > 1000,
        "{accepted} {rejected} {control_cases}"
    );
}
