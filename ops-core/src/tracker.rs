//! Session tracking: counts, peaks, and the sessions held longer than the leak threshold.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// A snapshot of session counters, from `db.session_stats()`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SessionStats {
    /// Sessions open now.
    pub active: usize,
    /// The most sessions open at once since start.
    pub peak: usize,
    /// Sessions opened since start.
    pub opened: u64,
    /// Sessions committed.
    pub committed: u64,
    /// Sessions rolled back (explicitly, on error, on panic, on cancellation or on timeout).
    pub rolled_back: u64,
    /// Sessions dropped without commit or rollback (rolled back by ops, and counted here as leaks).
    pub dropped_unfinished: u64,
    /// Sessions open longer than the leak threshold, oldest first.
    pub long_running: Vec<LongRunningSession>,
}

/// One session open longer than the leak threshold.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct LongRunningSession {
    /// The tracker's id of the session.
    pub id: u64,
    /// The session's name (by default the function that opened it).
    pub name: String,
    /// Where it was opened, as `file:line`.
    pub origin: String,
    /// How long it has been open.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serialize::duration")
    )]
    pub age: Duration,
}

/// How many registry shards a tracker has. Each thread sticks to one shard, so with up to this many
/// threads opening sessions no two threads contend on a shard's lock.
const SHARDS: usize = 64;

/// Hands each thread its shard, round robin in the order threads first open a session.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD_HINT: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

/// Registers every open session with its name and origin, counts outcomes, and finds the sessions
/// held too long (HikariCP-style leak detection with source locations).
///
/// The tracker is a cheap `Clone` handle over shared state. Opening and finishing a session takes
/// no global lock: counters are atomics and the set of open sessions is split into shards, each
/// thread keeping to one shard, so concurrent tasks do not serialize on the tracker. Ages are
/// measured with [`std::time::Instant`], which tokio's paused clock does not affect.
///
/// ```
/// use std::borrow::Cow;
/// use std::panic::Location;
/// use std::time::Duration;
/// use ops_core::tracker::{SessionOutcome, SessionTracker};
///
/// let tracker = SessionTracker::new(Some(Duration::from_secs(30)));
/// let ticket = tracker.open(Cow::Borrowed("load_user"), Location::caller());
/// assert_eq!(tracker.active(), 1);
/// ticket.finish(SessionOutcome::Committed);
///
/// let stats = tracker.stats();
/// assert_eq!((stats.active, stats.opened, stats.committed), (0, 1, 1));
/// ```
#[derive(Clone)]
pub struct SessionTracker {
    inner: Arc<TrackerInner>,
}

struct TrackerInner {
    leak_threshold: Option<Duration>,
    global: Arc<Global>,
    shards: Box<[Arc<Shard>]>,
}

/// The only counters every session touches; each on its own cache line so that bumping `active`
/// does not invalidate readers of `peak`.
struct Global {
    active: CachePadded<AtomicUsize>,
    peak: CachePadded<AtomicUsize>,
    /// The most recent sessions dropped unfinished, oldest first. Only the drop of an unfinished
    /// ticket (a bug being reported) takes this lock, never the open/finish hot path.
    dropped: Mutex<std::collections::VecDeque<DroppedSession>>,
}

/// How many dropped-unfinished sessions [`SessionTracker::dropped_unfinished_sessions`] keeps.
const DROPPED_KEPT: usize = 64;

/// A session that was dropped without commit or rollback, from
/// [`SessionTracker::dropped_unfinished_sessions`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DroppedSession {
    /// The tracker's id of the session.
    pub id: u64,
    /// The session's name.
    pub name: String,
    /// Where it was opened, as `file:line`.
    pub origin: String,
}

/// One slice of the registry with its own counters. Counters live here rather than in `Global`
/// because the thread that owns the shard already holds its cache line, so bumping them is close
/// to free; `stats()` sums them.
#[repr(align(128))]
struct Shard {
    index: u64,
    global: Arc<Global>,
    next_seq: AtomicU64,
    opened: AtomicU64,
    committed: AtomicU64,
    rolled_back: AtomicU64,
    dropped_unfinished: AtomicU64,
    sessions: Mutex<HashMap<u64, Arc<Entry>, BuildHasherDefault<IdHasher>>>,
}

/// What the tracker knows about one open session, shared by the registry and the ticket.
struct Entry {
    id: u64,
    name: Cow<'static, str>,
    origin: &'static Location<'static>,
    opened_at: Instant,
    warned: AtomicBool,
    cancelled: AtomicBool,
    cancel: Notify,
}

