//! Managed sessions: the runtime behind `db.run(opts, |s| ...)` and `#[managed_session]`.
//!
//! A managed session commits when the work returns `Ok`, and rolls back when it returns `Err`,
//! panics (the panic continues after the rollback), times out, or is cancelled (its future
//! dropped). The connection always goes back to the pool clean.

use std::future::Future;
use std::panic::{AssertUnwindSafe, Location};
use std::time::Duration;

use futures_util::FutureExt;
use ops_core::{ErrorCategory, Propagation, RetryReason, SessionOptions};
use sea_orm::DatabaseConnection;
use tracing::Instrument;

use crate::{Db, OpsError, Session};

/// How long a timed-out session's rollback may take before its connection is left to the pool's
/// reset-on-return.
const ROLLBACK_GRACE: Duration = Duration::from_secs(2);

/// How long the caller of a timed-out or cancelled session waits for its rollback before the
/// rollback moves to a background task.
const FINISH_IN_PLACE: Duration = Duration::from_millis(250);

/// What a managed function accepts in its session's place: `&Db` opens a session, `&Session`
/// joins it (or nests, or opens a new one, per the propagation), and a plain SeaORM
/// `&DatabaseConnection` opens an untracked session.
pub trait SessionSource: Send + Sync {
    #[doc(hidden)]
    fn __source(&self) -> Source<'_>;
}

/// The concrete source behind a `SessionSource`.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    Db(&'a Db),
    /// `db.reader()`: the session is opened read-only, so it runs on a replica when one is usable.
    Reader(&'a Db),
    Session(&'a Session),
    Connection(&'a DatabaseConnection),
}

impl SessionSource for Db {
    fn __source(&self) -> Source<'_> {
        Source::Db(self)
    }
}

impl SessionSource for Session {
    fn __source(&self) -> Source<'_> {
        Source::Session(self)
    }
}

impl SessionSource for DatabaseConnection {
    fn __source(&self) -> Source<'_> {
        Source::Connection(self)
    }
}

impl<T: SessionSource + ?Sized> SessionSource for &T {
    fn __source(&self) -> Source<'_> {
        (**self).__source()
    }
}

impl<T: SessionSource + ?Sized> SessionSource for std::sync::Arc<T> {
    fn __source(&self) -> Source<'_> {
        (**self).__source()
    }
}

impl Db {
    /// Opens a tracked session with default options. Its origin is the caller's `file:line`.
    #[track_caller]
    pub fn session(&self) -> impl Future<Output = Result<Session, OpsError>> + Send + '_ {
        let origin = Location::caller();
        async move { Session::begin(self, &SessionOptions::default(), origin).await }
    }

    /// Opens a tracked session with options. Propagation does not apply here (there is no caller
    /// session); use `run` or `#[managed_session]` for that.
    #[track_caller]
    pub fn session_with(
        &self,
        options: SessionOptions,
    ) -> impl Future<Output = Result<Session, OpsError>> + Send + '_ {
        let origin = Location::caller();
        async move { Session::begin(self, &options, origin).await }
    }

    /// Runs `work` in a managed session: commit on `Ok`, rollback on `Err`, panic, timeout or
    /// cancellation. The closure gets a `Session` handle by value (a cheap clone), so no lifetime
    /// ties it to the runner:
    ///
    /// ```no_run
    /// # use ops_sea::prelude::*;
    /// # use sea_orm::ConnectionTrait;
    /// # async fn demo(db: &Db) -> Result<(), OpsError> {
    /// let rows = db
    ///     .run(SessionOptions::new().name("count"), |s| async move {
    ///         let r = s.execute_unprepared("UPDATE accounts SET balance = balance").await?;
    ///         Ok::<_, OpsError>(r.rows_affected())
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn run<'a, T, E, F, Fut>(
        &'a self,
        options: SessionOptions,
        work: F,
    ) -> impl Future<Output = Result<T, E>> + 'a
    where
        F: FnOnce(Session) -> Fut + 'a,
        Fut: Future<Output = Result<T, E>> + 'a,
        T: 'a,
        E: From<OpsError> + 'a,
    {
        run_managed(self, options, Location::caller(), work)
    }
}

