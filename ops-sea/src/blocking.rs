//! The bridge for synchronous code: repositories and managed sessions from code that cannot
//! `.await`, in every context it may be called from.
//!
//! ```no_run
//! use ops_sea::blocking;
//! use ops_sea::prelude::*;
//! use sea_orm::ConnectionTrait;
//!
//! fn main() -> Result<(), OpsError> {
//!     // A `Db` for synchronous code comes from `blocking::connect` (see "Where I/O lives").
//!     let db = blocking::connect("sqlite://app.db?mode=rwc")?;
//!     blocking::block_on(db.execute_unprepared("CREATE TABLE IF NOT EXISTS t (x INTEGER)"))?;
//!     let inserted = blocking::run(&db, SessionOptions::new().name("import"), |session| {
//!         let r = blocking::block_on(session.execute_unprepared("INSERT INTO t VALUES (1)"))?;
//!         Ok::<_, OpsError>(r.rows_affected())
//!     })?;
//!     assert_eq!(inserted, 1);
//!     Ok(())
//! }
//! ```
//!
//! # Contexts
//!
//! [`block_on`] may be called from any thread. What it does depends on the Tokio context of the
//! calling thread, because Tokio refuses to start a runtime inside a runtime ("Cannot start a
//! runtime from within a runtime") and refuses `block_in_place` outside a multi-thread runtime
//! ("can call blocking only when running on the multi-threaded runtime"):
//!
//! | calling thread | what `block_on` does |
//! | --- | --- |
//! | no runtime (plain `main`, a `#[test]`, a thread of your own) | runs the future on this thread with the bridge runtime's `block_on` |
//! | a multi-thread runtime: a worker running a task, the thread inside `Runtime::block_on`, a `spawn_blocking` thread | `tokio::task::block_in_place` (the worker hands its other tasks to another thread first), then the bridge runtime's `block_on` on this thread |
//! | a current-thread runtime (a task, `#[tokio::test]`'s body, its `spawn_blocking` threads) | runs the future with the bridge runtime's `block_on` on a scoped helper thread, and blocks this thread until it is done |
//! | inside a future that `block_on` runs (nested calls) | the same rules: that thread is inside the bridge runtime's `block_on`, where `block_in_place` is allowed |
//!
//! The current-thread case cannot poll the future on the calling thread: that thread is inside
//! the current-thread scheduler, and Tokio routes some wake-ups (`yield_now`, which sqlx's pool
//! uses while acquiring a connection) to that scheduler's queue, which nothing would drain while
//! the thread is blocked. A helper thread has no Tokio context at all, so it behaves exactly like
//! the no-runtime case. This is why `block_on` needs the future and its output to be `Send`: the
//! future may run on the helper thread. The helper is a `std::thread::scope` thread, so the future
//! may still borrow the caller's locals (no `'static` bound). The caller's `tracing` span is
//! carried over to the helper thread.
//!
//! Every future `block_on` runs is polled inside the bridge runtime's context, whatever the
//! caller's context: sockets and timers it creates while polled register with the bridge's
//! drivers, and tasks it spawns (`tokio::spawn`, sqlx returning a connection to its pool,
//! `db.spawn_maintenance`) run on the bridge's worker threads. Resources created *before* the
//! call belong to the caller's runtime: `block_on(tokio::time::timeout(limit, work))` builds the
//! timer in the caller's context, where a blocked current-thread runtime never fires it, whereas
//! `block_on(async { tokio::time::timeout(limit, work).await })` builds it on the bridge. `async
//! fn` calls create nothing until polled, so repository calls are safe either way.
//!
//! A panic inside the future reaches the caller of `block_on` as the same panic (payload and all),
//! in every context.
//!
//! # Where I/O lives
//!
//! A Tokio socket belongs to the runtime that opened it: only that runtime's I/O driver reports
//! it ready. A `Db` connected with `Db::connect(..).await` on a current-thread runtime opens its
//! connections on that runtime, and a synchronous call on that runtime's thread blocks the only
//! thread that could drive them: a PostgreSQL or MySQL query through such a pool never completes.
//! sqlx also spawns the pool's maintenance tasks (keeping `pool_size` connections warm) on the
//! runtime current when the pool is built.
//!
//! So a `Db` used from synchronous code should come from [`connect`], [`connect_from_env`],
//! [`connect_with`] or [`connect_builder`]. They build the `Db` inside the bridge runtime, a
//! process-wide multi-thread runtime with two worker threads that is started on first use and
//! never shut down, and that user code never blocks. Its pool tasks and the connections it opens
//! live there, so the `Db` works from synchronous code in every context above, and from `async`
//! code on any runtime too (its futures just wait on the bridge's I/O driver). A `Db` connected on
//! a multi-thread runtime also works from synchronous code while that runtime is running.
//!
//! # Rules for callers
//!
//! - Finish sessions inside the `block_on` that opened them, or better, use [`run`]. sqlx returns a
//!   connection to its pool by spawning a task when the connection is dropped, which panics with
//!   "this functionality requires a Tokio context" on a thread without a runtime. A `Session`
//!   dropped in plain synchronous code, outside `block_on`, is such a drop.
//! - Called from a task on a current-thread runtime, `block_on` blocks that runtime until the
//!   future completes, as any synchronous code there does. A future that waits for that runtime
//!   (a task spawned on it, a socket or timer created on it) therefore never completes. This is
//!   also why a connection used by `async` code on a current-thread runtime stays out of the pool
//!   while synchronous code blocks that runtime: sqlx returns it through a task on that runtime.
//! - rustc sometimes cannot prove an `async fn`'s future `Send` although it is ("implementation of
//!   `Send` is not general enough", rust-lang/rust#110338), typically around generic sqlx
//!   executors. Such a future cannot go through `block_on`; generated repositories and managed
//!   sessions are not affected.
//! - `block_in_place` suspends everything else the calling task was doing concurrently
//!   (`join!`, `select!` branches) until the synchronous call returns.
//! - One combination cannot be detected through Tokio's public API: holding a multi-thread
//!   runtime's `Handle::enter` guard inside a current-thread runtime's `block_on`. The thread then
//!   reports a multi-thread runtime but forbids `block_in_place`, and Tokio panics. Drop the guard
//!   before calling synchronous code.

