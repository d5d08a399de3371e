//! SQLite's one writer: write sessions queue for it in order and never fight over the lock, reads
//! never wait for it, a waiting writer gives up after `pool_timeout`, and a `read_only` session
//! cannot write, in a file and in memory.
//!
//! The read-only check of every backend is in `sessions.rs`; these tests are SQLite's design.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ops_sea::prelude::*;
use ops_sea::run_managed;
use ops_tests::fixtures::{count, insert_item, items_table};
use ops_tests::{Backend, STEP_TIMEOUT, TestDb, bounded, require_backend};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

async fn setup(name: &str, pool_timeout: Duration) -> (TestDb, Db) {
    let t = TestDb::new(name).await;
    let admin = t.admin().await;
    items_table(&admin).await;
    let _ = admin.close().await;
    let db = Db::builder(&t.url)
        .pool_size(4)
        .max_overflow(4)
        .pool_timeout(pool_timeout)
        .connect()
        .await
        .expect("connect");
    (t, db)
}

async fn scalar<C: ConnectionTrait>(conn: &C, sql: &str) -> i64 {
    let row = conn
        .query_one_raw(Statement::from_string(DbBackend::Sqlite, sql.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"))
        .expect("a row");
    row.try_get_by_index(0).expect("an integer")
}

/// A read, then a write that depends on it: the shape that upgrades a read lock and dies with
/// `SQLITE_BUSY_SNAPSHOT` when two connections write at once.
#[managed_session]
async fn read_then_write(session: &Session, id: i64) -> Result<(), OpsError> {
    let before = count(session, "items").await;
    tokio::task::yield_now().await;
    insert_item(session, id, &format!("after {before}")).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_write_sessions_queue_without_busy_errors() {
    if !require_backend(
        Backend::Sqlite,
        "concurrent_write_sessions_queue_without_busy_errors",
    ) {
        return;
    }
    let (t, db) = setup("sqlite_writers", Duration::from_secs(30)).await;
    let tasks: Vec<_> = (0..16)
        .map(|task| {
            let db = db.clone();
            tokio::spawn(async move {
                for n in 0..25 {
                    read_then_write(&db, task * 1000 + n).await?;
                }
                Ok::<(), OpsError>(())
            })
        })
        .collect();
    for task in tasks {
        bounded("a writer", Duration::from_secs(60), task)
            .await
            .expect("writer task")
            .expect("every write session commits on the first attempt");
    }
    assert_eq!(count(&db, "items").await, 16 * 25);
    let errors = db.error_stats();
    assert_eq!(errors.total, 0, "no statement failed: {:?}", errors.by_code);
    let sessions = db.session_stats();
    assert_eq!(sessions.committed, 16 * 25);
    db.close().await;
    t.cleanup().await;
}

#[tokio::test]
async fn reads_and_read_only_sessions_do_not_wait_for_a_write_session() {
    if !require_backend(Backend::Sqlite, "reads_do_not_wait_for_a_write_session") {
        return;
    }
    let (t, db) = setup("sqlite_readers", Duration::from_secs(30)).await;
    insert_item(&db, 1, "committed").await.expect("plain write");
    let writing = db.session().await.expect("write session");
    insert_item(&writing, 2, "uncommitted")
        .await
        .expect("write inside");
    // Plain reads and read-only sessions run on the readers and see the last commit.
    let started = Instant::now();
    assert_eq!(count(&db, "items").await, 1);
    let reading = bounded(
        "a read-only session beside a write session",
        STEP_TIMEOUT,
        db.session_with(SessionOptions::new().read_only()),
    )
    .await
    .expect("read-only session");
    assert_eq!(count(&reading, "items").await, 1);
    reading.commit().await.expect("commit the read");
    assert!(started.elapsed() < Duration::from_secs(2));
    writing.commit().await.expect("commit the write");
    assert_eq!(
        count(&db, "items").await,
        2,
        "a read after a commit sees it"
    );
    db.close().await;
    t.cleanup().await;
}

#[tokio::test]
async fn a_waiting_writer_gives_up_after_pool_timeout() {
    if !require_backend(
        Backend::Sqlite,
        "a_waiting_writer_gives_up_after_pool_timeout",
    ) {
        return;
    }
    let pool_timeout = Duration::from_millis(400);
    let (t, db) = setup("sqlite_queue_timeout", pool_timeout).await;
    let holder = db.session().await.expect("first write session");
    let started = Instant::now();
    let err = bounded("a second write session", STEP_TIMEOUT, db.session())
        .await
        .expect_err("the writer is taken");
    let waited = started.elapsed();
    assert_eq!(
        err.category(),
        ErrorCategory::Retryable(RetryReason::PoolExhausted),
        "{err}"
    );
    assert!(waited >= pool_timeout, "gave up after {waited:?}");
    // A plain write waits in the same queue.
    let err = bounded("a plain write", STEP_TIMEOUT, insert_item(&db, 1, "x"))
        .await
        .expect_err("the writer is taken");
    assert_eq!(
        OpsError::from(err).category(),
        ErrorCategory::Retryable(RetryReason::PoolExhausted)
    );
    holder.rollback().await.expect("rollback");
    insert_item(&db, 1, "x")
        .await
        .expect("the writer is free again");
    db.close().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_writers_are_served_in_arrival_order() {
    if !require_backend(
        Backend::Sqlite,
        "waiting_writers_are_served_in_arrival_order",
    ) {
        return;
    }
    let (t, db) = setup("sqlite_fifo", Duration::from_secs(30)).await;
    let holder = db.session().await.expect("first write session");
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut waiting = Vec::new();
    for n in 0..6 {
        let (db, order) = (db.clone(), Arc::clone(&order));
        waiting.push(tokio::spawn(async move {
            let s = db.session().await.expect("a queued write session");
            order.lock().expect("order").push(n);
            s.commit().await.expect("commit");
        }));
        // Each waiter is queued before the next one arrives.
        // ops-scan: allow(session-held-across-io) -- the test holds the writer on purpose so the waiters queue behind it
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    holder.commit().await.expect("commit");
    for w in waiting {
        bounded("a waiter", STEP_TIMEOUT, w).await.expect("waiter");
    }
    assert_eq!(*order.lock().expect("order"), vec![0, 1, 2, 3, 4, 5]);
    db.close().await;
    t.cleanup().await;
}

#[tokio::test]
async fn requires_new_write_inside_a_write_session_fails_fast() {
    if !require_backend(
        Backend::Sqlite,
        "requires_new_write_inside_a_write_session_fails_fast",
    ) {
        return;
    }
    let (t, db) = setup("sqlite_requires_new", Duration::from_secs(10)).await;
    let outer = db.session().await.expect("write session");
    let started = Instant::now();
    let err = run_managed(
        &outer,
        SessionOptions::new().propagation(Propagation::RequiresNew),
        std::panic::Location::caller(),
        |_s| async move { Ok::<(), OpsError>(()) },
    )
    .await
    .expect_err("the outer session holds the writer");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(err.to_string().contains("one writer"), "{err}");
    // A read-only session may still begin beside it, on a reader.
    run_managed(
        &outer,
        SessionOptions::new()
            .propagation(Propagation::RequiresNew)
            .read_only(),
        std::panic::Location::caller(),
        |s| async move {
            count(&s, "items").await;
            Ok::<(), OpsError>(())
        },
    )
    .await
    .expect("a read-only session beside the writer");
    outer.rollback().await.expect("rollback");
    db.close().await;
    t.cleanup().await;
}

#[tokio::test]
async fn file_databases_run_in_wal_mode_with_synchronous_normal_and_foreign_keys() {
    if !require_backend(Backend::Sqlite, "file_databases_run_in_wal_mode") {
        return;
    }
    let (t, db) = setup("sqlite_pragmas", Duration::from_secs(5)).await;
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA journal_mode",
        ))
        .await
        .expect("journal mode")
        .expect("a row");
    assert_eq!(row.try_get_by_index::<String>(0).expect("text"), "wal");
    // 1 = NORMAL.
    assert_eq!(scalar(&db, "PRAGMA synchronous").await, 1);
    assert_eq!(scalar(&db, "PRAGMA foreign_keys").await, 1);
    let reader = db
        .session_with(SessionOptions::new().read_only())
        .await
        .expect("read-only session");
    assert_eq!(scalar(&reader, "PRAGMA foreign_keys").await, 1);
    assert_eq!(scalar(&reader, "PRAGMA query_only").await, 1);
    reader.commit().await.expect("commit");
    db.close().await;
    t.cleanup().await;
}

#[tokio::test]
async fn memory_database_read_only_session_fails_then_the_connection_writes_again() {
    if !require_backend(Backend::Sqlite, "memory_database_read_only_session") {
        return;
    }
    let db = Db::connect("sqlite::memory:").await.expect("connect");
    items_table(&db).await;
    let reading = db
        .session_with(SessionOptions::new().read_only())
        .await
        .expect("read-only session");
    let err = insert_item(&reading, 1, "refused")
        .await
        .expect_err("a read-only session cannot write");
    assert_eq!(OpsError::from(err).category(), ErrorCategory::Programming);
    reading.rollback().await.expect("rollback");
    // `query_only` is off again on the one shared connection.
    insert_item(&db, 2, "plain").await.expect("plain write");
    let writing = db.session().await.expect("write session");
    insert_item(&writing, 3, "session").await.expect("write");
    writing.commit().await.expect("commit");
    assert_eq!(count(&db, "items").await, 2);
    // The same after a read-only session that was dropped rather than finished.
    // ops-scan: allow(unfinished-session) -- the test drops a read-only session on purpose
    let dropped = db
        .session_with(SessionOptions::new().read_only())
        .await
        .expect("read-only session");
    drop(dropped);
    insert_item(&db, 4, "after drop")
        .await
        .expect("plain write after a dropped read-only session");
    assert_eq!(count(&db, "items").await, 3);
    db.close().await;
}

static CALLS: AtomicU32 = AtomicU32::new(0);

#[db_retry(attempts = 3)]
#[managed_session(read_only = true)]
async fn sneaky_write(session: &Session) -> Result<(), OpsError> {
    CALLS.fetch_add(1, Ordering::Relaxed);
    insert_item(session, 9, "sneaky").await?;
    Ok(())
}

#[tokio::test]
async fn memory_database_read_only_macro_is_not_retried() {
    if !require_backend(
        Backend::Sqlite,
        "memory_database_read_only_macro_is_not_retried",
    ) {
        return;
    }
    let db = Db::connect("sqlite::memory:").await.expect("connect");
    items_table(&db).await;
    let err = sneaky_write(&db).await.expect_err("refused");
    assert_eq!(err.category(), ErrorCategory::Programming);
    assert_eq!(
        CALLS.load(Ordering::Relaxed),
        1,
        "a Programming error is not retried"
    );
    assert_eq!(count(&db, "items").await, 0);
    db.close().await;
}
