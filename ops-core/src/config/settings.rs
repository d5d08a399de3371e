//! [`DbConfig`]: its fields, defaults, environment reading, range checks and `Display`, all
//! derived from the settings table (`table.rs`), and the checks between settings.

use std::fmt;

use super::backend::{Backend, SslMode};
use super::error::ConfigError;
use super::normalization::Normalization;
use super::url::DatabaseUrl;
use super::value::SettingValue;

/// Writes [`DbConfig`] and the code derived from each setting of the table.
macro_rules! db_config {
    ($(
        $(#[doc = $doc:literal])*
        $field:ident : $ty:ty {
            env: $env:literal,
            setter: $setter:ident $(($inner:ty))?,
            default: |$url:tt| $default:expr => $shown:literal,
            parse: $parse:path $(=> $then:path)?,
            check: $check:path,
            display: $display:ident,
            form: $form:literal,
            readme: $readme:literal,
        }
    )*) => {
        /// The effective database configuration: URL, pool sizing, timeouts and TLS.
        ///
        /// Build it with [`DbConfig::new`] (defaults), [`DbConfig::from_env`] or
        /// [`DbConfig::from_lookup`]; all of them validate. Fields are public so a builder can
        /// adjust them; call [`DbConfig::validate`] after changing any.
        ///
        /// `Display` is a one-line summary and, like `Debug`, never shows the password.
        ///
        /// ```
        /// use std::time::Duration;
        /// use ops_core::config::{Backend, DbConfig};
        ///
        /// let config = DbConfig::new("postgresql://app:s3cret@127.0.0.1/app")?;
        /// assert_eq!(config.backend(), Backend::Postgres);
        /// assert_eq!(config.pool_size, 10);
        /// assert_eq!(config.max_connections(), 20);
        /// assert_eq!(config.pool_timeout, Duration::from_secs(30));
        /// assert!(!config.to_string().contains("s3cret"));
        /// # Ok::<(), ops_core::config::ConfigError>(())
        /// ```
        ///
        /// # Environment
        ///
        /// [`DbConfig::from_env`] reads these variables; an unset variable keeps the default.
        /// `DATABASE_URL` (default [`DEFAULT_DATABASE_URL`](super::DEFAULT_DATABASE_URL)) gives
        /// the `url`.
        ///
        /// | variable | field | default | form |
        /// | --- | --- | --- | --- |
        $(
            #[doc = concat!(
                "| `", $env, "` | `", stringify!($field), "` | ", $shown, " | ", $form, " |"
            )]
        )*
        ///
        /// Durations follow [`parse_duration`](super::parse_duration): `30` (seconds), `500ms`,
        /// `30s`, `5m`, `1h`, `1.5s`. Optional durations are turned off by `off`, `none`, `-1`
        /// or any zero duration.
        ///
        /// A value that cannot be used is an error naming the variable, the value and the
        /// accepted form; it is never replaced by a default. A variable that is set but empty is
        /// an error too: an empty value usually comes from a template or a shell variable that
        /// expanded to nothing, and quietly running with the default would hide that mistake.
        /// Unset the variable to get the default.
        #[derive(Clone, Debug)]
        #[non_exhaustive]
        pub struct DbConfig {
            /// Where to connect; the password stays inside.
            pub url: DatabaseUrl,
            $(
                $(#[doc = $doc])*
                #[doc = ""]
                #[doc = concat!(
                    "`", $env, "` in the environment (", $form, "); default ", $shown, "."
                )]
                pub $field: $ty,
            )*
            /// Each adjustment made to what was written (URL rewrites, a `DB_SSL_MODE`
            /// override, a setting ignored for SQLite), for the caller to log at startup.
            pub normalizations: Vec<Normalization>,
        }

        /// The environment variable of each setting, named after its field.
        #[allow(non_upper_case_globals)]
        pub(super) mod var {
            $(pub(in crate::config) const $field: &str = $env;)*
        }

        impl DbConfig {
            /// The defaults for `url`, not yet validated.
            fn defaults(url: DatabaseUrl) -> DbConfig {
                DbConfig {
                    $($field: {
                        let $url: &DatabaseUrl = &url;
                        $default
                    },)*
                    normalizations: url.normalizations().to_vec(),
                    url,
                }
            }

            /// Checks each setting against its range.
            fn check_settings(&self) -> Result<(), ConfigError> {
                $(
                    $check(&self.$field).map_err(|reason| {
                        let name = stringify!($field);
                        ConfigError::field_range(name, var::$field, self.$field.show(), reason)
                    })?;
                )*
                Ok(())
            }

            /// Reads each setting that `get` has a value for, checking its range as it goes.
            pub(super) fn read_settings(
                &mut self,
                get: impl Fn(&'static str) -> Result<Option<String>, ConfigError>,
            ) -> Result<(), ConfigError> {
                $(
                    if let Some(value) = get(var::$field)? {
                        let parsed: $ty = $parse(var::$field, &value)?;
                        $check(&parsed)
                            .map_err(|reason| ConfigError::env_range(var::$field, &value, reason))?;
                        $(let parsed: $ty = $then(self, var::$field, &value, parsed)?;)?
                        self.$field = parsed;
                    }
                )*
                Ok(())
            }
        }

        impl fmt::Display for DbConfig {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{} ({})", self.url, self.backend())?;
                $(db_config!(@display $display, f, $field, self.$field);)*
                Ok(())
            }
        }

        /// The README's configuration table rows, as the table declares them.
        #[cfg(test)]
        pub(super) fn readme_rows() -> Vec<String> {
            vec![$(format!("| `{}` | {} | {} |", $env, $shown, $readme)),*]
        }
    };
    (@display always, $f:ident, $field:ident, $value:expr) => {
        write!($f, concat!(" ", stringify!($field), "={}"), $value.show())?;
    };
    (@display if_set, $f:ident, $field:ident, $value:expr) => {
        if $value.is_set() {
            write!($f, concat!(" ", stringify!($field), "={}"), $value.show())?;
        }
    };
    (@display never, $f:ident, $field:ident, $value:expr) => {};
}

