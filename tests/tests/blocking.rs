//! Synchronous code through `ops_sea::blocking`: the same workload (statements, managed sessions
//! that commit and roll back, a repository, nested calls, panics) from every context synchronous
//! code runs in: no runtime, a multi-thread runtime (its `block_on` thread, a task,
//! `spawn_blocking`) and a current-thread runtime (its `block_on` thread, a task, `spawn_blocking`).
//!
//! A deadlock must fail a test, not hang the run: each test runs its body, runtime included, on a
//! thread of its own and waits for it with a deadline. The runtimes are built exactly as
//! `#[tokio::test]` builds them (`flavor = "multi_thread"` and the default current-thread one);
//! the attribute itself would put the runtime on the test thread, where nothing could bound it.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use ops_sea::blocking::{self, block_on};
use ops_sea::prelude::*;
use ops_tests::TestDb;
use ops_tests::fixtures::{count, insert_item, items_table};

/// A repository over the `items` table of the fixtures.
mod item {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "items")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub name: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// How long one test may take before it is declared deadlocked. Generous: a healthy run takes a
/// second or two, a deadlock takes forever.
const DEADLINE: Duration = Duration::from_secs(90);

/// Runs `body` on a thread of its own and returns its result, re-raising its panic; fails when it
/// has not finished within [`DEADLINE`], leaving the stuck thread behind.
fn with_deadline<T: Send + 'static>(what: &str, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = mpsc::channel();
    let worker = std::thread::Builder::new()
        .name(what.to_owned())
        .spawn(move || {
            // The receiver is gone only when the deadline already failed the test.
            let _ = done.send(catch_unwind(AssertUnwindSafe(body)));
        })
        .expect("spawn the test thread");
    match result.recv_timeout(DEADLINE) {
        Ok(Ok(value)) => {
            let _ = worker.join();
            value
        }
        Ok(Err(panic)) => resume_unwind(panic),
        Err(RecvTimeoutError::Timeout) => {
            panic!("{what} did not finish within {DEADLINE:?}: deadlock")
        }
        Err(RecvTimeoutError::Disconnected) => panic!("{what} ended without a result"),
    }
}

#[derive(Clone, Copy, Debug)]
enum Flavor {
    CurrentThread,
    MultiThread,
}

/// Runs `body` in a fresh runtime of `flavor` on a thread bounded by [`DEADLINE`], the way
/// `#[tokio::test]` runs a test body.
fn in_runtime<Fut>(flavor: Flavor, what: &str, body: impl FnOnce() -> Fut + Send + 'static)
where
    Fut: Future<Output = ()>,
{
    with_deadline(what, move || {
        let mut builder = match flavor {
            Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
            Flavor::MultiThread => {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(2);
                b
            }
        };
        let runtime = builder
            .enable_all()
            .build()
            .expect("build the test runtime");
        runtime.block_on(body());
    });
}

/// Runs one async step of the test context on a plain thread with a runtime of its own.
///
/// `TestDb`'s futures cannot go through `block_on`: rustc cannot prove them `Send` ("implementation
/// of `Send` is not general enough", rust-lang/rust#110338), although they are.
fn off_runtime<T: Send, Fut: Future<Output = T>>(step: impl FnOnce() -> Fut + Send) -> T {
    std::thread::scope(|scope| {
        let helper = scope.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build a runtime")
                .block_on(step())
        });
        helper.join().unwrap_or_else(|panic| resume_unwind(panic))
    })
}

/// A fresh database with the `items` table, and a `Db` for synchronous code on it. Called without
/// `.await` from every context.
fn setup(name: &str) -> (TestDb, Db) {
    let t = off_runtime(|| TestDb::new(name));
    let db = blocking::connect_builder(Db::builder(&t.url).pool_size(1).max_overflow(3))
        .expect("blocking::connect");
    block_on(items_table(&db));
    (t, db)
}

