//! Health reports, error stats and the critical-error hook of a `Db`.

use std::time::{Duration, SystemTime};

use ops_core::health::{HealthInputs, HealthReport, HealthThresholds};
use ops_core::stats::{CriticalEvent, ErrorStats};

use crate::Db;

/// The longest a health check waits for the database, whatever the connect timeout: a health
/// endpoint must answer while the database hangs.
const MAX_HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

impl Db {
    /// Counts by category and code, retries attempted and succeeded, and the recent errors.
    pub fn error_stats(&self) -> ErrorStats {
        let mut stats = self.inner.errors.snapshot();
        stats.breaker = self
            .inner
            .routing
            .primary_breaker
            .as_ref()
            .map(crate::pool::PoolBreaker::status);
        stats
    }

    /// Registers a hook called once for every error that needs a person: the database
    /// unavailable, a commit whose outcome is unknown, retries exhausted. The hook runs on a
    /// dedicated thread, so it never blocks the caller whose error triggered it, and a panicking
    /// hook does not stop later deliveries.
    pub fn on_critical_error(&self, hook: impl Fn(&CriticalEvent) + Send + Sync + 'static) {
        self.inner.errors.on_critical(hook);
    }

    /// Healthy, degraded or unhealthy, with reasons, ping latency, pool, sessions and recent
    /// critical errors. Bounded by the connect timeout (at most 5 s): a dead or hung database
    /// gives `Unhealthy` quickly instead of hanging the caller.
    pub async fn health(&self) -> HealthReport {
        self.health_with(HealthThresholds::default()).await
    }

    /// `health` with explicit thresholds.
    pub async fn health_with(&self, thresholds: HealthThresholds) -> HealthReport {
        let timeout = self.inner.config.connect_timeout.min(MAX_HEALTH_TIMEOUT);
        let (ping, replicas) = tokio::join!(
            self.inner.pool.ping(timeout),
            self.inner.routing.health(timeout)
        );
        // An open breaker whose cooldown is over takes a health check as its probe: with no
        // traffic, nothing else would ever close it.
        if let Some(breaker) = &self.inner.routing.primary_breaker
            && breaker.status().state != ops_core::breaker::BreakerState::Closed
            && let Some(probe) = breaker.admit_check()
        {
            breaker.settle_check(probe, matches!(ping, ops_core::health::PingResult::Ok(_)));
        }
        let pool = self.inner.disconnects.pool_status(self.inner.pool.state());
        let breaker = self
            .inner
            .routing
            .primary_breaker
            .as_ref()
            .map(crate::pool::PoolBreaker::status);
        let inputs = HealthInputs::new(ping, pool, self.inner.tracker.stats())
            .breaker(breaker)
            .replicas(replicas)
            .recent_critical(self.inner.errors.recent_critical())
            .thresholds(thresholds)
            .at(SystemTime::now());
        HealthReport::evaluate(inputs)
    }
}