crate::for_each_setting!(db_config);

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

    /// The configuration read from the environment's values over the defaults for `url`.
    pub(super) fn read(
        url: DatabaseUrl,
        get: impl Fn(&'static str) -> Result<Option<String>, ConfigError>,
    ) -> Result<DbConfig, ConfigError> {
        let mut config = DbConfig::defaults(url);
        // Each value read is checked against its range as it is read, and the defaults are in
        // range, so only the checks between settings are left.
        config.read_settings(get)?;
        config.check_relations()?;
        Ok(config)
    }

    /// The database family, the URL's.
    pub fn backend(&self) -> Backend {
        self.url.backend()
    }

    /// Checks every setting and the settings against each other.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field, its environment variable, the value and what to do.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_settings()?;
        self.check_relations()
    }

    /// Checks the settings that depend on each other or on the backend.
    fn check_relations(&self) -> Result<(), ConfigError> {
        let backend = self.backend();
        if self.pool_size.checked_add(self.max_overflow).is_none() {
            return Err(ConfigError::new(format!(
                "pool_size ({}) + max_overflow ({}) does not fit in a u32: lower them \
                 ({} and {})",
                self.pool_size,
                self.max_overflow,
                var::pool_size,
                var::max_overflow
            )));
        }
        if let Some(recycle) = self.pool_recycle
            && self.idle_ping >= recycle
        {
            // A connection idle for `idle_ping` is at least that old, so it would always be
            // recycled before it could be pinged: pinging would be silently off.
            return Err(ConfigError::new(format!(
                "idle_ping ({}) must be shorter than pool_recycle ({}), or no connection is \
                 ever pinged before it is recycled: lower {} or raise {}",
                self.idle_ping.show(),
                recycle.show(),
                var::idle_ping,
                var::pool_recycle
            )));
        }
        if backend != Backend::Postgres
            && let Some(mode) = self.pgbouncer
        {
            return Err(ConfigError::new(format!(
                "pgbouncer is {mode}, but PgBouncer pools PostgreSQL connections and the \
                 database is {backend}: set pgbouncer to None (or unset {})",
                var::pgbouncer
            )));
        }
        if backend == Backend::Sqlite && !self.replica_urls.is_empty() {
            return Err(ConfigError::new(format!(
                "read replicas are for PostgreSQL and MySQL/MariaDB, but the database is \
                 {backend}: an embedded SQLite file already reads on connections of its own \
                 (remove the replicas, or unset {})",
                var::replica_urls
            )));
        }
        for replica in &self.replica_urls {
            if replica.backend() != backend {
                return Err(ConfigError::new(format!(
                    "the read replica {} is a {} database but the primary is {backend}: a \
                     replica must be a copy of the primary ({} in the environment)",
                    replica.redacted(),
                    replica.backend(),
                    var::replica_urls
                )));
            }
        }
        if backend == Backend::Sqlite
            && let Some(mode) = self.ssl_mode
        {
            return Err(ConfigError::new(format!(
                "ssl_mode is {mode}, but SSL does not apply to SQLite, an embedded file: set \
                 ssl_mode to None (or unset {})",
                var::ssl_mode
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

    /// The circuit breaker's settings, or `None` when it is turned off.
    pub fn breaker(&self) -> Option<crate::breaker::BreakerConfig> {
        Some(crate::breaker::BreakerConfig {
            failures: self.breaker_failures?,
            cooldown: self.breaker_cooldown?,
            ..crate::breaker::BreakerConfig::default()
        })
    }

    /// The configuration of the pool of one replica: this one's settings with the replica's URL
    /// (and its SSL mode, when the replica URL names one).
    pub fn for_replica(&self, url: &DatabaseUrl) -> DbConfig {
        DbConfig {
            url: url.clone(),
            ssl_mode: url.ssl_mode().or(self.ssl_mode),
            replica_urls: Vec::new(),
            normalizations: Vec::new(),
            // Replica sessions run SeaORM's own transactions: replicas are connected directly.
            pgbouncer: None,
            ..self.clone()
        }
    }

    /// Reconciles `DB_SSL_MODE` with the URL: the variable overrides the URL's mode (with a
    /// note when they differ), and on SQLite a mode without TLS is ignored with a note and one
    /// that asks for TLS is refused.
    pub(super) fn ssl_mode_from_env(
        &mut self,
        name: &'static str,
        value: &str,
        mode: Option<SslMode>,
    ) -> Result<Option<SslMode>, ConfigError> {
        let Some(mode) = mode else {
            return Ok(None);
        };
        if self.backend() == Backend::Sqlite {
            if mode.requires_tls() {
                return Err(ConfigError::env(
                    name,
                    value,
                    "asks for TLS, but the database is SQLite, an embedded file with no network \
                     connection: unset it or point DATABASE_URL at a server",
                ));
            }
            self.normalizations
                .push(Normalization::SslModeIgnoredForSqlite {
                    variable: name,
                    value: value.to_owned(),
                });
            return Ok(None);
        }
        if let Some(from_url) = self.ssl_mode
            && from_url != mode
        {
            self.normalizations.push(Normalization::SslModeOverridden {
                variable: name,
                value: value.to_owned(),
                from_url,
            });
        }
        Ok(Some(mode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_in_range() {
        for url in ["sqlite::memory:", "postgres://h/db", "mysql://h/db"] {
            let url = DatabaseUrl::parse(url).expect("valid");
            DbConfig::defaults(url)
                .validate()
                .expect("defaults validate");
        }
    }

    /// The README's configuration table is rendered from the settings table, so a setting
    /// cannot be added, renamed or given a new default without the README following.
    #[test]
    fn readme_lists_every_setting_as_declared() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
        let readme = std::fs::read_to_string(path).expect("README.md beside the workspace");
        let rows = readme_rows().join("\n");
        assert!(
            readme.contains(&rows),
            "README.md's configuration table should list these rows, in this order:\n{rows}"
        );
    }

    #[test]
    fn range_errors_are_typed_and_name_the_setting() {
        let err = DbConfig::from_lookup(|name| (name == "DB_POOL_TIMEOUT").then(|| "0".into()))
            .expect_err("zero timeout");
        assert_eq!(err.range(), Some(crate::config::RangeError::Zero));
        assert_eq!(err.variable(), Some("DB_POOL_TIMEOUT"));
        assert!(
            err.to_string().starts_with("DB_POOL_TIMEOUT=0 is zero"),
            "{err}"
        );

        let mut config = DbConfig::new("postgres://h/db").expect("valid");
        config.breaker_failures = Some(0);
        let err = config.validate().expect_err("zero failures");
        assert_eq!(
            err.range(),
            Some(crate::config::RangeError::BreakerFailuresBelowOne)
        );
        assert!(
            err.to_string()
                .starts_with("breaker_failures = 0 is below 1"),
            "{err}"
        );
        assert!(
            err.to_string()
                .ends_with("(DB_BREAKER_FAILURES in the environment)")
        );
        assert_eq!(
            DbConfig::new("nope://h").expect_err("bad url").range(),
            None
        );
    }

    #[test]
    fn every_variable_is_distinct() {
        let rows = readme_rows();
        let mut names: Vec<&str> = rows
            .iter()
            .map(|row| row.split('`').nth(1).unwrap_or_default())
            .collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
    }
}