/// Runs `work` in a session taken from `source` according to `options`. `#[managed_session]`
/// expands to a call of this function.
///
/// The returned future is `Send` exactly when `work`'s future is: no `Send` bound is imposed, so
/// the same runner serves multi-threaded services and single-threaded code.
pub async fn run_managed<S, T, E, F, Fut>(
    source: &S,
    options: SessionOptions,
    origin: &'static Location<'static>,
    work: F,
) -> Result<T, E>
where
    S: SessionSource + ?Sized,
    F: FnOnce(Session) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: From<OpsError>,
{
    let span = session_span(source, &options, origin);
    // Boxed: the session's begin, work, commit and rollback live on the heap, so a caller's
    // future (and its stack in a debug build, where futures nest deeply) holds a pointer.
    Box::pin(run_in_span(source, options, origin, work))
        .instrument(span)
        .await
}

/// The `ops.session` span: the OpenTelemetry database fields of the session's database, the
/// session's name and origin, and `error.type` when it does not commit.
fn session_span<S: SessionSource + ?Sized>(
    source: &S,
    options: &SessionOptions,
    origin: &'static Location<'static>,
) -> tracing::Span {
    let db = match source.__source() {
        Source::Db(db) | Source::Reader(db) => Some(db),
        Source::Session(session) => session.db(),
        Source::Connection(_) => None,
    };
    let telemetry = db.map(|db| &db.inner.telemetry);
    let name = options.name.as_deref().unwrap_or("session");
    tracing::info_span!(
        "ops.session",
        otel.name = format!("session {name}"),
        session.name = name,
        code.filepath = origin.file(),
        code.lineno = origin.line(),
        db.system.name = db.map(|db| crate::telemetry::sea_system_name(db.backend())),
        db.namespace = telemetry.and_then(|t| t.namespace()),
        server.address = telemetry.and_then(|t| t.server()),
        server.port = telemetry.and_then(|t| t.port()),
        error.type = tracing::field::Empty,
    )
}

/// Records the category of a session's failure on its span.
fn note_failure(category: Option<ErrorCategory>) {
    let span = tracing::Span::current();
    if !span.is_disabled() {
        match category {
            Some(category) => span.record("error.type", category.to_string()),
            // The work's own error type: OpenTelemetry's value for a type it cannot name.
            None => span.record("error.type", "_OTHER"),
        };
    }
}

async fn run_in_span<S, T, E, F, Fut>(
    source: &S,
    mut options: SessionOptions,
    origin: &'static Location<'static>,
    work: F,
) -> Result<T, E>
where
    S: SessionSource + ?Sized,
    F: FnOnce(Session) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: From<OpsError>,
{
    // One deadline covers the BEGIN and the work, so a session never runs past its timeout.
    let deadline = options
        .timeout
        .map(|limit| tokio::time::Instant::now() + limit);
    let source = source.__source();
    if let Source::Reader(_) = source {
        // A session taken from a reader is a read: read-only, so it can run on a replica.
        options.read_only = true;
    }
    let session = match (source, options.propagation) {
        (Source::Session(current), Propagation::Required) => {
            // Joined: the outer owner commits or rolls back; the work's error reaches it.
            return bounded(&options, current, work(current.clone())).await;
        }
        (Source::Session(current), Propagation::Nested) => {
            begin_within(&options, deadline, current.db(), current.nested())
                .await
                .map_err(E::from)?
        }
        (Source::Session(current), _) => match current.db() {
            Some(db) => {
                fail_fast_if_no_second_connection(db, current, &options)?;
                begin_within(
                    &options,
                    deadline,
                    Some(db),
                    Session::begin(db, &options, origin),
                )
                .await
                .map_err(E::from)?
            }
            None => {
                return Err(E::from(OpsError::new(
                    ErrorCategory::Programming,
                    format!(
                        "propagation requires_new needs a Db, but session '{}' was opened on \
                         a plain SeaORM connection; pass the Db instead",
                        current.name()
                    ),
                )));
            }
        },
        (Source::Db(db) | Source::Reader(db), _) => begin_within(
            &options,
            deadline,
            Some(db),
            Session::begin(db, &options, origin),
        )
        .await
        .map_err(E::from)?,
        (Source::Connection(conn), _) => begin_within(
            &options,
            deadline,
            None,
            Session::begin_on_connection(conn, &options, origin),
        )
        .await
        .map_err(E::from)?,
    };
    drive(session, deadline.zip(options.timeout), work).await
}

