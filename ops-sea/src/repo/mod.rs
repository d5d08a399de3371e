//! Repositories: the generic runtime behind `#[derive(Ops)]`.
//!
//! [`Repository`] describes one entity's repository. `#[derive(Ops)]` implements its few required
//! items (the associated types, how a `New` and a `Patch` become an `ActiveModel`, and the columns
//! `upsert` resolves conflicts on); every operation is a provided method written once here, so the
//! generated code stays small and the behaviour is tested in one place. Code generic over any
//! repository takes `R: Repository`.
//!
//! Every operation:
//! - takes the executor first (`&Db`, `&Session`, a `DatabaseConnection` or `DatabaseTransaction`),
//! - runs in a `tracing` span at debug level named `ops.repository` with the entity, table and
//!   operation,
//! - returns [`OpsError`] with the entity, operation and key (or condition) in its context, and
//!   feeds the executor's error stats when it has some: `Db` and `Session` record their
//!   statements' errors themselves, the repository records the others, so each failure counts
//!   once.
//!
//! The filtered operations (`page_where`, `list_where`, `count_where`, `exists_where`,
//! `first_where`, `only_where`, `delete_where`) take a SeaORM [`Condition`] or anything that
//! converts into one (`Column::Name.eq(..)`, `Condition::any().add(..)`), so a filter written for
//! SeaORM works as it is. [`Repository::run_query`] gives a query built with SeaORM itself the
//! same span and error context.
//!
//! Bulk operations split their statements to stay under the backend's bind-parameter limit (see
//! [`bind_limit`]).
//!
//! The module is a folder: the trait here, and one file per kind of statement behind it
//! (`select`, `write`, `stream`) plus how an operation runs (`traced`).

use std::fmt;
use std::future::Future;

use futures_util::stream::Stream;
use ops_core::ErrorCategory;
use ops_core::page::{Page, PageRequest};
use sea_orm::sea_query::IntoCondition;
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, Condition, DbBackend, DbErr, EntityTrait,
    FromQueryResult, IntoActiveModel, Iterable, ModelTrait, PrimaryKeyToColumn, QueryFilter,
    Select, TransactionTrait, Value,
};

use crate::{Executor, OpsError};

#[cfg(feature = "postgres")]
mod copy;
#[cfg(feature = "postgres")]
pub(crate) mod copy_text;
mod select;
mod stream;
#[cfg(test)]
mod tests;
mod traced;
mod write;

use select::{
    ShownColumns, any_rows, columns_condition, count_rows, filtered, key_condition,
    keys_conditions, order_by_key, page_rows, rows_in_key_order, select_by_key, set_key,
    shown_condition,
};
use traced::{programming, traced, traced_shown};

#[cfg(feature = "postgres")]
pub use copy::COPY_THRESHOLD;
pub use futures_util::stream::{StreamExt, TryStreamExt};

/// The column enum of a repository's entity.
pub type ColumnOf<R> = <<R as Repository>::Entity as EntityTrait>::Column;

/// How many rows [`Repository::stream`] fetches per statement.
pub const STREAM_BATCH: u64 = 1000;

/// The most bind parameters one statement may carry on `backend`.
///
/// SQLite has allowed 32766 since 3.32 (the bundled library is 3.51; a system library built with a
/// lower `SQLITE_MAX_VARIABLE_NUMBER` would need less). PostgreSQL's wire protocol and MySQL's
/// prepared statements both count parameters in 16 bits, so 65535. Unknown backends get 999, the
/// oldest SQLite limit, which every database accepts.
pub fn bind_limit(backend: DbBackend) -> usize {
    match backend {
        DbBackend::Sqlite => 32766,
        DbBackend::Postgres | DbBackend::MySql => 65535,
        #[allow(unreachable_patterns)]
        _ => 999,
    }
}