use std::any::Any;
use std::future::Future;
use std::panic::{Location, resume_unwind};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Instant;

use ops_core::config::DbConfig;
use ops_core::{ErrorCategory, RetryReason, SessionOptions};
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};
use tracing::Instrument;

use crate::{Db, DbBuilder, OpsError, Session, SessionSource};

/// Worker threads of the bridge runtime. Futures run by `block_on` are polled on the callers'
/// threads; the workers only drive I/O and timers and run short tasks sqlx and ops spawn, so two
/// are enough and one of them is always free to drive the I/O driver.
const BRIDGE_WORKERS: usize = 2;

/// The bridge runtime, once started. A static is never dropped, so the runtime is never shut
/// down: dropping a runtime from async code panics, and pools built on it must outlive every
/// caller's runtime.
static BRIDGE: OnceLock<Runtime> = OnceLock::new();

/// Serializes starting the bridge, so a failed start can be retried later instead of being
/// remembered forever (as `OnceLock::get_or_init` with a fallible builder would require).
static BRIDGE_START: Mutex<()> = Mutex::new(());

/// The bridge runtime, started on first use.
fn bridge() -> std::io::Result<&'static Runtime> {
    if let Some(runtime) = BRIDGE.get() {
        return Ok(runtime);
    }
    let _starting = BRIDGE_START.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(runtime) = BRIDGE.get() {
        return Ok(runtime);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(BRIDGE_WORKERS)
        .thread_name("ops-blocking-bridge")
        .enable_all()
        .build()?;
    Ok(BRIDGE.get_or_init(|| runtime))
}

/// The bridge runtime, or a panic saying why it cannot start; for functions that cannot return
/// an error. Starting fails only when the operating system refuses threads or an I/O driver.
fn bridge_or_panic() -> &'static Runtime {
    match bridge() {
        Ok(runtime) => runtime,
        Err(err) => panic!(
            "ops_sea::blocking cannot start its bridge runtime: {err}; the process is out of \
             threads or file descriptors, raise the limits"
        ),
    }
}

/// A handle to the bridge runtime, for spawning tasks that must outlive the caller's runtime.
///
/// # Errors
///
/// `ErrorCategory::Unavailable` when the runtime cannot start (the operating system refused a
/// thread or an I/O driver).
pub fn handle() -> Result<Handle, OpsError> {
    bridge()
        .map(|runtime| runtime.handle().clone())
        .map_err(bridge_error)
}

