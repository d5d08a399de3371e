//! Procedural macros of ops.
//!
//! Use them through `ops_sea` (`use ops_sea::Ops;`), which re-exports them beside the runtime the
//! generated code calls. Each macro lives in its own module, staged parse, model, validate and
//! expand; this file holds only the entry points.

#![warn(missing_docs)]

mod errors;
mod ops;
mod retry;
mod session;
mod shared;
mod suggest;
mod test;

use proc_macro::TokenStream;

/// A typed repository for a SeaORM entity.
///
/// Derive it on the entity's `Model`, beside `DeriveEntityModel`. It reads the `#[sea_orm(...)]`
/// attributes SeaORM reads (table name, primary key, `auto_increment`, `unique`, `unique_key`,
/// `column_name`, `enum_name`, `ignore`; `Option<T>` fields are nullable columns) and its own
/// `#[ops(...)]`:
///
/// | attribute | effect |
/// | --- | --- |
/// | `name = "ConversationOps"` | names the repository struct (default `Ops`) |
/// | `find_by(col, ...)` | `find_by_<col>(db, value) -> Option<Model>` for each unique column |
/// | `find_by((a, b))` | `find_by_<a>_and_<b>(db, a, b)` for a composite unique key (`unique_key`) |
/// | `list_by(col, ...)` | `list_by_<col>(db, value) -> Vec<Model>`, in primary-key order |
/// | `crate = "path"` | the path to `ops_sea` when the dependency is renamed |
///
/// # Generated items
///
/// Beside `Entity`, `Model` and `ActiveModel`, in the same module:
///
/// - `Ops`, a unit struct implementing `ops_sea::Repository`, with these associated functions.
///   Each takes the executor first (`&Db`, `&Session`, a `DatabaseConnection` or a
///   `DatabaseTransaction`: any `C: ops_sea::Executor`), runs in a debug-level `tracing` span with
///   the entity, table and operation, and returns `Result<_, OpsError>` whose context names the
///   entity, operation and key:
///   - `create(db, New) -> Model`
///   - `create_many(db, impl IntoIterator<Item = New>) -> u64`: multi-row `INSERT`s under the
///     backend's bind-parameter limit, in one transaction (`C` must also be `TransactionTrait`)
///   - `get(db, key) -> Model` (`NotFound` when absent), `find(db, key) -> Option<Model>`
///   - `get_many(db, keys) -> Vec<Model>`, one query per bind-parameter limit
///   - `find_by_<col>(db, value) -> Option<Model>`, `list_by_<col>(db, value) -> Vec<Model>`;
///     values are `impl Into<T>` of the column's type, so `&str` works for a `String` column
///   - `list(db, PageRequest) -> Page<Model>`: sorted by named columns then by primary key; an
///     unknown sort column is a `Programming` error, never SQL
///   - `stream(db) -> impl Stream<Item = Result<Model, OpsError>>`: keyset pagination over the
///     primary key, 1000 rows per query, holding no connection between batches
///   - `update(db, key, Patch) -> Model` (`NotFound` when absent; an empty patch returns the row)
///   - `save(db, ActiveModel) -> Model`
///   - `upsert(db, New) -> Model`: on the primary key when `New` holds it, else on the first
///     unique key (a `find_by` key, a `unique` column, a `unique_key` group)
///   - `delete(db, key) -> bool`, `delete_many(db, keys) -> u64`, `count(db) -> u64`,
///     `exists(db, key) -> bool`
///   - `query() -> sea_orm::Select<Entity>`, the escape hatch
///
///   `key` is the primary key's type, or a tuple of the key columns' types for a composite key.
/// - `New`: every column except an auto-increment primary key, so forgetting a required column
///   is a compile error. `Clone`, `Debug`.
/// - `Patch`: every non-key column as an `Option` (`Option<Option<T>>` for a nullable column);
///   `None` leaves the column as it is. `Clone`, `Debug`, `Default`.
///
/// # Example
///
/// ```
/// pub mod conversation {
///     use sea_orm::entity::prelude::*;
///     use ops_sea::Ops;
///
///     #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Ops)]
///     #[sea_orm(table_name = "conversations")]
///     #[ops(find_by(session_id), list_by(model_id))]
///     pub struct Model {
///         #[sea_orm(primary_key)]
///         pub id: i32,
///         #[sea_orm(unique)]
///         pub session_id: String,
///         pub model_id: String,
///         pub title: Option<String>,
///     }
///
///     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
///     pub enum Relation {}
///
///     impl ActiveModelBehavior for ActiveModel {}
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use ops_sea::PageRequest;
/// use sea_orm::{ConnectionTrait, Database, Schema};
///
/// let db = Database::connect("sqlite::memory:").await?;
/// let schema = Schema::new(db.get_database_backend());
/// db.execute(&schema.create_table_from_entity(conversation::Entity)).await?;
///
/// let c = conversation::Ops::create(&db, conversation::New {
///     session_id: "user123".into(),
///     model_id: "gpt-4".into(),
///     title: Some("New chat".into()),
/// })
/// .await?;
/// assert_eq!(conversation::Ops::get(&db, c.id).await?, c);
/// assert!(conversation::Ops::find_by_session_id(&db, "user123").await?.is_some());
/// assert_eq!(conversation::Ops::list_by_model_id(&db, "gpt-4").await?.len(), 1);
///
/// let renamed = conversation::Ops::update(&db, c.id, conversation::Patch {
///     title: Some(None),
///     ..Default::default()
/// })
/// .await?;
/// assert_eq!(renamed.title, None);
///
/// let page = conversation::Ops::list(&db, PageRequest::first(10).desc("session_id")).await?;
/// assert_eq!((page.total, page.pages()), (1, 1));
/// assert!(conversation::Ops::delete(&db, c.id).await?);
/// assert!(conversation::Ops::get(&db, c.id).await.is_err());
/// # Ok(())
/// # }
/// ```
// `sea_orm` is declared as a helper too (as DeriveEntityModel does), so that a struct with
// `#[sea_orm(...)]` but no SeaORM derive gets our message rather than "cannot find attribute".
#[proc_macro_derive(Ops, attributes(ops, sea_orm))]
pub fn derive_ops(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    ops::derive(&input).into()
}

