//! The pool: reset on return, overflow and shrink, pool timeout, idle pings, startup errors.

use std::time::{Duration, Instant};

use ops_sea::prelude::*;
use ops_tests::fixtures::{count, insert_item, items_table, kill_connections};
use ops_tests::{Backend, STEP_TIMEOUT, TestDb, backend, bounded, require_backend};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

async fn connect(t: &TestDb, pool_size: u32, max_overflow: u32) -> Db {
    Db::builder(&t.url)
        .pool_size(pool_size)
        .max_overflow(max_overflow)
        .connect()
        .await
        .expect("connect")
}

/// A raw `BEGIN` executed through the pool must not leak into the next borrower: with one pooled
/// connection, the next statement runs on the same connection and must autocommit.
#[tokio::test]
async fn raw_begin_does_not_leak_into_the_next_borrower() {
    let t = TestDb::new("reset_begin").await;
    let admin = t.admin().await;
    items_table(&admin).await;
    let db = connect(&t, 1, 0).await;

    // ops-scan: allow(raw-transaction-sql) -- leaks a raw BEGIN on purpose to prove reset on return
    bounded("leak a BEGIN", STEP_TIMEOUT, db.execute_unprepared("BEGIN"))
        .await
        .expect("begin");
    bounded("insert", STEP_TIMEOUT, insert_item(&db, 1, "after leak"))
        .await
        .expect("insert on the next borrower");

    // Seen from another connection, the insert is committed: it did not run inside the leaked
    // transaction.
    assert_eq!(count(&admin, "items").await, 1);
    if t.backend == Backend::Postgres {
        // Each autocommit statement gets its own transaction id; inside a leaked transaction
        // both would report the same one.
        let txid = || async {
            let row = db
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT txid_current()",
                ))
                .await
                .unwrap()
                .unwrap();
            row.try_get_by_index::<i64>(0).unwrap()
        };
        let (a, b) = (txid().await, txid().await);
        assert_ne!(a, b, "both statements ran in one transaction");
    }
    db.close().await;
    t.cleanup().await;
}

/// A transaction left aborted (PostgreSQL state `E`) is rolled back on return too.
#[tokio::test]
async fn aborted_transaction_is_reset_on_return() {
    let t = TestDb::new("reset_aborted").await;
    let admin = t.admin().await;
    items_table(&admin).await;
    let db = connect(&t, 1, 0).await;

    // ops-scan: allow(raw-transaction-sql) -- leaks a raw BEGIN on purpose to prove reset on return
    db.execute_unprepared("BEGIN").await.expect("begin");
    // Fails inside the transaction; on PostgreSQL this aborts it.
    let _ = db
        .execute_unprepared("INSERT INTO no_such_table VALUES (1)")
        .await;
    insert_item(&db, 7, "after abort")
        .await
        .expect("the next borrower gets a usable connection");
    assert_eq!(count(&admin, "items").await, 1);
    db.close().await;
    t.cleanup().await;
}

/// The control: plain SeaORM over the same kind of pool leaks the `BEGIN`. This is the bug the
/// reset exists for; if SeaORM ever fixes it, this test says so.
#[tokio::test]
async fn plain_seaorm_leaks_a_raw_begin() {
    if backend() == Backend::Sqlite {
        eprintln!("skipped: plain_seaorm_leaks_a_raw_begin is a PostgreSQL/MySQL control");
        return;
    }
    let t = TestDb::new("seaorm_leak").await;
    let admin = t.admin().await;
    items_table(&admin).await;
    let mut opts = sea_orm::ConnectOptions::new(t.url.clone());
    opts.max_connections(1)
        .min_connections(1)
        .sqlx_logging(false);
    let plain = sea_orm::Database::connect(opts)
        .await
        .expect("plain connect");
    // ops-scan: allow(raw-transaction-sql) -- reproduces plain SeaORM's leak of a raw BEGIN
    plain.execute_unprepared("BEGIN").await.expect("begin");
    insert_item(&plain, 1, "inside leaked transaction")
        .await
        .expect("insert");
    assert_eq!(
        count(&admin, "items").await,
        0,
        "plain SeaORM committed the insert: the raw BEGIN did not leak any more"
    );
    plain.close().await.ok();
    t.cleanup().await;
}

