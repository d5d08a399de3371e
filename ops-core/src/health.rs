//! Health: the report behind `db.health()` and the pure rules that decide its status.
//!
//! The integration gathers the inputs (a ping, the pool's counts, the session tracker's stats and
//! the recent critical events) into [`HealthInputs`]; [`HealthReport::evaluate`] turns them into a
//! status and the reasons for it, without I/O, so the rules are tested here with no database.
//!
//! Over 700 lines only because of its unit tests (the report and its rules are the first 480).

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::breaker::{BreakerState, BreakerStatus};
use crate::stats::CriticalEvent;
use crate::tracker::SessionStats;

/// The overall state of the database as seen by this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum HealthStatus {
    /// Everything answered and nothing looks wrong.
    Healthy,
    /// The database answers, but something needs attention: see the report's reasons.
    Degraded,
    /// The database does not answer.
    Unhealthy,
}

impl HealthStatus {
    /// Whether the database can serve requests: `true` for healthy and degraded.
    pub const fn is_ok(self) -> bool {
        matches!(self, HealthStatus::Healthy | HealthStatus::Degraded)
    }

    /// A stable snake_case name, used in logs and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a connection pool reports about itself: `db.pool_state()`, and the pool part of a
/// health report.
///
/// With the `serde` feature it serializes its fields and `in_use`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolState {
    /// Connections open now, idle or in use.
    pub size: u32,
    /// Open connections waiting in the pool.
    pub idle: u32,
    /// The most connections the pool may open.
    pub max: u32,
    /// The fewest connections the pool keeps open.
    pub min: u32,
    /// Connections checked (pinged, and closed when dead) at checkout because they were last
    /// released before a disconnect: a statement that lost its connection, or a failed ping or
    /// reset in the pool's hooks. Counted since the pool was built.
    pub invalidated: u64,
    /// When this pool last saw a disconnect, if ever.
    pub last_disconnect: Option<SystemTime>,
}

impl PoolState {
    /// Connections handed out to callers now.
    pub const fn in_use(&self) -> u32 {
        self.size.saturating_sub(self.idle)
    }

    /// Whether every connection the pool may open is in use, so the next caller waits.
    ///
    /// A pool that reports a `max` of zero (unknown) is never saturated.
    pub const fn is_saturated(&self) -> bool {
        self.max > 0 && self.in_use() >= self.max && self.idle == 0
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for PoolState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut state = s.serialize_struct("PoolState", 7)?;
        state.serialize_field("size", &self.size)?;
        state.serialize_field("idle", &self.idle)?;
        state.serialize_field("in_use", &self.in_use())?;
        state.serialize_field("max", &self.max)?;
        state.serialize_field("min", &self.min)?;
        state.serialize_field("invalidated", &self.invalidated)?;
        state.serialize_field("last_disconnect", &self.last_disconnect)?;
        state.end()
    }
}

/// What the ping found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PingResult {
    /// The database answered after this long.
    Ok(Duration),
    /// The ping failed with this error.
    Failed(String),
    /// No answer within this long.
    TimedOut(Duration),
}

impl From<Result<Duration, String>> for PingResult {
    fn from(result: Result<Duration, String>) -> Self {
        match result {
            Ok(latency) => PingResult::Ok(latency),
            Err(error) => PingResult::Failed(error),
        }
    }
}

/// The limits [`HealthReport::evaluate`] compares against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthThresholds {
    /// A ping slower than this makes the report degraded. Default: 500 ms.
    pub slow_ping: Duration,
    /// Critical events younger than this make the report degraded. Default: 5 minutes.
    pub critical_window: Duration,
}

impl HealthThresholds {
    /// The default slow-ping threshold.
    pub const DEFAULT_SLOW_PING: Duration = Duration::from_millis(500);
    /// The default window for critical events.
    pub const DEFAULT_CRITICAL_WINDOW: Duration = Duration::from_secs(5 * 60);
}

impl Default for HealthThresholds {
    fn default() -> Self {
        HealthThresholds {
            slow_ping: Self::DEFAULT_SLOW_PING,
            critical_window: Self::DEFAULT_CRITICAL_WINDOW,
        }
    }
}

