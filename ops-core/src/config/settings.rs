//! [`DbConfig`]: the settings, their defaults, their validation and their one-line summary.

use std::fmt;
use std::time::Duration;

use super::backend::Backend;
use super::duration::{
    check_bounded, check_positive, check_statement_timeout, format_duration, format_optional,
};
use super::env::{pool_size_reason, var};
use super::error::ConfigError;
use super::ssl::SslMode;
use super::url::DatabaseUrl;

/// The effective database configuration: URL, pool sizing, timeouts and TLS.
///
/// Build it with [`DbConfig::new`] (defaults), [`DbConfig::from_env`] or
/// [`DbConfig::from_lookup`]; all of them validate. Fields are public so a builder can adjust
/// them; call [`DbConfig::validate`] after changing any.
///
/// `Display` is a one-line summary and, like `Debug`, never shows the password.
///
/// ```
/// use std::time::Duration;
/// use ops_core::config::{Backend, DbConfig};
///
/// let config = DbConfig::new("postgresql://app:s3cret@127.0.0.1/app")?;
/// assert_eq!(config.backend, Backend::Postgres);
/// assert_eq!(config.pool_size, 10);
/// assert_eq!(config.max_connections(), 20);
/// assert_eq!(config.pool_timeout, Duration::from_secs(30));
/// assert!(!config.to_string().contains("s3cret"));
/// # Ok::<(), ops_core::config::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DbConfig {
    /// Where to connect; the password stays inside.
    pub url: DatabaseUrl,
    /// The database family, the same as `url.backend()`.
    pub backend: Backend,
    /// Connections kept open even when idle (the pool's minimum). Default 10.
    pub pool_size: u32,
    /// Connections opened beyond `pool_size` under load and closed after `idle_timeout`; the
    /// pool's maximum is `pool_size + max_overflow`. Default 10.
    pub max_overflow: u32,
    /// How long a caller waits for a free connection before failing. Default 30s.
    pub pool_timeout: Duration,
    /// The age after which a connection is closed and replaced; `None` keeps connections
    /// forever. Default 30 minutes, below the idle cut-off of most proxies and firewalls.
    pub pool_recycle: Option<Duration>,
    /// How long an overflow connection may sit idle before it is closed. Default 10 minutes.
    pub idle_timeout: Duration,
    /// How long opening one connection (TCP, TLS and authentication) may take. Default 10s.
    pub connect_timeout: Duration,
    /// The server-side limit on one statement; `None` leaves the server's setting. Default `None`.
    pub statement_timeout: Option<Duration>,
    /// A connection idle at least this long is pinged before it is handed out; connections used
    /// more recently are trusted. Zero pings on every checkout. Default 500ms.
    pub idle_ping: Duration,
    /// A session open longer than this is reported as a possible leak; `None` disables the
    /// report. Default 60s.
    pub leak_threshold: Option<Duration>,
    /// TLS mode; `None` leaves the driver's default. Always `None` for SQLite.
    pub ssl_mode: Option<SslMode>,
    /// One sentence per adjustment made to what was written (URL rewrites, an `DB_SSL_MODE`
    /// override, a setting ignored for SQLite), for the caller to log at startup.
    pub normalizations: Vec<String>,
}

impl DbConfig {
    /// The configuration for `url` with every other setting at its default.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when the URL cannot be parsed (see [`DatabaseUrl::parse`]).
    pub fn new(url: &str) -> Result<DbConfig, ConfigError> {
        DbConfig::from_url(DatabaseUrl::parse(url)?)
    }

    /// The configuration for an already parsed URL with every other setting at its default.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when the result does not validate, which defaults always do.
    pub fn from_url(url: DatabaseUrl) -> Result<DbConfig, ConfigError> {
        let config = DbConfig::defaults(url);
        config.validate()?;
        Ok(config)
    }

