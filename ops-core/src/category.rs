//! The error model every backend integration maps onto: categories, retry reasons and integrity kinds.
//!
//! A category answers the two questions an application has after a database call failed: what
//! happened, and is it worth trying again. Integrations classify driver errors from codes
//! (SQLSTATE, MySQL error numbers, SQLite extended codes, I/O kinds), never from message text.

use std::fmt;

/// Why an error is worth another attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum RetryReason {
    /// The connection broke (I/O error, protocol error, server closed the socket) outside a commit.
    ConnectionLost,
    /// The transaction could not be serialized (PostgreSQL 40001, SQLite snapshot conflicts).
    SerializationFailure,
    /// The database chose this transaction as a deadlock victim (40P01, MySQL 1213).
    Deadlock,
    /// The database file or table is locked by another writer (SQLite BUSY/LOCKED).
    Busy,
    /// The server refuses new connections for now: starting up or shutting down (57P03), too many
    /// connections (53300, MySQL 1040). A session the server terminated (57P01, 57P02) is
    /// `ConnectionLost`: its own transaction is gone, so a commit in flight is `CommitUnknown`.
    ServerUnavailable,
    /// No connection could be taken from the pool within the pool timeout.
    PoolExhausted,
    /// A lock could not be acquired within the lock timeout (55P03, MySQL 1205).
    LockTimeout,
    /// A statement or session ran past its timeout and was cancelled (57014, MariaDB 1969).
    StatementTimeout,
}

impl RetryReason {
    /// Every reason, in declaration order.
    pub const ALL: [RetryReason; 8] = [
        RetryReason::ConnectionLost,
        RetryReason::SerializationFailure,
        RetryReason::Deadlock,
        RetryReason::Busy,
        RetryReason::ServerUnavailable,
        RetryReason::PoolExhausted,
        RetryReason::LockTimeout,
        RetryReason::StatementTimeout,
    ];

    /// A stable snake_case name, used in logs, stats and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            RetryReason::ConnectionLost => "connection_lost",
            RetryReason::SerializationFailure => "serialization_failure",
            RetryReason::Deadlock => "deadlock",
            RetryReason::Busy => "busy",
            RetryReason::ServerUnavailable => "server_unavailable",
            RetryReason::PoolExhausted => "pool_exhausted",
            RetryReason::LockTimeout => "lock_timeout",
            RetryReason::StatementTimeout => "statement_timeout",
        }
    }
}

/// Which integrity rule a statement broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum IntegrityKind {
    /// A unique or primary-key constraint.
    Unique,
    /// A foreign-key constraint.
    ForeignKey,
    /// A NOT NULL constraint.
    NotNull,
    /// A CHECK constraint.
    Check,
    /// A PostgreSQL exclusion constraint.
    Exclusion,
}

impl IntegrityKind {
    /// A stable snake_case name, used in logs, stats and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            IntegrityKind::Unique => "unique",
            IntegrityKind::ForeignKey => "foreign_key",
            IntegrityKind::NotNull => "not_null",
            IntegrityKind::Check => "check",
            IntegrityKind::Exclusion => "exclusion",
        }
    }
}

/// Which kind of business rule an application error broke: see [`ErrorCategory::BusinessRule`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum RuleKind {
    /// The request conflicts with the current state of the data: the book is already lent, the
    /// seat already taken. HTTP 409.
    Conflict,
    /// The request breaks a rule of the application: a loan longer than allowed, a negative
    /// quantity. HTTP 422.
    Violated,
}

impl RuleKind {
    /// A stable snake_case name, used in logs, stats and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            RuleKind::Conflict => "conflict",
            RuleKind::Violated => "violated",
        }
    }
}