/// Closes the pool and drops the database, after checking no session or connection was left
/// behind.
fn finish(t: TestDb, db: Db) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while db.pool_state().in_use() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(db.pool_state().in_use(), 0, "a connection was not returned");
    assert_eq!(db.session_stats().active, 0, "a session is still open");
    block_on(db.close());
    off_runtime(|| t.cleanup());
}

/// Waits, without blocking the runtime, until every connection is back in the pool.
async fn settle(db: &Db) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while db.pool_state().in_use() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether a row with `id` exists, by a repository call.
fn exists(db: &Db, id: i32) -> bool {
    block_on(item::Ops::find(db, id))
        .expect("find an item")
        .is_some()
}

fn abandon() -> OpsError {
    OpsError::new(ErrorCategory::Other, "the work was abandoned")
}

/// What synchronous code does with a database, without an `.await` anywhere. Rows `base..base+9`
/// are this call's own, so one database serves several calls.
fn sync_workload(db: &Db, base: i32) {
    let before = block_on(count(db, "items"));

    // A managed session through the async closure form, driven by `block_on`: commit on Ok.
    block_on(
        db.run(SessionOptions::new().name("async-ok"), |s| async move {
            insert_item(&s, i64::from(base), "async committed").await?;
            Ok::<_, OpsError>(())
        }),
    )
    .expect("run commits");
    // ... and rollback on Err.
    let err = block_on(
        db.run(SessionOptions::new().name("async-err"), |s| async move {
            insert_item(&s, i64::from(base) + 1, "async discarded").await?;
            Err::<(), _>(abandon())
        }),
    )
    .expect_err("the work failed");
    assert_eq!(err.detail(), "the work was abandoned");

    // The synchronous facade, with a repository call and a nested synchronous helper that joins
    // the session (propagation required) and so sees its uncommitted row.
    let created = blocking::run(db, SessionOptions::new().name("sync-ok"), |s| {
        let created = block_on(item::Ops::create(
            s,
            item::New {
                id: base + 2,
                name: Some("sync committed".into()),
            },
        ))?;
        let seen = blocking::run(s, SessionOptions::new(), |joined| {
            block_on(item::Ops::find(joined, base + 2))
        })?;
        assert_eq!(seen.as_ref(), Some(&created));
        Ok::<_, OpsError>(created)
    })
    .expect("blocking::run commits");
    assert_eq!(
        block_on(item::Ops::get(db, base + 2)).expect("the committed row"),
        created
    );
    let err = blocking::run(db, SessionOptions::new().name("sync-err"), |s| {
        block_on(insert_item(s, i64::from(base) + 3, "sync discarded"))?;
        Err::<(), _>(abandon())
    })
    .expect_err("the work failed");
    assert_eq!(err.detail(), "the work was abandoned");

    // Nested `block_on`, three deep, each level with a statement of its own.
    let nested = block_on(async {
        // ops-scan: allow(block-on-in-async) -- the bridge's own test: nested block_on from async code is what it supports
        let inner = block_on(async {
            // ops-scan: allow(block-on-in-async) -- the bridge's own test of nesting
            let innermost = block_on(count(db, "items"));
            innermost + count(db, "items").await
        });
        inner + count(db, "items").await
    });
    assert_eq!(nested, 3 * (before + 2));

    // A task spawned inside `block_on` runs on the bridge, so it outlives the call and any
    // runtime of the caller's, and a later `block_on` can wait for it.
    // The task handle is returned unawaited on purpose: the task must outlive this call.
    #[allow(clippy::async_yields_async)]
    let task = block_on(async {
        let db = db.clone();
        tokio::spawn(async move { count(&db, "items").await })
    });
    assert_eq!(block_on(task).expect("the bridge task"), before + 2);

    for (id, kept) in [(0, true), (1, false), (2, true), (3, false)] {
        assert_eq!(exists(db, base + id), kept, "row {}", base + id);
    }
    assert_eq!(block_on(count(db, "items")), before + 2);
}

