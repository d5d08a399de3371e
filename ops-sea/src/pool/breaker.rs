//! The circuit breaker of one pool, wired to SeaORM: which errors open it, what a refused call
//! returns, and who hears about it. The state machine is `ops_core::breaker`.
//!
//! Only connection-level failures count, and only where a connection is being obtained:
//!
//! - `DbErr::Conn` (sqlx could not open a connection for the pool) classified `Unavailable`,
//!   `Retryable(ConnectionLost)` or `Retryable(ServerUnavailable)`: refused, unreachable, reset
//!   during the handshake, the server starting or shutting down.
//! - `DbErr::ConnectionAcquire(Timeout)` when the pool completed no call at all during the whole
//!   wait. sqlx reports a connect that hangs (a black-holed network) and a pool whose connections
//!   are all busy the same way; a busy pool finishes other calls meanwhile, a dead database does
//!   not.
//!
//! Statement errors (integrity, programming, timeouts, a connection lost mid-statement), a closed
//! pool and a busy pool neither count nor reset the count; any call that reached the database
//! resets it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ops_core::breaker::{
    Admission, BreakerConfig, BreakerStatus, CircuitBreaker, Probe, Transition,
};
use ops_core::stats::{CriticalKind, ErrorStatsRecorder};
use ops_core::{ErrorCategory, RetryReason};
use sea_orm::error::ConnAcquireErr;
use sea_orm::{DbErr, RuntimeErr};

/// A refused call's error: carried inside the `DbErr` a refused SeaORM call returns, so that
/// `OpsError::from` finds the remaining cooldown without reading any text.
#[derive(Debug)]
pub(crate) struct BreakerRejection {
    pub(crate) retry_after: Duration,
    target: Arc<str>,
}

impl std::fmt::Display for BreakerRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the circuit breaker for {} is open after repeated connection failures: calls fail at \
             once for another {:?}; check that the database is up and reachable",
            self.target, self.retry_after
        )
    }
}

impl std::error::Error for BreakerRejection {}

/// The remaining cooldown, when `err` is a call refused by a breaker.
pub(crate) fn rejection(err: &DbErr) -> Option<&BreakerRejection> {
    let DbErr::Conn(RuntimeErr::SqlxError(sqlx)) = err else {
        return None;
    };
    let sqlx::Error::Io(io) = sqlx.as_ref() else {
        return None;
    };
    io.get_ref()?.downcast_ref::<BreakerRejection>()
}

/// The breaker of one pool (the primary's or a replica's).
#[derive(Debug)]
pub(crate) struct PoolBreaker {
    breaker: CircuitBreaker,
    target: Arc<str>,
    recorder: ErrorStatsRecorder,
    pool_timeout: Duration,
    epoch: Instant,
    /// Milliseconds after `epoch` of the last call that reached the database.
    last_progress: AtomicU64,
}

/// What one call's outcome says about the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Reached,
    ConnectionFailure,
    Nothing,
}

impl PoolBreaker {
    /// A breaker for the pool at `target` (a redacted URL), or `None` when turned off.
    pub(crate) fn new(
        config: Option<BreakerConfig>,
        target: &str,
        pool_timeout: Duration,
        recorder: ErrorStatsRecorder,
    ) -> Option<PoolBreaker> {
        Some(PoolBreaker {
            breaker: CircuitBreaker::new(config?),
            target: Arc::from(target),
            recorder,
            pool_timeout,
            epoch: Instant::now(),
            last_progress: AtomicU64::new(0),
        })
    }

