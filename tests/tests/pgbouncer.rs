//! PgBouncer in transaction pooling mode, the real one: `.ci/pgbouncer.sh start` runs PgBouncer
//! 1.18 (the Debian package) on 127.0.0.1:6432 with a server pool of 4 in front of the local
//! PostgreSQL, and this suite runs with
//! `DATABASE_URL=postgres://postgres@127.0.0.1:6432/test?pgbouncer=true`.
//!
//! The control tests show what plain SeaORM gets from that PgBouncer (refused at connect; once
//! past that, prepared statements that do not exist on the server connection it lands on); the
//! others prove that ops with `?pgbouncer=true` runs 200 concurrent managed sessions through 4
//! server connections without an error or state seen across clients, refuses what transaction
//! pooling cannot support with a `Configuration` error, and keeps real connection losses
//! retryable. Without PgBouncer (`DATABASE_URL` lacking `pgbouncer=true`) every test prints
//! `skipped: ...` and passes.
#![deny(warnings, clippy::all)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use ops_sea::prelude::*;
use ops_tests::fixtures::{count, insert_item, items_table};
use ops_tests::{STEP_TIMEOUT, TestDb, bounded, via_pgbouncer};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use sqlx::Connection;

/// Whether PgBouncer is what `DATABASE_URL` names; prints `skipped: ...` when it is not.
fn require_pgbouncer(test: &str) -> bool {
    if via_pgbouncer() {
        return true;
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "skipped: {test} needs PgBouncer: run `.ci/pgbouncer.sh start` and set \
         DATABASE_URL=postgres://postgres@127.0.0.1:6432/test?pgbouncer=true"
    );
    false
}

/// The test database's URL through PgBouncer without `pgbouncer=true`: what a plain SeaORM or
/// sqlx user would pass.
fn plain_url(t: &TestDb) -> String {
    let mut url = url::Url::parse(&t.url).expect("test URL");
    url.set_query(None);
    url.to_string()
}

fn stmt(sql: &str, values: Vec<sea_orm::Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

async fn scalar_i64<C: ConnectionTrait>(conn: &C, sql: &str) -> Result<i64, OpsError> {
    let row = conn
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await?
        .expect("a row");
    Ok(row.try_get_by_index::<i64>(0)?)
}

async fn scalar_text<C: ConnectionTrait>(conn: &C, sql: &str) -> Result<Option<String>, OpsError> {
    let row = conn
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await?
        .expect("a row");
    Ok(row.try_get_by_index::<Option<String>>(0)?)
}

async fn connect(t: &TestDb, pool_size: u32, max_overflow: u32) -> Db {
    bounded(
        "connecting through PgBouncer",
        STEP_TIMEOUT,
        Db::builder(&t.url)
            .pool_size(pool_size)
            .max_overflow(max_overflow)
            .statement_timeout(Some(Duration::from_secs(7)))
            .connect(),
    )
    .await
    .expect("Db::connect through PgBouncer")
}

// ---------------------------------------------------------------------------------------------
// Controls: plain SeaORM through the same PgBouncer.

/// sqlx sends `extra_float_digits` in its startup packet; PgBouncer 1.18 refuses the connection.
/// The refusal is a misconfiguration, not a lost connection: retrying cannot fix it.
#[tokio::test]
async fn plain_seaorm_is_refused_at_connect_and_that_is_configuration() {
    if !require_pgbouncer("plain_seaorm_is_refused_at_connect") {
        return;
    }
    let t = TestDb::new("pgb_refused").await;
    let err = bounded(
        "plain SeaORM connect",
        STEP_TIMEOUT,
        Database::connect(plain_url(&t)),
    )
    .await
    .expect_err("PgBouncer 1.18 must refuse sqlx's default startup packet");
    assert!(
        err.to_string().contains("unsupported startup parameter"),
        "unexpected refusal: {err}"
    );
    let err = OpsError::from(err);
    assert_eq!(err.category(), ErrorCategory::Configuration, "{err}");
    assert!(!err.is_retryable());

    // The same through sqlx directly, with the `options` parameter ops used to send.
    let options = plain_url(&t)
        .parse::<sqlx::postgres::PgConnectOptions>()
        .expect("options")
        .extra_float_digits(None)
        .options([("statement_timeout", "5000")]);
    let err = sqlx::PgConnection::connect_with(&options)
        .await
        .expect_err("PgBouncer 1.18 refuses the options startup parameter");
    let err = OpsError::from(sea_orm::DbErr::Conn(sea_orm::RuntimeErr::SqlxError(
        Arc::new(err),
    )));
    assert_eq!(err.category(), ErrorCategory::Configuration, "{err}");
    t.cleanup().await;
}

/// Past the startup packet, plain SeaORM prepares named statements (`sqlx_s_N`) on whichever
/// server connection PgBouncer lends it, then uses them on another: "prepared statement does not
/// exist" (or "already exists", when another client's statement of the same name is there).
/// Under the same load, ops with `?pgbouncer=true` has no error at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plain_seaorm_loses_prepared_statements_and_ops_does_not() {
    if !require_pgbouncer("control_plain_seaorm_loses_prepared_statements") {
        return;
    }
    let t = TestDb::new("pgb_control").await;
    let admin = t.admin().await;
    items_table(&admin).await;
    for id in 0..20 {
        insert_item(&admin, id, "seed").await.expect("seed");
    }

    let mut options = sea_orm::ConnectOptions::new(plain_url(&t));
    options
        .max_connections(16)
        .min_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        .map_sqlx_postgres_opts(|o| o.extra_float_digits(None));
    let plain = bounded(
        "plain SeaORM connect",
        STEP_TIMEOUT,
        Database::connect(options),
    )
    .await
    .expect("plain SeaORM connects once extra_float_digits is dropped");
    let plain_errors = bounded(
        "plain SeaORM load",
        Duration::from_secs(60),
        workload(Arc::new(plain)),
    )
    .await;
    assert!(
        plain_errors
            .iter()
            .any(|e| e.contains("prepared statement")),
        "plain SeaORM through PgBouncer in transaction mode should lose its prepared statements; \
         errors seen: {plain_errors:?}"
    );

    let db = connect(&t, 16, 0).await;
    let ops_errors = bounded(
        "ops load",
        Duration::from_secs(60),
        workload(Arc::new(db.clone())),
    )
    .await;
    assert!(ops_errors.is_empty(), "ops errors: {ops_errors:?}");
    db.close().await;
    drop(admin);
    t.cleanup().await;
}

