//! Statements that could leave a connection inside a transaction, and the connection they run on.
//!
//! Reset-on-return used to ask every returned connection whether it was inside a transaction: a
//! real statement on every release, which cost a third of the throughput under load (issue 16).
//! Most statements cannot open one. SeaORM's query builder emits single `SELECT`, `INSERT`,
//! `UPDATE`, `DELETE` (and `WITH`/`VALUES`/`REPLACE`) statements, and on no backend can such a
//! statement begin a transaction that outlives it: PostgreSQL functions cannot run transaction
//! control, MySQL/MariaDB forbid it in stored functions and triggers, and without a `;` there is no
//! second statement. ops' own sessions begin, commit and roll back through sqlx's transaction
//! manager, which always ends what it began (and sqlx's release ping flushes the `ROLLBACK` a
//! dropped session queues).
//!
//! What remains is raw SQL through a `Db`: `execute_unprepared("BEGIN")`, a `CALL` whose procedure
//! starts a transaction, `SET autocommit = 0; ...`. Those statements do not go through SeaORM's
//! pool methods (which acquire and release a connection out of ops' sight); ops acquires the
//! connection itself, runs the statement, and hands the connection to a [`ResetOnDrop`] guard,
//! which checks it (and rolls it back when needed) before it goes back to the pool, off the
//! caller's critical path. A user who takes the raw pool past ops can opt into the check on every
//! release instead (`DB_RESET_CHECK=always`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sea_orm::{DbErr, ExecResult, QueryResult, RuntimeErr, Statement};
use sea_query_sqlx::SqlxValues;
use sqlx::pool::PoolConnection;
use sqlx::{Database, Executor as _};

use super::Pool;

/// Whether `sql` could leave its connection inside a transaction (or in a state, like MySQL's
/// `autocommit = 0`, where the next statement opens one). Conservative: `true` unless `sql` is a
/// single statement whose first keyword is one that cannot (`EXPLAIN` and `SHOW` included: on
/// SQLite an `EXPLAIN` keeps going to the readers).
pub(crate) fn may_open_transaction(sql: &str) -> bool {
    // A `;` anywhere, even inside a literal, counts as a possible second statement: the cost of a
    // false alarm is one background round trip, the cost of a miss a leaked transaction.
    if sql.as_bytes().contains(&b';') {
        return true;
    }
    // Leading parentheses open a compound query (`(SELECT ..) UNION (SELECT ..)`); a comment or
    // anything else first is treated as raw.
    let body = sql.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '(');
    let end = body
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(body.len());
    let keyword = &body[..end];
    ![
        "SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "VALUES", "REPLACE", "EXPLAIN", "SHOW",
    ]
    .iter()
    .any(|k| k.eq_ignore_ascii_case(keyword))
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a backend finds out whether a connection is inside a transaction, and leaves it outside.
pub(crate) trait Reset: Database {
    /// Rolls back whatever transaction `conn` is in; `true` when it was inside one. An error
    /// means the connection cannot be trusted and must be closed, not returned.
    fn reset(conn: &mut Self::Connection) -> BoxFuture<'_, Result<bool, sqlx::Error>>;
}

#[cfg(feature = "sqlite")]
impl Reset for sqlx::Sqlite {
    fn reset(conn: &mut sqlx::SqliteConnection) -> BoxFuture<'_, Result<bool, sqlx::Error>> {
        Box::pin(async move {
            let in_transaction = super::reset::sqlite_in_transaction(conn).await?;
            if in_transaction {
                conn.execute("ROLLBACK").await?;
            }
            Ok(in_transaction)
        })
    }
}

#[cfg(feature = "postgres")]
impl Reset for sqlx::Postgres {
    fn reset(conn: &mut sqlx::PgConnection) -> BoxFuture<'_, Result<bool, sqlx::Error>> {
        Box::pin(super::reset::postgres_reset(conn))
    }
}

