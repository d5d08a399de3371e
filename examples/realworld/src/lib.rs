//! The RealWorld (Conduit) backend on ops: the reference application.
//!
//! The API is the one in the RealWorld project's OpenAPI document (users and authentication,
//! profiles, articles, favorites, comments, tags), served under `/api`:
//!
//! ```sh
//! cargo run -p ops-examples --example realworld                     # http://127.0.0.1:3000/api
//! cargo run -p ops-examples --example realworld -- --listen 0.0.0.0:8080
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run -p ops-examples --example realworld
//! ```
//!
//! How it uses ops:
//! - every table is a SeaORM entity with `#[derive(Ops)]` ([`entities`]);
//! - filtered reads and deletes are the repositories' operations (`count_where`, `list_where`,
//!   `only_where`, `delete_where`); the joins and aggregates the repositories do not express (a
//!   page of articles with their authors, favorite counts, tags by use) are SeaORM queries run
//!   through `Ops::run_query`, which keeps the repository's span and error context;
//! - reads and single-statement writes run in the request's session from
//!   [`SessionLayer`], committed on a 2xx and rolled back otherwise;
//! - handlers that read and write several rows call a `#[db_retry] #[managed_session]` function
//!   on the `Db`, so each attempt gets a fresh transaction and a busy SQLite writer, a
//!   serialization failure or a deadlock is retried rather than answered with a 503;
//! - a duplicate username or email is the unique index's `Integrity(Unique)`, answered as the
//!   spec's 422, never a check-then-insert race.
//!
//! Configuration: `DATABASE_URL` (unset: a SQLite file, `REALWORLD_SQLITE` or `realworld.sqlite`
//! in the working directory) and the other `DB_*` settings of ops; `JWT_SECRET` signs the tokens
//! (unset: [`auth::DEFAULT_JWT_SECRET`], for local runs only); `--listen ADDR` or `PORT` picks
//! the address (default `127.0.0.1:3000`).

pub mod articles;
pub mod auth;
pub mod comments;
pub mod entities;
pub mod error;
pub mod extract;
pub mod users;
pub mod views;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::Uri;
use axum::routing::{delete, get, post};
use ops_sea::DbConfig;
use ops_sea::axum::{SessionLayer, health};
use ops_sea::prelude::*;
use sea_orm::{ConnectionTrait, EntityTrait, Schema};

use crate::auth::Keys;
use crate::entities::{article, article_tag, comment, favorite, follow, user};
use crate::error::ApiError;

/// What every handler shares: the database and the token keys.
#[derive(Clone, Debug)]
pub struct AppState {
    pub db: Db,
    pub keys: Arc<Keys>,
}

impl AppState {
    /// State over `db`, signing tokens with `secret`.
    pub fn new(db: Db, secret: &[u8]) -> AppState {
        AppState {
            db,
            keys: Arc::new(Keys::new(secret)),
        }
    }

    /// State over `db`, signing with `JWT_SECRET`, or the documented local default (with a
    /// warning) when it is unset.
    pub fn from_env(db: Db) -> AppState {
        match std::env::var("JWT_SECRET") {
            Ok(secret) if !secret.is_empty() => AppState::new(db, secret.as_bytes()),
            _ => {
                tracing::warn!(
                    "JWT_SECRET is unset: tokens are signed with the local development default; \
                     set JWT_SECRET before exposing this server"
                );
                AppState::new(db, auth::DEFAULT_JWT_SECRET.as_bytes())
            }
        }
    }
}

/// The whole API: every route of the spec under `/api`, each request with its own session, and
/// `GET /health` beside it.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/users", post(users::register))
        .route("/users/login", post(users::login))
        .route("/user", get(users::current).put(users::update))
        .route("/profiles/{username}", get(users::get_profile))
        .route(
            "/profiles/{username}/follow",
            post(users::follow).delete(users::unfollow),
        )
        .route("/articles", get(articles::list).post(articles::create))
        .route("/articles/feed", get(articles::feed))
        .route(
            "/articles/{slug}",
            get(articles::get)
                .put(articles::update)
                .delete(articles::delete),
        )
        .route(
            "/articles/{slug}/favorite",
            post(articles::favorite).delete(articles::unfavorite),
        )
        .route(
            "/articles/{slug}/comments",
            get(comments::list).post(comments::add),
        )
        .route("/articles/{slug}/comments/{id}", delete(comments::delete))
        .route("/tags", get(articles::tags))
        .fallback(not_found)
        .layer(SessionLayer::new(state.db.clone()).read_only_on_safe_methods());
    Router::new()
        .nest("/api", api)
        .route("/health", get(health).with_state(state.db.clone()))
        .fallback(not_found)
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    tracing::debug!(path = %uri.path(), "no such route");
    ApiError::NotFound("no such route")
}

