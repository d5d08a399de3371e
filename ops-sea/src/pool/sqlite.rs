//! SQLite, designed for its one writer.
//!
//! SQLite lets any number of connections read a WAL database while one of them writes. A second
//! writer waits for the file lock (the busy timeout) or, when its transaction has already read,
//! fails at once with `SQLITE_BUSY` / `SQLITE_BUSY_SNAPSHOT`: it cannot upgrade a snapshot that
//! another commit made stale. A pool of interchangeable connections turns every pair of concurrent
//! write sessions into that fight (the bank test spent 3,825 retries on 8,084 transfers). So a
//! SQLite `Db` is built around the one writer:
//!
//! - **One writer connection**, in a pool of its own with one connection. sqlx's pool serves
//!   waiters first come, first served, so that pool is the FIFO queue in front of the writer: a
//!   write session waits its turn for at most `pool_timeout` and then fails with
//!   `Retryable(PoolExhausted)`, like any exhausted pool. Write sessions begin with
//!   `BEGIN IMMEDIATE`, taking the write lock before their first read, so no commit of another
//!   process can make their snapshot stale halfway through.
//! - **A pool of reader connections** for read-only sessions and plain reads, opened with
//!   `PRAGMA query_only = ON`: a write attempted on one fails with `SQLITE_READONLY`, which ops
//!   reports as `Programming`, like PostgreSQL's `25006` and MySQL's `1792`. In WAL mode readers
//!   never wait for the writer. The pool grows on demand from one connection up to
//!   `pool_size + max_overflow - 1` (the writer counts as one of the pool's connections), so a
//!   lightly used `Db` keeps reusing one warm connection.
//! - **`:memory:` databases keep one shared connection** for everything: an in-memory database
//!   can only be shared between connections through SQLite's shared cache, whose table locks fail
//!   with `SQLITE_LOCKED` at once instead of waiting. A read-only session there turns
//!   `query_only` on inside its transaction; the pool turns it off again before the connection is
//!   handed to anyone else.
//!
//! Every connection has foreign keys on and a busy timeout of `pool_timeout` (for other processes
//! holding the lock: inside one `Db` writers queue in the pool instead). File databases run in WAL
//! mode with `synchronous = NORMAL`, SQLite's recommended pairing: a commit is durable once the
//! process has written it to the WAL; a power loss can lose the last commits but never corrupts
//! the database.
//!
//! Which connection a plain statement through `Db` uses is decided by [`is_read_only_sql`].

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ops_core::config::{DbConfig, SslMode};
use sea_orm::DatabaseConnection;
use sqlx::Executor as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::PoolState;
use crate::OpsError;

/// The writer, the readers (none for `:memory:`), and the flag of the shared in-memory
/// connection.
#[derive(Clone, Debug)]
pub(crate) struct SqlitePools {
    pub(crate) writer: SqlitePool,
    pub(crate) readers: Option<SqlitePool>,
    /// Set by a read-only session on the one connection of an in-memory database after it turned
    /// `query_only` on; the writer pool's release hook turns it off again and clears the flag.
    query_only_on: Arc<AtomicBool>,
}

/// How a session begins on SQLite, decided by who owns the connection.
#[derive(Clone, Debug)]
pub(crate) enum SqliteBegin {
    /// `BEGIN IMMEDIATE` on the writer: the write lock before the first read.
    Write,
    /// A reader connection; `query_only` is on for its whole life.
    Reader,
    /// The one connection of an in-memory database: `query_only` on inside the transaction, and
    /// off again when the pool gets the connection back.
    SharedReadOnly(Arc<AtomicBool>),
}

impl SqlitePools {
    pub(crate) fn state(&self) -> PoolState {
        let mut state = one_state(&self.writer);
        if let Some(readers) = &self.readers {
            let r = one_state(readers);
            state.size += r.size;
            state.idle += r.idle;
            state.min += r.min;
            state.max += r.max;
        }
        state
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.writer.is_closed()
    }

    pub(crate) async fn close(&self) {
        if let Some(readers) = &self.readers {
            readers.close().await;
        }
        self.writer.close().await;
    }

    /// The pool a ping or a health check uses: the readers when there are some, so that a long
    /// write session does not make the database look slow.
    pub(crate) fn ping_pool(&self) -> &SqlitePool {
        self.readers.as_ref().unwrap_or(&self.writer)
    }

    /// Whether a pool timeout means the database could not be opened rather than that every
    /// connection was busy: the writer is kept open for the pool's whole life, so a pool without
    /// it never managed to open it.
    pub(crate) fn never_opened(&self) -> bool {
        self.writer.size() == 0
    }

    /// SeaORM connections over the writer and over the readers.
    pub(crate) fn sea_connections(&self) -> (DatabaseConnection, Option<DatabaseConnection>) {
        let writer = sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(self.writer.clone());
        let readers = self
            .readers
            .clone()
            .map(sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool);
        (writer, readers)
    }

    /// The state of the pool a session of this kind takes its connection from.
    pub(crate) fn session_state(&self, read_only: bool) -> PoolState {
        match (&self.readers, read_only) {
            (Some(readers), true) => one_state(readers),
            _ => one_state(&self.writer),
        }
    }

    /// How a session with these options begins.
    pub(crate) fn begin_mode(&self, read_only: bool) -> SqliteBegin {
        match (read_only, self.readers.is_some()) {
            (false, _) => SqliteBegin::Write,
            (true, true) => SqliteBegin::Reader,
            (true, false) => SqliteBegin::SharedReadOnly(Arc::clone(&self.query_only_on)),
        }
    }
}

fn one_state(pool: &SqlitePool) -> PoolState {
    PoolState {
        size: pool.size(),
        idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
        min: pool.options().get_min_connections(),
        max: pool.options().get_max_connections(),
        ..PoolState::default()
    }
}

