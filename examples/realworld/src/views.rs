//! The bodies the API answers with, and the batched reads that fill them in for a caller.
//!
//! A page of articles is answered with a fixed number of statements whatever its size: the tags,
//! the favorite counts, the caller's favorites and the caller's follows of the authors are each
//! read for the whole page at once (`WHERE article_id IN (...)`), never once per article.

use std::collections::{HashMap, HashSet};

use ops_sea::Executor;
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{ColumnTrait, Condition, QueryFilter, QuerySelect};
use serde::Serialize;

use crate::entities::{article, article_tag, favorite, follow, user};
use crate::error::ApiError;

/// A user as the `user` body shows them to themselves.
#[derive(Debug, Serialize)]
pub struct UserView {
    pub email: String,
    pub token: String,
    pub username: String,
    pub bio: String,
    pub image: String,
}

impl UserView {
    pub fn new(user: user::Model, token: String) -> UserView {
        UserView {
            email: user.email,
            token,
            username: user.username,
            bio: user.bio,
            image: user.image,
        }
    }
}

/// A user as others see them.
#[derive(Clone, Debug, Serialize)]
pub struct Profile {
    pub username: String,
    pub bio: String,
    pub image: String,
    pub following: bool,
}

impl Profile {
    pub fn new(user: &user::Model, following: bool) -> Profile {
        Profile {
            username: user.username.clone(),
            bio: user.bio.clone(),
            image: user.image.clone(),
            following,
        }
    }
}

/// An article; `body` is left out of lists, as the spec's list items have none.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArticleView {
    pub slug: String,
    pub title: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub tag_list: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub favorited: bool,
    pub favorites_count: i64,
    pub author: Profile,
}

/// A comment with its author's profile.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentView {
    pub id: i32,
    pub created_at: String,
    pub updated_at: String,
    pub body: String,
    pub author: Profile,
}

/// Milliseconds since the epoch as ISO 8601 in UTC with milliseconds: `2026-11-30T13:45:00.123Z`.
pub fn timestamp(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The current time in milliseconds since the epoch.
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Which of `users` the caller follows: one statement, none for an anonymous caller.
pub async fn followed<C: Executor>(
    db: &C,
    caller: Option<i32>,
    users: impl IntoIterator<Item = i32>,
) -> Result<HashSet<i32>, ApiError> {
    let Some(caller) = caller else {
        return Ok(HashSet::new());
    };
    let users: HashSet<i32> = users.into_iter().collect();
    if users.is_empty() {
        return Ok(HashSet::new());
    }
    let follows = follow::Ops::list_where(
        db,
        Condition::all()
            .add(follow::Column::FollowerId.eq(caller))
            .add(follow::Column::FolloweeId.is_in(users)),
    )
    .await?;
    Ok(follows.into_iter().map(|f| f.followee_id).collect())
}

/// One user's profile as the caller sees it.
pub async fn profile<C: Executor>(
    db: &C,
    caller: Option<i32>,
    user: &user::Model,
) -> Result<Profile, ApiError> {
    let following = followed(db, caller, [user.id]).await?.contains(&user.id);
    Ok(Profile::new(user, following))
}

/// Views of `rows` (articles with their authors) for `caller`, in the order given, in at most
/// four statements: tags, favorite counts, the caller's favorites, the caller's follows.
pub async fn articles<C: Executor>(
    db: &C,
    caller: Option<i32>,
    rows: Vec<(article::Model, user::Model)>,
    with_body: bool,
) -> Result<Vec<ArticleView>, ApiError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i32> = rows.iter().map(|(a, _)| a.id).collect();

    // In primary-key order, (article, tag); each article's tags are put back in the order its
    // author gave them.
    let mut tag_rows =
        article_tag::Ops::list_where(db, article_tag::Column::ArticleId.is_in(ids.clone())).await?;
    tag_rows.sort_by_key(|row| (row.article_id, row.position));
    let mut tags: HashMap<i32, Vec<String>> = HashMap::new();
    for row in tag_rows {
        tags.entry(row.article_id).or_default().push(row.tag);
    }

    // A count per article: an aggregate, so a SeaORM query run through the repository.
    let counts = favorite::Ops::query()
        .select_only()
        .column(favorite::Column::ArticleId)
        .column_as(
            Expr::from(Func::count(Expr::col(favorite::Column::UserId))),
            "favorites",
        )
        .filter(favorite::Column::ArticleId.is_in(ids.clone()))
        .group_by(favorite::Column::ArticleId)
        .into_tuple::<(i32, i64)>()
        .all(db);
    let counts: HashMap<i32, i64> = favorite::Ops::run_query(db, "counts", counts)
        .await?
        .into_iter()
        .collect();

    let mine: HashSet<i32> = match caller {
        Some(caller) => favorite::Ops::list_where(
            db,
            Condition::all()
                .add(favorite::Column::UserId.eq(caller))
                .add(favorite::Column::ArticleId.is_in(ids)),
        )
        .await?
        .into_iter()
        .map(|f| f.article_id)
        .collect(),
        None => HashSet::new(),
    };

    let following = followed(db, caller, rows.iter().map(|(_, author)| author.id)).await?;

    Ok(rows
        .into_iter()
        .map(|(article, author)| ArticleView {
            tag_list: tags.remove(&article.id).unwrap_or_default(),
            favorited: mine.contains(&article.id),
            favorites_count: counts.get(&article.id).copied().unwrap_or(0),
            author: Profile::new(&author, following.contains(&author.id)),
            slug: article.slug,
            title: article.title,
            description: article.description,
            body: with_body.then_some(article.body),
            created_at: timestamp(article.created_at),
            updated_at: timestamp(article.updated_at),
        })
        .collect())
}

/// One article with its body, for the single-article answers.
pub async fn article<C: Executor>(
    db: &C,
    caller: Option<i32>,
    article: article::Model,
    author: user::Model,
) -> Result<ArticleView, ApiError> {
    let mut views = articles(db, caller, vec![(article, author)], true).await?;
    views
        .pop()
        .ok_or(ApiError::NotFound("the article does not exist"))
}
