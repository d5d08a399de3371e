//! Serializer helpers for the crate's JSON forms (feature `serde`): durations as milliseconds,
//! times as Unix milliseconds, categories as their display form. A leaf: the modules whose types
//! serialize (`health`, `stats`, `tracker`, `breaker`) point here, and it points at none of them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serializer;

use crate::ErrorCategory;

/// Milliseconds as a float, to the microsecond.
fn ms(duration: Duration) -> f64 {
    // Microseconds fit an f64 exactly for any duration shorter than about 285 years.
    duration.as_micros() as f64 / 1000.0
}

/// A duration as milliseconds.
pub(crate) fn duration<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(ms(*value))
}

/// An optional duration as milliseconds, or null.
pub(crate) fn option_duration<S: Serializer>(
    value: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => s.serialize_some(&ms(*value)),
        None => s.serialize_none(),
    }
}

/// An optional time as Unix milliseconds, or null.
pub(crate) fn option_system_time<S: Serializer>(
    value: &Option<SystemTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => system_time(value, s),
        None => s.serialize_none(),
    }
}

/// A time as Unix milliseconds; times before 1970 as 0.
pub(crate) fn system_time<S: Serializer>(value: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let ms = value.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    });
    s.serialize_u64(ms)
}

/// A category as its display form, `retryable(deadlock)`, matching the keys of the stats maps.
pub(crate) fn category<S: Serializer>(value: &ErrorCategory, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// A map keyed by category, with each key in its display form (`retryable(deadlock)`), as JSON
/// object keys must be strings.
pub(crate) fn category_map<S: Serializer>(
    value: &std::collections::BTreeMap<ErrorCategory, u64>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(value.len()))?;
    for (category, count) in value {
        map.serialize_entry(&category.to_string(), count)?;
    }
    map.end()
}
