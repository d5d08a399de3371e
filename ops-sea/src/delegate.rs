//! The one forward of SeaORM's `ConnectionTrait` and `TransactionTrait`.
//!
//! `Db`, `Session` and axum's `RequestSession` all expose SeaORM's connection traits over a
//! connection they reach in their own way. [`delegate_connection!`] writes the forward once; each
//! type supplies only what differs, as `tower`'s `Service` wrappers do:
//!
//! - `connection`: how to reach the connection, an expression (it may `.await`) giving
//!   `Result<&C, DbErr>` where `C` implements both traits with
//!   `Transaction = DatabaseTransaction`;
//! - `observe`: what to do with a failed statement's error before returning it (refine and
//!   record it in the error stats, or nothing when the connection reached already does);
//! - `backend` and `support_returning`: answered without reaching the connection, so they are
//!   right even when the connection is gone (a finished session).
//!
//! Every method of both traits is forwarded, the provided ones (`execute`, `query_one`, …)
//! through the raw ones as SeaORM does. Errors of `begin*` and of a `transaction*` callback's
//! connection are observed like a statement's; a callback's own error is not a database error.

/// Implements `ConnectionTrait` and `TransactionTrait` for a type; see the module docs.
macro_rules! delegate_connection {
    (
        impl for $ty:ty;
        connection(|$this:ident| $conn:expr);
        observe(|$observer:ident, $err:ident| $observe:expr);
        backend(|$asker:ident| $backend:expr);
        support_returning(|$returner:ident| $returning:expr);
    ) => {
        #[async_trait::async_trait]
        impl sea_orm::ConnectionTrait for $ty {
            fn get_database_backend(&self) -> sea_orm::DbBackend {
                let $asker = self;
                $backend
            }

            async fn execute_raw(
                &self,
                stmt: sea_orm::Statement,
            ) -> Result<sea_orm::ExecResult, sea_orm::DbErr> {
                let $this = self;
                let conn = $conn?;
                conn.execute_raw(stmt).await.map_err(|$err| {
                    let $observer = self;
                    $observe
                })
            }

            async fn execute_unprepared(
                &self,
                sql: &str,
            ) -> Result<sea_orm::ExecResult, sea_orm::DbErr> {
                let $this = self;
                let conn = $conn?;
                conn.execute_unprepared(sql).await.map_err(|$err| {
                    let $observer = self;
                    $observe
                })
            }

            async fn query_one_raw(
                &self,
                stmt: sea_orm::Statement,
            ) -> Result<Option<sea_orm::QueryResult>, sea_orm::DbErr> {
                let $this = self;
                let conn = $conn?;
                conn.query_one_raw(stmt).await.map_err(|$err| {
                    let $observer = self;
                    $observe
                })
            }

            async fn query_all_raw(
                &self,
                stmt: sea_orm::Statement,
            ) -> Result<Vec<sea_orm::QueryResult>, sea_orm::DbErr> {
                let $this = self;
                let conn = $conn?;
                conn.query_all_raw(stmt).await.map_err(|$err| {
                    let $observer = self;
                    $observe
                })
            }

            fn support_returning(&self) -> bool {
                let $returner = self;
                $returning
            }
        }

        #[async_trait::async_trait]
        impl sea_orm::TransactionTrait for $ty {
            type Transaction = sea_orm::DatabaseTransaction;

            async fn begin(&self) -> Result<sea_orm::DatabaseTransaction, sea_orm::DbErr> {
                let $this = self;
                let conn = $conn?;
                conn.begin().await.map_err(|$err| {
                    let $observer = self;
                    $observe
                })
            }

            async fn begin_with_config(
                &self,
                isolation_level: Option<sea_orm::IsolationLevel>,
                access_mode: Option<sea_orm::AccessMode>,
            ) -> Result<sea_orm::DatabaseTransaction, sea_orm::DbErr> {
                let $this = self;
                let conn = $conn?;
                conn.begin_with_config(isolation_level, access_mode)
                    .await
                    .map_err(|$err| {
                        let $observer = self;
                        $observe
                    })
            }

            async fn begin_with_options(
                &self,
                options: sea_orm::TransactionOptions,
            ) -> Result<sea_orm::DatabaseTransaction, sea_orm::DbErr> {
                let $this = self;
                let conn = $conn?;
                conn.begin_with_options(options).await.map_err(|$err| {
                    let $observer = self;
                    $observe
                })
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
                let $this = self;
                let conn = $conn.map_err(sea_orm::TransactionError::Connection)?;
                conn.transaction(callback)
                    .await
                    .map_err(|error| match error {
                        sea_orm::TransactionError::Connection($err) => {
                            let $observer = self;
                            sea_orm::TransactionError::Connection($observe)
                        }
                        other => other,
                    })
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
                let $this = self;
                let conn = $conn.map_err(sea_orm::TransactionError::Connection)?;
                conn.transaction_with_config(callback, isolation_level, access_mode)
                    .await
                    .map_err(|error| match error {
                        sea_orm::TransactionError::Connection($err) => {
                            let $observer = self;
                            sea_orm::TransactionError::Connection($observe)
                        }
                        other => other,
                    })
            }
        }
    };
}

pub(crate) use delegate_connection;
