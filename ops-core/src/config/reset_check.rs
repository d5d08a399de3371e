//! [`ResetCheck`]: which connections are checked for an open transaction on their way back to
//! the pool (`DB_RESET_CHECK`).

use std::fmt;

/// Which connections are checked for an open transaction when they go back to the pool
/// (`DB_RESET_CHECK`). A connection never goes back inside a transaction either way; the choice
/// is what that guarantee costs.
///
/// ```
/// use ops_core::config::ResetCheck;
///
/// assert_eq!(ResetCheck::default(), ResetCheck::Auto);
/// assert_eq!(ResetCheck::parse("ALWAYS"), Some(ResetCheck::Always));
/// assert_eq!(ResetCheck::parse("sometimes"), None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResetCheck {
    /// Check only connections that ran raw SQL through ops (`execute_unprepared`, or a raw
    /// statement that is not a single `SELECT`/`INSERT`/`UPDATE`/`DELETE`): the only statements
    /// that can leave a transaction open behind the pool's back. Every other release costs
    /// nothing beyond the driver's own ping.
    #[default]
    Auto,
    /// Check every returned connection, one more round trip per release (none on SQLite). For
    /// applications that hand `Db::connection()` or the raw sqlx pool to code running raw SQL,
    /// which ops cannot see.
    Always,
}

impl ResetCheck {
    /// The name `DB_RESET_CHECK` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            ResetCheck::Auto => "auto",
            ResetCheck::Always => "always",
        }
    }

    /// Parses `auto` or `always`, in any case.
    pub fn parse(value: &str) -> Option<ResetCheck> {
        let value = value.trim();
        [ResetCheck::Auto, ResetCheck::Always]
            .into_iter()
            .find(|check| check.as_str().eq_ignore_ascii_case(value))
    }
}

impl fmt::Display for ResetCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
