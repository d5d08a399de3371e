//! `#[managed_session]` and `#[db_retry]` against a real database: commit, rollback on error,
//! panic and cancellation, joining, savepoints, `requires_new`, timeouts, and retries driven by
//! real conflicts (a PostgreSQL serialization failure, a MariaDB deadlock, a busy SQLite
//! database), with attempts counted in a database where it matters.
#![deny(warnings, clippy::all)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ops_sea::prelude::*;
use ops_tests::fixtures::{count, insert_item, items_table, sleep_sql};
use ops_tests::{Backend, STEP_TIMEOUT, TestDb, bounded};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, TransactionTrait};

// ---------------------------------------------------------------------------------------------
// Set-up.

async fn setup(name: &str) -> (TestDb, DatabaseConnection, Db) {
    setup_with(name, 2, 2).await
}

async fn setup_with(
    name: &str,
    pool_size: u32,
    max_overflow: u32,
) -> (TestDb, DatabaseConnection, Db) {
    let t = TestDb::new(name).await;
    let admin = t.admin().await;
    items_table(&admin).await;
    let db = Db::builder(&t.url)
        .pool_size(pool_size)
        .max_overflow(max_overflow)
        .connect()
        .await
        .expect("connect");
    (t, admin, db)
}

/// The connection that counts attempts, with its `attempts` table created and seeded.
///
/// On PostgreSQL and MySQL it is `admin`: the counter lives in the test's own database, written
/// by a connection that is not the session's. On SQLite it is a connection to a file of its
/// own beside the test's (removed with it): a write session holds the test file's one write
/// lock from its `BEGIN IMMEDIATE` on, so no other connection can write there while an attempt
/// runs. The count is still durable and kept outside every session, so it still proves how
/// many attempts ran, including those whose sessions rolled back.
async fn attempt_counter(t: &TestDb, admin: &DatabaseConnection) -> DatabaseConnection {
    let counter = match t.backend {
        Backend::Sqlite => {
            let url = t.url.replacen(".sqlite?", "-attempts.sqlite?", 1);
            assert_ne!(url, t.url, "the SQLite test URL changed shape: {}", t.url);
            let mut options = sea_orm::ConnectOptions::new(url);
            options.max_connections(1).sqlx_logging(false);
            sea_orm::Database::connect(options)
                .await
                .expect("connect to the attempt counter")
        }
        Backend::Postgres | Backend::MySql => admin.clone(),
    };
    counter
        .execute_unprepared("CREATE TABLE attempts (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
        .await
        .expect("create attempts");
    counter
        .execute_unprepared("INSERT INTO attempts (id, n) VALUES (1, 0)")
        .await
        .expect("seed attempts");
    counter
}

async fn finish(t: TestDb, db: Db) {
    // Every connection is back in the pool: none was kept by a session.
    let deadline = Instant::now() + Duration::from_secs(5);
    while (db.pool_state().in_use() > 0 || db.session_stats().active > 0)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(db.pool_state().in_use(), 0, "a connection was not returned");
    assert_eq!(db.session_stats().active, 0, "a session is still open");
    assert_eq!(db.session_stats().dropped_unfinished, 0, "a session leaked");
    db.close().await;
    t.cleanup().await;
}

/// The attempt counter (see [`attempt_counter`]): incremented by each attempt in an autocommit
/// statement on a connection of its own, so it counts attempts even when their sessions roll
/// back.
async fn bump(counter: &DatabaseConnection) -> Result<(), OpsError> {
    counter
        .execute_unprepared("UPDATE attempts SET n = n + 1 WHERE id = 1")
        .await?;
    Ok(())
}

async fn attempts_counted(counter: &DatabaseConnection) -> i64 {
    let row = counter
        .query_one_raw(sea_orm::Statement::from_string(
            counter.get_database_backend(),
            "SELECT n FROM attempts WHERE id = 1",
        ))
        .await
        .expect("attempts query")
        .expect("attempts row");
    // MySQL returns INTEGER as a signed 32-bit column; widen either way.
    row.try_get_by_index::<i32>(0)
        .map(i64::from)
        .or_else(|_| row.try_get_by_index::<i64>(0))
        .expect("attempts value")
}

fn retryable(reason: RetryReason) -> OpsError {
    OpsError::new(
        ErrorCategory::Retryable(reason),
        "simulated transient failure",
    )
}

/// An application's own error type: session failures reach it through `From<OpsError>`, and it
/// delegates its category so `#[db_retry]` can decide.
#[derive(Debug)]
enum AppError {
    Db(OpsError),
    Rejected,
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::Db(err) => write!(f, "database: {err}"),
            AppError::Rejected => f.write_str("rejected"),
        }
    }
}

