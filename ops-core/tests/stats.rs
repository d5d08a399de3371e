//! The error stats recorder: counts, bounded rings, and the critical-event hook (called once per
//! event, off the recording thread, surviving panics). No async runtime is involved anywhere here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use ops_core::stats::{
    CriticalEvent, CriticalKind, DETAIL_CHARS, ErrorStatsRecorder, RECENT_CRITICAL, RECENT_ERRORS,
};
use ops_core::{ErrorCategory, IntegrityKind, RetryReason};

const DEADLOCK: ErrorCategory = ErrorCategory::Retryable(RetryReason::Deadlock);
const UNIQUE: ErrorCategory = ErrorCategory::Integrity(IntegrityKind::Unique);

/// Long enough for a loaded machine to deliver an event; only reached when a test fails.
const DELIVERY: Duration = Duration::from_secs(10);

#[test]
fn recorder_is_a_cheap_shared_handle() {
    fn assert_traits<T: Clone + Send + Sync + Default + std::fmt::Debug + 'static>() {}
    assert_traits::<ErrorStatsRecorder>();

    let stats = ErrorStatsRecorder::default();
    let clone = stats.clone();
    clone.record(DEADLOCK, None, "x");
    assert_eq!(stats.snapshot().total, 1);
}

#[test]
fn counts_by_category_and_code() {
    let stats = ErrorStatsRecorder::new();
    stats.record(DEADLOCK, Some("40P01"), "deadlock detected");
    stats.record(
        DEADLOCK,
        Some("1213"),
        "Deadlock found when trying to get lock",
    );
    stats.record(UNIQUE, Some("23505"), "duplicate key value");
    stats.record(UNIQUE, Some("23505"), "duplicate key value");
    stats.record(ErrorCategory::NotFound, None, "no row");

    let snapshot = stats.snapshot();
    assert_eq!(snapshot.total, 5);
    assert_eq!(snapshot.by_category.len(), 3);
    assert_eq!(
        snapshot.by_category[&ErrorCategory::Retryable(RetryReason::Deadlock)],
        2
    );
    assert_eq!(
        snapshot.by_category[&ErrorCategory::Integrity(IntegrityKind::Unique)],
        2
    );
    assert_eq!(snapshot.by_category[&ErrorCategory::NotFound], 1);
    assert_eq!(snapshot.by_code.len(), 3);
    assert_eq!(snapshot.by_code["23505"], 2);
    assert_eq!(snapshot.by_code["40P01"], 1);
    assert_eq!(snapshot.by_code["1213"], 1);
    assert_eq!(snapshot.by_category.values().sum::<u64>(), snapshot.total);
    assert!(snapshot.recent_critical.is_empty());
    assert_eq!(snapshot.retries_attempted, 0);

    let last = snapshot.recent.last().unwrap();
    assert_eq!(last.category, ErrorCategory::NotFound);
    assert_eq!(last.code, None);
    assert_eq!(last.detail, "no row");
}

#[test]
fn recent_errors_are_bounded_and_newest_last() {
    let stats = ErrorStatsRecorder::default();
    for i in 0..RECENT_ERRORS + 70 {
        stats.record(DEADLOCK, None, &format!("error {i}"));
    }
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.total, (RECENT_ERRORS + 70) as u64);
    assert_eq!(snapshot.recent.len(), RECENT_ERRORS);
    assert_eq!(snapshot.recent[0].detail, "error 70");
    assert_eq!(
        snapshot.recent.last().unwrap().detail,
        format!("error {}", RECENT_ERRORS + 69)
    );
    assert!(snapshot.recent.windows(2).all(|w| w[0].at <= w[1].at));
}

#[test]
fn details_are_truncated() {
    let stats = ErrorStatsRecorder::default();
    stats.record(
        ErrorCategory::Unavailable,
        None,
        &"ü".repeat(DETAIL_CHARS * 3),
    );
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.recent[0].detail.chars().count(), DETAIL_CHARS + 1);
    assert!(snapshot.recent[0].detail.ends_with('…'));
    assert_eq!(
        snapshot.recent_critical[0].detail,
        snapshot.recent[0].detail
    );
}

