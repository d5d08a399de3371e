//! SeaORM integration of ops: `Db`, `Session`, managed sessions, retries and generated repositories.
//!
//! Users depend on this crate alone and write `use ops_sea::prelude::*;`.
//!
//! Features: a backend (`sqlite`, the default, `postgres`, `mysql`; several may be enabled),
//! `axum` (a session per request, errors as responses, a health handler) and `metrics` (every
//! pool, session, statement and error metric through the `metrics` facade; the names are in
//! [`metrics`]).

#![warn(missing_docs)]
// docs.rs builds with `--cfg docsrs` (see Cargo.toml): label feature-gated items with their feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
compile_error!("ops-sea needs at least one backend feature: `sqlite`, `postgres` or `mysql`");

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
pub mod blocking;
pub mod classify;
mod db;
mod delegate;
mod error;
mod executor;
mod health;
mod macro_support;
mod maintenance;
mod managed;
mod pool;
mod reader;
pub mod repo;
mod session;
#[cfg(feature = "sqlite")]
mod sqlite_ffi;
mod telemetry;
pub mod testing;
mod txn;

pub use db::{Db, DbBuilder};
pub use error::{ErrorContext, OpsError};
pub use executor::Executor;
pub use maintenance::{MaintenanceConfig, MaintenanceHandle, OptimizeReport};
pub use managed::{SessionSource, run_managed};
pub use ops_core::breaker::{BreakerState, BreakerStatus};
pub use ops_core::config::{DbConfig, PgBouncerMode, ResetCheck, SslMode};
pub use ops_core::health::{HealthReport, HealthStatus, PoolState, ReplicaHealth};
pub use ops_core::metrics;
pub use ops_core::page::{Page, PageRequest, Sort, SortDirection};
pub use ops_core::stats::{CriticalEvent, CriticalKind, ErrorStats};
pub use ops_core::tracker::SessionStats;
pub use ops_core::{
    Categorize, Classification, ErrorCategory, IntegrityKind, Isolation, Propagation, RetryReason,
    RuleKind, SessionOptions,
};
pub use ops_core::{RetryPolicy, retry};
pub use ops_derive::Ops;
pub use ops_derive::{db_retry, managed_session, test};
pub use reader::Reader;
pub use repo::Repository;
pub use session::Session;

/// Everything a user of ops needs, in one import.
pub mod prelude {
    pub use crate::{
        Categorize, Db, ErrorCategory, IntegrityKind, Isolation, OpsError, Propagation,
        RetryReason, RuleKind, Session, SessionOptions, SessionSource,
    };
    pub use crate::{Ops, Page, PageRequest, Repository};
    pub use crate::{RetryPolicy, db_retry, managed_session, retry};
}