/// A session's timeout bounds its `BEGIN` too. On a half-open connection (a network that drops
/// packets, a server that hangs) the `BEGIN` is never answered and nothing else bounds it: the
/// pool timeout covers only the wait for a connection, and sqlx sets no socket timeout. A
/// `BEGIN` abandoned here leaves its connection to the pool's reset-on-return.
async fn begin_within(
    options: &SessionOptions,
    deadline: Option<tokio::time::Instant>,
    db: Option<&Db>,
    begin: impl Future<Output = Result<Session, OpsError>>,
) -> Result<Session, OpsError> {
    let (Some(deadline), Some(limit)) = (deadline, options.timeout) else {
        return begin.await;
    };
    match tokio::time::timeout_at(deadline, begin).await {
        Ok(result) => result,
        Err(_) => {
            let name = options.name.as_deref().unwrap_or("session");
            ops_core::metrics::session_timed_out(name);
            let err = OpsError::new(
                ErrorCategory::Retryable(RetryReason::StatementTimeout),
                format!(
                    "session '{name}' could not begin within its timeout of {limit:?}: the \
                     database or the network did not answer; check the database's health"
                ),
            );
            Err(Db::record_in(db, err))
        }
    }
}

/// A joined call still honours its own timeout, but leaves commit and rollback to the owner.
async fn bounded<T, E: From<OpsError>>(
    options: &SessionOptions,
    session: &Session,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    match options.timeout {
        None => work.await,
        Some(limit) => match tokio::time::timeout(limit, work).await {
            Ok(result) => result,
            Err(_) => Err(E::from(timeout_error(session, limit))),
        },
    }
}

/// `requires_new` from inside a session needs a second connection. When the pool is at its limit
/// with nothing idle, waiting could deadlock (the caller's own connection is one of those in use),
/// so fail now with a message that says what to change.
///
/// On SQLite a session that may write needs the one writer: when the current session holds it,
/// the new one could never begin; when it does not, waiting for the writer is only a queue.
fn fail_fast_if_no_second_connection(
    db: &Db,
    current: &Session,
    options: &SessionOptions,
) -> Result<(), OpsError> {
    if db.backend() == sea_orm::DbBackend::Sqlite && !options.read_only {
        if !current.holds_sqlite_writer() {
            return Ok(());
        }
        return Err(db.record(OpsError::new(
            ErrorCategory::Retryable(RetryReason::PoolExhausted),
            format!(
                "propagation requires_new inside session '{}' needs SQLite's one writer, which \
                 that session holds; use propagation = required, or make the outer session \
                 read_only",
                current.name(),
            ),
        )));
    }
    let state = db.inner.pool.session_state(options.read_only);
    if state.idle == 0 && state.size >= state.max {
        return Err(db.record(OpsError::new(
            ErrorCategory::Retryable(RetryReason::PoolExhausted),
            format!(
                "propagation requires_new inside session '{}' needs a second connection, but all \
                 {} connections are in use; raise DB_MAX_OVERFLOW or use propagation = required",
                current.name(),
                state.max
            ),
        )));
    }
    Ok(())
}

enum Outcome<T, E> {
    Done(Result<T, E>),
    Panicked(Box<dyn std::any::Any + Send>),
    TimedOut(Duration),
    Cancelled,
}

