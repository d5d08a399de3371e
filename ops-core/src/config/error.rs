//! The errors of configuration: [`ConfigError`], what every caller sees, and [`RangeError`], why
//! a setting's value is out of its range.

use std::fmt;

/// A configuration value that could not be used.
///
/// The message names the setting (or environment variable), the offending value and what to
/// write instead. It never contains a password: URLs are redacted before they are quoted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    variable: Option<&'static str>,
    message: String,
    range: Option<RangeError>,
}

impl ConfigError {
    /// An error with the given message, for configuration checks made outside this module (a
    /// builder, for instance). The message must not contain secrets.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            variable: None,
            message: message.into(),
            range: None,
        }
    }

    /// An error caused by the value of an environment variable.
    pub(super) fn from_variable(variable: &'static str, message: impl Into<String>) -> Self {
        Self {
            variable: Some(variable),
            message: message.into(),
            range: None,
        }
    }

    /// An error about one variable's value: `NAME=value reason`.
    pub(super) fn env(variable: &'static str, value: &str, reason: impl fmt::Display) -> Self {
        Self::from_variable(variable, format!("{variable}={value} {reason}"))
    }

    /// A variable's value out of its setting's range: `NAME=value reason`.
    pub(super) fn env_range(variable: &'static str, value: &str, range: RangeError) -> Self {
        Self {
            range: Some(range),
            ..Self::env(variable, value, range)
        }
    }

    /// A field's value out of its range: `name = value reason (NAME in the environment)`.
    pub(super) fn field_range(
        name: &str,
        variable: &str,
        value: impl fmt::Display,
        range: RangeError,
    ) -> Self {
        Self {
            range: Some(range),
            ..Self::new(format!(
                "{name} = {value} {range} ({variable} in the environment)"
            ))
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

    /// Why the value is out of its setting's range, when that is the error (the message says it
    /// too, with the setting and the value).
    pub fn range(&self) -> Option<RangeError> {
        self.range
    }
}

/// The largest statement timeout in milliseconds: PostgreSQL's `statement_timeout` is an `int4`.
pub(super) const MAX_STATEMENT_TIMEOUT_MS: u128 = i32::MAX as u128;

/// Why a setting's value is outside the range it accepts.
///
/// `Display` is the reason phrased to follow the quoted value (`is zero: use …`); a
/// [`ConfigError`] puts the setting's name or environment variable and the value in front.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RangeError {
    /// A pool size of zero: the pool keeps at least one connection.
    PoolSizeBelowOne,
    /// A circuit breaker that would open after zero failures.
    BreakerFailuresBelowOne,
    /// A zero duration where only a positive one works.
    Zero,
    /// A zero duration where `None` is the way to turn the setting off.
    ZeroInsteadOfNone,
    /// A zero circuit-breaker cooldown.
    BreakerCooldownZero,
    /// A duration longer than a year, almost certainly a typo.
    LongerThanAYear,
    /// A statement timeout below one millisecond, which databases round to no timeout.
    BelowOneMillisecond,
    /// A statement timeout above PostgreSQL's `int4` milliseconds.
    AboveStatementTimeoutLimit,
}

impl fmt::Display for RangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RangeError::PoolSizeBelowOne => f.write_str(
                "is below 1: the pool keeps at least one connection open; use 1 or more",
            ),
            RangeError::BreakerFailuresBelowOne => {
                f.write_str("is below 1: use 1 or more, or off to turn the circuit breaker off")
            }
            RangeError::Zero => f.write_str("is zero: use a positive duration such as 30s"),
            RangeError::ZeroInsteadOfNone => f.write_str("is zero: use None to turn it off"),
            RangeError::BreakerCooldownZero => f.write_str(
                "is zero: use a duration such as 5s, or off to turn the circuit breaker off",
            ),
            RangeError::LongerThanAYear => {
                f.write_str("is longer than a year: use a shorter duration")
            }
            RangeError::BelowOneMillisecond => f.write_str(
                "is below one millisecond, which databases round to zero (no timeout): use at \
                 least 1ms, or turn the timeout off",
            ),
            RangeError::AboveStatementTimeoutLimit => write!(
                f,
                "exceeds {} ms, the largest statement timeout PostgreSQL accepts: use a shorter \
                 one, or turn it off",
                MAX_STATEMENT_TIMEOUT_MS
            ),
        }
    }
}

impl std::error::Error for RangeError {}
