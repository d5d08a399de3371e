//! Classifies SeaORM and sqlx errors into ops categories from codes, never from message text.
//!
//! [`classify`] takes a SeaORM [`DbErr`], [`classify_sqlx`] a bare [`sqlx::Error`] (for code that
//! talks to a sqlx pool directly). Both look through SeaORM's wrappers (`Conn`, `Exec` and `Query`
//! all carry driver errors, and a connection lost in the middle of a query arrives as `Exec` or
//! `Query`, not as `Conn`), downcast database errors to the backend's own type, and read its code
//! from one of four tables. The tables use no driver type, so they live in `ops-core`
//! (`ops_core::codes`), where another integration can share them; they are re-exported here:
//!
//! | source | table | code reported |
//! | --- | --- | --- |
//! | PostgreSQL | [`sqlstate_category`] | the SQLSTATE, e.g. `23505` |
//! | MySQL / MariaDB | [`mysql_category`] | the error number, e.g. `1062` |
//! | SQLite | [`sqlite_category`] | the extended result code, e.g. `2067` |
//! | sockets | [`io_category`] | none |
//!
//! The decisions a reader might not guess are written next to the code that makes them. The main
//! ones:
//!
//! - A refused or unroutable connect is [`ErrorCategory::Unavailable`], not a lost connection:
//!   nothing was lost, the database could not be reached. Every other socket failure is
//!   `Retryable(ConnectionLost)`. A SeaORM connect whose pool gave up (`DbErr::Conn` holding
//!   `PoolTimedOut`) is `Unavailable` too: sqlx retries a refused connect until the pool timeout, so
//!   a brand-new pool that timed out never reached the server. The same `PoolTimedOut` from a live
//!   pool is `Retryable(PoolExhausted)`.
//! - A FATAL error that ends the session is `Retryable(ConnectionLost)`, whatever ended it:
//!   PostgreSQL `57P01` (`pg_terminate_backend` or a server shutdown), `57P02` (another backend
//!   crashed), `57P05` (idle session timeout), `25P03` (idle-in-transaction timeout), MySQL `1927`
//!   (connection killed) and `1053` (server shutdown). The server sends these down the session's
//!   own socket, so sqlx reports them as database errors where a plain TCP reset would be an I/O
//!   error, and they mean the same thing: this session is gone. That matters for COMMIT: a session
//!   terminated while its COMMIT was in flight leaves the outcome unknown, and the session layer
//!   turns `ConnectionLost` there into `CommitUnknown`. Whether the server itself is going away is
//!   answered by the next connect, which fails with `57P03` (starting up or shutting down),
//!   `53300` or MySQL `1040` (too many connections): `Retryable(ServerUnavailable)`, or with a
//!   refused connect: `Unavailable`.
//! - `53300` too many connections is `Retryable(ServerUnavailable)`; the other resource errors
//!   (`53xxx`: disk full, out of memory, limits) and `58xxx` system errors are `Unavailable`: they
//!   need a person, and [`ErrorCategory::is_critical`] reports them.
//! - Data exceptions (`22xxx`), an aborted transaction used again (`25P02`) and other misuse of
//!   transactions are `Programming`: the same statement fails the same way until the code changes.
//! - A write in a read-only session is `Programming` on every backend: PostgreSQL `25006`, MySQL
//!   and MariaDB `1792`, SQLite's plain `SQLITE_READONLY` (`8`, from `PRAGMA query_only`).
//! - Missing privileges (`42501`, MySQL `1142`/`1143`/`1227`) are `Configuration`, not
//!   `Programming`: they are fixed by granting rights to the database role, not by changing code.
//! - Constraint names come from PostgreSQL only. sqlx exposes no structured constraint field for
//!   MySQL or SQLite (their drivers report it inside the message text alone), and ops never reads
//!   message text, so `constraint` is `None` there.
//! - The one exception to "never from message text": PgBouncer sends its own refusals with one
//!   code, `08P01` (protocol violation), whether the client is misconfigured ("unsupported
//!   startup parameter", "no such user", an authentication failure) or a server connection was
//!   lost ("server conn crashed?", "query_wait_timeout"). A misconfiguration fails the same way on
//!   every retry, so for `08P01` only, [`pgbouncer_refusal`] reads the message: its known
//!   configuration refusals are `Configuration`; everything else stays `Retryable(ConnectionLost)`.

use std::error::Error as StdError;
use std::io;

pub use ops_core::codes::{io_category, mysql_category, sqlite_category, sqlstate_category};
use ops_core::{Classification, ErrorCategory, IntegrityKind, RetryReason};
use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr};