/// 16 tasks, each running parameterized statements back to back; returns the error messages.
async fn workload<C: ConnectionTrait + Send + Sync + 'static>(conn: Arc<C>) -> Vec<String> {
    let mut tasks = Vec::new();
    for task in 0..16_i64 {
        let conn = conn.clone();
        tasks.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            for i in 0..40_i64 {
                let id = (task * 40 + i) % 20;
                let read = conn
                    .query_one_raw(stmt(
                        "SELECT name FROM items WHERE id = $1",
                        vec![id.into()],
                    ))
                    .await;
                if let Err(e) = read {
                    errors.push(e.to_string());
                }
                let write = conn
                    .execute_raw(stmt(
                        "UPDATE items SET name = $1 WHERE id = $2",
                        vec![format!("t{task}").into(), id.into()],
                    ))
                    .await;
                if let Err(e) = write {
                    errors.push(e.to_string());
                }
            }
            errors
        }));
    }
    let mut errors = Vec::new();
    for task in tasks {
        errors.extend(task.await.expect("task"));
    }
    errors
}

// ---------------------------------------------------------------------------------------------
// 200 concurrent managed sessions through 4 server connections.

#[managed_session]
async fn tagged_work(
    session: &Session,
    id: i64,
) -> Result<(Option<String>, String, String, i64), OpsError> {
    // What the server connection carries before this session set anything: another client's
    // `SET LOCAL` must not be visible.
    let before = scalar_text(session, "SELECT current_setting('ops.tag', true)").await?;
    session
        .execute_unprepared(&format!("SET LOCAL ops.tag = 'task-{id}'"))
        .await?;
    insert_item(session, id, &format!("task-{id}")).await?;
    let after = scalar_text(session, "SELECT current_setting('ops.tag')")
        .await?
        .unwrap_or_default();
    let timeout = scalar_text(session, "SHOW statement_timeout")
        .await?
        .unwrap_or_default();
    // Named prepared statements on this server connection: ops uses unnamed ones only.
    let named = scalar_i64(session, "SELECT count(*) FROM pg_prepared_statements").await?;
    Ok((before, after, timeout, named))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_managed_sessions_through_four_server_connections() {
    if !require_pgbouncer("two_hundred_managed_sessions_through_four_server_connections") {
        return;
    }
    let t = TestDb::new("pgb_200").await;
    let admin = t.admin().await;
    items_table(&admin).await;
    admin.close().await.expect("close admin");

    // Counts PgBouncer's server connections to the test database from the `test` database, so
    // the probe itself is not counted.
    let probe_url = t.server_url().expect("server URL").to_owned();
    let name = t.name.clone();
    let peak = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(tokio::sync::Notify::new());
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        tokio::spawn(async move {
            let mut probe = sqlx::PgConnection::connect(&probe_url)
                .await
                .expect("probe");
            loop {
                let n: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
                        .bind(&name)
                        .fetch_one(&mut probe)
                        .await
                        .expect("sample");
                peak.fetch_max(usize::try_from(n).unwrap_or(0), Ordering::Relaxed);
                tokio::select! {
                    _ = stop.notified() => break,
                    _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
            }
        })
    };

    // 64 client connections to PgBouncer, 200 tasks: PgBouncer multiplexes them onto 4.
    let db = connect(&t, 32, 32).await;
    let errors = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for id in 0..200_i64 {
        let (db, errors) = (db.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            match tagged_work(&db, id).await {
                Ok((before, after, timeout, named)) => {
                    assert!(
                        before.as_deref().unwrap_or("").is_empty(),
                        "task {id} saw another client's setting: {before:?}"
                    );
                    assert_eq!(
                        after,
                        format!("task-{id}"),
                        "task {id} saw another's setting"
                    );
                    assert_eq!(
                        timeout, "7s",
                        "the statement timeout is set in every session"
                    );
                    assert_eq!(
                        named, 0,
                        "a named prepared statement was left on the server"
                    );
                }
                Err(err) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    eprintln!("task {id}: {err}");
                }
            }
        }));
    }
    for task in tasks {
        bounded("a managed session", Duration::from_secs(120), task)
            .await
            .expect("task panicked");
    }
    stop.notify_one();
    sampler.await.expect("sampler");
    assert_eq!(errors.load(Ordering::Relaxed), 0, "sessions failed");

    let admin = t.admin().await;
    assert_eq!(count(&admin, "items").await, 200, "every session committed");
    let peak = peak.load(Ordering::Relaxed);
    assert!(
        (1..=4).contains(&peak),
        "PgBouncer used {peak} server connections; default_pool_size is 4"
    );
    assert_eq!(db.session_stats().dropped_unfinished, 0);
    assert_eq!(db.error_stats().total, 0, "{:?}", db.error_stats());
    db.close().await;
    drop(admin);
    t.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// Statements outside sessions, settings, and what transaction pooling cannot support.

