//! Routing between the primary and its read replicas.
//!
//! - Writes, read-write sessions and everything run on the `Db` itself go to the primary.
//! - Read-only sessions and reads through `db.reader()` go to a usable replica: one that answered
//!   its last check, whose measured lag is within `replica_max_lag`, and whose circuit breaker
//!   lets calls through. Among those the least busy pool wins (fewest connections in use), ties
//!   going round-robin.
//! - A read that fails on a replica for a reason another server would not share (the replica is
//!   down, unreachable, still missing a just-created database, cancelled by a replay conflict) is
//!   tried on the next replica, then on the primary: replica trouble never becomes the error of
//!   a read that could be served elsewhere. Errors the statement would meet anywhere (a syntax
//!   error, a write refused by a read-only transaction) are returned as they are.
//! - With no usable replica, reads go to the primary, inside a read-only transaction so that a
//!   write sent through a reader fails there too instead of silently landing on the primary. A
//!   reader made with `replica_only()` fails with `Unavailable` instead.
//! - A monitor task checks every replica periodically: a round trip, and its lag
//!   (`pg_last_xact_replay_timestamp()` on PostgreSQL, `Seconds_Behind_Master` on MySQL/MariaDB).
//!   A replica marked down by a failed read comes back when a check succeeds.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use ops_core::config::DbConfig;

use crate::delegate::Target as _;
use ops_core::health::{HealthStatus, ReplicaHealth};
use ops_core::{ErrorCategory, RetryReason, SessionOptions};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, ExecResult, QueryResult, Statement};

use super::Pool;
use super::breaker::{PoolBreaker, guarded};
use crate::session::SqliteMode;
use crate::txn::SessionTxn;
use crate::{Db, OpsError};

/// The most often a replica is checked, and the least: a quarter of the lag limit, within these.
const CHECK_EVERY_MIN: Duration = Duration::from_millis(100);
const CHECK_EVERY_MAX: Duration = Duration::from_secs(1);

/// The longest a replica check waits for an answer.
const CHECK_TIMEOUT_MAX: Duration = Duration::from_secs(2);

/// Which server a session or read runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Primary,
    Replica(usize),
}

/// One read replica: its own pool, breaker and observed state.
#[derive(Debug)]
pub(crate) struct Replica {
    pub(crate) name: String,
    pub(crate) pool: Pool,
    pub(crate) conn: DatabaseConnection,
    pub(crate) breaker: Option<PoolBreaker>,
    /// The replica pool's own disconnect record.
    pub(crate) disconnects: super::Disconnects,
    /// The last check succeeded and no read failed on it since.
    up: AtomicBool,
    /// The last measured lag was past the limit.
    lagging: AtomicBool,
    /// Wakes the reads waiting on this replica when it is marked down, so they go elsewhere
    /// instead of waiting out a pool timeout on a dead server.
    went_down: tokio::sync::Notify,
    observed: Mutex<Observed>,
}

#[derive(Debug, Default, Clone)]
struct Observed {
    lag: Option<Duration>,
    ping: Option<Duration>,
    problem: Option<String>,
}

/// The primary's breaker and the replicas, with the rules that pick between them.
#[derive(Debug)]
pub(crate) struct Routing {
    pub(crate) primary_breaker: Option<PoolBreaker>,
    replicas: Vec<Replica>,
    next: AtomicUsize,
    max_lag: Duration,
    after_write: Option<Duration>,
    epoch: Instant,
    /// Milliseconds after `epoch` of the last write through the `Db`, plus one; 0 for never.
    last_write: AtomicU64,
}

/// A read sent through a reader: one of SeaORM's statement calls.
#[derive(Clone, Debug)]
pub(crate) enum ReadCall {
    Execute(Statement),
    Unprepared(String),
    One(Statement),
    All(Statement),
}

/// What a [`ReadCall`] returned.
#[derive(Debug)]
pub(crate) enum ReadOutput {
    Execute(ExecResult),
    One(Option<QueryResult>),
    All(Vec<QueryResult>),
}

