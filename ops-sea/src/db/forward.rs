//! What `Db` supplies to SeaORM's connection traits (`delegate.rs`): statements run outside a
//! session, each on a pooled connection of its own.
//!
//! On SQLite file databases a statement goes to the read-only readers when it is a query that
//! starts with `SELECT`, `VALUES` or `EXPLAIN` (after whitespace and comments), and to the one
//! writer otherwise: every `execute`, `INSERT ... RETURNING`, `WITH`, `PRAGMA`. A repository's
//! `create` or `update` outside a session therefore queues behind the write sessions like any
//! other write, and its reads never wait for them. A transaction that may write begins with
//! `BEGIN IMMEDIATE` on the writer, and a read-only one (`AccessMode::ReadOnly`) on a reader.
//!
//! The branches for PgBouncer and for raw SQL that may open a transaction are boxed: their
//! futures are large, and every call's future (which `async_trait` moves into a box of its own)
//! would otherwise be as large as the largest branch. A plain PK read then moved 70 KB per call.
//! The plain branch returns SeaORM's own boxed future, so it allocates nothing more.

use std::fmt;
use std::future::Future;

use ops_core::config::ResetCheck;
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    ExecResult, IsolationLevel, QueryResult, Statement, TransactionError, TransactionOptions,
    TransactionTrait,
};

use crate::Db;
use crate::delegate::{Call, Delegate, Purpose, Target};
use crate::telemetry::Telemetry;

impl Delegate for Db {
    type Conn<'a> = Primary<'a>;

    fn backend(&self) -> DbBackend {
        self.inner.backend
    }

    fn support_returning(&self) -> bool {
        self.inner.conn.support_returning()
    }

    /// The primary. Every statement counts as a write for read-after-write routing, as does a
    /// `begin` (noted by [`Primary::begin_with_options`]). Behind PgBouncer, unprepared SQL that
    /// transaction pooling cannot support is refused here, before a connection is taken.
    fn conn(
        &self,
        purpose: Purpose<'_>,
    ) -> impl Future<Output = Result<Primary<'_>, DbErr>> + Send {
        let primary = match purpose {
            Purpose::Transaction => Ok(Primary(self)),
            Purpose::Statement => {
                self.inner.routing.note_write();
                Ok(Primary(self))
            }
            Purpose::Unprepared(sql) => {
                self.inner.routing.note_write();
                self.refuse_unprepared(sql).map(|()| Primary(self))
            }
        };
        std::future::ready(primary)
    }

    fn observe(&self, err: DbErr) -> DbErr {
        Db::observe(self, err)
    }

    fn telemetry(&self) -> Option<&Telemetry> {
        Some(&self.inner.telemetry)
    }

    /// Through the primary's circuit breaker, counted as a caller waiting for a connection until
    /// the pool hands one over.
    fn run<'a, T: Send + 'a>(
        &'a self,
        call: impl Future<Output = Result<T, DbErr>> + Send + 'a,
    ) -> impl Future<Output = Result<T, DbErr>> + Send + 'a {
        let metrics = self.inner.disconnects.metrics();
        crate::pool::metrics::acquiring(metrics, self.guarded(call))
    }
}

impl Db {
    /// Unprepared SQL goes out as one simple-query exchange, which is safe behind PgBouncer
    /// without a transaction of its own (and may be VACUUM, which refuses one); only what
    /// transaction pooling cannot support is refused, and the refusal is observed like a failed
    /// statement.
    fn refuse_unprepared(&self, sql: &str) -> Result<(), DbErr> {
        #[cfg(feature = "postgres")]
        if self.is_pgbouncer() {
            crate::pool::pgbouncer::refuse(sql).map_err(|e| self.observe(e))?;
        }
        let _ = sql;
        Ok(())
    }

    /// Whether `sql` must run on a connection that is reset afterwards: it could leave a
    /// transaction open, and the pool does not already check every release.
    fn resets(&self, sql: &str) -> bool {
        self.inner.config.reset_check == ResetCheck::Auto && crate::pool::may_open_transaction(sql)
    }

    /// The connection a plain statement runs on: on SQLite file databases a query that cannot
    /// write goes to the readers and everything else to the writer; elsewhere there is one pool.
    fn route(&self, sql: &str) -> &DatabaseConnection {
        #[cfg(feature = "sqlite")]
        if let Some(readers) = &self.inner.readers
            && crate::pool::sqlite::is_read_only_sql(sql)
        {
            return readers;
        }
        let _ = sql;
        &self.inner.conn
    }

    /// Makes a SeaORM transaction safe behind PgBouncer in transaction pooling mode.
    ///
    /// SeaORM's `DatabaseTransaction` always asks sqlx for named statements (`sqlx_s_N`, numbered
    /// per client connection), and ops cannot change that on a type it does not own. Inside one
    /// transaction the server connection is fixed, so they work, provided no other client's
    /// statement of the same name was left on that server connection: `DEALLOCATE ALL` first
    /// clears them. Sessions (`db.session()`, `#[managed_session]`) and statements on `Db` do not
    /// need this: they use unnamed statements only. A failure is observed by the caller.
    async fn behind_pgbouncer(
        &self,
        txn: DatabaseTransaction,
    ) -> Result<DatabaseTransaction, DbErr> {
        if self.is_pgbouncer() {
            // The statement timeout is not in the startup packet in this mode: set it local to
            // the transaction, in the same round trip.
            let sql = match self.inner.config.statement_timeout {
                Some(timeout) => format!(
                    "DEALLOCATE ALL; SET LOCAL statement_timeout = {}",
                    timeout.as_millis().max(1)
                ),
                None => "DEALLOCATE ALL".to_owned(),
            };
            txn.execute_unprepared(&sql).await?;
        }
        Ok(txn)
    }
}

