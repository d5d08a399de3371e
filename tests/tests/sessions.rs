//! Sessions: commit, rollback, drop, savepoints, the managed runner (error, panic, cancellation,
//! timeout), propagation, and the tracker's counts and origins.

use std::time::{Duration, Instant};

use ops_sea::prelude::*;
use ops_sea::run_managed;
use ops_tests::fixtures::{count, insert_item, items_table, sleep_sql};
use ops_tests::{Backend, STEP_TIMEOUT, TestDb, bounded};
use sea_orm::ConnectionTrait;

async fn setup(name: &str) -> (TestDb, sea_orm::DatabaseConnection, Db) {
    let t = TestDb::new(name).await;
    let admin = t.admin().await;
    items_table(&admin).await;
    let db = Db::builder(&t.url)
        .pool_size(2)
        .max_overflow(2)
        .leak_threshold(Some(Duration::from_millis(200)))
        .connect()
        .await
        .expect("connect");
    (t, admin, db)
}

async fn finish(t: TestDb, db: Db) {
    // Every connection is back in the pool and idle: none was kept by a session.
    let deadline = Instant::now() + Duration::from_secs(5);
    while db.pool_state().in_use() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(db.pool_state().in_use(), 0, "a connection was not returned");
    assert_eq!(db.session_stats().active, 0, "a session is still open");
    db.close().await;
    t.cleanup().await;
}

#[tokio::test]
async fn commit_persists_and_rollback_discards() {
    let (t, admin, db) = setup("commit_rollback").await;
    let s = db.session().await.unwrap();
    insert_item(&s, 1, "kept").await.unwrap();
    s.commit().await.unwrap();
    let s = db.session().await.unwrap();
    insert_item(&s, 2, "discarded").await.unwrap();
    s.rollback().await.unwrap();
    assert_eq!(count(&admin, "items").await, 1);
    let stats = db.session_stats();
    assert_eq!(
        (stats.opened, stats.committed, stats.rolled_back),
        (2, 1, 1)
    );
    finish(t, db).await;
}

