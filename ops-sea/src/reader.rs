//! `Reader`: the executor behind `db.reader()`, which sends reads to a read replica.

use ops_core::stats::ErrorStatsRecorder;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, ExecResult, QueryResult, Statement};

use crate::Db;
use crate::pool::{ReadCall, ReadOutput};

/// An executor that reads from a healthy read replica, from `db.reader()`.
///
/// Every repository function and every SeaORM query accepts it like a `Db`. Each statement goes
/// to a usable replica (up, within `DB_REPLICA_MAX_LAG`, breaker closed), least busy first; when
/// a replica fails the read it is tried on the next one and then on the primary, so replica
/// trouble never becomes the caller's error. With no usable replica (or none configured) the
/// read runs on the primary inside a read-only transaction: a write sent through a reader fails
/// everywhere with a clear error, it never lands on the primary because the replicas were down.
///
/// Replicas are behind the primary by up to the lag limit: a row written a moment ago may be
/// missing. Read your own writes inside the session that made them (pass the `Session`), or
/// opt in to `DbBuilder::read_after_write`.
///
/// ```no_run
/// # use ops_sea::prelude::*;
/// # use sea_orm::ConnectionTrait;
/// # async fn demo() -> Result<(), OpsError> {
/// let db = Db::builder("postgres://app@primary/app")
///     .replica("postgres://app@replica-1/app")
///     .connect()
///     .await?;
/// let reader = db.reader();
/// let rows = reader
///     .query_all_raw(sea_orm::Statement::from_string(reader.get_database_backend(), "SELECT 1"))
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Reader {
    db: Db,
    replica_only: bool,
}

impl Db {
    /// An executor that reads from a read replica, falling back to the primary (read-only) when
    /// no replica is usable. See [`Reader`].
    pub fn reader(&self) -> Reader {
        Reader {
            db: self.clone(),
            replica_only: false,
        }
    }
}

impl Reader {
    /// Fails reads with `Unavailable` instead of falling back to the primary when no replica is
    /// usable: for heavy reports that must never load the primary.
    pub fn replica_only(mut self) -> Reader {
        self.replica_only = true;
        self
    }

    /// The `Db` this reader belongs to.
    pub fn db(&self) -> &Db {
        &self.db
    }

    async fn read(&self, call: ReadCall) -> Result<ReadOutput, DbErr> {
        let telemetry = &self.db.inner.telemetry;
        let sql = telemetry.sql_of(call.sql());
        // The read is built inside the call, not in a local: a future moved out of a local still
        // takes its room in this one's, and futures nest deeply in debug builds.
        crate::telemetry::statement(
            Some(telemetry),
            None,
            sql,
            self.db.routing().read(&self.db, call, self.replica_only),
        )
        .await
    }
}

/// The output variant a call of that kind always returns.
fn mismatch() -> DbErr {
    DbErr::Custom("a reader call returned the wrong kind of result".to_owned())
}

#[async_trait::async_trait]
impl ConnectionTrait for Reader {
    fn get_database_backend(&self) -> DbBackend {
        self.db.backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        match self.read(ReadCall::Execute(stmt)).await? {
            ReadOutput::Execute(result) => Ok(result),
            _ => Err(mismatch()),
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match self.read(ReadCall::Unprepared(sql.to_owned())).await? {
            ReadOutput::Execute(result) => Ok(result),
            _ => Err(mismatch()),
        }
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match self.read(ReadCall::One(stmt)).await? {
            ReadOutput::One(row) => Ok(row),
            _ => Err(mismatch()),
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match self.read(ReadCall::All(stmt)).await? {
            ReadOutput::All(rows) => Ok(rows),
            _ => Err(mismatch()),
        }
    }

    fn support_returning(&self) -> bool {
        self.db.connection().support_returning()
    }
}

impl crate::Executor for Reader {
    fn error_recorder(&self) -> Option<&ErrorStatsRecorder> {
        Some(self.db.error_recorder())
    }

    fn __telemetry(&self) -> Option<&crate::telemetry::Telemetry> {
        Some(&self.db.inner.telemetry)
    }
}

impl crate::SessionSource for Reader {
    fn __source(&self) -> crate::managed::Source<'_> {
        crate::managed::Source::Reader(&self.db)
    }
}
