//! The runtime that `#[managed_session]` and `#[db_retry]` expansions call, through
//! `::ops_sea::__private::…`. Not public API: it changes with the macros, in lockstep.
//!
//! Each expansion is one call of a function here, so the behaviour lives in tested code and the
//! generated code stays small. The marker traits (`ManagedError`, `RetryError`, `RetryArg`) exist
//! for their diagnostics: a bound on them fails with a message that says what the macro needs,
//! spanned at the user's type, instead of a bare "trait bound not satisfied".

use std::fmt;
use std::future::Future;
use std::time::Instant;

use ops_core::Categorize;
use ops_core::stats::ErrorStatsRecorder;

use crate::OpsError;
use crate::managed::Source;

pub use crate::blocking::block_on;
pub use crate::{Session, SessionSource};
pub use core::panic::Location;
pub use core::time::Duration;
pub use ops_core::{Isolation, Propagation, RetryPolicy, RetryReason, SessionOptions};

/// The error type of a `#[managed_session]` function: failures to begin or commit the session
/// are returned as it.
#[diagnostic::on_unimplemented(
    message = "`#[managed_session]` needs the error type `{Self}` to implement `From<OpsError>`",
    label = "`{Self}` cannot hold a failure to begin or commit the session",
    note = "add `impl From<ops_sea::OpsError> for {Self}`, or a `#[from] OpsError` variant with \
            thiserror, or return `Result<_, ops_sea::OpsError>`"
)]
pub trait ManagedError: From<OpsError> {}

impl<E: From<OpsError>> ManagedError for E {}

/// The error type of a `#[db_retry]` function: its category decides whether to try again.
#[diagnostic::on_unimplemented(
    message = "`#[db_retry]` needs the error type `{Self}` to implement `Categorize` and `Display`",
    label = "the retry loop cannot tell whether `{Self}` is worth another attempt",
    note = "implement `ops_sea::Categorize` for `{Self}` (delegate to the `OpsError` it wraps), \
            or return `Result<_, ops_sea::OpsError>`"
)]
pub trait RetryError: Categorize + fmt::Display {}

impl<E: Categorize + fmt::Display> RetryError for E {}

/// An owned argument of a `#[db_retry]` function: every attempt gets its own copy.
#[diagnostic::on_unimplemented(
    message = "`#[db_retry]` passes every attempt its own copy of this argument, so `{Self}` \
               must implement `Clone`",
    label = "`{Self}` is not `Clone`",
    note = "take the argument by reference (`&{Self}`): references are passed to every attempt \
            as they are"
)]
pub trait RetryArg: Sized {
    /// The copy handed to one attempt.
    fn retry_clone(&self) -> Self;
}

impl<T: Clone> RetryArg for T {
    #[inline]
    fn retry_clone(&self) -> Self {
        self.clone()
    }
}

/// The return type of a `#[managed_session]` or `#[db_retry]` function: `Result<T, E>`.
///
/// The runtime functions below take the function's return type `R` whole and require
/// `R: ManagedOutput` and a bound on `R::Error`, rather than taking `Result<T, E>` apart in
/// their signatures: then a return type that is not a `Result`, or an error type the runtime
/// cannot use, fails exactly one bound, with this crate's message, at the user's return type
/// (where the expansion spans the call), and the function's body still has the declared type.
#[diagnostic::on_unimplemented(
    message = "`#[managed_session]` and `#[db_retry]` need the function to return `Result<T, E>`, \
               not `{Self}`",
    label = "not a `Result`",
    note = "the session commits on `Ok` and rolls back on `Err`; return \
            `Result<{Self}, ops_sea::OpsError>` or your own error type"
)]
pub trait ManagedOutput: Sized {
    /// `T`.
    type Ok;
    /// `E`.
    type Error;
    /// The value as a `Result`.
    fn into_result(self) -> Result<Self::Ok, Self::Error>;
    /// The value from a `Result`.
    fn from_result(result: Result<Self::Ok, Self::Error>) -> Self;
}

impl<T, E> ManagedOutput for Result<T, E> {
    type Ok = T;
    type Error = E;

    #[inline]
    fn into_result(self) -> Self {
        self
    }

    #[inline]
    fn from_result(result: Self) -> Self {
        result
    }
}

