//! The runtime of `#[ops_sea::test]`: a fresh database per test, the tables of the listed
//! entities, and the leak check after the body.
//!
//! The attribute expands to a call of [`run_test`]; the pieces are public so that a test harness
//! of one's own can use them too. A [`TestDatabase`] alone gives an isolated database on the
//! server `DATABASE_URL` names (a temporary SQLite file when it is unset), dropped afterwards.
//!
//! ```no_run
//! use ops_sea::Db;
//! use ops_sea::testing::{TestArgs, run_test};
//!
//! #[test]
//! fn by_hand() {
//!     run_test(TestArgs::new(module_path!(), "by_hand"), |db: &Db| {
//!         Box::pin(async move {
//!             let session = db.session().await.expect("session");
//!             session.commit().await.expect("commit");
//!         })
//!     });
//! }
//! ```

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use sea_orm::{EntityTrait, Schema, SchemaBuilder};

use crate::Db;

mod database;

pub use database::TestDatabase;

/// How long the pool may take to get back the connections of sessions dropped at the end of the
/// body (their rollbacks run asynchronously) before the leak check counts what is still out.
const SETTLE: Duration = Duration::from_secs(2);

/// Bound on closing the pool: a leaked connection never comes back, and must not hang the test.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a test or a setup function returned: `()` or a `Result<_, E: Debug>`.
#[diagnostic::on_unimplemented(
    message = "`#[ops_sea::test]` functions return `()` or `Result<T, E>` with `E: Debug`, not \
               `{Self}`",
    label = "returns `{Self}`",
    note = "return `Result<(), E>` to fail the test with the error, or `()` and assert in the body"
)]
pub trait TestOutcome {
    /// The failure to report, when it is one.
    fn failure(&self) -> Option<String>;
}

impl TestOutcome for () {
    fn failure(&self) -> Option<String> {
        None
    }
}

impl<T, E: fmt::Debug> TestOutcome for Result<T, E> {
    fn failure(&self) -> Option<String> {
        self.as_ref().err().map(|err| format!("{err:?}"))
    }
}

/// A future borrowing the test's `Db`.
pub type TestFuture<'a, R> = Pin<Box<dyn Future<Output = R> + 'a>>;

type SetupFn = Box<dyn for<'a> FnOnce(&'a Db) -> TestFuture<'a, Option<String>>>;

/// What `#[ops_sea::test(...)]` says about one test.
pub struct TestArgs {
    module: &'static str,
    name: &'static str,
    entities: Vec<fn(SchemaBuilder) -> SchemaBuilder>,
    setup: Option<SetupFn>,
    allow_leaks: bool,
}

impl fmt::Debug for TestArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestArgs")
            .field("test", &format_args!("{}::{}", self.module, self.name))
            .field("entities", &self.entities.len())
            .field("setup", &self.setup.is_some())
            .field("allow_leaks", &self.allow_leaks)
            .finish()
    }
}

impl TestArgs {
    /// The test `name` in `module` (`module_path!()`), which names its database.
    pub fn new(module: &'static str, name: &'static str) -> TestArgs {
        TestArgs {
            module,
            name,
            entities: Vec::new(),
            setup: None,
            allow_leaks: false,
        }
    }

    /// Creates the table of `E` (with its enums and indexes) before the test; several entities
    /// are created in foreign-key order.
    pub fn entity<E: EntityTrait>(mut self) -> TestArgs {
        self.entities.push(register::<E>);
        self
    }

    /// Runs `setup` with the database after the tables are created; a failure fails the test.
    ///
    /// `setup` is an async function taking `&Db` and returning `()` or a `Result<_, E: Debug>`:
    /// `async fn seed(db: &Db) -> Result<(), OpsError>` is passed as `.setup(seed)`.
    pub fn setup<F, R>(mut self, setup: F) -> TestArgs
    where
        F: for<'a> AsyncFnOnce(&'a Db) -> R + 'static,
        R: TestOutcome + 'static,
    {
        self.setup = Some(Box::new(move |db: &Db| -> TestFuture<'_, Option<String>> {
            Box::pin(async move { setup(db).await.failure() })
        }));
        self
    }

    /// Reports leaks on stderr instead of failing the test.
    pub fn allow_leaks(mut self) -> TestArgs {
        self.allow_leaks = true;
        self
    }
}

fn register<E: EntityTrait>(builder: SchemaBuilder) -> SchemaBuilder {
    builder.register(E::default())
}

