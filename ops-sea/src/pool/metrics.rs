//! The pools' metrics (feature `metrics`; names in `ops_core::metrics`).
//!
//! - **Gauges** (open, idle, in use, max) and the derived count of closed connections are
//!   sampled once a second (`db.rs` starts the task), for the primary and each replica.
//! - **Waiting and the acquire time**: sqlx does not say how long a caller waited, so each call
//!   that may take a connection runs inside [`acquiring`], which counts the caller as waiting and
//!   notes when it started. The pool hands a connection over through one of its hooks
//!   (`before_acquire` for an idle one, `after_connect` for a new one); the hook calls
//!   [`handed_over`], which reads the note through a task-local and ends the wait. The hooks run
//!   inside the caller's own future, so the task-local is the caller's. A call that ends without
//!   a connection (timed out, cancelled, refused by the breaker) stops waiting when it ends, and
//!   its wait is recorded too: a pool timeout is the longest wait there is.
//!
//! Without the feature, `acquiring` is the call itself and `handed_over` does nothing.

use std::future::Future;
#[cfg(feature = "metrics")]
use std::sync::Arc;
#[cfg(feature = "metrics")]
use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(feature = "metrics")]
use std::time::{Duration, Instant};

use ops_core::metrics::PoolMetrics;

/// How often the gauges are sampled (`Db::connect` starts the sampler).
#[cfg(feature = "metrics")]
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(1);

#[cfg(feature = "metrics")]
tokio::task_local! {
    static WAIT: Arc<Wait>;
}

/// One caller's wait for a connection.
#[cfg(feature = "metrics")]
struct Wait {
    started: Instant,
    metrics: PoolMetrics,
    waiting: AtomicBool,
}

#[cfg(feature = "metrics")]
impl Wait {
    /// Ends the wait once, recording how long it lasted.
    fn end(&self) {
        if self.waiting.swap(false, Ordering::AcqRel) {
            self.metrics.wait_ended(self.started.elapsed());
        }
    }
}

/// Ends the wait of a call that finished (or was dropped) without a connection handed over.
#[cfg(feature = "metrics")]
struct EndWait(Arc<Wait>);

#[cfg(feature = "metrics")]
impl Drop for EndWait {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// Runs `call`, which may take a connection from the pool `metrics` describes, counting the
/// caller as waiting until the pool hands a connection over.
///
/// Not an `async fn`: one would hold `call` twice (as its argument and inside the scope), and
/// futures nest deeply in debug builds.
pub(crate) fn acquiring<F: Future>(
    metrics: &PoolMetrics,
    call: F,
) -> impl Future<Output = F::Output> {
    #[cfg(feature = "metrics")]
    {
        use futures_util::FutureExt;
        let wait = Arc::new(Wait {
            started: Instant::now(),
            metrics: metrics.clone(),
            waiting: AtomicBool::new(true),
        });
        metrics.wait_started();
        let end = EndWait(Arc::clone(&wait));
        // The guard lives in the closure: dropped with the future, or when the call ends.
        WAIT.scope(wait, call).map(move |output| {
            drop(end);
            output
        })
    }
    #[cfg(not(feature = "metrics"))]
    {
        let _ = metrics;
        call
    }
}

/// Called by a pool hook as it hands a connection over: ends the waiting caller's wait.
pub(crate) fn handed_over() {
    #[cfg(feature = "metrics")]
    let _ = WAIT.try_with(|wait| wait.end());
}

/// Sets a pool's gauges from a reading of it.
#[cfg(feature = "metrics")]
pub(crate) fn sample(metrics: &PoolMetrics, state: super::PoolState) {
    metrics.sample(state.size, state.idle, state.max);
}

/// The `pool` label of a replica: `replica:<host>:<port>` (never a user or password).
pub(crate) fn replica_label(url: &ops_core::config::DatabaseUrl) -> String {
    match url::Url::parse(url.expose()) {
        Ok(parsed) => format!(
            "replica:{}:{}",
            parsed.host_str().unwrap_or("localhost"),
            parsed
                .port()
                .map_or_else(|| "default".to_owned(), |p| p.to_string())
        ),
        Err(_) => "replica".to_owned(),
    }
}
