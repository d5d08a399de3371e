//! The retry engine behind `#[db_retry]`: a [`RetryPolicy`] and the [`retry`] loop.
//!
//! Whether an error is retried depends only on its [`ErrorCategory`], never on its text. Backoff is
//! exponential with full jitter (a random delay between zero and the exponential cap), which spreads
//! out clients that failed together, for example every victim of the same deadlock or every client
//! of a server that just restarted.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::metrics::RetryOutcome;
use crate::stats::ErrorStatsRecorder;
use crate::{Categorize, ErrorCategory, RetryReason};

/// A set of [`RetryReason`]s, one bit per reason.
#[derive(Clone, Copy, PartialEq, Eq)]
struct ReasonSet(u16);

impl ReasonSet {
    const EMPTY: ReasonSet = ReasonSet(0);

    const fn bit(reason: RetryReason) -> u16 {
        1 << match reason {
            RetryReason::ConnectionLost => 0,
            RetryReason::SerializationFailure => 1,
            RetryReason::Deadlock => 2,
            RetryReason::Busy => 3,
            RetryReason::ServerUnavailable => 4,
            RetryReason::PoolExhausted => 5,
            RetryReason::LockTimeout => 6,
            RetryReason::StatementTimeout => 7,
        }
    }

    const fn with(self, reason: RetryReason) -> ReasonSet {
        ReasonSet(self.0 | Self::bit(reason))
    }

    const fn contains(self, reason: RetryReason) -> bool {
        self.0 & Self::bit(reason) != 0
    }
}

impl std::fmt::Debug for ReasonSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries(RetryReason::ALL.iter().filter(|r| self.contains(**r)))
            .finish()
    }
}

/// How [`retry`] retries: how often, how long it waits, and which errors it tries again.
///
/// Built with chained setters from [`RetryPolicy::new`]; the defaults are 3 attempts, backoff from
/// 50 ms doubling up to 2 s with full jitter, no overall deadline, retrying
/// [`RetryReason::ConnectionLost`], [`SerializationFailure`](RetryReason::SerializationFailure),
/// [`Deadlock`](RetryReason::Deadlock), [`Busy`](RetryReason::Busy) and
/// [`ServerUnavailable`](RetryReason::ServerUnavailable). Pool exhaustion and the two timeouts are
/// opt-in with [`also_on`](Self::also_on) or [`on`](Self::on): retrying them adds load to a database
/// that is already overloaded. [`ErrorCategory::CommitUnknown`] is retried only for operations
/// declared [`idempotent`](Self::idempotent), since the first attempt may have committed.
///
/// Setters never panic: nonsensical values are corrected as each setter documents.
///
/// ```
/// use std::time::Duration;
/// use ops_core::{RetryPolicy, RetryReason, ErrorCategory};
///
/// let policy = RetryPolicy::new()
///     .attempts(5)
///     .initial(Duration::from_millis(20))
///     .max(Duration::from_secs(1))
///     .deadline(Duration::from_secs(10))
///     .also_on(RetryReason::LockTimeout);
/// assert!(policy.should_retry(ErrorCategory::Retryable(RetryReason::LockTimeout)));
/// assert!(!policy.should_retry(ErrorCategory::CommitUnknown));
/// assert_eq!(policy.backoff_cap(3), Duration::from_millis(80));
/// ```
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    attempts: u32,
    initial: Duration,
    max: Duration,
    multiplier: f64,
    jitter: bool,
    deadline: Option<Duration>,
    reasons: ReasonSet,
    idempotent: bool,
    warn_after: Option<u32>,
    recorder: Option<ErrorStatsRecorder>,
}

impl RetryPolicy {
    /// The default number of attempts, counting the first.
    pub const DEFAULT_ATTEMPTS: u32 = 3;
    /// The default cap of the first retry's delay.
    pub const DEFAULT_INITIAL: Duration = Duration::from_millis(50);
    /// The default largest delay.
    pub const DEFAULT_MAX: Duration = Duration::from_secs(2);
    /// The default growth of the delay cap from one retry to the next.
    pub const DEFAULT_MULTIPLIER: f64 = 2.0;
    /// The reasons retried by default.
    pub const DEFAULT_REASONS: [RetryReason; 5] = [
        RetryReason::ConnectionLost,
        RetryReason::SerializationFailure,
        RetryReason::Deadlock,
        RetryReason::Busy,
        RetryReason::ServerUnavailable,
    ];

