//! Behaviour of the session tracker: counters under concurrency, peak, leak warnings, long-running
//! sessions and cancellation.

mod support;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::panic::Location;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use ops_core::tracker::{SessionOutcome, SessionStats, SessionTicket, SessionTracker};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Bound on every wait for something that should happen at once, so a bug fails the test instead
/// of hanging it.
const BOUND: Duration = Duration::from_secs(10);

/// One event recorded by [`Capture`].
#[derive(Clone, Debug)]
struct Captured {
    level: Level,
    message: String,
    fields: BTreeMap<String, String>,
}

/// A layer that records every event, so tests can assert on what the tracker logged.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

impl Capture {
    /// The warnings that mention `name` (tests use unique names, so events of other tests never
    /// match).
    fn warnings_about(&self, name: &str) -> Vec<Captured> {
        let events = self.0.lock().expect("capture lock");
        events
            .iter()
            .filter(|event| event.level == Level::WARN)
            .filter(|event| event.fields.get("session.name").map(String::as_str) == Some(name))
            .cloned()
            .collect()
    }

    /// Installs this layer as the current thread's subscriber until the guard drops.
    fn install(&self) -> support::Routed {
        support::route(self.clone())
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut captured = Captured {
            level: *event.metadata().level(),
            message: String::new(),
            fields: BTreeMap::new(),
        };
        event.record(&mut CapturedVisitor(&mut captured));
        self.0.lock().expect("capture lock").push(captured);
    }
}

struct CapturedVisitor<'a>(&'a mut Captured);

impl Visit for CapturedVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record(field, format!("{value:?}"));
    }
}

impl CapturedVisitor<'_> {
    fn record(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.0.message = value;
        } else {
            self.0.fields.insert(field.name().to_owned(), value);
        }
    }
}

fn file_line(location: &Location<'_>) -> String {
    format!("{}:{}", location.file(), location.line())
}

fn assert_balanced(stats: &SessionStats) {
    assert_eq!(stats.active, 0, "{stats:?}");
    assert_eq!(
        stats.opened,
        stats.committed + stats.rolled_back + stats.dropped_unfinished,
        "{stats:?}"
    );
}

#[test]
fn types_are_shareable() {
    fn send_sync<T: Send + Sync + fmt::Debug>() {}
    send_sync::<SessionTracker>();
    send_sync::<SessionTicket>();

    fn send<T: Send>(_: &T) {}
    let tracker = SessionTracker::new(None);
    let ticket = tracker.open(Cow::Borrowed("shareable"), Location::caller());
    send(&ticket.cancelled());
    let debug = format!("{tracker:?} {ticket:?}");
    assert!(debug.contains("shareable"), "{debug}");
    ticket.finish(SessionOutcome::Committed);
}

#[test]
fn ticket_reports_what_it_was_opened_with() {
    let tracker = SessionTracker::new(None);
    static NAME: &str = "borrowed_name";
    let origin = Location::caller();
    let borrowed = tracker.open(Cow::Borrowed(NAME), origin);
    let owned = tracker.open(Cow::Owned(format!("owned_{}", 7)), origin);

    assert_eq!(borrowed.name(), NAME);
    // The name is the caller's `&'static str` itself, not a copy of it.
    assert_eq!(borrowed.name().as_ptr(), NAME.as_ptr());
    assert_eq!(owned.name(), "owned_7");
    assert!(std::ptr::eq(borrowed.origin(), origin));
    assert_ne!(borrowed.id(), owned.id());
    assert!(!borrowed.is_cancelled());
    assert_eq!(tracker.active(), 2);
    assert_eq!(tracker.leak_threshold(), None);

    borrowed.finish(SessionOutcome::Committed);
    owned.finish(SessionOutcome::RolledBack);
    let stats = tracker.stats();
    assert_eq!(
        (stats.opened, stats.committed, stats.rolled_back),
        (2, 1, 1)
    );
    assert_balanced(&stats);
}

