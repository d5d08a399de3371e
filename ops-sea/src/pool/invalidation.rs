//! A disconnect invalidates the pool: the pessimistic handling of SQLAlchemy (every connection
//! checked in before a disconnect error is invalidated) and HikariCP (connections are tested on
//! checkout after a connection-level failure).
//!
//! When the server drops its connections (a restart, a failover, an administrator's
//! `pg_terminate_backend` or `KILL`), the idle ones in the pool are dead too, but young enough to
//! skip the idle ping: each later checkout would draw one, fail at its first statement, and cost
//! the caller a retry attempt, and a retry loop under a storm of kills can burn every attempt on
//! corpses. So each pool keeps the instant of its last disconnect: a statement that failed with
//! `Retryable(ConnectionLost)`, or a failed ping or reset in the pool's own hooks. At checkout, a
//! connection last released before that instant is pinged first (bounded by the hook limit) and
//! closed if it does not answer; sqlx then takes another or opens a fresh one. A connection
//! released after the disconnect, or any connection when none was recorded, pays nothing.
//!
//! The record is per pool: a replica's disconnect says nothing about the primary's connections.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use ops_core::metrics::PoolMetrics;

use super::PoolState;

/// The disconnect record of one pool, shared by its hooks and the `Db` that observes its errors.
pub(crate) type Disconnects = Arc<Invalidation>;

/// The last disconnect of one pool and the connections checked because of it.
#[derive(Debug)]
pub(crate) struct Invalidation {
    epoch: Instant,
    /// Nanoseconds after `epoch` of the last disconnect, plus one; 0 for none.
    last: AtomicU64,
    /// The wall-clock time of the last disconnect, for health reports.
    last_at: Mutex<Option<SystemTime>>,
    /// Connections pinged (or closed) at checkout because they were released before a disconnect.
    invalidated: AtomicU64,
    /// The pool's metrics (feature `metrics`), fed by the same hooks.
    metrics: PoolMetrics,
}

impl Default for Invalidation {
    /// The record of the primary's pool.
    fn default() -> Self {
        Invalidation::new(PoolMetrics::new("primary"))
    }
}

impl Invalidation {
    /// The record of a pool whose metrics are `metrics`.
    pub(crate) fn new(metrics: PoolMetrics) -> Self {
        Invalidation {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
            last_at: Mutex::new(None),
            invalidated: AtomicU64::new(0),
            metrics,
        }
    }

    /// The pool's metrics.
    pub(crate) fn metrics(&self) -> &PoolMetrics {
        &self.metrics
    }

    fn nanos(&self, at: Duration) -> u64 {
        u64::try_from(at.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Records a disconnect now: every connection released before this instant is checked
    /// before it is handed out again.
    pub(crate) fn record(&self) {
        let now = self.nanos(self.epoch.elapsed()).saturating_add(1);
        self.last.fetch_max(now, Ordering::AcqRel);
        *self.last_at.lock().unwrap_or_else(PoisonError::into_inner) = Some(SystemTime::now());
    }

    /// Whether a connection idle for `idle_for` was released before the last disconnect, and so
    /// may be dead. `false` when no disconnect was recorded.
    pub(crate) fn stale(&self, idle_for: Duration) -> bool {
        let last = self.last.load(Ordering::Acquire);
        if last == 0 {
            return false;
        }
        let released = self.epoch.elapsed().saturating_sub(idle_for);
        // `last` is the disconnect plus one: released at or before the disconnect is stale.
        self.nanos(released) < last
    }

    /// Counts a connection checked at checkout because of a disconnect.
    pub(crate) fn count(&self) {
        self.invalidated.fetch_add(1, Ordering::Relaxed);
    }

    /// Connections checked at checkout because of a disconnect, since the pool was built.
    pub(crate) fn invalidated(&self) -> u64 {
        self.invalidated.load(Ordering::Relaxed)
    }

    /// When the last disconnect was recorded.
    pub(crate) fn last_disconnect(&self) -> Option<SystemTime> {
        *self.last_at.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The pool's counts with this record: what `db.pool_state()` and a health report show.
    pub(crate) fn pool_status(&self, state: PoolState) -> PoolState {
        PoolState {
            invalidated: self.invalidated(),
            last_disconnect: self.last_disconnect(),
            ..state
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_stale_before_a_disconnect() {
        let d = Invalidation::default();
        assert!(!d.stale(Duration::ZERO));
        assert!(!d.stale(Duration::from_secs(3600)));
        assert_eq!(d.last_disconnect(), None);
    }

    #[test]
    fn released_before_the_disconnect_is_stale_after_is_not() {
        let d = Invalidation::default();
        std::thread::sleep(Duration::from_millis(20));
        d.record();
        assert!(d.last_disconnect().is_some());
        // Released 10 s ago (before the disconnect, even before the pool): stale.
        assert!(d.stale(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        // Released just now, after the disconnect: pays nothing.
        assert!(!d.stale(Duration::ZERO));
        // Released 10 ms ago, still after the disconnect 20 ms ago.
        assert!(!d.stale(Duration::from_millis(10)));
        // Released 30 ms ago, before it.
        assert!(d.stale(Duration::from_millis(30)));
    }

    #[test]
    fn a_later_disconnect_moves_the_mark_and_counts_add_up() {
        let d = Invalidation::default();
        d.record();
        std::thread::sleep(Duration::from_millis(20));
        assert!(!d.stale(Duration::from_millis(5)));
        d.record();
        assert!(d.stale(Duration::from_millis(5)));
        d.count();
        d.count();
        assert_eq!(d.invalidated(), 2);
        let status = d.pool_status(PoolState {
            size: 3,
            idle: 1,
            min: 1,
            max: 4,
            ..PoolState::default()
        });
        assert_eq!(status.in_use(), 2);
        assert_eq!(status.invalidated, 2);
        assert!(status.last_disconnect.is_some());
    }
}
