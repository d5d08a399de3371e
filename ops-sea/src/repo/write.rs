//! The statements behind the set-based writes: multi-row inserts split at the bind-parameter
//! limit, with or without the created rows, and upserts.

use std::collections::HashMap;

use sea_orm::sea_query::{OnConflict, Query, ValueTuple};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    FromQueryResult, IdenStatic, Iterable, ModelTrait, QueryFilter, QueryTrait, TransactionSession,
    TransactionTrait,
};

use super::select::{ShownColumns, columns_condition, keys_conditions, order_by_key};
use super::traced::record_always;
use super::{ColumnOf, Repository, bind_limit};
use crate::{Executor, OpsError};

/// How many of these rows fit in one statement: the bind-parameter limit over the columns the
/// first row sets (multi-row inserts set the same columns in every row).
fn rows_per_statement<R: Repository>(backend: DbBackend, first: &R::ActiveModel) -> usize {
    let columns = ColumnOf::<R>::iter()
        .filter(|column| !first.is_not_set(*column))
        .count()
        .max(1);
    (bind_limit(backend) / columns).max(1)
}

/// Splits `rows` into statement-sized chunks.
fn chunks<M>(rows: Vec<M>, per_statement: usize) -> impl Iterator<Item = Vec<M>> {
    let mut rows = rows.into_iter().peekable();
    std::iter::from_fn(move || {
        rows.peek()?;
        Some(rows.by_ref().take(per_statement).collect())
    })
}

/// An error of a statement run on a transaction the repository began: such statements bypass the
/// executor, which therefore cannot record them, so it is recorded here.
fn on_txn<C: Executor>(db: &C) -> impl Fn(DbErr) -> OpsError + '_ {
    move |err| {
        let err = OpsError::from(err);
        record_always(db, &err);
        err
    }
}

/// `create_many`: on PostgreSQL from `COPY_THRESHOLD` rows on, `COPY` where ops holds the
/// connection (`repo/copy.rs`); otherwise multi-row inserts, one statement on `db` as it is (a statement is atomic on its
/// own: no BEGIN and COMMIT round trips), several in one transaction begun on `db` (a savepoint
/// when `db` is a transaction). Returns the number of rows inserted.
pub(super) async fn insert_counted<R: Repository, C: Executor + TransactionTrait>(
    db: &C,
    rows: Vec<R::ActiveModel>,
) -> Result<u64, OpsError> {
    let Some(first) = rows.first() else {
        return Ok(0);
    };
    #[cfg(feature = "postgres")]
    if rows.len() >= super::copy::COPY_THRESHOLD
        && db.get_database_backend() == DbBackend::Postgres
        && let Some(target) = super::copy::target(db)
        && let Some(columns) = super::copy::columns::<R>(&rows)
    {
        return super::copy::load::<R>(target, rows, columns).await;
    }
    let per_statement = rows_per_statement::<R>(db.get_database_backend(), first);
    if rows.len() <= per_statement {
        // The executor records this statement's errors.
        return Ok(R::Entity::insert_many(rows)
            .exec_without_returning(db)
            .await?);
    }
    let txn = db.begin().await?;
    let mut inserted = 0;
    for chunk in chunks(rows, per_statement) {
        // Dropping `txn` on error rolls the whole batch back.
        inserted += R::Entity::insert_many(chunk)
            .exec_without_returning(&txn)
            .await
            .map_err(on_txn(db))?;
    }
    txn.commit().await.map_err(on_txn(db))?;
    Ok(inserted)
}