    /// The default policy.
    pub const fn new() -> Self {
        let mut reasons = ReasonSet::EMPTY;
        let mut i = 0;
        while i < Self::DEFAULT_REASONS.len() {
            reasons = reasons.with(Self::DEFAULT_REASONS[i]);
            i += 1;
        }
        RetryPolicy {
            attempts: Self::DEFAULT_ATTEMPTS,
            initial: Self::DEFAULT_INITIAL,
            max: Self::DEFAULT_MAX,
            multiplier: Self::DEFAULT_MULTIPLIER,
            jitter: true,
            deadline: None,
            reasons,
            idempotent: false,
            warn_after: None,
            recorder: None,
        }
    }

    /// How many attempts to make in all, counting the first. `0` is treated as `1`: the operation
    /// always runs at least once.
    #[must_use]
    pub const fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = if attempts == 0 { 1 } else { attempts };
        self
    }

    /// The delay cap of the first retry. A value above [`max`](Self::max) is capped by it.
    #[must_use]
    pub const fn initial(mut self, initial: Duration) -> Self {
        self.initial = initial;
        self
    }

    /// The largest delay between two attempts.
    #[must_use]
    pub const fn max(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// How much the delay cap grows from one retry to the next. Values below `1.0` and NaN are
    /// treated as `1.0` (a constant cap); infinity makes every retry after the first wait up to
    /// [`max`](Self::max).
    #[must_use]
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = if multiplier >= 1.0 { multiplier } else { 1.0 };
        self
    }

    /// Whether to pick each delay at random between zero and the cap (the default), or to wait the
    /// cap exactly. Without jitter, clients that failed together retry together; turn it off for
    /// tests.
    #[must_use]
    pub const fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// An overall time limit, counted from the start of the first attempt: no attempt starts and no
    /// delay is waited past it; the loop gives up instead. It does not cancel an attempt already
    /// running; bound those with a session or statement timeout.
    ///
    /// It also decides what happens when an open circuit breaker refuses an attempt (the error's
    /// [`Categorize::retry_after`] is set): the loop waits out the breaker's cooldown when the
    /// deadline leaves room for it, and gives up at once otherwise. Without a deadline it never
    /// waits for a breaker: failing fast is what the breaker is for.
    #[must_use]
    pub const fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Retries exactly these reasons, replacing the set. An empty set retries no
    /// [`ErrorCategory::Retryable`] error.
    #[must_use]
    pub fn on(mut self, reasons: impl IntoIterator<Item = RetryReason>) -> Self {
        self.reasons = reasons.into_iter().fold(ReasonSet::EMPTY, ReasonSet::with);
        self
    }

    /// Retries this reason too.
    #[must_use]
    pub const fn also_on(mut self, reason: RetryReason) -> Self {
        self.reasons = self.reasons.with(reason);
        self
    }

    /// Declares the operation safe to run twice, so that [`ErrorCategory::CommitUnknown`] (a commit
    /// whose outcome is unknown) is retried too. Off by default.
    #[must_use]
    pub const fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    /// Logs one warning when this many attempts have failed and another follows, for contention
    /// that lasts longer than expected. Each retry is logged at debug level only, and running out
    /// of attempts is logged once at warn level whatever this says; without it (the default) an
    /// operation that succeeds after retrying logs nothing above debug. `0` is treated as `1`.
    #[must_use]
    pub const fn warn_after(mut self, attempts: u32) -> Self {
        self.warn_after = Some(if attempts == 0 { 1 } else { attempts });
        self
    }

    /// Counts retries, successes after retrying and exhaustion in these stats, and reports
    /// exhaustion as a critical event.
    #[must_use]
    pub fn recorder(mut self, recorder: ErrorStatsRecorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// How many attempts the policy makes at most, counting the first (at least 1).
    pub const fn max_attempts(&self) -> u32 {
        self.attempts
    }

    /// The overall deadline, if one is set.
    pub const fn overall_deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// Whether the operation was declared idempotent.
    pub const fn is_idempotent(&self) -> bool {
        self.idempotent
    }

    /// The stats the policy records into, if any.
    pub const fn stats_recorder(&self) -> Option<&ErrorStatsRecorder> {
        self.recorder.as_ref()
    }

    /// Whether an error in `category` is worth another attempt under this policy.
    ///
    /// Only [`ErrorCategory::Retryable`] errors whose reason is in the set, and
    /// [`ErrorCategory::CommitUnknown`] for idempotent operations. Integrity, programming,
    /// not-found, configuration and the other categories are never retried: another attempt gives
    /// the same answer.
    pub const fn should_retry(&self, category: ErrorCategory) -> bool {
        match category {
            ErrorCategory::Retryable(reason) => self.reasons.contains(reason),
            ErrorCategory::CommitUnknown => self.idempotent,
            _ => false,
        }
    }

    /// The largest delay before retry number `retry_number` (1 for the wait after the first
    /// attempt): `min(max, initial * multiplier^(retry_number - 1))`. `0` is treated as `1`.
    pub fn backoff_cap(&self, retry_number: u32) -> Duration {
        let exponent = i32::try_from(retry_number.saturating_sub(1)).unwrap_or(i32::MAX);
        // Nanoseconds in f64 are exact for every power-of-two multiple of a whole number of
        // milliseconds up to about 104 days, so the usual policies give exact caps.
        let nanos = self.initial.as_nanos() as f64 * self.multiplier.powi(exponent);
        if nanos.is_nan() || nanos >= self.max.as_nanos() as f64 || nanos >= u64::MAX as f64 {
            return self.max;
        }
        // `nanos` is finite, non-negative and below u64::MAX here, so the cast is exact up to
        // rounding.
        Duration::from_nanos(nanos.round() as u64).min(self.max)
    }

    /// The delay before retry number `retry_number`: the cap, or a random point in `[0, cap]`.
    fn delay(&self, retry_number: u32) -> Duration {
        let cap = self.backoff_cap(retry_number);
        if !self.jitter {
            return cap;
        }
        let cap_nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=cap_nanos))
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs `op` until it succeeds, fails with an error the policy does not retry, or the policy runs
/// out of attempts or time; returns the last result.
///
/// `op` receives the attempt number, starting at 1, and must start afresh each time (for a
/// database operation: a new session). Between attempts the loop sleeps with
/// [`tokio::time::sleep`]. Expected contention stays quiet: each retry is logged at debug level
/// with the error, and one warning is logged when the policy gives up (out of attempts or time)
/// or, with [`RetryPolicy::warn_after`], when the retries pass that many; an error the policy does
/// not retry is returned at once, logged at debug level only, since the caller handles it. The
/// counts are in the stats of the policy's [recorder](RetryPolicy::recorder) (a `Db`'s
/// `error_stats()` under `#[db_retry]`): retries by category, successes after retrying, and
/// exhaustion.
///
/// The success path allocates nothing and reads the clock only when a deadline is set.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use ops_core::{retry, Categorize, ErrorCategory, RetryPolicy, RetryReason};
///
/// #[derive(Debug)]
/// struct Conflict;
/// impl std::fmt::Display for Conflict {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("could not serialize access")
///     }
/// }
/// impl Categorize for Conflict {
///     fn category(&self) -> ErrorCategory {
///         ErrorCategory::Retryable(RetryReason::SerializationFailure)
///     }
/// }
///
/// let policy = RetryPolicy::new().initial(std::time::Duration::from_millis(1));
/// let value = retry(&policy, |attempt| async move {
///     if attempt < 2 { Err(Conflict) } else { Ok(attempt) }
/// })
/// .await;
/// assert_eq!(value.unwrap(), 2);
/// # }
/// ```
pub async fn retry<T, E, F, Fut>(policy: &RetryPolicy, mut op: F) -> Result<T, E>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Categorize + std::fmt::Display,
{
    let deadline = policy
        .deadline
        .map(|limit| Instant::now().checked_add(limit));
    let mut attempt: u32 = 1;
    // The category of the last failure, for the metrics of an operation that then succeeds.
    let mut last_failure = None;
    loop {
        let error = match op(attempt).await {
            Ok(value) => {
                if let Some(category) = last_failure {
                    crate::metrics::retry(category, RetryOutcome::Succeeded);
                    if let Some(recorder) = &policy.recorder {
                        recorder.record_retry_succeeded();
                    }
                }
                return Ok(value);
            }
            Err(error) => error,
        };

        let category = error.category();
        if let Some(wait) = error.retry_after() {
            // A circuit breaker refused the call: any attempt before it lets a probe through is
            // refused too, so wait for it when the deadline allows and give up otherwise.
            let wait = wait + Duration::from_millis(fastrand::u64(0..=BREAKER_JITTER_MS));
            let fits = match deadline {
                Some(Some(deadline)) => wait <= deadline.saturating_duration_since(Instant::now()),
                _ => false,
            };
            if attempt >= policy.attempts || !fits {
                tracing::warn!(
                    attempt,
                    %category,
                    error = %format_args!("{error:#}"),
                    ?wait,
                    "attempt {attempt} refused by an open circuit breaker for another {wait:?}: \
                     not retrying, {}",
                    if attempt >= policy.attempts {
                        "no attempts left"
                    } else if policy.deadline.is_some() {
                        "the retry deadline ends sooner"
                    } else {
                        "the policy has no deadline to wait within (set one to wait for the breaker)"
                    }
                );
                return Err(error);
            }
            tracing::warn!(
                attempt,
                attempts = policy.attempts,
                %category,
                error = %format_args!("{error:#}"),
                ?wait,
                "attempt {attempt}/{} refused by an open circuit breaker: waiting {wait:?} for it \
                 to let a probe through",
                policy.attempts
            );
            retried(policy, category);
            last_failure = Some(category);
            drop(error);
            tokio::time::sleep(wait).await;
            attempt += 1;
            continue;
        }
        if !policy.should_retry(category) {
            tracing::debug!(
                attempt,
                %category,
                error = %format_args!("{error:#}"),
                "attempt {attempt} failed with an error the policy does not retry ({category})"
            );
            return Err(error);
        }
        if attempt >= policy.attempts {
            give_up(policy, &error, category, attempt, GiveUp::OutOfAttempts);
            return Err(error);
        }

        let delay = policy.delay(attempt);
        // `Some(None)` is a deadline too far away to represent: no limit in practice.
        if let Some(Some(deadline)) = deadline {
            let now = Instant::now();
            if now >= deadline || delay > deadline - now {
                give_up(policy, &error, category, attempt, GiveUp::OutOfTime);
                return Err(error);
            }
        }

        if policy.warn_after == Some(attempt) {
            tracing::warn!(
                attempt,
                attempts = policy.attempts,
                %category,
                error = %format_args!("{error:#}"),
                "still failing after {attempt} attempts ({category}); trying up to {} in all",
                policy.attempts
            );
        } else {
            tracing::debug!(
                attempt,
                attempts = policy.attempts,
                %category,
                error = %format_args!("{error:#}"),
                ?delay,
                "attempt {attempt}/{} failed ({category}): retrying in {delay:?}",
                policy.attempts
            );
        }
        retried(policy, category);
        last_failure = Some(category);
        drop(error);
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

/// Counts the decision to try again after an error in `category`.
fn retried(policy: &RetryPolicy, category: ErrorCategory) {
    crate::metrics::retry(category, RetryOutcome::Retried);
    if let Some(recorder) = &policy.recorder {
        recorder.record_retry(category);
    }
}

/// The most a retry waiting for a circuit breaker adds to its cooldown, so the callers it refused
/// together do not all come back in the same millisecond.
const BREAKER_JITTER_MS: u64 = 50;

/// Why the loop stopped retrying an error it would otherwise retry.
#[derive(Clone, Copy)]
enum GiveUp {
    OutOfAttempts,
    OutOfTime,
}

#[cold]
fn give_up<E: Categorize + std::fmt::Display>(
    policy: &RetryPolicy,
    error: &E,
    category: ErrorCategory,
    attempts: u32,
    why: GiveUp,
) {
    match why {
        GiveUp::OutOfAttempts => tracing::warn!(
            attempts,
            %category,
            error = %format_args!("{error:#}"),
            "giving up after {attempts} attempt(s) ({category})"
        ),
        GiveUp::OutOfTime => tracing::warn!(
            attempts,
            %category,
            error = %format_args!("{error:#}"),
            deadline = ?policy.deadline,
            "giving up after {attempts} attempt(s) ({category}): the retry deadline of {:?} leaves no time for another attempt",
            policy.deadline.unwrap_or_default()
        ),
    }
    crate::metrics::retry(category, RetryOutcome::Exhausted);
    if let Some(recorder) = &policy.recorder {
        recorder.record_exhausted(category, error.code(), attempts, &error.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_caps_double_up_to_max() {
        let policy = RetryPolicy::new();
        let caps: Vec<_> = (1..=8).map(|n| policy.backoff_cap(n)).collect();
        let ms = Duration::from_millis;
        assert_eq!(
            caps,
            [
                ms(50),
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1600),
                ms(2000),
                ms(2000)
            ]
        );
        assert_eq!(policy.backoff_cap(0), ms(50));
        assert_eq!(policy.backoff_cap(u32::MAX), ms(2000));
    }

    #[test]
    fn nonsense_is_corrected_without_panicking() {
        let policy = RetryPolicy::new().attempts(0).multiplier(0.5);
        assert_eq!(policy.max_attempts(), 1);
        assert_eq!(policy.backoff_cap(5), Duration::from_millis(50));
        let policy = RetryPolicy::new().multiplier(f64::NAN);
        assert_eq!(policy.backoff_cap(5), Duration::from_millis(50));
        let policy = RetryPolicy::new().multiplier(f64::INFINITY);
        assert_eq!(policy.backoff_cap(1), Duration::from_millis(50));
        assert_eq!(policy.backoff_cap(2), Duration::from_secs(2));
        // An initial delay above the maximum is capped by it.
        let policy = RetryPolicy::new()
            .initial(Duration::from_secs(10))
            .max(Duration::from_secs(1));
        assert_eq!(policy.backoff_cap(1), Duration::from_secs(1));
        // Huge values saturate instead of overflowing.
        let policy = RetryPolicy::new()
            .initial(Duration::MAX)
            .max(Duration::MAX)
            .multiplier(1e300);
        assert_eq!(policy.backoff_cap(40), Duration::MAX);
        let _ = policy.jitter(true).delay(3);
        // A zero maximum waits not at all.
        let policy = RetryPolicy::new().max(Duration::ZERO);
        assert_eq!(policy.delay(3), Duration::ZERO);
    }

    /// An error refused by an open breaker with this much cooldown left.
    #[derive(Debug)]
    struct Refused(Duration);

    impl std::fmt::Display for Refused {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("circuit breaker open")
        }
    }

    impl Categorize for Refused {
        fn category(&self) -> ErrorCategory {
            ErrorCategory::Unavailable
        }
        fn retry_after(&self) -> Option<Duration> {
            Some(self.0)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_breaker_is_waited_for_only_within_the_deadline() {
        let calls = std::cell::Cell::new(0);
        let op = |attempt: u32| {
            calls.set(calls.get() + 1);
            async move {
                if attempt == 1 {
                    Err(Refused(Duration::from_secs(2)))
                } else {
                    Ok(attempt)
                }
            }
        };
        // No deadline: give up at once, no spinning.
        let started = Instant::now();
        assert!(retry(&RetryPolicy::new(), op).await.is_err());
        assert_eq!(calls.get(), 1);
        assert_eq!(started.elapsed(), Duration::ZERO);
        // A deadline too short for the cooldown: the same.
        calls.set(0);
        let short = RetryPolicy::new().deadline(Duration::from_secs(1));
        assert!(retry(&short, op).await.is_err());
        assert_eq!(calls.get(), 1);
        // A deadline with room: wait out the cooldown, then the next attempt goes through.
        calls.set(0);
        let started = Instant::now();
        let long = RetryPolicy::new().deadline(Duration::from_secs(5));
        assert_eq!(retry(&long, op).await.ok(), Some(2));
        assert_eq!(calls.get(), 2);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_secs(2), "{waited:?}");
        assert!(
            waited <= Duration::from_millis(2000 + BREAKER_JITTER_MS),
            "{waited:?}"
        );
    }

    #[test]
    fn reason_set_debug_lists_reasons() {
        let set = ReasonSet::EMPTY.with(RetryReason::Deadlock);
        assert_eq!(format!("{set:?}"), "{Deadlock}");
    }
}