/// Runs `work` in a managed session: what `#[managed_session]` on an `async fn` expands to.
/// [`run_managed`](crate::run_managed), with bounds that explain themselves.
pub fn managed<'a, S, R, F, Fut>(
    source: &'a S,
    options: SessionOptions,
    origin: &'static Location<'static>,
    work: F,
) -> impl Future<Output = R> + 'a
where
    S: SessionSource + ?Sized,
    R: ManagedOutput + 'a,
    R::Error: ManagedError,
    F: FnOnce(Session) -> Fut + 'a,
    Fut: Future<Output = R> + 'a,
{
    let run = crate::run_managed(source, options, origin, move |session: Session| {
        // Boxed once: the session runner's wrappers then move a pointer, not the whole future.
        let work = Box::pin(work(session));
        async move { work.await.into_result() }
    });
    async move { R::from_result(run.await) }
}

/// Runs the body of a synchronous `#[managed_session] fn` in a managed session; the expansion
/// drives it with [`block_on`].
///
/// The body cannot be interrupted, so the session's timeout is checked when it returns: a body
/// that took longer is rolled back and the timeout error returned in place of its result, as
/// `ops_sea::blocking::run` does. On PostgreSQL the timeout also bounds each statement on the
/// server.
pub fn managed_blocking<'a, S, R, F, Fut>(
    source: &'a S,
    options: SessionOptions,
    origin: &'static Location<'static>,
    work: F,
) -> impl Future<Output = R> + 'a
where
    S: SessionSource + ?Sized,
    R: ManagedOutput + 'a,
    R::Error: ManagedError,
    F: FnOnce(Session) -> Fut + 'a,
    Fut: Future<Output = R> + 'a,
{
    let timeout = options.timeout;
    let run = crate::run_managed(source, options, origin, move |session: Session| {
        let checked = session.clone();
        let work = work(session);
        async move {
            let started = Instant::now();
            let result = work.await.into_result();
            crate::blocking::check_sync_timeout(&checked, timeout, started, result)
        }
    });
    async move { R::from_result(run.await) }
}

/// Retries `op` under `policy`, on sessions taken from `source`: what `#[db_retry]` expands to.
///
/// - `source` is a `Db` (or a plain connection): every attempt may open a fresh session, so the
///   policy applies, and retries are counted in the `Db`'s error stats (`db.error_stats()`).
/// - `source` is a caller's `Session` and `propagation` joins it (`Required`) or nests in it
///   (`Nested`): the attempt runs once. A serialization failure or a deadlock aborts the caller's
///   whole transaction, and no retry inside it can recover that; the error reaches the session's
///   owner, whose own `#[db_retry]`, if any, retries the whole unit.
/// - `source` is a `Session` and `propagation` is `RequiresNew`: each attempt runs in a
///   transaction of its own, so the policy applies.
pub async fn retry_source<S, R, F, Fut>(
    source: &S,
    propagation: Propagation,
    policy: RetryPolicy,
    mut op: F,
) -> R
where
    S: SessionSource + ?Sized,
    R: ManagedOutput,
    R::Error: RetryError,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = R>,
{
    let op = |attempt| {
        // Boxed once: the retry loop and its wrappers then move a pointer, not the whole future.
        let attempt = Box::pin(op(attempt));
        async move { attempt.await.into_result() }
    };
    let result = match source.__source() {
        Source::Session(_) if propagation != Propagation::RequiresNew => {
            let mut op = op;
            op(1).await
        }
        Source::Session(session) => {
            let policy = with_recorder(policy, session.db().map(crate::Db::error_recorder));
            ops_core::retry(&policy, op).await
        }
        Source::Db(db) | Source::Reader(db) => {
            let policy = with_recorder(policy, Some(db.error_recorder()));
            ops_core::retry(&policy, op).await
        }
        Source::Connection(_) => ops_core::retry(&policy, op).await,
    };
    R::from_result(result)
}

/// Retries `op` under `policy` when the function takes no session source (no `&Db` parameter):
/// nothing to count retries in, and nothing to join.
pub async fn retry_detached<R, F, Fut>(policy: RetryPolicy, mut op: F) -> R
where
    R: ManagedOutput,
    R::Error: RetryError,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = R>,
{
    let op = |attempt| {
        // Boxed once: the retry loop and its wrappers then move a pointer, not the whole future.
        let attempt = Box::pin(op(attempt));
        async move { attempt.await.into_result() }
    };
    R::from_result(ops_core::retry(&policy, op).await)
}

