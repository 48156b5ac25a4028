//! [`ConfigError`]: a configuration value outside its allowed range.

/// A configuration value is outside its allowed range. Returned by the engines' constructors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `field` must lie within the documented bounds.
    #[error("config field `{field}` is out of bounds: {constraint}")]
    OutOfBounds {
        /// The offending field.
        field: &'static str,
        /// What the field must satisfy.
        constraint: &'static str,
    },
}

impl ConfigError {
    /// The configuration field the error names (`"persist_bytes"`, `"decode_limits.max_frame_size"`).
    #[must_use]
    pub fn field(&self) -> &'static str {
        match self {
            Self::OutOfBounds { field, .. } => field,
        }
    }
}

/// Generates a `with_<field>(value) -> Self` setter per listed field of a configuration struct,
/// so `#[non_exhaustive]` configurations are built the same way everywhere:
/// `Config::default().with_a(1).with_b(2)`, then checked by `validate()` (the engines'
/// constructors call it).
macro_rules! with_setters {
    ($ty:ident { $($setter:ident => $field:ident: $fty:ty),* $(,)? }) => {
        impl $ty {
            $(
                #[doc = concat!("Sets [`", stringify!($field), "`](Self::", stringify!($field), ").")]
                #[must_use]
                pub fn $setter(mut self, value: $fty) -> Self {
                    self.$field = value;
                    self
                }
            )*
        }
    };
}
pub(crate) use with_setters;
