//! Request extractors that answer a malformed request the spec's way: a 422 with the errors
//! body, rather than axum's plain-text 400/415/422.

use std::collections::HashMap;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body; any failure to read it is a 422 naming the problem.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(json_problem(&rejection)),
        }
    }
}

fn json_problem(rejection: &JsonRejection) -> ApiError {
    ApiError::invalid(format!(
        "the request body is not valid: {}",
        rejection.body_text()
    ))
}

/// The query string as a map; a query that does not parse is a 422.
#[derive(Debug)]
pub struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|query| Params(query.0))
            .map_err(|rejection: QueryRejection| {
                ApiError::invalid(format!(
                    "the query string is not valid: {}",
                    rejection.body_text()
                ))
            })
    }
}

impl Params {
    /// An integer parameter at least `min`, `default` when absent; a 422 otherwise.
    pub fn integer(&self, name: &str, default: u64, min: u64, max: u64) -> Result<u64, ApiError> {
        match self.0.get(name) {
            None => Ok(default),
            Some(text) => match text.trim().parse::<u64>() {
                Ok(value) if (min..=max).contains(&value) => Ok(value),
                _ => Err(ApiError::invalid(format!(
                    "{name} must be an integer from {min} to {max}"
                ))),
            },
        }
    }

    /// A text parameter, when present.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}
