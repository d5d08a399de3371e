//! Running behind PgBouncer: `DB_PGBOUNCER=transaction` and `?pgbouncer=true` in the URL.

use std::fmt;
use std::str::FromStr;

use super::error::ConfigError;

/// How PgBouncer pools the connections ops opens through it.
///
/// Only transaction pooling needs anything from ops, and what it needs (no startup-packet
/// parameters, unnamed statements, every statement in a transaction, no session state) also
/// works under session pooling, so there is one mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PgBouncerMode {
    /// PgBouncer's `pool_mode = transaction`: a server connection belongs to a client only for
    /// the length of one transaction.
    Transaction,
}

impl PgBouncerMode {
    /// The name used by `DB_PGBOUNCER` and PgBouncer's `pool_mode`.
    pub fn as_str(self) -> &'static str {
        match self {
            PgBouncerMode::Transaction => "transaction",
        }
    }
}

impl fmt::Display for PgBouncerMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a `DB_PGBOUNCER` error suggests instead.
pub(super) const PGBOUNCER_VALUES: &str = "use `transaction` (for PgBouncer's pool_mode = \
    transaction; it works under session pooling too) or `off`";

impl FromStr for PgBouncerMode {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match parse_setting(s) {
            Ok(Some(mode)) => Ok(mode),
            Ok(None) => Err(ConfigError::new(format!(
                "`{s}` turns PgBouncer mode off and names no mode: {PGBOUNCER_VALUES}"
            ))),
            Err(reason) => Err(ConfigError::new(format!("`{s}` {reason}"))),
        }
    }
}

/// Reads a `DB_PGBOUNCER` value: `Some(mode)` for on, `None` for off.
pub(super) fn parse_setting(value: &str) -> Result<Option<PgBouncerMode>, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "transaction" => Ok(Some(PgBouncerMode::Transaction)),
        "off" | "none" | "false" | "0" | "no" => Ok(None),
        "session" | "statement" => Err(format!(
            "is not supported as a PgBouncer mode: {PGBOUNCER_VALUES} (statement pooling \
             forbids the transactions ops runs every statement in)"
        )),
        _ => Err(format!("is not a PgBouncer mode: {PGBOUNCER_VALUES}")),
    }
}

/// Reads the `pgbouncer` URL parameter the way other tools (Prisma) spell it: `true` turns
/// transaction mode on, `false` leaves it off.
pub(super) fn parse_url_param(value: &str) -> Result<Option<PgBouncerMode>, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "transaction" => Ok(Some(PgBouncerMode::Transaction)),
        "false" | "0" | "no" | "off" => Ok(None),
        _ => Err(format!(
            "`pgbouncer={value}` in the url query is not understood: use pgbouncer=true (or \
             pgbouncer=false)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_and_url_values() {
        assert_eq!(
            parse_setting("Transaction"),
            Ok(Some(PgBouncerMode::Transaction))
        );
        assert_eq!(parse_setting("off"), Ok(None));
        assert!(parse_setting("session").is_err());
        assert!(parse_setting("yes please").is_err());
        assert_eq!(
            parse_url_param("true"),
            Ok(Some(PgBouncerMode::Transaction))
        );
        assert_eq!(parse_url_param("false"), Ok(None));
        assert!(parse_url_param("maybe").is_err());
        assert_eq!(
            "transaction".parse::<PgBouncerMode>().unwrap(),
            PgBouncerMode::Transaction
        );
    }
}
