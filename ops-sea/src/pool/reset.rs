//! How each backend finds out whether a returned connection is inside a transaction.
//!
//! sqlx 0.9 tracks the protocol's transaction status internally but does not expose it, and its
//! public `is_in_transaction` counts only transactions sqlx began. So each backend asks the
//! connection in the cheapest way it has.

#[allow(unused_imports)]
use sqlx::Executor as _;

/// SQLite answers from memory: `sqlite3_get_autocommit` is zero inside a transaction.
#[cfg(feature = "sqlite")]
pub(crate) async fn sqlite_in_transaction(
    conn: &mut sqlx::SqliteConnection,
) -> Result<bool, sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let raw = handle.as_raw_handle();
    // A read-only session sets `query_only`; one that never reached its end (cancelled,
    // dropped) would leave it set for the next borrower. Clearing it costs no round trip.
    crate::sqlite_ffi::clear_query_only(raw);
    Ok(crate::sqlite_ffi::in_transaction(raw))
}

/// PostgreSQL: outside an explicit transaction every statement is its own transaction, so
/// `now()` (the transaction's start) equals `statement_timestamp()`. Inside one, `now()` is the
/// earlier `BEGIN`. An aborted transaction rejects the query, which also means "roll back".
#[cfg(feature = "postgres")]
/// Returns whether the connection was inside a transaction.
pub(crate) async fn postgres_reset(conn: &mut sqlx::PgConnection) -> Result<bool, sqlx::Error> {
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
    Ok(in_transaction)
}

/// MySQL/MariaDB: `ROLLBACK` outside a transaction is a silent no-op, so one statement both
/// checks and resets.
#[cfg(feature = "mysql")]
pub(crate) async fn mysql_reset(conn: &mut sqlx::MySqlConnection) -> Result<(), sqlx::Error> {
    conn.execute("ROLLBACK").await?;
    Ok(())
}