/// The tables, parents before children.
pub const TABLES: [&str; 6] = [
    "users",
    "follows",
    "articles",
    "article_tags",
    "favorites",
    "comments",
];

/// Creates the tables and their indexes when they do not exist yet.
pub async fn create_tables(db: &Db) -> Result<(), OpsError> {
    create_table(db, user::Entity).await?;
    create_table(db, follow::Entity).await?;
    create_table(db, article::Entity).await?;
    create_table(db, article_tag::Entity).await?;
    create_table(db, favorite::Entity).await?;
    create_table(db, comment::Entity).await?;
    Ok(())
}

async fn create_table<E: EntityTrait>(db: &Db, entity: E) -> Result<(), OpsError> {
    let backend = db.get_database_backend();
    let schema = Schema::new(backend);
    db.execute(schema.create_table_from_entity(entity).if_not_exists())
        .await?;
    for mut index in schema.create_index_from_entity(entity) {
        match db.execute(index.if_not_exists()).await {
            Ok(_) => {}
            // MySQL has no `CREATE INDEX IF NOT EXISTS`: 1061 is "duplicate key name", the index
            // is already there.
            Err(err) if err_code(&err) == Some("1061") => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

fn err_code(err: &sea_orm::DbErr) -> Option<&'static str> {
    // Classified by ops from the driver's code, never from the message.
    let err = OpsError::from(err.clone());
    match err.code() {
        Some("1061") => Some("1061"),
        _ => None,
    }
}

/// Where the server listens and what it runs on, from the command line and the environment.
#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: SocketAddr,
}

/// The default address: the spec's clients (and the RealWorld frontends) expect port 3000.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";

impl Settings {
    /// `--listen ADDR` (or `--listen=ADDR`) from `args`, else `127.0.0.1:$PORT`, else
    /// [`DEFAULT_LISTEN`]. A value that does not parse is an error naming it.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Settings, String> {
        let mut args = args.into_iter();
        let mut listen = None;
        while let Some(arg) = args.next() {
            if arg == "--listen" {
                listen = Some(
                    args.next()
                        .ok_or("--listen needs an address, e.g. --listen 127.0.0.1:3000")?,
                );
            } else if let Some(value) = arg.strip_prefix("--listen=") {
                listen = Some(value.to_owned());
            } else {
                return Err(format!(
                    "unknown argument {arg:?}; the only option is --listen ADDR"
                ));
            }
        }
        let listen = match listen {
            Some(addr) => addr.parse().map_err(|e| {
                format!("--listen {addr} is not a socket address (e.g. 127.0.0.1:3000): {e}")
            })?,
            None => match std::env::var("PORT") {
                Ok(port) => {
                    let port: u16 = port.trim().parse().map_err(|e| {
                        format!("PORT={port} is not a port number (0 to 65535): {e}")
                    })?;
                    SocketAddr::from(([127, 0, 0, 1], port))
                }
                Err(_) => DEFAULT_LISTEN.parse().expect("the default address parses"),
            },
        };
        Ok(Settings { listen })
    }
}

/// Connects to `DATABASE_URL`, or to the SQLite file `REALWORLD_SQLITE` (default
/// `realworld.sqlite` in the working directory), and creates the tables.
pub async fn connect_from_env() -> Result<Db, OpsError> {
    let from_env = std::env::var("DATABASE_URL").is_ok_and(|url| !url.trim().is_empty());
    let db = if from_env {
        Db::connect_from_env().await?
    } else {
        let file = std::env::var("REALWORLD_SQLITE").unwrap_or_else(|_| "realworld.sqlite".into());
        let path = std::path::absolute(&file).map_err(|e| {
            OpsError::configuration(format!("REALWORLD_SQLITE={file} is not a usable path: {e}"))
        })?;
        // Four slashes: an absolute path. The other `DB_*` settings still come from the
        // environment.
        let url = format!("sqlite:///{}?mode=rwc", path.display());
        let config = DbConfig::from_lookup(|name| match name {
            "DATABASE_URL" => Some(url.clone()),
            other => std::env::var(other).ok(),
        })?;
        Db::connect_with(config).await?
    };
    create_tables(&db).await?;
    Ok(db)
}

/// Serves the API on `listener` until `shutdown` resolves, then lets requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
