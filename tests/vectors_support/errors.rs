//! Which [`DecodeError`] matches an official decoder's rejection: the rules both codecs' vector
//! tests share (`tests/vectors.rs` for v7, `tests/envoy_vectors.rs` for envoy v8), each test
//! adding the few that only its codec needs.

use hibernating_ws::wire::DecodeError;

/// Whether hws's error `e` is the variant matching the official (bare-ts) decoder's `issue` at
/// `offset`, by the rules every codec shares. Offsets are compared where both decoders report
/// the same position.
pub(crate) fn matching_error(issue: &str, offset: usize, e: &DecodeError) -> bool {
    match (issue, e) {
        ("a bool must be equal to 0 or 1", DecodeError::InvalidBool { offset: o, .. })
        | ("invalid tag", DecodeError::UnknownTag { offset: o, .. })
        | ("remaining bytes", DecodeError::TrailingBytes { offset: o, .. })
        | ("duplicated key", DecodeError::DuplicateKey { offset: o }) => *o == offset,
        // bare-ts's own UTF-8 decoder (strings under 256 bytes) reports the start of the
        // string, TextDecoder (256 bytes and more) its end; hws reports the start.
        ("invalid UTF-8 string", DecodeError::InvalidUtf8 { offset: o }) => *o <= offset,
        // bare-ts reads strings of 256+ bytes inside a `try` that turns its own "missing bytes"
        // into "invalid UTF-8 string" (at the start of the string's bytes).
        (
            "invalid UTF-8 string",
            DecodeError::LengthExceedsFrame {
                offset: o, claimed, ..
            },
        ) => *claimed >= 256 && *o < offset,
        // bare-ts miscomputes the offset of a non-canonical varint longer than 2 bytes.
        ("must be canonical", DecodeError::InvalidVarint { .. })
        | (
            "missing bytes",
            DecodeError::UnexpectedEof { .. } | DecodeError::LengthExceedsFrame { .. },
        )
        // bare-ts stops a varint once it exceeds 2^53 - 1, even where the frame ends before
        // the varint does; hws reads on and reports the end of the frame.
        | (
            "too large number",
            DecodeError::LengthExceedsFrame { .. }
            | DecodeError::InvalidVarint { .. }
            | DecodeError::UnexpectedEof { .. },
        ) => true,
        _ => false,
    }
}
