//! `stream`: every row in primary-key order, by keyset pagination.

use futures_util::stream::{self, Stream};
use sea_orm::{ColumnTrait, Condition, EntityTrait, ModelTrait, QueryFilter, QuerySelect, Value};

use super::select::{order_by_key, primary_columns};
use super::traced::traced;
use super::{ColumnOf, Repository};
use crate::{Executor, OpsError};

/// The state of a keyset stream between batches.
struct Keyset<M> {
    /// The primary key of the last row handed out, `None` before the first batch.
    after: Option<Vec<Value>>,
    buffer: std::vec::IntoIter<M>,
    done: bool,
}

pub(super) fn keyset_stream<R: Repository, C: Executor>(
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
pub(super) fn after_condition<R: Repository>(after: Vec<Value>) -> Condition {
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
