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
//! | `DB_PGBOUNCER` | `pgbouncer` | from the URL (`?pgbouncer=true`), else off | `transaction` or `off` |
//! | `DB_RESET_CHECK` | `reset_check` | `auto` | `auto` or `always` ([`ResetCheck`]) |
//! | `DB_SLOW_STATEMENT` | `slow_statement` | off | duration, or `off` |
//! | `DB_TRACE_SQL` | `trace_sql` | `false` | `true` or `false` |
//!
//! Durations follow [`parse_duration`]: `30` (seconds), `500ms`, `30s`, `5m`, `1h`, `1.5s`.
//! Optional durations are turned off by `off`, `none`, `-1` or any zero duration.
//!
//! A value that cannot be used is an error naming the variable, the value and the accepted form;
//! it is never replaced by a default. A variable that is set but empty is an error too: an empty
//! value usually comes from a template or a shell variable that expanded to nothing, and quietly
//! running with the default would hide that mistake. Unset the variable to get the default.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use url::Url;

mod pgbouncer;

pub use pgbouncer::PgBouncerMode;

/// The URL used when `DATABASE_URL` is not set: an embedded SQLite file in the working
/// directory, created on first use.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://ops.db?mode=rwc";

/// The longest duration any setting accepts. Longer values are almost certainly typos, and
/// durations near `Duration::MAX` make `Instant + Duration` overflow inside pool code.
const MAX_SETTING: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The largest statement timeout in milliseconds: PostgreSQL's `statement_timeout` is an `int4`.
const MAX_STATEMENT_TIMEOUT_MS: u128 = i32::MAX as u128;

/// What a URL error suggests instead.
const ACCEPTED_URLS: &str = "use postgres://user:password@host:5432/database \
    (postgresql://, postgresql+asyncpg:// and the other SQLAlchemy spellings work too), \
    mysql://user:password@host:3306/database (mariadb://, mysql+pymysql://, mysql+aiomysql://…) \
    or sqlite://file.db (sqlite::memory:, sqlite:file.db, sqlite:///absolute/file.db; \
    SQLAlchemy's sqlite+pysqlite:///relative.db and sqlite+pysqlite:////absolute.db)";

/// What a duration error suggests instead.
const DURATION_FORM: &str =
    "use seconds (30) or a number with a unit (500ms, 30s, 5m, 1h; fractions such as 1.5s work)";

/// What an SSL mode error suggests instead.
const SSL_MODES: &str = "use disable, allow, prefer, require, verify-ca or verify-full \
    (the MySQL names DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY and true/false \
    are accepted too)";

/// Query parameters that carry an SSL mode; they are removed from the URL.
const SSL_MODE_PARAMS: [&str; 4] = ["sslmode", "ssl-mode", "ssl_mode", "ssl"];

/// Query parameters that the sqlx SQLite driver understands. It rejects any other.
const SQLITE_PARAMS: [&str; 4] = ["mode", "cache", "immutable", "vfs"];

/// Environment variable names, fixed by the public contract.
mod var {
    pub(super) const DATABASE_URL: &str = "DATABASE_URL";
    pub(super) const POOL_SIZE: &str = "DB_POOL_SIZE";
    pub(super) const MAX_OVERFLOW: &str = "DB_MAX_OVERFLOW";
    pub(super) const POOL_TIMEOUT: &str = "DB_POOL_TIMEOUT";
    pub(super) const POOL_RECYCLE: &str = "DB_POOL_RECYCLE";
    pub(super) const IDLE_TIMEOUT: &str = "DB_POOL_IDLE_TIMEOUT";
    pub(super) const CONNECT_TIMEOUT: &str = "DB_CONNECT_TIMEOUT";
    pub(super) const STATEMENT_TIMEOUT_MS: &str = "DB_STATEMENT_TIMEOUT_MS";
    pub(super) const IDLE_PING: &str = "DB_IDLE_PING";
    pub(super) const LEAK_THRESHOLD: &str = "DB_LEAK_THRESHOLD";
    pub(super) const SSL_MODE: &str = "DB_SSL_MODE";
    pub(super) const PGBOUNCER: &str = "DB_PGBOUNCER";
    pub(super) const REPLICA_URLS: &str = "DB_REPLICA_URLS";
    pub(super) const REPLICA_MAX_LAG: &str = "DB_REPLICA_MAX_LAG";
    pub(super) const READ_AFTER_WRITE: &str = "DB_READ_AFTER_WRITE";
    pub(super) const BREAKER_FAILURES: &str = "DB_BREAKER_FAILURES";
    pub(super) const BREAKER_COOLDOWN: &str = "DB_BREAKER_COOLDOWN";
    pub(super) const RESET_CHECK: &str = "DB_RESET_CHECK";
    pub(super) const SLOW_STATEMENT: &str = "DB_SLOW_STATEMENT";
    pub(super) const TRACE_SQL: &str = "DB_TRACE_SQL";
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// A configuration value that could not be used.
///
/// The message names the setting (or environment variable), the offending value and what to
/// write instead. It never contains a password: URLs are redacted before they are quoted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    variable: Option<&'static str>,
    message: String,
}

impl ConfigError {
    /// An error with the given message, for configuration checks made outside this module (a
    /// builder, for instance). The message must not contain secrets.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            variable: None,
            message: message.into(),
        }
    }

    /// An error caused by the value of an environment variable.
    fn from_variable(variable: &'static str, message: impl Into<String>) -> Self {
        Self {
            variable: Some(variable),
            message: message.into(),
        }
    }

    /// The environment variable whose value caused this error, when one did.
    pub fn variable(&self) -> Option<&'static str> {
        self.variable
    }

    /// The message, identical to the `Display` output.
    pub fn message(&self) -> &str {
        &self.message
    }
}

// ---------------------------------------------------------------------------------------------
// Backend and SSL mode
// ---------------------------------------------------------------------------------------------

/// The database family a URL points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Backend {
    /// SQLite, embedded in the process.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

