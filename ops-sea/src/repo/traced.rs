//! How every repository operation runs: in its span, with its error context, counted once in the
//! executor's error stats.

use std::future::Future;

use ops_core::ErrorCategory;
use sea_orm::{DbErr, EntityName};
use tracing::Instrument;

use super::Repository;
use crate::{Executor, OpsError};

/// Runs one operation in its span, attaching the context and recording the error on failure.
pub(super) fn traced<'a, R: Repository, C: Executor, T>(
    db: &'a C,
    operation: &'static str,
    key: Option<R::Key>,
    body: impl Future<Output = Result<T, OpsError>> + Send + 'a,
) -> impl Future<Output = Result<T, OpsError>> + Send + 'a
where
    T: Send + 'a,
{
    traced_shown::<R, C, _>(
        db,
        operation,
        move || key.map(|key| format!("{key:?}")),
        body,
    )
}

/// [`traced`] with the key rendered by a closure, called only on failure.
pub(super) fn traced_shown<'a, R: Repository, C: Executor, T>(
    db: &'a C,
    operation: &'static str,
    key: impl FnOnce() -> Option<String> + Send + 'a,
    body: impl Future<Output = Result<T, OpsError>> + Send + 'a,
) -> impl Future<Output = Result<T, OpsError>> + Send + 'a
where
    T: Send + 'a,
{
    let telemetry = db.__telemetry();
    let table = R::Entity::default().table_name();
    // The OpenTelemetry database conventions (`telemetry.rs`); the fields are only evaluated
    // when the span is enabled.
    let span = tracing::debug_span!(
        "ops.repository",
        otel.name = format!("{operation} {table}"),
        otel.kind = "client",
        entity = R::NAME,
        table,
        operation,
        db.system.name = crate::telemetry::sea_system_name(db.get_database_backend()),
        db.namespace = telemetry.and_then(|t| t.namespace()),
        db.collection.name = table,
        db.operation.name = operation,
        server.address = telemetry.and_then(|t| t.server()),
        server.port = telemetry.and_then(|t| t.port()),
        error.type = tracing::field::Empty,
    );
    let call = async move {
        match body.await {
            Ok(value) => Ok(value),
            Err(err) => {
                let err = record(db, err.with_context(R::NAME, operation, key()));
                let span = tracing::Span::current();
                if !span.is_disabled() {
                    span.record("error.type", err.category().to_string());
                }
                Err(err)
            }
        }
    };
    let scope = crate::telemetry::RepositoryCall {
        entity: R::NAME,
        operation,
        table,
    };
    crate::telemetry::repository_call_scope(scope, call).instrument(span)
}

/// Feeds the executor's error stats, then hands the error back.
///
/// An executor with error stats (`Db`, `Session`) records the errors of its own statements as
/// they happen, so recording them here would count them twice. The repository records the rest:
/// the errors it raises itself (`NotFound`, `Programming`), the ones SeaORM raises after a
/// statement succeeded (a row that does not decode), and those of statements run on a
/// transaction it began (which `create_many` records where they happen).
fn record<C: Executor>(db: &C, err: OpsError) -> OpsError {
    tracing::debug!(error = err.as_dyn(), "repository operation failed");
    if !is_statement_error(&err) {
        record_always(db, &err);
    }
    err
}

pub(super) fn record_always<C: Executor>(db: &C, err: &OpsError) {
    if let Some(recorder) = db.error_recorder() {
        recorder.record(err.category(), err.code(), err.detail());
    }
}

/// Whether the error came back from one of the executor's `ConnectionTrait` methods.
fn is_statement_error(err: &OpsError) -> bool {
    matches!(
        err.db_err(),
        Some(DbErr::Exec(_) | DbErr::Query(_) | DbErr::Conn(_) | DbErr::ConnectionAcquire(_))
    )
}

pub(super) fn programming(detail: impl Into<String>) -> OpsError {
    OpsError::new(ErrorCategory::Programming, detail)
}
