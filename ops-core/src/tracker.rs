//! Session tracking: counts, peaks, and the sessions held longer than the leak threshold.

use std::time::Duration;

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
    pub age: Duration,
}
