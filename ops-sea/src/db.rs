//! `Db`: the unified access layer over the pool, the session tracker, the error stats and the
//! configuration. What it supplies to the shared forward of SeaORM's connection traits
//! (`delegate.rs`), with the PgBouncer, raw-SQL and SQLite-routing branches, is in `db/forward.rs`.

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use ops_core::config::DbConfig;
use ops_core::stats::ErrorStatsRecorder;
use ops_core::tracker::{SessionStats, SessionTracker};
use sea_orm::{DatabaseConnection, DbBackend, DbErr};

use crate::OpsError;
use crate::pool::{Pool, PoolState, Routing, guarded};

mod forward;

/// The unified access layer: a cheap `Clone` handle over the pool, the session tracker, the error
/// stats and the configuration.
///
/// `Db` implements SeaORM's `ConnectionTrait`, so anything SeaORM can run on a
/// `DatabaseConnection` runs on a `Db`; every generated repository function takes it too.
///
/// ```no_run
/// # async fn demo() -> Result<(), ops_sea::OpsError> {
/// let db = ops_sea::Db::connect("sqlite::memory:").await?;
/// let session = db.session().await?;
/// session.commit().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Db {
    pub(crate) inner: Arc<DbInner>,
}

pub(crate) struct DbInner {
    /// The primary's SeaORM connection over its pool; on SQLite, over the one writer.
    pub(crate) conn: DatabaseConnection,
    /// On SQLite file databases, the SeaORM connection over the read-only readers.
    pub(crate) readers: Option<DatabaseConnection>,
    pub(crate) pool: Pool,
    /// The primary's circuit breaker and the read replicas.
    pub(crate) routing: Routing,
    pub(crate) config: DbConfig,
    pub(crate) tracker: SessionTracker,
    pub(crate) errors: ErrorStatsRecorder,
    pub(crate) backend: DbBackend,
    /// Connections the pool got back inside a transaction and rolled back.
    pub(crate) returned_in_transaction: crate::pool::ReturnedInTransaction,
    /// How connections that ran raw SQL are reset (`ResetCheck::Auto`).
    pub(crate) reset_after: crate::pool::ResetAfter,
    /// The primary pool's last disconnect (`pool/invalidation.rs`).
    pub(crate) disconnects: crate::pool::Disconnects,
    /// Span attributes and the statement settings (`telemetry.rs`).
    pub(crate) telemetry: crate::telemetry::Telemetry,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("config", &self.inner.config)
            .field("pool", &self.inner.pool.state())
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Connects with default settings, proving the database answers within the connect timeout.
    pub async fn connect(url: &str) -> Result<Db, OpsError> {
        Db::builder(url).connect().await
    }

    /// Connects with the settings of the environment (`DATABASE_URL`, `DB_POOL_SIZE`, ...; see the
    /// crate documentation). With no `DATABASE_URL`, an embedded SQLite file database is created
    /// on demand.
    pub async fn connect_from_env() -> Result<Db, OpsError> {
        let config = DbConfig::from_env()?;
        Db::connect_with(config).await
    }

    /// A builder starting from defaults for `url`.
    pub fn builder(url: &str) -> DbBuilder {
        DbBuilder {
            config: DbConfig::new(url).map_err(OpsError::from),
        }
    }

    /// Connects with a complete configuration.
    pub async fn connect_with(config: DbConfig) -> Result<Db, OpsError> {
        config.validate()?;
        for note in &config.normalizations {
            tracing::info!(url = %config.url, "{note}");
        }
        // Verified first: on a new SQLite file the first connection switches the database to
        // WAL, which needs the file to itself; the pool opens its connections lazily after.
        crate::pool::verify(&config).await?;
        let returned_in_transaction = crate::pool::ReturnedInTransaction::default();
        let disconnects = crate::pool::Disconnects::default();
        let pool = crate::pool::build(&config, &returned_in_transaction, &disconnects)?;
        let errors = ErrorStatsRecorder::default();
        let routing = Routing::build(&config, &errors)?;
        crate::pool::first_check(&routing, &config).await;
        let backend = match config.backend() {
            ops_core::config::Backend::Sqlite => DbBackend::Sqlite,
            ops_core::config::Backend::Postgres => DbBackend::Postgres,
            ops_core::config::Backend::MySql => DbBackend::MySql,
        };
        let (conn, readers) = pool.sea_connections();
        let reset_after = crate::pool::ResetAfter {
            returned: returned_in_transaction.clone(),
            limit: crate::pool::hook_limit(&config),
        };
        let telemetry = crate::telemetry::Telemetry::new(&config, backend, &errors);
        let inner = Arc::new(DbInner {
            telemetry,
            conn,
            readers,
            tracker: SessionTracker::new(config.leak_threshold),
            errors,
            pool,
            routing,
            config,
            backend,
            returned_in_transaction,
            reset_after,
            disconnects,
        });
        spawn_leak_watcher(Arc::downgrade(&inner));
        crate::pool::spawn_monitor(Arc::downgrade(&inner));
        spawn_metrics_sampler(Arc::downgrade(&inner));
        tracing::debug!(config = %inner.config, "database connected");
        Ok(Db { inner })
    }

