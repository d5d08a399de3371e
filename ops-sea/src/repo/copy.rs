//! `create_many` on PostgreSQL through `COPY ... FROM STDIN`, from [`COPY_THRESHOLD`] rows on.
//!
//! `COPY` streams rows in one statement: no bind-parameter limit, no statement to parse per
//! chunk, no `VALUES` list to plan. It needs a sqlx connection ops holds itself (SeaORM's
//! executors only send statements), so it runs where ops has one:
//!
//! - on a `Db`: a connection of its pool, `BEGIN`, `COPY`, `COMMIT`: all rows or none, and the
//!   connection goes back committed or rolled back, or is closed (`pool::copy`);
//! - on a `Session` whose transaction ops runs itself (behind PgBouncer): inside that transaction;
//! - anywhere else (a session on SeaORM's transaction, a plain SeaORM connection or transaction,
//!   a request session), and whenever the rows do not all set the same columns or hold a value
//!   type the text encoding does not cover, the load runs as multi-row inserts.
//!
//! Like the inserts, `COPY` sends the values as the rows hold them (`ActiveModelBehavior` hooks do
//! not run on set-based writes) and leaves unset columns to their defaults. A column whose
//! `save_as` wraps its value in SQL gets the wrapper only in inserts; for SeaORM's own use of it
//! (a cast to a PostgreSQL enum type) `COPY`'s text input does the same conversion.

use sea_orm::{ActiveModelTrait, ActiveValue, DbErr, EntityName, IdenStatic, Iterable, Value};

use super::copy_text::{Unsupported, encode_row};
use super::{ColumnOf, Repository};
use crate::executor::BulkRoute;
use crate::pool::copy::CopyChunks;
use crate::{Executor, OpsError};

/// From this many rows on, `create_many` on PostgreSQL loads with `COPY` where it can. Below it
/// a single multi-row `INSERT` is as fast: `COPY` costs a `BEGIN` and a `COMMIT` on a `Db`, and
/// its per-row gain only pays off once there are enough rows.
pub const COPY_THRESHOLD: usize = 500;

/// About this many bytes of rows go in one `CopyData` message.
const CHUNK_BYTES: usize = 256 * 1024;

/// Where a load can run `COPY`.
#[derive(Clone, Copy)]
pub(super) enum CopyTarget<'a> {
    Db(&'a crate::Db),
    Session(&'a crate::Session),
}

/// Where `db` can run `COPY`, if anywhere.
pub(super) fn target<C: Executor>(db: &C) -> Option<CopyTarget<'_>> {
    match db.__bulk_route() {
        BulkRoute::Db(db) if db.inner.pool.postgres().is_some() => Some(CopyTarget::Db(db)),
        BulkRoute::Session(session) if session.can_copy() => Some(CopyTarget::Session(session)),
        _ => None,
    }
}

/// The columns a `COPY` of `rows` sends: those the first row sets, when every row sets exactly
/// those and the first row's values all have a text encoding; `None` otherwise.
pub(super) fn columns<R: Repository>(rows: &[R::ActiveModel]) -> Option<Vec<ColumnOf<R>>> {
    let first = rows.first()?;
    let columns: Vec<ColumnOf<R>> = ColumnOf::<R>::iter()
        .filter(|column| !first.is_not_set(*column))
        .collect();
    if columns.is_empty() {
        // Every column left to its default: nothing to stream.
        return None;
    }
    let same_columns = rows[1..].iter().all(|row| {
        ColumnOf::<R>::iter().all(|column| row.is_not_set(column) == first.is_not_set(column))
    });
    if !same_columns {
        return None;
    }
    let values: Vec<Value> = columns
        .iter()
        .filter_map(|column| first.get(*column).into_value())
        .collect();
    encode_row(&values, &mut Vec::new()).ok()?;
    Some(columns)
}

