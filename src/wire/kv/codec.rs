//! Strict decoding and exact encoded sizes of the KV types.

use alloc::vec::Vec;

use super::{
    KvDeleteRangeRequest, KvDeleteRequest, KvErrorResponse, KvGetRequest, KvGetResponse,
    KvListPrefixQuery, KvListQuery, KvListRangeQuery, KvListRequest, KvListResponse, KvMetadata,
    KvPutRequest, KvRequestData, KvResponseData, ToClientKvResponse, ToServerKvRequest,
};
use crate::wire::decode::{Read, Reader};
use crate::wire::encode::{EncodedLen, TAG_LEN, bytes_len, opt_len, uvarint_len};
use crate::wire::error::DecodeError;

/// Smallest encodings, used to check a list's count against the bytes that remain.
const MIN_DATA: usize = 1;
const MIN_METADATA: usize = MIN_DATA + 8;

fn data_list(r: &mut Reader<'_>) -> Result<Vec<Vec<u8>>, DecodeError> {
    r.list(MIN_DATA, Reader::data)
}

impl Read for KvMetadata {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            version: r.data()?,
            update_ts: r.i64()?,
        })
    }
}

impl Read for KvListQuery {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (tag, offset) = r.tag()?;
        Ok(match tag {
            0 => Self::All,
            1 => Self::Range(KvListRangeQuery {
                start: r.data()?,
                end: r.data()?,
                exclusive: r.bool()?,
            }),
            2 => Self::Prefix(KvListPrefixQuery { key: r.data()? }),
            tag => return Err(DecodeError::unknown_tag("KvListQuery", tag, offset)),
        })
    }
}

impl Read for KvRequestData {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (tag, offset) = r.tag()?;
        Ok(match tag {
            0 => Self::Get(KvGetRequest {
                keys: data_list(r)?,
            }),
            1 => Self::List(KvListRequest {
                query: KvListQuery::read(r)?,
                reverse: r.opt(Reader::bool)?,
                limit: r.opt(Reader::u64)?,
            }),
            2 => Self::Put(KvPutRequest {
                keys: data_list(r)?,
                values: data_list(r)?,
            }),
            3 => Self::Delete(KvDeleteRequest {
                keys: data_list(r)?,
            }),
            4 => Self::DeleteRange(KvDeleteRangeRequest {
                start: r.data()?,
                end: r.data()?,
            }),
            5 => Self::Drop,
            tag => return Err(DecodeError::unknown_tag("KvRequestData", tag, offset)),
        })
    }
}

impl Read for KvResponseData {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (tag, offset) = r.tag()?;
        Ok(match tag {
            0 => Self::Error(KvErrorResponse {
                message: r.string()?,
            }),
            1 => Self::Get(KvGetResponse {
                keys: data_list(r)?,
                values: data_list(r)?,
                metadata: r.list(MIN_METADATA, KvMetadata::read)?,
            }),
            2 => Self::List(KvListResponse {
                keys: data_list(r)?,
                values: data_list(r)?,
                metadata: r.list(MIN_METADATA, KvMetadata::read)?,
            }),
            3 => Self::Put,
            4 => Self::Delete,
            5 => Self::Drop,
            tag => return Err(DecodeError::unknown_tag("KvResponseData", tag, offset)),
        })
    }
}

impl Read for ToServerKvRequest {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            actor_id: r.string()?,
            request_id: r.u32()?,
            data: KvRequestData::read(r)?,
        })
    }
}

impl Read for ToClientKvResponse {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            request_id: r.u32()?,
            data: KvResponseData::read(r)?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Encoded sizes
// ---------------------------------------------------------------------------------------------

fn data_list_len(items: &[Vec<u8>]) -> usize {
    uvarint_len(items.len() as u64) + items.iter().map(|d| bytes_len(d.len())).sum::<usize>()
}

fn metadata_len(items: &[KvMetadata]) -> usize {
    uvarint_len(items.len() as u64)
        + items
            .iter()
            .map(|m| bytes_len(m.version.len()) + 8)
            .sum::<usize>()
}

impl EncodedLen for KvRequestData {
    fn encoded_len(&self) -> usize {
        TAG_LEN
            + match self {
                Self::Get(g) => data_list_len(&g.keys),
                Self::List(l) => {
                    TAG_LEN
                        + match &l.query {
                            KvListQuery::All => 0,
                            KvListQuery::Range(q) => {
                                bytes_len(q.start.len()) + bytes_len(q.end.len()) + 1
                            }
                            KvListQuery::Prefix(q) => bytes_len(q.key.len()),
                        }
                        + opt_len(l.reverse.as_ref(), |_| 1)
                        + opt_len(l.limit.as_ref(), |_| 8)
                }
                Self::Put(p) => data_list_len(&p.keys) + data_list_len(&p.values),
                Self::Delete(d) => data_list_len(&d.keys),
                Self::DeleteRange(d) => bytes_len(d.start.len()) + bytes_len(d.end.len()),
                Self::Drop => 0,
            }
    }
}

impl EncodedLen for KvResponseData {
    fn encoded_len(&self) -> usize {
        TAG_LEN
            + match self {
                Self::Error(e) => bytes_len(e.message.len()),
                Self::Get(g) => {
                    data_list_len(&g.keys) + data_list_len(&g.values) + metadata_len(&g.metadata)
                }
                Self::List(l) => {
                    data_list_len(&l.keys) + data_list_len(&l.values) + metadata_len(&l.metadata)
                }
                Self::Put | Self::Delete | Self::Drop => 0,
            }
    }
}

impl EncodedLen for ToServerKvRequest {
    fn encoded_len(&self) -> usize {
        bytes_len(self.actor_id.len()) + 4 + self.data.encoded_len()
    }
}

impl EncodedLen for ToClientKvResponse {
    fn encoded_len(&self) -> usize {
        4 + self.data.encoded_len()
    }
}
