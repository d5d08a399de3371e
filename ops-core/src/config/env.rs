//! Reading a [`DbConfig`] from the environment.

use std::time::Duration;

use super::DEFAULT_DATABASE_URL;
use super::backend::Backend;
use super::duration::{check_bounded, check_positive, check_statement_timeout, duration_from};
use super::error::ConfigError;
use super::settings::DbConfig;
use super::ssl::{SSL_MODES, SslMode};
use super::url::DatabaseUrl;

/// Environment variable names, fixed by the public contract.
pub(super) mod var {
    pub(in crate::config) const DATABASE_URL: &str = "DATABASE_URL";
    pub(in crate::config) const POOL_SIZE: &str = "DB_POOL_SIZE";
    pub(in crate::config) const MAX_OVERFLOW: &str = "DB_MAX_OVERFLOW";
    pub(in crate::config) const POOL_TIMEOUT: &str = "DB_POOL_TIMEOUT";
    pub(in crate::config) const POOL_RECYCLE: &str = "DB_POOL_RECYCLE";
    pub(in crate::config) const IDLE_TIMEOUT: &str = "DB_POOL_IDLE_TIMEOUT";
    pub(in crate::config) const CONNECT_TIMEOUT: &str = "DB_CONNECT_TIMEOUT";
    pub(in crate::config) const STATEMENT_TIMEOUT_MS: &str = "DB_STATEMENT_TIMEOUT_MS";
    pub(in crate::config) const IDLE_PING: &str = "DB_IDLE_PING";
    pub(in crate::config) const LEAK_THRESHOLD: &str = "DB_LEAK_THRESHOLD";
    pub(in crate::config) const SSL_MODE: &str = "DB_SSL_MODE";
}

impl DbConfig {
    /// The configuration from the process environment (see the [module documentation](crate::config)).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the variable, its value (a URL with the password masked) and the
    /// accepted form, when a variable is empty, not UTF-8, or not a usable value.
    pub fn from_env() -> Result<DbConfig, ConfigError> {
        DbConfig::from_source(|name| match std::env::var(name) {
            Ok(value) => Ok(Some(value)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            // The value is not echoed: it could be a URL with a password in it.
            Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::from_variable(
                name,
                format!("{name} is not valid UTF-8: set it to plain text or unset it"),
            )),
        })
    }

    /// The configuration from `lookup`, which plays the environment: it receives a variable name
    /// and returns its value, or `None` when unset. Tests use it to avoid touching the process
    /// environment.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ops_core::config::DbConfig;
    ///
    /// let config = DbConfig::from_lookup(|name| match name {
    ///     "DATABASE_URL" => Some("sqlite::memory:".to_owned()),
    ///     "DB_POOL_TIMEOUT" => Some("5s".to_owned()),
    ///     _ => None,
    /// })?;
    /// assert_eq!(config.pool_timeout, Duration::from_secs(5));
    ///
    /// let err = DbConfig::from_lookup(|name| (name == "DB_POOL_TIMEOUT").then(|| "abc".to_owned()))
    ///     .unwrap_err();
    /// assert!(err.to_string().starts_with("DB_POOL_TIMEOUT=abc is not a duration"));
    /// # Ok::<(), ops_core::config::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`DbConfig::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<DbConfig, ConfigError> {
        DbConfig::from_source(|name| Ok(lookup(name)))
    }
    /// Reads the configuration from `get`, which returns a variable's value, `None` when unset,
    /// or an error when the value cannot even be read.
    fn from_source(
        get: impl Fn(&'static str) -> Result<Option<String>, ConfigError>,
    ) -> Result<DbConfig, ConfigError> {
        // An empty value is refused rather than treated as unset: see the module documentation.
        let get = |name: &'static str| -> Result<Option<String>, ConfigError> {
            match get(name)? {
                Some(value) if value.trim().is_empty() => Err(ConfigError::from_variable(
                    name,
                    format!(
                        "{name} is set but empty: give it a value, or unset it to use the default"
                    ),
                )),
                other => Ok(other),
            }
        };

        let url = match get(var::DATABASE_URL)? {
            Some(value) => DatabaseUrl::parse_inner(&value).map_err(|problem| {
                let name = var::DATABASE_URL;
                ConfigError::from_variable(
                    name,
                    match problem.shown {
                        Some(shown) => {
                            format!(
                                "{name}={shown} is not a valid database url: {}",
                                problem.reason
                            )
                        }
                        None => format!("{name} is not a valid database url: {}", problem.reason),
                    },
                )
            })?,
            None => {
                let mut url =
                    DatabaseUrl::parse_inner(DEFAULT_DATABASE_URL).map_err(|problem| {
                        ConfigError::new(format!(
                            "the default database url is invalid: {}",
                            problem.reason
                        ))
                    })?;
                url.normalizations.insert(
                    0,
                    format!(
                        "DATABASE_URL is not set: using the embedded SQLite database \
                         {DEFAULT_DATABASE_URL}, created on demand"
                    ),
                );
                url
            }
        };
        let mut config = DbConfig::defaults(url);

        if let Some(value) = get(var::POOL_SIZE)? {
            config.pool_size = env_count(var::POOL_SIZE, &value)?;
            if config.pool_size == 0 {
                return Err(env_error(var::POOL_SIZE, &value, &pool_size_reason()));
            }
        }
        if let Some(value) = get(var::MAX_OVERFLOW)? {
            config.max_overflow = env_count(var::MAX_OVERFLOW, &value)?;
        }
        let required = [
            (var::POOL_TIMEOUT, &mut config.pool_timeout),
            (var::IDLE_TIMEOUT, &mut config.idle_timeout),
            (var::CONNECT_TIMEOUT, &mut config.connect_timeout),
        ];
        for (name, slot) in required {
            if let Some(value) = get(name)? {
                let duration = env_duration(name, &value)?;
                check_positive(duration).map_err(|reason| env_error(name, &value, &reason))?;
                *slot = duration;
            }
        }
        let optional = [
            (var::POOL_RECYCLE, &mut config.pool_recycle),
            (var::LEAK_THRESHOLD, &mut config.leak_threshold),
        ];
        for (name, slot) in optional {
            if let Some(value) = get(name)? {
                *slot = env_optional_duration(name, &value)?;
            }
        }
        if let Some(value) = get(var::IDLE_PING)? {
            let duration = env_duration(var::IDLE_PING, &value)?;
            check_bounded(duration).map_err(|reason| env_error(var::IDLE_PING, &value, &reason))?;
            config.idle_ping = duration;
        }
        if let Some(value) = get(var::STATEMENT_TIMEOUT_MS)? {
            config.statement_timeout = env_statement_timeout(&value)?;
        }
        if let Some(value) = get(var::SSL_MODE)? {
            config.apply_env_ssl_mode(&value)?;
        }

        config.validate()?;
        Ok(config)
    }

    /// Applies `DB_SSL_MODE`, which overrides the URL's mode.
    fn apply_env_ssl_mode(&mut self, value: &str) -> Result<(), ConfigError> {
        let name = var::SSL_MODE;
        let mode = SslMode::parse(value)
            .ok_or_else(|| env_error(name, value, &format!("is not an ssl mode: {SSL_MODES}")))?;
        if self.backend == Backend::Sqlite {
            if mode.requires_tls() {
                return Err(env_error(
                    name,
                    value,
                    "asks for TLS, but the database is SQLite, an embedded file with no network \
                     connection: unset it or point DATABASE_URL at a server",
                ));
            }
            self.normalizations.push(format!(
                "ignored {name}={value}: SSL does not apply to SQLite"
            ));
            return Ok(());
        }
        if let Some(from_url) = self.ssl_mode
            && from_url != mode
        {
            self.normalizations.push(format!(
                "{name}={value} overrides the ssl mode {from_url} given in DATABASE_URL"
            ));
        }
        self.ssl_mode = Some(mode);
        Ok(())
    }
}