/// `create_many_returning`: the rows as stored, in the order given.
///
/// PostgreSQL and SQLite (3.35 and later; the bundled library is newer) insert with `RETURNING`,
/// one round trip per statement-sized chunk. SeaORM's MySQL dialect has no `RETURNING`, so on
/// MySQL and MariaDB each row is one `INSERT` (its key comes back in the reply, as
/// `LAST_INSERT_ID()`), then one `SELECT` per bind-limit chunk of keys reads the rows back, all in
/// one transaction.
pub(super) async fn insert_returning<R: Repository, C: Executor + TransactionTrait>(
    db: &C,
    rows: Vec<R::ActiveModel>,
) -> Result<Vec<R::Model>, OpsError> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let backend = db.get_database_backend();
    if backend == DbBackend::MySql {
        return insert_then_select::<R, C>(db, rows).await;
    }
    let per_statement = rows_per_statement::<R>(backend, first);
    if rows.len() <= per_statement {
        return insert_chunk_returning::<R, C>(db, rows).await;
    }
    let txn = db.begin().await?;
    let mut models = Vec::with_capacity(rows.len());
    for chunk in chunks(rows, per_statement) {
        let created = insert_chunk_returning::<R, _>(&txn, chunk)
            .await
            .inspect_err(|err| record_always(db, err))?;
        models.extend(created);
    }
    txn.commit().await.map_err(on_txn(db))?;
    Ok(models)
}

/// One multi-row `INSERT ... RETURNING` of every column.
async fn insert_chunk_returning<R: Repository, C: ConnectionTrait>(
    db: &C,
    rows: Vec<R::ActiveModel>,
) -> Result<Vec<R::Model>, OpsError> {
    let backend = db.get_database_backend();
    let mut insert = R::Entity::insert_many(rows).into_query();
    // SeaORM's own `exec_with_returning` refuses SQLite unless a crate feature promises 3.35; the
    // bundled library is newer, so the clause is added here.
    insert.returning(Query::returning().exprs(
        ColumnOf::<R>::iter().map(|column| column.select_as(column.into_returning_expr(backend))),
    ));
    let rows = db.query_all(&insert).await?;
    let mut models = Vec::with_capacity(rows.len());
    for row in &rows {
        models.push(R::Model::from_query_result(row, "")?);
    }
    Ok(models)
}

/// MySQL and MariaDB: one `INSERT` per row in a transaction, then the rows read back by key.
async fn insert_then_select<R: Repository, C: Executor + TransactionTrait>(
    db: &C,
    rows: Vec<R::ActiveModel>,
) -> Result<Vec<R::Model>, OpsError> {
    let backend = db.get_database_backend();
    let txn = db.begin().await?;
    let mut keys: Vec<ValueTuple> = Vec::with_capacity(rows.len());
    for row in rows {
        // With the key set, SeaORM returns it; with an auto-increment key, the server's reply
        // carries the generated one.
        let inserted = R::Entity::insert(row)
            .exec(&txn)
            .await
            .map_err(on_txn(db))?;
        keys.push(sea_orm::sea_query::IntoValueTuple::into_value_tuple(
            inserted.last_insert_id,
        ));
    }
    // Rows come back in key order; put them in the order they were given.
    let position: HashMap<String, usize> = keys
        .iter()
        .enumerate()
        .map(|(index, key)| (format!("{key:?}"), index))
        .collect();
    let mut models: Vec<Option<R::Model>> = Vec::new();
    models.resize_with(keys.len(), || None);
    for condition in keys_conditions::<R, _>(backend, keys)? {
        let found = order_by_key::<R>(R::Entity::find().filter(condition))
            .all(&txn)
            .await
            .map_err(on_txn(db))?;
        for model in found {
            let key = format!("{:?}", model.get_primary_key_value());
            if let Some(&index) = position.get(&key) {
                models[index] = Some(model);
            }
        }
    }
    txn.commit().await.map_err(on_txn(db))?;
    // Every row was just inserted in this transaction, so each is found.
    models
        .into_iter()
        .map(|model| {
            model.ok_or_else(|| {
                OpsError::from(DbErr::RecordNotFound(
                    "an inserted row was not found by its key in the same transaction".into(),
                ))
            })
        })
        .collect()
}

pub(super) async fn upsert<R: Repository, C: Executor>(
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
