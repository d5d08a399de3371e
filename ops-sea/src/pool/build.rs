//! The connection pool behind a `Db`: sqlx pools built from a `DbConfig`, with the semantics users
//! of SQLAlchemy and HikariCP expect.
//!
//! - `pool_size` connections are kept warm (`min_connections`); `max_overflow` more are opened under
//!   burst and closed again once idle for `idle_timeout`.
//! - A connection is pinged at checkout only when it sat idle at least `idle_ping` (HikariCP's
//!   rule); a hot connection pays no round trip. SeaORM's default pings on every checkout.
//! - **Reset on return**: a connection never goes back to the pool inside a transaction. sqlx only
//!   knows about transactions it began itself, so a raw `BEGIN` executed through the pool would leak
//!   into the next borrower (this reproduces with plain SeaORM 2.0.4). Only raw SQL can open one
//!   behind sqlx's back, so by default (`ResetCheck::Auto`) ops checks exactly the connections that
//!   ran raw SQL through the `Db` (`raw.rs`), off the caller's critical path, and every other
//!   release costs only sqlx's own ping. With `ResetCheck::Always` the `after_release` hook checks
//!   every returned connection, for applications that hand the raw pool to other code. SQLite's
//!   writer checks every release either way: there the check is a function call, not a round trip.
//! - **A disconnect invalidates the pool** (`invalidation.rs`): after a statement lost its
//!   connection, or a ping or reset here failed, a connection last released before that moment
//!   is pinged at checkout whatever its idle time; connections released since pay nothing.
//! - The idle ping and every reset are bounded by `connect_timeout`: a connection that does not
//!   answer is closed, never left holding its slot.

use std::time::Duration;

use ops_core::config::DbConfig;
#[cfg(any(feature = "postgres", feature = "mysql"))]
use ops_core::config::{ResetCheck, SslMode};
use sqlx::Connection;
#[cfg(feature = "mysql")]
use sqlx::Executor as _;
use sqlx::pool::PoolConnectionMetadata;

#[cfg(feature = "sqlite")]
use super::sqlite;
use super::{Disconnects, Pool, ReturnedInTransaction};
use crate::OpsError;

/// Builds the pool for a configuration. The pool connects lazily; `Db::connect` proves the
/// database answers before handing the pool out.
///
/// `returned` counts the connections that came back inside a transaction and were rolled back
/// (SQLite and PostgreSQL, which can tell; MySQL's reset cannot), for `#[ops_sea::test]`'s leak
/// check. `disconnects` is the pool's disconnect record (`invalidation.rs`), shared with the `Db`
/// that observes the pool's statement errors.
pub(crate) fn build(
    config: &DbConfig,
    returned: &ReturnedInTransaction,
    disconnects: &Disconnects,
) -> Result<Pool, OpsError> {
    let url = config.url.expose();
    match config.backend() {
        #[cfg(feature = "sqlite")]
        ops_core::config::Backend::Sqlite => {
            sqlite::build(config, url, returned.clone(), disconnects).map(Pool::Sqlite)
        }
        #[cfg(feature = "postgres")]
        ops_core::config::Backend::Postgres => {
            postgres::build(config, url, returned.clone(), disconnects).map(Pool::Postgres)
        }
        #[cfg(feature = "mysql")]
        ops_core::config::Backend::MySql => {
            mysql::build(config, url, returned.clone(), disconnects).map(Pool::MySql)
        }
        #[allow(unreachable_patterns)]
        other => Err(OpsError::configuration(format!(
            "the {other:?} backend is not compiled in: enable the `{}` feature of ops-sea",
            feature_name(other)
        ))),
    }
}

fn feature_name(backend: ops_core::config::Backend) -> &'static str {
    match backend {
        ops_core::config::Backend::Sqlite => "sqlite",
        ops_core::config::Backend::Postgres => "postgres",
        ops_core::config::Backend::MySql => "mysql",
    }
}

