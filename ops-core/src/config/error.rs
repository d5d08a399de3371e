//! The error every configuration check returns.

/// A configuration value that could not be used.
///
/// The message names the setting (or environment variable), the offending value and what to
/// write instead. It never contains a password: URLs are redacted before they are quoted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    variable: Option<&'static str>,
    message: String,
}

impl ConfigError {
    /// An error with the given message, for configuration checks made outside this module (a
    /// builder, for instance). The message must not contain secrets.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            variable: None,
            message: message.into(),
        }
    }

    /// An error caused by the value of an environment variable.
    pub(super) fn from_variable(variable: &'static str, message: impl Into<String>) -> Self {
        Self {
            variable: Some(variable),
            message: message.into(),
        }
    }

    /// The environment variable whose value caused this error, when one did.
    pub fn variable(&self) -> Option<&'static str> {
        self.variable
    }

    /// The message, identical to the `Display` output.
    pub fn message(&self) -> &str {
        &self.message
    }
}