fn with_recorder(policy: RetryPolicy, recorder: Option<&ErrorStatsRecorder>) -> RetryPolicy {
    match recorder {
        // A policy the caller built with its own recorder keeps it.
        Some(recorder) if policy.stats_recorder().is_none() => policy.recorder(recorder.clone()),
        _ => policy,
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::Db;
    use ops_core::ErrorCategory;

    fn serialization_failure() -> OpsError {
        OpsError::new(
            ErrorCategory::Retryable(RetryReason::SerializationFailure),
            "could not serialize access",
        )
    }

    fn fast(attempts: u32) -> RetryPolicy {
        RetryPolicy::new()
            .attempts(attempts)
            .initial(Duration::from_millis(1))
            .jitter(false)
    }

    async fn memory_db() -> Db {
        Db::connect("sqlite::memory:")
            .await
            .expect("in-memory SQLite")
    }

    #[tokio::test]
    async fn a_db_source_retries_and_counts_in_its_stats() {
        let db = memory_db().await;
        let calls = AtomicU32::new(0);
        let result = retry_source(&db, Propagation::Required, fast(3), |attempt| {
            calls.fetch_add(1, Ordering::Relaxed);
            async move {
                if attempt < 2 {
                    Err(serialization_failure())
                } else {
                    Ok(attempt)
                }
            }
        })
        .await;
        assert_eq!(result.expect("second attempt succeeds"), 2);
        assert_eq!(calls.load(Ordering::Relaxed), 2);
        let stats = db.error_stats();
        assert_eq!(stats.retries_attempted, 1);
        assert_eq!(stats.retries_succeeded, 1);
        db.close().await;
    }

    #[tokio::test]
    async fn a_joined_session_is_attempted_once() {
        let db = memory_db().await;
        let session = db.session().await.expect("session");
        for propagation in [Propagation::Required, Propagation::Nested] {
            let calls = AtomicU32::new(0);
            let result: Result<(), OpsError> = retry_source(&session, propagation, fast(5), |_| {
                calls.fetch_add(1, Ordering::Relaxed);
                async { Err(serialization_failure()) }
            })
            .await;
            assert!(result.is_err());
            assert_eq!(calls.load(Ordering::Relaxed), 1, "{propagation:?}");
        }
        assert_eq!(db.error_stats().retries_attempted, 0);
        session.rollback().await.expect("rollback");
        db.close().await;
    }

    #[tokio::test]
    async fn requires_new_from_a_session_retries() {
        let db = memory_db().await;
        let session = db.session().await.expect("session");
        let calls = AtomicU32::new(0);
        let result: Result<(), OpsError> =
            retry_source(&session, Propagation::RequiresNew, fast(3), |_| {
                calls.fetch_add(1, Ordering::Relaxed);
                async { Err(serialization_failure()) }
            })
            .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::Relaxed), 3);
        assert_eq!(db.error_stats().retries_exhausted, 1);
        session.rollback().await.expect("rollback");
        db.close().await;
    }

    #[tokio::test]
    async fn detached_retry_uses_the_policy_alone() {
        let calls = AtomicU32::new(0);
        let result: Result<(), OpsError> = retry_detached(fast(2), |_| {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err(serialization_failure()) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn managed_blocking_rolls_back_a_body_that_outlived_its_timeout() {
        let db = memory_db().await;
        // Long enough for the BEGIN on a loaded machine (a 1 ms timeout sometimes expired before
        // the session began, and then nothing was rolled back); the body outlives it by far.
        let options = SessionOptions::new().timeout(Duration::from_millis(100));
        let result: Result<(), OpsError> =
            managed_blocking(&db, options, Location::caller(), |_session| async {
                std::thread::sleep(Duration::from_millis(400));
                Ok(())
            })
            .await;
        let err = result.expect_err("the body outlived its timeout");
        assert_eq!(
            err.category(),
            ErrorCategory::Retryable(RetryReason::StatementTimeout)
        );
        let stats = db.session_stats();
        assert_eq!((stats.committed, stats.rolled_back), (0, 1));
        db.close().await;
    }
}
