//! `OpsError`: the one error type of ops, with a category on top of SeaORM's `DbErr`.
//!
//! `OpsError` lives here rather than in `ops-core` because `From<DbErr>` must be implemented where
//! the error type is local: Rust's orphan rule forbids implementing `From<sea_orm::DbErr>` for a
//! type of `ops-core`, and `ops-core` must not depend on SeaORM. The category model it carries
//! (`ErrorCategory`, `Categorize`, the user messages) is `ops-core`'s.

use std::fmt;

use ops_core::{Categorize, Classification, ErrorCategory, RuleKind};
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
/// sentence safe to show a person; `detail()` is the full detail for logs.
///
/// `Display` follows std's convention for a wrapping error: it says what happened (the category,
/// the code, where) and leaves the driver's text to `source()`, so that error reporters that
/// print the chain (`anyhow`, `eyre`, `tracing`'s error fields) print it once. The alternate form
/// `{:#}` adds the detail on one line, for a log line that shows no chain:
///
/// ```
/// use ops_sea::OpsError;
///
/// let err = OpsError::from(sea_orm::DbErr::RecordNotUpdated);
/// assert_eq!(err.to_string(), "not_found");
/// assert_eq!(format!("{err:#}"), format!("not_found: {}", sea_orm::DbErr::RecordNotUpdated));
/// let source = std::error::Error::source(&err).expect("the driver's error");
/// assert_eq!(source.to_string(), sea_orm::DbErr::RecordNotUpdated.to_string());
/// ```
pub struct OpsError {
    inner: Box<Inner>,
}

struct Inner {
    category: ErrorCategory,
    code: Option<String>,
    constraint: Option<String>,
    detail: String,
    /// Whether `detail` is the source's own text, which `Display` then leaves to `source()`.
    detail_is_source: bool,
    /// The application's message for a business-rule error, safe to show. Kept apart from
    /// `detail` so that recategorizing a driver error never shows the driver's text.
    message: Option<String>,
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
                detail_is_source: false,
                message: None,
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
                detail_is_source: true,
                message: None,
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

    /// A business-rule error for a request that conflicts with the current state of the data
    /// ([`RuleKind::Conflict`]; HTTP 409 in the axum integration), with a message written for the
    /// person who made the request.
    ///
    /// `message` is what [`OpsError::user_message`] returns, so it must be safe to show: no SQL,
    /// no internal identifiers the caller should not see. The error is never retried.
    ///
    /// ```
    /// use ops_sea::{ErrorCategory, OpsError, RuleKind};
    ///
    /// let err = OpsError::conflict("This book is already lent.");
    /// assert_eq!(err.category(), ErrorCategory::BusinessRule(RuleKind::Conflict));
    /// assert_eq!(err.user_message(), "This book is already lent.");
    /// assert!(!err.is_retryable());
    /// ```
    pub fn conflict(message: impl Into<String>) -> Self {
        OpsError::business_rule(RuleKind::Conflict, message)
    }

    /// A business-rule error for a request that breaks a rule of the application
    /// ([`RuleKind::Violated`]; HTTP 422 in the axum integration), with a message safe to show,
    /// as [`OpsError::conflict`].
    ///
    /// ```
    /// use ops_sea::{ErrorCategory, OpsError, RuleKind};
    ///
    /// let err = OpsError::rule("A loan lasts at most 28 days.");
    /// assert_eq!(err.category(), ErrorCategory::BusinessRule(RuleKind::Violated));
    /// assert_eq!(err.user_message(), "A loan lasts at most 28 days.");
    /// ```
    pub fn rule(message: impl Into<String>) -> Self {
        OpsError::business_rule(RuleKind::Violated, message)
    }