/// A repository: typed operations on one entity.
///
/// `#[derive(Ops)]` implements this for the generated `Ops` struct; its inherent functions (which
/// need no import) call these. Write `R: Repository` to write code over any repository:
///
/// ```no_run
/// use ops_sea::{Executor, OpsError, repo::Repository};
///
/// async fn count_all<R: Repository, C: Executor>(db: &C) -> Result<u64, OpsError> {
///     R::count(db).await
/// }
/// ```
///
/// The provided methods follow SeaORM's semantics: `create`, `update` and `save` go through the
/// `ActiveModel` and run its `ActiveModelBehavior` hooks; `create_many`, `upsert`, `delete` and
/// `delete_many` are set-based statements and do not.
pub trait Repository: Sized + Send + Sync + 'static {
    /// The SeaORM entity.
    type Entity: EntityTrait<Model = Self::Model, ActiveModel = Self::ActiveModel> + Send + Sync;
    /// The entity's model: one row.
    type Model: ModelTrait<Entity = Self::Entity>
        + FromQueryResult
        + IntoActiveModel<Self::ActiveModel>
        + Send
        + Sync
        + 'static;
    /// The entity's active model.
    type ActiveModel: ActiveModelBehavior<Entity = Self::Entity> + Send + Sync + 'static;
    /// The primary key's value: the column's type, or a tuple for a composite key.
    type Key: Into<sea_orm::sea_query::ValueTuple> + Clone + fmt::Debug + Send + Sync + 'static;
    /// The typed input of `create`: every column but an auto-increment key.
    type New: Send + 'static;
    /// The typed input of `update`: every non-key column, each optional.
    type Patch: Default + Send + 'static;

    /// The entity's name in error contexts and spans, e.g. `conversation`.
    const NAME: &'static str;

    /// The columns `upsert` resolves conflicts on: the primary key or a unique key. Empty when no
    /// key can conflict (an auto-increment key and no unique key): `upsert` then inserts.
    const UPSERT_KEY: &'static [ColumnOf<Self>];

    /// Turns a `New` into an active model to insert, starting from `ActiveModelBehavior::new()`.
    fn new_active_model(new: Self::New) -> Self::ActiveModel;

    /// Sets the fields a `Patch` holds on `active`, leaving the others untouched.
    fn apply_patch(patch: Self::Patch, active: &mut Self::ActiveModel);

    /// Inserts one row and returns it as stored, with generated keys and defaults.
    fn create<C: Executor>(
        db: &C,
        new: Self::New,
    ) -> impl Future<Output = Result<Self::Model, OpsError>> + Send {
        let active = Self::new_active_model(new);
        traced::<Self, C, _>(
            db,
            "create",
            None,
            async move { Ok(active.insert(db).await?) },
        )
    }

    /// Inserts many rows in multi-row `INSERT` statements, each under the backend's bind-parameter
    /// limit, inside one transaction (a savepoint when `db` is already a transaction). Returns the
    /// number of rows inserted; [`Repository::create_many_returning`] returns the rows.
    ///
    /// On PostgreSQL, from [`COPY_THRESHOLD`] rows on, the rows are
    /// streamed with `COPY ... FROM STDIN` instead, where ops holds the connection: on a `Db` (in
    /// a transaction of the load's own: all rows or none) and on a session whose transaction ops
    /// runs (behind PgBouncer). Errors keep their categories: a duplicate key is
    /// `Integrity(Unique)` with the constraint's name either way.
    fn create_many<C: Executor + TransactionTrait>(
        db: &C,
        new: impl IntoIterator<Item = Self::New>,
    ) -> impl Future<Output = Result<u64, OpsError>> + Send {
        let rows: Vec<Self::ActiveModel> = new.into_iter().map(Self::new_active_model).collect();
        traced::<Self, C, _>(db, "create_many", None, async move {
            write::insert_counted::<Self, C>(db, rows).await
        })
    }

    /// Inserts many rows like [`Repository::create_many`] and returns them as stored, with their
    /// generated keys and defaults, in the order given.
    ///
    /// PostgreSQL and SQLite insert with `RETURNING`: one round trip per statement-sized chunk.
    /// MySQL and MariaDB have no `RETURNING` in SeaORM's dialect: there each row is one `INSERT`
    /// (the server's reply carries its generated key) and the rows are read back by key, all in
    /// one transaction, so n rows take n + 1 statements (plus `BEGIN` and `COMMIT`).
    fn create_many_returning<C: Executor + TransactionTrait>(
        db: &C,
        new: impl IntoIterator<Item = Self::New>,
    ) -> impl Future<Output = Result<Vec<Self::Model>, OpsError>> + Send {
        let rows: Vec<Self::ActiveModel> = new.into_iter().map(Self::new_active_model).collect();
        traced::<Self, C, _>(db, "create_many_returning", None, async move {
            write::insert_returning::<Self, C>(db, rows).await
        })
    }

    /// The row with this primary key; `NotFound` when there is none.
    fn get<C: Executor>(
        db: &C,
        key: Self::Key,
    ) -> impl Future<Output = Result<Self::Model, OpsError>> + Send {
        let shown = key.clone();
        traced::<Self, C, _>(db, "get", Some(shown), async move {
            let shown = key.clone();
            match select_by_key::<Self>(key)?.one(db).await? {
                Some(model) => Ok(model),
                None => Err(OpsError::not_found(Self::NAME, "get", shown)),
            }
        })
    }

    /// The row with this primary key, if there is one.
    fn find<C: Executor>(
        db: &C,
        key: Self::Key,
    ) -> impl Future<Output = Result<Option<Self::Model>, OpsError>> + Send {
        traced::<Self, C, _>(db, "find", Some(key.clone()), async move {
            Ok(select_by_key::<Self>(key)?.one(db).await?)
        })
    }

    /// The rows with these primary keys, in one statement per bind-parameter limit, ordered by
    /// primary key within each statement. Keys with no row are skipped.
    fn get_many<C: Executor>(
        db: &C,
        keys: impl IntoIterator<Item = Self::Key>,
    ) -> impl Future<Output = Result<Vec<Self::Model>, OpsError>> + Send {
        let keys: Vec<Self::Key> = keys.into_iter().collect();
        traced::<Self, C, _>(db, "get_many", None, async move {
            let mut models = Vec::with_capacity(keys.len());
            for condition in keys_conditions::<Self, _>(db.get_database_backend(), keys)? {
                let select = order_by_key::<Self>(Self::Entity::find().filter(condition));
                models.extend(select.all(db).await?);
            }
            Ok(models)
        })
    }

    /// One page of rows, sorted by the request's columns and then by primary key, with the total
    /// row count. An unknown sort column or an invalid page is a `Programming` error; a page past
    /// the end is empty.
    fn list<C: Executor>(
        db: &C,
        request: PageRequest,
    ) -> impl Future<Output = Result<Page<Self::Model>, OpsError>> + Send {
        traced::<Self, C, _>(db, "list", None, async move {
            page_rows::<Self, C>(db, Condition::all(), request).await
        })
    }

    /// Every row, in primary-key order, fetched [`STREAM_BATCH`] rows at a time.
    ///
    /// This is keyset pagination (`WHERE key > last ORDER BY key LIMIT n`), not a server-side
    /// cursor: no connection is held between batches, so a long consumer does not pin a pooled
    /// connection, and it works the same on every executor. Rows inserted or deleted while
    /// streaming may or may not be seen; no row is seen twice. The stream ends after the first
    /// error.
    fn stream<C: Executor>(
        db: &C,
    ) -> impl Stream<Item = Result<Self::Model, OpsError>> + Send + '_ {
        Self::stream_batched(db, STREAM_BATCH)
    }

    /// [`Repository::stream`] with a chosen batch size (at least 1).
    fn stream_batched<C: Executor>(
        db: &C,
        batch: u64,
    ) -> impl Stream<Item = Result<Self::Model, OpsError>> + Send + '_ {
        stream::keyset_stream::<Self, C>(db, batch.max(1))
    }

    /// Applies `patch` to the row with this primary key and returns the row as stored. `NotFound`
    /// when there is no such row; an empty patch returns the current row.
    fn update<C: Executor>(
        db: &C,
        key: Self::Key,
        patch: Self::Patch,
    ) -> impl Future<Output = Result<Self::Model, OpsError>> + Send {
        let mut active = <Self::ActiveModel as ActiveModelTrait>::default();
        Self::apply_patch(patch, &mut active);
        traced::<Self, C, _>(db, "update", Some(key.clone()), async move {
            let empty = ColumnOf::<Self>::iter().all(|column| active.is_not_set(column));
            let shown = key.clone();
            if empty {
                return match select_by_key::<Self>(key)?.one(db).await? {
                    Some(model) => Ok(model),
                    None => Err(OpsError::not_found(Self::NAME, "update", shown)),
                };
            }
            set_key::<Self>(&mut active, key)?;
            match active.update(db).await {
                Err(DbErr::RecordNotUpdated) => {
                    Err(OpsError::not_found(Self::NAME, "update", shown))
                }
                other => Ok(other?),
            }
        })
    }

    /// Inserts the active model when its primary key is not set, updates it otherwise (SeaORM's
    /// `save`), and returns the row as stored. Updating a row that does not exist is `NotFound`.
    fn save<C: Executor>(
        db: &C,
        active: Self::ActiveModel,
    ) -> impl Future<Output = Result<Self::Model, OpsError>> + Send {
        traced::<Self, C, _>(db, "save", None, async move {
            let has_key = <Self::Entity as EntityTrait>::PrimaryKey::iter()
                .all(|key| !active.is_not_set(key.into_column()));
            if !has_key {
                return Ok(active.insert(db).await?);
            }
            let shown = active.get_primary_key_value();
            match active.update(db).await {
                Err(DbErr::RecordNotUpdated) => Err(OpsError::not_found(Self::NAME, "save", shown)),
                other => Ok(other?),
            }
        })
    }

    /// Inserts the row, or updates every other column of the row that has the same
    /// [`Repository::UPSERT_KEY`], and returns the row as stored.
    ///
    /// PostgreSQL and SQLite use `ON CONFLICT (key) DO UPDATE`; MySQL and MariaDB use
    /// `ON DUPLICATE KEY UPDATE`, which fires on a conflict with any unique key of the table, and
    /// have no `RETURNING`, so the row is selected again by the key afterwards.
    fn upsert<C: Executor>(
        db: &C,
        new: Self::New,
    ) -> impl Future<Output = Result<Self::Model, OpsError>> + Send {
        let active = Self::new_active_model(new);
        traced::<Self, C, _>(db, "upsert", None, async move {
            write::upsert::<Self, C>(db, active).await
        })
    }

    /// Deletes the row with this primary key; `false` when there was none.
    fn delete<C: Executor>(
        db: &C,
        key: Self::Key,
    ) -> impl Future<Output = Result<bool, OpsError>> + Send {
        traced::<Self, C, _>(db, "delete", Some(key.clone()), async move {
            let condition = key_condition::<Self>(key)?;
            let result = Self::Entity::delete_many()
                .filter(condition)
                .exec(db)
                .await?;
            Ok(result.rows_affected > 0)
        })
    }

    /// Deletes the rows with these primary keys and returns how many there were. Keys past one
    /// statement's bind-parameter limit go in further statements; pass a transaction to make
    /// them atomic.
    fn delete_many<C: Executor>(
        db: &C,
        keys: impl IntoIterator<Item = Self::Key>,
    ) -> impl Future<Output = Result<u64, OpsError>> + Send {
        let keys: Vec<Self::Key> = keys.into_iter().collect();
        traced::<Self, C, _>(db, "delete_many", None, async move {
            let mut deleted = 0;
            for condition in keys_conditions::<Self, _>(db.get_database_backend(), keys)? {
                deleted += Self::Entity::delete_many()
                    .filter(condition)
                    .exec(db)
                    .await?
                    .rows_affected;
            }
            Ok(deleted)
        })
    }

    /// The number of rows.
    fn count<C: Executor>(db: &C) -> impl Future<Output = Result<u64, OpsError>> + Send {
        traced::<Self, C, _>(
            db,
            "count",
            None,
            count_rows::<Self, C>(db, Condition::all()),
        )
    }

    /// Whether a row with this primary key exists.
    fn exists<C: Executor>(
        db: &C,
        key: Self::Key,
    ) -> impl Future<Output = Result<bool, OpsError>> + Send {
        traced::<Self, C, _>(db, "exists", Some(key.clone()), async move {
            let condition = key_condition::<Self>(key)?;
            Ok(count_rows::<Self, C>(db, condition).await? > 0)
        })
    }

    /// One page of the rows matching `filter`, sorted by the request's columns and then by
    /// primary key, with the number of matching rows as the page's total. An unknown sort column
    /// or an invalid page (page 0, size 0) is a `Programming` error; a page past the end is empty.
    ///
    /// `filter` is a SeaORM condition or anything that converts into one:
    /// `post::Column::AuthorId.eq(7)`, `Condition::all().add(..).add(..)`.
    fn page_where<C: Executor>(
        db: &C,
        filter: impl IntoCondition,
        request: PageRequest,
    ) -> impl Future<Output = Result<Page<Self::Model>, OpsError>> + Send {
        let condition = filter.into_condition();
        let shown = condition.clone();
        traced_condition::<Self, C, _>(db, "page_where", shown, async move {
            page_rows::<Self, C>(db, condition, request).await
        })
    }

    /// Every row matching `filter`, in primary-key order. For a large or unbounded result, page
    /// with [`Repository::page_where`] instead.
    fn list_where<C: Executor>(
        db: &C,
        filter: impl IntoCondition,
    ) -> impl Future<Output = Result<Vec<Self::Model>, OpsError>> + Send {
        let condition = filter.into_condition();
        let shown = condition.clone();
        traced_condition::<Self, C, _>(db, "list_where", shown, async move {
            rows_in_key_order::<Self, C>(db, condition, None).await
        })
    }

    /// The number of rows matching `filter`.
    fn count_where<C: Executor>(
        db: &C,
        filter: impl IntoCondition,
    ) -> impl Future<Output = Result<u64, OpsError>> + Send {
        let condition = filter.into_condition();
        let shown = condition.clone();
        traced_condition::<Self, C, _>(db, "count_where", shown, async move {
            count_rows::<Self, C>(db, condition).await
        })
    }

    /// Whether any row matches `filter`. Stops at the first match instead of counting them all.
    fn exists_where<C: Executor>(
        db: &C,
        filter: impl IntoCondition,
    ) -> impl Future<Output = Result<bool, OpsError>> + Send {
        let condition = filter.into_condition();
        let shown = condition.clone();
        traced_condition::<Self, C, _>(db, "exists_where", shown, async move {
            any_rows::<Self, C>(db, condition).await
        })
    }

    /// The first row matching `filter` in primary-key order, if any. For another order, ask
    /// [`Repository::page_where`] for a page of one: `PageRequest::first(1).desc("created_at")`.
    fn first_where<C: Executor>(
        db: &C,
        filter: impl IntoCondition,
    ) -> impl Future<Output = Result<Option<Self::Model>, OpsError>> + Send {
        let condition = filter.into_condition();
        let shown = condition.clone();
        traced_condition::<Self, C, _>(db, "first_where", shown, async move {
            let rows = rows_in_key_order::<Self, C>(db, condition, Some(1)).await?;
            Ok(rows.into_iter().next())
        })
    }

    /// The one row matching `filter`, if any; a `MultipleResults` error when more than one row
    /// matches (it fetches at most two to find out).
    fn only_where<C: Executor>(
        db: &C,
        filter: impl IntoCondition,
    ) -> impl Future<Output = Result<Option<Self::Model>, OpsError>> + Send {
        let condition = filter.into_condition();
        let shown = condition.clone();
        traced_condition::<Self, C, _>(db, "only_where", shown, async move {
            let mut rows = rows_in_key_order::<Self, C>(db, condition, Some(2)).await?;
            if rows.len() > 1 {
                return Err(OpsError::new(
                    ErrorCategory::MultipleResults,
                    format!(
                        "more than one {} matched where at most one was expected; make the \
                         condition select one row, or take the first with `first_where`",
                        Self::NAME
                    ),
                ));
            }
            Ok(rows.pop())
        })
    }

    /// Deletes every row matching `filter` and returns how many there were.
    ///
    /// An empty condition (`Condition::all()` with nothing added) is refused with a
    /// `Programming` error rather than emptying the table: filters assembled from optional parts
    /// end up empty by accident. To delete every row on purpose, say so:
    /// `sea_orm::sea_query::Expr::value(true)`.
    fn delete_where<C: Executor>(
        db: &C,
        filter: impl IntoCondition,
    ) -> impl Future<Output = Result<u64, OpsError>> + Send {
        let condition = filter.into_condition();
        let shown = condition.clone();
        traced_condition::<Self, C, _>(db, "delete_where", shown, async move {
            if condition.is_empty() {
                return Err(programming(format!(
                    "delete_where was given an empty condition, which would delete every {}; \
                     pass `Expr::value(true)` to delete every row on purpose",
                    Self::NAME
                )));
            }
            let result = Self::Entity::delete_many()
                .filter(condition)
                .exec(db)
                .await?;
            Ok(result.rows_affected)
        })
    }

    /// A SeaORM select over the entity: the escape hatch for queries the repository lacks (joins,
    /// aggregates, projections). Run it through [`Repository::run_query`] to keep the entity's
    /// span and error context.
    fn query() -> Select<Self::Entity> {
        Self::Entity::find()
    }

    /// Runs a query built with SeaORM (from [`Repository::query`] or anything else) as an
    /// operation of this repository named `operation`: in the `ops.repository` span, with the
    /// entity and operation in the error's context, and counted once in the executor's error
    /// stats, like every generated operation.
    ///
    /// ```no_run
    /// # use ops_sea::{Db, OpsError, Repository};
    /// # async fn recent<R: Repository>(db: &Db) -> Result<(), OpsError> {
    /// use sea_orm::{QuerySelect, EntityTrait};
    /// let rows = R::run_query(db, "recent", R::query().limit(10).all(db)).await?;
    /// # let _ = rows; Ok(()) }
    /// ```
    fn run_query<'a, C: Executor, T: Send + 'a, E: Into<OpsError> + 'a>(
        db: &'a C,
        operation: &'static str,
        query: impl Future<Output = Result<T, E>> + Send + 'a,
    ) -> impl Future<Output = Result<T, OpsError>> + Send + 'a {
        traced_shown::<Self, C, _>(db, operation, || None, async move {
            query.await.map_err(Into::into)
        })
    }
}