impl Backend {
    /// The lowercase name, which is also the URL scheme: `sqlite`, `postgres` or `mysql`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether and how the connection uses TLS, in libpq's vocabulary.
///
/// MySQL has no `allow`: the SeaORM layer maps [`SslMode::Allow`] onto MySQL's `PREFERRED`, as
/// [`SslMode::as_mysql_str`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Try without TLS first, then with it.
    Allow,
    /// Try TLS first, then without it.
    Prefer,
    /// Use TLS, without verifying the server certificate.
    Require,
    /// Use TLS and verify that the server certificate is signed by a trusted authority.
    VerifyCa,
    /// Use TLS, verify the certificate and that it names the host connected to.
    VerifyFull,
}

impl SslMode {
    /// The libpq name: `disable`, `allow`, `prefer`, `require`, `verify-ca` or `verify-full`.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// The MySQL name: `DISABLED`, `PREFERRED` (for both `allow` and `prefer`), `REQUIRED`,
    /// `VERIFY_CA` or `VERIFY_IDENTITY`.
    pub fn as_mysql_str(self) -> &'static str {
        match self {
            SslMode::Disable => "DISABLED",
            SslMode::Allow | SslMode::Prefer => "PREFERRED",
            SslMode::Require => "REQUIRED",
            SslMode::VerifyCa => "VERIFY_CA",
            SslMode::VerifyFull => "VERIFY_IDENTITY",
        }
    }

    /// Whether the connection fails rather than run without TLS.
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }

    /// Parses any accepted spelling; `None` when the text is not an SSL mode.
    fn parse(text: &str) -> Option<SslMode> {
        let normalized = text.trim().to_ascii_lowercase().replace('_', "-");
        let mode = match normalized.as_str() {
            "disable" | "disabled" | "false" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" | "preferred" => SslMode::Prefer,
            "require" | "required" | "true" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" | "verify-identity" => SslMode::VerifyFull,
            _ => return None,
        };
        Some(mode)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = ConfigError;

    /// Accepts the libpq names, the MySQL names and `true`/`false` (asyncpg's `ssl=`), in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SslMode::parse(s)
            .ok_or_else(|| ConfigError::new(format!("`{s}` is not an ssl mode: {SSL_MODES}")))
    }
}

/// Certificate files named in the URL query. They stay in the URL for the driver; they are
/// exposed here so the SeaORM layer can check or log them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SslCertificates {
    /// The trusted root certificate (`sslrootcert`, `ssl-root-cert`, `ssl-ca`, `sslca`).
    pub root_cert: Option<String>,
    /// The client certificate (`sslcert`, `ssl-cert`).
    pub client_cert: Option<String>,
    /// The client private key (`sslkey`, `ssl-key`).
    pub client_key: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// DatabaseUrl
// ---------------------------------------------------------------------------------------------

/// A parsed and normalized database URL.
///
/// The full URL, password included, is available only through [`DatabaseUrl::expose`], for
/// handing to the driver. `Display`, `Debug` and
/// [`DatabaseUrl::redacted`] show the password as `***`.
///
/// Parsing accepts the spellings of sqlx and of SQLAlchemy and rewrites the latter into the
/// former; each rewrite is described by a sentence in [`DatabaseUrl::normalizations`]:
///
/// - `postgresql://`, `postgresql+asyncpg://` and any `postgres(ql)+driver://` become
///   `postgres://`; `mariadb://`, `mysql+pymysql://` and any `mysql+driver://` or
///   `mariadb+driver://` become `mysql://`.
/// - Plain `sqlite:` URLs keep the meaning sqlx documents and are passed on as written:
///   `sqlite://data.db` and `sqlite:data.db` are `data.db` in the working directory,
///   `sqlite:///data.db` is the absolute path `/data.db`, `sqlite::memory:` is in memory.
///   `sqlite://` alone, which names no file, is read as `sqlite::memory:` (sqlx would give each
///   connection a private temporary database); SQLAlchemy's `sqlite:///:memory:` is refused,
///   since sqlx would open the file `/:memory:`.
/// - SQLAlchemy's readings apply only to URLs that say they are SQLAlchemy's, `sqlite+pysqlite:`,
///   `sqlite+aiosqlite:` and the other `sqlite+driver:` schemes (except `sqlite+pysqlcipher:`,
///   an encrypted database, which is refused): `sqlite+pysqlite://` and
///   `sqlite+pysqlite:///:memory:` become `sqlite::memory:`, `sqlite+pysqlite:///relative.db`
///   (three slashes: relative) becomes `sqlite://relative.db` and
///   `sqlite+pysqlite:////absolute.db` (four slashes) becomes `sqlite:///absolute.db`, with
///   `mode=rwc` added when no mode is given so that the file is created on demand, as SQLAlchemy
///   does. The rewritten URL, as printed, opens the same file when given back.
/// - `sslmode`, `ssl-mode`, `ssl_mode` and `ssl` are removed from the query, and their value is
///   kept as [`DatabaseUrl::ssl_mode`]. PyMySQL's `ssl_ca`, `ssl_cert` and `ssl_key` become
///   `ssl-ca`, `ssl-cert` and `ssl-key`, which sqlx reads for both servers.
///
/// Every other query parameter is kept as written.
///
/// ```
/// use ops_core::config::{Backend, DatabaseUrl, SslMode};
///
/// let url: DatabaseUrl = "postgresql+asyncpg://app:s3cret@db:5432/app?sslmode=require".parse()?;
/// assert_eq!(url.backend(), Backend::Postgres);
/// assert_eq!(url.ssl_mode(), Some(SslMode::Require));
/// assert_eq!(url.expose(), "postgres://app:s3cret@db:5432/app");
/// assert_eq!(url.to_string(), "postgres://app:***@db:5432/app");
/// # Ok::<(), ops_core::config::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct DatabaseUrl {
    url: String,
    redacted: String,
    backend: Backend,
    ssl_mode: Option<SslMode>,
    pgbouncer: Option<PgBouncerMode>,
    in_memory: bool,
    normalizations: Vec<String>,
}

