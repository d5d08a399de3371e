//! `Session`: one tracked database transaction.
//!
//! Over 700 lines because it holds both the session's lifecycle (begin on the primary, a
//! replica, SQLite's writer or readers, PgBouncer; commit, rollback, savepoints) and its
//! `ConnectionTrait`/`TransactionTrait` forwarding, which a shared delegate (issue 11) would take.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ops_core::stats::ErrorStatsRecorder;
use ops_core::tracker::{SessionOutcome, SessionTicket};
use ops_core::{ErrorCategory, RetryReason, SessionOptions};
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    ExecResult, IsolationLevel, QueryResult, Statement, TransactionTrait,
};

use crate::pool::Target;
use crate::txn::SessionTxn;
use crate::{Db, OpsError};

/// One tracked database transaction.
///
/// A `Session` is a cheap `Clone` handle; all clones share one transaction. `commit` and
/// `rollback` consume the handle and need it to be the last one: committing while a clone or a
/// nested session is still alive is an error (the work using it might not be done). When the last
/// handle is dropped without either, the transaction is rolled back and the tracker counts the
/// session as *dropped unfinished*, with a warning naming where it was opened.
///
/// `Session` implements SeaORM's `ConnectionTrait` and `TransactionTrait` (where `begin` opens a
/// savepoint), so SeaORM queries and generated repositories run on it directly.
#[derive(Clone)]
pub struct Session {
    inner: Arc<SessionInner>,
}

struct SessionInner {
    txn: Option<SessionTxn>,
    /// The backend, kept apart from `txn` so that a finished session still knows it.
    backend: DbBackend,
    db: Option<Db>,
    ticket: Option<SessionTicket>,
    /// Keeps the enclosing session alive while this savepoint is open.
    parent: Option<Session>,
    /// Set by managed runners: dropping a managed session is a cancellation, not a leak.
    managed: AtomicBool,
    /// MySQL connection id, kept for sessions with a timeout so the running query can be killed.
    mysql_connection_id: Option<u64>,
    /// Whether this session (or the one it is nested in) holds the one writer of a SQLite `Db`.
    sqlite_writer: bool,
    /// The server the session runs on: a read-only session may run on a replica.
    target: Target,
    /// Opened read-only.
    read_only: bool,
    name: Cow<'static, str>,
    origin: &'static Location<'static>,
}

