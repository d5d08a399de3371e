//! PostgreSQL's `COPY ... FROM STDIN` on a connection ops holds itself.
//!
//! SeaORM's executors cannot stream `COPY` data (they only send statements), so a bulk load runs
//! on a sqlx connection ops owns: one of the pool's, in a transaction of its own
//! ([`copy_in_transaction`], for a load through a `Db`), or the connection of a session whose
//! transaction ops runs itself (behind PgBouncer, `pgbouncer::Txn::copy_in`). `COPY` goes out
//! through the simple-query protocol, which needs nothing prepared, so it works behind PgBouncer
//! in transaction pooling mode too, where it always runs inside a transaction.

use sea_orm::DbErr;
use sqlx::pool::PoolConnection;
use sqlx::{AssertSqlSafe, Executor as _, PgConnection, Postgres};

use super::raw::{acquire_err, exec_err};

/// The data of one `COPY`: chunks of rows in its text format, produced as they are sent, so a
/// large load is never held encoded in memory in full. An `Err` aborts the `COPY`.
pub(crate) type CopyChunks<'a> = Box<dyn Iterator<Item = Result<Vec<u8>, DbErr>> + Send + 'a>;

/// Runs `sql` (a `COPY ... FROM STDIN`) on `conn` and streams `chunks` into it; returns the rows
/// copied.
///
/// A server error (a constraint violation found mid-stream) arrives when the data is finished
/// and leaves `conn` ready for the next statement, inside its failed transaction. An error
/// while sending leaves `conn` mid-exchange: whoever owns it must not reuse it.
pub(crate) async fn copy_in(
    conn: &mut PgConnection,
    sql: &str,
    chunks: CopyChunks<'_>,
) -> Result<u64, DbErr> {
    let mut copy = conn.copy_in_raw(sql).await.map_err(exec_err)?;
    for chunk in chunks {
        match chunk {
            Ok(data) => {
                copy.send(data).await.map_err(exec_err)?;
            }
            Err(err) => {
                // The server discards what it received and answers the abort with an error
                // that `abort` expects; anything else it reports means the connection is gone.
                copy.abort("ops: a row could not be encoded")
                    .await
                    .map_err(exec_err)?;
                return Err(err);
            }
        }
    }
    copy.finish().await.map_err(exec_err)
}

/// A load through a `Db`: `begin` (a `BEGIN`, with the statement timeout behind PgBouncer), the
/// `COPY`, `COMMIT`, on a connection of `pool`. All rows or none.
///
/// The connection goes back to the pool only in a known state: committed, or rolled back after
/// a server error. Anything else (a failed `ROLLBACK`, an error mid-stream, a dropped future) closes
/// it instead, so the pool never hands out a connection inside a transaction or a `COPY`.
pub(crate) async fn copy_in_transaction(
    pool: &sqlx::PgPool,
    begin: &str,
    sql: &str,
    chunks: CopyChunks<'_>,
) -> Result<u64, DbErr> {
    let mut guard = CloseUnlessSettled(Some(pool.acquire().await.map_err(acquire_err)?));
    let conn = guard.conn();
    conn.execute(AssertSqlSafe(begin.to_owned()))
        .await
        .map_err(exec_err)?;
    match copy_in(conn, sql, chunks).await {
        Ok(rows) => {
            conn.execute("COMMIT").await.map_err(exec_err)?;
            guard.settled();
            Ok(rows)
        }
        Err(err) => {
            if conn.execute("ROLLBACK").await.is_ok() {
                guard.settled();
            }
            Err(err)
        }
    }
}

/// A pooled connection that is closed, not returned, unless [`settled`](Self::settled) says it
/// is outside any transaction.
struct CloseUnlessSettled(Option<PoolConnection<Postgres>>);

impl CloseUnlessSettled {
    fn conn(&mut self) -> &mut PgConnection {
        self.0
            .as_deref_mut()
            .expect("the connection is taken only by settled or drop")
    }

    /// Returns the connection to the pool.
    fn settled(&mut self) {
        drop(self.0.take());
    }
}

impl Drop for CloseUnlessSettled {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            // Detached, it no longer counts against the pool; dropping it closes the socket.
            drop(conn.detach());
        }
    }
}
