//! `Session`: one tracked database transaction: its lifecycle (open, commit, rollback,
//! savepoints) and what it supplies to the shared forward of SeaORM's connection traits
//! (`delegate.rs`). How its transaction begins on each kind of pool is in `session/begin.rs`.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ops_core::stats::ErrorStatsRecorder;
use ops_core::tracker::{SessionOutcome, SessionTicket};
use ops_core::{ErrorCategory, RetryReason, SessionOptions};
use sea_orm::{DatabaseConnection, DbBackend, DbErr};

use crate::pool::Target;
use crate::txn::SessionTxn;
use crate::{Db, OpsError};

mod begin;

use begin::prepare_timeout;
pub(crate) use begin::{SqliteMode, begin_on_primary, begin_txn, kill_mysql_query};

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

/// A session's statements run on its transaction, watched for abandonment
/// (`pool/release.rs`), checked against the slow-statement threshold, and with a failure recorded
/// in the `Db`'s error stats; `begin` opens a savepoint there.
impl crate::delegate::Delegate for Session {
    type Conn<'a> = &'a SessionTxn;

    /// The backend stored when the session opened, so a finished session answers too.
    fn backend(&self) -> DbBackend {
        self.inner.backend
    }

    fn support_returning(&self) -> bool {
        self.inner
            .txn
            .as_ref()
            .is_some_and(SessionTxn::support_returning)
    }

    /// The session's transaction; an error once the session is finished. A transaction inside
    /// it needs SeaORM's, which a session behind PgBouncer has not: that refusal is a usage
    /// error, returned before anything is observed.
    fn conn(
        &self,
        purpose: crate::delegate::Purpose<'_>,
    ) -> impl Future<Output = Result<&SessionTxn, DbErr>> + Send {
        let txn = self.txn().and_then(|txn| match purpose {
            crate::delegate::Purpose::Transaction => txn.sea().map(|_| txn),
            _ => Ok(txn),
        });
        std::future::ready(txn)
    }

    fn observe(&self, err: DbErr) -> DbErr {
        Session::observe(self, err)
    }

    fn telemetry(&self) -> Option<&crate::telemetry::Telemetry> {
        self.inner.db.as_ref().map(|db| &db.inner.telemetry)
    }

    fn in_session(&self) -> Option<crate::telemetry::InSession<'_>> {
        Some(crate::telemetry::InSession {
            name: self.name(),
            origin: self.origin(),
        })
    }

    fn run<'a, T: Send + 'a>(
        &'a self,
        call: impl Future<Output = Result<T, DbErr>> + Send + 'a,
    ) -> impl Future<Output = Result<T, DbErr>> + Send + 'a {
        crate::pool::release::watched(call)
    }
}

crate::delegate::forward_connection!(Session);

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
