//! Keeping the pool's connections healthy: reset on return (never hand out a connection inside a
//! transaction), the ping of long-idle connections at checkout, and the health check's ping.
//!
//! Reset on return asks each backend whether a returned connection is inside a transaction.
//! sqlx 0.9 tracks the protocol's transaction status internally but does not expose it, and its
//! public `is_in_transaction` counts only transactions sqlx began. So each backend asks the
//! connection in the cheapest way it has.

use std::time::Duration;

use ops_core::health::PingResult;
#[cfg(any(feature = "postgres", feature = "mysql"))]
use sqlx::Executor as _;
use sqlx::pool::PoolConnectionMetadata;
use sqlx::{ConnectOptions, Connection};

use super::Pool;
use crate::OpsError;

/// Pings a connection at checkout only when it sat idle at least `idle_ping` (HikariCP's rule).
pub(super) fn ping_idle<DB: sqlx::Database>(
    options: sqlx::pool::PoolOptions<DB>,
    idle_ping: Duration,
) -> sqlx::pool::PoolOptions<DB> {
    options.before_acquire(move |conn, meta: PoolConnectionMetadata| {
        Box::pin(async move {
            if meta.idle_for < idle_ping {
                return Ok(true);
            }
            // A failed ping discards this connection; sqlx then takes another or opens a new one,
            // so the caller never sees the dead connection.
            Ok(conn.ping().await.is_ok())
        })
    })
}

impl Pool {
    /// Takes a connection and runs the backend's cheapest round trip on it, bounded by `timeout`.
    pub(crate) async fn ping(&self, timeout: Duration) -> PingResult {
        let started = std::time::Instant::now();
        let work = async {
            each_pool!(self, p => {
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
            Ok(Err(err)) => PingResult::Failed(OpsError::from(err).to_string()),
            Err(_) => PingResult::TimedOut(timeout),
        }
    }
}

/// SQLite answers from memory: `sqlite3_get_autocommit` is zero inside a transaction.
#[cfg(feature = "sqlite")]
pub(super) async fn sqlite_in_transaction(
    conn: &mut sqlx::SqliteConnection,
) -> Result<bool, sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let raw = handle.as_raw_handle();
    Ok(crate::sqlite_ffi::in_transaction(raw))
}

/// PostgreSQL: outside an explicit transaction every statement is its own transaction, so
/// `now()` (the transaction's start) equals `statement_timestamp()`. Inside one, `now()` is the
/// earlier `BEGIN`. An aborted transaction rejects the query, which also means "roll back".
#[cfg(feature = "postgres")]
pub(super) async fn postgres_reset(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    // A plain string runs over the simple-query protocol, where both timestamps are taken
    // from the one Query message; over the extended protocol the implicit transaction starts
    // at Parse and the statement at Execute, so they differ even outside a transaction.
    let check = conn
        .fetch_one("SELECT pg_catalog.now() <> pg_catalog.statement_timestamp()")
        .await;
    let in_transaction = match check {
        Ok(row) => sqlx::Row::try_get::<bool, _>(&row, 0)?,
        Err(sqlx::Error::Database(_)) => true,
        Err(other) => return Err(other),
    };
    if in_transaction {
        tracing::warn!(
            "a PostgreSQL connection was returned to the pool inside a transaction; \
             rolling it back"
        );
        conn.execute("ROLLBACK").await?;
    }
    Ok(())
}

/// MySQL/MariaDB: `ROLLBACK` outside a transaction is a silent no-op, so one statement both
/// checks and resets.
#[cfg(feature = "mysql")]
pub(super) async fn mysql_reset(conn: &mut sqlx::MySqlConnection) -> Result<(), sqlx::Error> {
    conn.execute("ROLLBACK").await?;
    Ok(())
}