/// `pool_size` warm, `max_overflow` more under burst, the next request fails with
/// `PoolExhausted` after `pool_timeout` (not earlier, not hanging), and the pool shrinks back to
/// `pool_size` once the overflow connections sit idle past `idle_timeout`.
#[tokio::test]
async fn overflow_exhaustion_and_shrink() {
    let t = TestDb::new("overflow").await;
    let pool_timeout = Duration::from_millis(600);
    let db = Db::builder(&t.url)
        .pool_size(2)
        .max_overflow(3)
        .pool_timeout(pool_timeout)
        .idle_timeout(Duration::from_millis(300))
        .connect()
        .await
        .expect("connect");

    // SQLite's pool is one writer and `pool_size + max_overflow - 1` readers: one write session
    // and four read-only ones fill it.
    let mut held = Vec::new();
    for n in 0..5 {
        let options = match t.backend {
            Backend::Sqlite if n > 0 => SessionOptions::new().read_only(),
            _ => SessionOptions::new(),
        };
        held.push(
            bounded("open", STEP_TIMEOUT, db.session_with(options))
                .await
                .expect("session"),
        );
    }
    assert_eq!(db.pool_state().size, 5);
    assert_eq!(db.session_stats().active, 5);

    let started = Instant::now();
    let err = bounded("sixth session", STEP_TIMEOUT, db.session())
        .await
        .expect_err("the pool is exhausted");
    let waited = started.elapsed();
    assert_eq!(
        err.category(),
        ErrorCategory::Retryable(RetryReason::PoolExhausted),
        "{err}"
    );
    assert!(
        waited >= pool_timeout.mul_f64(0.9),
        "failed after {waited:?}, before the pool timeout of {pool_timeout:?}"
    );
    assert!(
        waited < pool_timeout + Duration::from_secs(5),
        "waited {waited:?}"
    );

    for s in held {
        s.rollback().await.expect("rollback");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.pool_state().size > 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        db.pool_state().size,
        2,
        "overflow connections closed when idle"
    );
    let stats = db.session_stats();
    assert_eq!((stats.active, stats.peak, stats.rolled_back), (0, 5, 5));
    db.close().await;
    t.cleanup().await;
}

/// Connections killed while idle are found dead by the idle ping at checkout and replaced: the
/// caller sees no error.
#[tokio::test]
async fn killed_idle_connections_are_replaced_without_error() {
    if backend() == Backend::Sqlite {
        eprintln!("skipped: killed_idle_connections_are_replaced_without_error needs a server");
        return;
    }
    let t = TestDb::new("idle_kill").await;
    let admin = t.admin().await;
    let db = Db::builder(&t.url)
        .pool_size(3)
        .max_overflow(0)
        .idle_ping(Duration::from_millis(100))
        .connect()
        .await
        .expect("connect");
    // Warm every connection.
    let sessions = futures_util_join(&db, 3).await;
    drop(sessions);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let killed = kill_connections(&admin, &t.name).await;
    assert!(killed >= 3, "killed {killed}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..5 {
        bounded(
            "query after kill",
            STEP_TIMEOUT,
            db.execute_unprepared("SELECT 1"),
        )
        .await
        .expect("no error reaches the caller");
    }
    db.close().await;
    t.cleanup().await;
}

async fn futures_util_join(db: &Db, n: usize) -> Vec<Session> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(db.session().await.expect("session"));
    }
    for s in &out {
        s.execute_unprepared("SELECT 1").await.expect("warm");
    }
    out
}