/// Runs one test: creates its database, connects a `Db`, creates the tables and runs the setup,
/// runs `test`, checks for leaks, and drops the database, also when the test panics.
///
/// # Panics
///
/// With the test's own panic; when the database cannot be created, set up or dropped; and when
/// the test leaked a session or a connection (unless `allow_leaks`), naming each session's
/// origin.
pub fn run_test<R, F>(args: TestArgs, test: F) -> R
where
    F: for<'a> FnOnce(&'a Db) -> TestFuture<'a, R>,
    R: TestOutcome,
{
    let test_name = format!("{}::{}", args.module, args.name);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|err| panic!("#[ops_sea::test] cannot start a tokio runtime: {err}"));
    let mut database = runtime
        .block_on(TestDatabase::create(args.name))
        .unwrap_or_else(|err| panic!("#[ops_sea::test] `{test_name}`: {err:#}"));
    let TestArgs {
        entities,
        setup,
        allow_leaks,
        ..
    } = args;
    let outcome = runtime.block_on(async {
        let db = Db::connect(database.url())
            .await
            .map_err(|err| format!("cannot connect to the test database: {err:#}"))?;
        let prepared = prepare(&db, entities, setup).await;
        let result = match prepared {
            Ok(()) => Ok(AssertUnwindSafe(test(&db)).catch_unwind().await),
            Err(err) => Err(err),
        };
        let leaks = match &result {
            Ok(Ok(_)) => leaks(&db).await,
            _ => Vec::new(),
        };
        // A leaked connection never comes back to the pool: close with a bound.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, db.close()).await;
        drop(db);
        result.map(|result| (result, leaks))
    });
    let dropped = runtime.block_on(database.drop_database());
    drop(runtime);

    let (result, leaks) = match outcome {
        Ok(outcome) => outcome,
        Err(err) => panic!("#[ops_sea::test] `{test_name}`: {err:#}"),
    };
    let value = match result {
        Ok(value) => value,
        Err(payload) => {
            if let Err(err) = dropped {
                eprintln!("#[ops_sea::test] `{test_name}`: {err:#}");
            }
            std::panic::resume_unwind(payload)
        }
    };
    if let Err(err) = dropped {
        panic!("#[ops_sea::test] `{test_name}`: {err:#}");
    }
    if !leaks.is_empty() {
        let report = leak_report(&test_name, &leaks);
        if allow_leaks || value.failure().is_some() {
            eprintln!("{report}");
        } else {
            panic!("{report}");
        }
    }
    value
}

/// Creates the tables and runs the setup function.
async fn prepare(
    db: &Db,
    entities: Vec<fn(SchemaBuilder) -> SchemaBuilder>,
    setup: Option<SetupFn>,
) -> Result<(), String> {
    if !entities.is_empty() {
        let mut builder = Schema::new(db.backend()).builder();
        for register in entities {
            builder = register(builder);
        }
        builder
            .apply(db)
            .await
            .map_err(|err| format!("cannot create the tables of `entities(..)`: {err:#}"))?;
    }
    if let Some(setup) = setup
        && let Some(failure) = setup(db).await
    {
        return Err(format!("the setup function failed: {failure}"));
    }
    Ok(())
}

/// What the test left behind: open sessions, sessions dropped unfinished, connections still out
/// of the pool or returned inside a transaction.
async fn leaks(db: &Db) -> Vec<String> {
    // Sessions dropped at the end of the body roll back asynchronously; give their connections
    // a moment to come back before counting what is still out.
    let deadline = Instant::now() + SETTLE;
    while (db.tracker().active() > 0 || db.pool_state().in_use() > 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut found = Vec::new();
    for session in db.tracker().open_sessions() {
        found.push(format!(
            "session `{}` opened at {} is still open after the test (open for {:?})",
            session.name, session.origin, session.age
        ));
    }
    let dropped = db.tracker().dropped_unfinished_sessions();
    for session in &dropped {
        found.push(format!(
            "session `{}` opened at {} was dropped without commit or rollback",
            session.name, session.origin
        ));
    }
    let counted = db.session_stats().dropped_unfinished;
    let listed = u64::try_from(dropped.len()).unwrap_or(u64::MAX);
    if counted > listed {
        found.push(format!(
            "{} more sessions were dropped without commit or rollback",
            counted - listed
        ));
    }
    let returned = db.returned_in_transaction();
    if returned > 0 {
        found.push(format!(
            "{returned} connection{} came back to the pool inside a transaction (a raw `BEGIN`, \
             or a transaction SeaORM did not end); ops rolled {} back",
            if returned == 1 { "" } else { "s" },
            if returned == 1 { "it" } else { "them" }
        ));
    }
    let in_use = db.pool_state().in_use();
    if in_use > 0 {
        found.push(format!(
            "{in_use} pooled connection{} still checked out {SETTLE:?} after the test, holding \
             whatever transaction {} (a leaked `DatabaseTransaction`, a session kept alive in a \
             task or a static)",
            if in_use == 1 { " is" } else { "s are" },
            if in_use == 1 {
                "it is in"
            } else {
                "they are in"
            }
        ));
    }
    found
}

fn leak_report(test_name: &str, leaks: &[String]) -> String {
    let mut report = format!("#[ops_sea::test] `{test_name}` leaked database work:\n");
    for leak in leaks {
        report.push_str("  - ");
        report.push_str(leak);
        report.push('\n');
    }
    report.push_str(
        "finish every session with `commit()` or `rollback()` (or let `#[managed_session]` own \
         it); to accept this in one test, write `#[ops_sea::test(allow_leaks)]`",
    );
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes() {
        assert_eq!(().failure(), None);
        assert_eq!(Ok::<(), &str>(()).failure(), None);
        assert_eq!(Err::<(), &str>("no").failure().as_deref(), Some("\"no\""));
    }
}