/// Runs the work on an owned session and finishes it.
async fn drive<T, E, F, Fut>(
    session: Session,
    timeout: Option<(tokio::time::Instant, Duration)>,
    work: F,
) -> Result<T, E>
where
    F: FnOnce(Session) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: From<OpsError>,
{
    session.mark_managed();
    // Boxed once: the timeout, unwind and select wrappers then move a pointer rather than copying
    // what may be a large future at each layer.
    let guarded = AssertUnwindSafe(Box::pin(work(session.clone()))).catch_unwind();
    let limited = async {
        match timeout {
            None => guarded.await.map_or_else(Outcome::Panicked, Outcome::Done),
            Some((deadline, limit)) => match tokio::time::timeout_at(deadline, guarded).await {
                Ok(result) => result.map_or_else(Outcome::Panicked, Outcome::Done),
                Err(_) => Outcome::TimedOut(limit),
            },
        }
    };
    // The work future, and the session handle it holds, is dropped when this select finishes,
    // so the commit below holds the last handle.
    let outcome = tokio::select! {
        biased;
        outcome = limited => outcome,
        () = session.cancelled() => Outcome::Cancelled,
    };
    match outcome {
        Outcome::Done(Ok(value)) => {
            session.commit().await.map_err(|err| {
                note_failure(Some(err.category()));
                E::from(err)
            })?;
            Ok(value)
        }
        Outcome::Done(Err(err)) => {
            note_failure(None);
            rollback_quietly(session).await;
            Err(err)
        }
        Outcome::Panicked(panic) => {
            note_failure(None);
            rollback_quietly(session).await;
            std::panic::resume_unwind(panic)
        }
        Outcome::TimedOut(limit) => {
            let err = timeout_error(&session, limit);
            note_failure(Some(err.category()));
            stop_and_roll_back(session).await;
            Err(E::from(err))
        }
        Outcome::Cancelled => {
            let err = OpsError::new(
                ErrorCategory::Retryable(RetryReason::StatementTimeout),
                format!(
                    "session '{}' opened at {} outlived the maximum session age and was \
                     cancelled and rolled back",
                    session.name(),
                    session.origin()
                ),
            );
            let err = session.record(err);
            note_failure(Some(err.category()));
            stop_and_roll_back(session).await;
            Err(E::from(err))
        }
    }
}

/// Stops what a timed-out or cancelled session is running and rolls it back. On a healthy
/// database that takes a round trip or two and finishes here, so the session is over when the
/// caller sees the error. On a dead network the rollback may hang until its grace runs out: after
/// `FINISH_IN_PLACE` it continues in a background task rather than keeping the caller waiting,
/// and the pool's reset-on-return guarantees the connection comes back clean.
async fn stop_and_roll_back(session: Session) {
    let mut finish = Box::pin(async move {
        stop_running_statement(&session).await;
        rollback_bounded(session).await;
    });
    if tokio::time::timeout(FINISH_IN_PLACE, &mut finish)
        .await
        .is_err()
    {
        tokio::spawn(finish);
    }
}

fn timeout_error(session: &Session, limit: Duration) -> OpsError {
    ops_core::metrics::session_timed_out(session.name());
    let err = OpsError::new(
        ErrorCategory::Retryable(RetryReason::StatementTimeout),
        format!(
            "session '{}' opened at {} exceeded its timeout of {limit:?} and was rolled back",
            session.name(),
            session.origin()
        ),
    );
    session.record(err)
}

/// On MySQL/MariaDB a dropped statement keeps running on the server and the connection waits
/// for it; kill it so the rollback is prompt. PostgreSQL sessions with a timeout carry a
/// `statement_timeout` that stops it server-side; SQLite runs in-process.
async fn stop_running_statement(session: &Session) {
    if let (Some(db), Some(id)) = (session.db(), session.mysql_connection_id()) {
        crate::session::kill_mysql_query(db, session.target(), id, ROLLBACK_GRACE).await;
    }
}

async fn rollback_quietly(session: Session) {
    let name = session.name().to_owned();
    if let Err(err) = session.rollback().await {
        // The work's own outcome is what the caller needs; a failed rollback leaves the connection
        // to the pool's reset-on-return.
        tracing::warn!(session = %name, error = err.as_dyn(), "rollback failed");
    }
}

async fn rollback_bounded(session: Session) {
    let name = session.name().to_owned();
    if tokio::time::timeout(ROLLBACK_GRACE, rollback_quietly(session))
        .await
        .is_err()
    {
        tracing::warn!(
            session = %name,
            "rollback did not finish within {ROLLBACK_GRACE:?}; the pool resets the connection"
        );
    }
}
