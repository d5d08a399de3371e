//! Error stats: counts by category and code, retries, recent errors and the critical-error hook.
//!
//! An [`ErrorStatsRecorder`] is shared by a `Db`, its sessions and its retries. Recording is cheap:
//! totals are atomics, the maps and the rings of recent errors sit behind one short-lived mutex that
//! is never held across anything slow, and hooks for critical events run on a dedicated thread so
//! that a slow or panicking hook never reaches the code that recorded the error.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::time::SystemTime;

use crate::ErrorCategory;

/// How many recent errors a recorder keeps; older ones are dropped first.
pub const RECENT_ERRORS: usize = 50;

/// How many recent critical events a recorder keeps; older ones are dropped first.
pub const RECENT_CRITICAL: usize = 50;

/// How many characters of an error's detail a recorder keeps; longer details are cut and end in `…`.
pub const DETAIL_CHARS: usize = 500;

/// How many critical events may wait for the hook thread before new ones are dropped (and counted
/// in [`ErrorStats::critical_dropped`]). A bound keeps a hook that stalls from growing memory
/// without limit while the database is failing.
const HOOK_QUEUE: usize = 1024;

/// What made an event critical.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum CriticalKind {
    /// The database could not be reached at all, or the pool is closed.
    Unavailable,
    /// A commit's outcome is unknown: the connection was lost while it was in flight.
    CommitUnknown,
    /// A retried operation failed on its last allowed attempt, or ran out of time.
    RetriesExhausted,
    /// A pool's circuit breaker opened: calls to that database fail at once for the cooldown.
    BreakerOpened,
    /// A pool's circuit breaker closed again: a probe reached the database.
    BreakerClosed,
}

impl CriticalKind {
    /// A stable snake_case name, used in logs and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            CriticalKind::Unavailable => "unavailable",
            CriticalKind::CommitUnknown => "commit_unknown",
            CriticalKind::RetriesExhausted => "retries_exhausted",
            CriticalKind::BreakerOpened => "breaker_opened",
            CriticalKind::BreakerClosed => "breaker_closed",
        }
    }
}

impl fmt::Display for CriticalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event that needs a person: see [`ErrorStatsRecorder::on_critical`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct CriticalEvent {
    /// What made the event critical.
    pub kind: CriticalKind,
    /// The category of the error behind the event (for exhausted retries, the last attempt's).
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serialize::category")
    )]
    pub category: ErrorCategory,
    /// The backend's code, when known.
    pub code: Option<String>,
    /// The error's text, cut to [`DETAIL_CHARS`] characters.
    pub detail: String,
    /// When the event was recorded (serialized as Unix milliseconds).
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serialize::system_time")
    )]
    pub at: SystemTime,
    /// For [`CriticalKind::RetriesExhausted`], how many attempts were made.
    pub attempts: Option<u32>,
}

/// One recorded error, kept in the ring of recent errors.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RecentError {
    /// When the error was recorded (serialized as Unix milliseconds).
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serialize::system_time")
    )]
    pub at: SystemTime,
    /// The error's category (serialized as its display form, `retryable(deadlock)`).
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serialize::category")
    )]
    pub category: ErrorCategory,
    /// The backend's code, when known.
    pub code: Option<String>,
    /// The error's text, cut to [`DETAIL_CHARS`] characters.
    pub detail: String,
}

/// A snapshot of error stats, from `db.error_stats()` or [`ErrorStatsRecorder::snapshot`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ErrorStats {
    /// Errors recorded since start.
    pub total: u64,
    /// Errors by category. With the `serde` feature each key serializes as the category's display
    /// form (`retryable(deadlock)`, `not_found`).
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serialize::category_map")
    )]
    pub by_category: BTreeMap<ErrorCategory, u64>,
    /// Errors by backend code (SQLSTATE, MySQL error number, SQLite extended code).
    pub by_code: BTreeMap<String, u64>,
    /// Retries started (each attempt after the first counts once).
    pub retries_attempted: u64,
    /// Retries by the category of the error that caused them, keyed like `by_category`.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serialize::category_map")
    )]
    pub retries_by_category: BTreeMap<ErrorCategory, u64>,
    /// Retried operations that finally succeeded.
    pub retries_succeeded: u64,
    /// Retried operations that gave up: out of attempts or out of time.
    pub retries_exhausted: u64,
    /// Critical events not delivered to hooks because the hook thread was too far behind.
    pub critical_dropped: u64,
    /// The last [`RECENT_ERRORS`] errors, newest last.
    pub recent: Vec<RecentError>,
    /// The last [`RECENT_CRITICAL`] critical events, newest last.
    pub recent_critical: Vec<CriticalEvent>,
    /// Times a circuit breaker of this database (the primary's or a replica's) opened.
    pub breaker_opened: u64,
    /// Calls refused at once by an open circuit breaker. They are not counted in `total` or
    /// `by_category`: each would otherwise be an `unavailable` error and a critical event, and a
    /// minute's outage would flood both.
    pub breaker_rejected: u64,
    /// Statements slower than the slow-statement threshold (`DB_SLOW_STATEMENT`); they are not
    /// errors and are not counted in `total`.
    pub slow_statements: u64,
    /// The primary's circuit breaker now; `None` when it is turned off (filled in by the `Db`).
    pub breaker: Option<crate::breaker::BreakerStatus>,
}