/// Single statements on `Db` (outside any session) run in a transaction of their own, so both
/// protocol exchanges of an unnamed statement land on one server connection; and the statement
/// timeout applies to them too.
#[tokio::test]
async fn single_statements_outside_sessions_are_safe() {
    if !require_pgbouncer("single_statements_outside_sessions_are_safe") {
        return;
    }
    let t = TestDb::new("pgb_single").await;
    let admin = t.admin().await;
    items_table(&admin).await;
    let db = connect(&t, 4, 0).await;
    for id in 0..50 {
        insert_item(&db, id, "x").await.expect("insert through Db");
    }
    assert_eq!(count(&db, "items").await, 50);
    assert_eq!(
        scalar_text(&db, "SHOW statement_timeout").await.unwrap(),
        Some("7s".to_owned())
    );
    assert_eq!(
        scalar_i64(&db, "SELECT count(*) FROM pg_prepared_statements")
            .await
            .unwrap(),
        0
    );
    // A statement that fails leaves nothing behind: the next one works.
    assert!(insert_item(&db, 1, "dup").await.is_err());
    insert_item(&db, 51, "y").await.expect("after a failure");
    db.close().await;
    t.cleanup().await;
}

/// Session-level state cannot survive transaction pooling: it would leak to other clients or
/// vanish. ops refuses it with a `Configuration` error that says what to use instead.
#[tokio::test]
async fn session_state_is_refused_with_a_configuration_error() {
    if !require_pgbouncer("session_state_is_refused") {
        return;
    }
    let t = TestDb::new("pgb_refuse").await;
    let db = connect(&t, 2, 0).await;
    let refused = [
        "SET statement_timeout = 1",
        "set search_path to public",
        "SET SESSION work_mem = '64MB'",
        "RESET ALL",
        "LISTEN jobs",
        "PREPARE p AS SELECT 1",
        "SELECT pg_advisory_lock(42)",
        "SELECT pg_try_advisory_lock(42)",
        "CREATE TEMP TABLE scratch (x INT)",
        "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
        "SELECT set_config('work_mem', '64MB', false)",
    ];
    for sql in refused {
        let err = OpsError::from(db.execute_unprepared(sql).await.expect_err(sql));
        assert_eq!(err.category(), ErrorCategory::Configuration, "{sql}: {err}");
        assert!(format!("{err:#}").contains("PgBouncer"), "{sql}: {err}");
        let session = db.session().await.expect("session");
        let err = OpsError::from(session.execute_unprepared(sql).await.expect_err(sql));
        assert_eq!(err.category(), ErrorCategory::Configuration, "{sql}: {err}");
        session.rollback().await.expect("rollback");
    }
    // Their transaction-scoped forms are fine.
    let session = db.session().await.expect("session");
    for sql in [
        "SET LOCAL statement_timeout = 1000",
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        "SELECT pg_advisory_xact_lock(42)",
        "CREATE TEMP TABLE scratch (x INT) ON COMMIT DROP",
        "SELECT set_config('work_mem', '64MB', true)",
        "SELECT 'SET statement_timeout = 1' AS not_a_command",
    ] {
        session.execute_unprepared(sql).await.expect(sql);
    }
    session.commit().await.expect("commit");
    db.close().await;
    t.cleanup().await;
}