#[cfg(feature = "mysql")]
impl Reset for sqlx::MySql {
    fn reset(conn: &mut sqlx::MySqlConnection) -> BoxFuture<'_, Result<bool, sqlx::Error>> {
        // MySQL's reset cannot tell whether it rolled anything back.
        Box::pin(async move { super::reset::mysql_reset(conn).await.map(|()| false) })
    }
}

/// Where a reset after raw SQL reports, and how long it may take.
#[derive(Clone, Debug)]
pub(crate) struct ResetAfter {
    /// Counts connections that were inside a transaction and rolled back.
    pub(crate) returned: super::ReturnedInTransaction,
    /// The bound on the reset's round trip (`connect_timeout`, as for the pool's own hooks).
    pub(crate) limit: std::time::Duration,
}

/// A connection that ran raw SQL. However the guard goes (the statement finished, failed, or the
/// caller's future was dropped mid-statement), the connection is reset before the pool sees it
/// again: the drop hands it to a background task that resets it and then releases it (or closes
/// it, when the reset fails or does not answer in time).
pub(crate) struct ResetOnDrop<DB: Reset> {
    conn: Option<PoolConnection<DB>>,
    after: ResetAfter,
}

impl<DB: Reset> ResetOnDrop<DB> {
    pub(crate) async fn acquire(
        pool: &sqlx::Pool<DB>,
        after: &ResetAfter,
    ) -> Result<ResetOnDrop<DB>, DbErr> {
        let conn = pool.acquire().await.map_err(acquire_err)?;
        Ok(ResetOnDrop {
            conn: Some(conn),
            after: after.clone(),
        })
    }

    pub(crate) fn conn(&mut self) -> &mut DB::Connection {
        self.conn
            .as_deref_mut()
            .expect("the connection is taken only on drop")
    }
}

impl<DB: Reset> Drop for ResetOnDrop<DB> {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to reset it on: close the connection rather than return it unchecked.
            drop(conn.detach());
            return;
        };
        let after = self.after.clone();
        runtime.spawn(async move {
            let reset = DB::reset(&mut conn);
            match super::bounded_hook("the reset after raw SQL", after.limit, reset).await {
                Ok(was_in_transaction) => {
                    if was_in_transaction {
                        tracing::warn!(
                            "raw SQL through the Db left its connection inside a transaction; \
                             rolled it back before the pool took it back"
                        );
                        after
                            .returned
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    // Dropping returns the connection; sqlx's release ping follows.
                    drop(conn);
                }
                Err(error) => {
                    tracing::warn!(%error, "could not reset a connection after raw SQL; closing it");
                    let _ = conn.close().await;
                }
            }
        });
    }
}

/// sea-orm's mapping of pool errors (`sqlx_conn_acquire_err`, not public), so that a raw statement
/// fails the way the same statement through SeaORM does and is classified alike (PgBouncer's
/// statements, which ops runs on sqlx too, use the same mappings).
pub(super) fn acquire_err(err: sqlx::Error) -> DbErr {
    match err {
        sqlx::Error::PoolTimedOut => {
            DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout)
        }
        sqlx::Error::PoolClosed => {
            DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::ConnectionClosed)
        }
        other => DbErr::Conn(RuntimeErr::SqlxError(Arc::new(other))),
    }
}

pub(super) fn exec_err(err: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(Arc::new(err)))
}

pub(super) fn query_err(err: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(Arc::new(err)))
}

fn values(stmt: &Statement) -> SqlxValues {
    SqlxValues(
        stmt.values
            .clone()
            .unwrap_or(sea_orm::sea_query::Values(Vec::new())),
    )
}

/// The four `ConnectionTrait` calls, each on a connection of its own that is reset afterwards.
/// The bodies are the same for every backend; the macro spells out the concrete types sqlx's
/// executor traits need.
macro_rules! raw_calls {
    ($self:expr, $after:expr, $conn:ident => $body:expr) => {
        match $self {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(pools) => {
                let mut guard = ResetOnDrop::acquire(&pools.writer, $after).await?;
                let $conn = guard.conn();
                $body
            }
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => {
                let mut guard = ResetOnDrop::acquire(pool, $after).await?;
                let $conn = guard.conn();
                $body
            }
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => {
                let mut guard = ResetOnDrop::acquire(pool, $after).await?;
                let $conn = guard.conn();
                $body
            }
        }
    };
}