impl fmt::Display for RuleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened, in terms an application can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum ErrorCategory {
    /// A transient failure: the same work may succeed if attempted again.
    Retryable(RetryReason),
    /// The data broke an integrity rule; attempting again gives the same answer.
    Integrity(IntegrityKind),
    /// The row asked for does not exist.
    NotFound,
    /// A query expected one row and found several.
    MultipleResults,
    /// The statement itself is wrong: syntax, unknown table or column, type mismatch, misuse of the API.
    Programming,
    /// The connection was lost while a COMMIT was in flight: the work may or may not have been committed.
    CommitUnknown,
    /// The configuration is wrong: a bad URL, a bad setting, failed authentication, a missing database.
    Configuration,
    /// The database cannot be reached at all, or the pool is closed.
    Unavailable,
    /// An error the application raised on purpose because a business rule said no: a domain
    /// conflict or a rule violated. Its message was written for the person who made the request
    /// and is safe to show; it is never retried (another attempt gives the same answer) and is
    /// not a fault of the database. Built with `OpsError::conflict` or `OpsError::rule`.
    BusinessRule(RuleKind),
    /// Anything not classified above.
    Other,
}

impl ErrorCategory {
    /// Whether this category is a transient one.
    ///
    /// The default [`RetryPolicy`](crate::RetryPolicy) retries only some of the retryable reasons;
    /// pool exhaustion and the two timeouts are opt-in.
    pub const fn is_retryable(self) -> bool {
        matches!(self, ErrorCategory::Retryable(_))
    }

    /// Whether the error needs a person: the database is unavailable or a commit's outcome is unknown.
    pub const fn is_critical(self) -> bool {
        matches!(
            self,
            ErrorCategory::Unavailable | ErrorCategory::CommitUnknown
        )
    }

    /// A stable snake_case name of the category alone (`retryable`, `integrity`, ...).
    pub const fn kind(self) -> &'static str {
        match self {
            ErrorCategory::Retryable(_) => "retryable",
            ErrorCategory::Integrity(_) => "integrity",
            ErrorCategory::NotFound => "not_found",
            ErrorCategory::MultipleResults => "multiple_results",
            ErrorCategory::Programming => "programming",
            ErrorCategory::CommitUnknown => "commit_unknown",
            ErrorCategory::Configuration => "configuration",
            ErrorCategory::Unavailable => "unavailable",
            ErrorCategory::BusinessRule(_) => "business_rule",
            ErrorCategory::Other => "other",
        }
    }

    /// A sentence a person can act on: no SQL, no parameters, no credentials.
    ///
    /// For [`ErrorCategory::BusinessRule`] this is a generic sentence; the error itself carries
    /// the application's own message (`OpsError::user_message` returns it).
    pub const fn user_message(self) -> &'static str {
        match self {
            ErrorCategory::Retryable(RetryReason::PoolExhausted) => {
                "The service is busy right now. Please try again in a moment."
            }
            ErrorCategory::Retryable(RetryReason::LockTimeout)
            | ErrorCategory::Retryable(RetryReason::Busy) => {
                "The data is being changed by someone else right now. Please try again."
            }
            ErrorCategory::Retryable(RetryReason::StatementTimeout) => {
                "The request took too long and was cancelled. Please try again or narrow it down."
            }
            ErrorCategory::Retryable(RetryReason::SerializationFailure)
            | ErrorCategory::Retryable(RetryReason::Deadlock) => {
                "The request conflicted with another change. Please try again."
            }
            ErrorCategory::Retryable(_) => {
                "The database connection was interrupted. Please try again."
            }
            ErrorCategory::Integrity(IntegrityKind::Unique) => {
                "A record with the same unique value already exists."
            }
            ErrorCategory::Integrity(IntegrityKind::ForeignKey) => {
                "The record refers to something that does not exist, or is still referred to by another record."
            }
            ErrorCategory::Integrity(IntegrityKind::NotNull) => "A required value is missing.",
            ErrorCategory::Integrity(IntegrityKind::Check)
            | ErrorCategory::Integrity(IntegrityKind::Exclusion) => {
                "A value breaks one of the rules for this record."
            }
            ErrorCategory::NotFound => "The requested record was not found.",
            ErrorCategory::MultipleResults => {
                "More than one record matched where one was expected."
            }
            ErrorCategory::CommitUnknown => {
                "The connection was lost while saving; the change may or may not have been saved. Check before trying again."
            }
            ErrorCategory::Unavailable => {
                "The database is unavailable right now. Please try again later."
            }
            ErrorCategory::BusinessRule(RuleKind::Conflict) => {
                "The request conflicts with the current state of the data."
            }
            ErrorCategory::BusinessRule(_) => "The request breaks one of the application's rules.",
            ErrorCategory::Programming | ErrorCategory::Configuration | ErrorCategory::Other => {
                "An internal error occurred."
            }
        }
    }
}

