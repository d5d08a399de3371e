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
//! [`DbConfig::from_env`] reads `DATABASE_URL` and the variables of the settings table, listed
//! in [`DbConfig`]'s documentation; an unset variable keeps the default. Each setting is declared
//! once, in `settings.rs`, which says how to add one.
//!
//! Durations follow [`parse_duration`]: `30` (seconds), `500ms`, `30s`, `5m`, `1h`, `1.5s`.
//! Optional durations are turned off by `off`, `none`, `-1` or any zero duration.
//!
//! A value that cannot be used is an error naming the variable, the value and the accepted form;
//! it is never replaced by a default. A variable that is set but empty is an error too: an empty
//! value usually comes from a template or a shell variable that expanded to nothing, and quietly
//! running with the default would hide that mistake. Unset the variable to get the default.

mod backend;
mod env;
mod error;
mod kind;
mod redact;
mod settings;
mod sqlite_url;
mod ssl;
mod url;

pub use self::url::DatabaseUrl;
pub use crate::duration::{DurationError, parse_duration};
pub use backend::Backend;
pub use error::ConfigError;
pub use settings::{DbConfig, environment_table};
pub use ssl::{SslCertificates, SslMode};

/// The URL used when `DATABASE_URL` is not set: an embedded SQLite file in the working
/// directory, created on first use.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://ops.db?mode=rwc";