impl Drop for SessionInner {
    fn drop(&mut self) {
        if self.txn.is_none() {
            return;
        }
        // Dropping SeaORM's transaction queues a ROLLBACK that the release flushes; the release
        // is checked, bounded, in case a statement was cut off mid-exchange.
        crate::pool::release::abandoned();
        self.txn = None;
        if let Some(ticket) = self.ticket.take() {
            if self.managed.load(Ordering::Relaxed) {
                tracing::debug!(
                    session = %self.name,
                    origin = %self.origin,
                    "managed session cancelled; rolled back"
                );
                ticket.finish(SessionOutcome::RolledBack);
            } else {
                // The ticket's own drop counts the session as dropped unfinished and warns with
                // its origin.
                drop(ticket);
            }
        }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("name", &self.inner.name)
            .field("origin", &format_args!("{}", self.inner.origin))
            .field("nested", &self.inner.parent.is_some())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Begins a tracked session on `db`.
    pub(crate) async fn begin(
        db: &Db,
        options: &SessionOptions,
        origin: &'static Location<'static>,
    ) -> Result<Session, OpsError> {
        let fail = |err: DbErr| {
            let err = OpsError::from(db.refine(err));
            // A `BEGIN` on a dead connection invalidates the pool like any statement.
            db.note_lost(err.category(), Target::Primary);
            db.record(err)
        };
        // Read-only sessions go to a usable replica, when there is one; the rest to the primary.
        if options.read_only && db.routing().has_replicas() {
            let (txn, target) = db
                .routing()
                .begin_read_only(db, options)
                .await
                .map_err(fail)?;
            return Session::finish_open(txn, Some(db), options, origin, target, false).await;
        }
        let (txn, sqlite_writer) = crate::pool::guarded(
            db.routing().primary_breaker.as_ref(),
            begin_on_primary(db, options),
        )
        .await
        .map_err(fail)?;
        Session::finish_open(
            txn,
            Some(db),
            options,
            origin,
            Target::Primary,
            sqlite_writer,
        )
        .await
    }

    /// Begins an untracked session on a plain SeaORM connection.
    pub(crate) async fn begin_on_connection(
        conn: &DatabaseConnection,
        options: &SessionOptions,
        origin: &'static Location<'static>,
    ) -> Result<Session, OpsError> {
        let txn = begin_txn(conn, options, SqliteMode::Plain, None)
            .await
            .map_err(OpsError::from)?;
        Session::finish_open(
            SessionTxn::Sea(txn),
            None,
            options,
            origin,
            Target::Primary,
            false,
        )
        .await
    }

    /// Completes a session whose transaction began: arranges its timeout and tracks it.
    async fn finish_open(
        txn: SessionTxn,
        db: Option<&Db>,
        options: &SessionOptions,
        origin: &'static Location<'static>,
        target: Target,
        sqlite_writer: bool,
    ) -> Result<Session, OpsError> {
        let name = options.name.clone().unwrap_or(Cow::Borrowed("session"));
        let fail = |err: DbErr| match db {
            Some(db) => {
                let err = OpsError::from(db.refine(err));
                db.note_lost(err.category(), target);
                db.record(err)
            }
            None => OpsError::from(err),
        };
        let mysql_connection_id = prepare_timeout(&txn, options).await.map_err(fail)?;
        // Tracked once the transaction exists: a session that never began (pool exhausted,
        // database down) is an error for the caller, not an open or leaked session.
        let ticket = db.map(|db| db.inner.tracker.open(name.clone(), origin));
        let mut session = Session::from_parts(
            txn,
            db.cloned(),
            ticket,
            None,
            mysql_connection_id,
            name,
            origin,
        );
        if let Some(inner) = Arc::get_mut(&mut session.inner) {
            inner.sqlite_writer = sqlite_writer;
            inner.target = target;
            inner.read_only = options.read_only;
        }
        Ok(session)
    }

    fn from_parts(
        txn: SessionTxn,
        db: Option<Db>,
        ticket: Option<SessionTicket>,
        parent: Option<Session>,
        mysql_connection_id: Option<u64>,
        name: Cow<'static, str>,
        origin: &'static Location<'static>,
    ) -> Session {
        let sqlite_writer = parent.as_ref().is_some_and(Session::holds_sqlite_writer);
        let (target, read_only) = parent.as_ref().map_or((Target::Primary, false), |p| {
            (p.inner.target, p.inner.read_only)
        });
        Session {
            inner: Arc::new(SessionInner {
                backend: txn.backend(),
                txn: Some(txn),
                db,
                ticket,
                parent,
                managed: AtomicBool::new(false),
                mysql_connection_id,
                sqlite_writer,
                target,
                read_only,
                name,
                origin,
            }),
        }
    }

    /// A savepoint inside this session. Committing it releases the savepoint; rolling it back (or
    /// dropping it) rolls back to the savepoint and leaves this session usable.
    pub async fn nested(&self) -> Result<Session, OpsError> {
        let txn = self
            .txn()?
            .nested()
            .await
            .map_err(|e| self.record(e.into()))?;
        Ok(Session::from_parts(
            txn,
            self.inner.db.clone(),
            None,
            Some(self.clone()),
            self.inner.mysql_connection_id,
            self.inner.name.clone(),
            self.inner.origin,
        ))
    }

    /// Rolls the transaction back but keeps this handle, which is then finished: statements on it
    /// fail, as they would on a handle that outlived its session. `commit` and `rollback` consume
    /// the handle, so nothing public reaches that state; ops' own tests use this (through
    /// `__private`) to check how a finished session answers.
    pub(crate) async fn rollback_in_place(&mut self) -> Result<(), OpsError> {
        let name = self.inner.name.clone();
        let inner = Arc::get_mut(&mut self.inner).ok_or_else(|| {
            OpsError::new(
                ErrorCategory::Programming,
                format!("cannot finish session '{name}' in place while other handles are alive"),
            )
        })?;
        let txn = inner.txn.take().ok_or_else(|| {
            OpsError::new(
                ErrorCategory::Programming,
                format!("session '{name}' is already finished"),
            )
        })?;
        if let Some(ticket) = inner.ticket.take() {
            ticket.finish(SessionOutcome::RolledBack);
        }
        txn.rollback()
            .await
            .map_err(|e| Db::record_in(inner.db.as_ref(), OpsError::from(e)))
    }

    /// Commits. A connection lost while the COMMIT was in flight gives `CommitUnknown`: the work
    /// may or may not be committed, and only the caller can find out which. A read-only session
    /// wrote nothing (the server refuses its writes), so there its outcome is known and the loss
    /// stays `Retryable(ConnectionLost)`: a retry reads again.
    pub async fn commit(self) -> Result<(), OpsError> {
        let read_only = self.inner.read_only;
        let target = self.inner.target;
        let (txn, ticket, db) = self.take("commit")?;
        if !read_only && let Some(db) = &db {
            db.routing().note_write();
        }
        // If this future is dropped while the COMMIT is in flight, the guard counts the session
        // as rolled back: SeaORM queues a ROLLBACK, which is a no-op if the COMMIT got through.
        // It is a cancellation, not a leak, so it must not count as dropped unfinished.
        let mut guard = CommitGuard(ticket);
        let result = crate::pool::release::watched(txn.commit()).await;
        finish(guard.0.take(), &result, SessionOutcome::Committed);
        result.map_err(|e| {
            let err = OpsError::from(e);
            let err = match err.category() {
                ErrorCategory::Retryable(RetryReason::ConnectionLost)
                | ErrorCategory::Unavailable
                    if !read_only =>
                {
                    err.recategorize(ErrorCategory::CommitUnknown)
                }
                _ => err,
            };
            if let Some(db) = &db {
                db.note_lost(err.category(), target);
            }
            Db::record_in(db.as_ref(), err)
        })
    }

    /// Rolls back.
    pub async fn rollback(self) -> Result<(), OpsError> {
        let (txn, ticket, db) = self.take("rollback")?;
        // Counted before the round trip: if this future is dropped mid-rollback, SeaORM still
        // queues the ROLLBACK, so the session is rolled back either way.
        if let Some(ticket) = ticket {
            ticket.finish(SessionOutcome::RolledBack);
        }
        crate::pool::release::watched(txn.rollback())
            .await
            .map_err(|e| Db::record_in(db.as_ref(), OpsError::from(e)))
    }

    /// Takes the transaction out for commit or rollback; only the last handle may.
    #[allow(clippy::type_complexity)]
    fn take(self, what: &str) -> Result<(SessionTxn, Option<SessionTicket>, Option<Db>), OpsError> {
        let name = self.inner.name.clone();
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                let txn = inner.txn.take().ok_or_else(|| {
                    OpsError::new(
                        ErrorCategory::Programming,
                        format!("session '{name}' is already finished"),
                    )
                })?;
                Ok((txn, inner.ticket.take(), inner.db.clone()))
            }
            Err(shared) => Err(OpsError::new(
                ErrorCategory::Programming,
                format!(
                    "cannot {what} session '{name}' while {} other handle(s) to it are alive \
                     (a clone or a nested session); drop them first. The session rolls back when \
                     the last handle is dropped",
                    Arc::strong_count(&shared) - 1
                ),
            )),
        }
    }

    /// The session's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Where the session was opened.
    pub fn origin(&self) -> &'static Location<'static> {
        self.inner.origin
    }

    /// The `Db` this session belongs to, if it was opened on one.
    pub fn db(&self) -> Option<&Db> {
        self.inner.db.as_ref()
    }

    /// Whether this session is a savepoint inside another.
    pub fn is_nested(&self) -> bool {
        self.inner.parent.is_some()
    }

    /// Whether the tracker asked this session to stop (it outlived the maintenance sweeper's hard
    /// maximum age).
    pub fn is_cancelled(&self) -> bool {
        self.root_ticket().is_some_and(SessionTicket::is_cancelled)
    }

    /// Resolves when the tracker asks this session to stop; pending forever for untracked ones.
    pub(crate) async fn cancelled(&self) {
        match self.root_ticket() {
            Some(ticket) => ticket.cancelled().await,
            None => std::future::pending().await,
        }
    }

    fn root_ticket(&self) -> Option<&SessionTicket> {
        match &self.inner.parent {
            Some(parent) => parent.root_ticket(),
            None => self.inner.ticket.as_ref(),
        }
    }

    pub(crate) fn mark_managed(&self) {
        self.inner.managed.store(true, Ordering::Relaxed);
    }

    /// Whether this session holds the one writer of a SQLite `Db`.
    pub(crate) fn holds_sqlite_writer(&self) -> bool {
        self.inner.sqlite_writer
    }

    pub(crate) fn mysql_connection_id(&self) -> Option<u64> {
        self.inner.mysql_connection_id
    }

    /// Whether the session runs on a read replica (a read-only session routed away from the
    /// primary).
    pub fn is_on_replica(&self) -> bool {
        matches!(self.inner.target, Target::Replica(_))
    }

    /// Whether the session was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    pub(crate) fn target(&self) -> Target {
        self.inner.target
    }

    fn txn(&self) -> Result<&SessionTxn, DbErr> {
        self.inner
            .txn
            .as_ref()
            .ok_or_else(|| DbErr::Custom(format!("session '{}' is already finished", self.name())))
    }

    /// Whether a bulk load can `COPY` inside this session's transaction: when ops runs that
    /// transaction itself (behind PgBouncer). SeaORM's transaction keeps its connection private.
    #[cfg(feature = "postgres")]
    pub(crate) fn can_copy(&self) -> bool {
        matches!(self.inner.txn, Some(SessionTxn::Bouncer(_)))
    }

    /// Streams a `COPY ... FROM STDIN` inside this session's transaction (see
    /// [`Session::can_copy`]). Errors are recorded like a statement's.
    #[cfg(feature = "postgres")]
    pub(crate) async fn copy_in(
        &self,
        sql: &str,
        chunks: crate::pool::copy::CopyChunks<'_>,
    ) -> Result<u64, DbErr> {
        let Some(SessionTxn::Bouncer(txn)) = self.inner.txn.as_ref() else {
            return Err(self.observe(DbErr::Custom(format!(
                "session '{}' cannot run COPY: it is finished or runs on SeaORM's transaction",
                self.name()
            ))));
        };
        crate::pool::release::watched(txn.copy_in(sql, chunks))
            .await
            .map_err(|e| self.observe(e))
    }

    /// Records an error in the stats of the session's `Db`, if it has one.
    pub(crate) fn record(&self, err: OpsError) -> OpsError {
        Db::record_in(self.inner.db.as_ref(), err)
    }

    /// The statement's SQL, when the `Db`'s telemetry will quote it.
    fn sql_of(&self, sql: &str) -> Option<String> {
        self.inner
            .db
            .as_ref()
            .and_then(|db| db.inner.telemetry.sql_of(sql))
    }

    /// Runs one statement on the session's connection: watched for abandonment
    /// (`pool/release.rs`), checked against the slow-statement threshold, and with a failure
    /// recorded in the error stats.
    ///
    /// Not an `async fn`: one would hold `call` twice, and futures nest deeply in debug builds.
    fn statement<'a, T: 'a>(
        &'a self,
        sql: Option<String>,
        call: impl Future<Output = Result<T, DbErr>> + 'a,
    ) -> impl Future<Output = Result<T, DbErr>> + 'a {
        use futures_util::FutureExt;
        let telemetry = self.inner.db.as_ref().map(|db| &db.inner.telemetry);
        let session = crate::telemetry::InSession {
            name: self.name(),
            origin: self.origin(),
        };
        let call = crate::pool::release::watched(call);
        crate::telemetry::statement(telemetry, Some(session), sql, call)
            .map(move |result| result.map_err(|e| self.observe(e)))
    }

    /// Records a failed statement in the `Db`'s error stats.
    fn observe(&self, err: DbErr) -> DbErr {
        match &self.inner.db {
            Some(db) => db.observe_with(err, db.disconnects(self.inner.target)),
            None => err,
        }
    }
}

