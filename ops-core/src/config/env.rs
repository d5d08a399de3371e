//! Reading one environment variable's text into a setting's type. The settings table
//! (`table.rs`) names the function for each setting. Errors name the variable and quote the value
//! (`DB_POOL_TIMEOUT=abc is not a duration: …`); ranges are checked afterwards, by `checks.rs`.

use std::time::Duration;

use ops_duration::parse_duration;

use super::backend::{SSL_MODES, SslMode};
use super::error::ConfigError;
use super::pgbouncer::{self, PgBouncerMode};
use super::reset_check::ResetCheck;
use super::url::DatabaseUrl;

/// A whole number from 0 to `u32::MAX`.
pub(super) fn count(name: &'static str, value: &str) -> Result<u32, ConfigError> {
    value.trim().parse().map_err(|_| {
        ConfigError::env(
            name,
            value,
            format!(
                "is not a whole number: use a count from 0 to {} such as 10",
                u32::MAX
            ),
        )
    })
}

/// A whole number, or `off`, `none` or `-1` for `None`.
pub(super) fn optional_count(name: &'static str, value: &str) -> Result<Option<u32>, ConfigError> {
    if is_off(value) {
        return Ok(None);
    }
    count(name, value).map(Some)
}

/// A duration.
pub(super) fn duration(name: &'static str, value: &str) -> Result<Duration, ConfigError> {
    parse_duration(value).map_err(|err| ConfigError::env(name, value, err.reason()))
}

/// A duration that `off`, `none`, `-1` or zero turn off.
pub(super) fn optional_duration(
    name: &'static str,
    value: &str,
) -> Result<Option<Duration>, ConfigError> {
    if is_off(value) {
        return Ok(None);
    }
    let duration = parse_duration(value).map_err(|err| {
        ConfigError::env(
            name,
            value,
            format_args!("{}; or off, none, 0 or -1 to turn it off", err.reason()),
        )
    })?;
    Ok((!duration.is_zero()).then_some(duration))
}

/// Whether a value turns an optional setting off.
fn is_off(value: &str) -> bool {
    let value = value.trim();
    ["off", "none", "-1"]
        .iter()
        .any(|word| value.eq_ignore_ascii_case(word))
}

/// `DB_STATEMENT_TIMEOUT_MS`: whole milliseconds, with `0`, `off` or `none` for none.
pub(super) fn statement_timeout_ms(
    name: &'static str,
    value: &str,
) -> Result<Option<Duration>, ConfigError> {
    let trimmed = value.trim();
    if trimmed.eq_ignore_ascii_case("off") || trimmed.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let millis: u64 = trimmed.parse().map_err(|_| {
        ConfigError::env(
            name,
            value,
            "is not a whole number of milliseconds: use for example 5000 for five seconds, or 0 \
             for no timeout",
        )
    })?;
    Ok((millis != 0).then(|| Duration::from_millis(millis)))
}

/// An SSL mode in any accepted spelling.
pub(super) fn ssl_mode(name: &'static str, value: &str) -> Result<Option<SslMode>, ConfigError> {
    SslMode::parse(value).map(Some).ok_or_else(|| {
        ConfigError::env(name, value, format_args!("is not an ssl mode: {SSL_MODES}"))
    })
}

/// `transaction` or `off`.
pub(super) fn pgbouncer(
    name: &'static str,
    value: &str,
) -> Result<Option<PgBouncerMode>, ConfigError> {
    pgbouncer::parse_setting(value).map_err(|reason| ConfigError::env(name, value, reason))
}

/// `auto` or `always`.
pub(super) fn reset_check(name: &'static str, value: &str) -> Result<ResetCheck, ConfigError> {
    ResetCheck::parse(value).ok_or_else(|| {
        ConfigError::env(
            name,
            value,
            "is not a reset check: use auto (check connections that ran raw SQL) or always \
             (check every returned connection)",
        )
    })
}

/// `true` or `false` (and `1`/`0`, `yes`/`no`, `on`/`off`).
pub(super) fn switch(name: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::env(
            name,
            value,
            "is not a switch: use true (statement spans carry the SQL text, never parameter \
             values) or false",
        )),
    }
}

/// Database URLs separated by commas.
pub(super) fn replica_urls(
    name: &'static str,
    value: &str,
) -> Result<Vec<DatabaseUrl>, ConfigError> {
    let mut urls = Vec::new();
    for (n, item) in value.split(',').map(str::trim).enumerate() {
        let number = n + 1;
        if item.is_empty() {
            return Err(ConfigError::from_variable(
                name,
                format!(
                    "{name} has an empty entry (number {number}): separate replica urls with \
                     single commas"
                ),
            ));
        }
        let url = DatabaseUrl::parse_inner(item).map_err(|problem| {
            ConfigError::from_variable(
                name,
                match problem.shown {
                    Some(shown) => format!(
                        "{name} entry {shown} is not a valid database url: {}",
                        problem.reason
                    ),
                    None => format!(
                        "{name} entry number {number} is not a valid database url: {}",
                        problem.reason
                    ),
                },
            )
        })?;
        urls.push(url);
    }
    Ok(urls)
}
