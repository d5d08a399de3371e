//! `Db`: the unified access layer over the pool, the session tracker, the error stats and the
//! configuration.

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use ops_core::config::DbConfig;
use ops_core::stats::ErrorStatsRecorder;
use ops_core::tracker::{SessionStats, SessionTracker};
use sea_orm::{DatabaseConnection, DbBackend, DbErr};

use crate::OpsError;
use crate::pool::{Pool, PoolState};

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
    pub(crate) conn: DatabaseConnection,
    pub(crate) pool: Pool,
    pub(crate) config: DbConfig,
    pub(crate) tracker: SessionTracker,
    pub(crate) errors: ErrorStatsRecorder,
    pub(crate) backend: DbBackend,
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
        let pool = crate::pool::build(&config)?;
        crate::pool::verify(&config).await?;
        let backend = match config.backend() {
            ops_core::config::Backend::Sqlite => DbBackend::Sqlite,
            ops_core::config::Backend::Postgres => DbBackend::Postgres,
            ops_core::config::Backend::MySql => DbBackend::MySql,
        };
        let inner = Arc::new(DbInner {
            conn: pool.sea_connection(),
            tracker: SessionTracker::new(config.leak_threshold),
            errors: ErrorStatsRecorder::default(),
            pool,
            config,
            backend,
        });
        spawn_leak_watcher(Arc::downgrade(&inner));
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

    /// The SeaORM connection over the same pool, for APIs that want one by value.
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

    /// The pool's current size, idle count and limits.
    pub fn pool_state(&self) -> PoolState {
        self.inner.pool.state()
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
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        self.inner.pool.is_closed()
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
        ) {
            let state = self.inner.pool.state();
            if state.size < state.max {
                return DbErr::Conn(sea_orm::RuntimeErr::SqlxError(Arc::new(
                    sqlx::Error::PoolTimedOut,
                )));
            }
        }
        err
    }

    /// Refines and records a failed statement's error. Every statement error of a `Db` or a
    /// `Session` passes here once, so `error_stats()` counts raw SeaORM queries as well as
    /// repository calls.
    pub(crate) fn observe(&self, err: DbErr) -> DbErr {
        let err = self.refine(err);
        let classification = crate::classify::classify(&err);
        self.inner.errors.record(
            classification.category,
            classification.code.as_deref(),
            &err.to_string(),
        );
        err
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

/// One builder method per row of the settings table (`ops_core::config`'s `settings.rs`): adding
/// a setting there adds its method here.
macro_rules! builder_setters {
    ($(
        $(#[doc = $doc:literal])*
        $field:ident: $ty:ty = $default:literal, env $env:literal, kind $kind:ty,
            setter $setter:ty, readme $readme:literal;
    )*) => {
        impl DbBuilder {
            $(
                $(#[doc = $doc])*
                ///
                #[doc = concat!("Default `", $default, "`; the environment variable is `", $env, "`.")]
                pub fn $field(mut self, value: $setter) -> Self {
                    if let Ok(config) = &mut self.config {
                        config.$field = ::core::convert::From::from(value);
                    }
                    self
                }
            )*
        }
    };
}

ops_core::__db_settings!(builder_setters);

impl DbBuilder {
    /// The configuration built so far.
    pub fn config(&self) -> Result<&DbConfig, &OpsError> {
        self.config.as_ref()
    }

    /// Validates the configuration, builds the pool and proves the database answers.
    pub async fn connect(self) -> Result<Db, OpsError> {
        Db::connect_with(self.config?).await
    }
}

/// Warns once for every session held past the leak threshold: the maintenance sweeper with
/// nothing else to do. It holds only a weak reference, so it ends when the last `Db` handle is
/// dropped or the pool is closed.
fn spawn_leak_watcher(inner: Weak<DbInner>) {
    let Some(threshold) = inner.upgrade().and_then(|i| i.config.leak_threshold) else {
        return;
    };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    // A quarter of the threshold keeps the warning within 25% of it, bounded so a tiny threshold
    // does not spin and a huge one still reports within a minute.
    let period = (threshold / 4).clamp(Duration::from_millis(10), Duration::from_secs(60));
    let config = crate::MaintenanceConfig::default().sweep_every(period);
    runtime.spawn(crate::maintenance::maintain(inner, config));
}

crate::delegate::delegate_connection! {
    impl for Db;
    connection(|db| Ok::<_, DbErr>(&db.inner.conn));
    observe(|db, err| db.observe(err));
    backend(|db| db.inner.backend);
    support_returning(|db| db.inner.conn.support_returning());
}

impl crate::Executor for Db {
    fn error_recorder(&self) -> Option<&ErrorStatsRecorder> {
        Some(&self.inner.errors)
    }
}