/// A closed port is `Unavailable` with a message naming the host, quickly.
#[tokio::test]
async fn unreachable_server_is_unavailable() {
    let url = match backend() {
        Backend::MySql => "mysql://root:s3cret-pw@127.0.0.1:1/test",
        _ => "postgres://postgres:s3cret-pw@127.0.0.1:1/test",
    };
    let err = bounded(
        "connect",
        STEP_TIMEOUT,
        Db::builder(url)
            .connect_timeout(Duration::from_secs(5))
            .connect(),
    )
    .await
    .expect_err("nothing listens on port 1");
    assert_eq!(err.category(), ErrorCategory::Unavailable, "{err}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("s3cret-pw"), "password leaked: {shown}");
    assert!(shown.contains("127.0.0.1:1"), "names the address: {shown}");
}

/// A server that accepts the TCP connection but never answers is bounded by `connect_timeout`.
#[tokio::test]
async fn silent_server_is_bounded_by_connect_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let url = format!("postgres://postgres:s3cret-pw@127.0.0.1:{port}/test");
    let started = Instant::now();
    let err = bounded(
        "connect",
        STEP_TIMEOUT,
        Db::builder(&url)
            .connect_timeout(Duration::from_millis(400))
            .connect(),
    )
    .await
    .expect_err("the server never answers");
    let waited = started.elapsed();
    assert_eq!(err.category(), ErrorCategory::Unavailable, "{err}");
    assert!(waited >= Duration::from_millis(350), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert!(!format!("{err:?}").contains("s3cret-pw"));
    drop(listener);
}

/// A missing database and a refused login are `Configuration` errors, never showing a password.
#[tokio::test]
async fn missing_database_and_bad_login_are_configuration_errors() {
    let (missing, bad_login) = match backend() {
        Backend::Postgres => (
            "postgres://postgres:s3cret-pw@127.0.0.1:5432/ops_no_such_database",
            None,
        ),
        Backend::MySql => (
            "mysql://root@127.0.0.1:3306/ops_no_such_database",
            Some("mysql://ops_no_such_user:s3cret-pw@127.0.0.1:3306/test"),
        ),
        Backend::Sqlite => {
            eprintln!(
                "skipped: missing_database_and_bad_login_are_configuration_errors needs a server"
            );
            return;
        }
    };
    let err = bounded("connect", STEP_TIMEOUT, Db::connect(missing))
        .await
        .expect_err("no such database");
    assert_eq!(err.category(), ErrorCategory::Configuration, "{err}");
    assert!(!format!("{err} {err:?}").contains("s3cret-pw"));
    if let Some(url) = bad_login {
        let err = bounded("connect", STEP_TIMEOUT, Db::connect(url))
            .await
            .expect_err("no such user");
        assert_eq!(err.category(), ErrorCategory::Configuration, "{err}");
        assert!(!format!("{err} {err:?}").contains("s3cret-pw"));
    }
}

/// Bad settings are rejected before any connection is made, naming the setting.
#[tokio::test]
async fn bad_settings_are_configuration_errors() {
    let err = Db::builder("sqlite::memory:")
        .pool_size(0)
        .connect()
        .await
        .expect_err("a pool of zero connections");
    assert_eq!(err.category(), ErrorCategory::Configuration);
    assert!(
        format!("{err:#}").contains("pool_size") || format!("{err:#}").contains("DB_POOL_SIZE"),
        "{err}"
    );

    let err = Db::connect("oracle://scott:tiger@127.0.0.1/orcl")
        .await
        .expect_err("unsupported scheme");
    assert_eq!(err.category(), ErrorCategory::Configuration);
    assert!(!format!("{err:#}").contains("tiger"), "{err}");

    if require_backend(
        Backend::Postgres,
        "bad_settings_are_configuration_errors (sslmode)",
    ) {
        let err = Db::connect("postgres://postgres@127.0.0.1:5432/test?sslmode=sometimes")
            .await
            .expect_err("unknown ssl mode");
        assert_eq!(err.category(), ErrorCategory::Configuration);
        assert!(
            format!("{err:#}").contains("verify-full"),
            "lists the valid modes: {err}"
        );
    }
}

/// SQLAlchemy-style URLs and `sslmode` in the URL are normalized and the connection works.
#[tokio::test]
async fn sqlalchemy_urls_and_ssl_parameters_are_normalized() {
    let t = TestDb::new("normalize").await;
    let url = match t.backend {
        Backend::Postgres => format!(
            "{}?sslmode=disable",
            t.url.replacen("postgres://", "postgresql+asyncpg://", 1)
        ),
        Backend::MySql => format!(
            "{}?ssl-mode=DISABLED",
            t.url.replacen("mysql://", "mysql+pymysql://", 1)
        ),
        Backend::Sqlite => t.url.clone(),
    };
    let db = bounded("connect", STEP_TIMEOUT, Db::connect(&url))
        .await
        .expect("normalized URL connects");
    db.execute_unprepared("SELECT 1").await.expect("query");
    assert!(!db.config().url.expose().contains("sslmode"));
    assert!(!db.config().url.expose().contains("ssl-mode"));
    db.close().await;
    t.cleanup().await;
}

/// `DB_STATEMENT_TIMEOUT_MS` stops a long statement on the server: `StatementTimeout`, and the
/// connection stays usable.
#[tokio::test]
async fn statement_timeout_stops_a_long_statement() {
    let sleep = match backend() {
        Backend::Postgres => "SELECT pg_sleep(5)",
        Backend::MySql => "SELECT SLEEP(5)",
        Backend::Sqlite => {
            eprintln!(
                "skipped: statement_timeout_stops_a_long_statement: SQLite has no statement timeout"
            );
            return;
        }
    };
    let t = TestDb::new("stmt_timeout").await;
    let db = Db::builder(&t.url)
        .pool_size(1)
        .max_overflow(0)
        .statement_timeout(Some(Duration::from_millis(300)))
        .connect()
        .await
        .expect("connect");
    let started = Instant::now();
    let result = bounded(
        "long statement",
        STEP_TIMEOUT,
        db.query_one_raw(Statement::from_string(db.backend(), sleep)),
    )
    .await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    match t.backend {
        Backend::Postgres => {
            let err = OpsError::from(result.expect_err("cancelled by statement_timeout"));
            assert_eq!(
                err.category(),
                ErrorCategory::Retryable(RetryReason::StatementTimeout),
                "{err}"
            );
        }
        _ => {
            // MariaDB's max_statement_time interrupts SLEEP() without an error: SLEEP returns 1.
            if let Err(err) = result {
                let err = OpsError::from(err);
                assert_eq!(
                    err.category(),
                    ErrorCategory::Retryable(RetryReason::StatementTimeout),
                    "{err}"
                );
            }
        }
    }
    db.execute_unprepared("SELECT 1")
        .await
        .expect("the connection is still usable");
    db.close().await;
    t.cleanup().await;
}

/// `sslmode` is mapped onto the driver's options: `require` really negotiates TLS where the
/// server offers it, and a mode the server cannot satisfy is a `Configuration` error that says so.
#[tokio::test]
async fn ssl_modes_reach_the_driver() {
    match backend() {
        Backend::Postgres => {
            let t = TestDb::new("ssl").await;
            let db = Db::connect(&format!("{}?sslmode=require", t.url))
                .await
                .expect("the local server offers TLS");
            let row = db
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                ))
                .await
                .unwrap()
                .unwrap();
            assert!(
                row.try_get_by_index::<bool>(0).unwrap(),
                "the connection uses TLS"
            );
            db.close().await;
            // The local certificate is self-signed: full verification must refuse it.
            let err = Db::builder(&t.url)
                .ssl_mode(ops_sea::SslMode::VerifyFull)
                .connect()
                .await
                .expect_err("untrusted certificate");
            assert_eq!(err.category(), ErrorCategory::Configuration, "{err}");
            t.cleanup().await;
        }
        Backend::MySql => {
            let t = TestDb::new("ssl").await;
            let err = Db::connect(&format!("{}?ssl-mode=REQUIRED", t.url))
                .await
                .expect_err("the local server has TLS disabled");
            assert_ne!(err.category(), ErrorCategory::Other, "{err}");
            assert!(
                err.to_string().to_lowercase().contains("tls")
                    || err.to_string().to_lowercase().contains("ssl"),
                "{err}"
            );
            t.cleanup().await;
        }
        Backend::Sqlite => {
            let err = Db::connect("sqlite::memory:?sslmode=require")
                .await
                .expect_err("SSL does not apply to SQLite");
            assert_eq!(err.category(), ErrorCategory::Configuration);
        }
    }
}

