//! The API's errors and their answers: `{"errors": {"body": ["..."]}}` with the status the
//! RealWorld spec gives, and database failures mapped through their `OpsError` category.

use std::fmt;

use axum::Json;
use axum::http::StatusCode;
use axum::http::header::{HeaderValue, RETRY_AFTER};
use axum::response::{IntoResponse, Response};
use ops_sea::axum::status_for;
use ops_sea::prelude::*;
use sea_orm::DbErr;
use serde_json::json;

/// Everything a handler can fail with.
#[derive(Debug)]
pub enum ApiError {
    /// 401: no token, a token that does not verify, or wrong credentials.
    Unauthorized(&'static str),
    /// 403: the caller is not the author of what they try to change.
    Forbidden(&'static str),
    /// 404: the article, profile or comment does not exist.
    NotFound(&'static str),
    /// 422: the request is malformed or breaks a rule; one sentence per problem.
    Invalid(Vec<String>),
    /// A database failure, answered by its category.
    Db(OpsError),
}

impl ApiError {
    /// A 422 with one message.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::Invalid(vec![message.into()])
    }

    /// Whether this is a unique-constraint violation from the database.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, ApiError::Db(err) if err.category() == ErrorCategory::Integrity(IntegrityKind::Unique))
    }
}

impl From<OpsError> for ApiError {
    fn from(err: OpsError) -> ApiError {
        ApiError::Db(err)
    }
}

impl From<DbErr> for ApiError {
    fn from(err: DbErr) -> ApiError {
        ApiError::Db(OpsError::from(err))
    }
}

/// `#[db_retry]` asks the category: a database failure has its own, and the API's own refusals
/// are never worth another attempt.
impl Categorize for ApiError {
    fn category(&self) -> ErrorCategory {
        match self {
            ApiError::Db(err) => err.category(),
            ApiError::NotFound(_) => ErrorCategory::NotFound,
            ApiError::Unauthorized(_) | ApiError::Forbidden(_) | ApiError::Invalid(_) => {
                ErrorCategory::Other
            }
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Unauthorized(why) | ApiError::Forbidden(why) | ApiError::NotFound(why) => {
                f.write_str(why)
            }
            ApiError::Invalid(problems) => f.write_str(&problems.join("; ")),
            ApiError::Db(err) => write!(f, "{err}"),
        }
    }
}

/// A database error is shown as it is: its message here, the driver's error as its source.
impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ApiError::Db(err) => err.source(),
            _ => None,
        }
    }
}

fn body(status: StatusCode, messages: Vec<String>) -> Response {
    (status, Json(json!({ "errors": { "body": messages } }))).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Unauthorized(why) => body(StatusCode::UNAUTHORIZED, vec![why.into()]),
            ApiError::Forbidden(why) => body(StatusCode::FORBIDDEN, vec![why.into()]),
            ApiError::NotFound(why) => body(StatusCode::NOT_FOUND, vec![why.into()]),
            ApiError::Invalid(problems) => body(StatusCode::UNPROCESSABLE_ENTITY, problems),
            ApiError::Db(err) => db_error_response(err),
        }
    }
}

/// A database failure the handler did not turn into a domain answer: the status ops gives its
/// category, except that a broken integrity rule is the spec's 422, in the spec's body. The
/// message is the category's safe sentence; the full error goes to the log.
fn db_error_response(err: OpsError) -> Response {
    let category = err.category();
    let status = match category {
        ErrorCategory::Integrity(_) => StatusCode::UNPROCESSABLE_ENTITY,
        other => status_for(other),
    };
    if status.is_server_error() {
        tracing::warn!(error = %format_args!("{err:#}"), "request failed with a database error");
    }
    let mut response = body(status, vec![err.user_message().to_owned()]);
    if category.is_retryable() || category == ErrorCategory::Unavailable {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}