const fn retry(reason: RetryReason) -> ErrorCategory {
    ErrorCategory::Retryable(reason)
}

const fn integrity(kind: IntegrityKind) -> ErrorCategory {
    ErrorCategory::Integrity(kind)
}

/// Classifies one SeaORM error.
///
/// Errors raised by SeaORM itself (not by a driver) carry no code; driver errors carry the
/// backend's code and, on PostgreSQL, the violated constraint's name.
pub fn classify(err: &DbErr) -> Classification {
    match err {
        DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => {
            Classification::new(retry(RetryReason::PoolExhausted))
        }
        DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed) => {
            Classification::new(ErrorCategory::Unavailable)
        }
        DbErr::Conn(runtime) => classify_runtime(runtime, Phase::Connect),
        DbErr::Exec(runtime) | DbErr::Query(runtime) => classify_runtime(runtime, Phase::Use),
        // A conversion failure may wrap a driver error (a row decoded lazily); otherwise the Rust
        // type and the column disagree, which is a programming error.
        DbErr::TryIntoErr { source, .. } => classify_chain(source.as_ref())
            .unwrap_or_else(|| Classification::new(ErrorCategory::Programming)),
        DbErr::RecordNotFound(_) | DbErr::RecordNotUpdated => {
            // `RecordNotUpdated` means the UPDATE's WHERE matched no row: the record is gone.
            Classification::new(ErrorCategory::NotFound)
        }
        // SeaORM returns this when `ON CONFLICT DO NOTHING` skipped every row, i.e. each one
        // conflicted with a row that already exists. Retrying gives the same answer.
        DbErr::RecordNotInserted => Classification::new(integrity(IntegrityKind::Unique)),
        DbErr::ConvertFromU64(_)
        | DbErr::UnpackInsertId
        | DbErr::UpdateGetPrimaryKey
        | DbErr::AttrNotSet(_)
        | DbErr::Type(_)
        | DbErr::Json(_)
        | DbErr::BackendNotSupported { .. }
        | DbErr::KeyArityMismatch { .. }
        | DbErr::PrimaryKeyNotSet { .. } => Classification::new(ErrorCategory::Programming),
        // Custom errors, migration errors, RBAC decisions and a poisoned mutex carry no code to
        // classify from; the caller knows better than a table.
        _ => Classification::new(ErrorCategory::Other),
    }
}

/// Classifies one sqlx error, as seen by code that uses a sqlx pool directly.
///
/// `PoolTimedOut` is `Retryable(PoolExhausted)` here: on a live pool it means every connection
/// stayed busy. (sqlx also reports a server that refuses connections as `PoolTimedOut` once the
/// acquire timeout passes; a caller that knows the pool is new, as SeaORM's connect does, should
/// treat it as `Unavailable`, which [`classify`] does for `DbErr::Conn`.)
pub fn classify_sqlx(err: &sqlx::Error) -> Classification {
    classify_sqlx_in(err, Phase::Use)
}

/// Where a driver error surfaced, which changes the meaning of a pool timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// `DbErr::Conn`: opening a pool (or pinging).
    Connect,
    /// Everything else: a statement on a live pool or connection.
    Use,
}

fn classify_runtime(runtime: &RuntimeErr, phase: Phase) -> Classification {
    match runtime {
        RuntimeErr::SqlxError(err) => classify_sqlx_in(err, phase),
        // SeaORM's own runtime errors are strings; it raises them on a closed connection
        // ("Disconnected") and, at connect, on a URL it cannot use. Only the phase is known
        // without reading the text.
        RuntimeErr::Internal(_) => Classification::new(match phase {
            Phase::Connect => ErrorCategory::Unavailable,
            Phase::Use => ErrorCategory::Other,
        }),
        // Other SeaORM drivers (rusqlite) are not used by ops; classify what they say generically.
        #[allow(unreachable_patterns)]
        other => other
            .source()
            .and_then(classify_chain)
            .unwrap_or_else(|| Classification::new(ErrorCategory::Other)),
    }
}

