//! The connection layer behind a `Db`: one file per concern, and `Db` a thin handle over it.
//!
//! - `build.rs`: sqlx pools from a `DbConfig` (sizes, overflow, idle pings, the release hooks).
//! - `reset.rs`: how each backend tells whether a connection is inside a transaction, and ends it.
//! - `raw.rs`: raw SQL on a connection that is reset before the pool takes it back.
//! - `release.rs`: the bounded check of releases that follow an abandoned call.
//! - `sqlite.rs`: SQLite's one writer and its readers.
//! - `copy.rs`: PostgreSQL's `COPY ... FROM STDIN` on a connection ops holds itself.
//! - `pgbouncer.rs`: statements and transactions behind PgBouncer in transaction pooling mode.
//! - `routing.rs`: the primary and the read replicas, with their lag monitor.
//! - `breaker.rs`: the circuit breaker of each pool.
//! - `invalidation.rs`: each pool's last disconnect, and the check at checkout it triggers.
//! - `metrics.rs`: the pools' gauges and acquire times (feature `metrics`).
//! - `nodelay.rs`: `TCP_NODELAY` on the server connections, which sqlx 0.9.0 stopped setting.

use std::time::Duration;

use ops_core::health::PingResult;
use sea_orm::DatabaseConnection;
#[cfg(any(feature = "postgres", feature = "mysql"))]
use sqlx::ConnectOptions;
use sqlx::Connection;

use crate::OpsError;

#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

mod breaker;
mod build;
#[cfg(feature = "postgres")]
pub(crate) mod copy;
mod invalidation;
pub(crate) mod metrics;
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) mod nodelay;
#[cfg(feature = "postgres")]
pub(crate) mod pgbouncer;
mod raw;
pub(crate) mod release;
mod reset;
mod routing;

pub(crate) use breaker::{PoolBreaker, guarded, rejection};
#[cfg(feature = "sqlite")]
use build::pool_options;
pub(crate) use build::{bounded_hook, build, hook_limit, verify};
pub(crate) use invalidation::{Disconnects, Invalidation};
pub(crate) use raw::{ResetAfter, may_open_transaction};
pub(crate) use routing::{ReadCall, ReadOutput, Routing, Target};
pub(crate) use routing::{first_check, spawn_monitor};

/// What a pool reports about itself: one type with the health report's pool part.
pub use ops_core::health::PoolState;

/// Counts connections returned to the pool inside a transaction (and rolled back there).
pub(crate) type ReturnedInTransaction = std::sync::Arc<std::sync::atomic::AtomicU64>;

fn count_returned(returned: &ReturnedInTransaction) {
    returned.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// The sqlx pool of one backend.
#[derive(Clone, Debug)]
pub(crate) enum Pool {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlite::SqlitePools),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
    #[cfg(feature = "mysql")]
    MySql(sqlx::MySqlPool),
}

/// Runs `$body` with the sqlx pool of a server backend; SQLite's pools answer through `$sqlite`.
macro_rules! each_pool {
    ($self:expr, $s:ident => $sqlite:expr, $p:ident => $body:expr) => {
        match $self {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite($s) => $sqlite,
            #[cfg(feature = "postgres")]
            Pool::Postgres($p) => $body,
            #[cfg(feature = "mysql")]
            Pool::MySql($p) => $body,
        }
    };
}

impl Pool {
    pub(crate) fn state(&self) -> PoolState {
        each_pool!(self, s => s.state(), p => PoolState {
            size: p.size(),
            idle: u32::try_from(p.num_idle()).unwrap_or(u32::MAX),
            min: p.options().get_min_connections(),
            max: p.options().get_max_connections(),
            ..PoolState::default()
        })
    }

    /// The PostgreSQL pool, when this is one.
    #[cfg(feature = "postgres")]
    #[allow(unreachable_patterns)]
    pub(crate) fn postgres(&self) -> Option<&sqlx::PgPool> {
        match self {
            Pool::Postgres(p) => Some(p),
            _ => None,
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        each_pool!(self, s => s.is_closed(), p => p.is_closed())
    }

    pub(crate) async fn close(&self) {
        each_pool!(self, s => s.close().await, p => p.close().await)
    }

    /// The SeaORM connection over this pool (on SQLite, over the writer), and on SQLite file
    /// databases the one over the readers.
    pub(crate) fn sea_connections(&self) -> (DatabaseConnection, Option<DatabaseConnection>) {
        match self {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(s) => s.sea_connections(),
            #[cfg(feature = "postgres")]
            Pool::Postgres(p) => (
                sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(p.clone()),
                None,
            ),
            #[cfg(feature = "mysql")]
            Pool::MySql(p) => (
                sea_orm::SqlxMySqlConnector::from_sqlx_mysql_pool(p.clone()),
                None,
            ),
        }
    }

    /// Whether a pool timeout means no connection could be opened (the database is unreachable)
    /// rather than that every connection was busy. sqlx reports both as an acquire timeout,
    /// because it retries a refused connect until the pool timeout.
    pub(crate) fn never_connected(&self) -> bool {
        match self {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(s) => s.never_opened(),
            #[allow(unreachable_patterns)]
            _ => {
                // When the pool was below its limit the time went into connecting.
                let state = self.state();
                state.size < state.max
            }
        }
    }

    /// The state of the pool a session takes its connection from: on SQLite the writer's for a
    /// session that may write, the readers' for a read-only one; elsewhere the one pool's.
    pub(crate) fn session_state(&self, read_only: bool) -> PoolState {
        match self {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(s) => s.session_state(read_only),
            #[allow(unreachable_patterns)]
            _ => {
                let _ = read_only;
                self.state()
            }
        }
    }

    /// How a session begins on SQLite; `None` on the other backends.
    #[cfg(feature = "sqlite")]
    pub(crate) fn sqlite_begin(&self, read_only: bool) -> Option<sqlite::SqliteBegin> {
        match self {
            Pool::Sqlite(s) => Some(s.begin_mode(read_only)),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// Takes a connection and runs the backend's cheapest round trip on it, bounded by `timeout`.
    pub(crate) async fn ping(&self, timeout: Duration) -> PingResult {
        let started = std::time::Instant::now();
        let work = async {
            each_pool!(self, s => {
                let mut conn = s.ping_pool().acquire().await?;
                conn.ping().await
            }, p => {
                if p.num_idle() == 0 && p.size() >= p.options().get_max_connections() {
                    // A saturated pool says nothing about the database: ask it on a connection
                    // of its own rather than queueing behind the work.
                    let mut conn = p.connect_options().connect().await?;
                    let result = conn.ping().await;
                    let _ = conn.close().await;
                    result
                } else {
                    let mut conn = p.acquire().await?;
                    conn.ping().await
                }
            })
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(Ok(())) => PingResult::Ok(started.elapsed()),
            Ok(Err(err)) => PingResult::Failed(format!("{:#}", OpsError::from(err))),
            Err(_) => PingResult::TimedOut(timeout),
        }
    }
}