fn bridge_error(err: std::io::Error) -> OpsError {
    OpsError::new(
        ErrorCategory::Unavailable,
        format!(
            "cannot start the ops_sea::blocking bridge runtime: {err}; the process is out of \
             threads or file descriptors, raise the limits"
        ),
    )
}

/// Runs a future to completion from synchronous code and returns its output, in any context:
/// no runtime, a multi-thread runtime (a task, `Runtime::block_on`, `spawn_blocking`), a
/// current-thread runtime, or inside another `block_on`. See the [module documentation](self)
/// for what happens in each.
///
/// The future may borrow the caller's locals. It must be `Send`, and so must its output, because
/// on a current-thread runtime it runs on a helper thread.
///
/// ```no_run
/// # fn demo(db: &ops_sea::Db) -> Result<(), ops_sea::OpsError> {
/// use sea_orm::ConnectionTrait;
/// let sql = String::from("UPDATE accounts SET balance = balance");
/// let updated = ops_sea::blocking::block_on(db.execute_unprepared(&sql))?.rows_affected();
/// # Ok(()) }
/// ```
///
/// # Panics
///
/// When the future panics, with the same payload. When the bridge runtime or a helper thread
/// cannot start because the operating system refuses threads.
pub fn block_on<F>(fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    let bridge = bridge_or_panic();
    match Handle::try_current() {
        // Nothing of Tokio's on this thread: block it directly.
        Err(_) => bridge.block_on(fut),
        // A worker (or the thread in `Runtime::block_on`, or a `spawn_blocking` thread) of a
        // multi-thread runtime. `block_in_place` moves the worker's other tasks to a new thread
        // and leaves the runtime context, after which starting the bridge's `block_on` here is
        // allowed. Outside a worker it just runs the closure.
        Ok(current) if current.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| bridge.block_on(fut))
        }
        // A current-thread runtime, or a flavour this code does not know: `block_in_place` is
        // not allowed, and polling here could route wake-ups to the scheduler being blocked.
        Ok(_) => on_helper_thread(bridge, fut),
    }
}

/// Runs `fut` on a scoped thread of its own with the bridge's `block_on`, blocking this thread
/// until it finishes, and re-raises its panic here.
fn on_helper_thread<F>(bridge: &'static Runtime, fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    let span = tracing::Span::current();
    let outcome: Result<F::Output, Box<dyn Any + Send>> = std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("ops-blocking-call".to_owned())
            .spawn_scoped(scope, move || bridge.block_on(fut.instrument(span)));
        match helper {
            // Joined here rather than by the scope: the scope would replace the panic's payload
            // with its own "a scoped thread panicked".
            Ok(helper) => helper.join(),
            Err(err) => panic!(
                "ops_sea::blocking cannot start a helper thread to leave the current-thread \
                 runtime: {err}; the process is out of threads, raise the limit"
            ),
        }
    });
    match outcome {
        Ok(output) => output,
        Err(panic) => resume_unwind(panic),
    }
}

/// Connects with default settings inside the bridge runtime; the `Db` for synchronous code.
///
/// # Errors
///
/// What `Db::connect` returns: a bad URL, a database that does not answer within the connect
/// timeout, refused credentials.
pub fn connect(url: &str) -> Result<Db, OpsError> {
    connect_with(DbConfig::new(url)?)
}

/// Connects with the settings of the environment (`DATABASE_URL`, `DB_POOL_SIZE`, ...) inside the
/// bridge runtime.
///
/// # Errors
///
/// What `Db::connect_from_env` returns: a variable with a bad value, or a database that does not
/// answer.
pub fn connect_from_env() -> Result<Db, OpsError> {
    connect_with(DbConfig::from_env()?)
}

/// Connects with a complete configuration inside the bridge runtime.
///
/// # Errors
///
/// What `Db::connect_with` returns.
pub fn connect_with(config: DbConfig) -> Result<Db, OpsError> {
    on_bridge(Db::connect_with(config))
}

