//! One forward of SeaORM's `ConnectionTrait` and `TransactionTrait` for the executors that expose
//! them: `Db`, `Session` and the axum `RequestSession`.
//!
//! Each type supplies only what differs, as a [`Delegate`]: how to get the connection a call runs
//! on, and how to observe the call (the wait around it, its span and slow-statement check, a
//! failure in the error stats). [`forward_connection!`] writes SeaORM's two traits over that once.
//!
//! Every method of the traits is forwarded. `begin` and `begin_with_config` go through
//! `begin_with_options`, and `transaction` through `transaction_with_config`: SeaORM 2.0 runs
//! each pair identically when no option is given. `execute`, `query_one` and `query_all` keep
//! SeaORM's defaults, which build the statement for the backend and call the `_raw` methods
//! forwarded here; `is_mock_connection` stays `false`, since none of the three wraps a mock.
//! SeaORM's `StreamTrait` is not implemented: the workspace builds SeaORM without `stream`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use futures_util::FutureExt;
use sea_orm::{
    AccessMode, DatabaseTransaction, DbBackend, DbErr, ExecResult, IsolationLevel, QueryResult,
    Statement, TransactionError, TransactionOptions,
};

use crate::telemetry::{InSession, Telemetry};

/// A boxed call, the form SeaORM's own methods return. A target whose branches differ in size
/// returns one, so that its callers hold a pointer rather than the largest branch.
pub(crate) type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T, DbErr>> + Send + 'a>>;

/// The callback of SeaORM's `transaction` methods, named once.
pub(crate) trait Callback<T, E>:
    for<'c> FnOnce(
        &'c DatabaseTransaction,
    ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
    + Send
{
}

impl<F, T, E> Callback<T, E> for F where
    F: for<'c> FnOnce(
            &'c DatabaseTransaction,
        ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
        + Send
{
}

/// What a forwarded call is for; where a call runs may depend on it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Purpose<'s> {
    /// A prepared statement.
    Statement,
    /// Unprepared SQL, sent as one simple-query exchange.
    Unprepared(&'s str),
    /// A transaction (or a savepoint) begins.
    Transaction,
}

/// What a type supplies to have SeaORM's connection traits forwarded by [`forward_connection!`].
pub(crate) trait Delegate: Sync {
    /// The connection calls are forwarded to.
    type Conn<'a>: Target
    where
        Self: 'a;

    /// The backend, answered without a round trip (and by a finished session too).
    fn backend(&self) -> DbBackend;

    /// Whether the connection supports `RETURNING`.
    fn support_returning(&self) -> bool;

    /// How to get the connection a call runs on. A failure here is returned as it is: the
    /// delegate observes it itself when it should be counted.
    fn conn(
        &self,
        purpose: Purpose<'_>,
    ) -> impl Future<Output = Result<Self::Conn<'_>, DbErr>> + Send;

    /// How to observe a failed call: records it in the error stats when there are any, and
    /// returns it. Applied to every statement and every `begin*`.
    fn observe(&self, err: DbErr) -> DbErr;

    /// The telemetry a statement's span and slow-statement check use; `None` where the connection
    /// is itself a delegate that watches its own statements.
    fn telemetry(&self) -> Option<&Telemetry>;

    /// The session a statement runs in, named in its slow-statement warning.
    fn in_session(&self) -> Option<InSession<'_>> {
        None
    }

    /// Runs a statement's call: through the primary's circuit breaker and counted as a wait for
    /// a connection (`Db`), or watched for abandonment (`Session`).
    fn run<'a, T: Send + 'a>(
        &'a self,
        call: impl Future<Output = Result<T, DbErr>> + Send + 'a,
    ) -> impl Future<Output = Result<T, DbErr>> + Send + 'a;
}

/// A connection calls are forwarded to: the subset of SeaORM's two traits the others derive from.
/// Taken by value; every implementation is a reference or a pair of them.
pub(crate) trait Target: Send + Sync + Sized {
    fn execute_raw(self, stmt: Statement)
    -> impl Future<Output = Result<ExecResult, DbErr>> + Send;

    fn execute_unprepared<'s>(self, sql: &'s str) -> Call<'s, ExecResult>
    where
        Self: 's;

    fn query_one_raw(
        self,
        stmt: Statement,
    ) -> impl Future<Output = Result<Option<QueryResult>, DbErr>> + Send;

    fn query_all_raw(
        self,
        stmt: Statement,
    ) -> impl Future<Output = Result<Vec<QueryResult>, DbErr>> + Send;

    fn begin_with_options(
        self,
        options: TransactionOptions,
    ) -> impl Future<Output = Result<DatabaseTransaction, DbErr>> + Send;

    fn transaction_with_config<F, T, E>(
        self,
        callback: F,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> impl Future<Output = Result<T, TransactionError<E>>> + Send
    where
        F: Callback<T, E>,
        T: Send,
        E: fmt::Display + fmt::Debug + Send;
}

