//! [`DecodeError`]: every way a frame can be rejected.

/// Why a frame was rejected by [`decode`](super::decode).
///
/// Offsets are byte positions in the frame (including any version prefix). The decoder never
/// panics and never allocates more than the bytes that remain could justify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame is larger than the configured maximum; nothing was decoded.
    #[error("frame of {size} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// Frame size.
        size: usize,
        /// Configured maximum ([`DecodeLimits::max_frame_size`](super::DecodeLimits)).
        max: usize,
    },
    /// The frame ended in the middle of a value.
    #[error("unexpected end of frame at byte {offset}")]
    UnexpectedEof {
        /// Where more bytes were needed.
        offset: usize,
    },
    /// A length prefix claims more bytes than remain in the frame.
    #[error("length {claimed} at byte {offset} exceeds the {remaining} bytes that remain")]
    LengthExceedsFrame {
        /// Position of the length prefix.
        offset: usize,
        /// Claimed length.
        claimed: u64,
        /// Bytes left after the prefix.
        remaining: usize,
    },
    /// Bytes follow the end of the message.
    #[error("{count} trailing bytes after the message at byte {offset}")]
    TrailingBytes {
        /// End of the message.
        offset: usize,
        /// How many bytes follow it.
        count: usize,
    },
    /// A union tag that the schema does not define.
    #[error("unknown tag {tag} for union {union} at byte {offset}")]
    UnknownTag {
        /// Union type name.
        union: &'static str,
        /// The tag read.
        tag: u64,
        /// Position of the tag.
        offset: usize,
    },
    /// A union variant whose layout in the frame's (older) protocol version is not the v7 one:
    /// only the tunnel messages, pings, pongs and closes are read from versions before 7.
    #[error("variant {tag} of union {union} at byte {offset} is not readable in this version")]
    UnsupportedVariant {
        /// Union type name.
        union: &'static str,
        /// The tag read.
        tag: u64,
        /// Position of the tag.
        offset: usize,
    },
    /// A `bool` byte other than 0 or 1.
    #[error("invalid bool value {value} at byte {offset}")]
    InvalidBool {
        /// The byte read.
        value: u8,
        /// Its position.
        offset: usize,
    },
    /// A `str` that is not valid UTF-8.
    #[error("invalid UTF-8 in string at byte {offset}")]
    InvalidUtf8 {
        /// Start of the string's bytes.
        offset: usize,
    },
    /// A variable-length integer that is not in its shortest form, or longer than 10 bytes.
    #[error("non-canonical or overlong varint at byte {offset}")]
    InvalidVarint {
        /// Start of the varint.
        offset: usize,
    },
    /// The same key twice in a map.
    #[error("duplicate map key at byte {offset}")]
    DuplicateKey {
        /// Position of the second occurrence.
        offset: usize,
    },
    /// More map entries than [`DecodeLimits::max_headers`](super::DecodeLimits) allows.
    #[error("map of {count} entries at byte {offset} exceeds the maximum of {max}")]
    TooManyHeaders {
        /// Position of the count.
        offset: usize,
        /// Claimed entry count.
        count: u64,
        /// Configured maximum.
        max: usize,
    },
    /// More list or map elements than [`DecodeLimits::max_list_len`](super::DecodeLimits)
    /// allows.
    #[error("list of {count} elements at byte {offset} exceeds the maximum of {max}")]
    TooManyItems {
        /// Position of the count.
        offset: usize,
        /// Claimed element count.
        count: u64,
        /// Configured maximum.
        max: usize,
    },
    /// The 2-byte version prefix names a protocol version whose layout of this message is not
    /// the v7 one.
    #[error("unsupported protocol version {version}")]
    UnsupportedVersion {
        /// The version read.
        version: u16,
    },
}

impl DecodeError {
    /// [`DecodeError::UnknownTag`]: `tag`, read at `offset`, names no variant of `union`.
    #[cold]
    pub(crate) fn unknown_tag(union: &'static str, tag: u64, offset: usize) -> Self {
        Self::UnknownTag { union, tag, offset }
    }
}