#[test]
fn critical_categories_and_exhaustion_are_critical_events() {
    let stats = ErrorStatsRecorder::default();
    stats.record(DEADLOCK, Some("40P01"), "not critical");
    stats.record(ErrorCategory::Unavailable, None, "connection refused");
    stats.record(
        ErrorCategory::CommitUnknown,
        Some("08006"),
        "reset during commit",
    );
    stats.record_retry(DEADLOCK);
    stats.record_retry_succeeded();
    stats.record_retries_exhausted(DEADLOCK, 5, "deadlock detected");

    let snapshot = stats.snapshot();
    assert_eq!(snapshot.retries_attempted, 1);
    assert_eq!(snapshot.retries_succeeded, 1);
    assert_eq!(snapshot.retries_exhausted, 1);
    let kinds: Vec<_> = snapshot.recent_critical.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            CriticalKind::Unavailable,
            CriticalKind::CommitUnknown,
            CriticalKind::RetriesExhausted
        ]
    );
    let commit = &snapshot.recent_critical[1];
    assert_eq!(commit.code.as_deref(), Some("08006"));
    assert_eq!(commit.attempts, None);
    let exhausted = &snapshot.recent_critical[2];
    assert_eq!(exhausted.category, DEADLOCK);
    assert_eq!(exhausted.attempts, Some(5));
    assert_eq!(exhausted.detail, "deadlock detected");
    // Exhaustion is not an error of its own: the attempts' errors were recorded already.
    assert_eq!(snapshot.total, 3);
    assert_eq!(stats.recent_critical(), snapshot.recent_critical);
}

#[test]
fn recent_critical_is_bounded() {
    let stats = ErrorStatsRecorder::default();
    for i in 0..RECENT_CRITICAL + 5 {
        stats.record(ErrorCategory::Unavailable, None, &format!("down {i}"));
    }
    let critical = stats.recent_critical();
    assert_eq!(critical.len(), RECENT_CRITICAL);
    assert_eq!(critical[0].detail, "down 5");
}

/// Records `sentinel` as the last critical event and waits for the hook to see it. Delivery is in
/// order, so once it arrives every earlier event has been delivered.
fn flush(stats: &ErrorStatsRecorder, seen: &mpsc::Receiver<CriticalEvent>) -> Vec<CriticalEvent> {
    stats.record(ErrorCategory::Unavailable, None, "sentinel");
    let mut events = Vec::new();
    loop {
        let event = seen
            .recv_timeout(DELIVERY)
            .expect("the hook receives events");
        if event.detail == "sentinel" {
            return events;
        }
        events.push(event);
    }
}

#[test]
fn hook_is_called_once_per_event() {
    let stats = ErrorStatsRecorder::default();
    let (tx, seen) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    stats.on_critical(move |event| {
        tx.lock().unwrap().send(event.clone()).unwrap();
    });

    stats.record(DEADLOCK, None, "not critical");
    stats.record(ErrorCategory::Unavailable, None, "one");
    stats.record(UNIQUE, Some("23505"), "not critical");
    stats.record(ErrorCategory::CommitUnknown, None, "two");
    stats.record_retries_exhausted(DEADLOCK, 3, "three");

    let events = flush(&stats, &seen);
    let details: Vec<_> = events.iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(details, ["one", "two", "three"]);
    assert_eq!(events[2].kind, CriticalKind::RetriesExhausted);
}

#[test]
fn every_hook_sees_every_event_from_any_clone() {
    let stats = ErrorStatsRecorder::default();
    let first = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&first);
    stats.on_critical(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let (tx, seen) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    stats.clone().on_critical(move |event| {
        tx.lock().unwrap().send(event.clone()).unwrap();
    });

    let clone = stats.clone();
    for _ in 0..4 {
        clone.record(ErrorCategory::Unavailable, None, "down");
    }
    assert_eq!(flush(&stats, &seen).len(), 4);
    // The first hook runs before the second for each event, so it has seen the sentinel too.
    assert_eq!(first.load(Ordering::SeqCst), 5);
}