/// Connects once, directly and outside the pool, within `connect_timeout`: the error a person
/// gets at startup is the real one (refused, authentication, missing database), not the pool's
/// generic timeout.
pub(crate) async fn verify(config: &DbConfig) -> Result<(), OpsError> {
    let timeout = config.connect_timeout;
    let url = config.url.expose();
    let attempt = async {
        match config.backend() {
            #[cfg(feature = "sqlite")]
            ops_core::config::Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect_with(&sqlite::options(config, url)?)
                    .await
                    .map_err(OpsError::from)?;
                c.ping().await.map_err(OpsError::from)?;
                let _ = c.close().await;
                Ok(())
            }
            #[cfg(feature = "postgres")]
            ops_core::config::Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect_with(&postgres::options(config, url)?)
                    .await
                    .map_err(OpsError::from)?;
                c.ping().await.map_err(OpsError::from)?;
                let _ = c.close().await;
                Ok(())
            }
            #[cfg(feature = "mysql")]
            ops_core::config::Backend::MySql => {
                let mut c = sqlx::MySqlConnection::connect_with(&mysql::options(config, url)?)
                    .await
                    .map_err(OpsError::from)?;
                c.ping().await.map_err(OpsError::from)?;
                let _ = c.close().await;
                Ok(())
            }
            #[allow(unreachable_patterns)]
            _ => Ok(()),
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result.map_err(|e: OpsError| {
            let detail = format!(
                "cannot connect to {}: {}",
                config.url.redacted(),
                e.detail()
            );
            let category = e.category();
            OpsError::new(category, detail).with_source(e)
        }),
        Err(_) => Err(OpsError::new(
            ops_core::ErrorCategory::Unavailable,
            format!(
                "cannot connect to {}: no answer within the connect timeout of {timeout:?}; \
                 check that the host and port are right and the server is running",
                config.url.redacted()
            ),
        )),
    }
}

/// Pool options shared by every backend.
pub(super) fn pool_options<DB: sqlx::Database>(
    config: &DbConfig,
    disconnects: &Disconnects,
) -> sqlx::pool::PoolOptions<DB> {
    let mut options = sqlx::pool::PoolOptions::<DB>::new()
        .min_connections(config.pool_size)
        .max_connections(config.pool_size.saturating_add(config.max_overflow))
        .acquire_timeout(config.pool_timeout)
        .max_lifetime(config.pool_recycle)
        .idle_timeout(Some(config.idle_timeout))
        // Pinging every checkout costs a round trip per query; `before_acquire` below pings only
        // connections that sat idle long enough to have been cut.
        .test_before_acquire(false);
    let idle_ping = config.idle_ping;
    let limit = hook_limit(config);
    let on_connect = disconnects.clone();
    options = options.after_connect(move |_conn, _meta| {
        let disconnects = on_connect.clone();
        Box::pin(async move {
            opened(&disconnects);
            Ok(())
        })
    });
    let disconnects = disconnects.clone();
    options = options.before_acquire(move |conn, meta: PoolConnectionMetadata| {
        let disconnects = disconnects.clone();
        Box::pin(async move {
            // Released before the pool's last disconnect: it may be dead however recently it
            // was used, so it is checked. Otherwise only a long idle time earns a ping.
            let stale = disconnects.stale(meta.idle_for);
            if !stale && meta.idle_for < idle_ping {
                super::metrics::handed_over();
                return Ok(true);
            }
            let what = if stale {
                disconnects.count();
                "the ping after a disconnect"
            } else {
                "the idle ping"
            };
            // A failed ping discards this connection; sqlx then takes another or opens a new one,
            // so the caller never sees the dead connection. One that does not answer at all is
            // closed without a goodbye (an `Err` here). Either way its siblings released before
            // now are suspect too.
            match bounded_hook(what, limit, conn.ping()).await {
                Ok(()) => {
                    super::metrics::handed_over();
                    Ok(true)
                }
                Err(err) => {
                    disconnects.metrics().ping_failed();
                    disconnects.record();
                    match err {
                        sqlx::Error::Io(_) => Err(err),
                        _ => Ok(false),
                    }
                }
            }
        })
    });
    options
}

