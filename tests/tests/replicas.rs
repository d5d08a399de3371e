//! Read replicas: routing of read-only sessions and `db.reader()` reads, lag, fallback, health.
//!
//! The tests marked "streaming replica" run against a real hot standby of the local PostgreSQL,
//! made by `.ci/replica.sh` (pg_basebackup -R, port 5433). `OPS_REPLICA_URL` names it (any
//! database; the tests swap in their own). When it is unset and nothing answers on 5433, the
//! test starts the replica with the script and removes it afterwards. The standby replays the
//! whole cluster, so a test's own database, created on the primary, appears on it after replay.
//!
//! The other tests run on every backend, with replicas that are the primary itself, a port
//! nothing listens on, or the fault proxy.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ops_sea::prelude::*;
use ops_sea::{BreakerState, HealthStatus};
use ops_tests::fixtures::{count, insert_item, items_table};
use ops_tests::proxy::{Mode, Proxy};
use ops_tests::{Backend, STEP_TIMEOUT, TestDb, bounded, require_backend, require_server};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

mod item {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "items")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub name: Option<String>,
    }
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// `SELECT pg_is_in_recovery()` on PostgreSQL: where a statement ran.
async fn in_recovery<C: ConnectionTrait>(conn: &C) -> Result<bool, OpsError> {
    let row = conn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_is_in_recovery()",
        ))
        .await?
        .expect("a row");
    Ok(row.try_get_by_index::<bool>(0).expect("bool"))
}

#[managed_session(read_only)]
async fn where_read_only(session: &Session) -> Result<bool, OpsError> {
    in_recovery(session).await
}

#[managed_session]
async fn where_read_write(session: &Session) -> Result<bool, OpsError> {
    in_recovery(session).await
}

#[managed_session(read_only)]
async fn write_in_read_only(session: &Session, id: i64) -> Result<(), OpsError> {
    insert_item(session, id, "sneaky").await?;
    Ok(())
}

#[managed_session(read_only)]
async fn get_in_read_only(session: &Session, id: i32) -> Result<item::Model, OpsError> {
    item::Ops::get(session, id).await
}

// ------------------------------------------------------------------------------------------------
// Every backend
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn reader_and_read_only_sessions_refuse_writes_without_replicas() {
    let t = TestDb::new("replicas_refuse_writes").await;
    let db = Db::connect(&t.url).await.expect("connect");
    items_table(&db).await;
    insert_item(&db, 1, "one").await.expect("insert");

    // Reads through the reader work with every repository function and raw SeaORM.
    let reader = db.reader();
    let got = item::Ops::get(&reader, 1)
        .await
        .expect("get through the reader");
    assert_eq!(got.name.as_deref(), Some("one"));
    assert_eq!(count(&reader, "items").await, 1);
    // A managed function called with the reader runs in a read-only session.
    let again = get_in_read_only(&reader, 1).await.expect("managed read");
    assert_eq!(again, got);

    // Writes through a reader or a read-only session are clear errors, never silent writes.
    let err = OpsError::from(insert_item(&reader, 2, "two").await.expect_err("read-only"));
    report(&format!("write through a reader: {err}"));
    assert!(
        matches!(
            err.category(),
            ErrorCategory::Programming | ErrorCategory::Configuration
        ),
        "{err}"
    );
    let err = write_in_read_only(&db, 3)
        .await
        .expect_err("read-only session");
    report(&format!("write through a read-only session: {err}"));
    let err = write_in_read_only(&reader, 4)
        .await
        .expect_err("reader session");
    assert!(!err.is_retryable(), "{err}");
    assert_eq!(count(&db, "items").await, 1, "no write landed");

    // The connection is clean afterwards: writes on the Db still work.
    for id in 10..20 {
        insert_item(&db, id, "later")
            .await
            .expect("write after a refused one");
    }
    assert_eq!(count(&db, "items").await, 11);
    db.close().await;
    t.cleanup().await;
}