/// A statement's call, observed: run the delegate's way, inside its span and slow-statement
/// check, with a failure observed once. `sql` is what `Telemetry::sql_of` returned.
///
/// Not an `async fn`: one would hold `call` twice, and futures nest deeply in debug builds.
fn observed<'a, D: Delegate, T: Send + 'a>(
    delegate: &'a D,
    sql: Option<String>,
    call: impl Future<Output = Result<T, DbErr>> + Send + 'a,
) -> impl Future<Output = Result<T, DbErr>> + Send + 'a {
    let call = delegate.run(call);
    crate::telemetry::statement(delegate.telemetry(), delegate.in_session(), sql, call)
        .map(move |result| result.map_err(|e| delegate.observe(e)))
}

/// The statement's text for its span, when the delegate's telemetry quotes it.
pub(crate) fn sql_of<D: Delegate>(delegate: &D, sql: &str) -> Option<String> {
    delegate.telemetry().and_then(|t| t.sql_of(sql))
}

/// One statement: `call` on the delegate's connection for `purpose`, observed. `sql` is what
/// [`sql_of`] returned, taken before the statement moves into the call.
pub(crate) async fn statement<'d, D: Delegate, T: Send + 'd, F>(
    delegate: &'d D,
    purpose: Purpose<'_>,
    sql: Option<String>,
    call: impl FnOnce(D::Conn<'d>) -> F + Send,
) -> Result<T, DbErr>
where
    F: Future<Output = Result<T, DbErr>> + Send + 'd,
{
    let conn = delegate.conn(purpose).await?;
    observed(delegate, sql, call(conn)).await
}

pub(crate) async fn begin_with_options<D: Delegate>(
    delegate: &D,
    options: TransactionOptions,
) -> Result<DatabaseTransaction, DbErr> {
    let conn = delegate.conn(Purpose::Transaction).await?;
    conn.begin_with_options(options)
        .await
        .map_err(|e| delegate.observe(e))
}

/// A transaction run by the connection: its `BEGIN`, `COMMIT` and `ROLLBACK` are the
/// connection's to observe (SeaORM's own transaction records nothing).
pub(crate) async fn transaction_with_config<D: Delegate, F, T, E>(
    delegate: &D,
    callback: F,
    isolation_level: Option<IsolationLevel>,
    access_mode: Option<AccessMode>,
) -> Result<T, TransactionError<E>>
where
    F: Callback<T, E>,
    T: Send,
    E: fmt::Display + fmt::Debug + Send,
{
    delegate
        .conn(Purpose::Transaction)
        .await
        .map_err(TransactionError::Connection)?
        .transaction_with_config(callback, isolation_level, access_mode)
        .await
}

/// Implements SeaORM's `ConnectionTrait` and `TransactionTrait` for a [`Delegate`].
macro_rules! forward_connection {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl sea_orm::ConnectionTrait for $ty {
            fn get_database_backend(&self) -> sea_orm::DbBackend {
                $crate::delegate::Delegate::backend(self)
            }

            async fn execute_raw(
                &self,
                stmt: sea_orm::Statement,
            ) -> Result<sea_orm::ExecResult, sea_orm::DbErr> {
                let sql = $crate::delegate::sql_of(self, &stmt.sql);
                let purpose = $crate::delegate::Purpose::Statement;
                $crate::delegate::statement(self, purpose, sql, |c| {
                    $crate::delegate::Target::execute_raw(c, stmt)
                })
                .await
            }

            async fn execute_unprepared(
                &self,
                sql: &str,
            ) -> Result<sea_orm::ExecResult, sea_orm::DbErr> {
                let text = $crate::delegate::sql_of(self, sql);
                let purpose = $crate::delegate::Purpose::Unprepared(sql);
                $crate::delegate::statement(self, purpose, text, |c| {
                    $crate::delegate::Target::execute_unprepared(c, sql)
                })
                .await
            }

            async fn query_one_raw(
                &self,
                stmt: sea_orm::Statement,
            ) -> Result<Option<sea_orm::QueryResult>, sea_orm::DbErr> {
                let sql = $crate::delegate::sql_of(self, &stmt.sql);
                let purpose = $crate::delegate::Purpose::Statement;
                $crate::delegate::statement(self, purpose, sql, |c| {
                    $crate::delegate::Target::query_one_raw(c, stmt)
                })
                .await
            }

            async fn query_all_raw(
                &self,
                stmt: sea_orm::Statement,
            ) -> Result<Vec<sea_orm::QueryResult>, sea_orm::DbErr> {
                let sql = $crate::delegate::sql_of(self, &stmt.sql);
                let purpose = $crate::delegate::Purpose::Statement;
                $crate::delegate::statement(self, purpose, sql, |c| {
                    $crate::delegate::Target::query_all_raw(c, stmt)
                })
                .await
            }

            fn support_returning(&self) -> bool {
                $crate::delegate::Delegate::support_returning(self)
            }
        }

        #[async_trait::async_trait]
        impl sea_orm::TransactionTrait for $ty {
            type Transaction = sea_orm::DatabaseTransaction;

            async fn begin(&self) -> Result<sea_orm::DatabaseTransaction, sea_orm::DbErr> {
                $crate::delegate::begin_with_options(self, sea_orm::TransactionOptions::default())
                    .await
            }

            async fn begin_with_config(
                &self,
                isolation_level: Option<sea_orm::IsolationLevel>,
                access_mode: Option<sea_orm::AccessMode>,
            ) -> Result<sea_orm::DatabaseTransaction, sea_orm::DbErr> {
                let options = sea_orm::TransactionOptions {
                    isolation_level,
                    access_mode,
                    sqlite_transaction_mode: None,
                };
                $crate::delegate::begin_with_options(self, options).await
            }

            async fn begin_with_options(
                &self,
                options: sea_orm::TransactionOptions,
            ) -> Result<sea_orm::DatabaseTransaction, sea_orm::DbErr> {
                $crate::delegate::begin_with_options(self, options).await
            }

            async fn transaction<F, T, E>(
                &self,
                callback: F,
            ) -> Result<T, sea_orm::TransactionError<E>>
            where
                F: for<'c> FnOnce(
                        &'c sea_orm::DatabaseTransaction,
                    ) -> std::pin::Pin<
                        Box<dyn std::future::Future<Output = Result<T, E>> + Send + 'c>,
                    > + Send,
                T: Send,
                E: std::fmt::Display + std::fmt::Debug + Send,
            {
                $crate::delegate::transaction_with_config(self, callback, None, None).await
            }

            async fn transaction_with_config<F, T, E>(
                &self,
                callback: F,
                isolation_level: Option<sea_orm::IsolationLevel>,
                access_mode: Option<sea_orm::AccessMode>,
            ) -> Result<T, sea_orm::TransactionError<E>>
            where
                F: for<'c> FnOnce(
                        &'c sea_orm::DatabaseTransaction,
                    ) -> std::pin::Pin<
                        Box<dyn std::future::Future<Output = Result<T, E>> + Send + 'c>,
                    > + Send,
                T: Send,
                E: std::fmt::Display + std::fmt::Debug + Send,
            {
                $crate::delegate::transaction_with_config(
                    self,
                    callback,
                    isolation_level,
                    access_mode,
                )
                .await
            }
        }
    };
}

