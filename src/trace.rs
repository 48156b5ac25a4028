//! Internal `tracing` macros for the engines: with the feature `tracing` they expand to the
//! `tracing` macro of the same level, without it to nothing (the arguments are not evaluated).

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
