//! The downstream crate's repositories, run on SQLite as a user's tests would.

use ops_downstream::{author, book, book_tag, publish};
use ops_sea::prelude::*;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Schema};

async fn database() -> DatabaseConnection {
    let db = Database::connect("sqlite::memory:").await.expect("connect");
    let schema = Schema::new(db.get_database_backend());
    for table in [
        schema.create_table_from_entity(author::Entity),
        schema.create_table_from_entity(book::Entity),
        schema.create_table_from_entity(book_tag::Entity),
    ] {
        let _ = db.execute(&table).await.expect("create table");
    }
    db
}

#[tokio::test]
async fn repositories_work_for_a_downstream_crate() {
    let db = database().await;

    let (ann, first) = publish(&db, "ann@example.com", "9780000000001", "First")
        .await
        .expect("publish");
    let (again, second) = publish(&db, "ann@example.com", "9780000000002", "Second")
        .await
        .expect("publish again");
    assert_eq!(
        ann, again,
        "the author was found by email, not created twice"
    );
    assert_eq!(
        book::BookOps::list_by_author_id(&db, ann.id).await.unwrap(),
        vec![first.clone(), second]
    );
    assert_eq!(
        book::BookOps::find_by_isbn(&db, "9780000000001")
            .await
            .unwrap(),
        Some(first.clone())
    );

    // Nullable columns: `Some(None)` clears, `None` leaves alone.
    let named = author::Ops::update(
        &db,
        ann.id,
        author::Patch {
            pen_name: Some(Some("A.".into())),
            born: Some(Some(1970)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (named.pen_name.as_deref(), named.born),
        (Some("A."), Some(1970))
    );
    let cleared = author::Ops::update(
        &db,
        ann.id,
        author::Patch {
            born: Some(None),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (cleared.pen_name.as_deref(), cleared.born),
        (Some("A."), None)
    );

    // A composite key.
    let tags = ["fiction", "classic"].map(|tag| book_tag::New {
        book_id: first.id,
        tag: tag.into(),
        added_by: None,
    });
    assert_eq!(book_tag::Ops::create_many(&db, tags).await.unwrap(), 2);
    let tag = book_tag::Ops::get(&db, (first.id, "classic".to_owned()))
        .await
        .unwrap();
    assert_eq!(tag.tag, "classic");
    let tag = book_tag::Ops::upsert(
        &db,
        book_tag::New {
            book_id: first.id,
            tag: "classic".into(),
            added_by: Some("ann".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(tag.added_by.as_deref(), Some("ann"));
    assert_eq!(
        book_tag::Ops::list_by_book_id(&db, first.id)
            .await
            .unwrap()
            .len(),
        2
    );

    // Pages and generic code through the prelude.
    let page: Page<book::Model> = book::BookOps::list(&db, PageRequest::first(1).desc("title"))
        .await
        .unwrap();
    assert_eq!(
        (page.total, page.pages(), page.items[0].title.as_str()),
        (2, 2, "Second")
    );
    assert_eq!(count::<author::Ops>(&db).await, 1);
    assert_eq!(count::<book_tag::Ops>(&db).await, 2);

    // The entity's name in errors comes from its module.
    let err = book::BookOps::get(&db, 404).await.unwrap_err();
    assert_eq!(err.category(), ErrorCategory::NotFound);
    assert_eq!(err.context().map(|c| c.entity), Some("book"));
}

async fn count<R: Repository>(db: &DatabaseConnection) -> u64 {
    R::count(db).await.expect("count")
}
