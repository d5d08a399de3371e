//! What a connection's way back to the pool costs, and when it gets a bounded check.
//!
//! sqlx ends every release with a ping of its own, awaited without a bound. On a connection in a
//! good state that is one cheap round trip. A connection left mid-exchange is another matter:
//! when a statement, commit or rollback future is dropped part-way (a session timeout, a
//! cancelled request, a retry deadline), the driver has to catch up with replies on the next
//! exchange, and sqlx-mysql 0.9 can lose count doing so (it records that a result is due before
//! it sends the query) and then waits for a reply that never comes: the server sits idle, the
//! release never ends, and the pool slot is gone for good. A silent network does the same.
//!
//! A cut-off call can also leave the server inside a transaction sqlx does not know of: a `BEGIN`
//! whose future was dropped still reaches the server, and sqlx, which counts only the
//! transactions it saw begin, queues no `ROLLBACK` for it.
//!
//! So ops notes every abandoned call ([`watched`], [`abandoned`]); for a short window after one,
//! every release of the server pools first gets ops' reset (is it inside a transaction? then roll
//! back), bounded by `connect_timeout`, and a connection that does not answer is closed instead
//! of hanging in sqlx's ping. Releases outside the window (nearly all of them) run no extra round
//! trip. The window is process-wide and generous: a release spawned by the drop that noted it runs
//! microseconds later, and checking a few healthy connections too costs one round trip each.

use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long after an abandoned call releases are checked.
const WINDOW: Duration = Duration::from_secs(2);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds after `epoch()` until which releases are checked; 0 before any abandoned call.
static CHECK_UNTIL: AtomicU64 = AtomicU64::new(0);

fn now_millis() -> u64 {
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Notes that a call on a pooled connection was abandoned part-way, or that a transaction was
/// dropped unfinished: the connection's release may need catching up.
pub(crate) fn abandoned() {
    let until = now_millis().saturating_add(u64::try_from(WINDOW.as_millis()).unwrap_or(0));
    CHECK_UNTIL.fetch_max(until, Ordering::Relaxed);
}

/// Whether a release now should get ops' bounded reset first.
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
pub(crate) fn check_now() -> bool {
    let until = CHECK_UNTIL.load(Ordering::Relaxed);
    until != 0 && now_millis() <= until
}

/// Runs `call`; if its future is dropped before it finishes, notes the abandoned call.
pub(crate) async fn watched<T>(call: impl Future<Output = T>) -> T {
    let mut armed = Armed(true);
    let output = call.await;
    armed.0 = false;
    output
}

struct Armed(bool);

impl Drop for Armed {
    fn drop(&mut self) {
        if self.0 {
            abandoned();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dropped_call_opens_the_window_and_a_finished_one_does_not() {
        // Other tests in this process may have opened the window; wait it out first.
        while check_now() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(watched(async { 7 }).await, 7);
        assert!(!check_now(), "a finished call is not abandoned");
        let pending = watched(std::future::pending::<()>());
        let timed_out = tokio::time::timeout(Duration::from_millis(5), pending).await;
        assert!(timed_out.is_err());
        assert!(check_now(), "a dropped call opens the window");
    }
}
