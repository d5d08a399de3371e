//! `Executor`: what every generated repository function takes first.
//!
//! It is SeaORM's `ConnectionTrait` plus access to the error stats of the `Db` behind it, so that
//! repositories feed `db.error_stats()` whether they run on a `Db`, a `Session`, or a plain SeaORM
//! connection (which has no stats, and records nothing).

use ops_core::stats::ErrorStatsRecorder;
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction};

/// An executor of statements: `&Db`, `&Session`, or any SeaORM connection or transaction.
pub trait Executor: ConnectionTrait + Send + Sync {
    /// The error stats to record failures in, when the executor belongs to a `Db`.
    ///
    /// An executor that returns a recorder here must record every error of its own statements
    /// itself (as `Db` and `Session` do), exactly once. Repositories rely on that: they record
    /// only the errors that did not come from the executor's statements (`NotFound`, invalid
    /// sort columns, SeaORM's own checks), so that each failure is counted once.
    fn error_recorder(&self) -> Option<&ErrorStatsRecorder> {
        None
    }

    /// The database's attributes for spans and its statement settings; `None` on a plain
    /// SeaORM connection.
    #[doc(hidden)]
    fn __telemetry(&self) -> Option<&crate::telemetry::Telemetry> {
        None
    }

    /// Where a bulk load (`create_many`) may stream its rows instead of sending statements.
    #[doc(hidden)]
    fn __bulk_route(&self) -> BulkRoute<'_> {
        BulkRoute::Statements
    }
}

/// Where a bulk load may stream its rows: PostgreSQL's `COPY` needs a sqlx connection ops holds,
/// which a `Db` and some sessions have and SeaORM's connections and transactions do not.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum BulkRoute<'a> {
    /// Statements through `ConnectionTrait` only.
    Statements,
    /// A connection of the `Db`'s pool, in a transaction of the load's own.
    Db(&'a crate::Db),
    /// The session's own transaction, when ops runs it.
    Session(&'a crate::Session),
}

impl Executor for DatabaseConnection {}
impl Executor for DatabaseTransaction {}
