//! Filtered repository operations (`page_where`, `list_where`, `count_where`, `exists_where`,
//! `first_where`, `only_where`, `delete_where`, `list_by_*_page`), `run_query` and
//! `create_many_returning`, on the backend `DATABASE_URL` names.
//!
//! The entities are the small lending library of issue 17: authors, books (listed by author),
//! and tags with a string key. Every filter is a plain SeaORM condition.

use std::time::Duration;

use ops_sea::repo::Repository;
use ops_sea::{Db, ErrorCategory, IntegrityKind, OpsError, PageRequest};
use ops_tests::{Backend, STEP_TIMEOUT, TestDb, bounded};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QuerySelect, Schema,
};

pub mod author {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "f_authors")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(has_many = "super::book::Entity")]
        Book,
    }

    impl Related<super::book::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Book.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod book {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "f_books")]
    #[ops(list_by(author_id), list_by((author_id, lent)))]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub author_id: i32,
        #[sea_orm(unique)]
        pub title: String,
        pub year: i32,
        pub lent: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(
            belongs_to = "super::author::Entity",
            from = "Column::AuthorId",
            to = "super::author::Column::Id"
        )]
        Author,
    }

    impl Related<super::author::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Author.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod tag {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "f_tags")]
    pub struct Model {
        #[sea_orm(
            primary_key,
            auto_increment = false,
            column_type = "String(StringLen::N(64))"
        )]
        pub name: String,
        pub uses: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// An isolated database with the library's tables, and a `Db` on it.
async fn setup(name: &str) -> (TestDb, DatabaseConnection, Db) {
    let test = TestDb::new(name).await;
    let conn = test.admin().await;
    let schema = Schema::new(conn.get_database_backend());
    bounded("create tables", STEP_TIMEOUT, async {
        conn.execute(&schema.create_table_from_entity(author::Entity))
            .await
            .expect("create authors");
        conn.execute(&schema.create_table_from_entity(book::Entity))
            .await
            .expect("create books");
        conn.execute(&schema.create_table_from_entity(tag::Entity))
            .await
            .expect("create tags");
    })
    .await;
    let db = Db::connect(&test.url).await.expect("Db::connect");
    (test, conn, db)
}

async fn finish(test: TestDb, conn: DatabaseConnection, db: Db) {
    db.close().await;
    let _ = conn.close().await;
    test.cleanup().await;
}

fn book(author_id: i32, title: &str, year: i32, lent: bool) -> book::New {
    book::New {
        author_id,
        title: title.into(),
        year,
        lent,
    }
}

/// Two authors, eight books: Ada's five (two lent), Bob's three (one lent).
async fn library(db: &Db) -> (author::Model, author::Model) {
    let ada = author::Ops::create(db, author::New { name: "Ada".into() })
        .await
        .unwrap();
    let bob = author::Ops::create(db, author::New { name: "Bob".into() })
        .await
        .unwrap();
    let books = [
        book(ada.id, "Engines", 1843, true),
        book(ada.id, "Notes", 1842, false),
        book(ada.id, "Bernoulli", 1843, false),
        book(ada.id, "Poetry", 1841, true),
        book(ada.id, "Letters", 1840, false),
        book(bob.id, "Gears", 1850, false),
        book(bob.id, "Levers", 1851, true),
        book(bob.id, "Pulleys", 1852, false),
    ];
    assert_eq!(book::Ops::create_many(db, books).await.unwrap(), 8);
    (ada, bob)
}

fn titles(books: &[book::Model]) -> Vec<&str> {
    books.iter().map(|b| b.title.as_str()).collect()
}

fn assert_context(err: &OpsError, entity: &str, operation: &str) {
    let context = err.context().unwrap_or_else(|| panic!("no context: {err}"));
    assert_eq!(
        (context.entity, context.operation),
        (entity, operation),
        "{err}"
    );
}