#[test]
fn counters_add_up_across_threads() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 3_000;
    let tracker = SessionTracker::new(Some(Duration::from_secs(3600)));
    let ids = Mutex::new(HashSet::new());

    thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                let mut seen = Vec::with_capacity(PER_THREAD);
                // Holding a few sessions at once makes tickets finish out of opening order.
                let mut held = Vec::new();
                for i in 0..PER_THREAD {
                    let ticket = tracker.open(Cow::Borrowed("threads"), Location::caller());
                    seen.push(ticket.id());
                    held.push(ticket);
                    if held.len() == 4 {
                        for (j, ticket) in held.drain(..).enumerate() {
                            match (i + j) % 3 {
                                0 => ticket.finish(SessionOutcome::Committed),
                                1 => ticket.finish(SessionOutcome::RolledBack),
                                _ => drop(ticket),
                            }
                        }
                    }
                }
                for ticket in held {
                    ticket.finish(SessionOutcome::Committed);
                }
                ids.lock().expect("ids lock").extend(seen);
            });
        }
    });

    let stats = tracker.stats();
    assert_eq!(stats.opened, (THREADS * PER_THREAD) as u64);
    assert!(stats.committed > 0 && stats.rolled_back > 0 && stats.dropped_unfinished > 0);
    assert_balanced(&stats);
    assert!(stats.peak >= 4 && stats.peak <= 4 * THREADS, "{stats:?}");
    assert!(stats.long_running.is_empty());
    assert_eq!(
        ids.lock().expect("ids lock").len(),
        THREADS * PER_THREAD,
        "every session gets a distinct id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counters_add_up_across_tasks() {
    const TASKS: usize = 64;
    const PER_TASK: usize = 500;
    let tracker = SessionTracker::new(None);

    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let tracker = tracker.clone();
            tokio::spawn(async move {
                for i in 0..PER_TASK {
                    let ticket =
                        tracker.open(Cow::Owned(format!("task_{task}")), Location::caller());
                    // Yielding with the session open moves tasks between workers, so tickets are
                    // often finished on another thread than the one that opened them.
                    tokio::task::yield_now().await;
                    let outcome = if (task + i) % 2 == 0 {
                        SessionOutcome::Committed
                    } else {
                        SessionOutcome::RolledBack
                    };
                    ticket.finish(outcome);
                }
            })
        })
        .collect();
    for task in tasks {
        tokio::time::timeout(BOUND, task)
            .await
            .expect("tasks finish")
            .expect("task succeeds");
    }

    let stats = tracker.stats();
    assert_eq!(stats.opened, (TASKS * PER_TASK) as u64);
    assert_eq!(stats.committed, stats.rolled_back);
    assert_eq!(stats.dropped_unfinished, 0);
    assert_balanced(&stats);
    assert!(stats.peak >= 1 && stats.peak <= TASKS, "{stats:?}");
}

#[test]
fn peak_is_the_most_sessions_open_at_once() {
    let tracker = SessionTracker::new(None);
    let open = |n: usize| -> Vec<SessionTicket> {
        (0..n)
            .map(|_| tracker.open(Cow::Borrowed("peak"), Location::caller()))
            .collect()
    };

    let mut first = open(5);
    assert_eq!(tracker.stats().peak, 5);
    for ticket in first.drain(..3) {
        ticket.finish(SessionOutcome::Committed);
    }
    let second = open(2);
    let stats = tracker.stats();
    assert_eq!(
        (stats.active, stats.peak),
        (4, 5),
        "peak stays at the high-water mark"
    );
    let third = open(3);
    assert_eq!(tracker.stats().peak, 7);

    for ticket in first.into_iter().chain(second).chain(third) {
        ticket.finish(SessionOutcome::RolledBack);
    }
    let stats = tracker.stats();
    assert_eq!(stats.peak, 7);
    assert_balanced(&stats);
}

#[test]
fn peak_counts_sessions_held_at_once_by_many_threads() {
    const THREADS: usize = 16;
    let tracker = SessionTracker::new(None);
    let all_open = Barrier::new(THREADS);

    thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                let ticket = tracker.open(Cow::Borrowed("barrier"), Location::caller());
                // Every thread holds its session until all of them have opened one.
                all_open.wait();
                ticket.finish(SessionOutcome::Committed);
            });
        }
    });

    let stats = tracker.stats();
    assert_eq!(stats.peak, THREADS);
    assert_balanced(&stats);
}

#[test]
fn dropped_ticket_is_counted_and_warned_with_its_origin() {
    let capture = Capture::default();
    let _guard = capture.install();
    let tracker = SessionTracker::new(None);

    let origin = Location::caller();
    let ticket = tracker.open(Cow::Borrowed("dropped_unfinished_test"), origin);
    let id = ticket.id();
    drop(ticket);

    let stats = tracker.stats();
    assert_eq!(stats.dropped_unfinished, 1);
    assert_eq!(
        stats.rolled_back, 0,
        "a dropped session is counted once, as dropped"
    );
    assert_eq!(stats.opened, 1);
    assert_balanced(&stats);

    let warnings = capture.warnings_about("dropped_unfinished_test");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let warning = &warnings[0];
    assert_eq!(warning.fields["origin"], file_line(origin));
    assert_eq!(warning.fields["session.id"], id.to_string());
    assert!(warning.fields.contains_key("age"), "{warning:?}");
    assert!(warning.message.contains(&file_line(origin)), "{warning:?}");
    assert!(
        warning
            .message
            .contains("dropped without commit or rollback"),
        "{warning:?}"
    );
}

