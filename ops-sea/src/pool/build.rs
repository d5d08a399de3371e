//! Building a backend's sqlx pool and connect options from a `DbConfig`, and the one direct
//! connection that proves the database answers at startup.

use ops_core::config::{DbConfig, SslMode};
use sqlx::{Connection, Executor as _};

use super::{Pool, reset};
use crate::OpsError;

/// Builds the pool for a configuration. The pool connects lazily; `Db::connect` proves the
/// database answers before handing the pool out.
pub(crate) fn build(config: &DbConfig) -> Result<Pool, OpsError> {
    let url = config.url.expose();
    match config.backend() {
        #[cfg(feature = "sqlite")]
        ops_core::config::Backend::Sqlite => sqlite::build(config, url).map(Pool::Sqlite),
        #[cfg(feature = "postgres")]
        ops_core::config::Backend::Postgres => postgres::build(config, url).map(Pool::Postgres),
        #[cfg(feature = "mysql")]
        ops_core::config::Backend::MySql => mysql::build(config, url).map(Pool::MySql),
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
fn pool_options<DB: sqlx::Database>(config: &DbConfig) -> sqlx::pool::PoolOptions<DB> {
    let options = sqlx::pool::PoolOptions::<DB>::new()
        .min_connections(config.pool_size)
        .max_connections(config.pool_size.saturating_add(config.max_overflow))
        .acquire_timeout(config.pool_timeout)
        .max_lifetime(config.pool_recycle)
        .idle_timeout(Some(config.idle_timeout))
        // Pinging every checkout costs a round trip per query; `before_acquire` below pings only
        // connections that sat idle long enough to have been cut.
        .test_before_acquire(false);
    reset::ping_idle(options, config.idle_ping)
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use std::str::FromStr;

    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

    use super::*;

    pub(super) fn options(config: &DbConfig, url: &str) -> Result<SqliteConnectOptions, OpsError> {
        let options = SqliteConnectOptions::from_str(url).map_err(|e| {
            OpsError::configuration(format!(
                "the SQLite URL {} is not valid: {e}",
                config.url.redacted()
            ))
        })?;
        if matches!(
            config.ssl_mode,
            Some(SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull)
        ) {
            return Err(OpsError::configuration(
                "SSL does not apply to SQLite: remove the SSL mode from the URL or DB_SSL_MODE",
            ));
        }
        // WAL lets readers run beside one writer; foreign keys are on as on every other backend.
        let options = options.foreign_keys(true);
        if config.url.is_in_memory() {
            Ok(options)
        } else {
            Ok(options.journal_mode(SqliteJournalMode::Wal))
        }
    }

    pub(super) fn build(config: &DbConfig, url: &str) -> Result<sqlx::SqlitePool, OpsError> {
        let connect = options(config, url)?;
        let mut pool: SqlitePoolOptions = pool_options(config);
        if config.url.is_in_memory() {
            // An in-memory database lives only while one of its connections is open: never let
            // the pool recycle or idle out its last connection.
            pool = pool
                .min_connections(config.pool_size.max(1))
                .max_lifetime(None)
                .idle_timeout(None);
        }
        let pool = pool.after_release(|conn, _meta| {
            Box::pin(async move {
                if reset::sqlite_in_transaction(conn).await? {
                    tracing::warn!(
                        "a SQLite connection was returned to the pool inside a transaction; \
                         rolling it back"
                    );
                    conn.execute("ROLLBACK").await?;
                }
                Ok(true)
            })
        });
        Ok(pool.connect_lazy_with(connect))
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
        if let Some(timeout) = config.statement_timeout {
            // Sent in the startup packet: no extra round trip per connection.
            options = options.options([("statement_timeout", timeout.as_millis().to_string())]);
        }
        Ok(options)
    }

    pub(super) fn build(config: &DbConfig, url: &str) -> Result<sqlx::PgPool, OpsError> {
        let connect = options(config, url)?;
        let pool: PgPoolOptions = pool_options(config);
        let pool = pool.after_release(|conn, _meta| {
            Box::pin(async move {
                reset::postgres_reset(conn).await?;
                Ok(true)
            })
        });
        Ok(pool.connect_lazy_with(connect))
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

    pub(super) fn build(config: &DbConfig, url: &str) -> Result<sqlx::MySqlPool, OpsError> {
        let connect = options(config, url)?;
        let mut pool: MySqlPoolOptions = pool_options(config);
        if let Some(timeout) = config.statement_timeout {
            // MariaDB's max_statement_time is in seconds (fractions allowed) and covers every
            // statement; MySQL's max_execution_time is in milliseconds and covers SELECT only.
            // Setting the one the server lacks is an error, so try MariaDB's first.
            let seconds = timeout.as_secs_f64();
            let millis = timeout.as_millis();
            pool = pool.after_connect(move |conn, _meta| {
                Box::pin(async move {
                    let mariadb = format!("SET SESSION max_statement_time = {seconds}");
                    if conn.execute(sqlx::AssertSqlSafe(mariadb)).await.is_err() {
                        let mysql = format!("SET SESSION max_execution_time = {millis}");
                        conn.execute(sqlx::AssertSqlSafe(mysql)).await?;
                    }
                    Ok(())
                })
            });
        }
        let pool = pool.after_release(|conn, _meta| {
            Box::pin(async move {
                reset::mysql_reset(conn).await?;
                Ok(true)
            })
        });
        Ok(pool.connect_lazy_with(connect))
    }
}
