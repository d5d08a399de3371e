//! The circuit breaker of one connection pool: the state machine, with no I/O and no driver.
//!
//! While a database is down, every call that needs a new connection waits the whole pool timeout
//! (30 s by default) before it fails, so a one-minute outage piles up a minute of waiting
//! requests. The breaker counts *connection-level* failures (the integration decides which errors
//! are: a refused or unanswered connect, a pool that made no progress); after
//! [`BreakerConfig::failures`] of them in a row, within [`BreakerConfig::window`], it opens for
//! [`BreakerConfig::cooldown`], and every call is refused at once. When the cooldown is over, one
//! call goes through as a probe (half-open): its success closes the breaker, a connection-level
//! failure opens it again for another cooldown. Calls that arrive while the probe runs are
//! refused like calls to an open breaker.
//!
//! The closed state, the one a healthy service lives in, costs two atomic loads per call and one
//! per success; the lock is taken only while failures are being counted or the state changes.

use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// When the breaker opens and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive connection-level failures that open the breaker (at least 1).
    pub failures: u32,
    /// How long the breaker stays open before it lets one probe through.
    pub cooldown: Duration,
    /// Failures count as consecutive only within this window from the first of them: a failure
    /// now and then over an afternoon never opens the breaker.
    pub window: Duration,
}

impl BreakerConfig {
    /// The default number of failures: 5.
    pub const DEFAULT_FAILURES: u32 = 5;
    /// The default cooldown: 5 s.
    pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(5);
    /// The default window: 60 s, two default pool timeouts.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: Self::DEFAULT_FAILURES,
            cooldown: Self::DEFAULT_COOLDOWN,
            window: Self::DEFAULT_WINDOW,
        }
    }
}

/// The state of a breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum BreakerState {
    /// Calls go through; connection-level failures are counted.
    Closed,
    /// Calls are refused at once until the cooldown is over.
    Open,
    /// The cooldown is over and one probe call is (or may be) in flight; other calls are refused.
    HalfOpen,
}

impl BreakerState {
    /// A stable snake_case name, used in logs and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A snapshot of one breaker, for health reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct BreakerStatus {
    /// The state now.
    pub state: BreakerState,
    /// Connection-level failures counted since the last success.
    pub consecutive_failures: u32,
    /// How much longer an open breaker refuses calls (zero when half-open, `None` when closed).
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serialize::option_duration")
    )]
    pub retry_after: Option<Duration>,
    /// When the breaker last opened, if ever.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serialize::option_system_time")
    )]
    pub last_opened: Option<SystemTime>,
    /// How many times it opened (reopening after a failed probe counts).
    pub times_opened: u64,
    /// Calls refused because it was open or half-open.
    pub rejected: u64,
}

/// What [`CircuitBreaker::admit`] decided for one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Allowed,
    /// Go ahead as the half-open probe: report the outcome, or drop the [`Probe`] to give the
    /// turn to the next call.
    Probe,
    /// Refused: the breaker is open (or a probe is in flight) for about this much longer.
    Rejected {
        /// How long until a call may be let through; at least one millisecond.
        retry_after: Duration,
    },
}

