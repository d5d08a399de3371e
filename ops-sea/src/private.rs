//! Paths that `#[derive(Ops)]` expansions name, as `::ops_sea::__private::…`. Not public API: it
//! changes with the macro, in lockstep.
//!
//! Re-exporting SeaORM here lets generated code compile in a crate that renamed or never named
//! `sea_orm` itself.

pub use core::future::Future;
pub use core::option::Option;
pub use core::result::Result;

pub use futures_util::stream::Stream;
pub use sea_orm;
pub use sea_orm::sea_query::IntoCondition;
pub use sea_orm::{ActiveModelBehavior, ActiveValue, EntityTrait, Select, TransactionTrait, Value};

pub use crate::executor::BulkRoute;
pub use crate::repo::{self, ColumnOf, Repository, find_by, list_by, list_by_page};
pub use crate::{Executor, OpsError};
pub use ops_core::page::{Page, PageRequest};

/// What `#[ops_sea::test]` expansions call: the runtime, and the test attribute itself.
pub mod test {
    pub use crate::testing::*;
    pub use ::core::prelude::v1::test;
}

// What `#[managed_session]` and `#[db_retry]` expansions call.
pub use crate::macro_support::*;

/// For ops' own integration tests: rolls back `session` and keeps the handle, in the state of a
/// finished session, which no public call leaves a handle in.
pub async fn rollback_in_place(session: &mut crate::Session) -> Result<(), OpsError> {
    session.rollback_in_place().await
}

/// For ops' own integration tests: `values` as one row of `COPY`'s text format, as `create_many`
/// streams it on PostgreSQL; `None` when a value has no text form there.
#[cfg(feature = "postgres")]
pub fn copy_text_row(values: &[Value]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    crate::repo::copy_text::encode_row(values, &mut out).ok()?;
    Some(out)
}

/// For ops' own integration tests: whether this process's TCP socket from local port `local` to
/// server port `peer` has `TCP_NODELAY` set (`None`: no such socket, or not Linux).
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub fn tcp_nodelay_is_set(local: u16, peer: u16) -> Option<bool> {
    crate::pool::nodelay::is_set(local, peer)
}

/// Converts a column value for a `find_by_*` or `list_by_*` condition.
pub fn value<T: Into<Value>>(value: T) -> Value {
    value.into()
}

/// The entity's name for error contexts: the last segment of the module that defines the model
/// (`app::conversation` gives `conversation`), or the table name for a model at a crate's root.
pub const fn entity_name(module_path: &'static str, table: &'static str) -> &'static str {
    let bytes = module_path.as_bytes();
    let mut i = bytes.len();
    while i >= 2 {
        if bytes[i - 1] == b':' && bytes[i - 2] == b':' {
            let (_, tail) = bytes.split_at(i);
            return match core::str::from_utf8(tail) {
                Ok(name) => name,
                Err(_) => table,
            };
        }
        i -= 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::entity_name;

    #[test]
    fn entity_names_come_from_the_module() {
        assert_eq!(
            entity_name("app::models::conversation", "t"),
            "conversation"
        );
        assert_eq!(entity_name("app", "conversations"), "conversations");
        const NAME: &str = entity_name("a::b", "t");
        assert_eq!(NAME, "b");
    }
}