fn finish(ticket: Option<SessionTicket>, result: &Result<(), DbErr>, on_success: SessionOutcome) {
    if let Some(ticket) = ticket {
        ticket.finish(if result.is_ok() {
            on_success
        } else {
            SessionOutcome::RolledBack
        });
    }
}

/// Finishes a ticket as rolled back when a commit is abandoned mid-flight.
struct CommitGuard(Option<SessionTicket>);

impl Drop for CommitGuard {
    fn drop(&mut self) {
        if let Some(ticket) = self.0.take() {
            tracing::debug!(
                session = ticket.name(),
                "commit cancelled while in flight; its outcome is unknown to this caller"
            );
            ticket.finish(SessionOutcome::RolledBack);
        }
    }
}

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
async fn prepare_timeout(txn: &SessionTxn, options: &SessionOptions) -> Result<Option<u64>, DbErr> {
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

#[async_trait::async_trait]
impl ConnectionTrait for Session {
    /// The backend stored when the session opened, so a finished session answers too.
    fn get_database_backend(&self) -> DbBackend {
        self.inner.backend
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let txn = self.txn()?;
        let sql = self.sql_of(&stmt.sql);
        self.statement(sql, txn.execute_raw(stmt)).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let txn = self.txn()?;
        let text = self.sql_of(sql);
        self.statement(text, txn.execute_unprepared(sql)).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let txn = self.txn()?;
        let sql = self.sql_of(&stmt.sql);
        self.statement(sql, txn.query_one_raw(stmt)).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let txn = self.txn()?;
        let sql = self.sql_of(&stmt.sql);
        self.statement(sql, txn.query_all_raw(stmt)).await
    }

    fn support_returning(&self) -> bool {
        self.inner
            .txn
            .as_ref()
            .is_some_and(SessionTxn::support_returning)
    }
}

#[async_trait::async_trait]
impl TransactionTrait for Session {
    type Transaction = DatabaseTransaction;

    // A failed `begin*` is recorded in the `Db`'s error stats, as a failed statement is (and as
    // `Db`'s own `begin*` does).
    async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        self.txn()?
            .sea()?
            .begin()
            .await
            .map_err(|e| self.observe(e))
    }

    async fn begin_with_config(
        &self,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<DatabaseTransaction, DbErr> {
        self.txn()?
            .sea()?
            .begin_with_config(isolation_level, access_mode)
            .await
            .map_err(|e| self.observe(e))
    }

    async fn begin_with_options(
        &self,
        options: sea_orm::TransactionOptions,
    ) -> Result<DatabaseTransaction, DbErr> {
        self.txn()?
            .sea()?
            .begin_with_options(options)
            .await
            .map_err(|e| self.observe(e))
    }

    async fn transaction<F, T, E>(&self, callback: F) -> Result<T, sea_orm::TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c DatabaseTransaction,
            ) -> std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<T, E>> + Send + 'c>,
            > + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        self.txn()
            .and_then(SessionTxn::sea)
            .map_err(sea_orm::TransactionError::Connection)?
            .transaction(callback)
            .await
    }

    async fn transaction_with_config<F, T, E>(
        &self,
        callback: F,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<T, sea_orm::TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c DatabaseTransaction,
            ) -> std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<T, E>> + Send + 'c>,
            > + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        self.txn()
            .and_then(SessionTxn::sea)
            .map_err(sea_orm::TransactionError::Connection)?
            .transaction_with_config(callback, isolation_level, access_mode)
            .await
    }
}

impl crate::Executor for Session {
    fn error_recorder(&self) -> Option<&ErrorStatsRecorder> {
        self.inner.db.as_ref().map(Db::error_recorder)
    }

    fn __telemetry(&self) -> Option<&crate::telemetry::Telemetry> {
        self.inner.db.as_ref().map(|db| &db.inner.telemetry)
    }

    fn __bulk_route(&self) -> crate::executor::BulkRoute<'_> {
        crate::executor::BulkRoute::Session(self)
    }
}
