//! Options of one session: isolation, access mode, timeout, propagation and a name.

use std::borrow::Cow;
use std::time::Duration;

/// Transaction isolation level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Isolation {
    /// READ UNCOMMITTED.
    ReadUncommitted,
    /// READ COMMITTED.
    ReadCommitted,
    /// REPEATABLE READ.
    RepeatableRead,
    /// SERIALIZABLE.
    Serializable,
}

/// What a managed session does when the caller already has one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Propagation {
    /// Join the caller's session; open one when there is none. The joining function never commits.
    #[default]
    Required,
    /// Always open a new session on its own connection; fails fast when the pool has none to give.
    RequiresNew,
    /// Run inside a savepoint of the caller's session; open a session when there is none.
    Nested,
}

/// Options for one session. Build with `SessionOptions::new()` and the chained setters, or with a
/// struct literal and `..Default::default()`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionOptions {
    /// Isolation level; `None` keeps the database's default.
    pub isolation: Option<Isolation>,
    /// Open the transaction read-only.
    pub read_only: bool,
    /// Bound on the whole session: past it the work is cancelled and rolled back.
    pub timeout: Option<Duration>,
    /// What to do when the caller already has a session.
    pub propagation: Propagation,
    /// A name shown in session stats and leak warnings; defaults to the opening function.
    pub name: Option<Cow<'static, str>>,
}

impl SessionOptions {
    /// Default options: the database's isolation, read-write, no timeout, `Required`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the isolation level.
    pub fn isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = Some(isolation);
        self
    }

    /// Opens the transaction read-only.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Bounds the whole session.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the propagation.
    pub fn propagation(mut self, propagation: Propagation) -> Self {
        self.propagation = propagation;
        self
    }

    /// Names the session.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }
}
