//! Registration, login, the current user, and profiles with following.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ops_sea::axum::RequestSession;
use ops_sea::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{AuthUser, MaybeUser, hash_password, verify_password};
use crate::entities::{follow, user};
use crate::error::ApiError;
use crate::extract::Body;
use crate::views::{self, Profile, UserView};

#[derive(Debug, Deserialize)]
pub struct UserEnvelope<T> {
    user: T,
}

#[derive(Debug, Deserialize)]
pub struct NewUser {
    username: Option<String>,
    email: Option<String>,
    password: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LoginUser {
    email: Option<String>,
    password: Option<String>,
}

/// Every field optional; `null` for `bio` or `image` clears it.
#[derive(Debug, Deserialize)]
pub struct UpdateUser {
    email: Option<String>,
    username: Option<String>,
    password: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    bio: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    image: Option<Option<String>>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// A required text field: present and not blank.
pub fn required(field: &str, value: Option<String>, problems: &mut Vec<String>) -> String {
    match value {
        Some(value) if !value.trim().is_empty() => value,
        _ => {
            problems.push(format!("{field} can't be blank"));
            String::new()
        }
    }
}

fn check_email(email: &str, problems: &mut Vec<String>) {
    if !email.is_empty() && !email.contains('@') {
        problems.push("email is invalid".to_owned());
    }
}

fn user_body(user: user::Model, token: String) -> Json<Value> {
    Json(json!({ "user": UserView::new(user, token) }))
}

/// The 422 for a unique violation on `users`. The insert or update itself found the conflict
/// (no check-then-write race); this only names the field, with a read outside the failed
/// transaction, since on PostgreSQL that one accepts no more statements.
async fn taken(db: &Db, email: Option<&str>, me: Option<i32>) -> ApiError {
    let email_taken = match email {
        Some(email) => matches!(
            user::Ops::find_by_email(db, email).await,
            Ok(Some(other)) if Some(other.id) != me
        ),
        None => false,
    };
    ApiError::invalid(if email_taken {
        "email has already been taken"
    } else {
        "username has already been taken"
    })
}

/// `POST /users`: 201 with the new user and a token; 422 when a field is blank or the username
/// or email is taken.
pub async fn register(
    State(state): State<AppState>,
    tx: RequestSession,
    Body(input): Body<UserEnvelope<NewUser>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let input = input.user;
    let mut problems = Vec::new();
    let username = required("username", input.username, &mut problems);
    let email = required("email", input.email, &mut problems);
    let password = required("password", input.password, &mut problems);
    check_email(&email, &mut problems);
    if !problems.is_empty() {
        return Err(ApiError::Invalid(problems));
    }
    let password_hash = hash_password(password).await?;
    let new = user::New {
        username,
        email: email.clone(),
        password_hash,
        bio: String::new(),
        image: String::new(),
    };
    // One INSERT in the request session: two registrations racing for one email are decided by
    // the unique index, and the loser's `Integrity(Unique)` becomes the 422.
    let created = match user::Ops::create(&tx, new).await {
        Ok(created) => created,
        Err(err) if err.category() == ErrorCategory::Integrity(IntegrityKind::Unique) => {
            return Err(taken(&state.db, Some(&email), None).await);
        }
        Err(err) => return Err(err.into()),
    };
    let token = state.keys.token(created.id)?;
    Ok((StatusCode::CREATED, user_body(created, token)))
}

/// `POST /users/login`: 200 with the user and a fresh token; 401 for an unknown email or a wrong
/// password (the same answer for both); 422 when a field is blank.
pub async fn login(
    State(state): State<AppState>,
    tx: RequestSession,
    Body(input): Body<UserEnvelope<LoginUser>>,
) -> Result<Json<Value>, ApiError> {
    let input = input.user;
    let mut problems = Vec::new();
    let email = required("email", input.email, &mut problems);
    let password = required("password", input.password, &mut problems);
    if !problems.is_empty() {
        return Err(ApiError::Invalid(problems));
    }
    let wrong = ApiError::Unauthorized("email or password is invalid");
    let Some(found) = user::Ops::find_by_email(&tx, &email).await? else {
        return Err(wrong);
    };
    if !verify_password(password, found.password_hash.clone()).await {
        return Err(wrong);
    }
    let token = state.keys.token(found.id)?;
    Ok(user_body(found, token))
}

/// `GET /user`: the caller; 401 without a valid token (or when the user no longer exists).
pub async fn current(me: AuthUser, tx: RequestSession) -> Result<Json<Value>, ApiError> {
    let found = user::Ops::find(&tx, me.id)
        .await?
        .ok_or(ApiError::Unauthorized("the token's user no longer exists"))?;
    Ok(user_body(found, me.token))
}

/// `PUT /user`: changes the given fields; 422 for a blank username, email or password, or a
/// username or email someone else has.
pub async fn update(
    State(state): State<AppState>,
    me: AuthUser,
    tx: RequestSession,
    Body(input): Body<UserEnvelope<UpdateUser>>,
) -> Result<Json<Value>, ApiError> {
    let input = input.user;
    let mut problems = Vec::new();
    let mut patch = user::Patch::default();
    if let Some(username) = input.username {
        patch.username = Some(required("username", Some(username), &mut problems));
    }
    let email = input.email.clone();
    if let Some(email) = input.email {
        let email = required("email", Some(email), &mut problems);
        check_email(&email, &mut problems);
        patch.email = Some(email);
    }
    let password = input
        .password
        .map(|password| required("password", Some(password), &mut problems));
    if !problems.is_empty() {
        return Err(ApiError::Invalid(problems));
    }
    if let Some(password) = password {
        patch.password_hash = Some(hash_password(password).await?);
    }
    patch.bio = input.bio.map(Option::unwrap_or_default);
    patch.image = input.image.map(Option::unwrap_or_default);
    let updated = match user::Ops::update(&tx, me.id, patch).await {
        Ok(updated) => updated,
        Err(err) if err.category() == ErrorCategory::NotFound => {
            return Err(ApiError::Unauthorized("the token's user no longer exists"));
        }
        Err(err) if err.category() == ErrorCategory::Integrity(IntegrityKind::Unique) => {
            return Err(taken(&state.db, email.as_deref(), Some(me.id)).await);
        }
        Err(err) => return Err(err.into()),
    };
    Ok(user_body(updated, me.token))
}

fn profile_body(profile: Profile) -> Json<Value> {
    Json(json!({ "profile": profile }))
}

/// `GET /profiles/{username}`: 404 for an unknown user; `following` for the caller, `false` for
/// an anonymous one.
pub async fn get_profile(
    caller: MaybeUser,
    tx: RequestSession,
    Path(username): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let found = user::Ops::find_by_username(&tx, &username)
        .await?
        .ok_or(ApiError::NotFound("the profile does not exist"))?;
    Ok(profile_body(
        views::profile(&tx, caller.id(), &found).await?,
    ))
}

/// Follows or unfollows `username` for `follower` and returns the profile as it is then.
///
/// A read and a write: under `#[db_retry]` each attempt gets a fresh session, so a busy SQLite
/// writer or a deadlock is retried instead of answered with a 503.
#[db_retry(attempts = 5)]
#[managed_session]
async fn set_following(
    session: &Session,
    follower: i32,
    username: &str,
    on: bool,
) -> Result<Profile, ApiError> {
    let followee = user::Ops::find_by_username(session, username)
        .await?
        .ok_or(ApiError::NotFound("the profile does not exist"))?;
    if followee.id == follower {
        return Err(ApiError::invalid("you cannot follow yourself"));
    }
    let key = (follower, followee.id);
    if on {
        if !follow::Ops::exists(session, key).await? {
            follow::Ops::create(
                session,
                follow::New {
                    follower_id: follower,
                    followee_id: followee.id,
                },
            )
            .await?;
        }
    } else {
        follow::Ops::delete(session, key).await?;
    }
    Ok(Profile::new(&followee, on))
}

/// Runs `set_following` once more when a concurrent request of the same caller inserted the
/// same follow first: the second attempt finds it and succeeds.
async fn follow_or_unfollow(
    db: &Db,
    me: i32,
    username: &str,
    on: bool,
) -> Result<Profile, ApiError> {
    match set_following(db, me, username, on).await {
        Err(err) if err.is_unique_violation() => set_following(db, me, username, on).await,
        other => other,
    }
}

/// `POST /profiles/{username}/follow`: the profile with `following: true`; 404 for an unknown
/// user; 422 for the caller themselves.
pub async fn follow(
    State(state): State<AppState>,
    me: AuthUser,
    Path(username): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(profile_body(
        follow_or_unfollow(&state.db, me.id, &username, true).await?,
    ))
}

/// `DELETE /profiles/{username}/follow`: the profile with `following: false`; 404 for an unknown
/// user.
pub async fn unfollow(
    State(state): State<AppState>,
    me: AuthUser,
    Path(username): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(profile_body(
        follow_or_unfollow(&state.db, me.id, &username, false).await?,
    ))
}
