//! The quickstart: two entities with generated repositories, every repository operation (the
//! filtered ones too), a business-rule error, a managed session, a retry, a session dropped
//! unfinished, and what the runtime saw (session stats, error stats, health), all visible without
//! a tracing subscriber. `RUST_LOG=warn` adds what ops reports through `tracing`.
//!
//! ```sh
//! cargo run -p ops-examples --example quickstart                  # a temporary SQLite file
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run -p ops-examples --example quickstart
//! ```

// Each example uses only part of the shared module.
#[allow(dead_code)]
mod common;

use std::sync::atomic::{AtomicU32, Ordering};

use ops_sea::prelude::*;
use ops_sea::repo::TryStreamExt;
use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, Condition, QueryFilter};

/// An author: an auto-increment key and a unique email, found by email.
pub mod author {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "qs_authors")]
    #[ops(find_by(email))]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub email: String,
        pub name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(has_many = "super::post::Entity")]
        Post,
    }

    impl Related<super::post::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Post.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// A post: belongs to an author, has a unique slug, listed by author.
pub mod post {
    use ops_sea::Ops;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Ops)]
    #[sea_orm(table_name = "qs_posts")]
    #[ops(find_by(slug), list_by(author_id))]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub author_id: i32,
        #[sea_orm(unique)]
        pub slug: String,
        pub title: String,
        pub subtitle: Option<String>,
        pub published: bool,
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

/// Children before parents, for dropping.
const TABLES: [&str; 2] = ["qs_posts", "qs_authors"];

fn new_post(author_id: i32, slug: &str, title: &str) -> post::New {
    post::New {
        author_id,
        slug: slug.into(),
        title: title.into(),
        subtitle: None,
        published: false,
    }
}

/// Publishes every post of an author in one transaction: all or none.
#[managed_session(name = "publish_all")]
async fn publish_all(session: &Session, author_id: i32) -> Result<usize, OpsError> {
    let posts = post::Ops::list_by_author_id(session, author_id).await?;
    for p in &posts {
        post::Ops::update(
            session,
            p.id,
            post::Patch {
                published: Some(true),
                ..Default::default()
            },
        )
        .await?;
    }
    Ok(posts.len())
}

/// Publishes one post; publishing it twice is a business-rule error the caller can show as it is
/// (409 Conflict through the axum integration), never retried.
#[managed_session]
async fn publish(session: &Session, id: i32) -> Result<post::Model, OpsError> {
    let current = post::Ops::get(session, id).await?;
    if current.published {
        return Err(OpsError::conflict(format!(
            "\"{}\" is already published.",
            current.title
        )));
    }
    post::Ops::update(
        session,
        id,
        post::Patch {
            published: Some(true),
            ..Default::default()
        },
    )
    .await
}

/// Retitles a post, then fails: the managed session rolls the retitle back.
#[managed_session]
async fn retitle_then_fail(session: &Session, id: i32) -> Result<(), OpsError> {
    post::Ops::update(
        session,
        id,
        post::Patch {
            title: Some("never saved".into()),
            ..Default::default()
        },
    )
    .await?;
    Err(OpsError::new(
        ErrorCategory::Programming,
        "the caller decided to abandon the retitle",
    ))
}

/// A retried unit of work. Its first attempt fails with a (simulated) serialization failure, as a
/// concurrent writer would cause under serializable isolation; the second attempt, in a fresh
/// session, succeeds. The `bank` example meets real conflicts.
#[db_retry(attempts = 3, initial = "10ms")]
#[managed_session(isolation = "serializable", name = "rename_author")]
async fn rename_author(
    session: &Session,
    id: i32,
    name: &str,
    attempts: &AtomicU32,
) -> Result<author::Model, OpsError> {
    let renamed = author::Ops::update(
        session,
        id,
        author::Patch {
            name: Some(name.to_owned()),
            ..Default::default()
        },
    )
    .await?;
    if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
        return Err(OpsError::new(
            ErrorCategory::Retryable(RetryReason::SerializationFailure),
            "simulated: could not serialize access due to concurrent update",
        ));
    }
    Ok(renamed)
}

