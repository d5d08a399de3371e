//! The settings table: every tunable of [`DbConfig`] is declared once, in [`__db_settings!`].
//!
//! # Adding a setting
//!
//! Add one row to the table in `__db_settings!` below. That is the only place to edit:
//!
//! ```text
//! /// What the setting does, in full sentences (the field's and the builder method's docs).
//! field_name: FieldType = "default", env "DB_VARIABLE", kind KindType,
//!     setter SetterType, readme "what it does, for the README table";
//! ```
//!
//! - `FieldType` is the public field's type; write paths absolutely (`::core::time::Duration`,
//!   `$crate::config::SslMode`), because the table is also expanded in `ops-sea`.
//! - `"default"` is the default written in the environment grammar; it is parsed by the kind,
//!   and a unit test checks that every default parses and validates.
//! - `KindType` says how the value is read from the environment, range-checked and shown:
//!   `Count<MIN>` (`u32`), `Positive` (`Duration` above zero), `Bounded` (`Duration`, zero
//!   allowed), `OffOrDuration` (`Option<Duration>`, `off` turns it off), `Millis`
//!   (`Option<Duration>` in whole milliseconds), `Ssl` (`Option<SslMode>`). A new kind of value
//!   is a type implementing `Kind` in `kind.rs`.
//! - `SetterType` is the argument of the builder method `DbBuilder::field_name` in `ops-sea`,
//!   converted into `FieldType` with `From` (usually `FieldType` itself).
//!
//! From that row follow: the public field with its documentation, its default in
//! [`DbConfig::new`], reading `DB_VARIABLE` in [`DbConfig::from_env`] (empty values refused,
//! errors naming the variable), the range check in [`DbConfig::validate`] (run once per value,
//! phrased for the environment when the value came from it), the `field=value` entry of
//! `Display`, the row of [`environment_table`] (which `ops-tests` checks README.md against), and
//! the builder method. Checks that relate two settings stay written out in
//! `DbConfig::validate`; a setting that needs one adds it there.

use std::fmt;

use super::backend::Backend;
use super::error::ConfigError;
use super::kind::{
    Bounded, Count, EnvContext, Kind, Millis, OffOrDuration, Positive, Problem, Ssl,
};
use super::url::DatabaseUrl;
use crate::duration::format_duration;

/// The settings table. Each row declares one setting; see the [module documentation](self) for
/// the row format. `$callback` is a macro that receives every row, so `ops-sea` derives its
/// builder methods from the same rows.
#[doc(hidden)]
#[macro_export]
macro_rules! __db_settings {
    ($callback:ident) => {
        $callback! {
            /// Connections kept open even when idle (the pool's minimum).
            pool_size: u32 = "10", env "DB_POOL_SIZE", kind Count<1>,
                setter u32, readme "connections kept warm";
            /// Connections opened beyond `pool_size` under load and closed after
            /// `idle_timeout`; the pool's maximum is `pool_size + max_overflow`.
            max_overflow: u32 = "10", env "DB_MAX_OVERFLOW", kind Count<0>,
                setter u32, readme "extra connections under burst, closed when idle";
            /// How long a caller waits for a free connection before failing with
            /// `PoolExhausted`.
            pool_timeout: ::core::time::Duration = "30s", env "DB_POOL_TIMEOUT", kind Positive,
                setter ::core::time::Duration,
                readme "wait for a free connection, then `PoolExhausted`";
            /// The age after which a connection is closed and replaced; `None` keeps connections
            /// forever. The default, 30 minutes, is below the idle cut-off of most proxies and
            /// firewalls.
            pool_recycle: ::core::option::Option<::core::time::Duration> = "30m",
                env "DB_POOL_RECYCLE", kind OffOrDuration,
                setter ::core::option::Option<::core::time::Duration>,
                readme "maximum connection age (`off` to disable)";
            /// How long an overflow connection may sit idle before it is closed.
            idle_timeout: ::core::time::Duration = "10m", env "DB_POOL_IDLE_TIMEOUT",
                kind Positive, setter ::core::time::Duration,
                readme "how long an idle overflow connection stays open";
            /// How long opening one connection (TCP, TLS and authentication) may take, at
            /// startup and in health checks.
            connect_timeout: ::core::time::Duration = "10s", env "DB_CONNECT_TIMEOUT",
                kind Positive, setter ::core::time::Duration,
                readme "bound on connecting at startup and in health checks";
            /// The server-side limit on one statement; `None` leaves the server's setting.
            statement_timeout: ::core::option::Option<::core::time::Duration> = "off",
                env "DB_STATEMENT_TIMEOUT_MS", kind Millis,
                setter ::core::option::Option<::core::time::Duration>,
                readme "server-side statement timeout (PostgreSQL, MySQL/MariaDB)";
            /// A connection idle at least this long is pinged before it is handed out;
            /// connections used more recently are trusted. Zero pings on every checkout.
            idle_ping: ::core::time::Duration = "500ms", env "DB_IDLE_PING", kind Bounded,
                setter ::core::time::Duration,
                readme "ping only connections idle at least this long";
            /// A session open longer than this is reported as a possible leak and warned about
            /// once; `None` disables the report.
            leak_threshold: ::core::option::Option<::core::time::Duration> = "60s",
                env "DB_LEAK_THRESHOLD", kind OffOrDuration,
                setter ::core::option::Option<::core::time::Duration>,
                readme "sessions open longer are reported and warned about once (`off` to disable)";
            /// The TLS mode; `None` leaves the driver's default. Read from the URL's `sslmode`
            /// (or `ssl-mode`, `ssl`) too, which `DB_SSL_MODE` overrides. Always `None` for
            /// SQLite.
            ssl_mode: ::core::option::Option<$crate::config::SslMode> = "default",
                env "DB_SSL_MODE", kind Ssl, setter $crate::config::SslMode,
                readme "`disable`, `allow`, `prefer`, `require`, `verify-ca`, `verify-full` \
(MySQL names too); also read from `sslmode`/`ssl-mode` in the URL, which is \
removed from the URL the driver sees";
        }
    };
}

