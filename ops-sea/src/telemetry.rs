//! What ops tells operators about the statements it runs, beyond errors:
//!
//! - **Spans** with the OpenTelemetry database semantic-convention field names
//!   (`db.system.name`, `db.namespace`, `db.operation.name`, `db.collection.name`,
//!   `server.address`, `server.port`, `error.type`), so `tracing-opentelemetry` exports them with
//!   no mapping: `ops.repository` around each repository call (debug level), `ops.session`
//!   around each managed session (info level), and, when `DB_TRACE_SQL` is on, `ops.statement`
//!   around each statement with its SQL text in `db.query.text` (parameter values never).
//! - **Slow statements** (`DB_SLOW_STATEMENT`): a statement slower than the threshold is logged
//!   once at `warn` with its duration, the repository operation and entity it ran for, the
//!   session's name and origin, and its SQL; it is counted in `ErrorStats::slow_statements` and
//!   `ops_slow_statements_total`.
//! - **The repository histogram** `ops_statement_duration_seconds` (feature `metrics`).
//!
//! A statement learns which repository call it belongs to through a task-local set by the
//! repository; statements outside one report empty names.

use std::future::Future;
use std::panic::Location;
use std::time::{Duration, Instant};

use ops_core::config::{Backend, DbConfig};
use ops_core::stats::ErrorStatsRecorder;
use sea_orm::DbBackend;
use tracing::Instrument;

/// The longest SQL text a slow-statement warning quotes.
const SQL_QUOTED: usize = 2_000;

tokio::task_local! {
    /// The repository call a statement runs for.
    static REPOSITORY_CALL: RepositoryCall;
}

/// A repository call: the entity's name, the operation, the entity's table.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RepositoryCall {
    pub(crate) entity: &'static str,
    pub(crate) operation: &'static str,
    pub(crate) table: &'static str,
}

/// One database's attributes and statement settings, fixed at connect.
#[derive(Debug)]
pub struct Telemetry {
    system: &'static str,
    namespace: Option<String>,
    server: Option<String>,
    port: Option<u16>,
    slow: Option<Duration>,
    trace_sql: bool,
    errors: ErrorStatsRecorder,
}

impl Telemetry {
    pub(crate) fn new(config: &DbConfig, backend: DbBackend, errors: &ErrorStatsRecorder) -> Self {
        let url = url::Url::parse(config.url.expose()).ok();
        let (namespace, server, port) = match (&url, config.backend()) {
            // A SQLite database is a file: its name is the namespace, there is no server.
            (Some(url), Backend::Sqlite) => (
                url.path()
                    .rsplit('/')
                    .next()
                    .filter(|name| !name.is_empty())
                    .map(str::to_owned)
                    .or_else(|| url.host_str().map(str::to_owned)),
                None,
                None,
            ),
            (Some(url), _) => (
                url.path()
                    .trim_start_matches('/')
                    .split('/')
                    .next()
                    .filter(|name| !name.is_empty())
                    .map(str::to_owned),
                url.host_str().map(str::to_owned),
                url.port(),
            ),
            (None, _) => (None, None, None),
        };
        Telemetry {
            system: sea_system_name(backend),
            namespace,
            server,
            port,
            slow: config.slow_statement,
            trace_sql: config.trace_sql,
            errors: errors.clone(),
        }
    }

    /// The statement's SQL, copied only when a slow-statement check or a statement span will
    /// quote it.
    pub(crate) fn sql_of(&self, sql: &str) -> Option<String> {
        (self.slow.is_some() || self.trace_sql).then(|| sql.to_owned())
    }
}

impl Telemetry {
    pub(crate) fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    pub(crate) fn server(&self) -> Option<&str> {
        self.server.as_deref()
    }

    pub(crate) fn port(&self) -> Option<u16> {
        self.port
    }
}

/// The `db.system.name` of a backend (OpenTelemetry's well-known values).
pub(crate) fn sea_system_name(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => "postgresql",
        DbBackend::MySql => "mysql",
        _ => "sqlite",
    }
}

/// The session a statement runs in, for a slow-statement warning.
#[derive(Clone, Copy)]
pub(crate) struct InSession<'a> {
    pub(crate) name: &'a str,
    pub(crate) origin: &'static Location<'static>,
}