impl ReadCall {
    /// The call's SQL text.
    pub(crate) fn sql(&self) -> &str {
        match self {
            ReadCall::Execute(stmt) | ReadCall::One(stmt) | ReadCall::All(stmt) => &stmt.sql,
            ReadCall::Unprepared(sql) => sql,
        }
    }

    async fn run(self, conn: &impl ConnectionTrait) -> Result<ReadOutput, DbErr> {
        Ok(match self {
            ReadCall::Execute(stmt) => ReadOutput::Execute(conn.execute_raw(stmt).await?),
            ReadCall::Unprepared(sql) => ReadOutput::Execute(conn.execute_unprepared(&sql).await?),
            ReadCall::One(stmt) => ReadOutput::One(conn.query_one_raw(stmt).await?),
            ReadCall::All(stmt) => ReadOutput::All(conn.query_all_raw(stmt).await?),
        })
    }
}

impl ReadCall {
    /// Runs the read in a session's transaction (on the primary: SQLite's readers, PgBouncer).
    async fn run_in(self, txn: &SessionTxn) -> Result<ReadOutput, DbErr> {
        Ok(match self {
            ReadCall::Execute(stmt) => ReadOutput::Execute(txn.execute_raw(stmt).await?),
            ReadCall::Unprepared(sql) => ReadOutput::Execute(txn.execute_unprepared(&sql).await?),
            ReadCall::One(stmt) => ReadOutput::One(txn.query_one_raw(stmt).await?),
            ReadCall::All(stmt) => ReadOutput::All(txn.query_all_raw(stmt).await?),
        })
    }
}

/// What a failed read on a replica means for where it goes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OnReplicaError {
    /// The replica cannot serve: mark it down and try elsewhere.
    MarkDown,
    /// This read failed there for a reason of the moment: try elsewhere.
    Elsewhere,
    /// Any server would give the same answer: return it.
    Surface,
}

fn on_replica_error(err: &DbErr) -> OnReplicaError {
    if super::breaker::rejection(err).is_some() {
        return OnReplicaError::Elsewhere;
    }
    match crate::classify::classify(err).category {
        ErrorCategory::Unavailable
        | ErrorCategory::Configuration
        | ErrorCategory::Retryable(RetryReason::ConnectionLost | RetryReason::ServerUnavailable) => {
            OnReplicaError::MarkDown
        }
        ErrorCategory::Retryable(_) | ErrorCategory::Other => OnReplicaError::Elsewhere,
        _ => OnReplicaError::Surface,
    }
}

impl Routing {
    /// The routing of `config`: the primary's breaker and one pool per replica URL.
    pub(crate) fn build(
        config: &DbConfig,
        db_errors: &ops_core::stats::ErrorStatsRecorder,
    ) -> Result<Routing, OpsError> {
        let breaker = config.breaker();
        let mut replicas = Vec::with_capacity(config.replica_urls.len());
        for url in &config.replica_urls {
            let replica_config = config.for_replica(url);
            let disconnects = std::sync::Arc::new(super::Invalidation::new(
                ops_core::metrics::PoolMetrics::new(super::metrics::replica_label(url)),
            ));
            let pool = super::build(
                &replica_config,
                &super::ReturnedInTransaction::default(),
                &disconnects,
            )?;
            replicas.push(Replica {
                name: url.redacted(),
                conn: pool.sea_connections().0,
                breaker: PoolBreaker::new(
                    breaker,
                    &url.redacted(),
                    config.pool_timeout,
                    db_errors.clone(),
                ),
                pool,
                disconnects,
                up: AtomicBool::new(false),
                lagging: AtomicBool::new(false),
                went_down: tokio::sync::Notify::new(),
                observed: Mutex::new(Observed {
                    problem: Some("not checked yet".to_owned()),
                    ..Observed::default()
                }),
            });
        }
        Ok(Routing {
            primary_breaker: PoolBreaker::new(
                breaker,
                &config.url.redacted(),
                config.pool_timeout,
                db_errors.clone(),
            ),
            replicas,
            next: AtomicUsize::new(0),
            max_lag: config.replica_max_lag,
            after_write: config.read_after_write,
            epoch: Instant::now(),
            last_write: AtomicU64::new(0),
        })
    }