#[tokio::main]
async fn main() -> Result<(), OpsError> {
    // What ops reports through `tracing` (a session dropped unfinished, a leak, retries given
    // up) shows with a subscriber; this one line prints warnings when RUST_LOG asks for them.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let example = common::open("quickstart", |_| {}).await?;
    let db = &example.db;

    // Tables from the entities, the way SeaORM derives them.
    common::drop_tables(db, &TABLES).await?;
    common::create_table(db, author::Entity).await?;
    common::create_table(db, post::Entity).await?;

    println!("\n== repository operations");
    let ada = author::Ops::create(
        db,
        author::New {
            email: "ada@example.com".into(),
            name: "Ada".into(),
        },
    )
    .await?;
    println!("create          -> {ada:?}");
    println!(
        "get             -> {:?}",
        author::Ops::get(db, ada.id).await?
    );
    println!("find (absent)   -> {:?}", author::Ops::find(db, 999).await?);
    println!(
        "find_by_email   -> {:?}",
        author::Ops::find_by_email(db, "ada@example.com")
            .await?
            .map(|a| a.name)
    );
    println!(
        "exists          -> {}",
        author::Ops::exists(db, ada.id).await?
    );

    let inserted = post::Ops::create_many(
        db,
        [
            new_post(ada.id, "engines", "On engines"),
            new_post(ada.id, "notes", "Notes on the analytical engine"),
            new_post(ada.id, "bernoulli", "Computing Bernoulli numbers"),
            new_post(ada.id, "poetry", "Poetical science"),
        ],
    )
    .await?;
    println!("create_many     -> {inserted} rows");
    println!("count           -> {}", post::Ops::count(db).await?);

    let page = post::Ops::list(db, PageRequest::first(3).asc("title")).await?;
    let titles: Vec<&str> = page.items.iter().map(|p| p.title.as_str()).collect();
    println!(
        "list            -> page {} of {}, {} total: {titles:?}",
        page.page,
        page.pages(),
        page.total
    );
    let by_author = post::Ops::list_by_author_id(db, ada.id).await?;
    println!("list_by_author  -> {} posts", by_author.len());
    let engines = post::Ops::find_by_slug(db, "engines")
        .await?
        .ok_or_else(|| OpsError::not_found("post", "find_by_slug", "engines"))?;
    let some = post::Ops::get_many(db, [engines.id, 999]).await?;
    println!("get_many        -> {} of 2 keys found", some.len());
    let streamed: Vec<post::Model> = post::Ops::stream(db).try_collect().await?;
    println!("stream          -> {} posts", streamed.len());

    let updated = post::Ops::update(
        db,
        engines.id,
        post::Patch {
            subtitle: Some(Some("and what they compute".into())),
            ..Default::default()
        },
    )
    .await?;
    println!("update          -> subtitle {:?}", updated.subtitle);
    let mut active: post::ActiveModel = updated.into();
    active.title = Set("On engines, revised".into());
    let saved = post::Ops::save(db, active).await?;
    println!("save            -> title {:?}", saved.title);
    let upserted = author::Ops::upsert(
        db,
        author::New {
            email: "ada@example.com".into(),
            name: "Ada Lovelace".into(),
        },
    )
    .await?;
    println!(
        "upsert          -> id {} now named {:?} (same row)",
        upserted.id, upserted.name
    );
    let poetry = post::Ops::find_by_slug(db, "poetry").await?;
    let deleted = post::Ops::delete(db, poetry.map_or(0, |p| p.id)).await?;
    println!("delete          -> {deleted}");
    let notes = post::Ops::find_by_slug(db, "notes").await?;
    let removed = post::Ops::delete_many(db, notes.map(|p| p.id)).await?;
    println!("delete_many     -> {removed} rows");
    println!("count           -> {}", post::Ops::count(db).await?);

    println!("\n== filtered operations (any SeaORM condition)");
    let more = post::Ops::create_many_returning(
        db,
        [
            new_post(ada.id, "tables", "Tables of numbers"),
            new_post(ada.id, "looms", "Looms and cards"),
        ],
    )
    .await?;
    println!(
        "create_many_returning -> ids {:?}",
        more.iter().map(|p| p.id).collect::<Vec<_>>()
    );
    let drafts = Condition::all()
        .add(post::Column::AuthorId.eq(ada.id))
        .add(post::Column::Published.eq(false));
    let page = post::Ops::page_where(db, drafts.clone(), PageRequest::first(2).asc("slug")).await?;
    println!(
        "page_where      -> {:?}, page 1 of {} ({} drafts)",
        page.items
            .iter()
            .map(|p| p.slug.as_str())
            .collect::<Vec<_>>(),
        page.pages(),
        page.total
    );
    println!(
        "count_where     -> {}",
        post::Ops::count_where(db, drafts.clone()).await?
    );
    println!(
        "exists_where    -> {}",
        post::Ops::exists_where(db, post::Column::Title.contains("engine")).await?
    );
    println!(
        "first_where     -> {:?}",
        post::Ops::first_where(db, drafts.clone())
            .await?
            .map(|p| p.slug)
    );
    println!(
        "only_where      -> {:?}",
        post::Ops::only_where(db, post::Column::Slug.eq("looms"))
            .await?
            .map(|p| p.title)
    );
    if let Err(err) = post::Ops::only_where(db, drafts.clone()).await {
        println!(
            "only_where (many) -> {} in {:?}",
            err.category(),
            err.context()
        );
    }
    let by_author = post::Ops::list_by_author_id_page(db, ada.id, PageRequest::new(2, 2)).await?;
    println!(
        "list_by_author_id_page -> page 2: {} of {} posts",
        by_author.items.len(),
        by_author.total
    );
    // A join through SeaORM, run as a repository operation so errors keep the entity's context.
    let with_authors = post::Ops::run_query(
        db,
        "drafts_with_author",
        post::Ops::query()
            .filter(drafts.clone())
            .find_also_related(author::Entity)
            .all(db),
    )
    .await?;
    println!(
        "run_query (join) -> {} drafts with their author",
        with_authors.len()
    );
    println!(
        "delete_where    -> {} rows",
        post::Ops::delete_where(db, post::Column::Slug.eq("looms")).await?
    );

    println!("\n== errors are categorized");
    match author::Ops::get(db, 999).await {
        Err(err) => println!(
            "get(999)        -> {} / {:?}",
            err.category(),
            err.user_message()
        ),
        Ok(found) => println!("get(999)        -> unexpectedly found {found:?}"),
    }
    let duplicate = author::Ops::create(
        db,
        author::New {
            email: "ada@example.com".into(),
            name: "Another Ada".into(),
        },
    )
    .await;
    match duplicate {
        Err(err) => println!(
            "duplicate email -> {} (code {}, retryable: {}) / {:?}",
            err.category(),
            err.code().unwrap_or("none"),
            err.is_retryable(),
            err.user_message()
        ),
        Ok(created) => println!("duplicate email -> unexpectedly created {created:?}"),
    }

    // A business rule: the error the application raises on purpose, with a message to show.
    publish(db, engines.id).await?;
    match publish(db, engines.id).await {
        Err(err) => println!(
            "publish twice   -> {} (retryable: {}) / {:?}",
            err.category(),
            err.is_retryable(),
            err.user_message()
        ),
        Ok(_) => println!("publish twice   -> unexpectedly published again"),
    }

    println!("\n== managed sessions");
    let published = publish_all(db, ada.id).await?;
    println!("publish_all     -> {published} posts published in one transaction");
    let failed = retitle_then_fail(db, engines.id).await;
    let title = post::Ops::get(db, engines.id).await?.title;
    println!(
        "retitle_then_fail -> {}; title still {title:?} (rolled back)",
        failed.map_or_else(|e| e.category().to_string(), |()| "ok".into())
    );
    // The closure form, for code that does not use the attribute.
    let total = db
        .run(
            SessionOptions::new().name("count_in_session"),
            |s| async move { post::Ops::count(&s).await },
        )
        .await?;
    println!("db.run          -> {total} posts counted in a session");

    println!("\n== retry");
    let attempts = AtomicU32::new(0);
    let renamed = rename_author(db, ada.id, "Augusta Ada King", &attempts).await?;
    println!(
        "rename_author   -> {:?} after {} attempts",
        renamed.name,
        attempts.load(Ordering::SeqCst)
    );

    // A session dropped without commit or rollback: rolled back, warned about through `tracing`
    // with the line that opened it, and counted in the stats below (no subscriber needed).
    {
        // ops-scan: allow(unfinished-session) -- the quickstart drops this session on purpose to show how ops counts it
        let forgotten = db.session().await?;
        post::Ops::count(&forgotten).await?;
    }

    println!("\n== what the runtime saw");
    let sessions = db.session_stats();
    println!(
        "sessions: opened {}, committed {}, rolled back {}, dropped unfinished {}, active {}, peak {}",
        sessions.opened,
        sessions.committed,
        sessions.rolled_back,
        sessions.dropped_unfinished,
        sessions.active,
        sessions.peak
    );
    let errors = db.error_stats();
    println!(
        "errors: {} total, by category {:?}, by code {:?}",
        errors.total, errors.by_category, errors.by_code
    );
    println!(
        "retries: {} attempted ({:?}), {} succeeded, {} exhausted",
        errors.retries_attempted,
        errors.retries_by_category,
        errors.retries_succeeded,
        errors.retries_exhausted
    );
    let health = db.health().await;
    println!(
        "health: {} (ping {:?}, pool {} open / {} idle / {} max){}",
        health.status,
        health.ping,
        health.pool.size,
        health.pool.idle,
        health.pool.max,
        if health.reasons.is_empty() {
            String::new()
        } else {
            format!(", reasons: {:?}", health.reasons)
        }
    );

    example.finish(&TABLES).await
}
