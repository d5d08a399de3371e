//! The transaction under a [`Session`](crate::Session): SeaORM's, or behind PgBouncer in
//! transaction pooling mode, ops' own on unnamed statements (see `pool::pgbouncer`).

use std::fmt;

use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, ExecResult, IsolationLevel,
    QueryResult, Statement, TransactionError, TransactionOptions, TransactionTrait,
};

/// One level of a session's transaction: the transaction itself or a savepoint inside it.
pub(crate) enum SessionTxn {
    Sea(DatabaseTransaction),
    #[cfg(feature = "postgres")]
    Bouncer(crate::pool::pgbouncer::Txn),
}

impl SessionTxn {
    pub(crate) fn backend(&self) -> DbBackend {
        match self {
            SessionTxn::Sea(txn) => txn.get_database_backend(),
            #[cfg(feature = "postgres")]
            SessionTxn::Bouncer(_) => DbBackend::Postgres,
        }
    }

    pub(crate) fn support_returning(&self) -> bool {
        match self {
            SessionTxn::Sea(txn) => txn.support_returning(),
            #[cfg(feature = "postgres")]
            SessionTxn::Bouncer(_) => true,
        }
    }

    /// SeaORM's transaction, for the `TransactionTrait` methods that must return one. Behind
    /// PgBouncer there is none: SeaORM would prepare named statements on it.
    pub(crate) fn sea(&self) -> Result<&DatabaseTransaction, DbErr> {
        match self {
            SessionTxn::Sea(txn) => Ok(txn),
            #[cfg(feature = "postgres")]
            SessionTxn::Bouncer(_) => Err(crate::pool::pgbouncer::no_sea_transaction()),
        }
    }

    /// A savepoint one level deeper.
    pub(crate) async fn nested(&self) -> Result<SessionTxn, DbErr> {
        match self {
            SessionTxn::Sea(txn) => txn.begin().await.map(SessionTxn::Sea),
            #[cfg(feature = "postgres")]
            SessionTxn::Bouncer(txn) => txn.nested().await.map(SessionTxn::Bouncer),
        }
    }

    pub(crate) async fn commit(self) -> Result<(), DbErr> {
        match self {
            SessionTxn::Sea(txn) => txn.commit().await,
            #[cfg(feature = "postgres")]
            SessionTxn::Bouncer(txn) => txn.commit().await,
        }
    }

    pub(crate) async fn rollback(self) -> Result<(), DbErr> {
        match self {
            SessionTxn::Sea(txn) => txn.rollback().await,
            #[cfg(feature = "postgres")]
            SessionTxn::Bouncer(txn) => txn.rollback().await,
        }
    }
}

/// A session's transaction as the connection its forward runs on (`delegate.rs`).
impl crate::delegate::Target for &SessionTxn {
    async fn execute_raw(self, stmt: Statement) -> Result<ExecResult, DbErr> {
        match self {
            SessionTxn::Sea(txn) => txn.execute_raw(stmt).await,
            #[cfg(feature = "postgres")]
            SessionTxn::Bouncer(txn) => txn.execute(stmt).await,
        }
    }

    /// Boxed, as SeaORM's own call is: the forward's caller cannot name the lifetime of an
    /// unboxed future borrowing both the session and the SQL.
    fn execute_unprepared<'s>(self, sql: &'s str) -> crate::delegate::Call<'s, ExecResult>
    where
        Self: 's,
    {
        match self {
            SessionTxn::Sea(txn) => txn.execute_unprepared(sql),
            #[cfg(feature = "postgres")]
            SessionTxn::Bouncer(txn) => Box::pin(txn.execute_unprepared(sql)),
        }
    }

    async fn query_one_raw(self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match self {
            SessionTxn::Sea(txn) => txn.query_one_raw(stmt).await,
            #[cfg(feature = "postgres")]
            SessionTxn::Bouncer(txn) => txn.query_one(stmt).await,
        }
    }

    async fn query_all_raw(self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match self {
            SessionTxn::Sea(txn) => txn.query_all_raw(stmt).await,
            #[cfg(feature = "postgres")]
            SessionTxn::Bouncer(txn) => txn.query_all(stmt).await,
        }
    }

    /// A savepoint in SeaORM's transaction (the delegate checked there is one).
    async fn begin_with_options(
        self,
        options: TransactionOptions,
    ) -> Result<DatabaseTransaction, DbErr> {
        self.sea()?.begin_with_options(options).await
    }

    async fn transaction_with_config<F, T, E>(
        self,
        callback: F,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<T, TransactionError<E>>
    where
        F: crate::delegate::Callback<T, E>,
        T: Send,
        E: fmt::Display + fmt::Debug + Send,
    {
        self.sea()
            .map_err(TransactionError::Connection)?
            .transaction_with_config(callback, isolation_level, access_mode)
            .await
    }
}