    /// Lets a call through, or refuses it at once with an error that classifies as
    /// `Unavailable` and carries the remaining cooldown.
    pub(crate) fn admit(&self) -> Result<Probe<'_>, DbErr> {
        let admission = self.breaker.admit(Instant::now());
        if let Admission::Rejected { retry_after } = admission {
            self.recorder.record_breaker_rejected();
            let rejection = BreakerRejection {
                retry_after,
                target: self.target.clone(),
            };
            let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, rejection);
            return Err(DbErr::Conn(RuntimeErr::SqlxError(Arc::new(
                sqlx::Error::Io(io),
            ))));
        }
        Ok(Probe::new(&self.breaker, admission))
    }

    /// Lets a health check through unless the breaker would refuse a call; a refused check is
    /// not counted as a refused call.
    pub(crate) fn admit_check(&self) -> Option<Probe<'_>> {
        if !self.would_admit() {
            return None;
        }
        self.admit().ok()
    }

    /// Reports how an admitted call ended.
    pub(crate) fn settle<T>(&self, probe: Probe<'_>, result: &Result<T, DbErr>) {
        let verdict = match result {
            Ok(_) => Verdict::Reached,
            Err(err) => self.verdict(err),
        };
        self.report(probe, verdict);
    }

    /// Reports a health check that reached the database (`true`) or got no answer (`false`).
    pub(crate) fn settle_check(&self, probe: Probe<'_>, reached: bool) {
        let verdict = if reached {
            Verdict::Reached
        } else {
            Verdict::ConnectionFailure
        };
        self.report(probe, verdict);
    }

    fn report(&self, mut probe: Probe<'_>, verdict: Verdict) {
        let now = Instant::now();
        let transition = match verdict {
            Verdict::Reached => {
                let millis =
                    u64::try_from(now.duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX);
                // One store per millisecond at most keeps the hot path off a contended line.
                if self.last_progress.load(Ordering::Relaxed) < millis {
                    self.last_progress.store(millis, Ordering::Relaxed);
                }
                self.breaker.on_success(probe.is_probe(), now)
            }
            Verdict::ConnectionFailure => self.breaker.on_failure(probe.is_probe(), now),
            Verdict::Nothing => return,
        };
        probe.resolved();
        match transition {
            Some(Transition::Opened { failures, reopened }) => {
                let cooldown = self.breaker.config().cooldown;
                let detail = if reopened {
                    format!(
                        "circuit breaker for {} reopened for {cooldown:?}: the probe failed",
                        self.target
                    )
                } else {
                    format!(
                        "circuit breaker for {} opened for {cooldown:?} after {failures} \
                         consecutive connection failures; calls fail at once until a probe \
                         gets through",
                        self.target
                    )
                };
                tracing::error!(target_db = %self.target, "{detail}");
                self.recorder
                    .record_breaker(CriticalKind::BreakerOpened, &detail);
            }
            Some(Transition::Closed { after }) => {
                let detail = format!(
                    "circuit breaker for {} closed: the probe reached the database after {after:?}",
                    self.target
                );
                tracing::warn!(target_db = %self.target, "{detail}");
                self.recorder
                    .record_breaker(CriticalKind::BreakerClosed, &detail);
            }
            None => {}
        }
    }

    fn verdict(&self, err: &DbErr) -> Verdict {
        match err {
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => {
                // The call waited the whole pool timeout; did anything else get through meanwhile?
                let waited_since = Instant::now()
                    .checked_sub(self.pool_timeout)
                    .map_or(0, |since| {
                        since.saturating_duration_since(self.epoch).as_millis()
                    });
                if u128::from(self.last_progress.load(Ordering::Relaxed)) < waited_since {
                    Verdict::ConnectionFailure
                } else {
                    Verdict::Nothing
                }
            }
            DbErr::ConnectionAcquire(_) => Verdict::Nothing,
            DbErr::Conn(RuntimeErr::SqlxError(sqlx))
                if matches!(**sqlx, sqlx::Error::PoolClosed) =>
            {
                Verdict::Nothing
            }
            DbErr::Conn(_) => match crate::classify::classify(err).category {
                ErrorCategory::Unavailable
                | ErrorCategory::Retryable(
                    RetryReason::ConnectionLost | RetryReason::ServerUnavailable,
                ) => Verdict::ConnectionFailure,
                _ => Verdict::Reached,
            },
            _ => match crate::classify::classify(err).category {
                // A statement that broke the connection or found the server going away says
                // nothing either way; the next connect attempt will.
                ErrorCategory::Unavailable
                | ErrorCategory::Retryable(
                    RetryReason::ConnectionLost
                    | RetryReason::ServerUnavailable
                    | RetryReason::PoolExhausted,
                ) => Verdict::Nothing,
                _ => Verdict::Reached,
            },
        }
    }

    /// A snapshot for health reports and stats.
    pub(crate) fn status(&self) -> BreakerStatus {
        self.breaker.status(Instant::now())
    }

    /// Whether a call would be let through now; a router skips a pool that would refuse it.
    pub(crate) fn would_admit(&self) -> bool {
        self.breaker.would_admit(Instant::now())
    }
}

/// Runs one call through `breaker`, when there is one.
pub(crate) async fn guarded<T>(
    breaker: Option<&PoolBreaker>,
    call: impl std::future::Future<Output = Result<T, DbErr>>,
) -> Result<T, DbErr> {
    let call = super::release::watched(call);
    let Some(breaker) = breaker else {
        return call.await;
    };
    let probe = breaker.admit()?;
    let result = call.await;
    breaker.settle(probe, &result);
    result
}