    /// The effective configuration. Its `Display` never shows a password.
    pub fn config(&self) -> &DbConfig {
        &self.inner.config
    }

    /// The SeaORM backend.
    pub fn backend(&self) -> DbBackend {
        self.inner.backend
    }

    /// The SeaORM connection over the same pool, for APIs that want one by value. On SQLite it
    /// is the connection over the one writer, so anything run on it may write.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.inner.conn
    }

    /// Counters of the session tracker and the sessions held past the leak threshold.
    pub fn session_stats(&self) -> SessionStats {
        self.inner.tracker.stats()
    }

    /// The session tracker.
    pub fn tracker(&self) -> &SessionTracker {
        &self.inner.tracker
    }

    /// The recorder the error stats are kept in.
    pub fn error_recorder(&self) -> &ErrorStatsRecorder {
        &self.inner.errors
    }

    /// How many connections came back to the pool inside a transaction (a raw `BEGIN`, a
    /// transaction nobody ended) and were rolled back there. SQLite and PostgreSQL only: MySQL's
    /// reset cannot tell.
    pub(crate) fn returned_in_transaction(&self) -> u64 {
        self.inner
            .returned_in_transaction
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The pool's current size, idle count and limits, and its disconnect record: the pool part
    /// of `db.health()`, without a ping.
    pub fn pool_state(&self) -> PoolState {
        self.inner.disconnects.pool_status(self.inner.pool.state())
    }

    /// Sends the backend's cheapest round trip on a pooled connection, bounded by `timeout`, and
    /// returns its latency.
    pub async fn ping(&self, timeout: Duration) -> Result<Duration, OpsError> {
        use ops_core::health::PingResult;
        match self.inner.pool.ping(timeout).await {
            PingResult::Ok(latency) => Ok(latency),
            PingResult::Failed(detail) => Err(self.record(OpsError::new(
                ops_core::ErrorCategory::Unavailable,
                format!("ping failed: {detail}"),
            ))),
            PingResult::TimedOut(limit) => Err(self.record(OpsError::new(
                ops_core::ErrorCategory::Unavailable,
                format!("the database did not answer a ping within {limit:?}"),
            ))),
        }
    }

    /// Closes the pool: waits for checked-out connections to come back, then closes them all.
    pub async fn close(&self) {
        self.inner.pool.close().await;
        self.inner.routing.close().await;
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        self.inner.pool.is_closed()
    }

    /// The PostgreSQL pool when ops runs behind PgBouncer in transaction pooling mode
    /// (`DB_PGBOUNCER=transaction`): statements then run on `pool::pgbouncer`, unnamed and
    /// inside transactions, instead of on SeaORM's executors.
    #[cfg(feature = "postgres")]
    pub(crate) fn pgbouncer_pool(&self) -> Option<&sqlx::PgPool> {
        self.inner.config.pgbouncer?;
        self.inner.pool.postgres()
    }

    /// Whether ops runs behind PgBouncer (validation allows it for PostgreSQL only).
    pub(crate) fn is_pgbouncer(&self) -> bool {
        self.inner.config.pgbouncer.is_some()
    }

    /// Tells a pool that could not *open* a connection from one whose connections were all busy.
    /// sqlx reports both as an acquire timeout, because it retries a refused connect until the
    /// pool timeout. When the pool was below its limit the time went into connecting, so the
    /// database is unreachable, not the pool exhausted; the error is rewritten to the form the
    /// classifier maps to `Unavailable`.
    pub(crate) fn refine(&self, err: DbErr) -> DbErr {
        if matches!(
            err,
            DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout)
        ) && self.inner.pool.never_connected()
        {
            return DbErr::Conn(sea_orm::RuntimeErr::SqlxError(Arc::new(
                sqlx::Error::PoolTimedOut,
            )));
        }
        err
    }

    /// Refines and records a failed statement's error. Every statement error of a `Db` or a
    /// `Session` passes here once, so `error_stats()` counts raw SeaORM queries as well as
    /// repository calls.
    ///
    /// A lost connection also records a disconnect for the primary's pool, so its connections
    /// released before now are checked before they are handed out again.
    pub(crate) fn observe(&self, err: DbErr) -> DbErr {
        self.observe_with(err, &self.inner.disconnects)
    }

    /// `observe` for a statement that ran on the pool whose disconnect record is `disconnects`
    /// (a replica's).
    pub(crate) fn observe_with(
        &self,
        err: DbErr,
        disconnects: &crate::pool::Invalidation,
    ) -> DbErr {
        if crate::pool::rejection(&err).is_some() {
            // Counted by the breaker; recording each refusal as an error would turn a minute's
            // outage into thousands of critical events.
            return err;
        }
        let err = self.refine(err);
        let classification = crate::classify::classify(&err);
        if classification.category
            == ops_core::ErrorCategory::Retryable(ops_core::RetryReason::ConnectionLost)
        {
            disconnects.record();
        }
        self.inner.errors.record(
            classification.category,
            classification.code.as_deref(),
            &err.to_string(),
        );
        err
    }

    /// Records a disconnect for the pool behind `target` when `category` says the connection was
    /// lost: for errors that do not pass through `observe` (a failed `BEGIN`, `COMMIT` or
    /// `ROLLBACK` of a session).
    pub(crate) fn note_lost(&self, category: ops_core::ErrorCategory, target: crate::pool::Target) {
        if matches!(
            category,
            ops_core::ErrorCategory::Retryable(ops_core::RetryReason::ConnectionLost)
                | ops_core::ErrorCategory::CommitUnknown
        ) {
            self.disconnects(target).record();
        }
    }

    /// The disconnect record of the pool behind `target`.
    pub(crate) fn disconnects(&self, target: crate::pool::Target) -> &crate::pool::Invalidation {
        match target {
            crate::pool::Target::Replica(index) => self
                .inner
                .routing
                .replica_disconnects(index)
                .unwrap_or(&self.inner.disconnects),
            crate::pool::Target::Primary => &self.inner.disconnects,
        }
    }

    /// Runs one call on the primary through its circuit breaker.
    pub(crate) async fn guarded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, DbErr>>,
    ) -> Result<T, DbErr> {
        guarded(self.inner.routing.primary_breaker.as_ref(), call).await
    }

    /// Records an error in the stats of `db` when there is one (sessions on a plain SeaORM
    /// connection have none) and returns it.
    pub(crate) fn record_in(db: Option<&Db>, err: OpsError) -> OpsError {
        match db {
            Some(db) => db.record(err),
            None => err,
        }
    }

    /// Records an error in the error stats and returns it, for code paths that build an
    /// `OpsError` themselves.
    pub(crate) fn record(&self, err: OpsError) -> OpsError {
        self.inner
            .errors
            .record(err.category(), err.code(), err.detail());
        err
    }
}