impl From<OpsError> for AppError {
    fn from(err: OpsError) -> Self {
        AppError::Db(err)
    }
}

impl Categorize for AppError {
    fn category(&self) -> ErrorCategory {
        match self {
            AppError::Db(err) => err.category(),
            AppError::Rejected => ErrorCategory::Other,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Managed functions under test.

#[managed_session]
async fn insert(session: &Session, id: i64, name: String) -> Result<(), OpsError> {
    insert_item(session, id, &name).await?;
    Ok(())
}

#[managed_session]
async fn insert_then_fail(session: &Session, id: i64) -> Result<(), AppError> {
    insert_item(session, id, "doomed")
        .await
        .map_err(OpsError::from)?;
    Err(AppError::Rejected)
}

#[managed_session]
async fn insert_then_panic(session: &Session, id: i64) -> Result<(), OpsError> {
    insert_item(session, id, "doomed").await?;
    panic!("the body panicked after writing");
}

/// Writes, then waits long enough to be cancelled in the middle of a statement on a server (or
/// of the body on SQLite).
#[managed_session]
async fn insert_then_wait(session: &Session, id: i64, backend: Backend) -> Result<(), OpsError> {
    insert_item(session, id, "doomed").await?;
    match sleep_sql(backend, 5) {
        Some(sql) => {
            session.execute_unprepared(&sql).await?;
        }
        // ops-scan: allow(session-held-across-io) -- waits inside the session on purpose to hit its timeout
        None => tokio::time::sleep(Duration::from_secs(5)).await,
    }
    Ok(())
}

#[managed_session(timeout = "300ms")]
async fn insert_with_timeout(session: &Session, id: i64, backend: Backend) -> Result<(), OpsError> {
    insert_item(session, id, "doomed").await?;
    match sleep_sql(backend, 30) {
        Some(sql) => {
            session.execute_unprepared(&sql).await?;
        }
        // ops-scan: allow(session-held-across-io) -- waits inside the session on purpose to hit its timeout
        None => tokio::time::sleep(Duration::from_secs(30)).await,
    }
    Ok(())
}

#[managed_session(propagation = "nested")]
async fn insert_nested(session: &Session, id: i64, fail: bool) -> Result<(), OpsError> {
    assert!(session.is_nested(), "a nested call runs in a savepoint");
    insert_item(session, id, "nested").await?;
    if fail {
        return Err(retryable(RetryReason::Deadlock));
    }
    Ok(())
}

#[managed_session(propagation = "requires_new", name = "audit")]
async fn audit(session: &Session, id: i64) -> Result<(), AppError> {
    insert_item(session, id, "audit")
        .await
        .map_err(OpsError::from)?;
    Ok(())
}

const WHOAMI_LINE: u32 = line!() + 2;
#[managed_session]
async fn whoami(session: &Session) -> Result<(String, String, u32), OpsError> {
    let origin = session.origin();
    Ok((
        session.name().to_owned(),
        origin.file().to_owned(),
        origin.line(),
    ))
}

#[managed_session(name = "renamed", read_only, isolation = "repeatable_read")]
async fn named(session: &Session) -> Result<String, OpsError> {
    Ok(session.name().to_owned())
}

/// A plain `fn`: its body runs synchronously, driven by `ops_sea::blocking`.
#[managed_session]
fn insert_blocking(session: &Session, id: i64) -> Result<u64, OpsError> {
    ops_sea::blocking::block_on(insert_item(session, id, "blocking"))?;
    Ok(1)
}

struct Items {
    prefix: String,
}

impl Items {
    #[tracing::instrument(skip(self))]
    #[managed_session]
    async fn insert(&self, session: &Session, id: i64) -> Result<(), OpsError> {
        insert_item(session, id, &format!("{}{id}", self.prefix)).await?;
        Ok(())
    }
}

#[async_trait]
trait ItemStore {
    async fn store(&self, session: &Session, id: i64) -> Result<(), OpsError>;
    async fn store_any(&self, source: &dyn SessionSource, id: i64) -> Result<(), OpsError>;
}

#[async_trait]
impl ItemStore for Items {
    #[managed_session]
    #[tracing::instrument(skip(self))]
    async fn store(&self, session: &Session, id: i64) -> Result<(), OpsError> {
        insert_item(session, id, &self.prefix).await?;
        Ok(())
    }

    #[db_retry(attempts = 2)]
    #[managed_session]
    async fn store_any(&self, source: &dyn SessionSource, id: i64) -> Result<(), OpsError> {
        insert_item(source, id, &self.prefix).await?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Commit, rollback, cancellation.

#[tokio::test]
async fn commits_on_ok() {
    let (t, admin, db) = setup("managed_commit").await;
    insert(&db, 1, "kept".to_owned()).await.expect("insert");
    assert_eq!(count(&admin, "items").await, 1);
    let stats = db.session_stats();
    assert_eq!(
        (stats.opened, stats.committed, stats.rolled_back),
        (1, 1, 0)
    );
    // Every source works: the Db, a shared reference to it, and a plain SeaORM connection.
    let shared = std::sync::Arc::new(db.clone());
    insert(&shared, 2, "arc".to_owned())
        .await
        .expect("insert via Arc");
    insert(db.connection(), 3, "connection".to_owned())
        .await
        .expect("insert via connection");
    assert_eq!(count(&admin, "items").await, 3);
    finish(t, db).await;
}

#[tokio::test]
async fn rolls_back_on_err_and_the_error_reaches_the_callers_type() {
    let (t, admin, db) = setup("managed_err").await;
    let err = insert_then_fail(&db, 1).await.expect_err("the body failed");
    assert!(matches!(err, AppError::Rejected), "{err:?}");
    assert_eq!(count(&admin, "items").await, 0);
    let stats = db.session_stats();
    assert_eq!((stats.committed, stats.rolled_back), (0, 1));
    finish(t, db).await;
}

#[tokio::test]
async fn rolls_back_on_panic_and_the_panic_continues() {
    let (t, admin, db) = setup("managed_panic").await;
    let handle = {
        let db = db.clone();
        tokio::spawn(async move { insert_then_panic(&db, 1).await })
    };
    let joined = bounded("the panicking task", STEP_TIMEOUT, handle).await;
    let panic = joined.expect_err("the task panicked");
    assert!(panic.is_panic());
    assert_eq!(count(&admin, "items").await, 0);
    assert_eq!(db.session_stats().rolled_back, 1);
    finish(t, db).await;
}

#[tokio::test]
async fn rolls_back_when_the_future_is_dropped_mid_query() {
    let (t, admin, db) = setup("managed_cancel").await;
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_millis(300),
        insert_then_wait(&db, 1, t.backend),
    )
    .await;
    assert!(outcome.is_err(), "the call was cancelled");
    // The rollback runs when the connection goes back to the pool; wait for it.
    let deadline = Instant::now() + STEP_TIMEOUT;
    while db.pool_state().in_use() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(count(&admin, "items").await, 0);
    let stats = db.session_stats();
    assert_eq!((stats.committed, stats.rolled_back), (0, 1));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the connection came back"
    );
    finish(t, db).await;
}

#[tokio::test]
async fn a_timeout_rolls_back_and_returns_a_statement_timeout() {
    let (t, admin, db) = setup("managed_timeout").await;
    let started = Instant::now();
    let err = bounded(
        "a session with a 300ms timeout",
        STEP_TIMEOUT,
        insert_with_timeout(&db, 1, t.backend),
    )
    .await
    .expect_err("the session timed out");
    assert_eq!(
        err.category(),
        ErrorCategory::Retryable(RetryReason::StatementTimeout)
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(count(&admin, "items").await, 0);
    finish(t, db).await;
}

// ---------------------------------------------------------------------------------------------
// Propagation.

#[tokio::test]
async fn joins_the_callers_session_without_committing_it() {
    let (t, admin, db) = setup("managed_join").await;
    let session = db.session().await.expect("session");
    insert(&session, 1, "joined".to_owned())
        .await
        .expect("joined insert");
    // A joined function that fails leaves the outcome to the owner, too.
    let err = insert_then_fail(&session, 2).await.expect_err("fails");
    assert!(matches!(err, AppError::Rejected));
    assert_eq!(
        count(&session, "items").await,
        2,
        "both writes are in the caller's session"
    );
    assert_eq!(count(&admin, "items").await, 0, "nothing committed yet");
    assert_eq!(db.session_stats().opened, 1, "no session of its own");
    session.commit().await.expect("commit");
    assert_eq!(count(&admin, "items").await, 2);
    finish(t, db).await;
}

#[tokio::test]
async fn nested_runs_in_a_savepoint() {
    let (t, admin, db) = setup("managed_nested").await;
    let session = db.session().await.expect("session");
    insert_item(&session, 1, "outer")
        .await
        .expect("outer insert");
    insert_nested(&session, 2, false)
        .await
        .expect("released savepoint");
    insert_nested(&session, 3, true)
        .await
        .expect_err("rolled back to its savepoint");
    session.commit().await.expect("commit");
    assert_eq!(count(&admin, "items").await, 2, "rows 1 and 2, not 3");
    finish(t, db).await;
}

#[tokio::test]
async fn requires_new_commits_on_its_own_connection() {
    let (t, admin, db) = setup("managed_requires_new").await;
    // SQLite has one writer: a write session inside a write session could never begin, so there
    // the outer session only reads, on a reader connection.
    let sqlite = t.backend == Backend::Sqlite;
    let options = match sqlite {
        true => SessionOptions::new().read_only(),
        false => SessionOptions::new(),
    };
    let session = db.session_with(options).await.expect("session");
    audit(&session, 1).await.expect("audit in its own session");
    if !sqlite {
        insert_item(&session, 2, "outer")
            .await
            .expect("outer insert");
    }
    session.rollback().await.expect("rollback");
    assert_eq!(
        count(&admin, "items").await,
        1,
        "the audit row outlived the rollback"
    );
    let stats = db.session_stats();
    assert_eq!(
        (stats.opened, stats.committed, stats.rolled_back),
        (2, 1, 1)
    );
    finish(t, db).await;
}

#[tokio::test]
async fn requires_new_fails_fast_when_the_pool_has_no_second_connection() {
    let (t, _admin, db) = setup_with("managed_requires_new_full", 1, 0).await;
    let session = db.session().await.expect("session");
    let started = Instant::now();
    let err = bounded(
        "requires_new on a full pool",
        STEP_TIMEOUT,
        audit(&session, 1),
    )
    .await
    .expect_err("no second connection");
    let AppError::Db(err) = err else {
        panic!("the pool's error reaches the caller's error type: {err:?}");
    };
    assert_eq!(
        err.category(),
        ErrorCategory::Retryable(RetryReason::PoolExhausted)
    );
    assert!(err.to_string().contains("requires_new"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "failed fast");
    session.rollback().await.expect("rollback");
    finish(t, db).await;
}

// ---------------------------------------------------------------------------------------------
// Names, origins and function shapes.

#[tokio::test]
async fn name_and_origin_are_the_functions() {
    let (t, _admin, db) = setup("managed_names").await;
    let (name, file, line) = whoami(&db).await.expect("whoami");
    assert_eq!(name, "managed::whoami");
    assert_eq!(file, file!());
    assert_eq!(line, WHOAMI_LINE);
    assert_eq!(named(&db).await.expect("named"), "renamed");
    finish(t, db).await;
}

#[tokio::test]
async fn methods_async_trait_and_instrument() {
    let (t, admin, db) = setup("managed_shapes").await;
    let items = Items {
        prefix: "item".to_owned(),
    };
    items.insert(&db, 1).await.expect("method");
    items
        .store_any(&db, 3)
        .await
        .expect("dyn SessionSource in a trait");
    // A trait method declared with `&Session` keeps its signature: it joins the caller's.
    let session = db.session().await.expect("session");
    items.store(&session, 2).await.expect("async_trait impl");
    items
        .store(&session, 4)
        .await
        .expect("joined by an async_trait impl");
    items
        .store_any(&session, 5)
        .await
        .expect("joined through dyn SessionSource");
    session.commit().await.expect("commit");
    assert_eq!(count(&admin, "items").await, 5);
    finish(t, db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_functions_run_synchronously() {
    let (t, admin, db) = setup("managed_blocking").await;
    let handle = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || {
            insert_blocking(&db, 1)?;
            retried_blocking(&db, 2)
        })
    };
    let result = bounded("the blocking calls", STEP_TIMEOUT, handle)
        .await
        .expect("the blocking task");
    assert_eq!(result.expect("blocking calls"), 2);
    assert_eq!(count(&admin, "items").await, 2);
    finish(t, db).await;
}

// ---------------------------------------------------------------------------------------------
// Retries.

#[db_retry(attempts = 3, initial = "5ms", jitter = false)]
#[managed_session]
fn retried_blocking(session: &Session, id: i64) -> Result<i64, OpsError> {
    ops_sea::blocking::block_on(insert_item(session, id, "retried"))?;
    Ok(id)
}

/// Attempt 1 meets a real conflict the backend reports as retryable; attempt 2 succeeds.
/// `calls` counts the attempts that reached the body.
#[db_retry(attempts = 3, initial = "10ms", max = "50ms")]
#[managed_session(isolation = "serializable")]
async fn rename_with_conflict(
    session: &Session,
    interferer: &DatabaseConnection,
    held: &tokio::sync::Mutex<Option<DatabaseTransaction>>,
    calls: &AtomicU32,
) -> Result<(), OpsError> {
    let attempt = calls.fetch_add(1, Ordering::SeqCst) + 1;
    match session.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            // Read row 1 (taking the snapshot), let another connection update it and commit,
            // then update it here: 40001, could not serialize access due to concurrent update.
            session
                .execute_unprepared("SELECT name FROM items WHERE id = 1")
                .await?;
            if attempt == 1 {
                interferer
                    .execute_unprepared("UPDATE items SET name = 'theirs' WHERE id = 1")
                    .await?;
            }
            session
                .execute_unprepared("UPDATE items SET name = 'ours' WHERE id = 1")
                .await?;
        }
        sea_orm::DbBackend::MySql => {
            // Lock row 1 here, let another connection lock rows 2..4 and wait for row 1, then
            // ask for row 2 here: a deadlock. InnoDB rolls back the smaller transaction, this one.
            session
                .execute_unprepared("UPDATE items SET name = 'ours' WHERE id = 1")
                .await?;
            if attempt == 1 {
                let waiting = held.lock().await.take();
                if let Some(txn) = waiting {
                    tokio::spawn(async move {
                        // Blocks until this attempt's deadlock releases row 1.
                        txn.execute_unprepared("UPDATE items SET name = 'theirs' WHERE id = 1")
                            .await
                            .expect("the other transaction gets row 1 after the deadlock");
                        txn.commit().await.expect("the other transaction commits");
                    });
                    wait_for_lock_wait(interferer).await;
                }
            }
            session
                .execute_unprepared("UPDATE items SET name = 'ours' WHERE id = 2")
                .await?;
        }
        _ => {
            // The conflict happened before the body (see the test): only the attempt that got
            // the write lock gets here.
            session
                .execute_unprepared("UPDATE items SET name = 'ours' WHERE id = 1")
                .await?;
        }
    }
    Ok(())
}

/// Waits until a transaction on this test's database waits for a row lock (other databases on
/// the server may have lock waits of their own).
async fn wait_for_lock_wait(admin: &DatabaseConnection) {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let row = admin
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::MySql,
                "SELECT COUNT(*) FROM information_schema.INNODB_TRX t \
                 JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id \
                 WHERE t.trx_state = 'LOCK WAIT' AND p.DB = DATABASE()",
            ))
            .await
            .expect("innodb_trx")
            .expect("innodb_trx row");
        if row.try_get_by_index::<i64>(0).unwrap_or(0) > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the other transaction never waited for row 1"
        );
        // InnoDB serves INNODB_TRX from a cache it refreshes only after 100ms without readers:
        // polling faster would read the same stale snapshot forever.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn retries_a_real_conflict_and_succeeds_on_attempt_2() {
    let t = TestDb::new("managed_retry_conflict").await;
    let admin = t.admin().await;
    items_table(&admin).await;
    // On SQLite the wait for the write lock is bounded by `pool_timeout` (it is also the busy
    // timeout): short, so attempt 1 gives up soon. Elsewhere the default is kept.
    let mut builder = Db::builder(&t.url).pool_size(2).max_overflow(2);
    if t.backend == Backend::Sqlite {
        builder = builder.pool_timeout(Duration::from_millis(500));
    }
    let db = builder.connect().await.expect("connect");
    for id in 1..=4 {
        insert_item(&admin, id, "initial").await.expect("seed");
    }
    // The transaction that conflicts with attempt 1, prepared where it must start early.
    let held = tokio::sync::Mutex::new(None);
    match t.backend {
        Backend::MySql => {
            let txn = admin.begin().await.expect("other transaction");
            // One primary-key lookup per row: on a table this small, `id IN (..)` would scan
            // and lock every row, row 1 included.
            for id in 2..=4 {
                txn.execute_unprepared(&format!(
                    "UPDATE items SET name = 'theirs' WHERE id = {id}"
                ))
                .await
                .expect("lock rows 2..4");
            }
            *held.lock().await = Some(txn);
        }
        Backend::Sqlite => {
            // The conflict SQLite's one-writer design still has: another process (here another
            // connection) holds the file's write lock. A write session starts with BEGIN
            // IMMEDIATE, so attempt 1 waits the busy timeout for the lock at BEGIN, before its
            // body runs, and fails with SQLITE_BUSY. The other transaction ends as soon as
            // attempt 1 has been given up (the retry is recorded before the back-off), not on
            // a guessed delay; attempt 2's BEGIN IMMEDIATE then gets the lock.
            let txn = admin.begin().await.expect("other transaction");
            txn.execute_unprepared("UPDATE items SET name = 'theirs' WHERE id = 4")
                .await
                .expect("take the write lock");
            let watched = db.clone();
            tokio::spawn(async move {
                let deadline = Instant::now() + STEP_TIMEOUT;
                while watched.error_stats().retries_attempted == 0 && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                txn.rollback().await.expect("release the write lock");
            });
        }
        Backend::Postgres => {}
    }
    let calls = AtomicU32::new(0);
    bounded(
        "a retried conflict",
        STEP_TIMEOUT,
        rename_with_conflict(&db, &admin, &held, &calls),
    )
    .await
    .expect("attempt 2 succeeds");
    // On SQLite attempt 1 failed at BEGIN IMMEDIATE, so only attempt 2 reached the body.
    let bodies = if t.backend == Backend::Sqlite { 1 } else { 2 };
    assert_eq!(calls.load(Ordering::SeqCst), bodies);
    let stats = db.error_stats();
    assert_eq!(stats.retries_attempted, 1, "{stats:?}");
    assert_eq!(stats.retries_succeeded, 1, "{stats:?}");
    // The conflict was the real one each backend reports, classified from its code.
    let expected = ErrorCategory::Retryable(match t.backend {
        Backend::Postgres => RetryReason::SerializationFailure,
        Backend::MySql => RetryReason::Deadlock,
        Backend::Sqlite => RetryReason::Busy,
    });
    assert_eq!(
        stats.retries_by_category.get(&expected),
        Some(&1),
        "{stats:?}"
    );
    // A fresh session per attempt. On SQLite attempt 1's session never opened (its BEGIN
    // IMMEDIATE failed), so there is nothing to roll back and only attempt 2's is counted.
    let sessions = db.session_stats();
    let expected_sessions = if t.backend == Backend::Sqlite {
        (1, 1, 0)
    } else {
        (2, 1, 1)
    };
    assert_eq!(
        (sessions.opened, sessions.committed, sessions.rolled_back),
        expected_sessions,
        "{sessions:?}"
    );
    drop(held);
    finish(t, db).await;
}

