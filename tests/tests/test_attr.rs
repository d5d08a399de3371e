//! `#[ops_sea::test]` on the backend `DATABASE_URL` names: a fresh database per test with the
//! listed entities' tables or a setup function, the leak check after the body (a leaking test
//! fails, naming the session's origin), the database dropped afterwards (also after a panic), and
//! parallel tests that never see each other's rows.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ops_sea::prelude::*;
use ops_sea::testing::{TestArgs, run_test};
use ops_tests::{Backend, backend, database_url};
use sea_orm::{ConnectionTrait, Statement, TransactionTrait};

pub mod bakery {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, ops_sea::Ops)]
    #[sea_orm(table_name = "ta_bakeries")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(has_many = "super::cake::Entity")]
        Cake,
    }

    impl Related<super::cake::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Cake.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod cake {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, ops_sea::Ops)]
    #[sea_orm(table_name = "ta_cakes")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
        pub bakery_id: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(
            belongs_to = "super::bakery::Entity",
            from = "Column::BakeryId",
            to = "super::bakery::Column::Id"
        )]
        Bakery,
    }

    impl Related<super::bakery::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Bakery.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

// The child is listed before its parent: the tables are created in foreign-key order anyway.
#[ops_sea::test(entities(cake, bakery))]
async fn creates_the_listed_tables(db: Db) -> Result<(), OpsError> {
    let b = bakery::Ops::create(
        &db,
        bakery::New {
            name: "LeBlanc".into(),
        },
    )
    .await?;
    let c = cake::Ops::create(
        &db,
        cake::New {
            name: "sponge".into(),
            bakery_id: b.id,
        },
    )
    .await?;
    assert_eq!(cake::Ops::get(&db, c.id).await?.bakery_id, b.id);
    // The foreign key is real: a cake of no bakery is refused.
    let orphan = cake::Ops::create(
        &db,
        cake::New {
            name: "orphan".into(),
            bakery_id: b.id + 100,
        },
    )
    .await;
    if backend() != Backend::Sqlite || foreign_keys_on(&db).await {
        assert!(orphan.is_err(), "{orphan:?}");
    }
    Ok(())
}

async fn foreign_keys_on(db: &Db) -> bool {
    let row = db
        .query_one_raw(Statement::from_string(db.backend(), "PRAGMA foreign_keys"))
        .await
        .ok()
        .flatten();
    row.and_then(|row| row.try_get_by_index::<i32>(0).ok()) == Some(1)
}

#[managed_session]
async fn add_bakery(session: &Session, name: &str) -> Result<bakery::Model, OpsError> {
    bakery::Ops::create(session, bakery::New { name: name.into() }).await
}

#[ops_sea::test(entities(bakery))]
async fn takes_a_reference_and_finishes_its_sessions(db: &Db) -> Result<(), OpsError> {
    add_bakery(db, "managed").await?;
    let session = db.session().await?;
    add_bakery(&session, "joined").await?;
    session.commit().await?;
    let rolled = db.session().await?;
    add_bakery(&rolled, "rolled back").await?;
    rolled.rollback().await?;
    assert_eq!(bakery::Ops::count(db).await?, 2);
    Ok(())
}

async fn seed(db: &Db) -> Result<(), OpsError> {
    for name in ["a", "b", "c"] {
        bakery::Ops::create(db, bakery::New { name: name.into() }).await?;
    }
    Ok(())
}

#[ops_sea::test(entities(bakery), setup = seed)]
async fn runs_the_setup_function(db: Db) {
    assert_eq!(bakery::Ops::count(&db).await.expect("count"), 3);
}

#[ops_sea::test]
#[should_panic(expected = "was dropped without commit or rollback")]
async fn a_session_dropped_unfinished_fails_the_test(db: Db) {
    // ops-scan: allow(unfinished-session) -- the leak this test proves is reported
    let session = db.session().await.expect("session");
    drop(session);
}

#[ops_sea::test]
#[should_panic(expected = "is still open after the test")]
async fn a_session_still_open_fails_the_test(db: &Db) {
    let session = db.session().await.expect("session");
    // Kept alive past the body, as a task or a static would keep it.
    Box::leak(Box::new(session));
}

#[ops_sea::test]
#[should_panic(expected = "still checked out")]
async fn a_raw_transaction_kept_open_fails_the_test(db: Db) {
    let txn = db.begin().await.expect("begin");
    Box::leak(Box::new(txn));
}

#[ops_sea::test(allow_leaks)]
async fn allow_leaks_lets_a_leaking_test_pass(db: Db) {
    // ops-scan: allow(unfinished-session) -- allowed by the attribute on purpose
    let session = db.session().await.expect("session");
    drop(session);
}

#[ops_sea::test]
#[should_panic(expected = "the body's own panic")]
async fn a_panicking_test_keeps_its_panic(db: Db) {
    let _ = db;
    panic!("the body's own panic");
}

#[ops_sea::test]
async fn a_test_may_return_an_error(db: Db) -> Result<(), OpsError> {
    db.execute_unprepared("SELECT 1").await?;
    Ok(())
}