    /// Checks every setting and the settings against each other.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field, its environment variable, the value and what to do.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let field = |name: &str, variable: &str, value: String, reason: String| {
            ConfigError::new(format!(
                "{name} = {value} {reason} ({variable} in the environment)"
            ))
        };
        if self.backend != self.url.backend() {
            return Err(ConfigError::new(format!(
                "backend is {} but the url is a {} url: leave backend as the url's",
                self.backend,
                self.url.backend()
            )));
        }
        if self.pool_size == 0 {
            return Err(field(
                "pool_size",
                var::POOL_SIZE,
                "0".to_owned(),
                pool_size_reason(),
            ));
        }
        if self.pool_size.checked_add(self.max_overflow).is_none() {
            return Err(ConfigError::new(format!(
                "pool_size ({}) + max_overflow ({}) does not fit in a u32: lower them \
                 ({} and {})",
                self.pool_size,
                self.max_overflow,
                var::POOL_SIZE,
                var::MAX_OVERFLOW
            )));
        }
        let required = [
            ("pool_timeout", var::POOL_TIMEOUT, self.pool_timeout),
            ("idle_timeout", var::IDLE_TIMEOUT, self.idle_timeout),
            (
                "connect_timeout",
                var::CONNECT_TIMEOUT,
                self.connect_timeout,
            ),
        ];
        for (name, variable, value) in required {
            check_positive(value)
                .map_err(|reason| field(name, variable, format_duration(value), reason))?;
        }
        let optional = [
            ("pool_recycle", var::POOL_RECYCLE, self.pool_recycle),
            ("leak_threshold", var::LEAK_THRESHOLD, self.leak_threshold),
        ];
        for (name, variable, value) in optional {
            if let Some(value) = value {
                let checked = if value.is_zero() {
                    Err("is zero: use None to turn it off".to_owned())
                } else {
                    check_bounded(value)
                };
                checked.map_err(|reason| field(name, variable, format_duration(value), reason))?;
            }
        }
        if let Some(timeout) = self.statement_timeout {
            check_statement_timeout(timeout).map_err(|reason| {
                field(
                    "statement_timeout",
                    var::STATEMENT_TIMEOUT_MS,
                    format_duration(timeout),
                    reason,
                )
            })?;
        }
        check_bounded(self.idle_ping).map_err(|reason| {
            field(
                "idle_ping",
                var::IDLE_PING,
                format_duration(self.idle_ping),
                reason,
            )
        })?;
        if let Some(recycle) = self.pool_recycle
            && self.idle_ping >= recycle
        {
            // A connection idle for `idle_ping` is at least that old, so it would always be
            // recycled before it could be pinged: pinging would be silently off.
            return Err(ConfigError::new(format!(
                "idle_ping ({}) must be shorter than pool_recycle ({}), or no connection is \
                 ever pinged before it is recycled: lower {} or raise {}",
                format_duration(self.idle_ping),
                format_duration(recycle),
                var::IDLE_PING,
                var::POOL_RECYCLE
            )));
        }
        if self.backend == Backend::Sqlite
            && let Some(mode) = self.ssl_mode
        {
            return Err(ConfigError::new(format!(
                "ssl_mode is {mode}, but SSL does not apply to SQLite, an embedded file: set \
                 ssl_mode to None (or unset {})",
                var::SSL_MODE
            )));
        }
        Ok(())
    }

    /// The pool's minimum number of connections: `pool_size`.
    pub fn min_connections(&self) -> u32 {
        self.pool_size
    }

    /// The pool's maximum number of connections: `pool_size + max_overflow`.
    pub fn max_connections(&self) -> u32 {
        self.pool_size.saturating_add(self.max_overflow)
    }

    /// The defaults for `url`, not yet validated.
    pub(super) fn defaults(url: DatabaseUrl) -> DbConfig {
        DbConfig {
            backend: url.backend(),
            ssl_mode: url.ssl_mode(),
            normalizations: url.normalizations().to_vec(),
            url,
            pool_size: 10,
            max_overflow: 10,
            pool_timeout: Duration::from_secs(30),
            pool_recycle: Some(Duration::from_secs(30 * 60)),
            idle_timeout: Duration::from_secs(10 * 60),
            connect_timeout: Duration::from_secs(10),
            statement_timeout: None,
            idle_ping: Duration::from_millis(500),
            leak_threshold: Some(Duration::from_secs(60)),
        }
    }
}

impl fmt::Display for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}) pool_size={} max_overflow={} pool_timeout={} pool_recycle={} \
             idle_timeout={} connect_timeout={} statement_timeout={} idle_ping={} \
             leak_threshold={} ssl_mode={}",
            self.url,
            self.backend,
            self.pool_size,
            self.max_overflow,
            format_duration(self.pool_timeout),
            format_optional(self.pool_recycle),
            format_duration(self.idle_timeout),
            format_duration(self.connect_timeout),
            format_optional(self.statement_timeout),
            format_duration(self.idle_ping),
            format_optional(self.leak_threshold),
            self.ssl_mode.map_or("default", SslMode::as_str),
        )
    }
}
