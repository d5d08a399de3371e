//! Database URLs: parsing the sqlx and SQLAlchemy spellings, normalizing them, and keeping the
//! password out of everything printed.

use std::fmt;
use std::str::FromStr;

use url::Url;

use super::backend::Backend;
use super::error::ConfigError;
use super::redact::{redact_parsed, redact_raw};
use super::sqlite_url::parse_sqlite;
use super::ssl::{SslCertificates, SslMode, take_ssl_mode};

/// What a URL error suggests instead.
pub(super) const ACCEPTED_URLS: &str = "use postgres://user:password@host:5432/database \
    (postgresql://, postgresql+asyncpg:// and the other SQLAlchemy spellings work too), \
    mysql://user:password@host:3306/database (mariadb://, mysql+pymysql://, mysql+aiomysql://…) \
    or sqlite://file.db (sqlite::memory:, sqlite:file.db, sqlite:///absolute/file.db; \
    SQLAlchemy's sqlite+pysqlite:///relative.db and sqlite+pysqlite:////absolute.db)";

/// A parsed and normalized database URL.
///
/// The full URL, password included, is available only through [`DatabaseUrl::expose`] (alias
/// [`DatabaseUrl::as_str`]), for handing to the driver. `Display`, `Debug` and
/// [`DatabaseUrl::redacted`] show the password as `***`.
///
/// Parsing accepts the spellings of sqlx and of SQLAlchemy and rewrites the latter into the
/// former; each rewrite is described by a sentence in [`DatabaseUrl::normalizations`]:
///
/// - `postgresql://`, `postgresql+asyncpg://` and any `postgres(ql)+driver://` become
///   `postgres://`; `mariadb://`, `mysql+pymysql://` and any `mysql+driver://` or
///   `mariadb+driver://` become `mysql://`.
/// - Plain `sqlite:` URLs keep sqlx's documented meaning: `sqlite://data.db` and
///   `sqlite:data.db` are `data.db` in the working directory, `sqlite:///data.db` is the absolute
///   `/data.db`, `sqlite::memory:` is in memory. (`sqlite://` alone, which names no file, is read
///   as in memory.) SQLAlchemy's readings apply only to `sqlite+pysqlite://` and
///   `sqlite+aiosqlite://`: `sqlite+pysqlite://` and `sqlite+pysqlite:///:memory:` become
///   `sqlite::memory:`, `sqlite+pysqlite:///relative.db` (three slashes: relative) becomes
///   `sqlite://relative.db` and `sqlite+pysqlite:////absolute.db` (four slashes) becomes
///   `sqlite:///absolute.db`, with `mode=rwc` added when no mode is given so that the file is
///   created on demand, as SQLAlchemy does. The URL printed (`Display`, logs) opens the same
///   database when given back.
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
    pub(super) url: String,
    pub(super) redacted: String,
    pub(super) backend: Backend,
    pub(super) ssl_mode: Option<SslMode>,
    pub(super) in_memory: bool,
    pub(super) normalizations: Vec<String>,
}

/// Why a URL was refused, before it is phrased for its context (a parse call or a variable).
pub(super) struct UrlProblem {
    /// The input with its password masked, or `None` when even a masked echo could leak
    /// something (an input without a scheme might be a pasted secret).
    pub(super) shown: Option<String>,
    pub(super) reason: String,
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

    /// The full URL, password included; the same as [`DatabaseUrl::expose`].
    pub fn as_str(&self) -> &str {
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

    pub(super) fn parse_inner(input: &str) -> Result<DatabaseUrl, UrlProblem> {
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
                    Some(driver @ ("pysqlite" | "aiosqlite")) => notes.push(format!(
                        "rewrote the url scheme `{scheme_written}:` to `sqlite:` (the SQLAlchemy \
                         driver `{driver}` is a Python package and does not apply)"
                    )),
                    Some(driver) => {
                        return Err(UrlProblem {
                            shown: shown(),
                            reason: format!(
                                "the SQLite driver `{driver}` is not supported (only plain SQLite \
                                 files are); {ACCEPTED_URLS}"
                            ),
                        });
                    }
                }
                if driver.is_none() && scheme_written != "sqlite" {
                    notes.push(format!(
                        "rewrote the url scheme `{scheme_written}:` to `sqlite:`"
                    ));
                }
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
pub(super) fn split_scheme(input: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = input.split_once(':')?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some((scheme, rest))
}

/// One `key=value` segment of a query string, with its decoded key and value.
pub(super) struct QueryPair<'a> {
    pub(super) raw: &'a str,
    pub(super) key: String,
    pub(super) value: String,
}

/// Splits a raw query into segments, keeping each as written and decoding it for matching.
pub(super) fn query_pairs(query: &str) -> Vec<QueryPair<'_>> {
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
        in_memory: false,
        normalizations: notes,
    })
}