/// Why a pool size of zero is refused.
pub(super) fn pool_size_reason() -> String {
    "is below 1: the pool keeps at least one connection open; use 1 or more".to_owned()
}

/// An error about one variable: `NAME=value reason`.
fn env_error(name: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError::from_variable(name, format!("{name}={value} {reason}"))
}

/// Reads a whole number.
fn env_count(name: &'static str, value: &str) -> Result<u32, ConfigError> {
    value.trim().parse().map_err(|_| {
        env_error(
            name,
            value,
            &format!(
                "is not a whole number: use a count from 0 to {} such as 10",
                u32::MAX
            ),
        )
    })
}

/// Reads a duration.
fn env_duration(name: &'static str, value: &str) -> Result<Duration, ConfigError> {
    duration_from(value).map_err(|reason| env_error(name, value, &reason))
}

/// Whether a value turns an optional setting off.
fn is_off(value: &str) -> bool {
    let value = value.trim();
    ["off", "none", "-1"]
        .iter()
        .any(|word| value.eq_ignore_ascii_case(word))
}

/// Reads a duration that `off`, `none`, `-1` or zero turn off.
fn env_optional_duration(name: &'static str, value: &str) -> Result<Option<Duration>, ConfigError> {
    if is_off(value) {
        return Ok(None);
    }
    let duration = duration_from(value).map_err(|reason| {
        env_error(
            name,
            value,
            &format!("{reason}; or off, none, 0 or -1 to turn it off"),
        )
    })?;
    if duration.is_zero() {
        return Ok(None);
    }
    check_bounded(duration).map_err(|reason| env_error(name, value, &reason))?;
    Ok(Some(duration))
}

/// Reads `DB_STATEMENT_TIMEOUT_MS`: whole milliseconds, with `0`, `off` or `none` for none.
fn env_statement_timeout(value: &str) -> Result<Option<Duration>, ConfigError> {
    let name = var::STATEMENT_TIMEOUT_MS;
    let trimmed = value.trim();
    if trimmed.eq_ignore_ascii_case("off") || trimmed.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let millis: u64 = trimmed.parse().map_err(|_| {
        env_error(
            name,
            value,
            "is not a whole number of milliseconds: use for example 5000 for five seconds, or 0 \
             for no timeout",
        )
    })?;
    if millis == 0 {
        return Ok(None);
    }
    let timeout = Duration::from_millis(millis);
    check_statement_timeout(timeout).map_err(|reason| env_error(name, value, &reason))?;
    Ok(Some(timeout))
}