/// The panic's message, for `&str` and `String` payloads.
fn message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<not a string>")
}

/// A future that panics with `message`.
async fn explode(message: &'static str) -> i32 {
    panic!("{message}")
}

/// Panics inside `block_on` and inside a synchronous session reach the caller unchanged; the
/// session is rolled back first.
fn sync_panics(db: &Db, base: i32) {
    let panic =
        catch_unwind(|| block_on(explode("boom in a future"))).expect_err("the panic propagates");
    assert_eq!(message(&*panic), "boom in a future");

    let rolled_back = db.session_stats().rolled_back;
    let panic = catch_unwind(AssertUnwindSafe(|| {
        blocking::run(db, SessionOptions::new().name("sync-panic"), |s| {
            block_on(insert_item(s, i64::from(base), "panics"))?;
            let n = block_on(explode("boom in a session"));
            Ok::<_, OpsError>(n)
        })
    }))
    .expect_err("the panic propagates");
    assert_eq!(message(&*panic), "boom in a session");
    assert_eq!(db.session_stats().rolled_back, rolled_back + 1);
    assert!(!exists(db, base), "the panicking session was rolled back");

    // A panic inside a nested `block_on` passes through both levels.
    // ops-scan: allow(block-on-in-async) -- the bridge's own test: a panic through nested block_on
    let panic = catch_unwind(|| block_on(async { block_on(explode("boom, nested")) }))
        .expect_err("the panic propagates");
    assert_eq!(message(&*panic), "boom, nested");
}

#[test]
fn no_runtime() {
    with_deadline("no_runtime", || {
        assert!(tokio::runtime::Handle::try_current().is_err());
        let (t, db) = setup("blocking_no_runtime");
        sync_workload(&db, 0);
        sync_panics(&db, 100);
        let stats = db.session_stats();
        assert_eq!(stats.dropped_unfinished, 0);
        finish(t, db);
    });
}

/// Runs the synchronous workload from each place of the current runtime: the thread inside its
/// `block_on`, one of its tasks, and one of its `spawn_blocking` threads.
async fn workload_in_each_place(db: &Db) {
    sync_workload(db, 0);
    sync_panics(db, 100);
    let on_task = db.clone();
    tokio::spawn(async move {
        sync_workload(&on_task, 10);
        sync_panics(&on_task, 110);
    })
    .await
    .expect("the task");
    let on_blocking = db.clone();
    tokio::task::spawn_blocking(move || {
        sync_workload(&on_blocking, 20);
        sync_panics(&on_blocking, 120);
    })
    .await
    .expect("the blocking task");
}