#[test]
fn finished_ticket_logs_nothing() {
    let capture = Capture::default();
    let _guard = capture.install();
    let tracker = SessionTracker::new(Some(Duration::from_secs(3600)));
    tracker
        .open(Cow::Borrowed("quiet_session"), Location::caller())
        .finish(SessionOutcome::RolledBack);
    assert_eq!(tracker.warn_leaks(), 0);
    assert!(capture.warnings_about("quiet_session").is_empty());
}

#[test]
fn warn_leaks_warns_once_per_session() {
    let capture = Capture::default();
    let _guard = capture.install();
    let threshold = Duration::from_millis(50);
    let tracker = SessionTracker::new(Some(threshold));

    let origin = Location::caller();
    let first = tracker.open(Cow::Borrowed("leaky_session"), origin);
    let second = tracker.open(Cow::Borrowed("leaky_session"), origin);
    thread::sleep(threshold * 2);

    assert_eq!(tracker.warn_leaks(), 2);
    assert_eq!(tracker.warn_leaks(), 0, "each session is warned about once");
    let warnings = capture.warnings_about("leaky_session");
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    let warned_ids: HashSet<_> = warnings
        .iter()
        .map(|w| w.fields["session.id"].clone())
        .collect();
    let expected_ids: HashSet<_> = [first.id(), second.id()]
        .iter()
        .map(u64::to_string)
        .collect();
    assert_eq!(warned_ids, expected_ids);
    for warning in &warnings {
        assert_eq!(warning.fields["origin"], file_line(origin));
        assert!(warning.fields.contains_key("age"), "{warning:?}");
        assert!(warning.message.contains("leaky_session"), "{warning:?}");
        assert!(warning.message.contains(&file_line(origin)), "{warning:?}");
    }

    // A session that crosses the threshold later is warned about on its own.
    let third = tracker.open(Cow::Borrowed("leaky_session"), origin);
    thread::sleep(threshold * 2);
    assert_eq!(tracker.warn_leaks(), 1);
    assert_eq!(capture.warnings_about("leaky_session").len(), 3);

    for ticket in [first, second, third] {
        ticket.finish(SessionOutcome::Committed);
    }
    assert_eq!(tracker.warn_leaks(), 0);
    assert_balanced(&tracker.stats());
}

#[test]
fn warn_leaks_is_off_without_threshold() {
    let tracker = SessionTracker::new(None);
    let ticket = tracker.open(Cow::Borrowed("no_threshold"), Location::caller());
    thread::sleep(Duration::from_millis(5));
    assert_eq!(tracker.warn_leaks(), 0);
    assert!(tracker.stats().long_running.is_empty());
    assert_eq!(tracker.long_running(Duration::ZERO).len(), 1);
    ticket.finish(SessionOutcome::Committed);
}

#[test]
fn long_running_lists_oldest_first() {
    let tracker = SessionTracker::new(Some(Duration::ZERO));
    let gap = Duration::from_millis(10);

    // Sessions opened on different threads land in different shards; the listing still orders
    // them by age across shards.
    let mut tickets = Vec::new();
    for name in ["oldest", "middle", "newest"] {
        let tracker = tracker.clone();
        let ticket = thread::spawn(move || tracker.open(Cow::Borrowed(name), Location::caller()))
            .join()
            .expect("opening thread");
        tickets.push(ticket);
        thread::sleep(gap);
    }

    let listed = tracker.long_running(Duration::ZERO);
    let names: Vec<_> = listed.iter().map(|session| session.name.as_str()).collect();
    assert_eq!(names, ["oldest", "middle", "newest"]);
    let ids: Vec<_> = listed.iter().map(|session| session.id).collect();
    let expected: Vec<_> = tickets.iter().map(SessionTicket::id).collect();
    assert_eq!(ids, expected);
    assert!(
        listed
            .windows(2)
            .all(|pair| pair[0].age >= pair[1].age + gap)
    );
    for (session, ticket) in listed.iter().zip(&tickets) {
        assert_eq!(session.origin, file_line(ticket.origin()));
    }

    // The newest session is younger than the time since the oldest one opened.
    let cutoff = listed[0].age - gap;
    let older = tracker.long_running(cutoff);
    assert!(
        older.iter().all(|session| session.name != "newest"),
        "{older:?}"
    );
    assert!(tracker.long_running(Duration::from_secs(3600)).is_empty());

    let stats_names: Vec<_> = tracker
        .stats()
        .long_running
        .into_iter()
        .map(|session| session.name)
        .collect();
    assert_eq!(stats_names, ["oldest", "middle", "newest"]);

    for ticket in tickets {
        ticket.finish(SessionOutcome::Committed);
    }
    assert!(tracker.long_running(Duration::ZERO).is_empty());
}

