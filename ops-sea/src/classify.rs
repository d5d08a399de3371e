// This file is over 700 lines because its unit tests live at its end; the code above them is one
// concern.
//! Classifies SeaORM and sqlx errors into ops categories from codes, never from message text.
//!
//! [`classify`] takes a SeaORM [`DbErr`], [`classify_sqlx`] a bare [`sqlx::Error`] (for code that
//! talks to a sqlx pool directly). Both look through SeaORM's wrappers (`Conn`, `Exec` and `Query`
//! all carry driver errors, and a connection lost in the middle of a query arrives as `Exec` or
//! `Query`, not as `Conn`), downcast database errors to the backend's own type, and read its code
//! from one of four tables, each public so that other integrations can share them:
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

/// The category of a socket error.
///
/// A connect that was refused or could not be routed (or a Unix socket that does not exist) means
/// the database is unreachable: [`ErrorCategory::Unavailable`]. These kinds cannot happen on an
/// established connection. A socket permission error is [`ErrorCategory::Configuration`]. Every
/// other kind (reset, aborted, broken pipe, unexpected end of stream, timed out, ...) means an
/// open connection broke: `Retryable(ConnectionLost)`.
pub fn io_category(kind: io::ErrorKind) -> ErrorCategory {
    use io::ErrorKind as K;
    match kind {
        K::ConnectionRefused
        | K::NotFound
        | K::HostUnreachable
        | K::NetworkUnreachable
        | K::AddrNotAvailable
        | K::NetworkDown => ErrorCategory::Unavailable,
        K::PermissionDenied => ErrorCategory::Configuration,
        _ => retry(RetryReason::ConnectionLost),
    }
}

/// The category of a PostgreSQL SQLSTATE (also the standard meaning for other SQLSTATE backends).
///
/// Specific codes are matched first, then the two-character class. Codes not listed are
/// [`ErrorCategory::Other`].
pub fn sqlstate_category(code: &str) -> ErrorCategory {
    match code {
        // Class 23, integrity constraint violation.
        "23505" => integrity(IntegrityKind::Unique),
        // 23001 restrict_violation is raised by a RESTRICT foreign-key action.
        "23503" | "23001" => integrity(IntegrityKind::ForeignKey),
        "23502" => integrity(IntegrityKind::NotNull),
        "23514" => integrity(IntegrityKind::Check),
        "23P01" => integrity(IntegrityKind::Exclusion),

        // Class 40, transaction rollback. 40001 also covers a hot standby's recovery conflicts.
        "40001" => retry(RetryReason::SerializationFailure),
        "40P01" => retry(RetryReason::Deadlock),
        // 72000 snapshot_too_old: the same work on a new snapshot succeeds.
        "72000" => retry(RetryReason::SerializationFailure),

        "55P03" => retry(RetryReason::LockTimeout),
        // 57014 query_canceled: statement_timeout, or a cancel request.
        "57014" => retry(RetryReason::StatementTimeout),

        // Refused at connect: the server is starting up or shutting down (57P03), or has no
        // connection slot left (53300). A later connection may work.
        "57P03" | "53300" => retry(RetryReason::ServerUnavailable),
        // FATAL errors that end this session: terminated by an administrator or a shutdown, by
        // another backend's crash, by the idle-session or idle-in-transaction timeouts. See the
        // module documentation for why these are a lost connection and not an unavailable server.
        "57P01" | "57P02" | "57P05" | "25P03" => retry(RetryReason::ConnectionLost),
        // The database this session used was dropped underneath it.
        "57P04" => ErrorCategory::Unavailable,

        // A subquery or STRICT INTO found several rows where one was expected.
        "21000" | "P0003" => ErrorCategory::MultipleResults,
        // PL/pgSQL `SELECT ... INTO STRICT` found no row.
        "P0002" => ErrorCategory::NotFound,

        "42501" => ErrorCategory::Configuration,
        "3D000" => ErrorCategory::Configuration,

        _ => match code.get(..2) {
            Some("08") => retry(RetryReason::ConnectionLost),
            // Other integrity violations (23000) are reported as a broken rule.
            Some("23") => integrity(IntegrityKind::Check),
            Some("28") | Some("F0") => ErrorCategory::Configuration,
            Some("53") | Some("58") => ErrorCategory::Unavailable,
            // Syntax and access rules, data exceptions, feature not supported, invalid
            // transaction state or initiation or termination, savepoints, cursors, prepared
            // statement names, invalid schema, program limits.
            Some("42") | Some("22") | Some("0A") | Some("25") | Some("0B") | Some("2D")
            | Some("3B") | Some("24") | Some("34") | Some("26") | Some("3F") | Some("54") => {
                ErrorCategory::Programming
            }
            _ => ErrorCategory::Other,
        },
    }
}

