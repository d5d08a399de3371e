//! Who is calling: passwords hashed with Argon2id, HS256 JSON Web Tokens sent as
//! `Authorization: Token <jwt>`, and the extractors handlers take.

use std::time::{SystemTime, UNIX_EPOCH};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ApiError;

/// The secret used when `JWT_SECRET` is unset: fine for a local run, never for a deployment.
pub const DEFAULT_JWT_SECRET: &str = "conduit-local-development-secret-change-me";

/// How long a token stays valid.
const TOKEN_LIFETIME_SECS: u64 = 30 * 24 * 60 * 60;

/// The signing keys of the tokens.
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches a log.
        f.write_str("Keys { .. }")
    }
}

impl Keys {
    /// Keys from a shared secret.
    pub fn new(secret: &[u8]) -> Keys {
        Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// A signed token naming `user_id`.
    pub fn token(&self, user_id: i32) -> Result<String, ApiError> {
        let now = now_secs();
        let claims = Claims {
            sub: user_id.to_string(),
            iat: now,
            exp: now + TOKEN_LIFETIME_SECS,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(
            |err| {
                tracing::error!(error = %err, "signing a token failed");
                ApiError::Unauthorized("the token could not be issued")
            },
        )
    }

    /// The user a token names, when its signature and expiry check out.
    fn verify(&self, token: &str) -> Option<i32> {
        let validation = Validation::new(Algorithm::HS256);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).ok()?;
        data.claims.sub.parse().ok()
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
    exp: u64,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Hashes a password with Argon2id and a fresh salt, off the async workers: a hash takes tens of
/// milliseconds of CPU on purpose.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
    })
    .await
    .ok()
    .and_then(Result::ok)
    .ok_or_else(|| ApiError::invalid("the password could not be hashed"))
}

/// Whether `password` matches the stored hash; a hash that does not parse matches nothing.
pub async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// The authenticated caller: a route that takes it answers 401 without a valid token.
#[derive(Clone, Debug)]
pub struct AuthUser {
    pub id: i32,
    /// The token as sent, returned in the `user` body.
    pub token: String,
}

/// The caller when a token was sent, `None` for an anonymous one. A token that was sent but does
/// not verify is still a 401: a client with an expired session must learn about it.
#[derive(Clone, Debug)]
pub struct MaybeUser(pub Option<AuthUser>);

impl MaybeUser {
    /// The caller's id, if any.
    pub fn id(&self) -> Option<i32> {
        self.0.as_ref().map(|user| user.id)
    }
}

/// Reads `Authorization: Token <jwt>`: `Ok(None)` without the header, 401 for any other scheme
/// or a token that does not verify.
fn caller(parts: &Parts, state: &AppState) -> Result<Option<AuthUser>, ApiError> {
    let Some(header) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let header = header
        .to_str()
        .map_err(|_| ApiError::Unauthorized("the authorization header is not valid text"))?;
    let token = header
        .strip_prefix("Token ")
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or(ApiError::Unauthorized(
            "the authorization header must be `Token <jwt>`",
        ))?;
    let id = state.keys.verify(token).ok_or(ApiError::Unauthorized(
        "the token is invalid or has expired",
    ))?;
    Ok(Some(AuthUser {
        id,
        token: token.to_owned(),
    }))
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        caller(parts, state)?.ok_or(ApiError::Unauthorized(
            "this route needs an `Authorization: Token <jwt>` header",
        ))
    }
}

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        caller(parts, state).map(MaybeUser)
    }
}
