//! Cross-backend integration suites and the test context they share.
//!
//! Every suite in `tests/tests/` runs against the backend named by `DATABASE_URL`:
//!
//! ```text
//! cargo test -p ops-tests                                                   # SQLite
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo test -p ops-tests
//! DATABASE_URL=mysql://root@127.0.0.1:3306/test cargo test -p ops-tests     # MySQL or MariaDB
//! ```
//!
//! Behind PgBouncer (started by `.ci/pgbouncer.sh start`), the suites that support it run with
//! `DATABASE_URL=postgres://postgres@127.0.0.1:6432/test?pgbouncer=true`: the code under test goes
//! through the pooler, while per-test databases are created, set up and checked on the server
//! behind it ([`direct_server_url`]).
//!
//! All three drivers are compiled in, so one build serves every backend. A test gets its own
//! database from [`TestDb::new`], checks backend-specific preconditions with
//! [`require_backend`], and bounds anything that may hang with [`bounded`].

use std::fmt;
use std::future::IntoFuture;
use std::time::Duration;

pub mod bank;
mod ctx;
pub mod fixtures;
pub mod metrics;
pub mod proxy;
pub mod realworld;

pub use ctx::TestDb;

/// The environment variable naming the database server the suites run against.
pub const DATABASE_URL: &str = "DATABASE_URL";

/// How long any single step of a test may take before it is declared hung.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// A database backend the suites can run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Embedded SQLite: the default when `DATABASE_URL` is unset.
    Sqlite,
    /// PostgreSQL, from a `postgres://` or `postgresql://` URL.
    Postgres,
    /// MySQL or MariaDB, from a `mysql://` or `mariadb://` URL.
    MySql,
}

impl Backend {
    /// The backend a URL's scheme names, or `None` for a scheme no suite supports.
    pub fn from_url(url: &str) -> Option<Backend> {
        let scheme = url.split_once(':')?.0.to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Some(Backend::Sqlite),
            "postgres" | "postgresql" => Some(Backend::Postgres),
            "mysql" | "mariadb" => Some(Backend::MySql),
            _ => None,
        }
    }

    /// What to set `DATABASE_URL` to in order to run tests that need this backend.
    fn how_to_select(self) -> &'static str {
        match self {
            Backend::Sqlite => "unset DATABASE_URL to run on SQLite",
            Backend::Postgres => "set DATABASE_URL to a postgres:// URL",
            Backend::MySql => "set DATABASE_URL to a mysql:// URL",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
            Backend::MySql => "MySQL/MariaDB",
        })
    }
}

/// The value of `DATABASE_URL`, or `None` when it is unset or empty.
pub fn database_url() -> Option<String> {
    std::env::var(DATABASE_URL)
        .ok()
        .filter(|url| !url.is_empty())
}

/// The environment variable naming the server behind a pooler, when `DATABASE_URL` goes through
/// PgBouncer. Unset, the server is taken to be on the pooler's host at port 5432.
pub const DATABASE_DIRECT_URL: &str = "DATABASE_DIRECT_URL";

/// Whether a URL asks for PgBouncer transaction-pooling mode (`pgbouncer=true` in its query).
pub fn is_pgbouncer_url(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|parsed| {
        parsed
            .query_pairs()
            .any(|(key, value)| key == "pgbouncer" && value.eq_ignore_ascii_case("true"))
    })
}

/// Whether the suites run through PgBouncer (`DATABASE_URL` carries `pgbouncer=true`).
pub fn via_pgbouncer() -> bool {
    database_url().is_some_and(|url| is_pgbouncer_url(&url))
}

/// The URL of the database server itself for a `DATABASE_URL` that may go through PgBouncer:
/// [`DATABASE_DIRECT_URL`] when set, otherwise the same URL on port 5432 without the `pgbouncer`
/// parameter. A URL without `pgbouncer=true` is returned as it is.
pub fn direct_server_url(url: &str) -> String {
    if !is_pgbouncer_url(url) {
        return url.to_owned();
    }
    if let Some(direct) = std::env::var(DATABASE_DIRECT_URL)
        .ok()
        .filter(|u| !u.is_empty())
    {
        return direct;
    }
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_owned();
    };
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(key, _)| key != "pgbouncer")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    parsed.set_query(None);
    if !kept.is_empty() {
        parsed.query_pairs_mut().extend_pairs(kept);
    }
    // Setting a port only fails for URLs that cannot have one, and a postgres:// URL can.
    let _ = parsed.set_port(Some(5432));
    parsed.to_string()
}

