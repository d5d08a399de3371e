//! Health reports, error stats, the critical-error hook, optimize and the maintenance task.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ops_sea::prelude::*;
use ops_sea::{CriticalKind, HealthStatus, MaintenanceConfig};
use ops_tests::fixtures::{insert_item, items_table};
use ops_tests::{STEP_TIMEOUT, TestDb, bounded};
use sea_orm::ConnectionTrait;

async fn connect(t: &TestDb) -> Db {
    Db::builder(&t.url)
        .pool_size(2)
        .max_overflow(1)
        .leak_threshold(Some(Duration::from_millis(150)))
        .connect()
        .await
        .expect("connect")
}

#[tokio::test]
async fn healthy_then_degraded_by_a_long_session() {
    let t = TestDb::new("health_states").await;
    let db = connect(&t).await;
    let report = bounded("health", STEP_TIMEOUT, db.health()).await;
    assert_eq!(report.status, HealthStatus::Healthy, "{:?}", report.reasons);
    assert!(report.ping.is_some());
    assert_eq!(report.pool.max, 3);

    let held = db.session().await.unwrap();
    // ops-scan: allow(session-held-across-io) -- holds a session on purpose so health reports it
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = db.health().await;
    assert_eq!(report.status, HealthStatus::Degraded);
    assert!(report.is_ok(), "degraded still serves");
    assert_eq!(report.sessions.long_running.len(), 1);
    assert!(
        report.reasons.iter().any(|r| r.contains("health.rs")),
        "the reason names the session's origin: {:?}",
        report.reasons
    );
    held.rollback().await.unwrap();
    db.close().await;
    t.cleanup().await;
}

#[tokio::test]
async fn closed_pool_is_unhealthy_quickly() {
    let t = TestDb::new("health_closed").await;
    let db = connect(&t).await;
    db.close().await;
    let started = Instant::now();
    let report = bounded("health", STEP_TIMEOUT, db.health()).await;
    assert_eq!(report.status, HealthStatus::Unhealthy);
    assert!(!report.is_ok());
    assert!(started.elapsed() < Duration::from_secs(6));
    t.cleanup().await;
}

#[tokio::test]
async fn error_stats_count_raw_and_session_statements_once() {
    let t = TestDb::new("error_stats").await;
    let admin = t.admin().await;
    items_table(&admin).await;
    let db = connect(&t).await;
    insert_item(&db, 1, "first").await.unwrap();
    // A raw SeaORM statement on the Db, and one inside a session: each counted once.
    let err = OpsError::from(insert_item(&db, 1, "again").await.expect_err("duplicate"));
    assert_eq!(
        err.category(),
        ErrorCategory::Integrity(IntegrityKind::Unique)
    );
    let s = db.session().await.unwrap();
    assert!(insert_item(&s, 1, "again").await.is_err());
    s.rollback().await.unwrap();
    let _ = db.execute_unprepared("SELECT * FROM no_such_table").await;

    let stats = db.error_stats();
    assert_eq!(stats.total, 3, "{stats:?}");
    assert_eq!(
        stats
            .by_category
            .get(&ErrorCategory::Integrity(IntegrityKind::Unique)),
        Some(&2),
        "{stats:?}"
    );
    assert_eq!(
        stats.by_category.get(&ErrorCategory::Programming),
        Some(&1),
        "{stats:?}"
    );
    assert!(!stats.by_code.is_empty());
    assert_eq!(stats.recent.len(), 3);
    db.close().await;
    t.cleanup().await;
}

#[tokio::test]
async fn critical_hook_is_called_once_per_event_without_blocking() {
    let t = TestDb::new("critical_hook").await;
    let db = connect(&t).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    db.on_critical_error(move |event| {
        assert_eq!(event.kind, CriticalKind::Unavailable);
        // A slow hook must not slow the caller.
        std::thread::sleep(Duration::from_millis(300));
        seen.fetch_add(1, Ordering::SeqCst);
    });
    db.close().await;
    let started = Instant::now();
    assert!(db.ping(Duration::from_secs(2)).await.is_err());
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "the hook blocked the caller"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while calls.load(Ordering::SeqCst) < 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    t.cleanup().await;
}

#[tokio::test]
async fn optimize_runs_the_backends_statement() {
    let t = TestDb::new("optimize").await;
    let admin = t.admin().await;
    items_table(&admin).await;
    let db = connect(&t).await;
    let report = bounded("optimize", STEP_TIMEOUT, db.optimize())
        .await
        .expect("optimize");
    let expected = match t.backend {
        ops_tests::Backend::Postgres => "VACUUM (ANALYZE)",
        ops_tests::Backend::Sqlite => "PRAGMA optimize",
        ops_tests::Backend::MySql => "ANALYZE TABLE `items`",
    };
    assert_eq!(report.statements, vec![expected.to_owned()]);
    db.close().await;
    t.cleanup().await;
}

#[tokio::test]
async fn maintenance_cancels_sessions_past_the_maximum_age_and_stops_with_its_handle() {
    let t = TestDb::new("maintenance").await;
    let db = connect(&t).await;
    let handle = db.spawn_maintenance(
        MaintenanceConfig::default()
            .sweep_every(Duration::from_millis(50))
            .max_session_age(Duration::from_millis(300)),
    );
    let started = Instant::now();
    let err = bounded(
        "managed session past max age",
        STEP_TIMEOUT,
        db.run(SessionOptions::new().name("stuck"), |s| async move {
            s.execute_unprepared("SELECT 1").await?;
            tokio::time::sleep(Duration::from_secs(20)).await;
            Ok::<(), OpsError>(())
        }),
    )
    .await
    .expect_err("cancelled by the sweeper");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        err.category(),
        ErrorCategory::Retryable(RetryReason::StatementTimeout),
        "{err}"
    );
    // The rollback finishes in place on a healthy database, or moments later in the background.
    let deadline = Instant::now() + Duration::from_secs(5);
    while db.session_stats().active > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(db.session_stats().active, 0);
    assert!(!handle.is_finished());
    handle.stop().await;

    // Closing the Db ends a running maintenance task on its next tick.
    let handle =
        db.spawn_maintenance(MaintenanceConfig::default().sweep_every(Duration::from_millis(20)));
    db.close().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !handle.is_finished() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(handle.is_finished());
    t.cleanup().await;
}
