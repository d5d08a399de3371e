//! Maintenance: `db.optimize()` and the periodic sweeper of `db.spawn_maintenance(...)`.

use std::sync::Weak;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::db::DbInner;
use crate::{Db, OpsError};

/// What `optimize` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptimizeReport {
    /// The statements run, in order.
    pub statements: Vec<String>,
    /// How long they took together.
    pub elapsed: Duration,
}

/// What the maintenance task does and how often.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaintenanceConfig {
    /// How often the sweeper looks at open sessions. Default 30 s.
    pub sweep_every: Duration,
    /// Sessions older than this are cancelled: managed sessions (`db.run`,
    /// `#[managed_session]`) stop their work and roll back; sessions opened with `db.session()`
    /// are flagged (`Session::is_cancelled`) and reported. `None` (the default) cancels nothing.
    pub max_session_age: Option<Duration>,
    /// Run `optimize` this often; `None` (the default) never does.
    pub optimize_every: Option<Duration>,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            sweep_every: Duration::from_secs(30),
            max_session_age: None,
            optimize_every: None,
        }
    }
}

impl MaintenanceConfig {
    /// Sets how often the sweeper runs.
    pub fn sweep_every(mut self, every: Duration) -> Self {
        self.sweep_every = every;
        self
    }

    /// Cancels sessions older than `age`.
    pub fn max_session_age(mut self, age: Duration) -> Self {
        self.max_session_age = Some(age);
        self
    }

    /// Runs `optimize` every `every`.
    pub fn optimize_every(mut self, every: Duration) -> Self {
        self.optimize_every = Some(every);
        self
    }
}

/// The running maintenance task. Dropping the handle stops it; so does closing the `Db`.
#[derive(Debug)]
#[must_use = "maintenance stops when its handle is dropped"]
pub struct MaintenanceHandle {
    task: tokio::task::JoinHandle<()>,
}

impl MaintenanceHandle {
    /// Stops the task and waits until it has stopped.
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }

    /// Whether the task has ended (the `Db` was closed or dropped).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for MaintenanceHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Db {
    /// Refreshes the planner's statistics and reclaims space, the backend's way: `VACUUM
    /// (ANALYZE)` on PostgreSQL (outside any transaction), `PRAGMA optimize` on SQLite, and
    /// `ANALYZE TABLE` over every table of the current database on MySQL/MariaDB.
    pub async fn optimize(&self) -> Result<OptimizeReport, OpsError> {
        let started = Instant::now();
        let statements = match self.backend() {
            DbBackend::Postgres => vec!["VACUUM (ANALYZE)".to_owned()],
            DbBackend::Sqlite => vec!["PRAGMA optimize".to_owned()],
            _ => {
                let tables = self
                    .query_all_raw(Statement::from_string(
                        DbBackend::MySql,
                        "SELECT table_name FROM information_schema.tables \
                         WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'",
                    ))
                    .await
                    .map_err(|e| self.record(e.into()))?;
                let names: Vec<String> = tables
                    .iter()
                    .filter_map(|row| row.try_get_by_index::<String>(0).ok())
                    .map(|name| format!("`{}`", name.replace('`', "``")))
                    .collect();
                if names.is_empty() {
                    Vec::new()
                } else {
                    vec![format!("ANALYZE TABLE {}", names.join(", "))]
                }
            }
        };
        for sql in &statements {
            // Runs on a pooled connection in autocommit mode: the pool never hands out one
            // inside a transaction, which VACUUM requires.
            self.execute_unprepared(sql)
                .await
                .map_err(|e| self.record(e.into()))?;
        }
        Ok(OptimizeReport {
            statements,
            elapsed: started.elapsed(),
        })
    }

    /// Starts the maintenance task: the stale-session sweeper (warns once for each session past
    /// the leak threshold, cancels sessions past `max_session_age`) and, when configured, a
    /// periodic `optimize`. Needs a tokio runtime.
    pub fn spawn_maintenance(&self, config: MaintenanceConfig) -> MaintenanceHandle {
        let inner = std::sync::Arc::downgrade(&self.inner);
        MaintenanceHandle {
            task: tokio::spawn(maintain(inner, config)),
        }
    }
}

pub(crate) async fn maintain(inner: Weak<DbInner>, config: MaintenanceConfig) {
    let period = config.sweep_every.max(Duration::from_millis(10));
    let mut last_optimize = Instant::now();
    crate::db::every(inner, period, move |inner| {
        inner.tracker.warn_leaks();
        if let Some(age) = config.max_session_age {
            // The tracker logs one warning for each session it cancels.
            inner.tracker.cancel_older_than(age);
        }
        let optimize = config
            .optimize_every
            .is_some_and(|every| last_optimize.elapsed() >= every);
        if optimize {
            last_optimize = Instant::now();
        }
        async move {
            if !optimize {
                return;
            }
            let db = Db { inner };
            match db.optimize().await {
                Ok(report) => tracing::info!(
                    statements = ?report.statements,
                    elapsed = ?report.elapsed,
                    "database optimized"
                ),
                Err(err) => tracing::warn!(error = err.as_dyn(), "scheduled optimize failed"),
            }
        }
    })
    .await;
}