/// Aligns a value to its own cache line (128 bytes covers the adjacent-line prefetch of x86 and
/// the line size of Apple silicon).
#[repr(align(128))]
struct CachePadded<T>(T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// Hashes session ids, which are unique integers, with one folded multiply instead of SipHash:
/// the keys are not attacker-chosen, and hashing sits on the open/finish hot path.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed; this fallback keeps the hasher correct for anything else.
        for &byte in bytes {
            self.write_u64(self.0 ^ u64::from(byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Folding the 128-bit product mixes every input bit into both the low bits (the bucket)
        // and the high bits (the control byte) that the hash table uses.
        let product = u128::from(n) * 0x9E37_79B9_7F4A_7C15;
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl Shard {
    fn sessions(&self) -> MutexGuard<'_, HashMap<u64, Arc<Entry>, BuildHasherDefault<IdHasher>>> {
        // The lock only guards single inserts and removals, which leave the map consistent even if
        // a panic poisoned it, so a poisoned lock is used as is.
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Entry {
    fn origin(&self) -> String {
        format!("{}:{}", self.origin.file(), self.origin.line())
    }
}

impl SessionTracker {
    /// Creates a tracker. Sessions open longer than `leak_threshold` are reported by
    /// [`stats`](Self::stats) and warned about by [`warn_leaks`](Self::warn_leaks); `None`
    /// disables leak detection.
    pub fn new(leak_threshold: Option<Duration>) -> Self {
        let global = Arc::new(Global {
            active: CachePadded(AtomicUsize::new(0)),
            peak: CachePadded(AtomicUsize::new(0)),
            dropped: Mutex::default(),
        });
        let shards = (0..SHARDS as u64)
            .map(|index| {
                Arc::new(Shard {
                    index,
                    global: Arc::clone(&global),
                    next_seq: AtomicU64::new(1),
                    opened: AtomicU64::new(0),
                    committed: AtomicU64::new(0),
                    rolled_back: AtomicU64::new(0),
                    dropped_unfinished: AtomicU64::new(0),
                    sessions: Mutex::default(),
                })
            })
            .collect();
        Self {
            inner: Arc::new(TrackerInner {
                leak_threshold,
                global,
                shards,
            }),
        }
    }

    /// Registers a new session opened at `origin` and returns its ticket. Finish the ticket with
    /// [`SessionTicket::finish`] when the transaction commits or rolls back.
    ///
    /// A `Cow::Borrowed` name is stored without allocating. Ids are unique for the tracker's life
    /// but are not in opening order across threads.
    pub fn open(
        &self,
        name: Cow<'static, str>,
        origin: &'static Location<'static>,
    ) -> SessionTicket {
        let shard = &self.inner.shards[SHARD_HINT.with(|hint| *hint)];
        let seq = shard.next_seq.fetch_add(1, Ordering::Relaxed);
        // The low bits name the shard, so ids from different shards never collide.
        let id = seq * SHARDS as u64 + shard.index;
        let entry = Arc::new(Entry {
            id,
            name,
            origin,
            opened_at: Instant::now(),
            warned: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
            cancel: Notify::new(),
        });
        crate::metrics::session_opened(&entry.name);
        shard.sessions().insert(id, Arc::clone(&entry));
        shard.opened.fetch_add(1, Ordering::Relaxed);

        let global = &shard.global;
        let active = global.active.fetch_add(1, Ordering::Relaxed) + 1;
        // Every increment of `active` is one step of a single modification order, so the value it
        // returns is a true count of sessions open at that step; the plain load first spares the
        // shared `peak` line a write when the peak is not being raised.
        if active > global.peak.load(Ordering::Relaxed) {
            global.peak.fetch_max(active, Ordering::Relaxed);
        }

        SessionTicket {
            shard: Arc::clone(shard),
            entry,
            finished: false,
        }
    }

    /// A snapshot of the counters and of the sessions open longer than the leak threshold, oldest
    /// first (none when leak detection is off).
    ///
    /// Each counter is exact, but while sessions open and finish concurrently the counters are
    /// not read at one instant; once the tracker is quiet,
    /// `opened == active + committed + rolled_back + dropped_unfinished`.
    pub fn stats(&self) -> SessionStats {
        let sum = |counter: fn(&Shard) -> &AtomicU64| {
            self.inner
                .shards
                .iter()
                .map(|shard| counter(shard).load(Ordering::Relaxed))
                .sum()
        };
        SessionStats {
            active: self.active(),
            peak: self.inner.global.peak.load(Ordering::Relaxed),
            opened: sum(|shard| &shard.opened),
            committed: sum(|shard| &shard.committed),
            rolled_back: sum(|shard| &shard.rolled_back),
            dropped_unfinished: sum(|shard| &shard.dropped_unfinished),
            long_running: self
                .inner
                .leak_threshold
                .map(|threshold| self.long_running(threshold))
                .unwrap_or_default(),
        }
    }

    /// The sessions open longer than `older_than`, oldest first.
    pub fn long_running(&self, older_than: Duration) -> Vec<LongRunningSession> {
        describe(self.select(older_than, |_| true))
    }

    /// Logs one `warn` for each session past the leak threshold that has not been warned about
    /// yet, naming the session, where it was opened and its age, and returns how many it warned
    /// about. A session is warned about at most once however often this runs; with leak
    /// detection off it does nothing.
    pub fn warn_leaks(&self) -> usize {
        let Some(threshold) = self.inner.leak_threshold else {
            return 0;
        };
        let leaks = self.select(threshold, |entry| {
            !entry.warned.swap(true, Ordering::Relaxed)
        });
        // Logging happens after every shard lock is released, so a slow subscriber never stalls
        // sessions opening or finishing.
        for (entry, age) in &leaks {
            tracing::warn!(
                session.id = entry.id,
                session.name = %entry.name,
                origin = %entry.origin(),
                age = ?age,
                threshold = ?threshold,
                "possible session leak: session `{}` opened at {} has been open for {:?}, longer \
                 than the leak threshold of {:?}; make sure it is committed or rolled back",
                entry.name,
                entry.origin(),
                age,
                threshold,
            );
        }
        leaks.len()
    }

    /// Signals cancellation to every session open longer than `max_age` (see
    /// [`SessionTicket::cancelled`]), logs one `warn` for each, and returns how many were newly
    /// signalled. A session already cancelled is not signalled or counted again.
    ///
    /// This only signals: the session's owner observes the signal, rolls back and finishes the
    /// ticket, so the session stays in [`active`](Self::active) until then.
    pub fn cancel_older_than(&self, max_age: Duration) -> usize {
        let cancelled = self.select(max_age, |entry| {
            !entry.cancelled.swap(true, Ordering::AcqRel)
        });
        for (entry, age) in &cancelled {
            // `notify_waiters` wakes only futures already waiting; the flag set above covers the
            // ones that start waiting later.
            entry.cancel.notify_waiters();
            tracing::warn!(
                session.id = entry.id,
                session.name = %entry.name,
                origin = %entry.origin(),
                age = ?age,
                max_age = ?max_age,
                "cancelling session `{}` opened at {}: open for {:?}, longer than the maximum \
                 session age of {:?}",
                entry.name,
                entry.origin(),
                age,
                max_age,
            );
        }
        cancelled.len()
    }

    /// The most recent sessions dropped without commit or rollback (up to 64), oldest first, with
    /// their names and origins. `SessionStats::dropped_unfinished` counts all of them.
    pub fn dropped_unfinished_sessions(&self) -> Vec<DroppedSession> {
        let dropped = self
            .inner
            .global
            .dropped
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        dropped.iter().cloned().collect()
    }

    /// The sessions open now, oldest first, whatever their age.
    pub fn open_sessions(&self) -> Vec<LongRunningSession> {
        describe(self.select_all())
    }

    /// The leak threshold this tracker was created with.
    pub fn leak_threshold(&self) -> Option<Duration> {
        self.inner.leak_threshold
    }

    /// How many sessions are open now.
    pub fn active(&self) -> usize {
        self.inner.global.active.load(Ordering::Relaxed)
    }

    /// Every open session with its age.
    fn select_all(&self) -> Vec<(Arc<Entry>, Duration)> {
        let now = Instant::now();
        let mut found = Vec::new();
        for shard in self.inner.shards.iter() {
            for entry in shard.sessions().values() {
                found.push((
                    Arc::clone(entry),
                    now.saturating_duration_since(entry.opened_at),
                ));
            }
        }
        found
    }

    /// The open sessions older than `older_than` for which `pick` returns true, with their ages
    /// measured from one instant. `pick` runs under a shard lock and must be quick.
    fn select(
        &self,
        older_than: Duration,
        mut pick: impl FnMut(&Entry) -> bool,
    ) -> Vec<(Arc<Entry>, Duration)> {
        let now = Instant::now();
        let mut found = Vec::new();
        for shard in self.inner.shards.iter() {
            for entry in shard.sessions().values() {
                let age = now.saturating_duration_since(entry.opened_at);
                if age > older_than && pick(entry) {
                    found.push((Arc::clone(entry), age));
                }
            }
        }
        found
    }
}

/// The public description of selected sessions, oldest first.
fn describe(mut found: Vec<(Arc<Entry>, Duration)>) -> Vec<LongRunningSession> {
    found.sort_by_key(|(entry, _)| (entry.opened_at, entry.id));
    found
        .into_iter()
        .map(|(entry, age)| LongRunningSession {
            id: entry.id,
            name: entry.name.to_string(),
            origin: entry.origin(),
            age,
        })
        .collect()
}

impl fmt::Debug for SessionTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionTracker")
            .field("leak_threshold", &self.inner.leak_threshold)
            .field("active", &self.active())
            .field("peak", &self.inner.global.peak.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// How a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionOutcome {
    /// The transaction committed.
    Committed,
    /// The transaction rolled back: explicitly, on error, on panic, on cancellation or on timeout.
    RolledBack,
}

/// One open session's registration with a [`SessionTracker`]. Finish it with
/// [`finish`](Self::finish) when the transaction ends.
///
/// Dropping a ticket without finishing it counts the session in
/// [`SessionStats::dropped_unfinished`] (and not also in `rolled_back`, so the counters add up to
/// `opened`), logs one `warn` naming where the session was opened, and removes it from the active
/// set. The owner of the transaction is still responsible for rolling it back.
pub struct SessionTicket {
    shard: Arc<Shard>,
    entry: Arc<Entry>,
    finished: bool,
}

impl SessionTicket {
    /// The tracker's id of the session, unique for the tracker's life.
    pub fn id(&self) -> u64 {
        self.entry.id
    }

    /// The session's name.
    pub fn name(&self) -> &str {
        &self.entry.name
    }

    /// Where the session was opened.
    pub fn origin(&self) -> &'static Location<'static> {
        self.entry.origin
    }

    /// How long the session has been open.
    pub fn age(&self) -> Duration {
        self.entry.opened_at.elapsed()
    }

    /// Records how the session ended and removes it from the active set.
    pub fn finish(mut self, outcome: SessionOutcome) {
        let counter = match outcome {
            SessionOutcome::Committed => &self.shard.committed,
            SessionOutcome::RolledBack => &self.shard.rolled_back,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let end = match outcome {
            SessionOutcome::Committed => crate::metrics::SessionEnd::Committed,
            SessionOutcome::RolledBack => crate::metrics::SessionEnd::RolledBack,
        };
        crate::metrics::session_ended(&self.entry.name, end, self.age());
        self.release();
    }

    /// Resolves once [`SessionTracker::cancel_older_than`] has picked this session, at once if it
    /// already has. Cancellation-safe: dropping the future loses nothing, and any number of them
    /// may wait at the same time.
    #[expect(
        clippy::manual_async_fn,
        reason = "the written-out signature makes `Send` part of the contract, so a change that \
                  loses it fails here rather than in callers"
    )]
    pub fn cancelled(&self) -> impl Future<Output = ()> + Send + '_ {
        async move {
            let notified = self.entry.cancel.notified();
            let mut notified = std::pin::pin!(notified);
            // Registering as a waiter before reading the flag closes the window in which a
            // cancellation between the read and the wait would be missed.
            notified.as_mut().enable();
            if !self.is_cancelled() {
                notified.await;
            }
        }
    }

    /// Whether [`SessionTracker::cancel_older_than`] has picked this session.
    pub fn is_cancelled(&self) -> bool {
        self.entry.cancelled.load(Ordering::Acquire)
    }

    fn release(&mut self) {
        self.finished = true;
        self.shard.sessions().remove(&self.entry.id);
        self.shard.global.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for SessionTicket {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.shard
            .dropped_unfinished
            .fetch_add(1, Ordering::Relaxed);
        crate::metrics::session_ended(
            &self.entry.name,
            crate::metrics::SessionEnd::Dropped,
            self.age(),
        );
        self.release();
        let entry = &self.entry;
        {
            let mut dropped = self
                .shard
                .global
                .dropped
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if dropped.len() == DROPPED_KEPT {
                dropped.pop_front();
            }
            dropped.push_back(DroppedSession {
                id: entry.id,
                name: entry.name.to_string(),
                origin: entry.origin(),
            });
        }
        tracing::warn!(
            session.id = entry.id,
            session.name = %entry.name,
            origin = %entry.origin(),
            age = ?entry.opened_at.elapsed(),
            "session `{}` opened at {} was dropped without commit or rollback; finish every \
             session explicitly",
            entry.name,
            entry.origin(),
        );
    }
}

impl fmt::Debug for SessionTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionTicket")
            .field("id", &self.entry.id)
            .field("name", &self.entry.name)
            .field("origin", &self.entry.origin())
            .field("age", &self.age())
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}