    /// The disconnect record of a replica's pool.
    pub(crate) fn replica_disconnects(&self, index: usize) -> Option<&super::Invalidation> {
        self.replicas.get(index).map(|r| &*r.disconnects)
    }

    /// Whether any replica is configured.
    pub(crate) fn has_replicas(&self) -> bool {
        !self.replicas.is_empty()
    }

    /// The replicas, in configuration order.
    pub(crate) fn replicas(&self) -> &[Replica] {
        &self.replicas
    }

    /// The connection a session on `target` runs on.
    pub(crate) fn connection<'a>(&'a self, db: &'a Db, target: Target) -> &'a DatabaseConnection {
        match target {
            Target::Replica(i) => self.replicas.get(i).map_or(&db.inner.conn, |r| &r.conn),
            Target::Primary => &db.inner.conn,
        }
    }

    /// Notes a possible write through the `Db`, for the opt-in read-after-write window.
    #[inline]
    pub(crate) fn note_write(&self) {
        if self.after_write.is_some() && !self.replicas.is_empty() {
            let millis = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
            self.last_write.store(millis + 1, Ordering::Relaxed);
        }
    }

    /// Whether reads stay on the primary because of a recent write (`read_after_write`).
    fn pinned_to_primary(&self) -> bool {
        let Some(window) = self.after_write else {
            return false;
        };
        match self.last_write.load(Ordering::Relaxed) {
            0 => false,
            at => {
                let since = Duration::from_millis(at - 1);
                self.epoch.elapsed().saturating_sub(since) < window
            }
        }
    }

