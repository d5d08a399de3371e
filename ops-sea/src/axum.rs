// This file is over 700 lines because its unit tests live at its end; the code above them is one
// concern.
//! The axum integration: a session per request, `OpsError` as a response, and a health handler.
//!
//! [`SessionLayer`] gives every request a lazy [`RequestSession`]. The first statement run through
//! it (or the first call of [`RequestSession::session`]) begins a tracked [`Session`]; every later
//! use in the same request, in a middleware or in the handler, gets that same session. When the
//! response is ready the layer finishes the session: it commits when the status is a success or a
//! redirection (2xx, 3xx), and rolls back otherwise. A request that never touches its session
//! never opens one, so routes that read nothing cost no transaction.
//!
//! ```no_run
//! use axum::{Router, routing::{get, post}};
//! use ops_sea::axum::{RequestSession, SessionLayer, health};
//! use ops_sea::prelude::*;
//! use sea_orm::ConnectionTrait;
//!
//! async fn touch(tx: RequestSession) -> Result<&'static str, OpsError> {
//!     // The first statement begins the request's session; the layer commits it after this
//!     // handler returns `Ok` (a 200), and rolls it back after an `Err` (its error status).
//!     tx.execute_unprepared("UPDATE items SET hits = hits + 1").await?;
//!     Ok("touched")
//! }
//!
//! # async fn demo() -> Result<(), OpsError> {
//! let db = Db::connect_from_env().await?;
//! let app: Router = Router::new()
//!     .route("/touch", post(touch))
//!     .layer(SessionLayer::new(db.clone()))
//!     .route("/health", get(health).with_state(db));
//! # drop(app);
//! # Ok(()) }
//! ```
//!
//! Generated repositories take a `&RequestSession` as their executor like any other
//! (`conversation::Ops::get(&tx, id)`), and `#[managed_session]` functions take the session
//! itself: `rename(tx.session().await?, id)`.
//!
//! [`OpsError`] implements [`IntoResponse`], so handlers return `Result<_, OpsError>` and `?`
//! their database calls; [`status_for`] lists the mapping. The body is JSON with the category and
//! the [`user_message`](OpsError::user_message), never SQL, parameters or credentials; the full
//! error goes to the log.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use ::axum::body::Body;
use ::axum::extract::{FromRequestParts, MatchedPath, State};
use ::axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use ::axum::http::request::Parts;
use ::axum::http::{Method, Request, StatusCode, Uri};
use ::axum::response::{IntoResponse, Response};
use ops_core::health::HealthReport;
use ops_core::stats::ErrorStatsRecorder;
use ops_core::{ErrorCategory, IntegrityKind, RuleKind, SessionOptions};
use sea_orm::{ConnectionTrait, DbBackend, DbErr};
use tower_layer::Layer;
use tower_service::Service;

use crate::{Db, Executor, OpsError, Session};

/// Seconds a client is asked to wait before repeating a request that failed with a transient
/// error (a serialization failure, a deadlock, a busy pool): such conflicts usually clear at once.
pub const RETRY_AFTER_RETRYABLE_SECS: u32 = 1;

/// Seconds a client is asked to wait before repeating a request that failed because the database
/// is unreachable: a restart or failover takes longer than a conflict.
pub const RETRY_AFTER_UNAVAILABLE_SECS: u32 = 5;

// ---------------------------------------------------------------------------------------------
// The layer
// ---------------------------------------------------------------------------------------------

/// A tower layer giving each request a lazy [`RequestSession`], committed on a 2xx or 3xx
/// response and rolled back on any other.
///
/// Add it with `Router::layer` *after* (outside) any middleware that uses the session, so that it
/// wraps them: axum runs the layer added last first.
///
/// ```no_run
/// # use ops_sea::{Db, SessionOptions, Isolation};
/// # fn demo(db: Db) {
/// use ops_sea::axum::SessionLayer;
///
/// let layer = SessionLayer::new(db)
///     .options(SessionOptions::new().isolation(Isolation::RepeatableRead));
/// # drop(layer);
/// # }
/// ```
#[derive(Clone)]
pub struct SessionLayer {
    config: Arc<LayerConfig>,
}

struct LayerConfig {
    db: Db,
    options: SessionOptions,
    /// `GET`, `HEAD` and `OPTIONS` requests begin read-only sessions.
    read_only_safe_methods: bool,
    /// Where the layer was built: the origin of every session it opens, so a leaked or slow
    /// request session names the router that opened it.
    origin: &'static Location<'static>,
}