fn classify_sqlx_in(err: &sqlx::Error, phase: Phase) -> Classification {
    use sqlx::Error as E;

    let category = match err {
        // An `OpsError` carried through a `DbErr` (axum's `RequestSession` must answer SeaORM's
        // traits with one) keeps the classification it already had.
        E::Configuration(source) if source.is::<crate::OpsError>() => {
            if let Some(carried) = source.downcast_ref::<crate::OpsError>() {
                return carried.classification();
            }
            ErrorCategory::Configuration
        }
        E::Database(db) => return classify_database(db.as_ref()),
        // The rustls handshake reports a rejected certificate (or no shared protocol) as an I/O
        // error carrying a `rustls::Error`: that fails the same way every time, so it is
        // configuration, not a lost connection.
        E::Io(io) if carries_tls_error(io) => ErrorCategory::Configuration,
        E::Io(io) => io_category(io.kind()),
        // A TLS failure that wraps a socket error is a network problem; anything else (a rejected
        // certificate, no common protocol) fails the same way every time, so it is configuration.
        E::Tls(source) => find_io(source.as_ref())
            .map(|io| io_category(io.kind()))
            .unwrap_or(ErrorCategory::Configuration),
        // sqlx closes a connection after a protocol error or a crashed worker: the session is gone.
        E::Protocol(_) | E::WorkerCrashed => retry(RetryReason::ConnectionLost),
        E::PoolTimedOut => match phase {
            // SeaORM's connect builds a fresh pool and opens one connection; sqlx keeps retrying a
            // refused connect until the acquire timeout, so this means the server was unreachable.
            Phase::Connect => ErrorCategory::Unavailable,
            Phase::Use => retry(RetryReason::PoolExhausted),
        },
        E::PoolClosed => ErrorCategory::Unavailable,
        E::RowNotFound => ErrorCategory::NotFound,
        E::TypeNotFound { .. }
        | E::ColumnIndexOutOfBounds { .. }
        | E::ColumnNotFound(_)
        | E::ColumnDecode { .. }
        | E::Encode(_)
        | E::Decode(_)
        | E::InvalidArgument(_)
        | E::InvalidSavePointStatement
        | E::BeginFailed => ErrorCategory::Programming,
        E::Configuration(_) | E::ConfigFile(_) => ErrorCategory::Configuration,
        // `AnyDriverError`, migration errors and variants added later: look for a cause we know.
        other => {
            return other
                .source()
                .and_then(classify_chain)
                .unwrap_or_else(|| Classification::new(ErrorCategory::Other));
        }
    };
    Classification::new(category)
}

/// Looks along a `source()` chain for an error this module knows how to classify.
fn classify_chain(err: &(dyn StdError + 'static)) -> Option<Classification> {
    let mut current = Some(err);
    while let Some(err) = current {
        if let Some(db_err) = err.downcast_ref::<DbErr>() {
            return Some(classify(db_err));
        }
        if let Some(sqlx_err) = err.downcast_ref::<sqlx::Error>() {
            return Some(classify_sqlx(sqlx_err));
        }
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return Some(Classification::new(io_category(io.kind())));
        }
        current = err.source();
    }
    None
}

fn find_io<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a io::Error> {
    let mut current = Some(err);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return Some(io);
        }
        current = err.source();
    }
    None
}

/// Classifies an error the database server (or SQLite) returned, by the backend's own code.
fn classify_database(err: &(dyn sqlx::error::DatabaseError + 'static)) -> Classification {
    #[cfg(feature = "postgres")]
    if let Some(pg) = err.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        let code = pg.code();
        let category = if code == "08P01" && pgbouncer_refusal(pg.message()) {
            ErrorCategory::Configuration
        } else {
            sqlstate_category(code)
        };
        return Classification::new(category)
            .with_code(code)
            .with_constraint(pg.constraint().map(str::to_owned));
    }

    #[cfg(feature = "mysql")]
    if let Some(my) = err.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        // The MySQL driver has no structured constraint field: the name is only in the message.
        return Classification::new(mysql_category(my.number(), my.code()))
            .with_code(my.number().to_string());
    }

    #[cfg(feature = "sqlite")]
    if let Some(lite) = err.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
        // `code()` is the extended result code rendered in decimal; the driver exposes no number.
        let code = sqlx::error::DatabaseError::code(lite);
        let category = code
            .as_deref()
            .and_then(|c| c.parse::<i32>().ok())
            .map_or(ErrorCategory::Other, sqlite_category);
        let classification = Classification::new(category);
        return match code {
            Some(code) => classification.with_code(code),
            None => classification,
        };
    }

    classify_unknown_database(err)
}

/// Whether an `08P01` message is one of PgBouncer's connect-time refusals of a misconfigured
/// client (PgBouncer 1.18 and later word them so): retrying cannot change the answer.
pub fn pgbouncer_refusal(message: &str) -> bool {
    const REFUSALS: [&str; 9] = [
        "unsupported startup parameter",
        "no such database",
        "no such user",
        "authentication failed",
        "ssl required",
        "not allowed",
        "replication is not supported",
        "no username supplied",
        "is reserved",
    ];
    let message = message.to_ascii_lowercase();
    REFUSALS.iter().any(|r| message.contains(r))
}