#[test]
fn slow_hook_never_blocks_recording() {
    let stats = ErrorStatsRecorder::default();
    let (tx, seen) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    stats.on_critical(move |event| {
        std::thread::sleep(Duration::from_secs(1));
        tx.lock().unwrap().send(event.detail.clone()).unwrap();
    });

    let start = Instant::now();
    stats.record(ErrorCategory::Unavailable, None, "first");
    stats.record(ErrorCategory::CommitUnknown, None, "second");
    stats.record_retries_exhausted(DEADLOCK, 3, "third");
    // Three hook calls take three seconds; recording must not wait for any of them.
    let elapsed = start.elapsed();
    assert!(
        elapsed < Duration::from_millis(500),
        "recording took {elapsed:?}"
    );

    // The events still arrive, in order.
    let got: Vec<_> = (0..3)
        .map(|_| {
            seen.recv_timeout(DELIVERY)
                .expect("the hook receives events")
        })
        .collect();
    assert_eq!(got, ["first", "second", "third"]);
}

#[test]
fn panicking_hook_keeps_receiving_events() {
    let stats = ErrorStatsRecorder::default();
    let survived = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&survived);
    stats.on_critical(move |event| {
        if event.detail == "boom" {
            panic!("hook failure under test");
        }
        log.lock().unwrap().push(event.detail.clone());
    });
    let others = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&others);
    stats.on_critical(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    // Registered last, so when it sees an event the hooks before it are done with that event.
    let (tx, seen) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    stats.on_critical(move |event| {
        tx.lock().unwrap().send(event.clone()).unwrap();
    });

    stats.record(ErrorCategory::Unavailable, None, "boom");
    stats.record(ErrorCategory::Unavailable, None, "after");
    stats.record(ErrorCategory::Unavailable, None, "boom");
    stats.record(ErrorCategory::Unavailable, None, "last");

    let details: Vec<_> = flush(&stats, &seen).into_iter().map(|e| e.detail).collect();
    assert_eq!(details, ["boom", "after", "boom", "last"]);
    // The panicking hook stayed registered and saw every later event.
    assert_eq!(*survived.lock().unwrap(), ["after", "last", "sentinel"]);
    // The hook after it ran for every event, including those the first one panicked on.
    assert_eq!(others.load(Ordering::SeqCst), 5);
}

#[test]
fn events_before_the_hook_are_not_replayed() {
    let stats = ErrorStatsRecorder::default();
    stats.record(ErrorCategory::Unavailable, None, "before");
    let (tx, seen) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    stats.on_critical(move |event| {
        tx.lock().unwrap().send(event.clone()).unwrap();
    });
    assert!(flush(&stats, &seen).is_empty());
    assert_eq!(stats.recent_critical().len(), 2);
}

#[cfg(feature = "serde")]
#[test]
fn snapshot_serializes_with_display_categories_and_unix_millis() {
    let stats = ErrorStatsRecorder::default();
    stats.record(DEADLOCK, Some("40P01"), "deadlock detected");
    stats.record_retries_exhausted(DEADLOCK, 3, "deadlock detected");
    let json = serde_json::to_value(stats.snapshot()).unwrap();
    assert_eq!(json["total"], 1);
    assert_eq!(json["by_category"]["retryable(deadlock)"], 1);
    assert_eq!(json["by_code"]["40P01"], 1);
    assert_eq!(json["recent"][0]["category"], "retryable(deadlock)");
    assert!(json["recent"][0]["at"].as_u64().unwrap() > 1_600_000_000_000);
    assert_eq!(json["recent_critical"][0]["kind"], "retries_exhausted");
    assert_eq!(json["recent_critical"][0]["attempts"], 3);
}
