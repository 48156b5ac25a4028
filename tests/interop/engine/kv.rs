//! The actor KV the runner protocol gives every actor (`ToServerKvRequest`), in memory.

use std::collections::BTreeMap;

use crate::proto::{KvListQuery, KvRequest, KvResponse};

/// Most bytes of KV one actor may hold.
const MAX_KV_BYTES: usize = 64 << 20;

/// Applies one request to an actor's store.
pub fn apply(store: &mut BTreeMap<Vec<u8>, Vec<u8>>, request: KvRequest) -> KvResponse {
    match request {
        KvRequest::Get(keys) => KvResponse::Get(
            keys.into_iter()
                .filter_map(|k| store.get(&k).map(|v| (k, v.clone())))
                .collect(),
        ),
        KvRequest::List {
            query,
            reverse,
            limit,
        } => {
            let mut entries: Vec<_> = match query {
                KvListQuery::All => store.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                KvListQuery::Prefix(p) => store
                    .range(p.clone()..)
                    .take_while(|(k, _)| k.starts_with(&p))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                KvListQuery::Range {
                    start,
                    end,
                    exclusive,
                } => store
                    .range(start..)
                    .take_while(|(k, _)| if exclusive { **k < end } else { **k <= end })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            };
            if reverse {
                entries.reverse();
            }
            if let Some(l) = limit {
                entries.truncate(usize::try_from(l).unwrap_or(usize::MAX));
            }
            KvResponse::List(entries)
        }
        KvRequest::Put(keys, values) => {
            if keys.len() != values.len() {
                return KvResponse::Error("keys and values differ in length".into());
            }
            let size: usize = store.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
                + keys.iter().chain(&values).map(Vec::len).sum::<usize>();
            if size > MAX_KV_BYTES {
                return KvResponse::Error("actor KV full".into());
            }
            store.extend(keys.into_iter().zip(values));
            KvResponse::Put
        }
        KvRequest::Delete(keys) => {
            for k in keys {
                store.remove(&k);
            }
            KvResponse::Delete
        }
        KvRequest::DeleteRange(start, end) => {
            store.retain(|k, _| *k < start || *k >= end);
            KvResponse::Delete
        }
        KvRequest::Drop => {
            store.clear();
            KvResponse::Drop
        }
    }
}
