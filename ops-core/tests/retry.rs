//! The retry loop on tokio's paused clock: backoff, jitter, deadline, which categories are retried,
//! what is logged, and what is recorded in the stats.

mod support;

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ops_core::stats::{CriticalKind, ErrorStatsRecorder};
use ops_core::{Categorize, ErrorCategory, IntegrityKind, RetryPolicy, RetryReason, retry};
use tokio::time::Instant;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

const DEADLOCK: ErrorCategory = ErrorCategory::Retryable(RetryReason::Deadlock);

#[derive(Debug)]
struct TestError(ErrorCategory);

impl fmt::Display for TestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "test error in {}", self.0)
    }
}

impl Categorize for TestError {
    fn category(&self) -> ErrorCategory {
        self.0
    }
    fn code(&self) -> Option<&str> {
        Some("40P01")
    }
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// Runs `policy` against an operation that fails with `category` on every attempt below
/// `succeed_at` (never, for `u32::MAX`) and returns the result, the attempt numbers seen and when
/// each attempt started, relative to the first.
async fn run(
    policy: &RetryPolicy,
    category: ErrorCategory,
    succeed_at: u32,
) -> (Result<u32, TestError>, Vec<u32>, Vec<Duration>) {
    let start = Instant::now();
    let seen = Mutex::new(Vec::new());
    let result = retry(policy, |attempt| {
        seen.lock().unwrap().push((attempt, start.elapsed()));
        async move {
            if attempt >= succeed_at {
                Ok(attempt)
            } else {
                Err(TestError(category))
            }
        }
    })
    .await;
    let seen = seen.into_inner().unwrap();
    (
        result,
        seen.iter().map(|(n, _)| *n).collect(),
        seen.iter().map(|(_, at)| *at).collect(),
    )
}

#[tokio::test(start_paused = true)]
async fn backoff_without_jitter_is_exact() {
    let policy = RetryPolicy::new().attempts(5).jitter(false);
    let (result, attempts, starts) = run(&policy, DEADLOCK, u32::MAX).await;
    assert!(result.is_err());
    assert_eq!(attempts, [1, 2, 3, 4, 5]);
    assert_eq!(starts, [ms(0), ms(50), ms(150), ms(350), ms(750)]);
}

#[tokio::test(start_paused = true)]
async fn backoff_respects_initial_multiplier_and_max() {
    let policy = RetryPolicy::new()
        .attempts(6)
        .jitter(false)
        .initial(ms(10))
        .multiplier(3.0)
        .max(ms(200));
    let (_, _, starts) = run(&policy, DEADLOCK, u32::MAX).await;
    let gaps: Vec<_> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps, [ms(10), ms(30), ms(90), ms(200), ms(200)]);
}

