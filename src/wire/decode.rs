//! A strict BARE reader.
//!
//! Rejects exactly what the official TypeScript codec rejects (non-canonical varints, bools other
//! than 0/1, invalid UTF-8, duplicate map keys — compared as the official decoder compares them,
//! see `official_key` —, unknown union tags, trailing bytes), checks every length against the
//! bytes that remain *before* allocating, and never panics.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;

use bytes::Bytes;

use super::error::DecodeError;
use super::{
    DecodeLimits, GatewayId, Headers, HibernatingRequest, MessageId, RequestId,
    ToClientRequestChunk, ToClientRequestStart, ToClientTunnelMessage, ToClientTunnelMessageKind,
    ToClientWebSocketClose, ToClientWebSocketMessage, ToClientWebSocketOpen, ToGatewayPong,
    ToRunnerPing, ToServerResponseChunk, ToServerResponseStart, ToServerTunnelMessage,
    ToServerTunnelMessageKind, ToServerWebSocketClose, ToServerWebSocketMessage,
    ToServerWebSocketMessageAck, ToServerWebSocketOpen,
};
use crate::index::MessageIndex;

/// Cursor over a frame.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    max_headers: usize,
    max_list_len: usize,
    /// The buffer `buf` is, when the caller has it as [`Bytes`]: WebSocket payloads are then
    /// slices of it (no copy).
    shared: Option<&'a Bytes>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], limits: &DecodeLimits) -> Self {
        Self {
            buf,
            pos: 0,
            max_headers: limits.max_headers,
            max_list_len: limits.max_list_len,
            shared: None,
        }
    }

    /// A reader whose payloads borrow from `buf` (reference-counted slices, no copy).
    pub(crate) fn shared(buf: &'a Bytes, limits: &DecodeLimits) -> Self {
        Self {
            shared: Some(buf),
            ..Self::new(buf, limits)
        }
    }

    /// Position of the next byte to read.
    pub(crate) fn offset(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes {
                offset: self.pos,
                count,
            }),
        }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::UnexpectedEof {
                offset: self.buf.len(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    pub(crate) fn bool(&mut self) -> Result<bool, DecodeError> {
        let offset = self.pos;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(DecodeError::InvalidBool { value, offset }),
        }
    }

    /// BARE `uint`: LEB128, at most 10 bytes, shortest form only.
    pub(crate) fn uvarint(&mut self) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut value = 0u64;
        for i in 0..10u32 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(DecodeError::UnexpectedEof {
                    offset: self.buf.len(),
                });
            };
            self.pos += 1;
            // The 10th byte may only carry the single remaining bit of a u64.
            if i == 9 && b > 1 {
                return Err(DecodeError::InvalidVarint { offset: start });
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                // A final zero byte after the first means a shorter encoding existed.
                if b == 0 && i > 0 {
                    return Err(DecodeError::InvalidVarint { offset: start });
                }
                return Ok(value);
            }
        }
        Err(DecodeError::InvalidVarint { offset: start })
    }

    /// A length prefix, checked against the bytes that remain.
    pub(crate) fn len(&mut self) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let claimed = self.uvarint()?;
        let remaining = self.remaining();
        match usize::try_from(claimed) {
            Ok(n) if n <= remaining => Ok(n),
            _ => Err(DecodeError::LengthExceedsFrame {
                offset,
                claimed,
                remaining,
            }),
        }
    }

    pub(crate) fn data(&mut self) -> Result<Vec<u8>, DecodeError> {
        let n = self.len()?;
        Ok(self.take(n)?.to_vec())
    }

    /// A `data` value as [`Bytes`]: a slice of the frame when the reader has it shared, a copy
    /// otherwise.
    pub(crate) fn data_bytes(&mut self) -> Result<Bytes, DecodeError> {
        let n = self.len()?;
        let start = self.pos;
        let slice = self.take(n)?;
        Ok(match self.shared {
            Some(frame) => frame.slice(start..start + n),
            None => Bytes::copy_from_slice(slice),
        })
    }

    /// Checks a `data` value and steps over it without copying.
    pub(crate) fn skip_data(&mut self) -> Result<(), DecodeError> {
        let n = self.len()?;
        self.take(n).map(drop)
    }

    /// A BARE `str`, borrowed from the frame.
    pub(crate) fn str_ref(&mut self) -> Result<&'a str, DecodeError> {
        let n = self.len()?;
        let offset = self.pos;
        let bytes = self.take(n)?;
        core::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8 { offset })
    }

    pub(crate) fn string(&mut self) -> Result<String, DecodeError> {
        self.str_ref().map(String::from)
    }

    pub(crate) fn opt<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        if self.bool()? {
            f(self).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Union tag. The official codec writes tags as a `u8`; for the tags in use (< 128) that is
    /// the same byte as a uvarint, and a byte ≥ 128 is an unknown tag either way.
    pub(crate) fn tag(&mut self) -> Result<(u64, usize), DecodeError> {
        let offset = self.pos;
        Ok((u64::from(self.u8()?), offset))
    }

    pub(crate) fn headers(&mut self) -> Result<Headers, DecodeError> {
        let offset = self.pos;
        let count = self.uvarint()?;
        // Each entry takes at least two bytes (two empty strings).
        let fits = usize::try_from(count)
            .ok()
            .filter(|c| c.saturating_mul(2) <= self.remaining());
        let Some(count) = fits else {
            return Err(DecodeError::LengthExceedsFrame {
                offset,
                claimed: count,
                remaining: self.remaining(),
            });
        };
        if count > self.max_headers {
            return Err(DecodeError::TooManyHeaders {
                offset,
                count: count as u64,
                max: self.max_headers,
            });
        }
        let mut entries: Vec<(String, String)> = Vec::with_capacity(count);
        let mut seen: BTreeSet<&'a [u8]> = BTreeSet::new();
        for _ in 0..count {
            let key_offset = self.pos;
            let key = self.str_ref()?;
            if !seen.insert(official_key(key.as_bytes())) {
                return Err(DecodeError::DuplicateKey { offset: key_offset });
            }
            let value = self.string()?;
            entries.push((key.into(), value));
        }
        Ok(Headers::from_entries_unchecked(entries))
    }

    /// An element count of a list or map whose elements take at least `min_item` bytes each:
    /// checked against the bytes that remain, then against [`DecodeLimits::max_list_len`].
    pub(crate) fn count(&mut self, min_item: usize) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let count = self.uvarint()?;
        let fits = usize::try_from(count)
            .ok()
            .filter(|c| c.saturating_mul(min_item) <= self.remaining());
        let Some(count) = fits else {
            return Err(DecodeError::LengthExceedsFrame {
                offset,
                claimed: count,
                remaining: self.remaining(),
            });
        };
        if count > self.max_list_len {
            return Err(DecodeError::TooManyItems {
                offset,
                count: count as u64,
                max: self.max_list_len,
            });
        }
        Ok(count)
    }

    /// A `list<T>` whose elements take at least `min_item` bytes each.
    pub(crate) fn list<T>(
        &mut self,
        min_item: usize,
        mut f: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let count = self.count(min_item)?;
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            out.push(f(self)?);
        }
        Ok(out)
    }

    pub(crate) fn gateway_id(&mut self) -> Result<GatewayId, DecodeError> {
        self.array().map(GatewayId)
    }

    pub(crate) fn request_id(&mut self) -> Result<RequestId, DecodeError> {
        self.array().map(RequestId)
    }

    pub(crate) fn message_id(&mut self) -> Result<MessageId, DecodeError> {
        Ok(MessageId {
            gateway_id: self.gateway_id()?,
            request_id: self.request_id()?,
            message_index: MessageIndex::new(self.u16()?),
        })
    }
}