/// Runs one statement: in an `ops.statement` span when SQL tracing is on, and checked against
/// the slow-statement threshold. `sql` is what [`Telemetry::sql_of`] returned; without it (or
/// without telemetry, on a plain SeaORM connection) the statement just runs.
///
/// Not an `async fn`: one would hold `call` twice (as its argument and while awaiting it), and
/// futures nest deeply in debug builds.
pub(crate) fn statement<'a, T, E>(
    telemetry: Option<&'a Telemetry>,
    session: Option<InSession<'a>>,
    sql: Option<String>,
    call: impl Future<Output = Result<T, E>> + 'a,
) -> impl Future<Output = Result<T, E>> + 'a {
    use futures_util::FutureExt;
    let watched = telemetry.zip(sql);
    let span = match &watched {
        Some((telemetry, sql)) if telemetry.trace_sql => {
            let call = repository_call();
            tracing::debug_span!(
                "ops.statement",
                otel.kind = "client",
                db.system.name = telemetry.system,
                db.namespace = telemetry.namespace.as_deref(),
                db.collection.name = call.table,
                db.operation.name = call.operation,
                entity = call.entity,
                db.query.text = sql.as_str(),
                server.address = telemetry.server.as_deref(),
                server.port = telemetry.port,
            )
        }
        _ => tracing::Span::none(),
    };
    let limit = watched.as_ref().and_then(|(telemetry, _)| telemetry.slow);
    let started = limit.map(|_| Instant::now());
    call.instrument(span).map(move |result| {
        if let (Some(limit), Some(started), Some((telemetry, sql))) = (limit, started, &watched) {
            let took = started.elapsed();
            if took >= limit {
                slow(telemetry, session, sql, took, limit);
            }
        }
        result
    })
}

#[cold]
fn slow(
    telemetry: &Telemetry,
    session: Option<InSession<'_>>,
    sql: &str,
    took: Duration,
    limit: Duration,
) {
    let RepositoryCall {
        entity,
        operation,
        table,
    } = repository_call();
    let quoted = match sql.char_indices().nth(SQL_QUOTED) {
        Some((end, _)) => format!("{}…", &sql[..end]),
        None => sql.to_owned(),
    };
    let (name, origin) = match session {
        Some(s) => (s.name, format!("{}:{}", s.origin.file(), s.origin.line())),
        None => ("", String::new()),
    };
    let call = if entity.is_empty() {
        "SQL outside a repository call".to_owned()
    } else {
        format!("{entity}::{operation}")
    };
    let place = if name.is_empty() {
        "outside a session".to_owned()
    } else {
        format!("in session `{name}` opened at {origin}")
    };
    tracing::warn!(
        duration = ?took,
        threshold = ?limit,
        db.system.name = telemetry.system,
        db.collection.name = table,
        db.operation.name = operation,
        entity,
        session.name = name,
        session.origin = origin.as_str(),
        db.query.text = quoted.as_str(),
        "slow statement: {took:?} (DB_SLOW_STATEMENT is {limit:?}) for {call} {place}: {quoted}"
    );
    telemetry.errors.record_slow_statement();
    ops_core::metrics::slow_statement(entity, operation);
}

/// The repository call running now, or empty names.
fn repository_call() -> RepositoryCall {
    REPOSITORY_CALL.try_with(|call| *call).unwrap_or_default()
}

/// Runs `body` as the repository call `call`: statements inside know it, and the call is timed
/// for `ops_statement_duration_seconds`. Not an `async fn`, for the reason `statement` gives.
pub(crate) fn repository_call_scope<T, E>(
    call: RepositoryCall,
    body: impl Future<Output = Result<T, E>>,
) -> impl Future<Output = Result<T, E>> {
    use futures_util::FutureExt;
    // The clock is read only for the histogram: without the feature there is none.
    #[cfg(feature = "metrics")]
    let started = Instant::now();
    REPOSITORY_CALL.scope(call, body).map(move |result| {
        #[cfg(feature = "metrics")]
        ops_core::metrics::statement(
            call.entity,
            call.operation,
            result.is_ok(),
            started.elapsed(),
        );
        result
    })
}