/// Where a value came from, so its error is phrased for that source.
pub(super) struct FromEnv {
    pub(super) field: &'static str,
    pub(super) name: &'static str,
    pub(super) value: String,
}

/// An error about one variable: `NAME=value reason`.
pub(super) fn env_error(name: &'static str, value: &str, problem: &Problem) -> ConfigError {
    ConfigError::from_variable(name, format!("{name}={value} {problem}"))
}

macro_rules! db_config {
    ($(
        $(#[doc = $doc:literal])*
        $field:ident: $ty:ty = $default:literal, env $env:literal, kind $kind:ty,
            setter $setter:ty, readme $readme:literal;
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
        /// [`DbConfig::from_env`] reads `DATABASE_URL` (unset: [`DEFAULT_DATABASE_URL`](super::DEFAULT_DATABASE_URL))
        /// and these variables; an unset variable keeps the default.
        ///
        /// | variable | field | default | meaning |
        /// | --- | --- | --- | --- |
        $(
            #[doc = concat!("| `", $env, "` | [`", stringify!($field), "`](DbConfig::",
                stringify!($field), ") | `", $default, "` | ", $readme, " |")]
        )*
        #[derive(Clone, Debug)]
        #[non_exhaustive]
        pub struct DbConfig {
            /// Where to connect; the password stays inside.
            pub url: DatabaseUrl,
            $(
                $(#[doc = $doc])*
                ///
                #[doc = concat!("Default `", $default, "`; environment variable `", $env, "`.")]
                pub $field: $ty,
            )*
            /// One sentence per adjustment made to what was written (URL rewrites, a
            /// `DB_SSL_MODE` override, a setting ignored for SQLite), for the caller to log at
            /// startup.
            pub normalizations: Vec<String>,
        }

        impl DbConfig {
            /// The defaults for `url`, not yet validated. The SSL mode comes from the URL.
            pub(super) fn defaults(url: DatabaseUrl) -> DbConfig {
                let mut config = DbConfig {
                    normalizations: url.normalizations().to_vec(),
                    url,
                    $(
                        $field: <$kind as Kind>::parse($default)
                            .expect("every default of the settings table parses"),
                    )*
                };
                config.ssl_mode = config.url.ssl_mode();
                config
            }

            /// Reads every variable of the table from `get`, recording where each value came
            /// from.
            pub(super) fn read_settings(
                &mut self,
                get: &dyn Fn(&'static str) -> Result<Option<String>, ConfigError>,
                sources: &mut Vec<FromEnv>,
            ) -> Result<(), ConfigError> {
                $(
                    if let Some(value) = get($env)? {
                        let parsed = <$kind as Kind>::parse(&value)
                            .map_err(|problem| env_error($env, &value, &problem))?;
                        let mut env = EnvContext {
                            backend: self.url.backend(),
                            name: $env,
                            value: &value,
                            notes: &mut self.normalizations,
                        };
                        self.$field = <$kind as Kind>::from_env(parsed, &self.$field, &mut env)
                            .map_err(|problem| env_error($env, &value, &problem))?;
                        sources.push(FromEnv { field: stringify!($field), name: $env, value });
                    }
                )*
                Ok(())
            }

            /// The range check of every setting, each phrased for where its value came from.
            pub(super) fn check_settings(&self, sources: &[FromEnv]) -> Result<(), ConfigError> {
                $(
                    if let Err(problem) = <$kind as Kind>::check(&self.$field) {
                        let field = stringify!($field);
                        return Err(match sources.iter().find(|source| source.field == field) {
                            Some(source) => env_error(source.name, &source.value, &problem),
                            None => ConfigError::new(format!(
                                "{field} = {} {problem} ({} in the environment)",
                                <$kind as Kind>::show(&self.$field),
                                $env,
                            )),
                        });
                    }
                )*
                Ok(())
            }

            /// The environment variable of a field, for messages about two settings.
            pub(super) fn env_of(field: &str) -> &'static str {
                match field {
                    $(stringify!($field) => $env,)*
                    _ => "DATABASE_URL",
                }
            }
        }

        impl fmt::Display for DbConfig {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{} ({})", self.url, self.url.backend())?;
                $(write!(f, concat!(" ", stringify!($field), "={}"), <$kind as Kind>::show(&self.$field))?;)*
                Ok(())
            }
        }

        /// The environment variables as a Markdown table (variable, default, meaning), as in
        /// the README. `DATABASE_URL` is not in it.
        pub fn environment_table() -> String {
            let mut table = String::from("| variable | default | meaning |\n| --- | --- | --- |\n");
            $(
                table.push_str(concat!("| `", $env, "` | ", $default, " | ", $readme, " |\n"));
            )*
            table
        }

        /// Every variable of the table, for the tests below.
        #[cfg(test)]
        pub(super) fn variables() -> Vec<&'static str> {
            vec![$($env,)*]
        }
    };
}

