//! Internal `tracing` macros for the engines: with the feature `tracing` they expand to the
//! `tracing` macro of the same level, without it to nothing (the arguments are not evaluated).
//!
//! The engines report only what no caller sees as an error (an ack timeout closing a request). A
//! dropped or rejected input is returned as a typed error, and the caller reports it once: the
//! adapters through their `receive_error` hooks.

/// A `debug` event with the feature `tracing`; nothing without it.
macro_rules! debug {
    ($($arg:tt)*) => {
        #[cfg(feature = "tracing")]
        {
            ::tracing::debug!($($arg)*);
        }
    };
}

pub(crate) use debug;