#[tokio::test]
async fn a_replica_that_answers_serves_read_only_sessions_and_reports_healthy() {
    let t = TestDb::new("replicas_same_server").await;
    if t.backend == Backend::Sqlite {
        // SQLite has no replicas: its readers are connections of its own.
        let err = Db::builder(&t.url)
            .replica(&t.url)
            .connect()
            .await
            .expect_err("a SQLite replica is refused");
        assert_eq!(err.category(), ErrorCategory::Configuration, "{err}");
        assert!(
            format!("{err:#}").contains("read replicas are for PostgreSQL"),
            "{err}"
        );
        t.cleanup().await;
        return;
    }
    // The primary itself plays the replica: routing, lag measurement (zero: not in recovery,
    // or no replication status on MySQL) and the report, without a standby.
    let db = Db::builder(&t.url)
        .replica(&t.url)
        .connect()
        .await
        .expect("connect");
    items_table(&db).await;
    insert_item(&db, 1, "one").await.expect("insert");
    let session = db
        .session_with(SessionOptions::new().read_only())
        .await
        .expect("read-only session");
    assert!(session.is_on_replica());
    assert_eq!(count(&session, "items").await, 1);
    session.commit().await.expect("commit");
    let rw = db.session().await.expect("session");
    assert!(!rw.is_on_replica());
    rw.rollback().await.expect("rollback");
    assert_eq!(count(&db.reader(), "items").await, 1);

    let health = bounded("health", STEP_TIMEOUT, db.health()).await;
    assert_eq!(health.replicas.len(), 1);
    let replica = &health.replicas[0];
    assert_eq!(replica.status, HealthStatus::Healthy, "{replica:?}");
    assert_eq!(replica.lag, Some(Duration::ZERO));
    assert!(!replica.name.contains("password"));
    db.close().await;
    t.cleanup().await;
}

/// A URL on a port nothing listens on: connects are refused.
fn refused_url(t: &TestDb) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let mut url = url::Url::parse(&t.url).expect("url");
    url.set_port(Some(port)).expect("port");
    url.to_string()
}

