//! Actor key-value storage requests and responses of runner protocol v7.
//!
//! A runner sends [`ToServerKvRequest`] (`ToServer` tag 5) on behalf of one of its actors; the
//! engine answers with [`ToClientKvResponse`] (`ToClient` tag 3) carrying the same `request_id`.
//! Keys, values and versions are opaque bytes. Field order and union tag order follow the
//! official schema.

use alloc::string::String;
use alloc::vec::Vec;

use serde::Serialize;

use super::types::{ser_byte_list, ser_bytes};

mod codec;

/// A key (`KvKey = data`).
pub type KvKey = Vec<u8>;

/// A value (`KvValue = data`).
pub type KvValue = Vec<u8>;

/// Metadata of a stored value (`KvMetadata`).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct KvMetadata {
    /// Opaque version of the value.
    #[serde(serialize_with = "ser_bytes")]
    pub version: Vec<u8>,
    /// Last update, milliseconds since the Unix epoch.
    pub update_ts: i64,
}

/// Keys from `start` to `end` (`KvListRangeQuery`).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct KvListRangeQuery {
    /// First key.
    #[serde(serialize_with = "ser_bytes")]
    pub start: KvKey,
    /// Last key.
    #[serde(serialize_with = "ser_bytes")]
    pub end: KvKey,
    /// Whether `end` itself is excluded.
    pub exclusive: bool,
}

/// Keys starting with `key` (`KvListPrefixQuery`).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct KvListPrefixQuery {
    /// The prefix.
    #[serde(serialize_with = "ser_bytes")]
    pub key: KvKey,
}

/// Which keys a list request covers (`KvListQuery`).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub enum KvListQuery {
    /// Tag 0: every key.
    #[doc(alias = "KvListAllQuery")]
    #[serde(rename = "KvListAllQuery")]
    All,
    /// Tag 1.
    #[doc(alias = "KvListRangeQuery")]
    #[serde(rename = "KvListRangeQuery")]
    Range(KvListRangeQuery),
    /// Tag 2.
    #[doc(alias = "KvListPrefixQuery")]
    #[serde(rename = "KvListPrefixQuery")]
    Prefix(KvListPrefixQuery),
}

/// Read some keys (`KvGetRequest`).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default, Serialize)]
pub struct KvGetRequest {
    /// The keys.
    #[serde(serialize_with = "ser_byte_list")]
    pub keys: Vec<KvKey>,
}

/// List keys and values (`KvListRequest`).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct KvListRequest {
    /// Which keys.
    pub query: KvListQuery,
    /// Descending order.
    pub reverse: Option<bool>,
    /// At most this many entries.
    pub limit: Option<u64>,
}

/// Write keys (`KvPutRequest`): `keys[i]` gets `values[i]`.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default, Serialize)]
pub struct KvPutRequest {
    /// The keys.
    #[serde(serialize_with = "ser_byte_list")]
    pub keys: Vec<KvKey>,
    /// Their values, in the same order.
    #[serde(serialize_with = "ser_byte_list")]
    pub values: Vec<KvValue>,
}

/// Delete some keys (`KvDeleteRequest`).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default, Serialize)]
pub struct KvDeleteRequest {
    /// The keys.
    #[serde(serialize_with = "ser_byte_list")]
    pub keys: Vec<KvKey>,
}

/// Delete the keys from `start` (inclusive) to `end` (exclusive) (`KvDeleteRangeRequest`).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct KvDeleteRangeRequest {
    /// First key.
    #[serde(serialize_with = "ser_bytes")]
    pub start: KvKey,
    /// End of the range.
    #[serde(serialize_with = "ser_bytes")]
    pub end: KvKey,
}

/// What a KV request asks (`KvRequestData`).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub enum KvRequestData {
    /// Tag 0.
    #[doc(alias = "KvGetRequest")]
    #[serde(rename = "KvGetRequest")]
    Get(KvGetRequest),
    /// Tag 1.
    #[doc(alias = "KvListRequest")]
    #[serde(rename = "KvListRequest")]
    List(KvListRequest),
    /// Tag 2.
    #[doc(alias = "KvPutRequest")]
    #[serde(rename = "KvPutRequest")]
    Put(KvPutRequest),
    /// Tag 3.
    #[doc(alias = "KvDeleteRequest")]
    #[serde(rename = "KvDeleteRequest")]
    Delete(KvDeleteRequest),
    /// Tag 4.
    #[doc(alias = "KvDeleteRangeRequest")]
    #[serde(rename = "KvDeleteRangeRequest")]
    DeleteRange(KvDeleteRangeRequest),
    /// Tag 5: delete the actor's whole store (no body).
    #[doc(alias = "KvDropRequest")]
    #[serde(rename = "KvDropRequest")]
    Drop,
}

/// The request failed (`KvErrorResponse`).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct KvErrorResponse {
    /// Why.
    pub message: String,
}

/// Values read (`KvGetResponse`): `keys[i]` holds `values[i]`, described by `metadata[i]`.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default, Serialize)]
pub struct KvGetResponse {
    /// The keys found.
    #[serde(serialize_with = "ser_byte_list")]
    pub keys: Vec<KvKey>,
    /// Their values.
    #[serde(serialize_with = "ser_byte_list")]
    pub values: Vec<KvValue>,
    /// Their metadata.
    pub metadata: Vec<KvMetadata>,
}

/// Entries listed (`KvListResponse`), laid out as [`KvGetResponse`].
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default, Serialize)]
pub struct KvListResponse {
    /// The keys.
    #[serde(serialize_with = "ser_byte_list")]
    pub keys: Vec<KvKey>,
    /// Their values.
    #[serde(serialize_with = "ser_byte_list")]
    pub values: Vec<KvValue>,
    /// Their metadata.
    pub metadata: Vec<KvMetadata>,
}

/// What a KV response says (`KvResponseData`).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub enum KvResponseData {
    /// Tag 0.
    #[doc(alias = "KvErrorResponse")]
    #[serde(rename = "KvErrorResponse")]
    Error(KvErrorResponse),
    /// Tag 1.
    #[doc(alias = "KvGetResponse")]
    #[serde(rename = "KvGetResponse")]
    Get(KvGetResponse),
    /// Tag 2.
    #[doc(alias = "KvListResponse")]
    #[serde(rename = "KvListResponse")]
    List(KvListResponse),
    /// Tag 3: the put succeeded (no body).
    #[doc(alias = "KvPutResponse")]
    #[serde(rename = "KvPutResponse")]
    Put,
    /// Tag 4: the delete succeeded (no body).
    #[doc(alias = "KvDeleteResponse")]
    #[serde(rename = "KvDeleteResponse")]
    Delete,
    /// Tag 5: the drop succeeded (no body).
    #[doc(alias = "KvDropResponse")]
    #[serde(rename = "KvDropResponse")]
    Drop,
}

/// A KV request from a runner for one of its actors (`ToServer` tag 5).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct ToServerKvRequest {
    /// The actor whose store is addressed.
    pub actor_id: String,
    /// Chosen by the runner; echoed by the response.
    pub request_id: u32,
    /// The request.
    pub data: KvRequestData,
}

/// The engine's answer to a [`ToServerKvRequest`] (`ToClient` tag 3).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
pub struct ToClientKvResponse {
    /// The request's `request_id`.
    pub request_id: u32,
    /// The response.
    pub data: KvResponseData,
}
