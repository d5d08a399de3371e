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
//! [`DbConfig::from_env`] reads `DATABASE_URL` and one variable per setting; [`DbConfig`]'s
//! documentation lists them with their defaults and forms. Durations follow [`parse_duration`].
//! A value that cannot be used is an error naming the variable, the value and the accepted form;
//! it is never replaced by a default, and a variable set but empty is an error too.
//!
//! # Layout
//!
//! Every setting is declared once, in the table of `table.rs`: its field, variable, type,
//! default, range and docs. `settings.rs` derives `DbConfig` from it (field, default, environment
//! reading, range check, `Display`, README row) and ops-sea derives `DbBuilder`'s methods. The
//! other files each hold one concern: `url.rs`, `query.rs` and `sqlite.rs` read URLs,
//! `normalization.rs` says what was changed, `env.rs` reads a variable's text, `checks.rs` holds
//! the ranges, `load.rs` reads the environment, `error.rs` the errors. The duration grammar lives
//! in the `ops-sea-duration` crate, which the macros use too.

mod backend;
mod checks;
mod env;
mod error;
mod load;
mod normalization;
mod pgbouncer;
mod query;
mod reset_check;
mod settings;
mod sqlite;
mod table;
mod url;
mod value;

pub use backend::{Backend, SslCertificates, SslMode};
pub use error::{ConfigError, RangeError};
pub use load::DEFAULT_DATABASE_URL;
pub use normalization::Normalization;
pub use ops_duration::{DurationError, parse_duration};
pub use pgbouncer::PgBouncerMode;
pub use reset_check::ResetCheck;
pub use settings::DbConfig;
pub use url::DatabaseUrl;