#[tokio::test]
async fn cancel_older_than_resolves_cancelled() {
    let capture = Capture::default();
    let _guard = capture.install();
    let tracker = SessionTracker::new(None);
    let gap = Duration::from_millis(200);

    let old = tracker.open(Cow::Borrowed("cancel_old"), Location::caller());
    let waiting = tracker.open(Cow::Borrowed("cancel_waiting"), Location::caller());
    // A task already waiting on the signal is woken by it.
    let waiter = tokio::spawn(async move {
        waiting.cancelled().await;
        waiting
    });
    tokio::time::sleep(gap).await;
    let young = tracker.open(Cow::Borrowed("cancel_young"), Location::caller());

    // Half the gap separates the old sessions from the young one, however slowly this runs.
    let max_age = old.age() - gap / 2;
    assert_eq!(tracker.cancel_older_than(max_age), 2);
    assert!(old.is_cancelled());
    assert!(!young.is_cancelled());

    tokio::time::timeout(BOUND, old.cancelled())
        .await
        .expect("cancelled() resolves at once when already cancelled");
    let waiting = tokio::time::timeout(BOUND, waiter)
        .await
        .expect("the waiting task is woken")
        .expect("waiting task succeeds");
    assert!(waiting.is_cancelled());

    // Signalling is not counting: the sessions stay active until their owners finish them.
    assert_eq!(tracker.active(), 3);
    assert_eq!(
        tracker.cancel_older_than(max_age),
        0,
        "already cancelled sessions are skipped"
    );
    assert_eq!(capture.warnings_about("cancel_old").len(), 1);
    assert!(capture.warnings_about("cancel_young").is_empty());

    // A dropped `cancelled()` future loses nothing: the signal is still seen by the next one.
    let young_wait = young.cancelled();
    drop(young_wait);
    assert!(
        tokio::time::timeout(Duration::from_millis(20), young.cancelled())
            .await
            .is_err(),
        "an uncancelled session's future stays pending"
    );
    assert_eq!(tracker.cancel_older_than(Duration::ZERO), 1);
    tokio::time::timeout(BOUND, young.cancelled())
        .await
        .expect("cancelled() resolves");

    for ticket in [old, waiting, young] {
        ticket.finish(SessionOutcome::RolledBack);
    }
    let stats = tracker.stats();
    assert_eq!(stats.rolled_back, 3);
    assert_balanced(&stats);
}

/// What `#[ops_sea::test]` reads after a test body: the open sessions whatever their age, and the
/// sessions dropped unfinished, each with its name and origin.
#[test]
fn open_and_dropped_sessions_are_listed_with_origins() {
    let tracker = SessionTracker::new(None);
    let kept = tracker.open(Cow::Borrowed("kept"), Location::caller());
    let dropped = tracker.open(Cow::Borrowed("dropped"), Location::caller());
    let finished = tracker.open(Cow::Borrowed("finished"), Location::caller());
    finished.finish(SessionOutcome::Committed);
    drop(dropped);

    let open = tracker.open_sessions();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].name, "kept");
    assert!(open[0].origin.starts_with(file!()), "{}", open[0].origin);

    let gone = tracker.dropped_unfinished_sessions();
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].name, "dropped");
    assert!(gone[0].origin.starts_with(file!()), "{}", gone[0].origin);

    // Only the most recent 64 are kept; the counter counts all.
    for _ in 0..100 {
        drop(tracker.open(Cow::Borrowed("many"), Location::caller()));
    }
    assert_eq!(tracker.dropped_unfinished_sessions().len(), 64);
    assert_eq!(tracker.stats().dropped_unfinished, 101);
    kept.finish(SessionOutcome::RolledBack);
    assert!(tracker.open_sessions().is_empty());
}
