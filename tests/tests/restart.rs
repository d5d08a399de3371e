//! A database restart under a running application: health goes unhealthy, then healthy again,
//! and requests after the restart succeed on the same `Db`, without restarting the application.
//!
//! This binary holds one test, so the restart cannot disturb other tests of the same binary
//! (cargo runs test binaries one after another). It still disturbs every other client of the
//! server, so it runs only when `DATABASE_URL` names a server whose control tools are installed
//! here: PostgreSQL through `pg_ctlcluster` and the cluster under `/etc/postgresql`, MariaDB through
//! `mariadb-admin` and `start-stop-daemon` (started as this machine and CI start it) when
//! `mariadbd` runs locally. Whatever happens, including a panic, [`ServerGuard`] starts the server
//! again and waits until it accepts connections.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ops_sea::prelude::*;
use ops_sea::{HealthReport, HealthStatus};
use ops_tests::fixtures::{count, insert_item, items_table};
use ops_tests::{Backend, STEP_TIMEOUT, TestDb, bounded, require_server};

const CLUSTERS: &str = "/etc/postgresql";
const PG_CTL: &str = "/usr/bin/pg_ctlcluster";
const PG_ISREADY: &str = "/usr/bin/pg_isready";
const MARIADBD: &str = "/usr/sbin/mariadbd";
const MARIADB_ADMIN: &str = "/usr/bin/mariadb-admin";
const DAEMON: &str = "/usr/sbin/start-stop-daemon";

/// How long the server may take to stop, and to accept connections again after a start.
const START_TIMEOUT: Duration = Duration::from_secs(60);

fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Runs `program` with `args`; an error names the command and what it printed.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Polls `done` every 200 ms until it holds or `limit` passes; returns whether it held.
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The local server under `DATABASE_URL`, and how to stop it, start it and ask whether it is up.
enum Server {
    /// The newest cluster under `/etc/postgresql`, by its version.
    Postgres { version: String },
    /// The local `mariadbd`, by the version it reports.
    MariaDb { version: String },
}