    /// The usable replicas, least busy first, ties in round-robin order.
    fn candidates(&self) -> Vec<usize> {
        let n = self.replicas.len();
        if n == 0 || self.pinned_to_primary() {
            return Vec::new();
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut order: Vec<(u32, usize)> = (0..n)
            .map(|k| (start + k) % n)
            .filter(|&i| self.replicas[i].usable())
            .map(|i| (self.replicas[i].pool.state().in_use(), i))
            .collect();
        order.sort_by_key(|&(busy, _)| busy);
        order.into_iter().map(|(_, i)| i).collect()
    }

    /// Runs one read: on a usable replica, else on the primary in a read-only transaction (or an
    /// `Unavailable` error when `replica_only`).
    pub(crate) async fn read(
        &self,
        db: &Db,
        call: ReadCall,
        replica_only: bool,
    ) -> Result<ReadOutput, DbErr> {
        for i in self.candidates() {
            let replica = &self.replicas[i];
            let Some(result) = replica
                .unless_down(super::metrics::acquiring(
                    replica.disconnects.metrics(),
                    guarded(replica.breaker.as_ref(), call.clone().run(&replica.conn)),
                ))
                .await
            else {
                continue;
            };
            match result {
                Ok(output) => return Ok(output),
                Err(err) => match replica.failed(db, err) {
                    Ok(()) => continue,
                    Err(err) => return Err(err),
                },
            }
        }
        if replica_only {
            return Err(self.no_replica(db));
        }
        self.read_on_primary(db, call).await
    }

    async fn read_on_primary(&self, db: &Db, call: ReadCall) -> Result<ReadOutput, DbErr> {
        let options = SessionOptions::new().read_only();
        let (txn, _) = guarded(
            self.primary_breaker.as_ref(),
            crate::session::begin_on_primary(db, &options),
        )
        .await
        .map_err(|e| db.observe(e))?;
        let result = call.run_in(&txn).await;
        match result {
            Ok(output) => {
                txn.commit().await.map_err(|e| db.observe(e))?;
                Ok(output)
            }
            Err(err) => {
                // Dropping the transaction rolls it back; the pool's reset-on-return makes sure.
                drop(txn);
                Err(db.observe(err))
            }
        }
    }

    fn no_replica(&self, db: &Db) -> DbErr {
        let why: Vec<String> = self
            .replicas
            .iter()
            .map(|r| format!("{}: {}", r.name, r.skip_reason(self.max_lag)))
            .collect();
        let detail = if self.replicas.is_empty() {
            "no read replica is configured, and this reader is replica_only: add one with \
             Db::builder(url).replica(url) or DB_REPLICA_URLS, or drop replica_only"
                .to_owned()
        } else {
            format!(
                "no read replica can serve this replica_only read ({}); wait for a replica to \
                 recover or drop replica_only to fall back to the primary",
                why.join("; ")
            )
        };
        let _ = db.record(OpsError::new(ErrorCategory::Unavailable, detail.clone()));
        DbErr::Conn(sea_orm::RuntimeErr::Internal(detail))
    }

    /// Begins a read-only session: on a usable replica, else on the primary.
    pub(crate) async fn begin_read_only(
        &self,
        db: &Db,
        options: &SessionOptions,
    ) -> Result<(SessionTxn, Target), DbErr> {
        for i in self.candidates() {
            let replica = &self.replicas[i];
            let begin = guarded(
                replica.breaker.as_ref(),
                crate::session::begin_txn(
                    &replica.conn,
                    options,
                    SqliteMode::Plain,
                    Some(replica.disconnects.metrics()),
                ),
            );
            let Some(result) = replica.unless_down(begin).await else {
                continue;
            };
            match result {
                Ok(txn) => return Ok((SessionTxn::Sea(txn), Target::Replica(i))),
                Err(err) => replica.failed(db, err)?,
            }
        }
        let (txn, _) = guarded(
            self.primary_breaker.as_ref(),
            crate::session::begin_on_primary(db, options),
        )
        .await?;
        Ok((txn, Target::Primary))
    }

    /// Checks every replica once, concurrently.
    pub(crate) async fn check_all(&self, timeout: Duration) {
        let checks = self
            .replicas
            .iter()
            .map(|replica| replica.check(timeout, self.max_lag));
        futures_util::future::join_all(checks).await;
    }

    /// The replicas' entries of a health report, from a fresh check.
    pub(crate) async fn health(&self, timeout: Duration) -> Vec<ReplicaHealth> {
        self.check_all(timeout).await;
        self.replicas
            .iter()
            .map(|replica| replica.health(self.max_lag))
            .collect()
    }

    /// Closes every replica pool.
    pub(crate) async fn close(&self) {
        for replica in &self.replicas {
            replica.pool.close().await;
        }
    }

    /// How often the monitor checks the replicas.
    fn check_every(&self) -> Duration {
        (self.max_lag / 4).clamp(CHECK_EVERY_MIN, CHECK_EVERY_MAX)
    }
}

impl Replica {
    /// Runs `call` unless the replica is marked down meanwhile; `None` then, and the call is
    /// abandoned (reads are safe to abandon and repeat elsewhere).
    async fn unless_down<T>(&self, call: impl std::future::Future<Output = T>) -> Option<T> {
        let went_down = self.went_down.notified();
        tokio::pin!(went_down);
        // Registered before the check, so a mark between the two is not missed.
        went_down.as_mut().enable();
        if !self.up.load(Ordering::Acquire) {
            return None;
        }
        tokio::select! {
            biased;
            result = call => Some(result),
            () = went_down => None,
        }
    }

    fn mark_down(&self, problem: String) {
        self.observed().problem = Some(problem);
        if self.up.swap(false, Ordering::AcqRel) {
            self.went_down.notify_waiters();
        }
    }

    fn usable(&self) -> bool {
        self.up.load(Ordering::Acquire)
            && !self.lagging.load(Ordering::Acquire)
            && self.breaker.as_ref().is_none_or(PoolBreaker::would_admit)
    }

    /// Handles a read's or a session's failure here: `Ok` to try elsewhere, `Err` to return.
    fn failed(&self, db: &Db, err: DbErr) -> Result<(), DbErr> {
        let rejected = super::breaker::rejection(&err).is_some();
        let verdict = on_replica_error(&err);
        // Recorded so a person sees the replica's trouble, but never returned when the read can
        // go elsewhere. A breaker's refusal is counted by the breaker instead.
        let err = if rejected {
            err
        } else {
            db.observe_with(err, &self.disconnects)
        };
        match verdict {
            OnReplicaError::Surface => Err(err),
            OnReplicaError::Elsewhere => {
                tracing::debug!(replica = %self.name, %err, "read failed on a replica; trying elsewhere");
                Ok(())
            }
            OnReplicaError::MarkDown => {
                tracing::warn!(
                    replica = %self.name,
                    %err,
                    "replica marked down; its reads go elsewhere until a check succeeds"
                );
                self.mark_down(format!("{:#}", OpsError::from(err)));
                Ok(())
            }
        }
    }

