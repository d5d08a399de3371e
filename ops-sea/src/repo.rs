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
//! - returns [`OpsError`] with the entity, operation and key in its context, and feeds the
//!   executor's error stats when it has some: `Db` and `Session` record their statements' errors
//!   themselves, the repository records the others (see `record`), so each failure counts once.
//!
//! Bulk operations split their statements to stay under the backend's bind-parameter limit (see
//! [`bind_limit`]).

use std::fmt;
use std::future::Future;
use std::str::FromStr;

use futures_util::stream::{self, Stream};
use ops_core::ErrorCategory;
use ops_core::page::{Page, PageRequest, SortDirection};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ActiveValue, ColumnTrait, Condition, DbBackend, DbErr,
    EntityName, EntityTrait, FromQueryResult, IdenStatic, IntoActiveModel, Iterable, ModelTrait,
    Order, PrimaryKeyToColumn, QueryFilter, QueryOrder, QuerySelect, Select, TransactionSession,
    TransactionTrait, Value,
};
use tracing::Instrument;

use crate::{Executor, OpsError};

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
    /// number of rows inserted.
    fn create_many<C: Executor + TransactionTrait>(
        db: &C,
        new: impl IntoIterator<Item = Self::New>,
    ) -> impl Future<Output = Result<u64, OpsError>> + Send {
        let rows: Vec<Self::ActiveModel> = new.into_iter().map(Self::new_active_model).collect();
        traced::<Self, C, _>(db, "create_many", None, async move {
            let Some(first) = rows.first() else {
                return Ok(0);
            };
            let columns = ColumnOf::<Self>::iter()
                .filter(|column| !first.is_not_set(*column))
                .count()
                .max(1);
            let per_statement = (bind_limit(db.get_database_backend()) / columns).max(1);
            if rows.len() <= per_statement {
                // One statement is atomic on its own: no explicit transaction, no BEGIN and
                // COMMIT round trips. Its errors are recorded by the executor.
                return Ok(Self::Entity::insert_many(rows)
                    .exec_without_returning(db)
                    .await?);
            }
            let txn = db.begin().await?;
            // Statements on `txn` bypass the executor, which therefore cannot record their
            // errors: record them here.
            let on_txn = |err: DbErr| {
                let err = OpsError::from(err);
                record_always(db, &err);
                err
            };
            let mut inserted = 0;
            let mut rows = rows.into_iter();
            loop {
                let chunk: Vec<Self::ActiveModel> = rows.by_ref().take(per_statement).collect();
                if chunk.is_empty() {
                    break;
                }
                // Dropping `txn` on error rolls the whole batch back.
                inserted += Self::Entity::insert_many(chunk)
                    .exec_without_returning(&txn)
                    .await
                    .map_err(on_txn)?;
            }
            txn.commit().await.map_err(on_txn)?;
            Ok(inserted)
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
            for condition in keys_conditions::<Self>(db.get_database_backend(), keys)? {
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
            let select = sorted_select::<Self>(&request)?;
            // `validate` has already rejected an offset that does not fit.
            let offset = request.offset().unwrap_or(0);
            let total = count_rows::<Self, C>(db, Condition::all()).await?;
            let items = if offset >= total {
                Vec::new()
            } else {
                select.limit(request.size).offset(offset).all(db).await?
            };
            Ok(Page {
                items,
                page: request.page,
                size: request.size,
                total,
            })
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
        keyset_stream::<Self, C>(db, batch.max(1))
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
            upsert::<Self, C>(db, active).await
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
            for condition in keys_conditions::<Self>(db.get_database_backend(), keys)? {
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

    /// A SeaORM select over the entity: the escape hatch for queries the repository lacks.
    fn query() -> Select<Self::Entity> {
        Self::Entity::find()
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
        let select = R::Entity::find().filter(columns_condition::<R>(key));
        Ok(select.one(db).await?)
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

/// Renders `column = value` pairs for error contexts.
struct ShownColumns<Col>(Vec<(Col, Value)>);

impl<Col: IdenStatic> fmt::Display for ShownColumns<Col> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (column, value)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{} = {value:?}", column.as_str())?;
        }
        Ok(())
    }
}

/// Runs one operation in its span, attaching the context and recording the error on failure.
fn traced<'a, R: Repository, C: Executor, T>(
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
fn traced_shown<'a, R: Repository, C: Executor, T>(
    db: &'a C,
    operation: &'static str,
    key: impl FnOnce() -> Option<String> + Send + 'a,
    body: impl Future<Output = Result<T, OpsError>> + Send + 'a,
) -> impl Future<Output = Result<T, OpsError>> + Send + 'a
where
    T: Send + 'a,
{
    let span = tracing::debug_span!(
        "ops.repository",
        entity = R::NAME,
        table = R::Entity::default().table_name(),
        operation,
    );
    async move {
        match body.await {
            Ok(value) => Ok(value),
            Err(err) => Err(record(db, err.with_context(R::NAME, operation, key()))),
        }
    }
    .instrument(span)
}

/// Feeds the executor's error stats, then hands the error back.
///
/// An executor with error stats (`Db`, `Session`) records the errors of its own statements as
/// they happen, so recording them here would count them twice. The repository records the rest:
/// the errors it raises itself (`NotFound`, `Programming`), the ones SeaORM raises after a
/// statement succeeded (a row that does not decode), and those of statements run on a
/// transaction it began (which `create_many` records where they happen).
fn record<C: Executor>(db: &C, err: OpsError) -> OpsError {
    tracing::debug!(error = %err, "repository operation failed");
    if !is_statement_error(&err) {
        record_always(db, &err);
    }
    err
}

fn record_always<C: Executor>(db: &C, err: &OpsError) {
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

fn programming(detail: impl Into<String>) -> OpsError {
    OpsError::new(ErrorCategory::Programming, detail)
}

/// `key_column = value AND ...` for one primary-key value.
fn key_condition<R: Repository>(key: R::Key) -> Result<Condition, OpsError> {
    let values: Vec<Value> = key.into().into_iter().collect();
    let columns: Vec<ColumnOf<R>> = <R::Entity as EntityTrait>::PrimaryKey::iter()
        .map(|key| key.into_column())
        .collect();
    if values.len() != columns.len() {
        return Err(programming(format!(
            "a key of {} values was given for a primary key of {} columns; pass one value per \
             primary-key column",
            values.len(),
            columns.len()
        )));
    }
    Ok(columns
        .into_iter()
        .zip(values)
        .fold(Condition::all(), |condition, (column, value)| {
            condition.add(column.eq(value))
        }))
}

/// `column = value AND ...` for explicit columns.
fn columns_condition<R: Repository>(key: Vec<(ColumnOf<R>, Value)>) -> Condition {
    key.into_iter()
        .fold(Condition::all(), |condition, (column, value)| {
            condition.add(column.eq(value))
        })
}

fn select_by_key<R: Repository>(key: R::Key) -> Result<Select<R::Entity>, OpsError> {
    Ok(R::Entity::find().filter(key_condition::<R>(key)?))
}

/// One condition per statement matching any of `keys`, each within the bind-parameter limit.
fn keys_conditions<R: Repository>(
    backend: DbBackend,
    keys: Vec<R::Key>,
) -> Result<Vec<Condition>, OpsError> {
    let arity = <R::Entity as EntityTrait>::PrimaryKey::iter()
        .count()
        .max(1);
    let per_statement = (bind_limit(backend) / arity).max(1);
    let mut conditions = Vec::with_capacity(keys.len().div_ceil(per_statement));
    let mut keys = keys.into_iter().peekable();
    while keys.peek().is_some() {
        let chunk: Vec<R::Key> = keys.by_ref().take(per_statement).collect();
        let condition = if arity == 1 {
            let column = primary_columns::<R>()
                .next()
                .ok_or_else(|| programming("the entity has no primary key"))?;
            let values = chunk.into_iter().flat_map(|key| key.into().into_iter());
            Condition::all().add(column.is_in(values))
        } else {
            chunk
                .into_iter()
                .try_fold(Condition::any(), |condition, key| {
                    Ok::<_, OpsError>(condition.add(key_condition::<R>(key)?))
                })?
        };
        conditions.push(condition);
    }
    Ok(conditions)
}

fn primary_columns<R: Repository>() -> impl Iterator<Item = ColumnOf<R>> {
    <R::Entity as EntityTrait>::PrimaryKey::iter().map(|key| key.into_column())
}

fn order_by_key<R: Repository>(mut select: Select<R::Entity>) -> Select<R::Entity> {
    for column in primary_columns::<R>() {
        select = select.order_by(column, Order::Asc);
    }
    select
}

/// Sets the primary-key columns of `active` from `key`.
fn set_key<R: Repository>(active: &mut R::ActiveModel, key: R::Key) -> Result<(), OpsError> {
    let values: Vec<Value> = key.into().into_iter().collect();
    let columns: Vec<ColumnOf<R>> = primary_columns::<R>().collect();
    if values.len() != columns.len() {
        return Err(programming(
            "the key does not have one value per primary-key column; pass the full key",
        ));
    }
    for (column, value) in columns.into_iter().zip(values) {
        active.set(column, value);
    }
    Ok(())
}

/// The select for one page: the requested sort keys, then the primary key.
fn sorted_select<R: Repository>(request: &PageRequest) -> Result<Select<R::Entity>, OpsError> {
    request
        .validate()
        .map_err(|err| programming(err.to_string()))?;
    let mut select = R::Entity::find();
    let mut sorted: Vec<&'static str> = Vec::new();
    for sort in &request.sort {
        let column = ColumnOf::<R>::from_str(&sort.column).map_err(|_| {
            let known: Vec<&str> = ColumnOf::<R>::iter().map(|c| c.as_str()).collect();
            programming(format!(
                "cannot sort {} by unknown column `{}`; sort by one of: {}",
                R::NAME,
                sort.column,
                known.join(", ")
            ))
        })?;
        let order = match sort.direction {
            SortDirection::Asc => Order::Asc,
            SortDirection::Desc => Order::Desc,
        };
        sorted.push(column.as_str());
        select = select.order_by(column, order);
    }
    // The primary key last makes the order total, so pages neither overlap nor skip rows.
    for column in primary_columns::<R>() {
        if !sorted.contains(&column.as_str()) {
            select = select.order_by(column, Order::Asc);
        }
    }
    Ok(select)
}

/// `SELECT COUNT(*)` with a condition.
async fn count_rows<R: Repository, C: Executor>(
    db: &C,
    condition: Condition,
) -> Result<u64, OpsError> {
    let mut select = R::Entity::find();
    // An empty condition renders as `WHERE TRUE`, which turns SQLite's constant-time `COUNT(*)`
    // into a full table scan: leave it out.
    if !condition.is_empty() {
        select = select.filter(condition);
    }
    let count: Option<i64> = select
        .select_only()
        .expr_as(Expr::cust("COUNT(*)"), "ops_count")
        .into_tuple()
        .one(db)
        .await?;
    Ok(count.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
}

async fn upsert<R: Repository, C: Executor>(
    db: &C,
    active: R::ActiveModel,
) -> Result<R::Model, OpsError> {
    let conflict: &[ColumnOf<R>] = R::UPSERT_KEY;
    let mut key = Vec::with_capacity(conflict.len());
    for column in conflict {
        match active.get(*column) {
            ActiveValue::Set(value) | ActiveValue::Unchanged(value) => key.push((*column, value)),
            ActiveValue::NotSet => break,
        }
    }
    if conflict.is_empty() || key.len() != conflict.len() {
        // No key to conflict on: every upsert inserts a new row.
        return Ok(active.insert(db).await?);
    }
    let is_key = |column: &ColumnOf<R>| conflict.iter().any(|k| k.as_str() == column.as_str());
    let mut update: Vec<ColumnOf<R>> = ColumnOf::<R>::iter()
        .filter(|column| !is_key(column) && !active.is_not_set(*column))
        .collect();
    if update.is_empty() {
        // Every column is part of the key: update the key to itself, which keeps the statement an
        // upsert (it returns or finds the row) instead of failing on the conflict.
        update = conflict.to_vec();
    }
    let on_conflict = OnConflict::columns(conflict.iter().copied())
        .update_columns(update)
        .to_owned();
    let insert = R::Entity::insert(active).on_conflict(on_conflict);
    if db.support_returning() {
        return Ok(insert.exec_with_returning(db).await?);
    }
    insert.exec_without_returning(db).await?;
    let shown = ShownColumns(key.clone()).to_string();
    R::Entity::find()
        .filter(columns_condition::<R>(key))
        .one(db)
        .await?
        .ok_or_else(|| {
            // Only a concurrent delete between the two statements gets here.
            OpsError::not_found(R::NAME, "upsert", shown)
        })
}

/// The state of a keyset stream between batches.
struct Keyset<M> {
    /// The primary key of the last row handed out, `None` before the first batch.
    after: Option<Vec<Value>>,
    buffer: std::vec::IntoIter<M>,
    done: bool,
}

fn keyset_stream<R: Repository, C: Executor>(
    db: &C,
    batch: u64,
) -> impl Stream<Item = Result<R::Model, OpsError>> + Send + '_ {
    let start = Keyset {
        after: None,
        buffer: Vec::new().into_iter(),
        done: false,
    };
    stream::unfold(start, move |mut state| async move {
        if let Some(model) = state.buffer.next() {
            return Some((Ok(model), state));
        }
        if state.done {
            return None;
        }
        let after = state.after.clone();
        let fetched = traced::<R, C, _>(db, "stream", None, async move {
            let mut select = R::Entity::find();
            if let Some(after) = after {
                select = select.filter(after_condition::<R>(after));
            }
            Ok(order_by_key::<R>(select).limit(batch).all(db).await?)
        })
        .await;
        match fetched {
            Err(err) => {
                state.done = true;
                Some((Err(err), state))
            }
            Ok(models) => {
                state.done = (models.len() as u64) < batch;
                let last = models.last()?;
                state.after = Some(primary_columns::<R>().map(|c| last.get(c)).collect());
                state.buffer = models.into_iter();
                let first = state.buffer.next()?;
                Some((Ok(first), state))
            }
        }
    })
}

/// `key > after` in the primary key's order, spelled out column by column so that it works on
/// every backend: `a > x OR (a = x AND b > y) OR ...`.
fn after_condition<R: Repository>(after: Vec<Value>) -> Condition {
    let columns: Vec<ColumnOf<R>> = primary_columns::<R>().collect();
    let mut any = Condition::any();
    for i in 0..columns.len().min(after.len()) {
        let mut all = Condition::all();
        for j in 0..i {
            all = all.add(columns[j].eq(after[j].clone()));
        }
        all = all.add(columns[i].gt(after[i].clone()));
        any = any.add(all);
    }
    any
}

#[cfg(test)]
mod tests {
    //! The runtime on its own: a repository implemented by hand (no derive), its SQL, and a
    //! round trip on SQLite in memory.

    use super::*;
    use sea_orm::{ConnectionTrait, Database, DatabaseConnection, QueryTrait, Schema};

    mod item {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "items")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            #[sea_orm(unique)]
            pub name: String,
            pub note: Option<String>,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    mod pair {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "pairs")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub a: i32,
            #[sea_orm(primary_key, auto_increment = false)]
            pub b: i32,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    struct Items;

    #[derive(Default)]
    struct ItemPatch {
        note: Option<Option<String>>,
    }

    impl Repository for Items {
        type Entity = item::Entity;
        type Model = item::Model;
        type ActiveModel = item::ActiveModel;
        type Key = i32;
        type New = (String, Option<String>);
        type Patch = ItemPatch;
        const NAME: &'static str = "item";
        const UPSERT_KEY: &'static [item::Column] = &[item::Column::Name];

        fn new_active_model((name, note): Self::New) -> item::ActiveModel {
            item::ActiveModel {
                id: ActiveValue::NotSet,
                name: ActiveValue::Set(name),
                note: ActiveValue::Set(note),
            }
        }

        fn apply_patch(patch: ItemPatch, active: &mut item::ActiveModel) {
            if let Some(note) = patch.note {
                active.note = ActiveValue::Set(note);
            }
        }
    }

    struct Pairs;

    impl Repository for Pairs {
        type Entity = pair::Entity;
        type Model = pair::Model;
        type ActiveModel = pair::ActiveModel;
        type Key = (i32, i32);
        type New = (i32, i32);
        type Patch = ();
        const NAME: &'static str = "pair";
        const UPSERT_KEY: &'static [pair::Column] = &[pair::Column::A, pair::Column::B];

        fn new_active_model((a, b): (i32, i32)) -> pair::ActiveModel {
            pair::ActiveModel {
                a: ActiveValue::Set(a),
                b: ActiveValue::Set(b),
            }
        }

        fn apply_patch((): (), _: &mut pair::ActiveModel) {}
    }

    fn sql<E: EntityTrait>(select: Select<E>) -> String {
        select.build(DbBackend::Postgres).to_string()
    }

    #[test]
    fn bind_limits_per_backend() {
        assert_eq!(bind_limit(DbBackend::Sqlite), 32766);
        assert_eq!(bind_limit(DbBackend::Postgres), 65535);
        assert_eq!(bind_limit(DbBackend::MySql), 65535);
    }

    #[test]
    fn keyset_condition_spells_out_tuple_order() {
        let condition = after_condition::<Pairs>(vec![1.into(), 2.into()]);
        assert_eq!(
            sql(pair::Entity::find().filter(condition)),
            r#"SELECT "pairs"."a", "pairs"."b" FROM "pairs" WHERE "pairs"."a" > 1 OR ("pairs"."a" = 1 AND "pairs"."b" > 2)"#
        );
    }

    #[test]
    fn many_keys_split_at_the_bind_limit() {
        let singles = keys_conditions::<Items>(DbBackend::Postgres, (0..70_000).collect()).unwrap();
        assert_eq!(singles.len(), 2, "65535 keys per statement");
        let pairs = (0..20_000).map(|i| (i, i)).collect();
        let pairs = keys_conditions::<Pairs>(DbBackend::Sqlite, pairs).unwrap();
        assert_eq!(pairs.len(), 2, "16383 two-column keys per statement");
        assert!(
            keys_conditions::<Items>(DbBackend::Sqlite, Vec::new())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn sorting_checks_column_names_and_ends_with_the_key() {
        let select = sorted_select::<Items>(&PageRequest::first(5).desc("name")).unwrap();
        assert!(
            sql(select).ends_with(r#"ORDER BY "items"."name" DESC, "items"."id" ASC"#),
            "the key breaks ties"
        );
        let select = sorted_select::<Items>(&PageRequest::first(5).desc("id")).unwrap();
        assert!(sql(select).ends_with(r#"ORDER BY "items"."id" DESC"#));
        let err = sorted_select::<Items>(&PageRequest::first(5).asc("name; --")).unwrap_err();
        assert_eq!(err.category(), ErrorCategory::Programming);
        assert!(err.detail().contains("id, name, note"), "{err}");
        let err = sorted_select::<Items>(&PageRequest::new(0, 5)).unwrap_err();
        assert_eq!(err.category(), ErrorCategory::Programming);
    }

    async fn sqlite() -> DatabaseConnection {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        let schema = Schema::new(db.get_database_backend());
        db.execute(&schema.create_table_from_entity(item::Entity))
            .await
            .unwrap();
        db.execute(&schema.create_table_from_entity(pair::Entity))
            .await
            .unwrap();
        db
    }

    #[tokio::test]
    async fn a_hand_written_repository_round_trips() {
        let db = sqlite().await;
        let a = Items::create(&db, ("a".into(), None)).await.unwrap();
        assert_eq!(Items::get(&db, a.id).await.unwrap(), a);
        let err = Items::get(&db, 99).await.unwrap_err();
        assert_eq!(err.category(), ErrorCategory::NotFound);
        assert_eq!(err.context().map(|c| c.entity), Some("item"));

        let patched = Items::update(
            &db,
            a.id,
            ItemPatch {
                note: Some(Some("n".into())),
            },
        )
        .await
        .unwrap();
        assert_eq!(patched.note.as_deref(), Some("n"));

        let upserted = Items::upsert(&db, ("a".into(), None)).await.unwrap();
        assert_eq!((upserted.id, upserted.note), (a.id, None));
        assert_eq!(Items::count(&db).await.unwrap(), 1);

        let found = find_by::<Items, _, 1>(&db, "find_by_name", [(item::Column::Name, "a".into())])
            .await
            .unwrap();
        assert_eq!(found.map(|m| m.id), Some(a.id));

        assert_eq!(
            Pairs::create_many(&db, (0..5).flat_map(|a| (0..5).map(move |b| (a, b))))
                .await
                .unwrap(),
            25
        );
        // All-key upsert of an existing row: still returns it.
        assert_eq!(
            Pairs::upsert(&db, (2, 3)).await.unwrap(),
            pair::Model { a: 2, b: 3 }
        );
        let streamed: Vec<pair::Model> = Pairs::stream_batched(&db, 3).try_collect().await.unwrap();
        assert_eq!(streamed.len(), 25);
        assert!(
            streamed
                .windows(2)
                .all(|w| (w[0].a, w[0].b) < (w[1].a, w[1].b))
        );
        assert!(Pairs::exists(&db, (4, 4)).await.unwrap());
        assert_eq!(
            Pairs::delete_many(&db, [(0, 0), (0, 1), (9, 9)])
                .await
                .unwrap(),
            2
        );
        assert!(Pairs::delete(&db, (4, 4)).await.unwrap());
        assert_eq!(Pairs::count(&db).await.unwrap(), 22);
    }
}