impl SessionLayer {
    /// A layer opening sessions on `db` with default options. Each session is named after the
    /// request's method and route (`POST /items/{id}`) unless [`options`](Self::options) names it.
    #[track_caller]
    pub fn new(db: Db) -> SessionLayer {
        SessionLayer {
            config: Arc::new(LayerConfig {
                db,
                options: SessionOptions::default(),
                read_only_safe_methods: false,
                origin: Location::caller(),
            }),
        }
    }

    /// Sets the options every request session begins with: isolation, read-only, timeout, a
    /// name. Propagation does not apply: a request session is always a new transaction.
    pub fn options(self, options: SessionOptions) -> SessionLayer {
        SessionLayer {
            config: Arc::new(LayerConfig {
                db: self.config.db.clone(),
                options,
                read_only_safe_methods: self.config.read_only_safe_methods,
                origin: self.config.origin,
            }),
        }
    }

    /// Begins the sessions of `GET`, `HEAD` and `OPTIONS` requests (HTTP's safe methods)
    /// read-only. On SQLite they then run on the reader connections instead of queueing for the
    /// one writer; with read replicas they go to a replica; on every backend a write in such a
    /// handler fails with a `Programming` error (a 500) instead of committing. Off by default,
    /// because a `GET` handler that writes (a "last seen" stamp, a counter) would start failing.
    ///
    /// ```no_run
    /// # fn demo(db: ops_sea::Db) {
    /// let layer = ops_sea::axum::SessionLayer::new(db).read_only_on_safe_methods();
    /// # drop(layer);
    /// # }
    /// ```
    pub fn read_only_on_safe_methods(self) -> SessionLayer {
        SessionLayer {
            config: Arc::new(LayerConfig {
                db: self.config.db.clone(),
                options: self.config.options.clone(),
                read_only_safe_methods: true,
                origin: self.config.origin,
            }),
        }
    }

    /// The `Db` sessions are opened on.
    pub fn db(&self) -> &Db {
        &self.config.db
    }
}

