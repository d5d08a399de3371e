//! PgBouncer in transaction pooling mode (`?pgbouncer=true`, `DB_PGBOUNCER=transaction`).
//!
//! Behind a transaction-pooling PgBouncer a client holds a server connection only from `BEGIN`
//! to `COMMIT` or `ROLLBACK`. Between transactions, and between the protocol exchanges of one
//! statement sent outside a transaction, PgBouncer may hand the next message to another server
//! connection, one that other clients use too. In this mode ops therefore:
//!
//! - sends no startup-packet parameters PgBouncer refuses: no `extra_float_digits`, no `options`
//!   (where ops used to put `statement_timeout`). The statement timeout is set with `SET LOCAL`
//!   in the `BEGIN` of every transaction instead, in the same round trip;
//! - prepares no named statements: sqlx's statement cache is off and every statement is sent
//!   unnamed (`persistent(false)`). SeaORM's own executors always ask sqlx for named statements,
//!   so the statements of sessions and of `Db` run on [`Txn`] here, not on SeaORM's;
//! - runs every prepared statement inside a transaction: sqlx sends an unnamed statement in two
//!   exchanges (Parse/Describe/Sync, then Bind/Execute/Sync), and only inside a transaction do
//!   both reach the same server connection. A statement on `Db` outside a session gets a
//!   transaction of its own (`BEGIN`, two exchanges, `COMMIT`);
//! - refuses what transaction pooling cannot support ([`refusal`]): session-level `SET`,
//!   `LISTEN`, `PREPARE`, session advisory locks, temporary tables that outlive the transaction,
//!   `WITH HOLD` cursors. They would leak to other clients or silently vanish.
//!
//! Reset-on-return is unchanged: a client connection returned inside a transaction pins its
//! server connection, and the pool's check rolls it back before anyone reuses it.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{DbErr, ExecResult, QueryResult, RuntimeErr, Statement};
use sea_query_sqlx::SqlxValues;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgTransactionManager};
use sqlx::{AssertSqlSafe, Executor as _, Postgres, SqlSafeStr as _};
use sqlx_core::transaction::TransactionManager;

use super::raw::{acquire_err, exec_err, query_err};
use tokio::sync::Mutex;

/// The connect options for a PostgreSQL server behind PgBouncer: no statement cache and nothing
/// in the startup packet beyond what PgBouncer tracks itself (user, database, `DateStyle`,
/// `client_encoding`, `TimeZone`, `application_name`).
pub(crate) fn connect_options(options: PgConnectOptions) -> PgConnectOptions {
    options.statement_cache_capacity(0).extra_float_digits(None)
}

/// The statement that opens a transaction with its settings, in one simple-query round trip:
/// `BEGIN [ISOLATION LEVEL ...] [READ ONLY]` and, when there is one, the statement timeout set
/// local to this transaction.
pub(crate) fn begin_sql(
    isolation: Option<&str>,
    read_only: bool,
    statement_timeout: Option<Duration>,
) -> String {
    let mut sql = String::from("BEGIN");
    if let Some(level) = isolation {
        sql.push_str(" ISOLATION LEVEL ");
        sql.push_str(level);
    }
    if read_only {
        sql.push_str(" READ ONLY");
    }
    if let Some(timeout) = statement_timeout {
        let ms = timeout.as_millis().max(1);
        sql.push_str(&format!("; SET LOCAL statement_timeout = {ms}"));
    }
    sql
}

/// A transaction (or a savepoint inside one) on a pooled connection, running every statement
/// unnamed. Clones of a session share the connection through the mutex; a savepoint is a `Txn`
/// one level deeper on the same connection.
///
/// Dropped while open, it queues its `ROLLBACK` (or `ROLLBACK TO SAVEPOINT`) on the connection,
/// which sqlx sends before the connection's next use; a root transaction's connection then goes
/// back to the pool, whose reset-on-return check makes sure nothing stays open.
pub(crate) struct Txn {
    conn: Arc<Mutex<PoolConnection<Postgres>>>,
    /// 1 for the transaction, 2 and more for savepoints.
    depth: usize,
    open: bool,
}

impl std::fmt::Debug for Txn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Txn")
            .field("depth", &self.depth)
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}

impl Txn {
    /// Takes a connection from `pool` and opens a transaction on it with `begin` (see
    /// [`begin_sql`]).
    pub(crate) async fn begin(pool: &sqlx::PgPool, begin: String) -> Result<Txn, DbErr> {
        let mut conn = pool.acquire().await.map_err(acquire_err)?;
        // A connection whose last transaction ended outside sqlx's transaction manager (the
        // pool's reset-on-return sends a raw ROLLBACK) still counts that transaction: settle the
        // count, or sqlx would refuse the custom BEGIN. The queued ROLLBACK is a no-op on the
        // server, sent in the same flush as the BEGIN.
        while PgTransactionManager::get_transaction_depth(&conn) > 0 {
            PgTransactionManager::start_rollback(&mut conn);
        }
        PgTransactionManager::begin(&mut conn, Some(AssertSqlSafe(begin).into_sql_str()))
            .await
            .map_err(query_err)?;
        Ok(Txn {
            conn: Arc::new(Mutex::new(conn)),
            depth: 1,
            open: true,
        })
    }