#[tokio::test]
async fn page_where_pages_a_filter_with_its_total() {
    let (test, conn, db) = setup("filtered_page").await;
    let (ada, _) = library(&db).await;

    let available = Condition::all()
        .add(book::Column::AuthorId.eq(ada.id))
        .add(book::Column::Lent.eq(false));
    let first = book::Ops::page_where(&db, available.clone(), PageRequest::first(2).asc("title"))
        .await
        .unwrap();
    assert_eq!(titles(&first.items), ["Bernoulli", "Letters"]);
    assert_eq!(
        (first.total, first.pages()),
        (3, 2),
        "the total counts matches only"
    );
    assert!(first.has_next());
    let second = book::Ops::page_where(&db, available.clone(), PageRequest::new(2, 2).asc("title"))
        .await
        .unwrap();
    assert_eq!(titles(&second.items), ["Notes"]);
    assert!(!second.has_next());
    let past = book::Ops::page_where(&db, available.clone(), PageRequest::new(9, 2))
        .await
        .unwrap();
    assert!(past.items.is_empty());
    assert_eq!(past.total, 3);

    // A single expression is a condition too; sort keys tie-break on the primary key.
    let by_year = book::Ops::page_where(
        &db,
        book::Column::Year.eq(1843),
        PageRequest::first(10).desc("year"),
    )
    .await
    .unwrap();
    assert_eq!(titles(&by_year.items), ["Engines", "Bernoulli"]);

    // Any page size is served, however large: the LIMIT is bounded by what is left.
    let all = book::Ops::page_where(&db, Condition::all(), PageRequest::first(u64::MAX))
        .await
        .unwrap();
    assert_eq!((all.items.len(), all.total), (8, 8));

    // Page 0 and size 0 are errors that say what to do, never a panic.
    for request in [PageRequest::new(0, 10), PageRequest::new(1, 0)] {
        let err = book::Ops::page_where(&db, available.clone(), request)
            .await
            .unwrap_err();
        assert_eq!(err.category(), ErrorCategory::Programming, "{err}");
        assert_context(&err, "book", "page_where");
    }
    let err = book::Ops::list(&db, PageRequest::new(0, 10))
        .await
        .unwrap_err();
    assert!(err.detail().contains("start at 1"), "{err}");

    finish(test, conn, db).await;
}

#[tokio::test]
async fn count_exists_first_only_and_list_where() {
    let (test, conn, db) = setup("filtered_reads").await;
    let (ada, bob) = library(&db).await;

    let lent = book::Column::Lent.eq(true);
    assert_eq!(book::Ops::count_where(&db, lent.clone()).await.unwrap(), 3);
    assert_eq!(
        book::Ops::count_where(&db, Condition::all()).await.unwrap(),
        8,
        "an empty condition counts every row"
    );
    assert!(book::Ops::exists_where(&db, lent.clone()).await.unwrap());
    assert!(
        !book::Ops::exists_where(&db, book::Column::Year.lt(1800))
            .await
            .unwrap()
    );

    let first = book::Ops::first_where(&db, book::Column::AuthorId.eq(bob.id))
        .await
        .unwrap()
        .expect("Bob has books");
    assert_eq!(first.title, "Gears", "the first in primary-key order");
    assert_eq!(
        book::Ops::first_where(&db, book::Column::Year.gt(2000))
            .await
            .unwrap(),
        None
    );

    let levers = book::Ops::only_where(
        &db,
        Condition::all()
            .add(book::Column::AuthorId.eq(bob.id))
            .add(book::Column::Lent.eq(true)),
    )
    .await
    .unwrap();
    assert_eq!(levers.map(|b| b.title), Some("Levers".to_owned()));
    assert_eq!(
        book::Ops::only_where(&db, book::Column::Title.eq("Missing"))
            .await
            .unwrap(),
        None
    );
    let before = db.error_stats().total;
    let two = book::Ops::only_where(&db, book::Column::Year.eq(1843))
        .await
        .unwrap_err();
    assert_eq!(two.category(), ErrorCategory::MultipleResults, "{two}");
    assert_context(&two, "book", "only_where");
    let shown = two
        .context()
        .and_then(|c| c.key.clone())
        .unwrap_or_default();
    assert!(
        shown.contains("year"),
        "the condition is in the context: {shown}"
    );
    assert_eq!(db.error_stats().total, before + 1, "counted once");

    let any = Condition::any()
        .add(book::Column::Title.eq("Poetry"))
        .add(book::Column::Title.eq("Pulleys"));
    let listed = book::Ops::list_where(&db, any).await.unwrap();
    assert_eq!(titles(&listed), ["Poetry", "Pulleys"]);
    assert_eq!(
        book::Ops::list_where(&db, book::Column::AuthorId.eq(ada.id))
            .await
            .unwrap()
            .len(),
        5
    );

    finish(test, conn, db).await;
}