impl fmt::Display for ErrorCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorCategory::Retryable(reason) => write!(f, "retryable({})", reason.as_str()),
            ErrorCategory::Integrity(kind) => write!(f, "integrity({})", kind.as_str()),
            ErrorCategory::BusinessRule(kind) => write!(f, "business_rule({})", kind.as_str()),
            other => f.write_str(other.kind()),
        }
    }
}

impl fmt::Display for RetryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for IntegrityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error that knows its category. `#[db_retry]` and [`retry`](crate::retry()) require it of the
/// error type they see.
pub trait Categorize {
    /// The category of this error.
    fn category(&self) -> ErrorCategory;

    /// The backend's own code (SQLSTATE, MySQL error number, SQLite extended code), when known.
    fn code(&self) -> Option<&str> {
        None
    }

    /// How long until another attempt can succeed, when the error knows: a call refused by an
    /// open circuit breaker says how much of the cooldown is left. The retry loop waits that long
    /// when its deadline allows, and gives up at once otherwise, instead of spinning against the
    /// breaker. Error types that wrap an `OpsError` should forward it.
    fn retry_after(&self) -> Option<std::time::Duration> {
        None
    }
}

impl<T: Categorize + ?Sized> Categorize for &T {
    fn category(&self) -> ErrorCategory {
        (**self).category()
    }
    fn code(&self) -> Option<&str> {
        (**self).code()
    }
    fn retry_after(&self) -> Option<std::time::Duration> {
        (**self).retry_after()
    }
}

impl<T: Categorize + ?Sized> Categorize for Box<T> {
    fn category(&self) -> ErrorCategory {
        (**self).category()
    }
    fn code(&self) -> Option<&str> {
        (**self).code()
    }
    fn retry_after(&self) -> Option<std::time::Duration> {
        (**self).retry_after()
    }
}

/// What a backend classifier found out about one driver error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classification {
    /// The category.
    pub category: ErrorCategory,
    /// The backend's code, when it gave one.
    pub code: Option<String>,
    /// The constraint's name for integrity errors, when the backend gave one.
    pub constraint: Option<String>,
}

impl Classification {
    /// A classification with a category only.
    pub fn new(category: ErrorCategory) -> Self {
        Classification {
            category,
            code: None,
            constraint: None,
        }
    }

    /// The same, with a backend code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// The same, with a constraint name.
    pub fn with_constraint(mut self, constraint: Option<String>) -> Self {
        self.constraint = constraint;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RetryPolicy;

    #[test]
    fn business_rules_have_a_category_of_their_own() {
        let conflict = ErrorCategory::BusinessRule(RuleKind::Conflict);
        let violated = ErrorCategory::BusinessRule(RuleKind::Violated);
        assert_eq!(conflict.kind(), "business_rule");
        assert_eq!(conflict.to_string(), "business_rule(conflict)");
        assert_eq!(violated.to_string(), "business_rule(violated)");
        for category in [conflict, violated] {
            assert!(!category.is_retryable());
            assert!(!category.is_critical(), "not a fault of the database");
            assert!(
                !RetryPolicy::new().idempotent(true).should_retry(category),
                "another attempt gives the same answer"
            );
            assert_ne!(category.user_message(), "An internal error occurred.");
        }
        assert_ne!(conflict.user_message(), violated.user_message());
    }
}
