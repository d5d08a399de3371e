//! The runtime on its own: a repository implemented by hand (no derive), its SQL, and a round
//! trip on SQLite in memory.

use super::select::{keys_conditions, sorted_select};
use super::stream::after_condition;
use super::*;
use futures_util::TryStreamExt;
use ops_core::ErrorCategory;
use sea_orm::{ActiveValue, DbBackend, EntityTrait, QueryFilter, Select};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, QueryTrait, Schema};

mod item {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "items")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub name: String,
        pub note: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

mod pair {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pairs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub a: i32,
        #[sea_orm(primary_key, auto_increment = false)]
        pub b: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

struct Items;

#[derive(Default)]
struct ItemPatch {
    note: Option<Option<String>>,
}

impl Repository for Items {
    type Entity = item::Entity;
    type Model = item::Model;
    type ActiveModel = item::ActiveModel;
    type Key = i32;
    type New = (String, Option<String>);
    type Patch = ItemPatch;
    const NAME: &'static str = "item";
    const UPSERT_KEY: &'static [item::Column] = &[item::Column::Name];

    fn new_active_model((name, note): Self::New) -> item::ActiveModel {
        item::ActiveModel {
            id: ActiveValue::NotSet,
            name: ActiveValue::Set(name),
            note: ActiveValue::Set(note),
        }
    }

    fn apply_patch(patch: ItemPatch, active: &mut item::ActiveModel) {
        if let Some(note) = patch.note {
            active.note = ActiveValue::Set(note);
        }
    }
}

struct Pairs;

impl Repository for Pairs {
    type Entity = pair::Entity;
    type Model = pair::Model;
    type ActiveModel = pair::ActiveModel;
    type Key = (i32, i32);
    type New = (i32, i32);
    type Patch = ();
    const NAME: &'static str = "pair";
    const UPSERT_KEY: &'static [pair::Column] = &[pair::Column::A, pair::Column::B];

    fn new_active_model((a, b): (i32, i32)) -> pair::ActiveModel {
        pair::ActiveModel {
            a: ActiveValue::Set(a),
            b: ActiveValue::Set(b),
        }
    }

    fn apply_patch((): (), _: &mut pair::ActiveModel) {}
}

fn sql<E: EntityTrait>(select: Select<E>) -> String {
    select.build(DbBackend::Postgres).to_string()
}

#[test]
fn bind_limits_per_backend() {
    assert_eq!(bind_limit(DbBackend::Sqlite), 32766);
    assert_eq!(bind_limit(DbBackend::Postgres), 65535);
    assert_eq!(bind_limit(DbBackend::MySql), 65535);
}

#[test]
fn keyset_condition_spells_out_tuple_order() {
    let condition = after_condition::<Pairs>(vec![1.into(), 2.into()]);
    assert_eq!(
        sql(pair::Entity::find().filter(condition)),
        r#"SELECT "pairs"."a", "pairs"."b" FROM "pairs" WHERE "pairs"."a" > 1 OR ("pairs"."a" = 1 AND "pairs"."b" > 2)"#
    );
}

#[test]
fn many_keys_split_at_the_bind_limit() {
    let singles =
        keys_conditions::<Items, i32>(DbBackend::Postgres, (0..70_000).collect()).unwrap();
    assert_eq!(singles.len(), 2, "65535 keys per statement");
    let pairs = (0..20_000).map(|i| (i, i)).collect();
    let pairs = keys_conditions::<Pairs, (i32, i32)>(DbBackend::Sqlite, pairs).unwrap();
    assert_eq!(pairs.len(), 2, "16383 two-column keys per statement");
    assert!(
        keys_conditions::<Items, i32>(DbBackend::Sqlite, Vec::new())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn sorting_checks_column_names_and_ends_with_the_key() {
    let select = sorted_select::<Items>(&PageRequest::first(5).desc("name")).unwrap();
    assert!(
        sql(select).ends_with(r#"ORDER BY "items"."name" DESC, "items"."id" ASC"#),
        "the key breaks ties"
    );
    let select = sorted_select::<Items>(&PageRequest::first(5).desc("id")).unwrap();
    assert!(sql(select).ends_with(r#"ORDER BY "items"."id" DESC"#));
    let err = sorted_select::<Items>(&PageRequest::first(5).asc("name; --")).unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Programming);
    assert!(err.detail().contains("id, name, note"), "{err}");
    let err = sorted_select::<Items>(&PageRequest::new(0, 5)).unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Programming);
}

async fn sqlite() -> DatabaseConnection {
    let db = Database::connect("sqlite::memory:").await.unwrap();
    let schema = Schema::new(db.get_database_backend());
    db.execute(&schema.create_table_from_entity(item::Entity))
        .await
        .unwrap();
    db.execute(&schema.create_table_from_entity(pair::Entity))
        .await
        .unwrap();
    db
}

#[tokio::test]
async fn a_hand_written_repository_round_trips() {
    let db = sqlite().await;
    let a = Items::create(&db, ("a".into(), None)).await.unwrap();
    assert_eq!(Items::get(&db, a.id).await.unwrap(), a);
    let err = Items::get(&db, 99).await.unwrap_err();
    assert_eq!(err.category(), ErrorCategory::NotFound);
    assert_eq!(err.context().map(|c| c.entity), Some("item"));

    let patched = Items::update(
        &db,
        a.id,
        ItemPatch {
            note: Some(Some("n".into())),
        },
    )
    .await
    .unwrap();
    assert_eq!(patched.note.as_deref(), Some("n"));

    let upserted = Items::upsert(&db, ("a".into(), None)).await.unwrap();
    assert_eq!((upserted.id, upserted.note), (a.id, None));
    assert_eq!(Items::count(&db).await.unwrap(), 1);

    let found = find_by::<Items, _, 1>(&db, "find_by_name", [(item::Column::Name, "a".into())])
        .await
        .unwrap();
    assert_eq!(found.map(|m| m.id), Some(a.id));

    assert_eq!(
        Pairs::create_many(&db, (0..5).flat_map(|a| (0..5).map(move |b| (a, b))))
            .await
            .unwrap(),
        25
    );
    // All-key upsert of an existing row: still returns it.
    assert_eq!(
        Pairs::upsert(&db, (2, 3)).await.unwrap(),
        pair::Model { a: 2, b: 3 }
    );
    let streamed: Vec<pair::Model> = Pairs::stream_batched(&db, 3).try_collect().await.unwrap();
    assert_eq!(streamed.len(), 25);
    assert!(
        streamed
            .windows(2)
            .all(|w| (w[0].a, w[0].b) < (w[1].a, w[1].b))
    );
    assert!(Pairs::exists(&db, (4, 4)).await.unwrap());
    assert_eq!(
        Pairs::delete_many(&db, [(0, 0), (0, 1), (9, 9)])
            .await
            .unwrap(),
        2
    );
    assert!(Pairs::delete(&db, (4, 4)).await.unwrap());
    assert_eq!(Pairs::count(&db).await.unwrap(), 22);
}