/// Why a URL was refused, before it is phrased for its context (a parse call or a variable).
struct UrlProblem {
    /// The input with its password masked, or `None` when even a masked echo could leak
    /// something (an input without a scheme might be a pasted secret).
    shown: Option<String>,
    reason: String,
}

impl DatabaseUrl {
    /// Parses and normalizes `input`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when the scheme is not a supported database, the URL is malformed, an
    /// SSL mode is unknown or contradicts another, or a SQLite URL carries a parameter sqlx
    /// would reject. The message quotes the URL with its password masked.
    pub fn parse(input: &str) -> Result<DatabaseUrl, ConfigError> {
        DatabaseUrl::parse_inner(input).map_err(|problem| {
            ConfigError::new(match problem.shown {
                Some(shown) => format!("invalid database url `{shown}`: {}", problem.reason),
                None => format!("invalid database url: {}", problem.reason),
            })
        })
    }

    /// The full URL, password included, for the driver. Never log it.
    pub fn expose(&self) -> &str {
        &self.url
    }

    /// The URL with the password (and any `password=` query value) shown as `***`.
    pub fn redacted(&self) -> String {
        self.redacted.clone()
    }

    /// The database family.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The SSL mode the URL's query asked for, before `DB_SSL_MODE` is applied. Always `None`
    /// for SQLite.
    pub fn ssl_mode(&self) -> Option<SslMode> {
        self.ssl_mode
    }

    /// The PgBouncer mode the URL's `pgbouncer=true` asked for, before `DB_PGBOUNCER` is applied.
    /// The parameter is removed from the URL the driver sees.
    pub fn pgbouncer(&self) -> Option<PgBouncerMode> {
        self.pgbouncer
    }

    /// Whether this is an in-memory SQLite database, which lives only as long as the pool's
    /// connections do.
    pub fn is_in_memory(&self) -> bool {
        self.in_memory
    }

    /// One sentence per change made to the URL as written, for the caller to log.
    pub fn normalizations(&self) -> &[String] {
        &self.normalizations
    }

    /// The first value of a query parameter, percent-decoded. The name is compared
    /// case-insensitively. SSL mode parameters are not found here: they were moved to
    /// [`DatabaseUrl::ssl_mode`].
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.url.split_once('?')?.1;
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.into_owned())
    }

    /// The certificate files named in the query, under the names libpq, MySQL and sqlx use.
    pub fn ssl_certificates(&self) -> SslCertificates {
        let first = |names: &[&str]| names.iter().find_map(|name| self.query_param(name));
        SslCertificates {
            root_cert: first(&["sslrootcert", "ssl-root-cert", "ssl-ca", "sslca"]),
            client_cert: first(&["sslcert", "ssl-cert"]),
            client_key: first(&["sslkey", "ssl-key"]),
        }
    }

    fn parse_inner(input: &str) -> Result<DatabaseUrl, UrlProblem> {
        let input = input.trim();
        if input.is_empty() {
            return Err(UrlProblem {
                shown: None,
                reason: format!("it is empty; {ACCEPTED_URLS}"),
            });
        }
        let Some((scheme_written, rest)) = split_scheme(input) else {
            return Err(UrlProblem {
                shown: None,
                reason: format!(
                    "it has no scheme (the value is not shown in case it is a secret); \
                     {ACCEPTED_URLS}"
                ),
            });
        };
        let scheme = scheme_written.to_ascii_lowercase();
        let (family, driver) = match scheme.split_once('+') {
            Some((family, driver)) => (family, Some(driver)),
            None => (scheme.as_str(), None),
        };
        let shown = || Some(redact_raw(input));
        let mut notes = Vec::new();
        match family {
            "postgres" | "postgresql" | "mysql" | "mariadb" => {
                let backend = if family.starts_with("postgres") {
                    Backend::Postgres
                } else {
                    Backend::MySql
                };
                let canonical = backend.as_str();
                if driver.is_some_and(|driver| driver.is_empty()) {
                    return Err(UrlProblem {
                        shown: shown(),
                        reason: format!(
                            "the scheme `{scheme_written}` names no driver after `+`; {ACCEPTED_URLS}"
                        ),
                    });
                }
                if scheme_written != canonical {
                    let why = match (driver, family) {
                        (Some(driver), _) => format!(
                            " (the SQLAlchemy driver `{driver}` is a Python package and does not apply)"
                        ),
                        (None, "mariadb") => " (MariaDB speaks the MySQL protocol)".to_owned(),
                        _ => String::new(),
                    };
                    notes.push(format!(
                        "rewrote the url scheme `{scheme_written}://` to `{canonical}://`{why}"
                    ));
                }
                parse_server(backend, rest, notes).map_err(|reason| UrlProblem {
                    shown: shown(),
                    reason,
                })
            }
            "sqlite" => {
                match driver {
                    None => {}
                    Some("") => {
                        return Err(UrlProblem {
                            shown: shown(),
                            reason: format!(
                                "the scheme `{scheme_written}` names no driver after `+`; \
                                 {ACCEPTED_URLS}"
                            ),
                        });
                    }
                    Some(driver @ "pysqlcipher") => {
                        return Err(UrlProblem {
                            shown: shown(),
                            reason: format!(
                                "the SQLite driver `{driver}` opens encrypted databases, which \
                                 sqlx cannot read (only plain SQLite files are supported); \
                                 {ACCEPTED_URLS}"
                            ),
                        });
                    }
                    Some(driver) => notes.push(format!(
                        "rewrote the url scheme `{scheme_written}:` to `sqlite:` (the SQLAlchemy \
                         driver `{driver}` is a Python package and does not apply)"
                    )),
                }
                if driver.is_none() && scheme_written != "sqlite" {
                    notes.push(format!(
                        "rewrote the url scheme `{scheme_written}:` to `sqlite:`"
                    ));
                }
                // A `+driver` says the URL is SQLAlchemy's, and so are its slash conventions.
                parse_sqlite(rest, driver.is_some(), notes).map_err(|reason| UrlProblem {
                    shown: shown(),
                    reason,
                })
            }
            _ => Err(UrlProblem {
                shown: None,
                reason: format!(
                    "the scheme `{scheme_written}` is not a supported database; {ACCEPTED_URLS}"
                ),
            }),
        }
    }
}

