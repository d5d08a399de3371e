//! How a session's transaction begins: on SQLite on the writer (`BEGIN IMMEDIATE`) or a reader,
//! behind PgBouncer as ops' own transaction of unnamed statements, elsewhere as SeaORM's; and the
//! server-side arrangements for a session with a timeout.

use std::future::Future;
use std::time::Duration;

use ops_core::SessionOptions;
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    IsolationLevel, Statement, TransactionTrait,
};

use crate::Db;
use crate::delegate::Target as _;
use crate::pool::Target;
use crate::txn::SessionTxn;

/// How a session begins on SQLite.
pub(crate) enum SqliteMode {
    /// A connection ops does not own (or another backend): a write session begins with
    /// `BEGIN IMMEDIATE`, a read-only one with a plain `BEGIN`, and `query_only` is left alone,
    /// because nothing would turn it off again before the pool hands the connection out.
    Plain,
    /// A connection of a `Db`'s SQLite pools, which decided how.
    #[cfg(feature = "sqlite")]
    Pool(crate::pool::sqlite::SqliteBegin),
}

impl SqliteMode {
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    fn is_writer(&self) -> bool {
        #[cfg(feature = "sqlite")]
        if let SqliteMode::Pool(crate::pool::sqlite::SqliteBegin::Write) = self {
            return true;
        }
        false
    }
}

/// The SQL name of an isolation level, for the `BEGIN` ops sends itself behind PgBouncer.
#[cfg(feature = "postgres")]
fn isolation_sql(isolation: ops_core::Isolation) -> &'static str {
    match isolation {
        ops_core::Isolation::ReadUncommitted => "READ UNCOMMITTED",
        ops_core::Isolation::ReadCommitted => "READ COMMITTED",
        ops_core::Isolation::RepeatableRead => "REPEATABLE READ",
        _ => "SERIALIZABLE",
    }
}

/// Begins a session's transaction on the primary, the way its pools need: on SQLite on the
/// writer (`BEGIN IMMEDIATE`) or a reader, behind PgBouncer as ops's own transaction of unnamed
/// statements, elsewhere as SeaORM's. Returns whether it holds SQLite's one writer.
pub(crate) async fn begin_on_primary(
    db: &Db,
    options: &SessionOptions,
) -> Result<(SessionTxn, bool), DbErr> {
    let metrics = db.inner.disconnects.metrics();
    #[cfg(feature = "sqlite")]
    if let Some(mode) = db.inner.pool.sqlite_begin(options.read_only) {
        let conn = match (&mode, &db.inner.readers) {
            (crate::pool::sqlite::SqliteBegin::Reader, Some(readers)) => readers,
            _ => &db.inner.conn,
        };
        let sqlite = SqliteMode::Pool(mode);
        let writer = sqlite.is_writer();
        let txn = begin_txn(conn, options, sqlite, Some(metrics)).await?;
        return Ok((SessionTxn::Sea(txn), writer));
    }
    #[cfg(feature = "postgres")]
    if let Some(pool) = db.pgbouncer_pool() {
        let begin = crate::pool::pgbouncer::begin_sql(
            options.isolation.map(isolation_sql),
            options.read_only,
            db.config().statement_timeout,
        );
        let begin = crate::pool::pgbouncer::Txn::begin(pool, begin);
        let txn = crate::pool::metrics::acquiring(metrics, begin).await?;
        return Ok((SessionTxn::Bouncer(txn), false));
    }
    let txn = begin_txn(&db.inner.conn, options, SqliteMode::Plain, Some(metrics)).await?;
    Ok((SessionTxn::Sea(txn), false))
}

/// Awaits one of SeaORM's `begin` calls, counted as a wait for a connection of the pool
/// `metrics` describes (`pool/metrics.rs`). SeaORM's futures are boxed, so wrapping them moves a
/// pointer, not a session's worth of state.
async fn waited<T>(
    metrics: Option<&ops_core::metrics::PoolMetrics>,
    begin: impl Future<Output = Result<T, DbErr>>,
) -> Result<T, DbErr> {
    match metrics {
        Some(metrics) => crate::pool::metrics::acquiring(metrics, begin).await,
        None => begin.await,
    }
}