/// A connection left inside a transaction by raw SQL is rolled back before it is reused, through
/// PgBouncer as directly (the server connection would otherwise stay pinned to that client).
#[tokio::test]
async fn reset_on_return_holds_through_pgbouncer() {
    if !require_pgbouncer("reset_on_return_holds_through_pgbouncer") {
        return;
    }
    let t = TestDb::new("pgb_reset").await;
    let admin = t.admin().await;
    items_table(&admin).await;
    let db = connect(&t, 1, 0).await;
    // ops-scan: allow(raw-transaction-sql) -- leaks a raw BEGIN on purpose to prove reset on return
    db.execute_unprepared("BEGIN; INSERT INTO items (id, name) VALUES (1, 'leaked')")
        .await
        .expect("raw BEGIN");
    // The same (only) client connection, after its reset: not in the leaked transaction.
    insert_item(&db, 2, "next").await.expect("next borrower");
    assert_eq!(
        count(&admin, "items").await,
        1,
        "the raw transaction was rolled back"
    );
    db.close().await;
    t.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// Connect-time refusals and real connection losses.

#[tokio::test]
async fn connect_time_refusals_are_configuration_not_retryable() {
    if !require_pgbouncer("connect_time_refusals_are_configuration") {
        return;
    }
    let t = TestDb::new("pgb_connect").await;
    // A user PgBouncer's auth_file does not list.
    let mut url = url::Url::parse(&t.url).unwrap();
    url.set_username("nobody_here").unwrap();
    url.set_password(Some("secret-pw")).unwrap();
    let err = bounded(
        "connect as an unknown user",
        STEP_TIMEOUT,
        Db::connect(url.as_str()),
    )
    .await
    .expect_err("unknown user");
    assert_eq!(err.category(), ErrorCategory::Configuration, "{err}");
    assert!(!err.to_string().contains("secret-pw"), "{err}");

    // `?pgbouncer=true` is removed before the driver sees the URL and never printed with a
    // password.
    let db = connect(&t, 1, 0).await;
    assert!(db.config().pgbouncer.is_some());
    assert!(!db.config().url.expose().contains("pgbouncer"));
    db.close().await;
    t.cleanup().await;
}

#[db_retry(attempts = 3)]
#[managed_session]
async fn killed_once(
    session: &Session,
    admin: &sea_orm::DatabaseConnection,
    calls: &AtomicU32,
) -> Result<i64, OpsError> {
    insert_item(session, i64::from(calls.load(Ordering::Relaxed)) + 100, "k").await?;
    if calls.fetch_add(1, Ordering::Relaxed) == 0 {
        // Terminate the server connection PgBouncer lent this session, mid-transaction.
        let pid = scalar_i64(session, "SELECT pg_backend_pid()::int8").await?;
        admin
            .execute_unprepared(&format!("SELECT pg_terminate_backend({pid})"))
            .await
            .expect("terminate");
        // ops-scan: allow(session-held-across-io) -- waits for the killed server connection to be noticed
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    scalar_i64(session, "SELECT count(*) FROM items").await
}

/// A server connection killed under a session is a lost connection, retryable as directly: the
/// retry gets a working connection and the work is done once.
#[tokio::test]
async fn a_lost_server_connection_is_retryable() {
    if !require_pgbouncer("a_lost_server_connection_is_retryable") {
        return;
    }
    let t = TestDb::new("pgb_lost").await;
    let admin = t.admin().await;
    items_table(&admin).await;
    let db = connect(&t, 2, 0).await;
    let calls = AtomicU32::new(0);
    let seen = bounded(
        "retry after a kill",
        STEP_TIMEOUT,
        killed_once(&db, &admin, &calls),
    )
    .await
    .expect("the retry succeeds");
    assert_eq!(calls.load(Ordering::Relaxed), 2, "one retry");
    assert_eq!(seen, 1, "the killed attempt's insert was rolled back");
    assert_eq!(count(&admin, "items").await, 1);
    let stats = db.error_stats();
    assert!(
        stats
            .by_category
            .keys()
            .any(|k| *k == ErrorCategory::Retryable(RetryReason::ConnectionLost)),
        "the kill was recorded as a lost connection: {stats:?}"
    );
    db.close().await;
    t.cleanup().await;
}