/// The backend the suites run against: from `DATABASE_URL`'s scheme, SQLite when it is unset.
///
/// # Panics
///
/// When `DATABASE_URL` has a scheme no suite supports: a typo must not quietly run SQLite.
pub fn backend() -> Backend {
    match database_url() {
        None => Backend::Sqlite,
        Some(url) => Backend::from_url(&url).unwrap_or_else(|| {
            panic!(
                "{DATABASE_URL}={} has an unsupported scheme; use postgres://, mysql:// or \
                 sqlite:, or unset it to run on SQLite",
                redact(&url)
            )
        }),
    }
}

/// Whether the current backend is `backend`. When it is not, prints `skipped: ...` so that a
/// skipped test is visible in the output, and returns `false`; the test should then return.
pub fn require_backend(backend: Backend, test: &str) -> bool {
    let current = self::backend();
    if current == backend {
        return true;
    }
    skipped(format_args!(
        "{test} needs {backend} ({}); running on {current}",
        backend.how_to_select()
    ));
    false
}

/// Whether the current backend is a server (PostgreSQL or MySQL/MariaDB). On SQLite, prints
/// `skipped: ...` and returns `false`; the test should then return.
pub fn require_server(test: &str) -> bool {
    if backend() != Backend::Sqlite {
        return true;
    }
    skipped(format_args!(
        "{test} needs a database server (set DATABASE_URL to a postgres:// or mysql:// URL); \
         running on SQLite"
    ));
    false
}

/// Reports a skipped test on standard error directly: the test harness captures `eprintln!`
/// output of passing tests, and a skip must be visible in a normal run.
fn skipped(reason: fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "skipped: {reason}");
}

/// Awaits `fut`, panicking with `what` if it takes longer than `limit`, so that a hung server or
/// a lock that is never released fails the test instead of stalling the run.
pub async fn bounded<F: IntoFuture>(what: &str, limit: Duration, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(output) => output,
        Err(_) => panic!("{what} did not finish within {limit:?}"),
    }
}

/// A URL with its password replaced, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Setting a password only fails for URLs that cannot have one, and this one has one.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_from_scheme() {
        assert_eq!(
            Backend::from_url("postgres://u@127.0.0.1/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::from_url("postgresql://u@127.0.0.1/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::from_url("mysql://root@127.0.0.1/db"),
            Some(Backend::MySql)
        );
        assert_eq!(Backend::from_url("sqlite::memory:"), Some(Backend::Sqlite));
        assert_eq!(Backend::from_url("mssql://x"), None);
        assert_eq!(Backend::from_url("nonsense"), None);
    }

    #[test]
    fn direct_url_bypasses_the_pooler() {
        let via = "postgres://postgres@127.0.0.1:6432/test?pgbouncer=true";
        assert!(is_pgbouncer_url(via));
        assert!(!is_pgbouncer_url("postgres://postgres@127.0.0.1:5432/test"));
        if std::env::var(DATABASE_DIRECT_URL).is_err() {
            assert_eq!(
                direct_server_url(via),
                "postgres://postgres@127.0.0.1:5432/test"
            );
        }
        assert_eq!(
            direct_server_url("postgres://postgres@127.0.0.1:5432/test?sslmode=disable"),
            "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
        );
    }

    #[test]
    fn redact_hides_password() {
        assert_eq!(
            redact("postgres://u:secret@127.0.0.1:5432/db"),
            "postgres://u:***@127.0.0.1:5432/db"
        );
        assert_eq!(
            redact("mysql://root@127.0.0.1/db"),
            "mysql://root@127.0.0.1/db"
        );
    }
}