#[tokio::test]
async fn dropped_session_is_rolled_back_and_counted_with_origin() {
    let (t, admin, db) = setup("dropped").await;
    {
        // ops-scan: allow(unfinished-session) -- drops the session unfinished on purpose to test the count
        let s = db.session().await.unwrap();
        insert_item(&s, 1, "never committed").await.unwrap();
        assert_eq!(s.origin().file(), file!());
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while db.pool_state().in_use() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(count(&admin, "items").await, 0);
    let stats = db.session_stats();
    assert_eq!(stats.dropped_unfinished, 1);
    assert_eq!(stats.active, 0);
    finish(t, db).await;
}

#[tokio::test]
async fn nested_savepoint_rolls_back_alone() {
    let (t, admin, db) = setup("nested").await;
    let s = db.session().await.unwrap();
    insert_item(&s, 1, "outer").await.unwrap();
    let inner = s.nested().await.unwrap();
    insert_item(&inner, 2, "inner").await.unwrap();
    inner.rollback().await.unwrap();
    let inner = s.nested().await.unwrap();
    insert_item(&inner, 3, "inner kept").await.unwrap();
    inner.commit().await.unwrap();
    s.commit().await.unwrap();
    assert_eq!(count(&admin, "items").await, 2);
    finish(t, db).await;
}

#[tokio::test]
async fn commit_with_a_live_clone_is_refused() {
    let (t, admin, db) = setup("live_clone").await;
    let s = db.session().await.unwrap();
    insert_item(&s, 1, "x").await.unwrap();
    let clone = s.clone();
    let err = s.commit().await.expect_err("a clone is alive");
    assert_eq!(err.category(), ErrorCategory::Programming);
    drop(clone);
    assert_eq!(count(&admin, "items").await, 0);
    finish(t, db).await;
}

#[tokio::test]
async fn run_commits_on_ok_and_rolls_back_on_err() {
    let (t, admin, db) = setup("run_ok_err").await;
    let n = db
        .run(SessionOptions::new().name("ok"), |s| async move {
            insert_item(&s, 1, "ok").await?;
            Ok::<_, OpsError>(1)
        })
        .await
        .unwrap();
    assert_eq!(n, 1);
    let err = db
        .run(SessionOptions::new(), |s| async move {
            insert_item(&s, 2, "err").await?;
            Err::<(), _>(OpsError::new(ErrorCategory::Other, "the work failed"))
        })
        .await
        .expect_err("work failed");
    assert_eq!(err.detail(), "the work failed");
    assert_eq!(count(&admin, "items").await, 1);
    let stats = db.session_stats();
    assert_eq!(
        (stats.committed, stats.rolled_back, stats.dropped_unfinished),
        (1, 1, 0)
    );
    finish(t, db).await;
}

#[tokio::test]
async fn run_rolls_back_on_panic_and_the_panic_continues() {
    let (t, admin, db) = setup("run_panic").await;
    let db2 = db.clone();
    let joined = tokio::spawn(async move {
        db2.run(SessionOptions::new(), |s| async move {
            insert_item(&s, 1, "panics").await?;
            if s.name() == "session" {
                panic!("boom in the work");
            }
            Ok::<(), OpsError>(())
        })
        .await
    })
    .await;
    let panic = joined.expect_err("the panic reached the caller");
    assert!(panic.is_panic());
    assert_eq!(count(&admin, "items").await, 0);
    assert_eq!(db.session_stats().rolled_back, 1);
    finish(t, db).await;
}

#[tokio::test]
async fn run_rolls_back_when_cancelled_mid_query() {
    let (t, admin, db) = setup("run_cancel").await;
    let backend = t.backend;
    let work = db.run(SessionOptions::new(), move |s| async move {
        insert_item(&s, 1, "cancelled").await?;
        match sleep_sql(backend, 5) {
            Some(sql) => {
                s.execute_unprepared(&sql).await?;
            }
            None => tokio::time::sleep(Duration::from_secs(5)).await,
        }
        Ok::<(), OpsError>(())
    });
    // Dropping the future mid-query is the cancellation.
    let started = Instant::now();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), work)
            .await
            .is_err()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.pool_state().in_use() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(count(&admin, "items").await, 0);
    let stats = db.session_stats();
    assert_eq!((stats.rolled_back, stats.dropped_unfinished), (1, 0));
    // The connection came back usable.
    bounded(
        "query after cancel",
        STEP_TIMEOUT,
        db.execute_unprepared("SELECT 1"),
    )
    .await
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(15));
    finish(t, db).await;
}

#[tokio::test]
async fn session_timeout_cancels_rolls_back_and_returns_the_connection() {
    let (t, admin, db) = setup("timeout").await;
    let backend = t.backend;
    let started = Instant::now();
    let err = bounded(
        "timed session",
        STEP_TIMEOUT,
        db.run(
            SessionOptions::new().timeout(Duration::from_millis(500)),
            move |s| async move {
                insert_item(&s, 1, "too slow").await?;
                match sleep_sql(backend, 10) {
                    Some(sql) => {
                        s.execute_unprepared(&sql).await?;
                    }
                    None => tokio::time::sleep(Duration::from_secs(10)).await,
                }
                Ok::<(), OpsError>(())
            },
        ),
    )
    .await
    .expect_err("timed out");
    let elapsed = started.elapsed();
    assert_eq!(
        err.category(),
        ErrorCategory::Retryable(RetryReason::StatementTimeout),
        "{err}"
    );
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert_eq!(count(&admin, "items").await, 0);
    // The connection comes back clean, well before the server-side sleep would have ended.
    let deadline = Instant::now() + Duration::from_secs(5);
    while db.pool_state().in_use() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(db.pool_state().in_use(), 0);
    insert_item(&db, 2, "after").await.unwrap();
    assert_eq!(count(&admin, "items").await, 1);
    finish(t, db).await;
}

