//! The connection pool behind a `Db`: sqlx pools built from a `DbConfig`, with the semantics users
//! of SQLAlchemy and HikariCP expect.
//!
//! - `pool_size` connections are kept warm (`min_connections`); `max_overflow` more are opened under
//!   burst and closed again once idle for `idle_timeout`.
//! - A connection is pinged at checkout only when it sat idle at least `idle_ping` (HikariCP's
//!   rule); a hot connection pays no round trip. SeaORM's default pings on every checkout.
//! - **Reset on return**: a connection never goes back to the pool inside a transaction. sqlx only
//!   knows about transactions it began itself, so a raw `BEGIN` executed through the pool would leak
//!   into the next borrower (this reproduces with plain SeaORM 2.0.4). The `after_release` hooks
//!   (`build.rs`, with the checks in `reset.rs`) ask the connection itself and roll back when it
//!   is inside one.
//!
//! Files: `build.rs` builds pools and connect options per backend; `reset.rs` keeps connections
//! healthy (reset on return, idle pings, the health ping).

use sea_orm::DatabaseConnection;

/// What a pool reports about itself, for health reports and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolState {
    /// Connections open now, idle or in use.
    pub size: u32,
    /// Connections idle in the pool.
    pub idle: u32,
    /// Connections kept warm.
    pub min: u32,
    /// The most connections the pool opens.
    pub max: u32,
}

impl PoolState {
    /// Connections checked out now.
    pub fn in_use(&self) -> u32 {
        self.size.saturating_sub(self.idle)
    }
}

/// The sqlx pool of one backend.
#[derive(Clone, Debug)]
pub(crate) enum Pool {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
    #[cfg(feature = "mysql")]
    MySql(sqlx::MySqlPool),
}

macro_rules! each_pool {
    ($self:expr, $p:ident => $body:expr) => {
        match $self {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite($p) => $body,
            #[cfg(feature = "postgres")]
            Pool::Postgres($p) => $body,
            #[cfg(feature = "mysql")]
            Pool::MySql($p) => $body,
        }
    };
}

mod build;
mod reset;

pub(crate) use build::{build, verify};

impl Pool {
    pub(crate) fn state(&self) -> PoolState {
        each_pool!(self, p => PoolState {
            size: p.size(),
            idle: u32::try_from(p.num_idle()).unwrap_or(u32::MAX),
            min: p.options().get_min_connections(),
            max: p.options().get_max_connections(),
        })
    }

    pub(crate) fn is_closed(&self) -> bool {
        each_pool!(self, p => p.is_closed())
    }

    pub(crate) async fn close(&self) {
        each_pool!(self, p => p.close().await)
    }

    /// The SeaORM connection over this pool.
    pub(crate) fn sea_connection(&self) -> DatabaseConnection {
        match self {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(p.clone()),
            #[cfg(feature = "postgres")]
            Pool::Postgres(p) => sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(p.clone()),
            #[cfg(feature = "mysql")]
            Pool::MySql(p) => sea_orm::SqlxMySqlConnector::from_sqlx_mysql_pool(p.clone()),
        }
    }
}
