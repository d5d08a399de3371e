//! Kill storms: serializable increments survive every client connection being killed on a timer.
//!
//! 150 increments (a counter row and a ledger row each) run through
//! `#[db_retry(attempts = 60, max = "200ms")] #[managed_session(isolation = "serializable")]` from
//! six tasks on a pool of 4 + 2, while another connection kills every client connection of the
//! test database: `pg_terminate_backend` every 40 ms on PostgreSQL, `KILL` every 100 ms on
//! MySQL/MariaDB. SQLite has no connections to kill; there the storm is writer contention alone.
//!
//! What must hold: no operation gives up; an operation whose commit reply was lost is reported as
//! `CommitUnknown` and never re-run; the counter equals the number of ledger rows, which equals
//! the operations that reported success plus the commit-unknown ones that landed (found in the
//! ledger). A line per backend reports operations, kills, attempts per operation and time per
//! operation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ops_sea::prelude::*;
use ops_tests::fixtures::kill_connections;
use ops_tests::{Backend, STEP_TIMEOUT, TestDb, bounded, require_server};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

/// Writes a line to standard error directly, past the harness's capture: the report must be
/// visible in a normal run.
fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

const OPERATIONS: u64 = 150;
const TASKS: u64 = 6;
/// How long each increment holds its transaction open between its two statements.
const HOLD: Duration = Duration::from_millis(3);
/// How long each task waits between two increments.
const THINK: Duration = Duration::from_millis(60);
/// The whole storm, setup to verification, within this: the test can never hang CI.
const TEST_LIMIT: Duration = Duration::from_secs(60);

/// Counts the attempts of one operation. `#[db_retry]` hands every attempt its own copy of each
/// owned argument, so a counter whose `Clone` counts sees every attempt, including those that
/// failed before the body ran (a dead connection at `BEGIN`).
struct Attempts(Arc<AtomicU32>);

impl Clone for Attempts {
    fn clone(&self) -> Self {
        self.0.fetch_add(1, Ordering::Relaxed);
        Attempts(self.0.clone())
    }
}

#[db_retry(attempts = 60, max = "200ms")]
#[managed_session(isolation = "serializable", name = "increment")]
async fn increment(
    session: &Session,
    op: u64,
    attempts: Attempts,
    runs: &AtomicU32,
) -> Result<(), OpsError> {
    let _ = &attempts;
    runs.fetch_add(1, Ordering::Relaxed);
    session
        .execute_unprepared("UPDATE counter SET value = value + 1 WHERE id = 1")
        .await?;
    // A little work inside the transaction, so kills land mid-transaction and mid-commit too.
    // ops-scan: allow(session-held-across-io) -- holds the transaction on purpose so kills land inside it
    tokio::time::sleep(HOLD).await;
    session
        .execute_unprepared(&format!("INSERT INTO ledger (op) VALUES ({op})"))
        .await?;
    Ok(())
}

/// What one operation told its caller.
#[derive(Debug)]
struct Outcome {
    op: u64,
    result: Result<(), ErrorCategory>,
    attempts: u32,
    took: Duration,
}

async fn worker(db: Db, task: u64, runs: Arc<AtomicU32>) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut op = task;
    while op < OPERATIONS {
        let attempts = Arc::new(AtomicU32::new(0));
        let started = Instant::now();
        let result = increment(&db, op, Attempts(attempts.clone()), &runs).await;
        outcomes.push(Outcome {
            op,
            result: result.map_err(|e| {
                if e.category() != ErrorCategory::CommitUnknown {
                    report(&format!("kill storm: operation {op} gave up: {e}"));
                }
                e.category()
            }),
            attempts: attempts.load(Ordering::Relaxed),
            took: started.elapsed(),
        });
        op += TASKS;
        // Think time between requests: the storm then spans many kill rounds, and connections
        // sit idle in the pool when the kills come, as in a real application.
        tokio::time::sleep(THINK).await;
    }
    outcomes
}

/// Kills every client connection of `database` every `period` until `stop`; returns the rounds
/// and the connections killed.
async fn killer(
    server: DatabaseConnection,
    database: String,
    period: Duration,
    stop: Arc<AtomicBool>,
    killed: Arc<AtomicU64>,
) -> u64 {
    let mut rounds = 0;
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        let n = kill_connections(&server, &database).await;
        killed.fetch_add(n as u64, Ordering::Relaxed);
        rounds += 1;
    }
    rounds
}