impl Server {
    /// The local server of `backend`, or what is missing to control it.
    fn find(backend: Backend) -> Result<Server, String> {
        let missing = |tools: &[&str]| {
            tools
                .iter()
                .all(|tool| Path::new(tool).exists())
                .then_some(())
                .ok_or_else(|| tools.join(", "))
        };
        match backend {
            Backend::Postgres => {
                missing(&[PG_CTL, PG_ISREADY])?;
                let mut versions: Vec<String> = std::fs::read_dir(CLUSTERS)
                    .map_err(|_| format!("a cluster under {CLUSTERS}"))?
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|name| Path::new(CLUSTERS).join(name).join("main").exists())
                    .collect();
                versions.sort();
                let version = versions
                    .pop()
                    .ok_or_else(|| format!("a cluster under {CLUSTERS}"))?;
                Ok(Server::Postgres { version })
            }
            Backend::MySql => {
                missing(&[MARIADBD, MARIADB_ADMIN, DAEMON])?;
                // Only a server running on this machine is ours to stop.
                run(DAEMON, &["--status", "--exec", MARIADBD])
                    .map_err(|_| format!("{MARIADBD} running on this machine"))?;
                let output = Command::new(MARIADBD)
                    .arg("--version")
                    .output()
                    .map_err(|e| format!("{MARIADBD} that runs ({e})"))?;
                // "mariadbd  Ver 10.11.6-MariaDB-0+deb12u1 for debian-linux-gnu ...".
                let text = String::from_utf8_lossy(&output.stdout);
                let version = text
                    .split_whitespace()
                    .skip_while(|word| *word != "Ver")
                    .nth(1)
                    .and_then(|v| v.split('-').next())
                    .unwrap_or("(unknown version)")
                    .to_owned();
                Ok(Server::MariaDb { version })
            }
            Backend::Sqlite => Err("a database server".to_owned()),
        }
    }

    /// The server's name and version, for reports.
    fn name(&self) -> String {
        match self {
            Server::Postgres { version } => format!("PostgreSQL {version}"),
            Server::MariaDb { version } => format!("MariaDB {version}"),
        }
    }

    /// The command that starts the server, for messages.
    fn start_command(&self) -> String {
        match self {
            Server::Postgres { version } => format!("pg_ctlcluster {version} main start"),
            Server::MariaDb { .. } => {
                format!("start-stop-daemon --start --oknodo --background --exec {MARIADBD}")
            }
        }
    }

    /// Stops the server and returns once it is down.
    fn stop(&self) -> Result<(), String> {
        match self {
            Server::Postgres { version } => run(
                PG_CTL,
                &[
                    "--skip-systemctl-redirect",
                    version,
                    "main",
                    "stop",
                    "-m",
                    "fast",
                ],
            ),
            Server::MariaDb { .. } => {
                run(MARIADB_ADMIN, &["-h", "127.0.0.1", "-uroot", "shutdown"])?;
                // The shutdown may return before the process has exited.
                let gone = || run(DAEMON, &["--status", "--exec", MARIADBD]).is_err();
                if wait_until(START_TIMEOUT, gone) {
                    Ok(())
                } else {
                    Err(format!(
                        "{MARIADBD} still runs {START_TIMEOUT:?} after its shutdown"
                    ))
                }
            }
        }
    }

    /// Starts the server, without waiting for it to accept connections.
    fn start(&self) -> Result<(), String> {
        match self {
            Server::Postgres { version } => run(
                PG_CTL,
                &["--skip-systemctl-redirect", version, "main", "start"],
            ),
            Server::MariaDb { .. } => run(
                DAEMON,
                &["--start", "--oknodo", "--background", "--exec", MARIADBD],
            ),
        }
    }

    /// Whether the server accepts connections.
    fn ready(&self) -> bool {
        match self {
            Server::Postgres { .. } => {
                run(PG_ISREADY, &["-h", "127.0.0.1", "-p", "5432", "-t", "2"]).is_ok()
            }
            Server::MariaDb { .. } => run(
                MARIADB_ADMIN,
                &["-h", "127.0.0.1", "-uroot", "--connect-timeout=2", "ping"],
            )
            .is_ok(),
        }
    }
}

/// Stops the local server and guarantees it is started again: on `start`, and in `Drop` if the
/// test panicked in between.
struct ServerGuard {
    server: Server,
    stopped: bool,
}

impl ServerGuard {
    fn stop(&mut self) {
        // Marked first: if the stop half-succeeded, Drop still starts the server.
        self.stopped = true;
        self.server.stop().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Starts the server and waits until it accepts connections.
    fn start(&mut self) -> Result<(), String> {
        // A start of a running server fails harmlessly; readiness is what counts.
        let started = self.server.start();
        if wait_until(START_TIMEOUT, || self.server.ready()) {
            self.stopped = false;
            Ok(())
        } else {
            Err(format!(
                "{} did not accept connections within {START_TIMEOUT:?} after start \
                 ({started:?}); start it with `{}`",
                self.server.name(),
                self.server.start_command()
            ))
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
async fn restart_is_survived_without_restarting_the_application() {
    const TEST: &str = "restart_is_survived_without_restarting_the_application";
    if !require_server(TEST) {
        return;
    }
    let server = match Server::find(ops_tests::backend()) {
        Ok(server) => server,
        Err(missing) => {
            report(&format!("skipped: {TEST} needs {missing}"));
            return;
        }
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
    // Declared after the test database, so dropped before it on a panic: the server is up
    // again when the database is dropped.
    let mut server = ServerGuard {
        server,
        stopped: false,
    };
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
        "restart[{}]: health {} -> {} -> {} -> {}; outage {outage:.1?}; a request while down \
         failed as {down_category}; reasons after restart: {:?}",
        server.server.name(),
        before.status,
        down.status,
        up.status,
        final_health.status,
        up.reasons
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