/// The shared recorder a `Db` and its retries write into.
///
/// A cheap handle: clones share the same counters. `Default` gives an empty recorder.
///
/// ```
/// use ops_core::stats::ErrorStatsRecorder;
/// use ops_core::{ErrorCategory, RetryReason};
///
/// let stats = ErrorStatsRecorder::default();
/// stats.record(ErrorCategory::Retryable(RetryReason::Deadlock), Some("40P01"), "deadlock detected");
/// let snapshot = stats.snapshot();
/// assert_eq!(snapshot.total, 1);
/// assert_eq!(snapshot.by_category[&ErrorCategory::Retryable(RetryReason::Deadlock)], 1);
/// assert_eq!(snapshot.by_code["40P01"], 1);
/// ```
#[derive(Clone, Default)]
pub struct ErrorStatsRecorder {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    total: AtomicU64,
    retries_attempted: AtomicU64,
    retries_succeeded: AtomicU64,
    retries_exhausted: AtomicU64,
    critical_dropped: AtomicU64,
    breaker_opened: AtomicU64,
    breaker_rejected: AtomicU64,
    slow_statements: AtomicU64,
    tables: Mutex<Tables>,
    /// Started with the first hook; recorders without hooks never start a thread.
    dispatcher: OnceLock<Dispatcher>,
}

#[derive(Default)]
struct Tables {
    by_category: HashMap<ErrorCategory, u64>,
    by_code: HashMap<String, u64>,
    retries_by_category: HashMap<ErrorCategory, u64>,
    recent: VecDeque<RecentError>,
    recent_critical: VecDeque<CriticalEvent>,
}

type Hook = Arc<dyn Fn(&CriticalEvent) + Send + Sync + 'static>;

/// The sending half of the hook thread. Dropping it (with the last recorder clone) ends the thread.
struct Dispatcher {
    /// `None` when the thread could not be started; events are then kept in the ring only.
    tx: Option<SyncSender<CriticalEvent>>,
    hooks: Arc<RwLock<Vec<Hook>>>,
}

impl ErrorStatsRecorder {
    /// A new, empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one error: counts it by category and by code, keeps it in the ring of recent
    /// errors, and emits a critical event when the category [is critical](ErrorCategory::is_critical).
    pub fn record(&self, category: ErrorCategory, code: Option<&str>, detail: &str) {
        // Everything that allocates or reads the clock happens before the lock is taken.
        let at = SystemTime::now();
        let detail = truncate(detail);
        let code = code.map(str::to_owned);
        let critical = critical_kind(category).map(|kind| CriticalEvent {
            kind,
            category,
            code: code.clone(),
            detail: detail.clone(),
            at,
            attempts: None,
        });
        let recent = RecentError {
            at,
            category,
            code,
            detail,
        };

        {
            let mut tables = self.tables();
            // Counted under the lock so that a snapshot's total always matches its breakdowns.
            self.inner.total.fetch_add(1, Ordering::Relaxed);
            *tables.by_category.entry(category).or_insert(0) += 1;
            if let Some(code) = &recent.code {
                match tables.by_code.get_mut(code.as_str()) {
                    Some(count) => *count += 1,
                    None => {
                        tables.by_code.insert(code.clone(), 1);
                    }
                }
            }
            push_bounded(&mut tables.recent, recent, RECENT_ERRORS);
        }
        crate::metrics::error(category);
        if let Some(event) = critical {
            self.critical(event);
        }
    }

    /// Counts one retry (an attempt after the first) of an error in `category`.
    ///
    /// The error itself is recorded where it happened, with [`record`](Self::record); this counts
    /// only the decision to try again.
    pub fn record_retry(&self, category: ErrorCategory) {
        let mut tables = self.tables();
        self.inner.retries_attempted.fetch_add(1, Ordering::Relaxed);
        *tables.retries_by_category.entry(category).or_insert(0) += 1;
    }

