//! The code tables: a backend's error code to an [`ErrorCategory`]. They read codes only, never
//! message text, and use no driver type, so every integration (`ops-sea`'s `classify`, or one
//! for sqlx or Diesel) shares them.
//!
//! | source | table | code |
//! | --- | --- | --- |
//! | PostgreSQL | [`sqlstate_category`] | the SQLSTATE, e.g. `23505` |
//! | MySQL / MariaDB | [`mysql_category`] | the error number, e.g. `1062` |
//! | SQLite | [`sqlite_category`] | the extended result code, e.g. `2067` |
//! | sockets | [`io_category`] | an [`io::ErrorKind`] |
//!
//! Why the less obvious rows are what they are (a FATAL error that ends the session is a lost
//! connection, `53300` is a retryable refusal, missing privileges are `Configuration`, a write in
//! a read-only session is `Programming` on every backend) is written next to them and, with the
//! driver-side rules, in `ops_sea::classify`.

use std::io;

use crate::{ErrorCategory, IntegrityKind, RetryReason};

const fn retry(reason: RetryReason) -> ErrorCategory {
    ErrorCategory::Retryable(reason)
}

const fn integrity(kind: IntegrityKind) -> ErrorCategory {
    ErrorCategory::Integrity(kind)
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
        // another backend's crash, by the idle-session or idle-in-transaction timeouts. See
        // `ops_sea::classify` for why these are a lost connection and not an unavailable server.
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
        // session: the session is gone (see `ops_sea::classify`).
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
    use super::*;

    use ErrorCategory::{
        Configuration, MultipleResults, NotFound, Other, Programming, Unavailable,
    };
    use IntegrityKind::{Check, Exclusion, ForeignKey, NotNull, Unique};
    use RetryReason::{
        Busy, ConnectionLost, Deadlock, LockTimeout, SerializationFailure, ServerUnavailable,
        StatementTimeout,
    };

    fn r(reason: RetryReason) -> ErrorCategory {
        ErrorCategory::Retryable(reason)
    }

    fn i(kind: IntegrityKind) -> ErrorCategory {
        ErrorCategory::Integrity(kind)
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
}
