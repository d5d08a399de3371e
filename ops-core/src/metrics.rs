//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`).
//!
//! The names below are stable: dashboards and alerts are built on them. Labels have bounded
//! cardinality: a pool's name (`primary`, or `replica:<host>:<port>`), a session's name (the
//! function name of `#[managed_session]`, or the name given to `SessionOptions`), an entity and
//! an operation, an error category. Never SQL text, never a key value.
//!
//! Without the feature every function here is empty and compiles to nothing. With it and no
//! recorder installed, each event builds its key and hands it to the facade's no-op recorder.
//! Install any exporter (`metrics-exporter-prometheus`, an OpenTelemetry bridge) before the
//! first `Db` connects; the pool gauges are sampled once a second.
//!
//! The functions are for the integration crates (`ops-sea`); applications read the names.

#[cfg(feature = "metrics")]
use std::borrow::Cow;
use std::time::Duration;

use crate::ErrorCategory;

/// Gauge, label `pool`: connections open now, idle or in use.
pub const POOL_CONNECTIONS_OPEN: &str = "ops_pool_connections_open";
/// Gauge, label `pool`: connections idle in the pool.
pub const POOL_CONNECTIONS_IDLE: &str = "ops_pool_connections_idle";
/// Gauge, label `pool`: connections handed out to callers.
pub const POOL_CONNECTIONS_IN_USE: &str = "ops_pool_connections_in_use";
/// Gauge, label `pool`: the most connections the pool opens (`pool_size + max_overflow`).
pub const POOL_CONNECTIONS_MAX: &str = "ops_pool_connections_max";
/// Gauge, label `pool`: callers waiting for a connection now.
pub const POOL_WAITING: &str = "ops_pool_waiting";
/// Histogram in seconds, label `pool`: how long a caller waited for a connection, including
/// callers that gave up (a pool timeout) or were cancelled.
pub const POOL_ACQUIRE_SECONDS: &str = "ops_pool_acquire_seconds";
/// Counter, label `pool`: connections opened.
pub const POOL_OPENED: &str = "ops_pool_connections_opened_total";
/// Counter, label `pool`: connections closed (recycled, idle past the idle timeout, failed a
/// ping or a reset).
pub const POOL_CLOSED: &str = "ops_pool_connections_closed_total";
/// Counter, label `pool`: connections closed because they reached the recycle age
/// (`DB_POOL_RECYCLE`).
pub const POOL_RECYCLED: &str = "ops_pool_connections_recycled_total";
/// Counter, label `pool`: pings at checkout (after an idle spell or a disconnect) that failed.
pub const POOL_PING_FAILED: &str = "ops_pool_ping_failures_total";

/// Counter, label `session`: sessions opened.
pub const SESSIONS_OPENED: &str = "ops_sessions_opened_total";
/// Counter, label `session`: sessions committed.
pub const SESSIONS_COMMITTED: &str = "ops_sessions_committed_total";
/// Counter, label `session`: sessions rolled back (on error, panic, cancellation, timeout, or
/// explicitly).
pub const SESSIONS_ROLLED_BACK: &str = "ops_sessions_rolled_back_total";
/// Counter, label `session`: sessions dropped without commit or rollback (a leak the pool
/// cleaned up).
pub const SESSIONS_DROPPED: &str = "ops_sessions_dropped_unfinished_total";
/// Counter, label `session`: managed sessions that ran past their timeout.
pub const SESSIONS_TIMED_OUT: &str = "ops_sessions_timed_out_total";
/// Histogram in seconds, labels `session` and `outcome` (`committed`, `rolled_back`,
/// `dropped`): how long sessions stayed open.
pub const SESSION_SECONDS: &str = "ops_session_duration_seconds";
/// Gauge: sessions open now.
pub const SESSIONS_ACTIVE: &str = "ops_sessions_active";
/// Gauge: sessions open longer than the leak threshold (`DB_LEAK_THRESHOLD`) now.
pub const SESSIONS_LONG_RUNNING: &str = "ops_sessions_long_running";