/// `COPY "schema"."table" ("a", "b") FROM STDIN`: text format, the default.
fn copy_sql<R: Repository>(columns: &[ColumnOf<R>]) -> String {
    let entity = R::Entity::default();
    let mut sql = String::from("COPY ");
    if let Some(schema) = entity.schema_name() {
        quote_into(schema, &mut sql);
        sql.push('.');
    }
    quote_into(entity.table_name(), &mut sql);
    sql.push_str(" (");
    for (index, column) in columns.iter().enumerate() {
        if index > 0 {
            sql.push_str(", ");
        }
        quote_into(column.as_str(), &mut sql);
    }
    sql.push_str(") FROM STDIN");
    sql
}

/// A quoted identifier: in double quotes, an embedded one doubled.
fn quote_into(name: &str, sql: &mut String) {
    sql.push('"');
    sql.push_str(&name.replace('"', "\"\""));
    sql.push('"');
}

/// The rows, encoded chunk by chunk as the `COPY` asks for them.
fn chunks<R: Repository>(
    rows: Vec<R::ActiveModel>,
    columns: Vec<ColumnOf<R>>,
) -> CopyChunks<'static> {
    let mut rows = rows.into_iter();
    let mut values: Vec<Value> = Vec::with_capacity(columns.len());
    Box::new(std::iter::from_fn(move || {
        let mut out = Vec::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 8);
        while out.len() < CHUNK_BYTES {
            let Some(mut row) = rows.next() else { break };
            values.clear();
            for column in &columns {
                match row.take(*column) {
                    ActiveValue::Set(value) | ActiveValue::Unchanged(value) => values.push(value),
                    // `columns` checked that every row sets these.
                    ActiveValue::NotSet => return Some(Err(not_encodable())),
                }
            }
            if let Err(Unsupported) = encode_row(&values, &mut out) {
                return Some(Err(not_encodable()));
            }
        }
        (!out.is_empty()).then_some(Ok(out))
    }))
}

fn not_encodable() -> DbErr {
    DbErr::Custom(
        "a row of the bulk load has no COPY text form although the first row had one; load \
         fewer than the COPY threshold at a time to insert it with statements"
            .to_owned(),
    )
}

/// Loads `rows` with `COPY` on `target`; returns the rows inserted.
pub(super) async fn load<R: Repository>(
    target: CopyTarget<'_>,
    rows: Vec<R::ActiveModel>,
    columns: Vec<ColumnOf<R>>,
) -> Result<u64, OpsError> {
    let sql = copy_sql::<R>(&columns);
    let data = chunks::<R>(rows, columns);
    match target {
        CopyTarget::Db(db) => Ok(db_load(db, &sql, data).await?),
        CopyTarget::Session(session) => Ok(session.copy_in(&sql, data).await?),
    }
}

/// A load on a `Db`, in a transaction of its own, through the primary's circuit breaker; its
/// errors are recorded as a statement's.
async fn db_load(db: &crate::Db, sql: &str, data: CopyChunks<'_>) -> Result<u64, DbErr> {
    let Some(pool) = db.inner.pool.postgres() else {
        return Err(DbErr::Custom("COPY needs a PostgreSQL pool".to_owned()));
    };
    db.routing().note_write();
    // Behind PgBouncer the statement timeout is not in the startup packet: set it for this
    // transaction, in the `BEGIN`'s round trip.
    let timeout = db
        .is_pgbouncer()
        .then_some(db.config().statement_timeout)
        .flatten();
    let begin = crate::pool::pgbouncer::begin_sql(None, false, timeout);
    let call = crate::pool::copy::copy_in_transaction(pool, &begin, sql, data);
    db.guarded(call).await.map_err(|e| db.observe(e))
}

#[cfg(test)]
mod tests {
    use super::quote_into;

    #[test]
    fn identifiers_are_quoted() {
        let mut sql = String::new();
        quote_into("we\"ird", &mut sql);
        assert_eq!(sql, "\"we\"\"ird\"");
    }
}
