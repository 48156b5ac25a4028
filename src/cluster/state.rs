//! [`SharedState`]: what every node needs to know, in JetStream KV buckets.
//!
//! | bucket | key | value |
//! |---|---|---|
//! | `hws_actors` | actor id | [`Placement`]: starting, running or sleeping, on which node and runner, at which generation |
//! | `hws_records` | `<actor>.<gateway hex>.<request hex>` | empty: a hibernating request of a gateway |
//! | `hws_runners` | runner id | [`RunnerEntry`]: its node, name and slots |
//! | `hws_nodes` | node id | [`NodeEntry`]: its gateway id; expires after the node TTL unless refreshed |
//!
//! Values are JSON. A placement changes only by compare-and-set on the entry's revision
//! ([`SharedState::claim`] creates or updates it only if nobody wrote since it was read), so two
//! nodes racing for a sleeping actor never both start it: one gets [`Claim::Won`] with the next
//! generation, the other [`Claim::Taken`] with the winner's placement.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;
use core::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

use crate::wire::{GatewayId, HibernatingRequest, RequestId};

/// The buckets' names.
pub const ACTORS: &str = "hws_actors";
/// Hibernating records.
pub const RECORDS: &str = "hws_records";
/// Runner registry.
pub const RUNNERS: &str = "hws_runners";
/// Node liveness.
pub const NODES: &str = "hws_nodes";

/// A shared-state operation failed (the broker is unreachable or refused it). Retry later.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// A JetStream KV call failed.
    #[error("JetStream KV {op} on {key:?} failed: {message}")]
    Kv {
        /// The operation.
        op: &'static str,
        /// The key (or bucket).
        key: String,
        /// The client's error.
        message: String,
    },
    /// A stored value does not decode.
    #[error("stored value of {key:?} is corrupt: {message}")]
    Corrupt {
        /// The key.
        key: String,
        /// Why.
        message: String,
    },
}

fn kv_err(op: &'static str, key: &str, e: impl core::fmt::Display) -> StateError {
    StateError::Kv {
        op,
        key: key.into(),
        message: alloc::format!("{e}"),
    }
}

/// Where an actor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PlacementState {
    /// Claimed by `node`; `CommandStartActor` sent or about to be.
    Starting,
    /// Running on `runner_id` of `node`.
    Running,
    /// Not running; `generation` was the last one.
    Sleeping,
}

/// An actor's placement (bucket `hws_actors`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// Where it stands.
    pub state: PlacementState,
    /// The node that claimed it (that hosts or hosted its runner).
    pub node: String,
    /// The runner.
    pub runner_id: String,
    /// Its generation (the latest start).
    pub generation: u32,
}

/// The outcome of [`SharedState::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This node won: start the actor at this generation.
    Won {
        /// The generation.
        generation: u32,
    },
    /// Another placement stands (starting or running): follow it.
    Taken(Placement),
}

/// A runner (bucket `hws_runners`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerEntry {
    /// The node its connection is on.
    pub node: String,
    /// Its runner name (pool).
    pub name: String,
    /// Its slots.
    pub slots: u32,
}

/// A live node (bucket `hws_nodes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    /// Its gateway id, lowercase hex.
    pub gateway: String,
}

/// Handles to the four buckets.
#[derive(Debug, Clone)]
pub struct SharedState {
    actors: kv::Store,
    records: kv::Store,
    runners: kv::Store,
    nodes: kv::Store,
}