/// Histogram in seconds, labels `entity`, `operation` and `outcome` (`ok`, `error`): repository
/// calls.
pub const STATEMENT_SECONDS: &str = "ops_statement_duration_seconds";
/// Counter, labels `entity` and `operation` (empty for SQL outside a repository): statements
/// slower than `DB_SLOW_STATEMENT`.
pub const SLOW_STATEMENTS: &str = "ops_slow_statements_total";

/// Counter, label `category` (as in `ErrorStats::by_category`: `retryable(deadlock)`,
/// `integrity(unique)`, `not_found`, ...): errors.
pub const ERRORS: &str = "ops_errors_total";
/// Counter, labels `category` and `outcome`: `retried` for each attempt after a failure,
/// `succeeded` once for an operation that succeeded after retrying (with the category of its
/// last failure), `exhausted` once for an operation that gave up.
pub const RETRIES: &str = "ops_retries_total";
/// Counter, label `kind` (`unavailable`, `commit_unknown`, `retries_exhausted`,
/// `breaker_opened`, `breaker_closed`): critical events, the ones that need a person.
pub const CRITICAL: &str = "ops_critical_events_total";

/// How a retried operation ended, for [`RETRIES`].
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub enum RetryOutcome {
    Retried,
    Succeeded,
    Exhausted,
}

#[allow(
    clippy::ptr_arg,
    reason = "a borrowed name becomes a label without allocating; only a `Cow` can tell"
)]
#[cfg(feature = "metrics")]
fn label(value: &Cow<'static, str>) -> metrics::SharedString {
    match value {
        Cow::Borrowed(s) => metrics::SharedString::const_str(s),
        Cow::Owned(s) => metrics::SharedString::from(s.clone()),
    }
}

#[doc(hidden)]
/// Describes every metric to the installed recorder (units and help text in Prometheus output).
/// Called when a `Db` connects; describing twice is harmless.
pub fn describe() {
    #[cfg(feature = "metrics")]
    {
        use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
        describe_gauge!(
            POOL_CONNECTIONS_OPEN,
            "Connections open now, idle or in use."
        );
        describe_gauge!(POOL_CONNECTIONS_IDLE, "Connections idle in the pool.");
        describe_gauge!(
            POOL_CONNECTIONS_IN_USE,
            "Connections handed out to callers."
        );
        describe_gauge!(POOL_CONNECTIONS_MAX, "The most connections the pool opens.");
        describe_gauge!(POOL_WAITING, "Callers waiting for a connection.");
        describe_histogram!(
            POOL_ACQUIRE_SECONDS,
            Unit::Seconds,
            "How long a caller waited for a connection."
        );
        describe_counter!(POOL_OPENED, "Connections opened.");
        describe_counter!(POOL_CLOSED, "Connections closed.");
        describe_counter!(POOL_RECYCLED, "Connections closed at the recycle age.");
        describe_counter!(POOL_PING_FAILED, "Pings at checkout that failed.");
        describe_counter!(SESSIONS_OPENED, "Sessions opened.");
        describe_counter!(SESSIONS_COMMITTED, "Sessions committed.");
        describe_counter!(SESSIONS_ROLLED_BACK, "Sessions rolled back.");
        describe_counter!(
            SESSIONS_DROPPED,
            "Sessions dropped without commit or rollback."
        );
        describe_counter!(SESSIONS_TIMED_OUT, "Managed sessions past their timeout.");
        describe_histogram!(
            SESSION_SECONDS,
            Unit::Seconds,
            "How long sessions stayed open."
        );
        describe_gauge!(SESSIONS_ACTIVE, "Sessions open now.");
        describe_gauge!(
            SESSIONS_LONG_RUNNING,
            "Sessions open past the leak threshold."
        );
        describe_histogram!(STATEMENT_SECONDS, Unit::Seconds, "Repository calls.");
        describe_counter!(SLOW_STATEMENTS, "Statements slower than DB_SLOW_STATEMENT.");
        describe_counter!(ERRORS, "Database errors by category.");
        describe_counter!(RETRIES, "Retries by category and outcome.");
        describe_counter!(CRITICAL, "Critical database events.");
    }
}