/// The category of a MySQL or MariaDB error number, with the SQLSTATE the server sent beside it.
///
/// The number decides; MySQL uses SQLSTATE only as a coarse class (it reports a deadlock as
/// `40001`, for example). The SQLSTATE is consulted for `4025`, which means a failed CHECK on
/// MariaDB (`23000`) and something unrelated on MySQL, and as a fallback for numbers not listed.
pub fn mysql_category(number: u16, sqlstate: Option<&str>) -> ErrorCategory {
    match number {
        1213 => retry(RetryReason::Deadlock),
        1205 => retry(RetryReason::LockTimeout),
        // 1020: MariaDB's snapshot isolation found the row changed; 1412: the table definition
        // changed under a consistent snapshot. The server asks to retry the transaction in both.
        1020 | 1412 => retry(RetryReason::SerializationFailure),
        // 1969 MariaDB max_statement_time, 3024 MySQL max_execution_time, 1317 query interrupted
        // (KILL QUERY), the counterpart of PostgreSQL's 57014.
        1969 | 3024 | 1317 => retry(RetryReason::StatementTimeout),

        // Duplicate key: DDL, DML, NDB, named key, concurrent index build, and duplicates caused by
        // a cascading foreign-key action.
        1022 | 1062 | 1169 | 1586 | 1859 | 1557 | 1761 | 1762 => integrity(IntegrityKind::Unique),
        1451 | 1452 | 1216 | 1217 | 1830 | 1834 => integrity(IntegrityKind::ForeignKey),
        1048 | 1364 => integrity(IntegrityKind::NotNull),
        3819 => integrity(IntegrityKind::Check),
        4025 if sqlstate == Some("23000") => integrity(IntegrityKind::Check),

        // Client-side "server has gone away" / "lost connection" numbers, a killed connection, a
        // session ended by a server shutdown, and the network errors the server reports for this
        // session: the session is gone (see the module documentation).
        2006 | 2013 | 2055 | 1927 | 1053 | 1152 | 1158 | 1159 | 1160 | 1161 => {
            retry(RetryReason::ConnectionLost)
        }
        // Too many connections, server-wide or for this user: refused at connect.
        1040 | 1203 => retry(RetryReason::ServerUnavailable),

        // Access denied (user, database, table, column, privilege), unknown database, no database
        // selected, an authentication plugin the client cannot speak.
        1045 | 1044 | 1142 | 1143 | 1227 | 1698 | 1049 | 1046 | 1251 => {
            ErrorCategory::Configuration
        }

        // Subquery or SELECT ... INTO returned more than one row.
        1242 | 1172 => ErrorCategory::MultipleResults,

        // Syntax error, unknown table or column, ambiguous column, table exists, wrong value
        // count, data too long, out of range, incorrect value, division by zero, writing in a
        // read-only transaction, unknown function.
        1064 | 1146 | 1054 | 1109 | 1051 | 1052 | 1050 | 1060 | 1136 | 1406 | 1264 | 1366
        | 1365 | 1292 | 1792 | 1305 | 1149 => ErrorCategory::Programming,

        _ => match sqlstate.and_then(|s| s.get(..2)) {
            Some("08") => retry(RetryReason::ConnectionLost),
            Some("23") => integrity(IntegrityKind::Check),
            Some("28") | Some("3D") => ErrorCategory::Configuration,
            Some("42") | Some("22") | Some("0A") | Some("21") | Some("25") => {
                ErrorCategory::Programming
            }
            _ => ErrorCategory::Other,
        },
    }
}

