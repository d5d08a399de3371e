//! A PostgreSQL restart under a running application: health goes unhealthy, then healthy again,
//! and requests after the restart succeed on the same `Db`, without restarting the application.
//!
//! This binary holds one test, so the restart cannot disturb other tests of the same binary. It
//! still disturbs every other client of the server, so it runs only when `DATABASE_URL` is a
//! PostgreSQL URL and the cluster's control tools are installed. Whatever happens, including a
//! panic, [`ServerGuard`] starts the server again and waits until it accepts connections.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ops_sea::prelude::*;
use ops_sea::{HealthReport, HealthStatus};
use ops_tests::fixtures::{count, insert_item, items_table};
use ops_tests::{Backend, STEP_TIMEOUT, TestDb, bounded, require_backend};

const CLUSTERS: &str = "/etc/postgresql";
const CTL: &str = "/usr/bin/pg_ctlcluster";
const ISREADY: &str = "/usr/bin/pg_isready";

/// How long the server may take to accept connections again.
const START_TIMEOUT: Duration = Duration::from_secs(60);

fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Stops the local PostgreSQL cluster and guarantees it is started again: on `start`, and in
/// `Drop` if the test panicked in between.
struct ServerGuard {
    version: String,
    stopped: bool,
}

impl ServerGuard {
    /// The guard for the one cluster under `/etc/postgresql`, or `None` when the tools or the
    /// cluster are missing.
    fn find() -> Option<ServerGuard> {
        if !Path::new(CTL).exists() || !Path::new(ISREADY).exists() {
            return None;
        }
        let mut versions: Vec<String> = std::fs::read_dir(CLUSTERS)
            .ok()?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| Path::new(CLUSTERS).join(name).join("main").exists())
            .collect();
        versions.sort();
        Some(ServerGuard {
            version: versions.pop()?,
            stopped: false,
        })
    }

    fn ctl(&self, action: &str) -> Result<(), String> {
        let mut command = Command::new(CTL);
        command.args(["--skip-systemctl-redirect", &self.version, "main", action]);
        if action == "stop" {
            command.args(["-m", "fast"]);
        }
        let output = command
            .output()
            .map_err(|e| format!("cannot run {CTL}: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`pg_ctlcluster {} main {action}` failed: {}",
                self.version,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    fn stop(&mut self) {
        // Marked first: if the stop half-succeeded, Drop still starts the server.
        self.stopped = true;
        self.ctl("stop").unwrap_or_else(|e| panic!("{e}"));
    }

    /// Starts the server and waits until it accepts connections.
    fn start(&mut self) -> Result<(), String> {
        // A start of a running cluster fails harmlessly; readiness is what counts.
        let started = self.ctl("start");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let ready = Command::new(ISREADY)
                .args(["-h", "127.0.0.1", "-p", "5432", "-t", "2"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                self.stopped = false;
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "PostgreSQL {} did not accept connections within {START_TIMEOUT:?} after \
                     start ({started:?}); start it with `pg_ctlcluster {} main start`",
                    self.version, self.version
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        if self.stopped
            && let Err(e) = self.start()
        {
            eprintln!("error: {e}");
        }
    }
}

/// Polls `db.health()` until its status satisfies `want`, bounded.
async fn health_until(db: &Db, what: &str, want: impl Fn(HealthStatus) -> bool) -> HealthReport {
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let report = bounded("a health check", STEP_TIMEOUT, db.health()).await;
        if want(report.status) {
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "health never became {what}: last {:?} {:?}",
            report.status,
            report.reasons
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_is_survived_without_restarting_the_application() {
    if !require_backend(Backend::Postgres, "postgres_restart_is_survived") {
        return;
    }
    let Some(mut server) = ServerGuard::find() else {
        report(&format!(
            "skipped: postgres_restart_is_survived needs {CTL}, {ISREADY} and a cluster under \
             {CLUSTERS}"
        ));
        return;
    };
    let t = TestDb::new("restart").await;
    items_table(&t.admin().await).await;
    let db = Db::builder(&t.url)
        .pool_size(2)
        .max_overflow(2)
        .pool_timeout(Duration::from_secs(3))
        .connect_timeout(Duration::from_secs(2))
        .idle_ping(Duration::from_millis(100))
        .connect()
        .await
        .expect("connect");
    insert_item(&db, 1, "before")
        .await
        .expect("before the restart");
    let before = health_until(&db, "ok", HealthStatus::is_ok).await;

    let stop_started = Instant::now();
    tokio::task::block_in_place(|| server.stop());
    let down = health_until(&db, "unhealthy", |s| s == HealthStatus::Unhealthy).await;
    let err = bounded(
        "a request while down",
        STEP_TIMEOUT,
        insert_item(&db, 2, "down"),
    )
    .await
    .map_err(OpsError::from)
    .expect_err("the server is down");
    let down_category = err.category();
    assert!(
        matches!(
            down_category,
            ErrorCategory::Unavailable
                | ErrorCategory::Retryable(
                    RetryReason::ConnectionLost
                        | RetryReason::ServerUnavailable
                        | RetryReason::PoolExhausted
                )
        ),
        "a request to a stopped server is unavailable or retryable: {err}"
    );

    tokio::task::block_in_place(|| server.start()).unwrap_or_else(|e| panic!("{e}"));
    let outage = stop_started.elapsed();
    let up = health_until(&db, "ok", HealthStatus::is_ok).await;

    // The first request may meet a connection the restart killed; the retry policy absorbs it.
    let policy = RetryPolicy::new()
        .attempts(10)
        .initial(Duration::from_millis(50))
        .deadline(Duration::from_secs(20));
    bounded(
        "the first request after the restart",
        STEP_TIMEOUT,
        retry(&policy, |_| async {
            insert_item(&db, 3, "after").await.map_err(OpsError::from)
        }),
    )
    .await
    .expect("the same Db serves requests after the restart");
    // After that, plain requests succeed with no retry at all.
    for id in 10..30 {
        bounded("a request after the restart", STEP_TIMEOUT, async {
            db.run(SessionOptions::new(), |s| async move {
                insert_item(&s, id, "after").await?;
                Ok::<_, OpsError>(())
            })
            .await
        })
        .await
        .unwrap_or_else(|e| panic!("request {id} after the restart failed: {e}"));
    }
    assert_eq!(count(&db, "items").await, 22);
    // Healthy, or degraded only by the outage's critical events, which `health()` keeps
    // reporting for its critical window (five minutes) so that an operator sees them.
    let final_health = health_until(&db, "ok", HealthStatus::is_ok).await;
    assert!(
        final_health.ping.is_some(),
        "the ping answers after the restart: {:?}",
        final_health.reasons
    );
    report(&format!(
        "restart[PostgreSQL {}]: health {} -> {} -> {} -> {}; outage {outage:.1?}; a request \
         while down failed as {down_category}; reasons after restart: {:?}",
        server.version, before.status, down.status, up.status, final_health.status, up.reasons
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    while (db.pool_state().in_use() > 0 || db.session_stats().active > 0)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(db.session_stats().active, 0);
    assert_eq!(db.pool_state().in_use(), 0);
    db.close().await;
    t.cleanup().await;
    drop(server);
}