/// The report names each leaked session and where it was opened.
#[test]
fn the_leak_report_names_each_origin() {
    let line = line!() + 5;
    let payload = catch_unwind(AssertUnwindSafe(|| {
        run_test(TestArgs::new(module_path!(), "origin"), |db: &Db| {
            Box::pin(async move {
                // ops-scan: allow(unfinished-session) -- the leak under test
                let s = db.session_with(SessionOptions::new().name("leaky")).await;
                drop(s);
            })
        })
    }))
    .expect_err("the leak fails the test");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message.contains(&format!("session `leaky` opened at {}:{line}", file!())),
        "{message}"
    );
    assert!(message.contains("allow_leaks"), "{message}");
}

/// Whether the test database `name` still exists on the server (or on disk for SQLite).
async fn exists(name: &str) -> bool {
    use sqlx::Connection;
    match backend() {
        Backend::Sqlite => std::path::Path::new(name).exists(),
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&database_url().expect("url"))
                .await
                .expect("connect");
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
                .bind(name)
                .fetch_one(&mut conn)
                .await
                .expect("pg_database");
            n > 0
        }
        Backend::MySql => {
            let mut conn = sqlx::MySqlConnection::connect(&database_url().expect("url"))
                .await
                .expect("connect");
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM information_schema.schemata WHERE schema_name = ?",
            )
            .bind(name)
            .fetch_one(&mut conn)
            .await
            .expect("schemata");
            n > 0
        }
    }
}

/// The database's name on the server, or the SQLite file's path.
async fn current_database(db: &Db) -> String {
    let sql = match backend() {
        Backend::Sqlite => "SELECT file FROM pragma_database_list WHERE name = 'main'",
        Backend::Postgres => "SELECT current_database()",
        Backend::MySql => "SELECT DATABASE()",
    };
    let row = db
        .query_one_raw(Statement::from_string(db.backend(), sql))
        .await
        .expect("query")
        .expect("a row");
    row.try_get_by_index::<String>(0).expect("a name")
}

/// The database is dropped after the test, after a failing one too, and a leaked connection does
/// not keep it alive.
#[test]
fn the_database_is_dropped_afterwards_even_after_a_panic() {
    for (case, panics) in [("passes", false), ("panics", true), ("leaks", false)] {
        let seen = Arc::new(Mutex::new(String::new()));
        let record = Arc::clone(&seen);
        let result = catch_unwind(AssertUnwindSafe(|| {
            run_test(
                TestArgs::new(module_path!(), case).allow_leaks(),
                |db: &Db| {
                    Box::pin(async move {
                        *record.lock().expect("lock") = current_database(db).await;
                        if case == "leaks" {
                            Box::leak(Box::new(db.session().await.expect("session")));
                        }
                        assert!(!panics, "the test body panicked");
                    })
                },
            )
        }));
        assert_eq!(result.is_err(), panics, "{case}");
        let name = seen.lock().expect("lock").clone();
        assert!(!name.is_empty(), "{case}");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        assert!(
            !runtime.block_on(exists(&name)),
            "{case}: {name} was left behind"
        );
    }
}

/// Tests running at once each get their own database: every one inserts the same row, waits
/// while the others do, and still sees only its own.
macro_rules! isolated {
    ($($name:ident),*) => {$(
        #[ops_sea::test(entities(bakery))]
        async fn $name(db: Db) -> Result<(), OpsError> {
            let mine = bakery::Ops::create(
                &db,
                bakery::New { name: stringify!($name).into() },
            )
            .await?;
            assert_eq!(mine.id, 1, "a fresh table");
            tokio::time::sleep(Duration::from_millis(200)).await;
            let all = bakery::Ops::query().all(&db).await?;
            assert_eq!(all, vec![mine]);
            Ok(())
        }
    )*};
}

isolated!(isolated_1, isolated_2, isolated_3, isolated_4);

/// The transaction trait is usable on the test's `Db` like on any other.
#[ops_sea::test(entities(bakery))]
async fn seaorm_transactions_work_on_the_test_db(db: Db) -> Result<(), OpsError> {
    let txn = db.begin().await?;
    bakery::Ops::create(&txn, bakery::New { name: "t".into() }).await?;
    txn.commit().await?;
    assert_eq!(bakery::Ops::count(&db).await?, 1);
    Ok(())
}

/// A connection that comes back to the pool inside a transaction fails the test. SQLite and
/// PostgreSQL only: MySQL's reset on return rolls back without being able to tell.
#[test]
fn a_raw_begin_returned_to_the_pool_fails_the_test() {
    if backend() == Backend::MySql {
        eprintln!("skipped: MySQL's reset on return cannot tell whether it rolled anything back");
        return;
    }
    let payload = catch_unwind(AssertUnwindSafe(|| {
        run_test(TestArgs::new(module_path!(), "raw_begin"), |db: &Db| {
            Box::pin(async move {
                // ops-scan: allow(raw-transaction-sql) -- the leak under test
                db.execute_unprepared("BEGIN").await.expect("begin");
            })
        })
    }))
    .expect_err("the raw BEGIN fails the test");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message.contains("came back to the pool inside a transaction"),
        "{message}"
    );
}