/// Strings this long or longer are decoded by the official codec (bare-ts) with `TextDecoder`;
/// shorter ones by bare-ts's own UTF-8 decoder.
const OFFICIAL_TEXT_DECODER_THRESHOLD: usize = 256;

/// A header key as the official decoder compares it for duplicates.
///
/// `TextDecoder` drops one leading U+FEFF (byte order mark) while bare-ts's short-string decoder
/// keeps it, so for the official codec a key of 256 bytes or more that starts with a BOM *is* the
/// same key without it, and a map holding both is rejected as "duplicated key". hws keeps the
/// key's bytes as they are (decode then encode stays the identity) but rejects the same maps.
pub(crate) fn official_key(key: &[u8]) -> &[u8] {
    const BOM: &[u8] = "\u{feff}".as_bytes();
    if key.len() >= OFFICIAL_TEXT_DECODER_THRESHOLD {
        key.strip_prefix(BOM).unwrap_or(key)
    } else {
        key
    }
}

/// Types that can be read from a frame.
pub trait Read: Sized {
    /// Reads one value.
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

impl Read for MessageId {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.message_id()
    }
}

impl Read for ToClientTunnelMessage {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let message_id = r.message_id()?;
        let kind = ToClientTunnelMessageKind::read(r)?;
        Ok(Self { message_id, kind })
    }
}