/// Begins SeaORM's transaction on `conn`; `metrics` are its pool's, when the `Db` has them.
pub(crate) async fn begin_txn(
    conn: &DatabaseConnection,
    options: &SessionOptions,
    sqlite: SqliteMode,
    metrics: Option<&ops_core::metrics::PoolMetrics>,
) -> Result<DatabaseTransaction, DbErr> {
    if conn.get_database_backend() == DbBackend::Sqlite {
        return begin_sqlite(conn, options, sqlite, metrics).await;
    }
    let _ = sqlite;
    let isolation = options.isolation.map(|i| match i {
        ops_core::Isolation::ReadUncommitted => IsolationLevel::ReadUncommitted,
        ops_core::Isolation::ReadCommitted => IsolationLevel::ReadCommitted,
        ops_core::Isolation::RepeatableRead => IsolationLevel::RepeatableRead,
        _ => IsolationLevel::Serializable,
    });
    let access = options.read_only.then_some(AccessMode::ReadOnly);
    if isolation.is_none() && access.is_none() {
        waited(metrics, conn.begin()).await
    } else {
        waited(metrics, conn.begin_with_config(isolation, access)).await
    }
}

/// SQLite transactions are always serializable, so the isolation level is ignored. A session that
/// may write takes the write lock at `BEGIN IMMEDIATE`, so it never has to upgrade a read lock
/// (which fails with `SQLITE_BUSY_SNAPSHOT` when another connection committed in between). A
/// read-only session runs where writes fail: on a `query_only` reader, or with `query_only`
/// turned on for the transaction.
async fn begin_sqlite(
    conn: &DatabaseConnection,
    options: &SessionOptions,
    sqlite: SqliteMode,
    metrics: Option<&ops_core::metrics::PoolMetrics>,
) -> Result<DatabaseTransaction, DbErr> {
    let immediate = sea_orm::TransactionOptions {
        sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
        ..Default::default()
    };
    match sqlite {
        SqliteMode::Plain if options.read_only => waited(metrics, conn.begin()).await,
        SqliteMode::Plain => waited(metrics, conn.begin_with_options(immediate)).await,
        #[cfg(feature = "sqlite")]
        SqliteMode::Pool(mode) => {
            use crate::pool::sqlite::SqliteBegin;
            match mode {
                SqliteBegin::Write => waited(metrics, conn.begin_with_options(immediate)).await,
                SqliteBegin::Reader => waited(metrics, conn.begin()).await,
                SqliteBegin::SharedReadOnly(flag) => {
                    let txn = waited(metrics, conn.begin()).await?;
                    crate::pool::sqlite::enter_read_only(&txn, &flag).await?;
                    Ok(txn)
                }
            }
        }
    }
}

/// For sessions with a timeout, arranges for the server to stop a running statement too, so a
/// timed-out session's connection comes back promptly instead of after the statement finishes.
pub(super) async fn prepare_timeout(
    txn: &SessionTxn,
    options: &SessionOptions,
) -> Result<Option<u64>, DbErr> {
    let Some(timeout) = options.timeout else {
        return Ok(None);
    };
    match txn.backend() {
        DbBackend::Postgres => {
            // Local to this transaction: gone at COMMIT or ROLLBACK.
            let ms = timeout.as_millis().max(1);
            txn.execute_unprepared(&format!("SET LOCAL statement_timeout = {ms}"))
                .await?;
            Ok(None)
        }
        DbBackend::MySql => {
            let row = txn
                .query_one_raw(Statement::from_string(
                    DbBackend::MySql,
                    "SELECT CONNECTION_ID()",
                ))
                .await?;
            Ok(row.and_then(|r| r.try_get_by_index::<u64>(0).ok()))
        }
        _ => Ok(None),
    }
}

/// Stops the statement a timed-out MySQL/MariaDB session is running, from another connection.
pub(crate) async fn kill_mysql_query(db: &Db, target: Target, connection_id: u64, grace: Duration) {
    let sql = format!("KILL QUERY {connection_id}");
    let conn = db.routing().connection(db, target);
    match tokio::time::timeout(grace, conn.execute_unprepared(&sql)).await {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => tracing::debug!(%err, "could not kill the timed-out session's query"),
        Err(_) => tracing::debug!("no connection to kill the timed-out session's query"),
    }
}
