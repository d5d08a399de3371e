//! Comments on an article.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ops_sea::axum::RequestSession;
use ops_sea::prelude::*;
use sea_orm::{ColumnTrait, Condition, QueryFilter, QueryOrder};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{AuthUser, MaybeUser};
use crate::entities::{article, comment, user};
use crate::error::ApiError;
use crate::extract::Body;
use crate::users::required;
use crate::views::{self, CommentView, Profile, now_millis, timestamp};

#[derive(Debug, Deserialize)]
pub struct CommentEnvelope {
    comment: NewComment,
}

#[derive(Debug, Deserialize)]
pub struct NewComment {
    body: Option<String>,
}

fn view(comment: comment::Model, author: Profile) -> CommentView {
    CommentView {
        id: comment.id,
        created_at: timestamp(comment.created_at),
        updated_at: timestamp(comment.updated_at),
        body: comment.body,
        author,
    }
}

async fn article_id<C: ops_sea::Executor>(db: &C, slug: &str) -> Result<i32, ApiError> {
    Ok(article::Ops::find_by_slug(db, slug)
        .await?
        .ok_or(ApiError::NotFound("the article does not exist"))?
        .id)
}

/// `GET /articles/{slug}/comments`: oldest first, each author's `following` for the caller;
/// 404 when the article does not exist. Three statements (four with a caller).
pub async fn list(
    caller: MaybeUser,
    tx: RequestSession,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = article_id(&tx, &slug).await?;
    // The comments with their authors: a join, so a SeaORM query run through the repository.
    let rows = comment::Ops::query()
        .filter(comment::Column::ArticleId.eq(id))
        .find_also_related(user::Entity)
        .order_by_asc(comment::Column::Id)
        .all(&tx);
    let rows = comment::Ops::run_query(&tx, "list", rows).await?;
    let following = views::followed(
        &tx,
        caller.id(),
        rows.iter().map(|(comment, _)| comment.author_id),
    )
    .await?;
    let comments: Vec<CommentView> = rows
        .into_iter()
        .filter_map(|(comment, author)| {
            let author = author?;
            let profile = Profile::new(&author, following.contains(&author.id));
            Some(view(comment, profile))
        })
        .collect();
    Ok(Json(json!({ "comments": comments })))
}

#[db_retry(attempts = 5)]
#[managed_session]
async fn insert_comment(
    session: &Session,
    me: i32,
    slug: &str,
    body: &str,
) -> Result<CommentView, ApiError> {
    let article_id = article_id(session, slug).await?;
    let now = now_millis();
    let created = comment::Ops::create(
        session,
        comment::New {
            article_id,
            author_id: me,
            body: body.to_owned(),
            created_at: now,
            updated_at: now,
        },
    )
    .await?;
    let author = user::Ops::get(session, me).await?;
    // Nobody follows themselves: the caller's own profile is never `following`.
    Ok(view(created, Profile::new(&author, false)))
}

/// `POST /articles/{slug}/comments`: 200 with the comment (the spec's status); 404 when the
/// article does not exist; 422 for a blank body.
pub async fn add(
    State(state): State<AppState>,
    me: AuthUser,
    Path(slug): Path<String>,
    Body(input): Body<CommentEnvelope>,
) -> Result<Json<Value>, ApiError> {
    let mut problems = Vec::new();
    let body = required("body", input.comment.body, &mut problems);
    if !problems.is_empty() {
        return Err(ApiError::Invalid(problems));
    }
    let created = insert_comment(&state.db, me.id, &slug, &body).await?;
    Ok(Json(json!({ "comment": created })))
}

#[db_retry(attempts = 5)]
#[managed_session]
async fn remove_comment(session: &Session, me: i32, slug: &str, id: i32) -> Result<(), ApiError> {
    let article_id = article_id(session, slug).await?;
    let on_article = Condition::all()
        .add(comment::Column::Id.eq(id))
        .add(comment::Column::ArticleId.eq(article_id));
    let found = comment::Ops::only_where(session, on_article)
        .await?
        .ok_or(ApiError::NotFound("the comment does not exist"))?;
    if found.author_id != me {
        return Err(ApiError::Forbidden(
            "only the author may delete this comment",
        ));
    }
    comment::Ops::delete(session, id).await?;
    Ok(())
}

/// `DELETE /articles/{slug}/comments/{id}`: 204; 403 for someone else's comment; 404 when the
/// article or the comment (on that article) does not exist; 422 when the id is not an integer.
pub async fn delete(
    State(state): State<AppState>,
    me: AuthUser,
    Path((slug, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id: i32 = id
        .parse()
        .map_err(|_| ApiError::invalid("the comment id must be an integer"))?;
    remove_comment(&state.db, me.id, &slug, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
