//! SeaORM integration of ops: `Db`, `Session`, managed sessions, retries and generated repositories.
//!
//! Users depend on this crate alone and write `use ops_sea::prelude::*;`.

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
compile_error!("ops-sea needs at least one backend feature: `sqlite`, `postgres` or `mysql`");

pub mod classify;
mod error;
mod executor;

pub use error::{ErrorContext, OpsError};
pub use executor::Executor;
pub use ops_core::{
    Categorize, Classification, ErrorCategory, IntegrityKind, Isolation, Propagation, RetryReason,
    SessionOptions,
};

/// Everything a user of ops needs, in one import.
pub mod prelude {
    pub use crate::{
        Categorize, ErrorCategory, IntegrityKind, Isolation, OpsError, Propagation, RetryReason,
        SessionOptions,
    };
}
