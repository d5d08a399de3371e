//! `#[derive(Ops)]` repositories: every generated function, on the backend `DATABASE_URL` names.
//!
//! Entities cover an auto-increment key with a unique column, a composite key, a string key, a
//! composite unique key and a foreign key. Tables are created from the entities with
//! `Schema::create_table_from_entity`, so the schema is what SeaORM users get.

use ops_sea::repo::{Repository, TryStreamExt};
use ops_sea::{Db, ErrorCategory, IntegrityKind, OpsError, PageRequest};
use ops_tests::{Backend, STEP_TIMEOUT, TestDb, bounded};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Schema,
    TransactionTrait,
};

pub mod conversation {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "conversations")]
    #[ops(find_by(session_id), list_by(model_id))]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub session_id: String,
        pub model_id: String,
        pub title: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(has_many = "super::message::Entity")]
        Message,
    }

    impl Related<super::message::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Message.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod message {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "messages")]
    #[ops(name = "MessageOps", find_by((conversation_id, seq)), list_by(conversation_id))]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(unique_key = "conversation_seq")]
        pub conversation_id: i32,
        #[sea_orm(unique_key = "conversation_seq")]
        pub seq: i32,
        pub body: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(
            belongs_to = "super::conversation::Entity",
            from = "Column::ConversationId",
            to = "super::conversation::Column::Id"
        )]
        Conversation,
    }

    impl Related<super::conversation::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Conversation.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod membership {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "memberships")]
    #[ops(list_by(team_id))]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub team_id: i32,
        #[sea_orm(primary_key, column_type = "String(StringLen::N(64))")]
        pub user_id: String,
        pub role: String,
        pub note: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod tag {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "tags")]
    pub struct Model {
        #[sea_orm(primary_key, column_type = "String(StringLen::N(64))")]
        pub name: String,
        pub uses: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod event {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "events")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub kind: String,
        pub payload: i64,
        pub note: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// An isolated database with every table of this suite.
async fn setup(name: &str) -> (TestDb, DatabaseConnection) {
    let test = TestDb::new(name).await;
    let conn = test.admin().await;
    let backend = conn.get_database_backend();
    let schema = Schema::new(backend);
    bounded("create tables", STEP_TIMEOUT, async {
        conn.execute(&schema.create_table_from_entity(conversation::Entity))
            .await
            .expect("create conversations");
        conn.execute(&schema.create_table_from_entity(message::Entity))
            .await
            .expect("create messages");
        for index in schema.create_index_from_entity(message::Entity) {
            conn.execute(&index).await.expect("create messages index");
        }
        conn.execute(&schema.create_table_from_entity(membership::Entity))
            .await
            .expect("create memberships");
        conn.execute(&schema.create_table_from_entity(tag::Entity))
            .await
            .expect("create tags");
        conn.execute(&schema.create_table_from_entity(event::Entity))
            .await
            .expect("create events");
    })
    .await;
    (test, conn)
}

async fn finish(test: TestDb, conn: DatabaseConnection) {
    let _ = conn.close().await;
    test.cleanup().await;
}

fn new_conversation(session: &str, model: &str) -> conversation::New {
    conversation::New {
        session_id: session.into(),
        model_id: model.into(),
        title: None,
    }
}

fn assert_category(err: &OpsError, expected: ErrorCategory) {
    assert_eq!(err.category(), expected, "{err}");
}

#[tokio::test]
async fn create_get_find_and_not_found() {
    let (test, db) = setup("repo_create_get").await;

    let created = conversation::Ops::create(
        &db,
        conversation::New {
            session_id: "user123".into(),
            model_id: "gpt-4".into(),
            title: Some("New chat".into()),
        },
    )
    .await
    .expect("create");
    assert!(created.id > 0, "the database assigned the key");
    assert_eq!(created.title.as_deref(), Some("New chat"));

    assert_eq!(
        conversation::Ops::get(&db, created.id).await.expect("get"),
        created
    );
    assert_eq!(
        conversation::Ops::find(&db, created.id)
            .await
            .expect("find"),
        Some(created.clone())
    );
    assert_eq!(
        conversation::Ops::find(&db, 4242).await.expect("find"),
        None
    );

    let missing = conversation::Ops::get(&db, 4242).await.unwrap_err();
    assert_category(&missing, ErrorCategory::NotFound);
    let context = missing.context().expect("context");
    assert_eq!(
        (context.entity, context.operation, context.key.as_deref()),
        ("conversation", "get", Some("4242"))
    );

    finish(test, db).await;
}

#[tokio::test]
async fn find_by_and_list_by() {
    let (test, db) = setup("repo_find_by").await;
    let a = conversation::Ops::create(&db, new_conversation("s-a", "gpt-4"))
        .await
        .unwrap();
    let b = conversation::Ops::create(&db, new_conversation("s-b", "gpt-4"))
        .await
        .unwrap();
    conversation::Ops::create(&db, new_conversation("s-c", "claude"))
        .await
        .unwrap();

    // `&str` and `String` both work for a `String` column.
    assert_eq!(
        conversation::Ops::find_by_session_id(&db, "s-a")
            .await
            .unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        conversation::Ops::find_by_session_id(&db, String::from("nope"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        conversation::Ops::list_by_model_id(&db, "gpt-4")
            .await
            .unwrap(),
        vec![a.clone(), b.clone()]
    );
    assert!(
        conversation::Ops::list_by_model_id(&db, "none")
            .await
            .unwrap()
            .is_empty()
    );

    // A composite unique key, and `list_by` on a foreign-key column.
    for seq in 1..=3 {
        message::MessageOps::create(
            &db,
            message::New {
                conversation_id: a.id,
                seq,
                body: format!("m{seq}"),
            },
        )
        .await
        .unwrap();
    }
    let second = message::MessageOps::find_by_conversation_id_and_seq(&db, a.id, 2)
        .await
        .unwrap()
        .expect("message 2");
    assert_eq!(second.body, "m2");
    assert_eq!(
        message::MessageOps::find_by_conversation_id_and_seq(&db, b.id, 2)
            .await
            .unwrap(),
        None
    );
    let listed = message::MessageOps::list_by_conversation_id(&db, a.id)
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );

    finish(test, db).await;
}

#[tokio::test]
async fn get_many_and_composite_keys() {
    let (test, db) = setup("repo_get_many").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            conversation::Ops::create(&db, new_conversation(&format!("s{i}"), "m"))
                .await
                .unwrap()
                .id,
        );
    }
    let got = conversation::Ops::get_many(&db, [ids[3], ids[1], 999_999])
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![ids[1], ids[3]],
        "found rows come back in key order; missing keys are skipped"
    );
    assert!(
        conversation::Ops::get_many(&db, Vec::<i32>::new())
            .await
            .unwrap()
            .is_empty()
    );

    // Composite primary key: the key is a tuple.
    for (team, user, role) in [
        (1, "ann", "owner"),
        (1, "bob", "member"),
        (2, "ann", "member"),
    ] {
        membership::Ops::create(
            &db,
            membership::New {
                team_id: team,
                user_id: user.into(),
                role: role.into(),
                note: None,
            },
        )
        .await
        .unwrap();
    }
    let ann = membership::Ops::get(&db, (1, "ann".to_owned()))
        .await
        .unwrap();
    assert_eq!(ann.role, "owner");
    assert!(
        membership::Ops::exists(&db, (2, "ann".to_owned()))
            .await
            .unwrap()
    );
    assert!(
        !membership::Ops::exists(&db, (2, "bob".to_owned()))
            .await
            .unwrap()
    );
    let pair = membership::Ops::get_many(
        &db,
        [
            (2, "ann".to_owned()),
            (1, "bob".to_owned()),
            (9, "x".to_owned()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        pair.iter()
            .map(|m| (m.team_id, m.user_id.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "bob"), (2, "ann")]
    );
    let missing = membership::Ops::get(&db, (3, "zed".to_owned()))
        .await
        .unwrap_err();
    assert_eq!(
        missing.context().and_then(|c| c.key.as_deref()),
        Some("(3, \"zed\")")
    );
    assert_eq!(
        membership::Ops::list_by_team_id(&db, 1)
            .await
            .unwrap()
            .len(),
        2
    );
    let updated = membership::Ops::update(
        &db,
        (1, "bob".to_owned()),
        membership::Patch {
            role: Some("admin".into()),
            note: Some(Some("promoted".into())),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (updated.role.as_str(), updated.note.as_deref()),
        ("admin", Some("promoted"))
    );
    assert_eq!(
        membership::Ops::delete_many(&db, [(1, "ann".to_owned()), (2, "ann".to_owned())])
            .await
            .unwrap(),
        2
    );
    assert_eq!(membership::Ops::count(&db).await.unwrap(), 1);

    finish(test, db).await;
}

#[tokio::test]
async fn list_pages_and_sorts() {
    let (test, db) = setup("repo_list").await;

    let empty = conversation::Ops::list(&db, PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!((empty.total, empty.pages(), empty.items.len()), (0, 0, 0));
    assert!(!empty.has_next());

    for i in 0..25 {
        // Two model ids, so sorting by model_id leaves ties the key must break.
        let model = if i % 2 == 0 { "even" } else { "odd" };
        conversation::Ops::create(&db, new_conversation(&format!("s{i:02}"), model))
            .await
            .unwrap();
    }
    let first = conversation::Ops::list(&db, PageRequest::new(1, 10))
        .await
        .unwrap();
    assert_eq!((first.total, first.pages(), first.items.len()), (25, 3, 10));
    assert!(first.has_next());
    assert!(
        first.items.windows(2).all(|w| w[0].id < w[1].id),
        "the default order is the primary key"
    );
    let last = conversation::Ops::list(&db, PageRequest::new(3, 10))
        .await
        .unwrap();
    assert_eq!(last.items.len(), 5);
    assert!(!last.has_next());
    let past = conversation::Ops::list(&db, PageRequest::new(4, 10))
        .await
        .unwrap();
    assert!(past.items.is_empty());
    assert_eq!(past.total, 25);

    // Sorting by a column with ties: the pages together hold every row exactly once.
    let mut seen = Vec::new();
    for page in 1..=3 {
        let request = PageRequest::new(page, 10).desc("model_id");
        let page = conversation::Ops::list(&db, request).await.unwrap();
        seen.extend(page.items.into_iter().map(|c| (c.model_id, c.id)));
    }
    let mut expected = seen.clone();
    expected.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    assert_eq!(seen, expected);
    assert_eq!(seen.len(), 25);

    // The field's name and the column's name both work; anything else is a programming error.
    let by_session = conversation::Ops::list(&db, PageRequest::first(3).desc("session_id"))
        .await
        .unwrap();
    assert_eq!(by_session.items[0].session_id, "s24");
    let bad = conversation::Ops::list(
        &db,
        PageRequest::first(3).asc("title; DROP TABLE conversations"),
    )
    .await
    .unwrap_err();
    assert_category(&bad, ErrorCategory::Programming);
    assert!(bad.detail().contains("unknown column"), "{bad}");
    assert_category(
        &conversation::Ops::list(&db, PageRequest::new(0, 10))
            .await
            .unwrap_err(),
        ErrorCategory::Programming,
    );
    assert_eq!(conversation::Ops::count(&db).await.unwrap(), 25);

    finish(test, db).await;
}

#[tokio::test]
async fn stream_visits_every_row_once() {
    let (test, db) = setup("repo_stream").await;
    let inserted = event::Ops::create_many(
        &db,
        (0..2_345).map(|i| event::New {
            kind: "tick".into(),
            payload: i,
            note: None,
        }),
    )
    .await
    .unwrap();
    assert_eq!(inserted, 2_345);

    let all: Vec<event::Model> = event::Ops::stream(&db).try_collect().await.unwrap();
    assert_eq!(all.len(), 2_345);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));

    // A composite key, in batches smaller than the table.
    for team in 0..3 {
        for user in 0..7 {
            membership::Ops::create(
                &db,
                membership::New {
                    team_id: team,
                    user_id: format!("u{user}"),
                    role: "member".into(),
                    note: None,
                },
            )
            .await
            .unwrap();
        }
    }
    let members: Vec<membership::Model> = membership::Ops::stream_batched(&db, 4)
        .try_collect()
        .await
        .unwrap();
    let keys: Vec<(i32, String)> = members
        .into_iter()
        .map(|m| (m.team_id, m.user_id))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(keys, sorted, "ordered by the composite key, no duplicates");
    assert_eq!(keys.len(), 21);

    let none: Vec<tag::Model> = tag::Ops::stream(&db).try_collect().await.unwrap();
    assert!(none.is_empty());

    finish(test, db).await;
}

#[tokio::test]
async fn update_and_save() {
    let (test, db) = setup("repo_update").await;
    let c = conversation::Ops::create(
        &db,
        conversation::New {
            session_id: "s".into(),
            model_id: "m".into(),
            title: Some("t".into()),
        },
    )
    .await
    .unwrap();

    let renamed = conversation::Ops::update(
        &db,
        c.id,
        conversation::Patch {
            title: Some(Some("Renamed".into())),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(renamed.title.as_deref(), Some("Renamed"));
    assert_eq!(renamed.session_id, "s");

    let cleared = conversation::Ops::update(
        &db,
        c.id,
        conversation::Patch {
            title: Some(None),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(cleared.title, None);

    // Setting a value equal to the stored one still finds the row (MySQL counts it as 0 rows
    // changed unless the client asks for found rows).
    let same = conversation::Ops::update(
        &db,
        c.id,
        conversation::Patch {
            model_id: Some("m".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(same, cleared);

    let unchanged = conversation::Ops::update(&db, c.id, conversation::Patch::default())
        .await
        .unwrap();
    assert_eq!(unchanged, cleared);

    let missing = conversation::Ops::update(
        &db,
        777,
        conversation::Patch {
            title: Some(None),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_category(&missing, ErrorCategory::NotFound);
    assert_eq!(missing.context().map(|c| c.operation), Some("update"));
    assert_category(
        &conversation::Ops::update(&db, 777, conversation::Patch::default())
            .await
            .unwrap_err(),
        ErrorCategory::NotFound,
    );

    // `save` inserts without a key and updates with one.
    let saved = conversation::Ops::save(
        &db,
        conversation::ActiveModel {
            id: NotSet,
            session_id: Set("saved".into()),
            model_id: Set("m".into()),
            title: Set(None),
        },
    )
    .await
    .unwrap();
    assert!(saved.id > c.id);
    let resaved = conversation::Ops::save(
        &db,
        conversation::ActiveModel {
            id: Set(saved.id),
            title: Set(Some("again".into())),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (resaved.id, resaved.title.as_deref()),
        (saved.id, Some("again"))
    );
    assert_category(
        &conversation::Ops::save(
            &db,
            conversation::ActiveModel {
                id: Set(9_999),
                title: Set(None),
                ..Default::default()
            },
        )
        .await
        .unwrap_err(),
        ErrorCategory::NotFound,
    );

    finish(test, db).await;
}

#[tokio::test]
async fn upsert_inserts_then_updates() {
    let (test, db) = setup("repo_upsert").await;

    // On the unique key: an auto-increment key is never in `New`.
    let first = conversation::Ops::upsert(&db, new_conversation("s", "gpt-3"))
        .await
        .unwrap();
    let second = conversation::Ops::upsert(
        &db,
        conversation::New {
            session_id: "s".into(),
            model_id: "gpt-4".into(),
            title: Some("t".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(second.id, first.id, "the existing row was updated");
    assert_eq!(
        (second.model_id.as_str(), second.title.as_deref()),
        ("gpt-4", Some("t"))
    );
    // The same values again: no change, and the row still comes back.
    let third = conversation::Ops::upsert(
        &db,
        conversation::New {
            session_id: "s".into(),
            model_id: "gpt-4".into(),
            title: Some("t".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(third, second);
    assert_eq!(conversation::Ops::count(&db).await.unwrap(), 1);

    // On a string primary key.
    let tag = tag::Ops::upsert(
        &db,
        tag::New {
            name: "rust".into(),
            uses: 1,
        },
    )
    .await
    .unwrap();
    assert_eq!(tag.uses, 1);
    let tag = tag::Ops::upsert(
        &db,
        tag::New {
            name: "rust".into(),
            uses: 2,
        },
    )
    .await
    .unwrap();
    assert_eq!((tag.name.as_str(), tag.uses), ("rust", 2));
    assert_eq!(tag::Ops::count(&db).await.unwrap(), 1);

    // On a composite primary key.
    let member = |role: &str| membership::New {
        team_id: 1,
        user_id: "ann".into(),
        role: role.into(),
        note: None,
    };
    membership::Ops::upsert(&db, member("member"))
        .await
        .unwrap();
    let promoted = membership::Ops::upsert(&db, member("owner")).await.unwrap();
    assert_eq!(promoted.role, "owner");
    assert_eq!(membership::Ops::count(&db).await.unwrap(), 1);

    finish(test, db).await;
}

#[tokio::test]
async fn delete_count_exists_and_query() {
    let (test, db) = setup("repo_delete").await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            conversation::Ops::create(&db, new_conversation(&format!("s{i}"), "m"))
                .await
                .unwrap()
                .id,
        );
    }
    assert_eq!(conversation::Ops::count(&db).await.unwrap(), 4);
    assert!(conversation::Ops::exists(&db, ids[0]).await.unwrap());
    assert!(conversation::Ops::delete(&db, ids[0]).await.unwrap());
    assert!(!conversation::Ops::delete(&db, ids[0]).await.unwrap());
    assert!(!conversation::Ops::exists(&db, ids[0]).await.unwrap());
    assert_eq!(
        conversation::Ops::delete_many(&db, [ids[1], ids[2], 12_345])
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        conversation::Ops::delete_many(&db, Vec::<i32>::new())
            .await
            .unwrap(),
        0
    );
    assert_eq!(conversation::Ops::count(&db).await.unwrap(), 1);

    let left = conversation::Ops::query()
        .filter(conversation::Column::SessionId.eq("s3"))
        .all(&db)
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, ids[3]);

    finish(test, db).await;
}

#[tokio::test]
async fn create_many_respects_bind_limits() {
    let (test, db) = setup("repo_create_many").await;
    const ROWS: i64 = 100_000;
    let inserted = bounded(
        "create_many of 100,000 rows",
        std::time::Duration::from_secs(120),
        event::Ops::create_many(
            &db,
            (0..ROWS).map(|i| event::New {
                kind: if i % 3 == 0 { "a" } else { "b" }.into(),
                payload: i,
                note: (i % 2 == 0).then(|| format!("n{i}")),
            }),
        ),
    )
    .await
    .expect("create_many");
    assert_eq!(inserted, ROWS as u64);
    assert_eq!(event::Ops::count(&db).await.unwrap(), ROWS as u64);

    // The same through the generic trait, inside a caller's transaction (a savepoint).
    let txn = db.begin().await.unwrap();
    let more = <event::Ops as Repository>::create_many(
        &txn,
        (0..10).map(|i| event::New {
            kind: "c".into(),
            payload: i,
            note: None,
        }),
    )
    .await
    .unwrap();
    assert_eq!(more, 10);
    txn.rollback().await.unwrap();
    assert_eq!(event::Ops::count(&db).await.unwrap(), ROWS as u64);

    // get_many and delete_many past one statement's bind limit (32766 on SQLite).
    let ids: Vec<i64> = (1..=40_000).collect();
    let got = event::Ops::get_many(&db, ids.clone()).await.unwrap();
    assert_eq!(got.len(), 40_000);
    assert_eq!(event::Ops::delete_many(&db, ids).await.unwrap(), 40_000);
    assert_eq!(
        event::Ops::count(&db).await.unwrap(),
        (ROWS - 40_000) as u64
    );

    assert_eq!(
        event::Ops::create_many(&db, Vec::new()).await.unwrap(),
        0,
        "nothing to insert runs no statement"
    );

    finish(test, db).await;
}

#[tokio::test]
async fn create_many_is_atomic() {
    let (test, db) = setup("repo_create_many_atomic").await;
    conversation::Ops::create(&db, new_conversation("taken", "m"))
        .await
        .unwrap();
    let rows = (0..50).map(|i| {
        let session = if i == 49 {
            "taken".to_owned()
        } else {
            format!("s{i}")
        };
        new_conversation(&session, "m")
    });
    let err = conversation::Ops::create_many(&db, rows).await.unwrap_err();
    assert_category(&err, ErrorCategory::Integrity(IntegrityKind::Unique));
    assert_eq!(
        conversation::Ops::count(&db).await.unwrap(),
        1,
        "the failed batch left nothing behind"
    );
    assert_eq!(err.context().map(|c| c.operation), Some("create_many"));
    finish(test, db).await;
}

#[tokio::test]
async fn violations_are_integrity_errors() {
    let (test, db) = setup("repo_violations").await;
    let c = conversation::Ops::create(&db, new_conversation("dup", "m"))
        .await
        .unwrap();

    let unique = conversation::Ops::create(&db, new_conversation("dup", "m"))
        .await
        .unwrap_err();
    assert_category(&unique, ErrorCategory::Integrity(IntegrityKind::Unique));
    assert!(unique.code().is_some(), "{unique:?}");
    let context = unique.context().expect("context");
    assert_eq!(
        (context.entity, context.operation),
        ("conversation", "create")
    );
    if test.backend == Backend::Postgres {
        // Only PostgreSQL reports the violated constraint in a field of its own; MySQL and
        // SQLite name it in the message text alone, which is never parsed.
        assert!(unique.constraint().is_some(), "{unique:?}");
    }

    let orphan = message::MessageOps::create(
        &db,
        message::New {
            conversation_id: c.id + 1000,
            seq: 1,
            body: "orphan".into(),
        },
    )
    .await
    .unwrap_err();
    assert_category(&orphan, ErrorCategory::Integrity(IntegrityKind::ForeignKey));
    if test.backend == Backend::Postgres {
        assert!(orphan.constraint().is_some(), "{orphan:?}");
    }

    // A unique violation through update, on the composite unique key.
    for seq in [1, 2] {
        message::MessageOps::create(
            &db,
            message::New {
                conversation_id: c.id,
                seq,
                body: String::new(),
            },
        )
        .await
        .unwrap();
    }
    let second = message::MessageOps::find_by_conversation_id_and_seq(&db, c.id, 2)
        .await
        .unwrap()
        .unwrap();
    let clash = message::MessageOps::update(
        &db,
        second.id,
        message::Patch {
            seq: Some(1),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_category(&clash, ErrorCategory::Integrity(IntegrityKind::Unique));
    assert_eq!(
        clash.context().and_then(|c| c.key.clone()),
        Some(second.id.to_string())
    );

    finish(test, db).await;
}

#[tokio::test]
async fn works_on_db_and_session_and_records_errors() {
    let (test, conn) = setup("repo_db_session").await;
    let db = Db::connect(&test.url).await.expect("Db::connect");

    let c = conversation::Ops::create(&db, new_conversation("on-db", "m"))
        .await
        .unwrap();
    let session = db.session().await.expect("session");
    let renamed = conversation::Ops::update(
        &session,
        c.id,
        conversation::Patch {
            title: Some(Some("in session".into())),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(renamed.title.as_deref(), Some("in session"));
    let inserted = conversation::Ops::create_many(
        &session,
        [new_conversation("x1", "m"), new_conversation("x2", "m")],
    )
    .await
    .unwrap();
    assert_eq!(inserted, 2);
    session.commit().await.unwrap();
    assert_eq!(conversation::Ops::count(&db).await.unwrap(), 3);

    let before = db.error_recorder().snapshot().total;
    let err = conversation::Ops::create(&db, new_conversation("on-db", "m"))
        .await
        .unwrap_err();
    let after = db.error_recorder().snapshot();
    assert_eq!(
        after.total,
        before + 1,
        "the failure was recorded: {:#?}",
        after.recent
    );
    let code = err.code().expect("a unique violation has a code");
    assert_eq!(after.by_code.get(code), Some(&1));

    // Errors the repository raises itself, and those of the transaction `create_many` begins,
    // are recorded once too.
    let missing = conversation::Ops::get(&db, 4242).await.unwrap_err();
    assert_category(&missing, ErrorCategory::NotFound);
    assert_eq!(db.error_recorder().snapshot().total, before + 2);
    let clash = conversation::Ops::create_many(&db, [new_conversation("on-db", "m")])
        .await
        .unwrap_err();
    assert_category(&clash, ErrorCategory::Integrity(IntegrityKind::Unique));
    let last = db.error_recorder().snapshot();
    assert_eq!(last.total, before + 3, "{:#?}", last.recent);
    assert_eq!(last.by_code.get(code), Some(&2));

    db.close().await;
    finish(test, conn).await;
}

#[tokio::test]
async fn generic_code_over_any_repository() {
    /// Lists every row of any repository on one page: written once for every entity.
    async fn list_all<R: Repository, C: ops_sea::Executor>(db: &C) -> Result<u64, OpsError> {
        let total = R::count(db).await?;
        let page = R::list(db, PageRequest::first(total.max(1))).await?;
        assert_eq!(page.items.len() as u64, total);
        Ok(total)
    }

    let (test, db) = setup("repo_generic").await;
    conversation::Ops::create(&db, new_conversation("g", "m"))
        .await
        .unwrap();
    tag::Ops::create(
        &db,
        tag::New {
            name: "t".into(),
            uses: 0,
        },
    )
    .await
    .unwrap();
    assert_eq!(list_all::<conversation::Ops, _>(&db).await.unwrap(), 1);
    assert_eq!(list_all::<tag::Ops, _>(&db).await.unwrap(), 1);
    assert_eq!(list_all::<membership::Ops, _>(&db).await.unwrap(), 0);
    assert_eq!(<tag::Ops as Repository>::NAME, "tag");
    let found = <tag::Ops as Repository>::find(&db, "t".to_owned())
        .await
        .unwrap();
    assert!(found.is_some());
    let rows = <event::Ops as Repository>::query()
        .filter(event::Column::Kind.eq("none"))
        .all(&db)
        .await
        .unwrap();
    assert!(rows.is_empty());
    assert!(event::Entity::find().all(&db).await.unwrap().is_empty());

    finish(test, db).await;
}
