//! `TestDb`: one isolated database per test, on whichever backend `DATABASE_URL` names.
//!
//! On PostgreSQL and MySQL/MariaDB each test gets a database of its own on the server
//! (`ops_t_<test>_<pid>_<counter>`), so tests run in parallel without seeing each other's tables
//! and a failed run leaves nothing that breaks the next one. On SQLite each test gets a fresh file
//! in a directory of its own. The database is dropped by [`TestDb::cleanup`], or, if the test
//! panicked before calling it, by `Drop` on a thread of its own.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection};
use sqlx::Connection;

use crate::{Backend, DATABASE_URL, STEP_TIMEOUT, backend, bounded, database_url, redact};

/// How long best-effort cleanup in `Drop` may take before it gives up.
const DROP_CLEANUP_TIMEOUT: Duration = Duration::from_secs(15);

/// Distinguishes the databases of tests with the same name in one process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// An isolated database for one test.
#[derive(Debug)]
pub struct TestDb {
    /// The URL of the isolated database, for `Db::connect` and friends. Behind PgBouncer
    /// (`DATABASE_URL` with `?pgbouncer=true`) it goes through the pooler and keeps the parameter.
    pub url: String,
    /// The URL of the isolated database on the server itself, bypassing any pooler: what
    /// [`TestDb::admin`] uses for setup and assertions. Equal to `url` without a pooler.
    pub direct_url: String,
    /// The backend it lives on.
    pub backend: Backend,
    /// The database's name on the server, or the SQLite file's stem.
    pub name: String,
    /// The server URL (PostgreSQL and MySQL only, bypassing any pooler), used to create and drop.
    server_url: Option<String>,
    /// The directory holding the SQLite file (SQLite only).
    sqlite_dir: Option<PathBuf>,
    /// Set once the database was dropped, so `Drop` does nothing.
    cleaned: bool,
}