/// Connects from a builder inside the bridge runtime:
/// `blocking::connect_builder(Db::builder(url).pool_size(2))`.
///
/// # Errors
///
/// What `DbBuilder::connect` returns.
pub fn connect_builder(builder: DbBuilder) -> Result<Db, OpsError> {
    on_bridge(builder.connect())
}

/// Runs a connect future as a task of the bridge runtime, so that everything it spawns and
/// opens is bound to the bridge whatever the caller's context, and waits for it.
fn on_bridge<F>(connect: F) -> Result<Db, OpsError>
where
    F: Future<Output = Result<Db, OpsError>> + Send + 'static,
{
    let bridge = bridge().map_err(bridge_error)?;
    let task = bridge.spawn(connect);
    match block_on(task) {
        Ok(result) => result,
        Err(err) => match err.try_into_panic() {
            Ok(panic) => resume_unwind(panic),
            // The bridge is never shut down and the task is never aborted, so this is not
            // expected; report it rather than panic.
            Err(err) => Err(OpsError::new(
                ErrorCategory::Other,
                format!("connecting on the bridge runtime did not finish: {err}; retry"),
            )),
        },
    }
}

/// Runs synchronous `work` in a managed session: commit when it returns `Ok`, roll back when it
/// returns `Err` or panics (the panic continues after the rollback). The synchronous counterpart
/// of `db.run(options, closure)`.
///
/// `source` is what `#[managed_session]` accepts: a `&Db` opens a session, a `&Session` joins it
/// (or nests, or opens a new one, per `options.propagation`). Inside `work`, run repository calls
/// and statements with [`block_on`]; the session and the work stay on this thread.
///
/// ```no_run
/// # use ops_sea::prelude::*;
/// # use ops_sea::blocking;
/// # use sea_orm::ConnectionTrait;
/// # fn demo(db: &Db) -> Result<(), OpsError> {
/// blocking::run(db, SessionOptions::new().name("archive"), |session| {
///     blocking::block_on(session.execute_unprepared("DELETE FROM drafts"))?;
///     blocking::block_on(session.execute_unprepared("UPDATE stats SET drafts = 0"))?;
///     Ok::<_, OpsError>(())
/// })
/// # }
/// ```
///
/// # Timeouts
///
/// Synchronous work cannot be interrupted. A session timeout is checked when `work` returns:
/// work that took longer is rolled back and the timeout error (`Retryable(StatementTimeout)`)
/// returned in place of its result. On PostgreSQL the timeout also bounds each statement on the
/// server, as it does for async sessions.
///
/// # Errors
///
/// `work`'s error, or the session's: it could not begin or commit, or timed out.
#[track_caller]
pub fn run<S, T, E, F>(source: &S, options: SessionOptions, work: F) -> Result<T, E>
where
    S: SessionSource + ?Sized,
    F: FnOnce(&Session) -> Result<T, E> + Send,
    T: Send,
    E: From<OpsError> + Send,
{
    let origin = Location::caller();
    let timeout = options.timeout;
    block_on(crate::run_managed(
        source,
        options,
        origin,
        move |session| async move {
            let started = Instant::now();
            let result = work(&session);
            check_sync_timeout(&session, timeout, started, result)
        },
    ))
}

/// Synchronous work cannot be interrupted, so a session's timeout is checked when the work
/// returns: a successful result that came after the timeout is replaced by the timeout error, and
/// the session is then rolled back. Shared by `run` and the synchronous `#[managed_session] fn`.
pub(crate) fn check_sync_timeout<T, E: From<OpsError>>(
    session: &Session,
    timeout: Option<std::time::Duration>,
    started: Instant,
    result: Result<T, E>,
) -> Result<T, E> {
    match timeout {
        Some(limit) if result.is_ok() && started.elapsed() > limit => {
            Err(E::from(sync_timeout_error(session, limit)))
        }
        _ => result,
    }
}

/// The error of a synchronous session that outlived its timeout, recorded in the `Db`'s stats
/// like the async runner's.
fn sync_timeout_error(session: &Session, limit: std::time::Duration) -> OpsError {
    let err = OpsError::new(
        ErrorCategory::Retryable(RetryReason::StatementTimeout),
        format!(
            "session '{}' opened at {} exceeded its timeout of {limit:?} while synchronous work \
             ran and was rolled back; shorten the work or raise the timeout",
            session.name(),
            session.origin()
        ),
    );
    session.record(err)
}
