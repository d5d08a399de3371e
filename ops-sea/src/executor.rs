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
    fn error_recorder(&self) -> Option<&ErrorStatsRecorder> {
        None
    }
}

impl Executor for DatabaseConnection {}
impl Executor for DatabaseTransaction {}