impl FromStr for DatabaseUrl {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DatabaseUrl::parse(s)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseUrl")
            .field("url", &self.redacted)
            .field("backend", &self.backend)
            .field("ssl_mode", &self.ssl_mode)
            .field("normalizations", &self.normalizations)
            .finish_non_exhaustive()
    }
}

/// Splits `scheme:rest` when the part before the first colon is a syntactically valid scheme.
fn split_scheme(input: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = input.split_once(':')?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some((scheme, rest))
}

/// One `key=value` segment of a query string, with its decoded key and value.
struct QueryPair<'a> {
    raw: &'a str,
    key: String,
    value: String,
}

/// Splits a raw query into segments, keeping each as written and decoding it for matching.
fn query_pairs(query: &str) -> Vec<QueryPair<'_>> {
    query
        .split('&')
        .filter(|segment| !segment.is_empty())
        .map(|raw| {
            let (key, value) = url::form_urlencoded::parse(raw.as_bytes())
                .next()
                .map(|(key, value)| (key.into_owned(), value.into_owned()))
                .unwrap_or_default();
            QueryPair { raw, key, value }
        })
        .collect()
}

/// Removes the SSL mode parameters from `pairs` and returns the mode they agree on.
fn take_ssl_mode(pairs: &mut Vec<QueryPair<'_>>) -> Result<Option<(SslMode, String)>, String> {
    let mut found: Option<(SslMode, String)> = None;
    let mut error = None;
    pairs.retain(|pair| {
        let key = pair.key.to_ascii_lowercase();
        if !SSL_MODE_PARAMS.contains(&key.as_str()) {
            return true;
        }
        let written = format!("{}={}", pair.key, pair.value);
        match (SslMode::parse(&pair.value), &found) {
            (None, _) => {
                error.get_or_insert_with(|| {
                    format!("`{written}` in the query is not an ssl mode: {SSL_MODES}")
                });
            }
            (Some(mode), Some((previous, previous_written))) if *previous != mode => {
                error.get_or_insert_with(|| {
                    format!(
                        "the query sets conflicting ssl modes `{previous_written}` and `{written}`: \
                         keep one"
                    )
                });
            }
            (Some(_), Some(_)) => {}
            (Some(mode), None) => found = Some((mode, written)),
        }
        false
    });
    match error {
        Some(error) => Err(error),
        None => Ok(found),
    }
}

/// Parses the part after `postgres:` or `mysql:`.
fn parse_server(
    backend: Backend,
    rest: &str,
    mut notes: Vec<String>,
) -> Result<DatabaseUrl, String> {
    let example = match backend {
        Backend::Postgres => "postgres://user:password@host:5432/database",
        _ => "mysql://user:password@host:3306/database",
    };
    let mut url = Url::parse(&format!("{}:{rest}", backend.as_str()))
        .map_err(|err| format!("{err}; expected {example}"))?;
    if url.cannot_be_a_base() || !rest.starts_with("//") {
        return Err(format!("expected `//` after the scheme, as in {example}"));
    }

    let mut pairs = query_pairs(url.query().unwrap_or_default());
    let ssl = take_ssl_mode(&mut pairs)?;
    let mut pgbouncer = None;
    if let Some(at) = pairs
        .iter()
        .position(|p| p.key.eq_ignore_ascii_case("pgbouncer"))
    {
        let pair = pairs.remove(at);
        if backend != Backend::Postgres {
            return Err(format!(
                "`{}` applies to PostgreSQL urls only: remove it from the query",
                pair.raw
            ));
        }
        pgbouncer = pgbouncer::parse_url_param(&pair.value)?;
        notes.push(format!(
            "moved `{}` out of the url query into the PgBouncer mode ({}) so the driver receives \
             only parameters it knows",
            pair.raw,
            pgbouncer.map_or("off", PgBouncerMode::as_str)
        ));
    }
    if let Some((mode, written)) = &ssl {
        notes.push(format!(
            "moved `{written}` out of the url query into the ssl mode ({mode}) so the driver \
             receives only parameters it knows"
        ));
    }
    // PyMySQL spells the certificate parameters with underscores; sqlx would ignore them
    // silently and connect without the intended certificates.
    let renamed: Vec<String> = pairs
        .iter()
        .map(|pair| {
            let dashed = match pair.key.to_ascii_lowercase().as_str() {
                "ssl_ca" => Some("ssl-ca"),
                "ssl_cert" => Some("ssl-cert"),
                "ssl_key" => Some("ssl-key"),
                _ => None,
            };
            match dashed {
                Some(dashed) => {
                    notes.push(format!(
                        "renamed the url parameter `{}` to `{dashed}`",
                        pair.key
                    ));
                    let value = pair.raw.split_once('=').map_or("", |(_, value)| value);
                    format!("{dashed}={value}")
                }
                None => pair.raw.to_owned(),
            }
        })
        .collect();
    let query = renamed.join("&");
    url.set_query((!query.is_empty()).then_some(query.as_str()));

    let redacted = redact_parsed(&url);
    Ok(DatabaseUrl {
        url: url.into(),
        redacted,
        backend,
        ssl_mode: ssl.map(|(mode, _)| mode),
        pgbouncer,
        in_memory: false,
        normalizations: notes,
    })
}

