//! [`TestDatabase`]: a database of its own for one test, created on the server `DATABASE_URL`
//! names (or a temporary SQLite file) and dropped afterwards, with the URL helpers it needs.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ops_core::ErrorCategory;

use crate::OpsError;

/// Bound on creating or dropping a test database.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Distinguishes the databases of tests in one process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Which server a test database lives on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sqlite,
    Postgres,
    MySql,
}

/// A database of its own for one test, on the server `DATABASE_URL` names, or a SQLite file in
/// a temporary directory when it is unset (or names SQLite). Dropped by
/// [`drop_database`](Self::drop_database), or on `Drop` (on a thread of its own, bounded) when
/// a panic came first.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    name: String,
    kind: Kind,
    /// `DATABASE_URL`, for creating and dropping (PostgreSQL and MySQL).
    server: Option<String>,
    /// The directory of the SQLite file.
    dir: Option<PathBuf>,
    dropped: bool,
}

impl TestDatabase {
    /// Creates a database named after `test` (`ops_test_<test>_<pid>_<n>`).
    ///
    /// # Errors
    ///
    /// When the server cannot be reached or refuses to create the database, naming the server
    /// (without its password) and what to do.
    pub async fn create(test: &str) -> Result<TestDatabase, OpsError> {
        let name = format!(
            "ops_test_{}_{}_{}",
            sanitize(test),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let server = std::env::var("DATABASE_URL")
            .ok()
            .filter(|url| !url.trim().is_empty());
        let kind = match server.as_deref() {
            None => Kind::Sqlite,
            Some(url) => kind_of(url)?,
        };
        if kind == Kind::Sqlite {
            let dir = std::env::temp_dir().join(&name);
            // A directory left by an earlier process with the same pid is stale.
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).map_err(|err| {
                config_error(format!(
                    "cannot create the SQLite test directory {}: {err}; check that the temporary \
                     directory is writable (TMPDIR)",
                    dir.display()
                ))
            })?;
            let file = dir.join(format!("{name}.sqlite"));
            return Ok(TestDatabase {
                // `sqlite:///` then an absolute path: absolute, as sqlx reads it.
                url: format!("sqlite:///{}?mode=rwc", file.display()),
                name,
                kind,
                server: None,
                dir: Some(dir),
                dropped: false,
            });
        }
        let server = server.unwrap_or_default();
        let url = with_database(&server, &name)?;
        let database = TestDatabase {
            url,
            name,
            kind,
            server: Some(server),
            dir: None,
            dropped: false,
        };
        bounded("creating", &database.name, database.create_on_server()).await?;
        Ok(database)
    }

    /// The URL of the test database, for `Db::connect`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name (the SQLite file's stem on SQLite).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database, ending any session still connected to it; on SQLite removes its
    /// files.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached or refuses.
    pub async fn drop_database(&mut self) -> Result<(), OpsError> {
        self.dropped = true;
        bounded("dropping", &self.name, self.drop_now()).await
    }

    async fn create_on_server(&self) -> Result<(), OpsError> {
        #[cfg(any(feature = "postgres", feature = "mysql"))]
        let server = self.server.as_deref().unwrap_or_default();
        match self.kind {
            #[cfg(feature = "postgres")]
            Kind::Postgres => {
                let name = quote_pg(&self.name);
                admin::postgres(
                    server,
                    &[
                        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                        format!("CREATE DATABASE {name}"),
                    ],
                )
                .await
            }
            #[cfg(feature = "mysql")]
            Kind::MySql => {
                let name = quote_my(&self.name);
                admin::mysql(
                    server,
                    None,
                    &[
                        format!("DROP DATABASE IF EXISTS {name}"),
                        format!("CREATE DATABASE {name}"),
                    ],
                )
                .await
            }
            _ => Ok(()),
        }
    }