    fn observed(&self) -> std::sync::MutexGuard<'_, Observed> {
        self.observed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One round trip that also measures the lag.
    /// The check goes through the replica's breaker: while it is open the replica stays down
    /// and is not even asked; after the cooldown the check is the probe.
    async fn check(&self, timeout: Duration, max_lag: Duration) {
        let probe = match &self.breaker {
            Some(breaker) => match breaker.admit_check() {
                Some(probe) => Some((breaker, probe)),
                None => {
                    self.mark_down("its circuit breaker is open".to_owned());
                    return;
                }
            },
            None => None,
        };
        let started = Instant::now();
        let outcome = tokio::time::timeout(timeout, measure_lag(&self.pool)).await;
        let reached = match &outcome {
            Ok(Ok(_)) => true,
            Ok(Err(err)) => !matches!(
                crate::classify::classify_sqlx(err).category,
                ErrorCategory::Unavailable
                    | ErrorCategory::Retryable(
                        RetryReason::ConnectionLost
                            | RetryReason::ServerUnavailable
                            | RetryReason::PoolExhausted
                    )
            ),
            Err(_) => false,
        };
        if let Some((breaker, probe)) = probe {
            breaker.settle_check(probe, reached);
        }
        match outcome {
            Ok(Ok(lag)) => {
                {
                    let mut observed = self.observed();
                    observed.ping = Some(started.elapsed());
                    observed.lag = lag;
                    observed.problem = None;
                }
                let lagging = lag.is_none_or(|lag| lag > max_lag);
                self.lagging.store(lagging, Ordering::Release);
                self.up.store(true, Ordering::Release);
            }
            Ok(Err(err)) => {
                self.observed().ping = None;
                self.mark_down(format!("{:#}", OpsError::from(err)));
            }
            Err(_) => {
                self.observed().ping = None;
                self.mark_down(format!("no answer within {timeout:?}"));
            }
        }
    }

    fn skip_reason(&self, max_lag: Duration) -> String {
        let observed = self.observed().clone();
        if !self.up.load(Ordering::Acquire) {
            return format!(
                "down: {}",
                observed
                    .problem
                    .as_deref()
                    .unwrap_or("its last check failed")
            );
        }
        if self.lagging.load(Ordering::Acquire) {
            return match observed.lag {
                Some(lag) => format!("lagging {lag:?} behind, over the {max_lag:?} limit"),
                None => "lag unknown: replication is not running".to_owned(),
            };
        }
        if !self.breaker.as_ref().is_none_or(PoolBreaker::would_admit) {
            return "its circuit breaker is open".to_owned();
        }
        "usable".to_owned()
    }