    /// Counts one retried operation that finally succeeded.
    pub fn record_retry_succeeded(&self) {
        self.inner.retries_succeeded.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one retried operation that gave up after `attempts` attempts, and emits a
    /// [`CriticalKind::RetriesExhausted`] event.
    pub fn record_retries_exhausted(&self, category: ErrorCategory, attempts: u32, detail: &str) {
        self.record_exhausted(category, None, attempts, detail);
    }

    /// [`record_retries_exhausted`](Self::record_retries_exhausted) with the backend's code.
    pub(crate) fn record_exhausted(
        &self,
        category: ErrorCategory,
        code: Option<&str>,
        attempts: u32,
        detail: &str,
    ) {
        self.inner.retries_exhausted.fetch_add(1, Ordering::Relaxed);
        self.critical(CriticalEvent {
            kind: CriticalKind::RetriesExhausted,
            category,
            code: code.map(str::to_owned),
            detail: truncate(detail),
            at: SystemTime::now(),
            attempts: Some(attempts),
        });
    }

    /// A copy of the counters and the recent errors.
    ///
    /// `total` always matches the sum of `by_category`; the retry counters are read at the same
    /// moment but may include a retry whose error is still being recorded.
    pub fn snapshot(&self) -> ErrorStats {
        let tables = self.tables();
        ErrorStats {
            total: self.inner.total.load(Ordering::Relaxed),
            by_category: tables
                .by_category
                .iter()
                .map(|(category, count)| (*category, *count))
                .collect(),
            by_code: tables
                .by_code
                .iter()
                .map(|(code, count)| (code.clone(), *count))
                .collect(),
            retries_attempted: self.inner.retries_attempted.load(Ordering::Relaxed),
            retries_by_category: tables
                .retries_by_category
                .iter()
                .map(|(category, count)| (*category, *count))
                .collect(),
            retries_succeeded: self.inner.retries_succeeded.load(Ordering::Relaxed),
            retries_exhausted: self.inner.retries_exhausted.load(Ordering::Relaxed),
            critical_dropped: self.inner.critical_dropped.load(Ordering::Relaxed),
            recent: tables.recent.iter().cloned().collect(),
            recent_critical: tables.recent_critical.iter().cloned().collect(),
            breaker_opened: self.inner.breaker_opened.load(Ordering::Relaxed),
            breaker_rejected: self.inner.breaker_rejected.load(Ordering::Relaxed),
            slow_statements: self.inner.slow_statements.load(Ordering::Relaxed),
            breaker: None,
        }
    }

    /// Counts one statement slower than the slow-statement threshold.
    pub fn record_slow_statement(&self) {
        self.inner.slow_statements.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one call refused at once by an open circuit breaker.
    pub fn record_breaker_rejected(&self) {
        self.inner.breaker_rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Reports a circuit breaker opening or closing: counted, kept among the recent critical
    /// events and delivered to the hooks. `kind` is [`CriticalKind::BreakerOpened`] or
    /// [`CriticalKind::BreakerClosed`].
    pub fn record_breaker(&self, kind: CriticalKind, detail: &str) {
        if kind == CriticalKind::BreakerOpened {
            self.inner.breaker_opened.fetch_add(1, Ordering::Relaxed);
        }
        self.critical(CriticalEvent {
            kind,
            category: ErrorCategory::Unavailable,
            code: None,
            detail: truncate(detail),
            at: SystemTime::now(),
            attempts: None,
        });
    }

    /// The last [`RECENT_CRITICAL`] critical events, newest last.
    pub fn recent_critical(&self) -> Vec<CriticalEvent> {
        self.tables().recent_critical.iter().cloned().collect()
    }

    /// Registers a hook called once for every critical event recorded from now on (events
    /// recorded before the hook was registered are not replayed; see [`snapshot`](Self::snapshot)).
    ///
    /// Hooks run one after another on a dedicated thread, started with the first hook and ended
    /// when the last clone of this recorder is dropped, so they never block the code that recorded
    /// the error and need no async runtime. A hook that panics is reported with `tracing` and keeps
    /// receiving later events. A hook that holds a clone of this recorder keeps that thread alive
    /// for the rest of the process.
    ///
    /// ```
    /// use ops_core::stats::ErrorStatsRecorder;
    /// use ops_core::ErrorCategory;
    ///
    /// let stats = ErrorStatsRecorder::default();
    /// stats.on_critical(|event| eprintln!("page someone: {} ({})", event.kind, event.detail));
    /// stats.record(ErrorCategory::Unavailable, None, "connection refused");
    /// ```
    pub fn on_critical(&self, hook: impl Fn(&CriticalEvent) + Send + Sync + 'static) {
        let dispatcher = self.inner.dispatcher.get_or_init(Dispatcher::start);
        dispatcher
            .hooks
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(hook));
    }

    fn critical(&self, event: CriticalEvent) {
        crate::metrics::critical(event.kind.as_str());
        // Debug only: whoever saw the error logs it in context (the retry loop logs giving up at
        // error level), and hooks are the way to be told.
        tracing::debug!(
            kind = event.kind.as_str(),
            category = %event.category,
            code = event.code.as_deref(),
            attempts = event.attempts,
            "critical database event ({}): {}",
            event.kind,
            event.detail,
        );
        let queued = match self.inner.dispatcher.get() {
            Some(Dispatcher { tx: Some(tx), .. }) => Some((tx, event.clone())),
            _ => None,
        };
        push_bounded(&mut self.tables().recent_critical, event, RECENT_CRITICAL);
        if let Some((tx, event)) = queued {
            match tx.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    self.inner.critical_dropped.fetch_add(1, Ordering::Relaxed);
                }
                // The thread only ends when this sender is dropped, so this is unreachable in
                // practice; counting it keeps the loss visible if it ever happens.
                Err(TrySendError::Disconnected(_)) => {
                    self.inner.critical_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        // Nothing panics while the lock is held, but a poisoned lock still holds valid counts.
        self.inner
            .tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for ErrorStatsRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hooks = self.inner.dispatcher.get().map_or(0, |dispatcher| {
            dispatcher
                .hooks
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .len()
        });
        f.debug_struct("ErrorStatsRecorder")
            .field("total", &self.inner.total.load(Ordering::Relaxed))
            .field(
                "retries_attempted",
                &self.inner.retries_attempted.load(Ordering::Relaxed),
            )
            .field(
                "retries_exhausted",
                &self.inner.retries_exhausted.load(Ordering::Relaxed),
            )
            .field("hooks", &hooks)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    fn start() -> Self {
        let hooks: Arc<RwLock<Vec<Hook>>> = Arc::default();
        let (tx, rx) = mpsc::sync_channel(HOOK_QUEUE);
        let thread_hooks = Arc::clone(&hooks);
        let spawned = std::thread::Builder::new()
            .name("ops-critical-hooks".into())
            .spawn(move || deliver(&rx, &thread_hooks));
        let tx = match spawned {
            Ok(_) => Some(tx),
            Err(error) => {
                tracing::error!(
                    %error,
                    "could not start the thread for critical-event hooks; hooks will not be called \
                     (raise the process's thread limit)"
                );
                None
            }
        };
        Dispatcher { tx, hooks }
    }
}

/// The hook thread's loop: runs until every sender is gone.
fn deliver(rx: &Receiver<CriticalEvent>, hooks: &RwLock<Vec<Hook>>) {
    while let Ok(event) = rx.recv() {
        // A copy of the list, so a hook may register another hook without deadlocking.
        let current: Vec<Hook> = hooks.read().unwrap_or_else(PoisonError::into_inner).clone();
        for hook in &current {
            if catch_unwind(AssertUnwindSafe(|| hook(&event))).is_err() {
                tracing::error!(
                    kind = event.kind.as_str(),
                    "a critical-event hook panicked; it stays registered and receives later events"
                );
            }
        }
    }
}

const fn critical_kind(category: ErrorCategory) -> Option<CriticalKind> {
    match category {
        ErrorCategory::Unavailable => Some(CriticalKind::Unavailable),
        ErrorCategory::CommitUnknown => Some(CriticalKind::CommitUnknown),
        _ => None,
    }
}

fn push_bounded<T>(ring: &mut VecDeque<T>, item: T, bound: usize) {
    while ring.len() >= bound {
        ring.pop_front();
    }
    ring.push_back(item);
}

/// The first [`DETAIL_CHARS`] characters of `detail`, cut on a character boundary.
fn truncate(detail: &str) -> String {
    match detail.char_indices().nth(DETAIL_CHARS) {
        None => detail.to_owned(),
        Some((end, _)) => {
            let mut cut = String::with_capacity(end + '…'.len_utf8());
            cut.push_str(&detail[..end]);
            cut.push('…');
            cut
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_cuts_on_char_boundaries() {
        assert_eq!(truncate("short"), "short");
        let long = "é".repeat(DETAIL_CHARS + 10);
        let cut = truncate(&long);
        assert_eq!(cut.chars().count(), DETAIL_CHARS + 1);
        assert!(cut.ends_with('…'));
        let exact = "x".repeat(DETAIL_CHARS);
        assert_eq!(truncate(&exact), exact);
    }
}