    async fn drop_now(&self) -> Result<(), OpsError> {
        #[cfg(any(feature = "postgres", feature = "mysql"))]
        let server = self.server.as_deref().unwrap_or_default();
        match self.kind {
            #[cfg(feature = "postgres")]
            Kind::Postgres => {
                // FORCE ends sessions a leaking test left connected (PostgreSQL 13 and later).
                let sql = format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote_pg(&self.name)
                );
                admin::postgres(server, &[sql]).await
            }
            #[cfg(feature = "mysql")]
            Kind::MySql => {
                let sql = format!("DROP DATABASE IF EXISTS {}", quote_my(&self.name));
                admin::mysql(server, Some(&self.name), &[sql]).await
            }
            Kind::Sqlite => match &self.dir {
                Some(dir) => match std::fs::remove_dir_all(dir) {
                    Ok(()) => Ok(()),
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(err) => Err(config_error(format!(
                        "cannot remove the SQLite test directory {}: {err}",
                        dir.display()
                    ))),
                },
                None => Ok(()),
            },
            #[allow(unreachable_patterns)]
            _ => Ok(()),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // A panic came before `drop_database`. Drop cannot await and the test's runtime may be
        // gone, so drop the database from a thread with a runtime of its own.
        let this = TestDatabase {
            url: self.url.clone(),
            name: self.name.clone(),
            kind: self.kind,
            server: self.server.clone(),
            dir: self.dir.clone(),
            dropped: true,
        };
        let worker = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|err| err.to_string())?;
            runtime
                .block_on(bounded("dropping", &this.name, this.drop_now()))
                .map_err(|err| format!("{err:#}"))
        });
        match worker.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("warning: cannot drop test database {}: {err}", self.name),
            Err(_) => eprintln!("warning: dropping test database {} panicked", self.name),
        }
    }
}

/// Administrative statements over a plain driver connection (CREATE/DROP DATABASE cannot run in a
/// pool's transaction, and the test's own pool must not be used to drop its database).
mod admin {
    #[allow(unused_imports)]
    use super::*;

    #[cfg(feature = "postgres")]
    pub(super) async fn postgres(server: &str, statements: &[String]) -> Result<(), OpsError> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(server)
            .await
            .map_err(|err| unreachable_server(server, &err))?;
        for sql in statements {
            run(&mut conn, sql).await?;
        }
        let _ = conn.close().await;
        Ok(())
    }

    #[cfg(feature = "mysql")]
    pub(super) async fn mysql(
        server: &str,
        end_sessions_of: Option<&str>,
        statements: &[String],
    ) -> Result<(), OpsError> {
        use sqlx::Connection;
        let mut conn = sqlx::MySqlConnection::connect(server)
            .await
            .map_err(|err| unreachable_server(server, &err))?;
        if let Some(database) = end_sessions_of {
            // MySQL has no FORCE: end the sessions still using the database, or DROP waits for
            // their metadata locks.
            let ids: Vec<u64> = sqlx::query_scalar(
                "SELECT CAST(id AS UNSIGNED) FROM information_schema.processlist \
                 WHERE db = ? AND id <> CONNECTION_ID()",
            )
            .bind(database)
            .fetch_all(&mut conn)
            .await
            .map_err(|err| {
                OpsError::from(sea_orm::DbErr::Query(sea_orm::RuntimeErr::Internal(
                    err.to_string(),
                )))
            })?;
            for id in ids {
                // The session may have ended by itself in the meantime.
                let _ = run(&mut conn, &format!("KILL {id}")).await;
            }
        }
        for sql in statements {
            run(&mut conn, sql).await?;
        }
        let _ = conn.close().await;
        Ok(())
    }

    #[cfg(any(feature = "postgres", feature = "mysql"))]
    async fn run<C>(conn: &mut C, sql: &str) -> Result<(), OpsError>
    where
        for<'c> &'c mut C: sqlx::Executor<'c>,
    {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(conn)
            .await
            .map(drop)
            .map_err(|err| config_error(format!("`{sql}` failed: {err}")))
    }

    #[cfg(any(feature = "postgres", feature = "mysql"))]
    fn unreachable_server(server: &str, err: &sqlx::Error) -> OpsError {
        OpsError::new(
            ErrorCategory::Unavailable,
            format!(
                "cannot connect to DATABASE_URL={}: {err}; start the server, or unset \
                 DATABASE_URL to test on a temporary SQLite file",
                redact(server)
            ),
        )
    }
}