#[test]
fn multi_thread_runtime() {
    in_runtime(Flavor::MultiThread, "multi_thread_runtime", || async {
        let (t, db) = setup("blocking_multi_thread");
        workload_in_each_place(&db).await;
        // More tasks calling synchronous code at once than there are workers: `block_in_place`
        // hands each worker's queue to another thread, so none starves.
        let readers: Vec<_> = (0..6)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move {
                    (0..5)
                        .map(|_| block_on(count(&db, "items")))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for reader in readers {
            assert!(reader.await.expect("a reader").iter().all(|&n| n == 6));
        }
        // The same `Db` from async code of this runtime.
        assert_eq!(count(&db, "items").await, 6);
        settle(&db).await;
        finish(t, db);
    });
}

#[test]
fn multi_thread_runtime_with_a_db_connected_on_it() {
    in_runtime(Flavor::MultiThread, "multi_thread_own_db", || async {
        let t = TestDb::new("blocking_multi_own_db").await;
        // Connected the async way, on this runtime: fine while the runtime runs.
        let db = Db::builder(&t.url)
            .pool_size(1)
            .max_overflow(3)
            .connect()
            .await
            .expect("connect");
        items_table(&db).await;
        let on_task = db.clone();
        tokio::spawn(async move { sync_workload(&on_task, 0) })
            .await
            .expect("the task");
        let on_blocking = db.clone();
        tokio::task::spawn_blocking(move || sync_workload(&on_blocking, 10))
            .await
            .expect("the blocking task");
        finish(t, db);
    });
}

#[test]
fn current_thread_runtime() {
    in_runtime(Flavor::CurrentThread, "current_thread_runtime", || async {
        // `setup` connects through `blocking::connect_builder`, called here on the runtime's
        // only thread: the pool lives on the bridge, never on this runtime.
        let (t, db) = setup("blocking_current_thread");
        workload_in_each_place(&db).await;
        // The same `Db` from async code of this runtime: its connections wait on the bridge's
        // I/O driver, which wakes this runtime's task.
        assert_eq!(count(&db, "items").await, 6);
        let n = db
            .run(SessionOptions::new(), |s| async move {
                Ok::<_, OpsError>(count(&s, "items").await)
            })
            .await
            .expect("an async session");
        assert_eq!(n, 6);
        // sqlx returns a connection used by async code through a task on the runtime that
        // dropped it, this one: let it run before `finish` blocks the thread.
        settle(&db).await;
        finish(t, db);
    });
}

#[test]
fn a_sync_session_past_its_timeout_is_rolled_back() {
    with_deadline("sync_timeout", || {
        let (t, db) = setup("blocking_timeout");
        let options = SessionOptions::new()
            .name("slow")
            .timeout(Duration::from_millis(50));
        let err = blocking::run(&db, options, |s| {
            block_on(insert_item(s, 1, "too slow"))?;
            std::thread::sleep(Duration::from_millis(200));
            Ok::<_, OpsError>(())
        })
        .expect_err("the work outlived its timeout");
        assert_eq!(
            err.category(),
            ErrorCategory::Retryable(RetryReason::StatementTimeout)
        );
        assert!(err.detail().contains("'slow'"), "{err}");
        assert!(!exists(&db, 1));
        // Work within its timeout commits.
        let options = SessionOptions::new().timeout(Duration::from_secs(30));
        blocking::run(&db, options, |s| {
            block_on(insert_item(s, 2, "in time")).map_err(OpsError::from)
        })
        .expect("commits");
        assert!(exists(&db, 2));
        finish(t, db);
    });
}

#[test]
fn connect_errors_are_returned_not_panicked() {
    with_deadline("connect_errors", || {
        let err = blocking::connect("nonsense").expect_err("not a URL");
        assert_eq!(err.category(), ErrorCategory::Configuration);
        // Nothing listens on port 1 of the loopback interface.
        let err = blocking::connect_builder(
            Db::builder("postgres://postgres@127.0.0.1:1/none")
                .connect_timeout(Duration::from_secs(5)),
        )
        .expect_err("nothing listens there");
        assert!(
            matches!(
                err.category(),
                ErrorCategory::Unavailable | ErrorCategory::Retryable(_)
            ),
            "{err}"
        );
        // The same from inside a current-thread runtime.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let err = runtime
            // ops-scan: allow(block-on-in-async) -- the bridge's own test: blocking::connect inside a runtime
            .block_on(async { blocking::connect("nonsense") })
            .expect_err("not a URL");
        assert_eq!(err.category(), ErrorCategory::Configuration);
    });
}

#[test]
fn handle_spawns_on_the_bridge() {
    with_deadline("handle", || {
        let handle = blocking::handle().expect("the bridge");
        let task = handle.spawn(async { tokio::runtime::Handle::current().id() });
        let id = block_on(task).expect("the task");
        assert_eq!(id, handle.id());
        // Futures run by `block_on` see the bridge as their runtime, whatever the caller's.
        assert_eq!(
            block_on(async { tokio::runtime::Handle::current().id() }),
            id
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let seen =
            // ops-scan: allow(block-on-in-async) -- the bridge's own test: block_on on a current-thread runtime
            runtime.block_on(async { block_on(async { tokio::runtime::Handle::current().id() }) });
        assert_eq!(seen, id);
    });
}
