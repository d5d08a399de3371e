//! The API.md example, under strict lints, run against SQLite in memory.

#![deny(
    warnings,
    missing_docs,
    missing_debug_implementations,
    unused_qualifications,
    unused_results,
    unreachable_pub,
    rust_2018_idioms
)]

/// The entity.
pub mod conversation {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    /// One conversation.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "conversations")]
    #[ops(find_by(session_id), list_by(model_id))]
    pub struct Model {
        /// The key.
        #[sea_orm(primary_key)]
        pub id: i32,
        /// The session.
        #[sea_orm(unique)]
        pub session_id: String,
        /// The model.
        pub model_id: String,
        /// The title.
        pub title: Option<String>,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    use sea_orm::{ConnectionTrait, Database, Schema};

    let db = Database::connect("sqlite::memory:").await?;
    let schema = Schema::new(db.get_database_backend());
    let _ = db
        .execute(&schema.create_table_from_entity(conversation::Entity))
        .await?;
    let c = conversation::Ops::create(
        &db,
        conversation::New {
            session_id: "user123".into(),
            model_id: "gpt-4".into(),
            title: Some("New chat".into()),
        },
    )
    .await?;
    let same = conversation::Ops::get(&db, c.id).await?;
    let maybe = conversation::Ops::find(&db, c.id).await?;
    let by_key = conversation::Ops::find_by_session_id(&db, "user123").await?;
    assert_eq!(Some(&same), maybe.as_ref());
    assert_eq!(Some(same), by_key);
    let renamed = conversation::Ops::update(
        &db,
        c.id,
        conversation::Patch {
            title: Some(Some("Renamed".into())),
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(renamed.title.as_deref(), Some("Renamed"));
    Ok(())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run()).expect("the example runs");
}