/// Everything a health check gathered, for [`HealthReport::evaluate`].
#[derive(Clone, Debug)]
pub struct HealthInputs {
    /// What the ping found.
    pub ping: PingResult,
    /// The pool's counts.
    pub pool: PoolState,
    /// The session tracker's stats; `long_running` lists sessions past the leak threshold.
    pub sessions: SessionStats,
    /// Recent critical events, in any order; only those inside the window count.
    pub recent_critical: Vec<CriticalEvent>,
    /// The limits to compare against.
    pub thresholds: HealthThresholds,
    /// The time of the check: the report's `checked_at`, and the end of the critical window.
    pub now: SystemTime,
    /// The primary's circuit breaker; `None` when it is turned off.
    pub breaker: Option<BreakerStatus>,
    /// The read replicas, each already checked.
    pub replicas: Vec<ReplicaHealth>,
}

impl HealthInputs {
    /// Inputs with no critical events, default thresholds, and the current time.
    pub fn new(ping: impl Into<PingResult>, pool: PoolState, sessions: SessionStats) -> Self {
        HealthInputs {
            ping: ping.into(),
            pool,
            sessions,
            recent_critical: Vec::new(),
            thresholds: HealthThresholds::default(),
            now: SystemTime::now(),
            breaker: None,
            replicas: Vec::new(),
        }
    }

    /// The same, with the primary's circuit breaker.
    pub fn breaker(mut self, breaker: Option<BreakerStatus>) -> Self {
        self.breaker = breaker;
        self
    }

    /// The same, with these read replicas.
    pub fn replicas(mut self, replicas: Vec<ReplicaHealth>) -> Self {
        self.replicas = replicas;
        self
    }

    /// The same, with these critical events.
    pub fn recent_critical(mut self, events: Vec<CriticalEvent>) -> Self {
        self.recent_critical = events;
        self
    }

    /// The same, with these thresholds.
    pub fn thresholds(mut self, thresholds: HealthThresholds) -> Self {
        self.thresholds = thresholds;
        self
    }

    /// The same, checked at `now` instead of the current time.
    pub fn at(mut self, now: SystemTime) -> Self {
        self.now = now;
        self
    }
}

/// The result of a health check, from `db.health()`.
///
/// With the `serde` feature it serializes with durations as milliseconds (a float, to keep
/// sub-millisecond pings visible) and times as Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct HealthReport {
    /// The overall status: the worst any rule found.
    pub status: HealthStatus,
    /// Why the status is not healthy, one sentence per finding; empty when healthy.
    pub reasons: Vec<String>,
    /// How long the ping took; `None` when it failed or timed out.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serialize::option_duration")
    )]
    pub ping: Option<Duration>,
    /// The pool's counts.
    pub pool: PoolState,
    /// The session tracker's stats.
    pub sessions: SessionStats,
    /// The critical events inside the window, oldest first.
    pub recent_critical: Vec<CriticalEvent>,
    /// When the check ran.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serialize::system_time")
    )]
    pub checked_at: SystemTime,
    /// The primary's circuit breaker; `None` when it is turned off.
    pub breaker: Option<BreakerStatus>,
    /// The read replicas, in configuration order; empty without replicas.
    pub replicas: Vec<ReplicaHealth>,
}

/// One read replica in a [`HealthReport`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ReplicaHealth {
    /// The replica's URL without its password.
    pub name: String,
    /// Healthy (serving reads), degraded (lagging past the limit: skipped) or unhealthy (down:
    /// skipped).
    pub status: HealthStatus,
    /// Why the replica is skipped; `None` when it serves reads.
    pub reason: Option<String>,
    /// How far replay is behind the primary, as last measured; `None` when unknown.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serialize::option_duration")
    )]
    pub lag: Option<Duration>,
    /// How long the check's round trip took; `None` when it failed.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serialize::option_duration")
    )]
    pub ping: Option<Duration>,
    /// The replica's own pool.
    pub pool: PoolState,
    /// The replica's own circuit breaker; `None` when breakers are turned off.
    pub breaker: Option<BreakerStatus>,
}

