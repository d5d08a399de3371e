//! [`DatabaseUrl`]: parsing a connection URL (sqlx's spellings and SQLAlchemy's), lifting SSL
//! and PgBouncer settings out of its query, and keeping its password out of every message.
//! SQLite URLs are read by `sqlite.rs`.

use std::fmt;
use std::str::FromStr;

use url::Url;

use super::backend::{Backend, SslCertificates, SslMode};
use super::error::ConfigError;
use super::normalization::Normalization;
use super::pgbouncer::{self, PgBouncerMode};
use super::query::{query_pairs, take_ssl_mode};
use super::sqlite::{SqliteUrl, parse_sqlite};

/// What a URL error suggests instead.
pub(super) const ACCEPTED_URLS: &str = "use postgres://user:password@host:5432/database \
    (postgresql://, postgresql+asyncpg:// and the other SQLAlchemy spellings work too), \
    mysql://user:password@host:3306/database (mariadb://, mysql+pymysql://, mysql+aiomysql://…) \
    or sqlite://file.db (sqlite::memory:, sqlite:file.db, sqlite:///absolute/file.db; \
    SQLAlchemy's sqlite+pysqlite:///relative.db and sqlite+pysqlite:////absolute.db)";

/// A parsed and normalized database URL.
///
/// The full URL, password included, is available only through [`DatabaseUrl::expose`], for
/// handing to the driver. `Display`, `Debug` and
/// [`DatabaseUrl::redacted`] show the password as `***`.
///
/// Parsing accepts the spellings of sqlx and of SQLAlchemy and rewrites the latter into the
/// former; each rewrite is described by a [`Normalization`] in [`DatabaseUrl::normalizations`]:
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
    pub(super) normalizations: Vec<Normalization>,
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

    /// Each change made to the URL as written, for the caller to log (`Display` is a sentence).
    pub fn normalizations(&self) -> &[Normalization] {
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
                    notes.push(Normalization::Scheme {
                        written: scheme_written.to_owned(),
                        to: backend,
                        driver: driver.map(str::to_owned),
                    });
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
                    Some(_) => {}
                }
                if scheme_written != "sqlite" {
                    notes.push(Normalization::Scheme {
                        written: scheme_written.to_owned(),
                        to: Backend::Sqlite,
                        driver: driver.map(str::to_owned),
                    });
                }
                // A `+driver` says the URL is SQLAlchemy's, and so are its slash conventions.
                let sqlite =
                    parse_sqlite(rest, driver.is_some(), notes).map_err(|reason| UrlProblem {
                        shown: shown(),
                        reason,
                    })?;
                Ok(DatabaseUrl::sqlite(sqlite))
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

impl DatabaseUrl {
    /// A SQLite URL as `sqlite.rs` read it. It has no password to redact.
    fn sqlite(parsed: SqliteUrl) -> DatabaseUrl {
        DatabaseUrl {
            redacted: parsed.url.clone(),
            url: parsed.url,
            backend: Backend::Sqlite,
            ssl_mode: None,
            pgbouncer: None,
            in_memory: parsed.in_memory,
            normalizations: parsed.notes,
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

/// Parses the part after `postgres:` or `mysql:`.
fn parse_server(
    backend: Backend,
    rest: &str,
    mut notes: Vec<Normalization>,
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
        notes.push(Normalization::PgBouncerParam {
            param: pair.raw.to_owned(),
            mode: pgbouncer,
        });
    }
    if let Some((mode, written)) = &ssl {
        notes.push(Normalization::SslParam {
            param: written.clone(),
            mode: *mode,
        });
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
                    notes.push(Normalization::ParamRenamed {
                        from: pair.key.clone(),
                        to: dashed,
                    });
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

#[cfg(test)]
mod tests {
    use super::*;

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
