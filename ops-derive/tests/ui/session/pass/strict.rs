//! The expansions are clean under the strictest lint levels.
#![deny(warnings, clippy::all, clippy::pedantic, missing_docs, unused_results)]

use ops_sea::prelude::*;

/// A documented managed function.
///
/// # Errors
///
/// When the session cannot begin or commit.
#[managed_session(timeout = "250ms", isolation = "serializable")]
pub async fn strict(session: &Session, id: i64, name: String) -> Result<String, OpsError> {
    Ok(format!("{}:{id}:{name}", session.name()))
}

/// A documented retried function.
///
/// # Errors
///
/// When every attempt fails.
#[db_retry(
    attempts = 4,
    initial = "5ms",
    max = "50ms",
    multiplier = 1.5,
    jitter = false
)]
#[managed_session]
pub async fn strict_retry(
    session: &Session,
    id: i64,
    tags: Vec<String>,
) -> Result<usize, OpsError> {
    let _ = session.name();
    Ok(tags.len() + usize::try_from(id).unwrap_or_default())
}

/// A documented blocking function.
///
/// # Errors
///
/// When every attempt fails.
#[db_retry(deadline = "1s")]
#[managed_session]
pub fn strict_blocking(session: &Session, mut id: i64) -> Result<i64, OpsError> {
    id += 1;
    let _ = session.name();
    Ok(id)
}

/// A documented function retried alone.
///
/// # Errors
///
/// When every attempt fails.
#[db_retry(on = [Deadlock, SerializationFailure], idempotent)]
pub async fn strict_alone(db: &Db, name: String) -> Result<usize, OpsError> {
    let _ = db.backend();
    Ok(name.len())
}

fn main() {}