/// The primary of a `Db` (with SQLite's readers), as the connection its forward runs on.
#[derive(Clone, Copy)]
pub(crate) struct Primary<'a>(&'a Db);

/// A prepared statement on the primary. Behind PgBouncer it runs unnamed, in a transaction of
/// its own (`$bouncer` is the method of `pool::pgbouncer::Txn`); raw SQL that may open a
/// transaction runs on a connection reset afterwards (`$raw`, a method of `Pool`). Both are
/// boxed: they are large and rare. Otherwise `$method` of SeaORM's connection `$conn`, whose
/// future is already boxed.
macro_rules! prepared {
    ($db:ident, $stmt:ident, $bouncer:ident, $raw:ident, $conn:expr, $method:ident) => {{
        #[cfg(feature = "postgres")]
        if let Some(pool) = $db.pgbouncer_pool() {
            let timeout = $db.inner.config.statement_timeout;
            let call: Call<'_, _> = Box::pin(async move {
                let text = $stmt.sql.clone();
                crate::pool::pgbouncer::one_shot(pool, timeout, &text, |txn| async move {
                    let result = txn.$bouncer($stmt).await;
                    (txn, result)
                })
                .await
            });
            return call;
        }
        if $db.resets(&$stmt.sql) {
            let call: Call<'_, _> = Box::pin($db.inner.pool.$raw(&$db.inner.reset_after, $stmt));
            return call;
        }
        $conn.$method($stmt)
    }};
}

impl Target for Primary<'_> {
    fn execute_raw(
        self,
        stmt: Statement,
    ) -> impl Future<Output = Result<ExecResult, DbErr>> + Send {
        let db = self.0;
        prepared!(db, stmt, execute, raw_execute, db.inner.conn, execute_raw)
    }

    fn execute_unprepared<'s>(self, sql: &'s str) -> Call<'s, ExecResult>
    where
        Self: 's,
    {
        let db = self.0;
        if db.resets(sql) {
            let call: Call<'s, _> = Box::pin(
                db.inner
                    .pool
                    .raw_execute_unprepared(&db.inner.reset_after, sql),
            );
            return call;
        }
        db.inner.conn.execute_unprepared(sql)
    }

    fn query_one_raw(
        self,
        stmt: Statement,
    ) -> impl Future<Output = Result<Option<QueryResult>, DbErr>> + Send {
        let db = self.0;
        prepared!(
            db,
            stmt,
            query_one,
            raw_query_one,
            db.route(&stmt.sql),
            query_one_raw
        )
    }

    fn query_all_raw(
        self,
        stmt: Statement,
    ) -> impl Future<Output = Result<Vec<QueryResult>, DbErr>> + Send {
        let db = self.0;
        prepared!(
            db,
            stmt,
            query_all,
            raw_query_all,
            db.route(&stmt.sql),
            query_all_raw
        )
    }

    /// On SQLite, a transaction that may write begins with `BEGIN IMMEDIATE` on the writer, and
    /// a read-only one (`AccessMode::ReadOnly`) runs on a reader.
    fn begin_with_options(
        self,
        mut options: TransactionOptions,
    ) -> impl Future<Output = Result<DatabaseTransaction, DbErr>> + Send {
        let db = self.0;
        let mut conn = &db.inner.conn;
        if db.inner.backend == DbBackend::Sqlite {
            // SQLite has no isolation levels or access modes to set: SeaORM would only warn.
            let read_only = options.access_mode == Some(AccessMode::ReadOnly);
            options.isolation_level = None;
            options.access_mode = None;
            match (&db.inner.readers, read_only) {
                (Some(readers), true) => conn = readers,
                _ => {
                    options.sqlite_transaction_mode = options
                        .sqlite_transaction_mode
                        .or(Some(sea_orm::SqliteTransactionMode::Immediate));
                }
            }
        }
        db.inner.routing.note_write();
        async move {
            let txn = db.guarded(conn.begin_with_options(options)).await?;
            db.behind_pgbouncer(txn).await
        }
    }

    fn transaction_with_config<F, T, E>(
        self,
        callback: F,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> impl Future<Output = Result<T, TransactionError<E>>> + Send
    where
        F: crate::delegate::Callback<T, E>,
        T: Send,
        E: fmt::Display + fmt::Debug + Send,
    {
        let db = self.0;
        async move {
            if db.is_pgbouncer() {
                // Begun through `begin_with_config`, which prepares the transaction for PgBouncer
                // and observes a failure; the callback runs in a savepoint of it, with SeaORM's
                // commit-or-rollback rules.
                let txn = db
                    .begin_with_config(isolation_level, access_mode)
                    .await
                    .map_err(TransactionError::Connection)?;
                let value = txn.transaction(callback).await?;
                txn.commit()
                    .await
                    .map_err(|e| TransactionError::Connection(db.observe(e)))?;
                return Ok(value);
            }
            db.inner
                .conn
                .transaction_with_config(callback, isolation_level, access_mode)
                .await
        }
    }
}
