//! [`DbConfig::from_env`] and [`DbConfig::from_lookup`]: the URL from `DATABASE_URL`, then every
//! setting of the table from its variable.

use super::error::ConfigError;
use super::normalization::Normalization;
use super::settings::DbConfig;
use super::url::DatabaseUrl;

/// The URL used when `DATABASE_URL` is not set: an embedded SQLite file in the working
/// directory, created on first use.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://ops.db?mode=rwc";

/// The variable that holds the URL.
const DATABASE_URL: &str = "DATABASE_URL";

impl DbConfig {
    /// The configuration from the process environment (see [`DbConfig`]'s table).
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
        // An empty value is refused rather than treated as unset: see `DbConfig`'s documentation.
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
        let url = match get(DATABASE_URL)? {
            Some(value) => DatabaseUrl::parse_inner(&value).map_err(|problem| {
                let name = DATABASE_URL;
                ConfigError::from_variable(
                    name,
                    match problem.shown {
                        Some(shown) => format!(
                            "{name}={shown} is not a valid database url: {}",
                            problem.reason
                        ),
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
                    Normalization::DefaultUrl {
                        url: DEFAULT_DATABASE_URL,
                    },
                );
                url
            }
        };
        DbConfig::read(url, get)
    }
}