/// A change of state worth telling a person about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The breaker opened after this many consecutive failures (1 for a failed probe).
    Opened {
        /// The failures that opened it.
        failures: u32,
        /// Whether this was a failed probe reopening it.
        reopened: bool,
    },
    /// A successful probe closed the breaker after it had been open this long.
    Closed {
        /// How long calls were refused.
        after: Duration,
    },
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// The circuit breaker of one pool. See the [module documentation](self).
#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    /// The state, readable without the lock.
    state: AtomicU8,
    /// Failures since the last success, readable without the lock so a success in the healthy
    /// state can skip it.
    failures: AtomicU32,
    times_opened: AtomicU64,
    rejected: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// When the current run of failures began.
    first_failure: Option<Instant>,
    /// When an open breaker lets the next probe through.
    open_until: Option<Instant>,
    /// When it opened, for the closed transition's duration.
    opened_at: Option<Instant>,
    last_opened: Option<SystemTime>,
    probe_in_flight: bool,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> CircuitBreaker {
        CircuitBreaker {
            config: BreakerConfig {
                failures: config.failures.max(1),
                ..config
            },
            state: AtomicU8::new(CLOSED),
            failures: AtomicU32::new(0),
            times_opened: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                first_failure: None,
                open_until: None,
                opened_at: None,
                last_opened: None,
                probe_in_flight: false,
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// Decides whether a call may go ahead now.
    pub fn admit(&self, now: Instant) -> Admission {
        if self.state.load(Ordering::Acquire) == CLOSED {
            return Admission::Allowed;
        }
        let mut inner = self.lock();
        match self.state.load(Ordering::Acquire) {
            CLOSED => Admission::Allowed,
            OPEN => match inner.open_until {
                Some(until) if now < until => self.reject(until - now),
                _ => {
                    // The cooldown is over: this call is the probe.
                    self.state.store(HALF_OPEN, Ordering::Release);
                    inner.probe_in_flight = true;
                    Admission::Probe
                }
            },
            _ => {
                if inner.probe_in_flight {
                    // A probe may take up to a pool timeout; callers come back in a second.
                    self.reject(Duration::from_secs(1))
                } else {
                    inner.probe_in_flight = true;
                    Admission::Probe
                }
            }
        }
    }

    /// Whether [`admit`](Self::admit) would let a call through now, without counting anything:
    /// for routers that pick among several pools.
    pub fn would_admit(&self, now: Instant) -> bool {
        if self.state.load(Ordering::Acquire) == CLOSED {
            return true;
        }
        let inner = self.lock();
        match self.state.load(Ordering::Acquire) {
            CLOSED => true,
            OPEN => inner.open_until.is_none_or(|until| now >= until),
            _ => !inner.probe_in_flight,
        }
    }

    fn reject(&self, retry_after: Duration) -> Admission {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        Admission::Rejected {
            retry_after: retry_after.max(Duration::from_millis(1)),
        }
    }

    /// Reports a call that reached the database (whatever its own result): the failure count is
    /// reset, and a probe closes the breaker.
    pub fn on_success(&self, probe: bool, now: Instant) -> Option<Transition> {
        if !probe && self.failures.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut inner = self.lock();
        self.failures.store(0, Ordering::Release);
        inner.first_failure = None;
        if probe && self.state.load(Ordering::Acquire) != CLOSED {
            inner.probe_in_flight = false;
            inner.open_until = None;
            self.state.store(CLOSED, Ordering::Release);
            let after = inner
                .opened_at
                .take()
                .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
            return Some(Transition::Closed { after });
        }
        None
    }

    /// Reports a connection-level failure.
    pub fn on_failure(&self, probe: bool, now: Instant) -> Option<Transition> {
        let mut inner = self.lock();
        match self.state.load(Ordering::Acquire) {
            CLOSED => {
                let fresh = inner
                    .first_failure
                    .is_none_or(|first| now.saturating_duration_since(first) > self.config.window);
                let failures = if fresh {
                    inner.first_failure = Some(now);
                    1
                } else {
                    self.failures.load(Ordering::Acquire).saturating_add(1)
                };
                self.failures.store(failures, Ordering::Release);
                if failures >= self.config.failures {
                    self.open(&mut inner, now);
                    return Some(Transition::Opened {
                        failures,
                        reopened: false,
                    });
                }
                None
            }
            HALF_OPEN if probe => {
                self.failures.fetch_add(1, Ordering::AcqRel);
                self.open(&mut inner, now);
                Some(Transition::Opened {
                    failures: 1,
                    reopened: true,
                })
            }
            // A call admitted before the breaker opened, failing late: already accounted for.
            _ => None,
        }
    }

    /// Reports that a probe ended without saying anything about the database (it was cancelled,
    /// or failed for a reason of its own): the next call becomes the probe.
    pub fn on_probe_abandoned(&self) {
        let mut inner = self.lock();
        if self.state.load(Ordering::Acquire) == HALF_OPEN {
            inner.probe_in_flight = false;
        }
    }

    fn open(&self, inner: &mut Inner, now: Instant) {
        inner.open_until = Some(now + self.config.cooldown);
        inner.probe_in_flight = false;
        if inner.opened_at.is_none() {
            inner.opened_at = Some(now);
        }
        inner.last_opened = Some(SystemTime::now());
        self.times_opened.fetch_add(1, Ordering::Relaxed);
        self.state.store(OPEN, Ordering::Release);
    }

    /// The state now.
    pub fn state(&self) -> BreakerState {
        match self.state.load(Ordering::Acquire) {
            CLOSED => BreakerState::Closed,
            OPEN => BreakerState::Open,
            _ => BreakerState::HalfOpen,
        }
    }

    /// A snapshot for reports.
    pub fn status(&self, now: Instant) -> BreakerStatus {
        let inner = self.lock();
        let state = self.state();
        let retry_after = match state {
            BreakerState::Closed => None,
            BreakerState::HalfOpen => Some(Duration::ZERO),
            BreakerState::Open => Some(
                inner
                    .open_until
                    .map_or(Duration::ZERO, |until| until.saturating_duration_since(now)),
            ),
        };
        BreakerStatus {
            state,
            consecutive_failures: self.failures.load(Ordering::Acquire),
            retry_after,
            last_opened: inner.last_opened,
            times_opened: self.times_opened.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while the lock is held; a poisoned lock still holds a valid state.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A probe's turn: dropping it unresolved gives the turn to the next call, so a cancelled probe
/// never leaves the breaker half-open forever.
#[derive(Debug)]
pub struct Probe<'a> {
    breaker: Option<&'a CircuitBreaker>,
}

impl<'a> Probe<'a> {
    /// The turn of a call admitted as [`Admission::Probe`]; an inert guard for other calls.
    pub fn new(breaker: &'a CircuitBreaker, admission: Admission) -> Probe<'a> {
        Probe {
            breaker: (admission == Admission::Probe).then_some(breaker),
        }
    }

    /// Whether this call is the probe.
    pub fn is_probe(&self) -> bool {
        self.breaker.is_some()
    }

    /// The outcome was reported: nothing to do on drop.
    pub fn resolved(&mut self) {
        self.breaker = None;
    }
}

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        if let Some(breaker) = self.breaker.take() {
            breaker.on_probe_abandoned();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(failures: u32) -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig {
            failures,
            cooldown: Duration::from_secs(5),
            window: Duration::from_secs(60),
        })
    }

    fn rejected(admission: Admission) -> Duration {
        match admission {
            Admission::Rejected { retry_after } => retry_after,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn opens_after_consecutive_failures_and_refuses_with_the_remaining_cooldown() {
        let b = breaker(3);
        let t = Instant::now();
        assert_eq!(b.on_failure(false, t), None);
        assert_eq!(b.on_failure(false, t), None);
        assert_eq!(b.admit(t), Admission::Allowed);
        assert_eq!(
            b.on_failure(false, t),
            Some(Transition::Opened {
                failures: 3,
                reopened: false
            })
        );
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(
            rejected(b.admit(t + Duration::from_secs(2))),
            Duration::from_secs(3)
        );
        let status = b.status(t + Duration::from_secs(1));
        assert_eq!(status.retry_after, Some(Duration::from_secs(4)));
        assert_eq!((status.times_opened, status.rejected), (1, 1));
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = breaker(2);
        let t = Instant::now();
        b.on_failure(false, t);
        b.on_success(false, t);
        assert_eq!(b.on_failure(false, t), None);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn failures_outside_the_window_start_a_new_run() {
        let b = breaker(2);
        let t = Instant::now();
        b.on_failure(false, t);
        assert_eq!(b.on_failure(false, t + Duration::from_secs(61)), None);
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.on_failure(false, t + Duration::from_secs(62)).is_some());
    }

    #[test]
    fn one_probe_after_the_cooldown_closes_or_reopens() {
        let b = breaker(1);
        let t = Instant::now();
        b.on_failure(false, t);
        let later = t + Duration::from_secs(5);
        assert_eq!(b.admit(later), Admission::Probe);
        // Others are refused while the probe runs.
        assert_eq!(rejected(b.admit(later)), Duration::from_secs(1));
        assert_eq!(
            b.on_failure(true, later),
            Some(Transition::Opened {
                failures: 1,
                reopened: true
            })
        );
        assert_eq!(b.state(), BreakerState::Open);
        let again = later + Duration::from_secs(5);
        assert_eq!(b.admit(again), Admission::Probe);
        assert_eq!(
            b.on_success(true, again),
            Some(Transition::Closed {
                after: Duration::from_secs(10)
            })
        );
        assert_eq!(b.admit(again), Admission::Allowed);
        assert_eq!(b.status(again).times_opened, 2);
    }

    #[test]
    fn an_abandoned_probe_gives_the_turn_to_the_next_call() {
        let b = breaker(1);
        let t = Instant::now();
        b.on_failure(false, t);
        let later = t + Duration::from_secs(6);
        {
            let probe = Probe::new(&b, b.admit(later));
            assert!(probe.is_probe());
        }
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.admit(later), Admission::Probe);
    }

    #[test]
    fn late_results_of_calls_admitted_before_opening_change_nothing() {
        let b = breaker(1);
        let t = Instant::now();
        b.on_failure(false, t);
        assert_eq!(b.on_failure(false, t), None);
        assert_eq!(b.on_success(false, t), None);
        assert_eq!(b.state(), BreakerState::Open);
    }
}