    /// A savepoint inside this transaction.
    pub(crate) async fn nested(&self) -> Result<Txn, DbErr> {
        let mut conn = self.conn.lock().await;
        PgTransactionManager::begin(&mut conn, None)
            .await
            .map_err(query_err)?;
        Ok(Txn {
            conn: self.conn.clone(),
            depth: PgTransactionManager::get_transaction_depth(&conn),
            open: true,
        })
    }

    /// Commits the transaction, or releases the savepoint.
    pub(crate) async fn commit(mut self) -> Result<(), DbErr> {
        let mut conn = self.conn.lock().await;
        if PgTransactionManager::get_transaction_depth(&conn) != self.depth {
            return Err(DbErr::Custom(
                "a savepoint inside this transaction is still open: finish it first".to_owned(),
            ));
        }
        // Still open until the server answered: if this future is dropped mid-commit, or the
        // commit fails, `Drop` queues a ROLLBACK (a no-op when the COMMIT got through) and sqlx's
        // transaction count stays right.
        PgTransactionManager::commit(&mut conn)
            .await
            .map_err(exec_err)?;
        self.open = false;
        Ok(())
    }

    /// Rolls the transaction back, or back to the savepoint.
    pub(crate) async fn rollback(mut self) -> Result<(), DbErr> {
        let mut conn = self.conn.lock().await;
        while PgTransactionManager::get_transaction_depth(&conn) >= self.depth {
            PgTransactionManager::rollback(&mut conn)
                .await
                .map_err(exec_err)?;
        }
        self.open = false;
        Ok(())
    }

    /// Runs a statement that returns no rows.
    pub(crate) async fn execute(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        refuse(&stmt.sql)?;
        let mut conn = self.conn.lock().await;
        let values = stmt.values.unwrap_or(sea_orm::Values(Vec::new()));
        sqlx::query_with(AssertSqlSafe(stmt.sql), SqlxValues(values))
            .persistent(false)
            .execute(&mut **conn)
            .await
            .map(ExecResult::from)
            .map_err(exec_err)
    }

    /// Runs SQL as it is, through the simple-query protocol (one exchange, nothing prepared).
    pub(crate) async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        refuse(sql)?;
        let mut conn = self.conn.lock().await;
        conn.execute(AssertSqlSafe(sql.to_owned()))
            .await
            .map(ExecResult::from)
            .map_err(exec_err)
    }

    /// Runs a query and returns its first row, if any.
    pub(crate) async fn query_one(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        refuse(&stmt.sql)?;
        let mut conn = self.conn.lock().await;
        let values = stmt.values.unwrap_or(sea_orm::Values(Vec::new()));
        sqlx::query_with(AssertSqlSafe(stmt.sql), SqlxValues(values))
            .persistent(false)
            .fetch_optional(&mut **conn)
            .await
            .map(|row| row.map(QueryResult::from))
            .map_err(query_err)
    }

    /// Streams a `COPY ... FROM STDIN` inside this transaction (see `pool::copy`). One statement,
    /// atomic on its own: a failure aborts the transaction, as a failed `INSERT` would.
    pub(crate) async fn copy_in(
        &self,
        sql: &str,
        chunks: super::copy::CopyChunks<'_>,
    ) -> Result<u64, DbErr> {
        let mut conn = self.conn.lock().await;
        super::copy::copy_in(&mut conn, sql, chunks).await
    }

    /// Runs a query and returns all its rows.
    pub(crate) async fn query_all(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        refuse(&stmt.sql)?;
        let mut conn = self.conn.lock().await;
        let values = stmt.values.unwrap_or(sea_orm::Values(Vec::new()));
        sqlx::query_with(AssertSqlSafe(stmt.sql), SqlxValues(values))
            .persistent(false)
            .fetch_all(&mut **conn)
            .await
            .map(|rows| rows.into_iter().map(QueryResult::from).collect())
            .map_err(query_err)
    }
}

impl Drop for Txn {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        // A statement future holding the lock borrows this `Txn`, so none can be alive here;
        // `try_lock` only fails if a clone of the handle is mid-statement, and then the pool's
        // reset-on-return still rolls the transaction back when the connection comes home.
        if let Ok(mut conn) = self.conn.try_lock() {
            while PgTransactionManager::get_transaction_depth(&conn) >= self.depth {
                PgTransactionManager::start_rollback(&mut conn);
            }
        }
    }
}