#[tokio::test]
async fn delete_where_deletes_matches_and_refuses_an_empty_filter() {
    let (test, conn, db) = setup("filtered_delete").await;
    let (_, bob) = library(&db).await;

    assert_eq!(
        book::Ops::delete_where(&db, book::Column::AuthorId.eq(bob.id))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        book::Ops::delete_where(&db, book::Column::AuthorId.eq(bob.id))
            .await
            .unwrap(),
        0
    );
    assert_eq!(book::Ops::count(&db).await.unwrap(), 5);

    let err = book::Ops::delete_where(&db, Condition::all())
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Programming, "{err}");
    assert_context(&err, "book", "delete_where");
    assert!(err.detail().contains("Expr::value(true)"), "{err}");
    assert_eq!(book::Ops::count(&db).await.unwrap(), 5, "nothing deleted");

    assert_eq!(
        book::Ops::delete_where(&db, Expr::value(true))
            .await
            .unwrap(),
        5,
        "every row, on purpose"
    );
    finish(test, conn, db).await;
}

#[tokio::test]
async fn list_by_page_pages_a_generated_key() {
    let (test, conn, db) = setup("filtered_list_by_page").await;
    let (ada, bob) = library(&db).await;

    let page = book::Ops::list_by_author_id_page(&db, ada.id, PageRequest::new(2, 2).asc("title"))
        .await
        .unwrap();
    assert_eq!(titles(&page.items), ["Letters", "Notes"]);
    assert_eq!((page.total, page.page, page.pages()), (5, 2, 3));
    let lent = book::Ops::list_by_author_id_and_lent_page(&db, bob.id, true, PageRequest::first(5))
        .await
        .unwrap();
    assert_eq!(titles(&lent.items), ["Levers"]);
    assert_eq!(lent.total, 1);
    // The unpaged form is still there.
    assert_eq!(
        book::Ops::list_by_author_id(&db, bob.id)
            .await
            .unwrap()
            .len(),
        3
    );
    let err = book::Ops::list_by_author_id_page(&db, ada.id, PageRequest::first(5).asc("nope"))
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Programming, "{err}");
    assert_context(&err, "book", "list_by_author_id_page");
    finish(test, conn, db).await;
}

#[tokio::test]
async fn filtered_ops_work_in_a_session_and_through_the_trait() {
    /// Written once for any repository.
    async fn lent_count<R: Repository, C: ops_sea::Executor>(
        db: &C,
        filter: Condition,
    ) -> Result<u64, OpsError> {
        R::count_where(db, filter).await
    }

    let (test, conn, db) = setup("filtered_session").await;
    let (ada, _) = library(&db).await;
    let session = db.session().await.unwrap();
    let deleted = book::Ops::delete_where(&session, book::Column::Lent.eq(true))
        .await
        .unwrap();
    assert_eq!(deleted, 3);
    assert_eq!(
        lent_count::<book::Ops, _>(&session, Condition::all().add(book::Column::Lent.eq(true)))
            .await
            .unwrap(),
        0
    );
    session.rollback().await.unwrap();
    assert_eq!(
        lent_count::<book::Ops, _>(&db, Condition::all().add(book::Column::Lent.eq(true)))
            .await
            .unwrap(),
        3,
        "rolled back"
    );
    // The plain SeaORM connection works too.
    assert!(
        book::Ops::exists_where(&conn, book::Column::AuthorId.eq(ada.id))
            .await
            .unwrap()
    );
    finish(test, conn, db).await;
}

#[tokio::test]
async fn run_query_keeps_the_entity_context_for_seaorm_queries() {
    let (test, conn, db) = setup("filtered_run_query").await;
    let (ada, _) = library(&db).await;

    // A join through SeaORM, run as an operation of the repository.
    let with_authors = book::Ops::run_query(
        &db,
        "lent_with_author",
        book::Ops::query()
            .filter(book::Column::Lent.eq(true))
            .find_also_related(author::Entity)
            .all(&db),
    )
    .await
    .unwrap();
    assert_eq!(with_authors.len(), 3);
    assert!(
        with_authors
            .iter()
            .all(|(_, author)| author.as_ref().is_some_and(|a| !a.name.is_empty()))
    );

    // A statement the database rejects: the error carries the entity and the operation, and is
    // counted once.
    let before = db.error_stats().total;
    let err = book::Ops::run_query(
        &db,
        "bad_column",
        book::Ops::query()
            .filter(Expr::cust("no_such_column = 1"))
            .all(&db),
    )
    .await
    .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Programming, "{err}");
    assert_context(&err, "book", "bad_column");
    assert_eq!(db.error_stats().total, before + 1, "counted once");

    // The same rejection through a filtered operation.
    let err = book::Ops::count_where(&db, Expr::cust("no_such_column = 1"))
        .await
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Programming, "{err}");
    assert_context(&err, "book", "count_where");

    // Projections stay SeaORM's.
    let years: Vec<i32> = book::Ops::run_query(
        &db,
        "years",
        book::Ops::query()
            .select_only()
            .column(book::Column::Year)
            .filter(book::Column::AuthorId.eq(ada.id))
            .into_tuple()
            .all(&db),
    )
    .await
    .unwrap();
    assert_eq!(years.len(), 5);
    finish(test, conn, db).await;
}

