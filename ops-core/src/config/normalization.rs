//! [`Normalization`]: one change made to what was written, for the caller to log at startup.

use std::fmt;

use super::backend::{Backend, SslMode};
use super::pgbouncer::PgBouncerMode;

/// One adjustment made to a URL or a setting as written: a SQLAlchemy spelling rewritten, a
/// parameter moved out of the query, an `DB_SSL_MODE` override. `Display` is a sentence for a log
/// line; it never contains a password.
///
/// ```
/// use ops_core::config::{DatabaseUrl, Normalization};
///
/// let url = DatabaseUrl::parse("postgresql://h/db")?;
/// assert!(matches!(url.normalizations()[0], Normalization::Scheme { .. }));
/// assert_eq!(
///     url.normalizations()[0].to_string(),
///     "rewrote the url scheme `postgresql://` to `postgres://`"
/// );
/// # Ok::<(), ops_core::config::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Normalization {
    /// A scheme rewritten to the one sqlx reads (`postgresql+asyncpg` to `postgres`).
    Scheme {
        /// The scheme as written.
        written: String,
        /// The database family, whose name is the scheme written instead.
        to: Backend,
        /// The SQLAlchemy driver the scheme named after `+`, which does not apply.
        driver: Option<String>,
    },
    /// `pgbouncer=…` moved out of the query into [`DatabaseUrl::pgbouncer`](super::DatabaseUrl::pgbouncer).
    PgBouncerParam {
        /// The parameter as written.
        param: String,
        /// The mode it asked for; `None` for off.
        mode: Option<PgBouncerMode>,
    },
    /// An SSL mode parameter moved out of the query into [`DatabaseUrl::ssl_mode`](super::DatabaseUrl::ssl_mode).
    SslParam {
        /// The parameter as written, `sslmode=require` for instance.
        param: String,
        /// The mode it asked for.
        mode: SslMode,
    },
    /// A PyMySQL certificate parameter renamed to the spelling sqlx reads (`ssl_ca` to `ssl-ca`).
    ParamRenamed {
        /// The parameter's name as written.
        from: String,
        /// The name sqlx reads.
        to: &'static str,
    },
    /// An SSL mode parameter that asked for no TLS removed from a SQLite URL.
    SqliteSslParamRemoved {
        /// The parameter as written.
        param: String,
    },
    /// Python's `check_same_thread` removed from a SQLite URL.
    CheckSameThreadRemoved {
        /// The parameter as written.
        param: String,
    },
    /// A SQLAlchemy SQLite URL that names no file (`sqlite+pysqlite://`,
    /// `sqlite+pysqlite:///:memory:`) read as `sqlite::memory:`.
    SqlAlchemyMemory {
        /// What followed the scheme's colon, before the query.
        body: String,
    },
    /// A SQLAlchemy SQLite URL with four slashes: an absolute path.
    SqlAlchemyAbsolutePath {
        /// What followed the scheme's colon, before the query.
        body: String,
        /// The absolute path.
        path: String,
    },
    /// A SQLAlchemy SQLite URL with three slashes: a path relative to the working directory.
    SqlAlchemyRelativePath {
        /// What followed the scheme's colon, before the query.
        body: String,
        /// The relative path.
        path: String,
    },
    /// `sqlite://`, which names no file, read as `sqlite::memory:`.
    EmptySqliteAsMemory,
    /// `mode=rwc` added to a SQLAlchemy SQLite URL, so the file is created on demand.
    CreateOnDemand,
    /// `DATABASE_URL` is not set: the embedded SQLite database
    /// [`DEFAULT_DATABASE_URL`](super::DEFAULT_DATABASE_URL) is used.
    DefaultUrl {
        /// The URL used instead.
        url: &'static str,
    },
    /// `DB_SSL_MODE` ignored because SQLite has no TLS.
    SslModeIgnoredForSqlite {
        /// The environment variable.
        variable: &'static str,
        /// Its value.
        value: String,
    },
    /// `DB_SSL_MODE` overrides a different SSL mode given in the URL.
    SslModeOverridden {
        /// The environment variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// The mode the URL gave.
        from_url: SslMode,
    },
}

impl fmt::Display for Normalization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Normalization::Scheme {
                written,
                to,
                driver,
            } => {
                let separator = if *to == Backend::Sqlite { ":" } else { "://" };
                write!(
                    f,
                    "rewrote the url scheme `{written}{separator}` to `{to}{separator}`"
                )?;
                match driver {
                    Some(driver) => write!(
                        f,
                        " (the SQLAlchemy driver `{driver}` is a Python package and does not \
                         apply)"
                    ),
                    None if written.eq_ignore_ascii_case("mariadb") => {
                        f.write_str(" (MariaDB speaks the MySQL protocol)")
                    }
                    None => Ok(()),
                }
            }
            Normalization::PgBouncerParam { param, mode } => write!(
                f,
                "moved `{param}` out of the url query into the PgBouncer mode ({}) so the driver \
                 receives only parameters it knows",
                mode.map_or("off", PgBouncerMode::as_str)
            ),
            Normalization::SslParam { param, mode } => write!(
                f,
                "moved `{param}` out of the url query into the ssl mode ({mode}) so the driver \
                 receives only parameters it knows"
            ),
            Normalization::ParamRenamed { from, to } => {
                write!(f, "renamed the url parameter `{from}` to `{to}`")
            }
            Normalization::SqliteSslParamRemoved { param } => write!(
                f,
                "removed `{param}` from the url query: SSL does not apply to SQLite"
            ),
            Normalization::CheckSameThreadRemoved { param } => write!(
                f,
                "removed `{param}` from the url query: it is an option of Python's sqlite3 \
                 module, and sqlx connections are safe to use from any thread"
            ),
            Normalization::SqlAlchemyMemory { body } => write!(
                f,
                "rewrote the SQLAlchemy url `sqlite:{body}` to `sqlite::memory:`, an in-memory \
                 database"
            ),
            Normalization::SqlAlchemyAbsolutePath { body, path } => write!(
                f,
                "read the SQLAlchemy url `sqlite:{body}`: four slashes give the absolute path \
                 {path}"
            ),
            Normalization::SqlAlchemyRelativePath { body, path } => write!(
                f,
                "read the SQLAlchemy url `sqlite:{body}`: three slashes give the path {path} \
                 relative to the working directory"
            ),
            Normalization::EmptySqliteAsMemory => f.write_str(
                "read the url `sqlite://`, which names no file, as `sqlite::memory:`, an \
                 in-memory database",
            ),
            Normalization::CreateOnDemand => f.write_str(
                "added `mode=rwc` to the SQLite url so the file is created on demand, as \
                 SQLAlchemy does",
            ),
            Normalization::DefaultUrl { url } => write!(
                f,
                "DATABASE_URL is not set: using the embedded SQLite database {url}, created on \
                 demand"
            ),
            Normalization::SslModeIgnoredForSqlite { variable, value } => {
                write!(
                    f,
                    "ignored {variable}={value}: SSL does not apply to SQLite"
                )
            }
            Normalization::SslModeOverridden {
                variable,
                value,
                from_url,
            } => write!(
                f,
                "{variable}={value} overrides the ssl mode {from_url} given in DATABASE_URL"
            ),
        }
    }
}
