//! The file store's record format: a magic, a version, a checksum of the body and the body in
//! BARE. Decoding checks all three and the record's own invariants before trusting it.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::index::MessageIndex;
use crate::runner::{PersistedSocket, SocketId};
use crate::wire::{GatewayId, Headers, RequestId};

use super::{ActorRecord, StoreError, StoredSocket};

/// First bytes of every record.
const MAGIC: &[u8; 4] = b"HWSA";
/// Format version.
const VERSION: u8 = 1;
/// Magic, version, checksum.
const HEADER: usize = 4 + 1 + 8;

#[derive(Serialize, Deserialize)]
struct DiskRecord {
    actor_id: String,
    state: Vec<u8>,
    sockets: Vec<DiskSocket>,
}

#[derive(Serialize, Deserialize)]
struct DiskSocket {
    gateway_id: [u8; 4],
    request_id: [u8; 4],
    server_index: u16,
    client_index: u16,
    path: String,
    headers: Vec<(String, String)>,
    state: Vec<u8>,
}

/// 64-bit FNV-1a: detects torn and corrupted records (not an adversary).
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Encodes a record.
pub(super) fn encode(record: &ActorRecord) -> Result<Vec<u8>, StoreError> {
    let disk = DiskRecord {
        actor_id: record.actor_id.clone(),
        state: record.state.clone(),
        sockets: record
            .sockets
            .iter()
            .map(|s| DiskSocket {
                gateway_id: s.meta.socket.gateway_id.0,
                request_id: s.meta.socket.request_id.0,
                server_index: s.meta.server_index.get(),
                client_index: s.meta.client_index.get(),
                path: s.meta.path.clone(),
                headers: s.meta.headers.clone().into_entries(),
                state: s.state.clone(),
            })
            .collect(),
    };
    let body = serde_bare::to_vec(&disk).map_err(|e| StoreError::Corrupt {
        actor_id: record.actor_id.clone(),
        detail: format!("encoding failed: {e}"),
    })?;
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&checksum(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes a record stored under `actor_id`'s key and checks that it is `actor_id`'s.
pub(super) fn decode(actor_id: &str, bytes: &[u8]) -> Result<ActorRecord, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        actor_id: actor_id.into(),
        detail,
    };
    if bytes.len() < HEADER || &bytes[..4] != MAGIC {
        return Err(corrupt("not a record (bad magic or too short)".into()));
    }
    if bytes[4] != VERSION {
        return Err(corrupt(format!("unknown format version {}", bytes[4])));
    }
    let mut sum = [0; 8];
    sum.copy_from_slice(&bytes[5..HEADER]);
    let body = &bytes[HEADER..];
    if u64::from_le_bytes(sum) != checksum(body) {
        return Err(corrupt(
            "checksum mismatch (torn or corrupted write)".into(),
        ));
    }
    let disk: DiskRecord = serde_bare::from_slice(body).map_err(|e| corrupt(e.to_string()))?;
    if disk.actor_id != actor_id {
        return Err(StoreError::ForeignRecord {
            actor_id: actor_id.into(),
            found: disk.actor_id,
        });
    }
    let mut seen = BTreeSet::new();
    let mut sockets = Vec::with_capacity(disk.sockets.len());
    for s in disk.sockets {
        let socket = SocketId::new(GatewayId(s.gateway_id), RequestId(s.request_id));
        if !seen.insert(socket) {
            return Err(corrupt(format!("socket {socket:?} stored twice")));
        }
        sockets.push(StoredSocket {
            meta: PersistedSocket {
                socket,
                server_index: MessageIndex::new(s.server_index),
                client_index: MessageIndex::new(s.client_index),
                path: s.path,
                headers: headers(s.headers).map_err(corrupt)?,
            },
            state: s.state,
        });
    }
    sockets.sort_by_key(|s| s.meta.socket);
    Ok(ActorRecord {
        actor_id: disk.actor_id,
        state: disk.state,
        sockets,
    })
}

/// Stored header entries as [`Headers`], rejecting duplicate keys.
pub(super) fn headers(entries: Vec<(String, String)>) -> Result<Headers, String> {
    let mut keys = BTreeSet::new();
    for (k, _) in &entries {
        if !keys.insert(k.as_str()) {
            return Err(format!("header {k:?} stored twice"));
        }
    }
    Ok(Headers::from_entries_unchecked(entries))
}