pub(crate) use forward_connection;

/// A session as the connection of a delegate over it (the axum `RequestSession`): the session's
/// own forward observes its statements.
impl Target for &crate::Session {
    fn execute_raw(
        self,
        stmt: Statement,
    ) -> impl Future<Output = Result<ExecResult, DbErr>> + Send {
        sea_orm::ConnectionTrait::execute_raw(self, stmt)
    }

    fn execute_unprepared<'s>(self, sql: &'s str) -> Call<'s, ExecResult>
    where
        Self: 's,
    {
        sea_orm::ConnectionTrait::execute_unprepared(self, sql)
    }

    fn query_one_raw(
        self,
        stmt: Statement,
    ) -> impl Future<Output = Result<Option<QueryResult>, DbErr>> + Send {
        sea_orm::ConnectionTrait::query_one_raw(self, stmt)
    }

    fn query_all_raw(
        self,
        stmt: Statement,
    ) -> impl Future<Output = Result<Vec<QueryResult>, DbErr>> + Send {
        sea_orm::ConnectionTrait::query_all_raw(self, stmt)
    }

    fn begin_with_options(
        self,
        options: TransactionOptions,
    ) -> impl Future<Output = Result<DatabaseTransaction, DbErr>> + Send {
        sea_orm::TransactionTrait::begin_with_options(self, options)
    }

    // Awaited here rather than returned: SeaORM's boxed future is bounded by lifetimes this
    // signature does not name.
    async fn transaction_with_config<F, T, E>(
        self,
        callback: F,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<T, TransactionError<E>>
    where
        F: Callback<T, E>,
        T: Send,
        E: fmt::Display + fmt::Debug + Send,
    {
        sea_orm::TransactionTrait::transaction_with_config(
            self,
            callback,
            isolation_level,
            access_mode,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};

    /// The forward must not bring the rare branches' futures (PgBouncer, raw SQL on a connection
    /// reset afterwards, about 70 KB in debug builds) back into every plain statement's future:
    /// `async_trait` boxes it, and a box that large is written on every call.
    #[tokio::test]
    async fn a_plain_statement_future_stays_small() {
        let db = crate::Db::connect("sqlite::memory:").await.expect("sqlite");
        let read = db.query_one_raw(Statement::from_string(DbBackend::Sqlite, "SELECT 1"));
        let write = db.execute_unprepared("SELECT 1");
        let begin = db.begin();
        for (what, size) in [
            ("query_one_raw", std::mem::size_of_val(&*read)),
            ("execute_unprepared", std::mem::size_of_val(&*write)),
            ("begin", std::mem::size_of_val(&*begin)),
        ] {
            eprintln!("{what}: {size} bytes");
            assert!(size < 4096, "Db::{what}'s future is {size} bytes");
        }
    }
}