impl HealthReport {
    /// Applies the health rules to what a check gathered.
    ///
    /// - The ping failed or timed out: unhealthy.
    /// - The pool is saturated (every allowed connection in use, none idle): degraded.
    /// - The ping was slower than the threshold: degraded.
    /// - Sessions are open past the leak threshold: degraded.
    /// - Critical events happened inside the window: degraded.
    ///
    /// Every rule is checked, so the reasons list every finding, not only the worst.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ops_core::health::{HealthInputs, HealthReport, HealthStatus, PoolState};
    ///
    /// let pool = PoolState { size: 2, idle: 1, max: 10, min: 1, ..PoolState::default() };
    /// let inputs = HealthInputs::new(Ok(Duration::from_millis(2)), pool, Default::default());
    /// let report = HealthReport::evaluate(inputs);
    /// assert_eq!(report.status, HealthStatus::Healthy);
    /// assert!(report.reasons.is_empty());
    /// ```
    pub fn evaluate(inputs: HealthInputs) -> HealthReport {
        let HealthInputs {
            ping,
            pool,
            sessions,
            recent_critical,
            thresholds,
            now,
            breaker,
            replicas,
        } = inputs;
        let mut status = HealthStatus::Healthy;
        let mut reasons = Vec::new();
        let mut finding = |found: HealthStatus, reason: String| {
            status = status.max(found);
            reasons.push(reason);
        };

        let latency = match ping {
            PingResult::Ok(latency) => {
                if latency > thresholds.slow_ping {
                    finding(
                        HealthStatus::Degraded,
                        format!(
                            "ping took {latency:?}, over the {:?} threshold; check the database's load and the network",
                            thresholds.slow_ping
                        ),
                    );
                }
                Some(latency)
            }
            PingResult::Failed(error) => {
                finding(
                    HealthStatus::Unhealthy,
                    format!("ping failed: {error}; check that the database is up and reachable"),
                );
                None
            }
            PingResult::TimedOut(after) => {
                finding(
                    HealthStatus::Unhealthy,
                    format!(
                        "ping got no answer within {after:?}; check that the database is up and reachable"
                    ),
                );
                None
            }
        };

        if pool.is_saturated() {
            finding(
                HealthStatus::Degraded,
                format!(
                    "pool saturated: all {} connections in use and none idle; raise DB_POOL_SIZE or find what holds connections",
                    pool.max
                ),
            );
        }

        if let Some(oldest) = sessions.long_running.first() {
            finding(
                HealthStatus::Degraded,
                format!(
                    "{} session(s) open past the leak threshold, oldest `{}` from {} for {:?}; make sure sessions are committed or dropped",
                    sessions.long_running.len(),
                    oldest.name,
                    oldest.origin,
                    oldest.age
                ),
            );
        }

        let mut recent_critical: Vec<CriticalEvent> = recent_critical
            .into_iter()
            .filter(|event| within(event.at, now, thresholds.critical_window))
            .collect();
        recent_critical.sort_by_key(|event| event.at);
        if let Some(latest) = recent_critical.last() {
            finding(
                HealthStatus::Degraded,
                format!(
                    "{} critical error(s) in the last {:?}, latest {} ({}): {}; see the error stats",
                    recent_critical.len(),
                    thresholds.critical_window,
                    latest.kind,
                    latest.category,
                    latest.detail
                ),
            );
        }

        if let Some(breaker) = &breaker
            && breaker.state != BreakerState::Closed
        {
            finding(
                HealthStatus::Unhealthy,
                format!(
                    "circuit breaker {} after {} connection failure(s): calls fail at once for another {:?}; check that the database is up and reachable",
                    breaker.state,
                    breaker.consecutive_failures,
                    breaker.retry_after.unwrap_or_default()
                ),
            );
        }

        let serving = replicas
            .iter()
            .filter(|r| r.status == HealthStatus::Healthy)
            .count();
        for replica in replicas
            .iter()
            .filter(|r| r.status != HealthStatus::Healthy)
        {
            finding(
                HealthStatus::Degraded,
                format!(
                    "replica {} is {} ({}); its reads go to {}",
                    replica.name,
                    replica.status,
                    replica.reason.as_deref().unwrap_or("skipped"),
                    if serving > 0 {
                        "the other replicas"
                    } else {
                        "the primary"
                    }
                ),
            );
        }

        HealthReport {
            status,
            reasons,
            ping: latency,
            pool,
            sessions,
            recent_critical,
            checked_at: now,
            breaker,
            replicas,
        }
    }

    /// Whether the database can serve requests: `true` for healthy and degraded.
    pub const fn is_ok(&self) -> bool {
        self.status.is_ok()
    }
}