/// Parses the part after `sqlite:`, the SQLAlchemy way when `sqlalchemy` (the scheme named a
/// `+driver`), otherwise as sqlx does.
fn parse_sqlite(
    rest: &str,
    sqlalchemy: bool,
    mut notes: Vec<String>,
) -> Result<DatabaseUrl, String> {
    let (body, query) = match rest.split_once('?') {
        Some((body, query)) => (body, Some(query)),
        None => (rest, None),
    };
    let mut pairs = query_pairs(query.unwrap_or_default());

    if let Some((mode, written)) = take_ssl_mode(&mut pairs)? {
        if mode.requires_tls() {
            return Err(format!(
                "`{written}` asks for TLS, but SQLite is an embedded file with no network \
                 connection: remove it"
            ));
        }
        notes.push(format!(
            "removed `{written}` from the url query: SSL does not apply to SQLite"
        ));
    }
    pairs.retain(|pair| {
        let keep = !pair.key.eq_ignore_ascii_case("check_same_thread");
        if !keep {
            notes.push(format!(
                "removed `{}` from the url query: it is an option of Python's sqlite3 module, and \
                 sqlx connections are safe to use from any thread",
                pair.raw
            ));
        }
        keep
    });
    let mut mode = None;
    for pair in &pairs {
        let accepted: &[&str] = match pair.key.as_str() {
            "mode" => &["ro", "rw", "rwc", "memory"],
            "cache" => &["private", "shared"],
            "immutable" => &["true", "false", "1", "0"],
            "vfs" => &[],
            _ => {
                return Err(format!(
                    "the SQLite url parameter `{}` is not supported: sqlx accepts {}",
                    pair.key,
                    SQLITE_PARAMS.join(", ")
                ));
            }
        };
        if !accepted.is_empty() && !accepted.contains(&pair.value.as_str()) {
            return Err(format!(
                "`{}={}` is not a valid SQLite url parameter: use {} for `{}`",
                pair.key,
                pair.value,
                accepted.join(", "),
                pair.key
            ));
        }
        if pair.key == "mode" {
            mode = Some(pair.value.clone());
        }
    }
    let mut query: Vec<String> = pairs.iter().map(|pair| pair.raw.to_owned()).collect();
    let mode_memory = mode.as_deref() == Some("memory");

    // Decide the path. A plain `sqlite:` URL means what sqlx documents: `sqlite://data.db` is
    // `data.db` in the working directory and `sqlite:///data.db` is `/data.db`, so a SeaORM
    // user's absolute path opens the file they mean. SQLAlchemy's readings (three slashes
    // relative, four absolute) apply only to URLs that say they are SQLAlchemy's.
    let no_file = || {
        "it names no database file: use sqlite://path/to/file.db, sqlite:///absolute/path.db, \
         or sqlite::memory: for an in-memory database"
            .to_owned()
    };
    let (database, sqlalchemy_file) = if body == ":memory:" {
        (":memory:".to_owned(), false)
    } else if sqlalchemy {
        match body.strip_prefix("///") {
            Some("" | ":memory:") => {
                notes.push(format!(
                    "rewrote the SQLAlchemy url `sqlite:{body}` to `sqlite::memory:`, an in-memory \
                     database"
                ));
                (":memory:".to_owned(), false)
            }
            Some(path) if path.starts_with('/') => {
                notes.push(format!(
                    "read the SQLAlchemy url `sqlite:{body}`: four slashes give the absolute path \
                     {path}"
                ));
                (path.to_owned(), true)
            }
            Some(path) => {
                notes.push(format!(
                    "read the SQLAlchemy url `sqlite:{body}`: three slashes give the path {path} \
                     relative to the working directory"
                ));
                (path.to_owned(), true)
            }
            None if body == "//" && query.is_empty() => {
                notes.push(
                    "rewrote the SQLAlchemy url `sqlite://` to `sqlite::memory:`, an in-memory \
                     database"
                        .to_owned(),
                );
                (":memory:".to_owned(), false)
            }
            None => {
                return Err(
                    "a SQLAlchemy SQLite url names its file after three slashes: use \
                     sqlite+pysqlite:///relative.db or sqlite+pysqlite:////absolute.db"
                        .to_owned(),
                );
            }
        }
    } else if let Some(after) = body.strip_prefix("//") {
        if after == "/:memory:" {
            return Err(
                "`sqlite:///:memory:` is SQLAlchemy's spelling, which sqlx reads as the file \
                 /:memory:: use sqlite::memory: for an in-memory database (or \
                 sqlite+pysqlite:///:memory: for SQLAlchemy's reading)"
                    .to_owned(),
            );
        } else if after == "/" {
            return Err(no_file());
        } else if after.is_empty() {
            if mode_memory {
                (String::new(), false)
            } else if query.is_empty() {
                notes.push(
                    "read the url `sqlite://`, which names no file, as `sqlite::memory:`, an \
                     in-memory database"
                        .to_owned(),
                );
                (":memory:".to_owned(), false)
            } else {
                return Err(no_file());
            }
        } else {
            (after.to_owned(), false)
        }
    } else if body.is_empty() {
        return Err(no_file());
    } else {
        (body.to_owned(), false)
    };

    if sqlalchemy_file && mode.is_none() {
        query.push("mode=rwc".to_owned());
        notes.push(
            "added `mode=rwc` to the SQLite url so the file is created on demand, as SQLAlchemy \
             does"
                .to_owned(),
        );
    }
    let in_memory = database == ":memory:" || mode_memory;
    let mut url = if database == ":memory:" && !body.starts_with("//:") {
        "sqlite::memory:".to_owned()
    } else if body.starts_with("//") || sqlalchemy_file {
        format!("sqlite://{database}")
    } else {
        format!("sqlite:{database}")
    };
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query.join("&"));
    }
    Ok(DatabaseUrl {
        redacted: url.clone(),
        url,
        backend: Backend::Sqlite,
        ssl_mode: None,
        pgbouncer: None,
        in_memory,
        normalizations: notes,
    })
}

/// Masks the password of a parsed server URL, and any `password=` query value (libpq reads one).
fn redact_parsed(url: &Url) -> String {
    let mut redacted = url.clone();
    if redacted.password().is_some() {
        // Setting a password fails only for URLs without a host, which have no password to hide.
        let _ = redacted.set_password(Some("***"));
    }
    mask_query_passwords(redacted.as_str())
}

