//! Database configuration: defaults, builder values and the environment.
//!
//! [`DbConfig`] is the effective configuration of one database handle. It names no driver type:
//! the SeaORM layer maps it onto sqlx's pool and connect options. [`DatabaseUrl`] parses and
//! normalizes a connection URL (SQLAlchemy spellings included), keeps the password out of every
//! `Display`, `Debug` and error message, and lifts SSL settings out of the query string into
//! [`SslMode`].
//!
//! # Environment
//!
//! [`DbConfig::from_env`] reads these variables; an unset variable keeps the default.
//!
//! | variable | field | default | form |
//! | --- | --- | --- | --- |
//! | `DATABASE_URL` | `url` | `sqlite://ops.db?mode=rwc` | a database URL |
//! | `DB_POOL_SIZE` | `pool_size` | 10 | whole number, at least 1 |
//! | `DB_MAX_OVERFLOW` | `max_overflow` | 10 | whole number |
//! | `DB_POOL_TIMEOUT` | `pool_timeout` | 30s | duration |
//! | `DB_POOL_RECYCLE` | `pool_recycle` | 30m | duration, or `off` |
//! | `DB_POOL_IDLE_TIMEOUT` | `idle_timeout` | 10m | duration |
//! | `DB_CONNECT_TIMEOUT` | `connect_timeout` | 10s | duration |
//! | `DB_STATEMENT_TIMEOUT_MS` | `statement_timeout` | none | whole milliseconds, `0` for none |
//! | `DB_IDLE_PING` | `idle_ping` | 500ms | duration |
//! | `DB_LEAK_THRESHOLD` | `leak_threshold` | 60s | duration, or `off` |
//! | `DB_SSL_MODE` | `ssl_mode` | from the URL | an [`SslMode`] name |
//!
//! Durations follow [`parse_duration`]: `30` (seconds), `500ms`, `30s`, `5m`, `1h`, `1.5s`.
//! Optional durations are turned off by `off`, `none`, `-1` or any zero duration.
//!
//! A value that cannot be used is an error naming the variable, the value and the accepted form;
//! it is never replaced by a default. A variable that is set but empty is an error too: an empty
//! value usually comes from a template or a shell variable that expanded to nothing, and quietly
//! running with the default would hide that mistake. Unset the variable to get the default.

mod backend;
mod duration;
mod env;
mod error;
mod redact;
mod settings;
mod sqlite_url;
mod ssl;
mod url;

pub use self::url::DatabaseUrl;
pub use backend::Backend;
pub use duration::parse_duration;
pub use error::ConfigError;
pub use settings::DbConfig;
pub use ssl::{SslCertificates, SslMode};

/// The URL used when `DATABASE_URL` is not set: an embedded SQLite file in the working
/// directory, created on first use.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://ops.db?mode=rwc";
