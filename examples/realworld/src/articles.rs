//! Articles: the lists, the feed, one article, writing, favorites, and the tags.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ops_sea::Executor;
use ops_sea::axum::RequestSession;
use ops_sea::prelude::*;
use sea_orm::sea_query::{Expr, Func, Order, Query};
use sea_orm::{ColumnTrait, Condition, QueryFilter, QueryOrder, QuerySelect};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{AuthUser, MaybeUser};
use crate::entities::{article, article_tag, favorite, follow, user};
use crate::error::ApiError;
use crate::extract::{Body, Params};
use crate::users::required;
use crate::views::{self, ArticleView, now_millis};

/// The largest page a client may ask for.
pub const MAX_LIMIT: u64 = 1000;

/// How many slugs `create` and `update` try before giving up: the title's own, then that with a
/// random suffix.
const SLUG_ATTEMPTS: usize = 5;

#[derive(Debug, Deserialize)]
pub struct ArticleEnvelope<T> {
    article: T,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewArticle {
    title: Option<String>,
    description: Option<String>,
    body: Option<String>,
    tag_list: Option<Vec<String>>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct UpdateArticle {
    title: Option<String>,
    description: Option<String>,
    body: Option<String>,
}

fn article_body(view: ArticleView) -> Json<Value> {
    Json(json!({ "article": view }))
}

/// A slug from a title: lowercase ASCII letters and digits, runs of anything else as one `-`.
pub fn slugify(title: &str) -> String {
    let mut slug = String::with_capacity(title.len());
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    while slug.ends_with('-') {
        slug.pop();
    }
    if slug.is_empty() {
        slug.push_str("article");
    }
    slug
}

/// The slug for the `attempt`-th try: the title's own first, then with a random suffix.
fn candidate_slug(base: &str, attempt: usize) -> String {
    if attempt == 0 {
        return base.to_owned();
    }
    let suffix: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(6)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    format!("{base}-{suffix}")
}

/// The tags in the order given, trimmed, blanks and repeats dropped.
fn clean_tags(tags: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    tags.into_iter()
        .map(|tag| tag.trim().to_owned())
        .filter(|tag| !tag.is_empty() && seen.insert(tag.clone()))
        .collect()
}

/// The filter and page of a list request.
struct Listing {
    condition: Condition,
    limit: u64,
    offset: u64,
}

fn paging(params: &Params) -> Result<(u64, u64), ApiError> {
    Ok((
        params.integer("limit", 20, 1, MAX_LIMIT)?,
        params.integer("offset", 0, 0, i64::MAX as u64)?,
    ))
}

/// Answers a list: `articlesCount` (one `COUNT`), the page with its authors (one joined
/// `SELECT`), and the page's tags, favorite counts, caller's favorites and caller's follows (one
/// statement each, see [`views::articles`]). Six statements at most for any page size.
///
/// The count is the repository's `count_where`. The page stays a SeaORM query run through
/// `run_query` (for the repository's span and error context): `page_where` pages by page number
/// (the spec's `offset` need not be a multiple of `limit`) and returns the articles alone, so
/// their authors would cost a statement more than this join.
async fn answer_list<C: Executor>(
    db: &C,
    caller: Option<i32>,
    listing: Listing,
) -> Result<Json<Value>, ApiError> {
    let total = article::Ops::count_where(db, listing.condition.clone()).await?;
    let rows = if listing.offset >= total {
        Vec::new()
    } else {
        let page = article::Ops::query()
            .filter(listing.condition)
            .find_also_related(user::Entity)
            .order_by(article::Column::CreatedAt, Order::Desc)
            .order_by(article::Column::Id, Order::Desc)
            .limit(listing.limit)
            .offset(listing.offset)
            .all(db);
        article::Ops::run_query(db, "list", page).await?
    };
    let rows = rows
        .into_iter()
        .filter_map(|(article, author)| Some((article, author?)))
        .collect();
    let articles = views::articles(db, caller, rows, false).await?;
    Ok(Json(
        json!({ "articles": articles, "articlesCount": total }),
    ))
}

/// `GET /articles?tag=&author=&favorited=&limit=&offset=`: most recent first.
pub async fn list(
    caller: MaybeUser,
    tx: RequestSession,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let (limit, offset) = paging(&params)?;
    let mut condition = Condition::all();
    if let Some(tag) = params.text("tag") {
        condition = condition.add(
            article::Column::Id.in_subquery(
                Query::select()
                    .column(article_tag::Column::ArticleId)
                    .from(article_tag::Entity)
                    .and_where(article_tag::Column::Tag.eq(tag))
                    .to_owned(),
            ),
        );
    }
    if let Some(author) = params.text("author") {
        condition = condition.add(article::Column::AuthorId.in_subquery(user_id_of(author)));
    }
    if let Some(favorited) = params.text("favorited") {
        condition = condition.add(
            article::Column::Id.in_subquery(
                Query::select()
                    .column(favorite::Column::ArticleId)
                    .from(favorite::Entity)
                    .and_where(favorite::Column::UserId.in_subquery(user_id_of(favorited)))
                    .to_owned(),
            ),
        );
    }
    answer_list(
        &tx,
        caller.id(),
        Listing {
            condition,
            limit,
            offset,
        },
    )
    .await
}

fn user_id_of(username: &str) -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .column(user::Column::Id)
        .from(user::Entity)
        .and_where(user::Column::Username.eq(username))
        .to_owned()
}

/// `GET /articles/feed?limit=&offset=`: articles by the users the caller follows, most recent
/// first.
pub async fn feed(
    me: AuthUser,
    tx: RequestSession,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let (limit, offset) = paging(&params)?;
    let condition = Condition::all().add(
        article::Column::AuthorId.in_subquery(
            Query::select()
                .column(follow::Column::FolloweeId)
                .from(follow::Entity)
                .and_where(follow::Column::FollowerId.eq(me.id))
                .to_owned(),
        ),
    );
    answer_list(
        &tx,
        Some(me.id),
        Listing {
            condition,
            limit,
            offset,
        },
    )
    .await
}

/// The article with this slug and its author (one joined `SELECT`); 404 when there is none.
async fn by_slug<C: Executor>(
    db: &C,
    slug: &str,
) -> Result<(article::Model, user::Model), ApiError> {
    let found = article::Ops::query()
        .filter(article::Column::Slug.eq(slug))
        .find_also_related(user::Entity)
        .one(db);
    article::Ops::run_query(db, "by_slug", found)
        .await?
        .and_then(|(article, author)| Some((article, author?)))
        .ok_or(ApiError::NotFound("the article does not exist"))
}

/// `GET /articles/{slug}`: 404 when there is none.
pub async fn get(
    caller: MaybeUser,
    tx: RequestSession,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (found, author) = by_slug(&tx, &slug).await?;
    Ok(article_body(
        views::article(&tx, caller.id(), found, author).await?,
    ))
}

/// Inserts the article and its tags in one transaction. A taken slug fails the insert with
/// `Integrity(Unique)` (the only unique key besides the primary key), and the caller tries
/// another slug.
#[db_retry(attempts = 5)]
#[managed_session]
async fn insert_article(
    session: &Session,
    author_id: i32,
    slug: String,
    input: &NewArticle,
) -> Result<ArticleView, ApiError> {
    let now = now_millis();
    let created = article::Ops::create(
        session,
        article::New {
            slug,
            title: input.title.clone().unwrap_or_default(),
            description: input.description.clone().unwrap_or_default(),
            body: input.body.clone().unwrap_or_default(),
            author_id,
            created_at: now,
            updated_at: now,
        },
    )
    .await?;
    let tags = clean_tags(input.tag_list.clone().unwrap_or_default());
    if !tags.is_empty() {
        let rows = tags
            .into_iter()
            .zip(0..)
            .map(|(tag, position)| article_tag::New {
                article_id: created.id,
                tag,
                position,
            });
        article_tag::Ops::create_many(session, rows).await?;
    }
    let author = user::Ops::get(session, author_id).await?;
    views::article(session, Some(author_id), created, author).await
}

/// `POST /articles`: 201 with the article; 422 when the title, description or body is blank.
pub async fn create(
    State(state): State<AppState>,
    me: AuthUser,
    Body(input): Body<ArticleEnvelope<NewArticle>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut input = input.article;
    let mut problems = Vec::new();
    input.title = Some(required("title", input.title, &mut problems));
    input.description = Some(required("description", input.description, &mut problems));
    input.body = Some(required("body", input.body, &mut problems));
    if !problems.is_empty() {
        return Err(ApiError::Invalid(problems));
    }
    let base = slugify(input.title.as_deref().unwrap_or_default());
    for attempt in 0..SLUG_ATTEMPTS {
        let slug = candidate_slug(&base, attempt);
        match insert_article(&state.db, me.id, slug, &input).await {
            Err(err) if err.is_unique_violation() => continue,
            Err(err) => return Err(err),
            Ok(view) => return Ok((StatusCode::CREATED, article_body(view))),
        }
    }
    Err(ApiError::invalid(
        "no free slug was found for this title; change the title",
    ))
}

/// The article with this slug, when `me` wrote it: 404 when there is none, 403 when someone else
/// wrote it.
async fn own_article<C: Executor>(
    db: &C,
    me: i32,
    slug: &str,
) -> Result<(article::Model, user::Model), ApiError> {
    let (found, author) = by_slug(db, slug).await?;
    if found.author_id != me {
        return Err(ApiError::Forbidden(
            "only the author may change this article",
        ));
    }
    Ok((found, author))
}

#[db_retry(attempts = 5)]
#[managed_session]
async fn change_article(
    session: &Session,
    me: i32,
    slug: &str,
    new_slug: Option<String>,
    changes: &UpdateArticle,
) -> Result<ArticleView, ApiError> {
    let (found, author) = own_article(session, me, slug).await?;
    let patch = article::Patch {
        slug: new_slug,
        title: changes.title.clone(),
        description: changes.description.clone(),
        body: changes.body.clone(),
        updated_at: Some(now_millis()),
        ..Default::default()
    };
    let updated = article::Ops::update(session, found.id, patch).await?;
    views::article(session, Some(me), updated, author).await
}

/// `PUT /articles/{slug}`: the changed article (a new title gives a new slug); 403 for someone
/// else's, 404 for none, 422 for a blank field.
pub async fn update(
    State(state): State<AppState>,
    me: AuthUser,
    Path(slug): Path<String>,
    Body(input): Body<ArticleEnvelope<UpdateArticle>>,
) -> Result<Json<Value>, ApiError> {
    let changes = input.article;
    let mut problems = Vec::new();
    for (field, value) in [
        ("title", &changes.title),
        ("description", &changes.description),
        ("body", &changes.body),
    ] {
        if value.as_ref().is_some_and(|v| v.trim().is_empty()) {
            problems.push(format!("{field} can't be blank"));
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::Invalid(problems));
    }
    let base = changes.title.as_deref().map(slugify);
    for attempt in 0..SLUG_ATTEMPTS {
        // The slug follows the title; an article keeps its slug when the title gives the same.
        let new_slug = match &base {
            Some(base) if attempt > 0 || *base != slug => Some(candidate_slug(base, attempt)),
            _ => None,
        };
        let retry_slug = new_slug.is_some();
        match change_article(&state.db, me.id, &slug, new_slug, &changes).await {
            Err(err) if retry_slug && err.is_unique_violation() => continue,
            other => return other.map(article_body),
        }
    }
    Err(ApiError::invalid(
        "no free slug was found for this title; change the title",
    ))
}

/// Deletes an article with its comments, favorites and tags: four statements that must commit
/// together.
#[db_retry(attempts = 5)]
#[managed_session]
async fn remove_article(session: &Session, me: i32, slug: &str) -> Result<(), ApiError> {
    use crate::entities::comment;
    let (found, _) = own_article(session, me, slug).await?;
    comment::Ops::delete_where(session, comment::Column::ArticleId.eq(found.id)).await?;
    favorite::Ops::delete_where(session, favorite::Column::ArticleId.eq(found.id)).await?;
    article_tag::Ops::delete_where(session, article_tag::Column::ArticleId.eq(found.id)).await?;
    article::Ops::delete(session, found.id).await?;
    Ok(())
}

/// `DELETE /articles/{slug}`: 204; 403 for someone else's, 404 for none.
pub async fn delete(
    State(state): State<AppState>,
    me: AuthUser,
    Path(slug): Path<String>,
) -> Result<StatusCode, ApiError> {
    remove_article(&state.db, me.id, &slug).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds or removes the caller's favorite and answers the article as it is after the change.
/// The count is read in the same transaction after the write, so two users favoriting at once
/// each see their own favorite counted.
#[db_retry(attempts = 5)]
#[managed_session]
async fn set_favorite(
    session: &Session,
    me: i32,
    slug: &str,
    on: bool,
) -> Result<ArticleView, ApiError> {
    let (found, author) = by_slug(session, slug).await?;
    let key = (me, found.id);
    if on {
        if !favorite::Ops::exists(session, key).await? {
            favorite::Ops::create(
                session,
                favorite::New {
                    user_id: me,
                    article_id: found.id,
                },
            )
            .await?;
        }
    } else {
        favorite::Ops::delete(session, key).await?;
    }
    views::article(session, Some(me), found, author).await
}

async fn favorite_or_not(db: &Db, me: i32, slug: &str, on: bool) -> Result<Json<Value>, ApiError> {
    // A concurrent request of the same caller that inserted the same favorite first: the second
    // run finds it.
    let view = match set_favorite(db, me, slug, on).await {
        Err(err) if err.is_unique_violation() => set_favorite(db, me, slug, on).await?,
        other => other?,
    };
    Ok(article_body(view))
}

/// `POST /articles/{slug}/favorite`: the article with `favorited: true`; 404 for none.
pub async fn favorite(
    State(state): State<AppState>,
    me: AuthUser,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    favorite_or_not(&state.db, me.id, &slug, true).await
}

/// `DELETE /articles/{slug}/favorite`: the article with `favorited: false`; 404 for none.
pub async fn unfavorite(
    State(state): State<AppState>,
    me: AuthUser,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    favorite_or_not(&state.db, me.id, &slug, false).await
}

/// `GET /tags`: every tag in use, the most used first, then alphabetically; one statement (an
/// aggregate, so a SeaORM query run through the repository).
pub async fn tags(tx: RequestSession) -> Result<Json<Value>, ApiError> {
    let tags = article_tag::Ops::query()
        .select_only()
        .column(article_tag::Column::Tag)
        .group_by(article_tag::Column::Tag)
        .order_by(
            Func::count(Expr::col(article_tag::Column::ArticleId)),
            Order::Desc,
        )
        .order_by(article_tag::Column::Tag, Order::Asc)
        .into_tuple::<String>()
        .all(&tx);
    let tags = article_tag::Ops::run_query(&tx, "tags", tags).await?;
    Ok(Json(json!({ "tags": tags })))
}