/// A session was opened.
#[allow(
    clippy::ptr_arg,
    reason = "a borrowed name becomes a label without allocating; only a `Cow` can tell"
)]
#[doc(hidden)]
#[inline]
pub fn session_opened(name: &std::borrow::Cow<'static, str>) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!(SESSIONS_OPENED, "session" => label(name)).increment(1);
        metrics::gauge!(SESSIONS_ACTIVE).increment(1.0);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = name;
}

/// How a session ended, for [`session_ended`].
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub enum SessionEnd {
    Committed,
    RolledBack,
    Dropped,
}

/// A session ended.
#[allow(
    clippy::ptr_arg,
    reason = "a borrowed name becomes a label without allocating; only a `Cow` can tell"
)]
#[doc(hidden)]
#[inline]
pub fn session_ended(name: &std::borrow::Cow<'static, str>, end: SessionEnd, open_for: Duration) {
    #[cfg(feature = "metrics")]
    {
        let (counter, outcome) = match end {
            SessionEnd::Committed => (SESSIONS_COMMITTED, "committed"),
            SessionEnd::RolledBack => (SESSIONS_ROLLED_BACK, "rolled_back"),
            SessionEnd::Dropped => (SESSIONS_DROPPED, "dropped"),
        };
        metrics::counter!(counter, "session" => label(name)).increment(1);
        metrics::histogram!(SESSION_SECONDS, "session" => label(name), "outcome" => outcome)
            .record(open_for.as_secs_f64());
        metrics::gauge!(SESSIONS_ACTIVE).decrement(1.0);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (name, end, open_for);
}

/// A managed session ran past its timeout.
#[doc(hidden)]
#[inline]
pub fn session_timed_out(name: &str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(SESSIONS_TIMED_OUT, "session" => name.to_owned()).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = name;
}

/// Sessions open past the leak threshold now.
#[doc(hidden)]
#[inline]
pub fn sessions_long_running(count: usize) {
    #[cfg(feature = "metrics")]
    metrics::gauge!(SESSIONS_LONG_RUNNING).set(count as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = count;
}

/// A repository call finished.
#[doc(hidden)]
#[inline]
pub fn statement(entity: &'static str, operation: &'static str, ok: bool, took: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(
        STATEMENT_SECONDS,
        "entity" => entity,
        "operation" => operation,
        "outcome" => if ok { "ok" } else { "error" },
    )
    .record(took.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = (entity, operation, ok, took);
}

/// A statement was slower than the slow-statement threshold.
#[doc(hidden)]
#[inline]
pub fn slow_statement(entity: &'static str, operation: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(SLOW_STATEMENTS, "entity" => entity, "operation" => operation).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (entity, operation);
}

/// An error was recorded.
#[doc(hidden)]
#[inline]
pub fn error(category: ErrorCategory) {
    #[cfg(feature = "metrics")]
    metrics::counter!(ERRORS, "category" => category.to_string()).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = category;
}

/// A retry decision or a retried operation's end.
#[doc(hidden)]
#[inline]
pub fn retry(category: ErrorCategory, outcome: RetryOutcome) {
    #[cfg(feature = "metrics")]
    {
        let outcome = match outcome {
            RetryOutcome::Retried => "retried",
            RetryOutcome::Succeeded => "succeeded",
            RetryOutcome::Exhausted => "exhausted",
        };
        metrics::counter!(RETRIES, "category" => category.to_string(), "outcome" => outcome)
            .increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (category, outcome);
}

/// A critical event, by its kind's name (`CriticalKind::as_str`).
#[doc(hidden)]
#[inline]
pub fn critical(kind: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(CRITICAL, "kind" => kind).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = kind;
}

/// One pool's instruments, built once per pool so events pay no key building.
///
/// Handles registered before a recorder is installed stay no-ops: install the recorder before
/// the first `Db` connects.
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct PoolMetrics {
    name: std::sync::Arc<str>,
    #[cfg(feature = "metrics")]
    handles: std::sync::Arc<PoolHandles>,
}

#[cfg(feature = "metrics")]
#[derive(Debug)]
struct PoolHandles {
    open: metrics::Gauge,
    idle: metrics::Gauge,
    in_use: metrics::Gauge,
    max: metrics::Gauge,
    waiting: metrics::Gauge,
    acquire: metrics::Histogram,
    opened: metrics::Counter,
    closed: metrics::Counter,
    recycled: metrics::Counter,
    ping_failed: metrics::Counter,
    /// Connections opened so far, and closes reported so far: a pool does not report its
    /// closes, so they are derived at each sample as opened minus open.
    opened_count: std::sync::atomic::AtomicU64,
    closed_reported: std::sync::atomic::AtomicU64,
}

impl PoolMetrics {
    /// The instruments of the pool named `name` (`primary`, `replica:<host>:<port>`).
    pub fn new(name: impl Into<std::sync::Arc<str>>) -> Self {
        let name = name.into();
        #[cfg(feature = "metrics")]
        let handles = {
            let pool = || ("pool", name.to_string());
            std::sync::Arc::new(PoolHandles {
                open: metrics::gauge!(POOL_CONNECTIONS_OPEN, &[pool()]),
                idle: metrics::gauge!(POOL_CONNECTIONS_IDLE, &[pool()]),
                in_use: metrics::gauge!(POOL_CONNECTIONS_IN_USE, &[pool()]),
                max: metrics::gauge!(POOL_CONNECTIONS_MAX, &[pool()]),
                waiting: metrics::gauge!(POOL_WAITING, &[pool()]),
                acquire: metrics::histogram!(POOL_ACQUIRE_SECONDS, &[pool()]),
                opened: metrics::counter!(POOL_OPENED, &[pool()]),
                closed: metrics::counter!(POOL_CLOSED, &[pool()]),
                recycled: metrics::counter!(POOL_RECYCLED, &[pool()]),
                ping_failed: metrics::counter!(POOL_PING_FAILED, &[pool()]),
                opened_count: std::sync::atomic::AtomicU64::new(0),
                closed_reported: std::sync::atomic::AtomicU64::new(0),
            })
        };
        PoolMetrics {
            name,
            #[cfg(feature = "metrics")]
            handles,
        }
    }

    /// The pool's name, its `pool` label.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the gauges from a reading of the pool, and counts the connections closed since the
    /// last reading (every connection opened and no longer open).
    #[inline]
    pub fn sample(&self, open: u32, idle: u32, max: u32) {
        #[cfg(feature = "metrics")]
        {
            use std::sync::atomic::Ordering;
            let h = &self.handles;
            h.open.set(f64::from(open));
            h.idle.set(f64::from(idle));
            h.in_use.set(f64::from(open.saturating_sub(idle)));
            h.max.set(f64::from(max));
            // A connection being opened is counted open before it is counted opened, so the
            // difference can dip; only its new highs are closes.
            let closed = h
                .opened_count
                .load(Ordering::Relaxed)
                .saturating_sub(u64::from(open));
            let before = h.closed_reported.fetch_max(closed, Ordering::Relaxed);
            if closed > before {
                h.closed.increment(closed - before);
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (open, idle, max);
    }

    /// A caller started waiting for a connection.
    #[inline]
    pub fn wait_started(&self) {
        #[cfg(feature = "metrics")]
        self.handles.waiting.increment(1.0);
    }

    /// A caller stopped waiting after `waited`: with a connection, or giving up.
    #[inline]
    pub fn wait_ended(&self, waited: Duration) {
        #[cfg(feature = "metrics")]
        {
            self.handles.waiting.decrement(1.0);
            self.handles.acquire.record(waited.as_secs_f64());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = waited;
    }

    /// A connection was opened.
    #[inline]
    pub fn opened(&self) {
        #[cfg(feature = "metrics")]
        {
            let h = &self.handles;
            h.opened_count
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            h.opened.increment(1);
        }
    }

    /// A connection is being closed because it reached the recycle age (it is counted in the
    /// closes at the next sample).
    #[inline]
    pub fn recycled(&self) {
        #[cfg(feature = "metrics")]
        self.handles.recycled.increment(1);
    }

    /// A ping at checkout failed.
    #[inline]
    pub fn ping_failed(&self) {
        #[cfg(feature = "metrics")]
        self.handles.ping_failed.increment(1);
    }
}