#[tokio::test]
async fn required_joins_and_never_commits_for_the_owner() {
    let (t, admin, db) = setup("join").await;
    let outer = db.session().await.unwrap();
    run_managed(
        &outer,
        SessionOptions::new(),
        std::panic::Location::caller(),
        |s| async move {
            insert_item(&s, 1, "joined").await?;
            Ok::<(), OpsError>(())
        },
    )
    .await
    .unwrap();
    // Still the owner's to decide: rolled back here, so the joined insert is gone.
    outer.rollback().await.unwrap();
    assert_eq!(count(&admin, "items").await, 0);
    assert_eq!(db.session_stats().opened, 1, "joining opened no session");
    finish(t, db).await;
}

#[tokio::test]
async fn nested_propagation_uses_a_savepoint() {
    let (t, admin, db) = setup("nested_prop").await;
    let outer = db.session().await.unwrap();
    insert_item(&outer, 1, "outer").await.unwrap();
    let result = run_managed(
        &outer,
        SessionOptions::new().propagation(Propagation::Nested),
        std::panic::Location::caller(),
        |s| async move {
            insert_item(&s, 2, "inner").await?;
            Err::<(), _>(OpsError::new(ErrorCategory::Other, "inner fails"))
        },
    )
    .await;
    assert!(result.is_err());
    outer.commit().await.unwrap();
    assert_eq!(count(&admin, "items").await, 1);
    finish(t, db).await;
}

#[tokio::test]
async fn requires_new_commits_independently_and_fails_fast_without_a_connection() {
    let t = TestDb::new("requires_new").await;
    let admin = t.admin().await;
    items_table(&admin).await;
    let db = Db::builder(&t.url)
        .pool_size(1)
        .max_overflow(1)
        .pool_timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();
    // SQLite has one writer: the outer session only reads, so it is a read-only session (on a
    // reader connection) and the inner one can take the writer.
    let sqlite = t.backend == Backend::Sqlite;
    let outer = match sqlite {
        true => db.session_with(SessionOptions::new().read_only()).await,
        false => db.session().await,
    }
    .unwrap();
    outer.execute_unprepared("SELECT 1").await.unwrap();
    run_managed(
        &outer,
        SessionOptions::new().propagation(Propagation::RequiresNew),
        std::panic::Location::caller(),
        |s| async move {
            insert_item(&s, 1, "independent").await?;
            Ok::<(), OpsError>(())
        },
    )
    .await
    .unwrap();
    // Both connections in use now: a further requires_new must fail at once, not wait 10s. On
    // SQLite the outer session holds the one reader and `second` the writer; a read-only
    // requires_new needs a second reader.
    let second = db.session().await.unwrap();
    let started = Instant::now();
    let third = match sqlite {
        true => SessionOptions::new().read_only(),
        false => SessionOptions::new(),
    };
    let err = run_managed(
        &outer,
        third.propagation(Propagation::RequiresNew),
        std::panic::Location::caller(),
        |_s| async move { Ok::<(), OpsError>(()) },
    )
    .await
    .expect_err("no connection left");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        err.category(),
        ErrorCategory::Retryable(RetryReason::PoolExhausted)
    );
    second.rollback().await.unwrap();
    outer.rollback().await.unwrap();
    assert_eq!(count(&admin, "items").await, 1);
    db.close().await;
    t.cleanup().await;
}

#[tokio::test]
async fn long_running_sessions_are_reported_with_origin_and_age() {
    let (t, _admin, db) = setup("long_running").await;
    let s = db
        .session_with(SessionOptions::new().name("assembly_job"))
        .await
        .unwrap();
    let line = line!() - 3;
    // ops-scan: allow(session-held-across-io) -- outlives the leak threshold on purpose
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stats = db.session_stats();
    assert_eq!(stats.long_running.len(), 1);
    let long = &stats.long_running[0];
    assert_eq!(long.name, "assembly_job");
    assert!(
        long.origin.ends_with(&format!("sessions.rs:{line}")),
        "{}",
        long.origin
    );
    assert!(long.age >= Duration::from_millis(200));
    s.commit().await.unwrap();
    assert!(db.session_stats().long_running.is_empty());
    finish(t, db).await;
}