#[tokio::test]
async fn create_many_returning_gives_the_stored_rows_in_order() {
    let (test, conn, db) = setup("filtered_returning").await;
    let ada = author::Ops::create(&db, author::New { name: "Ada".into() })
        .await
        .unwrap();

    let created = book::Ops::create_many_returning(
        &db,
        [
            book(ada.id, "Zeta", 1900, false),
            book(ada.id, "Alpha", 1901, true),
            book(ada.id, "Mid", 1902, false),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        titles(&created),
        ["Zeta", "Alpha", "Mid"],
        "the order given"
    );
    assert!(
        created.iter().all(|b| b.id > 0),
        "generated keys: {created:?}"
    );
    for stored in &created {
        assert_eq!(&book::Ops::get(&db, stored.id).await.unwrap(), stored);
    }

    // A key the caller sets, given out of order.
    let tags = tag::Ops::create_many_returning(
        &db,
        ["rust", "async", "sql"].map(|name| tag::New {
            name: name.into(),
            uses: name.len() as i64,
        }),
    )
    .await
    .unwrap();
    assert_eq!(
        tags.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["rust", "async", "sql"]
    );

    assert!(
        book::Ops::create_many_returning(&db, Vec::new())
            .await
            .unwrap()
            .is_empty()
    );

    // All or nothing: a duplicate title in the batch leaves no row behind.
    let before = book::Ops::count(&db).await.unwrap();
    let err = book::Ops::create_many_returning(
        &db,
        [
            book(ada.id, "New", 1, false),
            book(ada.id, "Alpha", 2, false),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.category(),
        ErrorCategory::Integrity(IntegrityKind::Unique),
        "{err}"
    );
    assert_context(&err, "book", "create_many_returning");
    assert_eq!(book::Ops::count(&db).await.unwrap(), before);

    // In a caller's session: the rows are visible there and gone after a rollback.
    let session = db.session().await.unwrap();
    let in_session =
        book::Ops::create_many_returning(&session, [book(ada.id, "Draft", 2000, false)])
            .await
            .unwrap();
    assert!(book::Ops::exists(&session, in_session[0].id).await.unwrap());
    session.rollback().await.unwrap();
    assert!(!book::Ops::exists(&db, in_session[0].id).await.unwrap());

    finish(test, conn, db).await;
}

#[tokio::test]
async fn create_many_returning_past_one_statement() {
    let (test, conn, db) = setup("filtered_returning_many").await;
    // Past one statement's bind limit on SQLite (10922 rows of 3 columns) and PostgreSQL (21845);
    // on MySQL/MariaDB every row is a statement of its own, so fewer keep the test short.
    let rows: i32 = if test.backend == Backend::MySql {
        3_000
    } else {
        25_000
    };
    let ada = author::Ops::create(&db, author::New { name: "Ada".into() })
        .await
        .unwrap();
    let created = bounded(
        "create_many_returning",
        Duration::from_secs(120),
        book::Ops::create_many_returning(
            &db,
            (0..rows).map(|i| book(ada.id, &format!("t{i:05}"), i, i % 2 == 0)),
        ),
    )
    .await
    .unwrap();
    assert_eq!(created.len(), rows as usize);
    assert!(
        created.iter().enumerate().all(|(i, b)| b.year == i as i32),
        "every row in the order given"
    );
    let mut ids: Vec<i32> = created.iter().map(|b| b.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), rows as usize, "distinct keys");
    assert_eq!(book::Ops::count(&db).await.unwrap(), rows as u64);
    finish(test, conn, db).await;
}

#[tokio::test]
async fn filtered_ops_need_no_import_and_take_seaorm_filters_as_written() {
    // The inherent functions compile without `Repository` in scope (this module imports it, so
    // check in a module that does not).
    mod plain {
        pub async fn count(db: &ops_sea::Db) -> Result<u64, ops_sea::OpsError> {
            use sea_orm::ColumnTrait;
            super::book::Ops::count_where(db, super::book::Column::Lent.eq(false)).await
        }
    }
    let (test, conn, db) = setup("filtered_no_import").await;
    library(&db).await;
    assert_eq!(plain::count(&db).await.unwrap(), 5);
    let rows = book::Entity::find()
        .filter(book::Column::Lent.eq(false))
        .all(&db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 5);
    finish(test, conn, db).await;
}