/// Masks anything that could be a password in a string that did not parse as a URL.
///
/// Without a parse there is no structure to trust, so this errs on the side of hiding: the
/// user-info ends at the last `@` of the whole string (an unencoded `@`, `/` or `?` in a password
/// cannot leak part of it), everything after the first `:` in it is masked, and a non-numeric
/// "port" is masked because `postgres://user:secret` (the `@host` forgotten) puts the secret there.
fn redact_raw(input: &str) -> String {
    let Some((scheme, rest)) = split_scheme(input) else {
        return "***".to_owned();
    };
    let (slashes, body) = match rest.strip_prefix("//") {
        Some(body) => ("//", body),
        None => ("", rest),
    };
    let masked_body = if let Some(at) = body.rfind('@') {
        let (userinfo, host_and_rest) = body.split_at(at);
        match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***{host_and_rest}"),
            None => body.to_owned(),
        }
    } else {
        let end = body.find(['/', '?', '#']).unwrap_or(body.len());
        let (authority, tail) = body.split_at(end);
        match authority.rsplit_once(':') {
            Some((host, port))
                if !authority.ends_with(']') && !port.chars().all(|c| c.is_ascii_digit()) =>
            {
                format!("{host}:***{tail}")
            }
            _ => body.to_owned(),
        }
    };
    mask_query_passwords(&format!("{scheme}:{slashes}{masked_body}"))
}

/// Replaces the value of every `password=` query parameter with `***`.
fn mask_query_passwords(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let masked: Vec<String> = query
        .split('&')
        .map(|segment| {
            let key = segment.split_once('=').map_or(segment, |(key, _)| key);
            let decoded = url::form_urlencoded::parse(key.as_bytes())
                .next()
                .map(|(key, _)| key.into_owned())
                .unwrap_or_default();
            if decoded.eq_ignore_ascii_case("password") {
                format!("{key}=***")
            } else {
                segment.to_owned()
            }
        })
        .collect();
    format!("{base}?{}", masked.join("&"))
}

// ---------------------------------------------------------------------------------------------
// Durations
// ---------------------------------------------------------------------------------------------

/// Parses a duration: a non-negative decimal number and an optional unit.
///
/// Without a unit the number is seconds. Units are `ms`, `s`, `m` and `h`; a space may separate
/// number and unit, and surrounding whitespace is ignored. Fractions are exact to the nanosecond:
/// `1.5s` is 1500 milliseconds.
///
/// ```
/// use std::time::Duration;
/// use ops_core::config::parse_duration;
///
/// assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
/// assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
/// assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
/// assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
/// assert!(parse_duration("abc").is_err());
/// ```
///
/// # Errors
///
/// A message that quotes the input and shows the accepted forms, e.g. ``"`abc` is not a
/// duration: use seconds (30) or a number with a unit (500ms, 30s, 5m, 1h; …)"``.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    duration_from(s).map_err(|reason| format!("`{s}` {reason}"))
}

/// Parses a duration; the error is a reason phrased to follow the quoted input.
fn duration_from(text: &str) -> Result<Duration, String> {
    let malformed = || format!("is not a duration: {DURATION_FORM}");
    let text = text.trim();
    if let Some(rest) = text.strip_prefix('-') {
        if rest.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("is negative: {DURATION_FORM}"));
        }
        return Err(malformed());
    }
    let number_end = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(number_end);
    let nanos_per_unit: u128 = match unit.trim_start() {
        "" | "s" => 1_000_000_000,
        "ms" => 1_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(malformed()),
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number, ""),
    };
    if whole.is_empty() || (number.contains('.') && fraction.is_empty()) {
        return Err(malformed());
    }
    let too_long = || "is too long: use at most a year's worth of time".to_owned();
    let whole: u128 = whole.parse().map_err(|_| too_long())?;
    // Digits past the eighteenth are worth far less than a nanosecond even in hours, so they are
    // dropped; that also keeps the arithmetic below within `u128`.
    let fraction_digits = &fraction[..fraction.len().min(18)];
    let fraction_nanos = if fraction_digits.is_empty() {
        0
    } else {
        let numerator: u128 = fraction_digits.parse().map_err(|_| malformed())?;
        let denominator = 10u128.pow(u32::try_from(fraction_digits.len()).unwrap_or(18));
        numerator * nanos_per_unit / denominator
    };
    let nanos = whole
        .checked_mul(nanos_per_unit)
        .and_then(|nanos| nanos.checked_add(fraction_nanos))
        .ok_or_else(too_long)?;
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| too_long())?;
    // The remainder is below 10^9, so it always fits.
    let subsec = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, subsec))
}

/// Formats a duration in the largest unit that shows it exactly, in [`parse_duration`]'s grammar.
fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if !nanos.is_multiple_of(1_000_000) {
        return format!("{duration:?}");
    }
    let millis = nanos / 1_000_000;
    if millis.is_multiple_of(3_600_000) {
        format!("{}h", millis / 3_600_000)
    } else if millis.is_multiple_of(60_000) {
        format!("{}m", millis / 60_000)
    } else if millis.is_multiple_of(1_000) {
        format!("{}s", millis / 1_000)
    } else {
        format!("{millis}ms")
    }
}

/// Formats an optional duration, `off` for `None`.
fn format_optional(duration: Option<Duration>) -> String {
    duration.map_or_else(|| "off".to_owned(), format_duration)
}

// ---------------------------------------------------------------------------------------------
// Range checks shared by `validate` and the environment reader
// ---------------------------------------------------------------------------------------------

/// Checks a duration that must be positive; the error follows the quoted value.
fn check_positive(duration: Duration) -> Result<(), String> {
    if duration.is_zero() {
        return Err("is zero: use a positive duration such as 30s".to_owned());
    }
    check_bounded(duration)
}

/// Checks that a duration is at most [`MAX_SETTING`].
fn check_bounded(duration: Duration) -> Result<(), String> {
    if duration > MAX_SETTING {
        return Err("is longer than a year: use a shorter duration".to_owned());
    }
    Ok(())
}