#[db_retry(attempts = 3, initial = "1ms", jitter = false)]
#[managed_session]
async fn always_deadlocked(
    session: &Session,
    counter: &DatabaseConnection,
) -> Result<(), OpsError> {
    bump(counter).await?;
    insert_item(session, 1, "never committed").await?;
    Err(retryable(RetryReason::Deadlock))
}

#[tokio::test]
async fn gives_up_after_the_last_attempt() {
    let (t, admin, db) = setup("managed_retry_gives_up").await;
    let counter = attempt_counter(&t, &admin).await;
    let err = always_deadlocked(&db, &counter)
        .await
        .expect_err("gives up");
    assert_eq!(
        err.category(),
        ErrorCategory::Retryable(RetryReason::Deadlock)
    );
    assert_eq!(attempts_counted(&counter).await, 3);
    assert_eq!(count(&admin, "items").await, 0);
    let stats = db.error_stats();
    assert_eq!(
        (stats.retries_attempted, stats.retries_exhausted),
        (2, 1),
        "{stats:?}"
    );
    assert_eq!(db.session_stats().rolled_back, 3);
    finish(t, db).await;
}

#[db_retry(attempts = 5, initial = "1ms")]
#[managed_session]
async fn insert_duplicate(session: &Session, counter: &DatabaseConnection) -> Result<(), OpsError> {
    bump(counter).await?;
    insert_item(session, 1, "duplicate").await?;
    Ok(())
}