/// Runs an administrative step within [`ADMIN_TIMEOUT`].
async fn bounded(
    what: &str,
    name: &str,
    step: impl Future<Output = Result<(), OpsError>>,
) -> Result<(), OpsError> {
    match tokio::time::timeout(ADMIN_TIMEOUT, step).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(OpsError::new(
            err.category(),
            format!("{what} test database {name}: {err:#}"),
        )),
        Err(_) => Err(OpsError::new(
            ErrorCategory::Unavailable,
            format!("{what} test database {name} took longer than {ADMIN_TIMEOUT:?}"),
        )),
    }
}

fn config_error(detail: String) -> OpsError {
    OpsError::new(ErrorCategory::Configuration, detail)
}

/// The backend of `DATABASE_URL`, if this build of ops-sea has it.
fn kind_of(url: &str) -> Result<Kind, OpsError> {
    let scheme = url
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let (kind, feature) = match scheme.as_str() {
        "sqlite" => return Ok(Kind::Sqlite),
        "postgres" | "postgresql" => (Kind::Postgres, "postgres"),
        "mysql" | "mariadb" => (Kind::MySql, "mysql"),
        _ => {
            return Err(config_error(format!(
                "DATABASE_URL={} names no backend ops supports; use postgres://, mysql:// or \
                 sqlite:, or unset it to test on a temporary SQLite file",
                redact(url)
            )));
        }
    };
    let built = match kind {
        Kind::Postgres => cfg!(feature = "postgres"),
        Kind::MySql => cfg!(feature = "mysql"),
        Kind::Sqlite => true,
    };
    if built {
        Ok(kind)
    } else {
        Err(config_error(format!(
            "DATABASE_URL={} needs the `{feature}` feature of ops-sea: enable it in Cargo.toml",
            redact(url)
        )))
    }
}

/// The URL with its path (the database) replaced, keeping user, host and query.
fn with_database(server: &str, database: &str) -> Result<String, OpsError> {
    let mut parsed = url::Url::parse(server).map_err(|err| {
        config_error(format!(
            "DATABASE_URL={} is not a valid URL: {err}",
            redact(server)
        ))
    })?;
    parsed.set_path(&format!("/{database}"));
    Ok(parsed.to_string())
}

/// A URL with its password shown as `***`.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(an unparsable URL)".to_owned(),
    }
}

/// A test name reduced to lowercase ASCII letters, digits and single underscores, short enough
/// for PostgreSQL's 63-byte identifiers with the prefix and suffixes.
fn sanitize(test: &str) -> String {
    let mut out = String::new();
    for c in test.chars() {
        let c = if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '_'
        };
        if c == '_' && (out.is_empty() || out.ends_with('_')) {
            continue;
        }
        out.push(c);
        if out.len() >= 28 {
            break;
        }
    }
    let trimmed = out.trim_end_matches('_');
    if trimmed.is_empty() {
        "test".to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(feature = "postgres")]
fn quote_pg(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(feature = "mysql")]
fn quote_my(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_identifiers() {
        assert_eq!(sanitize("creates a Cake!"), "creates_a_cake");
        assert_eq!(sanitize("___"), "test");
        let long = format!(
            "ops_test_{}_{}_{}",
            sanitize(&"x".repeat(200)),
            u32::MAX,
            999_999
        );
        assert!(long.len() <= 63, "{long}");
    }

    #[test]
    fn urls_are_redacted_and_retargeted() {
        assert_eq!(
            redact("postgres://u:secret@127.0.0.1:5432/test"),
            "postgres://u:***@127.0.0.1:5432/test"
        );
        assert_eq!(
            with_database("mysql://root@127.0.0.1:3306/test?ssl-mode=disabled", "t1").unwrap(),
            "mysql://root@127.0.0.1:3306/t1?ssl-mode=disabled"
        );
        let err = kind_of("oracle://x").unwrap_err();
        assert!(err.to_string().contains("names no backend"), "{err}");
    }
}