/// Checks a statement timeout, which databases take in whole milliseconds.
fn check_statement_timeout(duration: Duration) -> Result<(), String> {
    if duration < Duration::from_millis(1) {
        return Err(
            "is below one millisecond, which databases round to zero (no timeout): use \
                    at least 1ms, or turn the timeout off"
                .to_owned(),
        );
    }
    if duration.as_millis() > MAX_STATEMENT_TIMEOUT_MS {
        return Err(format!(
            "exceeds {MAX_STATEMENT_TIMEOUT_MS} ms, the largest statement timeout PostgreSQL \
             accepts: use a shorter one, or turn it off"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// ResetCheck
// ---------------------------------------------------------------------------------------------

/// Which connections are checked for an open transaction when they go back to the pool
/// (`DB_RESET_CHECK`). A connection never goes back inside a transaction either way; the choice
/// is what that guarantee costs.
///
/// ```
/// use ops_core::config::ResetCheck;
///
/// assert_eq!(ResetCheck::default(), ResetCheck::Auto);
/// assert_eq!(ResetCheck::parse("ALWAYS"), Some(ResetCheck::Always));
/// assert_eq!(ResetCheck::parse("sometimes"), None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResetCheck {
    /// Check only connections that ran raw SQL through ops (`execute_unprepared`, or a raw
    /// statement that is not a single `SELECT`/`INSERT`/`UPDATE`/`DELETE`): the only statements
    /// that can leave a transaction open behind the pool's back. Every other release costs
    /// nothing beyond the driver's own ping.
    #[default]
    Auto,
    /// Check every returned connection, one more round trip per release (none on SQLite). For
    /// applications that hand `Db::connection()` or the raw sqlx pool to code running raw SQL,
    /// which ops cannot see.
    Always,
}

impl ResetCheck {
    /// The name `DB_RESET_CHECK` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            ResetCheck::Auto => "auto",
            ResetCheck::Always => "always",
        }
    }

    /// Parses `auto` or `always`, in any case.
    pub fn parse(value: &str) -> Option<ResetCheck> {
        let value = value.trim();
        [ResetCheck::Auto, ResetCheck::Always]
            .into_iter()
            .find(|check| check.as_str().eq_ignore_ascii_case(value))
    }
}

impl fmt::Display for ResetCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// DbConfig
// ---------------------------------------------------------------------------------------------

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
    /// It also bounds the pool's own round trips on a connection (the idle ping at checkout and
    /// the reset on return): a connection that does not answer them in time is closed.
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
    /// Run behind PgBouncer in this pooling mode (PostgreSQL only): no startup-packet
    /// parameters, unnamed statements inside transactions only, session state refused. `None`
    /// (the default) connects as to PostgreSQL itself.
    pub pgbouncer: Option<PgBouncerMode>,
    /// Read replicas: read-only sessions and `db.reader()` reads go to one of them when it is up
    /// and within `replica_max_lag`. Empty by default.
    pub replica_urls: Vec<DatabaseUrl>,
    /// A replica whose replay is further behind than this is skipped. Default 5s.
    pub replica_max_lag: Duration,
    /// After a write through the `Db`, reads stay on the primary this long; `None` (the default)
    /// routes them to replicas at once.
    pub read_after_write: Option<Duration>,
    /// Connection-level failures in a row that open a pool's circuit breaker; `None` turns the
    /// breaker off. Default 5.
    pub breaker_failures: Option<u32>,
    /// How long an open circuit breaker refuses calls before one probe; `None` turns the breaker
    /// off. Default 5s.
    pub breaker_cooldown: Option<Duration>,
    /// Which connections are checked for an open transaction when they go back to the pool.
    /// Default [`ResetCheck::Auto`].
    pub reset_check: ResetCheck,
    /// A statement slower than this is logged once at `warn` (with its duration, the repository
    /// operation and entity, the session's name and origin, and its SQL without parameter
    /// values) and counted in the error stats; `None` (the default) turns the check off.
    pub slow_statement: Option<Duration>,
    /// Whether statement spans carry the SQL text (`db.query.text`, never parameter values).
    /// Default `false`: SQL can name tables and columns an operator should not see in traces.
    pub trace_sql: bool,
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
            ("slow_statement", var::SLOW_STATEMENT, self.slow_statement),
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
        if self.backend != Backend::Postgres
            && let Some(mode) = self.pgbouncer
        {
            return Err(ConfigError::new(format!(
                "pgbouncer is {mode}, but PgBouncer pools PostgreSQL connections and the \
                 database is {}: set pgbouncer to None (or unset {})",
                self.backend,
                var::PGBOUNCER
            )));
        }
        if self.backend == Backend::Sqlite && !self.replica_urls.is_empty() {
            return Err(ConfigError::new(format!(
                "read replicas are for PostgreSQL and MySQL/MariaDB, but the database is {}: an \
                 embedded SQLite file already reads on connections of its own (remove the \
                 replicas, or unset {})",
                self.backend,
                var::REPLICA_URLS
            )));
        }
        for replica in &self.replica_urls {
            if replica.backend() != self.backend {
                return Err(ConfigError::new(format!(
                    "the read replica {} is a {} database but the primary is {}: a replica must \
                     be a copy of the primary (DB_REPLICA_URLS in the environment)",
                    replica.redacted(),
                    replica.backend(),
                    self.backend
                )));
            }
        }
        check_positive(self.replica_max_lag).map_err(|reason| {
            field(
                "replica_max_lag",
                "DB_REPLICA_MAX_LAG",
                format_duration(self.replica_max_lag),
                reason,
            )
        })?;
        if self.breaker_failures == Some(0) {
            return Err(field(
                "breaker_failures",
                "DB_BREAKER_FAILURES",
                "0".to_owned(),
                "is below 1: use 1 or more, or off to turn the circuit breaker off".to_owned(),
            ));
        }
        if self.breaker_cooldown.is_some_and(|c| c.is_zero()) {
            return Err(field(
                "breaker_cooldown",
                "DB_BREAKER_COOLDOWN",
                "0s".to_owned(),
                "is zero: use a duration such as 5s, or off to turn the circuit breaker off"
                    .to_owned(),
            ));
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
    fn defaults(url: DatabaseUrl) -> DbConfig {
        DbConfig {
            backend: url.backend(),
            ssl_mode: url.ssl_mode(),
            pgbouncer: url.pgbouncer(),
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
            reset_check: ResetCheck::Auto,
            slow_statement: None,
            trace_sql: false,
            replica_urls: Vec::new(),
            replica_max_lag: Duration::from_secs(5),
            read_after_write: None,
            breaker_failures: Some(crate::breaker::BreakerConfig::DEFAULT_FAILURES),
            breaker_cooldown: Some(crate::breaker::BreakerConfig::DEFAULT_COOLDOWN),
        }
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
            backend: url.backend(),
            ssl_mode: url.ssl_mode().or(self.ssl_mode),
            replica_urls: Vec::new(),
            normalizations: Vec::new(),
            // Replica sessions run SeaORM's own transactions: replicas are connected directly.
            pgbouncer: None,
            ..self.clone()
        }
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
            (var::SLOW_STATEMENT, &mut config.slow_statement),
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
        if let Some(value) = get(var::PGBOUNCER)? {
            // The variable wins over the URL's `pgbouncer=` in both directions.
            config.pgbouncer = pgbouncer::parse_setting(&value)
                .map_err(|reason| env_error(var::PGBOUNCER, &value, &reason))?;
        }
        if let Some(value) = get(var::REPLICA_URLS)? {
            for (n, item) in value.split(',').map(str::trim).enumerate() {
                if item.is_empty() {
                    return Err(ConfigError::from_variable(
                        var::REPLICA_URLS,
                        format!(
                            "{} has an empty entry (number {}): separate replica urls with single \
                             commas",
                            var::REPLICA_URLS,
                            n + 1
                        ),
                    ));
                }
                let url = DatabaseUrl::parse_inner(item).map_err(|problem| {
                    let name = var::REPLICA_URLS;
                    ConfigError::from_variable(
                        name,
                        match problem.shown {
                            Some(shown) => format!(
                                "{name} entry {shown} is not a valid database url: {}",
                                problem.reason
                            ),
                            None => format!(
                                "{name} entry number {} is not a valid database url: {}",
                                n + 1,
                                problem.reason
                            ),
                        },
                    )
                })?;
                config.replica_urls.push(url);
            }
        }
        if let Some(value) = get(var::REPLICA_MAX_LAG)? {
            let duration = env_duration(var::REPLICA_MAX_LAG, &value)?;
            check_positive(duration)
                .map_err(|reason| env_error(var::REPLICA_MAX_LAG, &value, &reason))?;
            config.replica_max_lag = duration;
        }
        if let Some(value) = get(var::READ_AFTER_WRITE)? {
            config.read_after_write = env_optional_duration(var::READ_AFTER_WRITE, &value)?;
        }
        if let Some(value) = get(var::BREAKER_FAILURES)? {
            config.breaker_failures = if is_off(&value) {
                None
            } else {
                let failures = env_count(var::BREAKER_FAILURES, &value)?;
                if failures == 0 {
                    return Err(env_error(
                        var::BREAKER_FAILURES,
                        &value,
                        "is below 1: use 1 or more, or off to turn the circuit breaker off",
                    ));
                }
                Some(failures)
            };
        }
        if let Some(value) = get(var::BREAKER_COOLDOWN)? {
            config.breaker_cooldown = env_optional_duration(var::BREAKER_COOLDOWN, &value)?;
        }
        if let Some(value) = get(var::RESET_CHECK)? {
            config.reset_check = ResetCheck::parse(&value).ok_or_else(|| {
                env_error(
                    var::RESET_CHECK,
                    &value,
                    "is not a reset check: use auto (check connections that ran raw SQL) or \
                     always (check every returned connection)",
                )
            })?;
        }
        if let Some(value) = get(var::TRACE_SQL)? {
            config.trace_sql = match value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => {
                    return Err(env_error(
                        var::TRACE_SQL,
                        &value,
                        "is not a switch: use true (statement spans carry the SQL text, never \
                         parameter values) or false",
                    ));
                }
            };
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

impl fmt::Display for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}) pool_size={} max_overflow={} pool_timeout={} pool_recycle={} \
             idle_timeout={} connect_timeout={} statement_timeout={} idle_ping={} \
             leak_threshold={} ssl_mode={} reset_check={}",
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
            self.reset_check.as_str(),
        )?;
        if let Some(mode) = self.pgbouncer {
            write!(f, " pgbouncer={mode}")?;
        }
        if let Some(slow) = self.slow_statement {
            write!(f, " slow_statement={}", format_duration(slow))?;
        }
        if self.trace_sql {
            f.write_str(" trace_sql=true")?;
        }
        Ok(())
    }
}