#[tokio::test]
async fn concurrent_sessions_are_counted_exactly() {
    let (t, admin, db) = setup("concurrent").await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            db.run(SessionOptions::new(), move |s| async move {
                s.execute_unprepared("SELECT 1").await?;
                if i % 2 == 0 {
                    insert_item(&s, i, "even").await?;
                    Ok(())
                } else {
                    Err(OpsError::new(ErrorCategory::Other, "odd"))
                }
            })
            .await
        }));
    }
    for task in tasks {
        let _ = bounded("task", STEP_TIMEOUT, task).await.unwrap();
    }
    let stats = db.session_stats();
    assert_eq!(stats.opened, 20);
    assert_eq!(stats.committed + stats.rolled_back, 20);
    assert!(stats.committed >= 1);
    assert!(stats.peak >= 1 && stats.peak <= 4);
    assert_eq!(
        count(&admin, "items").await,
        i64::try_from(stats.committed).unwrap()
    );
    finish(t, db).await;
}

/// Inserts a row in a read-only session: the reproduction.
#[managed_session(read_only = true)]
async fn insert_read_only(session: &Session) -> Result<(), OpsError> {
    insert_item(session, 1, "read-only").await?;
    Ok(())
}

/// A read-only session that writes fails the same way on every backend: PostgreSQL refuses with
/// 25006, MySQL/MariaDB with 1792, SQLite with `SQLITE_READONLY` (8) from `query_only`; all three
/// are `Programming`, nothing is written, and the pool's next write session works.
#[tokio::test]
async fn read_only_session_refuses_a_write_on_every_backend() {
    let (t, admin, db) = setup("read_only_write").await;
    let expected_code = match t.backend {
        Backend::Postgres => "25006",
        Backend::MySql => "1792",
        Backend::Sqlite => "8",
    };
    let err = bounded("the macro", STEP_TIMEOUT, insert_read_only(&db))
        .await
        .expect_err("a read-only session must not write");
    assert_eq!(err.category(), ErrorCategory::Programming, "{err}");
    assert_eq!(err.code(), Some(expected_code), "{err}");
    assert!(!err.is_retryable());

    let s = db
        .session_with(SessionOptions::new().read_only())
        .await
        .unwrap();
    let raw = insert_item(&s, 2, "read-only").await.expect_err("refused");
    let err = OpsError::from(raw);
    assert_eq!(err.category(), ErrorCategory::Programming, "{err}");
    assert_eq!(err.code(), Some(expected_code), "{err}");
    s.rollback().await.unwrap();
    assert_eq!(count(&admin, "items").await, 0, "nothing was written");

    // The connections the read-only sessions used write again afterwards.
    for id in 3..6 {
        let s = db.session().await.unwrap();
        insert_item(&s, id, "writable").await.unwrap();
        s.commit().await.unwrap();
        insert_item(&db, id + 10, "plain").await.unwrap();
    }
    assert_eq!(count(&admin, "items").await, 6);
    let stats = db.error_stats();
    assert!(
        stats
            .by_category
            .get(&ErrorCategory::Programming)
            .is_some_and(|n| *n >= 2),
        "{:?}",
        stats.by_category
    );
    finish(t, db).await;
}