/// The end of every pool's `after_connect`: counts the connection opened and hands it to the
/// caller waiting for it.
pub(super) fn opened(disconnects: &Disconnects) {
    disconnects.metrics().opened();
    super::metrics::handed_over();
}

/// The release hook of the server backends. With `ResetCheck::Always` every returned connection
/// is reset (checked, and rolled back when inside a transaction). By default only releases shortly
/// after an abandoned call are (`release.rs`): a `BEGIN` cut off by a timeout still reaches the
/// server and leaves it inside a transaction sqlx does not know of, and a connection left
/// mid-exchange can hang in sqlx's own release ping, which has no bound. Every reset here is
/// bounded by `connect_timeout`; a connection that does not answer is closed. Any other release
/// runs nothing before sqlx's ping.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn release_hook<DB: super::raw::Reset>(
    config: &DbConfig,
    options: sqlx::pool::PoolOptions<DB>,
    returned: ReturnedInTransaction,
    disconnects: &Disconnects,
) -> sqlx::pool::PoolOptions<DB> {
    let limit = hook_limit(config);
    let always = config.reset_check == ResetCheck::Always;
    let recycle = config.pool_recycle;
    let disconnects = disconnects.clone();
    // The recycle age is enforced here rather than by sqlx, which closes old connections
    // without a word: here each one is counted (`ops_pool_connections_recycled_total`). Idle
    // connections still close at the idle timeout.
    options.max_lifetime(None).after_release(move |conn, meta| {
        let returned = returned.clone();
        let disconnects = disconnects.clone();
        Box::pin(async move {
            if recycle.is_some_and(|age| meta.age >= age) {
                disconnects.metrics().recycled();
                return Ok(false);
            }
            if always || super::release::check_now() {
                let reset = DB::reset(conn);
                let in_transaction = bounded_hook("the reset on return", limit, reset)
                    .await
                    .inspect_err(|_| disconnects.record())?;
                if in_transaction {
                    super::count_returned(&returned);
                }
            }
            Ok(true)
        })
    })
}

/// How long a pool hook's round trip (the idle ping, the reset on return) may take: the connect
/// timeout, the time a connection gets to answer at all.
pub(crate) fn hook_limit(config: &DbConfig) -> Duration {
    config.connect_timeout
}