/// Why a pool size of zero is refused.
fn pool_size_reason() -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_duration_uses_the_largest_exact_unit() {
        for (duration, text) in [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(60), "1m"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_secs(1800), "30m"),
            (Duration::from_secs(7200), "2h"),
            (Duration::from_micros(1500), "1.5ms"),
        ] {
            assert_eq!(format_duration(duration), text);
            assert_eq!(parse_duration(text), Ok(duration), "{text} reads back");
        }
        assert_eq!(format_optional(None), "off");
    }

    #[test]
    fn raw_redaction_errs_on_the_side_of_hiding() {
        for (input, shown) in [
            ("postgres://u:secret@h:x/db", "postgres://u:***@h:x/db"),
            ("postgres://u:se@cret@h/db", "postgres://u:***@h/db"),
            ("postgres://u:se/cret@h/db", "postgres://u:***@h/db"),
            ("postgres://u:secret", "postgres://u:***"),
            ("postgres://u:secret/db", "postgres://u:***/db"),
            ("postgres://h:5432/db", "postgres://h:5432/db"),
            ("postgres://[::1]/db", "postgres://[::1]/db"),
            (
                "postgres://u@h/db?password=secret&a=b",
                "postgres://u@h/db?password=***&a=b",
            ),
            ("postgres://h/db?x=a@b", "postgres://h/db?x=a@b"),
            ("postgres://h:1/db?x=a@b", "postgres://h:***@b"),
            ("secret", "***"),
            ("1secret:x", "***"),
        ] {
            assert_eq!(redact_raw(input), shown, "{input}");
        }
    }
}
