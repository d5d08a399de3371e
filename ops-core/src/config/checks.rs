//! The range of each setting, one function per kind of range. The settings table
//! (`table.rs`) names one of these for each setting; both the environment reader and
//! [`DbConfig::validate`](super::DbConfig::validate) run it, each on the values it is given, so
//! every range is written and checked once.

use std::time::Duration;

use super::error::{MAX_STATEMENT_TIMEOUT_MS, RangeError};

/// The longest duration any setting accepts. Longer values are almost certainly typos, and
/// durations near `Duration::MAX` make `Instant + Duration` overflow inside pool code.
const MAX_SETTING: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Any value: the setting's type is its range.
pub(super) fn any<T>(_: &T) -> Result<(), RangeError> {
    Ok(())
}

/// A pool size: at least one connection.
pub(super) fn pool_size(size: &u32) -> Result<(), RangeError> {
    if *size == 0 {
        return Err(RangeError::PoolSizeBelowOne);
    }
    Ok(())
}

/// A duration up to a year, zero included.
pub(super) fn bounded(duration: &Duration) -> Result<(), RangeError> {
    if *duration > MAX_SETTING {
        return Err(RangeError::LongerThanAYear);
    }
    Ok(())
}

/// A positive duration up to a year.
pub(super) fn positive(duration: &Duration) -> Result<(), RangeError> {
    if duration.is_zero() {
        return Err(RangeError::Zero);
    }
    bounded(duration)
}

/// An optional duration: `None`, or a positive duration up to a year (zero is refused, since
/// `None` is how it is turned off).
pub(super) fn optional(duration: &Option<Duration>) -> Result<(), RangeError> {
    match duration {
        Some(duration) if duration.is_zero() => Err(RangeError::ZeroInsteadOfNone),
        Some(duration) => bounded(duration),
        None => Ok(()),
    }
}

/// An optional duration where zero is allowed and means none.
pub(super) fn optional_or_zero(duration: &Option<Duration>) -> Result<(), RangeError> {
    duration.as_ref().map_or(Ok(()), bounded)
}

/// A statement timeout: whole milliseconds from 1 to PostgreSQL's `int4` limit.
pub(super) fn statement_timeout(timeout: &Option<Duration>) -> Result<(), RangeError> {
    let Some(timeout) = timeout else {
        return Ok(());
    };
    if *timeout < Duration::from_millis(1) {
        return Err(RangeError::BelowOneMillisecond);
    }
    if timeout.as_millis() > MAX_STATEMENT_TIMEOUT_MS {
        return Err(RangeError::AboveStatementTimeoutLimit);
    }
    Ok(())
}

/// The failures in a row that open the circuit breaker: at least one, or `None` for off.
pub(super) fn breaker_failures(failures: &Option<u32>) -> Result<(), RangeError> {
    if *failures == Some(0) {
        return Err(RangeError::BreakerFailuresBelowOne);
    }
    Ok(())
}

/// The circuit breaker's cooldown: positive up to a year, or `None` for off.
pub(super) fn breaker_cooldown(cooldown: &Option<Duration>) -> Result<(), RangeError> {
    match cooldown {
        Some(cooldown) if cooldown.is_zero() => Err(RangeError::BreakerCooldownZero),
        Some(cooldown) => bounded(cooldown),
        None => Ok(()),
    }
}
