//! The database family a URL points at, and the TLS modes: [`Backend`], [`SslMode`],
//! [`SslCertificates`].

use std::fmt;
use std::str::FromStr;

use super::error::ConfigError;

/// What an SSL mode error suggests instead.
pub(super) const SSL_MODES: &str = "use disable, allow, prefer, require, verify-ca or verify-full \
    (the MySQL names DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY and true/false \
    are accepted too)";

/// The database family a URL points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Backend {
    /// SQLite, embedded in the process.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

impl Backend {
    /// The lowercase name, which is also the URL scheme: `sqlite`, `postgres` or `mysql`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether and how the connection uses TLS, in libpq's vocabulary.
///
/// MySQL has no `allow`: the SeaORM layer maps [`SslMode::Allow`] onto MySQL's `PREFERRED`, as
/// [`SslMode::as_mysql_str`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Try without TLS first, then with it.
    Allow,
    /// Try TLS first, then without it.
    Prefer,
    /// Use TLS, without verifying the server certificate.
    Require,
    /// Use TLS and verify that the server certificate is signed by a trusted authority.
    VerifyCa,
    /// Use TLS, verify the certificate and that it names the host connected to.
    VerifyFull,
}

impl SslMode {
    /// The libpq name: `disable`, `allow`, `prefer`, `require`, `verify-ca` or `verify-full`.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// The MySQL name: `DISABLED`, `PREFERRED` (for both `allow` and `prefer`), `REQUIRED`,
    /// `VERIFY_CA` or `VERIFY_IDENTITY`.
    pub fn as_mysql_str(self) -> &'static str {
        match self {
            SslMode::Disable => "DISABLED",
            SslMode::Allow | SslMode::Prefer => "PREFERRED",
            SslMode::Require => "REQUIRED",
            SslMode::VerifyCa => "VERIFY_CA",
            SslMode::VerifyFull => "VERIFY_IDENTITY",
        }
    }

    /// Whether the connection fails rather than run without TLS.
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }

    /// Parses any accepted spelling; `None` when the text is not an SSL mode.
    pub(super) fn parse(text: &str) -> Option<SslMode> {
        let normalized = text.trim().to_ascii_lowercase().replace('_', "-");
        let mode = match normalized.as_str() {
            "disable" | "disabled" | "false" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" | "preferred" => SslMode::Prefer,
            "require" | "required" | "true" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" | "verify-identity" => SslMode::VerifyFull,
            _ => return None,
        };
        Some(mode)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = ConfigError;

    /// Accepts the libpq names, the MySQL names and `true`/`false` (asyncpg's `ssl=`), in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SslMode::parse(s)
            .ok_or_else(|| ConfigError::new(format!("`{s}` is not an ssl mode: {SSL_MODES}")))
    }
}

/// Certificate files named in the URL query. They stay in the URL for the driver; they are
/// exposed here so the SeaORM layer can check or log them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SslCertificates {
    /// The trusted root certificate (`sslrootcert`, `ssl-root-cert`, `ssl-ca`, `sslca`).
    pub root_cert: Option<String>,
    /// The client certificate (`sslcert`, `ssl-cert`).
    pub client_cert: Option<String>,
    /// The client private key (`sslkey`, `ssl-key`).
    pub client_key: Option<String>,
}
