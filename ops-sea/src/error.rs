//! `OpsError`: the one error type of ops, with a category on top of SeaORM's `DbErr`.
//!
//! `OpsError` lives here rather than in `ops-core` because `From<DbErr>` must be implemented where
//! the error type is local: Rust's orphan rule forbids implementing `From<sea_orm::DbErr>` for a
//! type of `ops-core`, and `ops-core` must not depend on SeaORM. The category model it carries
//! (`ErrorCategory`, `Categorize`, the user messages) is `ops-core`'s.

use std::fmt;

use ops_core::{Categorize, Classification, ErrorCategory};
use sea_orm::DbErr;

/// Where an error happened: the entity, the operation and the key, filled in by repositories.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorContext {
    /// The entity's name, e.g. `conversation`.
    pub entity: &'static str,
    /// The operation, e.g. `get` or `create_many`.
    pub operation: &'static str,
    /// The key involved, rendered with `Debug`, when there is one.
    pub key: Option<String>,
}

/// The one error type of ops.
///
/// `category()` says what happened and whether another attempt may help; `user_message()` is a
/// sentence safe to show a person; `Display` and `source()` keep the full detail for logs.
pub struct OpsError {
    inner: Box<Inner>,
}

struct Inner {
    category: ErrorCategory,
    code: Option<String>,
    constraint: Option<String>,
    detail: String,
    context: Option<ErrorContext>,
    /// Set on calls refused by an open circuit breaker: the cooldown still to run.
    retry_after: Option<std::time::Duration>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl OpsError {
    /// An error of the given category with a detail message for logs.
    pub fn new(category: ErrorCategory, detail: impl Into<String>) -> Self {
        OpsError {
            inner: Box::new(Inner {
                category,
                code: None,
                constraint: None,
                detail: detail.into(),
                context: None,
                retry_after: None,
                source: None,
            }),
        }
    }

    /// An error built from a classification and the error it classified.
    pub fn from_classified(
        classification: Classification,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        let detail = source.to_string();
        OpsError {
            inner: Box::new(Inner {
                category: classification.category,
                code: classification.code,
                constraint: classification.constraint,
                detail,
                context: None,
                retry_after: None,
                source: Some(Box::new(source)),
            }),
        }
    }

    /// A `NotFound` error for an entity and key.
    pub fn not_found(entity: &'static str, operation: &'static str, key: impl fmt::Debug) -> Self {
        OpsError::new(
            ErrorCategory::NotFound,
            format!("no {entity} with key {key:?}"),
        )
        .with_context(entity, operation, Some(format!("{key:?}")))
    }

    /// A `Configuration` error.
    pub fn configuration(detail: impl Into<String>) -> Self {
        OpsError::new(ErrorCategory::Configuration, detail)
    }

    /// Attaches where the error happened. An existing context is kept: the innermost one wins.
    pub fn with_context(
        mut self,
        entity: &'static str,
        operation: &'static str,
        key: Option<String>,
    ) -> Self {
        if self.inner.context.is_none() {
            self.inner.context = Some(ErrorContext {
                entity,
                operation,
                key,
            });
        }
        self
    }

    /// Replaces the category, keeping code, detail and source. Used where the situation, not the
    /// driver, decides: a connection lost during COMMIT becomes `CommitUnknown`.
    pub fn recategorize(mut self, category: ErrorCategory) -> Self {
        self.inner.category = category;
        self
    }

    /// Says how long until another attempt can succeed (a circuit breaker's remaining cooldown).
    pub fn with_retry_after(mut self, remaining: std::time::Duration) -> Self {
        self.inner.retry_after = Some(remaining);
        self
    }

    /// How long until another attempt can succeed, when known: set on calls refused by an open
    /// circuit breaker. `#[db_retry]` waits for it within its deadline; axum answers it as
    /// `Retry-After`.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.inner.retry_after
    }

    /// Attaches a source error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.inner.source = Some(Box::new(source));
        self
    }

    /// What happened.
    pub fn category(&self) -> ErrorCategory {
        self.inner.category
    }

    /// Whether the category is a transient one (see [`ErrorCategory::is_retryable`]).
    pub fn is_retryable(&self) -> bool {
        self.inner.category.is_retryable()
    }

    /// A sentence a person can act on, with no SQL, parameters or credentials.
    pub fn user_message(&self) -> &'static str {
        self.inner.category.user_message()
    }

    /// The backend's code: SQLSTATE on PostgreSQL, the error number on MySQL/MariaDB, the extended
    /// result code on SQLite.
    pub fn code(&self) -> Option<&str> {
        self.inner.code.as_deref()
    }

    /// The violated constraint's name, for integrity errors where the backend gave one.
    pub fn constraint(&self) -> Option<&str> {
        self.inner.constraint.as_deref()
    }

    /// Where the error happened, when a repository filled it in.
    pub fn context(&self) -> Option<&ErrorContext> {
        self.inner.context.as_ref()
    }

    /// The full detail for logs.
    pub fn detail(&self) -> &str {
        &self.inner.detail
    }

    /// The SeaORM error this came from, if any.
    pub fn db_err(&self) -> Option<&DbErr> {
        self.inner.source.as_deref()?.downcast_ref::<DbErr>()
    }
}

impl fmt::Debug for OpsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpsError")
            .field("category", &self.inner.category)
            .field("code", &self.inner.code)
            .field("constraint", &self.inner.constraint)
            .field("context", &self.inner.context)
            .field("detail", &self.inner.detail)
            .finish()
    }
}

impl fmt::Display for OpsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner.category)?;
        if let Some(code) = &self.inner.code {
            write!(f, " [{code}]")?;
        }
        if let Some(ctx) = &self.inner.context {
            write!(f, " in {}::{}", ctx.entity, ctx.operation)?;
            if let Some(key) = &ctx.key {
                write!(f, " (key {key})")?;
            }
        }
        write!(f, ": {}", self.inner.detail)
    }
}

impl std::error::Error for OpsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl Categorize for OpsError {
    fn category(&self) -> ErrorCategory {
        self.inner.category
    }
    fn code(&self) -> Option<&str> {
        self.inner.code.as_deref()
    }
    fn retry_after(&self) -> Option<std::time::Duration> {
        self.inner.retry_after
    }
}

impl From<DbErr> for OpsError {
    fn from(err: DbErr) -> Self {
        let classification = crate::classify::classify(&err);
        let retry_after = crate::pool::rejection(&err).map(|r| r.retry_after);
        let err = OpsError::from_classified(classification, err);
        match retry_after {
            Some(remaining) => err.with_retry_after(remaining),
            None => err,
        }
    }
}

impl From<ops_core::config::ConfigError> for OpsError {
    fn from(err: ops_core::config::ConfigError) -> Self {
        let detail = err.to_string();
        OpsError::new(ErrorCategory::Configuration, detail).with_source(err)
    }
}

impl From<sqlx::Error> for OpsError {
    fn from(err: sqlx::Error) -> Self {
        let classification = crate::classify::classify_sqlx(&err);
        OpsError::from_classified(classification, err)
    }
}