#[tokio::test]
async fn an_unreachable_replica_is_skipped_reported_and_replica_only_fails() {
    if !require_server("an_unreachable_replica_is_skipped_reported_and_replica_only_fails") {
        return;
    }
    let t = TestDb::new("replicas_unreachable").await;
    let db = Db::builder(&t.url)
        .replica(&refused_url(&t))
        .pool_timeout(Duration::from_secs(1))
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await
        .expect("a dead replica does not stop the application");
    items_table(&db).await;
    insert_item(&db, 1, "one").await.expect("insert");
    for _ in 0..20 {
        assert_eq!(count(&db.reader(), "items").await, 1);
    }
    let session = db
        .session_with(SessionOptions::new().read_only())
        .await
        .expect("falls back to the primary");
    assert!(!session.is_on_replica());
    session.commit().await.expect("commit");

    let err = db
        .reader()
        .replica_only()
        .query_one_raw(Statement::from_string(db.backend(), "SELECT 1"))
        .await
        .expect_err("no replica is usable");
    let err = OpsError::from(err);
    assert_eq!(err.category(), ErrorCategory::Unavailable, "{err}");

    let health = bounded("health", STEP_TIMEOUT, db.health()).await;
    assert_eq!(
        health.status,
        HealthStatus::Degraded,
        "{:?}",
        health.reasons
    );
    assert_eq!(health.replicas[0].status, HealthStatus::Unhealthy);
    assert_eq!(
        health.breaker.as_ref().expect("on").state,
        BreakerState::Closed,
        "a dead replica never opens the primary's breaker"
    );
    db.close().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_cut_off_mid_load_loses_no_read_and_opens_its_own_breaker() {
    if !require_server("a_replica_cut_off_mid_load_loses_no_read_and_opens_its_own_breaker") {
        return;
    }
    let t = TestDb::new("replicas_cut_off").await;
    let proxy = Proxy::for_url(&t.url).await.expect("proxy");
    let db = Db::builder(&t.url)
        .replica(&proxy.url_for(&t.url))
        .replica_max_lag(Duration::from_secs(1))
        .connect_timeout(Duration::from_millis(500))
        .pool_timeout(Duration::from_secs(2))
        .breaker_failures(Some(3))
        .breaker_cooldown(Some(Duration::from_secs(2)))
        .connect()
        .await
        .expect("connect");
    items_table(&db).await;
    insert_item(&db, 1, "one").await.expect("insert");
    assert_eq!(count(&db.reader(), "items").await, 1);

    let reads = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..8)
        .map(|_| {
            let db = db.clone();
            let reads = reads.clone();
            tokio::spawn(async move {
                let until = Instant::now() + Duration::from_secs(3);
                while Instant::now() < until {
                    let n = bounded("a read", STEP_TIMEOUT, async {
                        count(&db.reader(), "items").await
                    })
                    .await;
                    assert_eq!(n, 1);
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.set_mode(Mode::Blackhole);
    proxy.cut_all();
    for task in load {
        task.await.expect("no read failed");
    }
    report(&format!(
        "replica cut off mid-load: {} reads, none lost",
        reads.load(Ordering::Relaxed)
    ));

    // The replica's own breaker opens after its checks fail; the primary's stays closed.
    let health = bounded("replica breaker opens", STEP_TIMEOUT, async {
        loop {
            let health = db.health().await;
            let replica = &health.replicas[0];
            if replica
                .breaker
                .as_ref()
                .is_some_and(|b| b.state != BreakerState::Closed)
            {
                return health;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert_eq!(health.replicas[0].status, HealthStatus::Unhealthy);
    assert_eq!(health.breaker.as_ref().unwrap().state, BreakerState::Closed);

    // Back: the replica serves again once a probe gets through.
    proxy.set_mode(Mode::PassThrough);
    bounded("replica back", STEP_TIMEOUT, async {
        loop {
            if db.health().await.replicas[0].status == HealthStatus::Healthy {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    db.close().await;
    drop(proxy);
    t.cleanup().await;
}

#[tokio::test]
async fn replica_settings_are_read_and_checked() {
    let lookup = |vars: &'static [(&'static str, &'static str)]| {
        ops_sea::DbConfig::from_lookup(move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    };
    let config = lookup(&[
        ("DATABASE_URL", "postgres://app:pw@127.0.0.1/app"),
        (
            "DB_REPLICA_URLS",
            "postgres://app:pw@127.0.0.1:5433/app, postgres://app:pw@127.0.0.1:5434/app",
        ),
        ("DB_REPLICA_MAX_LAG", "2s"),
        ("DB_BREAKER_FAILURES", "3"),
        ("DB_BREAKER_COOLDOWN", "10s"),
    ])
    .expect("valid");
    assert_eq!(config.replica_urls.len(), 2);
    assert_eq!(config.replica_max_lag, Duration::from_secs(2));
    let breaker = config.breaker().expect("on");
    assert_eq!(
        (breaker.failures, breaker.cooldown),
        (3, Duration::from_secs(10))
    );
    assert!(!config.to_string().contains("pw"));

    let err = lookup(&[
        ("DATABASE_URL", "postgres://app@127.0.0.1/app"),
        ("DB_REPLICA_URLS", "mysql://root:secret@127.0.0.1/app"),
    ])
    .expect_err("a replica of another backend");
    assert!(err.to_string().contains("DB_REPLICA_URLS"), "{err}");
    assert!(!err.to_string().contains("secret"), "{err}");
    let err = lookup(&[("DB_REPLICA_MAX_LAG", "soon")]).expect_err("not a duration");
    assert_eq!(err.variable(), Some("DB_REPLICA_MAX_LAG"));
    let err = lookup(&[("DB_BREAKER_FAILURES", "0")]).expect_err("zero");
    assert_eq!(err.variable(), Some("DB_BREAKER_FAILURES"));
    let off = lookup(&[("DB_BREAKER_FAILURES", "off")]).expect("off");
    assert!(off.breaker().is_none());
    let defaults = lookup(&[]).expect("defaults");
    assert!(defaults.breaker().is_some(), "on by default");
}

// ------------------------------------------------------------------------------------------------
// A streaming replica of the local PostgreSQL
// ------------------------------------------------------------------------------------------------

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.ci/replica.sh")
}

fn run_script(action: &str) -> Result<(), String> {
    let output = Command::new("bash")
        .arg(script())
        .arg(action)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script().display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            ".ci/replica.sh {action} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Makes sure the replica runs; stops and removes it on drop if this test started it.
struct ReplicaGuard {
    server: String,
    started_here: bool,
}

impl ReplicaGuard {
    fn ensure() -> ReplicaGuard {
        let server = std::env::var("OPS_REPLICA_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5433/postgres".to_owned());
        let started_here = if run_script("status").is_ok() {
            false
        } else {
            run_script("start").unwrap_or_else(|e| panic!("{e}"));
            true
        };
        ReplicaGuard {
            server,
            started_here,
        }
    }

    fn url_for(&self, t: &TestDb) -> String {
        let mut url = url::Url::parse(&self.server).expect("OPS_REPLICA_URL is a URL");
        url.set_path(&format!("/{}", t.name));
        url.to_string()
    }
}

impl Drop for ReplicaGuard {
    fn drop(&mut self) {
        if self.started_here
            && let Err(e) = run_script("stop")
        {
            report(&format!("warning: {e}"));
        }
    }
}

/// Waits until the replica has replayed the test database and its `items` table.
async fn wait_for_replay(replica_url: &str) {
    bounded(
        "the test database reaches the replica",
        STEP_TIMEOUT,
        async {
            loop {
                if let Ok(conn) = sea_orm::Database::connect(replica_url).await {
                    let ok = conn
                        .query_one_raw(Statement::from_string(
                            DbBackend::Postgres,
                            "SELECT COUNT(*) FROM items",
                        ))
                        .await
                        .is_ok();
                    let _ = conn.close().await;
                    if ok {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        },
    )
    .await;
}

/// On the replica directly: pause or resume replay.
async fn replay(replica_url: &str, pause: bool) {
    let conn = sea_orm::Database::connect(replica_url)
        .await
        .expect("replica");
    let sql = if pause {
        "SELECT pg_wal_replay_pause()"
    } else {
        "SELECT pg_wal_replay_resume()"
    };
    conn.execute_unprepared(sql).await.expect("replay control");
    let _ = conn.close().await;
}

/// Resumes replay even when the test fails half-way, so the replica is not left paused.
struct ResumeOnDrop(String);

impl Drop for ResumeOnDrop {
    fn drop(&mut self) {
        let url = self.0.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(replay(&url, false));
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streaming_replica() {
    if !require_backend(Backend::Postgres, "streaming_replica") {
        return;
    }
    let guard = ReplicaGuard::ensure();
    let t = TestDb::new("replicas_streaming").await;
    let admin = t.admin().await;
    items_table(&admin).await;
    insert_item(&admin, 1, "one").await.expect("insert");
    let replica_url = guard.url_for(&t);
    wait_for_replay(&replica_url).await;
    let max_lag = Duration::from_secs(1);
    let db = Db::builder(&t.url)
        .replica(&replica_url)
        .replica_max_lag(max_lag)
        .connect()
        .await
        .expect("connect");

    // Read-only sessions and reader reads run where pg_is_in_recovery() is true; writes never do.
    assert!(
        where_read_only(&db).await.expect("read-only"),
        "read-only session on the replica"
    );
    assert!(
        !where_read_write(&db).await.expect("read-write"),
        "read-write on the primary"
    );
    assert!(in_recovery(&db.reader()).await.expect("reader"));
    assert!(!in_recovery(&db).await.expect("db"));
    let got = item::Ops::get(&db.reader(), 1)
        .await
        .expect("repository read on the replica");
    assert_eq!(got.name.as_deref(), Some("one"));
    // A read-only function joined from a read-write session stays on the primary, and sees the
    // session's own write (read-your-writes).
    let session = db.session().await.expect("session");
    insert_item(&session, 2, "two").await.expect("insert");
    assert!(!where_read_only(&session).await.expect("joined"));
    let seen = get_in_read_only(&session, 2).await.expect("own write");
    assert_eq!(seen.id, 2);
    session.commit().await.expect("commit");

    // A write through a read-only session is a clear error, not a primary write.
    let err = write_in_read_only(&db, 3).await.expect_err("read-only");
    report(&format!(
        "write in a read-only session on the replica: {err}"
    ));
    assert_eq!(err.category(), ErrorCategory::Programming, "{err}");
    assert_eq!(err.code(), Some("25006"));
    let err = OpsError::from(insert_item(&db.reader(), 4, "x").await.expect_err("reader"));
    assert_eq!(err.code(), Some("25006"), "{err}");
    assert_eq!(count(&admin, "items").await, 2);

    // Lag: paused replay plus writes on the primary moves reads to the primary once the lag
    // passes the limit, and back once replay resumes.
    replay(&replica_url, true).await;
    let resume = ResumeOnDrop(replica_url.clone());
    let paused = Instant::now();
    let moved = bounded("reads move to the primary", STEP_TIMEOUT, async {
        let mut id = 100;
        loop {
            insert_item(&admin, id, "lag")
                .await
                .expect("write on the primary");
            id += 1;
            if !in_recovery(&db.reader()).await.expect("reader") {
                return paused.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let health = db.health().await;
    let replica = &health.replicas[0];
    report(&format!(
        "replay paused: reads moved to the primary after {moved:?} (limit {max_lag:?}); \
         replica {} lag {:?}",
        replica.status, replica.lag
    ));
    assert_eq!(replica.status, HealthStatus::Degraded, "{replica:?}");
    assert!(replica.lag.is_some_and(|lag| lag > max_lag), "{replica:?}");
    assert!(
        !where_read_only(&db).await.expect("read-only"),
        "lagging: the primary"
    );
    // A lagging replica makes no read fail, and the fallback still refuses writes.
    assert!(write_in_read_only(&db, 5).await.is_err());

    drop(resume);
    let resumed = Instant::now();
    bounded("reads come back to the replica", STEP_TIMEOUT, async {
        while !in_recovery(&db.reader()).await.expect("reader") {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    report(&format!(
        "replay resumed: reads back on the replica after {:?}",
        resumed.elapsed()
    ));
    assert!(where_read_only(&db).await.expect("read-only"));

    // The replica stopped mid-load: no read is lost, the report shows it unhealthy, and it
    // serves again once started.
    let reads = Arc::new(AtomicUsize::new(0));
    let on_replica = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..8)
        .map(|_| {
            let db = db.clone();
            let reads = reads.clone();
            let on_replica = on_replica.clone();
            tokio::spawn(async move {
                let until = Instant::now() + Duration::from_secs(4);
                while Instant::now() < until {
                    let reader = db.reader();
                    let replica = bounded("a read", STEP_TIMEOUT, in_recovery(&reader))
                        .await
                        .expect("no read is lost");
                    reads.fetch_add(1, Ordering::Relaxed);
                    if replica {
                        on_replica.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    run_script("down").unwrap_or_else(|e| panic!("{e}"));
    for task in load {
        task.await.expect("reader task");
    }
    report(&format!(
        "replica stopped mid-load: {} reads, {} on the replica, none lost",
        reads.load(Ordering::Relaxed),
        on_replica.load(Ordering::Relaxed)
    ));
    let health = bounded("health", STEP_TIMEOUT, db.health()).await;
    assert_eq!(
        health.replicas[0].status,
        HealthStatus::Unhealthy,
        "{health:?}"
    );
    assert_eq!(
        health.status,
        HealthStatus::Degraded,
        "{:?}",
        health.reasons
    );
    assert!(!where_read_only(&db).await.expect("falls back"));
    run_script("up").unwrap_or_else(|e| panic!("{e}"));
    bounded("the replica serves again", STEP_TIMEOUT, async {
        while !in_recovery(&db.reader()).await.expect("reader") {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;

    db.close().await;
    drop(admin);
    t.cleanup().await;
    drop(guard);
}