/// Whether `at` lies inside the `window` that ends at `now`. Events stamped after `now` (a clock
/// that stepped back) count as inside.
fn within(at: SystemTime, now: SystemTime, window: Duration) -> bool {
    match now.duration_since(at) {
        Ok(age) => age <= window,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCategory;
    use crate::stats::CriticalKind;
    use crate::tracker::LongRunningSession;

    fn pool() -> PoolState {
        PoolState {
            size: 4,
            idle: 2,
            max: 10,
            min: 1,
            ..PoolState::default()
        }
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn inputs(ping: PingResult) -> HealthInputs {
        HealthInputs::new(ping, pool(), SessionStats::default()).at(now())
    }

    fn event(age: Duration) -> CriticalEvent {
        CriticalEvent {
            kind: CriticalKind::CommitUnknown,
            category: ErrorCategory::CommitUnknown,
            code: None,
            detail: "connection reset during commit".into(),
            at: now() - age,
            attempts: None,
        }
    }

    #[test]
    fn fast_ping_idle_pool_is_healthy() {
        let report = HealthReport::evaluate(inputs(PingResult::Ok(Duration::from_millis(3))));
        assert_eq!(report.status, HealthStatus::Healthy);
        assert!(report.reasons.is_empty());
        assert_eq!(report.ping, Some(Duration::from_millis(3)));
        assert_eq!(report.checked_at, now());
        assert!(report.is_ok());
    }

    #[test]
    fn failed_ping_is_unhealthy() {
        let report =
            HealthReport::evaluate(inputs(PingResult::Failed("connection refused".into())));
        assert_eq!(report.status, HealthStatus::Unhealthy);
        assert_eq!(report.ping, None);
        assert!(!report.is_ok());
        assert_eq!(report.reasons.len(), 1);
        assert!(report.reasons[0].contains("connection refused"));
    }

    #[test]
    fn timed_out_ping_is_unhealthy() {
        let report = HealthReport::evaluate(inputs(PingResult::TimedOut(Duration::from_secs(5))));
        assert_eq!(report.status, HealthStatus::Unhealthy);
        assert!(report.reasons[0].contains("5s"), "{:?}", report.reasons);
    }

    #[test]
    fn result_converts_into_ping() {
        let ok: PingResult = Ok::<_, String>(Duration::from_millis(1)).into();
        assert_eq!(ok, PingResult::Ok(Duration::from_millis(1)));
        let failed: PingResult = Err::<Duration, _>("down".to_owned()).into();
        assert_eq!(failed, PingResult::Failed("down".into()));
    }

    #[test]
    fn slow_ping_is_degraded() {
        let mut i = inputs(PingResult::Ok(Duration::from_millis(800)));
        let report = HealthReport::evaluate(i.clone());
        assert_eq!(report.status, HealthStatus::Degraded);
        assert!(report.is_ok());
        assert!(report.reasons[0].contains("threshold"));

        // Exactly at the threshold is not slow.
        i.ping = PingResult::Ok(HealthThresholds::DEFAULT_SLOW_PING);
        assert_eq!(
            HealthReport::evaluate(i.clone()).status,
            HealthStatus::Healthy
        );

        i.thresholds.slow_ping = Duration::from_millis(100);
        assert_eq!(HealthReport::evaluate(i).status, HealthStatus::Degraded);
    }

    #[test]
    fn saturated_pool_is_degraded() {
        let mut i = inputs(PingResult::Ok(Duration::from_millis(1)));
        i.pool = PoolState {
            size: 10,
            idle: 0,
            max: 10,
            min: 1,
            ..PoolState::default()
        };
        let report = HealthReport::evaluate(i.clone());
        assert_eq!(report.status, HealthStatus::Degraded);
        assert!(report.reasons[0].contains("pool saturated"));

        // One idle connection left is not saturation.
        i.pool.idle = 1;
        assert_eq!(
            HealthReport::evaluate(i.clone()).status,
            HealthStatus::Healthy
        );

        // An unknown maximum (zero) never counts as saturated.
        i.pool = PoolState::default();
        assert_eq!(HealthReport::evaluate(i).status, HealthStatus::Healthy);
    }

    #[test]
    fn leaked_sessions_are_degraded() {
        let mut i = inputs(PingResult::Ok(Duration::from_millis(1)));
        i.sessions.long_running.push(LongRunningSession {
            id: 7,
            name: "transfer".into(),
            origin: "src/bank.rs:42".into(),
            age: Duration::from_secs(120),
        });
        let report = HealthReport::evaluate(i);
        assert_eq!(report.status, HealthStatus::Degraded);
        assert!(report.reasons[0].contains("transfer"));
        assert!(report.reasons[0].contains("src/bank.rs:42"));
    }

    #[test]
    fn critical_events_count_only_inside_the_window() {
        let old = event(Duration::from_secs(6 * 60));
        let report = HealthReport::evaluate(
            inputs(PingResult::Ok(Duration::from_millis(1))).recent_critical(vec![old]),
        );
        assert_eq!(report.status, HealthStatus::Healthy);
        assert!(report.recent_critical.is_empty());

        let fresh = event(Duration::from_secs(30));
        let fresher = event(Duration::from_secs(10));
        let report = HealthReport::evaluate(
            inputs(PingResult::Ok(Duration::from_millis(1))).recent_critical(vec![
                fresher.clone(),
                event(Duration::from_secs(600)),
                fresh.clone(),
            ]),
        );
        assert_eq!(report.status, HealthStatus::Degraded);
        assert_eq!(report.recent_critical, vec![fresh, fresher]);
        assert!(report.reasons[0].starts_with("2 critical error(s)"));

        // A narrower window leaves them out.
        let narrow = HealthThresholds {
            critical_window: Duration::from_secs(5),
            ..HealthThresholds::default()
        };
        let report = HealthReport::evaluate(
            inputs(PingResult::Ok(Duration::from_millis(1)))
                .thresholds(narrow)
                .recent_critical(vec![event(Duration::from_secs(10))]),
        );
        assert_eq!(report.status, HealthStatus::Healthy);
    }

    #[test]
    fn events_from_the_future_count() {
        let mut future = event(Duration::ZERO);
        future.at = now() + Duration::from_secs(3);
        let report = HealthReport::evaluate(
            inputs(PingResult::Ok(Duration::from_millis(1))).recent_critical(vec![future]),
        );
        assert_eq!(report.status, HealthStatus::Degraded);
    }

    #[test]
    fn worst_finding_wins_and_every_reason_is_listed() {
        let mut i = inputs(PingResult::Failed("refused".into()))
            .recent_critical(vec![event(Duration::from_secs(1))]);
        i.pool = PoolState {
            size: 5,
            idle: 0,
            max: 5,
            min: 0,
            ..PoolState::default()
        };
        let report = HealthReport::evaluate(i);
        assert_eq!(report.status, HealthStatus::Unhealthy);
        assert_eq!(report.reasons.len(), 3, "{:?}", report.reasons);
    }

    #[test]
    fn status_orders_by_severity() {
        assert!(HealthStatus::Healthy < HealthStatus::Degraded);
        assert!(HealthStatus::Degraded < HealthStatus::Unhealthy);
        assert_eq!(HealthStatus::Degraded.to_string(), "degraded");
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serializes_durations_and_times_as_milliseconds() {
        let mut i = inputs(PingResult::Ok(Duration::from_micros(1500)))
            .recent_critical(vec![event(Duration::from_secs(2))]);
        i.sessions.long_running.push(LongRunningSession {
            id: 1,
            name: "slow".into(),
            origin: "src/lib.rs:1".into(),
            age: Duration::from_millis(2500),
        });
        let json = serde_json::to_value(HealthReport::evaluate(i)).expect("report serializes");
        assert_eq!(json["status"], "degraded");
        assert_eq!(json["ping"], 1.5);
        assert_eq!(json["checked_at"], 1_700_000_000_000_u64);
        assert_eq!(json["pool"]["max"], 10);
        // `in_use` is derived from the counts, and still in the JSON form.
        assert_eq!(json["pool"]["in_use"], 2);
        assert_eq!(json["pool"]["invalidated"], 0);
        assert!(json["pool"]["last_disconnect"].is_null());
        assert_eq!(json["recent_critical"][0]["kind"], "commit_unknown");
        assert_eq!(json["recent_critical"][0]["category"], "commit_unknown");
        assert_eq!(json["recent_critical"][0]["at"], 1_699_999_998_000_u64);
        assert_eq!(json["sessions"]["long_running"][0]["age"], 2500.0);

        let failed = HealthReport::evaluate(inputs(PingResult::Failed("x".into())));
        let json = serde_json::to_value(failed).expect("report serializes");
        assert!(json["ping"].is_null());
    }
}