/// The client port the server sees for the connection a statement on `conn` runs on.
async fn client_port(conn: &impl ConnectionTrait, backend: Backend) -> u16 {
    let sql = match backend {
        Backend::Postgres => "SELECT inet_client_port()",
        _ => {
            "SELECT CAST(SUBSTRING_INDEX(HOST, ':', -1) AS SIGNED) FROM \
              information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()"
        }
    };
    let row = conn
        .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .expect("client port")
        .expect("a row");
    let port: i64 = match backend {
        Backend::Postgres => i64::from(row.try_get_by_index::<i32>(0).expect("a port")),
        _ => row.try_get_by_index::<i64>(0).expect("a port"),
    };
    u16::try_from(port).expect("a TCP port")
}

/// Every connection ops opens to a server has `TCP_NODELAY`, which sqlx 0.9.0 stopped setting:
/// without it an exchange that writes twice before reading (`COPY`'s data then its end, a
/// statement larger than a segment) waits about 40 ms for the server's delayed ACK.
#[tokio::test]
async fn server_connections_have_tcp_nodelay() {
    if !ops_tests::require_server("server_connections_have_tcp_nodelay")
        || ops_tests::via_pgbouncer()
    {
        return;
    }
    let t = TestDb::new("nodelay").await;
    let server_port = url::Url::parse(&t.url)
        .expect("a URL")
        .port_or_known_default()
        .expect("a port");
    let admin = t.admin().await;
    let db = connect(&t, 2, 0).await;
    // Both pooled connections, and the one of a session.
    for _ in 0..2 {
        let port = bounded("client port", STEP_TIMEOUT, client_port(&db, t.backend)).await;
        assert_eq!(
            ops_sea::__private::tcp_nodelay_is_set(port, server_port),
            Some(true),
            "ops' connection from port {port} has no TCP_NODELAY"
        );
    }
    let session = db.session().await.expect("session");
    let port = bounded(
        "client port",
        STEP_TIMEOUT,
        client_port(&session, t.backend),
    )
    .await;
    assert_eq!(
        ops_sea::__private::tcp_nodelay_is_set(port, server_port),
        Some(true)
    );
    session.rollback().await.expect("rollback");
    // What sqlx 0.9.0 itself leaves (SeaORM's pool, for the record; not asserted, so an
    // upstream fix does not fail this test).
    let port = client_port(&admin, t.backend).await;
    eprintln!(
        "SeaORM/sqlx's own connection from port {port}: TCP_NODELAY {:?}",
        ops_sea::__private::tcp_nodelay_is_set(port, server_port)
    );
    db.close().await;
    drop(admin);
    t.cleanup().await;
}