/// `gateway_id` in lowercase hex.
#[must_use]
pub fn hex4(bytes: [u8; 4]) -> String {
    let mut s = String::with_capacity(8);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex4(s: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    if s.len() != 8 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

impl SharedState {
    /// Opens (creating them if missing) the buckets on `js`. Node entries expire after
    /// `node_ttl` unless refreshed with [`heartbeat`](Self::heartbeat).
    ///
    /// # Errors
    /// [`StateError::Kv`].
    pub async fn open(js: &jetstream::Context, node_ttl: Duration) -> Result<Self, StateError> {
        let bucket = |name: &str, max_age: Duration| kv::Config {
            bucket: name.into(),
            history: 1,
            max_age,
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        };
        let open = |config: kv::Config| async move {
            let name = config.bucket.clone();
            match js.create_key_value(config).await {
                Ok(store) => Ok(store),
                Err(create) => js.get_key_value(&name).await.map_err(|e| {
                    kv_err("open", &name, alloc::format!("create: {create}; get: {e}"))
                }),
            }
        };
        Ok(Self {
            actors: open(bucket(ACTORS, Duration::ZERO)).await?,
            records: open(bucket(RECORDS, Duration::ZERO)).await?,
            runners: open(bucket(RUNNERS, Duration::ZERO)).await?,
            nodes: open(bucket(NODES, node_ttl)).await?,
        })
    }

    /// An actor's placement and its entry's revision.
    ///
    /// # Errors
    /// [`StateError`].
    pub async fn placement(&self, actor_id: &str) -> Result<Option<(Placement, u64)>, StateError> {
        let entry = self
            .actors
            .entry(actor_id)
            .await
            .map_err(|e| kv_err("get", actor_id, e))?;
        match entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                let p = serde_json::from_slice(&entry.value).map_err(|e| StateError::Corrupt {
                    key: actor_id.into(),
                    message: alloc::format!("{e}"),
                })?;
                Ok(Some((p, entry.revision)))
            }
            _ => Ok(None),
        }
    }

    /// Claims a sleeping (or never started) actor for `runner_id` on `node`: writes
    /// `Starting` at the next generation if, and only if, the entry did not change since it was
    /// read. A placement that is starting or running is returned instead.
    ///
    /// # Errors
    /// [`StateError`].
    pub async fn claim(
        &self,
        actor_id: &str,
        node: &str,
        runner_id: &str,
    ) -> Result<Claim, StateError> {
        loop {
            let current = self.placement(actor_id).await?;
            let generation = match &current {
                Some((p, _)) if p.state != PlacementState::Sleeping => {
                    return Ok(Claim::Taken(p.clone()));
                }
                Some((p, _)) => p.generation.wrapping_add(1),
                None => 0,
            };
            let value = json(&Placement {
                state: PlacementState::Starting,
                node: node.into(),
                runner_id: runner_id.into(),
                generation,
            });
            let written = match current {
                Some((_, revision)) => self.actors.update(actor_id, value, revision).await.is_ok(),
                None => self.actors.create(actor_id, value).await.is_ok(),
            };
            if written {
                return Ok(Claim::Won { generation });
            }
            // Someone wrote first (or the write failed): read again.
            if self.placement(actor_id).await?.is_none() {
                return Err(kv_err("claim", actor_id, "write refused"));
            }
        }
    }

    /// Moves the actor's placement to `to` if it is still `expect`'s node and generation and not
    /// sleeping (the runner id of `expect` is not compared), by compare-and-set.
    /// Returns whether it was written (`false`: the placement moved on meanwhile).
    ///
    /// # Errors
    /// [`StateError`].
    pub async fn transition(
        &self,
        actor_id: &str,
        expect: &Placement,
        to: PlacementState,
    ) -> Result<bool, StateError> {
        let Some((current, revision)) = self.placement(actor_id).await? else {
            return Ok(false);
        };
        if current.node != expect.node
            || current.generation != expect.generation
            || current.state == PlacementState::Sleeping
        {
            return Ok(false);
        }
        let next = Placement {
            state: to,
            ..current
        };
        Ok(self
            .actors
            .update(actor_id, json(&next), revision)
            .await
            .is_ok())
    }

    /// Writes (`live`) or deletes a hibernating record of `gateway`.
    ///
    /// # Errors
    /// [`StateError`].
    pub async fn record(
        &self,
        actor_id: &str,
        gateway: GatewayId,
        request: RequestId,
        live: bool,
    ) -> Result<(), StateError> {
        let key = alloc::format!("{actor_id}.{}.{}", hex4(gateway.0), hex4(request.0));
        if live {
            self.records
                .put(&key, Bytes::new())
                .await
                .map(drop)
                .map_err(|e| kv_err("put", &key, e))
        } else {
            self.records
                .purge(&key)
                .await
                .map_err(|e| kv_err("purge", &key, e))
        }
    }

    /// Every gateway's hibernating records of an actor (for its `CommandStartActor`).
    ///
    /// # Errors
    /// [`StateError`].
    pub async fn records(&self, actor_id: &str) -> Result<Vec<HibernatingRequest>, StateError> {
        let prefix = alloc::format!("{actor_id}.");
        let mut keys = match self.records.keys().await {
            Ok(keys) => keys,
            Err(e) => return Err(kv_err("keys", RECORDS, e)),
        };
        let mut out = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| kv_err("keys", RECORDS, e))?;
            let Some(rest) = key.strip_prefix(&prefix) else {
                continue;
            };
            let mut parts = rest.split('.');
            if let (Some(g), Some(r), None) = (parts.next(), parts.next(), parts.next())
                && let (Some(g), Some(r)) = (unhex4(g), unhex4(r))
            {
                out.push(HibernatingRequest {
                    gateway_id: GatewayId(g),
                    request_id: RequestId(r),
                });
            }
        }
        out.sort_by_key(|h| (h.gateway_id.0, h.request_id.0));
        Ok(out)
    }

    /// Registers a runner (connected to `entry.node`).
    ///
    /// # Errors
    /// [`StateError`].
    pub async fn register_runner(
        &self,
        runner_id: &str,
        entry: &RunnerEntry,
    ) -> Result<(), StateError> {
        self.runners
            .put(runner_id, json(entry))
            .await
            .map(drop)
            .map_err(|e| kv_err("put", runner_id, e))
    }

    /// Forgets a runner.
    ///
    /// # Errors
    /// [`StateError`].
    pub async fn remove_runner(&self, runner_id: &str) -> Result<(), StateError> {
        self.runners
            .purge(runner_id)
            .await
            .map_err(|e| kv_err("purge", runner_id, e))
    }

    /// Every registered runner, sorted by id.
    ///
    /// # Errors
    /// [`StateError`].
    pub async fn runners(&self) -> Result<Vec<(String, RunnerEntry)>, StateError> {
        let mut keys = self
            .runners
            .keys()
            .await
            .map_err(|e| kv_err("keys", RUNNERS, e))?;
        let mut ids = Vec::new();
        while let Some(key) = keys.next().await {
            ids.push(key.map_err(|e| kv_err("keys", RUNNERS, e))?);
        }
        ids.sort();
        let mut out = Vec::new();
        for id in ids {
            if let Ok(Some(value)) = self.runners.get(&id).await
                && let Ok(entry) = serde_json::from_slice(&value)
            {
                out.push((id, entry));
            }
        }
        Ok(out)
    }

    /// Refreshes this node's liveness entry.
    ///
    /// # Errors
    /// [`StateError`].
    pub async fn heartbeat(&self, node: &str, gateway: GatewayId) -> Result<(), StateError> {
        let entry = NodeEntry {
            gateway: hex4(gateway.0),
        };
        self.nodes
            .put(node, json(&entry))
            .await
            .map(drop)
            .map_err(|e| kv_err("put", node, e))
    }

    /// The nodes whose liveness entry has not expired.
    ///
    /// # Errors
    /// [`StateError`].
    pub async fn live_nodes(&self) -> Result<BTreeSet<String>, StateError> {
        let mut keys = self
            .nodes
            .keys()
            .await
            .map_err(|e| kv_err("keys", NODES, e))?;
        let mut out = BTreeSet::new();
        while let Some(key) = keys.next().await {
            out.insert(key.map_err(|e| kv_err("keys", NODES, e))?);
        }
        Ok(out)
    }

    /// Every actor placed (starting or running) on a node that is not live: each is set
    /// sleeping by compare-and-set (whichever node does it first), and returned.
    ///
    /// # Errors
    /// [`StateError`].
    pub async fn reap(&self, live: &BTreeSet<String>) -> Result<Vec<String>, StateError> {
        self.reap_where(|p| !live.contains(&p.node)).await
    }

    /// What a node starting under `node` finds of an earlier run under the same id (a node
    /// restarted with its id): every actor placed there is set sleeping like a dead node's, and
    /// every runner registered there is forgotten, since a node starts with no runner. Its
    /// liveness entry may still be fresh, so [`reap`](Self::reap) would not see them.
    ///
    /// # Errors
    /// [`StateError`].
    pub async fn forget_node(&self, node: &str) -> Result<Vec<String>, StateError> {
        for (runner_id, entry) in self.runners().await? {
            if entry.node == node {
                self.remove_runner(&runner_id).await?;
            }
        }
        self.reap_where(|p| p.node == node).await
    }

    /// Every actor placed (starting or running) where `dead` says: set sleeping by
    /// compare-and-set, and returned.
    async fn reap_where(
        &self,
        dead: impl Fn(&Placement) -> bool,
    ) -> Result<Vec<String>, StateError> {
        let mut keys = self
            .actors
            .keys()
            .await
            .map_err(|e| kv_err("keys", ACTORS, e))?;
        let mut ids = Vec::new();
        while let Some(key) = keys.next().await {
            ids.push(key.map_err(|e| kv_err("keys", ACTORS, e))?);
        }
        let mut reaped = Vec::new();
        for id in ids {
            if let Some((p, _)) = self.placement(&id).await?
                && p.state != PlacementState::Sleeping
                && dead(&p)
                && self.transition(&id, &p, PlacementState::Sleeping).await?
            {
                reaped.push(id);
            }
        }
        Ok(reaped)
    }

    /// A watch of every placement change (current values first).
    ///
    /// # Errors
    /// [`StateError`].
    pub async fn watch_placements(&self) -> Result<kv::Watch, StateError> {
        self.actors
            .watch_with_history(">")
            .await
            .map_err(|e| kv_err("watch", ACTORS, e))
    }
}

/// Decodes a placement from a watch entry (`None` for deletes and corrupt values).
#[must_use]
pub fn decode_placement(entry: &kv::Entry) -> Option<Placement> {
    if entry.operation != kv::Operation::Put {
        return None;
    }
    serde_json::from_slice(&entry.value).ok()
}

fn json<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}