/// Runs an `async fn` (or a plain `fn`) in a managed database session.
///
/// The function names the session it wants as a parameter of type `&Session`. Callers pass any
/// `SessionSource` in its place: a `&Db` opens a session, commits it when the function returns
/// `Ok` and rolls it back on `Err`, on a panic (which then continues), on a timeout and when the
/// future is dropped; a caller's `&Session` is joined (propagation `required`), and the joined
/// function neither commits nor rolls back. The return type is `Result<T, E>` with any
/// `E: From<OpsError>`, so a failure to begin or commit reaches the function's own error type.
///
/// | option | effect |
/// | --- | --- |
/// | `isolation = "serializable"` | also `"repeatable_read"`, `"read_committed"`, `"read_uncommitted"` |
/// | `read_only` | opens the transaction read-only |
/// | `timeout = "5s"` | bounds the session (`30`, `500ms`, `5m`, `1.5s`); past it, rolled back |
/// | `propagation = "requires_new"` | `"required"` (default) joins a caller's session, `"requires_new"` opens its own on a second connection (failing fast when the pool has none), `"nested"` runs in a savepoint |
/// | `name = "transfer"` | the name in session stats and leak warnings (default: the function's module path and name) |
/// | `crate = "path"` | the path to `ops_sea` when the dependency is renamed |
///
/// The session's origin, shown beside its name, is the annotated function's `file:line`.
///
/// ```
/// use ops_sea::prelude::*;
/// use sea_orm::ConnectionTrait;
///
/// #[managed_session(isolation = "serializable", timeout = "5s")]
/// async fn rename(session: &Session, id: i64, name: String) -> Result<u64, OpsError> {
///     let sql = format!("UPDATE items SET name = '{name}' WHERE id = {id}");
///     Ok(session.execute_unprepared(&sql).await?.rows_affected())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), OpsError> {
/// let db = Db::connect("sqlite::memory:").await?;
/// db.execute_unprepared("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)").await?;
/// db.execute_unprepared("INSERT INTO items VALUES (1, 'a')").await?;
/// assert_eq!(rename(&db, 1, "b".into()).await?, 1); // its own session, committed
/// let session = db.session().await?;
/// rename(&session, 1, "c".into()).await?; // joins `session`
/// session.rollback().await?;
/// # Ok(()) }
/// ```
///
/// # Expansion
///
/// The parameter's type becomes `&(impl SessionSource + ?Sized)` and the body runs in a closure
/// that `ops_sea::run_managed` calls with the session; a plain `fn` drives it with
/// `ops_sea::blocking::block_on`. Inside an `#[async_trait]` impl, or when the parameter is
/// declared `&dyn SessionSource` (the way to write it in a trait), the signature is left as it is.
/// `#[db_retry]` goes above this attribute, never below.
#[proc_macro_attribute]
pub fn managed_session(args: TokenStream, item: TokenStream) -> TokenStream {
    session::expand(args.into(), item.into()).into()
}