impl fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayer")
            .field("options", &self.config.options)
            .field("origin", &format_args!("{}", self.config.origin))
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> SessionService<S> {
        SessionService {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service [`SessionLayer`] wraps around a route: it inserts the request's
/// [`RequestSession`], runs the route, and commits or rolls back by the response's status.
#[derive(Clone)]
pub struct SessionService<S> {
    inner: S,
    config: Arc<LayerConfig>,
}

impl<S> fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService")
            .field("options", &self.config.options)
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<Request<B>> for SessionService<S>
where
    S: Service<Request<B>, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let slot = RequestSession::new(
            Arc::clone(&self.config),
            request.method().clone(),
            request.extensions().get::<MatchedPath>().cloned(),
            request.uri().clone(),
        );
        request.extensions_mut().insert(slot.clone());
        // The clone that was polled ready is the one that must serve this call; a fresh clone
        // stays behind for the next one (tower's documented pattern for `Clone` services).
        let fresh = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, fresh);
        Box::pin(async move {
            let response = match ready.call(request).await {
                Ok(response) => response.into_response(),
                Err(never) => match never {},
            };
            Ok(slot.finish(response).await)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The extractor
// ---------------------------------------------------------------------------------------------

/// The request's session, begun on first use and finished by [`SessionLayer`].
///
/// Extract it in handlers and in `axum::middleware::from_fn` middleware; every extraction in one
/// request shares the same session. Use it directly as an executor (it implements SeaORM's
/// `ConnectionTrait` and `TransactionTrait`, and [`Executor`], so repositories and SeaORM queries
/// take `&tx`), or call [`session`](Self::session) for the `&Session` that `#[managed_session]`
/// functions take.
///
/// The session is finished before the response is sent, so a streaming response body cannot
/// use it. Keep it inside the request: a handle still alive when the response is ready (moved into a
/// spawned task, say) means the request's work cannot be known finished, so the layer commits
/// nothing, answers 500, and the session rolls back when that handle is dropped. Background work
/// opens a session of its own with `db.session()`.
///
/// Without a [`SessionLayer`] around the route, extraction fails with a 500 whose logged detail
/// says to add one.
#[derive(Clone)]
pub struct RequestSession {
    inner: Arc<SlotInner>,
}

struct SlotInner {
    config: Arc<LayerConfig>,
    method: Method,
    route: Option<MatchedPath>,
    uri: Uri,
    session: tokio::sync::OnceCell<Session>,
    /// Set by the layer once the response is ready: a handle that outlived the request must not
    /// begin a session nobody will finish.
    closed: AtomicBool,
}

impl RequestSession {
    fn new(
        config: Arc<LayerConfig>,
        method: Method,
        route: Option<MatchedPath>,
        uri: Uri,
    ) -> RequestSession {
        RequestSession {
            inner: Arc::new(SlotInner {
                config,
                method,
                route,
                uri,
                session: tokio::sync::OnceCell::new(),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// The request's session, begun now if this is its first use.
    ///
    /// Concurrent first uses in one request wait for a single begin. Fails when the session
    /// cannot begin (the pool is exhausted, the database is down), or when the request already
    /// has its response.
    pub async fn session(&self) -> Result<&Session, OpsError> {
        // Checked on every use, not only the first: after the response, the session belongs to
        // nobody, and statements run on it would be rolled back without anyone knowing.
        self.ensure_open()?;
        self.inner.session.get_or_try_init(|| self.begin()).await
    }

    /// Whether the request's session has begun.
    pub fn is_begun(&self) -> bool {
        self.inner.session.initialized()
    }

    /// The `Db` the session is (or will be) opened on.
    pub fn db(&self) -> &Db {
        &self.inner.config.db
    }

    async fn begin(&self) -> Result<Session, OpsError> {
        self.ensure_open()?;
        let config = &self.inner.config;
        let mut options = config.options.clone();
        if config.read_only_safe_methods
            && matches!(
                self.inner.method,
                Method::GET | Method::HEAD | Method::OPTIONS
            )
        {
            options = options.read_only();
        }
        if options.name.is_none() {
            let path = match &self.inner.route {
                Some(route) => route.as_str(),
                None => self.inner.uri.path(),
            };
            options = options.name(format!("{} {path}", self.inner.method));
        }
        let session = Session::begin(&config.db, &options, config.origin).await?;
        // Dropping the request's future (a client that went away, a timeout layer) rolls the
        // session back; that is a cancellation, not a leak to warn about.
        session.mark_managed();
        if self.inner.closed.load(Ordering::SeqCst) {
            // The response was finished while this handle was beginning: nobody would commit.
            if let Err(err) = session.rollback().await {
                tracing::debug!(
                    error = err.as_dyn(),
                    "rolling back a session begun too late failed"
                );
            }
            return Err(self.closed_error());
        }
        Ok(session)
    }

    fn ensure_open(&self) -> Result<(), OpsError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(self.closed_error());
        }
        Ok(())
    }

    fn closed_error(&self) -> OpsError {
        OpsError::new(
            ErrorCategory::Programming,
            format!(
                "the request session of {} {} was used after the request finished; background \
                 work must open a session of its own with db.session()",
                self.inner.method,
                self.inner.uri.path()
            ),
        )
    }

    /// Commits or rolls back the session once the route has answered, and returns the response
    /// to send.
    async fn finish(self, response: Response) -> Response {
        self.inner.closed.store(true, Ordering::SeqCst);
        let inner = match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner,
            Err(shared) => return escaped(&shared),
        };
        let Some(session) = inner.session.into_inner() else {
            return response;
        };
        let status = response.status();
        if status.is_success() || status.is_redirection() {
            match session.commit().await {
                Ok(()) => response,
                // The route's answer claimed success, but nothing was saved (or, for
                // `CommitUnknown`, may not have been): the client must see the failure.
                Err(err) => err.into_response(),
            }
        } else {
            let name = session.name().to_owned();
            if let Err(err) = session.rollback().await {
                // The response already says the request failed; a failed rollback leaves the
                // connection to the pool's reset-on-return.
                tracing::warn!(session = %name, error = err.as_dyn(), "request session rollback failed");
            }
            response
        }
    }
}

/// The answer when a handle to the request session outlived the request.
fn escaped(shared: &SlotInner) -> Response {
    let begun = shared.session.initialized();
    let err = OpsError::new(
        ErrorCategory::Programming,
        format!(
            "a handle to the request session of {} {} was still alive when the response was \
             ready (moved into a spawned task or stored?), so the request's work was not \
             committed{}; keep RequestSession inside the request and open a session of its own \
             with db.session() for background work",
            shared.method,
            shared.uri.path(),
            if begun {
                " and rolls back when that handle is dropped"
            } else {
                ""
            }
        ),
    );
    shared.config.db.record(err).into_response()
}

impl fmt::Debug for RequestSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestSession")
            .field("method", &self.inner.method)
            .field("path", &self.inner.uri.path())
            .field("session", &self.inner.session.get())
            .finish_non_exhaustive()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestSession {
    type Rejection = OpsError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, OpsError> {
        parts
            .extensions
            .get::<RequestSession>()
            .cloned()
            .ok_or_else(|| {
                OpsError::new(
                    ErrorCategory::Programming,
                    format!(
                        "no request session for {} {}: add `.layer(ops_sea::axum::SessionLayer::\
                         new(db))` to the router, after (outside) the middleware that extracts \
                         RequestSession",
                        parts.method,
                        parts.uri.path()
                    ),
                )
            })
    }
}

impl RequestSession {
    /// A failure to reach the request's session as the `DbErr` a SeaORM trait method must return,
    /// keeping its category (see `OpsError::into_db_err`). A begin failure carries the driver's
    /// error and was recorded where it happened; an error raised here (the request is over) is
    /// recorded now, once, since the repository treats a connection error as already counted.
    fn to_db_err(&self, err: OpsError) -> DbErr {
        let err = match err.db_err() {
            Some(_) => err,
            None => self.db().record(err),
        };
        err.into_db_err()
    }
}

/// Every call runs on the request's session, begun by the first; `begin` opens a savepoint
/// there, as on [`Session`]. The session observes its own statements.
impl crate::delegate::Delegate for RequestSession {
    type Conn<'a> = &'a Session;

    fn backend(&self) -> DbBackend {
        self.db().backend()
    }

    fn support_returning(&self) -> bool {
        self.db().connection().support_returning()
    }

    async fn conn(&self, _: crate::delegate::Purpose<'_>) -> Result<&Session, DbErr> {
        self.session().await.map_err(|e| self.to_db_err(e))
    }

    fn observe(&self, err: DbErr) -> DbErr {
        err
    }

    fn telemetry(&self) -> Option<&crate::telemetry::Telemetry> {
        None
    }

    fn run<'a, T: Send + 'a>(
        &'a self,
        call: impl Future<Output = Result<T, DbErr>> + Send + 'a,
    ) -> impl Future<Output = Result<T, DbErr>> + Send + 'a {
        call
    }
}

crate::delegate::forward_connection!(RequestSession);

impl Executor for RequestSession {
    fn error_recorder(&self) -> Option<&ErrorStatsRecorder> {
        Some(self.db().error_recorder())
    }

    fn __telemetry(&self) -> Option<&crate::telemetry::Telemetry> {
        Some(&self.db().inner.telemetry)
    }
}

// ---------------------------------------------------------------------------------------------
// Errors as responses
// ---------------------------------------------------------------------------------------------

/// The HTTP status an error of `category` answers with.
///
/// | category | status |
/// | --- | --- |
/// | `NotFound` | 404 Not Found |
/// | `Integrity(Unique)` | 409 Conflict |
/// | other `Integrity` | 422 Unprocessable Entity |
/// | `BusinessRule(Conflict)` | 409 Conflict |
/// | `BusinessRule(Violated)` | 422 Unprocessable Entity |
/// | `Retryable`, `Unavailable` | 503 Service Unavailable, with `Retry-After` (an open circuit breaker's remaining cooldown, when that refused the call) |
/// | `CommitUnknown`, `MultipleResults`, `Programming`, `Configuration`, `Other` | 500 Internal Server Error |
pub fn status_for(category: ErrorCategory) -> StatusCode {
    match category {
        ErrorCategory::NotFound => StatusCode::NOT_FOUND,
        ErrorCategory::Integrity(IntegrityKind::Unique) => StatusCode::CONFLICT,
        ErrorCategory::Integrity(_) => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCategory::BusinessRule(RuleKind::Conflict) => StatusCode::CONFLICT,
        ErrorCategory::BusinessRule(_) => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCategory::Retryable(_) | ErrorCategory::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The `Retry-After` seconds for `category`, for the statuses that carry one.
fn retry_after(category: ErrorCategory) -> Option<u32> {
    match category {
        ErrorCategory::Retryable(_) => Some(RETRY_AFTER_RETRYABLE_SECS),
        ErrorCategory::Unavailable => Some(RETRY_AFTER_UNAVAILABLE_SECS),
        _ => None,
    }
}

/// `Retry-After` is in whole seconds: round up, so a client never comes back before the time.
fn whole_seconds(remaining: std::time::Duration) -> u32 {
    let seconds = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
    u32::try_from(seconds.max(1)).unwrap_or(u32::MAX)
}

/// The JSON body of an error response.
#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    /// The category alone: `integrity`, `retryable`, `not_found`, ...
    kind: &'static str,
    /// The full category: `integrity(unique)`, `retryable(deadlock)`, ...
    category: String,
    /// The sentence for a person, free of SQL, parameters and credentials: the category's, or a
    /// business-rule error's own message.
    message: &'a str,
    /// Whether repeating the request may succeed.
    retryable: bool,
}

/// The status of [`status_for`], a `Retry-After` header for 503s, and a JSON body
/// `{"kind", "category", "message", "retryable"}` built only from the category (and, for a
/// business-rule error, the message the application wrote to be shown), so no SQL, parameter
/// value or credential reaches the client. The full error is logged: at error level
/// for a 500, warn for a 503, debug for a 4xx.
impl IntoResponse for OpsError {
    fn into_response(self) -> Response {
        let category = self.category();
        let status = status_for(category);
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(
                error = self.as_dyn(),
                "request failed with a database error"
            );
        } else if status.is_server_error() {
            tracing::warn!(
                error = self.as_dyn(),
                "request failed with a transient database error"
            );
        } else {
            tracing::debug!(
                error = self.as_dyn(),
                "request failed with a database error"
            );
        }
        let body = ErrorBody {
            kind: category.kind(),
            category: category.to_string(),
            message: self.user_message(),
            retryable: category.is_retryable(),
        };
        let mut response = json_response(status, &body);
        // A call refused by an open circuit breaker knows how long the cooldown still runs:
        // clients that honour the header come back when a probe can get through.
        let remaining = self
            .retry_after()
            .filter(|_| status == StatusCode::SERVICE_UNAVAILABLE)
            .map(whole_seconds);
        if let Some(seconds) = remaining.or_else(|| retry_after(category)) {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// `value` as a JSON response with `status`; a value that fails to serialize gives a bare 500.
fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => {
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot serialize a JSON response body");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------------------------

/// A [`HealthReport`] as a response: the report as JSON, 200 when healthy or degraded, 503 when
/// unhealthy, never cached.
#[derive(Clone, Debug)]
pub struct Health(pub HealthReport);

impl IntoResponse for Health {
    fn into_response(self) -> Response {
        let status = if self.0.is_ok() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let mut response = json_response(status, &self.0);
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// A health handler: `db.health()` as JSON, 200 when healthy or degraded, 503 when unhealthy.
///
/// It takes the `Db` from the router's state (any state `Db` can be taken from with `FromRef`);
/// on a router without state, give it its own: `.route("/health", get(health).with_state(db))`.
/// The check is bounded by the connect timeout (at most 5 s), so it answers while the database
/// hangs.
pub async fn health(State(db): State<Db>) -> Health {
    Health(db.health().await)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(response: Response) -> serde_json::Value {
        let bytes = ::axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .expect("a small body");
        serde_json::from_slice(&bytes).expect("a JSON body")
    }

    #[tokio::test]
    async fn business_rule_errors_answer_409_or_422_with_their_own_message() {
        let conflict = OpsError::conflict("This book is already lent.").into_response();
        assert_eq!(conflict.status(), StatusCode::CONFLICT);
        assert!(conflict.headers().get(RETRY_AFTER).is_none());
        let body = body_of(conflict).await;
        assert_eq!(body["message"], "This book is already lent.");
        assert_eq!(body["kind"], "business_rule");
        assert_eq!(body["category"], "business_rule(conflict)");
        assert_eq!(body["retryable"], false);

        let rule = OpsError::rule("A loan lasts at most 28 days.").into_response();
        assert_eq!(rule.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body_of(rule).await["message"],
            "A loan lasts at most 28 days."
        );
    }
}