#[tokio::test]
async fn an_integrity_error_is_attempted_exactly_once() {
    let (t, admin, db) = setup("managed_retry_integrity").await;
    insert_item(&admin, 1, "original").await.expect("seed");
    let counter = attempt_counter(&t, &admin).await;
    let err = insert_duplicate(&db, &counter)
        .await
        .expect_err("duplicate key");
    assert_eq!(
        err.category(),
        ErrorCategory::Integrity(IntegrityKind::Unique),
        "{err}"
    );
    assert_eq!(attempts_counted(&counter).await, 1);
    assert_eq!(db.error_stats().retries_attempted, 0);
    finish(t, db).await;
}

#[db_retry(attempts = 3, initial = "1ms")]
#[managed_session]
async fn commit_unknown(session: &Session, counter: &DatabaseConnection) -> Result<(), OpsError> {
    let _ = session;
    bump(counter).await?;
    Err(OpsError::new(
        ErrorCategory::CommitUnknown,
        "the COMMIT's outcome is unknown",
    ))
}

#[db_retry(attempts = 3, initial = "1ms", idempotent)]
#[managed_session]
async fn commit_unknown_idempotent(
    session: &Session,
    counter: &DatabaseConnection,
) -> Result<(), OpsError> {
    let _ = session;
    bump(counter).await?;
    Err(OpsError::new(
        ErrorCategory::CommitUnknown,
        "the COMMIT's outcome is unknown",
    ))
}