async fn scalar<C: ConnectionTrait>(conn: &C, sql: &str) -> i64 {
    let row = bounded(
        "scalar query",
        STEP_TIMEOUT,
        conn.query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            sql.to_owned(),
        )),
    )
    .await
    .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"))
    .expect("one row");
    row.try_get_by_index::<i64>(0).expect("an integer")
}

fn percentile<T: Copy + Ord>(sorted: &[T], p: usize) -> T {
    let index = (sorted.len() * p).div_ceil(100).saturating_sub(1);
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increments_survive_a_kill_storm() {
    bounded("the kill storm", TEST_LIMIT, kill_storm()).await;
}

async fn kill_storm() {
    let t = TestDb::new("kill_storm").await;
    let admin = t.admin().await;
    let ledger = match t.backend {
        Backend::MySql => "CREATE TABLE ledger (op BIGINT NOT NULL) ENGINE = InnoDB",
        _ => "CREATE TABLE ledger (op BIGINT NOT NULL)",
    };
    for sql in [
        "CREATE TABLE counter (id INT PRIMARY KEY, value BIGINT NOT NULL)",
        ledger,
        "INSERT INTO counter (id, value) VALUES (1, 0)",
    ] {
        admin.execute_unprepared(sql).await.expect(sql);
    }

    let db = Db::builder(&t.url)
        .pool_size(4)
        .max_overflow(2)
        .connect()
        .await
        .expect("connect");

    let period = match t.backend {
        Backend::Postgres => Some(Duration::from_millis(40)),
        Backend::MySql => Some(Duration::from_millis(100)),
        Backend::Sqlite => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicU64::new(0));
    let killer = match (period, t.server_url()) {
        (Some(period), Some(server_url)) => {
            let mut options = sea_orm::ConnectOptions::new(server_url.to_owned());
            options.max_connections(1).sqlx_logging(false);
            let server = bounded(
                "connect to the server",
                STEP_TIMEOUT,
                sea_orm::Database::connect(options),
            )
            .await
            .expect("server connection");
            Some(tokio::spawn(killer(
                server,
                t.name.clone(),
                period,
                stop.clone(),
                killed.clone(),
            )))
        }
        _ => None,
    };

    let runs = Arc::new(AtomicU32::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..TASKS)
        .map(|task| tokio::spawn(worker(db.clone(), task, runs.clone())))
        .collect();
    let mut outcomes = Vec::new();
    for w in workers {
        outcomes.extend(w.await.expect("worker task"));
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let rounds = match killer {
        Some(k) => k.await.expect("killer task"),
        None => 0,
    };

    // Resolve every outcome against the ledger.
    let mut succeeded = 0;
    let mut gave_up = Vec::new();
    let mut unknown = 0;
    let mut unknown_landed = 0;
    for o in &outcomes {
        let rows = scalar(
            &admin,
            &format!("SELECT COUNT(*) FROM ledger WHERE op = {}", o.op),
        )
        .await;
        assert!(rows <= 1, "operation {} landed {rows} times", o.op);
        match o.result {
            Ok(()) => {
                assert_eq!(
                    rows, 1,
                    "operation {} succeeded but is not in the ledger",
                    o.op
                );
                succeeded += 1;
            }
            Err(ErrorCategory::CommitUnknown) => {
                // The retry loop stopped at the unknown commit (earlier attempts may have run the
                // body and failed before committing); at most one ledger row proves no re-run
                // landed twice.
                unknown += 1;
                unknown_landed += rows;
            }
            Err(category) => {
                assert_eq!(rows, 0, "operation {} failed ({category}) but landed", o.op);
                gave_up.push((o.op, category));
            }
        }
    }
    let counter = scalar(&admin, "SELECT value FROM counter WHERE id = 1").await;
    let ledger_rows = scalar(&admin, "SELECT COUNT(*) FROM ledger").await;

    let mut attempts: Vec<u32> = outcomes.iter().map(|o| o.attempts).collect();
    attempts.sort_unstable();
    let mut times: Vec<Duration> = outcomes.iter().map(|o| o.took).collect();
    times.sort_unstable();
    let health = db.health().await;
    report(&format!(
        "kill storm on {}: {} operations in {elapsed:.1?}, {} kills in {rounds} rounds, \
         {} gave up, {unknown} commit-unknown ({unknown_landed} landed); {} body runs; attempts \
         {} in all, per operation p50 {} p99 {} max {}; time per operation p50 {:.1?} p99 {:.1?} max {:.1?}; \
         {} connections invalidated",
        t.backend,
        outcomes.len(),
        killed.load(Ordering::Relaxed),
        gave_up.len(),
        runs.load(Ordering::Relaxed),
        attempts.iter().map(|&a| u64::from(a)).sum::<u64>(),
        percentile(&attempts, 50),
        percentile(&attempts, 99),
        attempts[attempts.len() - 1],
        percentile(&times, 50),
        percentile(&times, 99),
        times[times.len() - 1],
        health.pool.invalidated,
    ));

    assert_eq!(outcomes.len() as u64, OPERATIONS);
    assert!(gave_up.is_empty(), "operations gave up: {gave_up:?}");
    assert_eq!(counter, ledger_rows, "the counter and the ledger disagree");
    assert_eq!(
        ledger_rows,
        succeeded + unknown_landed,
        "the ledger does not match the reported outcomes"
    );

    db.close().await;
    drop(admin);
    t.cleanup().await;
}

/// Holds a session open until `release` is notified, so that several connections are checked out
/// at once and every pooled connection is exercised.
async fn hold_one(db: Db, gate: Arc<tokio::sync::Barrier>) -> Result<(), OpsError> {
    let session = db.session().await?;
    session.execute_unprepared("SELECT 1").await?;
    gate.wait().await;
    session.commit().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_invalidates_the_idle_connections() {
    if !require_server(
        "a_disconnect_invalidates_the_idle_connections (SQLite has no connections to kill)",
    ) {
        return;
    }
    bounded("the invalidation test", TEST_LIMIT, invalidation()).await;
}

async fn invalidation() {
    let t = TestDb::new("invalidation").await;
    let mut options = sea_orm::ConnectOptions::new(t.server_url().expect("a server").to_owned());
    options.max_connections(1).sqlx_logging(false);
    let server = sea_orm::Database::connect(options)
        .await
        .expect("server connection");
    // Idle connections are never old enough for the idle ping: only the disconnect rule can
    // catch the dead ones.
    let db = Db::builder(&t.url)
        .pool_size(3)
        .max_overflow(0)
        .idle_ping(Duration::from_secs(600))
        .connect()
        .await
        .expect("connect");
    let hold_all = || async {
        let gate = Arc::new(tokio::sync::Barrier::new(3));
        let held: Vec<_> = (0..3)
            .map(|_| tokio::spawn(hold_one(db.clone(), gate.clone())))
            .collect();
        let mut results = Vec::new();
        for h in held {
            results.push(h.await.expect("session task"));
        }
        results
    };
    for result in hold_all().await {
        result.expect("three warm connections");
    }
    assert_eq!(db.health().await.pool.last_disconnect, None);
    assert_eq!(db.pool_state().size, 3);

    let killed = kill_connections(&server, &t.name).await;
    assert!(killed >= 3, "killed {killed} connections");
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The first statement draws a corpse (nothing told the pool yet) and loses its connection.
    let err = db
        .execute_unprepared("SELECT 1")
        .await
        .map_err(OpsError::from)
        .expect_err("the first checkout after the kill gets a dead connection");
    assert_eq!(
        err.category(),
        ErrorCategory::Retryable(RetryReason::ConnectionLost),
        "{err}"
    );
    let health = db.health().await;
    assert!(health.pool.last_disconnect.is_some(), "{:?}", health.pool);

    // That disconnect invalidates the other connections released before it: each is pinged at
    // checkout and replaced, so no caller meets another corpse.
    for result in hold_all().await {
        result.expect("every checkout after the disconnect gets a live connection");
    }
    let pool = db.health().await.pool;
    assert!(pool.invalidated >= 2, "{pool:?}");
    // Connections released after the disconnect pay nothing: no new invalidation.
    for result in hold_all().await {
        result.expect("live connections");
    }
    assert_eq!(db.health().await.pool.invalidated, pool.invalidated);
    report(&format!(
        "invalidation on {}: {killed} killed, {} connections invalidated",
        t.backend, pool.invalidated
    ));

    db.close().await;
    drop(server);
    t.cleanup().await;
}