    /// A business-rule error of the given kind with a message safe to show: the general form of
    /// [`OpsError::conflict`] and [`OpsError::rule`].
    pub fn business_rule(kind: RuleKind, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut err = OpsError::new(ErrorCategory::BusinessRule(kind), message.clone());
        err.inner.message = Some(message);
        err
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
    /// driver, decides: a connection lost during COMMIT becomes `CommitUnknown`. A business-rule
    /// message is kept only while the category stays a business rule.
    pub fn recategorize(mut self, category: ErrorCategory) -> Self {
        self.inner.category = category;
        if !matches!(category, ErrorCategory::BusinessRule(_)) {
            self.inner.message = None;
        }
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

    /// A sentence a person can act on, with no SQL, parameters or credentials: the category's
    /// sentence, or for a business-rule error the application's own message.
    pub fn user_message(&self) -> &str {
        match &self.inner.message {
            Some(message) => message,
            None => self.inner.category.user_message(),
        }
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

    /// The category, code and constraint, as a classification.
    pub(crate) fn classification(&self) -> Classification {
        let mut classification = Classification::new(self.inner.category);
        classification.code = self.inner.code.clone();
        classification.constraint = self.inner.constraint.clone();
        classification
    }

    /// This error as the `DbErr` a SeaORM trait method must return. The driver's own error is
    /// returned when there is one; otherwise the error itself travels inside (as the source of a
    /// sqlx configuration error, the one variant that carries any error), so that
    /// [`classify`](crate::classify::classify) reads its category and code back.
    // Only axum's `RequestSession` needs this so far.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn into_db_err(self) -> DbErr {
        if let Some(db_err) = self.db_err() {
            return db_err.clone();
        }
        DbErr::Conn(sea_orm::RuntimeErr::SqlxError(std::sync::Arc::new(
            sqlx::Error::Configuration(Box::new(self)),
        )))
    }

    /// This error as `tracing` records one (`error = err.as_dyn()`): its message, then each
    /// source, so the driver's text is logged once.
    pub(crate) fn as_dyn(&self) -> &(dyn std::error::Error + 'static) {
        self
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
        // The detail repeats the source's text when it came from it: a chain printer shows
        // that from `source()`, so only the alternate form writes it here.
        if f.alternate() || !self.inner.detail_is_source || self.inner.source.is_none() {
            write!(f, ": {}", self.inner.detail)?;
        }
        Ok(())
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
        let mut err = OpsError::new(ErrorCategory::Configuration, detail).with_source(err);
        err.inner.detail_is_source = true;
        err
    }
}

impl From<sqlx::Error> for OpsError {
    fn from(err: sqlx::Error) -> Self {
        let classification = crate::classify::classify_sqlx(&err);
        OpsError::from_classified(classification, err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message in the chain, as error reporters (`anyhow`'s `{:#}`, `eyre`) print it.
    fn chain(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
        let mut messages = vec![err.to_string()];
        let mut next = err.source();
        while let Some(source) = next {
            messages.push(source.to_string());
            next = source.source();
        }
        messages
    }

    #[derive(Debug)]
    struct Driver;

    impl fmt::Display for Driver {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("deadlock detected")
        }
    }

    impl std::error::Error for Driver {}

    #[test]
    fn a_chain_shows_the_drivers_text_once() {
        let mut classification =
            Classification::new(ErrorCategory::Retryable(ops_core::RetryReason::Deadlock));
        classification.code = Some("40P01".to_owned());
        let err = OpsError::from_classified(classification, Driver).with_context(
            "item",
            "update",
            Some("7".to_owned()),
        );
        let messages = chain(&err);
        let joined = messages.join(": ");
        assert_eq!(joined.matches("deadlock detected").count(), 1, "{joined}");
        assert_eq!(
            err.to_string(),
            "retryable(deadlock) [40P01] in item::update (key 7)"
        );
        // The one-line form for logs keeps the detail, and `detail()` is unchanged.
        assert_eq!(
            format!("{err:#}"),
            "retryable(deadlock) [40P01] in item::update (key 7): deadlock detected"
        );
        assert_eq!(err.detail(), "deadlock detected");

        // A SeaORM error: its text is in the chain, not in `OpsError`'s own message.
        let db_err = DbErr::Custom("the server went away".to_owned());
        let err = OpsError::from(db_err);
        assert!(!err.to_string().contains("the server went away"), "{err}");
        assert!(chain(&err)[1].contains("the server went away"));

        // An error with no source keeps its text: nothing else would print it.
        let own = OpsError::new(
            ErrorCategory::Programming,
            "session 'x' is already finished",
        );
        assert_eq!(
            own.to_string(),
            "programming: session 'x' is already finished"
        );
        assert_eq!(chain(&own).len(), 1);
    }

    #[test]
    fn business_rule_errors_carry_a_message_safe_to_show() {
        let lent = OpsError::conflict("This book is already lent.");
        assert_eq!(
            lent.category(),
            ErrorCategory::BusinessRule(RuleKind::Conflict)
        );
        assert_eq!(lent.user_message(), "This book is already lent.");
        assert!(!lent.is_retryable());
        assert_eq!(lent.code(), None);
        assert_eq!(
            lent.to_string(),
            "business_rule(conflict): This book is already lent."
        );

        let long = OpsError::rule("A loan lasts at most 28 days.");
        assert_eq!(
            long.category(),
            ErrorCategory::BusinessRule(RuleKind::Violated)
        );
        assert_eq!(long.user_message(), "A loan lasts at most 28 days.");
        let general = OpsError::business_rule(RuleKind::Violated, "Too many loans.");
        assert_eq!(general.user_message(), "Too many loans.");
        let in_context = general.with_context("loan", "create", None);
        assert_eq!(in_context.user_message(), "Too many loans.");
    }

    #[test]
    fn an_error_carried_through_a_db_err_keeps_its_classification() {
        for category in [ErrorCategory::Programming, ErrorCategory::Configuration] {
            let carried = OpsError::new(category, "the request is over").into_db_err();
            let back = OpsError::from(carried);
            assert_eq!(back.category(), category, "{back}");
        }
        let rule = OpsError::conflict("Already lent.").into_db_err();
        assert_eq!(
            crate::classify::classify(&rule).category,
            ErrorCategory::BusinessRule(RuleKind::Conflict)
        );
        // A driver's error is handed back as it is.
        let driver = OpsError::from(DbErr::RecordNotUpdated);
        assert!(matches!(driver.into_db_err(), DbErr::RecordNotUpdated));
    }

    #[test]
    fn only_business_rule_errors_show_their_own_text() {
        // A driver's text is never shown, even when the application files the error under a
        // business rule.
        let driver = OpsError::new(ErrorCategory::Other, "relation \"loans\" does not exist");
        assert_eq!(driver.user_message(), "An internal error occurred.");
        let filed = OpsError::new(
            ErrorCategory::Integrity(ops_core::IntegrityKind::Unique),
            "duplicate key value violates unique constraint \"loans_book_key\"",
        )
        .recategorize(ErrorCategory::BusinessRule(RuleKind::Conflict));
        assert_eq!(
            filed.user_message(),
            "The request conflicts with the current state of the data."
        );
        // And a business-rule error filed elsewhere loses its message.
        let moved = OpsError::conflict("Already lent.").recategorize(ErrorCategory::Other);
        assert_eq!(moved.user_message(), "An internal error occurred.");
    }
}