#[tokio::test]
async fn commit_unknown_is_rerun_only_when_idempotent() {
    let (t, admin, db) = setup("managed_retry_commit_unknown").await;
    let counter = attempt_counter(&t, &admin).await;
    let err = commit_unknown(&db, &counter).await.expect_err("not re-run");
    assert_eq!(err.category(), ErrorCategory::CommitUnknown);
    assert_eq!(attempts_counted(&counter).await, 1);
    commit_unknown_idempotent(&db, &counter)
        .await
        .expect_err("re-run, then given up");
    assert_eq!(attempts_counted(&counter).await, 1 + 3);
    finish(t, db).await;
}

#[db_retry(attempts = 4, initial = "1ms")]
#[managed_session]
async fn deadlocked_until(
    session: &Session,
    calls: &AtomicU32,
    succeed_on: u32,
    memo: String,
) -> Result<String, AppError> {
    let attempt = calls.fetch_add(1, Ordering::SeqCst) + 1;
    insert_item(session, i64::from(attempt), &memo)
        .await
        .map_err(OpsError::from)?;
    if attempt < succeed_on {
        return Err(retryable(RetryReason::SerializationFailure).into());
    }
    Ok(memo)
}

#[tokio::test]
async fn a_joined_call_is_attempted_once_and_its_owner_retries() {
    let (t, admin, db) = setup("managed_retry_joined").await;
    let calls = AtomicU32::new(0);
    let session = db.session().await.expect("session");
    let err = deadlocked_until(&session, &calls, 2, "memo".to_owned())
        .await
        .expect_err("attempted once inside the caller's session");
    assert!(
        matches!(err, AppError::Db(ref e) if e.is_retryable()),
        "{err:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    session.rollback().await.expect("rollback");
    // Called with the Db, each attempt gets a fresh session: the rows of failed attempts are
    // rolled back with them, and the owned argument is handed to every attempt.
    let calls = AtomicU32::new(0);
    let memo = deadlocked_until(&db, &calls, 3, "memo".to_owned())
        .await
        .expect("attempt 3 succeeds");
    assert_eq!(memo, "memo");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(count(&admin, "items").await, 1, "only attempt 3's row");
    finish(t, db).await;
}

#[db_retry(attempts = 3, initial = "1ms", on = [LockTimeout])]
async fn retried_alone(db: &Db, calls: &AtomicU32, reason: RetryReason) -> Result<u32, OpsError> {
    let _ = db.backend();
    let attempt = calls.fetch_add(1, Ordering::SeqCst) + 1;
    if attempt < 3 {
        return Err(retryable(reason));
    }
    Ok(attempt)
}

#[tokio::test]
async fn db_retry_alone_on_a_function_taking_db() {
    let (t, _admin, db) = setup("managed_retry_alone").await;
    let calls = AtomicU32::new(0);
    let attempt = retried_alone(&db, &calls, RetryReason::LockTimeout)
        .await
        .expect("retried");
    assert_eq!(attempt, 3);
    assert_eq!(db.error_stats().retries_attempted, 2);
    // `on = [LockTimeout]` replaces the default reasons: a deadlock is not retried.
    let calls = AtomicU32::new(0);
    retried_alone(&db, &calls, RetryReason::Deadlock)
        .await
        .expect_err("not in the set");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    finish(t, db).await;
}