/// The category of a SQLite extended result code.
///
/// The extended code decides where it is more precise than the primary code (`code & 0xff`).
pub fn sqlite_category(extended: i32) -> ErrorCategory {
    match extended {
        // SQLITE_BUSY_SNAPSHOT: a WAL read transaction cannot be upgraded to a write because
        // another connection wrote since it started. Only a new transaction helps, like 40001.
        517 => retry(RetryReason::SerializationFailure),
        2067 | 1555 | 2579 => integrity(IntegrityKind::Unique),
        787 => integrity(IntegrityKind::ForeignKey),
        1299 => integrity(IntegrityKind::NotNull),
        // CHECK, and RAISE(ABORT) in a trigger, which is how SQLite schemas enforce other rules.
        275 | 1811 => integrity(IntegrityKind::Check),
        // SQLITE_CONSTRAINT_DATATYPE: a value of the wrong type for a STRICT table's column.
        3091 => ErrorCategory::Programming,
        // Plain SQLITE_READONLY: a write where the connection may only read. A `read_only`
        // session (ops runs it with `PRAGMA query_only`) or a `mode=ro` URL: the code wrote where
        // it said it would not, the same mistake as PostgreSQL's 25006 and MySQL's 1792, and the
        // same category. A database file the process cannot write fails already at connect,
        // where ops turns on WAL. The extended READONLY codes (RECOVERY, CANTLOCK, ROLLBACK,
        // DBMOVED, CANTINIT, DIRECTORY) are about the files and stay `Configuration` below.
        8 => ErrorCategory::Programming,
        _ => match extended & 0xff {
            // SQLITE_BUSY (and BUSY_RECOVERY, BUSY_TIMEOUT), SQLITE_LOCKED (shared cache, virtual
            // tables) and SQLITE_PROTOCOL (a file-lock race): another connection holds the lock.
            5 | 6 | 15 => retry(RetryReason::Busy),
            // SQLITE_INTERRUPT: sqlite3_interrupt, the counterpart of a statement timeout.
            9 => retry(RetryReason::StatementTimeout),
            // Other constraint failures (commit hooks, virtual tables, functions).
            19 => integrity(IntegrityKind::Check),
            // SQLITE_ERROR: SQL error or missing table or column. MISMATCH, MISUSE, RANGE, TOOBIG.
            1 | 20 | 21 | 25 | 18 => ErrorCategory::Programming,
            // PERM, READONLY, CANTOPEN, AUTH, NOTADB: the file or its permissions are wrong.
            3 | 8 | 14 | 23 | 26 => ErrorCategory::Configuration,
            // IOERR, CORRUPT, FULL: the storage under the database failed and needs a person.
            10 | 11 | 13 => ErrorCategory::Unavailable,
            _ => ErrorCategory::Other,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::fmt;
    use std::sync::Arc;

    use super::*;

    use ErrorCategory::{
        Configuration, MultipleResults, NotFound, Other, Programming, Unavailable,
    };
    use IntegrityKind::{Check, Exclusion, ForeignKey, NotNull, Unique};
    use RetryReason::{
        Busy, ConnectionLost, Deadlock, LockTimeout, PoolExhausted, SerializationFailure,
        ServerUnavailable, StatementTimeout,
    };

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

    #[test]
    fn sqlstate_table() {
        let cases: &[(&str, ErrorCategory)] = &[
            ("08000", r(ConnectionLost)),
            ("08006", r(ConnectionLost)),
            ("08P01", r(ConnectionLost)),
            ("57P01", r(ConnectionLost)),
            ("57P02", r(ConnectionLost)),
            ("57P03", r(ServerUnavailable)),
            ("57P04", Unavailable),
            ("57P05", r(ConnectionLost)),
            ("25P03", r(ConnectionLost)),
            ("53300", r(ServerUnavailable)),
            ("53100", Unavailable),
            ("53200", Unavailable),
            ("58030", Unavailable),
            ("40001", r(SerializationFailure)),
            ("40P01", r(Deadlock)),
            ("55P03", r(LockTimeout)),
            ("57014", r(StatementTimeout)),
            ("23505", i(Unique)),
            ("23503", i(ForeignKey)),
            ("23001", i(ForeignKey)),
            ("23502", i(NotNull)),
            ("23514", i(Check)),
            ("23P01", i(Exclusion)),
            ("23000", i(Check)),
            ("42601", Programming),
            ("42P01", Programming),
            ("42703", Programming),
            ("42501", Configuration),
            ("22P02", Programming),
            ("22012", Programming),
            ("25P02", Programming),
            ("25006", Programming),
            ("0A000", Programming),
            ("28000", Configuration),
            ("28P01", Configuration),
            ("3D000", Configuration),
            ("21000", MultipleResults),
            ("P0002", NotFound),
            ("P0003", MultipleResults),
            ("XX000", Other),
            ("P0001", Other),
            ("", Other),
            ("4", Other),
        ];
        for (code, expected) in cases {
            assert_eq!(sqlstate_category(code), *expected, "SQLSTATE {code}");
        }
    }

    #[test]
    fn mysql_table() {
        let cases: &[(u16, Option<&str>, ErrorCategory)] = &[
            (1213, Some("40001"), r(Deadlock)),
            (1205, Some("HY000"), r(LockTimeout)),
            (1969, Some("70100"), r(StatementTimeout)),
            (3024, Some("HY000"), r(StatementTimeout)),
            (1317, Some("70100"), r(StatementTimeout)),
            (1062, Some("23000"), i(Unique)),
            (1586, Some("23000"), i(Unique)),
            (1451, Some("23000"), i(ForeignKey)),
            (1452, Some("23000"), i(ForeignKey)),
            (1216, Some("23000"), i(ForeignKey)),
            (1217, Some("23000"), i(ForeignKey)),
            (1048, Some("23000"), i(NotNull)),
            (1364, Some("HY000"), i(NotNull)),
            (3819, Some("HY000"), i(Check)),
            (4025, Some("23000"), i(Check)),
            // MySQL uses 4025 for an unrelated error with another SQLSTATE.
            (4025, Some("HY000"), Other),
            (2006, None, r(ConnectionLost)),
            (2013, None, r(ConnectionLost)),
            (2055, None, r(ConnectionLost)),
            (1927, Some("70100"), r(ConnectionLost)),
            (1053, Some("08S01"), r(ConnectionLost)),
            (1040, Some("08004"), r(ServerUnavailable)),
            (1045, Some("28000"), Configuration),
            (1044, Some("42000"), Configuration),
            (1049, Some("42000"), Configuration),
            (1064, Some("42000"), Programming),
            (1146, Some("42S02"), Programming),
            (1054, Some("42S22"), Programming),
            (1242, Some("21000"), MultipleResults),
            // Unlisted numbers fall back to the SQLSTATE class.
            (1184, Some("08S01"), r(ConnectionLost)),
            (9999, Some("23000"), i(Check)),
            (9998, Some("42000"), Programming),
            (9997, Some("HY000"), Other),
            (9996, None, Other),
        ];
        for (number, state, expected) in cases {
            assert_eq!(
                mysql_category(*number, *state),
                *expected,
                "MySQL {number} ({state:?})"
            );
        }
    }

    #[test]
    fn sqlite_table() {
        let cases: &[(i32, ErrorCategory)] = &[
            (5, r(Busy)),
            (261, r(Busy)),
            (773, r(Busy)),
            (517, r(SerializationFailure)),
            (6, r(Busy)),
            (262, r(Busy)),
            (2067, i(Unique)),
            (1555, i(Unique)),
            (787, i(ForeignKey)),
            (1299, i(NotNull)),
            (275, i(Check)),
            (1811, i(Check)),
            (19, i(Check)),
            (3091, Programming),
            (1, Programming),
            (8, Programming),
            (264, Configuration),
            (1032, Configuration),
            (14, Configuration),
            (26, Configuration),
            (10, Unavailable),
            (266, Unavailable),
            (13, Unavailable),
            (9, r(StatementTimeout)),
            (7, Other),
        ];
        for (code, expected) in cases {
            assert_eq!(sqlite_category(*code), *expected, "SQLite {code}");
        }
    }

    #[test]
    fn io_kinds() {
        use io::ErrorKind as K;
        assert_eq!(io_category(K::ConnectionRefused), Unavailable);
        assert_eq!(io_category(K::HostUnreachable), Unavailable);
        assert_eq!(io_category(K::NotFound), Unavailable);
        assert_eq!(io_category(K::PermissionDenied), Configuration);
        for kind in [
            K::ConnectionReset,
            K::ConnectionAborted,
            K::BrokenPipe,
            K::UnexpectedEof,
            K::TimedOut,
            K::Other,
        ] {
            assert_eq!(io_category(kind), r(ConnectionLost), "{kind:?}");
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