/// Builds a `Db` from defaults, overriding single settings. Every setting of the environment
/// table has a method here.
#[derive(Debug)]
#[must_use = "a builder does nothing until `connect` is called"]
pub struct DbBuilder {
    config: Result<DbConfig, OpsError>,
}

/// Writes one `DbBuilder` method per setting of ops-core's settings table, with the setting's
/// doc and environment variable: `set` takes the field's type, `some(T)` takes `T` and stores
/// `Some`, `none` has a hand-written method instead.
macro_rules! builder_setters {
    ($(
        $(#[doc = $doc:literal])*
        $field:ident : $ty:ty {
            env: $env:literal,
            setter: $setter:ident $(($inner:ty))?,
            $($rest:tt)*
        }
    )*) => {
        impl DbBuilder {
            $(builder_setters!(@one $setter $(($inner))?, $field, $ty, $env, [$($doc)*]);)*
        }
    };
    (@one set, $field:ident, $ty:ty, $env:literal, [$($doc:literal)*]) => {
        $(#[doc = $doc])*
        #[doc = ""]
        #[doc = concat!("`", $env, "` in the environment.")]
        pub fn $field(mut self, value: $ty) -> Self {
            if let Ok(config) = &mut self.config {
                config.$field = value;
            }
            self
        }
    };
    (@one some($inner:ty), $field:ident, $ty:ty, $env:literal, [$($doc:literal)*]) => {
        $(#[doc = $doc])*
        #[doc = ""]
        #[doc = concat!("`", $env, "` in the environment.")]
        pub fn $field(mut self, value: $inner) -> Self {
            if let Ok(config) = &mut self.config {
                config.$field = Some(value);
            }
            self
        }
    };
    (@one none, $field:ident, $ty:ty, $env:literal, [$($doc:literal)*]) => {};
}

ops_core::for_each_setting!(builder_setters);

impl DbBuilder {
    /// Adds a read replica (repeatable; `DB_REPLICA_URLS` in the environment, comma-separated).
    /// Read-only sessions and `db.reader()` reads go to a usable replica; everything else to the
    /// primary.
    pub fn replica(mut self, url: &str) -> Self {
        if let Ok(config) = &mut self.config {
            match ops_core::config::DatabaseUrl::parse(url) {
                Ok(url) => config.replica_urls.push(url),
                Err(err) => self.config = Err(OpsError::from(err)),
            }
        }
        self
    }

    /// The configuration built so far.
    pub fn config(&self) -> Result<&DbConfig, &OpsError> {
        self.config.as_ref()
    }

    /// Validates the configuration, builds the pool and proves the database answers.
    pub async fn connect(self) -> Result<Db, OpsError> {
        Db::connect_with(self.config?).await
    }
}

/// The loop of every background task of a `Db` (the leak watcher, the replica monitor, the
/// metrics sampler, the maintenance sweep): runs `tick` every `period`, holding the `Db` only
/// while a tick runs, and ends when the last handle is dropped or the pool is closed.
pub(crate) async fn every<F, Fut>(inner: Weak<DbInner>, period: Duration, mut tick: F)
where
    F: FnMut(Arc<DbInner>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        if inner.pool.is_closed() {
            return;
        }
        tick(inner).await;
    }
}

/// Spawns [`every`] on the current tokio runtime; outside one (a `Db` built by the blocking
/// bridge before its runtime runs) nothing is spawned.
pub(crate) fn spawn_every<F, Fut>(inner: Weak<DbInner>, period: Duration, tick: F)
where
    F: FnMut(Arc<DbInner>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(every(inner, period, tick));
    }
}

/// Samples the gauges of every pool, and the long-running sessions, once a second (feature
/// `metrics`; without it nothing is spawned).
fn spawn_metrics_sampler(inner: Weak<DbInner>) {
    #[cfg(feature = "metrics")]
    {
        ops_core::metrics::describe();
        spawn_every(inner, crate::pool::metrics::SAMPLE_EVERY, |inner| {
            crate::pool::metrics::sample(inner.disconnects.metrics(), inner.pool.state());
            for replica in inner.routing.replicas() {
                crate::pool::metrics::sample(replica.disconnects.metrics(), replica.pool.state());
            }
            let long_running = inner
                .config
                .leak_threshold
                .map_or(0, |threshold| inner.tracker.long_running(threshold).len());
            ops_core::metrics::sessions_long_running(long_running);
            std::future::ready(())
        });
    }
    #[cfg(not(feature = "metrics"))]
    let _ = inner;
}

/// Warns once for every session held past the leak threshold (the sweep `maintenance.rs` also
/// runs, without its other chores).
fn spawn_leak_watcher(inner: Weak<DbInner>) {
    let Some(threshold) = inner.upgrade().and_then(|i| i.config.leak_threshold) else {
        return;
    };
    // A quarter of the threshold keeps the warning within 25% of it, bounded so a tiny threshold
    // does not spin and a huge one still reports within a minute.
    let period = (threshold / 4).clamp(Duration::from_millis(10), Duration::from_secs(60));
    spawn_every(inner, period, |inner| {
        inner.tracker.warn_leaks();
        std::future::ready(())
    });
}

crate::delegate::forward_connection!(Db);

impl crate::Executor for Db {
    fn error_recorder(&self) -> Option<&ErrorStatsRecorder> {
        Some(&self.inner.errors)
    }

    fn __telemetry(&self) -> Option<&crate::telemetry::Telemetry> {
        Some(&self.inner.telemetry)
    }

    fn __bulk_route(&self) -> crate::executor::BulkRoute<'_> {
        crate::executor::BulkRoute::Db(self)
    }
}