impl Pool {
    /// `ConnectionTrait::execute_raw` on a connection that is reset afterwards.
    pub(crate) async fn raw_execute(
        &self,
        after: &ResetAfter,
        stmt: Statement,
    ) -> Result<ExecResult, DbErr> {
        raw_calls!(self, after, conn => {
            sqlx::query_with(sqlx::AssertSqlSafe(stmt.sql.as_str()), values(&stmt))
                .execute(&mut *conn)
                .await
                .map(ExecResult::from)
                .map_err(exec_err)
        })
    }

    /// `ConnectionTrait::execute_unprepared` on a connection that is reset afterwards.
    pub(crate) async fn raw_execute_unprepared(
        &self,
        after: &ResetAfter,
        sql: &str,
    ) -> Result<ExecResult, DbErr> {
        raw_calls!(self, after, conn => {
            conn.execute(sqlx::AssertSqlSafe(sql.to_owned()))
                .await
                .map(ExecResult::from)
                .map_err(exec_err)
        })
    }

    /// `ConnectionTrait::query_one_raw` on a connection that is reset afterwards.
    pub(crate) async fn raw_query_one(
        &self,
        after: &ResetAfter,
        stmt: Statement,
    ) -> Result<Option<QueryResult>, DbErr> {
        raw_calls!(self, after, conn => {
            match sqlx::query_with(sqlx::AssertSqlSafe(stmt.sql.as_str()), values(&stmt))
                .fetch_one(&mut *conn)
                .await
            {
                Ok(row) => Ok(Some(QueryResult::from(row))),
                Err(sqlx::Error::RowNotFound) => Ok(None),
                Err(err) => Err(query_err(err)),
            }
        })
    }

    /// `ConnectionTrait::query_all_raw` on a connection that is reset afterwards.
    pub(crate) async fn raw_query_all(
        &self,
        after: &ResetAfter,
        stmt: Statement,
    ) -> Result<Vec<QueryResult>, DbErr> {
        raw_calls!(self, after, conn => {
            sqlx::query_with(sqlx::AssertSqlSafe(stmt.sql.as_str()), values(&stmt))
                .fetch_all(&mut *conn)
                .await
                .map(|rows| rows.into_iter().map(QueryResult::from).collect())
                .map_err(query_err)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::may_open_transaction;

    #[test]
    fn builder_statements_are_clean() {
        for sql in [
            r#"SELECT "bench_items"."id" FROM "bench_items" WHERE "bench_items"."id" = $1 LIMIT $2"#,
            "  select 1",
            "INSERT INTO t (a) VALUES (?) RETURNING id",
            "UPDATE t SET a = $1 WHERE id = $2",
            "DELETE FROM t WHERE id = ?",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "(SELECT 1) UNION (SELECT 2)",
            "\n\tVALUES (1)",
            "REPLACE INTO t VALUES (1)",
            "EXPLAIN QUERY PLAN SELECT 1",
            "explain analyze update t set a = 1",
            "SHOW TABLES",
        ] {
            assert!(!may_open_transaction(sql), "{sql}");
        }
    }

    #[test]
    fn anything_else_is_raw() {
        for sql in [
            "BEGIN",
            "begin",
            "START TRANSACTION",
            "SET autocommit = 0",
            "CALL p()",
            "DO $$ BEGIN END $$",
            "SELECT 1; BEGIN",
            "SELECT 1;",
            "SELECT ';'",
            "/* x */ SELECT 1",
            "-- x\nSELECT 1",
            "SELECTBEGIN",
            "SAVEPOINT a",
            "COMMIT AND CHAIN",
            "XA START 'x'",
            "LOCK TABLES t WRITE",
            "",
            "VACUUM (ANALYZE)",
        ] {
            assert!(may_open_transaction(sql), "{sql:?}");
        }
    }
}
