//! Database configuration: defaults, builder values and the environment.

/// A configuration value that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);