/// The connect options of the writer (and of `Db::connect`'s first connection).
pub(crate) fn options(config: &DbConfig, url: &str) -> Result<SqliteConnectOptions, OpsError> {
    let options = SqliteConnectOptions::from_str(url).map_err(|e| {
        OpsError::configuration(format!(
            "the SQLite URL {} is not valid: {e}",
            config.url.redacted()
        ))
    })?;
    if matches!(
        config.ssl_mode,
        Some(SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull)
    ) {
        return Err(OpsError::configuration(
            "SSL does not apply to SQLite: remove the SSL mode from the URL or DB_SSL_MODE",
        ));
    }
    let options = options.foreign_keys(true).busy_timeout(config.pool_timeout);
    if config.url.is_in_memory() {
        Ok(options)
    } else {
        Ok(options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal))
    }
}

/// Builds the writer and, for file databases, the readers.
///
/// `returned` counts the writer connections that came back inside a transaction (see
/// `super::build`). Readers are not checked: they are never handed out raw.
pub(crate) fn build(
    config: &DbConfig,
    url: &str,
    returned: super::ReturnedInTransaction,
    disconnects: &super::Disconnects,
) -> Result<SqlitePools, OpsError> {
    let connect = options(config, url)?;
    let query_only_on = Arc::new(AtomicBool::new(false));
    let mut writer: SqlitePoolOptions = super::pool_options(config, disconnects);
    // The writer stays open for the pool's life: an in-memory database lives only as long as a
    // connection to it, and a file database's writer is the queue every write session waits in.
    writer = writer
        .min_connections(1)
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None);
    let flag = Arc::clone(&query_only_on);
    let always = config.reset_check == ops_core::config::ResetCheck::Always;
    let writer = writer.after_release(move |conn, _meta| {
        let flag = Arc::clone(&flag);
        let returned = returned.clone();
        Box::pin(async move {
            // The same rule as the server pools (`build.rs`): raw SQL runs on a connection that
            // is reset after it (`raw.rs`), so only releases shortly after an abandoned call can
            // hide a transaction; the check is a hop to the connection's worker thread.
            let check = always || super::release::check_now();
            if check && super::reset::sqlite_in_transaction(conn).await? {
                super::count_returned(&returned);
                tracing::warn!(
                    "a SQLite connection was returned to the pool inside a transaction; \
                     rolling it back"
                );
                conn.execute("ROLLBACK").await?;
            }
            if flag.swap(false, Ordering::AcqRel) {
                conn.execute("PRAGMA query_only = OFF").await?;
            }
            Ok(true)
        })
    });
    let writer = writer.connect_lazy_with(connect.clone());
    let readers = if config.url.is_in_memory() {
        None
    } else {
        let max = config
            .pool_size
            .saturating_add(config.max_overflow)
            .saturating_sub(1)
            .max(1);
        let readers: SqlitePoolOptions = super::pool_options(config, disconnects);
        // No reset on return: readers are never handed out raw, plain statements reach them only
        // when they are queries (`is_read_only_sql`), and a dropped read-only session's ROLLBACK
        // is queued on the connection's worker before anything else it runs.
        let readers = readers.min_connections(1).max_connections(max);
        Some(readers.connect_lazy_with(connect.pragma("query_only", "ON")))
    };
    Ok(SqlitePools {
        writer,
        readers,
        query_only_on,
    })
}

/// Whether a plain statement is a query that cannot write, and may run on a reader.
///
/// The rule: after leading whitespace and comments, the statement starts with `SELECT`, `VALUES`
/// or `EXPLAIN`. Everything else goes to the writer: every `execute`, `INSERT ... RETURNING` run
/// as a query, `WITH` (a common table expression can lead into an `INSERT`, `UPDATE` or
/// `DELETE`), `PRAGMA`, and anything ops cannot read. A mistake in this direction costs only
/// concurrency; the other direction would fail a write with `SQLITE_READONLY`.
pub(crate) fn is_read_only_sql(sql: &str) -> bool {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, tail)| tail);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, tail)| tail);
        } else {
            break;
        }
    }
    let word_end = rest
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    let word = &rest[..word_end];
    ["SELECT", "VALUES", "EXPLAIN"]
        .iter()
        .any(|k| word.eq_ignore_ascii_case(k))
}

/// Turns `query_only` on for a read-only session on the shared in-memory connection, and marks
/// the connection for the release hook to turn it off again.
pub(crate) async fn enter_read_only(
    txn: &sea_orm::DatabaseTransaction,
    flag: &AtomicBool,
) -> Result<(), sea_orm::DbErr> {
    use sea_orm::ConnectionTrait;
    // Marked first: if the statement below is cancelled after it ran, the hook still resets it.
    flag.store(true, Ordering::Release);
    txn.execute_unprepared("PRAGMA query_only = ON").await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_read_only_sql;

    #[test]
    fn reads_are_recognised_and_everything_else_goes_to_the_writer() {
        for sql in [
            "SELECT 1",
            "  select * from t",
            "-- a comment\nSELECT 1",
            "/* hint */ SELECT 1",
            "VALUES (1)",
            "EXPLAIN QUERY PLAN SELECT 1",
            "SELECT\n1",
        ] {
            assert!(is_read_only_sql(sql), "{sql}");
        }
        for sql in [
            "INSERT INTO t VALUES (1) RETURNING id",
            "UPDATE t SET x = 1",
            "DELETE FROM t",
            "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x",
            "PRAGMA query_only = OFF",
            "BEGIN",
            "SELECTED",
            "",
            "-- only a comment",
            "/* unterminated",
            "REPLACE INTO t VALUES (1)",
        ] {
            assert!(!is_read_only_sql(sql), "{sql}");
        }
    }
}