impl TestDb {
    /// Creates an isolated database for the test `test_name` on the current backend.
    ///
    /// # Panics
    ///
    /// When `DATABASE_URL` names a server that cannot be reached or refuses to create the
    /// database: a test run against a server must never pass by skipping silently.
    pub async fn new(test_name: &str) -> TestDb {
        let backend = backend();
        let name = format!(
            "ops_t_{}_{}_{}",
            sanitize(test_name),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(&name);
                // A directory left by an earlier process with the same pid is stale.
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).unwrap_or_else(|err| {
                    panic!("cannot create the SQLite test directory {dir:?}: {err}")
                });
                let file = dir.join(format!("{name}.sqlite"));
                TestDb {
                    // `sqlite:///` then an absolute path: four slashes, absolute to sqlx and in
                    // SQLAlchemy's reading alike.
                    url: format!("sqlite:///{}?mode=rwc", file.display()),
                    direct_url: format!("sqlite:///{}?mode=rwc", file.display()),
                    backend,
                    name,
                    server_url: None,
                    sqlite_dir: Some(dir),
                    cleaned: false,
                }
            }
            Backend::Postgres | Backend::MySql => {
                let server_url = database_url().unwrap_or_else(|| {
                    panic!("{DATABASE_URL} names no server although the backend is {backend}")
                });
                let url = with_database(&server_url, &name);
                // Through PgBouncer, databases are created and dropped, and tests set up and
                // check their data, on the server itself: the pooler is what is under test.
                let server_url = crate::direct_server_url(&server_url);
                let direct_url = with_database(&server_url, &name);
                let db = TestDb {
                    url,
                    direct_url,
                    backend,
                    name,
                    server_url: Some(server_url),
                    sqlite_dir: None,
                    cleaned: false,
                };
                db.create_on_server().await;
                db
            }
        }
    }

    /// A plain SeaORM connection (a small pool) to the isolated database, for setup and
    /// assertions. It always connects to the server directly, never through a pooler.
    ///
    /// # Panics
    ///
    /// When the database cannot be reached within [`STEP_TIMEOUT`].
    pub async fn admin(&self) -> DatabaseConnection {
        let mut options = ConnectOptions::new(self.direct_url.clone());
        options
            .max_connections(5)
            .acquire_timeout(Duration::from_secs(10))
            .sqlx_logging(false);
        match bounded(
            "connecting to the test database",
            STEP_TIMEOUT,
            Database::connect(options),
        )
        .await
        {
            Ok(conn) => conn,
            Err(err) => panic!(
                "cannot connect to the test database {}: {err}; check that the {} server is \
                 running",
                redact(&self.direct_url),
                self.backend
            ),
        }
    }

    /// The URL of the server (`None` on SQLite): `DATABASE_URL`, or behind PgBouncer the server
    /// behind it (see [`crate::direct_server_url`]).
    pub fn server_url(&self) -> Option<&str> {
        self.server_url.as_deref()
    }

    /// Drops the isolated database (or removes the SQLite files).
    ///
    /// # Panics
    ///
    /// When the database cannot be dropped within [`STEP_TIMEOUT`], so leaks are noticed.
    pub async fn cleanup(mut self) {
        self.cleaned = true;
        let plan = self.plan();
        if let Err(err) = bounded("dropping the test database", STEP_TIMEOUT, plan.run()).await {
            panic!("{err}");
        }
    }

    async fn create_on_server(&self) {
        let plan = self.plan();
        let server = plan.server_url.as_deref().unwrap_or_default();
        let result = bounded("creating the test database", STEP_TIMEOUT, async {
            match plan.backend {
                Backend::Postgres => {
                    let mut conn = connect_pg(server).await?;
                    let sql = format!(
                        "DROP DATABASE IF EXISTS {0} WITH (FORCE); CREATE DATABASE {0}",
                        quote_pg(&plan.name)
                    );
                    // CREATE DATABASE cannot run inside a transaction, so run the statements one
                    // at a time through the simple protocol.
                    for statement in sql.split("; ") {
                        raw(&mut conn, statement).await?;
                    }
                    let _ = conn.close().await;
                }
                Backend::MySql => {
                    let mut conn = connect_mysql(server).await?;
                    raw(
                        &mut conn,
                        &format!("DROP DATABASE IF EXISTS {}", quote_my(&plan.name)),
                    )
                    .await?;
                    raw(
                        &mut conn,
                        &format!("CREATE DATABASE {}", quote_my(&plan.name)),
                    )
                    .await?;
                    let _ = conn.close().await;
                }
                Backend::Sqlite => {}
            }
            Ok::<(), String>(())
        })
        .await;
        if let Err(err) = result {
            panic!(
                "cannot create test database {} on the {} server at {DATABASE_URL}={}: {err}. \
                 Start the server, or unset {DATABASE_URL} to run the suites on SQLite",
                plan.name,
                plan.backend,
                redact(server)
            );
        }
    }

    fn plan(&self) -> CleanupPlan {
        CleanupPlan {
            backend: self.backend,
            name: self.name.clone(),
            server_url: self.server_url.clone(),
            sqlite_dir: self.sqlite_dir.clone(),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        // The test panicked or forgot `cleanup()`. Drop cannot await, and the test's runtime may
        // be shutting down, so clean up on a thread with a runtime of its own, bounded in time.
        let plan = self.plan();
        let worker = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|err| format!("cannot start a runtime for cleanup: {err}"))?;
            runtime.block_on(async {
                match tokio::time::timeout(DROP_CLEANUP_TIMEOUT, plan.run()).await {
                    Ok(result) => result,
                    Err(_) => Err(format!(
                        "dropping test database {} took longer than {DROP_CLEANUP_TIMEOUT:?}",
                        plan.name
                    )),
                }
            })
        });
        match worker.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("warning: best-effort cleanup failed: {err}"),
            Err(_) => eprintln!("warning: best-effort cleanup panicked"),
        }
    }
}

/// What is needed to drop a test database, detached from the `TestDb` so it can move to a thread.
#[derive(Debug)]
struct CleanupPlan {
    backend: Backend,
    name: String,
    server_url: Option<String>,
    sqlite_dir: Option<PathBuf>,
}

impl CleanupPlan {
    async fn run(&self) -> Result<(), String> {
        let server = self.server_url.as_deref().unwrap_or_default();
        let failed = |err: String| format!("cannot drop test database {}: {err}", self.name);
        match self.backend {
            Backend::Postgres => {
                let mut conn = connect_pg(server).await.map_err(failed)?;
                // FORCE terminates sessions a failed test left behind (PostgreSQL 13 and later).
                let sql = format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote_pg(&self.name)
                );
                raw(&mut conn, &sql).await.map_err(failed)?;
                let _ = conn.close().await;
            }
            Backend::MySql => {
                let mut conn = connect_mysql(server).await.map_err(failed)?;
                // MySQL has no FORCE: end sessions still using the database, or DROP waits for
                // their metadata locks.
                let ids: Vec<u64> = sqlx::query_scalar(
                    // MariaDB declares the id BIGINT and MySQL BIGINT UNSIGNED; the cast
                    // gives one type for both.
                    "SELECT CAST(id AS UNSIGNED) FROM information_schema.processlist \
                     WHERE db = ? AND id <> CONNECTION_ID()",
                )
                .bind(&self.name)
                .fetch_all(&mut conn)
                .await
                .map_err(|err| failed(err.to_string()))?;
                for id in ids {
                    // The session may have ended by itself in the meantime.
                    let _ = raw(&mut conn, &format!("KILL {id}")).await;
                }
                raw(
                    &mut conn,
                    &format!("DROP DATABASE IF EXISTS {}", quote_my(&self.name)),
                )
                .await
                .map_err(failed)?;
                let _ = conn.close().await;
            }
            Backend::Sqlite => {
                if let Some(dir) = &self.sqlite_dir {
                    match std::fs::remove_dir_all(dir) {
                        Ok(()) => {}
                        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                        Err(err) => return Err(failed(err.to_string())),
                    }
                }
            }
        }
        Ok(())
    }
}