/// Runs a pool hook's round trip within `limit`.
///
/// sqlx awaits these without a bound, and a connection that never answers would then hold its
/// pool slot forever: the server sits idle while the client waits. It happens for real: sqlx-mysql
/// 0.9 records that a result is due before it sends the query, so a query future dropped in
/// between (a cancelled session) leaves the connection waiting for a reply that never comes.
/// Past `limit` the hook fails, and sqlx closes the connection and opens a new one if needed.
pub(crate) async fn bounded_hook<T>(
    what: &'static str,
    limit: Duration,
    work: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(
                "a pooled connection did not answer {what} within {limit:?}; closing it"
            );
            Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("{what} got no answer within {limit:?}"),
            )))
        }
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use std::str::FromStr;

    use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};

    use super::*;

    pub(super) fn options(config: &DbConfig, url: &str) -> Result<PgConnectOptions, OpsError> {
        let mut options = PgConnectOptions::from_str(url).map_err(|e| {
            OpsError::configuration(format!(
                "the PostgreSQL URL {} is not valid: {e}",
                config.url.redacted()
            ))
        })?;
        if let Some(mode) = config.ssl_mode {
            options = options.ssl_mode(match mode {
                SslMode::Disable => PgSslMode::Disable,
                SslMode::Allow => PgSslMode::Allow,
                SslMode::Prefer => PgSslMode::Prefer,
                SslMode::Require => PgSslMode::Require,
                SslMode::VerifyCa => PgSslMode::VerifyCa,
                SslMode::VerifyFull => PgSslMode::VerifyFull,
            });
        }
        if config.pgbouncer.is_some() {
            // Behind PgBouncer nothing extra goes in the startup packet (it refuses unknown
            // parameters) and the statement timeout is set in every transaction instead.
            return Ok(crate::pool::pgbouncer::connect_options(options));
        }
        if let Some(timeout) = config.statement_timeout {
            // Sent in the startup packet: no extra round trip per connection.
            options = options.options([("statement_timeout", timeout.as_millis().to_string())]);
        }
        Ok(options)
    }

    pub(super) fn build(
        config: &DbConfig,
        url: &str,
        returned: ReturnedInTransaction,
        disconnects: &Disconnects,
    ) -> Result<sqlx::PgPool, OpsError> {
        let connect = options(config, url)?;
        let mut pool: PgPoolOptions = pool_options(config, disconnects);
        if config.pgbouncer.is_none()
            && connect.get_socket().is_none()
            && !connect.get_host().starts_with('/')
        {
            let port = connect.get_port();
            let disconnects = disconnects.clone();
            // Replaces the shared `after_connect`, so it ends the same way.
            pool = pool.after_connect(move |conn, _meta| {
                let disconnects = disconnects.clone();
                Box::pin(async move {
                    crate::pool::nodelay::apply(conn, port).await;
                    opened(&disconnects);
                    Ok(())
                })
            });
        }
        Ok(release_hook(config, pool, returned, disconnects).connect_lazy_with(connect))
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    use std::str::FromStr;

    use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions, MySqlSslMode};

    use super::*;

    pub(super) fn options(config: &DbConfig, url: &str) -> Result<MySqlConnectOptions, OpsError> {
        let mut options = MySqlConnectOptions::from_str(url).map_err(|e| {
            OpsError::configuration(format!(
                "the MySQL URL {} is not valid: {e}",
                config.url.redacted()
            ))
        })?;
        if let Some(mode) = config.ssl_mode {
            options = options.ssl_mode(match mode {
                SslMode::Disable => MySqlSslMode::Disabled,
                // MySQL has no "allow": it means "use TLS if the server offers it", as preferred.
                SslMode::Allow | SslMode::Prefer => MySqlSslMode::Preferred,
                SslMode::Require => MySqlSslMode::Required,
                SslMode::VerifyCa => MySqlSslMode::VerifyCa,
                SslMode::VerifyFull => MySqlSslMode::VerifyIdentity,
            });
        }
        Ok(options)
    }

    pub(super) fn build(
        config: &DbConfig,
        url: &str,
        returned: ReturnedInTransaction,
        disconnects: &Disconnects,
    ) -> Result<sqlx::MySqlPool, OpsError> {
        let connect = options(config, url)?;
        let mut pool: MySqlPoolOptions = pool_options(config, disconnects);
        // MariaDB's max_statement_time is in seconds (fractions allowed) and covers every
        // statement; MySQL's max_execution_time is in milliseconds and covers SELECT only.
        // Setting the one the server lacks is an error, so MariaDB's is tried first.
        let timeout = config
            .statement_timeout
            .map(|timeout| (timeout.as_secs_f64(), timeout.as_millis()));
        let tcp = connect.get_socket().is_none();
        let port = connect.get_port();
        if timeout.is_some() || tcp {
            let disconnects = disconnects.clone();
            // Replaces the shared `after_connect`, so it ends the same way.
            pool = pool.after_connect(move |conn, _meta| {
                let disconnects = disconnects.clone();
                Box::pin(async move {
                    if tcp {
                        crate::pool::nodelay::apply(conn, port).await;
                    }
                    if let Some((seconds, millis)) = timeout {
                        let mariadb = format!("SET SESSION max_statement_time = {seconds}");
                        if conn.execute(sqlx::AssertSqlSafe(mariadb)).await.is_err() {
                            let mysql = format!("SET SESSION max_execution_time = {millis}");
                            conn.execute(sqlx::AssertSqlSafe(mysql)).await?;
                        }
                    }
                    opened(&disconnects);
                    Ok(())
                })
            });
        }
        Ok(release_hook(config, pool, returned, disconnects).connect_lazy_with(connect))
    }
}