/// The row whose columns equal `key`, if any: the body of generated `find_by_*` functions.
pub fn find_by<'a, R: Repository, C: Executor, const N: usize>(
    db: &'a C,
    operation: &'static str,
    key: [(ColumnOf<R>, Value); N],
) -> impl Future<Output = Result<Option<R::Model>, OpsError>> + Send + 'a {
    let key = Vec::from(key);
    let shown = ShownColumns(key.clone());
    traced_shown::<R, C, _>(db, operation, move || Some(shown.to_string()), async move {
        Ok(filtered::<R>(columns_condition::<R>(key)).one(db).await?)
    })
}

/// Every row whose columns equal `key`, in primary-key order: the body of generated `list_by_*`
/// functions.
pub fn list_by<'a, R: Repository, C: Executor, const N: usize>(
    db: &'a C,
    operation: &'static str,
    key: [(ColumnOf<R>, Value); N],
) -> impl Future<Output = Result<Vec<R::Model>, OpsError>> + Send + 'a {
    let key = Vec::from(key);
    let shown = ShownColumns(key.clone());
    traced_shown::<R, C, _>(db, operation, move || Some(shown.to_string()), async move {
        let select = order_by_key::<R>(R::Entity::find().filter(columns_condition::<R>(key)));
        Ok(select.all(db).await?)
    })
}

/// One page of the rows whose columns equal `key`: the body of generated `list_by_*_page`
/// functions.
pub fn list_by_page<'a, R: Repository, C: Executor, const N: usize>(
    db: &'a C,
    operation: &'static str,
    key: [(ColumnOf<R>, Value); N],
    request: PageRequest,
) -> impl Future<Output = Result<Page<R::Model>, OpsError>> + Send + 'a {
    let key = Vec::from(key);
    let shown = ShownColumns(key.clone());
    traced_shown::<R, C, _>(db, operation, move || Some(shown.to_string()), async move {
        page_rows::<R, C>(db, columns_condition::<R>(key), request).await
    })
}

/// [`traced`] with a condition for the context, rendered as its `WHERE` clause on failure.
fn traced_condition<'a, R: Repository, C: Executor, T: Send + 'a>(
    db: &'a C,
    operation: &'static str,
    condition: Condition,
    body: impl Future<Output = Result<T, OpsError>> + Send + 'a,
) -> impl Future<Output = Result<T, OpsError>> + Send + 'a {
    let backend = db.get_database_backend();
    traced_shown::<R, C, _>(
        db,
        operation,
        move || Some(shown_condition::<R>(backend, &condition)),
        body,
    )
}