crate::__db_settings!(db_config);

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

    /// The database family, the same as `url.backend()`.
    pub fn backend(&self) -> Backend {
        self.url.backend()
    }

    /// The pool's minimum number of connections: `pool_size`.
    pub fn min_connections(&self) -> u32 {
        self.pool_size
    }

    /// The pool's maximum number of connections: `pool_size + max_overflow`.
    pub fn max_connections(&self) -> u32 {
        self.pool_size.saturating_add(self.max_overflow)
    }

    /// Checks every setting and the settings against each other.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field, its environment variable, the value and what to do.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_with(&[])
    }

    /// [`DbConfig::validate`], phrasing errors about values from the environment as such.
    pub(super) fn validate_with(&self, sources: &[FromEnv]) -> Result<(), ConfigError> {
        self.check_settings(sources)?;
        let env = DbConfig::env_of;
        if self.pool_size.checked_add(self.max_overflow).is_none() {
            return Err(ConfigError::new(format!(
                "pool_size ({}) + max_overflow ({}) does not fit in a u32: lower them \
                 ({} and {})",
                self.pool_size,
                self.max_overflow,
                env("pool_size"),
                env("max_overflow"),
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
                format_duration(self.idle_ping),
                format_duration(recycle),
                env("idle_ping"),
                env("pool_recycle"),
            )));
        }
        if self.backend() == Backend::Sqlite
            && let Some(mode) = self.ssl_mode
        {
            return Err(ConfigError::new(format!(
                "ssl_mode is {mode}, but SSL does not apply to SQLite, an embedded file: set \
                 ssl_mode to None (or unset {})",
                env("ssl_mode"),
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_parses_and_validates() {
        for url in ["postgres://h/db", "mysql://h/db", "sqlite::memory:"] {
            let config = DbConfig::new(url).expect("defaults validate");
            assert_eq!(config.pool_size, 10);
        }
    }

    #[test]
    fn the_environment_table_has_a_row_per_setting() {
        let table = environment_table();
        for name in variables() {
            assert!(table.contains(&format!("| `{name}` |")), "{name}");
        }
        assert_eq!(DbConfig::env_of("pool_size"), "DB_POOL_SIZE");
    }
}