impl Read for ToClientTunnelMessageKind {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (tag, offset) = r.tag()?;
        Ok(match tag {
            0 => Self::RequestStart(ToClientRequestStart {
                actor_id: r.string()?,
                method: r.string()?,
                path: r.string()?,
                headers: r.headers()?,
                body: r.opt(Reader::data)?,
                stream: r.bool()?,
            }),
            1 => Self::RequestChunk(ToClientRequestChunk::read(r)?),
            2 => Self::RequestAbort,
            3 => Self::WebSocketOpen(ToClientWebSocketOpen {
                actor_id: r.string()?,
                path: r.string()?,
                headers: r.headers()?,
            }),
            4 => Self::WebSocketMessage(ToClientWebSocketMessage::read(r)?),
            5 => Self::WebSocketClose(ToClientWebSocketClose::read(r)?),
            tag => {
                return Err(DecodeError::unknown_tag(
                    "ToClientTunnelMessageKind",
                    tag,
                    offset,
                ));
            }
        })
    }
}

impl Read for ToServerTunnelMessage {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let message_id = r.message_id()?;
        let kind = ToServerTunnelMessageKind::read(r)?;
        Ok(Self { message_id, kind })
    }
}

impl Read for ToServerTunnelMessageKind {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (tag, offset) = r.tag()?;
        Ok(match tag {
            0 => Self::ResponseStart(ToServerResponseStart::read(r)?),
            1 => Self::ResponseChunk(ToServerResponseChunk::read(r)?),
            2 => Self::ResponseAbort,
            3 => Self::WebSocketOpen(ToServerWebSocketOpen::read(r)?),
            4 => Self::WebSocketMessage(ToServerWebSocketMessage::read(r)?),
            5 => Self::WebSocketMessageAck(ToServerWebSocketMessageAck::read(r)?),
            6 => Self::WebSocketClose(ToServerWebSocketClose::read(r)?),
            tag => {
                return Err(DecodeError::unknown_tag(
                    "ToServerTunnelMessageKind",
                    tag,
                    offset,
                ));
            }
        })
    }
}

/// The tunnel-message bodies v7 and envoy v8 share, each read on its own (the kinds' unions
/// read their tag, then one of these).
macro_rules! read_struct {
    ($($t:ident { $($field:ident: $read:expr),* $(,)? })*) => {$(
        impl Read for $t {
            fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok(Self { $($field: $read(r)?),* })
            }
        }
    )*};
}

read_struct! {
    ToClientRequestChunk { body: Reader::data, finish: Reader::bool }
    ToClientWebSocketMessage { data: Reader::data_bytes, binary: Reader::bool }
    ToClientWebSocketClose {
        code: |r: &mut Reader<'_>| r.opt(Reader::u16),
        reason: |r: &mut Reader<'_>| r.opt(Reader::string),
    }
    ToServerResponseStart {
        status: Reader::u16,
        headers: Reader::headers,
        body: |r: &mut Reader<'_>| r.opt(Reader::data),
        stream: Reader::bool,
    }
    ToServerResponseChunk { body: Reader::data, finish: Reader::bool }
    ToServerWebSocketOpen { can_hibernate: Reader::bool }
    ToServerWebSocketMessage { data: Reader::data_bytes, binary: Reader::bool }
    ToServerWebSocketMessageAck { index: |r: &mut Reader<'_>| r.u16().map(MessageIndex::new) }
    ToServerWebSocketClose {
        code: |r: &mut Reader<'_>| r.opt(Reader::u16),
        reason: |r: &mut Reader<'_>| r.opt(Reader::string),
        hibernate: Reader::bool,
    }
}

impl Read for ToRunnerPing {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            gateway_id: r.gateway_id()?,
            request_id: r.request_id()?,
            ts: r.i64()?,
        })
    }
}

impl Read for ToGatewayPong {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            request_id: r.request_id()?,
            ts: r.i64()?,
        })
    }
}

impl Read for HibernatingRequest {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            gateway_id: r.gateway_id()?,
            request_id: r.request_id()?,
        })
    }
}
