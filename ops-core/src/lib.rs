//! Backend-agnostic runtime of ops: error categories, the retry engine, session tracking,
//! configuration, stats and health types.
//!
//! This crate knows no database driver. `ops-sea` builds the SeaORM integration on it; another
//! integration (sqlx, Diesel) could be built on it the same way.

#![warn(missing_docs)]
// docs.rs builds with `--cfg docsrs` (see Cargo.toml): label feature-gated items with their feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod breaker;
pub mod category;
pub mod codes;
pub mod config;
pub mod health;
pub mod metrics;
pub mod options;
pub mod page;
pub mod retry;
#[cfg(feature = "serde")]
mod serialize;
pub mod stats;
pub mod tracker;

pub use category::{
    Categorize, Classification, ErrorCategory, IntegrityKind, RetryReason, RuleKind,
};
pub use health::{HealthReport, HealthStatus};
pub use options::{Isolation, Propagation, SessionOptions};
pub use page::{InvalidPageRequest, Page, PageRequest, Sort, SortDirection};
pub use retry::{RetryPolicy, retry};
pub use stats::{CriticalEvent, CriticalKind, ErrorStats, ErrorStatsRecorder};