#[tokio::test(start_paused = true)]
async fn jittered_delays_stay_within_the_cap() {
    let policy = RetryPolicy::new().attempts(8);
    let mut gaps = Vec::new();
    for _ in 0..20 {
        let (_, _, starts) = run(&policy, DEADLOCK, u32::MAX).await;
        for (retry, pair) in starts.windows(2).enumerate() {
            let gap = pair[1] - pair[0];
            let cap = policy.backoff_cap(retry as u32 + 1);
            assert!(
                gap <= cap,
                "retry {} waited {gap:?}, over {cap:?}",
                retry + 1
            );
            gaps.push(gap);
        }
    }
    // 140 draws over ranges of 50 ms and more: identical delays everywhere would mean no jitter.
    gaps.sort();
    gaps.dedup();
    assert!(gaps.len() > 10, "too few distinct delays: {gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn deadline_stops_before_a_sleep_would_pass_it() {
    let policy = RetryPolicy::new()
        .attempts(10)
        .jitter(false)
        .initial(ms(100))
        .deadline(ms(500));
    let start = Instant::now();
    let (result, attempts, starts) = run(&policy, DEADLOCK, u32::MAX).await;
    assert!(result.is_err());
    // Attempts at 0, 100 and 300 ms; the next wait (400 ms) would end at 700 ms, past the deadline.
    assert_eq!(attempts, [1, 2, 3]);
    assert_eq!(starts, [ms(0), ms(100), ms(300)]);
    assert_eq!(start.elapsed(), ms(300), "gave up without sleeping");
}

#[tokio::test(start_paused = true)]
async fn deadline_counts_time_spent_in_attempts() {
    let policy = RetryPolicy::new()
        .attempts(10)
        .jitter(false)
        .initial(ms(50))
        .multiplier(1.0)
        .deadline(ms(1000));
    let start = Instant::now();
    let calls = AtomicU32::new(0);
    let result: Result<(), TestError> = retry(&policy, |_| {
        calls.fetch_add(1, Ordering::Relaxed);
        async {
            tokio::time::sleep(ms(300)).await;
            Err(TestError(DEADLOCK))
        }
    })
    .await;
    assert!(result.is_err());
    // Attempts start at 0, 350 and 700 ms; the third ends at 1000 ms, with no time left to wait.
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    assert_eq!(start.elapsed(), ms(1000));
}

#[tokio::test(start_paused = true)]
async fn attempts_are_counted_exactly() {
    for limit in [1, 2, 3, 7] {
        let policy = RetryPolicy::new().attempts(limit);
        let calls = AtomicU32::new(0);
        let result: Result<(), TestError> = retry(&policy, |_| {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err(TestError(DEADLOCK)) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::Relaxed), limit);
    }
    // Zero attempts still runs the operation once.
    let policy = RetryPolicy::new().attempts(0);
    let (_, attempts, _) = run(&policy, DEADLOCK, u32::MAX).await;
    assert_eq!(attempts, [1]);
}

#[tokio::test(start_paused = true)]
async fn success_after_failures_returns_the_value() {
    let policy = RetryPolicy::new().attempts(5);
    let (result, attempts, _) = run(&policy, DEADLOCK, 3).await;
    assert_eq!(result.unwrap(), 3);
    assert_eq!(attempts, [1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_attempted_once() {
    let policy = RetryPolicy::new().attempts(5).idempotent(true);
    for category in [
        ErrorCategory::Integrity(IntegrityKind::Unique),
        ErrorCategory::Integrity(IntegrityKind::ForeignKey),
        ErrorCategory::Programming,
        ErrorCategory::NotFound,
        ErrorCategory::MultipleResults,
        ErrorCategory::Configuration,
        ErrorCategory::Unavailable,
        ErrorCategory::Other,
    ] {
        assert!(!policy.should_retry(category), "{category}");
        let start = Instant::now();
        let (result, attempts, _) = run(&policy, category, u32::MAX).await;
        assert_eq!(result.unwrap_err().0, category);
        assert_eq!(attempts, [1], "{category}");
        assert_eq!(start.elapsed(), Duration::ZERO, "{category} slept");
    }
}

#[tokio::test(start_paused = true)]
async fn commit_unknown_is_retried_only_when_idempotent() {
    let policy = RetryPolicy::new();
    let (_, attempts, _) = run(&policy, ErrorCategory::CommitUnknown, u32::MAX).await;
    assert_eq!(attempts, [1]);

    let policy = RetryPolicy::new().idempotent(true);
    assert!(policy.is_idempotent());
    let (_, attempts, _) = run(&policy, ErrorCategory::CommitUnknown, u32::MAX).await;
    assert_eq!(attempts, [1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn default_reasons_and_opt_in_reasons() {
    let policy = RetryPolicy::new();
    for reason in RetryPolicy::DEFAULT_REASONS {
        assert!(
            policy.should_retry(ErrorCategory::Retryable(reason)),
            "{reason}"
        );
    }
    for reason in [
        RetryReason::PoolExhausted,
        RetryReason::LockTimeout,
        RetryReason::StatementTimeout,
    ] {
        let category = ErrorCategory::Retryable(reason);
        assert!(!policy.should_retry(category), "{reason}");
        let (_, attempts, _) = run(&policy, category, u32::MAX).await;
        assert_eq!(attempts, [1], "{reason} is opt-in");

        let opted = RetryPolicy::new().also_on(reason);
        let (_, attempts, _) = run(&opted, category, u32::MAX).await;
        assert_eq!(attempts, [1, 2, 3], "{reason} after also_on");
        assert!(opted.should_retry(DEADLOCK), "also_on keeps the defaults");
    }

    // `on` replaces the set.
    let only_pool = RetryPolicy::new().on([RetryReason::PoolExhausted]);
    assert!(only_pool.should_retry(ErrorCategory::Retryable(RetryReason::PoolExhausted)));
    assert!(!only_pool.should_retry(DEADLOCK));
    let (_, attempts, _) = run(&only_pool, DEADLOCK, u32::MAX).await;
    assert_eq!(attempts, [1]);

    let nothing = RetryPolicy::new().on([]);
    for reason in RetryReason::ALL {
        assert!(!nothing.should_retry(ErrorCategory::Retryable(reason)));
    }
}

#[tokio::test(start_paused = true)]
async fn retry_future_is_send() {
    let policy = RetryPolicy::new().jitter(false);
    let handle = tokio::spawn(async move { run(&policy, DEADLOCK, 2).await.0.unwrap() });
    assert_eq!(handle.await.unwrap(), 2);
}

/// One captured log event: its level, its message and its `error` field.
#[derive(Clone, Debug)]
struct Line {
    level: Level,
    message: String,
    error: Option<String>,
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Line>>>);

impl Capture {
    fn lines(&self, level: Level) -> Vec<Line> {
        let lines = self.0.lock().unwrap();
        lines.iter().filter(|l| l.level == level).cloned().collect()
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    error: Option<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "error" => self.error = Some(format!("{value:?}")),
            _ => {}
        }
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        // Only the retry engine's own lines.
        if !event.metadata().target().starts_with("ops_core::retry") {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.0.lock().unwrap().push(Line {
            level: *event.metadata().level(),
            message: fields.message,
            error: fields.error,
        });
    }
}

fn capture() -> (Capture, support::Routed) {
    let capture = Capture::default();
    let guard = support::route(capture.clone());
    (capture, guard)
}

#[tokio::test(start_paused = true)]
async fn retries_log_at_debug_and_success_warns_nothing() {
    let (logs, _guard) = capture();
    let policy = RetryPolicy::new().jitter(false);
    let (result, _, _) = run(&policy, DEADLOCK, 3).await;
    assert_eq!(result.unwrap(), 3);

    let debugs = logs.lines(Level::DEBUG);
    let messages: Vec<_> = debugs.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "attempt 1/3 failed (retryable(deadlock)): retrying in 50ms",
            "attempt 2/3 failed (retryable(deadlock)): retrying in 100ms",
        ]
    );
    for line in &debugs {
        assert_eq!(
            line.error.as_deref(),
            Some("test error in retryable(deadlock)")
        );
    }
    assert!(
        logs.lines(Level::WARN).is_empty(),
        "expected contention that resolves is not a warning"
    );
    assert!(logs.lines(Level::ERROR).is_empty(), "success logs no error");
}

#[tokio::test(start_paused = true)]
async fn a_threshold_warns_once_when_crossed() {
    let (logs, _guard) = capture();
    let policy = RetryPolicy::new().attempts(6).jitter(false).warn_after(2);
    let (result, _, _) = run(&policy, DEADLOCK, 5).await;
    assert_eq!(result.unwrap(), 5);
    let warns = logs.lines(Level::WARN);
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert_eq!(
        warns[0].message,
        "still failing after 2 attempts (retryable(deadlock)); trying up to 6 in all"
    );
    assert_eq!(logs.lines(Level::DEBUG).len(), 3, "the other retries");
}

#[tokio::test(start_paused = true)]
async fn giving_up_logs_one_warning() {
    let (logs, _guard) = capture();
    let policy = RetryPolicy::new().jitter(false);
    let (result, _, _) = run(&policy, DEADLOCK, u32::MAX).await;
    assert!(result.is_err());

    let warns = logs.lines(Level::WARN);
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert_eq!(
        warns[0].message,
        "giving up after 3 attempt(s) (retryable(deadlock))"
    );
    assert_eq!(
        warns[0].error.as_deref(),
        Some("test error in retryable(deadlock)")
    );
    assert!(logs.lines(Level::ERROR).is_empty());
}

#[tokio::test(start_paused = true)]
async fn giving_up_at_the_deadline_logs_one_warning() {
    let (logs, _guard) = capture();
    let policy = RetryPolicy::new()
        .attempts(10)
        .jitter(false)
        .deadline(ms(120));
    let (result, attempts, _) = run(&policy, DEADLOCK, u32::MAX).await;
    assert!(result.is_err());
    // Waits of 50 and 100 ms: the second would end at 150 ms.
    assert_eq!(attempts, [1, 2]);

    let warns = logs.lines(Level::WARN);
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert!(
        warns[0].message.starts_with(
            "giving up after 2 attempt(s) (retryable(deadlock)): the retry deadline of 120ms"
        ),
        "{}",
        warns[0].message
    );
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_log_neither_warn_nor_error() {
    let (logs, _guard) = capture();
    let policy = RetryPolicy::new();
    let (result, _, _) = run(&policy, ErrorCategory::Programming, u32::MAX).await;
    assert!(result.is_err());
    assert!(logs.lines(Level::WARN).is_empty());
    assert!(logs.lines(Level::ERROR).is_empty());
}

#[tokio::test(start_paused = true)]
async fn recorder_counts_retries_success_and_exhaustion() {
    let stats = ErrorStatsRecorder::default();
    let policy = RetryPolicy::new().recorder(stats.clone());

    // First-attempt success records nothing.
    let (result, _, _) = run(&policy, DEADLOCK, 1).await;
    assert_eq!(result.unwrap(), 1);
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.retries_attempted, 0);
    assert_eq!(snapshot.retries_succeeded, 0);

    // Success on the third attempt: two retries, one success.
    run(&policy, DEADLOCK, 3).await.0.unwrap();
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.retries_attempted, 2);
    assert_eq!(
        snapshot.retries_by_category[&ErrorCategory::Retryable(RetryReason::Deadlock)],
        2
    );
    assert_eq!(snapshot.retries_succeeded, 1);
    assert_eq!(snapshot.retries_exhausted, 0);

    // Exhaustion: two more retries and one critical event.
    assert!(run(&policy, DEADLOCK, u32::MAX).await.0.is_err());
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.retries_attempted, 4);
    assert_eq!(snapshot.retries_succeeded, 1);
    assert_eq!(snapshot.retries_exhausted, 1);
    assert_eq!(snapshot.recent_critical.len(), 1);
    let event = &snapshot.recent_critical[0];
    assert_eq!(event.kind, CriticalKind::RetriesExhausted);
    assert_eq!(event.category, DEADLOCK);
    assert_eq!(event.attempts, Some(3));
    assert_eq!(event.code.as_deref(), Some("40P01"));
    assert_eq!(event.detail, "test error in retryable(deadlock)");

    // A permanent error is neither a retry nor an exhaustion; the error itself is recorded by the
    // integration where it happened, not by the retry loop.
    assert!(
        run(&policy, ErrorCategory::Programming, u32::MAX)
            .await
            .0
            .is_err()
    );
    let after = stats.snapshot();
    assert_eq!(after.retries_attempted, 4);
    assert_eq!(after.retries_exhausted, 1);
    assert_eq!(after.total, 0);
}