async fn connect_pg(url: &str) -> Result<sqlx::PgConnection, String> {
    sqlx::PgConnection::connect(url)
        .await
        .map_err(|err| format!("cannot connect to {}: {err}", redact(url)))
}

async fn connect_mysql(url: &str) -> Result<sqlx::MySqlConnection, String> {
    sqlx::MySqlConnection::connect(url)
        .await
        .map_err(|err| format!("cannot connect to {}: {err}", redact(url)))
}

/// Runs one statement through the simple query protocol (needed for CREATE/DROP DATABASE).
async fn raw<C>(conn: &mut C, sql: &str) -> Result<(), String>
where
    for<'c> &'c mut C: sqlx::Executor<'c>,
{
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(conn)
        .await
        .map(drop)
        .map_err(|err| format!("`{sql}` failed: {err}"))
}

/// The URL with its path (the database name) replaced, keeping user, host and query.
pub(crate) fn with_database(url: &str, database: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.set_path(&format!("/{database}"));
            parsed.to_string()
        }
        Err(err) => panic!("{DATABASE_URL}={} is not a valid URL: {err}", redact(url)),
    }
}

/// A test name reduced to lowercase ASCII letters, digits and single underscores, short enough
/// that the database name stays within PostgreSQL's 63-byte identifier limit.
fn sanitize(test_name: &str) -> String {
    let mut out = String::new();
    for c in test_name.chars() {
        let c = if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '_'
        };
        if c == '_' && (out.is_empty() || out.ends_with('_')) {
            continue;
        }
        out.push(c);
        if out.len() >= 32 {
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

fn quote_pg(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_my(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitized_and_short() {
        assert_eq!(
            sanitize("classify::unique violation!"),
            "classify_unique_violation"
        );
        assert_eq!(sanitize("___"), "test");
        assert!(sanitize(&"x".repeat(100)).len() <= 32);
    }

    /// Whether the test database still exists, seen from a fresh administrative connection.
    async fn exists(plan: &CleanupPlan) -> bool {
        let server = plan.server_url.as_deref().unwrap_or_default();
        match plan.backend {
            Backend::Postgres => {
                let mut conn = connect_pg(server).await.expect("connect");
                let n: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
                        .bind(&plan.name)
                        .fetch_one(&mut conn)
                        .await
                        .expect("query pg_database");
                n > 0
            }
            Backend::MySql => {
                let mut conn = connect_mysql(server).await.expect("connect");
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM information_schema.schemata WHERE schema_name = ?",
                )
                .bind(&plan.name)
                .fetch_one(&mut conn)
                .await
                .expect("query schemata");
                n > 0
            }
            Backend::Sqlite => plan.sqlite_dir.as_ref().is_some_and(|dir| dir.exists()),
        }
    }

    /// A test that panics never reaches `cleanup()`: `Drop` must still remove the database, even
    /// while a connection to it is open.
    #[tokio::test]
    async fn drop_without_cleanup_removes_the_database() {
        use sea_orm::ConnectionTrait;

        let db = TestDb::new("ctx_drop").await;
        let conn = db.admin().await;
        bounded(
            "create a table",
            STEP_TIMEOUT,
            conn.execute_unprepared("CREATE TABLE t (id INT)"),
        )
        .await
        .expect("create table");
        let plan = db.plan();
        assert!(exists(&plan).await, "the test database was not created");
        drop(db);
        assert!(!exists(&plan).await, "Drop left the test database behind");
        drop(conn);
    }

    #[test]
    fn database_is_replaced_in_url() {
        assert_eq!(
            with_database(
                "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
                "ops_t_x"
            ),
            "postgres://postgres@127.0.0.1:5432/ops_t_x?sslmode=disable"
        );
        assert_eq!(
            with_database("mysql://root@127.0.0.1:3306", "ops_t_y"),
            "mysql://root@127.0.0.1:3306/ops_t_y"
        );
    }
}
