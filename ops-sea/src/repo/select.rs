//! The statements behind the read operations: conditions from keys and columns, sorting, counting
//! and paging.

use std::fmt;
use std::str::FromStr;

use ops_core::page::{Page, PageRequest, SortDirection};
use sea_orm::sea_query::{Alias, Expr, Query, SelectStatement, ValueTuple};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DbBackend, EntityTrait, IdenStatic, Iterable, Order,
    PrimaryKeyToColumn, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select, Value,
};

use super::traced::programming;
use super::{ColumnOf, Repository, bind_limit};
use crate::{Executor, OpsError};

/// Renders `column = value` pairs for error contexts.
pub(super) struct ShownColumns<Col>(pub(super) Vec<(Col, Value)>);

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

/// `key_column = value AND ...` for one primary-key value.
pub(super) fn key_condition<R: Repository>(
    key: impl Into<ValueTuple>,
) -> Result<Condition, OpsError> {
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
pub(super) fn columns_condition<R: Repository>(key: Vec<(ColumnOf<R>, Value)>) -> Condition {
    key.into_iter()
        .fold(Condition::all(), |condition, (column, value)| {
            condition.add(column.eq(value))
        })
}

pub(super) fn select_by_key<R: Repository>(key: R::Key) -> Result<Select<R::Entity>, OpsError> {
    Ok(R::Entity::find().filter(key_condition::<R>(key)?))
}

/// One condition per statement matching any of `keys`, each within the bind-parameter limit.
pub(super) fn keys_conditions<R: Repository, K: Into<ValueTuple>>(
    backend: DbBackend,
    keys: Vec<K>,
) -> Result<Vec<Condition>, OpsError> {
    let arity = <R::Entity as EntityTrait>::PrimaryKey::iter()
        .count()
        .max(1);
    let per_statement = (bind_limit(backend) / arity).max(1);
    let mut conditions = Vec::with_capacity(keys.len().div_ceil(per_statement));
    let mut keys = keys.into_iter().peekable();
    while keys.peek().is_some() {
        let chunk: Vec<K> = keys.by_ref().take(per_statement).collect();
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

pub(super) fn primary_columns<R: Repository>() -> impl Iterator<Item = ColumnOf<R>> {
    <R::Entity as EntityTrait>::PrimaryKey::iter().map(|key| key.into_column())
}

pub(super) fn order_by_key<R: Repository>(mut select: Select<R::Entity>) -> Select<R::Entity> {
    for column in primary_columns::<R>() {
        select = select.order_by(column, Order::Asc);
    }
    select
}

/// Sets the primary-key columns of `active` from `key`.
pub(super) fn set_key<R: Repository>(
    active: &mut R::ActiveModel,
    key: R::Key,
) -> Result<(), OpsError> {
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
pub(super) fn sorted_select<R: Repository>(
    request: &PageRequest,
) -> Result<Select<R::Entity>, OpsError> {
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
pub(super) async fn count_rows<R: Repository, C: Executor>(
    db: &C,
    condition: Condition,
) -> Result<u64, OpsError> {
    let count: Option<i64> = filtered::<R>(condition)
        .select_only()
        .expr_as(Expr::cust("COUNT(*)"), "ops_count")
        .into_tuple()
        .one(db)
        .await?;
    Ok(count.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
}

/// The entity's select with `condition`, which is left out when empty: an empty condition renders
/// as `WHERE TRUE`, which turns SQLite's constant-time `COUNT(*)` into a full table scan.
pub(super) fn filtered<R: Repository>(condition: Condition) -> Select<R::Entity> {
    let select = R::Entity::find();
    if condition.is_empty() {
        select
    } else {
        select.filter(condition)
    }
}

/// Whether any row matches: `SELECT COUNT(*) FROM (SELECT 1 ... LIMIT 1)`, which stops at the
/// first match (a plain `COUNT(*)` counts them all) and decodes as the same integer everywhere.
pub(super) async fn any_rows<R: Repository, C: Executor>(
    db: &C,
    condition: Condition,
) -> Result<bool, OpsError> {
    let inner: SelectStatement = filtered::<R>(condition)
        .select_only()
        .expr(Expr::cust("1"))
        .limit(1)
        .into_query();
    let outer = Query::select()
        .expr_as(Expr::cust("COUNT(*)"), Alias::new("ops_count"))
        .from_subquery(inner, Alias::new("ops_any"))
        .to_owned();
    let row = db.query_one(&outer).await?;
    let count: i64 = match row {
        Some(row) => row.try_get("", "ops_count")?,
        None => 0,
    };
    Ok(count > 0)
}

/// One page of the rows matching `condition`, sorted by the request and then by primary key, with
/// the number of matching rows. The request is checked before any statement runs.
pub(super) async fn page_rows<R: Repository, C: Executor>(
    db: &C,
    condition: Condition,
    request: PageRequest,
) -> Result<Page<R::Model>, OpsError> {
    let select = sorted_select::<R>(&request)?;
    // `sorted_select` has validated the request, so the offset fits.
    let offset = request.offset().unwrap_or(0);
    let total = count_rows::<R, C>(db, condition.clone()).await?;
    let items = if offset >= total {
        Vec::new()
    } else {
        let select = if condition.is_empty() {
            select
        } else {
            select.filter(condition)
        };
        // A page size past the rows left fetches only those: the count bounds the LIMIT, which
        // keeps it within every backend's integer range whatever size was asked for.
        let limit = request.size.min(total - offset);
        select.limit(limit).offset(offset).all(db).await?
    };
    Ok(Page {
        items,
        page: request.page,
        size: request.size,
        total,
    })
}

/// The rows matching `condition` in primary-key order, at most `limit` of them.
pub(super) async fn rows_in_key_order<R: Repository, C: Executor>(
    db: &C,
    condition: Condition,
    limit: Option<u64>,
) -> Result<Vec<R::Model>, OpsError> {
    let select = order_by_key::<R>(filtered::<R>(condition));
    let select = match limit {
        Some(limit) => select.limit(limit),
        None => select,
    };
    Ok(select.all(db).await?)
}

/// A condition as it reads in the `WHERE` clause on `backend`, for error contexts.
pub(super) fn shown_condition<R: Repository>(backend: DbBackend, condition: &Condition) -> String {
    if condition.is_empty() {
        return "every row".to_owned();
    }
    let sql = R::Entity::find()
        .filter(condition.clone())
        .build(backend)
        .to_string();
    match sql.split_once(" WHERE ") {
        Some((_, clause)) => clause.to_owned(),
        None => sql,
    }
}