/// Whether an I/O error carries a TLS protocol error (a rejected certificate, a failed handshake).
fn carries_tls_error(io: &io::Error) -> bool {
    io.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
}

/// A database error from a driver this build does not know (or whose feature is off): only sqlx's
/// portable `kind()` is trustworthy, because the meaning of `code()` differs between backends.
fn classify_unknown_database(err: &(dyn sqlx::error::DatabaseError + 'static)) -> Classification {
    use sqlx::error::ErrorKind as K;

    let category = match err.kind() {
        K::UniqueViolation => integrity(IntegrityKind::Unique),
        K::ForeignKeyViolation => integrity(IntegrityKind::ForeignKey),
        K::NotNullViolation => integrity(IntegrityKind::NotNull),
        K::CheckViolation => integrity(IntegrityKind::Check),
        K::ExclusionViolation => integrity(IntegrityKind::Exclusion),
        _ => ErrorCategory::Other,
    };
    let classification =
        Classification::new(category).with_constraint(err.constraint().map(str::to_owned));
    match err.code() {
        Some(code) => classification.with_code(code),
        None => classification,
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::fmt;
    use std::sync::Arc;

    use super::*;

    use ErrorCategory::{Configuration, NotFound, Other, Programming, Unavailable};
    use IntegrityKind::Unique;
    use RetryReason::{ConnectionLost, PoolExhausted};

    fn r(reason: RetryReason) -> ErrorCategory {
        ErrorCategory::Retryable(reason)
    }

    fn i(kind: IntegrityKind) -> ErrorCategory {
        ErrorCategory::Integrity(kind)
    }

    #[test]
    fn pgbouncer_refusals_are_told_from_lost_connections() {
        for refusal in [
            "unsupported startup parameter: extra_float_digits",
            "unsupported startup parameter in options: statement_timeout",
            "no such user: app",
            "\"trust\" authentication failed",
            "password authentication failed",
            "SSL required",
        ] {
            assert!(pgbouncer_refusal(refusal), "{refusal}");
        }
        for lost in [
            "server conn crashed?",
            "query_wait_timeout",
            "client_idle_timeout",
            "pgbouncer cannot connect to server",
            "server login has been failing, try again later (server_login_retry)",
            "no more connections allowed (max_client_conn)",
            "idle transaction timeout",
        ] {
            assert!(!pgbouncer_refusal(lost), "{lost}");
        }
    }

    fn sqlx_io(kind: io::ErrorKind) -> Arc<sqlx::Error> {
        Arc::new(sqlx::Error::Io(io::Error::from(kind)))
    }

    #[test]
    fn connection_loss_is_found_inside_exec_and_query() {
        let reset = sqlx_io(io::ErrorKind::ConnectionReset);
        for err in [
            DbErr::Exec(RuntimeErr::SqlxError(reset.clone())),
            DbErr::Query(RuntimeErr::SqlxError(reset.clone())),
            DbErr::Conn(RuntimeErr::SqlxError(reset)),
        ] {
            assert_eq!(classify(&err).category, r(ConnectionLost), "{err:?}");
        }
    }

    #[test]
    fn refused_connect_is_unavailable() {
        let refused = sqlx_io(io::ErrorKind::ConnectionRefused);
        let err = DbErr::Conn(RuntimeErr::SqlxError(refused));
        assert_eq!(classify(&err).category, Unavailable);
    }

    #[test]
    fn pool_timeout_depends_on_where_it_surfaced() {
        let acquire = DbErr::ConnectionAcquire(ConnAcquireErr::Timeout);
        assert_eq!(classify(&acquire).category, r(PoolExhausted));
        assert_eq!(
            classify_sqlx(&sqlx::Error::PoolTimedOut).category,
            r(PoolExhausted)
        );
        let connect = DbErr::Conn(RuntimeErr::SqlxError(Arc::new(sqlx::Error::PoolTimedOut)));
        assert_eq!(classify(&connect).category, Unavailable);
    }

    #[test]
    fn sqlx_variants() {
        use sqlx::Error as E;
        let cases: Vec<(E, ErrorCategory)> = vec![
            (E::PoolClosed, Unavailable),
            (E::WorkerCrashed, r(ConnectionLost)),
            (E::Protocol("bad frame".into()), r(ConnectionLost)),
            (E::RowNotFound, NotFound),
            (E::ColumnNotFound("x".into()), Programming),
            (
                E::TypeNotFound {
                    type_name: "t".into(),
                },
                Programming,
            ),
            (E::ColumnIndexOutOfBounds { index: 3, len: 1 }, Programming),
            (E::Decode("bad".into()), Programming),
            (E::Encode("bad".into()), Programming),
            (E::InvalidArgument("bad".into()), Programming),
            (E::Configuration("bad url".into()), Configuration),
            (
                E::Tls(Box::new(io::Error::from(io::ErrorKind::ConnectionReset))),
                r(ConnectionLost),
            ),
            (E::Tls("certificate rejected".into()), Configuration),
            (
                E::Io(io::Error::new(
                    io::ErrorKind::InvalidData,
                    rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
                )),
                Configuration,
            ),
            (
                E::AnyDriverError(Box::new(io::Error::from(io::ErrorKind::BrokenPipe))),
                r(ConnectionLost),
            ),
            (E::AnyDriverError("opaque".into()), Other),
        ];
        for (err, expected) in cases {
            let got = classify_sqlx(&err);
            assert_eq!(got.category, expected, "{err:?}");
            assert_eq!(got.code, None, "{err:?}");
        }
    }

    #[test]
    fn seaorm_variants() {
        let cases: Vec<(DbErr, ErrorCategory)> = vec![
            (
                DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
                Unavailable,
            ),
            (DbErr::RecordNotFound("x".into()), NotFound),
            (DbErr::RecordNotUpdated, NotFound),
            (DbErr::RecordNotInserted, i(Unique)),
            (DbErr::UnpackInsertId, Programming),
            (DbErr::UpdateGetPrimaryKey, Programming),
            (DbErr::AttrNotSet("id".into()), Programming),
            (DbErr::Type("t".into()), Programming),
            (DbErr::Json("j".into()), Programming),
            (DbErr::ConvertFromU64("u8"), Programming),
            (
                DbErr::KeyArityMismatch {
                    expected: 2,
                    received: 1,
                },
                Programming,
            ),
            (DbErr::PrimaryKeyNotSet { ctx: "update" }, Programming),
            (
                DbErr::BackendNotSupported {
                    db: "sqlite",
                    ctx: "x",
                },
                Programming,
            ),
            (DbErr::Custom("c".into()), Other),
            (DbErr::Migration("m".into()), Other),
            (DbErr::MutexPoisonError, Other),
            (
                DbErr::Conn(RuntimeErr::Internal("Disconnected".into())),
                Unavailable,
            ),
            (DbErr::Exec(RuntimeErr::Internal("x".into())), Other),
            (
                DbErr::Query(RuntimeErr::SqlxError(Arc::new(sqlx::Error::RowNotFound))),
                NotFound,
            ),
            (
                DbErr::TryIntoErr {
                    from: "a",
                    into: "b",
                    source: Arc::new(io::Error::other("x")),
                },
                r(ConnectionLost),
            ),
            (
                DbErr::TryIntoErr {
                    from: "a",
                    into: "b",
                    source: Arc::new(fmt::Error),
                },
                Programming,
            ),
        ];
        for (err, expected) in cases {
            assert_eq!(classify(&err).category, expected, "{err:?}");
        }
    }

    /// A database error from a driver the classifier does not know, to exercise the fallback.
    #[derive(Debug)]
    struct ForeignDbError {
        kind: fn() -> sqlx::error::ErrorKind,
    }

    impl fmt::Display for ForeignDbError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("foreign")
        }
    }

    impl StdError for ForeignDbError {}

    impl sqlx::error::DatabaseError for ForeignDbError {
        fn message(&self) -> &str {
            "foreign"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed("F1"))
        }
        fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn StdError + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn StdError + Send + Sync + 'static> {
            self
        }
        fn constraint(&self) -> Option<&str> {
            Some("c1")
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            (self.kind)()
        }
    }

    #[test]
    fn unknown_driver_uses_portable_kind() {
        let unique = sqlx::Error::Database(Box::new(ForeignDbError {
            kind: || sqlx::error::ErrorKind::UniqueViolation,
        }));
        let got = classify_sqlx(&unique);
        assert_eq!(got.category, i(Unique));
        assert_eq!(got.code.as_deref(), Some("F1"));
        assert_eq!(got.constraint.as_deref(), Some("c1"));

        let other = sqlx::Error::Database(Box::new(ForeignDbError {
            kind: || sqlx::error::ErrorKind::Other,
        }));
        assert_eq!(classify_sqlx(&other).category, Other);
    }
}
