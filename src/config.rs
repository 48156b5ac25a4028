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