/// Runs one statement on `Db` outside a session: in a transaction of its own, so the two
/// exchanges of an unnamed statement reach one server connection.
pub(crate) async fn one_shot<T, F, Fut>(
    pool: &sqlx::PgPool,
    statement_timeout: Option<Duration>,
    sql: &str,
    run: F,
) -> Result<T, DbErr>
where
    F: FnOnce(Txn) -> Fut,
    Fut: std::future::Future<Output = (Txn, Result<T, DbErr>)>,
{
    // Refused before a connection is taken: the error costs no round trip.
    refuse(sql)?;
    let txn = Txn::begin(pool, begin_sql(None, false, statement_timeout)).await?;
    let (txn, result) = run(txn).await;
    match result {
        Ok(value) => {
            txn.commit().await?;
            Ok(value)
        }
        // The transaction is aborted; dropping it queues the ROLLBACK.
        Err(err) => Err(err),
    }
}

/// What `TransactionTrait::begin` on a session answers behind PgBouncer: a SeaORM transaction
/// there would prepare named statements.
pub(crate) fn no_sea_transaction() -> DbErr {
    configuration(refusal_message(
        "a SeaORM `DatabaseTransaction` inside a session prepares named statements: use \
         `session.nested()` for a savepoint",
    ))
}

fn configuration(message: String) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(Arc::new(sqlx::Error::Configuration(
        message.into(),
    ))))
}

/// `refusal` as the error a statement method returns: classified `Configuration`.
pub(crate) fn refuse(sql: &str) -> Result<(), DbErr> {
    match refusal(sql) {
        None => Ok(()),
        Some(reason) => Err(configuration(reason)),
    }
}

/// The reason `sql` cannot run behind PgBouncer in transaction pooling mode, or `None`.
///
/// PgBouncer's documentation lists what transaction pooling breaks: state kept on the server
/// connection past the transaction, which the next client of that connection would inherit, or
/// which this client would not find on its next transaction. String literals, quoted names and
/// comments are skipped, so `SELECT 'SET x = 1'` is fine.
pub fn refusal(sql: &str) -> Option<String> {
    let code = strip_literals(sql);
    for statement in code.split(';') {
        let words: Vec<String> = statement
            .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',')
            .filter(|w| !w.is_empty())
            .take(6)
            .map(str::to_ascii_lowercase)
            .collect();
        let word = |i: usize| words.get(i).map_or("", String::as_str);
        let problem = match word(0) {
            "set" if !matches!(word(1), "local" | "transaction" | "constraints") => Some(
                "a session-level `SET` stays on a server connection other clients share: use \
                 `SET LOCAL` inside a session, or set it on the role (`ALTER ROLE ... SET`)",
            ),
            "reset" => Some(
                "`RESET` changes a server connection other clients share: use `SET LOCAL` inside \
                 a session",
            ),
            "listen" => Some(
                "`LISTEN` needs one server connection for the whole session, and notifications \
                 would go to whichever client holds it: listen on a direct connection to the \
                 server",
            ),
            "prepare" if word(1) != "transaction" => Some(
                "a named prepared statement (`PREPARE`) exists only on one server connection: \
                 send the statement with parameters instead",
            ),
            "declare" if statement.to_ascii_lowercase().contains(" with hold") => Some(
                "a `WITH HOLD` cursor outlives the transaction: use a cursor without `WITH HOLD` \
                 inside a session",
            ),
            "create" if creates_session_temp_table(&words, statement) => Some(
                "a temporary table outlives the transaction: add `ON COMMIT DROP` and use it \
                 inside one session",
            ),
            "load" => Some("`LOAD` changes a server connection other clients share"),
            _ => None,
        };
        if let Some(problem) = problem {
            return Some(refusal_message(problem));
        }
        let lower = statement.to_ascii_lowercase();
        if [
            "pg_advisory_lock",
            "pg_advisory_lock_shared",
            "pg_try_advisory_lock",
            "pg_try_advisory_lock_shared",
            "pg_advisory_unlock",
            "pg_advisory_unlock_shared",
            "pg_advisory_unlock_all",
        ]
        .iter()
        .any(|f| calls(&lower, f))
        {
            return Some(refusal_message(
                "a session-level advisory lock stays on a server connection other clients \
                 share: use `pg_advisory_xact_lock` (released at the end of the transaction) \
                 inside a session",
            ));
        }
        if session_set_config(&lower) {
            return Some(refusal_message(
                "`set_config(..., false)` changes a server connection other clients share: pass \
                 `true` (local to the transaction) inside a session",
            ));
        }
    }
    None
}

fn refusal_message(problem: &str) -> String {
    format!(
        "not supported behind PgBouncer in transaction pooling mode (DB_PGBOUNCER=transaction or \
         ?pgbouncer=true): {problem}"
    )
}

