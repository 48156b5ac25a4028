//! Exact encoded sizes, so buffers are sized once and limits are checked before encoding.

use super::types::{
    Headers, HibernatingRequest, MessageId, ToClientTunnelMessage, ToClientTunnelMessageKind,
    ToGatewayPong, ToRunnerPing, ToServerTunnelMessage, ToServerTunnelMessageKind,
};

/// Bytes of a BARE `uint` holding `n`.
pub(crate) const fn uvarint_len(n: u64) -> usize {
    let mut len = 1;
    let mut v = n >> 7;
    while v != 0 {
        len += 1;
        v >>= 7;
    }
    len
}

/// Bytes of a BARE `data` or `str` of `n` bytes.
pub(crate) const fn bytes_len(n: usize) -> usize {
    uvarint_len(n as u64) + n
}

pub(crate) fn opt_len<T>(v: Option<&T>, f: impl FnOnce(&T) -> usize) -> usize {
    1 + v.map_or(0, f)
}

/// Bytes of a `MessageId`.
pub(crate) const MESSAGE_ID_LEN: usize = 10;
/// Bytes of a union tag (every tag in use is < 128).
pub(crate) const TAG_LEN: usize = 1;

/// Exact encoded size of a value.
pub trait EncodedLen {
    /// Bytes `serde_bare` will write for `self`.
    fn encoded_len(&self) -> usize;
}

/// [`EncodedLen`] for an envelope union `$union`: a tag, then the body of each variant named
/// first (a value of its own encoded length); the arms after `;` give the other variants'
/// body lengths.
macro_rules! union_encoded_len {
    ($union:ty: $($variant:ident),+; $($pat:pat => $len:expr),* $(,)?) => {
        impl $crate::wire::encode::EncodedLen for $union {
            fn encoded_len(&self) -> usize {
                $crate::wire::encode::TAG_LEN
                    + match self {
                        $(Self::$variant(m) => $crate::wire::encode::EncodedLen::encoded_len(m),)+
                        $($pat => $len,)*
                    }
            }
        }
    };
}
pub(crate) use union_encoded_len;

impl EncodedLen for Headers {
    fn encoded_len(&self) -> usize {
        uvarint_len(self.len() as u64)
            + self
                .iter()
                .map(|(k, v)| bytes_len(k.len()) + bytes_len(v.len()))
                .sum::<usize>()
    }
}

impl EncodedLen for MessageId {
    fn encoded_len(&self) -> usize {
        MESSAGE_ID_LEN
    }
}

impl EncodedLen for ToClientTunnelMessageKind {
    fn encoded_len(&self) -> usize {
        TAG_LEN
            + match self {
                Self::RequestStart(m) => {
                    bytes_len(m.actor_id.len())
                        + bytes_len(m.method.len())
                        + bytes_len(m.path.len())
                        + m.headers.encoded_len()
                        + opt_len(m.body.as_ref(), |b| bytes_len(b.len()))
                        + 1
                }
                Self::RequestChunk(m) => bytes_len(m.body.len()) + 1,
                Self::RequestAbort => 0,
                Self::WebSocketOpen(m) => {
                    bytes_len(m.actor_id.len()) + bytes_len(m.path.len()) + m.headers.encoded_len()
                }
                Self::WebSocketMessage(m) => bytes_len(m.data.len()) + 1,
                Self::WebSocketClose(m) => {
                    opt_len(m.code.as_ref(), |_| 2)
                        + opt_len(m.reason.as_ref(), |r| bytes_len(r.len()))
                }
            }
    }
}

impl EncodedLen for ToClientTunnelMessage {
    fn encoded_len(&self) -> usize {
        MESSAGE_ID_LEN + self.kind.encoded_len()
    }
}

impl EncodedLen for ToServerTunnelMessageKind {
    fn encoded_len(&self) -> usize {
        TAG_LEN
            + match self {
                Self::ResponseStart(m) => {
                    2 + m.headers.encoded_len()
                        + opt_len(m.body.as_ref(), |b| bytes_len(b.len()))
                        + 1
                }
                Self::ResponseChunk(m) => bytes_len(m.body.len()) + 1,
                Self::ResponseAbort => 0,
                Self::WebSocketOpen(_) => 1,
                Self::WebSocketMessage(m) => bytes_len(m.data.len()) + 1,
                Self::WebSocketMessageAck(_) => 2,
                Self::WebSocketClose(m) => {
                    opt_len(m.code.as_ref(), |_| 2)
                        + opt_len(m.reason.as_ref(), |r| bytes_len(r.len()))
                        + 1
                }
            }
    }
}

impl EncodedLen for ToServerTunnelMessage {
    fn encoded_len(&self) -> usize {
        MESSAGE_ID_LEN + self.kind.encoded_len()
    }
}

impl EncodedLen for ToRunnerPing {
    fn encoded_len(&self) -> usize {
        4 + 4 + 8
    }
}

impl EncodedLen for ToGatewayPong {
    fn encoded_len(&self) -> usize {
        4 + 8
    }
}

impl EncodedLen for HibernatingRequest {
    fn encoded_len(&self) -> usize {
        8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvarint_lengths() {
        assert_eq!(uvarint_len(0), 1);
        assert_eq!(uvarint_len(127), 1);
        assert_eq!(uvarint_len(128), 2);
        assert_eq!(uvarint_len(16_383), 2);
        assert_eq!(uvarint_len(16_384), 3);
        assert_eq!(uvarint_len(u64::MAX), 10);
    }
}