/// A finished session still answers `get_database_backend` with the backend it ran on. It used to
/// answer SQLite once its transaction was gone, whatever the backend, so this fails before the
/// fix on PostgreSQL and MariaDB (and passes trivially on SQLite).
#[tokio::test]
async fn a_finished_session_keeps_its_backend() {
    let (t, _admin, db) = setup("finished_backend").await;
    let expected = db.get_database_backend();
    let mut s = db.session().await.unwrap();
    assert_eq!(s.get_database_backend(), expected);
    // ops-scan: allow(unfinished-session) -- finished in place by rollback_in_place below
    let mut nested = s.nested().await.unwrap();
    ops_sea::__private::rollback_in_place(&mut nested)
        .await
        .unwrap();
    assert_eq!(
        nested.get_database_backend(),
        expected,
        "a finished savepoint"
    );
    assert!(nested.execute_unprepared("SELECT 1").await.is_err());
    drop(nested);
    ops_sea::__private::rollback_in_place(&mut s).await.unwrap();
    assert_eq!(s.get_database_backend(), expected, "a finished session");
    assert!(s.execute_unprepared("SELECT 1").await.is_err());
    drop(s);
    let stats = db.session_stats();
    assert_eq!((stats.rolled_back, stats.dropped_unfinished), (1, 0));
    finish(t, db).await;
}

/// A `begin*` of SeaORM's `TransactionTrait` that fails on a session is counted in the `Db`'s
/// error stats, once, as it is on the `Db` itself. Sessions did not record these failures.
///
/// A savepoint cannot be made to fail inside an open SQLite transaction, so this needs a server:
/// asking for an isolation level inside a transaction fails on PostgreSQL once a statement ran
/// (25001) and on MariaDB at once (1568); on PostgreSQL an aborted transaction also refuses the
/// plain `SAVEPOINT` (25P02).
#[tokio::test]
async fn a_failed_begin_on_a_session_is_recorded_once() {
    use sea_orm::{IsolationLevel, TransactionOptions, TransactionTrait};

    if !ops_tests::require_server("a_failed_begin_on_a_session_is_recorded_once") {
        return;
    }
    let (t, _admin, db) = setup("failed_begin").await;
    if db.config().pgbouncer.is_some() {
        // Behind PgBouncer a SeaORM transaction inside a session is refused before it reaches
        // the server (`pgbouncer.rs` tests that refusal).
        eprintln!(
            "skipped: a_failed_begin_on_a_session_is_recorded_once needs PostgreSQL directly, not \
             PgBouncer"
        );
        finish(t, db).await;
        return;
    }
    let expected_code = match ops_tests::backend() {
        Backend::Postgres => "25001",
        _ => "1568",
    };
    let serializable = || TransactionOptions {
        isolation_level: Some(IsolationLevel::Serializable),
        ..Default::default()
    };
    for attempt in ["begin_with_config", "begin_with_options"] {
        let s = db.session().await.unwrap();
        s.execute_unprepared("SELECT 1").await.unwrap();
        let before = db.error_stats();
        let failed = match attempt {
            "begin_with_config" => s
                .begin_with_config(Some(IsolationLevel::Serializable), None)
                .await
                .map(drop),
            _ => s.begin_with_options(serializable()).await.map(drop),
        };
        let err = OpsError::from(failed.expect_err("an isolation level inside a transaction"));
        assert_eq!(err.code(), Some(expected_code), "{attempt}: {err}");
        let after = db.error_stats();
        assert_eq!(after.total - before.total, 1, "{attempt}: {after:?}");
        let by_code =
            |stats: &ops_sea::ErrorStats| stats.by_code.get(expected_code).copied().unwrap_or(0);
        assert_eq!(by_code(&after) - by_code(&before), 1, "{attempt}");
        s.rollback().await.unwrap();
    }

    if ops_tests::backend() == Backend::Postgres {
        let s = db.session().await.unwrap();
        s.execute_unprepared("SELECT * FROM no_such_table")
            .await
            .expect_err("no such table");
        let before = db.error_stats().total;
        let err = OpsError::from(s.begin().await.map(drop).expect_err("aborted transaction"));
        assert_eq!(err.code(), Some("25P02"), "{err}");
        assert_eq!(db.error_stats().total - before, 1);
        s.rollback().await.unwrap();
    }
    finish(t, db).await;
}