fn creates_session_temp_table(words: &[String], statement: &str) -> bool {
    let temp = words
        .iter()
        .skip(1)
        .take(2)
        .any(|w| w == "temp" || w == "temporary");
    temp && !statement
        .to_ascii_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .contains("on commit drop")
}

/// Whether `lower` calls the function `name` (followed by an opening parenthesis).
fn calls(lower: &str, name: &str) -> bool {
    lower.match_indices(name).any(|(at, _)| {
        let before_ok = lower[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        let after = lower[at + name.len()..].trim_start();
        before_ok && after.starts_with('(')
    })
}

/// Whether `lower` calls `set_config` with `is_local` false.
fn session_set_config(lower: &str) -> bool {
    lower.match_indices("set_config").any(|(at, _)| {
        let rest = lower[at + "set_config".len()..].trim_start();
        let Some(args) = rest.strip_prefix('(') else {
            return false;
        };
        let end = args.find(')').unwrap_or(args.len());
        args[..end]
            .rsplit(',')
            .next()
            .is_some_and(|last| last.trim() == "false")
    })
}

/// `sql` with string literals, quoted identifiers, dollar-quoted bodies and comments replaced by
/// a space, so that only code is searched.
fn strip_literals(sql: &str) -> String {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\'' | b'"' => {
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == c {
                        // A doubled quote is an escaped quote inside the literal.
                        if bytes.get(i + 1) == Some(&c) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
                out.push(' ');
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                out.push(' ');
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
                out.push(' ');
            }
            b'$' => {
                // `$tag$ ... $tag$`; a `$1` parameter has no closing `$` right after digits.
                let tag_end = sql[i + 1..]
                    .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                    .map(|n| i + 1 + n);
                match tag_end {
                    Some(end)
                        if bytes[end] == b'$'
                            && !sql[i + 1..end].starts_with(|ch: char| ch.is_ascii_digit()) =>
                    {
                        let tag = &sql[i..=end];
                        match sql[end + 1..].find(tag) {
                            Some(close) => i = end + 1 + close + tag.len(),
                            None => i = bytes.len(),
                        }
                        out.push(' ');
                    }
                    _ => {
                        out.push('$');
                        i += 1;
                    }
                }
            }
            _ => {
                // Copy one UTF-8 character whole.
                let ch = sql[i..].chars().next().unwrap_or(' ');
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begin_carries_the_settings_in_one_round_trip() {
        assert_eq!(begin_sql(None, false, None), "BEGIN");
        assert_eq!(
            begin_sql(Some("SERIALIZABLE"), true, Some(Duration::from_secs(5))),
            "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY; SET LOCAL statement_timeout = 5000"
        );
    }

    #[test]
    fn session_state_is_refused() {
        for sql in [
            "SET statement_timeout = 1",
            "  set search_path to public",
            "SET SESSION work_mem = '64MB'",
            "SET ROLE app",
            "RESET ALL",
            "LISTEN jobs",
            "PREPARE p AS SELECT 1",
            "SELECT pg_advisory_lock(42)",
            "select PG_TRY_ADVISORY_LOCK (1, 2)",
            "SELECT pg_advisory_unlock_all()",
            "CREATE TEMP TABLE scratch (x INT)",
            "CREATE TEMPORARY TABLE scratch (x INT)",
            "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
            "SELECT set_config('work_mem', '64MB', false)",
            "SELECT 1; SET work_mem = '1MB'",
            "LOAD 'auto_explain'",
        ] {
            let reason = refusal(sql).unwrap_or_else(|| panic!("{sql} was not refused"));
            assert!(
                reason.starts_with("not supported behind PgBouncer"),
                "{reason}"
            );
        }
    }

    #[test]
    fn transaction_scoped_forms_and_literals_pass() {
        for sql in [
            "SET LOCAL statement_timeout = 1000",
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "SET CONSTRAINTS ALL DEFERRED",
            "SELECT pg_advisory_xact_lock(42)",
            "CREATE TEMP TABLE scratch (x INT) ON COMMIT DROP",
            "SELECT set_config('work_mem', '64MB', true)",
            "SELECT 'SET statement_timeout = 1' AS not_a_command",
            "SELECT \"listen\" FROM t",
            "INSERT INTO t (body) VALUES ($1) -- SET x = 1",
            "SELECT $$ LISTEN x; SET y = 2 $$",
            "UPDATE settings SET value = $1 WHERE key = $2",
            "PREPARE TRANSACTION 'tx1'",
            "CREATE TABLE pg_advisory_lock_log (x INT)",
            "DECLARE c CURSOR FOR SELECT 1",
            "BEGIN; INSERT INTO items VALUES (1)",
        ] {
            assert_eq!(refusal(sql), None, "{sql}");
        }
    }
}
