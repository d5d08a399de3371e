//! The classifier against real servers: every test provokes one error through SeaORM and checks
//! the category, the backend's code and (on PostgreSQL) the constraint's name.
//!
//! Run once per backend: without `DATABASE_URL` (SQLite), with a `postgres://` URL and with a
//! `mysql://` URL. Tests for another backend print `skipped: ...` and pass.

use std::sync::Arc;
use std::time::Duration;

use ops_sea::classify::{classify, classify_sqlx};
use ops_sea::{Classification, ErrorCategory, IntegrityKind, RetryReason};
use ops_tests::{Backend, STEP_TIMEOUT, TestDb, backend, bounded, require_backend, require_server};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, IsolationLevel,
    RuntimeErr, Statement, TransactionTrait,
};

/// The whole of one test, including lock waits the server resolves after a second or so.
const TEST_LIMIT: Duration = Duration::from_secs(60);

fn integrity(kind: IntegrityKind) -> ErrorCategory {
    ErrorCategory::Integrity(kind)
}

fn retry(reason: RetryReason) -> ErrorCategory {
    ErrorCategory::Retryable(reason)
}

/// The code expected on the current backend.
fn code(postgres: &'static str, mysql: &'static str, sqlite: &'static str) -> &'static str {
    match backend() {
        Backend::Postgres => postgres,
        Backend::MySql => mysql,
        Backend::Sqlite => sqlite,
    }
}

/// Classifies `err`, checks category and code, and returns the classification for more checks.
#[track_caller]
fn expect(err: &DbErr, category: ErrorCategory, code: Option<&str>) -> Classification {
    let got = classify(err);
    assert_eq!(got.category, category, "category of {err:?}");
    assert_eq!(got.code.as_deref(), code, "code of {err:?}");
    got
}

/// Runs a statement that must fail and returns its error.
async fn fails<C: ConnectionTrait>(conn: &C, sql: &str) -> DbErr {
    match bounded(sql, STEP_TIMEOUT, conn.execute_unprepared(sql)).await {
        Ok(_) => panic!("`{sql}` succeeded but was expected to fail"),
        Err(err) => err,
    }
}

/// Runs setup statements that must succeed.
async fn run<C: ConnectionTrait>(conn: &C, statements: &[&str]) {
    for sql in statements {
        if let Err(err) = bounded(sql, STEP_TIMEOUT, conn.execute_unprepared(sql)).await {
            panic!("setup statement `{sql}` failed: {err}");
        }
    }
}

/// Reads one integer from a query's first row and column.
async fn scalar<C: ConnectionTrait>(conn: &C, sql: &str) -> i64 {
    let stmt = Statement::from_string(conn.get_database_backend(), sql.to_owned());
    let row = bounded(sql, STEP_TIMEOUT, conn.query_one_raw(stmt))
        .await
        .unwrap_or_else(|err| panic!("`{sql}` failed: {err}"))
        .unwrap_or_else(|| panic!("`{sql}` returned no row"));
    match row.try_get_by_index::<i64>(0) {
        Ok(value) => value,
        // MySQL reports connection ids and counts as unsigned.
        Err(_) => row
            .try_get_by_index::<u64>(0)
            .map(|v| v as i64)
            .unwrap_or_else(|err| panic!("`{sql}` returned no integer: {err}")),
    }
}

/// A test's database and its admin connection, dropped together at the end.
struct Fixture {
    db: TestDb,
    conn: DatabaseConnection,
}

impl Fixture {
    async fn new(name: &str) -> Fixture {
        let db = TestDb::new(name).await;
        let conn = db.admin().await;
        Fixture { db, conn }
    }

    /// A second, independent pool on the same database.
    async fn other(&self) -> DatabaseConnection {
        self.db.admin().await
    }

    async fn finish(self) {
        let _ = self.conn.close().await;
        self.db.cleanup().await;
    }
}

const PARENT: &str = "CREATE TABLE parent (id INT PRIMARY KEY, email VARCHAR(50) NOT NULL, \
                      CONSTRAINT parent_email_key UNIQUE (email))";
const CHILD: &str = "CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, \
                     CONSTRAINT child_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id))";

#[tokio::test]
async fn unique_violation() {
    let f = Fixture::new("classify_unique").await;
    bounded("unique_violation", TEST_LIMIT, async {
        run(
            &f.conn,
            &[PARENT, "INSERT INTO parent VALUES (1, 'a@example.com')"],
        )
        .await;

        let err = fails(&f.conn, "INSERT INTO parent VALUES (2, 'a@example.com')").await;
        let got = expect(
            &err,
            integrity(IntegrityKind::Unique),
            Some(code("23505", "1062", "2067")),
        );
        if backend() == Backend::Postgres {
            assert_eq!(got.constraint.as_deref(), Some("parent_email_key"));
        } else {
            assert_eq!(
                got.constraint, None,
                "no structured constraint name off PostgreSQL"
            );
        }

        // A duplicate primary key is a unique violation too; SQLite gives it its own code.
        let err = fails(&f.conn, "INSERT INTO parent VALUES (1, 'b@example.com')").await;
        let got = expect(
            &err,
            integrity(IntegrityKind::Unique),
            Some(code("23505", "1062", "1555")),
        );
        if backend() == Backend::Postgres {
            assert_eq!(got.constraint.as_deref(), Some("parent_pkey"));
        }
    })
    .await;
    f.finish().await;
}

#[tokio::test]
async fn foreign_key_violation() {
    let f = Fixture::new("classify_fk").await;
    bounded("foreign_key_violation", TEST_LIMIT, async {
        run(
            &f.conn,
            &[
                PARENT,
                CHILD,
                "INSERT INTO parent VALUES (1, 'a@example.com')",
            ],
        )
        .await;

        // A child row that refers to a missing parent.
        let err = fails(&f.conn, "INSERT INTO child VALUES (1, 99)").await;
        let got = expect(
            &err,
            integrity(IntegrityKind::ForeignKey),
            Some(code("23503", "1452", "787")),
        );
        if backend() == Backend::Postgres {
            assert_eq!(got.constraint.as_deref(), Some("child_parent_fk"));
        }

        // A parent row that is still referred to.
        run(&f.conn, &["INSERT INTO child VALUES (1, 1)"]).await;
        let err = fails(&f.conn, "DELETE FROM parent WHERE id = 1").await;
        let got = expect(
            &err,
            integrity(IntegrityKind::ForeignKey),
            Some(code("23503", "1451", "787")),
        );
        if backend() == Backend::Postgres {
            assert_eq!(got.constraint.as_deref(), Some("child_parent_fk"));
        }
    })
    .await;
    f.finish().await;
}

#[tokio::test]
async fn not_null_violation() {
    let f = Fixture::new("classify_not_null").await;
    bounded("not_null_violation", TEST_LIMIT, async {
        run(&f.conn, &[PARENT]).await;
        let err = fails(&f.conn, "INSERT INTO parent VALUES (1, NULL)").await;
        expect(
            &err,
            integrity(IntegrityKind::NotNull),
            Some(code("23502", "1048", "1299")),
        );
    })
    .await;
    f.finish().await;
}

#[tokio::test]
async fn check_violation() {
    let f = Fixture::new("classify_check").await;
    bounded("check_violation", TEST_LIMIT, async {
        run(
            &f.conn,
            &[
                "CREATE TABLE account (id INT PRIMARY KEY, balance INT NOT NULL, \
               CONSTRAINT balance_nonneg CHECK (balance >= 0))",
            ],
        )
        .await;
        let err = fails(&f.conn, "INSERT INTO account VALUES (1, -5)").await;
        // MariaDB reports a failed CHECK as 4025; MySQL 8 would report 3819.
        let got = expect(
            &err,
            integrity(IntegrityKind::Check),
            Some(code("23514", "4025", "275")),
        );
        if backend() == Backend::Postgres {
            assert_eq!(got.constraint.as_deref(), Some("balance_nonneg"));
        }
    })
    .await;
    f.finish().await;
}

#[tokio::test]
async fn exclusion_violation() {
    if !require_backend(Backend::Postgres, "exclusion_violation") {
        return;
    }
    let f = Fixture::new("classify_exclusion").await;
    bounded("exclusion_violation", TEST_LIMIT, async {
        // Range types have GiST operator classes built in: no btree_gist extension is needed.
        run(
            &f.conn,
            &[
                "CREATE TABLE booking (id INT PRIMARY KEY, during int4range NOT NULL, \
                 CONSTRAINT booking_no_overlap EXCLUDE USING gist (during WITH &&))",
                "INSERT INTO booking VALUES (1, '[1,10)')",
            ],
        )
        .await;
        let err = fails(&f.conn, "INSERT INTO booking VALUES (2, '[5,15)')").await;
        let got = expect(&err, integrity(IntegrityKind::Exclusion), Some("23P01"));
        assert_eq!(got.constraint.as_deref(), Some("booking_no_overlap"));
    })
    .await;
    f.finish().await;
}

#[tokio::test]
async fn syntax_error_is_programming() {
    let f = Fixture::new("classify_syntax").await;
    bounded("syntax_error_is_programming", TEST_LIMIT, async {
        let err = fails(&f.conn, "SELEC 1").await;
        assert!(matches!(err, DbErr::Exec(_)), "{err:?}");
        expect(
            &err,
            ErrorCategory::Programming,
            Some(code("42601", "1064", "1")),
        );
    })
    .await;
    f.finish().await;
}

#[tokio::test]
async fn unknown_table_is_programming() {
    let f = Fixture::new("classify_unknown_table").await;
    bounded("unknown_table_is_programming", TEST_LIMIT, async {
        // Through the query path this time: SeaORM wraps the driver error in `DbErr::Query`.
        let stmt =
            Statement::from_string(f.conn.get_database_backend(), "SELECT * FROM no_such_table");
        let err = match bounded("query", STEP_TIMEOUT, f.conn.query_all_raw(stmt)).await {
            Ok(_) => panic!("a query on a missing table succeeded"),
            Err(err) => err,
        };
        assert!(matches!(err, DbErr::Query(_)), "{err:?}");
        expect(
            &err,
            ErrorCategory::Programming,
            Some(code("42P01", "1146", "1")),
        );
    })
    .await;
    f.finish().await;
}

/// Creates `t (id, v)` with rows 1 and 2, for the locking tests.
async fn two_rows(conn: &DatabaseConnection) {
    run(
        conn,
        &[
            "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL)",
            "INSERT INTO t VALUES (1, 0), (2, 0)",
        ],
    )
    .await;
}

#[tokio::test]
async fn deadlock() {
    if !require_server("deadlock") {
        return;
    }
    let f = Fixture::new("classify_deadlock").await;
    bounded("deadlock", TEST_LIMIT, async {
        two_rows(&f.conn).await;
        let a = f.conn.begin().await.expect("begin a");
        let b = f.conn.begin().await.expect("begin b");
        run(&a, &["UPDATE t SET v = v + 1 WHERE id = 1"]).await;
        run(&b, &["UPDATE t SET v = v + 1 WHERE id = 2"]).await;

        // Each now waits for the row the other holds; the server picks one victim and the other
        // proceeds once the victim's locks are released.
        let (ra, rb) = tokio::join!(
            bounded(
                "a locks 2",
                STEP_TIMEOUT,
                a.execute_unprepared("UPDATE t SET v = v + 1 WHERE id = 2")
            ),
            bounded(
                "b locks 1",
                STEP_TIMEOUT,
                b.execute_unprepared("UPDATE t SET v = v + 1 WHERE id = 1")
            ),
        );
        let err = match (ra, rb) {
            (Err(err), Ok(_)) | (Ok(_), Err(err)) => err,
            (Ok(_), Ok(_)) => panic!("both sides of a deadlock succeeded"),
            (Err(ea), Err(eb)) => panic!("both sides of a deadlock failed: {ea} / {eb}"),
        };
        expect(
            &err,
            retry(RetryReason::Deadlock),
            Some(code("40P01", "1213", "")),
        );
        let _ = a.rollback().await;
        let _ = b.rollback().await;
    })
    .await;
    f.finish().await;
}

#[tokio::test]
async fn serialization_failure() {
    if !require_backend(Backend::Postgres, "serialization_failure") {
        return;
    }
    let f = Fixture::new("classify_serialization").await;
    bounded("serialization_failure", TEST_LIMIT, async {
        two_rows(&f.conn).await;
        let a = f
            .conn
            .begin_with_config(Some(IsolationLevel::Serializable), None)
            .await
            .expect("begin serializable");
        // The first read fixes a's snapshot.
        assert_eq!(scalar(&a, "SELECT v::int8 FROM t WHERE id = 1").await, 0);
        // Another transaction changes the row and commits.
        run(&f.conn, &["UPDATE t SET v = 10 WHERE id = 1"]).await;
        // a may not overwrite a change it cannot see.
        let err = fails(&a, "UPDATE t SET v = v + 1 WHERE id = 1").await;
        expect(
            &err,
            retry(RetryReason::SerializationFailure),
            Some("40001"),
        );
        let _ = a.rollback().await;
    })
    .await;
    f.finish().await;
}

#[tokio::test]
async fn lock_timeout() {
    if !require_server("lock_timeout") {
        return;
    }
    let f = Fixture::new("classify_lock_timeout").await;
    bounded("lock_timeout", TEST_LIMIT, async {
        two_rows(&f.conn).await;
        let holder = f.conn.begin().await.expect("begin holder");
        run(&holder, &["UPDATE t SET v = 1 WHERE id = 1"]).await;

        let waiter = f.conn.begin().await.expect("begin waiter");
        let setting = match backend() {
            Backend::Postgres => "SET LOCAL lock_timeout = '200ms'",
            // The smallest InnoDB lock wait is one second.
            _ => "SET SESSION innodb_lock_wait_timeout = 1",
        };
        run(&waiter, &[setting]).await;
        let err = fails(&waiter, "UPDATE t SET v = 2 WHERE id = 1").await;
        expect(
            &err,
            retry(RetryReason::LockTimeout),
            Some(code("55P03", "1205", "")),
        );

        let _ = waiter.rollback().await;
        let _ = holder.rollback().await;
    })
    .await;
    f.finish().await;
}

#[tokio::test]
async fn statement_timeout() {
    if !require_server("statement_timeout") {
        return;
    }
    let f = Fixture::new("classify_statement_timeout").await;
    bounded("statement_timeout", TEST_LIMIT, async {
        let err = match backend() {
            Backend::Postgres => {
                // SET LOCAL keeps the setting on this transaction's connection only.
                let txn = f.conn.begin().await.expect("begin");
                run(&txn, &["SET LOCAL statement_timeout = '100ms'"]).await;
                let err = fails(&txn, "SELECT pg_sleep(5)").await;
                let _ = txn.rollback().await;
                err
            }
            _ => {
                fails(
                    &f.conn,
                    "SET STATEMENT max_statement_time = 0.1 FOR SELECT SLEEP(5)",
                )
                .await
            }
        };
        expect(
            &err,
            retry(RetryReason::StatementTimeout),
            Some(code("57014", "1969", "")),
        );
    })
    .await;
    f.finish().await;
}

#[tokio::test]
async fn connection_lost() {
    if !require_server("connection_lost") {
        return;
    }
    let f = Fixture::new("classify_connection_lost").await;
    bounded("connection_lost", TEST_LIMIT, async {
        // A transaction pins one connection, so the statement after the kill must use it.
        let victim = f.conn.begin().await.expect("begin");
        let (id_sql, kill, alive) = match backend() {
            Backend::Postgres => (
                "SELECT pg_backend_pid()::int8",
                "SELECT pg_terminate_backend",
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ",
            ),
            _ => (
                "SELECT CONNECTION_ID()",
                "KILL ",
                "SELECT count(*) FROM information_schema.processlist WHERE id = ",
            ),
        };
        let id = scalar(&victim, id_sql).await;
        let kill_sql = match backend() {
            Backend::Postgres => format!("{kill}({id})"),
            _ => format!("{kill}{id}"),
        };
        let other = f.other().await;
        run(&other, &[kill_sql.as_str()]).await;
        // Wait until the server has really ended the session, so the next statement meets a
        // closed socket rather than racing the kill.
        let alive_sql = format!("{alive}{id}");
        bounded("the killed session to end", STEP_TIMEOUT, async {
            while scalar(&other, &alive_sql).await > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;

        // Connection loss arrives as an execution error, not as `Conn`. PostgreSQL first delivers
        // the FATAL 57P01 it wrote before closing the socket; MariaDB just closes it.
        let err = fails(&victim, "SELECT 1").await;
        assert!(matches!(err, DbErr::Exec(_)), "{err:?}");
        let first_code = match backend() {
            Backend::Postgres => Some("57P01"),
            _ => None,
        };
        expect(&err, retry(RetryReason::ConnectionLost), first_code);
        // From then on the socket is at end of stream: an I/O error wrapped in `Exec`.
        let err = fails(&victim, "SELECT 1").await;
        assert!(
            matches!(&err, DbErr::Exec(RuntimeErr::SqlxError(e)) if matches!(**e, sqlx::Error::Io(_))),
            "{err:?}"
        );
        expect(&err, retry(RetryReason::ConnectionLost), None);
        let _ = victim.rollback().await;
        let _ = other.close().await;
    })
    .await;
    f.finish().await;
}

#[tokio::test]
async fn sqlite_busy() {
    if !require_backend(Backend::Sqlite, "sqlite_busy") {
        return;
    }
    let f = Fixture::new("classify_sqlite_busy").await;
    bounded("sqlite_busy", TEST_LIMIT, async {
        run(
            &f.conn,
            &["CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL)"],
        )
        .await;
        // Another pool that gives up on a lock at once instead of waiting five seconds.
        let mut options = ConnectOptions::new(f.db.url.clone());
        options
            .max_connections(1)
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(|o| o.busy_timeout(Duration::ZERO));
        let impatient = Database::connect(options).await.expect("connect impatient");

        let holder = f.conn.begin().await.expect("begin holder");
        run(&holder, &["INSERT INTO t VALUES (1, 1)"]).await;

        let err = fails(&impatient, "INSERT INTO t VALUES (2, 2)").await;
        expect(&err, retry(RetryReason::Busy), Some("5"));

        let _ = holder.rollback().await;
        let _ = impatient.close().await;
    })
    .await;
    f.finish().await;
}

#[tokio::test]
async fn sqlite_busy_snapshot() {
    if !require_backend(Backend::Sqlite, "sqlite_busy_snapshot") {
        return;
    }
    let f = Fixture::new("classify_sqlite_snapshot").await;
    bounded("sqlite_busy_snapshot", TEST_LIMIT, async {
        // In WAL mode a reader keeps its snapshot; upgrading it to a writer after another
        // connection committed fails with SQLITE_BUSY_SNAPSHOT, whatever the busy timeout.
        run(
            &f.conn,
            &[
                "PRAGMA journal_mode = WAL",
                "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL)",
                "INSERT INTO t VALUES (1, 0)",
            ],
        )
        .await;
        let reader = f.conn.begin().await.expect("begin reader");
        assert_eq!(scalar(&reader, "SELECT v FROM t WHERE id = 1").await, 0);
        let other = f.other().await;
        run(&other, &["UPDATE t SET v = 1 WHERE id = 1"]).await;

        let err = fails(&reader, "UPDATE t SET v = 2 WHERE id = 1").await;
        expect(&err, retry(RetryReason::SerializationFailure), Some("517"));
        let _ = reader.rollback().await;
        let _ = other.close().await;
    })
    .await;
    f.finish().await;
}

#[tokio::test]
async fn pool_exhausted() {
    let f = Fixture::new("classify_pool_exhausted").await;
    bounded("pool_exhausted", TEST_LIMIT, async {
        // Through SeaORM: one connection, held by a transaction.
        let mut options = ConnectOptions::new(f.db.url.clone());
        options
            .max_connections(1)
            .acquire_timeout(Duration::from_millis(200))
            .sqlx_logging(false);
        let small = Database::connect(options)
            .await
            .expect("connect small pool");
        let held = small.begin().await.expect("begin");
        let err = fails(&small, "SELECT 1").await;
        assert!(matches!(err, DbErr::ConnectionAcquire(_)), "{err:?}");
        expect(&err, retry(RetryReason::PoolExhausted), None);
        let _ = held.rollback().await;
        let _ = small.close().await;

        // Through a bare sqlx pool, as the pool layer sees it.
        let err = match backend() {
            Backend::Postgres => sqlx_pool_timeout::<sqlx::Postgres>(&f.db.url).await,
            Backend::MySql => sqlx_pool_timeout::<sqlx::MySql>(&f.db.url).await,
            Backend::Sqlite => sqlx_pool_timeout::<sqlx::Sqlite>(&f.db.url).await,
        };
        assert!(matches!(err, sqlx::Error::PoolTimedOut), "{err:?}");
        assert_eq!(
            classify_sqlx(&err).category,
            retry(RetryReason::PoolExhausted)
        );
    })
    .await;
    f.finish().await;
}

/// Holds the only connection of a sqlx pool and returns the error of a second acquire.
async fn sqlx_pool_timeout<DB: sqlx::Database>(url: &str) -> sqlx::Error {
    let pool = sqlx::pool::PoolOptions::<DB>::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(200))
        .connect(url)
        .await
        .expect("connect sqlx pool");
    let held = pool.acquire().await.expect("first acquire");
    let err = match pool.acquire().await {
        Ok(_) => panic!("a second connection was handed out by a pool of one"),
        Err(err) => err,
    };
    drop(held);
    pool.close().await;
    err
}

/// Port 1 on loopback: nothing listens there, so a connect is refused at once.
const REFUSED_PG: &str = "postgres://postgres@127.0.0.1:1/test";
const REFUSED_MY: &str = "mysql://root@127.0.0.1:1/test";

/// Needs no server, so it runs on every backend.
#[tokio::test]
async fn unreachable_server_is_unavailable() {
    bounded("unreachable_server_is_unavailable", TEST_LIMIT, async {
        for url in [REFUSED_PG, REFUSED_MY] {
            // SeaORM's connect retries a refused connect until its timeout, then gives up.
            let mut options = ConnectOptions::new(url);
            options
                .acquire_timeout(Duration::from_millis(300))
                .sqlx_logging(false);
            let err = match Database::connect(options).await {
                Ok(_) => panic!("connected to {url}"),
                Err(err) => err,
            };
            assert!(matches!(err, DbErr::Conn(_)), "{err:?}");
            expect(&err, ErrorCategory::Unavailable, None);

            // A single connection reports the refusal itself.
            let err = match url {
                REFUSED_PG => single_connect::<sqlx::PgConnection>(url).await,
                _ => single_connect::<sqlx::MySqlConnection>(url).await,
            };
            assert!(matches!(&err, sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused), "{err:?}");
            assert_eq!(classify_sqlx(&err).category, ErrorCategory::Unavailable);
            let wrapped = DbErr::Conn(RuntimeErr::SqlxError(Arc::new(err)));
            expect(&wrapped, ErrorCategory::Unavailable, None);
        }
    })
    .await;
}

async fn single_connect<C: sqlx::Connection>(url: &str) -> sqlx::Error {
    match C::connect(url).await {
        Ok(_) => panic!("connected to {url}"),
        Err(err) => err,
    }
}

/// The server URL with another user or database.
fn variant(server: &str, user: Option<&str>, database: Option<&str>) -> String {
    let mut url = url::Url::parse(server).expect("DATABASE_URL is a URL");
    if let Some(user) = user {
        url.set_username(user).expect("URL takes a user name");
        let _ = url.set_password(None);
    }
    if let Some(database) = database {
        url.set_path(&format!("/{database}"));
    }
    url.to_string()
}

async fn connect_err(url: &str) -> DbErr {
    let mut options = ConnectOptions::new(url);
    options
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    match bounded("connect", STEP_TIMEOUT, Database::connect(options)).await {
        Ok(_) => panic!("connected to {url}"),
        Err(err) => err,
    }
}

#[tokio::test]
async fn auth_failure_is_configuration() {
    if !require_server("auth_failure_is_configuration") {
        return;
    }
    let server = ops_tests::database_url().expect("a server backend has a DATABASE_URL");
    bounded("auth_failure_is_configuration", TEST_LIMIT, async {
        let err = connect_err(&variant(&server, Some("ops_no_such_role"), None)).await;
        assert!(matches!(err, DbErr::Conn(_)), "{err:?}");
        expect(
            &err,
            ErrorCategory::Configuration,
            Some(code("28000", "1045", "")),
        );
    })
    .await;
}

#[tokio::test]
async fn missing_database_is_configuration() {
    bounded("missing_database_is_configuration", TEST_LIMIT, async {
        let err = match ops_tests::database_url().filter(|_| backend() != Backend::Sqlite) {
            Some(server) => {
                connect_err(&variant(&server, None, Some("ops_no_such_database"))).await
            }
            // SQLite without `mode=rwc` does not create a missing file: SQLITE_CANTOPEN.
            None => {
                let path = std::env::temp_dir()
                    .join("ops_no_such_dir")
                    .join("missing.sqlite");
                connect_err(&format!("sqlite://{}", path.display())).await
            }
        };
        assert!(matches!(err, DbErr::Conn(_)), "{err:?}");
        expect(
            &err,
            ErrorCategory::Configuration,
            Some(code("3D000", "1049", "14")),
        );
    })
    .await;
}