/// Retries an `async fn` (or a plain `fn`) when it fails with a retryable error.
///
/// Whether an error is retried depends only on its category (the error type implements
/// `Categorize`). Above `#[managed_session]`, each attempt runs in a fresh session; when the
/// caller passes its own `&Session` (joined), the function is attempted once and the error
/// reaches the session's owner, since no retry inside a transaction can recover one the database
/// aborted. Alone, it retries a function that takes a `&Db`, counting retries in
/// `db.error_stats()`.
///
/// | option | effect |
/// | --- | --- |
/// | `attempts = 5` | attempts in all, counting the first (default 3) |
/// | `initial = "50ms"`, `max = "2s"` | the first backoff cap and the largest delay |
/// | `multiplier = 2.0` | growth of the cap from one retry to the next |
/// | `jitter = false` | wait the cap exactly instead of a random delay up to it |
/// | `deadline = "10s"` | no attempt starts past this time since the first |
/// | `on = [Deadlock, SerializationFailure]` | the `RetryReason`s retried, replacing the default set |
/// | `idempotent` | also retries `CommitUnknown`: the operation is safe to run twice |
/// | `crate = "path"` | the path to `ops_sea` when the dependency is renamed |
///
/// Owned arguments are cloned for each attempt (an argument that is not `Clone` is a compile
/// error suggesting a reference); references are passed as they are.
///
/// ```
/// use ops_sea::prelude::*;
/// use sea_orm::ConnectionTrait;
///
/// #[db_retry(attempts = 5, initial = "10ms")]
/// #[managed_session(isolation = "serializable")]
/// async fn transfer(session: &Session, from: i64, to: i64, amount: i64) -> Result<(), OpsError> {
///     session.execute_unprepared(&format!(
///         "UPDATE accounts SET balance = balance - {amount} WHERE id = {from}")).await?;
///     session.execute_unprepared(&format!(
///         "UPDATE accounts SET balance = balance + {amount} WHERE id = {to}")).await?;
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), OpsError> {
/// let db = Db::connect("sqlite::memory:").await?;
/// db.execute_unprepared("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER)").await?;
/// db.execute_unprepared("INSERT INTO accounts VALUES (1, 100), (2, 0)").await?;
/// transfer(&db, 1, 2, 30).await?;
/// # Ok(()) }
/// ```
#[proc_macro_attribute]
pub fn db_retry(args: TokenStream, item: TokenStream) -> TokenStream {
    retry::expand(args.into(), item.into()).into()
}

/// Runs an `async fn` test against a fresh database of its own, then fails it if it leaked a
/// session. Use it as `#[ops_sea::test]`.
///
/// The test takes its database as its one parameter, `db: Db` or `db: &Db`. Before the body, a
/// database is created on the server `DATABASE_URL` names (a temporary SQLite file when it is
/// unset), connected with default settings, and given the tables of the listed entities. After
/// the body, the test fails if a session is still open, a session was dropped without commit or
/// rollback, or a connection is still checked out of the pool or was returned inside a
/// transaction, naming each session's origin. The database is dropped afterwards, also when the
/// test panics.
///
/// | option | effect |
/// | --- | --- |
/// | `entities(cake, bakery)` | creates the tables of `cake::Entity` and `bakery::Entity` (with their enums and indexes, in foreign-key order) |
/// | `setup = seed` | then runs `async fn seed(db: &Db) -> Result<(), E>` (or `-> ()`) |
/// | `allow_leaks` | reports leaks on stderr instead of failing |
/// | `crate = "path"` | the path to `ops_sea` when the dependency is renamed |
///
/// The test may return `()` or a `Result<(), E>` with `E: Debug`, and keeps `#[should_panic]`
/// and `#[ignore]`. Each test runs on a current-thread tokio runtime of its own.
///
/// ```no_run
/// pub mod cake {
///     use sea_orm::entity::prelude::*;
///
///     #[derive(Clone, Debug, PartialEq, DeriveEntityModel, ops_sea::Ops)]
///     #[sea_orm(table_name = "cakes")]
///     pub struct Model {
///         #[sea_orm(primary_key)]
///         pub id: i32,
///         pub name: String,
///     }
///     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
///     pub enum Relation {}
///     impl ActiveModelBehavior for ActiveModel {}
/// }
///
/// use ops_sea::prelude::*;
///
/// #[ops_sea::test(entities(cake))]
/// async fn creates_a_cake(db: Db) -> Result<(), OpsError> {
///     let made = cake::Ops::create(&db, cake::New { name: "sponge".into() }).await?;
///     assert_eq!(cake::Ops::get(&db, made.id).await?.name, "sponge");
///     Ok(())
/// }
/// # fn main() {}
/// ```
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    test::expand(args.into(), item.into()).into()
}

/// Leaves the item as it is. Not part of the API.
///
/// `#[ops_sea::test]` names the `#[test]` attribute through its runtime path, so its compile tests
/// (`tests/ui/test`, run by trybuild, which builds binaries where `#[test]` functions are removed
/// unchecked) point `crate = "..."` at a module that puts this attribute in `#[test]`'s place,
/// and the whole expansion gets type-checked.
#[doc(hidden)]
#[proc_macro_attribute]
pub fn __compile_only(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}