    fn health(&self, max_lag: Duration) -> ReplicaHealth {
        let observed = self.observed().clone();
        let state = self.pool.state();
        let up = self.up.load(Ordering::Acquire)
            && self.breaker.as_ref().is_none_or(PoolBreaker::would_admit);
        let (status, reason) = if !up {
            (HealthStatus::Unhealthy, Some(self.skip_reason(max_lag)))
        } else if self.lagging.load(Ordering::Acquire) {
            (HealthStatus::Degraded, Some(self.skip_reason(max_lag)))
        } else {
            (HealthStatus::Healthy, None)
        };
        ReplicaHealth {
            name: self.name.clone(),
            status,
            reason,
            lag: observed.lag,
            ping: observed.ping,
            pool: self.disconnects.pool_status(state),
            breaker: self.breaker.as_ref().map(PoolBreaker::status),
        }
    }
}

/// The replica's replay lag: `Some(zero)` when it is caught up (or is not a replica at all),
/// `None` when replication is broken and the lag cannot be known.
async fn measure_lag(pool: &Pool) -> Result<Option<Duration>, sqlx::Error> {
    match pool {
        #[cfg(feature = "postgres")]
        Pool::Postgres(p) => {
            // Caught up when everything received has been replayed: an idle primary sends no
            // commits, and `now() - pg_last_xact_replay_timestamp()` would grow without lag.
            let seconds: Option<f64> = sqlx::query_scalar(
                "SELECT CASE \
                   WHEN NOT pg_catalog.pg_is_in_recovery() THEN 0 \
                   WHEN pg_catalog.pg_last_wal_receive_lsn() = pg_catalog.pg_last_wal_replay_lsn() THEN 0 \
                   ELSE EXTRACT(EPOCH FROM pg_catalog.now() - pg_catalog.pg_last_xact_replay_timestamp()) \
                 END::float8",
            )
            .fetch_one(p)
            .await?;
            Ok(seconds.map(|s| Duration::from_secs_f64(s.max(0.0))))
        }
        #[cfg(feature = "mysql")]
        Pool::MySql(p) => mysql_lag(p).await,
        #[cfg(feature = "sqlite")]
        Pool::Sqlite(p) => {
            sqlx::query("SELECT 1").execute(p.ping_pool()).await?;
            Ok(Some(Duration::ZERO))
        }
    }
}

/// MySQL/MariaDB: `Seconds_Behind_Master` (MySQL 8.0.22+: `Seconds_Behind_Source`) of
/// `SHOW REPLICA STATUS`, or of `SHOW SLAVE STATUS` on servers that predate it. No row: the server
/// is not a replica. NULL: replication is stopped or broken.
#[cfg(feature = "mysql")]
async fn mysql_lag(pool: &sqlx::MySqlPool) -> Result<Option<Duration>, sqlx::Error> {
    use sqlx::Row;
    let rows = match sqlx::query("SHOW REPLICA STATUS").fetch_all(pool).await {
        Ok(rows) => rows,
        Err(sqlx::Error::Database(_)) => sqlx::query("SHOW SLAVE STATUS").fetch_all(pool).await?,
        Err(other) => return Err(other),
    };
    let Some(row) = rows.first() else {
        return Ok(Some(Duration::ZERO));
    };
    for column in ["Seconds_Behind_Master", "Seconds_Behind_Source"] {
        if let Ok(value) = row.try_get::<Option<i64>, _>(column) {
            return Ok(value.map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0))));
        }
        if let Ok(value) = row.try_get::<Option<u64>, _>(column) {
            return Ok(value.map(Duration::from_secs));
        }
        if let Ok(value) = row.try_get::<Option<String>, _>(column) {
            return Ok(value
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map(Duration::from_secs));
        }
    }
    Ok(None)
}

/// Checks the replicas of `db` on startup, then every quarter of the lag limit (100 ms to 1 s),
/// until the last `Db` handle is dropped or the pool closed.
pub(crate) async fn first_check(routing: &Routing, config: &DbConfig) {
    let timeout = config.connect_timeout.min(CHECK_TIMEOUT_MAX);
    routing.check_all(timeout).await;
    for replica in routing.replicas() {
        if !replica.usable() {
            tracing::warn!(
                replica = %replica.name,
                "read replica not usable at startup ({}); reads go to the primary until it is",
                replica.skip_reason(routing.max_lag)
            );
        }
    }
}

/// The monitor loop: holds only a weak reference, so it ends with the last `Db` handle.
pub(crate) fn spawn_monitor(inner: Weak<crate::db::DbInner>) {
    let Some(strong) = inner.upgrade() else {
        return;
    };
    if !strong.routing.has_replicas() {
        return;
    }
    let every = strong.routing.check_every();
    let timeout = strong.config.connect_timeout.min(CHECK_TIMEOUT_MAX);
    drop(strong);
    crate::db::spawn_every(inner, every, move |inner| async move {
        inner.routing.check_all(timeout).await;
    });
}

impl Db {
    /// The read-only transaction's target, for `Session`.
    pub(crate) fn routing(&self) -> &Routing {
        &self.inner.routing
    }
}
